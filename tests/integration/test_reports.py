"""Every report format from a real multi-target run, parsed, validated and looked at.

The run audits this machine (local://) and the test sshd (ssh://) with the real engine, and,
when their target schemes are registered, the test dockerd (containers made here, one with
hostile labels and a planted password) and Kubernetes snapshots (the checkov privileged
containers example, and a manifest with hostile annotations). The reports are kept in
artifacts/reports/ (report.* and the PNGs of the HTML rendered by headless Chromium and of
page 1 of the PDF rendered by pdftoppm, which must not be blank).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import xmlschema
import yaml
from html_check import parse
from PIL import Image
from report_docs import EVENT_HANDLER, HOSTILE, SCRIPT, SECRET, hostile_document
from schemas import oscal_errors

from auditor import document, engine
from auditor.config import TargetSpec
from auditor.model import TargetKind
from auditor.profiles import load_profile
from auditor.recorder import Recorder, RecordOptions
from auditor.reporters import FORMATS, ReportRequest, reporter_for, write
from auditor.targets import SCHEMES

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "reports"
DATA = ROOT / "tests" / "data"
CHECKOV = DATA / "k8s" / "manifests" / "checkov" / "example_PrivilegedContainers"
SUFFIX = {"html": "html", "pdf": "pdf", "json": "json", "junit": "xml", "sarif": "sarif",
          "oscal": "oscal.json", "csv": "csv", "markdown": "md", "terminal": "txt"}  # fmt: skip


def _hostile_manifest(directory: Path) -> Path:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "payments",
            "namespace": "shop",
            "annotations": {"note": HOSTILE, "owner": EVENT_HANDLER},
            "labels": {"app": "payments"},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example.com/payments:1.4",
                    "env": [{"name": "DB_PASSWORD", "value": SECRET}],
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    path = directory / "hostile.yaml"
    path.write_text(yaml.safe_dump(pod, allow_unicode=True))
    return path


@pytest.fixture(scope="module")
def docker_url(request):
    """A dockerd with three containers of our own (removed afterwards), or None when the
    docker:// scheme is not part of this build yet."""
    if "docker" not in SCHEMES:
        yield None
        return
    import docker
    from servers.dockerd import busybox_image

    daemon = request.getfixturevalue("dockerd_server")
    client = docker.DockerClient(base_url=daemon.base_url, timeout=60)
    image = busybox_image(client)
    prefix = f"reports-{secrets.token_hex(3)}"
    made = []
    try:
        made.append(
            client.containers.run(
                image, ["sleep", "3600"], name=f"{prefix}-web", detach=True, read_only=True,
                user="1000", labels={"app": "web", "tier": "frontend"}, mem_limit="64m",
            )
        )  # fmt: skip
        made.append(
            client.containers.create(
                image, ["sleep", "3600"], name=f"{prefix}-legacy", privileged=True,
                labels={"note": HOSTILE, "owner": EVENT_HANDLER},
                environment=[f"DB_PASSWORD={SECRET}", "MODE=legacy"],
            )
        )  # fmt: skip
        made.append(
            client.containers.create(image, ["sleep", "3600"], name=f"{prefix}-batch",
                                     cap_add=["SYS_PTRACE"], pid_mode="host")
        )  # fmt: skip
        yield f"docker://{daemon.base_url}"
    finally:
        for container in made:
            container.remove(force=True)
        client.close()


@pytest.fixture(scope="module")
def specs(sshd_server, docker_url, tmp_path_factory):
    targets = [
        TargetSpec(url="local://", name="this-machine"),
        TargetSpec(
            url=f"ssh://root@{sshd_server.host}:{sshd_server.port}",
            name="sshd-host",
            known_hosts=str(sshd_server.known_hosts_path),
            identity_files=(str(sshd_server.client_key_path),),
            ssh_config="/dev/null",
        ),
    ]
    if docker_url:
        targets.append(TargetSpec(url=docker_url, name="dockerd"))
    if "k8s-snapshot" in SCHEMES:
        hostile = tmp_path_factory.mktemp("manifests")
        _hostile_manifest(hostile)
        targets.append(TargetSpec(url=f"k8s-snapshot://{CHECKOV}", name="checkov-privileged"))
        targets.append(TargetSpec(url=f"k8s-snapshot://{hostile}", name="shop-cluster"))
    return targets


