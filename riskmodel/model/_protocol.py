"""How :class:`~riskmodel.RiskModel` trains (``protocol="forward"``): size-aware LightGBM
defaults, forward-chaining time folds, the number of boosting rounds chosen on them, and
their out-of-fold predictions for the calibrator.

The folds
---------
Rows are ordered by ``as_of`` (a date is never split). The earliest
:data:`MIN_TRAIN_FRACTION` of the rows only ever train; the rest is cut into ``n_folds``
consecutive validation blocks of equal size. Fold ``k`` validates on block ``k`` and trains
on every row whose ``as_of`` is at least ``gap`` (the labels' horizon) before the block
starts, so no training label looks into the validation period: the same distance in time
that separates the final model's last complete label from tonight. A fold whose training
rows hold fewer than :data:`MIN_FOLD_POSITIVES` positives (or negatives) is skipped. When no
time fold can be made (a single ``as_of``, or too short a history for the gap), the folds
group the rows by entity instead (every row of an entity in one fold), and say so.

The rounds
----------
Each fold is boosted with early stopping on its validation block's log loss; the curves,
weighted by validation rows, are averaged and the number of rounds (and, given a grid, the
number of leaves) with the lowest mean loss is chosen. Every fold model is then brought to
exactly that many rounds, so the out-of-fold predictions come from models of the final
model's size, and the final model is grown on all rows.

Seed bagging
------------
Below :data:`RANDOM_TREES_POSITIVES` positives the trees draw features and split thresholds
at random (:func:`size_aware_params`), and with few positives one draw is a noisy model.
Below :data:`BAGGING_POSITIVES` positives the protocol grows :data:`BAGGING_SEEDS` models
that differ only in LightGBM's seed (:func:`bagging_seeds`), in every fold and for the final
model: the rounds are chosen on the mean curve of all of them, the out-of-fold predictions
are their mean log-odds, and the final model is one booster holding every member's trees
with its leaf values divided by the number of members (:func:`average_boosters`), so
scoring, exact SHAP reasons and saved models work as for a single one (with that many
times the trees). Simulated cities (``benchmarks/bench_quality.py``), 5 members against one:

* 30 cities of 3,000 disputes (290 to 550 training positives): AUC +0.0013 on average (95%
  interval -0.0005 to +0.0031, better in 19 of 30), Brier score lower in 23 of 30 and log
  loss in 24 of 30 (both intervals below 0), for about 5 times the (small) LightGBM time;
* 8 cities of 10,000 disputes (1,100 to 1,500 positives): Brier score lower in 7 of 8, but
  AUC lower in 7 of 8 (-0.0008 on average, interval -0.0030 to +0.0013): hence the
  threshold, which leaves these models as they were;
* 5 drifting cities of 10,000 disputes (760 to 1,120 positives): AUC +0.0029 (-0.0025 to
  +0.0084, better in 4 of 5), Brier score lower in 5 of 5.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from .._errors import DataWarning
from ..data import ns_values
from ._calibration import effective_count

__all__ = ["BAGGING_POSITIVES", "BAGGING_SEEDS", "Fold", "MIN_FOLD_POSITIVES", "MIN_TRAIN_FRACTION",
           "RANDOM_TREES_POSITIVES",
           "average_boosters", "bagging_seeds", "calibration_weights", "cross_fit", "forward_folds",
           "predict_mean", "search_params", "size_aware_params", "small_data_notes", "warn_small_data"]

#: The earliest share of the rows that only ever trains.
MIN_TRAIN_FRACTION = 0.4
#: A fold needs this many positives and negatives among its training rows.
MIN_FOLD_POSITIVES = 5
#: The calibration weights' half-life grows until the effective positives reach this.
MIN_CALIBRATION_POSITIVES = 100
#: Below these, tier thresholds and drift figures are mostly noise: say so at fit.
SMALL_REFERENCE_ROWS = 2000
SMALL_REFERENCE_POSITIVES = 30
#: Below this many positives the trees draw features and thresholds at random (size_aware_params).
RANDOM_TREES_POSITIVES = 2000
#: Below this many positives the protocol seed-bags (``seed_bagging="auto"``) ...
BAGGING_POSITIVES = 1000
#: ... with this many members.
BAGGING_SEEDS = 5


@dataclass
class Fold:
    """One fold: boolean masks over the rows, and what kind of fold it is."""

    name: str
    train: np.ndarray
    valid: np.ndarray
    kind: str  # "time" or "entity"
    block: int = 0

    def describe(self, as_of: pd.Series, y: np.ndarray) -> dict:
        def span(mask):
            return [str(as_of[mask].min()), str(as_of[mask].max())] if mask.any() else [None, None]

        return {"fold": self.name, "kind": self.kind,
                "train_rows": int(self.train.sum()), "train_positives": int(y[self.train].sum()),
                "train_as_of": span(self.train),
                "valid_rows": int(self.valid.sum()), "valid_positives": int(y[self.valid].sum()),
                "valid_as_of": span(self.valid)}


def size_aware_params(n_rows: int, n_positive: int) -> dict:
    """LightGBM settings that follow the data's size.

    A leaf should hold a few expected positives (``3 / base rate`` rows), but never more
    than 2% of the rows, within [10, 100]; trees have about one leaf per 25 positives,
    within [4, 15]; the L2 penalty on leaf values grows with the positives, within [1, 5].
    The (strongly correlated) features are sampled: below 2,000 positives each tree sees
    half of them and draws its split thresholds at random (``extra_trees``: +0.005 to
    +0.01 AUC on simulated cities of 3,000 and 10,000 disputes); from 2,000 positives on,
    each node chooses among half of them, with exact thresholds (+0.001 AUC and a lower
    log loss on 5 of 5 simulated cities of 50,000 disputes, within the seed noise at
    20,000 and 30,000, at about the same fit time: a per-tree draw gains as much but
    costs LightGBM's row-wise histograms about 50% more time; ``benchmarks/bench_quality.py``).

    >>> size_aware_params(230_000, 10_000)["min_child_samples"], size_aware_params(1_300, 50)["num_leaves"]
    (69, 4)
    >>> [size_aware_params(n, n // 25)["feature_fraction_bynode"] for n in (30_000, 300_000)]
    [1.0, 0.5]
    """
    n_rows, n_positive = max(int(n_rows), 1), max(int(n_positive), 1)
    rate = n_positive / n_rows
    min_leaf = int(np.clip(min(3.0 / rate, n_rows / 50.0), 10, 100))
    small = n_positive < RANDOM_TREES_POSITIVES
    return {
        "feature_fraction": 0.5 if small else 1.0,
        "feature_fraction_bynode": 1.0 if small else 0.5,
        "extra_trees": small,
        "min_child_samples": min_leaf,
        "min_data_per_group": int(min(50, min_leaf)),
        "num_leaves": int(np.clip(n_positive // 25, 4, 15)),
        "lambda_l2": float(np.clip(n_positive / 200.0, 1.0, 5.0)),
    }


def _entity_folds(entity, n_folds: int, seed: int, y: np.ndarray) -> list[Fold]:
    codes, uniques = pd.factorize(pd.Series(entity), sort=True)
    k = max(2, min(int(n_folds), len(uniques)))
    perm = np.random.default_rng(seed).permutation(len(uniques))
    fold_of = np.empty(len(uniques), dtype=np.int64)
    fold_of[perm] = np.arange(len(uniques)) % k
    row_fold = fold_of[codes]
    folds = []
    for j in range(k):
        valid = row_fold == j
        fold = Fold(f"entity-{j + 1}", ~valid, valid, "entity", block=j)
        if _trainable(fold, y):
            folds.append(fold)
    return folds


def _trainable(fold: Fold, y: np.ndarray) -> bool:
    yt = y[fold.train]
    return bool(fold.valid.any() and yt.sum() >= MIN_FOLD_POSITIVES and (1 - yt).sum() >= MIN_FOLD_POSITIVES)


def forward_folds(as_of: pd.Series, y: np.ndarray, entity, *, n_folds: int, gap: pd.Timedelta | None,
                  seed: int = 0) -> tuple[list[Fold], list[str]]:
    """The folds (see the module notes) and notes on what was skipped or replaced."""
    notes: list[str] = []
    t = ns_values(as_of)
    dates, counts = np.unique(t, return_counts=True)
    gap_ns = 0 if gap is None else int(pd.Timedelta(gap).value)
    folds: list[Fold] = []
    if len(dates) >= 2:
        share_before = (np.cumsum(counts) - counts) / counts.sum()
        edges = MIN_TRAIN_FRACTION + (1 - MIN_TRAIN_FRACTION) * np.arange(n_folds) / n_folds
        block_of_date = (share_before[:, None] >= edges[None, :] - 1e-12).sum(axis=1) - 1  # -1: training only
        block = block_of_date[np.searchsorted(dates, t)]
        for j in range(n_folds):
            valid = block == j
            if not valid.any():
                continue
            start = t[valid].min()
            fold = Fold(f"time-{j + 1}", t < start - gap_ns, valid, "time", block=j)
            if _trainable(fold, y):
                folds.append(fold)
            else:
                notes.append(f"fold time-{j + 1} skipped: its training rows (as_of before "
                             f"{pd.Timestamp(start - gap_ns)}) hold {int(y[fold.train].sum())} positive(s) and "
                             f"{int((1 - y[fold.train]).sum())} negative(s); it needs {MIN_FOLD_POSITIVES} of each.")
    if not folds:
        why = "as_of has a single value" if len(dates) < 2 else "no time fold has enough training rows"
        folds = _entity_folds(entity, n_folds, seed, y)
        notes.append(f"{why}: {len(folds)} folds by entity instead (the rows of an entity stay together); "
                     "the calibrator then does not follow drift.")
    return folds, notes


def calibration_weights(as_of: pd.Series, rows: np.ndarray, y: np.ndarray, half_life: str | None,
                        latest_span: pd.Timedelta) -> tuple[np.ndarray, str | None]:
    """Weights of the out-of-fold ``rows``: ``0.5 ** (age / half_life)``, age from the latest row.

    ``half_life="auto"`` starts at the span of the latest validation block and doubles
    until the effective positives reach :data:`MIN_CALIBRATION_POSITIVES` (or the weights
    are nearly flat); ``None`` gives equal weights. Returns the weights and the half-life used.
    """
    t = ns_values(as_of)[rows].astype(float)
    if half_life is None or len(t) == 0:
        return np.ones(len(t)), None
    age_days = (t.max() - t) / 86_400e9
    span_days = max(float(age_days.max()), 1.0)
    if half_life == "auto":
        hl = max(latest_span / pd.Timedelta(days=1), 1.0)
        target = min(MIN_CALIBRATION_POSITIVES, 0.5 * float(y[rows].sum()))
        while True:
            w = 0.5 ** (age_days / hl)
            if effective_count(w * y[rows]) >= target or hl >= 8 * span_days:
                break
            hl *= 2
    else:
        hl = pd.Timedelta(half_life) / pd.Timedelta(days=1)
        w = 0.5 ** (age_days / hl)
    return w, f"{hl:.0f}D"


def _fresh(full: lgb.Dataset, mask: np.ndarray) -> lgb.Dataset:
    # a new subset per booster: LightGBM results depend on a Dataset's history
    return full.subset(np.flatnonzero(mask).astype(np.int32))


def bagging_seeds(random_state: int, n: int) -> list[int]:
    """LightGBM seeds of ``n`` bagged members: ``random_state`` first (one member is the
    unbagged model), then ``n - 1`` drawn from :class:`numpy.random.SeedSequence`.

    >>> bagging_seeds(7, 1), len(set(bagging_seeds(7, 5))), bagging_seeds(7, 3) == bagging_seeds(7, 3)
    ([7], 5, True)
    """
    more = np.random.SeedSequence(int(random_state)).generate_state(max(int(n) - 1, 0), dtype=np.uint32)
    return [int(random_state)] + [int(v % (2**31 - 1)) for v in more]


def average_boosters(boosters: list) -> lgb.Booster:
    """One booster whose raw score (log-odds) is the mean of the ``boosters``' raw scores.

    The members must come from the same training data (same features and bins). Their trees
    are put one after another with every leaf (and internal node) value divided by the
    number of members; TreeSHAP being additive over trees, the contributions of the result
    are the mean of the members' contributions. One booster is returned as it is.
    """
    if len(boosters) == 1:
        return boosters[0]
    k = len(boosters)
    texts = [b.model_to_string() for b in boosters]
    first = texts[0]
    start, end = first.index("\nTree=") + 1, first.index("end of trees")
    header = "\n".join(line for line in first[:start].split("\n") if not line.startswith("tree_sizes="))
    trees = []
    for text in texts:
        body = text[text.index("\nTree=") + 1:text.index("end of trees")]
        for block in body.split("Tree=")[1:]:
            lines = block.strip("\n").split("\n")[1:]  # drop the tree's number
            for i, line in enumerate(lines):
                key, _, values = line.partition("=")
                if key in ("leaf_value", "internal_value"):
                    lines[i] = key + "=" + " ".join(repr(float(v) / k) for v in values.split(" "))
            trees.append(f"Tree={len(trees)}\n" + "\n".join(lines) + "\n")
    return lgb.Booster(model_str=header + "\n" + "\n\n".join(trees) + "\n\n" + first[end:])


def predict_mean(boosters: list, X, num_iteration: int) -> np.ndarray:
    """Probability of the mean raw score of ``boosters`` (each cut at ``num_iteration``);
    one booster's own probability when there is one."""
    if len(boosters) == 1:
        return boosters[0].predict(X, num_iteration=num_iteration)
    z = np.mean([b.predict(X, num_iteration=num_iteration, raw_score=True) for b in boosters], axis=0)
    return 1.0 / (1.0 + np.exp(-z))


@dataclass
class CrossFit:
    """What :func:`cross_fit` found."""

    num_leaves: int
    n_rounds: int
    boosters: list  # per fold, one booster per seed, each with at least n_rounds trees
    curves: dict  # num_leaves -> mean validation log loss per round
    hit_cap: bool


def cross_fit(params: dict, full: lgb.Dataset, folds: list[Fold], *, n_estimators: int, patience: int,
              leaves_grid: list[int], seeds: list[int] | None = None) -> CrossFit:
    """Boost every fold for every tree size (and every seed of ``seeds``, default: the one in
    ``params``); choose leaves and rounds on the mean curve over folds and seeds."""
    seeds = [params.get("seed", 0)] if seeds is None else list(seeds)
    results = {}
    for leaves in leaves_grid:
        p = {**params, "num_leaves": int(leaves), "metric": "binary_logloss"}
        boosters, curves, weights = [], [], []
        for fold in folds:
            members = []
            for seed in seeds:
                record: dict = {}
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    booster = lgb.train(
                        {**p, "seed": seed}, _fresh(full, fold.train), num_boost_round=n_estimators,
                        valid_sets=[_fresh(full, fold.valid)], valid_names=["valid"],
                        callbacks=[lgb.record_evaluation(record), lgb.early_stopping(patience, verbose=False)],
                        keep_training_booster=True,
                    )
                members.append(booster)
                curves.append(np.asarray(record["valid"]["binary_logloss"], dtype=float))
                weights.append(float(fold.valid.sum()))
            boosters.append(members)
        length = max(len(c) for c in curves)
        padded = np.stack([np.r_[c, np.full(length - len(c), c[-1])] for c in curves])
        mean = np.average(padded, axis=0, weights=weights)
        results[int(leaves)] = (boosters, mean)
    best = min(results, key=lambda k: (results[k][1].min(), k))
    boosters, mean = results[best]
    n_rounds = int(np.argmin(mean)) + 1
    for booster in (b for members in boosters for b in members):  # bring every fold model to n_rounds trees
        while booster.current_iteration() < n_rounds:
            booster.update()
    return CrossFit(num_leaves=best, n_rounds=n_rounds, boosters=boosters,
                    curves={k: v[1].tolist() for k, v in results.items()}, hit_cap=n_rounds >= n_estimators)


def search_params(params: dict, full: lgb.Dataset, folds: list[Fold], *, n_estimators: int, patience: int,
                  budget_s: float, n_trials: int, seed: int,
                  seeds: list[int] | None = None) -> tuple[dict, CrossFit, dict]:
    """Hyperparameter search (Optuna's TPE sampler, seeded) on the same folds (each trial
    grows a model per seed of ``seeds``, as :func:`cross_fit`).

    The first trial is ``params`` as given (the size-aware defaults), so the search never
    ends worse on the folds than no search; each trial's score is the lowest mean
    validation log loss over rounds (:func:`cross_fit`). Stops after ``n_trials`` or
    ``budget_s`` seconds, whichever comes first (only the first is deterministic).

    Returns the best parameters, their :class:`CrossFit` and a summary.
    """
    try:
        import optuna
    except ImportError:  # pragma: no cover - depends on the environment
        from .._errors import ConfigError

        raise ConfigError("search_budget needs optuna: pip install 'riskmodel[search]'.") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"num_leaves": int(params["num_leaves"]), "min_child_samples": int(params["min_child_samples"]),
             "lambda_l2": float(params["lambda_l2"]), "feature_fraction": float(params["feature_fraction"])}
    best: dict = {}

    def objective(trial) -> float:
        trial_params = {
            **params,
            "num_leaves": trial.suggest_int("num_leaves", 4, 31),
            "min_child_samples": trial.suggest_int("min_child_samples", 10, 300, log=True),
            "lambda_l2": trial.suggest_float("lambda_l2", 0.1, 30.0, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.3, 1.0),
        }
        trial_params["min_data_per_group"] = min(50, trial_params["min_child_samples"])
        cf = cross_fit(trial_params, full, folds, n_estimators=n_estimators, patience=patience,
                       leaves_grid=[trial_params["num_leaves"]], seeds=seeds)
        loss = float(min(cf.curves[cf.num_leaves]))
        if not best or loss < best["loss"]:
            best.update(loss=loss, params=trial_params, cf=cf, trial=trial.number)
        return loss

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial(space)
    start = time.perf_counter()
    study.optimize(objective, n_trials=int(n_trials), timeout=float(budget_s))
    elapsed = time.perf_counter() - start
    summary = {
        "trials": len(study.trials), "seconds": round(elapsed, 1), "budget_s": float(budget_s),
        "stopped_by": "trials" if len(study.trials) >= n_trials else "budget",
        "default_loss": float(study.trials[0].value), "best_loss": best["loss"], "best_trial": best["trial"],
        "best": {k: best["params"][k] for k in space},
    }
    return best["params"], best["cf"], summary


def small_data_notes(*, n_rows: int, n_positive: int, n_reference: int, n_reference_positive: int,
                     red: float | None, n_features: int) -> list[str]:
    """What the data is too small for, with the numbers (empty when it is not)."""
    notes = []
    if n_reference < SMALL_REFERENCE_ROWS or n_reference_positive < SMALL_REFERENCE_POSITIVES:
        red_rows = "" if red is None else f"; a {red:.0%} red share of it is {int(math.floor(red * n_reference))} rows"
        notes.append(
            f"tiers: the reference population (the latest out-of-fold rows) is {n_reference:,} rows with "
            f"{n_reference_positive:,} positive(s){red_rows}: thresholds set from it (share, precision) and hit "
            f"rates are noisy; below {SMALL_REFERENCE_ROWS:,} rows or {SMALL_REFERENCE_POSITIVES} positives, "
            "prefer share tiers applied to each night's disputes (the nightly scoring, riskmodel score or "
            "score_batch, applies them)."
        )
    if n_reference < SMALL_REFERENCE_ROWS:
        noise = 10 * (1 / max(n_reference, 1) + 1 / 500)
        notes.append(
            f"drift: the reference holds {n_reference:,} rows; between two samples this small the PSI of a "
            f"{n_features}-feature model is noise of about {noise:.2f} per feature for a night of 500 disputes "
            "(10 bins), close to the watch level 0.1: read drift statuses as indicative only."
        )
    if n_positive < 200:
        notes.append(f"model: {n_rows:,} cutoffs with {n_positive} positive(s); fold-to-fold AUC spread is wide "
                     "and the trees are kept small (size-aware defaults).")
    return notes


def warn_small_data(notes: list[str]) -> None:
    if notes:
        warnings.warn("data too small for some outputs to mean much: " + " | ".join(notes), DataWarning,
                      stacklevel=3)

