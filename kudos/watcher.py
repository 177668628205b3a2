"""What a ``kudos watch`` client knows and says, pure (no sockets): :class:`Watcher` holds each
channel's state exactly as the protocol (docs/protocol.md) says a client should, and turns every
frame into :class:`Line` s, the way a chat bot would post them. :mod:`kudos.watch` owns the
connection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

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
        #: member → display name (profile events), filled by the caller (kudos watch reads
        #: GET /api/profiles for the members of each frame before handing it over)
        self.names: dict[str, str] = {}
        self._seen: deque[bytes] = deque(maxlen=512)

    def who(self, member: str) -> str:
        """How a line names a member: their display name with the id, or the id."""
        name = self.names.get(member)
        return f"{name} ({member})" if name else member

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
        shown = ", ".join(
            f"#{e['rank']} {self.who(e['member'])} ({num(e['score'])})" for e in entries[:3]
        )
        more = f", … {len(entries) - 3} more" if len(entries) > 3 else ""
        return f"📋 {ch.key}: top {ch.limit}{size} — {shown}{more}"

    def _member_summary(self, ch: Channel) -> str:
        on = [f"#{v['rank']:,} on {b} ({num(v['score'])} pts)" for b, v in ch.standing.items() if v]
        off = [b for b, v in ch.standing.items() if not v]
        if not on:
            return f"👤 {self.who(ch.key)}: not on any board yet"
        return (
            f"👤 {self.who(ch.key)}: "
            + ", ".join(on)
            + (f"; not on {', '.join(off)}" if off else "")
        )

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
        w = self.who
        for e in f.get("entered", []):
            m, rank, pts = e["member"], e["rank"], num(e["score"])
            tier = tiers.get(m, n)
            if tier < n:
                out.append((rank, self._reached(w(m), tier, board, rank, pts)))
            else:
                out.append(
                    (rank, f"🆕 {w(m)} entered the top {n} on {board} at #{rank} ({pts} pts)")
                )
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
                    text = self._reached(w(m), tiers[m], board, rank, pts)
                elif len(passed) == 1:
                    text = f"⚔️ {w(m)} overtook {w(passed[0])} on {board}, now #{rank} ({pts} pts)"
                else:
                    text = f"📈 {w(m)} climbed to #{rank} on {board} ({pts} pts)"
                if passed and (m in tiers or len(passed) > 1):
                    text += f", passing {_names([w(b) for b in passed])}"
                out.append((rank, text))
            elif rank > was and gained < 0:
                out.append((rank, f"📉 {w(m)} fell to #{rank} on {board} ({pts} pts)"))
            elif self.scores:
                out.append((rank, f"↕️ {w(m)} moved to #{rank} on {board} ({pts} pts)"))
        if self.scores:
            for e in f.get("score", []):
                out.append(
                    (
                        e["rank"],
                        f"💯 {w(e['member'])} now {num(e['score'])} pts on {board} (#{e['rank']})",
                    )
                )
        lines = [Line(text) for _, text in sorted(out, key=lambda rt: rt[0])]
        lines += [
            Line(f"👋 {w(e['member'])} left the top {n} on {board}") for e in f.get("left", [])
        ]
        lines += [Line(self._event(ch, ev)) for ev in others]
        return lines

    @staticmethod
    def _reached(member: str, tier: int, board: str, rank: int, pts: str) -> str:
        if tier == 1:
            return f"👑 {member} took #1 on {board} ({pts} pts)"
        return f"🏆 {member} reached the top {tier} on {board} at #{rank} ({pts} pts)"

    # -- member channels -------------------------------------------------------------------

    def _member_delta(self, ch: Channel, boards: Mapping[str, Any]) -> list[Line]:
        m = self.who(ch.key)
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

    def _event(self, ch: Channel, ev: Mapping[str, Any]) -> str:
        kind = ev.get("event")
        board = ev.get("board")
        on = f" on {board}" if board else ""
        member = self.who(ev.get("member") or (ch.key if ch.kind == "member" else "someone"))
        if kind == "overtaken":
            a, b = str(ev.get("overtaker")), str(ev.get("overtaken"))
            ranks = ev.get("ranks") or {}
            now = f", now #{ranks[a]}" if ranks.get(a) else ""
            return f"⚔️ {self.who(a)} overtook {self.who(b)}{on}{now}"
        if kind == "entered_top":
            rank, tier = ev.get("rank"), ev.get("top")
            if tier == 1:
                return f"👑 {member} took #1{on}"
            return f"🏆 {member} reached the top {tier}{on} at #{rank}"
        # perk unlocks, bait alerts and any later event kind: whatever they describe themselves with
        title = ev.get("title") or ev.get("perk") or ev.get("name")
        reason = ev.get("reason")
        detail = " — ".join(str(x) for x in (title, reason) if x)
        if kind == "perk" and ev.get("period"):
            # a winners' perk: the announcement of the period's close, one line per winner
            rank = f" at #{ev['rank']}" if ev.get("rank") else ""
            return f"🏁 {ev.get('board')} closed: {member} won{rank}" + (
                f" — {detail}" if detail else ""
            )
        if kind == "perk":
            return f"🎁 {member} unlocked a perk{on}" + (f": {detail}" if detail else "")
        if kind == "bait":
            post = f" on post {ev['post']}" if ev.get("post") else on
            return f"🎣 bait alert for {member}{post}" + (f": {detail}" if detail else "")
        return f"🔔 {kind} for {member}{on}" + (f": {detail}" if detail else "")
