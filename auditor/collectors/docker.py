"""Docker facts from the Engine API: one list call and one inspect per object, never a call per
check; inspects run in a small thread pool. The daemon's host-side facts come from one host
script (docker_host), an image's file system from its layers (image_layers: a layer cache and
the streamed export of the layers not in it).

The API data is kept as the daemon gives it (docker-py style "attrs": checks read Docker's own
field names), with a few joins added and named below. Every text in it is untrusted.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from auditor.collectors import docker_host, image_layers
from auditor.collectors.host.script import build_script, new_nonce, split_output
from auditor.errors import AuditorError
from auditor.facts import FactSpec, failed_fact, new_fact, utc_now
from auditor.model import Fact, Subject
from auditor.targets.docker import DockerTarget

log = logging.getLogger(__name__)
T = TypeVar("T")

INSPECT_WORKERS = 4  # concurrent inspect calls per fact (the target keeps 10 connections open)
FACT_WORKERS = 3  # facts gathered side by side
REMOVED = "removed between the list and the inspect call"
GONE = "removed or stopped between the list and the top call"


# --- subjects ------------------------------------------------------------------------------


def short_id(value: Any) -> str:
    """The 12-character id Docker shows: 'sha256:dfd7f0f95fe6ab…' -> 'dfd7f0f95fe6'."""
    text = str(value or "")
    return text.split(":", 1)[-1][:12] or "?"


def container_subject(item: Mapping[str, Any]) -> Subject:
    """'web (29c33023e7b5) image nginx:1.25': name, short id and the image it runs."""
    name = str(item.get("Name") or "").lstrip("/") or "?"
    image = (item.get("Config") or {}).get("Image") or item.get("Image") or "?"
    return Subject(
        "container", f"{name} ({short_id(item.get('Id'))}) image {image}", id=item.get("Id")
    )


def image_subject(item: Mapping[str, Any]) -> Subject:
    """'dfd7f0f95fe6 [busybox:1.36, busybox:latest]', or '<untagged>' for a dangling image."""
    tags = [t for t in item.get("RepoTags") or [] if t != "<none>:<none>"]
    label = f"[{', '.join(tags)}]" if tags else "<untagged>"
    return Subject("image", f"{short_id(item.get('Id'))} {label}", id=item.get("Id"))


def file_subject(item: Mapping[str, Any]) -> Subject:
    """A file on the daemon's host, named by its path and the roles it plays for Docker."""
    roles = ", ".join(item.get("roles") or [])
    return Subject("file", f"{item.get('path')} ({roles})" if roles else str(item.get("path")))


# --- pure normalisers (tests/fixtures/facts/docker.*) -------------------------------------------


def containers_fact(
    listing: Sequence[Mapping[str, Any]], inspected: Mapping[str, Mapping[str, Any] | str]
) -> list[dict[str, Any]]:
    """docker.containers: the inspect of every container, running or not, in list order.

    `inspected` maps a container id to its inspect, or to the reason it has none; such a
    container becomes an item with `_error` (its results are `error`, the others go on).
    `GraphDriver` (the storage driver's layer directories on the host) is left out: no check
    reads it, and it is a quarter of every item that each check's scope has to convert.
    Example::

        [{"Id": "29c33023e7b5…", "Name": "/web", "State": {"Status": "running", ...},
          "Config": {"Image": "nginx:1.25", "User": "", "Env": ["PATH=/usr/bin"], ...},
          "HostConfig": {"Privileged": false, "CapAdd": null, "PidMode": "", ...},
          "Mounts": [{"Type": "bind", "Source": "/srv", "Destination": "/data", "RW": true}]},
         {"Id": "6c921ce3a9e9…", "Name": "/gone", "Config": {"Image": "busybox"},
          "_error": "removed between the list and the inspect call"}]
    """
    items: list[dict[str, Any]] = []
    for entry in listing:
        cid = str(entry.get("Id"))
        found = inspected.get(cid)
        if isinstance(found, Mapping):
            items.append({key: value for key, value in found.items() if key != "GraphDriver"})
            continue
        names = entry.get("Names") or ["?"]
        items.append(
            {
                "Id": cid,
                "Name": str(names[0]),
                "Config": {"Image": entry.get("Image")},
                "_error": found or REMOVED,
            }
        )
    return items


