"""Average K LightGBM boosters as one booster: trees concatenated, values scaled by 1/K.

The K fold boosters of a cross-fit (:meth:`training.model.LeadModel.fit_crossfit` with
``refit="bag"``) are averaged at predict time. A margin is a sum of tree outputs, so
the mean margin of K boosters is the margin of one booster holding all their trees
with every leaf value divided by K; TreeSHAP values are linear in the leaf values, so
its ``pred_contrib`` is the mean of theirs too. Merging into one model string keeps
every consumer (``predict``, ``pred_contrib``, :mod:`training.treeshap`, booster.txt,
MLflow, serving) unchanged. ``tests/training/test_bagging.py`` checks both equalities.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import lightgbm as lgb

_SCALED = ("leaf_value=", "internal_value=")


def _split(model_str: str) -> tuple[str, list[str], str]:
    """Header, tree blocks (each starting ``Tree=``) and footer of a model string."""
    head, sep, rest = model_str.partition("\nTree=")
    if not sep:
        raise ValueError("model string has no trees")
    body, sep, foot = ("Tree=" + rest).partition("end of trees")
    if not sep:
        raise ValueError("model string has no 'end of trees' marker")
    blocks = [b for b in re.split(r"\n(?=Tree=)", body.strip("\n")) if b.strip()]
    return head, blocks, "end of trees" + foot


def _scale_block(block: str, weight: float) -> str:
    lines = block.split("\n")
    for i, line in enumerate(lines):
        for key in _SCALED:
            if line.startswith(key):
                values = line[len(key):].split()
                lines[i] = key + " ".join(repr(float(v) * weight) for v in values)
    return "\n".join(lines)


def average_boosters(boosters: Sequence[lgb.Booster], num_iteration: int) -> lgb.Booster:
    """One booster whose raw margin is the mean of ``boosters``' at ``num_iteration``.

    The boosters must share features and bin mappers (folds of one ``lgb.Dataset``).
    """
    if not boosters:
        raise ValueError("average_boosters needs at least one booster")
    weight = 1.0 / len(boosters)
    head = foot = None
    trees: list[str] = []
    for booster in boosters:
        h, blocks, f = _split(booster.model_to_string(num_iteration=num_iteration))
        if head is None:
            head, foot = h, f
        for block in blocks:
            _, _, rest = block.partition("\n")
            trees.append(f"Tree={len(trees)}\n" + _scale_block(rest, weight))
    # tree_sizes lets LightGBM parse trees in parallel; the sizes changed, and without
    # the line it parses them in order.
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    model_str = head + "\n\n" + "\n\n".join(t.rstrip("\n") + "\n" for t in trees) + "\n" + foot
    return lgb.Booster(model_str=model_str)
