"""Exact TreeSHAP for a LightGBM booster, equal to ``pred_contrib``, faster than it.

Why this exists: explanations are the cost of this product (one TreeSHAP row costs
about 85 plain predictions), and a service explains rows of the *same* model all day.
Fast TreeSHAP v2 (Yang 2021, arXiv 2109.09847) spends memory once per model to make
every row cheaper, which is exactly that case. ``fasttreeshap`` (the paper's package)
does not install against numpy 2 with LightGBM 4.7 (see the README), so this is our
own small implementation, compiled with numba.

The algorithm
-------------
For one leaf ``l`` with value ``v``, let ``F`` be the distinct features on its path
(``n = |F|``). For ``j`` in ``F``: ``z_j`` is the product of the cover ratios
``count(child on the path) / count(node)`` over the path's splits on ``j`` (LightGBM's
counts, as its ``TreeSHAP`` uses), and ``o_j`` is 1 when the row follows every one of
those splits, else 0. The Shapley value of the leaf's function for ``i`` in ``F`` is::

    phi_i = v (o_i - z_i) sum_{S subset of S' - {i}} w(|S|, n) prod_{j in F - {i} - S} z_j

with ``S' = {j : o_j = 1}`` and ``w(s, n) = s! (n - s - 1)! / n!``. Writing
``G(U) = sum_{S subset of U} w(|S|, n) prod_{j in F - S} z_j`` (every term of which
holds ``z_i`` when ``i`` is not in ``U``), this is::

    phi_i = v (o_i / z_i - 1) G(S' - {i})        (o_i = 1)
    phi_i = -v G(S')                              (o_i = 0)

``G`` depends on the row only through ``S'``: v2 tabulates ``v G(U)`` for all ``2^n``
subsets of every leaf once per model, and a row then costs one pass down the tree (to
find each leaf's ``S'`` as a bit mask) plus ``n`` table look-ups per leaf, instead of
the classic algorithm's ``O(n^2)`` polynomial work per leaf. A leaf whose table would
be too large (more than :data:`V2_MAX_LEAF_FEATURES` path features: ``2^n`` grows
fast, and tables that outgrow the CPU caches were measured slower than arithmetic) is
explained per row with the same formula in polynomial form (the classic algorithm's
cost, v1), so memory stays bounded whatever the model: at most ``L 2^6`` values per
tree of ``L`` leaves.

Both forms beat LightGBM's own ``TreeSHAP`` mainly because it recurses over the tree
for each row, extending and unwinding the path polynomial at every node, where this
walks the tree once to get each leaf's mask and does the leaf's work in a flat loop.

The values are LightGBM's to rounding (~1e-15; tested to 1e-9 against ``pred_contrib``
on random models with categorical splits, NaNs, zeros and single-leaf trees): the split
rules below are LightGBM's own ``NumericalDecision`` / ``CategoricalDecision``, and the
expected value of each tree is its leaf values weighted by leaf counts, as LightGBM's
``ExpectedValue``.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["TreeShap", "UnsupportedModel", "V2_MAX_LEAF_FEATURES"]

V2_MAX_LEAF_FEATURES = 6
"""A leaf with at most this many distinct path features is explained from its v2 table
(``2^n`` float64 values); deeper leaves by the per-row v1 formula, the classic cost.
Measured on the production-like model of ``benchmarks/explain.py``: larger tables stop
fitting the CPU caches and the look-ups cost more than v1's arithmetic saves."""

PARALLEL_MIN_ROWS = 4
"""Calls with fewer rows run on the calling thread. A row of a 300-tree model costs
about a millisecond and starting a pool a fraction of that, so from a few rows on the
rows are split across ``num_threads`` threads, as LightGBM's OpenMP splits them."""

