"""The key registry (leaderboard/store/keys.py) is the one place key names come from: the docs are
generated from it, every key the code or a Lua script names is registered, and the apply's KEYS
and ARGV layout agree between Python and Lua. No Redis needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from leaderboard.key_doc import render
from leaderboard.store import keys
from leaderboard.store.apply import APPLY_KEYS, APPLY_SECTIONS

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "leaderboard" / "store" / "lua"
CODE = ["leaderboard", "stream", "web", "kudos", "deliver", "broker", "bench", "baiteval", "tests"]


def test_key_reference_is_current() -> None:
    assert (ROOT / "docs" / "keys.md").read_text() == render(), (
        "docs/keys.md is stale: run `make docs` (python -m leaderboard.key_doc > docs/keys.md)"
    )


def test_every_family_is_described_once() -> None:
    names = [f.name for f in keys.FAMILIES]
    assert len(names) == len(set(names))
    for f in keys.FAMILIES:
        assert f.shape.split(":")[0] == f.name or f.name == "wh", f
        assert f.tag in ("shard", "channel", "namespace", "webhooks"), f
        assert f.retention and f.doc and f.type, f
    assert set(keys.REBUILT_FAMILIES) == {f.name for f in keys.FAMILIES if f.rebuilt}


def test_an_unregistered_family_is_refused() -> None:
    k = keys.Keys("ns")
    assert k.key("board", "all") == "ns:board:all"
    assert k.key("wh", "job", "e:u") == "ns:wh:job:e:u"
    with pytest.raises(keys.UnknownKeyFamily):
        k.key("bored", "all")


def test_every_key_the_python_code_names_is_registered() -> None:
    literal = re.compile(r"""\.key\(\s*["']([a-z_]+)["']""")
    found: dict[str, str] = {}
    for top in CODE:
        for path in (ROOT / top).rglob("*.py"):
            if path == Path(__file__).resolve():
                continue  # (names an unknown family on purpose, above)
            for name in literal.findall(path.read_text()):
                found.setdefault(name, str(path.relative_to(ROOT)))
    assert "board" in found and "feedlog" in found  # the scan sees the code at all
    unknown = {n: p for n, p in found.items() if n not in keys.BY_NAME}
    assert not unknown, f"key families used but not in leaderboard/store/keys.py: {unknown}"


def test_lua_scripts_name_keys_only_through_keys_or_registered_shard_families() -> None:
    """Only apply.lua, erase.lua and switch.lua build key names from a namespace prefix
    (apply.lua and erase.lua: the families named per board, member or partition, all in the
    apply's slot; switch.lua: the rebuild's key walk). The others receive every key in KEYS, or
    a registered family's prefix."""
    built = re.compile(r"""prefix \.\. ':([a-z_]+)""")
    for path in sorted(LUA.glob("*.lua")):
        names = set(built.findall(path.read_text()))
        if path.name in ("apply.lua", "erase.lua"):
            assert names, f"the scan sees {path.name}'s named families"
            for n in names:
                assert n in keys.BY_NAME, n
                assert keys.BY_NAME[n].tag == "shard", f"{n} is not in the apply's slot"
        elif path.name != "switch.lua":
            assert not names, f"{path.name} builds keys from a prefix: {names}"


def test_apply_keys_and_sections_match_the_script() -> None:
    src = (LUA / "apply.lua").read_text()
    # the header lists KEYS in order, and the script binds them in that order
    header = re.search(r"--       \((.*?)\)\.", src, re.S)
    assert header is not None
    listed = [n.strip() for n in header.group(1).replace("--", "").split(",")]
    assert tuple(listed) == APPLY_KEYS
    preamble = src.split("local i = 4")[0]
    bound: dict[int, str] = {}
    for names, indexes in re.findall(
        r"^local (K_[\w, ]+) = (KEYS\[[\d\], KEYS\[]+\])$", preamble, re.M
    ):
        for name, index in zip(names.split(", "), re.findall(r"\d+", indexes), strict=True):
            bound[int(index)] = name
    assert [bound[j] for j in sorted(bound)] == [f"K_{f.upper()}" for f in APPLY_KEYS]
    assert sorted(bound) == list(range(1, len(APPLY_KEYS) + 1))
    assert tuple(re.findall(r"^section\('([a-z]+)'\)", src, re.M)) == APPLY_SECTIONS
