"""The worker's Faust set-up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.app import use_fetch_max_wait


def test_consumers_wait_at_most_the_configured_fetch_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Faust hard-codes fetch_max_wait_ms=1500; every consumer it creates gets ours instead,
    and applying the setting twice wraps Faust's method once."""

    def faust_creates(self: Any, transport: Any) -> Any:
        return SimpleNamespace(_fetch_max_wait_ms=1500)

    monkeypatch.setattr(AIOKafkaConsumerThread, "_create_worker_consumer", faust_creates)
    use_fetch_max_wait(100)
    use_fetch_max_wait(250)
    consumer = AIOKafkaConsumerThread._create_worker_consumer(object(), object())  # type: ignore[arg-type]
    assert consumer._fetch_max_wait_ms == 250
    assert AIOKafkaConsumerThread._create_worker_consumer.__wrapped__ is faust_creates  # type: ignore[attr-defined]


async def test_aiokafka_reads_the_attribute_we_set() -> None:
    """The override relies on aiokafka keeping the value in ``_fetch_max_wait_ms`` until start()."""
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)
    try:
        assert consumer._fetch_max_wait_ms == 1500
    finally:
        await consumer.stop()
