"""Live-push benchmarks: end-to-end latency and fan-out of one web process, beside a naive server.

Run by ``python -m bench.run`` (phases ``e2e`` and ``fanout``), or alone with
``python -m bench.run --only push`` (``make bench-push``). See bench/README.md for what each number
means. The helper processes are this module too:

    python -m bench.push clients [--batch-s S]     the fan-out subscribers (driven over stdin)
    python -m bench.push naive-server --port P --redis-url URL --prefix P [--tick-s S]

Environment:
    BENCH_PUSH_SUSTAINABLE_RATE  events/s taken as the sustainable ingest rate (default: the
                              envelope phase of this run; when it did not run, the same
                              measurement first)
    BENCH_PUSH_E2E_FRACTIONS  background load of the e2e legs, × that rate (default
                              0.25,0.5,0.7)
    BENCH_PUSH_E2E_S          seconds measured per e2e leg, after 5 s of load (default 20)
    BENCH_PUSH_PROBES_PER_S   probes per second (default 10)
    BENCH_PUSH_ENVELOPE       background events per message (default 100, as ``make demo``)
    BENCH_PUSH_FETCH_WAIT_MS  run the e2e worker with this KUDOS_WORKER_FETCH_MAX_WAIT_MS
    BENCH_PUSH_STAGES         fan-out subscriber counts (default 1000,5000,10000)
    BENCH_PUSH_WINDOW_S       seconds measured at each fan-out stage (default 5)
    BENCH_PUSH_CLIENT_PROCS   processes holding the fan-out subscribers (default 1)
    BENCH_PUSH_STALL          the stalled leg: subscribers,stalled (default 5000,50; 0 skips it)
    BENCH_PUSH_STALL_FILL_S   seconds of changes before the stalled leg's window (default 30)
    BENCH_PUSH_STALL_SLOW_BYTES  KUDOS_WEB_SLOW_CLIENT_BYTES of the stalled leg's kudos web
                              (default 65536; 0 keeps the server's own setting)
    KUDOS_WEB_*               passed on to ``kudos web`` (e.g. KUDOS_WEB_TICK_S)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import random
import resource
import select
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import orjson

from bench.run import (
    ROOT,
    WORK,
    Bench,
    CpuMeter,
    PhaseError,
    _fmt_cmds,
    cpu_seconds,
    higgs_items,
    quantile,
    say,
)
from broker.formats import partition_key
from broker.producer import partition_for
from broker.topics import bootstrap, ensure_topics
from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import load_settings
from leaderboard.store import Store

E2E_P99_TARGET_MS = 300.0
#: Issue 16: a live worker keeps up with this fraction of its backlog rate.
E2E_SUSTAIN_TARGET = 0.7
FANOUT_TARGET = 60_000.0
FANOUT_TARGET_AT = 10_000
IDLE_KIB_TARGET = 30.0

#: The e2e phase gives a probe one ``conversion`` worth this many points (a scoring.toml of the
#: bench's own, only that number changed), far above any Higgs member: every probe enters the top 10.
PROBE_POINTS = 1_000_000
#: Probes tie on score; Redis orders ties by member, descending, so the newest (largest id) is first.
PROBE_PREFIX = "zz-probe-"
#: A leg's load was sustainable if the worker caught up within this long after it stopped.
KEPT_UP_DRAIN_S = 2.0
#: The fan-out phase's synthetic board: members, and the one board the subscribers follow.
FANOUT_MEMBERS = 200
#: Changes the fan-out driver writes per second (several per tick, so every tick has one).
FANOUT_CHANGES_PER_S = 100.0
#: A stalled subscriber's socket: the smallest receive buffer (the kernel doubles it to 8 KiB) and
#: Ethernet's MSS, both set before connect. On loopback the MSS would be ~64 KiB and the server's
#: kernel would then queue ~3 MB for a client that stopped reading (7 minutes of frames); with
#: 1460 it queues ~150 KB (measured with `websockets`), as to a real client over the internet.
STALL_RCVBUF = 4096
STALL_MSS = 1460
#: Seconds the stalled sockets are read after the stalled leg's window, to find close frames.
STALL_DRAIN_S = 3.0


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, "") or default)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, "") or default)


def rss_kib(pid: int) -> int:
    """Resident set size of a process, in KiB (``VmRSS`` of /proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise PhaseError(f"no VmRSS for pid {pid}")


def raise_nofile() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        new = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- fan-out subscribers: raw sockets, frame headers only (a child process) ----------------------


def _client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client → server frame (RFC 6455 §5.3), payload under 126 bytes."""
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


class _Conn:
    """One subscriber: counts data frames by walking frame headers; answers pings (the server
    closes connections that do not pong within its ping timeout); notes a close frame's code."""

    __slots__ = ("close_code", "frames", "gap", "last", "mark", "pend", "skip", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.skip = 0  # payload bytes of the current frame still to come
        self.pend = b""  # an incomplete frame header (or ping/close frame) carried to the next read
        self.frames = 0
        self.mark = 0
        self.last = time.monotonic()  # when the last data frame arrived (or gaps were reset)
        self.gap = 0.0  # longest wait between data frames since gaps were reset
        self.close_code: int | None = None  # from the server's close frame (0: none given)

    def feed(self, data: bytes) -> None:
        n = len(data)
        if self.skip >= n:
            self.skip -= n
            return
        i = self.skip
        if self.pend:  # then skip is 0
            data = self.pend + data
            n = len(data)
            self.pend = b""
        frames = 0
        while i < n:
            left = n - i
            if left < 2:
                self.pend, i = data[i:], n
                break
            b1 = data[i + 1] & 0x7F
            if b1 < 126:
                h, ln = 2, b1
            elif b1 == 126:
                if left < 4:
                    self.pend, i = data[i:], n
                    break
                h, ln = 4, (data[i + 2] << 8) | data[i + 3]
            else:
                if left < 10:
                    self.pend, i = data[i:], n
                    break
                h, ln = 10, int.from_bytes(data[i + 2 : i + 10], "big")
            op = data[i] & 0x0F
            if op == 1 or op == 2:
                frames += 1
            elif op == 9 or op == 8:  # ping: answer with a pong; close: note the code
                if left < h + ln:
                    self.pend, i = data[i:], n
                    break
                if op == 9:
                    with contextlib.suppress(OSError):
                        self.sock.send(_client_frame(0xA, data[i + h : i + h + ln]))
                elif self.close_code is None:
                    self.close_code = int.from_bytes(data[i + h : i + h + 2], "big") if ln else 0
            i += h + ln
        self.frames += frames
        self.skip = i - n


def _handshake(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


SUBSCRIBE = orjson.dumps({"op": "subscribe", "channel": "board:all", "limit": 10})


class _Fleet:
    """The subscribers of one client process, read with one epoll loop."""

    def __init__(self, batch_s: float) -> None:
        self.batch_s = batch_s
        self.ep = select.epoll()
        self.conns: dict[int, _Conn] = {}
        #: subscribers that stopped reading after their snapshot: never read, never counted
        self.stalled: dict[int, _Conn] = {}
        self.bytes = 0
        self.closed = 0

    def connect(self, port: int, n: int, stalled: int = 0, batch: int = 100) -> None:
        """Open ``n`` more subscribers: websocket handshake, then subscribe to board:all, limit 10.
        Blocking, in batches (the server's accept backlog is 100); nothing else is read meanwhile.
        ``stalled`` of them, spread evenly, get a tiny receive buffer and are read only until
        their snapshot, then never again."""
        linger = struct.pack("ii", 1, 0)
        stall_at = {int((k + 0.5) * n / stalled) for k in range(stalled)} if stalled else set()
        done = 0
        while done < n:
            socks: list[tuple[socket.socket, bool]] = []
            for j in range(done, done + min(batch, n - done)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)  # close = RST
                if j in stall_at:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STALL_RCVBUF)
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, STALL_MSS)
                s.settimeout(60)
                s.connect(("127.0.0.1", port))
                s.sendall(_handshake(port))
                socks.append((s, j in stall_at))
            for s, stall in socks:
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"handshake closed by the server: {buf[:200]!r}")
                    buf += chunk
                head, _, rest = buf.partition(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 101"):
                    raise RuntimeError(f"handshake refused: {head[:200]!r}")
                s.sendall(_client_frame(0x1, SUBSCRIBE))
                c = _Conn(s)
                c.feed(rest)
                if stall:  # hello, subscribed, snapshot; then it stops reading
                    s.settimeout(10)
                    while c.frames < 3:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise RuntimeError(
                                "a stalled subscriber was closed before its snapshot"
                            )
                        c.feed(chunk)
                    s.setblocking(False)
                    self.stalled[s.fileno()] = c
                    continue
                s.setblocking(False)
                self.bytes += len(rest)
                self.conns[s.fileno()] = c
                self.ep.register(s.fileno(), select.EPOLLIN)
            done += len(socks)

    def stats(self, mark: bool, gaps: bool = False, gap_start: bool = False) -> dict[str, Any]:
        """Counts over the subscribers that read (the stalled ones are left out). ``gaps``: each
        one's longest wait for a data frame since ``gap_start`` (a wait still going counts)."""
        now = time.monotonic()
        frames = [c.frames for c in self.conns.values()]
        since = [c.frames - c.mark for c in self.conns.values()]
        out: dict[str, Any] = {
            "conns": len(self.conns),
            "stalled": len(self.stalled),
            # hello, subscribed, snapshot: three text frames before the first delta
            "ready": sum(1 for f in frames if f >= 3),
            "frames": sum(frames),
            "bytes": self.bytes,
            "closed": self.closed,
            "min_since_mark": min(since, default=0),
            "max_since_mark": max(since, default=0),
            "cpu_s": cpu_seconds(os.getpid()),
        }
        if gaps:
            out["gaps"] = [round(max(c.gap, now - c.last), 3) for c in self.conns.values()]
        if mark:
            for c in self.conns.values():
                c.mark = c.frames
        if gap_start:
            for c in self.conns.values():
                c.last, c.gap = now, 0.0
        return out

    def drain(self, seconds: float, quiet_s: float = 0.5) -> dict[str, Any]:
        """Read the stalled subscribers for up to ``seconds`` (until each is closed, or nothing
        came for ``quiet_s``): what the server queued for them, and whether it closed them."""
        ep = select.epoll()
        open_: dict[int, _Conn] = dict(self.stalled)
        for fd in open_:
            ep.register(fd, select.EPOLLIN)
        eof, nbytes = 0, 0
        frames0 = sum(c.frames for c in self.stalled.values())
        deadline = time.monotonic() + seconds
        last_data = time.monotonic()
        while open_ and time.monotonic() < deadline and time.monotonic() - last_data < quiet_s:
            for fd, _ in ep.poll(0.05):
                c = open_[fd]
                try:
                    data = c.sock.recv(1 << 18)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    eof += 1
                    ep.unregister(fd)
                    del open_[fd]
                    continue
                last_data = time.monotonic()
                nbytes += len(data)
                c.feed(data)
        ep.close()
        codes: dict[str, int] = {}
        for c in self.stalled.values():
            if c.close_code is not None:
                codes[str(c.close_code)] = codes.get(str(c.close_code), 0) + 1
        return {
            "stalled": len(self.stalled),
            "close_codes": codes,
            "eof": eof,
            "open": sum(
                1 for fd, c in self.stalled.items() if fd in open_ and c.close_code is None
            ),
            "bytes": nbytes,
            "frames": sum(c.frames for c in self.stalled.values()) - frames0,
        }

    def close(self) -> None:
        for c in [*self.conns.values(), *self.stalled.values()]:
            c.sock.close()
        self.conns.clear()
        self.stalled.clear()

    def command(self, msg: dict[str, Any]) -> dict[str, Any]:
        cmd = msg["cmd"]
        try:
            if cmd == "connect":
                t = time.perf_counter()
                self.connect(int(msg["port"]), int(msg["n"]), int(msg.get("stalled", 0)))
                return {"ok": True, "seconds": time.perf_counter() - t, "conns": len(self.conns)}
            if cmd == "stats":
                flags = (bool(msg.get(k)) for k in ("mark", "gaps", "gap_start"))
                return {"ok": True, **self.stats(*flags)}
            if cmd == "drain":
                return {"ok": True, **self.drain(float(msg["seconds"]))}
            if cmd == "close":
                self.close()
                return {"ok": True}
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def run(self) -> None:
        """Read every readable socket, then sleep ``batch_s`` so that frames pile up in the kernel
        and one recv() takes several: the readers stay cheap and never hold the server back (the
        server's slow-client limit is 1 MiB, far above what piles up)."""
        self.ep.register(0, select.EPOLLIN)
        inbuf = b""
        recv_size = 1 << 18
        while True:
            events = self.ep.poll(1.0, len(self.conns) + 16)
            now = time.monotonic()
            for fd, _ in events:
                if fd == 0:
                    chunk = os.read(0, 65536)
                    if not chunk:  # the bench went away
                        self.close()
                        return
                    inbuf += chunk
                    while b"\n" in inbuf:
                        line, _, inbuf = inbuf.partition(b"\n")
                        reply = self.command(json.loads(line))
                        sys.stdout.write(json.dumps(reply) + "\n")
                        sys.stdout.flush()
                        if json.loads(line)["cmd"] == "close":
                            return
                    continue
                c = self.conns.get(fd)
                if c is None:
                    continue
                try:
                    data = c.sock.recv(recv_size)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.ep.unregister(fd)
                    del self.conns[fd]
                    c.sock.close()
                    self.closed += 1
                    continue
                self.bytes += len(data)
                before = c.frames
                c.feed(data)
                if c.frames != before:
                    if now - c.last > c.gap:
                        c.gap = now - c.last
                    c.last = now
            if self.batch_s > 0:
                time.sleep(self.batch_s)


def clients_main(batch_s: float) -> int:
    raise_nofile()
    _Fleet(batch_s).run()
    return 0


@dataclass
class ClientProcs:
    """The parent's side of the fan-out subscriber processes (one JSON line per command)."""

    procs: list[asyncio.subprocess.Process] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)
    wanted: list[int] = field(default_factory=list)

    @classmethod
    async def start(cls, n: int, batch_s: float) -> ClientProcs:
        fleet = cls()
        for i in range(n):
            log = WORK / "fanout" / f"clients-{i}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            f = open(log, "ab")  # noqa: SIM115 - closed in close()
            fleet.logs.append(f)
            fleet.procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.push",
                    "clients",
                    "--batch-s",
                    str(batch_s),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=f,
                    cwd=ROOT,
                    limit=1 << 20,
                )
            )
            fleet.wanted.append(0)
        return fleet

    @property
    def pids(self) -> dict[str, int]:
        return {f"clients{i}": p.pid for i, p in enumerate(self.procs)}

    async def _ask(self, i: int, msg: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        p = self.procs[i]
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(json.dumps(msg).encode() + b"\n")
        await p.stdin.drain()
        line = await asyncio.wait_for(p.stdout.readline(), timeout)
        if not line:
            raise PhaseError(f"client process {p.pid} exited (see {WORK / 'fanout'})")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise PhaseError(f"client process {p.pid}: {reply.get('error')}")
        return reply

    async def connect(self, port: int, total: int, stalled: int = 0) -> None:
        """Bring the number of subscribers up to ``total``, spread evenly over the processes;
        ``stalled`` of the new ones (also spread) stop reading after their snapshot."""
        k = len(self.procs)
        asks = []
        for i in range(k):
            want = total // k + (1 if i < total % k else 0)
            if want > self.wanted[i]:
                msg = {"cmd": "connect", "port": port, "n": want - self.wanted[i]}
                msg["stalled"] = stalled // k + (1 if i < stalled % k else 0)
                asks.append(self._ask(i, msg))
                self.wanted[i] = want
        await asyncio.gather(*asks)

    async def stats(
        self, mark: bool = False, gaps: bool = False, gap_start: bool = False
    ) -> dict[str, Any]:
        msg = {"cmd": "stats", "mark": mark, "gaps": gaps, "gap_start": gap_start}
        parts = await asyncio.gather(*(self._ask(i, msg) for i in range(len(self.procs))))
        out = {
            "conns": sum(p["conns"] for p in parts),
            "stalled": sum(p["stalled"] for p in parts),
            "ready": sum(p["ready"] for p in parts),
            "frames": sum(p["frames"] for p in parts),
            "bytes": sum(p["bytes"] for p in parts),
            "closed": sum(p["closed"] for p in parts),
            "min_since_mark": min(p["min_since_mark"] for p in parts),
            "max_since_mark": max(p["max_since_mark"] for p in parts),
        }
        if gaps:
            out["gaps"] = sorted(g for p in parts for g in p["gaps"])
        return out

    async def drain(self, seconds: float) -> dict[str, Any]:
        """Read the stalled subscribers (see ``_Fleet.drain``), summed over the processes."""
        parts = await asyncio.gather(
            *(
                self._ask(i, {"cmd": "drain", "seconds": seconds}, timeout=seconds + 60)
                for i in range(len(self.procs))
            )
        )
        codes: dict[str, int] = {}
        for p in parts:
            for code, count in p["close_codes"].items():
                codes[code] = codes.get(code, 0) + count
        return {
            "stalled": sum(p["stalled"] for p in parts),
            "close_codes": codes,
            "eof": sum(p["eof"] for p in parts),
            "open": sum(p["open"] for p in parts),
            "bytes": sum(p["bytes"] for p in parts),
            "frames": sum(p["frames"] for p in parts),
        }

    async def wait_ready(self, total: int, timeout: float = 60.0) -> None:
        deadline = time.perf_counter() + timeout
        while True:
            s = await self.stats()
            if s["ready"] >= total:
                return
            if s["closed"] or time.perf_counter() > deadline:
                raise PhaseError(
                    f"subscribers: {s['ready']:,}/{total:,} got their snapshot, "
                    f"{s['closed']:,} were closed by the server"
                )
            await asyncio.sleep(0.2)

    async def close(self) -> None:
        for i, p in enumerate(self.procs):
            if p.returncode is None:
                with contextlib.suppress(Exception):
                    await self._ask(i, {"cmd": "close"}, timeout=30)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.wait(), 10)
                if p.returncode is None:
                    p.kill()
                    await p.wait()
        for f in self.logs:
            f.close()


