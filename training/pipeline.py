"""End to end: training frame -> audited, split, fitted, evaluated, logged, registered.

The pipeline is generic over the feature schema: :class:`FeatureSchema` says which
columns are features and which of them are categorical. For our CRM data model it
comes from :mod:`features.registry` (:func:`training_data_from_dir`); for a user's
export it comes from the dataset spec (:func:`training_data_from_spec`).

Order of work in :func:`train`:

1. minimum data (:func:`training.split.check_min_data`);
2. split: by time with purge gaps (snapshot sets), by ``created_at`` for specs with a
   timestamp, else stratified random 60/20/20 (:mod:`training.split`);
3. leakage audit on the training rows (:mod:`training.leakage`); flagged columns are
   dropped unless allowed;
4. fit booster (locally or on Dask), calibrator and grades (:class:`LeadModel`): small
   data is cross-fitted on train + validation (:mod:`training.crossfit`,
   :func:`fit_model`; lead-grouped folds when the split is by time), the rest
   early-stops and calibrates on the validation window;
5. evaluate on the test rows (:mod:`training.evaluate`), including the oracle AUC when
   ground truth exists and the rules fallback's AUC when activities exist;
6. one MLflow run: params, tags, metrics, plots, tables, the test frame (for the
   promotion gate) and the model, logged once and registered;
7. optionally the promotion gate (:mod:`training.promote`).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.drift import Reference
from features.errors import InsufficientDataError
from training.crossfit import CROSSFIT_MODES
from training.evaluate import (
    classification_metrics,
    decile_table,
    metric_key,
    plot_calibration,
    plot_gains,
    plot_importance,
    plot_lift,
    plot_shap_summary,
    safe_auc,
    segment_auc,
)
from training.leakage import LEAK_THRESHOLD, LeakageReport, audit_leakage
from training.model import LeadModel
from training.split import MIN_PER_CLASS, Split, check_min_data, random_split, time_split

if TYPE_CHECKING:
    from leadscore.settings import Settings
    from training.promote import PromotionDecision
    from training.tune import TuneBudget

__all__ = [
    "FeatureSchema",
    "TrainingData",
    "TrainOptions",
    "TrainResult",
    "train",
    "training_data_from_dir",
    "training_data_from_spec",
    "label_within_horizon",
    "dataset_fingerprint",
    "resolve_allowed",
    "TEST_FRAME_ARTIFACT",
]

TEST_FRAME_ARTIFACT = "evaluation/test_frame.parquet"
"""Where each run keeps its test rows, so promotion can re-score a champion on them."""

SEGMENT_COLUMNS = ("source", "industry")
SHAP_SAMPLE = 2000


@dataclass(frozen=True)
class FeatureSchema:
    """Which columns of a training frame are features, and how to treat them."""

    names: tuple[str, ...]
    categorical: tuple[str, ...]
    version: str
    field_labels: dict[str, str] = field(default_factory=dict)
    declared_leaky: tuple[str, ...] = ()
    trusted: tuple[str, ...] = ()
    """Features the spec marks ``trusted``: the leakage audit reports but keeps them."""
    segments: tuple[str, ...] = SEGMENT_COLUMNS
    feature_set: dict[str, Any] = field(default_factory=dict)
    """The feature set's definition (``FeatureSet.to_json()``), shipped with the model."""


@dataclass
class TrainingData:
    """A training frame and what is known about where it came from.

    ``frame`` holds ``lead_id``, the time column (if any), ``label`` and every column
    of ``schema.names``. ``leads``/``activities`` (validated) enable the rules
    comparison and the cold-start analysis; ``truth`` (lead_id, as_of, p_convert)
    enables the oracle AUC on synthetic data.
    """

    frame: pd.DataFrame
    schema: FeatureSchema
    time_column: str | None = "as_of"
    purge_gap: pd.Timedelta = pd.Timedelta(0)
    leads: pd.DataFrame | None = None
    activities: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    """Files logged with the run, by artifact path: dicts as JSON, strings as text."""
    known_at_column: str | None = None
    """A frame column giving when each row's label became known; the time split then
    purges by it instead of by a whole horizon (:func:`training.split.time_split`)."""
    rules_baseline: Any = None
    """The rules the model is compared with on leads with no history (the cold-start
    analysis): an object with ``activities`` and ``fit(train_rows)``, returning one with
    ``probability(rows)``, ``document`` (rules YAML to ship with the model, or "") and
    ``description``. None: the packaged default rules on ``leads``/``activities``, when
    both are given. A spec's are its starter rules, fitted on the training window
    (:class:`training.from_spec.SpecRulesBaseline`)."""


