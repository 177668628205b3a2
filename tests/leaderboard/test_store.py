"""The store (leaderboard/store/) on its own against real Redis: its methods called directly, with
no worker, web or deliverer process around them."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
from redis.client import NEVER_DECODE
from redis.exceptions import ResponseError

from leaderboard.bait import Decision
from leaderboard.errors import StoreConflict
from leaderboard.events import Event
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.fingerprint import fingerprint, pair_fingerprint
from leaderboard.owned import OwnedState
from leaderboard.perks import unlock_id
from leaderboard.plan import Message, Plan, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from leaderboard.store.apply import wire_args
from tests.conftest import Namespace

RULES = ScoringRules.load()
DAY = 86400
T0 = 1_341_100_800  # a UTC day boundary

pytestmark = pytest.mark.integration


async def test_fan_out_happens_once_even_when_raced(namespace: Namespace) -> None:
    """Two deliverers handling the same outbox entry at once: one pushes and makes the jobs."""
    store = namespace.store
    uid = unlock_id("top10", "m1")
    item = (
        uid,
        "m1",
        b'{"as_of":1,"boards":null,"events":[{"event":"perk"}]}',
        [(f"e:{uid}", {"endpoint": "e", "unlock": uid, "body": "{}"})],
    )
    await store.feed_watch(["m1"], 600)
    results = await asyncio.gather(*(store.fan_out([item, item], time.time()) for _ in range(8)))
    assert sorted(results, key=len) == [[]] * 7 + [[uid]]
    assert await store.fan_out([item], time.time()) == []
    assert await store.fanned_out([uid, "unl_other"]) == {uid}
    (job,) = await store.webhook_jobs("due")
    assert job["job"] == f"e:{uid}" and job["attempts"] == "0"
    assert await store.client.xlen(store.key("feedlog", "member:m1")) == 1


async def test_boards_page_through_every_board_once_at_a_bounded_cost(
    namespace: Namespace,
) -> None:
    """GET /api/boards reads a page at a time: every board exactly once over the pages, base
    boards first, sizes right, and no page much longer than asked whatever the number of boards."""
    store = namespace.store
    communities = [f"c{i:04d}" for i in range(600)]
    pipe = store.client.pipeline(transaction=False)
    for c in communities:
        board = f"7d:{c}"
        pipe.sadd(store.key("boards"), board)
        pipe.zadd(store.key("board", board), {"m1": 1000.0, "m2": 2000.0})
    await pipe.execute()
    seen: list[str] = []
    pages = 0
    cursor = 0
    while True:
        rows, cursor = await store.boards(cursor, 100)
        pages += 1
        assert len(rows) <= 2 * 100 + len(store.rules.base_boards)
        if pages == 1:
            assert [b for b, _ in rows[:8]] == list(store.rules.base_boards)
        seen += [b for b, _ in rows]
        assert all(n == 2 for b, n in rows if b.startswith("7d:"))
        if cursor == 0:
            break
    assert pages > 2
    assert sorted(seen) == sorted([*store.rules.base_boards, *(f"7d:{c}" for c in communities)])


def _plan(owned: OwnedState, *messages: Message) -> Plan:
    return build_plan(
        list(messages),
        owned.store_state(),
        RULES,
        dedupe_horizon_s=7 * DAY,
        rebase_after_s=120 * DAY,
        max_future_s=300,
    )


async def test_dedupe_ids_and_counters_survive_a_reload_as_fingerprints(
    namespace: Namespace,
) -> None:
    """A worker that loads a partition afterwards (a restart, a rebalance) finds every applied id
    a duplicate and every pair's count where it was, from 16-byte records (one per id, one per
    counted event of a pair) appended per day: no id or actor name is stored."""
    store = namespace.store
    first = OwnedState()
    await store.load_partitions([0], first)
    shares = [Event(f"s{i}", T0 + i, "share", "ann", "tom") for i in range(3)]
    plan = _plan(
        first, Message(0, 0, shares), Message(0, 1, [Event("d1", T0 + DAY, "share", "bob", "tom")])
    )
    await (await store.send_apply(plan))
    day = T0 // DAY
    blob = await store.client.execute_command(
        "GET", store.key("ids", 0, day, 0), **{NEVER_DECODE: True}
    )
    assert blob == b"".join(fingerprint(f"s{i}") for i in range(3))
    counted = await store.client.execute_command(
        "GET", store.key("drc", 0, day, 0), **{NEVER_DECODE: True}
    )
    assert counted == pair_fingerprint("ann", "tom") * 3
    assert await store.client.zrange(store.key("idparts", 0), 0, -1) == [f"{day}:0", f"{day + 1}:0"]
    # a fresh worker: the ids are duplicates, ann's fourth share of tom that day earns 1/4
    again = OwnedState()
    await store.load_partitions([0], again)
    replay = _plan(again, Message(0, 2, [*shares, Event("s3", T0 + 9, "share", "ann", "tom")]))
    assert replay.stats == {"duplicate": 3, "applied": 1}
    assert dict(replay.totals) == {("all", "tom"): RULES.weights_mp["share"] // 4}


async def test_a_namespace_from_before_fingerprints_keeps_its_dedupe_and_counts(
    namespace: Namespace,
) -> None:
    """Ids (``seen:<p>``, id → ts) and counters (``dr:<p>:<day>`` hashes) written before the
    compact form are still read on load, so an upgrade neither double counts a resent event nor
    restarts diminishing returns; counts since then add to the old ones."""
    store = namespace.store
    day = T0 // DAY
    await store.client.zadd(store.key("seen", 0), {"old1": T0, "old2": T0 + 1})
    await store.client.hset(store.key("dr", 0, day), "ann\x1ftom", 2)
    await store.client.zadd(store.key("drdays", 0), {str(day): day})
    await store.client.hset(store.key("fence"), "0", 4)
    owned = OwnedState()
    await store.load_partitions([0], owned)
    plan = _plan(
        owned,
        Message(
            0,
            5,
            [Event("old1", T0, "share", "ann", "tom"), Event("n1", T0 + 5, "share", "ann", "tom")],
        ),
    )
    assert plan.stats == {"duplicate": 1, "applied": 1}
    assert dict(plan.totals) == {("all", "tom"): RULES.weights_mp["share"] // 3}
    await (await store.send_apply(plan))
    later = OwnedState()
    await store.load_partitions([0], later)
    fourth = _plan(later, Message(0, 6, [Event("n2", T0 + 6, "share", "ann", "tom")]))
    assert dict(fourth.totals) == {("all", "tom"): RULES.weights_mp["share"] // 4}


async def test_an_apply_whose_layout_disagrees_with_the_script_writes_nothing(
    namespace: Namespace,
) -> None:
    """The apply script checks its whole argument layout before its first write (Redis keeps
    what a failing script wrote, so a retry would add it again): an extra argument anywhere is
    refused by name with every board, id and fence untouched."""
    store = namespace.store
    owned = OwnedState()
    await store.load_partitions([0], owned)
    plan = _plan(owned, Message(0, 0, [Event("a", T0, "share", "ann", "tom")]))
    good, blobs = store._argv(plan, 0)
    keys = store._apply_keys(plan.generation)
    for section in ("seen", "end"):
        at = good.index(section)
        bad = [*good[:at], "1", *good[at:]]
        with pytest.raises(ResponseError, match=f"apply protocol: expected section {section}"):
            await store.scripts.apply(keys=keys, args=wire_args(bad, blobs))
        assert await store.client.zcard(store.key("board", "all")) == 0
        assert await store.fences() == {} and (await store.stats())["total"] == 0
    # (a fingerprint blob more or fewer than the seen and dr records name)
    for wrong in ([*blobs, b"x" * 16], blobs[:-1]):
        with pytest.raises(ResponseError, match=r"apply protocol: .* fingerprint blobs named"):
            await store.scripts.apply(keys=keys, args=wire_args(good, wrong))
        assert await store.fences() == {}
    await store.scripts.apply(keys=keys, args=wire_args(good, blobs))
    assert await store.fences() == {0: 0}


async def test_a_busy_day_is_split_into_parts_that_all_load(namespace: Namespace) -> None:
    """A (partition, day) string never grows past the part size (Redis caps a string at 512 MB,
    and an APPEND past it would fail mid-apply): the next part starts, and a reload reads every
    part, so every id stays a duplicate."""
    store = namespace.store
    store.part_bytes = 16 * 40  # 40 fingerprints a part
    owned = OwnedState()
    await store.load_partitions([0], owned)
    for off in range(5):
        events = [Event(f"e{off}-{i}", T0 + off, "click", f"a{i}", "tom") for i in range(30)]
        plan = _plan(owned, Message(0, off, events))
        await (await store.send_apply(plan))
        owned.absorb(plan)
    parts = await store.client.zrange(store.key("idparts", 0), 0, -1)
    assert len(parts) >= 4 and all(p.startswith(f"{T0 // DAY}:") for p in parts)
    for name in parts:
        size = await store.client.strlen(store.key("ids", 0, name))
        assert 0 < size <= 16 * 40
    again = OwnedState()
    await store.load_partitions([0], again)
    resent = [
        Event(f"e{off}-{i}", T0 + 9, "click", f"a{i}", "tom") for off in range(5) for i in range(30)
    ]
    assert _plan(again, Message(0, 5, resent)).stats == {"duplicate": 150}


async def test_an_export_across_a_rebuild_switch_fails_instead_of_ending_early(
    namespace: Namespace,
) -> None:
    """The old generation is dropped soon after a switch, so an export that kept paging it could
    end early and still look complete: it stops with a clear error instead."""
    store = namespace.store
    await store.client.zadd(store.key("board", "all"), {f"m{i}": 1000 * i for i in range(25)})
    rows = store.export("all", chunk=10)
    first = [await anext(rows) for _ in range(10)]
    assert first[0][1] == "m24"
    await store.client.set(store.key("live"), 1)  # a kudos rebuild switched meanwhile
    with pytest.raises(StoreConflict, match="rebuilt during the export"):
        async for _ in rows:
            pass


async def test_a_rebuild_filling_its_generation_leaves_the_live_change_marks_alone(
    namespace: Namespace,
) -> None:
    """Web processes re-read a board when its change mark moves; a rebuild's applies go to a
    generation nobody reads yet, so they must not make every web process re-read every board
    while it runs (the switch marks them all at once). A live apply marks what it touched."""
    live = namespace.store
    shadow = Store(live.client, live.prefix, RULES, generation=1)
    owned = OwnedState()
    await shadow.load_partitions([0], owned)
    plan = _plan(owned, Message(0, 0, [Event("a", T0, "share", "ann", "tom")]))
    await (await shadow.send_apply(plan))
    assert await shadow.client.zscore(shadow.key("board", "all"), "tom") == 4000
    assert await live.client.hgetall(live.key("changes")) == {}
    owned = OwnedState()
    await live.load_partitions([0], owned)
    plan = _plan(owned, Message(0, 0, [Event("a", T0, "share", "ann", "tom")]))
    await (await live.send_apply(plan))
    assert (await live.client.hgetall(live.key("changes")))["all"] == "1"


async def test_points_taken_back_to_nothing_leave_every_board(namespace: Namespace) -> None:
    """A retroactive bait throttle subtracts what interactions counted (negative deltas): a
    member left with nothing is removed from the boards, the window buckets and their posts,
    not kept at 0 (boards list members with points); others stay as they were."""
    store = namespace.store
    first = OwnedState()
    await store.load_partitions([0], first)
    events = [
        Event("c1", T0 + 5, "comment", "ann", "tom", "p1", "a real answer with words"),
        Event("s1", T0 + 6, "share", "ann", "tom", "p1"),
        Event("b1", T0 + 7, "share", "ann", "bob"),
    ]
    given = _plan(first, Message(0, 0, events))
    await (await store.send_apply(given))
    boards = ("all", "1h", "24h", "7d", "decayed")
    for board in boards:
        assert await store.client.zscore(store.key("board", board), "tom"), board
    again = OwnedState()
    await store.load_partitions([0], again)
    back = _plan(again, Message(0, 1, [Event("b2", T0 + 8, "like", "cat", "bob")]))
    # what a claw-back of all of tom's points puts in a plan (the planner's own test checks it
    # computes these): every board entry of tom's, negated
    for k, v in given.totals.items():
        if k[1] == "tom":
            back.totals[k] -= v
    for bk, bv in given.buckets.items():
        if bk[3] == "tom":
            back.buckets[bk] -= bv
    for dk, dv in given.decayed.items():
        if dk[1] == "tom":
            back.decayed[dk] -= dv
    period = (T0 + 5) // POSTS_PERIOD_S
    back.posts[("tom", "p1", period)] = -given.posts[("tom", "p1", period)]
    await (await store.send_apply(back))
    for board in boards:
        assert await store.client.zscore(store.key("board", board), "tom") is None, board
        assert await store.client.zscore(store.key("board", board), "bob"), board
    for entry in await store.client.zrange(store.key("buckets", "7d"), 0, -1):
        assert await store.client.zscore(store.key("bucket", entry), "tom") is None
    assert await store.client.zcard(store.key("posts", "tom") + f"|{period}") == 0


async def test_top_posts_keep_two_periods_whatever_the_batches(namespace: Namespace) -> None:
    """posts:<member> is bounded by time: points are kept per 30-day period of event time, top
    posts sum the current and the previous period, and writing a period drops the one two
    before. The same events in one batch or one per batch give the same top posts."""
    period = POSTS_PERIOD_S
    k = T0 // period + 1
    start = k * period  # (the first second of period k)

    def at(p: int, s: int) -> int:
        return start + p * period + s

    events = [
        Event("a", at(0, 10), "share", "ann", "tom", "old"),  # period k: dropped later
        Event("b", at(1, 10), "share", "bob", "tom", "mid"),  # k + 1
        Event("c", at(1, 20), "share", "cat", "tom", "old"),  # the old post earns again in k + 1
        Event("d", at(2, 10), "comment", "dan", "tom", "new", "a real answer"),  # k + 2
        Event("e", at(2, 20), "share", "eve", "tom", "mid"),  # k + 2
    ]
    share, comment = RULES.weights_mp["share"], RULES.weights_mp["comment"]
    want = [("mid", 2 * share), ("old", share), ("new", comment)]
    store = namespace.store
    for i, e in enumerate(events):  # one event per batch
        owned = OwnedState()
        await store.load_partitions([0], owned)
        await (await store.send_apply(_plan(owned, Message(0, i, [e]))))
    explanation = await store.explanation("tom")
    assert explanation is not None and explanation.top_posts == want
    # period k is gone (written period k + 2 dropped it); k + 1 and k + 2 are all there is
    tom = store.key("posts", "tom")
    assert not await store.client.exists(f"{tom}|{k}")
    assert await store.client.zrange(f"{tom}|{k + 1}", 0, -1) == ["mid", "old"]
    # the same events for another member (of another partition) in one batch
    tim = [e._replace(id="t" + e.id, target="tim") for e in events]
    owned = OwnedState()
    await store.load_partitions([1], owned)
    await (await store.send_apply(_plan(owned, Message(1, 0, tim))))
    again = await store.explanation("tim")
    assert again is not None and again.top_posts == want
    assert not await store.client.exists(store.key("posts", "tim") + f"|{k}")


async def test_throttle_lines_keep_two_periods_and_older_ones_go(namespace: Namespace) -> None:
    """throttle:<member> and withheld:<member> are bounded by time like posts: withheld points are
    kept per 30-day period of the interactions, and a member's throttle records decided before
    the previous period of W are dropped when the member's records change; the explain view and
    the member's alerts show the same ones whenever the drop happened."""
    period = POSTS_PERIOD_S
    k = T0 // period + 1
    store = namespace.store

    def decision(group: str, at: float) -> Decision:
        return Decision(group, group[2:], "tom", "throttled", at, 0.25, ("spike",), 12, since=at)

    async def apply(offset: int, ts: int, target: str, extra: Callable[[Plan], None]) -> None:
        owned = OwnedState()
        await store.load_partitions([0], owned)
        plan = _plan(owned, Message(0, offset, [Event(f"e{offset}", ts, "share", "ann", target)]))
        extra(plan)
        await (await store.send_apply(plan))

    def old_throttle(plan: Plan) -> None:
        plan.withheld[("tom", "p:old", k)] = 700
        plan.alerts.append(decision("p:old", k * period + 10))

    def new_throttle(plan: Plan) -> None:
        plan.withheld[("tom", "p:new", k + 2)] = 300
        plan.alerts.append(decision("p:new", (k + 2) * period + 10))

    await apply(0, k * period + 10, "tom", old_throttle)
    first = await store.explanation("tom")
    assert first is not None and [t.group for t in first.throttles] == ["p:old"]
    assert first.throttles[0].withheld_mp == 700
    # two periods later, another throttle of tom's: the old record and its period go
    await apply(1, (k + 2) * period + 10, "bob", new_throttle)
    later = await store.explanation("tom")
    assert later is not None
    assert [(t.group, t.withheld_mp) for t in later.throttles] == [("p:new", 300)]
    assert [a["group"] for a in await store.alerts(10, member="tom")] == ["p:new"]
    assert set(await store.client.hkeys(store.key("throttle", "tom"))) == {"p:new", "~k"}
    assert not await store.client.exists(store.key("withheld", "tom") + f"|{k}")


