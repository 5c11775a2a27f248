"""Test-window metrics and plots.

**Expected calibration error** (:func:`expected_calibration_error`): predictions are
sorted and cut into ``n_bins=10`` *equal-mass* bins (each holds ~n/10 rows). ECE is
the row-weighted mean of ``|mean predicted - observed conversion rate|`` over bins:

    ECE = sum_b (n_b / n) * |mean(p)_b - mean(y)_b|

Equal-mass rather than equal-width bins because conversion probabilities pile up
near zero: with equal-width bins nearly every lead falls in the first bin and the
error of the rest is computed from a handful of rows. ``ece_width`` (10 equal-width
bins, empty bins skipped) is logged alongside for comparison with other tools.

**Label-free estimate** (:func:`expected_performance`, confidence-based performance
estimation as NannyML's CBPE): when the probabilities are calibrated, each lead's label
is a Bernoulli draw with its own probability, so the conversion rate, the ROC AUC and
the top decile's lift a scored population *will* show can be estimated before any
label arrives. It rests on one assumption: calibration holds on the new population
(the features may drift, but P(convert | features) is what it was in training: no
concept drift). See the function for the formulas.

Plots are drawn on matplotlib ``Figure`` objects with the Agg canvas directly, so
nothing touches pyplot's global state or needs a display.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

__all__ = [
    "expected_calibration_error",
    "expected_performance",
    "expected_roc_auc",
    "roc_auc_ci",
    "CBPE_ASSUMPTION",
    "decile_table",
    "recall_at_top",
    "classification_metrics",
    "segment_auc",
    "safe_auc",
    "metric_key",
    "plot_calibration",
    "plot_gains",
    "plot_lift",
    "plot_shap_summary",
    "plot_importance",
]

TOP_K_PERCENTS: tuple[int, ...] = (5, 10, 20)
"""Sales capacity levels at which recall is reported: the top 5%, 10% and 20%."""


def safe_auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC, or NaN when ``y`` has a single class."""
    y = np.asarray(y)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))