@dataclass(frozen=True)
class _DefaultRules:
    """The packaged default rules as the cold-start baseline of the built-in data."""

    leads: pd.DataFrame
    activities: pd.DataFrame
    document: str = ""
    description: str = "the packaged default rules"

    def fit(self, train_rows: pd.DataFrame) -> _DefaultRules:
        return self  # fixed points: nothing to learn

    def probability(self, rows: pd.DataFrame) -> np.ndarray:
        return _rules_probability(self.leads, self.activities, rows)


@dataclass(frozen=True)
class TrainOptions:
    """What ``leadscore train`` lets a user choose."""

    experiment: str = "lead-scoring"
    run_name: str | None = None
    source_name: str = "training.pipeline.train"
    """What the MLflow run's Source shows (tag ``mlflow.source.name``); the CLI passes
    ``leadscore train``. Left to MLflow it is the interpreter's ``argv[0]``, e.g. ``-c``."""
    allow_leaky: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    """Schema columns to leave out of the model (ablations, a fit-only challenger). They
    stay in the logged test frame, so champions that use them can still be compared."""
    leak_threshold: float = LEAK_THRESHOLD
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 1000
    early_stopping_rounds: int = 150
    valid_frac: float = 0.2
    test_frac: float = 0.2
    valid_from: pd.Timestamp | None = None
    """Where validation starts (a time split), instead of the share ``valid_frac``."""
    test_from: pd.Timestamp | None = None
    """Where the test window starts (a time split), instead of the share ``test_frac``."""
    random_state: int = 0
    scheduler: str | None = None
    promote: bool = False
    promotion_why: str | None = None
    """Why the alias moves, recorded in its history when the gate promotes (default: the
    gate's reason)."""
    register: bool = True
    min_per_class: int = MIN_PER_CLASS
    max_test_rows_logged: int = 500_000
    crossfit: str = "auto"
    """``auto`` cross-fits small data (:mod:`training.crossfit`); ``always`` any data;
    ``forward`` any data, on forward-chaining folds when the split is by time; ``never``
    trains on one window (early stopping and calibration on validation)."""
    cv_folds: int = 5
    crossfit_refit: str = "single"
    """Cross-fitted model: ``single`` refits one booster on train + validation, ``bag``
    averages the fold boosters (:meth:`LeadModel.fit_crossfit`; bagging measured 0.0007
    below the single refit on X Education, so it is opt-in)."""
    tune: TuneBudget | None = None
    """Search :data:`training.tune.SEARCH_SPACE` within this budget before fitting."""

    def __post_init__(self) -> None:
        if self.crossfit not in CROSSFIT_MODES:
            raise ValueError("The 'crossfit' parameter of TrainOptions must be one of "
                             f"{', '.join(repr(m) for m in CROSSFIT_MODES)}. "
                             f"Got {self.crossfit!r} instead.")
        if self.crossfit_refit not in ("single", "bag"):
            raise ValueError("The 'crossfit_refit' parameter of TrainOptions must be 'single' "
                             f"or 'bag'. Got {self.crossfit_refit!r} instead.")
        if self.cv_folds < 2:
            raise ValueError("The 'cv_folds' parameter of TrainOptions must be 2 or more. "
                             f"Got {self.cv_folds!r} instead.")


@dataclass
class TrainResult:
    run_id: str
    model: LeadModel
    metrics: dict[str, float]
    split: Split
    leakage: LeakageReport
    model_version: str | None = None
    model_uri: str | None = None
    promotion: PromotionDecision | None = None
    train_seconds: float = 0.0
    calibration_rows: np.ndarray | None = None
    """Frame positions of the rows the calibrator was fitted on (never a test row)."""


