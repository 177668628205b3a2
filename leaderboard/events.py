"""The interaction event: schema, validation and message decoding (pure, no I/O).

A Kafka message value is one JSON object or a JSON array of them (an *envelope*). Decoding never
raises for bad input: each element becomes either an :class:`Event` or a :class:`Rejected` carrying
the raw bytes and the reason, so one bad element never blocks the good ones of its envelope.

The events topic also carries the workers' own bait evidence
(:mod:`leaderboard.bait.evidence`): a message whose whole value is one object with the
:data:`~leaderboard.bait.evidence.MARKER` key decodes to an :class:`Evidence` item, or to a
``bad_evidence`` rejection. Evidence travels alone: an envelope element carrying the key is
``bad_evidence`` too, whatever else it holds (so no envelope, and no HTTP ingest body, which is
always produced in envelopes, can pass one off).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import orjson

from leaderboard.bait.evidence import MARKER, BadEvidence, Evidence
from leaderboard.errors import InvalidEvent
from leaderboard.ids import CONTROL as _CONTROL
from leaderboard.ids import MAX_ID

MAX_TEXT = 2000
MAX_COMMUNITIES = 8
MAX_COMMUNITY = 64
#: Largest accepted event time (unix seconds, year 2200), the schema's absolute bound. The bound
#: that matters is relative: at most ``max_future_s`` ahead of the time the event was recorded
#: (:func:`future_bound`), since one far-future ts would move the global watermark, expire every
#: window and jump the decay landmark.
MAX_TS = 7_258_118_400.0
#: Reason code of an event too far ahead of its record time (dead letters, HTTP ingest errors).
FUTURE = "future"
#: Reason code of a message carrying the evidence marker that is not a valid evidence record (or
#: carries it inside an envelope).
BAD_EVIDENCE = "bad_evidence"

_COMMUNITY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def valid_community(tag: str) -> bool:
    """Whether ``tag`` names a community the way events may (1-64 of A-Z a-z 0-9 _ . -)."""
    return _COMMUNITY.fullmatch(tag) is not None


class Event(NamedTuple):
    """One validated interaction. ``ts`` is event time in unix seconds.

    A NamedTuple rather than a frozen dataclass: a worker builds ~100k of these a second, and a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost 3% of it.
    """

    id: str
    ts: float
    kind: str
    actor: str
    target: str
    post: str | None = None
    text: str | None = None
    communities: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "kind": self.kind,
            "actor": self.actor,
            "target": self.target,
        }
        if self.post is not None:
            out["post"] = self.post
        if self.text is not None:
            out["text"] = self.text
        if self.communities:
            out["communities"] = list(self.communities)
        return out


#: The kind of a profile event (:class:`Profile`): not a scoring kind, whatever scoring.toml says.
PROFILE = "profile"
MAX_NAME = 64
MAX_AVATAR_URL = 512
#: Characters a display name may not hold: control characters; the bidirectional marks,
#: overrides and isolates that would make a name render as another (U+061C, U+200E-U+200F,
#: U+202A-U+202E, U+2066-U+2069); invisible ones that would make two names look the same (soft
#: hyphen, zero-width space/joiners, word joiner and invisible operators, BOM); line and
#: paragraph separators.
_NOT_IN_NAME = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]"
)


class Profile(NamedTuple):
    """A member's display name and avatar, set through the event stream (kind ``profile``,
    actor = target = the member; README "Names and avatars"), so a rebuild restores them. It
    scores nothing and moves no clock; the latest by (ts, id) wins whatever the order of
    arrival. ``None``: leave as is; ``""``: clear."""

    id: str
    ts: float
    member: str
    name: str | None
    avatar: str | None

    @property
    def target(self) -> str:
        return self.member

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "kind": PROFILE,
            "actor": self.member,
            "target": self.member,
        }
        if self.name is not None:
            out["name"] = self.name
        if self.avatar is not None:
            out["avatar"] = self.avatar
        return out


def check_avatar(url: str) -> str | None:
    """What is wrong with ``url`` as an avatar (None: nothing): an ``https`` URL with a host, no
    credentials, no whitespace or control characters, at most 512 characters."""
    if len(url) > MAX_AVATAR_URL:
        return f"is {len(url)} characters, at most {MAX_AVATAR_URL}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or not url.isascii():
        return "holds whitespace, control or non-ASCII characters (percent-encode them)"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"is not a URL ({exc})"
    if parts.scheme != "https":
        return "must be an https URL"
    if not host or "@" in parts.netloc:
        return "must name a host, without credentials"
    # (every viewer's browser fetches it: not this machine or a bare address, which could point
    # viewers at their own network; names that resolve to private addresses are not caught here)
    if host == "localhost" or host.endswith((".localhost", ".local")) or _is_ip(host):
        return "must name a public host by name (not localhost or an IP address)"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.replace(".", "").isdigit()  # (also 2130706433, 127.1: what browsers accept)
    return True


def _profile(obj: dict[str, Any], event_id: str, actor: str, target: str, ts: float) -> Profile:
    if actor != target:
        raise InvalidEvent(
            "bad_profile", "a 'profile' event is a member's own: actor must equal target"
        )
    name, avatar = obj.get("name"), obj.get("avatar")
    if name is None and avatar is None:
        raise InvalidEvent("bad_profile", "a 'profile' event sets 'name', 'avatar' or both")
    if name is not None:
        if not isinstance(name, str):
            raise InvalidEvent("bad_type", "'name' must be a string")
        if len(name) > MAX_NAME:
            raise InvalidEvent(
                "bad_length", f"'name' is {len(name)} characters, at most {MAX_NAME}"
            )
        if _NOT_IN_NAME.search(name):
            raise InvalidEvent(
                "control_chars",
                "'name' holds control, invisible or bidirectional-formatting characters",
            )
        if name and not name.strip():
            raise InvalidEvent("bad_profile", "'name' is only whitespace ('' clears it)")
    if avatar is not None:
        if not isinstance(avatar, str):
            raise InvalidEvent("bad_type", "'avatar' must be a string")
        problem = check_avatar(avatar) if avatar else None
        if problem is not None:
            raise InvalidEvent("bad_avatar", f"'avatar' {problem}")
    return Profile(event_id, ts, actor, name, avatar)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An element that failed validation: its raw bytes, the reason code and a readable detail.

    ``index`` is its position in the envelope, or None when the whole message was unusable.
    """

    index: int | None
    raw: bytes
    reason: str
    detail: str


