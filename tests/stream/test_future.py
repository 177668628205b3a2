"""An event from the future, through the real worker: dead-lettered as `future` by its Kafka
record's timestamp, and no board, clock or counter notices it — also not after `kudos rebuild`,
which decides by the same record timestamps."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import orjson
import pytest

from tests.conftest import Namespace
from tests.oracle import assert_board_equal, compute
from tests.stream.test_bad_input import read_dlq

pytestmark = pytest.mark.integration

T0 = 1_700_000_000
TEN_YEARS = 10 * 365 * 86400
BOARDS = ("all", "1h", "24h", "7d", "decayed", "all:physics", "24h:physics", "decayed:physics")


def normal(i: int) -> dict[str, Any]:
    return {
        "id": f"n{i}",
        "ts": T0 + i * 60,
        "kind": ["share", "like", "comment", "conversion", "follow"][i % 5],
        "actor": f"u{i % 7}",
        "target": f"t{i % 3}",
        "communities": ["physics"],
    }


def kudos(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kudos", *args],
        env=ns.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )


async def check(ns: Namespace, valid: list[dict[str, Any]], stats: dict[str, Any]) -> None:
    expected = compute(valid)
    for board in BOARDS:
        assert_board_equal(board, await ns.export(board), expected.get(board, {}))
    # W is the newest scored event's time: the future never reached it
    assert stats["watermark"] == max(e["ts"] for e in valid if e["kind"] != "post")


async def test_an_event_from_the_future_changes_no_board(namespace: Namespace) -> None:
    now = time.time()  # about the record timestamps the broker will give these messages
    before = [normal(i) for i in range(30)]
    future = [
        # ten years ahead of its record: would expire every window and zero every decayed board
        {"id": "f1", "ts": now + TEN_YEARS, "kind": "conversion", "actor": "eve", "target": "t0"},
        # a zero-weight self post just as far ahead: would only move its partition's clock
        {"id": "f2", "ts": now + TEN_YEARS, "kind": "post", "actor": "t1", "target": "t1"},
    ]
    # valid (its record says it is not from the future) and ignored, years after every other
    # event: it must not make the events that follow in its partition late
    announcement = {
        "id": "p1",
        "ts": now,
        "kind": "post",
        "actor": "t2",
        "target": "t2",
        "post": "p1",
    }
    after = [normal(i) for i in range(30, 90)]
    valid = [*before, announcement, *after]

    namespace.start_worker()
    # (envelopes of 4: a future event shares its message with valid ones, which still apply)
    produced = await namespace.replay([*before, *future, announcement, *after], envelope=4)
    await namespace.wait(produced)

    out = kudos(namespace, "stats")
    assert out.returncode == 0, out.stderr
    stats = orjson.loads(out.stdout)
    assert (stats["applied"], stats["ignored"], stats["future"]) == (90, 1, 2), stats
    assert (stats["late"], stats["invalid"], stats["duplicate"]) == (0, 0, 0), stats
    assert stats["dead_lettered"] == 2
    assert stats["total"] == len(valid) + len(future)  # the counts add up to what was produced
    await check(namespace, valid, stats)

    letters = await read_dlq(namespace, 2)
    assert sorted(orjson.loads(v)["id"] for v, _ in letters) == ["f1", "f2"]
    for _, headers in letters:
        assert headers["kudos-error"] == b"future"
        assert b"ahead of its Kafka record" in headers["kudos-error-detail"]

    # the rebuild replays the log with the same record timestamps, so it decides the same
    namespace.stop_workers()
    out = kudos(namespace, "rebuild", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    assert orjson.loads(out.stdout)["scores_changed"] == 0
    out = kudos(namespace, "stats")
    stats = orjson.loads(out.stdout)
    assert (stats["applied"], stats["future"], stats["late"]) == (90, 2, 0), stats
    await check(namespace, valid, stats)
