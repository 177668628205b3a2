"""The comment-bait detector itself: :class:`Detector` (one per partition), its tunables
(:class:`BaitParams`) and its decisions (:class:`Decision`). An overview of where it runs is in
:mod:`leaderboard.bait`; the wording it reads is :mod:`leaderboard.bait.patterns`, the state it
keeps :mod:`leaderboard.bait.state`, the lockstep check :mod:`leaderboard.bait.lockstep`.

It judges the **response** to a post, not the post's wording: bait wording changes every week, the
shape of the response to bait does not. Signals (each 0..1; see :meth:`Detector._signals`):

- what the answers say: ``low_info`` (answers that carry no information of their own: a stock
  answer, a tag, emoji, one or two words, self-promotion, or only the post's own words echoed
  back), ``duplicates`` (answers that repeat an earlier one on the post, near-duplicates by their
  word sets);
- who answers: ``strangers`` (commenters who never interacted with the author before: the
  author's network, :attr:`Author.network <leaderboard.bait.state.Author.network>`), ``fresh``
  (accounts the partition first saw moments before), ``flagged_commenters`` (accounts behind
  throttled posts, here or on other partitions through evidence);
- coordination: ``lockstep`` (the same accounts together on other posts of other authors within
  days, :mod:`leaderboard.bait.lockstep`), ``regular`` (machine-regular inter-arrival times);
- volume and mix, as before: ``spike`` (the post's comment rate against the author's own long-run
  rate), ``comments_dominate`` (comments while shares, clicks and conversions do not follow),
  ``repeat_commenters``, ``repeat_offender``;
- wording, a weak prior only: ``bait_phrasing`` (Facebook's 2017 engagement-bait categories).

Decision. The response looks farmed (``farmed``) when empty answers come from strangers, when new
accounts flood a post with empty or textless comments that nothing else follows, when the
commenters move in lockstep, or when they are flagged. A post is throttled when ``farmed`` is at
least ``content_min`` and the weighted sum of the signals reaches ``threshold``, after
``min_comments`` comments (``min_coordinated`` when the evidence is coordination: lockstep or
flagged accounts). Volume alone never throttles (an organic surge looks the same by volume), wording
alone never does either, and empty answers from the author's own network (a congratulation thread)
do not look farmed.

Engagement pods. A post's shares and likes in its first ``pod_window_s`` form a group of their
own (``e:<post>``); it is throttled when its accounts move in lockstep with other posts' early
engagers (or are flagged) and they came fast; the throttle then scales the post's shares and likes,
with the same multiplier, alerts and end rule as comments.

Multiplier. ``multiplier_max`` at the threshold, falling linearly to ``multiplier_min`` for strong
evidence; halved for each recent throttle of the author (repeat offenders start lower), never below
``multiplier_floor``. While a throttle lasts its multiplier can only fall.

End. A throttle ends when the post's comment stream has calmed down: its weighted comment rate has
fallen below ``calm_per_hour`` (or below a quarter of its rate at the start of the throttle, if
lower: a slow-burn campaign is not calm at its own steady pace). The end time is computed exactly
(the instant the rate crossed) and applied when the post's next event arrives; comments after it
count in full, and the post's evidence starts afresh (a renewed campaign is detected again, as a
repeat offence).

Across partitions. A throttle names its accounts in an :class:`~leaderboard.bait.evidence.Evidence`
record, and a post's first accounts are named once it has 8 and 24 of them; the worker sends the
records to the other partitions through the events log, where :meth:`Detector.flag` takes them
(flagged accounts; shadows of other partitions' posts for the lockstep check).

Retroactive. A ring's first post has nothing to be in lockstep with while it runs. Once a throttle
rests on lockstep, every post of this partition in lockstep with it (and the throttled post itself)
is treated as if it had been throttled at its ``min_coordinated``-th interaction: throttled from
then on, and what its later interactions counted in full is clawed back, and what the accounts
shown to move in lockstep counted before that too (:class:`Clawback`; the planner tells the
detector what each interaction counted with :meth:`Detector.counted`). Its
evidence kind is then ``ring``/``pod``, and the other partitions do the same for their posts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from leaderboard.bait.evidence import LOCKSTEP_KINDS, SAMPLE_KINDS, THROTTLE_KINDS, Evidence
from leaderboard.bait.idle import IdleIndex
from leaderboard.bait.keyed import Keyed, fingerprint
from leaderboard.bait.lockstep import Entry, Lockstep
from leaderboard.bait.patterns import comment_features, phrasing, post_words
from leaderboard.bait.shapes import Shapes
from leaderboard.bait.state import (
    _CLOCK,
    FULL,
    NETWORK,
    Author,
    Commenter,
    Group,
    Shadow,
    engaged,
    engagers,
    group_key,
    pod_key,
)
from leaderboard.explain import POSTS_PERIOD_S

#: Kinds whose contributions the comment throttle scales.
COMMENT_KINDS = frozenset({"comment", "reply"})
#: Kinds that show a post's audience did more than comment (the engagement comments should follow).
ENGAGEMENT_KINDS = frozenset({"share", "click", "conversion", "like", "follow", "mention"})
#: Kinds an engagement-pod throttle scales.
POD_KINDS = frozenset({"share", "like"})
LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class BaitParams:
    """The detector's tunables (documented in the module docstring; evaluated by kudos bait-eval)."""

    min_comments: int = 12
    threshold: float = 1.6
    #: ``farmed`` at least this strong must take part in a throttle
    content_min: float = 0.5
    #: comments (or pod engagements) before a decision on coordination evidence alone
    min_coordinated: int = 5
    rate_half_life_s: float = 1800.0
    baseline_half_life_s: float = 3 * 86400.0
    baseline_floor_per_hour: float = 2.0
    calm_per_hour: float = 3.0
    multiplier_max: float = 0.25
    multiplier_min: float = 0.1
    multiplier_floor: float = 0.02
    offender_window_s: float = 7 * 86400.0
    #: an account first seen this recently (event time) is new ("fresh")
    fresh_s: float = 900.0
    #: ...once the partition has watched this long (before, every account is new to it)
    fresh_warmup_s: float = 6 * 3600.0
    #: shares and likes this soon after a post's first event make up its pod sample
    pod_window_s: float = 3600.0
    #: posts starting this far apart are never in lockstep
    lockstep_window_s: float = 3 * 86400.0
    #: accounts two posts must share (and half of the smaller sample) to be in lockstep
    lockstep_min_shared: int = 5
    #: post groups idle this long (event time) are forgotten
    group_idle_s: float = 2 * 86400.0
    author_idle_s: float = 14 * 86400.0
    commenter_idle_s: float = 7 * 86400.0
    #: a flag lasts this long after the throttle (or evidence) that gave it, however active the
    #: account stays (a renewed flag starts it again): evidence of a week, not a mark for life
    flag_ttl_s: float = 7 * 86400.0
    #: distinct commenters and answers remembered per post
    sample: int = 64
    #: interactions per post whose points a retroactive throttle can claw back (its first ones;
    #: about 31 B each while the post counts in full: a pod's first post is often liked by
    #: more accounts than its sample holds before the pod is proven)
    claw_entries: int = 128
    #: entries per partition (groups, authors, accounts, shadows); beyond it the least recent go
    max_groups: int = 50_000
    max_authors: int = 100_000
    max_commenters: int = 200_000
    max_shadows: int = 20_000
    #: the key of the detector's hashes of account ids (:mod:`leaderboard.bait.keyed`; empty:
    #: the public default)
    key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """A throttle starting or ending, in event time. ``group`` is ``p:<post>``, ``t:<target>``
    or ``e:<post>`` (the post's shares and likes: an engagement pod)."""

    group: str
    post: str | None
    target: str
    state: str  # "throttled" | "ended"
    at: float
    multiplier: float
    reasons: tuple[str, ...]
    #: comments (pod: shares and likes) counted on the group (this episode) before the decision
    comments: int
    signals: dict[str, float] = field(default_factory=dict)

    #: when the throttle started (``at`` for a start; the start of the throttle that ``ended``)
    since: float = 0.0
    #: a retroactive throttle (``at``: when the group was found in lockstep with a throttled
    #: post, or found moving in lockstep itself once throttled), and the interactions a
    #: throttle on lockstep clawed back: (account, event time), in the order counted
    retroactive: bool = False
    clawed: tuple[tuple[str, float], ...] = ()
    #: the episode so far, for the record that this decision replaces (the explain view keeps
    #: the latest decision per group): when a ring was last found (None: never), and how many
    #: interactions were clawed back in all, this decision's included
    retro_at: float | None = None
    clawed_total: int = 0

    def to_json(self) -> dict[str, Any]:
        """The alert record: ``GET /api/alerts``, topic ``bait-alerts``, the explain view."""
        out: dict[str, Any] = {
            "group": self.group,
            "post": self.post,
            "target": self.target,
            "state": self.state,
            "detected_at": self.since if self.state == "ended" or self.retroactive else self.at,
            "ended_at": self.at if self.state == "ended" else None,
            "multiplier": self.multiplier,
            "reasons": list(self.reasons),
            "comments": self.comments,
            "signals": {k: round(v, 3) for k, v in self.signals.items()},
        }
        if self.retroactive:
            out["retroactive_at"] = self.at
        elif self.retro_at is not None:
            out["retroactive_at"] = self.retro_at  # (a later decision keeps what was found)
        if self.clawed:
            # the event times of the interactions taken back (not the accounts: alerts are
            # public, and the author can find the interactions on their own post by time)
            out["clawed_back"] = [ts for _, ts in self.clawed]
        if self.clawed_total:
            out["clawed_total"] = self.clawed_total
        return out


