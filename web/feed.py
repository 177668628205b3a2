"""The live feed core, pure (no sockets, no Redis): what changed on a board or for a member, the rank
events it implies, what one subscriber with a top-N sees of it, and whether a client can resume.

A board channel's shared log (in Redis, written by whichever web process published first) holds, per
``seq``, the full change list of the board's top ``DEPTH`` rows. Each web process derives the frame
for a subscriber's N from it without any state (:func:`view`), so every process, and a restarted one,
sends the same frames with the same numbers. See docs/protocol.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from web.protocol import MAX_LIMIT

#: Rows of a board that the shared log tracks; a subscriber's ``limit`` is at most this.
DEPTH = MAX_LIMIT
#: ``entered_top`` fires when a member reaches one of these tiers from below.
TIERS = (1, 3, 10, 100)
#: At most this many ``overtaken`` events per board and publish, nearest the top first.
MAX_OVERTAKES = 20
#: Scores in frames: points rounded to 0.001 (milli-points are exact at this precision).
SCORE_DIGITS = 3


class Row(NamedTuple):
    """One row of a top list: its 0-based position, competition rank and score in points."""

    member: str
    pos: int
    rank: int
    score: float


class Change(NamedTuple):
    """A member whose position, rank or score changed in the top ``DEPTH``; None = not in it."""

    member: str
    old_pos: int | None
    new_pos: int | None
    old_rank: int | None
    new_rank: int | None
    score: float | None


def top_rows(members_scores: Iterable[tuple[str, float]]) -> list[Row]:
    """Rows of a top list given best-first (member, points): competition ranks from position 0."""
    rows: list[Row] = []
    prev: float | None = None
    rank = 0
    for pos, (member, score) in enumerate(members_scores):
        s = round(score, SCORE_DIGITS)
        if s != prev:
            rank = pos + 1
            prev = s
        rows.append(Row(member, pos, rank, s))
    return rows


def diff(old: Sequence[Row], new: Sequence[Row]) -> list[Change]:
    """Every member whose (position, rank, score) differs between two top lists, best first."""
    before = {r.member: r for r in old}
    changes: list[Change] = []
    for r in new:
        o = before.pop(r.member, None)
        if o is None:
            changes.append(Change(r.member, None, r.pos, None, r.rank, r.score))
        elif (o.pos, o.rank, o.score) != (r.pos, r.rank, r.score):
            changes.append(Change(r.member, o.pos, r.pos, o.rank, r.rank, r.score))
    for o in before.values():
        changes.append(Change(o.member, o.pos, None, o.rank, None, None))
    return changes


def apply_changes(rows: Sequence[Row], changes: Iterable[Change]) -> list[Row]:
    """The top list after ``changes`` (the inverse of :func:`diff`)."""
    by_member = {r.member: r for r in rows}
    for c in changes:
        if c.new_pos is None:
            by_member.pop(c.member, None)
        else:
            assert c.new_rank is not None and c.score is not None
            by_member[c.member] = Row(c.member, c.new_pos, c.new_rank, c.score)
    return sorted(by_member.values(), key=lambda r: r.pos)


def _ahead(rank: int | None) -> float:
    return float("inf") if rank is None else rank


def rank_events(
    board: str, changes: Sequence[Change], old: Sequence[Row], new: Sequence[Row]
) -> list[dict[str, Any]]:
    """``entered_top`` and ``overtaken`` events of one publish (``changes`` = diff(old, new)).

    A overtook B when A ranked strictly below B before and strictly above B after, where "not in the
    top DEPTH" counts as below everyone in it. Only pairs with at least one changed row can swap, so
    this costs O(changes × DEPTH), not O(DEPTH²).
    """
    events: list[dict[str, Any]] = []
    for c in changes:
        if c.new_rank is None:
            continue
        tier = next(t for t in TIERS if c.new_rank <= t) if c.new_rank <= TIERS[-1] else None
        if tier is not None and (c.old_rank is None or c.old_rank > tier):
            events.append(
                {
                    "event": "entered_top",
                    "board": board,
                    "member": c.member,
                    "rank": c.new_rank,
                    "top": tier,
                }
            )
    old_rank = {r.member: r.rank for r in old}
    new_rank = {r.member: r.rank for r in new}
    changed = {c.member for c in changes}
    pairs: list[tuple[str, str]] = []
    for a in new_rank:  # the overtaker is in the new top
        partners = old_rank if a in changed else changed
        for b in partners:  # the overtaken was in the old top
            if b == a or b not in old_rank:
                continue
            if _ahead(old_rank.get(a)) > old_rank[b] and new_rank[a] < _ahead(new_rank.get(b)):
                pairs.append((a, b))
    pairs.sort(key=lambda p: (new_rank[p[0]], _ahead(new_rank.get(p[1]))))
    for a, b in pairs[:MAX_OVERTAKES]:
        events.append(
            {
                "event": "overtaken",
                "board": board,
                "overtaker": a,
                "overtaken": b,
                "ranks": {a: new_rank[a], b: new_rank.get(b)},
            }
        )
    return events


def event_members(event: Mapping[str, Any]) -> list[str]:
    """The members whose channels an event goes to."""
    if event["event"] == "overtaken":
        return [event["overtaker"], event["overtaken"]]
    return [event["member"]]


def view(changes: Iterable[Change], n: int) -> dict[str, list[dict[str, Any]]]:
    """What a subscriber of the top ``n`` sees of a change list (docs/protocol.md, "Deltas")."""
    entered: list[dict[str, Any]] = []
    left: list[dict[str, Any]] = []
    moved: list[dict[str, Any]] = []
    score: list[dict[str, Any]] = []
    for c in changes:
        was = c.old_pos is not None and c.old_pos < n
        now = c.new_pos is not None and c.new_pos < n
        if was and not now:
            left.append({"member": c.member, "rank": c.old_rank})
        elif now and not was:
            entered.append({"member": c.member, "rank": c.new_rank, "score": c.score})
        elif was and now:
            if c.old_rank != c.new_rank:
                moved.append(
                    {"member": c.member, "from": c.old_rank, "to": c.new_rank, "score": c.score}
                )
            else:
                score.append({"member": c.member, "rank": c.new_rank, "score": c.score})
    return {"entered": entered, "left": left, "moved": moved, "score": score}


def entries(rows: Sequence[Row], n: int) -> list[dict[str, Any]]:
    return [{"rank": r.rank, "member": r.member, "score": r.score} for r in rows[:n]]


# -- the shared log's record format ------------------------------------------------------------


def encode_rows(rows: Sequence[Row]) -> bytes:
    return orjson.dumps([[r.member, r.rank, r.score] for r in rows])


def decode_rows(blob: str | bytes) -> list[Row]:
    if not blob:
        return []
    return [Row(m, pos, rank, score) for pos, (m, rank, score) in enumerate(orjson.loads(blob))]


def encode_board_record(
    changes: Sequence[Change], events: Sequence[Mapping[str, Any]], as_of: float | None, size: int
) -> bytes:
    return orjson.dumps(
        {"as_of": as_of, "members": size, "changes": [list(c) for c in changes], "events": events}
    )


class BoardRecord(NamedTuple):
    changes: list[Change]
    events: list[dict[str, Any]]
    as_of: float | None
    members: int


def decode_board_record(blob: str | bytes) -> BoardRecord:
    d = orjson.loads(blob)
    return BoardRecord([Change(*c) for c in d["changes"]], d["events"], d["as_of"], d["members"])


# -- member channels ---------------------------------------------------------------------------

#: A member's standing: board → (rank, stored score, points), or None when not on that board.
#: Changes are detected on (rank, stored score): a decayed score drifting with time alone is not news.
Standing = dict[str, tuple[int, float, float] | None]


def standing_changes(old: Mapping[str, Any], new: Standing) -> dict[str, Any]:
    """The boards whose (rank, stored score) changed, as the frame shows them."""
    out: dict[str, Any] = {}
    for board, st in new.items():
        prev = old.get(board)
        if st is None:
            if prev is not None:
                out[board] = None
        elif prev is None or (prev[0], prev[1]) != (st[0], st[1]):
            out[board] = {"rank": st[0], "score": round(st[2], SCORE_DIGITS)}
    return out


def standing_view(st: Mapping[str, Any]) -> dict[str, Any]:
    return {
        b: None if v is None else {"rank": v[0], "score": round(v[2], SCORE_DIGITS)}
        for b, v in st.items()
    }


# -- resume ------------------------------------------------------------------------------------


class Resume(enum.Enum):
    CURRENT = "current"  # the client has everything: nothing to send
    REPLAY = "replay"  # send the retained frames after the client's seq
    SNAPSHOT = "snapshot"  # recovered: false, send a fresh snapshot


def resume(
    client_epoch: object, client_seq: object, epoch: str, seq: int, first_retained: int | None
) -> Resume:
    """Can a client that saw ``(client_epoch, client_seq)`` catch up from the retained log?

    ``first_retained`` is the oldest seq still in the channel's log (None: the log is empty).
    """
    if (
        client_epoch != epoch
        or not isinstance(client_seq, int)
        or isinstance(client_seq, bool)
        or not 0 <= client_seq <= seq
    ):
        return Resume.SNAPSHOT
    if client_seq == seq:
        return Resume.CURRENT
    if first_retained is not None and first_retained <= client_seq + 1:
        return Resume.REPLAY
    return Resume.SNAPSHOT


# -- frames ------------------------------------------------------------------------------------


def frame(kind: str, channel: str, epoch: str, seq: int, body: Mapping[str, Any]) -> bytes:
    """One server → client frame, serialised once and sent to every subscriber as is."""
    return orjson.dumps({"type": kind, "channel": channel, "epoch": epoch, "seq": seq, **body})


def board_delta_frame(channel: str, epoch: str, seq: int, record: BoardRecord, n: int) -> bytes:
    body: dict[str, Any] = {}
    if record.changes or not record.events:  # an events-only frame (a perk) leaves them be
        body.update(as_of=record.as_of, members=record.members)
    body.update(view(record.changes, n))
    # entered_top within the subscriber's top N (overtaken goes to member channels only);
    # board-wide events (perk unlocks) to everyone
    events = [
        e
        for e in record.events
        if (e["event"] == "entered_top" and e["rank"] <= n)
        or e["event"] not in ("entered_top", "overtaken")
    ]
    if events:
        body["events"] = events
    return frame("delta", channel, epoch, seq, body)


def member_record(
    boards: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]], as_of: float | None
) -> bytes:
    """A member channel's log record: a standing delta (``boards``) or one event."""
    return orjson.dumps({"as_of": as_of, "boards": boards, "events": list(events)})


def member_frames(channel: str, epoch: str, seq: int, blob: str | bytes) -> bytes:
    d = orjson.loads(blob)
    if d["boards"] is not None:
        return frame("delta", channel, epoch, seq, {"as_of": d["as_of"], "boards": d["boards"]})
    (event,) = d["events"]
    return frame("event", channel, epoch, seq, {"as_of": d["as_of"], **event})
