"""Commands: ``leadscore rules init``, ``leadscore rules check`` and ``leadscore rules score``.

Without ``--dataset`` they speak the built-in data contract. With ``--dataset SPEC``
(a dataset spec, or the name of a shipped one) the rules name the spec's fields by
their safe names and its activity kinds (:mod:`rules_fallback.spec_rules`), ``init``
learns a starter file from the spec's labelled history (:mod:`rules_fallback.init`)
and ``score`` scores the spec's leads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from features.errors import RulesError
from features.schema import validate_activities, validate_leads
from leadscore.atomic import write_atomically
from leadscore.cli._common import parse_duration, parse_timestamp, settings
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


_DATASET_HELP = "A dataset spec (YAML), or the name of a shipped one such as x-education."
_SPEC_DATA_HELP = (
    "With --dataset: the spec's data (a file for a flat spec, else the folder its sources "
    "are relative to), as in `spec check --data`."
)


def _spec(value: Path) -> Any:
    from features.spec import example_spec_path, load_spec

    path = value if value.suffix in (".yaml", ".yml") or value.exists() else example_spec_path(str(value))
    return load_spec(path)


def _tables(spec: Any, data: Path | None) -> Any:
    from features.spec import load_tables

    return load_tables(spec, data_path=data)


@rules_app.command("init")
def init(
    dataset: Annotated[Path, typer.Option("--dataset", help=_DATASET_HELP)],
    out: Annotated[Path, typer.Option("--out", help="The rules file (YAML) to write.")],
    data: Annotated[Path | None, typer.Option("--data", help=_SPEC_DATA_HELP)] = None,
    prior_strength: Annotated[
        float,
        typer.Option("--prior-strength", min=0.001,
                     help="Pseudo-leads at the base rate that each rule's rate is shrunk toward."),
    ] = 20.0,
    window: Annotated[
        str, typer.Option("--window", help="Window of the kinds' rules, e.g. 30d.")
    ] = "30d",
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a starter rules file for a spec: points from each value's conversion lift."""
    from rules_fallback.init import generate_rules
    from rules_fallback.spec_rules import SpecVocabulary

    settings()
    if out.exists() and not force:
        raise typer.BadParameter(f"{str(out)!r} exists; pass --force to overwrite it",
                                 param_hint="--out")
    window_days = parse_duration(window, option="--window") / pd.Timedelta(days=1)
    spec = _spec(dataset)
    tables = _tables(spec, data)
    vocabulary = SpecVocabulary.from_spec(spec)
    examples, note = None, ""
    if tables.has_time:
        from training.from_spec import build_spec_training_set

        frame, used = build_spec_training_set(tables)
        examples = frame[["lead_id", "as_of", "label"]]
        note = (f" (the spec's point-in-time snapshots, {used['snapshots']}, label: converted "
                f"within {used['horizon']} of as_of)")
    elif "label" in tables.leads.columns:
        examples = tables.leads[["lead_id", "label"]]
        note = " (one per lead: the export has no time)"
    generated = generate_rules(vocabulary, tables.leads, tables.activities, examples,
                               prior_strength=prior_strength, window_days=window_days,
                               examples_note=note)
    write_atomically(out, lambda tmp: Path(tmp).write_text(generated.text, encoding="utf-8"))
    s = generated.summary
    rules = generated.rules
    counts = (f"{s['fit_rules']} fit, {s['engagement_rules']} engagement, "
              f"{s['negative_rules']} negative")
    if s["n_examples"]:
        learned = (f"learned from {s['n_examples']} examples (base rate {s['base_rate']:.3f}, "
                   f"prior strength {prior_strength:g}); ROC AUC on them {s['roc_auc']:.3f}")
    else:
        learned = "no labels: neutral points from the kinds' weights"
    typer.echo(f"wrote {out}: {len(rules.rules)} rules ({counts}) for spec {vocabulary.name!r}, "
               f"{learned}; mapping intercept {rules.mapping.intercept:.4g}, slope "
               f"{rules.mapping.slope:.4g}")


@rules_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(help="The rules file (YAML) to validate.")],
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", help=_DATASET_HELP + " Check fields and kinds against it."),
    ] = None,
) -> None:
    """Validate a rules file: print OK with the rule count, or each problem with its rule and line."""
    settings()
    try:
        if dataset is None:
            rules = load_rules(file)
        else:
            from rules_fallback.spec_rules import SpecVocabulary, load_spec_rules

            vocabulary = SpecVocabulary.from_spec(_spec(dataset))
            rules = load_spec_rules(file, vocabulary)
    except RulesError as exc:
        # Plain text: a message that rich wraps would read differently in every terminal.
        typer.echo(f"invalid: {exc}", err=True)
        raise typer.Exit(code=2) from None
    kinds = (
        f"{len(rules.fit_rules)} fit, {len(rules.engagement_rules)} engagement, "
        f"{len(rules.negative_rules)} negative"
    )
    against = "" if dataset is None else f" for spec {vocabulary.name!r}"
    typer.echo(f"OK {file}: {len(rules.rules)} rules ({kinds}){against}, version {rules.provenance}")


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
    out: Annotated[Path, typer.Option("--out", help="Parquet file to write the scores to.")],
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Dataset directory with leads.parquet and activities.parquet. "
                     + _SPEC_DATA_HELP),
    ] = None,
    dataset: Annotated[Path | None, typer.Option("--dataset", help=_DATASET_HELP)] = None,
    rules_file: Annotated[
        Path | None,
        typer.Option("--rules", help="Rules file (YAML). Default: the packaged default rule set "
                     "(required with --dataset)."),
    ] = None,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Score as of this UTC time (ISO 8601). Default: just after the latest timestamp "
            "in the data, so that its last activity counts (now, for a spec without time).",
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
    when = parse_timestamp(as_of, option="--as-of")
    if dataset is not None:
        from rules_fallback.spec_rules import SpecVocabulary, evaluate_spec, load_spec_rules

        if rules_file is None:
            raise typer.BadParameter("a spec's leads need a rules file for that spec "
                                     "(write one with `leadscore rules init`)",
                                     param_hint="--rules")
        spec = _spec(dataset)
        rules = load_spec_rules(rules_file, SpecVocabulary.from_spec(spec))
        tables = _tables(spec, data)
        leads, activities = tables.leads, tables.activities
        if when is None:
            stamps = [leads[c].max() for c in ("created_at",) if c in leads.columns]
            if activities is not None and len(activities):
                stamps.append(activities["occurred_at"].max())
            stamps = [t for t in stamps if pd.notna(t)]
            when = (max(stamps) + pd.Timedelta(microseconds=1) if stamps
                    else pd.Timestamp.now(tz="UTC"))
        evaluation = evaluate_spec(rules, leads, activities, when)
    else:
        if data is None:
            raise typer.BadParameter("give --data DIR (the built-in contract) or --dataset SPEC",
                                     param_hint="--data/--dataset")
        rules = load_rules(rules_file)
        paths = {name: data / f"{name}.parquet" for name in ("leads", "activities")}
        for name, path in paths.items():
            if not path.is_file():
                raise typer.BadParameter(
                    f"{str(path)!r} does not exist; expected {name}.parquet in the dataset "
                    "directory",
                    param_hint="--data",
                )
        leads = validate_leads(pd.read_parquet(paths["leads"]), assume_utc=assume_utc)
        activities = validate_activities(
            pd.read_parquet(paths["activities"]), lead_ids=leads["lead_id"], assume_utc=assume_utc
        ).frame
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
