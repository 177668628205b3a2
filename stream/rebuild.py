"""``kudos rebuild``: Kafka is the system of record and Redis a view, so the view can be rebuilt.

The whole interactions topic is read from its first offset with a plain consumer (no group: the
live workers keep theirs) and applied by the same :class:`~stream.processor.Processor` the workers
use, into the namespace's next **generation** (``<prefix>:g<N+1>:…`` while the pointer, the
``live`` key, still names N), under the rules given (the current ``scoring.toml``, or a new
version to rescore the log). Live workers keep scoring generation N meanwhile. Once the new
generation has caught up with the live fences, :meth:`Store.switch_from` moves the pointer in one
short atomic script whatever the size — readers follow it and see the old boards or the new ones,
never a gap — after the diff report has said who moves and why. Generation N is dropped
afterwards in bounded steps, once no reader can still be on it (:data:`DROP_GRACE_S`); a
rebuild that dies before that leaves it to the next rebuild, which first drops every generation
but the live one.

Two uses:
- after losing Redis (a flush, a failed disk): the workers carried on from their committed offsets
  into an empty namespace; the rebuild restores everything before that;
- rescoring under a new ``scoring.toml`` version: the switch also records the new version, and a
  worker still on the old rules stops at its next apply (``ScoringVersionMismatch``) until it is
  restarted with the new file, so no board mixes two versions.

Bait evidence (:mod:`leaderboard.bait.evidence`): the records live workers produced are in the
log, so the rebuild's detectors take each at the same place in its partition and decide the same;
the rebuild itself produces none (its processor has no evidence sink). So a rebuild under
*changed* bait settings does not broadcast the throttles it newly finds in the history: the
other partitions see only the evidence the live workers produced under the old settings (so their
decisions may miss some flagged commenters the new settings would have named). Throttles the
workers start after the switch are broadcast as usual.

Kept as they are (serving state, not derived from the log): the live feed (``changes`` is bumped
so every web process re-reads every board), perk unlocks and their outbox and webhook state (an
unlock is never revoked). The alerts outbox and ``meta`` (the scoring identity) are the new
generation's. The rebuild writes no serving state but ``changes`` (its processor has no perk
rules and no evidence sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from broker.topics import bootstrap
from leaderboard import redact
from leaderboard.bait import identity
from leaderboard.errors import StackError
from leaderboard.plan import DeadLetter
from leaderboard.rescore import Diff, candidates, diff
from leaderboard.scoring import ALL, ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import OUTBOX_GROUP, Store
from stream.processor import Processor, Raw

#: Suffix of the shadow namespaces of rebuilds from before generations (dropped when found).
SHADOW = "~rebuild"
#: How long after the switch the old generation is dropped: longer than a reader trusts its
#: cached generation (leaderboard.store.base.FOLLOW_S), so no plain read is still on it.
DROP_GRACE_S = 3.0
#: Messages applied per Processor call while reading the topic.
CHUNK = 5_000
#: How long the rebuild keeps catching up with live workers before giving up.
CATCH_UP_S = 120.0
#: The rebuild gives up when the topic delivers nothing for this long while it is behind.
STALL_S = 30.0
#: The rebuild lock's lifetime, renewed as it goes (a dead rebuild's lock runs out).
LOCK_S = 120

Progress = Callable[[str, int, int], None]


@dataclass
class RebuildResult:
    diff: Diff
    messages: int = 0
    seconds: float = 0.0
    switched: bool = False
    #: how long the atomic switch held Redis (seconds)
    switch_s: float = 0.0
    #: the generation rebuilt (live after a switch)
    generation: int = 0
    #: keys of the old generation dropped after the switch (or of the unswitched new one)
    dropped: int = 0
    dead_letters: int = 0
    #: partition → last offset applied in the rebuilt namespace
    fences: dict[int, int] = field(default_factory=dict)


class _DiscardDeadLetters:
    """The live workers already dead-lettered these; count them, do not send them twice."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, letters: Sequence[DeadLetter]) -> None:
        self.count += len(letters)


