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

from broker.producer import partition_for
from broker.topics import bootstrap
from leaderboard import redact
from leaderboard.bait import identity
from leaderboard.errors import StackError, StoreConflict
from leaderboard.plan import DeadLetter
from leaderboard.rescore import Diff, candidates, diff
from leaderboard.scoring import ALL, ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import OUTBOX_GROUP, Store
from leaderboard.store.shards import check_shards, connect_shards, shard_of
from stream.processor import Processor, Raw
from stream.sharded import ShardedProcessor

#: Suffix of the shadow namespaces of rebuilds from before generations (dropped when found).
SHADOW = "~rebuild"
#: How long after the switch the old generation is dropped: longer than a reader trusts its
#: cached generation (leaderboard.store.base.FOLLOW_S), so no plain read is still on it.
DROP_GRACE_S = 3.0
#: Messages applied per Processor call while reading the topic.
CHUNK = 5_000
#: On shards, the switch pass starts once every shard's new generation is at most this many
#: messages behind its live fences in all (the shards that answer "behind" read those, and
#: switch at the next round).
SWITCH_LAG = 1_000
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


@dataclass
class _Piece:
    """One namespace the rebuild fills and switches: the whole namespace, or one of its shards
    (``KUDOS_REDIS_SHARDS``; each shard has its own pointer, lock, generations and fences)."""

    live: Store
    #: the live generation when the rebuild started
    current: int = 0
    #: the new generation's store, once taken
    shadow: Store | None = None
    switched: bool = False


