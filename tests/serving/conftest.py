"""Serving fixtures: a tiny CRM, a small real LeadModel fitted on it, an in-process app.

The model is fitted here on ``features.online.features_at`` rows of a hand-made CRM
(not the training pipeline), so these tests depend only on the LeadModel contract. The
label follows pricing-page visits and demo requests, so reasons have a known sign.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pytest

with warnings.catch_warnings():
    # BentoML 1.4.39 builds a pathspec with the 'gitwildmatch' factory at import time,
    # which pathspec >= 0.12.1 deprecates. Harmless; import it once here, narrowly.
    warnings.filterwarnings("ignore", message=r".*GitWildMatchPattern.*",
                            category=DeprecationWarning)
    import bentoml._internal.bento.build_config  # noqa: F401
    # BentoML's IODescriptor calls BaseModel.__get_pydantic_core_schema__, deprecated in
    # pydantic 2.11, when the service's IO models are built (once, at import).
    warnings.filterwarnings("ignore", message=r".*__get_pydantic_core_schema__.*")
    import serving.service  # noqa: F401

NOW = pd.Timestamp("2026-03-01T00:00:00Z")
TYPES = ["page_view", "pricing_page_view", "email_open", "email_click", "demo_request",
         "webinar_attended", "content_download"]


def make_crm(n: int = 600, seed: int = 0, now: pd.Timestamp = NOW
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Raw leads and activities (as a CRM would export them), created before ``now``."""
    rng = np.random.default_rng(seed)
    ids = [f"L{seed}-{i:05d}" for i in range(n)]
    created = now - pd.to_timedelta(rng.integers(20, 200, n), unit="D")
    leads = pd.DataFrame({
        "lead_id": ids,
        "created_at": created,
        "source": rng.choice(["paid_search", "organic", "referral", "event"], n),
        "country": rng.choice(["DE", "US", "FR", "GB"], n),
        "industry": rng.choice(["software", "retail", "finance"], n),
        "company_size": rng.choice([5.0, 50.0, 500.0, np.nan], n),
        "seniority": rng.choice(["director", "manager", "staff"], n),
        "job_function": rng.choice(["marketing", "sales", "it"], n),
        "email": [f"person{i}@{'gmail.com' if i % 3 else 'acme.io'}" for i in range(n)],
    })
    engaged = rng.uniform(size=n)
    counts = rng.poisson(1 + 12 * engaged)
    rows = []
    for i, k in enumerate(counts):
        age = (now - created[i]).days
        for _ in range(int(k)):
            t = created[i] + pd.Timedelta(days=float(rng.uniform(0, age)))
            # Engaged leads view pricing and ask for demos more often.
            e = engaged[i]
            probs = np.array([0.45 - 0.25 * e, 0.1 + 0.2 * e, 0.15, 0.1, 0.02 + 0.05 * e,
                              0.05, 0.13])
            kind = str(rng.choice(TYPES, p=probs / probs.sum()))
            rows.append((ids[i], t, kind))
    acts = pd.DataFrame(rows, columns=["lead_id", "occurred_at", "type"])
    return leads, acts


@pytest.fixture(scope="session")
def crm() -> tuple[pd.DataFrame, pd.DataFrame]:
    return make_crm()


def _fit_model(seed: int = 0) -> Any:
    from features.online import features_at
    from features.registry import FEATURE_SET_VERSION, categorical_features, feature_names
    from features.schema import validate_activities, validate_leads
    from training.model import LeadModel

    leads, acts = make_crm(1500, seed=seed + 100)
    leads = validate_leads(leads)
    acts = validate_activities(acts, lead_ids=leads["lead_id"]).frame
    frames = []
    for days in (0, 20):
        frames.append(features_at(leads, acts, NOW - pd.Timedelta(days=days)))
    X = pd.concat(frames, ignore_index=True)
    rng = np.random.default_rng(seed)
    logit = (-2.0 + 0.8 * X["pricing_page_view_count_90d"].fillna(0)
             + 1.5 * X["demo_request_count_90d"].fillna(0)
             - 0.01 * X["days_since_last_activity"].fillna(200))
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(-logit))).to_numpy().astype(int)
    half = len(X) // 2
    model = LeadModel(feature_names(), categorical_features(), FEATURE_SET_VERSION,
                      params={"min_data_in_leaf": 20, "num_leaves": 15, "seed": seed},
                      num_boost_round=60, early_stopping_rounds=20, random_state=seed)
    model.fit(X.iloc[:half], y[:half], X.iloc[half:], y[half:])
    # As training.pipeline.train ships it: the training rows' distributions, for drift.
    from features.drift import Reference

    model.reference = Reference.fit(X.iloc[:half][model.feature_names], model.categorical_features,
                                    model.predict_proba(X.iloc[:half])).to_dict()
    model.fit_matrix(X.iloc[:half])  # the fit/engagement split's training distribution
    model.metrics = {"test_roc_auc": 0.8}
    model.cold_start = {"model_auc": 0.6, "rules_auc": 0.55, "preferred": "model"}
    return model


