"""Turn a batch of decoded Kafka messages into one atomic write plan (pure, no I/O).

The worker holds the state a batch needs (:class:`StoreState`: partition fences, the ids seen within
the dedupe horizon, diminishing-returns counters, the decay landmark; see ``leaderboard.owned``),
calls :func:`build_plan`, and the store applies the plan in one Lua call that first checks the
fences it was planned against.
All scoring decisions happen here, in processing order, so they are the same whatever the batch
boundaries: a batch only aggregates what a one-event-at-a-time run would have written.

Per-partition rules (deterministic because a partition's content and order are):
- a message at an offset ≤ the partition fence was applied before and is skipped whole;
- an id seen before is a duplicate and changes nothing, while the UTC day of that earlier
  occurrence is not wholly behind the dedupe horizon of the partition's newest event time (ids are
  held as 128-bit fingerprints by day, :mod:`leaderboard.fingerprint`, and pruned by the same rule);
- an event older than the partition's newest event time minus the horizon is *late*: it cannot be
  checked against pruned ids, so it is dead-lettered rather than risk a double count;
- a big envelope comes in pieces (``Message.start``/``ends``) so that no apply is unbounded: until
  its last piece is applied the fence stays before it and the partition's ``part`` says how many
  of its events are in, so a redelivered envelope applies exactly the rest;
- an event more than ``max_future_s`` ahead of its Kafka record's timestamp is from the *future*
  and dead-lettered: trusted, it would move W (expiring every window), jump the decay landmark
  (zeroing every decayed board) and make every later event of its partition late. The record
  time is in the log, so replays and rebuilds decide the same way and no wall clock is read.
Only scored events move a clock (W, the landmark, the partition's newest time): an ignored event
(self-interaction, zero-weight kind such as a post announcement) cannot make a later one late.
Window membership uses the global watermark (the store enforces it again at apply time).

Bait evidence from other partitions (:mod:`leaderboard.bait.evidence`) is an item of the log like
an event: taken in partition order, de-duplicated by id under the same horizon rule (a worker that
died between producing it and applying its own batch produces it again, with the same id),
dead-lettered when ``future`` or ``late`` by its time, then handed to the partition's detector
(:meth:`Detector.flag <leaderboard.bait.detector.Detector.flag>`). It scores nothing and moves no
watermark (only the detector's clock). Its id is kept among the seen ids behind :data:`SEP`, which
no event id can hold, so an event can never shadow an evidence record nor the reverse. The
evidence the detectors produce while planning (throttles they start) travels in the plan
(``Plan.evidence``) for the worker to send before it applies.

Communities are bounded (producers name them, and each makes five permanent boards): an event's
community gets boards only if it is in the allow-list (when there is one) and among the
namespace's admitted communities, or the cap leaves room to admit it. The admitted set lives in
Redis and only grows; a worker's copy may lag it. The plan lists what it admitted and what it
refused for the cap, and the apply is refused (re-planned from a fresh copy) only if those
decisions differ from what the current set gives: the admissions would pass the cap, or another
worker admitted a community this plan refused. So the set never passes the cap, and a community
is either admitted before its first scoring event, with every one of its events on its boards, or
never. Which communities fill the last places depends on the order applies reach Redis (the only
order-dependence in the boards).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Container, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

import orjson

from leaderboard.bait import (
    COMMENT_KINDS,
    ENGAGEMENT_KINDS,
    FULL,
    POD_KINDS,
    Clawback,
    Decision,
    Detector,
    Evidence,
    group_key,
    pod_key,
)
from leaderboard.calendar import DAY_S, day_periods
from leaderboard.events import FUTURE, Event, Profile, Rejected, future_bound, future_detail
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.fingerprint import FingerprintSet, PairCounters, fingerprint, pair_fingerprint
from leaderboard.scoring import ALL, DECAYED, ScoringRules, contribution

#: Separator of actor and target in a diminishing-returns counter field; ids never hold control chars.
SEP = "\x1f"
#: Seen ids are held, and pruned, by the UTC day of their event time (leaderboard.fingerprint).
SEEN_DAY_S = 86400
#: Decayed members below this many milli-points (1e-12 points) are pruned when the landmark moves.
#: The contract allows pruning below 1e-6 points, but what is pruned is lost if the member scores
#: again; this low keeps the relative error of any member ≥ 1e-6 points under 1e-6.
DECAY_PRUNE_MP = 1e-9


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed Kafka message, decoded."""

    partition: int
    offset: int
    items: Sequence[Event | Profile | Evidence | Rejected]
    #: the Kafka record's timestamp in unix seconds (None: the broker recorded none)
    record_ts: float | None = None
    #: a piece of a big envelope (applies stay bounded): the envelope index of ``items[0]``, and
    #: whether the items run to the envelope's end (only then does the fence reach ``offset``)
    start: int = 0
    ends: bool = True


