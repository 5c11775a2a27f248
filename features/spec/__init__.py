"""Bring your own export: a YAML dataset spec says what each table and column *is*.

A user's export seldom looks like our data contract. Rather than asking them to
reshape it, a small YAML file maps it to roles. Version 1 maps one flat table: the
lead id, the outcome (a ``label`` column or a ``converted_at`` timestamp), an optional
``created_at``, ``categorical`` and ``numeric`` features, and columns to ``ignore``, to
keep out because they leak the outcome (``leaky``) or because they identify a person
(``pii``). Version 2 adds tables: the leads, optionally the outcomes (deals) and the
activity log (with the CRM's own type values mapped to kinds), each from a file, a
DuckDB query or a database URL; row policies; and options for the training-set
builder. ``features/specs/README.md`` is the user's guide; ``x-education.yaml`` (a flat
table) and ``oulad.yaml`` (a click log) ship as examples.

The package is split by stage, each a module:

- :mod:`~features.spec.model`: the pydantic models of both versions and the checks a
  spec can fail on its own (keys, one role per column, an outcome, kinds);
- :mod:`~features.spec.parse`: YAML into a model (:func:`load_spec`, :func:`parse_spec`),
  every problem with its key path in one :class:`~features.errors.SpecError`;
- :mod:`~features.spec.sources`: reading raw columns from a file, DuckDB or a database;
- :mod:`~features.spec.values`: raw columns into typed ones (the header check, ids,
  times, labels, numbers), bad values as :class:`~features.errors.DataValidationError`;
- :mod:`~features.spec.outcomes` and :mod:`~features.spec.activities`: the outcomes
  table (first time per lead) and the activity log (policies, kinds);
- :mod:`~features.spec.load`: the leads table, the row policies and the whole load
  (:func:`load_tables` → :class:`SpecTables`; :func:`load_dataset` → version 1's
  :class:`SpecDataset`); :mod:`~features.spec.tables` holds those two results.

Feature columns are renamed to safe snake_case names (LightGBM refuses JSON special
characters in feature names); ``original_names`` maps them back and ``labels`` gives
the display label used in explanations.
"""

from features.spec.feature_set import feature_set_of
from features.spec.load import load_dataset, load_tables, resolve_data_dir
from features.spec.model import (
    ACTIVITY_RESERVED_NAMES,
    LEAD_RESERVED_NAMES,
    RESERVED_NAMES,
    SPEC_VERSION,
    SPEC_VERSIONS,
    ActivitiesTable,
    ActivityColumns,
    AnySpec,
    ColumnEntry,
    ColumnsSpec,
    CsvOptions,
    DatasetSpec,
    DatasetSpecV2,
    GeneratedId,
    KindSpec,
    LabelSpec,
    LeadColumns,
    LeadsTable,
    LeakyEntry,
    OutcomeColumns,
    OutcomesTable,
    PoliciesSpec,
    ReadOptions,
    SnapshotsSpec,
    SourceSpec,
    TableRead,
    TablesSpec,
    TrainingSpec,
    parse_duration,
    safe_name,
    trusted_feature_names,
)
from features.spec.parse import example_spec_path, load_spec, parse_spec
from features.spec.sources import mask_url
from features.spec.tables import (
    ActivityKind,
    Snapshots,
    SpecDataset,
    SpecTables,
    TrainingOptions,
)
from features.spec.values import check_columns

__all__ = [
    "feature_set_of",
    "trusted_feature_names",
    "SPEC_VERSION",
    "SPEC_VERSIONS",
    "RESERVED_NAMES",
    "LEAD_RESERVED_NAMES",
    "ACTIVITY_RESERVED_NAMES",
    "AnySpec",
    "DatasetSpec",
    "DatasetSpecV2",
    "ColumnsSpec",
    "ColumnEntry",
    "LeakyEntry",
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
    "ActivityKind",
    "Snapshots",
    "TrainingOptions",
    "SpecTables",
    "SpecDataset",
    "load_spec",
    "parse_spec",
    "load_tables",
    "load_dataset",
    "check_columns",
    "resolve_data_dir",
    "safe_name",
    "parse_duration",
    "mask_url",
    "example_spec_path",
]
