"""The Host names a web process answers (``KUDOS_WEB_ALLOWED_HOSTS``), against DNS rebinding.

A page at ``http://evil.example:8000`` whose name its owner re-points to 127.0.0.1 is, to the
browser, same-origin with a loopback Kudos on port 8000: it may read every answer and passes the
``Origin`` check. Only the ``Host`` header still says ``evil.example``, so a web process that
listens on loopback answers only the loopback names and its own listen address. One that listens on
any other address is reached by names nobody here can know (a proxy, a DNS name), so it answers
any Host unless the list is set. A browser writes Host from the URL it was given; a page cannot
make it say ``localhost``, so the loopback names are always answered (health checks, ``kudos
watch``). Pure: ``web.server`` asks, per request.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from leaderboard.errors import ConfigError
from leaderboard.settings import WebSettings

#: Names that reach only this machine, whatever DNS says.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def _split(host: str) -> tuple[str, int | None]:
    """``name[:port]`` (IPv6 in brackets) → (lower-case name, port or None); ("", None) when it
    is not a Host value."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return "", None
        name, rest = host[: end + 1], host[end + 1 :]
    else:
        name, sep, port = host.partition(":")
        rest = sep + port
    if not rest:
        return name, None
    if rest[0] != ":" or not rest[1:].isdigit():
        return "", None
    return name, int(rest[1:])


def _bracketed(listen: str) -> str:
    """The listen address as a Host header writes it (IPv6 in brackets)."""
    return f"[{listen}]" if ":" in listen and not listen.startswith("[") else listen


def is_loopback(listen: str) -> bool:
    if listen.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(listen.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AllowedHosts:
    """Which ``Host`` headers are answered; None in ``names``: all of them."""

    #: (name, port): port None matches any port
    names: frozenset[tuple[str, int | None]] | None

    @classmethod
    def of(cls, web: WebSettings) -> AllowedHosts:
        listed = [h.strip() for h in web.allowed_hosts.split(",") if h.strip()]
        if "*" in listed or (not listed and not is_loopback(web.host)):
            return cls(None)
        names: set[tuple[str, int | None]] = {(n, None) for n in LOOPBACK_NAMES}
        if web.host:
            names.add((_bracketed(web.host.lower()), None))
        for entry in listed:
            name, port = _split(entry)
            if not name or "/" in name:
                raise ConfigError(
                    f"KUDOS_WEB_ALLOWED_HOSTS: {entry!r} is not a host name, with or without "
                    "its port (e.g. kudos.example.com or kudos.example.com:8443)"
                )
            names.add((name, port))
        return cls(frozenset(names))

    def allows(self, host: str | None) -> bool:
        if self.names is None:
            return True
        name, port = _split(host or "")
        return bool(name) and ((name, None) in self.names or (name, port) in self.names)
