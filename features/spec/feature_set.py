"""The feature set a dataset spec defines, from the spec alone (no data is read).

One derivation for training, serving and batch (``FeatureSet.from_spec`` in
DESIGN.md): a version-2 spec with time gets point-in-time snapshots, so its features
are its fit columns, the lead's age and, with an activity table, the engagement
features per kind; a flat table (no time) or a version-1 spec is one row per lead, so
its features are its fit columns alone. The built-in contract's spec has the built-in
feature set.
"""

from __future__ import annotations

from typing import Any

from features.registry import BUILTIN, FeatureSet, FitColumn, KindDefinition

__all__ = ["feature_set_of", "fit_columns", "kind_definitions"]


def fit_columns(spec: Any) -> list[FitColumn]:
    """The spec's fit columns, categorical then numeric, under their safe names."""
    from features.spec.model import DatasetSpecV2, _entry_name

    v2 = spec if isinstance(spec, DatasetSpecV2) else spec.to_v2()
    columns = v2.tables.leads.columns
    return [FitColumn(_entry_name(e), kind, e.label or e.column, e.description or "",
                      e.group or "fit")
            for kind, entries in (("categorical", columns.categorical),
                                  ("numeric", columns.numeric))
            for e in entries]


def kind_definitions(spec: Any) -> list[KindDefinition]:
    """The spec's activity kinds, in spec order (none without an activity table)."""
    tables = getattr(spec, "tables", None)
    activities = getattr(tables, "activities", None)
    if activities is None:
        return []
    return [KindDefinition(name, kind.label, float(kind.weight), bool(kind.key_action),
                           group=kind.group, actionable=bool(kind.actionable))
            for name, kind in activities.kinds.items()]


def feature_set_of(spec: Any) -> FeatureSet:
    """The feature set of a spec's model (see the module docstring)."""
    from features.spec.model import DatasetSpecV2

    if getattr(spec, "contract", None) == "builtin":
        return BUILTIN
    name = spec.name or "spec"
    if not (isinstance(spec, DatasetSpecV2) and spec.has_time):
        return FeatureSet.from_definition(name, fit_columns(spec), has_time=False,
                                          has_activities=False)
    kinds = kind_definitions(spec)
    return FeatureSet.from_definition(name, fit_columns(spec), kinds, has_time=True,
                                      has_activities=spec.tables.activities is not None)
