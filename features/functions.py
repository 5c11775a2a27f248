"""Feature functions: each is pure, named after the column it returns, and point-in-time.

Every function takes a :class:`~features.history.PointInTime` (a batch of (lead, as_of)
pairs that only exposes activity rows with ``occurred_at < as_of``) and returns one value
per pair: ``float64`` numbers (NaN when a recency does not exist yet, never a sentinel)
or ``string`` categories (NA when missing). The same functions build training sets
(:mod:`features.build`) and live rows (:mod:`features.online`).

Fit functions read the lead's own attributes; outcome fields (``converted_at``,
``disqualified_at``) and PII (email, names, phone) are never read, except the one derived
fact "free-mail domain".

The engagement functions are generated from an activity vocabulary
(:func:`engagement_functions`: one count per kind and window, one recency per key
action), the built-in contract's or a dataset spec's, so that a new kind gets its
features by construction. A spec's fit columns get theirs from :func:`attribute_text`
and :func:`attribute_number`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.history import BUILTIN_VOCABULARY, DAY_NS, ActivityVocabulary, PointInTime

__all__ = [
    "FEATURE_FUNCTIONS",
    "FIT_FUNCTIONS",
    "engagement_functions",
    "attribute_text",
    "attribute_number",
    "COUNT_WINDOWS",
    "HALF_LIVES",
    "COMPANY_SIZE_BANDS",
    "FREE_MAIL_DOMAINS",
    "compute_features",
    "compute_feature_columns",
    "fill_features",
    "assemble",
    "company_size_band_of",
    "region_of",
]

COUNT_WINDOWS: tuple[int, ...] = (7, 30, 90)
HALF_LIVES: tuple[float, ...] = (7.0, 30.0)
ACTIVE_DAY_WINDOWS: tuple[int, ...] = (30, 90)
VELOCITY_RECENT_DAYS = 7
VELOCITY_PRIOR_DAYS = 30

COMPANY_SIZE_BANDS: tuple[tuple[float, str], ...] = (
    (10, "1-9"),
    (50, "10-49"),
    (250, "50-249"),
    (1000, "250-999"),
    (5000, "1000-4999"),
    (np.inf, "5000+"),
)
"""Upper bound (exclusive) and label of each company-size band, in employees."""

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "ymail.com", "hotmail.com", "outlook.com",
        "live.com", "msn.com", "aol.com", "icloud.com", "me.com", "mac.com", "gmx.com",
        "gmx.net", "gmx.de", "web.de", "mail.com", "mail.ru", "yandex.com", "yandex.ru",
        "proton.me", "protonmail.com", "zoho.com", "qq.com", "163.com", "126.com",
        "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "rediffmail.com",
        "tutanota.com", "fastmail.com", "hey.com",
    }
)
# Providers with one domain per country (yahoo.co.uk, hotmail.fr, ...).
_FREE_MAIL_PREFIXES = ("yahoo.", "hotmail.", "outlook.", "live.", "gmx.", "yandex.", "aol.")

_REGIONS: dict[str, tuple[str, ...]] = {
    "North America": ("US", "USA", "CA", "MX", "UNITED STATES", "CANADA", "MEXICO"),
    "Latin America": ("BR", "AR", "CL", "CO", "PE", "BRAZIL", "ARGENTINA", "CHILE", "COLOMBIA"),
    "Europe": (
        "GB", "UK", "DE", "FR", "ES", "IT", "NL", "BE", "SE", "NO", "DK", "FI", "IE", "PL",
        "PT", "CH", "AT", "CZ", "GR", "RO", "HU", "UNITED KINGDOM", "GERMANY", "FRANCE",
        "SPAIN", "ITALY", "NETHERLANDS", "SWEDEN", "IRELAND", "POLAND", "SWITZERLAND",
    ),
    "Middle East & Africa": (
        "AE", "SA", "IL", "TR", "ZA", "NG", "KE", "EG", "QA", "KW", "OM", "BH",
        "UNITED ARAB EMIRATES", "SAUDI ARABIA", "SOUTH AFRICA", "NIGERIA", "KENYA", "QATAR",
    ),
    "Asia Pacific": (
        "IN", "CN", "JP", "KR", "SG", "AU", "NZ", "ID", "MY", "PH", "TH", "VN", "HK", "TW",
        "INDIA", "CHINA", "JAPAN", "SINGAPORE", "AUSTRALIA", "NEW ZEALAND", "MALAYSIA",
    ),
}
_REGION_OF = {code: region for region, codes in _REGIONS.items() for code in codes}

PROFILE_FIELDS: tuple[str, ...] = (
    "industry",
    "company_size",
    "job_title",
    "seniority",
    "job_function",
    "country",
    "email",
)
"""The optional lead attributes whose presence makes up profile completeness."""


# --- helpers (per lead, then gathered onto the pairs) -------------------------------------


_STRING = pd.StringDtype()


def _as_string(values: object) -> pd.Series:
    """``values`` as a ``string`` Series on a fresh RangeIndex; as is when it already is one.

    Equal to ``pd.Series(values).reset_index(drop=True).astype("string")``, minus the
    copies, which dominate the one-lead frames of a live request.
    """
    if (isinstance(values, pd.Series) and values.dtype == _STRING
            and isinstance(values.index, pd.RangeIndex) and values.index.start == 0
            and values.index.step == 1):
        return values
    return pd.Series(values).reset_index(drop=True).astype("string")


def _per_lead(pit: PointInTime, key: str, compute: Callable[[pd.DataFrame], object]):
    """``compute(leads)`` (one value per lead), memoised on ``pit``, gathered onto the pairs."""
    if key not in pit.lead_cache:
        value = compute(pit.leads)
        if isinstance(value, pd.Series):
            value = value.reset_index(drop=True)
        pit.lead_cache[key] = value
    return pit.lead_values(pit.lead_cache[key])


def _arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """A column as ``string`` in Arrow: the array pandas' ``.str`` methods run their kernels on.

    Calling those kernels (``utf8_trim_whitespace``, ``utf8_upper``, ...) directly gives the
    same values as ``values.astype("string").str...`` without pandas' per-call overhead,
    which dominates on the one-lead frames of a live request.
    """
    dtype = values.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        values = values.astype("string")
        if values.dtype.storage != "pyarrow":  # pragma: no cover  (pyarrow is a dependency)
            return pa.chunked_array([pa.array(values.to_numpy(dtype=object, na_value=None),
                                              pa.string())])
    return values.array._pa_array


def _string_series(values: pa.ChunkedArray | pa.Array, index: pd.Index) -> pd.Series:
    if isinstance(values, pa.Array):
        values = pa.chunked_array([values], pa.string())
    return pd.Series(pd.arrays.ArrowStringArray(values), index=index, copy=False)


def _blank_as_null(text: pa.ChunkedArray) -> pa.ChunkedArray:
    """Stripped text with blanks as null (``s.str.strip()`` then ``mask(s == "")``)."""
    stripped = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(stripped, ""), pa.scalar(None, pa.string()), stripped)


def _clean_text(leads: pd.DataFrame, column: str) -> pd.Series:
    if column not in leads.columns:
        return pd.Series(pd.NA, index=leads.index, dtype="string")
    return _string_series(_blank_as_null(_arrow_text(leads[column])), leads.index)


def _text(pit: PointInTime, column: str) -> pd.Series:
    """A lead attribute as ``string`` per pair, stripped, with blanks as NA."""
    return _as_string(_per_lead(pit, f"text:{column}", lambda leads: _clean_text(leads, column)))


def _present(leads: pd.DataFrame, column: str) -> np.ndarray:
    if column not in leads.columns:
        return np.zeros(len(leads), dtype=bool)
    values = leads[column]
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.notna().to_numpy(dtype=bool).copy()
    # Present: not missing, and not blank once stripped.
    present = pc.is_valid(_blank_as_null(_arrow_text(values)))
    return present.to_numpy(zero_copy_only=False).astype(bool)


def company_size_band_of(size: pd.Series) -> pd.Series:
    """Employee counts as band labels ("250-999"), NA when unknown."""
    numbers = pd.to_numeric(size, errors="coerce").astype("float64").to_numpy()
    bounds = np.array([b for b, _ in COMPANY_SIZE_BANDS])
    labels = np.array([label for _, label in COMPANY_SIZE_BANDS], dtype=object)
    which = np.searchsorted(bounds, numbers, side="right")
    out = np.where(np.isnan(numbers), None, labels[np.minimum(which, len(labels) - 1)])
    return pd.Series(out, index=size.index, dtype="string")


_REGION_KEYS = pa.array(list(_REGION_OF), pa.string())
_REGION_VALUES = pa.array(list(_REGION_OF.values()), pa.string())


def region_of(country: pd.Series) -> pd.Series:
    """Countries (ISO 3166 alpha-2 code or English name) as world regions; "Other" if unlisted."""
    key = pc.utf8_upper(pc.utf8_trim_whitespace(_arrow_text(country)))
    region = pc.take(_REGION_VALUES, pc.index_in(key, value_set=_REGION_KEYS))
    other = pc.and_(pc.fill_null(pc.not_equal(key, ""), False), pc.is_null(region))
    return _string_series(pc.if_else(other, pa.scalar("Other"), region), country.index)


# --- fit -----------------------------------------------------------------------------------


def attribute_text(name: str, column: str, description: str) -> Callable[[PointInTime], pd.Series]:
    """A fit feature that is a lead attribute as text: stripped, blanks as NA (category)."""

    def text(pit: PointInTime) -> pd.Series:
        return _text(pit, column)

    text.__name__ = text.__qualname__ = name
    text.__doc__ = description
    return text


def attribute_number(name: str, column: str, description: str) -> Callable[[PointInTime], np.ndarray]:
    """A fit feature that is a numeric lead attribute (``float64``, NaN when missing)."""

    def number(pit: PointInTime) -> np.ndarray:
        return _per_lead(pit, f"number:{column}", lambda leads: _numbers(leads, column))

    number.__name__ = number.__qualname__ = name
    number.__doc__ = description
    return number


def _numbers(leads: pd.DataFrame, column: str) -> np.ndarray:
    if column not in leads.columns:
        return np.full(len(leads), np.nan)
    return pd.to_numeric(leads[column], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)



def industry(pit: PointInTime) -> pd.Series:
    """The lead's industry as given in the CRM (category)."""
    return _text(pit, "industry")


