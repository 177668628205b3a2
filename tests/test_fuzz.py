"""Hypothesis fuzzing of the three places where outside bytes first land, bounded in examples and
time: the event decoder (every Kafka message and ingest line), the HTTP body filter in front of
websockets, and the websocket message handler of a real web process. Each may only answer with its
documented outcomes: no exception escapes, nothing grows without bound, the server stays up."""

from __future__ import annotations

import asyncio
import math
import sys
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from kudos import servers
from leaderboard.bait.evidence import EVIDENCE_KINDS, MAX_ACTORS, Evidence
from leaderboard.events import MAX_TEXT, MAX_TS, Event, Rejected, decode_message
from tests.conftest import Namespace
from web.http_body import MAX_HEAD, HeadBuffer, plan_head

KINDS = frozenset({"post", "like", "click", "comment", "reply", "mention", "share", "follow"})
#: The reasons an event may be refused with (README "How exactly-once works", DESIGN's schema).
REASONS = {
    "tombstone",
    "bad_json",
    "empty_envelope",
    "not_object",
    "missing_field",
    "bad_type",
    "bad_length",
    "bad_ts",
    "unknown_kind",
    "bad_post",
    "bad_communities",
    "control_chars",
    "bad_evidence",
}

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["like", "share", "2012-07-04T10:00:00Z", "\x00", "a" * 200, 1e300]),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=6)
    ),
    max_leaves=25,
)
_fields = st.fixed_dictionaries(
    {},
    optional={
        "id": _scalars,
        "ts": _scalars,
        "kind": st.sampled_from([*KINDS, "conversion", "nope", ""]) | _scalars,
        "actor": _scalars,
        "target": _scalars,
        "post": _scalars,
        "text": st.text(max_size=2100) | _scalars,
        "communities": st.lists(st.text(max_size=70), max_size=10) | _scalars,
        "extra": _json,
        # the detector's cross-partition record: valid only alone and well formed
        "kudos_evidence": st.sampled_from([1, 2, "1"]) | _scalars,
        "source": _scalars,
        "actors": st.lists(_scalars, max_size=70) | _scalars,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=st.one_of(
        st.binary(max_size=300),
        _json.map(orjson.dumps),
        _fields.map(orjson.dumps),
        st.lists(_fields, max_size=6).map(orjson.dumps),
        # what orjson would not write: huge integers and exponents, bare NaN, deep nesting
        st.sampled_from(
            [
                b'{"id":"a","ts":1e400,"kind":"like","actor":"x","target":"y"}',
                b'{"id":"a","ts":123456789012345678901234567890,"kind":"like"}',
                b'{"id":"a","ts":NaN}',
                b"[" * 2000 + b"]" * 2000,
                b'[{"id":"a"}' + b',{"id":"a"}' * 2000 + b"]",
            ]
        ),
    )
)
def test_the_event_decoder_only_answers_events_or_documented_refusals(value: bytes) -> None:
    out = decode_message(value, KINDS)
    assert out, "every message yields at least one event or refusal"
    for item in out:
        if isinstance(item, Rejected):
            assert item.reason in REASONS, item.reason
            assert item.detail
            continue
        if isinstance(item, Evidence):
            assert 0 < len(item.id) <= 128 and 1 <= len(item.actors) <= MAX_ACTORS
            assert math.isfinite(item.at) and item.kind in EVIDENCE_KINDS
            continue
        assert isinstance(item, Event)
        assert 0 < len(item.id) <= 128 and 0 < len(item.actor) <= 128
        assert 0 < len(item.target) <= 128 and item.kind in KINDS
        assert math.isfinite(item.ts) and 0 <= item.ts <= MAX_TS
        assert item.text is None or len(item.text) <= MAX_TEXT
        assert len(item.communities) <= 8


_head_lines = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"Content-Length: 5",
                b"content-length:  12 ",
                b"Content-Length: -1",
                b"Content-Length: 99999999999999999999",
                b"Content-Length: 0",
                b"Transfer-Encoding: chunked",
                b"Expect: 100-continue",
                b"Host: 127.0.0.1",
                b"Content-Type: application/json",
            ]
        ),
        st.binary(max_size=60).filter(lambda b: b"\r\n" not in b),
    ),
    max_size=8,
)


