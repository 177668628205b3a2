"""The worker's Faust set-up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from stream.app import KafkaLogReader, use_fetch_max_wait
from tests.conftest import Namespace


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


@pytest.mark.integration
async def test_the_log_reader_reads_exactly_the_gap(namespace: Namespace) -> None:
    """The worker's gap reader: one partition's messages start <= offset < end, in pages, with
    their record times (a consumer of its own: no group, nothing committed)."""
    events = [
        {"id": f"g{i}", "ts": 1_700_000_000 + i, "kind": "like", "actor": "a", "target": "t"}
        for i in range(30)
    ]
    produced = await namespace.replay(list(events))  # one target: all on one partition
    (p,) = produced.end_offsets
    reader = KafkaLogReader(namespace.settings, page=4)
    pages = [page async for page in reader.read(p, 5, 17)]
    assert all(0 < len(page) <= 4 for page in pages)
    raws = [r for page in pages for r in page]
    assert [r.offset for r in raws] == list(range(5, 17))
    assert all(r.partition == p and r.record_ts is not None for r in raws)
    assert [orjson.loads(r.value or b"")["id"] for r in raws] == [f"g{i}" for i in range(5, 17)]
