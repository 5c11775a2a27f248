"""Batch rescoring of every open lead, in process or on Dask: resumable, atomic,
identical to the API.

``leadscore rescore`` calls :func:`rescore`. The flow::

    leads.parquet + activities.parquet
      -> read in batches of 500,000 rows; features.schema validation of each batch in
         the client (the boundary), rows numbered in the whole file
      -> partition = hash(lead_id) % P, per batch, for leads and their activities alike,
         so that every lead's history sits in its lead's partition (the join is local)
      -> appended to <out>/.staging/input-<inputs>.tmp-*/part-NNNNN/{leads,activities}.parquet
      -> checks across rows, one partition at a time: duplicate lead ids, activities of
         unknown leads; then the staged input is renamed to .staging/input-<inputs>/
      -> one Dask task per partition (or, for a small base, one loop in this process:
         see "Small bases" below): open leads at as_of (created before it, neither
         converted nor disqualified before it), serving.scorer's core on them
         -> <out>/.staging/<run_id>/scores/part-NNNNN.parquet (temp name, then rename)
      -> summary, one output partition at a time (exactly one row per open lead)
      -> commit: the staged dataset is renamed to <out>/runs/<run_id>/, the <out>/scores
         symlink is swapped to it in one rename, and the run is appended to <out>/history/

Design decisions
----------------
**Same core as the API.** Scores come from :func:`serving.scorer.score_frame`'s logic:
the model rows' reasons are computed by :func:`model_reasons_columnar`, a columnar
equivalent of ``reasons_for`` + ``select_reasons`` that builds only the reasons kept
(see its docstring); a test checks it row for row against the core, and the
batch-equals-API test checks the whole output against ``POST /score``. Pass
``reasons_path="core"`` to use ``score_frame`` unchanged.

**Small bases in process.** Starting a LocalCluster (worker processes that each import
the stack and load the model) costs seconds that a base of a few thousand leads does not
repay. With ``engine="auto"`` (the default) a base of at most
``Settings.rescore_local_max_leads`` leads (``LEADSCORE_RESCORE_LOCAL_MAX_LEADS``; the
CLI's ``--engine local|dask`` overrides it) is scored in this process: the same staged
input, the same :func:`_score_partition` per partition on an engine from the same
:func:`build_engine`, the same summary and commit. Only where the partitions run
differs, so the output is the same (``tests/serving/test_batch.py`` checks it), and the
engine is not part of the run's identity: a run cut short on one resumes on the other.

**Default as_of** is the latest timestamp in the data (:func:`features.build.data_end`):
a nightly export is scored as it stood when it was taken. As everywhere, only activity
strictly before as_of counts.

**Client memory is bounded by a batch, not by the base.** The client never holds the
base: it validates and splits one batch at a time (:func:`stage_inputs`), checks one
partition at a time, and summarises one output partition at a time. What grows with the
base is small and Arrow-backed: the ``lead_id`` and ``grade`` of each scored lead (about
20 bytes a lead) for the grade movements, and the slim history rows of the run. Workers
hold one partition (about 25,000 leads and their activities) at a time.

**Validation is all or nothing, in batches.** Per-row checks run on each batch; checks
across rows (duplicate ids, activities of unknown leads) run per partition, where they
are exact, since an id and its activities share a partition. Only when the whole input
passed is the staged input renamed into place; nothing is scored, and nothing of the run
is left, when it did not. As in :func:`read_inputs`, activities are checked only once
the leads are valid.

**The model is loaded once per worker** by :class:`EnginePlugin` (a
``distributed.WorkerPlugin``), not once per partition. A worker that joins later loads it
when it joins. The alias (``models:/lead-scoring@champion``) is resolved once, in the
client, to a version; every worker loads that version, so a promotion during the run
cannot mix two models in one output.

**Atomic and resumable.** A run is identified by a fingerprint of its inputs (file
contents), as_of, model version, rules version, feature set, partition count, number of
reasons and output schema; ``run_id`` is ``<as_of>-<fingerprint[:12]>``. Each output
partition is written to a temporary name, flushed to disk and renamed, so it is either
complete or absent. A restart with the same fingerprint finds the staging directory and
skips every partition already there. The validated, split input is keyed by the input
files' contents and the partition count only (it does not depend on as_of or the model),
and is reused by a restart; an input split that a kill interrupted is discarded. Readers
only ever see ``<out>/scores``, a symlink replaced by one ``rename(2)``: the previous
complete run until the swap, the new complete run after it, never half of one. A run
that fails (disk full, read-only location, a bad model) leaves the previous ``scores``
untouched and nothing in ``runs/`` that has a ``_SUCCESS`` marker. One rescore at a time
per ``--out`` (an advisory lock, released by the kernel even on SIGKILL).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from features.errors import LeadscoreError, ValidationIssue
from features.schema import LEAD_TIMESTAMP_FIELDS

__all__ = [
    "OUTPUT_SCHEMA",
    "REASON_TYPE",
    "GRADES",
    "ModelSource",
    "EnginePlugin",
    "engine_loads",
    "RunPlan",
    "RescoreResult",
    "run_estimate",
    "resolve_model",
    "read_inputs",
    "open_leads",
    "partition_of",
    "default_partitions",
    "StagedInput",
    "stage_inputs",
    "fingerprint",
    "result_table",
    "model_reasons_columnar",
    "score_partition_frame",
    "grade_movements",
    "rescore",
    "choose_engine",
    "commit_run",
]

logger = logging.getLogger("leadscore.batch")

SCHEMA_VERSION = "2"
"""Version of :data:`OUTPUT_SCHEMA` and of the staging layout; part of the fingerprint."""

GRADES: tuple[str, ...] = ("A", "B", "C", "D")
"""Grades, best first. A move from C to B is a move up."""

REASON_TYPE = pa.struct([
    ("field", pa.string()),
    ("label", pa.string()),
    # The API's value is a string, a number or null; one Parquet column needs one type,
    # so it is str() of the API's value (3 -> "3", 2.5 -> "2.5", null stays null).
    ("value", pa.string()),
    ("impact", pa.float64()),
    ("sentence", pa.string()),
])

_TS = pa.timestamp("us", tz="UTC")

OUTPUT_SCHEMA = pa.schema([
    ("lead_id", pa.string()),
    ("probability", pa.float64()),
    ("score", pa.int16()),
    ("grade", pa.string()),
    ("route", pa.string()),
    # The fit x engagement split (features.matrix): the two 0-100 part scores and the
    # matrix's route; null where unknown (a model trained before it was shipped).
    ("fit_score", pa.int16()),
    ("engagement_score", pa.int16()),
    ("matrix_route", pa.string()),
    ("scored_by", pa.string()),
    ("fallback_reason", pa.string()),
    ("reasons", pa.list_(REASON_TYPE)),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("rules_version", pa.string()),
    ("as_of", _TS),
    ("scored_at", _TS),
    ("run_id", pa.string()),
])
"""Columns of every output partition (``<out>/scores/part-*.parquet``)."""

_LEAD_COLUMNS = (
    "lead_id", "created_at", "converted_at", "disqualified_at", "source", "utm_campaign",
    "country", "industry", "company_size", "job_title", "seniority", "job_function", "email",
)
_ACTIVITY_COLUMNS = ("lead_id", "occurred_at", "type", "url", "campaign", "duration_s")
_LEADS_PER_PARTITION = 25_000
_BATCH_ROWS = 500_000
"""Rows the client reads, validates and splits at a time (its memory is about one batch)."""
_MAX_ISSUES = 100
_PLUGIN_PREFIX = "leadscore-engine-"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ModelSource:
    """Where workers get the model and rules from. Picklable: it travels to every worker.

    Parameters
    ----------
    candidate : serving.lifecycle.Candidate or None
        The pinned model version to load; None scores everything with the rules
        (``fallback_reason: no_model``), as the API does without a champion.
    settings : leadscore.settings.Settings
        Tracking URI, rules file and cold-start policy.
    loader : callable, optional
        ``loader(candidate) -> LeadModel``; defaults to
        :func:`serving.lifecycle.mlflow_loader`. Tests pass an in-memory one.
    """

    candidate: Any
    settings: Any
    loader: Callable[[Any], Any] | None = None

    @property
    def key(self) -> str:
        """Names the plugin, so runs of two models on one cluster never share an engine."""
        uri = self.candidate.uri if self.candidate is not None else "rules-only"
        return hashlib.sha256(f"{uri}|{self.settings.rules_file}|"
                              f"{self.settings.cold_start_policy}".encode()).hexdigest()[:16]


def _thresholds(settings: Any) -> Any:
    """The operator's fit/engagement thresholds, when the settings carry them."""
    make = getattr(settings, "matrix_thresholds", None)
    return make() if callable(make) else None