def dataset_fingerprint(frame: pd.DataFrame) -> str:
    """Content hash of a frame (values and column names), 16 hex characters."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------- loading


def training_data_from_dir(
    path: str | Path,
    *,
    every: pd.Timedelta | None = None,
    horizon: pd.Timedelta | None = None,
    assume_utc: bool = False,
) -> TrainingData:
    """Read ``leads.parquet``/``activities.parquet`` (and ``truth.parquet`` if present).

    The folder is read through the built-in contract's dataset spec
    (``features/specs/builtin.yaml``), by the same code as any user's spec
    (:func:`training.from_spec.history_training_data`).
    """
    from features.spec import load_spec
    from features.spec.contract import builtin_spec_path, load_contract_tables
    from training.from_spec import history_training_data

    path = Path(path)
    files = {name: path / f"{name}.parquet" for name in ("leads", "activities", "truth")}
    for name in ("leads", "activities"):
        if not files[name].is_file():
            raise InsufficientDataError(
                f"--data {path}: {files[name].name} not found; expected leads.parquet and "
                "activities.parquet (as written by 'leadscore generate')."
            )
    spec_path = builtin_spec_path()
    tables = load_contract_tables(load_spec(spec_path), path.resolve(), assume_utc=assume_utc)
    data = history_training_data(tables, spec_path, every=every, horizon=horizon)
    data.leads, data.activities = tables.leads, tables.activities
    data.truth = pd.read_parquet(files["truth"]) if files["truth"].is_file() else None
    data.info.update(kind="crm", source=str(path.resolve()))
    return data


def label_within_horizon(
    created_at: pd.Series, converted_at: pd.Series, horizon: pd.Timedelta
) -> tuple[np.ndarray, np.ndarray, pd.Timestamp]:
    """Label "converted within ``horizon`` after created_at", and which leads to keep.

    Returns ``(label, keep, data_end)``. A lead converted at ``created_at + horizon`` or
    earlier is a 1. One not converted by then is a 0 if the data reach that far;
    ``data_end``, the latest ``created_at`` or ``converted_at`` in the data, is how far
    they reach. A lead whose window ends after it and that has not converted is
    censored (its 0 would only mean "not converted *yet*"): ``keep`` is False for it.
    """
    created = pd.to_datetime(created_at, utc=True).reset_index(drop=True)
    converted = pd.to_datetime(converted_at, utc=True).reset_index(drop=True)
    data_end = max(created.max(), converted.max()) if converted.notna().any() else created.max()
    window_end = created + horizon
    within = (converted.notna() & (converted <= window_end)).to_numpy(bool)
    censored = ~within & (window_end > data_end).to_numpy(bool)
    return within.astype(np.int64), ~censored, pd.Timestamp(data_end)


def training_data_from_spec(
    spec_path: str | Path, data_path: str | Path | None = None, *,
    horizon: pd.Timedelta | None = None,
) -> TrainingData:
    """Load a user's export through its dataset spec; leaky columns ride along for the audit.

    With ``created_at`` and ``converted_at`` in the spec, the label is "converted within
    ``horizon`` (default 90 days) after created_at", the purge gap between the time
    split's parts is the horizon, and leads the data's end censors are dropped (counted
    in ``info["n_censored"]``; see :func:`label_within_horizon`). A spec whose outcome
    is a label column, or that has no ``created_at``, has no horizon to apply: asking
    for one is a ``ValueError``.
    """
    from features.grid import DEFAULT_HORIZON
    from features.spec import DatasetSpec, load_dataset, load_spec, trusted_feature_names
    from features.spec.feature_set import feature_set_of

    spec = load_spec(spec_path)
    columns = spec.columns if isinstance(spec, DatasetSpec) else spec.tables.leads.columns
    timed_outcome = columns.converted_at is not None and spec.has_time
    if horizon is not None and not timed_outcome:
        outcome = ("a label column" if columns.label is not None
                   else "converted_at without created_at")
        raise ValueError(
            f"A horizon ({horizon}) needs a spec with both created_at and converted_at; "
            f"{spec.origin} gives {outcome}, so its label cannot be restricted to a horizon. "
            "Leave the horizon out, or map both columns in the spec."
        )
    ds = load_dataset(spec, data_path)
    leaky = [c for c in ds.leaky_frame.columns if c != "lead_id"]
    frame = pd.concat(
        [ds.frame.reset_index(drop=True), ds.leaky_frame[leaky].reset_index(drop=True)], axis=1
    )
    leaky_categorical = [
        c for c in leaky if not pd.api.types.is_numeric_dtype(ds.leaky_frame[c].dtype)
    ]
    for c in leaky_categorical:
        frame[c] = frame[c].astype("string")
    info: dict[str, Any] = {}
    purge_gap = pd.Timedelta(0)
    if timed_outcome:
        assert ds.converted_at is not None  # the spec maps converted_at
        purge_gap = pd.Timedelta(horizon) if horizon is not None else DEFAULT_HORIZON
        label, keep, data_end = label_within_horizon(frame["created_at"], ds.converted_at,
                                                     purge_gap)
        frame["label"] = label
        frame = frame[keep].reset_index(drop=True)
        info = {"horizon": str(purge_gap), "n_censored": int((~keep).sum()),
                "data_end": data_end.isoformat(),
                "label_definition": f"converted within {purge_gap} after created_at"}
    names = (*ds.features, *leaky)
    # One row per lead: the features are the spec's columns as loaded, which is what
    # the spec's feature set of fit columns alone computes from the same values.
    feature_set = feature_set_of(spec)
    if feature_set.feature_names() != list(ds.features):
        raise ValueError(f"{spec.origin}: the spec's feature set {feature_set.feature_names()} "
                         f"does not match the columns loaded {list(ds.features)}")
    schema = FeatureSchema(
        names=tuple(names),
        categorical=(*ds.categorical, *leaky_categorical),
        version=feature_set.version,
        field_labels=dict(ds.labels),
        declared_leaky=tuple(ds.leaky),
        trusted=trusted_feature_names(spec),
        feature_set=feature_set.to_json(),
    )
    return TrainingData(
        frame=frame, schema=schema,
        time_column="created_at" if ds.has_time else None,
        purge_gap=purge_gap,
        info={"kind": "spec", "source": str(ds.source), "spec": str(Path(spec_path).resolve()),
              "spec_name": ds.spec.name, "fingerprint": ds.fingerprint,
              "original_names": dict(ds.original_names), "n_rows_loaded": len(ds.frame),
              **info},
        artifacts={
            "dataset/feature_set.json": feature_set.to_json(),
            f"dataset/{Path(spec_path).name}": Path(spec_path).read_text(encoding="utf-8"),
        },
    )


# --------------------------------------------------------------------- helpers


def resolve_allowed(allow: Sequence[str], data: TrainingData) -> tuple[str, ...]:
    """Map ``--allow-leaky`` names (safe or original column names) to frame columns."""
    original = data.info.get("original_names", {})
    by_original = {orig: safe for safe, orig in original.items()}
    out = []
    for name in allow:
        resolved = name if name in data.schema.names else by_original.get(name)
        if resolved is None:
            raise ValueError(
                f"--allow-leaky {name!r} names no feature column; expected one of "
                f"{sorted(data.schema.names)[:20]}"
            )
        out.append(resolved)
    return tuple(out)


def _no_activity_mask(activities: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """True where the lead had no activity strictly before the row's ``as_of``."""
    first = activities.groupby("lead_id", observed=True)["occurred_at"].min()
    first_at = rows["lead_id"].map(first)
    as_of = pd.to_datetime(rows["as_of"], utc=True)
    return (first_at.isna() | (pd.to_datetime(first_at, utc=True) >= as_of)).to_numpy()


