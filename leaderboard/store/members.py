"""A member's explain view and unlocks."""

from __future__ import annotations

from typing import Any

import orjson

from leaderboard.explain import (
    POSTS_PERIOD_S,
    SELF_FIELD,
    TOP_POSTS,
    Explanation,
    Place,
    hourly_series,
    hourly_window,
    kind_lines,
    shown_since,
    throttle_lines,
)
from leaderboard.ranking import percentile
from leaderboard.store.base import StoreBase, clock_of


class MembersMixin(StoreBase):
    """Member reads."""

    async def profiles(self, members: list[str]) -> dict[str, dict[str, str]]:
        """The display names and avatars of ``members`` that have one (profile events):
        member → {"name": …, "avatar": …} (either may be absent). One pipelined HMGET each."""
        if not members:
            return {}
        await self.follow()
        pipe = self.client.pipeline(transaction=False)
        for m in members:
            pipe.hmget(self.key("profile", m), ["name", "avatar"])
        out: dict[str, dict[str, str]] = {}
        for m, (name, avatar) in zip(members, await pipe.execute(), strict=True):
            found = {k: v for k, v in (("name", name), ("avatar", avatar)) if v}
            if found:
                out[m] = found
        return out

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

        def build() -> tuple[list[str], list[Any]]:
            keys = [
                self.key("explain", member),
                self.key("posts", member) + "|",  # (one key per period: "|<k>")
                self.key("wm"),
                self.key("landmark"),
                self.key("throttle", member),
                self.key("withheld", member) + "|",  # (one key per period, as posts)
                self.key("mcomm", member),
                *(self.key("board", b) for b in base),
                self.key("hidden"),
            ]
            hourly_args: list[str | int] = ["", 0, 0]
            if window is not None:
                hourly_args = [
                    self.key("bucket", window.name) + "|",
                    window.bucket_s,
                    window.buckets,
                ]
            return keys, [
                member,
                top_posts,
                *hourly_args,
                POSTS_PERIOD_S,
                self.key("board", ""),
                *base,
            ]

        res: list[Any] = await self._atomic(self.scripts.explain, build)
        raw_explain, raw_posts, wm_text, lm_text, raw_boards, raw_hourly, raw_th, raw_wh = res[:8]
        fields = dict(zip(raw_explain[0::2], map(int, raw_explain[1::2]), strict=True))
        clock = clock_of(wm_text, lm_text)
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
                since=shown_since(clock[0]),
            ),
        )

    async def perks_of(self, member: str) -> list[dict[str, Any]] | None:
        """A member's unlocks (the records of ``perks:<member>``), oldest first; None when the
        member was never seen (no explain data and no unlock)."""
        await self.follow()
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
