"""Prometheus metrics, sans I/O: counters, gauges and histograms are plain objects that a process
updates as it works, and :func:`exposition` renders them in the Prometheus text format (0.0.4).

Nothing here serves HTTP, reads Redis or keeps a global registry. Each process owns one metric set
(:class:`WebMetrics`, :class:`WorkerMetrics`, :class:`DeliverMetrics`) and passes it explicitly;
``web.server`` and ``kudos.http`` answer ``GET /metrics`` with it. The names, types, labels
and meanings are listed in docs/metrics.md. Label values must come from small, fixed sets (path
classes, outcomes, reason codes, partitions, configured endpoints), never from user input.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

#: The ``Content-Type`` of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Where every process answers its metrics (the web process on its own port, the others on theirs).
METRICS_PATH = "/metrics"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: Seconds: from a fraction of a millisecond (a Redis round trip) to seconds (a stalled call).
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Events in one apply call (``KUDOS_WORKER_MAX_EVENTS_PER_APPLY`` caps it, 5000 by default).
APPLY_EVENT_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
#: Webhook attempts: receivers answer in milliseconds; the attempt timeout is 15 s by default.
WEBHOOK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)

#: One sample: name suffix, label pairs, value.
Sample = tuple[str, tuple[tuple[str, str], ...], float]


class Metric:
    """A metric family: a name, a help text, label names, and one value per label set."""

    kind: ClassVar[str]

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid metric name")
        for label in labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"{name}: {label!r} is not a valid label name")
        if len(set(labels)) != len(labels):
            raise ValueError(f"{name}: repeated label names {labels}")
        self.name = name
        self.help = help
        self.labelnames = tuple(labels)

    def _key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        if len(labels) != len(self.labelnames) or any(n not in labels for n in self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {self.labelnames}, not {tuple(sorted(labels))}"
            )
        return tuple(str(labels[n]) for n in self.labelnames)

    def _pairs(self, key: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        return tuple(zip(self.labelnames, key, strict=True))

    def samples(self) -> Iterator[Sample]:
        raise NotImplementedError


class _Scalar(Metric):
    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help, labels)
        self._values: dict[tuple[str, ...], float] = {}
        if not labels:
            self._values[()] = 0.0  # an unlabelled metric is always exposed, as 0 at first

    def value(self, **labels: str) -> float:
        """The current value of one label set (0 if it was never touched)."""
        return self._values.get(self._key(labels), 0.0)

    def samples(self) -> Iterator[Sample]:
        for key, value in sorted(self._values.items()):
            yield "", self._pairs(key), value


class Counter(_Scalar):
    """A value that only goes up (it restarts at 0 with the process). Name it ``*_total``."""

    kind = "counter"

    def __init__(self, name: str, help: str, labels: Sequence[str] = ()) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        super().__init__(name, help, labels)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (≥ 0) to the label set's value."""
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down ({amount})")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def set_total(self, value: float, **labels: str) -> None:
        """Mirror a count kept elsewhere (a Redis hash, an attribute): it must only grow."""
        self._values[self._key(labels)] = value


class Gauge(_Scalar):
    """A value that goes up and down."""

    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        self._values[self._key(labels)] = value

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def clear(self) -> None:
        """Forget every label set (e.g. partitions no longer assigned)."""
        self._values.clear()
        if not self.labelnames:
            self._values[()] = 0.0


