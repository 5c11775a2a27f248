"""Online equals offline: a live request gets exactly the builder's feature values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_training_set
from features.online import features_at
from features.registry import feature_names
from tests.features.test_build import crm_tables, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark()


@pytest.fixture
def offline(request, bench):
    leads, acts = crm_tables(request, bench)
    return leads, acts, build_training_set(leads, acts, censored="keep")


def test_online_rows_equal_offline_rows_on_1500_random_pairs(offline):
    leads, acts, train = offline
    sample = train.sample(1_500, random_state=11).reset_index(drop=True)
    assert sample["lead_id"].duplicated().any()  # a lead at two as_of in one request
    by_id = leads.set_index("lead_id")
    request_leads = by_id.loc[sample["lead_id"]].reset_index()
    # Hand over only the requested leads' histories, in a shuffled order, as a CRM would.
    request_acts = acts[acts["lead_id"].isin(sample["lead_id"])].sample(frac=1.0, random_state=2)
    online = features_at(request_leads, request_acts, sample["as_of"])
    expected = sample[["lead_id", "as_of", *feature_names()]]
    pd.testing.assert_frame_equal(online, expected, check_exact=True)


def test_one_lead_alone_equals_its_offline_row(offline):
    leads, acts, train = offline
    rng = np.random.default_rng(5)
    for i in rng.choice(len(train), 25, replace=False):
        row = train.iloc[[i]].reset_index(drop=True)
        lead = leads[leads["lead_id"] == row["lead_id"].iloc[0]]
        online = features_at(lead, acts[acts["lead_id"] == row["lead_id"].iloc[0]], row["as_of"].iloc[0])
        pd.testing.assert_frame_equal(online, row[["lead_id", "as_of", *feature_names()]], check_exact=True)


def test_scalar_as_of_and_bad_as_of(offline):
    leads, acts, _ = offline
    head = leads.head(5)
    at = pd.Timestamp("2026-01-05T00:00:00Z")
    out = features_at(head, acts, at)
    assert out["lead_id"].tolist() == head["lead_id"].tolist()
    assert (out["as_of"] == at).all()
    with pytest.raises(ValueError, match="The 'as_of' parameter must be a UTC timestamp"):
        features_at(head, acts, pd.Timestamp("2026-01-05"))
    with pytest.raises(ValueError, match="one timestamp per lead"):
        features_at(head, acts, pd.Series([at] * 4))
