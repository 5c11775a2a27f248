"""Command: ``leadscore build-training-set (--data DIR | --dataset SPEC) --out FILE``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from features.build import build_training_set
from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON
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
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the training set to.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Directory with leads.parquet and activities.parquet."),
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", help="A dataset spec (YAML) for your own CRM's tables.",
                     dir_okay=False),
    ] = None,
    dataset_file: Annotated[
        Path | None,
        typer.Option("--dataset-file", help="With --dataset: the data the spec reads, overriding "
                     "its source (a file, or the folder of a multi-table spec)."),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="Snapshot spacing, e.g. 7d (default 7d, or the spec's)."),
    ] = None,
    horizon: Annotated[
        str | None,
        typer.Option("--horizon", help="Label horizon: converted within it after as_of "
                     "(default 90d, or the spec's)."),
    ] = None,
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
    if (data is None) == (dataset is None):
        raise typer.BadParameter("give exactly one of --data DIR or --dataset SPEC",
                                 param_hint="--data/--dataset")
    every_td = parse_duration(every, option="--every") if every else None
    horizon_td = parse_duration(horizon, option="--horizon") if horizon else None
    start_ts = parse_timestamp(start, option="--start")
    end_ts = parse_timestamp(end, option="--end")
    if out.suffix != ".parquet":
        raise typer.BadParameter(
            f"{str(out)!r} does not end in .parquet; the training set is written as parquet",
            param_hint="--out",
        )
    if dataset is not None:
        _build_from_spec(dataset, dataset_file, out, every_td, horizon_td,
                         "keep" if keep_censored else None)
        return
    assert data is not None
    if not data.is_dir():
        raise typer.BadParameter(
            f"{str(data)!r} is not a directory; expected one with leads.parquet and "
            "activities.parquet",
            param_hint="--data",
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
        every=every_td or DEFAULT_EVERY,
        horizon=horizon_td or DEFAULT_HORIZON,
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


def _build_from_spec(
    spec_path: Path,
    data_path: Path | None,
    out: Path,
    every: pd.Timedelta | None,
    horizon: pd.Timedelta | None,
    censored: str | None,
) -> None:
    """The training set of a user's CRM, through its dataset spec."""
    from features.spec import load_spec, load_tables
    from training.from_spec import build_spec_training_set, feature_set_for

    tables = load_tables(load_spec(spec_path), data_path=data_path)
    feature_set = feature_set_for(tables)
    frame, used = build_spec_training_set(tables, feature_set, every=every, horizon=horizon,
                                          censored=censored)
    used.pop("horizon_value")
    frame.attrs["feature_set_version"] = feature_set.version
    write_atomically(out, lambda tmp: frame.to_parquet(tmp, index=False))
    rate = float(frame["label"].mean()) if len(frame) else 0.0
    for policy, outcome in tables.policy_counts.items():
        if outcome.get("rows"):
            console.print(f"[yellow]note[/] {policy}: {outcome['action']} {outcome['rows']:,} rows",
                          highlight=False)
    if tables.unmapped_types:
        top = dict(list(tables.unmapped_types.items())[:5])
        console.print(f"[yellow]note[/] {len(tables.unmapped_types)} activity types are not mapped "
                      f"to a kind and count as generic activity, e.g. {top}", highlight=False)
    console.print(
        f"[green]ok[/] {out}: {len(frame):,} rows ({frame['as_of'].nunique()} snapshot times, "
        f"{frame['lead_id'].nunique():,} leads, label rate {rate:.1%}; horizon {used['horizon']}, "
        f"snapshots {used['snapshots']}, censoring {used['censored']}), "
        f"{len(feature_set.feature_names())} features, feature set {feature_set.version}",
        highlight=False,
    )
