"""The alias history as a stack, without a registry: promotions push, rollbacks pop."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from training.promote import champion_stack


def _e(action: str, version: str, before: str | None) -> dict:
    return {"action": action, "version": version, "from": before}


def test_promotions_push_and_rollbacks_pop_to_their_target():
    entries = [_e("promote", "1", None), _e("promote", "2", "1"), _e("promote", "3", "2")]
    assert champion_stack(entries) == ["1", "2", "3"]
    assert champion_stack([*entries, _e("rollback", "2", "3")]) == ["1", "2"]
    assert champion_stack([*entries, _e("rollback", "2", "3"), _e("rollback", "1", "2")]) == ["1"]


def test_a_move_made_outside_leadscore_is_named_by_the_next_recorded_one():
    # Version 1 was made champion in the MLflow UI; the first recorded move names it.
    assert champion_stack([_e("promote", "2", "1")]) == ["1", "2"]
    # Version 4 was set by hand between two recorded moves.
    assert champion_stack([_e("promote", "2", "1"), _e("force", "5", "4")]) == ["1", "2", "4", "5"]


def test_gate_margins_and_backtest_minimum_are_validated_settings(tmp_path):
    from leadscore.settings import Settings

    s = Settings(home=tmp_path)
    assert (s.gate_auc_tolerance, s.gate_max_ece, s.backtest_min_labelled) == (0.005, 0.05, 200)
    for field, bad in (("gate_auc_tolerance", -0.01), ("gate_max_ece", 0),
                       ("backtest_min_labelled", 0)):
        with pytest.raises(ValidationError, match=field):
            Settings(home=tmp_path, **{field: bad})
