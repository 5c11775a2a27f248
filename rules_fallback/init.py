"""A starter rules file for a dataset spec, with points learned from its history.

:func:`generate_rules` writes the rules file that ``leadscore rules init`` saves. With
labelled examples (a spec with an outcome), every rule's points come from how much
more (or less) often the leads it matches converted than all leads did:

- each candidate rule (a categorical value, a quantile bin of a number, "did this kind
  at least once in the last ``window_days`` days") matches ``n`` examples of which
  ``k`` converted; the base rate over all examples is ``p0``;
- its rate is **shrunk toward the base rate** by ``m`` pseudo-examples at ``p0``
  (``m`` = ``prior_strength``, default 20): ``p = (k + m * p0) / (n + m)``. A value
  seen twice moves ``p`` by at most ``2 / 22`` of the way, so it gets points near 0;
  a value seen 1,000 times keeps its own rate;
- ``points = 10 * (logit(p) - logit(p0))``, the shrunk **weight of evidence** in
  tenths of a nat. Naive Bayes adds exactly these log odds ratios, which is what the
  engine does with points and what the logistic map from points to a probability
  assumes. (The log rate ratio ``log(p / p0)`` ranks values the same way within a
  field, but saturates for positive evidence when the base rate is high: at X
  Education's 38.5% no value could earn more than ``log(1 / 0.385) = 0.95``.)
  Rules under half a point are left out; values left out score 0, as missing ones do.

Which examples, so that nothing after the outcome leaks into the points: for a spec
with time they are the spec's point-in-time training snapshots (the caller passes
``lead_id``, ``as_of``, ``label``: "converted within the horizon after ``as_of``",
among leads still open at ``as_of``), and every count is what the engine itself
computes at that ``as_of`` (activities strictly before it, the same window), so the
points are learned from exactly what scoring will see. A lead open at several snapshots
counts once per snapshot, as it does in the model's training set. Fit fields are taken as
known at creation, as the model takes them (columns the CRM fills in after contact
belong under ``leaky`` in the spec). For a spec without time (one flat table) each
lead is one example with its label and there are no activities.

Without labels the kinds get neutral defaults from their spec weight (``5 * weight``
points per occurrence in 30 days, half-life 14 days, capped at three occurrences) and
the default logistic map.

The logistic map is then refitted on the examples (:func:`~rules_fallback.fit_mapping`)
and the grade thresholds are set at the 90th, 75th and 50th percentiles of the
examples' scores (10% A, 15% B, 25% C, 50% D, as training sets them for the model).
"""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.spec import safe_name
from rules_fallback.calibration import fit_mapping
from rules_fallback.engine import evaluate
from rules_fallback.spec_rules import (
    LEAD_AGE,
    SpecRuleSet,
    SpecVocabulary,
    evaluate_spec,
    parse_spec_rules,
)

__all__ = [
    "DEFAULT_PRIOR_STRENGTH",
    "POINTS_PER_NAT",
    "GeneratedRules",
    "generate_rules",
    "lift_table",
    "shrunk_points",
]

DEFAULT_PRIOR_STRENGTH = 20.0
"""Pseudo-examples at the base rate that every rule's rate is shrunk toward."""

POINTS_PER_NAT = 10.0
"""Points per nat of weight of evidence (a log odds ratio of 0.1 is one point)."""

_MIN_POINTS = 0.5
_NEUTRAL_GRADING = {"a": 45.0, "b": 25.0, "c": 8.0}


def _logit(p: Any) -> Any:
    return np.log(p) - np.log1p(-np.asarray(p, dtype=float))


