"""Point-in-time views of activity histories, vectorised over many (lead, as_of) pairs.

The feature functions never see raw activity rows. They see a :class:`PointInTime`:
a batch of (lead, ``as_of``) pairs over an activity index that only answers questions
about rows with ``occurred_at < as_of``. That is where the point-in-time guarantee lives,
once, instead of in every feature.

How it stays fast (issue part 6): activities are sorted once by (lead, time) and turned
into prefix arrays (cumulative counts per type, per-lead cumulative decayed weights,
running "last index of a key action", new-day flags). Any window ``[as_of - w, as_of)`` of
any lead is then two positions found by one ``np.searchsorted`` over all pairs at once,
and every windowed count is a difference of two prefix values. Nothing scans the
activities per snapshot.

How it stays exact between the training-set builder and the online path (STYLE
principle 3): every value of a pair depends only on that lead's own activities, through
the same operations in the same order. Counts are integer differences; recencies are
integer nanosecond differences divided once; decayed sums use a *per-lead* cumulative sum
(``groupby().cumsum()``) referenced to the lead's first activity, never a global one, so a
lead's value is bit-identical whether it is computed among 100,000 leads or alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.schema import ACTIVITY_TYPES, KEY_ACTIONS

__all__ = [
    "ActivityIndex",
    "ActivityVocabulary",
    "BUILTIN_VOCABULARY",
    "PointInTime",
    "index_activities",
    "activity_channel",
    "DAY_NS",
]

DAY_NS = 86_400 * 10**9

# Relative importance of each activity type in the decayed engagement score. Hand-set
# priors from lead-management practice (a demo request says more than an email open);
# the model learns from the per-type counts anyway, this only shapes one summary feature.
# Unknown (custom CRM) types count as generic activity, weight 1.
TYPE_WEIGHTS: dict[str, float] = {
    "page_view": 1.0,
    "pricing_page_view": 3.0,
    "email_open": 0.5,
    "email_click": 1.5,
    "form_submit": 3.0,
    "content_download": 2.0,
    "webinar_registered": 2.0,
    "webinar_attended": 4.0,
    "demo_request": 6.0,
    "trial_signup": 6.0,
    "chat": 3.0,
    # An unsubscribe is a signal, but not engagement; its count is a feature of its own.
    "unsubscribe": 0.0,
}
UNKNOWN_TYPE_WEIGHT = 1.0



@dataclass(frozen=True)
class ActivityVocabulary:
    """The activity kinds a feature set knows: which have features of their own.

    ``kinds`` are the values of an activities table's ``type`` column that get per-kind
    counts (in this order); ``key_actions`` (a subset) also get a recency of their own;
    ``weights`` weigh each kind in the decayed engagement score. Any other type value
    is kept and counts as generic activity, with ``unknown_weight``. The built-in data
    contract is :data:`BUILTIN_VOCABULARY`; a dataset spec declares its own kinds.
    """

    kinds: tuple[str, ...]
    key_actions: tuple[str, ...] = ()
    weights: tuple[float, ...] = ()
    unknown_weight: float = 1.0

    def __post_init__(self) -> None:
        if len(set(self.kinds)) != len(self.kinds):
            raise ValueError(f"The 'kinds' of an ActivityVocabulary must be distinct. Got {self.kinds!r}.")
        missing = [a for a in self.key_actions if a not in self.kinds]
        if missing:
            raise ValueError(
                f"The 'key_actions' of an ActivityVocabulary must be kinds. Got {missing!r}, "
                f"which are not among {list(self.kinds)!r}."
            )
        if not self.weights:
            object.__setattr__(self, "weights", (1.0,) * len(self.kinds))
        if len(self.weights) != len(self.kinds):
            raise ValueError(
                "The 'weights' of an ActivityVocabulary must give one weight per kind "
                f"({len(self.kinds)}). Got {len(self.weights)} instead."
            )

    def code(self, kind: str) -> int:
        """The position of ``kind`` among :attr:`kinds`."""
        return self.kinds.index(kind)

    def weight_of_codes(self) -> np.ndarray:
        """Weights by type code, the generic weight last (code -1 picks it)."""
        return np.array([*self.weights, self.unknown_weight], dtype=np.float64)


BUILTIN_VOCABULARY = ActivityVocabulary(
    kinds=ACTIVITY_TYPES,
    key_actions=KEY_ACTIONS,
    weights=tuple(TYPE_WEIGHTS[t] for t in ACTIVITY_TYPES),
    unknown_weight=UNKNOWN_TYPE_WEIGHT,
)
"""The activity types of the built-in data contract (:data:`features.schema.ACTIVITY_TYPES`)."""

_TYPE_CHANNEL = {
    "email_open": "email",
    "email_click": "email",
    "unsubscribe": "email",
    "webinar_registered": "webinar",
    "webinar_attended": "webinar",
    "chat": "chat",
}
_UTM_MEDIUM_RE = r"[?&]utm_medium=(?P<medium>[^&#]+)"
_UTM_SOURCE_RE = r"[?&]utm_source=(?P<source>[^&#]+)"


def activity_channel(activities: pd.DataFrame) -> pd.Series:
    """The marketing channel of each activity, as a ``string`` Series aligned with the rows.

    In order of precedence: the URL's ``utm_medium`` (else ``utm_source``) when the link was
    tagged; the channel an activity type implies (email opens and clicks are "email",
    webinars "webinar", chats "chat"); "campaign" for other activities that name a
    campaign; "web" for everything else (untagged site visits, forms, downloads).
    """
    n = len(activities)
    # Work on distinct values (few types, far fewer URLs than rows), then map back. The
    # string work runs on Arrow's kernels, the ones pandas' ``.str`` methods call for
    # ``string`` columns, without pandas' per-call overhead (which dominates the few
    # rows of a live request).
    type_codes, type_values = pd.factorize(activities["type"].astype("string"))
    by_type = np.array([_TYPE_CHANNEL.get(str(t)) for t in type_values] + [None], dtype=object)
    channel = by_type[type_codes]  # code -1 (missing type) picks the trailing None
    if "campaign" in activities.columns and n:
        text = pc.utf8_trim_whitespace(_arrow_strings(activities["campaign"]))
        has_campaign = pc.fill_null(pc.not_equal(text, ""), False)
        has_campaign = has_campaign.to_numpy(zero_copy_only=False).astype(bool)
        channel = np.where((channel == None) & has_campaign, "campaign", channel)  # noqa: E711
    channel = np.where(channel == None, "web", channel)  # noqa: E711
    if "url" in activities.columns and n:
        url_codes, url_values = pd.factorize(activities["url"].astype("string"))
        if len(url_values):
            urls = pa.array(np.asarray(url_values, dtype=object), pa.string())
            medium = pc.struct_field(pc.extract_regex(urls, _UTM_MEDIUM_RE), [0])
            source = pc.struct_field(pc.extract_regex(urls, _UTM_SOURCE_RE), [0])
            tagged = pc.utf8_lower(pc.utf8_trim_whitespace(pc.coalesce(medium, source)))
            tagged = pc.if_else(pc.equal(tagged, ""), pa.scalar(None, pa.string()), tagged)
            lookup = np.append(tagged.to_numpy(zero_copy_only=False), None)
            by_url = lookup[url_codes]
            channel = np.where(by_url == None, channel, by_url)  # noqa: E711
    return pd.Series(pd.array(channel, dtype="string"), index=activities.index)


def _arrow_strings(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow strings, without a round trip through Python objects when possible."""
    values = values.astype("string")
    if pd.api.types.is_string_dtype(values.dtype) and getattr(values.dtype, "storage", "") == "pyarrow":
        return pa.array(values.array)
    return pa.array(values.to_numpy(dtype=object, na_value=None), pa.string())


