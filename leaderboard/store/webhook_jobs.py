"""Webhook delivery jobs: claim, finish, replay, the attempts log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

import orjson

from leaderboard.store.base import StoreBase
from leaderboard.store.keys import (
    WEBHOOK_LOG_MAXLEN,
)


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


#: ``lua/webhook_finish.lua``'s KEYS after the job's hash, in order.
_FINISH_SETS = ("due", "dead", "disabled", "log")


class WebhookJobsMixin(StoreBase):
    """Webhook jobs."""

    async def webhook_disabled(self) -> dict[str, dict[str, Any]]:
        """Disabled endpoints → what disabled them (``{at, status, unlock, error}``)."""
        raw = cast("dict[str, str]", await self.client.hgetall(self.key("wh", "disabled")))
        return {e: orjson.loads(v) for e, v in raw.items()}

    async def webhook_claim(
        self, now: float, lease_until: float, limit: int
    ) -> tuple[list[ClaimedJob], float | None]:
        """Claim up to ``limit`` due jobs until ``lease_until``; and when the next job is due."""
        res: list[Any] = await self.scripts.webhook_claim(
            keys=[self.key("wh", "due"), self.key("wh", "disabled")],
            args=[self.key("wh", "job", ""), repr(now), repr(lease_until), limit],
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
        keys = [self.key("wh", "job", job.id), *(self.key("wh", k) for k in _FINISH_SETS)]
        res = await self.scripts.webhook_finish(
            keys=keys,
            args=[
                "",
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
            ],
        )
        return bool(res == "ok")

    async def webhook_replay(
        self, endpoint: str, enable: bool, now: float
    ) -> tuple[list[str], list[str], list[str]]:
        """Move dead-lettered jobs (of ``endpoint``; "" for all) back to due now with a fresh
        schedule: (jobs replayed, jobs left dead because their endpoint is disabled, endpoints
        re-enabled, only when ``enable``)."""
        res: list[Any] = await self.scripts.webhook_replay(
            keys=[self.key("wh", "dead"), self.key("wh", "due"), self.key("wh", "disabled")],
            args=[self.key("wh", "job", ""), repr(now), endpoint, "1" if enable else "0"],
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