def shrunk_points(conversions: Any, n: Any, base_rate: float,
                  prior_strength: float = DEFAULT_PRIOR_STRENGTH) -> np.ndarray:
    """Points for ``conversions`` out of ``n``: ``10 * (logit(p) - logit(p0))`` with ``p`` shrunk.

    ``p = (conversions + m * p0) / (n + m)`` with ``m = prior_strength``.
    """
    if not 0 < base_rate < 1:
        raise ValueError(f"The 'base_rate' parameter of shrunk_points must be in (0, 1). "
                         f"Got {base_rate!r} instead.")
    if not prior_strength > 0:
        raise ValueError(f"The 'prior_strength' parameter of shrunk_points must be > 0. "
                         f"Got {prior_strength!r} instead.")
    k = np.asarray(conversions, dtype=float)
    total = np.asarray(n, dtype=float)
    rate = (k + prior_strength * base_rate) / (total + prior_strength)
    return POINTS_PER_NAT * (_logit(rate) - _logit(base_rate))


def lift_table(values: pd.Series, labels: Any, *, base_rate: float | None = None,
               prior_strength: float = DEFAULT_PRIOR_STRENGTH) -> pd.DataFrame:
    """Per distinct value (case and surrounding spaces ignored, as rules match): its counts and points.

    Columns: ``value`` (the most frequent spelling), ``key`` (normalised), ``n``,
    ``conversions``, ``rate``, ``shrunk_rate``, ``points``; most frequent first. Missing
    values are left out (no rule can match them). ``base_rate`` defaults to the mean of
    ``labels`` over every row, missing values included.
    """
    y = np.asarray(labels, dtype=float)
    p0 = float(y.mean()) if base_rate is None else base_rate
    text = pd.Series(values).reset_index(drop=True).astype("string")
    key = text.str.strip().str.lower()
    frame = pd.DataFrame({"value": text, "key": key, "y": y}).dropna(subset=["key"])
    if frame.empty:
        return pd.DataFrame(columns=["value", "key", "n", "conversions", "rate",
                                     "shrunk_rate", "points"])
    shown = frame.groupby("key")["value"].agg(lambda s: s.value_counts().index[0])
    grouped = frame.groupby("key")["y"].agg(["size", "sum"])
    out = pd.DataFrame({
        "value": shown,
        "n": grouped["size"].astype(int),
        "conversions": grouped["sum"].astype(int),
    })
    out["rate"] = out["conversions"] / out["n"]
    out["shrunk_rate"] = (out["conversions"] + prior_strength * p0) / (out["n"] + prior_strength)
    out["points"] = shrunk_points(out["conversions"], out["n"], p0, prior_strength)
    out = out.reset_index().sort_values(["n", "key"], ascending=[False, True], kind="stable")
    return out[["value", "key", "n", "conversions", "rate", "shrunk_rate", "points"]].reset_index(
        drop=True
    )


# ---------------------------------------------------------------------------- output


@dataclass
class _Candidate:
    section: str  # fit_rules, engagement_rules, negative_rules
    body: dict[str, Any]
    comment: list[str]
    group: str = ""


@dataclass
class GeneratedRules:
    """What :func:`generate_rules` made: the checked rules, the file's text and its figures.

    ``summary`` holds ``n_examples``, ``base_rate``, ``roc_auc`` (of the rules on the
    examples they were learned from; None without labels) and the rule counts.
    """

    rules: SpecRuleSet
    text: str
    summary: dict[str, Any] = field(default_factory=dict)


