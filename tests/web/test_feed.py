"""The live feed core (web/feed.py), pure: no sockets, no Redis. The assertions are the ones a client
of the websocket protocol (docs/protocol.md) relies on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.feed import (
    DEPTH,
    MAX_OVERTAKES,
    SCORE_DIGITS,
    TIERS,
    BoardRecord,
    Change,
    Resume,
    Row,
    Standing,
    apply_changes,
    board_delta_frame,
    decode_board_record,
    decode_rows,
    diff,
    encode_board_record,
    encode_rows,
    event_members,
    member_frames,
    member_record,
    rank_events,
    resume,
    standing_changes,
    standing_view,
    top_rows,
    view,
)

# -- helpers -----------------------------------------------------------------------------------


def board(scores: Mapping[str, float]) -> list[Row]:
    """The top ``DEPTH`` rows of a board holding ``scores`` (ties broken by member, as a sort)."""
    best_first = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
    return top_rows(best_first[:DEPTH])


def ladder(n: int, top: float = 100.0) -> dict[str, float]:
    """m00..m(n-1) with scores top, top-1, ...: m00 is rank 1, m14 rank 15."""
    return {f"m{i:02d}": top - i for i in range(n)}


def ranks(rows: Sequence[Row]) -> dict[str, int]:
    return {r.member: r.rank for r in rows}


def held(rows: Sequence[Row], n: int) -> dict[str, tuple[int, float]]:
    """What a client subscribed to the top ``n`` holds: member → (rank, score)."""
    return {r.member: (r.rank, r.score) for r in rows[:n]}


def events_between(old: Sequence[Row], new: Sequence[Row]) -> list[dict[str, Any]]:
    return rank_events("all", diff(old, new), old, new)


def entered(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in events if e["event"] == "entered_top"]


def overtakes(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    return [(e["overtaker"], e["overtaken"]) for e in events if e["event"] == "overtaken"]


def _below(rank: int | None) -> float:
    """A rank to compare with; "not in the top DEPTH" is below everyone in it."""
    return float("inf") if rank is None else rank


def overtake_oracle(old: Sequence[Row], new: Sequence[Row]) -> set[tuple[str, str]]:
    """Every (A, B) with A strictly below B before and strictly above B after (docs/protocol.md)."""
    before, after = ranks(old), ranks(new)
    return {
        (a, b)
        for a in after
        for b in before
        if a != b and _below(before.get(a)) > before[b] and after[a] < _below(after.get(b))
    }


def apply_view(
    client: Mapping[str, tuple[int, float]], delta: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, tuple[int, float]]:
    """The client algorithm of docs/protocol.md: apply left, then entered, moved and score.
    Asserts what a client may take for granted while doing so."""
    out = dict(client)
    for e in delta["left"]:
        assert out.pop(e["member"])[0] == e["rank"]
    for e in delta["entered"]:
        assert e["member"] not in out
        out[e["member"]] = (e["rank"], e["score"])
    for e in delta["moved"]:
        assert out[e["member"]][0] == e["from"] != e["to"]
        out[e["member"]] = (e["to"], e["score"])
    for e in delta["score"]:
        assert out[e["member"]][0] == e["rank"]
        out[e["member"]] = (e["rank"], e["score"])
    return out


# -- strategies --------------------------------------------------------------------------------

members = st.integers(0, DEPTH + 50).map(lambda i: f"m{i}")
# small integers tie often; +0.0004 ties with the integer once rounded to SCORE_DIGITS
scores = st.one_of(
    st.tuples(st.integers(0, 12), st.sampled_from([0.0, 0.0004, 0.25])).map(sum),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)


@st.composite
def board_pairs(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    """Two consecutive top lists of one board: some members rescored, dropped or added."""
    old = draw(st.dictionaries(members, scores, max_size=DEPTH + 20))
    updates = draw(st.dictionaries(members, st.none() | scores, max_size=30))
    new = dict(old)
    for m, s in updates.items():
        if s is None:
            new.pop(m, None)
        else:
            new[m] = s
    return board(old), board(new)


# -- top_rows ----------------------------------------------------------------------------------


def test_top_rows_competition_ranks() -> None:
    rows = top_rows([("a", 10.0), ("b", 8.0), ("c", 8.0), ("d", 5.0), ("e", 5.0), ("f", 1.0)])
    assert [(r.member, r.pos, r.rank) for r in rows] == [
        ("a", 0, 1),
        ("b", 1, 2),
        ("c", 2, 2),
        ("d", 3, 4),
        ("e", 4, 4),
        ("f", 5, 6),
    ]
    assert [r.rank for r in top_rows([("x", 3.0), ("y", 3.0), ("z", 3.0)])] == [1, 1, 1]
    assert top_rows([]) == []


def test_top_rows_rounds_scores_and_ties_on_the_rounded_score() -> None:
    assert SCORE_DIGITS == 3
    rows = top_rows([("a", 2.00049), ("b", 2.0001), ("c", 1.23456), ("d", 1.2344)])
    assert [(r.member, r.rank, r.score) for r in rows] == [
        ("a", 1, 2.0),
        ("b", 1, 2.0),  # 2.0001 and 2.00049 both show as 2.0: a tie, not a rank apart
        ("c", 3, 1.235),
        ("d", 4, 1.234),
    ]


# -- diff / apply_changes ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(board_pairs())
def test_apply_changes_inverts_diff(pair: tuple[list[Row], list[Row]]) -> None:
    old, new = pair
    changes = diff(old, new)
    assert apply_changes(old, changes) == new
    # every member at most once, and exactly those whose row differs
    assert len({c.member for c in changes}) == len(changes)
    before, after = {r.member: r for r in old}, {r.member: r for r in new}
    differs = {m for m in before.keys() | after.keys() if before.get(m) != after.get(m)}
    assert {c.member for c in changes} == differs


@given(board_pairs())
def test_diff_of_equal_lists_is_empty(pair: tuple[list[Row], list[Row]]) -> None:
    old, _ = pair
    assert diff(old, list(old)) == []
    assert apply_changes(old, []) == old


def test_diff_lists_members_that_only_shifted_because_another_passed_them() -> None:
    old = board({"a": 30.0, "b": 20.0, "c": 10.0})
    new = board({"a": 30.0, "b": 20.0, "c": 40.0})
    assert diff(old, new) == [
        Change("c", 2, 0, 3, 1, 40.0),
        Change("a", 0, 1, 1, 2, 30.0),  # same score, pushed down by c
        Change("b", 1, 2, 2, 3, 20.0),
    ]


def test_diff_is_best_first_then_the_members_that_left() -> None:
    old = board({"a": 30.0, "b": 20.0, "c": 10.0})
    new = board({"b": 20.0, "d": 25.0, "c": 10.0})
    assert diff(old, new) == [
        Change("d", None, 0, None, 1, 25.0),
        Change("a", 0, None, 1, None, None),
    ]


# -- view: what a subscriber of the top N sees -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(board_pairs(), st.data())
def test_client_applying_the_view_holds_the_servers_top_n(
    pair: tuple[list[Row], list[Row]], data: st.DataObject
) -> None:
    old, new = pair
    n = data.draw(st.integers(1, max(len(old), len(new), 1) + 1), label="n")
    delta = view(diff(old, new), n)
    assert apply_view(held(old, n), delta) == held(new, n)
    listed = [e["member"] for lst in delta.values() for e in lst]
    assert len(listed) == len(set(listed))  # one entry per member


def test_view_table() -> None:
    old = board({"a": 50.0, "b": 40.0, "c": 30.0, "d": 20.0, "e": 10.0})
    new = board({"a": 70.0, "d": 60.0, "b": 40.0, "c": 30.0, "e": 10.0})
    changes = diff(old, new)
    assert view(changes, 3) == {
        "entered": [{"member": "d", "rank": 2, "score": 60.0}],
        "left": [{"member": "c", "rank": 3}],
        "moved": [{"member": "b", "from": 2, "to": 3, "score": 40.0}],
        "score": [{"member": "a", "rank": 1, "score": 70.0}],
    }
    # the whole list: nobody enters or leaves, c only shifted; e did not change at all
    assert view(changes, 5) == {
        "entered": [],
        "left": [],
        "moved": [
            {"member": "d", "from": 4, "to": 2, "score": 60.0},
            {"member": "b", "from": 2, "to": 3, "score": 40.0},
            {"member": "c", "from": 3, "to": 4, "score": 30.0},
        ],
        "score": [{"member": "a", "rank": 1, "score": 70.0}],
    }
    assert view(changes, 1) == {
        "entered": [],
        "left": [],
        "moved": [],
        "score": [{"member": "a", "rank": 1, "score": 70.0}],
    }


def test_view_of_members_entering_and_leaving_the_tracked_depth() -> None:
    old = board({"a": 30.0, "b": 20.0})
    new = board({"a": 30.0, "z": 25.0})  # b is gone from the board, z is new to it
    assert view(diff(old, new), 10) == {
        "entered": [{"member": "z", "rank": 2, "score": 25.0}],
        "left": [{"member": "b", "rank": 2}],
        "moved": [],
        "score": [],
    }


def test_view_is_empty_when_nothing_in_the_top_n_changed() -> None:
    old = board(ladder(20))
    new = board({**ladder(20), "m19": 80.5})  # rank 20 -> 20, new score; outside a top 10
    assert view(diff(old, new), 10) == {"entered": [], "left": [], "moved": [], "score": []}
    assert view([], 10) == {"entered": [], "left": [], "moved": [], "score": []}


# -- rank events -------------------------------------------------------------------------------


def test_entered_top_tiers() -> None:
    base = ladder(60)
    # m14 (rank 15) -> rank 9: reaches the top 10
    assert entered(events_between(board(base), board({**base, "m14": 92.5}))) == [
        {"event": "entered_top", "board": "all", "member": "m14", "rank": 9, "top": 10}
    ]
    # rank 2 -> rank 1: the top 1, and m00 (pushed from 1 to 2) gets nothing
    assert entered(events_between(board(base), board({**base, "m01": 101.0}))) == [
        {"event": "entered_top", "board": "all", "member": "m01", "rank": 1, "top": 1}
    ]
    # rank 50 -> rank 2: one event, the smallest tier reached
    assert entered(events_between(board(base), board({**base, "m49": 99.5}))) == [
        {"event": "entered_top", "board": "all", "member": "m49", "rank": 2, "top": 3}
    ]
    # rank 6 -> rank 5: already in the top 10, nothing
    assert entered(events_between(board(base), board({**base, "m05": 96.5}))) == []
    # a tie for first reaches the top 1
    assert entered(events_between(board(base), board({**base, "m01": 100.0}))) == [
        {"event": "entered_top", "board": "all", "member": "m01", "rank": 1, "top": 1}
    ]
    # new to the tracked top DEPTH
    full = ladder(DEPTH)
    assert entered(events_between(board(full), board({**full, "new": 1.5}))) == [
        {"event": "entered_top", "board": "all", "member": "new", "rank": DEPTH, "top": 100}
    ]


def test_overtaken_pairs() -> None:
    base = ladder(10)
    events = events_between(board(base), board({**base, "m03": 99.5}))  # rank 4 -> 2
    assert [e for e in events if e["event"] == "overtaken"] == [
        {
            "event": "overtaken",
            "board": "all",
            "overtaker": "m03",
            "overtaken": "m01",
            "ranks": {"m03": 2, "m01": 3},
        },
        {
            "event": "overtaken",
            "board": "all",
            "overtaker": "m03",
            "overtaken": "m02",
            "ranks": {"m03": 2, "m02": 4},
        },
    ]


def test_ties_do_not_count_as_overtaking() -> None:
    base = ladder(10)
    # m03 catches up with m02: a tie, not a pass
    events = events_between(board(base), board({**base, "m03": 98.0}))
    assert ranks(board({**base, "m03": 98.0}))["m03"] == 3
    assert overtakes(events) == []
    # from a tie to strictly ahead: m03 was never below m02
    tied = {**base, "m03": 98.0}
    assert overtakes(events_between(board(tied), board({**tied, "m03": 98.5}))) == []


def test_a_member_entering_from_outside_overtakes_those_it_passed() -> None:
    old = board({"a": 30.0, "b": 20.0, "c": 10.0})
    new = board({"a": 30.0, "n": 25.0, "b": 20.0, "c": 10.0})
    events = events_between(old, new)
    assert overtakes(events) == [("n", "b"), ("n", "c")]
    assert [e["ranks"] for e in events if e["event"] == "overtaken"] == [
        {"n": 2, "b": 3},
        {"n": 2, "c": 4},
    ]
    # and pushing someone out of the top DEPTH counts: that one is now below everyone in it
    full = ladder(DEPTH)
    events = events_between(board(full), board({**full, "new": 1.5}))
    assert overtakes(events) == [("new", f"m{DEPTH - 1:02d}")]
    assert events[-1]["ranks"] == {"new": DEPTH, f"m{DEPTH - 1:02d}": None}


def test_overtakes_are_capped_keeping_the_ones_nearest_the_top() -> None:
    base = ladder(30)
    # newcomer straight to rank 1 passes all 30
    events = events_between(board(base), board({**base, "new": 1000.0}))
    assert overtakes(events) == [("new", f"m{i:02d}") for i in range(MAX_OVERTAKES)]
    assert entered(events) == [
        {"event": "entered_top", "board": "all", "member": "new", "rank": 1, "top": 1}
    ]
    # two climbers: the one now nearest the top goes first, its victims nearest the top first
    events = events_between(board(base), board({**base, "m29": 1000.0, "m28": 999.0}))
    expected = [("m29", "m28")] + [("m29", f"m{i:02d}") for i in range(28)]
    assert overtakes(events) == expected[:MAX_OVERTAKES]
    # the cap is on overtakes only: entered_top events all stay
    assert [e["member"] for e in entered(events)] == ["m29", "m28"]


def test_event_members_routes_overtaken_to_both() -> None:
    base = ladder(5)
    events = events_between(board(base), board({**base, "m03": 98.5}))  # rank 4 -> 3
    (over,) = [e for e in events if e["event"] == "overtaken"]
    assert event_members(over) == ["m03", "m02"]
    (top,) = entered(events)
    assert top["top"] == 3
    assert event_members(top) == ["m03"]


@settings(max_examples=300, deadline=None)
@given(board_pairs())
def test_rank_events_agree_with_the_definitions(pair: tuple[list[Row], list[Row]]) -> None:
    old, new = pair
    changes = diff(old, new)
    events = rank_events("all", changes, old, new)
    before, after = ranks(old), ranks(new)

    # entered_top: exactly the members that reached a tier from below, at the smallest tier
    want: list[dict[str, Any]] = []
    for m, r in after.items():
        tier = min(t for t in TIERS if r <= t)
        if _below(before.get(m)) > tier:
            want.append(
                {"event": "entered_top", "board": "all", "member": m, "rank": r, "top": tier}
            )
    got = entered(events)
    assert sorted(got, key=lambda e: e["member"]) == sorted(want, key=lambda e: e["member"])
    assert events[: len(got)] == got  # entered_top first, then overtaken

    # overtaken: every reported pass is a real one, at most MAX_OVERTAKES, nearest the top first
    oracle = overtake_oracle(old, new)
    pairs = overtakes(events)
    assert len(pairs) == len(set(pairs)) <= MAX_OVERTAKES
    assert set(pairs) <= oracle
    for e in events[len(got) :]:
        assert e["ranks"] == {
            e["overtaker"]: after.get(e["overtaker"]),
            e["overtaken"]: after.get(e["overtaken"]),
        }
    keys = [(_below(after.get(a)), _below(after.get(b))) for a, b in pairs]
    assert keys == sorted(keys)
    # ... and none missed: the nearest MAX_OVERTAKES of every pair that swapped
    if len(oracle) <= MAX_OVERTAKES:
        assert set(pairs) == oracle
    else:
        every = sorted((_below(after.get(a)), _below(after.get(b))) for a, b in oracle)
        assert keys == every[:MAX_OVERTAKES]


def test_overtaking_a_member_whose_row_did_not_change_is_reported() -> None:
    old = board({"x": 30.0, "b": 20.0, "a": 10.0})
    new = board({"a": 40.0, "b": 20.0, "x": 5.0})  # b: rank 2 before and after
    assert ("a", "b") in overtake_oracle(old, new)
    assert ("a", "b") in overtakes(events_between(old, new))


# -- resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_epoch", "client_seq", "first_retained", "expected"),
    [
        pytest.param("e1", 41, 30, Resume.CURRENT, id="current"),
        pytest.param("e1", 41, None, Resume.CURRENT, id="current-empty-log"),
        pytest.param("e1", 40, 30, Resume.REPLAY, id="one-behind"),
        pytest.param("e1", 29, 30, Resume.REPLAY, id="oldest-retained-is-next"),
        pytest.param("e1", 28, 30, Resume.SNAPSHOT, id="trimmed"),
        pytest.param("e1", 40, None, Resume.SNAPSHOT, id="behind-empty-log"),
        pytest.param("e0", 41, 30, Resume.SNAPSHOT, id="other-epoch-same-seq"),
        pytest.param("e0", 40, 30, Resume.SNAPSHOT, id="other-epoch"),
        pytest.param(None, 40, 30, Resume.SNAPSHOT, id="no-epoch"),
        pytest.param("e1", 42, 30, Resume.SNAPSHOT, id="future-seq"),
        pytest.param("e1", -1, 0, Resume.SNAPSHOT, id="negative"),
        pytest.param("e1", "40", 30, Resume.SNAPSHOT, id="string"),
        pytest.param("e1", 40.0, 30, Resume.SNAPSHOT, id="float"),
        pytest.param("e1", None, 30, Resume.SNAPSHOT, id="null"),
        pytest.param("e1", True, 0, Resume.SNAPSHOT, id="bool"),
    ],
)
def test_resume(
    client_epoch: object, client_seq: object, first_retained: int | None, expected: Resume
) -> None:
    assert resume(client_epoch, client_seq, "e1", 41, first_retained) is expected


def test_resume_at_seq_zero() -> None:
    assert resume("e1", 0, "e1", 0, None) is Resume.CURRENT
    assert resume("e1", False, "e1", 0, None) is Resume.SNAPSHOT
    assert resume("e1", 0, "e1", 1, 1) is Resume.REPLAY


# -- the shared log's records and frames -------------------------------------------------------


@given(board_pairs())
def test_rows_round_trip(pair: tuple[list[Row], list[Row]]) -> None:
    for rows in pair:
        blob = encode_rows(rows)
        assert decode_rows(blob) == rows
        assert decode_rows(blob.decode()) == rows
    assert decode_rows(b"") == decode_rows("") == []


@given(board_pairs(), st.none() | st.floats(0, 2e9, allow_nan=False), st.integers(0, 10**7))
def test_board_record_round_trip(
    pair: tuple[list[Row], list[Row]], as_of: float | None, size: int
) -> None:
    old, new = pair
    changes = diff(old, new)
    events = rank_events("all", changes, old, new)
    blob = encode_board_record(changes, events, as_of, size)
    expected = BoardRecord(changes, events, as_of, size)
    assert decode_board_record(blob) == expected
    assert decode_board_record(blob.decode()) == expected
    assert apply_changes(old, decode_board_record(blob).changes) == new


def test_board_delta_frame() -> None:
    base = ladder(30)
    old, new = board(base), board({**base, "m20": 99.5, "m25": 92.5})  # 21 -> 2, 26 -> 10
    changes = diff(old, new)
    events = rank_events("all", changes, old, new)
    assert any(e["event"] == "overtaken" for e in events)
    record = BoardRecord(changes, events, 1341100812.0, 59080)
    top_2 = {"event": "entered_top", "board": "all", "member": "m20", "rank": 2, "top": 3}
    top_10 = {"event": "entered_top", "board": "all", "member": "m25", "rank": 10, "top": 10}

    def frame_for(n: int) -> dict[str, Any]:
        out: dict[str, Any] = orjson.loads(board_delta_frame("board:all", "e1", 42, record, n))
        return out

    f = frame_for(10)
    assert f == {
        "type": "delta",
        "channel": "board:all",
        "epoch": "e1",
        "seq": 42,
        "as_of": 1341100812.0,
        "members": 59080,
        **view(changes, 10),
        "events": [top_2, top_10],  # entered_top only: overtaken goes to member channels
    }
    assert frame_for(5)["events"] == [top_2]
    # a frame for every seq, with empty lists and no events when the top 1 did not change
    assert frame_for(1) == {
        "type": "delta",
        "channel": "board:all",
        "epoch": "e1",
        "seq": 42,
        "as_of": 1341100812.0,
        "members": 59080,
        "entered": [],
        "left": [],
        "moved": [],
        "score": [],
    }


def test_member_frames() -> None:
    boards = {"all": {"rank": 2, "score": 130.0}, "24h": None}
    blob = member_record(boards, [], 1341100812.0)
    for b in (blob, blob.decode()):
        assert orjson.loads(member_frames("member:677", "e1", 8, b)) == {
            "type": "delta",
            "channel": "member:677",
            "epoch": "e1",
            "seq": 8,
            "as_of": 1341100812.0,
            "boards": boards,
        }
    event = {
        "event": "overtaken",
        "board": "all",
        "overtaker": "3571",
        "overtaken": "677",
        "ranks": {"3571": 3, "677": 4},
    }
    blob = member_record(None, [event], 1341100812.0)
    assert orjson.loads(member_frames("member:677", "e1", 9, blob)) == {
        "type": "event",
        "channel": "member:677",
        "epoch": "e1",
        "seq": 9,
        "as_of": 1341100812.0,
        **event,
    }


def test_standing_changes() -> None:
    published: Standing = {
        "all": (3, 120.5, 120.5),
        "24h": (5, 40.0, 40.0),
        "1h": None,
        "7d": (7, 60.0, 60.0),
        "decayed": (4, 200.0, 118.2),
    }
    old = orjson.loads(orjson.dumps(published))  # as read back from Redis: lists, not tuples
    new: Standing = {
        "all": (2, 130.0, 130.0),  # rank and score changed
        "24h": None,  # left the board (the window moved on)
        "1h": None,  # still not on it
        "7d": (7, 61.0, 61.12345),  # same rank, stored score changed
        "decayed": (4, 200.0, 117.9),  # only drifted with time: not news
        "new": (9, 1.0, 1.0),  # a board the member was not on before
    }
    assert standing_changes(old, new) == {
        "all": {"rank": 2, "score": 130.0},
        "24h": None,
        "7d": {"rank": 7, "score": 61.123},
        "new": {"rank": 9, "score": 1.0},
    }
    assert standing_changes(old, published) == {}
    assert standing_changes({}, {"all": None}) == {}
    assert standing_view(old) == {
        "all": {"rank": 3, "score": 120.5},
        "24h": {"rank": 5, "score": 40.0},
        "1h": None,
        "7d": {"rank": 7, "score": 60.0},
        "decayed": {"rank": 4, "score": 118.2},
    }
