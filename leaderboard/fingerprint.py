"""Compact de-duplication state: 128-bit fingerprints of ids, held by day (pure, no I/O).

A worker holds, per partition, the ids it applied inside the dedupe horizon and the
diminishing-returns counters of the days it still scores. As ``dict[str, float]`` and
``dict[(day, "actor␟target"), int]`` they cost ~124 B and ~167 B each; here an id costs ~20 B and a
counter ~20 B (``python -m bench.dedupe_cost`` measures both, and the ns per lookup and insert).

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

**Expiry** is by whole days (``drop_days_before``): the planner compares against the horizon
anyway, so what lingers until its day goes is ignored by its rules.
"""

from __future__ import annotations

from hashlib import blake2b

#: bytes of a fingerprint, and of a record in a blob
FP_SIZE = 16
#: the largest count a counter record keeps inline; larger counts live in a side dict
_INLINE_MAX = 255
#: records per shard on average before the table splits one (linear hashing): the lookup is a
#: ``bytearray.find`` over one shard, ~5 ns a record, against ~2 B of shard overhead per record
_LOAD = 32
#: shards swept per add while a dropped day's records are still in the table
_SWEEP_PER_ADD = 2


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


class _Table:
    """An exact hash table of fixed-size records ``fp + payload`` in ``bytearray`` shards.

    Linear hashing: the shard of ``h = hash(fp)`` is ``h & mask``, or ``h & (2 * mask + 1)`` below
    the split pointer; one shard is split each time the table passes ``_LOAD`` records a shard, so
    growth never rehashes the whole table at once. A lookup is one C-level ``find`` in one shard;
    a hit is checked for record alignment (a match may straddle two records).
    """

    __slots__ = ("mask", "n", "rec", "shards", "split")

    def __init__(self, rec: int) -> None:
        self.rec = rec
        self.shards: list[bytearray] = [bytearray()]
        self.mask = 0
        self.split = 0
        self.n = 0  # records held (some may be dead, see FingerprintSet)

    def shard(self, fp: bytes) -> bytearray:
        h = hash(fp)
        i = h & self.mask
        if i < self.split:
            i = h & (2 * self.mask + 1)
        return self.shards[i]

    def append(self, b: bytearray, record: bytes) -> None:
        b += record
        self.n += 1
        if self.n > _LOAD * len(self.shards):
            self._split_one()

    def _split_one(self) -> None:
        rec, s, bit = self.rec, self.split, self.mask + 1
        old = bytes(self.shards[s])
        recs = [old[j : j + rec] for j in range(0, len(old), rec)]
        moves = [hash(old[j : j + FP_SIZE]) & bit for j in range(0, len(old), rec)]
        self.shards[s] = bytearray().join([r for r, m in zip(recs, moves, strict=True) if not m])
        self.shards.append(bytearray().join([r for r, m in zip(recs, moves, strict=True) if m]))
        self.split += 1
        if self.split == bit:
            self.mask = 2 * self.mask + 1
            self.split = 0

    def nbytes(self) -> int:
        # what the allocator was asked for: each bytearray's header and buffer, and the list
        return sum(b.__sizeof__() for b in self.shards) + self.shards.__sizeof__()


def _find(b: bytearray, fp: bytes, rec: int) -> int:
    """The offset of ``fp``'s record in shard ``b``, or -1."""
    j = b.find(fp)
    while j >= 0 and j % rec:
        j = b.find(fp, j + 1)
    return j