# Leaf children are stored as -(global leaf index + 1); internal children as their local
# (per-tree, preorder) node index.
# Node int columns:
_FEAT, _KIND, _DEFLEFT, _MISSING, _LEFT, _RIGHT, _BIT, _CAT0, _CAT1 = range(9)
_KIND_NUM, _KIND_CAT = 0, 1
_MISSING_CODES = {"None": 0, "Zero": 1, "NaN": 2}
# Tree int columns: first node, number of nodes, mode, the single leaf (mode 0).
_T_NODE0, _T_NODES, _T_MODE, _T_LEAF = range(4)
_MODE_LEAF, _MODE_V2 = 0, 1
# Leaf int columns: number of path features, first path feature, first table entry.
_L_N, _L_F0, _L_T0 = range(3)
# LightGBM's kZeroThreshold is the float 1e-35f, compared as a double.
_ZERO = float(np.float32(1e-35))
_MAX_MASK_BITS = 62
_BLOCK = 32  # rows per block of the row loop: their features and sums fit in L1/L2


class UnsupportedModel(ValueError):
    """The booster has something this explainer does not implement (the caller falls
    back to LightGBM's ``pred_contrib``)."""


# ----------------------------------------------------------------------------- the kernels

try:
    import numba
except ImportError:  # pragma: no cover  (numba is a dependency; the explainer then refuses)
    numba = None


def _njit(fn):  # type: ignore[no-untyped-def]
    # cache=True: the compiled machine code is kept beside this file (or in numba's
    # user-wide cache when that is read-only), so a new process loads it instead of
    # compiling it again. nogil: row chunks run in parallel on plain Python threads.
    return numba.njit(cache=True, nogil=True, fastmath=False)(fn) if numba else fn


def _inline(fn):  # type: ignore[no-untyped-def]
    # Helpers of the row loop are inlined into it: a call that passes arrays costs
    # reference-count updates per call, which at ~10,000 leaves per row dominated.
    return numba.njit(inline="always", nogil=True)(fn) if numba else fn


@_inline
def _goes_left(f, nodes, g, threshold, cat_bits):  # type: ignore[no-untyped-def]
    """LightGBM's ``Tree::Decision`` for node ``g`` and feature value ``f`` (``tree.h``, 4.x)."""
    if nodes[g, _KIND] == _KIND_NUM:
        missing = nodes[g, _MISSING]
        if math.isnan(f) and missing != 2:
            f = 0.0
        if (missing == 1 and -_ZERO <= f <= _ZERO) or (missing == 2 and math.isnan(f)):
            return nodes[g, _DEFLEFT] == 1
        return f <= threshold
    # Categorical: NaN and negatives go right; the value is truncated to an int and
    # looked up in the bitset of categories that go left.
    if math.isnan(f) or f <= -1.0 or f >= 2147483648.0:
        return False
    c = np.int64(f)
    word = c >> 5
    c0 = nodes[g, _CAT0]
    if word >= nodes[g, _CAT1] - c0:
        return False
    return (np.int64(cat_bits[c0 + word]) >> (c & 31)) & 1 == 1


@_inline
def _leaf_v2(phi, mask, li, leaves, feats, inv_z, table):  # type: ignore[no-untyped-def]
    """``phi_i += v G(S' - {i}) (o_i / z_i - 1)``: one form for followed and not followed
    features (for ``o_i = 0``, ``S' - {i}`` is ``S'``), so the loop has no branch."""
    n = leaves[li, _L_N]
    f0 = leaves[li, _L_F0]
    t0 = leaves[li, _L_T0]
    s = mask & ((np.int64(1) << n) - 1)
    for k in range(n):
        o = (s >> k) & 1
        phi[feats[f0 + k]] += table[t0 + (s & ~(np.int64(1) << k))] * (o * inv_z[f0 + k] - 1.0)


