"""The few facts about a model that the readers of its outputs need: how its tiers are set,
the horizon its probability speaks of, and how it did in its backtest.

The nightly batch copies them into its manifest (``model``), so the report's legend and
``riskmodel explain`` can say what red means and what ``p`` is without the model at hand.
"""

from __future__ import annotations

import math

__all__ = ["model_facts"]


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def model_facts(model) -> dict:
    """JSON-able facts of a fitted :class:`RiskModel`.

    Returns
    -------
    dict
        ``tier_policy``: ``method``, ``red``, ``yellow`` (shares, cut-offs or precisions),
        ``red_threshold``, ``yellow_threshold`` (the probability cut-offs set at fit);
        ``horizon`` (e.g. ``"90D"``) and ``backtest`` (last-fold figures) when the model was
        trained by :func:`riskmodel.train`, which records them; otherwise absent.
    """
    policy = model.tier_policy_
    facts: dict = {
        "tier_policy": {
            "method": policy.method,
            "red": _number(policy.red),
            "yellow": _number(policy.yellow),
            "red_threshold": _number(policy.red_threshold_),
            "yellow_threshold": _number(policy.yellow_threshold_),
            "overrides": [o.name for o in policy.overrides],
        }
    }
    summary = getattr(model, "training_summary_", None) or {}
    if summary.get("horizon"):
        facts["horizon"] = str(summary["horizon"])
    if isinstance(summary.get("backtest"), dict):
        facts["backtest"] = {k: v for k, v in summary["backtest"].items() if v is not None}
    return facts
