"""Hostile and clumsy input (issue 17): one clear line naming the file, line and item, exit 2,
never a traceback; gates never pass what could not be read.

The runs use the fuzz corpus's small profile and scanner report (tests/fuzz/corpus/), so that
they take a fraction of a second each in process.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "fuzz" / "corpus"
TINY = str(CORPUS / "profile" / "tiny")
TRIVY = CORPUS / "trivy" / "trivy-image.json"
QUIET = ("-q", "--no-store", "--workers", "0")


def error_line(result) -> str:
    """The one `auditor: error:` line of a run that exited 2, with no traceback."""
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("auditor: error:")]
    assert result.code == 2 and lines, (result.code, result.err)
    return lines[0]


def run_tiny(auditor_cli, tmp_path, *args: str):
    report = f"json:{tmp_path / 'out.json'}"
    return auditor_cli("run", "-p", TINY, "--import", f"trivy:{TRIVY}", *QUIET, "-r", report,
                       *args)  # fmt: skip


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- dates -----------------------------------------------------------------------------------

WAIVER = "waivers:\n  - {{id: w1, check: image.fixable, justification: j, expires: {expires}}}\n"
ATTESTATION = (
    "attestations:\n  - {{control: '4.1.1', answer: yes, by: me, at: {at}, "
    "evidence: 'https://x.example/e', expires: 2099-01-01}}\n"
)


@pytest.mark.parametrize(
    "flag, text, expected",
    [
        ("--waivers", WAIVER.format(expires="2026-02-30"),
         "2: w1: expires: '2026-02-30' is not a date"),
        ("--waivers", WAIVER.format(expires="20990101"), "2: w1: expires: expected a date"),
        ("--attestations", ATTESTATION.format(at="2027-13-40"),
         "2: 4.1.1: at: '2027-13-40' is not a date"),
    ],
    ids=["impossible-date", "number-as-date", "attestation-month-13"],
)  # fmt: skip
def test_impossible_dates_are_one_line_errors(auditor_cli, tmp_path, flag, text, expected):
    path = write(tmp_path / "file.yaml", text)
    assert f"file.yaml:{expected}" in error_line(run_tiny(auditor_cli, tmp_path, flag, str(path)))


def test_a_date_where_a_variable_wants_a_list_is_a_type_error(auditor_cli, tmp_path):
    line = error_line(
        run_tiny(auditor_cli, tmp_path, "--var", "vulnerability_severities=2026-02-30")
    )
    assert "--var vulnerability_severities: expected a list, got '2026-02-30'" in line


# -- duplicate keys, nesting, aliases ----------------------------------------------------------


def test_a_duplicate_key_in_an_overlay_names_file_line_and_key(auditor_cli, tmp_path):
    text = (CORPUS / "overlay" / "overlay.yaml").read_text()
    first = "        assert: \"subject.image != ''\"\n"
    text = text.replace(first, first + '        assert: "true"\n')
    path = write(tmp_path / "overlay.yaml", text)
    line = error_line(run_tiny(auditor_cli, tmp_path, "--overlay", str(path)))
    assert "overlay.yaml:18: invalid YAML: duplicate key 'assert' (first on line 17)" in line


@pytest.mark.parametrize("depth", [10_000, 100_000])
def test_deep_overlays_are_refused_before_the_profile_cache(auditor_cli, tmp_path, depth):
    """At 10,000 levels the profile cache's pickle raised RecursionError."""
    path = write(
        tmp_path / "o.yaml", "extends: tiny\nvariables: {x: " + "[" * depth + "]" * depth + "}\n"
    )
    line = error_line(run_tiny(auditor_cli, tmp_path, "--overlay", str(path)))
    assert "o.yaml:2: invalid YAML: nested deeper than 200 levels" in line


@pytest.mark.parametrize(
    "value, expected",
    [
        ("[" * 50_000 + "]" * 50_000, "nested deeper than 200 levels"),
        ("[&a [x, x, x, x, x, x, x, x, x], " + ", ".join(
            f"&b{i} [{', '.join(['*a' if i == 1 else f'*b{i - 1}'] * 9)}]" for i in range(1, 10)
        ) + "]", "aliases expand to more than 100000 nodes"),
    ],
    ids=["nested-50000", "alias-bomb"],
)  # fmt: skip
def test_var_values_are_bounded(auditor_cli, tmp_path, value, expected):
    line = error_line(run_tiny(auditor_cli, tmp_path, "--var", f"vulnerability_severities={value}"))
    assert "bad --var 'vulnerability_severities=" in line and expected in line
    assert len(line) < 300


