"""The scoring core: raw leads and activities in, scores, grades, routes and reasons out.

One scoring core for the API and the batch job. :func:`score_records` takes frames
(the Dask batch job passes partitions) and returns one record per lead, in input order:

    raw leads + activities
      -> features.schema validation (the one error vocabulary)
      -> features.online.feature_columns_at (the same feature path as training)
      -> LeadModel: calibrated probability and TreeSHAP contributions, one tree pass
      -> score / grade / route via the model's own Grading
      -> reasons: contributions grouped by business field (features.registry.FeatureSet.top_reasons)

and the rules fallback (``rules_fallback.score_leads``) for the leads the model does
not answer, each marked with ``scored_by`` and ``fallback_reason``:

- ``no_model``: no model is loaded (no champion, or it could not be loaded);
- ``cold_start``: the lead has no activity before its as_of, and the cold-start
  policy says the rules answer such leads;
- ``model_error``: the model failed on this lead. The batch is retried lead by lead so
  that one bad lead never takes the others down; failures are logged by lead_id only.

The API calls :func:`score_payloads` with its pydantic leads. Up to
:data:`LIVE_MAX_LEADS` leads, it computes the features with :mod:`features.live`, the
same values one lead at a time in plain Python, without the vectorised path's fixed
cost of a frame, a validation and an activity index per call; the model, reasons and
fallbacks are the same code. Anything left to validate beyond pydantic's checks sends
the call down the frame path, which names the error.

Everything here is immutable per call: :class:`Engine` is a frozen snapshot of what is
being served (model bundle, rules, policy). The service swaps engines atomically; a
call keeps the engine it started with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.errors import DataValidationError, ValidationIssue
from features.live import LiveLead, clean_type, live_features, timestamp_ns
from features.matrix import Thresholds
from features.online import feature_columns_at, features_at
from features.reasons import Reason, select_top
from features.registry import BUILTIN
from features.schema import validate_activities, validate_leads
from rules_fallback import score_leads

__all__ = [
    "ModelBundle",
    "Engine",
    "RESULT_COLUMNS",
    "score_frame",
    "score_records",
    "explain_one",
    "select_reasons",
    "frames_from_payload",
    "score_payloads",
    "plain_records",
    "as_of_series",
    "validate_inputs",
    "has_history",
    "cold_start_preference",
]

logger = logging.getLogger("leadscore.serving")

RESULT_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "as_of",
    "probability",
    "score",
    "grade",
    "route",
    "scored_by",
    "fallback_reason",
    "model_name",
    "model_version",
    "rules_version",
    "reasons",
)
"""Columns of :func:`score_frame`'s result, in order. ``reasons`` holds lists of Reason."""

_LEAD_COLUMNS = (
    "lead_id", "created_at", "source", "utm_campaign", "country", "industry",
    "company_size", "job_title", "seniority", "job_function", "email",
)
_ACTIVITY_COLUMNS = ("lead_id", "occurred_at", "type", "url", "campaign", "duration_s")


@dataclass(frozen=True)
class ModelBundle:
    """A loaded model and where it came from. Immutable: swapped whole, never edited.

    Parameters
    ----------
    model : training.model.LeadModel
        The fitted model (feature_names, grading, cold_start, metrics, ...).
    name, version, alias, uri : str
        Registry name and version, the alias it was resolved from (None when pinned)
        and the URI it was loaded from.
    loaded_at : datetime
    """

    model: Any
    name: str
    version: str | None
    alias: str | None
    uri: str
    loaded_at: datetime



def cold_start_preference(model: Any, policy: str = "auto") -> Literal["model", "rules"]:
    """Who answers leads with no activity: the policy, or with ``auto`` what training
    measured (``model.cold_start["preferred"]``; the rules when nothing was measured)."""
    if policy != "auto":
        return policy  # type: ignore[return-value]
    recorded = (getattr(model, "cold_start", None) or {}).get("preferred")
    return "model" if recorded == "model" else "rules"