def _rules_probability(
    leads: pd.DataFrame, activities: pd.DataFrame, rows: pd.DataFrame
) -> np.ndarray:
    """The default rules' probability for each (lead_id, as_of) row."""
    from rules_fallback import load_rules, score_leads

    lead_rows = leads.set_index("lead_id").loc[rows["lead_id"].to_numpy()].reset_index()
    scored = score_leads(load_rules(None), lead_rows, activities,
                         pd.Series(rows["as_of"].to_numpy()), reasons=False)
    return scored["probability"].to_numpy(dtype=float)


def _fit(model: LeadModel, X_train, y_train, X_valid, y_valid, scheduler: str | None):
    if scheduler:
        from training.distributed import train_booster_dask

        model.fit_vocabulary(X_train)
        booster = train_booster_dask(model, X_train, y_train, X_valid, y_valid, scheduler)
        return model.fit(X_train, y_train, X_valid, y_valid, booster=booster)
    return model.fit(X_train, y_train, X_valid, y_valid)


def fit_model(data: TrainingData, frame: pd.DataFrame, split: Split, features: list[str],
              categorical: list[str], options: TrainOptions) -> tuple[LeadModel, np.ndarray]:
    """Step 4: the fitted model, and the frame positions its calibrator was fitted on.

    Small data (:func:`training.crossfit.is_small`, unless ``options.crossfit`` says
    otherwise) is cross-fitted on train + validation (:meth:`LeadModel.fit_crossfit`);
    larger data trains on train and early-stops and calibrates on validation, as
    before. Neither path reads a test row: ``split.test`` is not used here.
    """
    from training.crossfit import crossfit_folds, is_small

    y = frame["label"].to_numpy(dtype=int)
    model = LeadModel(
        features, categorical, data.schema.version, params=options.params,
        num_boost_round=options.num_boost_round,
        early_stopping_rounds=options.early_stopping_rounds,
        random_state=options.random_state,
    )
    pool = np.sort(np.concatenate([split.train, split.valid]))
    # auto: all small data. A time split's pool is cross-fitted on lead-grouped folds:
    # on OULAD (train on one cohort, validate on a second, test on the second's next
    # year) one window trained on the first cohort alone and stopped at 5 rounds, test
    # AUC 0.652; grouped folds over both cohorts reached 0.682-0.689 over three seeds
    # (a default LGBMClassifier on the same rows: 0.659). Forward-chaining folds
    # ('forward') chose 4 rounds on a 5,000-row CRM of tests/training/test_from_spec.py
    # (test AUC 0.64 against 0.92 on one window), and a two-cohort split has one.
    wanted = {"never": False, "auto": is_small(len(pool), int(y[split.valid].sum()))}.get(
        options.crossfit, True)
    folds = None
    pool_rows = frame.iloc[pool]
    if wanted and options.scheduler is not None:
        model.crossfit_skipped_ = ("training on Dask fits one window: cross-fitting runs "
                                   "in process only")
    if wanted and options.scheduler is None:
        timed = data.time_column is not None and split.kind == "time"
        forward = timed and options.crossfit == "forward"
        folds = crossfit_folds(
            y[pool],
            time=pool_rows[data.time_column] if forward else None,
            groups=(pool_rows["lead_id"].to_numpy()
                    if timed and not forward and "lead_id" in pool_rows else None),
            horizon=data.purge_gap,
            known_at=(pool_rows[data.known_at_column]
                      if forward and data.known_at_column else None),
            n_splits=options.cv_folds, random_state=options.random_state,
        )
        if not folds.usable:
            # Too little time to chain folds (e.g. a cohort split with few dates), or
            # folds that all fit on the same rows: say so in the run and train the
            # one-window way. On the 5,000-row CRM of tests/training/test_from_spec.py the
            # three forward folds all fitted on the training window (the purge keeps the
            # validation rows out of every fit); refitted on train + validation at the 4
            # rounds their mean curve chose, the model ranked the test window at 0.64
            # against 0.92 for one window.
            model.crossfit_skipped_ = (
                f"only {len(folds.folds)} usable {folds.kind} fold(s) in train + validation"
                if len(folds.folds) < 2 else
                f"the {len(folds.folds)} {folds.kind} folds all fit on the same "
                f"{len(folds.folds[0].fit)} rows: one window repeated, not a "
                "cross-validation")
            folds = None
    X_train, X_valid = frame.iloc[split.train][features], frame.iloc[split.valid][features]
    if options.tune is not None:
        from training.model import DEFAULT_PARAMS
        from training.tune import tune

        # The same held-out figure the fit below chooses its rounds by: the folds, or
        # the validation window. Never the test window.
        objective, name = (
            model.search_objective(pool_rows[features], y[pool], folds=folds)
            if folds is not None
            else model.search_objective(X_train, y[split.train], X_valid=X_valid,
                                        y_valid=y[split.valid]))
        model.tuning_ = tune(objective, options.tune,
                             defaults={**DEFAULT_PARAMS, **options.params},
                             objective_name=name, random_state=options.random_state,
                             round_cap=model.num_boost_round,
                             patience=model.early_stopping_rounds)
        model.params = {**model.params, **model.tuning_.best_params}
    if folds is not None:
        model.fit_crossfit(pool_rows[features], y[pool], folds, refit=options.crossfit_refit)
        held = model.crossfit_.pop("calibration_rows")
        return model, pool[held]
    _fit(model, X_train, y[split.train], X_valid, y[split.valid], options.scheduler)
    return model, split.valid


