"""The worker's dedupe state, compact against dict-based, pure (no I/O): ``python -m bench.dedupe_cost``.

Same run, same ids (``higgs-<j>``, spread over 8 days as a week's horizon holds them):

- bytes per id (``tracemalloc``, everything the structure allocates, the id strings included for
  the dict) of :class:`leaderboard.fingerprint.FingerprintSet` and of today's
  ``OwnedPartition.seen`` + ``seen_days`` (``add_seen``), at each of ``--sizes``;
- bytes per diminishing-returns counter: :class:`~leaderboard.fingerprint.PairCounters` against
  ``OwnedPartition.dr`` + ``dr_days`` (``set_dr``);
- ns per operation at ``--timed`` entries, best of ``--repeat``: a lookup that hits, one that
  misses, an insert, for ids and counters, with the fingerprint's own cost apart (the planner
  computes it once per event and uses it for both the lookup and the insert);
- the batch path the planner uses (``days_of_many`` + ``add_many`` of new ids, ``get_many`` +
  ``set_many`` of their counters) in ns per event at ``--held`` ids held, for each of
  ``--batches``, against the dicts doing the same per event; and the bytes per id and per pair,
  held and at the peak (merges), of structures built in batches.

The dict baseline is the worker's state before issue 14 (``seen``/``seen_days``, ``dr``/``dr_days``),
kept here so the ratio stays measurable. ``--before FILE`` times another version of
``leaderboard/fingerprint.py`` in the same rounds too (``git show REV:leaderboard/fingerprint.py >
/tmp/fp_before.py``), for a before/after of a change.

Prints one line per number and the ratios compact / dict. About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import time
import tracemalloc
from collections.abc import Callable
from types import ModuleType

from leaderboard.fingerprint import FingerprintSet, PairCounters, fingerprint, pair_fingerprint

DAY0 = 15_523  # 2012-07-01, the Higgs week
T0 = DAY0 * 86400.0


class OwnedPartition:
    """The dict state of a worker's partition before the compact structures (the baseline)."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.dr: dict[tuple[int, str], int] = {}
        self.seen_days: dict[int, list[str]] = {}
        self.dr_days: dict[int, list[str]] = {}

    def add_seen(self, event_id: str, ts: float) -> None:
        self.seen[event_id] = ts
        self.seen_days.setdefault(math.floor(ts / 86400), []).append(event_id)

    def set_dr(self, day: int, f: str, k: int) -> None:
        if (day, f) not in self.dr:
            self.dr_days.setdefault(day, []).append(f)
        self.dr[(day, f)] = k


def _ts(j: int, n: int) -> float:
    return T0 + j * (8 * 86400.0) / n


def _mem(build: Callable[[], object]) -> tuple[int, object]:
    used, _, kept = _mem_peak(build)
    return used, kept


def _mem_peak(build: Callable[[], object]) -> tuple[int, int, object]:
    """Bytes held by what ``build`` returns, and the most held at once while building it."""
    gc.collect()
    tracemalloc.start()
    kept = build()
    used, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return used, peak, kept


