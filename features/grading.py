"""From a calibrated probability to what sales and marketing act on: score, grade, route.

Shared by the model and the rules so that both answer in the same terms. The model
derives its thresholds from the score distribution at training time and ships them
with itself; a rules file states its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["GRADES", "Grading", "score_from_probability"]

GRADES: tuple[str, ...] = ("A", "B", "C", "D")


def score_from_probability(probability: np.ndarray) -> np.ndarray:
    """The 0-100 score: the calibrated probability in percent, rounded to an integer."""
    return np.clip(np.rint(np.asarray(probability, dtype=float) * 100.0), 0, 100).astype(int)


@dataclass(frozen=True)
class Grading:
    """Grade thresholds on the 0-100 score, and which grades go to sales.

    A lead gets grade A when its score is at least ``a``, B at least ``b``, C at least
    ``c``, else D. Leads whose grade is in ``sales_grades`` are routed to sales; the
    rest stay in nurture.
    """

    a: float
    b: float
    c: float
    sales_grades: tuple[str, ...] = ("A", "B")

    def __post_init__(self) -> None:
        if not (100 >= self.a >= self.b >= self.c >= 0):
            raise ValueError(
                "The grade thresholds of Grading must satisfy 100 >= a >= b >= c >= 0. "
                f"Got a={self.a}, b={self.b}, c={self.c} instead."
            )
        unknown = set(self.sales_grades) - set(GRADES)
        if unknown:
            raise ValueError(
                f"The 'sales_grades' parameter of Grading must be a subset of {GRADES}. "
                f"Got {sorted(unknown)} instead."
            )

    def grade(self, score: np.ndarray) -> np.ndarray:
        """Grade letters for an array of 0-100 scores."""
        score = np.asarray(score, dtype=float)
        return np.select(
            [score >= self.a, score >= self.b, score >= self.c], ["A", "B", "C"], default="D"
        )

    def route(self, grade: np.ndarray) -> np.ndarray:
        """'sales' or 'nurture' for an array of grades."""
        return np.where(np.isin(grade, self.sales_grades), "sales", "nurture")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["sales_grades"] = list(self.sales_grades)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> Grading:
        return cls(
            a=float(data["a"]), b=float(data["b"]), c=float(data["c"]),
            sales_grades=tuple(data.get("sales_grades", ("A", "B"))),
        )