# ----------------------------------------------------------------------- train


def train(data: TrainingData, settings: Settings, options: TrainOptions | None = None) -> TrainResult:
    """Train, evaluate, log and register one model; promote it if asked."""
    options = options or TrainOptions()
    frame = data.frame.reset_index(drop=True)
    schema = data.schema
    y = frame["label"].to_numpy(dtype=int)
    check_min_data(y, options.min_per_class)

    # 2. split
    if data.time_column is not None:
        known_at = frame[data.known_at_column] if data.known_at_column else None
        split = time_split(frame[data.time_column], y, horizon=data.purge_gap, known_at=known_at,
                           valid_frac=options.valid_frac, test_frac=options.test_frac,
                           valid_from=options.valid_from or data.info.get("valid_from"),
                           test_from=options.test_from or data.info.get("test_from"))
    else:
        split = random_split(y, valid_frac=options.valid_frac, test_frac=options.test_frac,
                             random_state=options.random_state)
    train_rows, valid_rows, test_rows = (frame.iloc[split.train], frame.iloc[split.valid],
                                         frame.iloc[split.test])

    # 3. leakage audit, on training rows only: the audit must not peek at the test window.
    allow = resolve_allowed(options.allow_leaky, data)
    # Snapshot sets hold several rows per lead: keep a lead's rows in one fold of the
    # audit's quick models (one row per lead otherwise, where lead_id is no group).
    groups = (train_rows["lead_id"].to_numpy()
              if "lead_id" in train_rows and train_rows["lead_id"].duplicated().any() else None)
    leakage = audit_leakage(
        train_rows[list(schema.names)], y[split.train], schema.categorical,
        declared_leaky=schema.declared_leaky, allow=allow, trusted=schema.trusted,
        threshold=options.leak_threshold, groups=groups, random_state=options.random_state,
    )
    dropped = set(leakage.excluded) | set(options.exclude)
    features = [n for n in schema.names if n not in dropped]
    if not features:
        raise InsufficientDataError("The leakage audit excluded every feature; nothing to train on.")
    categorical = [n for n in schema.categorical if n in features]

    # 4. fit
    started = time.perf_counter()
    model, calibration_rows = fit_model(data, frame, split, features, categorical, options)
    train_seconds = time.perf_counter() - started

    # 5. evaluate
    y_test = y[split.test]
    X_test = test_rows[features]
    prob = model.predict_proba(X_test)
    metrics = classification_metrics(y_test, prob)
    crossfit = getattr(model, "crossfit_", None)
    if crossfit:
        # The validation rows are in the cross-fit pool: their honest figure is the
        # out-of-fold one, not the final booster's (which trained on them).
        metrics["valid_roc_auc"] = crossfit["oof_roc_auc"]
        metrics["cv_oof_roc_auc"] = crossfit["oof_roc_auc"]
        metrics["cv_auc_mean"] = crossfit["cv_auc_mean"]
        metrics["cv_auc_std"] = crossfit["cv_auc_std"]
    else:
        metrics["valid_roc_auc"] = safe_auc(y[split.valid],
                                            model.predict_proba(valid_rows[features]))
    metrics["train_seconds"] = train_seconds
    metrics["best_iteration"] = float(model.best_iteration_)
    for name, brier in model.calibration_brier_.items():
        metrics[f"calibration_cv_brier_{name}"] = brier
    segments = segment_auc(y_test, prob, test_rows[[c for c in schema.segments if c in frame]])
    for row in segments.itertuples():
        if not np.isnan(row.roc_auc):
            metrics[metric_key("segment_auc", row.segment, row.value)] = float(row.roc_auc)

    if data.truth is not None and data.time_column == "as_of":
        truth = data.truth.assign(
            as_of=pd.to_datetime(data.truth["as_of"], utc=True)
        ).drop_duplicates(["lead_id", "as_of"])
        joined = test_rows[["lead_id", "as_of"]].assign(
            lead_id=test_rows["lead_id"].astype(str), as_of=pd.to_datetime(test_rows["as_of"], utc=True)
        ).merge(truth.assign(lead_id=truth["lead_id"].astype(str)), on=["lead_id", "as_of"],
                how="left")
        matched = joined["p_convert"].notna().to_numpy()
        metrics["oracle_matched_share"] = float(matched.mean())
        if matched.any():
            oracle_p = joined["p_convert"].to_numpy(dtype=float)[matched]
            metrics["oracle_roc_auc"] = safe_auc(y_test[matched], oracle_p)
            metrics["oracle_gap"] = metrics["oracle_roc_auc"] - safe_auc(y_test[matched], prob[matched])
            metrics["oracle_ece"] = classification_metrics(y_test[matched], oracle_p)["ece"]

    cold_start: dict[str, Any] = {"preferred": "model"}
    baseline = data.rules_baseline
    if baseline is None and data.leads is not None and data.activities is not None:
        baseline = _DefaultRules(data.leads, data.activities)
    if baseline is not None and data.time_column == "as_of":
        # Fitted on the training rows only: the comparison on the test window is honest.
        fitted = baseline.fit(train_rows)
        rules_p = fitted.probability(test_rows)
        metrics["rules_roc_auc"] = safe_auc(y_test, rules_p)
        metrics["rules_ece"] = classification_metrics(y_test, rules_p)["ece"]
        quiet = _no_activity_mask(baseline.activities, test_rows)
        model_auc = safe_auc(y_test[quiet], prob[quiet])
        rules_auc = safe_auc(y_test[quiet], rules_p[quiet])
        # cold_start.json is JSON: an AUC that cannot be computed is null, not NaN.
        cold_start = {
            "n": int(quiet.sum()),
            "n_converted": int(y_test[quiet].sum()),
            "model_auc": None if np.isnan(model_auc) else float(model_auc),
            "rules_auc": None if np.isnan(rules_auc) else float(rules_auc),
        }
        if np.isnan(model_auc) or np.isnan(rules_auc):
            # Nothing measured says the model does better on leads with no history, so
            # they keep the documented default: the rules answer them.
            cold_start.update(preferred="rules", reason="too few no-activity test leads of "
                              "both classes to compare; the rules score them, as by default")
        else:
            cold_start.update(preferred="rules" if rules_auc > model_auc else "model",
                              reason="higher ROC AUC on no-activity test leads")
        metrics["cold_start_n"] = float(cold_start["n"])
        metrics["cold_start_model_auc"] = float(model_auc)
        metrics["cold_start_rules_auc"] = float(rules_auc)
        cold_start["rules"] = fitted.description
        # Rules learned from this data ship with the model, so the service answers cold
        # starts with the very rules that won here (not with rules fitted elsewhere).
        model.cold_start_rules = fitted.document
    else:
        cold_start["reason"] = "no activity history in this dataset to define cold-start leads"
    metrics = {k: float(v) for k, v in metrics.items()}

    model.metrics = {k: v for k, v in metrics.items() if not k.startswith("decile_")}
    model.cold_start = cold_start
    model.field_labels = dict(schema.field_labels)
    model.feature_set_definition = dict(schema.feature_set)
    # The spec document itself: what a service needs to take the CRM's own fields.
    model.dataset_spec = next((text for path, text in data.artifacts.items()
                               if path.endswith((".yaml", ".yml")) and isinstance(text, str)), "")
    model.data_window = {**split.boundaries, "split": split.kind,
                         "time_column": data.time_column or ""}
    # What drift is measured against, fitted once here and shipped: every feature's and
    # the score's distribution on the training window (features.drift).
    # The fit/engagement split's reference: both parts' distribution over the training
    # rows (never validation or test), from the model's own TreeSHAP (features.matrix).
    model.fit_matrix(train_rows[features])
    model.reference = Reference.fit(
        train_rows[features], categorical, model.predict_proba(train_rows[features]),
        window={k: str(v) for k, v in split.boundaries.items() if k.startswith("train")},
    ).to_dict()

    # 6. log
    from training import tracking

    client = tracking.configure(settings)
    experiment_id = tracking.ensure_experiment(client, options.experiment, settings)
    result = TrainResult(run_id="", model=model, metrics=metrics, split=split,
                         leakage=leakage, train_seconds=train_seconds,
                         calibration_rows=calibration_rows)
    _log_run(result, data, frame, X_test, y_test, prob, segments, options, settings,
             experiment_id)
    # 7. promote
    if options.promote and result.model_version is not None:
        from training.promote import promote

        result.promotion = promote(settings, result.model_version, client=client,
                                   why=options.promotion_why)
    return result


