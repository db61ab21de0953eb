"""The image layer cache against a real dockerd: a layer read once however many images share
it, a second audit that reads no image content, whiteouts applied across cached layers,
entries of another rule set ignored, a corrupt entry read again and rewritten, a bound hit
that errs one image's content checks only, on SQLite and on PostgreSQL (issue 19)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from servers.dockerd import DockerDaemon, busybox_image
from servers.postgres import PostgresServer
from sqlalchemy import create_engine, update

from auditor import engine
from auditor.collectors import docker as docker_collector
from auditor.collectors import image_export, image_layers
from auditor.collectors.docker_image import LayerFindings
from auditor.config import TargetSpec
from auditor.model import Status
from auditor.profiles import LoadedProfile, load_profile
from auditor.redact import fingerprint_key_id
from auditor.store import open_store
from auditor.store.layers import open_layer_cache
from auditor.store.schema import image_layers as image_layers_table
from auditor.targets.docker import DockerTarget

pytestmark = pytest.mark.integration

BUSYBOX = "auditor-test/busybox:1"
AWS_ID = "AKIA" + "LAYR" * 4  # assembled here: no scanner mistakes this file for a leak


@dataclass(frozen=True)
class Images:
    """Image ids: `leaky` deletes a key an earlier layer of it added, `sibling` is built on
    `leaky` (sharing all its layers), `tiny` is a one-file import with no busybox."""

    leaky: str
    sibling: str
    tiny: str
    layers: dict[str, list[str]]  # image id -> diff_ids


def _build(api: docker.APIClient, tag: str, files: dict[str, bytes]) -> str:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    for chunk in api.build(fileobj=context, custom_context=True, tag=tag, rm=True, decode=True):
        assert "error" not in chunk, chunk
    return str(api.inspect_image(tag)["Id"])


@pytest.fixture(scope="module")
def images(own_dockerd: DockerDaemon) -> Iterator[Images]:
    api = docker.APIClient(base_url=own_dockerd.base_url, timeout=120)
    try:
        busybox_image(own_dockerd.base_url, BUSYBOX)
        key = ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        dockerfile = "\n".join(
            [
                f"FROM {BUSYBOX}",
                "COPY id_ed25519 /root/.ssh/id_ed25519",
                "RUN rm /root/.ssh/id_ed25519",
                "COPY aws.env /app/aws.env",
                "",
            ]
        )
        leaky = _build(
            api,
            "layers/leaky:1",
            {
                "Dockerfile": dockerfile.encode(),
                "id_ed25519": key,
                "aws.env": f"AWS_ACCESS_KEY_ID={AWS_ID}\n".encode(),
            },
        )
        sibling = _build(
            api,
            "layers/sibling:1",
            {"Dockerfile": b"FROM layers/leaky:1\nCOPY note /srv/note\n", "note": b"hello\n"},
        )
        rootfs = io.BytesIO()
        with tarfile.open(fileobj=rootfs, mode="w") as tar:
            info = tarfile.TarInfo("etc/motd")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"hi\n"))
        api.import_image_from_data(rootfs.getvalue(), repository="layers/tiny", tag="1")
        tiny = str(api.inspect_image("layers/tiny:1")["Id"])
        layers = {
            str(i["Id"]): list(api.inspect_image(i["Id"])["RootFS"]["Layers"]) for i in api.images()
        }
        yield Images(leaky, sibling, tiny, layers)
    finally:
        api.close()


@dataclass
class Counts:
    exports: int = 0
    layers_scanned: int = 0


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counts:
    """Counts the export calls made to the daemon and the layers scanned (the real calls)."""
    seen = Counts()
    real_export = docker_collector._Collection._export
    real_scan = image_export.scan_layer_tar

    def export(self: Any, image_ids: list[str]) -> Any:
        seen.exports += 1
        return real_export(self, image_ids)

    def scan(*args: Any, **kwargs: Any) -> LayerFindings:
        seen.layers_scanned += 1
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(docker_collector._Collection, "_export", export)
    monkeypatch.setattr(image_export, "scan_layer_tar", scan)
    return seen


def _contents(daemon: DockerDaemon, cache: str | None, **variables: Any) -> dict[str, Any]:
    spec = TargetSpec(url=f"docker://{daemon.base_url}", layer_cache=cache)
    with DockerTarget(spec) as target:
        facts = docker_collector.DockerCollector().collect(
            target, {"docker.image_contents"}, variables
        )
    fact = facts["docker.image_contents"]
    assert fact.error is None, fact.error
    return {item["Id"]: item for item in fact.data}


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


def _without_read_counts(items: dict[str, Any]) -> dict[str, Any]:
    return {i: {k: v for k, v in item.items() if k != "layers_read"} for i, item in items.items()}


def test_a_deleted_secret_is_not_in_the_image_but_in_its_layer_history(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path
) -> None:
    first = _contents(own_dockerd, _sqlite(tmp_path))
    again = _contents(own_dockerd, _sqlite(tmp_path))  # every layer from the cache
    for items in (first, again):
        leaky = items[images.leaky]
        found = {(s["kind"], s["path"], s["in_final_image"], s["layer"]) for s in leaky["secrets"]}
        assert found == {
            ("private-key", "/root/.ssh/id_ed25519", False, 1),  # deleted by layer 2
            ("aws-access-key-id", "/app/aws.env", True, 3),
        }
        key = next(s for s in leaky["secrets"] if s["kind"] == "private-key")
        assert key["layer_digest"] == images.layers[images.leaky][1]
        assert leaky["Layers"] == images.layers[images.leaky]
    assert again[images.leaky]["layers_read"] == 0


def test_a_shared_layer_is_read_once_and_a_second_audit_reads_no_content(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path, counts: Counts
) -> None:
    distinct = {d for diff_ids in images.layers.values() for d in diff_ids}
    shared = images.layers[images.leaky][0]  # busybox: in every image but tiny
    assert sum(shared in diff_ids for diff_ids in images.layers.values()) >= 3
    first = _contents(own_dockerd, _sqlite(tmp_path))
    assert counts.exports == 1 and counts.layers_scanned == len(distinct)
    assert first[images.sibling]["layers_read"] == len(images.layers[images.sibling])
    second = _contents(own_dockerd, _sqlite(tmp_path))
    assert counts.exports == 1 and counts.layers_scanned == len(distinct)  # nothing more read
    assert all(item["layers_read"] == 0 for item in second.values())
    assert _without_read_counts(second) == _without_read_counts(first)


def test_without_a_cache_every_audit_reads_the_layers_again(
    own_dockerd: DockerDaemon, images: Images, counts: Counts
) -> None:
    _contents(own_dockerd, None)
    _contents(own_dockerd, None)
    assert counts.exports == 2


def _cache(url: str, rules: str | None = None, key_id: str | None = None) -> Any:
    return open_layer_cache(
        url,
        rules or image_layers.rules_of(image_layers.limits_from({})),
        key_id or fingerprint_key_id(),
    )


def test_entries_of_another_rule_set_or_key_are_never_used(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path, counts: Counts
) -> None:
    planted = LayerFindings(setid={"/planted-by-old-rules": "4755"}, paths={"/x"})
    for rules, key_id in (("0;max_file_bytes=1048576", None), (None, "0" * 16)):
        cache = _cache(_sqlite(tmp_path), rules, key_id)
        try:
            cache.put({d: planted.to_json() for ds in images.layers.values() for d in ds})
        finally:
            cache.close()
    items = _contents(own_dockerd, _sqlite(tmp_path))
    assert counts.exports == 1
    paths = {f["path"] for item in items.values() for f in item["setid_files"]}
    assert "/planted-by-old-rules" not in paths
    assert _without_read_counts(items) == _without_read_counts(_contents(own_dockerd, None))


def test_a_corrupt_entry_is_ignored_read_again_and_rewritten(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path, counts: Counts
) -> None:
    url = _sqlite(tmp_path)
    first = _contents(own_dockerd, url)
    secret_layer = images.layers[images.leaky][1]
    damaged = create_engine(url)
    try:
        with damaged.begin() as conn:
            conn.execute(
                update(image_layers_table)
                .where(image_layers_table.c.diff_id == secret_layer)
                .values(data=b"not zlib at all")
            )
    finally:
        damaged.dispose()
    scanned_before = counts.layers_scanned
    second = _contents(own_dockerd, url)
    assert counts.exports == 2 and counts.layers_scanned == scanned_before + 1
    assert second[images.leaky]["secrets"] == first[images.leaky]["secrets"]
    cache = _cache(url)
    try:
        assert secret_layer in cache.get([secret_layer])  # sound again
    finally:
        cache.close()


def test_a_bound_hit_errs_the_content_checks_of_the_images_with_that_layer_only(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path
) -> None:
    profile: LoadedProfile = load_profile()
    bounded = replace(profile, variables={**profile.variables, "docker_image_scan_max_mib": 1})
    spec = TargetSpec(url=f"docker://{own_dockerd.base_url}", layer_cache=_sqlite(tmp_path))
    record = engine.collect(bounded, spec)
    assert record.error is None, record.error
    contents = {
        i["Id"]: i for i in next(f for f in record.facts if f.name == "docker.image_contents").data
    }
    assert "_error" not in contents[images.tiny]
    assert "MiB bound was reached" in contents[images.leaky]["_error"]
    results = engine.evaluate(bounded, record, bounded.variables)
    content_checks = {c.id for c in bounded.checks if c.check.for_each == "docker.image_contents"}
    by_image: dict[str, dict[str, Status]] = {}
    for result in results:
        if result.subject.id in (images.leaky, images.tiny):
            by_image.setdefault(str(result.subject.id), {})[result.check_id] = result.status
    leaky, tiny = by_image[images.leaky], by_image[images.tiny]
    assert {leaky[c] for c in content_checks} == {Status.ERROR}
    assert Status.ERROR not in {tiny[c] for c in content_checks}
    assert Status.ERROR not in {s for c, s in leaky.items() if c not in content_checks}
    # the layer that hit the bound is not kept: a later audit with a larger bound reads it
    cache = _cache(_sqlite(tmp_path))
    try:
        assert images.layers[images.leaky][0] not in cache.get(images.layers[images.leaky])
    finally:
        cache.close()


def test_the_cache_in_postgresql_is_shared_by_audits(
    own_dockerd: DockerDaemon, images: Images, postgres_server: PostgresServer, counts: Counts
) -> None:
    url = postgres_server.url
    cache = _cache(url)
    try:
        with cache.engine.begin() as conn:  # another test's run may have filled it
            conn.execute(image_layers_table.delete())
    finally:
        cache.close()
    first = _contents(own_dockerd, url)
    second = _contents(own_dockerd, url)
    assert counts.exports == 1
    assert _without_read_counts(second) == _without_read_counts(first)
    assert second[images.sibling]["layers_read"] == 0


def test_the_legacy_export_names_every_layer_before_its_bytes(
    own_dockerd: DockerDaemon, images: Images
) -> None:
    """Docker 24 and earlier: each `<v1 id>/json` of a real export is matched to its layer's
    diff_id (moby's v1.CreateID), so a cached layer is skipped unread."""
    api = docker.APIClient(base_url=own_dockerd.base_url, timeout=120)
    try:
        response = api._get(api._url("/images/get"), params={"names": [images.sibling]})
        archive = response.content
    finally:
        api.close()
    diff_ids = images.layers[images.sibling]
    chains = dict(zip(image_export.chain_ids(diff_ids), diff_ids, strict=True))
    named: Callable[[tarfile.TarInfo], bool] = lambda m: m.name.endswith("/json")  # noqa: E731
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        found = [
            image_export._legacy_diff_id(
                tar.extractfile(m).read(),  # type: ignore[union-attr]
                m.name.split("/")[0],
                chains,
            )
            for m in tar.getmembers()
            if named(m)
        ]
    assert sorted(found) == sorted(diff_ids)


def _kept_layers(url: str) -> set[str]:
    engine_ = create_engine(url)
    try:
        with engine_.connect() as conn:
            return {row.diff_id for row in conn.execute(image_layers_table.select())}
    finally:
        engine_.dispose()


def test_auditor_run_keeps_layers_in_its_store_and_a_run_stored_nowhere_in_the_users_cache(
    own_dockerd: DockerDaemon,
    images: Images,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    auditor_cli: Callable[..., Any],
    counts: Counts,
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    target = f"docker://{own_dockerd.base_url}"
    distinct = {d for diff_ids in images.layers.values() for d in diff_ids}
    store = tmp_path / "runs.db"
    for _ in range(2):
        result = auditor_cli(
            "run", "--quiet", "--report", "json:-", "--db", str(store), "-t", target
        )
        assert result.code in (0, 1), result.err
    assert counts.exports == 1  # the second run read every layer from the store
    assert _kept_layers(f"sqlite:///{store}") == distinct
    assert not (tmp_path / "cache" / "auditor" / "layers.db").exists()
    result = auditor_cli("run", "--quiet", "--report", "json:-", "--no-store", "-t", target)
    assert result.code in (0, 1), result.err
    assert counts.exports == 2
    assert _kept_layers(f"sqlite:///{tmp_path / 'cache' / 'auditor' / 'layers.db'}") == distinct


def test_an_image_removed_before_its_export_errs_alone(
    own_dockerd: DockerDaemon, images: Images
) -> None:
    """The daemon refuses an export naming an image it no longer has (404 for the whole
    request): each image is then exported alone, and only the removed one is an error."""
    spec = TargetSpec(url=f"docker://{own_dockerd.base_url}")
    with DockerTarget(spec) as target:
        api = target.api
        rootfs = io.BytesIO()
        with tarfile.open(fileobj=rootfs, mode="w") as tar:
            info = tarfile.TarInfo("etc/doomed")
            info.size = 6
            tar.addfile(info, io.BytesIO(b"doomed"))
        api.import_image_from_data(rootfs.getvalue(), repository="layers/doomed", tag="1")
        doomed = str(api.inspect_image("layers/doomed:1")["Id"])
        listing = api.images()
        inspected = {str(i["Id"]): api.inspect_image(i["Id"]) for i in listing}
        api.remove_image(doomed)
        found = image_layers.ImageLayers(listing, inspected)
        collection = docker_collector._Collection(target, {})
        source = image_layers.LayerSource(
            None, image_layers.limits_from({}), collection._export, collection._reason
        )
        scanned = source.findings(found.layers_of, found.sizes)
        items = {item["Id"]: item for item in found.items(scanned)}
    assert "the export failed" in items[doomed]["_error"]
    assert scanned.exports >= 2
    others = [item for iid, item in items.items() if iid != doomed]
    assert others and all("_error" not in item for item in others)
    assert items[images.leaky]["secrets"]


def test_prune_drops_the_layers_no_audit_used_since(
    own_dockerd: DockerDaemon, images: Images, tmp_path: Path
) -> None:
    url = _sqlite(tmp_path)
    _contents(own_dockerd, url)
    distinct = {d for diff_ids in images.layers.values() for d in diff_ids}
    with open_store(url) as store:
        store.prune(older_than_days=1)
        assert _kept_layers(url) == distinct  # used a moment ago
        _contents(own_dockerd, url)  # a read marks them used again
        store.prune(older_than_days=0)
    assert _kept_layers(url) == set()
