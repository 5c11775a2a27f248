"""The spec itself: pydantic models of format versions 1 (one flat table) and 2 (tables).

Everything here checks the spec on its own, without data: keys (unknown ones are
named with a suggestion), types, one role per column, an outcome, at least one
feature, kinds that map each CRM type once. Each problem starts with its key path
(``spec.tables.leads.columns.numeric[2]: ...``); :mod:`features.spec.parse` gathers
them into one :class:`~features.errors.SpecError`.

A version 1 spec is converted to the version 2 model by :meth:`DatasetSpec.to_v2`, so
one loader (:mod:`features.spec.load`) reads both.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from features.errors import SpecError

__all__ = [
    "SPEC_VERSION",
    "SPEC_VERSIONS",
    "RESERVED_NAMES",
    "LEAD_RESERVED_NAMES",
    "ACTIVITY_RESERVED_NAMES",
    "DatasetSpec",
    "DatasetSpecV2",
    "AnySpec",
    "ColumnsSpec",
    "ColumnEntry",
    "LeakyEntry",
    "trusted_feature_names",
    "LabelSpec",
    "ReadOptions",
    "CsvOptions",
    "SourceSpec",
    "TableRead",
    "GeneratedId",
    "LeadColumns",
    "OutcomeColumns",
    "ActivityColumns",
    "KindSpec",
    "LeadsTable",
    "OutcomesTable",
    "ActivitiesTable",
    "TablesSpec",
    "PoliciesSpec",
    "SnapshotsSpec",
    "TrainingSpec",
    "safe_name",
    "parse_duration",
]

SPEC_VERSION = 2
"""The newest spec format version this code reads."""

SPEC_VERSIONS: tuple[int, ...] = (1, 2)
"""Every spec format version this code reads."""

RESERVED_NAMES: tuple[str, ...] = ("lead_id", "created_at", "label")
"""Columns of a version 1 :attr:`SpecDataset.frame` that no feature may be renamed to."""

LEAD_RESERVED_NAMES: tuple[str, ...] = (
    "lead_id",
    "created_at",
    "converted_at",
    "disqualified_at",
    "label",
)
"""Columns of :attr:`SpecTables.leads` that no feature or time column may be renamed to."""

ACTIVITY_RESERVED_NAMES: tuple[str, ...] = ("lead_id", "occurred_at", "type", "raw_type")
"""Columns of :attr:`SpecTables.activities` that no value column may be named."""

_DEFAULT_POSITIVE: tuple[str, ...] = ("1", "yes", "y", "true")
_DEFAULT_NEGATIVE: tuple[str, ...] = ("0", "no", "n", "false")
_SAFE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([dhw])\s*$")
_DURATION_UNITS = {"d": "days", "h": "hours", "w": "weeks"}


# --------------------------------------------------------------------------- shared pieces


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """A "; did you mean 'x'?" suffix when a close candidate exists, else ""."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def safe_name(column: str) -> str:
    """A LightGBM-safe snake_case name: ``"Total Time Spent on Website"`` → ``total_time_spent_on_website``."""
    ascii_text = unicodedata.normalize("NFKD", column).encode("ascii", "ignore").decode()
    name = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_text).strip("_").lower()
    if not name:
        name = "column"
    if name[0].isdigit():
        name = f"f_{name}"
    return name


def parse_duration(value: str) -> pd.Timedelta:
    """``"90d"``, ``"12h"`` or ``"2w"`` as a Timedelta; a ValueError saying what is expected."""
    match = _DURATION_RE.match(str(value))
    if not match or int(match.group(1)) <= 0:
        raise ValueError(
            f"{value!r} is not a duration; expected a positive whole number followed by "
            "d, h or w, such as '90d'"
        )
    return pd.Timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


