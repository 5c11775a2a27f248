"""The online path: feature rows for live requests, by the builder's own code.

A lead scored by the API gets exactly the values the training-set builder gives it for
the same ``as_of`` (STYLE principle 3): both index the activities with
:func:`features.history.index_activities` and run :func:`features.functions.compute_features`;
``tests/features/test_online.py`` checks equality on synthetic data.

The API's calls, a few leads each, use :mod:`features.live` instead: the same values
computed one lead at a time in plain Python, tested bit for bit against these.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.functions import HALF_LIVES, compute_feature_columns, compute_features
from features.history import PointInTime, index_activities
from features.registry import BUILTIN, FeatureSet

__all__ = ["features_at", "feature_columns_at"]


def features_at(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: pd.Timestamp | pd.Series,
    *,
    feature_set: FeatureSet = BUILTIN,
) -> pd.DataFrame:
    """Feature rows of ``leads`` at ``as_of``, one per lead, in the input order.

    Parameters
    ----------
    leads, activities
        Tables already validated by :mod:`features.schema`. Activities of leads not in
        ``leads`` are ignored; activities at or after a lead's ``as_of`` are never used.
    as_of
        One UTC timestamp for every lead, or a Series of them, one per lead, in the
        leads' order (its index is ignored).
    feature_set
        The features to compute (default: the built-in contract's).

    Returns
    -------
    pandas.DataFrame
        ``lead_id``, ``as_of`` (UTC), then ``feature_set.feature_names()``.
    """
    leads = leads.reset_index(drop=True)
    pit, stamps = _point_in_time(leads, activities, as_of, feature_set)
    values = compute_features(pit, feature_set.feature_names(),
                              set(feature_set.categorical_features()), feature_set.functions)
    head = pd.DataFrame(
        {"lead_id": leads["lead_id"].astype("string"), "as_of": stamps.rename(None)},
        index=values.index,
    )
    return pd.concat([head, values], axis=1)


def feature_columns_at(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: pd.Timestamp | pd.Series,
    *,
    feature_set: FeatureSet = BUILTIN,
) -> dict[str, np.ndarray | pd.Series]:
    """The feature columns of :func:`features_at` as a mapping, without the frame.

    Exactly the same values (``float64`` arrays, ``string`` Series), one per lead in
    input order, keyed by ``feature_set.feature_names()``: what a model needs, at a
    fraction of the cost of a frame for the few leads of a live request.
    """
    pit, _ = _point_in_time(leads.reset_index(drop=True), activities, as_of, feature_set)
    return compute_feature_columns(pit, feature_set.feature_names(),
                                   set(feature_set.categorical_features()), feature_set.functions)


def _point_in_time(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: pd.Timestamp | pd.Series,
    feature_set: FeatureSet,
) -> tuple[PointInTime, pd.DatetimeIndex]:
    n = len(leads)
    if isinstance(as_of, pd.Series):
        if len(as_of) != n:
            raise ValueError(
                f"The 'as_of' parameter must have one timestamp per lead ({n}). "
                f"Got {len(as_of)} instead."
            )
        stamps = pd.DatetimeIndex(pd.to_datetime(as_of.to_numpy(), utc=True))
    else:
        stamp = pd.Timestamp(as_of)
        if stamp.tzinfo is None:
            raise ValueError(
                f"The 'as_of' parameter must be a UTC timestamp. Got the naive {stamp!r} instead."
            )
        stamps = pd.DatetimeIndex([stamp.tz_convert("UTC")] * n)
    if stamps.isna().any():
        raise ValueError("The 'as_of' parameter must not contain missing timestamps.")
    stamps = stamps.tz_convert("UTC").as_unit("ns")

    # A request may list a lead twice (e.g. at two as_of): index each lead's history once.
    codes, unique_ids = pd.factorize(leads["lead_id"].astype("string"))
    index = index_activities(activities, pd.Series(unique_ids), half_lives=HALF_LIVES,
                             vocabulary=feature_set.vocabulary)
    pit = PointInTime(
        leads, index, codes.astype(np.int64), stamps.asi8, lead_row=np.arange(n, dtype=np.int64)
    )
    return pit, stamps
