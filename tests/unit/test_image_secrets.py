"""The image secret scanner: every rule on a realistic sample, the Hyperscan prefilter finding
what the rules alone find, redaction, placeholders, and which files are read at all."""

from __future__ import annotations

import fnmatch
import io
import platform
import random
import re
import string
import sys
import tarfile
import threading
from typing import NamedTuple

import pytest

from auditor.collectors import docker_image
from auditor.collectors import image_secrets as scanner
from auditor.redact import fingerprint

_ALNUM = string.ascii_letters + string.digits


def _word(seed: int, length: int, alphabet: str = _ALNUM) -> str:
    """A random-looking token (seeded: the same every run); assembled here so that no secret
    scanner mistakes this file for a leak."""
    chooser = random.Random(seed)
    return "".join(chooser.choice(alphabet) for _ in range(length))


class Sample(NamedTuple):
    kind: str
    path: str
    text: str
    value: str  # what the fingerprint is taken of


UPPER = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"
B64 = _ALNUM + "+/"
PEM_BODY = "\n".join(_word(90 + i, 70, B64) for i in range(4))
PEM = f"-----BEGIN {'OPENSSH'} PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----"
AWS_ID = "AKIA" + _word(1, 16, UPPER)
AWS_SECRET = _word(2, 40, B64)
AZURE = _word(3, 86, _ALNUM) + "=="
URL_PASSWORD = _word(4, 14)
DISCORD = "M" + _word(5, 23) + "." + _word(6, 6) + "." + _word(7, 27)
GITHUB = "ghp_" + _word(8, 36)
GITLAB = "glpat-" + _word(9, 20)
GITLAB_RUNNER = "GR1348941" + _word(10, 20)
GITLAB_CBT = "glcbt-" + "1f_" + _word(11, 24)
GITLAB_IMT = "glimt-" + _word(12, 25)
GITLAB_PTT = "glptt-" + _word(13, 40)
GITLAB_AGENT = "glagent-" + _word(14, 50)
GITLAB_OAS = "gloas-" + _word(15, 64)
JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
JWT_BODY = "eyJzdWIiOiJkZXBsb3kiLCJpYXQiOjE3MDAwMDAwMDB9"
MAILCHIMP = _word(16, 32, HEX) + "-us14"
NPM = "npm_" + _word(17, 36)
OPENAI = "sk-proj-" + _word(18, 20) + "T3BlbkFJ" + _word(19, 20)
PYPI = "pypi-AgEIcHlwaS5vcmc" + _word(20, 80)
TEST_PYPI = "pypi-AgENdGVzdC5weXBpLm9yZw" + _word(21, 80)
SENDGRID = "SG." + _word(22, 22) + "." + _word(23, 43)
SLACK = "xoxb-" + _word(24, 12, string.digits) + "-" + _word(25, 13, string.digits) + "-"
SLACK += _word(26, 24, string.ascii_lowercase + string.digits)
SLACK_HOOK = f"https://hooks.slack.com/services/T{_word(27, 8, UPPER)}/B{_word(28, 8, UPPER)}/"
SLACK_HOOK += _word(29, 24)
SQUARE = "sq0csp-" + _word(30, 43)
STRIPE = "sk_live_" + _word(31, 24)
TELEGRAM = _word(32, 10, string.digits) + ":" + _word(33, 35)
REGISTRY_AUTH = _word(34, 24, B64) + "=="
NPM_LEGACY = _word(35, 32, B64)
PYPI_PASSWORD = _word(36, 16)
GIT_PASSWORD = _word(37, 20)
NETRC_PASSWORD = _word(38, 18)