async def rebuild(
    settings: Settings,
    rules: ScoringRules,
    *,
    switch: bool | Callable[[Diff], bool],
    on_progress: Progress | None = None,
    allow_truncated: bool = False,
) -> RebuildResult:
    """Rebuild the boards from the topic under ``rules`` (and the bait settings) into a new
    generation, report the difference, and switch (``switch`` True, or a callable that sees the
    diff and decides; it runs in a thread, so it may prompt).

    On a namespace kept as shards (``KUDOS_REDIS_SHARDS`` > 1) every shard fills a generation
    of its own, through one :class:`~stream.sharded.ShardedProcessor` as the workers apply, and
    so does the namespace's own store (its community set, the cap's, which the rebuild must not
    write in the live generation). Once every shard is within :data:`SWITCH_LAG` messages of its
    live fences, the namespace's store and then every shard are switched, each by its own short
    call; a shard that answers "behind" (its live workers moved on) reads those messages and
    switches at the next round. So a merged read may see some shards rebuilt and others not
    yet: for the calls of one pass with the workers stopped, for about a read round under live
    load (each shard's own reads never mix generations). A shard that has switched takes no
    more of the rebuild's messages (its partitions are paused): its live workers carry on from
    its fences.

    Raises:
        StackError: the broker has no interactions topic; the topic no longer starts at offset 0
            (retention deleted history) and ``allow_truncated`` is not set; another rebuild is
            running or took over the lock; the topic stalled; or live workers outran the
            rebuild for ``CATCH_UP_S`` after the decision.
        ShardCountMismatch: the namespace is kept as another number of shards.
    """
    prefix = settings.redis.prefix
    bait = settings.bait.params()
    token = os.urandom(8).hex()
    base = Store.connect(settings.redis.url, prefix, rules, cluster=settings.redis.cluster)
    pieces: list[_Piece] = []
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
    #: the stores whose lock this rebuild asked for (released at the end, held or not)
    locked: list[_Piece] = []
    try:
        # (claimed as a worker claims it: after losing every key, the rebuild may be the first
        # process on the namespace; one holding boards in one piece stays one)
        await check_shards(base, settings.redis.shards)
        stores = (
            [base]
            if settings.redis.shards == 1
            else list(
                connect_shards(settings.redis, settings.broker.partitions, rules, base=base).stores
            )
        )
        # on shards the namespace's own store is rebuilt too: its community set decides the cap
        # for every shard (the rebuild's own, not the live one, which it must not write)
        gate = _Piece(base) if len(stores) > 1 else None
        every = [*(_Piece(store) for store in stores), *([gate] if gate is not None else [])]
        pieces.extend(every[: len(stores)])
        taken = time.monotonic()
        for piece in every:
            holder = await piece.live.lock_rebuild(token, LOCK_S)
            locked.append(piece)  # (unlocked at the end, held or not: token-checked)
            if holder is not None:
                raise StackError(
                    f"another kudos rebuild is running on {prefix!r}; wait for it (its lock "
                    f"expires {LOCK_S} s after it stops)"
                )

        async def renew() -> bool:
            held = await asyncio.gather(*(p.live.renew_rebuild_lock(token, LOCK_S) for p in every))
            return all(held)

        renewer = asyncio.create_task(_keep_lock(renew, held_since=taken))
        check = _lock_check(renewer)
        for piece in every:
            live = piece.live
            # (we hold the lock: no other rebuild can switch, and no live one takes a number now)
            piece.current = await live.follow(force=True)
            # first: the number taken next is above every number a rebuild took from the
            # counter, but leftovers of rebuilds from before the counter may sit at any number
            await drop_dead(live, piece.current, rules, check)
            try:
                generation = await live.take_generation(token)
            except StoreConflict as exc:
                raise StackError(
                    "the rebuild lock ran out before the rebuild began; retry"
                ) from exc
            # a new generation, on the same prefix; the pointer still names the live one
            piece.shadow = Store(
                live.client,
                live.prefix,  # the namespace's own (a hash tag on a cluster)
                rules,
                scoring_id=identity(rules.version, bait),
                generation=generation,
            )
            await piece.shadow.claim_scoring_version()
        shadows = [p.shadow for p in pieces if p.shadow is not None]

        # (no evidence sink: the evidence is in the log already; no perk rules: unlocks are
        # serving state the live workers own)
        def make(store: Store) -> Processor:
            return Processor(store, rules, settings.worker, letters, bait=bait)

        processor: Processor | ShardedProcessor = (
            make(shadows[0]) if gate is None else ShardedProcessor(shadows, make, gate=gate.shadow)
        )
        await consumer.start()
        topic = settings.broker.topic
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise StackError(
                f"no topic {topic!r} on {redact.url(settings.broker.url)}: nothing to rebuild"
            )
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        of_shard = {
            k: [tp for tp in tps if shard_of(tp.partition, len(pieces)) == k]
            for k in range(len(pieces))
        }
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
            # read up to the topic's end now, or the live fences if the workers are further;
            # a switched shard's partitions are its live workers' now
            ends = await consumer.end_offsets(tps)
            fences = await _fences([p.live for p in pieces])
            done = await _fences(shadows)
            mine = {
                tp.partition
                for tp in tps
                if not pieces[shard_of(tp.partition, len(pieces))].switched
            }
            target = {p: max(ends[TopicPartition(topic, p)] - 1, fences.get(p, -1)) for p in mine}
            messages += await _read_until(consumer, processor, target, done, on_progress, check)
            if decided is None:
                report = await _diff(pieces, len(parts), rules)
                decided = await asyncio.to_thread(switch, report) if callable(switch) else switch
                result = RebuildResult(report, messages=messages, dead_letters=letters.count)
                if not decided:
                    break
                # catching up with live workers has its own time from here
                deadline = time.monotonic() + CATCH_UP_S
            check()  # (the switch checks the token too; this says why it is refused)
            if not any(p.switched for p in pieces):
                # the shards switch in one pass, so a merged read sees them on two generations
                # for as short a time as may be: not before every shard is nearly caught up
                lag = await _lag(pieces)
                if lag > SWITCH_LAG:
                    if time.monotonic() > deadline:
                        raise StackError(
                            f"the live workers kept ahead of the rebuild for {CATCH_UP_S:.0f} s "
                            f"({lag:,} messages behind); retry at a quieter time, or stop the "
                            "workers during the rebuild"
                        )
                    continue
                if gate is not None and not gate.switched and gate.shadow is not None:
                    # the community set first: the live workers gate by the rebuilt set from
                    # now on, as the rebuild's catch-up does
                    outcome = await base.switch_from(
                        gate.shadow, OUTBOX_GROUP, token, previous=gate.current
                    )
                    if outcome in ("lock", "moved"):
                        raise StackError(f"{_refusal(outcome)}; not switching")
                    gate.switched = outcome == "ok"
            for k, piece in enumerate(pieces):
                if piece.switched or piece.shadow is None:
                    continue
                t = time.perf_counter()
                outcome = await piece.live.switch_from(
                    piece.shadow, OUTBOX_GROUP, token, previous=piece.current
                )
                result.switch_s += time.perf_counter() - t
                if outcome == "ok":
                    piece.switched = True
                    if isinstance(processor, ShardedProcessor):
                        # its live workers carry on from its fences: not one more message
                        processor.retire(k)
                        consumer.pause(*of_shard[k])
                    continue
                if outcome in ("lock", "moved"):
                    raise StackError(f"{_refusal(outcome)}; not switching{_partial(pieces)}")
            if all(p.switched for p in pieces):
                result.switched = True
                break
            if time.monotonic() > deadline:
                raise StackError(
                    f"the live workers kept ahead of the rebuild for {CATCH_UP_S:.0f} s; "
                    f"retry at a quieter time, or stop the workers during the rebuild"
                    f"{_partial(pieces)}"
                )
        result.messages, result.dead_letters = messages, letters.count
        result.fences = await _fences(shadows)
        result.generation = shadows[0].pinned or 0
        if result.switched:
            # plain reads may still be on the old generation for FOLLOW_S: wait, then drop it
            # (only while the lock is ours: a rebuild that lost it leaves the drop to the next)
            await asyncio.sleep(DROP_GRACE_S)
            for piece in every:
                if piece.switched:
                    result.dropped += await _drop(piece.live, piece.current, check)
        result.seconds = time.perf_counter() - started
        return result
    finally:
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await renewer  # (its error, if any, was raised by a check already)
        await consumer.stop()
        for piece in locked:
            with contextlib.suppress(Exception):
                shadow = piece.shadow
                if shadow is not None and await piece.live.pointer() != shadow.generation:
                    # not switched: the generation it filled goes, its own number only, lock
                    # or not (nobody else fills it); drop_steps refuses it if it is live
                    await piece.live.drop_generation(shadow.generation)
                await piece.live.unlock_rebuild(token)
        await base.close()  # (the shards' stores share its client)


