"""The real data sets of the comment-bait evaluation (baiteval/data.py): texts and background."""

from __future__ import annotations

from baiteval.data import clean_text
from baiteval.labels import EvalStream
from tests.baiteval.conftest import BACKGROUND


def test_background_is_half_higgs_half_shifted_mathoverflow(s1: EvalStream) -> None:
    bg = [e for e in s1.events if "post" not in e]
    higgs = [e for e in bg if e["id"].startswith("bg-higgs-")]
    mo = [e for e in bg if e["id"].startswith("bg-mo-")]
    assert len(higgs) == BACKGROUND // 2
    assert 0 < len(mo) <= BACKGROUND // 2
    assert min(e["ts"] for e in higgs) == min(e["ts"] for e in mo) >= 1341273600  # 2012-07-03
    # MathOverflow's busiest stretch runs beside the Higgs slice, not for months after it
    span = max(e["ts"] for e in higgs) - min(e["ts"] for e in higgs)
    assert max(e["ts"] for e in mo) - min(e["ts"] for e in mo) <= span
    assert {e["kind"] for e in higgs} <= {"share", "mention", "reply"}
    assert {e["kind"] for e in mo} <= {"reply", "comment"}
    assert all(e["actor"].startswith("mo") and e["target"].startswith("mo") for e in mo)


def test_youtube_text_is_cleaned() -> None:
    assert clean_text("I love it &lt;3<br />see <a href='x'>this</a>&#39;s\ufeff") == (
        "I love it <3 see this's"
    )
    assert clean_text(" \ufeff <br/> ") == ""
