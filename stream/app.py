"""The Faust application.

``create_app(settings)`` builds it explicitly (``kudos worker`` does). For the stock Faust CLI,
``faust -A stream.app worker`` resolves the module attribute ``app`` lazily from the environment, so
importing this module creates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError
from faust.exceptions import ProducerSendError
from faust.types import TP
from redis.exceptions import RedisError

from broker.topics import bootstrap
from kudos.http import serve_metrics
from leaderboard.bait import Evidence, identity
from leaderboard.errors import ConfigError, ScoringVersionMismatch, ShardCountMismatch
from leaderboard.metrics import WorkerMetrics
from leaderboard.perks import check_winners_retention, load_perks_file
from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings
from leaderboard.store import Store
from leaderboard.store.base import cluster_mismatch
from leaderboard.store.shards import Shards, check_shards, connect_shards
from stream.heap import HeapKeeper
from stream.lag import consumer_lag
from stream.processor import Processor, Raw
from stream.sharded import ShardedProcessor

log = logging.getLogger(__name__)
#: Exit status of a worker whose scoring rules are not the namespace's (sysexits EX_CONFIG).
EXIT_CONFIG = 78


#: Dead letters above this are truncated: Faust's producer refuses requests over 1 MB.
MAX_DEAD_LETTER_BYTES = 900_000
#: A gap re-read that receives nothing for this long fails (the batch is retried).
LOG_READ_STALL_S = 30.0
#: How soon a worker with no new batch settles the apply it left in flight (its metrics, a
#: re-plan if Redis refused it): Processor.process's overlap
IDLE_SETTLE_S = 0.25
#: How long a stopping worker waits to settle it
STOP_SETTLE_S = 5.0
#: A worker with no batch for this long whose fences trail what it consumed reads the rest
#: from the log (Processor.catch_up)
CATCH_UP_S = 5.0


class KafkaLogReader:
    """The worker's :class:`stream.processor.LogReader`: a consumer of its own (no group, no
    commits) that reads the gap behind a fence that Redis lost.

    Not a seek of Faust's consumer: Faust would still deliver the messages it buffered after
    the gap, its fetch loop can set the read offset forward again after a seek (dropping the
    re-fetched messages), and a rebalance seeks to the committed offsets; all of which makes
    "when does the re-read arrive" a guess. Here the gap is read and applied before the batch
    that found it, and Faust's position and commits are untouched (they are never behind the
    messages applied; the fences are the truth).
    """

    def __init__(self, settings: Settings, page: int) -> None:
        self.settings = settings
        self.page = page

    async def read(self, partition: int, start: int, end: int) -> AsyncGenerator[Sequence[Raw]]:
        # a consumer per gap: gaps are rare, and nothing is left open between them
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap(self.settings),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # (a start retention deleted: from the log's start)
            max_partition_fetch_bytes=16 << 20,
        )
        await consumer.start()
        try:
            tp = TopicPartition(self.settings.broker.topic, partition)
            consumer.assign([tp])
            consumer.seek(tp, start)
            heard = time.monotonic()
            while await consumer.position(tp) < end:
                got = await consumer.getmany(tp, timeout_ms=1000, max_records=self.page)
                raws = [
                    Raw(partition, r.offset, r.value, _seconds(r.timestamp))
                    for r in got.get(tp, ())
                    if r.offset < end
                ]
                if raws:
                    heard = time.monotonic()
                    yield raws
                elif time.monotonic() - heard > LOG_READ_STALL_S:
                    raise KafkaTimeoutError(
                        f"re-reading partition {partition} from offset {start}: nothing for "
                        f"{LOG_READ_STALL_S:.0f} s"
                    )
        finally:
            await consumer.stop()


def _seconds(timestamp_ms: int | None) -> float | None:
    """A record timestamp as Faust gives it: seconds, None when the broker recorded none."""
    return None if timestamp_ms is None else timestamp_ms / 1000.0


def use_fetch_max_wait(ms: int) -> None:
    """Make Faust's Kafka consumers wait at most ``ms`` for data in a fetch.

    Faust hard-codes ``fetch_max_wait_ms=1500`` with no setting. Apache Kafka answers a fetch as
    soon as data arrives, so that only bounds idle polling; Tansu (the embedded broker) holds a
    fetch that found nothing for the whole wait even when data arrives meanwhile, which added
    0.4–0.75 s to every live event (bench/README.md, "Live push"). The aiokafka consumer reads
    the value when it starts, so it is set on each consumer Faust creates.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    create = AIOKafkaConsumerThread._create_worker_consumer
    original = getattr(create, "__wrapped__", create)

    @functools.wraps(original)
    def create_with_wait(self: AIOKafkaConsumerThread, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = ms
        return consumer

    AIOKafkaConsumerThread._create_worker_consumer = create_with_wait  # type: ignore[method-assign]


def faust_app(settings: Settings) -> tuple[faust.App, faust.TopicT]:
    """A Faust app with Kudos's broker-facing configuration and its interactions topic.

    The benchmark's baseline apps use this too, so they differ from the worker only in what their
    agent does with a message.
    """
    ws = settings.worker
    use_fetch_max_wait(ws.fetch_max_wait_ms)
    app = faust.App(
        ws.app_id,
        broker=settings.broker.url,
        store="memory://",
        datadir=str(settings.home / "faust"),
        value_serializer="raw",
        key_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.broker.partitions,
        topic_disable_leader=True,
        web_enabled=ws.faust_web_port > 0,
        web_port=ws.faust_web_port or 6066,
        broker_commit_every=10_000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, ws.batch_messages * 2),
        producer_acks=-1,
        broker_rebalance_timeout=ws.rebalance_timeout_s,
        broker_session_timeout=ws.session_timeout_s,
        broker_heartbeat_interval=min(3.0, ws.session_timeout_s / 4),
    )
    topic = app.topic(
        settings.broker.topic,
        value_type=bytes,
        key_type=bytes,
        partitions=settings.broker.partitions,
        internal=False,
    )
    return app, topic


