"""Explanations: contributions plus base equal the raw margin and agree with shap."""

from __future__ import annotations

import numpy as np
import pytest

from features.online import features_at
from features.schema import validate_activities, validate_leads
from rules_fallback import load_rules
from serving.scorer import Engine, ModelBundle, explain_one
from tests.serving.conftest import NOW


# Importing shap touches a matplotlib colormap API that matplotlib plans to deprecate.
@pytest.mark.filterwarnings(r"ignore:The set_\w+ function will be deprecated:PendingDeprecationWarning")
# shap notes that its output shape for LightGBM binary models changed; we check it.
@pytest.mark.filterwarnings("ignore:LightGBM binary classifier with TreeExplainer:UserWarning")
def test_contributions_add_up_and_match_shap_tree_explainer(lead_model, crm):
    import shap

    leads, acts = crm
    clean = validate_leads(leads.iloc[:50])
    a = validate_activities(acts[acts["lead_id"].isin(clean["lead_id"])],
                            lead_ids=clean["lead_id"]).frame
    X = features_at(clean, a, NOW)[lead_model.feature_names]
    contrib, base = lead_model.contributions(X)
    margin = lead_model.raw_margin(X)
    np.testing.assert_allclose(contrib.sum(axis=1) + base, margin, atol=1e-9)

    explainer = shap.TreeExplainer(lead_model.booster_)
    expected = explainer.shap_values(lead_model.prepare(X))
    if isinstance(expected, list):  # older shap: one array per class
        expected = expected[-1]
    np.testing.assert_allclose(contrib, expected, atol=1e-6)
    np.testing.assert_allclose(base, explainer.expected_value, atol=1e-6)


def test_explain_one_groups_every_contribution_by_field(lead_model, crm):
    leads, acts = crm
    bundle = ModelBundle(lead_model, "lead-scoring", "1", "champion", "models:/x/1", NOW)
    out = explain_one(leads.iloc[[3]], acts[acts["lead_id"] == leads["lead_id"].iloc[3]],
                      Engine(bundle, load_rules(), "model"), as_of=NOW)
    assert out["result"]["scored_by"] == "model"
    assert len(out["contributions"]) == len(lead_model.feature_names)
    total = sum(c["contribution"] for c in out["contributions"])
    assert abs(out["base_value"] + total - out["raw_margin"]) < 1e-9
    assert abs(sum(r.impact for r in out["reasons"]) - total) < 1e-9
    assert all(r.sentence for r in out["reasons"])
