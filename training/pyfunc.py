"""The registered model's MLflow form: a custom pyfunc around :class:`LeadModel`.

MLflow's LightGBM flavour cannot return SHAP values through pyfunc, so the model is
logged once as :class:`LeadScoringModel`. Its artifacts are the pickled
:class:`~training.model.LeadModel` (vocabularies, booster, calibrator, grades,
metadata) and the native booster as ``booster.txt`` (readable by any LightGBM, for
audits, without our code).

**Code by reference.** The pickle refers to ``training.model`` and
``training.calibration`` by import path; loading needs the ``leadscore``
distribution installed, as it is in the service image and on batch workers. We do
not ship ``code_paths``: copying ``features/`` and ``training/`` into each model would
put a second copy of those packages on ``sys.path`` of the service, shadowing the
installed ones in a process that also imports them for features and rules.

**Requirements** are given explicitly (:func:`pip_requirements`), pinned to the
versions installed at training time: inferring them loads the model in a subprocess
and takes seconds per run.
"""

from __future__ import annotations

import pickle
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from training.model import LeadModel

__all__ = [
    "LeadScoringModel",
    "pip_requirements",
    "write_artifacts",
    "output_columns",
    "MODEL_ARTIFACT",
    "BOOSTER_ARTIFACT",
]

MODEL_ARTIFACT = "lead_model"
BOOSTER_ARTIFACT = "booster"

_REQUIREMENTS = ("mlflow", "lightgbm", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle")


def pip_requirements() -> list[str]:
    """Pinned requirements of the pyfunc (the ``leadscore`` package is installed apart)."""
    out = []
    for dist in _REQUIREMENTS:
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            out.append(dist)
    return out


def write_artifacts(model: LeadModel, directory: Path) -> dict[str, str]:
    """Pickle the model and save its booster into ``directory``; the ``artifacts`` dict."""
    directory.mkdir(parents=True, exist_ok=True)
    model_path = directory / "lead_model.pkl"
    with model_path.open("wb") as fh:
        pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)
    booster_path = directory / "booster.txt"
    model.booster_.save_model(str(booster_path))
    return {MODEL_ARTIFACT: str(model_path), BOOSTER_ARTIFACT: str(booster_path)}


def output_columns(feature_names: list[str]) -> list[str]:
    """Columns ``predict`` returns: probability, one contribution per feature, base."""
    return ["probability", *(f"contrib__{n}" for n in feature_names), "base_value"]


class LeadScoringModel(PythonModel):
    """Calibrated probability plus TreeSHAP contributions for frames of feature rows.

    ``predict`` takes the training-set columns minus ``lead_id``, ``as_of`` and
    ``label`` (extra columns are ignored) and returns a DataFrame with
    ``probability``, one ``contrib__<feature>`` column per feature (log-odds of the
    raw margin) and ``base_value``; contributions plus base equal the raw margin.

    Serving reads the :class:`LeadModel` itself from :attr:`model` after
    ``mlflow.pyfunc.load_model(uri).unwrap_python_model()``.
    """

    def __init__(self, model: LeadModel | None = None) -> None:
        # Only set when built in memory (tests); a logged model loads it in load_context,
        # so the pickle of this wrapper stays tiny and version-independent.
        self.model = model

    def load_context(self, context: Any) -> None:
        with open(context.artifacts[MODEL_ARTIFACT], "rb") as fh:
            self.model = pickle.load(fh)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        if self.model is None:
            raise RuntimeError("LeadScoringModel has no model; load it through MLflow.")
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        probability, per_feature, base = self.model.predict_margin_and_contributions(frame)
        data = np.column_stack([probability, per_feature, base])
        return pd.DataFrame(
            data, columns=output_columns(self.model.feature_names), index=frame.index
        )
