"""Rescoring a spec's whole base: any source the spec reads, the batch job's output.

``leadscore rescore --dataset SPEC --out DIR`` calls :func:`rescore_spec`. It reads the
spec's tables the way training does (:func:`features.spec.load_tables`: files, DuckDB
queries or a database URL, with the spec's row policies), scores every open lead at
``as_of`` (created before it, neither converted nor disqualified before it; every lead
of a spec without time) with the model's feature set on the vectorised path, and
writes the batch job's own output (:data:`serving.batch.OUTPUT_SCHEMA`), committed the
same way (:func:`serving.batch.commit_run`): the run is written under ``.staging/`` in
batches of leads (one part file each), renamed into ``runs/<run_id>/``, ``scores`` is
swapped to it in one rename, the run is appended to the score history (``history/``,
which the service's trends read) and old runs are pruned, under the same one-writer lock.

The values equal ``POST /score``'s for the same leads to 1e-9
(``tests/serving/test_spec_batch.py``): the live path the API uses and the vectorised
path here are held bit for bit to each other by the feature property tests.

It runs in process, not on Dask: a CRM's own base is usually a few thousand to a few
hundred thousand leads, which one process scores in seconds, without the seconds a
cluster takes to start (the built-in batch job's Dask path is for millions). A refusal (a model of another spec, a bad table) leaves
nothing behind: it happens before anything is written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.drift import Reference
from features.errors import LeadscoreError
from features.online import features_at
from serving.batch import (
    _current_run,
    _prepare_out,
    _run_lock,
    _write_atomic,
    _write_json_atomic,
    commit_run,
    matrix_columns,
    result_table,
    run_estimate,
)
from serving.scorer import explain_blanks, has_history, rules_records
from serving.spec_scoring import cold_start_rules
from serving.whatif import DECAY_COLUMNS, batch_decay, model_at_times, with_decay_columns

__all__ = ["SpecRescoreResult", "rescore_spec", "DECAY_COLUMNS", "with_decay_columns"]


@dataclass(frozen=True)
class SpecRescoreResult:
    """What one spec rescore did."""

    run_id: str
    run_dir: Path
    as_of: pd.Timestamp
    n_leads: int
    n_scored: int
    model_version: str | None
    grades: dict[str, int]
    health: dict[str, Any] | None = None
    """Drift of this run's model-scored leads against the model's reference
    (``runs/<run_id>/_health.json``); None for a model that ships no reference."""

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "run_dir": str(self.run_dir), "as_of": self.as_of.isoformat(),
                "n_leads": self.n_leads, "n_scored": self.n_scored,
                "model_version": self.model_version, "grades": self.grades,
                "health": None if self.health is None else {
                    k: v for k, v in self.health.items() if k != "features"}}


def _open(leads: pd.DataFrame, as_of: pd.Timestamp, has_time: bool) -> np.ndarray:
    """Leads open at ``as_of``: created before it, neither converted nor disqualified before."""
    keep = np.ones(len(leads), dtype=bool)
    if has_time:
        keep &= (leads["created_at"] < as_of).to_numpy()
        for column in ("converted_at", "disqualified_at"):
            if column in leads.columns:
                keep &= ~(leads[column] < as_of).fillna(False).to_numpy(bool)
    return keep


def rescore_spec(
    spec_path: str | Path,
    out: str | Path,
    model: Any,
    *,
    model_name: str,
    model_version: str | None,
    data_path: str | Path | None = None,
    as_of: pd.Timestamp | None = None,
    top_reasons: int = 3,
    batch_size: int = 50_000,
    keep_runs: int = 2,
    rules: Any = None,
    cold_start_policy: str = "auto",
    psi_thresholds: tuple[float, float] = (0.10, 0.25),
    decay: bool = False,
    matrix_thresholds: Any = None,
) -> SpecRescoreResult:
    """Score every open lead of a spec's data with ``model`` and commit the run to ``out``.

    Leads are scored ``batch_size`` at a time, one part file each; the run is committed
    as the built-in job's is (:func:`serving.batch.commit_run`): ``scores`` swapped to
    it, appended to ``history/``, and all but the ``keep_runs`` newest runs pruned.

    Cold starts follow the service's policy (:func:`serving.spec_scoring.cold_start_rules`):
    when the rules are preferred, open leads with no activity before ``as_of`` are
    scored by ``rules`` (the operator's spec rules), else by the model's shipped ones.

    With ``decay``, every part file also carries where each lead's score goes if nothing
    new happens (:data:`serving.whatif.DECAY_COLUMNS`), the API's ``decay`` computed on
    the vectorised path: every lead rescored at as_of + 1 ... 30 days with the events
    before as_of only, by what scored it (the model, or the cold-start rules), so a CRM
    can sort "call before it cools" by ``grade_drop_date``.

    Raises
    ------
    LeadscoreError
        When the model was not trained on this spec (nothing is written).
    SpecError, DataValidationError
        For a bad spec or bad data (nothing is written).
    """
    if batch_size < 1:
        raise ValueError(f"The 'batch_size' parameter of rescore_spec must be a positive "
                         f"int. Got {batch_size!r} instead.")
    from features.build import data_end
    from features.spec import feature_set_of as spec_feature_set
    from features.spec import load_spec, load_tables

    spec = load_spec(spec_path)
    feature_set = spec_feature_set(spec)
    if str(model.feature_set_version) != feature_set.version:
        raise LeadscoreError(
            f"the model ({model_name} version {model_version}) was trained on feature set "
            f"{model.feature_set_version!r}, not on {spec.origin}'s {feature_set.version!r}; "
            "rescore with a model of this spec (--model-uri) or the spec it was trained on"
        )
    tables = load_tables(spec, data_path=data_path)
    leads = tables.leads.reset_index(drop=True)
    acts = tables.activities
    if acts is None:
        from training.from_spec import empty_activities

        acts = empty_activities()
    if as_of is None:
        as_of = data_end(leads, acts) if tables.has_time else pd.Timestamp.now(tz="UTC")
    as_of = pd.Timestamp(as_of)
    as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of.tz_convert("UTC")
    open_leads = leads[_open(leads, as_of, tables.has_time)].reset_index(drop=True)
    if not tables.has_time:  # features_at needs a creation time; a flat export has none
        open_leads = open_leads.assign(created_at=as_of)
    cold_rules = cold_start_rules(model, spec, cold_start_policy, rules)
    cold = np.zeros(len(open_leads), dtype=bool)
    if cold_rules is not None:
        cold = ~has_history(open_leads, acts, pd.Series(as_of, index=open_leads.index))
    warm_leads = open_leads.loc[~cold].reset_index(drop=True)
    X = features_at(warm_leads, acts, as_of, feature_set=feature_set)
    cold_leads = open_leads.loc[cold].reset_index(drop=True)
    standby = rules if rules is not None else cold_rules
    rules_version = "none" if standby is None else str(standby.provenance)
    identity = {"spec": spec.origin, "fingerprint": tables.fingerprint,
                "as_of": as_of.isoformat(), "model": f"{model_name}/{model_version}",
                "feature_set": feature_set.version, "top_reasons": top_reasons,
                "cold_start": "model" if cold_rules is None else rules_version,
                **({"decay": True} if decay else {})}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    run_id = f"{as_of.strftime('%Y%m%dT%H%M%SZ')}-{digest[:12]}"
    scored_at = pd.Timestamp.now(tz="UTC")

    model_at = model_at_times(model, feature_set)

    def rules_at(leads: pd.DataFrame, past: pd.DataFrame, when: pd.Series) -> pd.DataFrame:
        from rules_fallback import score_spec_leads as score_with_rules

        return score_with_rules(cold_rules, leads, past, when, reasons=False)

    out = Path(out)
    _prepare_out(out)
    grades: dict[str, int] = {}
    reference = Reference.from_dict(model.reference) if getattr(model, "reference", None) else None
    drift_counts: dict[str, np.ndarray] = {}
    model_probabilities: list[np.ndarray] = []
    with _run_lock(out):
        staging = out / ".staging" / f"{run_id}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            # In batches: explanations of a batch (leads x features) are the memory that
            # grows with the base; each batch is one part file of the run.
            batches = [("model", start) for start in range(0, len(X), batch_size)]
            batches += [("rules", start) for start in range(0, len(cold_leads), batch_size)]
            for part, (who, start) in enumerate(batches or [("model", 0)]):
                if who == "model":
                    chunk = X.iloc[start:start + batch_size]
                    frame = _score_batch(chunk, model, feature_set,
                                         as_of=as_of, top_reasons=top_reasons,
                                         model_name=model_name, model_version=model_version,
                                         rules_version=rules_version,
                                         thresholds=matrix_thresholds)
                    model_probabilities.append(frame["probability"].to_numpy(dtype=float))
                    decayed = (batch_decay(warm_leads.iloc[start:start + batch_size], acts,
                                           as_of, frame, model=model_at, rules=None)
                               if decay else None)
                    if reference is not None and len(chunk):
                        for name, c in reference.counts(
                                chunk, frame["probability"].to_numpy(dtype=float)).items():
                            drift_counts[name] = drift_counts.get(name, 0) + np.asarray(c)
                else:
                    batch = cold_leads.iloc[start:start + batch_size].reset_index(drop=True)
                    frame = _rules_batch(batch, acts, cold_rules, as_of=as_of,
                                         top_reasons=top_reasons, thresholds=matrix_thresholds)
                    decayed = (batch_decay(batch, acts, as_of, frame, model=None,
                                           rules=rules_at) if decay else None)
                for g, n in frame["grade"].value_counts().items():
                    grades[str(g)] = grades.get(str(g), 0) + int(n)
                table = result_table(frame, scored_at=scored_at, run_id=run_id)
                if decay:
                    table = with_decay_columns(table, decayed)
                _write_atomic(table, staging / f"part-{part:05d}.parquet")
            grades = dict(sorted(grades.items()))
            health = None
            if reference is not None:
                health = {"run_id": run_id, "as_of": as_of.isoformat(),
                          "model": f"{model_name}/{model_version}",
                          "scope": "leads scored by the model (cold starts the rules answered "
                                   "are not in it)",
                          **reference.report(drift_counts, labels=feature_set.field_labels(),
                                             warn=psi_thresholds[0], alert=psi_thresholds[1]),
                          "estimate": run_estimate(np.concatenate([np.empty(0), *model_probabilities]))}
                _write_json_atomic(health, staging / "_health.json")
            run_dir = commit_run(out, run_id, staging, {
                **identity, "summary": {"n_leads": len(leads), "n_scored": len(open_leads),
                                        "n_cold_start_rules": len(cold_leads),
                                        "grades": grades}}, keep_runs)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with_staging = out / ".staging"
            if with_staging.is_dir() and not any(with_staging.iterdir()):
                with_staging.rmdir()
    assert _current_run(out) == run_id
    return SpecRescoreResult(run_id, run_dir, as_of, len(leads), len(open_leads), model_version,
                             grades, health)


_COLUMNS = ["lead_id", "as_of", "probability", "score", "grade", "route", "scored_by",
            "fallback_reason", "model_name", "model_version", "rules_version", "reasons",
            "fit_score", "engagement_score", "matrix_route"]


def _rules_batch(leads: pd.DataFrame, acts: pd.DataFrame, rules: Any, *, as_of: pd.Timestamp,
                 top_reasons: int, thresholds: Any = None) -> pd.DataFrame:
    """Cold-start leads scored by the spec's rules, as ``POST /score`` answers them."""
    from rules_fallback import score_spec_leads as score_with_rules

    out = score_with_rules(rules, leads, acts, pd.Series(as_of, index=leads.index),
                           top_reasons=top_reasons, reasons=top_reasons > 0, parts=True)
    reasons = out["reasons"] if "reasons" in out.columns else [[]] * len(out)
    parts = matrix_columns(rules_records(out, list(leads["lead_id"]), [as_of] * len(out),
                                         "cold_start", thresholds, top_reasons))
    return pd.DataFrame({
        "lead_id": leads["lead_id"].to_numpy(), "as_of": as_of,
        "probability": out["probability"].to_numpy(dtype=float),
        "score": out["score"].to_numpy(dtype=int), "grade": out["grade"].astype(str).to_numpy(),
        "route": out["route"].astype(str).to_numpy(), "scored_by": "rules",
        "fallback_reason": "cold_start", "model_name": None, "model_version": None,
        "rules_version": str(rules.provenance), "reasons": [list(r) for r in reasons],
        **parts,
    }, columns=_COLUMNS)


def _score_batch(X: pd.DataFrame, model: Any, feature_set: Any, *, as_of: pd.Timestamp,
                 top_reasons: int, model_name: str, model_version: str | None,
                 rules_version: str = "none", thresholds: Any = None) -> pd.DataFrame:
    """One batch of open leads' features -> the batch output's rows (the API's values)."""
    names = model.feature_names
    rows = []
    if len(X):
        probability, contrib, _ = model.predict_margin_and_contributions(X[names])
        score, grade, route = model.grade(np.asarray(probability, dtype=float))
        parts = model.matrix().with_thresholds(thresholds).answer(contrib)
        records = X.to_dict("records")
        for i, record in enumerate(records):
            reasons = []
            if top_reasons > 0:
                impacts = dict(zip(names, np.asarray(contrib)[i].tolist(), strict=True))
                reasons = explain_blanks(feature_set.top_reasons(record, impacts, top_reasons))
            rows.append({
                "lead_id": record["lead_id"], "as_of": as_of,
                "probability": float(probability[i]), "score": int(score[i]),
                "grade": str(grade[i]), "route": str(route[i]), "scored_by": "model",
                "fallback_reason": None, "model_name": model_name,
                "model_version": model_version, "rules_version": rules_version,
                "reasons": reasons, "fit_score": parts[i]["fit"]["score"],
                "engagement_score": parts[i]["engagement"]["score"],
                "matrix_route": parts[i]["matrix_route"],
            })
    return pd.DataFrame(rows, columns=_COLUMNS)


