"""Results a profile variable exempts (`skip` with "exempt by vars.NAME"), for every report:
an exemption is a decision someone made, so reports name it instead of folding it into
"not applicable"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

EXEMPT_BY = "exempt by vars."
SUBJECTS_SHOWN = 10


@dataclass(frozen=True)
class Exemption:
    """What one variable exempted in a run: how many results, of which checks, which subjects
    (the first SUBJECTS_SHOWN, `target: kind name`)."""

    variable: str  # "vars.k8s_system_namespaces"
    results: int
    checks: tuple[str, ...]
    subjects: tuple[str, ...]
    more_subjects: int


def exempting_variable(result: dict[str, Any]) -> str | None:
    """ "vars.NAME" when a variable exempts the result's subject, else None."""
    message = str(result.get("message") or "")
    if result.get("status") == "skip" and message.startswith(EXEMPT_BY):
        return message.removeprefix("exempt by ")
    return None


def exemptions(results: Iterable[dict[str, Any]]) -> list[Exemption]:
    """The run's exemptions, by variable name."""
    counts: dict[str, int] = defaultdict(int)
    checks: dict[str, dict[str, None]] = defaultdict(dict)
    subjects: dict[str, dict[str, None]] = defaultdict(dict)
    for result in results:
        variable = exempting_variable(result)
        if variable is None:
            continue
        counts[variable] += 1
        checks[variable][result["check_id"]] = None
        subject = result["subject"]
        subjects[variable][f"{result['target']}: {subject['kind']} {subject['name']}"] = None
    return [
        Exemption(
            variable=variable,
            results=counts[variable],
            checks=tuple(sorted(checks[variable])),
            subjects=tuple(list(subjects[variable])[:SUBJECTS_SHOWN]),
            more_subjects=max(0, len(subjects[variable]) - SUBJECTS_SHOWN),
        )
        for variable in sorted(counts)
    ]
