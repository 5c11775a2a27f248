"""The reason structure shared by model explanations and fired rules.

A consumer of ``/score`` must not be able to tell a model reason from a rules reason
by its shape: both are a :class:`Reason`. Only the score's ``scored_by`` differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["Reason"]


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
        return asdict(self)
