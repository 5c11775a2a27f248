"""What would move a lead's score: the next action, and decay when nothing new happens.

Both are rescoring, not explaining: the lead's features are computed again by the same
feature functions (:func:`features.live.live_features` online, the vectorised
:func:`features.online.features_at` in batch) under a changed history or a later
``as_of``, and the model predicts again. They cost predictions, never TreeSHAP, and only
when asked: ``POST /score`` with ``"actions": N`` or ``"decay": true``
(``benchmarks/serving.py`` measures both).

**Actions.** For each actionable kind (the built-in demo request, webinar attended and
pricing visit; a spec's kinds marked ``actionable: true``), one event of that kind is
added *now*, one second before the lead's as_of (the features count only what happened
strictly before it), and the lead is rescored. The top N by new probability come back
with the new probability, score and grade and a plain sentence. This is what the model
learned from similar leads, not a causal promise: a lead who is asked to book a demo is
not a lead who chose to.

**Decay.** The lead is rescored at as_of + 1, 2, ... :data:`DECAY_HORIZON` days with no
event after its as_of (one model call for every lead and day). The answer gives the
probability and grade at :data:`DECAY_DAYS` (+7, +14, +30) and the first of those days
whose grade is lower than today's (the first day searched in order, so the first drop,
even if the grade recovers later as a lead ages into another part of the model).
Each lead decays by what scored it: a lead the rules answered (a cold start, a model
failure, no model) is rescored by the same rules at the same later days
(:func:`decay_by_rules`), whose inactivity rules lower a quiet lead's score. The API
(:func:`extend_rows`) and both batch jobs (:func:`batch_decay`) share these functions and
:func:`decay_answers`: only how the features of the later days are computed differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from features.grading import GRADES
from features.live import LiveLead, live_features
from serving.contract import CAUSAL_NOTE

__all__ = ["ActionKind", "DECAY_COLUMNS", "DECAY_DAYS", "DECAY_HORIZON", "ACTION_OFFSET",
           "actionable_kinds", "actions_for", "batch_decay", "decay_answers", "decay_by_rules",
           "decay_for", "extend_rows", "model_at_times", "model_predict", "with_decay_columns", "CAUSAL_NOTE"]

DECAY_DAYS: tuple[int, ...] = (7, 14, 30)
"""The days after as_of whose probability and grade ``decay`` reports."""

DECAY_HORIZON = 30
"""Days searched, one by one, for the first lower grade."""

ACTION_OFFSET = pd.Timedelta(seconds=1)
"""How long before the lead's as_of the suggested event is placed ("now")."""

_DAY_NS = 86_400 * 10**9
_RANK = {g: i for i, g in enumerate(GRADES)}



@dataclass(frozen=True)
class ActionKind:
    """An activity kind a marketer can bring about.

    ``name`` is the kind (the feature set's), ``type`` the activity type to send to
    ``POST /score`` for it (a spec's first CRM type of the kind), ``label`` its
    past-tense phrase ("requested a demo").
    """

    name: str
    type: str
    label: str


def actionable_kinds(feature_set: Any, spec: Any = None) -> list[ActionKind]:
    """The feature set's actionable kinds; with a spec, each with the CRM's own type."""
    kinds = {}
    activities = getattr(getattr(spec, "tables", None), "activities", None)
    if activities is not None:
        kinds = {name: k.types[0] for name, k in activities.kinds.items()}
    return [ActionKind(name, kinds.get(name, name), feature_set.kind_labels.get(name, name))
            for name in feature_set.actionable]


# --------------------------------------------------------------------------- rescoring


