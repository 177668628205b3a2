"""POST /api/events refuses the bait-evidence marker (``reserved_field``): evidence is the workers'
own record in the events topic, and nobody outside may write one through HTTP."""

from __future__ import annotations

import orjson
import pytest
from websockets.datastructures import Headers

from leaderboard.bait import MARKER, Evidence
from leaderboard.events import decode_message
from tests.web.test_ingest import JSON_HEADERS, KINDS, FakeBroker, ev, ndjson
from web.ingest import RESERVED_FIELD, Ingest

RECORD = Evidence.of("p:tea", 1_600_000_000.0, "comments", ("bot1", "bot2"))


@pytest.mark.parametrize(
    "body",
    [
        orjson.dumps(RECORD.to_json()),  # a whole record, alone
        orjson.dumps([RECORD.to_json()]),
        # a valid event that merely carries the key
        orjson.dumps(ev("e1", "like", "a1", "frank") | {MARKER: 1}),
    ],
)
async def test_an_object_with_the_evidence_marker_is_refused_and_not_produced(
    body: bytes,
) -> None:
    broker = FakeBroker()
    answer = await Ingest(broker.send, kinds=KINDS, partitions=4).handle("POST", JSON_HEADERS, body)
    out = orjson.loads(answer.body)
    assert (answer.status, out["accepted"], out["rejected"]) == (202, 0, 1)
    [error] = out["errors"]
    assert error["index"] == 0 and error["reason"] == RESERVED_FIELD
    assert MARKER in error["detail"]
    assert broker.sent == []


async def test_the_other_lines_of_the_body_are_produced() -> None:
    broker = FakeBroker()
    body = ndjson(
        ev("e1", "like", "a1", "frank"), RECORD.to_json(), ev("e2", "share", "a2", "gina")
    )
    answer = await Ingest(broker.send, kinds=KINDS, partitions=4).handle(
        "POST", Headers({"Content-Type": "application/x-ndjson"}), body
    )
    out = orjson.loads(answer.body)
    assert (out["accepted"], out["rejected"]) == (2, 1)
    assert [(e["line"], e["reason"]) for e in out["errors"]] == [(2, RESERVED_FIELD)]
    produced = [item for m in broker.sent for item in decode_message(m.value, KINDS)]
    assert sorted(e.id for e in produced) == ["e1", "e2"]
    assert all(not isinstance(e, Evidence) for e in produced)