def _q(value: Any) -> str:
    """A YAML scalar: JSON's quoting is valid YAML and keeps 'No' a string."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float | np.integer | np.floating):
        value = float(value)
        return str(int(value)) if value.is_integer() else repr(round(value, 6))
    return json.dumps(str(value), ensure_ascii=False)


def _flow(mapping: dict[str, Any]) -> str:
    parts = []
    for k, v in mapping.items():
        if isinstance(v, dict):
            parts.append(f"{k}: {_flow(v)}")
        elif isinstance(v, list):
            parts.append(f"{k}: [{', '.join(_q(x) for x in v)}]")
        else:
            parts.append(f"{k}: {_q(v)}")
    return "{" + ", ".join(parts) + "}"


def _render_rule(c: _Candidate) -> list[str]:
    lines = [f"  # {line}" for line in c.comment]
    first = True
    for key, value in c.body.items():
        prefix = "  - " if first else "    "
        first = False
        if isinstance(value, dict):
            lines.append(f"{prefix}{key}: {_flow(value)}")
        elif isinstance(value, list):
            lines.append(f"{prefix}{key}: [{', '.join(_q(x) for x in value)}]")
        else:
            lines.append(f"{prefix}{key}: {_q(value)}")
    return lines


def _template_text(text: str) -> str:
    """Literal text inside a sentence template (braces doubled)."""
    return text.replace("{", "{{").replace("}", "}}")


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.4g}"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _unique_name(base: str, taken: set[str]) -> str:
    base = base[:60].rstrip("_")
    name, i = base, 2
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    taken.add(name)
    return name


# ------------------------------------------------------------------------ candidates


def _evidence(rows: np.ndarray, y: np.ndarray, p0: float, m: float) -> tuple[int, int, float]:
    n = int(rows.sum())
    k = int(y[rows].sum())
    return n, k, float(shrunk_points(k, n, p0, m))


def _stat_line(what: str, n: int, k: int, p0: float, points: float, m: float) -> list[str]:
    rate = k / n if n else float("nan")
    shrunk = (k + m * p0) / (n + m)
    return [what, f"  n={n:,}, {k:,} converted ({_pct(rate)} vs {_pct(p0)} overall, lift "
                  f"{rate / p0:.2f}x); shrunk {_pct(shrunk)}, weight of evidence "
                  f"{points / POINTS_PER_NAT:+.2f}"]


def _place(points: float, body: dict[str, Any]) -> str:
    return "fit_rules" if points > 0 else "negative_rules"


def _categorical_candidates(name: str, vocab: SpecVocabulary, values: pd.Series, y: np.ndarray,
                            p0: float, m: float, max_values: int, taken: set[str]) -> list[_Candidate]:
    label = vocab.label(name)
    column = vocab.original_names.get(name, name)
    table = lift_table(values, y, base_rate=p0, prior_strength=m)
    out = []
    for row in table.head(max_values).itertuples():
        points = round(float(row.points), 1)
        if abs(points) < _MIN_POINTS:
            continue
        body = {
            "name": _unique_name(f"{name}_{safe_name(str(row.value))}", taken),
            "field": name,
            "label": label,
            "when": {"field": name, "equals": str(row.value)},
            "points": points,
            "sentence": f"{_template_text(label)}: {{value}}",
        }
        comment = _stat_line(f"{label} (CRM column {column!r}) = {row.value!r}", int(row.n),
                              int(row.conversions), p0, points, m)
        out.append(_Candidate(_place(points, body), body, comment, name))
    left = len(table) - min(len(table), max_values)
    if left:
        out.append(_Candidate("", {}, [f"{label}: {left} rarer value(s) not listed (0 points)"], name))
    return out


def _bin_edges(values: np.ndarray, bins: int) -> list[float]:
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return []
    qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="higher")
    edges = sorted({float(q) for q in qs if q > present.min()})
    return edges


def _numeric_candidates(name: str, vocab: SpecVocabulary, values: np.ndarray, y: np.ndarray,
                        p0: float, m: float, bins: int, taken: set[str]) -> list[_Candidate]:
    label = vocab.label(name)
    column = vocab.original_names.get(name, "days since created_at" if name == LEAD_AGE else name)
    unit = " days" if name == LEAD_AGE else ""
    edges = _bin_edges(values, bins)
    if not edges:
        return []
    bounds = [(None, edges[0]), *zip(edges[:-1], edges[1:], strict=True), (edges[-1], None)]
    out = []
    for lo, hi in bounds:
        rows = ~np.isnan(values)
        if lo is not None:
            rows &= values >= lo
        if hi is not None:
            rows &= values < hi
        n, k, points = _evidence(rows, y, p0, m)
        points = round(points, 1)
        if n == 0 or abs(points) < _MIN_POINTS:
            continue
        if lo is None:
            span, tag = f"below {_number(hi)}", f"lt_{hi:g}"
        elif hi is None:
            span, tag = f"{_number(lo)} or more", f"ge_{lo:g}"
        else:
            span, tag = f"{_number(lo)} to under {_number(hi)}", f"{lo:g}_to_{hi:g}"
        rng = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        body = {
            "name": _unique_name(f"{name}_{safe_name(tag)}", taken),
            "field": name,
            "label": label,
            "when": {"field": name, "range": rng},
            "points": points,
            "sentence": f"{_template_text(label)}: {{value}}{unit} ({span})",
        }
        comment = _stat_line(f"{label} ({column}) {span}", n, k, p0, points, m)
        out.append(_Candidate(_place(points, body), body, comment, name))
    return out


def _probe(vocab: SpecVocabulary, window_days: float, inactive_days: float) -> SpecRuleSet:
    """Rules that only count: what each kind's rule and the inactivity rule would see."""
    engagement = [
        {"name": f"probe_{k}", "field": f"kind_{k}", "label": k, "activity": k, "points": 1,
         "cap": 1e12, "window_days": window_days, "sentence": "{count}"}
        for k in vocab.kinds
    ]
    negative = [{"name": "probe_inactive", "field": "inactivity", "label": "Inactivity",
                 "inactive_days": inactive_days, "points": -1, "sentence": "{days}",
                 "ignore_activities": []}]
    return SpecRuleSet.model_validate({
        "version": "probe", "engagement_rules": engagement, "negative_rules": negative,
        "grading": _NEUTRAL_GRADING,
    })


