"""The rules file: a typed schema for points rules, loaded with errors that name the rule.

A rule set has four parts:

``fit_rules``
    Points for who the lead is: conditions on lead fields (``seniority``,
    ``company_size``, ``industry`` ...) and on facts derived from them
    (``email_domain_type``: free, education, corporate or missing, computed from
    ``email``, which itself is never output).
``engagement_rules``
    Points per occurrence of an activity type, optionally only where a condition on the
    activity holds (``url``, ``campaign``, ``duration_s``), counted within a window of
    days, each occurrence decayed by its age with a half-life, and capped per rule.
``negative_rules``
    The same two kinds with negative points (students, competitors, free mail,
    unsubscribes), plus inactivity rules: a penalty when the lead has not engaged for
    some days.
``mapping`` and ``grading``
    A global cap on the total, the logistic map from points to a probability
    ``p = 1 / (1 + exp(-(intercept + slope * points)))`` and the grade thresholds on
    the 0-100 score.

Positive rules must have positive points and negative rules negative points. That is
what makes the engine monotone: one more positive activity never lowers a score, and
one more negative one never raises it (the tests prove both).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from features.errors import RulesError
from features.grading import Grading
from features.schema import (
    ACTIVITY_OPTIONAL_FIELDS,
    ACTIVITY_TYPES,
    LEAD_CATEGORICAL_FIELDS,
    LEAD_NUMERIC_FIELDS,
    LEAD_PII_FIELDS,
)

# libyaml's loader where PyYAML was built with it (the wheels are): same documents, same
# marks, several times faster than the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

__all__ = [
    "DEFAULT_RULES_PATH",
    "DERIVED_LEAD_FIELDS",
    "Condition",
    "FitRule",
    "EngagementRule",
    "InactivityRule",
    "Mapping",
    "GradingSpec",
    "RuleSet",
    "load_rules",
    "parse_rules",
]

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")

DERIVED_LEAD_FIELDS: tuple[str, ...] = ("email_domain_type", "email_domain", "lead_age_days")
"""Facts computed from lead fields. ``email_domain`` may be matched but is never output."""

_LEAD_FIELDS = (*LEAD_CATEGORICAL_FIELDS, *LEAD_NUMERIC_FIELDS, *DERIVED_LEAD_FIELDS)
_ACTIVITY_FIELDS = ACTIVITY_OPTIONAL_FIELDS
_NUMERIC_FIELDS = (*LEAD_NUMERIC_FIELDS, "lead_age_days", "duration_s")
_NAME_RE = r"^[a-z][a-z0-9_]*$"

Scalar = str | int | float | bool


class _At(ValueError):
    """A schema problem that knows where it is below the validator that found it.

    Cross-rule checks run on the whole rule set or section, so pydantic alone would
    locate them there; ``loc`` points the message (and the YAML line) at the rule.
    """

    def __init__(self, message: str, *loc: str | int):
        super().__init__(message)
        self.loc = loc


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Range(_Strict):
    """``min <= value < max``; either bound may be left out."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is None and self.max is None:
            raise ValueError("a range needs at least one of 'min' and 'max'")
        if self.min is not None and self.max is not None and not self.min < self.max:
            raise ValueError(f"a range needs min < max; got min={self.min}, max={self.max}")
        return self


class Condition(_Strict):
    """One test on one field, with exactly one operator.

    Text comparisons (``equals``, ``in``) ignore case and surrounding spaces, because
    CRM picklists are typed by hand ("VP", "vp ", "Vp"). ``regex`` is searched
    anywhere in the value, ignoring case. A missing value never matches, and
    ``negate: true`` does not make it match either: unknown is not evidence.
    """

    field: str
    equals: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    range: Range | None = None
    regex: str | None = None
    negate: bool = False

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [
            op
            for op, value in (
                ("equals", self.equals),
                ("in", self.in_),
                ("range", self.range),
                ("regex", self.regex),
            )
            if value is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "a condition needs exactly one operator of equals, in, range, regex; "
                f"got {given or 'none'}"
            )
        return self

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a valid regular expression: {exc}") from exc
        return value

    @property
    def operator(self) -> str:
        for op, value in (
            ("equals", self.equals),
            ("in", self.in_),
            ("range", self.range),
            ("regex", self.regex),
        ):
            if value is not None:
                return op
        raise AssertionError("validated conditions have one operator")


