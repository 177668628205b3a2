"""Event schema validation and message decoding (leaderboard/events.py), no I/O."""

from __future__ import annotations

import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.errors import InvalidEvent, KudosError
from leaderboard.events import (
    MAX_TS,
    Event,
    Rejected,
    decode_message,
    future_bound,
    parse_event,
    parse_ts,
)
from leaderboard.scoring import ScoringRules

KINDS = ScoringRules.load().kinds


def envelope(events: list[Event]) -> bytes:
    return orjson.dumps([e.to_json() for e in events])


GOOD: dict[str, Any] = {
    "id": "e1",
    "ts": 1341100972,
    "kind": "share",
    "actor": "alice",
    "target": "bob",
}


def with_(**changes: Any) -> dict[str, Any]:
    obj = dict(GOOD)
    obj.update(changes)
    return obj


def without(name: str) -> dict[str, Any]:
    obj = dict(GOOD)
    del obj[name]
    return obj


def test_good_event_parses_to_the_same_fields() -> None:
    ev = parse_event(with_(post="p1", text="nice post", communities=["physics", "cern"]), KINDS)
    assert ev == Event(
        "e1", 1341100972.0, "share", "alice", "bob", "p1", "nice post", ("physics", "cern")
    )
    assert isinstance(ev.ts, float)


# ---------------------------------------------------------------------------------------------
# every reason code, table-driven


REJECTIONS: list[tuple[str, Any, str]] = [
    # missing_field
    ("no id", without("id"), "missing_field"),
    ("no kind", without("kind"), "missing_field"),
    ("no actor", without("actor"), "missing_field"),
    ("no target", without("target"), "missing_field"),
    ("no ts", without("ts"), "missing_field"),
    ("null id", with_(id=None), "missing_field"),
    ("null kind", with_(kind=None), "missing_field"),
    ("null ts", with_(ts=None), "missing_field"),
    # bad_type
    ("int id", with_(id=5), "bad_type"),
    ("list actor", with_(actor=["alice"]), "bad_type"),
    ("object target", with_(target={"name": "bob"}), "bad_type"),
    ("int post", with_(post=7), "bad_type"),
    ("int text", with_(text=42), "bad_type"),
    ("bool actor", with_(actor=True), "bad_type"),
    # bad_length
    ("empty id", with_(id=""), "bad_length"),
    ("id 129 chars", with_(id="x" * 129), "bad_length"),
    ("actor 129 chars", with_(actor="a" * 129), "bad_length"),
    ("target 129 chars", with_(target="t" * 129), "bad_length"),
    ("empty post", with_(post=""), "bad_length"),
    ("text 2001 chars", with_(text="y" * 2001), "bad_length"),
    # control_chars
    ("newline in id", with_(id="e\n1"), "control_chars"),
    ("tab in id", with_(id="e\t1"), "control_chars"),
    ("NUL in actor", with_(actor="al\x00ice"), "control_chars"),
    ("DEL in target", with_(target="bob\x7f"), "control_chars"),
    ("unit separator in actor", with_(actor="a\x1fb"), "control_chars"),
    ("line separator in post", with_(post="p\u2028"), "control_chars"),
    ("paragraph separator in id", with_(id="\u2029"), "control_chars"),
    # unknown_kind
    ("unknown kind", with_(kind="retweet"), "unknown_kind"),
    ("kind wrong case", with_(kind="Share"), "unknown_kind"),
    ("empty kind", with_(kind=""), "unknown_kind"),
    ("int kind", with_(kind=3), "unknown_kind"),
    # bad_ts
    ("naive RFC 3339 string", with_(ts="2012-07-04T07:00:00"), "bad_ts"),
    ("date only", with_(ts="2012-07-04"), "bad_ts"),
    ("not a date", with_(ts="yesterday"), "bad_ts"),
    ("negative ts", with_(ts=-1), "bad_ts"),
    ("negative before epoch string", with_(ts="1969-12-31T23:59:59Z"), "bad_ts"),
    ("inf ts", with_(ts=float("inf")), "bad_ts"),
    ("-inf ts", with_(ts=float("-inf")), "bad_ts"),
    ("nan ts", with_(ts=float("nan")), "bad_ts"),
    ("bool true ts", with_(ts=True), "bad_ts"),
    ("bool false ts", with_(ts=False), "bad_ts"),
    ("list ts", with_(ts=[1341100972]), "bad_ts"),
    ("after year 2200", with_(ts=MAX_TS + 1), "bad_ts"),
    # bad_communities
    ("9 communities", with_(communities=[f"c{i}" for i in range(9)]), "bad_communities"),
    ("space in tag", with_(communities=["bad tag"]), "bad_communities"),
    ("colon in tag", with_(communities=["a:b"]), "bad_communities"),
    ("non-ascii tag", with_(communities=["physique-é"]), "bad_communities"),
    ("empty tag", with_(communities=[""]), "bad_communities"),
    ("tag 65 chars", with_(communities=["c" * 65]), "bad_communities"),
    ("int tag", with_(communities=[5]), "bad_communities"),
    ("communities not a list", with_(communities="physics"), "bad_communities"),
    # not_object
    ("list", [GOOD], "not_object"),
    ("string", "e1", "not_object"),
    ("number", 5, "not_object"),
    ("null", None, "not_object"),
    # bad_post
    ("post by someone else", with_(kind="post", actor="alice", target="bob"), "bad_post"),
]


