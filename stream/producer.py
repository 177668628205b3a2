"""Producing interactions: partitioning by target, envelopes, rate limiting, and waiting until
every produced message has been applied (by watching the per-partition fences in Redis)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

from leaderboard.settings import Settings
from leaderboard.store import Store
from stream.formats import Item, partition_key
from stream.topics import bootstrap, ensure_topics


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so envelopes and keyed single events agree."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


@dataclass
class Produced:
    events: int = 0
    messages: int = 0
    #: partition → offset of the last message produced there
    end_offsets: dict[int, int] = field(default_factory=dict)


class Progress:
    """A one-line progress meter on stderr (only when it is a terminal, or when forced)."""

    def __init__(self, label: str, total: int | None, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.start = time.monotonic()
        self.last = 0.0

    def update(self, done: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last < 0.25):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        if self.total:
            pct = 100.0 * done / self.total
            bar = "#" * int(pct / 4)
            text = f"\r{self.label} [{bar:<25}] {pct:5.1f}% {done:,}/{self.total:,} {rate:,.0f}/s"
        else:
            text = f"\r{self.label} {done:,} {rate:,.0f}/s"
        sys.stderr.write(text)
        sys.stderr.flush()

    def update_with_total(self, done: int, total: int) -> None:
        self.total = total
        self.update(done)

    def close(self, done: int) -> None:
        self.update(done, force=True)
        if self.enabled:
            sys.stderr.write("\n")


async def produce(
    settings: Settings,
    items: Iterable[Item],
    *,
    envelope: int = 1,
    rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> Produced:
    """Produce ``items`` to the interactions topic.

    ``envelope > 1`` groups up to that many events of the same partition, in log order, into one
    JSON array. Unreadable lines go alone, as they are.
    """
    await ensure_topics(settings)
    n_parts = settings.broker.partitions
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings),
        acks="all",
        enable_idempotence=settings.broker.idempotent_producer,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=16 << 20,
    )
    await producer.start()
    out = Produced()
    pending: list[asyncio.Future[object]] = []
    started = time.monotonic()
    topic = settings.broker.topic

    async def drain(limit: int) -> None:
        while len(pending) > limit:
            batch = pending[: len(pending) - limit]
            del pending[: len(batch)]
            for md in await asyncio.gather(*batch):
                p, o = md.partition, md.offset  # type: ignore[attr-defined]
                if o > out.end_offsets.get(p, -1):
                    out.end_offsets[p] = o

    async def send(value: bytes, key: bytes, n_events: int) -> None:
        p = partition_for(key, n_parts)
        fut = await producer.send(topic, value=value, key=key, partition=p)
        pending.append(fut)
        out.messages += 1
        out.events += n_events
        if on_progress:
            on_progress(out.events)
        if rate:
            ahead = out.events / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        if len(pending) >= 20_000:
            await drain(5_000)

    try:
        # envelope > 1: one buffer per partition, sent when it holds ``envelope`` events; every
        # ``envelope × partitions`` lines all buffers are sent, so a quiet partition is not held back
        buffers: dict[int, list[Item]] = {}
        keys: dict[int, bytes] = {}
        since_flush = 0

        async def flush(p: int) -> None:
            events = buffers.pop(p, None)
            if events:
                await send(orjson.dumps(events), keys.pop(p), len(events))

        for item in items:
            key = partition_key(item)
            if envelope <= 1 or isinstance(item, bytes):
                # unreadable lines go alone, as they are, so the worker dead-letters just them
                body = item if isinstance(item, bytes) else orjson.dumps(item)
                await send(body, key, 1)
                continue
            p = partition_for(key, n_parts)
            buf = buffers.setdefault(p, [])
            buf.append(item)
            keys.setdefault(p, key)
            if len(buf) >= envelope:
                await flush(p)
            since_flush += 1
            if since_flush >= envelope * n_parts:
                for q in list(buffers):
                    await flush(q)
                since_flush = 0
        for q in list(buffers):
            await flush(q)
        await drain(0)
    finally:
        await producer.stop()
    return out


async def wait_applied(
    store: Store,
    end_offsets: dict[int, int],
    *,
    on_progress: Callable[[int, int], None] | None = None,
    stall_warning_s: float = 30.0,
) -> None:
    """Return once every partition's fence has reached the offset produced last there."""
    target = sum(o + 1 for o in end_offsets.values())
    last_change = time.monotonic()
    last_done = -1
    warned = False
    while True:
        fences = await store.fences()
        done = sum(min(fences.get(p, -1), o) + 1 for p, o in end_offsets.items())
        if on_progress:
            on_progress(done, target)
        if all(fences.get(p, -1) >= o for p, o in end_offsets.items()):
            return
        if done != last_done:
            last_done, last_change, warned = done, time.monotonic(), False
        elif not warned and time.monotonic() - last_change > stall_warning_s:
            sys.stderr.write(
                f"\nno progress for {stall_warning_s:.0f} s ({done:,}/{target:,} messages applied): "
                "is a worker running? (`kudos up`, or `kudos worker`)\n"
            )
            warned = True
        await asyncio.sleep(0.1)
