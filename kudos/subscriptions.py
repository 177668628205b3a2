"""What a live-feed client must know of its channels, pure (no sockets): the ``(epoch, seq)``
bookkeeping of docs/protocol.md, resume, gap and epoch handling, and each channel's state
(a board's top N with deltas applied, a cohort, a member's standings).

:class:`Subscriptions` takes every frame the server sends and answers what to hand the
application (:class:`Update` s, in order, each at most once) and what to send back (resubscribes
after a gap). :class:`kudos.client.Client` owns the socket around it; the page's
``web/static/kudos-client.js`` is the same state machine in JavaScript.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from leaderboard.errors import LiveError
from web.protocol import MAX_COHORT, MAX_LIMIT

#: Error codes after which a channel can never be followed as asked (the others, such as
#: ``unavailable``, are worth a retry).
FATAL_CODES = frozenset({"bad_request", "bad_channel", "unknown_board", "too_many_subscriptions"})
#: A member channel's standings: one per base board (8 today), with room for more.
MAX_BOARDS = 64
KINDS = ("board", "member", "cohort", "alerts")


@dataclass(frozen=True, slots=True)
class Update:
    """One thing that happened on a channel, handed to the application in order.

    ``kind``:

    - ``snapshot``: the channel's whole state. ``first`` on the first one; a later one is a
      re-sync (``reason``: ``conflated``, ``reset``, or ``not_recovered`` after a reconnect that
      could not resume), and ``previous`` / ``previous_boards`` hold what it replaces.
    - ``delta``: a change, already applied to ``entries`` / ``boards``.
    - ``event``: a rank event, perk unlock or bait alert on its own (``frame`` is the event).
    - ``resumed``: a reconnect resumed the channel; ``missed`` frames follow as deltas.
    - ``error``: the server refused a request about the channel (``frame`` has ``code`` and
      ``message``); ``fatal`` when the channel was dropped because of it.
    - ``frame``: only for a reader that asked for frames (``Client.updates(frames=True)``):
      a frame as it arrived (``raw``), before the updates it makes.
    """

    channel: str
    kind: str
    frame: Mapping[str, Any]
    #: board and cohort channels: the rows held after this update, best first
    entries: tuple[Mapping[str, Any], ...] = ()
    #: ... and before it (a delta's, or a re-sync snapshot's, starting point)
    previous: tuple[Mapping[str, Any], ...] = ()
    #: member channels: board → {"rank", "score"} or None, after and before
    boards: Mapping[str, Any] = field(default_factory=dict)
    previous_boards: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    first: bool = False
    reason: str = ""
    missed: int = 0
    fatal: bool = False
    raw: str = ""

    @property
    def events(self) -> list[Mapping[str, Any]]:
        """The rank events, perks and alerts this update carries (a delta's ``events``, or the
        event frame itself)."""
        if self.kind == "event":
            return [self.frame]
        events = self.frame.get("events")
        return [e for e in events if isinstance(e, Mapping)] if isinstance(events, list) else []


class Actions(NamedTuple):
    """What one frame asks of the connection: updates for the application, messages to send
    now, channels to subscribe to again after a pause (``unavailable``), and what to tell a
    human (a gap being resumed)."""

    updates: list[Update]
    send: list[dict[str, Any]]
    retry: list[str]
    notices: list[str]


@dataclass
class _Channel:
    name: str
    limit: int | None
    members: tuple[str, ...]
    epoch: str | None = None
    seq: int | None = None
    #: a snapshot was applied (a later one is a re-sync)
    synced: bool = False
    #: a subscribe is on its way: frames out of sequence meanwhile are dropped, not re-flagged
    resyncing: bool = False
    #: the id of the subscribe on its way (its reply alone ends ``resyncing``: one request per
    #: channel in flight, however many gaps a server makes)
    request: int | None = None
    rows: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    boards: dict[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.name.partition(":")[0]

    def entries(self) -> tuple[Mapping[str, Any], ...]:
        return tuple(sorted(self.rows.values(), key=lambda e: (e.get("rank", 0), e["member"])))


def check_channel(
    name: str, limit: int | None = None, members: tuple[str, ...] = ()
) -> tuple[int | None, tuple[str, ...]]:
    """Refuse, before anything is sent, a subscription the server would refuse; the limit and
    members to send."""
    kind, sep, key = name.partition(":")
    if kind not in KINDS or (kind == "alerts") == bool(sep) or (sep and not key):
        raise LiveError(
            "bad_channel",
            f"{name!r} is not a channel: board:<board>, member:<id>, cohort:<board> or alerts",
        )
    if kind == "cohort":
        if not 1 <= len(members) <= MAX_COHORT or not all(
            isinstance(m, str) and m for m in members
        ):
            raise LiveError("bad_channel", f"{name}: give 1 to {MAX_COHORT} member ids")
    elif members:
        raise LiveError("bad_channel", f"{name}: only a cohort channel takes members")
    if kind != "board":
        return None, tuple(members)
    if limit is not None and not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
        raise LiveError("bad_channel", f"{name}: a limit is 1 to {MAX_LIMIT}, not {limit!r}")
    return limit, ()


class Subscriptions:
    """Every channel a client follows, and where it stands in each (docs/protocol.md)."""

    def __init__(self) -> None:
        self.channels: dict[str, _Channel] = {}
        #: request id → channel, to tell which subscribe an error answers
        self._requests: dict[int, str] = {}
        self._next_id = 1
        self.connected = False

    # -- the application's side ---------------------------------------------------------------

    def add(
        self, name: str, limit: int | None = None, members: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Follow ``name`` (again: a new limit or cohort, a fresh snapshot); what to send."""
        limit, members = check_channel(name, limit, tuple(members))
        self.channels[name] = _Channel(name, limit, members)
        return [self._subscribe(self.channels[name])] if self.connected else []

    def remove(self, name: str) -> list[dict[str, Any]]:
        if self.channels.pop(name, None) is None or not self.connected:
            return []
        return [{"op": "unsubscribe", "channel": name}]

    def position(self, name: str) -> tuple[str, int] | None:
        """The ``(epoch, seq)`` of the last frame applied on ``name``."""
        ch = self.channels.get(name)
        if ch is None or ch.epoch is None or ch.seq is None:
            return None
        return ch.epoch, ch.seq

    def snapshot(
        self,
        name: str,
        previous: tuple[Mapping[str, Any], ...] = (),
        previous_boards: Mapping[str, Any] | None = None,
    ) -> Update | None:
        """The channel's state now, as a catch-up snapshot for a reader that fell behind
        (``previous``: what that reader last saw)."""
        ch = self.channels.get(name)
        if ch is None or not ch.synced or ch.seq is None:
            return None
        first = previous_boards is None  # the reader had seen nothing of it yet
        return Update(
            name,
            "snapshot",
            {"type": "snapshot", "channel": name, "epoch": ch.epoch, "seq": ch.seq},
            ch.entries(),
            previous,
            dict(ch.boards),
            dict(previous_boards or {}),
            limit=ch.limit,
            first=first,
            reason="" if first else "conflated",
        )

    # -- the connection's side ----------------------------------------------------------------

    def on_connect(self) -> list[dict[str, Any]]:
        """A new connection (after hello and auth): subscribe to every channel, resuming each
        from its last frame."""
        self.connected = True
        self._requests.clear()
        return [self._subscribe(ch) for ch in self.channels.values()]

    def on_disconnect(self) -> None:
        self.connected = False
        for ch in self.channels.values():
            ch.resyncing, ch.request = False, None

    def resubscribe(self, name: str) -> list[dict[str, Any]]:
        """After an ``unavailable`` pause: ask again, resuming."""
        ch = self.channels.get(name)
        return [self._subscribe(ch)] if ch is not None and self.connected else []

    def receive(self, frame: Mapping[str, Any]) -> Actions:
        """Apply one frame from the server."""
        out = Actions([], [], [], [])
        kind = frame.get("type")
        if kind == "error":
            self._error(frame, out)
            return out
        ch = self.channels.get(str(frame.get("channel")))
        if ch is None:
            return out  # hello, pong, authenticated, unsubscribed, a channel we let go of
        try:
            if kind == "subscribed":
                self._subscribed(ch, frame, out)
            elif kind == "snapshot":
                self._snapshot(ch, frame, out)
            elif kind in ("delta", "event"):
                self._frame(ch, frame, out)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a last resort
            out.updates.clear()
            self._malformed(ch, f"a {kind} frame it cannot apply ({type(exc).__name__})", out)
        return out

    def _malformed(self, ch: _Channel, what: str, out: Actions) -> None:
        """A frame this client cannot apply: forget the position, ask for a fresh snapshot
        after a pause (a server that keeps sending such frames gets one request a second)."""
        out.notices.append(f"{ch.name}: {what}; asking for a snapshot")
        ch.seq = None
        ch.resyncing = True  # frames meanwhile are dropped
        out.retry.append(ch.name)

    # -- internals ------------------------------------------------------------------------------

    def _subscribe(self, ch: _Channel, resume: bool = True) -> dict[str, Any]:
        rid = self._next_id
        self._next_id += 1
        if ch.request is not None:
            self._requests.pop(ch.request, None)  # its reply, if any, is stale now
        self._requests[rid] = ch.name
        ch.request = rid
        ch.resyncing = True
        msg: dict[str, Any] = {"op": "subscribe", "channel": ch.name, "id": rid}
        if ch.limit is not None:
            msg["limit"] = ch.limit
        if ch.members:
            msg["members"] = list(ch.members)
        if resume and ch.epoch is not None and ch.seq is not None:
            msg["resume"] = {"epoch": ch.epoch, "seq": ch.seq}
        return msg

    def _error(self, frame: Mapping[str, Any], out: Actions) -> None:
        rid = frame.get("id")
        name = self._requests.pop(rid, None) if isinstance(rid, int) else None
        ch = self.channels.get(name) if name is not None else None
        if ch is not None and ch.request != rid:
            ch = None  # the answer to a request since replaced: nothing to act on
        code = frame.get("code")
        fatal = ch is not None and isinstance(code, str) and code in FATAL_CODES
        out.updates.append(Update(name or "", "error", frame, fatal=fatal))
        if ch is None or name is None:
            return
        ch.resyncing, ch.request = False, None
        if fatal:
            del self.channels[name]
        elif code == "unavailable":  # Redis is down for a moment: ask again later
            out.retry.append(name)

    def _subscribed(self, ch: _Channel, f: Mapping[str, Any], out: Actions) -> None:
        if ch.request is None or f.get("id") != ch.request:
            return  # a reply to a request since replaced (or none of ours): stale
        self._requests.pop(ch.request, None)
        ch.resyncing, ch.request = False, None
        limit = _int(f.get("limit"))
        if limit is not None and ch.kind == "board" and 1 <= limit <= MAX_LIMIT:
            ch.limit = limit  # what the server granted
        recovered = f.get("recovered") and ch.synced and ch.seq is not None
        if recovered and f.get("epoch") == ch.epoch and isinstance(f.get("seq"), int):
            missed = max(0, f["seq"] - (ch.seq or 0))
            if missed:
                out.updates.append(Update(ch.name, "resumed", f, missed=missed))
            return
        # a snapshot follows: frames before it are already in it
        ch.seq = None

    def _snapshot(self, ch: _Channel, f: Mapping[str, Any], out: Actions) -> None:
        if not _well_formed(ch, f):
            self._malformed(ch, "a malformed snapshot", out)
            return
        previous, previous_boards = ch.entries(), dict(ch.boards)
        first = not ch.synced
        ch.epoch, ch.seq, ch.synced, ch.resyncing = f["epoch"], f["seq"], True, False
        if ch.kind in ("board", "cohort"):
            ch.rows = {e["member"]: e for e in _entries(f)}
        elif ch.kind == "member":
            ch.boards = dict(f.get("boards") or {})
        reason = "" if first else _why(f)
        out.updates.append(
            Update(
                ch.name,
                "snapshot",
                f,
                ch.entries(),
                () if first else previous,
                dict(ch.boards),
                {} if first else previous_boards,
                ch.limit,
                first=first,
                reason=reason,
            )
        )

    def _frame(self, ch: _Channel, f: Mapping[str, Any], out: Actions) -> None:
        if ch.seq is None:
            return  # before the snapshot (or the resume reply): it will include this
        seq = _int(f.get("seq"))
        if seq is None:
            self._malformed(ch, "a frame without a sequence number", out)
            return
        if f.get("epoch") != ch.epoch:  # the feed's history is gone: start again
            if not ch.resyncing:
                ch.seq = None
                out.send.append(self._subscribe(ch, resume=False))
            return
        if seq <= ch.seq:
            return  # already applied (a replay overlapping live frames)
        if seq != ch.seq + 1:  # a gap: resume from the last frame applied
            if not ch.resyncing:
                out.notices.append(f"{ch.name}: frame {seq} after {ch.seq}; resuming")
                out.send.append(self._subscribe(ch))
            return
        if not _well_formed(ch, f):  # a frame this client cannot apply: start again
            self._malformed(ch, f"frame {seq} is malformed", out)
            return
        ch.seq = seq
        previous, previous_boards = ch.entries(), dict(ch.boards)
        if f.get("type") == "delta":
            if ch.kind == "cohort" or (ch.kind == "board" and "entries" in f):
                ch.rows = {e["member"]: e for e in _entries(f)}
            elif ch.kind == "board":
                _apply(ch.rows, f)
            elif ch.kind == "member":
                ch.boards.update(f.get("boards") or {})
            if len(ch.rows) > (ch.limit or MAX_LIMIT) or len(ch.boards) > MAX_BOARDS:
                self._malformed(ch, f"frame {seq} leaves more rows than subscribed", out)
                return
        out.updates.append(
            Update(
                ch.name,
                str(f.get("type")),
                f,
                ch.entries(),
                previous,
                dict(ch.boards),
                previous_boards,
                ch.limit,
            )
        )


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


