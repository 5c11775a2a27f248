"""Rules for a user's CRM: rules files checked against a dataset spec, and spec leads scored.

The built-in rules file (:mod:`rules_fallback.rules`) names the fields of the built-in
data contract. A rules file for a dataset spec has the same sections, keys and
monotonicity contract (positive points in ``fit_rules`` and ``engagement_rules``,
negative points in ``negative_rules``), but names the spec's own fields and kinds:

- **fields by their safe name**, the snake_case name the spec's loader and the model
  give the column (``lead_source`` for the CRM column "Lead Source", or the entry's
  ``name:`` when the spec sets one, e.g. ``product`` for OULAD's ``code_module``).
  Those are the names the frames of :class:`~features.spec.SpecTables` carry, the
  model's business fields and the names a rule's ``field`` may take (snake_case). A
  rule naming the CRM's column instead is refused with the safe name to write;
- ``lead_age_days`` (days since ``created_at`` at scoring time) when the spec has time;
- **activities by kind name** (``forum``, ``quiz``): the ``type`` value that
  :func:`~features.spec.load_tables` gives a mapped CRM type (a type the spec leaves
  unmapped is not a rules activity: map it to a kind). ``where`` conditions may test
  the activity table's value columns (OULAD's ``count``);
- never a ``pii`` column nor a ``leaky`` one (outcomes recorded after contact).

:func:`parse_spec_rules` and :func:`load_spec_rules` read such a file and check it
against a :class:`SpecVocabulary` (built from the spec alone, no data needed), raising
one :class:`~features.errors.RulesError` listing every problem with the rule, the
field, the value, what was expected and a did-you-mean. :func:`score_spec_leads`
scores ``SpecTables``-shaped frames with the shared engine and returns what
:func:`~rules_fallback.score_leads` returns.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, field_validator

from features.errors import RulesError
from rules_fallback.engine import Evaluation, evaluate, score_leads
from rules_fallback.rules import (
    Condition,
    EngagementRule,
    FitRule,
    InactivityRule,
    RuleSet,
    _describe_error,
    _negative_kind,
    _node_at,
)

__all__ = [
    "SpecVocabulary",
    "SpecRuleSet",
    "parse_spec_rules",
    "load_spec_rules",
    "check_spec_rules",
    "evaluate_spec",
    "score_spec_leads",
]

LEAD_AGE = "lead_age_days"


# ------------------------------------------------------------------------ vocabulary


@dataclass(frozen=True)
class SpecVocabulary:
    """What a spec's rules may name: its fit fields, kinds and activity values.

    ``categorical`` and ``numeric`` map each safe name to its display label,
    ``original_names`` each safe name to the CRM's column, ``kinds`` each kind name to
    ``(label, weight)``. ``pii`` and ``leaky`` map safe names to the CRM's columns that
    rules may never use.
    """

    name: str
    categorical: dict[str, str]
    numeric: dict[str, str]
    original_names: dict[str, str]
    kinds: dict[str, tuple[str, float]]
    activity_values: tuple[str, ...]
    pii: dict[str, str]
    leaky: dict[str, str]
    has_time: bool
    has_activities: bool

    @classmethod
    def from_spec(cls, spec: Any) -> SpecVocabulary:
        """The vocabulary of a loaded spec (version 1 or 2); reads no data."""
        from features.spec import safe_name

        columns = spec.tables.leads.columns if hasattr(spec, "tables") else spec.columns

        def named(entries: Any) -> dict[str, Any]:
            return {(e.name or safe_name(e.column)): e for e in entries}

        categorical = named(columns.categorical)
        numeric = named(columns.numeric)
        activities = getattr(getattr(spec, "tables", None), "activities", None)
        kinds = {}
        values: tuple[str, ...] = ()
        if activities is not None:
            kinds = {k: (v.label, float(v.weight)) for k, v in activities.kinds.items()}
            values = tuple(activities.columns.values)
        return cls(
            name=spec.name or "spec",
            categorical={k: e.label or e.column for k, e in categorical.items()},
            numeric={k: e.label or e.column for k, e in numeric.items()},
            original_names={k: e.column for k, e in {**categorical, **numeric}.items()},
            kinds=kinds,
            activity_values=values,
            pii={safe_name(e.column): e.column for e in columns.pii},
            leaky={(e.name or safe_name(e.column)): e.column for e in columns.leaky},
            has_time=bool(spec.has_time),
            has_activities=activities is not None,
        )

    @property
    def fit_fields(self) -> tuple[str, ...]:
        """Lead fields a fit rule may test, safe names (then ``lead_age_days`` with time)."""
        return (*self.categorical, *self.numeric, *((LEAD_AGE,) if self.has_time else ()))

    def is_numeric(self, field: str) -> bool:
        return field in self.numeric or field == LEAD_AGE

    def label(self, field: str) -> str:
        """The display label of a fit field."""
        if field == LEAD_AGE:
            return "Lead age"
        return self.categorical.get(field) or self.numeric.get(field) or field


# --------------------------------------------------------------------------- schema


class SpecFitRule(FitRule):
    """A fit rule whose fields are checked against a spec, not the built-in contract."""

    @field_validator("when")
    @classmethod
    def _lead_fields(cls, value: list[Condition]) -> list[Condition]:
        return value


class SpecEngagementRule(EngagementRule):
    """An engagement rule on a spec's kinds (checked by :func:`check_spec_rules`)."""

    @field_validator("where")
    @classmethod
    def _activity_fields(cls, value: list[Condition]) -> list[Condition]:
        return value