# -- variables: types and names ------------------------------------------------------------------


def test_variables_are_checked_against_their_declaration(auditor_cli, tmp_path):
    line = error_line(auditor_cli("run", "--var", "allowed_permitrootlogin=5", *QUIET))
    assert "--var allowed_permitrootlogin: expected a list, got 5" in line
    line = error_line(
        run_tiny(auditor_cli, tmp_path, "--var", "vulnerability_severities=[high, 5]")
    )
    assert "--var vulnerability_severities: item 2: expected a string, got 5" in line
    line = error_line(run_tiny(auditor_cli, tmp_path, "--var", "max_scan_age_days=soon"))
    assert "--var max_scan_age_days: expected a number, got 'soon'" in line
    overlay = write(tmp_path / "o.yaml", "extends: tiny\nvariables:\n  max_scan_age_days: [1]\n")
    line = error_line(run_tiny(auditor_cli, tmp_path, "--overlay", str(overlay)))
    assert "o.yaml:3: max_scan_age_days: expected a number, got a list" in line
    # found by the fuzz test: orjson (the digest of what judged the run) stops at 64 bits
    big = "1180591620717411303424"
    overlay = write(tmp_path / "o.yaml", f"extends: tiny\nvariables:\n  max_scan_age_days: {big}\n")
    line = error_line(run_tiny(auditor_cli, tmp_path, "--overlay", str(overlay)))
    assert f"o.yaml:3: max_scan_age_days: the integer {big} does not fit in 64 bits" in line
    line = error_line(run_tiny(auditor_cli, tmp_path, "--var", f"vulnerability_severities=[{big}]"))
    assert "does not fit in 64 bits" in line


@pytest.mark.parametrize(
    "vars_, expected",
    [
        ("{nope: 1}", "inventory.yaml:3: web1: vars: nope: unknown profile variable"),
        ("{max_scan_age_days: [1]}",
         "inventory.yaml:3: web1: vars: max_scan_age_days: expected a number"),
    ],
)  # fmt: skip
def test_inventory_vars_are_checked_like_var(auditor_cli, tmp_path, vars_, expected):
    path = write(
        tmp_path / "inventory.yaml",
        f"hosts:\n  web0: {{host: 127.0.0.1}}\n  web1: {{host: 127.0.0.1, vars: {vars_}}}\n",
    )
    result = auditor_cli(
        "run", "-p", TINY, "-i", str(path), *QUIET, "-r", f"json:{tmp_path / 'o.json'}"
    )
    assert expected in error_line(result)


# -- target URLs and names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, expected",
    [
        ("ssh://[::1", "bad port or address in target URL 'ssh://[::1': Invalid IPv6 URL"),
        ("ssh://" + "a" * 10_000, "bad host name in target URL 'ssh://aaaa"),
        ("ssh://" + "a" * 64 + ".example", "bad host name"),
        ("local://foo", "bad target URL 'local://foo': local:// takes nothing after it"),
        ("ssh://h:22/path?x#f", "a path, query or fragment means nothing here"),
        ("ssh://h?x", "a path, query or fragment means nothing here"),
        ("docker+ssh://h/x", "a path, query or fragment means nothing here"),
        ("docker://tcp://[::1", "Invalid IPv6 URL"),
    ],
)
def test_bad_target_urls_are_one_short_line(auditor_cli, url, expected):
    line = error_line(auditor_cli("run", "-t", url, *QUIET))
    assert expected in line and len(line) < 300


def test_a_long_host_name_in_an_inventory_names_the_file_and_host(auditor_cli, tmp_path):
    path = write(tmp_path / "inventory.yaml", "hosts:\n  web1: {host: " + "a" * 10_000 + "}\n")
    line = error_line(auditor_cli("run", "-i", str(path), *QUIET))
    assert "inventory.yaml:2: web1: bad host name in target URL" in line and len(line) < 300


