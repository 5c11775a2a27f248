"""The promotion gate: move the ``champion`` alias only to a model that is not worse.

A challenger (a registered version) replaces the champion only if, on the
challenger's own test window (``evaluation/test_frame.parquet`` of its run), with the
champion re-scored on exactly those rows:

- challenger ROC AUC >= champion ROC AUC - ``gate_auc_tolerance`` (0.005), and
- challenger ECE <= ``gate_max_ece`` (0.05),

margins from the settings (``LEADSCORE_GATE_AUC_TOLERANCE``, ``LEADSCORE_GATE_MAX_ECE``;
the defaults are :data:`AUC_TOLERANCE` and :data:`MAX_ECE`).

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

**Alias history.** Every move of the alias by leadscore (a promotion, a forced one, a
rollback) appends an entry to the registered model's tag ``<alias>.history`` (e.g.
``champion.history``): a JSON list of ``{"version", "from", "at", "by", "why",
"action"}``, oldest first. :func:`rollback` reads it as a stack (a promotion pushes, a
rollback pops) to find the previous champion. A move made outside leadscore (the MLflow
UI, ``set_registered_model_alias``) is not in it; the next recorded move names it in
``from``, so the stack still knows it. MLflow caps a tag value at 5,000 characters: the
oldest entries are dropped to fit (about 25 moves are kept).
"""

from __future__ import annotations

import getpass
import json
import socket
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

__all__ = ["AUC_TOLERANCE", "MAX_ECE", "PromotionDecision", "RollbackResult", "promote", "gate",
           "rollback", "alias_history", "move_alias", "history_tag", "actor", "champion_stack"]

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


def gate(challenger_auc: float, challenger_ece: float, champion_auc: float, *,
         tolerance: float = AUC_TOLERANCE, max_ece: float = MAX_ECE) -> tuple[bool, str]:
    """The rule itself: ``(passes, reason)``."""
    problems = []
    if not challenger_auc >= champion_auc - tolerance:
        problems.append(
            f"ROC AUC {challenger_auc:.4f} is below the champion's {champion_auc:.4f} minus "
            f"{tolerance} on the same test window"
        )
    if not challenger_ece <= max_ece:
        problems.append(f"ECE {challenger_ece:.4f} is above {max_ece}")
    if problems:
        return False, "refused: " + "; ".join(problems)
    return True, (f"promoted: ROC AUC {challenger_auc:.4f} vs champion {champion_auc:.4f} "
                  f"(tolerance {tolerance}), ECE {challenger_ece:.4f} <= {max_ece}")


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
    why: str | None = None,
) -> PromotionDecision:
    """Run the gate for ``version`` (default: the latest) and move the alias if it passes.

    A move is appended to the alias history (:func:`move_alias`), with ``why`` (default:
    the gate's reason) and who (:func:`actor`)."""
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
        decision = _compare(client, mv.run_id, name, version, current, force,
                            settings.gate_auc_tolerance, settings.gate_max_ece)

    _record(client, name, version, mv.run_id, decision)
    if decision.promoted and (current is None or current[1] != version):
        move_alias(settings, client, version, from_version=current[1] if current else None,
                   action="force" if decision.forced else "promote",
                   why=why or decision.reason)
    return decision


def _compare(client, run_id, name, version, current, force, tolerance: float = AUC_TOLERANCE,
             max_ece: float = MAX_ECE) -> PromotionDecision:
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
    passes, reason = gate(auc_new, ece_new, auc_old, tolerance=tolerance, max_ece=max_ece)
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


# --------------------------------------------------------------------------- alias history

_MAX_TAG_CHARS = 5000
"""MLflow's limit on a tag value (``MAX_TAG_VAL_LENGTH``)."""


def history_tag(settings: Settings) -> str:
    """The registered-model tag that keeps the alias history, e.g. ``champion.history``."""
    return f"{settings.model_alias}.history"


def actor(settings: Settings) -> str:
    """Who moves the alias: ``settings.actor`` (``LEADSCORE_ACTOR``), else user@host."""
    if settings.actor:
        return settings.actor
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def alias_history(settings: Settings, client: MlflowClient | None = None) -> list[dict]:
    """The alias history, oldest first (empty when nothing was recorded yet)."""
    from mlflow.exceptions import MlflowException

    from training import tracking

    client = client or tracking.configure(settings)
    try:
        model = client.get_registered_model(settings.model_name)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
            return []
        raise
    text = model.tags.get(history_tag(settings))
    if not text:
        return []
    try:
        entries = json.loads(text)
    except ValueError as exc:
        raise ModelError(
            f"The registered model {settings.model_name!r} has a tag "
            f"{history_tag(settings)!r} that is not the JSON list leadscore writes "
            f"({exc}); fix or delete the tag in the registry") from exc
    if not isinstance(entries, list):
        raise ModelError(f"The tag {history_tag(settings)!r} of {settings.model_name!r} must "
                         f"be a JSON list of moves; got {type(entries).__name__}")
    return [e for e in entries if isinstance(e, dict) and "version" in e]


