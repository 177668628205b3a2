"""Replay input readers (broker/formats.py): jsonl, SNAP Higgs and SNAP Stack Exchange lines."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path
from typing import Any

import pytest

from broker.formats import open_input, partition_key, read_items
from leaderboard.errors import KudosError


def items(text: bytes, fmt: str) -> list[Any]:
    return list(read_items(io.BytesIO(text), fmt))


HIGGS = (
    b"223789 213163 1341100972 MT\n223789 213163 1341100972 RE\n\n376989 50329 1341101181 RT\r\n"
)


def test_higgs_lines_become_share_mention_reply_with_line_ids() -> None:
    assert items(HIGGS, "higgs") == [
        {
            "id": "higgs-1",
            "ts": 1341100972,
            "kind": "mention",
            "actor": "223789",
            "target": "213163",
        },
        {"id": "higgs-2", "ts": 1341100972, "kind": "reply", "actor": "223789", "target": "213163"},
        # the blank line 3 is skipped but still counted: ids are physical line numbers
        {"id": "higgs-4", "ts": 1341101181, "kind": "share", "actor": "376989", "target": "50329"},
    ]


def test_line_ids_are_the_physical_line_numbers() -> None:
    text = b"\n  \n1 2 10 RT\n\n3 4 11 MT\n"
    lines = text.split(b"\n")
    out = items(text, "higgs")
    assert [o["id"] for o in out] == ["higgs-3", "higgs-5"]
    for o in out:
        lineno = int(o["id"].removeprefix("higgs-"))
        assert lines[lineno - 1].split()[0].decode() == o["actor"]


@pytest.mark.parametrize(
    ("code", "kind"), [(b"a2q", "reply"), (b"c2q", "comment"), (b"c2a", "comment")]
)
def test_sx_codes(code: bytes, kind: str) -> None:
    assert items(b"1 4 1254192988 " + code + b"\n", "sx") == [
        {"id": "sx-1", "ts": 1254192988, "kind": kind, "actor": "1", "target": "4"}
    ]


def test_sx_ids_count_lines() -> None:
    out = items(b"1 4 1254192988 a2q\n3 4 1254194656 c2q\n1 2 1254202612 c2a\n", "sx")
    assert [(o["id"], o["kind"]) for o in out] == [
        ("sx-1", "reply"),
        ("sx-2", "comment"),
        ("sx-3", "comment"),
    ]


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("higgs", b"1 2 1341100972"),  # three fields
        ("higgs", b"1 2 1341100972 RT extra"),  # five fields
        ("higgs", b"1 2 1341100972 XX"),  # unknown code
        ("higgs", b"1 2 1341100972 a2q"),  # an sx code in a higgs file
        ("higgs", b"1 2 1341100972.5 RT"),  # not an integer ts
        ("higgs", b"1 2 -5 RT"),
        ("higgs", b"1 2 soon RT"),
        ("higgs", b"1\t2\t3"),
        ("sx", b"1 4 1254192988"),  # the untyped sx file
        ("sx", b"1 4 1254192988 RT"),  # a higgs code in an sx file
        ("sx", b"1 4 x c2q"),
    ],
)
def test_malformed_lines_yield_their_raw_bytes(fmt: str, line: bytes) -> None:
    assert items(line + b"\n", fmt) == [line]


def test_malformed_line_between_good_ones_keeps_numbering() -> None:
    out = items(b"1 2 10 RT\nbroken\n3 4 11 RE\n", "higgs")
    assert out[1] == b"broken"
    assert [o["id"] for o in (out[0], out[2])] == ["higgs-1", "higgs-3"]


def test_unicode_digit_ts_is_a_malformed_line() -> None:
    line = "1 2 ² RT".encode()
    assert items(line + b"\n", "higgs") == [line]


def test_jsonl_objects_and_non_objects() -> None:
    text = (
        b'{"id": "e1", "ts": 1, "kind": "like", "actor": "a", "target": "b"}\n'
        b"\n"
        b"[1, 2]\n"
        b'"just a string"\n'
        b"42\n"
        b"{not json\n"
        b'{"id": "e2"}\r\n'
    )
    assert items(text, "jsonl") == [
        {"id": "e1", "ts": 1, "kind": "like", "actor": "a", "target": "b"},
        b"[1, 2]",
        b'"just a string"',
        b"42",
        b"{not json",
        {"id": "e2"},
    ]


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(KudosError, match="csv"):
        items(b"a,b\n", "csv")


# ---------------------------------------------------------------------------------------------
# opening inputs


def test_open_input_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "higgs.txt.gz"
    with gzip.open(path, "wb") as f:
        f.write(HIGGS)
    with open_input(str(path)) as stream:
        assert list(read_items(stream, "higgs")) == items(HIGGS, "higgs")


def test_open_input_detects_gzip_by_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "higgs.txt"
    path.write_bytes(gzip.compress(HIGGS))
    with open_input(str(path)) as stream:
        assert stream.read() == HIGGS


def test_open_input_reads_plain_files(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl.gz"  # named .gz, but plain text
    path.write_bytes(b'{"id": "e1"}\n')
    with open_input(str(path)) as stream:
        assert list(read_items(stream, "jsonl")) == [{"id": "e1"}]


def test_open_input_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KudosError, match="no such file"):
        open_input(str(tmp_path / "absent.gz"))


def test_dash_is_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.TextIOWrapper(io.BytesIO(b"1 2 10 RT\n"))
    monkeypatch.setattr(sys, "stdin", fake)
    assert list(read_items(open_input("-"), "higgs")) == [
        {"id": "higgs-1", "ts": 10, "kind": "share", "actor": "1", "target": "2"}
    ]


# ---------------------------------------------------------------------------------------------
# partition keys


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ({"id": "e1", "target": "bob"}, b"bob"),
        ({"id": "e1", "target": "zoë"}, "zoë".encode()),
        ({"id": "e1", "target": 5}, b'"e1"'),
        ({"id": "e1"}, b'"e1"'),
        (b"broken line", b"broken line"),
    ],
)
def test_partition_key_is_the_target(item: dict[str, object] | bytes, key: bytes) -> None:
    assert partition_key(item) == key
