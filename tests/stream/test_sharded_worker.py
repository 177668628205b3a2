"""``kudos worker`` on a namespace kept as shards (KUDOS_REDIS_SHARDS=3 over 6 partitions), on
real servers: a Higgs slice in envelopes, a SIGKILL and a restart mid-stream, then single events;
every base board read back through ``kudos export`` (the merge of the shards' slices) equals the
independent oracle, ``kudos member`` ranks on the merged boards, the counters add up, and a
single event on another partition than its target's is dead-lettered, not split across shards.
A process with another shard count refuses the namespace."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from broker.producer import partition_for, wait_applied
from broker.topics import bootstrap
from leaderboard.scoring import ScoringRules
from leaderboard.settings import ScoringSettings
from leaderboard.store.shards import connect_shards
from stream.app import EXIT_CONFIG
from tests.conftest import DATA, Namespace, configure
from tests.eventually import eventually
from tests.kudos.test_cli import kudos
from tests.oracle import assert_board_equal, compute, read_edges
from tests.stream.test_bad_input import read_dlq
from tests.stream.test_rebuild import NEW_WEIGHTS, new_scoring

pytestmark = pytest.mark.integration

HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
BOARDS = ("all", "1h", "24h", "7d", "decayed")
PARTITIONS = 6
SHARDS = 3


def export(ns: Namespace, board: str) -> list[tuple[int, str, str]]:
    out = kudos(ns, "export", board)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()[1:]
    return [(int(r), m, s) for r, m, s in (line.rsplit(",", 2) for line in lines)]


async def test_a_worker_on_three_shards_makes_the_oracles_boards(namespace: Namespace) -> None:
    ns = namespace
    events = read_edges(HIGGS, "higgs", 9_000)
    configure(
        ns,
        bait=dataclasses.replace(ns.settings.bait, enabled=False),  # (the oracle has no throttle)
        broker=dataclasses.replace(ns.settings.broker, partitions=PARTITIONS),
        redis=dataclasses.replace(ns.settings.redis, shards=SHARDS),
    )
    shards = connect_shards(ns.settings.redis, PARTITIONS, ScoringRules.load())
    try:
        worker = ns.start_worker()
        producing = asyncio.create_task(
            ns.replay(list[object](events[:7_500]), envelope=50, rate=1000)
        )

        async def some_applied() -> bool:
            return (await shards.stats()).get("applied", 0) > 0

        await eventually(
            some_applied, timeout=60, what="the worker applies", details=ns.worker_logs
        )
        ns.kill_worker(worker)
        assert not producing.done(), "the kill must land while events are still produced"
        ns.start_worker()
        first = await producing
        singles = await ns.replay(list[object](events[7_500:]), envelope=1)
        # a single event keyed to another partition than its target's
        target = events[0]["target"]
        wrong = (partition_for(target.encode(), PARTITIONS) + 1) % PARTITIONS
        stray = {"id": "stray", "ts": events[-1]["ts"], "kind": "share", "actor": "x"}
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap(ns.settings))
        await producer.start()
        try:
            sent = await producer.send_and_wait(
                ns.settings.broker.topic,
                orjson.dumps({**stray, "target": target}),
                key=b"not-the-target",
                partition=wrong,
            )
        finally:
            await producer.stop()
        ends = dict(first.end_offsets)
        for p, o in [*singles.end_offsets.items(), (wrong, sent.offset)]:
            ends[p] = max(ends.get(p, -1), o)
        await asyncio.wait_for(wait_applied(shards, ends), 120)

        expected = compute(events)
        for board in BOARDS:
            assert_board_equal(board, export(ns, board), expected[board])
        stats = await shards.stats()
        counted = sum(stats.get(k, 0) for k in ("applied", "ignored", "duplicate", "invalid"))
        assert counted == len(events) + 1, stats
        assert stats["invalid"] == 1
        (value, headers), *_ = await read_dlq(ns, 1)
        assert headers["kudos-error"] == b"wrong_partition"
        assert orjson.loads(value)["id"] == "stray"

        # members' ranks on the merged boards, as the oracle ranks them: the top, one in the
        # middle, and one in the biggest tie (every member on another shard counts above)
        on_all = expected["all"]
        by_score = sorted(on_all, key=lambda m: -on_all[m])
        tie = max(set(on_all.values()), key=lambda v: list(on_all.values()).count(v))
        tied = next(m for m in by_score if on_all[m] == tie)
        for member in (by_score[0], by_score[len(by_score) // 2], tied):
            out = kudos(ns, "member", member, "--json")
            assert out.returncode == 0, out.stderr
            places = orjson.loads(out.stdout)["boards"]
            for board in ("all", "7d", "24h"):
                scores = expected[board]
                if member not in scores:
                    assert board not in places
                    continue
                mine = scores[member]
                assert places[board]["rank"] == 1 + sum(1 for v in scores.values() if v > mine)
                assert places[board]["members"] == len(scores)
                assert Decimal(str(places[board]["score"])) * 1000 == mine
        # each shard holds its own partitions only; the base namespace holds just the count
        for k, store in enumerate(shards.stores):
            assert set(await store.fences()) == {p for p in ends if p % SHARDS == k}
        assert await ns.store.shard_count() == SHARDS
        assert await ns.store.fences() == {}

        # the rebuild on shards: one shard's state is lost (its primary's disk, say); every
        # shard fills a new generation from the log and switches, and the boards are whole again
        ns.stop_workers()
        lost = await shards.stores[1].drop_namespace()
        assert lost > 0
        assert len(export(ns, "all")) < len(expected["all"])
        out = kudos(ns, "rebuild", "--yes")
        assert out.returncode == 0, out.stderr
        assert "switched in" in out.stderr
        for board in BOARDS:
            assert_board_equal(board, export(ns, board), expected[board])
        stats = await shards.stats()
        assert sum(stats.get(k, 0) for k in ("applied", "ignored", "duplicate", "invalid")) == (
            len(events) + 1
        )
        for k, store in enumerate(shards.stores):
            # (each shard on its new generation, the old one dropped; its fences its own)
            live = await store.pointer()
            assert live > 0 and await store.generations() == {live}
            assert set(await store.fences()) == {p for p in ends if p % SHARDS == k}
        # and the workers carry on from the rebuilt fences
        ns.start_worker()
        more = [dict(e, id=f"{e['id']}-again", ts=e["ts"] + 1) for e in events[-300:]]
        again = await ns.replay(list[object](more), envelope=50)
        await asyncio.wait_for(wait_applied(shards, again.end_offsets), 120)
        expected = compute([*events, *more])
        for board in ("all", "7d"):
            assert_board_equal(board, export(ns, board), expected[board])

        # a process with another shard count refuses the namespace
        ns.stop_workers()
        configure(ns, redis=dataclasses.replace(ns.settings.redis, shards=1))
        one = ns.start_worker()
        assert one.wait(timeout=60) == 78
        assert "kept as 3 shard(s)" in ns.worker_logs()
        out = kudos(ns, "board", "all")
        assert out.returncode == 2 and "KUDOS_REDIS_SHARDS=3" in out.stderr
        out = kudos(ns, "rebuild", "--yes")  # (the namespace says it is kept as shards)
        assert out.returncode == 2 and "KUDOS_REDIS_SHARDS=3" in out.stderr, out.stderr
    finally:
        await shards.close()


async def test_a_rebuild_on_three_shards_while_the_worker_applies(namespace: Namespace) -> None:
    """The rebuild reads the log while a live worker applies new events to every shard: every
    shard switches (some at a later round than others when their live fences moved on), and
    every board ends equal to the oracle of every event."""
    ns = namespace
    events = read_edges(HIGGS, "higgs", 12_000)
    configure(
        ns,
        bait=dataclasses.replace(ns.settings.bait, enabled=False),
        broker=dataclasses.replace(ns.settings.broker, partitions=PARTITIONS),
        redis=dataclasses.replace(ns.settings.redis, shards=SHARDS),
    )
    shards = connect_shards(ns.settings.redis, PARTITIONS, ScoringRules.load())
    try:
        ns.start_worker()
        first = await ns.replay(list[object](events[:3_000]), envelope=50)
        await asyncio.wait_for(wait_applied(shards, first.end_offsets), 120)
        rebuilt = asyncio.Event()
        sent = 3_000
        ends: dict[int, int] = {}

        async def keep_producing() -> None:
            # (small rounds until the rebuild has ended: it must meet new events at its end)
            nonlocal sent
            while not rebuilt.is_set():
                assert sent < len(events), "the rebuild outlasted the events to produce"
                more = await ns.replay(list[object](events[sent : sent + 100]), envelope=20)
                sent += 100
                for p, o in more.end_offsets.items():
                    ends[p] = max(ends.get(p, -1), o)
                await asyncio.sleep(0.1)

        producing = asyncio.create_task(keep_producing())
        try:
            out = await asyncio.to_thread(kudos, ns, "rebuild", "--yes")
        finally:
            rebuilt.set()
        await producing
        assert out.returncode == 0, out.stderr
        assert "switched in" in out.stderr
        assert sent > 3_000
        await asyncio.wait_for(wait_applied(shards, ends), 120)
        events = events[:sent]
        expected = compute(events)
        for board in BOARDS:
            assert_board_equal(board, export(ns, board), expected[board])
        # every shard and the namespace's own store (its community set) on the new generation
        for store in (*shards.stores, ns.store):
            live = await store.pointer()
            assert live > 0 and await store.generations() == {live}
        stats = await shards.stats()
        counted = sum(stats.get(k, 0) for k in ("applied", "ignored", "duplicate", "invalid"))
        assert counted == len(events), stats
    finally:
        await shards.close()


async def test_a_rebuild_on_shards_rescores_and_decides_the_community_cap_again(
    namespace: Namespace, tmp_path: Path
) -> None:
    """A rescoring on shards, under a lower community cap: every shard's boards follow the new
    scoring.toml; the community cap, decided in the namespace's own store, is decided again
    from the log in a generation of its own, so the namespace keeps the communities that came
    first in the log, as one namespace's rebuild does, and a dry run leaves the live set alone.
    A worker on the old rules then refuses the namespace; one on the new rules carries on."""
    ns = namespace
    configure(
        ns,
        bait=dataclasses.replace(ns.settings.bait, enabled=False),
        broker=dataclasses.replace(ns.settings.broker, partitions=PARTITIONS),
        redis=dataclasses.replace(ns.settings.redis, shards=SHARDS),
        worker=dataclasses.replace(ns.settings.worker, max_communities=3),
    )
    names = ["c1", "c2", "c3"]
    # every target has a c1 event, then a c2 one, then c3 ones: whatever the interleaving of
    # partitions and shards, c1 and c2 are the first two communities to score
    log = [
        {
            "id": f"c{i}", "ts": 1_341_100_800 + 30 * i, "kind": "share", "actor": f"a{i % 13}",
            "target": f"t{i % 40}", "communities": [names[min(i // 40, 2)]],
        }
        for i in range(400)
    ]  # fmt: skip
    shards = connect_shards(ns.settings.redis, PARTITIONS, ScoringRules.load())
    try:
        ns.start_worker()
        await ns.wait(await ns.replay(list[object](log), envelope=20))
        assert await ns.store.communities() == set(names)
        assert export(ns, "all:c3") != []
        ns.stop_workers()
        configure(ns, worker=dataclasses.replace(ns.settings.worker, max_communities=2))
        scoring = new_scoring(tmp_path)
        dry = kudos(ns, "rebuild", "--scoring", str(scoring), "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert await ns.store.communities() == set(names)
        out = kudos(ns, "rebuild", "--scoring", str(scoring), "--yes")
        assert out.returncode == 0, out.stderr
        expected = compute(log, NEW_WEIGHTS, max_communities=2)
        assert {b.partition(":")[2] for b in expected if ":" in b} == {"c1", "c2"}
        for board in ("all", "7d", "all:c1", "7d:c2"):
            assert_board_equal(board, export(ns, board), expected[board])
        assert export(ns, "all:c3") == []
        assert await ns.store.communities() == {"c1", "c2"}
        # every shard is on the new rules: a worker on the old ones refuses the namespace
        old = ns.start_worker()
        assert await asyncio.to_thread(old.wait, 60) == EXIT_CONFIG
        configure(ns, scoring=ScoringSettings(path=str(scoring)))
        ns.start_worker()
        more = [dict(e, id=f"{e['id']}-more", ts=e["ts"] + 40_000) for e in log[:80]]
        await ns.wait(await ns.replay(list[object](more), envelope=20))
        expected = compute([*log, *more], NEW_WEIGHTS, max_communities=2)
        for board in ("all", "all:c1"):
            assert_board_equal(board, export(ns, board), expected[board])
    finally:
        await shards.close()