class SpecInactivityRule(InactivityRule):
    """An inactivity rule; with a spec, ``ignore_activities`` names kinds (default none)."""

    ignore_activities: list[str] = Field(default_factory=list)


SpecNegativeRule = Annotated[
    Annotated[SpecFitRule, Tag("fit")]
    | Annotated[SpecEngagementRule, Tag("engagement")]
    | Annotated[SpecInactivityRule, Tag("inactivity")],
    Discriminator(_negative_kind),
]


class SpecRuleSet(RuleSet):
    """A rule set for a dataset spec: the built-in schema with the spec's fields and kinds.

    ``dataset`` records the spec's name the file was written for. The section checks
    (signs, unique names, inactivity against negative activities) are those of
    :class:`~rules_fallback.rules.RuleSet`; field and kind names are checked against a
    :class:`SpecVocabulary` by :func:`check_spec_rules`.
    """

    dataset: str | None = Field(default=None, description="The spec the rules are for.")
    fit_rules: list[SpecFitRule] = Field(default_factory=list)
    engagement_rules: list[SpecEngagementRule] = Field(default_factory=list)
    negative_rules: list[SpecNegativeRule] = Field(default_factory=list)

    def _known_activities(self) -> tuple[str, ...] | None:
        # The parent's checks (unique names, negative kinds ignored by inactivity rules)
        # apply as they are; kinds are checked against the spec by check_spec_rules.
        return None

    def with_mapping(self, **changes: float) -> SpecRuleSet:
        """A copy with some mapping values replaced (validated)."""
        data = self.model_dump(by_alias=True)
        data["mapping"].update(changes)
        return SpecRuleSet.model_validate(data)

    def with_grading(self, a: float, b: float, c: float) -> SpecRuleSet:
        """A copy with other grade thresholds (validated)."""
        data = self.model_dump(by_alias=True)
        data["grading"].update(a=a, b=b, c=c)
        return SpecRuleSet.model_validate(data)


# ---------------------------------------------------------------------- spec checks


def _did_you_mean(name: str, candidates: Any) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _shown(condition: Condition) -> str:
    op = condition.operator
    value = {"equals": condition.equals, "in": condition.in_, "regex": condition.regex}.get(op)
    if op == "range":
        value = condition.range.model_dump(exclude_none=True)
    return f"{op} {value!r}"


def _field_problem(field: str, vocabulary: SpecVocabulary, allowed: tuple[str, ...],
                   where: str) -> str | None:
    if field in allowed:
        return None
    by_column = {v.lower(): k for k, v in vocabulary.original_names.items()}
    if field in vocabulary.pii.values() or field in vocabulary.pii:
        return (f"{where} field {field!r} is a pii column of spec {vocabulary.name!r}: personal "
                "data is never a rules field")
    if field in vocabulary.leaky or field in vocabulary.leaky.values():
        return (f"{where} field {field!r} is marked leaky in spec {vocabulary.name!r} (recorded "
                "after the outcome); rules cannot use it")
    hint = ""
    if field.strip().lower() in by_column:
        safe = by_column[field.strip().lower()]
        hint = f"; {field!r} is the CRM's column, which rules name {safe!r}"
    else:
        hint = _did_you_mean(field, allowed)
    return (f"{where} field {field!r} is not a field of spec {vocabulary.name!r}; expected one "
            f"of {list(allowed)}{hint}")


