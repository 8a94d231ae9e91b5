"""Calibration: raw LightGBM probabilities -> calibrated ones (:class:`Calibrator`), stored as plain numbers.

Both maps read ``s = logit(raw)``:

* ``"isotonic"``: a monotone step function of ``s`` (interpolated between steps), used only
  where the (weighted) positives and negatives suffice; levels are kept off 0 and 1 and a
  map with fewer than :data:`MIN_ISOTONIC_LEVELS` levels is refused (falls back to sigmoid).
* ``"sigmoid"``: Platt scaling ``expit(a * s + b)``, with a weak Gaussian prior centred on
  "trust the model" (``a = 1``, ``b = 0``) and ``a`` bounded away from 0: the fit is the
  usual Platt fit on thousands of rows, and never a constant or a reversed map on a handful
  of rows or on rows of one class only.

Sample weights (e.g. decaying with age) make the map follow the latest period.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from sklearn.isotonic import IsotonicRegression

from .._errors import ConfigError, DataError, ModelError

__all__ = ["Calibrator", "MIN_ISOTONIC_POSITIVES", "effective_count", "logit"]

#: Isotonic calibration only with at least this many effective positives (and negatives).
MIN_ISOTONIC_POSITIVES = 150
#: An isotonic map with fewer distinct levels than this is degenerate: sigmoid instead.
MIN_ISOTONIC_LEVELS = 4
#: Strength of the sigmoid's prior (in rows): negligible on thousands of rows.
PRIOR_ROWS = 2.0
#: Bounds of the sigmoid's slope: increasing, never flat, never wild.
SLOPE_BOUNDS = (0.05, 20.0)


def logit(p) -> np.ndarray:
    p = np.minimum(np.maximum(np.asarray(p, dtype=float), 1e-7), 1 - 1e-7)
    return np.log(p / (1 - p))


def _expit(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def effective_count(weights: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no weight)."""
    w = np.asarray(weights, dtype=float)
    s2 = float(np.sum(w * w))
    return float(np.sum(w)) ** 2 / s2 if s2 > 0 else 0.0


def _weighted_log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.sum(w * (y * np.log(p) + (1 - y) * np.log(1 - p))) / np.sum(w))


