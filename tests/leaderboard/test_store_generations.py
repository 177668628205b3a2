"""Rebuild generations on real Redis: the switch moves a pointer (its work does not grow with the
namespace), readers and live workers follow it, and the old generation is dropped without
touching the live one or serving state."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
import pytest_asyncio

from leaderboard.errors import StoreConflict
from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store, base
from leaderboard.store.keys import Keys
from leaderboard.store.scripts import SOURCES
from stream.processor import Processor, Raw
from stream.rebuild import drop_dead
from tests.conftest import Servers
from tests.oracle import assert_board_equal, compute

pytestmark = pytest.mark.integration

RULES = ScoringRules.load()
T0 = 1_700_000_000
TOKEN = "test-rebuild"


class Letters:
    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        assert not letters


def messages(n: int, per: int, members: int = 5, first: int = 0) -> tuple[list[Raw], list[Any]]:
    """``n`` messages of partition 0 from offset ``first``, ``per`` shares each, to ``members``
    distinct targets."""
    raws, events = [], []
    for off in range(first, first + n):
        batch = [
            {
                "id": f"{off}-{j}",
                "ts": T0 + 60 * (off * per + j),
                "kind": "share",
                "actor": f"a{j % 3}",
                "target": f"t{(off * per + j) % members}",
            }
            for j in range(per)
        ]
        events += batch
        raws.append(Raw(0, off, orjson.dumps(batch), float(T0 + 60 * (off * per + per - 1))))
    return raws, events


@pytest_asyncio.fixture
async def store(real_servers: Servers) -> AsyncIterator[Store]:
    s = Store.connect(real_servers.redis_url, f"gen-{uuid.uuid4().hex}", RULES)
    yield s
    await s.close()


def next_generation(live: Store, rules: ScoringRules = RULES) -> Store:
    """The rebuild's store: same prefix, pinned at the live generation + 1."""
    return Store(live.client, live.prefix, rules, generation=live.generation + 1)


async def fill(store: Store, raws: list[Raw]) -> Processor:
    p = Processor(store, store.rules, WorkerSettings(), Letters())
    await p.process(raws)
    return p


async def board(store: Store, name: str = "all") -> dict[str, int]:
    return {m: round(float(s) * 1000) for _, m, s in [r async for r in store.export(name)]}


async def switch(live: Store, new: Store) -> str:
    assert await live.lock_rebuild(TOKEN, 60) is None
    try:
        return await live.switch_from(new, "deliver", TOKEN)
    finally:
        await live.unlock_rebuild(TOKEN)


async def commands_of(live: Store, call: Any) -> dict[str, int]:
    """The commands Redis ran for ``call`` (INFO commandstats deltas; the server is this test
    session's, and nothing else runs on it meanwhile)."""

    def calls(info: dict[str, Any]) -> dict[str, int]:
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items()}

    before = calls(await live.client.info("commandstats"))
    await call()
    after = calls(await live.client.info("commandstats"))
    delta = {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}
    delta.pop("info", None)
    return delta


async def test_the_switch_does_the_same_work_whatever_the_number_of_keys(
    real_servers: Servers,
) -> None:
    """Two namespaces with the same boards, one with 20 members and one with 3,000 (thousands
    more keys): the switch runs the same commands in both, and no key walk, RENAME or delete."""
    work: list[dict[str, int]] = []
    sizes: list[int] = []
    for members in (20, 3000):
        live = Store.connect(real_servers.redis_url, f"gen-{uuid.uuid4().hex}", RULES)
        try:
            raws, _ = messages(20, 300, members)
            await fill(live, raws)
            new = next_generation(live)
            await fill(new, raws)
            sizes.append(len(await live.client.keys(live.keys.pattern())))
            await live.lock_rebuild(TOKEN, 60)
            outcome: list[str] = []

            async def call(live: Store = live, new: Store = new, out: list[str] = outcome) -> None:
                out.append(await live.switch_from(new, "deliver", TOKEN))

            await live.client.script_load(SOURCES["switch"])  # (no NOSCRIPT retry in one)
            work.append(await commands_of(live, call))
            assert outcome == ["ok"]
            assert await live.pointer() == 1
        finally:
            await live.close()
    assert sizes[1] > sizes[0] + 2000  # (the namespaces differ in size as meant)
    small, large = work
    assert small == large, (small, large)
    assert not {"scan", "keys", "rename", "unlink", "del"} & set(large), large


