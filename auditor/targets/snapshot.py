"""Offline cluster snapshots (`k8s-snapshot://PATH`): manifests read from files, as the API would
list them.

PATH is a file or a directory (read recursively: *.yaml, *.yml, *.json; hidden directories
skipped), or `-` for standard input. Multi-document YAML, `kind: List` and `*List` dumps
(`kubectl get -A -o json`) and rendered Helm output are understood; every object keeps the
file and line it came from. A file that cannot be read (not YAML, too large, a document
without `kind`, an unknown built-in kind, nested too deep, a symlink out of PATH, not a regular
file) is reported as a problem with its file and line, and everything else is audited. Memory
is bounded by MAX_FILE_BYTES per file and MAX_OBJECTS objects judged on their own (without
`ownerReferences`) per snapshot; objects past the cap are reported, not read.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from auditor import yamlsrc
from auditor.errors import TargetError
from auditor.regularfile import UnreadableFile, read_regular_file
from auditor.targets import render
from auditor.targets.kubernetes import ClusterTarget, KubeletConfig, Listing, Resource

MAX_FILE_BYTES = 50_000_000  # larger files are refused: parsing them could exhaust memory
# Objects judged on their own (no ownerReferences) per snapshot: each costs about 100 KB once
# judged and reported (bare pods), so 10,000 keep a run near a gigabyte. Env overrides it.
MAX_OBJECTS = 10_000
MAX_OBJECTS_ENV = "AUDITOR_SNAPSHOT_MAX_OBJECTS"
SUFFIXES = (".yaml", ".yml", ".json")

# Kinds the built-in API groups serve, so a misspelt kind is caught instead of ignored.
# Groups not listed here (dotted names) are custom resources: read, not audited.
BUILTIN_KINDS: dict[str, frozenset[str]] = {
    g: frozenset(k.split())
    for g, k in {
        "": "Binding ComponentStatus ConfigMap Endpoints Event LimitRange Namespace Node "
        "PersistentVolume PersistentVolumeClaim Pod PodTemplate ReplicationController "
        "ResourceQuota Secret Service ServiceAccount List Status",
        "apps": "ControllerRevision DaemonSet Deployment ReplicaSet StatefulSet",
        "batch": "CronJob Job",
        "extensions": "DaemonSet Deployment Ingress NetworkPolicy PodSecurityPolicy ReplicaSet",
        "policy": "Eviction PodDisruptionBudget PodSecurityPolicy",
        "autoscaling": "HorizontalPodAutoscaler Scale",
        "rbac.authorization.k8s.io": "ClusterRole ClusterRoleBinding Role RoleBinding",
        "networking.k8s.io": "Ingress IngressClass IPAddress NetworkPolicy ServiceCIDR",
        "storage.k8s.io": "CSIDriver CSINode CSIStorageCapacity StorageClass VolumeAttachment "
        "VolumeAttributesClass",
        "admissionregistration.k8s.io": "MutatingAdmissionPolicy MutatingAdmissionPolicyBinding "
        "MutatingWebhookConfiguration ValidatingAdmissionPolicy "
        "ValidatingAdmissionPolicyBinding ValidatingWebhookConfiguration",
        "apiextensions.k8s.io": "CustomResourceDefinition",
        "apiregistration.k8s.io": "APIService",
        "scheduling.k8s.io": "PriorityClass",
        "coordination.k8s.io": "Lease LeaseCandidate",
        "discovery.k8s.io": "EndpointSlice",
        "node.k8s.io": "RuntimeClass",
        "certificates.k8s.io": "CertificateSigningRequest ClusterTrustBundle",
        "events.k8s.io": "Event",
        "flowcontrol.apiserver.k8s.io": "FlowSchema PriorityLevelConfiguration",
        "resource.k8s.io": "DeviceClass ResourceClaim ResourceClaimTemplate ResourceSlice",
        "kubelet.config.k8s.io": "KubeletConfiguration CredentialProviderConfig",
    }.items()
}
KUBELET_CONFIG = ("kubelet.config.k8s.io", "KubeletConfiguration")


@dataclass
class ManifestObject:
    """One object read from a manifest and where it was written."""

    group: str | None  # None when the manifest gave no apiVersion
    data: dict[str, Any]
    location: str


class SnapshotTarget(ClusterTarget):
    """A cluster as exported manifests: objects are listed from files, nothing is contacted."""

    offline = True

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.path = spec.address.rest
        self.objects: dict[str, list[ManifestObject]] = {}  # by kind
        self._problems: list[tuple[str, str]] = []
        self.rendered: list[str] = []  # charts and Kustomizations, as "helm DIR"
        self.files = 0
        self._own_objects = 0  # objects without ownerReferences read so far
        self._max_objects = _max_objects()

    def connect(self) -> None:
        self._read_all()

    def _read_all(self) -> None:
        if self.path == "-":
            text = sys.stdin.read(MAX_FILE_BYTES + 1)  # characters: at least as many bytes
            if len(text) > MAX_FILE_BYTES:
                self._problem("<stdin>", f"over the {MAX_FILE_BYTES}-byte limit: not read")
                return
            self._read_text(text, "<stdin>", json_first=None)
            return
        root = Path(self.path).expanduser()
        if root.is_file():
            self._read_file(root, root.name if root.is_absolute() else self.path)
        elif root.is_dir():
            listed = list(_manifest_files(root))
            for path, outside in listed:
                if outside is not None:
                    shown = path.relative_to(root).as_posix()
                    self._problem(shown, f"symlink to {outside}, outside the snapshot: skipped")
            files = [path for path, outside in listed if outside is None]
            charts, owned = render.renderables(root, files)
            for path in files:
                if path not in owned:
                    self._read_file(path, path.relative_to(root).as_posix())
            for item in charts:
                self._render(item, root)
        else:
            raise TargetError(f"no such file or directory: {self.path}")

    def _render(self, item: render.Renderable, root: Path) -> None:
        """Audit what a chart or Kustomization renders to, located at its templates."""
        options = render.RenderOptions(
            self.spec.helm_values, self.spec.helm_set, self.spec.command_timeout
        )
        for part in render.render(item, root, options):
            self._read_text(part.text, part.location, json_first=False, lines=False)
        self.rendered.append(f"{item.tool} {render.shown(item.directory, root)}")

    def close(self) -> None:
        self.objects = {}

    def problems(self) -> list[tuple[str, str]]:
        return list(self._problems)

    def list_objects(self, resource: Resource) -> Listing:
        chosen = [o for o in self.objects.get(resource.kind, []) if resource.accepts(o.group)]
        return Listing(
            resource,
            [o.data for o in chosen],
            f"snapshot {self.path} ({self._read_what()})",
            locations=[o.location for o in chosen],
        )

    def _read_what(self) -> str:
        read = [f"{self.files} file(s)"] if self.files or not self.rendered else []
        return "; ".join([*read, *(f"rendered {r}" for r in self.rendered)])

    def kubelet_configs(self, nodes: list[str]) -> list[KubeletConfig]:
        """The KubeletConfiguration documents of the snapshot, named by the file and line they
        came from: a snapshot does not say which node read which file."""
        found = self.objects.get(KUBELET_CONFIG[1], [])
        return [
            KubeletConfig(o.location, o.location, o.data, None, f"snapshot {o.location}")
            for o in found
            if o.group in (KUBELET_CONFIG[0], None)
        ]

    # -- reading files -------------------------------------------------------------------

    def _read_file(self, path: Path, shown: str) -> None:
        self.files += 1
        try:
            text = read_regular_file(path, MAX_FILE_BYTES).decode("utf-8")
        except UnreadableFile as exc:
            large = "limit" in exc.reason
            split = " (split the dump, e.g. one file per namespace)" if large else ""
            self._problem(shown, exc.reason + split)
            return
        except UnicodeDecodeError:
            self._problem(shown, "not UTF-8 text")
            return
        self._read_text(text, shown, json_first=path.suffix.lower() == ".json")

    def _read_text(
        self, text: str, shown: str, json_first: bool | None, lines: bool = True
    ) -> None:
        """Read the documents of `text`, located at `shown:LINE`, or at `shown` alone when the
        lines of `text` are not those of a file (rendered output)."""
        if json_first is None:
            json_first = text.lstrip()[:1] == "{"
        documents = _json_documents(text, shown) if json_first else _yaml_documents(text, shown)
        try:
            for line, document in documents:
                self._add_document(document, shown, line if lines else None)
        except _ParseError as exc:
            self._problem(exc.location, exc.reason)

    def _add_document(self, document: _Document, shown: str, line: int | None) -> None:
        location = shown if line is None else f"{shown}:{line}"
        data = document.data
        if not isinstance(data, dict):
            self._problem(location, "not a Kubernetes object (expected a mapping)")
            return
        kind = data.get("kind")
        if not isinstance(kind, str) or not kind:
            self._problem(location, "document without kind")
            return
        items = data.get("items")
        if kind.endswith("List") and isinstance(items, list):
            api_version = data.get("apiVersion")
            for index, item in enumerate(items):
                if item is None:
                    continue
                item_line = document.item_line(index)
                if isinstance(item, dict) and kind != "List":
                    item.setdefault("kind", kind[: -len("List")])
                    if isinstance(api_version, str):
                        item.setdefault("apiVersion", api_version)
                shown_line = None if line is None else item_line
                self._add_document(_Document(item, {}, item_line), shown, shown_line)
            return
        api_version = data.get("apiVersion")
        group = _group_of(api_version)
        problem = _unknown_kind(kind, api_version, group)
        if problem:
            self._problem(location, problem)
            return
        metadata = data.get("metadata")
        if not (isinstance(metadata, dict) and metadata.get("ownerReferences")):
            self._own_objects += 1
            if self._own_objects > self._max_objects:
                if self._own_objects == self._max_objects + 1:
                    self._problem(
                        location,
                        f"more than {self._max_objects} objects without an owner: this one and "
                        f"those after it are not audited (raise {MAX_OBJECTS_ENV} to read more)",
                    )
                return
        self.objects.setdefault(kind, []).append(ManifestObject(group, data, location))

    def _problem(self, location: str, reason: str) -> None:
        self._problems.append((location, reason))


def _max_objects() -> int:
    try:
        return max(1, int(os.environ.get(MAX_OBJECTS_ENV) or MAX_OBJECTS))
    except ValueError:
        return MAX_OBJECTS


def _manifest_files(root: Path) -> Iterator[tuple[Path, str | None]]:
    """(file, None) for each manifest file under `root`, sorted, hidden directories and files
    skipped; (link, where it points) for a symlink that leads out of `root`. Symlinked
    directories are not followed (their files are read where they are, if inside)."""
    real_root = root.resolve()
    found: list[Path] = []
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        for name in subdirs:
            if (here / name).is_symlink():
                found.append(here / name)
        found += [here / name for name in files if not name.startswith(".")]
    for path in sorted(found):
        if path.is_symlink():
            real = path.resolve()
            wanted = real.is_dir() or path.suffix.lower() in SUFFIXES
            if not real.is_relative_to(real_root) and wanted:
                yield path, str(real)
                continue
            if real.is_dir():
                continue
        if path.suffix.lower() in SUFFIXES and not path.is_dir():
            yield path, None


def _group_of(api_version: Any) -> str | None:
    if not isinstance(api_version, str) or not api_version:
        return None
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def _unknown_kind(kind: str, api_version: Any, group: str | None) -> str | None:
    """Why `kind` cannot be a real object, or None. Custom resources (dotted groups that are
    not built in) are accepted as they are."""
    if group is None:
        if any(kind in kinds for kinds in BUILTIN_KINDS.values()):
            return None
        return f"unknown kind {kind!r} (and no apiVersion)"
    if group == "" and api_version != "v1":
        return f"unknown apiVersion {api_version!r}"
    if group in BUILTIN_KINDS:
        if kind in BUILTIN_KINDS[group]:
            return None
        return f"unknown kind {kind!r} for apiVersion {api_version}"
    if "." not in group:
        return f"unknown apiVersion {api_version!r}"
    return None


class _ParseError(Exception):
    def __init__(self, location: str, reason: str) -> None:
        super().__init__(reason)
        self.location = location
        self.reason = reason


@dataclass
class _Document:
    """A parsed document and the lines of the entries of its `items` list, if it has one."""

    data: Any
    item_lines: dict[int, int]
    line: int = 1

    def item_line(self, index: int) -> int:
        return self.item_lines.get(index, self.line)


# -- YAML --------------------------------------------------------------------------------------


def _yaml_documents(text: str, shown: str) -> Iterator[tuple[int, _Document]]:
    """(line, document) for each non-empty document; a syntax error, or a document past the
    loader's bounds (depth, aliases, duplicate keys), stops the file there."""
    try:
        for node in yamlsrc.compose_documents(text):
            if isinstance(node, yaml.ScalarNode) and node.value == "":
                continue
            line = node.start_mark.line + 1
            data = yamlsrc.construct(node)
            yield line, _Document(data, _yaml_item_lines(node), line)
    except yaml.YAMLError as exc:
        problem, line = yamlsrc.yaml_problem(exc)
        raise _ParseError(f"{shown}:{line or 1}", problem.replace("invalid", "not valid")) from exc


