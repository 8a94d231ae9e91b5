"""Red / yellow / blue warning tiers: :class:`TierPolicy` (plain data, saved with the model)."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._errors import ConfigError

__all__ = ["Override", "TierPolicy", "TIERS"]

#: Tiers from highest to lowest risk.
TIERS = ("red", "yellow", "blue")
_RANK = {t: i for i, t in enumerate(TIERS)}
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}


@dataclass(frozen=True, kw_only=True)
class Override:
    """A hard trigger: when every condition holds, the case is lifted to at least ``tier``.

    Parameters
    ----------
    name : str
        Short identifier, shown in the reasons.
    conditions : sequence of (feature, op, value)
        All must hold; ``op`` is one of ``> >= < <= ==``. Missing feature values never match.
    tier : {"red", "yellow"}
    reason_zh, reason_en : str
        The phrase shown to the station.
    """

    name: str
    conditions: tuple[tuple[str, str, float], ...]
    tier: str = "red"
    reason_zh: str = ""
    reason_en: str = ""

    def __post_init__(self):
        conds = tuple(tuple(c) for c in self.conditions)
        object.__setattr__(self, "conditions", conds)
        if self.tier not in ("red", "yellow"):
            raise ConfigError(f"override {self.name!r}: tier must be 'red' or 'yellow', got {self.tier!r}.")
        for cond in conds:
            if len(cond) != 3 or cond[1] not in _OPS:
                raise ConfigError(
                    f"override {self.name!r}: condition {cond!r} must be (feature, op, value) "
                    f"with op in {sorted(_OPS)}."
                )

    def matches(self, features) -> np.ndarray:
        """Rows of ``features`` (a DataFrame, or the builder's feature columns) the rule fires on."""
        hit = np.ones(len(features.index), dtype=bool)
        for feature, op, value in self.conditions:
            try:
                column = features[feature]
            except KeyError:
                raise ConfigError(f"override {self.name!r} uses unknown feature {feature!r}.") from None
            values = _as_float(column)
            with np.errstate(invalid="ignore"):
                hit &= np.nan_to_num(_OPS[op](values, float(value)), nan=0).astype(bool)
        return hit


def _as_float(column) -> np.ndarray:
    """A feature column (Series or array) as floats; NaN where missing or not a number."""
    if isinstance(column, np.ndarray) and column.dtype.kind in "fiu":
        return column.astype(float)
    if isinstance(column, pd.Series) and pd.api.types.is_numeric_dtype(column.dtype) and \
            not pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=float, na_value=np.nan)
    return pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(dtype=float)


