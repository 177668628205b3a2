"""`kudos rebuild` on real servers: Kafka is the system of record and Redis a view.

- Redis loses the namespace mid-stream while a worker keeps consuming: the rebuild restores boards
  that equal the contract again.
- A new scoring.toml (share worth 6 instead of 4): the dry run reports who moves and why and changes
  nothing; the real run switches atomically while a reader polls the API without a single failed
  or mixed read; a worker still on the old rules stops at its next apply (it must not add to the
  rescored boards) and one restarted with the new file carries on exactly.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from kudos import servers
from leaderboard.errors import StackError
from leaderboard.scoring import ScoringRules
from leaderboard.settings import ScoringSettings
from leaderboard.store import Store
from leaderboard.store.keys import Keys
from stream.app import EXIT_CONFIG
from stream.rebuild import Renew, _keep_lock
from tests.conftest import DATA, Namespace, Servers, configure
from tests.eventually import eventually
from tests.oracle import WEIGHTS, assert_board_equal, compute, read_edges
from tests.web.live import start_web

pytestmark = pytest.mark.integration

BOARDS = ("all", "1h", "24h", "7d", "decayed")
HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
NEW_WEIGHTS = {**WEIGHTS, "share": 6}


def kudos(ns: Namespace, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kudos", *args],
        env={**ns.env(), **env},
        capture_output=True,
        text=True,
        timeout=180,
    )


async def check_boards(
    ns: Namespace, events: list[dict[str, Any]], weights: dict[str, int] | None = None
) -> None:
    expected = compute(events, weights)
    for board in BOARDS:
        assert_board_equal(board, await ns.export(board), expected.get(board, {}))


async def lose_redis(ns: Namespace) -> None:
    """Every key of the namespace gone, as after a flush or a lost disk (the Valkey server is
    shared with other tests' namespaces, so FLUSHDB itself is not used)."""
    keys = [k async for k in ns.store.client.scan_iter(match=ns.store.prefix + ":*")]
    await ns.store.client.delete(*keys)


def new_scoring(tmp: Path) -> Path:
    base = Path(__file__).resolve().parents[2] / "leaderboard" / "scoring.toml"
    version = ScoringRules.load().version
    toml = base.read_text().replace(f'version = "{version}"', 'version = "test-shares-6"')
    toml = toml.replace("share = 4\n", "share = 6\n")
    assert 'version = "test-shares-6"' in toml and "share = 6\n" in toml
    path = tmp / "scoring-shares-6.toml"
    path.write_text(toml)
    return path


async def test_after_losing_redis_the_rebuild_restores_the_contract(namespace: Namespace) -> None:
    ns = namespace
    events = read_edges(HIGGS, "higgs", 12_000)
    worker = ns.start_worker()
    await ns.wait(await ns.replay(events[:6_000], envelope=200))
    # (a running worker would find its fences gone and re-read the log itself: test_rollback.py;
    # here Redis is lost while no worker runs, and the rebuild restores it)
    servers.stop(worker, timeout=10)
    await lose_redis(ns)
    await ns.replay(events[6_000:], envelope=200)
    assert not [m async for m in ns.store.export("all")]
    # what rebuilds that died left: a half-filled next generation (the one this rebuild fills:
    # a leftover member would show on its boards) and an older one
    dead = [Keys(ns.store.prefix, g) for g in (1, 7)]
    for k in dead:
        await ns.store.client.zadd(k.key("board", "all"), {"ghost": 1e9})
        await ns.store.client.hset(k.key("fence"), "0", "999999")
    # and the switch counter of rebuilds from before generations (not a pointer)
    await ns.store.client.set(ns.store.key("generation"), "4")

    out = kudos(ns, "rebuild", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    assert report["members_after"] == len(compute(events)["all"])
    assert report["scores_changed"] > 0 and report["risers"]
    assert "switched" in out.stderr
    await check_boards(ns, events)
    # the deliverer's group on the (replaced) alerts outbox exists and starts at its end: a
    # rebuild does not announce past throttles again
    (group,) = await ns.store.client.xinfo_groups(ns.store.key("alerts"))
    assert group["name"] == "deliver" and group["lag"] == 0
    # no shadow namespace or generation but the live one is left behind (the switch's old one
    # dropped after it, the dead ones before the rebuild), and the lock is released
    assert await ns.store.shadow_prefixes("~rebuild") == []
    assert await ns.store.pointer() == 1 and await ns.store.generations() == {1}
    assert not await ns.store.client.exists(ns.store.key("generation"))
    assert not await ns.store.client.exists(ns.store.key("rebuilding"))
    # the live worker goes on from the rebuilt fences: nothing twice, nothing lost; and its first
    # apply after the switch, 200 days on, moves the decay landmark: the rebuilt decayed boards
    # are rescaled like any other
    worker = ns.start_worker()
    far = [{**e, "id": f"far-{i}", "ts": e["ts"] + 200 * 86400} for i, e in enumerate(events[:50])]
    await ns.wait(await ns.replay(far, envelope=50))
    await check_boards(ns, events + far)
    assert worker.poll() is None


async def poll_reads(port: int, stop: asyncio.Event, seen: list[dict[str, int]]) -> list[str]:
    """GET the top 20 of `all` until ``stop``; every failure (status, error) as text."""
    failures: list[str] = []
    loop = asyncio.get_running_loop()

    def get() -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{port}/api/boards/all?limit=20"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()

    while not stop.is_set():
        try:
            status, body = await loop.run_in_executor(None, get)
            if status != 200:
                failures.append(f"status {status}")
            else:
                page = orjson.loads(body)
                seen.append({e["member"]: round(e["score"] * 1000) for e in page["entries"]})
        except Exception as exc:  # a failed read is what this test looks for
            failures.append(repr(exc))
        await asyncio.sleep(0.005)  # not a wait: paces the reader, which polls throughout
    return failures


async def test_rescoring_reports_who_moves_and_switches_without_failed_reads(
    namespace: Namespace, tmp_path: Path
) -> None:
    ns = namespace
    events = read_edges(HIGGS, "higgs", 10_000)
    old_worker = ns.start_worker()
    await ns.wait(await ns.replay(events, envelope=200))
    before = compute(events)["all"]
    after = compute(events, NEW_WEIGHTS)["all"]
    scoring = new_scoring(tmp_path)

    # the dry run: the report, and nothing changes
    dry = kudos(ns, "rebuild", "--scoring", str(scoring), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    report = orjson.loads(dry.stdout)
    assert report["version_before"].startswith(ScoringRules.load().version + "+bait")
    assert report["version_after"].startswith("test-shares-6+bait")
    changed = {m for m in set(before) | set(after) if before.get(m) != after.get(m)}
    assert report["scores_changed"] == len(changed)
    top = max(changed, key=lambda m: (after.get(m, 0) - before.get(m, 0), m))
    riser = report["risers"][0]
    assert riser["member"] == top
    assert riser["score_before"] == before[top] / 1000 and riser["score_after"] == after[top] / 1000
    # why: exactly the extra weight of the shares they received
    assert riser["why"] == {"share": (after[top] - before[top]) / 1000}
    assert report["fallers"] == []  # a bigger share weight lowers nobody's score
    await check_boards(ns, events)
    assert "not switched" in dry.stderr

    # the real switch, with a reader polling the API throughout
    port = ns.settings.web.port
    web = start_web(ns, port)
    stop = asyncio.Event()
    seen: list[dict[str, int]] = []
    reader = asyncio.create_task(poll_reads(port, stop, seen))
    try:
        await eventually(lambda: seen, what="the reader's first read, before the switch")
        out = await asyncio.to_thread(kudos, ns, "rebuild", "--scoring", str(scoring), "--yes")
        # a read begun after the switch: the second one appended from now on (the first may
        # have been in flight during the switch)
        switched = len(seen) + 2
        await eventually(lambda: len(seen) >= switched, what="a read begun after the switch")
    finally:
        stop.set()
        failures = await reader
        web.terminate()
        web.wait(10)
    assert out.returncode == 0, out.stderr
    assert "switched" in out.stderr and "board all" in out.stdout
    assert failures == []
    assert len(seen) > 10
    # every read shows the old boards or the new ones, never a mix
    for page in seen:
        old = all(before.get(m) == s for m, s in page.items())
        new = all(after.get(m) == s for m, s in page.items())
        assert old or new, page
    assert all(before.get(m) == s for m, s in seen[0].items())
    assert all(after.get(m) == s for m, s in seen[-1].items())
    await check_boards(ns, events, NEW_WEIGHTS)

    # a worker on the old rules must not add to the rescored boards: it stops at its next apply
    more = read_edges(HIGGS, "higgs", 11_000)
    produced = await ns.replay(more[10_000:], envelope=200)
    assert await asyncio.to_thread(old_worker.wait, 60) == EXIT_CONFIG
    log = (ns.home / "worker-0.log").read_text()
    assert "the boards are on scoring 'test-shares-6+bait" in log
    await check_boards(ns, events, NEW_WEIGHTS)
    # restarted with the new scoring.toml, the worker carries on exactly
    configure(ns, scoring=ScoringSettings(path=str(scoring)))
    ns.start_worker()
    await ns.wait(produced)
    await check_boards(ns, more, NEW_WEIGHTS)


def keep_lock(renew: Renew, ttl_s: float = 60) -> asyncio.Task[None]:
    """The renewer, renewing at once and again (no waiting a quarter of the lock's life)."""
    return asyncio.create_task(
        _keep_lock(
            renew, held_since=time.monotonic(), ttl_s=ttl_s, every_s=0.01, retry_s=0.01,
            margin_s=ttl_s / 4,
        )
    )  # fmt: skip


async def test_the_lock_renewer_rides_out_a_transient_redis_error(real_servers: Servers) -> None:
    store = Store.connect(real_servers.redis_url, f"lock-{uuid.uuid4().hex}", ScoringRules.load())
    lock = store.key("rebuilding")
    calls: list[str] = []

    async def renew() -> bool:
        calls.append("renew")
        if len(calls) == 1:  # the connection dropped once, as redis-py reports it
            raise RedisConnectionError("Connection reset by peer")
        return await store.renew_rebuild_lock("t", 60)

    try:
        assert await store.lock_rebuild("t", 5) is None
        task = keep_lock(renew)
        try:
            await eventually(lambda: len(calls) >= 3, what="renewals after the failed one")
            if task.done():
                task.result()  # (its error says why it stopped)
            assert not task.done()
            # renewed after the error: the lock now lasts the renewal's 60 s, not the first 5
            assert await store.client.ttl(lock) > 5
            assert await store.client.get(lock) == "t"
        finally:
            task.cancel()
    finally:
        await store.close()


async def test_the_lock_renewer_stops_once_the_lock_is_not_its_own(real_servers: Servers) -> None:
    """Taken over by another rebuild, or run out: the renewer raises (the rebuild's checks stop
    it) and never takes the lock back; a Redis that stays unreachable: it gives up while the
    lock, as last renewed, still holds (also when its renewal gets no reply at all)."""
    store = Store.connect(real_servers.redis_url, f"lock-{uuid.uuid4().hex}", ScoringRules.load())
    lock = store.key("rebuilding")

    async def renew() -> bool:
        return await store.renew_rebuild_lock("t", 60)

    async def unreachable() -> bool:
        raise RedisConnectionError("Connection refused")

    async def silent() -> bool:
        await asyncio.Event().wait()
        return True

    try:
        assert await store.lock_rebuild("t", 60) is None
        await store.client.set(lock, "other")  # another rebuild took the lock over
        with pytest.raises(StackError, match="no longer this rebuild's"):
            await asyncio.wait_for(keep_lock(renew), 20)
        assert await store.client.get(lock) == "other"
        await store.client.delete(lock)  # it ran out, and nobody holds it
        with pytest.raises(StackError, match="no longer this rebuild's"):
            await asyncio.wait_for(keep_lock(renew), 20)
        assert await store.client.get(lock) is None
        with pytest.raises(StackError, match="before it runs out"):
            await asyncio.wait_for(keep_lock(unreachable, ttl_s=0.5), 20)
        with pytest.raises(StackError, match="before it runs out"):  # a reply that never comes
            await asyncio.wait_for(keep_lock(silent, ttl_s=0.5), 20)
    finally:
        await store.close()
