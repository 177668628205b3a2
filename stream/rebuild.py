"""``kudos rebuild``: Kafka is the system of record and Redis a view, so the view can be rebuilt.

The whole interactions topic is read from its first offset with a plain consumer (no group: the
live workers keep theirs) and applied by the same :class:`~stream.processor.Processor` the workers
use, into a new **generation** (``<prefix>:g<M>:…`` while the pointer, the ``live`` key, still
names N; M is a number no rebuild took before, :meth:`Store.take_generation`), under the rules
given (the current ``scoring.toml``, or a new version to rescore the log). Live workers keep
scoring generation N meanwhile. Once the new generation has caught up with the live fences,
:meth:`Store.switch_from` moves the pointer in one short atomic script whatever the size —
readers follow it and see the old boards or the new ones, never a gap — after the diff report
has said who moves and why. Generation N is dropped
afterwards in bounded steps, once no reader can still be on it (:data:`DROP_GRACE_S`); a
rebuild that dies before that leaves it to the next rebuild, which first drops every generation
but the live one.

The lock: a rebuild holds it from start to end and renews it (:func:`_keep_lock`, retrying a
transient Redis error while the lock still holds); it checks it between every chunk it applies,
before the switch and between the steps of every drop, so a rebuild that lost it stops within a
chunk. Until it notices, it writes only into its own generation: no other rebuild takes that
number, fills it or switches to it, and it cannot switch itself (``lua/switch.lua`` wants the
lock's token).

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from broker.topics import bootstrap
from leaderboard import redact
from leaderboard.bait import identity
from leaderboard.errors import StackError, StoreConflict
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
#: How often the lock is renewed: three more tries before it runs out if one fails.
RENEW_S = LOCK_S / 4
#: Pause between retries of a renewal that met a transient Redis error.
RENEW_RETRY_S = 1.0
#: The renewer gives up this long before the lock, as last renewed, runs out: time for the
#: rebuild to notice (it checks between chunks) and stop before another rebuild can start.
RENEW_MARGIN_S = LOCK_S / 8

#: Redis errors a renewal retries (the connection dropped or a reply was late), not the others.
TRANSIENT = (RedisConnectionError, RedisTimeoutError, ConnectionError, TimeoutError)

Progress = Callable[[str, int, int], None]
#: Extends the rebuild lock: True if it is still this rebuild's (the seam :func:`_keep_lock` uses).
Renew = Callable[[], Awaitable[bool]]
#: Raises if the rebuild lost its lock (StackError); called between steps of long work.
Check = Callable[[], None]


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
    live = Store.connect(settings.redis.url, prefix, rules, cluster=settings.redis.cluster)
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
        taken = time.monotonic()
        holder = await live.lock_rebuild(token, LOCK_S)
        if holder is not None:
            raise StackError(
                f"another kudos rebuild is running on {prefix!r}; wait for it (its lock "
                f"expires {LOCK_S} s after it stops)"
            )

        async def renew() -> bool:
            return await live.renew_rebuild_lock(token, LOCK_S)

        renewer = asyncio.create_task(_keep_lock(renew, held_since=taken))
        check = _lock_check(renewer)
        # (we hold the lock: no other rebuild can switch, and no live one takes a number now)
        current = await live.follow(force=True)
        # first: the number taken next is above every number a rebuild took from the counter,
        # but leftovers of rebuilds from before the counter may sit at any number
        await drop_dead(live, current, rules, check)
        try:
            generation = await live.take_generation(token)
        except StoreConflict as exc:
            raise StackError("the rebuild lock ran out before the rebuild began; retry") from exc
        # a new generation, on the same prefix; the pointer still names the live one
        shadow = Store(
            live.client,
            live.prefix,  # the namespace's own (a hash tag on a cluster)
            rules,
            scoring_id=identity(rules.version, bait),
            generation=generation,
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
            check()
            # read up to the topic's end now, or the live fences if the workers are further
            ends = await consumer.end_offsets(tps)
            fences = await live.fences()
            target = {tp.partition: max(ends[tp] - 1, fences.get(tp.partition, -1)) for tp in tps}
            messages += await _read_until(consumer, processor, target, on_progress, check)
            if decided is None:
                report = await _diff(live, shadow, rules)
                decided = await asyncio.to_thread(switch, report) if callable(switch) else switch
                result = RebuildResult(report, messages=messages, dead_letters=letters.count)
                if not decided:
                    break
                # catching up with live workers has its own time from here
                deadline = time.monotonic() + CATCH_UP_S
            check()  # (the switch checks the token too; this says why it is refused)
            t = time.perf_counter()
            outcome = await live.switch_from(shadow, OUTBOX_GROUP, token, previous=current)
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
        result.generation = generation
        if result.switched:
            # plain reads may still be on the old generation for FOLLOW_S: wait, then drop it
            # (only while the lock is ours: a rebuild that lost it leaves the drop to the next)
            await asyncio.sleep(DROP_GRACE_S)
            result.dropped = await _drop(live, current, check)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer  # (its error, if any, was raised by a check already)
        await consumer.stop()
        with contextlib.suppress(Exception):
            if shadow is not None and await live.pointer() != shadow.generation:
                # not switched: the generation it filled goes, its own number only, lock or
                # not (nobody else fills it); drop_steps refuses it if it is live at any step
                await live.drop_generation(shadow.generation)
            await live.unlock_rebuild(token)
        await live.close()


async def drop_dead(
    live: Store, current: int, rules: ScoringRules, check: Check | None = None
) -> None:
    """Drop what rebuilds that died left: every generation but the live one (the old one of a
    rebuild that switched and did not finish its drop, or the new one of a rebuild that never
    switched, or lost its lock and has not noticed yet), and the shadow namespaces of rebuilds
    from before generations. For the rebuild holding the lock, before it takes its own number
    (so no generation it drops is being filled by a rebuild that holds the lock); ``check``
    runs before every step (the lock is still ours)."""
    for g in sorted(await live.generations() - {current}):
        await _drop(live, g, check)
    await live.client.unlink(live.key("generation"))  # (the counter from before generations)
    for old in await live.shadow_prefixes(SHADOW):
        await Store(live.client, old, rules).drop_namespace()


async def _drop(live: Store, generation: int, check: Check | None) -> int:
    """:meth:`Store.drop_steps` to the end with ``check`` before every step; keys removed.
    (Each step also reads the pointer again and refuses the live generation.)"""
    dropped = 0
    if check is not None:
        check()
    async with contextlib.aclosing(live.drop_steps(generation)) as steps:
        async for n in steps:
            dropped += n
            if check is not None:
                check()
    return dropped


def _lock_check(renewer: asyncio.Task[None]) -> Check:
    """Raise (StackError) once the lock's renewer has stopped: the lock is no longer ours."""

    def check() -> None:
        if renewer.done():
            renewer.result()  # its StackError: the lock was taken over or ran out
            raise StackError("the rebuild lock's renewer stopped; stopping")

    return check