def _kind_title(kind: str) -> str:
    # The model's business field for a kind is "kind_<name>" titled like this.
    return kind.replace("_", " ").capitalize()


def _kind_candidates(vocab: SpecVocabulary, counts: dict[str, np.ndarray], since: np.ndarray,
                     y: np.ndarray, p0: float, m: float, window_days: float,
                     inactive_days: float, taken: set[str]) -> list[_Candidate]:
    out = []
    negative_kinds = []
    for kind, (label, _weight) in vocab.kinds.items():
        count = counts[kind]
        verb = _template_text(label[:1].upper() + label[1:])
        title = _kind_title(kind)
        sentence = f"{verb} {{times}} in the last {{window_days}} days"
        did = count >= 1
        n, k, points = _evidence(did, y, p0, m)
        points = round(points, 1)
        what = f"{kind} ({label}) at least once in the {window_days:g} days before as_of"
        if n and abs(points) >= _MIN_POINTS:
            body = {"name": _unique_name(f"{kind}_any", taken), "field": f"kind_{kind}",
                    "label": title, "activity": kind, "points": points, "cap": abs(points),
                    "window_days": window_days, "sentence": sentence}
            out.append(_Candidate("engagement_rules" if points > 0 else "negative_rules", body,
                                  _stat_line(what, n, k, p0, points, m), f"kind_{kind}"))
            if points < 0:
                negative_kinds.append(kind)
        if not (n and points > 0):
            continue
        # Repeat use: at the median and the 80th percentile count among the active rows,
        # each step a ramp of points per occurrence up to its threshold.
        reached, last = points, 1.0
        for q, suffix in ((0.5, "repeat"), (0.8, "frequent")):
            t = float(np.quantile(count[did], q, method="higher"))
            if t < 2 or t <= last:
                continue
            n2, k2, points2 = _evidence(count >= t, y, p0, m)
            extra = round(points2 - reached, 1)
            per = round(extra / t, 3)
            if extra < _MIN_POINTS or per <= 0:
                continue
            body = {"name": _unique_name(f"{kind}_{suffix}", taken), "field": f"kind_{kind}",
                    "label": title, "activity": kind, "points": per, "cap": extra,
                    "window_days": window_days, "sentence": sentence}
            comment = [
                *_stat_line(f"{kind} {t:g} times or more in {window_days:g} days", n2, k2, p0,
                            points2, m),
                f"  {points2:.1f} points at {t:g} times, {reached:.1f} of them from the rules "
                f"above: the other {extra:g} accrue at {per:g} per occurrence up to {t:g}",
            ]
            out.append(_Candidate("engagement_rules", body, comment, f"kind_{kind}"))
            reached, last = reached + extra, t
    quiet = since >= inactive_days
    n, k, points = _evidence(quiet, y, p0, m)
    points = round(points, 1)
    if n and points <= -_MIN_POINTS:
        body = {"name": _unique_name("inactive", taken), "field": "inactivity",
                "label": "Inactivity", "inactive_days": inactive_days, "points": points,
                "sentence": "No activity for {days} days",
                "ignore_activities": negative_kinds}
        what = f"no activity (nor creation) in the {inactive_days:g} days before as_of"
        out.append(_Candidate("negative_rules", body, _stat_line(what, n, k, p0, points, m),
                              "inactivity"))
    return out


