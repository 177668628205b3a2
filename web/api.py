"""The JSON read API: routes as data, independent of the socket server.

Every path is one :class:`Route` in :data:`ROUTES`: its template (``/api/boards/{board}``), the
handler, and what it answers, which is also what ``GET /openapi.json`` describes
(:mod:`web.openapi` builds the description from this table, so the two cannot drift).
``handle(store, method, target)`` returns (status, body); ``web.server`` only owns sockets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, unquote_plus, urlsplit

import orjson
from redis.exceptions import RedisError

from leaderboard.calendar import period_of
from leaderboard.errors import PageTooDeep, StoreConflict, UnknownBoard
from leaderboard.explain import not_seen
from leaderboard.ranking import MAX_COHORT, Entry, parse_cohort
from leaderboard.store import Store
from leaderboard.store.shards import Shards

MAX_LIMIT = 1000
JSON = "application/json"
#: Most alerts one GET /api/alerts returns.
MAX_ALERTS = 1000
#: Longest path parameter (board and member ids are at most 128 characters, a board id with its
#: community a little more); longer is answered 404 without reaching Redis.
MAX_PARAM = 256

log = logging.getLogger("kudos.web.api")

Answer = tuple[int, bytes]


@dataclass(frozen=True, slots=True)
class Query:
    """One integer query parameter: its default and bounds (documented, and checked: 400)."""

    name: str
    default: int
    lo: int
    hi: int
    description: str


@dataclass(frozen=True, slots=True)
class Request:
    """What a handler sees: the store, the path parameters and the integer/str query values."""

    store: Store | Shards
    params: Mapping[str, str]
    ints: Mapping[str, int]
    query: Mapping[str, list[str]]
    #: the request carried the read token (``Authorization: Bearer <KUDOS_WEB_TOKEN>``)
    authorized: bool = False
    #: the query string as sent, not decoded (a list parameter splits before it decodes)
    raw_query: str = ""


Handler = Callable[[Request], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Route:
    """``GET path`` answered by ``handler``; ``summary``, ``ints``, ``strs`` and ``answers``
    (status → (description, JSON schema of the body)) are its documentation."""

    path: str
    handler: Handler
    summary: str
    ints: tuple[Query, ...] = ()
    #: optional string query parameters: name → description
    strs: Mapping[str, str] = field(default_factory=dict)
    #: required string query parameters: name → (description, JSON schema of the value)
    needs: Mapping[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    answers: Mapping[int, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(p for p in self.path.split("/") if p)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The path parameters if ``parts`` (unquoted segments) fit this template."""
        segs = self.segments
        if len(segs) != len(parts):
            return None
        params: dict[str, str] = {}
        for seg, part in zip(segs, parts, strict=True):
            if seg.startswith("{"):
                if not part or len(part) > MAX_PARAM:
                    return None
                params[seg[1:-1]] = part
            elif seg != part:
                return None
        return params


def _entry(e: Entry) -> dict[str, Any]:
    return {"rank": e.rank, "member": e.member, "score": e.score}