# -- the naive baseline server (a child process) -------------------------------------------------


async def naive_server(port: int, url: str, prefix: str, tick_s: float) -> None:
    """What one would write first: per tick, read the top 10 when the board changed, then for
    each client ``await ws.send(orjson.dumps(frame))``: serialised per client, each send awaited."""
    import redis.asyncio as aioredis
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed

    r = aioredis.Redis.from_url(url, decode_responses=True)
    board_key, changes_key = f"{prefix}:board:all", f"{prefix}:changes"
    clients: set[ServerConnection] = set()
    top: list[dict[str, Any]] = []
    seq = 0

    async def handler(ws: ServerConnection) -> None:
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1}).decode())
        try:
            async for message in ws:
                msg = orjson.loads(message)
                if msg.get("op") == "subscribe":
                    await ws.send(
                        orjson.dumps(
                            {"type": "subscribed", "channel": "board:all", "seq": seq}
                        ).decode()
                    )
                    await ws.send(
                        orjson.dumps(
                            {"type": "snapshot", "channel": "board:all", "seq": seq, "entries": top}
                        ).decode()
                    )
                    clients.add(ws)
        except ConnectionClosed:
            pass
        finally:
            clients.discard(ws)

    async def ticker() -> None:
        nonlocal top, seq
        last: object = None
        while True:
            started = time.monotonic()
            src: object = await r.hget(changes_key, "all")
            if src != last:
                last = src
                rows = cast(
                    list[tuple[str, float]], await r.zrevrange(board_key, 0, 9, withscores=True)
                )
                size = await r.zcard(board_key)
                new = [
                    {"rank": i + 1, "member": m, "score": round(s / 1000.0, 3)}
                    for i, (m, s) in enumerate(rows)
                ]
                # the protocol's delta (docs/protocol.md), so frames are about as big as ours
                before = {e["member"]: e for e in top}
                entered, moved, score = [], [], []
                for e in new:
                    o = before.pop(e["member"], None)
                    if o is None:
                        entered.append(e)
                    elif o["rank"] != e["rank"]:
                        moved.append(
                            {
                                "member": e["member"],
                                "from": o["rank"],
                                "to": e["rank"],
                                "score": e["score"],
                            }
                        )
                    elif o["score"] != e["score"]:
                        score.append(e)
                left = [{"member": m, "rank": o["rank"]} for m, o in before.items()]
                seq += 1
                top = new
                frame = {
                    "type": "delta",
                    "channel": "board:all",
                    "epoch": "0badc0de0000",
                    "seq": seq,
                    "as_of": time.time(),
                    "members": size,
                    "entered": entered,
                    "left": left,
                    "moved": moved,
                    "score": score,
                }
                for ws in list(clients):
                    try:
                        await ws.send(orjson.dumps(frame), text=True)
                    except ConnectionClosed:
                        clients.discard(ws)
            await asyncio.sleep(max(0.0, tick_s - (time.monotonic() - started)))

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=4):
        await ticker()


