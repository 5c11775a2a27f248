"""Feature values of a few leads in plain Python: the fast path of a live request.

:func:`features.online.features_at` is vectorised: it scores a million leads as fast as
a thousand, but a call costs some 5 ms of pandas and Arrow overhead whatever its size,
which is most of what a CRM's one-lead ``/score`` costs. This module computes the *same*
values one lead at a time in plain Python, in tens of microseconds, for the few leads of
a live request. Above a few dozen leads the vectorised path is the cheaper one.

It is a second implementation of the feature functions, so it is held to the first:

- it reads the same declarations (windows, half-lives, type weights and channels,
  regions, company-size bands, free-mail domains, the registry's feature names); only
  the arithmetic is written twice;
- that arithmetic follows the vectorised path step by step, so floats round the same
  way: differences of integer nanoseconds converted once to float, numpy's ``exp2``,
  and the Kahan-compensated running sum that pandas' ``groupby().cumsum()`` uses for
  the decayed engagement;
- text is cleaned as Arrow cleans it: Python's ``str.strip()`` trims exactly the code
  points that Arrow's ``utf8_trim_whitespace`` trims (``tests/features/test_live.py``
  checks every code point), ASCII case mapping is the same in both, and text outside
  ASCII goes through Arrow's own kernels;
- ``tests/features/test_live.py`` checks, on hypothesis-generated leads (ties,
  unknown and messy types, tagged URLs, odd whitespace and Unicode, histories on both
  sides of ``as_of``, 1970 to 2199), that every value equals :func:`features_at`'s: bit
  for bit for numbers, string for string for categories.

Inputs are validated data (see :func:`features.schema.validate_leads`), except that
activity types are given raw and cleaned here with :func:`clean_type`, as
:func:`features.schema.validate_activities` cleans them.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.functions import (
    _FREE_MAIL_PREFIXES,
    _REGION_OF,
    ACTIVE_DAY_WINDOWS,
    COMPANY_SIZE_BANDS,
    COUNT_WINDOWS,
    FREE_MAIL_DOMAINS,
    HALF_LIVES,
    PROFILE_FIELDS,
    VELOCITY_PRIOR_DAYS,
    VELOCITY_RECENT_DAYS,
)
from features.history import (
    _TYPE_CHANNEL,
    _UTM_MEDIUM_RE,
    _UTM_SOURCE_RE,
    DAY_NS,
)
from features.registry import BUILTIN, FeatureSet

__all__ = ["LiveLead", "live_features", "clean_text", "clean_type", "timestamp_ns"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BAND_BOUNDS = [bound for bound, _ in COMPANY_SIZE_BANDS]
_BAND_LABELS = [label for _, label in COMPANY_SIZE_BANDS]
_UTM_MEDIUM = re.compile(_UTM_MEDIUM_RE)
_UTM_SOURCE = re.compile(_UTM_SOURCE_RE)
_TEXT_FEATURES = {  # feature -> lead attribute, as features.functions reads them
    "industry": "industry",
    "seniority": "seniority",
    "job_function": "job_function",
    "country": "country",
    "source_channel": "source",
    "campaign": "utm_campaign",
}


@dataclass(frozen=True)
class _Plan:
    """What the live path needs of a feature set, worked out once per feature set."""

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    type_code: Mapping[str, int]
    key_actions: tuple[str, ...]
    weights: Mapping[int, float]
    text: tuple[str, ...]  # a spec's categorical fit columns (the attribute is the feature)
    numbers: tuple[str, ...]  # a spec's numeric fit columns
    lead_age: bool
    engagement: bool
    touch_channels: bool


@lru_cache(maxsize=32)
def _plan(feature_set: FeatureSet) -> _Plan:
    names = tuple(feature_set.feature_names())
    vocabulary = feature_set.vocabulary
    weights = vocabulary.weight_of_codes()
    # A spec's fit columns are each a business field of their own (FeatureSet.from_definition);
    # the built-in fit features are computed by _fit.
    spec_fit = [] if feature_set is BUILTIN else [
        f for f in feature_set.features if f.field == f.name]
    return _Plan(
        names=names,
        kinds=vocabulary.kinds,
        type_code={t: i for i, t in enumerate(vocabulary.kinds)},
        key_actions=vocabulary.key_actions,
        weights={**{i: float(w) for i, w in enumerate(weights[:-1])}, -1: float(weights[-1])},
        text=tuple(f.name for f in spec_fit if f.kind == "categorical"),
        numbers=tuple(f.name for f in spec_fit if f.kind == "numeric"),
        lead_age="lead_age_days" in names,
        engagement="activity_count_7d" in names,
        touch_channels="first_touch_channel" in names,
    )


def timestamp_ns(value: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (what pandas stores)."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _lower(text: str) -> str:
    return text.lower() if text.isascii() else pc.utf8_lower(pa.scalar(text)).as_py()


def _upper(text: str) -> str:
    return text.upper() if text.isascii() else pc.utf8_upper(pa.scalar(text)).as_py()


def clean_text(value: str | None) -> str | None:
    """Stripped text, None when missing or blank (``features.functions._clean_text``)."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def clean_type(raw: str) -> str:
    """An activity type as the schema stores it: stripped and lower-cased ("" if blank)."""
    return _lower(raw.strip())


