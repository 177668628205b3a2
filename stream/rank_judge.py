"""Rank perk rules on a namespace kept as shards: judged on the merged board, by the worker.

On one namespace the apply script judges every perk rule after each batch, atomically with the
scores (``lua/apply.lua``, "perks"). A shard's apply sees its own slice of a board only, where
its best member may be tenth overall, so on shards it judges the score-only rules (a member's
score is all in its own shard) and the rank rules are judged here instead: after each batch the
worker has applied to every shard, a rule whose board's change mark moved (over all shards)
reads the merged top ``cap + 1`` rows, picks who qualifies under the same tie policy
(:meth:`PerkRule.rank_qualifiers`), and records their unlocks in each one's shard, once per
(rule, member), ever (``lua/unlock.lua``).

What differs from one namespace, and why it is still the contract ("boards are checked at batch
boundaries", leaderboard/perks.py): the check follows the batch instead of being part of its
apply, so a worker that dies between the two leaves that check to its successor, which checks
at its start and then after every batch: the board of that one batch boundary is judged later,
as it is by then. With several workers, one's batch may lift a member into the top N and
another's push them out before either judges, so a place held only between two workers'
batches can go unnoticed, as a place held only inside one batch does on one namespace; and the
merged read is not atomic across shards, so the board judged may join slices of slightly
different moments (each slice as some batch left it). Unlocks stay once per (rule, member):
two workers judging at once record each only once. A tie left out is recorded with the size
seen in the rows read (at least ``cap + 1`` members).
"""

from __future__ import annotations

from collections.abc import Sequence

from leaderboard.perks import PerkRule, Unlock, unlock_id
from leaderboard.store.shards import Shards


class RankJudge:
    """Judges ``rules`` (perk rules with a rank condition) on ``shards``' merged boards."""

    def __init__(self, shards: Shards, rules: Sequence[PerkRule]) -> None:
        if any(r.rank_max is None for r in rules):
            raise ValueError("the rank judge takes rules with a rank condition only")
        self.shards = shards
        self.rules = tuple(rules)
        #: rule → the merged change mark of its board when it last looked (in this process:
        #: a new one looks once at its first check)
        self._seen: dict[str, str] = {}

    async def check(self, at: float) -> list[str]:
        """Judge every rule whose board changed since it last looked, as of W = ``at``; the ids
        of the unlocks recorded now."""
        recorded: list[str] = []
        for rule in self.rules:
            mark, _, _ = await self.shards.board_mark(rule.board)
            if self._seen.get(rule.id) == mark:
                continue
            recorded += await self._judge(rule, at)
            self._seen[rule.id] = mark
        return recorded

    async def _judge(self, rule: PerkRule, at: float) -> list[str]:
        assert rule.cap is not None
        # every member of the merged top cap + 1 is in its own shard's top cap + 1; more rows
        # than cap at or above the edge means a tie that does not fit (rank_qualifiers)
        entries, _ = await self.shards.page(rule.board, limit=rule.cap + 1)
        qualify, tied = rule.rank_qualifiers((e.member, e.score) for e in entries)
        mine: dict[int, list[Unlock]] = {}
        for e in entries:
            if e.member not in qualify:
                continue
            store = self.shards.store_of(e.member)
            mine.setdefault(self.shards.stores.index(store), []).append(
                Unlock(
                    id=unlock_id(rule.id, e.member),
                    rule=rule.id,
                    title=rule.title,
                    member=e.member,
                    board=rule.board,
                    rank=e.rank,
                    score=e.score,
                    at=at,
                    payload=rule.payload,
                )
            )
        recorded: list[str] = []
        for k in sorted(mine):
            recorded += await self.shards.stores[k].record_unlocks(mine[k])
        if tied:
            await self.shards.stores[0].record_tie(
                rule.id,
                {"at": at, "board": rule.board, "rank": len(qualify) + 1, "tied": tied,
                 "cap": rule.cap},
            )  # fmt: skip
        return recorded
