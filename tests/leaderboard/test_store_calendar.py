"""Calendar boards in the store against real Redis: the archives of each UTC day, ISO week and
month, the live ``day``/``week``/``month`` boards that follow W's period, late points, and
retention (leaderboard/calendar.py, lua/apply.lua sections 3b and 5b)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from leaderboard.events import Event
from leaderboard.owned import OwnedState
from leaderboard.perks import PerkRule, unlock_id
from leaderboard.plan import Message, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from tests.conftest import Namespace

DAY = 86400
SUN = 1_341_100_800  # 2012-07-01T00:00:00Z, a Sunday: ISO week 2012-W26
MON = SUN + DAY  # 2012-07-02, the first day of 2012-W27

pytestmark = pytest.mark.integration


class Applier:
    """Applies events as a worker would: one message per call, one partition."""

    def __init__(self, store: Store, partition: int = 0, partitions_total: int = 0) -> None:
        self.store = store
        self.owned = OwnedState()
        self.offset = 0
        self.partition = partition
        self.partitions_total = partitions_total

    async def __call__(self, *events: Event) -> None:
        await self.store.load_partitions([self.partition], self.owned)
        plan = build_plan(
            [Message(self.partition, self.offset, list(events))],
            self.owned.store_state(),
            self.store.rules,
            dedupe_horizon_s=7 * DAY,
            rebase_after_s=120 * DAY,
            max_future_s=300,
            partitions_total=self.partitions_total,
        )
        self.offset += 1
        await (await self.store.send_apply(plan))


def _store(namespace: Namespace, keep: tuple[int, int, int]) -> Store:
    rules = ScoringRules.load().keeping(*keep)
    return Store(namespace.store.client, namespace.store.prefix, rules)


async def _board(store: Store, board: str) -> dict[str, float]:
    rows, _ = await store.page(board, 100)
    return {e.member: e.score for e in rows}


def ev(n: int, ts: float, kind: str, actor: str, target: str, *cs: str) -> Event:
    return Event(f"e{n}", ts, kind, actor, target, communities=tuple(cs))


async def _boards(store: Store, names: Sequence[str]) -> dict[str, dict[str, float]]:
    return {b: await _board(store, b) for b in names}


async def test_live_calendar_boards_follow_the_period_of_w_and_archives_keep_every_period(
    namespace: Namespace,
) -> None:
    store = _store(namespace, (0, 0, 0))
    apply = Applier(store)
    await apply(ev(1, SUN + 100, "share", "ann", "tom", "physics"))
    assert await _boards(store, ["day", "week", "month", "day:physics"]) == {
        "day": {"tom": 4.0},
        "week": {"tom": 4.0},
        "month": {"tom": 4.0},
        "day:physics": {"tom": 4.0},
    }
    # W enters Monday: a new day and a new ISO week, the same month
    await apply(ev(2, MON + 100, "like", "bob", "tom"), ev(3, MON + 200, "like", "cy", "amy"))
    # a late event of Sunday goes to Sunday's archives (and the month), not to the live day
    await apply(ev(4, SUN + 300, "click", "dan", "amy", "physics"))
    assert await _boards(store, ["day", "week", "month", "day:physics", "week:physics"]) == {
        "day": {"tom": 1.0, "amy": 1.0},
        "week": {"tom": 1.0, "amy": 1.0},
        "month": {"tom": 5.0, "amy": 2.0},
        "day:physics": {},
        "week:physics": {},
    }
    assert await _boards(
        store,
        [
            "day@2012-07-01",
            "day@2012-07-02",
            "week@2012-W26",
            "week@2012-W27",
            "month@2012-07",
            "day@2012-07-01:physics",
            "week@2012-W26:physics",
            "month@2012-07:physics",
        ],
    ) == {
        "day@2012-07-01": {"tom": 4.0, "amy": 1.0},
        "day@2012-07-02": {"tom": 1.0, "amy": 1.0},
        "week@2012-W26": {"tom": 4.0, "amy": 1.0},
        "week@2012-W27": {"tom": 1.0, "amy": 1.0},
        "month@2012-07": {"tom": 5.0, "amy": 2.0},
        "day@2012-07-01:physics": {"tom": 4.0, "amy": 1.0},
        "week@2012-W26:physics": {"tom": 4.0, "amy": 1.0},
        "month@2012-07:physics": {"tom": 4.0, "amy": 1.0},
    }
    assert await store.periods("day") == [("day@2012-07-02", 2), ("day@2012-07-01", 2)]
    assert await store.periods("week") == [("week@2012-W27", 2), ("week@2012-W26", 2)]
    assert await store.board_known("week@2012-W26:physics")
    assert not await store.board_known("week@2012-W25")
    # the live boards are boards like any other: their members' standings, listed boards
    standing = await store.standing("week", "amy")
    assert standing is not None and (standing.rank, standing.score) == (1, 1.0)
    listed = dict((await store.boards())[0])
    assert listed["day"] == 2 and "day@2012-07-01" not in listed


async def test_a_month_rolls_over_at_its_utc_end_and_iso_weeks_cross_the_year(
    namespace: Namespace,
) -> None:
    store = _store(namespace, (0, 0, 0))
    apply = Applier(store)
    new_year = 1_356_998_400  # 2013-01-01T00:00:00Z, a Tuesday of ISO week 2013-W01
    await apply(ev(1, new_year - 1, "share", "ann", "tom"))  # 2012-12-31 23:59:59, 2013-W01
    await apply(ev(2, new_year, "like", "bob", "amy"))
    assert await _boards(store, ["day", "week", "month", "month@2012-12", "week@2013-W01"]) == {
        "day": {"amy": 1.0},
        "week": {"tom": 4.0, "amy": 1.0},
        "month": {"amy": 1.0},
        "month@2012-12": {"tom": 4.0},
        "week@2013-W01": {"tom": 4.0, "amy": 1.0},
    }


async def test_retention_drops_old_archives_and_refuses_late_points_for_them(
    namespace: Namespace,
) -> None:
    store = _store(namespace, (2, 0, 0))
    apply = Applier(store)
    await apply(ev(1, SUN + 10, "share", "ann", "tom", "physics"))
    await apply(ev(2, MON + 10, "share", "ann", "amy", "physics"))
    assert [b for b, _ in await store.periods("day")] == ["day@2012-07-02", "day@2012-07-01"]
    await apply(ev(3, MON + DAY + 10, "like", "bob", "tom"))
    # Sunday is the third day back: its archives (base and community) are gone
    assert [b for b, _ in await store.periods("day")] == ["day@2012-07-03", "day@2012-07-02"]
    assert not await store.client.exists(
        store.key("board", "day@2012-07-01"), store.key("board", "day@2012-07-01:physics")
    )
    assert not await store.board_known("day@2012-07-01")
    # a late Sunday event still scores on all, the week and the month, but makes no Sunday again
    await apply(ev(4, SUN + 20, "click", "cy", "tom"))
    assert not await store.client.exists(store.key("board", "day@2012-07-01"))
    assert await _boards(store, ["all", "day", "week@2012-W26"]) == {
        "all": {"tom": 6.0, "amy": 4.0},
        "day": {"tom": 1.0},
        "week@2012-W26": {"tom": 5.0},
    }
    assert await store.client.zcard(store.key("archives", "day")) == 3  # two days, one community


async def test_perk_rules_watch_the_live_calendar_boards(namespace: Namespace) -> None:
    """A rank rule on ``week`` judges each week's board as it is live (a new week, a new
    leader); a score rule on ``day`` sees today's points only."""
    rules = ScoringRules.load().keeping(0, 0, 0)
    perks = [
        PerkRule("wk1", "Top of the week", "week", 1, None),
        PerkRule("d5", "Five points in a day", "day", None, 5.0),
    ]
    store = Store(namespace.store.client, namespace.store.prefix, rules, perks)
    apply = Applier(store)
    await apply(ev(1, SUN + 10, "share", "ann", "tom"))  # tom: 4 on Sunday, week W26
    await apply(ev(2, MON + 10, "share", "ann", "amy"), ev(3, MON + 20, "like", "bob", "amy"))
    await apply(ev(4, MON + 30, "like", "cy", "tom"), ev(5, MON + 40, "click", "dan", "tom"))
    tom = {p["rule"]: p for p in await store.perks_of("tom") or []}
    amy = {p["rule"]: p for p in await store.perks_of("amy") or []}
    # tom led week W26 (and has 4 + 2 points all told, but never 5 in one day)
    assert set(tom) == {"wk1"} and (tom["wk1"]["board"], tom["wk1"]["score"]) == ("week", 4.0)
    assert set(amy) == {"wk1", "d5"} and amy["d5"]["score"] == 5.0