def _yaml_item_lines(node: yaml.Node) -> dict[int, int]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    for key, value in node.value:
        is_items = isinstance(key, yaml.ScalarNode) and key.value == "items"
        if is_items and isinstance(value, yaml.SequenceNode):
            return {i: child.start_mark.line + 1 for i, child in enumerate(value.value)}
    return {}


# -- JSON --------------------------------------------------------------------------------------


def _json_documents(text: str, shown: str) -> Iterator[tuple[int, _Document]]:
    """(line, document) for each JSON value in `text` (concatenated values are allowed), with
    the line of every entry of a top-level `items` list."""
    printed = _printed_document(text)
    if printed is not None:
        yield printed.line, printed
        return
    decoder = json.JSONDecoder()
    lines = _LineIndex(text)
    position = _skip_space(text, 0)
    while position < len(text):
        start = position
        try:
            if text[position] == "{":
                data, position, item_lines = _json_object(decoder, text, position, lines)
            else:
                data, position = decoder.raw_decode(text, position)
                item_lines = {}
        except json.JSONDecodeError as exc:
            raise _ParseError(f"{shown}:{exc.lineno}", f"not valid JSON: {exc.msg}") from exc
        except RecursionError as exc:
            line = lines.line(start)
            raise _ParseError(f"{shown}:{line}", "not valid JSON: nested too deep") from exc
        except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
            line = lines.line(start)
            reason = "not valid JSON: a number of more than 4,300 digits"
            raise _ParseError(f"{shown}:{line}", reason) from exc
        line = lines.line(start)
        if _SURROGATE.search(text, start, position):
            _refuse_lone_surrogates(data, f"{shown}:{line}")
        yield line, _Document(data, item_lines, line)
        position = _skip_space(text, position)