#: the fields each list of a board delta must carry (docs/protocol.md)
_DELTA_FIELDS = {
    "entered": ("rank", "score"),
    "score": ("rank", "score"),
    "moved": ("from", "to", "score"),
    "left": ("rank",),
}


def _rows_ok(items: Any, needs: tuple[str, ...], most: int) -> bool:
    if not isinstance(items, list) or len(items) > most:
        return False
    return all(
        isinstance(e, Mapping)
        and isinstance(e.get("member"), str)
        and all(_num(e.get(k)) for k in needs)
        for e in items
    )


def _well_formed(ch: _Channel, f: Mapping[str, Any]) -> bool:
    """Whether a snapshot or delta carries what applying it (and wording it) reads, within the
    bounds of the subscription: a hostile or broken server's frame must not crash the reader
    half-way through, nor grow its state beyond what it asked for."""
    kind = f.get("type")
    most = ch.limit or MAX_LIMIT if ch.kind == "board" else MAX_COHORT
    events = f.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        return False
    if kind == "snapshot" and (not isinstance(f.get("epoch"), str) or _int(f.get("seq")) is None):
        return False
    if kind not in ("snapshot", "delta"):
        return True
    if ch.kind == "member":
        boards = f.get("boards", {})
        return (
            isinstance(boards, Mapping)
            and len(boards) <= MAX_BOARDS
            and all(
                v is None
                or (isinstance(v, Mapping) and _num(v.get("rank")) and _num(v.get("score")))
                for v in boards.values()
            )
        )
    if ch.kind == "alerts":
        return True
    if ch.kind == "cohort" and "entries" not in f:
        return False  # a cohort's every frame carries the whole cohort
    if kind == "snapshot" or ch.kind == "cohort" or "entries" in f:
        return _rows_ok(f.get("entries", []), ("rank", "score"), most)
    return all(
        _rows_ok(f.get(part) or [], needs, 4 * MAX_LIMIT) for part, needs in _DELTA_FIELDS.items()
    )


def _apply(rows: dict[str, Mapping[str, Any]], f: Mapping[str, Any]) -> None:
    """A board delta: ``left``, then ``entered``, ``moved`` and ``score`` (docs/protocol.md)."""
    for e in _list(f, "left"):
        rows.pop(e["member"], None)
    for e in _list(f, "entered"):
        rows[e["member"]] = {"rank": e["rank"], "member": e["member"], "score": e["score"]}
    for e in _list(f, "moved"):
        rows[e["member"]] = {"rank": e["to"], "member": e["member"], "score": e["score"]}
    for e in _list(f, "score"):
        rows[e["member"]] = {"rank": e["rank"], "member": e["member"], "score": e["score"]}


def _list(f: Mapping[str, Any], part: str) -> list[Mapping[str, Any]]:
    return [e for e in f.get(part) or () if isinstance(e, Mapping) and "member" in e]


def _entries(f: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return _list(f, "entries")


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _why(f: Mapping[str, Any]) -> str:
    if f.get("conflated"):
        return "conflated"
    if f.get("reset"):
        return "reset"
    return "not_recovered"
