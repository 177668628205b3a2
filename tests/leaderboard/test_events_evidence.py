"""Decoding bait evidence (leaderboard/events.py): a message whose whole value is one object with
the evidence marker is an Evidence item, or a ``bad_evidence`` refusal; inside an envelope the
marker is always refused; ordinary events decode as before."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker.producer import Envelopes
from leaderboard.bait import MARKER, Evidence
from leaderboard.bait.evidence import MAX_ACTORS
from leaderboard.events import BAD_EVIDENCE, Event, Rejected, decode_message
from leaderboard.scoring import ScoringRules

KINDS = ScoringRules.load().kinds
T = 1_700_000_000.5
RECORD = Evidence.of("p:tea", T, "comments", ("bot1", "bot2"))


def wire(**changes: Any) -> dict[str, Any]:
    out = RECORD.to_json() | changes
    return {k: v for k, v in out.items() if v is not None}


def test_a_lone_evidence_object_decodes_to_its_record() -> None:
    [item] = decode_message(orjson.dumps(RECORD.to_json()), KINDS)
    assert item == RECORD
    assert item.id == RECORD.id and item.at == T and item.source == "p:tea"
    [again] = decode_message(orjson.dumps(wire(actors=["bot1", "bot2", "bot1"])), KINDS)
    assert again == RECORD  # each account once


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({MARKER: 2}, "must be 1"),
        ({"ts": "soon"}, "'ts'"),
        ({"kind": "votes"}, "'kind'"),
        ({"actors": []}, "'actors'"),
        ({"actors": [f"a{i}" for i in range(MAX_ACTORS + 1)]}, "'actors'"),
        ({"actors": ["ok", 7]}, "'actors'"),
        ({"actors": ["x" * 129]}, "'actors'"),
        ({"id": ""}, "'id'"),
        ({"source": "p:\x00"}, "'source'"),
    ],
)
def test_a_malformed_evidence_object_is_refused_as_bad_evidence(
    changes: dict[str, Any], said: str
) -> None:
    raw = orjson.dumps(wire(**changes))
    [item] = decode_message(raw, KINDS)
    assert isinstance(item, Rejected)
    assert (item.reason, item.index, item.raw) == (BAD_EVIDENCE, None, raw)
    assert said in item.detail


def test_evidence_never_travels_inside_an_envelope() -> None:
    event = {"id": "e1", "ts": T, "kind": "like", "actor": "a", "target": "b"}
    # a valid record, and a valid event that merely carries the key: both refused, the rest kept
    envelope = [event, RECORD.to_json(), event | {"id": "e2", MARKER: 1}]
    items = decode_message(orjson.dumps(envelope), KINDS)
    assert items[0] == Event("e1", T, "like", "a", "b")
    for i in (1, 2):
        item = items[i]
        assert isinstance(item, Rejected)
        assert (item.reason, item.index) == (BAD_EVIDENCE, i)
        assert "alone" in item.detail and orjson.loads(item.raw) == envelope[i]


def test_an_object_without_the_marker_is_an_event_as_before() -> None:
    event = {"id": "e1", "ts": T, "kind": "like", "actor": "a", "target": "b", "x": MARKER}
    assert decode_message(orjson.dumps(event), KINDS) == [Event("e1", T, "like", "a", "b")]
    [bad] = decode_message(b'{"id": "e1", "actors": ["a"]}', KINDS)
    assert isinstance(bad, Rejected) and bad.reason == "missing_field"


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(wire())), st.from_type(object), max_size=6))
@example({"kind": []})  # (unhashable: once crashed the decoder instead of being refused)
@example({"kind": {"a": 1}})
def test_anything_with_the_marker_is_a_valid_record_or_bad_evidence(
    fields: dict[str, Any],
) -> None:
    obj = wire() | fields
    try:
        raw = orjson.dumps(obj)
    except TypeError:
        return  # (not JSON at all)
    [item] = decode_message(raw, KINDS)
    if isinstance(item, Rejected):
        assert item.reason == BAD_EVIDENCE and item.detail
    else:
        assert isinstance(item, Evidence)
        assert 1 <= len(item.actors) <= MAX_ACTORS and 0 < len(item.id) <= 128


def test_a_replayed_evidence_line_goes_alone_whatever_the_envelope_size() -> None:
    # `kudos replay --envelope 50` of a log that holds evidence: it stays evidence
    grouping = Envelopes(4, 50)
    event = {"id": "e1", "ts": T, "kind": "like", "actor": "a", "target": "b"}
    out = [*grouping.add(event), *grouping.add(RECORD.to_json()), *grouping.flush()]
    alone = [m for m in out if m.events == 1 and orjson.loads(m.value) == RECORD.to_json()]
    assert len(alone) == 1
    assert decode_message(alone[0].value, KINDS) == [RECORD]
