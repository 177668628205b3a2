"""Bait evidence across partitions, through the events log: the processor produces the evidence of
a throttle to every other partition before it applies the batch that decided it, and retries the
batch when that fails (real Valkey, the producer faked at its typed seam); then the whole stack
(Tansu, Valkey, a real `kudos worker`): a farm throttled on one partition is flagged on another
partition's post, because the worker wrote the evidence into that partition's log."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition

from broker.producer import partition_for
from broker.topics import bootstrap
from leaderboard.bait import MARKER, BaitParams, Evidence
from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw, fan_out
from tests.conftest import Namespace, Servers, configure
from tests.eventually import eventually
from tests.kudos.test_cli import kudos
from tests.leaderboard.bait._streams import genuine
from tests.stream.test_bait import youtube

pytestmark = pytest.mark.integration

RULES = ScoringRules.load()
T0 = 1_700_000_000
PARTITIONS = 4
BOTS = tuple(f"bot{i}" for i in range(30))


def test_each_record_goes_to_every_partition_but_its_source() -> None:
    a = Evidence.of("p:x", 1.0, "comments", ("u",))
    b = Evidence.of("p:y", 2.0, "comments", ("v",))
    assert fan_out([(2, a), (0, b)], 4) == [(0, a), (1, a), (3, a), (1, b), (2, b), (3, b)]
    assert fan_out([(0, a)], 1) == []  # a topic of one partition: nobody else to tell


# -- the processor, with the producer at its seam -------------------------------------------------


class Letters:
    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        raise AssertionError(f"nothing here is a dead letter: {letters}")


class Producer:
    """The evidence seam: records what it was given and the fences Redis held at that moment;
    refuses the first ``fail`` calls as a broker would."""

    def __init__(self, store: Store, fail: int = 0) -> None:
        self.store, self.fail = store, fail
        self.calls: list[list[tuple[int, Evidence]]] = []
        self.fences: list[dict[int, int]] = []

    async def __call__(self, records: Sequence[tuple[int, Evidence]]) -> None:
        self.fences.append(await self.store.fences())
        self.calls.append(list(records))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the broker did not acknowledge")


@pytest_asyncio.fixture
async def store(real_servers: Servers) -> AsyncIterator[Store]:
    s = Store.connect(real_servers.redis_url, f"evid-{uuid.uuid4().hex}", RULES)
    yield s
    await s.close()


def flagged_farm(p: int) -> list[Raw]:
    """Partition ``p``'s log: evidence naming the farm (from another partition), a post, then
    the farm's 30 comments without text."""
    seed = Evidence.of("p:tea", float(T0), "comments", BOTS)
    raws = [Raw(p, 0, orjson.dumps(seed.to_json()), float(T0 + 60))]
    events: list[dict[str, Any]] = [
        {"id": "q-post", "ts": T0 + 600, "kind": "post", "actor": "quiz", "target": "quiz"}
    ]
    events += [
        {"id": f"q{i}", "ts": T0 + 610 + 5 * i, "kind": "comment", "actor": b, "target": "quiz"}
        for i, b in enumerate(BOTS)
    ]
    for e in events:
        e["post"] = "q"
        raws.append(Raw(p, len(raws), orjson.dumps(e), float(e["ts"])))
    return raws


def processor(store: Store, sink: Producer, **worker: Any) -> Processor:
    return Processor(
        store,
        RULES,
        WorkerSettings(**worker),
        Letters(),
        bait=BaitParams(),
        partitions=PARTITIONS,
        evidence=sink,
    )


def throttles(records: list[tuple[int, Evidence]]) -> list[tuple[int, Evidence]]:
    return [(q, e) for q, e in records if e.kind == "comments"]


def decided_at(records: list[tuple[int, Evidence]], raws: list[Raw]) -> int:
    """The offset of the comment at which the throttle was decided (its ts is the record's)."""
    (at,) = {e.at for _, e in records}
    return next(r.offset for r in raws if orjson.loads(r.value or b"{}").get("ts") == at)


async def test_evidence_is_produced_to_the_other_partitions_before_its_batch_applies(
    store: Store,
) -> None:
    raws = flagged_farm(2)
    sink = Producer(store)
    # small applies: the decision falls in a later chunk, planned while an earlier one applies
    proc = processor(store, sink, max_events_per_apply=4)
    await proc.process(raws)
    (i,) = [i for i, c in enumerate(sink.calls) if any(e.kind == "comments" for _, e in c)]
    records = throttles(sink.calls[i])
    assert sorted(q for q, _ in records) == [0, 1, 3]
    (record,) = {e for _, e in records}
    assert record.source == "p:q" and set(record.actors) <= set(BOTS)
    # produced before the apply of the message that decided: the fence was still behind it
    assert sink.fences[i].get(2, -1) < decided_at(records, raws)
    assert await store.fences() == {2: len(raws) - 1}
    # the farm's comments were throttled (flagged by the evidence in partition 2's own log)
    (alert,) = await store.alerts(10)
    assert alert["post"] == "q" and "flagged_commenters" in alert["reasons"]
    assert proc.metrics.evidence.value(direction="received") == 1
    assert proc.metrics.evidence.value(direction="sent") == sum(len(c) for c in sink.calls)


