"""The one module that talks to Redis: key names, the apply script, state reads and board reads.

Keys (all under ``<prefix>:``; nothing else in Kudos builds a key string):

====================  ======  ===========================================================
``fence``             hash    partition → last applied offset (the exactly-once fence)
``fencepart``         hash    partition → "<offset>:<n>": the message after the fence is a big
                              envelope applied in pieces, its first n events so far (written
                              and deleted with the fence)
``pwm``               hash    partition → newest event time applied in that partition
``wm``                string  global watermark W (largest event time applied)
``landmark``          string  forward-decay landmark L (unix seconds, whole days)
``board:<id>``        zset    member → score (milli-points; decayed: stored against L)
``bucket:<id>|<i>``   zset    member → milli-points of window board <id> in bucket i
``buckets:<window>``  zset    "<board>|<i>" → i, the live buckets of one window (for expiry)
``boards``            set     every board id that has ever had a member
``communities``       set     the communities admitted to boards (at most the workers'
                              ``max_communities``; only grows, checked by every apply that
                              admits or refuses one for the cap)
``mcomm:<member>``    set     the communities the member has points in (explain reads only
                              their boards); a subset of ``communities``
``decayed_boards``    set     keys of the decayed boards (rescaled when L moves)
``rescale``           hash    a landmark move under way: to (the new L), factor, prune, and
                              c:<board> → ZSCAN cursor of each decayed board not copied yet
``rescaled:<id>``     zset    decayed board <id> rescaled to the new L (swapped in when complete)
``seen:<p>``          zset    event id → ts; pruned at partition watermark − dedupe horizon
``dr:<p>:<day>``      hash    "actor␟target" → scored events that day (diminishing returns)
``drdays:<p>``        zset    days that have a ``dr`` hash (for pruning)
``explain:<member>``  hash    n:<kind>, full:<kind>, mp:<kind>, self (read also: wh:<kind>)
``posts:<member>``    zset    post → milli-points the member earned on it (events naming a post)
``bait:<t>:<p>``      hash    the comment-bait detector's state of partition p, table t (g: posts,
                              a: authors, c: commenters, m: clock), written with the fence
``throttle:<member>`` hash    group (``p:<post>``/``t:<member>``) → the latest throttle decision
                              (JSON: detected_at or ended_at, multiplier, reasons, signals)
``withheld:<member>`` hash    group → milli-points the throttle withheld there
``alerts``            stream  one entry per throttle decision (r: JSON with its id), about
                              ALERTS_MAXLEN kept; ``GET /api/alerts`` and the deliverer's outbox
                              (group ``deliver``: topic ``bait-alerts`` and the websocket); with
                              the group, only entries it acknowledged are trimmed
``alertfanout``       hash    alert id → unix time ``kudos deliver`` fanned it out
``stats``             hash    applied / ignored / duplicate / invalid / late / future event counts,
                              and community_refused / community_capped (applied events that
                              scored without some of their communities)
``changes``           hash    board → change counter, bumped by every apply that touches it (live feed)
``feedepoch``         string  the live feed's epoch; a new one means the feed history is gone
``feed:<channel>``    hash    seq, src (change counter at the last publish), snap (published state)
``feedlog:<channel>`` stream  entry ``<seq>-1`` → r: the frame record (capped; resume replays it)
``watched``           zset    member → unix time until which some web process has a subscriber
``perks:<member>``    hash    rule id → the unlock record (JSON); set once, never revoked
``perkseen``          hash    rank rule → the board's change mark when the rule last looked
``perkties``          hash    rank rule → JSON {at, board, rank, tied, cap} of its latest check that
                              left a tie out (more than N + max_ties members at rank <= N)
``perkbox``           stream  one entry per unlock (id, rule, title, member, board, rank, score,
                              at, payload), written with the scores that earned it; for delivery
                              by the consumer group ``deliver`` (``kudos deliver``), which trims
                              what it acknowledged beyond ``KUDOS_PERKS_OUTBOX_KEEP``
``perkfanout``        hash    unlock id → unix time ``kudos deliver`` pushed it to the websocket and
                              made its webhook jobs (once: a redelivered outbox entry adds nothing)
``wh:job:<job>``      hash    webhook job ``<endpoint>:<unlock id>``: endpoint, unlock, member, rule,
                              body, attempts, state (pending/dead), lease (token), error, created,
                              dead_at; deleted once delivered
``wh:due``            zset    job → unix time it is due; a claimed job's lease end (so a job whose
                              deliverer died is due again when the lease runs out)
``wh:dead``           zset    job → unix time it was dead-lettered (``kudos webhooks replay``)
``wh:disabled``       hash    endpoint → JSON {at, status, unlock, error} of the 410 that disabled it
``wh:log``            stream  one entry per attempt: at, endpoint, job, unlock, attempt, status, ms,
                              outcome, action, error (capped at ``WEBHOOK_LOG_MAXLEN``)
``meta``              hash    scoring_version: the scoring identity (scoring.toml version + bait
                              settings) applies must match; other facts about this namespace
``generation``        string  bumped by every ``kudos rebuild`` switch: applies planned from an
                              older copy of the state are refused (the worker reloads)
``rebuilding``        string  the lock of a running ``kudos rebuild`` (expires if it dies)
====================  ======  ===========================================================

No key has a TTL: scoring state is pruned by event time, never by wall-clock, so a replay of old data
behaves exactly like live traffic. (The live feed is serving state about connected clients: its
``watched`` entries expire by wall-clock.) Webhook state is bounded by the unlocks, which happen once
per (rule, member): delivered jobs are deleted, dead ones wait for a replay, the log is capped.

Why one module of this size: every key family above is named here and nowhere else, and the Lua
scripts that touch them sit beside the methods that call them. It becomes a package with one key
registry (one module per concern behind a small facade) together with the Redis Cluster key
layout, which changes every key name at once; splitting it before would move each line twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple, cast

import hiredis
import orjson
import redis.asyncio as aioredis
from redis.connection import HiredisRespSerializer
from redis.exceptions import NoScriptError, ResponseError, WatchError

from leaderboard.bait import TABLES as BAIT_TABLES
from leaderboard.bait import BaitParams, Decision, Detector
from leaderboard.errors import ScoringVersionMismatch, StoreConflict
from leaderboard.explain import (
    SELF_FIELD,
    TOP_POSTS,
    Explanation,
    Place,
    hourly_series,
    hourly_window,
    kind_lines,
    throttle_lines,
)
from leaderboard.owned import OwnedPartition, OwnedState
from leaderboard.perks import PerkRule
from leaderboard.plan import DECAY_PRUNE_MP, Plan
from leaderboard.ranking import Entry, competition_ranks, percentile
from leaderboard.scoring import DECAYED, ScoringRules, decayed_value, format_mp

log = logging.getLogger(__name__)

#: Bait alerts kept in the ``alerts`` stream (``GET /api/alerts``, the deliverer's outbox), about;
#: more while the deliverers have not acknowledged them (see :meth:`Store.outbox_trim`).
ALERTS_MAXLEN = 100_000
#: Entries one outbox trim call looks at and removes at most (:meth:`Store.outbox_trim` repeats).
OUTBOX_TRIM_STEP = 1000
#: The outbox streams ``kudos deliver`` fans out: perk unlocks and bait alerts, and its group.
PERKBOX = "perkbox"
#: The hashes marking what ``kudos deliver`` fanned out: unlocks, and bait alerts.
PERK_MARKS = "perkfanout"
ALERT_MARKS = "alertfanout"
OUTBOX_GROUP = "deliver"
ALERTS = "alerts"
STAT_FIELDS = ("applied", "ignored", "duplicate", "invalid", "late", "future")
#: Applied events that scored without some of their communities' boards: not in the allow-list,
#: or beyond the cap on distinct communities. A part of ``applied``, so not in the sum above.
COMMUNITY_STAT_FIELDS = ("community_refused", "community_capped")
#: Attempts kept in the webhook attempts log (``wh:log``), about.
WEBHOOK_LOG_MAXLEN = 10_000

_APPLY_LUA = resources.files("leaderboard").joinpath("lua/apply.lua").read_text()
_READ_LUA = resources.files("leaderboard").joinpath("lua/read.lua").read_text()
_FEED_POLL_LUA = resources.files("leaderboard").joinpath("lua/feed_poll.lua").read_text()
_FEED_PUBLISH_LUA = resources.files("leaderboard").joinpath("lua/feed_publish.lua").read_text()
_EXPLAIN_LUA = resources.files("leaderboard").joinpath("lua/explain.lua").read_text()
_WEBHOOK_CLAIM_LUA = resources.files("leaderboard").joinpath("lua/webhook_claim.lua").read_text()
_WEBHOOK_FINISH_LUA = resources.files("leaderboard").joinpath("lua/webhook_finish.lua").read_text()
_WEBHOOK_REPLAY_LUA = resources.files("leaderboard").joinpath("lua/webhook_replay.lua").read_text()
_SWITCH_LUA = resources.files("leaderboard").joinpath("lua/switch.lua").read_text()
_OUTBOX_TRIM_LUA = resources.files("leaderboard").joinpath("lua/outbox_trim.lua").read_text()

#: Key families ``kudos rebuild`` replaces with the rebuilt namespace's: the scoring state derived
#: from the log (and the alerts outbox, whose consumer group the switch recreates). The others are
#: serving state and stay: the live feed, perk unlocks and delivery, ``changes``, ``meta``.
REBUILT_FAMILIES = (
    "fence", "fencepart", "pwm", "wm", "landmark", "board", "bucket", "buckets", "boards", "decayed_boards",
    "rescale", "rescaled", "seen", "dr", "drdays", "explain", "posts", "stats", "bait", "throttle", "withheld", "alerts",
    "communities", "mcomm",
)  # fmt: skip


class _HiredisPackConnection(aioredis.Connection):
    """A connection tuned for the big apply calls.

    - redis-py's asyncio client packs commands in pure Python (its sync client uses hiredis); one
      apply of 5,000 events carries ~85k arguments: 43 ms to pack in Python, 6 ms with hiredis.
    - A zero write-buffer limit makes ``drain()`` return only once every byte is in the kernel, so
      a sent apply reaches Redis while the worker goes back to CPU-bound planning (with asyncio's
      default 64 KiB limit the tail of a 1 MB command waited for the next loop iteration).
    """

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        if args and args[0] == "EVALSHA":
            # the apply call: all str arguments, nothing for redis-py's wrapper to convert
            return [hiredis.pack_command(args)]
        return self._packer.pack(*args)  # type: ignore[no-any-return]

    async def on_connect(self) -> None:
        await super().on_connect()
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.transport.set_write_buffer_limits(high=0)


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def alert_id(d: Decision) -> str:
    """A throttle decision's id: the same on every replay of the log (consumers de-duplicate)."""
    raw = "\x1f".join((d.group, d.state, repr(d.at))).encode()
    return "alr_" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()


