"""The lockstep index (leaderboard/bait/lockstep.py): overlaps of posts' account samples."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.bait.lockstep import Entry, Lockstep

RING = [f"r{i}" for i in range(10)]


def test_posts_of_different_authors_sharing_most_accounts_are_in_lockstep() -> None:
    ls = Lockstep(min_shared=5, min_share=0.5)
    for post, author in (("p1", "ann"), ("p2", "bob"), ("p3", "cat")):
        for actor in RING[:8]:
            ls.add(post, Entry(author, 0.0, "c"), actor)
    assert ls.partners("p3") == 2
    assert ls.partners("p1") == 2


def test_an_authors_own_followers_returning_is_a_network_not_a_ring() -> None:
    ls = Lockstep()
    for post in ("p1", "p2", "p3"):
        for actor in RING:
            ls.add(post, Entry("ann", 0.0, "c"), actor)
    assert ls.partners("p1") == 0


def test_too_few_shared_accounts_far_apart_in_time_or_of_another_kind_do_not_count() -> None:
    ls = Lockstep(window_s=3600.0, min_shared=5, min_share=0.5)
    for actor in RING:
        ls.add("big", Entry("ann", 0.0, "c"), actor)
    for actor in RING[:4]:  # 4 shared: below min_shared
        ls.add("few", Entry("bob", 0.0, "c"), actor)
    for actor in RING:
        ls.add("late", Entry("cat", 7200.0, "c"), actor)  # two hours later: outside the window
        ls.add("pod", Entry("dan", 0.0, "e"), actor)  # engagement, not comments
    assert ls.partners("big") == 0
    # half of the smaller sample is enough: 5 of big's 10 in a sample of 25
    for actor in RING[:5] + [f"x{i}" for i in range(20)]:
        ls.add("wide", Entry("eve", 0.0, "c"), actor)
    assert (ls.partners("wide"), ls.partners("big")) == (1, 1)
    # but 5 shared between two samples of 25 is a small share of both: no lockstep
    for actor in RING[:5] + [f"y{i}" for i in range(20)]:
        ls.add("crowd", Entry("fay", 0.0, "c"), actor)
    assert ls.shared["crowd"]["wide"] == 5
    assert ls.partners("crowd") == 1  # (with big only)


def test_partner_keys_are_the_posts_partners_counts() -> None:
    ls = Lockstep(min_shared=5, min_share=0.5)
    for post, author in (("p1", "ann"), ("p2", "bob"), ("p3", "cat")):
        for actor in RING[:8]:
            ls.add(post, Entry(author, 0.0, "c"), actor)
    for actor in RING[:4]:
        ls.add("few", Entry("dan", 0.0, "c"), actor)  # (4 shared: not a partner)
    assert ls.partner_keys("p3") == ["p1", "p2"] and ls.partners("p3") == 2
    assert ls.partner_keys("few") == [] and ls.partner_keys("unknown") == []


def test_shared_accounts_are_a_posts_accounts_seen_on_its_partners() -> None:
    ls = Lockstep(min_shared=5, min_share=0.5, per_actor=3)
    for actor in [*RING[:8], "friend"]:
        ls.add("p1", Entry("ann", 0.0, "c"), actor)
    for actor in RING[2:10]:
        ls.add("p2", Entry("bob", 0.0, "c"), actor)
    for actor in [*RING[:4], "z1", "z2", "z3", "z4"]:
        ls.add("few", Entry("cat", 0.0, "c"), actor)  # 4 shared with p1: not a partner
    # p1's accounts on p2 (its one partner), not the ones only "few" shares, nor the friend
    assert ls.shared_accounts("p1") == frozenset(RING[2:8])
    # another partition's ring sample adds its accounts (only those in p1's own sample)
    assert ls.shared_accounts("p1", ("r0", "r1", "nobody")) == frozenset(RING[:8])
    assert ls.shared_accounts("unknown", ("r0",)) == frozenset()
    # a busy account (in more than 3 posts) is in no overlap, so not shown to be in lockstep
    for post in ("x1", "x2"):
        ls.add(post, Entry("dan", 0.0, "c"), "r2")
    assert ls.shared_accounts("p1") == frozenset(RING[3:8])


def test_an_outside_sample_overlaps_this_partitions_posts_by_the_same_rule() -> None:
    ls = Lockstep(window_s=3600.0, min_shared=5, min_share=0.5, per_actor=5)
    for actor in RING[:8]:
        ls.add("mine", Entry("ann", 0.0, "c"), actor)
        ls.add("pods", Entry("ann", 0.0, "e"), actor)  # another kind of sample
        ls.add("old", Entry("bob", -7200.0, "c"), actor)  # started two hours before
    for actor in RING[:6]:
        ls.add("r:shadow", Entry("", 0.0, "c"), actor)  # another partition's post: never ours
    outside = tuple(RING[:6])
    assert ls.overlapping(outside, "c", 600.0) == ["mine"]
    assert ls.overlapping(outside, "e", 600.0) == ["pods"]
    assert ls.overlapping(tuple(RING[:4]), "c", 600.0) == []  # 4 shared: too few
    # busy accounts (here in more than 5 posts) are in no overlap, as for partners
    for post in ("x1", "x2"):
        for actor in RING[:3]:
            ls.add(post, Entry("cat", 0.0, "c"), actor)
    assert ls.overlapping(outside, "c", 600.0) == []


def test_dropping_a_post_removes_its_overlaps() -> None:
    ls = Lockstep()
    for post, author in (("p1", "ann"), ("p2", "bob")):
        for actor in RING:
            ls.add(post, Entry(author, 0.0, "c"), actor)
    assert ls.partners("p1") == 1
    ls.drop("p2")
    assert ls.partners("p1") == 0
    assert ls.members.keys() == {"p1"}
    assert all(posts.keys() == {"p1"} for posts in ls.by_actor.values())


def _exact(ls: Lockstep) -> dict[str, dict[str, int]]:
    """Overlaps computed from scratch: intersections of the samples of posts that could be in
    lockstep (same kind, different authors, not two shadows, within the window), busy accounts
    out."""
    busy = {a for a, posts in ls.by_actor.items() if len(posts) > ls.per_actor}
    out: dict[str, dict[str, int]] = {}
    for a, ma in ls.members.items():
        for b, mb in ls.members.items():
            ea, eb = ls.entries[a], ls.entries[b]
            comparable = (
                ea.kind == eb.kind
                and ea.author != eb.author
                and bool(ea.author or eb.author)
                and abs(ea.start - eb.start) <= ls.window_s
            )
            if a != b and comparable:
                n = len((ma & mb) - busy)
                if n:
                    out.setdefault(a, {})[b] = n
    return out


ops = st.lists(
    st.tuples(
        st.booleans(),  # add (True) or drop
        st.sampled_from([f"p{i}" for i in range(6)]),
        st.sampled_from(RING[:6]),
        st.sampled_from(("c", "e")),
        st.sampled_from(("", "ann", "bob", "cat")),  # "": another partition's post
        st.sampled_from((0.0, 3600.0, 4 * 86400.0)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_overlaps_are_the_exact_intersections_whatever_the_order(
    steps: list[tuple[bool, str, str, str, str, float]],
) -> None:
    # (per_actor=3: accounts turn busy and back often) the index equals a rebuild from its own
    # samples in another order, and both equal the intersections computed from scratch
    ls = Lockstep(per_actor=3)
    for add, post, actor, kind, author, start in steps:
        if add:
            ls.add(post, ls.entries.get(post, Entry(author, start, kind)), actor)
        else:
            ls.drop(post)
        got = {k: dict(v) for k, v in ls.shared.items() if v}
        assert got == _exact(ls)
    rebuilt = Lockstep(per_actor=3)
    for post in sorted(ls.members, reverse=True):
        for actor in sorted(ls.members[post]):
            rebuilt.add(post, ls.entries[post], actor)
    assert {k: dict(v) for k, v in rebuilt.shared.items() if v} == _exact(ls)