@dataclass(frozen=True, slots=True)
class Clawback:
    """Points an interaction counted in full that a retroactive throttle takes back: the planner
    subtracts ``withheld_mp`` from every board the interaction counted on (its ``ts`` decides
    the window buckets and the decayed value, as it did when it counted) and records it as
    withheld, on the group and the kind, like any throttled interaction's."""

    target: str
    group: str
    post: str
    kind: str
    ts: float
    actor: str
    withheld_mp: int
    communities: tuple[str, ...]


#: Event-time seconds between sweeps of idle entries (a sweep scans every table, so not too often:
#: the horizons are days, and expiry on access never waits for a sweep).
SWEEP_EVERY_S = 6 * 3600.0
#: Sizes of a post's account sample at which it is sent to the other partitions: commenters
#: (detector 13 added 16 and 40: with samples of 8 and 24 a young ring's post on one partition
#: shared too few accounts with its other posts' on the others to be in lockstep, and the flags
#: detector 12 gave the people beside a ring were what caught it; held-out seeds 84 and 92,
#: tuning seed 5) and a pod's engagers (their two, as before: held-out seed 118's small pod post
#: counted 21 % with four).
BROADCAST_AT = {"commenters": (8, 16, 24, 40), "engagers": (8, 24)}

#: :meth:`Detector._flag_level`: flagged for answering bait (counts on empty answers only), or
#: as a farm's account (counts everywhere).
BAIT_FLAG = 1
FARM_FLAG = 2
#: Groups whose shapes are indexed at once, at most (an index holds up to 96 small sets: memory
#: stays bounded with 50,000 groups; a group that returns after this many others is re-indexed,
#: 32 sets to build).
_SHAPE_INDEXES = 1024


#: The detector's own version: bump it when a change to this package changes decisions (points),
#: so a namespace scored by the old detector is not continued by the new one without a rebuild.
#: 2: the response signals, lockstep, pods and cross-partition evidence (issue 13).
#: 3: retroactive throttles of posts found in lockstep with a throttled one (issue 13).
#: 4: a claw-back also takes the lockstep accounts' first interactions, and covers a post's first
#: ``claw_entries`` interactions, sampled accounts or not.
#: 5: every throttle claws back what accounts flagged by earlier throttles counted on the post
#: before it; a post of an author throttled of late is a ring's or pod's post by lockstep alone;
#: the ``hollow`` signal (empty, echoing and repeated answers together).
#: 6: a post of the author's network pays back only when most of its sample is shown to move
#: with a ring (:meth:`Detector._proof`), an offence alone no longer enough; emoji-only comments
#: count half in ``hollow``; a flag lasts a week (three adversarial reviews).
#: 7: a post of the author's network is in lockstep (live) only while most of its own sample is
#: shared with partners other than friends' unthrottled posts (:meth:`Detector._moving`).
#: 8: a throttle heard of before its post's sample keeps its level; a pod post was in lockstep
#: when one throttled partner proved most of its sample (removed in 11).
#: 9: two kinds of flag: a farm's (lockstep, a pod's throttle, their records) counts everywhere,
#: a bait answerer's (a comment throttle on the answers alone) only on empty answers (held-out
#: seed 34).
#: 10: empty answers from strangers are farmed only where comments are most of the response
#: (fans who like as they comment are not bait: held-out seeds 30, 31, 33 and 34).
#: 11: a proven pod's sample record flags its accounts, and 8's one-partner pod lockstep is gone
#: (an adversarial review: it spread a throttle to honest friends); a proven ring's or pod's grown
#: sample throttles a post retroactively where it is half of its sample (held-out seed 57).
#: 12: engagement counted per account and kind about once; a throttle on lockstep alone gives a
#: farm's flag only to the accounts that move; proofs by farm-flagged accounts only.
#: 13: keyed hashes of account ids (:mod:`leaderboard.bait.keyed`) and engagers counted in
#: sampled levels (never every click once a bitmap is full); a throttle on lockstep alone (live,
#: retroactive or grown) flags only the accounts that move; a flagged account counts once per
#: post's comments; commenter samples sent at 16 and 40 too (two adversarial reviews).
DETECTOR_VERSION = 13


def identity(version: str, params: BaitParams | None) -> str:
    """The scoring identity a namespace is kept under: the scoring.toml version, the detector's
    version and its settings (all change points). A worker with another identity must not apply.
    Only the settings an operator can change (``[bait]``) are in it, so a release that adds an
    internal parameter does not stop every worker; such a release bumps DETECTOR_VERSION.
    It ends with how top posts and withheld points are kept (per ``POSTS_PERIOD_S`` period): a
    namespace written under another layout is rescored by ``kudos rebuild``, never continued."""
    layout = f"+posts{POSTS_PERIOD_S // 86400}d"
    if params is None:
        return f"{version}+bait:off{layout}"
    p = params
    knobs = f"{p.threshold:g}/{p.min_comments}/{p.calm_per_hour:g}/{p.multiplier_max:g}"
    # (a changed key changes every stored hash: four hex digits of it tell keys apart)
    key = f"/k{fingerprint(p.key)}" if p.key else ""
    return f"{version}+bait{DETECTOR_VERSION}:{knobs}/{p.multiplier_min:g}{key}{layout}"


