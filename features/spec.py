"""Bring your own export: a YAML dataset spec maps an arbitrary CRM table to roles.

A user's export seldom looks like our data contract. Rather than asking them to
reshape it, a small YAML file says what each column *is*: the lead id, the outcome
(a ``label`` column or a ``converted_at`` timestamp), an optional ``created_at``,
``categorical`` and ``numeric`` features, and columns to ``ignore``, to keep out
because they leak the outcome (``leaky``) or because they identify a person
(``pii``). ``features/specs/README.md`` is the user's guide; the X Education example
ships as ``features/specs/x-education.yaml``.

Two boundaries, one error vocabulary:

- :func:`load_spec` checks the spec on its own (syntax, keys, roles, one role per
  column, an outcome, at least one feature) and raises
  :class:`~features.errors.SpecError` with the key path of every problem, e.g.
  ``spec.columns.numeric[2]: 'TotalVisit' is not a column of Leads.csv; did you mean
  'TotalVisits'?``.
- :func:`load_dataset` checks the spec against the table's header (every column has
  exactly one role, or ``default_role: ignore`` covers it: nothing is dropped without
  the user saying so), then the values, raising
  :class:`~features.errors.DataValidationError` for bad ids, labels, numbers and
  timestamps. It returns a :class:`SpecDataset` whose frame the training code trusts.

Feature columns are renamed to safe snake_case names (LightGBM refuses JSON special
characters in feature names); :attr:`SpecDataset.original_names` maps them back and
:attr:`SpecDataset.labels` gives the display label used in explanations.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from features.errors import DataValidationError, SpecError, ValidationIssue
from features.schema import to_utc

__all__ = [
    "SPEC_VERSION",
    "RESERVED_NAMES",
    "DatasetSpec",
    "ColumnsSpec",
    "ColumnEntry",
    "LeakyEntry",
    "LabelSpec",
    "ReadOptions",
    "CsvOptions",
    "SpecDataset",
    "load_spec",
    "parse_spec",
    "load_dataset",
    "check_columns",
    "safe_name",
    "example_spec_path",
]

SPEC_VERSION = 1
"""The only spec format version this code reads."""

RESERVED_NAMES: tuple[str, ...] = ("lead_id", "created_at", "label")
"""Columns of :attr:`SpecDataset.frame` that no feature may be renamed to."""

_DEFAULT_POSITIVE: tuple[str, ...] = ("1", "yes", "y", "true")
_DEFAULT_NEGATIVE: tuple[str, ...] = ("0", "no", "n", "false")
_SAFE_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_CSV_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".csv.zip", ".csv.bz2", ".csv.xz")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_MAX_ISSUES_PER_COLUMN = 100


# --------------------------------------------------------------------------- the spec


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """A "; did you mean 'x'?" suffix when a close candidate exists, else ""."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


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
    """A feature (or ignored/PII) column: a bare name, or a mapping with display text.

    ``label`` is what explanations call the feature ("Current occupation" rather
    than "What is your current occupation"); ``name`` overrides the safe name that
    is derived from the column.
    """

    column: str = Field(min_length=1)
    label: str | None = Field(default=None, min_length=1)
    description: str | None = None
    name: str | None = Field(default=None, pattern=_SAFE_NAME_RE.pattern)

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


class ColumnsSpec(_Strict):
    """Every role a column can have. A column has exactly one."""

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


class CsvOptions(_Strict):
    """The few ``pandas.read_csv`` options exports need."""

    delimiter: str = Field(default=",", min_length=1)
    encoding: str = "utf-8"
    decimal: str = Field(default=".", min_length=1, max_length=1)
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    quotechar: str = Field(default='"', min_length=1, max_length=1)
    skiprows: int = Field(default=0, ge=0)


class ReadOptions(_Strict):
    """How to read the table before roles apply."""

    format: Literal["csv", "parquet"] | None = None
    na_values: list[str] = Field(default_factory=list)
    keep_default_na: bool = True
    drop_columns: list[str] = Field(default_factory=list)
    assume_utc: bool = False
    csv: CsvOptions = Field(default_factory=CsvOptions)


