"""features.drift: bins fitted once, counts that add up, PSI that reads as documented."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from features.drift import SCORE, Reference, level, psi


def _frame(n: int, seed: int, shift: float = 0.0, source_p=(0.6, 0.3, 0.1)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    visits = rng.poisson(3 + shift, n).astype(float)
    visits[rng.uniform(size=n) < 0.1] = np.nan
    source = rng.choice(["Google", "Referral", "Event"], n, p=list(source_p)).astype(object)
    source[rng.uniform(size=n) < 0.05] = None
    return pd.DataFrame({"visits": visits, "source": pd.array(source, dtype="string")})


def _naive_psi(e: np.ndarray, a: np.ndarray) -> float:
    e, a = np.maximum(e, 1e-4), np.maximum(a, 1e-4)
    return float(sum((ai - ei) * math.log(ai / ei) for ei, ai in zip(e, a, strict=True)))


def test_same_population_is_stable_and_a_shift_is_major():
    ref = Reference.fit(_frame(20_000, 0), ["source"], np.random.default_rng(0).beta(2, 5, 20_000))
    same = ref.report(ref.counts(_frame(20_000, 1), np.random.default_rng(1).beta(2, 5, 20_000)))
    assert same["n_drifted"] == 0 and all(f["psi"] < 0.02 for f in same["features"])
    assert same["score_psi"] < 0.02 and same["score_level"] == "stable"
    moved = ref.report(ref.counts(_frame(20_000, 2, shift=3.0), np.random.default_rng(2).beta(5, 2, 20_000)))
    by = {f["feature"]: f for f in moved["features"]}
    assert by["visits"]["level"] == "major" and by["source"]["level"] == "stable"
    assert moved["n_drifted"] == 1 and moved["score_level"] == "major"
    assert moved["features"][0]["feature"] == "visits"  # most shifted first


def test_new_categories_and_missing_values_are_bins_of_their_own():
    ref = Reference.fit(_frame(5_000, 0), ["source"])
    source = next(b for b in ref.features if b.name == "source")
    assert source.labels() == ["google", "referral", "event", "other", "missing"]
    # Case and whitespace are one category, as for the model; a new campaign is "other".
    counts = source.counts(pd.Series([" GOOGLE", "google", "Webinar", None, "referral"]))
    assert counts.tolist() == [2, 1, 0, 1, 1]
    visits = next(b for b in ref.features if b.name == "visits")
    assert visits.shares[-1] == np.isnan(_frame(5_000, 0)["visits"]).mean()
    all_missing = ref.report(ref.counts(pd.DataFrame({"visits": [np.nan] * 100,
                                                       "source": pd.array([None] * 100, dtype="string")})))
    assert {f["feature"]: f["missing_share"] for f in all_missing["features"]} == {
        "visits": 1.0, "source": 1.0}
    assert all(f["level"] == "major" for f in all_missing["features"])


def test_psi_matches_the_formula_and_the_conventional_levels():
    e = np.array([0.25, 0.25, 0.5, 0.0])
    a = np.array([0.1, 0.4, 0.5, 0.0])
    assert psi(e, a) == _naive_psi(e, a)
    assert psi(e, e) == 0.0
    assert (level(0.05), level(0.1), level(0.25), level(0.26)) == (
        "stable", "moderate", "moderate", "major")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=200),
       st.integers(1, 5))
def test_counts_of_parts_add_up_to_counts_of_the_whole(values, parts):
    ref = Reference.fit(pd.DataFrame({"x": [v if v is not None else np.nan for v in values[::2]]
                                      or [0.0]}), [])
    x = pd.DataFrame({"x": [np.nan if v is None else v for v in values]})
    whole = np.asarray(ref.counts(x)["x"])
    bounds = np.linspace(0, len(x), parts + 1).astype(int)
    pieces = sum(np.asarray(ref.counts(x.iloc[lo:hi])["x"])
                 for lo, hi in zip(bounds, bounds[1:], strict=False))
    assert whole.tolist() == pieces.tolist() and whole.sum() == len(values)


def test_a_reference_survives_json():
    import json

    ref = Reference.fit(_frame(1_000, 0), ["source"], np.linspace(0, 1, 1_000), window={"train_start": "x"})
    again = Reference.from_dict(json.loads(json.dumps(ref.to_dict())))
    assert again == ref
    assert SCORE in again.counts(_frame(10, 3), np.full(10, 0.5))


def test_thresholds_are_configuration_checked_when_built():
    import pytest
    from pydantic import ValidationError

    from leadscore.settings import Settings

    s = Settings(psi_warn=0.05, psi_alert=0.4)
    ref = Reference.fit(_frame(2_000, 0), ["source"])
    moved = ref.report(ref.counts(_frame(2_000, 2, shift=1.0)), warn=s.psi_warn, alert=s.psi_alert)
    assert moved["thresholds"] == {"warn": 0.05, "alert": 0.4}
    visits = next(f for f in moved["features"] if f["feature"] == "visits")
    assert visits["level"] == level(visits["psi"], 0.05, 0.4)
    with pytest.raises(ValidationError, match="psi_alert"):
        Settings(psi_warn=0.3, psi_alert=0.2)