def company_size_band(pit: PointInTime) -> pd.Series:
    """The lead's company size as a band of employee counts, e.g. "250-999" (category)."""
    def bands(leads: pd.DataFrame) -> pd.Series:
        if "company_size" not in leads.columns:
            return pd.Series(pd.NA, index=leads.index, dtype="string")
        return company_size_band_of(leads["company_size"])

    return _as_string(_per_lead(pit, "company_size_band", bands))


def seniority(pit: PointInTime) -> pd.Series:
    """The contact's seniority level, e.g. "director" (category)."""
    return _text(pit, "seniority")


def job_function(pit: PointInTime) -> pd.Series:
    """The contact's job function, e.g. "marketing" (category)."""
    return _text(pit, "job_function")


def country(pit: PointInTime) -> pd.Series:
    """The lead's country as given in the CRM (category)."""
    return _text(pit, "country")


def region(pit: PointInTime) -> pd.Series:
    """The world region of the lead's country, e.g. "Europe" (category)."""
    return _as_string(
        _per_lead(pit, "region", lambda leads: region_of(_clean_text(leads, "country")))
    )


def source_channel(pit: PointInTime) -> pd.Series:
    """The channel that captured the lead, e.g. "paid_search" (category)."""
    return _text(pit, "source")


def campaign(pit: PointInTime) -> pd.Series:
    """The UTM campaign the lead was captured by (category)."""
    return _text(pit, "utm_campaign")


