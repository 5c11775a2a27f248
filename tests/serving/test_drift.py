"""Drift at a batch run: a market launch made with the generator's own options is flagged,
and what the launch does not touch is not.

One model is trained on the generated CRM before anything changes, as a champion is.
The same CRM is generated twice from the same seed: as it is, and with a launch in
Germany bringing 70% of the leads of the last 60 days (``campaign_from``). Both are
rescored with that model. Germany's share of ``country`` moves; ``region`` follows it;
every other feature reads as in the unshifted run.
"""

from __future__ import annotations

import pandas as pd
import pytest

from features.synthetic import DEFAULT_END, GeneratorConfig, generate_to_dir
from serving import batch
from serving.batch import ModelSource
from tests.serving.test_batch import MemoryLoader, _candidate, _settings
from tests.training.conftest import MLFLOW_WARNINGS

pytestmark = [*MLFLOW_WARNINGS, pytest.mark.integration]


@pytest.fixture
def thread_client():
    with batch.dask_client("local", workers=2, processes=False) as client:
        yield client


@pytest.mark.usefixtures("isolated_env")
def test_a_market_launch_is_flagged_and_nothing_else_moves(tmp_path, thread_client):
    from leadscore.settings import Settings
    from training.pipeline import TrainOptions, train, training_data_from_dir

    config = GeneratorConfig(n_leads=5000, seed=3, truth_sample=0)
    generate_to_dir(config, tmp_path / "before")
    launch = DEFAULT_END - pd.Timedelta(days=60)
    generate_to_dir(GeneratorConfig(n_leads=5000, seed=3, truth_sample=0, campaign_from=launch,
                                    campaign_share=0.7), tmp_path / "after")
    before = pd.read_parquet(tmp_path / "before" / "leads.parquet")
    after = pd.read_parquet(tmp_path / "after" / "leads.parquet")
    # The option changes the launched leads' country and what follows from it (the
    # email's country domain, the outcomes through fit); every other field is the same.
    def differs(column: str) -> pd.Series:
        a, b = before[column], after[column]
        return ~((a == b).fillna(False) | (a.isna() & b.isna()))

    assert {c for c in before.columns if differs(c).any()} <= {
        "country", "email", "converted_at", "disqualified_at"}
    changed = differs("country")
    assert changed.sum() > 100 and (after.loc[changed, "country"] == "DE").all()
    assert (pd.to_datetime(after.loc[changed, "created_at"], utc=True) >= launch).all()

    trained = train(training_data_from_dir(tmp_path / "before"), Settings(),
                    TrainOptions(register=False, num_boost_round=60))
    assert trained.model.reference  # shipped with the model, fitted on the training window
    source = ModelSource(_candidate(), _settings(), MemoryLoader(trained.model))
    runs = {name: batch.rescore(tmp_path / name, tmp_path / f"out-{name}", settings=_settings(),
                                source=source, client=thread_client, n_partitions=3)
            for name in ("before", "after")}
    health = {name: run.health for name, run in runs.items()}
    psi = {name: {f["feature"]: f["psi"] for f in h["features"]} for name, h in health.items()}

    def major(name: str) -> set[str]:
        return {f["feature"] for f in health[name]["features"] if f["level"] == "major"}

    assert major("after") - major("before") == {"country"}, (health["before"], health["after"])
    assert psi["after"]["country"] > 0.25 > psi["before"]["country"]
    assert psi["after"]["region"] > psi["before"]["region"] + 0.05
    untouched = set(psi["before"]) - {"country", "region"}
    moved = {f: (psi["before"][f], psi["after"][f]) for f in untouched
             if abs(psi["after"][f] - psi["before"][f]) > 0.1}
    assert not moved, moved
