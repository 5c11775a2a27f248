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

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from features.errors import DataValidationError, SpecError, ValidationIssue
from features.schema import to_utc
from features.spec.model import (
    AnySpec,
    CsvOptions,
    DatasetSpec,
    DatasetSpecV2,
    LabelSpec,
    LeadColumns,
    _data_token,
    _entry_name,
    _lead_role_paths,
    _suggest,
    parse_duration,
)
from features.spec.parse import spec_error, validation_problems
from features.spec.sources import file_sha256, open_source

__all__ = [
    "ActivityKind",
    "Snapshots",
    "TrainingOptions",
    "SpecTables",
    "SpecDataset",
    "load_tables",
    "load_dataset",
    "check_columns",
    "resolve_data_dir",
]

_MAX_ISSUES_PER_COLUMN = 100


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ActivityKind:
    """A kind of activity: its name (the ``type`` value), reason text, weight and CRM types."""

    name: str
    label: str
    weight: float
    key_action: bool
    types: tuple[str, ...]


@dataclass(frozen=True)
class Snapshots:
    """One snapshot per lead at the ``anchor`` column (a leads time column) plus each offset."""

    anchor: str
    offsets: tuple[pd.Timedelta, ...]


@dataclass(frozen=True)
class TrainingOptions:
    """The spec's ``training:`` section with durations parsed."""

    horizon: pd.Timedelta
    every: pd.Timedelta
    snapshots: Snapshots | None
    censoring: str


@dataclass(frozen=True)
class SpecTables:
    """Every table of a spec, loaded, typed and checked; what the feature-set code consumes.

    ``leads``: ``lead_id`` (``string``), ``created_at`` (UTC; only when ``has_time``),
    ``converted_at`` and ``disqualified_at`` (UTC, NaT when absent; only when the spec
    gives them, from the leads or the outcomes table), ``label`` (``int64`` 0/1; only
    when the outcome is a label column), the ``time`` columns (UTC), then the features
    under safe names: categorical as ``string``, numeric as ``float64``. Rows in the
    source's order, less any dropped by a policy.

    ``leaky``: ``lead_id`` and the leaky columns, row for row with ``leads``.

    ``activities`` (or None): ``lead_id``, ``occurred_at`` (UTC), ``type`` (the kind's
    name when the CRM type is mapped, else the CRM's value, trimmed), ``raw_type``
    (the CRM's value, trimmed), then the value columns as ``float64``; in source order.

    ``policy_counts`` has one entry per policy that applies to the spec's tables
    (``converted_before_created`` only with ``created_at``, ``outcome_unknown_lead``
    only with an outcomes table, ``activity_*`` only with activities):
    ``{"action": ..., "rows": n}``, where ``rows`` is how many rows broke the rule
    (dropped, clipped, or for ``keep`` kept); a lead policy that dropped leads also
    counts their ``activities``.
    """

    spec: AnySpec
    leads: pd.DataFrame
    leaky: pd.DataFrame
    activities: pd.DataFrame | None
    kinds: tuple[ActivityKind, ...]
    unmapped_types: dict[str, int]
    policy_counts: dict[str, dict[str, Any]]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    leaky_names: tuple[str, ...]
    time_columns: tuple[str, ...]
    value_columns: tuple[str, ...]
    labels: dict[str, str]
    descriptions: dict[str, str]
    original_names: dict[str, str]
    leaky_reasons: dict[str, str]
    fingerprint: str
    sources: dict[str, str]
    rows_read: dict[str, int]
    has_time: bool
    training: TrainingOptions | None
    ignored: tuple[str, ...] = ()
    defaulted: tuple[str, ...] = ()
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """Feature columns of ``leads``, categorical first."""
        return [*self.categorical, *self.numeric]

    def summary(self) -> dict[str, Any]:
        """What was loaded, for the CLI and run metadata (names and counts, no values)."""
        s = self.spec.to_v2() if isinstance(self.spec, DatasetSpecV2) else None
        lc: Any = s.tables.leads.columns if s is not None else self.spec.columns
        leads = self.leads
        outcome: dict[str, Any] = {}
        for role in ("converted_at", "disqualified_at"):
            if role in leads.columns:
                outcome[role] = int(leads[role].notna().sum())
        if "label" in leads.columns:
            outcome["label"] = int(leads["label"].sum())
        tables: dict[str, Any] = {}
        for name, description in self.sources.items():
            tables[name] = {"source": description, "rows_read": self.rows_read.get(name, 0)}
        tables["leads"]["rows"] = len(leads)
        if self.activities is not None:
            tables["activities"]["rows"] = len(self.activities)
        training = None
        if self.training is not None:
            t = self.training
            training = {
                "horizon": _duration_text(t.horizon),
                "every": _duration_text(t.every),
                "censoring": t.censoring,
                "snapshots": None
                if t.snapshots is None
                else {
                    "anchor": t.snapshots.anchor,
                    "offsets": [_duration_text(o) for o in t.snapshots.offsets],
                },
            }
        return {
            "version": 2 if s is not None else 1,
            "name": self.spec.name,
            "tables": tables,
            "fingerprint": self.fingerprint,
            "has_time": self.has_time,
            "id": lc.id if isinstance(lc.id, str) else "(generated)",
            "created_at": lc.created_at,
            "outcome_columns": _outcome_columns(s, lc),
            "outcomes": outcome,
            "time": [self.original_names[n] for n in self.time_columns],
            "categorical": [self.original_names[n] for n in self.categorical],
            "numeric": [self.original_names[n] for n in self.numeric],
            "leaky": [self.original_names[n] for n in self.leaky_names],
            "pii": [e.column for e in lc.pii],
            "ignored": list(self.ignored),
            "defaulted_to_ignore": list(self.defaulted),
            "values": list(self.value_columns),
            "kinds": [
                {
                    "name": k.name,
                    "label": k.label,
                    "weight": k.weight,
                    "key_action": k.key_action,
                    "types": list(k.types),
                    "events": n,
                }
                for k, n in zip(self.kinds, self.kind_counts().values(), strict=True)
            ],
            "unmapped_types": dict(self.unmapped_types),
            "policies": {k: dict(v) for k, v in self.policy_counts.items()},
            "training": training,
        }

    def kind_counts(self) -> dict[str, int]:
        """Events per kind, in spec order (0 for a kind with no events)."""
        if self.activities is None:
            return {k.name: 0 for k in self.kinds}
        counts = self.activities["type"].value_counts()
        return {k.name: int(counts.get(k.name, 0)) for k in self.kinds}


