"""Funnel analytics: the reports lead-management practice asks for to close the loop.

``leadscore report`` turns a leads table, an activities table and (optionally) a set
of scores into one self-contained HTML page that a sales or marketing manager reads:
the funnel, the conversion rate by cohort, lead velocity, conversion by source and by
grade, time to conversion, and whether the scores are calibrated and rank well.

Everything is computed **as of** one moment (``--as-of``, by default the latest
timestamp in the data): leads created after it are left out, and a conversion,
disqualification or activity counts only if it happened at or before it. The same
inputs and ``as_of`` always give the same bytes, so the page carries the data date
rather than a wall-clock "generated at" line.

Definitions used throughout (the page repeats them in plain language):

- **Converted** means ``converted_at`` is set and not after ``as_of``.
- **Engaged** means at least one activity other than ``unsubscribe``.
- **Sales-ready action** means a ``demo_request`` or ``trial_signup`` activity
  (:data:`SALES_READY_ACTIONS`).
- **Qualified** (for lead velocity) means the lead took a sales-ready action, dated by
  its first one; when the scores carry a history over at least two calendar months,
  it means the lead was first graded A or B (:data:`QUALIFIED_GRADES`), dated by that
  score.
- **Score outcomes** (calibration, lift, conversion by grade): a score made as of time
  ``t`` (its ``as_of``; else its ``scored_at``) is compared with conversions strictly
  after ``t`` and within the horizon (90 days, the training label), counted only
  when the whole window has passed by ``as_of``. Leads already converted or disqualified at ``t`` are left out, as in the
  training set. When no window has fully passed, the page says so and shows the
  conversions observed so far as a lower bound.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.errors import DataValidationError, ValidationIssue
from features.grading import GRADES
from features.schema import (
    ACTIVITY_TYPES,
    LEAD_TIMESTAMP_FIELDS,
    to_utc,
    validate_activities,
    validate_leads,
)
from leadscore.atomic import write_atomically

__all__ = [
    "SALES_READY_ACTIONS",
    "QUALIFIED_GRADES",
    "DEFAULT_HORIZON",
    "FunnelTerms",
    "BUILTIN_TERMS",
    "ReportInputs",
    "ScoreOutcomes",
    "FunnelReport",
    "load_report_inputs",
    "validate_scores",
    "read_scores",
    "default_as_of",
    "funnel_counts",
    "conversion_by_cohort",
    "overall_conversion",
    "qualified_at_from_actions",
    "qualified_at_from_scores",
    "lead_velocity",
    "conversion_by_source",
    "time_to_conversion_days",
    "score_outcomes",
    "score_outcomes_from_labels",
    "calibration_table",
    "calibration_metrics",
    "conversion_by_grade",
    "build_report",
    "render_report_html",
    "read_run_health",
    "write_report",
]

SALES_READY_ACTIONS: tuple[str, ...] = ("demo_request", "trial_signup")
"""Activities that mean the lead asked to talk to sales or try the product."""

QUALIFIED_GRADES: tuple[str, ...] = ("A", "B")
"""Grades that count as a qualified lead (the default sales grades)."""

DEFAULT_HORIZON = pd.Timedelta(days=90)
"""The conversion window: the same 90 days as the training label."""

SCORE_REQUIRED_FIELDS: tuple[str, ...] = ("lead_id", "probability", "score", "grade", "route")
ROUTES: tuple[str, ...] = ("sales", "nurture")
MATRIX_ROUTES: tuple[str, ...] = ("sales", "targeted_nurture", "review", "recycle")
"""The fit x engagement matrix's cells (features.matrix.ROUTES), best first."""
_CELLS = {"sales": ("high", "high"), "targeted_nurture": ("high", "low"),
          "review": ("low", "high"), "recycle": ("low", "low")}


@dataclass(frozen=True)
class FunnelTerms:
    """What the funnel's words mean for one dataset: the built-in contract or a spec.

    The report's arithmetic is the same for every CRM; what changes is which activity
    types count as a sales-ready action, which field the "by source" section groups by,
    and whether outcomes are dated (``converted_at``) or a bare label. A spec's terms
    come from :func:`leadscore.spec_report.spec_terms`.
    """

    sales_ready_types: tuple[str, ...] = ("demo_request", "trial_signup")
    """Activity types (a spec's kind names) that mean the lead asked for sales."""
    sales_ready_label: str = "demo request or trial sign-up"
    disengaged_types: tuple[str, ...] = ("unsubscribe",)
    """Activity types that are not engagement."""
    known_types: tuple[str, ...] = ()
    """The vocabulary; others are listed in the method section. Empty: the contract's."""
    source_label: str = "Source"
    """The business field that "Conversion by source" groups by."""
    dated: bool = True
    """Outcomes carry a date (``converted_at``); False for a label-only export."""
    has_created: bool = True
    """Leads carry ``created_at``; False for a flat export with no time at all."""
    has_disqualified: bool = True
    has_activities: bool = True
    dataset: str = ""
    """The spec's name, for the page's header; empty for the built-in data."""


BUILTIN_TERMS = FunnelTerms()
"""The built-in contract's terms (:mod:`features.schema`)."""
UNKNOWN_SOURCE = "(unknown)"
_DAY = pd.Timedelta(days=1)
_MAX_ISSUES = 20


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class ReportInputs:
    """Validated tables for a report, and where they came from."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    scores: pd.DataFrame | None = None
    data_dir: Path | None = None
    scores_path: Path | None = None


def _file_issue(table: str, path: Path, expected: str) -> DataValidationError:
    return DataValidationError(
        [ValidationIssue(table=table, field="path", value=str(path), expected=expected)]
    )


def _naming_file(exc: DataValidationError, path: Path) -> DataValidationError:
    """The same issues, with the table named by its file so the user knows which to fix."""
    return DataValidationError([replace(i, table=f"{i.table} ({path})") for i in exc.issues])


def _read_parquet(path: Path, table: str, hint: str) -> pd.DataFrame:
    if not path.exists():
        raise _file_issue(table, path, f"does not exist; expected {hint}")
    if path.is_dir():
        # A directory is a parquet dataset (batch rescoring writes one part per chunk).
        # pyarrow skips names starting with '_' or '.', so must the emptiness check.
        parts = [
            p for p in path.rglob("*.parquet")
            if not any(part.startswith(("_", ".")) for part in p.relative_to(path).parts)
        ]
        if not parts:
            raise _file_issue(table, path, f"is a directory with no .parquet file; expected {hint}")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise _file_issue(
            table, path, f"could not be read as parquet ({type(exc).__name__}: {exc}); "
            f"expected {hint}"
        ) from exc


def _check_timestamp_range(frame: pd.DataFrame, table: str, path: Path) -> None:
    """Reject timestamps that pandas cannot hold in nanoseconds (years 1677 to 2262).

    Parquet stores microseconds, so a corrupt export can hold year -290253; converting
    it would otherwise fail deep inside pandas without naming the file or the field.
    """
    issues: list[ValidationIssue] = []
    for column in frame.columns:
        values = frame[column]
        if not pd.api.types.is_datetime64_any_dtype(values.dtype):
            continue
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            values = values.dt.tz_localize(None)
        bad = ((values < pd.Timestamp.min) | (values > pd.Timestamp.max)).to_numpy(bool)
        raw = values.to_numpy()
        ids = frame["lead_id"] if "lead_id" in frame.columns else None
        for r in np.flatnonzero(bad)[:_MAX_ISSUES]:
            issues.append(
                ValidationIssue(
                    table=f"{table} ({path})", field=str(column), value=str(raw[r]),
                    expected=f"is out of range; expected a timestamp between "
                    f"{pd.Timestamp.min.date()} and {pd.Timestamp.max.date()} "
                    f"({int(bad.sum())} such values in this column)",
                    row=int(r), lead_id=None if ids is None else str(ids.iloc[r]),
                )
            )
    if issues:
        raise DataValidationError(issues)


def load_report_inputs(
    data_dir: Path | str,
    scores_path: Path | str | None = None,
    *,
    assume_utc: bool = False,
) -> ReportInputs:
    """Read and validate ``leads.parquet``, ``activities.parquet`` and optional scores.

    Parameters
    ----------
    data_dir : path
        A directory holding ``leads.parquet`` and ``activities.parquet`` (as written
        by ``leadscore generate``).
    scores_path : path, optional
        Scores as one parquet file or a directory of parquet files, with at least
        ``lead_id``, ``probability``, ``score``, ``grade`` and ``route``.
    assume_utc : bool
        Read naive timestamps as UTC instead of rejecting them.

    Returns
    -------
    ReportInputs

    Raises
    ------
    DataValidationError
        Naming the file, the field, the value and what was expected.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise _file_issue(
            "data", data_dir,
            "is not a directory; expected --data DIR holding leads.parquet and activities.parquet",
        )
    leads_file = data_dir / "leads.parquet"
    activities_file = data_dir / "activities.parquet"
    raw_leads = _read_parquet(leads_file, "leads", "a leads table such as `leadscore generate` writes")
    raw_activities = _read_parquet(
        activities_file, "activities", "an activities table such as `leadscore generate` writes"
    )
    _check_timestamp_range(raw_leads, "leads", leads_file)
    _check_timestamp_range(raw_activities, "activities", activities_file)
    try:
        leads = validate_leads(raw_leads, assume_utc=assume_utc)
    except DataValidationError as exc:
        raise _naming_file(exc, leads_file) from exc
    try:
        activities = validate_activities(
            raw_activities, lead_ids=leads["lead_id"], assume_utc=assume_utc
        ).frame
    except DataValidationError as exc:
        raise _naming_file(exc, activities_file) from exc

    scores = None
    if scores_path is not None:
        scores_path = Path(scores_path)
        scores = read_scores(scores_path, leads["lead_id"], assume_utc=assume_utc)
    return ReportInputs(
        leads=leads, activities=activities, scores=scores,
        data_dir=data_dir, scores_path=scores_path,
    )


def read_scores(
    path: Path, lead_ids: pd.Series, *, assume_utc: bool = False,
    hint: str = "scores from batch rescoring or `leadscore rules score`",
) -> pd.DataFrame:
    """Read a parquet file or folder of scores and validate it against the leads' ids.

    Raises
    ------
    DataValidationError
        Naming the file, the field, the value and what was expected.
    """
    raw = _read_parquet(path, "scores", hint)
    _check_timestamp_range(raw, "scores", path)
    try:
        return validate_scores(raw, lead_ids=lead_ids, assume_utc=assume_utc)
    except DataValidationError as exc:
        raise _naming_file(exc, path) from exc