async def _named(store: Store | Shards, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` (entries with a ``member``) with each member's display ``name`` and ``avatar``,
    where they set one (profile events; ids stay the key)."""
    found = await store.profiles([row["member"] for row in rows])
    for row in rows:
        row.update(found.get(row["member"], {}))
    return rows


def _error(status: int, message: str) -> Answer:
    return status, orjson.dumps({"error": message})


def _ok(body: dict[str, Any]) -> Answer:
    return 200, orjson.dumps(body)


async def _healthz(r: Request) -> Answer:
    await r.store.ping()
    wm, _ = await r.store.clock()
    return _ok({"status": "ok", "as_of": wm})


async def _explain(r: Request) -> Answer:
    member = r.params["member"]
    explanation = await r.store.explanation(member)
    if explanation is None:
        return _error(404, not_seen(member))
    body = explanation.to_json()
    body.update((await r.store.profiles([member])).get(member, {}))
    return _ok(body)


async def _perks(r: Request) -> Answer:
    member = r.params["member"]
    perks = await r.store.perks_of(member)
    if perks is None:
        return _error(404, not_seen(member))
    if not r.authorized:
        # a payload may be a coupon code: only for readers with the token (docs/security.md)
        perks = [{k: v for k, v in p.items() if k != "payload"} for p in perks]
    return _ok({"member": member, "perks": perks})


async def _alerts(r: Request) -> Answer:
    # newest first; ?member=ID: that member's throttles (one record per post)
    member = r.query.get("member", [None])[-1]
    if member is not None and not 0 < len(member) <= MAX_PARAM:
        return _error(400, f"member must be 1 to {MAX_PARAM} characters")
    limit = r.ints["limit"]
    alerts = await r.store.alerts(limit, member)
    wm, _ = await r.store.clock()
    return _ok({"as_of": wm, "limit": limit, "alerts": alerts})


async def _boards(r: Request) -> Answer:
    boards, nxt = await r.store.boards(r.ints["cursor"], r.ints["limit"])
    wm, _ = await r.store.clock()
    rows = [{"id": b, "members": n} for b, n in boards]
    return _ok({"as_of": wm, "boards": rows, "next": nxt or None})


async def _board(r: Request) -> Answer:
    board, limit, offset = r.params["board"], r.ints["limit"], r.ints["offset"]
    entries, size = await r.store.page(board, limit, offset)
    wm, _ = await r.store.clock()
    return _ok(
        {
            "board": board,
            "members": size,
            "as_of": wm,
            "limit": limit,
            "offset": offset,
            "entries": await _named(r.store, [_entry(e) for e in entries]),
        }
    )


async def _board_member(r: Request) -> Answer:
    board, member = r.params["board"], r.params["member"]
    st = await r.store.standing(board, member)
    if st is None:
        return _error(404, f"{member!r} is not on board {board!r}")
    wm, _ = await r.store.clock()
    around = await _named(r.store, [_entry(e) for e in st.around])
    me = (await r.store.profiles([member])).get(member, {})
    return _ok(
        {
            **me,
            "board": board,
            "member": st.member,
            "rank": st.rank,
            "score": st.score,
            "members": st.members,
            "percentile": st.percentile,
            "as_of": wm,
            "around": around,
        }
    )


def _decode(piece: str) -> str:
    """One piece of a comma-separated query value, percent-decoded (``+`` is a space, as in any
    form-encoded query); not UTF-8: UnicodeDecodeError."""
    return unquote_plus(piece, errors="strict")


def _members(r: Request) -> list[str]:
    """The ids of ``members=a,b,…`` (split on literal commas before percent-decoding).

    Raises:
        ValueError: given twice, none, too many, or a bad id (the reason, for a 400).
    """
    given = [v for k, _, v in (p.partition("=") for p in r.raw_query.split("&")) if k == "members"]
    if len(given) > 1:
        raise ValueError("members= is given more than once: give one comma-separated list")
    return parse_cohort(given[0] if given else "", decode=_decode)


async def _cohort(r: Request) -> Answer:
    board = r.params["board"]
    try:
        members = _members(r)
    except ValueError as exc:
        return _error(400, str(exc))
    entries, size, missing = await r.store.cohort(board, members)
    wm, _ = await r.store.clock()
    return _ok(
        {
            "board": board,
            "members": size,
            "as_of": wm,
            "entries": await _named(r.store, [e.to_json() for e in entries]),
            "missing": missing,
        }
    )


async def _profiles(r: Request) -> Answer:
    try:
        members = _members(r)
    except ValueError as exc:
        return _error(400, str(exc))
    return _ok({"profiles": await r.store.profiles(members)})


async def _periods(r: Request) -> Answer:
    unit, limit = r.params["board"], r.ints["limit"]
    rows = await r.store.periods(unit, limit)
    wm, _ = await r.store.clock()
    live = None if wm is None else period_of(unit, wm).board
    return _ok(
        {
            "board": unit,
            "as_of": wm,
            "live": live,
            "periods": [{"id": b, "members": n} for b, n in rows],
        }
    )


# -- the table -----------------------------------------------------------------------------

_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
_OBJECT: dict[str, Any] = {"type": "object"}
_AS_OF = {"type": ["number", "null"], "description": "the watermark W (unix seconds)"}


def _obj(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """The JSON schema of an object with these properties, all required but ``optional``."""
    required = [k for k in properties if k not in optional]
    return {"type": "object", "required": required, "properties": properties}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


#: a member's display name and avatar (https URL), where they set one (profile events)
_NAMED = {"name": _STR, "avatar": {"type": "string", "format": "uri"}}
_ENTRY = _obj({"rank": _INT, "member": _STR, "score": _NUM, **_NAMED}, optional=tuple(_NAMED))
#: A member id that needs no percent-encoding in a query (and that ``+`` cannot turn into a
#: space): what the cohort's documented pattern shows.
_PLAIN_ID = "[A-Za-z0-9._~:@!$'()*;=-]{1,128}"
ERROR = _obj({"error": {"type": "string", "description": "what went wrong, what to do"}})
_MEMBERS_DOC = (
    f"1-{MAX_COHORT:,} member ids separated by literal commas (style form, explode false: the "
    "separators are not percent-encoded; duplicates dropped). Any id works, percent-encoded "
    "(an encoded comma stays inside its id); the items' pattern shows the ids that need no "
    "encoding. The schema lists up to 50; the server takes 1,000 as long as the request line "
    "fits its 8 KiB (a long list of long ids goes in several requests, or `kudos board BOARD "
    "--members`)"
)
#: (an array serialised as a=x,y,z: schemathesis and generated clients then keep the commas)
_MEMBERS: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "pattern": f"^{_PLAIN_ID}$"},
    "minItems": 1,
    "maxItems": 50,
}
_BAD = ("a query parameter is out of range", ERROR)
_UNKNOWN_BOARD = ("no such board (or member)", ERROR)

