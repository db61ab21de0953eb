"""Image content scanning over docker save archives built here: layers, whiteouts, OCI blobs,
compressed layers, secrets by kind and fingerprint, and the byte and time bounds."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from docker_exports import manifest_and_config, member

from auditor.collectors import docker_image as scan
from auditor.collectors import image_export as export
from auditor.redact import fingerprint

# Secret-shaped values, assembled at run time so no scanner mistakes this file for a leak.
AWS_ID = "AKIA" + "Q7RZ" * 4
GITHUB = "ghp_" + "a1B2" * 9
PEM = (
    "-----BEGIN " + "OPENSSH PRIVATE KEY-----\n"
    + "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" * 3
    + "-----END " + "OPENSSH PRIVATE KEY-----\n"
)  # fmt: skip

Entry = tuple[str, int, bytes | None]  # path, mode, content (None: directory)


def _layer(entries: Sequence[Entry]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, mode, content in entries:
            info = tarfile.TarInfo(path)
            info.mode = mode
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


IMAGE_HEX = "1" * 64
IMAGE = f"sha256:{IMAGE_HEX}"


def _diff_id(layer: bytes) -> str:
    plain = gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer
    return "sha256:" + hashlib.sha256(plain).hexdigest()


def _archive(layers: Sequence[bytes], *, oci: bool = False, manifest: bool = True) -> bytes:
    """A `docker save` archive: legacy <id>/layer.tar entries, or OCI blobs/sha256/<digest>
    (with a JSON config blob among them), and manifest.json last, as dockerd writes it."""
    buffer = io.BytesIO()
    names: list[str] = []
    with tarfile.open(fileobj=buffer, mode="w") as tar:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        if oci:
            add("blobs/sha256/" + "0" * 64, json.dumps({"architecture": "amd64"}).encode())
        for data in layers:
            digest = hashlib.sha256(data).hexdigest()
            name = f"blobs/sha256/{digest}" if oci else f"{digest}/layer.tar"
            add(name, data)
            names.append(name)
        config = f"blobs/sha256/{IMAGE_HEX}" if oci else f"{IMAGE_HEX}.json"
        if manifest:
            add("manifest.json", json.dumps([{"Config": config, "Layers": names}]).encode())
    return buffer.getvalue()


def _read(
    archive: bytes, diff_ids: Sequence[str], limits: scan.ScanLimits | None = None, **kw: Any
) -> export.ExportRead:
    plan = export.ExportPlan({IMAGE: list(diff_ids)}, frozenset(diff_ids))
    return export.read_export(io.BytesIO(archive).read, plan, limits or scan.ScanLimits(), **kw)


def _scan(layers: Sequence[bytes], **archive: bool) -> dict[str, Any]:
    diff_ids = [_diff_id(layer) for layer in layers]
    read = _read(_archive(layers, **archive), diff_ids)
    assert not read.failed and not read.missing
    return scan.image_findings(diff_ids, read.layers)


def test_setid_and_world_writable_entries_of_the_final_file_system() -> None:
    base = _layer(
        [
            ("usr", 0o755, None),
            ("usr/bin/su", 0o4755, b"su"),
            ("usr/bin/wall", 0o2755, b"wall"),
            ("tmp", 0o1777, None),  # sticky: fine
            ("srv/drop", 0o777, None),
            ("srv/open.txt", 0o666, b"x"),
        ]
    )
    result = _scan([base])
    assert result["complete"] and result["layers"] == 1 and result["files"] == 3
    assert [(f["path"], f["mode"]) for f in result["setid_files"]] == [
        ("/usr/bin/su", "4755"),
        ("/usr/bin/wall", "2755"),
    ]
    assert [f["path"] for f in result["world_writable"]] == ["/srv/drop", "/srv/open.txt"]


def test_later_layers_replace_and_delete_entries() -> None:
    base = _layer([("usr/bin/su", 0o4755, b"su"), ("usr/bin/ping", 0o4755, b"p"),
                   ("opt/app/x", 0o4755, b"x"), ("opt/app/y", 0o666, b"y")])  # fmt: skip
    fixed = _layer(
        [
            ("usr/bin/su", 0o755, b"su"),  # replaced without the bit
            ("usr/bin/.wh.ping", 0o644, b""),  # deleted
            ("opt/app/.wh..wh..opq", 0o644, b""),  # directory made opaque: lower content hidden
        ]
    )
    result = _scan([base, fixed])
    assert result["setid_files"] == [] and result["world_writable"] == []


def test_secrets_are_found_in_every_layer_and_never_kept() -> None:
    base = _layer(
        [
            ("root/.ssh/id_ed25519", 0o600, PEM.encode()),
            ("app/.env", 0o644, f"AWS_ACCESS_KEY_ID={AWS_ID}\nTOKEN={GITHUB}\n".encode()),
            ("docs/example.env", 0o644, b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"),
        ]
    )
    deleted = _layer([("root/.ssh/.wh.id_ed25519", 0o644, b"")])
    result = _scan([base, deleted])
    found = {(s["kind"], s["path"], s["in_final_image"], s["layer"]) for s in result["secrets"]}
    assert found == {
        ("private-key", "/root/.ssh/id_ed25519", False, 0),
        ("aws-access-key-id", "/app/.env", True, 0),
        ("github-token", "/app/.env", True, 0),
    }
    by_kind = {s["kind"]: s["fingerprint"] for s in result["secrets"]}
    assert by_kind["aws-access-key-id"] == fingerprint(AWS_ID)
    text = json.dumps(result)
    assert AWS_ID not in text and GITHUB not in text and "OPENSSH PRIVATE" not in text


@pytest.mark.parametrize(
    ("path", "content", "kind"),
    [
        ("/root/.docker/config.json", b'{"auths": {"r.io": {"auth": "dXNlcjpwYXNzd29yZA=="}}}',
         "registry-credential"),
        ("/home/app/.npmrc", b"//registry.npmjs.org/:_authToken=npm_abcdef0123456789\n",
         "npm-token"),
        ("/home/app/.git-credentials", b"https://bob:s3cretT0ken@git.example.org\n",
         "git-credential"),
        ("/root/.aws/credentials",
         b"[default]\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYzz0123abcd\n",
         "aws-secret-access-key"),
        ("/srv/slack.txt", b"xoxb-" + b"1234567890-abcdefghij", "slack-token"),
    ],
)  # fmt: skip
def test_named_and_shaped_secrets(path: str, content: bytes, kind: str) -> None:
    assert [k for k, _ in scan.find_secrets(path, content)] == [kind]


def test_names_that_only_matter_in_their_files() -> None:
    assert scan.find_secrets("/srv/readme.md", b'"auth": "dXNlcjpwYXNzd29yZA=="') == []


def test_oci_layout_and_compressed_layers() -> None:
    layer = gzip.compress(_layer([("bin/tool", 0o4755, b"t")]))
    result = _scan([layer], oci=True)
    assert result["complete"] and result["layers"] == 1
    assert [f["path"] for f in result["setid_files"]] == ["/bin/tool"]


def test_large_files_are_checked_for_mode_but_not_searched() -> None:
    big = b"x" * 4096 + AWS_ID.encode()
    layer = _layer([("opt/blob", 0o4755, big)])
    read = _read(_archive([layer]), [_diff_id(layer)], scan.ScanLimits(max_file_bytes=1024))
    result = scan.image_findings([_diff_id(layer)], read.layers)
    assert result["unscanned_files"] == 1 and result["secrets"] == []
    assert [f["path"] for f in result["setid_files"]] == ["/opt/blob"]


def test_the_byte_bound_stops_one_layer_and_the_others_are_still_read() -> None:
    big = _layer([(f"f{i}", 0o644, b"y" * 20000) for i in range(50)])
    small = _layer([("bin/tool", 0o4755, b"t")])
    read = _read(_archive([big, small]), [_diff_id(big), _diff_id(small)],
                 scan.ScanLimits(max_bytes=100_000))  # fmt: skip
    assert read.failed == {
        _diff_id(big): f"the {100_000 / 1024 / 1024:g} MiB bound was reached after 100000 bytes "
        "of the layer; raise docker_image_scan_max_mib / docker_image_scan_timeout"
    }
    assert set(read.layers) == {_diff_id(small)}


def test_the_time_bound_stops_the_layer() -> None:
    ticks = iter(range(1000))
    layer = _layer([("a", 0o644, b"a" * 50000)])
    read = _read(_archive([layer]), [_diff_id(layer)], scan.ScanLimits(max_seconds=3),
                 clock=lambda: float(next(ticks)))  # fmt: skip
    assert read.failed[_diff_id(layer)].startswith("the 3 s time bound was reached")


def test_a_layer_not_recognised_and_not_placed_by_a_manifest_is_missing() -> None:
    layer = _layer([("a", 0o644, b"a")])
    read = _read(_archive([layer], manifest=False), [_diff_id(layer)])
    assert read.missing == {_diff_id(layer)} and read.layers == {}


def test_only_wanted_layers_are_scanned_and_reading_stops_when_they_are_done() -> None:
    first = _layer([("etc/one", 0o4755, b"1")])
    second = _layer([("etc/two", 0o4755, b"2")])
    archive = _archive([first, second], oci=True)  # blobs named by digest: known unread
    plan = export.ExportPlan(
        {IMAGE: [_diff_id(first), _diff_id(second)]}, frozenset({_diff_id(first)})
    )
    read = export.read_export(io.BytesIO(archive).read, plan, scan.ScanLimits())
    assert set(read.layers) == {_diff_id(first)} and read.bytes_read < len(archive)
    none = export.ExportPlan({IMAGE: [_diff_id(first)]}, frozenset())
    assert export.read_export(io.BytesIO(archive).read, none, scan.ScanLimits()).bytes_read == 0


def test_the_fewest_images_holding_the_missing_layers_are_exported() -> None:
    images = {"a": ["l1", "l2"], "b": ["l1", "l2", "l3"], "c": ["l4"], "d": ["l1"]}
    assert export.images_to_export(images, {"l1", "l3"}) == ["b"]
    assert export.images_to_export(images, {"l2", "l4"}) == ["a", "c"]
    assert export.images_to_export(images, {"l9"}) == []
    sizes = {"a": 10, "b": 500, "d": 1}
    assert export.images_to_export(images, {"l1"}, sizes) == ["d"]  # the smallest holding it
    assert export.images_to_export(images, {"l1", "l2"}, sizes) == ["a"]


def test_layer_findings_survive_their_json_and_refuse_another_shape() -> None:
    layer = _layer([("root/.ssh/id_ed25519", 0o600, PEM.encode()), ("bin/su", 0o4755, b"s"),
                    ("opt/.wh.gone", 0o644, b"")])  # fmt: skip
    found = _read(_archive([layer]), [_diff_id(layer)]).layers[_diff_id(layer)]
    again = scan.LayerFindings.from_json(json.loads(json.dumps(found.to_json())))
    assert again == found and again.whiteouts == ["/opt/gone"]
    for broken in (
        {},
        {**found.to_json(), "secrets": [["/a", "k"]]},
        {**found.to_json(), "paths": [1]},
    ):
        with pytest.raises(ValueError, match="not a layer's findings"):
            scan.LayerFindings.from_json(broken)


def test_a_legacy_layer_of_a_recorded_export_is_known_by_its_v1_id_before_it_is_read() -> None:
    """Docker 20.10's export (recorded): `<v1 id>/json` names the layer whose tar follows, so
    the scan knows the layer before reading it (a cached one is skipped unscanned)."""
    fixture = Path(__file__).parents[1] / "fixtures/facts/docker.image_contents/tiny-image.json"
    archive = base64.b64decode(json.loads(fixture.read_text())["raw"]["export_base64"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        entry, config = manifest_and_config(tar)
        [layer] = entry["Layers"]
        v1_id = layer.split("/")[0]
        layer_json = member(tar, f"{v1_id}/json")
    diff_ids = config["rootfs"]["diff_ids"]
    chains = dict(zip(export.chain_ids(diff_ids), diff_ids, strict=True))
    assert export._legacy_diff_id(layer_json, v1_id, chains) == diff_ids[0]
    assert export._legacy_diff_id(layer_json, "0" * 64, chains) is None
    plan = export.ExportPlan({"sha256:" + "2" * 64: diff_ids}, frozenset(diff_ids))
    read = export.read_export(io.BytesIO(archive).read, plan, scan.ScanLimits())
    assert set(read.layers) == set(diff_ids)


def test_a_layer_whose_bytes_are_not_its_digest_is_not_trusted() -> None:
    """An export (a hostile daemon's) naming a blob by a wanted diff_id with other content."""
    real = _layer([("root/.ssh/id_ed25519", 0o600, PEM.encode())])
    forged = _layer([("etc/motd", 0o644, b"nothing to see")])
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("blobs/sha256/" + _diff_id(real)[7:])
        info.size = len(forged)
        tar.addfile(info, io.BytesIO(forged))
    read = _read(buffer.getvalue(), [_diff_id(real)])
    assert read.layers == {}
    assert "does not match its digest" in read.failed[_diff_id(real)]


def test_a_compressed_blob_serves_the_audit_but_is_marked_unverified() -> None:
    layer = gzip.compress(_layer([("bin/tool", 0o4755, b"t")]))
    read = _read(_archive([layer], oci=True), [_diff_id(layer)])
    assert set(read.layers) == read.unverified == {_diff_id(layer)}
    plain = _layer([("bin/tool", 0o4755, b"t")])
    assert _read(_archive([plain], oci=True), [_diff_id(plain)]).unverified == set()


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{", b'{"id":', b'{"a" 1}', b"\xff\xfe", b'{"a":' + b"[" * 100_000 + b"}"],
)
def test_a_legacy_json_of_any_shape_is_only_unrecognised(raw: bytes) -> None:
    assert export._legacy_diff_id(raw, "0" * 64, {"sha256:" + "1" * 64: "x"}) is None
    assert export._manifest(raw) == []