def build_engine(source: ModelSource) -> Any:
    """Load the model and rules and check them as the service does; return an Engine.

    Raises
    ------
    LeadscoreError
        When the model is on another feature set or fails the smoke prediction.
    """
    from features.registry import FEATURE_SET_VERSION
    from rules_fallback import load_rules
    from serving.lifecycle import mlflow_loader, smoke_test
    from serving.scorer import Engine, ModelBundle

    settings = source.settings
    rules = load_rules(settings.rules_file)
    if source.candidate is None:
        return Engine(None, rules, settings.cold_start_policy,
                  _thresholds(settings))
    candidate = source.candidate
    model = (source.loader or mlflow_loader(settings))(candidate)
    got = str(getattr(model, "feature_set_version", ""))
    if got != FEATURE_SET_VERSION:
        raise LeadscoreError(
            f"model {candidate.uri} was trained on feature set {got!r} but this code computes "
            f"{FEATURE_SET_VERSION!r}; retrain it or rescore with a model of this feature set"
        )
    bundle = ModelBundle(model=model, name=candidate.name, version=candidate.version,
                         alias=candidate.alias, uri=candidate.uri, loaded_at=datetime.now(UTC))
    try:
        smoke_test(bundle, rules)
    except Exception as exc:
        raise LeadscoreError(
            f"model {candidate.uri} failed the smoke prediction: {type(exc).__name__}: {exc}"
        ) from exc
    return Engine(bundle, rules, settings.cold_start_policy,
                  _thresholds(settings))


try:  # distributed is imported lazily elsewhere; the plugin base class is needed here.
    from distributed import WorkerPlugin as _WorkerPlugin
except ImportError:  # pragma: no cover  (distributed is a dependency; keeps imports cheap)
    _WorkerPlugin = object  # type: ignore[assignment,misc]


_LOADS: dict[str, int] = {}


def engine_loads() -> dict[str, int]:
    """Engines this process has built, per plugin name (run it on workers with
    ``client.run(engine_loads)``: one per worker per run, however many partitions)."""
    return dict(_LOADS)


class EnginePlugin(_WorkerPlugin):
    """Loads the Engine once per worker, in ``setup``; tasks read ``plugin.engine``."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self.name = _PLUGIN_PREFIX + source.key
        self.engine: Any = None

    def setup(self, worker: Any) -> None:
        self.engine = build_engine(self.source)
        _LOADS[self.name] = _LOADS.get(self.name, 0) + 1

    def teardown(self, worker: Any) -> None:
        self.engine = None


def _worker_engine(plugin_name: str) -> Any:
    from distributed import get_worker

    return get_worker().plugins[plugin_name].engine


def resolve_model(settings: Any, model_uri: str | None) -> Any:
    """The model version to score with, resolved once: a Candidate, or None for the rules.

    ``models:/<name>@<alias>`` is resolved in the registry to ``models:/<name>/<version>``
    (None when the alias is not set). ``models:/<name>/<version>`` and any other URI
    MLflow can load (``runs:/...``, a path) are used as given. ``model_uri`` None means
    ``settings.model_uri`` or else ``models:/<model_name>@<model_alias>``.
    """
    from serving.lifecycle import Candidate
    from training.tracking import resolve_alias

    uri = model_uri or settings.model_uri or f"models:/{settings.model_name}@{settings.model_alias}"
    if uri.startswith("models:/") and "@" in uri:
        name, alias = uri[len("models:/"):].split("@", 1)
        pinned = settings.model_copy(update={"model_name": name, "model_alias": alias})
        found = resolve_alias(pinned, alias=alias)
        if found is None:
            return None
        return Candidate(found[0], found[1], alias, found[2])
    if uri.startswith("models:/"):
        name, _, version = uri[len("models:/"):].rpartition("/")
        return Candidate(name or settings.model_name, version, None, uri)
    return Candidate(settings.model_name, None, None, uri)


# --------------------------------------------------------------------------- input


def read_inputs(data_dir: str | Path, *, assume_utc: bool = False
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read and validate ``leads.parquet`` and ``activities.parquet`` (the boundary).

    Only the contract's columns are read (names and other PII beyond ``email`` are not
    needed to score). Raises :class:`features.errors.DataValidationError` listing every
    bad value, before anything is scored or written.
    """
    from features.schema import validate_activities, validate_leads

    data_dir = Path(data_dir)
    tables = {}
    for name, wanted in (("leads", _LEAD_COLUMNS), ("activities", _ACTIVITY_COLUMNS)):
        path = data_dir / f"{name}.parquet"
        if not path.is_file():
            raise LeadscoreError(f"{path} not found; --data must hold leads.parquet and "
                                 "activities.parquet (see 'leadscore generate')")
        present = set(pq.read_schema(path).names)
        tables[name] = pq.read_table(path, columns=[c for c in wanted if c in present]
                                     ).to_pandas()
    leads = validate_leads(tables["leads"], assume_utc=assume_utc)
    acts = validate_activities(tables["activities"], lead_ids=leads["lead_id"],
                               assume_utc=assume_utc).frame
    return leads, acts


def open_leads(leads: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    """Which leads are open at ``as_of``: created before it, neither converted nor
    disqualified before it (the training set's eligibility rule, DESIGN "Data contract").

    A lead converted exactly at ``as_of`` is still open then, as in
    :func:`features.build.eligible_pairs`.
    """
    stamp = pd.Timestamp(as_of)
    # Comparisons with a missing time are False: no outcome yet means still open.
    mask = (leads["created_at"] < stamp).fillna(False).to_numpy(dtype=bool)
    for column in ("converted_at", "disqualified_at"):
        if column in leads.columns:
            mask = mask & ~(leads[column] < stamp).fillna(False).to_numpy(dtype=bool)
    return mask


def partition_of(lead_ids: pd.Series | Sequence[str], n_partitions: int) -> np.ndarray:
    """Partition of each lead: a stable hash of its id modulo ``n_partitions``.

    pandas' SipHash with its fixed key: the same id lands in the same partition in every
    process, run and machine, which resuming relies on.
    """
    if n_partitions < 1:
        raise ValueError(f"The 'n_partitions' parameter must be >= 1. Got {n_partitions}.")
    ids = np.asarray(pd.Series(lead_ids, dtype="string").to_numpy(dtype=object))
    return (pd.util.hash_array(ids, categorize=False) % np.uint64(n_partitions)).astype(np.int64)


def default_partitions(n_leads: int) -> int:
    """About 25,000 leads of the base per partition, at least 4 (so two workers share).

    Counted on the whole base (Parquet metadata gives it before anything is read), not
    on the open leads: the input is split before as_of is known. Depends on the data
    only, never on the number of workers, so that a run resumed with another
    ``--workers`` finds the same partitions.
    """
    return max(4, math.ceil(n_leads / _LEADS_PER_PARTITION))


def _file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "blake2b").hexdigest()[:32]


def fingerprint(parts: Mapping[str, Any]) -> str:
    """A stable hash of the run's identity (inputs, as_of, model, rules, partitions...)."""
    text = json.dumps(dict(parts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- output


def _reason_value(value: Any) -> str | None:
    return None if value is None else str(value)


def matrix_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """``fit_score``, ``engagement_score`` and ``matrix_route`` of result rows, as columns."""
    def score(row: Mapping[str, Any], part: str) -> Any:
        value = row.get(part)
        return None if value is None else value["score"]

    return {"fit_score": [score(r, "fit") for r in rows],
            "engagement_score": [score(r, "engagement") for r in rows],
            "matrix_route": [r.get("matrix_route") for r in rows]}


def result_table(frame: pd.DataFrame, *, scored_at: pd.Timestamp, run_id: str) -> pa.Table:
    """A :func:`serving.scorer.score_frame` result as an :data:`OUTPUT_SCHEMA` table."""
    offsets = [0]
    flat: dict[str, list[Any]] = {k: [] for k in ("field", "label", "value", "impact", "sentence")}
    for reasons in frame["reasons"]:
        for r in reasons:
            flat["field"].append(r.field)
            flat["label"].append(r.label)
            flat["value"].append(_reason_value(r.value))
            flat["impact"].append(float(r.impact))
            flat["sentence"].append(r.sentence)
        offsets.append(len(flat["field"]))
    reasons_array = _reasons_array(np.asarray(offsets, dtype=np.int32), flat)
    return _assemble(frame.drop(columns="reasons"), reasons_array, scored_at=scored_at,
                     run_id=run_id)


def _reasons_array(offsets: np.ndarray, flat: Mapping[str, Any]) -> pa.Array:
    struct = pa.StructArray.from_arrays(
        [pa.array(flat[name], type=REASON_TYPE.field(name).type) for name in
         ("field", "label", "value", "impact", "sentence")],
        fields=list(REASON_TYPE),
    )
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), struct,
                                    type=pa.list_(REASON_TYPE))


def _assemble(frame: pd.DataFrame, reasons: pa.Array, *, scored_at: pd.Timestamp,
              run_id: str) -> pa.Table:
    n = len(frame)

    def strings(column: str) -> pa.Array:
        values = frame[column].tolist()
        return pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and
                                                             math.isnan(v)) else str(v)
                         for v in values], type=pa.string())

    as_of = pd.to_datetime(frame["as_of"], utc=True).dt.as_unit("us")

    def small_ints(column: str) -> pa.Array:
        values = frame[column].tolist() if column in frame.columns else [None] * n
        return pa.array([None if v is None or v is pd.NA or (isinstance(v, float) and
                                                             math.isnan(v)) else int(v)
                         for v in values], type=pa.int16())

    columns = {
        "lead_id": pa.array(frame["lead_id"].astype("string").tolist(), type=pa.string()),
        "probability": pa.array(frame["probability"].to_numpy(dtype=np.float64)),
        "score": pa.array(frame["score"].to_numpy(dtype=np.int16)),
        "grade": strings("grade"),
        "route": strings("route"),
        "fit_score": small_ints("fit_score"),
        "engagement_score": small_ints("engagement_score"),
        "matrix_route": (strings("matrix_route") if "matrix_route" in frame.columns
                         else pa.nulls(n, pa.string())),
        "scored_by": strings("scored_by"),
        "fallback_reason": strings("fallback_reason"),
        "reasons": reasons,
        "model_name": strings("model_name"),
        "model_version": strings("model_version"),
        "rules_version": strings("rules_version"),
        # Naive UTC values relabelled as UTC (pandas 3.1 deprecates .values on tz data).
        "as_of": pa.array(as_of.dt.tz_convert(None).to_numpy(), type=pa.timestamp("us")
                          ).cast(_TS),
        "scored_at": pa.array([pd.Timestamp(scored_at).as_unit("us")] * n, type=_TS),
        "run_id": pa.array([run_id] * n, type=pa.string()),
    }
    return pa.Table.from_pydict(columns, schema=OUTPUT_SCHEMA)


