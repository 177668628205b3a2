"""Perk rules: parsing, validation and the unlock id, without servers."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from leaderboard.errors import ConfigError
from leaderboard.perks import (
    DEFAULT_MAX_TIES,
    MAX_RANK,
    PerkRule,
    load_perks_file,
    parse_rules,
    parse_when,
    unlock_id,
)
from leaderboard.scoring import ScoringRules

RULES = ScoringRules.load()


def rules(text: str) -> list[PerkRule]:
    return parse_rules(tomllib.loads(text), RULES, "perks.toml")


@pytest.mark.parametrize(
    ("when", "want"),
    [
        ("rank <= 10", (10, None)),
        ("score >= 500", (None, 500.0)),
        ("score >= 12.5", (None, 12.5)),
        ("entered_top 3", (3, None)),
        ("rank <= 10 and score >= 500", (10, 500.0)),
        ("rank<=10 and entered_top 3", (3, None)),  # the stricter of two rank limits
        ("score >= 1 and score >= 7", (None, 7.0)),
    ],
)
def test_parse_when(when: str, want: tuple[int | None, float | None]) -> None:
    assert parse_when(when, "rule") == want


@pytest.mark.parametrize(
    "when",
    ["rank < 10", "score > 5", "top 3", "rank <= 0", "rank <= 1001", "", "rank <= 3 or score >= 1"],
)
def test_bad_conditions_say_what_is_accepted(when: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_when(when, "perks.toml: rule 'x'")
    assert "perks.toml: rule 'x'" in str(err.value)


def test_rules_parse_with_defaults_and_payload() -> None:
    (a, b) = rules(
        """
        [[rule]]
        id = "top10-7d"
        title = "Top 10 this week"
        board = "7d"
        when = "rank <= 10"
        payload = { coupon = "TOP10" }

        [[rule]]
        id = "math-500"
        board = "all:math"
        when = "score >= 500"
        """
    )
    assert a == PerkRule("top10-7d", "Top 10 this week", "7d", 10, None, {"coupon": "TOP10"})
    assert (b.title, b.board, b.rank_max, b.score_min, b.payload) == (
        "math-500",
        "all:math",
        None,
        500.0,
        {},
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nid = "a b"\nboard = "all"\nwhen = "rank <= 1"', "id must be"),
        ('[[rule]]\nid = "a"\nboard = "monthly"\nwhen = "rank <= 1"', "unknown board"),
        ('[[rule]]\nid = "a"\nboard = "all"\nwhen = "rank <= 1"\ncolour = 1', "unknown field"),
        ('[[rule]]\nid = "a"\nboard = "all"', "must be strings"),
        (
            '[[rule]]\nid = "a"\nboard = "all"\nwhen = "rank <= 1"\n'
            '[[rule]]\nid = "a"\nboard = "7d"\nwhen = "rank <= 2"',
            "duplicate id",
        ),
        ('[[rule]]\nid = "a"\nboard = "all"\nwhen = "rank <= 1"\npayload = 3', "payload"),
        ("rule = 5", "array of tables"),
    ],
)
def test_bad_rules_are_named(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        rules(text)
    assert message in str(err.value)


def test_qualifies_needs_every_condition() -> None:
    both = PerkRule("r", "r", "all", 10, 500.0)
    assert both.qualifies(3, 600.0)
    assert not both.qualifies(11, 600.0) and not both.qualifies(3, 499.999)
    assert not both.qualifies(None, None)
    assert PerkRule("r", "r", "all", None, 1.0).qualifies(10**6, 1.0)


def test_score_threshold_in_milli_points_keeps_greater_or_equal() -> None:
    assert PerkRule("r", "r", "all", None, 0.1).score_min_mp == 100  # not 101 from 0.1 * 1000
    assert PerkRule("r", "r", "all", None, 12.3456).score_min_mp == 12346
    assert PerkRule("r", "r", "all", 5, None).score_min_mp is None


def test_unlock_id_is_deterministic_dotless_and_what_the_apply_script_computes() -> None:
    uid = unlock_id("top10-7d", "alice")
    assert uid == unlock_id("top10-7d", "alice") != unlock_id("top10-7d", "bob")
    assert uid != unlock_id("top10-24h", "alice") and "." not in uid
    # apply.lua: 'unl_' .. redis.sha1hex(rule .. '\31' .. member)
    assert uid == "unl_" + hashlib.sha1(b"top10-7d\x1falice").hexdigest()


def test_no_path_means_no_rules_and_a_missing_file_is_named(tmp_path: object) -> None:
    assert load_perks_file("", RULES) == ([], {})
    with pytest.raises(ConfigError, match="KUDOS_PERKS_PATH"):
        load_perks_file("/nonexistent/perks.toml", RULES)


def test_a_tie_at_place_n_unlocks_whole_within_n_plus_max_ties_and_else_not_at_all() -> None:
    """Competition ranks: every member tied with the Nth row has rank <= N. One check unlocks
    at most N + max_ties members: a tie at the edge that would pass that is left out whole."""
    top3 = PerkRule("top3", "Top 3", "all", 3, None, max_ties=2)
    assert top3.cap == 5
    above = [("a", 50.0), ("b", 40.0)]
    fits = above + [(f"t{i}", 30.0) for i in range(3)] + [("low", 1.0)]
    assert top3.rank_qualifiers(fits) == ({"a", "b", "t0", "t1", "t2"}, 0)
    past = above + [(f"t{i}", 30.0) for i in range(4)]  # 2 + 4 rows at rank <= 3, cap 5
    assert top3.rank_qualifiers(past) == ({"a", "b"}, 4)
    # 500 members tied at rank 1 of a `rank <= 3` rule (the default allowance of 10): nobody
    crowd = [(f"m{i:03d}", 20.0) for i in range(500)]
    default = PerkRule("top3", "Top 3", "all", 3, None)
    assert default.cap == 3 + DEFAULT_MAX_TIES
    assert default.rank_qualifiers(crowd) == (set(), 500)
    # all or none of a tie: neither member names nor the order rows arrive in choose
    assert default.rank_qualifiers(list(reversed(crowd))) == (set(), 500)
    assert top3.rank_qualifiers(list(reversed(past))) == ({"a", "b"}, 4)


def test_max_ties_zero_allows_no_tie_across_place_n() -> None:
    strict = PerkRule("top3", "Top 3", "all", 3, None, max_ties=0)
    inside = [("a", 9.0), ("b", 9.0), ("c", 5.0), ("d", 1.0)]  # ranks 1, 1, 3, 4: no tie at 3
    assert strict.rank_qualifiers(inside) == ({"a", "b", "c"}, 0)
    across = [("a", 9.0), ("b", 5.0), ("c", 5.0), ("d", 5.0)]  # ranks 1, 2, 2, 2
    assert strict.rank_qualifiers(across) == ({"a"}, 3)


def test_a_score_condition_above_the_nth_score_leaves_no_tie_at_the_edge() -> None:
    rule = PerkRule("r", "r", "all", 2, 30.0, max_ties=0)
    rows = [("a", 40.0)] + [(f"t{i}", 20.0) for i in range(50)]
    assert rule.rank_qualifiers(rows) == ({"a"}, 0)
    # fewer rows than N: every row qualifies by rank
    assert PerkRule("r", "r", "all", 5, None, max_ties=0).rank_qualifiers(rows[:3]) == (
        {"a", "t0", "t1"},
        0,
    )


def test_max_ties_per_rule_overrides_the_setting_and_is_checked() -> None:
    text = """
        [[rule]]
        id = "strict"
        board = "all"
        when = "rank <= 3"
        max_ties = 0

        [[rule]]
        id = "default"
        board = "all"
        when = "entered_top 5"
        """
    strict, default = parse_rules(tomllib.loads(text), RULES, "perks.toml", max_ties=7)
    assert (strict.max_ties, strict.cap) == (0, 3)
    assert (default.max_ties, default.cap) == (7, 12)
    bad = [
        ("max_ties = -1", "max_ties must be an integer between 0 and 1000"),
        ("max_ties = 1001", "max_ties must be an integer between 0 and 1000"),
        ('max_ties = "all"', "max_ties must be an integer between 0 and 1000"),
        ("max_ties = true", "max_ties must be an integer between 0 and 1000"),
    ]
    for line, message in bad:
        with pytest.raises(ConfigError, match=message) as err:
            rules(f'[[rule]]\nid = "a"\nboard = "all"\nwhen = "rank <= 1"\n{line}')
        assert "rule 'a'" in str(err.value)
    with pytest.raises(ConfigError, match="max_ties needs a rank condition"):
        rules('[[rule]]\nid = "a"\nboard = "all"\nwhen = "score >= 5"\nmax_ties = 3')
    with pytest.raises(ConfigError, match="KUDOS_PERKS_MAX_TIES"):
        parse_rules({}, RULES, "perks.toml", max_ties=MAX_RANK + 1)


def test_a_winners_rule_refuses_a_retention_that_drops_its_archive_before_it_closes() -> None:
    from leaderboard.errors import ConfigError
    from leaderboard.perks import check_winners_retention

    rule = PerkRule("best-day", "Best of the day", "day", 1, None, at_close=True)
    live = PerkRule("top-day", "Top today", "day", 1, None)
    short = ScoringRules.load().keeping(2, 53, 24)  # (grace 1 h + idle 24 h > one more day)
    with pytest.raises(ConfigError, match=r"KUDOS_PERIODS_KEEP_DAYS=2.*at least 3 days"):
        check_winners_retention([rule], short)
    check_winners_retention([live], short)  # a live rule needs no archive
    check_winners_retention([rule], ScoringRules.load().keeping(3, 53, 24))
    check_winners_retention([rule], ScoringRules.load().keeping(0, 0, 0))  # every period kept
