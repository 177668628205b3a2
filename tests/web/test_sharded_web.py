"""The web process and the deliverer on a namespace kept as shards (KUDOS_REDIS_SHARDS=3 over 6
partitions), on real servers: a worker applies a Higgs slice; a websocket subscriber's board and
member channels, the read API's pages, standings and board list, and the perk unlocks fanned out
from every shard's outbox all match the independent oracle over the whole namespace."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from broker.producer import partition_for, wait_applied
from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import PerksSettings
from leaderboard.store.shards import connect_shards
from tests.conftest import DATA, Namespace, configure
from tests.deliver.test_deliverer import read_topic
from tests.kudos.test_cli import kudos
from tests.oracle import compute, read_edges
from tests.web.live import LiveClient, api_top, start_web

pytestmark = pytest.mark.integration

HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"
PARTITIONS = 6
SHARDS = 3
TOP = 20
RULE = '[[rule]]\nid = "forty"\ntitle = "Forty"\nboard = "all"\nwhen = "score >= 40"\n'


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return orjson.loads(r.read())


def ranked(scores: dict[str, float]) -> dict[str, tuple[int, float]]:
    """member → (competition rank, points) of an oracle board (milli-points)."""
    return {m: (1 + sum(1 for v in scores.values() if v > s), s / 1000) for m, s in scores.items()}


async def test_live_push_reads_and_unlocks_on_three_shards(
    namespace: Namespace, tmp_path: Path
) -> None:
    ns = namespace
    events = read_edges(HIGGS, "higgs", 10_000)
    perks = tmp_path / "perks.toml"
    perks.write_text(RULE)
    configure(
        ns,
        bait=dataclasses.replace(ns.settings.bait, enabled=False),  # (the oracle has no throttle)
        broker=dataclasses.replace(ns.settings.broker, partitions=PARTITIONS),
        redis=dataclasses.replace(ns.settings.redis, shards=SHARDS),
        perks=PerksSettings(path=str(perks)),
    )
    expected = compute(events)
    on_all = ranked(expected["all"])
    top = sorted(on_all, key=lambda m: on_all[m][0])[0]
    shards = connect_shards(ns.settings.redis, PARTITIONS, ScoringRules.load())
    procs: list[subprocess.Popen[bytes]] = []
    port = servers.free_port()
    client: LiveClient | None = None
    try:
        ns.start_worker()
        procs.append(start_web(ns, port))
        log = ns.home / "deliver.log"
        procs.append(servers.spawn([sys.executable, "-m", "kudos", "deliver"], log, env=ns.env()))
        client = await LiveClient.open(port)
        await client.subscribe("board:all", limit=TOP)
        produced = await ns.replay(list[object](events), envelope=40)
        await wait_applied(shards, produced.end_offsets)
        await client.subscribe(f"member:{top}")

        # the live top 20, pushed from the merge of the shards' slices
        want_top = {m: (r, round(s, 3)) for m, (r, s) in on_all.items() if r <= TOP}
        await client.until(lambda: client.tops.get("board:all") == want_top, timeout=30)
        # the member channel's standing on the merged board
        await client.until(
            lambda: (client.standing.get(f"member:{top}", {}).get("all") or {}).get("rank") == 1
        )
        assert client.standing[f"member:{top}"]["all"]["score"] == pytest.approx(on_all[top][1])

        # the read API: a page, a deep page, a member's standing, the board list
        assert api_top(port, "all", TOP) == want_top
        page = get(port, "/api/boards/7d?limit=5&offset=30")
        on_7d = ranked(expected["7d"])
        order = sorted(on_7d, key=lambda m: (-on_7d[m][1], m))
        assert page["members"] == len(on_7d)
        assert [e["rank"] for e in page["entries"]] == [on_7d[m][0] for m in order[30:35]]
        member = order[40]
        st = get(port, f"/api/boards/7d/members/{member}")
        assert (st["rank"], st["members"]) == (on_7d[member][0], len(on_7d))
        # a page deeper than the merge reaches is refused, not read from every shard's whole board
        with pytest.raises(urllib.error.HTTPError) as deep:
            get(port, "/api/boards/all?offset=100000&limit=10")
        assert deep.value.code == 400
        assert "kudos export" in orjson.loads(deep.value.read())["error"]
        sizes = {b["id"]: b["members"] for b in get(port, "/api/boards")["boards"]}
        assert {b: sizes[b] for b in ("all", "7d")} == {"all": len(on_all), "7d": len(on_7d)}
        explain = get(port, f"/api/members/{top}/explain")
        assert explain["boards"]["all"]["rank"] == 1
        assert explain["boards"]["all"]["members"] == len(on_all)

        # unlocks from every shard's outbox, each once, to the perks topic
        forty = {m for m, mp in expected["all"].items() if mp >= 40_000}
        assert len({partition_for(m.encode(), PARTITIONS) % SHARDS for m in forty}) == SHARDS
        records = await read_topic(ns, len(forty))
        unlocks = [orjson.loads(r.value) for r in records]
        assert sorted(u["member"] for u in unlocks) == sorted(forty)
        # and kudos perks lists them, from every shard's outbox
        out = kudos(ns, "perks", "--json", "--limit", "1000")
        assert out.returncode == 0, out.stderr
        assert sorted(p["member"] for p in orjson.loads(out.stdout)["perks"]) == sorted(forty)
    finally:
        if client is not None:
            await client.close()
        for p in procs:
            servers.stop(p, timeout=5)
        await shards.close()
