"""docs/configuration.md is generated from the settings classes and must be current."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import get_type_hints

from leaderboard.config_doc import field_docs, render
from leaderboard.settings import _SECTIONS, Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_reference_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/configuration.md is stale: run `make docs` "
        "(python -m leaderboard.config_doc > docs/configuration.md)"
    )


def test_every_setting_is_explained() -> None:
    hints = get_type_hints(Settings)
    missing = [
        f"KUDOS_{name.upper()}_{f.name.upper()}"
        for name in _SECTIONS
        for f in dataclasses.fields(hints[name])
        if not field_docs(hints[name]).get(f.name)
    ]
    assert not missing, f"settings without a #: comment in leaderboard/settings.py: {missing}"
