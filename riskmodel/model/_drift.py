"""Drift monitoring: tonight's input and scores against the model's training reference.

Three pure steps, so the nightly batch (and any engine reusing its per-chunk function)
can monitor in one pass without holding the whole feature matrix:

1. :func:`build_reference` - at ``fit``: bin definitions from the reference population
   (quantile edges per numeric feature, the vocabulary of each categorical one, quantile
   edges of the calibrated score) and the reference's own counts in those bins, its tier
   counts, its share of events of kinds outside the training vocabulary and of events
   without narrative text. Plain JSON-able data, saved with the model.
2. :func:`chunk_counts` - per chunk: the same counts for the rows scored tonight; a few
   ``np.searchsorted`` / ``np.bincount`` calls per feature. Counts are additive:
   :func:`merge_counts` of the chunks equals the counts of the whole.
3. :func:`drift_report` - population stability index (:func:`population_stability_index`)
   per feature and for the score, tier shares, unseen-category and unseen-kind rates, the
   missing-text rate, and a status: ``ok``, ``watch`` (PSI >= 0.1) or ``act`` (>= 0.25),
   where a PSI counts only beyond what chance gives samples of tonight's size
   (:func:`chance_psi`): a night of 20 disputes shows a PSI above 1 on every feature when
   nothing changed.

:func:`riskmodel.lifecycle.log_monitoring_run` is the thin MLflow shell around a report.

Binning
-------
A numeric feature gets up to ``n_bins - 1`` distinct interior quantile edges ``e_1 < ... < e_k``
of its non-missing reference values, and bins ``x <= e_1``, ``e_1 < x <= e_2``, ...,
``x > e_k``, plus one bin for missing values. Edges are data values, so a point mass (a
count that is 0 for 70% of disputes) is one bin of its own and ties never split. A
categorical feature has one bin per training category plus one for missing (which is
where values unseen at training land in the feature matrix).

Group-level features
--------------------
A feature aggregated over a group of disputes (the ``context`` family: a station's
escalation count and rate) takes one value per group on a given night, so tonight's
distribution is a handful of point masses while the reference pools several monthly
snapshots: its PSI is large even when nothing changed. Such features are
*informational*: their PSI and level are reported, but they do not set the status.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._errors import ConfigError, ModelError
from ._tiers import TIERS

__all__ = [
    "DEFAULT_THRESHOLDS",
    "PSI_EPSILON",
    "build_reference",
    "check_thresholds",
    "chunk_counts",
    "drift_report",
    "drift_table",
    "merge_counts",
    "population_stability_index",
]

#: PSI levels: ``watch`` from 0.1, ``act`` from 0.25 (the usual credit-scoring rule of thumb).
DEFAULT_THRESHOLDS: dict[str, float] = {"watch": 0.1, "act": 0.25}
#: Proportion used in place of an empty bin's, so the logarithm stays finite.
PSI_EPSILON = 1e-4
REFERENCE_VERSION = 1
STATUSES = ("ok", "watch", "act")
#: A PSI sets a level only above the PSI chance stays under on this share of nights drawn
#: from the reference population (see :func:`chance_psi`)
CHANCE_QUANTILE = 0.999
_CHANCE_DRAWS = 4000
#: Simulated bin counts per side at most: above it (more than 250 bins, a categorical of
#: many categories) fewer pairs are drawn and the quantile read from a fitted chi-square
_CHANCE_CELLS = 1_000_000


# ------------------------------------------------------------------------------------------
# the statistic


def population_stability_index(expected, actual, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index between two binned distributions.

    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` with ``e_i = max(E_i / sum(E), epsilon)`` and
    ``a_i = max(A_i / sum(A), epsilon)``: the symmetrised Kullback-Leibler divergence of the
    two bin distributions. Empty bins get the proportion ``epsilon``, so a bin that is empty
    on one side contributes a large but finite term.

    Parameters
    ----------
    expected, actual : array-like of non-negative numbers
        Counts (or proportions) per bin, same bins in the same order.
    epsilon : float, default=1e-4

    Returns
    -------
    float
        0 for identical distributions; NaN when either side is empty.

    Raises
    ------
    ConfigError
        If the two sides have a different number of bins or a negative count.

    Examples
    --------
    >>> from riskmodel.model._drift import population_stability_index
    >>> round(population_stability_index([50, 50], [40, 60]), 6)  # -0.1 ln 0.8 + 0.1 ln 1.2
    0.040547
    >>> population_stability_index([1, 2], [1, 2, 3])
    Traceback (most recent call last):
    ...
    riskmodel._errors.ConfigError: PSI needs the same bins on both sides, got 2 and 3 bins.
    """
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape or e.ndim != 1:
        raise ConfigError(f"PSI needs the same bins on both sides, got {e.size} and {a.size} bins.")
    if (e < 0).any() or (a < 0).any():
        raise ConfigError("PSI bin counts must be non-negative.")
    if e.sum() <= 0 or a.sum() <= 0:
        return float("nan")
    return float(_psi(e, a, epsilon))


