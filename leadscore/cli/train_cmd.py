"""Commands: ``train`` (fit, evaluate, log, register) and ``promote`` (the gate)."""

from __future__ import annotations

from pathlib import Path

import typer

from leadscore.cli._common import console, json_text, parse_duration, settings
from leadscore.cli.app import app


@app.command("train")
def train_command(
    data: Path | None = typer.Option(
        None, "--data", help="Directory with leads.parquet and activities.parquet "
        "(and truth.parquet for synthetic data).", file_okay=False,
    ),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="A dataset spec (YAML) for your own CRM export.", dir_okay=False,
    ),
    dataset_file: Path | None = typer.Option(
        None, "--dataset-file", help="The export the spec describes, overriding its 'source'.",
        dir_okay=False,
    ),
    experiment: str = typer.Option("lead-scoring", "--experiment", help="MLflow experiment."),
    promote: bool = typer.Option(False, "--promote", help="Run the promotion gate afterwards."),
    every: str | None = typer.Option(
        None, "--every", help="Snapshot spacing (default 7d, or the spec's 'training.every')."
    ),
    horizon: str | None = typer.Option(
        None, "--horizon", help="Label horizon, also the purge gap between splits (default 90d, "
        "or the spec's 'training.horizon'). With a version-1 spec that maps created_at and "
        "converted_at, the label becomes 'converted within the horizon after created_at'.",
    ),
    allow_leaky: list[str] = typer.Option(
        [], "--allow-leaky", help="Keep this flagged column as a feature (repeatable)."
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Train on Dask: 'local' (2-worker LocalCluster) or tcp://host:port."
    ),
    num_boost_round: int = typer.Option(1000, "--num-boost-round", min=1, help="Maximum trees."),
    seed: int = typer.Option(0, "--seed", help="Random seed (LightGBM, random splits)."),
    crossfit: str = typer.Option(
        "auto", "--crossfit", help="K-fold cross-fitting over train + validation: 'auto' "
        "(small data without time: below 30,000 rows or 300 validation positives), "
        "'always' (also forward-chaining folds on time-split data) or 'never'.",
    ),
    tune: str | None = typer.Option(
        None, "--tune", help="Search a small space of LightGBM parameters first, by the same "
        "held-out folds or window the fit uses: a time budget ('120s', '5m') or a number of "
        "trials ('50'). Each trial is a nested MLflow run."),
    assume_utc: bool = typer.Option(
        False, "--assume-utc", help="Read naive timestamps in --data as UTC."
    ),
) -> None:
    """Train a calibrated LightGBM model, log it to MLflow and register it as lead-scoring."""
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
    if crossfit not in ("auto", "always", "never"):
        raise typer.BadParameter(f"{crossfit!r} is not 'auto', 'always' or 'never'",
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
    result = train(training_data, cfg, TrainOptions(
        experiment=experiment, source_name="leadscore train", allow_leaky=tuple(allow_leaky),
        scheduler=scheduler, promote=promote, num_boost_round=num_boost_round, random_state=seed,
        crossfit=crossfit, tune=budget,
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
        console.print(
            f"tuning: {len(tuning.trials)} trials in {tuning.seconds:.0f} s by "
            f"{tuning.objective}: best {tuning.best_value:.4f} (trial "
            f"{tuning.best_trial.number}) against {tuning.default_value:.4f} for the "
            f"defaults; chosen { {k: round(v, 4) for k, v in tuning.best_params.items()} }", highlight=False, soft_wrap=True)
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
