"""Commands: ``leadscore report``, the funnel analytics page for sales and marketing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli._common import console, parse_duration, parse_timestamp
from leadscore.cli.app import app


@app.command("report")
def report(
    data: Annotated[
        Path,
        typer.Option("--data", help="Directory holding leads.parquet and activities.parquet."),
    ],
    out: Annotated[Path, typer.Option("--out", help="The HTML file to write (atomically).")],
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
        str,
        typer.Option("--horizon", help="Conversion window for cohorts and score outcomes."),
    ] = "90d",
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
    as_of_ts = parse_timestamp(as_of, option="--as-of")
    scored_at_ts = parse_timestamp(scored_at, option="--scored-at")
    window = parse_duration(horizon, option="--horizon")
    # Imported here so that `leadscore --help` does not pay for matplotlib.
    from leadscore.report import write_report

    result = write_report(
        data, out, scores_path=scores, as_of=as_of_ts, horizon=window,
        scored_at=scored_at_ts, assume_utc=assume_utc,
    )
    o = result.overall
    console.print(
        f"wrote {out} ({o['leads']:,} leads, as of {result.as_of.isoformat()}; "
        f"conversion to date {o['rate'] * 100:.1f}%)",
        markup=False, highlight=False,
    )