def _check_fields(conditions: list[Condition], allowed: tuple[str, ...], where: str) -> None:
    for condition in conditions:
        if condition.field in LEAD_PII_FIELDS:
            raise ValueError(
                f"field {condition.field!r} is personal data and cannot be used by a rule; "
                "use a derived fact such as 'email_domain_type'"
            )
        if condition.field not in allowed:
            raise ValueError(
                f"unknown {where} field {condition.field!r}; expected one of {list(allowed)}"
            )
        if condition.field in _NUMERIC_FIELDS:
            wanted = [condition.equals] if condition.in_ is None else condition.in_
            text = [v for v in wanted if isinstance(v, str | bool)]
            if condition.regex is None and condition.range is None and text:
                raise ValueError(
                    f"{condition.field!r} is a number; got {text[0]!r}. Compare it with "
                    "numbers or use 'range'"
                )
        if condition.range is not None and condition.field in (
            *LEAD_CATEGORICAL_FIELDS,
            "email_domain_type",
            "email_domain",
            "url",
            "campaign",
        ):
            raise ValueError(f"'range' needs a numeric field; {condition.field!r} is text")


def _as_list(value: Any) -> Any:
    """Let a single condition be written without a list."""
    return [value] if isinstance(value, dict) else value


def _check_template(template: str, allowed: tuple[str, ...]) -> str:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"sentence {template!r} is not a valid template: {exc}") from exc
    unknown = sorted(names - set(allowed))
    if unknown:
        raise ValueError(
            f"sentence uses unknown placeholder(s) {unknown}; expected some of {list(allowed)}"
        )
    return template


class _Rule(_Strict):
    name: str = Field(pattern=_NAME_RE, description="Unique id, snake_case.")
    field: str = Field(
        pattern=_NAME_RE,
        description="The business field the reason is reported under, as the model names it.",
    )
    label: str = Field(min_length=1, description="Display name of the business field.")
    points: float
    sentence: str = Field(min_length=1, description="What the lead did or is, in plain words.")
    value: Scalar | None = Field(
        default=None, description="Value shown in the reason instead of the lead's own."
    )

    @field_validator("points")
    @classmethod
    def _finite_nonzero(cls, value: float) -> float:
        if not math.isfinite(value) or value == 0:
            raise ValueError(f"points must be a finite non-zero number; got {value}")
        return value