# -- the phases ----------------------------------------------------------------------------------


def _scoring_file(path: Path) -> Path:
    """The packaged scoring rules with ``conversion`` worth PROBE_POINTS (probes only use it)."""
    from importlib import resources

    text = resources.files("leaderboard").joinpath("scoring.toml").read_text()
    lines = []
    for line in text.splitlines():
        if line.startswith("version"):
            line = 'version = "bench-push"'
        elif line.split("=")[0].strip() == "conversion":
            line = f"conversion = {PROBE_POINTS}"
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    ScoringRules.load(path)  # fails here, not in the worker, if the file is wrong
    return path


@dataclass
class _Load:
    """Pre-encoded background envelopes: (partition, key, value, events, newest ts)."""

    messages: list[tuple[int, bytes, bytes, int, float]]
    events: int


def _encode_load(higgs: Path, n: int, envelope: int, partitions: int) -> _Load:
    """Higgs events grouped by partition into envelopes of ``envelope`` events, in log order
    (what ``broker.producer.produce`` sends), encoded up front so producing costs little CPU."""
    out: list[tuple[int, bytes, bytes, int, float]] = []
    parts: dict[bytes, int] = {}
    bufs: dict[int, list[dict[str, Any]]] = {}
    keys: dict[int, bytes] = {}
    events = 0

    def flush(p: int) -> None:
        items = bufs.pop(p, None)
        if items:
            out.append((p, keys.pop(p), orjson.dumps(items), len(items), float(items[-1]["ts"])))

    for item in higgs_items(higgs, n):
        if not isinstance(item, dict):
            continue
        key = partition_key(item)
        p = parts.get(key)
        if p is None:
            p = parts[key] = partition_for(key, partitions)
        bufs.setdefault(p, []).append(item)
        keys.setdefault(p, key)
        events += 1
        if len(bufs[p]) >= envelope:
            flush(p)
    for p in list(bufs):
        flush(p)
    return _Load(out, events)


