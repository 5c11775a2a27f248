"""The data contract: what a leads table and an activities table must look like.

``validate_leads`` and ``validate_activities`` are the boundary. They return clean
frames with canonical dtypes (UTC timestamps, ``string`` ids, ``float64`` numbers) and
raise :class:`~features.errors.DataValidationError` listing every bad value, each
named by table, field, value, row and lead. Code behind the boundary trusts its input.

Policies for the awkward cases (each is tested):

- **Naive timestamps** (no UTC offset) are rejected: a CRM export in local time would
  otherwise shift every recency feature silently. Pass ``assume_utc=True`` (CLI
  ``--assume-utc``) to declare that naive values are UTC.
- **Duplicate lead ids** are rejected, naming both rows.
- **Activities of unknown leads** are rejected: a lead's history must not be scored
  against the wrong lead or dropped without a word.
- **Activities dated in the future** (after ``now`` plus five minutes of clock skew)
  are rejected. Activities dated before the lead was created are kept: CRMs merge
  anonymous tracking into a lead when it converts a form.
- **Negative company sizes** are rejected.
- **Unknown activity types** are kept: CRMs add custom types. They count in the
  generic engagement features (totals, active days, recency) and in no per-type
  feature. ``ValidatedActivities.unknown_types`` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import DataValidationError, ValidationIssue

__all__ = [
    "ACTIVITY_TYPES",
    "KEY_ACTIONS",
    "LEAD_CATEGORICAL_FIELDS",
    "LEAD_NUMERIC_FIELDS",
    "LEAD_OUTCOME_FIELDS",
    "LEAD_PII_FIELDS",
    "LEAD_TIMESTAMP_FIELDS",
    "ACTIVITY_OPTIONAL_FIELDS",
    "EARLIEST_TIMESTAMP",
    "LATEST_TIMESTAMP",
    "ValidatedActivities",
    "validate_leads",
    "validate_activities",
    "to_utc",
]

ACTIVITY_TYPES: tuple[str, ...] = (
    "page_view",
    "pricing_page_view",
    "email_open",
    "email_click",
    "form_submit",
    "content_download",
    "webinar_registered",
    "webinar_attended",
    "demo_request",
    "trial_signup",
    "chat",
    "unsubscribe",
)
"""Activity types with a meaning of their own. Others are kept as generic activity."""

KEY_ACTIONS: tuple[str, ...] = ("pricing_page_view", "demo_request", "webinar_attended")
"""Actions whose recency is a feature of its own."""

LEAD_CATEGORICAL_FIELDS: tuple[str, ...] = (
    "source",
    "utm_campaign",
    "country",
    "industry",
    "job_title",
    "seniority",
    "job_function",
)
LEAD_NUMERIC_FIELDS: tuple[str, ...] = ("company_size",)
LEAD_PII_FIELDS: tuple[str, ...] = ("email", "first_name", "last_name", "full_name", "phone")
"""Never a feature, never logged. Only derived, non-identifying facts are used."""
LEAD_OUTCOME_FIELDS: tuple[str, ...] = ("converted_at", "disqualified_at")
LEAD_TIMESTAMP_FIELDS: tuple[str, ...] = ("created_at", *LEAD_OUTCOME_FIELDS)
ACTIVITY_OPTIONAL_FIELDS: tuple[str, ...] = ("url", "campaign", "duration_s")

_CLOCK_SKEW = pd.Timedelta(minutes=5)
# CRM data outside these years is a typo or a sentinel, and pandas' nanosecond
# timestamps cannot hold much beyond 2262: name it rather than overflow later.
EARLIEST_TIMESTAMP = pd.Timestamp("1970-01-01T00:00:00Z")
LATEST_TIMESTAMP = pd.Timestamp("2200-01-01T00:00:00Z")
"""Timestamps must fall in [EARLIEST_TIMESTAMP, LATEST_TIMESTAMP), at every boundary."""
_EARLIEST, _LATEST = EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}:?\d{2}|UTC|GMT)\s*$"


@dataclass
class ValidatedActivities:
    """Clean activities and what the validation noticed without rejecting."""

    frame: pd.DataFrame
    unknown_types: dict[str, int] = field(default_factory=dict)


def _row_ids(frame: pd.DataFrame) -> pd.Series | None:
    """The raw lead-id column, for issue messages (formatted only for flagged rows)."""
    return frame["lead_id"] if "lead_id" in frame.columns else None


def _lead_at(lead_ids: pd.Series | None, row: int) -> str | None:
    if lead_ids is None:
        return None
    value = lead_ids.iloc[row]
    return None if pd.isna(value) else str(value)


def _issues_at(
    mask: np.ndarray,
    values: pd.Series,
    lead_ids: pd.Series | None,
    *,
    table: str,
    column: str,
    expected: str,
    limit: int = 100,
) -> list[ValidationIssue]:
    """One issue per flagged row (row numbers are 0-based positions in the input)."""
    rows = np.flatnonzero(mask)[:limit]
    return [
        ValidationIssue(
            table=table,
            field=column,
            value=_plain(values.iloc[r]),
            expected=expected,
            row=int(r),
            lead_id=_lead_at(lead_ids, int(r)),
        )
        for r in rows
    ]


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


def to_utc(
    values: pd.Series,
    *,
    table: str,
    column: str,
    lead_ids: pd.Series | None,
    assume_utc: bool,
    issues: list[ValidationIssue],
) -> pd.Series:
    """Parse a column to ``datetime64[ns, UTC]``, recording every bad value in ``issues``."""
    present = values.notna().to_numpy()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        if not assume_utc:
            issues.extend(
                _issues_at(
                    present,
                    values,
                    lead_ids,
                    table=table,
                    column=column,
                    expected="has no time zone; expected a UTC timestamp "
                    "(or pass assume_utc / --assume-utc)",
                    limit=5,
                )
            )
        parsed = values.dt.tz_localize("UTC")
    else:
        as_text = values.astype("string")
        naive = present & ~as_text.str.contains(_OFFSET_RE, regex=True).fillna(False).to_numpy(
            bool
        )
        parsed = pd.to_datetime(as_text, utc=True, errors="coerce", format="ISO8601")
        unparsable = present & parsed.isna().to_numpy()
        issues.extend(
            _issues_at(
                unparsable,
                values,
                lead_ids,
                table=table,
                column=column,
                expected="is not a timestamp; expected ISO 8601 such as '2026-03-01T09:30:00Z'",
            )
        )
        if not assume_utc:
            issues.extend(
                _issues_at(
                    naive & ~unparsable,
                    values,
                    lead_ids,
                    table=table,
                    column=column,
                    expected="has no time zone; expected a UTC offset such as 'Z' or '+00:00' "
                    "(or pass assume_utc / --assume-utc)",
                    limit=5,
                )
            )
    # On the integer view (in the column's own unit): NaT is the int64 minimum, never out
    # of range; a fraction of the cost of comparing Timestamps for a live request's rows.
    stamps = parsed.array
    ticks = stamps.asi8
    out_of_range = (ticks != np.iinfo(np.int64).min) & (
        (ticks < _EARLIEST.as_unit(stamps.unit).asm8.view(np.int64))
        | (ticks >= _LATEST.as_unit(stamps.unit).asm8.view(np.int64))
    )
    if out_of_range.any():
        issues.extend(
            _issues_at(
                out_of_range,
                values,
                lead_ids,
                table=table,
                column=column,
                expected=f"is out of range; expected a time from {_EARLIEST.year} "
                f"to {_LATEST.year - 1}",
            )
        )
        parsed = parsed.where(~out_of_range, pd.NaT)
    return parsed.astype("datetime64[ns, UTC]")


def _require_columns(frame: pd.DataFrame, table: str, required: tuple[str, ...]) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataValidationError(
            [
                ValidationIssue(
                    table=table,
                    field=c,
                    value=None,
                    expected=f"is missing; the table has columns {sorted(map(str, frame.columns))}",
                )
                for c in missing
            ]
        )


def validate_leads(
    leads: pd.DataFrame,
    *,
    assume_utc: bool = False,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Check a leads table against the contract and return it with canonical dtypes.

    Raises
    ------
    DataValidationError
        Listing every missing column and bad value, by field, value, row and lead.
    """
    table = "leads"
    _require_columns(leads, table, ("lead_id", "created_at"))
    # pandas >= 3 copies on write: columns replaced below never touch the caller's frame.
    out = leads.reset_index(drop=True)
    issues: list[ValidationIssue] = []
    ids = _row_ids(out)

    lead_id = out["lead_id"].astype("string")
    missing_id = out["lead_id"].isna().to_numpy() | (
        lead_id.str.strip().fillna("") == ""
    ).to_numpy()
    issues.extend(
        _issues_at(
            missing_id, out["lead_id"], ids, table=table, column="lead_id",
            expected="is empty; every lead needs a non-empty lead_id",
        )
    )
    out["lead_id"] = lead_id
    dup = out["lead_id"].duplicated(keep="first").to_numpy() & ~missing_id
    if dup.any():
        first_row = {v: i for i, v in reversed(list(enumerate(out["lead_id"].tolist())))}
        for r in np.flatnonzero(dup)[:100]:
            value = out["lead_id"].iloc[r]
            issues.append(
                ValidationIssue(
                    table=table, field="lead_id", value=value,
                    expected=f"is a duplicate of row {first_row[value]}; lead_id must be unique",
                    row=int(r), lead_id=value,
                )
            )

    for column in LEAD_TIMESTAMP_FIELDS:
        if column not in out.columns:
            out[column] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
            continue
        out[column] = to_utc(
            out[column], table=table, column=column, lead_ids=ids,
            assume_utc=assume_utc, issues=issues,
        )
    no_created = out["created_at"].isna().to_numpy() & leads["created_at"].isna().to_numpy()
    issues.extend(
        _issues_at(
            no_created, leads["created_at"], ids, table=table, column="created_at",
            expected="is missing; every lead needs created_at",
        )
    )
    if now is not None:
        limit = pd.Timestamp(now).tz_convert("UTC") + _CLOCK_SKEW
        for column in LEAD_TIMESTAMP_FIELDS:
            future = (out[column] > limit).fillna(False).to_numpy(bool)
            issues.extend(
                _issues_at(
                    future, out[column], ids, table=table, column=column,
                    expected=f"is in the future; expected a time before {limit.isoformat()}",
                )
            )
    for column in LEAD_OUTCOME_FIELDS:
        before = (out[column] < out["created_at"]).fillna(False).to_numpy(bool)
        issues.extend(
            _issues_at(
                before, out[column], ids, table=table, column=column,
                expected="is before created_at; an outcome cannot precede the lead",
            )
        )

    for column in LEAD_NUMERIC_FIELDS:
        if column not in out.columns:
            out[column] = np.nan
            continue
        raw = out[column]
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = (raw.notna().to_numpy() & numbers.isna().to_numpy())
        issues.extend(
            _issues_at(
                bad, raw, ids, table=table, column=column,
                expected="is not a number; expected a count of employees",
            )
        )
        negative = (numbers < 0).fillna(False).to_numpy(bool)
        issues.extend(
            _issues_at(
                negative, raw, ids, table=table, column=column,
                expected="is negative; expected a count of employees >= 0",
            )
        )
        out[column] = numbers

    for column in (*LEAD_CATEGORICAL_FIELDS, *LEAD_PII_FIELDS):
        if column in out.columns:
            out[column] = out[column].astype("string")
        elif column in LEAD_CATEGORICAL_FIELDS or column == "email":
            out[column] = pd.Series(pd.NA, index=out.index, dtype="string")

    if issues:
        raise DataValidationError(issues)
    return out