def _clock(wm: str, landmark: str) -> tuple[float | None, int | None]:
    return (float(wm) if wm else None, int(landmark) if landmark else None)


async def _done(value: float | None) -> float | None:
    return value


def _num(x: float | None) -> str:
    if x is None:
        return ""
    if x == int(x):
        return str(int(x))
    return repr(x)


def _part(text: str | None) -> tuple[int, int] | None:
    """A ``fencepart`` value: (offset, events applied), or None."""
    if not text:
        return None
    offset, _, n = text.partition(":")
    return int(offset), int(n)


def _part_text(part: tuple[int, int] | None) -> str:
    return "" if part is None else f"{part[0]}:{part[1]}"


def _log_entries(raw: list[Any]) -> list[tuple[int, str]]:
    """XRANGE rows ``[id, [field, value]]`` of a feed log as (seq, record)."""
    return [(int(entry_id.partition("-")[0]), fields[1]) for entry_id, fields in raw]


def _first_seq(entry_id: str) -> int | None:
    return int(entry_id.partition("-")[0]) if entry_id else None


class FeedFrame(NamedTuple):
    """A channel's next frame for ``lua/feed_publish.lua``: appended only if the channel's seq is
    still ``expected_seq`` (and the feed epoch still ``epoch``), with the state it leaves."""

    channel: str
    expected_seq: int
    epoch: str
    #: the change counter the frame was diffed at, and the snapshot it leaves published
    src: str
    snap: bytes
    #: None: no frame, only remember that the board was looked at
    record: bytes | None


#: No channel frame of its own: member events only (perk unlocks, bait alerts).
NO_FRAME = FeedFrame("", 0, "", "", b"", None)


def _feed_publish_args(
    prefix: str,
    frame: FeedFrame,
    member_records: list[tuple[str, bytes]],
    maxlen: int,
    member_maxlen: int,
    board_records: Sequence[tuple[str, bytes]] = (),
) -> list[Any]:
    """ARGV of ``lua/feed_publish.lua``."""
    f = frame
    args: list[Any] = [prefix, f.channel, f.expected_seq, f.epoch, f.src, f.snap, f.record or b""]
    args += [maxlen, member_maxlen, repr(time.time()), len(member_records)]
    for m, rec in member_records:
        args += [m, rec]
    args.append(len(board_records))
    for b, rec in board_records:
        args += [b, rec]
    return args


@dataclass(frozen=True, slots=True)
class BoardPoll:
    """One board channel's shared feed state, read atomically (see ``lua/feed_poll.lua``)."""

    epoch: str
    seq: int
    #: the board's change mark now; ``changed`` when it differs from the last published one
    src: str
    changed: bool
    #: the published snapshot (only when asked for or when changed), encoded by web.feed
    snap: str
    #: (seq, record) after the caller's seq
    frames: list[tuple[int, str]]
    #: when changed: the current top rows as (member, points), best first; the board size now
    rows: list[tuple[str, float]]
    members: int
    as_of: float | None
    first_retained: int | None
    #: wall-clock time of the last publish (None: never published)
    published_at: float | None