async def test_winners_of_a_week_unlock_once_after_its_end_and_the_grace(
    namespace: Namespace,
) -> None:
    """``at = "close"``: the top of week W26 is judged on its archive once W is an hour (the
    grace) past its end; a late event inside the grace counts, and nothing unlocks twice."""
    rules = ScoringRules.load().keeping(0, 0, 0, 3600)
    perks = [PerkRule("wk1", "Winner of the week", "week", 1, None, at_close=True)]
    store = Store(namespace.store.client, namespace.store.prefix, rules, perks)
    apply = Applier(store)
    await apply(ev(1, SUN + 10, "share", "ann", "tom"))  # tom leads W26 with 4
    await apply(ev(2, MON + 10, "like", "bob", "cy"))  # W26 ended, the grace runs
    await apply(ev(3, SUN + 20, "conversion", "dan", "amy"))  # late, in the grace: amy 10
    assert await store.client.xlen(store.key("perkbox")) == 0
    await apply(ev(4, MON + 3700, "like", "eve", "cy"))  # past end + grace: W26 closes
    await apply(ev(5, MON + 2 * DAY, "like", "fay", "cy"))
    (entry,) = [f for _, f in await store.client.xrange(store.key("perkbox"), "-", "+")]
    assert (entry["member"], entry["board"], entry["period"], entry["rank"]) == (
        "amy",
        "week@2012-W26",
        "2012-W26",
        "1",
    )
    assert entry["id"] == unlock_id("wk1", "amy", "2012-W26") != unlock_id("wk1", "amy")
    held = await store.perks_of("amy")
    assert held is not None and [p["period"] for p in held] == ["2012-W26"]
    # W27 is still open: cy leads it, and gets nothing yet
    assert await store.perks_of("cy") in (None, [])


