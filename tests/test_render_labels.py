"""Level labels as readers see them (`detect.levels.level_label`): an uncertain level carries a question mark."""

from __future__ import annotations

import pandas as pd

from vertfrac_core.detect.levels import level_label


def test_an_unsure_level_is_marked_with_a_question_mark() -> None:
    assert level_label({"level": "L2", "level_confidence": 0.98}) == "L2"
    assert level_label({"level": "L2", "level_confidence": 0.75}) == "L2"
    assert level_label({"level": "L2", "level_confidence": 0.5}) == "L2?"
    assert level_label({"level": "T12"}) == "T12"  # confidence unknown: drawn as given
    assert level_label(pd.Series({"level": "L1", "level_confidence": 0.4})) == "L1?"  # report rows
