"""``kudos deliver``: every perk unlock to Kafka, to the member's live channel and to the webhook
endpoints that want it, durably and once each; and every comment-bait alert to topic
``bait-alerts``, the author's channel and the ``alerts`` channel (a third loop, the same fan-out
path on the ``alerts`` stream, de-duplicated by alert id in ``alertfanout``).

The worker's apply script appends each unlock to the ``perkbox`` stream exactly once, in the
same atomic step as the scores that earned it. This process takes it from there, in two loops that
share nothing but Redis, so several deliverers may run side by side.

**Fan-out.** A Redis consumer group (``deliver``) reads the outbox. For each entry whose unlock was
not fanned out yet:

1. produce it to the ``perk-unlocks`` topic (key = member, value = JSON, header ``kudos-unlock-id``)
   and wait for the broker's ack;
2. in one Redis transaction: mark the unlock fanned out, push a ``perk`` event to the member's
   and the board's websocket channels, and create one webhook job per endpoint that wants the rule
   (job id ``<endpoint>:<unlock id>``, due at once; a disabled endpoint's job is dead-lettered
   unsent by the job loop, so ``replay --enable`` sends it later);
3. acknowledge the entry (XACK).

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from broker.topics import bootstrap, ensure_topics
from deliver.webhook_http import Attempt, deliver, guarded_session
from kudos.http import serve_metrics
from leaderboard import webhooks as wh
from leaderboard.metrics import DeliverMetrics
from leaderboard.perks import Unlock, load_perks_file
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import ALERTS, OUTBOX_GROUP, PERKBOX, ClaimedJob, Store
from web import feed

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
#: Kafka header naming the unlock; consumers of ``perk-unlocks`` de-duplicate by it.
UNLOCK_HEADER = "kudos-unlock-id"
#: Kafka header naming a bait alert; consumers of ``bait-alerts`` de-duplicate by it.
ALERT_HEADER = "kudos-alert-id"
#: The hash marking alerts fanned out (``leaderboard.store`` key table: ``alertfanout``).
ALERT_MARKS = "alertfanout"
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


def alert_event(alert: dict[str, Any]) -> dict[str, Any]:
    """A bait alert as a live ``event`` of kind ``bait`` (on the author's and the alerts
    channel): the alert's own fields, plus a one-line ``reason`` for chat bots."""
    reasons = ", ".join(alert.get("reasons") or ())
    if alert["state"] == "ended":
        text = "throttle ended: comments calmed down"
    else:
        text = f"comments count {alert['multiplier']:g}x ({reasons})"
    return {"event": "bait", "member": alert["target"], "reason": text, **alert}


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """The endpoints and the policy, read and validated once at start."""

    endpoints: dict[str, wh.Endpoint]
    allow: wh.AllowList = ()
    schedule: tuple[float, ...] = wh.SCHEDULE_S

    def jobs_for(self, unlock: Unlock) -> list[tuple[str, dict[str, str]]]:
        """(job id, fields) of one webhook job per endpoint that wants ``unlock``'s rule; the
        body is made here, once, and sent unchanged by every attempt."""
        body = wh.message_body(wh.UNLOCK_TYPE, unlock.at, unlock.data()).decode()
        return [
            (
                f"{e.id}:{unlock.id}",
                {
                    "endpoint": e.id,
                    "unlock": unlock.id,
                    "member": unlock.member,
                    "rule": unlock.rule,
                    "body": body,
                },
            )
            # a disabled endpoint gets its job too: the job loop dead-letters it unsent, so
            # `kudos webhooks replay --enable` sends every unlock made while it was disabled
            for e in self.endpoints.values()
            if e.wants(unlock.rule)
        ]


