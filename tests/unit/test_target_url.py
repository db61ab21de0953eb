"""Target URLs are parsed once, into the parts each target class reads."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest

from auditor import target_url
from auditor.config import TargetSpec
from auditor.errors import InventoryError
from auditor.target_url import TargetUrl, parse_target_url
from auditor.targets import SCHEMES


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("local://", TargetUrl("local", "")),
        ("ssh://ops@web-1.example:2222", TargetUrl("ssh", "ops@web-1.example:2222",
                                                    "web-1.example", "ops", 2222)),
        ("SSH://a%40b@[::1]", TargetUrl("ssh", "a%40b@[::1]", "::1", "a@b", None)),
        ("docker://", TargetUrl("docker", "")),
        ("docker:///run/docker.sock", TargetUrl("docker", "/run/docker.sock",
                                                daemon="unix:///run/docker.sock")),
        ("docker://tcp://10.0.0.5:2376", TargetUrl("docker", "tcp://10.0.0.5:2376", "10.0.0.5",
                                                   None, 2376, "tcp://10.0.0.5:2376")),
        ("docker+ssh://ops@build-1", TargetUrl("docker+ssh", "ops@build-1", "build-1", "ops",
                                               None, "ssh://ops@build-1")),
        ("k8s://kind%2Fdev", TargetUrl("k8s", "kind%2Fdev")),
        ("k8s-snapshot://deploy/k8s", TargetUrl("k8s-snapshot", "deploy/k8s")),
        ("trivy://scan.json", TargetUrl("trivy", "scan.json")),
    ],
)  # fmt: skip
def test_each_scheme_gives_the_parts_its_target_reads(url: str, parts: TargetUrl) -> None:
    assert parse_target_url(url) == parts


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("web-1", "expected SCHEME://"),
        ("ftp://x", "unknown target scheme 'ftp'"),
        ("local://x", "local:// takes nothing after it"),
        ("ssh://[::1", "bad port or address"),
        ("ssh://host/path", "a path, query or fragment means nothing here"),
        ("ssh://" + "a" * 300, "not a DNS name or an IP address"),
        ("k8s-snapshot://", "k8s-snapshot://FILE-OR-DIRECTORY"),
        ("grype:// ", "grype://REPORT.json"),
    ],
)
def test_a_bad_url_says_why(url: str, reason: str) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_target_url(url)
    assert reason in raised.value.reason


def test_a_spec_parses_its_url_once_and_keeps_the_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = target_url.parse_target_url

    def counted(url: str) -> TargetUrl:
        calls.append(url)
        return real(url)

    monkeypatch.setattr("auditor.config.parse_target_url", counted)
    spec = TargetSpec(url="ssh://ops@web-1")
    assert spec.address.host == spec.address.host == "web-1"
    assert pickle.loads(pickle.dumps(spec)).address.user == "ops"  # travels to worker processes
    assert calls == ["ssh://ops@web-1"]
    assert replace(spec, url="ssh://web-2").address.host == "web-2"  # a new URL, parsed anew
    assert spec == TargetSpec(url="ssh://ops@web-1")  # the parts are not part of equality


def test_the_parser_knows_exactly_the_schemes_that_have_a_target_class() -> None:
    assert set(target_url.SCHEMES) == set(SCHEMES)
