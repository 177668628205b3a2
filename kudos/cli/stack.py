"""The commands that run the stack and its processes: ``up``, ``down``, ``worker``, ``web``,
``deliver`` and ``topics``."""

from __future__ import annotations

import argparse
import asyncio
import logging

from leaderboard.errors import KudosError
from leaderboard.settings import Settings


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.stack import up

    return up(settings, background=args.background, redis_cluster=args.redis_cluster)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.stack import down

    return down(settings)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from broker.topics import ensure_topics
    from stream.app import create_app

    settings.home.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    from kudos.logs import worker_logging_config

    app = create_app(settings)
    level = args.loglevel or settings.log.level or "warning"
    worker = faust.Worker(
        app,
        loglevel=level,
        quiet=True,
        logging_config=worker_logging_config(settings.log, level),
    )
    worker.execute_from_commandline()
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    """Create the topics with ``KUDOS_BROKER_PARTITIONS`` partitions (the compose stack's one-shot
    step before workers start); an existing interactions topic with another count is an error."""
    from broker.topics import ensure_topics, topic_partitions

    async def go() -> dict[str, int]:
        await ensure_topics(settings, timeout=args.timeout)
        return await topic_partitions(settings)

    counts = asyncio.run(go())
    want = settings.broker.partitions
    for name, n in sorted(counts.items()):
        print(f"{name}: {n} partitions")
    have = counts.get(settings.broker.topic)
    if have != want:
        raise KudosError(
            f"topic {settings.broker.topic} has {have} partitions but KUDOS_BROKER_PARTITIONS={want}; "
            "producers would group envelopes by the wrong partition. Set KUDOS_BROKER_PARTITIONS to "
            "the topic's count (a live topic's count must not change: docs/scaling.md)"
        )
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.logs import configure
    from web.server import run

    configure(settings.log)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    asyncio.run(run(settings))
    return 0


def cmd_deliver(settings: Settings, args: argparse.Namespace) -> int:
    from deliver.deliverer import run
    from kudos.logs import configure

    configure(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    asyncio.run(run(settings))
    return 0
