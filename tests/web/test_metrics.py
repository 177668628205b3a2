"""GET /metrics of the web process (web/metrics.py) against real servers: a worker, `kudos web`,
websocket clients; the exposition is read with the independent ``prometheus_client`` parser."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import Any

import orjson
import pytest

from kudos import servers
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.web.live import LiveClient, api_top, scrape, start_web, value
from web.metrics import path_class

T0 = 1_650_000_000


@pytest.mark.parametrize(
    ("target", "cls"),
    [
        ("/ws", "ws"),
        ("/ws?token=x", "ws"),
        ("/", "page"),
        ("/index.html", "page"),
        ("/static/app.js", "static"),
        ("/healthz", "healthz"),
        ("/metrics", "metrics"),
        ("/api/boards", "api_boards"),
        ("/api/boards/7d:physics?limit=5", "api_board"),
        ("/api/boards/all/members/alice", "api_board_member"),
        ("/api/members/alice/explain", "api_explain"),
        ("/api/members/alice/perks", "api_perks"),
        ("/api/members/alice/other", "other"),
        ("/api/events", "api_events"),
        ("/api/boards/all/x/y/z/w", "other"),
        ("/wp-login.php", "other"),
        ("/api", "other"),
    ],
)
def test_path_classes_are_few_whatever_the_path(target: str, cls: str) -> None:
    assert path_class(target) == cls


def events(n: int, tag: str, t0: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{tag}{i}",
            "ts": t0 + i,
            "kind": "share",
            "actor": f"{tag}-a{i}",
            "target": f"m{i % 7}",
        }
        for i in range(n)
    ]


@pytest.mark.integration
async def test_web_metrics_after_a_replay_and_subscriptions(namespace: Namespace) -> None:
    namespace.start_worker()
    first = events(300, "e", T0)
    # a duplicate (same id) and a self-interaction: counted, not applied
    extra = [
        {**first[0], "ts": T0 + 400},
        {"id": "self", "ts": T0 + 401, "kind": "like", "actor": "m1", "target": "m1"},
    ]
    await namespace.wait(await namespace.replay([*first, *extra], envelope=20))
    port = namespace.settings.web.port
    web = start_web(namespace, port)
    try:
        content_type, before = scrape(port)
        assert content_type.startswith("text/plain; version=0.0.4")
        assert value(before, "kudos_ws_connections") == 0
        assert value(before, "kudos_redis_up") == 1
        assert value(before, "kudos_pipeline_events_total", outcome="applied") == 300
        assert value(before, "kudos_pipeline_events_total", outcome="duplicate") == 1
        assert value(before, "kudos_pipeline_events_total", outcome="ignored") == 1
        assert value(before, "kudos_pipeline_events_total", outcome="invalid") == 0
        assert value(before, "kudos_pipeline_watermark_seconds") == T0 + 299  # last scored

        board = await LiveClient.open(port)
        await board.subscribe("board:all", limit=5)
        member = await LiveClient.open(port)
        await member.subscribe("member:m3")
        # live deltas: more events while both follow
        more = events(50, "f", T0 + 500)
        await namespace.wait(await namespace.replay(more, envelope=5, rate=200))
        want = api_top(port, "all", 5)
        await board.until(lambda: board.tops["board:all"] == want)

        _, after = scrape(port)
        assert value(after, "kudos_ws_connections") == 2
        assert value(after, "kudos_ws_subscriptions", kind="board") == 1
        assert value(after, "kudos_ws_subscriptions", kind="member") == 1
        # at least: two subscribe replies, two snapshots, one delta
        assert value(after, "kudos_ws_frames_sent_total") >= len(board.frames) + len(member.frames)
        assert value(after, "kudos_ws_frames_sent_total") >= 5
        assert value(after, "kudos_ws_slow_conflated_total") == 0
        assert value(after, "kudos_pipeline_events_total", outcome="applied") == 350
        assert value(after, "kudos_pipeline_watermark_seconds") == T0 + 549
        ticks = value(after, "kudos_feed_tick_seconds_count")
        assert ticks > 0
        assert value(after, "kudos_feed_tick_seconds_bucket", le="+Inf") == ticks
        # every HTTP answer so far, by route class and status
        assert value(after, "kudos_http_requests_total", path="ws", status="101") == 2
        assert value(after, "kudos_http_requests_total", path="metrics", status="200") == 1
        assert value(after, "kudos_http_requests_total", path="api_board", status="200") >= 1
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/nothing", timeout=5)
        _, last = scrape(port)
        assert value(last, "kudos_http_requests_total", path="other", status="404") == 1
        assert value(last, "kudos_http_requests_total", path="metrics", status="200") == 2

        await board.close()
        await member.close()
        await eventually(
            lambda: value(scrape(port)[1], "kudos_ws_connections") == 0,
            timeout=5,
            interval=0.1,
            what="the connections gauge to drop to 0 after the clients closed",
        )
    finally:
        servers.stop(web)


@pytest.mark.integration
async def test_kudos_deliver_serves_metrics_and_logs_json(namespace: Namespace) -> None:
    port = servers.free_port()
    log = namespace.home / "deliver.log"
    env = {
        **namespace.env(),
        "KUDOS_WEBHOOKS_METRICS_PORT": str(port),
        "KUDOS_LOG_JSON": "true",
    }
    proc = servers.spawn([sys.executable, "-m", "kudos", "deliver"], log, env=env)
    try:
        servers.wait_port("deliver metrics", "127.0.0.1", port, proc, log)
        _, samples = scrape(port)
        assert value(samples, "kudos_perk_unlocks_fanned_out_total") == 0
        assert value(samples, "kudos_webhook_attempt_seconds_count") == 0
    finally:
        servers.stop(proc)
    records = [orjson.loads(line) for line in log.read_text().splitlines() if line.strip()]
    started = next(r for r in records if r["message"].startswith("delivering perk unlocks"))
    assert started["level"] == "INFO" and started["logger"] == "kudos.deliver"