@_inline
def _leaf_v1(phi, mask, li, leaves, value, feats, z, weights, poly, quot):  # type: ignore[no-untyped-def]
    """The same values without a table: the path polynomial prod_j (z_j + o_j t), divided
    by each feature's own factor (the classic algorithm's unwind)."""
    n = leaves[li, _L_N]
    f0 = leaves[li, _L_F0]
    poly[0] = 1.0
    for i in range(1, n + 1):
        poly[i] = 0.0
    deg = 0
    for k in range(n):
        zk = z[f0 + k]
        if (mask >> k) & 1:
            for i in range(deg + 1, 0, -1):
                poly[i] = poly[i] * zk + poly[i - 1]
            poly[0] *= zk
            deg += 1
        else:
            for i in range(deg + 1):
                poly[i] *= zk
    # Sum for features not followed: -v sum_i w_i poly_i.
    off = 0.0
    for i in range(deg + 1):
        off += weights[n, i] * poly[i]
    for k in range(n):
        if (mask >> k) & 1:
            zk = z[f0 + k]
            # quot = poly / (t + z_k), from the top coefficient down.
            quot[deg - 1] = poly[deg]
            for i in range(deg - 1, 0, -1):
                quot[i - 1] = poly[i] - zk * quot[i]
            total = 0.0
            for i in range(deg):
                total += weights[n, i] * quot[i]
            phi[feats[f0 + k]] += value * (1.0 - zk) * total
        else:
            phi[feats[f0 + k]] -= value * off


@_njit
def _explain_rows(X, out, start, stop, trees, nodes, thresholds, cat_bits, leaves,  # type: ignore[no-untyped-def]
                  leaf_values, feats, z, inv_z, table, weights, bias, max_nodes, max_n):
    masks = np.empty(max_nodes, dtype=np.int64)
    poly = np.empty(max_n + 2, dtype=np.float64)
    quot = np.empty(max_n + 2, dtype=np.float64)
    all_bits = np.int64(-1)
    # Blocks of rows, trees outside, rows inside: one tree's nodes and tables stay in
    # the CPU caches while a block's rows go through it (LightGBM walks all the trees
    # for each row in turn).
    for b0 in range(start, stop, _BLOCK):
        b1 = min(b0 + _BLOCK, stop)
        for t in range(trees.shape[0]):
            if trees[t, _T_MODE] == _MODE_LEAF:
                continue
            node0 = trees[t, _T_NODE0]
            for r in range(b0, b1):
                x = X[r]
                phi = out[r]
                masks[0] = all_bits
                for p in range(trees[t, _T_NODES]):
                    g = node0 + p
                    m = masks[p]
                    off = m & ~(np.int64(1) << nodes[g, _BIT])
                    if _goes_left(x[nodes[g, _FEAT]], nodes, g, thresholds[g], cat_bits):
                        lm, rm = m, off
                    else:
                        lm, rm = off, m
                    for side in range(2):
                        child = nodes[g, _LEFT] if side == 0 else nodes[g, _RIGHT]
                        cm = lm if side == 0 else rm
                        if child >= 0:
                            masks[child] = cm
                        else:
                            li = -child - 1
                            if leaves[li, _L_T0] >= 0:
                                _leaf_v2(phi, cm, li, leaves, feats, inv_z, table)
                            else:
                                _leaf_v1(phi, cm, li, leaves, leaf_values[li], feats, z,
                                         weights, poly, quot)
        for r in range(b0, b1):
            out[r, out.shape[1] - 1] = bias