async def test_a_reader_on_the_old_generation_gets_the_new_boards_after_the_switch(
    store: Store, real_servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers that cached the old generation (and would not look again for a long time) get
    the new boards from their next atomic read (a page, an explanation, a feed poll): the script
    answers 'stale' and the read retries on the new generation."""
    raws, events = messages(10, 20)
    await fill(store, raws[:6])
    readers = [Store.connect(real_servers.redis_url, store.prefix, RULES) for _ in range(3)]
    try:
        old = {e.member: round(e.score * 1000) for e in (await readers[0].page("all", 50))[0]}
        for r in readers:
            await r.page("all", 1)
            assert r.generation == 0
        new = next_generation(store)
        await fill(new, raws)  # (the new generation has more: its boards differ)
        monkeypatch.setattr(base, "FOLLOW_S", 1e9)  # the readers would trust their cache forever
        assert await switch(store, new) == "ok"
        expected = compute(events)["all"]
        assert expected != old
        page, size = await readers[0].page("all", 50)
        assert {e.member: round(e.score * 1000) for e in page} == expected
        assert size == len(expected)
        top = max(expected, key=lambda m: expected[m])
        explained = await readers[1].explanation(top)
        assert explained is not None
        assert round(explained.boards["all"].score * 1000) == expected[top]
        poll = await readers[2].feed_board("all", -1, 50, 10)
        assert {m: round(p * 1000) for m, p in poll.rows} == expected
        assert [r.generation for r in readers] == [1, 1, 1]
    finally:
        for r in readers:
            await r.close()


async def test_a_live_worker_keeps_scoring_across_a_switch_with_exact_boards(
    store: Store,
) -> None:
    """A worker that planned from generation 0 when the pointer moved: its apply is refused, it
    reloads generation 1 and goes on from its fences: nothing twice, nothing lost."""
    raws, events = messages(12, 20)
    worker = await fill(store, raws[:6])
    new = next_generation(store)
    await fill(new, raws[:8])  # the rebuild read further than the worker had got
    assert await switch(store, new) == "ok"
    await worker.process(raws)  # (redelivered from the worker's committed offset, say)
    assert worker.owned.generation == 1
    assert await store.fences() == {0: 11}
    expected = compute(events)
    for name in ("all", "24h", "7d", "decayed"):
        rows = [r async for r in store.export(name)]
        assert_board_equal(name, rows, expected.get(name, {}))
    assert (await store.stats())["total"] == len(events)


async def test_the_switch_is_refused_while_the_new_generation_is_behind(store: Store) -> None:
    raws, _ = messages(10, 20)
    await fill(store, raws)
    new = next_generation(store)
    await fill(new, raws[:5])
    assert await switch(store, new) == "behind"
    assert await store.pointer() == 0
    assert await store.client.get(store.key("rebuilding")) is None
    assert await store.switch_from(new, "deliver", "not-the-lock") == "lock"


async def test_dropping_the_old_generation_leaves_the_live_one_and_serving_state(
    store: Store,
) -> None:
    raws, events = messages(10, 20)
    await fill(store, raws)
    # serving state: an unlock, a feed mark, the feed's epoch, a webhook job
    await store.client.hset(store.key("perks", "t1"), "top", "{}")
    await store.feed_watch(["t1"], 600)
    epoch = await store.feed_epoch()
    await store.client.hset(store.key("wh", "job", "e:u"), "body", "{}")
    new = next_generation(store)
    await fill(new, raws)
    old_keys = [k async for k in store.client.scan_iter(match=store.keys.pattern())]
    assert await switch(store, new) == "ok"
    with pytest.raises(Exception, match="live"):
        await store.drop_generation(1)
    steps = [n async for n in store.drop_steps(0, step=10)]
    assert len(steps) > 1 and sum(steps) > 10
    left = [k async for k in store.client.scan_iter(match=store.keys.pattern())]
    assert not [k for k in left if store.keys.is_unscoped(k)]
    assert await store.generations() == {1}
    # what stayed: the live generation, whole, and every serving key
    assert await board(store) == compute(events)["all"]
    assert all(k in left for k in old_keys if not Keys(store.prefix).is_unscoped(k))
    assert await store.client.hget(store.key("perks", "t1"), "top") == "{}"
    assert await store.feed_epoch() == epoch
    assert await store.client.zscore(store.key("watched"), "t1") is not None
    assert await store.client.exists(store.key("wh", "job", "e:u"))
    assert await store.client.get(store.key("live")) == "1"


async def test_a_dead_rebuilds_generations_are_dropped_by_the_next_rebuild(store: Store) -> None:
    """A rebuild that switched and died before its drop leaves the old generation; one that died
    before switching leaves a half-filled new one. The next rebuild drops both first, and only
    them."""
    raws, events = messages(10, 20)
    await fill(store, raws)
    g1 = next_generation(store)
    await fill(g1, raws)
    assert await switch(store, g1) == "ok"  # ... and died: generation 0 is still there
    half = next_generation(store)  # generation 2, filled halfway, never switched
    await fill(half, raws[:3])
    await store.client.hset(store.key("perks", "t1"), "top", "{}")
    assert await store.generations() == {0, 1, 2}
    await drop_dead(store, await store.pointer(), RULES)
    assert await store.generations() == {1}
    assert await board(store) == compute(events)["all"]
    assert await store.client.hget(store.key("perks", "t1"), "top") == "{}"


async def test_a_namespace_from_before_generations_is_generation_0(
    store: Store, real_servers: Servers
) -> None:
    """A namespace rebuilt by the old switch has a switch counter and its keys at today's names:
    readers and workers use those keys (the counter is not the pointer)."""
    raws, events = messages(10, 20)
    worker = await fill(store, raws[:5])
    await store.client.set(store.key("generation"), "3")
    reader = Store.connect(real_servers.redis_url, store.prefix, RULES)
    try:
        await worker.process(raws)
        page, _ = await reader.page("all", 50)
        assert {e.member: round(e.score * 1000) for e in page} == compute(events)["all"]
        assert reader.generation == 0 and worker.owned.generation == 0
    finally:
        await reader.close()


def at(live: Store, generation: int) -> Store:
    """A rebuild's store pinned at ``generation`` of ``live``'s namespace."""
    return Store(live.client, live.prefix, RULES, generation=generation)


async def test_two_rebuilds_never_fill_the_same_generation(store: Store) -> None:
    """Rebuild A takes a number, fills part of it and loses its lock without noticing; rebuild B
    drops A's leftovers and takes another number. A goes on writing, into its own generation
    only: B's boards and switch are untouched, A cannot switch, and A's clean-up drops only its
    own generation."""
    raws, events = messages(10, 20)
    await fill(store, raws)
    assert await store.lock_rebuild("a", 60) is None
    a = await store.take_generation("a")
    await fill(at(store, a), raws[:3])
    await store.client.delete(store.key("rebuilding"))  # (A's lock ran out)
    with pytest.raises(StoreConflict):
        await store.take_generation("a")  # no lock, no number
    assert await store.lock_rebuild("b", 60) is None
    await drop_dead(store, await store.pointer(), RULES)
    assert await store.generations() == {0}
    b = await store.take_generation("b")
    assert b > a > 0
    await fill(at(store, a), raws[3:6])  # A, stale, still writing
    await fill(at(store, b), raws)
    assert await store.switch_from(at(store, a), "deliver", "a", previous=0) == "lock"
    assert await store.switch_from(at(store, b), "deliver", "b", previous=0) == "ok"
    assert await store.pointer() == b
    await store.drop_generation(a)  # A's clean-up: its own generation, not live
    assert await store.generations() == {0, b}
    assert await board(store) == compute(events)["all"]


async def test_a_generation_number_is_above_the_live_one_and_every_one_taken(
    store: Store,
) -> None:
    """A namespace whose pointer is ahead of the counter (the counter is newer than the
    pointer, or was lost): the next number is above the pointer; then each is above the last."""
    await store.client.set(store.key("live"), "3")
    assert await store.lock_rebuild(TOKEN, 60) is None
    try:
        taken = [await store.take_generation(TOKEN) for _ in range(3)]
    finally:
        await store.unlock_rebuild(TOKEN)
    assert taken == [4, 5, 6]


async def test_a_drop_stops_at_the_step_where_its_generation_became_live(store: Store) -> None:
    """The pointer is read again before every step of a drop, not only before the first: once
    the generation being dropped is the live one, the drop stops and what is left stays."""
    raws, _ = messages(10, 20, members=200)
    g1 = next_generation(store)
    await fill(g1, raws)
    keys = Keys(store.prefix, 1).generation_pattern()
    before = len([k async for k in store.client.scan_iter(match=keys)])
    assert before > 200
    steps = store.drop_steps(1, step=10)
    removed = 0
    while not removed:
        removed += await anext(steps)
    await store.client.set(store.key("live"), "1")  # (the pointer moved to it meanwhile)
    with pytest.raises(StoreConflict, match="live"):
        await anext(steps)
    left = [k async for k in store.client.scan_iter(match=keys)]
    assert len(left) == before - removed > 0


async def test_a_community_admission_follows_a_switch_it_did_not_see(store: Store) -> None:
    """The community cap of a namespace kept as shards is decided in the namespace's own set,
    which a rebuild switches too: a store still holding the old generation (cached for
    FOLLOW_S) admits into the live one, never into the one about to be dropped."""
    await store.follow(force=True)
    assert await store.admit_communities(["rust"], [], 2)
    await store.client.set(store.serving.key("live"), "1")  # (a rebuild switched it)
    assert await store.admit_communities(["go"], [], 2)
    assert await store.client.smembers(Keys(store.prefix, 1).key("communities")) == {"go"}
    assert await store.client.smembers(Keys(store.prefix, 0).key("communities")) == {"rust"}
    # the cap counts the live set only, and a refused community admitted there is news
    assert not await store.admit_communities(["zig", "ada"], [], 2)
    assert not await store.admit_communities([], ["go"], 1)
    assert await store.admit_communities([], ["rust"], 1)