@dataclass(frozen=True, slots=True)
class PartitionState:
    fence: int = -1
    #: the partition's newest event time of a scored event (lateness and pruning are measured
    #: from it)
    watermark: float | None = None
    #: fingerprints of the ids applied before, by the day of their event time
    seen: FingerprintSet = field(default_factory=FingerprintSet)
    #: (period, fingerprint of "actor␟target") → events scored (diminishing returns)
    dr: PairCounters = field(default_factory=PairCounters)
    #: the partition's comment-bait detector (None: the throttle is off). Planning advances it in
    #: place; its changes travel in the plan, and a refused plan makes the worker reload it.
    bait: Detector | None = None
    #: (offset, n): the message after the fence is partly applied, its first n events
    part: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class StoreState:
    partitions: Mapping[int, PartitionState]
    watermark: float | None = None
    landmark: int | None = None
    #: the namespace's rebuild generation the state was loaded in (apply.lua checks it)
    generation: int = 0
    #: the communities admitted to boards so far (the ``communities`` set; a copy may lag it)
    communities: Set[str] = frozenset()
    #: the erased members (leaderboard.moderation): their events are read, nothing is written
    #: for them; and the erasure counter the tombstones were read at (apply.lua checks it)
    erased: Container[str] = frozenset()
    erasures: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    index: int | None
    raw: bytes
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class PartitionUpdate:
    partition: int
    expected_fence: int
    fence: int
    watermark: float | None
    seen_cutoff: float | None
    dr_cutoff_day: int | None
    #: the partly applied message (offset, events applied) before and after the plan
    expected_part: tuple[int, int] | None = None
    part: tuple[int, int] | None = None


