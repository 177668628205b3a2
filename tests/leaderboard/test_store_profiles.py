"""Display names and avatars (profile events) in the store against real Redis: field by field,
the latest by (event time, id) wins whatever the order of arrival, and they score nothing."""

from __future__ import annotations

import pytest

from leaderboard.events import Event, Profile
from leaderboard.scoring import ScoringRules
from leaderboard.store import Store
from tests.conftest import Namespace
from tests.leaderboard.test_store_calendar import SUN, Applier

pytestmark = pytest.mark.integration

LOG: list[Event | Profile] = [
    Profile("p1", SUN + 10, "ann", "Ann", None),
    Profile("p2", SUN + 30, "ann", None, "https://img.example/ann.png"),
    Profile("p3", SUN + 5, "ann", "Too old", None),  # older than p1: loses on name
    Profile("p4", SUN + 30, "ann", None, "https://img.example/other.png"),  # same ts, later id
    Event("e1", SUN + 40, "share", "bob", "ann"),
    Profile("p5", SUN + 50, "bob", "Bob", None),
    Profile("p6", SUN + 60, "bob", "", None),  # cleared
]


async def test_the_latest_name_and_avatar_win_field_by_field_in_any_order(
    namespace: Namespace,
) -> None:
    rules = ScoringRules.load()
    forward = Store(namespace.store.client, namespace.store.prefix, rules)
    backward = Store(namespace.store.client, namespace.store.prefix + "-rev", rules)
    one, other = Applier(forward), Applier(backward)
    for item in LOG:
        await one(item)  # type: ignore[arg-type]
    for item in reversed(LOG):
        await other(item)  # type: ignore[arg-type]
    want = {"ann": {"name": "Ann", "avatar": "https://img.example/other.png"}}
    assert await forward.profiles(["ann", "bob", "nobody"]) == want
    assert await backward.profiles(["ann", "bob", "nobody"]) == want
    # they score nothing and move no clock: one share, six ignored
    stats = await forward.stats()
    assert (stats["applied"], stats["ignored"]) == (1, 6)
    assert (await forward.clock())[0] == SUN + 40
    await one(Profile("p1", SUN + 99, "ann", "Again", None))  # a re-sent id
    assert (await forward.stats())["duplicate"] == 1
    assert (await forward.profiles(["ann"]))["ann"]["name"] == "Ann"
