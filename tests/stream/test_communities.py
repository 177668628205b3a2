"""Communities are bounded (issue 12, finding 4): an allow-list and a cap on distinct communities
per namespace, through real workers, checked against the oracle. Beyond the bound an event scores
on the base boards only (and its other communities), counted in `kudos stats`."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from broker.producer import partition_for
from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw
from tests.conftest import Namespace, Servers, configure
from tests.oracle import assert_board_equal, calendar_boards, community_counts, compute

pytestmark = pytest.mark.integration

BASE = ("all", "1h", "24h", "7d", "decayed")
T0 = 1_700_000_000


def events(
    n: int, communities: list[str], seed: int, start: int = 0, t: int = T0
) -> list[dict[str, Any]]:
    """``n`` events over 40 targets (every partition), each naming 0-3 of ``communities``; a few
    self-interactions."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(start, start + n):
        target = f"t{rng.randrange(40)}"
        actor = target if i % 29 == 0 else f"a{rng.randrange(12)}"
        e: dict[str, Any] = {
            "id": f"e{i}",
            "ts": t + 30 * i,
            "kind": rng.choice(("share", "like", "mention", "follow")),
            "actor": actor,
            "target": target,
        }
        tags = rng.sample(communities, rng.randrange(4))
        if tags:
            e["communities"] = tags
        out.append(e)
    return out


def stats(ns: Namespace) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "kudos", "stats"],
        env=ns.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)  # type: ignore[no-any-return]


async def community_boards(ns: Namespace) -> set[str]:
    """Every community board the namespace lists (GET /api/boards, page by page)."""
    found: set[str] = set()
    cursor = 0
    while True:
        rows, cursor = await ns.store.boards(cursor, 100)
        found |= {b for b, _ in rows if ":" in b}
        if cursor == 0:
            return found