# --------------------------------------------------------------------------- fast reasons


class _Row(Mapping[str, Any]):
    """One lead's feature values, read from per-column lists (what ``to_dict`` gives)."""

    __slots__ = ("_columns", "_i")

    def __init__(self, columns: Mapping[str, list[Any]], i: int) -> None:
        self._columns = columns
        self._i = i

    def __getitem__(self, key: str) -> Any:
        return self._columns[key][self._i]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _column_lists(X: pd.DataFrame) -> dict[str, list[Any]]:
    """``X.to_dict("list")``, the same values, without boxing numbers one by one.

    For NumPy numeric and boolean columns ``tolist`` gives the same Python ints, floats
    and bools ``to_dict`` does (``maybe_box_native`` on every value, the slowest part of
    the reasons at 60 columns); any other column goes through ``to_dict`` itself.
    """
    numeric = [c for c in X.columns
               if isinstance(X[c].dtype, np.dtype) and X[c].dtype.kind in "biuf"]
    out = {c: X[c].to_numpy().tolist() for c in numeric}
    others = [c for c in X.columns if c not in out]
    if others:
        out.update(X[others].to_dict("list"))
    return {c: out[c] for c in X.columns}


def model_reasons_columnar(
    X: pd.DataFrame, contrib: np.ndarray, feature_names: Sequence[str], top: int
) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """The reasons ``score_frame`` gives model rows, built column-wise, as flat lists.

    Equivalent to ``explain_blanks(select_reasons(reasons_for(row, impacts), top))`` for
    every row, in the same order and to the bit:

    - impacts are summed per business field in feature order, starting from 0.0, as
      ``reasons_for`` does (so the floating-point sums are identical);
    - positives are ordered by impact descending, negatives by impact ascending, ties by
      the order ``reasons_for`` lists them (absolute impact, then first feature of the
      field), as Python's stable sorts do;
    - only the kept fields are described (``BusinessField.describe``), with the same
      row values ``DataFrame.to_dict("records")`` gives.

    The per-lead cost the core pays for every field (a Reason per field, then two sorts)
    is paid here only for the at most ``2 * top`` kept ones.

    Returns
    -------
    offsets : ndarray of int32, length ``len(X) + 1``
    flat : dict of lists
        ``field``, ``label``, ``value`` (as str, see :data:`REASON_TYPE`), ``impact`` and
        ``sentence`` of every kept reason, row after row.
    """
    from features.registry import FIELDS, field_of
    from features.registry import _plain as plain_value  # the core's value conversion
    from serving.scorer import blank_sentence  # and the core's note on blanks

    n = len(X)
    fields: list[str] = []
    for name in feature_names:
        f = field_of(name)
        if f not in fields:
            fields.append(f)
    totals = np.zeros((n, len(fields)), dtype=np.float64)
    where = {f: i for i, f in enumerate(fields)}
    contrib = np.asarray(contrib, dtype=np.float64)
    for j, name in enumerate(feature_names):
        totals[:, where[field_of(name)]] += contrib[:, j]

    # reasons_for's order: by |impact| descending, ties by field position (stable sort).
    position = np.broadcast_to(np.arange(len(fields)), totals.shape)
    rank_abs = np.lexsort((position, -np.abs(totals)), axis=-1) if n else np.empty((0, 0), int)
    flat: dict[str, list[Any]] = {k: [] for k in ("field", "label", "value", "impact", "sentence")}
    offsets = np.zeros(n + 1, dtype=np.int32)
    if top <= 0 or n == 0:
        return offsets, flat
    order_in_listing = np.empty_like(rank_abs)
    np.put_along_axis(order_in_listing, rank_abs, np.arange(len(fields))[None, :], axis=-1)
    # Positives: impact descending, ties by listing order; negatives: ascending.
    pos_order = np.lexsort((order_in_listing, -totals), axis=-1)
    neg_order = np.lexsort((order_in_listing, totals), axis=-1)
    n_pos = np.minimum((totals > 0).sum(axis=1), top)
    n_neg = np.minimum((totals < 0).sum(axis=1), top)
    columns = _column_lists(X)
    specs = [FIELDS[f] for f in fields]
    for i in range(n):
        kept = [*pos_order[i, : n_pos[i]].tolist(), *neg_order[i, : n_neg[i]].tolist()]
        if kept:
            row = _Row(columns, i)
            for k in kept:
                spec = specs[k]
                value, sentence = spec.describe(row)
                value, impact = plain_value(value), float(totals[i, k])
                flat["field"].append(fields[k])
                flat["label"].append(spec.label)
                flat["value"].append(_reason_value(value))
                flat["impact"].append(impact)
                flat["sentence"].append(blank_sentence(sentence, value, impact))
        offsets[i + 1] = len(flat["field"])
    return offsets, flat


def partition_decay(leads: pd.DataFrame, activities: pd.DataFrame, engine: Any,
                    as_of: pd.Timestamp, table: pa.Table) -> list[dict[str, Any] | None]:
    """``decay`` of every lead of a scored partition (``table``, in ``leads``' order), as
    ``POST /score`` gives it: the model's leads rescored by the model at as_of + 1 ... 30
    days on the vectorised feature path, the rules' leads by the rules
    (:func:`serving.whatif.batch_decay`)."""
    from features.registry import BUILTIN
    from rules_fallback import score_leads
    from serving.scorer import as_of_series, validate_inputs
    from serving.whatif import batch_decay, model_at_times

    if not table.num_rows:
        return []
    clean, acts = validate_inputs(leads, activities, as_of_series(len(leads), as_of))
    answered = table.select(["lead_id", "as_of", "grade", "scored_by"]).to_pandas()

    def rules_at(part: pd.DataFrame, past: pd.DataFrame, when: pd.Series) -> pd.DataFrame:
        return score_leads(engine.rules, part, past, when, reasons=False)

    model = None if engine.model is None else model_at_times(engine.model.model, BUILTIN)
    return batch_decay(clean, acts, as_of, answered, model=model, rules=rules_at)


def score_partition_frame(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    engine: Any,
    *,
    as_of: pd.Timestamp,
    top_reasons: int,
    scored_at: pd.Timestamp,
    run_id: str,
    reasons_path: Literal["columnar", "core"] = "columnar",
    drift_counts: dict[str, list[int]] | None = None,
) -> pa.Table:
    """Score one partition as the API would and return it as an :data:`OUTPUT_SCHEMA` table.

    ``drift_counts``, when given, is filled with the model-scored leads' counts in the
    bins of the model's reference (:class:`features.drift.Reference`), on the columnar
    path (the default); partitions' counts add up to the run's.

    ``core`` runs :func:`serving.scorer.score_frame` on every lead. ``columnar`` runs the
    core's model path with :func:`model_reasons_columnar` for the leads the model
    answers, and ``score_frame`` itself for every other lead (rules, cold starts, and any
    batch the model fails on, which the core then retries lead by lead), so fallbacks
    are the core's own.
    """
    from serving.scorer import as_of_series, has_history, score_frame, validate_inputs

    if reasons_path == "core" or engine.model is None or top_reasons <= 0:
        out = score_frame(leads, activities, engine, as_of=as_of, top_reasons=top_reasons)
        return result_table(out, scored_at=scored_at, run_id=run_id)

    from features.online import features_at

    as_of_s = as_of_series(len(leads), as_of)
    clean, acts = validate_inputs(leads, activities, as_of_s)
    if engine.cold_start_effective == "rules":
        use_model = has_history(clean, acts, as_of_s)
    else:
        use_model = np.ones(len(clean), dtype=bool)
    model_table = None
    model_rows = np.flatnonzero(use_model)
    if len(model_rows):
        bundle = engine.model
        model = bundle.model
        m_leads = clean.iloc[model_rows].reset_index(drop=True)
        m_acts = acts[acts["lead_id"].isin(m_leads["lead_id"])]
        try:
            X = features_at(m_leads, m_acts, as_of_s.iloc[model_rows].reset_index(drop=True)
                            )[model.feature_names]
            probability, contrib, _ = model.predict_margin_and_contributions(X)
            probability = np.asarray(probability, dtype=float)
            if not np.all(np.isfinite(probability)):
                raise ValueError("the model returned a non-finite probability")
            score, grade, route = model.grade(probability)
            parts = model.matrix().with_thresholds(engine.matrix_thresholds).answer(contrib)
            offsets, flat = model_reasons_columnar(X, contrib, model.feature_names, top_reasons)
            if drift_counts is not None and getattr(model, "reference", None):
                from features.drift import Reference

                drift_counts.update(Reference.from_dict(model.reference).counts(X, probability))
        except Exception:  # noqa: BLE001  (the core below retries lead by lead and logs)
            use_model[:] = False
        else:
            frame = pd.DataFrame({
                "lead_id": m_leads["lead_id"], "as_of": as_of_s.iloc[model_rows].to_numpy(),
                "probability": probability, "score": np.asarray(score),
                "grade": np.asarray(grade, dtype=object), "route": np.asarray(route, dtype=object),
                "scored_by": "model", "fallback_reason": None, "model_name": bundle.name,
                "model_version": bundle.version, "rules_version": engine.rules_version,
                **matrix_columns(parts),
            })
            # Same coercions as the core's rows (str grade/route, int score, None kept).
            frame["grade"] = [str(g) for g in frame["grade"]]
            frame["route"] = [str(r) for r in frame["route"]]
            frame["fallback_reason"] = pd.Series([None] * len(frame), dtype=object)
            frame["model_version"] = pd.Series([bundle.version] * len(frame), dtype=object)
            model_table = _assemble(frame, _reasons_array(offsets, flat),
                                    scored_at=scored_at, run_id=run_id)
    other_rows = np.flatnonzero(~use_model)
    pieces: list[tuple[np.ndarray, pa.Table]] = []
    if model_table is not None:
        pieces.append((model_rows, model_table))
    if len(other_rows):
        o_leads = clean.iloc[other_rows].reset_index(drop=True)
        o_acts = acts[acts["lead_id"].isin(o_leads["lead_id"])]
        out = score_frame(o_leads, o_acts, engine,
                          as_of=as_of_s.iloc[other_rows].reset_index(drop=True),
                          top_reasons=top_reasons)
        pieces.append((other_rows, result_table(out, scored_at=scored_at, run_id=run_id)))
    if len(pieces) == 1:
        return pieces[0][1]
    # Back to input order, as score_frame returns it.
    positions = np.concatenate([p for p, _ in pieces])
    table = pa.concat_tables([t for _, t in pieces])
    return table.take(pa.array(np.argsort(positions, kind="stable")))