async def _sustainable_rate(bench: Bench) -> tuple[float, str]:
    override = os.environ.get("BENCH_PUSH_SUSTAINABLE_RATE")
    if override:
        return float(override), "BENCH_PUSH_SUSTAINABLE_RATE"
    env_res = bench.results.get("envelope")
    if env_res:
        return float(env_res["events_per_s"]), "envelope phase of this run"
    say("  no envelope phase in this run: measuring the sustainable envelope rate first")
    res = await bench.ingest_worker("e2e-rate", bench.n(200_000), 500)
    bench.results["e2e_rate"] = res
    return float(res["events_per_s"]), "quick envelope measurement of this run"


@dataclass
class _Live:
    """The e2e phase's running pieces: where the background load stands, and the probes."""

    bench: Bench
    settings: Any
    store: Store
    producer: Any
    load: _Load
    worker: Any
    web: Any
    i: int = 0  # next background message
    sent_events: int = 0
    last_ts: float = 0.0
    probes: int = 0
    sent_at: dict[str, float] = field(default_factory=dict)
    applied_at: dict[str, float] = field(default_factory=dict)
    seen_at: dict[str, float] = field(default_factory=dict)
    frames: int = 0

    async def send_next(self) -> Any:
        p, k, v, n, self.last_ts = self.load.messages[self.i]
        self.i += 1
        self.sent_events += n
        return await self.producer.send(self.settings.broker.topic, value=v, key=k, partition=p)

    async def send_probe(self) -> Any:
        """One event that puts a new member at the top of board:all (ties with earlier probes
        sort after it), stamped with the send time, kept here by member id."""
        self.probes += 1
        member = f"{PROBE_PREFIX}{self.probes:06d}"
        event = {
            "id": f"{member}-{self.bench.run_id}",
            "ts": self.last_ts,  # event time of the background, so no watermark jump
            "kind": "conversion",
            "actor": f"probe-actor-{self.probes}",
            "target": member,
        }
        key = member.encode()
        self.sent_at[member] = time.perf_counter()
        return await self.producer.send(
            self.settings.broker.topic,
            value=orjson.dumps(event),
            key=key,
            partition=partition_for(key, self.settings.broker.partitions),
        )

    async def applied(self) -> int:
        return int((await self.store.stats())["total"])

    async def watch_applied(self) -> None:
        """When each probe reached Redis (polled every 5 ms): splits the latency into produce →
        applied (broker, worker) and applied → frame (web process, websocket)."""
        key = self.store.key("board", "all")
        while True:
            waiting = [m for m in self.sent_at if m not in self.applied_at][:200]
            if waiting:
                scores = await self.store.client.zmscore(key, waiting)
                now = time.perf_counter()
                for m, sc in zip(waiting, scores, strict=True):
                    if sc is not None:
                        self.applied_at[m] = now
            await asyncio.sleep(0.005)

    async def subscriber(self, ws: Any) -> None:
        """board:all, limit 10: the first frame that shows a probe in the top 10."""

        def note(entries: list[dict[str, Any]], now: float) -> None:
            for e in entries:
                m = e.get("member", "")
                if m.startswith(PROBE_PREFIX) and m not in self.seen_at:
                    self.seen_at[m] = now

        async for raw in ws:
            now = time.perf_counter()
            f = orjson.loads(raw)
            self.frames += 1
            if f["type"] == "delta":
                note(f["entered"], now)
                note(f["moved"], now)
            elif f["type"] == "snapshot":
                note(f["entries"], now)


async def _e2e_leg(
    live: _Live,
    fraction: float,
    sustainable: float,
    seconds: float,
    warm_s: float,
    probes_per_s: float,
) -> dict[str, Any]:
    """Background load at ``fraction`` × the sustainable rate with probes; latency of the probes
    sent after ``warm_s`` seconds of load."""
    bench, store = live.bench, live.store
    rate = sustainable * fraction
    meter = CpuMeter(
        {"worker": live.worker.pid, "web": live.web.pid, "bench": os.getpid()} | bench.server_pids()
    )
    pending: list[Any] = []
    first_probe = live.probes + 1
    leg_events = 0
    t0 = time.perf_counter()
    t_measure = t0 + warm_s
    t_end = t_measure + seconds
    next_probe = t_measure
    next_note = t0 + 5.0
    metering = False
    while True:
        now = time.perf_counter()
        if now >= t_end:
            break
        if live.i >= len(live.load.messages):
            raise PhaseError("e2e: ran out of pre-encoded background events")
        if not metering and now >= t_measure:
            meter.begin()
            await store.client.config_resetstat()
            metering = True
        before = live.sent_events
        while live.i < len(live.load.messages) and leg_events < rate * (now - t0):
            pending.append(await live.send_next())
            leg_events += live.sent_events - before
            before = live.sent_events
        while now >= next_probe:
            pending.append(await live.send_probe())
            next_probe += 1.0 / probes_per_s
        if len(pending) > 2000:
            await asyncio.gather(*pending)
            pending.clear()
        if now >= next_note:
            probes = range(first_probe, live.probes + 1)
            n_seen = sum(1 for k in probes if f"{PROBE_PREFIX}{k:06d}" in live.seen_at)
            say(
                f"  ... {now - t0:4.0f} s: produced {live.sent_events:,} events, applied "
                f"{await live.applied():,}; probes {n_seen}/{len(probes)} seen"
            )
            next_note += 5.0
        await asyncio.sleep(0.005)
    t_stop = time.perf_counter()
    cpu = meter.end()
    cmds = await bench.redis_commands(live.settings, t_stop - t_measure)
    await asyncio.gather(*pending)
    produced = live.sent_events + live.probes
    # how far behind the worker was when the load stopped, and how long it took to catch up
    drain_start = time.perf_counter()
    lag_at_end = produced - await live.applied()
    while await live.applied() < produced and time.perf_counter() - drain_start < 60:
        await asyncio.sleep(0.05)
    drain_s = time.perf_counter() - drain_start
    names = [f"{PROBE_PREFIX}{k:06d}" for k in range(first_probe, live.probes + 1)]
    deadline = time.perf_counter() + 3.0
    while any(m not in live.seen_at for m in names) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    sent, seen, applied = live.sent_at, live.seen_at, live.applied_at
    lat = sorted((seen[m] - sent[m]) * 1000 for m in names if m in seen)
    to_redis = sorted((applied[m] - sent[m]) * 1000 for m in names if m in applied)
    to_frame = sorted(
        max(0.0, seen[m] - applied[m]) * 1000 for m in names if m in seen and m in applied
    )
    if not lat:
        raise PhaseError(f"e2e: no probe reached the subscriber ({len(names)} sent)")

    def q(values: list[float], p: float) -> float | None:
        return quantile(values, p) if values else None

    res = {
        "fraction": fraction,
        "target_events_per_s": rate,
        "background_events_per_s": leg_events / max(t_stop - t0, 1e-9),
        "seconds": t_stop - t_measure,
        "probes_sent": len(names),
        "probes_seen": len(lat),
        "p50_ms": quantile(lat, 0.50),
        "p90_ms": quantile(lat, 0.90),
        "p99_ms": quantile(lat, 0.99),
        "max_ms": lat[-1],
        "min_ms": lat[0],
        "applied_p50_ms": q(to_redis, 0.50),
        "applied_p99_ms": q(to_redis, 0.99),
        "push_p50_ms": q(to_frame, 0.50),
        "push_p99_ms": q(to_frame, 0.99),
        "lag_at_end_events": lag_at_end,
        "drain_s": drain_s,
        # the worker kept up if what was in flight when the load stopped took at most this long
        "kept_up": drain_s <= KEPT_UP_DRAIN_S,
        "cpu": cpu,
        "redis_commands": cmds,
    }
    say(
        f"  e2e at {fraction:g} x {sustainable:,.0f} = {res['background_events_per_s']:,.0f}"
        f" events/s: p50 {res['p50_ms']:.0f} ms, p90 {res['p90_ms']:.0f} ms, p99"
        f" {res['p99_ms']:.0f} ms, max {res['max_ms']:.0f} ms ({len(lat)}/{len(names)} probes);"
        f" {lag_at_end:,} events behind when the load stopped, caught up in {drain_s:.1f} s;"
        f" cpu % of a core: {cpu}"
    )
    if to_redis and to_frame:
        say(
            f"  split: produce -> applied in Redis p50 {res['applied_p50_ms']:.0f} ms, p99"
            f" {res['applied_p99_ms']:.0f} ms; applied -> frame at the subscriber p50"
            f" {res['push_p50_ms']:.0f} ms, p99 {res['push_p99_ms']:.0f} ms"
        )
    say(f"  redis command time: {_fmt_cmds(cmds)}")
    return res