def free_mail(pit: PointInTime) -> np.ndarray:
    """1 if the lead signed up with a free-mail address (gmail, yahoo, ...), 0 if not, NaN if no email (flag)."""
    return _per_lead(pit, "free_mail", _free_mail_flag)


_FREE_MAIL_SET = pa.array(sorted(FREE_MAIL_DOMAINS), pa.string())


def _free_mail_flag(leads: pd.DataFrame) -> np.ndarray:
    if "email" not in leads.columns:
        return np.full(len(leads), np.nan)
    email = pc.utf8_lower(pc.utf8_trim_whitespace(_arrow_text(leads["email"])))
    # The domain: what follows the last "@"; null when there is no "@" (or no email).
    domain = pc.struct_field(pc.extract_regex(email, r"(?s)@(?P<d>[^@]*)$"), [0])
    is_free = pc.is_in(domain, value_set=_FREE_MAIL_SET)
    for prefix in _FREE_MAIL_PREFIXES:
        is_free = pc.or_(is_free, pc.fill_null(pc.starts_with(domain, prefix), False))
    flag = is_free.to_numpy(zero_copy_only=False).astype(float)
    return np.where(pc.is_null(domain).to_numpy(zero_copy_only=False), np.nan, flag)


def profile_completeness(pit: PointInTime) -> np.ndarray:
    """Share of the optional profile fields the lead filled in (0 to 1)."""
    return _per_lead(
        pit,
        "profile_completeness",
        lambda leads: np.column_stack([_present(leads, c) for c in PROFILE_FIELDS]).mean(axis=1),
    )


