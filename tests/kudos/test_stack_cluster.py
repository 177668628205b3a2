"""`kudos up --redis-cluster N`: the embedded stack on an embedded Redis Cluster (kudos/stack.py).

Real processes throughout: `kudos up --background` starts its own Tansu, six Valkey nodes, the
worker, web and deliverer on free ports in a temporary KUDOS_HOME; `kudos down` must leave none.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import urllib.request
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis.cluster import RedisCluster
from redis.crc import key_slot

from kudos import servers
from kudos.cluster import start_cluster
from tests.conftest import DATA
from tests.eventually import eventually_sync

pytestmark = pytest.mark.integration

HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
PREFIX = "kudos-stack"


class Stack:
    """The environment of one `kudos up` in its own KUDOS_HOME, every port free."""

    def __init__(self, tmp_path: Path) -> None:
        self.home = tmp_path / "home"
        self.redis_port = servers.free_port()
        self.web_port = servers.free_port()
        self.broker_port = servers.free_port()
        self.env = {
            **os.environ,
            "KUDOS_HOME": str(self.home),
            "KUDOS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "KUDOS_REDIS_PREFIX": PREFIX,
            "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{self.broker_port}",
            "KUDOS_WEB_PORT": str(self.web_port),
        }
        self.env.pop("KUDOS_REDIS_CLUSTER", None)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "kudos", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def state(self) -> dict[str, Any]:
        info: dict[str, Any] = orjson.loads((self.home / "stack.json").read_bytes())
        return info

    def logs(self) -> str:
        return "\n".join(
            f"--- {p}\n{servers.tail(p, 30)}" for p in sorted((self.home / "logs").glob("*.log"))
        )


def _gone(stamp: str) -> bool:
    """The process of a stack.json stamp ("pid start-time") has exited (or is a zombie)."""
    try:
        return "zombie" in Path(f"/proc/{stamp.split()[0]}/status").read_text().lower()
    except FileNotFoundError:
        return True


def _assert_all_gone(stamps: dict[str, str], ports: list[int]) -> None:
    eventually_sync(
        lambda: all(_gone(s) for s in stamps.values()),
        what="every process of the stack gone",
        details=lambda: f"still running: {[n for n, s in stamps.items() if not _gone(s)]}",
    )
    taken = [p for p in ports if servers.port_open("127.0.0.1", p)]
    assert not taken, f"ports still open after the stack stopped: {taken}"


def _processes(info: dict[str, Any]) -> dict[str, str]:
    out = {name: str(stamp) for name, stamp in info["pids"].items()}
    out |= {f"node {n['port']}": n["pid"] for n in info["redis"]["nodes"]}
    out["supervisor"] = info["supervisor"]
    return out


def _higgs_lines(tmp_path: Path, n: int) -> Path:
    """The first ``n`` lines of the real Higgs stream, as a file for ``kudos replay``."""
    events = tmp_path / f"higgs-{n}.txt"
    with gzip.open(HIGGS, "rb") as src:
        events.write_bytes(b"".join(islice(src, n)))
    return events


def _ports(stack: Stack, info: dict[str, Any]) -> list[int]:
    nodes = info["redis"]["nodes"]
    return [stack.web_port, stack.broker_port, *(n["port"] for n in nodes)] + [
        n["bus_port"] for n in nodes
    ]


def test_up_with_a_redis_cluster_serves_boards_from_it_and_down_leaves_nothing(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    events = _higgs_lines(tmp_path, 400)

    up = stack.run("up", "--redis-cluster", "3", "--background")
    assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
    info = stack.state()
    try:
        nodes = info["redis"]["nodes"]
        assert info["redis"]["cluster"] and info["redis"]["embedded"]
        assert len(nodes) == 6 and "redis" not in info["pids"], "six nodes instead of one Redis"
        assert nodes[0]["port"] == stack.redis_port, "the first primary on KUDOS_REDIS_URL's port"
        workdir = stack.home / "redis-cluster"
        assert Path(info["redis"]["dir"]) == workdir
        assert sorted(d.name for d in workdir.iterdir()) == sorted(
            f"node-{n['port']}" for n in nodes
        )
        # what `kudos up` shows of the stack names the cluster and how to reach it
        assert "Redis Cluster: 3 primaries + 1 replica each, 6 nodes" in up.stdout
        assert f"KUDOS_REDIS_CLUSTER=true KUDOS_REDIS_URL={stack.env['KUDOS_REDIS_URL']}" in (
            up.stdout
        )
        again = stack.run("up", "--redis-cluster", "3", "--background")
        assert again.returncode == 2 and "already running" in again.stderr
        assert "Redis Cluster" in again.stderr

        on_cluster = {"KUDOS_REDIS_CLUSTER": "true"}
        out = stack.run("replay", str(events), "--format", "higgs", "--wait", **on_cluster)
        assert out.returncode == 0, out.stdout + out.stderr + stack.logs()
        out = stack.run("board", "all", "--json", "--limit", "20", **on_cluster)
        assert out.returncode == 0, out.stderr
        board = orjson.loads(out.stdout)
        assert board["members"] > 50 and len(board["entries"]) == 20, board

        # the web process reads the same boards from the cluster
        url = f"http://127.0.0.1:{stack.web_port}/api/boards/all?limit=20"
        with urllib.request.urlopen(url, timeout=5) as r:
            page = orjson.loads(r.read())
        assert [e["member"] for e in page["entries"]] == [e["member"] for e in board["entries"]]

        # the worker wrote the namespace to the cluster, under its hash tag: one slot
        client = RedisCluster.from_url(info["redis"]["url"], decode_responses=True)
        try:
            keys = list(client.scan_iter(match="{" + PREFIX + "}:*"))
            untagged = list(client.scan_iter(match=PREFIX + ":*"))
            slots = {key_slot(k.encode()) for k in keys}
        finally:
            client.close()
        assert len(keys) > 20 and not untagged, (len(keys), untagged[:5])
        assert len(slots) == 1, f"the namespace spans {len(slots)} slots"
    finally:
        down = stack.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert "6 Redis cluster nodes" in down.stdout
    _assert_all_gone(_processes(info), _ports(stack, info))
    assert not (stack.home / "up.pid").exists() and not (stack.home / "stack.json").exists()


def test_a_killed_supervisor_takes_its_cluster_nodes_with_it(tmp_path: Path) -> None:
    """SIGKILL of the supervisor (no cleanup of its own): PR_SET_PDEATHSIG stops every node, and
    `kudos down` afterwards finds nothing left to do but the stale files."""
    stack = Stack(tmp_path)
    up = stack.run("up", "--redis-cluster", "3", "--background")
    assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
    info = stack.state()
    try:
        os.kill(int(info["supervisor"].split()[0]), signal.SIGKILL)
        _assert_all_gone(_processes(info), _ports(stack, info))
    finally:
        down = stack.run("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not (stack.home / "stack.json").exists()


@pytest.mark.parametrize("primaries", ["1", "2"])
def test_fewer_than_three_primaries_are_refused_with_the_reason(
    tmp_path: Path, primaries: str
) -> None:
    stack = Stack(tmp_path)
    out = stack.run("up", "--redis-cluster", primaries)
    assert out.returncode == 2
    assert "at least 3 primaries" in out.stderr and "majority" in out.stderr, out.stderr
    assert not servers.port_open("127.0.0.1", stack.redis_port)
    assert not (stack.home / "up.pid").exists()


def test_kudos_redis_cluster_without_the_flag_expects_a_running_cluster(tmp_path: Path) -> None:
    """KUDOS_REDIS_CLUSTER=true alone: `kudos up` starts no Redis of its own, and says so when
    nothing answers at KUDOS_REDIS_URL, before it starts anything else."""
    stack = Stack(tmp_path)
    out = stack.run("up", KUDOS_REDIS_CLUSTER="true")
    assert out.returncode == 2
    assert "expects a running Redis Cluster" in out.stderr, out.stderr
    assert "kudos up --redis-cluster 3" in out.stderr
    assert not servers.port_open("127.0.0.1", stack.redis_port), "no single Redis started"
    assert not servers.port_open("127.0.0.1", stack.broker_port), "nothing else started either"


def test_kudos_redis_cluster_without_the_flag_uses_the_running_cluster_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    stack = Stack(tmp_path)
    events = _higgs_lines(tmp_path, 100)
    with start_cluster(3, tmp_path / "theirs") as cluster:
        on_cluster = {"KUDOS_REDIS_CLUSTER": "true", "KUDOS_REDIS_URL": cluster.url}
        up = stack.run("up", "--background", **on_cluster)
        assert up.returncode == 0, up.stdout + up.stderr + stack.logs()
        try:
            info = stack.state()
            assert info["redis"] == {"cluster": True, "embedded": False, "url": cluster.url}
            assert "redis" not in info["pids"] and f"Redis Cluster at {cluster.url}" in up.stdout
            out = stack.run("replay", str(events), "--format", "higgs", "--wait", **on_cluster)
            assert out.returncode == 0, out.stdout + out.stderr + stack.logs()
            out = stack.run("board", "all", "--json", **on_cluster)
            assert out.returncode == 0 and orjson.loads(out.stdout)["members"] > 0, out.stderr
        finally:
            down = stack.run("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert all(node.alive for node in cluster.nodes()), "`kudos down` stops only its own"