@settings(max_examples=400, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"POST", b"PUT", b"", b"\x00"]),
    lines=_head_lines,
    cuts=st.lists(st.integers(1, 50), max_size=30),
)
def test_the_body_filter_plans_every_head_and_finds_its_end_however_it_arrives(
    method: bytes, lines: list[bytes], cuts: list[int]
) -> None:
    head = b"\r\n".join([method + b" /api/events HTTP/1.1", *lines]) + b"\r\n\r\n"
    plan = plan_head(head, 1 << 20)
    assert plan.refused is None or plan.refused[0] in (400, 411, 413)
    assert 0 <= plan.length <= 1 << 20
    assert len(plan.head) <= len(head)
    # pieces of any size: the end is found at the same place, looking at each byte a few times
    buf, at, pos = HeadBuffer(), -1, 0
    for n in [*cuts, len(head)]:
        if at >= 0 or pos >= len(head):
            break
        at = buf.feed(head[pos : pos + n])
        pos += n
    assert at == head.find(b"\r\n\r\n")
    assert buf.scanned <= 4 * len(head) + 3
    assert MAX_HEAD >= 1024


#: Close codes the server may end a fuzzed connection with (docs/protocol.md, limits table).
CLOSE_CODES = {1000, 1001, 1008, 1009, 1013}
ERROR_CODES = {
    "bad_json",
    "bad_request",
    "bad_channel",
    "unknown_board",
    "too_many_subscriptions",
    "not_subscribed",
    "unavailable",
}
REPLIES = {
    "hello",
    "authenticated",
    "subscribed",
    "unsubscribed",
    "pong",
    "error",
    "snapshot",
    "delta",
    "event",
}

_ops = st.sampled_from(["subscribe", "unsubscribe", "ping", "auth", "nope", ""]) | _scalars
_messages: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=100),
    st.just("x" * 5000),  # over max_message_bytes: closed with 1009
    _json.map(lambda v: orjson.dumps(v).decode()),
    st.fixed_dictionaries(
        {"op": _ops},
        optional={
            "channel": st.sampled_from(["board:all", "member:m1", "alerts", "board:", "x"])
            | _scalars,
            "limit": _scalars,
            "id": _scalars,
            "resume": st.fixed_dictionaries({"epoch": _scalars, "seq": _scalars}) | _scalars,
        },
    ).map(lambda v: orjson.dumps(v).decode()),
)


@pytest.mark.integration
async def test_the_websocket_handler_answers_fuzzed_messages_as_documented(
    namespace: Namespace,
) -> None:
    port = namespace.settings.web.port
    log = namespace.home / "web.log"
    env = {**namespace.env(), "KUDOS_WEB_MAX_MESSAGES_PER_S": "1000"}
    web = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=env)
    try:
        servers.wait_port("web", "127.0.0.1", port, web, log)
        batches = st.lists(_messages, min_size=1, max_size=20)
        seen_codes: set[str] = set()

        @settings(
            max_examples=40,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(batch=batches)
        def run(batch: list[str | bytes]) -> None:
            asyncio.run(_exchange(port, batch, seen_codes))

        await asyncio.to_thread(run)
        assert web.poll() is None, f"the web process died:\n{servers.tail(log)}"
        assert seen_codes, "the fuzzer never provoked an error reply"
        # still serving: a well-formed client gets its snapshot
        async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()  # hello
            await ws.send(
                orjson.dumps({"op": "subscribe", "channel": "board:all", "id": 1}).decode()
            )
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert reply["type"] == "subscribed" and reply["channel"] == "board:all", reply
    finally:
        servers.stop(web)


async def _exchange(port: int, batch: list[str | bytes], seen_codes: set[str]) -> None:
    async with connect(f"ws://127.0.0.1:{port}/ws", max_size=1 << 22) as ws:
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello["type"] == "hello"
        try:
            for m in batch:
                await ws.send(m)
            await ws.send(orjson.dumps({"op": "ping", "id": "last"}).decode())
            while True:
                frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                assert frame.get("type") in REPLIES, frame
                if frame["type"] == "error":
                    assert frame["code"] in ERROR_CODES, frame
                    seen_codes.add(frame["code"])
                if frame == {"type": "pong", "id": "last"}:
                    return
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            assert code in CLOSE_CODES, f"closed with {code}"