def _issues(
    mask: np.ndarray, values: pd.Series, ids: pd.Series, *, column: str, expected: str
) -> list[ValidationIssue]:
    rows = np.flatnonzero(mask)[:_MAX_ISSUES]
    out = []
    for r in rows:
        value = values.iloc[r]
        value = value.item() if isinstance(value, np.generic) else value
        lead = ids.iloc[r]
        out.append(
            ValidationIssue(
                table="scores", field=column, value=None if pd.isna(value) else value,
                expected=expected, row=int(r), lead_id=None if pd.isna(lead) else str(lead),
            )
        )
    return out


def validate_scores(
    scores: pd.DataFrame,
    *,
    lead_ids: pd.Series | None = None,
    assume_utc: bool = False,
) -> pd.DataFrame:
    """Check a scores table and return it with canonical dtypes.

    Required: ``lead_id``, ``probability`` (0 to 1), ``score`` (0 to 100), ``grade``
    (A to D) and ``route`` (sales or nurture). Optional: ``as_of`` and ``scored_at``
    (UTC), and ``scored_by``. Several rows per lead are a score history and must differ
    in that time.

    The time of a score, returned as ``scored_at``, is the moment it speaks for: its
    ``as_of`` when the table has one, else its ``scored_at``. Batch rescoring writes
    both, and its ``scored_at`` is the wall clock of the run: a rescore "as of June"
    made in October must be followed from June, or its outcomes are never observable.

    Raises
    ------
    DataValidationError
        Listing every missing column and bad value.
    """
    missing = [c for c in SCORE_REQUIRED_FIELDS if c not in scores.columns]
    if missing:
        raise DataValidationError(
            [
                ValidationIssue(
                    table="scores", field=c, value=None,
                    expected=f"is missing; the table has columns {sorted(map(str, scores.columns))}",
                )
                for c in missing
            ]
        )
    out = scores.reset_index(drop=True).copy()
    issues: list[ValidationIssue] = []
    out["lead_id"] = out["lead_id"].astype("string")
    ids = out["lead_id"]
    no_id = ids.isna().to_numpy()
    issues += _issues(no_id, ids, ids, column="lead_id", expected="is missing; every score needs a lead_id")
    if lead_ids is not None:
        unknown = ~_isin(ids.fillna(""), pd.Series(lead_ids).astype("string").unique()) & ~no_id
        issues += _issues(
            unknown, ids, ids, column="lead_id",
            expected="is not a known lead; every score must belong to a lead of the data",
        )

    for column, low, high, what in (
        ("probability", 0.0, 1.0, "a probability between 0 and 1"),
        ("score", 0.0, 100.0, "a score between 0 and 100"),
    ):
        raw = out[column]
        numbers = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = numbers.isna().to_numpy() | ~numbers.between(low, high).fillna(False).to_numpy(bool)
        issues += _issues(bad, raw, ids, column=column, expected=f"is not {what}")
        out[column] = numbers

    grade = out["grade"].astype("string").str.strip().str.upper()
    bad = ~grade.isin(GRADES).fillna(False).to_numpy(bool)
    issues += _issues(bad, out["grade"], ids, column="grade", expected=f"is not a grade; expected one of {list(GRADES)}")
    out["grade"] = grade
    route = out["route"].astype("string").str.strip().str.lower()
    bad = ~route.isin(ROUTES).fillna(False).to_numpy(bool)
    issues += _issues(bad, out["route"], ids, column="route", expected=f"is not a route; expected one of {list(ROUTES)}")
    out["route"] = route

    time_column = "as_of" if "as_of" in out.columns else "scored_at"
    if time_column in out.columns:
        out["scored_at"] = to_utc(
            out[time_column], table="scores", column=time_column, lead_ids=ids,
            assume_utc=assume_utc, issues=issues,
        )
    else:
        out["scored_at"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    if "matrix_route" in out.columns:
        # Optional: the fit x engagement route rescore writes (features.matrix).
        matrix = out["matrix_route"].astype("string").str.strip().str.lower()
        bad = ~(matrix.isna() | matrix.isin(MATRIX_ROUTES)).fillna(False).to_numpy(bool)
        issues += _issues(bad, out["matrix_route"], ids, column="matrix_route",
                          expected=f"is not a matrix route; expected one of "
                                   f"{list(MATRIX_ROUTES)} or empty")
        out["matrix_route"] = matrix
    if "scored_by" in out.columns:
        out["scored_by"] = out["scored_by"].astype("string")
    else:
        out["scored_by"] = pd.Series(pd.NA, index=out.index, dtype="string")

    dup = out.duplicated(["lead_id", "scored_at"], keep="first").to_numpy() & ~no_id
    issues += _issues(
        dup, ids, ids, column="lead_id",
        expected=f"is scored twice at the same {time_column}; a score history needs distinct "
                 f"{time_column}",
    )
    if issues:
        raise DataValidationError(issues)
    return out


# --------------------------------------------------------------------------- metrics


def default_as_of(leads: pd.DataFrame, activities: pd.DataFrame) -> pd.Timestamp:
    """The latest timestamp anywhere in the data: the report then covers everything."""
    candidates = [leads[c].max() for c in LEAD_TIMESTAMP_FIELDS if c in leads.columns]
    candidates.append(activities["occurred_at"].max() if len(activities) else pd.NaT)
    present = [pd.Timestamp(c) for c in candidates if pd.notna(c)]
    if not present:
        raise DataValidationError(
            [ValidationIssue(table="leads", field="created_at", value=None,
                             expected="has no value; the report needs at least one lead")]
        )
    return max(present)


def _leads_as_of(leads: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Leads created by ``as_of``, with outcomes after ``as_of`` blanked (not known yet)."""
    out = leads.loc[leads["created_at"] <= as_of].copy()
    for column in ("converted_at", "disqualified_at"):
        out[column] = out[column].where(out[column] <= as_of)
    return out


def _month(values: pd.Series) -> pd.Series:
    # Calendar months in UTC; dropping the zone first keeps to_period from warning.
    return values.dt.tz_localize(None).dt.to_period("M")


def wilson_interval(successes: np.ndarray, n: np.ndarray, z: float = 1.96) -> tuple[np.ndarray, np.ndarray]:
    """95% Wilson interval: honest for small sources where a plain +-1.96 SE is not."""
    successes = np.asarray(successes, dtype=float)
    n = np.asarray(n, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = successes / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def _isin(values: pd.Series | pd.Index | np.ndarray, allowed: object) -> np.ndarray:
    """``values.isin(allowed)`` for string ids, as a boolean array.

    pandas' arrow-string ``isin`` turns ``allowed`` into Python scalars one by one,
    which takes seconds for 100k lead ids; pyarrow's ``is_in`` does it in C.
    """
    def as_arrow(x: object) -> pa.Array:
        return pa.array(np.asarray(x, dtype=object), type=pa.large_string(), from_pandas=True)

    found = pc.is_in(as_arrow(values), value_set=as_arrow(allowed))
    return found.fill_null(False).to_numpy(zero_copy_only=False).astype(bool)


def _is_any_of(types: pd.Series, actions: Sequence[str]) -> pd.Series:
    # A few equality tests beat isin on millions of arrow strings by an order of magnitude.
    mask = pd.Series(False, index=types.index)
    for action in actions:
        mask |= (types == action).fillna(False)
    return mask


def funnel_counts(
    leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
    terms: FunnelTerms = BUILTIN_TERMS,
) -> pd.DataFrame:
    """Leads that reached each funnel stage by ``as_of``, and their share of leads created.

    Each stage is counted on its own (a lead can convert offline with no tracked
    activity), so the stages need not be nested.
    """
    scoped = _leads_as_of(leads, as_of)
    known = pd.Index(scoped["lead_id"])
    # Filter the (large) activities by time and type first and match lead ids only on
    # the unique ids left: isin over millions of strings is the slow part otherwise.
    recent = activities.loc[activities["occurred_at"] <= as_of, ["lead_id", "type"]]
    engaged_ids = pd.Index(
        recent.loc[~_is_any_of(recent["type"], terms.disengaged_types), "lead_id"].unique()
    )
    ready_ids = pd.Index(
        recent.loc[_is_any_of(recent["type"], terms.sales_ready_types), "lead_id"].unique()
    )
    created = len(scoped)
    engaged = int(_isin(engaged_ids, known).sum())
    ready = int(_isin(ready_ids, known).sum())
    converted = int(scoped["converted_at"].notna().sum())
    disqualified = int(scoped["disqualified_at"].notna().sum())
    frame = pd.DataFrame(
        {
            "stage": ["created", "engaged", "sales_ready", "converted", "disqualified"],
            "label": [
                "Created",
                "Engaged (any activity"
                + (f" but {', '.join(terms.disengaged_types)})" if terms.disengaged_types else ")"),
                f"Sales-ready action ({terms.sales_ready_label})",
                "Converted",
                "Disqualified",
            ],
            "leads": np.array([created, engaged, ready, converted, disqualified], dtype=int),
        }
    )
    frame["share_of_created"] = frame["leads"] / created if created else np.nan
    absent = set()
    if not terms.has_activities:
        absent |= {"engaged", "sales_ready"}
    if not terms.sales_ready_types:
        absent.add("sales_ready")
    if not terms.has_disqualified:
        absent.add("disqualified")
    return frame.loc[~frame["stage"].isin(absent)].reset_index(drop=True)


def overall_conversion(
    leads: pd.DataFrame, as_of: pd.Timestamp, horizon: pd.Timedelta = DEFAULT_HORIZON
) -> dict[str, float]:
    """Conversion to date over all leads, and within ``horizon`` over leads old enough.

    ``rate_within_horizon`` only counts leads created at least ``horizon`` before
    ``as_of``: younger leads have not had the full window, which would bias it down.
    """
    scoped = _leads_as_of(leads, as_of)
    converted = scoped["converted_at"].notna()
    mature = scoped["created_at"] <= as_of - horizon
    within = converted & (scoped["converted_at"] - scoped["created_at"] <= horizon)
    n, n_mature = len(scoped), int(mature.sum())
    return {
        "leads": n,
        "converted": int(converted.sum()),
        "rate": float(converted.mean()) if n else float("nan"),
        "mature_leads": n_mature,
        "converted_within_horizon": int((within & mature).sum()),
        "rate_within_horizon": float(within[mature].mean()) if n_mature else float("nan"),
    }


def conversion_by_cohort(
    leads: pd.DataFrame, as_of: pd.Timestamp, horizon: pd.Timedelta = DEFAULT_HORIZON
) -> pd.DataFrame:
    """Conversion per calendar month of creation (UTC): to date, and within ``horizon``.

    A cohort is *mature* when its youngest lead is at least ``horizon`` old at
    ``as_of``; only mature cohorts get a within-horizon rate, because younger ones are
    right-censored (their leads may still convert).
    """
    scoped = _leads_as_of(leads, as_of)
    converted = scoped["converted_at"].notna()
    frame = pd.DataFrame(
        {
            "month": _month(scoped["created_at"]),
            "converted": converted,
            "within": converted & (scoped["converted_at"] - scoped["created_at"] <= horizon),
            "created_at": scoped["created_at"],
        }
    )
    grouped = frame.groupby("month", sort=True)
    out = pd.DataFrame(
        {
            "leads": grouped.size(),
            "converted": grouped["converted"].sum().astype(int),
            "converted_within_horizon": grouped["within"].sum().astype(int),
            "youngest": grouped["created_at"].max(),
        }
    )
    out["rate"] = out["converted"] / out["leads"]
    out["min_follow_up_days"] = (as_of - out["youngest"]) / _DAY
    out["mature"] = out["youngest"] <= as_of - horizon
    out["rate_within_horizon"] = (out["converted_within_horizon"] / out["leads"]).where(out["mature"])
    out.index.name = "month"
    return out.drop(columns="youngest").reset_index()


def qualified_at_from_actions(
    leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Timestamp,
    actions: Sequence[str] = SALES_READY_ACTIONS,
) -> pd.Series:
    """When each lead first took a sales-ready action (by ``as_of``), indexed by lead_id."""
    acts = activities.loc[
        _is_any_of(activities["type"], actions) & (activities["occurred_at"] <= as_of)
    ]
    first = acts.groupby("lead_id")["occurred_at"].min().rename("qualified_at")
    scoped_ids = leads.loc[leads["created_at"] <= as_of, "lead_id"]
    return first.loc[_isin(first.index, scoped_ids)]


def qualified_at_from_scores(scores: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """When each lead was first graded A or B (by ``as_of``), indexed by lead_id."""
    hits = scores.loc[
        scores["grade"].isin(QUALIFIED_GRADES)
        & scores["scored_at"].notna()
        & (scores["scored_at"] <= as_of)
    ]
    return hits.groupby("lead_id")["scored_at"].min().rename("qualified_at")


def _scores_span_months(scores: pd.DataFrame | None, as_of: pd.Timestamp) -> int:
    if scores is None:
        return 0
    times = scores.loc[scores["scored_at"].notna() & (scores["scored_at"] <= as_of), "scored_at"]
    return int(_month(times).nunique()) if len(times) else 0


def lead_velocity(
    qualified_at: pd.Series, as_of: pd.Timestamp, *, start: pd.Period | None = None
) -> pd.DataFrame:
    """Qualified leads per calendar month and the lead velocity rate (LVR).

    ``LVR(m) = (Q(m) - Q(m-1)) / Q(m-1)``: month-over-month growth of qualified
    leads, undefined (NaN) when the previous month had none. Months run without gaps
    from the first qualification (or ``start``) to the month of ``as_of``, which is
    flagged ``partial`` because it has not ended.
    """
    as_of_month = as_of.tz_convert(None).to_period("M")
    months = _month(qualified_at.loc[qualified_at <= as_of])
    if start is not None:
        months = months.loc[months >= start]
    if months.empty:
        return pd.DataFrame(
            {"month": pd.PeriodIndex([], freq="M"), "qualified": [], "lvr": [], "partial": []}
        )
    counts = months.value_counts()
    full = pd.period_range(start if start is not None else counts.index.min(), as_of_month, freq="M")
    counts = counts.reindex(full, fill_value=0).astype(int)
    previous = counts.shift(1)
    lvr = ((counts - previous) / previous).where(previous > 0)
    month_end = (as_of_month + 1).to_timestamp().tz_localize("UTC")
    out = pd.DataFrame(
        {
            "month": full,
            "qualified": counts.to_numpy(),
            "lvr": lvr.to_numpy(dtype=float),
            "partial": full == as_of_month,
        }
    )
    # as_of exactly at the end of its month makes that month complete.
    if as_of >= month_end - pd.Timedelta(1, "ns"):
        out["partial"] = False
    return out


def conversion_by_source(
    leads: pd.DataFrame, as_of: pd.Timestamp, horizon: pd.Timedelta = DEFAULT_HORIZON
) -> pd.DataFrame:
    """Per source: leads, conversion to date with a 95% interval, within-horizon rate
    over leads old enough, and median days to conversion. Largest sources first."""
    scoped = _leads_as_of(leads, as_of)
    converted = scoped["converted_at"].notna()
    mature = scoped["created_at"] <= as_of - horizon
    within = converted & (scoped["converted_at"] - scoped["created_at"] <= horizon)
    frame = pd.DataFrame(
        {
            "source": scoped["source"].astype("string").fillna(UNKNOWN_SOURCE),
            "converted": converted,
            "mature": mature,
            "within_mature": within & mature,
            "days": ((scoped["converted_at"] - scoped["created_at"]) / _DAY).astype("float64"),
        }
    )
    grouped = frame.groupby("source", sort=True)
    out = pd.DataFrame(
        {
            "leads": grouped.size(),
            "converted": grouped["converted"].sum().astype(int),
            "mature_leads": grouped["mature"].sum().astype(int),
            "converted_within_horizon": grouped["within_mature"].sum().astype(int),
            "median_days_to_convert": grouped["days"].median(),
        }
    )
    out["rate"] = out["converted"] / out["leads"]
    out["ci_low"], out["ci_high"] = wilson_interval(out["converted"].to_numpy(), out["leads"].to_numpy())
    out["rate_within_horizon"] = (out["converted_within_horizon"] / out["mature_leads"]).where(
        out["mature_leads"] > 0
    )
    out = out.reset_index().sort_values(["leads", "source"], ascending=[False, True])
    return out.reset_index(drop=True)


def time_to_conversion_days(leads: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """Days from creation to conversion for each lead converted by ``as_of``, by lead_id."""
    scoped = _leads_as_of(leads, as_of)
    done = scoped.loc[scoped["converted_at"].notna()]
    days = (done["converted_at"] - done["created_at"]) / _DAY
    return pd.Series(days.to_numpy(dtype=float), index=pd.Index(done["lead_id"], name="lead_id"),
                     name="days_to_convert")


@dataclass(frozen=True)
class ScoreOutcomes:
    """Scores joined with what happened after them.

    ``frame`` has one row per usable score (``lead_id``, ``scored_at``,
    ``probability``, ``score``, ``grade``, ``route``, ``scored_by``, ``converted``).
    ``fully_observed`` is True when every row had its whole ``horizon`` of follow-up
    by ``as_of``; otherwise ``converted`` only covers ``(scored_at, as_of]``
    (``median_window_days`` long) and is a lower bound. ``excluded`` counts the
    rows left out, by reason.
    """

    frame: pd.DataFrame
    horizon: pd.Timedelta
    fully_observed: bool
    median_window_days: float
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def observable(self) -> bool:
        return len(self.frame) > 0


def score_outcomes(
    scores: pd.DataFrame,
    leads: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    scored_at: pd.Timestamp | None = None,
) -> ScoreOutcomes:
    """Label each score with "converted within ``horizon`` after it was made".

    A score made at ``t`` is about the future, so only conversions in
    ``(t, t + horizon]`` (and not after ``as_of``) count. Rows are left out when
    the lead did not exist yet, was already converted or disqualified at ``t``, or
    ``t`` is not before ``as_of``. When some scores have had their full window, only
    those are used; else all are kept with the shorter window observed so far.
    ``scored_at`` fills in the time of scores that carry none (the rules fallback
    writes none).
    """
    times = scores["scored_at"]
    if scored_at is not None:
        times = times.fillna(scored_at)
    frame = scores.assign(scored_at=times)
    excluded: dict[str, int] = {}

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal frame
        count = int(mask.sum())
        if count:
            excluded[reason] = excluded.get(reason, 0) + count
            frame = frame.loc[~mask]

    drop(frame["scored_at"].isna(), "no scored_at (pass --scored-at)")
    drop(frame["scored_at"] >= as_of, "scored at or after the report date")
    joined = frame.merge(
        _leads_as_of(leads, as_of)[["lead_id", "created_at", "converted_at", "disqualified_at"]],
        on="lead_id", how="left",
    )
    frame = joined
    drop(frame["created_at"].isna() | (frame["created_at"] > frame["scored_at"]),
         "lead not yet created at scoring time")
    drop((frame["converted_at"] <= frame["scored_at"]).fillna(False),
         "already converted at scoring time")
    drop((frame["disqualified_at"] <= frame["scored_at"]).fillna(False),
         "already disqualified at scoring time")

    mature = frame["scored_at"] + horizon <= as_of
    fully = bool(mature.any())
    if fully:
        drop(~mature, f"fewer than {horizon.days} days of follow-up yet")
    end = (frame["scored_at"] + horizon).where(frame["scored_at"] + horizon <= as_of, as_of)
    converted = (
        (frame["converted_at"] > frame["scored_at"]) & (frame["converted_at"] <= end)
    ).fillna(False)
    window_days = float(((end - frame["scored_at"]) / _DAY).median()) if len(frame) else float("nan")
    out = frame[["lead_id", "scored_at", "probability", "score", "grade", "route", "scored_by",
                 *(["matrix_route"] if "matrix_route" in frame.columns else [])]].copy()
    out["converted"] = converted.to_numpy(dtype=bool)
    out = out.sort_values(["scored_at", "lead_id"]).reset_index(drop=True)
    return ScoreOutcomes(
        frame=out, horizon=horizon, fully_observed=fully,
        median_window_days=window_days, excluded=excluded,
    )


def score_outcomes_from_labels(scores: pd.DataFrame, leads: pd.DataFrame) -> ScoreOutcomes:
    """Label each score with the outcome the export records, for undated outcomes.

    A label-only export (a ``Converted`` column, no ``converted_at``) cannot say what
    happened *after* a score, so each lead's latest score is compared with its label.
    For leads the model was trained on this is an in-sample comparison, which the page
    says; it is still the right check that grades and probabilities mean what they say.
    ``leads`` carries ``converted_at`` set (to any time) exactly for the positives.
    """
    frame = scores.sort_values(["lead_id", "scored_at"], na_position="first", kind="mergesort")
    latest = frame.drop_duplicates("lead_id", keep="last")
    excluded = {}
    if len(latest) < len(frame):
        excluded["an earlier score of a lead scored again"] = len(frame) - len(latest)
    joined = latest.merge(leads[["lead_id", "converted_at"]], on="lead_id", how="inner")
    out = joined[["lead_id", "scored_at", "probability", "score", "grade", "route", "scored_by",
                  *(["matrix_route"] if "matrix_route" in joined.columns else [])]].copy()
    out["converted"] = joined["converted_at"].notna().to_numpy(dtype=bool)
    out = out.sort_values(["lead_id"]).reset_index(drop=True)
    return ScoreOutcomes(frame=out, horizon=DEFAULT_HORIZON, fully_observed=True,
                         median_window_days=float("nan"), excluded=excluded)


def calibration_table(outcomes: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed conversion by equal-count bin of probability, top bin first.

    ``lift`` is the bin's observed rate over the overall rate; ``cumulative_capture``
    the share of all conversions found in this bin and those above it. Ties are broken
    by lead_id so the bins are the same on every run.
    """
    n = len(outcomes)
    if n == 0:
        return pd.DataFrame(
            columns=["bin", "leads", "min_probability", "max_probability", "mean_probability",
                     "observed_rate", "lift", "cumulative_capture"]
        )
    ordered = outcomes.sort_values(["probability", "lead_id", "scored_at"],
                                   ascending=[False, True, True], kind="mergesort")
    bins = min(bins, n)
    ordered = ordered.assign(bin=(np.arange(n) * bins // n) + 1)
    grouped = ordered.groupby("bin", sort=True)
    out = pd.DataFrame(
        {
            "leads": grouped.size(),
            "min_probability": grouped["probability"].min(),
            "max_probability": grouped["probability"].max(),
            "mean_probability": grouped["probability"].mean(),
            "observed_rate": grouped["converted"].mean(),
            "conversions": grouped["converted"].sum(),
        }
    )
    base = float(ordered["converted"].mean())
    total = int(ordered["converted"].sum())
    out["lift"] = out["observed_rate"] / base if base > 0 else np.nan
    out["cumulative_capture"] = out["conversions"].cumsum() / total if total else np.nan
    return out.drop(columns="conversions").reset_index()


def calibration_metrics(outcomes: pd.DataFrame, bins: int = 10) -> dict[str, float]:
    """Base rate, mean prediction, Brier score, expected calibration error and ROC AUC."""
    n = len(outcomes)
    if n == 0:
        return {"leads": 0, "base_rate": np.nan, "mean_probability": np.nan, "brier": np.nan,
                "ece": np.nan, "auc": np.nan}
    y = outcomes["converted"].to_numpy(dtype=float)
    p = outcomes["probability"].to_numpy(dtype=float)
    table = calibration_table(outcomes, bins)
    ece = float(
        (table["leads"] / n * (table["mean_probability"] - table["observed_rate"]).abs()).sum()
    )
    positives = int(y.sum())
    negatives = n - positives
    if positives and negatives:
        # Mann-Whitney form of the AUC; average ranks count ties as half.
        ranks = pd.Series(p).rank(method="average").to_numpy()
        auc = float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives))
    else:
        auc = float("nan")
    return {
        "leads": n,
        "base_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": ece,
        "auc": auc,
    }


def conversion_by_grade(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per grade at scoring time: scored leads, mean probability, observed conversion, lift."""
    grouped = outcomes.groupby("grade")
    out = pd.DataFrame(
        {
            "leads": grouped.size(),
            "mean_probability": grouped["probability"].mean(),
            "converted": grouped["converted"].sum(),
        }
    ).reindex(list(GRADES))
    out["leads"] = out["leads"].fillna(0).astype(int)
    out["converted"] = out["converted"].fillna(0).astype(int)
    out["observed_rate"] = (out["converted"] / out["leads"]).where(out["leads"] > 0)
    base = outcomes["converted"].mean() if len(outcomes) else np.nan
    out["lift"] = out["observed_rate"] / base if base and base > 0 else np.nan
    out.index.name = "grade"
    return out.reset_index()


def fit_engagement_matrix(scores: pd.DataFrame, outcomes: pd.DataFrame | None) -> pd.DataFrame:
    """The base in the fit x engagement matrix, one row per cell (best first).

    ``leads`` counts each lead once, by its latest score's cell (the base as it stands);
    ``scored``, ``converted`` and ``observed_rate`` are the scores followed to their
    outcome (``outcomes``, as the grade section reads them), by the cell they were in.
    """
    latest = scores.sort_values(["lead_id", "scored_at"], na_position="first", kind="mergesort")
    latest = latest.drop_duplicates("lead_id", keep="last")
    base = latest["matrix_route"].value_counts()
    out = pd.DataFrame({"matrix_route": list(MATRIX_ROUTES),
                        "fit": [_CELLS[r][0] for r in MATRIX_ROUTES],
                        "engagement": [_CELLS[r][1] for r in MATRIX_ROUTES]})
    out["leads"] = [int(base.get(r, 0)) for r in MATRIX_ROUTES]
    if outcomes is not None and "matrix_route" in outcomes.columns and len(outcomes):
        grouped = outcomes.groupby("matrix_route")["converted"]
        n, k = grouped.size(), grouped.sum()
        out["scored"] = [int(n.get(r, 0)) for r in MATRIX_ROUTES]
        out["converted"] = [int(k.get(r, 0)) for r in MATRIX_ROUTES]
        out["observed_rate"] = (out["converted"] / out["scored"]).where(out["scored"] > 0)
    return out


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class FunnelReport:
    """Everything the page shows, computed once; rendering only formats it."""

    as_of: pd.Timestamp
    horizon: pd.Timedelta
    funnel: pd.DataFrame
    overall: dict[str, float]
    cohorts: pd.DataFrame
    velocity: pd.DataFrame
    qualified_definition: str
    sources: pd.DataFrame
    days_to_convert: pd.Series
    outcomes: ScoreOutcomes | None
    scores_summary: dict[str, int] | None
    has_scores: bool
    unknown_activity_types: dict[str, int]
    data_label: str = ""
    scores_label: str = ""
    terms: FunnelTerms = BUILTIN_TERMS
    health: dict | None = None
    """The scores' run drift (``_health.json`` beside batch scores), when there is one."""
    backtests: list | None = None
    """Backtests of the rescore runs (:func:`leadscore.backtest.backtest_runs`), when the
    scores are a rescore's ``DIR/scores`` and ``DIR/history`` holds its runs."""
    matrix: pd.DataFrame | None = None
    """The base in the fit x engagement matrix (:func:`fit_engagement_matrix`), when the
    scores carry ``matrix_route``."""


def read_run_health(scores_path: Path | str | None) -> dict | None:
    """``_health.json`` of a batch run's scores folder (``DIR/scores``), or None."""
    import json

    if scores_path is None:
        return None
    path = Path(scores_path) / "_health.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataValidationError([ValidationIssue(
            table="scores", field="_health.json", value=str(path),
            expected=f"the run's drift report as rescore writes it; reading it failed: {exc}")]
        ) from exc


