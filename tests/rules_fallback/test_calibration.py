"""Fitting the points-to-probability map, and the rules' quality metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InsufficientDataError
from features.schema import validate_activities, validate_leads
from rules_fallback import fit_mapping, load_rules, points_to_probability, rules_metrics

RULES = load_rules()


def test_fit_mapping_recovers_a_known_logistic_map():
    rng = np.random.default_rng(0)
    points = rng.uniform(-40, 100, 20_000)
    labels = rng.random(20_000) < points_to_probability(points, -2.5, 0.04)
    fitted = fit_mapping(RULES, points, labels.astype(int))
    assert fitted.mapping.intercept == pytest.approx(-2.5, abs=0.15)
    assert fitted.mapping.slope == pytest.approx(0.04, abs=0.004)
    # Only the map changes: same rules, new provenance.
    assert fitted.rules == RULES.rules
    assert fitted.hash != RULES.hash


def test_fit_mapping_needs_both_classes():
    with pytest.raises(InsufficientDataError, match="both converted and unconverted"):
        fit_mapping(RULES, [1.0, 2.0, 3.0], [0, 0, 0])


def test_fit_mapping_refuses_rules_that_rank_backwards():
    points = np.linspace(0, 100, 200)
    with pytest.raises(InsufficientDataError, match="Revise the rules"):
        fit_mapping(RULES, points, (points < 50).astype(int))


@pytest.mark.parametrize(
    ("labels", "message"), [([0, 1], "one label per row"), ([0, 2, 1], "0 and 1 only")]
)
def test_fit_mapping_checks_its_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        fit_mapping(RULES, [1.0, 2.0, 3.0], labels)


def test_rules_metrics_on_snapshots():
    as_of = pd.Timestamp("2026-03-01T00:00:00Z")
    leads = validate_leads(
        pd.DataFrame({"lead_id": ["a", "b", "c", "d"], "created_at": ["2026-01-01T00:00:00Z"] * 4})
    )
    activities = validate_activities(
        pd.DataFrame(
            {
                "lead_id": ["a", "a", "b"],
                "occurred_at": ["2026-02-27T00:00:00Z", "2026-02-28T00:00:00Z", "2026-02-20T00:00:00Z"],
                "type": ["demo_request", "pricing_page_view", "email_click"],
            }
        )
    ).frame
    metrics = rules_metrics(RULES, leads, activities, as_of, [1, 1, 0, 0])
    assert metrics["roc_auc"] == 1.0
    assert metrics["base_rate"] == 0.5
    assert set(metrics) == {"roc_auc", "average_precision", "log_loss", "brier", "base_rate", "n"}
