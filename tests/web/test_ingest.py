"""POST /api/events: the pure core (body reading, validation, grouping, answers) against a fake
broker seam, then a real `kudos web` process producing to a real broker for a real worker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import orjson
import pytest
from websockets.datastructures import Headers

from broker.producer import Message, partition_for
from kudos import servers
from leaderboard.errors import BrokerUnavailable, InvalidBody
from leaderboard.scoring import ScoringRules
from tests.conftest import Namespace, configure
from web.ingest import BIG_READERS, BUSY_RETRY_AFTER_S, MAX_ERRORS, Ingest, parse_body

KINDS = ScoringRules.load().kinds
T = 1_600_000_000
#: ingest reads only JSON and NDJSON bodies, declared (tests/web/test_origin.py)
JSON_HEADERS = Headers({"Content-Type": "application/json"})


def ev(i: str, kind: str, actor: str, target: str, **more: Any) -> dict[str, Any]:
    return {"id": i, "ts": T, "kind": kind, "actor": actor, "target": target, **more}


def ndjson(*lines: object) -> bytes:
    return b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n"


# -- the pure core -------------------------------------------------------------------------------

MIXED = ndjson(
    ev("m1", "share", "a1", "frank"),
    b"not json",
    ev("m2", "like", "a2", "frank"),
    {"id": "m3", "ts": T, "kind": "like", "target": "frank"},
    b"",
    ev("m4", "zap", "a4", "frank"),
    ev("m5", "like", "a5", "frank") | {"ts": "yesterday"},
    ev("m6\x01", "like", "a6", "frank"),
    [ev("m7", "like", "a7", "frank")],
    ev("m8", "comment", "a3", "gina"),
    ev("m9", "post", "a9", "gina"),
)
MIXED_ERRORS = [
    (2, "bad_json"),
    (4, "missing_field"),
    (6, "unknown_kind"),
    (7, "bad_ts"),
    (8, "control_chars"),
    (9, "not_object"),
    (11, "bad_post"),
]


def test_ndjson_lines_are_validated_one_by_one() -> None:
    parsed = parse_body(MIXED, "application/x-ndjson", KINDS)
    assert [e["id"] for e in parsed.events] == ["m1", "m2", "m8"]
    assert [(e["line"], e["reason"]) for e in parsed.errors] == MIXED_ERRORS
    assert all(e["detail"] for e in parsed.errors)


@pytest.mark.parametrize(
    ("body", "content_type", "where"),
    [
        (MIXED, "application/x-ndjson; charset=utf-8", "line"),
        (MIXED, None, "line"),  # detected: starts with "{" but is not one JSON value
        (MIXED, "application/json", "line"),
        (b"\xef\xbb\xbf" + MIXED, "text/plain", "line"),  # a byte order mark is skipped
        (orjson.dumps([ev("x", "like", "a", "b"), {"id": "y"}]), "application/json", "index"),
        (orjson.dumps([ev("x", "like", "a", "b"), {"id": "y"}]), None, "index"),
    ],
)
def test_the_body_shape_is_read_from_content_type_or_detected(
    body: bytes, content_type: str | None, where: str
) -> None:
    parsed = parse_body(body, content_type, KINDS)
    assert parsed.events and parsed.errors
    assert all(where in e for e in parsed.errors)


def test_a_single_object_is_index_zero() -> None:
    assert parse_body(orjson.dumps(ev("x", "like", "a", "b")), None, KINDS).events[0]["id"] == "x"
    bad = parse_body(b'{"id": "x"}', "application/json", KINDS)
    assert bad.events == [] and [(e["index"], e["reason"]) for e in bad.errors] == [
        (0, "missing_field")
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", None),
        (b" \n\r\n", "application/x-ndjson"),
        (b"hello", None),
        (b"hello\nworld\n", "application/x-ndjson"),  # not one line is JSON
        (b'[{"id": "x", "ts": 1', None),  # a cut-off array is not read line by line
        (b"42", None),
        (b'"event"', "application/json"),
        (b"\xff\xfe{", None),
    ],
)
def test_an_unreadable_body_is_invalid(body: bytes, content_type: str | None) -> None:
    with pytest.raises(InvalidBody):
        parse_body(body, content_type, KINDS)


class FakeBroker:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[Message] = []

    async def send(self, messages: Sequence[Message]) -> None:
        if self.fail:
            raise BrokerUnavailable("the broker at kafka://nowhere did not acknowledge within 5 s")
        self.sent.extend(messages)


async def test_valid_events_go_in_envelopes_per_partition_in_order() -> None:
    broker = FakeBroker()
    ingest = Ingest(broker.send, kinds=KINDS, partitions=4)
    events = [ev(f"e{i}", "like", f"a{i}", f"t{i % 9}") for i in range(200)]
    answer = await ingest.handle("POST", JSON_HEADERS, orjson.dumps(events))
    assert answer.status == 202
    assert orjson.loads(answer.body) == {"accepted": 200, "rejected": 0, "errors": []}
    assert len(broker.sent) <= 4  # one envelope per partition
    produced: list[dict[str, Any]] = []
    for m in broker.sent:
        batch = orjson.loads(m.value)
        assert m.events == len(batch)
        assert {partition_for(e["target"].encode(), 4) for e in batch} == {m.partition}
        produced += batch
    assert sorted(produced, key=lambda e: int(e["id"][1:])) == events
    for m in broker.sent:  # log order within a partition
        ids = [int(e["id"][1:]) for e in orjson.loads(m.value)]
        assert ids == sorted(ids)


async def test_nothing_is_produced_for_rejected_events() -> None:
    broker = FakeBroker()
    answer = await Ingest(broker.send, kinds=KINDS, partitions=4).handle(
        "POST", JSON_HEADERS, MIXED
    )
    body = orjson.loads(answer.body)
    assert (answer.status, body["accepted"], body["rejected"]) == (202, 3, 7)
    assert sorted(e["id"] for m in broker.sent for e in orjson.loads(m.value)) == [
        "m1",
        "m2",
        "m8",
    ]
    all_bad = await Ingest(broker.send, kinds=KINDS, partitions=4).handle(
        "POST", JSON_HEADERS, ndjson({"id": "z"}, b"[", {"kind": "like"})
    )
    assert all_bad.status == 202 and orjson.loads(all_bad.body)["accepted"] == 0


async def test_an_event_too_far_ahead_of_receipt_is_refused_as_future() -> None:
    # the web process's clock on receipt is where the record timestamp is born: an event the
    # worker would dead-letter as `future` is refused in the answer instead, the others produced
    now = 1_750_000_000.5
    broker = FakeBroker()
    ingest = Ingest(broker.send, kinds=KINDS, partitions=4, max_future_s=300, clock=lambda: now)
    body = ndjson(
        ev("f1", "like", "a1", "frank") | {"ts": now},
        ev("f2", "share", "a2", "frank") | {"ts": now + 10 * 365 * 86400},
        ev("f3", "like", "a3", "frank") | {"ts": now + 300},  # exactly the bound
        ev("f4", "post", "frank", "frank") | {"ts": now + 301},  # ignored kinds too
        ev("f5", "like", "a5", "frank"),
    )
    answer = await ingest.handle("POST", Headers({"Content-Type": "application/x-ndjson"}), body)
    out = orjson.loads(answer.body)
    assert (answer.status, out["accepted"], out["rejected"]) == (202, 3, 2)
    assert [(e["line"], e["reason"]) for e in out["errors"]] == [(2, "future"), (4, "future")]
    assert "300" in out["errors"][0]["detail"]
    produced = sorted(e["id"] for m in broker.sent for e in orjson.loads(m.value))
    assert produced == ["f1", "f3", "f5"]


async def test_errors_listed_are_capped_and_the_rest_counted() -> None:
    body = ndjson(*[{"id": f"x{i}"} for i in range(MAX_ERRORS + 5)])
    answer = await Ingest(FakeBroker().send, kinds=KINDS, partitions=4).handle(
        "POST", JSON_HEADERS, body
    )
    out = orjson.loads(answer.body)
    assert out["rejected"] == MAX_ERRORS + 5
    assert len(out["errors"]) == MAX_ERRORS and out["errors_omitted"] == 5


#: 1 MiB of elements that are not events: the cheapest body to send, and it was the dearest to
#: answer (one error object kept per element: seconds of CPU on the event loop, 160 MB)
ONES = b"[" + b",".join([b"1"] * ((1 << 20) // 2 - 1)) + b"]"
ONES_LINES = b"\n".join([b"1"] * ((1 << 20) // 2))
BAD_LINES = (
    b"\n".join([b"{"] * ((1 << 20) // 2 - 40)) + b"\n" + orjson.dumps(ev("ok", "like", "a", "b"))
)


@pytest.mark.parametrize(
    ("body", "content_type", "reason", "rejected"),
    [
        (ONES, "application/json", "not_object", (1 << 20) // 2 - 1),
        (ONES_LINES, "application/x-ndjson", "not_object", (1 << 20) // 2),
        (BAD_LINES, "application/x-ndjson", "bad_json", (1 << 20) // 2 - 40),
    ],
    ids=["array", "ndjson", "ndjson-unreadable-lines"],
)
def test_a_megabyte_of_rejections_keeps_the_first_100_and_counts_the_rest(
    body: bytes, content_type: str, reason: str, rejected: int
) -> None:
    assert len(body) <= 1 << 20
    parsed = parse_body(body, content_type, KINDS)
    assert len(parsed.errors) == 100 and {e["reason"] for e in parsed.errors} == {reason}
    assert parsed.rejected == rejected
    # memory, on an eighth of the body (tracing every allocation makes the parse ~20x slower):
    # what is inherent is orjson's parse of the body (2 MiB for this eighth, 16 MiB for the
    # whole, gone once it returns) and the array it makes (8 bytes an element); one error kept
    # per element took 160 MB for the megabyte, 20 MB for the eighth
    eighth = _eighth(body, content_type)
    tracemalloc.start()
    try:
        part = parse_body(eighth, content_type, KINDS)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert part.rejected >= rejected // 8 - 40 and len(part.errors) == 100
    assert peak < 3 * (1 << 20)


def _eighth(body: bytes, content_type: str) -> bytes:
    """The first eighth of a body of rejections and its last element, still well formed (an
    array stays closed, NDJSON keeps its last line: the one readable line, if any)."""
    cut = body[: len(body) // 8]
    if content_type == "application/json":
        return cut[: cut.rindex(b",")] + b"]"
    return cut[: cut.rindex(b"\n")] + body[body.rindex(b"\n") :]


async def test_a_big_body_is_read_off_the_event_loop() -> None:
    """While one client's megabyte is being read, the process goes on answering others."""
    ingest = Ingest(FakeBroker().send, kinds=KINDS, partitions=4)
    big = asyncio.create_task(ingest.handle("POST", JSON_HEADERS, ONES))
    await asyncio.sleep(0)  # big runs until it waits for its body to be read
    small = await ingest.handle("POST", JSON_HEADERS, orjson.dumps(ev("s", "like", "a", "b")))
    assert small.status == 202 and not big.done()
    answer = await big
    out = orjson.loads(answer.body)
    assert answer.status == 202 and (out["accepted"], out["rejected"]) == (0, (1 << 20) // 2 - 1)
    assert len(out["errors"]) == 100 and out["errors_omitted"] == out["rejected"] - 100


async def test_big_bodies_beyond_the_readers_are_503() -> None:
    ingest = Ingest(FakeBroker().send, kinds=KINDS, partitions=4)
    answers = await asyncio.gather(
        *(ingest.handle("POST", JSON_HEADERS, ONES) for _ in range(BIG_READERS + 1))
    )
    assert [a.status for a in answers] == [202] * BIG_READERS + [503]
    busy = answers[-1]
    assert ("Retry-After", str(BUSY_RETRY_AFTER_S)) in busy.headers
    assert orjson.loads(busy.body)["retry_after_s"] == BUSY_RETRY_AFTER_S
    # small bodies are read at once, however many big ones are being read
    small = orjson.dumps(ev("s", "like", "a", "b"))
    during = [
        asyncio.create_task(ingest.handle("POST", JSON_HEADERS, ONES)) for _ in range(BIG_READERS)
    ]
    await asyncio.sleep(0)
    assert (await ingest.handle("POST", JSON_HEADERS, small)).status == 202
    assert [a.status for a in await asyncio.gather(*during)] == [202] * BIG_READERS


async def test_a_broker_failure_accepts_nothing() -> None:
    answer = await Ingest(FakeBroker(fail=True).send, kinds=KINDS, partitions=4).handle(
        "POST", JSON_HEADERS, MIXED
    )
    body = orjson.loads(answer.body)
    assert answer.status == 503 and "accepted" not in body
    assert ("Retry-After", "5") in answer.headers and body["retry_after_s"] == 5
    assert "nothing was accepted" in body["error"] and "de-duplicated" in body["error"]
    # which broker, and its own words, are for the operator's log only
    assert "kafka://" not in body["error"] and "nowhere" not in body["error"]


@pytest.mark.parametrize(
    ("authorization", "status", "challenge"),
    [
        (None, 401, 'Bearer realm="kudos"'),
        ("Basic czNjcmV0", 401, 'Bearer realm="kudos"'),
        ("Bearer", 401, 'Bearer realm="kudos"'),
        ("Bearer s3cre", 401, 'Bearer realm="kudos", error="invalid_token"'),
        ("Bearer s3cret", 202, None),
        ("bearer  s3cret ", 202, None),
    ],
)
async def test_the_token_when_set(
    authorization: str | None, status: int, challenge: str | None
) -> None:
    ingest = Ingest(FakeBroker().send, kinds=KINDS, partitions=4, token="s3cret")
    headers = Headers({"Authorization": authorization} if authorization else {})
    headers["Content-Type"] = "application/json"
    answer = await ingest.handle("POST", headers, orjson.dumps(ev("x", "like", "a", "b")))
    assert answer.status == status
    assert dict(answer.headers).get("WWW-Authenticate") == challenge


async def test_method_then_token_then_size() -> None:
    ingest = Ingest(FakeBroker().send, kinds=KINDS, partitions=4, token="s3cret")
    get = await ingest.handle("GET", Headers(), None)
    assert get.status == 405 and ("Allow", "POST") in get.headers
    # an anonymous client learns nothing about the body it sent
    assert (await ingest.handle("POST", Headers(), None, (413, "too big"))).status == 401
    authorised = Headers({"Authorization": "Bearer s3cret"})
    refused = await ingest.handle("POST", authorised, None, (413, "too big"))
    assert refused.status == 413 and orjson.loads(refused.body) == {"error": "too big"}
    assert (await ingest.handle("POST", authorised, None)).status == 400  # no body at all


# -- a real web process, broker and worker -------------------------------------------------------


@contextlib.contextmanager
def web_process(ns: Namespace) -> Iterator[int]:
    port = ns.settings.web.port
    log = ns.home / "web.log"
    web = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=ns.env())
    try:
        servers.wait_port("web", "127.0.0.1", port, web, log)
        yield port
    finally:
        servers.stop(web)