def _psi(e: np.ndarray, a: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """The PSI of bin counts along the last axis (rows: one PSI each); no side empty."""
    pe = np.maximum(e / e.sum(axis=-1, keepdims=True), epsilon)
    pa = np.maximum(a / a.sum(axis=-1, keepdims=True), epsilon)
    return np.sum((pa - pe) * np.log(pa / pe), axis=-1)


def chance_psi(reference, n_current: int, *, quantile: float = CHANCE_QUANTILE, draws: int = _CHANCE_DRAWS,
               seed: int = 0) -> float:
    """The PSI that chance alone stays under, on ``quantile`` of the nights, between the
    reference's counts and ``n_current`` rows of the same population.

    Both sides are drawn anew from the reference's bin shares (its own size and
    ``n_current``; ``draws`` pairs, a fixed ``seed``: the same figure every night) and
    their PSI taken as :func:`population_stability_index` takes it. Small samples leave
    bins empty, each adding about 0.7, so the PSI of a night of 20 disputes is above 1
    when nothing changed; from a few hundred disputes it is below the watch level. NaN
    when either side is empty.

    With many bins (a categorical of thousands of categories) ``draws`` pairs would take
    minutes and gigabytes: at most 1,000,000 bin counts are drawn per side (no fewer than
    50 pairs), and the quantile is that of the scaled chi-square with the draws' mean and
    variance. A PSI of many bins is a sum of many small terms, which that fits within
    about 2% (the tests compare it with the full draws); with few bins the draws' own
    quantile is kept, as the sum is too lumpy for a chi-square (up to 30% off at 5 bins).

    Examples
    --------
    >>> from riskmodel.model._drift import chance_psi
    >>> chance_psi([950] * 10 + [500], 20) > 1 > 0.1 > chance_psi([950] * 10 + [500], 5000)
    True
    """
    r = np.asarray(reference, dtype=float)
    n_reference = int(round(r.sum()))
    if n_reference <= 0 or n_current <= 0:
        return float("nan")
    shares = r / r.sum()
    affordable = max(_CHANCE_CELLS // r.size, 50)
    rng = np.random.default_rng(seed)
    size = min(draws, affordable)
    psi = _psi(rng.multinomial(n_reference, shares, size=size).astype(float),
               rng.multinomial(int(n_current), shares, size=size).astype(float))
    if size == draws:
        return float(np.quantile(psi, quantile))
    mean, var = psi.mean(), psi.var(ddof=1)
    if not var > 0:
        return float(mean)
    return float(var / (2 * mean) * stats.chi2.ppf(quantile, 2 * mean * mean / var))


def check_thresholds(thresholds: Mapping | None = None) -> dict[str, float]:
    """Validated ``{"watch": w, "act": a}`` (defaults filled in) with ``0 < w <= a``."""
    out = dict(DEFAULT_THRESHOLDS)
    unknown = sorted(set(thresholds or {}) - set(out))
    if unknown:
        raise ConfigError(f"drift thresholds have unknown key(s) {unknown}; use 'watch' and 'act'.")
    for key, value in (thresholds or {}).items():
        if value is None:
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"drift threshold {key!r} must be a number, got {value!r}.") from exc
    if not (0 < out["watch"] <= out["act"]) or not math.isfinite(out["act"]):
        raise ConfigError(
            f"drift thresholds must satisfy 0 < watch <= act, got watch={out['watch']}, act={out['act']}."
        )
    return out


def _status(psi: float | None, thresholds: Mapping[str, float], chance: float = float("nan")) -> str:
    """The level ``psi`` reaches, ``ok`` when chance alone gives as much (``chance``, see
    :func:`chance_psi`)."""
    if psi is None or not math.isfinite(psi) or psi <= chance:
        return "ok"
    if psi >= thresholds["act"]:
        return "act"
    if psi >= thresholds["watch"]:
        return "watch"
    return "ok"


# ------------------------------------------------------------------------------------------
# binning


def _quantile_edges(values: np.ndarray, n_bins: int) -> list[float]:
    x = values[~np.isnan(values)].astype(np.float64)
    if len(x) == 0:
        return []
    qs = np.linspace(0, 1, n_bins + 1)[1:-1]
    return np.unique(np.quantile(x, qs, method="inverted_cdf")).tolist()


def _numeric_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin: ``len(edges) + 1`` value bins, then the missing bin.

    One comparison and count per edge (NaN compares false), in the column's own float
    dtype when the edges are exact in it (they are data values), so no copy is made.
    """
    x = np.asarray(values)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    e = edges.astype(x.dtype)
    if not np.array_equal(e.astype(np.float64), edges):
        x, e = x.astype(np.float64), edges
    n_valid = len(x) - int(np.count_nonzero(np.isnan(x)))
    at_most = [np.count_nonzero(x <= v) for v in e]
    return np.diff(np.asarray([0, *at_most, n_valid, len(x)], dtype=np.int64))


def _categorical_bins(values: pd.Series, categories: list[str]) -> np.ndarray:
    """Counts per training category, then the missing bin (missing and unseen values)."""
    k = len(categories)
    if isinstance(values.dtype, pd.CategoricalDtype):
        own = [str(c) for c in values.cat.categories]
        codes = values.cat.codes.to_numpy().astype(np.int64)
        if own != categories:
            remap = np.append(pd.Index(categories).get_indexer(own), -1)
            codes = remap[codes]  # code -1 picks the appended -1
    else:
        text = values.astype(object).where(values.notna(), None)
        codes = pd.Index(categories).get_indexer(text.map(lambda v: v if v is None else str(v)))
    codes = np.where(codes < 0, k, codes)
    return np.bincount(codes, minlength=k + 1)


def _column(X: pd.DataFrame, name: str):
    if name not in X.columns:
        raise ModelError(
            f"the monitoring reference has feature {name!r} but the feature matrix has no such "
            "column; the reference belongs to another model version."
        )
    return X[name]


def _event_sums(X: pd.DataFrame, columns: Mapping[str, str | None]) -> dict[str, float | None]:
    """Events before ``as_of``, those of kinds outside the training vocabulary, those
    without narrative text: summed over rows from the count / share features."""
    events_col = columns.get("events")
    if not events_col or events_col not in X.columns:
        return {"events": None, "other_kind_events": None, "missing_text_events": None}
    n_events = np.nan_to_num(X[events_col].to_numpy(dtype=np.float64))
    out: dict[str, float | None] = {"events": float(n_events.sum())}
    other = columns.get("other_kind_events")
    out["other_kind_events"] = (float(np.nan_to_num(X[other].to_numpy(dtype=np.float64)).sum())
                                if other and other in X.columns else None)
    share = columns.get("missing_text_share")
    out["missing_text_events"] = (
        float(np.round(np.nansum(X[share].to_numpy(dtype=np.float64) * n_events)))
        if share and share in X.columns else None
    )
    return out


def _unseen_categories(raw: Mapping[str, pd.Series] | None, vocab: Mapping[str, list]) -> dict[str, int]:
    """Rows whose raw category value is present but not in the training vocabulary."""
    out = {}
    for col, categories in vocab.items():
        values = None if raw is None else raw.get(col)
        if values is None:
            out[col] = 0
            continue
        values = pd.Series(values)
        known = pd.Index(categories)
        if isinstance(values.dtype, pd.CategoricalDtype):
            cats_in = np.append(known.get_indexer(values.cat.categories.astype(str)) >= 0, True)
            codes = values.cat.codes.to_numpy()
            out[col] = int(((codes >= 0) & ~cats_in[codes]).sum())
        else:
            present = values.notna().to_numpy()
            text = values[present].astype(str)
            out[col] = int((known.get_indexer(text) < 0).sum())
    return out


def _tier_counts(tiers) -> dict[str, int]:
    t = pd.Series(tiers)
    if not isinstance(t.dtype, pd.CategoricalDtype):
        t = t.astype(object).astype("category")
    counts = np.bincount(t.cat.codes.to_numpy() + 1, minlength=len(t.cat.categories) + 1)[1:]
    by_name = dict(zip(t.cat.categories.astype(str), counts.tolist(), strict=True))
    return {name: int(by_name.get(name, 0)) for name in TIERS}


# ------------------------------------------------------------------------------------------
# reference, counts, merge


def build_reference(
    X: pd.DataFrame,
    probability,
    tiers,
    *,
    n_bins: int = 10,
    event_columns: Mapping[str, str | None] | None = None,
    categories: Mapping[str, list] | None = None,
    raw_categories: Mapping[str, pd.Series] | None = None,
    informational=(),
) -> dict:
    """Bin definitions and counts of the reference population, as plain data.

    Parameters
    ----------
    X : DataFrame
        The reference feature matrix (numeric and ``category`` columns).
    probability : array-like
        Calibrated scores of the same rows.
    tiers : array-like of str
        Their tiers (``red`` / ``yellow`` / ``blue``).
    n_bins : int, default=10
        Quantile bins per numeric feature and for the score (fewer when values tie).
    event_columns : mapping, optional
        Feature names for the event-level rates: ``events`` (events before ``as_of``),
        ``other_kind_events`` (those of kinds outside the training vocabulary) and
        ``missing_text_share`` (share of them without narrative).
    categories : mapping of str to list, optional
        Training vocabulary of each raw categorical attribute, for unseen-value rates.
    raw_categories : mapping of str to Series, optional
        The reference rows' raw attribute values (default: none unseen).
    informational : sequence of str, default=()
        Features whose PSI is reported but does not set the overall status (see the
        module notes on group-level features).

    Returns
    -------
    dict
        ``{"version", "bins": {...}, "counts": {...}}``; ``counts`` has the shape
        :func:`chunk_counts` returns.
    """
    if n_bins < 2:
        raise ConfigError(f"n_bins must be at least 2, got {n_bins}.")
    probability = np.asarray(probability, dtype=np.float64)
    if len(probability) != len(X):
        raise ConfigError(f"{len(probability)} reference scores for {len(X)} feature rows.")
    features = []
    for name in X.columns:
        col = X[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            features.append({"name": str(name), "type": "categorical",
                             "categories": [str(c) for c in col.cat.categories]})
        else:
            values = col.to_numpy(dtype=np.float64, na_value=np.nan)
            features.append({"name": str(name), "type": "numeric", "edges": _quantile_edges(values, n_bins)})
    bins = {
        "n_bins": int(n_bins),
        "features": features,
        "score_edges": _quantile_edges(probability, n_bins),
        "event_columns": dict(event_columns or {}),
        "categories": {str(k): [str(v) for v in vals] for k, vals in (categories or {}).items()},
        "informational": [str(n) for n in informational if n in X.columns],
    }
    reference = {"version": REFERENCE_VERSION, "bins": bins}
    reference["counts"] = chunk_counts(reference, X, probability, tiers, raw_categories=raw_categories)
    return reference


def chunk_counts(reference: Mapping | None, X: pd.DataFrame, probability, tiers, *,
                 raw_categories: Mapping[str, pd.Series] | None = None) -> dict:
    """Bin counts of scored rows in the reference's bins; additive across chunks.

    Parameters
    ----------
    reference : dict or None
        From :func:`build_reference`; ``None`` (a model without a monitoring reference)
        gives only the row and tier counts.
    X : DataFrame
        The rows' feature matrix.
    probability, tiers : array-like
        Their calibrated scores and tiers.
    raw_categories : mapping of str to Series, optional
        Raw attribute values, for unseen-value counts: of every row, or only of the rows
        whose categorical feature is missing (the only ones an unseen value can be in).

    Returns
    -------
    dict
        JSON-able: ``n``, ``tiers``, and with a reference ``features`` (name -> counts),
        ``score``, ``events``, ``other_kind_events``, ``missing_text_events``,
        ``unseen_categories``.
    """
    out: dict = {"n": int(len(X)), "tiers": _tier_counts(tiers)}
    if not reference or "bins" not in reference:
        return out
    bins = reference["bins"]
    feats: dict[str, list[int]] = {}
    for spec in bins["features"]:
        col = _column(X, spec["name"])
        if spec["type"] == "categorical":
            counts = _categorical_bins(col, spec["categories"])
        else:
            if isinstance(col.dtype, pd.CategoricalDtype):
                raise ModelError(f"feature {spec['name']!r} is numeric in the monitoring reference but "
                                 "categorical in the feature matrix.")
            values = col.to_numpy() if col.dtype.kind == "f" else col.to_numpy(dtype=np.float64, na_value=np.nan)
            counts = _numeric_bins(values, np.asarray(spec["edges"], dtype=np.float64))
        feats[spec["name"]] = counts.tolist()
    out["features"] = feats
    out["score"] = _numeric_bins(np.asarray(probability, dtype=np.float64),
                                 np.asarray(bins["score_edges"], dtype=np.float64)).tolist()
    out.update(_event_sums(X, bins.get("event_columns", {})))
    out["unseen_categories"] = _unseen_categories(raw_categories, bins.get("categories", {}))
    return out


def merge_counts(*parts: Mapping | None) -> dict | None:
    """Sum counts from :func:`chunk_counts` (``None`` parts are skipped).

    Numbers add, lists add element-wise, mappings merge key by key; a value that is
    ``None`` in a part (a rate the model cannot measure) stays ``None`` only if it is
    ``None`` in every part.
    """
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return _merge(parts)


def _merge(values: list):
    present = [v for v in values if v is not None]
    if not present:
        return None
    first = present[0]
    if isinstance(first, Mapping):
        keys = list(dict.fromkeys(k for v in present for k in v))
        return {k: _merge([v.get(k) for v in present]) for k in keys}
    if isinstance(first, list | tuple):
        lengths = {len(v) for v in present}
        if len(lengths) != 1:
            raise ModelError(f"cannot merge bin counts of different lengths {sorted(lengths)}; the chunks "
                             "were counted against different references.")
        return np.sum(np.asarray(present, dtype=np.int64), axis=0).tolist()  # lists are bin counts
    total = sum(present)
    return int(total) if all(isinstance(v, int | np.integer) for v in present) else float(total)


# ------------------------------------------------------------------------------------------
# the report


def _rate(numerator, denominator) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return float(numerator) / float(denominator)


def _shares(tiers: Mapping | None) -> dict[str, float] | None:
    if not tiers:
        return None
    total = sum(tiers.get(t, 0) for t in TIERS)
    if total == 0:
        return None
    return {t: tiers.get(t, 0) / total for t in TIERS}


def _worst(statuses) -> str:
    rank = {s: i for i, s in enumerate(STATUSES)}
    return max(statuses, key=lambda s: rank[s], default="ok")


def _change(spec: Mapping, ref: Sequence[float], cur: Sequence[float]) -> dict:
    """What moved in one feature's distribution, from bin counts (no raw values needed).

    ``missing``: the share in the missing bin, reference and tonight. Numeric:
    ``typical_rank``, where tonight's values sit, on average, in the reference's
    distribution (0.5: no shift; 0.62: higher, like the reference's 62nd percentile).
    Categorical: ``category`` whose share moved most, ``reference`` and ``current`` shares.
    """
    ref, cur = np.asarray(ref, dtype=float), np.asarray(cur, dtype=float)
    out: dict = {"missing": [float(ref[-1] / ref.sum()) if ref.sum() else None,
                             float(cur[-1] / cur.sum()) if cur.sum() else None]}
    r, c = ref[:-1], cur[:-1]
    if r.sum() == 0 or c.sum() == 0:
        return out
    r, c = r / r.sum(), c / c.sum()
    if spec.get("type") == "categorical":
        k = int(np.argmax(np.abs(c - r)))
        out.update(category=str(spec["categories"][k]), reference=float(r[k]), current=float(c[k]))
    else:
        mid = np.cumsum(r) - r / 2  # each bin's middle rank in the reference
        out["typical_rank"] = float(np.dot(c, mid))
    return out


def drift_report(reference: Mapping | None, counts: Mapping | None, thresholds: Mapping | None = None) -> dict:
    """Compare tonight's counts with the reference.

    Parameters
    ----------
    reference : dict or None
        From :func:`build_reference` (``model.reference_["monitoring"]``).
    counts : dict or None
        :func:`merge_counts` of the chunks' :func:`chunk_counts`.
    thresholds : mapping, optional
        ``{"watch": 0.1, "act": 0.25}`` by default (see :func:`check_thresholds`).

    Returns
    -------
    dict
        ``status`` (``ok`` / ``watch`` / ``act``: the worst of the score's and the features'
        levels, each PSI counting only above its ``chance_psi``; ``no_reference`` for a model
        saved without a reference, ``no_data`` when no dispute was scored), ``thresholds``,
        ``score_psi``, ``score_chance_psi`` (see :func:`chance_psi`), ``features`` (name, psi,
        chance_psi, status,
        ``informational``, ``change`` (see ``_change``: where the values moved), sorted by
        PSI descending), ``tier_shares`` (reference, current), ``unseen_rate``
        (current ``categories`` per column and ``kinds``), ``reference_unseen_rate``,
        ``missing_text_rate`` (reference, current), ``n_reference``, ``n_current``,
        ``sample_noise_psi`` (the PSI chance alone gives samples of these sizes, see
        :func:`sample_noise_psi`; the warning says so when it nears the watch level).
        Rates the model cannot measure (no text column, no entities) are ``None``.
    """
    thresholds = check_thresholds(thresholds)
    counts = dict(counts or {})
    n_current = int(counts.get("n", 0) or 0)
    report: dict = {
        "status": "no_reference",
        "thresholds": thresholds,
        "score_psi": None,
        "features": [],
        "tier_shares": {"reference": None, "current": _shares(counts.get("tiers"))},
        "unseen_rate": {"categories": {}, "kinds": None},
        "reference_unseen_rate": {"categories": {}, "kinds": None},
        "missing_text_rate": {"reference": None, "current": None},
        "n_reference": None,
        "n_current": n_current,
        "sample_noise_psi": None,
        "score_chance_psi": None,
    }
    if not reference or "bins" not in reference or "counts" not in reference:
        return report
    ref = reference["counts"]
    report["n_reference"] = int(ref["n"])
    report["tier_shares"]["reference"] = _shares(ref.get("tiers"))
    report["reference_unseen_rate"] = {
        "categories": {c: _rate(v, ref["n"]) for c, v in (ref.get("unseen_categories") or {}).items()},
        "kinds": _rate(ref.get("other_kind_events"), ref.get("events")),
    }
    report["missing_text_rate"]["reference"] = _rate(ref.get("missing_text_events"), ref.get("events"))
    if n_current == 0 or "features" not in counts:
        report["status"] = "no_data"
        return report
    report["unseen_rate"] = {
        "categories": {c: _rate(v, n_current) for c, v in (counts.get("unseen_categories") or {}).items()},
        "kinds": _rate(counts.get("other_kind_events"), counts.get("events")),
    }
    report["missing_text_rate"]["current"] = _rate(counts.get("missing_text_events"), counts.get("events"))
    score_psi = population_stability_index(ref["score"], counts["score"])
    report["score_psi"] = score_psi
    report["score_chance_psi"] = chance_psi(ref["score"], sum(counts["score"]))
    report["sample_noise_psi"] = sample_noise_psi(reference["bins"].get("n_bins", 10), report["n_reference"],
                                                  n_current)
    rows = []
    informational = set(reference["bins"].get("informational", []))
    for spec in reference["bins"]["features"]:
        name = spec["name"]
        psi = population_stability_index(ref["features"][name], counts["features"][name])
        chance = chance_psi(ref["features"][name], sum(counts["features"][name]))
        rows.append({"name": name, "psi": psi, "chance_psi": chance, "status": _status(psi, thresholds, chance),
                     "informational": name in informational,
                     "change": _change(spec, ref["features"][name], counts["features"][name])})
    rows.sort(key=lambda r: (-(r["psi"] if math.isfinite(r["psi"]) else -1.0), r["name"]))
    report["features"] = rows
    report["status"] = _worst([_status(score_psi, thresholds, report["score_chance_psi"])]
                              + [r["status"] for r in rows if not r["informational"]])
    return report


def sample_noise_psi(n_bins: int, n_reference: int, n_current: int) -> float:
    """The PSI two samples of the same population show by chance, about
    ``(bins - 1) * (1 / n_reference + 1 / n_current)`` (``bins`` counting the missing bin):
    where it nears the watch level, statuses mostly measure the sample sizes."""
    if not n_reference or not n_current:
        return float("nan")
    return float(n_bins * (1.0 / n_reference + 1.0 / n_current))


def drift_table(report: Mapping, reference: Mapping | None = None, counts: Mapping | None = None) -> pd.DataFrame:
    """The per-feature table of a report (``drift.parquet``).

    Columns ``feature``, ``type``, ``psi``, ``chance_psi`` (see :func:`chance_psi`), ``status``, ``informational``,
    ``reference_missing_share`` and ``current_missing_share`` (share in the missing bin),
    sorted by PSI descending.
    """
    types, ref_missing, cur_missing = {}, {}, {}
    if reference and "bins" in reference and counts and "features" in counts:
        for spec in reference["bins"]["features"]:
            name = spec["name"]
            types[name] = spec["type"]
            r, c = reference["counts"]["features"][name], counts["features"][name]
            ref_missing[name] = r[-1] / sum(r) if sum(r) else np.nan
            cur_missing[name] = c[-1] / sum(c) if sum(c) else np.nan
    rows = report.get("features", [])
    return pd.DataFrame({
        "feature": pd.Series([r["name"] for r in rows], dtype=object),
        "type": pd.Series([types.get(r["name"]) for r in rows], dtype=object),
        "psi": pd.Series([r["psi"] for r in rows], dtype=float),
        "chance_psi": pd.Series([r.get("chance_psi", np.nan) for r in rows], dtype=float),
        "status": pd.Series([r["status"] for r in rows], dtype=object),
        "informational": pd.Series([bool(r.get("informational")) for r in rows], dtype=bool),
        "reference_missing_share": pd.Series([ref_missing.get(r["name"], np.nan) for r in rows], dtype=float),
        "current_missing_share": pd.Series([cur_missing.get(r["name"], np.nan) for r in rows], dtype=float),
    })


def drift_message(report: Mapping) -> str:
    """One line for a warning or a log: status, score PSI and the drifting features."""
    flagged = [f"{r['name']} {r['psi']:.3f}" for r in report.get("features", [])
               if r["status"] != "ok" and not r.get("informational")]
    shown = ", ".join(flagged[:8]) + (f", ... ({len(flagged) - 8} more)" if len(flagged) > 8 else "")
    score = report.get("score_psi")
    noise = report.get("sample_noise_psi")
    small = ""
    if noise is not None and math.isfinite(noise) and noise >= report["thresholds"]["watch"] / 2:
        small = (f"; small samples (reference {report.get('n_reference'):,}, tonight {report.get('n_current'):,} "
                 f"disputes): chance alone gives a PSI of about {noise:.2f} per feature, so a PSI sets the status "
                 "only above what chance stays under on 999 nights in 1000 at these sizes"
                 + (f" ({report['score_chance_psi']:.2f} for the score)" if report.get("score_chance_psi") else ""))
    return (f"drift status {report['status']!r} (watch >= {report['thresholds']['watch']}, act >= "
            f"{report['thresholds']['act']}): score PSI {score:.3f}" if score is not None else
            f"drift status {report['status']!r}: score PSI n/a") + (f"; features: {shown}" if flagged else "") + small


# ------------------------------------------------------------------------------------------
# MLflow shell


def monitoring_metrics(report: Mapping) -> dict[str, float]:
    """The report's figures as flat MLflow metrics (unmeasurable rates left out)."""
    level = {"ok": 0.0, "watch": 1.0, "act": 2.0}
    metrics: dict[str, float] = {"n_scored": float(report.get("n_current") or 0)}
    if report.get("status") in level:
        metrics["status_level"] = level[report["status"]]
    if report.get("score_psi") is not None:
        metrics["score_psi"] = float(report["score_psi"])
    feats = report.get("features", [])
    if feats:
        metrics["feature_psi_max"] = float(max(r["psi"] for r in feats))
        metrics["features_watch"] = float(sum(r["status"] == "watch" for r in feats))
        metrics["features_act"] = float(sum(r["status"] == "act" for r in feats))
    for r in feats:
        metrics[f"psi.{r['name']}"] = float(r["psi"])
    for side in ("reference", "current"):
        for tier, share in (report["tier_shares"].get(side) or {}).items():
            metrics[f"tier_share.{side}.{tier}"] = float(share)
        if report["missing_text_rate"].get(side) is not None:
            metrics[f"missing_text_rate.{side}"] = float(report["missing_text_rate"][side])
    for col, rate in report["unseen_rate"]["categories"].items():
        if rate is not None:
            metrics[f"unseen_rate.{col}"] = float(rate)
    if report["unseen_rate"].get("kinds") is not None:
        metrics["unseen_rate.kinds"] = float(report["unseen_rate"]["kinds"])
    return {k: v for k, v in metrics.items() if math.isfinite(v)}


def warn_if_drifting(report: Mapping, category=None) -> None:
    """Issue a :class:`~riskmodel.DataWarning` when the status is ``watch`` or ``act``."""
    from .._errors import DataWarning

    if report.get("status") in ("watch", "act"):
        warnings.warn(drift_message(report), category or DataWarning, stacklevel=3)


def raw_attributes(entities: pd.DataFrame | None, id_col: str, ids, columns) -> dict[str, pd.Series] | None:
    """The entities' raw values of ``columns`` for ``ids`` (missing where an id has no row),
    for :func:`chunk_counts`' unseen-value counts.

    The entities are first cut down to ``ids`` with one Arrow hash lookup, so passing only
    the rows whose categorical feature is missing (the only rows that can hold an unseen
    value) makes this nearly free on a night without unseen values.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if entities is None or not len(columns):
        return None
    ids = np.asarray(ids, dtype=object)
    columns = [c for c in columns if c in entities.columns]
    if len(ids) < len(entities):
        keep = pc.is_in(pa.array(entities[id_col], from_pandas=True),
                        value_set=pa.array(ids, from_pandas=True)).to_numpy(zero_copy_only=False)
        entities = entities[keep]
    rows = pd.Index(entities[id_col].to_numpy(dtype=object)).get_indexer(ids)
    out = {}
    for col in columns:
        values = entities[col]
        if isinstance(values.dtype, pd.CategoricalDtype):
            codes = np.where(rows >= 0, values.cat.codes.to_numpy()[np.maximum(rows, 0)], -1) if len(values) else \
                np.full(len(ids), -1)
            out[col] = pd.Series(pd.Categorical.from_codes(codes, dtype=values.dtype))
        else:
            taken = values.to_numpy(dtype=object)[np.maximum(rows, 0)] if len(values) else np.full(len(ids), None)
            out[col] = pd.Series(np.where(rows >= 0, taken, None), dtype=object)
    return out
