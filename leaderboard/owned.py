"""A worker's own copy of the state of the partitions it consumes (pure, no I/O).

A partition is consumed by one worker at a time, so that worker can keep the partition's dedupe ids
and diminishing-returns counters in memory instead of reading them from Redis before every batch. It
loads a partition once (``Store.load_partitions``), then absorbs each plan it sends. This is safe
because every apply is guarded by the partition fence: if anyone else wrote the partition (a
rebalance, a second worker, a restart of this one), the fence has moved, the apply is refused, and
the worker forgets its copy and loads it again. Kafka Streams keeps its state stores the same way.

Entries are dropped a whole day at a time once they fall behind the dedupe horizon; anything older
that lingers is ignored by the planner's rules (which compare against the horizon), so the copy
never needs to match Redis's exact pruning.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from leaderboard.bait import Detector
from leaderboard.plan import PartitionState, Plan, StoreState


@dataclass
class OwnedPartition:
    fence: int = -1
    #: the partition's newest time of a scored event (the planner's; ignored events do not move it)
    watermark: float | None = None
    seen: dict[str, float] = field(default_factory=dict)
    dr: dict[tuple[int, str], int] = field(default_factory=dict)
    #: day → ids / counter fields first written that day, for pruning a day at a time
    seen_days: dict[int, list[str]] = field(default_factory=dict)
    dr_days: dict[int, list[str]] = field(default_factory=dict)
    #: the comment-bait detector (None when the throttle is off); planning advances it in place
    bait: Detector | None = None
    #: (offset, events applied) of a partly applied envelope after the fence (plan.PartitionState)
    part: tuple[int, int] | None = None

    def add_seen(self, event_id: str, ts: float) -> None:
        self.seen[event_id] = ts
        self.seen_days.setdefault(math.floor(ts / 86400), []).append(event_id)

    def set_dr(self, day: int, f: str, k: int) -> None:
        if (day, f) not in self.dr:
            self.dr_days.setdefault(day, []).append(f)
        self.dr[(day, f)] = k

    def prune(self, seen_cutoff: float | None, dr_cutoff_day: int | None) -> None:
        if seen_cutoff is not None:
            last = math.floor(seen_cutoff / 86400)  # days before this one are wholly behind
            for day in [d for d in self.seen_days if d < last]:
                for i in self.seen_days.pop(day):
                    ts = self.seen.get(i)
                    if ts is not None and ts < seen_cutoff:
                        del self.seen[i]
        if dr_cutoff_day is not None:
            for day in [d for d in self.dr_days if d < dr_cutoff_day]:
                for f in self.dr_days.pop(day):
                    self.dr.pop((day, f), None)


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
        )

    def absorb(self, plan: Plan) -> None:
        """Take on the effects of a plan that is being applied (optimistically)."""
        for p, ts, i in plan.seen:
            self.partitions[p].add_seen(i, ts)
        for (p, day, f), k in plan.dr.items():
            self.partitions[p].set_dr(day, f, k)
        for u in plan.partitions:
            o = self.partitions[u.partition]
            o.fence = u.fence
            o.part = u.part
            o.watermark = u.watermark
            o.prune(u.seen_cutoff, u.dr_cutoff_day)
        self.landmark = plan.landmark
        self.communities.update(plan.new_communities)
        if plan.max_ts is not None and (self.watermark is None or plan.max_ts > self.watermark):
            self.watermark = plan.max_ts

    def forget(self) -> None:
        self.partitions.clear()
        self.communities.clear()
        self.loaded = False