@dataclass(frozen=True, slots=True)
class LiveLead:
    """One lead of a live request, validated, with its as_of and its activities.

    ``attributes`` maps the data contract's lead fields (``source``, ``country``,
    ``company_size``, ``email``, ...) to their values: text or None, the company size a
    float or None. Times are integer nanoseconds since the epoch (UTC). The activity
    columns are parallel sequences in the request's order; ``types`` are cleaned with
    :func:`clean_type`.
    """

    attributes: Mapping[str, Any]
    created_ns: int
    as_of_ns: int
    times: Sequence[int]
    types: Sequence[str]
    urls: Sequence[str | None]
    campaigns: Sequence[str | None]

    def has_history(self) -> bool:
        """Whether the lead has any activity strictly before its as_of."""
        as_of = self.as_of_ns
        return any(t < as_of for t in self.times)


def live_features(
    lead: LiveLead, feature_set: FeatureSet = BUILTIN
) -> dict[str, float | str | None]:
    """Every feature of ``lead`` at its as_of, keyed by the feature set's names, in order.

    Numbers are floats (NaN where :func:`features.online.features_at` has NaN);
    categories are strings or None (where it has NA). For a dataset spec's feature set,
    ``lead.attributes`` is keyed by the spec's feature names.
    """
    plan = _plan(feature_set)
    fit = _fit(lead) if feature_set is BUILTIN else _spec_fit(lead, plan)
    values = {**fit, **_engagement(lead, plan)} if plan.engagement else fit
    return {name: values[name] for name in plan.names}


# --------------------------------------------------------------------------- fit


def _fit(lead: LiveLead) -> dict[str, float | str | None]:
    attributes = lead.attributes
    out: dict[str, float | str | None] = {
        feature: clean_text(attributes.get(column)) for feature, column in _TEXT_FEATURES.items()
    }
    out["region"] = _region(out["country"])
    size = _number(attributes.get("company_size"))
    out["company_size_band"] = (
        None if math.isnan(size)
        else _BAND_LABELS[min(bisect_right(_BAND_BOUNDS, size), len(_BAND_LABELS) - 1)]
    )
    out["free_mail"] = _free_mail(attributes.get("email"))
    present = sum(
        (not math.isnan(_number(attributes.get(field)))) if field == "company_size"
        else clean_text(attributes.get(field)) is not None
        for field in PROFILE_FIELDS
    )
    out["profile_completeness"] = present / len(PROFILE_FIELDS)
    out["lead_age_days"] = float(lead.as_of_ns - lead.created_ns) / DAY_NS
    return out


def _spec_fit(lead: LiveLead, plan: _Plan) -> dict[str, float | str | None]:
    """A spec's fit columns as :func:`features.functions.attribute_text` and
    :func:`~features.functions.attribute_number` give them, and the lead's age."""
    attributes = lead.attributes
    out: dict[str, float | str | None] = {name: clean_text(attributes.get(name)) for name in plan.text}
    for name in plan.numbers:
        out[name] = _number(attributes.get(name))
    if plan.lead_age:
        out["lead_age_days"] = float(lead.as_of_ns - lead.created_ns) / DAY_NS
    return out


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _region(country: str | None) -> str | None:
    if country is None:
        return None
    key = _upper(country.strip())
    return _REGION_OF.get(key, "Other" if key else None)


def _free_mail(email: str | None) -> float:
    if email is None:
        return math.nan
    address = _lower(email.strip())
    at = address.rfind("@")
    if at < 0:
        return math.nan
    domain = address[at + 1:]
    return 1.0 if domain in FREE_MAIL_DOMAINS or domain.startswith(_FREE_MAIL_PREFIXES) else 0.0


# --------------------------------------------------------------------------- engagement


