"""How tall the HTML report is, laid out by headless Chromium, and what its first screen holds.

    python perf/report_height.py                # this host + the labelled manifests
    python perf/report_height.py --html FILE    # measure an existing report instead

The run is the one the tests use: `auditor run --no-store -t local:// -t
k8s-snapshot://tests/data/k8s/manifests` (this machine, and the 297 labelled real-world
resources). The page is measured at 1280 x 900 and 1920 x 1080 CSS pixels over the DevTools
protocol (tests/browser.py); the numbers go to perf/RESULTS.md by hand.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import browser  # noqa: E402

MANIFESTS = ROOT / "tests" / "data" / "k8s" / "manifests"
WINDOWS = ((1280, 900), (1920, 1080))


def report(directory: Path) -> Path:
    html = directory / "report.html"
    subprocess.run(
        [sys.executable, "-m", "auditor", "run", "-q", "--no-store",
         "-t", "local://", "-t", f"k8s-snapshot://{MANIFESTS}",
         "-r", f"json:{directory / 'results.json'}", "-r", f"html:{html}"],
        cwd=ROOT, check=False, timeout=600,
    )  # fmt: skip
    return html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, help="measure this report instead of a new run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auditor-height-") as tmp:
        html = args.html or report(Path(tmp))
        lines = [
            f"{html.name}: {html.stat().st_size:,} bytes",
            "| window | page height | screens | control table bottom |",
            "|---|---:|---:|---:|",
        ]
        for width, height in WINDOWS:
            measured = browser.layout(html, (".status-table",), width, height)
            table = measured.boxes[".status-table"]
            bottom = f"{table['bottom']:,.0f} px" if table else "no control table"
            screens = measured.page_height / height
            lines.append(
                f"| {width} x {height} | {measured.page_height:,} px | {screens:,.1f} | {bottom} |"
            )
        sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
