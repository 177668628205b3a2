"""Compact de-duplication state: 128-bit fingerprints of ids, held by day (pure, no I/O).

A worker holds, per partition, the ids it applied inside the dedupe horizon and the
diminishing-returns counters of the days it still scores. As ``dict[str, float]`` and
``dict[(day, "actor␟target"), int]`` they cost ~124 B and ~167 B each; here an id costs ~20 B and a
counter ~19 B, under 21 B at a merge's peak (``python -m bench.dedupe_cost`` measures both, and
the ns per lookup and insert). The planner asks for a whole batch at once
(``days_of_many``/``add_many``, ``get_many``/``set_many``): that path runs in numpy, a few dozen
numpy calls a batch whatever its size; the per-item methods are for tests and tools.

**Fingerprints.** :func:`fingerprint` is BLAKE2b with a 16-byte digest of the UTF-8 id. Held
instead of the id, a new id is taken for a duplicate only if its fingerprint equals one of the n
held: probability n / 2**128 per lookup. With n = 1e9 ids held, that is 2.9e-30 per lookup, and
2.9e-19 over a life of 1e11 lookups; with n = 1e11 held, 2.9e-28 per lookup and 2.9e-17 over 1e11
lookups (a 96-bit fingerprint would make those 1.3e-20 and 1.3e-7: fine too, but 128 bits fit the
memory budget). A keyless cryptographic hash also means nobody can pick an id that shadows someone
else's (a second preimage of BLAKE2b is out of reach), which xxh3-128 (~4x faster to compute,
measured by the bench when ``xxhash`` is installed; not a dependency) would not promise.

**Blobs.** The Redis form of a (partition, day) is one string of concatenated 16-byte records, so
``APPEND`` of more records is still a valid blob, and a blob is loaded by records:

- ids (:meth:`FingerprintSet.dump_day`): one record per id held under that day; loading a record
  twice is the same as once;
- counters (:meth:`PairCounters.dump_day`): one record *per counted event* of the pair (its count
  is how many times its fingerprint occurs), so an apply appends ``fp * (k_new - k_old)`` and
  never rewrites. A pair costs 16 B per event in Redis; since only scored events append, at most
  once each, the counter log of a day is never bigger than its id log.

**Layout.** A fingerprint is two 64-bit halves ``hi``/``lo`` (little-endian views of its bytes);
the records of a structure are a few *runs*, each three numpy arrays ``hi`` (sorted), ``lo`` and a
small value (a day tag, or a count), LSM-style: a batch's new records become a new run, and the
newest run is merged into the one before it while that one is less than ``_GROWTH`` times bigger,
so an insert costs amortised O(log n) copies in C. Runs under ``_SMALL`` records (small batches)
wait at the tail, up to ``_TAIL_RUNS`` of them, and are merged together at once: a batch of 100
costs no merge cascade. Equal ``hi`` halves (a 2**-64 chance a pair, or a chosen collision) are
found exactly: a run that holds some is scanned along them. A value is updated in place (a later
day, a count), so a fingerprint is in one run only. The per-item methods add to a small dict,
turned into a run once it holds 1/64 of the structure. A merge builds the new run's arrays one at
a time, and no merge makes a run bigger than 1/8 of the structure (PairCounters: of all its
days), so a merge's transient peak is ~1.3 B a record held.

**Bloom filter.** In front of a structure's runs, a blocked Bloom filter (12 bits a record, one
64-bit word a record probed, the word and its 6 bits taken from the fingerprint's own bits: it is
uniform already) answers "absent" for ~99% of new fingerprints, so a batch of new ids (the common
case) costs ~6 numpy calls instead of a ``searchsorted`` a run; only the "maybe" go to the runs,
newest first. Bits are set for every record put in a run and never cleared, so it never answers
"absent" for a held one; the stale bits of dropped days go when it is rebuilt (every 1/4 growth,
or once a sweep leaves it oversized). 1.5-1.9 B a record.

**Expiry** is by whole days (``drop_days_before``): the planner compares against the horizon
anyway, so what lingers until its day goes is ignored by its rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from hashlib import blake2b
from typing import Any

import numpy as np
from numpy.typing import NDArray

#: bytes of a fingerprint, and of a record in a blob
FP_SIZE = 16
#: the largest count a counter record keeps inline; larger counts live in a side dict
_INLINE_MAX = 255
#: the newest run is merged into the one before while that one is under _GROWTH times its size:
#: fewer runs (one ``searchsorted`` each per batch) against more copying per insert
_GROWTH = 8
#: a merge never makes a run bigger than this or 1/_CAP_SHARE of the records held: its transient
#: arrays (the new one, two masks: 10 B a record) stay ~1.3 B per id held; the Bloom filter keeps
#: the extra runs off the common path (new ids)
_MIN_CAP = 1 << 16
_CAP_SHARE = 8
#: runs under this many records wait, up to _TAIL_RUNS of them, to be merged at once
_SMALL = 2048
_TAIL_RUNS = 4
#: the per-item dict is turned into a run at this many records, or 1/64 of those held
_BUF_MIN = 256
#: Bloom filter in front of the runs: bits per record it is sized for, and bits set per record
#: (blocked in 64-bit words: ~0.9% false "maybe" when full, ~0.5% just after a rebuild; 1.5-1.9
#: B a record)
_BLOOM_BITS = 12
_BLOOM_K = 6
#: the filter is rebuilt once it took this many records more than it was built with, or 1/4 of
#: those (a rebuild shed the stale bits of dropped records)
_BLOOM_MIN = 1024
#: records hashed into the filter at once by a rebuild (bounds the rebuild's temporary arrays)
_BLOOM_CHUNK = 1 << 14
_S32 = np.uint64(32)
_MASK_IX = np.uint64(0xFFF)

_U64 = NDArray[np.uint64]
_Ix = NDArray[np.intp]
_Arr = NDArray[Any]


def fingerprint(event_id: str) -> bytes:
    """The 16-byte fingerprint of an id (an event's, or an evidence record's ``SEP + id``)."""
    return blake2b(event_id.encode(), digest_size=FP_SIZE).digest()


def pair_fingerprint(actor: str, target: str) -> bytes:
    """The 16-byte fingerprint of a diminishing-returns pair (``actor␟target``, as ``plan.SEP``)."""
    return blake2b(f"{actor}\x1f{target}".encode(), digest_size=FP_SIZE).digest()


def _check_fp(fp: bytes) -> None:
    if len(fp) != FP_SIZE:
        raise ValueError(f"a fingerprint is {FP_SIZE} bytes, not {len(fp)}")


def _check_blob(blob: bytes) -> None:
    if len(blob) % FP_SIZE:
        # APPEND is atomic, so a partial record means the key was written by something else
        raise ValueError(f"a blob is whole {FP_SIZE}-byte records; this one is {len(blob)} bytes")


def _halves(blob: bytes) -> tuple[_U64, _U64]:
    k = np.frombuffer(blob, dtype="<u8")
    return k[0::2], k[1::2]


def _joined(fps: Sequence[bytes]) -> bytes:
    """The fingerprints concatenated, once each is checked to be 16 bytes."""
    for n in set(map(len, fps)):
        if n != FP_SIZE:
            raise ValueError(f"a fingerprint is {FP_SIZE} bytes, not {n}")
    return b"".join(fps)


def _fp_at(hi: _U64, lo: _U64, j: int) -> bytes:
    return int(hi[j]).to_bytes(8, "little") + int(lo[j]).to_bytes(8, "little")


def _records(hi: _U64, lo: _U64) -> bytes:
    return np.column_stack((hi, lo)).tobytes()


def _sort(hi: _U64, lo: _U64) -> _Ix:
    """The order that sorts by ``hi`` then ``lo`` (stable: equal fingerprints keep their order)."""
    return _sort_distinct(hi, lo)[0]


def _sort_distinct(hi: _U64, lo: _U64) -> tuple[_Ix, bool]:
    """:func:`_sort`, and whether the ``hi`` are distinct (then so are the fingerprints: no
    batch-internal duplicates to resolve, and a run of them needs no scan along equal halves)."""
    order = np.argsort(hi, kind="stable")
    h = hi[order]
    if len(h) > 1 and bool(np.any(h[1:] == h[:-1])):
        return np.lexsort((lo, hi)), False  # (rare: equal halves; lexsort is stable too)
    return order, True


def _firsts(hi: _U64, lo: _U64) -> NDArray[np.bool_]:
    """Where a new fingerprint starts in sorted ``hi``/``lo``."""
    start = np.ones(len(hi), dtype=bool)
    start[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    return start


class _Run:
    """Records sorted by ``hi``; ``dup``: some ``hi`` occurs twice; ``dirty``: may hold dead values."""

    __slots__ = ("dirty", "dup", "hi", "lo", "val")

    def __init__(self, hi: _U64, lo: _U64, val: _Arr, dup: bool | None = None) -> None:
        self.hi, self.lo, self.val = hi, lo, val
        self.dup = bool(len(hi) > 1 and np.any(hi[1:] == hi[:-1])) if dup is None else dup
        self.dirty = False

    def __len__(self) -> int:
        return len(self.hi)

    def locate(self, h: int, lo: int) -> int:
        hi = self.hi
        j = int(hi.searchsorted(np.uint64(h)))
        while j < len(hi) and int(hi[j]) == h:
            if int(self.lo[j]) == lo:
                return j
            j += 1
        return -1


class _Bloom:
    """Bits set for every record put in the store's runs since the last rebuild: a fingerprint
    whose bits are not all set is surely not in a run, so a batch of new ids skips their searches.

    Blocked (one 64-bit word a record, so a probe is one memory access): the word is picked by the
    top of ``hi`` (uniform: a BLAKE2b digest), and the bits in it are a mask of ``_BLOOM_K`` bits
    looked up by the low bits of ``lo``. Bits are never cleared: a dropped record may still answer
    "maybe" (then the runs say no) until a rebuild, never the reverse.
    """

    __slots__ = ("n", "room", "words")

    def __init__(self, records: int) -> None:
        cap = max(_BLOOM_MIN, records + records // 4)
        self.words = np.zeros((_BLOOM_BITS * cap + 63) // 64, dtype=np.uint64)
        self.n = np.uint64(len(self.words))
        self.room = cap - records  # records it takes before its rate is past its sizing

    def oversized(self, records: int) -> bool:
        """Half as big again as a rebuild for ``records`` would make it."""
        fresh = _BLOOM_BITS * max(_BLOOM_MIN, records + records // 4)
        return 64 * len(self.words) > fresh + fresh // 2

    def _at(self, hi: _U64, lo: _U64) -> tuple[_U64, _U64]:
        return ((hi >> _S32) * self.n) >> _S32, _MASKS[lo & _MASK_IX]

    def add(self, hi: _U64, lo: _U64) -> None:
        for j in range(0, len(hi), _BLOOM_CHUNK):
            w, mask = self._at(hi[j : j + _BLOOM_CHUNK], lo[j : j + _BLOOM_CHUNK])
            np.bitwise_or.at(self.words, w, mask)  # (unbuffered: records may share a word)

    def maybe_one(self, hi: int, lo: int) -> bool:
        """:meth:`maybe` of one fingerprint (Python ints: no numpy call but one index)."""
        mask = _MASK_LIST[lo & int(_MASK_IX)]
        return int(self.words[((hi >> 32) * int(self.n)) >> 32]) & mask == mask

    def maybe(self, hi: _U64, lo: _U64) -> NDArray[np.bool_]:
        """False where a fingerprint is surely not in a run."""
        w, mask = self._at(hi, lo)
        return (self.words[w] & mask) == mask  # type: ignore[no-any-return]


def _masks() -> _U64:
    """``_MASK_IX + 1`` words of ``_BLOOM_K`` distinct bits each (fixed: a seeded generator)."""
    rng = np.random.default_rng(14)
    bits = np.argsort(rng.random((int(_MASK_IX) + 1, 64)), axis=1)[:, :_BLOOM_K]
    return np.bitwise_or.reduce(np.uint64(1) << bits.astype(np.uint64), axis=1)  # type: ignore[no-any-return]


_MASKS = _masks()
_MASK_LIST: list[int] = _MASKS.tolist()


class _Store:
    """An exact map fingerprint → small unsigned value, in sorted runs (see the module docstring).

    Values in ``dead`` are of dropped records: a run holding some is ``dirty`` until swept, and a
    merge sweeps what it merges. Lookups see dead records (the owner tells them apart).
    """

    __slots__ = ("bloom", "buf", "dead", "n", "runs", "vdtype")

    def __init__(self, vdtype: type[np.unsignedinteger[Any]]) -> None:
        #: oldest and biggest first
        self.runs: list[_Run] = []
        #: the per-item path's newest records
        self.buf: dict[bytes, int] = {}
        self.vdtype = vdtype
        self.dead: set[int] = set()
        self.n = 0  # records in runs
        #: every record of the runs is in it (and maybe dropped ones: never a false "absent")
        self.bloom = _Bloom(0)

    def __len__(self) -> int:
        return self.n + len(self.buf)

    # -- batches: sorted hi/lo arrays ------------------------------------------------------------

    def find(self, hi: _U64, lo: _U64) -> tuple[NDArray[np.int16], _Ix, _Arr]:
        """For each (sorted) query: its run (-1: absent), position, and value (0 if absent)."""
        self.flush()
        m = len(hi)
        if not self.runs:
            ri = np.full(m, -1, dtype=np.int16)
            pos = np.zeros(m, dtype=np.intp)
            val = np.zeros(m, dtype=self.vdtype)
        else:
            maybe = self.bloom.maybe(hi, lo)
            sub = np.flatnonzero(maybe)
            if len(sub) == m:
                ri, pos, val = self._find(hi, lo)
            else:
                ri = np.full(m, -1, dtype=np.int16)
                pos = np.zeros(m, dtype=np.intp)
                val = np.zeros(m, dtype=self.vdtype)
                if len(sub):
                    ri[sub], pos[sub], val[sub] = self._find(hi[sub], lo[sub])
        return ri, pos, val

    def _find(self, hi: _U64, lo: _U64) -> tuple[NDArray[np.int16], _Ix, _Arr]:
        m = len(hi)
        ri = np.full(m, -1, dtype=np.int16)
        pos = np.zeros(m, dtype=np.intp)
        val = np.zeros(m, dtype=self.vdtype)
        if m == 1:  # (the usual "maybe": a false one; a scalar search a run is cheaper)
            h, lo_ = int(hi[0]), int(lo[0])
            for k in range(len(self.runs) - 1, -1, -1):
                r = self.runs[k]
                j = r.locate(h, lo_)
                if j >= 0:
                    ri[0], pos[0], val[0] = k, j, r.val[j]
                    break
            return ri, pos, val
        left = m  # (newest first: a record looked up again is most often a recent one)
        for k in range(len(self.runs) - 1, -1, -1):
            r = self.runs[k]
            p = r.hi.searchsorted(hi)
            same = r.hi.take(p, mode="clip") == hi
            if not same.any():
                continue  # (the common case: new ids)
            ok = same & (r.lo.take(p, mode="clip") == lo)
            if r.dup:
                for i in np.flatnonzero(same & ~ok).tolist():
                    # an equal hi, not this lo: look along the equal his
                    j = r.locate(int(hi[i]), int(lo[i]))
                    if j >= 0:
                        ok[i], p[i] = True, j
            hits = np.flatnonzero(ok)
            if len(hits):
                ri[hits] = k
                pk = p[hits]
                pos[hits] = pk
                val[hits] = r.val[pk]
                left -= len(hits)  # (a record is in one run only)
                if not left:
                    break
        return ri, pos, val

    def put(self, ri: NDArray[np.int16], pos: _Ix, val: _Arr) -> None:
        """Overwrite the values at positions from :meth:`find` (no mutation since)."""
        if len(ri) == 0:
            return
        runs = np.unique(ri).tolist()
        for k in runs:
            if k >= 0:
                r = self.runs[k]
                sel = ri == k if len(runs) > 1 else slice(None)
                r.val[pos[sel]] = val[sel]
                if self.dead:
                    r.dirty = True  # (a put may revive a dead record: its run was dirty anyway)

    def insert(self, hi: _U64, lo: _U64, val: _Arr, held: int = 0, dup: bool | None = None) -> None:
        """Add records absent from the store (the dict is empty: :meth:`find` flushed it), sorted
        by ``hi``, as a new run.

        ``held``: records held by the owner in all (a merge may make a run of a share of them),
        if more than this store's; ``dup``: whether some ``hi`` occurs twice, if known."""
        if len(hi):
            self._insert_run(hi, lo, val, dup, held)

    def _insert_run(
        self, hi: _U64, lo: _U64, val: _Arr, dup: bool | None = None, held: int = 0
    ) -> None:
        self.runs.append(_Run(hi, lo, val.astype(self.vdtype, copy=False), dup))
        self.n += len(hi)
        self.bloom.room -= len(hi)
        if self.bloom.room < 0:
            self.rebuild_bloom()
        else:
            self.bloom.add(hi, lo)
        runs = self.runs
        if len(hi) < _SMALL:
            # small runs wait at the tail (the filter keeps them off the common path) and are
            # merged together once they are many or big: not a merge cascade per small batch
            k = 0
            while k < len(runs) and len(runs[-1 - k]) < _SMALL:
                k += 1
            if k < _TAIL_RUNS and sum(len(r) for r in runs[-k:]) < _SMALL:
                return
            tail = [self._swept(r) for r in runs[-k:]]
            h = np.concatenate([r.hi for r in tail])
            lo_ = np.concatenate([r.lo for r in tail])
            order = _sort(h, lo_)
            v = np.concatenate([r.val for r in tail])[order]
            runs[-k:] = [_Run(h[order], lo_[order], v)]
            self.runs = runs = [r for r in runs if len(r)]
        cap = max(_MIN_CAP, max(held, self.n) // _CAP_SHARE)
        i = len(runs) - 2
        while i >= 0:  # (newest first; a pair kept apart by an old cap merges once the cap grows)
            a, b = runs[i], runs[i + 1]
            if len(a) < _GROWTH * len(b) and len(a) + len(b) <= cap:
                runs[i : i + 2] = [self._merge(self._swept(a), self._swept(b))]
                self.runs = runs = [r for r in runs if len(r)]
                i = len(runs) - 2
            else:
                i -= 1

    def _merge(self, a: _Run, b: _Run) -> _Run:
        if not len(a) or not len(b):
            return a if len(a) else b
        na, nb = len(a), len(b)
        dup = a.dup or b.dup
        from_a = np.ones(na + nb, dtype=bool)
        for j in range(0, nb, _BLOOM_CHUNK):  # (b's places by chunks: no 8 B a record of them)
            bh = b.hi[j : j + _BLOOM_CHUNK]
            at = a.hi.searchsorted(bh)
            dup = dup or bool(np.any(a.hi.take(at, mode="clip") == bh))
            at += np.arange(j, j + len(bh))
            from_a[at] = False
        from_b = ~from_a
        for name in ("hi", "lo", "val"):
            x, y = getattr(a, name), getattr(b, name)
            z = np.empty(na + nb, dtype=x.dtype)
            z[from_b] = y
            z[from_a] = x
            setattr(a, name, z)  # (frees the old array now: the peak is one array, not a run)
            del x, y
        a.dup = dup
        return a

    def _swept(self, r: _Run) -> _Run:
        if r.dirty:
            r.dirty = False
            keep = ~np.isin(r.val, np.fromiter(self.dead, dtype=self.vdtype, count=len(self.dead)))
            if not keep.all():
                self.n -= len(r) - int(np.count_nonzero(keep))
                r.hi, r.lo, r.val = r.hi[keep], r.lo[keep], r.val[keep]
        return r

    def flush(self) -> None:
        """Turn the per-item dict into a run."""
        if self.buf:
            hi, lo = _halves(b"".join(self.buf))
            val = np.fromiter(self.buf.values(), dtype=self.vdtype, count=len(self.buf))
            self.buf = {}
            order = _sort(hi, lo)
            self._insert_run(hi[order], lo[order], val[order])

    def rebuild_bloom(self) -> None:
        """A filter sized for the records held now, of their bits only (stale ones shed)."""
        self.bloom = None  # type: ignore[assignment]  # (freed first: the peak is one filter)
        self.bloom = _Bloom(self.n)
        for r in self.runs:
            self.bloom.add(r.hi, r.lo)

    # -- dead values ---------------------------------------------------------------------------

    def kill(self, values: set[int]) -> None:
        """Treat records with these values as dropped (swept from runs later, from the dict now)."""
        self.dead |= values
        for r in self.runs:
            r.dirty = True
        self.buf = {f: v for f, v in self.buf.items() if v not in values}

    def sweep(self, runs: int) -> None:
        """Sweep up to ``runs`` dirty runs; once none is left, dead values are forgotten."""
        for r in self.runs:
            if runs <= 0:
                break
            if r.dirty:
                self._swept(r)
                runs -= 1
        self.runs = [r for r in self.runs if len(r)]
        if not any(r.dirty for r in self.runs):
            self.dead.clear()
            if self.bloom.oversized(self.n):  # (most was dropped: a filter for what is left)
                self.rebuild_bloom()

    # -- one record ----------------------------------------------------------------------------

    def locate(self, fp: bytes) -> tuple[_Run | None, int]:
        """The run and position of ``fp`` (None, 0 if in the dict; None, -1 if absent)."""
        if fp in self.buf:
            return None, 0
        h, lo = int.from_bytes(fp[:8], "little"), int.from_bytes(fp[8:], "little")
        if self.runs and self.bloom.maybe_one(h, lo):
            for r in self.runs:  # (biggest first: where a held record most likely is)
                j = r.locate(h, lo)
                if j >= 0:
                    return r, j
        return None, -1

    def get(self, fp: bytes) -> int | None:
        r, j = self.locate(fp)
        if r is not None:
            return int(r.val[j])
        return self.buf[fp] if j == 0 else None

    def set(self, fp: bytes, v: int, at: tuple[_Run | None, int] | None = None) -> None:
        r, j = self.locate(fp) if at is None else at
        if r is not None:
            r.val[j] = v
            if self.dead:
                r.dirty = True
            return
        self.buf[fp] = v
        if len(self.buf) >= max(_BUF_MIN, self.n // 64):
            self.flush()

    # -- whole --------------------------------------------------------------------------------

    def items(self) -> Iterator[tuple[_U64, _U64, _Arr]]:
        """Every record as arrays (runs, then the dict)."""
        for r in self.runs:
            yield r.hi, r.lo, r.val
        if self.buf:
            hi, lo = _halves(b"".join(self.buf))
            yield hi, lo, np.fromiter(self.buf.values(), dtype=self.vdtype, count=len(self.buf))

    def nbytes(self) -> int:
        total = self.runs.__sizeof__() + self.buf.__sizeof__() + self.bloom.words.__sizeof__()
        for r in self.runs:
            total += r.hi.__sizeof__() + r.lo.__sizeof__() + r.val.__sizeof__()
        return total + sum(f.__sizeof__() + v.__sizeof__() for f, v in self.buf.items())


def _tally(days: NDArray[np.int64]) -> list[tuple[int, int]]:
    """(day, how many) of each day in ``days``."""
    if not len(days):
        return []
    first, last = int(days.min()), int(days.max())
    if first == last:
        return [(first, len(days))]
    u, c = np.unique(days, return_counts=True)
    return list(zip(u.tolist(), c.tolist(), strict=True))


class FingerprintSet:
    """The ids of one partition, as fingerprints, each held under the latest day it was added for.

    Exact for what it holds: no false negatives, and a false positive only when two ids have the
    same fingerprint (see the module's docstring). A record is the fingerprint and the day modulo
    2**16 (18 B); days held at once must therefore lie within 65,536 days of each other.

    Dropping a day is O(days): its records become dead at once (lookups and ``len`` ignore them)
    and are swept from the runs one run per add, or by the merges, so no call pays for the whole
    set; :meth:`compact` finishes the sweep now.
    """

    __slots__ = ("_days", "_gen", "_memo", "_s", "_tagdays", "_tags")

    def __init__(self) -> None:
        self._s = _Store(np.uint16)
        #: live day → ids held under it
        self._days: dict[int, int] = {}
        #: day tag (day & 0xFFFF) → live day
        self._tags: dict[int, int] = {}
        #: the live tags sorted, and their days (arrays, rebuilt when ``_tags`` changes)
        self._tagdays: tuple[NDArray[np.uint16], NDArray[np.int64]] | None = None
        #: bumped by every change; the last batch lookup, reused by add_many of the same batch
        self._gen = 0
        self._memo: (
            tuple[bytes, int, _U64, _U64, _Ix, NDArray[np.int16], _Ix, _Arr, bool] | None
        ) = None

    def __len__(self) -> int:
        return sum(self._days.values())

    def __contains__(self, fp: object) -> bool:
        if not isinstance(fp, bytes) or len(fp) != FP_SIZE:
            return False
        tag = self._s.get(fp)
        return tag is not None and tag in self._tags

    def day_of(self, fp: bytes) -> int | None:
        """The day ``fp`` is held under (the latest it was added for), or None."""
        if len(fp) != FP_SIZE:
            return None
        tag = self._s.get(fp)
        return None if tag is None else self._tags.get(tag)

    def days(self) -> list[int]:
        """The days that hold ids, oldest first."""
        return sorted(self._days)

    def _register(self, days: list[int]) -> list[int]:
        """Make each day of ``days`` held (empty at first); the days that were not.

        Raises:
            ValueError: a day is 65,536 days or more from a day held (or from another of ``days``).
        """
        new: dict[int, int] = {}
        for day in days:
            tag = day & 0xFFFF
            held = self._tags.get(tag, new.get(tag))
            if held is None:
                new[tag] = day
            elif held != day:
                raise ValueError(f"day {day} is too far from day {held} to be held with it")
        if not new:
            return []
        if not self._s.dead.isdisjoint(new):
            self.compact()  # a tag is reused only once no record carries it
        for tag, day in new.items():
            self._tags[tag] = day
            self._days[day] = 0
        self._tagdays = None
        return list(new.values())

    def _count(self, day: int, delta: int) -> None:
        k = self._days[day] + delta
        if k:
            self._days[day] = k
        else:
            del self._days[day]
            del self._tags[day & 0xFFFF]
            self._tagdays = None

    def _unregister_empty(self, days: list[int]) -> None:
        for day in days:
            if self._days.get(day) == 0:
                self._count(day, 0)

    def _days_of_tags(
        self, tags: _Arr, found: NDArray[np.bool_]
    ) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """The days of ``tags`` and where they are live (found and not of a dropped day)."""
        if self._tagdays is None:
            t = sorted(self._tags)
            self._tagdays = (
                np.array(t, dtype=np.uint16),
                np.array([self._tags[x] for x in t], dtype=np.int64),
            )
        ts, ds = self._tagdays
        if not len(ts):
            return np.zeros(len(tags), dtype=np.int64), np.zeros(len(tags), dtype=bool)
        p = ts.searchsorted(tags)
        live = found & (ts.take(p, mode="clip") == tags)
        return ds.take(p, mode="clip"), live

    def _lookup(self, blob: bytes) -> tuple[_U64, _U64, _Ix, NDArray[np.int16], _Ix, _Arr, bool]:
        memo = self._memo
        if memo is not None and memo[1] == self._gen and memo[0] == blob:
            return memo[2:]
        hi, lo = _halves(blob)
        order, distinct = _sort_distinct(hi, lo)
        hi, lo = hi[order], lo[order]
        ri, pos, val = self._s.find(hi, lo)
        self._memo = (blob, self._gen, hi, lo, order, ri, pos, val, distinct)
        return hi, lo, order, ri, pos, val, distinct

    def days_of_many(self, fps: Sequence[bytes]) -> list[int | None]:
        """:meth:`day_of` of each of ``fps`` (a batch: the filter, then the runs for the "maybe").

        Raises:
            ValueError: a fingerprint is not 16 bytes.
        """
        if not fps:
            return []
        _, _, order, ri, _, val, _ = self._lookup(_joined(fps))
        days, live = self._days_of_tags(val, ri != -1)
        if not live.any():
            return [None] * len(fps)
        out = np.empty(len(fps), dtype=np.int64)
        out[order] = days
        ok = np.empty(len(fps), dtype=bool)
        ok[order] = live
        return [d if k else None for d, k in zip(out.tolist(), ok.tolist(), strict=True)]

    def add(self, fp: bytes, day: int) -> bool:
        """Hold ``fp`` under ``day`` (or keep the later day it is held under); True if it was new.

        Raises:
            ValueError: ``fp`` is not 16 bytes, or ``day`` is 65,536 days or more from a day held.
        """
        _check_fp(fp)
        new_days = self._register([day])
        self._gen += 1
        at = self._s.locate(fp)
        r, j = at
        old = int(r.val[j]) if r is not None else (self._s.buf[fp] if j == 0 else None)
        old_day = None if old is None else self._tags.get(old)
        if old_day is None or old_day < day:
            self._s.set(fp, day & 0xFFFF, at)
            self._count(day, 1)
            if old_day is not None:
                self._count(old_day, -1)
        self._unregister_empty(new_days)
        if self._s.dead:
            self._s.sweep(1)
        return old_day is None

    def add_many(self, fps: Sequence[bytes], days: Sequence[int]) -> None:
        """:meth:`add` each of ``fps`` under its day of ``days`` (a later day wins, as there).

        Raises:
            ValueError: as :meth:`add`, or the lengths differ; then nothing is added.
        """
        if len(fps) != len(days):
            raise ValueError(f"{len(fps)} fingerprints, {len(days)} days")
        if fps:
            self._add(_joined(fps), np.array(days, dtype=np.int64), sorted(set(days)))

    def _add(self, blob: bytes, days: NDArray[np.int64], day_set: list[int]) -> None:
        new_days = self._register(day_set)
        hi, lo, order, ri, pos, val, distinct = self._lookup(blob)
        self._gen += 1
        if distinct and not (ri != -1).any():
            # the common batch: new ids, each once (no day to compare, no value to overwrite)
            if len(day_set) == 1:
                tags = np.full(len(hi), day_set[0] & 0xFFFF, dtype=np.uint16)
                self._s.insert(hi, lo, tags, dup=False)
                self._count(day_set[0], len(hi))
            else:
                d = days[order]
                self._s.insert(hi, lo, (d & 0xFFFF).astype(np.uint16), dup=False)
                for day, k in _tally(d):
                    self._count(day, k)
            self._unregister_empty(new_days)
            if self._s.dead:
                self._s.sweep(1)
            return
        d = days[order]
        start = np.ones(len(hi), dtype=bool) if distinct else _firsts(hi, lo)
        if not start.all():  # the same fingerprint twice in the batch: its latest day
            at = np.flatnonzero(start)
            d = np.maximum.reduceat(d, at)
            hi, lo, ri, pos, val = hi[at], lo[at], ri[at], pos[at], val[at]
        found = ri != -1
        old_days, live = self._days_of_tags(val, found)
        # a record takes the new day if its own is older, or was dropped (then it was absent)
        upd = found & ~(live & (old_days >= d))
        tags = (d & 0xFFFF).astype(np.uint16)
        self._s.put(ri[upd], pos[upd], tags[upd])
        new = ~found
        self._s.insert(hi[new], lo[new], tags[new])
        for day, k in _tally(d[new | upd]):
            self._count(day, k)
        for day, k in _tally(old_days[upd & live]):
            self._count(day, -k)
        self._unregister_empty(new_days)
        if self._s.dead:
            self._s.sweep(1)

    def drop_days_before(self, day: int) -> None:
        """Forget every id held under a day before ``day``."""
        old = [d for d in self._days if d < day]
        for d in old:
            del self._days[d]
            del self._tags[d & 0xFFFF]
        if old:
            self._gen += 1
            self._tagdays = None
            self._s.kill({d & 0xFFFF for d in old})

    def compact(self) -> None:
        """Sweep every dropped day's records out of the runs now."""
        if self._s.dead:
            self._gen += 1
            self._s.sweep(len(self._s.runs))

    def nbytes(self) -> int:
        """Bytes allocated for the records (the runs' arrays and the per-item dict)."""
        return self._s.nbytes()

    def dump_day(self, day: int) -> bytes:
        """The blob of ``day``: the fingerprints held under it, concatenated (O(set))."""
        tag = day & 0xFFFF
        if self._tags.get(tag) != day:
            return b""
        out = []
        for hi, lo, val in self._s.items():
            sel = val == tag
            if sel.any():
                out.append(_records(hi[sel], lo[sel]))
        return b"".join(out)

    def load_day(self, day: int, blob: bytes) -> None:
        """Add every fingerprint of ``blob`` under ``day`` (a blob made by APPENDs loads the same).

        Raises:
            ValueError: ``blob`` is not whole 16-byte records, or ``day`` is too far from one held.
        """
        _check_blob(blob)
        if blob:
            self._add(blob, np.full(len(blob) // FP_SIZE, day, dtype=np.int64), [day])


class PairCounters:
    """Diminishing-returns counters ``(day, pair fingerprint) → count`` of one partition.

    One store a day (a lookup names its day, so it searches one day's runs, and dropping a day
    frees them). A record is the fingerprint and a count byte (17 B); counts from 255 up live in a
    side dict, so counts stay exact: ``weight_mp // k`` is not 0 until k passes the weight (10,000
    for a conversion), and an actor may well pass 255 scored events on one target in a day.
    """

    __slots__ = ("_days", "_gen", "_memo")

    def __init__(self) -> None:
        self._days: dict[int, tuple[_Store, dict[bytes, int]]] = {}
        #: bumped by every change; the last get_many's lookups, reused by set_many of the same keys
        self._gen = 0
        self._memo: tuple[bytes, bytes, int, list[_Group]] | None = None

    def __len__(self) -> int:
        return sum(len(s) for s, _ in self._days.values())

    def days(self) -> list[int]:
        """The days that hold counters, oldest first."""
        return sorted(self._days)

    def get(self, day: int, fp: bytes) -> int:
        """The count of ``fp`` on ``day`` (0: none).

        Raises:
            ValueError: ``fp`` is not 16 bytes.
        """
        _check_fp(fp)
        entry = self._days.get(day)
        if entry is None:
            return 0
        s, big = entry
        k = s.get(fp)
        if k is None:
            return 0
        return big[fp] if k == _INLINE_MAX else k

    def set(self, day: int, fp: bytes, k: int) -> None:
        """Set the count of ``fp`` on ``day`` to ``k``.

        Raises:
            ValueError: ``fp`` is not 16 bytes or ``k`` < 1 (a counter is never taken back).
        """
        _check_fp(fp)
        if k < 1:
            raise ValueError(f"a count is at least 1, not {k}")
        self._gen += 1
        entry = self._days.get(day)
        if entry is None:
            entry = self._days[day] = (_Store(np.uint8), {})
        s, big = entry
        if k >= _INLINE_MAX:
            big[fp] = k
        else:
            big.pop(fp, None)
        s.set(fp, min(k, _INLINE_MAX))

    def add(self, day: int, fp: bytes, delta: int = 1) -> int:
        """Add ``delta`` (≥ 1) to the count of ``fp`` on ``day``; the new count."""
        k = self.get(day, fp) + delta
        self.set(day, fp, k)
        return k

    def _groups(self, blob: bytes, days: NDArray[np.int64]) -> list[_Group]:
        """The keys split by day, each sorted, and looked up in its day's store."""
        hi, lo = _halves(blob)
        if days.min() == days.max():
            parts = [(int(days[0]), np.arange(len(days)))]
        else:
            parts = [(d, np.flatnonzero(days == d)) for d in np.unique(days).tolist()]
        out = []
        for day, src in parts:
            h, lo_ = (hi, lo) if len(parts) == 1 else (hi[src], lo[src])
            order, distinct = _sort_distinct(h, lo_)
            src, h, lo_ = src[order], h[order], lo_[order]
            entry = self._days.get(day)
            found = None if entry is None else entry[0].find(h, lo_)
            out.append(_Group(day, src, h, lo_, found, distinct))
        return out

    def _lookup(self, blob: bytes, days: NDArray[np.int64]) -> list[_Group]:
        db = days.tobytes()
        memo = self._memo
        if memo is not None and memo[2] == self._gen and memo[0] == blob and memo[1] == db:
            return memo[3]
        groups = self._groups(blob, days)
        self._memo = (blob, db, self._gen, groups)
        return groups

    def _counts(self, g: _Group) -> NDArray[np.int64]:
        if g.found is None:
            return np.zeros(len(g.src), dtype=np.int64)
        ri, _, val = g.found
        k = val.astype(np.int64)
        big = self._days[g.day][1]
        if big:
            for j in np.flatnonzero((val == _INLINE_MAX) & (ri != -1)).tolist():
                k[j] = big[_fp_at(g.hi, g.lo, j)]
        return k

    def get_many(self, keys: Sequence[tuple[int, bytes]]) -> list[int]:
        """:meth:`get` of each ``(day, fp)`` of ``keys`` (a batch: as ``days_of_many``).

        Raises:
            ValueError: a fingerprint is not 16 bytes.
        """
        if not keys:
            return []
        blob = _joined([fp for _, fp in keys])
        out = np.zeros(len(keys), dtype=np.int64)
        for g in self._lookup(blob, np.array([d for d, _ in keys], dtype=np.int64)):
            out[g.src] = self._counts(g)
        return out.tolist()

    def set_many(self, items: Sequence[tuple[int, bytes, int]]) -> None:
        """:meth:`set` each ``(day, fp, k)`` of ``items`` (the last of a key wins, as there).

        Raises:
            ValueError: as :meth:`set`; then nothing is set.
        """
        if not items:
            return
        blob = _joined([fp for _, fp, _ in items])
        ks = np.array([k for _, _, k in items], dtype=np.int64)
        if ks.min() < 1:
            raise ValueError(f"a count is at least 1, not {int(ks.min())}")
        groups = self._lookup(blob, np.array([d for d, _, _ in items], dtype=np.int64))
        self._gen += 1
        held = len(self)  # (a day's runs may be a share of all the pairs: fewer of them)
        for g in groups:
            self._write(g, ks[g.src], held)

    def _write(self, g: _Group, k: NDArray[np.int64], held: int = 0) -> None:
        """Set the counts of a looked-up group (the last of equal keys wins)."""
        entry = self._days.get(g.day)
        if entry is None:
            entry = self._days[g.day] = (_Store(np.uint8), {})
        s, big = entry
        hi, lo = g.hi, g.lo
        new_once = g.distinct and (g.found is None or not (g.found[0] != -1).any())
        if new_once and int(k.max()) < _INLINE_MAX:  # (the common batch: new pairs, each once)
            s.insert(hi, lo, k.astype(np.uint8), held, dup=False)
            return
        if g.found is None:
            ri = np.full(len(hi), -1, dtype=np.int16)
            pos, val = np.zeros(len(hi), dtype=np.intp), np.zeros(len(hi), dtype=np.uint8)
        else:
            ri, pos, val = g.found
        last = _firsts(hi[::-1], lo[::-1])[::-1]  # (sorted stably: a key's last is the latest)
        if not last.all():
            hi, lo, ri, pos, val, k = hi[last], lo[last], ri[last], pos[last], val[last], k[last]
        found = ri != -1
        for j in np.flatnonzero((k >= _INLINE_MAX) | (found & (val == _INLINE_MAX))).tolist():
            fp = _fp_at(hi, lo, j)
            if k[j] >= _INLINE_MAX:
                big[fp] = int(k[j])
            else:
                big.pop(fp, None)
        inline = np.minimum(k, _INLINE_MAX).astype(np.uint8)
        s.put(ri[found], pos[found], inline[found])
        new = ~found
        s.insert(hi[new], lo[new], inline[new], held)

    def drop_days_before(self, day: int) -> None:
        """Forget every counter of a day before ``day``."""
        for d in [d for d in self._days if d < day]:
            del self._days[d]
            self._gen += 1

    def nbytes(self) -> int:
        """Bytes allocated for the runs and the side dicts (their keys are shared with callers
        only while they hold them, so they are counted)."""
        total = self._days.__sizeof__()
        for s, big in self._days.values():
            total += s.nbytes() + big.__sizeof__() + sum(f.__sizeof__() for f in big)
        return total

    def dump_day(self, day: int) -> bytes:
        """The blob of ``day``: each pair's fingerprint once per count (O(day's runs))."""
        entry = self._days.get(day)
        if entry is None:
            return b""
        s, big = entry
        out = []
        for hi, lo, val in s.items():
            k = val.astype(np.int64)
            for j in np.flatnonzero(val == _INLINE_MAX).tolist():
                k[j] = big[_fp_at(hi, lo, j)]
            out.append(np.repeat(np.column_stack((hi, lo)), k, axis=0).tobytes())
        return b"".join(out)

    def load_day(self, day: int, blob: bytes) -> None:
        """Add the counts of ``blob`` (occurrences of each fingerprint) to ``day``'s.

        Raises:
            ValueError: ``blob`` is not whole 16-byte records.
        """
        _check_blob(blob)
        if not blob:
            return
        self._gen += 1
        hi, lo = _halves(blob)
        order = _sort(hi, lo)
        hi, lo = hi[order], lo[order]
        at = np.flatnonzero(_firsts(hi, lo))
        n = np.diff(np.append(at, len(hi)))
        hi, lo = hi[at], lo[at]
        entry = self._days.get(day)
        g = _Group(day, at, hi, lo, None if entry is None else entry[0].find(hi, lo))
        self._write(g, self._counts(g) + n)


class _Group:
    """The keys of a batch on one day: where they are in the batch, sorted, and found."""

    __slots__ = ("day", "distinct", "found", "hi", "lo", "src")

    def __init__(
        self,
        day: int,
        src: _Ix,
        hi: _U64,
        lo: _U64,
        found: tuple[NDArray[np.int16], _Ix, _Arr] | None,
        distinct: bool = False,
    ) -> None:
        self.day, self.src, self.hi, self.lo, self.found = day, src, hi, lo, found
        self.distinct = distinct  # (no two keys share a ``hi``: none twice)