# --------------------------------------------------------------------------- files


def _write_atomic(table: pa.Table, path: Path, **kwargs: Any) -> None:
    """Write to a temporary name beside ``path``, flush to disk, rename: all or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with tmp.open("wb") as f:
            pq.write_table(table, f, **kwargs)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_json_atomic(payload: Mapping[str, Any], path: Path) -> None:
    # pid and a random part: threads of one worker process write the same file (each
    # partition's task may write the run's drift reference), and must not share a tmp.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _part_name(p: int) -> str:
    return f"part-{p:05d}"


def _score_partition_task(
    part: int, input_dir: str, staging: str, plugin_name: str, as_of: str, top_reasons: int,
    scored_at: str, run_id: str, reasons_path: str, decay: bool = False,
) -> int:
    """Dask task: :func:`_score_partition` with the worker's engine. Returns rows."""
    return _score_partition(part, input_dir, staging, _worker_engine(plugin_name), as_of,
                            top_reasons, scored_at, run_id, reasons_path, decay)


def _score_partition(
    part: int, input_dir: str, staging: str, engine: Any, as_of: str, top_reasons: int,
    scored_at: str, run_id: str, reasons_path: str, decay: bool = False,
) -> int:
    """Score the open leads of input partition ``part`` and commit its output file (and
    its drift counts). One function for both engines: a Dask task on a worker, or a loop
    in this process (``engine="local"``), so the files they write are the same. Returns
    rows."""
    src = Path(input_dir) / _part_name(part)
    stamp = pd.Timestamp(as_of)
    lead_table = pq.read_table(src / "leads.parquet")
    mask = open_leads(lead_table.select(list(LEAD_TIMESTAMP_FIELDS)).to_pandas(), stamp)
    lead_table = lead_table.filter(pa.array(mask))
    acts = pq.read_table(src / "activities.parquet")
    # Only the open leads' activities (Arrow's hash lookup, before any pandas object).
    open_ids = lead_table["lead_id"].combine_chunks().cast(acts.schema.field("lead_id").type)
    acts = acts.filter(pc.is_in(acts["lead_id"], value_set=open_ids))
    counts: dict[str, list[int]] = {}
    if lead_table.num_rows:
        table = score_partition_frame(
            lead_table.to_pandas(), acts.to_pandas(), engine,
            as_of=stamp, top_reasons=top_reasons, scored_at=pd.Timestamp(scored_at),
            run_id=run_id, reasons_path=reasons_path,  # type: ignore[arg-type]
            drift_counts=counts,
        )
        if decay:
            from serving.whatif import with_decay_columns

            table = with_decay_columns(table, partition_decay(
                lead_table.to_pandas(), acts.to_pandas(), engine, stamp, table))
    else:
        table = OUTPUT_SCHEMA.empty_table()
        if decay:
            from serving.whatif import with_decay_columns

            table = with_decay_columns(table, [])
    # The counts first: a partition whose scores file exists has its counts too.
    drift = Path(staging) / "drift"
    drift.mkdir(exist_ok=True)
    model = None if engine.model is None else engine.model.model
    if counts and not (drift / "reference.json").is_file():
        # What the driver compares the merged counts with (it never loads the model).
        _write_json_atomic({"reference": model.reference,
                            "labels": model.feature_set().field_labels()},
                           drift / "reference.json")
    _write_json_atomic(counts, drift / f"{_part_name(part)}.json")
    _write_atomic(table, Path(staging) / "scores" / f"{_part_name(part)}.parquet")
    return table.num_rows


# --------------------------------------------------------------------------- summary


def grade_movements(previous: pd.DataFrame | None, current: pd.DataFrame) -> dict[str, int]:
    """How many leads moved up or down a grade between two runs (``lead_id``, ``grade``).

    ``up`` counts leads whose grade got better (D -> C, ...), ``down`` worse, ``same``
    unchanged; ``new`` leads are not in the previous run, ``gone`` ones (converted,
    disqualified or deleted since) are not in this one.
    """
    if previous is None:
        return {"up": 0, "down": 0, "same": 0, "new": int(len(current)), "gone": 0}
    rank = {g: i for i, g in enumerate(GRADES)}
    prev = previous.set_index("lead_id")["grade"].map(rank)
    cur = current.set_index("lead_id")["grade"].map(rank)
    both = cur.index.intersection(prev.index)
    delta = cur.loc[both].to_numpy() - prev.loc[both].to_numpy()
    return {
        "up": int((delta < 0).sum()),
        "down": int((delta > 0).sum()),
        "same": int((delta == 0).sum()),
        "new": int(len(cur) - len(both)),
        "gone": int(len(prev) - len(both)),
    }


@dataclass
class RescoreResult:
    """What a run did; :meth:`summary_lines` is what the CLI prints."""

    run_id: str
    as_of: pd.Timestamp
    scores_dir: Path
    leads_scored: int
    partitions: int
    partitions_skipped: int
    grades: dict[str, int]
    by_source: dict[str, int]
    movements: dict[str, int]
    previous_run: str | None
    model: str
    seconds: float
    already_committed: bool = False
    health: dict[str, Any] | None = None
    """The run's drift against the model's reference (``_health.json`` in the run);
    None without a model, or for a model that ships no reference."""
    engine: str = "dask"
    """Where the partitions were scored: ``local`` (in this process) or ``dask``."""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["as_of"] = self.as_of.isoformat()
        out["scores_dir"] = str(self.scores_dir)
        if self.health is not None:
            out["health"] = {k: v for k, v in self.health.items() if k != "features"}
        return out

    def summary_lines(self) -> list[str]:
        total = max(self.leads_scored, 1)
        grades = ", ".join(f"{g} {n:,} ({n / total:.0%})" for g, n in self.grades.items())
        sources = ", ".join(f"{k} {n:,}" for k, n in self.by_source.items())
        mv = self.movements
        moved = (f"vs run {self.previous_run}: {mv['up']:,} up, {mv['down']:,} down, "
                 f"{mv['same']:,} same, {mv['new']:,} new, {mv['gone']:,} closed or gone"
                 if self.previous_run else "first run here: no previous grades to compare")
        return [
            f"run {self.run_id} (as_of {self.as_of.isoformat()}), model {self.model}",
            f"leads scored: {self.leads_scored:,} in {self.partitions} partitions "
            f"({self.partitions_skipped} reused from an interrupted run), {self.seconds:.1f} s, "
            + ("in process" if self.engine == "local" else "on Dask"),
            f"grades: {grades}",
            f"scored by: {sources}",
            f"grade movements {moved}",
            f"output: {self.scores_dir}",
        ]


# --------------------------------------------------------------------------- plan + run


@dataclass(frozen=True)
class RunPlan:
    """Identity and layout of one run (everything resuming must agree on)."""

    out: Path
    run_id: str
    fingerprint: str
    as_of: pd.Timestamp
    n_partitions: int
    top_reasons: int
    reasons_path: str
    identity: dict[str, Any] = field(default_factory=dict)
    decay: bool = False

    @property
    def staging(self) -> Path:
        return self.out / ".staging" / self.run_id

    @property
    def run_dir(self) -> Path:
        return self.out / "runs" / self.run_id

    @property
    def scores_link(self) -> Path:
        return self.out / "scores"

    @property
    def history_dir(self) -> Path:
        return self.out / "history"