@dataclass(frozen=True)
class Engine:
    """What scores right now: an optional model bundle, the rules, the cold-start policy.

    Parameters
    ----------
    model : ModelBundle or None
        None means every lead is answered by the rules with ``no_model``.
    rules : rules_fallback.RuleSet
    cold_start_policy : {"auto", "model", "rules"}
        ``auto`` (the default) uses what training recorded as better on leads with no
        activities (``LeadModel.cold_start["preferred"]``): the model only where it had
        the higher ROC AUC on the no-activity test leads, or where the dataset has no
        activity log at all (then no lead has history). The rules answer when the rules
        did better, when there were too few such test leads of both classes to compare,
        and when the model recorded nothing.
    matrix_thresholds : features.matrix.Thresholds, optional
        The operator's fit/engagement thresholds (``LEADSCORE_FIT_THRESHOLD``,
        ``LEADSCORE_ENGAGEMENT_THRESHOLD``); unset ones are the model's shipped ones.
    """

    model: ModelBundle | None
    rules: Any
    cold_start_policy: Literal["auto", "model", "rules"] = "auto"
    matrix_thresholds: Thresholds | None = None
    _preferred: str = field(init=False, repr=False, default="rules")
    _rules_version: str = field(init=False, repr=False, default="")

    def __post_init__(self) -> None:
        preferred = "rules" if self.model is None else cold_start_preference(
            self.model.model, self.cold_start_policy)
        object.__setattr__(self, "_preferred", preferred)
        # A content hash of the rules: computed once per engine, not once per call.
        object.__setattr__(self, "_rules_version", str(self.rules.provenance))

    @property
    def cold_start_effective(self) -> Literal["model", "rules"]:
        """Who answers leads with no activities, given the policy and the model."""
        return self._preferred  # type: ignore[return-value]

    @property
    def rules_version(self) -> str:
        """The rules' ``version+hash``, as every result records it."""
        return self._rules_version


# --------------------------------------------------------------------------- payload


