"""The comment-bait detector itself: :class:`Detector` (one per partition), its tunables
(:class:`BaitParams`) and its decisions (:class:`Decision`). An overview of where it runs is in
:mod:`leaderboard.bait`; the wording it reads is :mod:`leaderboard.bait.patterns`, the state it
keeps :mod:`leaderboard.bait.state`.

Signals (each 0..1; see :meth:`Detector._signals`):

- ``spike``: the post's comment rate (exponentially weighted, ``rate_half_life_s``) against the
  author's own long-run comment rate (``baseline_half_life_s``; new authors start from
  ``baseline_floor_per_hour``);
- ``comments_dominate``: comments make up most of the post's engagement while shares, clicks and
  conversions do not follow;
- ``low_value``: share of self-promoting comments (links, "subscribe", "check out my …"), answers
  to a bait call ("YES", "coffee", "amen", a tag; any one- or two-word comment under a post whose
  wording calls for comments) and copies of an earlier comment on the post
  (more than three words alike; short formulas like "congrats!" are typed alike by real people);
- ``repeat_commenters``: few distinct commenters for the comment count;
- ``bait_phrasing``: the post's text (or many comments) match Facebook's 2017 engagement-bait
  categories: vote, react, share, tag and comment baiting — one signal, not the detector;
- ``flagged_commenters``: comments from accounts that commented on posts already throttled;
- ``repeat_offender``: the author had a post throttled in the last ``offender_window_s``.

Decision. A post with at least ``min_comments`` comments is throttled when the weighted sum of the
signals reaches ``threshold`` **and** the comments themselves look farmed (``low_value`` or
``flagged_commenters`` is strong). Volume alone (a spike, comment-heavy engagement) never throttles:
an organic surge looks the same by volume (the Higgs announcement, a hot MathOverflow question), so
a stream without comment texts is only throttled by its commenters' history. Wording alone does
not either ("comments and questions welcome" under a lecture's slides).

Multiplier. ``multiplier_max`` at the threshold, falling linearly to ``multiplier_min`` for strong
evidence; halved for each recent throttle of the author (repeat offenders start lower), never below
``multiplier_floor``. While a throttle lasts its multiplier can only fall.

End. A throttle ends when the post's comment stream has calmed down: its weighted comment rate has
fallen below ``calm_per_hour`` (or below a quarter of its rate at the start of the throttle, if
lower: a slow-burn campaign is not calm at its own steady pace). The end time is computed exactly (the instant the rate crossed) and
applied when the post's next event arrives; comments after it count in full, and the post's evidence
starts afresh (a renewed campaign is detected again, as a repeat offence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

from leaderboard.bait.patterns import comment_features, phrasing
from leaderboard.bait.state import _CLOCK, FULL, Author, Commenter, Group, group_key

#: Kinds whose contributions the throttle scales.
COMMENT_KINDS = frozenset({"comment", "reply"})
#: Kinds that show a post's audience did more than comment (the engagement comments should follow).
ENGAGEMENT_KINDS = frozenset({"share", "click", "conversion", "like", "follow", "mention"})
LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class BaitParams:
    """The detector's tunables (documented in the module docstring; evaluated by kudos bait-eval)."""

    min_comments: int = 12
    threshold: float = 1.6
    #: a content signal at least this strong must take part in a throttle
    content_min: float = 0.5
    rate_half_life_s: float = 1800.0
    baseline_half_life_s: float = 3 * 86400.0
    baseline_floor_per_hour: float = 2.0
    calm_per_hour: float = 3.0
    multiplier_max: float = 0.25
    multiplier_min: float = 0.1
    multiplier_floor: float = 0.02
    offender_window_s: float = 7 * 86400.0
    #: post groups idle this long (event time) are forgotten
    group_idle_s: float = 2 * 86400.0
    author_idle_s: float = 14 * 86400.0
    commenter_idle_s: float = 7 * 86400.0
    #: distinct commenters and comment texts remembered per post
    sample: int = 64
    #: entries per partition (groups, authors, commenters); beyond it the least recent are dropped
    max_groups: int = 50_000
    max_authors: int = 100_000
    max_commenters: int = 100_000


