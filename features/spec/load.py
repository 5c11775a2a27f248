"""Loading through a spec: roles into typed columns, row policies, activity kinds.

:func:`load_tables` reads every table of a spec (version 1 specs are converted to the
version 2 model first) and returns a :class:`SpecTables`. The stages, in order:

1. **Header**: each table's columns against the spec (every column has exactly one
   role, or ``default_role: ignore`` covers it; a role naming a missing column is an
   error with a suggestion). Only columns with a use are read.
2. **Values**: ids, times, labels, numbers, categoricals, each bad value a
   :class:`~features.errors.ValidationIssue` (table, field, value, expected, row, lead).
3. **Outcomes**: from the leads columns or the outcomes table (the first time per
   lead; a lead with no outcome row has not converted).
4. **Policies**: ``duplicate_id``, ``converted_before_created``, ``outcome_unknown_lead``,
   ``activity_unknown_lead``, ``activity_after_outcome``. ``error`` (the default)
   lists the rows; ``drop`` and ``clip`` are counted in
   :attr:`SpecTables.policy_counts`, so nothing disappears without a number.
5. **Kinds**: the CRM's activity types mapped to the spec's kinds; the rest are
   counted in :attr:`SpecTables.unmapped_types`.

All value and policy problems of one table are raised together; nothing is returned
half-loaded. :func:`load_dataset` keeps version 1's :class:`SpecDataset` for flat specs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from features.errors import DataValidationError, SpecError, ValidationIssue
from features.spec.activities import _load_activities
from features.spec.model import (
    AnySpec,
    CsvOptions,
    DatasetSpec,
    DatasetSpecV2,
    LeadColumns,
    _entry_name,
    _lead_role_paths,
    parse_duration,
)
from features.spec.outcomes import _merge_outcomes
from features.spec.parse import spec_error, validation_problems
from features.spec.sources import file_sha256, open_source
from features.spec.tables import ActivityKind, Snapshots, SpecDataset, SpecTables, TrainingOptions
from features.spec.values import (
    MAX_ISSUES_PER_COLUMN,
    _bad_rows,
    _check_header,
    _fingerprint,
    _generated_ids,
    _ids,
    _labels,
    _times,
    _to_numbers,
)

__all__ = ["load_tables", "load_dataset", "resolve_data_dir"]


def _policy_hint(v1: bool, text: str) -> str:
    """How to relax a policy, in version 2 messages (version 1 messages stay as they were)."""
    return "" if v1 else f" ({text})"


def resolve_data_dir(spec: AnySpec, data_path: str | Path | None = None) -> Path | None:
    """The folder a version 2 spec's relative paths resolve against.

    ``data_path`` if given (``--data DIR``), else the spec's ``data_dir`` (relative to
    the spec file), else the spec file's folder.
    """
    if data_path is not None:
        path = Path(data_path).expanduser().resolve()
        if isinstance(spec, DatasetSpecV2) and not path.is_dir():
            raise SpecError(
                f"{spec.origin}: the data folder {str(path)!r} "
                + ("is a file" if path.is_file() else "does not exist")
                + "; for a version 2 spec, --data names the folder its sources are relative to"
            )
        return path
    if isinstance(spec, DatasetSpec):
        return spec.base_dir
    folder = spec.default_data_dir()
    return folder.resolve() if folder is not None else None


def _as_v2(spec: AnySpec, data_path: str | Path | None) -> DatasetSpecV2:
    if isinstance(spec, DatasetSpecV2):
        return spec
    try:
        return spec.to_v2(data_path)
    except ValidationError as exc:  # a v1 spec the v2 model refuses (a feature named converted_at)
        raise spec_error(spec.origin, validation_problems(exc)) from None


def _utc_date(value: str) -> pd.Timestamp:
    """An ISO date or timestamp of the spec as UTC (naive values are UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def training_options(s: DatasetSpecV2) -> TrainingOptions | None:
    """The spec's ``training:`` section with durations and dates parsed."""
    if s.training is None:
        return None
    t = s.training
    snaps = None
    if t.snapshots is not None:
        anchor = {e.column: _entry_name(e) for e in s.tables.leads.columns.time}.get(
            t.snapshots.anchor, t.snapshots.anchor
        )
        snaps = Snapshots(anchor, tuple(parse_duration(o) for o in t.snapshots.offsets))
    return TrainingOptions(
        horizon=parse_duration(t.horizon),
        every=parse_duration(t.every),
        snapshots=snaps,
        censoring=t.censoring,
        **({} if t.split is None else {
            key: _utc_date(getattr(t.split, key)) for key in ("valid_from", "test_from")}),
    )


def load_tables(spec: AnySpec, *, data_path: str | Path | None = None) -> SpecTables:
    """Load every table of a spec into typed, checked frames.

    Parameters
    ----------
    spec
        A spec from :func:`~features.spec.load_spec`, of either version.
    data_path
        Version 1: the table to read (overrides ``source``). Version 2: the data
        folder that relative source paths resolve against (overrides ``data_dir``).

    Raises
    ------
    SpecError
        A source that is missing, unreadable or unreachable, a spec that does not fit
        a table's header, an unmapped activity type that equals a kind's name.
    DataValidationError
        Bad values and policy violations, each naming table, field, value and row.
    """
    v1 = isinstance(spec, DatasetSpec)
    s = _as_v2(spec, data_path)
    origin = s.origin
    data_dir = None if v1 else resolve_data_dir(s, data_path)
    if s.contract == "builtin":
        from features.spec.contract import load_contract_tables

        return load_contract_tables(s, data_dir)
    leads_t = s.tables.leads
    lc: LeadColumns = leads_t.columns
    policies = s.policies
    counts: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    rows_read: dict[str, int] = {}
    files: dict[str, Path] = {}

    lprefix = "spec.columns" if v1 else "spec.tables.leads.columns"
    label_key = f"{lprefix}.label"
    missing_msg = None
    if v1:
        assert isinstance(spec, DatasetSpec)
        missing_msg = f"{origin}: data file {{path!r}} does not exist" + (
            "" if data_path is not None else " (spec.source); pass another file with --data"
        )
    src = open_source(
        leads_t.source,
        leads_t.read,
        origin=origin,
        table="leads",
        key="spec.source" if v1 else "spec.tables.leads.source",
        data_dir=data_dir,
        v1_name=v1,
        missing_file_message=missing_msg,
    )
    table = src.name
    sources["leads"] = src.description
    if src.path is not None:
        files["leads"] = src.path

    # 1. header
    role_paths = _lead_role_paths(lc, lprefix)
    read_key = "spec.read" if v1 else "spec.tables.leads.read"
    role_paths += [
        (f"{read_key}.drop_columns[{i}]", c) for i, c in enumerate(leads_t.read.drop_columns)
    ]
    defaulted = _check_header(
        origin, role_paths, leads_t.default_role, src.header(), table=table, columns_key=lprefix
    )

    # Only the columns with a use are read: PII and ignored columns never enter memory.
    wanted: list[str] = []
    if lc.id_column is not None:
        wanted.append(lc.id_column)
    if lc.label is not None:
        wanted.append(lc.label.column)
    for col in (lc.converted_at, lc.disqualified_at, lc.created_at):
        if col is not None:
            wanted.append(col)
    wanted += [e.column for e in (*lc.time, *lc.categorical, *lc.numeric, *lc.leaky)]
    numeric_cols = {e.column for e in lc.numeric} | {
        e.column for e in lc.leaky if e.kind == "numeric"
    }
    raw = src.read(wanted, numeric=numeric_cols)
    rows_read["leads"] = len(raw)
    csv = leads_t.source.csv_options if leads_t.source.kind == "file" else CsvOptions()
    assume_utc = leads_t.read.assume_utc

    # 2. values
    issues: list[ValidationIssue] = []
    if lc.id_column is not None:
        ids, empty = _ids(raw[lc.id_column])
        id_field = lc.id_column
        issues.extend(
            _bad_rows(
                empty,
                raw[lc.id_column],
                ids,
                table=table,
                column=id_field,
                expected=f"is empty; every lead needs an id ({lprefix}.id)",
            )
        )
    else:
        ids = _generated_ids(raw[wanted])
        empty = np.zeros(len(ids), dtype=bool)
        id_field = "(generated id)"
    drop = np.zeros(len(raw), dtype=bool)

    dup = ids.duplicated(keep="first").to_numpy() & ~empty
    counts["duplicate_id"] = {"action": policies.duplicate_id, "rows": int(dup.sum())}
    if dup.any() and policies.duplicate_id == "error":
        first_row = ids[~empty].drop_duplicates(keep="first")
        first_at = dict(zip(first_row.tolist(), first_row.index.tolist(), strict=True))
        hint = _policy_hint(v1, "policies.duplicate_id: error; set it to drop to keep the first")
        for r in np.flatnonzero(dup)[:MAX_ISSUES_PER_COLUMN]:
            value = ids.iloc[r]
            issues.append(
                ValidationIssue(
                    table=table,
                    field=id_field,
                    value=value,
                    expected=f"is a duplicate of row {first_at[value]}; ids must be unique{hint}",
                    row=int(r),
                    lead_id=value,
                )
            )
    elif dup.any():
        drop |= dup

    out = pd.DataFrame({"lead_id": ids})
    if lc.created_at is not None:
        out["created_at"] = _times(
            raw[lc.created_at],
            table=table,
            column=lc.created_at,
            ids=ids,
            assume_utc=assume_utc,
            issues=issues,
            required="is missing; with created_at every lead needs a time",
        )
    outcome_fields: dict[str, str] = {}  # output column -> the source column, for messages
    for role in ("converted_at", "disqualified_at"):
        column = getattr(lc, role)
        if column is not None:
            out[role] = _times(
                raw[column],
                table=table,
                column=column,
                ids=ids,
                assume_utc=assume_utc,
                issues=issues,
            )
            outcome_fields[role] = column
    if lc.label is not None:
        out["label"] = _labels(
            raw[lc.label.column], lc.label, table=table, ids=ids, issues=issues, label_key=label_key
        )
    time_columns = []
    labels: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    original: dict[str, str] = {}
    for entry in lc.time:
        name = _entry_name(entry)
        out[name] = _times(
            raw[entry.column],
            table=table,
            column=entry.column,
            ids=ids,
            assume_utc=assume_utc,
            issues=issues,
        )
        time_columns.append(name)
        original[name] = entry.column
        labels[name] = entry.label or entry.column
        if entry.description:
            descriptions[name] = entry.description
    for entry in lc.categorical:
        name = _entry_name(entry)
        out[name] = raw[entry.column].astype("string")
    for entry in lc.numeric:
        name = _entry_name(entry)
        out[name] = _to_numbers(
            raw[entry.column], csv, table=table, column=entry.column, ids=ids, issues=issues
        )
    for entry in (*lc.categorical, *lc.numeric):
        name = _entry_name(entry)
        labels[name] = entry.label or entry.column
        if entry.description:
            descriptions[name] = entry.description
        original[name] = entry.column

    leaky = pd.DataFrame({"lead_id": ids})
    reasons: dict[str, str] = {}
    for entry in lc.leaky:
        name = _entry_name(entry)
        original[name] = entry.column
        if entry.reason:
            reasons[name] = entry.reason
        column = raw[entry.column]
        if entry.kind == "categorical":
            leaky[name] = column.astype("string")
            continue
        numbers = _to_numbers(
            column,
            csv,
            table=table,
            column=entry.column,
            ids=ids,
            issues=issues,
            record=entry.kind == "numeric",
        )
        parsed_all = numbers.notna().sum() == column.notna().sum()
        leaky[name] = numbers if entry.kind == "numeric" or parsed_all else column.astype("string")
    if issues:
        raise DataValidationError(issues)

    # 3. outcomes from a table of their own
    known_ids = set(ids[~drop & ~empty].tolist())
    if s.tables.outcomes is not None:
        out, o_desc, o_rows, o_file = _merge_outcomes(s, out, known_ids, data_dir, counts)
        sources["outcomes"], rows_read["outcomes"] = o_desc, o_rows
        if o_file is not None:
            files["outcomes"] = o_file
        oc = s.tables.outcomes.columns
        for role in ("converted_at", "disqualified_at"):
            if getattr(oc, role) is not None:
                outcome_fields[role] = f"outcomes.{getattr(oc, role)}"

    # 4. an outcome before the lead was created
    before_drop = np.zeros(len(out), dtype=bool)
    if lc.created_at is not None:
        before = np.zeros(len(out), dtype=bool)
        for role in outcome_fields:
            before |= (out[role] < out["created_at"]).fillna(False).to_numpy(bool)
        before &= ~drop
        action = policies.converted_before_created
        counts["converted_before_created"] = {"action": action, "rows": int(before.sum())}
        if before.any() and action == "error":
            hint = _policy_hint(
                v1, "policies.converted_before_created: error; set it to drop or clip"
            )
            for role, column in outcome_fields.items():
                mask = (out[role] < out["created_at"]).fillna(False).to_numpy(bool) & ~drop
                values = out[role] if column.startswith("outcomes.") else raw[column]
                what = "a conversion" if role == "converted_at" else "a disqualification"
                issues.extend(
                    _bad_rows(
                        mask,
                        values,
                        ids,
                        table=table,
                        column=column,
                        expected=f"is before created_at; {what} cannot precede the lead{hint}",
                    )
                )
            raise DataValidationError(issues)
        if before.any() and action == "drop":
            before_drop = before
            drop |= before
        elif before.any():  # clip
            for role in outcome_fields:
                early = (out[role] < out["created_at"]).fillna(False)
                out[role] = out[role].where(~early, out["created_at"])

    kept_ids = set(ids[~drop].tolist())
    dropped_by = {"converted_before_created": set(ids[before_drop].tolist()) - kept_ids}
    dropped_ids = set().union(*dropped_by.values())
    keep = ~drop
    out = out[keep].reset_index(drop=True)
    leaky = leaky[keep].reset_index(drop=True)

    # 5. activities
    activities = None
    kinds: tuple[ActivityKind, ...] = ()
    unmapped: dict[str, int] = {}
    value_columns: tuple[str, ...] = ()
    if s.tables.activities is not None:
        activities, kinds, unmapped, a_desc, a_rows, a_file = _load_activities(
            s, out, known_ids, dropped_ids, dropped_by, data_dir, counts
        )
        sources["activities"], rows_read["activities"] = a_desc, a_rows
        if a_file is not None:
            files["activities"] = a_file
        value_columns = tuple(s.tables.activities.columns.values)

    # column order: lead_id, created_at, converted_at, disqualified_at, label, time, features
    order = ["lead_id"] + [
        c for c in ("created_at", "converted_at", "disqualified_at", "label") if c in out.columns
    ]
    order += time_columns + [_entry_name(e) for e in (*lc.categorical, *lc.numeric)]
    out = out[order]

    training = training_options(s)

    ignored = [e.column for e in lc.ignore] + defaulted
    return SpecTables(
        spec=spec,
        leads=out,
        leaky=leaky,
        activities=activities,
        kinds=kinds,
        unmapped_types=unmapped,
        policy_counts=counts,
        categorical=tuple(_entry_name(e) for e in lc.categorical),
        numeric=tuple(_entry_name(e) for e in lc.numeric),
        leaky_names=tuple(_entry_name(e) for e in lc.leaky),
        time_columns=tuple(time_columns),
        value_columns=value_columns,
        labels=labels,
        descriptions=descriptions,
        original_names=original,
        leaky_reasons=reasons,
        fingerprint=_fingerprint({"leads": out, "leaky": leaky, "activities": activities}),
        sources=sources,
        rows_read=rows_read,
        has_time=s.has_time,
        training=training,
        ignored=tuple(ignored),
        defaulted=tuple(defaulted),
        files=files,
    )


def load_dataset(spec: AnySpec, data_path: str | Path | None = None) -> SpecDataset:
    """Load a flat table through a spec into the frame that training uses.

    Parameters
    ----------
    spec
        A spec from :func:`~features.spec.load_spec`: version 1, or version 2 with a
        leads table whose outcome gives a label (the activities table, if any, is
        checked but not part of the result; use :func:`load_tables` for it).
    data_path
        Version 1: the table to read (CSV or parquet), overriding ``spec.source``.
        Version 2: the data folder.

    Returns
    -------
    SpecDataset
        The frame (``lead_id``, ``created_at`` when there is time, ``label``, then
        features under safe names), the leaky columns apart, display labels, the
        safe-to-original name map and a fingerprint.

    Raises
    ------
    SpecError
        When the file is missing or unreadable, or the spec does not fit its header
        (unknown columns, with suggestions; columns without a role).
    DataValidationError
        Listing bad values by table, field, value, row (0-based data row) and lead:
        empty or duplicate ids, labels outside positive/negative, non-numbers in
        numeric columns, unparsable or naive timestamps.
    """
    tables = load_tables(spec, data_path=data_path)
    leads = tables.leads
    frame = leads[["lead_id"] + (["created_at"] if tables.has_time else [])].copy()
    converted_at = None
    if "label" in leads.columns:
        frame["label"] = leads["label"]
    else:
        converted_at = leads["converted_at"].rename("converted_at")
        frame["label"] = converted_at.notna().astype("int64")
    for name in tables.features:
        frame[name] = leads[name]
    leads_file = tables.files.get("leads")
    fingerprint = file_sha256(leads_file) if leads_file is not None else tables.fingerprint
    return SpecDataset(
        spec=spec,
        frame=frame,
        leaky_frame=tables.leaky,
        categorical=list(tables.categorical),
        numeric=list(tables.numeric),
        leaky=list(tables.leaky_names),
        has_time=tables.has_time,
        labels={k: v for k, v in tables.labels.items() if k in tables.features},
        descriptions={k: v for k, v in tables.descriptions.items() if k in tables.features},
        original_names={
            k: v for k, v in tables.original_names.items() if k not in tables.time_columns
        },
        leaky_reasons=tables.leaky_reasons,
        fingerprint=fingerprint,
        source=leads_file if leads_file is not None else tables.sources["leads"],
        ignored=list(tables.ignored),
        defaulted=list(tables.defaulted),
        converted_at=converted_at,
    )