# A \\uD800-\\uDFFF escape: JSON allows it alone, UTF-8 (and so every output) does not.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(data: Any, location: str) -> None:
    """orjson encodes only valid Unicode: a string with a lone surrogate makes it refuse."""
    try:
        orjson.dumps(data)
    except orjson.JSONEncodeError as exc:
        if "surrogate" in str(exc):
            raise _ParseError(location, "not valid JSON: a string holds a lone surrogate") from exc


# The `items` key of a printed list dump, on a line of its own, and the first key of a document.
_ITEMS_OPEN = re.compile(r'^([ \t]+)"items"[ \t]*:[ \t]*\[[ \t]*\r?$', re.M)
_FIRST_KEY = re.compile(r'[ \t\r\n]*\{[ \t]*\r?\n([ \t]+)"')


def _printed_document(text: str) -> _Document | None:
    """The usual file, read at orjson's speed: one JSON value and, for a list dump, printed
    with an indent (kubectl, jq, json.dumps) so that each `items` entry opens a line at twice
    the indent of the top-level keys. Those lines give the entries' lines when there are as
    many as entries; anything else (NaN, huge integers, concatenated values, compact JSON)
    is None and goes to the reader that decodes entry by entry."""
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    lines = _LineIndex(text)
    line = lines.line(_skip_space(text, 0))
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        return _Document(data, {}, line)
    opened, first = _ITEMS_OPEN.search(text), _FIRST_KEY.match(text)
    if opened is None or first is None or opened.group(1) != first.group(1):
        return None
    entry = "\n" + opened.group(1) * 2 + "{"
    starts: list[int] = []
    at = text.find(entry, opened.end())
    while at != -1 and len(starts) <= len(items):
        starts.append(at + 1)
        at = text.find(entry, at + 1)
    if len(starts) != len(items):
        return None
    return _Document(data, {index: lines.line(at) for index, at in enumerate(starts)}, line)


