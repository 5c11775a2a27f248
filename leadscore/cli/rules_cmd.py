"""Commands: ``leadscore rules check`` and ``leadscore rules score``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from features.errors import RulesError
from features.schema import validate_activities, validate_leads
from leadscore.atomic import write_atomically
from leadscore.cli._common import console, parse_timestamp, settings
from leadscore.cli.app import rules_app
from rules_fallback import evaluate, load_rules

_REASON_TYPE = pa.struct(
    [
        ("field", pa.string()),
        ("label", pa.string()),
        ("value", pa.string()),
        ("impact", pa.float64()),
        ("sentence", pa.string()),
    ]
)


@rules_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The rules file (YAML) to validate.")],
) -> None:
    """Validate a rules file: print OK with the rule count, or each problem with its rule and line."""
    settings()
    try:
        rules = load_rules(file)
    except RulesError as exc:
        console.print(f"[bold red]invalid:[/] {exc}", markup=True, highlight=False)
        raise typer.Exit(code=2) from None
    kinds = (
        f"{len(rules.fit_rules)} fit, {len(rules.engagement_rules)} engagement, "
        f"{len(rules.negative_rules)} negative"
    )
    typer.echo(f"OK {file}: {len(rules.rules)} rules ({kinds}), version {rules.provenance}")


def _reasons_column(table: pd.DataFrame, n: int) -> pa.Array:
    """The long reason table as one list<struct> per lead row, built without Python loops per lead."""
    offsets = np.searchsorted(table["row"].to_numpy(), np.arange(n + 1)).astype(np.int32)
    values = table["value"].map(lambda v: None if v is None else str(v))
    structs = pa.StructArray.from_arrays(
        [
            pa.array(table["field"].tolist(), pa.string()),
            pa.array(table["label"].tolist(), pa.string()),
            pa.array(values.tolist(), pa.string()),
            pa.array(table["impact"].to_numpy(), pa.float64()),
            pa.array(table["sentence"].tolist(), pa.string()),
        ],
        fields=list(_REASON_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets), structs)


@rules_app.command("score")
def score(
    data: Annotated[
        Path,
        typer.Option("--data", help="Dataset directory with leads.parquet and activities.parquet."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the scores to.")],
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file (YAML). Default: the packaged default rule set."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Score as of this UTC time (ISO 8601). Default: just after the latest timestamp "
            "in the data, so that its last activity counts.",
        ),
    ] = None,
    top_reasons: Annotated[
        int, typer.Option("--top-reasons", min=0, help="Positive and negative reasons per lead.")
    ] = 3,
    assume_utc: Annotated[
        bool, typer.Option("--assume-utc", help="Read timestamps without a time zone as UTC.")
    ] = False,
) -> None:
    """Score every lead of a dataset with the rules and write scores with reasons."""
    settings()
    rules = load_rules(rules_file)
    paths = {name: data / f"{name}.parquet" for name in ("leads", "activities")}
    for name, path in paths.items():
        if not path.is_file():
            raise typer.BadParameter(
                f"{str(path)!r} does not exist; expected {name}.parquet in the dataset directory",
                param_hint="--data",
            )
    leads = validate_leads(pd.read_parquet(paths["leads"]), assume_utc=assume_utc)
    activities = validate_activities(
        pd.read_parquet(paths["activities"]), lead_ids=leads["lead_id"], assume_utc=assume_utc
    ).frame
    when = parse_timestamp(as_of, option="--as-of")
    if when is None:
        # The latest moment the data knows about, so that its last activity counts.
        stamps = [leads["created_at"].max(), activities["occurred_at"].max()]
        when = max(t for t in stamps if pd.notna(t)) + pd.Timedelta(microseconds=1)

    evaluation = evaluate(rules, leads, activities, when)
    scores = evaluation.frame()
    scores["scored_by"] = pd.Series("rules", index=scores.index, dtype="string")
    scores["rules_version"] = pd.Series(rules.provenance, index=scores.index, dtype="string")
    table = pa.Table.from_pandas(scores, preserve_index=False)
    # Built in Arrow: pyarrow's pandas conversion of tz-aware columns warns under pandas 3.
    stamp = np.full(len(scores), when.as_unit("ns").value, dtype=np.int64)
    table = table.append_column("as_of", pa.array(stamp).cast(pa.timestamp("ns", "UTC")))
    table = table.append_column(
        "reasons", _reasons_column(evaluation.reason_table(top_reasons), len(scores))
    )
    write_atomically(out, lambda tmp: pq.write_table(table, tmp))
    counts = pd.Series(scores["grade"]).value_counts().reindex(["A", "B", "C", "D"], fill_value=0)
    typer.echo(
        f"scored {len(scores)} leads as of {when.isoformat()} with rules {rules.provenance}: "
        + ", ".join(f"{g}={c}" for g, c in counts.items())
        + f" -> {out}"
    )
