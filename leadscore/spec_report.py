"""The funnel report on any CRM's data: a dataset spec's tables in the report's terms.

``leadscore report --dataset SPEC`` reads the spec's tables the way training does
(:func:`features.spec.load_tables`: files, DuckDB queries or a database, with the spec's
row policies) and hands them to the same analytics as the built-in data
(:func:`leadscore.report.build_report`). What changes is vocabulary, taken from the
spec (:func:`spec_terms`):

- a *sales-ready action* is an activity of a kind the spec marks ``key_action: true``,
  named by the kinds' labels;
- "Conversion by source" groups by a field of the spec (``--by``; by default the first
  categorical field whose column or label says "source", else the first one), under its
  label;
- outcomes are dated when the spec gives ``converted_at`` (scores are then followed
  forward from their ``as_of``, as for the built-in data); with a bare ``label`` each
  lead's latest score is compared with the label the export records, and the page says
  that this is in-sample for the leads the model was trained on;
- with no ``created_at`` at all (a flat export), nothing is filtered by date and the
  time sections say why they are empty.

Scores are the batch output of ``leadscore rescore --dataset SPEC`` (or any table with
the spec's lead ids and the score columns :func:`leadscore.report.validate_scores`
names).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from features.errors import DataValidationError, ValidationIssue
from features.spec import SpecTables, load_spec, load_tables
from leadscore.atomic import write_atomically
from leadscore.report import (
    DEFAULT_HORIZON,
    FunnelReport,
    FunnelTerms,
    build_report,
    read_run_health,
    read_scores,
    render_report_html,
    run_backtests,
)

__all__ = ["SpecReportInputs", "spec_terms", "spec_report_inputs", "write_spec_report"]

_NO_TIME = pd.Timestamp("2000-01-01", tz="UTC")
"""Stands in for ``created_at`` (and a positive's ``converted_at``) in a flat export, so
the shared arithmetic runs; the page never shows it (``FunnelTerms.has_created``)."""

ALL_LEADS = "(all leads)"


@dataclass(frozen=True)
class SpecReportInputs:
    """A spec's tables in the report's shape, and the terms to read them by."""

    leads: pd.DataFrame
    """lead_id, created_at, converted_at, disqualified_at (UTC; NaT when absent), source."""
    activities: pd.DataFrame
    """lead_id, occurred_at, type (the spec's kind names; unmapped types as the CRM spells them)."""
    scores: pd.DataFrame | None
    terms: FunnelTerms
    horizon: pd.Timedelta
    """The spec's training horizon, else the report's default (90 days)."""


def _group_field(tables: SpecTables, by: str | None) -> tuple[str | None, str]:
    """The safe name and label of the field "Conversion by ..." groups by."""
    names = list(tables.categorical)

    def label(name: str) -> str:
        return tables.labels.get(name) or tables.original_names.get(name, name)

    if by is not None:
        wanted = by.strip().casefold()
        for name in [*names, *tables.numeric]:
            spelled = {name, tables.original_names.get(name, name), label(name)}
            if wanted in {s.casefold() for s in spelled}:
                if name not in names:
                    raise DataValidationError([ValidationIssue(
                        table="report", field="--by", value=by,
                        expected="is numeric; expected a categorical field of the spec")])
                return name, label(name)
        choices = sorted(tables.original_names.get(n, n) for n in names)
        raise DataValidationError([ValidationIssue(
            table="report", field="--by", value=by,
            expected=f"is not a field of the spec; expected a categorical one of {choices}")])
    for name in names:
        if "source" in f"{tables.original_names.get(name, name)} {label(name)}".casefold():
            return name, label(name)
    if names:
        return names[0], label(names[0])
    return None, "Group"


def spec_terms(tables: SpecTables, *, by: str | None = None) -> FunnelTerms:
    """The report's vocabulary for a spec: its key-action kinds, grouping field, outcomes."""
    key = [k for k in tables.kinds if k.key_action]
    _, group_label = _group_field(tables, by)
    leads = tables.leads
    return FunnelTerms(
        sales_ready_types=tuple(k.name for k in key),
        sales_ready_label=" or ".join(k.label for k in key),
        disengaged_types=(),
        known_types=tuple(k.name for k in tables.kinds) or ("",),
        source_label=group_label,
        dated="converted_at" in leads.columns and "created_at" in leads.columns,
        has_created="created_at" in leads.columns,
        has_disqualified="disqualified_at" in leads.columns,
        has_activities=tables.activities is not None,
        dataset=tables.spec.name,
    )


def spec_report_inputs(
    tables: SpecTables,
    scores_path: Path | str | None = None,
    *,
    by: str | None = None,
) -> SpecReportInputs:
    """A spec's loaded tables (and its scores file) as the report's validated inputs.

    Raises
    ------
    DataValidationError
        A ``--by`` that is no categorical field of the spec, or bad scores (naming the
        field, the value and what was expected).
    """
    src = tables.leads
    terms = spec_terms(tables, by=by)
    name, _ = _group_field(tables, by)
    n = len(src)
    created = src["created_at"] if terms.has_created else pd.Series(_NO_TIME, index=src.index)
    if terms.dated:
        converted = src["converted_at"]
    else:
        # A label, not a date: the positives get a stand-in time (their creation), so
        # "converted by as_of" counts them and nothing is measured from it.
        positive = (src["label"] == 1) if "label" in src.columns else src["converted_at"].notna()
        converted = created.where(positive.to_numpy(bool))
    nat = pd.Series(pd.NaT, index=src.index, dtype="datetime64[ns, UTC]")
    leads = pd.DataFrame({
        "lead_id": src["lead_id"].astype("string"),
        "created_at": created.astype("datetime64[ns, UTC]"),
        "converted_at": converted.astype("datetime64[ns, UTC]"),
        "disqualified_at": (src["disqualified_at"] if terms.has_disqualified else nat)
        .astype("datetime64[ns, UTC]"),
        "source": src[name].astype("string") if name is not None
        else pd.Series([ALL_LEADS] * n, index=src.index, dtype="string"),
    }).reset_index(drop=True)
    if tables.activities is not None:
        activities = tables.activities[["lead_id", "occurred_at", "type"]].reset_index(drop=True)
    else:
        activities = pd.DataFrame({
            "lead_id": pd.Series([], dtype="string"),
            "occurred_at": pd.Series([], dtype="datetime64[ns, UTC]"),
            "type": pd.Series([], dtype="string"),
        })
    checked = None if scores_path is None else read_scores(
        Path(scores_path), leads["lead_id"], hint="scores from `leadscore rescore --dataset SPEC "
        "--out DIR` (DIR/scores), with the spec's lead ids")
    horizon = tables.training.horizon if tables.training is not None else DEFAULT_HORIZON
    return SpecReportInputs(leads=leads, activities=activities, scores=checked, terms=terms,
                            horizon=horizon)


def write_spec_report(
    spec_path: Path | str,
    out: Path | str,
    *,
    data_path: Path | str | None = None,
    scores_path: Path | str | None = None,
    as_of: pd.Timestamp | None = None,
    horizon: pd.Timedelta | None = None,
    scored_at: pd.Timestamp | None = None,
    by: str | None = None,
    backtest_min_labelled: int = 200,
) -> FunnelReport:
    """Load a spec's data, compute the report in the spec's terms and write it atomically.

    ``horizon`` defaults to the spec's training horizon (else 90 days). ``as_of`` is
    refused for a spec with no ``created_at``: such an export has no time to cut at.

    Raises
    ------
    SpecError, DataValidationError
        A bad spec, table, ``--by`` or scores file, naming field, value and expectation.
    """
    spec = load_spec(spec_path)
    tables = load_tables(spec, data_path=data_path)
    inputs = spec_report_inputs(tables, scores_path, by=by)
    if as_of is not None and not inputs.terms.has_created:
        raise DataValidationError([ValidationIssue(
            table="report", field="--as-of", value=as_of.isoformat(),
            expected=f"is given, but the spec {spec.name!r} has no created_at, so its leads "
                     "have no time to cut at; leave --as-of out")])
    report = build_report(
        inputs.leads, inputs.activities, inputs.scores,
        as_of=as_of, horizon=horizon if horizon is not None else inputs.horizon,
        scored_at=scored_at, data_label=f"{spec.name} ({Path(spec_path).name})",
        scores_label=Path(scores_path).name if scores_path is not None else "",
        terms=inputs.terms,
    )
    report = replace(report, health=read_run_health(scores_path),
                     backtests=run_backtests(scores_path, inputs.leads, report.as_of,
                                             report.horizon, backtest_min_labelled)
                     if inputs.terms.dated else None)
    page = render_report_html(report)
    write_atomically(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return report