@dataclass(frozen=True)
class ActivityIndex:
    """Activities of ``n_leads`` leads sorted by (lead, time), with prefix arrays.

    Lead codes are positions in the leads table the index was built for. ``key`` is
    ``code * (n_times + 1) + rank(time)``: sorted, and comparable with a pair's
    ``code * (n_times + 1) + rank(as_of)`` so that one ``searchsorted`` finds, for every
    pair, how many activities come before its lead's rows or before its ``as_of``.
    """

    n_leads: int
    code: np.ndarray  # int64, lead code per sorted activity
    time: np.ndarray  # int64 ns since epoch, sorted within each lead
    times: np.ndarray  # int64, sorted unique activity times
    key: np.ndarray  # int64, sorted
    lead_start: np.ndarray  # int64 (n_leads,), first sorted position of each lead
    type_cum: np.ndarray  # (n + 1, len(vocabulary.kinds)) cumulative counts per known kind
    new_day_cum: np.ndarray  # (n + 1,) cumulative "first activity of a (lead, UTC day)"
    last_key_action: dict[str, np.ndarray]  # per key action: last position <= i of it, -1
    first_time: np.ndarray  # int64 (n_leads,), time of each lead's first activity
    decay_cum: dict[float, np.ndarray] = field(default_factory=dict)  # per half-life (days)
    channel_codes: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    channel_names: np.ndarray = field(default_factory=lambda: np.empty(0, object))
    vocabulary: ActivityVocabulary = BUILTIN_VOCABULARY

    @property
    def n(self) -> int:
        return len(self.time)