def _prepare_out(out: Path) -> None:
    """Create ``out`` and prove it is writable, or say clearly why not."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise LeadscoreError(_os_problem(exc, out, "prepare the output directory")) from exc


def _os_problem(exc: OSError, where: Path, doing: str) -> str:
    why = {
        errno.ENOSPC: "the device is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a path component is a file, not a directory",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    return (f"cannot {doing} under {where}: {why}. Nothing was committed: the previous "
            "scores (if any) are untouched. Fix the location (--out) and rerun; complete "
            "partitions of this run are reused.")


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """One rescore per output directory at a time (released by the kernel on any exit)."""
    with (out / ".lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LeadscoreError(
                f"another 'leadscore rescore' is writing to {out}; wait for it to finish"
            ) from None
        yield


def _current_run(out: Path) -> str | None:
    link = out / "scores"
    if not link.is_symlink():
        return None
    target = Path(os.readlink(link))
    return target.name if (out / "runs" / target.name / "_SUCCESS").is_file() else None


def _to_arrow(frame: pd.DataFrame) -> pa.Table:
    """A validated frame as Arrow, column by column.

    ``Table.from_pandas`` reads ``Series.values`` of UTC columns, which pandas 3.1
    deprecates (a warning, an error under our tests); UTC columns go through naive
    nanoseconds, relabelled as UTC, instead.
    """
    columns = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            naive = column.dt.tz_convert(None).to_numpy()
            columns[name] = pa.array(naive, type=pa.timestamp("ns")).cast(
                pa.timestamp("ns", tz="UTC"))
        else:
            columns[name] = pa.array(column.array)
    return pa.table(columns)


# --------------------------------------------------------------------------- staging


@dataclass(frozen=True)
class StagedInput:
    """A validated copy of the input, split by :func:`partition_of` for the workers.

    ``path`` holds ``part-NNNNN/{leads,activities}.parquet`` and ``_meta.json``. What the
    scan learnt on the way is kept so that a resumed run need not scan again.
    """

    path: Path
    n_partitions: int
    data_end: pd.Timestamp | None
    leads: int
    activities: int
    unknown_types: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"n_partitions": self.n_partitions, "leads": self.leads,
                "activities": self.activities, "unknown_types": self.unknown_types,
                "data_end": None if self.data_end is None else self.data_end.isoformat()}

    @classmethod
    def read(cls, path: Path) -> StagedInput:
        meta = json.loads((path / "_meta.json").read_text())
        end = meta["data_end"]
        return cls(path, int(meta["n_partitions"]), None if end is None else pd.Timestamp(end),
                   int(meta["leads"]), int(meta["activities"]), dict(meta["unknown_types"]))


def _frames(path: Path, wanted: Sequence[str], batch_rows: int
            ) -> Iterator[tuple[int, pd.DataFrame]]:
    """``(first row, frame)`` of ``batch_rows`` rows at a time; at least one (maybe empty).

    ``pre_buffer=False``: with pre-buffering, the reader keeps every byte range it has
    read until it is closed, so the client's memory grew with the file (about 300 MB
    over 37M activities) instead of staying at one batch.
    """
    with pq.ParquetFile(path, pre_buffer=False) as pf:
        columns = [c for c in wanted if c in pf.schema_arrow.names]
        first = 0
        for record_batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            yield first, record_batch.to_pandas()
            first += record_batch.num_rows
        if first == 0:
            yield 0, pf.schema_arrow.empty_table().select(columns).to_pandas()


def _shifted(issues: Sequence[ValidationIssue], first: int) -> list[ValidationIssue]:
    """Issues of a batch, renumbered to rows of the whole file."""
    return [i if i.row is None else replace(i, row=i.row + first) for i in issues]


def _partition_column(ids: pa.ChunkedArray | pa.Array, n_partitions: int) -> np.ndarray:
    """:func:`partition_of` each id, hashing each distinct id of the batch once."""
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    distinct = pc.unique(ids)
    where = pc.index_in(ids, value_set=distinct).to_numpy()
    return partition_of(distinct.to_numpy(zero_copy_only=False), n_partitions)[where]


class _PartitionWriters:
    """One Parquet file per partition for one table, appended to batch by batch.

    The first batch fixes the schema (validated frames have canonical dtypes, so later
    batches only differ in Arrow's choice of string width, cast away here). Every file is
    created, so an empty partition is an empty table, not a missing file.
    """

    def __init__(self, root: Path, table_name: str, n_partitions: int) -> None:
        self.root = root
        self.file_name = f"{table_name}.parquet"
        self.n = n_partitions
        self.schema: pa.Schema | None = None
        self._files: list[Any] = []
        self._writers: list[pq.ParquetWriter] = []

    def write(self, table: pa.Table) -> None:
        if self.schema is None:
            self.schema = table.schema
            for p in range(self.n):
                where = self.root / _part_name(p)
                where.mkdir(parents=True, exist_ok=True)
                handle = (where / self.file_name).open("wb")
                self._files.append(handle)
                self._writers.append(pq.ParquetWriter(handle, self.schema))
        else:
            table = table.cast(self.schema)
        if table.num_rows == 0:
            return
        parts = _partition_column(table["lead_id"], self.n)
        order = np.argsort(parts, kind="stable")
        bounds = np.searchsorted(parts[order], np.arange(self.n + 1))
        table = table.take(pa.array(order))
        for p in np.flatnonzero(np.diff(bounds)):
            self._writers[p].write_table(table.slice(bounds[p], bounds[p + 1] - bounds[p]))

    def close(self) -> None:
        """Finish every file and flush it to disk (the staged input is renamed after)."""
        try:
            for writer, handle in zip(self._writers, self._files, strict=True):
                writer.close()
                handle.flush()
                os.fsync(handle.fileno())
        finally:
            for handle in self._files:
                handle.close()


def _check_partitions(root: Path, n_partitions: int, limit: int
                      ) -> tuple[list[str], list[str]]:
    """Duplicate lead ids and activities of unknown leads, one partition at a time.

    Both are checks across rows that no batch can do alone. A lead id hashes to one
    partition, and so do its activities, so looking inside each partition finds every
    duplicate and every activity whose lead is missing, with one partition in memory.
    """
    duplicates: list[str] = []
    unknown: list[str] = []
    for p in range(n_partitions):
        where = root / _part_name(p)
        ids = pq.read_table(where / "leads.parquet", columns=["lead_id"])["lead_id"]
        ids = ids.combine_chunks()
        counts = pc.value_counts(ids)
        many = pc.greater(counts.field("counts"), 1)
        duplicates.extend(counts.field("values").filter(many).to_pylist())
        act_ids = pq.read_table(where / "activities.parquet", columns=["lead_id"])["lead_id"]
        orphan = pc.invert(pc.is_in(act_ids, value_set=ids.cast(act_ids.type)))
        unknown.extend(pc.unique(act_ids.filter(orphan)).to_pylist())
        if len(duplicates) + len(unknown) >= limit:
            break
    return duplicates[:limit], unknown[:limit]


def _rows_of(path: Path, ids: Sequence[str], batch_rows: int) -> dict[str, list[int]]:
    """Rows of ``path`` whose lead_id is one of ``ids`` (error path: names the rows)."""
    wanted = pa.array(list(ids), type=pa.string())
    rows: dict[str, list[int]] = {}
    for first, frame in _frames(path, ["lead_id"], batch_rows):
        text = pa.array(frame["lead_id"].astype("string").array, type=pa.string())
        for r in np.flatnonzero(pc.is_in(text, value_set=wanted).to_numpy(zero_copy_only=False)):
            rows.setdefault(text[int(r)].as_py(), []).append(first + int(r))
    return rows


def _cross_row_issues(duplicates: Sequence[str], unknown: Sequence[str], leads_path: Path,
                      acts_path: Path, batch_rows: int) -> list[ValidationIssue]:
    """The messages :mod:`features.schema` gives for these, with rows of the whole file."""
    issues: list[ValidationIssue] = []
    if duplicates:
        for lead_id, rows in sorted(_rows_of(leads_path, duplicates, batch_rows).items(),
                                    key=lambda kv: kv[1][0]):
            issues.extend(
                ValidationIssue(table="leads", field="lead_id", value=lead_id,
                                expected=f"is a duplicate of row {rows[0]}; lead_id must be "
                                "unique", row=r, lead_id=lead_id)
                for r in rows[1:]
            )
    if unknown:
        for lead_id, rows in sorted(_rows_of(acts_path, unknown, batch_rows).items(),
                                    key=lambda kv: kv[1][0]):
            issues.extend(
                ValidationIssue(table="activities", field="lead_id", value=lead_id,
                                expected="is not a known lead; every activity must belong to "
                                "a lead in the leads table", row=r, lead_id=lead_id)
                for r in rows
            )
    return sorted(issues, key=lambda i: (i.table != "leads", i.row or 0))[:_MAX_ISSUES]


def _latest(current: pd.Timestamp | None, column: pd.Series) -> pd.Timestamp | None:
    value = column.max()
    if pd.isna(value):
        return current
    value = pd.Timestamp(value)
    return value if current is None or value > current else current


def stage_inputs(
    data_dir: str | Path,
    root: str | Path,
    n_partitions: int,
    *,
    batch_rows: int = _BATCH_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> StagedInput:
    """Validate ``data_dir`` batch by batch and write it to ``root`` split by partition.

    The client holds one batch of ``batch_rows`` rows (then one partition, for the checks
    across rows), never the whole base. The checks are those of
    :func:`features.schema.validate_leads` and ``validate_activities``, with their
    messages and with rows numbered in the whole file:

    - per row, on each batch as it is read (types, time zones, ranges, missing values);
    - across rows, on each partition once all are written: duplicate lead ids and
      activities of unknown leads (a lead id and its activities share a partition).

    All or nothing: ``root`` is first written under a temporary name, renamed to ``root``
    only when the whole input passed, and removed when it did not. At most
    :data:`_MAX_ISSUES` problems are collected; leads are checked before activities.

    Parameters
    ----------
    progress : callable, optional
        ``progress(rows_read, rows_total)`` after each batch of either table.

    Raises
    ------
    DataValidationError
        The input breaks the data contract; ``root`` does not exist afterwards.
    """
    from features.errors import DataValidationError
    from features.schema import validate_activities, validate_leads

    data_dir, root = Path(data_dir), Path(root)
    leads_path, acts_path = data_dir / "leads.parquet", data_dir / "activities.parquet"
    total = sum(pq.read_metadata(p).num_rows for p in (leads_path, acts_path))
    tmp = root.with_name(f"{root.name}.tmp-{uuid.uuid4().hex[:8]}")
    issues: list[ValidationIssue] = []
    end: pd.Timestamp | None = None
    counts = {"leads": 0, "activities": 0}
    unknown_types: dict[str, int] = {}
    rows_read = 0
    try:
        for table_name, path, wanted in (("leads", leads_path, _LEAD_COLUMNS),
                                         ("activities", acts_path, _ACTIVITY_COLUMNS)):
            if issues:
                break  # as read_inputs: activities are checked against valid leads only
            writers = _PartitionWriters(tmp, table_name, n_partitions)
            try:
                for first, frame in _frames(path, wanted, batch_rows):
                    rows_read += len(frame)
                    try:
                        if table_name == "leads":
                            clean = validate_leads(frame)
                            columns: tuple[str, ...] = LEAD_TIMESTAMP_FIELDS
                        else:
                            checked = validate_activities(frame)
                            clean = checked.frame
                            columns = ("occurred_at",)
                            for k, v in checked.unknown_types.items():
                                unknown_types[k] = unknown_types.get(k, 0) + v
                    except DataValidationError as exc:
                        issues.extend(_shifted(exc.issues, first))
                        if len(issues) >= _MAX_ISSUES or any(i.row is None for i in exc.issues):
                            break  # enough to fix, or a missing column every batch lacks
                        continue
                    counts[table_name] += len(clean)
                    for column in columns:
                        end = _latest(end, clean[column])
                    if not issues:  # once a batch is bad nothing will be used: stop writing
                        writers.write(_to_arrow(clean))
                    if progress:
                        progress(rows_read, total)
            finally:
                writers.close()
        if not issues:
            duplicates, orphans = _check_partitions(tmp, n_partitions, _MAX_ISSUES)
            if duplicates or orphans:
                issues = _cross_row_issues(duplicates, orphans, leads_path, acts_path,
                                           batch_rows)
        if issues:
            raise DataValidationError(issues[:_MAX_ISSUES])
        staged = StagedInput(root, n_partitions, end, counts["leads"], counts["activities"],
                             unknown_types)
        _write_json_atomic(staged.to_dict(), tmp / "_meta.json")
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return staged


def _complete_partitions(plan: RunPlan) -> set[int]:
    done = set()
    for path in (plan.staging / "scores").glob("part-*.parquet"):
        done.add(int(path.stem.split("-")[1]))
    return done


@dataclass
class _Summary:
    grades: dict[str, int]
    by_source: dict[str, int]
    current: pa.Table  # lead_id and grade of every scored lead (Arrow: ~20 bytes a lead)

    @property
    def leads(self) -> int:
        return self.current.num_rows


def _summarise(scores_dir: Path, n_partitions: int, staged: StagedInput | None = None,
               as_of: pd.Timestamp | None = None) -> _Summary:
    """Grade and source counts, read one output partition at a time.

    With ``staged``, also proves each partition has exactly one row per open lead of
    its input partition (so a stale or foreign file can never be committed).
    """
    grades = dict.fromkeys(GRADES, 0)
    by_source: dict[str, int] = {}
    slim = []
    for p in range(n_partitions):
        table = pq.read_table(scores_dir / f"{_part_name(p)}.parquet",
                              columns=["lead_id", "grade", "scored_by", "fallback_reason"])
        if staged is not None:
            expected = _open_ids(staged.path / _part_name(p), as_of)
            got = table["lead_id"].combine_chunks()
            if (len(got) != len(expected)
                    or not pc.all(pc.is_in(got, value_set=expected.cast(got.type))).as_py()
                    or pc.count_distinct(got).as_py() != len(got)):
                raise LeadscoreError(
                    f"staged output {_part_name(p)} has {len(got)} rows for "
                    f"{len(expected)} open leads; remove {scores_dir.parent} and rerun"
                )
        for value, count in _value_counts(table["grade"]):
            grades[value] = grades.get(value, 0) + count
        pairs = table.group_by(["scored_by", "fallback_reason"]).aggregate(
            [("lead_id", "count")])
        for by, reason, count in zip(pairs["scored_by"].to_pylist(),
                                     pairs["fallback_reason"].to_pylist(),
                                     pairs["lead_id_count"].to_pylist(), strict=True):
            key = by if reason is None else f"{by} ({reason})"
            by_source[key] = by_source.get(key, 0) + count
        slim.append(table.select(["lead_id", "grade"]))
    current = (pa.concat_tables(slim) if slim
               else pa.table({"lead_id": pa.array([], pa.string()),
                              "grade": pa.array([], pa.string())}))
    return _Summary(grades, dict(sorted(by_source.items())), current)


def _value_counts(values: pa.ChunkedArray | pa.Array) -> list[tuple[str, int]]:
    counts = pc.value_counts(values)
    return list(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                    strict=True))


def _open_ids(part_dir: Path, as_of: pd.Timestamp | None) -> pa.Array:
    """Ids of the leads of a staged input partition that are open at ``as_of``."""
    table = pq.read_table(part_dir / "leads.parquet",
                          columns=["lead_id", *LEAD_TIMESTAMP_FIELDS])
    mask = open_leads(table.select(list(LEAD_TIMESTAMP_FIELDS)).to_pandas(), as_of)
    return table["lead_id"].combine_chunks().filter(pa.array(mask))


def _previous_grades(out: Path, run_id: str | None) -> pa.Table | None:
    if run_id is None:
        return None
    return pq.read_table(out / "runs" / run_id, columns=["lead_id", "grade"])


def _movements(previous: pa.Table | None, current: pa.Table) -> dict[str, int]:
    """:func:`grade_movements` on Arrow tables (a hash join; no Python object per lead)."""
    if previous is None:
        return {"up": 0, "down": 0, "same": 0, "new": int(current.num_rows), "gone": 0}
    grades = pa.array(GRADES)

    def ranked(table: pa.Table, name: str) -> pa.Table:
        return pa.table({"lead_id": table["lead_id"].cast(pa.string()),
                         name: pc.index_in(table["grade"].cast(pa.string()), value_set=grades)})

    both = ranked(current, "now").join(ranked(previous, "before"), "lead_id", join_type="inner")
    delta = pc.subtract(both["now"], both["before"])
    return {
        "up": int(pc.sum(pc.less(delta, 0)).as_py() or 0),
        "down": int(pc.sum(pc.greater(delta, 0)).as_py() or 0),
        "same": int(pc.sum(pc.equal(delta, 0)).as_py() or 0),
        "new": int(current.num_rows - both.num_rows),
        "gone": int(previous.num_rows - both.num_rows),
    }


def _known_data_end(out: Path, identity: Mapping[str, Any]) -> pd.Timestamp | None:
    """The data end of these exact input files, if a committed run here recorded it."""
    runs = out / "runs"
    if not runs.is_dir():
        return None
    for manifest in runs.glob("*/_manifest.json"):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            meta = json.loads(manifest.read_text())
            if all(meta.get(k) == v for k, v in identity.items()):
                end = meta["summary"]["input"]["data_end"]
                return None if end is None else pd.Timestamp(end)
    return None


def _swap_link(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` in one rename(2): readers see old or new, never none."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    if link.exists() and not link.is_symlink():
        raise LeadscoreError(
            f"{link} exists and is not a symlink made by 'leadscore rescore'; move it away "
            "and rerun (the run is staged and will be reused)"
        )
    os.replace(tmp, link)


def commit_run(out: Path, run_id: str, staged: Path, manifest: dict[str, Any],
               keep_runs: int) -> Path:
    """Commit a staged run's parts: the one commit of every rescore (built-in and spec).

    ``staged`` holds the run's ``part-*.parquet``. Its manifest and ``_SUCCESS`` are
    written, it is renamed to ``runs/<run_id>`` (a run already committed under that id,
    the same inputs, is kept: readers may hold it open), ``scores`` is swapped to it in
    one rename, the run is appended to ``history/`` (idempotent), and all but the
    ``keep_runs`` newest runs are pruned. Call it under :func:`_run_lock`. Returns the
    run's directory.
    """
    from serving.score_history import append_history

    run_dir = out / "runs" / run_id
    if not (run_dir / "_SUCCESS").is_file():
        _write_json_atomic({**manifest, "run_id": run_id}, staged / "_manifest.json")
        (staged / "_SUCCESS").write_text(run_id + "\n")
        run_dir.parent.mkdir(exist_ok=True)
        if run_dir.exists():  # a half-written leftover of no committed run
            shutil.rmtree(run_dir)
        os.replace(staged, run_dir)
    _swap_link(out / "scores", os.path.join("runs", run_id))
    append_history(out / "history", run_dir)
    # Keep the current run and the one before it (a reader may still hold it open).
    runs = sorted((p for p in (out / "runs").iterdir() if p.is_dir()),
                  key=lambda p: p.stat().st_mtime)
    for old in runs[:-keep_runs]:
        if old.name != run_id:
            shutil.rmtree(old, ignore_errors=True)
    return run_dir


def _commit(plan: RunPlan, summary: dict[str, Any], keep_runs: int,
            staged_input: Path | None) -> None:
    commit_run(plan.out, plan.run_id, plan.staging / "scores",
               {**plan.identity, "fingerprint": plan.fingerprint, "summary": summary}, keep_runs)
    shutil.rmtree(plan.staging, ignore_errors=True)
    if staged_input is not None:
        shutil.rmtree(staged_input, ignore_errors=True)


@contextlib.contextmanager
def dask_client(scheduler: str = "local", workers: int | None = None,
                processes: bool = True) -> Iterator[Any]:
    """A Client on a LocalCluster sized to the machine, or on ``tcp://host:port``.

    Local workers get one thread each (explanations are CPU-bound; LightGBM's OpenMP
    threads are pinned to 1 per worker so they do not fight over the cores).
    """
    from distributed import Client, LocalCluster

    if scheduler == "local":
        n = workers or os.cpu_count() or 1
        # Worker processes get OMP_NUM_THREADS=1 (distributed's nanny pre-spawn
        # environment does too; said here because throughput depends on it).
        extra = {"env": {"OMP_NUM_THREADS": "1"}} if processes else {}
        # dashboard_address=None still binds the scheduler's HTTP server (metrics) to
        # 8787 and warns when that is taken; a free loopback port never collides.
        cluster = LocalCluster(
            n_workers=n, threads_per_worker=1, processes=processes,
            dashboard_address="127.0.0.1:0", scheduler_port=0, silence_logs=logging.ERROR, **extra,
        )
        try:
            with Client(cluster) as client:
                yield client
        finally:
            cluster.close()
    elif scheduler.startswith("tcp://"):
        with Client(scheduler) as client:
            yield client
    else:
        raise LeadscoreError(f"--scheduler must be 'local' or tcp://host:port; got {scheduler!r}")


def rescore(
    data_dir: str | Path,
    out: str | Path,
    *,
    settings: Any,
    model_uri: str | None = None,
    as_of: pd.Timestamp | None = None,
    scheduler: str = "local",
    workers: int | None = None,
    n_partitions: int | None = None,
    top_reasons: int = 3,
    reasons_path: Literal["columnar", "core"] = "columnar",
    source: ModelSource | None = None,
    client: Any = None,
    progress: Callable[[int, int], None] | None = None,
    keep_runs: int = 2,
    batch_rows: int = _BATCH_ROWS,
    input_progress: Callable[[int, int], None] | None = None,
    engine: Literal["auto", "local", "dask"] = "auto",
    decay: bool = False,
) -> RescoreResult:
    """Score every open lead in ``data_dir`` and commit the result under ``out``.

    Parameters
    ----------
    data_dir : path
        Holds ``leads.parquet`` and ``activities.parquet`` (the data contract).
    out : path
        Output root: ``scores`` (symlink to the committed run), ``runs/``, ``history/``
        and ``.staging/``. Must be a file system every worker can read and write.
    settings : leadscore.settings.Settings
    model_uri : str, optional
        Default ``models:/<model_name>@<model_alias>`` (the champion), resolved once here.
    as_of : Timestamp, optional
        Default: the latest timestamp in the data.
    scheduler, workers : see :func:`dask_client`. Ignored when ``client`` is given.
    n_partitions : int, optional
        Default :func:`default_partitions` of the number of leads. Part of the run's
        identity.
    top_reasons : int, default 3
        As ``POST /score``'s ``top_reasons``.
    reasons_path : {"columnar", "core"}
        See :func:`score_partition_frame`.
    source : ModelSource, optional
        Overrides ``model_uri`` (tests pass an in-memory loader).
    client : distributed.Client, optional
        Use this client instead of creating one.
    progress : callable, optional
        ``progress(done, total)`` after each partition (the CLI draws a bar with it).
    keep_runs : int, default 2
        Committed runs kept under ``runs/`` (the current one and the one before).
    batch_rows : int, default 500,000
        Rows the client reads and validates at a time (see :func:`stage_inputs`).
    input_progress : callable, optional
        ``input_progress(rows_read, rows_total)`` while the input is validated and split.
    engine : {"auto", "local", "dask"}, default "auto"
        Where the partitions are scored; see :func:`choose_engine`. The output is the
        same either way (same staging, files, manifest, history and drift report), so a
        run interrupted on one engine resumes on the other.
    decay : bool, default False
        Also write where each lead's score goes if nothing new happens
        (:data:`serving.whatif.DECAY_COLUMNS`: probability and grade at +7, +14 and +30
        days, the date the grade first drops), as ``POST /score``'s ``decay``: each lead
        rescored 30 times (one per day) by what scored it. Part of the run's identity.

    Returns
    -------
    RescoreResult

    Raises
    ------
    DataValidationError
        The input breaks the data contract; nothing is committed and nothing of the
        run is left in ``out``.
    LeadscoreError
        The output location is unusable, another rescore holds it, or the model is
        unusable. The previous committed scores are left as they were.
    """
    from features.registry import FEATURE_SET_VERSION
    from rules_fallback import load_rules

    began = time.perf_counter()
    out = Path(out).expanduser().resolve()
    data_dir = Path(data_dir)
    if top_reasons < 0:
        raise ValueError(f"The 'top_reasons' parameter must be >= 0. Got {top_reasons}.")
    if batch_rows < 1:
        raise ValueError(f"The 'batch_rows' parameter must be >= 1. Got {batch_rows}.")
    for name in ("leads", "activities"):
        if not (data_dir / f"{name}.parquet").is_file():
            raise LeadscoreError(f"{data_dir / f'{name}.parquet'} not found; --data must hold "
                                 "leads.parquet and activities.parquet (see 'leadscore "
                                 "generate')")
    n_leads = pq.read_metadata(data_dir / "leads.parquet").num_rows
    n_parts = n_partitions or default_partitions(n_leads)
    where = choose_engine(engine, n_leads, settings, client=client, scheduler=scheduler)
    if source is None:
        source = ModelSource(resolve_model(settings, model_uri), settings)
    candidate = source.candidate
    inputs = {
        "schema_version": SCHEMA_VERSION,
        "leads_digest": _file_digest(data_dir / "leads.parquet"),
        "activities_digest": _file_digest(data_dir / "activities.parquet"),
        "n_partitions": n_parts,
    }
    input_dir = out / ".staging" / f"input-{fingerprint(inputs)[:16]}"
    model_label = (f"{candidate.name} v{candidate.version}" if candidate and candidate.version
                   else candidate.uri if candidate else "none (rules, fallback_reason no_model)")
    rules_version = str(load_rules(settings.rules_file).provenance)

    def plan_for(stamp: pd.Timestamp) -> RunPlan:
        identity = {
            **inputs,
            "as_of": stamp.isoformat(),
            "model_uri": candidate.uri if candidate else None,
            "model_version": candidate.version if candidate else None,
            "rules_version": rules_version,
            "cold_start_policy": settings.cold_start_policy,
            "feature_set_version": FEATURE_SET_VERSION,
            "top_reasons": top_reasons,
            **({"decay": True} if decay else {}),
        }
        fp = fingerprint(identity)
        return RunPlan(out, f"{stamp:%Y%m%dT%H%M%SZ}-{fp[:12]}", fp, stamp, n_parts,
                       top_reasons, reasons_path, identity, decay)

    def committed(plan: RunPlan) -> RescoreResult:
        # Same inputs, as_of and model as a committed run: finish its commit if it was
        # interrupted after the rename, and report it.
        manifest = json.loads((plan.run_dir / "_manifest.json").read_text())
        _commit(plan, manifest["summary"], keep_runs, input_dir)
        summary = _summarise(plan.run_dir, n_parts)
        return RescoreResult(plan.run_id, plan.as_of, plan.scores_link, summary.leads,
                             n_parts, n_parts, summary.grades, summary.by_source,
                             manifest["summary"]["movements"],
                             manifest["summary"].get("previous_run"), model_label,
                             time.perf_counter() - began, already_committed=True,
                             health=_read_health(plan.run_dir), engine=where)

    _prepare_out(out)
    engine_future: Future[Any] | None = None
    with _run_lock(out):
        try:
            # Input split by a run that was killed before it finished: never reused.
            for partial in (out / ".staging").glob("input-*.tmp-*"):
                shutil.rmtree(partial, ignore_errors=True)
            stamp = _utc(as_of) if as_of is not None else _known_data_end(out, inputs)
            plan = None if stamp is None else plan_for(stamp)
            if plan is not None and (plan.run_dir / "_SUCCESS").is_file():
                return committed(plan)
            if (input_dir / "_meta.json").is_file():
                staged = StagedInput.read(input_dir)
            else:
                if where == "local":
                    # Load and check the model on the second core while this one reads,
                    # validates and splits the input: on a small base the two take about
                    # as long as each other, and neither needs the other's result.
                    engine_future = _preload_engine(source)
                staged = stage_inputs(data_dir, input_dir, n_parts, batch_rows=batch_rows,
                                      progress=input_progress)
            if plan is None:
                if staged.data_end is None:
                    raise LeadscoreError(f"{data_dir} has no timestamps; pass --as-of")
                plan = plan_for(_utc(staged.data_end))
                if (plan.run_dir / "_SUCCESS").is_file():
                    return committed(plan)
            previous = _current_run(out)
            manifest_path = plan.staging / "_manifest.json"
            if manifest_path.is_file():
                manifest = json.loads(manifest_path.read_text())
                if manifest.get("fingerprint") != plan.fingerprint:
                    raise LeadscoreError(f"{plan.staging} belongs to another run; remove it")
                scored_at = pd.Timestamp(manifest["scored_at"])
            else:
                (plan.staging / "scores").mkdir(parents=True, exist_ok=True)
                scored_at = pd.Timestamp.now(tz="UTC").floor("us")
                _write_json_atomic({**plan.identity, "fingerprint": plan.fingerprint,
                                    "run_id": plan.run_id, "scored_at": scored_at.isoformat()},
                                   manifest_path)
            done = _complete_partitions(plan)
            todo = [p for p in range(n_parts) if p not in done]
            if progress:
                progress(len(done), n_parts)
            if todo and where == "local":
                _run_partitions_here(plan, staged.path, source, todo, scored_at, progress,
                                     len(done), engine_future)
            elif todo:
                _run_partitions(plan, staged.path, source, todo, scored_at, client, scheduler,
                                workers, progress, len(done))
            summary = _summarise(plan.staging / "scores", n_parts, staged, plan.as_of)
            health = _health(plan, n_parts, settings.psi_warn, settings.psi_alert)
            if health is not None:
                _write_json_atomic(health, plan.staging / "scores" / "_health.json")
            movements = _movements(_previous_grades(out, previous), summary.current)
            record = {"grades": summary.grades, "by_source": summary.by_source,
                      "movements": movements, "previous_run": previous,
                      "leads_scored": summary.leads, "input": staged.to_dict()}
            _commit(plan, record, keep_runs, input_dir)
        except OSError as exc:
            raise LeadscoreError(_os_problem(exc, out, "write the rescore output")) from exc
    return RescoreResult(plan.run_id, plan.as_of, plan.scores_link, summary.leads, n_parts,
                         len(done), summary.grades, summary.by_source, movements, previous,
                         model_label, time.perf_counter() - began, health=health,
                         engine=where)


def choose_engine(engine: str, n_leads: int, settings: Any, *, client: Any = None,
                  scheduler: str = "local") -> Literal["local", "dask"]:
    """``local`` (score in this process) or ``dask``, for a base of ``n_leads`` leads.

    ``auto`` scores in process when nothing asks for a cluster (no ``client``, the
    ``local`` scheduler) and the base has at most ``settings.rescore_local_max_leads``
    leads: below that a LocalCluster's start-up (worker processes, each loading the
    model) costs more than its second core gains. ``local`` and ``dask`` force one.

    Raises
    ------
    ValueError
        ``engine`` is not one of the three, or ``local`` was asked for together with a
        cluster (``client`` or a ``tcp://`` scheduler).
    """
    if engine not in ("auto", "local", "dask"):
        raise ValueError(f"The 'engine' parameter of rescore must be 'auto', 'local' or "
                         f"'dask'. Got {engine!r} instead.")
    cluster = client is not None or scheduler != "local"
    if engine == "local" and cluster:
        raise ValueError("The 'engine' parameter of rescore is 'local' but a cluster was "
                         f"given ({'a client' if client is not None else scheduler}); use "
                         "'dask' or 'auto' with a cluster, or drop the cluster")
    if engine != "auto":
        return engine  # type: ignore[return-value]
    if cluster:
        return "dask"
    return "local" if n_leads <= settings.rescore_local_max_leads else "dask"


def _preload_engine(source: ModelSource) -> Future[Any]:
    """:func:`build_engine` started in a thread of its own; its errors come out of
    ``result()``, where :func:`_run_partitions_here` asks for the engine."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leadscore-engine")
    try:
        return pool.submit(build_engine, source)
    finally:
        pool.shutdown(wait=False)


