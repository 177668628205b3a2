"""What the ``kudos`` commands share; it holds no commands.

:func:`run_with_reads` (and :func:`with_reads`, for a command already in an event loop) is the
one place a command gets a Store (on a namespace kept as shards, the merged reads of its
shards): made from the settings, closed after, and a Redis connection error turned into a
:class:`KudosError` naming the URL, which ``main`` prints and exits 2 on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from leaderboard import redact
from leaderboard.errors import KudosError
from leaderboard.explain import not_seen
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import Store
from leaderboard.store.base import cluster_mismatch
from leaderboard.store.shards import Shards, check_shards, connect_shards


async def with_reads(settings: Settings, fn: Callable[[Store | Shards], Awaitable[int]]) -> int:
    """``fn``'s exit code, run with the namespace's board reads: a Store, or with
    ``KUDOS_REDIS_SHARDS`` > 1 the merged reads of its shards; closed after.

    Raises:
        ShardCountMismatch: the namespace is kept as another number of shards.
    """
    rules = settings.periods.apply(ScoringRules.load(settings.scoring.path or None))
    base = Store.connect(
        settings.redis.url, settings.redis.prefix, rules, cluster=settings.redis.cluster
    )
    store: Store | Shards = base
    try:
        await check_shards(base, settings.redis.shards, claim=False)
        if settings.redis.shards > 1:
            store = connect_shards(settings.redis, settings.broker.partitions, rules, base=base)
        return await fn(store)
    except (RedisError, RedisClusterException) as exc:
        hint = cluster_mismatch(exc, settings.redis.cluster)
        if hint is not None:
            raise KudosError(f"{redact.url(settings.redis.url)}: {exc}; {hint}") from exc
        if isinstance(exc, RedisConnectionError):
            raise KudosError(
                f"cannot reach Redis at {redact.url(settings.redis.url)} "
                f"({redact.text(str(exc), settings.secrets())}); is the stack up? "
                "(`kudos up --background`, or set KUDOS_REDIS_URL)"
            ) from exc
        raise
    finally:
        await store.close()  # (shards share the base's client)


def run_with_reads(settings: Settings, fn: Callable[[Store | Shards], Awaitable[int]]) -> int:
    """:func:`with_reads` in an event loop of its own."""
    return asyncio.run(with_reads(settings, fn))


def unknown_member(member: str, as_json: bool) -> int:
    """Say that Kudos has never seen ``member`` (as JSON on stdout, or on stderr); exit code 1."""
    if as_json:
        sys.stdout.buffer.write(orjson.dumps({"error": not_seen(member)}) + b"\n")
    else:
        print(f"{member}: {not_seen(member)}", file=sys.stderr)
    return 1


_N = TypeVar("_N", int, float)


def positive(kind: Callable[[str], _N]) -> Callable[[str], _N]:
    """An argparse ``type`` that parses with ``kind`` and refuses zero and below."""

    def parse(text: str) -> _N:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be positive")
        return value

    return parse


def utc(ts: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)
