"""Command: ``rescore`` (score every open lead, in process or on Dask, resumably, with score
history)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from leadscore.cli._common import console, parse_timestamp, settings
from leadscore.cli.app import app


@app.command("rescore")
def rescore_command(
    data: Path | None = typer.Option(  # noqa: B008  (typer's declarative options)
        None, "--data", file_okay=False,
        help="Directory with leads.parquet and activities.parquet.",
    ),
    dataset: Path | None = typer.Option(  # noqa: B008
        None, "--dataset", dir_okay=False,
        help="Instead of --data: a dataset spec; its tables are read as training reads "
        "them (files, DuckDB, a database URL) and scored with a model of that spec.",
    ),
    dataset_file: Path | None = typer.Option(  # noqa: B008
        None, "--dataset-file",
        help="With --dataset: the data the spec reads (a file, or a multi-table spec's folder).",
    ),
    out: Path = typer.Option(  # noqa: B008
        ..., "--out", file_okay=False,
        help="Output root: scores/ (the committed run), runs/, history/, .staging/.",
    ),
    model_uri: str | None = typer.Option(
        None, "--model-uri",
        help="Model to score with (default models:/lead-scoring@champion). An alias is "
        "resolved once, at the start, to a version. Without one the rules score every lead.",
    ),
    scheduler: str = typer.Option(
        "local", "--scheduler",
        help="'local' (a LocalCluster sized to this machine) or tcp://host:8786.",
    ),
    as_of: str | None = typer.Option(
        None, "--as-of",
        help="Score as of this time (ISO 8601; naive means UTC). Default: the latest "
        "timestamp in the data.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Local workers (default: one per core, one thread each)."
    ),
    partitions: int | None = typer.Option(
        None, "--partitions", min=1,
        help="Partitions by hash of lead_id (default: about 25,000 leads each, at least 4).",
    ),
    top_reasons: int = typer.Option(
        3, "--top-reasons", min=0, help="Positive and negative reasons per lead, as POST /score."
    ),
    batch_size: int | None = typer.Option(
        None, "--batch-size", min=1,
        help="With --dataset: leads scored (and explained) at a time, one part file each "
        "(default 50,000).",
    ),
    decay: bool = typer.Option(
        False, "--decay",
        help="Also write where each lead's score goes if nothing new "
        "happens (probability and grade at +7, +14, +30 days, and the first day within 30 "
        "its grade drops: grade_drop_date), as POST /score's 'decay'. Costs 30 "
        "predictions per lead, by the model or the rules, whichever scored it.",
    ),
    engine: str = typer.Option(
        "auto", "--engine",
        help="Where the built-in data is scored: 'auto' (in this process up to "
        "LEADSCORE_RESCORE_LOCAL_MAX_LEADS leads, else a Dask cluster), 'local' (in this "
        "process) or 'dask'. The output is the same either way.",
    ),
    json_summary: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Score every open lead with the API's scoring core (in process for a small base,
    else on Dask); commit atomically.

    A rerun with the same inputs, as_of and model resumes an interrupted run (complete
    partitions are reused). Each committed run is appended to <out>/history for trends.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from serving.batch import rescore

    if scheduler != "local" and not scheduler.startswith("tcp://"):
        raise typer.BadParameter(f"{scheduler!r} is not 'local' or a tcp://host:port address",
                                 param_hint="--scheduler")
    if engine not in ("auto", "local", "dask"):
        raise typer.BadParameter(f"{engine!r} is not 'auto', 'local' or 'dask'",
                                 param_hint="--engine")
    if engine == "local" and scheduler != "local":
        raise typer.BadParameter(f"'local' scores in this process, but --scheduler "
                                 f"{scheduler} names a cluster; use --engine dask or auto",
                                 param_hint="--engine")
    if (data is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --data DIR or --dataset SPEC",
                                 param_hint="--data/--dataset")
    if engine == "dask" and dataset is not None:
        raise typer.BadParameter("--dataset SPEC always scores in this process (a CRM's "
                                 "base, read by the spec); --engine applies to --data",
                                 param_hint="--engine")
    if batch_size is not None and dataset is None:
        raise typer.BadParameter("only applies with --dataset SPEC (the built-in data is "
                                 "split by --partitions)", param_hint="--batch-size")
    cfg = settings()
    stamp = parse_timestamp(as_of, option="--as-of")
    if dataset is not None:
        _rescore_spec(cfg, dataset, dataset_file, out, model_uri, stamp, top_reasons,
                      batch_size or 50_000, json_summary, decay)
        return
    assert data is not None
    with Progress("[progress.description]{task.description}", BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=False) as bar:
        tasks: dict[str, Any] = {}

        def bar_for(name: str) -> Callable[[int, int], None]:
            def update(done: int, total: int) -> None:
                if name not in tasks:  # created on first use: a resumed run skips reading
                    tasks[name] = bar.add_task(name, total=total)
                bar.update(tasks[name], completed=done, total=total)
            return update

        result = rescore(data, out, settings=cfg, model_uri=model_uri, as_of=stamp,
                         scheduler=scheduler, workers=workers, n_partitions=partitions,
                         top_reasons=top_reasons, progress=bar_for("partitions scored"),
                         input_progress=bar_for("rows validated"),
                         engine=engine, decay=decay)  # type: ignore[arg-type]  (checked above)
    if json_summary:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    if result.already_committed:
        console.print("this run (same inputs, as_of and model) was already committed")
    for line in result.summary_lines():
        console.print(line, highlight=False)
    if not result.model.startswith("none"):  # the rules have no reference to drift from
        _print_health(result.health)


def _rescore_spec(cfg: Any, dataset: Path, dataset_file: Path | None, out: Path,
                  model_uri: str | None, as_of: Any, top_reasons: int, batch_size: int,
                  json_summary: bool, decay: bool = False) -> None:
    """``rescore --dataset``: every open lead of a spec's data, with a model of that spec."""
    from features.errors import LeadscoreError
    from serving.batch import resolve_model
    from serving.lifecycle import mlflow_loader
    from serving.spec_batch import rescore_spec

    candidate = resolve_model(cfg, model_uri)
    if candidate is None:
        raise LeadscoreError(
            f"no model to score {dataset.name} with: train and promote one "
            f"('leadscore train --dataset {dataset} --promote') or pass --model-uri "
            "; without a model, score with the spec's rules: 'leadscore rules init --dataset "
            f"{dataset} --out rules.yaml', then 'leadscore rules score --dataset {dataset} "
            "--rules rules.yaml --out scores.parquet'")
    model = mlflow_loader(cfg)(candidate)
    rules = None
    if cfg.rules_file is not None:
        # With --dataset, LEADSCORE_RULES_FILE is the spec's rules, as for the service.
        from features.spec import load_spec
        from rules_fallback import SpecVocabulary, load_spec_rules

        rules = load_spec_rules(cfg.rules_file, SpecVocabulary.from_spec(load_spec(dataset)))
    result = rescore_spec(dataset, out, model, model_name=candidate.name,
                          model_version=candidate.version, data_path=dataset_file,
                          as_of=as_of, top_reasons=top_reasons, batch_size=batch_size,
                          rules=rules, cold_start_policy=cfg.cold_start_policy,
                          psi_thresholds=(cfg.psi_warn, cfg.psi_alert), decay=decay,
                          matrix_thresholds=cfg.matrix_thresholds())
    if json_summary:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return
    console.print(f"[green]ok[/] scored {result.n_scored:,} open leads of {result.n_leads:,} "
                  f"as of {result.as_of.isoformat()} with {candidate.name} version "
                  f"{candidate.version}; committed run {result.run_id} to {out / 'scores'} "
                  f"(grades {result.grades})", highlight=False)
    _print_health(result.health)