def post(
    port: int,
    body: bytes | None,
    *,
    content_type: str | None = "application/json",
    token: str | None = None,
    method: str = "POST",
) -> tuple[int, Any, dict[str, str]]:
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{port}/api/events"
    req = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, orjson.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as e:
        with e:
            return e.code, orjson.loads(e.read()), dict(e.headers)


async def settle(ns: Namespace) -> None:
    """Wait until everything produced so far is applied: produce one scoreless event (a post
    announcement) to every partition after it and wait for those; partitions apply in order."""
    parts = ns.settings.broker.partitions
    run = uuid.uuid4().hex[:8]
    targets: dict[int, str] = {}
    n = 0
    while len(targets) < parts:
        name = f"settle-{n}"
        targets.setdefault(partition_for(name.encode(), parts), name)
        n += 1
    sentinels = [ev(f"settle-{run}-{p}", "post", t, t) for p, t in sorted(targets.items())]
    await ns.wait(await ns.replay(sentinels))


async def board(ns: Namespace, name: str) -> list[tuple[str, float]]:
    entries, _ = await ns.store.page(name, 100, 0)
    return [(e.member, e.score) for e in entries]


@pytest.mark.integration
async def test_ndjson_array_and_single_object_are_scored(namespace: Namespace) -> None:
    namespace.start_worker()
    with web_process(namespace) as port:
        status, out, _ = post(
            port,
            ndjson(
                ev("n1", "share", "a1", "alice"),
                ev("n2", "like", "a2", "alice"),
                ev("n3", "comment", "a3", "bob"),
            ),
            content_type="application/x-ndjson",
        )
        assert (status, out) == (202, {"accepted": 3, "rejected": 0, "errors": []})
        array = [
            ev("r1", "share", "b1", "carol", communities=["math"]),
            ev("r2", "share", "b2", "carol", communities=["math"]) | {"ts": "2020-09-13T12:26:40Z"},
        ]
        status, out, _ = post(port, orjson.dumps(array), content_type="application/json")
        assert (status, out["accepted"]) == (202, 2)
        status, out, _ = post(port, orjson.dumps(ev("o1", "conversion", "c1", "dave")))
        assert (status, out["accepted"]) == (202, 1)
        # NDJSON sent as application/json is detected
        status, out, _ = post(
            port, ndjson(ev("d1", "follow", "d1", "eve"), ev("d2", "like", "d2", "eve"))
        )
        assert (status, out["accepted"]) == (202, 2)
        await settle(namespace)
    assert await board(namespace, "all") == [
        ("dave", 10.0),
        ("carol", 8.0),
        ("alice", 5.0),
        ("eve", 4.0),
        ("bob", 2.0),
    ]
    assert await board(namespace, "7d:math") == [("carol", 8.0)]


