"""A user's CRM, through its dataset spec, to point-in-time training data.

:func:`features.spec.load_tables` reads the spec's tables (leads, outcomes, activities;
from files, DuckDB queries or databases) into the data contract's shape, with the
CRM's activity types mapped to the spec's kinds. This module derives the feature set
from the spec (:meth:`features.registry.FeatureSet.from_definition`) and builds the
training set with the built-in path's own builder: the same snapshot grid, horizon,
eligibility, censoring and purge gaps, and features that see only events before each
snapshot's ``as_of``.

A spec without time (a flat export such as X Education) has no snapshots: each lead is
one row, as :func:`training.pipeline.training_data_from_spec` has always read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.registry import BUILTIN, FeatureSet
from features.spec.feature_set import feature_set_of
from features.spec.model import trusted_feature_names

if TYPE_CHECKING:
    from training.pipeline import TrainingData

__all__ = [
    "feature_set_for",
    "history_training_data",
    "build_spec_training_set",
    "training_data_for_spec",
    "label_known_at",
    "spec_feature_set",
]


def feature_set_for(tables: Any) -> FeatureSet:
    """The feature set a spec's tables define (:func:`features.spec.feature_set_of`)."""
    return feature_set_of(tables.spec)


spec_feature_set = feature_set_of
"""The feature set of a spec's model, from the spec alone (one derivation, in features)."""


def empty_activities() -> pd.DataFrame:
    """An activity table with no rows, for a spec without one."""
    return pd.DataFrame({
        "lead_id": pd.Series(dtype="string"),
        "occurred_at": pd.Series(dtype="datetime64[ns, UTC]"),
        "type": pd.Series(dtype="string"),
    })


