"""Drift between two runs: what failed anew, what was fixed, what evidence changed.

Pure: two results documents in, one diff out (`auditor diff` renders it as a table, JSON
or HTML). A result is identified across runs by (check, target, subject kind and name);
`fail` and `error` both count as failing (an error is never a pass).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from auditor.facts import canonical_json
from auditor.model import fact_data

FAILING = frozenset({"fail", "error"})
NOT_APPLICABLE = frozenset({"skip", None})
CATEGORIES = (
    "new_failures",
    "fixed",
    "still_failing",
    "newly_applicable",
    "no_longer_applicable",
    "changed",
)
_IDENTITY_KEYS = ("path", "name", "Name", "id", "Id", "target", "pid")
_LIST_LIMIT = 20  # items shown per changed fact
_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


def _key(result: Mapping[str, Any]) -> tuple[str, str, str, str]:
    subject = result["subject"]
    return (result["check_id"], result["target"], subject["kind"], subject["name"])


def _indexed(results: Iterable[Mapping[str, Any]]) -> dict[tuple[Any, ...], Mapping[str, Any]]:
    """Results by key; repeated keys (two subjects of one name) get an occurrence number."""
    seen: Counter[tuple[str, str, str, str]] = Counter()
    out: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for result in results:
        key = _key(result)
        out[(*key, seen[key])] = result
        seen[key] += 1
    return out


def category(before: str | None, after: str | None) -> str | None:
    """Where a result moving from status `before` to `after` goes (None: unchanged)."""
    if after in FAILING:
        return "still_failing" if before in FAILING else "new_failures"
    if before in FAILING:
        if after == "pass":
            return "fixed"
        return "no_longer_applicable" if after in NOT_APPLICABLE else "changed"
    if before in NOT_APPLICABLE and after in NOT_APPLICABLE:
        return None
    if before in NOT_APPLICABLE:
        return "newly_applicable"
    if after in NOT_APPLICABLE:
        return "no_longer_applicable"
    return "changed" if before != after else None


def compare(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The drift from run `a` (earlier) to run `b` (later)."""
    # a target not audited in either run has no results there to compare: it is listed once
    down = {t["target"] for doc in (a, b) for t in doc.get("not_audited", [])}
    old = _indexed(r for r in a["results"] if r["target"] not in down)
    new = _indexed(r for r in b["results"] if r["target"] not in down)
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in CATEGORIES}
    for key in [*old, *(k for k in new if k not in old)]:
        before, after = old.get(key), new.get(key)
        where = category(before["status"] if before else None, after["status"] if after else None)
        if where is not None:
            found[where].append(_entry(before, after))
    for entries in found.values():
        entries.sort(key=lambda e: (_SEVERITY_ORDER.get(e["severity"], 9), e["check_id"]))
    return {
        "a": _run(a),
        "b": _run(b),
        "score": _delta(a["score"]["overall"], b["score"]["overall"]),
        "counts": {name: len(entries) for name, entries in found.items()},
        **found,
        "by_target": _deltas(a["score"]["by_target"], b["score"]["by_target"], "target"),
        "by_control": _deltas(a["score"]["by_control"], b["score"]["by_control"], "control"),
        "targets": {
            "added": sorted({t["name"] for t in b["targets"]} - {t["name"] for t in a["targets"]}),
            "removed": sorted(
                {t["name"] for t in a["targets"]} - {t["name"] for t in b["targets"]}
            ),
            "not_audited_a": sorted(t["target"] for t in a.get("not_audited", [])),
            "not_audited_b": sorted(t["target"] for t in b.get("not_audited", [])),
        },
        "evidence": _evidence(a, b),
    }


