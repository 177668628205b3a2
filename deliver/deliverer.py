"""``kudos deliver``: every perk unlock to Kafka, to the member's live channel and to the webhook
endpoints that want it, durably and once each; and every comment-bait alert to topic
``bait-alerts``, the author's channel and the ``alerts`` channel.

The worker's apply script appends each unlock to the ``perkbox`` stream and each throttle decision
to the ``alerts`` stream exactly once, in the same atomic step as the scores behind it. This process
takes it from there, in one fan-out loop per outbox (both described in :mod:`deliver.outbox`) and
one webhook job loop; they share nothing but Redis, so several deliverers may run side by side.

**Fan-out.** A Redis consumer group (``deliver``) reads each outbox. For each entry not fanned out
yet (an unlock here; an alert goes the same way, with no webhook jobs):

1. produce it to the ``perk-unlocks`` topic (key = member, value = JSON, header ``kudos-unlock-id``)
   and wait for the broker's ack;
2. in one Redis transaction: mark the unlock fanned out, push a ``perk`` event to the member's
   and the board's websocket channels, and create one webhook job per endpoint that wants the rule
   (job id ``<endpoint>:<unlock id>``, due at once; a disabled endpoint's job is dead-lettered
   unsent by the job loop, so ``replay --enable`` sends it later);
3. acknowledge the entry (XACK), then trim the stream's acknowledged history to the outbox's
   keep (``KUDOS_PERKS_OUTBOX_KEEP`` unlocks; alerts: ``ALERTS_MAXLEN``); an entry no deliverer
   acknowledged is never trimmed, so a stopped deliverer finds every entry made meanwhile.

An entry whose deliverer died before step 3 stays pending in the group; any deliverer claims it
(XAUTOCLAIM) once it has been idle for ``KUDOS_WEBHOOKS_LEASE_S`` and runs it again. The mark is
read under WATCH, so the push and the jobs happen once however often an entry is delivered. Kafka is
at-least-once: an unlock whose deliverer died between steps 1 and 2 is produced again, so consumers
of ``perk-unlocks`` de-duplicate by the ``kudos-unlock-id`` header, as webhook receivers do by
``webhook-id`` (the same id).

**Delivery.** Jobs wait in a due-time zset. A deliverer claims due jobs with a lease (the job's
score becomes the lease end and its lease token is bumped): if the deliverer dies mid-attempt the
job is simply due again when the lease runs out, so a kill or restart loses nothing (the receiver
may then get that attempt twice, with the same ``webhook-id``). Each attempt is signed afresh
(``webhook-id`` = the unlock id, a new ``webhook-timestamp``, the same body every time) and sent by
:func:`deliver.webhook_http.deliver` under the ``KUDOS_WEBHOOKS_ALLOW`` allow-list. Then, only if the
lease token is still the claimer's:

- 2xx: done (the job is deleted);
- 410 Gone: the endpoint is disabled (persisted in ``wh:disabled``, logged) and the job goes to the
  dead-letter store; later jobs for that endpoint are dead-lettered without being sent, until
  ``kudos webhooks replay --endpoint ID --enable``;
- anything else: due again after the schedule's next delay, jittered, or after ``Retry-After``
  when the receiver asked for longer (see :mod:`leaderboard.webhooks`); after the last attempt the
  job goes to the dead-letter store, which ``kudos webhooks replay`` re-sends.

Every attempt is appended to the capped attempts log (``kudos webhooks log``). Attempts to one
endpoint are not ordered: Standard Webhooks receivers must not rely on order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import time
from collections.abc import Sequence

import aiohttp
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from broker.topics import bootstrap, ensure_topics
from deliver import outbox
from deliver.config import DeliveryConfig, load_config
from deliver.outbox import Item, Outbox
from deliver.webhook_http import Attempt, deliver, guarded_session
from kudos.http import serve_metrics
from leaderboard import webhooks as wh
from leaderboard.metrics import DeliverMetrics
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import OUTBOX_GROUP, ClaimedJob, Store
from leaderboard.store.shards import check_shards, connect_shards

log = logging.getLogger("kudos.deliver")

#: The outbox's consumer group.
GROUP = OUTBOX_GROUP
#: Outbox entries taken per read, and how long a read waits for new ones.
BATCH = 100
BLOCK_MS = 1000
#: Longest sleep of the job loop: jobs another process made due (a replay) are seen this late.
POLL_S = 1.0
#: How long a stopping deliverer lets attempts in flight finish; the rest go back to due.
STOP_GRACE_S = 5.0
#: Consumers of the outbox group idle this many leases with nothing pending are removed.
FORGET_AFTER_LEASES = 10


async def _produce(
    producer: AIOKafkaProducer, topic: str, header: str, records: list[tuple[str, str, bytes]]
) -> None:
    """Send (id, key, value) records, the id in ``header``, and wait for every broker ack."""
    sent = [
        await producer.send(topic, key=key.encode(), value=value, headers=[(header, rid.encode())])
        for rid, key, value in records
    ]
    await asyncio.gather(*sent)


def _log_entry(
    job: ClaimedJob,
    attempt_n: int,
    attempt: Attempt | None,
    action: str,
    next_due: float | None,
    error: str,
) -> dict[str, str]:
    """One attempts-log entry (all strings, as Redis keeps them)."""
    return {
        "at": repr(time.time()),
        "endpoint": job.endpoint,
        "job": job.id,
        "unlock": job.unlock,
        "attempt": str(attempt_n),
        "status": "" if attempt is None or attempt.status is None else str(attempt.status),
        "ms": "" if attempt is None else f"{attempt.latency_ms:.1f}",
        "outcome": "skipped" if attempt is None else attempt.outcome,
        "action": action,
        "next": "" if next_due is None else repr(next_due),
        "error": error[:500],
    }


class Deliverer:
    """The two loops of ``kudos deliver`` (see the module doc). ``run()`` until ``stop()``.

    ``rng`` draws the retry jitter (tests pass a seeded one); ``consumer`` names this process in
    the outbox's consumer group (default: host and pid). ``metrics`` counts fan-out and
    attempts (GET /metrics when ``KUDOS_WEBHOOKS_METRICS_PORT`` is set).
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        config: DeliveryConfig,
        *,
        rng: wh.RandomSource | None = None,
        consumer: str | None = None,
        sources: Sequence[Store] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        #: the stores whose outboxes are read (a namespace kept as shards: every shard's; the
        #: fan-out marks, member channels and webhook jobs stay in ``store``, the namespace's)
        self.sources = tuple(sources) if sources is not None else (store,)
        self.config = config
        self.rng = rng or random.Random()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.metrics = DeliverMetrics()
        self.outboxes = (
            outbox.unlocks(settings, config.jobs_for, self.metrics.unlocks_fanned_out),
            outbox.alerts(settings, self.metrics.alerts_fanned_out),
        )

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Fan out and deliver until :meth:`stop`. Raises StackError if the broker cannot be
        reached at start; Redis and broker trouble later is logged and retried."""
        await ensure_topics(self.settings)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap(self.settings),
            acks="all",
            enable_idempotence=self.settings.broker.idempotent_producer,
            linger_ms=5,
        )
        await producer.start()
        try:
            async with guarded_session(self.config.allow) as session, asyncio.TaskGroup() as tg:
                for box in self.outboxes:
                    for source in self.sources:
                        tg.create_task(self._fan_out_loop(producer, box, source))
                tg.create_task(self._job_loop(session))
        finally:
            await producer.stop()

    async def _nap(self, seconds: float) -> None:
        if seconds > 0 and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    # -- fan-out ---------------------------------------------------------------------------

    async def _fan_out_loop(
        self, producer: AIOKafkaProducer, outbox: Outbox, source: Store
    ) -> None:
        """Read ``outbox``'s stream of ``source`` in the consumer group (taking over entries of
        dead deliverers) and fan the entries out."""
        box = outbox.stream
        store, lease_s = source, self.settings.webhooks.lease_s
        idle_ms = int(lease_s * 1000)
        next_reclaim = 0.0
        joined = False
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                if not joined:
                    await store.outbox_join(GROUP, box)
                    joined = True
                entries: list[tuple[str, dict[str, str]]] = []
                if time.monotonic() >= next_reclaim:
                    entries, lost = await store.outbox_reclaim(
                        GROUP, self.consumer, idle_ms, BATCH, box
                    )
                    for entry_id in lost:
                        log.error(
                            "%s entry %s was trimmed before any deliverer acknowledged it: "
                            "it is listed (kudos perks / kudos alerts) but was not fanned out",
                            box,
                            entry_id,
                        )
                    forgotten = await store.outbox_forget_consumers(
                        GROUP, self.consumer, FORGET_AFTER_LEASES * idle_ms, box
                    )
                    if forgotten:
                        log.info("removed idle %s consumers %s", box, ", ".join(forgotten))
                    if entries:
                        log.info("took over %d unacknowledged %s entries", len(entries), box)
                    # a full batch: there may be more to take over right away
                    wait = 0.0 if len(entries) >= BATCH else min(lease_s / 2, 5.0)
                    next_reclaim = time.monotonic() + wait
                if not entries:
                    entries = await store.outbox_read(GROUP, self.consumer, BATCH, BLOCK_MS, box)
                if entries:
                    await self.fan_out(producer, outbox, entries, source)
                backoff = 0.1
            except (RedisError, OSError, KafkaError) as exc:
                if "NOGROUP" in str(exc):
                    joined = False  # the stream was replaced (kudos rebuild): join it again
                self.metrics.errors.inc(loop="fan_out")
                log.error("fan-out failed (%s); retrying in %.1f s", exc, backoff)
                await self._nap(backoff)
                backoff = min(backoff * 2, 5.0)

    async def fan_out(
        self,
        producer: AIOKafkaProducer,
        box: Outbox,
        entries: list[tuple[str, dict[str, str]]],
        source: Store | None = None,
    ) -> None:
        """Fan out a batch of ``box``'s entries (see :mod:`deliver.outbox`) read from
        ``source``'s outbox (default: the namespace's), then acknowledge them there. An entry
        that does not decode is logged and skipped (acknowledged: it never will)."""
        source = source or self.store
        items: dict[str, Item] = {}
        for entry_id, fields in entries:
            try:
                item = box.decode(fields)
            except (KeyError, ValueError) as exc:
                log.error(
                    "%s entry %s is not %s (%s); skipped", box.stream, entry_id, box.thing, exc
                )
                continue
            items.setdefault(item.id, item)
        done = await self.store.fanned_out(list(items), marks=box.marks)
        todo = [item for iid, item in items.items() if iid not in done]
        if todo:
            await _produce(
                producer, box.topic, box.header, [(i.id, i.member, i.value) for i in todo]
            )
            fanned = await self.store.fan_out(
                [(i.id, i.member, i.record, i.jobs) for i in todo],
                time.time(),
                board_records={i.id: i.board for i in todo if i.board is not None},
                marks=box.marks,
                to_alerts_channel=box.to_alerts_channel,
            )
            box.fanned.inc(len(fanned))
            n_jobs = sum(len(i.jobs) for i in todo if i.id in set(fanned))
            if n_jobs:
                self._wake.set()
            log.info("fanned out %d %s (%d webhook jobs)", len(fanned), box.things, n_jobs)
        await source.outbox_ack(GROUP, [entry_id for entry_id, _ in entries], box.stream)
        # the group knows what is acknowledged now: trim only that (see deliver.outbox)
        await source.outbox_trim(box.stream, box.keep, marks_in=self.store)

    # -- delivery --------------------------------------------------------------------------

    async def _job_loop(self, session: aiohttp.ClientSession) -> None:
        ws = self.settings.webhooks
        backoff = 0.1
        try:
            while not self._stopping.is_set():
                wait = POLL_S
                try:
                    free = ws.concurrency - len(self._inflight)
                    now = time.time()
                    jobs, next_due = await self.store.webhook_claim(now, now + ws.lease_s, free)
                    for job in jobs:
                        task = asyncio.create_task(self._attempt(session, job))
                        self._inflight.add(task)
                        task.add_done_callback(self._attempt_done)
                    if free > 0 and len(jobs) == free:
                        wait = 0.0  # maybe more are due
                    elif free > 0 and next_due is not None:
                        wait = min(POLL_S, max(0.0, next_due - time.time()))
                    backoff = 0.1
                except (RedisError, OSError) as exc:
                    self.metrics.errors.inc(loop="jobs")
                    log.error("claiming webhook jobs failed (%s); retrying in %.1f s", exc, backoff)
                    wait = backoff
                    backoff = min(backoff * 2, 5.0)
                await self._nap(wait)
        finally:
            await self._drain()

    def _attempt_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook attempt failed", exc_info=task.exception())

    async def _drain(self) -> None:
        """Let attempts in flight finish for a moment; release the others' leases."""
        if not self._inflight:
            return
        _, pending = await asyncio.wait(self._inflight, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _attempt(self, session: aiohttp.ClientSession, job: ClaimedJob) -> None:
        store = self.store
        endpoint = self.config.endpoints.get(job.endpoint)
        try:
            if endpoint is None or job.disabled:
                if endpoint is None:
                    why = f"endpoint {job.endpoint!r} is not in the perks file"
                else:
                    why = (
                        f"endpoint {job.endpoint!r} is disabled (it answered 410 Gone); "
                        f"`kudos webhooks replay --endpoint {job.endpoint} --enable` re-enables it"
                    )
                log.warning("job %s dead-lettered without sending: %s", job.id, why)
                if await store.webhook_finish(
                    job,
                    "dead",
                    time.time(),
                    attempts=job.attempts,
                    error=why,
                    log=_log_entry(job, job.attempts, None, "dead", None, why),
                ):
                    self.metrics.webhook_dead_letters.inc(endpoint=job.endpoint)
                return
            await self._send(session, job, endpoint)
        except asyncio.CancelledError:
            # stopping: put the job back to due now instead of waiting for the lease
            with contextlib.suppress(RedisError, OSError):
                await store.webhook_finish(job, "release", time.time(), attempts=job.attempts)
            raise
        except (RedisError, OSError) as exc:
            log.error(
                "job %s: outcome not recorded (%s); it is due again when its lease runs out",
                job.id,
                exc,
            )

    async def _send(
        self, session: aiohttp.ClientSession, job: ClaimedJob, endpoint: wh.Endpoint
    ) -> None:
        n = job.attempts + 1
        try:
            headers = wh.headers(job.unlock, int(time.time()), job.body, endpoint.secrets)
        except ValueError as exc:  # an unlock id no receiver could verify (e.g. with a ".")
            why = f"cannot sign: {exc}"
            log.error("job %s dead-lettered without sending: %s", job.id, why)
            entry = _log_entry(job, job.attempts, None, "dead", None, why)
            if await self.store.webhook_finish(
                job, "dead", time.time(), attempts=job.attempts, error=why, log=entry
            ):
                self.metrics.webhook_dead_letters.inc(endpoint=job.endpoint)
            return
        attempt = await deliver(
            endpoint.url,
            headers,
            job.body,
            session=session,
            timeout_s=self.settings.webhooks.timeout_s,
        )
        m = self.metrics
        m.webhook_attempts.inc(endpoint=endpoint.id, outcome=attempt.outcome)
        m.webhook_attempt_seconds.observe(attempt.latency_ms / 1000)
        if attempt.outcome != "delivered":
            m.webhook_failures.inc(endpoint=endpoint.id)
        action, delay = wh.after_attempt(
            attempt.outcome, n, attempt.retry_after_s, self.rng, schedule=self.config.schedule
        )
        now = time.time()
        next_due = None if delay is None else now + delay
        disabled = None
        if action == "disable":
            disabled = {"at": now, "status": attempt.status, "unlock": job.unlock}
            disabled["error"] = attempt.error
            log.warning(
                "endpoint %s answered 410 Gone: disabled; its jobs go to the dead-letter store "
                "(`kudos webhooks replay --endpoint %s --enable` re-enables it)",
                endpoint.id,
                endpoint.id,
            )
        elif action == "dead":
            log.warning("job %s dead-lettered after %d attempts: %s", job.id, n, attempt.error)
        held = await self.store.webhook_finish(
            job,
            action,
            now,
            attempts=n,
            next_due=next_due,
            error=attempt.error,
            disabled=disabled,
            log=_log_entry(job, n, attempt, action, next_due, attempt.error),
        )
        if not held:
            log.warning(
                "job %s: its lease ran out during the attempt; left to its new holder", job.id
            )
        elif action in ("dead", "disable"):
            m.webhook_dead_letters.inc(endpoint=endpoint.id)


async def run(settings: Settings) -> None:
    """``kudos deliver``: until SIGTERM or SIGINT. Raises ConfigError for a bad perks file or
    webhook setting, StackError when the broker cannot be reached at start."""
    config = load_config(settings)
    rules = settings.periods.apply(ScoringRules.load(settings.scoring.path or None))
    store = Store.connect(
        settings.redis.url, settings.redis.prefix, rules, cluster=settings.redis.cluster
    )
    sources: list[Store] | None = None
    try:
        await check_shards(store, settings.redis.shards, claim=False)
    except BaseException:
        await store.close()
        raise
    if settings.redis.shards > 1:
        # every shard's outboxes, fanned out into the namespace's own store (its member
        # channels, its webhook jobs)
        shards = connect_shards(settings.redis, settings.broker.partitions, rules, base=store)
        sources = list(shards.stores)
    deliverer = Deliverer(settings, store, config, sources=sources)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, deliverer.stop)
    names = ", ".join(sorted(config.endpoints)) or "none"
    log.info(
        "delivering perk unlocks to topic %s, member channels and webhook endpoints: %s",
        settings.broker.perks_topic,
        names,
    )
    server = None
    if settings.webhooks.metrics_port:
        metrics = deliverer.metrics

        async def render() -> bytes:
            return metrics.exposition().encode()

        ws = settings.webhooks
        server = await serve_metrics(ws.metrics_host, ws.metrics_port, render)
    try:
        await deliverer.run()
    finally:
        if server is not None:
            server.close()
        await store.close()
