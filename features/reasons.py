"""The reason structure shared by model explanations and fired rules.

A consumer of ``/score`` must not be able to tell a model reason from a rules reason
by its shape: both are a :class:`Reason`. Only the score's ``scored_by`` differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Reason", "select_top"]

T = TypeVar("T")


@dataclass(frozen=True)
class Reason:
    """One business factor behind a score.

    ``field`` is the business field ("pricing_page_visits"), ``label`` its display name
    ("Pricing page visits"), ``value`` the lead's value in plain terms (a number, a
    category or a short text), ``impact`` the signed contribution (log-odds for the
    model, points for the rules; positive raises the score) and ``sentence`` the
    plain-language explanation a marketer reads.
    """

    field: str
    label: str
    value: str | float | int | None
    impact: float
    sentence: str

    def to_dict(self) -> dict:
        # Not dataclasses.asdict: it deep-copies every value (all immutable here), and
        # was a fifth of the service's per-lead time.
        return {"field": self.field, "label": self.label, "value": self.value,
                "impact": self.impact, "sentence": self.sentence}


def select_top(items: Iterable[T], top: int, impact: Callable[[T], float]) -> list[T]:
    """The ``top`` largest positive items by ``impact``, then the ``top`` most negative.

    Sorts are stable: items of equal impact keep the order they came in. The one rule for
    which reasons a score shows, for reasons already built and for fields not yet
    described (:meth:`features.registry.FeatureSet.top_reasons`).
    """
    if top <= 0:
        return []
    items = list(items)
    positive = sorted((r for r in items if impact(r) > 0), key=lambda r: -impact(r))[:top]
    negative = sorted((r for r in items if impact(r) < 0), key=impact)[:top]
    return positive + negative
