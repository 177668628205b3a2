"""The browser page on a real pipeline: Debian's chromium, driven by playwright, against a real
`kudos web` process fed by a real worker. The page must follow the board live over the websocket
(no reload), open a member card with the rank and the explain breakdown, and fit a 375 px phone.

It also saves docs/screenshot.png (the picture the README shows).

The browser is /usr/bin/chromium (`make test` installs Debian's package with apt-get); never
`playwright install`, which downloads a browser of its own.
"""

from __future__ import annotations

import random
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from kudos import servers
from leaderboard.ranking import Entry
from tests.conftest import Namespace

pytestmark = pytest.mark.integration

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"
#: generous: a first render, a worker apply and one or two web ticks are well under a second
WAIT_MS = 30_000

END = 1_341_446_400  # 2012-07-05 00:00 UTC: the log covers the 7 days before it
DAY = 86_400
PEOPLE = (  # noqa: SIM905 - a cast list reads better as words
    "ada grace linus guido margaret alan barbara ken dennis bjarne anders radia frances hedy "
    "shafi leslie katherine edsger donald niklaus sophie tim"
).split()
#: display names of every third member (profile events); the others show their ids. One holds
#: markup, which must show as typed
NAMES = {who: f"{who.capitalize()} {who[0].upper()}." for who in PEOPLE[::3]}
NAMES["hedy"] = "Hedy <b>Lamarr</b>"
KINDS = ["like"] * 8 + ["share"] * 4 + ["comment"] * 3 + ["mention"] * 2 + ["reply", "click"]
KINDS += ["follow", "conversion"]


def history() -> list[object]:
    """A week of interactions for a cast of members, mixed kinds, posts and communities, so the
    board, the member card and the screenshot have something real to show."""
    rnd = random.Random(20120704)
    events: list[dict[str, Any]] = []
    for i, who in enumerate(PEOPLE):
        communities = [["physics"], ["math"], ["physics", "math"], []][i % 4]
        posts = [f"{who}/{k}" for k in range(1 + (len(PEOPLE) - i) // 4)]
        for post in posts:
            ts = END - rnd.uniform(0.5, 7) * DAY
            events.append({"kind": "post", "actor": who, "target": who, "post": post, "ts": ts})
        for _ in range(140 - 5 * i):
            ts = END - 7 * DAY + rnd.betavariate(2.2, 1.3) * 7 * DAY
            kind = rnd.choice(KINDS)
            actor = f"u{int(rnd.paretovariate(1.2) * 3) % 400}"
            e: dict[str, Any] = {"kind": kind, "actor": actor, "target": who, "ts": ts}
            if kind in ("like", "share", "comment", "reply", "click"):
                e["post"] = rnd.choice(posts)
            if communities:
                e["communities"] = communities
            events.append(e)
        events.append(
            {"kind": "like", "actor": who, "target": who, "post": posts[0], "ts": END - DAY}
        )
        if who in NAMES:  # a display name, set through the event stream
            events.append(
                {
                    "kind": "profile",
                    "actor": who,
                    "target": who,
                    "name": NAMES[who],
                    "ts": END - 8 * DAY,
                }
            )
    events.sort(key=lambda e: e["ts"])
    for n, e in enumerate(events):
        e["id"] = f"h-{n}"
        e["ts"] = round(e["ts"], 3)
    return [*events]


def surge(member: str, actors: int, start: float, tag: str) -> list[object]:
    """A member shared by many distinct people within minutes: a jump up the board."""
    return [
        {
            "id": f"{tag}-{a}",
            "ts": start + a,
            "kind": "share",
            "actor": f"fan{a}",
            "target": member,
            "communities": ["physics"],
        }
        for a in range(actors)
    ]


def get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return orjson.loads(r.read())


async def wait_live(page: Any) -> None:
    await page.wait_for_function(
        "document.querySelector('[data-testid=status]').textContent.includes('live')",
        timeout=WAIT_MS,
    )


async def board_rows(page: Any) -> list[tuple[str, int]]:
    """(member, rank) of the rows on the page, in page order."""
    rows: list[list[Any]] = await page.eval_on_selector_all(
        "[data-testid=row]", "rows => rows.map(r => [r.dataset.member, +r.dataset.rank])"
    )
    return [(m, r) for m, r in rows]


def same_board(rows: list[tuple[str, int]], entries: list[Entry]) -> bool:
    """The page shows these entries, ranks ascending (ties may come in any order)."""
    ranks = [r for _, r in rows]
    return ranks == sorted(ranks) and sorted(rows) == sorted((e.member, e.rank) for e in entries)


async def wait_board(page: Any, entries: list[Entry]) -> None:
    want = orjson.dumps(sorted([e.member, e.rank] for e in entries)).decode()
    await page.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('[data-testid=row]')]"
        ".map(r => [r.dataset.member, +r.dataset.rank])"
        ".sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]))) === want",
        arg=want,
        timeout=WAIT_MS,
    )


