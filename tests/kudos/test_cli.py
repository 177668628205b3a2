"""The CLI verbs that outside checks use: export, board, member, stats."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import orjson
import pytest

from kudos.cli.output import BLOCKS, print_explanation, sparkline
from tests import explain_log
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

    # calendar boards by name: t is 2020-09-13 (a Sunday of ISO week 2020-W37), live and archived
    for board in ("week", "week@2020-W37", "day@2020-09-13", "month@2020-09"):
        out = kudos(namespace, "export", board)
        assert out.returncode == 0, out.stderr
        assert list(csv.reader(io.StringIO(out.stdout))) == rows, board
    out = kudos(namespace, "board", "day@2020-09-12", "--json")  # the day before: nobody
    assert out.returncode == 0 and orjson.loads(out.stdout)["entries"] == [], out.stderr
    bad = kudos(namespace, "board", "week@2020-W54")
    assert bad.returncode != 0 and "week@YYYY-Www" in bad.stderr

    out = kudos(namespace, "board", "all", "--limit", "2", "--offset", "1", "--json")
    page = orjson.loads(out.stdout)
    assert [(e["rank"], e["member"], e["score"]) for e in page["entries"]] == [
        (2, "alice", 6.0),
        (3, "bob", 5.0),
    ]
    assert page["members"] == 3

    # a peer board: bob and carol among themselves, their ranks on the board beside
    out = kudos(namespace, "board", "all", "--members", "bob,carol,zed", "--json")
    assert out.returncode == 0, out.stderr
    peers = orjson.loads(out.stdout)
    assert [(e["rank"], e["member"], e["global_rank"]) for e in peers["entries"]] == [
        (1, "carol", 1),
        (2, "bob", 3),
    ]
    assert peers["missing"] == ["zed"]
    out = kudos(namespace, "board", "all", "--members", "bob,carol")
    assert "(#3 overall)" in out.stdout and out.stdout.startswith("all: 2 of 2 members")
    out = kudos(namespace, "board", "all", "--members", ",")
    assert out.returncode == 2 and "names no member" in out.stderr

    out = kudos(namespace, "member", "alice", "--json")
    member = orjson.loads(out.stdout)
    on_all = member["boards"]["all"]
    assert (on_all["rank"], on_all["score"]) == (2, 6.0)
    assert member["kinds"]["share"]["count"] == 2
    assert member["kinds"]["share"]["discounted"] == 2.0  # diminishing returns

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


async def test_member_explains_scores_and_trend(namespace: Namespace, tmp_path: object) -> None:
    """`kudos member` on a hand-made jsonl log: `--json` is the API's explain body, and the text
    form shows the same numbers."""
    from pathlib import Path

    log = Path(str(tmp_path)) / "explain.jsonl"
    log.write_bytes(explain_log.jsonl())
    namespace.start_worker()
    out = kudos(namespace, "replay", str(log), "--format", "jsonl", "--wait")
    assert out.returncode == 0, out.stderr + namespace.worker_logs()

    out = kudos(namespace, "member", "alice", "--json")
    assert out.returncode == 0, out.stderr
    explain_log.assert_explains(orjson.loads(out.stdout), explain_log.ALICE)

    out = kudos(namespace, "member", "alice")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == (
        "alice  (scoring 2026-11-21.1; as of event time 1599973240 = 2020-09-13 05:00:40 UTC)"
    )
    assert any(line.split()[:6] == ["1h", "rank", "2", "of", "2", "score"] for line in lines)
    assert "    share             3       10.000        2.000        0.000" in lines
    assert "    like              2        0.333        0.667        0.000" in lines
    assert "    total             8       24.333        2.667        0.000" in lines
    assert "  self-interactions ignored: 1" in lines
    posts = lines.index("  top posts:")
    assert [line.split()[::-1] for line in lines[posts + 1 : posts + 4]] == [
        ["p3", "10.000"],
        ["p1", "6.000"],
        ["p2", "2.333"],
    ]
    assert "  trend: 24h 20.333  7d 24.333  rank on all #1" in lines
    spark = next(line for line in lines if line.startswith("  hourly (6 h a block):"))
    # 28 blocks of 6 hours; the conversion's block (T0 + 0..5 h, with 20.333 points) is the top
    assert spark.split()[-4][-1] == "█" and len(spark.split()[-4]) == 28

    out = kudos(namespace, "member", "nobody", "--json")
    assert out.returncode == 1
    assert "'nobody' has never been seen" in orjson.loads(out.stdout)["error"]
    out = kudos(namespace, "member", "nobody")
    assert out.returncode == 1 and "never been seen" in out.stderr


@pytest.mark.parametrize(
    ("values", "per", "expected"),
    [
        ([], 1, ""),
        ([0, 0, 0], 1, "▁▁▁"),
        ([0, 1, 2, 4, 8], 1, "▁▂▃▅█"),
        ([0.001, 1000], 1, "▂█"),  # a little is never drawn as nothing
        ([1, 1, 0, 0, 3, 3], 2, "▄▁█"),  # summed per slot
        ([1, 1, 1], 2, "█▅"),  # a short last slot
    ],
)
def test_sparkline(values: list[float], per: int, expected: str) -> None:
    assert sparkline(values, per) == expected


def test_sparkline_uses_every_level() -> None:
    assert sparkline(list(range(8))) == BLOCKS


def test_member_text_of_a_member_on_no_board() -> None:
    body = {**explain_log.ZED, "trend": {**explain_log.ZED["trend"], "hourly": []}}
    out = io.StringIO()
    print_explanation(body, out)
    lines = out.getvalue().splitlines()
    assert (
        lines[0]
        == "zed  (scoring 2026-11-21.1; as of event time 1599973240 = 2020-09-13 05:00:40 UTC)"
    )
    assert "    like              1        0.000        0.000        0.000" in lines
    assert "  self-interactions ignored: 1" in lines
    assert "  trend: 24h 0.000  7d 0.000  rank on all -" in lines
    assert not any("rank " in line and " of " in line for line in lines)  # no board lines
    assert not any("top posts" in line or "hourly" in line for line in lines)
