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
"""

from __future__ import annotations

import os
import queue
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

import lightgbm as lgb
import numpy as np

__all__ = ["tree_contributions", "tree_contributions_reference"]

#: Below this many rows the plain call is as fast: the per-tree calls cost about 0.3 ms each.
MIN_ROWS = 2000
#: Trees are evaluated in this many blocks (each by one thread at a time), rows in slabs of
#: this many (the blocks' partial sums: blocks x slab x features floats).
_BLOCKS = 4
_SLAB = 16_384
#: LightGBM reads values within this distance of 0 as zero (``kZeroThreshold``).
_ZERO = 1e-35
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
        acc = np.zeros((len(part), bias + 1))
        tree_booster = spare.get()  # a copy no other thread is using
        try:
            for i, splits in trees:  # in the booster's order
                key, radix = np.zeros(len(part), dtype=np.int64), 1
                for f, lookup, size in splits:
                    bins, size = (codes[f], sizes[f]) if lookup is None else (lookup[codes[f]], size)
                    if radix * size >= _MAX_KEY:
                        _, key = np.unique(key, return_inverse=True)
                        radix = int(key.max()) + 1
                    key, radix = key * size + bins, radix * size
                _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
                contrib = tree_booster.predict(part[first], start_iteration=i, num_iteration=1, pred_contrib=True,
                                               num_threads=1)
                used = [f for f, _, _ in splits] + [bias]
                acc[:, used] += contrib[:, used][inverse.ravel()]
        finally:
            spare.put(tree_booster)
        return acc

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
    dump = booster.dump_model()
    plan = None
    if dump.get("num_tree_per_iteration", 1) == 1 and not any(t.get("is_linear") for t in dump["tree_info"]):
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
            trees.append((i, [(f, *_lookup(edges[f], ts)) for f, ts in sorted(per_feature.items())]))
        plan = _Plan(booster.model_to_string(), edges, trees)
    _PLANS[booster] = plan
    return plan


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
