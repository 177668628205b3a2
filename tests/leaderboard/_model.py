"""A tiny in-memory model of what ``leaderboard/store/lua/apply.lua`` does with a :class:`Plan`.

It exists so the plan's batch properties (batch-boundary independence, idempotence) can be tested
without Redis. It follows the Lua script step by step: fence and landmark guards, the global
watermark, landmark rescaling, window expiry, adds, seen ids and diminishing-returns counters,
explain counters and points per post, then fences and pruning by the partition watermark. The state
a worker plans against is the whole partition state, as a worker's own copy
(``leaderboard.owned``) holds it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from leaderboard.fingerprint import FingerprintSet, PairCounters, fingerprint, pair_fingerprint
from leaderboard.plan import (
    DECAY_PRUNE_MP,
    SEEN_DAY_S,
    SEP,
    DeadLetter,
    Message,
    PartitionState,
    Plan,
    StoreState,
)
from leaderboard.scoring import ScoringRules, decayed_value


def seen_set(ids: Mapping[str, float]) -> FingerprintSet:
    """The compact id set holding ``ids`` (id → event time), by day as the worker holds them."""
    out = FingerprintSet()
    out.add_many(
        [fingerprint(i) for i in ids], [math.floor(ts / SEEN_DAY_S) for ts in ids.values()]
    )
    return out


def dr_counters(counters: Mapping[tuple[int, str], int]) -> PairCounters:
    """The compact counters holding ``counters`` ((period, "actor␟target") → count)."""
    out = PairCounters()
    items = []
    for (day, f), k in counters.items():
        actor, _, target = f.partition(SEP)
        items.append((day, pair_fingerprint(actor, target), k))
    out.set_many(items)
    return out


@dataclass
class Model:
    rules: ScoringRules
    fences: dict[int, int] = field(default_factory=dict)
    pwm: dict[int, float] = field(default_factory=dict)
    wm: float | None = None
    landmark: int | None = None
    seen: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    dr: dict[int, dict[tuple[int, str], int]] = field(default_factory=lambda: defaultdict(dict))
    totals: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: live window buckets only: (window index, bucket index, board, member) → milli-points
    buckets: Counter[tuple[int, int, str, str]] = field(default_factory=Counter)
    #: (board, member) → value stored against ``landmark``
    decayed: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    explain: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (member, post, period) → milli-points (the ``posts:<member>|<period>`` zsets; the model
    #: keeps every period: the drop of old ones is checked against the store)
    posts: Counter[tuple[str, str, int]] = field(default_factory=Counter)
    stats: Counter[str] = field(default_factory=Counter)
    dead: list[DeadLetter] = field(default_factory=list)
    applied_plans: int = 0

    def state(self, messages: Sequence[Message]) -> StoreState:
        """The state a worker that owns the messages' partitions plans against."""
        parts: dict[int, PartitionState] = {}
        for p in {m.partition for m in messages}:
            parts[p] = PartitionState(
                fence=self.fences.get(p, -1),
                watermark=self.pwm.get(p),
                seen=seen_set(self.seen.get(p, {})),
                dr=dr_counters(self.dr.get(p, {})),
            )
        return StoreState(parts, watermark=self.wm, landmark=self.landmark)

    def apply(self, plan: Plan) -> None:
        """Apply ``plan`` as apply.lua does; a moved fence or landmark is a test failure."""
        if plan.empty:
            return
        for u in plan.partitions:
            assert self.fences.get(u.partition, -1) == u.expected_fence, "fence conflict"
        assert self.landmark == plan.expected_landmark, "landmark conflict"
        self.applied_plans += 1
        if plan.max_ts is not None and (self.wm is None or plan.max_ts > self.wm):
            self.wm = plan.max_ts
        if plan.landmark is not None and plan.landmark != self.landmark:
            if self.landmark is not None:
                for k in list(self.decayed):
                    self.decayed[k] *= plan.rebase_factor
                    if self.decayed[k] < DECAY_PRUNE_MP:
                        del self.decayed[k]
            self.landmark = plan.landmark
        cutoffs = [None if self.wm is None else w.cutoff(self.wm) for w in self.rules.windows]
        for key in list(self.buckets):
            cut = cutoffs[key[0]]
            if cut is not None and key[1] <= cut:
                del self.buckets[key]
        for k, v in plan.totals.items():
            self.totals[k] += v
        for key, v in plan.buckets.items():
            cut = cutoffs[key[0]]
            if v and (cut is None or key[1] > cut):
                self.buckets[key] += v
        for k, dv in plan.decayed.items():
            if dv > 0.0:
                self.decayed[k] += dv
        for p, ts, i in plan.seen:
            self.seen[p][i] = ts
        for (p, day, f), k in plan.dr.items():
            self.dr[p][(day, f)] = k
        self.explain.update({k: v for k, v in plan.explain.items() if v})
        self.posts.update(plan.posts)
        self.stats.update({k: v for k, v in plan.stats.items() if v})
        self.dead.extend(plan.dead)
        for u in plan.partitions:
            self.fences[u.partition] = u.fence
            if u.watermark is not None:
                self.pwm[u.partition] = u.watermark
            if u.seen_cutoff is not None:
                # whole days, as apply.lua prunes ids
                cut = math.floor(u.seen_cutoff / SEEN_DAY_S)
                self.seen[u.partition] = {
                    i: ts
                    for i, ts in self.seen[u.partition].items()
                    if math.floor(ts / SEEN_DAY_S) >= cut
                }
            if u.dr_cutoff_day is not None:
                cut_day = u.dr_cutoff_day
                self.dr[u.partition] = {
                    k: v for k, v in self.dr[u.partition].items() if k[0] >= cut_day
                }

    # -- what a reader of the boards would see ---------------------------------------------

    def board_totals(self) -> dict[tuple[str, str], int]:
        """Every board's member scores in milli-points (all-time and live window boards)."""
        out: Counter[tuple[str, str]] = Counter()
        for (board, member), v in self.totals.items():
            out[(board, member)] += v
        for (_wi, _idx, board, member), v in self.buckets.items():
            out[(board, member)] += v
        return {k: v for k, v in out.items() if v > 0}

    def live_buckets(self) -> dict[tuple[int, int, str, str], int]:
        return {k: v for k, v in self.buckets.items() if v}

    def decayed_points(self) -> dict[tuple[str, str], float]:
        """Decayed scores at the watermark, in milli-points, independent of the landmark."""
        if self.wm is None or self.landmark is None:
            return {}
        return {
            k: decayed_value(v, self.wm, self.landmark, self.rules.half_life_s)
            for k, v in self.decayed.items()
            if v > 0.0
        }

    def seen_ids(self) -> dict[int, dict[str, float]]:
        return {p: dict(ids) for p, ids in self.seen.items() if ids}

    def dr_counters(self) -> dict[int, dict[tuple[int, str], int]]:
        return {p: dict(c) for p, c in self.dr.items() if c}


def run(
    batches: Sequence[Sequence[Message]],
    rules: ScoringRules,
    *,
    dedupe_horizon_s: int,
    rebase_after_s: int,
    max_future_s: float = 300.0,
    model: Model | None = None,
) -> Model:
    """Plan and apply each batch in turn against the state the previous ones produced."""
    from leaderboard.plan import build_plan

    m = model if model is not None else Model(rules)
    for batch in batches:
        plan = build_plan(
            list(batch),
            m.state(batch),
            rules,
            dedupe_horizon_s=dedupe_horizon_s,
            rebase_after_s=rebase_after_s,
            max_future_s=max_future_s,
        )
        m.apply(plan)
    return m
