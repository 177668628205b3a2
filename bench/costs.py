"""Unit costs for the capacity arithmetic of docs/scaling.md: ``python -m bench.costs``.

Starts its own Valkey on a free port and measures, on 1M-member base boards:

- Redis server time (``INFO commandstats``, the script's own time) of the live feed's calls: a
  board poll that finds nothing new, one that finds the board changed (reads the top 100), a
  publish (compare-and-set of the next frame), and a member-channel poll with and without the
  member's standing (rank and score on every base board);
- memory per entry of the state that grows with traffic: a de-duplication id (``seen:<p>``), a
  diminishing-returns counter (``dr:<p>:<day>``) and a board member, in Redis (``used_memory``)
  and in the worker's own copy (``leaderboard.owned``, ``tracemalloc``).

About 30 s on 2 cores. Prints one line per number; nothing is written.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from kudos import servers
from leaderboard.fingerprint import fingerprint, pair_fingerprint
from leaderboard.owned import OwnedPartition
from leaderboard.scoring import ScoringRules
from leaderboard.store import FeedFrame, Store
from web import feed

MEMBERS = 1_000_000
MEMORY_ENTRIES = 500_000


async def feed_costs(url: str) -> None:
    store = Store.connect(url, "costs", ScoringRules.load())
    r = aioredis.Redis.from_url(url)
    rng = random.Random(1)
    try:
        for b in store.rules.base_boards:
            n = MEMBERS if b == "all" else MEMBERS // 10
            for i in range(0, n, 20_000):
                batch = {f"m{j}": rng.randint(1, 10**6) for j in range(i, min(n, i + 20_000))}
                await r.zadd(store.key("board", b), batch)  # type: ignore[arg-type]
            await r.hset(store.key("changes"), b, 1)
        await r.set(store.key("wm"), "1341100800")
        await r.set(store.key("landmark"), "1341014400")
        epoch = await store.feed_epoch()

        async def measure(
            label: str, call: Callable[[], Awaitable[Any]], n: int, per: int = 1
        ) -> None:
            await r.config_resetstat()
            t0 = time.perf_counter()
            for _ in range(n):
                await call()
            wall = (time.perf_counter() - t0) / n * 1e6
            info = await r.info("commandstats")
            server = float(info.get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))
            each = f" = {server / per:.1f} us each of {per}" if per > 1 else ""
            print(
                f"{label:<52} server {server:8.1f} us/call{each}  (client round trip {wall:.0f} us)"
            )

        first = await store.feed_board("all", -1, feed.DEPTH, 200)
        snap = feed.encode_rows(feed.top_rows(first.rows))
        await store.feed_publish(
            FeedFrame("board:all", first.seq, first.epoch, first.src, snap, None), [], 2000, 100
        )
        seq = first.seq
        await measure(
            "board poll, unchanged",
            lambda: store.feed_board("all", seq, feed.DEPTH, 200),
            3000,
        )

        async def changed() -> None:
            await r.hincrby(store.key("changes"), "all", 1)
            await store.feed_board("all", seq, feed.DEPTH, 200)

        await measure("board poll, changed (top 100 read)", changed, 1000)
        box = [seq]

        async def publish() -> None:
            frame = FeedFrame("board:all", box[0], epoch, str(box[0]), snap, b"x" * 400)
            s = await store.feed_publish(frame, [], 2000, 100)
            assert s is not None
            box[0] = s

        await measure("publish (400 B frame, CAS on seq)", publish, 1000)
        members = [(f"m{rng.randrange(MEMBERS // 10)}", -1, True) for _ in range(200)]
        await measure(
            "member poll with standing on every base board",
            lambda: store.feed_members(members, 200),
            300,
            per=200,
        )
        quiet = [(m, 0, False) for m, _, _ in members]
        await measure(
            "member poll without standing", lambda: store.feed_members(quiet, 200), 300, per=200
        )
    finally:
        await store.close()
        await r.aclose()


async def redis_memory(url: str) -> None:
    r = aioredis.Redis.from_url(url)
    try:

        async def used() -> int:
            return int((await r.info("memory"))["used_memory"])

        n = MEMORY_ENTRIES
        before = await used()
        for i in range(0, n, 20_000):
            ids = {f"higgs-{j}": 1341100800 + j // 10 for j in range(i, i + 20_000)}
            await r.zadd("costs:seen:0", ids)  # type: ignore[arg-type]
        seen = await used()
        for i in range(0, n, 20_000):
            pairs = {f"{j}\x1f{j * 7 % 100_000}": 1 for j in range(i, i + 20_000)}
            await r.hset("costs:dr:0:15523", mapping=pairs)  # type: ignore[arg-type]
        dr = await used()
        for i in range(0, n, 20_000):
            scores = {str(j): random.randint(1, 10**7) for j in range(i, i + 20_000)}
            await r.zadd("costs:board:all", scores)  # type: ignore[arg-type]
        board = await used()
        # the compact form (what apply.lua writes now): one string of 16-byte fingerprints per
        # (partition, day), appended by every apply (appends of 500 ids). A string below 1 MB
        # may carry up to as much again of spare room (Redis's APPEND preallocation), above it
        # at most 1 MB: so small days cost more per id than big ones. Both are measured.
        per_id: dict[int, float] = {}
        per_pair: dict[int, float] = {}
        for days in (10, 2):  # 50k and 250k ids a day
            start = await used()
            for i in range(0, n, 500):
                blob = b"".join(fingerprint(f"higgs-{j}") for j in range(i, i + 500))
                await r.append(f"costs:ids:{days}:{15523 + i * days // n}", blob)
            mid = await used()
            for i in range(0, n, 500):
                blob = b"".join(
                    pair_fingerprint(str(j), str(j * 7 % 100_000)) for j in range(i, i + 500)
                )
                await r.append(f"costs:drc:{days}:{15523 + i * days // n}", blob)
            per_id[n // days], per_pair[n // days] = (mid - start) / n, (await used() - mid) / n
            await r.delete(
                *(f"costs:{f}:{days}:{d}" for f in ("ids", "drc") for d in range(15523, 15533))
            )
        ids = " / ".join(f"{v:.1f}" for v in per_id.values())
        pairs = " / ".join(f"{v:.1f}" for v in per_pair.values())
        sizes = " / ".join(f"{k // 1000}k" for k in per_id)
        print(
            f"redis: dedupe id {(seen - before) / n:.0f} B as a zset member, {ids} B as a "
            f"fingerprint ({sizes} ids a day); dr pair {(dr - seen) / n:.0f} B as a hash field, "
            f"{pairs} B as a fingerprint record; board member {(board - dr) / n:.0f} B"
        )
        await r.delete("costs:seen:0", "costs:dr:0:15523", "costs:board:all")
    finally:
        await r.aclose()


def worker_memory() -> None:
    n = MEMORY_ENTRIES
    tracemalloc.start()
    # before: an id → ts dict with day lists, a (day, "actor␟target") → count dict
    seen: dict[str, float] = {}
    days: dict[int, list[str]] = {}
    for j in range(n):
        i, ts = f"higgs-{j}", 1341100800.0 + j / 10
        seen[i] = ts
        days.setdefault(int(ts // 86400), []).append(i)
    dict_seen = tracemalloc.get_traced_memory()[0]
    dr: dict[tuple[int, str], int] = {}
    dr_days: dict[int, list[str]] = {}
    for j in range(n):
        f = f"{j}\x1f{j * 7 % 100_000}"
        dr[(15523, f)] = 1
        dr_days.setdefault(15523, []).append(f)
    dict_dr = tracemalloc.get_traced_memory()[0]
    del seen, days, dr, dr_days
    base = tracemalloc.get_traced_memory()[0]
    p = OwnedPartition()
    for j in range(0, n, 1000):
        fps = [fingerprint(f"higgs-{k}") for k in range(j, j + 1000)]
        p.seen.add_many(fps, [int((1341100800.0 + k / 10) // 86400) for k in range(j, j + 1000)])
    compact_seen = tracemalloc.get_traced_memory()[0]
    for j in range(0, n, 1000):
        p.dr.set_many(
            [(15523, pair_fingerprint(str(k), str(k * 7 % 100_000)), 1) for k in range(j, j + 1000)]
        )
    compact_dr = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"worker copy: dedupe id {dict_seen / n:.0f} B in a dict, {(compact_seen - base) / n:.1f} B "
        f"compact; dr pair {(dict_dr - dict_seen) / n:.0f} B in a dict, "
        f"{(compact_dr - compact_seen) / n:.1f} B compact"
    )


async def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kudos-costs-"))
    port = servers.free_port()
    proc = servers.start_redis(port, workdir / "redis")
    try:
        url = f"redis://127.0.0.1:{port}/0"
        await redis_memory(url)  # first, on an empty server
        await feed_costs(url)
    finally:
        servers.stop(proc)
    worker_memory()


if __name__ == "__main__":
    asyncio.run(main())