@pytest.mark.integration
async def test_mixed_ndjson_reports_each_bad_line_and_scores_only_the_good(
    namespace: Namespace,
) -> None:
    namespace.start_worker()
    with web_process(namespace) as port:
        status, out, _ = post(port, MIXED, content_type="application/x-ndjson")
        assert status == 202
        assert (out["accepted"], out["rejected"]) == (3, 7)
        assert [(e["line"], e["reason"]) for e in out["errors"]] == MIXED_ERRORS
        status, out, _ = post(port, ndjson({"id": "z"}, b"{oops", ev("q", "zap", "a", "b")))
        assert (status, out["accepted"], out["rejected"]) == (202, 0, 3)
        array = [ev("k1", "like", "a8", "gina"), {"id": "k2", "kind": "like"}]
        status, out, _ = post(port, orjson.dumps(array))
        assert (status, out["accepted"]) == (202, 1)
        assert [(e["index"], e["reason"]) for e in out["errors"]] == [(1, "missing_field")]
        # a client retrying the same body (it lost the answer) does not count twice
        assert post(port, MIXED, content_type="application/x-ndjson")[0] == 202
        await settle(namespace)
    assert await board(namespace, "all") == [("frank", 5.0), ("gina", 3.0)]
    stats = await namespace.store.stats()
    # rejected lines never reached the topic: the worker dead-lettered nothing
    assert (stats["applied"], stats["duplicate"], stats["dead_lettered"]) == (4, 3, 0)


