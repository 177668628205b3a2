"""``kudos hide`` / ``kudos unhide`` in the store against real Redis (lua/hidden.lua): every read
of a namespace with a hidden member equals the same read of one where that member's rows were
taken off every board (pages at any offset, standings, peer boards, exports, the explain views'
places, the live feed's rows and standings), their points keep accruing, and unhiding gives back
exactly the namespace that never hid them. Rank perks skip a hidden member."""

from __future__ import annotations

import random
from typing import Any

import pytest

from leaderboard.errors import ModerationError
from leaderboard.events import Event
from leaderboard.moderation import MAX_HIDDEN
from leaderboard.perks import PerkRule
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from leaderboard.store.moderation import erase, hide, unhide
from tests.conftest import Namespace
from tests.leaderboard.test_store_calendar import DAY, SUN, Applier

pytestmark = pytest.mark.integration

MEMBERS = [f"m{i}" for i in range(12)]
X = "m3"


def log(n: int, seed: int, start: float) -> list[Event]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        actor, target = rng.sample(MEMBERS, 2)
        if rng.random() < 0.25:
            target = X  # (X is among the best placed)
        cs = rng.choice(((), ("physics",)))
        kind = rng.choice(("share", "click", "reply", "conversion", "like"))
        ts = start + i * 600 + rng.randrange(300)
        out.append(Event(f"e{seed}-{i}", ts, kind, actor, target, communities=cs))
    return out


BOARDS = ["all", "7d", "decayed", "week", "all:physics", "7d:physics"]


async def reads(store: Store, skip: str | None = None) -> dict[str, Any]:
    """Every read a user can make, keyed by what it is."""
    out: dict[str, Any] = {}
    others = [m for m in MEMBERS if m != skip]
    for b in BOARDS:
        for offset, limit in ((0, 20), (0, 3), (2, 4), (5, 10)):
            rows, size = await store.page(b, limit, offset)
            out[f"page {b} {offset}+{limit}"] = ([(e.rank, e.member, e.score) for e in rows], size)
        for m in others:
            st = await store.standing(b, m, 2)
            out[f"standing {b} {m}"] = None if st is None else (
                st.rank, st.score, st.members, st.percentile,
                [(e.rank, e.member, e.score) for e in st.around],
            )  # fmt: skip
        entries, size, missing = await store.cohort(b, MEMBERS)
        out[f"cohort {b}"] = (
            [(c.rank, c.member, c.global_rank) for c in entries], size,
            sorted(set(missing) - {skip}),
        )  # fmt: skip
        out[f"export {b}"] = [row async for row in store.export(b)]
        poll = await store.feed_board(b, -1, 10, 0)
        out[f"feed {b}"] = (poll.rows, poll.members)
    for m in others:
        ex = await store.explanation(m)
        out[f"explain {m}"] = None if ex is None else ex.boards
    _, _, polls = await store.feed_members([(m, -1, True) for m in others], 0)
    out["feed members"] = {m: p.standing for m, p in polls.items()}
    return out


async def test_a_hidden_member_is_left_out_of_every_read_and_unhiding_restores_all(
    namespace: Namespace,
) -> None:
    rules = ScoringRules.load()
    client, prefix = namespace.store.client, namespace.store.prefix
    hidden, cut, full = (Store(client, f"{prefix}-{n}", rules) for n in ("h", "c", "f"))
    first, second = log(400, 1, SUN), log(300, 2, SUN + 3 * DAY)
    for store in (hidden, cut, full):
        apply = Applier(store)
        for ev in first:
            await apply(ev)
        if store is hidden:
            assert await hide([store], store, X, by="mod", reason="harassment reports")
            assert not await hide([store], store, X, by="mod", reason="again")  # (no change)
        for ev in second:
            await apply(ev)
    # the cut namespace: X's rows taken off every board by hand, as if X were not there
    async for key in client.scan_iter(match=f"{prefix}-c:board:*"):
        await client.zrem(key, X)
    want = await reads(cut, skip=X)
    assert await reads(hidden, skip=X) == want
    assert want["page all 0+20"][0][0][1] != X  # (X would have been near the top)
    assert await hidden.standing("all", X) is None
    ex = await hidden.explanation(X)
    assert ex is not None and ex.boards == {}  # (their explain counters stay, on no board)
    assert X in (await hidden.cohort("all", MEMBERS))[2]
    # their points kept accruing: unhiding gives exactly the namespace that never hid them
    assert await unhide([hidden], hidden, X, by="mod")
    assert await reads(hidden) == await reads(full)
    log_entries = await hidden.moderation_log()
    assert [(e["action"], e["subject"]) for e in log_entries] == [("unhide", X), ("hide", X)]


