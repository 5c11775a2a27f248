"""Commands: ``train`` (fit, evaluate, log, register), ``promote`` (the gate),
``retrain`` (train + gate, with an exit code for schedulers) and ``rollback``."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli._common import console, echo_log, json_text, parse_duration, settings
from leadscore.cli.app import app

EXIT_PROMOTED = 0
"""retrain: the challenger passed the gate and is champion (or was already)."""
EXIT_REFUSED = 3
"""retrain: the gate refused the challenger; the champion did not move."""
# Bad input or data (a LeadscoreError, a bad option) exits 2, as every command does;
# anything unexpected exits 1 with a traceback.

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Directory with leads.parquet and activities.parquet "
    "(and truth.parquet for synthetic data).", file_okay=False)]
DatasetOpt = Annotated[Path | None, typer.Option(
    "--dataset", help="A dataset spec (YAML) for your own CRM export.", dir_okay=False)]
DatasetFileOpt = Annotated[Path | None, typer.Option(
    "--dataset-file", help="The export the spec describes, overriding its 'source'.",
    dir_okay=False)]
ExperimentOpt = Annotated[str, typer.Option("--experiment", help="MLflow experiment.")]
EveryOpt = Annotated[str | None, typer.Option(
    "--every", help="Snapshot spacing (default 7d, or the spec's 'training.every').")]
HorizonOpt = Annotated[str | None, typer.Option(
    "--horizon", help="Label horizon, also the purge gap between splits (default 90d, "
    "or the spec's 'training.horizon'). With a version-1 spec that maps created_at and "
    "converted_at, the label becomes 'converted within the horizon after created_at'.")]
AllowLeakyOpt = Annotated[list[str], typer.Option(
    "--allow-leaky", help="Keep this flagged column as a feature (repeatable).")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", help="Train on Dask: 'local' (2-worker LocalCluster) or tcp://host:port.")]
RoundsOpt = Annotated[int, typer.Option("--num-boost-round", min=1, help="Maximum trees.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (LightGBM, random splits).")]
CrossfitOpt = Annotated[str, typer.Option(
    "--crossfit", help="K-fold cross-fitting over train + validation: 'auto' "
    "(small data: below 30,000 rows or 300 validation positives; a time split's folds "
    "keep each lead's snapshots together), 'always' (any size), 'forward' (any size, "
    "forward-chaining folds on a time split) or 'never' (one validation window).")]
AssumeUtcOpt = Annotated[bool, typer.Option(
    "--assume-utc", help="Read naive timestamps in --data as UTC.")]
TuneOpt = Annotated[str | None, typer.Option(
    "--tune", help="Search a small space of LightGBM parameters first, by the same "
    "held-out folds or window the fit uses: a time budget ('120s', '5m') or a number of "
    "trials ('50'). Each trial is a nested MLflow run.")]


def _train_and_report(data, dataset, dataset_file, experiment, every, horizon, allow_leaky,
                      scheduler, num_boost_round, seed, crossfit, assume_utc, tune, *,
                      promote: bool, source_name: str, why: str | None = None):
    """Train (and optionally run the gate) as ``train`` does; print and echo the summary."""
    from features.errors import LeadscoreError
    from training.from_spec import training_data_for_spec
    from training.pipeline import (
        TrainOptions,
        resolve_allowed,
        train,
        training_data_from_dir,
    )

    if (data is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --data DIR or --dataset SPEC",
                                 param_hint="--data/--dataset")
    if scheduler is not None and scheduler != "local" and not scheduler.startswith("tcp://"):
        raise typer.BadParameter(f"{scheduler!r} is not 'local' or a tcp://host:port address",
                                 param_hint="--scheduler")
    from training.crossfit import CROSSFIT_MODES

    if crossfit not in CROSSFIT_MODES:
        raise typer.BadParameter(
            f"{crossfit!r} is not one of {', '.join(repr(m) for m in CROSSFIT_MODES)}",
            param_hint="--crossfit")
    from training.tune import TuneBudget

    try:
        budget = TuneBudget.parse(tune) if tune is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--tune") from exc
    cfg = settings()
    every_td = parse_duration(every, option="--every") if every else None
    horizon_td = parse_duration(horizon, option="--horizon") if horizon else None
    if data is not None:
        training_data = training_data_from_dir(
            data, every=every_td, horizon=horizon_td, assume_utc=assume_utc,
        )
    else:
        try:
            training_data = training_data_for_spec(dataset, dataset_file, every=every_td,
                                                   horizon=horizon_td)
        except ValueError as exc:
            # SpecError and DataValidationError are ValueErrors too, with their own report.
            if horizon is None or isinstance(exc, LeadscoreError):
                raise
            raise typer.BadParameter(str(exc), param_hint="--horizon") from exc
        if training_data.info.get("n_censored"):
            console.print(
                f"dropped {training_data.info['n_censored']} leads created less than "
                f"{training_data.info['horizon']} before the data's end "
                f"({training_data.info['data_end']}) and not converted: their label is not "
                "known yet", highlight=False,
            )
    try:
        resolve_allowed(allow_leaky, training_data)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--allow-leaky") from exc
    with echo_log("leadscore.training.tune") if budget is not None else nullcontext():
        result = train(training_data, cfg, TrainOptions(
            experiment=experiment, source_name=source_name, allow_leaky=tuple(allow_leaky),
            scheduler=scheduler, promote=promote, num_boost_round=num_boost_round,
            random_state=seed, crossfit=crossfit, promotion_why=why, tune=budget,
        ))
    m = result.metrics
    console.print(
        f"run {result.run_id}: test ROC AUC {m['roc_auc']:.4f}, ECE {m['ece']:.4f}, "
        f"Brier {m['brier']:.4f}"
        + (f", oracle AUC {m['oracle_roc_auc']:.4f}" if "oracle_roc_auc" in m else "")
        + (f", rules AUC {m['rules_roc_auc']:.4f}" if "rules_roc_auc" in m else ""),
        highlight=False,
    )
    tuning = getattr(result.model, "tuning_", None)
    if tuning is not None:
        chosen = {k: round(v, 4) for k, v in tuning.best_params.items()}
        console.print(
            f"tuning: {len(tuning.trials)} trials in {tuning.seconds:.0f} s by "
            f"{tuning.objective}: best {tuning.best_value:.4f} (trial "
            f"{tuning.best_trial.number}) against {tuning.default_value:.4f} for the "
            f"defaults; chosen {chosen}", highlight=False, soft_wrap=True)
    if result.leakage.flagged:
        console.print(f"leakage audit flagged {list(result.leakage.flagged)}; excluded "
                      f"{list(result.leakage.excluded)}", highlight=False)
        for sentence in result.leakage.flagged_table()["sentence"]:
            console.print(f"  {sentence}", highlight=False, soft_wrap=True)
    summary = {
        "run_id": result.run_id,
        "model_name": cfg.model_name,
        "model_version": result.model_version,
        "metrics": {k: m[k] for k in ("roc_auc", "pr_auc", "brier", "log_loss", "ece",
                                      "oracle_roc_auc", "rules_roc_auc") if k in m},
        "leakage_excluded": list(result.leakage.excluded),
        "leakage_flagged": [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
            for row in result.leakage.flagged_table().drop(columns="sentence")
            .round(4).to_dict("records")
        ],
        "split": result.split.summary(),
        "n_censored": training_data.info.get("n_censored"),
        "promotion": result.promotion.to_dict() if result.promotion else None,
        "tuning": tuning.summary() if tuning is not None else None,
    }
    typer.echo(json_text(summary))
    return result, summary


@app.command("train")
def train_command(
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    dataset_file: DatasetFileOpt = None,
    experiment: ExperimentOpt = "lead-scoring",
    promote: Annotated[bool, typer.Option(
        "--promote", help="Run the promotion gate afterwards.")] = False,
    every: EveryOpt = None,
    horizon: HorizonOpt = None,
    allow_leaky: AllowLeakyOpt = [],  # noqa: B006  (typer reads the default, never mutates it)
    scheduler: SchedulerOpt = None,
    num_boost_round: RoundsOpt = 1000,
    seed: SeedOpt = 0,
    crossfit: CrossfitOpt = "auto",
    tune: TuneOpt = None,
    assume_utc: AssumeUtcOpt = False,
) -> None:
    """Train a calibrated LightGBM model, log it to MLflow and register it as lead-scoring."""
    _train_and_report(data, dataset, dataset_file, experiment, every, horizon, allow_leaky,
                      scheduler, num_boost_round, seed, crossfit, assume_utc, tune,
                      promote=promote, source_name="leadscore train")


@app.command("retrain")
def retrain_command(
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    dataset_file: DatasetFileOpt = None,
    experiment: ExperimentOpt = "lead-scoring",
    every: EveryOpt = None,
    horizon: HorizonOpt = None,
    allow_leaky: AllowLeakyOpt = [],  # noqa: B006  (typer reads the default, never mutates it)
    scheduler: SchedulerOpt = None,
    num_boost_round: RoundsOpt = 1000,
    seed: SeedOpt = 0,
    crossfit: CrossfitOpt = "auto",
    tune: TuneOpt = None,
    assume_utc: AssumeUtcOpt = False,
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why this retrain runs (recorded in the alias history if it "
        "promotes). Default: the gate's reason.")] = None,
) -> None:
    """For schedulers: train on the export as it is now (its newest rows are the test
    window), run the promotion gate against the champion on those rows, and promote or
    record why not (tags promotion.* on the run and the model version).

    Exit codes: 0 promoted (or already champion); 3 refused by the gate, champion
    unchanged; 2 bad input or data; 1 anything unexpected.
    """
    result, _ = _train_and_report(
        data, dataset, dataset_file, experiment, every, horizon, allow_leaky, scheduler,
        num_boost_round, seed, crossfit, assume_utc, tune, promote=True,
        source_name="leadscore retrain", why=reason)
    decision = result.promotion
    if decision is None:  # not registered: nothing the gate could move
        raise typer.Exit(code=1)
    console.print(decision.reason, highlight=False)
    if not decision.promoted:
        raise typer.Exit(code=EXIT_REFUSED)


@app.command("promote")
def promote_command(
    version: int | None = typer.Option(
        None, "--version", min=1, help="Registered version to promote (default: the latest)."
    ),
    force: bool = typer.Option(
        False, "--force", help="Move the alias even if the gate refuses (recorded as forced)."
    ),
) -> None:
    """Move the champion alias to a version if it passes the gate on the same test window."""
    from training.promote import promote

    cfg = settings()
    decision = promote(cfg, version, force=force)
    console.print(decision.reason, highlight=False)
    typer.echo(json_text(decision.to_dict()))
    if not decision.promoted:
        raise typer.Exit(code=1)


@app.command("rollback")
def rollback_command(
    reason: Annotated[str | None, typer.Option(
        "--reason", help="Why (recorded in the alias history with who: LEADSCORE_ACTOR, "
        "else user@host).")] = None,
) -> None:
    """Move the champion alias back to the previous champion (from the alias history).

    A running service picks it up at its next poll, as it picks up a promotion. Refuses
    (exit 2) when there is no previous champion.
    """
    from training.promote import rollback

    cfg = settings()
    done = rollback(cfg, reason=reason)
    console.print(f"{cfg.model_alias} moved back from version {done.from_version} to version "
                  f"{done.version}", highlight=False)
    typer.echo(json_text(done.to_dict()))
