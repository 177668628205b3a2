"""A worker's own copy of the state of the partitions it consumes (pure, no I/O).

A partition is consumed by one worker at a time, so that worker can keep the partition's dedupe ids
and diminishing-returns counters in memory instead of reading them from Redis before every batch. It
loads a partition once (``Store.load_partitions``), then absorbs each plan it sends. This is safe
because every apply is guarded by the partition fence: if anyone else wrote the partition (a
rebalance, a second worker, a restart of this one), the fence has moved, the apply is refused, and
the worker forgets its copy and loads it again. Kafka Streams keeps its state stores the same way.

The ids and counters are held compactly (:mod:`leaderboard.fingerprint`: 128-bit fingerprints,
~21 B an id and ~20 B a counter) and dropped a whole day at a time once the day falls behind the
dedupe horizon, by the rule the planner applies and Redis prunes by.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from leaderboard.bait import Detector
from leaderboard.fingerprint import FingerprintSet, PairCounters, fingerprint, pair_fingerprint
from leaderboard.moderation import Tombstones
from leaderboard.plan import SEEN_DAY_S, SEP, PartitionState, Plan, StoreState

#: Days around a partition's newest day that its id set may hold (the set keeps days apart by
#: their value modulo 65,536; any day a real clock gives is far inside this).
DAY_SPAN = 30_000


def plausible_day(day: int, newest: int | None) -> bool:
    """Whether an id of ``day`` may be held beside a partition whose newest day is ``newest``."""
    return newest is None or abs(day - newest) < DAY_SPAN


@dataclass
class OwnedPartition:
    fence: int = -1
    #: the partition's newest time of a scored event (the planner's; ignored events do not move it)
    watermark: float | None = None
    seen: FingerprintSet = field(default_factory=FingerprintSet)
    dr: PairCounters = field(default_factory=PairCounters)
    #: the comment-bait detector (None when the throttle is off); planning advances it in place
    bait: Detector | None = None
    #: (offset, events applied) of a partly applied envelope after the fence (plan.PartitionState)
    part: tuple[int, int] | None = None

    def add_seen(self, event_id: str, ts: float) -> None:
        self.seen.add(fingerprint(event_id), math.floor(ts / SEEN_DAY_S))

    def set_dr(self, day: int, f: str, k: int) -> None:
        actor, _, target = f.partition(SEP)
        self.dr.set(day, pair_fingerprint(actor, target), k)

    def prune(self, seen_cutoff: float | None, dr_cutoff_day: int | None) -> None:
        if seen_cutoff is not None:
            self.seen.drop_days_before(math.floor(seen_cutoff / SEEN_DAY_S))
        if dr_cutoff_day is not None:
            self.dr.drop_days_before(dr_cutoff_day)


@dataclass
class OwnedState:
    partitions: dict[int, OwnedPartition] = field(default_factory=dict)
    watermark: float | None = None
    landmark: int | None = None
    generation: int = 0
    loaded: bool = False
    #: the namespace's admitted communities as far as this worker knows (the set only grows; an
    #: apply whose cap decisions the set in Redis contradicts is refused, and this reloaded)
    communities: set[str] = field(default_factory=set)
    #: the erased members' tombstones and the erasure counter they were read at (an apply
    #: planned before a later erase is refused, and this reloaded)
    erased: Tombstones = field(default_factory=Tombstones)
    erasures: int = 0

    def missing(self, parts: Iterable[int]) -> list[int]:
        return sorted({p for p in parts if p not in self.partitions})

    def store_state(self) -> StoreState:
        """A view for the planner (no copies: the planner only reads)."""
        return StoreState(
            {
                p: PartitionState(o.fence, o.watermark, o.seen, o.dr, o.bait, o.part)
                for p, o in self.partitions.items()
            },
            watermark=self.watermark,
            landmark=self.landmark,
            generation=self.generation,
            communities=self.communities,
            erased=self.erased,
            erasures=self.erasures,
        )

    def absorb(self, plan: Plan) -> None:
        """Take on the effects of a plan that is being applied (optimistically)."""
        # Each partition's ids are added after its pruning and only within ``DAY_SPAN`` of its
        # newest day: an id behind the cutoff is pruned in Redis by the same apply, and the set
        # cannot hold two days 65,536 apart (a producer's year-2200 evidence next to today's
        # ids must not crash the worker; such an id is simply not held).
        cut_days: dict[int, tuple[int | None, int | None]] = {}
        for u in plan.partitions:
            newest = None if u.watermark is None else math.floor(u.watermark / SEEN_DAY_S)
            if newest is None:  # (no scored event yet: the days it holds are the anchor)
                newest = max(self.partitions[u.partition].seen.days(), default=None)
            cut = None if u.seen_cutoff is None else math.floor(u.seen_cutoff / SEEN_DAY_S)
            cut_days[u.partition] = (cut, newest)
        ids: dict[int, tuple[list[bytes], list[int]]] = defaultdict(lambda: ([], []))
        for (p, ts, _), fp in zip(plan.seen, plan.seen_fps, strict=True):
            day = math.floor(ts / SEEN_DAY_S)
            cut, newest = cut_days.get(p, (None, None))
            if (cut is not None and day < cut) or not plausible_day(day, newest):
                continue
            fps, days = ids[p]
            fps.append(fp)
            days.append(day)
        for u in plan.partitions:
            self.partitions[u.partition].prune(u.seen_cutoff, None)
        for p, (fps, days) in ids.items():
            self.partitions[p].seen.add_many(fps, days)
        counters: dict[int, list[tuple[int, bytes, int]]] = defaultdict(list)
        for (p, day, f), k in plan.dr.items():
            counters[p].append((day, plan.dr_fps[(p, day, f)][0], k))
        for p, items in counters.items():
            self.partitions[p].dr.set_many(items)
        for u in plan.partitions:
            o = self.partitions[u.partition]
            o.fence = u.fence
            o.part = u.part
            o.watermark = u.watermark
            o.prune(None, u.dr_cutoff_day)  # (its ids were pruned before they were added)
        self.landmark = plan.landmark
        self.communities.update(plan.new_communities)
        if plan.max_ts is not None and (self.watermark is None or plan.max_ts > self.watermark):
            self.watermark = plan.max_ts

    def forget(self) -> None:
        self.partitions.clear()
        self.communities.clear()
        self.loaded = False