@pytest.mark.integration
async def test_the_web_process_refuses_events_from_the_future_by_the_workers_bound(
    namespace: Namespace,
) -> None:
    configure(namespace, worker=replace(namespace.settings.worker, max_future_s=60))
    namespace.start_worker()
    with web_process(namespace) as port:
        body = ndjson(
            ev("w1", "share", "a1", "ivan"),
            ev("w2", "share", "a2", "ivan") | {"ts": time.time() + 120},
            ev("w3", "like", "a3", "ivan"),
        )
        status, out, _ = post(port, body, content_type="application/x-ndjson")
        assert (status, out["accepted"], out["rejected"]) == (202, 2, 1)
        assert [(e["line"], e["reason"]) for e in out["errors"]] == [(2, "future")]
        await settle(namespace)
    assert await board(namespace, "all") == [("ivan", 5.0)]
    stats = await namespace.store.stats()
    # refused up front: the worker never saw it
    assert (stats["applied"], stats["future"], stats["dead_lettered"]) == (2, 0, 0)


@pytest.mark.integration
async def test_an_oversize_body_is_413(namespace: Namespace) -> None:
    configure(namespace, web=replace(namespace.settings.web, ingest_max_bytes=2048))
    events = [ev(f"s{i}", "like", f"a{i}", "hank") for i in range(40)]
    big = ndjson(*events)
    small = ndjson(*events[:10])
    assert len(big) > 2048 > len(small)
    with web_process(namespace) as port:
        status, out, _ = post(port, big, content_type="application/x-ndjson")
        assert status == 413
        assert f"{len(big)} bytes" in out["error"] and "KUDOS_WEB_INGEST_MAX_BYTES" in out["error"]
        status, out, _ = post(port, small, content_type="application/x-ndjson")
        assert (status, out["accepted"]) == (202, 10)