async def test_live_page(namespace: Namespace, browser: Any) -> None:
    namespace.start_worker()
    await namespace.wait(await namespace.replay(history(), envelope=50))
    before, _ = await namespace.store.page("all", 20)
    leader = before[0].member

    port = namespace.settings.web.port

    def start_web() -> subprocess.Popen[bytes]:
        log = namespace.home / "web.log"
        proc = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=namespace.env())
        servers.wait_port("web", "127.0.0.1", port, proc, log)
        return proc

    web = start_web()
    context = None
    try:
        for path in ("/static/app.js", "/static/kudos-client.js"):  # module scripts need it
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                assert r.headers["Content-Type"].startswith("text/javascript")
        for path in ("/static/nope.js", "/static/../server.py", "/static/%2e%2e/api.py"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5)
            assert err.value.code == 404
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        frames: list[str] = []
        sent: list[str] = []

        def on_websocket(ws: Any) -> None:
            ws.on("framereceived", lambda f: frames.append(f))
            ws.on("framesent", lambda f: sent.append(f))

        page.on("websocket", on_websocket)

        await page.goto(f"http://127.0.0.1:{port}/")
        await wait_live(page)
        assert same_board(await board_rows(page), before), "the page shows the store's top 20"
        assert "2012" in await page.inner_text("[data-testid=asof]")
        # display names: text, never markup (the <b> shows as typed), ids stay the key
        named = "hedy"
        assert named in {e.member for e in before}
        row = page.locator(f"[data-testid=row][data-member='{named}']")
        await page.wait_for_function(
            f"document.querySelector(\"[data-testid=row][data-member='{named}']\").dataset.name",
            timeout=WAIT_MS,
        )
        assert await row.locator(".id").inner_text() == NAMES[named]
        assert await row.locator(".handle").inner_text() == named  # (the id beside the name)
        assert await row.locator(".id b").count() == 0
        api = get_json(port, "/api/boards/all?limit=20")
        assert {e["member"]: e.get("name") for e in api["entries"]}[named] == NAMES[named]
        await page.evaluate("window.__sameDocument = true")
        leader_row = await page.query_selector(f"[data-testid=row][data-member='{leader}']")
        assert leader_row is not None and await leader_row.get_attribute("data-rank") == "1"

        # Live: a newcomer jumps to the top; the old leader's row (the same element) moves down
        await namespace.wait(await namespace.replay(surge("zoe", 220, END + 60, "z"), envelope=20))
        await page.wait_for_selector(
            "[data-testid=row][data-member='zoe'][data-rank='1']", timeout=WAIT_MS
        )
        await page.wait_for_function(
            f"document.querySelector(\"[data-testid=row][data-member='{leader}']\").dataset.rank === '2'",
            timeout=WAIT_MS,
        )
        assert await leader_row.get_attribute("data-rank") == "2"
        assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
        assert any('"type":"delta"' in f.replace(" ", "") for f in frames)
        after, _ = await namespace.store.page("all", 20)
        await wait_board(page, after)
        assert same_board(await board_rows(page), after)

        # The member card: click the old leader's row
        await leader_row.click()
        card = page.locator("[data-testid=member-card]")
        await card.locator("[data-testid=breakdown] table").wait_for(timeout=WAIT_MS)
        assert (
            await card.locator("[data-testid=member-name]").get_attribute("data-member") == leader
        )
        assert await card.locator("[data-testid=member-name]").inner_text() == NAMES.get(
            leader, leader
        )
        assert await card.locator("[data-testid=kpi-rank] .v").inner_text() == "#2"
        explain = get_json(port, f"/api/members/{leader}/explain")
        kinds = await card.locator("[data-testid=kind]").evaluate_all(
            "rows => rows.map(r => r.dataset.kind)"
        )
        assert kinds == list(explain["kinds"])
        assert explain["kinds"]["share"]["count"] > 0 and "share" in kinds
        total = await card.locator("[data-testid=breakdown] tfoot td").nth(2).inner_text()
        assert total == f"{explain['totals']['points']:,.1f}"
        standing = card.locator("[data-testid=standing][data-board='all'] td")
        assert await standing.nth(1).inner_text() == "#2"
        assert await card.locator("[data-testid=chart] svg rect").count() > 10

        # The member's channel: someone else overtakes them; the card and a toast say so live
        await namespace.wait(
            await namespace.replay(surge("yuki", 200, END + 600, "y"), envelope=20)
        )
        await page.wait_for_function(
            "document.querySelector('[data-testid=kpi-rank] .v').textContent === '#3'",
            timeout=WAIT_MS,
        )
        toast = page.locator("[data-testid=toast][data-kind=overtaken]", has_text="yuki")
        await toast.first.wait_for(timeout=WAIT_MS)
        await wait_live(page)

        # The web process dies (no close frame): the page says so, and on its return resumes
        # every channel from its last (epoch, seq) and catches up with what happened meanwhile
        web.kill()
        web.wait(10)
        await page.wait_for_function(
            "document.querySelector('[data-testid=status]').textContent.includes('reconnecting')",
            timeout=WAIT_MS,
        )
        await namespace.wait(await namespace.replay(surge("max", 240, END + 900, "m"), envelope=20))
        resumes = len(sent)
        web = start_web()
        await wait_live(page)
        await page.wait_for_selector(
            "[data-testid=row][data-member='max'][data-rank='1']", timeout=WAIT_MS
        )
        await page.wait_for_function(
            "document.querySelector('[data-testid=kpi-rank] .v').textContent === '#4'",
            timeout=WAIT_MS,
        )
        subscribes = [orjson.loads(f) for f in sent[resumes:] if '"subscribe"' in f]
        # the page also follows the comment-bait alerts (none here: it resumes at seq 0)
        assert {m["channel"] for m in subscribes} == {"alerts", "board:all", f"member:{leader}"}
        assert all("epoch" in m["resume"] for m in subscribes)
        assert all(m["resume"]["seq"] > 0 for m in subscribes if m["channel"] != "alerts")
        assert await page.evaluate("window.__sameDocument === true")
        after, _ = await namespace.store.page("all", 20)
        await wait_board(page, after)

        # The README picture: desktop width, the card open, toasts dismissed
        await page.evaluate(
            "document.querySelectorAll('[data-testid=toast]').forEach(t => t.remove())"
        )
        await page.wait_for_timeout(800)  # let row moves and flashes settle
        SCREENSHOT.parent.mkdir(exist_ok=True)
        await page.screenshot(path=str(SCREENSHOT), full_page=True)

        # Calendar boards: this week live, then a past week from the period picker
        await page.click("[data-testid=bases] button[data-board=week]")
        week, _ = await namespace.store.page("week", 20)
        await wait_board(page, week)
        assert await page.inner_text("#board-title") == "This week (ISO, UTC)"
        picker = page.locator("[data-testid=period]")
        await page.wait_for_function(
            "[...document.querySelectorAll('[data-testid=period-option]')]"
            ".some(o => o.value === '2012-W26')",
            timeout=WAIT_MS,
        )
        listed = get_json(port, "/api/boards/week/periods")
        assert listed["live"] == "week@2012-W27"
        assert [p["id"] for p in listed["periods"]] == ["week@2012-W27", "week@2012-W26"]
        await picker.select_option("2012-W26")
        past, _ = await namespace.store.page("week@2012-W26", 20)
        assert past and [(e.member, e.score) for e in past] != [(e.member, e.score) for e in week]
        await wait_board(page, past)
        assert await page.inner_text("#board-title") == "Week 2012-W26"
        assert "board=week%402012-W26" in page.url
        assert any('"channel":"board:week@2012-W26"' in f.replace(" ", "") for f in sent)

        # Following two members (their cards' Follow buttons), then the Following view: those
        # two ranked among themselves, live over a cohort channel, with their overall ranks
        await page.click("[data-testid=bases] button[data-board=all]")
        top, _ = await namespace.store.page("all", 20)
        await wait_board(page, top)
        picks = [top[5], top[2]]
        for e in picks:
            await page.click(f"[data-testid=row][data-member='{e.member}']")
            await card.locator(f"[data-testid=member-name][data-member='{e.member}']").wait_for()
            await card.locator("[data-testid=follow]").click()
            await card.locator("[data-testid=follow][aria-pressed=true]").wait_for()
        await page.click("[data-testid=following]")
        await wait_board(page, [Entry(1, top[2].member, 0.0), Entry(2, top[5].member, 0.0)])
        overall = await page.eval_on_selector_all(
            "[data-testid=row]", "rows => rows.map(r => [r.dataset.member, +r.dataset.globalRank])"
        )
        assert overall == [[top[2].member, top[2].rank], [top[5].member, top[5].rank]]
        assert await page.inner_text("#board-title") == "Following · All time"
        subs = [orjson.loads(f) for f in sent if '"cohort:all"' in f]
        assert subs and sorted(subs[-1]["members"]) == sorted(e.member for e in picks)
        stored = await page.evaluate("localStorage.getItem('kudos-following')")
        assert sorted(orjson.loads(stored)) == sorted(e.member for e in picks)

        # A 375 px phone: nothing wider than the screen, board and open card alike
        await page.set_viewport_size({"width": 375, "height": 812})
        await page.wait_for_timeout(300)
        overflow = "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        assert await page.evaluate(overflow) <= 0
        await page.keyboard.press("Escape")
        assert await card.is_hidden()
        assert await page.evaluate(overflow) <= 0
        await page.locator("[data-testid=row]").first.wait_for()
        assert not problems, problems
    finally:
        if context is not None:
            await context.close()
        servers.stop(web)