@dataclass(kw_only=True)
class TierPolicy:
    """How calibrated probabilities become red / yellow / blue.

    Parameters
    ----------
    method : {"share", "probability", "precision"}, default="share"
        * ``"share"``: ``red`` and ``yellow`` are target shares of the scored population:
          red is at most ``red`` of it (the stations' capacity), red + yellow at most
          ``red + yellow``. Thresholds are set at ``fit`` from a reference population
          (the model's held-out snapshots), then applied as probability cut-offs, so a
          case's tier never depends on which other cases are scored with it.
        * ``"probability"``: ``red`` and ``yellow`` are probability cut-offs.
        * ``"precision"``: the lowest cut-offs whose hit rate (precision) on labelled
          reference data is at least ``red`` and ``yellow`` respectively.
    red, yellow : float
    overrides : sequence of Override
        Hard triggers applied after the thresholds, shown as such in the reasons.

    Examples
    --------
    >>> import numpy as np
    >>> from riskmodel import TierPolicy
    >>> policy = TierPolicy(method="probability", red=0.3, yellow=0.1)
    >>> policy.fit(np.array([0.5, 0.2, 0.01])).assign(np.array([0.5, 0.2, 0.01])).tolist()
    ['red', 'yellow', 'blue']
    """

    method: str = "share"
    red: float = 0.05
    yellow: float = 0.15
    overrides: Sequence[Override] = field(default_factory=tuple)
    red_threshold_: float | None = None
    yellow_threshold_: float | None = None

    def __post_init__(self):
        self.overrides = tuple(o if isinstance(o, Override) else Override(**o) for o in self.overrides)
        if self.method not in ("share", "probability", "precision"):
            raise ConfigError(f"TierPolicy.method must be share, probability or precision, got {self.method!r}.")
        if not (0 <= self.yellow <= 1 and 0 <= self.red <= 1):
            raise ConfigError("TierPolicy red and yellow must be in [0, 1].")
        if self.method == "share" and self.red + self.yellow > 1:
            raise ConfigError("TierPolicy shares red + yellow must be at most 1.")
        if self.method == "probability" and self.yellow > self.red:
            raise ConfigError("TierPolicy cut-offs: yellow must not exceed red.")
        if self.method == "precision" and self.yellow > self.red:
            raise ConfigError("TierPolicy precisions: yellow's must not exceed red's.")

    def fit(self, probability: np.ndarray, y: np.ndarray | None = None) -> TierPolicy:
        """Set the probability thresholds from reference scores (and labels for ``precision``)."""
        p = np.asarray(probability, dtype=float)
        if len(p) == 0:
            raise ConfigError("TierPolicy.fit needs at least one reference probability.")
        if self.method == "probability":
            self.red_threshold_, self.yellow_threshold_ = float(self.red), float(self.yellow)
        elif self.method == "share":
            self.red_threshold_ = _threshold_for_share(p, self.red)
            self.yellow_threshold_ = min(_threshold_for_share(p, self.red + self.yellow), self.red_threshold_)
        else:
            if y is None:
                raise ConfigError("TierPolicy(method='precision') needs labels to fit.")
            self.red_threshold_ = _threshold_for_precision(p, np.asarray(y), self.red)
            self.yellow_threshold_ = min(_threshold_for_precision(p, np.asarray(y), self.yellow), self.red_threshold_)
        return self

    def assign(self, probability: np.ndarray) -> np.ndarray:
        """Tiers from probabilities alone (no overrides)."""
        if self.red_threshold_ is None:
            raise ConfigError("TierPolicy is not fitted; call fit(reference_probabilities) first.")
        p = np.asarray(probability, dtype=float)
        return np.where(p >= self.red_threshold_, "red", np.where(p >= self.yellow_threshold_, "yellow", "blue")).astype(object)

    def apply(self, probability: np.ndarray, features) -> tuple[np.ndarray, list[list[Override]]]:
        """Tiers with overrides; also returns, per case, the overrides that lifted it."""
        tiers = self.assign(probability)
        fired: list[list[Override]] = [[] for _ in range(len(tiers))]
        for rule in self.overrides:
            hit = rule.matches(features)  # raises ConfigError naming an unknown feature
            lift = hit & np.array([_RANK[t] > _RANK[rule.tier] for t in tiers], dtype=bool)
            tiers = np.where(lift, rule.tier, tiers)
            for i in np.flatnonzero(hit):
                fired[i].append(rule)
        return tiers, fired

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["overrides"] = [dataclasses.asdict(o) for o in self.overrides]
        for o in data["overrides"]:
            o["conditions"] = [list(c) for c in o["conditions"]]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TierPolicy:
        data = dict(data)
        data["overrides"] = tuple(Override(**o) for o in data.get("overrides", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"TierPolicy got unknown keys {unknown}.")
        return cls(**data)


def _threshold_for_share(p: np.ndarray, share: float) -> float:
    """Smallest cut-off t such that the share of p >= t is at most ``share``."""
    if share <= 0:
        return float(np.inf)
    if share >= 1:
        return float(-np.inf)
    ranked = np.sort(p)[::-1]
    # rounded first: 0.29 * 100 is 28.999999999999996 in floating point, and 29 cases fit
    k = int(np.floor(round(share * len(p), 9)))
    if k == 0:
        return float(np.nextafter(ranked[0], np.inf))
    t = ranked[k - 1]
    if k < len(ranked) and ranked[k] == t:  # ties at the boundary would overshoot the share
        return float(np.nextafter(t, np.inf))
    return float(t)


def _threshold_for_precision(p: np.ndarray, y: np.ndarray, precision: float) -> float:
    """Lowest cut-off whose precision among p >= t is at least ``precision``."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(float)
    hits = np.cumsum(ys)
    prec = hits / np.arange(1, len(ys) + 1)
    # only cut at the end of ties
    ends = np.r_[ps[1:] != ps[:-1], True]
    ok = np.flatnonzero(ends & (prec >= precision))
    if len(ok) == 0:
        return float(np.inf)
    return float(ps[ok.max()])
