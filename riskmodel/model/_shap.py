"""Exact SHAP contributions of many rows, each tree evaluated once per distinct path.

LightGBM's ``pred_contrib`` (path-dependent TreeSHAP) costs, for every row, a walk of
every tree that grows with the tree's leaves and depth: exact reasons for the night's
flagged cases of a small seed-bagged model (590 trees) took 36 s of a 1M-dispute night.

A tree's contributions to a row depend only on which way the row goes at each of the
tree's splits. Rows that go the same way at every split of a tree get the same
contributions from it, so :func:`tree_contributions` asks LightGBM for one tree at a time
(``start_iteration``), on one row of each distinct *pattern* of that tree, and spreads
the result to the rest. A pattern is read from the feature values binned by the tree's own
thresholds; missing values, values LightGBM reads as zero and each category of a
categorical feature get bins of their own, so rows that share a pattern always share
every decision (the patterns may split rows LightGBM would not: that costs time, never
exactness). SHAP values add over trees, so the sum is LightGBM's ``pred_contrib`` up to
the order of the floating-point additions.

:func:`tree_contributions_reference` is the plain call it must equal.

Asking LightGBM for one tree at a time still walks every leaf of the tree for every pattern
(its TreeSHAP is quadratic in the tree's depth per leaf). :class:`_LeafPaths` computes the
same values from the leaves instead: a leaf's share of a row's contributions depends only on
which of the features on the leaf's path the row *agrees* with (satisfies every split of
that feature on the path), a mask of a few bits. The distinct (leaf, mask) pairs of a slab
are few; each is valued once, as a Shapley value of the leaf's path with the paths' cover
fractions (the formula LightGBM's ``pred_contrib`` evaluates by extending and unwinding its
path). A row's way at every split is read with LightGBM's own decision rules (numerical:
``<=`` with the missing type's default way; categorical: the category's bit, NaN and
negative values to the right); each pattern's leaf so found is checked against LightGBM's
``pred_leaf``, and a tree where one differs is asked of LightGBM instead.
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from math import factorial

import lightgbm as lgb
import numpy as np
import pandas as pd

__all__ = ["tree_contributions", "tree_contributions_reference"]

#: Below this many rows the plain call is as fast: the per-tree calls cost about 0.3 ms each.
MIN_ROWS = 2000
#: Trees are evaluated in this many blocks (each by one thread at a time), rows in slabs of
#: this many (the blocks' partial sums: blocks x slab x features floats).
_BLOCKS = 4
_SLAB = 16_384
#: LightGBM reads values within this distance of 0 as zero (``kZeroThreshold``, the float ``1e-35f``).
_ZERO = float(np.float32(1e-35))
#: Trees of more splits than this (bits of a row's way at every split, in a uint64) or leaves
#: reading more features than that (Shapley weights as floats) are asked of LightGBM.
_MAX_SPLITS = 64
_MAX_PATH = 40
#: Categorical splits are read from a table of this many categories at most.
_MAX_CATEGORY = 1 << 20
#: Distinct (leaf, mask) pairs are found with a table of this many entries at most (else sorted).
_DENSE_PAIRS = 1 << 20
#: A pattern's mixed-radix key is renumbered before it could overflow int64.
_MAX_KEY = 2**62


def tree_contributions_reference(booster: lgb.Booster, matrix: np.ndarray, *, threads: int = 0) -> np.ndarray:
    """LightGBM's ``pred_contrib`` on every row and tree: (n, features + 1), bias last."""
    return booster.predict(matrix, pred_contrib=True, num_threads=threads)


