"""``kudos_worker_consumer_lag``: how far the Redis fences trail the broker's end offsets, for the
worker's ``GET /metrics`` (served by :func:`kudos.http.serve_metrics`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from leaderboard.metrics import WorkerMetrics
from leaderboard.store import Store
from leaderboard.store.shards import Shards

log = logging.getLogger("kudos.metrics")

#: A scrape waits this long for the broker's end offsets, then answers without the lag.
END_OFFSETS_TIMEOUT_S = 2.0


async def consumer_lag(
    consumer: Any,
    topic: str,
    store: Store | Shards,
    metrics: WorkerMetrics,
    consumed: Mapping[int, int] | None = None,
) -> None:
    """Set ``kudos_worker_consumer_lag`` for the partitions of ``topic`` assigned to ``consumer``
    (a Faust consumer): the broker's end offset minus the next offset the Redis fence awaits.
    Partitions no longer assigned disappear; when the broker does not answer in time (starting,
    rebalancing) the gauge is left empty rather than wrong.

    ``consumed``: partition → the offset after the last message this worker took from it. The
    end offset counted is at least that: Tansu 0.6 answers ListOffsets (latest) with the base
    offset of the partition's last record batch + 1, not the log's end, so a worker holding a
    whole batch of messages not yet applied read a lag of 0."""
    metrics.consumer_lag.clear()
    try:
        tps = [tp for tp in consumer.assignment() if tp.topic == topic]
        if not tps:
            return
        ends = await asyncio.wait_for(consumer.highwaters(*tps), END_OFFSETS_TIMEOUT_S)
    except Exception as exc:  # any consumer state (not started, rebalancing, stopping)
        log.debug("no consumer lag this scrape: %r", exc)
        return
    try:
        fences = await store.fences()
    except (RedisError, OSError) as exc:
        log.warning("no consumer lag this scrape, Redis unavailable: %s", exc)
        return
    for tp in tps:
        end = ends.get(tp)
        if end is not None:
            if consumed is not None:
                end = max(int(end), consumed.get(tp.partition, 0))
            lag = max(0, int(end) - fences.get(tp.partition, -1) - 1)
            metrics.consumer_lag.set(lag, partition=str(tp.partition))
