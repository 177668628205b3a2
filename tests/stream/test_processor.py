"""The processor: stale partition copies are detected by the fence and replanned (against real
Redis); gaps behind a fence are found and re-read; big envelopes are applied in pieces (pure, and
against real Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from typing import Any

import orjson
import pytest
import pytest_asyncio

from broker.producer import partition_for
from leaderboard.events import decode_message
from leaderboard.plan import DeadLetter, Message, PartitionState, Plan, StoreState, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from leaderboard.store.keys import Keys
from stream.processor import Gap, Processor, Raw, find_gap, is_envelope, split_message
from tests.conftest import Servers
from tests.oracle import assert_board_equal, compute

integration = pytest.mark.integration
RULES = ScoringRules.load()
T0 = 1_700_000_000
BOARDS = ("all", "1h", "24h", "7d", "decayed")


class Letters:
    """The dead-letter seam: a list instead of a Kafka topic."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        self.letters += letters


@pytest_asyncio.fixture
async def store(real_servers: Servers) -> AsyncIterator[Store]:
    # (not id(object()): a freed object's id comes back, and with it another test's keys)
    s = Store.connect(real_servers.redis_url, f"proc-{uuid.uuid4().hex}", RULES)
    yield s
    await s.close()


def messages(n: int, per: int) -> tuple[list[Raw], list[dict[str, object]]]:
    raws, events = [], []
    for off in range(n):
        batch = [
            {
                "id": f"{off}-{j}",
                "ts": T0 + 60 * (off * per + j),
                "kind": "share",
                "actor": f"a{j % 3}",
                "target": f"t{(off + j) % 5}",
            }
            for j in range(per)
        ]
        events += batch
        recorded = float(T0 + 60 * (off * per + per - 1))  # when its newest event happened
        raws.append(Raw(0, off, orjson.dumps(batch), recorded))
    return raws, events


async def check_boards(store: Store, events: list[dict[str, object]]) -> None:
    expected = compute(events)
    for board in BOARDS:
        rows = [r async for r in store.export(board)]
        assert_board_equal(board, rows, expected.get(board, {}))


# -- gaps behind a fence (pure) ------------------------------------------------------------


def test_no_gap_when_each_partition_goes_on_after_its_fence() -> None:
    # (messages behind a fence are redeliveries: skipped, not a gap)
    assert find_gap([(0, 3), (0, 4), (1, 0), (2, 7)], {0: 2, 2: 9}) is None


def test_a_fence_further_back_than_the_consumed_offsets_is_a_gap() -> None:
    chunk = [(0, 5), (0, 6), (1, 12), (1, 13), (3, 2)]
    assert find_gap(chunk, {0: 4, 1: 7, 3: 1}) == Gap(1, 8, 12)
    # no fence at all: from the log's start (Redis lost the partition, or a new namespace)
    assert find_gap([(2, 40)], {}) == Gap(2, 0, 40)
    # the lowest partition first, and the earliest offset after the fence, whatever the order
    assert find_gap([(5, 9), (4, 30), (4, 20)], {4: 9, 5: 2}) == Gap(4, 10, 20)


def test_offsets_the_log_was_read_through_are_no_gap() -> None:
    # a gap fill read 8..12 and found no 10, 11 (retention, transaction markers): not again
    assert find_gap([(1, 12)], {1: 9}, {1: (8, 12)}) is None
    # but a fence that went back further since (a second rollback) is a gap again
    assert find_gap([(1, 12)], {1: 3}, {1: (8, 12)}) == Gap(1, 4, 12)


# -- big envelopes in pieces (pure) --------------------------------------------------------


def envelope_events(n: int) -> list[dict[str, object]]:
    return [
        {"id": f"e{i}", "ts": T0 + i, "kind": "share", "actor": f"a{i % 7}", "target": f"t{i % 11}"}
        for i in range(n)
    ]


def plan(messages: list[Message], state: StoreState) -> Plan:
    return build_plan(
        messages,
        state,
        RULES,
        dedupe_horizon_s=7 * 86400,
        rebase_after_s=30 * 86400,
        max_future_s=300,
    )


