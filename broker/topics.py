"""Create the Kudos topics with an explicit partition count (never rely on auto-creation)."""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from leaderboard import redact
from leaderboard.errors import StackError
from leaderboard.settings import Settings


def bootstrap(settings: Settings) -> str:
    host, port = settings.broker_host_port
    return f"{host}:{port}"


def _names(settings: Settings) -> tuple[str, ...]:
    b = settings.broker
    return (b.topic, b.dlq_topic, b.perks_topic, b.alerts_topic)


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create ``interactions``, ``interactions.dlq``, ``perk-unlocks`` and ``bait-alerts`` if
    missing.

    Raises:
        StackError: the broker cannot be reached within ``timeout``.
    """
    names = _names(settings)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap(settings), request_timeout_ms=10_000
        )
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(
                        [
                            NewTopic(
                                n, settings.broker.partitions, settings.broker.replication_factor
                            )
                            for n in missing
                        ]
                    )
            return
        except KafkaConnectionError as exc:
            if loop.time() > deadline:
                raise StackError(
                    f"cannot reach the broker at {redact.url(settings.broker.url)} "
                    f"({redact.text(str(exc), settings.secrets())}); is it running? "
                    "(`kudos up`, or set KUDOS_BROKER_URL)"
                ) from exc
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


async def topic_partitions(settings: Settings) -> dict[str, int]:
    """The partition count of each Kudos topic that exists on the broker (missing ones left out)."""
    names = _names(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(settings), request_timeout_ms=10_000)
    try:
        await admin.start()
        # all topics: naming them would let a broker that auto-creates topics create them here
        described = await admin.describe_topics(None)
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"])
        for t in described
        if t["topic"] in names and t["error_code"] == 0
    }
