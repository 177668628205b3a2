"""`kudos topics`: the compose stack's one-shot step that creates the topics before workers start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from broker.topics import topic_partitions
from tests.conftest import Namespace

pytestmark = pytest.mark.integration


def kudos_topics(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kudos", "topics", "--timeout", "20"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_topics_are_created_with_the_partition_count_and_checked(
    namespace: Namespace,
) -> None:
    b = namespace.settings.broker
    env = {**namespace.env(), "KUDOS_BROKER_PARTITIONS": "6"}
    assert await topic_partitions(namespace.settings) == {}  # looking creates nothing

    out = kudos_topics(env)
    assert out.returncode == 0, out.stderr
    for name in (b.topic, b.dlq_topic, b.perks_topic, b.alerts_topic):
        assert f"{name}: 6 partitions" in out.stdout

    again = kudos_topics(env)  # idempotent: the one-shot service may run on every `up`
    assert again.returncode == 0, again.stderr

    # a stack configured with another count would group envelopes by the wrong partition
    wrong = kudos_topics({**env, "KUDOS_BROKER_PARTITIONS": "4"})
    assert wrong.returncode == 2
    assert "has 6 partitions but KUDOS_BROKER_PARTITIONS=4" in wrong.stderr