@pytest.fixture(scope="module")
def run_document(specs):
    profile = load_profile()
    recorder = Recorder(profile, [s.display_name for s in specs], RecordOptions(store=False))
    engine.run(profile, specs, recorder.target_done, concurrency=4)
    doc = recorder.complete()
    doc["history"] = [
        {"run_id": f"earlier-{i}", "finished_at": f"2026-11-{10 + i:02d}T06:00:00Z",
         "score": score, "coverage": coverage, "grade": None}
        for i, (score, coverage) in enumerate([(28.4, 70.2), (33.0, 74.9), (36.1, 76.0)])
    ]  # fmt: skip
    return doc


def _publish(path: Path) -> Path:
    """Keep a copy under artifacts/reports/. Each xdist worker renders into its own directory
    and publishes with an atomic rename, so workers never read each other's half-written
    files."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    staged = ARTIFACTS / f".{path.name}.{os.getpid()}"
    shutil.copyfile(path, staged)
    os.replace(staged, ARTIFACTS / path.name)
    return path


@pytest.fixture(scope="module")
def written(run_document, tmp_path_factory):
    """Every format written through the same path `--report` takes, and published."""
    out = tmp_path_factory.mktemp("reports")
    paths = {}
    for fmt in FORMATS:
        path = out / f"report.{SUFFIX[fmt]}"
        write(ReportRequest(fmt, str(path)), run_document)
        paths[fmt] = _publish(path)
    return paths


def test_the_run_audited_every_target(run_document, specs):
    targets = {t["name"]: t for t in run_document["targets"]}
    assert set(targets) == {s.name for s in specs}
    for name, target in targets.items():
        assert target["error"] is None, (name, target["error"])
        assert target["facts"], name
    kinds = Counter(t["kind"] for t in targets.values())
    assert kinds[TargetKind.HOST] == 2
    if "docker" in SCHEMES:
        assert kinds[TargetKind.DOCKER] == 1
    if "k8s-snapshot" in SCHEMES:
        assert kinds[TargetKind.KUBERNETES] == 2
    by_target = Counter((r["target"], r["status"]) for r in run_document["results"])
    for name in targets:
        assert by_target[(name, "pass")] + by_target[(name, "fail")] > 0, name
    assert sum(n for (t, s), n in by_target.items() if s == "fail") > 0


def test_json_is_the_canonical_document(written, run_document):
    assert json.loads(written["json"].read_text()) == json.loads(document.dumps(run_document))


def test_html_is_well_formed_and_complete(written, run_document):
    page = parse(written["html"].read_text())
    assert page.problems == []
    assert len(page.find("script")) == 1 and not [e for e in page.elements if "src" in e.attrs]
    text = page.all_text
    for target in run_document["targets"]:
        assert target["name"] in text
    for control in run_document["controls"]:
        assert page.find("article", id=f"control-{control['id']}")
    assert "Score by section" in [e.attrs.get("aria-label") for e in page.find("svg")]


def test_pdf_pages_and_text(written, run_document):
    info = subprocess.run(["pdfinfo", str(written["pdf"])], capture_output=True, text=True,
                          timeout=60, check=True).stdout  # fmt: skip
    pages = int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))
    text = subprocess.run(
        ["pdftotext", "-layout", str(written["pdf"]), "-"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert pages >= 10
    assert text.count("\f") == pages
    assert f"Page {pages} of {pages}" in text
    assert "Executive summary" in text and "Findings by control" in text
    assert f"Run {run_document['run']['id']}" in text
    for target in run_document["targets"]:
        assert target["name"] in text


def test_junit_against_both_schemas(written, run_document):
    for schema in ("JUnit.xsd", "junit-10.xsd"):
        xmlschema.XMLSchema(str(DATA / "schemas" / "junit" / schema)).validate(
            str(written["junit"])
        )
    root = ET.parse(written["junit"]).getroot()
    assert len(root.findall("testsuite/testcase")) == len(run_document["results"])


def test_sarif_against_the_schema(written):
    sarif = json.loads(written["sarif"].read_text())
    schema = json.loads((DATA / "schemas" / "sarif-schema-2.1.0.json").read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())
    assert [e.message for e in validator.iter_errors(sarif)] == []
    results = sarif["runs"][0]["results"]
    # only subjects in a file are results; the hosts' and daemons' are counted
    assert sarif["runs"][0]["properties"]["resultsWithoutFile"]["total"] > 0
    assert all(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results)
    if "k8s-snapshot" in SCHEMES:  # snapshot subjects point at their manifest and line
        assert results
        assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1
                   for r in results)  # fmt: skip


def test_oscal_against_the_official_schema(written, run_document):
    oscal = json.loads(written["oscal"].read_text())
    assert oscal_errors("assessment-results", oscal) == []
    findings = oscal["assessment-results"]["results"][0]["findings"]
    assert len(findings) == len(run_document["controls"])


def test_csv_and_markdown(written, run_document):
    rows = list(csv.DictReader(io.StringIO(written["csv"].read_text(), newline="")))
    assert len(rows) == len(run_document["results"])
    markdown = written["markdown"].read_text()
    assert markdown.startswith("## auditor:") and "Top failing checks" in markdown


def _not_blank(path: Path) -> None:
    with Image.open(path) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        white = sum(n for n, c in colours if min(c) >= 245)
        total = rgb.width * rgb.height
    assert len(colours) > 200, f"{path.name}: {len(colours)} colours"
    assert white < 0.9 * total, f"{path.name}: {white / total:.0%} white"


def test_html_rendered_by_chromium_is_not_blank(written, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "Debian's chromium is needed (scripts/setup-test-env.sh)"
    screenshot = tmp_path / "report-html.png"
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={tmp_path / 'chromium'}",
            f"--screenshot={screenshot}", "--window-size=1280,2000",
            written["html"].resolve().as_uri(),
        ],
        capture_output=True, timeout=180, check=True,
    )  # fmt: skip
    _not_blank(_publish(screenshot))


def test_pdf_page_one_is_not_blank(written, tmp_path):
    subprocess.run(
        ["pdftoppm", "-png", "-singlefile", "-r", "80", "-f", "1", "-l", "1",
         str(written["pdf"]), str(tmp_path / "report-pdf-page1")],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    _not_blank(_publish(tmp_path / "report-pdf-page1.png"))


def test_hostile_targets_stay_inert_in_every_format(specs, tmp_path):
    """Hostile text from the real Docker labels and manifest annotations, with the engine-built
    hostile host: every format valid, nothing executable, the planted password nowhere."""
    profile = load_profile()
    extra = tuple(
        engine.collect(profile, spec) for spec in specs if spec.name in ("dockerd", "shop-cluster")
    )
    doc = hostile_document(extra)
    assert SECRET not in json.dumps(doc)
    for fmt in FORMATS:
        content = reporter_for(fmt).render(doc)
        if fmt == "pdf":
            content = subprocess.run(
                ["pdftotext", "-", "-"], input=content, capture_output=True, timeout=120,
                check=True,
            ).stdout.decode()  # fmt: skip
        elif isinstance(content, bytes):  # JSON: UTF-8 bytes
            content = content.decode("utf-8")
        assert SECRET not in content, fmt
        if fmt == "html":
            page = parse(content)
            assert page.problems == [] and len(page.find("script")) == 1
            assert not page.find("img") and not page.find("textarea")
            assert SCRIPT not in content and "{{ 7*7 }}" in page.all_text
            if extra:
                assert "onerror=alert(2)" in page.all_text  # the label, as text
        if fmt == "junit":
            ET.fromstring(content)
        if fmt in ("json", "sarif", "oscal"):
            json.loads(content)
        if fmt == "oscal":
            assert oscal_errors("assessment-results", json.loads(content)) == []
