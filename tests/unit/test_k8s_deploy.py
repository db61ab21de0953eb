"""The shipped read-only ClusterRole grants what the collector reads, read-only, and no more."""

from __future__ import annotations

from pathlib import Path

import yaml

from auditor.collectors.k8s_rbac import capabilities_of
from auditor.targets.kubernetes import RESOURCES

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "auditor-rbac.yaml"


def cluster_role() -> dict:
    documents = list(yaml.safe_load_all(MANIFEST.read_text()))
    [role] = [d for d in documents if d["kind"] == "ClusterRole"]
    [binding] = [d for d in documents if d["kind"] == "ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    return role


def test_the_role_lists_every_resource_the_collector_reads_and_nothing_else():
    granted = {
        (group, resource)
        for rule in cluster_role()["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    needed = {(r.group, r.plural) for r in RESOURCES.values()} | {("", "nodes/proxy")}
    assert granted == needed


def test_the_role_only_reads():
    for rule in cluster_role()["rules"]:
        allowed = {"get"} if rule["resources"] == ["nodes/proxy"] else {"get", "list", "watch"}
        assert set(rule["verbs"]) == allowed, rule


def test_the_role_cannot_read_secrets_or_escalate():
    assert capabilities_of(cluster_role()["rules"]) == {"nodes_proxy"}