def _duration_text(value: pd.Timedelta) -> str:
    """A Timedelta as the spec writes it: ``90d``, ``12h``, else pandas' text."""
    for unit, step in (("d", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1))):
        if value % step == pd.Timedelta(0):
            return f"{value // step}{unit}"
    return str(value)


def _outcome_columns(s: DatasetSpecV2 | None, lc: Any) -> dict[str, str]:
    """Outcome role -> source column (``outcomes.<column>`` when from the outcomes table)."""
    if s is not None and s.tables.outcomes is not None:
        oc, prefix = s.tables.outcomes.columns, "outcomes."
    else:
        oc, prefix = lc, ""
    out = {
        role: prefix + getattr(oc, role)
        for role in ("converted_at", "disqualified_at")
        if getattr(oc, role, None) is not None
    }
    if oc.label is not None:
        out["label"] = prefix + oc.label.column
    return out


@dataclass
class SpecDataset:
    """A flat table loaded through a spec: the frame training trusts, and what it came from.

    ``frame`` has ``lead_id`` (``string``), ``created_at`` (UTC, only when
    ``has_time``), ``label`` (``int64`` 0/1), then the features under their safe
    names: categorical as ``string``, numeric as ``float64``. Declared leaky columns
    are in ``leaky_frame`` (same rows and order, with ``lead_id``), never in
    ``frame``. PII and ignored columns are not loaded at all.

    ``fingerprint`` is the sha256 of the file's bytes for a file source (as in
    version 1, so that model versions recorded before spec version 2 still match),
    else :attr:`SpecTables.fingerprint` (of the loaded content).
    """

    spec: AnySpec
    frame: pd.DataFrame
    leaky_frame: pd.DataFrame
    categorical: list[str]
    numeric: list[str]
    leaky: list[str]
    has_time: bool
    labels: dict[str, str]
    descriptions: dict[str, str]
    original_names: dict[str, str]
    leaky_reasons: dict[str, str]
    fingerprint: str
    source: Path | str
    ignored: list[str] = field(default_factory=list)
    defaulted: list[str] = field(default_factory=list)
    converted_at: pd.Series | None = None

    @property
    def features(self) -> list[str]:
        """Feature columns of ``frame``, categorical first."""
        return [*self.categorical, *self.numeric]

    @property
    def label_rate(self) -> float:
        """Share of leads that converted."""
        return float(self.frame["label"].mean()) if len(self.frame) else float("nan")

    def summary(self) -> dict[str, Any]:
        """What was loaded, for the CLI and run metadata (column names only, no values)."""
        v2 = self.spec.to_v2() if isinstance(self.spec, DatasetSpecV2) else None
        c: Any = (
            self.spec.columns if isinstance(self.spec, DatasetSpec) else v2.tables.leads.columns
        )
        dropped = (
            self.spec.read.drop_columns
            if isinstance(self.spec, DatasetSpec)
            else v2.tables.leads.read.drop_columns
        )
        return {
            "source": str(self.source),
            "fingerprint": self.fingerprint,
            "rows": len(self.frame),
            "positives": int(self.frame["label"].sum()),
            "label_rate": self.label_rate,
            "has_time": self.has_time,
            "id": c.id if isinstance(c.id, str) else "(generated)",
            "outcome": c.label.column if c.label is not None else c.converted_at,
            "created_at": c.created_at,
            "categorical": [self.original_names[n] for n in self.categorical],
            "numeric": [self.original_names[n] for n in self.numeric],
            "leaky": [self.original_names[n] for n in self.leaky],
            "pii": [e.column for e in c.pii],
            "ignored": list(self.ignored),
            "defaulted_to_ignore": list(self.defaulted),
            "dropped": list(dropped),
        }


