"""Scoring the leads of a spec's model: the CRM's own fields in, the same answers out.

The built-in contract's core (:mod:`serving.scorer`) is reused where the logic is the
same: the model's probability, grade, route and TreeSHAP reasons come from
``_rows_from_features``, here with the spec's feature set grouping contributions into
the spec's business fields and sentences. What differs is the boundary: leads arrive as
:class:`serving.spec_contract.SpecContract` models, become
:class:`features.live.LiveLead` by the loader's own rules, and get their features from
the live path with the model's feature set.

The fallback is a rules file written for the spec (``leadscore rules init --dataset``,
:func:`rules_fallback.score_spec_leads`), passed as ``rules``: it answers every lead
when no model of the spec is loaded (``no_model``) and a lead the model fails on
(``model_error``). Without one, no model is a 503 naming the spec and a model failure
fails the call.

Cold starts (a lead with no activity before its as_of, for a spec with an activity
log) follow the same policy as the built-in contract's
(:func:`serving.scorer.cold_start_preference`): with ``auto``, what training measured
on the test window's no-activity leads, where the spec's starter rules were fitted on
the training window and shipped with the model (``LeadModel.cold_start_rules``). When
the rules are preferred, those leads are answered by the operator's spec rules if a
file is set, else by the rules shipped with the model, with ``fallback_reason:
cold_start``. A flat export has no activity log, so it has no cold start: the model
answers every lead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataValidationError, LeadscoreError, ValidationIssue
from features.live import LiveLead, live_features
from serving.scorer import (
    Engine,
    ModelBundle,
    _rows_from_features,
    cold_start_preference,
    explain_blanks,
    rules_records,
)
from serving.spec_contract import SpecContract

__all__ = ["NoSpecModel", "score_spec_leads", "explain_spec_lead", "spec_smoke_test",
           "cold_start_rules"]

logger = logging.getLogger("leadscore.serving")


class NoSpecModel(LeadscoreError):
    """No model of the served spec is loaded, and no rules file for the spec is set."""


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


def _frames(lives: Sequence[LiveLead], ids: Sequence[str], contract: SpecContract
            ) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The leads as the spec rules read them: SpecTables-shaped frames and their as_of."""
    leads = pd.DataFrame({"lead_id": pd.array(list(ids), dtype="string")})
    if contract.has_time:
        leads["created_at"] = pd.to_datetime([live.created_ns for live in lives], utc=True)
    for f in contract.fields:
        values = [live.attributes.get(f.name) for live in lives]
        leads[f.name] = (pd.array(values, dtype="float64") if f.kind == "numeric"
                         else pd.array(values, dtype="string"))
    acts = pd.DataFrame({
        "lead_id": pd.array([i for i, live in zip(ids, lives, strict=True) for _ in live.times],
                            dtype="string"),
        "occurred_at": pd.to_datetime([t for live in lives for t in live.times], utc=True),
        "type": pd.array([k for live in lives for k in live.types], dtype="string"),
    })
    as_of = pd.Series(pd.to_datetime([live.as_of_ns for live in lives], utc=True))
    return leads, acts, as_of


_SHIPPED: dict[int, tuple[Any, Any]] = {}
"""id(model) -> (model, its parsed cold-start rules): parsed once per loaded model."""


def cold_start_rules(model: Any, spec: Any, policy: str, rules: Any = None) -> Any:
    """The rules that answer a spec model's cold starts, or None when the model does.

    None when the spec has no activity log, or when the policy (with ``auto``, what
    training measured) prefers the model. Otherwise the operator's ``rules`` if given,
    else the starter rules shipped with the model; None if it ships none (a model
    trained before they were).
    """
    has_activities = getattr(getattr(spec, "tables", None), "activities", None) is not None
    if not has_activities or cold_start_preference(model, policy) != "rules":
        return None
    if rules is not None:
        return rules
    text = getattr(model, "cold_start_rules", "") or ""
    if not text:
        return None
    cached = _SHIPPED.get(id(model))
    if cached is None or cached[0] is not model:
        from rules_fallback.spec_rules import SpecVocabulary, parse_spec_rules

        parsed = parse_spec_rules(text, SpecVocabulary.from_spec(spec),
                                  source="the model's cold-start rules")
        _SHIPPED.clear()  # one served model at a time; never grow with reloads
        cached = _SHIPPED[id(model)] = (model, parsed)
    return cached[1]