def load_config(settings: Settings) -> DeliveryConfig:
    """Endpoints from the ``[[endpoint]]`` tables of the perks file, checked against its rules.

    Raises ConfigError naming the file, endpoint and field (or the setting)."""
    scoring = ScoringRules.load(settings.scoring.path or None)
    rules, data = load_perks_file(settings.perks.path, scoring)
    allow = wh.parse_allow_list(settings.webhooks.allow)
    endpoints = wh.parse_endpoints(
        data, [r.id for r in rules], allow=allow, source=settings.perks.path or "perks file"
    )
    return DeliveryConfig(
        {e.id: e for e in endpoints}, allow, wh.parse_schedule(settings.webhooks.schedule_s)
    )


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
    ) -> None:
        self.settings = settings
        self.store = store
        self.config = config
        self.rng = rng or random.Random()
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self.metrics = DeliverMetrics()

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
                tg.create_task(self._fan_out_loop(producer, PERKBOX, self._fan_out))
                tg.create_task(self._fan_out_loop(producer, ALERTS, self._fan_out_alerts))
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
        self,
        producer: AIOKafkaProducer,
        box: str,
        handle: Callable[[AIOKafkaProducer, list[tuple[str, dict[str, str]]]], Awaitable[None]],
    ) -> None:
        """Read outbox stream ``box`` in the consumer group (taking over entries of dead
        deliverers) and pass the entries to ``handle``, which acknowledges them."""
        store, lease_s = self.store, self.settings.webhooks.lease_s
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
                    await handle(producer, entries)
                backoff = 0.1
            except (RedisError, OSError, KafkaError) as exc:
                if "NOGROUP" in str(exc):
                    joined = False  # the stream was replaced (kudos rebuild): join it again
                self.metrics.errors.inc(loop="fan_out")
                log.error("fan-out failed (%s); retrying in %.1f s", exc, backoff)
                await self._nap(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _fan_out(
        self, producer: AIOKafkaProducer, entries: list[tuple[str, dict[str, str]]]
    ) -> None:
        unlocks: dict[str, Unlock] = {}
        for entry_id, fields in entries:
            try:
                u = Unlock.from_fields(fields)
            except ValueError as exc:
                log.error("outbox entry %s is not an unlock (%s); skipped", entry_id, exc)
                continue
            unlocks.setdefault(u.id, u)
        done = await self.store.fanned_out(list(unlocks))
        todo = [u for uid, u in unlocks.items() if uid not in done]
        if todo:
            await _produce(
                producer,
                self.settings.broker.perks_topic,
                UNLOCK_HEADER,
                [(u.id, u.member, orjson.dumps(u.data())) for u in todo],
            )
            items = [
                (
                    u.id,
                    u.member,
                    feed.member_record(None, [u.event()], u.at),
                    self.config.jobs_for(u),
                )
                for u in todo
            ]
            # the unlock also rides on its board's channel, as a frame with no changes
            boards = {
                u.id: (u.board, feed.encode_board_record([], [u.event()], u.at, 0)) for u in todo
            }
            fanned = await self.store.fan_out(items, time.time(), board_records=boards)
            n_jobs = sum(len(jobs) for uid, _, _, jobs in items if uid in fanned)
            self.metrics.unlocks_fanned_out.inc(len(fanned))
            if n_jobs:
                self._wake.set()
            log.info("fanned out %d unlocks (%d webhook jobs)", len(fanned), n_jobs)
        await self.store.outbox_ack(GROUP, [entry_id for entry_id, _ in entries])

    async def _fan_out_alerts(
        self, producer: AIOKafkaProducer, entries: list[tuple[str, dict[str, str]]]
    ) -> None:
        """Bait alerts: to the ``bait-alerts`` topic (key = the post's author, header
        ``kudos-alert-id``), then once each to the author's channel and the ``alerts`` channel."""
        alerts: dict[str, dict[str, Any]] = {}
        for entry_id, fields in entries:
            try:
                record = orjson.loads(fields["r"])
                alerts.setdefault(str(record["id"]), record)
            except (KeyError, ValueError) as exc:
                log.error("alerts entry %s is not an alert (%s); skipped", entry_id, exc)
        done = await self.store.fanned_out(list(alerts), marks=ALERT_MARKS)
        todo = [a for aid, a in alerts.items() if aid not in done]
        if todo:
            await _produce(
                producer,
                self.settings.broker.alerts_topic,
                ALERT_HEADER,
                [(str(a["id"]), str(a["target"]), orjson.dumps(a)) for a in todo],
            )
            items = [
                (
                    str(a["id"]),
                    str(a["target"]),
                    feed.member_record(None, [alert_event(a)], a["ended_at"] or a["detected_at"]),
                    (),
                )
                for a in todo
            ]
            fanned = await self.store.fan_out(items, time.time(), marks_key=ALERT_MARKS, also_to="")
            self.metrics.alerts_fanned_out.inc(len(fanned))
            log.info("fanned out %d bait alerts", len(fanned))
        await self.store.outbox_ack(GROUP, [entry_id for entry_id, _ in entries], ALERTS)

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
    store = Store.connect(
        settings.redis.url, settings.redis.prefix, ScoringRules.load(settings.scoring.path or None)
    )
    deliverer = Deliverer(settings, store, config)
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
