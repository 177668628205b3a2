"""The worker's own partition state: it must plan exactly like the store's state would."""

from __future__ import annotations

from leaderboard.events import Event
from leaderboard.fingerprint import fingerprint, pair_fingerprint
from leaderboard.owned import OwnedPartition, OwnedState
from leaderboard.plan import Message, build_plan
from leaderboard.scoring import ScoringRules

RULES = ScoringRules.load()
DAY = 86400
T0 = 1_341_100_800  # a UTC day boundary
H = 7 * DAY


def plan(owned: OwnedState, *messages: Message):  # type: ignore[no-untyped-def]
    return build_plan(
        list(messages),
        owned.store_state(),
        RULES,
        dedupe_horizon_s=H,
        rebase_after_s=120 * DAY,
        max_future_s=300,
    )


def share(i: str, ts: float, actor: str = "ann") -> Event:
    return Event(i, ts, "share", actor, "tom")


def test_absorbed_plans_dedupe_and_diminish_like_the_store() -> None:
    owned = OwnedState(partitions={0: OwnedPartition()})
    p1 = plan(owned, Message(0, 0, [share("a", T0), share("b", T0 + 1)]))
    owned.absorb(p1)
    assert owned.partitions[0].fence == 0 and owned.landmark == p1.landmark
    p2 = plan(
        owned, Message(0, 0, [share("z", T0)]), Message(0, 1, [share("a", T0), share("c", T0 + 2)])
    )
    # offset 0 is behind the fence; "a" is a duplicate; "c" is ann's third share of tom today: 4000 // 3
    assert p2.stats == {"duplicate": 1, "applied": 1}
    assert dict(p2.totals) == {("all", "tom"): 1333}
    assert p2.partitions[0].expected_fence == 0


def test_pruning_drops_whole_days_behind_the_horizon_only() -> None:
    o = OwnedPartition()
    o.add_seen("old", T0 + 10)
    o.add_seen("edge", T0 + 8 * DAY + 5)
    o.set_dr(T0 // DAY, "ann\x1ftom", 3)
    o.set_dr(T0 // DAY + 8, "ann\x1ftom", 1)
    o.prune(seen_cutoff=T0 + 8 * DAY + 100, dr_cutoff_day=T0 // DAY + 8)
    # "edge"'s own day is not wholly behind the cutoff
    held = o.seen.days_of_many([fingerprint("old"), fingerprint("edge")])
    assert held == [None, T0 // DAY + 8] and len(o.seen) == 1
    pair = pair_fingerprint("ann", "tom")
    assert o.dr.get_many([(T0 // DAY, pair), (T0 // DAY + 8, pair)]) == [0, 1]


def test_an_id_on_the_cutoff_day_is_a_duplicate_and_one_a_day_behind_is_not() -> None:
    """Ids are held by day: one whose day is not wholly behind the horizon is still a duplicate
    (the store keeps that day too), one whose day is behind it scores again (pruned there)."""
    owned = OwnedState(partitions={0: OwnedPartition(fence=5, watermark=T0 + H + 3600)})
    owned.partitions[0].add_seen("x", T0 + 3599)  # the cutoff's day, an hour before the cutoff
    owned.partitions[0].add_seen("y", T0 - 1)  # the day before
    p = plan(
        owned,
        Message(0, 6, [share("x", T0 + H + 3600, actor="bob"), share("y", T0 + H + 3600, "cy")]),
    )
    assert p.stats == {"applied": 1, "duplicate": 1}
    assert [i for _, _, i in p.seen] == ["y"]


def test_forget_empties_the_copy() -> None:
    owned = OwnedState(partitions={0: OwnedPartition(fence=3)})
    owned.forget()
    assert owned.missing([0, 1]) == [0, 1]


def test_ids_of_days_65536_apart_in_one_batch_do_not_crash_the_worker() -> None:
    """The id set tells days apart modulo 65,536: two valid events that far apart (no record
    timestamp to bound them) once made absorb raise, a crash loop on that offset. The older one
    is behind the new horizon, pruned in Redis by the same apply, and not held."""
    owned = OwnedState(partitions={0: OwnedPartition()})
    far = [share("a", 100 * DAY), share("b", 65_636 * DAY, actor="bob")]
    p = build_plan(
        [Message(0, 0, far)],
        owned.store_state(),
        RULES,
        dedupe_horizon_s=H,
        rebase_after_s=120 * DAY,
        max_future_s=300,
    )
    assert p.stats == {"applied": 2}
    owned.absorb(p)
    held = owned.partitions[0].seen.days_of_many([fingerprint("a"), fingerprint("b")])
    assert held == [None, 65_636]
