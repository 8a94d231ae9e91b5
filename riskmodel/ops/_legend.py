"""What the nightly outputs mean, in words: the tiers and their thresholds tonight, what ``p``
is, the horizon, the model and its backtest in one line.

The report's legend and ``riskmodel explain`` both read them from the night's scores and
the model facts the batch copies into its manifest (:func:`riskmodel.model.model_facts`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..data import duration_text
from ..model import TIERS

__all__ = ["backtest_line", "horizon_words", "night_rule", "p_meaning", "policy_rule", "tier_floors", "tier_legend",
           "tier_thresholds"]

TIER_WORDS = {"red": ("红", "track continuously"), "yellow": ("黄", "mediate in time"), "blue": ("蓝", "watch")}


def tier_floors(scores: pd.DataFrame, mask: np.ndarray | None = None) -> dict[str, float | None]:
    """The lowest probability that got each tier tonight (cases lifted by a rule aside).

    That is the threshold each tier had in effect tonight, whatever set it (a share of
    tonight's disputes, a station's capacity or a fixed cut-off). ``mask`` restricts the
    rows (e.g. one station's). ``None`` for a tier nobody got.
    """
    frame = scores if mask is None else scores[np.asarray(mask, dtype=bool)]
    tier = frame["tier"].astype(object).to_numpy()
    lifted = _lifted(frame)
    p = pd.to_numeric(frame["probability"], errors="coerce").to_numpy(dtype=float)
    out: dict[str, float | None] = {}
    for t in TIERS:
        values = p[(tier == t) & ~lifted]
        out[t] = float(np.nanmin(values)) if np.isfinite(values).any() else None
    return out


def _lifted(frame: pd.DataFrame) -> np.ndarray:
    if "overrides" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    return (frame["overrides"].fillna("").astype(str) != "").to_numpy()


def tier_thresholds(scores: pd.DataFrame, policy: Mapping | None = None,
                    mask: np.ndarray | None = None) -> dict:
    """The probability thresholds of red and yellow in effect tonight.

    The model's cut-offs (``policy``: a tier policy's ``to_dict()`` or model facts'
    ``tier_policy``) when tonight's tiers follow them; otherwise (tiers set per station by
    capacity, say) the lowest ``p`` that got each tier among the ``mask`` rows.

    Returns
    -------
    dict
        ``red``, ``yellow`` (float or None) and ``source``: ``"model"`` or ``"tonight"``.
    """
    policy = policy or {}
    red, yellow = policy.get("red_threshold", policy.get("red_threshold_")), \
        policy.get("yellow_threshold", policy.get("yellow_threshold_"))
    if red is not None and yellow is not None and len(scores):
        keep = ~_lifted(scores)
        tier = scores["tier"].astype(object).to_numpy()[keep]
        p = pd.to_numeric(scores["probability"], errors="coerce").to_numpy(dtype=float)[keep]
        follows = ((tier == "red") == (p >= red)) & ((tier == "blue") == (p < yellow))
        if follows.all():
            return {"red": float(red), "yellow": float(yellow), "source": "model"}
    floors = tier_floors(scores, mask)
    return {"red": floors["red"], "yellow": floors["yellow"], "source": "tonight"}


def policy_rule(policy: Mapping | None) -> dict[str, str]:
    """Each tier's rule in words, from a tier policy's ``to_dict()`` / model facts."""
    if not policy:
        return {t: "" for t in TIERS}
    method, red, yellow = policy.get("method"), policy.get("red"), policy.get("yellow")
    if method == "share" and red is not None and yellow is not None:
        return {"red": f"the top {red:.0%} of open disputes", "yellow": f"the next {yellow:.0%}",
                "blue": f"the other {max(0.0, 1 - red - yellow):.0%}"}
    if method == "probability" and red is not None and yellow is not None:
        return {"red": f"p ≥ {red:.3g}", "yellow": f"{yellow:.3g} ≤ p < {red:.3g}", "blue": f"p < {yellow:.3g}"}
    if method == "precision" and red is not None and yellow is not None:
        return {"red": f"cut where {red:.0%} of the flagged escalated in calibration",
                "yellow": f"cut where {yellow:.0%} did", "blue": "the rest"}
    return {t: "" for t in TIERS}


def night_rule(tiers: Mapping | None, policy: Mapping | None = None) -> tuple[dict[str, str], str | None]:
    """Each tier's rule in words as a night applied it, and the area column it was applied per.

    Parameters
    ----------
    tiers : mapping or None
        The manifest's ``tiers`` block (``applied``, ``method``, ``red``, ``yellow``, ``by``,
        ``capacity``, ``trained_thresholds``).
    policy : mapping, optional
        The model's tier policy (model facts' ``tier_policy``): the rule of a night whose
        manifest does not record one.

    Returns
    -------
    rules : dict
        ``red``, ``yellow``, ``blue``: the rule in words (see :func:`policy_rule`).
    by : str or None
        The area column the tiers were set per (e.g. ``station``); ``None``: city-wide.
    """
    if not isinstance(tiers, Mapping) or not tiers.get("applied"):
        return policy_rule(policy), None
    if tiers["applied"] != "per_night":  # the trained cut-offs, whatever the method
        cut = tiers.get("trained_thresholds") or {}
        return policy_rule({"method": "probability", "red": cut.get("red"), "yellow": cut.get("yellow")}), None
    rules, by = policy_rule(tiers), tiers.get("by") or None
    red, yellow, capacity = tiers.get("red"), tiers.get("yellow"), tiers.get("capacity") or {}
    if by and tiers.get("method") == "share" and red is not None and yellow is not None:
        own = f"each {by}'s"
        rules = {"red": f"the top {red:.0%} of {own} open disputes, rounded down", "yellow": f"the next {yellow:.0%} of {own}",
                 "blue": f"the rest of {own}"}
        if red > 0:  # as night_tiers counts: floor(red * n)
            rules["red"] += f" (a {by} with fewer than {math.ceil((1 - 1e-9) / red)} gets none)"
        if capacity:
            rules["red"] += f"; in the {len(capacity)} {by}(s) with a capacity, as many as it takes"
            if any("yellow" in c for c in capacity.values()):
                rules["yellow"] += " (its yellow capacity where one is set)"
    return rules, by


def tier_legend(scores: pd.DataFrame, facts: Mapping | None = None, tiers: Mapping | None = None) -> pd.DataFrame:
    """One row per tier: its name (中文), what to do, its rule (as the night applied it:
    ``tiers``, the manifest's block, see :func:`night_rule`; else the model's policy),
    tonight's count and share, and its threshold tonight (the lowest ``p`` that got it; per
    area when the tiers were set per area)."""
    facts = facts or {}
    rules, by = night_rule(tiers, facts.get("tier_policy"))
    cuts = tier_thresholds(scores, facts.get("tier_policy"))
    tier = scores["tier"].astype(object)
    n = max(len(scores), 1)
    rows = []
    for t in TIERS:
        count = int((tier == t).sum())
        zh, action = TIER_WORDS[t]
        if t == "blue":
            threshold = (f"under its {by}'s yellow threshold" if by and cuts["source"] != "model" else
                         f"p < {cuts['yellow']:.3f}" if cuts["yellow"] is not None else "")
        else:
            cut = cuts[t]
            threshold = "nobody tonight" if cut is None else (
                f"p ≥ {cut:.3f}" if cuts["source"] == "model" else
                f"each {by} its own (see Tiers tonight); the lowest p ≥ {cut:.3f}" if by else
                f"p ≥ {cut:.3f} (the lowest tonight)")
        rows.append({"tier": t, "zh": zh, "action": action, "rule": rules[t], "n": count, "share": count / n,
                     "threshold": threshold})
    return pd.DataFrame(rows)


def horizon_words(facts: Mapping | None, default: str | None = None) -> str | None:
    """The horizon the model's probability speaks of, in words (``"90 days"``)."""
    value = (facts or {}).get("horizon") or default
    if not value:
        return None
    try:
        return duration_text(value)
    except (ValueError, TypeError):
        return str(value)


