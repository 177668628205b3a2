"""Issue 12, findings 2 and 6 on real servers: a Redis that comes back with older fences (AOF
``everysec``, a fail-over to a lagging replica) loses nothing, without a worker restart; an
envelope of more events than one apply may hold is applied in bounded pieces, exactly, even when
the worker is killed between two of them; and an envelope event on another partition than its
target's is dead-lettered as ``wrong_partition``."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from broker.producer import partition_for
from kudos import servers
from tests.conftest import DATA, Namespace, configure
from tests.eventually import eventually
from tests.oracle import assert_board_equal, compute, read_edges
from tests.web.live import Samples, scrape, value

pytestmark = pytest.mark.integration

HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
BOARDS = ("all", "1h", "24h", "7d", "decayed")


def no_bait(ns: Namespace, **worker: Any) -> int:
    """Settings for comparing with the oracle (no bait throttle); a metrics port; returns it."""
    port = servers.free_port()
    configure(
        ns,
        bait=dataclasses.replace(ns.settings.bait, enabled=False),
        worker=dataclasses.replace(ns.settings.worker, metrics_port=port, **worker),
    )
    return port


async def check_boards(ns: Namespace, events: list[dict[str, Any]]) -> None:
    expected = compute(events)
    for board in BOARDS:
        assert_board_equal(board, await ns.export(board), expected.get(board, {}))


async def snapshot(ns: Namespace) -> dict[str, bytes]:
    """Every key of the namespace, as DUMP payloads (a raw client: they are binary)."""
    client = aioredis.Redis.from_url(ns.settings.redis.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{ns.settings.redis.prefix}:*")]
        return {k.decode(): await client.dump(k) for k in keys}
    finally:
        await client.aclose()


async def roll_back(ns: Namespace, dumped: dict[str, bytes]) -> None:
    """Put the namespace back to ``dumped``, as Redis does when it loses its last writes."""
    client = aioredis.Redis.from_url(ns.settings.redis.url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{ns.settings.redis.prefix}:*")]
        pipe = client.pipeline(transaction=True)
        if keys:
            pipe.delete(*keys)
        for k, payload in dumped.items():
            pipe.restore(k, 0, payload, replace=True)
        await pipe.execute()
    finally:
        await client.aclose()


def metrics(port: int) -> Samples:
    try:
        return scrape(port)[1]
    except OSError:
        return {}


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_a_redis_rollback_is_re_read_without_a_restart(namespace: Namespace) -> None:
    ns = namespace
    port = no_bait(ns)
    events = read_edges(HIGGS, "higgs", 9_000)
    first, lost, after = events[:3_000], events[3_000:6_000], events[6_000:]
    worker = ns.start_worker()
    await ns.wait(await ns.replay(first, envelope=40))
    dumped = await snapshot(ns)
    fences_then = await ns.store.fences()
    produced = await ns.replay(lost, envelope=40)
    await ns.wait(produced)
    await roll_back(ns, dumped)  # Redis forgot the applies of `lost`; Kafka committed them
    assert await ns.store.fences() == fences_then
    produced = await ns.replay(after, envelope=40)
    # every partition gets new messages, so each finds its fence behind what it consumed
    assert set(produced.end_offsets) == set(range(ns.settings.broker.partitions))
    await ns.wait(produced)
    await check_boards(ns, events)
    stats = await ns.store.stats()
    assert stats["total"] == len(events), stats
    assert stats["duplicate"] == 0, stats
    assert worker.poll() is None and len(ns.workers) == 1, "the worker was restarted"
    seen = await eventually(
        lambda: metrics(port), what="the worker's /metrics", details=ns.worker_logs
    )
    assert total(seen, "kudos_worker_rewinds_total") >= 1, seen
    assert total(seen, "kudos_worker_rewound_messages_total") >= 1, seen
    assert "re-reading" in ns.worker_logs()


async def test_a_rollback_no_message_follows_is_caught_up_from_the_log(
    namespace: Namespace,
) -> None:
    """Redis lost applies and no message comes after them to show the gap (or a worker died
    after Redis refused an apply whose batch it had acknowledged): with no batch for a while
    and its fences behind the log's end, the worker reads the rest from the log by itself."""
    ns = namespace
    no_bait(ns)
    events = read_edges(HIGGS, "higgs", 6_000)
    worker = ns.start_worker()
    await ns.wait(await ns.replay(events[:3_000], envelope=40))
    dumped = await snapshot(ns)
    produced = await ns.replay(events[3_000:], envelope=40)
    await ns.wait(produced)
    await roll_back(ns, dumped)
    await ns.wait(produced, timeout=60)  # (nothing more is produced)
    await check_boards(ns, events)
    stats = await ns.store.stats()
    assert stats["total"] == len(events) and stats["duplicate"] == 0, stats
    assert worker.poll() is None and len(ns.workers) == 1, "the worker was restarted"
    assert "no message came" in ns.worker_logs()


