"""The activity log: typed events, the unknown-lead and after-outcome policies, kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataValidationError, SpecError, ValidationIssue
from features.spec.model import CsvOptions, DatasetSpecV2
from features.spec.sources import open_table
from features.spec.tables import ActivityKind
from features.spec.values import (
    _bad_rows,
    _check_header,
    _ids,
    _times,
    _to_numbers,
    unknown_lead_policy,
)

__all__: list[str] = []


def _load_activities(
    s: DatasetSpecV2,
    leads: pd.DataFrame,
    known_ids: set[str],
    dropped_ids: set[str],
    dropped_by: dict[str, set[str]],
    data_dir: Path | None,
    counts: dict[str, dict[str, Any]],
) -> tuple[pd.DataFrame, tuple[ActivityKind, ...], dict[str, int], str, int, Path | None]:
    t = s.tables.activities
    assert t is not None
    ac = t.columns
    prefix = "spec.tables.activities"
    src = open_table(s, "activities", data_dir)
    paths = [
        (f"{prefix}.columns.lead_id", ac.lead_id),
        (f"{prefix}.columns.occurred_at", ac.occurred_at),
        (f"{prefix}.columns.type", ac.type),
    ]
    paths += [(f"{prefix}.columns.values.{n}", c) for n, c in ac.values.items()]
    wanted = [c for _, c in paths]
    paths += [(f"{prefix}.columns.ignore[{i}]", e.column) for i, e in enumerate(ac.ignore)]
    paths += [(f"{prefix}.read.drop_columns[{i}]", c) for i, c in enumerate(t.read.drop_columns)]
    _check_header(
        s.origin,
        paths,
        t.default_role,
        src.header(),
        table=src.name,
        columns_key=f"{prefix}.columns",
    )
    raw = src.read(wanted, numeric=set(ac.values.values()))
    table = src.name
    csv = t.source.csv_options if t.source.kind == "file" else CsvOptions()
    issues: list[ValidationIssue] = []
    ids, empty = _ids(raw[ac.lead_id])
    issues.extend(
        _bad_rows(
            empty,
            raw[ac.lead_id],
            ids,
            table=table,
            column=ac.lead_id,
            expected="is empty; every activity needs a lead id",
        )
    )
    occurred = _times(
        raw[ac.occurred_at],
        table=table,
        column=ac.occurred_at,
        ids=ids,
        assume_utc=t.read.assume_utc,
        issues=issues,
        required="is missing; every activity needs a time",
    )
    raw_type = raw[ac.type].astype("string").str.strip()
    no_type = (raw_type.isna() | (raw_type == "")).fillna(True).to_numpy(bool)
    issues.extend(
        _bad_rows(
            no_type,
            raw[ac.type],
            ids,
            table=table,
            column=ac.type,
            expected="is missing; every activity needs a type",
        )
    )
    frame = pd.DataFrame({"lead_id": ids, "occurred_at": occurred, "raw_type": raw_type})
    for name, column in ac.values.items():
        frame[name] = _to_numbers(
            raw[column], csv, table=table, column=column, ids=ids, issues=issues
        )

    # leads dropped by a policy take their activities with them (counted there)
    of_dropped = ids.isin(dropped_ids).to_numpy(bool) & ~empty
    for policy, lead_set in dropped_by.items():
        if policy in counts and counts[policy]["action"] == "drop":
            counts[policy]["activities"] = int(ids.isin(lead_set).sum())
    unknown = ~ids.isin(known_ids).to_numpy(bool) & ~empty & ~of_dropped
    unknown_lead_policy("activity_unknown_lead", s.policies.activity_unknown_lead, unknown, raw[ac.lead_id],
                        ids, table=table, column=ac.lead_id, counts=counts, issues=issues)
    if issues:
        raise DataValidationError(issues)
    keep = ~unknown & ~of_dropped

    # after the outcome: the first of converted_at and disqualified_at
    ends = [c for c in ("converted_at", "disqualified_at") if c in leads.columns]
    after = np.zeros(len(frame), dtype=bool)
    if ends:
        end = leads[ends].min(axis=1) if len(ends) > 1 else leads[ends[0]]
        end_by_lead = pd.Series(end.to_numpy(), index=leads["lead_id"].to_numpy())
        lead_end = frame["lead_id"].map(end_by_lead)
        after = (frame["occurred_at"] > lead_end).fillna(False).to_numpy(bool) & keep
    counts["activity_after_outcome"] = {
        "action": s.policies.activity_after_outcome,
        "rows": int(after.sum()),
    }
    if s.policies.activity_after_outcome == "drop":
        keep &= ~after
    frame = frame[keep].reset_index(drop=True)

    # kinds
    kinds = tuple(
        ActivityKind(
            name, k.label, float(k.weight), bool(k.key_action), tuple(v.strip() for v in k.types)
        )
        for name, k in t.kinds.items()
    )
    mapping = {raw_value: k.name for k in kinds for raw_value in k.types}
    kind_names = {k.name for k in kinds}
    mapped = frame["raw_type"].map(mapping)
    unmapped_mask = mapped.isna()
    unmapped_counts = frame.loc[unmapped_mask, "raw_type"].value_counts()
    clash = sorted(set(unmapped_counts.index) & kind_names)
    if clash:
        raise SpecError(
            f"{s.origin}: {prefix}.kinds: the CRM type {clash[0]!r} is not mapped to a kind but "
            f"is also a kind's name, so 'type' would mean two things; add it to "
            f"kinds.{clash[0]}.types or rename the kind"
        )
    unmapped = {
        str(k): int(v)
        for k, v in sorted(unmapped_counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    }
    frame.insert(2, "type", mapped.fillna(frame["raw_type"]).astype("string"))
    frame["raw_type"] = frame["raw_type"].astype("string")
    frame["lead_id"] = frame["lead_id"].astype("string")
    return frame, kinds, unmapped, src.description, len(raw), src.path
