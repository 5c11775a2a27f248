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


def test_a_long_history_keeps_its_newest_moves_within_mlflows_tag_limit():
    import json

    from training.promote import _fit

    entries = [{"version": str(i), "from": str(i - 1), "action": "promote",
                "at": "2026-12-02T17:00:00+00:00", "by": "cron@scheduler-host",
                "why": "promoted: ROC AUC 0.8123 vs champion 0.8101 (tolerance 0.005)"}
               for i in range(1, 101)]
    kept = json.loads(_fit(entries))
    assert len(json.dumps(kept, separators=(",", ":"))) <= 5000
    assert 10 < len(kept) < 100 and kept[-1]["version"] == "100"
    assert [int(e["version"]) for e in kept] == list(range(101 - len(kept), 101))
