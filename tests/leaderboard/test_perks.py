"""Perk rules: parsing, validation and the unlock id, without servers."""

from __future__ import annotations

import hashlib
import tomllib

import pytest

from leaderboard.errors import ConfigError
from leaderboard.perks import PerkRule, load_perks_file, parse_rules, parse_when, unlock_id
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
