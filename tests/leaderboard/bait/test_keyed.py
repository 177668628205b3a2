"""The detector's keyed hashes and its engagers count: what an adversary cannot aim."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.bait.detector import BaitParams, Detector, identity
from leaderboard.bait.keyed import PUBLIC_KEY, Keyed
from leaderboard.bait.state import ENGAGERS_BITS, Group, engaged, engagers
from leaderboard.errors import ConfigError
from leaderboard.settings import load_settings
from tests.leaderboard.bait._streams import DAY, T0, feed, genuine, throttles

SECRET = b"0123456789abcdef0123456789abcdef"
KINDS = ("share", "click", "conversion", "like", "follow", "mention")


def _group() -> Group:
    return Group(target="t", post="p", first=T0, last=T0)


def _count(keyed: Keyed, pairs: list[tuple[str, str]], repeats: int = 0) -> float:
    g = _group()
    for actor, kind in pairs:
        engaged(g, keyed.pair(actor, kind))
    for _ in range(repeats):
        engaged(g, keyed.pair(*pairs[0]))
    return engagers(g)


@pytest.mark.parametrize("n", [1, 10, 60, 300, 1_000, 5_000, 40_000])
def test_engagers_counts_distinct_pairs_closely_from_one_to_tens_of_thousands(n: int) -> None:
    pairs = [(f"fan{i}", KINDS[i % 6]) for i in range(n)]
    est = _count(Keyed(SECRET), pairs, repeats=2 * n)
    tolerance = 0.1 if n <= 60 else 0.25  # (linear counting: a few per cent of error)
    assert abs(est - n) <= tolerance * n + 0.5, (n, est)


def test_one_accounts_clicks_never_count_as_fans_once_a_bitmap_is_full() -> None:
    # detector 12 counted every engagement once its one bitmap was full (~880 pairs): one
    # account's thousands of clicks then counted as thousands of fans
    pairs = [(f"fan{i}", KINDS[i % 6]) for i in range(1_200)]
    est = _count(Keyed(SECRET), pairs, repeats=20_000)
    assert est < 1.25 * 1_200


def _aimed(keyed: Keyed, want: int) -> list[tuple[str, str]]:
    """Pairs of 46 accounts and six kinds, each found (offline, knowing the key) to land on its
    own bit of every level: what an attacker who knows the hash builds to fill the bitmaps."""
    found: dict[int, tuple[str, str]] = {}
    i = 0
    while len(found) < want:
        actor, kind = f"sock{i % 46}x{i // 46}", KINDS[i % 6]
        h = keyed.pair(actor, kind)
        if (h >> 8) & 0xFF == 0 and h % ENGAGERS_BITS not in found:
            found[h % ENGAGERS_BITS] = (actor, kind)
        i += 1
    return list(found.values())


def test_pairs_aimed_at_the_public_key_count_as_what_they_are_under_a_secret_one() -> None:
    # an adversarial review: with a public hash, a few hundred chosen pairs fill the bitmaps,
    # and the count is then as large as the clicks. Under a key the attacker does not know, the
    # same pairs are as good as random ones
    pairs = _aimed(Keyed(PUBLIC_KEY), 250)
    assert _count(Keyed(PUBLIC_KEY), pairs, repeats=5_000) > 4_000  # (why a key is needed)
    assert _count(Keyed(SECRET), pairs, repeats=5_000) < 1.25 * len(pairs)


@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(KINDS)), max_size=600))
def test_engagers_never_exceeds_the_engagements_and_ignores_their_order(
    raw: list[tuple[int, str]],
) -> None:
    keyed = Keyed(SECRET)
    pairs = [(f"a{i}", k) for i, k in raw]
    est = _count(keyed, pairs)
    assert 0.0 <= est <= len(pairs)
    assert _count(keyed, pairs[::-1]) == est
    assert abs(est - len(set(pairs))) <= 0.35 * len(set(pairs)) + 3  # (a loose bound: chance)


def test_the_key_moves_the_authors_network_hashes_and_stays_out_of_the_identity() -> None:
    assert Keyed(SECRET).actor("ann") != Keyed(PUBLIC_KEY).actor("ann")
    assert Keyed(b"").actor("ann") == Keyed(PUBLIC_KEY).actor("ann")
    assert Keyed(SECRET).actor("ann") == Keyed(SECRET).actor("ann") < 1 << 24
    long = SECRET * 8  # (longer than BLAKE2b takes: hashed to a key)
    assert Keyed(long).actor("ann") != Keyed(long[:-1]).actor("ann")
    plain = identity("v1", BaitParams())
    keyed = identity("v1", BaitParams(key=SECRET))
    other = identity("v1", BaitParams(key=SECRET[::-1]))
    assert len({plain, keyed, other}) == 3
    assert re.search(r"/k[0-9a-f]{4}\+posts30d$", keyed) and "/k" not in plain
    assert SECRET.decode() not in keyed
    assert SECRET.decode() not in repr(BaitParams(key=SECRET))


def test_the_key_is_a_setting_refused_when_short_and_hidden_from_messages() -> None:
    s = load_settings({"KUDOS_BAIT_KEY": SECRET.decode()})
    params = s.bait.params()
    assert params is not None and params.key == SECRET
    assert SECRET.decode() in s.secrets()
    with pytest.raises(ConfigError, match="KUDOS_BAIT_KEY is 6 characters: use 32 or more") as e:
        load_settings({"KUDOS_BAIT_KEY": "hunter"})
    assert "hunter" not in str(e.value)
    with pytest.raises(ConfigError, match="the public default key"):
        load_settings({"KUDOS_BAIT_KEY": PUBLIC_KEY.decode()})


def test_a_detector_under_a_key_makes_the_same_decisions_on_a_replay() -> None:
    """The key changes hashes, not determinism: a rebuild with the same key decides the same."""
    ev = [("post", T0, "mal", "mal", "M", "Tea or coffee? Comment below")]
    ev += [("comment", T0 + 20 * i, f"x{i}", "mal", "M", "tea") for i in range(40)]
    ev += [("like", T0 + DAY / 100 + i, f"x{i}", "mal", "M", None) for i in range(3)]
    ev += [("comment", T0 + 900 + i, f"p{i}", "mal", "M", genuine(i)) for i in range(5)]
    runs = []
    for _ in range(2):
        d = Detector(BaitParams(key=SECRET))
        mults = feed(d, ev)
        runs.append((mults, [(x.post, x.at, x.reasons) for x in throttles(d.take_decisions())]))
    assert runs[0] == runs[1] and runs[0][1], "the bait post is throttled, both times alike"