async def test_top_posts_of_two_periods_are_the_exact_top_of_the_sums(namespace: Namespace) -> None:
    """The explain view ranks posts by their points over the two periods without reading the
    sets whole; whatever the overlap and the ties, it is the exact top ten of the sums (ties by
    post id descending, as one sorted set orders them)."""
    store = namespace.store
    k = T0 // POSTS_PERIOD_S
    await store.client.set(store.key("wm"), str(k * POSTS_PERIOD_S + 5))
    rng = random.Random(3)
    for case in range(12):
        member = f"m{case}"
        await store.client.hset(store.key("explain", member), "n:share", 1)
        now, before = {}, {}
        for _ in range(rng.choice((3, 15, 200))):
            post = f"p{rng.randrange(300)}"
            target = now if rng.random() < 0.5 else before
            target[post] = rng.choice((1000, 2000, 4000, rng.randrange(1, 50) * 500))
        base = store.key("posts", member)
        if now:
            await store.client.zadd(f"{base}|{k}", now)
        if before:
            await store.client.zadd(f"{base}|{k - 1}", before)
        sums = {p: now.get(p, 0) + before.get(p, 0) for p in {*now, *before}}
        by_id = sorted(sums.items(), reverse=True)  # (ties: post id descending)
        want = sorted(by_id, key=lambda kv: -kv[1])[:10]
        got = await store.explanation(member)
        assert got is not None and got.top_posts == want, case
