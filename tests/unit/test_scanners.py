"""Imported Trivy and Grype reports become image subjects with evidence (issue 7, 4.1.1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from auditor.scan_reports import ReportFormatError, images_from_grype, images_from_trivy

REPORTS = Path(__file__).parents[1] / "fixtures" / "scanners"


def load(name: str):
    return json.loads((REPORTS / name).read_text())


def test_trivy_report_is_normalised_per_image():
    [image] = images_from_trivy(load("trivy-image.json"))
    assert image["image"] == "registry.example.com/shop/web:1.4.2"
    assert image["image_id"].startswith("sha256:3f2c7b1d")
    assert image["os"] == "debian 12.5" and image["tool"] == "trivy"
    assert image["counts"]["critical"] == 1 and image["counts"]["medium"] == 2
    by_id = {v["id"]: v for v in image["vulnerabilities"]}
    assert by_id["CVE-2024-2511"] == {
        "id": "CVE-2024-2511",
        "package": "libssl3",
        "installed": "3.0.11-1~deb12u2",
        "fixed": "3.0.13-1~deb12u1",
        "severity": "high",
        "published": "2024-04-08T14:15:07.66Z",
        "url": "https://avd.aquasec.com/nvd/cve-2024-2511",
    }
    assert by_id["CVE-2023-45853"]["fixed"] is None  # will_not_fix: no fixed version
    assert by_id["CVE-2024-35195"]["package"] == "requests"  # language packages count too


def test_grype_report_is_normalised_the_same_way():
    [image] = images_from_grype(load("grype-image.json"))
    assert image["image"] == "registry.example.com/shop/web:1.4.2" and image["tool"] == "grype"
    by_id = {v["id"]: v for v in image["vulnerabilities"]}
    assert by_id["CVE-2024-2511"]["fixed"] == "3.0.13-1~deb12u1"
    assert by_id["CVE-2024-2511"]["severity"] == "high"
    assert by_id["CVE-2023-45853"]["fixed"] is None  # wont-fix
    assert by_id["CVE-2024-2511"]["published"] is None  # grype reports carry no date


def test_clean_image_has_no_vulnerabilities():
    [image] = images_from_trivy(load("trivy-clean.json"))
    assert image["vulnerabilities"] == [] and sum(image["counts"].values()) == 0


@pytest.mark.parametrize(
    "parse, document",
    [
        (images_from_trivy, {"matches": []}),
        (images_from_grype, {"SchemaVersion": 2, "Results": []}),
        (images_from_trivy, ["not", "objects"]),
    ],
)
def test_wrong_format_is_refused(parse, document):
    with pytest.raises(ReportFormatError):
        parse(document)


def test_import_through_the_cli_judges_images_with_evidence(auditor_cli, tmp_path):
    report = tmp_path / "r.json"
    result = auditor_cli(
        "run",
        "--quiet",
        "--report",
        f"json:{report}",
        "--var",
        "max_scan_age_days=100000",
        "--import",
        f"trivy:{REPORTS / 'trivy-image.json'}",
        "--import",
        f"grype:{REPORTS / 'grype-image.json'}",
        "--target",
        f"trivy://{REPORTS / 'trivy-clean.json'}",
    )
    assert result.code == 0, result.err
    document = json.loads(report.read_text())
    verdicts = {
        (r["target"].rsplit("/", 1)[-1], r["check_id"]): r
        for r in document["results"]
        if r["target"] != "organisation"
    }
    fixable = verdicts[("trivy-image.json", "image.vulnerabilities.fixable")]
    assert fixable["status"] == "fail"
    assert fixable["subject"] == {
        "kind": "image",
        "name": "registry.example.com/shop/web:1.4.2 (3f2c7b1d9e8a)",
        "id": fixable["subject"]["id"],
        "location": None,
    }
    assert fixable["observed"]["overdue"] == [
        "CVE-2024-2511 libssl3 3.0.11-1~deb12u2 -> 3.0.13-1~deb12u1 (high)"
    ]
    assert len(fixable["evidence"]) == 1 and fixable["evidence"][0] in document["evidence"]
    assert verdicts[("grype-image.json", "image.vulnerabilities.fixable")]["status"] == "fail"
    assert verdicts[("trivy-clean.json", "image.vulnerabilities.fixable")]["status"] == "pass"
    assert verdicts[("trivy-image.json", "image.vulnerabilities.scan-fresh")]["status"] == "pass"


def test_a_report_that_cannot_be_read_stops_the_run_with_exit_2(auditor_cli, tmp_path):
    """A scanner report is the user's input: a broken one is not a target that merely
    errors (a gate could then pass), it is a usage error naming the file and line."""
    bad = tmp_path / "broken.json"
    bad.write_text('{"SchemaVersion": 2,\n "Results": [')
    good = f"trivy:{REPORTS / 'trivy-clean.json'}"
    result = auditor_cli("run", "-q", "--no-store", "--import", good, "--import", f"trivy:{bad}")
    assert result.code == 2
    assert "broken.json:2: not a trivy JSON report" in result.err


def test_bad_import_argument_is_a_usage_error(auditor_cli):
    result = auditor_cli("run", "--import", "clair:report.json")
    assert result.code == 2 and "bad --import 'clair:report.json'" in result.err


def test_reports_give_the_image_identity_as_docker_and_the_content_scan_do():
    """image_id, digests and layers as `docker inspect` (Id, RepoDigests, RootFS.Layers) and
    docker.image_contents give them, whatever form the tool wrote: a report can join both."""
    [trivy] = images_from_trivy(load("trivy-image.json"))
    assert (
        trivy["image_id"]
        == "sha256:3f2c7b1d9e8a4c5b6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c"
    )
    assert trivy["layers"] == [
        "sha256:5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c"
    ]
    grype = load("grype-image.json")
    target = grype["source"]["target"]
    target["imageID"] = target["imageID"].removeprefix("sha256:").upper()  # a bare hex form
    target["layers"] = [{"digest": trivy["layers"][0], "size": 1}]
    [image] = images_from_grype(grype)
    assert (image["image_id"], image["layers"]) == (trivy["image_id"], trivy["layers"])
    assert image["digests"] == trivy["digests"]
