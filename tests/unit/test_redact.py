"""Secrets never survive redaction; ordinary values do."""

import pytest

from auditor.redact import MARKER, redact


@pytest.mark.parametrize(
    "value",
    [
        "DB_PASSWORD=hunter2",
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "key=AKIAIOSFODNN7EXAMPLE",
        "mysqld --user=mysql --password=hunter2",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----",
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc",
    ],
)
def test_secret_values_are_redacted(value):
    out = redact(value)
    assert MARKER in out
    for secret in ("hunter2", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE", "MIIEow", "eyJhbGci"):
        assert secret not in out


def test_names_are_kept_and_fingerprints_are_stable():
    first = redact({"env": ["API_TOKEN=abc123"]})["env"][0]
    again = redact({"env": ["API_TOKEN=abc123"]})["env"][0]
    other = redact({"env": ["API_TOKEN=zzz999"]})["env"][0]
    assert first.startswith("API_TOKEN=[REDACTED fp=")
    assert first == again
    assert first != other


@pytest.mark.parametrize(
    "value", ["PATH=/usr/bin", "PASSWORD_FILE=/run/secrets/db", "ENABLE_TOKEN=true", "HOME=/root"]
)
def test_ordinary_values_are_kept(value):
    assert redact(value) == value


def test_kubernetes_env_pairs_and_maps():
    data = {
        "env": [{"name": "DB_PASS", "value": "s3cret"}, {"name": "MODE", "value": "prod"}],
        "labels": {"api-key": "k-123", "app": "web"},
    }
    out = redact(data)
    assert MARKER in out["env"][0]["value"] and out["env"][1]["value"] == "prod"
    assert MARKER in out["labels"]["api-key"] and out["labels"]["app"] == "web"


def test_the_same_text_is_judged_by_how_it_is_named_and_the_input_is_never_changed():
    data = {
        "pods": [
            {"env": [{"name": "DB_PASS", "value": "s3cret"}], "value": "s3cret"},
            {"env": [{"name": "MODE", "value": "s3cret"}], "PASSWORD": "s3cret"},
        ]
    }
    before = repr(data)
    out = redact(data)
    first, second = out["pods"]
    assert MARKER in first["env"][0]["value"] and first["value"] == "s3cret"
    assert second["env"][0]["value"] == "s3cret" and MARKER in second["PASSWORD"]
    assert repr(data) == before  # redaction copies what it changes


def test_data_without_secrets_comes_back_as_it_is():
    data = {"pods": [{"image": "nginx:1.27", "env": ["MODE=prod"], "ports": [80]}]}
    assert redact(data) is data


def test_texts_known_clean_from_earlier_passes_keep_no_secret():
    """Clean texts are remembered across passes (a fleet repeats them); secrets are not, and a
    text judged clean under one name is still judged again under a secret name."""
    from auditor import redact as module

    module._CLEAN.clear()
    assert redact({"MODE": "s3cret"}) == {"MODE": "s3cret"}
    assert (False, "MODE", "s3cret") in module._CLEAN
    out = redact({"PASSWORD": "s3cret", "MODE": "s3cret"})
    assert MARKER in out["PASSWORD"] and out["MODE"] == "s3cret"
    assert MARKER in redact({"PASSWORD": "s3cret"})["PASSWORD"]  # a second pass: same answer
    assert not any("PASSWORD" in key[1] for key in module._CLEAN)
    module._CLEAN.clear()


def test_package_names_are_not_secret_names_but_a_secret_shaped_version_still_is():
    """passwd, base-passwd and pass are packages: their versions are evidence (the security
    update checks compare them), not passwords."""
    data = {
        "manager": "dpkg",
        "packages": {
            "passwd": "1:4.13+dfsg1-1+deb12u1",
            "base-passwd": "3.6.1",
            "pass": "1.7.4-6",
            "odd": "AKIAIOSFODNN7EXAMPLE",
        },
        "duplicates": {"base-passwd": ["3.6.1", "3.6.0"]},
    }
    out = redact(data)
    assert out["packages"]["passwd"] == "1:4.13+dfsg1-1+deb12u1"
    assert out["packages"]["base-passwd"] == "3.6.1" and out["packages"]["pass"] == "1.7.4-6"
    assert out["duplicates"] == {"base-passwd": ["3.6.1", "3.6.0"]}
    assert MARKER in out["packages"]["odd"]
    assert MARKER in redact({"config": {"passwd": "hunter2"}})["config"]["passwd"]
