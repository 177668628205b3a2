"""Explain's Redis time on a namespace with many community boards (``python -m bench.explain``).

Starts its own Redis, scores ``--communities`` communities (five boards each) through the real
apply path (the worker's processor, no Kafka), each with a few members of their own, plus one
member in ``--mine`` of them; then times ``Store.explanation`` of that member: the Redis time
of the commands it caused (``INFO commandstats``, summed), the ZSCOREs among them, and the wall
time per call. Explain read one ZSCORE per community board of the namespace before issue 12;
it now reads only the boards of the member's own communities (``mcomm:<member>``).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw

T0 = 1_700_000_000


async def _no_letters(letters: Any) -> None:
    pass


def _log(communities: int, mine: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(communities):
        for j in range(3):
            events.append(
                {
                    "id": f"c{i}-{j}",
                    "ts": T0 + i,
                    "kind": "share",
                    "actor": f"fan{j}",
                    "target": f"m{i}-{j}",
                    "communities": [f"c{i:05d}"],
                }
            )
    for i in range(mine):
        events.append(
            {
                "id": f"me-{i}",
                "ts": T0 + communities + i,
                "kind": "share",
                "actor": f"fan{i}",
                "target": "me",
                "communities": [f"c{i:05d}"],
            }
        )
    return events


async def _commandstats(store: Store) -> dict[str, tuple[int, int]]:
    raw = await store.client.info("commandstats")
    return {k: (int(v["calls"]), int(v["usec"])) for k, v in raw.items()}


async def run(url: str, communities: int, mine: int, calls: int) -> dict[str, Any]:
    rules = ScoringRules.load()
    store = Store.connect(url, f"bench-explain-{uuid.uuid4().hex[:8]}", rules)
    try:
        proc = Processor(store, rules, WorkerSettings(), _no_letters)
        events = _log(communities, mine)
        raws = [
            Raw(0, off, orjson.dumps(events[s : s + 500]), float(T0 + 10**6))
            for off, s in enumerate(range(0, len(events), 500))
        ]
        await proc.process(raws)
        boards = await store.client.scard(store.key("boards"))
        explanation = await store.explanation("me")
        assert explanation is not None
        await store.explanation("me")  # warm the script cache
        before = await _commandstats(store)
        started = time.perf_counter()
        for _ in range(calls):
            await store.explanation("me")
        wall = (time.perf_counter() - started) / calls
        after = await _commandstats(store)
        usec = sum(c[1] - before.get(k, (0, 0))[1] for k, c in after.items())
        # (INFO itself is one call between the two reads)
        usec -= after["cmdstat_info"][1] - before.get("cmdstat_info", (0, 0))[1]
        zscore = after["cmdstat_zscore"][0] - before.get("cmdstat_zscore", (0, 0))[0]
        return {
            "community_boards": boards - len(rules.base_boards),
            "member_boards": len(explanation.boards),
            "redis_us_per_explain": round(usec / calls, 1),
            "zscore_per_explain": zscore / calls,
            "wall_ms_per_explain": round(wall * 1000, 3),
        }
    finally:
        await store.client.delete(*[k async for k in store.client.scan_iter(store.prefix + ":*")])
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--communities", type=int, default=1000, help="five boards each")
    ap.add_argument("--mine", type=int, default=3, help="communities the explained member has")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = servers.free_port()
        redis = servers.start_redis(port, Path(tmp) / "redis")
        try:
            url = f"redis://127.0.0.1:{port}/0"
            print(
                orjson.dumps(
                    asyncio.run(run(url, args.communities, args.mine, args.calls))
                ).decode()
            )
        finally:
            servers.stop(redis)


if __name__ == "__main__":
    main()