def _fit(entries: list[dict]) -> str:
    """The history as a tag value, dropping the oldest moves until it fits."""
    dropped = 0
    while True:
        kept = entries[dropped:]
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) <= _MAX_TAG_CHARS or len(kept) <= 1:
            return text[:_MAX_TAG_CHARS]
        dropped += 1


def move_alias(settings: Settings, client: MlflowClient, version: str, *,
               from_version: str | None, action: str, why: str) -> dict:
    """Point the alias at ``version`` and append the move to the alias history.

    The history is written first: a move that fails half-way leaves an entry naming a
    move that did not happen (the history says ``from`` and ``version``; ``rollback``
    checks the alias itself), never a move that is not in the history.
    """
    from datetime import UTC, datetime

    entry = {"version": str(version), "from": from_version, "action": action,
             "at": datetime.now(UTC).isoformat(timespec="seconds"), "by": actor(settings),
             "why": why[:300]}
    entries = [*alias_history(settings, client), entry]
    client.set_registered_model_tag(settings.model_name, history_tag(settings), _fit(entries))
    client.set_registered_model_alias(settings.model_name, settings.model_alias, str(version))
    return entry


def champion_stack(entries: list[dict]) -> list[str]:
    """The champions in order as the history tells them: a promotion pushes, a rollback
    pops back to its target. The last is the current champion (if nothing moved the alias
    outside leadscore since)."""
    stack: list[str] = []
    for entry in entries:
        version = str(entry["version"])
        if entry.get("action") == "rollback":
            while stack and stack[-1] != version:
                stack.pop()
            if not stack:
                stack.append(version)
            continue
        before = entry.get("from")
        if before is not None and (not stack or stack[-1] != str(before)):
            stack.append(str(before))  # a move made outside leadscore, named by this one
        stack.append(version)
    return stack


@dataclass(frozen=True)
class RollbackResult:
    """A rollback done: the alias moved from ``from_version`` back to ``version``."""

    version: str
    from_version: str
    entry: dict

    def to_dict(self) -> dict:
        return {"version": self.version, "from": self.from_version, "entry": self.entry}


def rollback(settings: Settings, *, reason: str | None = None,
             client: MlflowClient | None = None) -> RollbackResult:
    """Move the alias back to the previous champion, as the alias history tells it.

    Raises
    ------
    ModelError
        When there is no champion, or no previous champion to go back to (the history
        knows of one champion only), or the previous version no longer exists.
    """
    from mlflow.exceptions import MlflowException

    from training import tracking

    client = client or tracking.configure(settings)
    name, alias = settings.model_name, settings.model_alias
    current = tracking.resolve_alias(settings, client)
    if current is None:
        raise ModelError(f"Model {name!r} has no {alias!r} alias: nothing to roll back")
    stack = champion_stack(alias_history(settings, client))
    if stack and stack[-1] != current[1]:
        # Moved outside leadscore since the last recorded move: go back to that one.
        previous = stack[-1]
    else:
        previous = stack[-2] if len(stack) >= 2 else None
    if previous is None or previous == current[1]:
        known = (f"knows only version {current[1]} as {alias}" if stack else
                 "is empty (the alias was only ever moved outside leadscore)")
        raise ModelError(
            f"No previous {alias} to roll back to: the alias history "
            f"(registered-model tag {history_tag(settings)!r}) {known}. Promote another "
            "version with 'leadscore promote --version N' instead")
    try:
        client.get_model_version(name, previous)
    except MlflowException as exc:
        raise ModelError(f"The previous {alias}, version {previous} of {name!r}, no longer "
                         f"exists in the registry ({exc}); promote a version explicitly "
                         "with 'leadscore promote --version N'") from exc
    why = reason or "rollback"
    entry = move_alias(settings, client, previous, from_version=current[1], action="rollback",
                       why=why)
    for key, value in (("rollback.from_version", current[1]), ("rollback.reason", why[:5000])):
        client.set_model_version_tag(name, previous, key, value)
    return RollbackResult(previous, current[1], entry)
