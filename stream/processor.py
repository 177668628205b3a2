"""Apply consumed messages to Redis: decode → plan against the worker's own partition state → one
atomic, fence-guarded apply per chunk, with the next chunk planned while Redis applies this one.

Independent of Faust so that the same code runs in the worker, the benchmark and the tests. The
dead-letter sink is a typed seam: the worker passes a Kafka producer, tests may pass a list. So is
the evidence sink (:class:`EvidenceSink`): a plan whose detectors started throttles carries
evidence records (:mod:`leaderboard.bait.evidence`), and before that plan is applied each record is
produced to every *other* partition of the events topic and acknowledged. A crash in between
re-plans the same decision from the fences and produces the same record ids again, which the
receiving partitions de-duplicate; a failed produce raises, so the batch is retried. A rebuild
passes no sink: the records it would produce are in the log already.

Two more things keep every consumed event counted exactly once:

- **Gaps.** Before a chunk is planned, each of its partitions' first new offset is compared with
  the fence. A fence further back than the message before it means Redis lost applies the log
  still has (AOF ``everysec``, a fail-over to a lagging replica, a restored snapshot; or, on
  assignment, a committed offset beyond the fence): applying the chunk would move the fence past
  them for good. So the processor re-reads the gap from the log (the :class:`LogReader` seam: the
  worker's reader is a consumer of its own, not Faust's, whose read offsets and buffered messages
  a seek would race with), applies it, then the chunk. Counted in ``kudos_worker_rewinds_total``.
- **Bounded applies.** A message of more than ``max_events_per_apply`` events is applied in
  pieces; the fence then says "offset X, its first n events" (``fencepart``), so a redelivered
  envelope applies exactly the rest. An envelope event whose target belongs to another partition
  is dead-lettered (``wrong_partition``): it would split that target's state across partitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import orjson

from broker.producer import partition_for
from leaderboard.bait import BaitParams, Evidence
from leaderboard.errors import StoreConflict
from leaderboard.events import Event, Profile, Rejected, decode_message
from leaderboard.metrics import WorkerMetrics
from leaderboard.owned import OwnedState
from leaderboard.plan import DeadLetter, Message, Plan, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.heap import HeapKeeper

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Raw:
    """A consumed Kafka message: where it came from, its value bytes and its record timestamp."""

    partition: int
    offset: int
    value: bytes | None
    #: the record's timestamp in unix seconds, which bounds its events' ts (None: none recorded)
    record_ts: float | None


class DeadLetterSink(Protocol):
    async def __call__(self, letters: Sequence[DeadLetter]) -> None: ...


class EvidenceSink(Protocol):
    async def __call__(self, records: Sequence[tuple[int, Evidence]]) -> None:
        """Produce each record to its partition (the first element) of the events topic, as its
        own message; return once the broker acknowledged every one, else raise (a Kafka error:
        the worker retries the batch)."""
        ...


def fan_out(
    evidence: Iterable[tuple[int, Evidence]], partitions: int
) -> list[tuple[int, Evidence]]:
    """(destination partition, record): each record of a source partition to every other one
    (pure)."""
    return [(q, e) for p, e in evidence for q in range(partitions) if q != p]


class CommunityGate(Protocol):
    """Where a namespace kept as shards decides its community cap: its own store
    (:meth:`Store.admit_communities`), since each shard's apply sees its own admissions only."""

    async def communities(self) -> set[str]:
        """The namespace's admitted communities."""
        ...

    async def admit_communities(self, new: Sequence[str], refused: Sequence[str], cap: int) -> bool:
        """Admit ``new`` within ``cap``; False if the plan must be made again (see the store)."""
        ...


class LogReader(Protocol):
    """Reads a partition's messages again, from the log itself."""

    def read(self, partition: int, start: int, end: int) -> AsyncGenerator[Sequence[Raw]]:
        """Pages of the messages of ``partition`` with ``start <= offset < end``, in order: what
        the log holds (retention may have deleted the first ones)."""
        ...


