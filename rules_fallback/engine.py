"""Score leads with a rule set, vectorised over whole frames, with reasons like the model's.

The engine never loops over leads in Python. Fit rules are boolean masks over the
leads frame. Engagement rules are one pass over the activities: each activity gets
the row of its lead, its age at that lead's ``as_of``, and a decayed weight; a
``bincount`` per rule sums the weights per lead, and a clip applies the rule's cap.
The result is a (leads x rules) matrix of points, from which the totals, the
probabilities and the top reasons all follow with array operations.

Point in time: only activities with ``occurred_at < as_of`` count, where ``as_of``
may differ per row. The same lead may appear on several rows (one per snapshot), each
with its own ``as_of``.
"""

from __future__ import annotations

import gc
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.grading import score_from_probability
from features.reasons import Reason
from rules_fallback.rules import Condition, EngagementRule, FitRule, InactivityRule, RuleSet

__all__ = [
    "FREE_MAIL_DOMAINS",
    "Evaluation",
    "evaluate",
    "score_leads",
    "points_to_probability",
]

FREE_MAIL_DOMAINS: frozenset[str] = frozenset(
    {
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
        "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com", "msn.com",
        "aol.com", "icloud.com", "me.com", "mac.com", "gmx.com", "gmx.de", "gmx.net",
        "web.de", "mail.com", "proton.me", "protonmail.com", "zoho.com", "yandex.com",
        "yandex.ru", "mail.ru", "qq.com", "163.com", "126.com", "orange.fr", "free.fr",
        "libero.it", "rediffmail.com", "fastmail.com", "tutanota.com", "hey.com",
    }
)
"""Consumer mailbox providers: an address there says nothing about an employer."""

_EDU_RE = r"(?:\.edu|\.edu\.[a-z]{2,3}|\.ac\.[a-z]{2,3}|\.k12\.[a-z]{2}\.us)$"
_DAY_NS = 86_400 * 10**9
_TEXT_FIELDS = frozenset(
    {"source", "utm_campaign", "country", "industry", "job_title", "seniority",
     "job_function", "email_domain_type", "email_domain", "url", "campaign"}
)