def _run_partitions_here(plan: RunPlan, input_dir: Path, source: ModelSource,
                         todo: Sequence[int], scored_at: pd.Timestamp,
                         progress: Callable[[int, int], None] | None, already: int,
                         engine_future: Future[Any] | None = None) -> None:
    """Score ``todo`` one partition after another in this process, with one engine.

    The same :func:`_score_partition` a Dask worker runs, on an engine built by the same
    :func:`build_engine` its plugin calls (already under way in ``engine_future`` when
    the input was split by this run); an error stops the run at once, and every
    partition already written is complete and reused by the next run.
    """
    try:
        engine = engine_future.result() if engine_future is not None else build_engine(source)
    except LeadscoreError:
        raise
    except Exception as exc:
        raise LeadscoreError(f"could not load the model: {type(exc).__name__}: {exc}") from exc
    finished = already
    for p in todo:
        _score_partition(p, str(input_dir), str(plan.staging), engine, plan.as_of.isoformat(),
                         plan.top_reasons, scored_at.isoformat(), plan.run_id,
                         plan.reasons_path, plan.decay)
        finished += 1
        if progress:
            progress(finished, plan.n_partitions)


def _read_health(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / "_health.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _health(plan: RunPlan, n_parts: int, warn: float = 0.10,
            alert: float = 0.25) -> dict[str, Any] | None:
    """Merge the partitions' drift counts into the run's health report."""
    from features.drift import Reference

    shipped = plan.staging / "drift" / "reference.json"
    if not shipped.is_file():  # no model, or one that ships no reference
        return None
    written = json.loads(shipped.read_text())
    reference, labels = written["reference"], written["labels"]
    totals: dict[str, np.ndarray] = {}
    for part in range(n_parts):
        path = plan.staging / "drift" / f"{_part_name(part)}.json"
        if not path.is_file():  # scored by a version that kept no counts: not measured
            continue
        for name, counts in json.loads(path.read_text()).items():
            totals[name] = totals.get(name, 0) + np.asarray(counts)
    return {"run_id": plan.run_id, "as_of": plan.as_of.isoformat(),
            "model": plan.identity.get("model", ""),
            "scope": "leads scored by the model (rules answers are not in it)",
            **Reference.from_dict(reference).report(totals, labels=labels, warn=warn,
                                                    alert=alert),
            "estimate": run_estimate(_model_probabilities(plan.staging / "scores", n_parts))}


