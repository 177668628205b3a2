"""Competition ranking ("1224") and percentiles (leaderboard/ranking.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.ranking import competition_ranks, parse_cohort, percentile, rank_cohort


@pytest.mark.parametrize(
    ("scores", "first_rank", "first_position", "ranks"),
    [
        ([10, 8, 8, 5], 1, 0, [1, 2, 2, 4]),
        ([9, 9, 9], 1, 0, [1, 1, 1]),
        ([9, 7, 7, 7, 3, 3, 1], 1, 0, [1, 2, 2, 2, 5, 5, 7]),
        ([4.5, 4.0, 3.5], 1, 0, [1, 2, 3]),
        ([], 1, 0, []),
        # board [9, 7, 7, 7, 3]; the page at offset 2 starts inside the tie of 7s
        ([7, 7, 3], 2, 2, [2, 2, 5]),
        # board [5, 5, 5, 5, 5]; the page at offset 3 is all tied with the leaders
        ([5, 5], 1, 3, [1, 1]),
        # board [10, 8, 8, 8, 8, 2]; offset 4: first rank 2, the next distinct score is 6th
        ([8, 2], 2, 4, [2, 6]),
        # a page that starts right after a tie
        ([3, 1], 5, 4, [5, 6]),
    ],
)
def test_competition_ranks(
    scores: list[float], first_rank: int, first_position: int, ranks: list[int]
) -> None:
    assert competition_ranks(scores, first_rank, first_position) == ranks


@given(
    st.lists(st.integers(0, 6), min_size=1, max_size=30),
    st.data(),
)
def test_any_page_agrees_with_ranks_of_the_whole_board(raw: list[int], data: st.DataObject) -> None:
    board = sorted(raw, reverse=True)
    offset = data.draw(st.integers(0, len(board) - 1))
    limit = data.draw(st.integers(1, len(board)))
    page = board[offset : offset + limit]
    first_rank = 1 + sum(1 for s in board if s > page[0])
    expected = [1 + sum(1 for t in board if t > s) for s in page]
    assert competition_ranks(page, first_rank, offset) == expected


@pytest.mark.parametrize(
    ("rank", "members", "pct"),
    [
        (1, 10, 100.0),
        (1, 1, 100.0),
        (1, 1_000_000, 100.0),
        (10, 10, 10.0),
        (2, 4, 75.0),
        (3, 7, 71.4286),
        (1_000_000, 1_000_000, 0.0001),
        (1, 0, 0.0),
    ],
)
def test_percentile(rank: int, members: int, pct: float) -> None:
    assert percentile(rank, members) == pct


def test_tied_members_share_a_percentile() -> None:
    ranks = competition_ranks([10, 8, 8, 5], 1, 0)
    assert [percentile(r, 4) for r in ranks] == [100.0, 75.0, 75.0, 25.0]


def test_a_cohort_is_ranked_among_itself_in_the_boards_order() -> None:
    got = rank_cohort([("b", 5.0, 9), ("a", 5.0, 9), ("c", 7.0, 3), ("d", 1.0, 40)])
    # ties in ZREVRANGE order (member bytes descending), competition ranks
    assert [(e.rank, e.member, e.global_rank) for e in got] == [
        (1, "c", 3),
        (2, "b", 9),
        (2, "a", 9),
        (4, "d", 40),
    ]
    assert rank_cohort([]) == []


def test_a_cohort_list_is_checked_like_event_ids() -> None:
    assert parse_cohort("a,b,,a,c") == ["a", "b", "c"]
    for bad, words in (
        ("", "names no member"),
        (",", "names no member"),
        ("a," + "x" * 129, "1-128 characters"),
        ("a\u2028b", "control character"),
        (",".join(str(i) for i in range(11)), "at most 10"),
    ):
        with pytest.raises(ValueError, match=words):
            parse_cohort(bad, limit=10)


def test_a_cohort_list_splits_before_it_decodes() -> None:
    from urllib.parse import unquote_plus

    def decode(p: str) -> str:
        return unquote_plus(p, errors="strict")

    assert parse_cohort("acme%2Cinc,b+c", decode=decode) == ["acme,inc", "b c"]
    with pytest.raises(ValueError, match="not UTF-8"):
        parse_cohort("a,%FF", decode=decode)