SAMPLES: tuple[Sample, ...] = (
    Sample("private-key", "/root/.ssh/id_ed25519", PEM + "\n", PEM),
    Sample("aws-secret-access-key", "/root/.aws/credentials",
           f"[default]\nregion = eu-west-1\naws_secret_access_key = {AWS_SECRET}\n",
           AWS_SECRET),
    Sample("aws-access-key-id", "/app/.env", f"AWS_ACCESS_KEY_ID={AWS_ID}\nLOG=debug\n", AWS_ID),
    Sample("aws-secret-access-key", "/app/settings.py",
           f'AWS_SECRET_KEY = "{AWS_SECRET}"\n', AWS_SECRET),
    Sample("azure-storage-key", "/app/appsettings.json",
           f'{{"Storage": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={AZURE};'
           f'EndpointSuffix=core.windows.net"}}', "AccountKey=" + AZURE),
    Sample("url-password", "/etc/app/env", f"DATABASE_URL=postgres://app:{URL_PASSWORD}@db:5432/app\n",
           URL_PASSWORD),
    Sample("discord-bot-token", "/srv/bot/config.yaml", f"token: {DISCORD}\n", DISCORD),
    Sample("github-token", "/home/ci/.config/gh/hosts.yml",
           f"github.com:\n    oauth_token: {GITHUB}\n    user: ci\n", GITHUB),
    Sample("gitlab-token", "/srv/.env", f"GITLAB_TOKEN={GITLAB}\n", GITLAB),
    Sample("gitlab-token", "/etc/gitlab-runner/register.sh",
           f"gitlab-runner register --registration-token {GITLAB_RUNNER}\n", GITLAB_RUNNER),
    Sample("gitlab-token", "/srv/ci.env", f"CI_JOB_TOKEN={GITLAB_CBT}\n", GITLAB_CBT),
    Sample("gitlab-token", "/srv/mail.env", f"INCOMING_MAIL_TOKEN={GITLAB_IMT}\n", GITLAB_IMT),
    Sample("gitlab-token", "/srv/trigger.sh", f"curl -F token={GITLAB_PTT} -F ref=main\n",
           GITLAB_PTT),
    Sample("gitlab-token", "/srv/agent.env", f"AGENT_TOKEN={GITLAB_AGENT}\n", GITLAB_AGENT),
    Sample("gitlab-token", "/srv/oauth.env", f"OAUTH_SECRET={GITLAB_OAS}\n", GITLAB_OAS),
    Sample("jwt", "/srv/app/token.txt",
           f"Authorization: Bearer {JWT_HEAD}.{JWT_BODY}.{_word(39, 43)}\n",
           f"{JWT_HEAD}.{JWT_BODY}."),  # detect-secrets' pattern stops before the signature
    Sample("mailchimp-key", "/srv/app/mail.ini", f"[mailchimp]\napikey = {MAILCHIMP}\n",
           MAILCHIMP),
    Sample("npm-token", "/srv/app/Dockerfile.npm",
           f"RUN echo //registry.npmjs.org/:_authToken={NPM} > ~/.npmrc\n", NPM + " > ~/.npmrc"),
    Sample("openai-key", "/srv/app/.env", f"OPENAI_API_KEY={OPENAI}\n", OPENAI),
    Sample("pypi-token", "/srv/app/publish.sh", f"twine upload -p {PYPI} dist/*\n", PYPI),
    Sample("pypi-token", "/srv/app/publish-test.sh", f"TWINE_PASSWORD={TEST_PYPI}\n", TEST_PYPI),
    Sample("sendgrid-key", "/srv/app/mail.env", f"SENDGRID_API_KEY={SENDGRID}\n", SENDGRID),
    Sample("slack-token", "/srv/app/slack.env", f"SLACK_BOT_TOKEN={SLACK}\n", SLACK),
    Sample("slack-webhook", "/srv/app/alerts.yaml", f"webhook: {SLACK_HOOK}\n", SLACK_HOOK),
    Sample("square-oauth-secret", "/srv/app/square.env", f"SQUARE_SECRET={SQUARE}\n", SQUARE),
    Sample("stripe-key", "/srv/app/billing.env", f"STRIPE_KEY={STRIPE}\n", STRIPE),
    Sample("telegram-bot-token", "/srv/app/bot.env", f"TELEGRAM_TOKEN={TELEGRAM}\n", TELEGRAM),
    Sample("registry-credential", "/root/.docker/config.json",
           f'{{"auths": {{"registry.acme.io": {{"auth": "{REGISTRY_AUTH}"}}}}}}', REGISTRY_AUTH),
    Sample("registry-credential", "/home/app/.dockercfg",
           f'{{"registry.acme.io": {{"auth": "{REGISTRY_AUTH}", "email": "ci@acme.io"}}}}',
           REGISTRY_AUTH),
    Sample("npm-token", "/home/app/.npmrc", f"_auth = {NPM_LEGACY}\nalways-auth=true\n",
           NPM_LEGACY),
    Sample("pypi-password", "/home/app/.pypirc",
           f"[pypi]\nusername = acme\npassword = {PYPI_PASSWORD}\n", PYPI_PASSWORD),
    Sample("git-credential", "/home/app/.git-credentials",
           f"https://bob:{GIT_PASSWORD}@git.acme.io\n", GIT_PASSWORD),
    Sample("netrc-password", "/home/app/.netrc",
           f"machine api.acme.io\n  login bob\n  password {NETRC_PASSWORD}\n", NETRC_PASSWORD),
)  # fmt: skip


