"""The feature registry: a feature set declared once, with a version.

A :class:`FeatureSet` is a value: the features (model input columns, in order), the
business fields that group them for explanations, the functions that compute them,
and the activity vocabulary they count. Training, serving, the MLflow run tags and
the explanation texts all read the feature set they are given; none keeps its own
list. Each feature belongs to a business field (several windows of pricing-page counts
are one field, "pricing page visits"), and each field knows how to say, in plain
language, what the lead's values mean.

:data:`BUILTIN` is the feature set of the built-in data contract (the module-level
helpers below read it, for the code that has not been handed a feature set).
:meth:`FeatureSet.from_definition` builds one for a user's CRM from its dataset spec:
its fit columns and its activity kinds, with the spec's labels in every sentence.
Its version is a content hash of that definition.

Bump :data:`FEATURE_SET_VERSION` whenever a built-in feature's name, meaning or
computation changes: a model trained on one version must not be served rows of another.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from features.functions import (
    ACTIVE_DAY_WINDOWS,
    COUNT_WINDOWS,
    FEATURE_FUNCTIONS,
    HALF_LIVES,
    attribute_number,
    attribute_text,
    engagement_functions,
    lead_age_days,
)
from features.history import BUILTIN_VOCABULARY, ActivityVocabulary
from features.reasons import Reason, select_top
from features.schema import ACTIVITY_TYPES, KEY_ACTIONS

__all__ = [
    "Feature",
    "BusinessField",
    "FeatureSet",
    "FitColumn",
    "KindDefinition",
    "BUILTIN",
    "BUILTIN_ACTIONABLE",
    "GROUPS",
    "FEATURE_SET_VERSION",
    "FEATURES",
    "FIELDS",
    "feature_names",
    "categorical_features",
    "numeric_features",
    "field_of",
    "reasons_for",
]

FEATURE_SET_VERSION: str = "2026.11.1"
"""Version of the feature set; recorded with every training set and model."""


@dataclass(frozen=True)
class Feature:
    """One model input column."""

    name: str
    field: str
    kind: Literal["numeric", "categorical"]
    description: str
    group: Literal["fit", "engagement"] = "fit"
    """Who the lead is (``fit``) or what it did (``engagement``): the part of the score
    its contribution adds to (:mod:`features.matrix`)."""


GROUPS: tuple[str, ...] = ("fit", "engagement")
"""The two parts a score splits into: who the lead is, and what it did."""


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


# --- reading a row ---------------------------------------------------------------------------


def _num(row: Mapping[str, object], name: str) -> float | None:
    """A numeric feature value as a float, or None when missing (NaN, NA, absent)."""
    value = row.get(name)
    if value is None or value is pd.NA:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _cat(row: Mapping[str, object], name: str) -> str | None:
    value = row.get(name)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return str(value)


def _times(n: float) -> str:
    n = int(round(n))
    return "once" if n == 1 else f"{n} times"


def _days(d: float) -> str:
    n = int(math.floor(d))
    if n == 0:
        return "today"
    return "1 day ago" if n == 1 else f"{n} days ago"


def _plural(n: float, word: str) -> str:
    n = int(round(n))
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- fit fields ----------------------------------------------------------------------------


def _category_describer(
    feature: str, template: str, unknown: str
) -> Callable[[Mapping[str, object]], tuple[object, str]]:
    def describe(row: Mapping[str, object]) -> tuple[object, str]:
        value = _cat(row, feature)
        return (value, unknown) if value is None else (value, template.format(value=value))

    return describe


def _describe_location(row: Mapping[str, object]) -> tuple[object, str]:
    country, region = _cat(row, "country"), _cat(row, "region")
    if country is None:
        return None, "Country not given"
    if region and region != "Other":
        return country, f"Based in {country} ({region})"
    return country, f"Based in {country}"


def _describe_company_size(row: Mapping[str, object]) -> tuple[object, str]:
    band = _cat(row, "company_size_band")
    if band is None:
        return None, "Company size not given"
    return band, f"Works at a company of {band} employees"


def _describe_free_mail(row: Mapping[str, object]) -> tuple[object, str]:
    flag = _num(row, "free_mail")
    if flag is None:
        return None, "No email address given"
    if flag >= 0.5:
        return "free email", "Signed up with a free email address"
    return "company email", "Signed up with a company email address"


def _describe_completeness(row: Mapping[str, object]) -> tuple[object, str]:
    share = _num(row, "profile_completeness") or 0.0
    percent = int(round(share * 100))
    return percent, f"Profile is {percent}% complete"


def _describe_lead_age(row: Mapping[str, object]) -> tuple[object, str]:
    days = _num(row, "lead_age_days")
    if days is None:
        return None, "Lead age unknown"
    n = int(math.floor(days))
    return n, f"Became a lead {_days(days)}"


# --- engagement fields -----------------------------------------------------------------------

# Per activity type: business field name, past-tense phrase, noun for "none", and (for key
# actions) the phrase used for "last ... N days ago".
_TYPE_WORDS: dict[str, tuple[str, str, str, str]] = {
    "page_view": ("website_visits", "Viewed website pages", "website visits", "visited the website"),
    "pricing_page_view": (
        "pricing_page_visits", "Viewed the pricing page", "pricing page visits",
        "viewed the pricing page",
    ),
    "email_open": ("email_opens", "Opened marketing emails", "email opens", "opened an email"),
    "email_click": (
        "email_clicks", "Clicked links in marketing emails", "email clicks", "clicked an email",
    ),
    "form_submit": ("form_submissions", "Submitted forms", "form submissions", "submitted a form"),
    "content_download": (
        "content_downloads", "Downloaded content", "content downloads", "downloaded content",
    ),
    "webinar_registered": (
        "webinar_registrations", "Registered for webinars", "webinar registrations",
        "registered for a webinar",
    ),
    "webinar_attended": (
        "webinar_attendance", "Attended webinars", "webinars attended", "attended a webinar",
    ),
    "demo_request": ("demo_requests", "Requested a demo", "demo requests", "requested a demo"),
    "trial_signup": ("trial_signups", "Signed up for a trial", "trial sign-ups", "started a trial"),
    "chat": ("chats", "Chatted with the team", "chats", "chatted with the team"),
    "unsubscribe": (
        "unsubscribes", "Unsubscribed from emails", "unsubscribes", "unsubscribed from emails",
    ),
}


def _type_describer(activity_type: str) -> Callable[[Mapping[str, object]], tuple[object, str]]:
    _, verb, noun, last_phrase = _TYPE_WORDS[activity_type]
    return _kind_describer(
        activity_type, verb, last_phrase, activity_type in KEY_ACTIONS,
        f"No {noun} in the last {max(COUNT_WINDOWS)} days",
    )


def _kind_describer(
    kind: str, verb: str, last_phrase: str, key_action: bool, none: str
) -> Callable[[Mapping[str, object]], tuple[object, str]]:
    """What a lead did of one activity kind: its count in the shortest window that has
    any, else (for a key action) how long ago it last did it, else ``none``."""

    def describe(row: Mapping[str, object]) -> tuple[object, str]:
        for days in COUNT_WINDOWS:
            n = _num(row, f"{kind}_count_{days}d") or 0.0
            if n > 0:
                return int(round(n)), f"{verb} {_times(n)} in the last {days} days"
        if key_action:
            since = _num(row, f"days_since_last_{kind}")
            if since is not None:
                return 0, f"Last {last_phrase} {_days(since)}"
        return 0, none

    return describe


def _describe_recent_activity(row: Mapping[str, object]) -> tuple[object, str]:
    since = _num(row, "days_since_last_activity")
    if since is None:
        return None, "No recorded activity yet"
    if since >= 14:
        days = int(math.floor(since))
        return days, f"No activity for {days} days"
    recent = _num(row, "activity_count_7d") or 0.0
    if recent > 0:
        n = int(round(recent))
        return n, f"{n} {'activity' if n == 1 else 'activities'} in the last 7 days"
    return int(math.floor(since)), f"Last active {_days(since)}"


def _describe_engagement(row: Mapping[str, object]) -> tuple[object, str]:
    short = _num(row, f"engagement_decayed_hl{HALF_LIVES[0]:g}d") or 0.0
    if short < 0.05:
        long = _num(row, f"engagement_decayed_hl{HALF_LIVES[-1]:g}d") or 0.0
        if long < 0.05:
            return 0.0, "No recent engagement"
        return round(long, 1), "Engaged in the past weeks but not recently"
    return round(short, 1), f"Recent engagement score of {short:.1f} (recent, high-intent actions count most)"


def _describe_velocity(row: Mapping[str, object]) -> tuple[object, str]:
    ratio = _num(row, "activity_velocity")
    if ratio is None:
        return None, "Activity trend unknown"
    if ratio >= 1.5:
        return round(ratio, 1), f"Activity is picking up: {ratio:.1f}x its pace of the 30 days before"
    if ratio <= 1 / 1.5:
        return round(ratio, 1), "Activity is slowing down compared with the 30 days before"
    return round(ratio, 1), "Activity is steady compared with the 30 days before"


def _describe_active_days(row: Mapping[str, object]) -> tuple[object, str]:
    days = max(ACTIVE_DAY_WINDOWS)
    n = _num(row, f"active_days_{days}d") or 0.0
    if n == 0:
        return 0, f"Not active on any day in the last {days} days"
    return int(n), f"Active on {_plural(n, 'different day')} in the last {days} days"


# --- the declaration -------------------------------------------------------------------------

_FIT: list[tuple[str, str, str, tuple[str, ...], Callable]] = [
    # field, label, kind, features, describe
    ("industry", "Industry", "categorical", ("industry",),
     _category_describer("industry", "Works in the {value} industry", "Industry not given")),
    ("company_size", "Company size", "categorical", ("company_size_band",), _describe_company_size),
    ("seniority", "Seniority", "categorical", ("seniority",),
     _category_describer("seniority", "Seniority: {value}", "Seniority not given")),
    ("job_function", "Job function", "categorical", ("job_function",),
     _category_describer("job_function", "Works in {value}", "Job function not given")),
    ("location", "Location", "categorical", ("country", "region"), _describe_location),
    ("source", "Lead source", "categorical", ("source_channel",),
     _category_describer("source_channel", "Came in through {value}", "Lead source not recorded")),
    ("campaign", "Campaign", "categorical", ("campaign",),
     _category_describer("campaign", "Came from the campaign '{value}'", "No campaign recorded")),
    ("email_domain", "Email domain", "numeric", ("free_mail",), _describe_free_mail),
    ("profile_completeness", "Profile completeness", "numeric", ("profile_completeness",),
     _describe_completeness),
    ("lead_age", "Lead age", "numeric", ("lead_age_days",), _describe_lead_age),
]


def _declare() -> tuple[tuple[Feature, ...], dict[str, BusinessField]]:
    features: list[Feature] = []
    fields: dict[str, BusinessField] = {}

    def add(name: str, label: str, kinds: dict[str, str], describe: Callable,
            group: str = "engagement") -> None:
        fields[name] = BusinessField(name, label, tuple(kinds), describe)
        for feature, kind in kinds.items():
            doc = (FEATURE_FUNCTIONS[feature].__doc__ or "").strip()
            features.append(Feature(feature, name, kind, doc, group))  # type: ignore[arg-type]

    # The lead's own fields (and its age) are fit; everything counted from the activity
    # log, the touch channels included, is engagement.
    for name, label, kind, feats, describe in _FIT:
        add(name, label, dict.fromkeys(feats, kind), describe, "fit")
    kind_fields = []
    for activity_type in ACTIVITY_TYPES:
        field_name = _TYPE_WORDS[activity_type][0]
        kinds = {f"{activity_type}_count_{d}d": "numeric" for d in COUNT_WINDOWS}
        if activity_type in KEY_ACTIONS:
            kinds[f"days_since_last_{activity_type}"] = "numeric"
        label = field_name.replace("_", " ").capitalize()
        kind_fields.append((field_name, label, kinds, _type_describer(activity_type)))
    _add_engagement(add, kind_fields, touch_channels=True)
    # Categories first, then numbers: each kind is then one contiguous block of columns, so a
    # multi-million-row training set is assembled without copying its numeric block.
    features.sort(key=lambda f: f.kind != "categorical")
    return tuple(features), fields


def _add_engagement(
    add: Callable[[str, str, dict[str, str], Callable], None],
    kind_fields: Sequence[tuple[str, str, dict[str, str], Callable]],
    *,
    touch_channels: bool,
) -> None:
    """The engagement fields every feature set has, around its per-kind fields."""
    add(
        "recent_activity",
        "Recent activity",
        {
            **{f"activity_count_{d}d": "numeric" for d in COUNT_WINDOWS},
            "days_since_last_activity": "numeric",
        },
        _describe_recent_activity,
    )
    for name, label, kinds, describe, *group in kind_fields:
        if group:  # a spec's kind may say it is fit
            add(name, label, kinds, describe, None, group[0])
        else:
            add(name, label, kinds, describe)
    add(
        "engagement",
        "Engagement score",
        {f"engagement_decayed_hl{h:g}d": "numeric" for h in HALF_LIVES},
        _describe_engagement,
    )
    add("activity_trend", "Activity trend", {"activity_velocity": "numeric"}, _describe_velocity)
    add(
        "active_days",
        "Active days",
        {f"active_days_{d}d": "numeric" for d in ACTIVE_DAY_WINDOWS},
        _describe_active_days,
    )
    if touch_channels:
        add(
            "first_touch",
            "First touch",
            {"first_touch_channel": "categorical"},
            _category_describer("first_touch_channel", "First reached us through {value}",
                                "No tracked touches yet"),
        )
        add(
            "last_touch",
            "Last touch",
            {"last_touch_channel": "categorical"},
            _category_describer("last_touch_channel", "Most recent touch was through {value}",
                                "No tracked touches yet"),
        )


@dataclass(frozen=True)
class FitColumn:
    """A fit feature of a dataset spec: one lead column, under its safe name.

    ``label`` is the business name a marketer reads ("Lead source"); sentences say
    "Lead source: Olark Chat", or "Lead source not given" when the value is missing.
    """

    name: str
    kind: Literal["categorical", "numeric"]
    label: str
    description: str = ""
    group: Literal["fit", "engagement"] = "fit"


@dataclass(frozen=True)
class KindDefinition:
    """An activity kind of a dataset spec, with the words its sentences use.

    ``label`` is a past-tense phrase ("visited the forum"): sentences read "Visited the
    forum 12 times in the last 7 days" and, for a key action, "Last visited the forum
    3 days ago". ``title`` names the business field ("Forum visits").
    """

    name: str
    label: str
    weight: float = 1.0
    key_action: bool = False
    title: str | None = None
    group: Literal["fit", "engagement"] = "engagement"
    actionable: bool = False


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """A feature set: its features in column order, its business fields and its functions.

    Build the built-in one with :data:`BUILTIN`, a user's with :meth:`from_definition`.
    ``definition`` is the JSON-able declaration the version is hashed from; two feature
    sets with equal versions compute the same features.
    """

    name: str
    version: str
    features: tuple[Feature, ...]
    fields: Mapping[str, BusinessField]
    functions: Mapping[str, Callable]
    vocabulary: ActivityVocabulary
    has_time: bool = True
    has_activities: bool = True
    definition: Mapping[str, object] = field(default_factory=dict)
    actionable: tuple[str, ...] = ()
    """The activity kinds a marketer can bring about (a demo request, a webinar): the
    ones the next-action suggestions try (``serving.actions``)."""
    kind_labels: Mapping[str, str] = field(default_factory=dict)
    """Each activity kind's past-tense phrase ("requested a demo"), for sentences."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_field_of", {f.name: f.field for f in self.features})

    # -- the declaration's views ------------------------------------------------------

    def feature_names(self) -> list[str]:
        """Model input columns, in the order training sets and live rows carry them."""
        return [f.name for f in self.features]

    def categorical_features(self) -> list[str]:
        """The features that are categories (pandas ``string``; training fits the vocabularies)."""
        return [f.name for f in self.features if f.kind == "categorical"]

    def numeric_features(self) -> list[str]:
        """The features that are numbers (``float64``; NaN where a value does not exist)."""
        return [f.name for f in self.features if f.kind == "numeric"]

    def field_of(self, name: str) -> str:
        """The business field a feature belongs to, e.g. ``"pricing_page_visits"``."""
        try:
            return self._field_of[name]  # type: ignore[attr-defined]
        except KeyError:
            raise KeyError(f"{name!r} is not a feature of feature set {self.version}") from None

    def groups(self) -> dict[str, str]:
        """Each feature's group, ``fit`` or ``engagement`` (see :mod:`features.matrix`)."""
        return {f.name: f.group for f in self.features}

    def field_labels(self) -> dict[str, str]:
        """Each feature's business-field label, for tables a person reads."""
        return {f.name: self.fields[f.field].label for f in self.features}

    def reasons_for(self, row: Mapping[str, object], impacts: Mapping[str, float]) -> list[Reason]:
        """Group per-feature impacts by business field and say what each means for this lead.

        Parameters
        ----------
        row
            The lead's feature values by feature name (a training or live row).
        impacts
            Signed contribution of each feature (e.g. SHAP log-odds). Features missing
            from ``impacts`` contribute nothing; names outside the set raise ``KeyError``.

        Returns
        -------
        list of Reason
            One per business field with at least one feature in ``impacts``; ``impact``
            is the sum over the field's features, sorted by absolute impact, largest
            first. The sentence describes the lead's value; the sign is carried apart.
        """
        totals: dict[str, float] = {}
        for name, impact in impacts.items():
            business_field = self.field_of(name)
            totals[business_field] = totals.get(business_field, 0.0) + float(impact)
        reasons = []
        for business_field, impact in totals.items():
            spec = self.fields[business_field]
            value, sentence = spec.describe(row)
            reasons.append(Reason(business_field, spec.label, _plain(value), impact, sentence))
        reasons.sort(key=lambda r: -abs(r.impact))
        return reasons

    def top_reasons(self, row: Mapping[str, object], impacts: Mapping[str, float],
                    top: int) -> list[Reason]:
        """The reasons a score shows: ``select_top(self.reasons_for(row, impacts), top)``.

        The same list, to the bit: impacts are summed per field in the same order, and
        the fields ranked by the same stable sorts. Only the kept fields (at most
        ``2 * top``) are described, where :meth:`reasons_for` describes every field of
        the set, which was the largest part of a lead's scoring time.
        """
        if top <= 0:
            return []
        totals: dict[str, float] = {}
        for name, impact in impacts.items():
            business_field = self.field_of(name)
            totals[business_field] = totals.get(business_field, 0.0) + float(impact)
        ranked = sorted(totals.items(), key=lambda item: -abs(item[1]))  # as reasons_for
        reasons = []
        for business_field, impact in select_top(ranked, top, impact=lambda item: item[1]):
            spec = self.fields[business_field]
            value, sentence = spec.describe(row)
            reasons.append(Reason(business_field, spec.label, _plain(value), impact, sentence))
        return reasons

    # -- shipping it with a model --------------------------------------------------------

    def to_json(self) -> dict[str, object]:
        """The definition and version, JSON-able: what a model records and ships."""
        return {**self.definition, "version": self.version}

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FeatureSet:
        """The feature set :meth:`to_json` recorded.

        Raises
        ------
        ValueError
            When the definition is not one this code reads, or no longer gives the
            recorded version: the feature code changed since the model was trained.
        """
        version = str(data.get("version", ""))
        if data.get("name") == "builtin":
            if version != BUILTIN.version:
                raise ValueError(
                    f"feature set version {version!r} is not this code's built-in feature set "
                    f"{BUILTIN.version!r}; retrain on the current feature set"
                )
            return BUILTIN
        try:
            rebuilt = cls.from_definition(
                str(data["name"]),
                [FitColumn(**c) for c in data["fit"]],  # type: ignore[union-attr]
                [KindDefinition(**k) for k in data["kinds"]],  # type: ignore[union-attr]
                has_time=bool(data["has_time"]),
                has_activities=bool(data["has_activities"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a feature set definition ({exc!s}); expected the output of "
                             "FeatureSet.to_json") from None
        if rebuilt.version != version:
            raise ValueError(
                f"feature set {data['name']!r}: its definition now gives version "
                f"{rebuilt.version!r}, not the recorded {version!r} (the feature code changed "
                "since training); retrain"
            )
        return rebuilt

    # -- building one from a dataset spec ----------------------------------------------

    @classmethod
    def from_definition(
        cls,
        name: str,
        fit: Sequence[FitColumn],
        kinds: Sequence[KindDefinition] = (),
        *,
        has_time: bool = True,
        has_activities: bool | None = None,
    ) -> FeatureSet:
        """The feature set of a user's CRM: its fit columns, and engagement per kind.

        Fit features are the spec's columns as they are (text stripped, blanks missing;
        numbers as floats), plus the lead's age when the spec has time. With activities,
        engagement features follow the built-in ones, per kind: counts over 7, 30 and 90
        days, recency of key actions, decayed engagement with the kinds' weights,
        velocity and active days. Activity types the spec does not map count as generic
        activity. The version is a hash of this definition.

        Raises
        ------
        ValueError
            When two features would share a name.
        """
        has_activities = bool(kinds) if has_activities is None else has_activities
        if has_activities and not has_time:
            raise ValueError(
                "The 'has_time' parameter must be True when the feature set has activities: "
                "an activity history needs a time for every lead."
            )
        vocabulary = ActivityVocabulary(
            kinds=tuple(k.name for k in kinds),
            key_actions=tuple(k.name for k in kinds if k.key_action),
            weights=tuple(float(k.weight) for k in kinds),
        )
        features: list[Feature] = []
        fields: dict[str, BusinessField] = {}
        functions: dict[str, Callable] = {}

        def add(field_name: str, label: str, columns: dict[str, str], describe: Callable,
                docs: Mapping[str, str] | None = None, group: str = "engagement") -> None:
            if field_name in fields:
                raise ValueError(f"Two business fields of feature set {name!r} are named {field_name!r}.")
            fields[field_name] = BusinessField(field_name, label, tuple(columns), describe)
            for feature, kind in columns.items():
                doc = (docs or {}).get(feature) or (engagement.get(feature).__doc__ or "").strip()
                features.append(Feature(feature, field_name, kind, doc, group))  # type: ignore[arg-type]

        engagement = engagement_functions(vocabulary, touch_channels=False) if has_activities else {}
        for column in fit:
            doc = column.description or f"{column.label} as given in the CRM"
            make = attribute_text if column.kind == "categorical" else attribute_number
            functions[column.name] = make(column.name, column.name, doc)
            describe = (_labelled_category if column.kind == "categorical" else _labelled_number)(
                column.name, column.label
            )
            add(column.name, column.label, {column.name: column.kind}, describe,
                {column.name: doc}, column.group)
        if has_time:
            functions["lead_age_days"] = lead_age_days
            add("lead_age", "Lead age", {"lead_age_days": "numeric"}, _describe_lead_age,
                {"lead_age_days": (lead_age_days.__doc__ or "").strip()}, "fit")
        if has_activities:
            functions.update(engagement)
            kind_fields = []
            for kind in kinds:
                columns = {f"{kind.name}_count_{d}d": "numeric" for d in COUNT_WINDOWS}
                if kind.key_action:
                    columns[f"days_since_last_{kind.name}"] = "numeric"
                verb = kind.label[:1].upper() + kind.label[1:]
                none = f"{verb}: not in the last {max(COUNT_WINDOWS)} days"
                title = kind.title or kind.name.replace("_", " ").capitalize()
                kind_fields.append((f"kind_{kind.name}", title, columns,
                                    _kind_describer(kind.name, verb, kind.label, kind.key_action, none),
                                    kind.group))
            _add_engagement(add, kind_fields, touch_channels=False)
        names = [f.name for f in features]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ValueError(
                f"Feature set {name!r} would have two features named {clash}; rename the spec's "
                "column or kind (a column's 'name', a kind's key)."
            )
        features.sort(key=lambda f: f.kind != "categorical")
        definition = {
            "name": name,
            "has_time": has_time,
            "has_activities": has_activities,
            "fit": [vars(c) for c in fit],
            "kinds": [vars(k) for k in kinds],
            "windows": {"count": list(COUNT_WINDOWS), "active_days": list(ACTIVE_DAY_WINDOWS),
                        "half_lives": list(HALF_LIVES)},
            "features": [[f.name, f.kind] for f in features],
        }
        # The version says which values the features hold: what computes them (the
        # feature code, versioned with the built-in set), their names and kinds, the
        # kinds' weights and key actions, the windows. Labels and descriptions only word
        # the sentences, so relabelling a field in the spec needs no retraining.
        computed = {
            "code": FEATURE_SET_VERSION,
            "has_time": has_time,
            "has_activities": has_activities,
            "kinds": [[k.name, float(k.weight), bool(k.key_action)] for k in kinds],
            "windows": definition["windows"],
            "features": definition["features"],
        }
        digest = hashlib.sha256(json.dumps(computed, sort_keys=True).encode()).hexdigest()
        return cls(
            name=name, version=f"spec:{name}:{digest[:12]}", features=tuple(features),
            fields=fields, functions=functions, vocabulary=vocabulary, has_time=has_time,
            has_activities=has_activities, definition=definition,
            actionable=tuple(k.name for k in kinds if k.actionable) if has_activities else (),
            kind_labels={k.name: k.label for k in kinds},
        )


def _labelled_category(feature: str, label: str) -> Callable[[Mapping[str, object]], tuple[object, str]]:
    return _category_describer(feature, f"{label}: {{value}}", f"{label} not given")


def _labelled_number(feature: str, label: str) -> Callable[[Mapping[str, object]], tuple[object, str]]:
    def describe(row: Mapping[str, object]) -> tuple[object, str]:
        value = _num(row, feature)
        if value is None:
            return None, f"{label} not given"
        shown = int(value) if value.is_integer() else round(value, 2)
        return shown, f"{label}: {shown:g}" if isinstance(shown, float) else f"{label}: {shown}"

    return describe


BUILTIN_ACTIONABLE: tuple[str, ...] = ("demo_request", "webinar_attended", "pricing_page_view")
"""The built-in activity types a marketer can prompt: what the next-action suggestions try."""


def _builtin() -> FeatureSet:
    features, fields = _declare()
    return FeatureSet(
        name="builtin", version=FEATURE_SET_VERSION, features=features, fields=fields,
        functions=FEATURE_FUNCTIONS, vocabulary=BUILTIN_VOCABULARY,
        definition={"name": "builtin", "version": FEATURE_SET_VERSION},
        actionable=BUILTIN_ACTIONABLE,
        kind_labels={t: _TYPE_WORDS[t][3] for t in ACTIVITY_TYPES},
    )


BUILTIN: FeatureSet = _builtin()
"""The feature set of the built-in data contract (version :data:`FEATURE_SET_VERSION`)."""

FEATURES, FIELDS = BUILTIN.features, BUILTIN.fields
"""Every built-in model input column, in column order, and every business field by name."""


def feature_names() -> list[str]:
    """The built-in model input columns, in the order training sets and live rows carry them."""
    return BUILTIN.feature_names()


def categorical_features() -> list[str]:
    """The built-in features that are categories (pandas ``string``)."""
    return BUILTIN.categorical_features()


def numeric_features() -> list[str]:
    """The built-in features that are numbers (``float64``; NaN where a value does not exist)."""
    return BUILTIN.numeric_features()


def field_of(name: str) -> str:
    """The built-in business field a feature belongs to, e.g. ``"pricing_page_visits"``."""
    return BUILTIN.field_of(name)


def _plain(value: object) -> str | float | int | None:
    if value is None or value is pd.NA:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    if hasattr(value, "item"):
        return value.item()  # numpy scalar
    return str(value)


def reasons_for(row: Mapping[str, object], impacts: Mapping[str, float]) -> list[Reason]:
    """:meth:`FeatureSet.reasons_for` of the built-in feature set."""
    return BUILTIN.reasons_for(row, impacts)
