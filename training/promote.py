"""The promotion gate: move the ``champion`` alias only to a model that is not worse.

A challenger (a registered version) replaces the champion only if, on the
challenger's own test window (``evaluation/test_frame.parquet`` of its run), with the
champion re-scored on exactly those rows:

- challenger ROC AUC >= champion ROC AUC - :data:`AUC_TOLERANCE` (0.005), and
- challenger ECE <= :data:`MAX_ECE` (0.05).

The first model (no champion yet) becomes champion: it already passed the minimum-data
checks to exist. Every decision, either way, is recorded on the challenger's run (tags
``promotion.*`` and metrics) and on its model version (tags and description).

**Different feature sets.** Each run's test frame carries every *candidate* feature
of its schema (leaky-excluded ones too), so a champion with another feature list is
re-scored on it as long as its columns are there: a registry version that only added
features, or a spec run that allowed one more column, compares fairly. When the
champion needs columns the challenger's test frame does not have (the registry
removed or renamed features, or the two models come from different datasets), the two
cannot be compared on the same window and the gate refuses, saying so; ``force=True``
(``leadscore promote --force``) overrides it, and that too is recorded.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.errors import ModelError
from training.evaluate import expected_calibration_error, safe_auc

if TYPE_CHECKING:
    from leadscore.settings import Settings
    from mlflow import MlflowClient

__all__ = ["AUC_TOLERANCE", "MAX_ECE", "PromotionDecision", "promote", "gate"]

AUC_TOLERANCE = 0.005
MAX_ECE = 0.05


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided for one challenger, and why."""

    promoted: bool
    reason: str
    challenger_version: str
    champion_version: str | None = None
    challenger_auc: float = float("nan")
    challenger_ece: float = float("nan")
    champion_auc: float = float("nan")
    champion_ece: float = float("nan")
    forced: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def gate(challenger_auc: float, challenger_ece: float, champion_auc: float) -> tuple[bool, str]:
    """The rule itself: ``(passes, reason)``."""
    problems = []
    if not challenger_auc >= champion_auc - AUC_TOLERANCE:
        problems.append(
            f"ROC AUC {challenger_auc:.4f} is below the champion's {champion_auc:.4f} minus "
            f"{AUC_TOLERANCE} on the same test window"
        )
    if not challenger_ece <= MAX_ECE:
        problems.append(f"ECE {challenger_ece:.4f} is above {MAX_ECE}")
    if problems:
        return False, "refused: " + "; ".join(problems)
    return True, (f"promoted: ROC AUC {challenger_auc:.4f} vs champion {champion_auc:.4f} "
                  f"(tolerance {AUC_TOLERANCE}), ECE {challenger_ece:.4f} <= {MAX_ECE}")


def _latest_version(client: MlflowClient, name: str) -> str:
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise ModelError(f"No version of registered model {name!r} exists; train one first.")
    return str(max(int(v.version) for v in versions))


def _test_frame(client: MlflowClient, run_id: str) -> pd.DataFrame:
    from training.pipeline import TEST_FRAME_ARTIFACT

    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(run_id, TEST_FRAME_ARTIFACT, tmp)
        return pd.read_parquet(Path(local))


def promote(
    settings: Settings,
    version: str | int | None = None,
    *,
    client: MlflowClient | None = None,
    force: bool = False,
) -> PromotionDecision:
    """Run the gate for ``version`` (default: the latest) and move the alias if it passes."""
    from training import tracking

    client = client or tracking.configure(settings)
    name, alias = settings.model_name, settings.model_alias
    version = str(version) if version is not None else _latest_version(client, name)
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelError(f"Model {name!r} has no version {version}: {exc}") from exc
    current = tracking.resolve_alias(settings, client)

    if current is None:
        decision = PromotionDecision(True, "promoted: first model, no champion yet", version)
    elif current[1] == version:
        decision = PromotionDecision(True, f"version {version} is already {alias}", version,
                                     champion_version=version)
    else:
        decision = _compare(client, mv.run_id, name, version, current, force)

    _record(client, name, version, mv.run_id, decision)
    if decision.promoted:
        client.set_registered_model_alias(name, alias, version)
    return decision


def _compare(client, run_id, name, version, current, force) -> PromotionDecision:
    from training.tracking import load_lead_model

    champion_version = current[1]
    frame = _test_frame(client, run_id)
    y = frame["label"].to_numpy(dtype=int)
    challenger = load_lead_model(f"models:/{name}/{version}")
    champion = load_lead_model(current[2])
    p_new = challenger.predict_proba(frame)
    auc_new, ece_new = safe_auc(y, p_new), expected_calibration_error(y, p_new)
    missing = [c for c in champion.feature_names if c not in frame.columns]
    if missing:
        reason = (
            f"refused: the champion (v{champion_version}, feature set "
            f"{champion.feature_set_version}) needs columns {missing[:10]} that the "
            f"challenger's test window (feature set {challenger.feature_set_version}) lacks, "
            "so they cannot be compared on the same rows"
        )
        if force:
            reason = "forced: " + reason.removeprefix("refused: ")
        return PromotionDecision(force, reason, version, champion_version, auc_new, ece_new,
                                 forced=force)
    p_old = champion.predict_proba(frame)
    auc_old, ece_old = safe_auc(y, p_old), expected_calibration_error(y, p_old)
    passes, reason = gate(auc_new, ece_new, auc_old)
    if not passes and force:
        reason = "forced: " + reason.removeprefix("refused: ")
    return PromotionDecision(passes or force, reason, version, champion_version,
                             auc_new, ece_new, auc_old, ece_old, forced=force and not passes)


def _record(client, name: str, version: str, run_id: str, decision: PromotionDecision) -> None:
    outcome = "promoted" if decision.promoted else "refused"
    tags = {
        "promotion.decision": outcome,
        "promotion.reason": decision.reason[:5000],
        "promotion.champion_version": decision.champion_version or "none",
    }
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
        client.set_model_version_tag(name, version, key, value)
    for key in ("challenger_auc", "challenger_ece", "champion_auc", "champion_ece"):
        value = getattr(decision, key)
        if not np.isnan(value):
            client.log_metric(run_id, f"promotion.{key}", float(value))
    client.update_model_version(name, version, description=f"Promotion gate: {decision.reason}")
