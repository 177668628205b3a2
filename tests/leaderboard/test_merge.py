"""Merged reads of a board kept as disjoint slices (leaderboard/merge.py): every page, rank and
size equals what one sorted set holding the union gives; the tie order is checked against a real
Valkey's ZREVRANGE."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.merge import (
    SliceOrderError,
    Window,
    merge_around,
    merge_page,
    merge_stream,
    merged_rank,
    merged_size,
    rebase,
)
from leaderboard.ranking import competition_ranks
from leaderboard.scoring import decayed_value
from tests.conftest import Servers


def _board_order(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)


def _whole_board_page(
    rows: list[tuple[str, float]], offset: int, limit: int
) -> list[tuple[int, str, float]]:
    ordered = _board_order(rows)
    scores = [s for _, s in ordered]
    ranks = competition_ranks(scores, 1, 0)
    return [(r, m, s) for r, (m, s) in zip(ranks, ordered, strict=True)][offset : offset + limit]


_members = st.dictionaries(
    st.text(alphabet="abcé€𝄞", min_size=1, max_size=4),
    st.integers(0, 5).map(float),
    max_size=40,
)


async def _rows(rows: list[tuple[str, float]]) -> AsyncIterator[tuple[str, float, float]]:
    for m, s in rows:
        yield m, s, s


async def _drain(slices: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    return [(m, p) async for m, p, _ in merge_stream([_rows(r) for r in slices])]


@given(_members, st.integers(1, 5), st.data())
def test_the_streaming_merge_is_the_union_in_board_order(
    members: dict[str, float], shards: int, data: st.DataObject
) -> None:
    slices: list[list[tuple[str, float]]] = [[] for _ in range(shards)]
    for m, s in members.items():
        slices[data.draw(st.integers(0, shards - 1))].append((m, s))
    got = asyncio.run(_drain([_board_order(rows) for rows in slices]))
    assert got == _board_order(list(members.items()))


def test_the_streaming_merge_refuses_a_slice_out_of_order() -> None:
    with pytest.raises(SliceOrderError, match="slice 1"):
        asyncio.run(_drain([[("a", 3.0)], [("b", 1.0), ("c", 2.0)]]))


def _window(rows: list[tuple[str, float]], score: float, member: str, around: int) -> Window:
    """What ``read.lua``'s ``near`` (or ``member``) answers for a slice: the rows around the
    place of (score, member) in board order."""
    ordered = _board_order(rows)
    place = sum(1 for m, s in ordered if (s, m) > (score, member))
    start = max(0, place - around)
    shown = ordered[start : place + around + 1]
    above = sum(1 for _, s in ordered if shown and s > shown[0][1])
    return Window(start, shown, above)


@given(_members, st.integers(1, 5), st.integers(0, 4), st.data())
def test_a_members_neighbours_on_the_merge_are_its_neighbours_on_the_union(
    members: dict[str, float], shards: int, around: int, data: st.DataObject
) -> None:
    if not members:
        return
    where = {m: data.draw(st.integers(0, shards - 1)) for m in members}
    slices = [[(m, s) for m, s in members.items() if where[m] == k] for k in range(shards)]
    union = _board_order(list(members.items()))
    scores = [s for _, s in union]
    ranks = competition_ranks(scores, 1, 0)
    member = data.draw(st.sampled_from(sorted(members)))
    score = members[member]
    # (a slice's window covers at least one row before the place: see merge_around)
    windows = [_window(rows, score, member, max(1, around)) for rows in slices]
    got = merge_around(member, windows, around)
    assert got is not None
    rank, position, shown = got
    i = union.index((member, score))
    assert position == i
    assert rank == 1 + sum(1 for s in scores if s > score)
    lo = max(0, i - around)
    want = list(zip(ranks, union, strict=True))[lo : i + around + 1]
    assert [(e.rank, e.member, e.score) for e in shown] == [(r, m, s) for r, (m, s) in want]
    # a member on no slice has no standing
    assert merge_around("absent", [_window(r, 0.0, "absent", 1) for r in slices], around) is None


def test_neighbours_across_slices_take_their_rank_from_scores_above_the_window() -> None:
    # slice 0: a long run of 5s above; slice 1: the member in a tie of 3s, with 4s above
    s0 = [(f"a{i}", 5.0) for i in range(6)] + [("b", 3.0)]
    s1 = [("c", 4.0), ("d", 4.0), ("m", 3.0), ("e", 1.0)]
    windows = [_window(s0, 3.0, "m", 1), _window(s1, 3.0, "m", 1)]
    rank, position, shown = merge_around("m", windows, 1) or (0, 0, [])
    # union: a5..a0 (5), d c (4), m b (3), e (1): m is 9th, tied with b at rank 9
    assert (rank, position) == (9, 8)
    assert [(e.rank, e.member) for e in shown] == [(7, "c"), (9, "m"), (9, "b")]


@given(_members, st.integers(1, 5), st.integers(0, 45), st.integers(0, 12), st.data())
def test_any_page_of_the_merge_is_that_page_of_the_union(
    members: dict[str, float], shards: int, offset: int, limit: int, data: st.DataObject
) -> None:
    slices: list[list[tuple[str, float]]] = [[] for _ in range(shards)]
    for m, s in members.items():
        slices[data.draw(st.integers(0, shards - 1))].append((m, s))
    # each slice sends its first offset + limit rows, best first
    sent = [_board_order(rows)[: offset + limit] for rows in slices]
    got = [(e.rank, e.member, e.score) for e in merge_page(sent, offset, limit)]
    assert got == _whole_board_page(list(members.items()), offset, limit)
    # a member's rank: one plus each slice's count of strictly higher scores
    for m, s in members.items():
        rank = merged_rank(sum(1 for _, x in rows if x > s) for rows in slices)
        assert rank == 1 + sum(1 for x in members.values() if x > s), m
    assert merged_size(len(rows) for rows in slices) == len(members)


def test_a_page_that_starts_inside_a_tie_spread_over_slices_ranks_it_from_its_first_score() -> None:
    # the union is 9, 7 (c, b, a), 3: the page at offset 2 starts with the second 7
    slices = [[("c", 7.0), ("x", 3.0)], [("z", 9.0), ("b", 7.0), ("a", 7.0)]]
    page = merge_page([s[:4] for s in slices], 2, 2)
    assert [(e.rank, e.member) for e in page] == [(2, "b"), (2, "a")]


def test_slices_out_of_order_are_refused_not_merged_wrongly() -> None:
    with pytest.raises(SliceOrderError, match="slice 1: row 1"):
        merge_page([[("a", 2.0)], [("b", 1.0), ("c", 3.0)]], 0, 2)
    with pytest.raises(ValueError, match="offset and limit"):
        merge_page([], -1, 2)


def test_decayed_slices_on_different_landmarks_rank_as_their_points() -> None:
    half_life, wm = 86_400.0 * 7, 2_000_000.0
    # a has 5 points now, stored against a later landmark than b's 4 points
    a_stored = 5.0 * 2.0 ** ((wm - 1_000_000.0) / half_life)
    b_stored = 4.0 * 2.0 ** ((wm - 0.0) / half_life)
    assert a_stored < b_stored  # raw, the merge would put b first
    a = rebase(a_stored, 1_000_000.0, 0.0, half_life)
    assert decayed_value(a, wm, 0.0, half_life) == pytest.approx(5.0)
    page = merge_page([[("a", a)], [("b", b_stored)]], 0, 2)
    assert [e.member for e in page] == ["a", "b"]


@settings(max_examples=25, deadline=None)
@given(_members, st.integers(0, 30), st.integers(1, 10))
async def test_the_merge_order_is_valkeys_zrevrange_order(
    real_servers: Servers, members: dict[str, float], offset: int, limit: int
) -> None:
    """Ties among members that are not ASCII: Python's order of str must be Redis's of bytes."""
    client = aioredis.Redis.from_url(real_servers.redis_url, decode_responses=True)
    keys = ["merge-test:{a}", "merge-test:{b}"]
    try:
        await client.delete(*keys, "merge-test:all")
        if members:
            await client.zadd("merge-test:all", members)
        for j, key in enumerate(keys):
            part = {m: s for i, (m, s) in enumerate(members.items()) if i % 2 == j}
            if part:
                await client.zadd(key, part)
        sent: list[list[tuple[str, float]]] = [
            await client.zrevrange(k, 0, offset + limit - 1, withscores=True)  # type: ignore[misc]
            for k in keys
        ]
        whole = await client.zrevrange(
            "merge-test:all", offset, offset + limit - 1, withscores=True
        )
        assert [(e.member, e.score) for e in merge_page(sent, offset, limit)] == whole
    finally:
        await client.delete(*keys, "merge-test:all")
        await client.aclose()