def tree_contributions(booster: lgb.Booster, matrix: np.ndarray, *, threads: int = 0) -> np.ndarray:
    """:func:`tree_contributions_reference`, each tree evaluated on one row per pattern.

    Parameters
    ----------
    booster : lightgbm.Booster
        A model with one tree per iteration (binary or regression).
    matrix : ndarray of shape (n, features)
        The rows, as the booster predicts them.
    threads : int, default=0
        Blocks of trees evaluated at once (0: every core, at most 4); the result does not
        depend on it.

    Returns
    -------
    ndarray of shape (n, features + 1)
        Contributions per feature, the bias (expected value) last.
    """
    plan = _plan(booster)
    if plan is None or len(matrix) < MIN_ROWS:
        return tree_contributions_reference(booster, matrix, threads=threads)
    workers = max(1, min(threads if threads > 0 else _cores(), _BLOCKS))
    bias = matrix.shape[1]
    n_trees = len(plan.trees)
    blocks = [plan.trees[k * n_trees // _BLOCKS:(k + 1) * n_trees // _BLOCKS] for k in range(_BLOCKS)]

    def run(part: np.ndarray, codes: dict, sizes: dict, trees: list) -> np.ndarray:
        acc = np.zeros((bias + 1, len(part)))  # transposed: a tree adds to a few whole rows
        if not trees:
            return acc.T
        columns = np.ascontiguousarray(part.T, dtype=np.float64)
        tree_booster = spare.get()  # a copy no other thread is using
        try:
            leaves = tree_booster.predict(part, start_iteration=trees[0][0], num_iteration=len(trees),
                                          pred_leaf=True, num_threads=1).reshape(len(part), -1)
            for j, (i, splits, paths) in enumerate(trees):  # in the booster's order
                key, radix = np.zeros(len(part), dtype=np.int64), 1
                for f, lookup, size in splits:
                    bins, size = (codes[f], sizes[f]) if lookup is None else (lookup[codes[f]], size)
                    if radix * size >= _MAX_KEY:
                        _, key = np.unique(key, return_inverse=True)
                        radix = int(key.max()) + 1
                    key, radix = key * size + bins, radix * size
                inverse, first = _patterns(key)
                if paths is not None:
                    values, leaf = paths.contributions(columns, first)
                    if (leaf == leaves[first, j]).all():
                        acc[paths.features] += values.T[:, inverse]
                        acc[bias] += paths.expected
                        continue
                contrib = tree_booster.predict(part[first], start_iteration=i, num_iteration=1, pred_contrib=True,
                                               num_threads=1)
                used = [f for f, _, _ in splits] + [bias]
                acc[used] += contrib[:, used].T[:, inverse]
        finally:
            spare.put(tree_booster)
        return acc.T

    # slabs of rows, each through _BLOCKS blocks of trees (threads take blocks) summed in a fixed
    # order: a row's sum is the same whatever the threads and the other rows
    out = np.empty((len(matrix), bias + 1))
    clones = plan.take(workers)
    spare: queue.SimpleQueue = queue.SimpleQueue()
    for clone in clones:
        spare.put(clone)
    try:
        with ThreadPoolExecutor(workers) as pool:  # LightGBM's calls release the GIL
            for start in range(0, len(matrix), _SLAB):
                part = matrix[start:start + _SLAB]
                codes = {f: _global_codes(part[:, f], edges) for f, edges in plan.edges.items()}
                sizes = {f: int(c.max()) + 1 for f, c in codes.items() if plan.edges[f] is None}  # categorical
                sums = list(pool.map(run, [part] * _BLOCKS, [codes] * _BLOCKS, [sizes] * _BLOCKS, blocks))
                total = sums[0]
                for more in sums[1:]:
                    total += more
                out[start:start + _SLAB] = total
    finally:
        plan.give_back(clones)
    return out


class _Plan:
    """A booster's splits: per numerical feature, every threshold of any tree (``edges``);
    per tree, its features with a lookup from a row's global code to the tree's bin.

    The per-tree calls go to private copies of the booster, one per thread: LightGBM keeps
    the trees a prediction starts from in the booster itself, so a call for one tree must
    not meet any other call on the same booster (the caller's own, or another thread's)."""

    def __init__(self, model: str, edges: dict, trees: list):
        self.model, self.edges, self.trees = model, edges, trees
        self._spare: list[lgb.Booster] = []
        self._lock = threading.Lock()

    def take(self, n: int) -> list[lgb.Booster]:
        with self._lock:
            taken, self._spare = self._spare[:n], self._spare[n:]
        return taken + [lgb.Booster(model_str=self.model) for _ in range(n - len(taken))]

    def give_back(self, boosters: list[lgb.Booster]) -> None:
        with self._lock:
            self._spare.extend(boosters)


_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _plan(booster: lgb.Booster) -> _Plan | None:
    """The booster's :class:`_Plan` (computed once per booster), or ``None`` where the
    patterns do not apply (several trees per iteration, linear trees)."""
    known = _PLANS.get(booster, False)
    if known is None or (known and len(known.trees) == booster.num_trees()):  # (trees added since: again)
        return known
    dump, model = booster.dump_model(), booster.model_to_string()
    plan = None
    if dump.get("num_tree_per_iteration", 1) == 1 and "\nis_linear=1" not in model:
        splits = [_splits(t["tree_structure"]) for t in dump["tree_info"]]
        numeric: dict[int, set] = {}
        for tree in splits:
            for f, threshold in tree:
                if threshold is not None:
                    numeric.setdefault(f, set()).add(threshold)
        edges = {f: np.array(sorted(ts)) for f, ts in numeric.items()}
        # a feature split by category anywhere: bins of its values (edges None)
        edges.update({f: None for tree in splits for f, threshold in tree if threshold is None})
        trees = []
        for i, tree in enumerate(splits):
            per_feature: dict[int, set] = {}
            for f, threshold in tree:
                per_feature.setdefault(f, set()).add(threshold)
            trees.append((i, [(f, *_lookup(edges[f], ts)) for f, ts in sorted(per_feature.items())],
                          _LeafPaths.of(dump["tree_info"][i]["tree_structure"])))
        plan = _Plan(model, edges, trees)
    _PLANS[booster] = plan
    return plan


class _LeafPaths:
    """One tree's contributions from its leaves (see the module's docstring).

    A row reaches leaf ``l`` with weight ``prod_j (o_j if j is fixed else z_j)`` over the
    features ``j`` split on the leaf's path, where ``z_j`` is the share of the training rows
    that went the path's way at ``j``'s splits and ``o_j`` is 1 when the row goes that way
    at all of them (else 0). The leaf's value times that weight is a game over the path's
    features whose Shapley values are the leaf's share of the row's contributions; summed
    over the leaves they are path-dependent TreeSHAP's. Every leaf's path is padded to the
    tree's longest with null players (``z = o = 1``), which leaves the others' values as
    they are, so that all (leaf, mask) pairs are valued at once.
    """

    def __init__(self, nodes: list, leaves: list):
        self.expected = sum(v * c for v, c, _, _ in leaves) / nodes[0]["internal_count"]
        self.features = np.array(sorted({nd["split_feature"] for nd in nodes}))
        column = {f: c for c, f in enumerate(self.features)}
        n_leaves = len(leaves)
        paths = [_path_features(nodes, path) for _, _, _, path in leaves]
        self.width = width = max(len(p) for p in paths)
        self.values = np.array([v for v, _, _, _ in leaves])
        self.leaf_index = np.array([index for _, _, index, _ in leaves])
        self.slot_column = np.full((n_leaves, width), len(self.features))  # padding: a column dropped
        self.cover = np.ones((n_leaves, width))      # z per (leaf, slot)
        self.care = np.zeros((n_leaves, width), dtype=np.uint64)  # the splits a slot reads, as bits
        self.want = np.zeros((n_leaves, width), dtype=np.uint64)  # and the way the path went there
        for leaf, slots in enumerate(paths):
            for slot, (f, steps) in enumerate(slots.items()):
                self.slot_column[leaf, slot] = column[f]
                for k, went_left, share in steps:
                    self.cover[leaf, slot] *= share
                    self.care[leaf, slot] |= np.uint64(1 << k)
                    self.want[leaf, slot] |= np.uint64(int(went_left) << k)
        self.powers = np.int64(1) << np.arange(width, dtype=np.int64)
        self.weights = [factorial(k) * factorial(width - 1 - k) / factorial(width) for k in range(width)]
        self.bits = (np.uint64(1) << np.arange(len(nodes), dtype=np.uint64))[:, None]
        # the splits' decision rules (LightGBM's NumericalDecision and CategoricalDecision)
        self.split_column = np.array([column[nd["split_feature"]] for nd in nodes])
        numerical = np.array([nd["decision_type"] == "<=" for nd in nodes])
        self.numerical, self.categorical = np.flatnonzero(numerical), np.flatnonzero(~numerical)
        num = [nodes[k] for k in self.numerical]
        threshold = np.array([float(nd["threshold"]) for nd in num])
        missing = np.array([nd["missing_type"] for nd in num])
        default_left = np.array([bool(nd["default_left"]) for nd in num])
        self.threshold = threshold[:, None]
        # NaN reads as 0 unless missing values have their own way (as do zeros for "Zero")
        self.nan_left = np.where(missing == "None", 0.0 <= threshold, default_left)[:, None]
        self.zero_missing = (missing == "Zero")[:, None]
        self.default_left = default_left[:, None]
        tables = []
        for k in self.categorical:
            left = np.array([int(c) for c in str(nodes[k]["threshold"]).split("||")])
            table = np.zeros(left.max() + 2, dtype=bool)  # the last entry: every other value
            table[left] = True
            tables.append(table)
        sizes = np.array([len(t) - 1 for t in tables], dtype=np.int64)
        self.n_categories = sizes[:, None]
        self.table_start = (np.cumsum(sizes + 1) - (sizes + 1))[:, None]
        self.tables = np.concatenate(tables) if tables else np.zeros(0, dtype=bool)

    @classmethod
    def of(cls, root: dict) -> _LeafPaths | None:
        """The tree's leaf paths, or ``None`` where they do not apply (no split, too many
        splits or too long a path, a share of training rows that is not positive or not
        recorded, categories numbered past :data:`_MAX_CATEGORY`): that tree is asked of
        LightGBM."""
        nodes, leaves = [], []

        def walk(node: dict, path: list) -> None:
            if "split_feature" not in node:
                leaves.append((node["leaf_value"], node.get("leaf_count", 0), node.get("leaf_index", 0), path))
                return
            k = len(nodes)
            nodes.append(node)
            parent = node.get("internal_count", 0)
            for child, went_left in ((node["left_child"], True), (node["right_child"], False)):
                count = child.get("leaf_count", child.get("internal_count", 0))
                walk(child, [*path, (k, went_left, count / parent if parent > 0 else 0.0)])

        walk(root, [])
        if not nodes or len(nodes) > _MAX_SPLITS or any(share <= 0 for *_, path in leaves for *_, share in path):
            return None
        if any(nd["decision_type"] == "==" and max(int(c) for c in str(nd["threshold"]).split("||")) > _MAX_CATEGORY
               for nd in nodes):  # a table of categories that large: LightGBM's walk is cheaper
            return None
        if max(len(_path_features(nodes, path)) for *_, path in leaves) > _MAX_PATH:
            return None
        return cls(nodes, leaves)

    def ways(self, columns: np.ndarray) -> np.ndarray:
        """Whether each row (a column of ``columns``: the tree's features, float64) goes left
        at each split: (splits, rows)."""
        left = np.empty((len(self.split_column), columns.shape[1]), dtype=bool)
        if len(self.numerical):
            v = columns[self.split_column[self.numerical]]
            way = np.where(np.isnan(v), self.nan_left, v <= self.threshold)
            left[self.numerical] = np.where(self.zero_missing & (np.abs(v) <= _ZERO), self.default_left, way)
        if len(self.categorical):  # the value's integer part is its category; NaN and negatives go right
            v = columns[self.split_column[self.categorical]]
            other = ~((v > -1) & (v < self.n_categories))  # NaN too
            category = np.where(other, self.n_categories, v).astype(np.int64)
            left[self.categorical] = self.tables[self.table_start + category]
        return left

    def contributions(self, columns: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The tree's contributions to ``rows`` of ``columns`` (all features, transposed,
        float64): (rows, len(features)), and each row's leaf index."""
        n_leaves, width = self.cover.shape
        left = self.ways(columns[self.features][:, rows])
        way = np.bitwise_or.reduce(left * self.bits, axis=0)  # a row's way at every split, as bits
        # a padding slot reads no split: it agrees (a null player)
        agrees = (way & self.care[:, :, None]) == self.want[:, :, None]  # (leaves, slots, rows)
        masks = np.einsum("lsr,s->lr", agrees, self.powers)
        leaf = self.leaf_index[np.argmax(masks == (1 << width) - 1, axis=0)]
        keys = masks + (np.arange(n_leaves, dtype=np.int64) << width)[:, None]
        if n_leaves << width <= _DENSE_PAIRS:  # the distinct (leaf, mask) pairs, in order
            seen = np.zeros(n_leaves << width, dtype=bool)
            seen[keys] = True
            pairs = np.flatnonzero(seen)
            at = (np.cumsum(seen) - 1)[keys]
        else:
            pairs, at = np.unique(keys, return_inverse=True)
            at = at.reshape(keys.shape)
        pair_leaf = pairs >> width
        o = ((pairs[:, None] >> np.arange(width)) & 1).astype(np.float64)
        z = self.cover[pair_leaf]
        # the coefficients of prod_j (z_j + o_j t), then per slot s those of the product
        # without s (divided out from the top: stable, as z <= 1): the weight of the subsets
        # of the other features fixed, by their size
        whole = np.zeros((len(pairs), width + 1))
        whole[:, 0] = 1.0
        for j in range(width):
            whole[:, 1:] = whole[:, 1:] * z[:, j:j + 1] + whole[:, :-1] * o[:, j:j + 1]
            whole[:, 0] *= z[:, j]
        fixed = o == 1
        shapley = np.zeros((len(pairs), width))
        quotient = np.zeros((len(pairs), width))
        for k in range(width, 0, -1):  # fixed slots (z + t): the quotient's coefficient of t**(k - 1)
            quotient = whole[:, k:k + 1] - z * quotient
            shapley += quotient * self.weights[k - 1]
        if not fixed.all():  # the others (z): the product divided by z
            rest = whole[:, :1] * self.weights[0]
            for k in range(1, width):
                rest = rest + whole[:, k:k + 1] * self.weights[k]
            shapley = np.where(fixed, shapley, rest / z)
        phi = self.values[pair_leaf][:, None] * (o - z) * shapley
        per_pair = np.zeros((len(pairs), len(self.features) + 1))
        np.put_along_axis(per_pair, self.slot_column[pair_leaf], phi, axis=1)
        out = per_pair[at[0]]
        for leaf_at in at[1:]:  # summed leaf by leaf: the same bits whatever the other rows
            out += per_pair[leaf_at]
        return out[:, :-1], leaf


def _patterns(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's pattern number and the first row of each pattern (hashed: the numbering
    follows the rows' order, the values computed per pattern do not)."""
    inverse, uniques = pd.factorize(key)
    first = np.empty(len(uniques), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(key) - 1, -1, -1)
    return inverse, first


def _path_features(nodes: list, path: list) -> dict:
    """A leaf's path by feature: ``{feature: [(split, went_left, share of rows), ...]}``."""
    by_feature: dict[int, list] = {}
    for k, went_left, share in path:
        by_feature.setdefault(nodes[k]["split_feature"], []).append((k, went_left, share))
    return by_feature


def _splits(node: dict) -> list[tuple[int, float | None]]:
    """Every split of a tree: (feature, threshold), threshold ``None`` for a categorical split."""
    if "split_feature" not in node:
        return []
    threshold = float(node["threshold"]) if node["decision_type"] == "<=" else None
    return [(node["split_feature"], threshold), *_splits(node["left_child"]), *_splits(node["right_child"])]


def _global_codes(values: np.ndarray, edges: np.ndarray | None) -> np.ndarray:
    """A feature's code per row. Numerical (``edges``, every threshold of the booster): how
    many thresholds lie below the value, offset by ``len(edges) + 1`` for values LightGBM
    reads as zero, ``2 * (len(edges) + 1)`` where missing. Categorical: the value's rank."""
    values = np.asarray(values, dtype=np.float64)
    if edges is None:
        return np.unique(values, return_inverse=True)[1].ravel()  # NaN last, one code
    codes = np.searchsorted(edges, values, side="left")
    codes[np.abs(values) <= _ZERO] += len(edges) + 1
    codes[np.isnan(values)] = 2 * (len(edges) + 1)
    return codes


def _lookup(edges: np.ndarray | None, thresholds: set) -> tuple[np.ndarray | None, int]:
    """From a global code (:func:`_global_codes`) to the tree's bin, and the number of bins:
    the thresholds of this tree below the value, in the same three ranges. Categorical
    (``edges`` None): ``None``, the code is the bin."""
    if edges is None:
        return None, 0
    mine = np.isin(edges, np.array(sorted(thresholds)))
    below = np.concatenate([[0], np.cumsum(mine)])  # len(edges) + 1 entries
    width = int(below[-1]) + 1
    lookup = np.concatenate([below, below + width, [2 * width]])
    return lookup, 2 * width + 1


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
