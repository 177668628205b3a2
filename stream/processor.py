"""Apply consumed messages to Redis: decode → plan against the worker's own partition state → one
atomic, fence-guarded apply per chunk, with the next chunk planned while Redis applies this one.

Independent of Faust so that the same code runs in the worker, the benchmark and the tests. The
dead-letter sink is a typed seam: the worker passes a Kafka producer, tests may pass a list.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from leaderboard.bait import BaitParams
from leaderboard.errors import StoreConflict
from leaderboard.events import decode_message
from leaderboard.metrics import WorkerMetrics
from leaderboard.owned import OwnedState
from leaderboard.plan import DeadLetter, Message, Plan, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Raw:
    """A consumed Kafka message: where it came from and its value bytes."""

    partition: int
    offset: int
    value: bytes | None


class DeadLetterSink(Protocol):
    async def __call__(self, letters: Sequence[DeadLetter]) -> None: ...


class Processor:
    """Applies batches of raw messages exactly once (per partition fence) to the store.

    ``metrics`` counts what was applied (only applies that Redis accepted), per apply and batch.
    """

    def __init__(
        self,
        store: Store,
        rules: ScoringRules,
        settings: WorkerSettings,
        dead_letters: DeadLetterSink,
        *,
        metrics: WorkerMetrics | None = None,
        bait: BaitParams | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings
        self.dead_letters = dead_letters
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self._kinds = rules.kinds
        self.owned = OwnedState()
        #: the comment-bait detector's parameters; None switches the throttle off
        self.bait = bait

    async def process(self, raws: Sequence[Raw]) -> None:
        """Apply ``raws`` (any partitions, offsets ascending per partition) in chunks of whole
        messages of at most ``max_events_per_apply`` events; return when all are applied."""
        start = 0
        started = time.perf_counter()
        for attempt in range(50):
            try:
                await self._run(raws, start)
                self.metrics.batch_seconds.observe(time.perf_counter() - started)
                return
            except _Conflict as c:
                self.metrics.conflicts.inc()
                # Someone else wrote one of our partitions (rebalance overlap, a restarted copy of
                # this worker) or moved the decay landmark: forget our copy, reload, re-plan from
                # the first chunk not applied. Messages now behind the fence are skipped.
                log.info("re-planning after conflict (attempt %d): %s", attempt + 1, c.reason)
                start = c.resume_at
                self.owned.forget()
            except BaseException:
                # Anything else (Redis down, a dead-letter send failing, cancellation) may leave an
                # apply whose outcome is unknown while our copy already holds its effects: forget
                # the copy so the retry reloads what Redis really has.
                self.owned.forget()
                raise
        raise StoreConflict("could not apply a batch after 50 conflicting attempts")

    def _chunks(self, raws: Sequence[Raw], start: int) -> Iterator[tuple[int, list[Message]]]:
        """Decoded chunks, lazily (a batch of envelopes can hold a million events), each with the
        index in ``raws`` of its first message."""
        chunk: list[Message] = []
        first = start
        size = 0
        limit = self.settings.max_events_per_apply
        for i in range(start, len(raws)):
            r = raws[i]
            m = Message(r.partition, r.offset, decode_message(r.value, self._kinds))
            if chunk and size + len(m.items) > limit:
                yield first, chunk
                chunk, size, first = [], 0, i
            chunk.append(m)
            size += len(m.items)
        if chunk:
            yield first, chunk

    async def _run(self, raws: Sequence[Raw], start: int) -> None:
        """Plan chunk i+1 while Redis applies chunk i (one apply in flight, sent in order)."""
        inflight: tuple[Awaitable[float | None], int, Plan, float] | None = None
        try:
            for first, chunk in self._chunks(raws, start):
                missing = self.owned.missing(m.partition for m in chunk)
                while missing:
                    # (a load that finds a new rebuild generation drops every partition held)
                    await self.store.load_partitions(missing, self.owned, self.bait)
                    missing = self.owned.missing(m.partition for m in chunk)
                plan = build_plan(
                    chunk,
                    self.owned.store_state(),
                    self.rules,
                    dedupe_horizon_s=self.settings.dedupe_horizon_s,
                    rebase_after_s=self.settings.decay_rebase_after_s,
                )
                if inflight is not None:
                    pending, inflight = inflight, None
                    await self._settle(*pending)
                if plan.empty:
                    continue
                # Dead letters go out before the fence moves: a crash in between re-sends them
                # (the record names its partition/offset, so a reader can drop the repeat).
                if plan.dead:
                    await self.dead_letters(plan.dead)
                self.owned.absorb(plan)
                # returns once the call is on the wire: Redis runs it while we plan the next chunk
                sent = time.perf_counter()
                inflight = (await self.store.send_apply(plan), first, plan, sent)
            if inflight is not None:
                pending, inflight = inflight, None
                await self._settle(*pending)
        finally:
            if inflight is not None:
                # failing with a call in flight: wait for it so its connection goes back to the
                # pool; its outcome does not matter, the caller forgets our copy and reloads
                with contextlib.suppress(Exception):
                    await inflight[0]

    async def _settle(
        self, inflight: Awaitable[float | None], first: int, plan: Plan, sent: float
    ) -> None:
        try:
            wm = await inflight
        except StoreConflict as exc:
            raise _Conflict(first, str(exc)) from exc
        except BaseException:
            self.owned.forget()  # unknown outcome (connection lost mid-call): reload next time
            raise
        if wm is not None and (self.owned.watermark is None or wm > self.owned.watermark):
            self.owned.watermark = wm
        self._count(plan, time.perf_counter() - sent)

    def _count(self, plan: Plan, seconds: float) -> None:
        """Metrics of an apply Redis accepted. Its latency runs until the answer is read, which
        waits for the next chunk's planning when that takes longer."""
        m = self.metrics
        for outcome, n in plan.stats.items():
            if n:
                m.events.inc(n, outcome=outcome)
        for d in plan.dead:
            m.dead_letters.inc(reason=d.reason)
        m.apply_events.observe(sum(plan.stats.values()))
        for decision in plan.alerts:
            m.throttles.inc(state=decision.state)
        if plan.withheld:
            m.withheld_points.inc(sum(plan.withheld.values()) / 1000)
        m.apply_seconds.observe(seconds)
        if self.owned.watermark is not None:
            m.watermark.set(self.owned.watermark)


class _Conflict(Exception):
    def __init__(self, resume_at: int, reason: str) -> None:
        super().__init__(reason)
        self.resume_at = resume_at
        self.reason = reason
