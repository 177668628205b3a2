"""The write path: load a partition's state, build and send the apply script's arguments."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import orjson
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

from leaderboard.bait import TABLES as BAIT_TABLES
from leaderboard.bait import BaitParams, Decision, Detector
from leaderboard.calendar import UNITS, live_board, period_start, periods_of
from leaderboard.errors import ScoringVersionMismatch, StoreConflict
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.fingerprint import pair_fingerprint
from leaderboard.owned import OwnedPartition, OwnedState, plausible_day
from leaderboard.plan import DECAY_PRUNE_MP, SEEN_DAY_S, SEP, Plan
from leaderboard.store.base import StoreBase
from leaderboard.store.keys import (
    ALERTS_MAXLEN,
    Keys,
    generation_prefix,
)
from leaderboard.store.scripts import SOURCES

log = logging.getLogger(__name__)


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


def alert_id(d: Decision) -> str:
    """A throttle decision's id: the same on every replay of the log (consumers de-duplicate)."""
    parts: tuple[str, ...] = (d.group, d.state, repr(d.at))
    if d.retroactive:
        # (a ring found at the very time of the post's own throttle is another alert, and so
        # is each later claw-back on the same post, at the same time or not)
        parts += ("retroactive",)
        if d.clawed:
            parts += (repr(d.clawed[0][1]), str(len(d.clawed)))
    raw = "\x1f".join(parts).encode()
    return "alr_" + hashlib.sha1(raw, usedforsecurity=False).hexdigest()


#: ``lua/apply.lua``'s KEYS, in order: the namespace's fixed keys (the per-board, per-member and
#: per-partition ones are named in the script from ARGV[1], see its header).
APPLY_KEYS = (
    "fence",
    "fencepart",
    "pwm",
    "wm",
    "landmark",
    "meta",
    "live",
    "communities",
    "rescale",
    "decayed_boards",
    "boards",
    "changes",
    "stats",
    "alerts",
    "perkseen",
    "perkties",
    "perkbox",
    "calendar",
    "perkclosed",
    "erasures",
    "hidden",
)
#: The sections of the apply's fields (ARGV[1], see :func:`wire_args`), in order; each starts with
#: its name (checked by the script).
APPLY_SECTIONS = (
    "partitions",
    "landmark",
    "communities",
    "erasures",
    "clock",
    "windows",
    "calendar",
    "totals",
    "archives",
    "buckets",
    "decayed",
    "boards",
    "mcomm",
    "seen",
    "dr",
    "explain",
    "posts",
    "profiles",
    "stats",
    "bait",
    "alerts",
    "withheld",
    "perks",
    "end",
)


def _id_records(plan: Plan, blobs: list[bytes]) -> list[str]:
    """The ``seen`` section: the count of (partition, day) groups, then each group's partition
    and day; the concatenated fingerprints of its new ids (appended to ``ids:<p>:<day>``) go to
    ``blobs``, in the same order."""
    groups: dict[tuple[int, int], list[bytes]] = {}
    for (p, ts, _), fp in zip(plan.seen, plan.seen_fps, strict=True):
        key = (p, math.floor(ts / SEEN_DAY_S))
        g = groups.get(key)
        if g is None:
            g = groups[key] = []
        g.append(fp)
    out = [str(len(groups))]
    for (p, day), fps in groups.items():
        out += [str(p), str(day)]
        blobs.append(b"".join(fps))
    return out


def _counter_records(plan: Plan, cap: int, blobs: list[bytes]) -> list[str]:
    """The ``dr`` section: (partition, period) groups of counter records, one record per counted
    event (``leaderboard.fingerprint``), appended to ``drc:<p>:<period>``. Counts are stored up
    to ``cap``: past the largest weight every further event of the pair earns 0 (``weight // k``),
    so a reload that finds ``cap`` plans exactly as the worker's exact count does. Like
    :func:`_id_records`: partition and period here, the records themselves to ``blobs``."""
    groups: dict[tuple[int, int], list[bytes]] = {}
    for (p, day, f), k in plan.dr.items():
        fp, before = plan.dr_fps[(p, day, f)]
        n = min(k, cap) - min(before, cap)
        if n <= 0:
            continue
        key = (p, day)
        g = groups.get(key)
        if g is None:
            g = groups[key] = []
        g.append(fp * n)
    out = [str(len(groups))]
    for (p, day), recs in groups.items():
        out += [str(p), str(day)]
        blobs.append(b"".join(recs))
    return out