@dataclass
class Plan:
    partitions: list[PartitionUpdate] = field(default_factory=list)
    expected_landmark: int | None = None
    landmark: int | None = None
    generation: int = 0
    rebase_factor: float = 1.0
    max_ts: float | None = None
    #: (board, member) → milli-points, for boards without windows (all, all:<c>)
    totals: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (unit index, period index, label, archive board, member) → milli-points, for the
    #: archived calendar periods (``day@2012-07-04``, ``week@2012-W27:physics``, ...; the apply
    #: adds what falls in W's period to the live ``day``/``week``/``month`` boards too)
    archives: dict[tuple[int, int, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    #: (member, "name" or "avatar") → (ts, id, value) of this plan's latest (by ts, then id)
    #: profile event setting it ("" clears); the apply keeps the latest ever, field by field
    profiles: dict[tuple[str, str], tuple[float, str, str]] = field(default_factory=dict)
    #: (window index, bucket index, board, member) → milli-points
    buckets: dict[tuple[int, int, str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (board, member) → forward-decayed milli-points relative to ``landmark``
    decayed: dict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    #: (partition, ts, id) of every id this plan applies, and their fingerprints (same order)
    seen: list[tuple[int, float, str]] = field(default_factory=list)
    seen_fps: list[bytes] = field(default_factory=list)
    #: (partition, period, "actor␟target") → the pair's count after this plan; ``dr_fps`` has
    #: the pair's fingerprint and its count before
    dr: dict[tuple[int, int, str], int] = field(default_factory=dict)
    dr_fps: dict[tuple[int, int, str], tuple[bytes, int]] = field(default_factory=dict)
    explain: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    #: (member, post, period) → milli-points of the applied scored events that name a post, by
    #: the ``POSTS_PERIOD_S`` period of their event time (top posts)
    posts: dict[tuple[str, str, int], int] = field(default_factory=dict)
    stats: Counter[str] = field(default_factory=Counter)
    #: comment-bait detector state changed by this batch: (partition, table, key, value or None)
    bait_state: list[tuple[int, str, str, bytes | None]] = field(default_factory=list)
    #: throttles started and ended by this batch, in event order per partition
    alerts: list[Decision] = field(default_factory=list)
    #: (source partition, record): evidence of the throttles this batch started, to be produced
    #: to every other partition before the plan is applied
    evidence: list[tuple[int, Evidence]] = field(default_factory=list)
    #: evidence records from other partitions this batch handed to a detector
    evidence_received: int = 0
    #: (member, group, period) → milli-points the throttle withheld in this batch, by the
    #: ``POSTS_PERIOD_S`` period of the interactions' event time
    withheld: dict[tuple[str, str, int], int] = field(default_factory=dict)
    boards: set[str] = field(default_factory=set)
    dead: list[DeadLetter] = field(default_factory=list)
    #: communities this plan admits to boards, in the order it met them
    new_communities: list[str] = field(default_factory=list)
    #: communities it gave no boards for the cap (apply.lua checks both lists against the set)
    capped_communities: list[str] = field(default_factory=list)
    #: the cap those decisions used (0: none)
    max_communities: int = 0
    #: the erasure counter the plan's tombstones were read at (an erase since: re-planned)
    erasures: int = 0
    #: the topic's partition count (0: unknown). A period's winners are judged once every
    #: partition is past its end plus the grace; until each has carried an event, the ones
    #: that have not count as behind (only the idle allowance closes it then)
    partitions_total: int = 0
    #: (member, community) of every community board this plan adds points to (``mcomm``)
    member_communities: set[tuple[str, str]] = field(default_factory=set)
    #: community_refused / community_capped: applied events that scored without some of their
    #: communities (not allowed / beyond the cap); counted apart from the outcomes, which add up
    community_stats: Counter[str] = field(default_factory=Counter)

    @property
    def empty(self) -> bool:
        return not self.partitions

    @property
    def board_rows(self) -> int:
        """Board rows the plan writes (totals, archives, buckets, decayed), a measure of how long
        its apply holds Redis."""
        return len(self.totals) + len(self.archives) + len(self.buckets) + len(self.decayed)


def choose_landmark(
    current: int | None, newest_ts: float | None, rebase_after_s: int
) -> int | None:
    """The decay landmark for a batch: kept, set on first use, or moved forward before overflow.

    Landmarks are whole days so they print and compare exactly.
    """
    if newest_ts is None:
        return current
    if current is None or newest_ts - current > rebase_after_s:
        return math.floor(newest_ts / 86400) * 86400
    return current


def _lookup(
    msgs: Sequence[Message], fence: int, pstate: PartitionState, period: int
) -> tuple[dict[str, bytes], dict[str, int], dict[str, bytes], dict[tuple[int, str], int]]:
    """What a partition's batch may need of its state, in one question each: every item's id
    fingerprint and the day it was seen under (those seen), every event's pair fingerprint and
    the pair's count in the event's period. (A superset: items behind the fence, duplicates and
    dead letters are looked up too, and simply not used.)"""
    fps: dict[str, bytes] = {}
    pairs: dict[str, bytes] = {}
    periods: dict[tuple[int, str], None] = {}
    floor = math.floor
    for m in msgs:
        if m.offset <= fence:
            continue
        for item in m.items:
            if type(item) is Event:
                eid = item.id
                if eid not in fps:
                    fps[eid] = fingerprint(eid)
                f = item.actor + SEP + item.target
                if f not in pairs:
                    pairs[f] = pair_fingerprint(item.actor, item.target)
                periods[(floor(item.ts / period), f)] = None
            elif type(item) is Evidence:
                eid = SEP + item.id
                if eid not in fps:
                    fps[eid] = fingerprint(eid)
            elif type(item) is Profile and item.id not in fps:
                fps[item.id] = fingerprint(item.id)
    days = pstate.seen.days_of_many(list(fps.values()))
    seen = {eid: d for eid, d in zip(fps, days, strict=True) if d is not None}
    keys = list(periods)
    counts = pstate.dr.get_many([(day, pairs[f]) for day, f in keys])
    dr = {k: c for k, c in zip(keys, counts, strict=True) if c}
    return fps, seen, pairs, dr


def build_plan(
    messages: Sequence[Message],
    state: StoreState,
    rules: ScoringRules,
    *,
    dedupe_horizon_s: int,
    rebase_after_s: int,
    max_future_s: float,
    allowed_communities: Set[str] | None = None,
    max_communities: int = 0,
    watermark_floor: float | None = None,
    partitions_total: int = 0,
) -> Plan:
    """Score a batch against ``state`` and aggregate everything it writes into one :class:`Plan`.

    ``max_future_s``: how far an event's ts may run ahead of its message's ``record_ts``.
    ``allowed_communities``: the only communities that get boards (None: any);
    ``max_communities``: most distinct communities with boards in the namespace (0: no cap).
    ``watermark_floor``: on a sharded namespace, the largest W of all shards (docs/scaling.md):
    this shard's windows are cut and expired at it too, as one namespace's would be at its W.
    ``partitions_total``: the topic's partition count, for the close of winners' periods.
    """
    plan = Plan(partitions_total=partitions_total)
    weights = rules.weights_mp
    period = rules.dr_period_s
    half_life = rules.half_life_s
    windows = rules.windows
    watermark = state.watermark
    if watermark_floor is not None and (watermark is None or watermark_floor > watermark):
        watermark = watermark_floor
    # hot loop below: everything it looks up per event is prepared here once
    wins = [
        (wi, w.bucket_s, w.name, w.cutoff(watermark) if watermark is not None else None)
        for wi, w in enumerate(windows)
    ]
    fields = {k: ("n:" + k, "full:" + k, "mp:" + k, "wh:" + k) for k in weights}
    # Window buckets nest: with b a multiple of the base size and an integral ts,
    # floor(ts / b) == floor(ts / base) // (b / base) exactly, so one aggregate serves every window
    # (and every calendar period: the base divides a day, and periods are whole days).
    base = math.gcd(DAY_S, *(w.bucket_s for w in windows))
    agg: dict[tuple[str, tuple[str, ...], int], int] = {}
    ex: dict[tuple[str, str], list[int]] = {}
    withheld = plan.withheld
    floor = math.floor
    n_invalid = n_late = n_future = n_duplicate = n_ignored = n_applied = n_erased = 0
    # erased members (leaderboard.moderation): their events go through everything as before (the
    # detector, diminishing returns and the clocks must see what they saw, or others' scores
    # would change), and what the plan would write for them is taken out at the end
    erased = state.erased if state.erased else None
    hit: set[str] = set()
    totals, buckets, decayed, explain, posts, stats = (
        plan.totals,
        plan.buckets,
        plan.decayed,
        plan.explain,
        plan.posts,
        plan.stats,
    )

    # 2^((ts − L)/h) must stay far from overflow whatever the half-life: at most 2^500
    rebase_after_s = min(rebase_after_s, int(500 * half_life))
    # The landmark moves only for events that are applied (never for a duplicate or a dead letter
    # with a bogus time), and before the event whose value would otherwise grow too large; values
    # already aggregated in this plan are rescaled with it.
    landmark = state.landmark
    plan.expected_landmark = state.landmark
    plan.generation = state.generation

    admitted = state.communities
    new: dict[str, None] = {}  # (ordered)
    over: dict[str, None] = {}  # refused for the cap
    # communities tuple → (those that get boards, some not allowed, some beyond the cap); one
    # answer per tuple serves the whole plan: admitted ones stay admitted, a full cap stays full
    bounded: dict[tuple[str, ...], tuple[tuple[str, ...], bool, bool]] = {}

    def bound(communities: tuple[str, ...]) -> tuple[tuple[str, ...], bool, bool]:
        kept: list[str] = []
        refused = capped = False
        for c in communities:
            if allowed_communities is not None and c not in allowed_communities:
                refused = True
            elif c in admitted or c in new:
                kept.append(c)
            elif max_communities and len(admitted) + len(new) >= max_communities:
                capped = True
                over[c] = None
            else:
                new[c] = None
                kept.append(c)
        return tuple(kept), refused, capped

    mcomm: set[tuple[str, tuple[str, ...]]] = set()
    n_refused = n_capped = 0
    archives = plan.archives
    claw_into = (totals, archives, buckets, decayed, posts, withheld)
    by_partition: dict[int, list[Message]] = defaultdict(list)
    for m in messages:
        by_partition[m.partition].append(m)

    max_ts: float | None = None
    for p in sorted(by_partition):
        pstate = state.partitions.get(p, PartitionState())
        fence = pstate.fence
        pwm = pstate.watermark
        det = pstate.bait
        det_groups = det.groups if det is not None else {}
        msgs = sorted(by_partition[p], key=lambda m: m.offset)
        # the partition's earlier ids and counters, looked up once for the whole batch (the
        # compact state answers a batch far faster than one question at a time)
        fps, seen_before, pairs, dr_before = _lookup(msgs, fence, pstate, period)
        dr_now: dict[tuple[int, str], int] = {}
        batch_ids: dict[str, int] = {}  # id → day, applied earlier in this batch
        new_fence = fence
        part = new_part = pstate.part
        for m in msgs:
            if m.offset <= new_fence:
                continue  # applied before (redelivery after a crash or rebalance)
            items = m.items
            if new_part is not None and new_part[0] == m.offset:
                # the rest of a partly applied envelope: its first events are in already
                items = items[max(0, new_part[1] - m.start) :]
                if not items and not m.ends:
                    continue
            if m.ends:
                new_fence, new_part = m.offset, None
            else:
                new_part = (m.offset, m.start + len(m.items))
            not_after = future_bound(m.record_ts, max_future_s)
            # (pos: the index in the envelope, as dead letters name it)
            for pos, item in enumerate(items, m.start + len(m.items) - len(items)):
                if type(item) is not Event:  # (one test on the hot path for both rarer kinds)
                    if isinstance(item, Rejected):
                        n_invalid += 1
                        plan.dead.append(
                            DeadLetter(p, m.offset, item.index, item.raw, item.reason, item.detail)
                        )
                        continue
                    if type(item) is Profile:
                        # a display name / avatar: de-duplicated, future and late like an event;
                        # it scores nothing and moves no clock (counted as ignored)
                        pts_ = item.ts
                        reason = None
                        if pts_ > not_after:
                            assert m.record_ts is not None
                            n_future += 1
                            reason, detail = (
                                FUTURE,
                                future_detail(
                                    pts_, m.record_ts, max_future_s, "its Kafka record's time"
                                ),
                            )
                        elif pwm is not None and pts_ < pwm - dedupe_horizon_s:
                            n_late += 1
                            reason, detail = "late", _late(pts_, pwm, dedupe_horizon_s)
                        if reason is not None:
                            plan.dead.append(
                                DeadLetter(p, m.offset, pos, _raw(item), reason, detail)
                            )
                            continue
                        first = batch_ids.get(item.id)
                        if first is None:
                            first = seen_before.get(item.id)
                        if first is not None and (
                            pwm is None or first >= floor((pwm - dedupe_horizon_s) / SEEN_DAY_S)
                        ):
                            n_duplicate += 1
                            continue
                        batch_ids[item.id] = floor(pts_ / SEEN_DAY_S)
                        plan.seen.append((p, pts_, item.id))
                        plan.seen_fps.append(fps[item.id])
                        if erased is not None and item.member in erased:
                            n_erased += 1
                            continue
                        for fname, pvalue in (("name", item.name), ("avatar", item.avatar)):
                            if pvalue is None:
                                continue
                            pkey_ = (item.member, fname)
                            had = plan.profiles.get(pkey_)
                            if had is None or (pts_, item.id) > had[:2]:
                                plan.profiles[pkey_] = (pts_, item.id, pvalue)
                        n_ignored += 1
                        continue
                    assert isinstance(item, Evidence)
                    at = item.at
                    if at > not_after:
                        assert m.record_ts is not None
                        n_future += 1
                        detail = future_detail(
                            at, m.record_ts, max_future_s, "its Kafka record's time"
                        )
                        plan.dead.append(DeadLetter(p, m.offset, None, _raw(item), FUTURE, detail))
                        continue
                    if pwm is not None and at < pwm - dedupe_horizon_s:
                        n_late += 1
                        plan.dead.append(
                            DeadLetter(
                                p,
                                m.offset,
                                None,
                                _raw(item),
                                "late",
                                _late(at, pwm, dedupe_horizon_s),
                            )
                        )
                        continue
                    eid = SEP + item.id
                    first = batch_ids.get(eid)
                    if first is None:
                        first = seen_before.get(eid)
                    if first is not None and (
                        pwm is None or first >= floor((pwm - dedupe_horizon_s) / SEEN_DAY_S)
                    ):
                        n_duplicate += 1
                        continue
                    batch_ids[eid] = floor(at / SEEN_DAY_S)
                    plan.seen.append((p, at, eid))
                    plan.seen_fps.append(fps[eid])
                    if det is not None:
                        det.flag(item)
                        plan.evidence_received += 1
                        if det.clawbacks:
                            _claw_back(
                                _noted(det.take_clawbacks(), erased, hit),
                                pwm,
                                landmark,
                                half_life,
                                wins,
                                ex,
                                *claw_into,
                            )
                    else:
                        n_ignored += 1  # (the throttle is off: nothing takes it)
                    continue
                ev = item
                ts = ev.ts
                if ts > not_after:
                    # (before the bait detector too: its clock expires idle posts and authors)
                    assert m.record_ts is not None  # (without one, not_after is MAX_TS)
                    n_future += 1
                    plan.dead.append(
                        DeadLetter(
                            p,
                            m.offset,
                            pos,
                            _raw(ev),
                            FUTURE,
                            future_detail(ts, m.record_ts, max_future_s, "its Kafka record's time"),
                        )
                    )
                    continue
                if pwm is not None and ts < pwm - dedupe_horizon_s:
                    n_late += 1
                    plan.dead.append(
                        DeadLetter(
                            p, m.offset, pos, _raw(ev), "late", _late(ts, pwm, dedupe_horizon_s)
                        )
                    )
                    continue
                # a duplicate of an occurrence whose day is not wholly behind the horizon of the
                # running partition watermark; ids are pruned by the same rule (whole days), so
                # batch boundaries do not matter
                first = batch_ids.get(ev.id)
                if first is None:
                    first = seen_before.get(ev.id)
                if first is not None and (
                    pwm is None or first >= floor((pwm - dedupe_horizon_s) / SEEN_DAY_S)
                ):
                    n_duplicate += 1
                    continue
                batch_ids[ev.id] = floor(ts / SEEN_DAY_S)
                plan.seen.append((p, ts, ev.id))
                plan.seen_fps.append(fps[ev.id])
                target = ev.target
                kind = ev.kind
                gone = erased is not None and target in erased
                if gone:
                    hit.add(target)
                row = ex.get((target, kind))
                if row is None:
                    row = ex[(target, kind)] = [0, 0, 0, 0]  # n, full, mp, withheld
                row[0] += 1
                mult = FULL
                judged = False
                if det is not None:
                    # the detector sees each new event once, in partition order (it decides in
                    # event time, so batch boundaries never change what it decides)
                    if kind in COMMENT_KINDS or ev.post is not None or kind == "post":
                        mult = det.observe(kind, ts, ev.actor, target, ev.post, ev.text)
                        judged = True
                        if det.clawbacks:
                            # (a throttle that found a ring: its earlier posts pay back first)
                            _claw_back(
                                _noted(det.take_clawbacks(), erased, hit),
                                pwm,
                                landmark,
                                half_life,
                                wins,
                                ex,
                                *claw_into,
                            )
                    elif kind in ENGAGEMENT_KINDS and "t:" + target in det_groups:
                        det.observe(kind, ts, ev.actor, target, None, None)
                    else:
                        # not judged, but it gives the actor a history here and makes it known
                        # to the target (strangers and new accounts are signals)
                        det.touch(ts, ev.actor, target)
                weight = weights[kind]
                if ev.actor == target or weight == 0:
                    if gone:
                        n_erased += 1
                    else:
                        n_ignored += 1
                    if ev.actor == target:
                        explain[(target, "self")] += 1
                    continue
                key = (floor(ts / period), ev.actor + SEP + target)
                k = dr_now.get(key)
                if k is None:
                    k = dr_before.get(key, 0)
                k += 1
                dr_now[key] = k
                points = contribution(weight, k)
                if mult != FULL:
                    # demote, never delete: the event is counted, a share of its points withheld
                    kept = points * mult // FULL
                    row[3] += points - kept
                    # (a share or like is withheld by its post's engagement-pod throttle)
                    group = (
                        pod_key(ev.post)
                        if kind in POD_KINDS and ev.post is not None
                        else group_key(ev.post, target)
                    )
                    gkey = (target, group, floor(ts / POSTS_PERIOD_S))
                    withheld[gkey] = withheld.get(gkey, 0) + points - kept
                    points = kept
                if gone:
                    n_erased += 1
                else:
                    n_applied += 1
                # W and the partition clock advance with applied events only (the contract's word;
                # self/zero-weight are not): an ignored event must not make later events late
                if max_ts is None or ts > max_ts:
                    max_ts = ts
                if pwm is None or ts > pwm:
                    pwm = ts
                row[1] += weight
                if points == 0:
                    continue
                row[2] += points
                post = ev.post
                if post is not None:
                    pkey = (target, post, floor(ts / POSTS_PERIOD_S))
                    posts[pkey] = posts.get(pkey, 0) + points
                communities = ev.communities
                if communities:
                    cb = bounded.get(communities)
                    if cb is None:
                        cb = bounded[communities] = bound(communities)
                    communities = cb[0]
                    n_refused += cb[1]
                    n_capped += cb[2]
                    if communities:
                        mcomm.add((target, communities))
                if judged and mult == FULL:
                    assert det is not None
                    det.counted(kind, points, communities)  # (for a retroactive throttle)
                if ts == floor(ts):
                    # one aggregate per (target, communities, base bucket); the all-time and
                    # window boards are expanded from it once per key after the loop
                    akey = (target, communities, floor(ts / base))
                    agg[akey] = agg.get(akey, 0) + points
                else:
                    _add_direct(totals, archives, buckets, wins, target, communities, ts, points)
                if landmark is None or ts - landmark > rebase_after_s:
                    moved = choose_landmark(landmark, ts, rebase_after_s)
                    assert moved is not None
                    if landmark is not None:
                        f = 2.0 ** (-(moved - landmark) / half_life)
                        for dkey in decayed:
                            decayed[dkey] *= f
                    landmark = moved
                value = points * 2.0 ** ((ts - landmark) / half_life)
                if value > 0.0:
                    decayed[(DECAYED, target)] += value
                    for c in communities:
                        decayed[(DECAYED + ":" + c, target)] += value
        if det is not None:
            plan.alerts.extend(det.take_decisions())
            plan.evidence.extend((p, e) for e in det.take_evidence())
            plan.bait_state.extend((p, t, key, v) for t, key, v in det.take_changes())
        if new_fence == fence and new_part == part:
            continue
        for (day, f), k in dr_now.items():
            plan.dr[(p, day, f)] = k
            plan.dr_fps[(p, day, f)] = (pairs[f], dr_before.get((day, f), 0))
        seen_cutoff = None if pwm is None else pwm - dedupe_horizon_s
        plan.partitions.append(
            PartitionUpdate(
                partition=p,
                expected_fence=fence,
                fence=new_fence,
                watermark=pwm,
                seen_cutoff=seen_cutoff,
                dr_cutoff_day=None if seen_cutoff is None else math.floor(seen_cutoff / period),
                expected_part=part,
                part=new_part,
            )
        )
    # (W moves to the floor with the batch; a floor alone, with nothing to apply, is
    # Store.raise_watermark's)
    if (
        watermark_floor is not None
        and plan.partitions
        and (max_ts is None or watermark_floor > max_ts)
    ):
        max_ts = watermark_floor
    plan.max_ts = max_ts
    nested = [(wi, bucket_s // base, name, cut) for wi, bucket_s, name, cut in wins]
    per_day = DAY_S // base
    for (target, communities, bidx), pts in agg.items():
        suffixes = ("", *(":" + c for c in communities)) if communities else ("",)
        for s in suffixes:
            totals[(ALL + s, target)] += pts
        for u, per in enumerate(day_periods(bidx // per_day)):
            name = per.board
            for s in suffixes:
                archives[(u, per.index, per.label, name + s, target)] += pts
        for wi, ratio, name, cut in nested:
            idx = bidx // ratio
            if cut is not None and idx <= cut:
                continue  # its bucket already left the window
            for s in suffixes:
                buckets[(wi, idx, name + s, target)] += pts
    for (target, kind), (n, full, mp, wh) in ex.items():
        f_n, f_full, f_mp, f_wh = fields[kind]
        explain[(target, f_n)] += n
        if full:
            explain[(target, f_full)] += full
        if mp:
            explain[(target, f_mp)] += mp
        if wh:
            explain[(target, f_wh)] += wh
    plan.landmark = landmark
    if state.landmark is not None and landmark is not None and landmark != state.landmark:
        plan.rebase_factor = 2.0 ** (-(landmark - state.landmark) / half_life)
    for name, n in (
        ("applied", n_applied),
        ("ignored", n_ignored),
        ("duplicate", n_duplicate),
        ("invalid", n_invalid),
        ("late", n_late),
        (FUTURE, n_future),
        ("erased", n_erased),
    ):
        if n:
            stats[name] = n
    if hit:
        _scrub(plan, hit, mcomm)
    if erased is not None:
        plan.alerts = [d for d in plan.alerts if d.target not in erased]
    plan.erasures = state.erasures
    plan.boards = {b for b, _ in totals} | {b for b, _ in decayed} | {k[2] for k in buckets}
    plan.new_communities = list(new)
    plan.capped_communities = list(over)
    plan.max_communities = max_communities
    plan.member_communities = {(m, c) for m, cs in mcomm for c in cs}
    for name, n in (("community_refused", n_refused), ("community_capped", n_capped)):
        if n:
            plan.community_stats[name] = n
    return plan


def _scrub(plan: Plan, members: set[str], mcomm: set[tuple[str, tuple[str, ...]]]) -> None:
    """Take out of ``plan`` everything it writes for ``members`` (erased): their rows on every
    board, archive and bucket, explain counters, posts, withheld points and communities."""
    tables: tuple[tuple[dict[Any, Any], int], ...] = (
        (plan.totals, 1),
        (plan.archives, 4),
        (plan.buckets, 3),
        (plan.decayed, 1),
        (plan.explain, 0),
        (plan.posts, 0),
        (plan.withheld, 0),
    )
    for table, at in tables:
        for key in [k for k in table if k[at] in members]:
            del table[key]
    for entry in [e for e in mcomm if e[0] in members]:
        mcomm.discard(entry)


def _noted(
    clawbacks: list[Clawback], erased: Container[str] | None, hit: set[str]
) -> list[Clawback]:
    """``clawbacks``, with their erased targets noted in ``hit`` (scrubbed from the plan)."""
    if erased is not None:
        hit.update(c.target for c in clawbacks if c.target in erased)
    return clawbacks


def _claw_back(
    clawbacks: list[Clawback],
    pwm: float | None,
    landmark: float | None,
    half_life: float,
    wins: list[tuple[int, int, str, int | None]],
    ex: dict[tuple[str, str], list[int]],
    totals: dict[tuple[str, str], int],
    archives: dict[tuple[int, int, str, str, str], int],
    buckets: dict[tuple[int, int, str, str], int],
    decayed: dict[tuple[str, str], float],
    posts: dict[tuple[str, str, int], int],
    withheld: dict[tuple[str, str, int], int],
) -> None:
    """Take back what a retroactive throttle withholds: from every board the interaction counted
    on, at its own event time (its window buckets, where still live, and its decayed value at
    the current landmark), from its post's points and its kind's counted points, into withheld.
    (``landmark`` is set: a clawed interaction was counted, which set one.)

    Top posts and withheld points are kept per ``POSTS_PERIOD_S`` period, and a period is
    dropped once the partition writes two periods later: like any write, a claw-back writes no
    period before the previous one of the partition's watermark ``pwm`` (an interaction counted
    longer ago than that: its post's points are in a period no read shows any more, and its
    withheld points go to that previous period, where the throttle line shows them)."""
    oldest = None if pwm is None else math.floor(pwm / POSTS_PERIOD_S) - 1
    for c in clawbacks:
        w = c.withheld_mp
        _add_direct(totals, archives, buckets, wins, c.target, c.communities, c.ts, -w)
        if landmark is not None:
            value = w * 2.0 ** ((c.ts - landmark) / half_life)
            decayed[(DECAYED, c.target)] -= value
            for comm in c.communities:
                decayed[(DECAYED + ":" + comm, c.target)] -= value
        period = math.floor(c.ts / POSTS_PERIOD_S)
        if oldest is None or period >= oldest:
            pkey = (c.target, c.post, period)
            posts[pkey] = posts.get(pkey, 0) - w
        row = ex.get((c.target, c.kind))
        if row is None:
            row = ex[(c.target, c.kind)] = [0, 0, 0, 0]  # n, full, mp, withheld
        row[2] -= w
        row[3] += w
        gkey = (c.target, c.group, period if oldest is None else max(period, oldest))
        withheld[gkey] = withheld.get(gkey, 0) + w


def _add_direct(
    totals: dict[tuple[str, str], int],
    archives: dict[tuple[int, int, str, str, str], int],
    buckets: dict[tuple[int, int, str, str], int],
    wins: list[tuple[int, int, str, int | None]],
    target: str,
    communities: tuple[str, ...],
    ts: float,
    points: int,
) -> None:
    """The all-time, calendar and window contributions of one event with a fractional ts (bucket
    indices computed straight from the contract's floor(ts / b))."""
    suffixes = ("", *(":" + c for c in communities))
    for s in suffixes:
        totals[(ALL + s, target)] += points
    for u, per in enumerate(day_periods(math.floor(ts / DAY_S))):
        name = per.board
        for s in suffixes:
            archives[(u, per.index, per.label, name + s, target)] += points
    for wi, bucket_s, name, cut in wins:
        idx = math.floor(ts / bucket_s)
        if cut is not None and idx <= cut:
            continue
        for s in suffixes:
            buckets[(wi, idx, name + s, target)] += points


def _raw(item: Event | Profile | Evidence) -> bytes:
    return orjson.dumps(item.to_json())


def _late(ts: float, pwm: float, horizon_s: int) -> str:
    return (
        f"ts {ts:.0f} is more than {horizon_s} s older than this partition's newest event "
        f"({pwm:.0f}); it cannot be de-duplicated any more"
    )
