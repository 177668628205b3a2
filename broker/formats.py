"""Readers for replay inputs: our JSON lines, SNAP Higgs Twitter, SNAP Stack Exchange (sx).

Each reader yields, per input line, either an event dict (to be produced as JSON) or the raw line
bytes when the line cannot even be read as the format says; raw lines are still produced so the
worker dead-letters them with a reason (nothing is dropped silently on the way in).
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from leaderboard.errors import KudosError

FORMATS = ("jsonl", "higgs", "sx")
HIGGS_KINDS = {"RT": "share", "MT": "mention", "RE": "reply"}
SX_KINDS = {"a2q": "reply", "c2q": "comment", "c2a": "comment"}

Item = dict[str, Any] | bytes


def open_input(path: str) -> BinaryIO:
    """``-`` for standard input; ``.gz`` files are decompressed."""
    if path == "-":
        return sys.stdin.buffer
    p = Path(path)
    if not p.is_file():
        raise KudosError(f"{path}: no such file")
    with open(p, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(p, "rb")  # type: ignore[return-value]
    return open(p, "rb")


def read_items(stream: BinaryIO | io.BufferedIOBase, fmt: str) -> Iterator[Item]:
    if fmt not in FORMATS:
        raise KudosError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    for lineno, line in enumerate(stream, start=1):
        line = line.rstrip(b"\r\n")
        if not line.strip():
            continue
        if fmt == "jsonl":
            yield _json_line(line)
        else:
            yield _edge(line, lineno, fmt)


def _json_line(line: bytes) -> Item:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    return value if isinstance(value, dict) else line


def _edge(line: bytes, lineno: int, fmt: str) -> Item:
    parts = line.split()
    kinds = HIGGS_KINDS if fmt == "higgs" else SX_KINDS
    if len(parts) != 4:
        return line
    a, b, ts, code = (p.decode("utf-8", "replace") for p in parts)
    kind = kinds.get(code)
    if kind is None or not (ts.isascii() and ts.isdigit()):
        return line
    return {"id": f"{fmt}-{lineno}", "ts": int(ts), "kind": kind, "actor": a, "target": b}


def partition_key(item: Item) -> bytes:
    """Key = target (the contract); for unreadable lines, the line itself."""
    if isinstance(item, dict):
        target = item.get("target")
        if isinstance(target, str):
            return target.encode()
        return orjson.dumps(item.get("id"))
    return item