@pytest.fixture(scope="session")
def lead_model() -> Any:
    """A small fitted LeadModel on the current feature set."""
    return _fit_model(0)


@pytest.fixture(scope="session")
def other_model() -> Any:
    """A second fitted LeadModel (another version to swap to)."""
    return _fit_model(1)


def lead_payload(leads: pd.DataFrame, acts: pd.DataFrame, i: int) -> dict[str, Any]:
    """Lead ``i`` of a frame as a JSON payload, with its activities."""
    row = leads.iloc[i]
    mine = acts[acts["lead_id"] == row["lead_id"]]
    out: dict[str, Any] = {
        k: (None if pd.isna(v) else v) for k, v in row.items()
        if k not in ("created_at",)
    }
    out["created_at"] = pd.Timestamp(row["created_at"]).isoformat()
    out["activities"] = [
        {"type": t, "occurred_at": pd.Timestamp(o).isoformat()}
        for t, o in zip(mine["type"], mine["occurred_at"], strict=True)
    ]
    return out


class FakeRegistry:
    """The alias as a settable attribute, and versions as LeadModels (or exceptions)."""

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}
        self.champion: str | None = None
        self.unreachable = False

    def resolver(self, settings: Any) -> Callable[[], Any]:
        from serving.lifecycle import Candidate

        def resolve() -> Candidate | None:
            if self.unreachable:
                raise ConnectionError("registry unreachable")
            if self.champion is None:
                return None
            return Candidate("lead-scoring", self.champion, "champion",
                             f"models:/lead-scoring/{self.champion}")

        return resolve

    def loader(self, settings: Any) -> Callable[[Any], Any]:
        def load(candidate: Any) -> Any:
            found = self.models[candidate.version]
            if isinstance(found, Exception):
                raise found
            return found

        return load


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    """Replace the MLflow resolver and loader of the service by an in-memory registry."""
    import serving.service as service_module

    fake = FakeRegistry()
    monkeypatch.setattr(service_module, "mlflow_resolver", fake.resolver)
    monkeypatch.setattr(service_module, "mlflow_loader", fake.loader)
    return fake


_APP: list[Any] = []


def asgi_app() -> Any:
    """One ASGI app per session: BentoML registers Prometheus metrics per app, and a
    second app in one process would register them twice. Each TestClient still runs
    the lifespan, so every test gets a fresh service instance built from its env."""
    if not _APP:
        from serving.service import LeadScoring

        _APP.append(LeadScoring.to_asgi())
    return _APP[0]


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch, registry: FakeRegistry
                ) -> Callable[..., Any]:
    """Start the service in-process (lifespan included) and yield a TestClient."""
    import warnings

    with warnings.catch_warnings():
        # Starlette 1.x deprecates its httpx-based TestClient in favour of httpx2, which
        # is not in our stack; the client works, only its import warns.
        warnings.filterwarnings("ignore", message=".*httpx.*testclient.*|.*testclient.*httpx.*")
        from starlette.testclient import TestClient

    @contextmanager
    def start(api_key: str | None = "k", **env: str) -> Iterator[TestClient]:
        if api_key is not None:
            monkeypatch.setenv("LEADSCORE_API_KEY", api_key)
        for key, value in env.items():
            monkeypatch.setenv(f"LEADSCORE_{key.upper()}", str(value))
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        with TestClient(asgi_app(), headers=headers,
                        raise_server_exceptions=False) as client:
            yield client

    return start