def mismatches(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(what makes the two runs incomparable, what only deserves a warning): a different
    profile, version, overlays, disabled checks or view is the first kind, as is having no
    target in common; targets only one run covers are the second."""
    blocking = []
    for label, before, after in (
        (label, _judged_by(a["run"])[label], _judged_by(b["run"])[label])
        for label in ("profile", "profile version", "overlays", "disabled checks", "view")
    ):
        if before != after:
            blocking.append(f"{label} differs: {_shown(before)} in A, {_shown(after)} in B")
    names_a = {t["name"] for t in a["targets"]}
    names_b = {t["name"] for t in b["targets"]}
    warnings = []
    if names_a and names_b and not names_a & names_b:
        blocking.append("A and B have no target in common")
    elif names_a != names_b:
        only_a, only_b = sorted(names_a - names_b), sorted(names_b - names_a)
        warnings.append(
            "A and B cover different targets"
            + (f"; only in A: {', '.join(only_a)}" if only_a else "")
            + (f"; only in B: {', '.join(only_b)}" if only_b else "")
        )
    return blocking, warnings


def _judged_by(run: Mapping[str, Any]) -> dict[str, Any]:
    """What decided a run's verdicts, besides the targets' facts."""
    profile = run["profile"]
    return {
        "profile": profile["id"],
        "profile version": profile["version"],
        "overlays": profile.get("overlays") or [],
        "disabled checks": profile.get("disabled_checks") or [],
        "view": run.get("view") or profile.get("view"),
    }


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "none"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _run(doc: Mapping[str, Any]) -> dict[str, Any]:
    run = doc["run"]
    overall = doc["score"]["overall"]
    return {
        "id": run["id"],
        "started_at": run["started_at"],
        "finished_at": run["finished_at"],
        "complete": run["complete"],
        "profile": f"{run['profile']['id']} {run['profile']['version']}",
        "score": overall["value"],
        "grade": overall["grade"],
        "coverage": overall["coverage"],
    }


def _entry(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    latest = after or before
    assert latest is not None
    return {
        "check_id": latest["check_id"],
        "control_id": latest["control_id"],
        "title": latest["title"],
        "severity": latest["severity"],
        "target": latest["target"],
        "subject": {
            "kind": latest["subject"]["kind"],
            "name": latest["subject"]["name"],
            "location": latest["subject"].get("location"),  # file:line in a snapshot
        },
        "a": before["status"] if before else None,
        "b": after["status"] if after else None,
        "message": latest["message"],
    }


def _minus(b: float | None, a: float | None) -> float | None:
    return None if a is None or b is None else round(b - a, 1)


def _delta(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    a, b = a or {}, b or {}
    return {
        "a": a.get("value"),
        "b": b.get("value"),
        "delta": _minus(b.get("value"), a.get("value")),
        "coverage_a": a.get("coverage"),
        "coverage_b": b.get("coverage"),
        "coverage_delta": _minus(b.get("coverage"), a.get("coverage")),
    }


def _deltas(
    a: Mapping[str, Mapping[str, Any]], b: Mapping[str, Mapping[str, Any]], label: str
) -> list[dict[str, Any]]:
    """One row per target or control in either run, biggest drop first."""
    rows = [{label: name, **_delta(a.get(name), b.get(name))} for name in sorted({*a, *b})]
    rows.sort(key=lambda r: r["delta"] if r["delta"] is not None else 0.0)
    return rows


def _evidence(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Facts whose evidence differs between the runs, per target present in both."""
    old_targets = {t["name"]: t for t in a["targets"]}
    changes = []
    for target in b["targets"]:
        before_target = old_targets.get(target["name"])
        if before_target is None:
            continue
        before = {f["name"]: f for f in before_target["facts"]}
        after = {f["name"]: f for f in target["facts"]}
        for name in sorted({*before, *after}):
            was, now = before.get(name), after.get(name)
            was_sha = was["sha256"] if was and was["error"] is None else None
            now_sha = now["sha256"] if now and now["error"] is None else None
            if was_sha == now_sha:
                continue
            change: dict[str, Any] = {
                "target": target["name"],
                "fact": name,
                "a": was_sha,
                "b": now_sha,
                "error_a": was["error"] if was else "not collected",
                "error_b": now["error"] if now else "not collected",
            }
            if was_sha and now_sha:
                change["summary"] = summarise(
                    fact_data(a["evidence"].get(was_sha)), fact_data(b["evidence"].get(now_sha))
                )
            changes.append(change)
    return changes


def summarise(before: Any, after: Any) -> dict[str, Any]:
    """A short, bounded description of how a fact's data changed."""
    if isinstance(before, list) and isinstance(after, list):
        return _list_change(before, after)
    if isinstance(before, dict) and isinstance(after, dict):
        changed = sorted(k for k in before.keys() & after.keys() if before[k] != after[k])
        return {
            "added": sorted(after.keys() - before.keys())[:_LIST_LIMIT],
            "removed": sorted(before.keys() - after.keys())[:_LIST_LIMIT],
            "changed": changed[:_LIST_LIMIT],
        }
    return {"added": [], "removed": [], "changed": ["(value)"]}


def _identity(*lists: list[Any]) -> str | None:
    """The key naming the items of lists of objects (`path` for files, `name` ...): present
    in every item and unique within each list."""
    if not all(isinstance(item, dict) for items in lists for item in items):
        return None
    for key in _IDENTITY_KEYS:
        for items in lists:
            values = [item.get(key) for item in items]
            if not all(isinstance(v, str | int) for v in values) or len(set(values)) < len(values):
                break
        else:
            return key
    return None


def _list_change(before: list[Any], after: list[Any]) -> dict[str, Any]:
    key = _identity(before, after) if before and after else None
    if key is None:
        old = Counter(canonical_json(item) for item in before)
        new = Counter(canonical_json(item) for item in after)
        return {
            "added": [f"{n} item(s)" for n in [sum((new - old).values())] if n],
            "removed": [f"{n} item(s)" for n in [sum((old - new).values())] if n],
            "changed": [],
        }
    old_items = {str(item[key]): item for item in before}
    new_items = {str(item[key]): item for item in after}
    changed = sorted(k for k in old_items.keys() & new_items.keys() if old_items[k] != new_items[k])
    return {
        "added": sorted(new_items.keys() - old_items.keys())[:_LIST_LIMIT],
        "removed": sorted(old_items.keys() - new_items.keys())[:_LIST_LIMIT],
        "changed": changed[:_LIST_LIMIT],
    }