async def e2e(bench: Bench) -> dict[str, Any]:
    """Produce → Tansu → ``kudos worker`` → Redis → ``kudos web`` → websocket subscriber, at
    fractions of the sustainable ingest rate (0.5 is the one with a target)."""
    from aiokafka import AIOKafkaProducer
    from websockets.asyncio.client import connect

    sustainable, source = await _sustainable_rate(bench)
    fractions = sorted(
        float(x) for x in os.environ.get("BENCH_PUSH_E2E_FRACTIONS", "0.25,0.5,0.7").split(",") if x
    )
    seconds = _env_float("BENCH_PUSH_E2E_S", 20.0)
    probes_per_s = _env_float("BENCH_PUSH_PROBES_PER_S", 10.0)
    envelope = _env_int("BENCH_PUSH_ENVELOPE", 100)
    fetch_wait = os.environ.get("BENCH_PUSH_FETCH_WAIT_MS", "")
    warm_s = 5.0
    say(
        f"  sustainable rate {sustainable:,.0f} events/s ({source}); background at "
        f"{', '.join(f'{f:g}' for f in fractions)} x that, envelopes of {envelope}; probes "
        f"{probes_per_s:g}/s for {seconds:g} s after {warm_s:g} s of load"
    )
    settings, env = bench.settings("e2e")
    scoring = _scoring_file(WORK / "e2e" / "scoring.toml")
    env["KUDOS_SCORING_PATH"] = str(scoring)
    settings = load_settings(env)
    port = servers.free_port()
    env["KUDOS_WEB_PORT"] = str(port)
    await bench.fresh_db(settings)
    await ensure_topics(settings)
    store = Store.connect(settings.redis.url, settings.redis.prefix, ScoringRules.load(scoring))
    if fetch_wait:
        env["KUDOS_WORKER_FETCH_MAX_WAIT_MS"] = fetch_wait
    worker = bench.spawn("e2e", [sys.executable, "-m", "kudos", "worker"], env)
    web = bench.spawn("e2e-web", [sys.executable, "-m", "kudos", "web"], env)
    producer = AIOKafkaProducer(  # as broker.producer.produce
        bootstrap_servers=bootstrap(settings),
        acks="all",
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=16 << 20,
    )
    tasks: list[asyncio.Task[None]] = []
    legs: dict[str, Any] = {}
    try:
        t = time.perf_counter()
        n_events = int(sum(sustainable * f for f in fractions) * (seconds + warm_s + 2)) + 1000
        load = await asyncio.to_thread(
            _encode_load, bench.higgs, n_events, envelope, settings.broker.partitions
        )
        say(
            f"  encoded {load.events:,} Higgs events into {len(load.messages):,} envelopes "
            f"in {time.perf_counter() - t:.1f} s"
        )
        servers.wait_port("web", "127.0.0.1", port, web, WORK / "e2e-web" / "e2e-web.log")
        await producer.start()
        live = _Live(bench, settings, store, producer, load, worker, web)
        # warm-up: the first envelope, applied once the worker has joined its group
        await (await live.send_next())
        deadline = time.perf_counter() + 60
        while await live.applied() < live.sent_events:
            if worker.poll() is not None or time.perf_counter() > deadline:
                raise PhaseError(
                    f"e2e: the worker applied nothing:\n{servers.tail(WORK / 'e2e' / 'e2e.log')}"
                )
            await asyncio.sleep(0.05)
        say(f"  worker ready {time.perf_counter() - t:.1f} s after start")
        ws = await connect(f"ws://127.0.0.1:{port}/ws", max_queue=None)
        await ws.send(
            orjson.dumps({"op": "subscribe", "channel": "board:all", "limit": 10}).decode()
        )
        tasks = [
            asyncio.create_task(live.subscriber(ws)),
            asyncio.create_task(live.watch_applied()),
        ]
        for f in fractions:
            legs[f"{f:g}"] = await _e2e_leg(live, f, sustainable, seconds, warm_s, probes_per_s)
        await ws.close()
        stats = await store.stats()
        frames = live.frames
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await producer.stop()
        servers.stop(web, timeout=8)
        servers.stop(worker, timeout=8)
        await store.close()
    return {
        "sustainable_events_per_s": sustainable,
        "sustainable_source": source,
        "envelope": envelope,
        "fetch_max_wait_ms": int(fetch_wait) if fetch_wait else None,
        "probes_per_s": probes_per_s,
        "frames": frames,
        "stats": stats,
        "legs": legs,
    }


async def _drive(store: Store, stop: asyncio.Event, counter: list[int]) -> None:
    """Change the board the way a worker's apply does: scores in board:all, then the board's change
    counter in ``changes`` (what the web process polls)."""
    board, changes = store.key("board", "all"), store.key("changes")
    members = [f"user-{i:04d}" for i in range(10)]
    rng = random.Random(7)
    period = 1.0 / FANOUT_CHANGES_PER_S
    nxt = time.perf_counter()
    while not stop.is_set():
        pipe = store.client.pipeline(transaction=False)
        pipe.zincrby(board, 1000 * rng.randint(1, 5), rng.choice(members))
        pipe.hincrby(changes, "all", 1)
        await pipe.execute()
        counter[0] += 1
        nxt += period
        await asyncio.sleep(max(0.0, nxt - time.perf_counter()))