class _Strict(BaseModel):
    """Frozen, forbids unknown keys, and names a misspelt key with a suggestion.

    ``extra="forbid"`` alone would say "Extra inputs are not permitted"; the check
    below runs first so that the user reads which keys exist and which one they meant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    key_noun: ClassVar[str] = "key"

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        data = cls._coerce(data)
        if isinstance(data, dict):
            known = list(cls.model_fields)
            for key in data:
                if key not in known:
                    raise ValueError(
                        f"unknown {cls.key_noun} {key!r}{_suggest(str(key), known)} "
                        f"(expected one of: {', '.join(known)})"
                    )
        return data


class ColumnEntry(_Strict):
    """A feature (or ignored/PII/time) column: a bare name, or a mapping with display text.

    ``label`` is what explanations call the feature ("Current occupation" rather
    than "What is your current occupation"); ``name`` overrides the safe name that
    is derived from the column.
    """

    column: str = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1)
    description: str | None = None
    name: str | None = Field(default=None, pattern=_SAFE_NAME_RE.pattern)
    trusted: bool = Field(
        default=False,
        description="A feature the leakage audit may flag but must not exclude: the user "
        "knows it is filled in before the outcome (only under categorical or numeric).",
    )
    group: Literal["fit", "engagement"] | None = Field(
        default=None,
        description="Which part of the score the feature adds to: 'fit' (who the lead is) "
        "or 'engagement' (what it did). A lead column is fit unless it says otherwise: a "
        "flat export's pre-counted visits are engagement (only under categorical or numeric).",
    )

    @field_validator("group", mode="before")
    @classmethod
    def _group_is_known(cls, value: Any) -> Any:
        return _check_group(value)

    @field_validator("trusted", mode="before")
    @classmethod
    def _trusted_is_a_boolean(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false; got {value!r}")
        return value

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data


class LeakyEntry(_Strict):
    """A column that leaks the outcome: loaded for the leakage audit, never a feature.

    ``kind`` says how to read it; ``auto`` reads it as numbers when every value is
    one, else as text.
    """

    column: str = Field(min_length=1)
    reason: str | None = None
    kind: Literal["auto", "categorical", "numeric"] = "auto"
    name: str | None = Field(default=None, pattern=_SAFE_NAME_RE.pattern)

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data


class LabelSpec(_Strict):
    """The outcome column: which values mean converted (1) and which mean not (0).

    Values are compared as trimmed, case-folded text; ``1`` and ``1.0`` are the
    same. A YAML ``yes``/``no`` (which YAML reads as a boolean) matches yes, y, true
    and on (no, n, false, off). Any other value in the data is an error.
    """

    column: str = Field(min_length=1)
    positive: list[str | int | bool] = Field(default_factory=lambda: list(_DEFAULT_POSITIVE))
    negative: list[str | int | bool] = Field(default_factory=lambda: list(_DEFAULT_NEGATIVE))

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return {"column": data} if isinstance(data, str) else data

    @property
    def positive_tokens(self) -> frozenset[str]:
        return frozenset().union(*(_spec_tokens(v) for v in self.positive))

    @property
    def negative_tokens(self) -> frozenset[str]:
        return frozenset().union(*(_spec_tokens(v) for v in self.negative))


class CsvOptions(_Strict):
    """The few ``pandas.read_csv`` options exports need."""

    delimiter: str = Field(default=",", min_length=1)
    encoding: str = "utf-8"
    decimal: str = Field(default=".", min_length=1, max_length=1)
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    skiprows: int = Field(default=0, ge=0)


def _check_group(value: Any) -> Any:
    """One message for a bad ``group``, naming the value and the two that exist."""
    if value is None or value in ("fit", "engagement"):
        return value
    raise ValueError(f"{value!r} is not a group; expected 'fit' (who the lead is) or "
                     "'engagement' (what it did)")


def _entry_name(entry: ColumnEntry | LeakyEntry) -> str:
    return entry.name or safe_name(entry.column)


def _spec_tokens(value: str | int | bool) -> frozenset[str]:
    """The data values (normalised text) that one spec label value stands for."""
    # YAML 1.1 reads an unquoted yes/no/on/off as a boolean; the user meant the word.
    if isinstance(value, bool):
        return frozenset({"true", "yes", "y", "on"} if value else {"false", "no", "n", "off"})
    return frozenset({_data_token(value)})


def _data_token(value: object) -> str:
    """A data value as comparable text: trimmed, case-folded, ``1.0`` → ``"1"``."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
        return str(int(number)) if number.is_integer() else repr(number)
    text = str(value).strip().casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


# --------------------------------------------------------------------------- version 2


