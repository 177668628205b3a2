"""``GET /openapi.json``: an OpenAPI 3.1 description of every HTTP endpoint of the web process.

The read API's part is generated from :data:`web.api.ROUTES`, the table that also routes the
requests, so the description cannot drift from the code; the few endpoints ``web.server`` answers
itself (ingest, metrics, the page, the websocket upgrade) are described here beside it. A test runs
``schemathesis`` against a real web process with this description: no 5xx, every answer matches.
"""

from __future__ import annotations

from typing import Any

import orjson

from web import api

PATH = "/openapi.json"
VERSION = "3.1.0"

_TEXT = {"text/plain": {"schema": {"type": "string"}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {api.JSON: {"schema": schema}}}


def _route(route: api.Route) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
        for seg in route.segments
        if seg.startswith("{")
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "description": q.description,
            "schema": {"type": "integer", "minimum": q.lo, "maximum": q.hi, "default": q.default},
        }
        for q in route.ints
    ]
    params += [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": d,
            "schema": {"type": "string"},
        }
        for name, d in route.strs.items()
    ]
    params += [
        {
            "name": name,
            "in": "query",
            "required": True,
            "description": d,
            "schema": schema,
            # a list is one comma-separated value (a=x,y), never a=x&a=y
            **({"style": "form", "explode": False} if schema.get("type") == "array" else {}),
        }
        for name, (d, schema) in route.needs.items()
    ]
    answers = {**route.answers, **api.COMMON_ANSWERS}
    op: dict[str, Any] = {
        "summary": route.summary,
        "responses": {str(s): _json(d, schema) for s, (d, schema) in sorted(answers.items())},
    }
    if params:
        op["parameters"] = params
    return {"get": op}


_INGEST_ERROR = {
    "type": "object",
    "required": ["line", "reason"],
    "properties": {
        "line": {"type": "integer"},
        "index": {"type": "integer"},
        "reason": {"type": "string"},
        "detail": {"type": "string"},
    },
}

_INGEST = {
    "post": {
        "summary": "HTTP ingest: one event, a JSON array of events, or NDJSON",
        "requestBody": {
            "required": True,
            "content": {
                api.JSON: {
                    "schema": {
                        "description": "one event, or an array of them (events: README)",
                        "oneOf": [
                            {"type": "object"},
                            {"type": "array", "items": {"type": "object"}, "minItems": 1},
                        ],
                    }
                },
                "application/x-ndjson": {
                    "schema": {"type": "string", "description": "one JSON event per line"}
                },
            },
        },
        "responses": {
            "202": _json(
                "the broker has every accepted event; rejected ones were never produced",
                {
                    "type": "object",
                    "required": ["accepted", "rejected", "errors"],
                    "properties": {
                        "accepted": {"type": "integer"},
                        "rejected": {"type": "integer"},
                        "errors": {
                            "description": "the first 100 rejections",
                            "type": "array",
                            "items": {"type": "object"},
                            "maxItems": 100,
                        },
                        "errors_omitted": {
                            "description": "rejections beyond the first 100 (only then)",
                            "type": "integer",
                        },
                    },
                },
            ),
            "400": _json("the body is neither JSON nor NDJSON", api.ERROR),
            "401": _json("KUDOS_WEB_INGEST_TOKEN is set and the bearer token is not it", api.ERROR),
            "403": _json("a browser Origin that is not allowed", api.ERROR),
            "411": _json("no Content-Length", api.ERROR),
            "413": _json("larger than KUDOS_WEB_INGEST_MAX_BYTES", api.ERROR),
            "415": _json("not application/json or application/x-ndjson", api.ERROR),
            "421": _json("the Host is not one this process answers", api.ERROR),
            "503": _json(
                "the broker did not acknowledge in time, or two big bodies are being read "
                "already; retry the same body after Retry-After",
                api.ERROR,
            ),
        },
    }
}


_ADMIN = "needs Authorization: Bearer <a token of KUDOS_WEB_ADMIN_TOKENS>"