def p_meaning(horizon: str | None) -> str:
    """What ``p`` is, in one sentence."""
    within = f"in the {horizon} after tonight" if horizon else "within the model's horizon after tonight"
    return (f"p is the chance that the dispute escalates, turns violent (民转刑), {within}; "
            "calibrated: of 100 disputes with p = 0.20, about 20 escalate.")


def backtest_line(facts: Mapping | None) -> str:
    """The model's backtest figures in one line, or a note that they are not recorded."""
    bt = (facts or {}).get("backtest") or {}
    if not bt.get("roc_auc"):
        return "backtest figures: not recorded with this model (train it with `riskmodel train`)."
    parts = [f"backtest on {bt.get('test_start', '?')} .. {bt.get('test_end', '?')}: "
             f"ROC-AUC {bt['roc_auc']:.2f}"]
    if bt.get("roc_auc_lower") is not None and bt.get("roc_auc_upper") is not None:
        parts[0] += f" [{bt['roc_auc_lower']:.2f}, {bt['roc_auc_upper']:.2f}]"
    if bt.get("brier") is not None:
        parts.append(f"Brier {bt['brier']:.3f}")
    if bt.get("n_positive") and bt.get("n"):
        parts.append(f"base rate {bt['n_positive'] / bt['n']:.1%}")
    hits = [f"{t} {bt[f'tier_{t}_hit_rate']:.0%}" for t in TIERS if bt.get(f"tier_{t}_hit_rate") is not None]
    if hits:
        parts.append("escalated within the horizon: " + ", ".join(hits))
    return "; ".join(parts) + "."