class FitRule(_Rule):
    """Points when every condition on the lead holds.

    Sentence placeholders: ``{value}`` (the lead's value of the first condition's field,
    or the rule's ``value``).
    """

    kind: Literal["fit"] = "fit"
    when: Annotated[list[Condition], Field(min_length=1)]

    @field_validator("when", mode="before")
    @classmethod
    def _single_when(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("when")
    @classmethod
    def _lead_fields(cls, value: list[Condition]) -> list[Condition]:
        _check_fields(value, _LEAD_FIELDS, "lead")
        return value

    @field_validator("sentence")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_template(value, ("value",))

    @model_validator(mode="after")
    def _no_domain_output(self) -> FitRule:
        # The raw email domain names the lead's employer; only a stated value is shown.
        if self.when[0].field == "email_domain" and self.value is None:
            raise ValueError(
                "a rule whose first condition is on 'email_domain' needs a 'value' to show "
                "instead of the domain, e.g. value: competitor"
            )
        return self


class EngagementRule(_Rule):
    """Points per occurrence of an activity, decayed by age, within a window, capped.

    An occurrence ``age`` days before ``as_of`` counts when ``age < window_days`` and
    is worth ``points * 0.5 ** (age / half_life_days)`` (no decay when
    ``half_life_days`` is left out). The rule's total is capped at ``cap`` in absolute
    value. Sentence placeholders: ``{count}``, ``{times}`` ("once", "twice", "3
    times"), ``{window_days}``.
    """

    kind: Literal["engagement"] = "engagement"
    activity: str
    where: list[Condition] = Field(default_factory=list)
    window_days: float = Field(gt=0)
    half_life_days: float | None = Field(default=None, gt=0)
    cap: float = Field(gt=0, description="Largest absolute total this rule can give.")

    @field_validator("where", mode="before")
    @classmethod
    def _single_where(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("activity")
    @classmethod
    def _normalise_activity(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("where")
    @classmethod
    def _activity_fields(cls, value: list[Condition]) -> list[Condition]:
        _check_fields(value, _ACTIVITY_FIELDS, "activity")
        return value

    @field_validator("sentence")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_template(value, ("count", "times", "window_days"))


class InactivityRule(_Rule):
    """A penalty when the lead has not engaged for ``inactive_days``.

    The last touch is the later of the lead's last counted activity before ``as_of`` and
    its creation, so a lead created yesterday is not "inactive". ``ignore_activities``
    are not engagement (by default, unsubscribes): counting them would let a negative
    event lift the penalty and raise the score. Placeholder: ``{days}`` since the last
    touch.
    """

    kind: Literal["inactivity"] = "inactivity"
    inactive_days: float = Field(gt=0)
    ignore_activities: list[str] = Field(default_factory=lambda: ["unsubscribe"])

    @field_validator("ignore_activities")
    @classmethod
    def _normalise(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]

    @field_validator("sentence")
    @classmethod
    def _template(cls, value: str) -> str:
        return _check_template(value, ("days",))


def _negative_kind(value: Any) -> str:
    if isinstance(value, dict):
        if "activity" in value:
            return "engagement"
        if "inactive_days" in value:
            return "inactivity"
        return "fit"
    return getattr(value, "kind", "fit")


NegativeRule = Annotated[
    Annotated[FitRule, Tag("fit")]
    | Annotated[EngagementRule, Tag("engagement")]
    | Annotated[InactivityRule, Tag("inactivity")],
    Discriminator(_negative_kind),
]
Rule = FitRule | EngagementRule | InactivityRule


class Mapping(_Strict):
    """From total points to a probability.

    The total is clipped to ``[min_points, max_points]`` (the global cap), then mapped
    by ``p = 1 / (1 + exp(-(intercept + slope * points)))``. The defaults give a lead
    with no points about 3.5% and one at 60 points about 50%: plausible for a lead
    base converting at 5-15%. Refit them with :func:`rules_fallback.fit_mapping` once
    labelled history exists.
    """

    max_points: float = Field(default=100.0, gt=0)
    min_points: float = Field(default=-100.0, lt=0)
    intercept: float = -3.3
    slope: float = Field(default=0.055, gt=0)

    @field_validator("intercept")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"intercept must be finite; got {value}")
        return value


class GradingSpec(_Strict):
    """Grade thresholds on the 0-100 score, strictly decreasing, and the sales grades."""

    a: float = Field(ge=0, le=100)
    b: float = Field(ge=0, le=100)
    c: float = Field(ge=0, le=100)
    sales_grades: list[Literal["A", "B", "C", "D"]] = Field(default_factory=lambda: ["A", "B"])

    @model_validator(mode="after")
    def _decreasing(self) -> GradingSpec:
        if not self.a > self.b > self.c:
            raise ValueError(
                f"grade thresholds must decrease strictly, a > b > c; got a={self.a}, "
                f"b={self.b}, c={self.c}"
            )
        return self

    def to_grading(self) -> Grading:
        return Grading(a=self.a, b=self.b, c=self.c, sales_grades=tuple(self.sales_grades))


class RuleSet(_Strict):
    """A validated rule set. Build it with :func:`load_rules` or :func:`parse_rules`."""

    version: str = Field(min_length=1, description="Human version of the rule set.")
    description: str = ""
    custom_activities: list[str] = Field(
        default_factory=list,
        description="Activity types beyond the data contract's that rules may name.",
    )
    fit_rules: list[FitRule] = Field(default_factory=list)
    engagement_rules: list[EngagementRule] = Field(default_factory=list)
    negative_rules: list[NegativeRule] = Field(default_factory=list)
    mapping: Mapping = Field(default_factory=Mapping)
    grading_spec: GradingSpec = Field(alias="grading")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        # "version: 1.0" parses as a float in YAML; it is still a version label.
        return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value

    @field_validator("fit_rules", "engagement_rules")
    @classmethod
    def _positive(cls, rules: list[Rule]) -> list[Rule]:
        for index, rule in enumerate(rules):
            if rule.points < 0:
                raise _At(
                    f"rule {rule.name!r} has points {rule.points}; rules in this section "
                    "must add points (> 0). Put penalties under negative_rules",
                    index,
                    "points",
                )
        return rules

    @field_validator("negative_rules")
    @classmethod
    def _negative(cls, rules: list[Rule]) -> list[Rule]:
        for index, rule in enumerate(rules):
            if rule.points > 0:
                raise _At(
                    f"rule {rule.name!r} has points {rule.points}; negative_rules must "
                    "take points away (< 0)",
                    index,
                    "points",
                )
        return rules

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        located = [
            (section, index, rule)
            for section in ("fit_rules", "engagement_rules", "negative_rules")
            for index, rule in enumerate(getattr(self, section))
        ]
        if not located:
            raise ValueError(
                "the rule set has no rules; expected at least one of fit_rules, "
                "engagement_rules, negative_rules"
            )
        first: dict[str, str] = {}
        for section, index, rule in located:
            if rule.name in first:
                raise _At(
                    f"rule name {rule.name!r} is used twice (first at {first[rule.name]}); "
                    "names must be unique",
                    section,
                    index,
                    "name",
                )
            first[rule.name] = f"{section}[{index}]"
        known = self._known_activities()
        negative_types = set()
        for section, index, rule in located:
            if isinstance(rule, EngagementRule):
                if known is not None and rule.activity not in known:
                    raise _At(
                        f"unknown activity type {rule.activity!r}; expected one of "
                        f"{list(known)} (declare others under custom_activities)",
                        section,
                        index,
                        "activity",
                    )
                if rule.points < 0:
                    negative_types.add(rule.activity)
        for section, index, rule in located:
            if isinstance(rule, InactivityRule):
                counted_negative = sorted(negative_types - set(rule.ignore_activities))
                if counted_negative:
                    raise _At(
                        f"counts {counted_negative} as engagement, but negative rules "
                        "penalise them: one more such event would lift the inactivity "
                        "penalty. Add them to ignore_activities",
                        section,
                        index,
                        "ignore_activities",
                    )
        return self

    def _known_activities(self) -> tuple[str, ...] | None:
        """The activity types rules may name (None: checked elsewhere, as a spec's kinds)."""
        return (*ACTIVITY_TYPES, *self.custom_activities)

    @property
    def rules(self) -> list[Rule]:
        """Every rule in file order: fit, engagement, then negative."""
        return [*self.fit_rules, *self.engagement_rules, *self.negative_rules]

    @property
    def grading(self) -> Grading:
        """The thresholds as the shared :class:`~features.grading.Grading` contract."""
        return self.grading_spec.to_grading()

    @property
    def hash(self) -> str:
        """Content hash of the validated rules (not of comments or layout), 12 hex digits."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def provenance(self) -> str:
        """``version+hash``, what a score records as the rules that produced it."""
        return f"{self.version}+{self.hash}"

    def with_mapping(self, **changes: float) -> RuleSet:
        """A copy with some mapping values replaced (validated)."""
        data = self.model_dump(by_alias=True)
        data["mapping"].update(changes)
        return RuleSet.model_validate(data)


# --------------------------------------------------------------------------- loading


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location (tags that are not keys are skipped)."""
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    node = value
                    break
            else:
                # pydantic's alias/union tags ("fit", "engagement") are not in the file.
                continue
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                node = node.value[part]
            else:
                break
        else:
            break
    return node


def _describe_error(error: dict, data: Any, root: yaml.Node | None) -> str:
    loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, _At):
        loc = loc + cause.loc
    where = []
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(data, dict):
        section, index = loc[0], loc[1]
        rules = data.get(section)
        name = None
        if isinstance(rules, list) and index < len(rules) and isinstance(rules[index], dict):
            name = rules[index].get("name")
        where.append(f"rule {name!r} ({section}[{index}])" if name else f"{section}[{index}]")
        tags = ("fit", "engagement", "inactivity")
        key_path = [str(p) for p in loc[2:] if p not in tags]
    else:
        key_path = [str(p) for p in loc]
    if key_path:
        where.append("key " + ".".join(key_path))
    node = _node_at(root, loc)
    if node is not None:
        where.append(f"line {node.start_mark.line + 1}")
    message = error["msg"].removeprefix("Value error, ")
    received = error.get("input")
    if error["type"] == "extra_forbidden":
        message = "unknown key; check its spelling against the rules schema"
    elif error["type"] == "missing":
        message = "is required but missing"
    elif not isinstance(received, dict | list):
        message = f"{message} (got {received!r})"
    head = ", ".join(where) if where else "rule set"
    return f"{head}: {message}"


def parse_rules(text: str, *, source: str = "<string>") -> RuleSet:
    """Validate rules given as YAML text.

    Raises
    ------
    RulesError
        For bad YAML (with its line) or any schema problem. The message names the
        rule by name and index, the key, the value received, what was expected and
        the line in the file.
    """
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
        if context and context_mark:
            problem += f" ({context} at line {context_mark.line + 1})"
        raise RulesError(f"{source}: not valid YAML{line}: {problem}") from exc
    if data is None:
        raise RulesError(f"{source}: the file is empty; expected a mapping with rule sections")
    if not isinstance(data, dict):
        raise RulesError(
            f"{source}: expected a mapping with keys such as 'version', 'fit_rules', "
            f"'engagement_rules', 'grading'; got a {type(data).__name__}"
        )
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        # The node tree (for line numbers) is composed only when there is a problem to
        # place: every service start and rescore parses the rules, and composing doubles it.
        root = yaml.compose(text, Loader=_SafeLoader)
        problems = [_describe_error(e, data, root) for e in exc.errors()]
        noun = "problem" if len(problems) == 1 else "problems"
        body = "\n".join(f"  {p}" for p in problems)
        raise RulesError(f"{source}: {len(problems)} {noun} in the rules file:\n{body}") from None


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate a rules file; ``None`` loads the packaged default rule set.

    Raises
    ------
    RulesError
        When the file cannot be read, is not YAML, or breaks the schema. The message
        names the rule, the key, the bad value, what was expected and the line.
    """
    path = DEFAULT_RULES_PATH if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"cannot read rules file {str(path)!r}: {exc.strerror or exc}") from exc
    return parse_rules(text, source=str(path))