def _clamp(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


def _ramp(x: float, lo: float, hi: float) -> float:
    """0 at ``lo``, 1 at ``hi``, linear between."""
    return _clamp((x - lo) / (hi - lo))


def _decay(dt: float, half_life: float) -> float:
    return 1.0 if dt <= 0.0 else 2.0 ** (-dt / half_life)


class Detector:
    """One partition's detector. Feed it the partition's new events in order with :meth:`observe`
    (and evidence from other partitions with :meth:`flag`); take the state it changed with
    :meth:`take_changes`, its decisions with :meth:`take_decisions` and its evidence for the other
    partitions with :meth:`take_evidence` (all are written with the batch that caused them).
    """

    def __init__(self, params: BaitParams | None = None) -> None:
        self.p = params or BaitParams()
        self._keyed = Keyed(self.p.key)
        self.groups: dict[str, Group] = {}
        self.authors: dict[str, Author] = {}
        self.commenters: dict[str, Commenter] = {}
        self.shadows: dict[str, Shadow] = {}
        #: each table's keys by the hour of their ``last``, for :meth:`_sweep` (derived: every
        #: new entry is filed where it is made, and all of them by :meth:`restore`)
        self._idle = {t: IdleIndex() for t in "gacs"}
        #: the newest event time seen (expiry is measured from it, so only the order matters)
        self.newest = -math.inf
        self.swept = -math.inf
        #: the first event time this partition's detector saw: before it has watched for
        #: ``fresh_warmup_s`` every account looks new, so ``fresh`` says nothing yet
        self.born = -math.inf
        #: derived from the groups and shadows (never stored; rebuilt by :meth:`restore`)
        self.lockstep = Lockstep(
            window_s=self.p.lockstep_window_s, min_shared=self.p.lockstep_min_shared
        )
        #: each author's network as a set (derived from ``Author.network``; rebuilt on demand)
        self._networks: dict[str, set[int]] = {}
        #: groups' shapes indexed for the near-duplicate check (derived from ``Group.shapes``;
        #: rebuilt on demand, the oldest dropped beyond ``_SHAPE_INDEXES``)
        self._shapes: dict[str, Shapes] = {}
        #: the entries changed since :meth:`take_changes`, in order, each as its table's letter
        #: and its key in one string: not a (table, key) tuple, which the garbage collector
        #: tracks (one per changed entry, held until the batch ends; in bench.bait_cost on the
        #: Higgs log the collector took a sixth of the time)
        self._dirty: dict[str, None] = {}
        self._lowest_by_offences: dict[int, int] = {}
        self._clock_moved = False
        self._decisions: list[Decision] = []
        self._evidence: list[Evidence] = []
        self.clawbacks: list[Clawback] = []
        #: the post group, sample index and time of the event just observed, while the group
        #: counts in full (:meth:`counted` records what it scored there)
        self._last: tuple[Group, int, float] | None = None

    # -- persistence ---------------------------------------------------------------------

    @classmethod
    def restore(
        cls, tables: dict[str, dict[str, str]], params: BaitParams | None = None
    ) -> Detector:
        """A detector from its tables as :meth:`take_changes` wrote them."""
        d = cls(params)
        d.groups = {k: Group.load(v) for k, v in tables.get("g", {}).items()}
        d.authors = {k: Author.load(v) for k, v in tables.get("a", {}).items()}
        d.commenters = {k: Commenter.load(v) for k, v in tables.get("c", {}).items()}
        d.shadows = {k: Shadow.load(v) for k, v in tables.get("s", {}).items()}
        for t, entries in d._tables().items():
            d._idle[t].rebuild(entries)
        clock = tables.get("m", {}).get(_CLOCK)
        if clock is not None:
            # [newest, swept] (before issue 13), then [newest, swept, born]
            values = [x if x is not None else -math.inf for x in orjson.loads(clock)]
            d.newest, d.swept = values[0], values[1]
            d.born = values[2] if len(values) > 2 else d.newest
        for key, g in d.groups.items():
            if not key.startswith("t:"):
                for actor in g.commenters:
                    d.lockstep.add(key, d._entry(key, g), actor)
        for key, sh in d.shadows.items():
            for actor in sh.actors:
                d.lockstep.add(key, _shadow_entry(sh), actor)
        return d

    def _tables(self) -> dict[str, dict[str, Any]]:
        """The four tables by their letters in the stored state (and in ``_dirty``)."""
        return {"g": self.groups, "a": self.authors, "c": self.commenters, "s": self.shadows}

    def take_changes(self) -> list[tuple[str, str, bytes | None]]:
        """(table, key, value or None when deleted) of every entry changed since the last call."""
        out: list[tuple[str, str, bytes | None]] = []
        tables = self._tables()
        for changed in self._dirty:
            table, key = changed[0], changed[1:]
            entry = tables[table].get(key)
            out.append((table, key, None if entry is None else entry.dump()))
        if out or self._clock_moved:
            # (also alone: an event that only moved the clock, e.g. a self-reply, moves expiry)
            clock = [None if math.isinf(x) else x for x in (self.newest, self.swept, self.born)]
            out.append(("m", _CLOCK, orjson.dumps(clock)))
        self._dirty.clear()
        self._clock_moved = False
        return out

    def take_decisions(self) -> list[Decision]:
        out, self._decisions = self._decisions, []
        return out

    def take_evidence(self) -> list[Evidence]:
        """The evidence records since the last call (throttles started, posts' first accounts),
        for the worker to produce to every other partition (:mod:`leaderboard.bait.evidence`)."""
        out, self._evidence = self._evidence, []
        return out

    def take_clawbacks(self) -> list[Clawback]:
        """The points retroactive throttles took back since the last call (the planner
        subtracts them in log order: ask after each :meth:`observe` and :meth:`flag`)."""
        out, self.clawbacks = self.clawbacks, []
        return out

    def counted(self, kind: str, points_mp: int, communities: tuple[str, ...]) -> None:
        """The event just observed scored ``points_mp`` in full on ``communities`` too: kept for
        a retroactive throttle of its post (only while the post counts in full, its first
        ``claw_entries`` interactions; communities kept once per post)."""
        last = self._last
        self._last = None
        code = _KIND_CODES.get(kind)
        if last is None or points_mp <= 0 or code is None:
            return
        g, index, ts = last
        if g.mult == FULL and len(g.counted) < self.p.claw_entries:
            comms = list(communities)
            try:
                ci = g.comms.index(comms)
            except ValueError:
                ci = len(g.comms)
                g.comms.append(comms)
            entry: list[Any] = [index, ts, code, points_mp, ci]
            if len(g.counted) < self.p.min_coordinated - 1:
                # one of the post's first interactions (a claw takes it only if a lockstep
                # account made it): marked, since clawing the others shifts the list
                entry.append(1)
            g.counted.append(entry)

    def size(self) -> int:
        return len(self.groups) + len(self.authors) + len(self.commenters) + len(self.shadows)

    # -- the event path ------------------------------------------------------------------

    def observe(
        self, kind: str, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int:
        """Take one new event into account; return the multiplier (per mille) its points get."""
        self._last = None
        self._tick(ts)
        if kind in COMMENT_KINDS:
            if actor == target:
                self._touch(actor, ts)
                return FULL  # an author answering in their own thread farms nothing
            return self._comment(ts, actor, target, post, text)
        mult = FULL
        if kind == "post":
            if post is not None:
                key = "p:" + post
                g = self._group(key, post, target, ts, create=True)
                assert g is not None
                if text:
                    g.phrasing = phrasing(text)
                    g.words = post_words(text)
                self._dirty["g" + key] = None
        elif kind in ENGAGEMENT_KINDS:
            # a post's engagement counts from its first event; a target's (no post) only once it
            # has comments, so plain shares and mentions cost the detector nothing
            key = group_key(post, target)
            g = self._group(key, post, target, ts, create=post is not None)
            if g is not None:
                if actor != target:
                    # (each account and kind about once: the author's own clicks, scored
                    # nothing, or one account's hundred likes are not fans engaging)
                    engaged(g, self._keyed.pair(actor, kind))
                g.last = max(g.last, ts)
                self._dirty["g" + key] = None
                if post is not None and kind in POD_KINDS and actor != target:
                    mult = self._pod(g, ts, actor, target, post)
            if actor != target:
                # a post makes its target an author; other engagement counts for known ones
                a = self._author(target, ts, count=False) if post else self._known_author(target)
                if a is not None:
                    self._befriend(a, target, actor)
        self._touch(actor, ts)
        return mult

    def touch(self, ts: float, actor: str, target: str) -> None:
        """An event the detector does not judge (no post, not a comment): it still gives its
        actor a history here, and makes it known to the target if the target is an author."""
        self._last = None
        self._tick(ts)
        if actor != target:
            a = self._known_author(target)
            if a is not None:
                self._befriend(a, target, actor)
        self._touch(actor, ts)

    def flag(self, e: Evidence) -> None:
        """Take evidence from another partition, in this partition's order (its ts is its time):
        a throttle's accounts count as flagged from here on; a post's first accounts become a
        shadow post for the lockstep check."""
        self._last = None
        self._tick(e.at)
        if e.kind in THROTTLE_KINDS:
            farm = e.kind != "comments"  # (only a plain comment throttle judges answers)
            for actor in e.actors:
                # (from when it arrives here: another partition's clock may run days behind,
                # and its place in this partition's log is fixed, so a rebuild decides alike)
                self._flag(actor, self.newest, farm=farm)
            sample = LOCKSTEP_KINDS.get(e.kind)
            shadow = self.shadows.get("r:" + e.source)
            level = 1 if sample is None else 2
            if shadow is not None and shadow.throttled < level:
                shadow.throttled = level
                self._dirty["sr:" + e.source] = None
            elif shadow is None and e.source not in self.groups:
                # (a throttle can come before the post's first sample: a pod throttled at its
                # 7th account is heard of here before its sample of 8. Its level waits in an
                # empty shadow, which that sample then fills; before, it was lost, and a later
                # post of the same pod had no throttled partner to be proven by)
                self.shadows["r:" + e.source] = Shadow(e.at, _SAMPLE_OF[e.kind], [], level)
                self._idle["s"].add("r:" + e.source, e.at)
                self._dirty["sr:" + e.source] = None
            if sample is not None and e.source not in self.groups:
                # (a post of this very partition, e.g. a replayed log: its own throttle decided)
                # a ring or pod throttled elsewhere: this partition's posts in lockstep with it
                # were farmed by the same accounts, before anyone could tell
                for key in self.lockstep.overlapping(e.actors, sample, e.at):
                    self._retro(key, e.at, e.actors, source=e.source)
            return
        if e.kind not in SAMPLE_KINDS or e.source in self.groups:
            return  # (a post of this very partition, e.g. a replayed log: not another's)
        key = "r:" + e.source
        old = self.shadows.get(key)
        if old is not None:
            self.lockstep.drop(key)
        sh = self.shadows[key] = Shadow(
            e.at, e.kind, list(e.actors), throttled=old.throttled if old is not None else 0
        )
        self._idle["s"].add(key, sh.last)
        self._dirty["s" + key] = None
        for actor in sh.actors:
            self.lockstep.add(key, _shadow_entry(sh), actor)
        if sh.throttled == 2:
            # a proven ring's or pod's sample, grown since its record came (which named only the
            # accounts it had when throttled, often its first five to seven)
            letter = _LETTER_OF[e.kind]
            if letter == "e":
                # a pod's: its partition flags every account that engages its throttled post,
                # so this one flags the pod's sample as it hears of it (before, a pod's later
                # post here counted few flagged accounts and went on; held-out seed 29)
                for actor in sh.actors:
                    self._flag(actor, self.newest, farm=True)
            # this partition's posts in lockstep with it now, as :meth:`_ring_yet` asks its own
            # partners again (``grown``: a new throttle only where it is half of their sample)
            for other in self.lockstep.overlapping(e.actors, letter, e.at):
                self._retro(other, self.newest, e.actors, grown=True, source=e.source)

    # -- comments ------------------------------------------------------------------------

    def _tick(self, ts: float) -> None:
        p = self.p
        if math.isinf(self.born):
            self.born = ts
        if ts > self.newest:
            self.newest = ts
            self._clock_moved = True
            if ts - self.swept >= SWEEP_EVERY_S:
                self._sweep()
        if (
            len(self.groups) > 2 * p.max_groups
            or len(self.commenters) > 2 * p.max_commenters
            or len(self.authors) > 2 * p.max_authors
            or len(self.shadows) > 2 * p.max_shadows
        ):
            self._sweep()  # (late events do not move the clock; the caps hold anyway)

    def _comment(
        self, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int:
        p = self.p
        key = group_key(post, target)
        g = self._group(key, post, target, ts, create=True)
        assert g is not None
        self._dirty["g" + key] = None
        self._dirty["a" + target] = None
        if g.mult < FULL:
            ended = self._calm_end(g, ts)
            if ended is not None:
                g = self._end(key, g, ended)
        author = self._author(target, ts)
        fresh = self._fresh(actor, ts)
        h = self._keyed.actor(actor)
        stranger = h not in self._network(author, target)
        self._add_comment(key, g, ts, actor, text, fresh=fresh, stranger=stranger)
        self._befriend(author, target, actor, h)
        self._touch(actor, ts)
        self._remember(g, actor, ts)  # (:meth:`counted` checks the decision below)
        if g.comments < p.min_coordinated:
            return g.mult
        if g.post is None and g.comments < p.min_comments:
            return g.mult  # (early decisions need a post: coordination is judged on posts)
        if g.mult < FULL and g.mult <= self._lowest(author, ts):
            return g.mult  # (no evidence can lower it further: the signals would change nothing)
        sig = self._signals(key, g, author, ts)
        self._decide(key, g, author, ts, sig, g.comments >= p.min_comments)
        return g.mult

    def _remember(self, g: Group, actor: str, ts: float) -> None:
        """Point :meth:`counted` at this event if its post group counts it in full (an account
        outside the sample, e.g. a pod's late liker, is kept as index -1: what it counted can be
        clawed back like the rest, it just cannot be told from the others)."""
        if g.mult == FULL and g.post is not None and len(g.counted) < self.p.claw_entries:
            try:
                index = g.commenters.index(actor)
            except ValueError:
                index = -1
            self._last = (g, index, ts)

    def _decide(
        self, key: str, g: Group, a: Author, ts: float, sig: dict[str, float], enough: bool
    ) -> None:
        p = self.p
        score = _score(sig)
        if g.mult < FULL:
            # still throttled: the multiplier can only fall as evidence grows
            if score >= p.threshold:
                g.mult = min(g.mult, self._multiplier(score, a, ts, earlier=1))
            return
        # coordination evidence (lockstep, flagged accounts) may decide before min_comments
        coordinated = max(sig["lockstep"], sig["flagged_commenters"]) >= p.content_min
        if score >= p.threshold and sig["farmed"] >= p.content_min and (enough or coordinated):
            self._throttle(key, g, a, ts, sig, score)

    def _add_comment(
        self,
        key: str,
        g: Group,
        ts: float,
        actor: str,
        text: str | None,
        *,
        fresh: bool,
        stranger: bool,
    ) -> None:
        p = self.p
        if g.comments > 0:
            # inter-arrival times (Welford): machines keep time, people do not
            gap = max(ts - g.rate_at, 0.0)
            g.gap_n += 1
            delta = gap - g.gap_mean
            g.gap_mean += delta / g.gap_n
            g.gap_m2 += delta * (gap - g.gap_mean)
        self._arrive(g, ts)
        # (a flagged account counts once per post, as far as the sample tells: one sock's six
        # comments on a friend's twenty-comment thread are not six flagged commenters)
        again = actor in g.commenters
        if len(g.commenters) < p.sample:
            g.sampled += 1
            if not again:
                g.commenters.append(actor)
                g.strangers += stranger
                g.fresh += fresh
                if g.post is not None:
                    self.lockstep.add(key, self._entry(key, g), actor)
                self._broadcast(key, g, "commenters")
                self._ring_yet(key, g, ts)
        empty = not text
        if text:
            f = comment_features(text)
            g.texts += 1
            echo = bool(g.words) and 0 < len(f.words) <= 4 and all(w in g.words for w in f.words)
            dup = bool(f.words) and self._shape_index(key, g).near(f.words)
            if f.words and not dup and len(g.shapes) < p.sample // 2:
                g.shapes.append(list(f.words))
            g.empty += f.empty or echo
            g.dups += dup
            g.echoes += echo
            g.low += f.promo
            g.answers += f.stock or echo or f.mention_only
            empty = f.empty or echo or dup
            # (in halves: emoji alone are half hollow — a star's fans react so, and a farm pads
            # its repeats with them — the rest whole)
            g.hollow += 2 * ((empty and not f.emoji_only) or dup) + (f.emoji_only and not dup)
        # (a farm's flag counts everywhere; a bait answer's only on an empty answer again)
        level = self._flag_level(actor)
        g.flagged += not again and (level == FARM_FLAG or (level == BAIT_FLAG and empty))
        if g.mult < FULL and g.own and empty:
            # answering a post throttled on its own evidence with nothing (or with what the farm
            # says): the account is flagged; a real reply under a farmed post is not. A farm's
            # flag only if the throttle showed a farm (:data:`_FARM_REASONS`)
            # (and not under a retroactive throttle: its proof came from another post, and a
            # farm's flag would spread it to the next thread these accounts join)
            self._flag(
                actor,
                ts,
                farm=not _FARM_REASONS.isdisjoint(g.reasons) and "retroactive" not in g.reasons,
            )

    def _arrive(self, g: Group, ts: float) -> None:
        """One more event of the group's stream (a comment, or a pod's share or like): its
        count and weighted rate (the caller counts a flagged account: how depends on the kind)."""
        g.comments += 1
        g.rate = g.rate * _decay(ts - g.rate_at, self.p.rate_half_life_s) + 1.0
        g.rate_at = max(g.rate_at, ts)
        g.last = max(g.last, ts)

    # -- engagement pods -----------------------------------------------------------------

    def _pod(self, pg: Group, ts: float, actor: str, target: str, post: str) -> int:
        """A share or like on a post: its pod group decides, and answers the multiplier."""
        p = self.p
        key = pod_key(post)
        g = self.groups.get(key)
        if g is not None and self.newest - g.last > p.group_idle_s:
            self._forget(key)
            g = None
        young = ts - pg.first <= p.pod_window_s
        if g is None:
            if not young:
                return FULL  # late engagement joins no pod sample
            g = self.groups[key] = Group(target, post, pg.first, ts, rate_at=ts)
            self._idle["g"].add(key, g.last)
        self._dirty["g" + key] = None
        if g.mult < FULL:
            ended = self._calm_end(g, ts)
            if ended is not None:
                g = self._end(key, g, ended)
        self._arrive(g, ts)
        # (a share or like is no answer: only a farm's flag counts, on every share and like, not
        # once per account as on comments: a pod's accounts both like and share, and counted
        # once each, held-out seed 85's pod post counted 27 % before its throttle)
        g.flagged += self._flag_level(actor) == FARM_FLAG
        if young and len(g.commenters) < p.sample and actor not in g.commenters:
            g.sampled += 1
            g.commenters.append(actor)
            a0 = self._known_author(target)
            g.strangers += a0 is None or not self._knows(a0, target, actor)
            # (``texts`` counts the sample's engagements in the pod's first quarter hour)
            g.texts += ts - pg.first <= 900.0
            self.lockstep.add(key, self._entry(key, g), actor)
            self._broadcast(key, g, "engagers")
            self._ring_yet(key, g, ts)
        self._remember(g, actor, ts)
        if g.mult < FULL and g.own:
            self._flag(actor, ts, farm=True)  # (a pod's own throttle is lockstep)
        if g.comments < p.min_coordinated:
            return g.mult
        a = self._author(target, ts, count=False)
        if g.mult < FULL and g.mult <= self._lowest(a, ts):
            return g.mult  # (as for comments: nothing can lower it further)
        partners = self.lockstep.partners(key)
        n = max(len(g.commenters), 1)
        sig = {
            "lockstep": _lockstep(partners, g.strangers / n),
            "flagged_commenters": _clamp(g.flagged / g.comments / 0.3) * _clamp(g.flagged / 6.0),
            "fast": _ramp(g.texts / n, 0.3, 0.7),
            "repeat_offender": 1.0 if self._offences(a, ts) else 0.0,
        }
        sig["farmed"] = max(sig["lockstep"], sig["flagged_commenters"])
        score = (
            sig["farmed"]
            + 0.8 * sig["fast"]
            + 0.4 * sig["repeat_offender"]
            + 0.3 * _clamp(partners / 4.0)
        )
        if g.mult < FULL:
            if score >= p.threshold:
                g.mult = min(g.mult, self._multiplier(score, a, ts, earlier=1))
        elif score >= p.threshold and sig["farmed"] >= p.content_min:
            self._throttle(key, g, a, ts, sig, score)
        return g.mult

    # -- internals -----------------------------------------------------------------------

    def _entry(self, key: str, g: Group) -> Entry:
        return Entry(g.target, g.first, "e" if key.startswith("e:") else "c")

    def _broadcast(self, key: str, g: Group, kind: str) -> None:
        """A post's sample reached a size at which the other partitions hear of it."""
        n = len(g.commenters)
        if g.post is not None and n in BROADCAST_AT[kind] and n > g.sent:
            g.sent = n
            self._evidence.append(Evidence.of(key, g.first, kind, tuple(g.commenters)))

    def _group(
        self, key: str, post: str | None, target: str, ts: float, *, create: bool
    ) -> Group | None:
        """The group ``key`` (``group_key(post, target)``: the caller's, so one string is hashed
        for the lookup and the write that follow)."""
        g = self.groups.get(key)
        if g is not None and self.newest - g.last <= self.p.group_idle_s:
            return g
        wording: list[str] = []
        words: list[int] = []
        if g is not None:
            # idle for long: forgotten (the sweep may not have run yet; expiry never depends on
            # it), except the post's own wording, which a late first comment still answers
            self._forget(key)
            wording, words, g = g.phrasing, g.words, None
        if g is None and create:
            g = self.groups[key] = Group(
                target, post, ts, ts, rate_at=ts, phrasing=wording, words=words
            )
            self._idle["g"].add(key, g.last)
            self._dirty["g" + key] = None
        return g

    def _shape_index(self, key: str, g: Group) -> Shapes:
        """``g.shapes`` indexed (derived; a new one when the group was replaced)."""
        index = self._shapes.get(key)
        if index is None or index.stored is not g.shapes:
            if len(self._shapes) >= _SHAPE_INDEXES:
                del self._shapes[next(iter(self._shapes))]  # (the oldest: rebuilt if it returns)
            index = self._shapes[key] = Shapes(g.shapes)
        return index

    def _known_author(self, target: str) -> Author | None:
        a = self.authors.get(target)
        if a is None or self.newest - a.last > self.p.author_idle_s:
            return None
        return a

    def _author(self, target: str, ts: float, *, count: bool = True) -> Author:
        a = self.authors.get(target)
        if a is None or self.newest - a.last > self.p.author_idle_s:
            a = self.authors[target] = Author(last=ts, at=ts)
            self._idle["a"].add(target, ts)
            self._networks.pop(target, None)
            self._dirty["a" + target] = None
        if count:
            a.baseline = a.baseline * _decay(ts - a.at, self.p.baseline_half_life_s) + 1.0
            a.at = max(a.at, ts)
            a.last = max(a.last, ts)
        elif ts - a.last > 3600.0:
            a.last = ts  # (kept alive by engagement too; to the hour, so few writes)
            self._dirty["a" + target] = None
        return a

    def _network(self, a: Author, target: str) -> set[int]:
        """``a.network`` as a set (derived, cached per author)."""
        net = self._networks.get(target)
        if net is None:
            net = self._networks[target] = set(a.network)
        return net

    def _knows(self, a: Author, target: str, actor: str) -> bool:
        return self._keyed.actor(actor) in self._network(a, target)

    def _befriend(self, a: Author, target: str, actor: str, h: int | None = None) -> None:
        """``actor`` interacted with author ``target``: from now on it is in the network
        (``h``: its :meth:`Keyed.actor`, if the caller has it already)."""
        if h is None:
            h = self._keyed.actor(actor)
        net = self._network(a, target)
        if h in net:
            return
        a.network.append(h)
        net.add(h)
        if len(a.network) > NETWORK:
            for old in a.network[: len(a.network) - NETWORK]:
                net.discard(old)
            del a.network[: len(a.network) - NETWORK]
        self._dirty["a" + target] = None

    def _fresh(self, actor: str, ts: float) -> bool:
        """Whether the partition first saw ``actor`` moments ago (or never)."""
        c = self.commenters.get(actor)
        if c is None or self.newest - c.last > self.p.commenter_idle_s:
            return True
        # (first is None: only flagged through evidence, never acted here)
        return c.first is None or ts - c.first <= self.p.fresh_s

    def _touch(self, actor: str, ts: float) -> None:
        """``actor`` acted at ``ts``: its history here (written only when it changes: the hour
        of its last action, or its first three actions)."""
        hour = math.floor(ts / 3600.0) * 3600.0
        c = self.commenters.get(actor)
        if c is None or self.newest - c.last > self.p.commenter_idle_s:
            self.commenters[actor] = Commenter(hour, 0, ts, 1)  # (last, flagged, first, acts)
            self._idle["c"].add(actor, hour)
        elif c.last >= hour and c.acts >= 3:
            return
        else:
            c.last = max(c.last, hour)
            c.acts = min(c.acts + 1, 3)
            if c.first is None:
                c.first = ts
        self._dirty["c" + actor] = None

    def _flagged(self, actor: str) -> bool:
        return self._flag_level(actor) > 0

    def _flag_level(self, actor: str) -> int:
        """0, :data:`BAIT_FLAG` (it answered posts throttled as bait) or :data:`FARM_FLAG` (a
        throttle showed it moving with a farm: lockstep, or a pod's throttle, here or in another
        partition's record)."""
        c = self.commenters.get(actor)
        if (
            c is None
            or c.flagged <= 0
            or self.newest - c.last > self.p.commenter_idle_s
            or self.newest - c.flagged_at > self.p.flag_ttl_s
        ):
            return 0
        return FARM_FLAG if self.newest - c.farm_at <= self.p.flag_ttl_s else BAIT_FLAG

    def _flag(self, actor: str, ts: float, *, farm: bool) -> None:
        c = self.commenters.get(actor)
        if c is None or self.newest - c.last > self.p.commenter_idle_s:
            # (idle beyond the horizon is new, as everywhere; a flag is no action here)
            c = self.commenters[actor] = Commenter(last=ts)
            self._idle["c"].add(actor, ts)
        c.flagged += 1
        c.flagged_at = max(c.flagged_at, ts)
        if farm:
            c.farm_at = max(c.farm_at, ts)
        c.last = max(c.last, ts)
        self._dirty["c" + actor] = None

    def _signals(self, key: str, g: Group, a: Author, ts: float) -> dict[str, float]:
        p = self.p
        per_hour = 3600.0 * LN2
        rate = g.rate * _decay(ts - g.rate_at, p.rate_half_life_s) * per_hour / p.rate_half_life_s
        # the author's long-run rate, this post's burst included (a steady author is not spiking)
        base = max(a.baseline * per_hour / p.baseline_half_life_s, p.baseline_floor_per_hour)
        texted = g.texts >= 8
        n = max(len(g.commenters), 1)
        engaging = engagers(g)
        regular = 0.0
        if g.gap_n >= 10 and g.gap_mean > 0.0:
            cv = math.sqrt(max(g.gap_m2, 0.0) / g.gap_n) / g.gap_mean
            regular = _ramp(-cv, -0.5, -0.15)
        sig = {
            "spike": _clamp(math.log(max(rate / base, 1.0)) / math.log(20.0)),
            "comments_dominate": _ramp(g.comments / (g.comments + engaging), 0.6, 0.9),
            "low_info": _ramp(g.empty / g.texts, 0.45, 0.8) if texted else 0.0,
            "duplicates": _ramp(g.dups / g.texts, 0.25, 0.6) if texted else 0.0,
            # (empty, echoing or repeating: what a farm mixes, "check my channel" and the
            # answer the post asked for; the two shares above miss it when split half and half)
            "hollow": _ramp(g.hollow / (2 * g.texts), 0.45, 0.75) if texted else 0.0,
            "strangers": _ramp(g.strangers / n, 0.5, 0.85),
            # (counts too: a flood is many accounts, not three newcomers talking)
            "fresh": (
                _ramp(g.fresh / n, 0.3, 0.7) * _clamp(g.fresh / 12.0)
                if self.newest - self.born >= p.fresh_warmup_s
                else 0.0
            ),
            "silent": 1.0 - g.texts / g.comments,
            "lockstep": self._lockstep_signal(key, g, g.strangers / n) if g.post else 0.0,
            "regular": regular,
            "repeat_commenters": _ramp(-len(g.commenters) / max(g.sampled, 1), -0.85, -0.45),
            "bait_phrasing": (
                1.0 if g.phrasing else _clamp(g.answers / g.texts / 0.3) if texted else 0.0
            ),
            "flagged_commenters": _clamp(g.flagged / g.comments / 0.3) * _clamp(g.flagged / 6.0),
            "repeat_offender": 1.0 if self._offences(a, ts) else 0.0,
        }
        empty = max(sig["low_info"], sig["duplicates"], sig["hollow"])
        # what the response shows by itself: empty answers from strangers where comments are
        # the response (a friend's "congrats!" is not bait, nor a star's fans reacting with an
        # emoji and a like or two each: bait pays in comments), or new accounts flooding a post
        # fast with empty or textless comments that nothing else follows
        share = g.comments / (g.comments + engaging)
        sig["own"] = max(
            min(empty, sig["strangers"], _ramp(share, 0.3, 0.45)),
            min(
                sig["fresh"],
                max(empty, sig["silent"]),
                sig["comments_dominate"],
                _ramp(sig["spike"], 0.5, 0.9),  # (a flood is fast: a 20x spike is 1)
            ),
        )
        sig["farmed"] = max(sig["own"], sig["lockstep"], sig["flagged_commenters"])
        return sig

    def _lockstep_signal(self, key: str, g: Group, strangers: float) -> float:
        """In lockstep with other authors' posts. A post of its author's network is a ring's
        only when most of *its* sample moves with its partners: five accounts among forty
        friends, with two small posts of their own, are all of those posts' samples but not
        this post's response (before, such a post was throttled live and paid back every
        friend's interaction). A partner here that is an unthrottled post of its own author's
        network is friends meeting, and shows nothing (:meth:`_moving`)."""
        v = _lockstep(self.lockstep.partners(key), strangers)
        if (
            v >= self.p.content_min
            and self._network_post(g)
            and 2 * len(self._moving(key)) < len(g.commenters)
        ):
            return 0.0
        return v

    def _moving(self, key: str) -> frozenset[str]:
        """The accounts of post ``key``'s sample shared with a lockstep partner that is not an
        unthrottled post of its author's network (another partition's post counts: it cannot
        be judged here). One walk over the partners' samples."""
        others = []
        for other in self.lockstep.partner_keys(key):
            o = self.groups.get(other)
            if o is not None and o.mult == FULL and self._network_post(o):
                continue
            others.append(other)
        return self.lockstep.shared_with(key, others)

    def _offences(self, a: Author, ts: float) -> int:
        # (a plain loop: at most 5 offences, asked for every judged comment, and most authors
        # have none)
        n = 0
        for t in a.offences:
            if ts - t <= self.p.offender_window_s:
                n += 1
        return n

    def _multiplier(self, score: float, a: Author, ts: float, *, earlier: int = 0) -> int:
        """Per mille: from max at the threshold to min for strong evidence, halved per recent
        throttle of the author (``earlier``: how many of those are this very throttle)."""
        return self._per_mille(_clamp(score - self.p.threshold), self._offences(a, ts) - earlier)

    def _per_mille(self, strength: float, offences: int) -> int:
        p = self.p
        m = p.multiplier_max - (p.multiplier_max - p.multiplier_min) * strength
        m *= 0.5 ** max(offences, 0)
        return max(round(max(m, p.multiplier_floor) * FULL), 1)

    def _lowest(self, a: Author, ts: float) -> int:
        """The lowest multiplier a running throttle of author ``a`` could fall to at ``ts``,
        whatever the evidence. Once it is there, a throttled group's later comments skip the
        signals: ``min(g.mult, ...)`` could not change (in the bait-eval tuning stream, 46,410 of
        92,678 signal computations). The multiplier is monotonic in the strength (each step is:
        linear, then scaled, floored and rounded), so its extremes are at strength 0 and 1."""
        offences = self._offences(a, ts) - 1  # (``earlier=1``: the throttle itself)
        lowest = self._lowest_by_offences.get(offences)
        if lowest is None:
            lowest = min(self._per_mille(0.0, offences), self._per_mille(1.0, offences))
            self._lowest_by_offences[offences] = lowest  # (a function of the params: ≤ 5 values)
        return lowest

    def _throttle(
        self, key: str, g: Group, a: Author, ts: float, sig: dict[str, float], score: float
    ) -> None:
        g.mult = self._multiplier(score, a, ts)
        g.since = ts
        # calm: below calm_per_hour, or below a quarter of the rate now for a campaign that was
        # never faster than that (a slow-burn campaign is not "calm" at its own steady pace)
        g.calm = min(self._calm_count(), g.rate / 4.0)
        strong = sorted(
            (n for n, v in sig.items() if v >= 0.5 and n not in ("farmed", "own", "silent")),
            key=lambda n: -sig[n],
        )
        g.reasons = [
            f"bait_phrasing:{'+'.join(g.phrasing)}" if n == "bait_phrasing" and g.phrasing else n
            for n in strong
        ]
        a.offences = [*(t for t in a.offences if ts - t <= self.p.offender_window_s), ts][-5:]
        self._dirty["a" + g.target] = None
        # its accounts are flagged (farms move on together) — unless flagged accounts were all
        # the evidence: guilt by association must not spread from account to account, so such a
        # throttle only renews the flags its accounts already had
        own = max(v for k, v in sig.items() if k in _OWN_EVIDENCE)
        # (a comment throttle on lockstep alone: the ring is proven, not the post's answerers,
        # so its later empty answers flag nobody; a pod's own evidence is lockstep)
        alone = not key.startswith("e:") and sig.get("own", 0.0) < self.p.content_min
        g.own = own >= self.p.content_min and not alone
        # the accounts already flagged by earlier throttles (before this one names its own): what
        # they counted here in full, before the throttle could start, is taken back
        flagged = frozenset(actor for actor in g.commenters if self._flagged(actor))
        named = [
            actor for actor in g.commenters if own >= self.p.content_min or self._flagged(actor)
        ]
        # (a farm's flag when the response showed a farm; strangers who answer a bait post in a
        # word show that the post is bait, not that they are a farm: real people answer bait,
        # and a farm's flag for a week would throttle the next advice thread they join)
        # (a pod's throttle judges no answers: it rests on lockstep or on a farm's flags, and
        # names a farm's accounts, as its record does on the other partitions)
        farm = key.startswith("e:") or (
            own >= self.p.content_min and not _FARM_REASONS.isdisjoint(g.reasons)
        )
        ring = sig["lockstep"] >= self.p.content_min
        if farm and alone:
            # lockstep was all the response showed (the answers carry information): the
            # accounts that move with another post are the ring's, a farm's flag and a ring
            # record; the others may be people, and get no flag (the flagged ones' are
            # renewed, of their kind). Two reviews: five accounts among a new author's first
            # fifteen commenters, with one post of their own, had the ten people flagged as a
            # farm's on every partition (eight of them got a friend's advice thread throttled);
            # and, flagged as bait answerers, eight friends' "Congrats!!" throttled the
            # author's next post (7 of 20 counted)
            proven = self._ring_accounts(key) | {
                a for a in g.commenters if self._flag_level(a) == FARM_FLAG
            }
            moving = tuple(a for a in g.commenters if a in proven)
            renewed = tuple(a for a in g.commenters if a in flagged and a not in proven)
            for actor in moving:
                self._flag(actor, ts, farm=True)
            for actor in renewed:
                self._flag(actor, ts, farm=False)
            if moving:
                self._evidence.append(Evidence.of(key, ts, _evidence_kind(key, ring), moving))
            if renewed:
                self._evidence.append(Evidence.of(key, ts, _evidence_kind(key, False), renewed))
        else:
            for actor in named:
                self._flag(actor, ts, farm=farm or self._flag_level(actor) == FARM_FLAG)
            if named:
                self._evidence.append(Evidence.of(key, ts, _evidence_kind(key, ring), tuple(named)))
        # a throttle on lockstep: had the ring been known, this post would have been throttled
        # at its ``min_coordinated``-th interaction; what counted in full since is clawed back.
        # Any throttle: a farm's accounts, flagged by an earlier throttle, earn nothing on a post
        # throttled in its turn, however early they came (a live throttle needs a few of them
        # before it can tell; their first interactions would otherwise keep their points)
        if ring:
            clawed = self._claw(key, g, g.mult, self._ring_accounts(key) | flagged)
        elif flagged and g.post is not None:
            clawed = self._claw(key, g, g.mult, flagged, outsiders=False, all_after=False)
        else:
            clawed = ()
        self._decisions.append(
            Decision(
                key,
                g.post,
                g.target,
                "throttled",
                ts,
                g.mult / FULL,
                tuple(g.reasons),
                g.comments - 1,
                sig,
                since=ts,
                clawed=clawed,
                **self._episode(g, clawed),
            )
        )
        if ring:
            self._partners(key, ts)

    def _partners(self, key: str, ts: float, *, grown: bool = False) -> None:
        """The posts ``key`` (just found to be a ring's or a pod's) is in lockstep with here were
        farmed by the same accounts before the ring could be told from friends: throttled
        retroactively (other partitions' posts: by its evidence, :meth:`flag`). ``grown``: asked
        again because its sample grew, which only takes more from partners already throttled
        (a new throttle there would spread from post to post through shared honest accounts)."""
        for other in self.lockstep.partner_keys(key):
            if other in self.groups:
                self._retro(other, ts, grown=grown)

    def _ring_yet(self, key: str, g: Group, ts: float) -> None:
        """After a new account joined a throttled post's sample: is it a ring's post after all?
        (at most ``sample`` checks per episode, each a walk over the post's overlaps)"""
        if g.mult == FULL or g.post is None:
            return
        if "lockstep" in g.reasons:
            # a ring's post, proven by its own sample (not a retroactive one: that proof came
            # from elsewhere): its throttled partners here may now show more of their samples
            # in lockstep with it (at most ``sample`` walks per episode)
            if "retroactive" not in g.reasons:
                self._partners(key, ts, grown=True)
            return
        strangers = g.strangers / max(len(g.commenters), 1)
        partners = self.lockstep.partners(key)
        if self._network_post(g):
            # (a post of the author's network: friends' posts it shares accounts with are
            # friends meeting, no proof; only throttled partners count, and most of its sample
            # must be the proof's accounts, :meth:`_proof`)
            proof, partners = self._proof(key)
            if 2 * len(proof) < len(g.commenters):
                return
        if _lockstep(partners, strangers) >= self.p.content_min:
            self._ring(key, g, ts)

    def _ring(self, key: str, g: Group, ts: float) -> None:
        """A group throttled on other evidence (flagged accounts) turns out to move in lockstep
        as its sample grows: it is a ring's (or pod's) post after all. Its accounts are named to
        every partition as a ring's, what counted in full is clawed back (:meth:`_claw`), and
        its partners here are throttled retroactively."""
        g.reasons = [*g.reasons, "lockstep"]
        # (a pod's later engagers are its own; a comment post's later answerers, and the sampled
        # ones that do not move with it, are not proven: as for a throttle on lockstep alone)
        pod = key.startswith("e:")
        g.own = g.own or pod
        self._dirty["g" + key] = None
        ring = self._ring_accounts(key)
        named = tuple(a for a in g.commenters if pod or a in ring)
        for actor in named:
            self._flag(actor, ts, farm=True)
        if named:
            self._evidence.append(Evidence.of(key, ts, _evidence_kind(key, True), named))
        self._retroactive(key, g, ts, self._claw(key, g, g.mult, ring))
        self._partners(key, ts)

    def _network_post(self, g: Group) -> bool:
        """Most of the post's sampled accounts are its author's network (under about two thirds
        strangers): one lockstep partner does not make it a ring's (:func:`_lockstep`)."""
        strangers = g.strangers / max(len(g.commenters), 1)
        return _lockstep(1, strangers) < self.p.content_min

    def _proof(self, key: str, outside: tuple[str, ...] = ()) -> tuple[frozenset[str], int]:
        """The accounts of post ``key``'s sample shown to move with a ring, and how many of its
        lockstep partners are throttled. The proof is the accounts it shares with a partner (or
        with ``outside``, another partition's ring record's accounts) that a throttle flagged as
        a farm's: a ring's, once caught anywhere. A partner's sample alone proves nothing, even
        a partner throttled on its own evidence: after its throttle, people reply under it too,
        with real sentences no throttle flags (an adversarial review: the friends who replied
        on a ring's post made their friend's post a ring's), and a proof from elsewhere must
        not spread from post to post through shared honest accounts."""
        partners = self.lockstep.partner_keys(key)
        throttled = 0
        for other in partners:
            if other.startswith("r:"):
                sh = self.shadows.get(other)
                throttled += sh is not None and sh.throttled > 0
                continue
            o = self.groups.get(other)
            if o is not None and o.mult < FULL and "retroactive" not in o.reasons:
                throttled += 1
        proof = frozenset(
            a
            for a in self.lockstep.shared_with(key, partners, outside)
            if self._flag_level(a) == FARM_FLAG
        )
        return proof, throttled

    def _ring_accounts(self, key: str, outside: tuple[str, ...] = ()) -> frozenset[str]:
        """The accounts of post ``key``'s sample that are proven to move in lockstep: in the
        sample of a post it is in lockstep with (or of ``outside``, another partition's ring
        post). At most ``sample`` of them; one walk over the post's partners."""
        return self.lockstep.shared_accounts(key, outside)

    def _claw(
        self,
        key: str,
        g: Group,
        mult: int,
        ring: frozenset[str],
        *,
        outsiders: bool = True,
        all_after: bool = True,
    ) -> tuple[tuple[str, float], ...]:
        """Claw back, at ``mult``, what the group's interactions counted in full: every one after
        its first ``min_coordinated - 1``, whoever made it (what a throttle starting there would
        have demoted: a forward throttle demotes every later interaction too, and the ring's
        accounts are, by then, often the author's network as well), and among the first ones
        those of the ``ring`` accounts (proven to move in lockstep: a ring's account earns
        nothing on a ring's post, however early it came; the others' first interactions stay,
        as a live throttle could not have started before them). Each once: clawed entries go.
        ``outsiders`` false: the interactions of accounts outside the sample stay (for a later
        claw). ``all_after`` false: only the ``ring`` accounts' interactions, wherever they came
        (a live throttle, which started at its own time: the others counted before it could).
        Returns the (account, ts) of each (``""``: an account outside the sample)."""
        clawed: list[tuple[str, float]] = []
        post = g.post
        assert post is not None  # (only post groups keep entries)
        kept: list[list[Any]] = []
        for entry in g.counted:
            index, at, code, points, ci = entry[:5]
            actor = g.commenters[index] if 0 <= index < len(g.commenters) else ""
            first = len(entry) > 5 or not all_after  # (one of the first ``min_coordinated - 1``)
            if (first and actor not in ring) or (index < 0 and not outsiders):
                kept.append(entry)
                continue
            withheld = points - points * mult // FULL
            clawed.append((actor, at))
            if withheld > 0:
                self.clawbacks.append(
                    Clawback(
                        g.target,
                        key,
                        post,
                        _KINDS_OF[code],
                        at,
                        actor,
                        withheld,
                        tuple(g.comms[ci]),
                    )
                )
        if clawed:
            g.counted[:] = kept
            self._dirty["g" + key] = None
        return tuple(clawed)

    def _throttled_partner(self, key: str, source: str) -> bool:
        """Whether another partition's post ``source`` is a throttled lockstep partner of
        ``key`` here (its sample's shadow overlaps and its throttle record came)."""
        sh = self.shadows.get("r:" + source)
        return (
            sh is not None and sh.throttled > 0 and "r:" + source in self.lockstep.partner_keys(key)
        )

    def _retro(
        self,
        key: str,
        ts: float,
        outside: tuple[str, ...] = (),
        *,
        grown: bool = False,
        source: str = "",
    ) -> None:
        """Group ``key`` (a post of this partition) is in lockstep with a ring or pod throttled
        at ``ts``: had that been known, it would have been throttled at its
        ``min_coordinated``-th interaction. So it is throttled from now on if it is not yet, and
        what its interactions counted in full is clawed back (:meth:`_claw`; ``outside``: the
        accounts of the other partition's ring post, if that is where it was found). Nothing is
        deleted: the clawed points are recorded as withheld, and the alert names the
        interactions."""
        g = self.groups.get(key)
        if g is None or g.post is None or self.newest - g.last > self.p.group_idle_s:
            return
        new = g.mult == FULL
        if not new and not g.counted:
            return  # (throttled and clawed: nothing left)
        # the post must look like a ring's by itself too: in lockstep (the throttled post is one
        # partner) with accounts that are strangers to its author. A post of the author's own
        # network (friends who follow each other around) is a ring's only when most of its
        # sample is accounts shown to move with a ring (:meth:`_proof`: an honest post of mutual
        # friends proves nothing), and it is in lockstep with two posts — or
        # one, if the author was throttled of late: a pod's accounts are soon its authors'
        # "network" (they engage every post), and its authors collect throttles of their own.
        # (An offence alone is not enough: an attacker can bring one about, and a false
        # throttle is no proof; with it, a few ring accounts among the author's friends would
        # make any later post pay back.)
        if self._network_post(g):
            proof, throttled = self._proof(key, outside)
            if 2 * len(proof) < len(g.commenters):
                return
            # (the ring's post elsewhere is one proof: as a throttled partner here, or by its
            # record's accounts when it is not one; never both)
            elsewhere = bool(outside) and not self._throttled_partner(key, source)
            if max(self.lockstep.partners(key), throttled + elsewhere) < 2:
                a = self.authors.get(g.target)
                if a is None or not self._offences(a, ts):
                    return
            ring = proof  # (the accounts shown to move with a ring, not mutual friends)
        elif grown and new and 2 * len(self._ring_accounts(key, outside)) < len(g.commenters):
            # (a new throttle comes from a proof, a partner's throttle, not from that partner's
            # sample growing — except on the network path above, whose "most of the sample" the
            # growing sample may only now show, and where the grown sample is at least half of
            # this post's: a ring's first post, whose accounts the ring's next post had too few
            # of when it was throttled at its fifth comment)
            return
        else:
            ring = self._ring_accounts(key, outside)
        a = self._author(g.target, ts, count=False)
        # what accounts outside its sample counted is taken back only once most of the sample is
        # shown to move in lockstep: a few ring accounts that came early to an honest post (to
        # grief it) cost it no more than its sampled accounts' interactions; a ring's own post
        # gets there as its partners' samples grow (:meth:`_ring_yet` asks again)
        outsiders = 2 * len(ring) >= len(g.commenters)
        mult = self._multiplier(self.p.threshold, a, ts) if new else g.mult
        clawed = self._claw(key, g, mult, ring, outsiders=outsiders)
        if not new and not clawed:
            return
        if new:
            g.mult = mult
            g.since = ts
            g.calm = self._calm_count()
            g.reasons = ["lockstep", "retroactive"]
            # (its later answerers are not proven: only a pod's later engagers are flagged)
            g.own = key.startswith("e:")
            # (no offence for the author: the proof came from another post; a ring's authors
            # collect offences on their own posts' throttles)
            self._dirty["g" + key] = None
        self._retroactive(key, g, ts, clawed)

    def _retroactive(
        self, key: str, g: Group, ts: float, clawed: tuple[tuple[str, float], ...]
    ) -> None:
        """The alert of a retroactive throttle: found at ``ts``, in effect since ``g.since``."""
        g.retro_at = ts
        self._dirty["g" + key] = None
        self._decisions.append(
            Decision(
                key,
                g.post,
                g.target,
                "throttled",
                ts,
                g.mult / FULL,
                tuple(g.reasons),
                g.comments,
                {"lockstep": 1.0},
                since=g.since,
                retroactive=True,
                clawed=clawed,
                **self._episode(g, clawed),
            )
        )

    @staticmethod
    def _episode(g: Group, clawed: tuple[tuple[str, float], ...] = ()) -> dict[str, Any]:
        """What a decision's record carries of the episode so far (``clawed``: this decision's
        claw-back, counted into the group's total here)."""
        g.clawed_n += len(clawed)
        return {"retro_at": g.retro_at or None, "clawed_total": g.clawed_n}

    def _calm_count(self) -> float:
        """``calm_per_hour`` as a weighted comment count (the form ``Group.rate`` is kept in)."""
        p = self.p
        return p.calm_per_hour * p.rate_half_life_s / (3600.0 * LN2)

    def _calm_end(self, g: Group, ts: float) -> float | None:
        """The event time the group's comment rate fell below its calm level, if it did by
        ``ts`` (``g.rate`` is at least the level at ``g.rate_at``: it was above it when the
        throttle started and only comments have been added since)."""
        calm = g.calm if g.calm > 0.0 else self._calm_count()
        if g.rate * _decay(ts - g.rate_at, self.p.rate_half_life_s) >= calm:
            return None
        return self._calm_time(g)

    def _calm_time(self, g: Group) -> float:
        """When the throttled group's comment rate falls (fell) below its calm level."""
        calm = g.calm if g.calm > 0.0 else self._calm_count()
        return g.rate_at + self.p.rate_half_life_s * math.log2(max(g.rate / calm, 1.0))

    def _forget(self, key: str) -> None:
        """Drop a group (idle, or beyond the cap); a throttle on it ends when it calmed down."""
        g = self.groups.pop(key)
        self.lockstep.drop(key)
        self._shapes.pop(key, None)
        self._dirty["g" + key] = None
        if g.mult < FULL:
            self._ended(key, g, self._calm_time(g))

    def _ended(self, key: str, g: Group, at: float) -> None:
        # (a retroactive throttle may start on a post that had calmed down already: it ends
        # when it started, not before)
        at = max(at, g.since)
        self._decisions.append(
            Decision(
                key,
                g.post,
                g.target,
                "ended",
                at,
                g.mult / FULL,
                tuple(g.reasons),
                g.comments,
                since=g.since,
                **self._episode(g),
            )
        )

    def _end(self, key: str, g: Group, at: float) -> Group:
        """End the throttle at ``at``; the post starts a new episode (its rate carries on)."""
        at = max(at, g.since)
        self._ended(key, g, at)
        self.lockstep.drop(key)
        fresh = Group(
            g.target,
            g.post,
            at,
            g.last,
            rate=g.rate,
            rate_at=g.rate_at,
            phrasing=g.phrasing,
            words=g.words,
            sent=g.sent,
        )
        self.groups[key] = fresh
        self._idle["g"].add(key, fresh.last)
        return fresh

    def _sweep(self) -> None:
        """Forget entries idle beyond their horizon (memory only: expiry on access already ignores
        them), then the least recent beyond the caps. Runs at fixed steps of the event clock."""
        self.swept = self.newest
        p = self.p
        idle = self._idle
        for key in _expired(self.groups, idle["g"], self.newest - p.group_idle_s, p.max_groups):
            self._forget(key)
        _expire(
            self.authors,
            idle["a"],
            "a",
            self.newest - p.author_idle_s,
            p.max_authors,
            self._dirty,
        )
        for target in [t for t in self._networks if t not in self.authors]:
            del self._networks[target]
        _expire(
            self.commenters,
            idle["c"],
            "c",
            self.newest - p.commenter_idle_s,
            p.max_commenters,
            self._dirty,
        )
        for key in _expired(
            self.shadows, idle["s"], self.newest - p.lockstep_window_s, p.max_shadows
        ):
            del self.shadows[key]
            self.lockstep.drop(key)
            self._dirty["s" + key] = None
        for t, entries in self._tables().items():
            idle[t].compact(entries)


#: The kinds a retroactive throttle can take back, and their one-letter codes in ``Group.counted``.
_KIND_CODES = {"comment": "c", "reply": "r", "share": "s", "like": "l"}
_KINDS_OF = {v: k for k, v in _KIND_CODES.items()}

#: Sample evidence kinds → the lockstep kind of their posts.
_LETTER_OF = {"commenters": "c", "engagers": "e"}

#: Throttle evidence kinds → the kind of sample their post broadcasts (for an empty shadow).
_SAMPLE_OF = {
    "comments": "commenters",
    "ring": "commenters",
    "engagement": "engagers",
    "pod": "engagers",
}

#: The reasons of a throttle on its own evidence that show a farm, not only a bait post (its
#: accounts move in lockstep): its accounts get a farm's flag. (Not ``fresh``: an account is new
#: to a partition the first time it acts on one of its authors, as a real person answering a
#: bait post often does; a flood's accounts are caught again on their next empty answers.)
_FARM_REASONS = frozenset({"lockstep"})

#: The parts of ``farmed`` that are evidence of a throttle's own (the pod's ``lockstep`` too),
#: as opposed to accounts flagged by earlier throttles.
_OWN_EVIDENCE = frozenset({"own", "lockstep"})


def _evidence_kind(key: str, ring: bool) -> str:
    """The kind of a throttle's evidence record: ``ring``/``pod`` when it rested on lockstep."""
    if key.startswith("e:"):
        return "pod" if ring else "engagement"
    return "ring" if ring else "comments"


def _shadow_entry(sh: Shadow) -> Entry:
    return Entry("", sh.last, "e" if sh.kind == "engagers" else "c")


def _lockstep(partners: int, strangers: float) -> float:
    """Posts in lockstep with this one: 1 from two, or from one when the shared accounts are
    strangers to the author (friends who follow each other around are a network; strangers who
    move together from author to author are a ring)."""
    return _ramp(partners, 0.5, 2.0 - _ramp(strangers, 0.5, 0.85))


def _score(sig: dict[str, float]) -> float:
    return (
        1.0 * sig["farmed"]
        + 0.3 * sig["lockstep"]
        + 0.3 * sig["flagged_commenters"]
        + 0.3 * sig["bait_phrasing"]
        + 0.6 * sig["comments_dominate"]
        + 0.5 * sig["spike"]
        + 0.3 * sig["repeat_commenters"]
        + 0.3 * sig["regular"]
        + 0.4 * sig["repeat_offender"]
    )


def _expired(entries: dict[str, Any], index: IdleIndex, cutoff: float, cap: int) -> list[str]:
    """Keys idle since before ``cutoff``, then the least recent beyond ``cap``."""
    # (sorted: a sweep's decisions come out in the same order after a restore. The idle ones
    # from the table's index, which reads only the hours before the cutoff: leaderboard.bait.idle)
    dead = index.idle(entries, cutoff)
    left = len(entries) - len(dead)
    if left > cap:
        gone = set(dead)
        alive = sorted((e.last, k) for k, e in entries.items() if k not in gone)
        dead += [k for _, k in alive[: left - cap]]
    return dead


def _expire(
    entries: dict[str, Any],
    index: IdleIndex,
    table: str,
    cutoff: float,
    cap: int,
    dirty: dict[str, None],
) -> None:
    for k in _expired(entries, index, cutoff, cap):
        del entries[k]
        dirty[table + k] = None
