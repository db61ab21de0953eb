"""How to run the image secret rules over a file's bytes: the engines measured for issue 19.

The corpus is the Debian 12 root file system of the tests (tests/servers/debian.py, built
once by debootstrap and cached): its regular files up to 1 MiB, read into memory first so
that only matching is timed, plus one planted file per rule (the samples of
tests/unit/test_image_secrets.py). Each engine runs over the files that `should_read` keeps (the
classification is timed on its own) and must find what the rules one by one find:

- the Hyperscan database in prefilter mode, then the rules it reports (as shipped);
- every rule as its own Python regular expression (the fallback without Hyperscan);
- one compiled alternation of all rules, `re` (the brief's first suggestion);
- RE2's `Set` (google-re2, already a dependency) as the prefilter instead of Hyperscan.

Usage: python perf/secret_engines_perf.py [--repeat N] [--write]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import statistics
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import re2  # noqa: E402
from servers.debian import debian_rootfs_tar  # noqa: E402
from unit.test_image_secrets import SAMPLES  # noqa: E402

from auditor.collectors import image_secrets as scanner  # noqa: E402

Files = list[tuple[str, bytes]]


def corpus() -> Files:
    """The root file system's files, and one planted file per rule (the unit tests' samples,
    so that the engines' agreement is over findings, not over nothing)."""
    files = [(sample.path, sample.text.encode()) for sample in SAMPLES]
    with tarfile.open(debian_rootfs_tar(), "r|") as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isreg() else None
            if handle is not None and member.size <= 1024 * 1024:
                files.append(("/" + member.name.lstrip("./"), handle.read()))
    return files


def _prefilter_pattern(rule: scanner.SecretRule, *, re2_syntax: bool) -> bytes:
    pattern = rule.prefilter or rule.pattern
    if re2_syntax:  # RE2 has no look-ahead and caps repeats at 1000: a looser superset
        pattern = pattern.replace(rb"(?!\w)", b"")
        pattern = re.sub(rb"\{(\d+),(\d{4,})\}", rb"{\1,}", pattern)
    return (b"(?i:%s)" if rule.flags & re.IGNORECASE else b"(?:%s)") % pattern


def alternation() -> Callable[[bytes], int]:
    """All rules as one `re` alternation: how many matches (a prefilter would need them)."""
    combined = re.compile(
        b"|".join(_prefilter_pattern(rule, re2_syntax=False) for rule in scanner.CONTENT_RULES)
    )
    return lambda content: sum(1 for _ in combined.finditer(content))


def re2_set() -> Callable[[bytes], int]:
    options = re2.Options()
    options.max_mem = 64 << 20
    rules = re2.Set.SearchSet(options)
    for rule in scanner.CONTENT_RULES:
        rules.Add(_prefilter_pattern(rule, re2_syntax=True))
    rules.Compile()
    return lambda content: len(rules.Match(content) or ())


def timed(files: Files, search: Callable[[str, bytes], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        for path, content in files:
            search(path, content)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append to perf/RESULTS.md")
    options = parser.parse_args()
    files = corpus()
    started = time.perf_counter()
    readable = [(p, c) for p, c in files if scanner.should_read(p, len(c), c[:8])]
    classify = time.perf_counter() - started
    started = time.perf_counter()
    scanner._prefilter()
    compile_hs = time.perf_counter() - started
    with_prefilter = [sorted(scanner.find_secrets(p, c)) for p, c in readable]
    every_rule = [sorted(scanner.find_secrets(p, c, use_prefilter=False)) for p, c in readable]
    if with_prefilter != every_rule:
        raise SystemExit("the prefilter and the rules one by one disagree")
    found = sum(len(f) for f in with_prefilter)
    alternation_search, set_search = alternation(), re2_set()
    rows = [
        ("Hyperscan prefilter, then the rules it names (shipped)", timed(
            readable, scanner.find_secrets, options.repeat)),
        ("every rule, one Python regex each (fallback)", timed(
            readable, lambda p, c: scanner.find_secrets(p, c, use_prefilter=False),
            options.repeat)),
        ("one `re` alternation of all rules (matching only)", timed(
            readable, lambda p, c: alternation_search(c), options.repeat)),
        ("RE2 Set of all rules (prefilter only)", timed(
            readable, lambda p, c: set_search(c), options.repeat)),
    ]  # fmt: skip
    megabytes = sum(len(c) for _, c in readable) / 1e6
    lines = [
        "## Image secret rules: which engine (perf/secret_engines_perf.py)",
        "",
        f"{datetime.date.today().isoformat()}, this machine: {os.cpu_count()} cores, "
        f"{platform.platform()}, Python {platform.python_version()}; 1-minute load average "
        f"{os.getloadavg()[0]:.1f}. Corpus: the tests' Debian 12 root file system, "
        f"{len(files)} files up to 1 MiB ({len(SAMPLES)} of them planted secrets), "
        f"{sum(len(c) for _, c in files) / 1e6:.0f} MB; "
        f"`should_read` keeps {len(readable)} files, {megabytes:.1f} MB, in {classify:.2f} s. "
        f"{len(scanner.CONTENT_RULES)} content rules ({scanner.SCAN_RULES_VERSION}); the "
        f"Hyperscan database compiles in {compile_hs:.2f} s once per process. Findings: "
        f"{found} (the prefilter and the rules one by one agree). Median of {options.repeat}.",
        "",
        "| engine over the kept files | time | MB/s |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.3f} s | {megabytes / seconds:.0f} |" for name, seconds in rows]
    lines.append("")
    table = "\n".join(lines)
    sys.stdout.write(table)
    if options.write:
        with (ROOT / "perf" / "RESULTS.md").open("a", encoding="utf-8") as out:
            out.write("\n" + table)


if __name__ == "__main__":
    main()
