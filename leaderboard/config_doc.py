"""Generate docs/configuration.md from the settings classes: every setting, its environment variable,
type, default and the ``#:`` comment above it in leaderboard/settings.py (the one source).

    python -m leaderboard.config_doc > docs/configuration.md

A test fails when the file is out of date.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from typing import Any, get_type_hints

from leaderboard.settings import _SECTIONS, Settings

_FIELD = re.compile(r"^\s+(\w+)\s*:")

HEADER = """# Configuration reference

Generated from `leaderboard/settings.py` by `python -m leaderboard.config_doc`; do not edit by hand.

Every setting comes from an environment variable `KUDOS_<SECTION>_<NAME>` (which wins) or from the
optional TOML file named by `KUDOS_CONFIG` (default `kudos.toml` in the working directory, when it
exists) as `[section] name = value`. Values are checked at start: a malformed or out-of-range value,
or an unknown `KUDOS_*` variable, stops the process with a message naming it.

| variable | meaning |
|---|---|
| `KUDOS_HOME` | state of the embedded stack (pid files, logs); default `.kudos` |
| `KUDOS_CONFIG` | the optional TOML config file |
"""


def field_docs(cls: type[Any]) -> dict[str, str]:
    """field name → the ``#:`` comment lines just above it, joined."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = _FIELD.match(line)
        if m and pending:
            docs[m.group(1)] = " ".join(pending)
        pending = []
    return docs


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "(empty)"
    return str(value)


def render() -> str:
    out = [HEADER]
    hints = get_type_hints(Settings)
    for name in _SECTIONS:
        cls = hints[name]
        docs = field_docs(cls)
        out.append(f"\n## `[{name}]`\n")
        if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
            out.append(inspect.cleandoc(cls.__doc__) + "\n")
        out.append("| variable | type | default | meaning |\n|---|---|---|---|")
        types = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            var = f"KUDOS_{name.upper()}_{f.name.upper()}"
            meaning = docs.get(f.name, "").replace("|", "\\|")
            typ = types[f.name].__name__
            out.append(f"| `{var}` | {typ} | `{_default(f.default)}` | {meaning} |")
    return "\n".join(out) + "\n"


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