def expected_calibration_error(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
) -> float:
    """ECE over ``n_bins`` equal-mass (``quantile``) or equal-width (``uniform``) bins."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    if strategy == "quantile":
        order = np.argsort(p, kind="stable")
        bins = np.empty(len(p), dtype=int)
        bins[order] = np.arange(len(p)) * n_bins // len(p)
    elif strategy == "uniform":
        bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    else:
        raise ValueError(
            "The 'strategy' parameter of expected_calibration_error must be 'quantile' or "
            f"'uniform'. Got {strategy!r} instead."
        )
    total = 0.0
    for b in np.unique(bins):
        m = bins == b
        total += m.sum() / len(p) * abs(p[m].mean() - y[m].mean())
    return float(total)


def roc_auc_ci(y: np.ndarray, score: np.ndarray, level: float = 0.95
               ) -> tuple[float, float, float]:
    """ROC AUC (scikit-learn's) and its DeLong confidence interval, ``(auc, low, high)``.

    DeLong, DeLong and Clarke-Pearson (1988): the AUC's variance from its structural
    components (for each converter, the share of non-converters ranked below it; for
    each non-converter, the share of converters above), ties counting half, computed
    with mid-ranks in O(n log n) (Sun and Xu, 2014). NaN when ``y`` has one class.
    """
    from scipy.stats import norm, rankdata

    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    pos, neg = score[y == 1], score[y == 0]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return float("nan"), float("nan"), float("nan")
    auc = float(roc_auc_score(y, score))
    ranks = rankdata(np.concatenate([pos, neg]))
    v10 = (ranks[:m] - rankdata(pos)) / n  # per converter: non-converters below it
    v01 = 1.0 - (ranks[m:] - rankdata(neg)) / m  # per non-converter: converters above it
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = float(norm.ppf(0.5 + level / 2)) * float(np.sqrt(var))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


CBPE_ASSUMPTION = (
    "label-free estimate from the calibrated probabilities alone: it holds if calibration "
    "holds on this population, i.e. P(convert | features) is what it was in training (no "
    "concept drift); feature drift alone does not break it, a change in how leads convert "
    "does"
)


def expected_roc_auc(p: np.ndarray) -> float:
    """The ROC AUC that labels drawn from ``p`` would give the ranking by ``p``.

    With ``y_i ~ Bernoulli(p_i)`` independent, the expected count of correctly ordered
    (converter, non-converter) pairs is ``sum_{i != j} p_i (1 - p_j) w_ij`` (``w_ij`` 1
    when ``p_i > p_j``, 1/2 on a tie) and the expected count of such pairs is
    ``sum p * sum (1 - p) - sum p (1 - p)``: their ratio is returned. It is NannyML's
    expected ROC curve (TPR and FPR from the cumulative sums of ``p`` and ``1 - p``)
    without the pairs of a lead with itself, which no labelling has. A ratio of
    expectations, not the expectation of the ratio: they differ by O(1/n) (checked
    against a Monte-Carlo simulation in the tests). NaN for fewer than two leads.
    """
    p = np.asarray(p, dtype=float)
    if len(p) < 2:
        return float("nan")
    values, inverse = np.unique(p, return_inverse=True)
    pos = np.bincount(inverse, weights=p)  # expected converters per distinct value
    neg = np.bincount(inverse, weights=1 - p)
    self_pairs = np.bincount(inverse, weights=p * (1 - p))
    above = np.cumsum(pos[::-1])[::-1] - pos  # expected converters strictly above
    numerator = float(np.sum(neg * above) + 0.5 * np.sum(pos * neg - self_pairs))
    denominator = float(p.sum() * (1 - p).sum() - np.sum(p * (1 - p)))
    return numerator / denominator if denominator > 0 else float("nan")


def expected_performance(p: np.ndarray) -> dict[str, float | int | str]:
    """CBPE's expected conversion rate, ROC AUC and top-decile lift, from ``p`` alone.

    - ``expected_conversion_rate`` = mean(p);
    - ``expected_roc_auc``: :func:`expected_roc_auc`;
    - ``expected_top_decile_lift`` = mean(p) of the top decile by p over mean(p), the
      top decile as :func:`decile_table` cuts it (the first ``ceil(n / 10)`` leads).

    ``assumption`` says what the figures rest on (:data:`CBPE_ASSUMPTION`).
    """
    p = np.asarray(p, dtype=float)
    n = len(p)
    out: dict[str, float | int | str] = {"n": n, "assumption": CBPE_ASSUMPTION}
    if n == 0:
        return {**out, "expected_conversion_rate": float("nan"),
                "expected_roc_auc": float("nan"), "expected_top_decile_lift": float("nan")}
    rate = float(p.mean())
    top = np.argsort(-p, kind="stable")[: -(-n // 10)]
    out.update(expected_conversion_rate=rate, expected_roc_auc=expected_roc_auc(p),
               expected_top_decile_lift=float(p[top].mean() / rate) if rate > 0
               else float("nan"))
    return out


def decile_table(y: np.ndarray, p: np.ndarray, n: int = 10) -> pd.DataFrame:
    """Conversion rate and lift per score decile (decile 1 = highest scores)."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    decile = np.empty(len(y), dtype=int)
    decile[order] = np.arange(len(y)) * n // len(y) + 1
    frame = pd.DataFrame({"decile": decile, "y": y, "p": p})
    table = frame.groupby("decile").agg(
        n=("y", "size"), conversions=("y", "sum"), conversion_rate=("y", "mean"),
        mean_probability=("p", "mean"),
    )
    base = y.mean() if len(y) else float("nan")
    table["lift"] = table["conversion_rate"] / base if base > 0 else np.nan
    table["cumulative_recall"] = table["conversions"].cumsum() / max(y.sum(), 1)
    return table


def recall_at_top(y: np.ndarray, p: np.ndarray, percent: float) -> float:
    """Share of all conversions found in the top ``percent`` % of leads by score."""
    y = np.asarray(y, dtype=float)
    k = max(1, int(round(len(y) * percent / 100)))
    top = np.argsort(-np.asarray(p, dtype=float), kind="stable")[:k]
    return float(y[top].sum() / y.sum()) if y.sum() else float("nan")


def classification_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every scalar test-window metric, keyed as logged to MLflow."""
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    out = {
        "roc_auc": safe_auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if y.any() else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "ece": expected_calibration_error(y, p, 10, "quantile"),
        "ece_width": expected_calibration_error(y, p, 10, "uniform"),
        "base_rate": float(y.mean()),
        "mean_probability": float(p.mean()),
        "n": float(len(y)),
        "n_converted": float(y.sum()),
    }
    for k in TOP_K_PERCENTS:
        out[f"recall_at_{k}pct"] = recall_at_top(y, p, k)
    table = decile_table(y, p)
    for d, row in table.iterrows():
        out[f"decile_{d:02d}_conversion_rate"] = float(row["conversion_rate"])
        out[f"decile_{d:02d}_lift"] = float(row["lift"])
    return out


_KEY_RE = re.compile(r"[^0-9A-Za-z_\-. /]")


def metric_key(*parts: object) -> str:
    """An MLflow-safe metric name from parts (unsafe characters become '_')."""
    return "__".join(_KEY_RE.sub("_", str(part)) for part in parts)[:250]


def segment_auc(
    y: np.ndarray, p: np.ndarray, segments: pd.DataFrame, min_rows: int = 50
) -> pd.DataFrame:
    """ROC AUC per value of each segment column (e.g. source, industry).

    Segments with fewer than ``min_rows`` rows or a single class get NaN rather than a
    number too noisy to act on; ``n`` and ``n_converted`` say why.
    """
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    rows = []
    for column in segments.columns:
        values = segments[column].astype("string").fillna("(missing)").to_numpy()
        for value in pd.unique(values):
            m = values == value
            auc = safe_auc(y[m], p[m]) if m.sum() >= min_rows else float("nan")
            rows.append({"segment": column, "value": value, "n": int(m.sum()),
                         "n_converted": int(y[m].sum()), "roc_auc": auc})
    return pd.DataFrame(rows, columns=["segment", "value", "n", "n_converted", "roc_auc"])


# ------------------------------------------------------------------------ plots


def _figure(width: float = 6.0, height: float = 4.5) -> tuple[Figure, object]:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def plot_calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> Figure:
    """Reliability diagram over equal-mass bins, with the ECE in the title."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    bins = np.empty(len(p), dtype=int)
    bins[order] = np.arange(len(p)) * n_bins // max(len(p), 1)
    frame = pd.DataFrame({"b": bins, "p": p, "y": y}).groupby("b").mean()
    fig, ax = _figure()
    top = max(frame["p"].max(), frame["y"].max(), 0.01) * 1.05
    ax.plot([0, top], [0, top], ls="--", color="grey", label="perfect")
    ax.plot(frame["p"], frame["y"], marker="o", label="model")
    ax.set_xlabel("mean predicted probability (equal-mass bins)")
    ax.set_ylabel("observed conversion rate")
    ax.set_title(f"Calibration, test window (ECE {expected_calibration_error(y, p):.4f})")
    ax.legend()
    return fig


def plot_gains(y: np.ndarray, p: np.ndarray) -> Figure:
    """Cumulative gains: share of conversions found vs share of leads contacted."""
    y = np.asarray(y, dtype=float)
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    found = np.concatenate([[0], np.cumsum(y[order]) / max(y.sum(), 1)])
    share = np.linspace(0, 1, len(found))
    fig, ax = _figure()
    ax.plot(share, found, label="model")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="random")
    ax.set_xlabel("share of leads contacted (highest scores first)")
    ax.set_ylabel("share of conversions found")
    ax.set_title("Cumulative gains, test window")
    ax.legend()
    return fig


