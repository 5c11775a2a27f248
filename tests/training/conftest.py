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
