"""One websocket client's record and its limits: :class:`Client` holds what the connection
follows, its message rate (a token bucket) and how much unsent data it has queued (the
slow-client bound of docs/protocol.md). It only measures: the session (``web.session``) closes a
client over the rate, the hub (``web.hub``) conflates and closes a slow one. Kept apart from both
because each of them reads these numbers on every message or frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import termios
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection


@dataclass(eq=False)
class Client:
    ws: ServerConnection
    rate: float
    #: channel → top-N (board channels) or 0 (member channels)
    subs: dict[str, int] = field(default_factory=dict)
    #: channels on which this client missed frames while it was slow
    stale: set[str] = field(default_factory=set)
    slow_since: float | None = None
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