@pytest.mark.parametrize(
    ("obj", "reason"), [(o, r) for _, o, r in REJECTIONS], ids=[n for n, _, _ in REJECTIONS]
)
def test_invalid_event_has_stable_reason(obj: Any, reason: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(obj, KINDS)
    assert info.value.reason == reason
    assert str(info.value).startswith(f"{reason}: ")
    assert info.value.detail


def test_invalid_event_is_a_kudos_value_error() -> None:
    with pytest.raises(ValueError, match="bad_length"):
        parse_event(with_(id="x" * 129), KINDS)
    assert issubclass(InvalidEvent, KudosError)


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("id 128 chars", with_(id="x" * 128)),
    ("actor 1 char", with_(actor="a")),
    ("text 2000 chars", with_(text="y" * 2000)),
    ("multi-line text", with_(text="tea or coffee?\ncomment below")),
    ("8 communities", with_(communities=[f"c{i}" for i in range(8)])),
    ("tag 64 chars", with_(communities=["c" * 64])),
    ("ts zero", with_(ts=0)),
    ("ts at the upper bound", with_(ts=MAX_TS)),
    ("fractional ts", with_(ts=1341100972.25)),
    ("post by its target", with_(kind="post", actor="bob", target="bob", post="p1")),
    ("null optional fields", with_(post=None, text=None, communities=None)),
    ("unicode ids", with_(actor="zoë", target="ユーザー")),
]


@pytest.mark.parametrize("obj", [o for _, o in ACCEPTED], ids=[n for n, _ in ACCEPTED])
def test_valid_edge_cases_are_accepted(obj: dict[str, Any]) -> None:
    ev = parse_event(obj, KINDS)
    assert ev.id == obj["id"]
    assert ev.ts == float(obj["ts"])


def test_duplicate_communities_are_dropped_keeping_order() -> None:
    ev = parse_event(with_(communities=["b", "a", "b", "a"]), KINDS)
    assert ev.communities == ("b", "a")


def test_kinds_may_be_a_weights_mapping() -> None:
    ev = parse_event(with_(kind="vote"), {"vote": 1000})
    assert ev.kind == "vote"
    with pytest.raises(InvalidEvent, match="unknown_kind"):
        parse_event(GOOD, {"vote": 1000})


def test_community_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(with_(communities=["physics\n"]), KINDS)
    assert info.value.reason == "bad_communities"


# ---------------------------------------------------------------------------------------------
# event time


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2012-07-04T09:00:00+02:00", 1341385200.0),
        ("2012-07-04T07:00:00Z", 1341385200.0),
        ("2012-07-04T07:00:00+00:00", 1341385200.0),
        ("2012-07-04T02:00:00-05:00", 1341385200.0),
        ("2012-07-04T07:00:00.5-05:30", 1341405000.5),
        ("2012-07-03T23:30:00-07:30", 1341385200.0),
        ("1970-01-01T00:00:00Z", 0.0),
        (1341385200, 1341385200.0),
        (1341385200.75, 1341385200.75),
    ],
)
def test_parse_ts_gives_unix_seconds(value: Any, expected: float) -> None:
    assert parse_ts(value) == expected


def test_rfc3339_ts_in_an_event_uses_the_offset() -> None:
    ev = parse_event(with_(ts="2012-07-01T01:30:00+02:00"), KINDS)
    # 01:30 at +02:00 is 23:30 UTC the day before: a different UTC day from the local date
    assert ev.ts == 1341099000.0
    assert math.floor(ev.ts / 86400) == math.floor(1341100800 / 86400) - 1


