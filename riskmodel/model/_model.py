"""The risk model: features -> LightGBM -> calibrated probability -> tiers -> reasons."""

from __future__ import annotations

import difflib
import functools
import math
import time
import warnings
from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import roc_auc_score

from .._errors import ConfigError, DataError, DataWarning, ModelError, NotFittedError
from ..data import EventSchema, decimal_text, parse_duration, validate_cutoffs
from ..features import FeatureBuilder, prepare_events
from ._calibration import Calibrator
from ._protocol import (
    BAGGING_POSITIVES,
    BAGGING_SEEDS,
    MIN_FOLD_POSITIVES,
    average_boosters,
    bagging_seeds,
    calibration_weights,
    cross_fit,
    forward_folds,
    predict_mean,
    search_params,
    size_aware_params,
    small_data_notes,
    warn_small_data,
)
from ._reasons import ReasonWriter, top_reasons
from ._shap import tree_contributions
from ._tiers import TIERS, TierPolicy

__all__ = ["Calibrator", "RiskModel", "DEFAULT_LGBM_PARAMS", "time_split"]

#: LightGBM defaults: small trees (cheap exact SHAP for reasons), strong regularisation for
#: rare positives, deterministic. No class re-weighting: it would distort probabilities.
DEFAULT_LGBM_PARAMS: dict = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 15,
    "min_child_samples": 100,
    "min_sum_hessian_in_leaf": 1.0,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "cat_smooth": 20.0,
    "min_data_per_group": 50,
    "max_bin": 255,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 2,
}


#: LightGBM parameters the model sets itself (``lgbm_params`` may not): the objective
#: (``"binary"`` allowed) and the categorical columns, with their aliases.
_OBJECTIVE = ("objective", "objective_type", "app", "application", "loss")
_OWNED_PARAMS = frozenset(_OBJECTIVE + ("num_class", "num_classes", "categorical_feature", "cat_feature",
                                       "categorical_column", "cat_column", "categorical_features"))

@functools.cache
def _lgbm_parameter_names() -> frozenset:
    """Every name LightGBM's parameters answer to (their aliases included), as its C API
    lists them; empty (no check) where this LightGBM does not say."""
    try:  # LightGBM's own list (LGBM_DumpParamAliases), read through its Python package
        table = lgb.basic._ConfigAliases._get_all_param_aliases()
    except Exception:  # noqa: BLE001 - another LightGBM: its own checks stand
        return frozenset()
    return frozenset(table) | frozenset(a for names in table.values() for a in names)

#: Up to this many rows, LightGBM scores on one thread: see RiskModel._booster_predict.
_FEW_ROWS = 256
_TIER_DTYPE = pd.CategoricalDtype(list(TIERS))


def _tier_codes(tiers: np.ndarray) -> np.ndarray:
    """Codes of tier names in ``_TIER_DTYPE`` (the order of ``TIERS``)."""
    tiers = np.asarray(tiers)
    codes = np.full(len(tiers), -1, dtype=np.int8)
    for code, tier in enumerate(TIERS):
        codes[tiers == tier] = code
    return codes