def test_a_message_over_the_limit_comes_in_pieces() -> None:
    items = decode_message(orjson.dumps(envelope_events(250)), RULES.kinds)
    m = Message(3, 17, items, 5.0)
    pieces = split_message(m, 100)
    assert [(p.start, len(p.items), p.ends) for p in pieces] == [
        (0, 100, False),
        (100, 100, False),
        (200, 50, True),
    ]
    assert all((p.partition, p.offset, p.record_ts) == (3, 17, 5.0) for p in pieces)
    assert [e for p in pieces for e in p.items] == items
    assert split_message(m, 250) == [m]


def test_a_partly_applied_envelope_applies_exactly_the_rest() -> None:
    items = decode_message(orjson.dumps(envelope_events(250)), RULES.kinds)
    whole = Message(0, 4, items)
    first = plan(split_message(whole, 100)[:1], StoreState({0: PartitionState(3)}))
    (u,) = first.partitions
    assert (u.expected_fence, u.fence, u.expected_part, u.part) == (3, 3, None, (4, 100))
    assert first.stats["applied"] == 100
    # killed here: the envelope comes again, and is cut at other places (another limit, say)
    pieces = split_message(whole, 80)  # 0..79, 80..159, 160..239, 240..249
    state = StoreState({0: PartitionState(3, part=(4, 100))})
    assert plan(pieces[:1], state).empty  # its events were all in already
    second = plan(pieces[1:2], state)
    (u,) = second.partitions
    assert second.stats["applied"] == 60
    assert (u.fence, u.expected_part, u.part) == (3, (4, 100), (4, 160))
    last = plan(pieces[2:], StoreState({0: PartitionState(3, part=(4, 160))}))
    (u,) = last.partitions
    assert last.stats["applied"] == 90
    assert (u.fence, u.expected_part, u.part) == (4, (4, 160), None)
    # and redelivered after that, the envelope is behind the fence
    assert plan([whole], StoreState({0: PartitionState(4)})).empty


def test_a_piece_names_envelope_indices_in_its_dead_letters() -> None:
    events: list[Any] = envelope_events(10)
    events[7] = {"id": "bad"}
    items = decode_message(orjson.dumps(events), RULES.kinds)
    pieces = split_message(Message(0, 0, items), 4)
    letters = [d.index for p in pieces for d in plan([p], StoreState({})).dead]
    assert letters == [7]


def test_only_json_arrays_are_envelopes() -> None:
    assert is_envelope(b"[{}]") and is_envelope(b" \n\t[") and not is_envelope(b'{"a": 1}')
    assert not is_envelope(None) and not is_envelope(b"")


@integration
async def test_a_stale_copy_is_refused_reloaded_and_nothing_counts_twice(store: Store) -> None:
    raws, events = messages(30, 40)
    settings = WorkerSettings(max_events_per_apply=100)  # several chunks in flight per call
    a = Processor(store, RULES, settings, Letters())
    b = Processor(store, RULES, settings, Letters())
    await b.process(raws[:5])  # b loads partition 0 and applies offsets 0-4
    await a.process(raws[:20])  # a (fresh copy) applies 5-19: b's copy is now stale
    await b.process(raws)  # b's first apply is refused; it reloads and applies only 20-29
    expected = compute(events)
    for board in ("all", "1h", "24h", "7d", "decayed"):
        rows = [r async for r in store.export(board)]
        assert_board_equal(board, rows, expected.get(board, {}))
    stats = await store.stats()
    assert stats["applied"] == len(events) and stats["total"] == len(events)
    assert await store.fences() == {0: 29}


@integration
async def test_invalid_elements_reach_the_dead_letter_seam_once(store: Store) -> None:
    letters = Letters()
    p = Processor(store, RULES, WorkerSettings(), letters)
    good = {"id": "g", "ts": T0, "kind": "like", "actor": "x", "target": "y"}
    ahead = good | {"id": "f", "ts": T0 + 301}  # more than max_future_s after its record
    raws = [
        Raw(3, 0, orjson.dumps([good, {"id": "bad", "kind": "like"}, ahead]), float(T0)),
        Raw(3, 1, b"{nope", float(T0)),
    ]
    await p.process(raws)
    await p.process(raws)  # redelivery: behind the fence, nothing happens twice
    assert [(d.partition, d.offset, d.index, d.reason) for d in letters.letters] == [
        (3, 0, 1, "missing_field"),
        (3, 0, 2, "future"),
        (3, 1, None, "bad_json"),
    ]
    stats = await store.stats()
    assert (stats["invalid"], stats["future"], stats["dead_lettered"]) == (2, 1, 3)


