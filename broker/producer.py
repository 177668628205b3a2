"""Producing interactions: partitioning by target, envelopes, rate limiting, and waiting until
every produced message has been applied (by watching the per-partition fences in Redis).

``produce`` is the replay path (one producer per run); :class:`SharedProducer` is the
long-lived one of the web process's HTTP ingest. Both build their messages with
:class:`Envelopes`."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

from broker.formats import Item, partition_key
from broker.topics import bootstrap, ensure_topics
from leaderboard import redact
from leaderboard.bait.evidence import MARKER
from leaderboard.errors import BrokerUnavailable, StackError
from leaderboard.settings import Settings
from leaderboard.store import Store

if TYPE_CHECKING:
    from leaderboard.store.shards import Shards

log = logging.getLogger("kudos.producer")


def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (murmur2), so envelopes and keyed single events agree."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


def new_producer(settings: Settings) -> AIOKafkaProducer:
    """The producer of interactions: every replica acknowledges (``acks=all``), idempotent when
    ``broker.idempotent_producer`` is on (Apache Kafka; the embedded broker cannot), and
    requests big enough for large envelopes. Not started."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap(settings),
        acks="all",
        enable_idempotence=settings.broker.idempotent_producer,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=16 << 20,
    )


class Message(NamedTuple):
    """One Kafka message to produce: a single event or an envelope (JSON array) of events."""

    partition: int
    key: bytes
    value: bytes
    #: events it carries (an unreadable line counts as one)
    events: int


class Envelopes:
    """Groups events into messages by partition of their key, in log order (pure, no I/O).

    Up to ``size`` events of one partition go into one envelope; every ``size × partitions`` events
    all buffers are emitted, so a quiet partition is not held back behind busy ones. With
    ``max_bytes`` an envelope is also closed before it grows past that many bytes of JSON (a
    single larger event still goes, alone), so it stays under the broker's message size limit
    (Apache Kafka: about 1 MiB by default). With ``size <= 1`` every event goes alone, and so do
    unreadable lines (``bytes`` items), as they are, so the worker dead-letters just them, and
    bait evidence records (a ``kudos replay`` of a log that holds some: they travel alone, see
    :mod:`leaderboard.bait.evidence`; in an envelope the worker would dead-letter them).

    Feed it with :meth:`add` (messages ready now) and end with :meth:`flush` (the rest).
    """

    def __init__(self, partitions: int, size: int, *, max_bytes: int | None = None) -> None:
        self.partitions, self.size, self.max_bytes = partitions, size, max_bytes
        self._buffers: dict[int, list[Item]] = {}
        self._keys: dict[int, bytes] = {}
        self._bytes: dict[int, int] = {}
        self._since_flush = 0

    def add(self, item: Item) -> list[Message]:
        key = partition_key(item)
        p = partition_for(key, self.partitions)
        if self.size <= 1 or isinstance(item, bytes) or MARKER in item:
            body = item if isinstance(item, bytes) else orjson.dumps(item)
            return [Message(p, key, body, 1)]
        out: list[Message] = []
        if self.max_bytes is not None:
            size = len(orjson.dumps(item)) + 1  # its comma
            if p in self._buffers and self._bytes[p] + size > self.max_bytes:
                out.extend(self._emit(p))
            self._bytes[p] = self._bytes.get(p, 1) + size
        buf = self._buffers.setdefault(p, [])
        buf.append(item)
        self._keys.setdefault(p, key)
        if len(buf) >= self.size:
            out.extend(self._emit(p))
        self._since_flush += 1
        if self._since_flush >= self.size * self.partitions:
            out.extend(self.flush())
        return out

    def flush(self) -> list[Message]:
        """Every buffered event, one envelope per partition."""
        self._since_flush = 0
        return [m for p in list(self._buffers) for m in self._emit(p)]

    def _emit(self, p: int) -> list[Message]:
        events = self._buffers.pop(p, None)
        self._bytes.pop(p, None)
        if not events:
            return []
        return [Message(p, self._keys.pop(p), orjson.dumps(events), len(events))]


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
    JSON array (see :class:`Envelopes`). Unreadable lines go alone, as they are.
    """
    await ensure_topics(settings)
    producer = new_producer(settings)
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

    async def send(message: Message) -> None:
        fut = await producer.send(
            topic, value=message.value, key=message.key, partition=message.partition
        )
        pending.append(fut)
        out.messages += 1
        out.events += message.events
        if on_progress:
            on_progress(out.events)
        if rate:
            ahead = out.events / rate - (time.monotonic() - started)
            if ahead > 0:
                await asyncio.sleep(ahead)
        if len(pending) >= 20_000:
            await drain(5_000)

    try:
        envelopes = Envelopes(settings.broker.partitions, envelope)
        for item in items:
            for message in envelopes.add(item):
                await send(message)
        for message in envelopes.flush():
            await send(message)
        await drain(0)
    finally:
        await producer.stop()
    return out


class SharedProducer:
    """One long-lived producer for a process that produces now and then, on behalf of many
    concurrent callers (``kudos web``'s HTTP ingest): started on first use, so the process
    starts without a broker; stopped by :meth:`close`. A start that fails is tried again on the
    next use."""

    def __init__(self, settings: Settings, *, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, messages: Sequence[Message]) -> None:
        """Produce ``messages``; return once the broker has acknowledged every one of them.

        Raises:
            BrokerUnavailable: not every message was acknowledged within ``timeout_s``. Some may
                have been, and the others may still be written later (the producer keeps
                trying), so the caller must treat the whole call as failed and retry it whole:
                events carry ids, and the worker applies a re-sent id once.
        """
        topic = self.settings.broker.topic
        try:
            async with asyncio.timeout(self.timeout_s):
                producer = await self._started()
                futures = [
                    await producer.send(topic, value=m.value, key=m.key, partition=m.partition)
                    for m in messages
                ]
                if futures:
                    # wait(), not gather(): a timeout must not cancel the deliveries themselves
                    await asyncio.wait(futures)
        except TimeoutError:
            raise BrokerUnavailable(
                f"the broker at {redact.url(self.settings.broker.url)} did not acknowledge within "
                f"{self.timeout_s:g} s"
            ) from None
        except (KafkaError, StackError, OSError) as exc:
            raise BrokerUnavailable(
                f"the broker at {redact.url(self.settings.broker.url)}: "
                f"{redact.text(str(exc), self.settings.secrets())}"
            ) from exc
        for fut in futures:
            if (failure := fut.exception()) is not None:
                raise BrokerUnavailable(
                    f"the broker at {redact.url(self.settings.broker.url)} refused a message: {failure!r}"
                ) from failure

    async def close(self) -> None:
        """Stop the producer (if it ever started), waiting at most ``timeout_s`` for messages
        still in flight."""
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.timeout_s)
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("the ingest producer did not stop cleanly: %r", exc)

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                # the topic must exist with its partition count before anything is produced to
                # it: a broker that auto-creates topics would pick its own count
                await ensure_topics(self.settings, timeout=self.timeout_s)
                producer = new_producer(self.settings)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer


async def wait_applied(
    store: Store | Shards,
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