# --------------------------------------------------------------------------- helpers


def _bad_rows(
    mask: np.ndarray,
    values: pd.Series,
    ids: pd.Series | None,
    *,
    table: str,
    column: str,
    expected: str,
    rows: np.ndarray | None = None,
) -> list[ValidationIssue]:
    """One issue per flagged position; ``rows`` maps positions to source rows (default: same)."""
    positions = np.flatnonzero(mask)[:_MAX_ISSUES_PER_COLUMN]
    out = []
    for p in positions:
        lead = None if ids is None or pd.isna(ids.iloc[p]) else str(ids.iloc[p])
        out.append(
            ValidationIssue(
                table=table,
                field=column,
                value=_plain(values.iloc[p]),
                expected=expected,
                row=int(p if rows is None else rows[p]),
                lead_id=lead,
            )
        )
    return out


def _plain(value: object) -> object:
    if value is pd.NA or value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_numbers(
    raw: pd.Series,
    csv: CsvOptions,
    *,
    table: str,
    column: str,
    ids: pd.Series | None,
    issues: list[ValidationIssue],
    record: bool = True,
) -> pd.Series:
    """A column as float64; values present but not numbers are recorded in ``issues``."""
    if pd.api.types.is_bool_dtype(raw.dtype) or pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype("float64")
    text = raw.astype("string").str.strip()
    if csv.thousands:
        text = text.str.replace(csv.thousands, "", regex=False)
    if csv.decimal != ".":
        text = text.str.replace(csv.decimal, ".", regex=False)
    numbers = pd.to_numeric(text, errors="coerce").astype("float64")
    bad = (
        raw.notna().to_numpy()
        & numbers.isna().to_numpy()
        & (text != "").fillna(False).to_numpy(bool)
    )
    if record:
        issues.extend(
            _bad_rows(
                bad,
                raw,
                ids,
                table=table,
                column=column,
                expected="is not a number; the spec lists this column as numeric",
            )
        )
    return numbers


def _labels(
    raw: pd.Series,
    label: LabelSpec,
    *,
    table: str,
    ids: pd.Series | None,
    issues: list[ValidationIssue],
    label_key: str,
) -> pd.Series:
    tokens = raw.map(lambda v: None if pd.isna(v) else _data_token(v), na_action=None)
    pos, neg = label.positive_tokens, label.negative_tokens
    missing = tokens.isna().to_numpy()
    issues.extend(
        _bad_rows(
            missing,
            raw,
            ids,
            table=table,
            column=label.column,
            expected="is missing; every lead needs an outcome",
        )
    )
    known = tokens.isin(pos | neg).to_numpy()
    expected = (
        f"is neither positive {sorted(map(str, label.positive))} nor negative "
        f"{sorted(map(str, label.negative))} ({label_key})"
    )
    issues.extend(
        _bad_rows(~known & ~missing, raw, ids, table=table, column=label.column, expected=expected)
    )
    return tokens.isin(pos).astype("int64")


def _check_header(
    origin: str,
    role_paths: Sequence[tuple[str, str]],
    default_role: str | None,
    columns: Sequence[str],
    *,
    table: str,
    columns_key: str,
) -> list[str]:
    present = list(columns)
    present_set = set(present)
    problems = []
    for path, column in role_paths:
        if column not in present_set:
            problems.append(
                f"{path}: {column!r} is not a column of {table}{_suggest(column, present)}"
            )
    named = {column for _, column in role_paths}
    unassigned = [c for c in present if c not in named]
    if unassigned and default_role != "ignore":
        listed = ", ".join(repr(c) for c in unassigned)
        problems.append(
            f"{columns_key}: {len(unassigned)} column(s) of {table} have no role: {listed}; "
            "give each a role (list unwanted ones under 'ignore'), or set "
            "'default_role: ignore' to ignore every unlisted column"
        )
    if problems:
        raise spec_error(origin, problems)
    return unassigned