@dataclass(frozen=True, slots=True)
class Decision:
    """A throttle starting or ending, in event time. ``group`` is ``p:<post>`` or ``t:<target>``."""

    group: str
    post: str | None
    target: str
    state: str  # "throttled" | "ended"
    at: float
    multiplier: float
    reasons: tuple[str, ...]
    #: comments counted on the post (this episode) before the decision
    comments: int
    signals: dict[str, float] = field(default_factory=dict)

    #: when the throttle started (``at`` for a start; the start of the throttle that ``ended``)
    since: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The alert record: ``GET /api/alerts``, topic ``bait-alerts``, the explain view."""
        return {
            "group": self.group,
            "post": self.post,
            "target": self.target,
            "state": self.state,
            "detected_at": self.since if self.state == "ended" else self.at,
            "ended_at": self.at if self.state == "ended" else None,
            "multiplier": self.multiplier,
            "reasons": list(self.reasons),
            "comments": self.comments,
            "signals": {k: round(v, 3) for k, v in self.signals.items()},
        }


#: Event-time seconds between sweeps of idle entries.
SWEEP_EVERY_S = 3600.0


#: The detector's own version: bump it when a change to this package changes decisions (points),
#: so a namespace scored by the old detector is not continued by the new one without a rebuild.
DETECTOR_VERSION = 1


def identity(version: str, params: BaitParams | None) -> str:
    """The scoring identity a namespace is kept under: the scoring.toml version, the detector's
    version and its settings (all change points). A worker with another identity must not apply.
    Only the settings an operator can change (``[bait]``) are in it, so a release that adds an
    internal parameter does not stop every worker; such a release bumps DETECTOR_VERSION."""
    if params is None:
        return f"{version}+bait:off"
    p = params
    knobs = f"{p.threshold:g}/{p.min_comments}/{p.calm_per_hour:g}/{p.multiplier_max:g}"
    return f"{version}+bait{DETECTOR_VERSION}:{knobs}/{p.multiplier_min:g}"


def _clamp(x: float) -> float:
    return 0.0 if x <= 0.0 else 1.0 if x >= 1.0 else x


def _decay(dt: float, half_life: float) -> float:
    return 1.0 if dt <= 0.0 else 2.0 ** (-dt / half_life)


class Detector:
    """One partition's detector. Feed it the partition's new events in order with :meth:`observe`;
    take the state it changed with :meth:`take_changes` and its decisions with
    :meth:`take_decisions` (both are written with the batch that caused them).
    """

    def __init__(self, params: BaitParams | None = None) -> None:
        self.p = params or BaitParams()
        self.groups: dict[str, Group] = {}
        self.authors: dict[str, Author] = {}
        self.commenters: dict[str, Commenter] = {}
        #: the newest event time seen (expiry is measured from it, so only the order matters)
        self.newest = -math.inf
        self.swept = -math.inf
        self._dirty: dict[tuple[str, str], None] = {}
        self._clock_moved = False
        self._decisions: list[Decision] = []

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
        clock = tables.get("m", {}).get(_CLOCK)
        if clock is not None:
            d.newest, d.swept = (x if x is not None else -math.inf for x in orjson.loads(clock))
        return d

    def take_changes(self) -> list[tuple[str, str, bytes | None]]:
        """(table, key, value or None when deleted) of every entry changed since the last call."""
        out: list[tuple[str, str, bytes | None]] = []
        for table, key in self._dirty:
            entry: Group | Author | Commenter | None
            if table == "g":
                entry = self.groups.get(key)
            elif table == "a":
                entry = self.authors.get(key)
            else:
                entry = self.commenters.get(key)
            out.append((table, key, None if entry is None else entry.dump()))
        if out or self._clock_moved:
            # (also alone: an event that only moved the clock, e.g. a self-reply, moves expiry)
            clock = [None if math.isinf(x) else x for x in (self.newest, self.swept)]
            out.append(("m", _CLOCK, orjson.dumps(clock)))
        self._dirty.clear()
        self._clock_moved = False
        return out

    def take_decisions(self) -> list[Decision]:
        out, self._decisions = self._decisions, []
        return out

    def size(self) -> int:
        return len(self.groups) + len(self.authors) + len(self.commenters)

    # -- the event path ------------------------------------------------------------------

    def observe(
        self, kind: str, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int:
        """Take one new event into account; return the multiplier (per mille) its points get."""
        p = self.p
        if ts > self.newest:
            self.newest = ts
            self._clock_moved = True
            if ts - self.swept >= SWEEP_EVERY_S:
                self._sweep()
        if (
            len(self.groups) > 2 * p.max_groups
            or len(self.commenters) > 2 * p.max_commenters
            or len(self.authors) > 2 * p.max_authors
        ):
            self._sweep()  # (late events do not move the clock; the caps hold anyway)
        if kind in COMMENT_KINDS:
            if actor == target:
                return FULL  # an author answering in their own thread farms nothing
            return self._comment(ts, actor, target, post, text)
        if kind == "post":
            if post is not None:
                g = self._group(post, target, ts, create=True)
                assert g is not None
                if text:
                    g.phrasing = phrasing(text)
                self._dirty[("g", "p:" + post)] = None
        elif kind in ENGAGEMENT_KINDS:
            # a post's engagement counts from its first event; a target's (no post) only once it
            # has comments, so plain shares and mentions cost the detector nothing
            g = self._group(post, target, ts, create=post is not None)
            if g is not None:
                g.engagement += 1
                g.last = max(g.last, ts)
                self._dirty[("g", group_key(post, target))] = None
        return FULL

    def _comment(
        self, ts: float, actor: str, target: str, post: str | None, text: str | None
    ) -> int:
        key = group_key(post, target)
        g = self._group(post, target, ts, create=True)
        assert g is not None
        self._dirty[("g", key)] = None
        self._dirty[("a", target)] = None
        if g.mult < FULL:
            ended = self._calm_end(g, ts)
            if ended is not None:
                g = self._end(key, g, ended)
        self._add_comment(g, ts, actor, text)
        author = self._author(target, ts)
        if g.comments < self.p.min_comments:
            return g.mult
        sig = self._signals(g, author, ts)
        score = _score(sig)
        if g.mult < FULL:
            # still throttled: the multiplier can only fall as evidence grows
            if score >= self.p.threshold:
                g.mult = min(g.mult, self._multiplier(score, author, ts, earlier=1))
            return g.mult
        # the comments themselves must look farmed: bait wording on a post with genuine
        # comments (a lecturer's "comments welcome") is one signal, not a verdict
        content = max(sig["low_value"], sig["flagged_commenters"])
        if score >= self.p.threshold and content >= self.p.content_min:
            self._throttle(key, g, author, ts, sig, score)
        return g.mult

    # -- internals -----------------------------------------------------------------------

    def _group(self, post: str | None, target: str, ts: float, *, create: bool) -> Group | None:
        key = group_key(post, target)
        g = self.groups.get(key)
        wording: list[str] = []
        if g is not None and self.newest - g.last > self.p.group_idle_s:
            # idle for long: forgotten (the sweep may not have run yet; expiry never depends on
            # it), except the post's own wording, which a late first comment still answers
            self._forget(key)
            wording, g = g.phrasing, None
        if g is None and create:
            g = self.groups[key] = Group(target, post, ts, ts, rate_at=ts, phrasing=wording)
            self._dirty[("g", key)] = None
        return g

    def _author(self, target: str, ts: float) -> Author:
        a = self.authors.get(target)
        if a is None or self.newest - a.last > self.p.author_idle_s:
            a = self.authors[target] = Author(last=ts, at=ts)
        a.baseline = a.baseline * _decay(ts - a.at, self.p.baseline_half_life_s) + 1.0
        a.at = max(a.at, ts)
        a.last = max(a.last, ts)
        return a

    def _add_comment(self, g: Group, ts: float, actor: str, text: str | None) -> None:
        p = self.p
        g.comments += 1
        g.rate = g.rate * _decay(ts - g.rate_at, p.rate_half_life_s) + 1.0
        g.rate_at = max(g.rate_at, ts)
        g.last = max(g.last, ts)
        if len(g.commenters) < p.sample:
            g.sampled += 1
            if actor not in g.commenters:
                g.commenters.append(actor)
        c = self.commenters.get(actor)
        if c is not None and self.newest - c.last > p.commenter_idle_s:
            del self.commenters[actor]
            self._dirty[("c", actor)] = None
            c = None
        if c is not None and c.flagged > 0:
            g.flagged += 1
        if g.mult < FULL:
            self._flag(actor, ts)  # commenting on a throttled post
        if text:
            promo, answer, n_words, h = comment_features(text)
            # under a post that calls for comments, a one- or two-word comment (or an emoji)
            # is the answer it asked for: "beach", "Maria", "🔥"
            answer = answer or (bool(g.phrasing) and n_words <= 2)
            g.texts += 1
            low = promo or answer
            if h in g.hashes:
                # the same words as an earlier comment on this post: copy-paste, unless it is a
                # short formula many people type alike ("congratulations!")
                low = low or n_words > 3
            elif len(g.hashes) < p.sample:
                g.hashes.append(h)
            g.low += low
            g.answers += answer

    def _flag(self, actor: str, ts: float) -> None:
        c = self.commenters.get(actor)
        if c is None:
            c = self.commenters[actor] = Commenter(last=ts)
        c.flagged += 1
        c.last = max(c.last, ts)
        self._dirty[("c", actor)] = None

    def _signals(self, g: Group, a: Author, ts: float) -> dict[str, float]:
        p = self.p
        per_hour = 3600.0 * LN2
        rate = g.rate * _decay(ts - g.rate_at, p.rate_half_life_s) * per_hour / p.rate_half_life_s
        # the author's long-run rate, this post's burst included (a steady author is not spiking)
        base = max(a.baseline * per_hour / p.baseline_half_life_s, p.baseline_floor_per_hour)
        texted = g.texts >= 8
        return {
            "spike": _clamp(math.log(max(rate / base, 1.0)) / math.log(20.0)),
            "comments_dominate": _clamp((g.comments / (g.comments + g.engagement) - 0.6) / 0.3),
            "low_value": _clamp((g.low / g.texts - 0.3) / 0.35) if texted else 0.0,
            "repeat_commenters": _clamp((0.85 - len(g.commenters) / max(g.sampled, 1)) / 0.4),
            "bait_phrasing": (
                1.0 if g.phrasing else _clamp(g.answers / g.texts / 0.3) if texted else 0.0
            ),
            "flagged_commenters": _clamp(g.flagged / g.comments / 0.3),
            "repeat_offender": 1.0 if self._offences(a, ts) else 0.0,
        }

    def _offences(self, a: Author, ts: float) -> int:
        return sum(1 for t in a.offences if ts - t <= self.p.offender_window_s)

    def _multiplier(self, score: float, a: Author, ts: float, *, earlier: int = 0) -> int:
        """Per mille: from max at the threshold to min for strong evidence, halved per recent
        throttle of the author (``earlier``: how many of those are this very throttle)."""
        p = self.p
        strength = _clamp(score - p.threshold)
        m = p.multiplier_max - (p.multiplier_max - p.multiplier_min) * strength
        m *= 0.5 ** max(self._offences(a, ts) - earlier, 0)
        return max(round(max(m, p.multiplier_floor) * FULL), 1)

    def _throttle(
        self, key: str, g: Group, a: Author, ts: float, sig: dict[str, float], score: float
    ) -> None:
        g.mult = self._multiplier(score, a, ts)
        g.since = ts
        # calm: below calm_per_hour, or below a quarter of the rate now for a campaign that was
        # never faster than that (a slow-burn campaign is not "calm" at its own steady pace)
        g.calm = min(self._calm_count(), g.rate / 4.0)
        strong = sorted((n for n, v in sig.items() if v >= 0.5), key=lambda n: -sig[n])
        g.reasons = [
            f"bait_phrasing:{'+'.join(g.phrasing)}" if n == "bait_phrasing" and g.phrasing else n
            for n in strong
        ]
        a.offences = [*(t for t in a.offences if ts - t <= self.p.offender_window_s), ts][-5:]
        for actor in g.commenters:
            self._flag(actor, ts)
        self._decisions.append(
            Decision(
                group_key(g.post, g.target),
                g.post,
                g.target,
                "throttled",
                ts,
                g.mult / FULL,
                tuple(g.reasons),
                g.comments - 1,
                sig,
                since=ts,
            )
        )

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
        self._dirty[("g", key)] = None
        if g.mult < FULL:
            self._ended(key, g, self._calm_time(g))

    def _ended(self, key: str, g: Group, at: float) -> None:
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
            )
        )

    def _end(self, key: str, g: Group, at: float) -> Group:
        """End the throttle at ``at``; the post starts a new episode (its rate carries on)."""
        self._ended(key, g, at)
        fresh = Group(
            g.target, g.post, at, g.last, rate=g.rate, rate_at=g.rate_at, phrasing=g.phrasing
        )
        self.groups[key] = fresh
        return fresh

    def _sweep(self) -> None:
        """Forget entries idle beyond their horizon (memory only: expiry on access already ignores
        them), then the least recent beyond the caps. Runs at fixed steps of the event clock."""
        self.swept = self.newest
        p = self.p
        for key in _expired(self.groups, self.newest - p.group_idle_s, p.max_groups):
            self._forget(key)
        _expire(self.authors, "a", self.newest - p.author_idle_s, p.max_authors, self._dirty)
        _expire(
            self.commenters, "c", self.newest - p.commenter_idle_s, p.max_commenters, self._dirty
        )


def _score(sig: dict[str, float]) -> float:
    return (
        1.0 * sig["low_value"]
        + 1.0 * sig["bait_phrasing"]
        + 0.6 * sig["comments_dominate"]
        + 0.5 * sig["spike"]
        + 0.4 * sig["repeat_commenters"]
        + 0.8 * sig["flagged_commenters"]
        + 0.4 * sig["repeat_offender"]
    )


def _expired(entries: dict[str, Any], cutoff: float, cap: int) -> list[str]:
    """Keys idle since before ``cutoff``, then the least recent beyond ``cap``."""
    dead = [k for k, e in entries.items() if e.last < cutoff]
    left = len(entries) - len(dead)
    if left > cap:
        gone = set(dead)
        alive = sorted((e.last, k) for k, e in entries.items() if k not in gone)
        dead += [k for _, k in alive[: left - cap]]
    return dead


def _expire(
    entries: dict[str, Any], table: str, cutoff: float, cap: int, dirty: dict[tuple[str, str], None]
) -> None:
    for k in _expired(entries, cutoff, cap):
        del entries[k]
        dirty[(table, k)] = None