def test_a_300_character_extends_is_an_unknown_profile(auditor_cli, tmp_path):
    path = write(tmp_path / "o.yaml", "extends: " + "x" * 300 + "\n")
    result = auditor_cli("profiles", "validate", str(path))
    assert "unknown profile 'xxxx" in error_line(result) and len(error_line(result)) < 300
    line = error_line(auditor_cli("run", "-p", "x" * 300, *QUIET))
    assert "unknown profile" in line


def test_a_name_too_long_for_the_file_system_is_an_input_error(auditor_cli, tmp_path):
    """Found by the fuzz test: ENAMETOOLONG from a path check was a traceback."""
    long = "x" * 5000
    profile = tmp_path / "profile"
    shutil.copytree(TINY, profile)
    manifest = profile / "profile.yaml"
    manifest.write_text(manifest.read_text().replace("include: [", f"include: [{long}, ", 1))
    validated = auditor_cli("profiles", "validate", str(profile))
    assert "included file not found" in error_line(validated)
    html = f"html:{tmp_path / 'r.html'}"
    assert "no such results file" in error_line(auditor_cli("report", long, "-r", html))
    assert "no run xxx" in error_line(auditor_cli("diff", long, long))
    assert "unknown profile" in error_line(auditor_cli("profiles", "validate", long))
    assert "no such file" in error_line(auditor_cli("run", "--import", f"trivy:{long}", *QUIET))


# -- scanner reports: gates never fail open ------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{}", "not a trivy JSON report: no ArtifactName/Results"),
        ("[]", "not a trivy JSON report: an empty list"),
        ("null", "got null"),
        ("[1,2,3]", "not a trivy JSON report: [0]: expected a JSON object, got a number"),
        ('{"ArtifactName": "x", "Results": [{"Vulnerabilities": "s"}]}',
         "Results[0].Vulnerabilities: expected a JSON array, got a string"),
        ('{"ArtifactName": "x", "Metadata": {"OS": "*"}}', "Metadata.OS: expected a JSON object"),
        ('{"ArtifactName": "x",\n "Results": [', "r.json:2: not a trivy JSON report"),
        ('{"ArtifactName": "\\ud800"}', "not a trivy JSON report"),
    ],
)  # fmt: skip
def test_a_trivy_report_that_cannot_be_read_fails_the_gate_with_exit_2(
    auditor_cli, tmp_path, text, expected
):
    path = write(tmp_path / "r.json", text)
    result = auditor_cli(
        "run", "-p", TINY, "--import", f"trivy:{path}", "--fail-on", "high", *QUIET
    )
    line = error_line(result)
    assert str(path) in line and expected in line


def test_a_grype_report_of_the_wrong_shape_names_the_item(auditor_cli, tmp_path):
    path = write(tmp_path / "g.json", '{"matches": [{"vulnerability": "x"}]}')
    line = error_line(auditor_cli("run", "-p", TINY, "--import", f"grype:{path}", *QUIET))
    assert (
        f"{path}: not a grype JSON report: matches[0].vulnerability: expected a JSON object" in line
    )


# -- files that must be regular files ------------------------------------------------------------


@pytest.mark.timeout(20)
@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
def test_fifos_and_devices_are_refused_at_once(auditor_cli, tmp_path, special):
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)
    kind = "a FIFO" if special.endswith("fifo") else "a character device"
    line = error_line(auditor_cli("run", "-p", TINY, "--import", f"trivy:{special}", *QUIET))
    assert f"not a regular file ({kind})" in line
    attestations = write(
        tmp_path / "a.yaml",
        ATTESTATION.format(at="2026-01-01").replace("https://x.example/e", special),
    )
    line = error_line(run_tiny(auditor_cli, tmp_path, "--attestations", str(attestations)))
    assert f"a.yaml:2: 4.1.1: evidence file '{special}': not a regular file ({kind})" in line
    line = error_line(auditor_cli("evaluate", special, "-p", TINY, "-q", "--no-store"))
    assert f"{special}: not a regular file ({kind})" in line
    bundle = str(CORPUS / "bundle" / "bundle.tar.gz")
    line = error_line(auditor_cli("verify", bundle, "--verify-key", special))
    assert f"{special}: the key: not a regular file ({kind})" in line


# -- bundles and results documents -----------------------------------------------------------------


