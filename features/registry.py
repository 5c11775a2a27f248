"""The feature registry: the feature set declared once, with a version.

Training, serving, the MLflow run tags and the explanation texts all read this
registry; none keeps its own list. Each feature belongs to a business field (several
windows of pricing-page counts are one field, "pricing page visits"), and each field
knows how to say, in plain language, what the lead's values mean.

(The shapes below are the contract; the feature set itself is filled in by the
features issue.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Feature", "BusinessField"]


@dataclass(frozen=True)
class Feature:
    """One model input column."""

    name: str
    field: str
    kind: Literal["numeric", "categorical"]
    description: str


@dataclass(frozen=True)
class BusinessField:
    """A business-level factor that groups one or more features for explanations.

    ``describe(row)`` takes the lead's values of this field's features and returns
    ``(value, sentence)``: the value in plain terms and a sentence a marketer reads,
    e.g. ``(3, "Viewed the pricing page 3 times in the last 7 days")``.
    """

    name: str
    label: str
    features: tuple[str, ...]
    describe: Callable[[Mapping[str, object]], tuple[object, str]]
