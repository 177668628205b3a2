"""The Prometheus text exposition (leaderboard/metrics.py), checked by hand and with the reference
parser of the independent ``prometheus_client`` package."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from leaderboard.metrics import (
    Counter,
    DeliverMetrics,
    Gauge,
    Histogram,
    MetricSet,
    WebMetrics,
    WorkerMetrics,
    exposition,
)

ROOT = Path(__file__).resolve().parents[2]


def parse(text: str) -> dict[str, tuple[str, list[tuple[str, dict[str, str], float]]]]:
    """family name → (type, [(sample name, labels, value)]), by the reference parser."""
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = (fam.type, [(s.name, s.labels, s.value) for s in fam.samples])
    return out


def test_help_and_type_lines_come_before_each_familys_samples() -> None:
    c = Counter("kudos_things_total", "Things done.", ["kind"])
    c.inc(kind="b")
    c.inc(2, kind="a")
    g = Gauge("kudos_level", "A level.")
    g.set(1.5)
    assert exposition([c, g]) == (
        "# HELP kudos_things_total Things done.\n"
        "# TYPE kudos_things_total counter\n"
        'kudos_things_total{kind="a"} 2\n'
        'kudos_things_total{kind="b"} 1\n'
        "# HELP kudos_level A level.\n"
        "# TYPE kudos_level gauge\n"
        "kudos_level 1.5\n"
    )


def test_unlabelled_metrics_start_at_zero_labelled_ones_show_only_touched_sets() -> None:
    c = Counter("kudos_a_total", "a")
    g = Gauge("kudos_b", "b", ["partition"])
    text = exposition([c, g])
    assert "kudos_a_total 0\n" in text
    assert not any(line.startswith("kudos_b") for line in text.splitlines())
    g.set(3, partition="1")
    g.clear()
    assert "kudos_b{" not in exposition([g])


def test_label_values_and_help_are_escaped() -> None:
    nasty = 'back\\slash "quoted"\nnew line'
    c = Counter("kudos_odd_total", 'Help with a \\ and a\nnewline and "quotes".', ["v"])
    c.inc(v=nasty)
    text = exposition([c])
    assert 'kudos_odd_total{v="back\\\\slash \\"quoted\\"\\nnew line"} 1\n' in text
    assert '# HELP kudos_odd_total Help with a \\\\ and a\\nnewline and "quotes".\n' in text
    assert len(text.splitlines()) == 3  # the newlines stayed escaped
    (kind, samples) = parse(text)["kudos_odd"]
    assert kind == "counter"
    assert samples == [("kudos_odd_total", {"v": nasty}, 1.0)]


def test_histogram_buckets_are_cumulative_end_with_inf_and_bounds_are_inclusive() -> None:
    h = Histogram("kudos_size", "Sizes.", [1, 10, 100])
    for v in (0.5, 1, 1, 7, 10, 11, 5000):
        h.observe(v)
    lines = [line for line in exposition([h]).splitlines() if not line.startswith("#")]
    assert lines == [
        'kudos_size_bucket{le="1"} 3',
        'kudos_size_bucket{le="10"} 5',
        'kudos_size_bucket{le="100"} 6',
        'kudos_size_bucket{le="+Inf"} 7',
        "kudos_size_sum 5030.5",
        "kudos_size_count 7",
    ]
    assert (h.count(), h.sum()) == (7, 5030.5)


def test_labelled_histogram_keeps_le_last_and_parses() -> None:
    h = Histogram("kudos_latency_seconds", "Latency.", [0.1, 0.5], ["path"])
    h.observe(0.05, path="x")
    h.observe(0.3, path="x")
    text = exposition([h])
    assert 'kudos_latency_seconds_bucket{path="x",le="0.1"} 1' in text
    kind, samples = parse(text)["kudos_latency_seconds"]
    assert kind == "histogram"
    buckets = [(s[1]["le"], s[2]) for s in samples if s[0].endswith("_bucket")]
    assert buckets == [("0.1", 1.0), ("0.5", 2.0), ("+Inf", 2.0)]
    assert ("kudos_latency_seconds_count", {"path": "x"}, 2.0) in samples
    assert ("kudos_latency_seconds_sum", {"path": "x"}, pytest.approx(0.35)) in samples


@given(st.lists(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), max_size=60))
def test_histogram_counts_add_up_for_any_observations(values: list[float]) -> None:
    bounds = [-10.0, 0.0, 0.25, 3.0, 1e4]
    h = Histogram("kudos_h", "h", bounds)
    for v in values:
        h.observe(v)
    (_, samples) = parse(exposition([h]))["kudos_h"]
    cum = [s[2] for s in samples if s[0] == "kudos_h_bucket"]
    assert cum == sorted(cum)  # cumulative: never decreasing
    assert cum[-1] == len(values)
    for bound, n in zip(bounds, cum, strict=False):
        assert n == sum(1 for v in values if v <= bound)
    total = next(s[2] for s in samples if s[0] == "kudos_h_sum")
    assert total == pytest.approx(math.fsum(values), abs=1e-6)


def test_special_values_are_written_as_prometheus_spells_them() -> None:
    g = Gauge("kudos_g", "g", ["k"])
    g.set(math.inf, k="a")
    g.set(-math.inf, k="b")
    g.set(math.nan, k="c")
    g.set(1e20, k="d")
    g.set(1_700_000_000.25, k="e")
    text = exposition([g])
    assert 'kudos_g{k="a"} +Inf\n' in text and 'kudos_g{k="b"} -Inf\n' in text
    assert 'kudos_g{k="c"} NaN\n' in text
    values = {s[1]["k"]: s[2] for s in parse(text)["kudos_g"][1]}
    assert values["d"] == 1e20 and values["e"] == 1_700_000_000.25


@pytest.mark.parametrize(
    "make",
    [
        lambda: Counter("kudos_x", "counters end in _total"),
        lambda: Counter("kudos-x_total", "bad name"),
        lambda: Gauge("kudos_x", "bad label", ["__reserved"]),
        lambda: Gauge("kudos_x", "bad label", ["a-b"]),
        lambda: Gauge("kudos_x", "repeated", ["a", "a"]),
        lambda: Histogram("kudos_x", "le is taken", [1], ["le"]),
        lambda: Histogram("kudos_x", "unsorted", [2, 1]),
        lambda: Histogram("kudos_x", "no inf", [1, math.inf]),
        lambda: Histogram("kudos_x", "none", []),
    ],
)
def test_bad_definitions_are_refused(make: object) -> None:
    with pytest.raises(ValueError):
        make()  # type: ignore[operator]


def test_bad_updates_are_refused() -> None:
    c = Counter("kudos_c_total", "c", ["kind"])
    with pytest.raises(ValueError, match="cannot go down"):
        c.inc(-1, kind="a")
    with pytest.raises(ValueError, match="takes labels"):
        c.inc(kind="a", other="b")
    with pytest.raises(ValueError, match="takes labels"):
        c.inc()
    with pytest.raises(ValueError, match="twice"):
        exposition([c, Counter("kudos_c_total", "again")])


def _filled(metric_set: MetricSet) -> MetricSet:
    """Every metric of a set touched once, with label values made from the label names."""
    for m in metric_set.metrics():
        labels = {n: f"{n}-1" for n in m.labelnames}
        if isinstance(m, Histogram):
            m.observe(0.01, **labels)
        elif isinstance(m, Counter | Gauge):
            m.inc(**labels)
    return metric_set


@pytest.mark.parametrize("make", [WebMetrics, WorkerMetrics, DeliverMetrics])
def test_every_process_metric_set_parses(make: type[MetricSet]) -> None:
    metric_set = _filled(make())
    families = parse(metric_set.exposition())
    for m in metric_set.metrics():
        family = m.name.removesuffix("_total") if m.kind == "counter" else m.name
        kind, samples = families[family]
        assert kind == m.kind
        assert samples, m.name
        assert m.name.startswith("kudos_")


def test_docs_list_every_metric_with_its_type_and_labels() -> None:
    """docs/metrics.md has a row per metric: | `name` | type | labels | meaning |."""
    text = (ROOT / "docs" / "metrics.md").read_text()
    rows = {
        m.group(1): (m.group(2).strip(), m.group(3).strip())
        for m in re.finditer(r"^\| `(kudos_\w+)` \| (\w+) \| ([^|]*) \|", text, re.MULTILINE)
    }
    defined = {}
    for make in (WebMetrics, WorkerMetrics, DeliverMetrics):
        for m in make().metrics():
            labels = ", ".join(f"`{n}`" for n in m.labelnames) or "-"
            defined[m.name] = (m.kind, labels)
    assert rows == defined
