"""One websocket client's record and its limits: :class:`Client` holds what the connection
follows, its message rate (a token bucket) and how much unsent data it has queued (the
slow-client bound of docs/protocol.md). It only measures: the session (``web.session``) closes a
client over the rate, the hub (``web.hub``) conflates and closes a slow one. Kept apart from both
because each of them reads these numbers on every message or frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import sys
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection

from leaderboard.webhooks import AllowList, parse_allow_list


@dataclass(eq=False)
class Client:
    ws: ServerConnection
    rate: float
    #: channel → top-N (board channels) or 0 (member channels)
    subs: dict[str, int] = field(default_factory=dict)
    #: channels on which this client missed frames while it was slow
    stale: set[str] = field(default_factory=set)
    #: cohort channel name → the hub's channel of its (board, members) (web.cohorts)
    cohorts: dict[str, Any] = field(default_factory=dict)
    slow_since: float | None = None
    #: the address it counts against for ``max_connections_per_address`` (``client_address``)
    address: str = ""
    tokens: float = 0.0
    refilled: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = 2 * self.rate

    def allow_message(self) -> bool:
        """Token bucket: ``rate`` messages per second, bursts of twice that."""
        now = time.monotonic()
        self.tokens = min(2 * self.rate, self.tokens + (now - self.refilled) * self.rate)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def buffered(self) -> int:
        """Bytes queued in the process for this client (cheap: checked before every frame)."""
        transport = self.ws.transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def unsent(self) -> int:
        """Bytes queued in the process plus those the kernel holds unacknowledged: a client that
        stopped reading first fills the kernel's buffers (megabytes on loopback), so the
        process's own buffer alone would notice it late."""
        total = self.buffered()
        transport = self.ws.transport
        sock = None if transport is None else transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                total += int.from_bytes(raw, sys.byteorder, signed=True)
        return total


#: The setting that lists trusted proxies, as errors name it.
TRUSTED_PROXIES_SETTING = "KUDOS_WEB_TRUSTED_PROXIES"


@functools.lru_cache(maxsize=4)
def _networks(listed: str) -> AllowList:
    return parse_allow_list(listed, name=TRUSTED_PROXIES_SETTING)


def _trusted(address: str, networks: AllowList) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def client_address(peer: Any, forwarded_for: Sequence[str], trusted_proxies: str) -> str:
    """The address a connection counts against (``max_connections_per_address``): the peer's,
    unless the peer is one of ``trusted_proxies`` (the ``web.trusted_proxies`` setting); then the
    rightmost X-Forwarded-For address that no trusted proxy added. Only the rightmost entries
    can be believed: each proxy appends the address it saw, anything left of them is whatever
    the client sent."""
    address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(address, networks):
        return address
    hops = [h.strip() for line in forwarded_for for h in line.split(",")]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return address  # a malformed header: count the proxy itself
    return address