class SourceSpec(_Strict):
    """Where a table comes from: exactly one of ``file``, ``sql`` or ``url``.

    - ``file``: a CSV or Parquet file, relative to the data folder (the spec's folder
      unless ``data_dir`` or ``--data`` says otherwise); ``format`` and ``csv`` as
      version 1's ``read.format`` and ``read.csv``.
    - ``sql``: a DuckDB query; relative file paths in it (``read_csv('x.csv')``)
      resolve against the data folder.
    - ``url``: a SQLAlchemy database URL with ``query`` or ``table``. ``${VAR}`` is
      replaced by the environment variable, so credentials stay out of the file.

    A bare string is a ``file``.
    """

    file: str | None = Field(default=None, min_length=1)
    format: Literal["csv", "parquet"] | None = None
    csv: CsvOptions | None = None
    sql: str | None = Field(default=None, min_length=1)
    url: str | None = Field(default=None, min_length=1)
    query: str | None = Field(default=None, min_length=1)
    table: str | None = Field(default=None, min_length=1)

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        return {"file": data} if isinstance(data, str) else data

    @property
    def kind(self) -> Literal["file", "sql", "url"]:
        """Which of the three kinds of source this is."""
        if self.file is not None:
            return "file"
        return "sql" if self.sql is not None else "url"

    @property
    def csv_options(self) -> CsvOptions:
        return self.csv or CsvOptions()

    def problems(self, path: str) -> list[str]:
        """Cross-key checks of one source, each starting with its key path."""
        given = [k for k in ("file", "sql", "url") if getattr(self, k) is not None]
        out = []
        if len(given) != 1:
            got = f"got {', '.join(given)}" if given else "got none"
            out.append(f"{path}: give exactly one of 'file', 'sql' or 'url' ({got})")
        if self.url is not None and (self.query is None) == (self.table is None):
            out.append(f"{path}: with 'url', give exactly one of 'query' or 'table'")
        if self.url is None:
            for key in ("query", "table"):
                if getattr(self, key) is not None:
                    out.append(f"{path}.{key}: only goes with 'url' (a database source)")
        if self.file is None:
            for key in ("format", "csv"):
                if getattr(self, key) is not None:
                    out.append(f"{path}.{key}: only goes with 'file'")
        return out


class TableRead(_Strict):
    """How to read a table's values before roles apply (version 1's ``read`` without the file format)."""

    na_values: list[str] = Field(default_factory=list)
    keep_default_na: bool = True
    drop_columns: list[str] = Field(default_factory=list)
    assume_utc: bool = False


class ReadOptions(TableRead):
    """Version 1: how to read the table before roles apply."""

    format: Literal["csv", "parquet"] | None = None
    csv: CsvOptions = Field(default_factory=CsvOptions)


class GeneratedId(_Strict):
    """``id: {generate: true}``: the export has no id, so each row gets a stable one.

    The id is ``row-`` and 16 hex digits of the sha256 of the row's values in the
    columns the spec reads (every role except ``ignore`` and ``pii``, taken in
    column-name order): the same row gets the same id in every load and wherever it
    sits in the file. Identical rows get ``-2``, ``-3``... in order of appearance (they
    are interchangeable). Moving a column in or out of the read roles changes the ids.
    """

    generate: Literal[True]


class LeadColumns(_Strict):
    """Every role a column of the leads table can have. A column has exactly one."""

    key_noun: ClassVar[str] = "role"

    id: Annotated[str, Field(min_length=1)] | GeneratedId = Field(
        description="Unique lead id column (not personal data), or {generate: true}."
    )
    label: LabelSpec | None = None
    converted_at: str | None = Field(default=None, min_length=1)
    disqualified_at: str | None = Field(default=None, min_length=1)
    created_at: str | None = Field(default=None, min_length=1)
    time: list[ColumnEntry] = Field(default_factory=list)
    categorical: list[ColumnEntry] = Field(default_factory=list)
    numeric: list[ColumnEntry] = Field(default_factory=list)
    ignore: list[ColumnEntry] = Field(default_factory=list)
    leaky: list[LeakyEntry] = Field(default_factory=list)
    pii: list[ColumnEntry] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_a_column_or_generated(cls, value: Any) -> Any:
        # One clear message instead of one per member of the union.
        expected = "expected the id column's name, or {generate: true}"
        if isinstance(value, str):
            if not value.strip():
                raise ValueError(f"is empty; {expected}")
            return value
        if isinstance(value, dict):
            unknown = [k for k in value if k != "generate"]
            if unknown:
                hint = _suggest(str(unknown[0]), ["generate"])
                raise ValueError(f"unknown key {unknown[0]!r}{hint}; {expected}")
            if value.get("generate") is True:
                return value
        raise ValueError(f"{expected}; got {value!r}")

    @property
    def id_column(self) -> str | None:
        """The id column, or None when ids are generated."""
        return self.id if isinstance(self.id, str) else None


class OutcomeColumns(_Strict):
    """The outcomes table: one or more rows per lead; the first (min) time per lead wins."""

    key_noun: ClassVar[str] = "role"

    lead_id: str = Field(min_length=1)
    label: LabelSpec | None = None
    converted_at: str | None = Field(default=None, min_length=1)
    disqualified_at: str | None = Field(default=None, min_length=1)
    ignore: list[ColumnEntry] = Field(default_factory=list)