def _condition_problems(conditions: list[Condition], vocabulary: SpecVocabulary,
                        allowed: tuple[str, ...], numeric: Any, where: str) -> list[tuple[str, str]]:
    """(problem, key) for each condition that breaks the spec."""
    out = []
    for i, condition in enumerate(conditions):
        problem = _field_problem(condition.field, vocabulary, allowed, where)
        if problem is not None:
            out.append((f"{problem} (condition {_shown(condition)})", f"{i}.field"))
            continue
        wanted = [condition.equals] if condition.in_ is None else condition.in_
        text = [v for v in wanted if isinstance(v, str | bool)]
        if numeric(condition.field):
            if condition.regex is None and condition.range is None and text:
                out.append((f"{condition.field!r} is a number; got {text[0]!r}. Compare it "
                            "with numbers or use 'range'", f"{i}.field"))
        elif condition.range is not None:
            out.append((f"'range' needs a numeric field; {condition.field!r} is a category "
                        f"(numeric fields: {list(vocabulary.numeric)})", f"{i}.range"))
    return out


def check_spec_rules(rules: RuleSet, vocabulary: SpecVocabulary) -> list[tuple[str, int, str, str]]:
    """Every way ``rules`` breaks ``vocabulary``: ``(section, index, key, problem)``, in file order.

    Fit conditions must name the spec's fit fields (safe names), engagement rules its
    kinds, ``where`` conditions its activity value columns; inactivity needs time.
    """
    kinds = tuple(vocabulary.kinds)
    values = vocabulary.activity_values
    problems = []
    for section in ("fit_rules", "engagement_rules", "negative_rules"):
        for index, rule in enumerate(getattr(rules, section)):
            if isinstance(rule, FitRule):
                found = _condition_problems(rule.when, vocabulary, vocabulary.fit_fields,
                                            vocabulary.is_numeric, "lead")
                problems += [(section, index, f"when.{k}", p) for p, k in found]
            elif isinstance(rule, EngagementRule):
                if not vocabulary.has_activities:
                    problems.append((section, index, "activity",
                                     f"spec {vocabulary.name!r} has no activities table; "
                                     f"activity {rule.activity!r} cannot be counted"))
                elif rule.activity not in kinds:
                    problems.append((section, index, "activity",
                                     f"activity {rule.activity!r} is not a kind of spec "
                                     f"{vocabulary.name!r}; expected one of {list(kinds)}"
                                     f"{_did_you_mean(rule.activity, kinds)}"))
                found = _condition_problems(rule.where, vocabulary, values,
                                            lambda f: True, "activity")
                problems += [(section, index, f"where.{k}", p) for p, k in found]
            else:
                if not vocabulary.has_time:
                    problems.append((section, index, "inactive_days",
                                     f"spec {vocabulary.name!r} has no created_at, so "
                                     "inactivity cannot be measured"))
                for t in rule.ignore_activities:
                    if t not in kinds:
                        problems.append((section, index, "ignore_activities",
                                         f"{t!r} is not a kind of spec {vocabulary.name!r}; "
                                         f"expected some of {list(kinds)}{_did_you_mean(t, kinds)}"))
    return problems


def _loc_text(data: Any, root: yaml.Node | None, section: str, index: int, key: str) -> str:
    rules = data.get(section) if isinstance(data, dict) else None
    name = None
    if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
        name = rules[index].get("name")
    head = f"rule {name!r} ({section}[{index}])" if name else f"{section}[{index}]"
    parts = [p for p in key.split(".")]
    loc: list[Any] = [section, index]
    for p in parts:
        loc.append(int(p) if p.isdigit() else p)
    node = _node_at(root, tuple(loc))
    line = f", line {node.start_mark.line + 1}" if node is not None else ""
    return f"{head}, key {key}{line}"


def _field_hint(error: dict, vocabulary: SpecVocabulary) -> str:
    """For a field name the schema refuses (a CRM column, say): what the spec calls it."""
    value = error.get("input")
    if error.get("type") != "string_pattern_mismatch" or not isinstance(value, str):
        return ""
    if not error.get("loc") or error["loc"][-1] != "field":
        return ""
    problem = _field_problem(value, vocabulary, tuple(vocabulary.fit_fields), "")
    return "" if problem is None else "; " + problem.strip()