@_njit
def _leaf_table(out, value, z, weights, scratch_poly, scratch_prod):  # type: ignore[no-untyped-def]
    """``out[U] = value * G(U)`` for every subset ``U`` of a leaf's ``n`` path features.

    ``G(U) = prod_{j not in U} z_j * sum_k w(k, n) [t^k] prod_{j in U} (t + z_j)``; the
    polynomial of ``U`` is its lowest feature's factor times that of ``U`` without it,
    so each subset costs O(n).
    """
    n = z.shape[0]
    size = 1 << n
    w = weights[n]
    scratch_poly[0, 0] = 1.0
    scratch_prod[0] = 1.0
    for u in range(1, size):
        low = u & -u
        k = 0
        while (1 << k) != low:
            k += 1
        prev = u ^ low
        deg = 0
        v = prev
        while v:
            v &= v - 1
            deg += 1
        # (t + z_k) * poly(prev), degree deg + 1.
        scratch_poly[u, deg + 1] = scratch_poly[prev, deg]
        for i in range(deg, 0, -1):
            scratch_poly[u, i] = scratch_poly[prev, i - 1] + z[k] * scratch_poly[prev, i]
        scratch_poly[u, 0] = z[k] * scratch_poly[prev, 0]
        scratch_prod[u] = scratch_prod[prev] * z[k]
    full = size - 1
    for u in range(size):
        deg = 0
        v = u
        while v:
            v &= v - 1
            deg += 1
        total = 0.0
        for i in range(deg + 1):
            total += w[i] * scratch_poly[u, i]
        out[u] = value * scratch_prod[full ^ u] * total


# ----------------------------------------------------------------------------- the model


def _shapley_weights(max_n: int) -> np.ndarray:
    """``weights[n, s] = s! (n - s - 1)! / n!`` for ``0 <= s < n <= max_n``."""
    out = np.zeros((max_n + 1, max_n + 1), dtype=np.float64)
    for n in range(1, max_n + 1):
        for s in range(n):
            out[n, s] = math.exp(math.lgamma(s + 1) + math.lgamma(n - s) - math.lgamma(n + 1))
    return out