def _ident(obj: dict[str, Any], name: str, required: bool = True) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise InvalidEvent("missing_field", f"{name!r} is required")
        return None
    if not isinstance(value, str):
        raise InvalidEvent("bad_type", f"{name!r} must be a string, got {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID:
        raise InvalidEvent(
            "bad_length", f"{name!r} must be 1-{MAX_ID} characters, got {len(value)}"
        )
    if _CONTROL.search(value):
        raise InvalidEvent("control_chars", f"{name!r} contains control characters")
    return value


def parse_ts(value: Any) -> float:
    """Event time as unix seconds from a number or an RFC 3339 string.

    Raises:
        InvalidEvent: not a finite number in range, or a string without a UTC offset.
    """
    t = type(value)
    if (t is int or t is float) and 0 <= value <= MAX_TS:
        return float(value)  # the common case; NaN fails the range test and takes the long path
    if isinstance(value, bool):
        raise InvalidEvent("bad_ts", "'ts' must be a number or an RFC 3339 string, got a boolean")
    if isinstance(value, int | float):
        try:
            ts = float(value)
        except OverflowError:
            raise InvalidEvent("bad_ts", f"'ts' {str(value)[:40]} is out of range") from None
    elif isinstance(value, str):
        if not _RFC3339.fullmatch(value):
            raise InvalidEvent(
                "bad_ts",
                f"'ts' {value[:40]!r} is not RFC 3339 (e.g. 2012-07-04T07:00:00Z; an offset is required)",
            )
        try:
            ts = datetime.fromisoformat(value.upper().replace(" ", "T")).timestamp()
        except ValueError as exc:
            raise InvalidEvent(
                "bad_ts", f"'ts' {value[:40]!r} is not a valid date: {exc}"
            ) from None
    elif value is None:
        raise InvalidEvent("missing_field", "'ts' is required")
    else:
        raise InvalidEvent(
            "bad_ts", f"'ts' must be a number or a string, got {type(value).__name__}"
        )
    if not math.isfinite(ts) or not 0 <= ts <= MAX_TS:
        raise InvalidEvent("bad_ts", f"'ts' {ts!r} is outside 0..{MAX_TS:.0f}")
    return ts


def future_bound(recorded: float | None, max_future_s: float) -> float:
    """The largest ``ts`` accepted for an event recorded at ``recorded`` (unix seconds: its Kafka
    record's timestamp, or HTTP ingest's clock on receipt).

    A message without a record time (None, or negative: message format v0 of old brokers) has
    no bound beyond MAX_TS. That is still decided by the log alone, so every replay agrees.
    """
    if recorded is None or not recorded >= 0.0:  # (NaN too)
        return MAX_TS
    return min(recorded + max_future_s, MAX_TS)


def future_detail(ts: float, recorded: float, max_future_s: float, clock: str) -> str:
    """The readable detail of a ``future`` refusal; ``clock`` names what ``recorded`` is."""
    return (
        f"ts {ts:.0f} is {ts - recorded:.1f} s ahead of {clock} ({recorded:.3f}); "
        f"at most {max_future_s:g} s is accepted (KUDOS_WORKER_MAX_FUTURE_S)"
    )


def parse_event(obj: Any, kinds: Collection[str]) -> Event | Profile:
    """Validate one decoded JSON value against the schema.

    A ``profile`` event (a display name and avatar) is a :class:`Profile`.

    Raises:
        InvalidEvent: with a stable ``reason`` code (missing_field, bad_type, bad_length,
            control_chars, unknown_kind, bad_ts, bad_communities, not_object, bad_profile,
            bad_avatar).
    """
    if not isinstance(obj, dict):
        raise InvalidEvent(
            "not_object", f"an event must be a JSON object, got {type(obj).__name__}"
        )
    # fast path for the common, valid case: one regex pass over the three required ids; anything
    # unusual falls back to the field-by-field checks, which name the field that is wrong
    event_id, actor, target = obj.get("id"), obj.get("actor"), obj.get("target")
    fast = (
        type(event_id) is str
        and type(actor) is str
        and type(target) is str
        and 0 < len(event_id) <= MAX_ID
        and 0 < len(actor) <= MAX_ID
        and 0 < len(target) <= MAX_ID
        and _CONTROL.search(event_id + actor + target) is None
    )
    if not fast:
        event_id = _ident(obj, "id")
    kind = obj.get("kind")
    if kind is None:
        raise InvalidEvent("missing_field", "'kind' is required")
    if kind == PROFILE:
        if not fast:
            actor, target = _ident(obj, "actor"), _ident(obj, "target")
        assert event_id is not None and actor is not None and target is not None
        return _profile(obj, event_id, actor, target, parse_ts(obj.get("ts")))
    if not isinstance(kind, str) or kind not in kinds:
        raise InvalidEvent(
            "unknown_kind", f"'kind' {str(kind)[:40]!r} is not one of {', '.join(sorted(kinds))}"
        )
    if not fast:
        actor = _ident(obj, "actor")
        target = _ident(obj, "target")
    ts = parse_ts(obj.get("ts"))
    post = _ident(obj, "post", required=False)
    text = obj.get("text")
    if text is not None:
        if not isinstance(text, str):
            raise InvalidEvent("bad_type", "'text' must be a string")
        if len(text) > MAX_TEXT:
            raise InvalidEvent(
                "bad_length", f"'text' is {len(text)} characters, at most {MAX_TEXT}"
            )
    communities: tuple[str, ...] = ()
    raw_communities = obj.get("communities")
    if raw_communities is not None:
        if not isinstance(raw_communities, list) or len(raw_communities) > MAX_COMMUNITIES:
            raise InvalidEvent(
                "bad_communities", f"'communities' must be a list of at most {MAX_COMMUNITIES}"
            )
        for c in raw_communities:
            if not isinstance(c, str) or not _COMMUNITY.fullmatch(c):
                raise InvalidEvent(
                    "bad_communities",
                    f"community {str(c)[:70]!r} must be 1-{MAX_COMMUNITY} of A-Z a-z 0-9 _ . -",
                )
        # duplicates would double-count the same board; order kept for display
        communities = tuple(dict.fromkeys(raw_communities))
    assert event_id is not None and actor is not None and target is not None
    if kind == "post" and actor != target:
        raise InvalidEvent(
            "bad_post", "a 'post' event announces a post by its target: actor must equal target"
        )
    return Event(event_id, ts, kind, actor, target, post, text, communities)


def decode_message(
    raw: bytes | None, kinds: Collection[str]
) -> list[Event | Profile | Evidence | Rejected]:
    """Decode one Kafka message value into events and rejections, in envelope order (or into
    one evidence record, when the value is one object with the evidence marker)."""
    if raw is None:
        return [Rejected(None, b"", "tombstone", "message has no value")]
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return [Rejected(None, raw, "bad_json", str(exc))]
    if isinstance(value, list):
        if not value:
            return [
                Rejected(None, raw, "empty_envelope", "an envelope must hold at least one event")
            ]
        # (one dict lookup per element: next to parse_event's ~1 µs it costs nothing measurable)
        return [
            _in_envelope(i, item) if type(item) is dict and MARKER in item else _one(i, item, kinds)
            for i, item in enumerate(value)
        ]
    if type(value) is dict and MARKER in value:
        return [_evidence(value, raw)]
    return [_one(None, value, kinds, raw)]


def _evidence(value: dict[str, Any], raw: bytes) -> Evidence | Rejected:
    try:
        return Evidence.from_json(value)
    except BadEvidence as exc:
        return Rejected(None, raw, BAD_EVIDENCE, f"not a valid evidence record: {exc}")


def _in_envelope(index: int, value: dict[str, Any]) -> Rejected:
    return Rejected(
        index,
        orjson.dumps(value),
        BAD_EVIDENCE,
        f"{MARKER!r} is reserved for evidence records, which travel alone (never in an envelope)",
    )


def _one(
    index: int | None, value: Any, kinds: Collection[str], raw: bytes | None = None
) -> Event | Profile | Rejected:
    try:
        return parse_event(value, kinds)
    except InvalidEvent as exc:
        return Rejected(
            index, raw if raw is not None else orjson.dumps(value), exc.reason, exc.detail
        )