async def test_rank_perks_go_to_the_best_visible_member(namespace: Namespace) -> None:
    rules = ScoringRules.load()
    perks = [PerkRule("top1", "Top of all", "all", 1, None)]
    store = Store(namespace.store.client, namespace.store.prefix, rules, perks)
    apply = Applier(store)
    await apply(Event("a", SUN + 1, "conversion", "z", "ann"))  # ann 10: unlocks top1
    await hide([store], store, "ann", by="mod", reason="spam")
    await apply(Event("b", SUN + 2, "share", "z", "bob"))  # bob 4: #2, but #1 of the visible
    await apply(Event("c", SUN + 3, "share", "y", "cy"))  # cy 4: ties bob at visible #1
    await apply(Event("d", SUN + 4, "conversion", "y", "ann"))  # ann 20: hidden, no new unlock
    got = sorted((r["member"], r["rank"]) for r in await store.outbox_recent(10))
    assert got == [("ann", "1"), ("bob", "1"), ("cy", "1")]


async def test_hiding_is_bounded_and_an_erase_clears_it(namespace: Namespace) -> None:
    store = namespace.store
    await Applier(store)(Event("a", SUN + 1, "share", "x", "ann"))
    with pytest.raises(ModerationError, match="reason"):
        await hide([store], store, "ann", by="mod", reason="")
    await store.client.hset(store.key("hidden"), mapping={f"h{i}": "{}" for i in range(MAX_HIDDEN)})
    with pytest.raises(ModerationError, match="hidden already"):
        await hide([store], store, "ann", by="mod", reason="spam")
    await store.client.delete(store.key("hidden"))
    await hide([store], store, "ann", by="mod", reason="spam")
    await erase([store], store, "ann", by="dpo")
    assert await store.hidden_members() == {}
    # the hide entry named the id: the erase's entry stands for it
    assert [e["action"] for e in await store.moderation_log()] == ["erase"]


async def test_on_shards_the_merged_reads_leave_a_hidden_member_out_as_one_namespace_does(
    namespace: Namespace,
) -> None:
    from tests.leaderboard.test_store_shards import Twin, _messages

    twin = Twin(namespace.store)
    single, shards = twin.single, twin.shards
    await twin.feed(_messages(4))
    top = (await single.page("all", 1))[0][0].member
    await hide([single], single, top, by="mod", reason="spam")
    await hide(list(shards.stores), shards.own, top, by="mod", reason="spam")
    members = [f"m{i}" for i in range(80)]
    for board in ("all", "7d", "all:rust"):
        for offset, limit in ((0, 30), (3, 7)):
            whole, size = await single.page(board, limit, offset)
            merged, msize = await shards.page(board, limit, offset)
            assert [(e.rank, e.member) for e in merged] == [(e.rank, e.member) for e in whole]
            assert msize == size and top not in {e.member for e in whole}
        for m in members[:20]:
            a, b = await single.standing(board, m), await shards.standing(board, m)
            assert (a and (a.rank, a.members)) == (b and (b.rank, b.members)), (board, m)
        ca, sa, ma = await single.cohort(board, members)
        cb, sb, mb = await shards.cohort(board, members)
        assert [(c.member, c.global_rank) for c in ca] == [(c.member, c.global_rank) for c in cb]
        assert (sa, sorted(ma)) == (sb, sorted(mb)) and top in ma
        assert [r[:2] async for r in single.export(board)] == [
            r[:2] async for r in shards.export(board)
        ]
    places, _ = await shards.places([*members[:20], top], ["all", "7d"])
    for m in members[:20]:
        st = await single.standing("all", m)
        assert (places[m]["all"] or (None,))[0] == (st.rank if st else None), m
    assert places[top] == {"all": None, "7d": None}
