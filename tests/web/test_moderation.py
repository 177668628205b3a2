"""The moderation endpoints (web/moderation.py) against real Redis: who may erase and hide, what
a body may hold, and what is logged; and KUDOS_WEB_ADMIN_TOKENS refused when unsafe."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from websockets.datastructures import Headers

from leaderboard.errors import ConfigError
from leaderboard.events import Event
from leaderboard.moderation import tombstone
from leaderboard.settings import admin_tokens, load_settings
from tests.conftest import Namespace
from tests.leaderboard.test_store_calendar import SUN, Applier
from web.moderation import Moderation, is_moderation_path

TOKEN = "t" * 20
JSON = {"Content-Type": "application/json"}


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **JSON}


async def answer(
    m: Moderation, path: str, headers: Any, body: Any = None, method: str = "POST"
) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    got = await m.handle(method, path, headers, raw)
    return got.status, orjson.loads(got.body)


@pytest.mark.integration
async def test_only_an_admin_token_erases_and_the_log_says_who(namespace: Namespace) -> None:
    store = namespace.store
    apply = Applier(store)
    await apply(Event("a", SUN + 1, "share", "ann", "bob"))
    path = "/api/members/bob/erase"
    off = Moderation(store, ())
    assert (await answer(off, path, auth()))[0] == 403
    m = Moderation(store, [("alice", TOKEN), ("carol", "c" * 20)])
    assert (await answer(m, path, JSON))[0] == 401
    assert (await answer(m, path, auth("x" * 20)))[0] == 401
    assert (await answer(m, path, auth(), method="GET"))[0] == 405
    assert (await answer(m, path, {**auth(), "Content-Type": "text/plain"}, b"x"))[0] == 415
    assert (await answer(m, path, auth(), b"{"))[0] == 400
    assert (await answer(m, path, auth(), {"reason": "x", "more": 1}))[0] == 400
    assert (await answer(m, path, auth(), {"reason": 5}))[0] == 400
    assert (await answer(m, path, auth(), {"reason": "x" * 301}))[0] == 400
    assert (await answer(m, path, auth(), b" " * 5000))[0] == 413
    assert (await answer(m, "/api/members/%ff/erase", auth()))[0] == 400
    assert await store.explanation("bob") is not None  # none of those erased anything
    assert await store.moderation_log() == []

    status, body = await answer(m, path, auth("c" * 20), {"reason": "spam ring"})
    assert status == 200 and body["by"] == "carol" and body["tombstone"] == tombstone("bob")
    assert await store.explanation("bob") is None
    status, body = await answer(m, "/api/moderation?limit=5", auth(), method="GET")
    assert status == 200
    assert [(e["by"], e["reason"], e["subject"]) for e in body["log"]] == [
        ("carol", "spam ring", tombstone("bob"))
    ]
    assert (await answer(m, "/api/moderation?limit=0", auth(), method="GET"))[0] == 400
    assert (await answer(m, "/api/moderation", JSON, method="GET"))[0] == 401
    # hide and unhide: a reason is required to hide; the log and the hidden list say who
    await apply(Event("b", SUN + 2, "share", "bob", "ann"))
    assert await store.standing("all", "ann") is not None
    assert (await answer(m, "/api/members/ann/hide", auth()))[0] == 400
    status, body = await answer(m, "/api/members/ann/hide", auth(), {"reason": "spam"})
    assert (status, body) == (200, {"hide": "ann", "changed": True, "by": "alice"})
    assert await store.standing("all", "ann") is None
    status, body = await answer(m, "/api/moderation", auth(), method="GET")
    assert body["hidden"]["ann"]["reason"] == "spam" and body["log"][0]["action"] == "hide"
    status, body = await answer(m, "/api/members/ann/unhide", auth())
    assert (status, body["changed"]) == (200, True) and await store.standing("all", "ann")
    assert (await answer(m, "/api/members/ann/unhide", auth()))[1]["changed"] is False
    # a long erase goes on after its answer (202): websockets would drop a request after 10 s
    slow = Moderation(store, [("alice", TOKEN)], erase_wait_s=0)
    status, body = await answer(slow, "/api/members/ann/erase", auth())
    assert status == 202 and body["tombstone"] == tombstone("ann") and body["running"]
    for task in list(slow.running):
        await task
    assert await store.explanation("ann") is None and not slow.running
    # one Authorization, one Content-Type
    two = Headers([("Authorization", f"Bearer {TOKEN}"), ("Authorization", "Bearer x")])
    assert (await answer(m, "/api/members/cy/erase", two))[0] == 400
    # a rebuild running: refused, retry later
    assert await store.lock_rebuild("rb", 60) is None
    status, body = await answer(m, "/api/members/cy/erase", auth())
    assert status == 409 and "rebuild" in body["error"]


def test_the_paths_and_the_tokens_setting() -> None:
    assert is_moderation_path("/api/members/x/erase") and is_moderation_path("/api/moderation")
    assert is_moderation_path("/api/members/x/hide") and is_moderation_path("/api/members/x/unhide")
    assert not is_moderation_path("/api/members/x") and not is_moderation_path("/api/boards")
    assert not is_moderation_path("/api/members//hide")
    assert not is_moderation_path("/api/members/x/explain")
    assert admin_tokens(" a:" + "1" * 16 + " , b.c@d:" + "2" * 16) == (
        ("a", "1" * 16), ("b.c@d", "2" * 16),
    )  # fmt: skip
    for bad in ("a:short", ":" + "1" * 16, "a b:" + "1" * 16, "a", f"a:{'1' * 16},a:{'2' * 16}"):
        with pytest.raises(ConfigError, match="KUDOS_WEB_ADMIN_TOKENS"):
            admin_tokens(bad)
    with pytest.raises(ConfigError, match="may not be KUDOS_WEB_TOKEN"):
        load_settings({"KUDOS_WEB_TOKEN": "1" * 16, "KUDOS_WEB_ADMIN_TOKENS": "a:" + "1" * 16})
    secrets = load_settings({"KUDOS_WEB_ADMIN_TOKENS": "a:" + "9" * 16}).secrets()
    assert "9" * 16 in secrets
