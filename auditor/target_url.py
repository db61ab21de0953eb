"""Target URLs, parsed once: what each scheme's target needs, checked before anything connects.

`TargetSpec.address` parses a spec's URL on first use and keeps the result; the inventory and
the command line call it to refuse a bad URL up front (exit 2 naming the item), and each target
class reads the parts it needs from it instead of splitting the URL again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from auditor.errors import InventoryError

SCHEMES = ("local", "ssh", "docker", "docker+ssh", "k8s", "k8s-snapshot", "trivy", "grype")
MAX_HOST_CHARS = 253  # DNS: a name of at most 253 characters, labels of at most 63
_DOCKER_FORMS = (
    "docker://, docker://unix:///path/docker.sock, docker://tcp://host:port or "
    "docker+ssh://[user@]host"
)


@dataclass(frozen=True)
class TargetUrl:
    """A checked target URL. `rest` is everything after `SCHEME://`; a network address (ssh,
    docker+ssh, docker://tcp:// and docker://ssh://) has `host`, `user` and `port`; a Docker
    URL has `daemon`, the daemon's own address (`unix:///...`, `tcp://...`, `ssh://...`), empty
    when the environment chooses it (DOCKER_HOST, contexts)."""

    scheme: str
    rest: str
    host: str | None = None
    user: str | None = None
    port: int | None = None
    daemon: str = ""


def shown(url: str) -> str:
    """A URL as error messages quote it: long ones cut, so that one line stays one line."""
    return repr(url if len(url) <= 100 else url[:97] + "...")


def parse_target_url(url: str) -> TargetUrl:
    """The parts of a target URL; InventoryError saying what is wrong for URLs auditor cannot
    audit."""
    if "://" not in url:
        raise InventoryError(
            f"bad target URL {shown(url)}: expected SCHEME://..., e.g. local://, ssh://user@host",
        )
    written, _, rest = url.partition("://")
    scheme = written.lower()
    if scheme not in SCHEMES:
        known = ", ".join(f"{s}://" for s in SCHEMES)
        raise InventoryError(f"unknown target scheme {scheme[:40]!r} (known: {known})")
    if scheme == "local" and rest not in ("", "/"):
        raise InventoryError(f"bad target URL {shown(url)}: local:// takes nothing after it")
    if scheme == "ssh":
        return _network(scheme, rest, url, url, "ssh://[user@]host[:port]")
    if scheme == "docker+ssh":
        found = _network(scheme, rest, "ssh://" + rest, url, "docker+ssh://[user@]host[:port]")
        return TargetUrl(scheme, rest, found.host, found.user, found.port, "ssh://" + rest)
    if scheme == "docker":
        return docker_url(rest, url)
    if scheme in ("k8s-snapshot", "trivy", "grype") and not rest.strip():
        form = "FILE-OR-DIRECTORY" if scheme == "k8s-snapshot" else "REPORT.json"
        raise InventoryError(f"bad target URL {url!r}: {scheme}://{form}", item=url)
    if scheme == "k8s" and not rest.isprintable():
        raise InventoryError(f"bad target URL {url!r}: k8s://[CONTEXT]", item=url)
    return TargetUrl(scheme, rest)


def docker_url(rest: str, url: str) -> TargetUrl:
    """A `docker://REST` URL, where REST is empty, a socket path or a daemon address (also
    what DOCKER_HOST and Docker contexts hold)."""
    if rest == "":
        return TargetUrl("docker", rest)
    daemon = "unix://" + rest if rest.startswith("/") else rest
    inner, sep, where = daemon.partition("://")
    if not sep:
        raise InventoryError(f"bad Docker URL {url!r}: expected {_DOCKER_FORMS}")
    if inner == "unix":
        if not where.startswith("/"):
            raise InventoryError(f"bad Docker URL {url!r}: unix:// needs an absolute path")
        return TargetUrl("docker", rest, daemon=daemon)
    if inner in ("tcp", "ssh"):
        form = f"docker://{inner}://" + ("host:port" if inner == "tcp" else "[user@]host[:port]")
        found = _network("docker", rest, daemon, url, form)
        return TargetUrl("docker", rest, found.host, found.user, found.port, daemon)
    raise InventoryError(
        f"bad Docker URL {url!r}: unknown daemon address scheme {inner!r} (unix, tcp, ssh)"
    )


def _network(scheme: str, rest: str, address: str, url: str, form: str) -> TargetUrl:
    """SCHEME://[user@]host[:port]: paths, queries and fragments mean nothing there and are
    refused rather than ignored."""
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        raise InventoryError(
            f"bad port or address in target URL {shown(url)}: {exc} (expected {form})"
        ) from None
    host = parts.hostname
    if not host or (port is not None and not 0 < port < 65536):
        raise InventoryError(f"bad target URL {shown(url)}: expected {form}")
    if parts.path not in ("", "/") or "?" in address or "#" in address:
        raise InventoryError(
            f"bad target URL {shown(url)}: a path, query or fragment means nothing here ({form})"
        )
    if _bad_host(host):
        raise InventoryError(
            f"bad host name in target URL {shown(url)}: not a DNS name or an IP address"
        )
    user = unquote(parts.username) if parts.username else None
    return TargetUrl(scheme, rest, host, user, port)


def _bad_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return False
    except ValueError:
        pass
    if len(host) > MAX_HOST_CHARS or not host.isprintable() or any(c in host for c in " /\\"):
        return True
    labels = host.rstrip(".").split(".")
    return any(not label or len(label) > 63 for label in labels)
