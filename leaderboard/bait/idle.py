"""Which entries of a detector table went idle before a cutoff, without reading every entry.

A sweep (``Detector._sweep``) forgets the entries whose ``last`` is before a cutoff. Reading every
entry at every sweep cost ~100 ns an entry: on the Higgs log's quiet days a partition held ~90k
commenters and swept every 6 h of event time, about every 1,300 of its events, so the scans came
to ~20 µs per event, half of the worker's CPU there (and the cost grew with the state, so a worker
got slower the longer it ran).

The index files each key under the hour its entry's ``last`` had when it was filed. A sweep reads
only the hours that begin before the cutoff; a key found there still alive is filed again under
the hour of its ``last`` now, so each entry is read about once per idle horizon it lives, not once
per sweep. The answer is the full scan's, exactly: ``last`` only grows, so an alive entry is always
filed under an hour at or before its ``last``'s, and every entry is filed when it is made
(:meth:`IdleIndex.add`, at each place a table gets a new entry, and for all of them on restore).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

HOUR_S = 3600.0


class Timed(Protocol):
    @property
    def last(self) -> float: ...


def _hour(last: float) -> float:
    """The start of ``last``'s hour, never after it (``%`` on floats is exact, so is the
    difference); ±inf files under itself and NaN under +inf: neither is ever before a cutoff,
    as in the scan (``nan < x`` is false)."""
    if math.isfinite(last):
        return last - last % HOUR_S
    return last if last < 0 else math.inf


class IdleIndex:
    """One table's keys by the hour of their entries' ``last`` (see the module's docstring).
    Keys of entries since removed or replaced are dropped when their hour is read."""

    __slots__ = ("_hours",)

    def __init__(self) -> None:
        self._hours: dict[float, list[str]] = {}

    def add(self, key: str, last: float) -> None:
        """File a new entry (or a replaced one: the old filing is dropped when read)."""
        h = _hour(last)
        keys = self._hours.get(h)
        if keys is None:
            self._hours[h] = [key]
        else:
            keys.append(key)

    def rebuild(self, entries: Mapping[str, Timed]) -> None:
        self._hours.clear()
        for k, e in entries.items():
            self.add(k, e.last)

    def idle(self, entries: Mapping[str, Timed], cutoff: float) -> list[str]:
        """The keys of ``entries`` whose ``last`` is before ``cutoff``, sorted (as the scan
        ``sorted(k for k, e in entries.items() if e.last < cutoff)``)."""
        read: set[str] = set()
        dead: list[str] = []
        alive: list[str] = []
        for h in [h for h in self._hours if h < cutoff]:
            for k in self._hours.pop(h):
                if k in read:
                    continue  # (filed twice: a replaced entry, or one refiled before)
                e = entries.get(k)
                if e is None:
                    continue
                read.add(k)
                (dead if e.last < cutoff else alive).append(k)
        # (refiled after the loop: the hour holding the cutoff is read in it, and is where
        # many of them go)
        for k in alive:
            self.add(k, entries[k].last)
        dead.sort()
        return dead

    def compact(self, entries: Mapping[str, Timed]) -> None:
        """Refile from ``entries`` when the filings outnumber them twice over. A key removed by
        another path (the caps' eviction, a replaced entry) keeps its filing until its hour is
        read, up to the idle horizon: under a flood of new accounts the index would outgrow
        the capped table. Called after each sweep's removals."""
        if len(self) > 2 * len(entries) + 64:
            self.rebuild(entries)

    def __len__(self) -> int:
        """Filings held (at most about twice the entries, by :meth:`compact`)."""
        return sum(len(v) for v in self._hours.values())
