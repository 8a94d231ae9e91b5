"""The model card: a markdown page logged with every registered version."""

from __future__ import annotations

import pandas as pd

__all__ = ["model_card"]


def _table(frame: pd.DataFrame, floatfmt: str = "{:.4f}") -> str:
    frame = frame.copy()
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        cells = [floatfmt.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _metrics_table(metrics: dict) -> pd.DataFrame:
    scorers = sorted({k.split("_roc_auc")[0] for k in metrics if k.endswith("_roc_auc")})
    rows = []
    for s in scorers:
        row = {"scorer": s}
        for m in ("roc_auc", "average_precision", "brier", "ece"):
            v = metrics.get(f"{s}_{m}")
            lo, hi = metrics.get(f"{s}_{m}_lower"), metrics.get(f"{s}_{m}_upper")
            row[m] = "" if v is None else (f"{v:.4f}" + (f" [{lo:.4f}, {hi:.4f}]" if lo is not None and hi is not None else ""))
        rows.append(row)
    return pd.DataFrame(rows)


def _protocol_text(summary: dict) -> str:
    if summary.get("protocol") == "holdout":
        return (f"Time-ordered split: {summary.get('n_train', 0):,} train, {summary.get('n_validation', 0):,} "
                f"early-stopping, {summary.get('n_calibration', 0):,} calibration rows.")
    spread = summary.get("fold_spread", {})
    auc, brier = spread.get("roc_auc") or {}, spread.get("brier") or {}

    def fmt(d, digits):
        if d.get("mean") is None:
            return "n/a"
        return f"{d['mean']:.{digits}f} (sd {d['sd']:.{digits}f}, {d['min']:.{digits}f}-{d['max']:.{digits}f})"

    notes = "".join(f"\n  - note: {n}" for n in summary.get("notes", []))
    members = (summary.get("seed_bagging") or {}).get("members", 1)
    bagged = f" for each of {members} seeds (averaged: seed bagging)" if members > 1 else ""
    return (f"Forward-chaining {summary.get('fold_kind', 'time')} folds ({len(summary.get('folds', []))}, gap "
            f"{summary.get('gap')}) chose {summary.get('n_rounds')} rounds of {summary.get('num_leaves')}-leaf trees"
            f"{bagged}; "
            f"the final trees grew on all {summary.get('n_final', 0):,} rows; the calibrator saw "
            f"{summary.get('n_calibration', 0):,} out-of-fold rows (half-life "
            f"{(summary.get('calibration') or {}).get('half_life')}). Fold AUC {fmt(auc, 3)}, Brier "
            f"{fmt(brier, 4)}.{notes}")


def _champion_text(champion: dict | None) -> str:
    """How this version compares with the champion of its training day (see ``_score_champion``)."""
    if not champion:
        return "No champion existed when this version was trained."
    head = f"Current champion (version {champion['version']})"
    figures = "ROC-AUC {roc_auc}, Brier {brier}".format(
        roc_auc=f"{champion['roc_auc']:.4f}" if "roc_auc" in champion else "undefined",
        brier=f"{champion['brier']:.5f}" if "brier" in champion else "undefined")
    basis = champion.get("basis", "same_rows")
    if basis == "none":
        return f"{head}: not compared: {champion['why']}."
    if basis == "own_backtests":
        base = (f"; its fold's base rate scored Brier {champion['base_rate_brier']:.5f} (the gate compares each "
                "Brier relative to its own fold's base rate's)" if "base_rate_brier" in champion else "")
        return (f"{head} on its own backtest's last fold (no row of this fold was out of sample for both): "
                f"{figures}{base}.")
    return (f"{head} on the {champion['n']:,} rows of the last fold after its own data ended "
            f"({champion['n_positive']:,} positive): {figures}; this version on the same rows: ROC-AUC "
            f"{champion['challenger_roc_auc']:.4f}, Brier {champion['challenger_brier']:.5f}.")


def _outcomes(kinds) -> str:
    """The outcome kinds in words: ``'a'``, ``'a' or 'b'``, ``'a', 'b' or 'c'``."""
    quoted = [repr(str(k)) for k in kinds]
    return " or ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def model_card(config, model, backtest, metrics: dict, *, champion=None, data_window=("", ""), n_events=0) -> str:
    """Render the model card for one trained version."""
    summary = getattr(model, "training_summary_", {})
    policy = model.tier_policy_
    overrides = "\n".join(
        f"- `{o.name}`: {' and '.join(f'{f} {op} {v}' for f, op, v in o.conditions)} -> at least {o.tier}"
        for o in policy.overrides
    ) or "- none"
    subgroups = (_table(backtest.subgroup.head(60)) if backtest.subgroup is not None and len(backtest.subgroup)
                 else "No subgroup columns (the schema names no entity categorical columns, or there is no "
                      "entities table).")
    champion_text = _champion_text(champion)
    return f"""# Model card: {config.registered_model} ({config.name})

## Intended use
Ranks open civil disputes (矛盾纠纷) by their probability of escalating (民转刑: an event of kind
{_outcomes(config.schema.outcome_kinds)}, the schema's outcome_kinds) within {config.labels.horizon}, as
red / yellow / blue work lists for police stations.
It supports, and never replaces, an officer's judgement: a tier is a prompt to look at a case.

## Misuse
- Not evidence about any person, and not a basis for coercive measures, arrest or denial of services.
- Not valid for populations, regions or event-recording practices unlike the training data.
- Ids are never features; do not add protected attributes (ethnicity, religion, ...) as features.

## Training data
- Source: `{config.data.source}`; window {data_window[0]} .. {data_window[1]}; {n_events:,} events.
- Snapshots: {summary.get('n_cutoffs', 0):,} cutoffs ({summary.get('n_positive', 0):,} escalations) at
  frequency `{config.labels.freq}`.
- {_protocol_text(summary)}
- Calibration: {summary.get('calibration_method')}; trees: {summary.get('best_iteration')}.

## Backtest (latest fold, 95% cluster-bootstrap intervals)
{_table(_metrics_table(metrics))}

{champion_text}

## Tiers
Policy: `{policy.method}` red={policy.red}, yellow={policy.yellow}; thresholds red >= {policy.red_threshold_:.4f},
yellow >= {policy.yellow_threshold_:.4f}. Overrides:
{overrides}

{_table(backtest.tier_table)}

## Subgroups (latest fold)
{subgroups}

## Known limitations
- Trained on {'simulated' if config.data.source == 'simulate' else 'the configured'} data; a real city's
  recording practices, categories and kinds differ. Re-train and re-check calibration before use.
- Probabilities are calibrated on held-out predictions weighted toward the latest period; drift
  beyond that period makes them stale.
- Reasons are SHAP contributions of the model, not causes.
- Labels only see escalations recorded as outcome events; unrecorded escalations count as negatives.
"""