@integration
async def test_a_rebuild_generation_makes_every_held_partition_reload(store: Store) -> None:
    """After a `kudos rebuild` switch (the pointer moved on), a chunk that mixes a partition the
    processor held with a newly assigned one reloads both: nothing is planned from a dropped copy."""
    raws, events = messages(10, 20)
    p = Processor(store, RULES, WorkerSettings(), Letters())
    await p.process(raws[:5])  # holds partition 0
    # a switch happened meanwhile, to a generation rebuilt with the same state
    g1 = Keys(store.prefix, 1)
    async for k in store.client.scan_iter(match=store.keys.pattern()):
        if store.keys.is_unscoped(k):
            await store.client.copy(k, g1.scoped + k[len(store.prefix) :])
    await store.client.set(store.key("live"), 1)
    moved = [Raw(1, r.offset, r.value, r.record_ts) for r in raws[5:]]  # partition 1 newly assigned
    await p.process([*raws[5:], *moved])
    assert await store.fences() == {0: 9, 1: 9}
    assert p.owned.generation == 1 and set(p.owned.partitions) == {0, 1}
    assert (await store.stats())["total"] == len(events) + len(events) // 2


# -- against real Redis: gaps, pieces, wrong partitions ------------------------------------


class Log:
    """The log-reader seam over a list of messages (what the topic holds)."""

    def __init__(self, raws: Sequence[Raw], page: int = 7) -> None:
        self.raws, self.page = list(raws), page
        self.reads: list[tuple[int, int, int]] = []

    async def read(self, partition: int, start: int, end: int) -> AsyncGenerator[Sequence[Raw]]:
        self.reads.append((partition, start, end))
        held = [r for r in self.raws if r.partition == partition and start <= r.offset < end]
        for i in range(0, len(held), self.page):
            yield held[i : i + self.page]


async def dump(store: Store) -> dict[str, bytes]:
    """Every key of the store's namespace as DUMP payloads (binary: read undecoded)."""
    keys = [k async for k in store.client.scan_iter(match=f"{store.prefix}:*")]
    out: dict[str, bytes] = {}
    pool = store.client.connection_pool
    conn = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        for k in keys:
            await conn.send_command("DUMP", k)
            out[k] = await conn.read_response(disable_decoding=True)
    finally:
        await pool.release(conn)
    return out


async def restore(store: Store, dumped: dict[str, bytes]) -> None:
    """Put the namespace back to ``dumped``, as Redis does when it loses its last writes."""
    keys = [k async for k in store.client.scan_iter(match=f"{store.prefix}:*")]
    if keys:
        await store.client.delete(*keys)
    for k, payload in dumped.items():
        await store.client.restore(k, 0, payload, replace=True)


@integration
async def test_a_rolled_back_fence_is_re_read_from_the_log_before_the_batch(store: Store) -> None:
    raws, events = messages(30, 20)
    log = Log(raws)
    p = Processor(store, RULES, WorkerSettings(max_events_per_apply=50), Letters(), log_reader=log)
    await p.process(raws[:10])
    before = await dump(store)
    await p.process(raws[10:20])
    await restore(store, before)  # Redis lost the applies of offsets 10..19
    await p.process(raws[20:])
    assert log.reads == [(0, 10, 20)]
    await check_boards(store, events)
    stats = await store.stats()
    assert stats["applied"] == len(events) and stats["total"] == len(events), stats
    assert await store.fences() == {0: 29}
    assert p.metrics.rewinds.value(partition="0") == 1
    assert p.metrics.rewound_messages.value(partition="0") == 10


