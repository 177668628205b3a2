"""The HTTP read API served by a real `kudos web` process over a real pipeline."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from kudos import servers
from tests import explain_log
from tests.conftest import Namespace
from tests.eventually import eventually_sync

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            body = r.read()
            return r.status, (
                orjson.loads(body) if r.headers["Content-Type"] == "application/json" else body
            )
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read())


async def test_read_api(namespace: Namespace) -> None:
    t = 1_600_000_000
    # 12 members: m0 gets 12 shares from distinct actors, m1 11, ... ; m10 and m11 tie
    events = []
    for m in range(12):
        for a in range(max(12 - m, 2)):
            events.append(
                {
                    "id": f"{m}-{a}",
                    "ts": t + len(events),
                    "kind": "share",
                    "actor": f"a{a}",
                    "target": f"m{m}",
                    "communities": ["math"],
                }
            )
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=25))
    port = namespace.settings.web.port
    web = servers.spawn(
        [sys.executable, "-m", "kudos", "web"], namespace.home / "web.log", env=namespace.env()
    )
    try:
        servers.wait_port("web", "127.0.0.1", port, web, namespace.home / "web.log")
        status, health = get(port, "/healthz")
        assert status == 200 and health["status"] == "ok" and health["as_of"] == events[-1]["ts"]

        status, boards = get(port, "/api/boards")
        ids = [b["id"] for b in boards["boards"]]
        assert ids[:5] == ["all", "1h", "24h", "7d", "decayed"]
        assert "7d:math" in ids
        assert next(b for b in boards["boards"] if b["id"] == "all")["members"] == 12

        status, page = get(port, "/api/boards/all?limit=3&offset=1")
        assert status == 200
        assert [(e["rank"], e["member"], e["score"]) for e in page["entries"]] == [
            (2, "m1", 44.0),
            (3, "m2", 40.0),
            (4, "m3", 36.0),
        ]
        status, page = get(port, "/api/boards/all?limit=5&offset=9")
        assert [(e["rank"], e["member"]) for e in page["entries"]][-2:] in (
            [(11, "m10"), (11, "m11")],
            [(11, "m11"), (11, "m10")],
        )  # tie: competition rank

        status, page = get(port, "/api/boards/all?limit=1&offset=11")  # starts mid-tie
        assert [e["rank"] for e in page["entries"]] == [11]

        status, me = get(port, "/api/boards/7d:math/members/m5")
        assert status == 200
        assert (me["rank"], me["score"], me["members"]) == (6, 28.0, 12)
        assert me["percentile"] == pytest.approx(100 * 7 / 12, abs=1e-3)
        assert [e["member"] for e in me["around"]] == ["m3", "m4", "m5", "m6", "m7"]
        # the explain view lists community boards beside the base ones
        status, why = get(port, "/api/members/m5/explain")
        assert status == 200
        assert why["boards"]["7d:math"] == {
            "rank": 6,
            "score": 28.0,
            "members": 12,
            "percentile": me["percentile"],
        }
        assert why["boards"]["all"]["rank"] == 6 and "all:math" in why["boards"]

        assert get(port, "/api/boards/all/members/nobody")[0] == 404
        # a peer board: these members ranked among themselves, with their ranks on the board;
        # the tie at rank 11 stays a tie, and a member not on the board is named apart
        status, peers = get(port, "/api/boards/7d:math/cohort?members=m11,m5,nobody,m10,m5")
        assert status == 200, peers
        assert (peers["board"], peers["members"], peers["missing"]) == ("7d:math", 12, ["nobody"])
        assert [
            (e["rank"], e["member"], e["score"], e["global_rank"]) for e in peers["entries"]
        ] == [(1, "m5", 28.0, 6), (2, "m11", 8.0, 11), (2, "m10", 8.0, 11)]
        for query, words in (
            ("", "names no member"),
            ("?members=,,", "names no member"),
            ("?members=" + ",".join(f"x{i}" for i in range(1001)), "at most 1,000"),
            ("?members=ok,bad%01id", "control character"),
            ("?members=" + "y" * 129, "1-128 characters"),
            ("?members=m1&members=m2", "more than once"),
            ("?members=m1,%FF", "not UTF-8"),
        ):
            status, err = get(port, "/api/boards/all/cohort" + query)
            assert status == 400 and words in err["error"], (query, err)
        assert get(port, "/api/boards/monthly/cohort?members=m1")[0] == 404
        # the list splits before it decodes: an encoded comma stays inside its id
        status, peers = get(port, "/api/boards/all/cohort?members=m1%2Cx,m2")
        assert [e["member"] for e in peers["entries"]] == ["m2"] and peers["missing"] == ["m1,x"]
        status, err = get(port, "/api/boards/monthly")
        assert status == 404 and "unknown board" in err["error"]
        status, err = get(port, "/api/boards/all?limit=5000")
        assert status == 400 and "limit" in err["error"]
        status, err = get(port, "/api/boards/all?offset=x")
        assert status == 400
        assert get(port, "/nope")[0] == 404
        status, html = get(port, "/")
        assert status == 200 and b"<title>Kudos" in html
    finally:
        servers.stop(web)


def test_stack_up_down(real_servers: object, tmp_path: Any) -> None:
    """`kudos up --background` starts its own broker, Redis, worker and web; `down` leaves nothing."""
    import os
    import subprocess

    ports = {
        "KUDOS_REDIS_URL": f"redis://127.0.0.1:{servers.free_port()}/0",
        "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{servers.free_port()}",
        "KUDOS_WEB_PORT": str(servers.free_port()),
    }
    env = {**os.environ, "KUDOS_HOME": str(tmp_path / "home"), **ports}

    def run(*a: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "kudos", *a]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)

    up = run("up", "--background")
    assert up.returncode == 0, up.stdout + up.stderr
    try:
        status, _ = get(int(ports["KUDOS_WEB_PORT"]), "/healthz")
        assert status == 200
        again = run("up", "--background")
        assert again.returncode == 2 and "already running" in again.stderr
        pids = orjson.loads((tmp_path / "home" / "stack.json").read_text())["pids"]
        assert set(pids) == {"redis", "broker", "worker", "web", "deliver"}
    finally:
        down = run("down")
    assert down.returncode == 0

    def gone(stamp: str) -> bool:  # "pid start-time": that process has exited (or is a zombie)
        status_file = Path(f"/proc/{stamp.split()[0]}/status")
        try:
            return "zombie" in status_file.read_text().lower()
        except FileNotFoundError:
            return True

    eventually_sync(
        lambda: all(gone(stamp) for stamp in pids.values()),
        what="every process of the stack gone",
        details=lambda: f"still running: {[n for n, st in pids.items() if not gone(st)]}",
    )
    assert not (tmp_path / "home" / "up.pid").exists()
    for name, stamp in pids.items():  # "pid start-time"
        status_file = Path(f"/proc/{stamp.split()[0]}/status")
        assert not status_file.exists() or "zombie" in status_file.read_text().lower(), name
    assert not servers.port_open("127.0.0.1", int(ports["KUDOS_WEB_PORT"]))


def test_stack_refuses_a_taken_port(tmp_path: Any) -> None:
    import os
    import socket
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        env = {
            **os.environ,
            "KUDOS_HOME": str(tmp_path / "home"),
            "KUDOS_WEB_PORT": str(taken),
            "KUDOS_REDIS_URL": f"redis://127.0.0.1:{servers.free_port()}/0",
            "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{servers.free_port()}",
        }
        out = subprocess.run(
            [sys.executable, "-m", "kudos", "up"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert out.returncode == 2
    assert f"port {taken}" in out.stderr and "KUDOS_WEB_PORT" in out.stderr


async def test_member_explain(namespace: Namespace) -> None:
    """The explanation of a hand-made log: per kind, self-interactions, top posts, every board and
    the hourly trend, against numbers worked out by hand (tests/explain_log.py)."""
    namespace.start_worker()
    await namespace.wait(await namespace.replay(explain_log.EVENTS, envelope=4))
    port = namespace.settings.web.port
    web = servers.spawn(
        [sys.executable, "-m", "kudos", "web"], namespace.home / "web.log", env=namespace.env()
    )
    try:
        servers.wait_port("web", "127.0.0.1", port, web, namespace.home / "web.log")
        status, alice = get(port, "/api/members/alice/explain")
        assert status == 200
        explain_log.assert_explains(alice, explain_log.ALICE)
        hourly = alice["trend"]["hourly"]
        assert len(hourly) == 168
        assert hourly[-1]["hour"] == explain_log.W // 3600 * 3600  # the hour holding W
        assert {h["hour"]: h["points"] for h in hourly if h["points"]} == {
            explain_log.T0 - 30 * 3600: 4.0,
            explain_log.T0: 6.0,
            explain_log.T0 + 3600: 2.333,
            explain_log.T0 + 3 * 3600: 10.0,
            explain_log.T0 + 5 * 3600: 2.0,
        }

        status, zed = get(port, "/api/members/zed/explain")  # seen, but on no board
        assert status == 200
        explain_log.assert_explains(zed, explain_log.ZED)

        status, bob = get(port, "/api/members/bob/explain")
        assert status == 200
        assert bob["top_posts"] == [{"post": "q1", "points": 4.0}]
        assert bob["boards"]["1h"]["rank"] == 1 and bob["trend"]["rank"] == 2

        status, err = get(port, "/api/members/nobody/explain")
        assert status == 404 and "'nobody' has never been seen" in err["error"]
        assert get(port, "/api/members/alice")[0] == 404
    finally:
        servers.stop(web)


async def test_perk_payloads_are_only_for_readers_with_the_token(namespace: Namespace) -> None:
    """A payload may be a coupon code: GET /api/members/{id}/perks shows it only with
    `Authorization: Bearer <KUDOS_WEB_TOKEN>`; everyone else sees the unlock without it."""
    store = namespace.store
    record = {"id": "unl_1", "rule": "top1", "title": "Top 1", "member": "m1", "board": "all"}
    record |= {"rank": 1, "score": 4.0, "at": 1.0, "payload": {"coupon": "SECRET-50"}}
    await store.client.hset(store.key("perks", "m1"), "top1", orjson.dumps(record).decode())
    await store.client.hset(store.key("explain", "m1"), "n:share", 1)
    port = namespace.settings.web.port
    log = namespace.home / "web.log"
    env = {**namespace.env(), "KUDOS_WEB_TOKEN": "read-token"}
    web = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=env)
    try:
        servers.wait_port("web", "127.0.0.1", port, web, log)
        status, anonymous = get(port, "/api/members/m1/perks")
        assert status == 200 and anonymous["perks"][0]["id"] == "unl_1"
        assert "payload" not in anonymous["perks"][0]
        for wrong in ("Bearer nope", "Basic read-token", "read-token"):
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/members/m1/perks", headers={"Authorization": wrong}
            )
            with urllib.request.urlopen(req, timeout=5) as r:
                assert b"SECRET-50" not in r.read()
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/members/m1/perks",
            headers={"Authorization": "Bearer read-token"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert orjson.loads(r.read())["perks"][0]["payload"] == {"coupon": "SECRET-50"}
    finally:
        servers.stop(web)
