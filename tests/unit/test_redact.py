"""Secrets never survive redaction; ordinary values do."""

import re

import pytest

from auditor.redact import MARKER, redact, redact_text


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


def test_the_host_facts_that_describe_passwords_name_their_accounts():
    """The shadow and accounts facts list accounts by their password state: the evidence of
    `host.accounts.no-empty-passwords` must name `bob`, not a fingerprint of `bob`."""
    shadow = {"password_set": ["alice"], "empty_password": ["bob"], "locked": ["root"]}
    user = {"name": "bob", "password_state": "empty", "shell": "/bin/sh"}
    assert redact(shadow) is shadow and redact(user) is user
    leaked = {"empty_password": ["ghp_" + "a1B2" * 9]}  # a token's shape is still a token
    assert MARKER in redact(leaked)["empty_password"][0]
    assert MARKER in redact({"env": {"password": "bob"}})["env"]["password"]


# Issue 16: forms that reached the reports, the store and bundles in plaintext.
LEAKED = [
    ("postgres://admin:PLANTED1@db:5432/app", "PLANTED1", "postgres://admin:"),
    ("clone https://u:PLANTED2@git.example.org/x.git", "PLANTED2", "@git.example.org/x.git"),
    ("mysqld --password PLANTED3 --user=mysql", "PLANTED3", "--user=mysql"),
    ("/usr/bin/mysql -uroot -pPLANTED4 shop", "PLANTED4", "-uroot -p[REDACTED"),
    ("env PGPASSWORD=PLANTED5 psql -h db", "PLANTED5", "psql -h db"),
    ("token glpat-PLANTED6abcdefghijklmnop", "PLANTED6", "token "),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJQTEFOVEVENyJ9.PLANTED7signaturepart",
        "PLANTED7",
        "",
    ),
    ('app --config={"user": "app", "password": "PLANTED8 with spaces"}', "PLANTED8", "app"),
    ('app --config=\'{"db":{"password":"PLANTED9"}}\'', "PLANTED9", '"password":"[REDACTED'),
    ("ids AKIAIOSFODNN7EXAMPLE and Pl4nted10K7MDENG/bPxRfiCYEXAMPLEKEYzz+Q9", "Pl4nted10", "ids"),
]


@pytest.mark.parametrize(("text", "secret", "kept"), LEAKED)
def test_forms_that_leaked_are_redacted_and_their_context_kept(text, secret, kept):
    out = redact(text)
    assert secret not in out and MARKER in out
    assert kept in out


def test_an_aws_secret_key_under_an_innocuous_name():
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    out = redact({"env": [f"BLOB={key}"], "Config": {"Labels": {"checksum": key}}})
    assert key not in repr(out)
    assert out["env"][0].startswith("BLOB=[REDACTED fp=")


def test_argument_lists_redact_the_value_after_a_secret_flag():
    args = ["--db-password", "PLANTED11", "--verbose", "--token", "PLANTED12", "--port", "80"]
    out = redact({"Args": args})["Args"]
    assert "PLANTED11" not in out and "PLANTED12" not in out
    assert out[2:3] == ["--verbose"] and out[-2:] == ["--port", "80"]
    docker = redact({"Path": "mysql", "Args": ["-uroot", "-pPLANTED14"]})["Args"]
    assert docker[0] == "-uroot" and docker[1].startswith("-p[REDACTED fp=")
    mysql = redact({"command": ["mysql", "-uroot", "-pPLANTED13"]})["command"]
    assert mysql[:2] == ["mysql", "-uroot"] and mysql[2].startswith("-p[REDACTED fp=")
    # a path, a flag value and an option that only names a secret are not secrets
    plain = ["--password-file", "/run/secrets/db", "--token-ttl", "3600", "-p", "8080"]
    assert redact({"Args": plain})["Args"] == plain


@pytest.mark.parametrize(
    "text",
    [
        "git checkout da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a commit id is not a key
        "docker run -p8080:80 nginx",  # -p is a port outside the MySQL clients
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "https://registry.example.org:5000/v2/app",
        "COMPASS_HOME=/opt/compass",
        "pod-secretVolume-PASSED.yaml:12",  # a file and line, not a secret named secretVolume
        "ServiceAccountTokensFAILED.yaml:3",
        "eyJ is not a token",
    ],
)
def test_infrastructure_text_is_not_mistaken_for_secrets(text):
    assert redact(text) == text


def test_the_rules_are_detect_secrets_rules():
    """secret_rules.RULES is a verbatim copy of the installed detect-secrets' denylists."""
    from importlib.metadata import version

    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

    from auditor.secret_rules import RULE_SET, RULES

    plugins = {cls.__name__: cls for cls in get_mapping_from_secret_type_to_class().values()}
    for plugin in {rule.plugin for rule in RULES}:
        theirs = [(p.pattern, p.flags & ~re.UNICODE) for p in plugins[plugin]().denylist]
        ours = [(r.pattern, r.flags) for r in RULES if r.plugin == plugin]
        assert ours == theirs, plugin
    assert f"detect-secrets {version('detect-secrets')}" == RULE_SET


def test_log_lines_are_redacted():
    import logging

    from auditor.logs import RedactingFilter

    record = logging.LogRecord(
        "auditor.test", logging.DEBUG, __file__, 1, "connecting to %s with %s",
        ("postgres://a:PW9@db", "--password=hunter2x"), None,
    )  # fmt: skip
    RedactingFilter().filter(record)
    line = logging.Formatter("%(message)s").format(record)
    assert "PW9" not in line and "hunter2x" not in line
    assert line.startswith("connecting to postgres://") and "@db" in line


@pytest.mark.parametrize(
    "line",
    [
        "deploy ALL=(ALL) NOPASSWD: ALL",
        "%admin ALL=(ALL:ALL) PASSWD: /usr/bin/apt",
        "x NOPASSWD:ALL",
    ],
)
def test_sudoers_tags_are_not_passwords(line):
    assert redact_text("line", line) == line


@pytest.mark.parametrize(
    "location", ["bootstrap-token.yaml:12", "db-password.yaml:2", "secrets/api_token.json:7"]
)
def test_the_location_of_a_fact_item_is_a_place_not_a_secret(location):
    item = {"kind": "Pod", "location": location, "env": ["API_TOKEN=abc123"]}
    (clean,) = redact([item])
    assert clean["location"] == location
    assert list(clean) == list(item)  # key order kept
    assert MARKER in clean["env"][0] and "abc123" not in clean["env"][0]
    assert redact({"name": "x", "location": location})["location"] == location


def test_a_location_inside_target_data_is_still_judged():
    labels = {"Labels": {"location": "key=AKIAIOSFODNN7EXAMPLE"}}
    (clean,) = redact([labels])
    assert "AKIAIOSFODNN7EXAMPLE" not in clean["Labels"]["location"]