def batch_memory(n: int, batch: int) -> None:
    """Bytes per id and per pair of structures built by batches (the planner's path), with peaks.

    The fingerprints are made before tracing starts, so the peak is the structure's own (its
    merges and a batch's arrays), not the list of inputs."""
    fps = [fingerprint(f"higgs-{j}") for j in range(n)]
    pfps = [pair_fingerprint(str(j), str(j * 7 % 100_000)) for j in range(n)]

    def ids() -> object:
        s = FingerprintSet()
        for j in range(0, n, batch):
            s.add_many(fps[j : j + batch], [DAY0 + j * 8 // n] * len(fps[j : j + batch]))
        return s

    def counters() -> object:
        c = PairCounters()
        for j in range(0, n, batch):
            d = DAY0 + j * 8 // n
            c.set_many([(d, f, 1) for f in pfps[j : j + batch]])
        return c

    for label, build in (("ids", ids), ("counters", counters)):
        used, peak, kept = _mem_peak(build)
        del kept
        print(
            f"{label} {n:>9,} in batches of {batch:,}: {used / n:5.1f} B each held, "
            f"peak {peak / n:5.1f} B each"
        )


def _module(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("fingerprint_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _filled(n: int, set_cls: type, counters_cls: type) -> tuple[FingerprintSet, PairCounters]:
    s, c = set_cls(), counters_cls()
    for j in range(0, n, 1000):
        b = [fingerprint(f"higgs-{i}") for i in range(j, min(n, j + 1000))]
        d = DAY0 + j * 8 // n
        s.add_many(b, [d] * len(b))
        c.set_many([(d, f, 1) for f in b])
    return s, c


def batch_speed(n: int, sizes: list[int], events: int, repeat: int, before: str | None) -> None:
    """ns per new event of the planner's batch path at ``n`` held, against dicts per event (and
    against the ``before`` version of the module, if given)."""
    s, c = _filled(n, FingerprintSet, PairCounters)
    old = None
    if before:
        mod = _module(before)
        old = _filled(n, mod.FingerprintSet, mod.PairCounters)
    p = OwnedPartition()
    for j in range(n):
        p.add_seen(f"higgs-{j}", _ts(j, n))
        p.set_dr(DAY0 + j * 8 // n, f"{j}\x1f{j * 7 % 100_000}", 1)
    day = DAY0 + 7
    for size in sizes:
        rounds = []
        for r in range(repeat):
            ids = [f"fresh-{size}-{r}-{j}" for j in range(events)]
            pairs = [f"a{j % 5_000}\x1ft{j}" for j in range(events)]
            fps = [fingerprint(i) for i in ids]
            pfps = [fingerprint(f) for f in pairs]
            rounds.append((ids, pairs, fps, pfps))

        def compact(
            rd: tuple[list[str], list[str], list[bytes], list[bytes]],
            size: int = size,
            s: FingerprintSet = s,
            c: PairCounters = c,
        ) -> None:
            _, _, fps, pfps = rd
            for j in range(0, events, size):
                fb, pb = fps[j : j + size], pfps[j : j + size]
                s.days_of_many(fb)
                s.add_many(fb, [day] * len(fb))
                keys = [(day, f) for f in pb]
                ks = c.get_many(keys)
                c.set_many([(day, f, k + 1) for f, k in zip(pb, ks, strict=True)])

        def dicts(
            rd: tuple[list[str], list[str], list[bytes], list[bytes]], size: int = size
        ) -> None:
            ids, pairs, _, _ = rd
            seen, dr, ts = p.seen, p.dr, T0 + 7.5 * 86400
            for j in range(0, events, size):
                for i, f in zip(ids[j : j + size], pairs[j : j + size], strict=True):
                    seen.get(i)
                    p.add_seen(i, ts)
                    k = dr.get((day, f), 0)
                    p.set_dr(day, f, k + 1)

        best_new = best_old = best_before = float("inf")
        for rd in rounds:  # (fresh ids each round: a round inserts them)
            gc.collect()
            t = time.perf_counter()
            compact(rd)
            best_new = min(best_new, time.perf_counter() - t)
            if old is not None:
                gc.collect()
                t = time.perf_counter()
                compact(rd, size, *old)
                best_before = min(best_before, time.perf_counter() - t)
            gc.collect()
            t = time.perf_counter()
            dicts(rd)
            best_old = min(best_old, time.perf_counter() - t)
        new, base = best_new / events * 1e9, best_old / events * 1e9
        ahead = ""
        if old is not None:
            was = best_before / events * 1e9
            ahead = f", before {was:6.0f} ns/event, after/before {new / was:5.2f}"
        print(
            f"batch of {size:>5,} ({n:,} held): compact {new:6.0f} ns/event, "
            f"dict {base:6.0f} ns/event, ratio {new / base:5.2f}{ahead}  (fingerprints apart)"
        )


def memory(sizes: list[int]) -> None:
    for n in sizes:

        def compact(n: int = n) -> object:
            s = FingerprintSet()
            for j in range(n):
                s.add(fingerprint(f"higgs-{j}"), DAY0 + j * 8 // n)
            return s

        def baseline(n: int = n) -> object:
            p = OwnedPartition()
            for j in range(n):
                p.add_seen(f"higgs-{j}", _ts(j, n))
            return p

        new, kept = _mem(compact)
        del kept
        old, kept = _mem(baseline)
        del kept
        print(
            f"ids {n:>9,}: FingerprintSet {new / n:5.1f} B/id, dict {old / n:5.1f} B/id, "
            f"ratio {new / old:.3f}"
        )
    for n in sizes[:3]:

        def counters(n: int = n) -> object:
            c = PairCounters()
            for j in range(n):
                c.set(DAY0 + j * 8 // n, pair_fingerprint(str(j), str(j * 7 % 100_000)), 1)
            return c

        def dr_baseline(n: int = n) -> object:
            p = OwnedPartition()
            for j in range(n):
                p.set_dr(DAY0 + j * 8 // n, f"{j}\x1f{j * 7 % 100_000}", 1)
            return p

        new, kept = _mem(counters)
        del kept
        old, kept = _mem(dr_baseline)
        del kept
        print(
            f"counters {n:>9,}: PairCounters {new / n:5.1f} B/pair, dict {old / n:5.1f} B/pair, "
            f"ratio {new / old:.3f}"
        )


def _ns(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e9


def speed(n: int, repeat: int) -> None:
    ids = [f"higgs-{j}" for j in range(n)]
    fresh = [f"fresh-{j}" for j in range(n)]
    fps = [fingerprint(i) for i in ids]
    fresh_fps = [fingerprint(i) for i in fresh]
    tss = [_ts(j, n) for j in range(n)]
    days = [DAY0 + j * 8 // n for j in range(n)]
    p = OwnedPartition()
    for i, ts in zip(ids, tss, strict=True):
        p.add_seen(i, ts)
    s = FingerprintSet()
    for fp, d in zip(fps, days, strict=True):
        s.add(fp, d)
    seen = p.seen

    def fp_cost() -> None:
        for i in fresh:
            fingerprint(i)

    def dict_hit() -> None:
        for i in ids:
            seen.get(i)

    def dict_miss() -> None:
        for i in fresh:
            seen.get(i)

    def set_hit() -> None:
        for fp in fps:
            fp in s  # noqa: B015

    def set_miss() -> None:
        for fp in fresh_fps:
            fp in s  # noqa: B015

    def dict_insert() -> None:
        q = OwnedPartition()
        for i, ts in zip(fresh, tss, strict=True):
            q.add_seen(i, ts)

    def set_insert() -> None:
        q = FingerprintSet()
        for fp, d in zip(fresh_fps, days, strict=True):
            q.add(fp, d)

    rows: list[tuple[str, float, float]] = []

    def row(label: str, new: Callable[[], None], old: Callable[[], None]) -> None:
        a, b = _ns(new, n, repeat), _ns(old, n, repeat)
        rows.append((label, a, b))
        print(f"{label:<34} compact {a:6.0f} ns, dict {b:6.0f} ns, ratio {a / b:5.2f}")

    fpn = _ns(fp_cost, n, repeat)
    print(f"fingerprint (blake2b-128)          {fpn:6.0f} ns")
    try:
        import xxhash  # type: ignore[import-not-found]

        x3 = xxhash.xxh3_128_digest

        def xx_cost() -> None:
            for i in fresh:
                x3(i.encode())

        print(f"  (xxh3-128, not a dependency)     {_ns(xx_cost, n, repeat):6.0f} ns")
    except ImportError:
        pass
    row(f"id lookup, hit  ({n:,} held)", set_hit, dict_hit)
    row(f"id lookup, miss ({n:,} held)", set_miss, dict_miss)
    row(f"id insert (0..{n:,})", set_insert, dict_insert)

    pairs = [f"{j}\x1f{j * 7 % 100_000}" for j in range(n)]
    pfps = [pair_fingerprint(str(j), str(j * 7 % 100_000)) for j in range(n)]
    c = PairCounters()
    for fp, d in zip(pfps, days, strict=True):
        c.set(d, fp, 1)
    for f, d in zip(pairs, days, strict=True):
        p.set_dr(d, f, 1)
    dr = p.dr

    def ctr_get() -> None:
        for fp, d in zip(pfps, days, strict=True):
            c.get(d, fp)

    def dr_get() -> None:
        for f, d in zip(pairs, days, strict=True):
            dr.get((d, f), 0)

    def ctr_bump() -> None:
        for fp, d in zip(pfps, days, strict=True):
            c.set(d, fp, 2)

    def dr_bump() -> None:
        for f, d in zip(pairs, days, strict=True):
            p.set_dr(d, f, 2)

    def ctr_insert() -> None:
        q = PairCounters()
        for fp, d in zip(pfps, days, strict=True):
            q.set(d, fp, 1)

    def dr_insert() -> None:
        q = OwnedPartition()
        for f, d in zip(pairs, days, strict=True):
            q.set_dr(d, f, 1)

    row(f"counter get ({n:,} held)", ctr_get, dr_get)
    row("counter set, existing", ctr_bump, dr_bump)
    row(f"counter set, new (0..{n:,})", ctr_insert, dr_insert)
    # per scored event the planner pays one fingerprint of the id, one lookup (a miss: most ids
    # are new), one insert; and one of the pair, one counter get and one set
    new = 2 * fpn + sum(a for label, a, _ in rows if "hit" not in label and "existing" not in label)
    old = sum(b for label, _, b in rows if "hit" not in label and "existing" not in label)
    print(
        f"per new event (ids + counters)     compact {new:6.0f} ns, dict {old:6.0f} ns, "
        f"ratio {new / old:5.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--timed", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--held", type=int, default=1_000_000)
    ap.add_argument("--batches", default="100,1000,5000")
    ap.add_argument("--events", type=int, default=50_000, help="events timed per batch size")
    ap.add_argument("--skip-items", action="store_true", help="only the batch path")
    ap.add_argument("--before", help="another fingerprint.py to time in the same rounds")
    args = ap.parse_args()
    batch_memory(args.held, 1000)
    batches = [int(x) for x in args.batches.split(",")]
    batch_speed(args.held, batches, args.events, args.repeat, args.before)
    if not args.skip_items:
        memory([int(x) for x in args.sizes.split(",")])
        speed(args.timed, args.repeat)


if __name__ == "__main__":
    main()