class Histogram(Metric):
    """Observations counted into fixed buckets (upper bounds, inclusive), with their sum."""

    kind = "histogram"

    def __init__(
        self, name: str, help: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        if "le" in labels:
            raise ValueError(f"{name}: 'le' is the bucket label of a histogram")
        bounds = [float(b) for b in buckets]
        if not bounds or any(not math.isfinite(b) for b in bounds):
            raise ValueError(f"{name}: buckets must be finite numbers (+Inf is implied)")
        if any(b >= c for b, c in itertools.pairwise(bounds)):
            raise ValueError(f"{name}: buckets must increase")
        super().__init__(name, help, labels)
        self.buckets = tuple(bounds)
        #: label set → (count per bucket, the last one for +Inf; not cumulative), sum
        self._data: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}
        if not labels:
            self._data[()] = ([0] * (len(bounds) + 1), [0.0])

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        data = self._data.get(key)
        if data is None:
            data = self._data[key] = ([0] * (len(self.buckets) + 1), [0.0])
        data[0][bisect.bisect_left(self.buckets, value)] += 1
        data[1][0] += value

    def count(self, **labels: str) -> int:
        data = self._data.get(self._key(labels))
        return 0 if data is None else sum(data[0])

    def sum(self, **labels: str) -> float:
        data = self._data.get(self._key(labels))
        return 0.0 if data is None else data[1][0]

    def samples(self) -> Iterator[Sample]:
        for key, (counts, total) in sorted(self._data.items()):
            pairs = self._pairs(key)
            running = 0
            for bound, n in zip((*self.buckets, math.inf), counts, strict=True):
                running += n
                yield "_bucket", (*pairs, ("le", _number(bound))), running
            yield "_sum", pairs, total[0]
            yield "_count", pairs, running


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def exposition(metrics: Iterable[Metric]) -> str:
    """The Prometheus text format of ``metrics``: per family a HELP and a TYPE line, then its
    samples (label sets sorted; histogram buckets cumulative, ending with ``le="+Inf"``)."""
    lines: list[str] = []
    seen: set[str] = set()
    for m in metrics:
        if m.name in seen:
            raise ValueError(f"metric {m.name} is listed twice")
        seen.add(m.name)
        lines.append(f"# HELP {m.name} {_escape_help(m.help)}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for suffix, pairs, value in m.samples():
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in pairs)
            name = m.name + suffix
            lines.append(
                f"{name}{{{labels}}} {_number(value)}" if labels else f"{name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


class MetricSet:
    """The metrics of one process, exposed in the order they were assigned as attributes."""

    def metrics(self) -> list[Metric]:
        return [v for v in vars(self).values() if isinstance(v, Metric)]

    def exposition(self) -> str:
        return exposition(self.metrics())


class WebMetrics(MetricSet):
    """``kudos web``: websocket push, HTTP, and the pipeline's shared counters read from Redis."""

    def __init__(self) -> None:
        self.ws_connections = Gauge(
            "kudos_ws_connections", "Open websocket connections of this web process."
        )
        self.ws_subscriptions = Gauge(
            "kudos_ws_subscriptions",
            "Channel subscriptions of this process's connections, by channel kind.",
            ["kind"],
        )
        self.ws_frames_sent = Counter(
            "kudos_ws_frames_sent_total",
            "Websocket frames sent by the live feed (one per subscriber a frame went to).",
        )
        self.ws_slow_conflated = Counter(
            "kudos_ws_slow_conflated_total",
            "Times a slow subscriber missed a channel's frames; it gets one fresh snapshot "
            "(conflated) once its buffer drains.",
        )
        self.ws_slow_closed = Counter(
            "kudos_ws_slow_closed_total",
            "Subscribers closed (1013) after staying slow longer than KUDOS_WEB_SLOW_CLIENT_TIMEOUT_S.",
        )
        self.feed_tick_seconds = Histogram(
            "kudos_feed_tick_seconds",
            "Duration of one live-feed tick (poll, publish, deliver); _count counts ticks.",
            LATENCY_BUCKETS,
        )
        self.feed_tick_failures = Counter(
            "kudos_feed_tick_failures_total",
            "Live-feed ticks that failed (Redis unavailable or a bug; see the log).",
        )
        self.http_requests = Counter(
            "kudos_http_requests_total",
            "HTTP requests answered, by path class and status (101: websocket handshakes).",
            ["path", "status"],
        )
        self.redis_up = Gauge(
            "kudos_redis_up", "1 if the last scrape could read the pipeline counters from Redis."
        )
        self.pipeline_events = Counter(
            "kudos_pipeline_events_total",
            "Events processed by all workers together, by outcome (the shared stats hash in "
            "Redis; every web process reports the same values).",
            ["outcome"],
        )
        self.pipeline_community_dropped = Counter(
            "kudos_pipeline_community_dropped_total",
            "Applied events that scored without some of their communities' boards, by reason: "
            "refused (not in the allow-list), capped (beyond the cap on communities).",
            ["reason"],
        )
        self.pipeline_watermark = Gauge(
            "kudos_pipeline_watermark_seconds",
            "The global watermark W: the largest event time applied (unix seconds).",
        )


class WorkerMetrics(MetricSet):
    """``kudos worker``: what this worker process applied, how fast, and how far behind it is."""

    def __init__(self) -> None:
        self.events = Counter(
            "kudos_worker_events_total",
            "Events in the applies of this worker, by outcome (applied, ignored, duplicate, "
            "invalid, late, future).",
            ["outcome"],
        )
        self.dead_letters = Counter(
            "kudos_worker_dead_letters_total",
            "Events this worker sent to the dead-letter topic, by reason code.",
            ["reason"],
        )
        self.apply_events = Histogram(
            "kudos_worker_apply_events",
            "Events per apply (one atomic Lua call).",
            APPLY_EVENT_BUCKETS,
        )
        self.apply_seconds = Histogram(
            "kudos_worker_apply_seconds",
            "Latency of one apply: from sending the Lua call to its answer.",
            LATENCY_BUCKETS,
        )
        self.batch_seconds = Histogram(
            "kudos_worker_batch_seconds",
            "Time to process one batch taken from the stream (decode, plan, apply).",
            LATENCY_BUCKETS,
        )
        self.conflicts = Counter(
            "kudos_worker_conflicts_total",
            "Re-plans after a partition fence or the decay landmark moved under this worker "
            "(rebalance overlap, restart).",
        )
        self.throttles = Counter(
            "kudos_worker_bait_throttles_total",
            "Comment-bait throttles this worker's applies started (state=throttled) and ended "
            "(state=ended).",
            ["state"],
        )
        self.withheld_points = Counter(
            "kudos_worker_bait_withheld_points_total",
            "Points the comment-bait throttle withheld from comments and replies.",
        )
        self.evidence = Counter(
            "kudos_worker_bait_evidence_total",
            "Bait evidence records between partitions: messages this worker produced to other "
            "partitions (direction=sent) and records its detectors took in (direction=received).",
            ["direction"],
        )
        self.batch_retries = Counter(
            "kudos_worker_batch_retries_total",
            "Batches retried after a Redis or Kafka error.",
        )
        self.rewinds = Counter(
            "kudos_worker_rewinds_total",
            "Times this worker found a partition's Redis fence behind what it had consumed (Redis "
            "lost applies: AOF everysec, a fail-over to a lagging replica) and re-read the gap.",
            ["partition"],
        )
        self.rewound_messages = Counter(
            "kudos_worker_rewound_messages_total",
            "Messages of those gaps: consumed before, missing from Redis, read and applied again.",
            ["partition"],
        )
        self.consumer_lag = Gauge(
            "kudos_worker_consumer_lag",
            "Messages of an assigned partition not applied yet: end offset - (fence + 1).",
            ["partition"],
        )
        self.watermark = Gauge(
            "kudos_worker_watermark_seconds",
            "The global watermark W after this worker's latest apply (unix seconds).",
        )


class DeliverMetrics(MetricSet):
    """``kudos deliver``: perk fan-out and webhook attempts."""

    def __init__(self) -> None:
        self.unlocks_fanned_out = Counter(
            "kudos_perk_unlocks_fanned_out_total",
            "Perk unlocks this deliverer fanned out (topic, live channels, webhook jobs).",
        )
        self.alerts_fanned_out = Counter(
            "kudos_bait_alerts_fanned_out_total",
            "Comment-bait alerts this deliverer fanned out (bait-alerts topic, live channels).",
        )
        self.webhook_attempts = Counter(
            "kudos_webhook_attempts_total",
            "Webhook attempts sent, by endpoint and outcome (delivered, retry, disable).",
            ["endpoint", "outcome"],
        )
        self.webhook_failures = Counter(
            "kudos_webhook_failures_total",
            "Webhook attempts that did not deliver (no response, or not 2xx), by endpoint.",
            ["endpoint"],
        )
        self.webhook_attempt_seconds = Histogram(
            "kudos_webhook_attempt_seconds",
            "Duration of one webhook attempt (connect, send, response).",
            WEBHOOK_BUCKETS,
        )
        self.webhook_dead_letters = Counter(
            "kudos_webhook_dead_letters_total",
            "Webhook jobs moved to the dead-letter store (attempts exhausted, 410 Gone, "
            "disabled or unknown endpoint), by endpoint.",
            ["endpoint"],
        )
        self.errors = Counter(
            "kudos_deliver_errors_total",
            "Fan-out or job-claim rounds that failed on Redis or Kafka and were retried, by loop.",
            ["loop"],
        )


__all__ = [
    "CONTENT_TYPE",
    "Counter",
    "DeliverMetrics",
    "Gauge",
    "Histogram",
    "Metric",
    "MetricSet",
    "WebMetrics",
    "WorkerMetrics",
    "exposition",
]