def _neutral_kind_candidates(vocab: SpecVocabulary, taken: set[str]) -> list[_Candidate]:
    out = []
    for kind, (label, weight) in vocab.kinds.items():
        if weight <= 0:
            continue
        points = round(5.0 * weight, 2)
        verb = _template_text(label[:1].upper() + label[1:])
        body = {"name": _unique_name(kind, taken), "field": f"kind_{kind}",
                "label": _kind_title(kind), "activity": kind, "points": points,
                "cap": round(3 * points, 2), "window_days": 30, "half_life_days": 14,
                "sentence": f"{verb} {{times}} in the last {{window_days}} days"}
        comment = [f"{kind}: spec weight {weight:g}, so {points:g} points per occurrence in 30 "
                   "days (half-life 14 days), at most three occurrences"]
        out.append(_Candidate("engagement_rules", body, comment, f"kind_{kind}"))
    return out


# --------------------------------------------------------------------------- driver


def _document(vocab: SpecVocabulary, candidates: list[_Candidate], header: list[str],
              mapping: dict[str, float], grading: dict[str, float], version: str) -> str:
    lines = [f"# {w}" for h in header for w in (textwrap.wrap(h, 86) or [""])]
    lines = [line.rstrip() for line in lines]
    lines += [
        "",
        f"version: {_q(version)}",
        f"dataset: {_q(vocab.name)}",
        f"description: {_q(f'Starter rules for spec {vocab.name!r}, written by leadscore rules init.')}",
    ]
    for section, title in (("fit_rules", "Who the lead is: points above the base rate."),
                           ("engagement_rules", "What the lead did (per kind)."),
                           ("negative_rules", "Below the base rate: penalties.")):
        chosen = [c for c in candidates if c.section == section]
        notes = [c for c in candidates if c.section == "" and section == "fit_rules"]
        lines += ["", f"# {title}"]
        if not chosen:
            lines.append(f"{section}: []")
            continue
        lines.append(f"{section}:")
        group = None
        for c in chosen:
            if c.group != group and group is not None:
                lines.append("")
            group = c.group
            lines += _render_rule(c)
        if notes:
            lines += ["", *(f"  # {line}" for c in notes for line in c.comment)]
    lines += [
        "",
        "mapping:",
        "  # p = 1 / (1 + exp(-(intercept + slope * points))), fitted on the examples above;",
        "  # the caps are wide enough never to clip a total these rules can reach.",
        *(f"  {k}: {_q(v)}" for k, v in mapping.items()),
        "",
        "grading:",
        "  # Thresholds on the 0-100 score at the examples' 90th, 75th and 50th percentiles",
        "  # (10% A, 15% B, 25% C, 50% D), or the defaults without labels.",
        *(f"  {k}: {_q(v)}" for k, v in grading.items()),
        "  sales_grades: [A, B]",
        "",
    ]
    return "\n".join(lines)


