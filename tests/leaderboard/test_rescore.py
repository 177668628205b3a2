"""The rebuild's diff report (leaderboard/rescore.py), without Redis."""

from __future__ import annotations

from leaderboard.rescore import candidates, diff, format_diff, kind_deltas, ranks


def test_ranks_are_competition_ranks() -> None:
    assert ranks({"a": 5000, "b": 3000, "c": 3000, "d": 1000}) == {"a": 1, "b": 2, "c": 2, "d": 4}


def test_kind_deltas_explain_a_move_biggest_first() -> None:
    before = {"n:share": 3, "mp:share": 12000, "mp:like": 1000, "mp:reply": 2000}
    after = {"n:share": 3, "mp:share": 18000, "mp:like": 1000, "mp:reply": 0}
    assert kind_deltas(before, after) == (("share", 6000), ("reply", -2000))


def test_the_report_names_who_moves_and_why() -> None:
    before = {"ann": 10_000, "bob": 8_000, "cy": 6_000, "dee": 1_000}
    after = {"ann": 10_000, "bob": 7_000, "cy": 12_000, "eve": 500}
    who = candidates(before, after, top=2)
    assert set(who) >= {"cy", "bob", "dee"}
    explain_before = {"cy": {"mp:share": 4000}, "bob": {"mp:reply": 2000}}
    explain_after = {"cy": {"mp:share": 10000}, "bob": {"mp:reply": 1000}}
    d = diff("all", before, after, ("v1", "v2"), explain_before, explain_after, top=2)
    assert (d.members_before, d.members_after) == (4, 4)
    assert d.changed == 4  # bob, cy, dee (gone), eve (new); ann is unchanged
    assert [m.member for m in d.risers] == ["cy", "eve"]
    assert [m.member for m in d.fallers] == ["bob", "dee"]  # both -1.000: by name
    cy = d.risers[0]
    assert (cy.rank_before, cy.rank_after, cy.delta_mp) == (3, 1, 6000)
    assert cy.to_json()["why"] == {"share": 6.0}
    assert d.fallers[1].rank_after is None  # dee left the board
    text = format_diff(d)
    assert "scoring v1 → v2" in text and "4 scores change" in text
    assert "cy" in text and "#3 → #1" in text and "share +6.000" in text


def test_nobody_moves_says_so() -> None:
    same = {"ann": 1000}
    d = diff("all", same, same, ("v1", "v1"), {}, {})
    assert d.changed == d.moved == 0 and not d.risers and not d.fallers
    assert "nobody's score changes" in format_diff(d)
