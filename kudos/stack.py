"""``kudos up`` / ``kudos down``: the embedded stack as a small process supervisor.

``up`` starts Redis (Valkey) and the Tansu broker when their URLs point at this machine, creates the
topics, then runs one worker, the web process and the perk deliverer (``kudos deliver``), restarting
any of them if it dies. Ctrl-C or SIGTERM
stops everything in reverse order; every child also gets SIGTERM if the supervisor itself is killed
(PR_SET_PDEATHSIG), so nothing is orphaned. State lives in ``KUDOS_HOME``: ``up.pid``, ``stack.json``
and one log per process under ``logs/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from urllib.request import urlopen

from broker.topics import ensure_topics
from kudos import servers
from leaderboard.errors import StackError
from leaderboard.settings import Settings, settings_env

LOCAL = ("127.0.0.1", "localhost", "::1")


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


def _healthy(settings: Settings) -> bool:
    try:
        with urlopen(f"http://127.0.0.1:{settings.web.port}/healthz", timeout=1) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def up(settings: Settings, background: bool = False) -> int:
    """Run the stack in the foreground until interrupted, or start it detached and return.

    Raises:
        StackError: already running, a port is taken, or a server binary is missing.
    """
    pid = running_pid(settings)
    if pid is not None:
        raise StackError(f"the stack is already running (pid {pid}); `kudos down` stops it")
    settings.home.mkdir(parents=True, exist_ok=True)
    if background:
        return _up_background(settings)
    return _Supervisor(settings).run()


def _up_background(settings: Settings) -> int:
    log = settings.home / "logs" / "up.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kudos", "up"],
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
        if _healthy(settings) and (settings.home / "stack.json").exists():
            print(
                f"Kudos is up: http://127.0.0.1:{settings.web.port}/  (logs in {settings.home / 'logs'};"
                " `kudos down` stops it)"
            )
            return 0
        time.sleep(0.2)
    raise StackError(f"the stack did not become healthy within 120 s; see {log}")


def down(settings: Settings, timeout: float = 60.0) -> int:
    """Stop a running stack; returns 0 also when nothing was running."""
    pid = running_pid(settings)
    if pid is None:
        print("Kudos is not running.")
        _kill_leftovers(settings)
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    _kill_leftovers(settings)
    _pidfile(settings).unlink(missing_ok=True)
    print("Kudos stopped.")
    return 0


def _kill_leftovers(settings: Settings) -> None:
    try:
        info = json.loads((settings.home / "stack.json").read_text())
    except (OSError, ValueError):
        return
    for stamp in info.get("pids", {}).values():
        pid = _is_stamped(str(stamp))
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    (settings.home / "stack.json").unlink(missing_ok=True)


class _Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.logs = settings.home / "logs"

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _check_ports(self) -> None:
        s = self.settings
        rhost, rport = s.redis_host_port
        bhost, bport = s.broker_host_port
        if rhost in LOCAL:
            servers.ensure_port_free("redis", "127.0.0.1", rport, "KUDOS_REDIS_URL")
        if bhost in LOCAL:
            servers.ensure_port_free("broker", "127.0.0.1", bport, "KUDOS_BROKER_URL")
        servers.ensure_port_free("web", s.web.host, s.web.port, "KUDOS_WEB_PORT")

    def _child(self, name: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, **settings_env(self.settings)}
        return servers.spawn(
            [sys.executable, "-m", "kudos", name], self.logs / f"{name}.log", env=env
        )

    def _write_state(self) -> None:
        info = {
            "pids": {n: _stamp(p.pid) for n, p in self.procs.items()},
            "supervisor": _stamp(os.getpid()),
        }
        (self.settings.home / "stack.json").write_text(json.dumps(info))

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
            rhost, rport = s.redis_host_port
            bhost, bport = s.broker_host_port
            if rhost in LOCAL:
                print(f"starting redis on 127.0.0.1:{rport}", flush=True)
                self.procs["redis"] = servers.start_redis(rport, s.home / "redis")
            if bhost in LOCAL:
                print(f"starting broker (Tansu) on 127.0.0.1:{bport}", flush=True)
                self.procs["broker"] = servers.start_broker(bport, s.home / "broker")
            asyncio.run(ensure_topics(s))
            for name in ("worker", "web", "deliver"):
                print(f"starting {name}", flush=True)
                self.procs[name] = self._child(name)
            self._write_state()
            print(f"Kudos is up: http://127.0.0.1:{s.web.port}/  (Ctrl-C stops it)", flush=True)
            restarts: dict[str, float] = {}
            while not self.stopping:
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
                    self._write_state()
                time.sleep(0.2)
            return 0
        finally:
            for name in ("deliver", "web", "worker", "broker", "redis"):
                child = self.procs.get(name)
                if child is not None:
                    servers.stop(child)
            (s.home / "stack.json").unlink(missing_ok=True)
            if running_pid(s) == os.getpid():
                _pidfile(s).unlink(missing_ok=True)
            print("Kudos stopped.", flush=True)
