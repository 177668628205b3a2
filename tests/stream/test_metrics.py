"""GET /metrics of the worker (kudos/http.py, stream/lag.py, stream/processor.py): a real `kudos worker` with
KUDOS_WORKER_METRICS_PORT, real Redis and broker; read with the independent prometheus parser."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kudos import servers
from kudos.http import serve_metrics
from leaderboard.metrics import WorkerMetrics
from stream.lag import consumer_lag
from tests.conftest import Namespace, configure
from tests.eventually import eventually

T0 = 1_680_000_000

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def lags(samples: Samples) -> dict[str, float]:
    return {
        dict(labels)["partition"]: v
        for (name, labels), v in samples.items()
        if name == "kudos_worker_consumer_lag"
    }


async def test_serve_metrics_answers_only_get_metrics() -> None:
    port = servers.free_port()
    calls: list[int] = []

    async def render() -> bytes:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug while collecting")
        return b"# HELP x_total x\n# TYPE x_total counter\nx_total 1\n"

    server = await serve_metrics("127.0.0.1", port, render)
    try:

        def get(path: str) -> tuple[int, str, bytes]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                    return r.status, r.headers["Content-Type"], r.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers["Content-Type"], exc.read()

        status, ctype, body = await asyncio.to_thread(get, "/metrics")
        assert (status, body) == (200, b"# HELP x_total x\n# TYPE x_total counter\nx_total 1\n")
        assert ctype == "text/plain; version=0.0.4; charset=utf-8"
        assert (await asyncio.to_thread(get, "/metrics"))[0] == 500  # logged, still serving
        assert (await asyncio.to_thread(get, "/"))[0] == 404
        assert (await asyncio.to_thread(get, "/metrics?x=1"))[0] == 200
        with pytest.raises(OSError):  # a taken port fails loudly at start
            await serve_metrics("127.0.0.1", port, render)
    finally:
        server.close()
        await server.wait_closed()


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    """The two calls ``consumer_lag`` makes of a Faust consumer."""

    def __init__(self, ends: dict[TP, int]) -> None:
        self.ends = ends

    def assignment(self) -> set[TP]:
        return set(self.ends)

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.ends[tp] for tp in tps}


@pytest.mark.integration
async def test_consumer_lag_is_end_offset_minus_next_fenced_offset(namespace: Namespace) -> None:
    store = namespace.store
    topic = namespace.settings.broker.topic
    await store.client.hset(store.key("fence"), mapping={"0": 9, "1": 41})
    metrics = WorkerMetrics()
    consumer = FakeConsumer({TP(topic, 0): 10, TP(topic, 1): 50, TP(topic, 2): 3, TP("x", 0): 9})
    await consumer_lag(consumer, topic, store, metrics)
    # p0 caught up; p1 8 behind; p2 never applied (fence -1): 3 behind; other topics ignored
    assert {k[0]: v for k, v in metrics.consumer_lag._values.items()} == {
        "0": 0.0,
        "1": 8.0,
        "2": 3.0,
    }
    # a revoked partition disappears; a consumer that cannot answer leaves the gauge empty
    consumer.ends = {TP(topic, 1): 50}
    await consumer_lag(consumer, topic, store, metrics)
    assert list(metrics.consumer_lag._values) == [("1",)]

    class Rebalancing(FakeConsumer):
        def assignment(self) -> set[TP]:
            raise RuntimeError("consumer not started")

    await consumer_lag(Rebalancing({}), topic, store, metrics)
    assert metrics.consumer_lag._values == {}


@pytest.mark.integration
async def test_consumer_lag_counts_what_the_worker_took_when_the_broker_answers_less(
    namespace: Namespace,
) -> None:
    # Tansu 0.6 answers ListOffsets (latest) with its last record batch's base offset + 1: a
    # worker holding 30 messages of partition 0 not yet applied (fence 9, taken up to 40) was
    # told its end is 12, and read a lag of 2
    store = namespace.store
    topic = namespace.settings.broker.topic
    await store.client.hset(store.key("fence"), mapping={"0": 9, "1": 41})
    metrics = WorkerMetrics()
    consumer = FakeConsumer({TP(topic, 0): 12, TP(topic, 1): 50})
    await consumer_lag(consumer, topic, store, metrics, {0: 40, 1: 42, 5: 99})
    # p0: 30 taken and not applied; p1: the broker's answer is ahead of what was taken
    assert {k[0]: v for k, v in metrics.consumer_lag._values.items()} == {"0": 30.0, "1": 8.0}


def shares(n: int, t0: int) -> list[dict[str, Any]]:
    return [
        {"id": f"w{t0}-{i}", "ts": t0 + i, "kind": "share", "actor": f"a{i}", "target": f"t{i % 9}"}
        for i in range(n)
    ]


async def _scrape_until(port: int, ok: Any, timeout: float = 30.0) -> Samples:
    last: Samples = {}

    async def satisfied() -> Samples | None:
        nonlocal last
        try:
            last = await asyncio.to_thread(scrape, port)
        except OSError:
            return None  # not listening yet
        return last if ok(last) else None

    return await eventually(
        satisfied,
        timeout=timeout,
        interval=0.2,
        what="the worker's metrics to satisfy the check",
        details=lambda: f"last scrape: {last}",
    )


def json_lines(path: Path) -> Iterable[dict[str, Any]]:
    for line in path.read_text().splitlines():
        if line.strip():
            yield orjson.loads(line)  # every line is one JSON object


@pytest.mark.integration
async def test_worker_metrics_after_a_replay(namespace: Namespace) -> None:
    port = servers.free_port()
    configure(
        namespace,
        worker=replace(namespace.settings.worker, metrics_port=port),
        log=replace(namespace.settings.log, json=True),
    )
    namespace.start_worker()
    events = shares(500, T0)
    items: list[Any] = [*events, b'{"id": "broken"', {**events[3], "ts": T0 + 600}]
    produced = await namespace.replay(items, envelope=25)
    await namespace.wait(produced)
    n_partitions = namespace.settings.broker.partitions

    def caught_up(s: Samples) -> bool:
        lag = lags(s)
        return len(lag) == n_partitions and all(v == 0 for v in lag.values())

    samples = await _scrape_until(port, caught_up)
    assert value(samples, "kudos_worker_events_total", outcome="applied") == 500
    assert value(samples, "kudos_worker_events_total", outcome="duplicate") == 1
    assert value(samples, "kudos_worker_events_total", outcome="invalid") == 1
    assert value(samples, "kudos_worker_dead_letters_total", reason="bad_json") == 1
    applies = value(samples, "kudos_worker_apply_events_count")
    assert applies >= 1
    assert value(samples, "kudos_worker_apply_events_sum") == 502  # every event, once
    assert value(samples, "kudos_worker_apply_events_bucket", le="+Inf") == applies
    assert value(samples, "kudos_worker_apply_seconds_count") == applies
    assert value(samples, "kudos_worker_batch_seconds_count") >= 1
    assert value(samples, "kudos_worker_watermark_seconds") == T0 + 499
    assert value(samples, "kudos_worker_batch_retries_total") == 0

    # more events while it runs: the counters follow and the lag returns to 0
    await namespace.wait(await namespace.replay(shares(100, T0 + 1000), envelope=10))
    samples = await _scrape_until(
        port,
        lambda s: caught_up(s) and value(s, "kudos_worker_events_total", outcome="applied") == 600,
    )
    assert value(samples, "kudos_worker_watermark_seconds") == T0 + 1099
    stats = await namespace.store.stats()
    assert stats["applied"] == 600  # one worker: its counters equal the shared ones

    namespace.stop_workers()
    # KUDOS_LOG_JSON: the worker's log is JSON lines with the promised fields
    records = list(json_lines(namespace.home / "worker-0.log"))
    assert records, "the worker logged nothing at --loglevel info"
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any("metrics at http://127.0.0.1" in r["message"] for r in records)
