"""Training on a 2-worker Dask LocalCluster reaches the single-machine AUC."""

from __future__ import annotations

import pandas as pd
import pytest

from training.evaluate import safe_auc
from training.model import LeadModel
from training.split import time_split

from .conftest import CATEGORICAL, FEATURES, make_frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.integration,
    # distributed warns when a test's event loop closes with its comms still draining.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning"),
]


def test_dask_training_matches_single_machine_auc():
    from training.distributed import train_booster_dask

    frame, _ = make_frame(8000, seed=21)
    split = time_split(frame["as_of"], frame["label"].to_numpy(), horizon=pd.Timedelta(days=28))
    tr, va, te = frame.iloc[split.train], frame.iloc[split.valid], frame.iloc[split.test]

    def model():
        return LeadModel(FEATURES, CATEGORICAL, "t", num_boost_round=80,
                         early_stopping_rounds=80)

    local = model().fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"])
    dask_model = model().fit_vocabulary(tr[FEATURES])
    booster = train_booster_dask(dask_model, tr[FEATURES], tr["label"].to_numpy(),
                                 va[FEATURES], va["label"].to_numpy(), "local")
    dask_model.fit(tr[FEATURES], tr["label"], va[FEATURES], va["label"], booster=booster)

    auc_local = safe_auc(te["label"], local.predict_proba(te[FEATURES]))
    auc_dask = safe_auc(te["label"], dask_model.predict_proba(te[FEATURES]))
    assert auc_dask == pytest.approx(auc_local, abs=0.01)
    # The booster came from the cluster, the rest of the model is the usual one.
    assert dask_model.booster_.num_trees() <= 80
    per_feature, base = dask_model.contributions(te[FEATURES].head(5))
    assert per_feature.shape == (5, len(FEATURES))