ROUTES: tuple[Route, ...] = (
    Route(
        "/healthz",
        _healthz,
        "Health: 200 while Redis answers",
        answers={200: ("Redis answers", _obj({"status": {"const": "ok"}, "as_of": _AS_OF}))},
    ),
    Route(
        "/api/boards",
        _boards,
        "The boards that have members (base boards always, first), with sizes, a page at a time",
        ints=(
            # a first page of up to 1,000 by default: readers of the whole list keep working
            # for any namespace of fewer boards, and bigger ones follow `next`
            Query("limit", MAX_LIMIT, 1, MAX_LIMIT, "about this many boards per page"),
            Query("cursor", 0, 0, 2**64 - 1, "the `next` of the previous page; 0 starts"),
        ),
        answers={
            200: (
                "the boards",
                _obj(
                    {
                        "as_of": _AS_OF,
                        "next": {
                            "type": ["integer", "null"],
                            "description": "the cursor of the next page; null: the last page",
                        },
                        "boards": _list(_obj({"id": _STR, "members": _INT})),
                    }
                ),
            ),
            400: _BAD,
        },
    ),
    Route(
        "/api/boards/{board}",
        _board,
        "One page of a board, best first, with competition ranks",
        ints=(
            Query("limit", 10, 1, MAX_LIMIT, "entries on the page"),
            Query(
                "offset",
                0,
                0,
                10**12,
                "entries to skip (at most 10,000 with offset + limit on a namespace kept as shards: 400)",
            ),
        ),
        answers={
            200: (
                "the page",
                _obj(
                    {
                        "board": _STR,
                        "members": _INT,
                        "as_of": _AS_OF,
                        "limit": _INT,
                        "offset": _INT,
                        "entries": _list(_ENTRY),
                    }
                ),
            ),
            400: _BAD,
            404: _UNKNOWN_BOARD,
        },
    ),
    Route(
        "/api/boards/{board}/members/{member}",
        _board_member,
        "A member's rank, score and percentile on a board, with neighbours",
        answers={
            200: (
                "the standing",
                _obj(
                    {
                        "board": _STR,
                        "member": _STR,
                        "rank": _INT,
                        "score": _NUM,
                        "members": _INT,
                        "percentile": _NUM,
                        "as_of": _AS_OF,
                        "around": _list(_ENTRY),
                        **_NAMED,
                    },
                    optional=("as_of", "around", *_NAMED),
                ),
            ),
            404: _UNKNOWN_BOARD,
        },
    ),
    Route(
        "/api/boards/{board}/cohort",
        _cohort,
        "A peer board: the members named ranked among themselves, with their ranks on the board",
        needs={
            "members": (
                _MEMBERS_DOC,
                _MEMBERS,
            )
        },
        answers={
            200: (
                "the cohort, best first; `rank` among the cohort, `global_rank` on the board",
                _obj(
                    {
                        "board": _STR,
                        "members": {"type": "integer", "description": "the board's size"},
                        "as_of": _AS_OF,
                        "entries": _list(
                            _obj(
                                {
                                    "rank": _INT,
                                    "member": _STR,
                                    "score": _NUM,
                                    "global_rank": _INT,
                                    **_NAMED,
                                },
                                optional=tuple(_NAMED),
                            )
                        ),
                        "missing": _list(_STR),
                    }
                ),
            ),
            400: ("members= is missing, empty, too long or names a bad id", ERROR),
            404: _UNKNOWN_BOARD,
        },
    ),
    Route(
        "/api/boards/{board}/periods",
        _periods,
        "The archived periods of a calendar board (day, week or month) that are kept, newest first",
        ints=(Query("limit", 100, 1, MAX_LIMIT, "periods to return"),),
        answers={
            200: (
                "the periods; `live` is the archive the live board is now (the period of W)",
                _obj(
                    {
                        "board": _STR,
                        "as_of": _AS_OF,
                        "live": {"type": ["string", "null"]},
                        "periods": _list(_obj({"id": _STR, "members": _INT})),
                    }
                ),
            ),
            400: _BAD,
            404: ("not a calendar board (day, week or month)", ERROR),
        },
    ),
    Route(
        "/api/profiles",
        _profiles,
        "Display names and avatars of the members named (those who set one)",
        needs={"members": (_MEMBERS_DOC, _MEMBERS)},
        answers={
            200: (
                "member → its name and avatar (either may be absent); members with neither are "
                "left out",
                _obj(
                    {
                        "profiles": {
                            "type": "object",
                            "additionalProperties": _obj(_NAMED, tuple(_NAMED)),
                        }
                    }
                ),
            ),
            400: ("members= is missing, empty, too long or names a bad id", ERROR),
        },
    ),
    Route(
        "/api/members/{member}/explain",
        _explain,
        "Why a member has their scores: per kind points, discounts, withheld; top posts; trend",
        answers={200: ("the explanation", _OBJECT), 404: ("never seen", ERROR)},
    ),
    Route(
        "/api/members/{member}/perks",
        _perks,
        "A member's perk unlocks, oldest first; payloads only with the read token",
        answers={
            200: ("the unlocks", _obj({"member": _STR, "perks": _list(_OBJECT)})),
            404: ("never seen", ERROR),
        },
    ),
    Route(
        "/api/alerts",
        _alerts,
        "Comment-bait alerts (throttles started and ended), newest first",
        ints=(Query("limit", 50, 1, MAX_ALERTS, "alerts to return"),),
        strs={"member": "only this member's throttles (one record per post)"},
        answers={
            200: ("the alerts", _obj({"as_of": _AS_OF, "limit": _INT, "alerts": _list(_OBJECT)})),
            400: _BAD,
        },
    ),
)