@dataclass(frozen=True, slots=True)
class MemberPoll:
    seq: int
    snap: str
    frames: list[tuple[int, str]]
    #: board → (rank, stored score, points) or None, when standing was asked for; else empty
    standing: dict[str, tuple[int, float, float] | None]
    first_retained: int | None


@dataclass(frozen=True, slots=True)
class Standing:
    """A member's place on one board."""

    board: str
    member: str
    rank: int
    score: float
    members: int
    percentile: float
    around: list[Entry]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A webhook job claimed for one attempt (see ``lua/webhook_claim.lua``)."""

    id: str
    #: the lease token; only its holder records the outcome
    token: str
    endpoint: str
    unlock: str
    body: bytes
    #: attempts made before this one
    attempts: int
    #: the endpoint's disabled record (JSON) when it is disabled, else ""
    disabled: str


class Store:
    """Kudos state in Redis. Create with :meth:`connect`; close with :meth:`close`."""

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.rules = rules
        #: the identity applies are guarded by (leaderboard.bait.identity: rules + bait settings)
        self.scoring_id = scoring_id or rules.version
        #: checked by every apply (the worker's store has them; readers need not)
        self.perk_rules = tuple(perk_rules)
        self._apply = client.register_script(_APPLY_LUA)
        self._read_script = client.register_script(_READ_LUA)
        self._feed_poll = client.register_script(_FEED_POLL_LUA)
        self._feed_publish = client.register_script(_FEED_PUBLISH_LUA)
        self._explain_script = client.register_script(_EXPLAIN_LUA)
        self._webhook_claim = client.register_script(_WEBHOOK_CLAIM_LUA)
        self._webhook_finish = client.register_script(_WEBHOOK_FINISH_LUA)
        self._webhook_replay = client.register_script(_WEBHOOK_REPLAY_LUA)
        self._switch = client.register_script(_SWITCH_LUA)
        self._outbox_trim = client.register_script(_OUTBOX_TRIM_LUA)
        self._sha: str | None = None
        #: board rows each Lua call of the latest apply expired or rescaled (several calls when
        #: it had to do that in steps, see :meth:`send_apply`)
        self.apply_work: list[int] = []
        #: awaited between those calls (tests read the boards there)
        self.between_apply_calls: Callable[[], Awaitable[None]] | None = None

    @classmethod
    def connect(
        cls,
        url: str,
        prefix: str,
        rules: ScoringRules,
        perk_rules: Sequence[PerkRule] = (),
        scoring_id: str | None = None,
    ) -> Store:
        kwargs: dict[str, Any] = {"decode_responses": True}
        if url.startswith("redis://"):
            kwargs["connection_class"] = _HiredisPackConnection
        pool = aioredis.ConnectionPool.from_url(url, **kwargs)
        return cls(aioredis.Redis.from_pool(pool), prefix, rules, perk_rules, scoring_id)

    async def close(self) -> None:
        await self.client.aclose()

    def key(self, *parts: object) -> str:
        return ":".join((self.prefix, *map(str, parts)))

    # -- the write path --------------------------------------------------------------------

    async def claim_scoring_version(self) -> str:
        """Record this store's scoring identity as the namespace's if it has none yet; the
        namespace's (a worker with another one must not apply: ScoringVersionMismatch).

        A namespace from before the identity carried the bait settings holds the bare scoring
        version: it is taken over (its past scores do not change; new events get the throttle).
        """
        key = self.key("meta")
        await self.client.hsetnx(key, "scoring_version", self.scoring_id)
        current = cast(str, await self.client.hget(key, "scoring_version"))
        if current == self.rules.version != self.scoring_id:
            await self.client.hset(key, "scoring_version", self.scoring_id)
            current = self.scoring_id
        return current

    async def load_partitions(
        self, parts: list[int], owned: OwnedState, bait: BaitParams | None = None
    ) -> None:
        """Load the fences, dedupe ids and diminishing-returns counters of ``parts`` into
        ``owned``, and refresh its watermark and landmark; with ``bait``, each partition's
        comment-bait detector too (its state is written with the fence, so it matches it)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.key("fence"), parts)
        pipe.hmget(self.key("pwm"), parts)
        pipe.mget(self.key("wm"), self.key("landmark"), self.key("generation"))
        pipe.hmget(self.key("fencepart"), parts)
        for p in parts:
            pipe.zrange(self.key("seen", p), 0, -1, withscores=True)
            pipe.zrange(self.key("drdays", p), 0, -1)
        if bait is not None:
            for p in parts:
                for table in BAIT_TABLES:
                    pipe.hgetall(self.key("bait", table, p))
        pipe.smembers(self.key("communities"))
        res = await pipe.execute()
        tables_at = 4 + 2 * len(parts)
        fences, pwms, (wm, landmark, generation), fparts = res[0], res[1], res[2], res[3]
        if int(generation or 0) != owned.generation:
            # a rebuild switched the namespace: every partition held from before is stale
            owned.partitions.clear()
            owned.communities.clear()
            owned.generation = int(generation or 0)
        owned.watermark = float(wm) if wm is not None else None
        owned.landmark = int(landmark) if landmark is not None else None
        # (added to, not replaced: an apply in flight may have admitted some the read missed)
        owned.communities.update(cast("set[str]", res[-1]))
        day_lists: list[tuple[int, list[str]]] = []
        for j, p in enumerate(parts):
            o = OwnedPartition(
                fence=int(fences[j]) if fences[j] is not None else -1,
                watermark=float(pwms[j]) if pwms[j] is not None else None,
                part=_part(fparts[j]),
            )
            for event_id, ts in res[4 + 2 * j]:
                o.add_seen(event_id, ts)
            if bait is not None:
                at = tables_at + j * len(BAIT_TABLES)
                o.bait = Detector.restore(
                    dict(zip(BAIT_TABLES, res[at : at + len(BAIT_TABLES)], strict=True)), bait
                )
            owned.partitions[p] = o
            day_lists.append((p, res[5 + 2 * j]))
        pipe = self.client.pipeline(transaction=False)
        queued: list[tuple[int, int]] = []
        for p, days in day_lists:
            for day_text in days:
                pipe.hgetall(self.key("dr", p, day_text))
                queued.append((p, int(day_text)))
        for (p, day), counters in zip(queued, await pipe.execute(), strict=True):
            o = owned.partitions[p]
            for f, k in counters.items():
                o.set_dr(day, f, int(k))

    def _argv(self, plan: Plan, max_rows: int) -> list[str]:
        argv: list[str] = [self.prefix, self.scoring_id, str(plan.generation)]
        argv.append(str(len(plan.partitions)))
        add = argv.append
        ext = argv.extend
        for u in plan.partitions:
            ext(
                (
                    str(u.partition),
                    str(u.expected_fence),
                    str(u.fence),
                    _num(u.watermark),
                    _num(u.seen_cutoff),
                    _num(u.dr_cutoff_day),
                    _part_text(u.expected_part),
                    _part_text(u.part),
                )
            )
        ext((_num(plan.expected_landmark), _num(plan.landmark), repr(plan.rebase_factor)))
        # the community bound: the cap, what the plan admitted and what it refused for the cap
        ext((str(plan.max_communities), str(len(plan.new_communities)), *plan.new_communities))
        add(str(len(plan.capped_communities)))
        ext(plan.capped_communities)
        ext((_num(plan.max_ts), repr(DECAY_PRUNE_MP), str(max_rows)))
        windows = self.rules.windows
        add(str(len(windows)))
        for w in windows:
            ext((w.name, str(w.bucket_s), str(w.buckets)))
        totals = [(b, m, v) for (b, m), v in plan.totals.items() if v]
        add(str(len(totals)))
        for b, m, v in totals:
            ext((b, m, str(v)))
        buckets = [(k, v) for k, v in plan.buckets.items() if v]
        add(str(len(buckets)))
        for (wi, idx, b, m), v in buckets:
            ext((str(wi), str(idx), b, m, str(v)))
        decayed = [(k, dv) for k, dv in plan.decayed.items() if dv > 0.0]
        add(str(len(decayed)))
        for (b, m), dv in decayed:
            ext((b, m, repr(dv)))
        add(str(len(plan.boards)))
        ext(sorted(plan.boards))
        add(str(len(plan.member_communities)))
        for m, c in plan.member_communities:
            ext((m, c))
        add(str(len(plan.seen)))
        for p, ts, i in plan.seen:
            ext((str(p), _num(ts), i))
        add(str(len(plan.dr)))
        for (p, day, f), k in plan.dr.items():
            ext((str(p), str(day), f, str(k)))
        explain = [(k, v) for k, v in plan.explain.items() if v]
        add(str(len(explain)))
        for (m, f), v in explain:
            ext((m, f, str(v)))
        add(str(len(plan.posts)))
        for (m, post), v in plan.posts.items():
            ext((m, post, str(v)))
        stats = [(k, v) for k, v in (*plan.stats.items(), *plan.community_stats.items()) if v]
        add(str(len(stats)))
        for f, v in stats:
            ext((f, str(v)))
        self._bait_argv(plan, argv)
        self._perk_argv(plan, argv)
        return argv

    def _bait_argv(self, plan: Plan, argv: list[str]) -> None:
        """Detector state changes, throttle decisions and withheld points (section 9b)."""
        ext = argv.extend
        argv.append(str(len(plan.bait_state)))
        for p, table, k, v in plan.bait_state:
            ext((str(p), table, k, "" if v is None else v.decode()))
        argv += [str(ALERTS_MAXLEN), str(len(plan.alerts))]
        for d in plan.alerts:
            record = d.to_json()
            record["id"] = alert_id(d)
            ext((d.target, d.group, orjson.dumps(record).decode()))
        argv.append(str(len(plan.withheld)))
        for (m, group), mp in plan.withheld.items():
            ext((m, group, str(mp)))

    def _perk_argv(self, plan: Plan, argv: list[str]) -> None:
        """The perk rules for the apply script, each with the members to check when it has no
        rank condition: those this plan touches on the rule's board."""
        argv += [str(len(self.perk_rules)), repr(self.rules.half_life_s)]
        touched: dict[str, list[str]] = {}
        for rule in self.perk_rules:
            cands: list[str] = []
            if rule.rank_max is None:
                if rule.board not in touched:
                    members = {m for b, m in plan.totals if b == rule.board}
                    members |= {m for b, m in plan.decayed if b == rule.board}
                    members |= {k[3] for k in plan.buckets if k[2] == rule.board}
                    touched[rule.board] = sorted(members)
                cands = touched[rule.board]
            argv += [
                rule.id,
                rule.board,
                "" if rule.rank_max is None else str(rule.rank_max),
                _num(rule.score_min_mp),
                rule.title,
                orjson.dumps(rule.payload).decode(),
                "0" if rule.cap is None else str(rule.cap),
                str(len(cands)),
            ]
            argv += cands

    async def send_apply(self, plan: Plan, max_rows: int = 0) -> Awaitable[float | None]:
        """Send ``plan``'s apply call and return once it is on the wire, with an awaitable for
        its outcome: the watermark after it, or StoreConflict if a fence or the landmark moved
        since the plan's state was read (nothing of the plan was written then).

        The worker plans the next chunk while Redis runs this one. Calls are sent in order on
        one connection each, and the fence check makes any reordering harmless anyway.

        ``max_rows`` bounds the board rows one Lua call expires or rescales (0: no bound): when
        the plan moves W far (many buckets leave the windows) or moves the decay landmark, the
        script does that work in steps, answering "more" until it has applied the plan, and the
        outcome repeats the call (readers see exact boards in between; see ``lua/apply.lua``).
        """
        if plan.empty:
            return _done(None)
        argv = self._argv(plan, max_rows)
        if self._sha is None:
            self._sha = await self.client.script_load(_APPLY_LUA)
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await conn.send_command("EVALSHA", self._sha, 1, self.key("fence"), *argv)
        except BaseException:
            await pool.release(conn)
            raise

        async def outcome() -> float | None:
            try:
                res: list[Any] = await conn.read_response()
            except NoScriptError:
                # Redis lost its script cache (restart, SCRIPT FLUSH): nothing ran; run it again
                self._sha = None
                res = await self._apply(keys=[self.key("fence")], args=argv)
            finally:
                await pool.release(conn)
            self.apply_work = [int(res[-1])] if res[0] in ("ok", "more") else []
            while res[0] == "more":
                if self.between_apply_calls is not None:
                    await self.between_apply_calls()
                res = await self._apply(keys=[self.key("fence")], args=argv)
                self.apply_work.append(int(res[-1]) if res[0] in ("ok", "more") else 0)
                if len(self.apply_work) % 100 == 0:  # a long catch-up says it is alive
                    log.info(
                        "apply: %d calls so far, %d board rows expired or rescaled",
                        len(self.apply_work),
                        sum(self.apply_work),
                    )
            if len(self.apply_work) > 1:
                log.info(
                    "apply took %d calls to expire or rescale %d board rows first",
                    len(self.apply_work),
                    sum(self.apply_work),
                )
            if res[0] != "ok":
                if res[1] == "scoring":
                    raise ScoringVersionMismatch(str(res[2]), self.scoring_id)
                raise StoreConflict(f"state moved since planning: {res[1:]}")
            return float(res[1]) if res[1] else None

        return outcome()

    # -- rebuild (kudos rebuild) -------------------------------------------------------------

    async def drop_namespace(self) -> int:
        """Delete every key of this namespace (a shadow namespace after use); how many."""
        pattern = _glob_escape(self.prefix) + ":*"
        keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
        for start in range(0, len(keys), 1000):
            await self.client.unlink(*keys[start : start + 1000])
        return len(keys)

    async def switch_from(self, shadow: Store, outbox_group: str, token: str) -> str:
        """Replace this namespace's scoring state (:data:`REBUILT_FAMILIES`) with ``shadow``'s in
        one atomic script and take on its scoring identity: "ok"; "behind" (nothing changed) if
        the shadow is behind this namespace's fences; "lock" if ``token`` no longer holds the
        rebuild lock. The alerts outbox's consumer group is recreated at the stream's end; the
        live feed, perks, webhooks and meta stay."""
        args = [
            self.prefix,
            shadow.prefix,
            _glob_escape(self.prefix) + ":*",
            _glob_escape(shadow.prefix) + ":*",
            shadow.scoring_id,
            outbox_group,
            token,
            *REBUILT_FAMILIES,
        ]
        res: list[Any] = await self._switch(args=args)
        return str(res[0])

    async def lock_rebuild(self, token: str, ttl_s: int) -> str | None:
        """Take (or extend, with the same token) the namespace's rebuild lock; the holder's
        token if someone else holds it."""
        holder = await self.client.eval(
            "local h = redis.call('GET', KEYS[1])\n"
            "if h == false or h == ARGV[1] then\n"
            "  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]); return false end\n"
            "return h",
            1,
            self.key("rebuilding"),
            token,
            ttl_s,
        )
        return cast("str | None", holder)

    async def unlock_rebuild(self, token: str) -> None:
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end",
            1,
            self.key("rebuilding"),
            token,
        )

    async def shadow_prefixes(self, marker: str) -> list[str]:
        """Prefixes of this namespace's shadow namespaces (``<prefix><marker>…``) with keys."""
        pattern = _glob_escape(self.prefix + marker) + "*"
        found = {
            k.partition(":")[0] async for k in self.client.scan_iter(match=pattern, count=1000)
        }
        return sorted(found)

    async def board_mp(self, board: str) -> dict[str, int]:
        """A milli-point board, whole: member → milli-points (for the rebuild's diff)."""
        rows = cast(
            list[tuple[str, float]],
            await self.client.zrange(self.key("board", board), 0, -1, withscores=True),
        )
        return {m: round(s) for m, s in rows}

    async def explain_counters(self, members: Sequence[str]) -> dict[str, dict[str, int]]:
        pipe = self.client.pipeline(transaction=False)
        for m in members:
            pipe.hgetall(self.key("explain", m))
        rows = await pipe.execute()
        return {m: {f: int(v) for f, v in r.items()} for m, r in zip(members, rows, strict=True)}

    async def scoring_version(self) -> str | None:
        return cast("str | None", await self.client.hget(self.key("meta"), "scoring_version"))

    # -- reads -----------------------------------------------------------------------------

    async def boards(self, cursor: int = 0, limit: int = 100) -> tuple[list[tuple[str, int]], int]:
        """One page of the boards that exist, with their sizes, and the cursor of the next page
        (0: this was the last). The first page starts with the base boards; community boards
        follow in ``SSCAN`` order, sorted within the page. Each page costs about ``limit``
        reads whatever the number of boards (``SSCAN`` with ``COUNT``, one pipelined
        ``ZCARD`` each); a board made while paging may be missed or listed twice (SSCAN's own
        guarantee), never a board that existed throughout."""
        base = {b: i for i, b in enumerate(self.rules.base_boards)}
        names: set[str] = set()
        nxt = cursor
        while True:
            nxt, found = await self.client.sscan(self.key("boards"), nxt, count=limit)
            names.update(cast("list[str]", found))
            if nxt == 0 or len(names) >= limit:
                break
        names -= set(base)
        ordered = sorted(
            names, key=lambda b: (b.partition(":")[2], base.get(b.partition(":")[0], 99))
        )
        if cursor == 0:
            ordered = list(self.rules.base_boards) + ordered
        pipe = self.client.pipeline(transaction=False)
        for b in ordered:
            pipe.zcard(self.key("board", b))
        sizes = await pipe.execute()
        return list(zip(ordered, (int(n) for n in sizes), strict=True)), int(nxt)

    async def clock(self) -> tuple[float | None, int | None]:
        """(watermark, landmark)."""
        wm, lm = await self.client.mget(self.key("wm"), self.key("landmark"))
        return (float(wm) if wm is not None else None, int(lm) if lm is not None else None)

    def _to_points(
        self, board: str, stored: float, clock: tuple[float | None, int | None]
    ) -> float:
        if board.partition(":")[0] == DECAYED:
            wm, lm = clock
            if wm is None or lm is None:
                return 0.0
            return decayed_value(stored, wm, lm, self.rules.half_life_s) / 1000.0
        return stored / 1000.0

    async def count(self, board: str) -> int:
        self.rules.check_board(board)
        return int(await self.client.zcard(self.key("board", board)))

    async def _read(self, board: str, *args: str | int) -> list[Any] | None:
        self.rules.check_board(board)
        keys = [self.key("board", board), self.key("wm"), self.key("landmark")]
        return await self._read_script(keys=keys, args=list(args))  # type: ignore[no-any-return]

    def _entries(self, board: str, res: list[Any], first_position: int) -> list[Entry]:
        flat, first_rank, clock = res[0], int(res[1]), _clock(res[3], res[4])
        members, scores = flat[0::2], [float(x) for x in flat[1::2]]
        ranks = competition_ranks(scores, first_rank, first_position)
        return [
            Entry(r, m, self._to_points(board, s, clock))
            for r, m, s in zip(ranks, members, scores, strict=True)
        ]

    async def page(self, board: str, limit: int = 10, offset: int = 0) -> tuple[list[Entry], int]:
        """One page of a board, best first, with competition ranks; and the board's size.

        Raises:
            UnknownBoard: ``board`` is not a valid board id.
        """
        res = await self._read(board, "page", offset, offset + limit - 1)
        assert res is not None
        return self._entries(board, res, offset), int(res[2])

    async def standing(self, board: str, member: str, around: int = 2) -> Standing | None:
        """Rank, score, percentile and the ``around`` members above and below; None if absent."""
        res = await self._read(board, "member", member, around)
        if res is None:
            return None
        size, rank = int(res[2]), int(res[6])
        score = self._to_points(board, float(res[5]), _clock(res[3], res[4]))
        neighbours = self._entries(board, res, int(res[7]))
        return Standing(board, member, rank, score, size, percentile(rank, size), neighbours)

    async def export(self, board: str, chunk: int = 10_000) -> AsyncIterator[tuple[int, str, str]]:
        """The whole board as (rank, member, score text), best first.

        Milli-point boards print exact decimals; ``decayed`` prints the float in points.
        """
        self.rules.check_board(board)
        key = self.key("board", board)
        is_decayed = board.partition(":")[0] == DECAYED
        clock = await self.clock()
        offset = 0
        prev_score: float | None = None
        rank = 0
        while True:
            rows = cast(
                list[tuple[str, float]],
                await self.client.zrevrange(key, offset, offset + chunk - 1, withscores=True),
            )
            if not rows:
                return
            for j, (m, s) in enumerate(rows):
                # ranks follow the printed value: far down a decayed board two stored values can
                # become the same (subnormal) number of points, and equal scores share a rank
                pts = self._to_points(board, s, clock)
                if pts != prev_score:
                    rank = offset + j + 1
                    prev_score = pts
                # decayed: the exact double; batching can change its last bits
                text = repr(pts) if is_decayed else format_mp(int(s))
                yield rank, m, text
            offset += len(rows)

    async def stats(self) -> dict[str, int]:
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("stats")))
        out = {f: int(raw.get(f, 0)) for f in STAT_FIELDS}
        out["dead_lettered"] = out["invalid"] + out["late"] + out["future"]
        out["total"] = sum(out[f] for f in STAT_FIELDS)
        out.update({f: int(raw.get(f, 0)) for f in COMMUNITY_STAT_FIELDS})
        return out

    async def fences(self) -> dict[int, int]:
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("fence")))
        return {int(p): int(o) for p, o in raw.items()}

    async def ping(self) -> bool:
        return bool(await self.client.ping())

    # -- explain and trend -----------------------------------------------------------------

    async def explanation(self, member: str, top_posts: int = TOP_POSTS) -> Explanation | None:
        """Why ``member`` has their scores and where they are heading, read in one atomic
        script; None if the member was never seen (no explain data and on no board).

        The hourly trend is the member's points in each live bucket of the window with hour
        buckets (``7d`` by default), so it needs no data of its own; without such a window it
        is empty. Community boards are read only for the member's own communities (``mcomm``),
        so the cost does not grow with the namespace's number of boards.
        """
        rules = self.rules
        base = rules.base_boards
        window = hourly_window(rules)
        keys = [
            self.key("explain", member),
            self.key("posts", member),
            self.key("wm"),
            self.key("landmark"),
            self.key("throttle", member),
            self.key("withheld", member),
            self.key("mcomm", member),
            *(self.key("board", b) for b in base),
        ]
        hourly_args: list[str | int] = ["", 0, 0]
        if window is not None:
            hourly_args = [self.key("bucket", window.name) + "|", window.bucket_s, window.buckets]
        res: list[Any] = await self._explain_script(
            keys=keys, args=[member, top_posts, *hourly_args, self.key("board", ""), *base]
        )
        raw_explain, raw_posts, wm_text, lm_text, raw_boards, raw_hourly, raw_th, raw_wh = res[:8]
        fields = dict(zip(raw_explain[0::2], map(int, raw_explain[1::2]), strict=True))
        clock = _clock(wm_text, lm_text)
        boards: dict[str, Place] = {}
        # base boards in board order, then community boards by id
        rows = [*zip(base, raw_boards, strict=True), *sorted((b, row) for b, row in res[8])]
        for b, row in rows:
            if row == "":
                continue
            score, rank, size = float(row[0]), int(row[1]), int(row[2])
            points = self._to_points(b, score, clock)
            boards[b] = Place(rank, points, size, percentile(rank, size))
        if not fields and not boards:
            return None
        posts = [
            (p, round(float(mp))) for p, mp in zip(raw_posts[0::2], raw_posts[1::2], strict=True)
        ]
        hourly = [round(float(x)) for x in raw_hourly]
        return Explanation(
            member=member,
            scoring_version=rules.version,
            as_of=clock[0],
            kinds=kind_lines(fields, rules.weights_mp),
            self_ignored=fields.get(SELF_FIELD, 0),
            top_posts=posts,
            boards=boards,
            hourly=hourly_series(window, clock[0], hourly),
            throttles=throttle_lines(
                dict(zip(raw_th[0::2], raw_th[1::2], strict=True)),
                dict(zip(raw_wh[0::2], map(int, raw_wh[1::2]), strict=True)),
            ),
        )

    # -- live feed -------------------------------------------------------------------------

    async def feed_epoch(self) -> str:
        """The feed's epoch, created on first use (and again after Redis lost it)."""
        key = self.key("feedepoch")
        await self.client.set(key, os.urandom(6).hex(), nx=True)
        return cast(str, await self.client.get(key))

    async def feed_board(
        self, board: str, after_seq: int, depth: int, max_frames: int
    ) -> BoardPoll:
        """A board channel's state; ``after_seq`` < 0 also returns the published snapshot."""
        self.rules.check_board(board)
        res: list[Any] = await self._feed_poll(
            args=[self.prefix, "board", max_frames, board, depth, after_seq]
        )
        epoch, wm, lm, seq, src, changed, snap, frames, flat, size, first, at = res
        clock = _clock(wm, lm)
        rows = [
            (m, self._to_points(board, float(v), clock))
            for m, v in zip(flat[0::2], flat[1::2], strict=True)
        ]
        return BoardPoll(
            epoch,
            int(seq),
            src,
            bool(changed),
            snap,
            _log_entries(frames),
            rows,
            int(size),
            clock[0],
            _first_seq(first),
            float(at) if at else None,
        )

    async def feed_members(
        self, members: list[tuple[str, int, bool]], max_frames: int
    ) -> tuple[str, float | None, dict[str, MemberPoll]]:
        """(epoch, as_of, member → state) of member channels given as (member, after_seq,
        want_standing), with their standing on the base boards where wanted."""
        boards = self.rules.base_boards
        args: list[Any] = [self.prefix, "members", max_frames, len(boards), *boards, len(members)]
        for m, after, want in members:
            args += [m, after, "1" if want else "0"]
        res: list[Any] = await self._feed_poll(args=args)
        epoch, wm, lm = res[0], res[1], res[2]
        clock = _clock(wm, lm)
        out: dict[str, MemberPoll] = {}
        for (m, _, _), (seq, snap, frames, flat, first) in zip(members, res[3:], strict=True):
            standing: dict[str, tuple[int, float, float] | None] = {}
            for b, rank, score in zip(boards, flat[0::2], flat[1::2], strict=False):
                standing[b] = (
                    None
                    if score == ""
                    else (int(rank), float(score), self._to_points(b, float(score), clock))
                )
            out[m] = MemberPoll(int(seq), snap, _log_entries(frames), standing, _first_seq(first))
        return epoch, clock[0], out

    async def feed_publish(
        self,
        frame: FeedFrame,
        member_records: list[tuple[str, bytes]],
        maxlen: int,
        member_maxlen: int,
    ) -> int | None:
        """Append ``frame`` as its channel's next frame if the seq is still the expected one,
        and each member record to that member's channel; the new seq, or None if another web
        process published first (nothing was written then)."""
        args = _feed_publish_args(self.prefix, frame, member_records, maxlen, member_maxlen)
        res: list[Any] = await self._feed_publish(args=args)
        return int(res[1]) if res[0] == "ok" else None

    async def feed_member_events(self, records: list[tuple[str, bytes]], maxlen: int = 100) -> None:
        """Push (member, record) pairs — perk unlocks, bait alerts, encoded with
        ``web.feed.member_record`` — to members' live channels, each as its next frame."""
        await self.feed_publish(NO_FRAME, records, maxlen, maxlen)

    async def feed_watch(self, members: list[str], ttl_s: float) -> None:
        """Mark members as watched for ``ttl_s`` (rank events reach only watched members'
        channels) and drop marks that ran out."""
        now = time.time()
        pipe = self.client.pipeline(transaction=False)
        if members:
            pipe.zadd(self.key("watched"), dict.fromkeys(members, now + ttl_s))
        pipe.zremrangebyscore(self.key("watched"), "-inf", now)
        await pipe.execute()

    async def feed_new_epoch(self, old: str) -> None:
        """Start a new feed history if the epoch is still ``old`` (the old one is unusable, e.g.
        Redis came back from a crash with fewer frames than clients have seen)."""
        await self.client.eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) end",
            1,
            self.key("feedepoch"),
            old,
            os.urandom(6).hex(),
        )

    async def board_known(self, board: str) -> bool:
        """A base board, or a community board that has had members."""
        if board in self.rules.base_boards:
            return True
        return bool(await self.client.sismember(self.key("boards"), board))

    async def member_known(self, member: str) -> bool:
        """Whether ``member`` was ever seen, as :meth:`explanation` decides it (explain data, or
        a place on a base board; a community board's members are on its base board too). Reads
        only: a live channel is opened for known members alone, so clients cannot make keys."""
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.key("explain", member))
        for b in self.rules.base_boards:
            pipe.zscore(self.key("board", b), member)
        found = await pipe.execute()
        return bool(found[0]) or any(s is not None for s in found[1:])

    async def feed_log(self, channel: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Retained frames of a channel after ``after_seq`` (for a resuming client)."""
        raw = cast(
            list[Any],
            await self.client.xrange(
                self.key("feedlog", channel), f"{after_seq + 1}-0", "+", count=limit
            ),
        )
        return [(int(i.partition("-")[0]), f["r"]) for i, f in raw]

    # -- perks and webhooks ----------------------------------------------------------------

    async def record_unlock(self, unlock: Mapping[str, str]) -> bool:
        """Record an unlock as the apply script does: into ``perks:<member>`` once, and if it
        was new, an outbox entry (all fields of ``unlock``, strings). For tests and tools that
        run no worker; False when the member already had the rule."""
        record = {
            "id": unlock["id"],
            "rule": unlock["rule"],
            "title": unlock["title"],
            "member": unlock["member"],
            "board": unlock["board"],
            "rank": int(unlock["rank"]),
            "score": float(unlock["score"]),
            "at": float(unlock["at"]),
        }
        fields = [x for kv in unlock.items() for x in kv]
        added = await self.client.eval(
            "if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end\n"
            "redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))\nreturn 1",
            2,
            self.key("perks", unlock["member"]),
            self.key("perkbox"),
            unlock["rule"],
            orjson.dumps(record),
            *fields,
        )
        return bool(added)

    async def perks_of(self, member: str) -> list[dict[str, Any]] | None:
        """A member's unlocks (the records of ``perks:<member>``), oldest first; None when the
        member was never seen (no explain data and no unlock)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hvals(self.key("perks", member))
        pipe.exists(self.key("explain", member))
        raw, known = await pipe.execute()
        if not raw and not known:
            return None
        records = [orjson.loads(r) for r in raw]
        for r in records:  # points computed in floating point; milli-points are exact
            r["score"] = round(float(r["score"]), 3)
        return sorted(records, key=lambda r: (r.get("at") or 0, r.get("rule", "")))

    async def outbox_recent(self, limit: int) -> list[dict[str, str]]:
        """The newest ``limit`` outbox entries (every member's unlocks), oldest first."""
        raw = cast(list[Any], await self.client.xrevrange(self.key("perkbox"), count=limit))
        return [fields for _, fields in reversed(raw)]

    async def alerts(self, limit: int, member: str | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` bait alerts (throttles started and ended), newest first; with
        ``member``, that member's throttle records instead (one per post, newest first)."""
        if member is not None:
            raw_map = cast(
                "dict[str, str]", await self.client.hgetall(self.key("throttle", member))
            )
            records = [orjson.loads(v) for v in raw_map.values()]
            records.sort(key=lambda r: -(r.get("ended_at") or r.get("detected_at") or 0.0))
            return records[:limit]
        raw = cast(list[Any], await self.client.xrevrange(self.key(ALERTS), count=limit))
        return [orjson.loads(f["r"]) for _, f in raw]

    async def outbox_join(self, group: str, box: str = PERKBOX) -> None:
        """Create consumer group ``group`` on an outbox stream (``perkbox``, or ``alerts``)
        reading from its start, if missing. Every ``outbox_*`` method takes the same ``box``."""
        try:
            await self.client.xgroup_create(self.key(box), group, "0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def outbox_read(
        self, group: str, consumer: str, count: int, block_ms: int, box: str = PERKBOX
    ) -> list[tuple[str, dict[str, str]]]:
        """New outbox entries for ``consumer`` (waits up to ``block_ms`` for some)."""
        res = cast(
            list[Any],
            await self.client.xreadgroup(
                group, consumer, {self.key(box): ">"}, count=count, block=block_ms
            ),
        )
        return [(i, f) for _, entries in res or [] for i, f in entries]

    async def outbox_reclaim(
        self, group: str, consumer: str, min_idle_ms: int, count: int = 100, box: str = PERKBOX
    ) -> tuple[list[tuple[str, dict[str, str]]], list[str]]:
        """Entries another consumer (or this one) read but did not acknowledge within
        ``min_idle_ms``, now ``consumer``'s; and the ids of such entries that were trimmed from
        the stream before anyone acknowledged them (lost; their group entry is dropped)."""
        key = self.key(box)
        claimed: list[tuple[str, dict[str, str]]] = []
        deleted: list[str] = []
        cursor = "0-0"
        while True:
            res = await self.client.xautoclaim(key, group, consumer, min_idle_ms, cursor, count)
            cursor = res[0]
            claimed += [(i, f) for i, f in res[1] if f is not None]
            if len(res) > 2:
                deleted += list(res[2])
            if cursor == "0-0" or len(claimed) >= count:
                return claimed, deleted

    async def outbox_ack(self, group: str, ids: Sequence[str], box: str = PERKBOX) -> None:
        if ids:
            await self.client.xack(self.key(box), group, *ids)

    async def outbox_trim(self, box: str, keep: int) -> int:
        """Trim an outbox stream to its newest ``keep`` entries, but only entries that every
        consumer group on it has acknowledged: one a group has not read yet, or read and not
        acknowledged, stays however many wait (a stream with no group is left alone: the first
        deliverer reads it from the start). How many entries it removed (see
        ``lua/outbox_trim.lua``)."""
        removed = 0
        while True:
            res: list[Any] = await self._outbox_trim(
                keys=[self.key(box)], args=[keep, OUTBOX_TRIM_STEP]
            )
            removed += int(res[0])
            if not int(res[1]):
                return removed

    async def perk_ties(self) -> dict[str, dict[str, Any]]:
        """Rank rule → its latest check that left a tie out (at, board, rank, tied, cap)."""
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("perkties")))
        return {rule: orjson.loads(v) for rule, v in raw.items()}

    async def outbox_forget_consumers(
        self, group: str, keep: str, idle_ms: int, box: str = PERKBOX
    ) -> list[str]:
        """Remove consumers (e.g. of killed deliverers) that hold no entry and were idle for
        ``idle_ms``; their names, so a restarted deliverer does not leave one behind each time."""
        key = self.key(box)
        gone: list[str] = []
        for c in await self.client.xinfo_consumers(key, group):
            if c["name"] != keep and int(c["pending"]) == 0 and int(c["idle"]) >= idle_ms:
                await self.client.xgroup_delconsumer(key, group, c["name"])
                gone.append(c["name"])
        return gone

    async def fanned_out(self, unlock_ids: Sequence[str], marks: str = PERK_MARKS) -> set[str]:
        """Which of these unlocks (alerts, with ``marks=ALERT_MARKS``) were already fanned out
        (:meth:`fan_out`)."""
        if not unlock_ids:
            return set()
        found = await self.client.hmget(self.key(marks), list(unlock_ids))
        return {u for u, m in zip(unlock_ids, found, strict=True) if m is not None}

    async def fan_out(
        self,
        unlocks: Sequence[tuple[str, str, bytes, Sequence[tuple[str, Mapping[str, str | bytes]]]]],
        now: float,
        member_maxlen: int = 100,
        board_records: Mapping[str, tuple[str, bytes]] | None = None,
        maxlen: int = 2000,
        marks: str = PERK_MARKS,
        to_alerts_channel: bool = False,
    ) -> list[str]:
        """For each (unlock id, member, websocket record, webhook jobs) not fanned out yet, in
        one transaction: mark it fanned out, push the record to the member's live channel (as
        :meth:`feed_member_events`) and create its jobs (job id, fields), due now. The mark is
        read under WATCH, so an unlock is pushed and its jobs made once, also when several
        deliverers handle the same outbox entry. Returns the unlock ids fanned out now.

        Bait alerts use the same path with their own ``marks`` and no jobs;
        ``to_alerts_channel`` pushes every record to the ``alerts`` channel too."""
        marks_key = self.key(marks)
        due = self.key("wh", "due")
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(marks_key)
                    ids = [u[0] for u in unlocks]
                    seen = await pipe.hmget(marks_key, ids) if ids else []
                    todo: dict[str, tuple[str, bytes, Sequence[Any]]] = {}
                    for (uid, member, record, jobs), mark in zip(unlocks, seen, strict=True):
                        if mark is None and uid not in todo:
                            todo[uid] = (member, record, jobs)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if not todo:
                        await pipe.reset()  # type: ignore[no-untyped-call]
                        return []
                    records = [(member, record) for member, record, _ in todo.values()]
                    if to_alerts_channel:
                        # member "" is the alerts channel in lua/feed_publish.lua
                        records += [("", record) for _, record, _ in todo.values()]
                    boards = [
                        board_records[uid] for uid in todo if board_records and uid in board_records
                    ]
                    args = _feed_publish_args(
                        self.prefix, NO_FRAME, records, maxlen, member_maxlen, boards
                    )
                    await self._feed_publish(args=args, client=pipe)
                    for uid, (_, _, jobs) in todo.items():
                        pipe.hset(marks_key, uid, repr(now))
                        for job_id, fields in jobs:
                            key = self.key("wh", "job", job_id)
                            mapping: dict[str, str | bytes] = {**fields, "created": repr(now)}
                            mapping.update(state="pending", attempts="0", lease="0")
                            pipe.hset(key, mapping=mapping)  # type: ignore[arg-type]
                            pipe.zadd(due, {job_id: now}, nx=True)
                    await pipe.execute()
                    return list(todo)
                except WatchError:
                    continue

    async def webhook_disabled(self) -> dict[str, dict[str, Any]]:
        """Disabled endpoints → what disabled them (``{at, status, unlock, error}``)."""
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("wh", "disabled")))
        return {e: orjson.loads(v) for e, v in raw.items()}

    async def webhook_claim(
        self, now: float, lease_until: float, limit: int
    ) -> tuple[list[ClaimedJob], float | None]:
        """Claim up to ``limit`` due jobs until ``lease_until``; and when the next job is due."""
        res: list[Any] = await self._webhook_claim(
            args=[self.prefix, repr(now), repr(lease_until), limit]
        )
        jobs = [
            ClaimedJob(j, str(t), e, u, body.encode(), int(a or 0), d)
            for j, t, e, u, body, a, d in res[0]
        ]
        return jobs, float(res[1]) if res[1] else None

    async def webhook_finish(
        self,
        job: ClaimedJob,
        action: str,
        now: float,
        *,
        attempts: int,
        next_due: float | None = None,
        error: str = "",
        disabled: Mapping[str, Any] | None = None,
        log: Mapping[str, str] | None = None,
    ) -> bool:
        """Record what happened to a claimed job (``lua/webhook_finish.lua``: done, retry at
        ``next_due``, dead, disable, release) and append ``log`` to the attempts log. False
        when the lease had run out and another deliverer holds the job (only the log entry is
        written then)."""
        fields = [x for kv in (log or {}).items() for x in kv]
        res = await self._webhook_finish(
            args=[
                self.prefix,
                job.id,
                job.token,
                action,
                repr(now),
                "" if next_due is None else repr(next_due),
                attempts,
                error,
                orjson.dumps(disabled) if disabled is not None else b"",
                WEBHOOK_LOG_MAXLEN,
                len(fields) // 2,
                *fields,
            ]
        )
        return bool(res == "ok")

    async def webhook_replay(
        self, endpoint: str, enable: bool, now: float
    ) -> tuple[list[str], list[str], list[str]]:
        """Move dead-lettered jobs (of ``endpoint``; "" for all) back to due now with a fresh
        schedule: (jobs replayed, jobs left dead because their endpoint is disabled, endpoints
        re-enabled, only when ``enable``)."""
        res: list[Any] = await self._webhook_replay(
            args=[self.prefix, repr(now), endpoint, "1" if enable else "0"]
        )
        return list(res[0]), list(res[1]), list(res[2])

    async def webhook_log(self, limit: int) -> list[dict[str, str]]:
        """The newest ``limit`` attempts, oldest first."""
        raw = cast(list[Any], await self.client.xrevrange(self.key("wh", "log"), count=limit))
        return [fields for _, fields in reversed(raw)]

    async def webhook_jobs(self, which: str) -> list[dict[str, str]]:
        """Jobs in the ``due`` (pending, including claimed) or ``dead`` set, each with its
        ``job`` id and its fields but the body, in due / dead-letter order."""
        if which not in ("due", "dead"):
            raise ValueError(f"which must be 'due' or 'dead', not {which!r}")
        ids = cast("list[str]", await self.client.zrange(self.key("wh", which), 0, -1))
        pipe = self.client.pipeline(transaction=False)
        for job in ids:
            pipe.hgetall(self.key("wh", "job", job))
        out = []
        for job, fields in zip(ids, await pipe.execute(), strict=True):
            fields.pop("body", None)
            out.append({"job": job, **fields})
        return out