def lead_age_days(pit: PointInTime) -> np.ndarray:
    """Days from the lead's creation to as_of (days)."""
    created = _per_lead(
        pit, "created_ns", lambda leads: leads["created_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    )
    return (pit.as_of - created) / DAY_NS


# --- engagement ----------------------------------------------------------------------------


def _count_function(activity_type: str | None, days: int) -> Callable[[PointInTime], np.ndarray]:
    what = f"{activity_type} activities" if activity_type else "activities of any type"

    def count(pit: PointInTime) -> np.ndarray:
        return pit.count(days, activity_type)

    stem = f"{activity_type}_count" if activity_type else "activity_count"
    count.__name__ = count.__qualname__ = f"{stem}_{days}d"
    count.__doc__ = f"Number of {what} in the {days} days before as_of (count)."
    return count


def days_since_last_activity(pit: PointInTime) -> np.ndarray:
    """Days since the lead's latest activity of any type; NaN if none yet (days)."""
    return pit.days_since_last()


def _days_since_function(action: str) -> Callable[[PointInTime], np.ndarray]:
    def days_since(pit: PointInTime) -> np.ndarray:
        return pit.days_since_last(action)

    days_since.__name__ = days_since.__qualname__ = f"days_since_last_{action}"
    days_since.__doc__ = f"Days since the lead's latest {action}; NaN if never (days)."
    return days_since


def _decayed_function(half_life: float) -> Callable[[PointInTime], np.ndarray]:
    def engagement(pit: PointInTime) -> np.ndarray:
        return pit.decayed(half_life)

    engagement.__name__ = engagement.__qualname__ = f"engagement_decayed_hl{half_life:g}d"
    engagement.__doc__ = (
        f"Type-weighted activity, each action's weight halving every {half_life:g} days "
        "(weighted count)."
    )
    return engagement


def activity_velocity(pit: PointInTime) -> np.ndarray:
    """Activity pace of the last 7 days over that of the 30 before, add-one smoothed; 1 is steady (ratio)."""
    recent = pit.count(VELOCITY_RECENT_DAYS)
    prior = pit.count(VELOCITY_PRIOR_DAYS, skip_days=VELOCITY_RECENT_DAYS)
    # Smoothing keeps the ratio finite for a lead with no prior activity, and near 1 for a
    # lead with almost none either way; the prior count is scaled to a 7-day pace.
    return (recent + 1.0) / (prior * VELOCITY_RECENT_DAYS / VELOCITY_PRIOR_DAYS + 1.0)


def _active_days_function(days: int) -> Callable[[PointInTime], np.ndarray]:
    def active_days(pit: PointInTime) -> np.ndarray:
        return pit.active_days(days)

    active_days.__name__ = active_days.__qualname__ = f"active_days_{days}d"
    active_days.__doc__ = f"Distinct UTC days with any activity in the {days} days before as_of (days)."
    return active_days


def first_touch_channel(pit: PointInTime) -> pd.Series:
    """Channel of the lead's earliest tracked activity, e.g. "email" (category; NA if none)."""
    return pit.touch_channel("first")


def last_touch_channel(pit: PointInTime) -> pd.Series:
    """Channel of the lead's latest activity before as_of, e.g. "webinar" (category; NA if none)."""
    return pit.touch_channel("last")


def engagement_functions(
    vocabulary: ActivityVocabulary = BUILTIN_VOCABULARY, *, touch_channels: bool = True
) -> dict[str, Callable[[PointInTime], object]]:
    """The engagement feature functions for ``vocabulary``'s kinds, by output name.

    Totals and per-kind counts over :data:`COUNT_WINDOWS`, recency of any activity and
    of each key action, decayed engagement per half-life, velocity and active days; with
    ``touch_channels``, the first- and last-touch channel (which need URLs or campaigns).
    A new kind gets its features by construction.
    """
    funcs: list[Callable[[PointInTime], object]] = []
    funcs += [_count_function(None, d) for d in COUNT_WINDOWS]
    funcs += [_count_function(t, d) for t in vocabulary.kinds for d in COUNT_WINDOWS]
    funcs += [days_since_last_activity]
    funcs += [_days_since_function(a) for a in vocabulary.key_actions]
    funcs += [_decayed_function(h) for h in HALF_LIVES]
    funcs += [activity_velocity]
    funcs += [_active_days_function(d) for d in ACTIVE_DAY_WINDOWS]
    if touch_channels:
        funcs += [first_touch_channel, last_touch_channel]
    return {f.__name__: f for f in funcs}


FIT_FUNCTIONS: dict[str, Callable[[PointInTime], object]] = {
    f.__name__: f
    for f in (
        industry,
        company_size_band,
        seniority,
        job_function,
        country,
        region,
        source_channel,
        campaign,
        free_mail,
        profile_completeness,
        lead_age_days,
    )
}
"""The fit functions of the built-in data contract, by output name."""

FEATURE_FUNCTIONS: dict[str, Callable[[PointInTime], object]] = {
    **FIT_FUNCTIONS,
    **engagement_functions(BUILTIN_VOCABULARY),
}
"""Every feature function by output name (column order is the registry's)."""


def fill_features(
    pit: PointInTime,
    names: list[str],
    categorical: set[str],
    numeric_out: np.ndarray,
    functions: dict[str, Callable[[PointInTime], object]] = FEATURE_FUNCTIONS,
) -> dict[str, pd.Series]:
    """Run the named feature functions over ``pit``.

    Numeric features are written, in order, into the rows of ``numeric_out`` (shape
    ``(n_numeric, len(pit))``, ``float64``); categorical ones are returned as ``string``.
    Writing into the caller's block lets a training set of millions of rows be built in
    chunks without stacking or copying its columns afterwards.
    """
    strings: dict[str, pd.Series] = {}
    row = 0
    for name in names:
        value = functions[name](pit)
        if name in categorical:
            strings[name] = _as_string(value)
        else:
            numeric_out[row] = value
            row += 1
    return strings


def assemble(
    names: list[str], categorical: set[str], strings: dict[str, pd.Series], block: np.ndarray
) -> pd.DataFrame:
    """The feature frame from its ``string`` columns and its numeric block, in ``names`` order."""
    numeric = [n for n in names if n not in categorical]
    numbers = pd.DataFrame(block.T, columns=numeric, copy=False)
    frame = pd.concat([pd.DataFrame(strings, index=numbers.index), numbers], axis=1)
    return frame[names] if list(frame.columns) != names else frame


def compute_features(
    pit: PointInTime,
    names: list[str],
    categorical: set[str],
    functions: dict[str, Callable[[PointInTime], object]] = FEATURE_FUNCTIONS,
) -> pd.DataFrame:
    """Run the named feature functions over ``pit`` into a frame with the declared dtypes."""
    numeric = [n for n in names if n not in categorical]
    block = np.empty((len(numeric), len(pit)), dtype=np.float64)
    strings = fill_features(pit, names, categorical, block, functions)
    return assemble(names, categorical, strings, block)


def compute_feature_columns(
    pit: PointInTime,
    names: list[str],
    categorical: set[str],
    functions: dict[str, Callable[[PointInTime], object]] = FEATURE_FUNCTIONS,
) -> dict[str, np.ndarray | pd.Series]:
    """:func:`compute_features` as a mapping of name to column, in ``names`` order.

    The same values (``float64`` arrays, ``string`` Series) without building a frame:
    the cheaper form for the few rows of a live request.
    """
    numeric = [n for n in names if n not in categorical]
    block = np.empty((len(numeric), len(pit)), dtype=np.float64)
    strings = fill_features(pit, names, categorical, block, functions)
    rows = iter(block)
    return {name: strings[name] if name in categorical else next(rows) for name in names}
