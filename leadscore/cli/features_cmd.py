"""Command: ``leadscore build-training-set --data DIR --out FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from features.build import build_training_set
from features.registry import FEATURE_SET_VERSION, feature_names
from features.schema import validate_activities, validate_leads
from leadscore.atomic import write_atomically
from leadscore.cli._common import console, parse_duration, parse_timestamp, settings
from leadscore.cli.app import app

_TABLES = ("leads", "activities")


def _read_table(data: Path, name: str) -> pd.DataFrame:
    """``DIR/name.parquet`` (or ``.csv``), or a clear error naming --data."""
    for suffix in (".parquet", ".csv"):
        path = data / f"{name}{suffix}"
        if path.is_file():
            return pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    raise typer.BadParameter(
        f"{str(data)!r} has no {name}.parquet or {name}.csv; expected a directory with "
        f"{' and '.join(t + '.parquet' for t in _TABLES)} (as written by 'leadscore generate')",
        param_hint="--data",
    )


@app.command("build-training-set")
def build_training_set_cmd(
    data: Annotated[
        Path, typer.Option("--data", help="Directory with leads.parquet and activities.parquet.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the training set to.")],
    every: Annotated[str, typer.Option("--every", help="Snapshot spacing, e.g. 7d.")] = "7d",
    horizon: Annotated[
        str, typer.Option("--horizon", help="Label horizon: converted within it after as_of.")
    ] = "90d",
    start: Annotated[
        str | None, typer.Option("--start", help="Snapshots after this time (ISO 8601, UTC).")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Snapshots up to this time (ISO 8601, UTC).")
    ] = None,
    keep_censored: Annotated[
        bool,
        typer.Option(
            "--keep-censored",
            help="Keep snapshots whose horizon runs past the end of the data, flagged in a "
            "label_complete column (dropped by default).",
        ),
    ] = False,
    assume_utc: Annotated[
        bool, typer.Option("--assume-utc", help="Read timestamps without a time zone as UTC.")
    ] = False,
) -> None:
    """Build the point-in-time training set: one row per eligible (lead, as_of) snapshot."""
    settings()
    every_td = parse_duration(every, option="--every")
    horizon_td = parse_duration(horizon, option="--horizon")
    start_ts = parse_timestamp(start, option="--start")
    end_ts = parse_timestamp(end, option="--end")
    if not data.is_dir():
        raise typer.BadParameter(
            f"{str(data)!r} is not a directory; expected one with leads.parquet and "
            "activities.parquet",
            param_hint="--data",
        )
    if out.suffix != ".parquet":
        raise typer.BadParameter(
            f"{str(out)!r} does not end in .parquet; the training set is written as parquet",
            param_hint="--out",
        )

    leads = validate_leads(_read_table(data, "leads"), assume_utc=assume_utc)
    validated = validate_activities(
        _read_table(data, "activities"), lead_ids=leads["lead_id"], assume_utc=assume_utc
    )
    if validated.unknown_types:
        console.print(
            f"[yellow]note[/] activity types outside the contract count as generic activity "
            f"only: {validated.unknown_types}",
            highlight=False,
        )
    frame = build_training_set(
        leads,
        validated.frame,
        every=every_td,
        horizon=horizon_td,
        start=start_ts,
        end=end_ts,
        censored="keep" if keep_censored else "drop",
    )
    frame.attrs["feature_set_version"] = FEATURE_SET_VERSION
    write_atomically(out, lambda tmp: frame.to_parquet(tmp, index=False))
    snapshots = frame["as_of"].nunique()
    rate = float(frame["label"].mean()) if len(frame) else 0.0
    console.print(
        f"[green]ok[/] {out}: {len(frame):,} rows ({snapshots} snapshots, "
        f"{frame['lead_id'].nunique():,} leads, label rate {rate:.1%}), "
        f"{len(feature_names())} features, feature set {FEATURE_SET_VERSION}",
        highlight=False,
    )
