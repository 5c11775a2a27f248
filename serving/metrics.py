"""Prometheus counters of what the service answered, on BentoML's ``/metrics``.

BentoML already counts requests, their status codes and durations. These add what an
operator of a scoring service watches next to them:

- ``leadscore_scored_leads_total{scored_by, fallback_reason, model_version}``: every
  lead answered, by who answered it. A rising share of ``fallback_reason="model_error"``
  or ``"no_model"`` is the alert that matters: the CRM still gets scores, from the rules.
- ``leadscore_scoring_calls_total`` and ``leadscore_coalesced_requests_total``: calls of
  the scoring core and the ``/score`` requests they answered; requests per call is how
  much the coalescer batched (see :mod:`serving.coalescer`).
- ``leadscore_batch_score_psi`` and ``leadscore_batch_drifted_features``: the last
  committed rescore run's drift (:mod:`serving.health`), refreshed at most once per poll
  interval when ``/score`` or ``/model`` is called.

``/metrics`` needs the API key like every endpoint but health and docs (a scraper sends
``Authorization: Bearer <key>``). No label carries lead data.

``prometheus_client`` is imported when the counters are first made, in the worker, after
BentoML has set ``PROMETHEUS_MULTIPROC_DIR``: imported earlier, it would count in
single-process mode and the counts of every worker would be lost to ``/metrics``.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ServiceCounters", "service_counters"]


@dataclass(frozen=True)
class ServiceCounters:
    """The service's own counters (one set per process, see :func:`service_counters`)."""

    leads: Any
    calls: Any
    requests: Any
    score_psi: Any = None
    drifted: Any = None

    def batch_health(self, health: Mapping[str, Any] | None) -> None:
        """Set the gauges of the last batch run's drift (NaN when there is none)."""
        if self.score_psi is None:
            return
        psi = None if health is None else health.get("score_psi")
        self.score_psi.set(float("nan") if psi is None else float(psi))
        self.drifted.set(float("nan") if health is None else float(health["n_drifted"]))

    def scored(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Count the leads of one answer by ``scored_by``, fallback reason and version."""
        counts = Counter(
            (row["scored_by"], row["fallback_reason"] or "none", row["model_version"] or "")
            for row in rows
        )
        for (by, why, version), n in counts.items():
            self.leads.labels(scored_by=by, fallback_reason=why, model_version=version).inc(n)

    def call(self, calls: int, requests: int) -> None:
        """Count a batch of the coalescer: the scoring calls it took and the requests it
        answered (each request once, even when a failed coalesced call was retried)."""
        self.calls.inc(calls)
        self.requests.inc(requests)


@functools.cache
def service_counters() -> ServiceCounters:
    """The process's counters, registered once (a second registration would fail)."""
    import prometheus_client as prom

    return ServiceCounters(
        leads=prom.Counter(
            "leadscore_scored_leads", "Leads answered, by who answered (model or rules), "
            "why the rules answered, and the model version.",
            ["scored_by", "fallback_reason", "model_version"],
        ),
        calls=prom.Counter("leadscore_scoring_calls", "Calls of the scoring core."),
        requests=prom.Counter(
            "leadscore_coalesced_requests",
            "/score requests answered by the scoring core (divide by the calls for the "
            "requests per call).",
        ),
        # "mostrecent": every worker reads the same file; the newest value is the one.
        score_psi=prom.Gauge(
            "leadscore_batch_score_psi",
            "PSI of the score in the last committed rescore run against the model's "
            "training window (NaN: no run configured or written).",
            multiprocess_mode="mostrecent",
        ),
        drifted=prom.Gauge(
            "leadscore_batch_drifted_features",
            "Features whose PSI was above the alert level in the last committed rescore run.",
            multiprocess_mode="mostrecent",
        ),
    )