@integration
async def test_a_second_rollback_over_a_re_read_gap_is_re_read_again(store: Store) -> None:
    """Redis loses the re-read applies too (AOF everysec loses exactly the newest writes): the
    same offsets are a gap again, never excused as 'the log lacks them'."""
    raws, events = messages(30, 20)
    log = Log(raws)
    p = Processor(store, RULES, WorkerSettings(max_events_per_apply=50), Letters(), log_reader=log)
    await p.process(raws[:10])
    before = await dump(store)
    await p.process(raws[10:20])
    await restore(store, before)
    await p.process(raws[20:25])  # the gap 10..19 is re-read
    await restore(store, before)  # and lost again, with 20..24
    p.owned.forget()  # as after any failed apply
    await p.process(raws[20:25])  # the same batch, retried
    await p.process(raws[25:])
    assert log.reads == [(0, 10, 20), (0, 10, 20)]
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)
    assert await store.fences() == {0: 29}


@integration
async def test_a_stale_copy_after_a_rebalance_is_no_gap(store: Store) -> None:
    """Another worker applied the partition while this one held an old copy (a rebalance gave it
    back): nothing is re-read from the log, nothing counts twice, no rewind is counted."""
    raws, events = messages(40, 5)
    log_a, log_b = Log(raws), Log(raws)
    a = Processor(store, RULES, WorkerSettings(), Letters(), log_reader=log_a)
    b = Processor(store, RULES, WorkerSettings(), Letters(), log_reader=log_b)
    await a.process(raws[:10])
    await b.process(raws[10:39])  # a rebalance: b consumed the partition from a's commit
    await a.process(raws[39:])  # it comes back to a, whose copy says fence 9
    assert log_a.reads == [] and log_b.reads == []
    assert a.metrics.rewinds.value(partition="0") == 0
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)


@integration
async def test_offsets_missing_from_the_log_are_accepted_once(store: Store) -> None:
    """A gap the log cannot fill (retention deleted its start) is read once, not forever."""
    raws, events = messages(20, 5)
    log = Log(raws[8:])
    p = Processor(store, RULES, WorkerSettings(), Letters(), log_reader=log)
    await p.process(raws[12:])  # a new namespace; the consumer's committed offset was 12
    assert log.reads == [(0, 0, 12)]
    await check_boards(store, events[8 * 5 :])
    assert await store.fences() == {0: 19}


@integration
async def test_a_big_envelope_is_applied_in_bounded_applies_and_resumes_exactly(
    store: Store,
) -> None:
    events = envelope_events(1_000)
    raw = Raw(0, 0, orjson.dumps(events), None)
    crashing = Processor(store, RULES, WorkerSettings(max_events_per_apply=100), Letters())
    sent = 0
    send_apply = store.send_apply

    async def dies_after_three(plan: Plan, *args: Any) -> Awaitable[float | None]:
        nonlocal sent
        sent += 1
        if sent > 3:
            raise ConnectionError("killed")
        return await send_apply(plan, *args)

    crashing.store = Store(store.client, store.prefix, RULES)
    crashing.store.send_apply = dies_after_three  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await crashing.process([raw])
    assert await store.fences() == {0: -1}  # (nothing whole yet)
    assert await store.client.hgetall(store.key("fencepart")) == {"0": "0:300"}
    p = Processor(store, RULES, WorkerSettings(max_events_per_apply=128), Letters())
    await p.process([raw])
    await check_boards(store, events)
    stats = await store.stats()
    assert stats["applied"] == 1_000 and stats["duplicate"] == 0, stats
    assert await store.fences() == {0: 0}
    assert await store.client.hgetall(store.key("fencepart")) == {}
    assert p.metrics.apply_events.count() == 6  # the other 700 events, ≤ 128 an apply