def points_to_probability(points: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """The logistic map ``1 / (1 + exp(-(intercept + slope * points)))``."""
    from scipy.special import expit

    # expit, not 1 / (1 + exp(-z)): a steep map fitted on nearly separable history
    # (slope 61, intercept -1084, seen) overflows exp for ordinary point totals.
    return expit(intercept + slope * np.asarray(points, dtype=float))


# ----------------------------------------------------------------------------- inputs


def _utc_ns(values: pd.Series) -> np.ndarray:
    """A UTC timestamp column as int64 nanoseconds (NaT becomes the int64 minimum)."""
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise TypeError(
            f"column {values.name!r} must hold UTC timestamps (validate the frame with "
            f"features.schema first); got dtype {values.dtype}"
        )
    return values.dt.tz_convert("UTC").dt.as_unit("ns").array.asi8


def _as_of_ns(as_of: Any, n: int) -> np.ndarray:
    if isinstance(as_of, pd.Series):
        if len(as_of) != n:
            raise ValueError(
                f"as_of must be one timestamp or a Series with one per lead row ({n}); "
                f"got a Series of length {len(as_of)}"
            )
        series = as_of.reset_index(drop=True)
        if not isinstance(series.dtype, pd.DatetimeTZDtype):
            series = pd.to_datetime(series)
            if not isinstance(series.dtype, pd.DatetimeTZDtype):
                raise ValueError(
                    "as_of has no time zone; expected UTC timestamps such as "
                    "'2026-03-01T00:00:00Z'"
                )
        if series.isna().any():
            raise ValueError("as_of has missing values; every lead row needs a timestamp")
        return _utc_ns(series)
    ts = pd.Timestamp(as_of)
    if ts.tzinfo is None:
        raise ValueError(
            f"as_of {as_of!r} has no time zone; expected a UTC timestamp such as "
            "'2026-03-01T00:00:00Z'"
        )
    return np.full(n, ts.tz_convert("UTC").as_unit("ns").value, dtype=np.int64)


def _arrow(values: pd.Series | pd.api.extensions.ExtensionArray) -> pa.Array | pa.ChunkedArray:
    """A text column as Arrow: zero-copy for pandas' Arrow-backed strings."""
    array = values.array if isinstance(values, pd.Series) else values
    if isinstance(array, pd.api.extensions.ExtensionArray) and hasattr(array, "__arrow_array__"):
        return pa.array(array)
    return pa.array(np.asarray(values, dtype=object), pa.string(), from_pandas=True)


def _lookup(values: pd.Series, value_set: pa.Array) -> np.ndarray:
    """Position of each value in ``value_set``, -1 when absent (one Arrow hash pass)."""
    found = pc.index_in(_arrow(values).cast(pa.string()), value_set=value_set.cast(pa.string()))
    return pc.fill_null(found, -1).to_numpy().astype(np.intp, copy=False)


def _activity_rows(lead_ids: pd.Series, activity_lead_ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """For each (activity, lead row) pair: the activity's position and the row's.

    With unique lead ids this is one hash lookup. With repeated ids (snapshots of the
    same lead at several dates) every activity is paired with every row of its lead.
    """
    codes, uniques = pd.factorize(lead_ids)
    act_code = _lookup(activity_lead_ids, _arrow(uniques))
    known = np.flatnonzero(act_code >= 0)
    act_code = act_code[known]
    if len(uniques) == len(lead_ids):
        # factorize numbers first appearances 0..n-1, so with unique ids code == row.
        return known, act_code
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = np.argsort(codes, kind="stable")
    rep = counts[act_code]
    act = np.repeat(known, rep)
    within = np.arange(rep.sum()) - np.repeat(np.cumsum(rep) - rep, rep)
    rows = order[np.repeat(starts[act_code], rep) + within]
    return act, rows


# ------------------------------------------------------------------------- conditions


class _Fields:
    """Lazily computed, normalised lead columns and derived facts, each built once."""

    def __init__(self, frame: pd.DataFrame, as_of_ns: np.ndarray | None = None):
        self.frame = frame
        self.as_of_ns = as_of_ns
        self._cache: dict[str, pd.Series] = {}

    def raw(self, name: str) -> pd.Series:
        if name in self._cache:
            return self._cache[name]
        if name == "email_domain":
            value = self._email_domain()
        elif name == "email_domain_type":
            value = self._email_domain_type()
        elif name == "lead_age_days":
            created = _utc_ns(self.frame["created_at"])
            age = (self.as_of_ns - created) / _DAY_NS
            value = pd.Series(np.where(created == np.iinfo(np.int64).min, np.nan, age))
        elif name in self.frame.columns:
            value = self.frame[name].reset_index(drop=True)
        elif name in _TEXT_FIELDS:
            value = pd.Series(pd.NA, index=range(len(self.frame)), dtype="string")
        else:
            value = pd.Series(np.nan, index=range(len(self.frame)), dtype="float64")
        self._cache[name] = value
        return value

    def text(self, name: str) -> pd.Series:
        key = f"text:{name}"
        if key not in self._cache:
            self._cache[key] = self.raw(name).astype("string").str.strip().str.lower()
        return self._cache[key]

    def _email_domain(self) -> pd.Series:
        if "email" not in self.frame.columns:
            return pd.Series(pd.NA, index=range(len(self.frame)), dtype="string")
        email = pc.utf8_lower(pc.utf8_trim_whitespace(_arrow(self.frame["email"])))
        # Arrow's RE2 kernels: a Python regex per address would dominate at a million leads.
        valid = pc.match_substring_regex(email, r"^[^@]*@[^@\s]+$")
        domain = pc.if_else(valid, pc.replace_substring_regex(email, r"^.*@", ""), None)
        return pd.Series(pd.array(domain, dtype="string"))

    def _email_domain_type(self) -> pd.Series:
        domain = self.raw("email_domain")
        kind = np.full(len(domain), "corporate", dtype=object)
        kind[domain.isin(FREE_MAIL_DOMAINS).to_numpy(dtype=bool, na_value=False)] = "free"
        edu = domain.str.contains(_EDU_RE, regex=True).to_numpy(dtype=bool, na_value=False)
        kind[edu] = "education"
        kind[domain.isna().to_numpy()] = "missing"
        return pd.Series(kind, dtype="string")


def _norm(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _condition_mask(condition: Condition, fields: _Fields) -> np.ndarray:
    """Rows where the condition holds; a missing value never matches."""
    name = condition.field
    # A dataset spec's categorical fields are not in the built-in list; they are strings.
    text = name in _TEXT_FIELDS or isinstance(fields.raw(name).dtype, pd.StringDtype)
    raw = fields.raw(name)
    present = raw.notna().to_numpy()
    if condition.regex is not None:
        hit = fields.text(name) if text else raw.astype("string")
        with warnings.catch_warnings():
            # Groups in a rule's regex are for alternation, not extraction.
            warnings.filterwarnings("ignore", "This pattern is interpreted", UserWarning)
            found = hit.str.contains(condition.regex, case=False, regex=True)
        mask = found.to_numpy(dtype=bool, na_value=False)
    elif condition.range is not None:
        numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        mask = present.copy()
        if condition.range.min is not None:
            mask &= numbers >= condition.range.min
        if condition.range.max is not None:
            mask &= numbers < condition.range.max
    else:
        wanted = [condition.equals] if condition.in_ is None else list(condition.in_)
        if text:
            mask = fields.text(name).isin([str(_norm(v)) for v in wanted]).to_numpy(
                dtype=bool, na_value=False
            )
        else:
            numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            targets = [float(v) for v in wanted if isinstance(v, int | float)]
            mask = np.isin(numbers, targets)
    mask = np.asarray(mask, dtype=bool) & present
    if condition.negate:
        mask = ~mask & present
    return mask


def _all_of(conditions: list[Condition], fields: _Fields, n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for condition in conditions:
        mask &= _condition_mask(condition, fields)
    return mask


# ------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Evaluation:
    """Everything the engine computed for a batch of lead rows.

    ``points`` is the (rows x rules) matrix of signed points each rule contributed
    (after its own cap, before the global cap); ``values[j]`` holds, per row, what rule
    ``j`` saw: the occurrence count for engagement rules, the days since the last touch
    for inactivity rules, the lead's field value for fit rules.
    """

    rules: RuleSet
    lead_id: pd.Series
    points: np.ndarray
    values: list[Any]
    total: np.ndarray
    probability: np.ndarray

    @property
    def score(self) -> np.ndarray:
        return score_from_probability(self.probability)

    def frame(self) -> pd.DataFrame:
        """lead_id, points, probability, score, grade and route, one row per input row."""
        grading = self.rules.grading
        score = self.score
        grade = grading.grade(score)
        return pd.DataFrame(
            {
                "lead_id": self.lead_id.to_numpy(),
                "points": self.total,
                "probability": self.probability,
                "score": score,
                "grade": pd.array(grade, dtype="string"),
                "route": pd.array(grading.route(grade), dtype="string"),
            }
        ).astype({"lead_id": self.lead_id.dtype})

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(base, fit part, engagement part)`` per row, in log-odds, adding up exactly.

        The base is the map's intercept; each part is the slope times the points of the
        group's rules (fit rules are fit; engagement and inactivity rules, engagement).
        When the global cap clips the total, the clipped amount is taken from both parts
        in proportion to their size, so base + fit + engagement = intercept + slope x
        total, the log-odds of :attr:`probability`.
        """
        mapping = self.rules.mapping
        fit_mask = self._fit_mask()
        fit = self.points[:, fit_mask].sum(axis=1)
        engagement = self.points[:, ~fit_mask].sum(axis=1)
        clipped = self.total - (fit + engagement)
        size = np.abs(fit) + np.abs(engagement)
        share = np.divide(np.abs(fit), size, out=np.full(len(fit), 0.5), where=size > 0)
        fit = fit + clipped * share
        engagement = engagement + clipped * (1.0 - share)
        base = np.full(len(fit), float(mapping.intercept))
        return base, mapping.slope * fit, mapping.slope * engagement

    def part_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fit score, engagement score)`` 0-100: each group's points as a share of the
        sum of its positive rules (each engagement rule at its cap). Rules have no
        training leads to rank against, so this is not a percentile as the model's is."""
        fit_mask = self._fit_mask()
        best = np.array([max(float(getattr(r, "cap", r.points) if r.points > 0 else 0.0), 0.0)
                         for r in self.rules.rules])
        out = []
        for mask in (fit_mask, ~fit_mask):
            points = self.points[:, mask].sum(axis=1)
            most = best[mask].sum()
            share = np.clip(points / most, 0.0, 1.0) if most > 0 else np.zeros(len(points))
            out.append(np.rint(100.0 * share).astype(int))
        return out[0], out[1]

    def _fit_mask(self) -> np.ndarray:
        return np.array([isinstance(r, FitRule) for r in self.rules.rules], dtype=bool)

    def reason_table(self, top: int | None = 3) -> pd.DataFrame:
        """Reasons in long form: one row per (lead row, reason), ordered as they are shown.

        Rules reporting under the same business field are summed into one reason, as
        the model sums its SHAP values per field; the sentence is that of the rule with
        the largest effect. Per row: the ``top`` largest positive reasons, largest
        first, then the ``top`` most negative, most negative first (``top=None``: every
        rule that fired). Columns: ``row``, ``field``, ``label``, ``value``,
        ``impact``, ``sentence``.
        """
        rules = self.rules.rules
        n = len(self.total)
        field_names = list(dict.fromkeys(rule.field for rule in rules))
        columns = {f: [j for j, r in enumerate(rules) if r.field == f] for f in field_names}
        by_field = np.zeros((n, len(field_names)))
        representative = np.zeros((n, len(field_names)), dtype=np.intp)
        for k, cols in enumerate(columns.values()):
            block = self.points[:, cols]
            by_field[:, k] = block.sum(axis=1)
            if len(cols) == 1:
                representative[:, k] = cols[0]
            else:
                representative[:, k] = np.asarray(cols)[np.abs(block).argmax(axis=1)]
        k = len(field_names) if top is None else min(top, len(field_names))
        # A stable sort keeps file order among equal impacts, so output is deterministic.
        pos = np.argsort(-by_field, axis=1, kind="stable")[:, :k]
        neg = np.argsort(by_field, axis=1, kind="stable")[:, :k]
        chosen = np.concatenate([pos, neg], axis=1)
        impact = np.take_along_axis(by_field, chosen, axis=1)
        keep = np.concatenate([impact[:, :k] > 0, impact[:, k:] < 0], axis=1)
        row = np.broadcast_to(np.arange(n)[:, None], chosen.shape)[keep]
        field_idx = chosen[keep]
        impact = impact[keep]
        rule_idx = representative[row, field_idx]

        value = np.empty(len(row), dtype=object)
        sentence = np.empty(len(row), dtype=object)
        for j in np.unique(rule_idx):
            at = np.flatnonzero(rule_idx == j)
            shown, said = _describe(rules[j], self.values[j], row[at])
            value[at] = shown
            sentence[at] = said
        fields = np.asarray(field_names, dtype=object)
        labels = np.asarray([rules[columns[f][0]].label for f in field_names], dtype=object)
        return pd.DataFrame(
            {
                "row": row,
                "field": fields[field_idx],
                "label": labels[field_idx],
                "value": value,
                "impact": np.round(impact, 3),
                "sentence": sentence,
            }
        )

    def reasons(self, top: int | None = 3) -> list[list[Reason]]:
        """The reasons of each row as :class:`~features.reasons.Reason` lists."""
        table = self.reason_table(top)
        # Millions of small objects would trigger the cyclic collector over and over;
        # Reasons hold no cycles, so it is paused while they are built.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._reason_lists(table)
        finally:
            if collecting:
                gc.enable()

    def _reason_lists(self, table: pd.DataFrame) -> list[list[Reason]]:
        flat = [
            Reason(field=f, label=lab, value=v, impact=i, sentence=s)
            for f, lab, v, i, s in zip(
                table["field"].tolist(), table["label"].tolist(), table["value"].tolist(),
                table["impact"].tolist(), table["sentence"].tolist(), strict=True,
            )
        ]
        bounds = np.searchsorted(table["row"].to_numpy(), np.arange(len(self.total) + 1)).tolist()
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(self.total))]


def _times(count: int) -> str:
    return {1: "once", 2: "twice"}.get(count, f"{count} times")


def _plain(value: Any) -> str | float | int | None:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _days_text(days: float) -> str:
    return str(int(days)) if float(days).is_integer() else f"{days:g}"


def _describe(rule: Any, values: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value shown and sentence for each row where the rule is the field's representative.

    Sentences are rendered once per distinct value, not once per lead.
    """
    if isinstance(values, pd.Series):
        picked = values.iloc[rows]
    else:
        picked = pd.Series(np.asarray(values)[rows])
    codes, distinct = pd.factorize(picked, use_na_sentinel=False)
    shown = []
    said = []
    for raw in distinct:
        value = _plain(raw)
        if isinstance(rule, EngagementRule):
            count = int(value or 0)
            text = rule.sentence.format(
                count=count, times=_times(count), window_days=_days_text(rule.window_days)
            )
        elif isinstance(rule, InactivityRule):
            text = rule.sentence.format(days=value)
        else:
            if rule.value is not None:
                value = rule.value
            text = rule.sentence.format(value=value)
        shown.append(value)
        said.append(text)
    shown_arr = np.empty(len(shown), dtype=object)
    shown_arr[:] = shown
    return shown_arr[codes], np.asarray(said, dtype=object)[codes]


def evaluate(
    rules: RuleSet, leads: pd.DataFrame, activities: pd.DataFrame, as_of: Any
) -> Evaluation:
    """Apply every rule to every lead row; see :func:`score_leads` for the inputs."""
    n = len(leads)
    leads = leads.reset_index(drop=True)
    as_of_ns = _as_of_ns(as_of, n)
    fields = _Fields(leads, as_of_ns)
    rule_list = rules.rules
    points = np.zeros((n, len(rule_list)))
    values: list[Any] = [None] * len(rule_list)

    engagement = [r for r in rule_list if isinstance(r, EngagementRule | InactivityRule)]
    if engagement and len(activities):
        act_pos, rows = _activity_rows(leads["lead_id"], activities["lead_id"])
        occurred = _utc_ns(activities["occurred_at"])[act_pos]
        age_ns = as_of_ns[rows] - occurred
        # Point in time: only what happened strictly before this row's as_of counts.
        past = age_ns > 0
        act_pos, rows, age_ns = act_pos[past], rows[past], age_ns[past]
        # Only the types some rule names get a code; the rest are -1 ("other activity").
        named = sorted(
            {r.activity for r in engagement if isinstance(r, EngagementRule)}
            | {t for r in engagement if isinstance(r, InactivityRule) for t in r.ignore_activities}
        )
        type_codes = _lookup(activities["type"], pa.array(named, pa.string()))[act_pos]
        code_of = {t: i for i, t in enumerate(named)}
        age_days = age_ns / _DAY_NS
    else:
        rows = np.zeros(0, dtype=np.intp)
        act_pos = rows
        type_codes = rows
        code_of = {}
        age_days = np.zeros(0)
        age_ns = np.zeros(0, dtype=np.int64)

    for j, rule in enumerate(rule_list):
        if isinstance(rule, FitRule):
            mask = _all_of(rule.when, fields, n)
            points[:, j] = np.where(mask, rule.points, 0.0)
            values[j] = fields.raw(rule.when[0].field)
        elif isinstance(rule, EngagementRule):
            code = code_of.get(rule.activity, -1)
            sel = np.flatnonzero((type_codes == code) & (age_days < rule.window_days))
            if rule.where and len(sel):
                subset = activities.iloc[act_pos[sel]]
                sel = sel[_all_of(rule.where, _Fields(subset), len(sel))]
            if rule.half_life_days is None:
                weight = np.full(len(sel), rule.points)
            else:
                weight = rule.points * np.exp2(-age_days[sel] / rule.half_life_days)
            total = np.bincount(rows[sel], weights=weight, minlength=n)
            points[:, j] = np.clip(total, -rule.cap, rule.cap)
            values[j] = np.bincount(rows[sel], minlength=n)
        else:
            ignored = [code_of[t] for t in rule.ignore_activities if t in code_of]
            counted = ~np.isin(type_codes, ignored)
            # Most recent touch: newest counted activity, or creation for a quiet new lead.
            newest = np.full(n, np.iinfo(np.int64).max)
            np.minimum.at(newest, rows[counted], age_ns[counted])
            created_age = as_of_ns - _utc_ns(leads["created_at"])
            since = np.minimum(newest, np.where(created_age > 0, created_age, 0)) / _DAY_NS
            inactive = since >= rule.inactive_days
            points[:, j] = np.where(inactive, rule.points, 0.0)
            values[j] = np.floor(since).astype(np.int64)

    mapping = rules.mapping
    total = np.clip(points.sum(axis=1), mapping.min_points, mapping.max_points)
    probability = points_to_probability(total, mapping.intercept, mapping.slope)
    return Evaluation(
        rules=rules,
        lead_id=leads["lead_id"],
        points=points,
        values=values,
        total=total,
        probability=probability,
    )


def score_leads(
    rules: RuleSet,
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    as_of: Any,
    *,
    top_reasons: int = 3,
    reasons: bool = True,
    parts: bool = False,
) -> pd.DataFrame:
    """Score lead rows with a rule set.

    Parameters
    ----------
    rules : RuleSet
        From :func:`rules_fallback.load_rules`.
    leads : pandas.DataFrame
        Validated leads (``features.schema.validate_leads``). A lead may appear on
        several rows, e.g. one per snapshot, each with its own ``as_of``.
    activities : pandas.DataFrame
        Validated activities of these leads. Activities of other leads are ignored.
    as_of : timestamp or pandas.Series
        The moment of scoring: one UTC timestamp, or one per row of ``leads``
        (aligned by position). Only activities strictly before it count.
    top_reasons : int, default 3
        How many positive and how many negative reasons to give per row.
    reasons : bool, default True
        Build the ``reasons`` column. Batch jobs that write columnar output can use
        :meth:`Evaluation.reason_table` from :func:`evaluate` instead.
    parts : bool, default False
        Add the fit/engagement split (:meth:`Evaluation.parts`,
        :meth:`Evaluation.part_scores`): ``base``, ``fit_part``, ``engagement_part``
        (log-odds), ``fit_score`` and ``engagement_score`` (0-100).

    Returns
    -------
    pandas.DataFrame
        One row per input row, in input order: ``lead_id``, ``points`` (total after the
        global cap), ``probability``, ``score`` (0-100), ``grade``, ``route`` and
        ``reasons`` (a list of :class:`~features.reasons.Reason`: the largest positive
        first, then the most negative; ``impact`` is the signed points of the rule).
    """
    if not isinstance(top_reasons, int) or top_reasons < 0:
        raise ValueError(
            f"The 'top_reasons' parameter of score_leads must be an int >= 0. "
            f"Got {top_reasons!r} instead."
        )
    evaluation = evaluate(rules, leads, activities, as_of)
    out = evaluation.frame()
    if reasons:
        # Filling a preallocated object array keeps pandas from inspecting a million lists.
        # (fromiter, unlike slice assignment, never reads equal-length lists as a 2-D array.)
        lists = evaluation.reasons(top_reasons)
        out["reasons"] = np.fromiter(lists, dtype=object, count=len(lists))
    if parts:
        base, fit_part, engagement_part = evaluation.parts()
        fit_score, engagement_score = evaluation.part_scores()
        out = out.assign(base=base, fit_part=fit_part, engagement_part=engagement_part,
                         fit_score=fit_score, engagement_score=engagement_score)
    return out