async def rebuild(
    settings: Settings,
    rules: ScoringRules,
    *,
    switch: bool | Callable[[Diff], bool],
    on_progress: Progress | None = None,
    allow_truncated: bool = False,
) -> RebuildResult:
    """Rebuild the boards from the topic under ``rules`` (and the bait settings) into a shadow
    namespace, report the difference, and switch (``switch`` True, or a callable that sees the
    diff and decides; it runs in a thread, so it may prompt).

    Raises:
        StackError: the broker has no interactions topic; the topic no longer starts at offset 0
            (retention deleted history) and ``allow_truncated`` is not set; another rebuild is
            running or took over the lock; the topic stalled; or live workers outran the
            rebuild for ``CATCH_UP_S`` after the decision.
    """
    prefix = settings.redis.prefix
    bait = settings.bait.params()
    token = os.urandom(8).hex()
    live = Store.connect(settings.redis.url, prefix, rules)
    shadow: Store | None = None
    letters = _DiscardDeadLetters()
    started = time.perf_counter()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    renewer: asyncio.Task[None] | None = None
    try:
        holder = await live.lock_rebuild(token, LOCK_S)
        if holder is not None:
            raise StackError(
                f"another kudos rebuild is running on {prefix!r}; wait for it (its lock "
                f"expires {LOCK_S} s after it stops)"
            )
        renewer = asyncio.create_task(_keep_lock(live, token))
        # (we hold the lock: no other rebuild is filling a generation or switching)
        current = await live.follow(force=True)
        await drop_dead(live, current, rules)
        # the next generation, on the same prefix; the pointer still names the live one
        shadow = Store(
            live.client,
            prefix,
            rules,
            scoring_id=identity(rules.version, bait),
            generation=current + 1,
        )
        await shadow.claim_scoring_version()
        # (no evidence sink: the evidence is in the log already; no perk rules: unlocks are
        # serving state the live workers own)
        processor = Processor(shadow, rules, settings.worker, letters, bait=bait)
        await consumer.start()
        topic = settings.broker.topic
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise StackError(
                f"no topic {topic!r} on {redact.url(settings.broker.url)}: nothing to rebuild"
            )
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        processor.partitions = len(parts)  # (wrong_partition, decided as the workers do)
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        gone = {tp.partition: o for tp, o in starts.items() if o > 0}
        if gone and not allow_truncated:
            raise StackError(
                f"the topic {topic!r} no longer holds the whole log (first offsets {gone}: "
                "retention deleted the rest), so a rebuild would lose that history. Keep the "
                "topic forever (retention.ms=-1, as the compose stack does) or pass "
                "--allow-truncated to rebuild from what is left"
            )
        await consumer.seek_to_beginning(*tps)
        messages = 0
        decided: bool | None = None
        deadline = math.inf
        while True:
            if renewer.done():
                renewer.result()  # the lock was lost: raises
            # read up to the topic's end now, or the live fences if the workers are further
            ends = await consumer.end_offsets(tps)
            fences = await live.fences()
            target = {tp.partition: max(ends[tp] - 1, fences.get(tp.partition, -1)) for tp in tps}
            messages += await _read_until(consumer, processor, target, on_progress)
            if decided is None:
                report = await _diff(live, shadow, rules)
                decided = await asyncio.to_thread(switch, report) if callable(switch) else switch
                result = RebuildResult(report, messages, 0.0, False, letters.count)
                if not decided:
                    break
                # catching up with live workers has its own time from here
                deadline = time.monotonic() + CATCH_UP_S
            t = time.perf_counter()
            outcome = await live.switch_from(shadow, OUTBOX_GROUP, token)
            result.switch_s = time.perf_counter() - t
            if outcome == "ok":
                result.switched = True
                break
            if outcome == "lock":
                raise StackError("another kudos rebuild took over the lock; not switching")
            if outcome == "moved":
                raise StackError("the live generation moved during the rebuild; not switching")
            if time.monotonic() > deadline:
                raise StackError(
                    f"the live workers kept ahead of the rebuild for {CATCH_UP_S:.0f} s; "
                    "retry at a quieter time, or stop the workers during the rebuild"
                )
        result.messages, result.dead_letters = messages, letters.count
        result.fences = await shadow.fences()
        result.generation = current + 1
        if result.switched:
            # plain reads may still be on the old generation for FOLLOW_S: wait, then drop it
            await asyncio.sleep(DROP_GRACE_S)
            result.dropped = await live.drop_generation(current)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if renewer is not None:
            renewer.cancel()
        await consumer.stop()
        with contextlib.suppress(Exception):
            if shadow is not None and await live.pointer() != shadow.generation:
                # not switched: the generation it filled goes (never the live one)
                await live.drop_generation(shadow.generation)
            await live.unlock_rebuild(token)
        await live.close()


