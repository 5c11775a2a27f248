"""One typed settings object, built at entry points (the CLI, the service start-up).

Importing this module reads no environment variable, creates no directory and sets no
tracking URI. ``Settings()`` reads ``LEADSCORE_*`` variables (and ``MLFLOW_TRACKING_URI``)
when an entry point builds it, and validates every value as it is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_home", "disable_telemetry"]

_TELEMETRY_OFF = {
    "BENTOML_DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
}


def default_home() -> Path:
    """The project root of a source checkout, else ``~/.leadscore``.

    Resolved from this file's location, never from the current directory, so that
    every command finds the same MLflow store wherever it is run from.
    """
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "features").is_dir():
        return checkout
    return Path.home() / ".leadscore"


def disable_telemetry() -> None:
    """Turn off BentoML's and MLflow's usage tracking for this process and its children."""
    for key, value in _TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


class Settings(BaseSettings):
    """Everything an entry point needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LEADSCORE_", extra="forbid", validate_default=True, frozen=True
    )

    home: Path = Field(
        default_factory=default_home,
        description="Where the local MLflow store (mlflow/) and generated data (data/) live.",
    )
    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LEADSCORE_TRACKING_URI"),
        description="MLflow tracking URI. Defaults to SQLite under <home>/mlflow/.",
    )
    registry_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_REGISTRY_URI", "LEADSCORE_REGISTRY_URI"),
        description="MLflow registry URI. Defaults to the tracking URI.",
    )
    artifact_root: str | None = Field(
        default=None,
        description="Where new experiments keep their artifacts (a URI such as "
        "file:///shared/mlflow-artifacts or s3://bucket/prefix, or a path). Needed to share "
        "a database store (MLFLOW_TRACKING_URI=postgresql+psycopg://...) with a team: "
        "without a tracking server MLflow would use ./mlruns of the current directory. "
        "Unset: <home>/mlflow/artifacts for the local store and for a database URI, "
        "beside the file for an explicit SQLite URI, the server's own for an HTTP one.",
    )
    model_name: str = Field(default="lead-scoring", min_length=1)
    model_alias: str = Field(default="champion", min_length=1)
    model_uri: str | None = Field(
        default=None,
        description="Serve this exact model URI (e.g. models:/lead-scoring/3) instead of "
        "resolving the alias. A built Bento pins one this way.",
    )
    api_key: str | None = Field(default=None, description="Bearer key the service requires.")
    allow_unauthenticated: bool = Field(
        default=False,
        description="Development only: serve without an API key (a warning is logged).",
    )
    poll_interval_s: float = Field(default=30.0, gt=0, description="Alias polling interval.")
    cold_start_policy: Literal["auto", "model", "rules"] = Field(
        default="auto",
        description="Who scores leads with no activities: 'auto' uses whichever had the "
        "higher ROC AUC on such leads in the test window at training time.",
    )
    live_features: bool = Field(
        default=True,
        description="Compute the features of API calls with the plain-Python live path "
        "(features.live). false forces the vectorised path: the same values, tested bit for "
        "bit, at about 12 ms a call instead of 0.6; a switch for operators, should the two "
        "ever be suspected to differ.",
    )
    psi_warn: float = Field(
        default=0.10, gt=0,
        description="PSI at which a feature's or the score's drift reads 'moderate' (below: "
        "stable); the conventional 0.10.",
    )
    psi_alert: float = Field(
        default=0.25, gt=0,
        description="PSI above which drift reads 'major' and rescore lists the feature; the "
        "conventional 0.25. Must be above psi_warn.",
    )
    gate_auc_tolerance: float = Field(
        default=0.005, ge=0, le=0.5,
        description="Promotion gate: a challenger passes if its ROC AUC on its own test "
        "window is at least the champion's on the same rows minus this margin (train "
        "--promote, promote, retrain).",
    )
    gate_max_ece: float = Field(
        default=0.05, gt=0, le=1,
        description="Promotion gate: the highest expected calibration error (10 equal-mass "
        "bins) a challenger may have on its test window.",
    )
    backtest_min_labelled: int = Field(
        default=200, ge=1,
        description="'leadscore backtest' refuses a run with fewer model-scored leads whose "
        "outcome is known (horizon passed) than this: grade rates and an AUC from fewer "
        "leads are mostly noise.",
    )
    actor: str | None = Field(
        default=None, min_length=1,
        description="Who or what moves the champion alias (promotion, retrain, rollback), "
        "as recorded in the alias history: e.g. 'cron@scheduler' or a CI job id. Unset: "
        "<user>@<host>.",
    )
    explainer: Literal["fast", "pred_contrib"] = Field(
        default="fast",
        description="How TreeSHAP contributions (reasons, /explain, batch) are computed: "
        "'fast' is the project's Fast TreeSHAP v2 (training.treeshap), the same values as "
        "LightGBM's pred_contrib to 1e-9 (tested) at a fraction of the cost; "
        "'pred_contrib' is LightGBM's own, a switch for operators, should the two ever be "
        "suspected to differ.",
    )
    fit_threshold: float | None = Field(
        default=None, ge=0, le=100,
        description="The 0-100 fit score at which a lead's fit counts as 'high' in the fit x "
        "engagement matrix (matrix_route). Unset: the threshold shipped with the model (50, "
        "the median training lead); the rules use 50.",
    )
    engagement_threshold: float | None = Field(
        default=None, ge=0, le=100,
        description="The 0-100 engagement score at which engagement counts as 'high'; as "
        "fit_threshold.",
    )
    rescore_local_max_leads: int = Field(
        default=500_000, ge=0,
        description="'leadscore rescore --engine auto' (the default) scores a base of at "
        "most this many leads (rows of leads.parquet) in process, with the same core and "
        "the same committed output, instead of starting a Dask LocalCluster. Measured on "
        "2 cores (benchmarks/batch.py --engines local,dask): in process won at 200,000 "
        "leads (19.6 s vs 26.9 s) and 400,000 (65 s vs 74 s), and Dask by 5% at "
        "1,000,000. A machine with more cores gives Dask more workers: lower it there. "
        "0 always uses Dask.",
    )
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    max_body_bytes: int = Field(default=10_000_000, ge=1024)
    history_dir: Path | None = Field(
        default=None,
        description="The score history dataset that 'leadscore rescore --out DIR' keeps, "
        "i.e. DIR/history. When set, every /score result carries the lead's trend from it.",
    )
    batch_dir: Path | None = Field(
        default=None,
        description="The 'leadscore rescore --out DIR' whose last committed run's drift "
        "(DIR/scores/_health.json) /model and /metrics show. Unset: the parent of "
        "history_dir, when that is set.",
    )
    rules_file: Path | None = Field(
        default=None, description="Rules YAML for the fallback; the packaged default if unset."
    )
    dataset: Path | None = Field(
        default=None,
        description="The dataset spec whose contract the service speaks (its CRM's field "
        "names and activity types). Unset: the contract of the first champion it loads "
        "(its own logged spec), else the built-in one. A champion of another spec is refused.",
    )

    def matrix_thresholds(self) -> Any:
        """The operator's fit/engagement thresholds (:class:`features.matrix.Thresholds`)."""
        from features.matrix import Thresholds

        return Thresholds(self.fit_threshold, self.engagement_threshold)

    @field_validator("psi_alert")
    @classmethod
    def _alert_above_warn(cls, value: float, info: Any) -> float:
        warn = info.data.get("psi_warn")
        if warn is not None and value <= warn:
            raise ValueError(f"must be above psi_warn ({warn}); got {value}")
        return value

    @field_validator("api_key")
    @classmethod
    def _real_key(cls, value: str | None) -> str | None:
        # An empty LEADSCORE_API_KEY (e.g. `LEADSCORE_API_KEY= leadscore serve`) is not
        # "no key": it would be a key that the header 'Authorization: Bearer ' matches.
        if value is not None and not value.strip():
            got = "an empty string" if not value else f"{len(value)} whitespace character(s)"
            raise ValueError(
                "The 'LEADSCORE_API_KEY' setting must be a non-empty key (the token CRMs "
                f"send as 'Authorization: Bearer <key>'). Got {got} instead. Set a real "
                "key, or unset it and set LEADSCORE_ALLOW_UNAUTHENTICATED=true to run "
                "without one (development only)."
            )
        return value

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("artifact_root")
    @classmethod
    def _artifact_root_uri(cls, value: str | None) -> str | None:
        if value is None or "://" in value or value.startswith("file:"):
            return value
        return Path(value).expanduser().resolve().as_uri()

    @property
    def mlflow_dir(self) -> Path:
        return self.home / "mlflow"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def resolved_tracking_uri(self) -> str:
        """The tracking URI to use: the explicit one, else SQLite under ``mlflow/``."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str | None:
        """Where new experiments store artifacts when the store is the local default."""
        if self.tracking_uri:
            return None
        return (self.mlflow_dir / "artifacts").as_uri()