def create_app(settings: Settings) -> faust.App:
    """Build the Kudos Faust app: one agent on the interactions topic that applies batches."""
    rules = settings.periods.apply(ScoringRules.load(settings.scoring.path or None))
    # bad rules fail at start
    perk_rules, _ = load_perks_file(settings.perks.path, rules, max_ties=settings.perks.max_ties)
    check_winners_retention(perk_rules, rules)
    closing = [r.id for r in perk_rules if r.at_close]
    if closing and settings.redis.shards > 1:
        raise ConfigError(
            f'perk rule(s) {", ".join(closing)}: winners\' perks (at = "close") are not judged '
            "on a namespace kept as shards yet (KUDOS_REDIS_SHARDS > 1): use a live rule, or "
            "one Redis or Redis Cluster namespace (docs/scaling.md)"
        )
    ws = settings.worker
    app, topic = faust_app(settings)
    metrics = WorkerMetrics()
    #: the agent's processor once it runs (what it consumed is the consumer lag's floor:
    #: stream.lag.consumer_lag)
    running: list[Processor | ShardedProcessor] = []
    dlq = app.topic(settings.broker.dlq_topic, value_type=bytes, key_type=bytes, internal=False)

    async def send_dead_letters(letters: Sequence[DeadLetter]) -> None:
        # Await every delivery: a dead letter that did not reach the topic must stop the fence
        # from moving (the batch is retried), or it would be lost silently.
        pending = []
        for d in letters:
            value, headers = d.raw, dead_letter_headers(d, settings.broker.topic)
            if len(value) > MAX_DEAD_LETTER_BYTES:
                # a whole oversized message is kept as its head; the headers say how long it was
                headers["kudos-truncated-from"] = str(len(value)).encode()
                value = value[:MAX_DEAD_LETTER_BYTES]
            pending.append(
                await dlq.send(
                    key=f"{d.partition}:{d.offset}".encode(), value=value, headers=headers
                )
            )
        await asyncio.gather(*pending)

    async def send_evidence(records: Sequence[tuple[int, Evidence]]) -> None:
        # Into the events topic itself, at an explicit partition, each record its own message:
        # the receiving partitions take it in their log order (leaderboard.bait.evidence).
        # Awaited like the dead letters: the batch is applied only once every copy is in.
        pending = [
            await topic.send(
                key=e.id.encode(), value=orjson.dumps(e.to_json()), partition=partition
            )
            for partition, e in records
        ]
        await asyncio.gather(*pending)

    @app.agent(topic)
    async def score(stream: faust.StreamT[bytes]) -> None:
        bait = settings.bait.params()
        if bait is not None and not bait.key:
            log.warning(
                "KUDOS_BAIT_KEY is not set: the bait detector hashes account ids with its public "
                "default key, so anyone can aim their collisions (docs/security.md). Set a "
                "secret of 32 or more characters, the same for every worker, and rebuild"
            )
        scoring_id = identity(rules.version, bait)
        reader = KafkaLogReader(settings, ws.batch_messages)

        heap = HeapKeeper(ws.gc_full_every_s)

        def make(store: Store) -> Processor:
            return Processor(
                store,
                rules,
                ws,
                send_dead_letters,
                metrics=metrics,
                bait=bait,
                log_reader=reader,
                evidence=send_evidence if bait is not None else None,
                heap=heap,
            )

        processor: Processor | ShardedProcessor
        base = Store.connect(
            settings.redis.url,
            settings.redis.prefix,
            rules,
            perk_rules,
            scoring_id=scoring_id,
            cluster=settings.redis.cluster,
        )
        try:
            await check_shards(base, settings.redis.shards)
        except ShardCountMismatch as exc:
            log.critical("%s", exc)
            logging.shutdown()
            os._exit(EXIT_CONFIG)
        if settings.redis.shards > 1:
            # (a shard's apply judges the score-only rules; the rank rules want the merged
            # board, stream/rank_judge.py)
            scored = [r for r in perk_rules if r.rank_max is None]
            ranked = [r for r in perk_rules if r.rank_max is not None]
            shards = connect_shards(
                settings.redis, settings.broker.partitions, rules, scored, scoring_id, base=base
            )
            stores = list(shards.stores)
            processor = ShardedProcessor(stores, make, ranked, gate=base)
            # (a namespace kept as shards from before its own store decided the community cap:
            # its set starts as the union of what the shards admitted)
            admitted = await asyncio.gather(*(s.communities() for s in stores))
            await base.add_communities(set().union(*admitted))
        else:
            stores = [base]
            processor = make(base)
            # (a winners' period closes once every partition of the topic has passed it)
            processor.partitions_total = settings.broker.partitions
        for store in stores:
            version = await store.claim_scoring_version()
            if version != store.scoring_id:
                log.critical("%s", ScoringVersionMismatch(version, store.scoring_id))
                logging.shutdown()
                os._exit(EXIT_CONFIG)
        if isinstance(processor, ShardedProcessor) and processor.judge is not None:
            # a worker that died between a batch and its check of the rank rules left that
            # check to us: make it now, not only after our first batch (there may be none)
            processor.shards.partitions = settings.broker.partitions
            try:
                await processor.check_rank_rules()
            except (RedisError, OSError) as exc:
                log.error(
                    "rank perk rules not checked at start (%s); checked after each batch", exc
                )

        async def with_retries(call: Callable[[], Awaitable[object]]) -> None:
            # Events are acked only after the agent's body returns, so retrying here keeps
            # at-least-once delivery; the fences turn it into an exactly-once effect.
            delay = 0.1
            while True:
                try:
                    await call()
                    return
                except (RedisError, OSError, KafkaError, ProducerSendError) as exc:
                    metrics.batch_retries.inc()
                    hint = cluster_mismatch(exc, settings.redis.cluster)
                    log.error(
                        "batch not applied (%s%s); retrying in %.1f s",
                        exc,
                        f"; {hint}" if hint else "",
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                except ScoringVersionMismatch as exc:
                    # `kudos rebuild` switched the boards to other rules while we ran: stop
                    # rather than add to them with ours (the supervisor's restart reloads the file)
                    log.critical("%s", exc)
                    await give_back()
                    logging.shutdown()
                    os._exit(EXIT_CONFIG)
                except Exception:
                    # A bug, not bad input (bad input is dead-lettered). Faust would ack the batch
                    # and keep a dead agent around; exit instead so the supervisor restarts the
                    # worker, which resumes from the Redis fences without losing the batch.
                    log.critical("unexpected error applying a batch; exiting", exc_info=True)
                    await give_back()
                    logging.shutdown()
                    os._exit(70)

        async def give_back() -> None:
            # Exiting with messages acknowledged to Kafka but not applied (an apply left in
            # flight, then refused: Processor.process's overlap): commit the group's offsets
            # back to them, so the next owner reads them again rather than starting past them.
            held = single.unapplied() if single is not None else {}
            if not held:
                return
            topic_name = settings.broker.topic
            try:
                # (Faust's own commit only ever moves forward; its _commit takes the offsets)
                commit = app.consumer._commit  # type: ignore[attr-defined]
                await asyncio.wait_for(
                    commit({TP(topic_name, p): o for p, o in held.items()}), STOP_SETTLE_S
                )
                log.warning("committed offsets back to the messages not applied: %s", held)
            except Exception as exc:
                log.error("could not commit offsets back to %s: %r", held, exc)

        # One store's processor returns with its last apply in flight (Processor.process's
        # overlap): Redis runs it while Faust fetches the next batch, and the next batch is
        # planned before its answer is awaited. When no batch follows, this settles it (its
        # metrics, and a re-plan should Redis have refused it) within IDLE_SETTLE_S.
        # Because of it, what Faust acknowledges may be ahead of the fences: an apply refused
        # after its batch was acked, by a worker that then died, leaves messages no batch will
        # bring again (and so does a Redis that loses applies while no message comes). So when
        # no batch has come for CATCH_UP_S and the fences trail what this worker consumed,
        # those offsets are read from the log (Processor.catch_up); a worker that exits with
        # messages not applied first commits its group's offsets back to them.
        single = processor if isinstance(processor, Processor) else None
        running[:] = [processor]
        busy = asyncio.Lock()
        last_batch = time.monotonic()

        async def behind(p: Processor) -> dict[int, int]:
            mine = {
                tp.partition
                for tp in app.consumer.assignment()
                if tp.topic == settings.broker.topic
            }
            fences = await base.fences()
            return {
                q: end for q, end in p.consumed.items() if q in mine and fences.get(q, -1) + 1 < end
            }

        async def settle_when_idle(p: Processor) -> None:
            while True:
                await asyncio.sleep(IDLE_SETTLE_S)
                if busy.locked():
                    continue
                if p.in_flight:
                    async with busy:
                        await with_retries(p.flush)
                    continue
                if time.monotonic() - last_batch < CATCH_UP_S:
                    continue
                try:
                    ends = await behind(p)
                except Exception as exc:  # (starting, rebalancing, Redis away: next time)
                    log.debug("no catch-up check this time: %r", exc)
                    ends = {}
                if ends and not busy.locked() and time.monotonic() - last_batch >= CATCH_UP_S:
                    async with busy:
                        await with_retries(functools.partial(p.catch_up, ends))

        idle = asyncio.create_task(settle_when_idle(single)) if single is not None else None
        try:
            async for events in stream.take_events(  # type: ignore[attr-defined]
                ws.batch_messages, within=ws.batch_within_s
            ):
                if processor.partitions is None:
                    processor.partitions = topic_partitions(app, settings)
                # (Faust gives the record timestamp in seconds, None when the broker recorded
                # none)
                raws = [
                    Raw(
                        e.message.partition,
                        e.message.offset,
                        e.message.value,
                        e.message.timestamp,
                    )
                    for e in events
                ]
                async with busy:
                    last_batch = time.monotonic()
                    if single is not None:
                        call = functools.partial(single.process, raws, overlap=True)
                    else:
                        call = functools.partial(processor.process, raws)
                    await with_retries(call)
        finally:
            if idle is not None:
                idle.cancel()
            if single is not None and single.in_flight:
                # (stopping: Redis runs the apply on the wire whatever happens here; reading
                # its answer hands the connection back and re-plans a refused one. Should that
                # fail, the next owner finds the gap behind the fences at its next message)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(single.flush(), STOP_SETTLE_S)

    if ws.metrics_port:

        @app.task  # type: ignore[untyped-decorator]
        async def metrics_endpoint() -> None:
            store: Store | Shards = (
                connect_shards(settings.redis, settings.broker.partitions, rules)
                if settings.redis.shards > 1
                else Store.connect(
                    settings.redis.url, settings.redis.prefix, rules, cluster=settings.redis.cluster
                )
            )

            async def render() -> bytes:
                consumed = running[0].consumed if running else None
                await consumer_lag(app.consumer, settings.broker.topic, store, metrics, consumed)
                return metrics.exposition().encode()

            server = await serve_metrics(ws.metrics_host, ws.metrics_port, render)
            log.info("metrics at http://%s:%d/metrics", ws.metrics_host, ws.metrics_port)
            try:
                await server.serve_forever()
            finally:
                server.close()
                await store.close()

    return app


def topic_partitions(app: faust.App, settings: Settings) -> int:
    """The interactions topic's partition count, which envelope events are checked against
    (``wrong_partition``): from the consumer's metadata, the truth producers' partitioners see;
    else the setting, which ``kudos topics`` keeps equal to it."""
    known = app.consumer.topic_partitions(settings.broker.topic)
    if known is None:
        return settings.broker.partitions
    if known != settings.broker.partitions:
        log.warning(
            "the topic %s has %d partitions, KUDOS_BROKER_PARTITIONS says %d: producers using "
            "the setting put envelope events on the wrong partitions (dead-lettered)",
            settings.broker.topic,
            known,
            settings.broker.partitions,
        )
    return int(known)


def dead_letter_headers(d: DeadLetter, source_topic: str) -> dict[str, bytes]:
    """Kafka headers of a dead letter; the record value is the rejected raw bytes, unchanged."""
    return {
        "kudos-error": d.reason.encode(),
        "kudos-error-detail": d.detail.encode()[:1000],
        "kudos-source-topic": source_topic.encode(),
        "kudos-source-partition": str(d.partition).encode(),
        "kudos-source-offset": str(d.offset).encode(),
        "kudos-envelope-index": b"" if d.index is None else str(d.index).encode(),
    }


def __getattr__(name: str) -> Any:
    if name == "app":
        return create_app(load_settings())
    raise AttributeError(name)
