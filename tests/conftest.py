"""Shared fixtures: real Redis (Valkey) and a real Kafka-protocol broker (Tansu), started once per
session on free ports, and a per-test namespace (own topic, consumer group and Redis prefix) so tests
never see each other's data."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import pytest_asyncio

from broker.producer import Produced, produce, wait_applied
from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings, settings_env
from leaderboard.store import Store
from leaderboard.store.shards import Shards, connect_shards

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_counter = itertools.count()


@dataclass(frozen=True)
class Servers:
    redis_port: int
    broker_port: int
    workdir: Path

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def broker_url(self) -> str:
        return f"kafka://127.0.0.1:{self.broker_port}"


@pytest.fixture(scope="session")
def real_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    workdir = tmp_path_factory.mktemp("servers")
    rport, bport = servers.free_port(), servers.free_port()
    redis = servers.start_redis(rport, workdir / "redis")
    broker = servers.start_broker(bport, workdir / "broker")
    try:
        yield Servers(rport, bport, workdir)
    finally:
        servers.stop(broker)
        servers.stop(redis)


@dataclass
class Namespace:
    """One isolated Kudos deployment on the shared servers, with worker processes it controls."""

    settings: Settings
    home: Path
    #: the namespace's Redis view, connected for the whole test
    store: Store
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def connect(cls, settings: Settings, home: Path) -> Namespace:
        """A namespace on ``settings`` with its store connected; ``store.close()`` when done."""
        store = Store.connect(
            settings.redis.url,
            settings.redis.prefix,
            settings.periods.apply(ScoringRules.load()),
            cluster=settings.redis.cluster,
        )
        return cls(settings, home, store)

    def env(self) -> dict[str, str]:
        return {**os.environ, **settings_env(self.settings)}

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        proc = servers.spawn(
            [sys.executable, "-m", "kudos", "worker", "--loglevel", "info"],
            self.home / f"worker-{n}.log",
            env=self.env(),
        )
        self.workers.append(proc)
        return proc

    def kill_worker(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_workers(self) -> None:
        for p in self.workers:
            servers.stop(p, timeout=5)

    def worker_logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{servers.tail(p, 40)}" for p in sorted(self.home.glob("worker-*.log"))
        )

    async def replay(
        self, items: list[object], envelope: int = 1, rate: float | None = None
    ) -> Produced:
        return await produce(self.settings, items, envelope=envelope, rate=rate)  # type: ignore[arg-type]

    async def wait(self, produced: Produced, timeout: float = 120.0) -> None:
        """Until the workers applied everything ``produced`` (on every shard, when the
        namespace is kept as shards)."""
        redis = self.settings.redis
        target: Store | Shards = self.store
        if redis.shards > 1:
            target = connect_shards(redis, self.settings.broker.partitions, self.store.rules)
        try:
            await asyncio.wait_for(wait_applied(target, produced.end_offsets), timeout)
        except TimeoutError:
            raise AssertionError(
                f"events not applied within {timeout} s\n{self.worker_logs()}"
            ) from None
        finally:
            if target is not self.store:
                await target.close()

    async def export(self, board: str) -> list[tuple[int, str, str]]:
        return [row async for row in self.store.export(board)]


def make_settings(srv: Servers, home: Path, **env: str) -> Settings:
    n = next(_counter)
    tag = f"t{os.getpid()}x{n}x{int(time.time() * 1000) % 100000}"
    base = {
        "KUDOS_HOME": str(home),
        "KUDOS_REDIS_URL": srv.redis_url,
        "KUDOS_REDIS_PREFIX": f"kudos-{tag}",
        "KUDOS_BROKER_URL": srv.broker_url,
        "KUDOS_BROKER_TOPIC": f"interactions-{tag}",
        "KUDOS_BROKER_DLQ_TOPIC": f"interactions-{tag}.dlq",
        "KUDOS_BROKER_PERKS_TOPIC": f"perk-unlocks-{tag}",
        "KUDOS_BROKER_ALERTS_TOPIC": f"bait-alerts-{tag}",
        "KUDOS_WORKER_APP_ID": f"kudos-{tag}",
        "KUDOS_WEB_PORT": str(servers.free_port()),
        # Tansu 0.6 holds a new member's JoinGroup for half its session timeout (measured: 10 s
        # → 5.0 s, 6 s → 3.0 s, 3 s → 2.0 s): with the default, every worker start in the suite
        # waited 5 s to join its group, and a killed worker's partitions moved after 10 s. 4 s
        # is still four heartbeats (Faust sends them from its consumer thread, not the loop the
        # batches run on).
        "KUDOS_WORKER_SESSION_TIMEOUT_S": "4",
        "KUDOS_WORKER_REBALANCE_TIMEOUT_S": "4",
    }
    base.update(env)
    return load_settings(base)


@pytest_asyncio.fixture
async def namespace(real_servers: Servers, tmp_path: Path) -> AsyncIterator[Namespace]:
    ns = Namespace.connect(make_settings(real_servers, tmp_path), tmp_path)
    try:
        yield ns
    finally:
        ns.stop_workers()
        await ns.store.close()


def configure(ns: Namespace, **overrides: object) -> None:
    """Change settings of a namespace before its workers start (e.g. worker=replace(...))."""
    ns.settings = replace(ns.settings, **overrides)  # type: ignore[arg-type]
