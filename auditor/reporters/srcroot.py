"""The source root reports name files against: the git work tree around the working directory,
else the working directory itself, with the commit and remote when it is a work tree."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

GIT_TIMEOUT = 5.0  # seconds per git call; a hung git only loses the provenance


@dataclass(frozen=True)
class SourceRoot:
    """A directory, and what git says about it when it is (inside) a work tree."""

    path: Path
    git: bool = False
    revision: str | None = None
    branch: str | None = None
    remote: str | None = None

    @classmethod
    def detect(cls, cwd: Path | None = None) -> SourceRoot:
        """The work tree holding `cwd` (default: the working directory), else `cwd`."""
        here = (cwd or Path.cwd()).resolve()
        top = _git(here, "rev-parse", "--show-toplevel")
        if top is None:
            return cls(here)
        branch = _git(here, "rev-parse", "--abbrev-ref", "HEAD")
        return cls(
            Path(top).resolve(),
            git=True,
            revision=_git(here, "rev-parse", "--verify", "-q", "HEAD"),
            branch=None if branch in (None, "HEAD") else branch,
            remote=_without_credentials(_git(here, "config", "--get", "remote.origin.url")),
        )

    def relative(self, path: Path) -> str | None:
        """`path` as a POSIX path under the root, or None when it lies outside."""
        try:
            return path.resolve().relative_to(self.path).as_posix()
        except ValueError:
            return None


def _git(cwd: Path, *args: str) -> str | None:
    """One git call's trimmed output; None when git is missing, fails or hangs."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def _without_credentials(url: str | None) -> str | None:
    """A remote URL without the user and password an https remote may carry."""
    if not url or "://" not in url:
        return url  # scp-like `git@host:path`: a user name, never a secret
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
