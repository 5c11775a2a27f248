"""A bounded hyper-parameter search over a small space, by the CV training already uses.

``leadscore train --tune 120s`` (a time budget) or ``--tune 50`` (a number of trials)
searches :data:`SEARCH_SPACE` before the model is fitted. Each trial is scored by the
very held-out figure the fit will use (:meth:`training.model.LeadModel.search_objective`):

- small data that is cross-fitted (:mod:`training.crossfit`): the mean held-out ROC AUC
  of the same folds, at the round count early stopping picks;
- otherwise: the ROC AUC on the validation window, early-stopped as in the fit.

The test window is never read, so the test figures of a tuned model stay honest. The
first trial is always the defaults (:data:`training.model.DEFAULT_PARAMS`), so a search
never returns parameters that scored worse than the defaults on this objective. The
best trial's parameters then override the defaults for the fit.

**Why Optuna.** Its TPE sampler is seeded (the same data and seed give the same trials),
it takes a wall-clock budget or a trial count as given, it ships no compiled code and
it is widely maintained. FLAML was the other candidate: it couples the search to its own
estimator wrappers and cost model, where this search has to score LeadModel's own
objective (its vocabularies, class weight, folds and purge). Optuna's LightGBM pruning
callback lives in a separate package (optuna-integration), so trials are not pruned:
with early stopping a trial costs one cross-validation, about 1 to 3 s on 7,000 rows.

Every trial is logged as a nested MLflow run of the training run (its parameters, held-
out AUC, rounds and seconds), and the chosen parameters on the parent
(:func:`log_trials`).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["SEARCH_SPACE", "TuneBudget", "TrialRecord", "TuneResult", "tune", "log_trials"]

logger = logging.getLogger("leadscore.training")
progress = logging.getLogger("leadscore.training.tune")
"""One INFO line per finished trial; ``leadscore train --tune`` prints them as they come,
since a search on a large base runs for minutes to hours."""

SEARCH_SPACE: dict[str, tuple[str, float, float]] = {
    # name: (kind, low, high); every range is searched on a log scale but
    # feature_fraction's. The defaults (31, 200, 0.03, 1.0, 0.7) lie inside each range.
    "num_leaves": ("int_log", 7, 63),
    "min_data_in_leaf": ("int_log", 10, 400),
    "learning_rate": ("float_log", 0.01, 0.2),
    "lambda_l2": ("float_log", 1e-3, 30.0),
    "feature_fraction": ("float", 0.4, 1.0),
}
"""What ``--tune`` searches: tree size, leaf size, step, L2 regularisation and column
sampling. Categorical smoothing, bagging and the class weight stay at their defaults:
widening the space makes a short budget find noise rather than a better model."""

_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TuneBudget:
    """How long to search: ``seconds`` of wall time, or a number of ``trials``."""

    seconds: float | None = None
    trials: int | None = None

    def __post_init__(self) -> None:
        if (self.seconds is None) == (self.trials is None):
            raise ValueError("A TuneBudget has either seconds or trials, not both or neither.")
        if self.seconds is not None and not (0 < self.seconds <= 24 * 3600):
            raise ValueError(f"The tuning budget must be between 1 second and 24 hours; got "
                             f"{self.seconds:g} s.")
        if self.trials is not None and not (1 <= self.trials <= 10_000):
            raise ValueError(f"The number of tuning trials must be between 1 and 10000; got "
                             f"{self.trials}.")

    @classmethod
    def parse(cls, text: str) -> TuneBudget:
        """``"120s"``, ``"5m"``, ``"1h"`` (time) or ``"50"`` (trials)."""
        match = _BUDGET.match(str(text))
        if not match:
            raise ValueError(f"{text!r} is not a tuning budget: expected a duration such as "
                             "'120s', '5m' or '1h', or a number of trials such as '50'")
        number, unit = float(match.group(1)), (match.group(2) or "").lower()
        if not unit:
            if number != int(number):
                raise ValueError(f"{text!r} is not a whole number of trials; give a duration "
                                 "with a unit ('90s') or a whole number ('50')")
            return cls(trials=int(number))
        seconds = number * {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}[unit]
        return cls(seconds=seconds)

    def __str__(self) -> str:
        return f"{self.seconds:g}s" if self.seconds is not None else f"{self.trials} trials"


@dataclass(frozen=True)
class TrialRecord:
    number: int
    params: dict[str, float | int]
    value: float
    """Held-out ROC AUC (mean over folds, or on the validation window)."""
    rounds: int
    seconds: float
    defaults: bool = False
    capped: bool = False
    """The round cap ended the trial before early stopping could: its best round lies
    within the patience of the cap, so more rounds might have scored higher."""


@dataclass
class TuneResult:
    """What the search tried and what it chose."""

    best_params: dict[str, float | int]
    best_value: float
    default_value: float
    objective: str
    budget: str
    trials: list[TrialRecord] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best_trial(self) -> TrialRecord:
        return max(self.trials, key=lambda t: (t.value, -t.number))

    def summary(self) -> dict[str, Any]:
        """Plain values for the run and the CLI's JSON."""
        return {
            "budget": self.budget, "objective": self.objective, "trials": len(self.trials),
            "seconds": round(self.seconds, 2), "best_trial": self.best_trial.number,
            "best_value": self.best_value, "default_value": self.default_value,
            "best_params": dict(self.best_params),
            "best_capped": self.best_trial.capped,
            "capped_trials": sum(t.capped for t in self.trials),
        }