async def test_the_page_asks_for_the_token_and_keeps_it_out_of_the_url(
    namespace: Namespace, browser: Any
) -> None:
    """With KUDOS_WEB_TOKEN set the page asks for the token when the hello says one is needed,
    authenticates with it, goes live, and never puts it in a URL (?token= is not read)."""
    namespace.start_worker()
    await namespace.wait(await namespace.replay(history()[:200], envelope=50))
    port = namespace.settings.web.port
    log = namespace.home / "web.log"
    env = {**namespace.env(), "KUDOS_WEB_TOKEN": "s3cret-token"}
    web = servers.spawn([sys.executable, "-m", "kudos", "web"], log, env=env)
    context = None
    try:
        servers.wait_port("web", "127.0.0.1", port, web, log)
        context = await browser.new_context()
        page = await context.new_page()
        asked: list[str] = []

        async def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            await dialog.accept("s3cret-token")

        page.on("dialog", answer)
        sent: list[str] = []
        page.on("websocket", lambda ws: ws.on("framesent", lambda f: sent.append(f)))
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        # a token in the URL is not read: the page still asks
        await page.goto(f"http://127.0.0.1:{port}/?token=s3cret-token")
        await wait_live(page)
        assert len(asked) == 1 and "token" in asked[0]
        assert any(orjson.loads(f).get("token") == "s3cret-token" for f in sent if "auth" in f)
        # reconnecting in the same tab uses the kept token without asking again
        await page.goto(f"http://127.0.0.1:{port}/")
        await wait_live(page)
        assert len(asked) == 1
        assert not [u for u in requested if "s3cret" in u and "?token=" not in u]
    finally:
        if context is not None:
            await context.close()
        servers.stop(web)