def run_estimate(probability: np.ndarray) -> dict[str, Any]:
    """A run's label-free estimate (CBPE) of its model-scored leads, for ``_health.json``."""
    from training.evaluate import expected_performance

    # null, not NaN, for a run that cannot have one (no model-scored lead): strict JSON.
    return {**{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in expected_performance(probability).items()},
            "scope": "leads scored by the model (rules answers are not in it)"}


def _model_probabilities(scores_dir: Path, n_parts: int) -> np.ndarray:
    """The model-scored leads' probabilities of a staged run, one part file at a time
    (8 bytes a lead: the client keeps 20 for the grade movements already)."""
    pieces = []
    for part in range(n_parts):
        path = scores_dir / f"{_part_name(part)}.parquet"
        if not path.is_file():
            continue
        table = pq.read_table(path, columns=["probability", "scored_by"])
        table = table.filter(pc.equal(table["scored_by"], "model"))
        pieces.append(table["probability"].to_numpy(zero_copy_only=False))
    return np.concatenate(pieces) if pieces else np.empty(0)


def _utc(stamp: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(stamp)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _run_partitions(plan: RunPlan, input_dir: Path, source: ModelSource, todo: Sequence[int],
                    scored_at: pd.Timestamp, client: Any, scheduler: str,
                    workers: int | None, progress: Callable[[int, int], None] | None,
                    already: int) -> None:
    from distributed import as_completed

    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(dask_client(scheduler, workers))
        plugin = EnginePlugin(source)
        try:
            client.register_plugin(plugin)
        except LeadscoreError:
            raise
        except Exception as exc:
            raise LeadscoreError(f"workers could not load the model: {type(exc).__name__}: "
                                 f"{exc}") from exc
        # Unregistered at the end so a shared cluster does not keep the model in memory.
        stack.callback(_unregister, client, plugin.name)
        futures = [
            client.submit(_score_partition_task, p, str(input_dir), str(plan.staging),
                          plugin.name,
                          plan.as_of.isoformat(), plan.top_reasons, scored_at.isoformat(),
                          plan.run_id, plan.reasons_path, plan.decay,
                          key=f"rescore-{plan.run_id}-{p}",
                          pure=False)
            for p in todo
        ]
        finished = already
        failure: OSError | None = None
        for future in as_completed(futures):
            try:
                future.result()
            except OSError as exc:
                # Not cancelled: a cancelled future that is already running on a worker
                # reports done at once yet goes on writing. Drain instead (on a full
                # disk the rest fail fast) and raise once nothing of this run is still
                # writing; every partition that did finish is complete (temp file +
                # rename) and the next run reuses it.
                failure = failure or exc
                continue
            finished += 1
            if progress:
                progress(finished, plan.n_partitions)
        if failure is not None:
            # Release the (now finished) tasks: their keys are the run's own, and a rerun
            # would otherwise be handed these cached errors instead of running again.
            client.cancel(futures)
            del futures
            raise failure


def _unregister(client: Any, name: str) -> None:
    with contextlib.suppress(Exception):  # the cluster may be going away with us
        client.unregister_worker_plugin(name)