async def check(ns: Namespace, log: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    """The community boards listed are the oracle's (archived periods are not listed: they are
    compared too), and every base, community and archived board equals the oracle's."""
    boards = sorted(await community_boards(ns))
    assert boards == sorted(b for b in expected if ":" in b and "@" not in b)
    archives = [b for b in calendar_boards(expected) if "@" in b]
    assert any(":" in b for b in archives)
    for board in (*BASE, *boards, *archives):
        assert_board_equal(board, await ns.export(board), expected.get(board, {}))


def adds_up(s: dict[str, Any], produced: int) -> None:
    """The outcomes add up to what was produced; the community counters are a part of applied."""
    assert s["applied"] + s["ignored"] + s["duplicate"] + s["dead_lettered"] == produced, s
    assert s["total"] == produced, s
    assert s["community_refused"] + s["community_capped"] <= s["applied"], s


async def test_communities_beyond_the_cap_get_no_boards(namespace: Namespace) -> None:
    """Cap 3, two workers over four partitions. The first three communities come first in the
    log (all applied before the rest is produced), so the contract's "first three to score" is
    the same whatever the interleaving; then events name ten communities."""
    configure(namespace, worker=dataclasses.replace(namespace.settings.worker, max_communities=3))
    first = ["c0", "c1", "c2"]
    more = [f"c{i}" for i in range(10)]
    phase1 = events(200, first, seed=1)
    phase2 = events(1200, more, seed=2, start=200)
    namespace.start_worker()
    namespace.start_worker()
    await namespace.wait(await namespace.replay(phase1, envelope=25))
    await namespace.wait(await namespace.replay(phase2, envelope=40))
    resent = phase2[:100]  # duplicates: counted once, as duplicates, never as capped
    await namespace.wait(await namespace.replay(resent, envelope=10))
    log = phase1 + phase2
    expected = compute(log, max_communities=3)
    assert {b.partition(":")[2] for b in expected if ":" in b} == set(first)
    await check(namespace, log, expected)
    for c in more[3:]:
        assert await namespace.export(f"7d:{c}") == []
        assert not await namespace.store.board_known(f"all:{c}")
    s = stats(namespace)
    want = community_counts(log, max_communities=3)
    assert want["capped"] > 100
    assert (s["community_capped"], s["community_refused"]) == (want["capped"], 0)
    assert s["duplicate"] == len(resent)
    adds_up(s, len(log) + len(resent))
    # a member's explanation lists only the admitted communities' boards
    for member in ("t1", "t2", "t3"):
        explanation = await namespace.store.explanation(member)
        assert explanation is not None
        assert {b.partition(":")[2] for b in explanation.boards if ":" in b} <= set(first)


async def test_with_the_cap_reached_in_a_race_every_community_board_is_exact(
    namespace: Namespace,
) -> None:
    """Ten communities from the first event on, cap 4, two workers: which four get boards
    depends on the order applies reach Redis (documented), but exactly four do, and each of
    them holds every one of its events (a community is admitted before its first event scores,
    or never)."""
    configure(namespace, worker=dataclasses.replace(namespace.settings.worker, max_communities=4))
    log = events(1500, [f"c{i}" for i in range(10)], seed=3)
    namespace.start_worker()
    namespace.start_worker()
    await namespace.wait(await namespace.replay(log, envelope=5))
    admitted = {b.partition(":")[2] for b in await community_boards(namespace)}
    assert len(admitted) == 4, admitted
    await check(namespace, log, compute(log, allowed_communities=admitted))
    s = stats(namespace)
    assert s["community_capped"] == community_counts(log, allowed_communities=admitted)["refused"]
    adds_up(s, len(log))


async def test_only_allowed_communities_get_boards(namespace: Namespace) -> None:
    configure(
        namespace,
        worker=dataclasses.replace(namespace.settings.worker, allowed_communities="physics,math"),
    )
    log = events(800, ["physics", "math", "art", "spam0", "spam1"], seed=4)
    namespace.start_worker()
    await namespace.wait(await namespace.replay(log, envelope=20))
    allowed = {"physics", "math"}
    expected = compute(log, allowed_communities=allowed)
    assert {b.partition(":")[2] for b in expected if ":" in b} == allowed
    await check(namespace, log, expected)
    for c in ("art", "spam0", "spam1"):
        assert await namespace.export(f"all:{c}") == []
    s = stats(namespace)
    want = community_counts(log, allowed_communities=allowed)
    assert want["refused"] > 100
    assert (s["community_refused"], s["community_capped"]) == (want["refused"], 0)
    adds_up(s, len(log))


async def _no_letters(letters: Sequence[DeadLetter]) -> None:
    raise AssertionError(f"unexpected dead letters: {letters}")


#: a target of partition 0 and one of partition 1 (of 4)
TARGETS = {
    p: next(f"t{i}" for i in range(100) if partition_for(f"t{i}".encode(), 4) == p) for p in (0, 1)
}


def raw(p: int, offset: int, n: int, communities: list[str]) -> Raw:
    """Message ``offset`` of partition ``p``: ``n`` shares for its target, by n actors."""
    es = [
        {
            "id": f"{p}-{offset}-{j}",
            "ts": T0 + j,
            "kind": "share",
            "actor": f"a{j}",
            "target": TARGETS[p],
            "communities": communities,
        }
        for j in range(n)
    ]
    return Raw(p, offset, orjson.dumps(es), float(T0 + 60))


async def test_a_worker_with_a_stale_copy_of_the_admitted_set_cannot_pass_the_cap(
    real_servers: Servers,
) -> None:
    """Two workers (processors on one Redis) each admit communities on their own partition; the
    second still holds the admitted set from before the first one's apply. Its apply is refused
    and re-planned: the cap holds, and its communities score on the base boards only."""
    rules = ScoringRules.load()
    store = Store.connect(real_servers.redis_url, f"cap-{uuid.uuid4().hex}", rules)
    settings = WorkerSettings(max_communities=2)
    a = Processor(store, rules, settings, _no_letters)
    b = Processor(store, rules, settings, _no_letters)
    try:
        await b.process([raw(1, 0, 1, [])])  # b loads its state: no community admitted yet
        await a.process([raw(0, 0, 3, ["c0", "c1"])])  # a admits two: the cap
        await b.process([raw(1, 1, 3, ["c2", "c3"])])  # b's copy says none are
        assert sorted(await store.client.smembers(store.key("communities"))) == ["c0", "c1"]
        assert not await store.board_known("all:c2")
        # a0 twice the same day (4 + 4 // 2), a1, a2
        assert await store.client.zscore(store.key("board", "all"), TARGETS[1]) == 14000
        stats = await store.stats()
        assert (stats["community_capped"], stats["applied"]) == (3, 7)
        assert b.metrics.conflicts.value() == 1
        # and a refusal against a copy that lags: a's copy is full, and so is the set
        await a.process([raw(0, 1, 1, ["c3"])])
        assert (await store.stats())["community_capped"] == 4
        assert a.metrics.conflicts.value() == 0
    finally:
        await store.close()


async def test_below_the_cap_workers_admitting_at_once_do_not_conflict(
    real_servers: Servers,
) -> None:
    """A stale copy is harmless while the cap has room: nothing is re-planned (a flood of new
    communities from many workers does not make them refuse each other's applies)."""
    rules = ScoringRules.load()
    store = Store.connect(real_servers.redis_url, f"cap-{uuid.uuid4().hex}", rules)
    settings = WorkerSettings(max_communities=4)
    a = Processor(store, rules, settings, _no_letters)
    b = Processor(store, rules, settings, _no_letters)
    try:
        await b.process([raw(1, 0, 1, [])])
        await a.process([raw(0, 0, 2, ["c0", "c1"])])
        await b.process([raw(1, 1, 2, ["c1", "c2", "c3"])])  # c1 is admitted already: room
        assert sorted(await store.client.smembers(store.key("communities"))) == [
            "c0",
            "c1",
            "c2",
            "c3",
        ]
        assert (a.metrics.conflicts.value(), b.metrics.conflicts.value()) == (0, 0)
        assert (await store.stats())["community_capped"] == 0
        # b's copy lacks c0, so it admits c4 into a full set: that apply alone is re-planned
        await b.process([raw(1, 2, 1, ["c4", "c2"])])
        assert b.metrics.conflicts.value() == 1
        assert (await store.stats())["community_capped"] == 1
        # c2 has every one of its events: a0 for the 2nd and 3rd time that day, a1
        c2 = await store.client.zscore(store.key("board", "all:c2"), TARGETS[1])
        assert c2 == 4000 // 2 + 4000 + 4000 // 3
    finally:
        await store.close()