class FingerprintSet:
    """The ids of one partition, as fingerprints, each held under the latest day it was added for.

    Exact for what it holds: no false negatives, and a false positive only when two ids have the
    same fingerprint (see the module's docstring). A record is the fingerprint and the day modulo
    2**16 (18 B); days held at once must therefore lie within 65,536 days of each other.

    Dropping a day is O(days): its records become dead at once (``in`` and ``len`` ignore them)
    and are swept from the table a few shards per :meth:`add`, so no call pays for the whole table;
    :meth:`compact` finishes the sweep now.
    """

    __slots__ = ("_cursor", "_days", "_dead", "_t", "_tags")

    _REC = FP_SIZE + 2

    def __init__(self) -> None:
        self._t = _Table(self._REC)
        #: live day → ids held under it
        self._days: dict[int, int] = {}
        #: day tag (day & 0xFFFF) → live day
        self._tags: dict[int, int] = {}
        #: tags of dropped days whose records may still be in the table, and the sweep's position
        self._dead: set[int] = set()
        self._cursor = 0

    def __len__(self) -> int:
        return sum(self._days.values())

    def __contains__(self, fp: object) -> bool:
        if not isinstance(fp, bytes) or len(fp) != FP_SIZE:
            return False  # (a shorter needle could match inside a record)
        # (the hot path: _locate inlined, which saves ~40 % of a lookup)
        t = self._t
        h = hash(fp)
        i = h & t.mask
        if i < t.split:
            i = h & (2 * t.mask + 1)
        b = t.shards[i]
        j = b.find(fp)
        if j < 0:
            return False
        if not j % 18 and not self._dead:
            return True
        return self._locate(fp)[1] >= 0

    def day_of(self, fp: bytes) -> int | None:
        """The day ``fp`` is held under (the latest it was added for), or None."""
        if len(fp) != FP_SIZE:
            return None
        b, j = self._locate(fp)
        if j < 0:
            return None
        return self._tags[b[j + FP_SIZE] | b[j + FP_SIZE + 1] << 8]

    def days(self) -> list[int]:
        """The days that hold ids, oldest first."""
        return sorted(self._days)

    def _locate(self, fp: bytes) -> tuple[bytearray, int]:
        b = self._t.shard(fp)
        rec, dead = self._REC, self._dead
        j = b.find(fp)
        while j >= 0:
            if not j % rec and (not dead or (b[j + FP_SIZE] | b[j + FP_SIZE + 1] << 8) not in dead):
                return b, j
            j = b.find(fp, j + 1)
        return b, -1

    def add(self, fp: bytes, day: int) -> bool:
        """Hold ``fp`` under ``day`` (or keep the later day it is held under); True if it was new.

        Raises:
            ValueError: ``fp`` is not 16 bytes, or ``day`` is 65,536 days or more from a day held.
        """
        _check_fp(fp)
        tag = day & 0xFFFF
        held = self._tags.get(tag)
        if held is None:
            if tag in self._dead:
                self.compact()  # a tag is reused only once no record carries it
            self._tags[tag] = day
            self._days[day] = 0
        elif held != day:
            raise ValueError(f"day {day} is too far from day {held} to be held with it")
        t = self._t
        h = hash(fp)
        i = h & t.mask
        if i < t.split:
            i = h & (2 * t.mask + 1)
        b = t.shards[i]
        j = b.find(fp)
        if j >= 0 and (j % self._REC or self._dead):
            b, j = self._locate(fp)  # (rare: a straddling match, or dropped days not swept)
        if j >= 0:
            at = j + FP_SIZE
            old = self._tags[b[at] | b[at + 1] << 8]
            if old < day:
                b[at : at + 2] = tag.to_bytes(2, "little")
                self._count(old, -1)
                self._days[day] += 1
            elif old > day:
                self._count(day, 0)  # (the new day may be left empty)
            return False
        self._days[day] += 1
        t.append(b, fp + tag.to_bytes(2, "little"))
        if self._dead:
            self._sweep(_SWEEP_PER_ADD)
        return True

    def _count(self, day: int, delta: int) -> None:
        k = self._days[day] + delta
        if k:
            self._days[day] = k
        else:
            del self._days[day]
            del self._tags[day & 0xFFFF]

    def drop_days_before(self, day: int) -> None:
        """Forget every id held under a day before ``day``."""
        old = [d for d in self._days if d < day]
        for d in old:
            del self._days[d]
            del self._tags[d & 0xFFFF]
            self._dead.add(d & 0xFFFF)
        if old:
            self._cursor = 0

    def compact(self) -> None:
        """Sweep every dropped day's records out of the table now."""
        if self._dead:
            self._sweep(len(self._t.shards))

    def _sweep(self, shards: int) -> None:
        t, rec, dead = self._t, self._REC, self._dead
        end = min(self._cursor + shards, len(t.shards))
        for i in range(self._cursor, end):
            b = t.shards[i]
            kept = [
                b[j : j + rec]
                for j in range(0, len(b), rec)
                if (b[j + FP_SIZE] | b[j + FP_SIZE + 1] << 8) not in dead
            ]
            if len(kept) * rec != len(b):
                t.n -= len(b) // rec - len(kept)
                t.shards[i] = bytearray().join(kept)
        self._cursor = end
        if end == len(t.shards):
            dead.clear()
            self._cursor = 0

    def nbytes(self) -> int:
        """Bytes allocated for the records and the table (excluding this object's few fields)."""
        return self._t.nbytes()

    def dump_day(self, day: int) -> bytes:
        """The blob of ``day``: the fingerprints held under it, concatenated (O(table))."""
        tag = self._tags.get(day & 0xFFFF)
        if tag != day:
            return b""
        rec, lo, hi = self._REC, day & 0xFF, (day >> 8) & 0xFF
        out: list[bytes | bytearray] = []
        for b in self._t.shards:
            for j in range(0, len(b), rec):
                if b[j + FP_SIZE] == lo and b[j + FP_SIZE + 1] == hi:
                    out.append(b[j : j + FP_SIZE])
        return b"".join(out)

    def load_day(self, day: int, blob: bytes) -> None:
        """Add every fingerprint of ``blob`` under ``day`` (a blob made by APPENDs loads the same).

        Raises:
            ValueError: ``blob`` is not whole 16-byte records, or ``day`` is too far from one held.
        """
        _check_blob(blob)
        for j in range(0, len(blob), FP_SIZE):
            self.add(blob[j : j + FP_SIZE], day)


