"""The comment-bait detector's persisted state (leaderboard/bait/state.py): batch boundaries and
restarts change nothing, the tables restore the live detector, and the state stays bounded."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.bait.detector import (
    COMMENT_KINDS,
    ENGAGEMENT_KINDS,
    POD_KINDS,
    SWEEP_EVERY_S,
    BaitParams,
    Clawback,
    Decision,
    Detector,
)
from leaderboard.bait.state import group_key, pod_key
from tests.leaderboard.bait._streams import (
    DAY,
    DEFAULT,
    KINDS,
    SMALL,
    T0,
    Event,
    bait_campaign,
    feed,
    genuine,
    streams,
    throttles,
)

Tables = dict[str, dict[str, str]]


def apply(tables: Tables, changes: Iterable[tuple[str, str, bytes | None]]) -> None:
    """What the store does with :meth:`Detector.take_changes` (HSET, or HDEL for None)."""
    for table, key, value in changes:
        if value is None:
            tables.setdefault(table, {}).pop(key, None)
        else:
            tables.setdefault(table, {})[key] = value.decode()


# ---------------------------------------------------------------------------------------------
# persistence and restarts


def run_in_chunks(
    events: Sequence[Event], cuts: Iterable[int], params: BaitParams = DEFAULT
) -> tuple[list[int], list[dict[str, object]], list[Clawback]]:
    """Feed ``events`` in chunks; at every cut the state goes to tables and a fresh detector
    restored from them continues (a worker restart or a rebalance)."""
    tables: Tables = {}
    d = Detector(params)
    mults: list[int] = []
    decisions: list[Decision] = []
    clawbacks: list[Clawback] = []
    prev = 0
    for cut in [*sorted(set(cuts)), len(events)]:
        mults += feed(d, events[prev:cut])
        decisions += d.take_decisions()
        clawbacks += d.take_clawbacks()
        apply(tables, d.take_changes())
        d = Detector.restore(tables, params)
        prev = cut
    return mults, [x.to_json() for x in decisions], clawbacks


def _late_comment_after_a_clock_only_batch() -> tuple[list[Event], BaitParams]:
    # the clock-only event moves the clock past p1's idle horizon; a comment 101 s late follows
    last = T0 + 20
    events = bait_campaign("p1", "alice", T0 - 50, n=11, step=1.0)
    events += [
        ("comment", last + 2 * DAY + 1 - 3599, "v", "bob", "q1", "hello there, nice to see you"),
        ("reply", last + 2 * DAY + 1, "zed", "zed", None, "thanks!"),  # the clock-only batch
        ("comment", last + 2 * DAY - 100, "u", "alice", "p1", "yes"),
    ]
    return events, DEFAULT


def _in_order_after_a_clock_only_sweep() -> tuple[list[Event], BaitParams]:
    # the clock-only event runs a sweep (nothing to drop); the restored detector sweeps again on
    # the next event and so misses the sweep an hour later that drops p1 (max_groups=1)
    events = bait_campaign("p1", "alice", T0 - 50, n=11, step=1.0)
    events += [
        ("reply", T0 + 3620, "zed", "zed", None, "thanks!"),  # the clock-only batch (sweeps)
        ("comment", T0 + 3630, "v", "bob", "q1", "hello there, nice to see you"),
        ("comment", T0 + 7220, "v", "bob", "q1", "and hello again, still here"),
        ("comment", T0 + 7225, "u", "alice", "p1", "yes"),
    ]
    return events, BaitParams(max_groups=1)


@pytest.mark.parametrize(
    "case", [_late_comment_after_a_clock_only_batch, _in_order_after_a_clock_only_sweep]
)
def test_a_restart_after_a_clock_only_batch_changes_nothing(
    case: Callable[[], tuple[list[Event], BaitParams]],
) -> None:
    # A batch whose events change no entry (an author's replies in their own thread, common in
    # sx-mathoverflow) still moves the detector's clock (newest, swept). A restart right after it
    # must not change what follows.
    events, params = case()
    clock_only = next(i for i, e in enumerate(events) if e[0] == "reply" and e[2] == e[3])
    straight = run_in_chunks(events, [], params)
    restarted = run_in_chunks(events, [clock_only, clock_only + 1], params)
    assert restarted == straight


@st.composite
def chunked(draw: st.DrawFn) -> tuple[list[Event], list[int]]:
    events = draw(streams())
    if draw(st.integers(0, 3)) == 0:
        return events, list(range(len(events)))  # a restart after every event
    return events, draw(st.lists(st.integers(0, len(events)), max_size=10))


@settings(max_examples=200, deadline=None)
@given(chunked(), st.sampled_from((DEFAULT, SMALL)))
def test_batch_boundaries_and_restarts_do_not_matter(
    stream: tuple[list[Event], list[int]], params: BaitParams
) -> None:
    events, cuts = stream
    assert run_in_chunks(events, cuts, params) == run_in_chunks(events, [], params)


@settings(max_examples=100, deadline=None)
@given(streams(), st.sampled_from((DEFAULT, SMALL)))
def test_take_changes_round_trips(events: list[Event], params: BaitParams) -> None:
    # after every event (the smallest batch), the tables restore exactly the live detector: its
    # entries and its clock (newest event time, last sweep), which expiry and sweeps depend on
    d = Detector(params)
    tables: Tables = {}
    for e in events:
        feed(d, [e])
        apply(tables, d.take_changes())
        restored = Detector.restore(tables, params)
        assert entries(restored) == entries(d), e
        assert (restored.newest, restored.swept) == (d.newest, d.swept), e


def entries(d: Detector) -> tuple[dict[str, Any], ...]:
    """The stored entries, and the lockstep index derived from them (a restored detector must
    rebuild exactly the live one's overlaps, whatever order it reads the entries in)."""
    return (
        {k: g.dump() for k, g in d.groups.items()},
        {k: a.dump() for k, a in d.authors.items()},
        {k: c.dump() for k, c in d.commenters.items()},
        {k: sh.dump() for k, sh in d.shadows.items()},
        {k: dict(v) for k, v in d.lockstep.shared.items() if v},
    )


@st.composite
def wide_streams(draw: st.DrawFn) -> list[Event]:
    """Many posts, targets and actors over many hours of event time (steps up to an hour)."""
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.sampled_from((0, 5, 60, 600, 1800, 3600)),
                st.integers(0, 59),
                st.integers(0, 11),
                st.integers(0, 40),
                st.integers(0, 3),
            ),
            min_size=100,
            max_size=400,
        )
    )
    events: list[Event] = []
    ts = T0
    for kind, dt, actor, target, post, text in rows:
        ts += dt
        texts = (None, "yes", "check out my channel", genuine(actor))
        events.append(
            (
                kind,
                ts,
                f"u{actor}",
                f"t{target}",
                None if post >= 30 else f"t{target}-p{post % 3}",
                texts[text],
            )
        )
    return events