def rebuilt_bundle(tmp_path: Path, change) -> Path:
    """The corpus bundle with its manifest changed by `change` (unsigned)."""
    with tarfile.open(CORPUS / "bundle" / "bundle.tar.gz", "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    manifest = json.loads(members["manifest.json"])
    change(manifest)
    members["manifest.json"] = json.dumps(manifest).encode()
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: m.update(targets="x"), "manifest.json: targets: Input should be a valid list"),
        (lambda m: m.pop("created_at"), "manifest.json: created_at: Field required"),
        (lambda m: m["targets"][0].update(file="../etc/passwd"), "manifest.json: targets.0.file"),
    ],
    ids=["targets-a-string", "no-created-at", "target-file-outside"],
)
def test_a_malformed_unsigned_bundle_manifest_is_one_line(auditor_cli, tmp_path, change, expected):
    path = rebuilt_bundle(tmp_path, change)
    # read with --allow-untrusted: past the signature, the manifest itself is what is judged
    for args in (("verify", str(path)), ("evaluate", str(path), "-p", TINY, "-q", "--no-store")):
        assert expected in error_line(auditor_cli(*args, "--allow-untrusted"))


def test_a_bundle_target_file_with_a_lone_surrogate_is_refused(auditor_cli, tmp_path):
    def change(manifest):  # the target file is replaced by one with a lone surrogate
        manifest["files"]["targets/0000.json"] = hashlib.sha256(b'{"name": "\\ud800"}').hexdigest()

    path = rebuilt_bundle(tmp_path, change)
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    members["targets/0000.json"] = b'{"name": "\\ud800"}'
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    line = error_line(
        auditor_cli("evaluate", str(path), "-p", TINY, "-q", "--no-store", "--allow-untrusted")
    )
    assert "malformed target file targets/0000.json" in line


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("results", "x", "results: not a valid results document: must be array"),
        ("targets", [1], "targets.0: not a valid results document: must be object"),
        ("score", {"a": 1}, "score: not a valid results document: must contain"),
    ],
)
def test_report_validates_the_results_document_first(auditor_cli, tmp_path, key, value, expected):
    document = json.loads((CORPUS / "results" / "results.json").read_text())
    document[key] = value
    path = write(tmp_path / "results.json", json.dumps(document))
    line = error_line(auditor_cli("report", str(path), "-r", f"html:{tmp_path / 'r.html'}"))
    assert f"{path}: {expected}" in line


def test_report_renders_a_valid_results_document(auditor_cli, tmp_path):
    path = tmp_path / "results.json"
    shutil.copy(CORPUS / "results" / "results.json", path)
    result = auditor_cli("report", str(path), "-r", f"html:{tmp_path / 'r.html'}")
    assert result.code == 0, result.err
    assert "A small profile for the fuzz test" in (tmp_path / "r.html").read_text()


def test_a_bundle_target_file_of_the_wrong_types_names_the_field(auditor_cli, tmp_path):
    """A name that is a list reached the recorder as a dict key (found by the fuzz test)."""
    with tarfile.open(CORPUS / "bundle" / "bundle.tar.gz", "r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    target = json.loads(members["targets/0000.json"])
    target["name"] = [["deep"]]
    members["targets/0000.json"] = json.dumps(target).encode()
    manifest = json.loads(members["manifest.json"])
    manifest["files"]["targets/0000.json"] = hashlib.sha256(
        members["targets/0000.json"]
    ).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()
    path = tmp_path / "bundle.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    line = error_line(
        auditor_cli("evaluate", str(path), "-p", TINY, "-q", "--no-store", "--allow-untrusted")
    )
    assert "malformed target file targets/0000.json: name: Input should be a valid string" in line


def test_timeouts_are_bounded(auditor_cli, tmp_path):
    """1e308 seconds overflowed the socket layer: `internal error` for every host (fuzz test)."""
    path = write(
        tmp_path / "inventory.yaml", "defaults:\n  connect_timeout: 1e308\nhosts: {a: {}}\n"
    )
    line = error_line(auditor_cli("run", "-i", str(path), *QUIET))
    assert "inventory.yaml:2: defaults.connect_timeout: Input should be less than or equal" in line
    result = auditor_cli("run", "-t", "local://", "--connect-timeout", "1e308", *QUIET)
    assert result.code == 2 and "is not in the range" in result.err
