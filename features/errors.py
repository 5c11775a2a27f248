"""The one exception tree of leadscore.

Every error raised at a boundary (data files, YAML specs and rule files, the CLI,
the API) derives from :class:`LeadscoreError`, and each message names the field,
the value received and what was expected. It lives in ``features`` because that is
the lowest layer: every other package may import it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LeadscoreError",
    "ValidationIssue",
    "DataValidationError",
    "SpecError",
    "RulesError",
    "InsufficientDataError",
    "ModelError",
]


class LeadscoreError(Exception):
    """Base class of every error leadscore raises on purpose."""


@dataclass(frozen=True)
class ValidationIssue:
    """One bad value in one row of one table."""

    table: str
    field: str
    value: object
    expected: str
    row: int | None = None
    lead_id: str | None = None

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.lead_id is not None:
            where.append(f"lead_id {self.lead_id}")
        suffix = f" ({', '.join(where)})" if where else ""
        return f"{self.table}.{self.field}: {self.value!r} {self.expected}{suffix}"


class DataValidationError(LeadscoreError, ValueError):
    """A table broke the data contract. ``issues`` lists every bad value found."""

    max_shown = 20

    def __init__(self, issues: list[ValidationIssue]):
        self.issues = list(issues)
        shown = "\n".join(f"  {issue}" for issue in self.issues[: self.max_shown])
        more = len(self.issues) - self.max_shown
        tail = f"\n  ... and {more} more" if more > 0 else ""
        noun = "problem" if len(self.issues) == 1 else "problems"
        super().__init__(f"{len(self.issues)} data {noun}:\n{shown}{tail}")


class SpecError(LeadscoreError, ValueError):
    """A YAML dataset spec is invalid; the message names the key and the problem."""


class RulesError(LeadscoreError, ValueError):
    """A rules file is invalid; the message names the rule and the problem."""


class InsufficientDataError(LeadscoreError, ValueError):
    """There is too little data to do what was asked (train, split, calibrate)."""


class ModelError(LeadscoreError, RuntimeError):
    """A model could not be loaded, validated or used."""