class ActivityColumns(_Strict):
    """The activity log: who, when, what, and optional numeric values (by name)."""

    key_noun: ClassVar[str] = "role"

    lead_id: str = Field(min_length=1)
    occurred_at: str = Field(min_length=1)
    type: str = Field(min_length=1)
    values: dict[str, str] = Field(default_factory=dict)
    ignore: list[ColumnEntry] = Field(default_factory=list)


class KindSpec(_Strict):
    """One kind of activity: the CRM's type values it covers and how reasons name it.

    ``group`` is the part of the score its features add to (``engagement`` unless it
    says ``fit``); ``actionable: true`` marks a kind a marketer can bring about (a demo
    request, a webinar), which the next-action suggestions of ``POST /score`` try.
    """

    types: list[str] = Field(min_length=1)
    label: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0)
    key_action: bool = False
    group: Literal["fit", "engagement"] = "engagement"
    actionable: bool = False

    @field_validator("group", mode="before")
    @classmethod
    def _group_is_known(cls, value: Any) -> Any:
        return _check_group(value)

    @field_validator("actionable", mode="before")
    @classmethod
    def _a_boolean(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false; got {value!r}")
        return value

    @classmethod
    def _coerce(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("types"), str):
            return {**data, "types": [data["types"]]}
        return data


class LeadsTable(_Strict):
    """The leads table: one row per lead."""

    source: SourceSpec
    read: TableRead = Field(default_factory=TableRead)
    columns: LeadColumns
    default_role: Literal["ignore"] | None = None


class OutcomesTable(_Strict):
    """Outcomes as a table of their own (deals, opportunities)."""

    source: SourceSpec
    read: TableRead = Field(default_factory=TableRead)
    columns: OutcomeColumns
    default_role: Literal["ignore"] | None = None


class ActivitiesTable(_Strict):
    """The behavioural history: one row per event."""

    source: SourceSpec
    read: TableRead = Field(default_factory=TableRead)
    columns: ActivityColumns
    default_role: Literal["ignore"] | None = None
    kinds: dict[str, KindSpec] = Field(default_factory=dict)


class TablesSpec(_Strict):
    """The tables of a version 2 spec; ``leads`` is required."""

    key_noun: ClassVar[str] = "table"

    leads: LeadsTable
    outcomes: OutcomesTable | None = None
    activities: ActivitiesTable | None = None


class PoliciesSpec(_Strict):
    """What to do with rows that break a rule. Each defaults to an error naming the rows."""

    key_noun: ClassVar[str] = "policy"

    converted_before_created: Literal["error", "drop", "clip"] = "error"
    duplicate_id: Literal["error", "drop"] = "error"
    outcome_unknown_lead: Literal["error", "drop"] = "error"
    activity_unknown_lead: Literal["error", "drop"] = "error"
    activity_after_outcome: Literal["keep", "drop"] = "keep"


class SnapshotsSpec(_Strict):
    """One snapshot per lead at ``anchor`` + each offset, instead of the ``every`` grid."""

    anchor: str = Field(min_length=1)
    offsets: list[str] = Field(min_length=1)


class SplitSpec(_Strict):
    """Where validation and test start (ISO dates, UTC), instead of shares of the rows.

    The way to hold out a whole cohort: the latest presentation of a course, last
    quarter's leads.
    """

    valid_from: str
    test_from: str


class TrainingSpec(_Strict):
    """Options for the training-set builder. Durations are strings like ``90d``, ``12h``, ``2w``."""

    horizon: str = "90d"
    every: str = "7d"
    snapshots: SnapshotsSpec | None = None
    censoring: Literal["drop", "resolved"] = "drop"
    split: SplitSpec | None = None

    def problems(self, path: str) -> list[str]:
        out = []
        if self.split is not None:
            stamps = {}
            for key in ("valid_from", "test_from"):
                value = getattr(self.split, key)
                try:
                    stamps[key] = pd.Timestamp(value)
                except ValueError:
                    out.append(f"{path}.split.{key}: {value!r} is not a date; expected ISO 8601 "
                               "such as '2014-10-01'")
            if len(stamps) == 2 and stamps["valid_from"] >= stamps["test_from"]:
                out.append(f"{path}.split: valid_from {self.split.valid_from!r} is not before "
                           f"test_from {self.split.test_from!r}")
        for key in ("horizon", "every"):
            try:
                parse_duration(getattr(self, key))
            except ValueError as exc:
                out.append(f"{path}.{key}: {exc}")
        if self.snapshots is not None:
            for i, offset in enumerate(self.snapshots.offsets):
                try:
                    parse_duration(offset)
                except ValueError as exc:
                    out.append(f"{path}.snapshots.offsets[{i}]: {exc}")
        return out


# --------------------------------------------------------------------------- cross-key checks


def _lead_role_paths(c: LeadColumns | ColumnsSpec, prefix: str) -> list[tuple[str, str]]:
    """``(key path, column)`` for every leads column a spec names, in spec order."""
    out: list[tuple[str, str]] = []
    if isinstance(c.id, str):
        out.append((f"{prefix}.id", c.id))
    if c.label is not None:
        out.append((f"{prefix}.label.column", c.label.column))
    for role in ("converted_at", "disqualified_at", "created_at"):
        column = getattr(c, role, None)
        if column is not None:
            out.append((f"{prefix}.{role}", column))
    for role in ("time", "categorical", "numeric", "ignore", "leaky", "pii"):
        for i, entry in enumerate(getattr(c, role, [])):
            out.append((f"{prefix}.{role}[{i}]", entry.column))
    return out


def _duplicate_role_problems(paths: list[tuple[str, str]]) -> list[str]:
    problems = []
    seen: dict[str, str] = {}
    for path, column in paths:
        if column in seen:
            problems.append(
                f"{path}: {column!r} already has a role at {seen[column]}; "
                "a column has exactly one role"
            )
        else:
            seen[column] = path
    return problems


def _label_problems(label: LabelSpec, path: str) -> list[str]:
    problems = []
    if not label.positive:
        problems.append(f"{path}.positive: is empty; list the values that mean converted")
    if not label.negative:
        problems.append(f"{path}.negative: is empty; list the values that mean not converted")
    both = sorted(label.positive_tokens & label.negative_tokens)
    if both:
        problems.append(
            f"{path}: {both} are both positive and negative; "
            "a value means converted or not, not both"
        )
    return problems


def _name_problems(
    c: LeadColumns | ColumnsSpec, prefix: str, reserved: tuple[str, ...]
) -> list[str]:
    problems = []
    names: dict[str, str] = {}
    for role in ("time", "categorical", "numeric", "leaky"):
        for i, entry in enumerate(getattr(c, role, [])):
            path = f"{prefix}.{role}[{i}]"
            name = _entry_name(entry)
            if name in reserved:
                problems.append(
                    f"{path}: {entry.column!r} would be named {name!r}, which is reserved "
                    f"({', '.join(reserved)}); give it another 'name'"
                )
            elif name in names:
                problems.append(
                    f"{path}: {entry.column!r} would be named {name!r}, like {names[name]}; "
                    "give one of them a distinct 'name'"
                )
            else:
                names[name] = path
    return problems


def _trusted_problems(c: LeadColumns | ColumnsSpec, prefix: str) -> list[str]:
    """``trusted`` marks a feature; on any other role it means nothing, so it is refused."""
    problems = []
    for role in ("time", "ignore", "pii"):
        for i, entry in enumerate(getattr(c, role, [])):
            if entry.group is not None:
                problems.append(
                    f"{prefix}.{role}[{i}].group: got {entry.group!r} for {entry.column!r}, a "
                    f"column with the role {role!r}; expected it only on a 'categorical' or "
                    "'numeric' feature (other roles are no part of the score)"
                )
            if entry.trusted:
                problems.append(
                    f"{prefix}.{role}[{i}].trusted: got true for {entry.column!r}, a column "
                    f"with the role {role!r}; expected it only on a 'categorical' or "
                    "'numeric' feature (the leakage audit never sees other roles)"
                )
    return problems


def trusted_feature_names(spec: Any) -> tuple[str, ...]:
    """Safe names of the features a spec marks ``trusted: true`` (version 1 or 2)."""
    c = spec.columns if hasattr(spec, "columns") else spec.tables.leads.columns
    return tuple(_entry_name(e) for e in (*c.categorical, *c.numeric) if e.trusted)


def _feature_problems(c: LeadColumns | ColumnsSpec, prefix: str) -> list[str]:
    if not c.categorical and not c.numeric:
        return [
            f"{prefix}: no feature columns; list at least one column under "
            "'categorical' or 'numeric'"
        ]
    return []


# --------------------------------------------------------------------------- version 2 spec


class _FromFile(_Strict):
    """Where a spec came from: not part of the format, set by ``parse_spec``."""

    _base_dir: Path | None = PrivateAttr(default=None)
    _origin: str = PrivateAttr(default="spec")

    @property
    def base_dir(self) -> Path | None:
        """The spec file's folder: relative sources resolve against it."""
        return self._base_dir

    @property
    def origin(self) -> str:
        """How messages name this spec, usually its file name."""
        return self._origin


class DatasetSpecV2(_FromFile):
    """A validated dataset spec (format version 2): tables, policies, training options.

    Build it with :func:`~features.spec.load_spec` (from a file) or
    :func:`~features.spec.parse_spec` (from a mapping).
    """

    version: Literal[2]
    name: str | None = None
    description: str | None = None
    data_dir: str | None = Field(
        default=None,
        description="Folder that relative source paths resolve against, relative to the "
        "spec file; --data (or LEADSCORE_SPEC_DATA) overrides it. Default: the spec's folder.",
    )
    contract: Literal["builtin"] | None = Field(
        default=None,
        description="'builtin': the tables are in leadscore's own data contract "
        "(features/schema.py), validated by it and scored with the built-in feature set. "
        "The built-in spec, features/specs/builtin.yaml, is the one that says so.",
    )
    tables: TablesSpec
    policies: PoliciesSpec = Field(default_factory=PoliciesSpec)
    training: TrainingSpec | None = None

    # Set for a spec converted from version 1: key paths and table names as version 1 wrote them.
    _v1: DatasetSpec | None = PrivateAttr(default=None)

    @property
    def has_time(self) -> bool:
        """True when a ``created_at`` column gives every lead a time."""
        return self.tables.leads.columns.created_at is not None

    def default_data_dir(self) -> Path | None:
        """The data folder when none is passed: ``data_dir`` (relative to the spec) or the spec's folder."""
        if self.data_dir is None:
            return self.base_dir
        path = Path(self.data_dir).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def feature_names(self) -> dict[str, str]:
        """Safe feature name to original column, categorical first, then numeric."""
        c = self.tables.leads.columns
        return {_entry_name(e): e.column for e in (*c.categorical, *c.numeric)}

    def leaky_names(self) -> dict[str, str]:
        """Safe name to original column for the declared leaky columns."""
        return {_entry_name(e): e.column for e in self.tables.leads.columns.leaky}

    def to_v2(self) -> DatasetSpecV2:
        return self

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpecV2:
        problems = _v2_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self


def _v2_problems(spec: DatasetSpecV2) -> list[str]:
    t = spec.tables
    problems: list[str] = []
    for table in ("leads", "outcomes", "activities"):
        tab = getattr(t, table)
        if tab is not None:
            problems += tab.source.problems(f"spec.tables.{table}.source")

    # leads
    lp = "spec.tables.leads.columns"
    c = t.leads.columns
    paths = _lead_role_paths(c, lp)
    paths += [
        (f"spec.tables.leads.read.drop_columns[{i}]", col)
        for i, col in enumerate(t.leads.read.drop_columns)
    ]
    problems += _duplicate_role_problems(paths)
    if c.label is not None:
        problems += _label_problems(c.label, f"{lp}.label")
    if c.label is not None and c.converted_at is not None:
        problems.append(
            f"{lp}: both 'label' and 'converted_at' are set; keep one "
            "(the label is taken from exactly one column)"
        )
    problems += _feature_problems(c, lp)
    problems += _trusted_problems(c, lp)
    problems += _name_problems(c, lp, LEAD_RESERVED_NAMES)
    if isinstance(c.id, GeneratedId):
        for other in ("outcomes", "activities"):
            if getattr(t, other) is not None:
                problems.append(
                    f"{lp}.id: generated ids cannot be joined to spec.tables.{other}; "
                    "give the leads table an id column"
                )

    # outcomes: in the leads table or in a table of their own, not both
    if t.outcomes is not None:
        oc = t.outcomes.columns
        op = "spec.tables.outcomes.columns"
        in_leads = [
            r for r in ("label", "converted_at", "disqualified_at") if getattr(c, r) is not None
        ]
        if in_leads:
            problems.append(
                f"{lp}: {', '.join(in_leads)} set here and an outcomes table is given; "
                "take the outcome from one place (spec.tables.outcomes or the leads columns)"
            )
        if oc.label is None and oc.converted_at is None:
            problems.append(
                f"{op}: no outcome; set 'label' or 'converted_at' (a timestamp, the first "
                "per lead counts)"
            )
        if oc.label is not None and oc.converted_at is not None:
            problems.append(f"{op}: both 'label' and 'converted_at' are set; keep one")
        if oc.label is not None:
            problems += _label_problems(oc.label, f"{op}.label")
        opaths = [(f"{op}.lead_id", oc.lead_id)]
        if oc.label is not None:
            opaths.append((f"{op}.label.column", oc.label.column))
        for r in ("converted_at", "disqualified_at"):
            if getattr(oc, r) is not None:
                opaths.append((f"{op}.{r}", getattr(oc, r)))
        opaths += [(f"{op}.ignore[{i}]", e.column) for i, e in enumerate(oc.ignore)]
        opaths += [
            (f"spec.tables.outcomes.read.drop_columns[{i}]", col)
            for i, col in enumerate(t.outcomes.read.drop_columns)
        ]
        problems += _duplicate_role_problems(opaths)
    elif c.label is None and c.converted_at is None:
        problems.append(
            f"{lp}: no outcome; set 'label' (a 0/1 or yes/no column) or 'converted_at' "
            "(a timestamp column, converted when not empty), or give spec.tables.outcomes"
        )

    # activities
    if t.activities is not None:
        a = t.activities
        ap = "spec.tables.activities.columns"
        apaths = [
            (f"{ap}.lead_id", a.columns.lead_id),
            (f"{ap}.occurred_at", a.columns.occurred_at),
            (f"{ap}.type", a.columns.type),
        ]
        apaths += [(f"{ap}.values.{name}", col) for name, col in a.columns.values.items()]
        apaths += [(f"{ap}.ignore[{i}]", e.column) for i, e in enumerate(a.columns.ignore)]
        apaths += [
            (f"spec.tables.activities.read.drop_columns[{i}]", col)
            for i, col in enumerate(a.read.drop_columns)
        ]
        problems += _duplicate_role_problems(apaths)
        for name in a.columns.values:
            if not _SAFE_NAME_RE.match(name) or name in ACTIVITY_RESERVED_NAMES:
                problems.append(
                    f"{ap}.values: {name!r} is not a usable value name; expected snake_case "
                    f"(letters, digits, _) other than {', '.join(ACTIVITY_RESERVED_NAMES)}"
                )
        owner: dict[str, str] = {}
        kp = "spec.tables.activities.kinds"
        for kind, k in a.kinds.items():
            if not _SAFE_NAME_RE.match(kind):
                problems.append(
                    f"{kp}: kind name {kind!r} is not snake_case (letters, digits, _); "
                    "kind names become feature names"
                )
            for i, raw in enumerate(k.types):
                value = raw.strip()
                if value in owner:
                    problems.append(
                        f"{kp}.{kind}.types[{i}]: {raw!r} is already mapped to kind "
                        f"{owner[value]!r}; a CRM type belongs to one kind"
                    )
                else:
                    owner[value] = kind

    # training
    if spec.training is not None:
        problems += spec.training.problems("spec.training")
        snaps = spec.training.snapshots
        if snaps is not None:
            times = {e.column: _entry_name(e) for e in c.time}
            if snaps.anchor not in times and snaps.anchor not in times.values():
                listed = ", ".join(repr(x) for x in times) or "none"
                problems.append(
                    f"spec.training.snapshots.anchor: {snaps.anchor!r} is not a 'time' column "
                    f"of the leads table{_suggest(snaps.anchor, list(times))} "
                    f"(time columns: {listed})"
                )
        if c.created_at is None:
            problems.append(
                "spec.training: training snapshots need time; set "
                "spec.tables.leads.columns.created_at"
            )
    return problems


# --------------------------------------------------------------------------- version 1 spec


class ColumnsSpec(_Strict):
    """Version 1: every role a column can have. A column has exactly one."""

    key_noun: ClassVar[str] = "role"

    id: str = Field(min_length=1, description="Unique lead id; must not be personal data.")
    label: LabelSpec | None = None
    converted_at: str | None = Field(default=None, min_length=1)
    created_at: str | None = Field(default=None, min_length=1)
    categorical: list[ColumnEntry] = Field(default_factory=list)
    numeric: list[ColumnEntry] = Field(default_factory=list)
    ignore: list[ColumnEntry] = Field(default_factory=list)
    leaky: list[LeakyEntry] = Field(default_factory=list)
    pii: list[ColumnEntry] = Field(default_factory=list)


class DatasetSpec(_FromFile):
    """A validated dataset spec (format version 1: one flat table).

    Build it with :func:`~features.spec.load_spec` (from a file) or
    :func:`~features.spec.parse_spec` (from a mapping); both turn every problem into
    one :class:`~features.errors.SpecError`. :meth:`to_v2` gives the same spec in the
    version 2 model, which the loader reads.
    """

    version: Literal[1]
    name: str | None = None
    description: str | None = None
    source: str | None = Field(
        default=None, description="Data file, relative to the spec file or absolute."
    )
    read: ReadOptions = Field(default_factory=ReadOptions)
    default_role: Literal["ignore"] | None = None
    columns: ColumnsSpec


    @model_validator(mode="after")
    def _roles_are_consistent(self) -> DatasetSpec:
        problems = _v1_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # -- views the loader and the CLI share -------------------------------------------

    def role_paths(self) -> list[tuple[str, str]]:
        """``(key path, column)`` for every column the spec names, in spec order."""
        out = _lead_role_paths(self.columns, "spec.columns")
        for i, column in enumerate(self.read.drop_columns):
            out.append((f"spec.read.drop_columns[{i}]", column))
        return out

    @property
    def has_time(self) -> bool:
        """True when a ``created_at`` column gives every lead a time."""
        return self.columns.created_at is not None

    def feature_names(self) -> dict[str, str]:
        """Safe feature name to original column, categorical first, then numeric."""
        return {
            _entry_name(e): e.column for e in (*self.columns.categorical, *self.columns.numeric)
        }

    def leaky_names(self) -> dict[str, str]:
        """Safe name to original column for the declared leaky columns."""
        return {_entry_name(e): e.column for e in self.columns.leaky}

    def with_role(
        self, column: str, role: Literal["categorical", "numeric", "ignore", "leaky", "pii"]
    ) -> DatasetSpec:
        """A copy of this spec with ``column`` moved to ``role`` (for overrides and tests).

        For example ``spec.with_role("Tags", "categorical")`` un-marks a leaky column so
        that the leakage audit must find it on its own.
        """
        from features.spec.parse import parse_spec

        data = self.model_dump(mode="python")
        cols = data["columns"]
        list_roles = ("categorical", "numeric", "ignore", "leaky", "pii")
        if role not in list_roles:
            raise SpecError(f"role {role!r} is not one of {', '.join(list_roles)}")
        found = False
        for r in list_roles:
            kept = [e for e in cols[r] if e["column"] != column]
            found |= len(kept) != len(cols[r])
            cols[r] = kept
        if not found:
            raise SpecError(
                f"{self.origin}: {column!r} is not in any feature, ignore, leaky or pii list"
                f"{_suggest(column, [c for _, c in self.role_paths()])}"
            )
        cols[role].append({"column": column})
        spec = parse_spec(data, base_dir=self.base_dir, origin=self.origin)
        assert isinstance(spec, DatasetSpec)
        return spec

    def resolve_source(self, data_path: str | Path | None = None) -> Path:
        """The data file: ``data_path`` if given, else ``source`` relative to the spec file."""
        if data_path is not None:
            return Path(data_path).expanduser().resolve()
        if self.source is None:
            raise SpecError(
                f"{self.origin}: spec.source: no data file; set 'source' in the spec "
                "or pass the file explicitly (--data)"
            )
        path = Path(self.source).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path.resolve()

    def to_v2(self, data_path: str | Path | None = None) -> DatasetSpecV2:
        """This spec in the version 2 model: one leads table from the (resolved) file.

        The result remembers that it came from version 1, so that messages keep version
        1's key paths (``spec.columns.numeric[0]``) and name the table by its file.
        """
        path = self.resolve_source(data_path)
        r = self.read
        source: dict[str, Any] = {"file": str(path), "format": r.format, "csv": r.csv.model_dump()}
        columns = self.columns.model_dump(mode="python", exclude_none=True)
        v2 = DatasetSpecV2.model_validate(
            {
                "version": 2,
                "name": self.name,
                "description": self.description,
                "tables": {
                    "leads": {
                        "source": source,
                        "read": {
                            "na_values": r.na_values,
                            "keep_default_na": r.keep_default_na,
                            "drop_columns": r.drop_columns,
                            "assume_utc": r.assume_utc,
                        },
                        "columns": columns,
                        "default_role": self.default_role,
                    }
                },
            }
        )
        v2._base_dir = self.base_dir
        v2._origin = self.origin
        v2._v1 = self
        return v2


def _v1_problems(spec: DatasetSpec) -> list[str]:
    """Cross-key checks that need the whole spec; each problem starts with its key path."""
    problems = _duplicate_role_problems(spec.role_paths())
    c = spec.columns
    if c.label is None and c.converted_at is None:
        problems.append(
            "spec.columns: no outcome; set 'label' (a 0/1 or yes/no column) "
            "or 'converted_at' (a timestamp column, converted when not empty)"
        )
    if c.label is not None and c.converted_at is not None:
        problems.append(
            "spec.columns: both 'label' and 'converted_at' are set; keep one "
            "(the label is taken from exactly one column)"
        )
    if c.label is not None:
        problems += _label_problems(c.label, "spec.columns.label")
    problems += _feature_problems(c, "spec.columns")
    problems += _trusted_problems(c, "spec.columns")
    problems += _name_problems(c, "spec.columns", RESERVED_NAMES)
    return problems


AnySpec = DatasetSpec | DatasetSpecV2
"""A spec of either format version."""