def _log_run(result: TrainResult, data: TrainingData, frame: pd.DataFrame, X_test, y_test,
             prob, segments: pd.DataFrame, options: TrainOptions, settings: Settings,
             experiment_id: str) -> None:
    from mlflow.models import infer_signature

    import mlflow
    from training import tracking
    from training.pyfunc import LeadScoringModel, pip_requirements, write_artifacts

    model, split, leakage = result.model, result.split, result.leakage
    schema = data.schema
    commit = tracking.git_commit()
    fingerprint = data.info.get("fingerprint") or dataset_fingerprint(frame)
    tags = {
        "feature_set_version": schema.version,
        "dataset_fingerprint": fingerprint,
        "dataset_kind": data.info.get("kind", "frame"),
        "dataset_source": data.info.get("source", ""),
        "git_commit": commit or "unknown",
        "split": split.kind,
        "calibration": model.calibration_method,
        "trainer": "dask" if options.scheduler else "local",
        "training_mode": ("crossfit" if getattr(model, "crossfit_", None)
                          else "single_window"),
        "cold_start_preferred": model.cold_start.get("preferred", "model"),
        **{f"window.{k}": v for k, v in split.boundaries.items()},
        **leakage.to_tags(),
    }
    tags["mlflow.source.name"] = options.source_name
    if commit:
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")
    params = {
        "n_features": len(model.feature_names),
        "n_categorical": len(model.categorical_features),
        "num_boost_round": options.num_boost_round,
        "early_stopping_rounds": options.early_stopping_rounds,
        "class_weight": model.class_weight,
        "valid_frac": options.valid_frac,
        "test_frac": options.test_frac,
        "random_state": options.random_state,
        "scheduler": options.scheduler or "none",
        "allow_leaky": ",".join(options.allow_leaky) or "none",
        "exclude": ",".join(options.exclude) or "none",
        "grading": json.dumps(model.grading.to_dict()),
        **{k: v for k, v in data.info.items() if k in (
            "every", "horizon", "n_leads", "n_activities", "spec_name", "n_rows_loaded",
            "n_censored", "data_end", "label_definition", "censored", "snapshots")},
        **split.summary(),
        "crossfit": options.crossfit,
        **{k: v for k, v in (getattr(model, "crossfit_", None) or {}).items()
           if k in ("cv_kind", "cv_folds", "cv_fit_rows", "cv_held_rows", "cv_rounds",
                    "cv_refit", "cv_unheld_rows")},
        **({"crossfit_skipped": model.crossfit_skipped_}
           if getattr(model, "crossfit_skipped_", None) else {}),
        "calibration_chosen": model.calibration_method,
        **{f"lgb.{k}": v for k, v in model.lgb_params(np.asarray([0, 1])).items()
           if k != "scale_pos_weight"},
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=options.run_name) as run, \
            tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        result.run_id = run.info.run_id
        mlflow.set_tags(tags)
        mlflow.log_params({k: str(v)[:6000] for k, v in params.items()})
        mlflow.log_metrics(result.metrics)
        tuning = getattr(model, "tuning_", None)
        if tuning is not None:
            from training.tune import log_trials

            log_trials(tuning, run.info.run_id, experiment_id)
        mlflow.log_dict(model.cold_start, "evaluation/cold_start.json")
        mlflow.log_dict(model.reference, "evaluation/reference.json")
        if model.cold_start_rules:
            mlflow.log_text(model.cold_start_rules, "evaluation/cold_start_rules.yaml")
        mlflow.log_dict(model.data_window, "evaluation/data_window.json")
        for artifact_path, content in data.artifacts.items():
            if isinstance(content, str):
                mlflow.log_text(content, artifact_path)
            else:
                mlflow.log_dict(content, artifact_path)
        mlflow.log_dict({"features": model.feature_names,
                         "categorical": model.categorical_features,
                         "categories": model.categories_}, "model_inputs.json")
        mlflow.log_text(leakage.table.to_csv(index=False), "leakage/audit.csv")
        # The flagged columns as a table the MLflow UI shows (rule, figures, sentence).
        if len(leakage.flagged_table()):
            with warnings.catch_warnings():
                # mlflow's own select_dtypes call warns under pandas 3; not our code.
                warnings.filterwarnings("ignore", message="For backward compatibility, 'str'")
                mlflow.log_table(leakage.flagged_table(), "leakage/flagged.json")
        mlflow.log_text(decile_table(y_test, prob).to_csv(), "evaluation/deciles.csv")
        mlflow.log_text(segments.to_csv(index=False), "evaluation/segment_auc.csv")

        # Plots: matplotlib Figure objects, Agg canvas (see training.evaluate).
        sample = np.random.default_rng(0).permutation(len(X_test))[:SHAP_SAMPLE]
        X_sample = X_test.iloc[np.sort(sample)]
        contrib, _ = model.contributions(X_sample)
        for name, fig in {
            "calibration_curve": plot_calibration(y_test, prob),
            "cumulative_gains": plot_gains(y_test, prob),
            "lift_by_decile": plot_lift(decile_table(y_test, prob)),
            "shap_summary": plot_shap_summary(contrib, model.prepare(X_sample), model.feature_names),
            "feature_importance": plot_importance(model.feature_importance()),
        }.items():
            mlflow.log_figure(fig, f"plots/{name}.png")

        # The test rows, with every candidate feature (also excluded ones), so that the
        # promotion gate can re-score a champion with another feature list on them.
        keep = [c for c in ("lead_id", data.time_column, "label") if c] + list(schema.names)
        test_frame = frame.iloc[split.test][keep]
        if len(test_frame) > options.max_test_rows_logged:
            test_frame = test_frame.sample(options.max_test_rows_logged, random_state=0)
        test_path = tmp_path / "test_frame.parquet"
        test_frame.to_parquet(test_path, index=False)
        mlflow.log_artifact(str(test_path), "evaluation")

        artifacts = write_artifacts(model, tmp_path / "model")
        example = X_test.head(5)
        out_example = LeadScoringModel(model).predict(None, example)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=LeadScoringModel(),
            artifacts=artifacts,
            pip_requirements=pip_requirements(),
            signature=infer_signature(example, out_example),
            input_example=example,
            registered_model_name=settings.model_name if options.register else None,
            metadata={"feature_set_version": schema.version},
        )
        result.model_uri = info.model_uri
        if options.register and info.registered_model_version is not None:
            result.model_version = str(info.registered_model_version)
            client = mlflow.MlflowClient()
            for key in ("feature_set_version", "dataset_fingerprint", "git_commit"):
                client.set_model_version_tag(settings.model_name, result.model_version, key,
                                             tags[key])
            client.set_model_version_tag(settings.model_name, result.model_version,
                                         "test_roc_auc", f"{result.metrics['roc_auc']:.4f}")