async def test_a_huge_envelope_is_applied_in_bounded_pieces(namespace: Namespace) -> None:
    ns = namespace
    port = no_bait(ns, max_events_per_apply=100)
    events = read_edges(HIGGS, "higgs", 4_000)
    # one partition, so that the whole slice travels in envelopes of 1,000 events
    configure(ns, broker=dataclasses.replace(ns.settings.broker, partitions=1))
    ns.start_worker()
    produced = await ns.replay(events, envelope=1_000)
    assert produced.messages == 4
    await ns.wait(produced)
    await check_boards(ns, events)
    assert (await ns.store.stats())["total"] == len(events)
    seen = await eventually(lambda: metrics(port), what="the worker's /metrics")
    # no apply held more than 100 events
    assert value(seen, "kudos_worker_apply_events_bucket", le="100") == value(
        seen, "kudos_worker_apply_events_count"
    ), seen
    assert value(seen, "kudos_worker_apply_events_count") >= 40


async def test_sigkill_between_pieces_of_an_envelope_applies_the_rest_exactly(
    namespace: Namespace,
) -> None:
    """The worker is killed while a partly applied envelope's fence says "offset X, first i
    events": the restarted worker applies exactly the rest of it."""
    ns = namespace
    no_bait(ns, max_events_per_apply=50)
    configure(ns, broker=dataclasses.replace(ns.settings.broker, partitions=1))
    events = read_edges(HIGGS, "higgs", 12_000)
    worker = ns.start_worker()
    producing = asyncio.create_task(ns.replay(events, envelope=3_000))

    async def partly_applied() -> bool:
        return bool(await ns.store.client.hgetall(ns.store.key("fencepart")))

    await eventually(partly_applied, timeout=60, interval=0.005, details=ns.worker_logs)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    part = await ns.store.client.hgetall(ns.store.key("fencepart"))
    assert part, "the kill landed after the envelope"
    ns.start_worker()
    produced = await producing
    await ns.wait(produced)
    await check_boards(ns, events)
    stats = await ns.store.stats()
    assert stats["total"] == len(events) and stats["duplicate"] == 0, stats
    assert await ns.store.client.hgetall(ns.store.key("fencepart")) == {}


async def test_an_envelope_event_on_the_wrong_partition_is_dead_lettered(
    namespace: Namespace,
) -> None:
    ns = namespace
    port = no_bait(ns)
    n = ns.settings.broker.partitions
    targets = [f"user{i}" for i in range(40)]
    home = partition_for(targets[0].encode(), n)
    events = [
        {"id": f"e{i}", "ts": 1_700_000_000 + i, "kind": "share", "actor": "fan", "target": t}
        for i, t in enumerate(targets)
    ]
    right = [e for e in events if partition_for(str(e["target"]).encode(), n) == home]
    wrong = [e for e in events if e not in right]
    assert right and wrong
    from broker.producer import Message, SharedProducer

    producer = SharedProducer(ns.settings, timeout_s=30)
    ns.start_worker()
    try:
        # one envelope holding every target, sent to the partition of the first one
        await producer.send([Message(home, b"user0", orjson.dumps(events), len(events))])
    finally:
        await producer.close()

    async def counted() -> dict[str, int] | None:
        stats = await ns.store.stats()
        return stats if stats["total"] == len(events) else None

    stats = await eventually(counted, timeout=60, details=ns.worker_logs)
    assert stats["applied"] == len(right) and stats["dead_lettered"] == len(wrong), stats
    assert {m for _, m, _ in await ns.export("all")} == {e["target"] for e in right}
    seen = await eventually(lambda: metrics(port), what="the worker's /metrics")
    assert value(seen, "kudos_worker_dead_letters_total", reason="wrong_partition") == len(wrong)
