"""The engine judging many targets: what one target's facts decide never leaks to another's."""

from __future__ import annotations

from dataclasses import replace

from auditor import engine
from auditor.config import TargetSpec
from auditor.facts import new_fact
from auditor.judging import Judging
from auditor.model import Status, TargetKind, TargetRecord
from auditor.profiles import load_profile


def _verdicts(
    profile, record: TargetRecord, judging: Judging | None = None
) -> dict[tuple[str, str], tuple[Status, str]]:
    results = engine.evaluate(profile, record, profile.variables, judging=judging)
    return {(r.check_id, r.subject.name): (r.status, r.message) for r in results}


def test_targets_with_equal_facts_are_judged_alike_and_each_on_its_own() -> None:
    """A host whose package list differs is judged on its own packages, and each host's own
    name is the subject's; judging the first host again gives its own verdicts back."""
    profile = load_profile()
    first = engine.collect(profile, TargetSpec(url="local://"))
    twin = replace(first, name="twin")
    packages = next(f for f in first.facts if f.name == "host.packages")
    listed = {**packages.data["packages"], "telnetd": "0.17-44"}
    changed = new_fact(
        "host.packages", "other", {**packages.data, "packages": listed}, source=packages.source
    )
    other = replace(
        first,
        name="other",
        facts=tuple(changed if f.name == "host.packages" else f for f in first.facts),
    )
    judging = Judging()
    mine, twins, others = (_verdicts(profile, r, judging) for r in (first, twin, other))
    rename = {
        (check, "twin" if name == "local://" else name): v for (check, name), v in mine.items()
    }
    assert twins == rename
    key = ("host.pkg.no-server-software", "other")
    assert others[key][0] is Status.FAIL and "telnetd" in others[key][1]
    assert "telnetd" not in mine[("host.pkg.no-server-software", "local://")][1]
    assert _verdicts(profile, first, judging) == mine


def test_output_that_cannot_be_read_makes_the_target_an_error(monkeypatch) -> None:
    """The host output is parsed after the connection is closed; a failure there is the
    target's error, named, and every check of it an error result, never a pass."""
    from auditor.collectors import host

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(host, "split_output", broken)
    profile = load_profile()
    record = engine.collect(profile, TargetSpec(url="local://"))
    assert record.error == "internal error: RuntimeError: boom" and record.facts == ()
    results = engine.evaluate(profile, record, profile.variables)
    assert results and {r.status for r in results} == {Status.ERROR}


def _file(path: str, owner: str, mode: str) -> dict[str, object]:
    return {
        **dict.fromkeys(("link", "resolved", "error")),
        **{"path": path, "exists": True, "type": "file", "mode": mode, "uid": 0, "gid": 0},
        **{"owner": owner, "group": owner},
    }


def test_a_check_is_judged_only_on_the_subjects_its_where_selects() -> None:
    """Of a host's file modes, the host-key check judges the private key alone (no result for
    /etc/passwd, which is not its business), and a check none of them is about is one skip
    on the host, not one per file; the worker processes' strategy gives the same results."""
    profile = load_profile()
    modes = [
        _file("/etc/ssh/ssh_host_ed25519_key", "root", "0644"),
        _file("/etc/passwd", "root", "0644"),
        _file("/etc/shadow", "root", "0640"),
    ]
    fact = new_fact("host.file_modes", "h", modes, source="stat")
    record = TargetRecord("h", "ssh://h", TargetKind.HOST, "t", "t", facts=(fact,))
    results = engine.evaluate(profile, record, profile.variables)
    keys = [r for r in results if r.check_id == "host.sshd.host-key-perms"]
    assert [(r.subject.name, r.status) for r in keys] == [
        ("/etc/ssh/ssh_host_ed25519_key", Status.FAIL)
    ]
    pub = [r for r in results if r.check_id == "host.sshd.host-pubkey-perms"]
    assert [(r.subject.kind, r.subject.name, r.status, r.message) for r in pub] == [
        ("host", "h", Status.SKIP, "not applicable to any of 3 host.file_modes subjects")
    ]
    assert pub[0].evidence == (fact.sha256,)
    file_checks = {c.id for c in profile.checks if c.check.for_each == "host.file_modes"}
    judged = [r for r in results if r.check_id in file_checks]
    assert len(judged) < 3 * len(file_checks)  # at most the files each check is about
    with engine.judging_for(1) as pool:
        assert engine.evaluate(profile, record, profile.variables, judging=pool) == results
