"""The exactness suite on a real 3-primary Redis Cluster (one replica each, ``kudos.cluster``), and
a fail-over in the middle of a stream: the primary holding the namespace is killed, its replica
is promoted, and every board ends exact (issue "Outgrow one Redis", part 3).

The pipeline tests of ``test_pipeline`` run here unchanged: this module's ``namespace`` fixture
puts them on the cluster (``KUDOS_REDIS_CLUSTER=true``, the URL of one node)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError

from broker.producer import wait_applied
from kudos.cluster import EmbeddedCluster, start_cluster
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from leaderboard.store.shards import connect_shards
from tests.cluster_fixture import cluster_fixture
from tests.conftest import Namespace, Servers, configure, make_settings
from tests.deliver import test_deliverer as deliverer
from tests.deliver.test_deliverer import hooks  # noqa: F401 (a fixture of a test used here)
from tests.eventually import eventually
from tests.oracle import read_edges
from tests.stream import test_perks as perks
from tests.stream import test_pipeline as single
from tests.stream import test_rebuild as rebuild
from tests.stream import test_scale_out as scale_out
from tests.stream import test_sharded_worker as sharded
from tests.stream.test_pipeline import HIGGS, check_boards

pytestmark = pytest.mark.integration

redis_cluster = cluster_fixture()
#: its own cluster: the fail-over leaves the one it kills a primary short
failover_cluster = cluster_fixture(name="failover_cluster")


def cluster_namespace(srv: Servers, cluster: EmbeddedCluster, home: Path) -> Namespace:
    settings = make_settings(srv, home, KUDOS_REDIS_URL=cluster.url, KUDOS_REDIS_CLUSTER="true")
    return Namespace.connect(settings, home)


@pytest_asyncio.fixture
async def namespace(
    real_servers: Servers, redis_cluster: EmbeddedCluster, tmp_path: Path
) -> AsyncIterator[Namespace]:
    ns = cluster_namespace(real_servers, redis_cluster, tmp_path)
    try:
        yield ns
    finally:
        ns.stop_workers()
        await ns.store.close()


test_higgs_envelopes_match_the_contract = single.test_higgs_envelopes_match_the_contract
test_higgs_single_event_messages_match_the_contract = (
    single.test_higgs_single_event_messages_match_the_contract
)
test_mathoverflow_two_workers_four_partitions_with_landmark_moves = (
    single.test_mathoverflow_two_workers_four_partitions_with_landmark_moves
)
test_sigkill_three_times_changes_no_score = single.test_sigkill_three_times_changes_no_score
test_resending_every_event_changes_nothing = single.test_resending_every_event_changes_nothing
# the web processes (reads, the live feed) with two workers and a SIGKILL
test_two_workers_two_webs_one_sigkill = scale_out.test_two_workers_two_webs_one_sigkill
# kudos rebuild: generations, the switch, the drop (a SCAN of the namespace's primary)
test_after_losing_redis_the_rebuild_restores_the_contract = (
    rebuild.test_after_losing_redis_the_rebuild_restores_the_contract
)


# perks and kudos deliver: outboxes, consumer groups, the fan-out transaction, webhooks
async def test_unlocks_happen_once_through_kills_and_a_full_resend(
    namespace: Namespace, tmp_path: Path
) -> None:
    """On one namespace (its winners' perks too). Three shards on the cluster's primaries are
    the sharded worker's test below; the perks' three-shard variant runs on one Redis (make
    test's time: it is the longest of these)."""
    await perks.test_unlocks_happen_once_through_kills_and_a_full_resend(namespace, tmp_path, 1)


test_end_to_end_from_events_to_the_example_receiver = (
    deliverer.test_end_to_end_from_events_to_the_example_receiver
)

# a namespace kept as three shards (KUDOS_REDIS_SHARDS=3): one slot each, on three primaries
test_a_worker_on_three_shards_makes_the_oracles_boards = (
    sharded.test_a_worker_on_three_shards_makes_the_oracles_boards
)


async def test_three_shards_are_three_slots_on_the_three_primaries(namespace: Namespace) -> None:
    configure(
        namespace,
        broker=dataclasses.replace(namespace.settings.broker, partitions=6),
        redis=dataclasses.replace(namespace.settings.redis, shards=3),
    )
    namespace.start_worker()
    produced = await namespace.replay(read_edges(HIGGS, "higgs", 2_000), envelope=100)
    shards = connect_shards(namespace.settings.redis, 6, ScoringRules.load())
    try:
        await asyncio.wait_for(wait_applied(shards, produced.end_offsets), 60)
        client = shards.stores[0].client
        await client.initialize()
        nodes = set()
        for store in shards.stores:
            node = client.get_node_from_key(store.key("fence"))
            assert await client.exists(store.key("fence"), store.key("board", "all")) == 2
            nodes.add(node.name)
        assert len(nodes) == 3, f"the shards are on {len(nodes)} primaries"
    finally:
        await shards.close()


async def test_the_namespace_is_one_slot_on_one_primary(
    namespace: Namespace, redis_cluster: EmbeddedCluster
) -> None:
    events = read_edges(HIGGS, "higgs", 2_000)
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=100))
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        keys = [
            k async for k in client.scan_iter(match="{" + namespace.settings.redis.prefix + "}:*")
        ]
        slots = {client.keyslot(k) for k in keys}
    finally:
        await client.aclose()
    assert len(keys) > 20, keys  # boards, buckets, explain hashes, fences, ...
    assert len(slots) == 1, f"the namespace's keys span {len(slots)} slots"


