"""The write path: load a partition's state, build and send the apply script's arguments."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable
from typing import Any, cast

import orjson
from redis.exceptions import NoScriptError

from leaderboard.bait import TABLES as BAIT_TABLES
from leaderboard.bait import BaitParams, Decision, Detector
from leaderboard.errors import ScoringVersionMismatch, StoreConflict
from leaderboard.owned import OwnedPartition, OwnedState
from leaderboard.plan import DECAY_PRUNE_MP, Plan
from leaderboard.store.base import StoreBase
from leaderboard.store.keys import (
    ALERTS_MAXLEN,
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
    raw = "\x1f".join((d.group, d.state, repr(d.at))).encode()
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
    "generation",
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
)
#: The sections of the apply's ARGV, in order; each starts with its name (checked by the script).
APPLY_SECTIONS = (
    "partitions",
    "landmark",
    "communities",
    "clock",
    "windows",
    "totals",
    "buckets",
    "decayed",
    "boards",
    "mcomm",
    "seen",
    "dr",
    "explain",
    "posts",
    "stats",
    "bait",
    "alerts",
    "withheld",
    "perks",
    "end",
)


class ApplyMixin(StoreBase):
    """Loads partitions into the worker's copy and applies plans (``lua/apply.lua``)."""

    def _apply_keys(self) -> list[str]:
        return [self.key(f) for f in APPLY_KEYS]

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
        ext(("clock", _num(plan.max_ts), repr(DECAY_PRUNE_MP), str(max_rows)))
        windows = self.rules.windows
        ext(("windows", str(len(windows))))
        for w in windows:
            ext((w.name, str(w.bucket_s), str(w.buckets)))
        totals = [(b, m, v) for (b, m), v in plan.totals.items() if v]
        ext(("totals", str(len(totals))))
        for b, m, v in totals:
            ext((b, m, str(v)))
        buckets = [(k, v) for k, v in plan.buckets.items() if v]
        ext(("buckets", str(len(buckets))))
        for (wi, idx, b, m), v in buckets:
            ext((str(wi), str(idx), b, m, str(v)))
        decayed = [(k, dv) for k, dv in plan.decayed.items() if dv > 0.0]
        ext(("decayed", str(len(decayed))))
        for (b, m), dv in decayed:
            ext((b, m, repr(dv)))
        ext(("boards", str(len(plan.boards))))
        ext(sorted(plan.boards))
        ext(("mcomm", str(len(plan.member_communities))))
        for m, c in plan.member_communities:
            ext((m, c))
        ext(("seen", str(len(plan.seen))))
        for p, ts, i in plan.seen:
            ext((str(p), _num(ts), i))
        ext(("dr", str(len(plan.dr))))
        for (p, day, f), k in plan.dr.items():
            ext((str(p), str(day), f, str(k)))
        explain = [(k, v) for k, v in plan.explain.items() if v]
        ext(("explain", str(len(explain))))
        for (m, f), v in explain:
            ext((m, f, str(v)))
        ext(("posts", str(len(plan.posts))))
        for (m, post), v in plan.posts.items():
            ext((m, post, str(v)))
        stats = [(k, v) for k, v in (*plan.stats.items(), *plan.community_stats.items()) if v]
        ext(("stats", str(len(stats))))
        for f, v in stats:
            ext((f, str(v)))
        self._bait_argv(plan, argv)
        self._perk_argv(plan, argv)
        add("end")
        return argv

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
        ext(("withheld", str(len(plan.withheld))))
        for (m, group), mp in plan.withheld.items():
            ext((m, group, str(mp)))

    def _perk_argv(self, plan: Plan, argv: list[str]) -> None:
        """The perk rules for the apply script, each with the members to check when it has no
        rank condition: those this plan touches on the rule's board."""
        argv += ["perks", str(len(self.perk_rules)), repr(self.rules.half_life_s)]
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
            self._sha = await self.client.script_load(SOURCES["apply"])
        pool = self.client.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            keys = self._apply_keys()
            await conn.send_command("EVALSHA", self._sha, len(keys), *keys, *argv)
        except BaseException:
            await pool.release(conn)
            raise

        async def outcome() -> float | None:
            try:
                res: list[Any] = await conn.read_response()
            except NoScriptError:
                # Redis lost its script cache (restart, SCRIPT FLUSH): nothing ran; run it again
                self._sha = None
                res = await self.scripts.apply(keys=self._apply_keys(), args=argv)
            finally:
                await pool.release(conn)
            self.apply_work = [int(res[-1])] if res[0] in ("ok", "more") else []
            while res[0] == "more":
                if self.between_apply_calls is not None:
                    await self.between_apply_calls()
                res = await self.scripts.apply(keys=self._apply_keys(), args=argv)
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
