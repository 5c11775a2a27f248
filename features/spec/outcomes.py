"""The outcomes table: deals or opportunities joined onto the leads, first time per lead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from features.errors import DataValidationError, ValidationIssue
from features.spec.model import DatasetSpecV2
from features.spec.sources import open_table
from features.spec.values import (
    _bad_rows,
    _check_header,
    _ids,
    _labels,
    _times,
    unknown_lead_policy,
)

__all__: list[str] = []


def _merge_outcomes(
    s: DatasetSpecV2,
    leads: pd.DataFrame,
    known_ids: set[str],
    data_dir: Path | None,
    counts: dict[str, dict[str, Any]],
) -> tuple[pd.DataFrame, str, int, Path | None]:
    """Join the outcomes table onto the leads: first time per lead; absent = not converted."""
    t = s.tables.outcomes
    assert t is not None
    oc = t.columns
    prefix = "spec.tables.outcomes"
    src = open_table(s, "outcomes", data_dir)
    paths = [(f"{prefix}.columns.lead_id", oc.lead_id)]
    if oc.label is not None:
        paths.append((f"{prefix}.columns.label.column", oc.label.column))
    for role in ("converted_at", "disqualified_at"):
        if getattr(oc, role) is not None:
            paths.append((f"{prefix}.columns.{role}", getattr(oc, role)))
    paths += [(f"{prefix}.columns.ignore[{i}]", e.column) for i, e in enumerate(oc.ignore)]
    paths += [(f"{prefix}.read.drop_columns[{i}]", c) for i, c in enumerate(t.read.drop_columns)]
    _check_header(
        s.origin,
        paths,
        t.default_role,
        src.header(),
        table=src.name,
        columns_key=f"{prefix}.columns",
    )
    wanted = [c for p, c in paths if ".ignore[" not in p and ".drop_columns[" not in p]
    raw = src.read(wanted, numeric=set())
    table = src.name
    issues: list[ValidationIssue] = []
    ids, empty = _ids(raw[oc.lead_id])
    issues.extend(
        _bad_rows(
            empty,
            raw[oc.lead_id],
            ids,
            table=table,
            column=oc.lead_id,
            expected="is empty; every outcome needs a lead id",
        )
    )
    frame = pd.DataFrame({"lead_id": ids})
    for role in ("converted_at", "disqualified_at"):
        column = getattr(oc, role)
        if column is not None:
            frame[role] = _times(
                raw[column],
                table=table,
                column=column,
                ids=ids,
                assume_utc=t.read.assume_utc,
                issues=issues,
            )
    if oc.label is not None:
        frame["label"] = _labels(
            raw[oc.label.column],
            oc.label,
            table=table,
            ids=ids,
            issues=issues,
            label_key=f"{prefix}.columns.label",
        )
    unknown = ~ids.isin(known_ids).to_numpy(bool) & ~empty
    unknown_lead_policy("outcome_unknown_lead", s.policies.outcome_unknown_lead, unknown, raw[oc.lead_id],
                        ids, table=table, column=oc.lead_id, counts=counts, issues=issues)
    if issues:
        raise DataValidationError(issues)
    frame = frame[~unknown & ~empty]
    grouped = frame.groupby("lead_id", sort=False)
    out = leads.copy()
    for role in ("converted_at", "disqualified_at"):
        if role in frame.columns:
            first = grouped[role].min()
            out[role] = out["lead_id"].map(first).astype("datetime64[ns, UTC]")
    if "label" in frame.columns:
        label = grouped["label"].max()
        out["label"] = out["lead_id"].map(label).fillna(0).astype("int64")
    return out, src.description, len(raw), src.path
