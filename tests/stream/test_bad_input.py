"""Bad input is dead-lettered with its reason and raw bytes; good events around it still apply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from broker.topics import bootstrap
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.oracle import assert_board_equal, compute

pytestmark = pytest.mark.integration

T0 = 1_700_000_000


def good(i: int, **kw: object) -> dict[str, object]:
    e: dict[str, object] = {
        "id": f"g{i}",
        "ts": T0 + i * 30,
        "kind": ["share", "like", "comment", "conversion", "follow"][i % 5],
        "actor": f"u{i % 7}",
        "target": f"t{i % 4}",
    }
    e.update(kw)
    return e


BAD_LINES = {
    b'{"id": "b1", "ts": 1700000000, "kind": "share", "actor": "a"': "bad_json",
    b'{"id": "b2", "ts": 1700000000, "kind": "retweet", "actor": "a", "target": "b"}': "unknown_kind",
    orjson.dumps(
        {"id": "b3", "ts": T0, "kind": "comment", "actor": "a", "target": "b", "text": "x" * 2001}
    ): "bad_length",
    b'{"ts": 1700000000, "kind": "share", "actor": "a", "target": "b"}': "missing_field",
    b'{"id": "b\\u0000x", "ts": 1700000000, "kind": "share", "actor": "a", "target": "b"}': "control_chars",
    b'{"id": "b6", "ts": "2023-11-14T22:13:20", "kind": "share", "actor": "a", "target": "b"}': "bad_ts",
}


async def read_dlq(ns: Namespace, n: int) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        ns.settings.broker.dlq_topic,
        bootstrap_servers=bootstrap(ns.settings),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    out: list[tuple[bytes, dict[str, bytes]]] = []

    async def enough() -> bool:
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            out.extend((r.value, dict(r.headers)) for r in records)
        return len(out) >= n

    try:
        await eventually(
            enough,
            timeout=30,
            interval=0,
            what=f"{n} dead letters on {ns.settings.broker.dlq_topic}",
            details=lambda: f"{len(out)} so far",
        )
    finally:
        await consumer.stop()
    return out


@pytest.mark.parametrize("envelope", [1, 50])
async def test_malformed_lines_are_dead_lettered_and_good_ones_applied(
    namespace: Namespace, tmp_path: Path, envelope: int
) -> None:
    events = [
        good(i, communities=["physics"] if i % 3 == 0 else ["physics", "art"]) for i in range(300)
    ]
    lines = [orjson.dumps(e) for e in events]
    bad = list(BAD_LINES)
    for j, b in enumerate(bad):  # mixed in, not at the end
        lines.insert(40 * j + 7, b)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    namespace.start_worker()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kudos",
            "replay",
            str(path),
            "--format",
            "jsonl",
            "--envelope",
            str(envelope),
            "--wait",
        ],
        env=namespace.env(),
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()

    expected = compute(events)
    for board in ("all", "7d", "decayed", "all:physics", "24h:art", "decayed:art"):
        assert_board_equal(board, await namespace.export(board), expected[board])
    stats = await namespace.store.stats()
    assert stats["applied"] == len(events)
    assert stats["invalid"] == len(bad)
    assert stats["total"] == len(events) + len(bad)

    letters = await read_dlq(namespace, len(bad))
    reasons = sorted(h["kudos-error"].decode() for _, h in letters)
    assert reasons == sorted(BAD_LINES.values())
    for value, headers in letters:
        reason = headers["kudos-error"].decode()
        assert headers["kudos-source-topic"].decode() == namespace.settings.broker.topic
        assert int(headers["kudos-source-offset"]) >= 0
        assert headers["kudos-error-detail"]
        if reason == "bad_json":
            assert value == bad[0]  # the raw bytes, unchanged
        else:
            assert orjson.loads(value) == orjson.loads(
                next(b for b, r in BAD_LINES.items() if r == reason)
            )