async def _seed(store: Store) -> None:
    pipe = store.client.pipeline(transaction=False)
    pipe.zadd(
        store.key("board", "all"),
        {f"user-{i:04d}": (FANOUT_MEMBERS - i) * 10_000 for i in range(FANOUT_MEMBERS)},
    )
    pipe.sadd(store.key("boards"), "all")
    pipe.set(store.key("wm"), 1341100800)
    pipe.hincrby(store.key("changes"), "all", 1)
    await pipe.execute()


async def _fanout_server(
    bench: Bench,
    label: str,
    proc: Any,
    port: int,
    store: Store,
    stages: list[int],
    window_s: float,
    client_procs: int,
) -> dict[str, Any]:
    fleet = await ClientProcs.start(client_procs, batch_s=0.05)
    out: dict[str, Any] = {"stages": {}}
    try:
        await asyncio.sleep(1.0)
        rss0 = rss_kib(proc.pid)
        out["rss_before_kib"] = rss0
        for n in stages:
            t = time.perf_counter()
            await fleet.connect(port, n)
            await fleet.wait_ready(n)
            connect_s = time.perf_counter() - t
            await asyncio.sleep(1.0)
            rss = rss_kib(proc.pid)
            per_conn = (rss - rss0) / n
            say(
                f"  {label}: {n:,} subscribers connected and subscribed in {connect_s:.1f} s;"
                f" idle RSS {rss / 1024:,.0f} MiB = {per_conn:.1f} KiB per connection"
            )
            stop = asyncio.Event()
            changes = [0]
            driver = asyncio.create_task(_drive(store, stop, changes))
            await asyncio.sleep(1.0)
            meter = CpuMeter({"server": proc.pid, **fleet.pids, **bench.server_pids()})
            s0 = await fleet.stats(mark=True)
            c0 = changes[0]
            meter.begin()
            t0 = time.perf_counter()
            await asyncio.sleep(window_s)
            s1 = await fleet.stats()
            dt = time.perf_counter() - t0
            cpu = meter.end()
            n_changes = changes[0] - c0
            stop.set()
            await driver
            frames = s1["frames"] - s0["frames"]
            nbytes = s1["bytes"] - s0["bytes"]
            fps = frames / dt
            clients_cpu = round(sum(v for k, v in cpu.items() if k.startswith("clients")), 1)
            st = {
                "subscribers": n,
                "connect_s": connect_s,
                "rss_kib": rss,
                "idle_kib_per_conn": per_conn,
                "frames_per_s": fps,
                "frames_per_client_s": fps / n,
                "bytes_per_frame": nbytes / max(frames, 1),
                "mib_per_s": nbytes / dt / (1 << 20),
                "changes_per_s": n_changes / dt,
                "min_frames_per_client": s1["min_since_mark"],
                "max_frames_per_client": s1["max_since_mark"],
                "closed": s1["closed"],
                "seconds": dt,
                "cpu": cpu,
                "server_cpu": cpu["server"],
                "clients_cpu": clients_cpu,
                "frames_per_cpu_s": fps / max(cpu["server"] / 100.0, 1e-9),
            }
            out["stages"][str(n)] = st
            say(
                f"  {label} {n:,} subscribers: {fps:,.0f} frames/s ({fps / n:.1f} per client/s,"
                f" {st['bytes_per_frame']:.0f} B/frame, per client {st['min_frames_per_client']}"
                f"..{st['max_frames_per_client']} frames in {dt:.1f} s); cpu server"
                f" {cpu['server']:.0f}%, clients {clients_cpu:.0f}%, redis {cpu['redis']:.0f}%"
            )
            if s1["closed"]:
                raise PhaseError(f"{label}: the server closed {s1['closed']} subscribers")
            await asyncio.sleep(0.5)
    finally:
        await fleet.close()
    return out