def test_parse_ts_accepts_lowercase_rfc3339() -> None:
    assert parse_ts("2012-07-04t07:00:00z") == 1341385200.0


def test_parse_ts_huge_integer_is_bad_ts() -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_ts(10**400)
    assert info.value.reason == "bad_ts"


@pytest.mark.parametrize(
    ("recorded", "max_future_s", "bound"),
    [
        (1_700_000_000.25, 300.0, 1_700_000_300.25),
        (0.0, 300.0, 300.0),  # the epoch is a record time
        (MAX_TS - 10, 300.0, MAX_TS),  # never beyond the schema's bound
        (None, 300.0, MAX_TS),  # no record time (old brokers): only the schema's bound
        (-1.0, 300.0, MAX_TS),
        (math.nan, 300.0, MAX_TS),
    ],
)
def test_future_bound_is_relative_to_the_record_time(
    recorded: float | None, max_future_s: float, bound: float
) -> None:
    assert future_bound(recorded, max_future_s) == bound


# ---------------------------------------------------------------------------------------------
# decoding whole messages


def test_single_event_message() -> None:
    raw = orjson.dumps(GOOD)
    assert decode_message(raw, KINDS) == [Event("e1", 1341100972.0, "share", "alice", "bob")]


def test_bad_json_is_rejected_whole_with_raw_bytes() -> None:
    raw = b'{"id": "e1", "ts": '
    [rej] = decode_message(raw, KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, raw, "bad_json")
    assert rej.detail


def test_non_utf8_is_bad_json() -> None:
    raw = b'{"id": "\xff\xfe"}'
    [rej] = decode_message(raw, KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, raw, "bad_json")


def test_empty_envelope_is_rejected() -> None:
    [rej] = decode_message(b"[]", KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, b"[]", "empty_envelope")


def test_tombstone() -> None:
    [rej] = decode_message(None, KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, b"", "tombstone")


def test_invalid_single_object_keeps_the_whole_message_bytes() -> None:
    raw = b'{"id": "e1", "ts": 1, "kind": "retweet", "actor": "a", "target": "b"}'
    [rej] = decode_message(raw, KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, raw, "unknown_kind")


def test_scalar_message_is_not_an_object() -> None:
    [rej] = decode_message(b"42", KINDS)
    assert isinstance(rej, Rejected)
    assert (rej.index, rej.raw, rej.reason) == (None, b"42", "not_object")


def test_envelope_with_one_bad_element_in_the_middle_keeps_the_good_ones() -> None:
    bad = with_(id="e2", actor="x" * 129)
    elements = [with_(id="e1"), bad, with_(id="e3", kind="like"), 7]
    raw = orjson.dumps(elements)
    out = decode_message(raw, KINDS)
    assert len(out) == 4
    first, second, third, fourth = out
    assert first == Event("e1", 1341100972.0, "share", "alice", "bob")
    assert third == Event("e3", 1341100972.0, "like", "alice", "bob")
    assert isinstance(second, Rejected)
    assert second.index == 1
    assert second.reason == "bad_length"
    # the element's own bytes, not the whole envelope
    assert second.raw == orjson.dumps(bad)
    assert second.raw in raw
    assert orjson.loads(second.raw) == bad
    assert isinstance(fourth, Rejected)
    assert (fourth.index, fourth.raw, fourth.reason) == (3, b"7", "not_object")


def test_envelope_round_trip() -> None:
    events = [
        Event("a", 1.0, "share", "u1", "u2"),
        Event("b", 2.5, "comment", "u3", "u2", post="p", text="hi", communities=("x", "y")),
        Event("c", 3.0, "post", "u2", "u2", post="p2"),
    ]
    assert decode_message(envelope(events), KINDS) == events


def test_to_json_omits_absent_optional_fields() -> None:
    assert Event("a", 1.0, "like", "u1", "u2").to_json() == {
        "id": "a",
        "ts": 1.0,
        "kind": "like",
        "actor": "u1",
        "target": "u2",
    }


# ---------------------------------------------------------------------------------------------
# properties

_ident = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    min_size=1,
    max_size=128,
)
_tag = st.from_regex(r"\A[A-Za-z0-9_.\-]{1,64}\Z")