def build_report(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    as_of: pd.Timestamp | None = None,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    scored_at: pd.Timestamp | None = None,
    data_label: str = "",
    scores_label: str = "",
    terms: FunnelTerms = BUILTIN_TERMS,
) -> FunnelReport:
    """Compute every section of the funnel report from validated tables.

    Parameters
    ----------
    leads, activities : DataFrame
        As returned by :func:`features.schema.validate_leads` and
        :func:`features.schema.validate_activities`.
    scores : DataFrame, optional
        As returned by :func:`validate_scores`. Without it the grade, calibration and
        lift sections say they need ``--scores``.
    as_of : Timestamp, optional
        The report date (UTC). Defaults to the latest timestamp in the data.
    horizon : Timedelta
        Conversion window for cohorts and score outcomes (90 days, as the label).
    scored_at : Timestamp, optional
        When the scores were made, for scores that carry no ``scored_at``.
    terms : FunnelTerms
        What the funnel's words mean for this data (a spec's kinds, its grouping
        field, dated or label outcomes); the built-in contract's by default.

    Returns
    -------
    FunnelReport
    """
    if horizon <= pd.Timedelta(0):
        raise ValueError(f"The 'horizon' parameter of build_report must be positive. Got {horizon} instead.")
    as_of = default_as_of(leads, activities) if as_of is None else pd.Timestamp(as_of).tz_convert("UTC")

    history = None
    if scores is not None:
        history = scores if scored_at is None else scores.assign(
            scored_at=scores["scored_at"].fillna(scored_at)
        )
    if history is not None and _scores_span_months(history, as_of) >= 2:
        first_month = _month(history.loc[history["scored_at"].notna(), "scored_at"]).min()
        # The first month of a score history counts every lead already A/B then (a
        # backlog, not a flow), so growth is measured from the month after it.
        velocity = lead_velocity(qualified_at_from_scores(history, as_of), as_of, start=first_month + 1)
        qualified = (
            f"Qualified = first graded {'/'.join(QUALIFIED_GRADES)} in the score history, dated by "
            f"that score. The first month of the history ({first_month}) is left out: it holds "
            "the backlog of leads already qualified, not new ones."
        )
    elif terms.sales_ready_types and terms.has_activities:
        velocity = lead_velocity(
            qualified_at_from_actions(leads, activities, as_of, terms.sales_ready_types), as_of
        )
        qualified = (
            f"Qualified = took a sales-ready action ({terms.sales_ready_label}), dated by the "
            "first one."
        )
    else:
        velocity = lead_velocity(pd.Series([], dtype="datetime64[ns, UTC]"), as_of)
        qualified = (
            "Qualified leads need a dated sales-ready action or a score history over two "
            "calendar months: "
            + ("the dataset has no activity log" if not terms.has_activities
               else "the spec marks no kind key_action: true")
            + ", so lead velocity cannot be measured."
        )
    if scores is not None and (history is None or _scores_span_months(history, as_of) < 2):
        qualified += (
            " The scores cover fewer than two calendar months of scored_at, so grades cannot "
            f"date when leads became {'/'.join(QUALIFIED_GRADES)}"
            + ("; actions are used instead." if terms.sales_ready_types and terms.has_activities
               else ".")
        )

    outcomes = None
    summary = None
    if scores is not None and terms.dated:
        outcomes = score_outcomes(scores, leads, as_of=as_of, horizon=horizon, scored_at=scored_at)
    elif scores is not None:
        outcomes = score_outcomes_from_labels(scores, leads)
    if scores is not None:
        summary = {
            "rows": len(scores),
            "leads": int(scores["lead_id"].nunique()),
            **{
                f"scored_by_{k}": int(v)
                for k, v in scores["scored_by"].fillna("unknown").value_counts().sort_index().items()
            },
        }
    type_counts = activities["type"].value_counts()
    known = terms.known_types or ACTIVITY_TYPES
    unknown_types = type_counts.loc[~type_counts.index.isin(known)].sort_index()
    overall = overall_conversion(leads, as_of, horizon)
    cohorts = conversion_by_cohort(leads, as_of, horizon)
    sources = conversion_by_source(leads, as_of, horizon)
    days_to_convert = time_to_conversion_days(leads, as_of)
    if not terms.dated:
        # Undated outcomes: nothing is measured from a conversion time, so no figure
        # that would be may stand (the stand-in times would read as 0 days).
        for key in ("mature_leads", "converted_within_horizon", "rate_within_horizon"):
            overall[key] = float("nan")
        timed = ["converted_within_horizon", "rate_within_horizon", "min_follow_up_days"]
        cohorts[timed] = np.nan
        cohorts["mature"] = False
        sources[["mature_leads", "converted_within_horizon", "rate_within_horizon",
                 "median_days_to_convert"]] = np.nan
        days_to_convert = days_to_convert.iloc[:0]
        if not terms.has_created:
            cohorts = cohorts.iloc[:0]
    matrix = None
    if scores is not None and "matrix_route" in scores.columns \
            and scores["matrix_route"].notna().any():
        matrix = fit_engagement_matrix(
            scores, outcomes.frame if outcomes is not None and outcomes.observable else None)
    return FunnelReport(
        matrix=matrix,
        as_of=as_of,
        horizon=horizon,
        funnel=funnel_counts(leads, activities, as_of, terms),
        overall=overall,
        cohorts=cohorts,
        velocity=velocity,
        qualified_definition=qualified,
        sources=sources,
        days_to_convert=days_to_convert,
        outcomes=outcomes,
        scores_summary=summary,
        has_scores=scores is not None,
        unknown_activity_types={str(k): int(v) for k, v in unknown_types.items()},
        data_label=data_label,
        scores_label=scores_label,
        terms=terms,
    )