#: Every route answers these too.
COMMON_ANSWERS: dict[int, tuple[str, dict[str, Any]]] = {
    421: ("the Host is not one this process answers (KUDOS_WEB_ALLOWED_HOSTS)", ERROR),
    503: ("Redis is unavailable, or the board moved under the read; retry with backoff", ERROR),
}


def _int_param(query: Mapping[str, list[str]], q: Query) -> int:
    raw = query.get(q.name, [str(q.default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{q.name}={raw[:40]!r} is not an integer") from None
    if not q.lo <= value <= q.hi:
        raise ValueError(f"{q.name}={value} must be between {q.lo} and {q.hi}")
    return value


async def handle(
    store: Store | Shards, method: str, target: str, *, authorized: bool = False
) -> Answer:
    """Answer one API request: the first route whose template fits, else 404. ``authorized``:
    the request carried the read token (it sees perk payloads)."""
    url = urlsplit(target)
    parts = [unquote(p) for p in url.path.split("/") if p]
    if method != "GET":
        return _error(405, f"{method} is not allowed here; the read API is GET only")
    for route in ROUTES:
        params = route.match(parts)
        if params is None:
            continue
        query = parse_qs(url.query)
        try:
            ints = {q.name: _int_param(query, q) for q in route.ints}
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            return await route.handler(
                Request(store, params, ints, query, authorized, raw_query=url.query)
            )
        except UnknownBoard as exc:
            return _error(404, str(exc))
        except PageTooDeep as exc:
            return _error(400, str(exc))
        except StoreConflict as exc:
            # (a rebuild's switch or a decay landmark kept moving under the read: rare, brief)
            log.warning("GET %s: %s", url.path, exc)
            return _error(
                503, "the board moved under the read (a rebuild or a decay rescale); retry"
            )
        except RedisError as exc:
            # the reason goes to the log: Redis's own words may name hosts and keys
            log.warning("GET %s: Redis is unavailable: %s", url.path, exc)
            return _error(503, "Redis is unavailable; retry with backoff")
    hint = "; see /api/boards" if parts[:2] != ["api", "boards"] else ""
    return _error(404, f"no such path {url.path[:200]!r}{hint}")