def parse_spec_rules(text: str, vocabulary: SpecVocabulary, *, source: str = "<string>") -> SpecRuleSet:
    """Validate a spec's rules given as YAML text, against the schema and the spec.

    Raises
    ------
    RulesError
        Listing every problem: the rule (name and index), the key, the field or kind
        and the value received, what the spec has instead (with a did-you-mean) and
        the line in the file.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RulesError(f"{source}: not valid YAML{line}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise RulesError(
            f"{source}: expected a mapping with keys such as 'version', 'fit_rules', "
            f"'engagement_rules', 'grading'; got {'nothing' if data is None else type(data).__name__}"
        )
    try:
        rules = SpecRuleSet.model_validate(data)
    except ValidationError as exc:
        problems = [_describe_error(e, data, root) + _field_hint(e, vocabulary)
                    for e in exc.errors()]
    else:
        problems = [
            f"{_loc_text(data, root, s, i, k)}: {p}"
            for s, i, k, p in check_spec_rules(rules, vocabulary)
        ]
        if rules.dataset is not None and rules.dataset != vocabulary.name:
            problems.append(f"key dataset: the rules were written for spec {rules.dataset!r}, "
                            f"not {vocabulary.name!r}")
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        body = "\n".join(f"  {p}" for p in problems)
        raise RulesError(
            f"{source}: {len(problems)} {noun} in the rules file for spec "
            f"{vocabulary.name!r}:\n{body}"
        )
    return rules


def load_spec_rules(path: str | Path, vocabulary: SpecVocabulary) -> SpecRuleSet:
    """Load a rules file and check it against a spec; see :func:`parse_spec_rules`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {str(path)!r}: {exc.strerror or exc}") from exc
    return parse_spec_rules(text, vocabulary, source=str(path))


# --------------------------------------------------------------------------- scoring


def _empty_activities() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": pd.Series([], dtype="string"),
            "occurred_at": pd.Series([], dtype="datetime64[ns, UTC]"),
            "type": pd.Series([], dtype="string"),
        }
    )


def _prepared(rules: RuleSet, leads: pd.DataFrame,
              activities: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "lead_id" not in leads.columns:
        raise ValueError("leads has no 'lead_id' column; expected SpecTables.leads")
    if activities is None:
        activities = _empty_activities()
    else:
        absent = [c for c in ("lead_id", "occurred_at", "type") if c not in activities.columns]
        if absent:
            raise ValueError(
                f"activities has no {absent[0]!r} column; expected SpecTables.activities "
                "(lead_id, occurred_at, type = the kind name)"
            )
    needs_time = any(isinstance(r, InactivityRule) for r in rules.rules) or any(
        c.field == LEAD_AGE for r in rules.rules if isinstance(r, FitRule) for c in r.when
    )
    if needs_time and "created_at" not in leads.columns:
        raise ValueError(
            "the rules use lead age or inactivity, but leads has no 'created_at' column"
        )
    if "created_at" not in leads.columns:
        # The engine reads creation times only for lead age and inactivity (checked above).
        leads = leads.assign(created_at=pd.Series(pd.NaT, index=leads.index,
                                                  dtype="datetime64[ns, UTC]"))
    return leads, activities


def evaluate_spec(rules: RuleSet, leads: pd.DataFrame, activities: pd.DataFrame | None,
                  as_of: Any) -> Evaluation:
    """:func:`~rules_fallback.evaluate` on spec frames; see :func:`score_spec_leads`."""
    leads, activities = _prepared(rules, leads, activities)
    return evaluate(rules, leads, activities, as_of)


def score_spec_leads(
    rules: RuleSet,
    leads: pd.DataFrame,
    activities: pd.DataFrame | None,
    as_of: Any,
    *,
    top_reasons: int = 3,
    reasons: bool = True,
    parts: bool = False,
) -> pd.DataFrame:
    """Score a spec's leads with a spec's rules, for the cold-start fallback of spec models.

    Parameters
    ----------
    rules : RuleSet
        From :func:`load_spec_rules` (checked against the spec the frames come from).
    leads : pandas.DataFrame
        Shaped like :attr:`SpecTables.leads <features.spec.SpecTables>`: ``lead_id``,
        ``created_at`` (UTC, when the spec has time), the fit features under their safe
        names (categorical as ``string``, numeric as ``float64``). A lead may appear on
        several rows, each with its own ``as_of``.
    activities : pandas.DataFrame or None
        Shaped like :attr:`SpecTables.activities`: ``lead_id``, ``occurred_at`` (UTC),
        ``type`` (the kind name), value columns. None for a spec without activities.
    as_of : timestamp or pandas.Series
        One UTC timestamp or one per row; only activities strictly before it count.
    top_reasons, reasons, parts
        As :func:`rules_fallback.score_leads`.

    Returns
    -------
    pandas.DataFrame
        The columns of :func:`rules_fallback.score_leads`: ``lead_id``, ``points``,
        ``probability``, ``score``, ``grade``, ``route`` and ``reasons`` (labels and
        sentences in the spec's words).
    """
    if not isinstance(top_reasons, int) or top_reasons < 0:
        raise ValueError(
            f"The 'top_reasons' parameter of score_spec_leads must be an int >= 0. "
            f"Got {top_reasons!r} instead."
        )
    leads, activities = _prepared(rules, leads, activities)
    return score_leads(rules, leads, activities, as_of, top_reasons=top_reasons, reasons=reasons,
                       parts=parts)
