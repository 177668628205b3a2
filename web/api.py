"""The JSON read API: routing and responses, independent of the socket server.

``handle(store, method, target)`` returns (status, body); ``web.server`` only owns sockets.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from redis.exceptions import RedisError

from leaderboard.errors import UnknownBoard
from leaderboard.explain import not_seen
from leaderboard.ranking import Entry
from leaderboard.store import Store

MAX_LIMIT = 1000
JSON = "application/json"


#: Most alerts one GET /api/alerts returns.
MAX_ALERTS = 1000


def _entry(e: Entry) -> dict[str, Any]:
    return {"rank": e.rank, "member": e.member, "score": e.score}


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, orjson.dumps({"error": message})


def _int_param(query: dict[str, list[str]], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name}={value} must be between {lo} and {hi}")
    return value


async def handle(store: Store, method: str, target: str) -> tuple[int, bytes]:
    """Answer one API request."""
    url = urlsplit(target)
    parts = [unquote(p) for p in url.path.split("/") if p]
    if method != "GET":
        return _error(405, f"{method} is not allowed here; the read API is GET only")
    try:
        if parts == ["healthz"]:
            await store.ping()
            wm, _ = await store.clock()
            return 200, orjson.dumps({"status": "ok", "as_of": wm})
        if len(parts) == 4 and parts[:2] == ["api", "members"] and parts[3] == "explain":
            explanation = await store.explanation(parts[2])
            if explanation is None:
                return _error(404, not_seen(parts[2]))
            return 200, orjson.dumps(explanation.to_json())
        if len(parts) == 4 and parts[:2] == ["api", "members"] and parts[3] == "perks":
            perks = await store.perks_of(parts[2])
            if perks is None:
                return _error(404, not_seen(parts[2]))
            return 200, orjson.dumps({"member": parts[2], "perks": perks})
        if parts == ["api", "alerts"]:
            # newest first; ?member=ID: that member's throttles (one record per post)
            query = parse_qs(url.query)
            try:
                limit = _int_param(query, "limit", 50, 1, MAX_ALERTS)
            except ValueError as exc:
                return _error(400, str(exc))
            member = query.get("member", [None])[-1]
            alerts = await store.alerts(limit, member)
            wm, _ = await store.clock()
            return 200, orjson.dumps({"as_of": wm, "limit": limit, "alerts": alerts})
        if parts[:2] != ["api", "boards"]:
            return _error(404, f"no such path {url.path!r}; see /api/boards")
        if len(parts) == 2:
            boards = await store.boards()
            wm, _ = await store.clock()
            rows = [{"id": b, "members": await store.count(b)} for b in boards]
            return 200, orjson.dumps({"as_of": wm, "boards": rows})
        board = parts[2]
        if len(parts) == 3:
            query = parse_qs(url.query)
            try:
                limit = _int_param(query, "limit", 10, 1, MAX_LIMIT)
                offset = _int_param(query, "offset", 0, 0, 10**12)
            except ValueError as exc:
                return _error(400, str(exc))
            entries, size = await store.page(board, limit, offset)
            wm, _ = await store.clock()
            return 200, orjson.dumps(
                {
                    "board": board,
                    "members": size,
                    "as_of": wm,
                    "limit": limit,
                    "offset": offset,
                    "entries": [_entry(e) for e in entries],
                }
            )
        if len(parts) == 5 and parts[3] == "members":
            st = await store.standing(board, parts[4])
            if st is None:
                return _error(404, f"{parts[4]!r} is not on board {board!r}")
            wm, _ = await store.clock()
            return 200, orjson.dumps(
                {
                    "board": board,
                    "member": st.member,
                    "rank": st.rank,
                    "score": st.score,
                    "members": st.members,
                    "percentile": st.percentile,
                    "as_of": wm,
                    "around": [_entry(e) for e in st.around],
                }
            )
        return _error(404, f"no such path {url.path!r}")
    except UnknownBoard as exc:
        return _error(404, str(exc))
    except RedisError as exc:
        return _error(503, f"Redis is unavailable: {exc}")
