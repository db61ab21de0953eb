"""Image content scanning over docker save archives built here: layers, whiteouts, OCI blobs,
compressed layers, secrets by kind and fingerprint, and the byte and time bounds."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from typing import Any

import pytest

from auditor.collectors import docker_image as scan
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
        if manifest:
            add("manifest.json", json.dumps([{"Config": "x.json", "Layers": names}]).encode())
    return buffer.getvalue()


def _scan(archive: bytes, limits: scan.ScanLimits | None = None) -> dict[str, Any]:
    bounds = limits or scan.ScanLimits()
    reader = scan.BoundedReader(io.BytesIO(archive).read, bounds)
    return scan.findings(scan.scan_export(reader, bounds))


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
    result = _scan(_archive([base]))
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
    result = _scan(_archive([base, fixed]))
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
    result = _scan(_archive([base, deleted]))
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
    result = _scan(_archive([layer], oci=True))
    assert result["complete"] and result["layers"] == 1
    assert [f["path"] for f in result["setid_files"]] == ["/bin/tool"]


def test_large_files_are_checked_for_mode_but_not_searched() -> None:
    big = b"x" * 4096 + AWS_ID.encode()
    result = _scan(
        _archive([_layer([("opt/blob", 0o4755, big)])]),
        scan.ScanLimits(max_file_bytes=1024),
    )
    assert result["unscanned_files"] == 1 and result["secrets"] == []
    assert [f["path"] for f in result["setid_files"]] == ["/opt/blob"]


def test_the_byte_bound_stops_the_scan() -> None:
    archive = _archive([_layer([(f"f{i}", 0o644, b"y" * 20000) for i in range(50)])])
    result = _scan(archive, scan.ScanLimits(max_bytes=100_000))
    assert result["complete"] is False
    assert result["stopped"] == f"the {100_000 / 1024 / 1024:g} MiB bound was reached"
    assert result["bytes"] == 100_000


def test_the_time_bound_stops_the_scan() -> None:
    ticks = iter(range(1000))
    limits = scan.ScanLimits(max_seconds=3)
    reader = scan.BoundedReader(
        io.BytesIO(_archive([_layer([("a", 0o644, b"a" * 50000)])])).read,
        limits,
        clock=lambda: float(next(ticks)),
    )
    result = scan.findings(scan.scan_export(reader, limits))
    assert result["complete"] is False and result["stopped"] == "the 3 s time bound was reached"


def test_an_export_without_a_manifest_is_incomplete() -> None:
    result = _scan(_archive([_layer([("a", 0o644, b"a")])], manifest=False))
    assert result["complete"] is False
    assert result["stopped"] == "the export had no manifest.json listing its layers"
