"""GET /openapi.json (web/openapi.py): the description of every HTTP endpoint, generated from the
route table, and schemathesis against a real `kudos web`: no 5xx, every answer as described."""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kudos import servers
from leaderboard.errors import StoreConflict
from tests.conftest import Namespace
from web import api, openapi


def test_every_route_is_described_with_its_parameters() -> None:
    doc = openapi.document()
    assert doc["openapi"].startswith("3.1")
    for route in api.ROUTES:
        op = doc["paths"][route.path]["get"]
        names = {p["name"] for p in op.get("parameters", [])}
        assert {q.name for q in route.ints} | set(route.strs) | set(route.needs) <= names
        assert {s[1:-1] for s in route.segments if s.startswith("{")} <= names
        assert "503" in op["responses"] and "200" in op["responses"]
    assert "post" in doc["paths"]["/api/events"]
    # schemathesis accepts it as a valid OpenAPI document
    assert len(list(schemathesis.openapi.from_dict(doc).get_all_operations())) == len(doc["paths"])


async def test_routes_match_their_templates_only() -> None:
    """The table routes: a template fits only paths with the same segments; ids are bounded."""
    board = next(r for r in api.ROUTES if r.path == "/api/boards/{board}/members/{member}")
    assert board.match(["api", "boards", "7d:math", "members", "m 1"]) == {
        "board": "7d:math",
        "member": "m 1",
    }
    assert board.match(["api", "boards", "all", "members"]) is None
    assert board.match(["api", "boards", "x" * (api.MAX_PARAM + 1), "members", "m"]) is None


@pytest.mark.integration
async def test_a_real_web_process_answers_as_described(namespace: Namespace) -> None:
    events = [
        {"id": f"e{i}", "ts": 1_600_000_000 + i, "kind": "share", "actor": f"a{i}", "target": "m"}
        for i in range(20)
    ]
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=10))
    port = namespace.settings.web.port
    log = namespace.home / "web.log"
    web = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=namespace.env())
    try:
        servers.wait_port("web", "127.0.0.1", port, web, log)
        base = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(base + openapi.PATH, timeout=5) as r:
            assert r.headers["Content-Type"] == api.JSON
            served = orjson.loads(r.read())
        assert served == openapi.document()
        await asyncio.to_thread(_fuzz, served, base)
        assert web.poll() is None, "the web process died under fuzzing"
    finally:
        servers.stop(web)


def _fuzz(doc: dict[str, object], base: str) -> None:
    schema = schemathesis.openapi.from_dict(doc)  # type: ignore[arg-type]
    for result in schema.get_all_operations():
        op = result.ok()

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(), origin=st.sampled_from([None]))
        def check(case: schemathesis.Case, origin: None) -> None:
            # not_a_server_error, status/content-type/schema conformance
            case.call_and_validate(base_url=base, timeout=10)

        check()


async def test_a_read_that_met_a_moving_board_is_a_503_to_retry() -> None:
    """A rebuild's switch or a decay landmark kept moving under a read (StoreConflict): the
    answer is the documented 503 with a reason, not a server error."""

    class Moving:  # (the store seam: only the call this route makes)
        async def cohort(self, board: str, members: list[str]) -> Any:
            raise StoreConflict("the rebuild generation kept moving under a read")

    status, body = await api.handle(Moving(), "GET", "/api/boards/all/cohort?members=a")  # type: ignore[arg-type]
    assert status == 503 and "retry" in orjson.loads(body)["error"]
    assert "503" in openapi.document()["paths"]["/api/boards/{board}/cohort"]["get"]["responses"]
