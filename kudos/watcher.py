"""What ``kudos watch`` says, pure (no sockets): :class:`Watcher` turns every update of a
channel (:mod:`kudos.subscriptions`, which holds each channel's state as docs/protocol.md says a
client should) into :class:`Line` s, the way a chat bot would post them. :mod:`kudos.watch` runs
it on :class:`kudos.client.Client`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import orjson

from kudos.subscriptions import Update

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


def _rows(entries: Iterable[Mapping[str, Any]]) -> dict[str, tuple[int, float]]:
    return {e["member"]: (int(e["rank"]), float(e["score"])) for e in entries}


class Watcher:
    """Turns each channel's updates (:class:`kudos.subscriptions.Update`, in order, from
    :class:`kudos.client.Client`) into lines, one per thing that happened.

    Pure score changes and rank shifts caused by others (a member pushed down when someone passes
    them, or up when someone above falls back) are left out unless ``scores`` is set: the climb or
    fall that caused them has its own line.
    """

    def __init__(self, limit: int = 10, scores: bool = False) -> None:
        self.limit = limit
        self.scores = scores
        #: member → display name (profile events), filled by the caller (kudos watch reads
        #: GET /api/profiles for the members of each frame before handing it over)
        self.names: dict[str, str] = {}
        self._seen: deque[bytes] = deque(maxlen=512)

    def who(self, member: str) -> str:
        """How a line names a member: their display name with the id, or the id."""
        name = self.names.get(member)
        return f"{name} ({member})" if name else member

    # -- updates ---------------------------------------------------------------------------

    def handle(self, u: Update) -> list[Line]:
        f = u.frame
        kind, _, key = u.channel.partition(":")
        if u.kind == "error":
            where = f" ({f['channel']})" if f.get("channel") else ""
            return [Line(f"server error{where}: {f.get('code')}: {f.get('message')}", "notice")]
        if u.kind == "resumed":
            after = int(f["seq"]) - u.missed
            return [Line(f"{u.channel}: resumed after seq {after}, {u.missed} missed", "notice")]
        if u.kind == "snapshot":
            return self._snapshot(u, kind, key)
        if u.kind == "event":
            return self._events(u.channel, [f], f.get("as_of"))
        if u.kind != "delta":
            return []
        if kind == "board":
            return self._board_delta(key, u.limit or self.limit, u.previous, u.entries, f)
        if kind == "member":
            return self._member_delta(key, u.previous_boards, f.get("boards") or {})
        return []

    def _snapshot(self, u: Update, kind: str, key: str) -> list[Line]:
        f = u.frame
        notice = []
        if not u.first:
            why = {"conflated": "conflated", "reset": "the feed was reset"}.get(u.reason)
            why = why or "could not resume"
            notice = [Line(f"{u.channel}: caught up from a fresh snapshot ({why})", "notice")]
        if kind == "alerts":
            return notice if not u.first else [Line("🎣 following comment-bait alerts", "summary")]
        if kind == "member":
            if u.first:
                return [Line(self._member_summary(key, u.boards), "summary")]
            old = u.previous_boards
            changed = {b: v for b, v in u.boards.items() if old.get(b) != v}
            return notice + self._member_delta(key, old, changed)
        limit = u.limit or self.limit
        if u.first:
            return [
                Line(self._board_summary(key, limit, list(u.entries), f.get("members")), "summary")
            ]
        # a re-sync (conflated, reset, or a reconnect that could not resume): what changed meanwhile
        new, old = _rows(u.entries), _rows(u.previous)
        delta: dict[str, Any] = {"entered": [], "left": [], "moved": [], "score": []}
        for m, (rank, score) in new.items():
            if m not in old:
                delta["entered"].append({"member": m, "rank": rank, "score": score})
            elif old[m][0] != rank:
                delta["moved"].append({"member": m, "from": old[m][0], "to": rank, "score": score})
            elif old[m][1] != score:
                delta["score"].append({"member": m, "rank": rank, "score": score})
        delta["left"] = [{"member": m, "rank": r} for m, (r, _) in old.items() if m not in new]
        return notice + self._board_delta(key, limit, u.previous, u.entries, delta)

    def _board_summary(
        self, board: str, limit: int, entries: list[Mapping[str, Any]], members: Any
    ) -> str:
        # (a size smaller than the entries shown is not one: say nothing rather than "of 0")
        size = f" of {members:,}" if isinstance(members, int) and members >= len(entries) else ""
        if not entries:
            return f"📋 {board}: no one on the board yet"
        shown = ", ".join(
            f"#{e['rank']} {self.who(e['member'])} ({num(e['score'])})" for e in entries[:3]
        )
        more = f", … {len(entries) - 3} more" if len(entries) > 3 else ""
        return f"📋 {board}: top {limit}{size} — {shown}{more}"

    def _member_summary(self, member: str, standing: Mapping[str, Any]) -> str:
        on = [f"#{v['rank']:,} on {b} ({num(v['score'])} pts)" for b, v in standing.items() if v]
        off = [b for b, v in standing.items() if not v]
        if not on:
            return f"👤 {self.who(member)}: not on any board yet"
        return (
            f"👤 {self.who(member)}: "
            + ", ".join(on)
            + (f"; not on {', '.join(off)}" if off else "")
        )

    # -- board channels --------------------------------------------------------------------

    def _board_delta(
        self,
        board: str,
        n: int,
        before: Iterable[Mapping[str, Any]],
        after: Iterable[Mapping[str, Any]],
        f: Mapping[str, Any],
    ) -> list[Line]:
        """The lines of a change of the top ``n`` from ``before`` to ``after`` (``f``: the delta)."""
        old, top = _rows(before), _rows(after)

        tiers: dict[str, int] = {}
        others: list[Mapping[str, Any]] = []
        for ev in f.get("events") or []:
            if not isinstance(ev, Mapping):
                continue
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
        lines += [Line(self._event("board:" + board, ev)) for ev in others]
        return lines

    @staticmethod
    def _reached(member: str, tier: int, board: str, rank: int, pts: str) -> str:
        if tier == 1:
            return f"👑 {member} took #1 on {board} ({pts} pts)"
        return f"🏆 {member} reached the top {tier} on {board} at #{rank} ({pts} pts)"

    # -- member channels -------------------------------------------------------------------

    def _member_delta(
        self, member: str, before: Mapping[str, Any], boards: Mapping[str, Any]
    ) -> list[Line]:
        m = self.who(member)
        lines: list[Line] = []
        for board, new in boards.items():
            old = before.get(board)
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

    def _events(self, channel: str, events: list[Mapping[str, Any]], as_of: Any) -> list[Line]:
        return [Line(self._event(channel, ev)) for ev in events if self._remember(ev, as_of)]

    def _remember(self, ev: Mapping[str, Any], as_of: Any) -> bool:
        """False if this event was already printed (it reaches every channel it concerns)."""
        body = {k: v for k, v in ev.items() if k not in ("type", "channel", "epoch", "seq")}
        key = orjson.dumps({**body, "as_of": as_of}, option=orjson.OPT_SORT_KEYS)
        if key in self._seen:
            return False
        self._seen.append(key)
        return True

    def _event(self, channel: str, ev: Mapping[str, Any]) -> str:
        kind = ev.get("event")
        board = ev.get("board")
        on = f" on {board}" if board else ""
        ckind, _, key = channel.partition(":")
        member = self.who(ev.get("member") or (key if ckind == "member" else "someone"))
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