def _json_object(
    decoder: json.JSONDecoder, text: str, position: int, lines: _LineIndex
) -> tuple[dict[str, Any], int, dict[int, int]]:
    """Decode the object at `position` member by member, noting where `items` entries start."""
    result: dict[str, Any] = {}
    item_lines: dict[int, int] = {}
    position = _skip_space(text, position + 1)
    if text.startswith("}", position):
        return result, position + 1, item_lines
    while True:
        key, position = decoder.raw_decode(text, position)
        if not isinstance(key, str):
            raise json.JSONDecodeError("expected a string key", text, position)
        position = _expect(text, position, ":")
        if key == "items" and text.startswith("[", position):
            value: Any = []
            position = _skip_space(text, position + 1)
            if text.startswith("]", position):
                position += 1
            else:
                while True:
                    item_lines[len(value)] = lines.line(position)
                    item, position = decoder.raw_decode(text, position)
                    value.append(item)
                    position = _skip_space(text, position)
                    if text.startswith(",", position):
                        position = _skip_space(text, position + 1)
                        continue
                    position = _expect(text, position, "]")
                    break
        else:
            value, position = decoder.raw_decode(text, position)
        result[key] = value
        position = _skip_space(text, position)
        if text.startswith(",", position):
            position = _skip_space(text, position + 1)
            continue
        return result, _expect(text, position, "}"), item_lines


def _expect(text: str, position: int, char: str) -> int:
    """The position after `char` (skipping whitespace around it)."""
    position = _skip_space(text, position)
    if not text.startswith(char, position):
        raise json.JSONDecodeError(f"expected {char!r}", text, position)
    return _skip_space(text, position + 1)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


class _LineIndex:
    """Offset -> 1-based line for offsets asked in increasing order (one pass over the text)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.offset = 0
        self.lines = 1

    def line(self, offset: int) -> int:
        if offset < self.offset:  # not expected; count from the start again
            self.offset, self.lines = 0, 1
        self.lines += self.text.count("\n", self.offset, offset)
        self.offset = offset
        return self.lines