class DatasetSpec(_Strict):
    """A validated dataset spec (format version 1).

    Build it with :func:`load_spec` (from a file) or :func:`parse_spec` (from a
    mapping); both turn every problem into one :class:`~features.errors.SpecError`.
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

    # Where the spec came from: not part of the format, set by parse_spec.
    _base_dir: Path | None = PrivateAttr(default=None)
    _origin: str = PrivateAttr(default="spec")

    @property
    def base_dir(self) -> Path | None:
        """Directory a relative ``source`` is resolved against (the spec file's)."""
        return self._base_dir

    @property
    def origin(self) -> str:
        """How messages name this spec, usually its file name."""
        return self._origin

    @model_validator(mode="after")
    def _roles_are_consistent(self) -> DatasetSpec:
        problems = _role_problems(self)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # -- views the loader and the CLI share -------------------------------------------

    def role_paths(self) -> list[tuple[str, str]]:
        """``(key path, column)`` for every column the spec names, in spec order."""
        c = self.columns
        out: list[tuple[str, str]] = [("spec.columns.id", c.id)]
        if c.label is not None:
            out.append(("spec.columns.label.column", c.label.column))
        if c.converted_at is not None:
            out.append(("spec.columns.converted_at", c.converted_at))
        if c.created_at is not None:
            out.append(("spec.columns.created_at", c.created_at))
        for role in ("categorical", "numeric", "ignore", "leaky", "pii"):
            for i, entry in enumerate(getattr(c, role)):
                out.append((f"spec.columns.{role}[{i}]", entry.column))
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
        return parse_spec(data, base_dir=self.base_dir, origin=self.origin)

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


def safe_name(column: str) -> str:
    """A LightGBM-safe snake_case name: ``"Total Time Spent on Website"`` → ``total_time_spent_on_website``."""
    ascii_text = unicodedata.normalize("NFKD", column).encode("ascii", "ignore").decode()
    name = re.sub(r"[^0-9a-zA-Z]+", "_", ascii_text).strip("_").lower()
    if not name:
        name = "column"
    if name[0].isdigit():
        name = f"f_{name}"
    return name


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


def _role_problems(spec: DatasetSpec) -> list[str]:
    """Cross-key checks that need the whole spec; each problem starts with its key path."""
    problems: list[str] = []
    c = spec.columns
    seen: dict[str, str] = {}
    for path, column in spec.role_paths():
        if column in seen:
            problems.append(
                f"{path}: {column!r} already has a role at {seen[column]}; "
                "a column has exactly one role"
            )
        else:
            seen[column] = path
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
        if not c.label.positive:
            problems.append(
                "spec.columns.label.positive: is empty; list the values that mean converted"
            )
        if not c.label.negative:
            problems.append(
                "spec.columns.label.negative: is empty; list the values that mean not converted"
            )
        both = sorted(c.label.positive_tokens & c.label.negative_tokens)
        if both:
            problems.append(
                f"spec.columns.label: {both} are both positive and negative; "
                "a value means converted or not, not both"
            )
    if not c.categorical and not c.numeric:
        problems.append(
            "spec.columns: no feature columns; list at least one column under "
            "'categorical' or 'numeric'"
        )
    names: dict[str, str] = {}
    for role in ("categorical", "numeric", "leaky"):
        for i, entry in enumerate(getattr(c, role)):
            path = f"spec.columns.{role}[{i}]"
            name = _entry_name(entry)
            if name in RESERVED_NAMES:
                problems.append(
                    f"{path}: {entry.column!r} would be named {name!r}, which is reserved "
                    f"({', '.join(RESERVED_NAMES)}); give it another 'name'"
                )
            elif name in names:
                problems.append(
                    f"{path}: {entry.column!r} would be named {name!r}, like {names[name]}; "
                    "give one of them a distinct 'name'"
                )
            else:
                names[name] = path
    return problems


# --------------------------------------------------------------------------- reading the spec


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    detail = f"{context}, {problem}" if context and "duplicate" not in problem else problem
    return f"{where}YAML syntax error: {detail}"


def _format_loc(loc: Sequence[str | int]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _pydantic_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors(include_url=False):
        msg = err["msg"].removeprefix("Value error, ")
        loc = err["loc"]
        if not loc and msg.startswith("spec"):
            problems.extend(msg.splitlines())  # root checks already name their key paths
            continue
        got = err.get("input")
        hint = ""
        if err["type"] in (
            "string_type",
            "literal_error",
            "int_type",
            "bool_type",
            "list_type",
            "model_type",
            "dict_type",
            "string_pattern_mismatch",
        ):
            hint = f"; got {got!r}"
            if isinstance(got, bool | int | float) and err["type"] in ("string_type", "model_type"):
                hint += " (YAML read a bare yes/no/number; quote the column name)"
            elif isinstance(got, dict) and err["type"] == "string_type":
                hint += " (a name containing ': ' must be quoted)"
        if err["type"] == "missing":
            msg = "is required"
        if loc and loc[-1] == "version" and err["type"] == "literal_error":
            msg = f"unsupported spec version {got!r}; this leadscore reads version {SPEC_VERSION}"
            hint = ""
        problems.append(f"{_format_loc(loc)}: {msg}{hint}")
    return problems


def _spec_error(origin: str, problems: list[str]) -> SpecError:
    if len(problems) == 1:
        return SpecError(f"invalid dataset spec {origin}: {problems[0]}")
    lines = "\n".join(f"  {p}" for p in problems)
    return SpecError(f"invalid dataset spec {origin} ({len(problems)} problems):\n{lines}")


def parse_spec(
    data: Any, *, base_dir: str | Path | None = None, origin: str = "spec"
) -> DatasetSpec:
    """Validate a spec given as a mapping (already parsed YAML).

    Parameters
    ----------
    data
        The parsed YAML document.
    base_dir
        Directory that a relative ``source`` is resolved against.
    origin
        How error messages name the spec (usually the file name).

    Raises
    ------
    SpecError
        Listing every problem with its key path.
    """
    if not isinstance(data, dict):
        kind = "empty" if data is None else f"a {type(data).__name__}"
        raise _spec_error(
            origin,
            [f"spec: the document is {kind}; expected a mapping with 'version' and 'columns'"],
        )
    try:
        spec = DatasetSpec.model_validate(data)
    except ValidationError as exc:
        raise _spec_error(origin, _pydantic_problems(exc)) from None
    spec._base_dir = Path(base_dir) if base_dir is not None else None
    spec._origin = origin
    return spec


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a YAML dataset spec.

    Parameters
    ----------
    path
        The spec file. A relative ``source`` inside it is resolved against the
        file's directory.

    Returns
    -------
    DatasetSpec
        The validated spec. Columns are not checked against the data here; that
        happens in :func:`load_dataset` (or :func:`check_columns`).

    Raises
    ------
    SpecError
        When the file is missing, is not valid YAML (with line and column), or breaks
        the spec format (with the key path of every problem).
    """
    path = Path(path).expanduser()
    origin = path.name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"dataset spec {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"dataset spec {str(path)!r} cannot be read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise _spec_error(origin, [_yaml_problem(exc)]) from None
    return parse_spec(data, base_dir=path.resolve().parent, origin=origin)


def example_spec_path(name: str = "x-education") -> Path:
    """The path of a spec shipped with leadscore, e.g. ``example_spec_path("x-education")``."""
    specs = resources.files("features") / "specs"
    candidate = specs / f"{name}.yaml"
    if not candidate.is_file():
        shipped = sorted(
            p.name.removesuffix(".yaml") for p in specs.iterdir() if p.name.endswith(".yaml")
        )
        raise SpecError(f"no shipped spec {name!r}{_suggest(name, shipped)} (shipped: {shipped})")
    return Path(str(candidate))


# --------------------------------------------------------------------------- the dataset


@dataclass
class SpecDataset:
    """A table loaded through a spec: the frame training trusts, and what it came from.

    ``frame`` has ``lead_id`` (``string``), ``created_at`` (UTC, only when
    ``has_time``), ``label`` (``int64`` 0/1), then the features under their safe
    names: categorical as ``string``, numeric as ``float64``. Declared leaky columns
    are in ``leaky_frame`` (same rows and order, with ``lead_id``), never in
    ``frame``. PII and ignored columns are not loaded at all.
    """

    spec: DatasetSpec
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
    source: Path
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
        c = self.spec.columns
        return {
            "source": str(self.source),
            "fingerprint": self.fingerprint,
            "rows": len(self.frame),
            "positives": int(self.frame["label"].sum()),
            "label_rate": self.label_rate,
            "has_time": self.has_time,
            "id": c.id,
            "outcome": c.label.column if c.label is not None else c.converted_at,
            "created_at": c.created_at,
            "categorical": [self.original_names[n] for n in self.categorical],
            "numeric": [self.original_names[n] for n in self.numeric],
            "leaky": [self.original_names[n] for n in self.leaky],
            "pii": [e.column for e in c.pii],
            "ignored": list(self.ignored),
            "defaulted_to_ignore": list(self.defaulted),
            "dropped": list(self.spec.read.drop_columns),
        }


def _detect_format(spec: DatasetSpec, path: Path) -> Literal["csv", "parquet"]:
    if spec.read.format is not None:
        return spec.read.format
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise SpecError(
        f"{spec.origin}: spec.read.format: cannot tell the format of {path.name!r} from its "
        "name; set read.format to 'csv' or 'parquet'"
    )


def _read_header(spec: DatasetSpec, path: Path, fmt: str) -> list[str]:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return [str(c) for c in pq.read_schema(path).names]
    return [str(c) for c in _read_csv(spec, path, nrows=0).columns]


def _read_csv(spec: DatasetSpec, path: Path, **kwargs: Any) -> pd.DataFrame:
    o = spec.read
    try:
        return pd.read_csv(
            path,
            sep=o.csv.delimiter,
            encoding=o.csv.encoding,
            quotechar=o.csv.quotechar,
            skiprows=o.csv.skiprows,
            na_values=o.na_values,
            keep_default_na=o.keep_default_na,
            **kwargs,
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise SpecError(
            f"{spec.origin}: {path.name} cannot be read as CSV with the spec's read options "
            f"(spec.read.csv): {exc}"
        ) from None


def check_columns(spec: DatasetSpec, columns: Sequence[str], *, table: str) -> list[str]:
    """Check the spec against a table's header; return the columns ``default_role`` ignores.

    Raises
    ------
    SpecError
        Naming every column the spec mentions that the table lacks (with a
        suggestion) and every column of the table that has no role.
    """
    present = list(columns)
    present_set = set(present)
    problems = []
    for path, column in spec.role_paths():
        if column not in present_set:
            problems.append(
                f"{path}: {column!r} is not a column of {table}{_suggest(column, present)}"
            )
    named = {column for _, column in spec.role_paths()}
    unassigned = [c for c in present if c not in named]
    if unassigned and spec.default_role != "ignore":
        listed = ", ".join(repr(c) for c in unassigned)
        problems.append(
            f"spec.columns: {len(unassigned)} column(s) of {table} have no role: {listed}; "
            "give each a role (list unwanted ones under 'ignore'), or set "
            "'default_role: ignore' to ignore every unlisted column"
        )
    if problems:
        raise _spec_error(spec.origin, problems)
    return unassigned


def _fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _bad_rows(
    mask: np.ndarray,
    values: pd.Series,
    ids: pd.Series,
    *,
    table: str,
    column: str,
    expected: str,
) -> list[ValidationIssue]:
    rows = np.flatnonzero(mask)[:_MAX_ISSUES_PER_COLUMN]
    return [
        ValidationIssue(
            table=table,
            field=column,
            value=_plain(values.iloc[r]),
            expected=expected,
            row=int(r),
            lead_id=None if pd.isna(ids.iloc[r]) else str(ids.iloc[r]),
        )
        for r in rows
    ]


def _plain(value: object) -> object:
    if value is pd.NA or value is None:
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_numbers(
    raw: pd.Series,
    spec: DatasetSpec,
    *,
    table: str,
    column: str,
    ids: pd.Series,
    issues: list[ValidationIssue],
    record: bool = True,
) -> pd.Series:
    """A column as float64; values present but not numbers are recorded in ``issues``."""
    if pd.api.types.is_bool_dtype(raw.dtype):
        return raw.astype("float64")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        return raw.astype("float64")
    text = raw.astype("string").str.strip()
    if spec.read.csv.thousands:
        text = text.str.replace(spec.read.csv.thousands, "", regex=False)
    if spec.read.csv.decimal != ".":
        text = text.str.replace(spec.read.csv.decimal, ".", regex=False)
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
    ids: pd.Series,
    issues: list[ValidationIssue],
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
        f"{sorted(map(str, label.negative))} (spec.columns.label)"
    )
    issues.extend(
        _bad_rows(~known & ~missing, raw, ids, table=table, column=label.column, expected=expected)
    )
    return tokens.isin(pos).astype("int64")


def load_dataset(spec: DatasetSpec, data_path: str | Path | None = None) -> SpecDataset:
    """Load a table through a spec into the frame that training uses.

    Parameters
    ----------
    spec
        A spec from :func:`load_spec`.
    data_path
        The table to read (CSV or parquet). Overrides ``spec.source``.

    Returns
    -------
    SpecDataset
        The frame (``lead_id``, ``created_at`` when there is time, ``label``, then
        features under safe names), the leaky columns apart, display labels, the
        safe-to-original name map and a sha256 fingerprint of the source bytes.

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
    path = spec.resolve_source(data_path)
    if not path.is_file():
        raise SpecError(
            f"{spec.origin}: data file {str(path)!r} does not exist"
            + ("" if data_path is not None else " (spec.source); pass another file with --data")
        )
    table = path.name
    fmt = _detect_format(spec, path)
    header = _read_header(spec, path, fmt)
    defaulted = check_columns(spec, header, table=table)

    c = spec.columns
    # Only the columns with a use are read: PII and ignored columns never enter memory.
    wanted = [c.id]
    if c.label is not None:
        wanted.append(c.label.column)
    for col in (c.converted_at, c.created_at):
        if col is not None:
            wanted.append(col)
    wanted += [e.column for e in (*c.categorical, *c.numeric, *c.leaky)]
    numeric_cols = {e.column for e in c.numeric} | {
        e.column for e in c.leaky if e.kind == "numeric"
    }
    if fmt == "parquet":
        raw = pd.read_parquet(path, columns=wanted)
        if spec.read.na_values:
            # read_csv applies na_values while parsing; do the same for text columns here
            # so that one spec means the same thing for both formats.
            for col in raw.columns:
                if not pd.api.types.is_numeric_dtype(raw[col].dtype):
                    raw[col] = raw[col].mask(raw[col].isin(spec.read.na_values))
    else:
        # Text everywhere except numeric columns, which pandas parses with the
        # decimal/thousands options; a stray word leaves such a column as text and
        # _to_numbers then names the bad value.
        raw = _read_csv(
            spec,
            path,
            usecols=wanted,
            dtype={col: "string" for col in wanted if col not in numeric_cols},
            decimal=spec.read.csv.decimal,
            thousands=spec.read.csv.thousands,
        )
    raw = raw.reset_index(drop=True)

    issues: list[ValidationIssue] = []
    out = pd.DataFrame(index=raw.index)
    ids = raw[c.id].astype("string").str.strip()
    empty = (ids.isna() | (ids == "")).fillna(True).to_numpy(bool)
    issues.extend(
        _bad_rows(
            empty,
            raw[c.id],
            ids,
            table=table,
            column=c.id,
            expected="is empty; every lead needs an id (spec.columns.id)",
        )
    )
    dup = ids.duplicated(keep="first").to_numpy() & ~empty
    if dup.any():
        first_row = ids[~empty].drop_duplicates(keep="first")
        first_at = dict(zip(first_row.tolist(), first_row.index.tolist(), strict=True))
        for r in np.flatnonzero(dup)[:_MAX_ISSUES_PER_COLUMN]:
            value = ids.iloc[r]
            issues.append(
                ValidationIssue(
                    table=table,
                    field=c.id,
                    value=value,
                    expected=f"is a duplicate of row {first_at[value]}; ids must be unique",
                    row=int(r),
                    lead_id=value,
                )
            )
    out["lead_id"] = ids

    if c.created_at is not None:
        out["created_at"] = to_utc(
            raw[c.created_at],
            table=table,
            column=c.created_at,
            lead_ids=ids,
            assume_utc=spec.read.assume_utc,
            issues=issues,
        )
        issues.extend(
            _bad_rows(
                raw[c.created_at].isna().to_numpy(),
                raw[c.created_at],
                ids,
                table=table,
                column=c.created_at,
                expected="is missing; with created_at every lead needs a time",
            )
        )

    converted_at = None
    if c.label is not None:
        out["label"] = _labels(raw[c.label.column], c.label, table=table, ids=ids, issues=issues)
    else:
        assert c.converted_at is not None  # the spec guarantees an outcome
        converted_at = to_utc(
            raw[c.converted_at],
            table=table,
            column=c.converted_at,
            lead_ids=ids,
            assume_utc=spec.read.assume_utc,
            issues=issues,
        )
        out["label"] = converted_at.notna().astype("int64")
        if c.created_at is not None:
            before = (converted_at < out["created_at"]).fillna(False).to_numpy(bool)
            issues.extend(
                _bad_rows(
                    before,
                    raw[c.converted_at],
                    ids,
                    table=table,
                    column=c.converted_at,
                    expected="is before created_at; a conversion cannot precede the lead",
                )
            )
        converted_at = converted_at.rename("converted_at")

    labels: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    original: dict[str, str] = {}
    for entry in c.categorical:
        name = _entry_name(entry)
        out[name] = raw[entry.column].astype("string")
        labels[name] = entry.label or entry.column
        if entry.description:
            descriptions[name] = entry.description
        original[name] = entry.column
    for entry in c.numeric:
        name = _entry_name(entry)
        out[name] = _to_numbers(
            raw[entry.column], spec, table=table, column=entry.column, ids=ids, issues=issues
        )
        labels[name] = entry.label or entry.column
        if entry.description:
            descriptions[name] = entry.description
        original[name] = entry.column

    leaky_frame = pd.DataFrame({"lead_id": ids})
    reasons: dict[str, str] = {}
    for entry in c.leaky:
        name = _entry_name(entry)
        original[name] = entry.column
        if entry.reason:
            reasons[name] = entry.reason
        column = raw[entry.column]
        if entry.kind == "categorical":
            leaky_frame[name] = column.astype("string")
            continue
        numbers = _to_numbers(
            column,
            spec,
            table=table,
            column=entry.column,
            ids=ids,
            issues=issues,
            record=entry.kind == "numeric",
        )
        parsed_all = numbers.notna().sum() == column.notna().sum()
        if entry.kind == "numeric" or parsed_all:
            leaky_frame[name] = numbers
        else:
            leaky_frame[name] = column.astype("string")

    if issues:
        raise DataValidationError(issues)

    ignored = [e.column for e in c.ignore] + defaulted
    return SpecDataset(
        spec=spec,
        frame=out,
        leaky_frame=leaky_frame,
        categorical=[_entry_name(e) for e in c.categorical],
        numeric=[_entry_name(e) for e in c.numeric],
        leaky=[_entry_name(e) for e in c.leaky],
        has_time=spec.has_time,
        labels=labels,
        descriptions=descriptions,
        original_names=original,
        leaky_reasons=reasons,
        fingerprint=_fingerprint(path),
        source=path,
        ignored=ignored,
        defaulted=defaulted,
        converted_at=converted_at,
    )
