"""Credential shapes from detect-secrets (Yelp), the maintained rule set auditor redacts by.

The patterns below are the `denylist` regular expressions of detect-secrets 1.5.0's plugins
(https://github.com/Yelp/detect-secrets, Apache License 2.0), copied verbatim with the
plugin they come from, so that redaction needs no import of detect-secrets at run time (its
import costs half a second per run). tests/unit/test_redact.py checks them against the
installed detect-secrets (a test dependency): an update of the rule set shows up there.

Left out, on purpose: the heuristic plugins (keyword, high-entropy strings, public IPs: auditor
judges names and entropy itself, see redact.py), detectors of identifiers that are not
secrets (Twilio account SIDs), short prefixes that match ordinary infrastructure text
(Artifactory `AP...`, the IBM, SoftLayer and Cloudant keyword forms), and the private-key
headers (redact.py removes the whole key block, not only its first line).

A rule whose pattern has a capturing group redacts that group only (the password of
`https://user:PASSWORD@host`, keeping scheme, user and host); other rules redact the whole
match, extended to the end of the token.
"""

from __future__ import annotations

import re
from typing import NamedTuple

RULE_SET = "detect-secrets 1.5.0"


class Rule(NamedTuple):
    """One denylist entry of a detect-secrets plugin."""

    plugin: str  # the plugin's class name
    pattern: str
    flags: int
    group: int = 0  # 1: only the first group is the secret; 0: the whole match


RULES: tuple[Rule, ...] = (
    Rule("AWSKeyDetector", r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}", 0),
    Rule(
        "AWSKeyDetector",
        r"aws.{0,20}?(?:key|pwd|pw|password|pass|token).{0,20}?[\'\"]([0-9a-zA-Z/+]{40})[\'\"]",
        re.IGNORECASE,
        1,
    ),
    Rule("AzureStorageKeyDetector", r"AccountKey=[a-zA-Z0-9+\/=]{88}", 0),
    Rule(
        "BasicAuthDetector",
        r"://[^:/\?\#\[\]@!\$\&'\(\)\*\+,;=\s]+:([^:/\?\#\[\]@!\$\&'\(\)\*\+,;=\s]+)@",
        0,
        1,
    ),
    Rule(
        "DiscordBotTokenDetector", r"[MNO][a-zA-Z\d_-]{23,25}\.[a-zA-Z\d_-]{6}\.[a-zA-Z\d_-]{27}", 0
    ),
    Rule("GitHubTokenDetector", r"(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9_]{36}", 0),
    Rule("GitLabTokenDetector", r"(glpat|gldt|glft|glsoat|glrt)-[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"GR1348941[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"glcbt-([0-9a-fA-F]{2}_)?[A-Za-z0-9_\-]{20,50}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"glimt-[A-Za-z0-9_\-]{25}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"glptt-[A-Za-z0-9_\-]{40}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"glagent-[A-Za-z0-9_\-]{50,1024}(?!\w)", 0),
    Rule("GitLabTokenDetector", r"gloas-[A-Za-z0-9_\-]{64}(?!\w)", 0),
    Rule("JwtTokenDetector", r"eyJ[A-Za-z0-9-_=]+\.[A-Za-z0-9-_=]+\.?[A-Za-z0-9-_.+/=]*?", 0),
    Rule("MailchimpDetector", r"[0-9a-z]{32}-us[0-9]{1,2}", 0),
    Rule("NpmDetector", r"\/\/.+\/:_authToken=\s*((npm_.+)|([A-Fa-f0-9-]{36})).*", 0, 1),
    Rule("OpenAIDetector", r"sk-[A-Za-z0-9-_]*[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}", 0),
    Rule("PypiTokenDetector", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9-_]{70,}", 0),
    Rule("PypiTokenDetector", r"pypi-AgENdGVzdC5weXBpLm9yZw[A-Za-z0-9-_]{70,}", 0),
    Rule("SendGridDetector", r"SG\.[a-zA-Z0-9_-]{22}\.[a-zA-Z0-9_-]{43}", 0),
    Rule("SlackDetector", r"xox(?:a|b|p|o|s|r)-(?:\d+-)+[a-z0-9]+", re.IGNORECASE),
    Rule(
        "SlackDetector",
        r"https://hooks\.slack\.com/services/T[a-zA-Z0-9_]+/B[a-zA-Z0-9_]+/[a-zA-Z0-9_]+",
        re.IGNORECASE | re.VERBOSE,
    ),
    Rule("SquareOAuthDetector", r"sq0csp-[0-9A-Za-z\\\-_]{43}", 0),
    Rule("StripeDetector", r"(?:r|s)k_live_[0-9a-zA-Z]{24}", 0),
    Rule("TelegramBotTokenDetector", r"\d{8,10}:[0-9A-Za-z_-]{35}", 0),
)