async def test_a_primary_killed_mid_stream_is_replaced_and_every_board_ends_exact(
    real_servers: Servers, failover_cluster: EmbeddedCluster, tmp_path: Path
) -> None:
    ns = cluster_namespace(real_servers, failover_cluster, tmp_path)
    await ns.store.client.initialize()
    holder = ns.store.client.get_node_from_key(ns.store.key("fence"))
    victim = failover_cluster.node_at(holder.port)
    heir = failover_cluster.replica_of(victim)
    # the workers start from a node that survives (a restarted one must find the cluster)
    other = next(p for p in failover_cluster.primaries() if p is not victim)
    configure(ns, redis=dataclasses.replace(ns.settings.redis, url=other.url))
    try:
        events = read_edges(HIGGS, "higgs", 12_000)
        ns.start_worker()
        producing = asyncio.create_task(ns.replay(events, envelope=20, rate=1000))

        async def applied() -> int:
            return sum((await ns.store.fences()).values())

        await eventually(applied, timeout=60, what="a first apply", details=ns.worker_logs)
        # Stop the replica and cut its link, so that the primary acknowledges applies it will
        # never get, then kill the primary: the replica, woken, is promoted with the older state
        # (asynchronous replication loses the last writes of a fail-over).
        # (the worker is stopped over the fail-over only so that the test sees the loss before
        # the worker repairs it)
        worker = ns.workers[0]
        # what the replica holds for sure: every apply until now (a fresh cluster's replica
        # may still be syncing when a fast worker's first applies land)
        replicated = await applied()
        assert int(victim.command("WAIT", 1, 10_000)) == 1, "the replica caught up"
        heir.proc.send_signal(signal.SIGSTOP)
        victim.command("CLIENT", "KILL", "TYPE", "replica")  # what it sends from now on is lost
        stalled_at = await applied()
        try:
            await eventually(
                lambda: _more(applied, stalled_at), timeout=30, what="applies the replica misses"
            )
            worker.send_signal(signal.SIGSTOP)
            acknowledged = await applied()
            failover_cluster.kill(victim)
        finally:
            heir.proc.send_signal(signal.SIGCONT)
        try:
            await asyncio.to_thread(failover_cluster.wait_ok, 30)
            assert heir in failover_cluster.primaries(), "the replica took the slots over"
            assert replicated <= await applied() < acknowledged, "the fail-over lost applies"
        finally:
            worker.send_signal(signal.SIGCONT)
        produced = await producing
        assert acknowledged < sum(produced.end_offsets.values()), "killed mid-stream"
        await ns.wait(produced, timeout=180)
        await check_boards(ns, events)
        stats = await ns.store.stats()
        assert stats["total"] == len(events), stats
        assert stats["duplicate"] == 0, stats
        assert ns.workers[0].poll() is None, "the worker lived through the fail-over"
        # (how the lost applies come back depends on where the loss falls: the batch in flight
        # is retried whole, older batches' messages are re-read from the log behind the fence)
    finally:
        ns.stop_workers()
        await ns.store.close()


async def _more(count: Callable[[], Awaitable[int]], than: int) -> bool:
    return await count() > than


async def test_a_client_of_the_wrong_kind_is_told_what_to_set(
    namespace: Namespace, real_servers: Servers
) -> None:
    plain = {"KUDOS_REDIS_CLUSTER": "false"}
    out = rebuild.kudos(namespace, "board", "all", **plain)
    assert out.returncode == 2, out
    assert "set KUDOS_REDIS_CLUSTER=true" in out.stderr and "Traceback" not in out.stderr
    single = {"KUDOS_REDIS_URL": real_servers.redis_url}
    out = rebuild.kudos(namespace, "board", "all", **single)
    assert out.returncode == 2, out
    assert "unset KUDOS_REDIS_CLUSTER" in out.stderr and "Traceback" not in out.stderr


async def test_a_cluster_outage_is_a_connection_error_and_transactions_are_not_replayed(
    tmp_path: Path,
) -> None:
    """Every caller retries an unreachable Redis on ConnectionError; redis-py's cluster client
    raises its own RedisClusterException when no node answers. And a transaction must not be
    re-sent by the client after a connection error (its WATCH would be gone)."""
    cluster = start_cluster(3, tmp_path / "outage", replicas=0)
    store = Store.connect(cluster.url, "outage", ScoringRules.load(), cluster=True)
    try:
        assert await store.fences() == {}
        # /healthz's check asks the primary serving the namespace, not any node
        await store.client.initialize()
        holder = cluster.node_at(store.client.get_node_from_key(store.key("fence")).port)
        others = [n for n in cluster.nodes() if n is not holder]
        cluster.kill(holder)
        with pytest.raises(RedisConnectionError):
            await store.ping()
        for node in others:
            cluster.kill(node)
        pipe = store.client.pipeline(transaction=True)
        assert pipe._execution_strategy._retry._retries == 0
        cluster.stop()
        with pytest.raises(RedisConnectionError):
            await store.fences()
        with pytest.raises(RedisConnectionError):
            await store.stats()
    finally:
        cluster.stop()
        with contextlib.suppress(Exception):
            await store.close()