def _spread(values) -> dict:
    """Mean, sd, min and max of the finite values (``None`` for each when there are none)."""
    x = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return {"mean": None, "sd": None, "min": None, "max": None, "n": 0}
    return {"mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "min": float(x.min()), "max": float(x.max()), "n": int(len(x))}


def time_split(as_of: pd.Series, fractions: tuple[float, ...]) -> np.ndarray:
    """Assign rows to consecutive time slices (0, 1, ...) by ``as_of``; never splits a date.

    ``fractions`` are the target shares of the later slices; slice 0 gets the rest.
    E.g. ``(0.15, 0.15)`` -> 70% train, then 15% validation, then 15% calibration.
    """
    t = as_of.to_numpy("datetime64[ns]")
    dates, counts = np.unique(t, return_counts=True)
    share_before = (np.cumsum(counts) - counts) / counts.sum()
    edges = 1.0 - np.cumsum(list(reversed(fractions)))[::-1]  # e.g. (0.7, 0.85)
    slice_of_date = (share_before[:, None] >= edges[None, :] - 1e-12).sum(axis=1)
    return slice_of_date[np.searchsorted(dates, t)]


#: What a time-ordered fit needs: positives and negatives overall, positives per slice.
MIN_CLASS_ROWS, MIN_SLICE_POSITIVES = 10, 3


def untrainable_reason(as_of: pd.Series, y: np.ndarray, validation_fraction: float,
                       calibration_fraction: float, *, slices: bool = True) -> str | None:
    """Why :meth:`RiskModel.fit` would refuse these labelled cutoffs (``None``: it would not).

    The same checks as ``fit``: at least :data:`MIN_CLASS_ROWS` positive and negative
    cutoffs and, for the holdout protocol (``slices``), :data:`MIN_SLICE_POSITIVES`
    positives in each of its training, validation and calibration time slices. Cheap: no
    features are computed, so callers can try other settings and say which one would work.
    """
    y = np.asarray(y, dtype=int)
    if y.sum() < MIN_CLASS_ROWS or (1 - y).sum() < MIN_CLASS_ROWS:
        return (f"need at least {MIN_CLASS_ROWS} positive and {MIN_CLASS_ROWS} negative cutoffs, got "
                f"{int(y.sum())} / {int((1 - y).sum())}")
    if not slices:
        return None
    part = time_split(pd.Series(as_of).reset_index(drop=True), (validation_fraction, calibration_fraction))
    for k, name in enumerate(("training", "validation", "calibration")):
        if y[part == k].sum() < MIN_SLICE_POSITIVES:
            return (f"the {name} time slice has {int(y[part == k].sum())} positive cutoff(s) (need "
                    f"{MIN_SLICE_POSITIVES}; the slices are the {1 - validation_fraction - calibration_fraction:.0%} / "
                    f"{validation_fraction:.0%} / {calibration_fraction:.0%} of cutoffs in time order)")
    return None


def check_outcomes_seen(prepared, kinds) -> None:
    """Raise a :class:`DataError` when none of the outcome ``kinds`` occurs in the log (every
    label would be 0), listing the kinds it holds, in Python's and the CLI's words."""
    if not len(prepared) or prepared.is_kind(tuple(kinds)).any():
        return
    seen = prepared.kind_counts()
    if any(k in seen.index for k in kinds):  # known to the log, absent from this part of it
        head = (f"none of the outcome kinds {list(kinds)} occurs among the {len(prepared):,} events trained on here, "
                "though the log holds them later (a backtest fold trains on the events before its cut), so every "
                "label here is 0; more escalations must fall before the cut: a longer history, or fewer backtest folds")
        raise DataError(f"{head} (n_folds=...).", cli=f"{head} (n_folds in the config's [backtest]).")
    listed = ", ".join(f"{k!r} ({n:,})" for k, n in seen.head(30).items())
    more = f", ... ({len(seen) - 30} more)" if len(seen) > 30 else ""
    head = (f"none of the outcome kinds {list(kinds)} occurs in the events' {prepared.schema.kind_col!r} column, "
            f"so no dispute ever escalates and every label is 0. Kinds seen (events): {listed}{more}. Name the "
            "kind(s) that mean escalation")
    raise DataError(f"{head} with EventSchema(outcome_kinds=[...]).",
                    cli=f"{head} with outcome_kinds = [...] in the config's [schema].")


def _in_time_order(cut: pd.DataFrame, id_col: str) -> pd.DataFrame:
    """Validated cutoffs in one order whatever the caller's: by ``as_of``, then id (as the
    ids sort; ids of mixed types as text), equal rows keeping theirs. Training reads rows
    in order (LightGBM's sampling, the folds' edges), so the same rows in another order
    (sorted by id, read back from a partitioned dataset) gave another model.
    ``make_cutoffs`` already lists them so: then nothing moves."""
    try:
        rank = pd.factorize(cut[id_col], sort=True)[0]
    except TypeError:  # e.g. Python ints beside strings
        rank = pd.factorize(pd.Index(decimal_text(cut[id_col]), dtype=object), sort=True)[0]
    order = np.lexsort((rank, cut["as_of"].to_numpy().view(np.int64)))  # a stable sort
    if bool((order == np.arange(len(order))).all()):
        return cut.reset_index(drop=True)
    return cut.iloc[order].reset_index(drop=True)


class RiskModel(BaseEstimator):
    """Escalation risk model: point-in-time features, LightGBM, calibration, tiers, reasons.

    Training (``protocol="forward"``, see :mod:`riskmodel.model._protocol`) never judges a
    prediction on data earlier than what produced it, and wastes no row:

    1. forward-chaining time folds over the cutoffs' ``as_of`` (each fold trains on the
       rows whose labels were complete, ``horizon`` before its validation block) choose
       the number of boosting rounds (and, given ``num_leaves_grid``, the tree size);
    2. the final trees grow on *all* rows with that many rounds;
    3. the calibrator is fitted on the folds' out-of-fold predictions, weighted toward the
       latest period (``calibration_half_life``) so it follows drift; isotonic only where
       the positives suffice, else a regularised sigmoid: never a constant map;
    4. tier thresholds and the drift reference come from the latest out-of-fold rows.

    LightGBM's leaf size, tree size, L2 penalty and feature sampling follow the number of
    rows and positives (:func:`~riskmodel.model._protocol.size_aware_params`) unless
    ``lgbm_params`` sets them; below 1,000 positives the trees of 5 seeds are averaged
    (``seed_bagging``); and a :class:`~riskmodel.DataWarning` says (with the
    numbers) when the data is too small for tiers or drift figures to mean much.
    ``protocol="holdout"`` is the earlier protocol (trees on the earliest 70%, early
    stopping on the next 15%, calibration on the latest 15%), kept to reproduce older models.

    Parameters
    ----------
    schema : EventSchema, optional
    features : FeatureBuilder, optional
        Feature configuration (cloned at fit); default ``FeatureBuilder(schema=schema)``.
    lgbm_params : dict, optional
        Overrides of :data:`DEFAULT_LGBM_PARAMS` and of the size-aware settings. Training
        runs on 2 threads unless it sets ``num_threads``; prediction on every core unless
        it sets them, which ``set_params`` may do on a fitted model: two jobs sharing two
        cores should take one each.
    n_estimators : int, default=400
        Maximum boosting rounds.
    early_stopping_rounds : int, default=40
        Patience of the early stopping in each fold (and of the holdout protocol).
    validation_fraction, calibration_fraction : float, default=0.15
        ``protocol="holdout"`` only: shares of the rows (by time) for early stopping and
        for calibration.
    calibration : {"auto", "isotonic", "sigmoid"}, default="auto"
    tier_policy : TierPolicy, optional
        Default: red = top 5%, yellow = next 15% of the scored population.
    top_k_reasons : int, default=3
    kind_labels, column_labels, value_labels : mapping, optional
        Readable names for reasons (see :class:`ReasonWriter`).
    context_features : sequence of str, optional
        Features shown beside a case as context, never given as its reasons. Default
        (``None``): the ones the feature families declare context, i.e. the dispute's
        categorical attributes (category, station), its group's escalation figures and the
        share of events without a narrative (:meth:`FeatureBuilder.context_features`).
        ``()``: every feature may be a reason.
    label_col : str, default="label"
    random_state : int, default=0
    protocol : {"forward", "holdout"}, default="forward"
    n_folds : int, default=4
        Forward-chaining validation blocks (``protocol="forward"``).
    horizon : str, optional
        The labels' horizon: the gap between a fold's training rows and its validation
        block. Default: the one :func:`~riskmodel.make_labels` recorded on the cutoffs
        (``cutoffs.attrs["horizon"]``), else no gap (with a :class:`~riskmodel.DataWarning`).
    calibration_half_life : str or None, default="auto"
        Age (e.g. ``"180D"``) at which an out-of-fold row weighs half as much as the latest
        in the calibration; ``"auto"``: the span of the latest validation block, doubled
        until about 100 positives count; ``None``: equal weights.
    num_leaves_grid : sequence of int, optional
        Tree sizes to choose from on the same folds (each costs one more cross-fit).
    search_budget : float, optional
        Off by default. Seconds for a hyperparameter search (Optuna, ``pip install
        'riskmodel[search]'``) of leaves, leaf size, L2 penalty and feature fraction on the
        same forward folds; its first trial is the size-aware defaults. Replaces
        ``num_leaves_grid``; the four searched parameters override ``lgbm_params``, the
        others keep them. The summary's ``search`` block reports the trials.
    search_trials : int, default=30
        At most this many trials (the result is deterministic for a seed when the trials,
        not the budget, end the search).
    seed_bagging : int or "auto", default="auto"
        Number of LightGBM models, differing only in their seed, grown in every fold and
        for the final model and averaged on the log-odds scale (``protocol="forward"``;
        see :mod:`riskmodel.model._protocol`). ``"auto"``: 5 below 1,000 positives (the
        trees' features and thresholds are drawn at random, and one draw is noisy), else 1
        (one model, as without bagging). The final ``booster_`` holds the trees of every
        member, so scoring and reasons cost that many times more per round.

    Attributes
    ----------
    features_ : FeatureBuilder
    booster_ : lightgbm.Booster
    calibrator_ : Calibrator
    tier_policy_ : TierPolicy
    feature_names_ : list of str
    best_iteration_ : int
        Boosting rounds of the final model (of each member when seed-bagged).
    training_summary_ : dict
        The fit summary: rows, positives, protocol, parameters used, the chosen rounds,
        per fold (``folds``) its rows, positives, dates, AUC and Brier score, their spread
        across folds (``fold_spread``: mean, sd, min, max), the calibration and the
        small-data notes. :func:`riskmodel.train` logs it.
    folds_ : DataFrame
        ``training_summary_["folds"]`` as a table.
    timings_ : dict
        Seconds spent in features, LightGBM and calibration at fit.
    """

    def __init__(
        self,
        *,
        schema: EventSchema | None = None,
        features: FeatureBuilder | None = None,
        lgbm_params: Mapping | None = None,
        n_estimators: int = 400,
        early_stopping_rounds: int = 40,
        validation_fraction: float = 0.15,
        calibration_fraction: float = 0.15,
        calibration: str = "auto",
        tier_policy: TierPolicy | None = None,
        top_k_reasons: int = 3,
        kind_labels: Mapping | None = None,
        column_labels: Mapping | None = None,
        value_labels: Mapping | None = None,
        context_features: Sequence[str] | None = None,
        label_col: str = "label",
        random_state: int = 0,
        protocol: str = "forward",
        n_folds: int = 4,
        horizon: str | None = None,
        calibration_half_life: str | None = "auto",
        num_leaves_grid: tuple[int, ...] | None = None,
        search_budget: float | None = None,
        search_trials: int = 30,
        seed_bagging: int | str = "auto",
    ):
        self.schema = schema
        self.features = features
        self.lgbm_params = lgbm_params
        self.n_estimators = n_estimators
        self.early_stopping_rounds = early_stopping_rounds
        self.validation_fraction = validation_fraction
        self.calibration_fraction = calibration_fraction
        self.calibration = calibration
        self.tier_policy = tier_policy
        self.top_k_reasons = top_k_reasons
        self.kind_labels = kind_labels
        self.column_labels = column_labels
        self.value_labels = value_labels
        self.context_features = context_features
        self.label_col = label_col
        self.random_state = random_state
        self.protocol = protocol
        self.n_folds = n_folds
        self.horizon = horizon
        self.calibration_half_life = calibration_half_life
        self.num_leaves_grid = num_leaves_grid
        self.search_budget = search_budget
        self.search_trials = search_trials
        self.seed_bagging = seed_bagging

    # ----------------------------------------------------------------------------------

    def _schema(self) -> EventSchema:
        if self.schema is not None:
            return self.schema
        if self.features is not None and self.features.schema is not None:
            return self.features.schema
        return EventSchema()

    def _params(self, n_rows: int | None = None, n_positive: int | None = None) -> dict:
        """LightGBM parameters: defaults, then size-aware settings (given the sizes), then
        the user's ``lgbm_params``, then the seed."""
        params = dict(DEFAULT_LGBM_PARAMS)
        if n_rows is not None:
            params.update(size_aware_params(n_rows, n_positive))
        params.update(self.lgbm_params or {})
        params["seed"] = self.random_state
        return params

    def _check_settings(self) -> None:
        if self.protocol not in ("forward", "holdout"):
            raise ConfigError(f"protocol must be 'forward' or 'holdout', got {self.protocol!r}.")
        if not 0 < self.validation_fraction < 1 or not 0 < self.calibration_fraction < 1:
            raise ConfigError("validation_fraction and calibration_fraction must be in (0, 1).")
        if isinstance(self.n_folds, bool) or not isinstance(self.n_folds, int | np.integer) or self.n_folds < 1:
            raise ConfigError(f"n_folds must be a positive integer, got {self.n_folds!r}.")
        if isinstance(self.n_estimators, bool) or not isinstance(self.n_estimators, int | np.integer) \
                or self.n_estimators < 1:
            raise ConfigError(f"n_estimators must be a positive integer, got {self.n_estimators!r}.")
        for name in ("horizon",) + (() if self.calibration_half_life in (None, "auto") else ("calibration_half_life",)):
            if getattr(self, name) is not None:  # a bare 90 would be 90 nanoseconds
                parse_duration(getattr(self, name), name)
        for name in ("early_stopping_rounds", "top_k_reasons"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < (name == "early_stopping_rounds"):
                raise ConfigError(f"{name} must be a {'positive' if name == 'early_stopping_rounds' else 'non-negative'} "
                                  f"integer, got {value!r}.")
        for name in ("kind_labels", "column_labels", "value_labels"):  # checked before training, not after it
            if getattr(self, name) is not None and not isinstance(getattr(self, name), Mapping):
                raise ConfigError(f"{name} must be a mapping (name -> readable words), got {getattr(self, name)!r}.")
        if self.tier_policy is not None and not isinstance(self.tier_policy, TierPolicy):
            raise ConfigError(f"tier_policy must be a TierPolicy, e.g. TierPolicy(red=0.05, yellow=0.15), got "
                              f"{self.tier_policy!r}.")
        if self.schema is not None and not isinstance(self.schema, EventSchema):
            raise ConfigError(f"schema must be an EventSchema (EventSchema(**d) for a dict), got "
                              f"{type(self.schema).__name__}.")
        if self.search_budget is not None and (not isinstance(self.search_budget, int | float | np.number)
                                               or isinstance(self.search_budget, bool) or self.search_budget <= 0):
            raise ConfigError(f"search_budget must be a positive number of seconds, got {self.search_budget!r}.")
        if isinstance(self.search_trials, bool) or not isinstance(self.search_trials, int | np.integer) \
                or self.search_trials < 1:
            raise ConfigError(f"search_trials must be a positive integer, got {self.search_trials!r}.")
        if self.seed_bagging != "auto" and (isinstance(self.seed_bagging, bool)
                                            or not isinstance(self.seed_bagging, int | np.integer)
                                            or self.seed_bagging < 1):
            raise ConfigError(f"seed_bagging must be 'auto' or a positive integer, got {self.seed_bagging!r}.")
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int | np.integer):
            raise ConfigError(f"random_state must be an integer (LightGBM's seed), got {self.random_state!r}.")
        self._check_lgbm_params()
        if self.num_leaves_grid is not None:
            grid = list(self.num_leaves_grid)
            if not grid or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 2 for v in grid):
                raise ConfigError(f"num_leaves_grid must be a non-empty list of integers >= 2, got {self.num_leaves_grid!r}.")

    def _check_lgbm_params(self) -> None:
        """``lgbm_params``: a mapping of LightGBM's parameters, none of those the model sets
        itself (the binary objective, the categorical columns), that LightGBM accepts (one
        round on a few rows)."""
        given = self.lgbm_params
        if given is None:
            return
        if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
            raise ConfigError(f"lgbm_params must be a mapping of LightGBM parameter names to values, e.g. "
                              f"{{'num_leaves': 15}}, got {given!r}.")
        owned = sorted(k for k in given if k in _OWNED_PARAMS and not (k in _OBJECTIVE and given[k] == "binary"))
        if owned:
            raise ConfigError(f"lgbm_params may not set {owned}: the model is a binary classifier and its schema "
                              "says which columns are categorical.")
        names = _lgbm_parameter_names()
        unknown = [k for k in given if names and k not in names]
        if unknown:
            guesses = {k: difflib.get_close_matches(k, sorted(names), n=1) for k in unknown}
            said = ", ".join(f"{k!r}" + (f" (did you mean {g[0]!r}?)" if g else "") for k, g in guesses.items())
            raise ConfigError(f"lgbm_params names parameters LightGBM does not know: {said}. LightGBM would "
                              "ignore them (see its Parameters page for the names and their aliases).")
        rng = np.random.default_rng(0)
        tiny = lgb.Dataset(rng.random((40, 2)), label=np.arange(40) % 2, free_raw_data=True)
        try:
            lgb.train({**DEFAULT_LGBM_PARAMS, **given, "verbose": -1, "num_threads": 1}, tiny, num_boost_round=1)
        except (lgb.basic.LightGBMError, ValueError, TypeError) as e:
            raise ConfigError(f"lgbm_params are refused by LightGBM: {str(e).strip()[:300]} (got {dict(given)!r}).") \
                from None

    def fit(self, events, cutoffs: pd.DataFrame, *, entities: pd.DataFrame | None = None) -> RiskModel:
        """Train on labelled cutoffs (entity id, ``as_of``, ``label``).

        Parameters
        ----------
        events : DataFrame or PreparedEvents
        cutoffs : DataFrame
            With the label column (0/1); censored rows (missing label) are refused.
        entities : DataFrame, optional

        Returns
        -------
        self

        Warns
        -----
        DataWarning
            When the data is too small for tier thresholds or drift figures to mean much
            (the numbers are in the message and in ``training_summary_["notes"]``).
        """
        self.__dict__.pop("_layout", None)  # a refit (new features or booster) is laid out anew
        t_start = time.perf_counter()
        schema = self._schema()
        self._check_settings()
        if self.label_col not in getattr(cutoffs, "columns", []):
            raise DataError(
                f"cutoffs have no label column {self.label_col!r}; build it with make_labels(...) "
                "and drop censored rows."
            )
        if cutoffs[self.label_col].isna().any():
            raise DataError(
                f"{int(cutoffs[self.label_col].isna().sum())} cutoff(s) have a missing label "
                "(censored: their horizon runs past the data); drop them before fit."
            )
        horizon = self.horizon if self.horizon is not None else cutoffs.attrs.get("horizon")
        if horizon is None and self.protocol == "forward":
            warnings.warn(
                "the labels' horizon is unknown (make_labels records it on the cutoffs, cutoffs.attrs['horizon'], and a "
                "merge, concat or CSV round trip drops it): each fold trains on rows whose labels run into its "
                "validation block, so its figures read optimistic. Pass RiskModel(horizon=...), e.g. '90D'.",
                DataWarning, stacklevel=2)
        cut = _in_time_order(validate_cutoffs(cutoffs, schema, label_col=self.label_col), schema.entity_col)
        y = cut[self.label_col].to_numpy(dtype=int)
        problem = untrainable_reason(cut["as_of"], y, self.validation_fraction, self.calibration_fraction,
                                     slices=self.protocol == "holdout")
        prepared = prepare_events(events, schema)
        if problem is not None:
            check_outcomes_seen(prepared, schema.outcome_kinds)
            raise DataError(f"{problem}; need more data or a longer history for a time-ordered split.")

        features = clone(self.features) if self.features is not None else FeatureBuilder(schema=schema)
        if features.schema is None:
            features.set_params(schema=schema)
        features.fit(prepared, entities=entities)
        context = self._context_features(features, features.feature_names_out_)  # checked before training
        X = features._transform_valid_cutoffs(prepared, cut, entities=entities)
        t_features = time.perf_counter()

        if self.protocol == "holdout":
            fitted = self._fit_holdout(X, y, cut, features)
        else:
            fitted = self._fit_forward(X, y, cut, features, horizon)
        booster, prob_ref, ref, summary, t_lgbm = fitted
        t_cal = time.perf_counter()

        self.features_ = features
        self.booster_ = booster
        self.feature_names_ = list(X.columns)
        self.reason_writer_ = ReasonWriter(
            kind_slugs=features.kind_slugs_,
            kind_labels=self.kind_labels,
            column_labels=self.column_labels,
            value_labels=self.value_labels,
            context_features=context,
        )
        from ..features import OTHER_KIND
        from ._drift import build_reference

        # Drift reference: the latest held-out population, the one the tier thresholds come from.
        tiers_ref, _ = self.tier_policy_.apply(prob_ref, X[ref])
        self.reference_ = {
            "probability": prob_ref.tolist(),
            "label": y[ref].tolist(),
            "monitoring": build_reference(
                X[ref], prob_ref, tiers_ref,
                event_columns={"events": "count_all_all",
                               "other_kind_events": f"count_{features.kind_slugs_[OTHER_KIND]}_all",
                               "missing_text_share": "text_missing_share"},
                categories={c: v for c, v in features.categories_.items() if c in X.columns},
                # group-level context (one value per station per night): reported, not alerting
                informational=[name for name in X.columns if name.startswith("ctx_")],
            ),
        }
        self.training_summary_ = {"n_cutoffs": int(len(cut)), "n_positive": int(y.sum()), **summary,
                                  "calibration_method": self.calibrator_.chosen_,
                                  "best_iteration": self.best_iteration_}
        self.folds_ = pd.DataFrame(self.training_summary_.get("folds", []))
        self.timings_ = {
            "features": t_features - t_start,
            "lightgbm": t_lgbm - t_features,
            "calibration": t_cal - t_lgbm,
        }
        return self

    def _fit_forward(self, X: pd.DataFrame, y: np.ndarray, cut: pd.DataFrame, features, horizon):
        """The forward-chaining protocol (see the class docstring); returns the final booster,
        the reference rows' calibrated probabilities, the reference mask, the summary and
        the time the trees were done."""
        n, n_pos = len(y), int(y.sum())
        params = self._params(n, n_pos)
        as_of = cut["as_of"]
        gap = pd.Timedelta(horizon) if horizon is not None else None
        folds, notes = forward_folds(as_of, y, cut[self._schema().entity_col], n_folds=int(self.n_folds),
                                     gap=gap, seed=self.random_state)
        if not folds:
            raise DataError(f"no fold can be trained: {n:,} cutoffs with {n_pos} positive(s); every fold needs "
                            f"{MIN_FOLD_POSITIVES} positive and {MIN_FOLD_POSITIVES} negative training rows.")
        categorical = features.categorical_features_ or "auto"
        full = lgb.Dataset(X, y, categorical_feature=categorical, free_raw_data=False, params=params).construct()
        grid = list(self.num_leaves_grid) if self.num_leaves_grid else [int(params["num_leaves"])]
        n_members = self.seed_bagging
        if n_members == "auto":
            n_members = BAGGING_SEEDS if n_pos < BAGGING_POSITIVES else 1
        seeds = bagging_seeds(params["seed"], int(n_members))
        search = None
        if self.search_budget:
            params, cf, search = search_params(params, full, folds, n_estimators=int(self.n_estimators),
                                               patience=int(self.early_stopping_rounds),
                                               budget_s=float(self.search_budget), n_trials=int(self.search_trials),
                                               seed=int(self.random_state), seeds=seeds)
            grid = [int(params["num_leaves"])]
        else:
            cf = cross_fit(params, full, folds, n_estimators=int(self.n_estimators),
                           patience=int(self.early_stopping_rounds), leaves_grid=grid, seeds=seeds)
        params = {**params, "num_leaves": cf.num_leaves}
        members = []
        for seed in seeds:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                member = lgb.train({**params, "seed": seed},
                                   lgb.Dataset(X, y, categorical_feature=categorical, params=params),
                                   num_boost_round=cf.n_rounds)
            members.append(lgb.Booster(model_str=member.model_to_string()))
        booster = average_boosters(members)
        self.best_iteration_ = cf.n_rounds
        t_lgbm = time.perf_counter()

        # out-of-fold predictions: each row scored by the fold model(s) that did not see it
        oof = np.zeros(n, dtype=bool)
        raw = np.full(n, np.nan)
        for fold, fold_members in zip(folds, cf.boosters):
            raw[fold.valid] = predict_mean(fold_members, X[fold.valid], cf.n_rounds)
            oof |= fold.valid
        last = folds[-1]
        time_folds = last.kind == "time"
        latest_span = as_of[last.valid].max() - as_of[last.valid].min() if time_folds else pd.Timedelta(0)
        half_life = self.calibration_half_life if time_folds else None
        weights, half_life_used = calibration_weights(as_of, oof, y, half_life, latest_span)
        rows = np.flatnonzero(oof)
        latest = last.valid[rows] if time_folds else None
        order = np.argsort(as_of.to_numpy()[rows], kind="stable")
        self.calibrator_ = Calibrator(self.calibration).fit(raw[rows], y[rows], order=order, sample_weight=weights,
                                                            latest=latest)
        prob = np.full(n, np.nan)
        prob[rows] = self.calibrator_.transform(raw[rows])

        # the reference: the latest half of the folds (time), or every out-of-fold row (entity)
        ref_folds = folds[-max(1, math.ceil(len(folds) / 2)):] if time_folds else folds
        ref = np.zeros(n, dtype=bool)
        for fold in ref_folds:
            ref |= fold.valid
        policy = TierPolicy.from_dict((self.tier_policy or TierPolicy()).to_dict())
        self.tier_policy_ = policy.fit(prob[ref], y[ref])

        fold_rows = []
        for fold in folds:
            yv, pv, cv = y[fold.valid], raw[fold.valid], prob[fold.valid]
            both = 0 < yv.sum() < len(yv)
            fold_rows.append({**fold.describe(as_of, y),
                              "roc_auc": float(roc_auc_score(yv, pv)) if both else None,
                              "brier_raw": float(np.mean((pv - yv) ** 2)),
                              "brier": float(np.mean((cv - yv) ** 2))})
        small = small_data_notes(n_rows=n, n_positive=n_pos, n_reference=int(ref.sum()),
                                 n_reference_positive=int(y[ref].sum()),
                                 red=policy.red if policy.method == "share" else None, n_features=X.shape[1])
        notes = notes + small
        warn_small_data(small)
        if cf.hit_cap:
            notes.append(f"the chosen number of rounds is the maximum, n_estimators={self.n_estimators}: "
                         "more rounds might help.")
        self.split_dates_ = {
            "final": [str(as_of.min()), str(as_of.max())],
            "calibration": [str(as_of[oof].min()), str(as_of[oof].max())],
            "reference": [str(as_of[ref].min()), str(as_of[ref].max())],
        }
        summary = {
            "protocol": "forward",
            "n_final": int(n),
            "n_calibration": int(oof.sum()),
            "n_reference": int(ref.sum()),
            "gap": None if gap is None else str(gap),
            "fold_kind": last.kind,
            "n_rounds": cf.n_rounds,
            "num_leaves": cf.num_leaves,
            "seed_bagging": {"members": len(seeds), "seeds": seeds},
            "lgbm_params": {k: params[k] for k in ("num_leaves", "min_child_samples", "lambda_l2",
                                                   "feature_fraction", "feature_fraction_bynode", "extra_trees",
                                                   "learning_rate", "min_data_per_group") if k in params},
            "folds": fold_rows,
            "fold_spread": {metric: _spread([r[metric] for r in fold_rows]) for metric in ("roc_auc", "brier")},
            "calibration": {"method": self.calibrator_.chosen_, "half_life": half_life_used,
                            **self.calibrator_.selection_},
            "notes": notes,
        }
        if len(grid) > 1:
            summary["num_leaves_grid"] = {str(k): float(min(v)) for k, v in cf.curves.items()}
        if search is not None:
            summary["search"] = search
        return booster, prob[ref], ref, summary, t_lgbm

    def _fit_holdout(self, X: pd.DataFrame, y: np.ndarray, cut: pd.DataFrame, features):
        """The earlier protocol: 70 / 15 / 15 time split (train / early stopping / calibration)."""
        part = time_split(cut["as_of"], (self.validation_fraction, self.calibration_fraction))
        train, valid, calib = (part == 0), (part == 1), (part == 2)
        self.split_dates_ = {
            name: [str(cut["as_of"][mask].min()), str(cut["as_of"][mask].max())]
            for name, mask in (("train", train), ("validation", valid), ("calibration", calib))
        }
        params = self._params()
        categorical = features.categorical_features_
        dtrain = lgb.Dataset(X[train], y[train], categorical_feature=categorical or "auto", free_raw_data=False)
        dvalid = lgb.Dataset(X[valid], y[valid], reference=dtrain, categorical_feature=categorical or "auto")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            booster = lgb.train(
                params,
                dtrain,
                num_boost_round=self.n_estimators,
                valid_sets=[dvalid],
                valid_names=["validation"],
                callbacks=[lgb.early_stopping(self.early_stopping_rounds, verbose=False)],
            )
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration_))
        t_lgbm = time.perf_counter()

        raw_cal = booster.predict(X[calib])
        cal_order = np.argsort(cut["as_of"][calib].to_numpy(), kind="stable")
        self.calibrator_ = Calibrator(self.calibration).fit_holdout(raw_cal, y[calib], order=cal_order)
        prob_cal = self.calibrator_.transform(raw_cal)
        policy = TierPolicy.from_dict((self.tier_policy or TierPolicy()).to_dict())
        self.tier_policy_ = policy.fit(prob_cal, y[calib])
        summary = {
            "protocol": "holdout",
            "n_train": int(train.sum()),
            "n_validation": int(valid.sum()),
            "n_calibration": int(calib.sum()),
        }
        return booster, prob_cal, calib, summary, t_lgbm

    def _context_features(self, features: FeatureBuilder, columns) -> list[str]:
        """The features shown as context rather than reasons (see ``context_features``)."""
        if self.context_features is None:
            return features.context_features()
        if isinstance(self.context_features, str):
            raise ConfigError("context_features must be a list of feature names, not one string.")
        unknown = [c for c in self.context_features if c not in set(columns)]
        if unknown:
            raise ConfigError(f"context_features {unknown} are not features of this model; "
                              f"features: {list(columns)[:30]}.")
        return list(self.context_features)

    # ----------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this RiskModel is not fitted yet; call fit(events, cutoffs) first.")

    def transform_features(self, events, cutoffs, *, entities=None, context_events=None,
                           utc: bool = False) -> pd.DataFrame:
        """The model's feature matrix for ``cutoffs`` (columns in training order).

        ``context_events``: see :meth:`FeatureBuilder.transform` (chunked scoring).
        ``utc``: naive ``as_of`` values are UTC, whatever the model's convention, as in the
        frames the library writes (predictions, nightly scores, backtest folds); otherwise
        the cutoffs must use the training data's timezone convention.
        """
        self._check_fitted()
        aware = None if utc else self.features_.tz_aware_
        cut = validate_cutoffs(cutoffs, self._schema(), tz_aware=aware, trained=True)
        return self._features_of_valid_cutoffs(events, cut, entities=entities, context_events=context_events,
                                               as_of_aware=aware)

    def _matrix_layout(self):
        """Where the builder's numeric and categorical parts go in LightGBM's matrix.

        ``None`` when they cannot be used directly (columns reordered, or category
        vocabularies that differ from the booster's); checked once per model.
        """
        if "_layout" not in self.__dict__:
            fb = self.features_
            names = list(fb.feature_names_out_)
            cats = [n for n in names if n in fb.categorical_features_]
            same_vocab = [list(fb.categories_.get(c, [])) for c in cats] == [
                list(v) for v in (self.booster_.pandas_categorical or [])]
            layout = None
            if names == list(self.feature_names_) and same_vocab:
                layout = ([j for j, n in enumerate(names) if n not in cats], [(names.index(c), c) for c in cats])
            self.__dict__["_layout"] = layout
        return self.__dict__["_layout"]

    def _features_and_matrix(self, events, cut, *, entities=None, as_of_aware=None, context_events=None):
        """Features of validated cutoffs and the matrix LightGBM scores.

        The matrix is assembled from the builder's parts (:class:`FeatureColumns`), with no
        round trip through a DataFrame (same values as :meth:`_matrix`).
        """
        layout = self._matrix_layout()
        if layout is None:
            X = self._features_of_valid_cutoffs(events, cut, entities=entities, as_of_aware=as_of_aware,
                                                warn_no_history=True, context_events=context_events)
            return X, self._matrix(X)
        columns = self.features_._transform_valid_cutoffs(events, cut, entities=entities, as_columns=True,
                                                          as_of_aware=as_of_aware, warn_no_history=True,
                                                          context_events=context_events)
        numeric_positions, categorical_positions = layout
        matrix = np.empty((len(cut), len(self.feature_names_)), dtype=np.float32)
        matrix[:, numeric_positions] = columns.numeric
        for j, name in categorical_positions:
            codes = columns.categorical[name].codes
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
        return columns, matrix

    def _features_of_valid_cutoffs(self, events, cut, *, entities=None, context_events=None,
                                   as_of_aware=None, warn_no_history: bool = False) -> pd.DataFrame:
        X = self.features_._transform_valid_cutoffs(events, cut, entities=entities, context_events=context_events,
                                                    as_of_aware=as_of_aware, warn_no_history=warn_no_history)
        # re-imposing the training order copies every column: skip it when already in order
        return X if list(X.columns) == self.feature_names_ else X[self.feature_names_]

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        """``X`` as the array LightGBM itself would build from it, in training column order.

        Same values as LightGBM's own DataFrame conversion (category codes against the
        booster's vocabularies, NaN for missing), so scores are identical; but that
        conversion costs several milliseconds per call whatever the size. (``predict``
        skips the DataFrame altogether: see :meth:`_features_and_matrix`.)
        """
        if list(X.columns) != self.feature_names_:
            X = X[self.feature_names_]
        dtypes = list(X.dtypes)
        cat = [j for j, dt in enumerate(dtypes) if isinstance(dt, pd.CategoricalDtype)]
        vocabs = self.booster_.pandas_categorical or []
        if len(cat) != len(vocabs):
            raise ModelError(
                f"the feature matrix has {len(cat)} categorical column(s), the model was trained "
                f"with {len(vocabs)}; build it with transform_features(...)."
            )
        num = [j for j, dt in enumerate(dtypes) if not isinstance(dt, pd.CategoricalDtype)]
        # float32 unless a numeric column is wider, as LightGBM does; codes are exact in float32
        dtype = np.result_type(np.float32, *(dtypes[j].type for j in num))
        out = np.empty(X.shape, dtype=dtype, order="F")
        numeric = X.drop(columns=[self.feature_names_[j] for j in cat]) if cat else X
        out[:, num] = numeric.to_numpy(dtype=dtype, na_value=np.nan)
        for j, vocab in zip(cat, vocabs):
            col = X[self.feature_names_[j]]
            if list(col.cat.categories) != list(vocab):
                col = col.cat.set_categories(vocab)
            codes = col.cat.codes.to_numpy()
            out[:, j] = np.where(codes < 0, np.nan, codes)
        return out

    def _threads(self, n_rows: int) -> int:
        # The threads ``lgbm_params`` sets, else LightGBM's default (0: every core); a Spark
        # task sets its cores (see the Spark engine's tasks).
        # A few rows: one thread. Waking LightGBM's OpenMP team costs more than it saves,
        # and on a busy machine it can cost milliseconds (seen scoring one dispute).
        return 1 if n_rows <= _FEW_ROWS else int((self.lgbm_params or {}).get("num_threads", 0))

    def _booster_predict(self, matrix: np.ndarray, **kwargs) -> np.ndarray:
        return self.booster_.predict(matrix, num_threads=self._threads(len(matrix)), **kwargs)

    def _contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Exact SHAP contributions of the rows (LightGBM's ``pred_contrib``, bias last), each
        tree evaluated once per distinct path (see :func:`tree_contributions`; a few rows:
        LightGBM's own call)."""
        return tree_contributions(self.booster_, matrix, threads=self._threads(len(matrix)))

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability for a feature matrix."""
        self._check_fitted()
        return self._booster_predict(self._matrix(X))

    def predict_proba(self, events, cutoffs, *, entities=None) -> np.ndarray:
        """Calibrated probabilities, shape (n, 2): [P(no escalation), P(escalation)]."""
        X = self.transform_features(events, cutoffs, entities=entities)
        p = self.calibrator_.transform(self.predict_raw(X))
        return np.column_stack([1 - p, p])

    def explain(self, X: pd.DataFrame) -> pd.DataFrame:
        """Exact SHAP contributions (raw log-odds scale) per feature, plus ``bias``.

        Each row sums to the raw score: ``logit(predict_raw(X))``.
        """
        self._check_fitted()
        contrib = self._contributions(self._matrix(X))
        return pd.DataFrame(contrib, columns=self.feature_names_ + ["bias"], index=X.index)

    def predict(self, events, cutoffs, *, entities=None, reasons: str = "flagged",
                context_events=None) -> pd.DataFrame:
        """Score cutoffs: probability, tier and reasons.

        Parameters
        ----------
        events : DataFrame or PreparedEvents
        cutoffs : DataFrame
            Entity id and ``as_of``.
        entities : DataFrame, optional
        reasons : {"flagged", "all", "none"}, default="flagged"
            Which cases get reasons: red and yellow ones, every case, or none. Exact SHAP
            costs about as much as a few hundred predictions, so blue cases skip it by default.
        context_events : DataFrame or PreparedEvents, optional
            The log the cross-dispute features (the parties' other disputes, the station's
            escalations) read, when ``events`` holds only the scored disputes' events (see
            :meth:`FeatureBuilder.transform`). Without it they read ``events``: scoring one
            dispute's events alone, its parties have no other dispute.

        Returns
        -------
        DataFrame
            Entity id, ``as_of``, ``probability``, ``tier``, ``reasons`` (``"zh / en"``
            phrases joined by ``"; "``), ``reason_features``, ``overrides``; index of cutoffs.
        """
        return self._predict(events, cutoffs, entities=entities, reasons=reasons, context_events=context_events)

    def _predict(self, events, cutoffs, *, entities=None, reasons="flagged", extra_columns=None,
                 validated: bool = False, context_events=None) -> pd.DataFrame:
        """:meth:`predict`, with ``extra_columns`` (name -> constant) appended to the output.

        ``validated``: ``cutoffs`` come from :func:`validate_cutoffs` or :func:`cutoffs_at`.
        """
        self._check_fitted()
        cut = cutoffs if validated else validate_cutoffs(cutoffs, self._schema(), tz_aware=self.features_.tz_aware_,
                                                                        trained=True)
        X, matrix = self._features_and_matrix(events, cut, entities=entities, context_events=context_events,
                                              as_of_aware=None if validated else self.features_.tz_aware_)
        return self._score(X, matrix, cut, reasons, extra_columns=extra_columns)

    def score_features(self, X: pd.DataFrame, cutoffs: pd.DataFrame, *, reasons: str = "flagged") -> pd.DataFrame:
        """Like :meth:`predict`, on a feature matrix already built."""
        self._check_fitted()
        return self._score(X, self._matrix(X), cutoffs, reasons)

    def _score(self, X, matrix: np.ndarray, cutoffs: pd.DataFrame, reasons: str, *,
               extra_columns: Mapping | None = None) -> pd.DataFrame:
        """Probabilities, tiers and reasons; ``X``: a feature DataFrame or FeatureColumns."""
        if reasons not in ("flagged", "all", "none"):
            raise ConfigError(f"reasons must be flagged, all or none, got {reasons!r}.")
        schema = self._schema()
        prob = self.calibrator_.transform(self._booster_predict(matrix))
        tiers, fired = self.tier_policy_.apply(prob, X)
        if reasons == "none":
            rows = np.zeros(0, dtype=np.int64)
        elif reasons == "all":
            rows = np.arange(len(matrix))
        else:
            rows = np.flatnonzero(tiers != "blue")
        contrib = np.zeros((len(matrix), len(self.feature_names_)))
        if len(rows):
            contrib[rows] = self._contributions(matrix[rows])[:, :-1]
        phrases, used = top_reasons(contrib, X, self.reason_writer_, top_k=self.top_k_reasons, rows=rows,
                                    names=self.feature_names_)
        override_names = [",".join(r.name for r in rules) for rules in fired]
        for i in np.flatnonzero([bool(r) for r in fired]):
            rule_text = "; ".join(f"[规则] {r.reason_zh or r.name} / [rule] {r.reason_en or r.name}" for r in fired[i])
            phrases[i] = rule_text + ("; " + phrases[i] if phrases[i] else "")
        as_of = cutoffs["as_of"]
        if isinstance(as_of.dtype, pd.DatetimeTZDtype):  # outputs hold naive UTC, as validated cutoffs do
            as_of = as_of.dt.tz_convert("UTC").dt.tz_localize(None)
        out = pd.DataFrame(
            {
                schema.entity_col: cutoffs[schema.entity_col].to_numpy(),
                "as_of": as_of.to_numpy(),
                "probability": prob,
                "tier": pd.Categorical.from_codes(_tier_codes(tiers), dtype=_TIER_DTYPE, validate=False),
                "reasons": phrases,
                "reason_features": used,
                "overrides": override_names,
                **{name: np.full(len(matrix), value, dtype=object) for name, value in (extra_columns or {}).items()},
            },
            index=X.index,
        )
        return out