class TreeShap:
    """Exact TreeSHAP values of a LightGBM booster, as ``predict(X, pred_contrib=True)``.

    Built once per loaded model (it parses ``booster.dump_model()`` and tabulates the v2
    weights, a fraction of a second for 300 trees of 31 leaves) and kept in memory with
    it; :meth:`contributions` then explains any number of rows.

    Parameters
    ----------
    booster : lightgbm.Booster
        A binary or regression booster (one tree per iteration) without linear trees.
    num_threads : int, optional
        Threads for large calls. Default: ``OMP_NUM_THREADS`` if set, else the CPU count,
        the same default as LightGBM's OpenMP.

    Raises
    ------
    UnsupportedModel
        For multiclass boosters, linear trees, or paths with more than 62 distinct
        features (callers use ``pred_contrib`` for those).
    """

    def __init__(self, booster: Any, *, num_threads: int | None = None,
                 max_leaf_features: int = V2_MAX_LEAF_FEATURES) -> None:
        if numba is None:  # pragma: no cover
            raise UnsupportedModel("numba is not installed")
        dump = booster.dump_model()
        if int(dump.get("num_tree_per_iteration", 1)) != 1:
            raise UnsupportedModel("multiclass boosters are explained by pred_contrib")
        self.num_features = int(dump["max_feature_idx"]) + 1
        self.num_threads = num_threads or _default_threads()
        self._build(dump["tree_info"], max_leaf_features)

    # -- building ----------------------------------------------------------------

    def _build(self, tree_info: list[dict[str, Any]], max_leaf_features: int) -> None:
        nodes: list[list[int]] = []
        thresholds: list[float] = []
        cat_bits: list[int] = []
        trees: list[list[int]] = []
        leaves: list[list[int]] = []
        leaf_values: list[float] = []
        feats: list[int] = []
        zs: list[float] = []
        bias = 0.0
        tables: list[tuple[int, float, list[float]]] = []  # (table start, value, z)
        table_size = 0
        max_nodes, max_n = 1, 1
        for info in tree_info:
            if info.get("is_linear"):
                raise UnsupportedModel("linear trees are explained by pred_contrib")
            root = info["tree_structure"]
            if "leaf_value" in root:  # a single-leaf tree: a constant, no contributions
                bias += float(root["leaf_value"])
                trees.append([len(nodes), 0, _MODE_LEAF, -1])
                continue
            tree_leaves, tree_nodes = _walk(root)
            bias += _expected_value(root, tree_leaves)
            ns = [len(path) for _, _, path in tree_leaves]
            if max(ns) > _MAX_MASK_BITS:
                raise UnsupportedModel(f"a path with {max(ns)} distinct features (at most "
                                       f"{_MAX_MASK_BITS} are supported)")
            node0, leaf0 = len(nodes), len(leaves)
            index = {id(node): i for i, node in enumerate(tree_nodes)}
            leaf_index = {id(leaf): leaf0 + i for i, (leaf, _, _) in enumerate(tree_leaves)}
            for node, bit in ((n, b) for n, b in _bits(root)):
                row = [int(node["split_feature"]), 0, int(bool(node.get("default_left"))),
                       _MISSING_CODES.get(str(node.get("missing_type", "None")), 0), 0, 0,
                       bit, 0, 0]
                decision = node.get("decision_type", "<=")
                if decision == "==":
                    cats = [int(c) for c in str(node["threshold"]).split("||") if c != ""]
                    words = (max(cats) // 32 + 1) if cats else 0
                    bits = [0] * words
                    for c in cats:
                        bits[c // 32] |= 1 << (c % 32)
                    row[_KIND], row[_CAT0] = _KIND_CAT, len(cat_bits)
                    cat_bits.extend(bits)
                    row[_CAT1] = len(cat_bits)
                    thresholds.append(0.0)
                elif decision == "<=":
                    thresholds.append(float(node["threshold"]))
                else:
                    raise UnsupportedModel(f"decision type {decision!r}")
                for side, col in (("left_child", _LEFT), ("right_child", _RIGHT)):
                    child = node[side]
                    row[col] = (-(leaf_index[id(child)] + 1) if "leaf_index" in child
                                else index[id(child)])
                nodes.append(row)
            for _leaf, value, path in tree_leaves:
                # v2 where the leaf's table is small enough (and every z > 0: v2 divides
                # by z); the per-row v1 formula elsewhere.
                v2 = len(path) <= max_leaf_features and all(zj > 0.0 for _, zj in path)
                start = len(feats)
                feats.extend(f for f, _ in path)
                zs.extend(zj for _, zj in path)
                leaves.append([len(path), start, table_size if v2 else -1])
                leaf_values.append(value)
                if v2:
                    tables.append((table_size, value, [zj for _, zj in path]))
                    table_size += 1 << len(path)
            trees.append([node0, len(tree_nodes), _MODE_V2, -1])
            max_nodes = max(max_nodes, len(tree_nodes))
            max_n = max(max_n, max(ns))
        self.weights_ = _shapley_weights(max_n + 1)
        table = np.zeros(max(table_size, 1), dtype=np.float64)
        if tables:
            big = max(len(zl) for _, _, zl in tables)
            poly = np.zeros((1 << big, big + 2), dtype=np.float64)
            prod = np.zeros(1 << big, dtype=np.float64)
            for start, value, zl in tables:
                n = len(zl)
                _leaf_table(table[start:start + (1 << n)], value, np.asarray(zl, np.float64),
                            self.weights_, poly, prod)
        z = np.asarray(zs, dtype=np.float64)
        self.trees_ = np.asarray(trees, dtype=np.int64).reshape(-1, 4)
        self.nodes_ = np.asarray(nodes, dtype=np.int64).reshape(-1, 9)
        self.thresholds_ = np.asarray(thresholds, dtype=np.float64)
        self.cat_bits_ = np.asarray(cat_bits, dtype=np.uint32)
        self.leaves_ = np.asarray(leaves, dtype=np.int64).reshape(-1, 3)
        self.leaf_values_ = np.asarray(leaf_values, dtype=np.float64)
        self.feats_ = np.asarray(feats, dtype=np.int64)
        self.z_ = z
        with np.errstate(divide="ignore"):
            self.inv_z_ = np.where(z > 0, 1.0 / np.where(z > 0, z, 1.0), np.inf)
        self.table_ = table
        self.bias_ = float(bias)
        self.max_nodes_ = int(max_nodes)
        self.max_n_ = int(max_n)
        self.v2_leaves_ = int((self.leaves_[:, _L_T0] >= 0).sum())
        self.v1_leaves_ = int((self.leaves_[:, _L_T0] < 0).sum())

    @property
    def table_bytes(self) -> int:
        """Memory of the v2 tables (the rest of the model is a few hundred KiB)."""
        return int(self.table_.nbytes)

    # -- explaining --------------------------------------------------------------

    def contributions(self, X: np.ndarray, num_threads: int | None = None) -> np.ndarray:
        """``(n, num_features + 1)``: per-feature SHAP values, then the expected value.

        ``X`` is the float64 model matrix (NaN for missing), as ``booster.predict`` takes.
        """
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ValueError(f"X must have shape (n, {self.num_features}); got {X.shape}")
        n = X.shape[0]
        out = np.zeros((n, self.num_features + 1), dtype=np.float64)
        threads = min(num_threads or self.num_threads, n)
        if n < PARALLEL_MIN_ROWS or threads <= 1:
            self._run(X, out, 0, n)
            return out
        # A few chunks per thread, so that a thread slowed by the neighbours' load does
        # not hold the others up at the end.
        bounds = np.linspace(0, n, min(n, threads * 4) + 1).astype(int)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(lambda i: self._run(X, out, bounds[i], bounds[i + 1]),
                          range(len(bounds) - 1)))
        return out

    def _run(self, X: np.ndarray, out: np.ndarray, start: int, stop: int) -> None:
        _explain_rows(X, out, int(start), int(stop), self.trees_, self.nodes_,
                      self.thresholds_, self.cat_bits_, self.leaves_, self.leaf_values_,
                      self.feats_, self.z_, self.inv_z_, self.table_, self.weights_,
                      self.bias_, self.max_nodes_, self.max_n_)

    def __repr__(self) -> str:
        return (f"TreeShap({len(self.trees_)} trees, leaves {self.v2_leaves_} v2 / "
                f"{self.v1_leaves_} v1, tables {self.table_bytes / 2**20:.2f} MiB)")


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def _count(node: dict[str, Any]) -> float:
    return float(node["leaf_count"] if "leaf_index" in node else node["internal_count"])


def _walk(root: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Leaves ``(leaf, value, path)`` and internal nodes of a tree, both in preorder.

    ``path`` lists ``(feature, z)`` for the distinct features from the root down, in
    order of first appearance: the bit of a feature in a leaf's mask is its position.
    """
    leaves, internal = [], []
    stack = [(root, ())]
    while stack:
        node, path = stack.pop()
        if "leaf_index" in node:
            leaves.append((node, float(node["leaf_value"]), list(path)))
            continue
        internal.append(node)
        f = int(node["split_feature"])
        total = _count(node)
        for side in ("right_child", "left_child"):  # left popped first: preorder
            child = node[side]
            ratio = _count(child) / total if total > 0 else 0.0
            feats = [p[0] for p in path]
            if f in feats:
                k = feats.index(f)
                new = path[:k] + ((f, path[k][1] * ratio),) + path[k + 1:]
            else:
                new = path + ((f, ratio),)
            stack.append((child, new))
    return leaves, internal


def _bits(root: dict[str, Any]):  # type: ignore[no-untyped-def]
    """Internal nodes in the preorder of :func:`_walk`, each with its feature's bit."""
    stack = [(root, ())]
    while stack:
        node, feats = stack.pop()
        if "leaf_index" in node:
            continue
        f = int(node["split_feature"])
        bit = feats.index(f) if f in feats else len(feats)
        new = feats if f in feats else feats + (f,)
        yield node, bit
        stack.append((node["right_child"], new))
        stack.append((node["left_child"], new))


def _expected_value(root: dict[str, Any], leaves: list[Any]) -> float:
    total = _count(root)
    return sum(_count(leaf) / total * value for leaf, value, _ in leaves)
