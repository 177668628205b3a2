"""What calendar boards cost: ``python -m bench.calendar_cost``.

Starts its own Valkey on a free port and applies the whole MathOverflow log (506k events, 6.5
years) through the worker's planner and apply script twice, in the same run: with every calendar
archive kept (``KUDOS_PERIODS_KEEP_* = 0``) and with the default retention. Prints the Redis
memory of the archives (``MEMORY USAGE`` of every ``day@``/``week@``/``month@`` board), the bytes
per archive entry (a member on one period's board), the apply script's time per event
(``INFO commandstats``), and ``used_memory`` of each run. About a minute on 2 cores.
"""

from __future__ import annotations

import asyncio
import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from kudos import servers
from leaderboard.calendar import DEFAULT_KEEP, UNITS
from leaderboard.events import Event
from leaderboard.owned import OwnedState
from leaderboard.plan import Message, build_plan
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SX = DATA / "mathoverflow" / "sx-mathoverflow-typed.DERIVED.txt.gz"
KINDS = {"a2q": "reply", "c2q": "comment", "c2a": "comment"}
CHUNK = 5000


def events() -> list[Event]:
    out = []
    with gzip.open(SX, "rt") as f:
        for n, line in enumerate(f, start=1):
            a, b, ts, code = line.split()
            out.append(Event(f"sx-{n}", float(ts), KINDS[code], a, b))
    return out


async def run(url: str, prefix: str, keep: tuple[int, int, int], log: list[Event]) -> None:
    store = Store.connect(url, prefix, ScoringRules.load().keeping(*keep))
    r: Any = aioredis.Redis.from_url(url, decode_responses=True)
    await r.config_resetstat()
    before = (await r.info("memory"))["used_memory"]
    owned = OwnedState()
    await store.load_partitions([0], owned)
    t0 = time.perf_counter()
    for i in range(0, len(log), CHUNK):
        plan = build_plan(
            [Message(0, i // CHUNK, log[i : i + CHUNK])],
            owned.store_state(),
            store.rules,
            dedupe_horizon_s=7 * 86400,
            rebase_after_s=120 * 86400,
            max_future_s=300,
        )
        owned.absorb(plan)
        await (await store.send_apply(plan))
    wall = time.perf_counter() - t0
    stats = (await r.info("commandstats"))["cmdstat_evalsha"]
    used = (await r.info("memory"))["used_memory"] - before
    label = "every period kept" if keep == (0, 0, 0) else f"keep {keep}"
    print(
        f"{label}: {len(log):,} events applied in {wall:.1f} s; apply script "
        f"{stats['usec'] / len(log):.2f} us/event; used_memory +{used / 1e6:.1f} MB"
    )
    for unit in UNITS:
        boards = await r.zrange(store.key("archives", unit), 0, -1)
        size = entries = 0
        for b in boards:
            key = store.key("board", b)
            size += await r.memory_usage(key, samples=0) or 0
            entries += await r.zcard(key)
        per = size / entries if entries else 0.0
        print(
            f"  {unit:<5} {len(boards):>5} archives, {entries:>9,} entries, "
            f"{size / 1e6:6.1f} MB = {per:.0f} B/entry, {size / max(1, len(boards)) / 1e3:.1f} kB/period"
        )
    await store.close()
    await r.aclose()


async def main() -> None:
    log = events()
    with tempfile.TemporaryDirectory() as tmp:
        port = servers.free_port()
        proc = servers.start_redis(port, Path(tmp) / "redis")
        try:
            url = f"redis://127.0.0.1:{port}/0"
            await run(url, "all", (0, 0, 0), log)
            await run(url, "default", DEFAULT_KEEP, log)
        finally:
            servers.stop(proc)


if __name__ == "__main__":
    asyncio.run(main())
