"""Commands: ``leadscore report``, the funnel analytics page for sales and marketing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli._common import console, parse_duration, parse_timestamp, settings
from leadscore.cli.app import app


@app.command("report")
def report(
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (atomically).")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Directory holding leads.parquet and activities.parquet."),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", dir_okay=False,
                     help="Instead of --data: a dataset spec. Its tables are read as training "
                     "reads them, and the page speaks its terms (its fields, its key-action "
                     "kinds, dated or label outcomes)."),
    ] = None,
    dataset_file: Annotated[
        Path | None,
        typer.Option("--dataset-file",
                     help="With --dataset: the data the spec reads (a file, or a multi-table "
                     "spec's folder)."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="With --dataset: the categorical field that 'Conversion by' "
                     "groups by (column name or label). Default: the first whose name says "
                     "'source', else the first."),
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option(
            "--scores",
            help="Scores: a parquet file or a directory of parquet files with lead_id, "
            "probability, score, grade, route (and as_of or scored_at: a score is followed "
            "from its as_of when it has one). Enables conversion by grade, calibration and lift.",
        ),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Report date, ISO 8601 (naive = UTC). Later records are ignored. "
            "Default: the latest timestamp in the data.",
        ),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option("--horizon", help="Conversion window for cohorts and score outcomes "
                     "(default 90d; with --dataset, the spec's training horizon)."),
    ] = None,
    scored_at: Annotated[
        str | None,
        typer.Option(
            "--scored-at",
            help="When the scores were made, for scores with neither an as_of nor a "
            "scored_at column (the rules fallback writes none).",
        ),
    ] = None,
    assume_utc: Annotated[
        bool, typer.Option("--assume-utc", help="Read naive timestamps in the data as UTC.")
    ] = False,
) -> None:
    """Write a self-contained HTML funnel report: conversion, lead velocity, sources,
    grades, time to conversion, and score calibration and lift."""
    if (data is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --data DIR or --dataset SPEC",
                                 param_hint="--data/--dataset")
    for name, value in (("--dataset-file", dataset_file), ("--by", by)):
        if value is not None and dataset is None:
            raise typer.BadParameter("only applies with --dataset SPEC", param_hint=name)
    if assume_utc and dataset is not None:
        raise typer.BadParameter("with --dataset the spec says how to read times "
                                 "(read: {assume_utc: true})", param_hint="--assume-utc")
    as_of_ts = parse_timestamp(as_of, option="--as-of")
    scored_at_ts = parse_timestamp(scored_at, option="--scored-at")
    window = None if horizon is None else parse_duration(horizon, option="--horizon")
    # Imported here so that `leadscore --help` does not pay for matplotlib.
    if dataset is not None:
        from leadscore.spec_report import write_spec_report

        result = write_spec_report(
            dataset, out, data_path=dataset_file, scores_path=scores, as_of=as_of_ts,
            horizon=window, scored_at=scored_at_ts, by=by,
            backtest_min_labelled=settings().backtest_min_labelled,
        )
    else:
        from leadscore.report import DEFAULT_HORIZON, write_report

        result = write_report(
            data, out, scores_path=scores, as_of=as_of_ts,
            horizon=window if window is not None else DEFAULT_HORIZON,
            scored_at=scored_at_ts, assume_utc=assume_utc,
            backtest_min_labelled=settings().backtest_min_labelled,
        )
    o = result.overall
    when = (f"as of {result.as_of.isoformat()}" if result.terms.has_created
            else "outcomes as the export records them")
    console.print(
        f"wrote {out} ({o['leads']:,} leads, {when}; "
        f"conversion to date {o['rate'] * 100:.1f}%)",
        markup=False, highlight=False,
    )
