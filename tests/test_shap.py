"""The per-pattern TreeSHAP (``model._shap``) against LightGBM's own ``pred_contrib``."""

import lightgbm as lgb
import numpy as np
import pytest

from riskmodel.model._shap import MIN_ROWS, tree_contributions, tree_contributions_reference


def _data(n=4000, seed=0):
    """Counts with many ties, a continuous column, zeros, values LightGBM reads as zero,
    missing values and a categorical column: every way a value meets a split."""
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.poisson(2, n).astype(float),                       # small counts: many ties
        rng.normal(size=n),                                    # continuous
        np.where(rng.random(n) < 0.3, 0.0, rng.exponential(30, n)),  # zeros
        np.where(rng.random(n) < 0.2, np.nan, rng.integers(0, 400, n).astype(float)),  # missing
        rng.integers(0, 7, n).astype(float),                   # categorical
        np.where(rng.random(n) < 0.5, 1e-36, rng.normal(size=n)),  # "zero" to LightGBM
    ])
    X[rng.random(n) < 0.05, 4] = np.nan
    logit = 0.6 * X[:, 0] - 0.02 * np.nan_to_num(X[:, 3], nan=200) + (X[:, 4] == 3) + X[:, 1] - 0.01 * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def _booster(params=None, rounds=60, seed=0):
    X, y = _data(seed=seed)
    params = {"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": seed,
              **(params or {})}
    return lgb.train(params, lgb.Dataset(X, y, categorical_feature=[4]), rounds), X


@pytest.mark.parametrize("params", [
    {},
    {"zero_as_missing": True},
    {"use_missing": False},
    {"num_leaves": 63, "min_data_in_leaf": 1, "max_cat_to_onehot": 8},
])
@pytest.mark.parametrize("threads", [1, 2])
def test_tree_contributions_equal_lightgbms_pred_contrib(params, threads):
    booster, X = _booster(params)
    rows = np.random.default_rng(1).choice(len(X), MIN_ROWS + 500)  # repeated rows too
    expected = tree_contributions_reference(booster, X[rows])
    got = tree_contributions(booster, X[rows], threads=threads)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    assert (got[:, :-1].argmax(axis=1) == expected[:, :-1].argmax(axis=1)).all()


@pytest.mark.parametrize("slab", [1000, 16_384])
def test_the_threads_do_not_change_a_single_bit(slab, monkeypatch):
    """Threads take blocks of trees whose sums are added in a fixed order: one thread or three
    give the same bits (the nightly outputs do not depend on --threads), and a row's
    contributions do not depend on the other rows (in its slab, or in the others)."""
    import riskmodel.model._shap

    monkeypatch.setattr(riskmodel.model._shap, "_SLAB", slab)
    booster, X = _booster({"num_leaves": 31})
    rows = np.random.default_rng(2).choice(len(X), 3 * MIN_ROWS + 17)
    one = tree_contributions(booster, X[rows], threads=1)
    np.testing.assert_array_equal(tree_contributions(booster, X[rows], threads=3), one)
    np.testing.assert_array_equal(tree_contributions(booster, X[rows[::-1]], threads=2), one[::-1])


def test_tree_contributions_on_new_values_and_float32():
    """Rows the model never saw (values beyond every threshold, new categories) in float32."""
    booster, X = _booster()
    other, _ = _data(n=MIN_ROWS + 100, seed=7)
    other[:50, 0] = 1e6
    other[50:100, 4] = 40.0  # a category unseen in training
    other[100:150, 1] = -np.inf
    other = other.astype(np.float32)
    np.testing.assert_allclose(tree_contributions(booster, other), tree_contributions_reference(booster, other),
                               rtol=1e-9, atol=1e-12)


def test_the_callers_booster_still_predicts_every_tree():
    """The per-tree calls go to private copies: the booster itself keeps predicting with
    all its trees, also from another thread during the call."""
    import threading

    booster, X = _booster()
    full = booster.predict(X, num_threads=1)
    seen = []
    worker = threading.Thread(target=lambda: seen.extend(booster.predict(X, num_threads=1) for _ in range(20)))
    worker.start()
    tree_contributions(booster, X[: MIN_ROWS + 10], threads=2)
    worker.join()
    np.testing.assert_array_equal(booster.predict(X, num_threads=1), full)
    for p in seen:
        np.testing.assert_array_equal(p, full)