def plot_lift(table: pd.DataFrame) -> Figure:
    """Lift per decile (1 = highest scores)."""
    fig, ax = _figure()
    ax.bar(table.index.astype(str), table["lift"])
    ax.axhline(1.0, ls="--", color="grey")
    ax.set_xlabel("score decile (1 = highest)")
    ax.set_ylabel("lift over base conversion rate")
    ax.set_title("Lift by decile, test window")
    return fig


def plot_shap_summary(
    contributions: np.ndarray, X: np.ndarray, feature_names: Sequence[str], top: int = 15
) -> Figure:
    """Beeswarm-style SHAP summary from ``pred_contrib``: one row per feature.

    Each dot is a lead; x is the feature's contribution (log-odds), colour its value's
    rank within the feature (blue low, red high; grey missing or categorical code).
    """
    contributions = np.asarray(contributions, dtype=float)
    order = np.argsort(-np.abs(contributions).mean(axis=0))[:top][::-1]
    rng = np.random.default_rng(0)
    fig, ax = _figure(7.0, max(3.0, 0.35 * len(order) + 1.5))
    for row, j in enumerate(order):
        x = contributions[:, j]
        v = X[:, j]
        colour = np.full(len(v), 0.5)
        ok = ~np.isnan(v)
        if ok.sum() > 1:
            colour[ok] = pd.Series(v[ok]).rank(pct=True).to_numpy()
        ax.scatter(x, row + rng.uniform(-0.3, 0.3, len(x)), c=colour, cmap="coolwarm",
                   s=4, alpha=0.6, vmin=0, vmax=1, linewidths=0)
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([feature_names[j] for j in order], fontsize=8)
    ax.axvline(0, color="grey", lw=0.8)
    ax.set_xlabel("SHAP contribution (log-odds of the raw margin)")
    ax.set_title("SHAP summary, test window sample")
    fig.tight_layout()
    return fig


def plot_importance(importance: pd.Series, top: int = 20) -> Figure:
    """Horizontal bars of total gain per feature."""
    imp = importance.head(top)[::-1]
    fig, ax = _figure(7.0, max(3.0, 0.3 * len(imp) + 1.5))
    ax.barh(imp.index, imp.to_numpy())
    ax.set_xlabel("total gain")
    ax.set_title("Feature importance (gain)")
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig
