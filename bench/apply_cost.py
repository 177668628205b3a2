"""The apply's fixed cost per call against its cost per event: ``python -m bench.apply_cost``.

docs/scaling.md plans to spread one namespace over many slots by tagging keys by partition, which
makes each apply smaller (1M events/s over 256 partitions is ~80 events per 20 ms batch). Whether
that pays depends on how much of the apply's Redis time is per call (argument parsing, key names,
the clock, the fences, stats, perks) and how much per event; this measures both.

Starts its own Valkey on a free port (and, with ``--cluster``, an embedded 3-primary Redis Cluster
beside it), and sends the same Higgs-like events through the real apply path (``Processor`` →
``Store``) in envelopes of n events, one apply per envelope, for each n. Redis time is the apply
script's own (``INFO commandstats``, ``evalsha``); a least-squares line over the sizes gives the
fixed µs per call and the µs per event. Each size gets a fresh namespace, warmed with the same
number of events first, so every call lands on boards of about the same size.

About 1 minute (2 with ``--cluster``) on 2 cores. Prints one line per size and the fit.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from kudos import servers
from kudos.cluster import start_cluster
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw

#: envelope sizes (events per apply call)
SIZES = (1, 4, 16, 64, 256, 1024)
#: events sent per size (after as many to warm the namespace)
EVENTS = 16_384
T0 = 1_341_100_800  # 2012-07-01, the start of the Higgs week
KINDS = ("like", "share", "click", "reply")


@dataclass(frozen=True, slots=True)
class Measured:
    size: int
    calls: int
    usec_per_call: float
    wall_s: float

    @property
    def usec_per_event(self) -> float:
        return self.usec_per_call / self.size


def events(seed: int, n: int, start: int) -> list[dict[str, Any]]:
    """``n`` interactions among 20k accounts on 5k targets, one a second from ``start``."""
    rng = random.Random(seed)
    return [
        {
            "id": f"e{seed}-{start + i}",
            "ts": T0 + start + i,
            "kind": KINDS[rng.randrange(len(KINDS))],
            "actor": f"u{rng.randrange(20_000)}",
            "target": f"t{rng.randrange(5_000)}",
        }
        for i in range(n)
    ]


async def evalsha_stats(client: Any, cluster: bool) -> tuple[int, int]:
    """(calls, usec) of ``evalsha`` summed over the server (every primary of a cluster)."""
    if cluster:
        per_node = await client.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        stats = [v.get("cmdstat_evalsha", {}) for v in per_node.values()]
    else:
        stats = [(await client.info("commandstats")).get("cmdstat_evalsha", {})]
    return sum(int(s.get("calls", 0)) for s in stats), sum(int(s.get("usec", 0)) for s in stats)


async def measure(url: str, size: int, *, cluster: bool) -> Measured:
    rules = ScoringRules.load()
    prefix = f"applycost{size}"
    store = Store.connect(url, prefix, rules, cluster=cluster)

    async def no_dead_letters(letters: object) -> None:
        raise AssertionError(f"the bench's events are valid: {letters!r}")

    proc = Processor(store, rules, WorkerSettings(), no_dead_letters)
    await store.load_partitions([0], proc.owned)
    offset = 0

    async def send(evs: Sequence[dict[str, Any]]) -> None:
        nonlocal offset
        raws = []
        for i in range(0, len(evs), size):
            chunk = evs[i : i + size]
            raws.append(Raw(0, offset, orjson.dumps(chunk), float(chunk[-1]["ts"])))
            offset += 1
        for raw in raws:  # (a batch of one message: the processor merges a batch's messages)
            await proc.process([raw])

    try:
        await send(events(1, EVENTS, 0))  # (warm: boards of the same size for every n)
        calls0, usec0 = await evalsha_stats(store.client, cluster)
        t = time.perf_counter()
        await send(events(2, EVENTS, EVENTS))
        wall = time.perf_counter() - t
        calls1, usec1 = await evalsha_stats(store.client, cluster)
        applied = (await store.stats())["applied"]
        if applied != 2 * EVENTS:
            raise SystemExit(f"apply cost: {applied} events applied, expected {2 * EVENTS}")
        calls = calls1 - calls0
        return Measured(size, calls, (usec1 - usec0) / max(calls, 1), wall)
    finally:
        await store.close()


def fit(rows: Sequence[Measured]) -> tuple[float, float]:
    """Least squares of µs per call = fixed + per_event × size."""
    xs = [float(r.size) for r in rows]
    ys = [r.usec_per_call for r in rows]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return my - slope * mx, slope


async def run(url: str, label: str, *, cluster: bool) -> None:
    rows = []
    for size in SIZES:
        m = await measure(url, size, cluster=cluster)
        rows.append(m)
        print(
            f"{label:<8} {size:>5} events/call: {m.calls:>6} calls, {m.usec_per_call:9.1f} us/call"
            f" = {m.usec_per_event:7.2f} us/event (wall {m.wall_s:5.1f} s)",
            flush=True,
        )
    fixed, per_event = fit(rows)
    print(
        f"{label:<8} fit: {fixed:.0f} us per call + {per_event:.2f} us per event; half of an "
        f"apply's Redis time is fixed cost below {fixed / per_event if per_event > 0 else 0:.0f} "
        "events per call",
        flush=True,
    )


async def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cluster", action="store_true", help="also on a 3-primary Redis Cluster")
    args = ap.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kudos-applycost-"))
    port = servers.free_port()
    proc = servers.start_redis(port, workdir / "redis")
    try:
        await run(f"redis://127.0.0.1:{port}/0", "single", cluster=False)
    finally:
        servers.stop(proc)
    if args.cluster:
        with start_cluster(3, workdir / "cluster", replicas=1) as c:
            node = c.nodes()[0]
            await run(f"redis://127.0.0.1:{node.port}/0", "cluster", cluster=True)


if __name__ == "__main__":
    asyncio.run(main())