@pytest.mark.integration
async def test_a_megabyte_of_rejections_leaves_the_server_answering(namespace: Namespace) -> None:
    with web_process(namespace) as port:
        done = threading.Event()
        answered_during = 0
        result: list[tuple[int, Any, dict[str, str]]] = []

        def big() -> None:
            try:
                result.append(post(port, ONES))
            finally:
                done.set()

        sender = threading.Thread(target=big)
        sender.start()
        try:
            while not done.is_set():
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert r.status == 200
                answered_during += not done.is_set()
        finally:
            sender.join()
        status, out, _ = result[0]
        assert status == 202 and (out["accepted"], out["rejected"]) == (0, (1 << 20) // 2 - 1)
        assert len(out["errors"]) == 100 and out["errors_omitted"] == out["rejected"] - 100
        # a health check sent while the body was uploaded is answered at once either way; later
        # ones are answered only if reading it leaves the event loop free
        assert answered_during >= 3


@pytest.mark.integration
async def test_expect_100_continue(namespace: Namespace) -> None:
    """curl sends `Expect: 100-continue` before big bodies: an acceptable size gets the go-ahead,
    a too-large one its 413 before the body is sent."""
    configure(namespace, web=replace(namespace.settings.web, ingest_max_bytes=4096))
    body = orjson.dumps(ev("c1", "like", "a", "b"))

    def exchange(port: int, length: int, send_body: bool) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                f"POST /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n"
                "Content-Type: application/json\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            first = s.recv(65536)
            if send_body:
                assert first == b"HTTP/1.1 100 Continue\r\n\r\n"
                s.sendall(body)
                first = b""
            data = first
            while chunk := s.recv(65536):
                data += chunk
            return data

    with web_process(namespace) as port:
        assert exchange(port, len(body), True).startswith(b"HTTP/1.1 202 ")
        assert exchange(port, 5000, False).startswith(b"HTTP/1.1 413 ")


@pytest.mark.integration
async def test_a_wrong_or_missing_token_is_401(namespace: Namespace) -> None:
    configure(namespace, web=replace(namespace.settings.web, ingest_token="s3cret"))
    one = orjson.dumps(ev("t1", "like", "a", "b"))
    with web_process(namespace) as port:
        status, out, headers = post(port, one)
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="kudos"'
        assert "KUDOS_WEB_INGEST_TOKEN" in out["error"]
        status, _, headers = post(port, one, token="guess")
        assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
        assert post(port, one, token="s3cret")[:2] == (
            202,
            {"accepted": 1, "rejected": 0, "errors": []},
        )
        # the read API stays open
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/boards", timeout=5) as r:
            assert r.status == 200


@pytest.mark.integration
async def test_a_body_that_is_not_json_is_400(namespace: Namespace) -> None:
    with web_process(namespace) as port:
        status, out, _ = post(port, b"hello, kudos")
        assert status == 400 and "not JSON" in out["error"]
        assert post(port, b"hello\nworld\n", content_type="application/x-ndjson")[0] == 400
        assert post(port, b"")[0] == 400


@pytest.mark.integration
async def test_get_on_the_ingest_path_is_405(namespace: Namespace) -> None:
    with web_process(namespace) as port:
        status, out, headers = post(port, None, method="GET")
        assert status == 405 and headers["Allow"] == "POST" and "POST" in out["error"]
        # and the read API refuses a POST instead of answering it as a GET
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/boards", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=5)
        refused.value.close()
        assert refused.value.code == 405


@pytest.mark.integration
async def test_broker_down_is_503_and_nothing_accepted(namespace: Namespace) -> None:
    nowhere = f"kafka://127.0.0.1:{servers.free_port()}"
    configure(
        namespace,
        broker=replace(namespace.settings.broker, url=nowhere),
        web=replace(namespace.settings.web, ingest_timeout_s=1.0),
    )
    with web_process(namespace) as port:  # starts without a broker
        status, out, headers = post(port, orjson.dumps(ev("d1", "like", "a", "b")))
        assert status == 503 and headers["Retry-After"] == "5"
        assert "accepted" not in out and "retry" in out["error"].lower()
        # a request with no valid event needs no broker
        status, out, _ = post(port, orjson.dumps({"id": "x"}))
        assert (status, out["accepted"], out["rejected"]) == (202, 0, 1)
