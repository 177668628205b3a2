"""Lockstep: the same accounts acting together on several posts of different authors.

Facebook's CopyCatch finds groups of accounts that act on the same pages within a short time of
each other; rings (accounts commenting on each other's posts) and engagement pods (sharing and
liking each other's posts) are such groups. Here each post keeps a sample of the accounts behind
it (its first ``sample`` distinct commenters, or its first sharers and likers while the post is
young); :class:`Lockstep` indexes those samples by account and keeps, for every pair of posts, how
many accounts they share. A post is in lockstep with another when they share at least ``min_shared``
accounts, making up at least ``min_share`` of the smaller sample, their authors differ (an author's
own followers return to every post: that is a network, not a ring), and they started within
``window_s`` of each other.

Only pairs that can ever count are kept (same kind, different authors, starting within the window,
not two shadows): those are fixed facts of the two posts, so what is kept never depends on the
order of adds.

The index is *derived*: it is a function of the samples kept in the detector's state (its posts
and shadows of other partitions' posts), so it is never stored; a restored detector rebuilds it
and, since overlaps are set intersections, the order it is rebuilt in does not matter.

Cost: adding one account to a sample costs one step per other post that account is in. An account
sampled in more than ``per_actor`` posts at once is *busy* and left out of every overlap until it
is in fewer again (a busy account is no ring's signature, and the other signals still see it);
turning busy or back costs ``per_actor``² steps once. Whether an account is busy is a function of
the posts held, so the overlaps stay the exact intersections of the samples without busy accounts,
whatever the order of adds and drops.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entry:
    """One post in the index: its author (``""`` for another partition's post, whose author is
    never one of this partition's), its start time and its kind ("c" comments, "e" engagement)."""

    author: str
    start: float
    kind: str


class Lockstep:
    def __init__(
        self,
        *,
        window_s: float = 3 * 86400.0,
        min_shared: int = 5,
        min_share: float = 0.5,
        per_actor: int = 64,
    ) -> None:
        self.window_s = window_s
        self.min_shared = min_shared
        self.min_share = min_share
        self.per_actor = per_actor
        self.entries: dict[str, Entry] = {}
        #: post key → its sampled accounts (sizes: the smaller sample bounds a share)
        self.members: dict[str, set[str]] = {}
        #: account → post keys it is sampled in (insertion order: oldest first)
        self.by_actor: dict[str, dict[str, None]] = defaultdict(dict)
        #: post key → other post key → accounts shared
        self.shared: dict[str, dict[str, int]] = defaultdict(dict)

    def add(self, key: str, entry: Entry, actor: str) -> None:
        """``actor`` joins the sample of post ``key`` (a no-op if already in it)."""
        members = self.members.get(key)
        if members is None:
            members = self.members[key] = set()
            self.entries[key] = entry
        if actor in members:
            return
        members.add(actor)
        posts = self.by_actor[actor]
        busy_before = len(posts) > self.per_actor
        posts[key] = None
        if busy_before:
            return
        if len(posts) > self.per_actor:
            self._pairs(posts, -1, skip=key)  # turned busy: out of every overlap
            return
        for other in posts:
            if other != key:
                self._count(key, other, 1)

    def _count(self, a: str, b: str, step: int) -> None:
        ea, eb = self.entries.get(a), self.entries.get(b)
        if ea is None or eb is None or not self._comparable(ea, eb):
            return
        for x, y in ((a, b), (b, a)):
            row = self.shared[x]
            n = row.get(y, 0) + step
            if n > 0:
                row[y] = n
            else:
                row.pop(y, None)

    def _comparable(self, ea: Entry, eb: Entry) -> bool:
        """Whether :meth:`partners` could ever count the pair (only those are kept: fixed facts
        of the two entries, so what is kept does not depend on the order of adds)."""
        return (
            ea.kind == eb.kind
            and bool(ea.author or eb.author)  # two other partitions' posts: not ours to judge
            and ea.author != eb.author  # an author's own followers return: a network
            and abs(ea.start - eb.start) <= self.window_s
        )

    def _pairs(self, posts: dict[str, None], step: int, skip: str | None = None) -> None:
        keys = [k for k in posts if k != skip]
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                self._count(a, b, step)

    def drop(self, key: str) -> None:
        """Forget post ``key`` (its group ended, expired or was replaced)."""
        members = self.members.pop(key, None)
        for other in self.shared.pop(key, {}):
            theirs = self.shared.get(other)
            if theirs is not None:
                theirs.pop(key, None)
        self.entries.pop(key, None)
        for actor in members or ():
            posts = self.by_actor.get(actor)
            if posts is None:
                continue
            busy_before = len(posts) > self.per_actor
            posts.pop(key, None)
            if not posts:
                del self.by_actor[actor]
            elif busy_before and len(posts) <= self.per_actor:
                self._pairs(posts, 1)  # no longer busy: back in the overlaps

    def partners(self, key: str) -> int:
        """How many other posts ``key`` is in lockstep with (see the module docstring)."""
        entry = self.entries.get(key)
        mine = self.shared.get(key)
        if entry is None or not mine:
            return 0
        size = len(self.members[key])
        n = 0
        for other, count in mine.items():
            if count < self.min_shared:
                continue
            if count >= self.min_share * min(size, len(self.members[other])):
                n += 1
        return n

    def partner_keys(self, key: str) -> list[str]:
        """The posts :meth:`partners` counts, sorted (a retroactive throttle walks them in an
        order that does not depend on the order of adds)."""
        mine = self.shared.get(key)
        if key not in self.entries or not mine:
            return []
        size = len(self.members[key])
        return sorted(
            other
            for other, count in mine.items()
            if count >= self.min_shared
            and count >= self.min_share * min(size, len(self.members[other]))
        )

    def shared_accounts(self, key: str, outside: tuple[str, ...] = ()) -> frozenset[str]:
        """The accounts of post ``key``'s sample that are also in the sample of a post it is in
        lockstep with (:meth:`partner_keys`), or in ``outside`` (another partition's sample it
        was found in lockstep with): the accounts that moved together. Busy accounts are in no
        overlap, so not in this either. Cost: the post's partners' samples, at most ``sample``
        accounts each."""
        return self.shared_with(key, self.partner_keys(key), outside)

    def shared_with(
        self, key: str, others: list[str], outside: tuple[str, ...] = ()
    ) -> frozenset[str]:
        """The accounts of post ``key``'s sample that are in the sample of one of ``others`` or
        in ``outside``, busy accounts left out (as :meth:`shared_accounts`)."""
        mine = self.members.get(key)
        if not mine:
            return frozenset()
        seen: set[str] = set(outside)
        for other in others:
            seen |= self.members.get(other, set())
        return frozenset(a for a in mine & seen if len(self.by_actor.get(a, ())) <= self.per_actor)

    def overlapping(self, actors: tuple[str, ...], kind: str, at: float) -> list[str]:
        """This partition's own posts of ``kind`` in lockstep with an outside sample ``actors``
        (another partition's throttled post, started or throttled at ``at``): by the same rule as
        :meth:`partners` (shared non-busy accounts, at least ``min_shared`` and ``min_share`` of
        the smaller sample, starts within ``window_s``). Sorted. Cost: one step per post each of
        the (at most 64) accounts is sampled in, at most ``per_actor`` each."""
        counts: dict[str, int] = {}
        for actor in dict.fromkeys(actors):
            posts = self.by_actor.get(actor)
            if not posts or len(posts) > self.per_actor:
                continue  # (busy accounts are in no overlap)
            for key in posts:
                counts[key] = counts.get(key, 0) + 1
        size = len(set(actors))
        out = []
        for key, count in counts.items():
            e = self.entries[key]
            if (
                e.author  # (a shadow is another partition's post: not ours to judge)
                and e.kind == kind
                and abs(e.start - at) <= self.window_s
                and count >= self.min_shared
                and count >= self.min_share * min(size, len(self.members[key]))
            ):
                out.append(key)
        return sorted(out)
