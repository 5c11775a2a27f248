"""Small hand-built training frames: lead_id, as_of, label and a few features.

The label follows a known logistic model of the features, so a model trained on them
has a knowable ceiling (``p_true`` is returned as the oracle probability).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

NUMERIC = ["engagement", "recency_days", "company_size", "noise"]
CATEGORICAL = ["source", "industry"]
FEATURES = NUMERIC + CATEGORICAL


def make_frame(n_rows: int = 4000, weeks: int = 60, seed: int = 0, base: float = -2.2):
    """A snapshot frame over ``weeks`` weekly as_of dates, and the true probabilities."""
    rng = np.random.default_rng(seed)
    as_of = pd.Timestamp("2024-01-01T00:00:00Z") + pd.to_timedelta(
        rng.integers(0, weeks, n_rows) * 7, unit="D"
    )
    source = rng.choice(["web", "event", "referral", "ads"], n_rows, p=[0.4, 0.2, 0.1, 0.3])
    industry = rng.choice(["saas", "retail", "finance", "health", "edu"], n_rows)
    engagement = rng.poisson(2.0, n_rows).astype(float)
    recency = rng.exponential(30, n_rows)
    recency[engagement == 0] = np.nan
    size = rng.lognormal(4, 1.2, n_rows)
    logit = (base + 0.45 * engagement - 0.02 * np.nan_to_num(recency, nan=90.0)
             + np.select([source == "referral", source == "event"], [1.2, 0.5], 0.0)
             + 0.2 * np.log(size) - 0.8)
    p = 1 / (1 + np.exp(-logit))
    label = (rng.uniform(size=n_rows) < p).astype(int)
    frame = pd.DataFrame({
        "lead_id": pd.array([f"L{i:06d}" for i in range(n_rows)],
                            dtype="string"),
        "as_of": as_of,
        "label": label,
        "engagement": engagement,
        "recency_days": recency,
        "company_size": size,
        "noise": rng.normal(size=n_rows),
        "source": pd.array(source, dtype="string"),
        "industry": pd.array(industry, dtype="string"),
        "p_true": p,
    }).sort_values("as_of", kind="stable").reset_index(drop=True)
    return frame.drop(columns="p_true"), frame["p_true"]


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    return make_frame()[0]


def reset_mlflow_uris() -> None:
    """Forget the URIs training.tracking.configure set globally, for the next test's store."""
    import mlflow

    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(autouse=True)
def _forget_mlflow_uris():
    yield
    reset_mlflow_uris()


@pytest.fixture(scope="module")
def module_settings(tmp_path_factory):
    """Settings on one MLflow store shared by a module (SQLite creation takes seconds).

    Built with explicit values, not from the environment, because module fixtures are
    set up before the per-test environment isolation runs.
    """
    from leadscore.settings import Settings

    root = tmp_path_factory.mktemp("mlflow-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        import os

        for key in list(os.environ):
            if key.startswith("LEADSCORE_") or key.startswith("MLFLOW_") and "URI" in key:
                mp.delenv(key, raising=False)
        settings = Settings(home=root, MLFLOW_TRACKING_URI=uri, MLFLOW_REGISTRY_URI=uri)
    yield settings
    reset_mlflow_uris()


def schema_for_tests(version: str = "test-1"):
    from training.pipeline import FeatureSchema

    return FeatureSchema(tuple(FEATURES), tuple(CATEGORICAL), version)


# MLflow 3.17 with SQLAlchemy 2.1 and pandas 3 warns from inside its own code; these are
# not ours to fix, and filterwarnings=error would turn them into failures.
MLFLOW_WARNINGS = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Operation with range is deprecated"),
    # Raised once, while mlflow.types.responses is imported (ANSI colour codes first).
    pytest.mark.filterwarnings("ignore:.*Any type hint is inferred as AnyType:UserWarning"),
]
