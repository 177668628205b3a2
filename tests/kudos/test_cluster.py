"""The embedded Redis Cluster (kudos/cluster.py): real Redis/Valkey processes on free ports.

One cluster (3 primaries, 1 replica each) serves the module; the fail-over test kills one of its
primaries, so it runs last among the tests that use it.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis
from redis.asyncio.cluster import RedisCluster

from kudos import servers
from kudos.cluster import SLOTS, EmbeddedCluster, slot_ranges, start_cluster
from leaderboard.errors import ConfigError, StackError
from tests.cluster_fixture import cluster_fixture

redis_cluster = cluster_fixture(primaries=3, replicas=1)

KEYS = [f"kudos-test:{i}" for i in range(200)]


def _keys_on(node_url: str) -> set[str]:
    with redis.Redis.from_url(node_url, decode_responses=True) as r:
        return set(r.scan_iter(match="kudos-test:*"))


def test_slot_ranges_cover_every_slot_once_and_evenly() -> None:
    for primaries in (1, 3, 5, 7):
        ranges = slot_ranges(primaries)
        covered = [s for first, last in ranges for s in range(first, last + 1)]
        assert covered == list(range(SLOTS)), primaries
        sizes = {last - first + 1 for first, last in ranges}
        assert max(sizes) - min(sizes) <= 1, (primaries, sizes)


def test_three_primaries_each_with_a_linked_replica_and_every_slot_served(
    redis_cluster: EmbeddedCluster,
) -> None:
    assert len(redis_cluster.nodes()) == 6
    primaries = redis_cluster.primaries()
    assert len(primaries) == 3
    for node in redis_cluster.nodes():
        info = node.cluster_info()
        assert info["cluster_state"] == "ok", node
        assert info["cluster_slots_ok"] == str(SLOTS), node
        assert info["cluster_known_nodes"] == "6", node
    followers = set()
    for primary in primaries:
        replica = redis_cluster.replica_of(primary)
        repl = replica.info("replication")
        assert repl["role"] == "slave" and repl["master_link_status"] == "up", replica
        assert int(repl["master_port"]) == primary.port, replica
        followers.add(replica.port)
    assert len(followers) == 3, "one replica per primary, none shared"


async def test_keys_written_through_a_cluster_client_land_on_every_primary_and_read_back(
    redis_cluster: EmbeddedCluster,
) -> None:
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        for key in KEYS:
            await client.set(key, f"v-{key}")
        assert [await client.get(key) for key in KEYS] == [f"v-{key}" for key in KEYS]
    finally:
        await client.aclose()
    # each primary holds the keys of its own slots, and the primaries hold them all between them
    held = [_keys_on(p.url) for p in redis_cluster.primaries()]
    assert all(held), f"a primary got no key: {[len(h) for h in held]}"
    assert sum(map(len, held)) == len(KEYS) and set().union(*held) == set(KEYS)


async def test_a_killed_primary_is_replaced_by_its_replica_with_what_it_had_replicated(
    redis_cluster: EmbeddedCluster,
) -> None:
    victim = redis_cluster.primaries()[0]
    heir = redis_cluster.replica_of(victim)
    mine = sorted(_keys_on(victim.url))
    assert mine, "the test before this one wrote keys on every primary"
    with redis.Redis.from_url(victim.url, decode_responses=True) as r:
        pipe = r.pipeline(transaction=False)  # one connection: WAIT counts its writes
        pipe.set(mine[0], "the last write")
        pipe.execute_command("WAIT", 1, 5000)
        _, acked = pipe.execute()
    assert acked == 1, "the replica acknowledged everything the primary had"

    redis_cluster.kill(victim)
    redis_cluster.wait_ok(timeout=20)

    assert heir.info("replication")["role"] == "master"
    now = redis_cluster.primaries()
    assert heir in now and victim not in now and len(now) == 3
    assert redis_cluster.url != victim.url
    client = RedisCluster.from_url(redis_cluster.url, decode_responses=True)
    try:
        expected = {key: f"v-{key}" for key in KEYS} | {mine[0]: "the last write"}
        assert {key: await client.get(key) for key in KEYS} == expected
        await client.set(mine[1], "after the fail-over")  # the victim's slots take writes again
    finally:
        await client.aclose()
    assert mine[1] in _keys_on(heir.url)


def test_stop_leaves_no_process_and_frees_every_port(tmp_path: Path) -> None:
    cluster = start_cluster(3, tmp_path, replicas=0)
    nodes = cluster.nodes()
    assert all(n.alive for n in nodes)
    cluster.kill(nodes[0])  # a crashed node among them changes nothing
    cluster.stop()
    for node in nodes:
        assert node.proc.poll() is not None, node
        assert not servers.port_open(node.host, node.port), node
        assert not servers.port_open(node.host, node.bus_port), node
    cluster.stop()  # twice is fine


def test_a_taken_port_is_named_and_nothing_is_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = [busy, servers.free_port(), servers.free_port()]
        with pytest.raises(StackError, match=f"127.0.0.1:{busy}.*already taken"):
            start_cluster(3, tmp_path, replicas=0, ports=ports)
    assert not list(tmp_path.glob("node-*")), "refused before any node started"


def test_ports_must_fit_the_node_count(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="6 nodes"):
        start_cluster(3, tmp_path, replicas=1, ports=[servers.free_port()] * 6)
