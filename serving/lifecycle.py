"""Which model is served: resolve, load, check, swap atomically, refuse, poll.

:class:`ModelLifecycle` owns the current :class:`~serving.scorer.Engine`. A request
reads ``lifecycle.engine`` once and keeps that engine to the end, so a swap (a single
reference assignment of a new immutable engine) never disturbs a request in flight.

A candidate version is **refused**, and the old engine keeps serving, when it

- fails to load,
- was trained on another feature set (``feature_set_version`` differs from
  ``features.registry.FEATURE_SET_VERSION``), or
- fails a smoke prediction: a synthetic lead through the whole scoring path must give
  a finite probability in [0, 1] and contributions that add up to the raw margin.

A refused version is not retried until the alias moves to another version (reloading
a broken model every poll would only burn CPU and fill the log). The refusal and its
reason are shown in ``GET /model``. When the registry is unreachable the service keeps
what it has (the rules, at start-up), says so in ``last_poll_error`` and keeps polling.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from serving.scorer import Engine, ModelBundle, score_frame

__all__ = ["Refusal", "ModelLifecycle", "Candidate", "mlflow_resolver", "mlflow_loader", "settle_heap"]

logger = logging.getLogger("leadscore.serving")


@dataclass(frozen=True)
class Candidate:
    """A model version the registry points at (not loaded yet)."""

    name: str
    version: str | None
    alias: str | None
    uri: str


@dataclass(frozen=True)
class Refusal:
    """A version that was refused, and why."""

    version: str | None
    uri: str | None
    reason: str
    at: datetime


Resolver = Callable[[], Candidate | None]
"""Returns the candidate the alias points at, None when there is none; raises when the
registry cannot be reached."""
Loader = Callable[[Candidate], Any]
"""Loads a candidate's LeadModel; raises when it cannot."""


def mlflow_resolver(settings: Any) -> Resolver:
    """Resolve ``settings.model_alias`` of ``settings.model_name`` in the MLflow registry.

    The tracking URI comes from ``settings`` explicitly (never from the current
    directory), via :func:`training.tracking.configure`. A pinned ``settings.model_uri``
    always resolves to itself.
    """
    if settings.model_uri:
        uri = settings.model_uri
        version = uri.rsplit("/", 1)[-1] if uri.startswith("models:/") else None
        pinned = Candidate(settings.model_name, version, None, uri)
        return lambda: pinned

    from training.tracking import configure, resolve_alias

    client = None

    def resolve() -> Candidate | None:
        nonlocal client
        client = client or configure(settings)
        found = resolve_alias(settings, client)
        if found is None:
            return None
        name, version, uri = found
        return Candidate(name, version, settings.model_alias, uri)

    return resolve


def mlflow_loader(settings: Any) -> Loader:
    """Load a candidate's LeadModel through its MLflow pyfunc wrapper.

    The model's explainer (``settings.explainer``, ``LEADSCORE_EXPLAINER``) is built
    here, once per loaded model: the service, ``rescore`` and its Dask workers all load
    through this function, so no request pays for it.
    """
    from training.tracking import configure, load_lead_model

    def load(candidate: Candidate) -> Any:
        # models:/ URIs resolve against the global registry URI: set it from settings.
        configure(settings)
        model = load_lead_model(candidate.uri)
        if hasattr(model, "use_explainer"):
            model.use_explainer(getattr(settings, "explainer", "fast"))
        return model

    return load


def _now() -> datetime:
    return datetime.now(UTC)


def smoke_test(bundle: ModelBundle, rules: Any) -> None:
    """Score one synthetic lead through the whole path; raise if anything is off."""
    feature_set = bundle.model.feature_set() if hasattr(bundle.model, "feature_set") else None
    if feature_set is not None and feature_set.name != "builtin":
        from serving.spec_scoring import spec_smoke_test

        spec_smoke_test(bundle)
        return
    now = pd.Timestamp.now(tz="UTC").floor("s")
    leads = pd.DataFrame({"lead_id": ["smoke-test"], "created_at": [now - pd.Timedelta(days=30)],
                          "source": ["web"], "company_size": [50.0]})
    acts = pd.DataFrame({
        "lead_id": ["smoke-test"] * 2,
        "occurred_at": [now - pd.Timedelta(days=3), now - pd.Timedelta(days=1)],
        "type": ["page_view", "pricing_page_view"],
    })
    engine = Engine(bundle, rules, cold_start_policy="model")
    out = score_frame(leads, acts, engine, as_of=now, top_reasons=3)
    row = out.iloc[0]
    if row["scored_by"] != "model":
        raise ValueError("the smoke prediction failed inside the model (see the log)")
    if not 0.0 <= row["probability"] <= 1.0:
        raise ValueError(f"the smoke prediction gave probability {row['probability']!r}")
    from features.online import features_at

    X = features_at(leads.assign(lead_id=leads["lead_id"].astype("string")),
                    acts.assign(lead_id=acts["lead_id"].astype("string")), now)
    X = X[bundle.model.feature_names]
    contrib, base = bundle.model.contributions(X)
    margin = np.asarray(bundle.model.raw_margin(X), dtype=float)
    if not np.allclose(contrib.sum(axis=1) + base, margin, atol=1e-6):
        raise ValueError("contributions plus base value do not add up to the raw margin")


