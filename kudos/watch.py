"""``kudos watch``: follow live channels over the websocket protocol (docs/protocol.md) and print one
line per update, the way a chat bot would post it, or every frame as JSON.

:class:`Watcher` is pure (no sockets): it holds each channel's state exactly as the protocol says a
client should and turns every frame into :class:`Line` s. :func:`watch` owns the connection: hello,
auth, subscribe, resume after a reconnect (with backoff), ``--count`` and ``--for``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import random
import sys
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from leaderboard.errors import WatchError

PROTOCOL = 1
CLOSE_POLICY = 1008
#: Reconnect delays (seconds): the first, doubled per failed attempt up to the cap, ±20 % each.
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0
#: The server lets a client burst 40 messages; beyond that the subscribes are paced.
BURST = 30
#: Error codes that mean a channel can never be followed (the others are worth a retry).
FATAL_CODES = frozenset({"bad_request", "bad_channel", "unknown_board", "too_many_subscriptions"})
#: How many names of passed members a climb line spells out.
MAX_NAMES = 3


class Line(NamedTuple):
    """One line of output. ``kind``: ``update`` (stdout, counts for ``--count``), ``summary``
    (stdout, a first snapshot; not counted), ``notice`` (stderr)."""

    text: str
    kind: str = "update"


def parse_channel(text: str) -> str:
    """``board:<id>``, ``member:<id>`` and ``alerts`` as they are; anything else is a board id
    (``all``, ``7d:<community>``)."""
    if text == "alerts":
        return text
    kind, sep, key = text.partition(":")
    if kind in ("board", "member") and sep:
        if not key:
            raise ValueError(f"{text!r}: give an id after '{kind}:'")
        return text
    if not text.strip():
        raise ValueError("a channel is board:<id>, member:<id>, alerts or a board id such as all")
    return f"board:{text}"


def num(x: float) -> str:
    """Points as people read them: ``1,204``, ``412.5``, ``0.125``."""
    s = f"{x:,.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _names(names: list[str]) -> str:
    if len(names) <= MAX_NAMES:
        return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]
    rest = len(names) - MAX_NAMES
    return f"{', '.join(names[:MAX_NAMES])} and {rest} other{'s' if rest > 1 else ''}"


@dataclass
class Channel:
    """What the client knows of one channel (docs/protocol.md): position and state."""

    name: str
    limit: int = 10
    epoch: str | None = None
    seq: int | None = None
    #: board channels: member → (rank, score)
    top: dict[str, tuple[int, float]] = field(default_factory=dict)
    #: member channels: board → {"rank", "score"} or None (not on that board)
    standing: dict[str, Any] = field(default_factory=dict)
    #: a snapshot was applied (later snapshots are re-syncs: their differences are printed)
    synced: bool = False
    #: a frame arrived out of sequence: resubscribe with resume
    gap: bool = False
    #: a subscribe is on its way: frames out of sequence meanwhile are dropped, not re-flagged
    resyncing: bool = False

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]

    @property
    def key(self) -> str:
        return self.name.partition(":")[2]

    @property
    def resume(self) -> dict[str, Any] | None:
        if self.epoch is None or self.seq is None:
            return None
        return {"epoch": self.epoch, "seq": self.seq}

    def subscribe(self, request_id: int) -> dict[str, Any]:
        msg: dict[str, Any] = {"op": "subscribe", "channel": self.name, "id": request_id}
        if self.kind == "board":
            msg["limit"] = self.limit
        if self.resume is not None:
            msg["resume"] = self.resume
        return msg


class Watcher:
    """Applies frames to the channels' state and says what changed, one line per update.

    Pure score changes and rank shifts caused by others (a member pushed down when someone passes
    them, or up when someone above falls back) are left out unless ``scores`` is set: the climb or
    fall that caused them has its own line.
    """

    def __init__(self, channels: Iterable[str], limit: int = 10, scores: bool = False) -> None:
        self.channels = {name: Channel(name, limit) for name in channels}
        self.scores = scores
        self._seen: deque[bytes] = deque(maxlen=512)

    # -- frames ----------------------------------------------------------------------------

    def handle(self, frame: Mapping[str, Any]) -> list[Line]:
        kind = frame.get("type")
        if kind == "error":
            where = f" ({frame['channel']})" if frame.get("channel") else ""
            return [
                Line(f"server error{where}: {frame.get('code')}: {frame.get('message')}", "notice")
            ]
        ch = self.channels.get(str(frame.get("channel")))
        if ch is None:
            return []  # hello, pong, authenticated, unsubscribed, or a channel we let go of
        if kind == "subscribed":
            ch.resyncing = False
            if "limit" in frame:
                ch.limit = int(frame["limit"])
            if frame.get("recovered") and ch.synced and ch.seq is not None:
                missed = int(frame["seq"]) - ch.seq
                return [Line(f"{ch.name}: resumed after seq {ch.seq}, {missed} missed", "notice")]
            return []
        if kind == "snapshot":
            return self._snapshot(ch, frame)
        if kind not in ("delta", "event"):
            return []
        if ch.epoch != frame.get("epoch") or ch.seq is None:
            return []  # not ours yet: a snapshot or a resume reply comes first
        seq = int(frame["seq"])
        if seq <= ch.seq:
            return []  # already applied
        if seq != ch.seq + 1:
            if ch.resyncing:
                return []
            ch.gap = True
            return [Line(f"{ch.name}: frame {seq} after {ch.seq}; resuming", "notice")]
        ch.seq = seq
        if kind == "event":
            return self._events(ch, [frame], frame.get("as_of"))
        if ch.kind == "board":
            return self._board_delta(ch, frame)
        return self._member_delta(ch, frame.get("boards") or {})

    def _snapshot(self, ch: Channel, f: Mapping[str, Any]) -> list[Line]:
        ch.epoch, ch.seq, ch.gap = f["epoch"], int(f["seq"]), False
        first = not ch.synced
        ch.synced = True
        notice = []
        if not first:
            why = (
                "conflated"
                if f.get("conflated")
                else "the feed was reset"
                if f.get("reset")
                else ""
            )
            why = why or "could not resume"
            notice = [Line(f"{ch.name}: caught up from a fresh snapshot ({why})", "notice")]
        if ch.kind == "alerts":
            return notice if not first else [Line("🎣 following comment-bait alerts", "summary")]
        if ch.kind == "member":
            boards = dict(f.get("boards") or {})
            if first:
                ch.standing = boards
                return [Line(self._member_summary(ch), "summary")]
            changed = {b: v for b, v in boards.items() if ch.standing.get(b) != v}
            return notice + self._member_delta(ch, changed)
        entries = f.get("entries") or []
        if first:
            ch.top = {e["member"]: (e["rank"], e["score"]) for e in entries}
            return [Line(self._board_summary(ch, entries, f.get("members")), "summary")]
        # a re-sync (conflated, reset, or a reconnect that could not resume): what changed meanwhile
        new = {e["member"]: (int(e["rank"]), float(e["score"])) for e in entries}
        old = ch.top
        delta: dict[str, Any] = {"entered": [], "left": [], "moved": [], "score": []}
        for m, (rank, score) in new.items():
            if m not in old:
                delta["entered"].append({"member": m, "rank": rank, "score": score})
            elif old[m][0] != rank:
                delta["moved"].append({"member": m, "from": old[m][0], "to": rank, "score": score})
            elif old[m][1] != score:
                delta["score"].append({"member": m, "rank": rank, "score": score})
        delta["left"] = [{"member": m, "rank": r} for m, (r, _) in old.items() if m not in new]
        return notice + self._board_delta(ch, delta)

    def _board_summary(self, ch: Channel, entries: list[dict[str, Any]], members: Any) -> str:
        # (a size smaller than the entries shown is not one: say nothing rather than "of 0")
        size = f" of {members:,}" if isinstance(members, int) and members >= len(entries) else ""
        if not entries:
            return f"📋 {ch.key}: no one on the board yet"
        shown = ", ".join(f"#{e['rank']} {e['member']} ({num(e['score'])})" for e in entries[:3])
        more = f", … {len(entries) - 3} more" if len(entries) > 3 else ""
        return f"📋 {ch.key}: top {ch.limit}{size} — {shown}{more}"

    def _member_summary(self, ch: Channel) -> str:
        on = [f"#{v['rank']:,} on {b} ({num(v['score'])} pts)" for b, v in ch.standing.items() if v]
        off = [b for b, v in ch.standing.items() if not v]
        if not on:
            return f"👤 {ch.key}: not on any board yet"
        return f"👤 {ch.key}: " + ", ".join(on) + (f"; not on {', '.join(off)}" if off else "")

    # -- board channels --------------------------------------------------------------------

    def _board_delta(self, ch: Channel, f: Mapping[str, Any]) -> list[Line]:
        board, n = ch.key, ch.limit
        old = dict(ch.top)
        top = ch.top
        for e in f.get("left", []):
            top.pop(e["member"], None)
        for e in f.get("entered", []):
            top[e["member"]] = (e["rank"], e["score"])
        for e in f.get("moved", []):
            top[e["member"]] = (e["to"], e["score"])
        for e in f.get("score", []):
            top[e["member"]] = (e["rank"], e["score"])

        tiers: dict[str, int] = {}
        others: list[Mapping[str, Any]] = []
        for ev in f.get("events", []):
            self._remember(ev, f.get("as_of"))
            if ev.get("event") == "entered_top" and ev.get("member") in top:
                tiers[ev["member"]] = min(int(ev["top"]), tiers.get(ev["member"], n + 1))
            else:
                others.append(ev)

        out: list[tuple[int, str]] = []
        for e in f.get("entered", []):
            m, rank, pts = e["member"], e["rank"], num(e["score"])
            tier = tiers.get(m, n)
            if tier < n:
                out.append((rank, self._reached(m, tier, board, rank, pts)))
            else:
                out.append((rank, f"🆕 {m} entered the top {n} on {board} at #{rank} ({pts} pts)"))
        for e in f.get("moved", []):
            m, was, rank = e["member"], e["from"], e["to"]
            pts = num(e["score"])
            gained = e["score"] - old[m][1] if m in old else 0.0
            if rank < was and (gained > 0 or m in tiers):
                passed = [
                    b
                    for b, (r, _) in sorted(old.items(), key=lambda kv: kv[1][0])
                    if b != m and r < was and (b not in top or top[b][0] > rank)
                ]
                if m in tiers:
                    text = self._reached(m, tiers[m], board, rank, pts)
                elif len(passed) == 1:
                    text = f"⚔️ {m} overtook {passed[0]} on {board}, now #{rank} ({pts} pts)"
                else:
                    text = f"📈 {m} climbed to #{rank} on {board} ({pts} pts)"
                if passed and (m in tiers or len(passed) > 1):
                    text += f", passing {_names(passed)}"
                out.append((rank, text))
            elif rank > was and gained < 0:
                out.append((rank, f"📉 {m} fell to #{rank} on {board} ({pts} pts)"))
            elif self.scores:
                out.append((rank, f"↕️ {m} moved to #{rank} on {board} ({pts} pts)"))
        if self.scores:
            for e in f.get("score", []):
                out.append(
                    (
                        e["rank"],
                        f"💯 {e['member']} now {num(e['score'])} pts on {board} (#{e['rank']})",
                    )
                )
        lines = [Line(text) for _, text in sorted(out, key=lambda rt: rt[0])]
        lines += [Line(f"👋 {e['member']} left the top {n} on {board}") for e in f.get("left", [])]
        lines += [Line(self._event(ch, ev)) for ev in others]
        return lines

    @staticmethod
    def _reached(member: str, tier: int, board: str, rank: int, pts: str) -> str:
        if tier == 1:
            return f"👑 {member} took #1 on {board} ({pts} pts)"
        return f"🏆 {member} reached the top {tier} on {board} at #{rank} ({pts} pts)"

    # -- member channels -------------------------------------------------------------------

    def _member_delta(self, ch: Channel, boards: Mapping[str, Any]) -> list[Line]:
        m = ch.key
        lines: list[Line] = []
        for board, new in boards.items():
            old = ch.standing.get(board)
            ch.standing[board] = new
            if new is None:
                if old is not None:
                    lines.append(Line(f"👋 {m} dropped off {board}"))
                continue
            rank, pts = new["rank"], num(new["score"])
            if old is None:
                lines.append(Line(f"🆕 {m} is on {board} at #{rank:,} ({pts} pts)"))
                continue
            gained = new["score"] - old["score"]
            if rank < old["rank"] and gained > 0:
                lines.append(Line(f"📈 {m} climbed to #{rank:,} on {board} ({pts} pts)"))
            elif rank > old["rank"] and gained < 0:
                lines.append(Line(f"📉 {m} fell to #{rank:,} on {board} ({pts} pts)"))
            elif self.scores and rank != old["rank"]:
                lines.append(Line(f"↕️ {m} moved to #{rank:,} on {board} ({pts} pts)"))
            elif self.scores:
                lines.append(Line(f"💯 {m} now {pts} pts on {board} (#{rank:,})"))
        return lines

    def _events(self, ch: Channel, events: list[Mapping[str, Any]], as_of: Any) -> list[Line]:
        return [Line(self._event(ch, ev)) for ev in events if self._remember(ev, as_of)]

    def _remember(self, ev: Mapping[str, Any], as_of: Any) -> bool:
        """False if this event was already printed (it reaches every channel it concerns)."""
        body = {k: v for k, v in ev.items() if k not in ("type", "channel", "epoch", "seq")}
        key = orjson.dumps({**body, "as_of": as_of}, option=orjson.OPT_SORT_KEYS)
        if key in self._seen:
            return False
        self._seen.append(key)
        return True

    @staticmethod
    def _event(ch: Channel, ev: Mapping[str, Any]) -> str:
        kind = ev.get("event")
        board = ev.get("board")
        on = f" on {board}" if board else ""
        member = ev.get("member") or (ch.key if ch.kind == "member" else "someone")
        if kind == "overtaken":
            a, b = ev.get("overtaker"), ev.get("overtaken")
            ranks = ev.get("ranks") or {}
            now = f", now #{ranks[a]}" if ranks.get(a) else ""
            return f"⚔️ {a} overtook {b}{on}{now}"
        if kind == "entered_top":
            rank, tier = ev.get("rank"), ev.get("top")
            if tier == 1:
                return f"👑 {member} took #1{on}"
            return f"🏆 {member} reached the top {tier}{on} at #{rank}"
        # perk unlocks, bait alerts and any later event kind: whatever they describe themselves with
        title = ev.get("title") or ev.get("perk") or ev.get("name")
        reason = ev.get("reason")
        detail = " — ".join(str(x) for x in (title, reason) if x)
        if kind == "perk":
            return f"🎁 {member} unlocked a perk{on}" + (f": {detail}" if detail else "")
        if kind == "bait":
            post = f" on post {ev['post']}" if ev.get("post") else on
            return f"🎣 bait alert for {member}{post}" + (f": {detail}" if detail else "")
        return f"🔔 {kind} for {member}{on}" + (f": {detail}" if detail else "")


# -- the connection ------------------------------------------------------------------------


@dataclass
class Options:
    url: str
    channels: list[str]
    limit: int = 10
    token: str = ""
    json: bool = False
    scores: bool = False
    #: exit 0 after this many updates (lines, or with ``json`` delta and event frames)
    count: int | None = None
    #: exit after this many seconds (0 if ``count`` is unset or reached, else 1)
    seconds: float | None = None


class _Done(Exception):
    """``--count`` reached, or nobody reads the output any more."""


@dataclass
class _Session:
    opts: Options
    watcher: Watcher
    out: TextIO
    err: TextIO
    #: updates printed so far (``--count``)
    printed: int = 0
    connected_once: bool = False
    #: request id → channel, to tell which subscribe an error answers
    requests: dict[int, str] = field(default_factory=dict)
    next_id: int = 1
    retries: set[asyncio.Task[None]] = field(default_factory=set)

    def notice(self, text: str) -> None:
        print(f"kudos watch: {text}", file=self.err, flush=True)

    def emit(self, raw: str | bytes, lines: Iterable[Line], update: bool) -> None:
        """Print a frame's lines (or, with ``json``, the frame itself) and count the updates."""
        try:
            self._emit(raw, lines, update)
        except BrokenPipeError:  # `kudos watch ... | head`: the reader has gone
            if self.out is sys.stdout:  # and the interpreter's last flush must not fail either
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise _Done from None

    def _emit(self, raw: str | bytes, lines: Iterable[Line], update: bool) -> None:
        if self.opts.json:
            self.out.write(raw if isinstance(raw, str) else raw.decode())
            self.out.write("\n")
            self.out.flush()
        for line in lines:
            if line.kind == "notice":
                self.notice(line.text)
            elif not self.opts.json:
                print(line.text, file=self.out, flush=True)
                if line.kind == "update":
                    self._count()
        if self.opts.json and update:
            self._count()

    def _count(self) -> None:
        self.printed += 1
        if self.opts.count is not None and self.printed >= self.opts.count:
            raise _Done

    async def send(self, ws: ClientConnection, msg: dict[str, Any]) -> None:
        await ws.send(orjson.dumps(msg).decode())

    async def subscribe(self, ws: ClientConnection, ch: Channel) -> None:
        rid = self.next_id
        self.next_id += 1
        self.requests[rid] = ch.name
        ch.gap, ch.resyncing = False, True
        await self.send(ws, ch.subscribe(rid))

    async def connection(self, ws: ClientConnection) -> None:
        """One connection: hello, auth, (re)subscribe every channel, then frames until it closes."""
        raw = await asyncio.wait_for(ws.recv(), 10)
        hello = orjson.loads(raw)
        self.emit(raw, [], update=False)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            raise WatchError(f"{self.opts.url} sent no hello frame: is it a Kudos web process?")
        if hello.get("protocol") != PROTOCOL:
            self.notice(
                f"the server speaks protocol {hello.get('protocol')}, this client {PROTOCOL}"
            )
        if (hello.get("limits") or {}).get("auth") and not self.opts.token:
            raise WatchError("the server requires a token: set KUDOS_WEB_TOKEN or pass --token")
        if self.opts.token:
            await self.send(ws, {"op": "auth", "token": self.opts.token})
        for i, ch in enumerate(list(self.watcher.channels.values())):
            if i >= BURST:  # stay under the server's message rate
                await asyncio.sleep(0.1)
            await self.subscribe(ws, ch)
        self.connected_once = True
        async for raw in ws:
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                frame = None
            if not isinstance(frame, dict):
                self.notice(f"ignored a frame that is not a JSON object: {raw[:80]!r}")
                continue
            self.emit(
                raw, self.watcher.handle(frame), update=frame.get("type") in ("delta", "event")
            )
            if frame.get("type") == "error":
                self._error(ws, frame)
            for ch in list(self.watcher.channels.values()):
                if ch.gap:  # resume from the last frame applied: the server replays the rest
                    await self.subscribe(ws, ch)

    def _error(self, ws: ClientConnection, frame: Mapping[str, Any]) -> None:
        rid = frame.get("id")
        name = self.requests.get(rid) if isinstance(rid, int) else None
        if name is None or name not in self.watcher.channels:
            return
        if frame.get("code") in FATAL_CODES:
            del self.watcher.channels[name]
            if not self.watcher.channels:
                raise WatchError(f"cannot follow {name}: {frame.get('message')}")
            self.notice(f"not following {name}")
            return
        ch = self.watcher.channels[name]

        async def later() -> None:  # e.g. "unavailable": Redis is down for a moment
            await asyncio.sleep(1.0)
            with contextlib.suppress(ConnectionClosed):
                await self.subscribe(ws, ch)

        task = asyncio.get_running_loop().create_task(later())
        self.retries.add(task)
        task.add_done_callback(self.retries.discard)

    async def loop(self) -> None:
        """Connect, and reconnect with backoff for as long as it takes once connected."""
        attempt = 0
        while True:
            try:
                async with connect(
                    self.opts.url, open_timeout=10, max_size=16 << 20, close_timeout=2
                ) as ws:
                    if attempt:
                        self.notice(f"reconnected to {self.opts.url}; resuming")
                    attempt = 0
                    try:
                        await self.connection(ws)
                    except (WatchError, _Done, asyncio.CancelledError):
                        await ws.close()  # a normal close (1000), not an internal error
                        raise
                code, why = ws.close_code, ws.close_reason
                reason = f"the server closed the connection ({code}{': ' + why if why else ''})"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                why = exc.rcvd.reason if exc.rcvd else ""
                if code == CLOSE_POLICY:
                    raise WatchError(
                        f"the server refused this client: {why or 'policy violation'}"
                        " (check KUDOS_WEB_TOKEN / --token)"
                    ) from None
                reason = f"connection lost ({code or 'no close frame'}{': ' + why if why else ''})"
            except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
                what = str(exc) or type(exc).__name__
                if not self.connected_once:
                    raise WatchError(
                        f"cannot reach the Kudos web process at {self.opts.url} ({what}); start "
                        "the stack with `kudos up --background` (or run `kudos web`), or check "
                        "KUDOS_WEB_PORT / --url"
                    ) from None
                reason = f"cannot reconnect ({what})"
            for task in list(self.retries):
                task.cancel()
            delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.8, 1.2)
            attempt += 1
            self.notice(f"{reason}; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)


async def watch(opts: Options, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Follow ``opts.channels`` until ``count`` updates or ``seconds``; the exit status."""
    session = _Session(
        opts, Watcher(opts.channels, opts.limit, opts.scores), out or sys.stdout, err or sys.stderr
    )
    try:
        async with asyncio.timeout(opts.seconds):
            await session.loop()
    except _Done:
        return 0
    except TimeoutError:
        if opts.count is not None:
            session.notice(f"only {session.printed} of {opts.count} updates in {opts.seconds:g} s")
            return 1
    return 0


def default_url(host: str, port: int) -> str:
    """The websocket of the web process the settings describe."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}/ws"


def run(opts: Options) -> int:
    """The command: Ctrl-C ends it cleanly with status 0."""
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # emoji on a terminal that cannot show them
    try:
        return asyncio.run(watch(opts))
    except KeyboardInterrupt:
        return 0