def _engagement(lead: LiveLead, plan: _Plan) -> dict[str, float | str | None]:
    as_of = lead.as_of_ns
    type_code = plan.type_code
    codes = [type_code.get(t, -1) for t in lead.types]
    # The index's order: by time, then type (unknown first), ties in input order.
    order = sorted(range(len(codes)), key=lambda i: (lead.times[i], codes[i]))
    times = [lead.times[i] for i in order]
    types = [codes[i] for i in order]

    positions: dict[float, int] = {}

    def position(days_back: float) -> int:
        # Activities strictly before as_of - days_back (PointInTime.position), once each.
        if days_back not in positions:
            positions[days_back] = bisect_left(times, as_of - int(round(days_back * DAY_NS)))
        return positions[days_back]

    end = position(0)
    out: dict[str, float | str | None] = {}
    for days in COUNT_WINDOWS:
        start = position(days)
        out[f"activity_count_{days}d"] = float(end - start)
        counts = [0] * len(plan.kinds)
        for code in types[start:end]:
            if code >= 0:
                counts[code] += 1
        for code, activity_type in enumerate(plan.kinds):
            out[f"{activity_type}_count_{days}d"] = float(counts[code])

    out["days_since_last_activity"] = (
        float(as_of - times[end - 1]) / DAY_NS if end else math.nan
    )
    for action in plan.key_actions:
        code = type_code[action]
        last = next((j for j in range(end - 1, -1, -1) if types[j] == code), None)
        out[f"days_since_last_{action}"] = (
            math.nan if last is None else float(as_of - times[last]) / DAY_NS
        )

    for half_life, value in _decayed(times, types, end, as_of, plan.weights).items():
        out[f"engagement_decayed_hl{half_life:g}d"] = value

    recent = float(end - position(VELOCITY_RECENT_DAYS))
    prior = float(position(VELOCITY_RECENT_DAYS)
                  - position(VELOCITY_RECENT_DAYS + VELOCITY_PRIOR_DAYS))
    out["activity_velocity"] = (recent + 1.0) / (
        prior * VELOCITY_RECENT_DAYS / VELOCITY_PRIOR_DAYS + 1.0
    )
    for days in ACTIVE_DAY_WINDOWS:
        out[f"active_days_{days}d"] = float(len({t // DAY_NS for t in times[position(days):end]}))

    if not plan.touch_channels:
        return out
    if end:
        first, last = order[0], order[end - 1]
        out["first_touch_channel"] = _channel(lead, first)
        out["last_touch_channel"] = _channel(lead, last)
    else:
        out["first_touch_channel"] = out["last_touch_channel"] = None
    return out


def _decayed(
    times: list[int], codes: list[int], end: int, as_of: int, weight_of: Mapping[int, float]
) -> dict[float, float]:
    """``PointInTime.decayed`` per half-life: the same operations, so the same rounding.

    As in ``index_activities``, the days since the first activity and the type weights
    are computed once and scaled per half-life.
    """
    if not end:
        return dict.fromkeys(HALF_LIVES, 0.0)
    first = times[0]
    since_first = (np.asarray(times[:end], dtype=np.int64) - first) / DAY_NS
    weights = np.array([weight_of[c] for c in codes[:end]])
    since = np.array([as_of - first], dtype=np.int64) / DAY_NS
    out = {}
    with np.errstate(over="ignore", invalid="ignore"):  # decades-long histories, as there
        for half_life in HALF_LIVES:
            grown = (weights * np.exp2(since_first / half_life)).tolist()
            out[half_life] = float(
                _compensated_total(grown) * np.exp2(-since / half_life)[0])
    return out


def _compensated_total(values: list[float]) -> float:
    """The last value of pandas' ``groupby().cumsum()`` over ``values``: Kahan-compensated,
    NaN skipped (its own position is NaN, the running sum goes on without it)."""
    total = compensation = 0.0
    for value in values:
        if value != value:  # NaN: 0 * inf, an unsubscribe in a decades-long history
            continue
        y = value - compensation
        t = total + y
        compensation = t - total - y
        total = t
    return math.nan if values and values[-1] != values[-1] else total


def _channel(lead: LiveLead, i: int) -> str:
    """``features.history.activity_channel`` of the lead's activity ``i``."""
    channel = _TYPE_CHANNEL.get(lead.types[i])
    if channel is None:
        campaign = lead.campaigns[i]
        channel = "campaign" if campaign is not None and campaign.strip() else "web"
    url = lead.urls[i]
    if url is not None:
        found = _UTM_MEDIUM.search(url) or _UTM_SOURCE.search(url)
        if found is not None:
            tagged = _lower(found.group(1).strip())
            if tagged:
                channel = tagged
    return channel