def _grading_from(scores: np.ndarray) -> dict[str, float]:
    a, b, c = (float(np.percentile(scores, q)) for q in (90, 75, 50))
    a = min(max(a, 2.0), 100.0)
    b = min(max(b, 1.0), a - 1)
    c = min(max(c, 0.0), b - 1)
    return {"a": a, "b": b, "c": c}


def generate_rules(
    vocabulary: SpecVocabulary,
    leads: pd.DataFrame,
    activities: pd.DataFrame | None = None,
    examples: pd.DataFrame | None = None,
    *,
    prior_strength: float = DEFAULT_PRIOR_STRENGTH,
    max_values: int = 12,
    bins: int = 5,
    window_days: float = 30.0,
    inactive_days: float = 14.0,
    examples_note: str = "",
    exclude: Sequence[str] = (),
) -> GeneratedRules:
    """A starter rules file for a spec, with points from conversion lift (see the module doc).

    Parameters
    ----------
    vocabulary : SpecVocabulary
        The spec's fields and kinds.
    leads, activities : pandas.DataFrame
        :class:`~features.spec.SpecTables` frames (safe names, kind names).
    examples : pandas.DataFrame or None
        Labelled rows to learn from: ``lead_id``, ``label`` (0/1) and, for a spec with
        time, ``as_of`` (the point-in-time snapshots). None: neutral defaults.
    prior_strength : float, default 20
        ``m``, the pseudo-examples at the base rate each rate is shrunk toward.
    max_values : int, default 12
        Most frequent values per categorical field that get a rule.
    bins : int, default 5
        Quantile bins per numeric field.
    window_days, inactive_days : float
        The window of the kinds' rules and the quiet spell of the inactivity rule.
    examples_note : str
        How the examples were built, for the file's header.
    exclude : sequence of str
        Fit fields to leave out.

    Returns
    -------
    GeneratedRules
        The rules (already checked against ``vocabulary``), the commented YAML text and
        a summary.
    """
    if not prior_strength > 0:
        raise ValueError(f"The 'prior_strength' parameter of generate_rules must be > 0. "
                         f"Got {prior_strength!r} instead.")
    taken: set[str] = set()
    candidates: list[_Candidate] = []
    header = [f"Starter rules for dataset spec {vocabulary.name!r}, written by `leadscore rules init`.",
              "Check them with `leadscore rules check --dataset SPEC FILE`; edit freely.",
              "Fields are the spec's safe names (the CRM's column is in each comment); activities",
              "are its kinds. Positive rules add points, negative_rules take them away."]
    summary: dict[str, Any] = {"n_examples": 0, "base_rate": None, "roc_auc": None}
    if examples is None:
        candidates += _neutral_kind_candidates(vocabulary, taken)
        header += ["", "No labels: the kinds get neutral points from their spec weight, and the",
                   "mapping and grades are the defaults. Rerun on labelled history to learn them."]
        if not candidates:
            raise ValueError(
                f"spec {vocabulary.name!r} has no labels and no activity kinds with a weight: "
                "there is nothing to give points for"
            )
    else:
        y = examples["label"].to_numpy(dtype=float)
        if not set(np.unique(y)) <= {0.0, 1.0}:
            raise ValueError("examples['label'] must hold 0 and 1 only")
        p0 = float(y.mean())
        if not 0 < p0 < 1:
            raise ValueError(
                f"all {len(y)} examples have label {int(y[0])}: lift needs both outcomes"
            )
        summary.update(n_examples=len(y), base_rate=p0)
        by_id = leads.drop_duplicates("lead_id").set_index("lead_id")
        rows = by_id.reindex(examples["lead_id"].to_numpy())
        as_of = examples["as_of"] if "as_of" in examples.columns else None
        header += [
            "",
            f"Points were learned from {len(y):,} labelled examples{examples_note}, base rate "
            f"{_pct(p0)}:",
            "each rule's conversion rate p among the examples it matches (n, k converted) is",
            f"shrunk toward the base rate p0 by m = {prior_strength:g} pseudo-examples,",
            "p = (k + m*p0) / (n + m), and points = 10 * (logit(p) - logit(p0)) (its weight of",
            "evidence in tenths of a nat). Rules worth under half a point are left out.",
        ]
        for name in vocabulary.categorical:
            if name in exclude or name not in rows.columns:
                continue
            candidates += _categorical_candidates(name, vocabulary, rows[name], y, p0,
                                                  prior_strength, max_values, taken)
        numeric = [n for n in vocabulary.numeric if n not in exclude and n in rows.columns]
        for name in numeric:
            values = rows[name].to_numpy(dtype=float, na_value=np.nan)
            candidates += _numeric_candidates(name, vocabulary, values, y, p0, prior_strength,
                                              bins, taken)
        if vocabulary.has_time and as_of is not None and LEAD_AGE not in exclude:
            created = pd.to_datetime(rows["created_at"]).reset_index(drop=True)
            age = (pd.to_datetime(as_of).reset_index(drop=True) - created).dt.total_seconds()
            candidates += _numeric_candidates(LEAD_AGE, vocabulary,
                                              (age / 86400).to_numpy(dtype=float, na_value=np.nan),
                                              y, p0, prior_strength, bins, taken)
        if vocabulary.kinds and vocabulary.has_time and as_of is not None and activities is not None:
            probe = evaluate(_probe(vocabulary, window_days, inactive_days),
                             rows.reset_index(), activities, as_of.reset_index(drop=True))
            counts = {k: np.asarray(probe.values[j]) for j, k in enumerate(vocabulary.kinds)}
            since = np.asarray(probe.values[-1], dtype=float)
            candidates += _kind_candidates(vocabulary, counts, since, y, p0, prior_strength,
                                           window_days, inactive_days, taken)
        if not any(c.section for c in candidates):
            raise ValueError(
                f"no value of spec {vocabulary.name!r} moves the conversion rate by half a "
                f"point or more with prior strength {prior_strength:g}: no rule to write"
            )

    rules_only = [c for c in candidates if c.section]
    positive = sum(_reach(c) for c in rules_only if c.section != "negative_rules")
    negative = -sum(_reach(c) for c in rules_only if c.section == "negative_rules")
    mapping = {"max_points": float(max(100, math.ceil(positive))),
               "min_points": float(min(-100, math.floor(negative))),
               "intercept": -3.3, "slope": 0.055}
    grading = dict(_NEUTRAL_GRADING)
    version = f"{vocabulary.name}-init-1"
    text = _document(vocabulary, candidates, header, mapping, grading, version)
    rules = parse_spec_rules(text, vocabulary, source="generated rules")
    if examples is not None:
        ev = evaluate_spec(rules, rows.reset_index(), activities,
                           as_of.reset_index(drop=True) if as_of is not None
                           else pd.Timestamp("2000-01-01", tz="UTC"))
        fitted = fit_mapping(rules, ev.total, y)
        mapping.update(intercept=round(fitted.mapping.intercept, 6),
                       slope=round(fitted.mapping.slope, 6))
        from features.grading import score_from_probability
        from rules_fallback.engine import points_to_probability

        p = points_to_probability(ev.total, mapping["intercept"], mapping["slope"])
        grading = _grading_from(score_from_probability(p))
        from sklearn.metrics import roc_auc_score

        summary["roc_auc"] = float(roc_auc_score(y, ev.total))
        text = _document(vocabulary, candidates, header, mapping, grading, version)
        rules = parse_spec_rules(text, vocabulary, source="generated rules")
    summary.update(
        fit_rules=len(rules.fit_rules), engagement_rules=len(rules.engagement_rules),
        negative_rules=len(rules.negative_rules),
    )
    return GeneratedRules(rules=rules, text=text, summary=summary)


def _reach(c: _Candidate) -> float:
    """The largest absolute points a candidate can give."""
    return float(c.body.get("cap", abs(c.body["points"])))