def _refusal(outcome: str) -> str:
    """Why a switch was refused ("lock" or "moved")."""
    if outcome == "lock":
        return "another kudos rebuild took over the lock"
    return "the live generation moved during the rebuild"


async def _lag(pieces: Sequence[_Piece]) -> int:
    """Messages the new generations are behind their live fences, over every shard."""
    live = await _fences([p.live for p in pieces])
    new = await _fences([p.shadow for p in pieces if p.shadow is not None])
    return sum(max(0, o - new.get(part, -1)) for part, o in live.items())


def _partial(pieces: Sequence[_Piece]) -> str:
    """What a stop after some shards switched leaves, for the error ("" if none did)."""
    done = [k for k, p in enumerate(pieces) if p.switched]
    if not done:
        return ""
    rest = [k for k, p in enumerate(pieces) if not p.switched]
    return (
        f" (shards {done} switched, {rest} did not: each shard is whole, but the namespace is "
        "on two generations; run kudos rebuild again to bring every shard to one)"
    )


async def _fences(stores: Sequence[Store]) -> dict[int, int]:
    """The partition fences of ``stores`` (each partition is in one of them only)."""
    out: dict[int, int] = {}
    for part in await asyncio.gather(*(s.fences() for s in stores)):
        out.update(part)
    return out


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
    processor: Processor | ShardedProcessor,
    target: dict[int, int],
    fences: dict[int, int],
    on_progress: Progress | None,
    check: Check,
) -> int:
    """Apply every message up to ``target`` (partition → offset) in the new generation, whose
    fences are ``fences``; messages of partitions not in ``target`` (a switched shard's) are
    dropped. ``check`` (the lock is still ours) before every chunk: the first pass reads the
    whole topic, possibly for hours."""
    done = {p: fences.get(p, -1) for p in target}
    total = sum(o + 1 for o in target.values())
    applied = 0
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
            if tp.partition not in target:
                continue
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


async def _diff(pieces: Sequence[_Piece], partitions: int, rules: ScoringRules) -> Diff:
    """Who moves on ``all``: the live boards against the new generation's, merged over the
    shards (disjoint by member); each member's explain counters from its own shard."""
    before: dict[str, int] = {}
    after: dict[str, int] = {}
    for piece in pieces:
        assert piece.shadow is not None
        before.update(await piece.live.board_mp(ALL))
        after.update(await piece.shadow.board_mp(ALL))
    who = candidates(before, after)
    mine: dict[int, list[str]] = {}
    for m in who:
        k = shard_of(partition_for(m.encode(), partitions), len(pieces)) if len(pieces) > 1 else 0
        mine.setdefault(k, []).append(m)
    was: dict[str, dict[str, int]] = {}
    now: dict[str, dict[str, int]] = {}
    for k, members in mine.items():
        shadow = pieces[k].shadow
        assert shadow is not None
        was.update(await pieces[k].live.explain_counters(members))
        now.update(await shadow.explain_counters(members))
    first = pieces[0].shadow
    assert first is not None
    return diff(
        ALL,
        before,
        after,
        (await pieces[0].live.scoring_version() or "", first.scoring_id),
        {m: was[m] for m in who},
        {m: now[m] for m in who},
    )