def build_spec_training_set(
    tables: Any,
    feature_set: FeatureSet | None = None,
    *,
    every: pd.Timedelta | None = None,
    horizon: pd.Timedelta | None = None,
    censored: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The point-in-time training set of a spec with time, and what was used to build it.

    ``every`` and ``horizon`` override the spec's ``training`` section (then the defaults,
    7 and 90 days); so does ``censored``. Returns the frame (``lead_id``, ``as_of``,
    ``label``, then the feature set's columns and any declared leaky columns, per lead)
    and the options actually used.
    """
    from features.build import build_training_set
    from features.grid import DEFAULT_EVERY, DEFAULT_HORIZON
    from features.spec import DatasetSpecV2

    if not isinstance(tables.spec, DatasetSpecV2):
        raise ValueError(
            f"{tables.spec.origin}: a version-1 spec is one row per lead; write it as "
            "version 2 (features/specs/README.md) for point-in-time snapshots"
        )
    if not tables.has_time:
        raise ValueError(
            f"{tables.spec.origin}: the spec has no created_at; a point-in-time training set "
            "needs a time for every lead (train on it directly: each lead is one row)"
        )
    feature_set = feature_set or feature_set_for(tables)
    opts = tables.training
    every = every or getattr(opts, "every", None) or DEFAULT_EVERY
    horizon = horizon or getattr(opts, "horizon", None) or DEFAULT_HORIZON
    censored = censored or getattr(opts, "censoring", None) or "drop"
    snapshots = getattr(opts, "snapshots", None)
    anchored = None
    if snapshots is not None:
        anchored = (snapshots.anchor, tuple(snapshots.offsets))
    activities = tables.activities if tables.activities is not None else empty_activities()
    frame = build_training_set(
        tables.leads, activities, every=every, horizon=horizon, censored=censored,
        feature_set=feature_set, snapshots=anchored,
    )
    leaky = [c for c in tables.leaky.columns if c != "lead_id"] if tables.leaky is not None else []
    if leaky:
        per_lead = tables.leaky.set_index("lead_id")[leaky]
        joined = per_lead.reindex(frame["lead_id"].to_numpy()).reset_index(drop=True)
        frame = pd.concat([frame, joined], axis=1)
    if censored == "resolved":
        frame["label_known_at"] = label_known_at(tables.leads, frame, horizon)
    used = {"every": _days(every), "horizon": _days(horizon), "horizon_value": horizon,
            "censored": censored,
            "snapshots": (f"{anchored[0]} + {', '.join(_days(o) for o in anchored[1])}"
                          if anchored else f"every {_days(every)}")}
    return frame, used


def label_known_at(leads: pd.DataFrame, rows: pd.DataFrame, horizon: pd.Timedelta) -> pd.Series:
    """When each (lead_id, as_of) row's label became known: ``as_of + horizon``, or earlier
    when the outcome settled it: the conversion, for a lead that converted within the
    horizon; the disqualification, for one that was disqualified within it and never
    converted afterwards (a lead won back after a disqualification is known only at its
    conversion, or at the horizon's end)."""
    as_of = pd.to_datetime(rows["as_of"], utc=True)
    known = as_of + horizon
    by_id = leads.set_index("lead_id")

    def column(name: str) -> pd.Series:
        if name not in by_id.columns:
            return pd.Series(pd.NaT, index=known.index, dtype="datetime64[ns, UTC]")
        values = by_id[name].reindex(rows["lead_id"].to_numpy()).to_numpy()
        return pd.Series(pd.to_datetime(values, utc=True), index=known.index)

    converted, disqualified = column("converted_at"), column("disqualified_at")
    won = converted.notna() & (converted >= as_of) & (converted <= known)
    final_loss = (disqualified.notna() & (disqualified >= as_of) & (disqualified < known)
                  & ~(converted.notna() & (converted > disqualified)))
    known = known.where(~final_loss, disqualified)
    known = known.where(~won, converted)
    return known.rename("label_known_at")


def _days(value: pd.Timedelta) -> str:
    """'90d' for whole days, else pandas' own text ('0 days 12:00:00')."""
    value = pd.Timedelta(value)
    return f"{value.days}d" if value == pd.Timedelta(days=value.days) else str(value)


@dataclass(frozen=True)
class SpecRulesBaseline:
    """A spec's starter rules as the cold-start baseline (see ``TrainingData.rules_baseline``).

    :meth:`fit` learns the points from the training rows' snapshots only
    (:func:`rules_fallback.init.generate_rules`, as ``leadscore rules init`` does on the
    whole history), so the comparison on the test window never sees its labels.
    """

    tables: Any

    @property
    def activities(self) -> pd.DataFrame:
        return self.tables.activities

    def fit(self, train_rows: pd.DataFrame) -> _FittedSpecRules:
        from rules_fallback.init import generate_rules
        from rules_fallback.spec_rules import SpecVocabulary

        examples = train_rows[["lead_id", "as_of", "label"]]
        generated = generate_rules(
            SpecVocabulary.from_spec(self.tables.spec), self.tables.leads, self.activities,
            examples, examples_note=" (the training window's point-in-time snapshots)")
        return _FittedSpecRules(self.tables, generated.rules, generated.text)


@dataclass(frozen=True)
class _FittedSpecRules:
    tables: Any
    rules: Any
    document: str
    description: str = "the spec's starter rules, fitted on the training window"

    def probability(self, rows: pd.DataFrame) -> np.ndarray:
        from rules_fallback import score_spec_leads

        leads = self.tables.leads.set_index("lead_id").loc[rows["lead_id"].to_numpy()].reset_index()
        scored = score_spec_leads(self.rules, leads, self.tables.activities,
                                  pd.Series(pd.to_datetime(rows["as_of"], utc=True).to_numpy()),
                                  reasons=False)
        return scored["probability"].to_numpy(dtype=float)


def history_training_data(
    tables: Any,
    spec_path: str | Path,
    *,
    every: pd.Timedelta | None = None,
    horizon: pd.Timedelta | None = None,
) -> TrainingData:
    """:class:`~training.pipeline.TrainingData` for a spec with time, snapshot by snapshot."""
    from training.pipeline import FeatureSchema, TrainingData

    feature_set = feature_set_for(tables)
    frame, used = build_spec_training_set(tables, feature_set, every=every, horizon=horizon)
    purge_gap = used.pop("horizon_value")
    leaky = [c for c in tables.leaky.columns if c != "lead_id"] if tables.leaky is not None else []
    leaky_categorical = [c for c in leaky if not pd.api.types.is_numeric_dtype(frame[c].dtype)]
    schema = FeatureSchema(
        names=(*feature_set.feature_names(), *leaky),
        categorical=(*feature_set.categorical_features(), *leaky_categorical),
        version=feature_set.version,
        field_labels=feature_set.field_labels(),
        declared_leaky=tuple(leaky),
        trusted=trusted_feature_names(tables.spec),
        feature_set=feature_set.to_json(),
        **({} if feature_set is BUILTIN else {"segments": tuple(tables.categorical[:2])}),
    )
    n_activities = 0 if tables.activities is None else len(tables.activities)
    return TrainingData(
        frame=frame, schema=schema, time_column="as_of", purge_gap=purge_gap,
        known_at_column="label_known_at" if "label_known_at" in frame.columns else None,
        rules_baseline=None if tables.activities is None else SpecRulesBaseline(tables),
        info={
            "kind": "spec", "source": "; ".join(f"{k}: {v}" for k, v in tables.sources.items()),
            "spec": str(Path(spec_path).resolve()), "spec_name": tables.spec.name,
            "fingerprint": tables.fingerprint, "original_names": dict(tables.original_names),
            "n_leads": len(tables.leads), "n_activities": n_activities, **used,
            "policies": dict(tables.policy_counts),
            # The spec may fix where validation and test start (to hold out a cohort).
            **{key: getattr(tables.training, key) for key in ("valid_from", "test_from")
               if getattr(tables.training, key, None) is not None},
        },
        artifacts={
            "dataset/feature_set.json": dict(feature_set.definition)
            | {"version": feature_set.version},
            "dataset/policies.json": {k: v for k, v in tables.policy_counts.items()},
            "dataset/unmapped_types.json": dict(tables.unmapped_types),
            # The spec itself: what a service needs to speak this CRM's language.
            f"dataset/{Path(spec_path).name}": Path(spec_path).read_text(encoding="utf-8"),
        },
    )


def training_data_for_spec(
    spec_path: str | Path,
    data_path: str | Path | None = None,
    *,
    every: pd.Timedelta | None = None,
    horizon: pd.Timedelta | None = None,
) -> TrainingData:
    """Training data for any dataset spec.

    A version-2 spec with time gives point-in-time snapshots (:func:`history_training_data`).
    A flat table (no time) or a version-1 spec gives one row per lead, as
    :func:`training.pipeline.training_data_from_spec` reads it (with ``created_at`` and
    ``converted_at``, labelled "converted within the horizon after creation").
    """
    from features.spec import DatasetSpecV2, load_spec, load_tables
    from training.pipeline import training_data_from_spec

    spec = load_spec(spec_path)
    if isinstance(spec, DatasetSpecV2) and spec.has_time:
        tables = load_tables(spec, data_path=data_path)
        return history_training_data(tables, spec_path, every=every, horizon=horizon)
    return training_data_from_spec(spec_path, data_path, horizon=horizon)
