"""Train the booster on a Dask cluster with ``lightgbm.dask``.

Used by ``leadscore train --scheduler tcp://host:8786`` (an existing cluster) or
``--scheduler local`` (a 2-worker ``LocalCluster`` started and stopped here).

The vocabularies are fitted on the client first, so every worker sees the same
category codes; the prepared float matrix is then split into one chunk per worker.
``lightgbm.dask`` has no early stopping, so the booster trains ``num_boost_round``
trees while recording validation AUC at each, and is truncated at the best one: the
same choice early stopping makes, after the fact. Calibration and grades are fitted
on the client as in local training.

LightGBM's network layer is one per *process*, so local workers must be processes
(``processes=True``): two threaded workers in one process would share it.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.model import LeadModel

__all__ = ["train_booster_dask", "dask_client"]


@contextlib.contextmanager
def dask_client(scheduler: str, n_workers: int = 2) -> Iterator[object]:
    """A ``distributed.Client`` for ``scheduler`` ('local' starts a LocalCluster)."""
    from distributed import Client, LocalCluster

    if scheduler == "local":
        with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            yield client
    else:
        with Client(scheduler) as client:
            yield client


def train_booster_dask(
    model: LeadModel,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
    scheduler: str,
) -> lgb.Booster:
    """A booster trained on the cluster, truncated at its best validation AUC."""
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    params = model.lgb_params(y_train)
    params.pop("first_metric_only", None)
    params.pop("objective", None)
    metric = params.pop("metric")
    seed = params.pop("seed")
    with dask_client(scheduler) as client:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        Xt, Xv = model.prepare(X_train), model.prepare(X_valid)
        chunk_t = int(np.ceil(len(Xt) / n_workers))
        chunk_v = int(np.ceil(len(Xv) / n_workers))
        dXt = da.from_array(Xt, chunks=(chunk_t, Xt.shape[1]))
        dyt = da.from_array(np.asarray(y_train, dtype=float), chunks=chunk_t)
        dXv = da.from_array(Xv, chunks=(chunk_v, Xv.shape[1]))
        dyv = da.from_array(np.asarray(y_valid, dtype=float), chunks=chunk_v)
        clf = DaskLGBMClassifier(
            client=client, n_estimators=model.num_boost_round, random_state=seed,
            objective="binary", metric=metric, **params,
        )
        cat_idx = [model.feature_names.index(c) for c in model.categorical_features]
        with warnings.catch_warnings():
            # The sklearn wrapper always passes n_jobs and lightgbm.dask always replaces
            # it with each worker's thread count, warning every time: nothing to act on.
            warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
            clf.fit(dXt, dyt, eval_X=(dXv,), eval_y=(dyv,), eval_metric="auc",
                    categorical_feature=cat_idx or "auto", feature_name=model.feature_names)
        booster = clf.booster_
        auc = clf.evals_result_.get("valid_0", {}).get("auc")
    best = int(np.argmax(auc)) + 1 if auc else booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