@integration
async def test_envelope_events_of_other_partitions_are_dead_lettered(store: Store) -> None:
    events = envelope_events(40)
    home = partition_for(b"t0", 4)
    letters = Letters()
    p = Processor(store, RULES, WorkerSettings(), letters, partitions=4)
    await p.process([Raw(home, 0, orjson.dumps(events), None)])
    wrong = [i for i, e in enumerate(events) if partition_for(str(e["target"]).encode(), 4) != home]
    assert wrong and len(wrong) < len(events)
    assert [(d.index, d.reason) for d in letters.letters] == [(i, "wrong_partition") for i in wrong]
    stats = await store.stats()
    assert stats["total"] == 40 and stats["invalid"] == len(wrong), stats
    assert p.metrics.dead_letters.value(reason="wrong_partition") == len(wrong)
    # a single event is where its producer's partitioner put it (by key): not checked
    one = {"id": "x", "ts": T0, "kind": "like", "actor": "a", "target": "t0"}
    await p.process([Raw((home + 1) % 4, 0, orjson.dumps(one), None)])
    assert (await store.stats())["applied"] == 40 - len(wrong) + 1


# -- overlap: the last apply left in flight across calls (the worker's loop) ----------------


@integration
async def test_an_apply_left_in_flight_is_settled_by_the_next_call(store: Store) -> None:
    """With ``overlap`` a call returns with its last apply on the wire; the next call plans its
    batch first, then takes that answer; every event counts once, and the metrics too."""
    raws, events = messages(30, 40)
    proc = Processor(store, RULES, WorkerSettings(max_events_per_apply=100), Letters())
    await proc.process(raws[:10], overlap=True)
    assert proc.in_flight
    await proc.process(raws[10:], overlap=True)
    await proc.flush()
    assert not proc.in_flight
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)
    assert await store.fences() == {0: 29}
    applied = proc.metrics.events.value(outcome="applied")
    assert applied == len(events)


@integration
async def test_an_apply_refused_after_its_call_returned_is_planned_again(store: Store) -> None:
    """Another worker moved the fence: the apply a call left in flight is refused, and flush
    plans its messages again from what Redis holds (nothing lost, nothing twice)."""
    raws, events = messages(25, 40)
    settings = WorkerSettings(max_events_per_apply=5000)  # one apply per call
    a = Processor(store, RULES, settings, Letters())
    b = Processor(store, RULES, settings, Letters())
    await b.process(raws[:5])
    await a.process(raws[:20])  # b's copy is stale now
    await b.process(raws, overlap=True)  # its one apply is refused once it lands
    assert b.in_flight
    await b.flush()
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)
    assert await store.fences() == {0: 24}


@integration
async def test_a_call_that_fails_retries_the_messages_of_the_apply_before_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply left in flight never reached Redis (a connection lost): the next call fails,
    and its retry (the worker's loop calls again with the same batch) applies those messages
    too, though the caller acknowledged them already."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    raws, events = messages(20, 40)
    proc = Processor(store, RULES, WorkerSettings(max_events_per_apply=5000), Letters())
    real = store.send_apply
    lost = False

    async def send_apply(plan: Plan, max_rows: int = 0) -> Awaitable[float | None]:
        nonlocal lost
        if not lost:
            lost = True

            async def never_sent() -> float | None:
                raise RedisConnectionError("connection lost before the apply was sent")

            return never_sent()
        return await real(plan, max_rows)

    monkeypatch.setattr(store, "send_apply", send_apply)
    await proc.process(raws[:10], overlap=True)
    with pytest.raises(RedisConnectionError):
        await proc.process(raws[10:], overlap=True)
    await proc.process(raws[10:], overlap=True)
    await proc.flush()
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)
    assert await store.fences() == {0: 19}


@integration
async def test_catch_up_applies_what_the_log_holds_past_the_fences(store: Store) -> None:
    """Messages acknowledged but never applied (no batch will bring them again): catch_up reads
    them from the log up to the end it is given, and only those."""
    raws, events = messages(20, 40)
    log = Log(raws)
    done = Processor(store, RULES, WorkerSettings(), Letters())
    await done.process(raws[:12])
    proc = Processor(store, RULES, WorkerSettings(), Letters(), log_reader=log)
    assert await proc.catch_up({0: 12}) == []  # (nothing past the fence: nothing read)
    assert log.reads == []
    assert await proc.catch_up({0: 20}) == [0]
    assert log.reads[0] == (0, 12, 20)
    await check_boards(store, events)
    assert (await store.stats())["applied"] == len(events)
    assert await store.fences() == {0: 19}
