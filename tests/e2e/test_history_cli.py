"""`auditor run` stores every run; `runs list|show|prune` and `diff` read them back.

Two real audits of this machine with one change in between (a configuration file made
world-writable) must show exactly that change as drift.
"""

from __future__ import annotations

import json
import re

CHECK = "host.docker.config-file-perms"
HOSTILE = "web<script>alert(1)</script>"


def run_twice(auditor_cli, workdir):
    conf = workdir / "daemon.json"
    conf.write_text("{}\n")
    conf.chmod(0o644)
    inventory = workdir / "inventory.yaml"
    inventory.write_text(f'hosts:\n  "{HOSTILE}": {{url: "local://"}}\n')
    db = workdir / "store.db"
    args = [
        "run", "--quiet", "--db", str(db), "--inventory", str(inventory),
        "--report", f"json:{workdir / 'results.json'}",
        "--var", f"host_paths=[{conf}]", "--var", f"docker_config_files=[{conf}]",
    ]  # fmt: skip
    first = auditor_cli(*args)
    assert first.code in (0, 1), first.err
    conf.chmod(0o666)
    second = auditor_cli(*args)
    assert second.code in (0, 1), second.err
    return db, conf


def test_runs_diff_show_and_prune(auditor_cli, tmp_path):
    db, conf = run_twice(auditor_cli, tmp_path)

    listed = auditor_cli("runs", "list", "--db", str(db), "--format", "json")
    assert listed.code == 0, listed.err
    runs = json.loads(listed.out)
    assert [r["complete"] for r in runs] == [True, True]
    assert runs[0]["targets"] == [HOSTILE] and runs[0]["score"] is not None
    newer, older = runs[0]["id"], runs[1]["id"]

    diff = auditor_cli("diff", older[:8], "latest", "--db", str(db), "--format", "json")
    assert diff.code == 0, diff.err
    drift = json.loads(diff.out)
    assert (drift["a"]["id"], drift["b"]["id"]) == (older, newer)
    (failure,) = [e for e in drift["new_failures"] if e["check_id"] == CHECK]
    assert (failure["a"], failure["b"]) == ("pass", "fail")
    assert failure["subject"]["name"] == str(conf) and failure["target"] == HOSTILE
    assert "0666" in failure["message"]
    change = next(c for c in drift["evidence"] if c["fact"] == "host.file_modes")
    assert change["summary"]["changed"] == [str(conf)]
    control = next(r for r in drift["by_control"] if r["control"] == failure["control_id"])
    assert control["delta"] < 0
    target = next(r for r in drift["by_target"] if r["target"] == HOSTILE)
    assert target["delta"] < 0

    table = auditor_cli("diff", "latest~1", "latest", "--db", str(db))
    assert table.code == 0
    assert "New failures" in table.out and CHECK in table.out
    assert re.search(r"host\.file_modes: changed .*daemon\.json", table.out)

    html = auditor_cli("diff", "latest~1", "latest", "--db", str(db), "--format", "html")
    assert html.code == 0
    assert HOSTILE not in html.out  # target text is escaped, never markup
    assert "web&lt;script&gt;alert(1)&lt;/script&gt;" in html.out
    assert CHECK in html.out

    shown = auditor_cli("runs", "show", newer[:10], "--db", str(db), "--format", "json")
    document = json.loads(shown.out)
    assert document["run"]["id"] == newer and document["run"]["complete"] is True
    assert [h["run_id"] for h in document["history"]] == [older]
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["results"] == document["results"]  # the store gives back what run wrote
    assert [h["run_id"] for h in written["history"]] == [older]
    summary = auditor_cli("runs", "show", "latest", "--db", str(db))
    assert summary.code == 0 and "Score" in summary.out
    page = auditor_cli("runs", "show", "latest", "--db", str(db), "--format", "html")
    assert page.code == 0 and "<html" in page.out.lower() and HOSTILE not in page.out

    listed_html = auditor_cli("runs", "list", "--db", str(db), "--format", "html")
    assert "web&lt;script&gt;" in listed_html.out and HOSTILE not in listed_html.out

    pruned = auditor_cli("runs", "prune", "--keep", "1", "--db", str(db), "--format", "json")
    assert json.loads(pruned.out) == {"dry_run": False, "runs": [older]}
    remaining = json.loads(auditor_cli("runs", "list", "--db", str(db), "-f", "json").out)
    assert [r["id"] for r in remaining] == [newer]


def test_unknown_run_and_bad_store_are_one_line_errors(auditor_cli, tmp_path):
    db = tmp_path / "empty.db"
    result = auditor_cli("runs", "show", "deadbeef", "--db", str(db))
    assert result.code == 2
    assert result.err.splitlines()[0] == f"auditor: error: no run deadbeef in sqlite:///{db}"
    assert "Traceback" not in result.err
    result = auditor_cli("runs", "list", "--db", "mysql://nobody@127.0.0.1/x")
    assert result.code == 2 and "bad database URL" in result.err
    result = auditor_cli("runs", "prune", "--db", str(db))
    assert result.code == 2 and "--keep" in result.err


def test_a_default_store_that_cannot_open_costs_a_warning(
    auditor_cli, tmp_path, monkeypatch, closed_port
):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))  # the default store cannot be made
    monkeypatch.delenv("AUDITOR_DB", raising=False)
    target = ["--target", f"ssh://127.0.0.1:{closed_port}", "--connect-timeout", "2"]
    report = ["--report", f"json:{tmp_path / 'results.json'}"]
    result = auditor_cli("run", *target, *report)
    assert result.code == 3  # no target could be audited: the audit ran all the same
    assert "auditor: warning: this run is not stored: cannot create the database" in result.err
    named = auditor_cli("run", *target, *report, "--db", str(blocker / "auditor.db"))
    assert named.code == 2  # a store the user asked for must work
    assert "cannot create the database" in named.err


def test_a_default_store_failing_in_its_process_is_reported_after_the_reports(
    auditor_cli, tmp_path, monkeypatch, closed_port
):
    """The default store opens beside the audit, in the writer process (forked: it inherits
    this patch); an unexpected failure there is not lost."""
    import auditor.store

    def broken(url):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(auditor.store, "open_store", broken)
    monkeypatch.delenv("AUDITOR_DB", raising=False)
    results = tmp_path / "results.json"
    target = ["--target", f"ssh://127.0.0.1:{closed_port}", "--connect-timeout", "2"]
    result = auditor_cli("run", *target, "--report", f"json:{results}")
    assert results.exists()  # the reports were written first
    assert result.code == 2
    assert "the run could not be stored: RuntimeError: disk on fire" in result.err