class PairCounters:
    """Diminishing-returns counters ``(day, pair fingerprint) → count`` of one partition.

    One table a day (a lookup names its day, so it probes one table, and dropping a day frees
    it). A record is the fingerprint and a count byte (17 B); counts from 255 up live in a side
    dict, so counts stay exact: ``weight_mp // k`` is not 0 until k passes the weight (10,000 for
    a conversion), and an actor may well pass 255 scored events on one target in a day.
    """

    __slots__ = ("_days",)

    _REC = FP_SIZE + 1

    def __init__(self) -> None:
        self._days: dict[int, tuple[_Table, dict[bytes, int]]] = {}

    def __len__(self) -> int:
        return sum(t.n for t, _ in self._days.values())

    def days(self) -> list[int]:
        """The days that hold counters, oldest first."""
        return sorted(self._days)

    def get(self, day: int, fp: bytes) -> int:
        """The count of ``fp`` on ``day`` (0: none).

        Raises:
            ValueError: ``fp`` is not 16 bytes.
        """
        entry = self._days.get(day)
        if len(fp) != FP_SIZE:
            _check_fp(fp)
        if entry is None:
            return 0
        t, big = entry
        b = t.shard(fp)
        j = _find(b, fp, self._REC)
        if j < 0:
            return 0
        k = b[j + FP_SIZE]
        return big[fp] if k == _INLINE_MAX else k

    def set(self, day: int, fp: bytes, k: int) -> None:
        """Set the count of ``fp`` on ``day`` to ``k``.

        Raises:
            ValueError: ``fp`` is not 16 bytes or ``k`` < 1 (a counter is never taken back).
        """
        _check_fp(fp)
        if k < 1:
            raise ValueError(f"a count is at least 1, not {k}")
        entry = self._days.get(day)
        if entry is None:
            entry = self._days[day] = (_Table(self._REC), {})
        t, big = entry
        inline = min(k, _INLINE_MAX)
        if k >= _INLINE_MAX:
            big[fp] = k
        else:
            big.pop(fp, None)
        b = t.shard(fp)
        j = _find(b, fp, self._REC)
        if j < 0:
            t.append(b, fp + bytes((inline,)))
        else:
            b[j + FP_SIZE] = inline

    def add(self, day: int, fp: bytes, delta: int = 1) -> int:
        """Add ``delta`` (≥ 1) to the count of ``fp`` on ``day``; the new count."""
        k = self.get(day, fp) + delta
        self.set(day, fp, k)
        return k

    def drop_days_before(self, day: int) -> None:
        """Forget every counter of a day before ``day``."""
        for d in [d for d in self._days if d < day]:
            del self._days[d]

    def nbytes(self) -> int:
        """Bytes allocated for the tables and the side dicts (their keys are shared with callers
        only while they hold them, so they are counted)."""
        total = self._days.__sizeof__()
        for t, big in self._days.values():
            total += t.nbytes() + big.__sizeof__() + sum(f.__sizeof__() for f in big)
        return total

    def dump_day(self, day: int) -> bytes:
        """The blob of ``day``: each pair's fingerprint once per count (O(day's table))."""
        entry = self._days.get(day)
        if entry is None:
            return b""
        t, big = entry
        rec = self._REC
        out: list[bytes] = []
        for b in t.shards:
            for j in range(0, len(b), rec):
                fp = bytes(b[j : j + FP_SIZE])
                k = b[j + FP_SIZE]
                out.append(fp * (big[fp] if k == _INLINE_MAX else k))
        return b"".join(out)

    def load_day(self, day: int, blob: bytes) -> None:
        """Add the counts of ``blob`` (occurrences of each fingerprint) to ``day``'s.

        Raises:
            ValueError: ``blob`` is not whole 16-byte records.
        """
        _check_blob(blob)
        counts: dict[bytes, int] = {}
        for j in range(0, len(blob), FP_SIZE):
            fp = blob[j : j + FP_SIZE]
            counts[fp] = counts.get(fp, 0) + 1
        for fp, n in counts.items():
            self.add(day, fp, n)
