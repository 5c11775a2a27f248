"""The leakage audit flags planted leaks, declared leaky columns, and honours overrides."""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.leakage import audit_leakage

from .conftest import CATEGORICAL, FEATURES, make_frame


def _with_leaks(seed=0):
    frame, _ = make_frame(4000, seed=seed)
    rng = np.random.default_rng(seed)
    y = frame["label"].to_numpy()
    # A sales status written after the outcome: near-perfectly separates, categorical.
    status = np.where(y == 1, rng.choice(["won", "closed"], len(y)),
                      rng.choice(["lost", "ringing", "revert"], len(y)))
    flip = rng.uniform(size=len(y)) < 0.03
    status[flip] = "ringing"
    frame["status"] = pd.array(status, dtype="string")
    # "Days to close": only present for converters, a missingness leak.
    frame["days_to_close"] = np.where(y == 1, rng.exponential(20, len(y)), np.nan)
    return frame, y


def test_planted_leaks_are_flagged_and_excluded():
    frame, y = _with_leaks()
    cols = [*FEATURES, "status", "days_to_close"]
    report = audit_leakage(frame[cols], y, [*CATEGORICAL, "status"])
    assert set(report.flagged) == {"status", "days_to_close"}
    assert set(report.excluded) == {"status", "days_to_close"}
    table = report.table.set_index("feature")
    assert table.loc["status", "auc"] >= 0.9
    assert table.loc["engagement", "auc"] < 0.9
    assert report.to_tags()["leakage.excluded"] in ("status,days_to_close", "days_to_close,status")


def test_declared_leaky_is_flagged_even_if_weak_and_allow_keeps_it():
    frame, y = _with_leaks(1)
    report = audit_leakage(frame[[*FEATURES, "status"]], y, [*CATEGORICAL, "status"],
                           declared_leaky=["noise"], allow=["status"])
    assert set(report.flagged) == {"noise", "status"}
    assert report.excluded == ("noise",)


def test_high_cardinality_ids_do_not_look_leaky():
    frame, y = _with_leaks(2)
    frame["lead_code"] = frame["lead_id"]
    report = audit_leakage(frame[["lead_code", "engagement"]], y, ["lead_code"])
    assert report.flagged == ()
