"""Command: ``leadscore backtest``, committed batch runs against the outcomes that followed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from leadscore.cli._common import console, json_text, parse_duration, parse_timestamp, settings
from leadscore.cli.app import app


@app.command("backtest")
def backtest_command(
    scores: Annotated[Path, typer.Option(
        "--scores", file_okay=False,
        help="The --out folder of 'leadscore rescore' (its history/ keeps every committed "
        "run).")],
    data: Annotated[Path | None, typer.Option(
        "--data", file_okay=False,
        help="Directory holding leads.parquet (and activities.parquet): the outcomes.")] = None,
    dataset: Annotated[Path | None, typer.Option(
        "--dataset", dir_okay=False, help="Instead of --data: the dataset spec the runs "
        "scored; it must date its outcomes (converted_at).")] = None,
    dataset_file: Annotated[Path | None, typer.Option(
        "--dataset-file", help="With --dataset: the data the spec reads.")] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Outcomes known up to this time (default: the data's latest).")] = None,
    horizon: Annotated[str | None, typer.Option(
        "--horizon", help="Conversion window after each run's as_of (default 90d; with "
        "--dataset, the spec's training horizon).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    log: Annotated[bool, typer.Option(
        "--log/--no-log", help="Log the figures to MLflow, on the run of the model version "
        "that scored each run.")] = True,
    assume_utc: Annotated[bool, typer.Option(
        "--assume-utc", help="Read naive timestamps in --data as UTC.")] = False,
) -> None:
    """Every committed rescore run whose horizon has passed, joined with what followed:
    realised conversion by grade (95% Wilson), ROC AUC (95% DeLong), top-decile lift,
    calibration, and the label-free estimate the run made at the time."""
    from leadscore.backtest import backtest_runs, log_backtests

    if (data is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --data DIR or --dataset SPEC",
                                 param_hint="--data/--dataset")
    if dataset_file is not None and dataset is None:
        raise typer.BadParameter("only applies with --dataset SPEC", param_hint="--dataset-file")
    cfg = settings()
    stamp = parse_timestamp(as_of, option="--as-of")
    window = None if horizon is None else parse_duration(horizon, option="--horizon")
    leads, default_end, default_horizon = _outcomes(data, dataset, dataset_file, assume_utc)
    results = backtest_runs(scores, leads, as_of=stamp or default_end,
                            horizon=window or default_horizon,
                            min_labelled=cfg.backtest_min_labelled)
    skipped = log_backtests(results, cfg) if log else []
    for line in skipped:
        console.print(f"not logged to MLflow: {line}", highlight=False, markup=False)
    if json_out:
        typer.echo(json_text([r.to_dict() for r in results]))
        return
    _print(results)


def _outcomes(data: Path | None, dataset: Path | None, dataset_file: Path | None,
              assume_utc: bool) -> tuple[Any, Any, Any]:
    """The leads in the report's shape, the data's end, and the default horizon."""
    from features.errors import DataValidationError, ValidationIssue
    from leadscore.report import DEFAULT_HORIZON, default_as_of, load_report_inputs

    if data is not None:
        inputs = load_report_inputs(data, assume_utc=assume_utc)
        return inputs.leads, default_as_of(inputs.leads, inputs.activities), DEFAULT_HORIZON
    from features.spec import load_spec, load_tables
    from leadscore.spec_report import spec_report_inputs

    tables = load_tables(load_spec(dataset), data_path=dataset_file)
    inputs = spec_report_inputs(tables)
    if not inputs.terms.dated:
        raise DataValidationError([ValidationIssue(
            table="backtest", field="--dataset", value=str(dataset),
            expected="a spec that dates its outcomes (created_at and converted_at); with a "
                     "bare label nothing says what followed a run")])
    return inputs.leads, default_as_of(inputs.leads, inputs.activities), inputs.horizon


def _print(results: list) -> None:
    from rich.table import Table

    def pct(v: Any) -> str:
        return "-" if v is None or v != v else f"{v:.1%}"

    def num(v: Any, digits: int = 3) -> str:
        return "-" if v is None or v != v else f"{v:.{digits}f}"

    for r in results:
        head = f"run {r.run_id} (as_of {r.as_of.date()}, model v{r.model_version})"
        if r.status != "ok":
            word = "not due" if r.status == "not_due" else "refused"
            console.print(f"{head}: {word}: {r.reason}", highlight=False, markup=False)
            continue
        grades = Table(title=f"{head}: {r.n_labelled:,} labelled model-scored leads"
                       + (f" ({r.n_rules:,} rules-scored left out)" if r.n_rules else ""))
        for column in ("grade", "leads", "converted", "realised", "95% CI", "mean p"):
            grades.add_column(column, justify="left" if column == "grade" else "right")
        for g in r.grades.itertuples():
            grades.add_row(g.grade, f"{g.leads:,}", f"{g.converted:,}", pct(g.observed_rate),
                           f"{pct(g.ci_low)} to {pct(g.ci_high)}", pct(g.mean_probability))
        console.print(grades)
        e = r.estimate or {}
        m = r.realised
        figures = Table(title="realised vs estimated at the time (CBPE)")
        for column in ("figure", "realised", "95% CI", "estimated then"):
            figures.add_column(column, justify="left" if column == "figure" else "right")
        figures.add_row("conversion rate", pct(m["conversion_rate"]), "",
                        pct(e.get("expected_conversion_rate")))
        figures.add_row("ROC AUC", num(m["roc_auc"]),
                        f"{num(m['roc_auc_low'])} to {num(m['roc_auc_high'])}",
                        num(e.get("expected_roc_auc")))
        figures.add_row("top-decile lift", num(m["top_decile_lift"], 2), "",
                        num(e.get("expected_top_decile_lift"), 2))
        figures.add_row("ECE", num(m["ece"]), "", "")
        figures.add_row("Brier", num(m["brier"], 4), "", "")
        console.print(figures)