_ERASE: dict[str, Any] = {
    "post": {
        "summary": "Erase a member (the right to erasure, as `kudos erase`): off every board, "
        "archive, explain view, perk, outbox and feed, and never scored again; " + _ADMIN,
        "parameters": [
            {"name": "member", "in": "path", "required": True, "schema": {"type": "string"}}
        ],
        "requestBody": {
            "required": False,
            "content": {
                api.JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {"reason": {"type": "string", "maxLength": 300}},
                        "additionalProperties": False,
                    }
                }
            },
        },
        "responses": {
            "200": _json(
                "erased (also a member never seen: their later events will not score)",
                {
                    "type": "object",
                    "required": ["erased", "tombstone", "rows", "by", "logged"],
                    "properties": {
                        "erased": {"const": True},
                        "tombstone": {"type": "string"},
                        "rows": {"type": "integer"},
                        "unlocks": {"type": "integer"},
                        "outbox_entries": {"type": "integer"},
                        "webhook_jobs": {"type": "integer"},
                        "by": {"type": "string"},
                        "logged": {"type": "string"},
                    },
                },
            ),
            "202": _json(
                "accepted: the erase is still running (tombstone and board rows first, then "
                "outboxes, webhooks, the feed); sending it again is safe",
                {
                    "type": "object",
                    "required": ["erased", "tombstone", "by", "running"],
                    "properties": {
                        "erased": {"const": True},
                        "tombstone": {"type": "string"},
                        "by": {"type": "string"},
                        "running": {"type": "string"},
                    },
                },
            ),
            "400": _json("a bad member id, body or reason; a repeated header", api.ERROR),
            "401": _json("no admin token, or a wrong one", api.ERROR),
            "403": _json("KUDOS_WEB_ADMIN_TOKENS is not set, or a browser Origin", api.ERROR),
            "405": _json("not POST", api.ERROR),
            "409": _json("a kudos rebuild is running: retry after Retry-After", api.ERROR),
            "411": _json("a chunked body", api.ERROR),
            "413": _json("a body of more than 4096 bytes", api.ERROR),
            "415": _json("a body that is not application/json", api.ERROR),
            "421": _json("the Host is not one this process answers", api.ERROR),
            "503": _json("Redis did not answer: send the same erase again", api.ERROR),
        },
    }
}


def _member_action(action: str, summary: str, body: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary + "; " + _ADMIN,
            "parameters": [
                {"name": "member", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {
                "required": action == "hide",
                "content": {
                    api.JSON: {
                        "schema": {
                            "type": "object",
                            "description": body,
                            "properties": {"reason": {"type": "string", "maxLength": 300}},
                            "additionalProperties": False,
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    "done (changed: false when there was nothing to change)",
                    {
                        "type": "object",
                        "required": [action, "changed", "by"],
                        "properties": {
                            action: {"type": "string"},
                            "changed": {"type": "boolean"},
                            "by": {"type": "string"},
                        },
                    },
                ),
                **{k: v for k, v in _ERASE["post"]["responses"].items() if k not in ("200", "409")},
                "400": _json(
                    "a bad member id, body or reason; or 1,000 members hidden already", api.ERROR
                ),
            },
        }
    }


_HIDE = _member_action(
    "hide",
    "Take a member off every board for moderation (their points keep accruing, exactly)",
    "reason: required",
)
_UNHIDE = _member_action(
    "unhide", "Show a hidden member on the boards again, nothing lost", "reason: optional"
)

_MODLOG = {
    "get": {
        "summary": "The hidden members and the moderation audit log, newest first: action, subject (an erased member's "
        "tombstone), by, at, reason; " + _ADMIN,
        "parameters": [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
            }
        ],
        "responses": {
            "200": _json(
                "the entries",
                {
                    "type": "object",
                    "required": ["hidden", "log"],
                    "properties": {
                        "hidden": {"type": "object"},
                        "log": {"type": "array", "items": {"type": "object"}},
                    },
                },
            ),
            "400": _json("a bad limit", api.ERROR),
            "401": _json("no admin token, or a wrong one", api.ERROR),
            "403": _json("KUDOS_WEB_ADMIN_TOKENS is not set", api.ERROR),
            "405": _json("not GET", api.ERROR),
            "421": _json("the Host is not one this process answers", api.ERROR),
            "503": _json("Redis did not answer: retry", api.ERROR),
        },
    }
}


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh dict each call)."""
    paths: dict[str, Any] = {route.path: _route(route) for route in api.ROUTES}
    paths["/api/events"] = _INGEST
    paths["/api/members/{member}/erase"] = _ERASE
    paths["/api/members/{member}/hide"] = _HIDE
    paths["/api/members/{member}/unhide"] = _UNHIDE
    paths["/api/moderation"] = _MODLOG
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics of this web process (docs/metrics.md)",
            "responses": {"200": {"description": "the exposition", "content": _TEXT}},
        }
    }
    paths[PATH] = {
        "get": {
            "summary": "This description",
            "responses": {"200": _json("OpenAPI 3.1", {"type": "object"})},
        }
    }
    return {
        "openapi": VERSION,
        "info": {
            "title": "Kudos",
            "version": "1",
            "description": "Read API, HTTP ingest and moderation of a Kudos web process. The live push "
            "protocol (GET /ws, a websocket) is described in docs/protocol.md; the page is GET /.",
        },
        "paths": paths,
    }


def body() -> bytes:
    return orjson.dumps(document())
