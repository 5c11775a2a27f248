"""Backtests: every committed batch run whose horizon has passed, against what followed.

``leadscore backtest --scores OUT (--data DIR | --dataset SPEC)`` reads the score history
that ``leadscore rescore --out OUT`` keeps (``OUT/history/run=<run_id>/``: one slim row
per lead per committed run, and a copy of the run's ``_health.json``; the runs
themselves are pruned, the history is not). For each run whose ``as_of`` is at least
one horizon before the data's end, it follows every score forward with the report's
own code (:func:`leadscore.report.score_outcomes`: converted within the horizon after
the run's ``as_of``) and reports, on the leads the model scored:

- realised conversion by grade, with a 95% Wilson interval
  (:func:`leadscore.report.wilson_interval`);
- ROC AUC (scikit-learn) with its 95% DeLong interval (:func:`training.evaluate.roc_auc_ci`),
  and the top decile's lift (:func:`training.evaluate.decile_table`);
- calibration: ECE (10 equal-count bins) and Brier (:func:`leadscore.report.calibration_metrics`);
- next to them, the label-free estimate the run made at the time (CBPE, ``estimate`` in
  its ``_health.json``).

A run with fewer labelled model-scored leads than ``backtest_min_labelled`` (200 by
default) is refused, saying so; one whose horizon has not passed yet is "not due".
Leads the rules scored (cold starts, no model) are left out and counted: the estimate
covers the model's leads only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataValidationError, ValidationIssue
from leadscore.report import (
    DEFAULT_HORIZON,
    calibration_metrics,
    conversion_by_grade,
    score_outcomes,
    validate_scores,
    wilson_interval,
)

__all__ = ["RunBacktest", "backtest_runs", "history_runs", "log_backtests"]


@dataclass(frozen=True)
class RunBacktest:
    """One committed run, followed forward."""

    run_id: str
    as_of: pd.Timestamp
    model_version: str | None
    status: str
    """``ok``, ``refused`` (too few labelled leads) or ``not_due`` (horizon not passed)."""
    reason: str = ""
    n_scored: int = 0
    n_labelled: int = 0
    n_rules: int = 0
    """Leads of the run the rules scored (left out: the estimate covers the model's)."""
    grades: pd.DataFrame | None = None
    """grade, leads, converted, observed_rate, ci_low, ci_high, mean_probability, lift."""
    realised: dict[str, float] = field(default_factory=dict)
    estimate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "as_of": self.as_of.isoformat(),
            "model_version": self.model_version, "status": self.status, "reason": self.reason,
            "n_scored": self.n_scored, "n_labelled": self.n_labelled, "n_rules": self.n_rules,
            "grades": None if self.grades is None else [
                {k: _plain(v) for k, v in row.items()} for row in self.grades.to_dict("records")],
            "realised": {k: _plain(v) for k, v in self.realised.items()},
            "estimate": self.estimate,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    return value


def history_runs(out: Path) -> list[tuple[str, Path]]:
    """``(run_id, folder)`` of every run in ``OUT/history``, oldest first."""
    history = Path(out) / "history"
    if not history.is_dir():
        raise DataValidationError([ValidationIssue(
            table="backtest", field="--scores", value=str(out),
            expected="the --out folder of 'leadscore rescore', holding history/ (one folder "
                     "per committed run); it has none")])
    runs = sorted((p.name.removeprefix("run="), p) for p in history.iterdir()
                  if p.is_dir() and p.name.startswith("run="))
    if not runs:
        raise DataValidationError([ValidationIssue(
            table="backtest", field="--scores", value=str(out),
            expected="at least one committed rescore run in history/; it is empty")])
    return runs


def _health_of(out: Path, run_id: str, folder: Path) -> dict[str, Any] | None:
    for path in (folder / "_health.json", Path(out) / "runs" / run_id / "_health.json"):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def backtest_runs(
    out: Path,
    leads: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    min_labelled: int = 200,
) -> list[RunBacktest]:
    """Backtest every run of ``OUT/history`` against ``leads``' outcomes up to ``as_of``.

    ``leads`` is in the report's shape (lead_id, created_at, converted_at,
    disqualified_at), dated: a label without a date cannot say what followed a score.
    """
    if min_labelled < 1:
        raise ValueError("The 'min_labelled' parameter of backtest_runs must be a positive "
                         f"int. Got {min_labelled!r} instead.")
    results = []
    for run_id, folder in history_runs(out):
        rows = pd.read_parquet(folder)
        health = _health_of(out, run_id, folder)
        estimate = None if health is None else health.get("estimate")
        if rows.empty:
            continue
        run_as_of = pd.Timestamp(rows["as_of"].iloc[0])
        run_as_of = (run_as_of.tz_localize("UTC") if run_as_of.tzinfo is None
                     else run_as_of.tz_convert("UTC"))
        versions = rows.loc[rows["scored_by"] == "model", "model_version"].dropna().unique()
        version = str(versions[0]) if len(versions) else None
        base = {"run_id": run_id, "as_of": run_as_of, "model_version": version,
                "n_scored": len(rows), "estimate": estimate}
        if run_as_of + horizon > as_of:
            results.append(RunBacktest(
                **base, status="not_due",
                reason=f"its {horizon.days}-day horizon ends {(run_as_of + horizon).date()}, "
                       f"after the data's end {as_of.date()}"))
            continue
        model_rows = rows[rows["scored_by"] == "model"]
        n_rules = len(rows) - len(model_rows)
        # The history keeps no route; the backtest reads none.
        scores = validate_scores(model_rows.assign(route="sales"), lead_ids=leads["lead_id"])
        outcomes = score_outcomes(scores, leads, as_of=as_of, horizon=horizon).frame
        n = len(outcomes)
        if n < min_labelled:
            results.append(RunBacktest(
                **base, status="refused", n_labelled=n, n_rules=n_rules,
                reason=f"{n} labelled model-scored leads, fewer than the minimum "
                       f"{min_labelled} (LEADSCORE_BACKTEST_MIN_LABELLED)"))
            continue
        results.append(RunBacktest(**base, status="ok", n_labelled=n, n_rules=n_rules,
                                   grades=_grades(outcomes), realised=_realised(outcomes)))
    return results


def _grades(outcomes: pd.DataFrame) -> pd.DataFrame:
    table = conversion_by_grade(outcomes)
    low, high = wilson_interval(table["converted"].to_numpy(), table["leads"].to_numpy())
    return table.assign(ci_low=low, ci_high=high)


def _realised(outcomes: pd.DataFrame) -> dict[str, float]:
    from training.evaluate import decile_table, roc_auc_ci

    y = outcomes["converted"].to_numpy(dtype=int)
    p = outcomes["probability"].to_numpy(dtype=float)
    calibration = calibration_metrics(outcomes)
    auc, low, high = roc_auc_ci(y, p)
    lift = float(decile_table(y, p).loc[1, "lift"]) if y.any() else float("nan")
    return {"conversion_rate": float(y.mean()), "mean_probability": float(p.mean()),
            "roc_auc": auc, "roc_auc_low": low, "roc_auc_high": high,
            "top_decile_lift": lift, "ece": calibration["ece"], "brier": calibration["brier"]}


def log_backtests(results: list[RunBacktest], settings: Any) -> list[str]:
    """Log each backtested run's figures to the MLflow run of the model version that
    scored it; return what could not be logged, and why.

    Metrics ``backtest.<name>`` with ``step`` = the run's ``as_of`` in days since 1970
    (MLflow plots them over runs), and a version tag ``backtest.<as_of date>`` with the
    figures as JSON.
    """
    from mlflow.exceptions import MlflowException

    from training import tracking

    client = tracking.configure(settings)
    skipped = []
    for r in results:
        if r.status != "ok" or r.model_version is None:
            continue
        try:
            mv = client.get_model_version(settings.model_name, r.model_version)
        except MlflowException as exc:
            skipped.append(f"run {r.run_id}: {settings.model_name} version {r.model_version} "
                           f"is not in the registry ({exc.error_code})")
            continue
        step = int(r.as_of.timestamp() // 86_400)
        at = int(r.as_of.timestamp() * 1000)
        figures = {**r.realised, **{f"grade_{g}_rate": v for g, v in
                                    zip(r.grades["grade"], r.grades["observed_rate"],
                                        strict=True)}}
        if r.estimate:
            figures.update({k: r.estimate[k] for k in (
                "expected_conversion_rate", "expected_roc_auc", "expected_top_decile_lift")
                if r.estimate.get(k) is not None})
        for key, value in figures.items():
            if value is not None and math.isfinite(value):
                client.log_metric(mv.run_id, f"backtest.{key}", float(value), timestamp=at,
                                  step=step)
        client.set_model_version_tag(
            settings.model_name, r.model_version, f"backtest.{r.as_of.date()}",
            json.dumps({"run_id": r.run_id, "n": r.n_labelled,
                        **{k: round(v, 4) for k, v in figures.items()
                           if v is not None and math.isfinite(v)}})[:5000])
    return skipped
