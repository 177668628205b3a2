"""HTTP ingest: ``POST /api/events``, for producers that do not speak Kafka.

The body is one JSON object (one event), a JSON array of events, or NDJSON: one event per line,
declared with ``Content-Type: application/x-ndjson`` (or ``application/jsonl``), or detected when
a ``Content-Type: application/json`` body that starts with ``{`` is not one JSON value; any other
type, or none, is refused (415: see :data:`BODY_TYPES`). Every event is validated by the worker's
own code (:func:`leaderboard.events.parse_event`, same reason codes as the dead-letter queue); the
valid ones are grouped by partition of their target into envelopes (:class:`Envelopes`, as
``kudos replay`` builds them) and produced. Rejected events are never produced. An object carrying
the bait-evidence marker key (``kudos_evidence``, :mod:`leaderboard.bait.evidence`) is refused with
reason ``reserved_field``: evidence is the workers' own record, written into the events topic only
by them (and a worker would dead-letter it inside an envelope anyway).

All or nothing towards the broker: 202 comes only once the broker has acknowledged every accepted
event. If it does not within ``KUDOS_WEB_INGEST_TIMEOUT_S``, the answer is 503 with
``Retry-After`` and nothing is reported accepted, even though part of it may have been written:
retrying the same body is safe, because events carry ids and the worker applies an id once (for
the dedupe horizon, 7 days of event time). The same holds for an answer lost on the way back.

This module decides the answer; ``web.server`` owns the socket, ``web.http_body`` reads the body.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.producer import Envelopes, Message
from leaderboard.bait.evidence import MARKER
from leaderboard.errors import BrokerUnavailable, InvalidBody, InvalidEvent
from leaderboard.events import FUTURE, future_bound, future_detail, parse_event
from leaderboard.settings import WorkerSettings

PATH = "/api/events"
JSON = "application/json"
#: Content types read as one event per line; anything else is JSON, or NDJSON when detected.
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
    }
)
#: The only body types read; any other, or none, is 415. A browser sends text/plain, a form or an
#: untyped body (fetch() of a Blob) to another site without asking first; it sends these only
#: after a CORS preflight, which this server never grants.
BODY_TYPES = NDJSON_TYPES | {JSON}
_TYPES_HINT = "send 'Content-Type: application/json' or 'Content-Type: application/x-ndjson'"
#: Rejections listed in one answer; the others are only counted (``rejected``, and
#: ``errors_omitted`` beyond this many).
MAX_ERRORS = 100
#: Bodies of more than this many bytes are read (parsed, validated, put in envelopes) on a worker
#: thread so that the event loop goes on serving websockets and other requests; at most
#: BIG_READERS of them at once (more threads would only share one interpreter lock), a further one
#: is answered 503 with ``Retry-After: BUSY_RETRY_AFTER_S``. A smaller body takes about a
#: millisecond: it is read at once.
INLINE_BYTES = 64 * 1024
BIG_READERS = 2
BUSY_RETRY_AFTER_S = 1
#: Bounds of one produced envelope: events, and bytes (well below Apache Kafka's default 1 MiB
#: message limit, whatever KUDOS_WEB_INGEST_MAX_BYTES allows).
ENVELOPE_EVENTS = 500
ENVELOPE_BYTES = 512 * 1024
#: Seconds a client is told to wait before retrying after a 503.
RETRY_AFTER_S = 5
#: Reason code of an event that carries a key only the workers may write (the evidence marker).
RESERVED_FIELD = "reserved_field"

_BOM = b"\xef\xbb\xbf"
_SHAPES = "send a JSON object, a JSON array of objects, or NDJSON (one object per line)"

Send = Callable[[Sequence[Message]], Awaitable[None]]

log = logging.getLogger("kudos.web.ingest")


@dataclass
class Parsed:
    """A readable body: the valid events as sent, the number rejected and the first
    :data:`MAX_ERRORS` errors (a body of a million rejections keeps no million objects)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    #: {"line": n} (NDJSON, 1-based) or {"index": i} (array; 0 for a single object), plus
    #: "reason" (a stable code) and "detail"
    errors: list[dict[str, Any]] = field(default_factory=list)
    #: how many events were rejected, listed in ``errors`` or not
    rejected: int = 0
    #: this server's clock on receipt, and how far ahead of it a ts may be (the worker's bound)
    received: float | None = None
    max_future_s: float = WorkerSettings.max_future_s

    def add(
        self, where: tuple[str, int], value: Any, kinds: Collection[str], check_size: bool
    ) -> None:
        try:
            if type(value) is dict and MARKER in value:
                raise InvalidEvent(
                    RESERVED_FIELD,
                    f"{MARKER!r} is reserved for the workers' bait evidence; events cannot carry it",
                )
            ts = parse_event(value, kinds).ts
            # the broker stamps the record with about this time, and the worker would dead-letter
            # the event as `future`: refuse it here, where the producer can still be told
            if ts > future_bound(self.received, self.max_future_s):
                assert self.received is not None
                detail = future_detail(ts, self.received, self.max_future_s, "this server's clock")
                raise InvalidEvent(FUTURE, detail)
            # events are produced as sent, unknown fields included (a newer worker may know
            # them), so one could outgrow a Kafka message; only possible in a big body
            if check_size and len(orjson.dumps(value)) > ENVELOPE_BYTES:
                raise InvalidEvent(
                    "bad_length", f"the event is more than {ENVELOPE_BYTES} bytes of JSON"
                )
        except InvalidEvent as exc:
            self.reject(where, exc.reason, exc.detail)
            return
        self.events.append(value)

    def reject(self, where: tuple[str, int], reason: str, detail: object) -> None:
        """Count one rejected event, and list it if it is among the first :data:`MAX_ERRORS`
        (``detail`` is made a string only then)."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({where[0]: where[1], "reason": reason, "detail": str(detail)})


def parse_body(
    body: bytes,
    content_type: str | None,
    kinds: Collection[str],
    *,
    received: float | None = None,
    max_future_s: float = WorkerSettings.max_future_s,
) -> Parsed:
    """Read and validate a ``POST /api/events`` body (pure). An event more than ``max_future_s``
    ahead of ``received`` (unix seconds; None: no bound) is refused with reason ``future``.

    Raises:
        InvalidBody: nothing in it is readable: empty, not JSON, no JSON line, or a JSON value
            that is neither an object nor an array.
    """
    body = body.removeprefix(_BOM)
    if not body.strip():
        raise InvalidBody(f"the body is empty; {_SHAPES}")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return _ndjson(body, kinds, Parsed(received=received, max_future_s=max_future_s))
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if body.lstrip()[:1] == b"{":  # several objects, one per line
            return _ndjson(body, kinds, Parsed(received=received, max_future_s=max_future_s))
        raise InvalidBody(f"the body is not JSON ({exc}); {_SHAPES}") from None
    out = Parsed(received=received, max_future_s=max_future_s)
    big = len(body) > ENVELOPE_BYTES
    if isinstance(value, dict):
        out.add(("index", 0), value, kinds, big)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.add(("index", i), item, kinds, big)
    else:
        raise InvalidBody(f"the body is a JSON {type(value).__name__}; {_SHAPES}")
    return out


def unsupported_type(content_type: str | None) -> str | None:
    """Why a body of ``content_type`` is not read (the 415 message), or None: one of
    :data:`BODY_TYPES`, any case, parameters allowed but a charset only UTF-8 (RFC 8259)."""
    media, _, params = (content_type or "").partition(";")
    media = media.strip().lower()
    if media not in BODY_TYPES:
        return f"{PATH} reads no {media[:80] or 'untyped'} body; {_TYPES_HINT}"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        charset = value.strip().strip('"').lower()
        if name.strip().lower() == "charset" and charset not in ("utf-8", "utf8"):
            return f"events are UTF-8 JSON, not {charset}; {_TYPES_HINT}"
    return None


def _lines(body: bytes) -> Iterator[tuple[int, bytes]]:
    """``enumerate(body.split(b"\\n"), start=1)``, one line at a time (not half a million
    small objects at once)."""
    n, start = 0, 0
    while start <= len(body):
        end = body.find(b"\n", start)
        end = len(body) if end < 0 else end
        n += 1
        yield n, body[start:end]
        start = end + 1


def _ndjson(body: bytes, kinds: Collection[str], out: Parsed) -> Parsed:
    big = len(body) > ENVELOPE_BYTES
    readable = False
    for n, line in _lines(body):
        line = line.strip()
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out.reject(("line", n), "bad_json", exc)
            continue
        readable = True
        out.add(("line", n), value, kinds, big)
    if not readable:
        raise InvalidBody(f"no line of the body is JSON; {_SHAPES}")
    return out


def envelopes(events: Sequence[dict[str, Any]], partitions: int) -> list[Message]:
    """The messages that carry ``events``: envelopes per partition of their target."""
    grouping = Envelopes(partitions, ENVELOPE_EVENTS, max_bytes=ENVELOPE_BYTES)
    messages = [m for event in events for m in grouping.add(event)]
    return messages + grouping.flush()


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, message: str, *headers: tuple[str, str], **extra: Any) -> Answer:
    return Answer(status, orjson.dumps({"error": message, **extra}), headers)


class Ingest:
    """``POST /api/events``: authorisation, the body, validation, producing, the answer.

    ``send`` produces messages and returns once the broker acknowledged all of them, or raises
    :class:`BrokerUnavailable` (``SharedProducer.send`` in the web process; a fake in tests).
    ``max_future_s`` is the worker's bound on ts ahead of the record time (``future``), checked
    against ``clock`` on receipt.
    """

    def __init__(
        self,
        send: Send,
        *,
        kinds: Collection[str],
        partitions: int,
        token: str = "",
        max_future_s: float = WorkerSettings.max_future_s,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.send, self.kinds, self.partitions, self.token = send, kinds, partitions, token
        self.max_future_s, self.clock = max_future_s, clock
        # taken on the event loop, given back by the worker thread when its reading ends (a
        # cancelled request does not free a thread that is still busy)
        self._big_readers = threading.BoundedSemaphore(BIG_READERS)

    async def handle(
        self,
        method: str,
        headers: Mapping[str, str],
        body: bytes | None,
        refused: tuple[int, str] | None = None,
    ) -> Answer:
        """Answer one request. ``body`` is None when the request had none; ``refused`` is why a
        body was not read (status and message, from ``web.http_body``)."""
        if method != "POST":
            return _error(405, f"{method} is not allowed on {PATH}; POST events", ("Allow", "POST"))
        if self.token:
            denied = self._denied(headers.get("Authorization"))
            if denied is not None:
                return denied
        if refused is not None:
            return _error(*refused)
        if body and (unread := unsupported_type(headers.get("Content-Type"))) is not None:
            return _error(415, unread)
        body, content_type, received = body or b"", headers.get("Content-Type"), self.clock()
        try:
            if len(body) <= INLINE_BYTES:
                parsed, messages = self._read(body, content_type, received)
            elif not self._big_readers.acquire(blocking=False):
                return _error(
                    503,
                    f"this server is reading {BIG_READERS} big bodies already; retry in a moment",
                    ("Retry-After", str(BUSY_RETRY_AFTER_S)),
                    retry_after_s=BUSY_RETRY_AFTER_S,
                )
            else:
                parsed, messages = await asyncio.to_thread(
                    self._read, body, content_type, received, self._big_readers
                )
        except InvalidBody as exc:
            return _error(400, str(exc))
        if parsed.events:
            try:
                await self.send(messages)
            except BrokerUnavailable as exc:
                # which broker and why is for the operator's log, not for the producer
                log.warning("ingest: %s", exc)
                return _error(
                    503,
                    "the broker did not acknowledge the events; nothing was accepted. "
                    "Retry the same request later: events are "
                    "de-duplicated by id, so any of them that did get through count once",
                    ("Retry-After", str(RETRY_AFTER_S)),
                    retry_after_s=RETRY_AFTER_S,
                )
        answer: dict[str, Any] = {
            "accepted": len(parsed.events),
            "rejected": parsed.rejected,
            "errors": parsed.errors,
        }
        if parsed.rejected > len(parsed.errors):
            answer["errors_omitted"] = parsed.rejected - len(parsed.errors)
        return Answer(202, orjson.dumps(answer))

    def _read(
        self,
        body: bytes,
        content_type: str | None,
        received: float,
        slot: threading.BoundedSemaphore | None = None,
    ) -> tuple[Parsed, list[Message]]:
        """The body's events and the messages that carry the valid ones: all the CPU a request
        costs. ``slot`` (a big body's, on a worker thread) is released when done."""
        try:
            parsed = parse_body(
                body,
                content_type,
                self.kinds,
                received=received,
                max_future_s=self.max_future_s,
            )
            return parsed, envelopes(parsed.events, self.partitions) if parsed.events else []
        finally:
            if slot is not None:
                slot.release()

    def _denied(self, authorization: str | None) -> Answer | None:
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _error(
                401,
                f"{PATH} needs the header 'Authorization: Bearer <token>' (KUDOS_WEB_INGEST_TOKEN)",
                ("WWW-Authenticate", 'Bearer realm="kudos"'),
            )
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return _error(
                401,
                "wrong token",
                ("WWW-Authenticate", 'Bearer realm="kudos", error="invalid_token"'),
            )
        return None