def _suggest(trial: Any) -> dict[str, float | int]:
    params: dict[str, float | int] = {}
    for name, (kind, low, high) in SEARCH_SPACE.items():
        if kind == "int_log":
            params[name] = trial.suggest_int(name, int(low), int(high), log=True)
        elif kind == "float_log":
            params[name] = trial.suggest_float(name, float(low), float(high), log=True)
        else:
            params[name] = trial.suggest_float(name, float(low), float(high))
    return params


def _short(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


def tune(
    objective: Callable[[Mapping[str, Any]], tuple[float, int]],
    budget: TuneBudget,
    *,
    defaults: Mapping[str, Any],
    objective_name: str,
    random_state: int = 0,
    round_cap: int | None = None,
    patience: int = 0,
) -> TuneResult:
    """Search :data:`SEARCH_SPACE` within ``budget``; trial 0 is ``defaults``.

    ``objective`` maps parameter overrides to (held-out ROC AUC, rounds); higher is
    better. A trial whose AUC cannot be computed (NaN) counts as failed, not as best.
    With ``round_cap`` (the objective's ``num_boost_round``) and ``patience`` (its early
    stopping rounds), a trial whose best round is within ``patience`` of the cap is
    marked ``capped``: at a low learning rate the cap, not the data, ended it. The
    search warns when the best trial is capped.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    records: list[TrialRecord] = []

    def run(trial: optuna.Trial) -> float:
        params = _suggest(trial)
        started = time.perf_counter()
        value, rounds = objective(params)
        seconds = time.perf_counter() - started
        is_default = trial.number == 0
        capped = round_cap is not None and int(rounds) + patience > round_cap
        records.append(TrialRecord(trial.number, params, float(value), int(rounds), seconds,
                                   defaults=is_default, capped=capped))
        best = max((r.value for r in records if math.isfinite(r.value)), default=float("nan"))
        # Numbered from 0 like the nested runs ("tune trial 3") and the summary's best.
        progress.info("tuning: trial %d (%d%s) %s: held-out AUC %.4f at %d rounds%s in %.1f s "
                      "(best so far %.4f)", trial.number, trial.number + 1,
                      f" of {budget.trials}" if budget.trials else f" in {budget}",
                      "the defaults" if is_default else _short(params), value, rounds,
                      f" (the cap of {round_cap})" if capped else "", seconds, best)
        if not math.isfinite(value):
            raise optuna.TrialPruned(f"held-out AUC is {value}")
        return float(value)

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=random_state, n_startup_trials=8),
    )
    study.enqueue_trial({k: defaults[k] for k in SEARCH_SPACE})
    started = time.perf_counter()
    study.optimize(run, n_trials=budget.trials, timeout=budget.seconds)
    elapsed = time.perf_counter() - started
    finite = [r for r in records if math.isfinite(r.value)]
    if not finite:
        raise ValueError("Tuning: no trial gave a held-out ROC AUC (does the held-out part "
                         "hold both classes?)")
    best = max(finite, key=lambda r: (r.value, -r.number))
    default = records[0]
    logger.info("tuning: %d trials in %.1f s; best %.4f (trial %d) vs defaults %.4f",
                len(records), elapsed, best.value, best.number, default.value)
    if best.capped:
        # On the progress logger: ``leadscore train --tune`` shows it once, with the trials.
        progress.warning(
            "tuning: the best trial (%d, learning rate %.3g) reached the cap of %s rounds "
            "before early stopping ended it; a larger --num-boost-round may score higher",
            best.number, best.params.get("learning_rate", float("nan")), round_cap)
    return TuneResult(best_params=dict(best.params), best_value=best.value,
                      default_value=default.value, objective=objective_name,
                      budget=str(budget), trials=records, seconds=elapsed)


def log_trials(result: TuneResult, parent_run_id: str, experiment_id: str) -> None:
    """Each trial as a nested run of ``parent_run_id``; the search's summary on the parent."""
    from mlflow.entities import Metric, Param, RunTag

    import mlflow

    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    for record in result.trials:
        child = client.create_run(experiment_id, run_name=f"tune trial {record.number}", tags={
            "mlflow.parentRunId": parent_run_id, "leadscore.tune_trial": str(record.number),
            "leadscore.tune_defaults": str(record.defaults).lower(),
        })
        metrics = [Metric("seconds", record.seconds, now, 0), Metric("rounds", record.rounds, now, 0),
                   Metric("round_capped", float(record.capped), now, 0)]
        if math.isfinite(record.value):
            metrics.append(Metric("heldout_roc_auc", record.value, now, 0))
        client.log_batch(child.info.run_id, metrics=metrics,
                         params=[Param(k, str(v)) for k, v in record.params.items()])
        client.set_terminated(child.info.run_id,
                              "FINISHED" if math.isfinite(record.value) else "FAILED")
    summary = result.summary()
    client.log_batch(
        parent_run_id,
        metrics=[Metric("tune_best_heldout_auc", result.best_value, now, 0),
                 Metric("tune_default_heldout_auc", result.default_value, now, 0),
                 Metric("tune_trials", len(result.trials), now, 0),
                 Metric("tune_seconds", result.seconds, now, 0)],
        params=[Param("tune_budget", result.budget), Param("tune_objective", result.objective),
                Param("tune_best_trial", str(summary["best_trial"])),
                *[Param(f"tune.{k}", str(v)) for k, v in result.best_params.items()]],
        tags=[RunTag("tuned", "true")],
    )
    client.log_dict(parent_run_id, {"summary": summary,
                                    "trials": [asdict(t) for t in result.trials]},
                    "tuning/trials.json")