@st.composite
def events(draw: st.DrawFn) -> Event:
    kind = draw(st.sampled_from(sorted(KINDS)))
    actor = draw(_ident)
    target = actor if kind == "post" else draw(_ident)
    return Event(
        id=draw(_ident),
        ts=draw(st.floats(0, MAX_TS, allow_nan=False)),
        kind=kind,
        actor=actor,
        target=target,
        post=draw(st.none() | _ident),
        text=draw(st.none() | st.text(max_size=2000)),
        communities=tuple(dict.fromkeys(draw(st.lists(_tag, max_size=8)))),
    )


@given(st.lists(events(), min_size=1, max_size=5))
def test_valid_events_survive_an_envelope_round_trip(evs: list[Event]) -> None:
    assert decode_message(envelope(evs), KINDS) == evs


@given(st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    out = decode_message(raw, KINDS)
    assert out
    assert all(isinstance(x, Event | Rejected) for x in out)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_PLAUSIBLE: dict[str, Any] = {**GOOD, "post": "p1", "text": "hi", "communities": ["physics"]}
#: objects whose fields are each either plausible or arbitrary JSON, so most checks are reached
_fields = st.fixed_dictionaries({}, optional={k: st.just(v) | _json for k, v in _PLAUSIBLE.items()})


@given(st.lists(_fields | _json, min_size=1, max_size=4))
def test_decode_of_any_json_envelope_returns_one_result_per_element(value: list[Any]) -> None:
    out = decode_message(orjson.dumps(value), KINDS)
    assert len(out) == len(value)
    for i, x in enumerate(out):
        if isinstance(x, Rejected):
            assert x.index == i
            assert orjson.loads(x.raw) == value[i]


def _profile(**fields: Any) -> dict[str, Any]:
    return {
        "id": "p1",
        "ts": 1_341_100_800,
        "kind": "profile",
        "actor": "ann",
        "target": "ann",
        **fields,
    }


def test_a_profile_event_carries_a_display_name_and_an_https_avatar() -> None:
    from leaderboard.events import Profile

    got = parse_event(_profile(name="Ann Lee 🚀", avatar="https://img.example/a.png?s=64"), KINDS)
    assert got == Profile(
        "p1", 1_341_100_800.0, "ann", "Ann Lee 🚀", "https://img.example/a.png?s=64"
    )
    assert parse_event(_profile(name=""), KINDS) == Profile("p1", 1_341_100_800.0, "ann", "", None)
    # a profile is not a scoring kind, whatever scoring.toml lists
    assert "profile" not in KINDS
    assert parse_event(got.to_json(), KINDS) == got


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"name": "Ann", "target": "bob"}, "bad_profile"),  # someone else's profile
        ({}, "bad_profile"),  # sets nothing
        ({"name": "   "}, "bad_profile"),
        ({"name": "x" * 65}, "bad_length"),
        ({"name": "Ann\u202eevil"}, "control_chars"),  # a right-to-left override
        ({"name": "Ann\nLee"}, "control_chars"),
        ({"name": 7}, "bad_type"),
        ({"avatar": "http://img.example/a.png"}, "bad_avatar"),
        ({"avatar": "javascript:alert(1)"}, "bad_avatar"),
        ({"avatar": "https://user:pw@img.example/a.png"}, "bad_avatar"),
        ({"avatar": "https:///a.png"}, "bad_avatar"),
        ({"avatar": "https://img.example/a b.png"}, "bad_avatar"),
        ({"avatar": "https://img.example/" + "a" * 500}, "bad_avatar"),
        ({"avatar": "https://[::1"}, "bad_avatar"),
        ({"avatar": "https://127.0.0.1/a.png"}, "bad_avatar"),
        ({"avatar": "https://[::1]/a.png"}, "bad_avatar"),
        ({"avatar": "https://2130706433/a.png"}, "bad_avatar"),
        ({"avatar": "https://localhost:8080/a.png"}, "bad_avatar"),
        ({"avatar": "https://printer.local/a.png"}, "bad_avatar"),
        ({"name": "ad\u200ba"}, "control_chars"),  # a zero-width space: "ada" twice
        ({"name": "ada\u200e"}, "control_chars"),
        ({"name": "\ufeffada"}, "control_chars"),
    ],
)
def test_bad_profiles_are_refused_with_a_reason(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(_profile(**fields), KINDS)
    assert err.value.reason == reason