def _rules_rows(rules: Any, lives: Sequence[LiveLead], ids: Sequence[str],
                contract: SpecContract, top_reasons: int, reason: str,
                thresholds: Any = None) -> list[dict[str, Any]]:
    from rules_fallback import score_spec_leads as score_with_rules

    leads, acts, as_of = _frames(lives, ids, contract)
    out = score_with_rules(rules, leads, acts if contract.has_activities else None, as_of,
                           top_reasons=top_reasons, reasons=top_reasons > 0, parts=True)
    rows = rules_records(out, ids, list(as_of), reason, thresholds, top_reasons)
    version = str(getattr(rules, "provenance", "spec rules"))
    for row in rows:
        row["rules_version"] = version
    return rows


def spec_rules_decay(rows: Sequence[dict[str, Any]], lives: Sequence[LiveLead], engine: Engine,
                     contract: SpecContract, rules: Any = None
                     ) -> Callable[[list[int]], list[dict[str, Any]]]:
    """:func:`serving.whatif.extend_rows`'s ``rules_decay`` for a spec call: each lead the
    rules answered decays by the rules that answered it (the cold-start rules for a cold
    start, the operator's spec rules otherwise)."""
    from rules_fallback import score_spec_leads as score_with_rules
    from serving.whatif import decay_by_rules

    bundle = engine.model
    cold_rules = (None if bundle is None else
                  cold_start_rules(bundle.model, contract.spec, engine.cold_start_policy, rules))

    def decay(positions: list[int]) -> list[dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for reason in dict.fromkeys(rows[i]["fallback_reason"] for i in positions):
            which = [i for i in positions if rows[i]["fallback_reason"] == reason]
            answering = cold_rules if reason == "cold_start" and cold_rules is not None else rules
            if answering is None:
                continue
            leads, acts, as_of = _frames([lives[i] for i in which],
                                         [rows[i]["lead_id"] for i in which], contract)
            has_acts = contract.has_activities

            def score(part: pd.DataFrame, past: pd.DataFrame, when: pd.Series,
                      answering: Any = answering, has_acts: bool = has_acts) -> pd.DataFrame:
                return score_with_rules(answering, part, past if has_acts else None, when,
                                        reasons=False)

            for i, answer in zip(which, decay_by_rules(score, leads, acts, as_of,
                                                       [rows[i] for i in which]), strict=True):
                out[i] = answer
        return [out.get(i) for i in positions]

    return decay


def score_spec_leads(
    leads: Sequence[Any],
    default_as_of: datetime,
    engine: Engine,
    contract: SpecContract,
    *,
    top_reasons: int = 3,
    rules: Any = None,
) -> list[dict[str, Any]]:
    """One result row per lead, in order, as :func:`serving.scorer.score_payloads` gives.

    ``rules`` is the spec's rules fallback (a ``SpecRuleSet``), or None.

    Raises
    ------
    NoSpecModel
        When no model of the spec is loaded and there are no spec rules.
    DataValidationError
        For what pydantic does not check (blank or duplicate ids, created after as_of).
    """
    bundle = engine.model
    lives = [contract.live_lead(lead, default_as_of) for lead in leads]
    _check(leads, lives)
    ids = [lead.lead_id for lead in leads]
    if bundle is None:
        if rules is None:
            raise NoSpecModel(
                f"no model of spec {contract.spec.name!r} is loaded yet, and no rules "
                "file for it (LEADSCORE_RULES_FILE, from 'leadscore rules init --dataset "
                "SPEC'); train one ('leadscore train --dataset SPEC --promote') and the "
                "service picks it up"
            )
        return _rules_rows(rules, lives, ids, contract, top_reasons, "no_model",
                           engine.matrix_thresholds)
    cold_rules = cold_start_rules(bundle.model, contract.spec, engine.cold_start_policy, rules)
    cold = ([i for i, live in enumerate(lives) if not live.has_history()]
            if cold_rules is not None else [])
    if cold:
        is_cold = set(cold)
        warm = [i for i in range(len(lives)) if i not in is_cold]
        answered: list[dict[str, Any] | None] = [None] * len(lives)
        for i, row in zip(cold, _rules_rows(cold_rules, [lives[i] for i in cold],
                                            [ids[i] for i in cold], contract, top_reasons,
                                            "cold_start", engine.matrix_thresholds),
                              strict=True):
            answered[i] = row
        if warm:
            for i, row in zip(warm, _model_rows(bundle, [lives[i] for i in warm],
                                                [ids[i] for i in warm], contract, top_reasons,
                                                rules, cold_rules, engine.matrix_thresholds),
                              strict=True):
                answered[i] = row
        return answered  # type: ignore[return-value]
    return _model_rows(bundle, lives, ids, contract, top_reasons, rules, cold_rules,
                       engine.matrix_thresholds)


def _model_rows(bundle: ModelBundle, lives: Sequence[LiveLead], ids: Sequence[str],
                contract: SpecContract, top_reasons: int, rules: Any,
                cold_rules: Any, thresholds: Any = None) -> list[dict[str, Any]]:
    """The model's rows for leads it answers; the rules' for all of them if it fails."""
    feature_set = contract.feature_set
    rows = [live_features(live, feature_set) for live in lives]
    names = bundle.model.feature_names
    X = {name: [row[name] for row in rows] for name in names}
    stamps = [pd.Timestamp(live.as_of_ns, unit="ns", tz="UTC") for live in lives]
    try:
        out = _rows_from_features(bundle, ids, stamps, X, rows if top_reasons > 0 else None,
                                  top_reasons, reasons_of=feature_set.top_reasons,
                                  thresholds=thresholds)
    except Exception:
        if rules is None:
            raise
        logger.exception("the model failed on a call of %d spec leads; the rules answer them",
                         len(ids))
        return _rules_rows(rules, lives, ids, contract, top_reasons, "model_error",
                           thresholds)
    standby = rules if rules is not None else cold_rules
    version = "none" if standby is None else str(getattr(standby, "provenance", "spec rules"))
    for row in out:
        row["rules_version"] = version
    return out


def explain_spec_lead(
    lead: Any, default_as_of: datetime, engine: Engine, contract: SpecContract, *,
    rules: Any = None,
) -> dict[str, Any]:
    """``POST /explain`` for a spec's model: every contribution, the base value, the reasons.

    The same shape as :func:`serving.scorer.explain_one`; when the rules answer (no
    model), contributions are empty and the reasons are the rules that fired.
    """
    from serving.scorer import _plain

    row = score_spec_leads([lead], default_as_of, engine, contract, top_reasons=50,
                           rules=rules)[0]
    bundle = engine.model
    if row["scored_by"] != "model" or bundle is None:
        return {"result": row, "base_value": None, "raw_margin": None, "contributions": [],
                "reasons": row["reasons"]}
    model = bundle.model
    values = live_features(contract.live_lead(lead, default_as_of), contract.feature_set)
    X = {name: [values[name]] for name in model.feature_names}
    contrib, base = model.contributions(X)
    contrib = np.asarray(contrib)
    impacts = dict(zip(model.feature_names, contrib[0].tolist(), strict=True))
    contributions = sorted(
        ({"feature": name, "value": _plain(values[name]), "contribution": float(c)}
         for name, c in zip(model.feature_names, contrib[0], strict=True)),
        key=lambda d: -abs(d["contribution"]),
    )
    grouped = explain_blanks(sorted(contract.feature_set.reasons_for(values, impacts),
                                    key=lambda r: -r.impact))
    return {"result": row, "base_value": float(base[0]),
            "raw_margin": float(base[0] + contrib[0].sum()), "contributions": contributions,
            "reasons": grouped}


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
