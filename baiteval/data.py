"""The real data sets under a data directory: YouTube comment texts and background traffic.

:func:`texts` reads the UCI YouTube Spam Collection (``youtube_spam/*.csv``), cleaned, split in two
halves: spam for the bait farms, ham for real people. :func:`background_rows` reads real
background traffic: a slice of SNAP Higgs Twitter from 2012-07-03 and MathOverflow's busiest
stretch of the same length, shifted to run beside it.

Pure: reads files under a data directory, talks to neither Redis nor Kafka, prints nothing.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import html
import re
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

from baiteval.labels import DAY
from broker.formats import HIGGS_KINDS, SX_KINDS
from leaderboard.events import MAX_TEXT

__all__ = ["HIGGS_START", "Row", "Texts", "background_rows", "clean_text", "texts"]

#: 2012-07-03 00:00 UTC: the Higgs slice starts here, a day before the 4 July announcement, so it
#: holds ordinary days and the start of the real organic surge.
HIGGS_START = 1341273600


# -- texts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Texts:
    """Cleaned YouTube comments of one half: spam = low-value comments, ham = genuine ones."""

    half: str
    spam: tuple[str, ...]
    ham: tuple[str, ...]


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
# C0/C1 controls, the line/paragraph separators the event schema refuses, and the BOM YouTube
# leaves at the end of many comments
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_SPACE = re.compile(r"\s+")


def clean_text(raw: str) -> str:
    """Plain text from a YouTube comment: tags stripped, entities unescaped, no control chars.

    Tags go before unescaping so that an escaped ``&lt;3`` stays a heart and is not taken for a
    tag; controls go after, since an entity such as ``&#10;`` can produce one. Empty means drop.
    """
    text = _TAG.sub("", _BR.sub(" ", raw))
    text = _CONTROL.sub(" ", html.unescape(text))
    return _SPACE.sub(" ", text).strip()[:MAX_TEXT]


def _half_of(comment_id: str) -> str:
    # a hash, not file order, so both halves hold all five videos and both classes
    return "A" if hashlib.sha256(comment_id.encode()).digest()[0] % 2 == 0 else "B"


@functools.lru_cache(maxsize=8)
def texts(data_dir: Path, half: str) -> Texts:
    """The spam and ham texts of half ``"A"`` or ``"B"`` of the five YouTube files.

    Each class is split in two by a hash of COMMENT_ID, so a detector tuned on one half can be
    reported on texts it never saw. Texts are de-duplicated within a class, in file order.

    Raises:
        ValueError: ``half`` is not "A" or "B".
        OSError: the files cannot be read.
    """
    if half not in ("A", "B"):
        raise ValueError(f"half must be 'A' or 'B', got {half!r}")
    spam: dict[str, None] = {}
    ham: dict[str, None] = {}
    seen_ids: set[str] = set()
    for path in sorted((Path(data_dir) / "youtube_spam").glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                cid = row["COMMENT_ID"]
                if cid in seen_ids or _half_of(cid) != half:
                    continue  # the files repeat three COMMENT_IDs
                seen_ids.add(cid)
                text = clean_text(row["CONTENT"])
                if text:
                    (spam if row["CLASS"].strip() == "1" else ham)[text] = None
    return Texts(half, tuple(spam), tuple(ham))


# -- background ---------------------------------------------------------------------------------

# (id, ts, kind, actor, target): immutable, so the cached slice can be shared by many builds
Row = tuple[str, int, str, str, str]


@functools.lru_cache(maxsize=4)
def background_rows(data_dir: Path, per_source: int) -> tuple[Row, ...]:
    """``per_source`` Higgs events from 2012-07-03 and as many MathOverflow events, aligned.

    The MathOverflow slice is its busiest stretch as long as the Higgs slice (at most
    ``per_source`` events), shifted in time (spacing kept) to start at the first Higgs event, so
    both sources run side by side over the same day or two.
    """
    higgs = _higgs_rows(Path(data_dir) / "higgs" / "higgs-activity_time.txt.gz", per_source)
    start = higgs[0][1] if higgs else HIGGS_START
    span = (higgs[-1][1] - higgs[0][1]) if higgs else DAY
    mo_path = Path(data_dir) / "mathoverflow" / "sx-mathoverflow-typed.DERIVED.txt.gz"
    return tuple(higgs) + tuple(_mo_rows(mo_path, per_source, start, span))


def _higgs_rows(path: Path, n: int) -> list[Row]:
    rows: list[Row] = []
    if n <= 0:
        return rows
    with gzip.open(path, "rb") as f:
        # ids carry the file's line number, as `kudos replay --format higgs` numbers them
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) != 4 or not parts[2].isdigit():
                continue
            ts = int(parts[2])
            kind = HIGGS_KINDS.get(parts[3].decode())
            if ts < HIGGS_START or kind is None:
                continue
            rows.append((f"bg-higgs-{lineno}", ts, kind, parts[0].decode(), parts[1].decode()))
            if len(rows) == n:
                break
    return rows


def _mo_rows(path: Path, n: int, start: int, span: float) -> list[Row]:
    if n <= 0:
        return []
    lines: list[tuple[int, int, bytes]] = []  # (ts, line number, line)
    with gzip.open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) == 4 and parts[2].isdigit() and parts[3].decode() in SX_KINDS:
                lines.append((int(parts[2]), lineno, line))
    lines.sort(key=itemgetter(0))  # stable: the README says sort before replaying
    n = min(n, len(lines))
    if n == 0:
        return []
    # the window of ``span`` seconds holding the most events (two pointers over sorted times)
    first, best, lo = 0, 0, 0
    for hi in range(len(lines)):
        while lines[hi][0] - lines[lo][0] > span:
            lo += 1
        if hi - lo + 1 > best:
            first, best = lo, hi - lo + 1
    shift = start - lines[first][0]
    rows: list[Row] = []
    for ts, lineno, line in lines[first : first + min(n, best)]:
        a, b, _, code = line.decode().split()
        rows.append((f"bg-mo-{lineno}", ts + shift, SX_KINDS[code], f"mo{a}", f"mo{b}"))
    return rows
