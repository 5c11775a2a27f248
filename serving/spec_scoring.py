"""Scoring the leads of a spec's model: the CRM's own fields in, the same answers out.

The built-in contract's core (:mod:`serving.scorer`) is reused where the logic is the
same: the model's probability, grade, route and TreeSHAP reasons come from
``_rows_from_features``, here with the spec's feature set grouping contributions into
the spec's business fields and sentences. What differs is the boundary: leads arrive as
:class:`serving.spec_contract.SpecContract` models, become
:class:`features.live.LiveLead` by the loader's own rules, and get their features from
the live path with the model's feature set.

What is not here yet: a rules fallback for spec models. With no model (``no_model``)
the service answers 503 naming the spec; a lead the model fails on fails the call.
Cold-start leads are scored by the model (every lead of a flat export has no history).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataValidationError, LeadscoreError, ValidationIssue
from features.live import LiveLead, live_features
from serving.scorer import Engine, ModelBundle, _rows_from_features
from serving.spec_contract import SpecContract

__all__ = ["NoSpecModel", "score_spec_leads", "spec_smoke_test"]


class NoSpecModel(LeadscoreError):
    """No model of the served spec is loaded, and spec models have no rules fallback yet."""


def _check(leads: Sequence[Any], lives: Sequence[LiveLead]) -> None:
    """What pydantic leaves unchecked: duplicate ids, blank ids, created after as_of."""
    issues = []
    seen: dict[str, int] = {}
    for i, (lead, live) in enumerate(zip(leads, lives, strict=True)):
        lead_id = lead.lead_id
        if not lead_id.strip():
            issues.append(ValidationIssue(table="leads", field="lead_id", value=lead_id,
                                          expected="is blank; every lead needs an id", row=i))
        elif lead_id in seen:
            issues.append(ValidationIssue(
                table="leads", field="lead_id", value=lead_id,
                expected=f"is a duplicate of leads[{seen[lead_id]}]; ids must be unique",
                row=i, lead_id=lead_id))
        seen.setdefault(lead_id, i)
        if live.created_ns > live.as_of_ns:
            issues.append(ValidationIssue(
                table="leads", field="created_at", value=str(lead.created_at),
                expected="is after the lead's as_of; a lead cannot be scored before it exists",
                row=i, lead_id=lead_id))
    if issues:
        raise DataValidationError(issues)


def score_spec_leads(
    leads: Sequence[Any],
    default_as_of: datetime,
    engine: Engine,
    contract: SpecContract,
    *,
    top_reasons: int = 3,
) -> list[dict[str, Any]]:
    """One result row per lead, in order, as :func:`serving.scorer.score_payloads` gives.

    Raises
    ------
    NoSpecModel
        When no model of the spec is loaded.
    DataValidationError
        For what pydantic does not check (blank or duplicate ids, created after as_of).
    """
    bundle = engine.model
    if bundle is None:
        raise NoSpecModel(
            f"no model of spec {contract.spec.name!r} is loaded yet; train one "
            f"('leadscore train --dataset SPEC --promote') and the service picks it up"
        )
    feature_set = contract.feature_set
    lives = [contract.live_lead(lead, default_as_of) for lead in leads]
    _check(leads, lives)
    rows = [live_features(live, feature_set) for live in lives]
    names = bundle.model.feature_names
    X = {name: [row[name] for row in rows] for name in names}
    stamps = [pd.Timestamp(live.as_of_ns, unit="ns", tz="UTC") for live in lives]
    out = _rows_from_features(bundle, [lead.lead_id for lead in leads], stamps, X,
                              rows if top_reasons > 0 else None, top_reasons,
                              reasons_of=feature_set.reasons_for)
    for row in out:
        row["rules_version"] = "none"  # no rules fallback for spec models yet (see above)
    return out


def spec_smoke_test(bundle: ModelBundle) -> None:
    """One lead with nothing known, through a spec model; raise if anything is off."""
    model = bundle.model
    feature_set = model.feature_set()
    now = pd.Timestamp.now(tz="UTC").floor("s").value
    live = LiveLead(attributes={}, created_ns=now - 30 * 86_400 * 10**9, as_of_ns=now,
                    times=[], types=[], urls=[], campaigns=[])
    row = live_features(live, feature_set)
    X = {name: [row[name]] for name in model.feature_names}
    probability, contrib, _ = model.predict_margin_and_contributions(X)
    if not 0.0 <= float(probability[0]) <= 1.0:
        raise ValueError(f"the smoke prediction gave probability {probability[0]!r}")
    margin = np.asarray(model.raw_margin(X), dtype=float)
    _, base = model.contributions(X)
    if not np.allclose(np.asarray(contrib).sum(axis=1) + base, margin, atol=1e-6):
        raise ValueError("contributions plus base value do not add up to the raw margin")
    feature_set.reasons_for(row, dict(zip(model.feature_names, np.asarray(contrib)[0].tolist(),
                                          strict=True)))