class ModelLifecycle:
    """Resolve, load, check and swap the served model; poll in a background thread.

    Parameters
    ----------
    rules : rules_fallback.RuleSet
        The fallback, always available.
    resolver : callable
        Returns the :class:`Candidate` to serve (None when there is none).
    loader : callable
        Loads a candidate's LeadModel.
    feature_set_version : str or None
        The feature set version the service speaks; a model trained on another is
        refused. None adopts the first model's (the service then speaks its spec).
    cold_start_policy : {"auto", "model", "rules"}
    poll_interval_s : float or None
        None disables polling (a pinned model).
    """

    def __init__(
        self,
        rules: Any,
        *,
        resolver: Resolver,
        loader: Loader,
        feature_set_version: str | None,
        cold_start_policy: str = "auto",
        matrix_thresholds: Any = None,
        poll_interval_s: float | None = 30.0,
        smoke: Callable[[ModelBundle, Any], None] = smoke_test,
        on_swap: Callable[[], None] | None = None,
    ) -> None:
        self.rules = rules
        self.resolver = resolver
        self.loader = loader
        self.feature_set_version = None if feature_set_version is None else str(feature_set_version)
        self.cold_start_policy = cold_start_policy
        self.matrix_thresholds = matrix_thresholds
        self.poll_interval_s = poll_interval_s
        self.smoke = smoke
        self.on_swap = on_swap  # called after each swap (the service settles its heap)
        # The one reference requests read. Replaced whole, never mutated.
        self.engine: Engine = Engine(None, rules, cold_start_policy,  # type: ignore[arg-type]
                                     matrix_thresholds)
        self.last_refusal: Refusal | None = None
        self.last_poll_at: datetime | None = None
        self.last_poll_error: str | None = None
        self._refused: set[str] = set()
        self._lock = threading.Lock()  # one refresh at a time; requests never take it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- state -------------------------------------------------------------------

    @property
    def status(self) -> str:
        return "ready" if self.engine.model is not None else "degraded"

    # -- refresh -----------------------------------------------------------------

    def refresh(self) -> bool:
        """Check the registry once; load, check and swap if it points elsewhere.

        Returns True when a new version was swapped in. Never raises: a registry
        failure is recorded in ``last_poll_error``, a bad version in ``last_refusal``.
        """
        with self._lock:
            self.last_poll_at = _now()
            try:
                candidate = self.resolver()
            except Exception as exc:  # noqa: BLE001  (recorded, shown in /model, retried)
                self.last_poll_error = f"{type(exc).__name__}: {_first_line(exc)}"
                logger.warning("model registry unreachable: %s", self.last_poll_error)
                return False
            self.last_poll_error = None
            current = self.engine.model
            if candidate is None:
                if current is None:
                    return False
                # The alias was removed: keep serving what we have rather than drop to
                # the rules on a registry edit; /model still names the version served.
                return False
            if current is not None and current.uri == candidate.uri:
                return False
            if candidate.uri in self._refused:
                return False
            bundle_or_reason = self._load_and_check(candidate)
            if isinstance(bundle_or_reason, str):
                self._refuse(candidate, bundle_or_reason)
                return False
            self.engine = Engine(bundle_or_reason, self.rules,  # type: ignore[arg-type]
                                 self.cold_start_policy, self.matrix_thresholds)
            if self.feature_set_version is None:  # the first model sets the contract
                self.feature_set_version = str(bundle_or_reason.model.feature_set_version)
            logger.info(
                "now serving %s version %s (%s)",
                candidate.name, candidate.version, candidate.uri,
            )
            if self.on_swap is not None:
                self.on_swap()
            return True

    def _load_and_check(self, candidate: Candidate) -> ModelBundle | str:
        try:
            model = self.loader(candidate)
        except Exception as exc:  # noqa: BLE001  (the version is refused with the reason)
            return f"failed to load: {type(exc).__name__}: {_first_line(exc)}"
        got = str(getattr(model, "feature_set_version", ""))
        if self.feature_set_version is not None and got != self.feature_set_version:
            return (
                f"feature_set_version {got!r} does not match the {self.feature_set_version!r} "
                "this service speaks; retrain on its feature set (or start a service for "
                "that model's spec: leadscore serve --dataset SPEC)"
            )
        try:
            if hasattr(model, "feature_set"):
                model.feature_set()  # a definition this code cannot rebuild is refused here
        except ValueError as exc:
            return f"its feature set cannot be rebuilt: {_first_line(exc)}"
        bundle = ModelBundle(
            model=model, name=candidate.name, version=candidate.version,
            alias=candidate.alias, uri=candidate.uri, loaded_at=_now(),
        )
        try:
            self.smoke(bundle, self.rules)
        except Exception as exc:  # noqa: BLE001  (the version is refused with the reason)
            return f"failed the smoke prediction: {type(exc).__name__}: {_first_line(exc)}"
        return bundle

    def _refuse(self, candidate: Candidate, reason: str) -> None:
        self._refused.add(candidate.uri)
        self.last_refusal = Refusal(candidate.version, candidate.uri, reason, _now())
        served = self.engine.model
        logger.error(
            "refused %s version %s: %s; still serving %s",
            candidate.name, candidate.version, reason,
            f"version {served.version}" if served else "the rules",
        )

    # -- polling -----------------------------------------------------------------

    def start(self) -> None:
        """Refresh once now, then poll in a daemon thread (unless polling is off)."""
        self.refresh()
        if self.poll_interval_s is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="leadscore-model-poll",
                                        daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def settle_heap() -> None:
    """Take the long-lived objects (libraries, the model) out of the cyclic GC's sight.

    This process holds millions of long-lived objects (BentoML, MLflow, pandas, the
    model), and a full collection walks all of them: about 300 ms on a 2-core machine.
    Pandas allocates fast enough to trigger one every few seconds under load, and each
    stalled every request in flight (measured: p50 48 ms, p99 300 ms). ``gc.freeze()``
    moves what exists now to a generation the collector never scans, so collections
    only walk what requests allocate (under 20 ms). Unfreezing and collecting first
    keeps a replaced model's cycles from being frozen with it.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