@settings(max_examples=100, deadline=None)
@given(wide_streams())
def test_state_stays_bounded(events: list[Event]) -> None:
    """Sweeps run on the first event at least ``SWEEP_EVERY_S`` of event time after the last one,
    before that event is applied, and leave at most the caps. Between sweeps each event creates at
    most two groups (its own key and, for a share or like, the post's pod group) and one author
    (its target); commenters are created for the actor of every event and, at a throttle, for the
    post's sampled commenters. So at
    any time, counting the events since (and including) the last sweeping one:

    - groups <= max_groups + distinct group keys of those events,
    - authors <= max_authors + distinct targets of comments and of engagement on a post,
    - commenters <= max_commenters + distinct actors + sample * throttles,

    and those events all lie within ``SWEEP_EVERY_S`` of event time after the sweep (late ones
    before it). Every group keeps at most ``sample`` commenters and comment hashes, and the
    tables written from :meth:`Detector.take_changes` restore the same entries.
    """
    p = BaitParams(max_groups=4, max_authors=3, max_commenters=5, sample=4, min_comments=4)
    d = Detector(p)
    keys: set[str] = set()
    targets: set[str] = set()
    actors: set[str] = set()
    thrown = 0
    sweeps = 0
    tables: Tables = {}
    for i, e in enumerate(events):
        kind, ts, actor, target, post, _ = e
        swept = d.swept
        d.observe(*e)
        apply(tables, d.take_changes())
        if i % 25 == 0:
            # entries only: the clock's round trip is test_take_changes_round_trips
            assert entries(Detector.restore(tables, p)) == entries(d)
        if d.swept != swept:
            sweeps += 1
            keys, targets, actors, thrown = set(), set(), set(), 0
        assert ts < d.swept + SWEEP_EVERY_S
        actors.add(actor)  # every action gives its actor a history
        if kind in COMMENT_KINDS and actor != target:
            keys.add(group_key(post, target))
            targets.add(target)
        elif post is not None and (kind == "post" or kind in ENGAGEMENT_KINDS):
            keys.add(group_key(post, target))
            if actor != target and kind != "post":
                targets.add(target)  # engagement on a post makes its target an author
                if kind in POD_KINDS:
                    keys.add(pod_key(post))  # the post's pod group
        thrown += len(throttles(d.take_decisions()))
        assert len(d.groups) <= p.max_groups + len(keys)
        assert len(d.authors) <= p.max_authors + len(targets)
        assert len(d.commenters) <= p.max_commenters + len(actors) + p.sample * thrown
        for g in d.groups.values():
            assert len(g.commenters) <= p.sample
            assert len(g.hashes) <= p.sample
            assert len(g.shapes) <= p.sample // 2
            # what a retroactive throttle could claw back: at most ``claw_entries``
            # interactions, by a sampled account or by one outside the sample (-1)
            assert len(g.counted) <= p.claw_entries
            assert all(-1 <= entry[0] < len(g.commenters) for entry in g.counted)
            # the first interactions' marks: at most min_coordinated - 1, ahead of the others
            marks = [len(entry) > 5 for entry in g.counted]
            assert sum(marks) <= p.min_coordinated - 1 and marks == sorted(marks, reverse=True)
    assert sweeps >= (events[-1][1] - events[0][1]) // (2 * SWEEP_EVERY_S)
