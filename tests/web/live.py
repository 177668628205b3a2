"""Test helpers for the live push protocol: start `kudos web` processes and a client that keeps the
state the protocol promises (docs/protocol.md), checking every frame's sequence number."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from kudos import servers
from leaderboard.store import FeedFrame, Store
from tests.conftest import Namespace
from tests.eventually import eventually
from web import feed


def start_web(ns: Namespace, port: int, name: str = "web", **env: str) -> subprocess.Popen[bytes]:
    log = ns.home / f"{name}.log"
    proc = servers.spawn(
        [sys.executable, "-m", "kudos", "web"],
        log,
        env={**ns.env(), "KUDOS_WEB_PORT": str(port), **env},
    )
    servers.wait_port(name, "127.0.0.1", port, proc, log)
    return proc


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> tuple[str, Samples]:
    """The content type and every sample: (name, sorted labels) → value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        content_type = r.headers["Content-Type"]
        text = r.read().decode()
    samples: Samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return content_type, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def api_top(port: int, board: str, n: int) -> dict[str, tuple[int, float]]:
    url = f"http://127.0.0.1:{port}/api/boards/{board}?limit={n}"
    with urllib.request.urlopen(url, timeout=5) as r:
        page = orjson.loads(r.read())
    return {e["member"]: (e["rank"], round(e["score"], 3)) for e in page["entries"]}


@dataclass
class LiveClient:
    """Holds each channel's state exactly as docs/protocol.md says a client should."""

    ws: ClientConnection
    hello: dict[str, Any]
    tops: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)
    standing: dict[str, dict[str, Any]] = field(default_factory=dict)
    position: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: every frame received, in order
    frames: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int, **kwargs: Any) -> LiveClient:
        ws = await connect(f"ws://127.0.0.1:{port}/ws", **kwargs)
        hello = orjson.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["protocol"] == 1
        return cls(ws, hello)

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.frames.append(frame)
        self._apply(frame)
        return frame

    async def request(self, msg: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        """Send and return the reply (the first non-feed frame)."""
        await self.send(msg)
        while True:
            frame = await self.recv(timeout)
            if frame["type"] not in ("snapshot", "delta", "event"):
                return frame

    async def subscribe(self, channel: str, **extra: Any) -> dict[str, Any]:
        reply = await self.request({"op": "subscribe", "channel": channel, **extra})
        assert reply["type"] == "subscribed", reply
        if not reply["recovered"]:
            snap = await self.recv()
            assert snap["type"] == "snapshot" and snap["channel"] == channel, snap
        return reply

    async def until(self, check: Callable[[], bool], timeout: float = 30.0) -> None:
        """Read frames until the state they built satisfies ``check``."""

        async def reached() -> bool:
            if check():
                return True
            with contextlib.suppress(TimeoutError):
                await self.recv(timeout)
            return check()

        await eventually(
            reached,
            timeout=timeout,
            interval=0,
            what="the client's state to satisfy the check",
            details=lambda: f"last frames: {self.frames[-3:]}",
        )

    def _apply(self, f: dict[str, Any]) -> None:
        kind, ch = f["type"], f.get("channel")
        if kind == "snapshot":
            self.position[ch] = (f["epoch"], f["seq"])
            if "entries" in f:
                self.tops[ch] = {e["member"]: (e["rank"], e["score"]) for e in f["entries"]}
            else:
                self.standing[ch] = dict(f.get("boards", {}))
        elif kind in ("delta", "event"):
            epoch, seq = self.position[ch]
            assert (f["epoch"], f["seq"]) == (epoch, seq + 1), f"gap on {ch}: {seq} → {f}"
            self.position[ch] = (epoch, f["seq"])
            if kind == "event":
                self.events.append(f)
            elif "entries" in f:  # a cohort's frame carries the whole cohort
                self.tops[ch] = {e["member"]: (e["rank"], e["score"]) for e in f["entries"]}
            elif "boards" in f:
                self.standing[ch].update(f["boards"])
            else:
                top = self.tops[ch]
                for e in f["left"]:
                    del top[e["member"]]
                for e in f["entered"]:
                    top[e["member"]] = (e["rank"], e["score"])
                for e in f["moved"]:
                    assert top[e["member"]][0] == e["from"]
                    top[e["member"]] = (e["to"], e["score"])
                for e in f["score"]:
                    top[e["member"]] = (e["rank"], e["score"])
                self.events.extend(f.get("events", []))
        elif kind == "subscribed" and f["recovered"]:
            self.position[ch] = (f["epoch"], self.position.get(ch, (f["epoch"], f["seq"]))[1])

    async def close(self) -> None:
        await self.ws.close()


def tiny_receive_buffer_socket(port: int) -> socket.socket:
    """A connected socket with a small receive buffer, so a client that stops reading pushes back
    on the server within a few frames."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def rss_bytes(proc: subprocess.Popen[bytes]) -> int:
    """The resident memory of a child process (Linux)."""
    with open(f"/proc/{proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {proc.pid}")


async def seed_board(store: Store, board: str, n: int) -> None:
    """``n`` members on ``board`` straight in Redis (no worker): m0 first, scores 10·(n − i)."""
    await store.client.zadd(
        store.key("board", board), {f"m{i}": 10_000 * (n - i) for i in range(n)}
    )
    await store.client.hincrby(store.key("changes"), board, 1)


async def publish_frames(store: Store, board: str, n: int) -> int:
    """Append ``n`` frames to a board channel's shared log as another web process would: each
    adds one point to every row of the published top (so every delta lists every row). The
    board itself is left alone, so no web process diffs it meanwhile. Returns the last seq."""
    channel = f"board:{board}"
    epoch = await store.client.get(store.key("feedepoch"))
    seq, src, snap = await store.client.hmget(store.key("feed", channel), "seq", "src", "snap")
    assert epoch and snap, "the board must have been published (subscribe to it first)"
    rows, seq = feed.decode_rows(snap), int(seq)
    for _ in range(n):
        new = [r._replace(score=r.score + 1) for r in rows]
        changes = [feed.Change(r.member, r.pos, r.pos, r.rank, r.rank, r.score) for r in new]
        record = feed.encode_board_record(changes, [], None, len(new))
        frame = FeedFrame(channel, seq, epoch, src, feed.encode_rows(new), record)
        published = await store.feed_publish(frame, [], 2000, 0)
        assert published == seq + 1, "a web process published meanwhile"
        rows, seq = new, seq + 1
    return seq
