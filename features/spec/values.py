"""Typed columns from raw ones, each bad value a :class:`~features.errors.ValidationIssue`.

The shared stage of every table: the header check (every column has exactly one role,
or ``default_role: ignore`` covers it), ids, times, labels, numbers, generated ids and
the content fingerprint. Issues name the table, the field, the value, what was
expected, the row (0-based over the source's data rows) and the lead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.errors import ValidationIssue
from features.schema import to_utc
from features.spec.model import CsvOptions, DatasetSpec, LabelSpec, _data_token, _suggest
from features.spec.parse import spec_error

__all__ = ["check_columns"]

MAX_ISSUES_PER_COLUMN = 100


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
    positions = np.flatnonzero(mask)[:MAX_ISSUES_PER_COLUMN]
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


def unknown_lead_policy(
    policy: str, action: str, unknown: np.ndarray, raw: pd.Series, ids: pd.Series, *,
    table: str, column: str, counts: dict[str, dict[str, Any]], issues: list[ValidationIssue],
) -> None:
    """Count the rows of a table whose lead is not in the leads table, under ``policy``
    (``error`` or ``drop``); with ``error``, name each in ``issues``."""
    counts[policy] = {"action": action, "rows": int(unknown.sum())}
    if unknown.any() and action == "error":
        issues.extend(_bad_rows(
            unknown, raw, ids, table=table, column=column,
            expected=f"is not a lead of the leads table (policies.{policy}: error; "
            "set it to drop to drop such rows)",
        ))
