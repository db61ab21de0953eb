"""Checking the `[user@]host[:port]` part of a network target URL before anything connects."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

MAX_HOST_CHARS = 253  # DNS: a name of at most 253 characters, labels of at most 63


def shown(url: str) -> str:
    """A URL as error messages quote it: long ones cut, so that one line stays one line."""
    return repr(url if len(url) <= 100 else url[:97] + "...")


def address_problem(address: str, url: str, form: str) -> str | None:
    """Why `address` (SCHEME://[user@]host[:port]) cannot be connected to, or None. Paths,
    queries and fragments mean nothing there and are refused rather than ignored."""
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError as exc:
        return f"bad port or address in target URL {shown(url)}: {exc} (expected {form})"
    host = parts.hostname
    if not host or (port is not None and not 0 < port < 65536):
        return f"bad target URL {shown(url)}: expected {form}"
    if parts.path not in ("", "/") or "?" in address or "#" in address:
        return f"bad target URL {shown(url)}: a path, query or fragment means nothing here ({form})"
    if _bad_host(host):
        return f"bad host name in target URL {shown(url)}: not a DNS name or an IP address"
    return None


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