def _predict(model: Any, feature_set: Any, lives: Sequence[LiveLead]
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(probability, score, grade)`` of live leads, in one model call."""
    rows = [live_features(live, feature_set) for live in lives]
    X = {name: [row[name] for row in rows] for name in model.feature_names}
    probability = np.asarray(model.predict_proba(X), dtype=float)
    score, grade, _ = model.grade(probability)
    return probability, np.asarray(score), np.asarray(grade)


def _quiet(live: LiveLead) -> LiveLead:
    """The lead with nothing after its as_of (events sent for later times are dropped)."""
    keep = [j for j, t in enumerate(live.times) if t < live.as_of_ns]
    if len(keep) == len(live.times):
        return live
    return replace(live, times=[live.times[j] for j in keep],
                   types=[live.types[j] for j in keep], urls=[live.urls[j] for j in keep],
                   campaigns=[live.campaigns[j] for j in keep])


def _with_event(live: LiveLead, kind: str) -> LiveLead:
    return replace(live, times=[*live.times, live.as_of_ns - ACTION_OFFSET.value],
                   types=[*live.types, kind], urls=[*live.urls, None],
                   campaigns=[*live.campaigns, None])


def actions_for(model: Any, feature_set: Any, lives: Sequence[LiveLead],
                current: Sequence[Mapping[str, Any]], kinds: Sequence[ActionKind],
                top: int) -> list[list[dict[str, Any]]]:
    """Per lead, the ``top`` actions by new probability (see the module docstring).

    ``current`` holds the leads' answers (``score`` and ``grade``), for the sentences.
    """
    if not kinds or top <= 0 or not lives:
        return [[] for _ in lives]
    tried = [_with_event(live, k.name) for live in lives for k in kinds]
    probability, score, grade = _predict(model, feature_set, tried)
    k = len(kinds)
    out = []
    for i, now in enumerate(current):
        block = range(i * k, (i + 1) * k)
        order = sorted(block, key=lambda j: -probability[j])[:top]
        out.append([_action(kinds[j - i * k], float(probability[j]), int(score[j]),
                            str(grade[j]), int(now["score"]), str(now["grade"]))
                    for j in order])
    return out


def _action(kind: ActionKind, probability: float, score: int, grade: str, was_score: int,
            was_grade: str) -> dict[str, Any]:
    if score > was_score:
        change = f"rise from {was_score} to {score}"
    elif score < was_score:
        change = f"fall from {was_score} to {score}"
    else:
        change = f"stay at {score}"
    grades = f"grade {was_grade} → {grade}" if grade != was_grade else f"grade {grade}"
    return {"kind": kind.name, "type": kind.type, "label": kind.label,
            "probability": probability, "score": score, "grade": grade,
            "score_change": score - was_score,
            "sentence": f"If this lead {kind.label} now, its score would {change} ({grades})."}


def decay_for(predict: Callable[[Sequence[LiveLead]], tuple[np.ndarray, np.ndarray, np.ndarray]],
              lives: Sequence[LiveLead], current: Sequence[Mapping[str, Any]]
              ) -> list[dict[str, Any]]:
    """Per lead, ``decay`` from rescoring each day up to :data:`DECAY_HORIZON`, in one call
    of ``predict`` (``(probability, score, grade)`` of live leads: :func:`model_predict`)."""
    if not lives:
        return []
    quiet = [_quiet(live) for live in lives]
    days = np.arange(1, DECAY_HORIZON + 1)
    later = [replace(live, as_of_ns=live.as_of_ns + int(d) * _DAY_NS)
             for d in days for live in quiet]
    probability, score, grade = predict(later)
    n = len(lives)
    return decay_answers(probability.reshape(len(days), n), score.reshape(len(days), n),
                         grade.reshape(len(days), n), current)


def model_predict(model: Any, feature_set: Any
                  ) -> Callable[[Sequence[LiveLead]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`decay_for`'s ``predict`` for the model: live features, one model call."""
    return lambda lives: _predict(model, feature_set, lives)


RulesScore = Callable[[pd.DataFrame, pd.DataFrame, pd.Series], pd.DataFrame]
"""``score(leads, activities, as_of)``: a rules engine's answer (``probability``,
``score``, ``grade`` per row of ``leads``, each row at its own ``as_of``), e.g.
``rules_fallback.score_leads`` bound to a rule set."""


def quiet_activities(leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Series) -> pd.DataFrame:
    """The activities strictly before their lead's ``as_of`` (aligned with ``leads``): the
    history a lead keeps if nothing new happens."""
    if acts is None or not len(acts):
        return acts
    cutoff = pd.Series(as_of.to_numpy(), index=leads["lead_id"].to_numpy())
    keep = acts["occurred_at"].to_numpy() < cutoff.reindex(acts["lead_id"].to_numpy()).to_numpy()
    return acts if keep.all() else acts[keep]


def decay_by_rules(score: RulesScore, leads: pd.DataFrame, acts: pd.DataFrame,
                   as_of: pd.Series, current: Sequence[Mapping[str, Any]]
                   ) -> list[dict[str, Any]]:
    """``decay`` of leads the rules answered, by the same rules at as_of + 1 ...
    :data:`DECAY_HORIZON` days: every lead once per day, in one call (the rules score a
    lead on several rows, each at its own as_of), with the history it has now.

    A cold start's score moves too: the inactivity rules count from its creation.
    """
    n = len(leads)
    if not n:
        return []
    as_of = as_of.reset_index(drop=True)
    past = quiet_activities(leads, acts, as_of)
    days = range(1, DECAY_HORIZON + 1)
    out = score(pd.concat([leads] * len(days), ignore_index=True), past,
                pd.concat([as_of + pd.Timedelta(days=d) for d in days], ignore_index=True))
    shape = (len(days), n)
    return decay_answers(out["probability"].to_numpy(dtype=float).reshape(shape),
                         out["score"].to_numpy().reshape(shape),
                         out["grade"].astype(str).to_numpy().reshape(shape), current)


def decay_answers(probability: np.ndarray, score: np.ndarray, grade: np.ndarray,
                  current: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``decay`` per lead from its rescored days (arrays of (days 1..horizon, leads)).

    Shared by the API and the batch job: only how the days were rescored differs.
    """
    out = []
    for i, now in enumerate(current):
        as_of = pd.Timestamp(now["as_of"])
        as_of = as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of
        points = [{"days": d, "as_of": (as_of + pd.Timedelta(days=d)).to_pydatetime(),
                   "probability": float(probability[d - 1, i]), "score": int(score[d - 1, i]),
                   "grade": str(grade[d - 1, i])} for d in DECAY_DAYS]
        worse = [d for d in range(1, len(grade) + 1)
                 if _RANK[str(grade[d - 1, i])] > _RANK[str(now["grade"])]]
        drop = None
        if worse:
            d = worse[0]
            when = as_of + pd.Timedelta(days=d)
            drop = {"days": d, "date": when.date().isoformat(), "grade": str(grade[d - 1, i])}
            sentence = (f"Without new activity this lead drops to grade {drop['grade']} on "
                        f"{_date(when, as_of)}.")
        else:
            sentence = (f"Without new activity this lead keeps grade {now['grade']} for the "
                        f"next {len(grade)} days.")
        out.append({"points": points, "grade_drop": drop, "sentence": sentence})
    return out


def _date(when: pd.Timestamp, as_of: pd.Timestamp) -> str:
    text = f"{when.day} {when.strftime('%B')}"
    return text if when.year == as_of.year else f"{text} {when.year}"


# --------------------------------------------------------------------------- one call


def extend_rows(rows: list[dict[str, Any]], lives: Sequence[LiveLead] | None, engine: Any,
                feature_set: Any, kinds: Sequence[ActionKind], *, actions: int,
                decay: bool,
                rules_decay: Callable[[list[int]], list[dict[str, Any]]] | None = None
                ) -> None:
    """Add ``actions`` and ``decay`` to a call's result rows, in place, when asked.

    Each lead's decay comes from what scored it: the model's leads by the model
    (:func:`decay_for`), the rules' leads (a cold start, a model failure, no model) by
    ``rules_decay(positions)``, the caller's binding of :func:`decay_by_rules` to the
    rules that answered and the leads' frames. Actions need the model: without one they
    stay null, as does the rules' leads' decay without ``rules_decay``.
    """
    if not actions and not decay:
        return
    bundle = engine.model
    if actions and bundle is not None and lives is not None:
        for row, found in zip(rows, actions_for(bundle.model, feature_set, lives, rows, kinds,
                                                actions), strict=True):
            row["actions"] = found
    if not decay:
        return
    by_model = [i for i, row in enumerate(rows) if row["scored_by"] == "model"]
    if by_model and bundle is not None and lives is not None:
        answers = decay_for(model_predict(bundle.model, feature_set),
                            [lives[i] for i in by_model], [rows[i] for i in by_model])
        for i, answer in zip(by_model, answers, strict=True):
            rows[i]["decay"] = answer
    by_rules = [i for i, row in enumerate(rows) if row["scored_by"] == "rules"]
    if by_rules and rules_decay is not None:
        for i, answer in zip(by_rules, rules_decay(by_rules), strict=True):
            rows[i]["decay"] = answer


FramePredict = Callable[[pd.DataFrame, pd.DataFrame, pd.Timestamp],
                        tuple[np.ndarray, np.ndarray, np.ndarray]]
"""``predict(leads, activities, as_of)``: ``(probability, score, grade)`` of every lead at
one as_of, by the vectorised feature path (the batch jobs')."""


def model_at_times(model: Any, feature_set: Any) -> FramePredict:
    """:func:`batch_decay`'s ``model``: the vectorised features of ``feature_set`` at one
    as_of (:func:`features.online.features_at`), one model call."""
    from features.online import features_at

    def predict(leads: pd.DataFrame, acts: pd.DataFrame, when: pd.Timestamp
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X = features_at(leads, acts, when, feature_set=feature_set)[model.feature_names]
        probability = np.asarray(model.predict_proba(X), dtype=float)
        score, grade, _ = model.grade(probability)
        return probability, np.asarray(score), np.asarray(grade)

    return predict


def decay_in_batch(predict_at: Callable[[int], tuple[np.ndarray, np.ndarray, np.ndarray]],
                   current: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """:func:`decay_answers` for a batch: ``predict_at(days)`` rescores every lead of the
    batch at as_of + days (the vectorised feature path), once per day."""
    results = [predict_at(d) for d in range(1, DECAY_HORIZON + 1)]
    return decay_answers(*(np.stack([r[j] for r in results]) for j in range(3)), current)


def model_decay_in_batch(predict: FramePredict, leads: pd.DataFrame, acts: pd.DataFrame,
                         as_of: pd.Timestamp, current: Sequence[Mapping[str, Any]]
                         ) -> list[dict[str, Any]]:
    """``decay`` of a batch of model-scored leads, all at one ``as_of``: the leads
    rescored once per day with the activities they have now (nothing new)."""
    if not len(leads):
        return []
    past = acts[acts["occurred_at"] < as_of] if acts is not None and len(acts) else acts
    return decay_in_batch(lambda d: predict(leads, past, as_of + pd.Timedelta(days=d)), current)


def batch_decay(leads: pd.DataFrame, acts: pd.DataFrame, as_of: pd.Timestamp,
                answered: pd.DataFrame, *, model: FramePredict | None,
                rules: RulesScore | None) -> list[dict[str, Any] | None]:
    """``decay`` of every lead of a batch (rows of ``answered``, aligned with ``leads``:
    ``lead_id``, ``as_of``, ``grade``, ``scored_by``), each by what scored it; None
    where nothing can (no model or no rules given)."""
    if (leads["lead_id"].to_numpy() != answered["lead_id"].to_numpy()).any():
        raise AssertionError("decay rows are not aligned with the batch's leads")
    out: list[dict[str, Any] | None] = [None] * len(leads)
    who = answered["scored_by"].to_numpy()
    for engine, scorer in (("model", model), ("rules", rules)):
        rows = np.flatnonzero(who == engine)
        if scorer is None or not len(rows):
            continue
        part = leads.iloc[rows].reset_index(drop=True)
        part_acts = (acts[acts["lead_id"].isin(part["lead_id"])]
                     if acts is not None and len(acts) else acts)
        current = answered.iloc[rows][["as_of", "grade"]].to_dict("records")
        if engine == "model":
            answers = model_decay_in_batch(scorer, part, part_acts, as_of, current)
        else:
            answers = decay_by_rules(scorer, part, part_acts,
                                     pd.Series([as_of] * len(part)), current)
        for i, answer in zip(rows, answers, strict=True):
            out[i] = answer
    return out


DECAY_COLUMNS: tuple[str, ...] = (
    "decay_7d_probability", "decay_7d_grade", "decay_14d_probability", "decay_14d_grade",
    "decay_30d_probability", "decay_30d_grade", "grade_drop_date", "grade_drop_grade",
)
"""What ``rescore --decay`` adds to each row: the API's ``decay``, flat."""


def with_decay_columns(table: Any, decayed: Sequence[Mapping[str, Any] | None]) -> Any:
    """``table`` (Arrow) with :data:`DECAY_COLUMNS` from each row's ``decay`` (None: nulls)."""
    import pyarrow as pa

    columns: dict[str, list[Any]] = {c: [] for c in DECAY_COLUMNS}
    for d in decayed:
        points = {p["days"]: p for p in d["points"]} if d is not None else {}
        for days in DECAY_DAYS:
            point = points.get(days)
            columns[f"decay_{days}d_probability"].append(
                None if point is None else point["probability"])
            columns[f"decay_{days}d_grade"].append(None if point is None else point["grade"])
        drop = d["grade_drop"] if d is not None else None
        columns["grade_drop_date"].append(
            None if drop is None else pd.Timestamp(drop["date"]).date())
        columns["grade_drop_grade"].append(None if drop is None else drop["grade"])
    for name in DECAY_COLUMNS:
        kind = (pa.float64() if name.endswith("probability")
                else pa.date32() if name.endswith("date") else pa.string())
        table = table.append_column(pa.field(name, kind), pa.array(columns[name], type=kind))
    return table