async def _keep_lock(
    renew: Renew,
    *,
    held_since: float,
    ttl_s: float = LOCK_S,
    every_s: float = RENEW_S,
    retry_s: float = RENEW_RETRY_S,
    margin_s: float = RENEW_MARGIN_S,
) -> None:
    """Renew the rebuild lock (taken at ``held_since``, monotonic, for ``ttl_s``) every
    ``every_s`` until cancelled. A renewal that meets a transient Redis error (:data:`TRANSIENT`)
    is retried every ``retry_s`` while the lock, as last renewed, still holds for more than
    ``margin_s`` (a renewal without a reply by then counts as one); then, or as soon as the
    lock is not ours any more, raise StackError."""
    held_until = held_since + ttl_s
    while True:
        await asyncio.sleep(every_s)
        while True:
            sent = time.monotonic()  # (the new lifetime starts no earlier than this)
            try:
                # (bounded: a reply that never comes must not outlast the lock unnoticed; a
                # late success is still right, the script renews only the token's own lock)
                wait = max(held_until - margin_s - sent, retry_s)
                held = await asyncio.wait_for(renew(), wait)
            except TRANSIENT as exc:
                left = held_until - margin_s - time.monotonic()
                if left <= 0:
                    raise StackError(
                        f"could not renew the rebuild lock before it runs out ({exc!r}); stopping"
                    ) from exc
                await asyncio.sleep(min(retry_s, left))
                continue
            if not held:
                raise StackError(
                    "the rebuild lock is no longer this rebuild's (it ran out, or another "
                    "kudos rebuild took it); stopping"
                )
            held_until = sent + ttl_s
            break


async def _read_until(
    consumer: AIOKafkaConsumer,
    processor: Processor,
    target: dict[int, int],
    on_progress: Progress | None,
    check: Check,
) -> int:
    """Apply every message up to ``target`` (partition → offset) in the shadow namespace;
    ``check`` (the lock is still ours) before every chunk: the first pass reads the whole
    topic, possibly for hours."""
    done = {p: -1 for p in target}
    total = sum(o + 1 for o in target.values())
    applied = 0
    fences = await processor.store.fences()
    for p in target:
        done[p] = fences.get(p, -1)
    last_read = time.monotonic()
    while any(done[p] < target[p] for p in target):
        check()
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