def index_activities(
    activities: pd.DataFrame,
    lead_ids: pd.Series,
    *,
    half_lives: tuple[float, ...] = (7.0, 30.0),
    vocabulary: ActivityVocabulary = BUILTIN_VOCABULARY,
) -> ActivityIndex:
    """Sort and index ``activities`` for the leads ``lead_ids`` (codes are their positions).

    ``type`` values are coded by their position in ``vocabulary.kinds``; any other value
    is generic activity (code -1).

    Activities of leads not in ``lead_ids`` are ignored: the schema rejects them at the
    boundary, and the online path passes only the requested leads' histories.
    """
    ids = _arrow_strings(pd.Series(lead_ids))
    n_leads = len(ids)
    # Arrow's hash lookup: several times faster than Index.get_indexer on millions of strings.
    found = pc.index_in(
        _arrow_strings(activities["lead_id"]),
        value_set=ids,
    )
    codes = found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    keep = codes >= 0
    acts = activities if keep.all() else activities.loc[keep]  # no copy in the usual case
    codes = codes[keep].astype(np.int64)
    time = acts["occurred_at"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    type_code = pc.index_in(
        _arrow_strings(acts["type"]),
        value_set=pa.array(list(vocabulary.kinds), pa.string()),
    )
    type_code = type_code.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    n = len(time)
    # Sorted distinct times, and each row's dense rank among them: one argsort and a
    # scatter, instead of a sort plus a binary search of every row in the sorted times.
    by_time = np.argsort(time)
    sorted_time = time[by_time]
    new_time = np.ones(n, dtype=bool)
    new_time[1:] = sorted_time[1:] != sorted_time[:-1]
    times = sorted_time[new_time]
    rank = np.empty(n, dtype=np.int64)
    rank[by_time] = np.cumsum(new_time) - 1
    key = codes * (len(times) + 1) + rank

    # Sort by lead, time, then type so that ties sort the same way online and offline
    # whatever the input order (the per-lead cumulative sums depend on the order). The
    # three keys pack into one int64 (stable: full ties keep their input order), which
    # one argsort orders several times faster than np.lexsort's three passes.
    n_kinds = len(vocabulary.kinds)
    n_types = n_kinds + 1  # type codes are -1 (unknown) .. n_types - 2
    if max(n_leads, 1) * (len(times) + 1) * n_types < 2**62:
        order = np.argsort(key * n_types + (type_code + 1), kind="stable")
    else:  # pragma: no cover  (beyond ~10^18 lead-times: fall back to the 3-key sort)
        order = np.lexsort((type_code, time, codes))
    codes, time, type_code, key = codes[order], time[order], type_code[order], key[order]

    lead_start = np.searchsorted(codes, np.arange(n_leads, dtype=np.int64), side="left")
    seg_first = np.zeros(n, dtype=bool)
    if n:
        seg_first[0] = True
        seg_first[1:] = codes[1:] != codes[:-1]

    count_dtype = np.int32 if n < 2**31 - 1 else np.int64
    # One row per position, one column per type: a window's counts for every type are
    # then one row gather at each end (cache-friendly) instead of one gather per type.
    type_cum = np.zeros((n + 1, n_kinds), dtype=count_dtype)
    if n and n_kinds:
        one_hot = type_code[:, None] == np.arange(n_kinds)[None, :]
        np.cumsum(one_hot, axis=0, out=type_cum[1:])

    day = np.floor_divide(time, DAY_NS)
    new_day = seg_first.copy()
    if n:
        new_day[1:] |= day[1:] != day[:-1]
    new_day_cum = np.zeros(n + 1, dtype=count_dtype)
    np.cumsum(new_day, out=new_day_cum[1:])

    positions = np.arange(n, dtype=np.int64)
    last_key_action = {
        name: np.maximum.accumulate(
            np.where(type_code == vocabulary.code(name), positions, -1)
        )
        if n
        else np.empty(0, np.int64)
        for name in vocabulary.key_actions
    }

    first_time = np.zeros(n_leads, dtype=np.int64)
    has_rows = lead_start < np.append(lead_start[1:], n) if n_leads else np.empty(0, bool)
    first_time[has_rows] = time[lead_start[has_rows]]

    weights = vocabulary.weight_of_codes()[type_code]  # code -1 (unknown type) picks the trailing weight
    # Days since the lead's first activity: referencing each lead to its own first
    # activity keeps the exponent small (no overflow for histories under ~19 years at a
    # 7-day half-life) and makes a lead's value independent of every other lead.
    since_first = (time - first_time[codes]) / DAY_NS
    decay_cum = {}
    for half_life in half_lives:
        # Beyond that (a history spanning decades) the weights overflow to inf and the
        # lead's decayed engagement is inf or NaN, which the model reads as missing or
        # huge; numpy's warnings about it would only be noise in a training run.
        with np.errstate(over="ignore", invalid="ignore"):
            grown = weights * np.exp2(since_first / half_life)
        decay_cum[half_life] = (
            pd.Series(grown).groupby(codes, sort=False).cumsum().to_numpy(dtype=np.float64)
        )

    channel_codes, channel_names = pd.factorize(activity_channel(acts), sort=True)
    channel_codes = np.asarray(channel_codes)[order]

    return ActivityIndex(
        n_leads=n_leads,
        code=codes,
        time=time,
        times=times,
        key=key,
        lead_start=lead_start.astype(np.int64),
        type_cum=type_cum,
        new_day_cum=new_day_cum,
        last_key_action=last_key_action,
        first_time=first_time,
        decay_cum=decay_cum,
        channel_codes=np.asarray(channel_codes, dtype=np.int64),
        channel_names=np.asarray(channel_names, dtype=object),  # sorted, so codes are stable
        vocabulary=vocabulary,
    )


class PointInTime:
    """A batch of (lead, ``as_of``) pairs over an :class:`ActivityIndex` and a leads table.

    Every method answers for all pairs at once and uses only activities with
    ``occurred_at < as_of`` of the pair's own lead. ``leads`` is the leads table the index
    was built for: by default codes are its row positions, else ``lead_row`` gives them.
    """

    def __init__(
        self,
        leads: pd.DataFrame,
        index: ActivityIndex,
        lead_code: np.ndarray,
        as_of: np.ndarray,
        lead_row: np.ndarray | None = None,
        lead_cache: dict | None = None,
    ):
        self.leads = leads
        # Per-lead values (fit features) memoised by name: the builder computes rows in
        # chunks over one leads table, and a lead's attributes do not depend on as_of.
        self.lead_cache = {} if lead_cache is None else lead_cache
        self.index = index
        self.lead_code = np.asarray(lead_code, dtype=np.int64)
        # Row of ``leads`` for each pair; the index code by default (the builder's case).
        # The online path may list a lead twice, so its rows and codes can differ.
        self.lead_row = self.lead_code if lead_row is None else np.asarray(lead_row, np.int64)
        self.as_of = np.asarray(as_of, dtype=np.int64)  # ns since epoch, UTC
        self._identity: bool | None = None
        self._positions: dict[int, np.ndarray] = {}
        self._type_cum_at: dict[int, np.ndarray] = {}
        self._type_counts: dict[tuple[float, float], np.ndarray] = {}
        # A training set has few distinct as_of (one per snapshot): rank those, not every row.
        as_of_codes, as_of_values = pd.factorize(self.as_of)
        self._as_of_codes = np.asarray(as_of_codes, dtype=np.int64)
        self._as_of_values = np.asarray(as_of_values, dtype=np.int64)
        start = index.lead_start[self.lead_code] if len(self.lead_code) else np.empty(0, np.int64)
        self.start = start
        if len(self.lead_code):
            last = int(self.lead_code.max())
            end = index.lead_start[last + 1] if last + 1 < index.n_leads else index.n
            self._span = (int(index.lead_start[int(self.lead_code.min())]), int(end))
        else:
            self._span = (0, 0)

    def __len__(self) -> int:
        return len(self.lead_code)

    def position(self, days_back: float = 0) -> np.ndarray:
        """Sorted position of the first activity of each pair's lead at or after
        ``as_of - days_back``; the pair's rows before that instant end there."""
        ns = int(round(days_back * DAY_NS))
        if ns not in self._positions:
            idx = self.index
            rank = np.searchsorted(idx.times, self._as_of_values - ns, side="left")
            query = self.lead_code * (len(idx.times) + 1) + rank[self._as_of_codes]
            # Only the pairs' leads' stretch of the index can hold the answers; searching
            # that slice (small and in cache for a chunk of the builder) gives the same
            # positions as searching the whole index.
            lo, hi = self._span
            found = np.searchsorted(idx.key[lo:hi], query, side="left")
            self._positions[ns] = found.astype(np.int64) + lo
        return self._positions[ns]

    def count(self, days: float, activity_type: str | None = None, *, skip_days: float = 0) -> np.ndarray:
        """Activities (of one type, or all) in ``[as_of - days - skip_days, as_of - skip_days)``."""
        hi = self.position(skip_days)
        lo = self.position(skip_days + days)
        if activity_type is None:
            return (hi - lo).astype(np.float64)
        window = (days, skip_days)
        if window not in self._type_counts:
            self._type_counts[window] = self._cum_at(skip_days) - self._cum_at(skip_days + days)
        column = self.index.vocabulary.code(activity_type)
        return self._type_counts[window][:, column].astype(np.float64)

    def _cum_at(self, days_back: float) -> np.ndarray:
        """Per-type cumulative counts at ``position(days_back)``, gathered once per position."""
        ns = int(round(days_back * DAY_NS))
        if ns not in self._type_cum_at:
            self._type_cum_at[ns] = self.index.type_cum[self.position(days_back)]
        return self._type_cum_at[ns]

    def has_history(self) -> np.ndarray:
        """Whether the pair's lead has any activity before ``as_of``."""
        return self.position(0) > self.start

    def days_since_last(self, activity_type: str | None = None) -> np.ndarray:
        """Days from the latest activity (of a key-action type, or any) to ``as_of``; NaN if none."""
        hi = self.position(0)
        out = np.full(len(self), np.nan)
        has = hi > self.start
        last = hi - 1
        if activity_type is not None:
            running = self.index.last_key_action[activity_type]
            found = np.full(len(self), -1, dtype=np.int64)
            found[has] = running[last[has]]
            has = found >= self.start
            last = found
        out[has] = (self.as_of[has] - self.index.time[last[has]]) / DAY_NS
        return out

    def decayed(self, half_life_days: float) -> np.ndarray:
        """Type-weighted activity before ``as_of``, each halving every ``half_life_days``."""
        hi = self.position(0)
        has = hi > self.start
        out = np.zeros(len(self))
        cum = self.index.decay_cum[half_life_days][hi[has] - 1]
        since_first = (self.as_of[has] - self.index.first_time[self.lead_code[has]]) / DAY_NS
        with np.errstate(invalid="ignore"):  # inf * 0 for decades-long histories, see above
            out[has] = cum * np.exp2(-since_first / half_life_days)
        return out

    def active_days(self, days: float) -> np.ndarray:
        """Distinct UTC calendar days with activity in ``[as_of - days, as_of)``."""
        hi = self.position(0)
        lo = self.position(days)
        cum = self.index.new_day_cum
        some = hi > lo
        out = np.zeros(len(self))
        # The first row of the window opens a day even if that day began before the window.
        out[some] = 1 + cum[hi[some]] - cum[lo[some] + 1]
        return out

    def touch_channel(self, which: str) -> pd.Series:
        """Channel of the first or last activity before ``as_of`` (``string``, NA if none)."""
        hi = self.position(0)
        has = hi > self.start
        at = self.start if which == "first" else hi - 1
        codes = np.full(len(self), -1, dtype=np.int64)
        codes[has] = self.index.channel_codes[at[has]]
        names = pd.array(list(self.index.channel_names), dtype="string")
        return pd.Series(names.take(codes, allow_fill=True), dtype="string")

    def lead_values(self, per_lead: pd.Series | np.ndarray) -> np.ndarray | pd.Series:
        """Gather a per-lead value (aligned with ``leads``) onto the pairs."""
        if isinstance(per_lead, pd.Series):
            if self._rows_are_leads and isinstance(per_lead.index, pd.RangeIndex) \
                    and len(per_lead) == len(self) and per_lead.index.start == 0 \
                    and per_lead.index.step == 1:
                return per_lead  # one pair per lead, in order (a live request): no copy
            return per_lead.take(self.lead_row).reset_index(drop=True)
        return np.asarray(per_lead)[self.lead_row]

    @property
    def _rows_are_leads(self) -> bool:
        """Whether pair i is row i of ``leads`` for every i (the online path's case)."""
        if self._identity is None:
            self._identity = bool(np.array_equal(self.lead_row,
                                                 np.arange(len(self.lead_row))))
        return self._identity
