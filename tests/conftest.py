"""Test isolation: no test sees the developer's shell, home directories or the network.

Telemetry is off for the whole session. Every test gets its own MLflow store, BentoML
home and leadscore home under ``tmp_path``, and no ``LEADSCORE_*`` variable leaks in.
Tests that need a database server ask for ``postgres_url`` (see ``tests/postgres.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A real PostgreSQL server (session-scoped, started on first use) and a fresh database
# per test: ``postgres_server``, ``postgres_url``; ``tests.postgres.load_frames`` fills one.
from tests.postgres import postgres_server, postgres_url  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
XEDU_CSV = REPO.parent / "shared" / "data" / "x-education" / "Leads.csv"

os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every home and store at ``tmp_path``; return the leadscore home."""
    for key in list(os.environ):
        if key.startswith("LEADSCORE_") or key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path / "leadscore-home"
    home.mkdir()
    monkeypatch.setenv("LEADSCORE_HOME", str(home))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml-home"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return home


@pytest.fixture
def xeducation_csv() -> Path:
    """The real X Education export, or a clean skip when it is not beside the checkout."""
    if not XEDU_CSV.is_file():
        pytest.skip(f"X Education export not found at {XEDU_CSV}; see the README to obtain it")
    return XEDU_CSV


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic CRM (3,000 leads, seed 7): leads, activities and truth parquet files.

    Generated once per session (a few seconds). Truth uses 4 Monte Carlo paths per
    snapshot instead of the default 8 to stay fast; treat ``p_convert`` as a noisy oracle.
    """
    from features.synthetic import GeneratorConfig, generate_to_dir

    out = tmp_path_factory.mktemp("synthetic")
    generate_to_dir(GeneratorConfig(n_leads=3_000, seed=7, truth_paths=4), out)
    return out
