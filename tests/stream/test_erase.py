"""``kudos erase`` and ``kudos hide`` end to end on real servers (the acceptance of README
"Erasure"): after the erase the member is on no board and ``kudos member`` does not know them; the
same after new events about them and after ``kudos rebuild --yes``; every other member's boards
stay exactly the contract's (an independent computation, tests/oracle.py). The HTTP endpoint
erases too. A hidden member is on no board through a rebuild, and unhidden is exactly back."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

import orjson
import pytest

from kudos import servers
from tests.conftest import Namespace
from tests.oracle import assert_board_equal, calendar_boards, compute, read_edges
from tests.stream.test_rebuild import HIGGS, kudos
from tests.web.live import start_web

pytestmark = pytest.mark.integration

ADMIN = "moderator-1:" + "k" * 24


def with_communities(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Higgs slice with communities: every third actor's events in ``physics``."""
    return [{**e, "communities": ["physics"]} if int(e["actor"]) % 3 == 0 else e for e in events]


async def check(
    ns: Namespace,
    events: list[dict[str, Any]],
    erased: set[str],
    hidden: set[str] = frozenset(),
    *,
    cli: bool = False,
) -> None:
    """Every board is the contract's without ``erased`` (and the hidden, who are in it); the
    erased are unknown, the hidden known (their points still accrue) and on no board."""
    expected = compute(events)
    boards = ["all", "1h", "24h", "7d", "decayed", "all:physics", "7d:physics"]
    boards += [b for b in calendar_boards(expected) if "@" not in b or b.endswith("physics")]
    for board in boards:
        want = {m: s for m, s in expected.get(board, {}).items() if m not in erased}
        assert_board_equal(board, await ns.export(board), want)
    for m in erased - hidden:
        assert await ns.store.explanation(m) is None, m
        if cli:
            out = kudos(ns, "member", m)
            assert out.returncode == 1 and "never been seen" in out.stderr, out.stderr
    for m in hidden:
        ex = await ns.store.explanation(m)
        assert ex is not None and ex.boards == {}, m
        if cli:
            out = kudos(ns, "member", m, "--json")
            assert out.returncode == 0 and orjson.loads(out.stdout)["boards"] == {}, out.stdout


def post_erase(port: int, member: str, token: str | None) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/members/{member}/erase",
        data=orjson.dumps({"reason": "asked by email"}),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, orjson.loads(e.read())


async def test_an_erased_member_stays_gone_through_new_events_and_a_rebuild(
    namespace: Namespace,
) -> None:
    ns = namespace
    events = with_communities(read_edges(HIGGS, "higgs", 8_000))
    first, second = events[:4_000], events[4_000:]
    targets = Counter(e["target"] for e in first)
    (gone, _), (also, _) = targets.most_common(2)  # the two best placed: most to remove
    worker = ns.start_worker()
    await ns.wait(await ns.replay(first, envelope=200))
    assert await ns.store.explanation(gone) is not None

    out = kudos(ns, "erase", gone, "--reason", "GDPR request 7")
    assert out.returncode == 1 and "--yes" in out.stderr  # (no terminal: it asks for --yes)
    out = kudos(ns, "erase", gone, "--yes", "--reason", "GDPR request 7", "--by", "dpo")
    assert out.returncode == 0, out.stderr
    assert "erased" in out.stdout
    await check(ns, first, {gone}, cli=True)

    port = servers.free_port()
    web = start_web(ns, port, KUDOS_WEB_ADMIN_TOKENS=ADMIN)
    try:
        assert post_erase(port, also, None)[0] == 401
        assert post_erase(port, also, "x" * 24)[0] == 401
        status, body = post_erase(port, also, ADMIN.partition(":")[2])
        assert status == 200 and body["by"] == "moderator-1" and body["rows"] > 0, body
    finally:
        servers.stop(web)
    await check(ns, first, {gone, also})

    # new events about them (as targets and as actors) score for the others only
    await ns.wait(await ns.replay(second, envelope=200))
    await check(ns, events, {gone, also})
    stats = orjson.loads(kudos(ns, "stats").stdout)
    assert stats["erased"] == sum(1 for e in second if e["target"] in (gone, also))

    # a hidden member (moderation) stays hidden through a rebuild, and comes back exact
    (third, _) = Counter(
        e["target"] for e in events if e["target"] not in (gone, also)
    ).most_common(1)[0]
    assert kudos(ns, "hide", third).returncode == 2  # (--reason is required)
    out = kudos(ns, "hide", third, "--reason", "reported for spam", "--by", "mod")
    assert out.returncode == 0, out.stderr
    await check(ns, events, {gone, also, third}, hidden={third})

    servers.stop(worker, timeout=10)
    out = await asyncio.to_thread(kudos, ns, "rebuild", "--yes", "--json")
    assert out.returncode == 0, out.stderr
    await check(ns, events, {gone, also, third}, hidden={third}, cli=True)
    assert kudos(ns, "unhide", third, "--by", "mod").returncode == 0
    await check(ns, events, {gone, also})
    log = orjson.loads(kudos(ns, "moderation", "--json").stdout)["log"]
    assert [(e["by"], e["action"]) for e in log] == [
        ("mod", "unhide"), ("mod", "hide"), ("moderator-1", "erase"), ("dpo", "erase"),
    ]  # fmt: skip
    assert gone not in str(log) and also not in str(log)
