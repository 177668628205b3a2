"""``kudos up`` / ``kudos down``: the embedded stack as a small process supervisor.

``up`` starts Redis (Valkey) and the Tansu broker when their URLs point at this machine, creates the
topics, then runs one worker, the web process and the perk deliverer (``kudos deliver``), restarting
any of them if it dies. Ctrl-C or SIGTERM
stops everything in reverse order; every child also gets SIGTERM if the supervisor itself is killed
(PR_SET_PDEATHSIG), so nothing is orphaned. State lives in ``KUDOS_HOME``: ``up.pid``, ``stack.json``
and one log per process under ``logs/``.

Redis comes in three shapes (``stack.json`` records which, under ``"redis"``):

- ``kudos up --redis-cluster N`` starts an embedded Redis Cluster instead of the single Redis:
  N primaries with one replica each (:func:`kudos.cluster.start_cluster`), the first primary on
  the port of ``KUDOS_REDIS_URL`` (so that URL, with ``KUDOS_REDIS_CLUSTER=true``, reaches it from
  any shell) and the other nodes on free ports, each in ``KUDOS_HOME/redis-cluster/node-<port>``.
  The worker, web and deliverer get ``KUDOS_REDIS_URL`` = the first node's URL and
  ``KUDOS_REDIS_CLUSTER=true``. A node that dies is reported, not restarted: its replica takes
  over its slots (the point of a cluster); the stack stops only when no node is left.
- ``KUDOS_REDIS_CLUSTER=true`` without ``--redis-cluster``: a cluster that runs already is expected
  at ``KUDOS_REDIS_URL`` (checked before anything starts); ``up`` starts no Redis.
- otherwise one Redis when ``KUDOS_REDIS_URL`` points at this machine, none when it points
  elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.request import urlopen

import redis

from broker.topics import ensure_topics
from kudos import servers
from kudos.cluster import EmbeddedCluster, info_fields, start_cluster
from leaderboard import redact
from leaderboard.errors import ConfigError, StackError
from leaderboard.settings import Settings, load_settings, settings_env

LOCAL = ("127.0.0.1", "localhost", "::1")

#: the fewest primaries ``--redis-cluster`` starts: a replica is promoted by the votes of a
#: majority of the primaries, and with one or two a lost primary leaves no majority to vote
MIN_CLUSTER_PRIMARIES = 3


def _pidfile(settings: Settings) -> Path:
    return settings.home / "up.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _started(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22); with
    the pid it names one process, so a stale file can never make us signal a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _stamp(pid: int) -> str:
    return f"{pid} {_started(pid)}"


def _is_stamped(stamp: str) -> int | None:
    """The pid of ``stamp`` ("pid start") if that very process is still running."""
    try:
        pid_text, _, started = stamp.strip().partition(" ")
        pid = int(pid_text)
    except ValueError:
        return None
    if not _alive(pid) or (started and _started(pid) != started):
        return None
    return pid


def running_pid(settings: Settings) -> int | None:
    try:
        return _is_stamped(_pidfile(settings).read_text())
    except OSError:
        return None


def _state(settings: Settings) -> dict[str, Any]:
    """``stack.json`` of the running (or last, crashed) supervisor; empty if there is none."""
    try:
        info = json.loads((settings.home / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def describe_redis(info: dict[str, Any]) -> str:
    """One line on the Redis of a stack (``stack.json``'s ``"redis"``), or "" for the single
    embedded Redis, which needs no words."""
    if not info.get("cluster"):
        return ""
    if not info.get("embedded"):
        return f"Redis Cluster at {info.get('url')} (KUDOS_REDIS_CLUSTER=true; not kudos up's)"
    nodes = info.get("nodes", [])
    ports = ",".join(str(n["port"]) for n in nodes)
    return (
        f"Redis Cluster: {info.get('primaries')} primaries + {info.get('replicas')} replica each, "
        f"{len(nodes)} nodes on 127.0.0.1 ports {ports} (in {info.get('dir')}); other kudos "
        f"commands reach it with KUDOS_REDIS_CLUSTER=true KUDOS_REDIS_URL={info.get('url')}"
    )


def _healthy(settings: Settings) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{settings.web.port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def up(settings: Settings, background: bool = False, redis_cluster: int | None = None) -> int:
    """Run the stack in the foreground until interrupted, or start it detached and return;
    ``redis_cluster``: start that many primaries (one replica each) instead of one Redis.

    Raises:
        ConfigError: ``redis_cluster`` is below 3, or the settings do not suit a cluster.
        StackError: already running, a port is taken, or a server binary is missing.
    """
    if redis_cluster is not None:
        check_cluster_request(settings, redis_cluster)
    pid = running_pid(settings)
    if pid is not None:
        about = describe_redis(_state(settings).get("redis", {}))
        raise StackError(
            f"the stack is already running (pid {pid}{'; ' + about if about else ''}); "
            "`kudos down` stops it"
        )
    settings.home.mkdir(parents=True, exist_ok=True)
    if background:
        return _up_background(settings, redis_cluster)
    return _Supervisor(settings, redis_cluster).run()


def check_cluster_request(settings: Settings, primaries: int) -> None:
    """Refuse ``--redis-cluster primaries`` before anything starts if it cannot work.

    Raises:
        ConfigError: fewer than 3 primaries, a database other than 0, or settings the children
            would refuse with ``KUDOS_REDIS_CLUSTER=true`` (e.g. braces in the prefix).
    """
    if primaries < MIN_CLUSTER_PRIMARIES:
        raise ConfigError(
            f"--redis-cluster {primaries}: a Redis Cluster needs at least "
            f"{MIN_CLUSTER_PRIMARIES} primaries, because a failed primary's replica is promoted "
            "by the votes of a majority of the primaries, and with fewer than 3 the survivors "
            f"are no majority; use --redis-cluster {MIN_CLUSTER_PRIMARIES} or more"
        )
    # (the settings' own checks refuse what a cluster cannot take: a database other than 0,
    # braces in the prefix)
    _cluster_settings(settings, settings.redis.url)


def _cluster_settings(settings: Settings, url: str) -> Settings:
    """``settings`` on the cluster node at ``url``, validated the way the children will load
    them (``settings_env`` hands them over as variables)."""
    on_cluster = dataclasses.replace(
        settings, redis=dataclasses.replace(settings.redis, url=url, cluster=True)
    )
    load_settings(settings_env(on_cluster))
    return on_cluster


def _up_background(settings: Settings, redis_cluster: int | None) -> int:
    log = settings.home / "logs" / "up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "kudos", "up"]
    if redis_cluster is not None:
        argv += ["--redis-cluster", str(redis_cluster)]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **settings_env(settings)},
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(
                f"the stack failed to start (exit {proc.returncode}):\n{servers.tail(log)}"
            )
        state = _state(settings)
        if state.get("ready") and _healthy(settings):
            print(
                f"Kudos is up: http://127.0.0.1:{settings.web.port}/  (logs in {settings.home / 'logs'};"
                " `kudos down` stops it)"
            )
            about = describe_redis(state.get("redis", {}))
            if about:
                print(about)
            return 0
        time.sleep(0.2)
    raise StackError(f"the stack did not become healthy within 120 s; see {log}")


def down(settings: Settings, timeout: float = 60.0) -> int:
    """Stop a running stack; returns 0 also when nothing was running."""
    # read before the signal: the supervisor removes stack.json as it stops
    info = _state(settings)
    pid = running_pid(settings)
    if pid is None:
        print("Kudos is not running.")
        _kill_leftovers(settings, info)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _kill_leftovers(settings, info)
    _pidfile(settings).unlink(missing_ok=True)
    nodes = len(info.get("redis", {}).get("nodes", []))
    print(f"Kudos stopped (and its {nodes} Redis cluster nodes)." if nodes else "Kudos stopped.")
    return 0


def _stamps(info: dict[str, Any]) -> list[str]:
    """Every process ``stack.json`` names: the children and the cluster nodes."""
    nodes = info.get("redis", {}).get("nodes", [])
    return [str(s) for s in info.get("pids", {}).values()] + [str(n["pid"]) for n in nodes]


def _running(stamp: str) -> int | None:
    """As :func:`_is_stamped`, but a zombie (exited, not yet reaped) counts as gone."""
    pid = _is_stamped(stamp)
    if pid is None:
        return None
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return None
    return pid


def _kill_leftovers(settings: Settings, info: dict[str, Any], timeout: float = 5.0) -> None:
    """SIGKILL what the supervisor left running (it was killed, or a child would not stop) and
    wait until it is gone, so its ports are free when ``kudos down`` returns."""
    stamps = _stamps(info or _state(settings))
    for stamp in stamps:
        pid = _running(stamp)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_running(s) is not None for s in stamps) and time.monotonic() < deadline:
        time.sleep(0.05)
    (settings.home / "stack.json").unlink(missing_ok=True)


class _Supervisor:
    def __init__(self, settings: Settings, redis_cluster: int | None = None) -> None:
        self.settings = settings
        #: primaries of the embedded cluster to start (``--redis-cluster``), or None
        self.cluster_primaries = redis_cluster
        self.cluster: EmbeddedCluster | None = None
        #: stack.json's "redis": which Redis the children use, and the nodes started for it
        self.redis_info: dict[str, Any] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.logs = settings.home / "logs"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _check_ports(self) -> None:
        s = self.settings
        rhost, rport = s.redis_host_port
        bhost, bport = s.broker_host_port
        starts_redis = self.cluster_primaries is not None or not s.redis.cluster
        if self.cluster_primaries is not None and rhost not in LOCAL:
            raise StackError(
                f"--redis-cluster starts the cluster on this machine, but KUDOS_REDIS_URL names "
                f"{rhost}: point it at 127.0.0.1:PORT (the first primary's port), or drop "
                "--redis-cluster and set KUDOS_REDIS_CLUSTER=true to use the cluster there"
            )
        if rhost in LOCAL and starts_redis:
            servers.ensure_port_free("redis", "127.0.0.1", rport, "KUDOS_REDIS_URL")
        if bhost in LOCAL:
            servers.ensure_port_free("broker", "127.0.0.1", bport, "KUDOS_BROKER_URL")
        servers.ensure_port_free("web", s.web.host, s.web.port, "KUDOS_WEB_PORT")

    def _child(self, name: str) -> subprocess.Popen[bytes]:
        settings = self.settings
        if self.cluster is not None and self.cluster.url != settings.redis.url:
            # the first node died: a restarted child must start from one that is alive (the
            # cluster client learns the others from it)
            redis_settings = dataclasses.replace(settings.redis, url=self.cluster.url)
            settings = dataclasses.replace(settings, redis=redis_settings)
        env = {**os.environ, **settings_env(settings)}
        return servers.spawn(
            [sys.executable, "-m", "kudos", name], self.logs / f"{name}.log", env=env
        )

    def _write_state(self, ready: bool = False) -> None:
        info = {
            "pids": {n: _stamp(p.pid) for n, p in self.procs.items()},
            "supervisor": _stamp(os.getpid()),
            "redis": self.redis_info,
            # `kudos up --background` returns once this is set (and the web is healthy)
            "ready": ready,
        }
        (self.settings.home / "stack.json").write_text(json.dumps(info))

    def _start_redis(self) -> None:
        s = self.settings
        rhost, rport = s.redis_host_port
        url = redact.url(s.redis.url)
        if self.cluster_primaries is not None:
            self._start_cluster(self.cluster_primaries, rport)
        elif s.redis.cluster:
            print(f"expecting a Redis Cluster at {url} (KUDOS_REDIS_CLUSTER=true)", flush=True)
            _expect_cluster(s.redis.url)
            self.redis_info = {"cluster": True, "embedded": False, "url": url}
        elif rhost in LOCAL:
            print(f"starting redis on 127.0.0.1:{rport}", flush=True)
            self.procs["redis"] = servers.start_redis(rport, s.home / "redis")
            self.redis_info = {"cluster": False, "embedded": True, "url": url}
        else:
            self.redis_info = {"cluster": False, "embedded": False, "url": url}

    def _start_cluster(self, primaries: int, first_port: int) -> None:
        """The embedded cluster, its first primary on ``first_port`` (KUDOS_REDIS_URL's)."""
        s = self.settings
        workdir = s.home / "redis-cluster"
        # the nodes keep nothing (no persistence) and their ports change each time: the
        # directories of an earlier run would only pile up
        shutil.rmtree(workdir, ignore_errors=True)
        count = primaries * 2
        ports = [first_port]
        while len(ports) < count:
            port = servers.free_port()
            if port not in ports:
                ports.append(port)
        print(
            f"starting a Redis Cluster: {primaries} primaries + 1 replica each on 127.0.0.1 "
            f"ports {','.join(map(str, ports))}",
            flush=True,
        )
        self.cluster = start_cluster(primaries, workdir, replicas=1, ports=ports)
        first = self.cluster.nodes()[0]
        self.settings = _cluster_settings(s, first.url)
        self.redis_info = {
            "cluster": True,
            "embedded": True,
            "url": first.url,
            "primaries": primaries,
            "replicas": 1,
            "dir": str(workdir),
            "nodes": [
                {"host": n.host, "port": n.port, "bus_port": n.bus_port, "pid": _stamp(n.proc.pid)}
                for n in self.cluster.nodes()
            ],
        }

    def _watch_cluster(self, lost: set[int]) -> None:
        """Report each node that exits once; give up when none is left. A lost node is not
        restarted: its replica has taken over its slots, and a node that comes back empty would
        need the cluster to re-adopt it, which is an operator's call."""
        if self.cluster is None:
            return
        nodes = self.cluster.nodes()
        for node in nodes:
            if not node.alive and node.port not in lost:
                lost.add(node.port)
                print(
                    f"{node} exited ({node.proc.returncode}); its replica takes over its slots, "
                    f"if it served any; not restarted (see {node.log})",
                    flush=True,
                )
        if len(lost) == len(nodes):
            raise StackError(f"every node of the Redis cluster exited; see {nodes[0].log.parent}")

    def _stop_cluster(self) -> None:
        if self.cluster is None:
            return
        # SIGTERM to all first, so they shut down side by side instead of one after another
        for node in self.cluster.nodes():
            if node.alive:
                node.proc.terminate()
        self.cluster.stop()

    def run(self) -> int:
        s = self.settings
        try:  # exclusive: two `kudos up` in one KUDOS_HOME cannot both own it
            fd = os.open(_pidfile(s), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if running_pid(s) is not None:
                raise StackError("the stack is already running; `kudos down` stops it") from None
            _pidfile(s).unlink(missing_ok=True)  # stale, from a killed supervisor
            fd = os.open(_pidfile(s), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, _stamp(os.getpid()).encode())
        os.close(fd)
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)
        try:
            self._check_ports()
            bhost, bport = s.broker_host_port
            self._start_redis()
            self._write_state()  # from here on `kudos down` finds the cluster nodes
            if bhost in LOCAL:
                print(f"starting broker (Tansu) on 127.0.0.1:{bport}", flush=True)
                self.procs["broker"] = servers.start_broker(bport, s.home / "broker")
            asyncio.run(ensure_topics(s))
            for name in ("worker", "web", "deliver"):
                print(f"starting {name}", flush=True)
                self.procs[name] = self._child(name)
            self._write_state(ready=True)
            print(f"Kudos is up: http://127.0.0.1:{s.web.port}/  (Ctrl-C stops it)", flush=True)
            about = describe_redis(self.redis_info)
            if about:
                print(about, flush=True)
            restarts: dict[str, float] = {}
            lost: set[int] = set()
            while not self.stopping:
                self._watch_cluster(lost)
                for name, proc in list(self.procs.items()):
                    if proc.poll() is None:
                        continue
                    if name in ("redis", "broker"):
                        raise StackError(f"{name} exited ({proc.returncode}); see {self.logs}")
                    # a worker resumes from the Redis fences and a deliverer from the outbox
                    # group and the webhook leases, so a restart loses nothing
                    wait = 1.0 if time.monotonic() - restarts.get(name, 0) > 30 else 5.0
                    print(
                        f"{name} exited with {proc.returncode}; restarting in {wait:.0f} s",
                        flush=True,
                    )
                    time.sleep(wait)
                    restarts[name] = time.monotonic()
                    self.procs[name] = self._child(name)
                    self._write_state(ready=True)
                time.sleep(0.2)
            return 0
        finally:
            for name in ("deliver", "web", "worker", "broker", "redis"):
                child = self.procs.get(name)
                if child is not None:
                    servers.stop(child)
            self._stop_cluster()
            (s.home / "stack.json").unlink(missing_ok=True)
            if running_pid(s) == os.getpid():
                _pidfile(s).unlink(missing_ok=True)
            print("Kudos stopped.", flush=True)


def _expect_cluster(url: str) -> None:
    """KUDOS_REDIS_CLUSTER=true without --redis-cluster: the cluster must run already, and be ok.

    Raises:
        StackError: nothing answers at ``url``, it is no cluster node, or the cluster is not ok.
    """
    shown = redact.url(url)
    start_one = (
        "`kudos up --redis-cluster 3` starts an embedded one; unset KUDOS_REDIS_CLUSTER for a "
        "single Redis"
    )
    try:
        with redis.Redis.from_url(
            url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2
        ) as client:
            reply = client.execute_command("CLUSTER", "INFO")
    except redis.ResponseError as exc:
        raise StackError(
            f"KUDOS_REDIS_CLUSTER=true, but the Redis at {shown} is not a cluster node ({exc}); "
            f"{start_one}"
        ) from exc
    except (redis.RedisError, OSError) as exc:
        raise StackError(
            f"KUDOS_REDIS_CLUSTER=true: `kudos up` starts no Redis then and expects a running "
            f"Redis Cluster at {shown} (KUDOS_REDIS_URL), but it does not answer ({exc}); "
            f"{start_one}"
        ) from exc
    state = info_fields(reply if isinstance(reply, str) else "")
    if state.get("cluster_state") != "ok":
        raise StackError(
            f"the Redis Cluster at {shown} says cluster_state:{state.get('cluster_state', '?')}"
            " (not every slot is served); wait for it or fix it (CLUSTER INFO on its nodes)"
        )