_KNOWN_TYPES = pa.array(list(ACTIVITY_TYPES), pa.string())


def validate_activities(
    activities: pd.DataFrame,
    *,
    lead_ids: pd.Series | None = None,
    assume_utc: bool = False,
    now: pd.Timestamp | None = None,
) -> ValidatedActivities:
    """Check an activities table against the contract and return it with canonical dtypes.

    ``lead_ids`` are the known leads; activities of any other lead are rejected.
    ``now`` enables the future-date check.
    """
    table = "activities"
    _require_columns(activities, table, ("lead_id", "occurred_at", "type"))
    out = activities.reset_index(drop=True)  # copy on write, as in validate_leads
    issues: list[ValidationIssue] = []
    ids = _row_ids(out)

    missing_id = out["lead_id"].isna().to_numpy()
    issues.extend(
        _issues_at(
            missing_id, out["lead_id"], ids, table=table, column="lead_id",
            expected="is missing; every activity needs the lead_id it belongs to",
        )
    )
    out["lead_id"] = out["lead_id"].astype("string")
    if lead_ids is not None:
        # Arrow's hash lookup: pandas' isin boxes every id as a Python object.
        known = pa.array(pd.Series(lead_ids).astype("string").dropna().unique())
        found = pc.is_in(pa.array(out["lead_id"]), value_set=known)
        unknown = ~found.to_numpy(zero_copy_only=False) & ~missing_id
        issues.extend(
            _issues_at(
                unknown, out["lead_id"], ids, table=table, column="lead_id",
                expected="is not a known lead; every activity must belong to a lead in the leads table",
            )
        )

    raw_time = out["occurred_at"]
    out["occurred_at"] = to_utc(
        raw_time, table=table, column="occurred_at", lead_ids=ids,
        assume_utc=assume_utc, issues=issues,
    )
    no_time = raw_time.isna().to_numpy()
    issues.extend(
        _issues_at(
            no_time, raw_time, ids, table=table, column="occurred_at",
            expected="is missing; every activity needs occurred_at",
        )
    )
    if now is not None:
        limit = pd.Timestamp(now).tz_convert("UTC") + _CLOCK_SKEW
        future = (out["occurred_at"] > limit).fillna(False).to_numpy(bool)
        issues.extend(
            _issues_at(
                future, raw_time, ids, table=table, column="occurred_at",
                expected=f"is in the future; expected a time before {limit.isoformat()}",
            )
        )

    types = out["type"].astype("string").str.strip().str.lower()
    no_type = (types.isna() | (types == "")).fillna(True).to_numpy(bool)
    issues.extend(
        _issues_at(
            no_type, out["type"], ids, table=table, column="type",
            expected=f"is empty; expected an activity type such as one of {list(ACTIVITY_TYPES)}",
        )
    )
    out["type"] = types
    if "duration_s" in out.columns:
        raw = out["duration_s"]
        seconds = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = (raw.notna().to_numpy() & seconds.isna().to_numpy()) | (seconds < 0).fillna(
            False
        ).to_numpy(bool)
        issues.extend(
            _issues_at(
                bad, raw, ids, table=table, column="duration_s",
                expected="is not a duration; expected seconds >= 0",
            )
        )
        out["duration_s"] = seconds
    for column in ("url", "campaign"):
        if column in out.columns:
            out[column] = out[column].astype("string")

    if issues:
        raise DataValidationError(issues)
    known_types = pc.is_in(pa.array(out["type"]), value_set=_KNOWN_TYPES)
    unknown_types: dict[str, int] = {}
    if not pc.all(known_types).as_py():
        unknown = out.loc[~known_types.to_numpy(zero_copy_only=False), "type"].value_counts()
        unknown_types = {str(k): int(v) for k, v in unknown.items()}
    return ValidatedActivities(frame=out, unknown_types=unknown_types)