def _row(groups: dict[Any, list[str]], key: Any, name: str, value: str) -> None:
    """Append a (member or field, value) row to its key's group of a grouped section."""
    rows = groups.get(key)
    if rows is None:
        groups[key] = [name, value]
    else:
        rows += (name, value)


def wire_args(fields: list[str], blobs: list[bytes]) -> list[str | bytes]:
    """The apply call's ARGV: the fields as one JSON array (``lua/apply.lua`` decodes it in C;
    hiredis packed ~17 separate arguments per event at ~0.26 µs each), then the blobs."""
    return [orjson.dumps(fields), *blobs]


class ApplyMixin(StoreBase):
    """Loads partitions into the worker's copy and applies plans (``lua/apply.lua``)."""

    #: the largest part of a (partition, day) fingerprint string (``lua/apply.lua``, section 8):
    #: far below Redis's 512 MB cap on a string, which one busy partition-day could pass
    part_bytes = 64 * 1024 * 1024

    @property
    def _dr_cap(self) -> int:
        # one more than the largest weight: the count at which every kind earns 0 (weight // k)
        return max(self.rules.weights_mp.values(), default=0) + 1

    def _apply_keys(self, generation: int) -> list[str]:
        # the generation the plan was made from: apply.lua refuses it if the pointer moved past
        keys = Keys(self.prefix, generation)
        return [keys.key(f) for f in APPLY_KEYS]

    async def claim_scoring_version(self) -> str:
        """Record this store's scoring identity as the namespace's if it has none yet; the
        namespace's (a worker with another one must not apply: ScoringVersionMismatch).

        A namespace from before the identity carried the bait settings holds the bare scoring
        version: it is taken over (its past scores do not change; new events get the throttle).
        """
        await self.follow(force=True)
        key = self.key("meta")
        await self.client.hsetnx(key, "scoring_version", self.scoring_id)
        current = cast(str, await self.client.hget(key, "scoring_version"))
        if current == self.rules.version != self.scoring_id:
            await self.client.hset(key, "scoring_version", self.scoring_id)
            current = self.scoring_id
        return current

    async def claim_shards(self, shards: int) -> int:
        """The number of shards this namespace (the store of its base prefix) is kept as,
        recording ``shards`` if it has none yet (one too: a worker on one piece claims it, so a
        worker on shards started before its first apply cannot claim another count); a
        namespace that already holds boards in one piece stays one (the caller compares:
        :class:`ShardCountMismatch`)."""
        kept = await self.shard_count()
        await self.client.set(self.serving.key("shards"), kept or shards, nx=True)
        return await self.shard_count() or shards

    async def shard_count(self) -> int | None:
        """How many shards this namespace (the store of its base prefix) is kept as: the count
        its first worker on shards claimed, or 1 when it holds boards in one piece (fences or a
        ``meta`` of its own); None while neither (nothing applied yet: any count will do)."""
        await self.follow(force=True)
        claimed = await self.client.get(self.serving.key("shards"))
        if claimed is not None:
            return int(claimed)
        return 1 if await self.client.exists(self.key("meta"), self.key("fence")) else None

    async def load_partitions(
        self, parts: list[int], owned: OwnedState, bait: BaitParams | None = None
    ) -> None:
        """Load the fences, dedupe ids and diminishing-returns counters of ``parts`` into
        ``owned``, and refresh its watermark and landmark; with ``bait``, each partition's
        comment-bait detector too (its state is written with the fence, so it matches it).

        The generation is read first (the live one; a pinned store's own), then that
        generation's keys: a switch in between makes the next apply refuse the plan."""
        generation = self.pinned if self.pinned is not None else await self.pointer()
        self.at_generation(generation)
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.key("fence"), parts)
        pipe.hmget(self.key("pwm"), parts)
        pipe.hmget(self.key("fencepart"), parts)
        # (two GETs, not MGET: a cluster pipeline refuses multi-key commands)
        pipe.get(self.key("wm"))
        pipe.get(self.key("landmark"))
        for p in parts:
            pipe.zrange(self.key("idparts", p), 0, -1)
            pipe.zrange(self.key("drcparts", p), 0, -1)
            pipe.zrange(self.key("drdays", p), 0, -1)
        if bait is not None:
            for p in parts:
                for table in BAIT_TABLES:
                    pipe.hgetall(self.key("bait", table, p))
        # (the erasure counter before the tombstones: an erase between the two reads leaves
        # this copy with the new tombstone and the old count, so the next apply is refused and
        # reloads; the other way round it would apply with the tombstone unseen)
        pipe.get(self.key("erasures"))
        pipe.smembers(self.key("tombstones"))
        pipe.smembers(self.key("communities"))
        res = await pipe.execute()
        tables_at = 5 + 3 * len(parts)
        fences, pwms, fparts, wm, landmark = res[:5]
        if generation != owned.generation:
            # a rebuild switched the namespace: every partition held from before is stale
            owned.partitions.clear()
            owned.communities.clear()
            owned.generation = generation
        owned.watermark = float(wm) if wm is not None else None
        owned.landmark = int(landmark) if landmark is not None else None
        # (added to, not replaced: an apply in flight may have admitted some the read missed)
        owned.communities.update(cast("set[str]", res[-1]))
        owned.erasures = int(res[-3] or 0)
        owned.erased.update(cast("set[str]", res[-2]))
        day_lists: list[tuple[int, list[str], list[str], list[str]]] = []
        for j, p in enumerate(parts):
            o = OwnedPartition(
                fence=int(fences[j]) if fences[j] is not None else -1,
                watermark=float(pwms[j]) if pwms[j] is not None else None,
                part=_part(fparts[j]),
            )
            if bait is not None:
                at = tables_at + j * len(BAIT_TABLES)
                o.bait = Detector.restore(
                    dict(zip(BAIT_TABLES, res[at : at + len(BAIT_TABLES)], strict=True)), bait
                )
            owned.partitions[p] = o
            day_lists.append((p, res[5 + 3 * j], res[6 + 3 * j], res[7 + 3 * j]))
        # the days' fingerprint strings (binary: read undecoded; "<day>:<part>" in the parts
        # indexes), and what a namespace from before fingerprints still holds (seen:<p> id → ts,
        # dr:<p>:<day> hashes listed in drdays:<p>), until pruned
        pipe = self.client.pipeline(transaction=False)
        raw = {NEVER_DECODE: True}
        queued: list[tuple[str, int, int]] = []
        for p, id_parts, drc_parts, legacy_days in day_lists:
            for name in id_parts:
                pipe.execute_command("GET", self.key("ids", p, name), **raw)
                queued.append(("ids", p, int(name.partition(":")[0])))
            for name in drc_parts:
                pipe.execute_command("GET", self.key("drc", p, name), **raw)
                queued.append(("drc", p, int(name.partition(":")[0])))
            for day_text in legacy_days:
                pipe.hgetall(self.key("dr", p, day_text))
                queued.append(("dr", p, int(day_text)))
            pipe.zrange(self.key("seen", p), 0, -1, withscores=True)
            queued.append(("seen", p, 0))
        legacy: list[tuple[int, int, dict[str, str]]] = []
        for (kind, p, day), value in zip(queued, await pipe.execute(), strict=True):
            o = owned.partitions[p]
            if kind == "ids" and value:
                if plausible_day(
                    day, None if o.watermark is None else math.floor(o.watermark / SEEN_DAY_S)
                ):
                    o.seen.load_day(day, value)
            elif kind == "drc" and value:
                o.dr.load_day(day, value)
            elif kind == "dr" and value:
                legacy.append((p, day, value))
            elif kind == "seen":
                for event_id, ts in value:
                    o.add_seen(event_id, ts)
        # (after the records: a legacy hash holds the counts before fingerprints, the records
        # only what came since; one question per day, not per counter)
        for p, day, counters in legacy:
            dr = owned.partitions[p].dr
            fps = []
            for f in counters:
                actor, _, target = f.partition(SEP)
                fps.append(pair_fingerprint(actor, target))
            have = dr.get_many([(day, fp) for fp in fps])
            dr.set_many(
                [
                    (day, fp, h + int(k))
                    for fp, h, k in zip(fps, have, counters.values(), strict=True)
                ]
            )

    def _argv(self, plan: Plan, max_rows: int) -> tuple[list[str], list[bytes]]:
        """The apply's fields (sections, in ``APPLY_SECTIONS`` order) and fingerprint blobs:
        :func:`wire_args` makes the call's ARGV of them."""
        blobs: list[bytes] = []
        argv: list[str] = [
            generation_prefix(self.prefix, plan.generation),
            self.scoring_id,
            str(plan.generation),
        ]
        add = argv.append
        ext = argv.extend
        ext(("partitions", str(len(plan.partitions))))
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
        ext(("landmark", _num(plan.expected_landmark), _num(plan.landmark)))
        add(repr(plan.rebase_factor))
        # the community bound: the cap, what the plan admitted and what it refused for the cap
        ext(("communities", str(plan.max_communities), str(len(plan.new_communities))))
        ext(plan.new_communities)
        add(str(len(plan.capped_communities)))
        ext(plan.capped_communities)
        ext(("erasures", str(plan.erasures)))
        # (a pinned store fills a rebuild's generation: no live change marks, see apply.lua)
        marks = "1" if self.pinned is None else "0"
        ext(("clock", _num(plan.max_ts), repr(DECAY_PRUNE_MP), str(max_rows), marks))
        windows = self.rules.windows
        ext(("windows", str(len(windows))))
        for w in windows:
            ext((w.name, str(w.bucket_s), str(w.buckets)))
        keep = self.rules.periods_keep
        grace, idle = self.rules.periods_grace_s, self.rules.periods_idle_s
        ext(("calendar", str(grace), str(idle), str(plan.partitions_total), str(len(UNITS))))
        now = None if plan.max_ts is None else periods_of(plan.max_ts)
        for ui, unit in enumerate(UNITS):
            if now is None:
                ext((unit, str(keep[ui]), "", ""))
            else:
                ext((unit, str(keep[ui]), str(now[ui].index), now[ui].label))
        # (the board sections and explain go as groups per key: lua/apply.lua names and checks
        # each key once, and a row is its member and delta alone)
        totals: dict[str, list[str]] = {}
        for (b, m), v in plan.totals.items():
            if v:
                _row(totals, b, m, str(v))
        ext(("totals", str(len(totals))))
        for b, rows in totals.items():
            ext((b, str(len(rows) // 2)))
            ext(rows)
        archives: dict[tuple[int, int, str, str], list[str]] = {}
        for (ai, idx, label, b, m), v in plan.archives.items():
            if v:
                _row(archives, (ai, idx, label, b), m, str(v))
        ext(("archives", str(len(archives))))
        for (ai, idx, label, b), rows in archives.items():
            end = str(period_start(UNITS[ai], idx + 1))
            ext((str(ai), str(idx), label, end, b, str(len(rows) // 2)))
            ext(rows)
        buckets: dict[tuple[int, int, str], list[str]] = {}
        for (wi, idx, b, m), v in plan.buckets.items():
            if v:
                _row(buckets, (wi, idx, b), m, str(v))
        ext(("buckets", str(len(buckets))))
        for (wi, idx, b), rows in buckets.items():
            ext((str(wi), str(idx), b, str(len(rows) // 2)))
            ext(rows)
        # (negative: a retroactive bait throttle taking points back)
        decayed: dict[str, list[str]] = {}
        for (b, m), dv in plan.decayed.items():
            if dv != 0.0:
                _row(decayed, b, m, repr(dv))
        ext(("decayed", str(len(decayed))))
        for b, rows in decayed.items():
            ext((b, str(len(rows) // 2)))
            ext(rows)
        ext(("boards", str(len(plan.boards))))
        ext(sorted(plan.boards))
        ext(("mcomm", str(len(plan.member_communities))))
        for m, c in plan.member_communities:
            ext((m, c))
        ext(("seen", str(self.part_bytes), *_id_records(plan, blobs)))
        ext(("dr", *_counter_records(plan, self._dr_cap, blobs)))
        explain: dict[str, list[str]] = {}
        for (m, f), v in plan.explain.items():
            if v:
                _row(explain, m, f, str(v))
        ext(("explain", str(len(explain))))
        for m, rows in explain.items():
            ext((m, str(len(rows) // 2)))
            ext(rows)
        ext(("posts", str(len(plan.posts))))
        for (m, post, period), v in plan.posts.items():
            ext((m, str(period), post, str(v)))
        ext(("profiles", str(len(plan.profiles))))
        for (m, fname), (ts, pid, value) in plan.profiles.items():
            ext((m, fname, _num(ts), pid, value))
        stats = [(k, v) for k, v in (*plan.stats.items(), *plan.community_stats.items()) if v]
        ext(("stats", str(len(stats))))
        for f, v in stats:
            ext((f, str(v)))
        self._bait_argv(plan, argv)
        self._perk_argv(plan, argv)
        add("end")
        return argv, blobs

    def _bait_argv(self, plan: Plan, argv: list[str]) -> None:
        """Detector state changes, throttle decisions and withheld points (section 9b)."""
        ext = argv.extend
        ext(("bait", str(len(plan.bait_state))))
        for p, table, k, v in plan.bait_state:
            ext((str(p), table, k, "" if v is None else v.decode()))
        argv += ["alerts", str(ALERTS_MAXLEN), str(len(plan.alerts))]
        for d in plan.alerts:
            record = d.to_json()
            record["id"] = alert_id(d)
            ext((d.target, d.group, orjson.dumps(record).decode()))
        ext(("withheld", str(POSTS_PERIOD_S), str(len(plan.withheld))))
        for (m, group, period), mp in plan.withheld.items():
            ext((m, str(period), group, str(mp)))

    def _perk_argv(self, plan: Plan, argv: list[str]) -> None:
        """The perk rules for the apply script, each with the members to check when it has no
        rank condition: those this plan touches on the rule's board."""
        # (unlocks are serving state: under the namespace's prefix, not the generation's)
        argv += ["perks", str(len(self.perk_rules)), repr(self.rules.half_life_s), self.prefix]
        touched: dict[str, list[str]] = {}
        for rule in self.perk_rules:
            cands: list[str] = []
            if rule.rank_max is None and not rule.at_close:
                if rule.board not in touched:
                    members = {m for b, m in plan.totals if b == rule.board}
                    # (a live calendar board: every archive of its unit the plan wrote; the
                    # script checks the member's score on the live board itself)
                    if rule.board.partition(":")[0] in UNITS:  # (else no archive feeds it)
                        members |= {k[4] for k in plan.archives if live_board(k[3]) == rule.board}
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
                "close" if rule.at_close else "",
                str(len(cands)),
            ]
            argv += cands

    async def communities(self) -> set[str]:
        """The communities admitted to boards in this namespace."""
        await self.follow()
        return cast("set[str]", await self.client.smembers(self.key("communities")))

    async def add_communities(self, names: set[str]) -> None:
        """Add ``names`` to the admitted communities (a namespace kept as shards from before its
        own store decided the cap starts from the union of its shards' sets)."""
        if names:
            await self.follow()
            await self.client.sadd(self.key("communities"), *sorted(names))

    async def admit_communities(self, new: Sequence[str], refused: Sequence[str], cap: int) -> bool:
        """On a namespace kept as shards, the namespace's own store decides the community cap
        for every shard (``lua/admit.lua``): admit ``new`` (in order) within ``cap``; False if
        one would pass it or one of ``refused`` (for the cap) was admitted meanwhile: the
        caller re-plans from :meth:`communities`. Always in the live generation's set: the
        script checks the pointer (a rebuild on shards switches this store's generation too),
        and the call follows it and runs again if it moved."""

        def build() -> tuple[list[str], list[Any]]:
            return [self.key("communities")], [cap, len(new), *new, *refused]

        return bool(await self._atomic(self.scripts.admit, build))

    async def raise_watermark(self, floor: float, max_rows: int = 0) -> float | None:
        """Move this namespace's W up to ``floor`` (and expire its windows there) with no
        events: on a sharded namespace a shard whose partitions are quiet still follows the
        largest W of all shards (docs/scaling.md). Its W after the call.

        Raises:
            StoreConflict: the decay landmark or the generation moved meanwhile (call again).
        """
        generation = await self.follow(force=True)
        raw_wm, raw_lm, erasures = await self.client.mget(
            self.key("wm"), self.key("landmark"), self.key("erasures")
        )
        wm = float(raw_wm) if raw_wm is not None else None
        landmark = int(raw_lm) if raw_lm is not None else None
        if wm is not None and wm >= floor:
            return wm
        plan = Plan(
            expected_landmark=landmark,
            landmark=landmark,
            generation=generation,
            max_ts=floor,
            # (no rows: only the apply's check that no erase happened since wants the count)
            erasures=int(erasures or 0),
        )
        moved: float | None = await (await self._send(plan, max_rows))
        return moved

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
        return await self._send(plan, max_rows)

    async def _send(self, plan: Plan, max_rows: int) -> Awaitable[float | None]:
        argv = wire_args(*self._argv(plan, max_rows))
        if self._sha is None:
            self._sha = await self.client.script_load(SOURCES["apply"])
        keys = self._apply_keys(plan.generation)
        conn, release = await self._connection_for(keys[0])
        try:
            await conn.send_command("EVALSHA", self._sha, len(keys), *keys, *argv)
        except BaseException as exc:
            await release()
            await self._after_error(exc)
            raise

        async def outcome() -> float | None:
            try:
                res: list[Any] = await conn.read_response()
            except NoScriptError:
                # Redis lost its script cache (restart, SCRIPT FLUSH, a promoted replica):
                # nothing ran; run it again
                self._sha = None
                res = await self.scripts.apply(keys=keys, args=argv)
            except BaseException as exc:
                await self._after_error(exc)
                raise
            finally:
                await release()
            self.apply_work = [int(res[-1])] if res[0] in ("ok", "more") else []
            while res[0] == "more":
                if self.between_apply_calls is not None:
                    await self.between_apply_calls()
                res = await self.scripts.apply(keys=keys, args=argv)
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
