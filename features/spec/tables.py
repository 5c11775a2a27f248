"""What loading a spec returns: :class:`SpecTables` (every table) and :class:`SpecDataset`.

``SpecTables`` is the interface the feature-set code consumes; ``SpecDataset`` is
version 1's flat-table result, which training still reads for flat specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.spec.model import AnySpec, DatasetSpec, DatasetSpecV2

__all__ = ["ActivityKind", "Snapshots", "TrainingOptions", "SpecTables", "SpecDataset"]


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
    valid_from: pd.Timestamp | None = None
    test_from: pd.Timestamp | None = None


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