async def _stalled_leg(
    bench: Bench,
    label: str,
    proc: Any,
    port: int,
    store: Store,
    n: int,
    n_stalled: int,
    fill_s: float,
    window_s: float,
    client_procs: int,
    log: Path,
    log_from: int,
) -> dict[str, Any]:
    """``n`` subscribers on a fresh server, ``n_stalled`` of which stop reading after their
    snapshot. Changes for ``fill_s`` seconds (the stalled sockets fill up), then ``window_s``
    measured over the ones that read; frames/s sampled every second throughout. Afterwards the
    stalled sockets are read, to see what the server did with them."""
    fleet = await ClientProcs.start(client_procs, batch_s=0.05)
    healthy = n - n_stalled
    try:
        await asyncio.sleep(1.0)
        t = time.perf_counter()
        await fleet.connect(port, n, n_stalled)
        await fleet.wait_ready(healthy)
        connect_s = time.perf_counter() - t
        s = await fleet.stats()
        if s["stalled"] != n_stalled:
            raise PhaseError(f"{label}: {s['stalled']} stalled subscribers, wanted {n_stalled}")
        say(
            f"  {label}: {n:,} subscribers ({n_stalled} of them stop reading after their snapshot)"
            f" connected and subscribed in {connect_s:.1f} s"
        )
        await asyncio.sleep(1.0)
        stop = asyncio.Event()
        changes = [0]
        meter = CpuMeter({"server": proc.pid, **fleet.pids, **bench.server_pids()})
        prev = (await fleet.stats(gap_start=True))["frames"]
        driver = asyncio.create_task(_drive(store, stop, changes))
        t_start = prev_t = time.perf_counter()
        first_change_at = time.time()
        end = fill_s + window_s
        marks = sorted({round(float(k), 3) for k in range(1, int(end))} | {fill_s, end})
        timeline: list[tuple[float, float]] = []
        s0: dict[str, Any] = {}
        s1: dict[str, Any] = {}
        t0 = dt = 0.0
        c0 = n_changes = 0
        cpu: dict[str, float] = {}
        for b in (m for m in marks if m <= end):
            await asyncio.sleep(max(0.0, t_start + b - time.perf_counter()))
            st = await fleet.stats(mark=b == fill_s, gaps=b == end)
            now = time.perf_counter()
            timeline.append((round(now - t_start, 2), (st["frames"] - prev) / (now - prev_t)))
            prev, prev_t = st["frames"], now
            if b == fill_s:
                s0, t0, c0 = st, now, changes[0]
                meter.begin()
            if b == end:
                s1, dt, n_changes = st, now - t0, changes[0] - c0
                cpu = meter.end()
        stop.set()
        await driver
        drained = await fleet.drain(STALL_DRAIN_S)
    finally:
        await fleet.close()
    frames = s1["frames"] - s0["frames"]
    nbytes = s1["bytes"] - s0["bytes"]
    fps = frames / dt
    gaps: list[float] = s1["gaps"]
    rates = [r for _, r in timeline[1:]]  # the first second: the first tick and the driver start
    normal = sorted(rates[:5])[len(rates[:5]) // 2] if rates else 0.0
    stopped_at = next((at for at, r in timeline[1:] if r < 0.5 * normal), None)
    marked_slow = None
    if label == "kudos":
        with open(log, "rb") as f:
            f.seek(log_from)
            marked_slow = f.read().count(b"slow client")
    clients_cpu = round(sum(v for k, v in cpu.items() if k.startswith("clients")), 1)
    st = {
        "subscribers": n,
        "healthy": healthy,
        "stalled": n_stalled,
        "stall_rcvbuf": STALL_RCVBUF,
        "stall_mss": STALL_MSS,
        "fill_s": fill_s,
        "first_change_at": first_change_at,  # wall clock, to match the server's log
        "connect_s": connect_s,
        "frames_per_s": fps,
        "frames_per_client_s": fps / healthy,
        "bytes_per_frame": nbytes / max(frames, 1),
        "mib_per_s": nbytes / dt / (1 << 20),
        "changes_per_s": n_changes / dt,
        "min_frames_per_client": s1["min_since_mark"],
        "max_frames_per_client": s1["max_since_mark"],
        "max_gap_s": gaps[-1] if gaps else None,
        "p50_gap_s": quantile(gaps, 0.5) if gaps else None,
        "p99_gap_s": quantile(gaps, 0.99) if gaps else None,
        "clients_gap_over_1s": sum(1 for g in gaps if g > 1.0),
        "closed": s1["closed"],
        "seconds": dt,
        "cpu": cpu,
        "server_cpu": cpu["server"],
        "clients_cpu": clients_cpu,
        "frames_per_cpu_s": fps / max(cpu["server"] / 100.0, 1e-9),
        # healthy frames/s per ~1 s from the first change: (seconds since, frames/s)
        "timeline": [(at, round(r)) for at, r in timeline],
        "normal_frames_per_s": normal,
        "stopped_at_s": stopped_at,
        "min_1s_frames_per_s": min(rates, default=0.0),
        "marked_slow": marked_slow,
        "stalled_after": drained,
        "closed_1013": drained["close_codes"].get("1013", 0),
    }
    say(
        f"  {label} {n:,} subscribers, {n_stalled} stalled, after {fill_s:g} s of changes:"
        f" {fps:,.0f} frames/s to the {healthy:,} that read ({fps / healthy:.1f} per client/s,"
        f" per client {st['min_frames_per_client']}..{st['max_frames_per_client']} frames in"
        f" {dt:.1f} s; longest wait for a frame since the first change {st['max_gap_s']:.2f} s,"
        f" p50 {st['p50_gap_s']:.2f} s); 1-s rates from the first change:"
        f" {', '.join(f'{r:,.0f}' for _, r in timeline)}; cpu server {cpu['server']:.0f}%,"
        f" clients {clients_cpu:.0f}%"
    )
    say(
        f"  {label} stalled subscribers: "
        + (f"{marked_slow} marked slow in the server log; " if marked_slow is not None else "")
        + f"read afterwards: close codes {drained['close_codes'] or 'none'}, {drained['eof']}"
        f" closed, {drained['open']} still open, {drained['bytes']:,} bytes /"
        f" {drained['frames']:,} frames were waiting for them"
    )
    if s1["closed"]:
        say(f"  {label}: the server closed {s1['closed']} subscribers that were reading")
    return st


async def fanout(bench: Bench) -> dict[str, Any]:
    """Frames/s of one ``kudos web`` process to 1k/5k/10k board:all subscribers, memory per idle
    connection; then the same with the naive server."""
    stages = [
        int(x) for x in os.environ.get("BENCH_PUSH_STAGES", "1000,5000,10000").split(",") if x
    ]
    window_s = _env_float("BENCH_PUSH_WINDOW_S", 5.0)
    client_procs = _env_int("BENCH_PUSH_CLIENT_PROCS", 1)
    stall = [int(x) for x in os.environ.get("BENCH_PUSH_STALL", "5000,50").split(",") if x]
    stall_n, stall_k = [*stall, 0, 0][:2] if stall and stall[0] > 0 else [0, 0]
    if stall_n and not 0 < stall_k < stall_n:
        raise PhaseError(f"BENCH_PUSH_STALL: {stall_k} stalled of {stall_n} subscribers")
    fill_s = _env_float("BENCH_PUSH_STALL_FILL_S", 30.0)
    slow_bytes = _env_int("BENCH_PUSH_STALL_SLOW_BYTES", 65536)
    nofile = raise_nofile()
    most = max([*stages, stall_n])
    if nofile < most + 100:
        raise PhaseError(f"open-file limit {nofile} is too low for {most:,} sockets")
    settings, env = bench.settings("fanout")
    await bench.fresh_db(settings)
    store = Store.connect(
        settings.redis.url, settings.redis.prefix, ScoringRules.load(settings.scoring.path or None)
    )
    out: dict[str, Any] = {
        "stages": stages,
        "window_s": window_s,
        "client_procs": client_procs,
        "tick_s": settings.web.tick_s,
    }
    if stall_n:
        out["stall"] = {
            "subscribers": stall_n,
            "stalled": stall_k,
            "fill_s": fill_s,
            "rcvbuf": STALL_RCVBUF,
            "mss": STALL_MSS,
            "kudos_slow_client_bytes": slow_bytes or settings.web.slow_client_bytes,
            "kudos_slow_client_timeout_s": settings.web.slow_client_timeout_s,
        }
    legs = [(label, False) for label in ("kudos", "naive")]
    legs += [(label, True) for label in ("kudos", "naive") if stall_n]
    try:
        await _seed(store)
        for label, stalled in legs:
            port = servers.free_port()
            name = f"fanout-{label}" + ("-stalled" if stalled else "")
            leg_env = {**env, "KUDOS_WEB_PORT": str(port)}
            if label == "kudos":
                argv = [sys.executable, "-m", "kudos", "web"]
                # every subscriber of the bench comes from 127.0.0.1: lift the per-address cap
                # (unless the run sets it) so the stages measure fan-out, not the cap
                leg_env.setdefault("KUDOS_WEB_MAX_CONNECTIONS_PER_ADDRESS", str(10**6))
                if stalled and slow_bytes:
                    leg_env["KUDOS_WEB_SLOW_CLIENT_BYTES"] = str(slow_bytes)
            else:
                argv = [sys.executable, "-m", "bench.push", "naive-server", "--port", str(port)]
                argv += ["--redis-url", settings.redis.url, "--prefix", settings.redis.prefix]
                argv += ["--tick-s", str(settings.web.tick_s)]
            log = WORK / name / f"{name}.log"
            log_from = log.stat().st_size if log.exists() else 0
            proc = bench.spawn(name, argv, leg_env)
            try:
                servers.wait_port(name, "127.0.0.1", port, proc, log)
                if not stalled:
                    out[label] = await _fanout_server(
                        bench, label, proc, port, store, stages, window_s, client_procs
                    )
                else:
                    out.setdefault(label, {"stages": {}})["stalled"] = await _stalled_leg(
                        bench,
                        label,
                        proc,
                        port,
                        store,
                        stall_n,
                        stall_k,
                        fill_s,
                        window_s,
                        client_procs,
                        log,
                        log_from,
                    )
            finally:
                servers.stop(proc, timeout=10)
    finally:
        await store.client.flushdb()
        await store.close()
    return out


# -- the table -----------------------------------------------------------------------------------

Row = Callable[..., None]


def add_rows(results: dict[str, Any], errors: dict[str, str], row: Row) -> None:
    """The push rows of the bench table (``row(metric, value, unit, target, ok, detail)``)."""
    if "e2e" in results:
        x = results["e2e"]
        for frac, leg in x["legs"].items():
            at_target = float(frac) == 0.5
            load = (
                f"{leg['background_events_per_s']:,.0f} ev/s = {frac} x"
                f" {x['sustainable_events_per_s']:,.0f} ({x['sustainable_source']}), envelopes"
                f" of {x['envelope']}"
            )
            if x.get("fetch_max_wait_ms"):
                load += f"; worker fetch_max_wait_ms {x['fetch_max_wait_ms']}"
            row(f"push.e2e produce->frame p50 @{frac}x", leg["p50_ms"], "ms", detail=load)
            split = ""
            if leg["applied_p99_ms"] is not None and leg["push_p99_ms"] is not None:
                split = (
                    f"; p99 produce->Redis {leg['applied_p99_ms']:.0f} ms,"
                    f" Redis->frame {leg['push_p99_ms']:.0f} ms"
                )
            row(
                f"push.e2e produce->frame p99 @{frac}x",
                leg["p99_ms"],
                "ms",
                f"<= {E2E_P99_TARGET_MS:g}" if at_target else "",
                leg["p99_ms"] <= E2E_P99_TARGET_MS if at_target else None,
                f"max {leg['max_ms']:.0f} ms, {leg['probes_seen']}/{leg['probes_sent']} probes"
                f"{split}; {leg['lag_at_end_events']:,} ev behind at the end, caught up in"
                f" {leg['drain_s']:.1f} s"
                + ("" if leg["kept_up"] else " (worker fell behind: load NOT sustainable)"),
            )
            if float(frac) == E2E_SUSTAIN_TARGET:
                row(
                    f"push.e2e events behind at the end @{frac}x",
                    leg["lag_at_end_events"],
                    "events",
                    f"caught up <= {KEPT_UP_DRAIN_S:g} s",
                    bool(leg["kept_up"]),
                    f"{leg['background_events_per_s']:,.0f} ev/s; caught up in"
                    f" {leg['drain_s']:.1f} s after the load stopped; p50 {leg['p50_ms']:.0f} ms",
                )
    elif "e2e" in errors:
        row("push.e2e produce->frame p99", None, "ms", detail="ERROR: " + errors["e2e"][:120])
    if "fanout" in results:
        x = results["fanout"]
        for label in ("kudos", "naive"):
            if label not in x:
                continue
            for n, st in x[label]["stages"].items():
                at_target = int(n) == FANOUT_TARGET_AT and label == "kudos"
                row(
                    f"push.fanout {label} {int(n) // 1000}k subs",
                    st["frames_per_s"],
                    "frames/s",
                    f">= {FANOUT_TARGET:,.0f}" if at_target else "",
                    st["frames_per_s"] >= FANOUT_TARGET if at_target else None,
                    f"{st['frames_per_client_s']:.1f}/client/s, {st['bytes_per_frame']:.0f} B;"
                    f" cpu server {st['server_cpu']:.0f}%, clients {st['clients_cpu']:.0f}%;"
                    f" {st['frames_per_cpu_s']:,.0f} frames per server cpu-s",
                )
        if "kudos" in x and "naive" in x:
            common = [n for n in x["kudos"]["stages"] if n in x["naive"]["stages"]]
            if common:
                n = max(common, key=int)
                k, v = x["kudos"]["stages"][n], x["naive"]["stages"][n]
                row(
                    f"ratio fanout kudos / naive @{int(n) // 1000}k",
                    k["frames_per_s"] / max(v["frames_per_s"], 1e-9),
                    "x",
                    detail=f"frames/s; per server cpu-s: "
                    f"{k['frames_per_cpu_s'] / max(v['frames_per_cpu_s'], 1e-9):.2f}x",
                )
        _stalled_rows(x, row)
        for label in ("kudos", "naive"):
            if label not in x or not x[label]["stages"]:
                continue
            n, st = max(x[label]["stages"].items(), key=lambda kv: int(kv[0]))
            ok = st["idle_kib_per_conn"] <= IDLE_KIB_TARGET
            row(
                f"push.idle memory/conn {label}",
                st["idle_kib_per_conn"],
                "KiB",
                f"<= {IDLE_KIB_TARGET:g}" if label == "kudos" else "",
                ok if label == "kudos" else None,
                f"RSS {x[label]['rss_before_kib'] / 1024:.0f} -> {st['rss_kib'] / 1024:.0f} MiB"
                f" with {int(n):,} idle subscribers",
            )
    elif "fanout" in errors:
        row("push.fanout", None, "frames/s", detail="ERROR: " + errors["fanout"][:120])


def _stalled_rows(x: dict[str, Any], row: Row) -> None:
    """The stalled leg's rows: frames/s to the subscribers that read, per server, and the ratio."""
    legs = {lb: x[lb]["stalled"] for lb in ("kudos", "naive") if "stalled" in x.get(lb, {})}
    for label, st in legs.items():
        pct = 100.0 * st["stalled"] / st["subscribers"]
        name = f"{int(st['subscribers']) // 1000}k subs {pct:g}% stalled"
        stalled = f"{st['stalled']} stalled: "
        if st["marked_slow"] is not None:
            stalled += f"{st['marked_slow']} marked slow, "
        stalled += f"{st['closed_1013']} closed with 1013"
        if st["stopped_at_s"] is not None:
            stalled += (
                f"; delivery fell below half {st['stopped_at_s']:.0f} s after the first change"
            )
        if st["closed"]:
            stalled += f"; {st['closed']} reading subscribers closed by the server"
        row(
            f"push.fanout {label} {name}",
            st["frames_per_s"],
            "frames/s",
            detail=f"{st['healthy']:,} reading, after {st['fill_s']:g} s of changes:"
            f" {st['frames_per_client_s']:.1f}/client/s, {st['min_frames_per_client']}.."
            f"{st['max_frames_per_client']} frames each in {st['seconds']:.1f} s; since the first"
            f" change: longest gap {st['max_gap_s']:.2f} s (p50 {st['p50_gap_s']:.2f}), lowest 1-s"
            f" rate {st['min_1s_frames_per_s']:,.0f}/s; {stalled}; cpu server"
            f" {st['server_cpu']:.0f}%",
        )
    if len(legs) == 2:
        k, v = legs["kudos"], legs["naive"]
        pct = 100.0 * k["stalled"] / k["subscribers"]
        n = str(k["subscribers"])
        plain = []
        for label, st in legs.items():
            base = x[label]["stages"].get(n)
            if base:
                plain.append(f"{label} {st['frames_per_s'] / max(base['frames_per_s'], 1e-9):.2f}x")
        # a naive server stuck on a stalled client delivers nothing: no finite ratio then
        stuck = v["frames_per_s"] * v["seconds"] < 1
        row(
            f"ratio fanout kudos / naive @{int(n) // 1000}k, {pct:g}% stalled",
            None if stuck else k["frames_per_s"] / v["frames_per_s"],
            "x",
            detail="frames/s to the subscribers that read"
            + (" (unbounded: naive delivered none in the window)" if stuck else "")
            + (
                f"; vs the {int(n) // 1000}k row without stalls: {', '.join(plain)}"
                if plain
                else ""
            ),
        )


def targets() -> dict[str, float]:
    return {
        "e2e_p99_ms": E2E_P99_TARGET_MS,
        "fanout_frames_per_s_at_10k": FANOUT_TARGET,
        "idle_kib_per_connection": IDLE_KIB_TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.push")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("clients", help="fan-out subscribers, driven by JSON lines on stdin")
    c.add_argument("--batch-s", type=float, default=0.05)
    n = sub.add_parser("naive-server", help="the naive websocket server of the fan-out phase")
    n.add_argument("--port", type=int, required=True)
    n.add_argument("--redis-url", required=True)
    n.add_argument("--prefix", required=True)
    n.add_argument("--tick-s", type=float, default=0.05)
    args = ap.parse_args(argv)
    if args.cmd == "clients":
        return clients_main(args.batch_s)
    raise_nofile()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(naive_server(args.port, args.redis_url, args.prefix, args.tick_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