def _fit_sigmoid(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """MAP Platt scaling: weighted log loss plus ``PRIOR_ROWS/2 * ((a - 1)^2 + b^2)``."""
    w = w / w.mean()

    def loss(theta):
        a, b = theta
        z = a * s + b
        # log(1 + e^z) - y z, computed stably
        nll = np.sum(w * (np.logaddexp(0.0, z) - y * z))
        r = _expit(z) - y
        grad = np.array([np.sum(w * r * s), np.sum(w * r)])
        pen = 0.5 * PRIOR_ROWS * ((a - 1.0) ** 2 + b ** 2)
        return nll + pen, grad + PRIOR_ROWS * np.array([a - 1.0, b])

    res = minimize(loss, x0=np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[SLOPE_BOUNDS, (None, None)])
    return float(res.x[0]), float(res.x[1])


def _fit_isotonic(s: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict | None:
    """Isotonic levels on ``s``; ``None`` when the map would be degenerate."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y, sample_weight=w)
    x, level = iso.X_thresholds_.astype(float), iso.y_thresholds_.astype(float)
    if len(np.unique(level)) < MIN_ISOTONIC_LEVELS or level.max() <= level.min():
        return None
    # no calibrated 0 or 1: a bottom step without positives means "rare", not "impossible"
    pos, neg = float(np.sum(w * y)), float(np.sum(w * (1 - y)))
    floor = 0.5 / max(pos + neg, 1.0)
    return {"x": x.tolist(), "y": np.clip(level, floor, 1.0 - floor).tolist()}


class Calibrator:
    """Maps raw model probabilities to calibrated ones; stored as plain numbers.

    Parameters
    ----------
    method : {"auto", "isotonic", "sigmoid"}, default="auto"
        ``"auto"`` uses isotonic only where the effective positives and negatives reach
        :data:`MIN_ISOTONIC_POSITIVES` in the fit data and in its latest part, and keeps
        it only if it beats the sigmoid on that latest part (fitted on the rest); otherwise
        the sigmoid. An explicit ``"isotonic"`` also falls back to the sigmoid when the
        isotonic map would be degenerate (fewer than :data:`MIN_ISOTONIC_LEVELS` levels).

    Attributes
    ----------
    chosen_ : str
    params_ : dict
        ``{"a", "b"}`` (sigmoid) or ``{"x", "y"}`` (isotonic steps), and ``space``
        (``"logit"``: the steps are on ``logit(raw)``; ``"probability"``: on ``raw``, as
        saved by :meth:`fit_holdout` and by riskmodel before forward folds).
    selection_ : dict
        Why this map: effective counts, the log losses compared, fall-backs.

    Examples
    --------
    >>> import numpy as np
    >>> from riskmodel.model._calibration import Calibrator
    >>> raw = np.array([0.01, 0.02, 0.05, 0.3])
    >>> cal = Calibrator("sigmoid").fit(raw, np.array([0, 0, 0, 0]))   # one class: still a map
    >>> p = cal.transform(raw)
    >>> bool(np.all(np.diff(p) > 0))
    True
    """

    def __init__(self, method: str = "auto"):
        if method not in ("auto", "isotonic", "sigmoid"):
            raise ConfigError(f"calibration must be auto, isotonic or sigmoid, got {method!r}.")
        self.method = method
        self.chosen_: str | None = None
        self.params_: dict = {}
        self.selection_: dict = {}

    def fit(self, raw: np.ndarray, y: np.ndarray, order: np.ndarray | None = None, *,
            sample_weight: np.ndarray | None = None, latest: np.ndarray | None = None) -> Calibrator:
        """Fit on raw probabilities ``raw`` and labels ``y``.

        Parameters
        ----------
        raw : array
            Raw probabilities (e.g. out-of-fold predictions).
        y : array of 0/1
        order : array, optional
            Row order by time (used to find the latest part when ``latest`` is not given:
            its later half).
        sample_weight : array, optional
            E.g. decaying with age, so the map follows drift.
        latest : bool array, optional
            The latest rows, on which ``"auto"`` compares the maps.
        """
        y = np.asarray(y, dtype=float)
        s = logit(raw)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if len(y) == 0 or len(s) != len(y) or len(w) != len(y) or not np.all(w >= 0) or w.sum() <= 0:
            raise ModelError(f"calibration needs matching, non-empty rows and weights, got {len(s)} scores, "
                             f"{len(y)} labels, {len(w)} weights.")
        if latest is None:
            idx = np.arange(len(y)) if order is None else np.asarray(order)
            latest = np.zeros(len(y), dtype=bool)
            latest[idx[len(idx) // 2:]] = True
        pos, neg = effective_count(w * y), effective_count(w * (1 - y))
        selection: dict = {"effective_positives": round(pos, 1), "effective_negatives": round(neg, 1)}
        method = self.method
        if method == "auto":
            method = "sigmoid"
            late_pos = effective_count((w * y)[latest])
            late_neg = effective_count((w * (1 - y))[latest])
            early = ~latest
            enough = min(pos, neg) >= MIN_ISOTONIC_POSITIVES and min(late_pos, late_neg) >= MIN_ISOTONIC_POSITIVES / 3
            if enough and early.sum() and np.sum(y[early]) >= 5 and np.sum(1 - y[early]) >= 5:
                losses = {}
                for m in ("isotonic", "sigmoid"):
                    cal = Calibrator(m)._fit_scores(s[early], y[early], w[early])
                    losses[m] = _weighted_log_loss(cal._map(s[latest]), y[latest], w[latest])
                selection["latest_log_loss"] = {k: round(v, 6) for k, v in losses.items()}
                method = min(losses, key=losses.get)
            elif not enough:
                selection["isotonic_skipped"] = (f"too few positives for isotonic: {pos:.0f} effective "
                                                 f"(need {MIN_ISOTONIC_POSITIVES})")
        self._fit_scores(s, y, w, method=method)
        if method == "isotonic" and self.chosen_ != "isotonic":
            selection["isotonic_degenerate"] = "isotonic map had too few levels; sigmoid used"
        self.selection_ = selection
        return self

    def fit_holdout(self, raw: np.ndarray, y: np.ndarray, order: np.ndarray | None = None) -> Calibrator:
        """The calibration of ``protocol="holdout"`` (riskmodel before 0.x's forward folds).

        ``"auto"`` fits both maps on the earlier half of the rows (by ``order``), keeps the
        one with the lower log loss on the later half and refits it on all rows; the sigmoid
        is unregularised Platt scaling on ``logit(raw)``, isotonic reads ``raw`` directly.
        Kept so that old results can be reproduced; prefer :meth:`fit`.
        """
        from sklearn.linear_model import LogisticRegression

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
                    cal = Calibrator(m).fit_holdout(raw[early], y[early])
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
            lr = LogisticRegression(C=1e4).fit(logit(raw)[:, None], y)
            self.params_ = {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])}
        self.chosen_ = method
        return self

    def _fit_scores(self, s, y, w, method: str | None = None) -> Calibrator:
        method = method or self.method
        if method == "isotonic":
            params = _fit_isotonic(s, y, w)
            if params is not None:
                self.chosen_, self.params_ = "isotonic", {**params, "space": "logit"}
                return self
        a, b = _fit_sigmoid(s, y, w)
        self.chosen_, self.params_ = "sigmoid", {"a": a, "b": b, "space": "logit"}
        return self

    def _map(self, s: np.ndarray) -> np.ndarray:
        if self.chosen_ == "isotonic":
            return np.interp(s, self.params_["x"], self.params_["y"])
        return _expit(self.params_["a"] * s + self.params_["b"])

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw model probabilities."""
        raw = np.asarray(raw, float)
        if self.chosen_ not in ("isotonic", "sigmoid"):
            raise ModelError("Calibrator is not fitted.")
        if self.params_.get("space", "probability") == "probability":  # fit_holdout, older models
            if self.chosen_ == "isotonic":
                return np.interp(raw, self.params_["x"], self.params_["y"])
            return _expit(self.params_["a"] * logit(raw) + self.params_["b"])
        return self._map(logit(raw))

    def to_dict(self) -> dict:
        return {"method": self.method, "chosen": self.chosen_, "params": self.params_,
                "selection": self.selection_}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        cal = cls(data["method"])
        cal.chosen_, cal.params_ = data["chosen"], dict(data["params"])
        cal.selection_ = dict(data.get("selection") or {})
        return cal