def check_columns(spec: DatasetSpec, columns: Sequence[str], *, table: str) -> list[str]:
    """Check a version 1 spec against a table's header; return the columns ``default_role`` ignores.

    Raises
    ------
    SpecError
        Naming every column the spec mentions that the table lacks (with a
        suggestion) and every column of the table that has no role.
    """
    return _check_header(
        spec.origin,
        spec.role_paths(),
        spec.default_role,
        columns,
        table=table,
        columns_key="spec.columns",
    )


def _ids(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    ids = raw.astype("string").str.strip()
    empty = (ids.isna() | (ids == "")).fillna(True).to_numpy(bool)
    return ids, empty


def _times(
    raw: pd.Series,
    *,
    table: str,
    column: str,
    ids: pd.Series | None,
    assume_utc: bool,
    issues: list[ValidationIssue],
    required: str | None = None,
) -> pd.Series:
    parsed = to_utc(
        raw, table=table, column=column, lead_ids=ids, assume_utc=assume_utc, issues=issues
    )
    if required is not None:
        issues.extend(
            _bad_rows(
                raw.isna().to_numpy(), raw, ids, table=table, column=column, expected=required
            )
        )
    return parsed.reset_index(drop=True)


def _generated_ids(raw: pd.DataFrame) -> pd.Series:
    """``row-<sha256 of the row's values>``; identical rows get -2, -3... (see GeneratedId)."""
    columns = sorted(raw.columns)
    # "column\x1evalue" per cell, cells joined by \x1f, missing as \x00: unambiguous text.
    joined = pd.Series("", index=raw.index, dtype="string")
    for i, c in enumerate(columns):
        cell = raw[c].astype("string").fillna("\x00")
        joined = joined + ("" if i == 0 else "\x1f") + f"{c}\x1e" + cell
    digests = pd.Series(
        ["row-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16] for text in joined],
        index=raw.index,
        dtype="object",
    )
    occurrence = digests.groupby(digests).cumcount()
    ids = digests.where(occurrence == 0, digests + "-" + (occurrence + 1).astype(str))
    return ids.astype("string").reset_index(drop=True)


def _fingerprint(frames: dict[str, pd.DataFrame | None]) -> str:
    """sha256 of the loaded content: names, dtypes and values of every frame, in order."""
    digest = hashlib.sha256()
    for name, frame in frames.items():
        if frame is None:
            continue
        digest.update(f"[{name}]".encode())
        for column in frame.columns:
            digest.update(f"{column}:{frame[column].dtype};".encode())
        if len(frame):
            hashed = pd.util.hash_pandas_object(frame, index=False, categorize=False)
            digest.update(hashed.to_numpy().tobytes())
    return digest.hexdigest()


def _policy_hint(v1: bool, text: str) -> str:
    return "" if v1 else f" ({text})"


# --------------------------------------------------------------------------- load_tables


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
        for r in np.flatnonzero(dup)[:_MAX_ISSUES_PER_COLUMN]:
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

    training = None
    if s.training is not None:
        t = s.training
        snaps = None
        if t.snapshots is not None:
            anchor = {e.column: _entry_name(e) for e in lc.time}.get(
                t.snapshots.anchor, t.snapshots.anchor
            )
            snaps = Snapshots(anchor, tuple(parse_duration(o) for o in t.snapshots.offsets))
        training = TrainingOptions(
            horizon=parse_duration(t.horizon),
            every=parse_duration(t.every),
            snapshots=snaps,
            censoring=t.censoring,
        )

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
    src = open_source(
        t.source,
        t.read,
        origin=s.origin,
        table="outcomes",
        key=f"{prefix}.source",
        data_dir=data_dir,
    )
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
    counts["outcome_unknown_lead"] = {
        "action": s.policies.outcome_unknown_lead,
        "rows": int(unknown.sum()),
    }
    if unknown.any() and s.policies.outcome_unknown_lead == "error":
        issues.extend(
            _bad_rows(
                unknown,
                raw[oc.lead_id],
                ids,
                table=table,
                column=oc.lead_id,
                expected="is not a lead of the leads table (policies.outcome_unknown_lead: error; "
                "set it to drop to drop such rows)",
            )
        )
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
    src = open_source(
        t.source,
        t.read,
        origin=s.origin,
        table="activities",
        key=f"{prefix}.source",
        data_dir=data_dir,
    )
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
    counts["activity_unknown_lead"] = {
        "action": s.policies.activity_unknown_lead,
        "rows": int(unknown.sum()),
    }
    if unknown.any() and s.policies.activity_unknown_lead == "error":
        issues.extend(
            _bad_rows(
                unknown,
                raw[ac.lead_id],
                ids,
                table=table,
                column=ac.lead_id,
                expected="is not a lead of the leads table (policies.activity_unknown_lead: error; "
                "set it to drop to drop such rows)",
            )
        )
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


# --------------------------------------------------------------------------- load_dataset


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
