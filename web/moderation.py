"""The moderation endpoints: ``POST /api/members/{member}/erase`` (the right to erasure, as
``kudos erase``), ``POST /api/members/{member}/hide`` and ``/unhide`` (as ``kudos hide`` and
``kudos unhide``), and ``GET /api/moderation`` (the hidden members and the audit log).

Both need ``Authorization: Bearer <token>`` with one of ``KUDOS_WEB_ADMIN_TOKENS`` (``name:token``
pairs; the audit log records the name as who did it); with none configured they answer 403. The
body, if any, is a JSON object ``{"reason": "..."}`` of at most :data:`MAX_BODY` bytes (a hide
needs one).
This module decides the answer; ``web.server`` owns the socket (and refuses a cross-site browser
``Origin``, as for ingest), :mod:`leaderboard.store.moderation` does the erasing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from redis.exceptions import RedisError

from leaderboard.errors import ModerationError, StoreConflict
from leaderboard.moderation import MAX_REASON, tombstone
from leaderboard.store import Store
from leaderboard.store.moderation import Erasure, erase, hide, unhide
from leaderboard.store.shards import Shards
from web.ingest import JSON, Answer

log = logging.getLogger("kudos.web.moderation")

LOG_PATH = "/api/moderation"
MEMBERS_PREFIX = "/api/members/"
#: The POST actions on a member: /api/members/{member}/<action>
ACTIONS = ("erase", "hide", "unhide")
#: Largest erase body (a reason of MAX_REASON characters fits many times over).
MAX_BODY = 4096
#: Most audit entries one GET returns.
MAX_LOG = 1000
#: How long a request waits for its erase (websockets drops a request not answered within 10 s):
#: a longer one goes on in the background, answered 202, and shows in GET /api/moderation.
ERASE_WAIT_S = 7.0


def _error(status: int, message: str, *headers: tuple[str, str]) -> Answer:
    return Answer(status, orjson.dumps({"error": message}), headers)


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    get_all = getattr(headers, "get_all", None)  # (websockets' Headers; a dict in tests)
    return (
        list(get_all(name)) if get_all is not None else [headers[name]] if name in headers else []
    )


def is_moderation_path(path: str) -> bool:
    path = path.partition("?")[0]
    if path == LOG_PATH:
        return True
    head, _, action = path.rpartition("/")
    return action in ACTIONS and head.startswith(MEMBERS_PREFIX) and len(head) > len(MEMBERS_PREFIX)


class Moderation:
    """Answers the moderation endpoints for ``store`` (a Store, or a namespace's shards)."""

    def __init__(
        self,
        store: Store | Shards,
        tokens: Sequence[tuple[str, str]],
        erase_wait_s: float = ERASE_WAIT_S,
    ) -> None:
        self.store = store
        self.tokens = tuple(tokens)
        self.erase_wait_s = erase_wait_s
        #: erases still running after their request was answered (kept from the collector)
        self.running: set[asyncio.Task[Erasure]] = set()

    def _who(self, authorization: str | None) -> str | Answer:
        """The name of the admin token presented, or the refusal."""
        if not self.tokens:
            return _error(
                403,
                "moderation over HTTP is off: set KUDOS_WEB_ADMIN_TOKENS (name:token pairs), "
                "or use `kudos erase`",
            )
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _error(
                401,
                "moderation needs the header 'Authorization: Bearer <token>' with a token of "
                "KUDOS_WEB_ADMIN_TOKENS",
                ("WWW-Authenticate", 'Bearer realm="kudos-admin"'),
            )
        presented = given.strip().encode()
        who = None
        for name, token in self.tokens:  # (every one compared: the time names none of them)
            if hmac.compare_digest(presented, token.encode()) and who is None:
                who = name
        if who is None:
            return _error(
                401,
                "wrong token",
                ("WWW-Authenticate", 'Bearer realm="kudos-admin", error="invalid_token"'),
            )
        return who

    def _parts(self) -> tuple[list[Store], Store]:
        if isinstance(self.store, Shards):
            return list(self.store.stores), self.store.own
        return [self.store], self.store

    async def handle(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
        refused: tuple[int, str] | None = None,
    ) -> Answer:
        """Answer one request to a path :func:`is_moderation_path` accepts."""
        path, _, query = target.partition("?")
        allowed = "GET" if path == LOG_PATH else "POST"
        if method != allowed:
            return _error(405, f"{method} is not allowed on {path}; {allowed}", ("Allow", allowed))
        for name in ("Authorization", "Content-Type"):
            if len(_all(headers, name)) > 1:
                return _error(400, f"send one {name} header, not several")
        who = self._who(headers.get("Authorization"))
        if isinstance(who, Answer):
            return who
        if path == LOG_PATH:
            try:
                return await self._log(query)
            except (RedisError, OSError):
                return _error(503, "Redis did not answer; retry", ("Retry-After", "5"))
        if refused is not None:
            return _error(*refused)
        head, _, action = path.rpartition("/")
        try:
            member = unquote(head[len(MEMBERS_PREFIX) :], errors="strict")
        except UnicodeDecodeError:
            return _error(400, "the member id in the path is not UTF-8 once percent-decoded")
        reason = self._reason(headers.get("Content-Type"), body or b"")
        if isinstance(reason, Answer):
            return reason
        stores, own = self._parts()
        try:
            if action != "erase":
                act = hide if action == "hide" else unhide
                changed = await act(stores, own, member, by=who, reason=reason)
                return Answer(200, orjson.dumps({action: member, "changed": changed, "by": who}))
            task = asyncio.ensure_future(erase(stores, own, member, by=who, reason=reason))
            try:
                done = await asyncio.wait_for(asyncio.shield(task), self.erase_wait_s)
            except TimeoutError:
                # (the erase goes on; a failure is logged, and a repeat finishes it)
                self.running.add(task)
                task.add_done_callback(self._finished)
                return Answer(
                    202,
                    orjson.dumps(
                        {
                            "erased": True,
                            "tombstone": tombstone(member),
                            "by": who,
                            "running": "the erase goes on after this answer (its tombstone "
                            "and board rows come first, then outbox, webhook and feed entries); "
                            "GET /api/moderation shows it once logged, and sending it again "
                            "is safe",
                        }
                    ),
                )
        except ModerationError as exc:
            return _error(400, str(exc))
        except StoreConflict as exc:
            return _error(409, str(exc), ("Retry-After", "60"))
        except (RedisError, OSError) as exc:
            log.warning("erase by %s failed: %s", who, exc)
            return _error(
                503,
                "Redis did not answer; send the same erase again (it is safe to repeat: what "
                "is erased already stays so)",
                ("Retry-After", "5"),
            )
        log.info("erase by %s: tombstone %s", who, done.tombstone)
        return Answer(200, orjson.dumps(done.to_json(who)))

    def _finished(self, task: asyncio.Task[Erasure]) -> None:
        self.running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("a background erase failed (send it again): %s", task.exception())

    @staticmethod
    def _reason(content_type: str | None, body: bytes) -> str | Answer:
        if not body:
            return ""
        if len(body) > MAX_BODY:
            return _error(413, f"the body is {len(body)} bytes; at most {MAX_BODY}")
        if (content_type or "").partition(";")[0].strip().lower() != JSON:
            return _error(415, "send the body as 'Content-Type: application/json'")
        try:
            obj: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, 'the body is not JSON; send {"reason": "..."} or no body')
        if not isinstance(obj, dict) or set(obj) - {"reason"}:
            return _error(400, 'the body must be a JSON object with only "reason"')
        reason = obj.get("reason", "")
        if not isinstance(reason, str):
            return _error(400, f'"reason" must be a string of at most {MAX_REASON} characters')
        return reason

    async def _log(self, query: str) -> Answer:
        raw = parse_qs(urlsplit("?" + query).query).get("limit", ["100"])[-1]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LOG:
            return _error(400, f"limit must be an integer in 1..{MAX_LOG}")
        stores, own = self._parts()
        entries = await own.moderation_log(int(raw))
        hidden = await stores[0].hidden_members()
        return Answer(200, orjson.dumps({"hidden": hidden, "log": entries}))