async def test_a_partition_behind_holds_the_close_back_until_it_catches_up_or_idles(
    namespace: Namespace,
) -> None:
    """Partition 1 runs W past Sunday's end + grace while partition 0, which has carried events,
    is still at Sunday: the day does not close until partition 0 passes it too (its late Sunday
    event counts), or, for a partition that stays quiet, until W is KUDOS_PERIODS_IDLE_S later."""
    rules = ScoringRules.load().keeping(0, 0, 0, 3600, 6 * 3600)
    perks = [PerkRule("d1", "Best of the day", "day", 1, None, at_close=True)]
    store = Store(namespace.store.client, namespace.store.prefix, rules, perks)
    p0, p1 = Applier(store, 0), Applier(store, 1)
    await p0(ev(1, SUN + 10, "share", "ann", "tom"))
    await p1(ev(2, SUN + 20, "like", "bob", "cy"), ev(3, MON + 2 * 3600, "share", "bob", "cy"))
    assert await store.client.xlen(store.key("perkbox")) == 0  # p0 is still at Sunday
    await p0(ev(4, SUN + 30, "conversion", "dan", "amy"), ev(5, MON + 3 * 3600, "like", "x", "y"))
    sunday = [f for _, f in await store.client.xrange(store.key("perkbox"), "-", "+")]
    assert [(f["member"], f["period"]) for f in sunday] == [("amy", "2012-07-01")]
    # Monday: p0 goes quiet at Monday 03:00; p1 alone closes it once W is end + grace + 6 h
    await p1(ev(6, MON + DAY + 3600 + 10, "share", "eve", "cy"))  # Tuesday 01:00: held back
    assert await store.client.xlen(store.key("perkbox")) == 1
    await p1(ev(7, MON + DAY + 7 * 3600 + 10, "like", "fay", "zed"))  # Tuesday 07:00: closes
    monday = [f for _, f in await store.client.xrange(store.key("perkbox"), "-", "+")][1:]
    assert [(f["member"], f["period"]) for f in monday] == [("cy", "2012-07-02")]


async def test_a_partition_that_has_not_carried_an_event_yet_holds_the_close_back(
    namespace: Namespace,
) -> None:
    """A worker starting on a backlog may apply partition 1 a day ahead before partition 0's
    first event: with the topic's partition count known, partition 0 counts as behind, so the
    day closes on its full archive once partition 0 passes it (or after the idle allowance)."""
    rules = ScoringRules.load().keeping(0, 0, 0, 3600, 6 * 3600)
    perks = [PerkRule("d1", "Best of the day", "day", 1, None, at_close=True)]
    store = Store(namespace.store.client, namespace.store.prefix, rules, perks)
    p0, p1 = Applier(store, 0, partitions_total=2), Applier(store, 1, partitions_total=2)
    await p1(ev(1, SUN + 20, "like", "bob", "cy"), ev(2, MON + 2 * 3600, "share", "bob", "cy"))
    assert await store.client.xlen(store.key("perkbox")) == 0  # p0 has carried nothing yet
    # p0 catches up behind W (the end of a replay: W never moves again): the day closes now
    await p0(ev(3, SUN + 30, "conversion", "dan", "amy"), ev(4, MON + 5400, "like", "x", "y"))
    sunday = [f for _, f in await store.client.xrange(store.key("perkbox"), "-", "+")]
    assert [(f["member"], f["period"]) for f in sunday] == [("amy", "2012-07-01")]
    # with the count unknown (0), partition 1 alone would have closed Sunday on cy's point
    other = Store(namespace.store.client, namespace.store.prefix + "-b", rules, perks)
    q1 = Applier(other, 1)
    await q1(ev(1, SUN + 20, "like", "bob", "cy"), ev(2, MON + 2 * 3600, "share", "bob", "cy"))
    early = [f for _, f in await other.client.xrange(other.key("perkbox"), "-", "+")]
    assert [(f["member"], f["period"]) for f in early] == [("cy", "2012-07-01")]