async def test_a_failed_produce_applies_nothing_and_the_retry_sends_the_same_records(
    store: Store,
) -> None:
    raws = flagged_farm(1)
    sink = Producer(store, fail=1)
    proc = processor(store, sink)
    with pytest.raises(ConnectionError):
        await proc.process(raws)  # the worker's loop retries the batch on this
    assert await store.fences() == {} and await store.alerts(10) == []
    await proc.process(raws)
    first, second = sink.calls
    assert first == second  # the same decision, the same record ids: receivers drop the repeat
    assert sorted(q for q, _ in throttles(first)) == [0, 2, 3]
    assert await store.fences() == {1: len(raws) - 1}
    assert len(await store.alerts(10)) == 1
    # a redelivery of the applied batch decides nothing again and sends nothing
    await proc.process(raws)
    assert len(sink.calls) == 2


# -- the whole stack ----------------------------------------------------------------------------


def other_name(partition: int, prefix: str) -> str:
    """A target name of another partition than ``partition``."""
    return next(
        f"{prefix}{i}"
        for i in range(100)
        if partition_for(f"{prefix}{i}".encode(), PARTITIONS) != partition
    )


async def evidence_in(ns: Namespace, partition: int) -> list[dict[str, Any]]:
    """The evidence records in one partition of the events topic, as they are in its log."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(ns.settings), group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tp = TopicPartition(ns.settings.broker.topic, partition)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(15):
            while await consumer.position(tp) < end:
                for r in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                    value = orjson.loads(r.value)
                    if isinstance(value, dict) and MARKER in value:
                        out.append(value)
        return out
    finally:
        await consumer.stop()


async def test_a_farm_throttled_on_one_partition_is_flagged_on_another(
    namespace: Namespace,
) -> None:
    ns = namespace
    configure(ns, worker=WorkerSettings(batch_messages=20))
    home = partition_for(b"baiter", PARTITIONS)
    host = other_name(home, "host")
    away = partition_for(host.encode(), PARTITIONS)
    rng = random.Random(7)
    spam = youtube(True)
    bots = [f"bot{i}" for i in range(60)]
    campaign: list[dict[str, Any]] = [
        {"id": "tea", "ts": T0, "kind": "post", "actor": "baiter", "target": "baiter"}
        | {"post": "tea", "text": "Tea or coffee? Comment below! ☕"}
    ]
    campaign += [
        {"id": f"c{i}", "ts": T0 + 60 + 6 * i, "kind": "comment", "actor": bots[i % 60]}
        | {"target": "baiter", "post": "tea", "text": rng.choice(spam)}
        for i in range(120)
    ]
    ns.start_worker()
    await ns.wait(await ns.replay(campaign, envelope=10))
    (alert,) = await ns.store.alerts(10, member="baiter")
    assert alert["state"] == "throttled"

    # the worker wrote the throttle's evidence into every other partition's log, not its own
    async def landed() -> list[dict[str, Any]] | None:
        got = [e for e in await evidence_in(ns, away) if e["kind"] == "comments"]
        return got or None

    (record,) = await eventually(landed, what=f"evidence in partition {away}'s log")
    assert record["source"] == "p:tea" and set(record["actors"]) <= set(bots)
    for p in range(PARTITIONS):
        mine = [e for e in await evidence_in(ns, p) if e["id"] == record["id"]]
        assert len(mine) == (0 if p == home else 1), p

    # the same accounts, comments without any text, on a post of the other partition: only their
    # history can make this bait, and that history came through the log
    flood: list[dict[str, Any]] = [
        {"id": "quiz", "ts": T0 + 3000, "kind": "post", "actor": host, "target": host}
        | {"post": "quiz"}
    ]
    flood += [
        {"id": f"f{i}", "ts": T0 + 3010 + 5 * i, "kind": "comment", "actor": actor}
        | {"target": host, "post": "quiz"}
        for i, actor in enumerate(record["actors"][:30])
    ]
    await ns.wait(await ns.replay(flood, envelope=10))
    (flagged,) = await ns.store.alerts(10, member=host)
    assert flagged["post"] == "quiz" and flagged["state"] == "throttled"
    assert "flagged_commenters" in flagged["reasons"]
    assert flagged["signals"]["flagged_commenters"] >= 0.5


async def test_a_rings_first_post_elsewhere_pays_back_once_the_ring_is_proven(
    namespace: Namespace,
) -> None:
    """A ring of accounts with a past comments on one member's post (nothing to compare it with:
    it counts in full), then on another member's post on another partition. That second post is
    throttled in lockstep with the first (whose first accounts reached it through the log); its
    evidence says "ring", and the first post's partition, reading it in its own log, throttles
    the first post retroactively and takes back what its comments counted (all of them: the first
    four too, made by the ring's accounts that the record names), on
    every board, recorded as withheld and explained."""
    ns = namespace
    configure(ns, worker=WorkerSettings(batch_messages=20))
    first_author = "ringA"
    second_author = other_name(partition_for(first_author.encode(), PARTITIONS), "ringB")
    ring = [f"rm{i}" for i in range(23)]
    history: list[dict[str, Any]] = [
        {"id": f"h{i}", "ts": T0 - 86400 + i, "kind": "like", "actor": a, "target": "elsewhere"}
        for i, a in enumerate(ring)
    ]

    def post(author: str, name: str, t0: int, k: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"id": name, "ts": t0, "kind": "post", "actor": author, "target": author}
            | {"post": name, "text": f"My thoughts on topic {k}"}
        ]
        out += [
            {"id": f"{name}-{i}", "ts": t0 + 120 + 90 * i + (i * i * 37) % 80, "kind": "comment"}
            | {"actor": a, "target": author, "post": name, "text": genuine(31 * k + i)}
            for i, a in enumerate(ring)
        ]
        return out

    ns.start_worker()
    await ns.wait(await ns.replay([*history, *post(first_author, "rp0", T0, 0)], envelope=10))
    assert await ns.store.alerts(10, member=first_author) == []
    full = 23 * RULES.weights_mp["comment"]
    assert await ns.store.client.zscore(ns.store.key("board", "all"), first_author) == full

    await ns.wait(await ns.replay(post(second_author, "rp1", T0 + 3 * 3600, 1), envelope=10))
    (second,) = await ns.store.alerts(10, member=second_author)
    assert "lockstep" in second["reasons"]

    async def retroactive() -> dict[str, Any] | None:
        got = await ns.store.alerts(10, member=first_author)
        return got[0] if got else None

    retro = await eventually(retroactive, what="the first post's retroactive throttle")
    assert retro["post"] == "rp0" and retro["reasons"] == ["lockstep", "retroactive"]
    assert retro["retroactive_at"] == second["detected_at"]
    first_times = [e["ts"] for e in post(first_author, "rp0", T0, 0)[1:]]
    assert retro["clawed_back"] == first_times  # (times only: the accounts stay private)
    mult = round(retro["multiplier"] * 1000)
    comment = RULES.weights_mp["comment"]
    kept = 23 * (comment * mult // 1000)
    for board in ("all", "24h", "7d"):
        assert await ns.store.client.zscore(ns.store.key("board", board), first_author) == kept
    explanation = await ns.store.explanation(first_author)
    assert explanation is not None
    line = explanation.kinds["comment"]
    assert (line.points_mp, line.withheld_mp, line.count) == (kept, full - kept, 23)
    (throttle,) = explanation.throttles
    assert throttle.post == "rp0" and throttle.withheld_mp == full - kept
    assert (throttle.retroactive_at, throttle.clawed_back) == (second["detected_at"], 23)

    # a rebuild from the log decides the same: the ring record is in the first post's partition's
    # log, read at the same place (the rebuild itself produces no evidence)
    ns.stop_workers()
    boards = ("all", "24h", "7d", "decayed")
    before = {b: await ns.export(b) for b in boards}
    out = await asyncio.to_thread(kudos, ns, "rebuild", "--yes")
    assert out.returncode == 0 and "switched" in out.stderr, out.stderr
    assert await ns.store.pointer() == 1  # (the boards are the rebuilt generation's)
    after = {b: await ns.export(b) for b in boards}
    # (milli-point boards exactly; decayed values are float sums, whose last bit depends on how
    # the events fell into batches, the workers' and the rebuild's)
    assert {b: rows for b, rows in after.items() if b != "decayed"} == {
        b: rows for b, rows in before.items() if b != "decayed"
    }
    assert [(r, m) for r, m, _ in after["decayed"]] == [(r, m) for r, m, _ in before["decayed"]]
    assert [float(v) for *_, v in after["decayed"]] == pytest.approx(
        [float(v) for *_, v in before["decayed"]], rel=1e-12
    )
    (again,) = await ns.store.alerts(10, member=first_author)
    assert (
        again["clawed_back"] == retro["clawed_back"]
        and again["retroactive_at"] == retro["retroactive_at"]
    )
