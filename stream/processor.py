"""Apply consumed messages to Redis: decode → read state → plan → one atomic apply.

Independent of Faust so that the same code runs in the worker, the benchmark and the tests. The
dead-letter sink is a typed seam: the worker passes a Kafka producer, tests may pass a list.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from leaderboard.errors import StoreConflict
from leaderboard.events import decode_message
from leaderboard.plan import DeadLetter, Message, build_plan, wanted
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
    """Applies batches of raw messages exactly once (per partition fence) to the store."""

    def __init__(
        self,
        store: Store,
        rules: ScoringRules,
        settings: WorkerSettings,
        dead_letters: DeadLetterSink,
    ) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings
        self.dead_letters = dead_letters
        self._kinds = rules.kinds

    async def process(self, raws: Sequence[Raw]) -> None:
        """Apply ``raws`` (any partitions, offsets ascending per partition) in chunks of whole
        messages of at most ``max_events_per_apply`` events."""
        chunk: list[Message] = []
        size = 0
        limit = self.settings.max_events_per_apply
        for r in raws:
            m = Message(r.partition, r.offset, decode_message(r.value, self._kinds))
            if chunk and size + len(m.items) > limit:
                await self._apply(chunk)
                chunk, size = [], 0
            chunk.append(m)
            size += len(m.items)
        if chunk:
            await self._apply(chunk)

    async def _apply(self, messages: list[Message]) -> None:
        need = wanted(messages, self.rules)
        for attempt in range(50):
            state = await self.store.read_state(need)
            plan = build_plan(
                messages,
                state,
                self.rules,
                dedupe_horizon_s=self.settings.dedupe_horizon_s,
                rebase_after_s=self.settings.decay_rebase_after_s,
            )
            if plan.empty:
                return
            # Dead letters go out before the fence moves: a crash in between re-sends them (the
            # record names its partition/offset, so a reader can drop the repeat) but never loses one.
            if plan.dead:
                await self.dead_letters(plan.dead)
            try:
                await self.store.apply(plan)
                return
            except StoreConflict as exc:
                # Another worker moved a fence (rebalance overlap) or the decay landmark: re-read and
                # re-plan; messages now behind the fence are skipped.
                log.info("re-planning batch after conflict (attempt %d): %s", attempt + 1, exc)
        raise StoreConflict("could not apply a batch after 50 conflicting attempts")
