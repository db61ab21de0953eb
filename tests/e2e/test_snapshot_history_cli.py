"""Two stored audits of a manifest directory with one change in between (a container made
privileged): the second run's HTML report draws the trends per section and per severity, and
`auditor diff --format html` shows the file each changed subject came from."""

from __future__ import annotations

import re

from html_check import parse

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  template:
    spec:
      containers:
        - name: web
          image: nginx:1.27
          securityContext: {privileged: PRIVILEGED}
"""


def test_trends_and_the_diff_page_name_the_files(auditor_cli, tmp_path):
    manifests = tmp_path / "deploy"
    (manifests / "apps").mkdir(parents=True)
    manifest = manifests / "apps" / "web.yaml"
    db = tmp_path / "store.db"
    report = tmp_path / "report.html"
    args = ["run", "-q", "--db", str(db), "-t", f"k8s-snapshot://{manifests}",
            "-r", f"html:{report}"]  # fmt: skip
    manifest.write_text(DEPLOYMENT.replace("PRIVILEGED", "false"))
    assert auditor_cli(*args).code in (0, 1)
    manifest.write_text(DEPLOYMENT.replace("PRIVILEGED", "true"))
    assert auditor_cli(*args).code in (0, 1)

    page = parse(report.read_text())
    labels = [e.attrs.get("aria-label", "") for e in page.find("svg")]
    assert "Score by section over the last 2 runs" in labels
    assert "Failing results by severity over the last 2 runs" in labels
    # date and time (UTC) under the runs, this one marked
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \(this run\)", page.all_text)

    diff = auditor_cli("diff", "latest~1", "latest", "--db", str(db), "--format", "html")
    assert diff.code == 0, diff.err
    html = diff.out
    row = html[html.index("k8s.pod.no-privileged") :]
    row = row[: row.index("</tr>")]
    assert "shop/web" in row and '<code class="file">apps/web.yaml:1</code>' in row