@pytest.mark.parametrize("use_prefilter", [True, False], ids=["prefilter", "every-rule"])
@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: f"{s.kind}:{s.path}")
def test_each_rule_finds_its_secret_by_kind_and_fingerprint(
    sample: Sample, use_prefilter: bool
) -> None:
    found = scanner.find_secrets(sample.path, sample.text.encode(), use_prefilter=use_prefilter)
    assert found == [(sample.kind, fingerprint(sample.value))]


def test_every_rule_has_a_sample() -> None:
    """A rule added to the scanner (or to detect-secrets' copy) needs a sample above."""

    def covered(rule: scanner.SecretRule) -> bool:
        for sample in SAMPLES:
            match = re.search(rule.pattern, sample.text.encode(), rule.flags)
            applies = not rule.files or any(sample.path.endswith(g[1:]) for g in rule.files)
            if applies and match and match.group(rule.group) == sample.value.encode():
                return True
        return False

    rules = (*scanner.CONTENT_RULES, *scanner.NAMED_RULES)
    assert [rule for rule in rules if not covered(rule)] == []


def test_hyperscan_is_there_where_it_has_wheels() -> None:
    """The prefilter is a dependency on x86_64 Linux: its absence there is a broken install."""
    if sys.platform == "linux" and platform.machine() == "x86_64":
        assert scanner._prefilter() is not None


def test_the_prefilter_misses_nothing_the_rules_find_in_a_mixed_file() -> None:
    """All samples in one file among noise: the prefilter's one pass and every rule agree."""
    noise = "\n".join(_word(200 + i, 60, _ALNUM + " =:/._-") for i in range(200))
    text = noise + "\n".join(s.text for s in SAMPLES) + noise
    quick = scanner.find_secrets("/srv/all.txt", text.encode())
    full = scanner.find_secrets("/srv/all.txt", text.encode(), use_prefilter=False)
    assert sorted(quick) == sorted(full)
    by_content = {(s.kind, fingerprint(s.value)) for s in SAMPLES if not _named_file(s.path)}
    assert set(quick) >= by_content


def _named_file(path: str) -> bool:
    return any(fnmatch.fnmatchcase(path, g) for rule in scanner.NAMED_RULES for g in rule.files)


def test_prefilter_candidates_that_the_rule_rejects_are_not_reported() -> None:
    header_only = b"-----BEGIN RSA PRIVATE KEY-----\n(key elided in the documentation)\n"
    assert scanner.find_secrets("/usr/share/doc/ssh/README", header_only) == []


def test_values_never_appear_and_placeholders_are_ignored() -> None:
    found = scanner.find_secrets("/app/.env", f"A={AWS_ID}\nB={GITHUB}\n".encode())
    assert AWS_ID not in repr(found) and GITHUB not in repr(found)
    assert all(len(print_) == 12 for _, print_ in found)
    docs = (
        b"AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
        b"url = postgres://user:<password>@db/app\n"
        b"token: ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
    )
    assert scanner.find_secrets("/usr/share/doc/app/README.md", docs) == []


@pytest.mark.parametrize(
    ("path", "text"),
    [("/srv/doc.txt", "https://user:password@proxy.local:3128"),
     ("/srv/doc.txt", "postgres://app:{{db_password}}@db/app"),
     ("/srv/doc.txt", "ftp://anonymous:Secret@ftp.local/"),
     ("/root/.pypirc", "[pypi]\nusername = acme\npassword = %(PYPI_PASSWORD)s\n"),
     ("/root/.netrc", "machine api.acme.io login bob password ********\n"),
     ("/root/.netrc", "machine api.acme.io login bob password changeme\n")],
)  # fmt: skip
def test_passwords_that_are_placeholders_are_ignored(path: str, text: str) -> None:
    assert scanner.find_secrets(path, text.encode()) == []
    real = re.sub(r"password@|\{\{db_password\}\}@|Secret@", URL_PASSWORD + "@", text)
    real = re.sub(r"%\(PYPI_PASSWORD\)s|\*{8}|changeme", URL_PASSWORD, real)
    assert scanner.find_secrets(path, real.encode())[0][1] == fingerprint(URL_PASSWORD)