def frames_from_payload(
    leads: Sequence[Any],
    *,
    default_as_of: pd.Timestamp | Sequence[pd.Timestamp],
    lead_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Pydantic leads (``serving.contract.Lead``) as ``(leads, activities, as_of)`` frames.

    Built column-wise from plain lists, once, which is far cheaper than a frame per lead.
    ``as_of`` is a UTC Series aligned with ``leads``: a lead's own as_of, else
    ``default_as_of`` (one stamp, or one per lead). ``lead_ids``, when given, replaces
    the leads' ids in both frames (see :func:`score_payloads`).
    """
    lead_cols: dict[str, list[Any]] = {c: [] for c in _LEAD_COLUMNS}
    act_cols: dict[str, list[Any]] = {c: [] for c in _ACTIVITY_COLUMNS}
    as_of: list[Any] = []
    defaults = (default_as_of if isinstance(default_as_of, Sequence)
                else [default_as_of] * len(leads))
    ids = [lead.lead_id for lead in leads] if lead_ids is None else list(lead_ids)
    for lead, lead_id, default in zip(leads, ids, defaults, strict=True):
        for c in _LEAD_COLUMNS:
            lead_cols[c].append(getattr(lead, c))
        as_of.append(lead.as_of if lead.as_of is not None else default)
        for act in lead.activities:
            act_cols["lead_id"].append(lead_id)
            act_cols["occurred_at"].append(act.occurred_at)
            act_cols["type"].append(act.type)
            act_cols["url"].append(act.url)
            act_cols["campaign"].append(act.campaign)
            act_cols["duration_s"].append(act.duration_s)
    lead_cols["lead_id"] = ids
    lead_frame = pd.DataFrame(lead_cols)
    lead_frame["created_at"] = pd.to_datetime(lead_frame["created_at"], utc=True)
    act_frame = pd.DataFrame(act_cols)
    act_frame["occurred_at"] = pd.to_datetime(act_frame["occurred_at"], utc=True)
    as_of_series = pd.Series(pd.to_datetime(as_of, utc=True), name="as_of")
    return lead_frame, act_frame, as_of_series


def score_payloads(
    requests: Sequence[tuple[Sequence[Any], pd.Timestamp]],
    engine: Engine,
    *,
    top_reasons: int = 3,
    live: bool = True,
) -> list[list[dict[str, Any]]]:
    """Score several requests' pydantic leads in one :func:`score_records` call.

    ``requests`` holds, per request, its leads (``serving.contract.Lead``) and its
    default as_of. Returns the records of each request, each equal to what the request
    would get alone: every value of a lead depends only on that lead. Two requests may
    name the same lead (with other activities or another as_of), so the leads of every
    request but the first are keyed ``<lead_id>#<request>`` for the call and get their
    own ids back in the result. ``live=False`` forces the vectorised feature path (see
    :data:`LIVE_MAX_LEADS`).

    Raises whatever :func:`score_records` raises for the whole call (e.g. for one
    malformed lead); the caller then scores each request alone to give each its own
    answer.
    """
    ids = [[lead.lead_id for lead in leads] for leads, _ in requests]
    if len(requests) > 1 and any(not i.strip() for lead_ids in ids for i in lead_ids):
        # A suffix would make a blank id look present: let each request fail alone.
        raise ValueError("a lead has a blank lead_id")
    keys = [lead_ids if j == 0 else [f"{i}#{j}" for i in lead_ids]
            for j, lead_ids in enumerate(ids)]
    flat_keys = [k for part in keys for k in part]
    if len(requests) > 1 and len(set(flat_keys)) != len(flat_keys):
        raise ValueError("lead keys collide across the requests of one call")
    leads = [lead for part, _ in requests for lead in part]
    defaults = [default for part, default in requests for _ in part]
    rows = None
    if live and engine.model is not None and len(leads) <= LIVE_MAX_LEADS:
        live = _live_leads(leads, flat_keys, defaults)
        if live is not None:
            rows = _score_live(live, leads, flat_keys, defaults, engine, top_reasons)
    if rows is None:
        lead_frame, act_frame, as_of = frames_from_payload(leads, default_as_of=defaults,
                                                           lead_ids=flat_keys)
        rows = score_records(lead_frame, act_frame, engine, as_of=as_of,
                             top_reasons=top_reasons)
    results, start = [], 0
    for lead_ids in ids:
        part = rows[start:start + len(lead_ids)]
        for row, lead_id in zip(part, lead_ids, strict=True):
            row["lead_id"] = lead_id
        results.append(part)
        start += len(lead_ids)
    return results


# --------------------------------------------------------------------------- live path

LIVE_MAX_LEADS = 1000
"""Calls with at most this many leads (every API call, at the default batch limit) take
the plain-Python feature path of :mod:`features.live`; larger ones, and the batch job's
frames, the vectorised one. Both give the same values (``tests/features/test_live.py``,
``tests/serving/test_live_path.py``). ``benchmarks/live_features.py`` measured the live
path 23x cheaper for one lead (0.56 vs 12.8 ms a call), 2.9x for 32 and still 1.1x for
1,000."""


def _ns(value: datetime) -> int:
    return value.value if isinstance(value, pd.Timestamp) else timestamp_ns(value)


def _live_leads(
    leads: Sequence[Any], keys: Sequence[str], defaults: Sequence[pd.Timestamp]
) -> list[LiveLead] | None:
    """The pydantic leads as :class:`features.live.LiveLead`, or None when the call needs
    the full validation of :func:`validate_inputs` (which then names what is wrong).

    Pydantic has checked types, ranges and time zones; what is left of the data contract
    is checked here, conservatively: any doubt sends the call down the vectorised path.
    """
    if len(set(keys)) != len(keys):
        return None  # duplicate lead ids: validate_leads names them
    out = []
    for lead, key, default in zip(leads, keys, defaults, strict=True):
        if not key.strip():
            return None  # a blank lead_id
        as_of = _ns(lead.as_of if lead.as_of is not None else default)
        created = timestamp_ns(lead.created_at)
        if created > as_of:
            return None  # created after its as_of
        acts = lead.activities
        types = [clean_type(a.type) for a in acts]
        if not all(types):
            return None  # a blank activity type
        out.append(LiveLead(
            attributes={c: getattr(lead, c) for c in _LIVE_ATTRIBUTES},
            created_ns=created, as_of_ns=as_of,
            times=[timestamp_ns(a.occurred_at) for a in acts], types=types,
            urls=[a.url for a in acts], campaigns=[a.campaign for a in acts],
        ))
    return out


_LIVE_ATTRIBUTES = tuple(c for c in _LEAD_COLUMNS if c not in ("lead_id", "created_at"))


def _score_live(
    live: list[LiveLead], leads: Sequence[Any], keys: Sequence[str],
    defaults: Sequence[pd.Timestamp], engine: Engine, top_reasons: int,
) -> list[dict[str, Any]]:
    """:func:`score_records` for valid pydantic leads, features by :mod:`features.live`.

    The same records as the vectorised path: the same fallbacks (a cold start or a
    model failure goes to the rules, which score from frames as ever), the same values.
    """
    bundle = engine.model
    assert bundle is not None  # the caller checks
    names = bundle.model.feature_names
    n = len(live)
    stamps = [pd.Timestamp(lead.as_of_ns, unit="ns", tz="UTC") for lead in live]
    rules_positions: dict[str, list[int]] = {"cold_start": [], "model_error": []}
    if engine.cold_start_effective == "rules":
        rules_positions["cold_start"] = [i for i, lead in enumerate(live) if not lead.has_history()]
    cold = set(rules_positions["cold_start"])
    model_positions = [i for i in range(n) if i not in cold]
    rows: list[dict[str, Any] | None] = [None] * n

    if model_positions:
        def score_some(which: np.ndarray) -> list[dict[str, Any]]:
            # Features inside: a lead the features fail on is a model_error of its own.
            part = [live_features(live[model_positions[j]]) for j in which]
            X = {name: [row[name] for row in part] for name in names}
            return _rows_from_features(
                bundle, [keys[model_positions[j]] for j in which],
                [stamps[model_positions[j]] for j in which], X, part if top_reasons > 0 else None,
                top_reasons, thresholds=engine.matrix_thresholds)

        scored = _model_rows_or_fallback(bundle, [keys[i] for i in model_positions], score_some)
        for i, row in zip(model_positions, scored, strict=True):
            if row is None:
                rules_positions["model_error"].append(i)
            else:
                rows[i] = row

    def frames_of(positions: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
        r_leads, r_acts, r_as_of = frames_from_payload(
            [leads[i] for i in positions], default_as_of=[defaults[i] for i in positions],
            lead_ids=[keys[i] for i in positions])
        return (*validate_inputs(r_leads, r_acts, r_as_of), r_as_of)

    return _with_rules(rows, rules_positions, frames_of, engine, top_reasons)


# --------------------------------------------------------------------------- reasons


BLANK_RAISES_NOTE = " (in the training data, leads without this converted more often)"
"""Appended to the sentence of a model reason whose value is missing and whose impact
is positive: "Industry not given" raising a score reads as a bug to a marketer, yet
leads that leave a field blank can convert more often (a self-serve sign-up, say)."""


def blank_sentence(sentence: str, value: Any, impact: float) -> str:
    """A model reason's sentence, with :data:`BLANK_RAISES_NOTE` when the value is missing
    and the impact positive."""
    if value is None and impact > 0 and not sentence.endswith(BLANK_RAISES_NOTE):
        return sentence + BLANK_RAISES_NOTE
    return sentence


def explain_blanks(reasons: Iterable[Reason]) -> list[Reason]:
    """The model's reasons, with a missing value that raises the score said to do so."""
    out = []
    for r in reasons:
        sentence = blank_sentence(r.sentence, r.value, r.impact)
        out.append(r if sentence is r.sentence else replace(r, sentence=sentence))
    return out


def select_reasons(reasons: Iterable[Reason], top: int) -> list[Reason]:
    """The ``top`` largest positive reasons, then the ``top`` most negative ones."""
    return select_top(reasons, top, impact=lambda r: r.impact)


# --------------------------------------------------------------------------- core


def as_of_series(
    n: int, as_of: pd.Timestamp | pd.Series | datetime | None
) -> pd.Series:
    """``as_of`` as a UTC Series of ``n`` stamps: a Series by position, one stamp, or now."""
    if isinstance(as_of, pd.Series):
        if len(as_of) != n:
            raise ValueError(f"as_of has {len(as_of)} values for {n} leads")
        return pd.Series(pd.to_datetime(as_of.to_numpy(), utc=True), name="as_of")
    stamp = pd.Timestamp.now(tz="UTC") if as_of is None else pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return pd.Series([stamp] * n, name="as_of", dtype="datetime64[ns, UTC]")


def validate_inputs(
    leads: pd.DataFrame, activities: pd.DataFrame, as_of: pd.Series
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validated ``(leads, activities)``: the checks of :mod:`features.schema`, plus
    "a lead is not created after its as_of". Raises DataValidationError."""
    clean = validate_leads(leads)
    acts = validate_activities(activities, lead_ids=clean["lead_id"]).frame
    late = (clean["created_at"].to_numpy() > as_of.to_numpy())
    if late.any():
        raise DataValidationError(
            [
                ValidationIssue(
                    table="leads", field="created_at",
                    value=clean["created_at"].iloc[r].isoformat(),
                    expected=f"is after the lead's as_of {as_of.iloc[r].isoformat()}; a "
                    "lead cannot be scored before it exists",
                    row=int(r), lead_id=str(clean["lead_id"].iloc[r]),
                )
                for r in np.flatnonzero(late)[:100]
            ]
        )
    return clean, acts


def has_history(leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Series) -> np.ndarray:
    """Per lead: does it have at least one activity strictly before its as_of?"""
    if acts.empty:
        return np.zeros(len(leads), dtype=bool)
    cutoff = pd.Series(as_of.to_numpy(), index=leads["lead_id"].to_numpy())
    before = acts["occurred_at"].to_numpy() < cutoff.reindex(acts["lead_id"].to_numpy()).to_numpy()
    active = set(acts.loc[before, "lead_id"].tolist())
    return leads["lead_id"].isin(active).to_numpy()


def _subset(
    leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Series, rows: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """The leads at ``rows`` (re-indexed from 0), their activities and their as_of."""
    if len(rows) == len(leads):
        return leads, acts, as_of
    part = leads.iloc[rows].reset_index(drop=True)
    return (part, acts[acts["lead_id"].isin(part["lead_id"])],
            as_of.iloc[rows].reset_index(drop=True))


def _model_rows(
    bundle: ModelBundle, leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Series,
    top_reasons: int, thresholds: Thresholds | None = None,
) -> list[dict[str, Any]]:
    """Score leads with the model (as_of aligned by position). Raises on any failure."""
    columns = feature_columns_at(leads, acts, as_of)
    names = bundle.model.feature_names
    # The model's columns, in its order (LeadModel.prepare names any that are missing).
    X = {name: columns[name] for name in names if name in columns}
    records = None
    if top_reasons > 0:
        # Feature values per lead, for the reasons' sentences: plain Python values, with
        # missing categories as pd.NA, as a frame's rows would give them.
        records = [dict(zip(names, row, strict=True))
                   for row in zip(*(X[name].tolist() for name in names), strict=True)]
    return _rows_from_features(bundle, leads["lead_id"].tolist(), list(as_of), X, records,
                               top_reasons, thresholds=thresholds)


def _rows_from_features(
    bundle: ModelBundle, lead_ids: list[Any], stamps: list[pd.Timestamp],
    X: Mapping[str, Any], records: list[Mapping[str, Any]] | None, top_reasons: int,
    reasons_of: Callable[[Mapping[str, Any], Mapping[str, float], int], list[Reason]]
    = BUILTIN.top_reasons,
    thresholds: Thresholds | None = None,
) -> list[dict[str, Any]]:
    """Model rows from the leads' feature columns ``X`` (and, for reasons, their values
    per lead). ``reasons_of(row, impacts, top)`` gives the reasons a score shows (the
    built-in feature set's ``FeatureSet.top_reasons``, or a spec's); ``thresholds`` are the
    operator's fit/engagement thresholds, if any. Raises on any failure.

    Every row carries ``fit``, ``engagement`` and ``matrix_route``
    (:mod:`features.matrix`): the contributions are summed per group, so one pass over
    the trees gives the probability, the reasons and the two parts.
    """
    model = bundle.model
    names = model.feature_names
    probability, contrib, _ = model.predict_margin_and_contributions(X)
    probability = np.asarray(probability, dtype=float)
    if not np.all(np.isfinite(probability)):
        raise ValueError("the model returned a non-finite probability")
    score, grade, route = model.grade(probability)
    parts = model.matrix().with_thresholds(thresholds).answer(contrib)
    rows = []
    for i, (lead_id, stamp) in enumerate(zip(lead_ids, stamps, strict=True)):
        reasons: list[Reason] = []
        if records is not None:
            impacts = dict(zip(names, contrib[i].tolist(), strict=True))
            reasons = explain_blanks(reasons_of(records[i], impacts, top_reasons))
        rows.append({
            "lead_id": lead_id, "as_of": stamp, "probability": float(probability[i]),
            "score": int(score[i]), "grade": str(grade[i]), "route": str(route[i]),
            "scored_by": "model", "fallback_reason": None,
            "model_name": bundle.name, "model_version": bundle.version, "reasons": reasons,
            **parts[i],
        })
    return rows


def _rules_rows(
    engine: Engine, leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Series,
    top_reasons: int, reason: str,
) -> list[dict[str, Any]]:
    out = score_leads(engine.rules, leads, acts, as_of, top_reasons=top_reasons,
                      reasons=top_reasons > 0, parts=True)
    return rules_records(out, leads["lead_id"].tolist(), list(as_of), reason,
                         engine.matrix_thresholds, top_reasons)


def rules_records(out: pd.DataFrame, lead_ids: Sequence[Any], stamps: Sequence[Any],
                  reason: str, thresholds: Thresholds | None,
                  top_reasons: int) -> list[dict[str, Any]]:
    """The result rows of the rules' answers (``score_leads(..., parts=True)``): the same
    fields as the model's, ``fit`` and ``engagement`` from the fit and the engagement
    rules (:meth:`rules_fallback.engine.Evaluation.parts`)."""
    from features.matrix import DEFAULT_THRESHOLD, answers

    t = thresholds or Thresholds()
    parts = answers(out["fit_part"].to_numpy(), out["engagement_part"].to_numpy(),
                    out["fit_score"].to_numpy(), out["engagement_score"].to_numpy(),
                    DEFAULT_THRESHOLD if t.fit is None else t.fit,
                    DEFAULT_THRESHOLD if t.engagement is None else t.engagement)
    has_reasons = "reasons" in out.columns
    return [
        {
            "lead_id": lead_id, "as_of": stamp, "probability": float(p),
            "score": int(sc), "grade": str(g), "route": str(rt),
            "scored_by": "rules", "fallback_reason": reason,
            "model_name": None, "model_version": None,
            "reasons": list(rs) if has_reasons else [], **part,
        }
        for lead_id, stamp, p, sc, g, rt, rs, part in zip(
            lead_ids, stamps, out["probability"], out["score"], out["grade"],
            out["route"], out["reasons"] if has_reasons else [None] * len(out), parts,
            strict=True,
        )
    ]


def score_records(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    engine: Engine,
    *,
    as_of: pd.Timestamp | pd.Series | datetime | None = None,
    top_reasons: int = 3,
) -> list[dict[str, Any]]:
    """Score raw leads with their activities; one record per lead, in input order.

    Parameters
    ----------
    leads : DataFrame
        Raw leads as in the data contract (``lead_id``, ``created_at`` and optional
        fit fields). Validated here with :func:`features.schema.validate_leads`.
    activities : DataFrame
        Raw activities of those leads (``lead_id``, ``occurred_at``, ``type``, ...).
        May be empty.
    engine : Engine
        The model bundle (or None), the rules and the cold-start policy.
    as_of : Timestamp, Series or None
        Score as of this time: one timestamp for all, a Series aligned with ``leads``
        by position (one per lead), or None for now. Only activities strictly before
        it count.
    top_reasons : int, default 3
        Positive and negative reasons to keep per lead; 0 skips explanations (cheaper).

    Returns
    -------
    list of dict
        One dict per lead in input order, keyed by :data:`RESULT_COLUMNS`. ``as_of`` is
        a UTC Timestamp; ``reasons`` holds lists of :class:`features.reasons.Reason`.

    Raises
    ------
    DataValidationError
        When any lead or activity breaks the data contract; nothing is scored.
    """
    as_of_s = as_of_series(len(leads), as_of)
    leads, acts = validate_inputs(leads, activities, as_of_s)
    n = len(leads)

    rows: list[dict[str, Any] | None] = [None] * n
    fallback: dict[str, list[int]] = {"no_model": [], "cold_start": [], "model_error": []}
    if engine.model is None:
        fallback["no_model"] = list(range(n))
        model_positions = np.empty(0, dtype=int)
    else:
        if engine.cold_start_effective == "rules":
            cold = ~has_history(leads, acts, as_of_s)
        else:
            cold = np.zeros(n, dtype=bool)
        fallback["cold_start"] = np.flatnonzero(cold).tolist()
        model_positions = np.flatnonzero(~cold)

    if len(model_positions):
        m_leads, m_acts, m_as_of = _subset(leads, acts, as_of_s, model_positions)
        scored = _model_rows_or_fallback(
            engine.model, m_leads["lead_id"].tolist(),
            lambda rows: _model_rows(engine.model, *_subset(m_leads, m_acts, m_as_of, rows),
                                     top_reasons, engine.matrix_thresholds),
        )
        for pos, row in zip(model_positions, scored, strict=True):
            if row is None:
                fallback["model_error"].append(int(pos))
            else:
                rows[pos] = row

    return _with_rules(rows, fallback, lambda where: _subset(leads, acts, as_of_s, where),
                       engine, top_reasons)


def _with_rules(
    rows: list[dict[str, Any] | None], fallback: Mapping[str, list[int]],
    frames_of: Callable[[np.ndarray], tuple[pd.DataFrame, pd.DataFrame, pd.Series]],
    engine: Engine, top_reasons: int,
) -> list[dict[str, Any]]:
    """``rows`` with the rules' answers at each fallback reason's positions (their frames
    from ``frames_of(positions)``), and every row stamped with the rules version."""
    for reason, positions in fallback.items():
        if positions:
            where = np.asarray(sorted(positions))
            r_leads, r_acts, r_as_of = frames_of(where)
            for pos, row in zip(
                where, _rules_rows(engine, r_leads, r_acts, r_as_of, top_reasons, reason),
                strict=True,
            ):
                rows[pos] = row
    for row in rows:
        row["rules_version"] = engine.rules_version  # type: ignore[index]
    return rows  # type: ignore[return-value]


def score_frame(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    engine: Engine,
    *,
    as_of: pd.Timestamp | pd.Series | datetime | None = None,
    top_reasons: int = 3,
) -> pd.DataFrame:
    """:func:`score_records` as a frame: columns :data:`RESULT_COLUMNS`, then
    ``fit_score``, ``engagement_score`` and ``matrix_route``; one row per lead."""
    rows = score_records(leads, activities, engine, as_of=as_of, top_reasons=top_reasons)
    out = pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS))
    for column in ("fallback_reason", "model_name", "model_version"):
        # Keep None as None (pandas would infer a string column with NaN for missing).
        out[column] = pd.Series([r[column] for r in rows], dtype=object)
    # The fit x engagement split, flat, for the batch output (serving.batch).
    out["fit_score"] = pd.Series([(r.get("fit") or {}).get("score") for r in rows], dtype=object)
    out["engagement_score"] = pd.Series([(r.get("engagement") or {}).get("score") for r in rows],
                                        dtype=object)
    out["matrix_route"] = pd.Series([r.get("matrix_route") for r in rows], dtype=object)
    return out


def _model_rows_or_fallback(
    bundle: ModelBundle, lead_ids: list[Any],
    score_some: Callable[[np.ndarray], list[dict[str, Any]]],
) -> list[dict[str, Any] | None]:
    """``score_some(positions)`` for every lead at once; on failure, lead by lead, with
    None for each lead the model fails on (logged by lead_id only)."""
    try:
        return score_some(np.arange(len(lead_ids)))
    except Exception as exc:  # noqa: BLE001  (retried per lead below, then logged)
        if len(lead_ids) == 1:
            _log_model_error(lead_ids, exc, bundle)
            return [None]
        logger.warning(
            "model failed on a batch of %d leads (%s); retrying lead by lead",
            len(lead_ids), type(exc).__name__,
        )
    out: list[dict[str, Any] | None] = []
    for i, lead_id in enumerate(lead_ids):
        try:
            out.extend(score_some(np.array([i])))
        except Exception as exc:  # noqa: BLE001  (this lead falls back to the rules)
            _log_model_error([lead_id], exc, bundle)
            out.append(None)
    return out


def _log_model_error(lead_ids: list[Any], exc: BaseException, bundle: ModelBundle) -> None:
    # Only the exception type and the lead id: messages may quote field values (PII).
    logger.error(
        "model %s v%s failed on lead_id=%s (%s); answered by the rules (model_error)",
        bundle.name, bundle.version, ",".join(map(str, lead_ids)), type(exc).__name__,
    )


# --------------------------------------------------------------------------- explain


def explain_one(
    leads: pd.DataFrame,
    activities: pd.DataFrame,
    engine: Engine,
    *,
    as_of: pd.Timestamp | datetime | None = None,
) -> dict[str, Any]:
    """Every contribution for one lead, with the base value, grouped and ungrouped.

    Returns a dict with ``result`` (the :func:`score_frame` row, with every reason),
    ``base_value``, ``raw_margin``, ``contributions`` (list of ``(feature, value,
    contribution)`` sorted by absolute size) and ``reasons`` (every business field,
    by impact). When the rules answer, contributions are empty and the base and margin
    are None.
    """
    if len(leads) != 1:
        raise ValueError(f"explain_one takes exactly one lead; got {len(leads)}")
    # A large top_reasons keeps every reason; the result row then holds them all.
    row = score_records(leads, activities, engine, as_of=as_of, top_reasons=10_000)[0]
    reasons = sorted(row["reasons"], key=lambda r: -r.impact)
    if row["scored_by"] != "model":
        return {"result": row, "base_value": None, "raw_margin": None,
                "contributions": [], "reasons": reasons}

    model = engine.model.model
    stamp = pd.Series([pd.Timestamp(row["as_of"])])
    clean, acts = validate_inputs(leads, activities, stamp)
    X = features_at(clean, acts, stamp)[model.feature_names]
    contrib, base = model.contributions(X)
    values = X.iloc[0].tolist()
    impacts = dict(zip(model.feature_names, contrib[0].tolist(), strict=True))
    contributions = sorted(
        (
            {"feature": name, "value": _plain(v), "contribution": float(c)}
            for name, v, c in zip(model.feature_names, values, contrib[0], strict=True)
        ),
        key=lambda d: -abs(d["contribution"]),
    )
    grouped = explain_blanks(sorted(BUILTIN.reasons_for(X.iloc[0].to_dict(), impacts),
                                    key=lambda r: -r.impact))
    return {
        "result": row,
        "base_value": float(base[0]),
        "raw_margin": float(base[0] + contrib[0].sum()),
        "contributions": contributions,
        "reasons": grouped,
    }


def _plain(value: Any) -> str | float | int | None:
    """A JSON-friendly feature value (NaN and missing become None)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if pd.isna(value):
        return None
    return str(value)


def plain_records(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Scoring records with plain values (reasons as dicts, as_of as a datetime), as the
    response model takes them."""
    return [
        {**row, "reasons": reasons_as_dicts(row["reasons"]),
         "as_of": pd.Timestamp(row["as_of"]).to_pydatetime()}
        for row in rows
    ]


def reasons_as_dicts(reasons: Iterable[Reason]) -> list[Mapping[str, Any]]:
    """Reasons as plain dicts (for JSON or a frame)."""
    return [r.to_dict() for r in reasons]