def test_few_rows_linear_trees_and_several_trees_per_iteration_take_the_plain_call():
    booster, X = _booster()
    few = X[:10]
    np.testing.assert_array_equal(tree_contributions(booster, few), tree_contributions_reference(booster, few))
    rng = np.random.default_rng(3)
    y3 = rng.integers(0, 3, len(X))
    multi = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_leaves": 7},
                      lgb.Dataset(X, y3), 5)
    np.testing.assert_allclose(tree_contributions(multi, X), tree_contributions_reference(multi, X))
    Xl = np.nan_to_num(X[:, :4])
    linear = lgb.train({"objective": "regression", "linear_tree": True, "verbose": -1, "num_leaves": 7},
                       lgb.Dataset(Xl, Xl[:, 0] + Xl[:, 1] * 2), 5)
    try:
        expected = tree_contributions_reference(linear, Xl)
    except lgb.basic.LightGBMError:  # LightGBM refuses contributions of linear trees: so do we
        with pytest.raises(lgb.basic.LightGBMError):
            tree_contributions(linear, Xl)
    else:
        np.testing.assert_allclose(tree_contributions(linear, Xl), expected)


def test_leaf_paths_read_every_value_as_lightgbm_does(monkeypatch):
    """The leaves' own computation reads a row's way at each split with LightGBM's rules:
    categories given as fractions, negative values, -0.5 (category 0 to LightGBM), huge and
    infinite values, NaN; numbers at a threshold, next to it, and within 1e-35 of zero."""
    from riskmodel.model._shap import _plan

    booster, X = _booster({"num_leaves": 31, "zero_as_missing": True})
    plan = _plan(booster)
    assert all(paths is not None for _, _, paths in plan.trees)  # every tree by its leaves
    rng = np.random.default_rng(5)
    odd = X[rng.choice(len(X), MIN_ROWS + 300)].copy()
    n = len(odd)
    odd[:, 4] = rng.choice([np.nan, -0.5, -1.0, -3.0, 0.0, 2.7, 3.0, 3.99, 6.0, 1e10, np.inf, 40.0], n)
    thresholds = plan.edges[1]  # every threshold of the continuous column
    odd[: n // 2, 1] = rng.choice(thresholds, n // 2)
    odd[n // 2:, 1] = np.nextafter(rng.choice(thresholds, n - n // 2), np.inf)
    near_zero = rng.random(n) < 0.2  # each value at LightGBM's zero edge, on many rows
    odd[near_zero, 5] = rng.choice([1e-35, -1e-35, 1.0000000180025095e-35, 1.1e-35, 0.0], int(near_zero.sum()))
    expected = tree_contributions_reference(booster, odd)
    asked = []  # no tree may need LightGBM's own per-tree call (its leaf check would hide a wrong rule)
    predict = lgb.Booster.predict
    monkeypatch.setattr(lgb.Booster, "predict", lambda self, *a, **kw: asked.append(kw) or predict(self, *a, **kw))
    np.testing.assert_allclose(tree_contributions(booster, odd), expected, rtol=1e-9, atol=1e-12)
    assert asked and not [kw for kw in asked if kw.get("pred_contrib")]


def test_a_tree_whose_leaves_disagree_with_lightgbm_is_asked_of_lightgbm(monkeypatch):
    """Each pattern's leaf is checked against LightGBM's ``pred_leaf``: were the decision
    rules wrong (here: every row said to go left), the tree's values come from LightGBM."""
    from riskmodel.model import _shap

    booster, X = _booster()
    rows = X[: MIN_ROWS + 100]
    expected = tree_contributions_reference(booster, rows)
    monkeypatch.setattr(_shap._LeafPaths, "ways",
                        lambda self, columns: np.ones((len(self.split_column), columns.shape[1]), dtype=bool))
    np.testing.assert_allclose(tree_contributions(booster, rows), expected, rtol=1e-9, atol=1e-12)