def _print_health(health: dict[str, Any] | None) -> None:
    """The run's drift in one or two lines: the score's PSI and the features above alert."""
    if health is None:
        console.print("drift: the model ships no reference (trained before drift was "
                      "measured); retrain to measure it", highlight=False)
        return
    alert = health["thresholds"]["alert"]
    score = health["score_psi"]
    line = ("drift: score PSI " + ("n/a" if score is None else f"{score:.3f}")
            + f" ({health['score_level']}); {health['n_drifted']} of {health['n_features']} "
            f"features above {alert:g}")
    drifted = [f for f in health["features"] if f["psi"] > alert]
    if drifted:
        line += ": " + ", ".join(f"{f['label']} ({f['feature']}) {f['psi']:.2f}" for f in drifted)
    console.print(line + " (_health.json in the run)", highlight=False, markup=False)
    estimate = health.get("estimate")
    if estimate and estimate.get("n"):
        console.print(
            f"expected (label-free, CBPE, {estimate['n']:,} model-scored leads): conversion "
            f"{_fmt(estimate['expected_conversion_rate'], '.1%')}, ROC AUC "
            f"{_fmt(estimate['expected_roc_auc'], '.3f')}, top-decile lift "
            f"{_fmt(estimate['expected_top_decile_lift'], '.2f')}; assumes calibration holds "
            "on these leads (no concept drift)", highlight=False, markup=False)


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None or value != value else format(value, spec)
