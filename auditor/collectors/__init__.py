"""Collectors gather facts for one kind of target; this maps kinds to them, importing lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from functools import cache
from typing import Any, Protocol

from auditor.facts import FactSpec
from auditor.model import Fact, TargetKind

# The prefix of a kind's fact names: host.sysctl, docker.containers, k8s.pods.
FACT_PREFIX: Mapping[TargetKind, str] = {
    TargetKind.HOST: "host",
    TargetKind.DOCKER: "docker",
    TargetKind.KUBERNETES: "k8s",
    TargetKind.SCAN: "scan",
}

_COLLECTORS: Mapping[TargetKind, str] = {
    TargetKind.HOST: "auditor.collectors.host:HostCollector",
    TargetKind.DOCKER: "auditor.collectors.docker:DockerCollector",
    TargetKind.KUBERNETES: "auditor.collectors.kubernetes:KubernetesCollector",
    TargetKind.SCAN: "auditor.collectors.scanners:ScanReportCollector",
}


class Collector(Protocol):
    """Gathers the named facts from a connected target. Never judges compliance; a fact it
    cannot gather comes back with `error` set, never missing and never empty.

    `collect` may hand back, instead of the facts, a function that makes them from what the
    target gave (the host script's output): the engine calls it once the target is closed."""

    facts: Mapping[str, FactSpec]

    def collect(
        self, target: Any, names: Collection[str], variables: Mapping[str, Any]
    ) -> dict[str, Fact] | Callable[[], dict[str, Fact]]: ...


@cache
def collector_for(kind: TargetKind) -> Collector:
    """The collector of `kind`, imported on first use."""
    module_name, _, attr = _COLLECTORS[kind].partition(":")
    collector: Collector = getattr(importlib.import_module(module_name), attr)()
    return collector


def fact_specs(kind: TargetKind) -> Mapping[str, FactSpec]:
    """Every fact a kind of target can give, by full name; empty for kinds not built yet."""
    if kind not in _COLLECTORS:
        return {}
    return collector_for(kind).facts


def kind_of_fact(name: str) -> TargetKind | None:
    prefix = name.split(".", 1)[0]
    for kind, known in FACT_PREFIX.items():
        if known == prefix:
            return kind
    return None