PAYLOAD = b"\x00" * 64 + f"key={AWS_ID}\n".encode() + b"\x00" * 64


@pytest.mark.parametrize(
    ("path", "head", "searched"),
    [
        ("/usr/bin/tool", b"\x7fELF\x02\x01\x01\x00", False),  # executable
        ("/usr/lib/x86_64-linux-gnu/libz.so.1", b"\x7fELF\x02\x01\x01\x00", False),
        ("/srv/backup.tgz", b"\x1f\x8b\x08\x00", False),
        ("/srv/app.jar", b"PK\x03\x04", False),
        ("/opt/debs/less.deb", b"!<arch>\n", False),
        ("/srv/logo.png", b"\x89PNG\r\n\x1a\n", False),
        ("/usr/share/zoneinfo/UTC", b"TZif2\x00\x00\x00", False),
        ("/usr/lib/python3/dist-packages/app/__pycache__/x.cpython-311.pyc", b"\xa7\r\r\n", False),
        ("/usr/share/locale/de/LC_MESSAGES/app.mo", b"\xde\x12\x04\x95", False),
        ("/srv/app.db", b"SQLite format 3\x00", True),  # an unknown format may hold text
        ("/srv/dump.bin", b"\x00\x00\x00\x00key=", True),
        ("/srv/app/config.yaml", b"token: x", True),
    ],
)  # fmt: skip
def test_a_binary_file_with_a_key_is_skipped_only_when_its_format_cannot_hold_text(
    path: str, head: bytes, searched: bool
) -> None:
    content = head + PAYLOAD
    assert scanner.should_read(path, len(content), content[:8]) is searched
    found = scanner.find_secrets(path, content)
    assert found == ([("aws-access-key-id", fingerprint(AWS_ID))] if searched else [])


def test_credential_files_are_read_whatever_they_look_like_and_empty_files_never() -> None:
    assert scanner.should_read("/root/.ssh/id_rsa.key", 10, b"\x1f\x8b\x08\x00")
    assert scanner.should_read("/home/a/.docker/config.json", 10, b"\x00\x00")
    assert not scanner.should_read("/srv/empty.txt", 0, b"")


def test_the_rules_version_follows_the_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    assert f"image-secrets/{scanner._rules_digest()}" == scanner.SCAN_RULES_VERSION
    changed = scanner.CONTENT_RULES[:-1]
    monkeypatch.setattr(scanner, "CONTENT_RULES", changed)
    assert f"image-secrets/{scanner._rules_digest()}" != scanner.SCAN_RULES_VERSION
    monkeypatch.undo()
    monkeypatch.setattr(scanner, "_BINARY_SUFFIXES", (*scanner._BINARY_SUFFIXES, ".dat"))
    assert f"image-secrets/{scanner._rules_digest()}" != scanner.SCAN_RULES_VERSION


def test_threads_scan_at_the_same_time() -> None:
    """Hyperscan scratch space is per thread: images are scanned concurrently."""
    content = "\n".join(s.text for s in SAMPLES[:20]).encode()
    expected = sorted(scanner.find_secrets("/srv/all.txt", content))
    results: list[list[tuple[str, str]]] = []

    def work() -> None:
        for _ in range(50):
            results.append(sorted(scanner.find_secrets("/srv/all.txt", content)))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 200 and all(r == expected for r in results)


def test_verbose_rules_have_nothing_the_prefilter_would_read_differently() -> None:
    """Hyperscan gets no VERBOSE flag: a rule with it must hold no space or comment to drop."""
    verbose = [r for r in scanner.CONTENT_RULES if r.flags & re.VERBOSE]
    assert verbose and not [r for r in verbose if re.search(rb"\s|#", r.pattern)]


def test_a_layer_walk_reports_the_key_in_a_data_file_but_not_in_an_executable() -> None:
    """Through the layer scanner: the same planted key in an ELF file and a SQLite file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, head in (("usr/bin/tool", b"\x7fELF\x02\x01\x01\x00"),
                           ("srv/app.db", b"SQLite format 3\x00")):  # fmt: skip
            data = head + PAYLOAD
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    layer = docker_image.scan_layer_tar(buffer, docker_image.ScanLimits())
    assert layer.files == 2
    assert layer.secrets == [("/srv/app.db", "aws-access-key-id", fingerprint(AWS_ID))]