#: Reason code of an envelope event on another partition than its target's.
WRONG_PARTITION = "wrong_partition"
#: Targets whose partition a processor remembers (murmur2 in Python costs ~3 µs a key).
PARTITION_MEMO = 100_000


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets ``start`` ≤ o < ``end`` of ``partition``: consumed, but behind no fence."""

    partition: int
    start: int
    end: int


def find_gap(
    offsets: Iterable[tuple[int, int]],
    fences: Mapping[int, int],
    read: Mapping[int, tuple[int, int]] | None = None,
) -> Gap | None:
    """The first gap between the fences and the (partition, offset) pairs of a chunk (pure).

    A partition's first offset past its fence must be the fence + 1. A larger one is a gap,
    unless ``read`` (partition → (start, end): the log was read from start up to end, so it holds
    nothing else there) already covers it: offsets the log does not have (retention, transaction
    markers) are no gap.
    """
    first: dict[int, int] = {}
    for p, o in offsets:
        if o > fences.get(p, -1) and (p not in first or o < first[p]):
            first[p] = o
    for p in sorted(first):
        start, end = fences.get(p, -1) + 1, first[p]
        if end > start:
            done = read.get(p) if read is not None else None
            if done is not None and done[0] <= start and done[1] == end:
                continue
            return Gap(p, start, end)
    return None


def split_message(m: Message, limit: int) -> list[Message]:
    """``m`` in pieces of at most ``limit`` events (itself when it has no more), in order (pure)."""
    n = len(m.items)
    if n <= limit:
        return [m]
    return [
        Message(
            m.partition,
            m.offset,
            m.items[a : a + limit],
            m.record_ts,
            start=a,
            ends=a + limit >= n,
        )
        for a in range(0, n, limit)
    ]


def is_envelope(value: bytes | None) -> bool:
    """Whether a message value is a JSON array (JSON's whitespace may lead)."""
    return value is not None and value.lstrip(b" \t\r\n")[:1] == b"["


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
        log_reader: LogReader | None = None,
        partitions: int | None = None,
        evidence: EvidenceSink | None = None,
        heap: HeapKeeper | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.settings = settings
        self.dead_letters = dead_letters
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self._kinds = rules.kinds
        self._allowed_communities = settings.community_allow_list()
        self.owned = OwnedState()
        #: the comment-bait detector's parameters; None switches the throttle off
        self.bait = bait
        #: re-reads gaps behind a fence (None: gaps are not looked for, as in a rebuild, which
        #: reads the log in order itself)
        self.log_reader = log_reader
        #: the topic's partition count, to dead-letter envelope events of other partitions
        #: (None: not checked)
        self.partitions = partitions
        #: where the evidence of new throttles goes (None: nowhere, as in a rebuild; it needs
        #: ``partitions``)
        self.evidence = evidence
        self._partition_of: dict[str, int] = {}
        #: partition → (start, end): the log was read from start to end by a gap fill
        self._read: dict[int, tuple[int, int]] = {}
        #: on a namespace kept as shards, the largest W of all shards, which this shard's plans
        #: take as their own (set per batch by :class:`stream.sharded.ShardedProcessor`)
        self.watermark_floor: float | None = None
        #: on a namespace kept as shards, where the community cap is decided for every shard
        #: (set by :class:`stream.sharded.ShardedProcessor`; None: by this store's apply alone)
        self.community_gate: CommunityGate | None = None
        #: check single-event messages' targets too, not only envelopes' (a namespace kept as
        #: shards: a target's points must all be in the shard of its partition)
        self.check_singles = False
        #: the topic's partition count, for the close of winners' periods (Plan.partitions_total;
        #: 0: unknown, only the partitions that have carried events hold a close back)
        self.partitions_total = partitions or 0
        #: the apply ``process(..., overlap=True)`` left in flight, and the messages from its
        #: chunk on (they head the next call's batch until it is settled)
        self._pending: _InFlight | None = None
        self._tail: list[Raw] = []
        #: partition → one past the newest offset handed to :meth:`process` (what the caller
        #: acknowledges, so what :meth:`catch_up` compares the fences with)
        self.consumed: dict[int, int] = {}
        #: told after each apply is sent (stream/heap.py: what is new since the last one is
        #: collected and frozen while Redis runs it); None: Python's own schedule
        self.heap = heap

    async def process(self, raws: Sequence[Raw], *, overlap: bool = False) -> None:
        """Apply ``raws`` (any partitions, offsets ascending per partition) in chunks of at most
        ``max_events_per_apply`` events (whole messages, but for bigger ones); return when all
        are applied, and any gap behind their fences too.

        With ``overlap``, return as soon as the last apply is on the wire: Redis runs it while
        the caller fetches the next batch, and the next call plans its first chunk before it
        waits for that answer (a worker that waited would leave the CPU idle for the apply and
        Redis idle for the fetch and the planning). The next call, or :meth:`flush`, settles it
        and, if Redis refused it, plans its messages again (they stay with this processor until
        then, and go with the next call if this one raises). What the caller acknowledges to
        Kafka may then be ahead of the fences; the fences decide, so a crash in between costs a
        re-read of the gap from the log (the ``Gaps`` above), never a lost or doubled event."""
        started = time.perf_counter()
        consumed = self.consumed
        for r in raws:
            if r.offset >= consumed.get(r.partition, 0):
                consumed[r.partition] = r.offset + 1
        tail, pending = self._tail, self._pending
        self._tail, self._pending = [], None
        batch = [*tail, *raws] if tail else raws
        try:
            # (an apply left in flight is the first of the batch: its messages head it)
            await self._process(batch, len(tail) if pending is not None else 0, pending, overlap)
        except BaseException:
            # the caller retries the call (the worker's loop does): the messages before it
            # whose apply has no known outcome go with the retry
            if not self._tail:
                self._tail = list(tail)
            raise
        self.metrics.batch_seconds.observe(time.perf_counter() - started)

    def unapplied(self) -> dict[int, int]:
        """Partition → the first offset of the messages held for an apply left in flight (not
        known to be applied): a worker that must exit commits its group's offsets back to
        these, so the next owner reads them again."""
        out: dict[int, int] = {}
        for r in self._tail:
            if r.offset < out.get(r.partition, r.offset + 1):
                out[r.partition] = r.offset
        return out

    @property
    def in_flight(self) -> bool:
        """Whether a ``process(..., overlap=True)`` left an apply to settle (:meth:`flush`)."""
        return self._pending is not None or bool(self._tail)

    async def flush(self) -> None:
        """Settle the apply that ``process(..., overlap=True)`` left in flight, planning its
        messages again if Redis refused it; return when they are applied."""
        if self.in_flight:
            await self.process([])

    async def _process(
        self,
        raws: Sequence[Raw],
        start: int = 0,
        pending: _InFlight | None = None,
        overlap: bool = False,
    ) -> None:
        conflicts = 0
        while True:
            try:
                await self._run(raws, start, pending, overlap)
                return
            except _Conflict as c:
                self.metrics.conflicts.inc()
                conflicts += 1
                if conflicts >= 50:
                    raise StoreConflict(
                        "could not apply a batch after 50 conflicting attempts"
                    ) from c
                # Someone else wrote one of our partitions (rebalance overlap, a restarted copy of
                # this worker, a Redis that lost writes) or moved the decay landmark: forget our
                # copy, reload, re-plan from the first chunk not applied. Messages now behind the
                # fence are skipped; a fence now further back is a gap, filled first.
                log.info("re-planning after conflict (attempt %d): %s", conflicts, c.reason)
                start, pending = c.resume_at, None
                self.owned.forget()
                continue
            except _GapFound as g:
                start, gap, pending = g.resume_at, g.gap, None
            except BaseException:
                # Anything else (Redis down, a dead-letter send failing, cancellation) may leave an
                # apply whose outcome is unknown while our copy already holds its effects: forget
                # the copy so the retry reloads what Redis really has.
                self.owned.forget()
                raise
            try:
                # The gap was found against this worker's copy, which may be stale (another
                # worker applied the partition meanwhile, before a rebalance gave it back): only
                # what Redis itself lacks is re-read.
                self.owned.forget()
                await self.store.load_partitions([gap.partition], self.owned, self.bait)
                fence = self.owned.partitions[gap.partition].fence
                if fence + 1 < gap.end:
                    await self._fill(Gap(gap.partition, max(gap.start, fence + 1), gap.end))
            except BaseException:
                self.owned.forget()
                raise

    async def catch_up(self, ends: Mapping[int, int]) -> list[int]:
        """Apply what the log holds past the Redis fences of ``ends``' partitions up to the
        offsets given (partition → offset: what this worker consumed, :attr:`consumed`), which
        no batch will bring: applies Redis lost (a fail-over, AOF ``everysec``) while no
        message came to show the gap.
        The worker calls it when it has had no batch for a while and the fences trail what it
        consumed. Returns the partitions that had such a gap (read from the log, applied)."""
        if self.log_reader is None or not ends:
            return []
        await self.flush()
        parts = sorted(ends)
        self.owned.forget()  # (the fences as Redis holds them now, not as this copy hopes)
        await self.store.load_partitions(parts, self.owned, self.bait)
        behind = []
        for p in parts:
            fence = self.owned.partitions[p].fence
            if fence + 1 < ends[p]:
                behind.append(p)
                await self._fill(Gap(p, fence + 1, ends[p]), idle=True)
        return behind

    async def _fill(self, gap: Gap, idle: bool = False) -> None:
        """Apply the gap's messages from the log, then let the batch go on after it (``idle``:
        found by :meth:`catch_up`, with no batch)."""
        assert self.log_reader is not None
        p = gap.partition
        label = str(p)
        self.metrics.rewinds.inc(partition=label)
        log.warning(
            "partition %d: the Redis fence (%d) is behind what this worker consumed%s (offset "
            "%d): Redis lost applies%s; re-reading %d message(s), offsets %d..%d, from the log",
            p,
            gap.start - 1,
            ", and no message came" if idle else "",
            gap.end,
            " (or refused one whose batch was acknowledged)" if idle else "",
            gap.end - gap.start,
            gap.start,
            gap.end - 1,
        )
        n = 0
        # What the log lacks (retention, transaction markers) is excused from find_gap, and only
        # that: offsets it did hold are a gap again if Redis loses them again.
        last = gap.start - 1
        async with contextlib.aclosing(self.log_reader.read(p, gap.start, gap.end)) as pages:
            async for page in pages:
                if not page:
                    continue
                self._read[p] = (last + 1, page[0].offset)
                await self._process(page)  # (no overlap: the gap is applied before the batch)
                last = page[-1].offset
                n += len(page)
                self.metrics.rewound_messages.inc(len(page), partition=label)
        self._read[p] = (last + 1, gap.end)
        if n < gap.end - gap.start:
            log.error(
                "partition %d: the log holds only %d of the offsets %d..%d (retention deleted "
                "the others, or they are transaction markers): whatever they held is not on the "
                "boards, and `kudos rebuild` cannot bring it back",
                p,
                n,
                gap.start,
                gap.end - 1,
            )

    def _checked(
        self, r: Raw, items: list[Event | Profile | Evidence | Rejected]
    ) -> list[Event | Profile | Evidence | Rejected]:
        """``items`` of an envelope, with the events of other partitions' targets rejected."""
        n = self.partitions
        if n is None or not (self.check_singles or is_envelope(r.value)):
            return items
        memo = self._partition_of
        out: list[Event | Profile | Evidence | Rejected] = []
        for i, item in enumerate(items):
            if isinstance(item, Event | Profile):
                q = memo.get(item.target)
                if q is None:
                    if len(memo) >= PARTITION_MEMO:
                        memo.clear()
                    q = memo[item.target] = partition_for(item.target.encode(), n)
                if q != r.partition:
                    item = Rejected(
                        i,
                        orjson.dumps(item.to_json()),
                        WRONG_PARTITION,
                        f"target {item.target!r} belongs on partition {q} of {n}, not "
                        f"{r.partition}: "
                        + (
                            "envelopes hold the events of one partition (by target)"
                            if is_envelope(r.value)
                            else "on a namespace kept as shards (KUDOS_REDIS_SHARDS) every "
                            "event is keyed by its target"
                        ),
                    )
            out.append(item)
        return out

    def _chunks(self, raws: Sequence[Raw], start: int) -> Iterator[tuple[int, list[Message]]]:
        """Decoded chunks, lazily (a batch of envelopes can hold a million events), each with the
        index in ``raws`` of its first message. A message of more than ``max_events_per_apply``
        events comes in pieces, each its own chunk but for the last."""
        chunk: list[Message] = []
        first = start
        size = 0
        limit = self.settings.max_events_per_apply
        for i in range(start, len(raws)):
            r = raws[i]
            items = self._checked(r, decode_message(r.value, self._kinds))
            m = Message(r.partition, r.offset, items, r.record_ts)
            if chunk and size + len(m.items) > limit:
                yield first, chunk
                chunk, size, first = [], 0, i
            *whole, m = split_message(m, limit)
            for piece in whole:
                yield i, [piece]
            chunk.append(m)
            size += len(m.items)
        if chunk:
            yield first, chunk

    async def _run(
        self, raws: Sequence[Raw], start: int, pending: _InFlight | None, keep: bool
    ) -> None:
        """Plan chunk i+1 while Redis applies chunk i (one apply in flight, sent in order).
        ``pending``: an apply already in flight for ``raws[0:start]``; ``keep``: leave the
        last one in flight (:meth:`process`'s ``overlap``)."""
        inflight = pending
        try:
            for first, chunk in self._chunks(raws, start):
                missing = self.owned.missing(m.partition for m in chunk)
                while missing:
                    # (a load that finds a new rebuild generation drops every partition held)
                    await self.store.load_partitions(missing, self.owned, self.bait)
                    missing = self.owned.missing(m.partition for m in chunk)
                if self.log_reader is not None:
                    fences = {p: o.fence for p, o in self.owned.partitions.items()}
                    gap = find_gap(((m.partition, m.offset) for m in chunk), fences, self._read)
                    if gap is not None:
                        if inflight is not None:
                            last, inflight = inflight, None
                            await self._settle(*last)
                        raise _GapFound(first, gap)
                plan = self._plan(chunk)
                if inflight is not None:
                    last, inflight = inflight, None
                    await self._settle(*last)
                plan = await self._gate(chunk, plan)
                if plan.empty:
                    continue
                # Dead letters go out before the fence moves: a crash in between re-sends them
                # (the record names its partition/offset, so a reader can drop the repeat).
                if plan.dead:
                    await self.dead_letters(plan.dead)
                # Evidence too, and acknowledged: once the fence moves past the batch that made
                # the decision, nothing would make it again.
                if plan.evidence and self.evidence is not None:
                    await self._send_evidence(plan.evidence)
                self.owned.absorb(plan)
                # returns once the call is on the wire: Redis runs it while we plan the next chunk
                sent = time.perf_counter()
                budget = self.settings.max_maintenance_rows_per_call
                if budget:
                    # a call may expire or rescale as many rows as its batch writes: a big
                    # batch's call holds Redis about that long anyway, and each further call
                    # re-sends the batch and, with this loop busy planning the next chunk,
                    # waits its turn (at 0.7x the backlog rate, live, that idled a third of
                    # the worker while it fell behind)
                    budget = max(budget, plan.board_rows)
                # (a task: the answer is read, and the connection given back, as soon as Redis
                # has run it, whether this call waits for it or returns first)
                outcome = asyncio.ensure_future(await self.store.send_apply(plan, budget))
                # (counted once Redis accepted it, not when the caller settles it: a worker
                # that left it in flight shows it as soon as the fences do)
                outcome.add_done_callback(functools.partial(self._accepted, plan, sent))
                inflight = (outcome, first, plan, sent)
                if self.heap is not None:
                    self.heap.after_apply()
            if inflight is not None:
                last, inflight = inflight, None
                if keep:
                    # its messages, and the apply as the first of the next call's batch
                    self._tail = list(raws[last[1] :])
                    self._pending = (last[0], 0, last[2], last[3])
                    return
                await self._settle(*last)
        finally:
            if inflight is not None:
                # failing with a call in flight: wait for it so its connection goes back to the
                # pool; its outcome does not matter, the caller forgets our copy and reloads
                with contextlib.suppress(Exception):
                    await inflight[0]

    def _plan(self, chunk: Sequence[Message]) -> Plan:
        return build_plan(
            chunk,
            self.owned.store_state(),
            self.rules,
            dedupe_horizon_s=self.settings.dedupe_horizon_s,
            rebase_after_s=self.settings.decay_rebase_after_s,
            max_future_s=self.settings.max_future_s,
            allowed_communities=self._allowed_communities,
            max_communities=self.settings.max_communities,
            watermark_floor=self.watermark_floor,
            partitions_total=self.partitions_total,
        )

    async def _gate(self, chunk: Sequence[Message], plan: Plan) -> Plan:
        """On shards, the plan's community admissions and cap refusals as the namespace's own
        set decides them (not only this shard's): re-planned from that set until it agrees.
        Each round admits some or learns of some admitted, so they end by the cap. An admission
        whose apply never lands (a crash) keeps its place in the cap: its events, re-delivered,
        find it admitted."""
        gate, cap = self.community_gate, self.settings.max_communities
        if gate is None or not cap:
            return plan
        while plan.new_communities or plan.capped_communities:
            if await gate.admit_communities(plan.new_communities, plan.capped_communities, cap):
                break
            self.owned.communities |= await gate.communities()
            plan = self._plan(chunk)
        return plan

    async def _send_evidence(self, evidence: Sequence[tuple[int, Evidence]]) -> None:
        n, sink = self.partitions, self.evidence
        # (a bug, not bad input: the worker sets the count before its first batch)
        assert n is not None and sink is not None, "an evidence sink needs the partition count"
        out = fan_out(evidence, n)
        if out:
            await sink(out)
            self.metrics.evidence.inc(len(out), direction="sent")

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
            self.metrics.watermark.set(wm)

    def _accepted(self, plan: Plan, sent: float, outcome: asyncio.Future[float | None]) -> None:
        if not outcome.cancelled() and outcome.exception() is None:
            self._count(plan, time.perf_counter() - sent)

    def _count(self, plan: Plan, seconds: float) -> None:
        """Metrics of an apply Redis accepted. Its latency runs until the answer is read (by
        the apply's task, as soon as it arrives)."""
        m = self.metrics
        for outcome, n in plan.stats.items():
            if n:
                m.events.inc(n, outcome=outcome)
        for d in plan.dead:
            m.dead_letters.inc(reason=d.reason)
        m.apply_events.observe(sum(plan.stats.values()))
        for decision in plan.alerts:
            m.throttles.inc(state=decision.state)
        if plan.evidence_received:
            m.evidence.inc(plan.evidence_received, direction="received")
        if plan.withheld:
            m.withheld_points.inc(sum(plan.withheld.values()) / 1000)
        m.apply_seconds.observe(seconds)
        if self.owned.watermark is not None:
            m.watermark.set(self.owned.watermark)


#: an apply on the wire: its outcome, the index of its chunk's first message in the batch, its
#: plan and when it was sent
_InFlight = tuple[Awaitable[float | None], int, Plan, float]


class _GapFound(Exception):
    def __init__(self, resume_at: int, gap: Gap) -> None:
        super().__init__(gap)
        self.resume_at = resume_at
        self.gap = gap


class _Conflict(Exception):
    def __init__(self, resume_at: int, reason: str) -> None:
        super().__init__(reason)
        self.resume_at = resume_at
        self.reason = reason