async def drop_dead(live: Store, current: int, rules: ScoringRules) -> None:
    """Drop what rebuilds that died left: every generation but the live one (the old one of a
    rebuild that switched and did not finish its drop, or the new one of a rebuild that never
    switched), and the shadow namespaces of rebuilds from before generations."""
    for g in sorted(await live.generations() - {current}):
        await live.drop_generation(g)
    await live.client.unlink(live.key("generation"))  # (the counter from before generations)
    for old in await live.shadow_prefixes(SHADOW):
        await Store(live.client, old, rules).drop_namespace()


async def _keep_lock(live: Store, token: str) -> None:
    """Renew the rebuild lock until cancelled; raise if another rebuild took it."""
    while True:
        await asyncio.sleep(LOCK_S / 4)
        holder = await live.lock_rebuild(token, LOCK_S)
        if holder is not None:
            raise StackError(f"the rebuild lock was taken over ({holder}); stopping")


async def _read_until(
    consumer: AIOKafkaConsumer,
    processor: Processor,
    target: dict[int, int],
    on_progress: Progress | None,
) -> int:
    """Apply every message up to ``target`` (partition → offset) in the shadow namespace."""
    done = {p: -1 for p in target}
    total = sum(o + 1 for o in target.values())
    applied = 0
    fences = await processor.store.fences()
    for p in target:
        done[p] = fences.get(p, -1)
    last_read = time.monotonic()
    while any(done[p] < target[p] for p in target):
        batch = await consumer.getmany(timeout_ms=1000, max_records=CHUNK)
        if not batch and time.monotonic() - last_read > STALL_S:
            behind = {p: (done[p], target[p]) for p in target if done[p] < target[p]}
            raise StackError(
                f"the topic delivered nothing for {STALL_S:.0f} s while partitions (read, end) "
                f"{behind} were unfinished; is the broker up? (records may be missing)"
            )
        raws: list[Raw] = []
        for tp, records in batch.items():
            for r in records:
                # (past the target too: what was read must be applied, it is not read again)
                # (the record timestamp bounds its events' ts, as in the worker; ms → s)
                at = r.timestamp / 1000 if r.timestamp is not None else None
                raws.append(Raw(tp.partition, r.offset, r.value, at))
                done[tp.partition] = max(done[tp.partition], r.offset)
        if raws:
            raws.sort(key=lambda r: (r.partition, r.offset))
            await processor.process(raws)
            applied += len(raws)
            last_read = time.monotonic()  # (after processing: a slow chunk is not a stall)
        if on_progress is not None:
            now = sum(min(done[p], target[p]) + 1 for p in target)
            on_progress("rebuilt (messages)", now, total)
    return applied


async def _diff(live: Store, shadow: Store, rules: ScoringRules) -> Diff:
    before = await live.board_mp(ALL)
    after = await shadow.board_mp(ALL)
    who = candidates(before, after)
    return diff(
        ALL,
        before,
        after,
        (await live.scoring_version() or "", shadow.scoring_id),
        await live.explain_counters(who),
        await shadow.explain_counters(who),
    )
