"""The CLI verbs that outside checks use: export, board, member, stats."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import orjson
import pytest

from tests.conftest import Namespace

pytestmark = pytest.mark.integration


def kudos(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kudos", *args],
        env=ns.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_export_board_member_and_stats(namespace: Namespace) -> None:
    t = 1_600_000_000
    events = [
        {"id": "1", "ts": t, "kind": "share", "actor": "a", "target": "alice"},
        {"id": "2", "ts": t + 1, "kind": "share", "actor": "a", "target": "alice"},  # k=2: 2 points
        {"id": "3", "ts": t + 2, "kind": "share", "actor": "b", "target": "bob"},
        {"id": "4", "ts": t + 3, "kind": "like", "actor": "c", "target": "bob"},
        {"id": "5", "ts": t + 4, "kind": "conversion", "actor": "d", "target": "carol"},
        {
            "id": "6",
            "ts": t + 5,
            "kind": "like",
            "actor": "carol",
            "target": "carol",
        },  # self: ignored
    ]
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=3))

    out = kudos(namespace, "export", "all")
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows == [
        ["rank", "member", "score"],
        ["1", "carol", "10"],
        ["2", "alice", "6"],
        ["3", "bob", "5"],
    ]

    out = kudos(namespace, "board", "all", "--limit", "2", "--offset", "1", "--json")
    page = orjson.loads(out.stdout)
    assert [(e["rank"], e["member"], e["score"]) for e in page["entries"]] == [
        (2, "alice", 6.0),
        (3, "bob", 5.0),
    ]
    assert page["members"] == 3

    out = kudos(namespace, "member", "alice", "--json")
    member = orjson.loads(out.stdout)
    on_all = next(b for b in member["boards"] if b["board"] == "all")
    assert (on_all["rank"], on_all["score"]) == (2, 6.0)
    assert member["explain"]["n:share"] == 2
    assert member["explain"]["full:share"] - member["explain"]["mp:share"] == 2000  # DR discount

    out = kudos(namespace, "member", "carol")
    assert "self-interactions ignored: 1" in out.stdout

    stats = orjson.loads(kudos(namespace, "stats").stdout)
    assert (stats["applied"], stats["ignored"], stats["total"]) == (5, 1, 6)


async def test_unknown_board_and_unreachable_redis_give_clear_errors(namespace: Namespace) -> None:
    out = kudos(namespace, "board", "weekly")
    assert out.returncode == 2
    assert "unknown board 'weekly'" in out.stderr
    ns_env = namespace.env()
    ns_env["KUDOS_REDIS_URL"] = "redis://127.0.0.1:1/0"
    out = subprocess.run(
        [sys.executable, "-m", "kudos", "board", "all"],
        env=ns_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "cannot reach Redis" in out.stderr and "kudos up" in out.stderr


def test_a_stale_pidfile_naming_a_recycled_pid_is_not_trusted(tmp_path: object) -> None:
    """A pidfile left by a killed supervisor must not make `kudos down` signal whatever process
    now has that pid: the start time recorded beside the pid no longer matches."""
    import os
    from pathlib import Path

    from kudos.stack import running_pid
    from leaderboard.settings import load_settings

    home = Path(str(tmp_path))
    settings = load_settings({"KUDOS_HOME": str(home)})
    (home / "up.pid").write_text(f"{os.getpid()} 1")  # our pid, someone else's start time
    assert running_pid(settings) is None
    started = Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    (home / "up.pid").write_text(f"{os.getpid()} {started}")
    assert running_pid(settings) == os.getpid()
