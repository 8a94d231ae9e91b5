"""Red / yellow / blue warning tiers: :class:`TierPolicy` (plain data, saved with the model) and
:func:`night_tiers`, which applies a share policy to each night's scored disputes."""

from __future__ import annotations

import dataclasses
import math
import operator
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataWarning, format_examples
from ..data import decimal_text

__all__ = ["Override", "TierPolicy", "TIERS", "apply_override_names", "area_column", "night_tiers", "retier_scores",
           "scoring_policy"]

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
        * ``"share"``: ``red`` and ``yellow`` are shares of each night's scored disputes:
          red is the top ``floor(red * n)`` of them, red + yellow the top
          ``floor((red + yellow) * n)``, city-wide or within each area (``by``), ties
          broken by id (:func:`night_tiers`; the nightly batch and
          ``Predictor.predict(tiers=...)`` apply it). ``fit`` also sets probability
          thresholds from a reference population (the model's latest held-out
          snapshots), used where a case is scored on its own (``RiskModel.predict``, the
          pyfunc), so that a case's tier there never depends on the other cases.
        * ``"probability"``: ``red`` and ``yellow`` are probability cut-offs.
        * ``"precision"``: the lowest cut-offs whose hit rate (precision) on labelled
          reference data is at least ``red`` and ``yellow`` respectively.

        Probability and precision thresholds stay as trained every night.
    red, yellow : float
    overrides : sequence of Override
        Hard triggers applied after the thresholds, shown as such in the reasons. They
        lift a case whatever the capacity (the manifest counts them).
    by : str, optional
        Share tiers only: the area column (e.g. ``"station"``) within which each night's
        shares and capacities hold; default city-wide (or, given ``capacity``, the first
        of the schema's ``group_cols``).
    capacity : mapping, optional
        Share tiers only: per area, how many red cases it takes per night, as
        ``{"S01": 10}`` or ``{"S01": {"red": 10, "yellow": 30}}``. An area with fewer
        disputes than its capacity has all of them red (it can visit every one); an area
        not listed follows the shares; without a yellow capacity, yellow is
        ``floor(yellow * n)`` of the area's disputes.

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
    by: str | None = None
    capacity: Mapping | None = None
    red_threshold_: float | None = None
    yellow_threshold_: float | None = None

    def __post_init__(self):
        self.overrides = tuple(o if isinstance(o, Override) else Override(**o) for o in self.overrides)
        self.capacity = _check_capacity(self.capacity)
        if self.by is not None and (not isinstance(self.by, str) or not self.by):
            raise ConfigError(f"TierPolicy.by must be a column name, got {self.by!r}.")
        if self.method != "share" and (self.by is not None or self.capacity):
            raise ConfigError(
                f"TierPolicy by / capacity apply to share tiers; method={self.method!r} thresholds stay as "
                "trained. Use method='share' to rank each night's disputes.")
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
        data["capacity"] = None if self.capacity is None else {k: dict(v) for k, v in self.capacity.items()}
        return data

    def describe(self, by: str | None = None) -> str:
        """One line: e.g. ``share: red 5%, yellow 15% of each night's disputes by station``;
        ``by``: the area column the shares are applied in, when not :attr:`by` (see
        :func:`area_column`)."""
        if self.method == "share":
            by = by or self.by
            where = f" by {by}" if by else " city-wide"
            caps = f"; capacities for {len(self.capacity)} area(s)" if self.capacity else ""
            return f"share: red {self.red:.1%}, yellow {self.yellow:.1%} of each night's disputes{where}{caps}"
        return f"{self.method}: red >= {self.red_threshold_}, yellow >= {self.yellow_threshold_} (as trained)"

    @classmethod
    def from_dict(cls, data: dict) -> TierPolicy:
        data = dict(data)
        data["overrides"] = tuple(Override(**o) for o in data.get("overrides", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"TierPolicy got unknown keys {unknown}.")
        return cls(**data)


def _check_capacity(capacity) -> dict | None:
    """``{area: {"red": int[, "yellow": int]}}`` from ints or mappings; ConfigError otherwise."""
    if capacity is None:
        return None
    if not isinstance(capacity, Mapping):
        raise ConfigError(f"TierPolicy.capacity must map areas to counts, e.g. {{'S01': 10}}, got "
                          f"{type(capacity).__name__}; read a table with riskmodel.lifecycle.read_capacity(path).")
    out = {}
    for area, value in capacity.items():
        spec = value if isinstance(value, Mapping) else {"red": value}
        unknown = sorted(set(spec) - {"red", "yellow"})
        if unknown or "red" not in spec:
            raise ConfigError(f"capacity of area {area!r} must be a count or {{red = n, yellow = m}}, got {value!r}.")
        clean = {}
        for tier, n in spec.items():
            if n is None or (isinstance(n, float) and math.isnan(n)):
                continue
            if isinstance(n, bool) or not float(n).is_integer() or n < 0:
                raise ConfigError(f"capacity of area {area!r}: {tier} must be a whole number >= 0, got {n!r}.")
            clean[tier] = int(n)
        out[str(area)] = clean
    return out


#: The area of disputes without one (no entities row, or a missing value).
UNKNOWN_AREA = "(unknown)"


def _id_text(ids: np.ndarray) -> np.ndarray:
    """Ids as their text (``decimal_text``), so that ties rank the same whatever type the ids
    were read as (int64, Python ints in an object column, strings); strings as they are."""
    if ids.dtype.kind == "O" and pd.api.types.infer_dtype(ids, skipna=True) in ("string", "empty"):
        return ids
    return ids if ids.dtype.kind == "U" else decimal_text(ids)


def night_tiers(probability, ids, policy: TierPolicy, *, nights=None, areas=None) -> tuple[np.ndarray, pd.DataFrame]:
    """Share tiers of each night's scored disputes (before overrides).

    Within each night (``nights``, e.g. the ``as_of`` of each row; default one night) and
    area (``areas``, per ``policy.by``; default city-wide) the disputes are ranked by
    probability, highest first, ties broken by id as text (ascending: ``"10"`` before ``"9"``,
    whether the ids are numbers or strings), then the first
    ``red_k`` are red and the next ``yellow_k`` yellow, with ``red_k = floor(red * n)`` and
    ``yellow_k = floor((red + yellow) * n) - red_k`` (so the shares hold exactly, never
    overshooting), or, for an area with a capacity, ``red_k = min(capacity, n)``.

    A ``method="probability"`` policy (cut-offs set at scoring) assigns by its thresholds;
    the table then reports its counts with ``rule="probability"``.

    Parameters
    ----------
    probability : array of float
    ids : array
        Entity ids (the tie-break; any sortable dtype).
    policy : TierPolicy
        ``method="share"`` (or a fitted ``"probability"`` policy).
    nights, areas : array, optional
        Per row; missing areas form the area ``"(unknown)"``.

    Returns
    -------
    tiers : array of str
    table : DataFrame
        One row per (night, area): ``night``, ``area``, ``n``, ``rule`` (``share`` or
        ``capacity``), ``red_capacity``, ``yellow_capacity`` (the counts allowed),
        ``red``, ``yellow`` (the counts given), ``red_threshold``, ``yellow_threshold``
        (the lowest probability in red, in red or yellow; NaN when none).

    Examples
    --------
    >>> import numpy as np
    >>> from riskmodel import TierPolicy
    >>> from riskmodel.model._tiers import night_tiers
    >>> p = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.3])
    >>> tiers, table = night_tiers(p, np.array(["a", "c", "b", "d", "e", "f"]),
    ...                            TierPolicy(red=0.2, yellow=0.2))
    >>> tiers.tolist()   # red: floor(0.2 * 6) = 1 case; yellow: floor(0.4 * 6) - 1 = 1 case, "b" before "c"
    ['red', 'blue', 'yellow', 'blue', 'blue', 'blue']
    """
    if policy.method not in ("share", "probability"):
        raise ConfigError(f"night_tiers applies share policies; this one is {policy.method!r} (kept as trained).")
    p = np.asarray(probability, dtype=float)
    n = len(p)
    frame = pd.DataFrame({
        "night": np.zeros(n, dtype=np.int8) if nights is None else np.asarray(nights),
        "area": table_area(areas, n),
        "p": -p,  # descending probability, ascending id
        "id": _id_text(np.asarray(ids)),
        "row": np.arange(n),
    })
    frame = frame.sort_values(["night", "area", "p", "id"], kind="stable")
    groups = frame.groupby(["night", "area"], sort=True)
    rank = groups.cumcount().to_numpy()
    keys = groups.size().reset_index(name="n")
    caps = policy.capacity or {}
    unknown = sorted(set(map(str, caps)) - set(map(str, keys["area"])))
    if unknown:  # e.g. a typo, or an area with no open dispute tonight
        warnings.warn(f"tier capacities for {len(unknown)} area(s) that have no scored dispute here are unused: "
                      f"{format_examples(unknown)}.", DataWarning, stacklevel=3)
    capped = keys["area"].map(lambda a: a in caps).to_numpy(dtype=bool)
    size = keys["n"].to_numpy()
    red_share = np.floor(policy.red * size + 1e-9).astype(np.int64)
    flagged_share = np.floor((policy.red + policy.yellow) * size + 1e-9).astype(np.int64)
    cap_red = np.array([caps.get(a, {}).get("red", -1) for a in keys["area"]], dtype=np.int64)
    cap_yellow = np.array([caps.get(a, {}).get("yellow", -1) for a in keys["area"]], dtype=np.int64)
    if policy.method == "probability":  # cut-offs: counts follow from them
        red_share = groups["p"].apply(lambda q: int((-q >= policy.red_threshold_).sum())).to_numpy()
        flagged_share = groups["p"].apply(lambda q: int((-q >= policy.yellow_threshold_).sum())).to_numpy()
    red_k = np.where(capped, np.minimum(cap_red, size), red_share)
    yellow_share = np.where(capped, np.floor(policy.yellow * size + 1e-9).astype(np.int64), flagged_share - red_share)
    yellow_k = np.where(capped & (cap_yellow >= 0), cap_yellow, yellow_share)
    yellow_k = np.clip(yellow_k, 0, size - red_k)
    key_index = pd.MultiIndex.from_frame(keys[["night", "area"]])
    group_of_row = key_index.get_indexer(pd.MultiIndex.from_frame(frame[["night", "area"]]))
    row_red, row_yellow = red_k[group_of_row], yellow_k[group_of_row]
    sorted_tiers = np.where(rank < row_red, "red", np.where(rank < row_red + row_yellow, "yellow", "blue"))
    tiers = np.empty(n, dtype=object)
    tiers[frame["row"].to_numpy()] = sorted_tiers
    prob_sorted = -frame["p"].to_numpy()
    red_min = _group_min(prob_sorted, group_of_row, sorted_tiers == "red", len(keys))
    flagged_min = _group_min(prob_sorted, group_of_row, sorted_tiers != "blue", len(keys))
    table = keys.assign(
        rule=np.where(capped, "capacity", policy.method),
        red_capacity=np.where(capped, cap_red, red_share),
        yellow_capacity=np.where(capped & (cap_yellow >= 0), cap_yellow, yellow_share),
        red=red_k, yellow=yellow_k, red_threshold=red_min, yellow_threshold=flagged_min,
    )
    return tiers, table


def _group_min(values: np.ndarray, group: np.ndarray, mask: np.ndarray, n_groups: int) -> np.ndarray:
    out = np.full(n_groups, np.inf)
    np.minimum.at(out, group[mask], values[mask])
    return np.where(np.isfinite(out), out, np.nan)


def apply_override_names(tiers: np.ndarray, names, policy: TierPolicy) -> np.ndarray:
    """Lift ``tiers`` by the override rules named per row (``"a,b"`` as in the ``overrides``
    column of the scores) to at least each rule's tier."""
    rule_tier = {o.name: o.tier for o in policy.overrides}
    out = np.asarray(tiers, dtype=object).copy()
    if names is None:
        return out
    names = pd.Series(names, dtype=object).fillna("").astype(str).to_numpy()
    for i in np.flatnonzero(names != ""):
        for name in names[i].split(","):
            tier = rule_tier.get(name)
            if tier is not None and _RANK[out[i]] > _RANK[tier]:
                out[i] = tier
    return out


def scoring_policy(trained: TierPolicy, tiers="night") -> TierPolicy | None:
    """The policy to apply to a night's scores, or ``None`` to keep the trained thresholds.

    ``tiers``: ``"night"`` (the model's policy: share tiers ranked over the night's
    disputes, the other methods as trained), ``"trained"`` (the trained thresholds,
    whatever the method), a mapping of :class:`TierPolicy` fields replacing the model's
    (``method`` share or probability, ``red``, ``yellow``, ``by``, ``capacity``), or a
    :class:`TierPolicy` (its fields, not its overrides: the override rules are the model's).
    """
    if tiers is None or isinstance(tiers, str):
        if tiers not in (None, "night", "trained"):
            raise ConfigError(f"tiers must be 'night', 'trained', a mapping or a TierPolicy, got {tiers!r}.")
        if tiers == "trained":
            return None
        tiers = None
    data = trained.to_dict()
    if isinstance(tiers, TierPolicy):
        tiers = {k: getattr(tiers, k) for k in ("method", "red", "yellow", "by", "capacity")}
    if tiers is not None:
        if not isinstance(tiers, Mapping):
            raise ConfigError(f"tiers must be 'night', 'trained', a mapping or a TierPolicy, got {type(tiers).__name__}.")
        allowed = {"method", "red", "yellow", "by", "capacity"}
        unknown = sorted(set(tiers) - allowed)
        if unknown:
            raise ConfigError(f"tiers got unknown key(s) {unknown}; use {sorted(allowed)}.")
        if tiers.get("method") == "precision":
            raise ConfigError("precision tiers need labels: they can only be set at training ([tiers] in the config).")
        changed = dict(tiers)
        if changed.get("method", data["method"]) != "share":
            changed.setdefault("by", None)
            changed.setdefault("capacity", None)
        data.update(changed)
        data["red_threshold_"] = data["yellow_threshold_"] = None
        if data["method"] == "share" and data["red"] + data["yellow"] > 1:  # one share given, the model's other
            given = " and ".join(f"{k}={tiers[k]}" for k in ("red", "yellow") if k in tiers)
            flags = " and ".join(f"--{k}-share {tiers[k]}" for k in ("red", "yellow") if k in tiers)
            shares = f"red {data['red']:g} + yellow {data['yellow']:g} is over 1 (the model's share where none is given)"
            raise ConfigError(f"tiers {given}: {shares}; give shares adding up to at most 1.",
                              cli=f"{flags}: {shares}; give --red-share and --yellow-share adding up to at most 1.")
        policy = TierPolicy.from_dict(data)
        if policy.method == "probability":
            return policy.fit(np.zeros(1))
        return policy
    policy = TierPolicy.from_dict(data)
    return policy if policy.method == "share" else None


def area_column(policy: TierPolicy | None, group_cols: Sequence[str]) -> str | None:
    """The area column a night policy ranks within: ``policy.by``, or with capacities and no
    ``by`` the first group column (the station); ``None`` for city-wide."""
    if policy is None or policy.method != "share":
        return None
    if policy.by:
        return policy.by
    if policy.capacity:
        if not group_cols:
            what = "tier capacities need an area, and the model's schema has no group_cols to take it from"
            raise ConfigError(f"{what}: give tiers={{'by': '<column>', ...}} with a column of entities=..., or "
                              "tiers={'capacity': None} for city-wide shares.",
                              cli=f"{what}: give --tiers-by COLUMN with a column of --entities PATH, or leave out "
                                  "--capacity for city-wide shares.")
        return group_cols[0]
    return None


def retier_scores(scores: pd.DataFrame, policy: TierPolicy, trained: TierPolicy, *, id_col: str, areas=None,
                  reasons: str = "flagged") -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Apply a night policy to scores as :meth:`RiskModel.predict` writes them.

    Each ``as_of`` is a night: :func:`night_tiers` ranks its disputes (within ``areas``),
    then the override rules named in the ``overrides`` column lift cases as trained. With
    ``reasons="flagged"``, cases no longer red or yellow lose their reasons.

    Returns
    -------
    scores : DataFrame
        A copy with the night's ``tier``.
    table : DataFrame
        :func:`night_tiers`' table plus ``overrides_lifted`` (cases lifted by a rule above
        their ranked tier).
    need_reasons : bool array
        Rows now red or yellow whose reasons were not computed (blue under the trained
        thresholds); the caller computes them.
    """
    nights = pd.to_datetime(scores["as_of"]).to_numpy()
    base, table = night_tiers(scores["probability"].to_numpy(dtype=float), scores[id_col].to_numpy(), policy,
                              nights=nights, areas=areas)
    final = apply_override_names(base, scores["overrides"], trained) if "overrides" in scores.columns else base
    lifted = pd.Series(final != base).groupby([nights, table_area(areas, len(base))]).sum()
    table["overrides_lifted"] = [int(lifted.get((n, a), 0)) for n, a in zip(table["night"], table["area"])]
    before = scores["tier"].astype(str).to_numpy()
    out = scores.copy()
    out["tier"] = pd.Categorical(final, categories=list(TIERS))
    need = np.zeros(len(out), dtype=bool)
    if reasons == "flagged":
        need = (final != "blue") & (before == "blue")
        gone = (final == "blue") & (before != "blue")
        for col in ("reasons", "reason_features"):
            if col in out and gone.any():
                out[col] = out[col].astype(object)
                out.loc[gone, col] = ""
    return out, table, need


def table_area(areas, n: int) -> np.ndarray:
    """Areas as :func:`night_tiers` names them (``"(all)"`` city-wide, ``"(unknown)"`` missing)."""
    if areas is None:
        return np.full(n, "(all)", dtype=object)
    values = pd.Series(areas, dtype=object)
    return values.where(values.notna(), UNKNOWN_AREA).astype(str).to_numpy()


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
