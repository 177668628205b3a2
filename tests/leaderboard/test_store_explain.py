"""Explain reads only the member's own community boards (issue 12, finding 4), against real Redis
through the worker's processor (no Kafka): the same explanation as reading every community board,
at a cost that does not grow with the namespace's boards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest
import pytest_asyncio

from leaderboard.explain import Place
from leaderboard.plan import DeadLetter
from leaderboard.ranking import percentile
from leaderboard.scoring import ScoringRules
from leaderboard.settings import WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw
from tests.conftest import Servers

pytestmark = pytest.mark.integration
RULES = ScoringRules.load()
T0 = 1_700_000_000
OTHERS = 300  # communities of other members: 1,500 community boards


async def _no_letters(letters: Sequence[DeadLetter]) -> None:
    raise AssertionError(f"unexpected dead letters: {letters}")


@pytest_asyncio.fixture
async def store(real_servers: Servers) -> AsyncIterator[Store]:
    s = Store.connect(real_servers.redis_url, f"explain-{uuid.uuid4().hex}", RULES)
    yield s
    await s.close()


def _log() -> list[dict[str, Any]]:
    log: list[dict[str, Any]] = []
    for i in range(OTHERS):
        for j in range(2):
            log.append(
                {
                    "id": f"o{i}-{j}",
                    "ts": T0 + i,
                    "kind": "share",
                    "actor": f"fan{j}",
                    "target": f"m{i % 50}",
                    "communities": [f"c{i:03d}"],
                }
            )
    mine = [
        ("share", ["physics"]),
        ("like", ["physics", "math"]),
        ("comment", ["math"]),
        ("share", []),
        ("follow", ["physics"]),
    ]
    for n, (kind, communities) in enumerate(mine):
        e = {"id": f"a{n}", "ts": T0 + OTHERS + n, "kind": kind, "actor": f"fan{n % 2}"}
        log.append({**e, "target": "alice", "communities": communities})
        # rivals on alice's boards, so ranks and sizes are not trivial
        log.append({**e, "id": f"r{n}", "target": f"rival{n}", "actor": "fan9"})
    return log


async def _apply(store: Store, log: list[dict[str, Any]]) -> None:
    proc = Processor(store, RULES, WorkerSettings(), _no_letters)
    raws = [
        Raw(0, off, orjson.dumps(log[s : s + 100]), float(T0 + 10**6))
        for off, s in enumerate(range(0, len(log), 100))
    ]
    await proc.process(raws)


async def _every_community_place(store: Store, member: str) -> dict[str, Place]:
    """The member's place on every community board of the namespace, by reading them all (what
    explain did before)."""
    wm, lm = await store.clock()
    out: dict[str, Place] = {}
    for b in sorted(await store.client.smembers(store.key("boards"))):
        if ":" not in b:
            continue
        key = store.key("board", b)
        score = await store.client.zscore(key, member)
        if score is None:
            continue
        rank = await store.client.zcount(key, f"({score!r}", "+inf") + 1
        size = await store.client.zcard(key)
        points = store._to_points(b, score, (wm, lm))
        out[b] = Place(rank, points, size, percentile(rank, size))
    return out


async def _zscores(store: Store) -> int:
    stats: dict[str, Any] = await store.client.info("commandstats")
    return int(stats.get("cmdstat_zscore", {}).get("calls", 0))


async def test_explain_reads_only_the_members_communities(store: Store) -> None:
    log = _log()
    await _apply(store, log)
    assert await store.client.scard(store.key("boards")) > OTHERS * 5

    before = await _zscores(store)
    explanation = await store.explanation("alice")
    zscores = await _zscores(store) - before

    assert explanation is not None
    # per kind, as before: points, counts and diminishing returns (fan0 → alice k=1,2,3: share
    # 4, comment 2 // 2 = 1, follow 3 // 3 = 1; fan1 → alice: like 1, share 4 // 2 = 2)
    kinds = {k: (line.count, line.points_mp) for k, line in explanation.kinds.items()}
    assert kinds == {
        "share": (2, 6000),
        "like": (1, 1000),
        "comment": (1, 1000),
        "follow": (1, 1000),
    }
    community = {b: p for b, p in explanation.boards.items() if ":" in b}
    assert community == await _every_community_place(store, "alice")
    assert {b.partition(":")[2] for b in community} == {"physics", "math"}
    assert list(explanation.boards)[:8] == list(RULES.base_boards)
    # the base boards, each live bucket of the hourly trend (168 of 7d), and the base boards of
    # each of alice's two communities (eight each): not the boards of the others'
    window = RULES.window("7d")
    assert window is not None
    assert zscores == len(RULES.base_boards) + window.buckets + len(RULES.base_boards) * 2
