"""The risk model: features -> LightGBM -> calibrated probability -> tiers -> reasons."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from .._errors import ConfigError, DataError, ModelError
from ..data import EventSchema, validate_cutoffs
from ..features import FeatureBuilder, prepare_events
from ._reasons import ReasonWriter, top_reasons
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


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.minimum(np.maximum(p, 1e-7), 1 - 1e-7)
    return np.log(p / (1 - p))


class Calibrator:
    """Maps raw model probabilities to calibrated ones; stored as plain numbers.

    ``method`` is ``"isotonic"`` (a monotone step function, interpolated) or ``"sigmoid"``
    (Platt scaling on the logit). ``"auto"`` chooses on held-out later data: it fits both
    on the earlier half of the calibration slice, keeps the one with the lower log loss
    on the later half, then refits it on the whole slice.
    """

    def __init__(self, method: str = "auto"):
        if method not in ("auto", "isotonic", "sigmoid"):
            raise ConfigError(f"calibration must be auto, isotonic or sigmoid, got {method!r}.")
        self.method = method
        self.chosen_: str | None = None
        self.params_: dict = {}

    def fit(self, raw: np.ndarray, y: np.ndarray, order: np.ndarray | None = None) -> Calibrator:
        raw, y = np.asarray(raw, float), np.asarray(y, int)
        method = self.method
        self.selection_ = {}
        if method == "auto":
            idx = np.arange(len(raw)) if order is None else np.asarray(order)
            half = len(idx) // 2
            early, late = idx[:half], idx[half:]
            if y[early].sum() >= 5 and y[late].sum() >= 5:
                scores = {}
                for m in ("isotonic", "sigmoid"):
                    cal = Calibrator(m).fit(raw[early], y[early])
                    p = np.clip(cal.transform(raw[late]), 1e-7, 1 - 1e-7)
                    scores[m] = float(-np.mean(y[late] * np.log(p) + (1 - y[late]) * np.log(1 - p)))
                method = min(scores, key=scores.get)
                self.selection_ = scores
            else:
                method = "sigmoid"
        if method == "isotonic":
            iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(raw, y)
            self.params_ = {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()}
        else:
            if len(np.unique(y)) < 2:
                raise DataError("calibration slice has a single class; need both outcomes.")
            lr = LogisticRegression(C=1e4).fit(_logit(raw)[:, None], y)
            self.params_ = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        self.chosen_ = method
        return self

    def transform(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw, float)
        if self.chosen_ == "isotonic":
            return np.interp(raw, self.params_["x"], self.params_["y"])
        if self.chosen_ == "sigmoid":
            z = self.params_["a"] * _logit(raw) + self.params_["b"]
            return 1.0 / (1.0 + np.exp(-z))
        raise ModelError("Calibrator is not fitted.")

    def to_dict(self) -> dict:
        return {"method": self.method, "chosen": self.chosen_, "params": self.params_}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        cal = cls(data["method"])
        cal.chosen_, cal.params_ = data["chosen"], data["params"]
        return cal


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
                       calibration_fraction: float) -> str | None:
    """Why :meth:`RiskModel.fit` would refuse these labelled cutoffs (``None``: it would not).

    The same checks as ``fit``: at least :data:`MIN_CLASS_ROWS` positive and negative
    cutoffs, and :data:`MIN_SLICE_POSITIVES` positives in each of the training,
    validation and calibration time slices. Cheap: no features are computed, so callers
    can try other settings and say which one would work.
    """
    y = np.asarray(y, dtype=int)
    if y.sum() < MIN_CLASS_ROWS or (1 - y).sum() < MIN_CLASS_ROWS:
        return (f"need at least {MIN_CLASS_ROWS} positive and {MIN_CLASS_ROWS} negative cutoffs, got "
                f"{int(y.sum())} / {int((1 - y).sum())}")
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
    listed = ", ".join(f"{k!r} ({n:,})" for k, n in seen.head(30).items())
    more = f", ... ({len(seen) - 30} more)" if len(seen) > 30 else ""
    head = (f"none of the outcome kinds {list(kinds)} occurs in the events' {prepared.schema.kind_col!r} column, "
            f"so no dispute ever escalates and every label is 0. Kinds seen (events): {listed}{more}. Name the "
            "kind(s) that mean escalation")
    raise DataError(f"{head} with EventSchema(outcome_kinds=[...]).",
                    cli=f"{head} with outcome_kinds = [...] in the config's [schema].")


class RiskModel(BaseEstimator):
    """Escalation risk model: point-in-time features, LightGBM, calibration, tiers, reasons.

    Training splits the cutoffs by time (never at random): the earliest rows train the
    trees, the next slice early-stops them, the latest slice fits the calibrator and the
    tier thresholds. So every reported probability is checked on data later than what
    produced it.

    Parameters
    ----------
    schema : EventSchema, optional
    features : FeatureBuilder, optional
        Feature configuration (cloned at fit); default ``FeatureBuilder(schema=schema)``.
    lgbm_params : dict, optional
        Overrides of :data:`DEFAULT_LGBM_PARAMS`.
    n_estimators : int, default=400
        Maximum boosting rounds (early stopping usually stops sooner).
    early_stopping_rounds : int, default=40
    validation_fraction, calibration_fraction : float, default=0.15
        Shares of the rows (by time) for early stopping and for calibration.
    calibration : {"auto", "isotonic", "sigmoid"}, default="auto"
    tier_policy : TierPolicy, optional
        Default: red = top 5%, yellow = next 15% of the reference population.
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

    Attributes
    ----------
    features_ : FeatureBuilder
    booster_ : lightgbm.Booster
    calibrator_ : Calibrator
    tier_policy_ : TierPolicy
    feature_names_ : list of str
    best_iteration_ : int
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

    # ----------------------------------------------------------------------------------

    def _schema(self) -> EventSchema:
        if self.schema is not None:
            return self.schema
        if self.features is not None and self.features.schema is not None:
            return self.features.schema
        return EventSchema()

    def _params(self) -> dict:
        params = dict(DEFAULT_LGBM_PARAMS)
        params.update(self.lgbm_params or {})
        params["seed"] = self.random_state
        return params

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
        """
        t_start = time.perf_counter()
        schema = self._schema()
        if not 0 < self.validation_fraction < 1 or not 0 < self.calibration_fraction < 1:
            raise ConfigError("validation_fraction and calibration_fraction must be in (0, 1).")
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
        cut = validate_cutoffs(cutoffs, schema, label_col=self.label_col).reset_index(drop=True)
        y = cut[self.label_col].to_numpy(dtype=int)
        problem = untrainable_reason(cut["as_of"], y, self.validation_fraction, self.calibration_fraction)
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
        self.calibrator_ = Calibrator(self.calibration).fit(raw_cal, y[calib], order=cal_order)
        prob_cal = self.calibrator_.transform(raw_cal)
        policy = TierPolicy.from_dict((self.tier_policy or TierPolicy()).to_dict())
        self.tier_policy_ = policy.fit(prob_cal, y[calib])
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

        # Drift reference: the calibration slice, the latest population and the one the
        # tier thresholds come from.
        tiers_cal, _ = self.tier_policy_.apply(prob_cal, X[calib])
        self.reference_ = {
            "probability": prob_cal.tolist(),
            "label": y[calib].tolist(),
            "monitoring": build_reference(
                X[calib], prob_cal, tiers_cal,
                event_columns={"events": "count_all_all",
                               "other_kind_events": f"count_{features.kind_slugs_[OTHER_KIND]}_all",
                               "missing_text_share": "text_missing_share"},
                categories={c: v for c, v in features.categories_.items() if c in X.columns},
                # group-level context (one value per station per night): reported, not alerting
                informational=[name for name in X.columns if name.startswith("ctx_")],
            ),
        }
        self.training_summary_ = {
            "n_cutoffs": int(len(cut)),
            "n_positive": int(y.sum()),
            "n_train": int(train.sum()),
            "n_validation": int(valid.sum()),
            "n_calibration": int(calib.sum()),
            "calibration_method": self.calibrator_.chosen_,
            "best_iteration": self.best_iteration_,
        }
        self.timings_ = {
            "features": t_features - t_start,
            "lightgbm": t_lgbm - t_features,
            "calibration": t_cal - t_lgbm,
        }
        return self

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
            raise ModelError("this RiskModel is not fitted yet; call fit(events, cutoffs) first.")

    def transform_features(self, events, cutoffs, *, entities=None, context_events=None,
                           utc: bool = False) -> pd.DataFrame:
        """The model's feature matrix for ``cutoffs`` (columns in training order).

        ``context_events``: see :meth:`FeatureBuilder.transform` (chunked scoring).
        ``utc``: naive ``as_of`` values are UTC, whatever the model's convention, as in the
        frames the library writes (predictions, nightly scores, backtest folds); otherwise
        the cutoffs must use the training data's timezone convention.
        """
        self._check_fitted()
        cut = validate_cutoffs(cutoffs, self._schema(), tz_aware=None if utc else self.features_.tz_aware_)
        return self._features_of_valid_cutoffs(events, cut, entities=entities, context_events=context_events)

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

    def _features_and_matrix(self, events, cut, *, entities=None):
        """Features of validated cutoffs and the matrix LightGBM scores.

        The matrix is assembled from the builder's parts (:class:`FeatureColumns`), with no
        round trip through a DataFrame (same values as :meth:`_matrix`).
        """
        layout = self._matrix_layout()
        if layout is None:
            X = self._features_of_valid_cutoffs(events, cut, entities=entities)
            return X, self._matrix(X)
        columns = self.features_._transform_valid_cutoffs(events, cut, entities=entities, as_columns=True)
        numeric_positions, categorical_positions = layout
        matrix = np.empty((len(cut), len(self.feature_names_)), dtype=np.float32)
        matrix[:, numeric_positions] = columns.numeric
        for j, name in categorical_positions:
            codes = columns.categorical[name].codes
            matrix[:, j] = np.where(codes < 0, np.nan, codes)
        return columns, matrix

    def _features_of_valid_cutoffs(self, events, cut, *, entities=None, context_events=None) -> pd.DataFrame:
        X = self.features_._transform_valid_cutoffs(events, cut, entities=entities, context_events=context_events)
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

    def _booster_predict(self, matrix: np.ndarray, **kwargs) -> np.ndarray:
        # A few rows: one thread. Waking LightGBM's OpenMP team costs more than it saves,
        # and on a busy machine it can cost milliseconds (seen scoring one dispute).
        if len(matrix) <= _FEW_ROWS:
            kwargs["num_threads"] = 1
        return self.booster_.predict(matrix, **kwargs)

    def predict_raw(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated LightGBM probability for a feature matrix."""
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
        contrib = self._booster_predict(self._matrix(X), pred_contrib=True)
        return pd.DataFrame(contrib, columns=self.feature_names_ + ["bias"], index=X.index)

    def predict(self, events, cutoffs, *, entities=None, reasons: str = "flagged") -> pd.DataFrame:
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

        Returns
        -------
        DataFrame
            Entity id, ``as_of``, ``probability``, ``tier``, ``reasons`` (``"zh / en"``
            phrases joined by ``"; "``), ``reason_features``, ``overrides``; index of cutoffs.
        """
        return self._predict(events, cutoffs, entities=entities, reasons=reasons)

    def _predict(self, events, cutoffs, *, entities=None, reasons="flagged", extra_columns=None,
                 validated: bool = False) -> pd.DataFrame:
        """:meth:`predict`, with ``extra_columns`` (name -> constant) appended to the output.

        ``validated``: ``cutoffs`` come from :func:`validate_cutoffs` or :func:`cutoffs_at`.
        """
        self._check_fitted()
        cut = cutoffs if validated else validate_cutoffs(cutoffs, self._schema(), tz_aware=self.features_.tz_aware_)
        X, matrix = self._features_and_matrix(events, cut, entities=entities)
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
            contrib[rows] = self._booster_predict(matrix[rows], pred_contrib=True)[:, :-1]
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
