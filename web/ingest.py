"""HTTP ingest: ``POST /api/events``, for producers that do not speak Kafka.

The body is one JSON object (one event), a JSON array of events, or NDJSON: one event per line,
declared with ``Content-Type: application/x-ndjson`` (or ``application/jsonl``), or detected when
a body that starts with ``{`` is not one JSON value. Every event is validated by the worker's own
code (:func:`leaderboard.events.parse_event`, same reason codes as the dead-letter queue); the
valid ones are grouped by partition of their target into envelopes (:class:`Envelopes`, as
``kudos replay`` builds them) and produced. Rejected events are never produced.

All or nothing towards the broker: 202 comes only once the broker has acknowledged every accepted
event. If it does not within ``KUDOS_WEB_INGEST_TIMEOUT_S``, the answer is 503 with
``Retry-After`` and nothing is reported accepted, even though part of it may have been written:
retrying the same body is safe, because events carry ids and the worker applies an id once (for
the dedupe horizon, 7 days of event time). The same holds for an answer lost on the way back.

This module decides the answer; ``web.server`` owns the socket, ``web.http_body`` reads the body.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from broker.producer import Envelopes, Message
from leaderboard.errors import BrokerUnavailable, InvalidBody, InvalidEvent
from leaderboard.events import parse_event

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
#: Rejections listed in one answer; the others are only counted (``errors_omitted``).
MAX_ERRORS = 1000
#: Bounds of one produced envelope: events, and bytes (well below Apache Kafka's default 1 MiB
#: message limit, whatever KUDOS_WEB_INGEST_MAX_BYTES allows).
ENVELOPE_EVENTS = 500
ENVELOPE_BYTES = 512 * 1024
#: Seconds a client is told to wait before retrying after a 503.
RETRY_AFTER_S = 5

_BOM = b"\xef\xbb\xbf"
_SHAPES = "send a JSON object, a JSON array of objects, or NDJSON (one object per line)"

Send = Callable[[Sequence[Message]], Awaitable[None]]


@dataclass
class Parsed:
    """A readable body: the valid events as sent, and one error per rejected event."""

    events: list[dict[str, Any]] = field(default_factory=list)
    #: {"line": n} (NDJSON, 1-based) or {"index": i} (array; 0 for a single object), plus
    #: "reason" (a stable code) and "detail"
    errors: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, where: tuple[str, int], value: Any, kinds: Collection[str], check_size: bool
    ) -> None:
        try:
            parse_event(value, kinds)
            # events are produced as sent, unknown fields included (a newer worker may know
            # them), so one could outgrow a Kafka message; only possible in a big body
            if check_size and len(orjson.dumps(value)) > ENVELOPE_BYTES:
                raise InvalidEvent(
                    "bad_length", f"the event is more than {ENVELOPE_BYTES} bytes of JSON"
                )
        except InvalidEvent as exc:
            self.errors.append({where[0]: where[1], "reason": exc.reason, "detail": exc.detail})
            return
        self.events.append(value)


def parse_body(body: bytes, content_type: str | None, kinds: Collection[str]) -> Parsed:
    """Read and validate a ``POST /api/events`` body (pure).

    Raises:
        InvalidBody: nothing in it is readable: empty, not JSON, no JSON line, or a JSON value
            that is neither an object nor an array.
    """
    body = body.removeprefix(_BOM)
    if not body.strip():
        raise InvalidBody(f"the body is empty; {_SHAPES}")
    media = (content_type or "").partition(";")[0].strip().lower()
    if media in NDJSON_TYPES:
        return _ndjson(body, kinds)
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if body.lstrip()[:1] == b"{":  # several objects, one per line
            return _ndjson(body, kinds)
        raise InvalidBody(f"the body is not JSON ({exc}); {_SHAPES}") from None
    out, big = Parsed(), len(body) > ENVELOPE_BYTES
    if isinstance(value, dict):
        out.add(("index", 0), value, kinds, big)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.add(("index", i), item, kinds, big)
    else:
        raise InvalidBody(f"the body is a JSON {type(value).__name__}; {_SHAPES}")
    return out


def _ndjson(body: bytes, kinds: Collection[str]) -> Parsed:
    out, big = Parsed(), len(body) > ENVELOPE_BYTES
    readable = False
    for n, line in enumerate(body.split(b"\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            out.errors.append({"line": n, "reason": "bad_json", "detail": str(exc)})
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
    """

    def __init__(
        self, send: Send, *, kinds: Collection[str], partitions: int, token: str = ""
    ) -> None:
        self.send, self.kinds, self.partitions, self.token = send, kinds, partitions, token

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
        try:
            parsed = parse_body(body or b"", headers.get("Content-Type"), self.kinds)
        except InvalidBody as exc:
            return _error(400, str(exc))
        if parsed.events:
            try:
                await self.send(envelopes(parsed.events, self.partitions))
            except BrokerUnavailable as exc:
                return _error(
                    503,
                    f"{exc}; nothing was accepted. Retry the same request later: events are "
                    "de-duplicated by id, so any of them that did get through count once",
                    ("Retry-After", str(RETRY_AFTER_S)),
                    retry_after_s=RETRY_AFTER_S,
                )
        answer: dict[str, Any] = {
            "accepted": len(parsed.events),
            "rejected": len(parsed.errors),
            "errors": parsed.errors[:MAX_ERRORS],
        }
        if len(parsed.errors) > MAX_ERRORS:
            answer["errors_omitted"] = len(parsed.errors) - MAX_ERRORS
        return Answer(202, orjson.dumps(answer))

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