# --------------------------------------------------------------------------- rendering

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;color:#1f2933;
margin:0;background:#f5f7fa;line-height:1.45}
main{max-width:1040px;margin:0 auto;padding:24px 28px 48px;background:#fff}
h1{font-size:1.7em;margin:0 0 4px}
h2{font-size:1.3em;margin:36px 0 6px;padding-top:12px;border-top:2px solid #e4e7eb}
p.meta{color:#52606d;margin:0 0 16px}
p.summary{font-size:1.08em;background:#eef4fb;border-left:4px solid #2f6fb3;
padding:8px 12px;margin:8px 0 14px}
p.note{color:#52606d;font-size:.92em}
ul.keys li{margin:4px 0}
table{border-collapse:collapse;margin:10px 0;font-size:.9em}
th,td{padding:4px 10px;border-bottom:1px solid #e4e7eb;text-align:left}
th{background:#f0f2f5}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
img.plot{max-width:100%;height:auto;display:block;margin:8px 0}
.missing{color:#8d2b0b}
"""

_BLUE, _LIGHT, _ORANGE, _GREEN, _RED, _GREY = (
    "#2f6fb3", "#9dbfe3", "#e07b24", "#2e8540", "#c23b22", "#9aa5b1"
)
_SECTIONS = (
    ("funnel", "Funnel"),
    ("conversion", "Lead conversion rate"),
    ("velocity", "Lead velocity rate"),
    ("source", "Conversion by source"),
    ("grade", "Conversion by grade"),
    ("matrix", "Fit × engagement"),
    ("time", "Time to conversion"),
    ("calibration", "Score calibration and lift"),
    ("health", "Drift against the training window"),
    ("backtest", "Backtests of earlier runs"),
    ("cost", "Cost per lead"),
    ("method", "Definitions and method"),
)


def _n(value: float) -> str:
    return f"{int(value):,}"


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value * 100:.{digits}f}%"


def _num(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:,.{digits}f}"


def _times(value: float) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.1f}×"


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[int] = ()) -> str:
    num = set(numeric)
    head = "".join(
        f'<th class="num">{_esc(h)}</th>' if i in num else f"<th>{_esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{_esc(c)}</td>' if i in num else f"<td>{_esc(c)}</td>"
            for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(width: float = 9.0, height: float = 3.4, **subplots: object):
    # The object-oriented API with an Agg canvas: no pyplot state, no global backend
    # switch, nothing that leaks between reports or into the caller's process.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _img(fig, alt: str) -> str:
    buffer = io.BytesIO()
    # No "Software" stamp: the bytes then depend only on the data and matplotlib.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _style(ax) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.8)
    ax.set_axisbelow(True)


def _month_ticks(ax, labels: list[str]) -> None:
    step = max(1, int(np.ceil(len(labels) / 18)))
    ax.set_xticks(range(len(labels))[::step], labels[::step], rotation=45, ha="right")


def _section_funnel(r: FunnelReport) -> tuple[str, str]:
    f = r.funnel.set_index("stage")
    created = int(f.loc["created", "leads"])
    share = f["share_of_created"]
    words = {"engaged": "engaged", "sales_ready": "took a sales-ready action",
             "converted": "converted", "disqualified": "were disqualified"}
    stages = [f"{_pct(share[k])} {w}" for k, w in words.items() if k in share.index]
    summary = (
        f"Of {_n(created)} leads created, " + ", ".join(stages[:-1])
        + (" and " if len(stages) > 1 else "") + stages[-1] + "."
    )
    fig = _figure(9, 2.8)
    ax = fig.add_subplot()
    # The chart names each stage briefly (a spec's key-action list can be long); the
    # table below it gives each stage's full definition.
    short = {"created": "Created", "engaged": "Engaged", "sales_ready": "Sales-ready",
             "converted": "Converted", "disqualified": "Disqualified"}
    labels = [short[k] for k in r.funnel["stage"].tolist()[::-1]]
    values = r.funnel["leads"].to_numpy()[::-1]
    palette = {"created": _BLUE, "engaged": _LIGHT, "sales_ready": _ORANGE,
               "converted": _GREEN, "disqualified": _GREY}
    colors = [palette[k] for k in r.funnel["stage"].tolist()[::-1]]
    ax.barh(labels, values, color=colors)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:,} ({_pct(v / created if created else np.nan)})", va="center", fontsize=9)
    ax.set_xlim(0, max(values.max(), 1) * 1.25)
    ax.set_xlabel("leads")
    ax.spines[["top", "right"]].set_visible(False)
    rows = [[row.label, _n(row.leads), _pct(row.share_of_created)] for row in r.funnel.itertuples()]
    body = (
        _img(fig, "Leads reaching each funnel stage")
        + _table(["Stage", "Leads", "Share of created"], rows, numeric=(1, 2))
        + '<p class="note">Each stage is counted on its own: a lead can convert with no tracked '
        "activity (an offline deal), so the stages need not be nested. Disqualified leads are "
        "those closed as not a fit.</p>"
    )
    return summary, body


def _section_conversion_undated(r: FunnelReport) -> tuple[str, str]:
    o = r.overall
    summary = (
        f"{_pct(o['rate'])} of leads converted ({_n(o['converted'])} of {_n(o['leads'])}), "
        "as the export records it."
    )
    body = (
        '<p class="note">The outcome is a label with no date, so conversion within a horizon '
        "and right-censoring do not apply: a lead not marked converted counts as not "
        "converted, whatever its age.</p>"
    )
    if r.terms.has_created and len(r.cohorts):
        rows = [[str(row.month), _n(row.leads), _n(row.converted), _pct(row.rate)]
                for row in r.cohorts.itertuples()]
        body += _table(["Cohort (month created)", "Leads", "Converted", "Rate"], rows,
                       numeric=range(1, 4))
    return summary, body


def _section_conversion(r: FunnelReport) -> tuple[str, str]:
    if not r.terms.dated:
        return _section_conversion_undated(r)
    o, days = r.overall, r.horizon.days
    summary = (
        f"{_pct(o['rate'])} of leads have converted so far ({_n(o['converted'])} of "
        f"{_n(o['leads'])}); leads at least {days} days old converted within {days} days at "
        f"{_pct(o['rate_within_horizon'])}."
    )
    c = r.cohorts
    labels = [str(m) for m in c["month"]]
    fig = _figure(9, 3.4)
    ax = fig.add_subplot()
    x = np.arange(len(c))
    colors = np.where(c["mature"].to_numpy(bool), _BLUE, _LIGHT)
    ax.bar(x, c["rate"].to_numpy() * 100, color=colors, label="converted to date")
    mature = c["mature"].to_numpy(bool)
    ax.plot(x[mature], c["rate_within_horizon"].to_numpy()[mature] * 100, "o-", color=_ORANGE,
            label=f"converted within {days} days (mature cohorts)")
    ax.set_ylabel("conversion rate (%)")
    ax.set_title("Conversion by month of creation (pale bars: cohorts still maturing)", fontsize=10)
    _month_ticks(ax, labels)
    _style(ax)
    ax.legend(frameon=False, fontsize=9)
    rows = [
        [str(row.month), _n(row.leads), _n(row.converted), _pct(row.rate),
         _pct(row.rate_within_horizon) if row.mature else "immature",
         _num(row.min_follow_up_days, 0)]
        for row in c.itertuples()
    ]
    body = (
        _img(fig, "Conversion rate by cohort month")
        + _table(["Cohort (month created)", "Leads", "Converted", "Rate to date",
                  f"Within {days} days", "Min. follow-up (days)"], rows, numeric=range(1, 6))
        + f'<p class="note"><strong>Right-censoring:</strong> recent cohorts have had less time to '
        f"convert, so their rate to date is lower than it will end up. A cohort is "
        f"<em>mature</em> once its youngest lead is {days} days old; only mature cohorts get a "
        f"within-{days}-days rate, which is the fair one to compare across months.</p>"
    )
    return summary, body


def _section_velocity(r: FunnelReport) -> tuple[str, str]:
    v = r.velocity
    complete = v.loc[~v["partial"].astype(bool)]
    if len(complete) >= 2 and np.isfinite(complete["lvr"].iloc[-1]):
        last, prev = complete.iloc[-1], complete.iloc[-2]
        summary = (
            f"Lead velocity rate for {last['month']}: {last['lvr'] * 100:+.1f}% "
            f"({_n(last['qualified'])} qualified leads vs {_n(prev['qualified'])} in {prev['month']})."
        )
    elif len(complete) >= 2:
        summary = (
            f"Lead velocity rate for {complete['month'].iloc[-1]} is undefined: the month before "
            "had no qualified lead."
        )
    else:
        summary = "Not enough complete months of qualified leads to measure lead velocity (needs two)."
    body = f'<p class="note">{_esc(r.qualified_definition)}</p>'
    if len(v):
        labels = [str(m) + (" (partial)" if p else "") for m, p in zip(v["month"], v["partial"], strict=True)]
        fig = _figure(9, 4.6)
        top, bottom = fig.subplots(2, 1, sharex=True)
        x = np.arange(len(v))
        partial = v["partial"].to_numpy(bool)
        top.bar(x, v["qualified"], color=np.where(partial, _LIGHT, _BLUE))
        top.set_ylabel("qualified leads")
        top.set_title("Qualified leads per month (pale: month not over) and month-over-month growth",
                      fontsize=10)
        _style(top)
        lvr = v["lvr"].to_numpy(dtype=float) * 100
        shown = np.isfinite(lvr) & ~partial
        bottom.bar(x[shown], lvr[shown], color=np.where(lvr[shown] >= 0, _GREEN, _RED))
        bottom.axhline(0, color="#52606d", linewidth=0.8)
        bottom.set_ylabel("LVR (%)")
        _month_ticks(bottom, labels)
        _style(bottom)
        rows = [
            [label, _n(row.qualified),
             # A month still running always looks like a fall; do not print that as a rate.
             "month not over" if row.partial
             else "n/a" if not np.isfinite(row.lvr) else f"{row.lvr * 100:+.1f}%"]
            for label, row in zip(labels, v.itertuples(), strict=True)
        ]
        body = _img(fig, "Qualified leads and lead velocity rate per month") + body + _table(
            ["Month", "Qualified leads", "Lead velocity rate"], rows, numeric=(1, 2)
        )
    body += (
        '<p class="note">Lead velocity rate = (qualified this month − qualified last month) ÷ '
        "qualified last month. The current month is partial and left out of the headline.</p>"
    )
    return summary, body


def _section_source(r: FunnelReport) -> tuple[str, str]:
    s = r.sources
    days = r.horizon.days
    field = r.terms.source_label
    if s.empty:
        return "No leads in the report window.", ""
    # Judge the best and worst source on sources big enough to mean something.
    big = s.loc[s["leads"] >= 30]
    pool = big if len(big) else s
    best = pool.sort_values(["rate", "source"], ascending=[False, True]).iloc[0]
    worst = pool.sort_values(["rate", "source"], ascending=[True, True]).iloc[0]
    summary = (
        f"{best['source']} converts best at {_pct(best['rate'])} ({_n(best['leads'])} leads); "
        f"{worst['source']} converts least at {_pct(worst['rate'])} ({_n(worst['leads'])} leads)."
    )
    # The 15 largest sources, drawn best rate on top so the ranking reads at a glance.
    top = s.head(15).sort_values(["rate", "source"], ascending=[True, False])
    fig = _figure(9, max(2.2, 0.38 * len(top) + 1.0))
    ax = fig.add_subplot()
    rate = top["rate"].to_numpy() * 100
    err = np.vstack([rate - top["ci_low"].to_numpy() * 100, top["ci_high"].to_numpy() * 100 - rate])
    ax.barh(top["source"].tolist(), rate, color=_BLUE, xerr=err, ecolor="#52606d", capsize=3)
    ax.set_xlabel("converted (%), with 95% interval" if not r.terms.dated
                  else "converted to date (%), with 95% interval")
    ax.spines[["top", "right"]].set_visible(False)
    note = "" if len(s) <= 15 else f" The chart shows the 15 largest of {len(s)} values."
    if not r.terms.dated:
        rows = [[row.source, _n(row.leads), _n(row.converted), _pct(row.rate),
                 f"{_pct(row.ci_low)}–{_pct(row.ci_high)}"] for row in s.itertuples()]
        return summary, (
            _img(fig, f"Conversion rate by {field}")
            + _table([field, "Leads", "Converted", "Rate", "95% interval"], rows,
                     numeric=range(1, 5))
            + '<p class="note">The 95% interval (Wilson) shows how sure the rate is: small '
            f"groups have wide intervals.{_esc(note)}</p>"
        )
    rows = [
        [row.source, _n(row.leads), _n(row.converted), _pct(row.rate),
         f"{_pct(row.ci_low)}–{_pct(row.ci_high)}", _pct(row.rate_within_horizon),
         _num(row.median_days_to_convert)]
        for row in s.itertuples()
    ]
    body = (
        _img(fig, f"Conversion rate by {field}")
        + _table([field, "Leads", "Converted", "Rate to date", "95% interval",
                  f"Within {days} days (leads ≥ {days} days old)", "Median days to convert"],
                 rows, numeric=range(1, 7))
        + '<p class="note">The 95% interval (Wilson) shows how sure the rate is: small groups '
        "have wide intervals. A group that grew recently has more young leads and looks worse "
        f"to date; the within-{days}-days column compares them fairly.{_esc(note)}</p>"
    )
    return summary, body


_IN_SAMPLE_NOTE = (
    '<p class="missing">The outcome is a label with no date, so each lead\'s latest score is '
    "compared with the outcome the export records, not with what happened after the score. "
    "For the leads the model was trained on this is in-sample and reads better than new "
    "leads will; the training run's test figures are the out-of-sample ones.</p>"
)


def _window_text(r: FunnelReport, o: ScoreOutcomes) -> str:
    """How long after a score its conversions were counted, to follow "converted"."""
    if not r.terms.dated:
        return ""
    if o.fully_observed:
        return f" within {r.horizon.days} days"
    return f" so far ({_num(o.median_window_days, 0)} days observed)"


_AS_RECORDED = " Outcomes as the export records them (no dates)."


def _unobservable_text(o: ScoreOutcomes | None) -> str:
    if o is None:
        return ""
    reasons = "; ".join(f"{k}: {_n(v)}" for k, v in sorted(o.excluded.items()))
    return (
        "Outcomes after the scores are not observable: no score was made before the report "
        f"date with an open lead to follow ({reasons or 'no scores'}). Pass scores from an "
        "earlier as_of, or a later --as-of, to measure them."
    )


def _section_grade(r: FunnelReport) -> tuple[str, str]:
    if not r.has_scores:
        return (
            "Needs --scores: no scores were given, so leads have no grade to compare.",
            '<p class="missing">Conversion by grade needs scores: run batch rescoring or '
            "<code>leadscore rules score</code> and pass the output with <code>--scores</code>.</p>",
        )
    o = r.outcomes
    if o is None or not o.observable:
        text = _unobservable_text(o)
        return "Not observable yet: " + text, f'<p class="missing">{_esc(text)}</p>'
    g = conversion_by_grade(o.frame)
    a, d = g.set_index("grade").loc["A"], g.set_index("grade").loc["D"]
    window = _window_text(r, o)
    summary = (
        f"Grade A leads converted{window} at {_pct(a['observed_rate'])} "
        f"({_times(a['lift'])} the average); grade D at {_pct(d['observed_rate'])}."
        + ("" if r.terms.dated else _AS_RECORDED)
    )
    fig = _figure(7, 3.0)
    ax = fig.add_subplot()
    x = np.arange(len(g))
    ax.bar(x - 0.2, g["mean_probability"] * 100, 0.4, color=_LIGHT, label="predicted (mean)")
    ax.bar(x + 0.2, g["observed_rate"].fillna(0) * 100, 0.4, color=_BLUE, label="observed")
    ax.set_xticks(x, [f"grade {k}" for k in g["grade"]])
    ax.set_ylabel("conversion (%)")
    ax.legend(frameon=False, fontsize=9)
    _style(ax)
    rows = [
        [row.grade, _n(row.leads), _pct(row.mean_probability), _n(row.converted),
         _pct(row.observed_rate), _times(row.lift)]
        for row in g.itertuples()
    ]
    body = (
        _img(fig, "Predicted and observed conversion by grade")
        + _table(["Grade at scoring", "Scored leads", "Mean predicted",
                  "Converted after" if r.terms.dated else "Converted",
                  "Observed rate", "Lift"], rows, numeric=range(1, 6))
        + ('<p class="note">Grade is the grade the lead had when it was scored; "converted after" '
           f"counts conversions after that moment ({window.strip()}). See the method section for which "
           "scores are used.</p>" if r.terms.dated else _IN_SAMPLE_NOTE)
    )
    return summary, body


def _section_matrix(r: FunnelReport) -> tuple[str, str]:
    if r.matrix is None:
        text = ("Needs scores with a fit x engagement route (matrix_route): batch rescoring "
                "writes it." if not r.has_scores else
                "The scores carry no fit x engagement route (matrix_route); rescore with a "
                "model that ships its fit/engagement split.")
        return text, f'<p class="missing">{_esc(text)}</p>'
    m = r.matrix.set_index("matrix_route")
    total = int(m["leads"].sum())
    has_outcomes = "observed_rate" in m.columns
    names = {"sales": "Sales", "targeted_nurture": "Targeted nurture", "review": "Review",
             "recycle": "Recycle"}

    def cell(route: str) -> str:
        row = m.loc[route]
        text = f"<strong>{names[route]}</strong><br>{_n(row['leads'])} leads"
        if has_outcomes:
            text += (f"<br>{_pct(row['observed_rate'])} converted"
                     f" ({_n(row['converted'])} of {_n(row['scored'])})")
        return f"<td>{text}</td>"

    grid = ('<table class="matrix"><tr><th></th><th>Engagement high</th>'
            '<th>Engagement low</th></tr>'
            f"<tr><th>Fit high</th>{cell('sales')}{cell('targeted_nurture')}</tr>"
            f"<tr><th>Fit low</th>{cell('review')}{cell('recycle')}</tr></table>")
    share = m.loc["sales", "leads"] / total if total else float("nan")
    summary = f"{_pct(share)} of the base ({_n(m.loc['sales', 'leads'])} leads) is fit and engaged"
    if has_outcomes:
        summary += (f"; they converted at {_pct(m.loc['sales', 'observed_rate'])}, the "
                    f"recycle cell at {_pct(m.loc['recycle', 'observed_rate'])}")
        summary += "." + ("" if r.terms.dated else _AS_RECORDED)
    else:
        summary += "; conversion per cell shows once outcomes after the scores are known."
    note = ('<p class="note">Fit is who the lead is, engagement what it did: the model\'s '
            "score split in two parts that add up to it (each part's 0-100 score is its "
            "percentile among the training leads; high at or above the threshold, 50 by "
            "default). Leads are counted once, in the cell of their latest score"
            + ("; conversion counts the scores followed to their outcome, by the cell they "
               "were in when scored." if has_outcomes else ".") + "</p>")
    return summary, grid + note


def _section_time(r: FunnelReport) -> tuple[str, str]:
    if not r.terms.dated:
        text = ("The outcome is a label with no date (the spec gives no converted_at), so "
                "the time from creation to conversion is not known.")
        return "Not available: " + text[0].lower() + text[1:], f'<p class="missing">{_esc(text)}</p>'
    d = r.days_to_convert
    if d.empty:
        return "No lead has converted yet, so there is no time to conversion to report.", ""
    q = d.quantile([0.25, 0.5, 0.75, 0.9])
    summary = (
        f"Converted leads took a median {_num(q[0.5])} days from creation to conversion "
        f"(middle half {_num(q[0.25])}–{_num(q[0.75])} days; 90% within {_num(q[0.9])} days)."
    )
    fig = _figure(9, 3.2)
    ax = fig.add_subplot()
    upper = float(d.quantile(0.99))
    clipped = d.clip(upper=upper) if upper > 0 else d
    ax.hist(clipped, bins=40, color=_BLUE)
    ax.axvline(q[0.5], color=_ORANGE, linewidth=2, label=f"median {_num(q[0.5])} days")
    ax.set_xlabel("days from creation to conversion (last bar: 99th percentile and above)")
    ax.set_ylabel("converted leads")
    ax.legend(frameon=False, fontsize=9)
    _style(ax)
    rows = [
        [row.source, _n(row.converted), _num(row.median_days_to_convert)]
        for row in r.sources.loc[r.sources["converted"] > 0].itertuples()
    ]
    body = (
        _img(fig, "Distribution of days from creation to conversion")
        + _table([r.terms.source_label, "Converted", "Median days to convert"], rows,
                 numeric=(1, 2))
        + '<p class="note">Only leads converted by the report date count. Leads that will '
        "convert later are not in yet (right-censoring), so for recent leads these times "
        "read short.</p>"
    )
    return summary, body


def _section_calibration(r: FunnelReport) -> tuple[str, str]:
    if not r.has_scores:
        return (
            "Needs --scores: no scores were given, so calibration and lift cannot be measured.",
            '<p class="missing">Score calibration and lift need scores made at a known time '
            "(<code>scored_at</code>) and the outcomes after them; pass them with "
            "<code>--scores</code>.</p>",
        )
    o = r.outcomes
    if o is None or not o.observable:
        text = _unobservable_text(o)
        return "Not observable yet: " + text, f'<p class="missing">{_esc(text)}</p>'
    table = calibration_table(o.frame)
    m = calibration_metrics(o.frame)
    days = r.horizon.days
    top = table.iloc[0]
    window = _window_text(r, o)
    summary = (
        f"The top 10% of scored leads converted{window} at {_pct(top['observed_rate'])}, "
        f"{_times(top['lift'])} the average, and held {_pct(top['cumulative_capture'], 0)} of "
        f"conversions; predicted {_pct(m['mean_probability'])} on average vs "
        f"{_pct(m['base_rate'])} observed."
        + ("" if r.terms.dated else _AS_RECORDED)
    )
    fig = _figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    hi = max(float(table["mean_probability"].max()), float(table["observed_rate"].max()), 0.01) * 105
    left.plot([0, hi], [0, hi], "--", color=_GREY, label="perfect calibration")
    left.plot(table["mean_probability"] * 100, table["observed_rate"] * 100, "o-", color=_BLUE,
              label="score bins (tenths)")
    left.set_xlim(0, hi)
    left.set_ylim(0, hi)
    left.set_xlabel("predicted conversion (%)")
    left.set_ylabel("observed conversion (%)")
    left.set_title("Calibration", fontsize=10)
    left.legend(frameon=False, fontsize=9)
    _style(left)
    share = np.concatenate([[0], table["leads"].cumsum() / table["leads"].sum() * 100])
    capture = np.concatenate([[0], table["cumulative_capture"].fillna(0) * 100])
    right.plot([0, 100], [0, 100], "--", color=_GREY, label="random order")
    right.plot(share, capture, "o-", color=_ORANGE, label="by score")
    right.set_xlabel("share of scored leads, highest scores first (%)")
    right.set_ylabel("share of conversions found (%)")
    right.set_title("Cumulative gains", fontsize=10)
    right.legend(frameon=False, fontsize=9)
    _style(right)
    rows = [
        [int(row.bin), _n(row.leads), f"{_pct(row.min_probability)}–{_pct(row.max_probability)}",
         _pct(row.mean_probability), _pct(row.observed_rate), _times(row.lift),
         _pct(row.cumulative_capture, 0)]
        for row in table.itertuples()
    ]
    caveat = "" if o.fully_observed else (
        f'<p class="missing">No score has had its full {days} days of follow-up yet: observed '
        f"rates cover only {_num(o.median_window_days, 0)} days (median) and are a lower bound. "
        "Read the ranking (lift, gains), not the gap to the diagonal.</p>"
    )
    if not r.terms.dated:
        caveat = _IN_SAMPLE_NOTE
    body = (
        caveat
        + _img(fig, "Calibration curve and cumulative gains")
        + _table(["Metric", "Value"], [
            ["Scores compared with outcomes", _n(m["leads"])],
            ["Mean predicted probability", _pct(m["mean_probability"], 2)],
            ["Observed conversion", _pct(m["base_rate"], 2)],
            ["Expected calibration error (10 bins)", _pct(m["ece"], 2)],
            ["Brier score", _num(m["brier"], 4)],
            ["ROC AUC", _num(m["auc"], 3)],
        ], numeric=(1,))
        + _table(["Tenth (1 = highest scores)", "Leads", "Probability range", "Mean predicted",
                  "Observed", "Lift", "Cumulative share of conversions"], rows, numeric=range(1, 7))
    )
    return summary, body


def _section_health(r: FunnelReport) -> tuple[str, str]:
    h = r.health
    if h is None:
        text = ("Needs the scores of a batch run (--scores DIR/scores of 'leadscore rescore'), "
                "which carry the run's drift against the model's training window.")
        return "Not available: " + text[0].lower() + text[1:], f'<p class="missing">{_esc(text)}</p>'
    alert = h.get("thresholds", {}).get("alert", 0.25)
    psi = h.get("score_psi")
    summary = (f"Score PSI {'n/a' if psi is None else f'{psi:.3f}'} ({h.get('score_level')}); "
               f"{h.get('n_drifted', 0)} of {h.get('n_features', 0)} features above {alert:g} "
               f"in run {h.get('run_id')}.")
    rows = [[f["label"], f["feature"], _num(f["psi"], 3), f["level"],
             _pct(f["missing_share"]), _pct(f["reference_missing_share"])]
            for f in h.get("features", [])[:20]]
    body = (
        _table(["Field", "Feature", "PSI", "Level", "Missing now", "Missing in training"], rows,
               numeric=(2, 4, 5))
        + '<p class="note">PSI compares the share of leads in each bin of a feature (deciles '
        "of the training window for numbers, its 20 most frequent values for categories, "
        "missing as a bin of its own) now and in training: below 0.1 stable, 0.1 to 0.25 "
        f"moderate, above 0.25 major. {_esc(h.get('scope', ''))}. The 20 most shifted "
        "features are shown.</p>"
    )
    e = h.get("estimate")
    if e and e.get("n"):
        body += (
            f'<p class="note"><strong>Expected performance of this run</strong> (label-free, '
            f"from the calibrated probabilities of its {_n(e['n'])} model-scored leads): "
            f"conversion {_pct(e.get('expected_conversion_rate') or float('nan'))}, ROC AUC "
            f"{_num(e.get('expected_roc_auc') or float('nan'), 3)}, top-decile lift "
            f"{_num(e.get('expected_top_decile_lift') or float('nan'), 2)}. "
            f"{_esc(e.get('assumption', ''))}.</p>")
    return summary, body


def _section_backtest(r: FunnelReport) -> tuple[str, str]:
    runs = [b for b in (r.backtests or []) if b.status == "ok"]
    if not runs:
        why = ("no run's horizon has passed yet, or every one had too few labelled leads"
               if r.backtests else "needs the scores of 'leadscore rescore' (--scores "
               "DIR/scores), whose DIR/history keeps every committed run")
        text = f"Needs committed runs followed for a whole horizon: {why}."
        return "Not available: " + text[0].lower() + text[1:], f'<p class="missing">{_esc(text)}</p>'
    last = runs[-1]
    est = (last.estimate or {}).get("expected_roc_auc")
    summary = (f"{len(runs)} run(s) followed for {r.horizon.days} days; the latest "
               f"({last.as_of.date()}) realised ROC AUC {_num(last.realised['roc_auc'], 3)} "
               f"(95% {_num(last.realised['roc_auc_low'], 3)} to "
               f"{_num(last.realised['roc_auc_high'], 3)})"
               + (f", estimated {_num(est, 3)} at the time" if est is not None else "") + ".")
    fig = _figure(9, 3.4)
    auc_ax, grade_ax = fig.subplots(1, 2)
    x = np.arange(len(runs))
    labels = [str(b.as_of.date()) for b in runs]
    auc = np.array([b.realised["roc_auc"] for b in runs])
    low = np.array([b.realised["roc_auc_low"] for b in runs])
    high = np.array([b.realised["roc_auc_high"] for b in runs])
    auc_ax.errorbar(x, auc, yerr=[auc - low, high - auc], fmt="o", color=_BLUE, capsize=4,
                    label="realised (95% DeLong)")
    expected = [(b.estimate or {}).get("expected_roc_auc") for b in runs]
    auc_ax.plot(x, [np.nan if e is None else e for e in expected], "D", color=_ORANGE,
                label="estimated at the time (CBPE)")
    auc_ax.set_title("ROC AUC by run", fontsize=10)
    colors = dict(zip("ABCD", (_GREEN, _BLUE, _ORANGE, _RED), strict=True))
    for grade in "ABCD":
        rates = [float(b.grades.set_index("grade").loc[grade, "observed_rate"]) * 100
                 for b in runs]
        grade_ax.plot(x, rates, "o-", color=colors[grade], label=grade)
    grade_ax.set_title(f"Converted within {r.horizon.days} days, by grade (%)", fontsize=10)
    for ax in (auc_ax, grade_ax):
        ax.set_xticks(x, labels, fontsize=8)
        _style(ax)
        ax.legend(frameon=False, fontsize=8)
    rows = []
    for b in runs:
        e = b.estimate or {}
        g = b.grades.set_index("grade")["observed_rate"]
        rows.append([str(b.as_of.date()), b.model_version or "", _n(b.n_labelled),
                     *(_pct(g[k]) for k in "ABCD"), _num(b.realised["roc_auc"], 3),
                     _num(e.get("expected_roc_auc", float("nan")), 3),
                     _num(b.realised["top_decile_lift"], 2),
                     _num(e.get("expected_top_decile_lift", float("nan")), 2),
                     _num(b.realised["ece"], 3)])
    body = (
        _img(fig, "Realised and estimated ROC AUC, and conversion by grade, over runs")
        + _table(["Run as of", "Model", "Labelled", "A", "B", "C", "D", "AUC", "AUC est.",
                  "Top-10% lift", "Lift est.", "ECE"], rows, numeric=range(2, 12))
        + '<p class="note">Each committed rescore run whose horizon has passed, its model-scored '
        "leads followed for the horizon after its as_of. The estimates are the label-free ones "
        "the run made from its calibrated probabilities (CBPE); they hold while calibration "
        "holds on the new leads (no concept drift), so a realised figure far below its "
        "estimate says the way leads convert has changed. <code>leadscore backtest</code> "
        "prints the same with confidence intervals per grade.</p>"
    )
    return summary, body


def _section_cost() -> tuple[str, str]:
    summary = "Not available: the data holds no cost or spend figures, so cost per lead is not computed."
    body = (
        '<p class="missing">Lead-management practice asks for cost per lead (spend ÷ leads, per '
        "source and month). The leads and activities tables carry no spend, and this report "
        "does not invent one. Join campaign spend per source and month to the lead counts in "
        "“Conversion by source” to get it.</p>"
    )
    return summary, body


def _section_method(r: FunnelReport) -> tuple[str, str]:
    days = r.horizon.days
    t = r.terms
    items = []
    if t.dataset:
        items.append(f"Data: the dataset spec {t.dataset!r}; fields and activity kinds are "
                     "named as the spec names them.")
    if t.has_created:
        items.append(
            f"Report date (as of): {r.as_of.isoformat()}. Leads created later are left out; a "
            "conversion, disqualification or activity counts only if dated at or before it."
        )
    else:
        items.append("The export has no times: every lead counts, with the outcome it records.")
    items.append(
        "Converted: converted_at is set and not after the report date. Months are calendar "
        "months in UTC." if t.dated else
        "Converted: the spec's label marks the lead as converted (the outcome has no date)."
    )
    if t.has_activities:
        engaged = ("Engaged: at least one activity"
                   + (f" other than {', '.join(t.disengaged_types)}." if t.disengaged_types else "."))
        ready = (f" Sales-ready action: {t.sales_ready_label}." if t.sales_ready_types
                 else " No activity kind is marked as a sales-ready (key) action.")
        items.append(engaged + ready)
    else:
        items.append("Engagement: the dataset has no activity log.")
    items.append(r.qualified_definition)
    if t.dated:
        items.append(f"Horizon: {days} days, the same window as the model's training label.")
    if r.has_scores and not t.dated:
        items.append(
            "Score outcomes: each lead's latest score is compared with the outcome the export "
            "records (the outcome has no date, so nothing can be followed forward from a score)."
        )
    elif r.has_scores:
        o = r.outcomes
        items.append(
            "Score outcomes: a score made as of time t (its as_of, else its scored_at) is "
            "compared only with conversions after t "
            f"and within {days} days of it, never with what happened before. Leads already "
            "converted or disqualified at t are left out, as in the training set. When some "
            f"scores have had their full {days} days by the report date, only those are used."
        )
        if o is not None and o.excluded:
            items.append(
                "Scores left out: "
                + "; ".join(f"{k}: {_n(v)}" for k, v in sorted(o.excluded.items())) + "."
            )
        if r.scores_summary:
            items.append(
                "Scores read: " + ", ".join(f"{k.replace('_', ' ')}: {_n(v)}"
                                            for k, v in r.scores_summary.items()) + "."
            )
    else:
        items.append("No scores were given (--scores), so grade, calibration and lift are not shown.")
    if r.unknown_activity_types:
        items.append(
            ("Activity types the spec maps to no kind" if t.dataset
             else "Activity types outside the contract")
            + " (kept, counted as engagement): "
            + ", ".join(f"{k} ({_n(v)})" for k, v in r.unknown_activity_types.items()) + "."
        )
    body = "<ul>" + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"
    return _dated_line(r, "All figures are as of {}.", "All figures are as the export records them."), body


def _dated_line(r: FunnelReport, dated: str, undated: str) -> str:
    if r.terms.has_created:
        return dated.format(r.as_of.strftime("%Y-%m-%d %H:%M UTC"))
    return undated


def render_report_html(report: FunnelReport) -> str:
    """The report as one self-contained HTML page (inline CSS, plots as inline PNG)."""
    builders = {
        "funnel": lambda: _section_funnel(report),
        "conversion": lambda: _section_conversion(report),
        "velocity": lambda: _section_velocity(report),
        "source": lambda: _section_source(report),
        "grade": lambda: _section_grade(report),
        "matrix": lambda: _section_matrix(report),
        "time": lambda: _section_time(report),
        "calibration": lambda: _section_calibration(report),
        "health": lambda: _section_health(report),
        "backtest": lambda: _section_backtest(report),
        "cost": _section_cost,
        "method": lambda: _section_method(report),
    }
    parts, keys = [], []
    titles = {"source": f"Conversion by {report.terms.source_label}"} if report.terms.dataset else {}
    for key, title in _SECTIONS:
        title = titles.get(key, title)
        summary, body = builders[key]()
        keys.append(f'<li><a href="#{key}">{_esc(title)}</a>: {_esc(summary)}</li>')
        parts.append(
            f'<section id="{key}"><h2>{_esc(title)}</h2>'
            f'<p class="summary">{_esc(summary)}</p>{body}</section>'
        )
    sources = [f"data: {report.data_label}"] if report.data_label else []
    if report.scores_label:
        sources.append(f"scores: {report.scores_label}")
    meta = _dated_line(report, "Data as of {}", "Data as the export records it (no dates)") + (
        f" · {'; '.join(sources)}" if sources else ""
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<title>Lead funnel report</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<h1>Lead funnel report</h1>"
        f'<p class="meta">{_esc(meta)}</p>'
        f'<h2 id="key-numbers">Key numbers</h2><ul class="keys">{"".join(keys)}</ul>'
        + "".join(parts)
        + "</main></body></html>\n"
    )


def write_report(
    data_dir: Path | str,
    out: Path | str,
    *,
    scores_path: Path | str | None = None,
    as_of: pd.Timestamp | None = None,
    horizon: pd.Timedelta = DEFAULT_HORIZON,
    scored_at: pd.Timestamp | None = None,
    assume_utc: bool = False,
    backtest_min_labelled: int = 200,
) -> FunnelReport:
    """Load, validate, compute and write the report to ``out`` atomically.

    The page is written to a temporary file beside ``out`` and renamed over it, so a
    reader never sees half a report and a failed run leaves any old one in place.

    Returns
    -------
    FunnelReport
        What was written, for the caller to summarise.
    """
    inputs = load_report_inputs(data_dir, scores_path, assume_utc=assume_utc)
    report = build_report(
        inputs.leads, inputs.activities, inputs.scores,
        as_of=as_of, horizon=horizon, scored_at=scored_at,
        data_label=Path(data_dir).name,
        scores_label=Path(scores_path).name if scores_path is not None else "",
    )
    report = replace(report, health=read_run_health(scores_path),
                     backtests=run_backtests(scores_path, inputs.leads, report.as_of,
                                             report.horizon, backtest_min_labelled))
    page = render_report_html(report)
    write_atomically(out, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return report


def run_backtests(scores_path: Path | str | None, leads: pd.DataFrame, as_of: pd.Timestamp,
                  horizon: pd.Timedelta, min_labelled: int) -> list | None:
    """Backtests of a rescore's runs when ``scores_path`` is its ``DIR/scores`` (and
    ``DIR/history`` exists), else None."""
    if scores_path is None or not (Path(scores_path).parent / "history").is_dir():
        return None
    from leadscore.backtest import backtest_runs

    return backtest_runs(Path(scores_path).parent, leads, as_of=as_of, horizon=horizon,
                         min_labelled=min_labelled)