def images_fact(
    listing: Sequence[Mapping[str, Any]],
    inspected: Mapping[str, Mapping[str, Any] | str],
    histories: Mapping[str, list[Any]],
    containers: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """docker.images: the inspect of every image with two additions: `History` (GET
    /images/{id}/history, newest first) and `UsedBy` (names of the containers, running or not,
    created from it, joined from the container list). Example::

        [{"Id": "sha256:dfd7f0f95fe6…", "RepoTags": ["auditor-test/busybox:1"],
          "Created": "2026-11-22T17:21:14.1Z", "Config": {"User": "", "Healthcheck": null,
          "Env": ["PATH=/bin"], "Labels": null, ...},
          "History": [{"Created": 1795368074, "CreatedBy": "", "Comment": "Imported from -"}],
          "UsedBy": ["/web", "/worker"]}]
    """
    used: dict[str, list[str]] = {}
    for container in containers:
        names = container.get("Names") or ["?"]
        used.setdefault(str(container.get("ImageID")), []).append(str(names[0]))
    items: list[dict[str, Any]] = []
    for entry in listing:
        iid = str(entry.get("Id"))
        found = inspected.get(iid)
        if not isinstance(found, Mapping):
            items.append(
                {"Id": iid, "RepoTags": entry.get("RepoTags") or [], "_error": found or REMOVED}
            )
            continue
        item = dict(found)
        item["History"] = list(histories.get(iid, []))
        item["UsedBy"] = sorted(used.get(iid, []))
        items.append(item)
    return items


def program_of(command: str) -> str:
    """The program a `ps` command line runs, as a name: '/usr/sbin/sshd -D' -> 'sshd',
    'sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups' -> 'sshd', '-bash' -> 'bash',
    '[kworker/0:1]' -> 'kworker/0:1'."""
    words = command.split()
    if not words:
        return ""
    first = words[0].rstrip(":")
    if first.startswith("[") and first.endswith("]"):  # a kernel thread: '[kworker/0:1]'
        return first[1:-1]
    return first.rsplit("/", 1)[-1].lstrip("-")


def processes_fact(
    containers: Sequence[Mapping[str, Any]],
    tops: Mapping[str, Mapping[str, Any] | str],
    max_processes: int,
) -> list[dict[str, Any]]:
    """docker.processes: what runs in each container, from GET /containers/{id}/top.

    One item per container in list order; `running` is false for a container that is not
    running (nothing is read for it). `tops` maps the id of a running container to its top
    answer ({"Titles": [...], "Processes": [[...]]}) or to the reason it has none, which
    becomes `_error`, as does a container with more than `max_processes` processes: a list
    cut short holds no verdict on the rest. Example::

        [{"Id": "29c33023e7b5…", "Name": "/web", "Image": "nginx:1.25", "running": true,
          "processes": [{"pid": "4242", "user": "root", "command": "/usr/sbin/sshd -D",
                         "program": "sshd"}]},
         {"Id": "6c921ce3a9e9…", "Name": "/batch", "Image": "busybox", "running": false,
          "processes": []}]
    """
    items: list[dict[str, Any]] = []
    for entry in containers:
        cid = str(entry.get("Id"))
        names = entry.get("Names") or ["?"]
        item: dict[str, Any] = {
            "Id": cid,
            "Name": str(names[0]),
            "Image": entry.get("Image"),
            "running": entry.get("State") == "running",
            "processes": [],
        }
        top = tops.get(cid)
        if item["running"]:
            if not isinstance(top, Mapping):
                item["_error"] = top or GONE
            else:
                rows = top.get("Processes") or []
                if len(rows) > max_processes:
                    item["_error"] = (
                        f"{len(rows)} process(es), more than docker_top_max_processes "
                        f"({max_processes}): not judged"
                    )
                else:
                    item["processes"] = _process_rows(list(top.get("Titles") or []), rows)
        items.append(item)
    return items


def _process_rows(titles: list[Any], rows: Sequence[Any]) -> list[dict[str, str]]:
    """`ps` rows as {pid, user, command, program}, by the column titles the daemon sent."""

    def column(row: Sequence[Any], *names: str) -> str:
        for name in names:
            if name in titles and titles.index(name) < len(row):
                return str(row[titles.index(name)])
        return ""

    found: list[dict[str, str]] = []
    for row in rows:
        command = column(row, "CMD", "COMMAND")
        found.append(
            {
                "pid": column(row, "PID"),
                "user": column(row, "UID", "USER"),
                "command": command,
                "program": program_of(command),
            }
        )
    return found


def endpoint_fact(target: DockerTarget) -> dict[str, Any]:
    """docker.endpoint: how auditor reached the daemon. Example::

    {"transport": "tcp", "address": "tcp://10.0.0.5:2376", "origin": "url",
     "tls": True, "tls_verify": True, "client_certificate": True}
    """
    endpoint = target.endpoint
    assert endpoint is not None
    tls = endpoint.tls
    return {
        "transport": endpoint.transport,
        "address": endpoint.address,
        "socket_path": endpoint.socket_path,
        "origin": endpoint.origin,
        "tls": tls is not None,
        "tls_verify": tls.verify if tls is not None else None,
        "client_certificate": bool(tls and tls.cert),
    }


# --- the collector -------------------------------------------------------------------------


def _spec(
    name: str,
    description: str,
    subject: Callable[[Any], Subject] | None = None,
    items: Callable[[Any], list[Any]] | None = None,
) -> FactSpec:
    return FactSpec(f"docker.{name}", description, subject, items)


FACTS: dict[str, FactSpec] = {
    spec.name: spec
    for spec in (
        _spec("endpoint", "how auditor reached the daemon: transport, address, TLS"),
        _spec("version", "GET /version: engine, API, containerd and runc versions"),
        _spec(
            "info",
            "GET /info: security options, cgroups, live-restore, registries, logging, plugins",
        ),
        _spec(
            "containers",
            "inspect of every container, running and stopped",
            subject=container_subject,
        ),
        _spec(
            "images",
            "inspect and history of every image, and the containers using it",
            subject=image_subject,
        ),
        _spec(
            "image_contents",
            "secrets, set-id and world-writable files found in each image's layers",
            subject=image_subject,
        ),
        _spec(
            "processes",
            "the processes running in each running container (GET /containers/{id}/top)",
            subject=container_subject,
        ),
        _spec("networks", "GET /networks: every network with its driver options"),
        _spec("volumes", "GET /volumes: every volume with its driver and options"),
        _spec("plugins", "GET /plugins: managed plugins (authorization, volume, network)"),
        _spec(
            "daemon_config",
            "the dockerd process serving the daemon: arguments, daemon.json, settings",
        ),
        _spec(
            "daemon_host",
            "modes of the socket, configuration, unit, TLS and certificate files; unit settings; "
            "data-root mount; audit rules; client credential stores",
            subject=file_subject,
            items=lambda data: list(data["files"]),
        ),
    )
}


class DockerCollector:
    """Gathers docker.* facts through a DockerTarget."""

    facts: Mapping[str, FactSpec] = FACTS

    def collect(
        self, target: Any, names: Collection[str], variables: Mapping[str, Any]
    ) -> dict[str, Fact]:
        assert isinstance(target, DockerTarget)
        return _Collection(target, variables).gather(set(names) & set(FACTS))


class _Collection:
    """One collection run on one target: list results are fetched once and shared."""

    def __init__(self, target: DockerTarget, variables: Mapping[str, Any]) -> None:
        self.target = target
        self.api = target.api
        self.variables = variables
        self._cache: dict[str, Any] = {}
        self._locks = {
            key: threading.Lock() for key in ("info", "containers", "images", "image_inspects")
        }

    def _once(self, key: str, call: Callable[[], T]) -> T:
        """call() the first time `key` is asked for, by whichever thread asks first."""
        with self._locks[key]:
            if key not in self._cache:
                self._cache[key] = call()
            cached: T = self._cache[key]
            return cached

    def gather(self, names: set[str]) -> dict[str, Fact]:
        simple: dict[str, tuple[str, Callable[[], Any]]] = {
            "docker.endpoint": (
                "auditor's connection settings",
                lambda: endpoint_fact(self.target),
            ),
            "docker.version": ("GET /version", lambda: self.target.version_data),
            "docker.info": ("GET /info", self.info),
            "docker.containers": (
                "GET /containers/json?all=1; GET /containers/{id}/json each",
                self.containers,
            ),
            "docker.images": (
                "GET /images/json; GET /images/{id}/json and /images/{id}/history each",
                self.images,
            ),
            "docker.processes": (
                "GET /containers/json?all=1; GET /containers/{id}/top each running one",
                self.processes,
            ),
            "docker.networks": ("GET /networks", lambda: self.api.networks()),
            "docker.volumes": (
                "GET /volumes",
                lambda: self.api.volumes().get("Volumes") or [],
            ),
            "docker.plugins": ("GET /plugins", lambda: self.api.plugins()),
        }
        contents = "docker.image_contents"
        source = (
            "layer cache by diff_id; GET /images/get?names=… for the images holding the "
            "layers not in it (streamed, bounded per layer)"
        )
        host_facts = names & {"docker.daemon_config", "docker.daemon_host"}
        # The slow facts (inspects, image exports, the host script) wait on different things:
        # gathered side by side, a collection takes as long as the slowest of them.
        # The image scan has a thread of its own: the API calls of every other fact go on
        # beside the export instead of waiting for a place behind it.
        with ThreadPoolExecutor(max_workers=FACT_WORKERS) as pool, ThreadPoolExecutor(1) as scan:
            scanned = (
                scan.submit(self._fact, contents, source, self.image_contents)
                if contents in names
                else None
            )
            futures = {
                name: pool.submit(self._fact, name, *simple[name])
                for name in sorted(names & set(simple))
            }
            host = pool.submit(self.host_facts, host_facts) if host_facts else None
            facts = {name: future.result() for name, future in futures.items()}
            if host is not None:
                facts.update(host.result())
            if scanned is not None:
                facts[contents] = scanned.result()
        return facts

    def _fact(self, name: str, source: str, call: Callable[[], Any]) -> Fact:
        started = utc_now()
        try:
            data = call()
        except Exception as exc:  # one fact's failure is an error for its checks only
            log.debug("collecting %s failed", name, exc_info=True)
            return failed_fact(name, self.target.name, self._reason(exc), source=source)
        return new_fact(name, self.target.name, data, source=source, collected_at=started)

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, AuditorError):
            return str(exc)
        return self.target.describe(exc)

    # --- API facts

    def info(self) -> dict[str, Any]:
        return self._once("info", self.api.info)

    def container_list(self) -> list[dict[str, Any]]:
        return self._once("containers", lambda: self.api.containers(all=True))

    def image_list(self) -> list[dict[str, Any]]:
        return self._once("images", lambda: self.api.images())

    def containers(self) -> list[dict[str, Any]]:
        listing = self.container_list()
        ids = [str(c.get("Id")) for c in listing]
        inspected = self._each(ids, self.api.inspect_container)
        return containers_fact(listing, inspected)

    def processes(self) -> list[dict[str, Any]]:
        """Each running container's processes, for at most docker_top_max_containers of them:
        the rest are errors, so a large host costs a bounded number of calls."""
        listing = self.container_list()
        cap = int(self.variables.get("docker_top_max_containers", 200))
        running = [str(c.get("Id")) for c in listing if c.get("State") == "running"]
        tops: dict[str, Any] = self._each(running[:cap], self.api.top, GONE)
        over = f"not read: more than docker_top_max_containers ({cap}) running containers"
        tops.update(dict.fromkeys(running[cap:], over))
        return processes_fact(
            listing, tops, int(self.variables.get("docker_top_max_processes", 1000))
        )

    def images(self) -> list[dict[str, Any]]:
        listing = self.image_list()
        ids = list(dict.fromkeys(str(i.get("Id")) for i in listing))
        inspected = self.image_inspects()
        histories = self._each(
            [i for i in ids if isinstance(inspected.get(i), dict)], self.api.history
        )
        return images_fact(
            listing,
            inspected,
            {k: v for k, v in histories.items() if isinstance(v, list)},
            self.container_list(),
        )

    def _each(
        self, ids: list[str], call: Callable[[str], Any], gone: str = REMOVED
    ) -> dict[str, Any]:
        """call(id) for every id in the pool: the answer, or why there is none."""
        from docker.errors import NotFound

        def one(object_id: str) -> Any:
            try:
                return call(object_id)
            except NotFound:
                return gone
            except Exception as exc:  # this object only: the others are still inspected
                return self._reason(exc)

        if not ids:
            return {}
        with ThreadPoolExecutor(max_workers=min(INSPECT_WORKERS, len(ids))) as pool:
            return dict(zip(ids, pool.map(one, ids), strict=True))

    def image_inspects(self) -> dict[str, Any]:
        """The inspect of every listed image (or why there is none), made once."""

        def inspect_all() -> dict[str, Any]:
            ids = list(dict.fromkeys(str(i.get("Id")) for i in self.image_list()))
            return self._each(ids, self.api.inspect_image)

        return self._once("image_inspects", inspect_all)

    def image_contents(self) -> list[dict[str, Any]]:
        limits = image_layers.limits_from(self.variables)
        inspected = self.image_inspects()
        images = image_layers.ImageLayers(self.image_list(), inspected)
        scanned = image_layers.LayerSource(
            self.target.spec.layer_cache, limits, self._export, self._reason
        ).findings(images.layers_of, images.sizes)
        return images.items(scanned)

    def _export(self, image_ids: list[str]) -> Any:
        """The streamed export of `image_ids` (`docker save`), each layer in it once."""
        # The SDK's get_images() switches the socket timeout off; this keeps it per read.
        response = self.api._get(
            self.api._url("/images/get"), params={"names": image_ids}, stream=True
        )
        try:
            self.api._raise_for_status(response)
        except Exception:
            response.close()
            raise
        return response

    # --- host-side facts

    def host_facts(self, names: set[str]) -> dict[str, Fact]:
        target = self.target
        source = (
            "host script on the daemon's host (sections docker_daemon, file_modes, mounts, audit)"
        )

        def failed(reason: str) -> dict[str, Fact]:
            return {n: failed_fact(n, target.name, reason, source=source) for n in names}

        if target.host is None:
            return failed(target.host_unavailable)
        try:
            data_root = str(self.info().get("DockerRootDir") or docker_host.DEFAULT_DATA_ROOT)
        except Exception as exc:
            return failed(f"needs docker info for the data root: {self._reason(exc)}")
        endpoint = target.endpoint
        assert endpoint is not None
        roles = docker_host.static_paths(
            endpoint.socket_path, data_root, self.variables.get("docker_host_audit_paths") or []
        )
        started = utc_now()
        nonce = new_nonce()
        script = build_script(docker_host.host_sections(), list(roles), nonce)
        try:
            result = target.host.run_script(script, timeout=target.spec.command_timeout)
        except AuditorError as exc:
            return failed(str(exc))
        outputs, complete = split_output(result.stdout, nonce)
        missing = [s.name for s in docker_host.host_sections() if s.name not in outputs]
        if missing:
            detail = result.stderr.strip().splitlines()[:1]
            return failed(
                f"the host script stopped before section {missing[0]} (exit "
                f"{result.exit_status}{': ' + detail[0] if detail else ''})"
            )
        try:
            where = "local" if endpoint.transport == "unix" else endpoint.address
            stdout = {name: output.stdout for name, output in outputs.items()}
            parsed = docker_host.host_facts_from(stdout, roles, data_root, where)
        except Exception as exc:  # a parser bug is an error result, not a crash
            log.debug("parsing the Docker host script failed", exc_info=True)
            return failed(f"could not parse the host script's output: {type(exc).__name__}: {exc}")
        facts: dict[str, Fact] = {}
        if "docker.daemon_config" in names:
            name = "docker.daemon_config"
            if parsed.config is None:
                facts[name] = failed_fact(
                    name, target.name, parsed.config_error or "no dockerd found", source=source
                )
            else:
                facts[name] = new_fact(
                    name, target.name, parsed.config, source=source, collected_at=started
                )
        if "docker.daemon_host" in names:
            facts["docker.daemon_host"] = new_fact(
                "docker.daemon_host",
                target.name,
                parsed.host,
                source=source,
                stderr=outputs["docker_daemon"].stderr,
                collected_at=started,
            )
        return facts
