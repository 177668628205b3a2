"""`make verify`: every board of the whole Higgs and MathOverflow logs against the oracle.

Modes per dataset: envelopes of 500 with one worker; single-event messages; two workers over four
partitions; and three SIGKILLs of the worker during the replay. Prints one line per run and a summary;
exits non-zero if any board differs. Takes tens of minutes on 2 cores.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from kudos import servers
from tests.conftest import DATA, Namespace, Servers, make_settings
from tests.oracle import assert_board_equal, compute, read_edges

DATASETS = {
    "higgs": (DATA / "higgs" / "higgs-activity_time.txt.gz", "higgs"),
    "mathoverflow": (DATA / "mathoverflow" / "sx-mathoverflow-typed.DERIVED.txt.gz", "sx"),
}
MODES = ("envelope500", "single", "two-workers", "sigkill-x3")


async def run_one(
    srv: Servers,
    home: Path,
    events: list[dict[str, object]],
    mode: str,
    expected: dict[str, dict[str, float]],
) -> str:
    ns = Namespace.connect(make_settings(srv, home), home)
    start = time.monotonic()
    try:
        worker = ns.start_worker()
        if mode == "two-workers":
            ns.start_worker()
        envelope = {"envelope500": 500, "single": 1, "two-workers": 500, "sigkill-x3": 100}[mode]
        producing = asyncio.create_task(
            ns.replay(events, envelope=envelope, rate=20_000 if mode == "sigkill-x3" else None)
        )
        if mode == "sigkill-x3":
            rng = random.Random(1)
            for _ in range(3):
                await asyncio.sleep(rng.uniform(4, 8))  # not a wait: a kill at a random moment
                ns.kill_worker(worker)
                worker = ns.start_worker()
        produced = await producing
        await ns.wait(produced, timeout=3600)
        applied_s = time.monotonic() - start
        boards = sorted(b for b in expected if ":" not in b)
        for board in boards:
            assert_board_equal(board, await ns.export(board), expected[board])
        stats = await ns.store.stats()
        assert stats["total"] == len(events), stats
        return (
            f"OK   {mode:<12} {len(events):>8,} events in {applied_s:6.1f} s; boards "
            f"{', '.join(f'{b}={len(expected[b]):,}' for b in boards)}; stats {stats}"
        )
    finally:
        ns.stop_workers()
        await ns.store.close()


async def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rport, bport = servers.free_port(), servers.free_port()
        redis = servers.start_redis(rport, root / "redis")
        broker = servers.start_broker(bport, root / "broker")
        srv = Servers(rport, bport, root)
        try:
            for name, (path, fmt) in DATASETS.items():
                print(f"[{name}] reading {path.name} and computing the oracle…", flush=True)
                events = read_edges(path, fmt, 10**9)
                expected = compute(events)
                for mode in sys.argv[1:] or MODES:
                    print(f"[{name}] {mode}: replaying…", flush=True)
                    try:
                        line = await run_one(srv, root / f"{name}-{mode}", events, mode, expected)
                    except AssertionError as exc:
                        failures += 1
                        line = f"FAIL {mode}: {str(exc)[:2000]}"
                    print(f"[{name}] {line}", flush=True)
        finally:
            servers.stop(broker)
            servers.stop(redis)
    print(
        "verify: all boards equal the oracle"
        if not failures
        else f"verify: {failures} run(s) FAILED"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
