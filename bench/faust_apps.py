"""Minimal Faust apps that give the ingest benchmark its baselines.

``bare``  — the no-op ceiling: an agent ``async for _ in stream: pass`` (plus a counter).
``naive`` — what a user would write first: one ``await redis.zincrby(...)`` per event.

Both use the same broker settings as ``stream/app.py`` (raw serializers, leaderless topics, memory
store, web off, the same rebalance/session timeouts and commit/buffer settings), so the only
difference to the real worker is what the agent does with a message.

Progress goes to Redis: every 0.2 s a timer writes ``count`` (messages seen), ``first`` and ``last``
(wall-clock ``time.time()`` of the first and the latest message) to the hash ``<prefix>:benchstats``.
The harness reads it and computes ``(count - 1) / (last - first)``.

Run as ``python -m bench.faust_apps {bare,naive}``; every setting comes from ``KUDOS_*`` variables.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import faust
import orjson
import redis.asyncio as aioredis

from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings
from stream.app import faust_app

MODES = ("bare", "naive")


def stats_key(settings: Settings) -> str:
    return f"{settings.redis.prefix}:benchstats"


def naive_key(settings: Settings) -> str:
    return f"{settings.redis.prefix}:naive"


class _Progress:
    __slots__ = ("count", "first", "last", "written")

    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.written = -1


def create_app(mode: str, settings: Settings) -> faust.App:
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    app, topic = faust_app(settings)  # the worker's own broker-facing configuration
    # Connections are made lazily, on the worker's event loop.
    redis: aioredis.Redis = aioredis.Redis.from_url(settings.redis.url, decode_responses=True)
    progress = _Progress()
    skey = stats_key(settings)

    @app.timer(0.2)  # type: ignore[untyped-decorator]
    async def report() -> None:
        if progress.count != progress.written:
            n = progress.count
            await redis.hset(
                skey,
                mapping={"count": n, "first": repr(progress.first), "last": repr(progress.last)},
            )
            progress.written = n

    if mode == "bare":

        @app.agent(topic)
        async def bare(stream: faust.StreamT[bytes]) -> None:
            p = progress
            async for _ in stream:
                now = time.time()
                if not p.count:
                    p.first = now
                p.count += 1
                p.last = now

    else:
        weights = ScoringRules.load(settings.scoring.path or None).weights_mp
        zkey = naive_key(settings)

        @app.agent(topic)
        async def naive(stream: faust.StreamT[bytes]) -> None:
            p = progress
            async for value in stream:
                ev: dict[str, Any] = orjson.loads(value)
                await redis.zincrby(zkey, weights[ev["kind"]], ev["target"])
                now = time.time()
                if not p.count:
                    p.first = now
                p.count += 1
                p.last = now

    return app


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.faust_apps {bare,naive}", file=sys.stderr)
        return 2
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    app = create_app(argv[0], settings)
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
