"""Training time of :class:`riskmodel.RiskModel` on about a million snapshot rows.

Usage::

    python benchmarks/bench_train.py                         # ~220k disputes -> ~1M cutoffs
    python benchmarks/bench_train.py --disputes 20000        # quick

Simulates disputes over four years, takes monthly cutoffs while each dispute is open
(:func:`make_cutoffs`), labels them with a 90-day horizon and drops censored ones, then
times ``RiskModel.fit`` from the raw DataFrames (event validation included) and reports
``model.timings_``: feature building, LightGBM (with early stopping) and calibration plus
tier thresholds, as seconds, shares and rows per second. A baseline timed in the same run,
``LogisticRegression`` on ``log1p`` of the same count features, puts the LightGBM time in
proportion.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from _snapshots import simulated_snapshots

from riskmodel import FeatureBuilder, RiskModel


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--disputes", type=int, default=220_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", default="2022-01-01")
    parser.add_argument("--end", default="2025-12-31")
    parser.add_argument("--threads", type=int, default=None, help="LightGBM threads (default: the model's)")
    parser.add_argument("--protocol", choices=["forward", "holdout"], default="forward")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    sim, ev, lab = simulated_snapshots(args.disputes, start=args.start, end=args.end, seed=args.seed)
    lab = lab[~lab["censored"]].drop(columns="censored").reset_index(drop=True)
    print(
        f"data: {args.disputes:,} disputes, {len(sim.events):,} events, {len(lab):,} labelled "
        f"cutoffs ({lab['label'].astype(float).mean():.2%} positive), prepared in {time.perf_counter() - t0:.1f} s"
    )
    print(f"cores: {os.cpu_count()}, load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    params = {} if args.threads is None else {"num_threads": args.threads}
    model = RiskModel(
        schema=sim.schema,
        features=FeatureBuilder(
            schema=sim.schema,
            streaks=(("mediation_failed", "mediation_success"),),
            keyword_windows=("7D", "30D", "365D"),
        ),
        lgbm_params=params,
        protocol=args.protocol,
    )
    t1 = time.perf_counter()
    model.fit(sim.events, lab, entities=sim.entities)  # raw frames: validation is timed too
    total = time.perf_counter() - t1
    n = len(lab)
    s = model.training_summary_
    if s.get("protocol") == "holdout":
        split = (f"train {s['n_train']:,} / validation {s['n_validation']:,} / calibration "
                 f"{s['n_calibration']:,} rows")
    else:
        split = (f"chosen on {len(s['folds'])} forward folds, final trees on all {s['n_final']:,} rows, "
                 f"calibration on {s['n_calibration']:,} out-of-fold rows")
    print(
        f"\nRiskModel.fit: {total:.1f} s total, {n / total:,.0f} rows/s; {len(model.feature_names_)} features, "
        f"{s['best_iteration']} trees ({split}), calibration {s['calibration_method']}"
    )
    print(f"{'stage':<12}{'seconds':>10}{'share':>8}{'rows/s':>14}")
    for stage, secs in model.timings_.items():
        print(f"{stage:<12}{secs:>10.1f}{secs / total:>8.1%}{n / secs:>14,.0f}")
    if s.get("protocol") == "holdout":
        per_tree = model.timings_["lightgbm"] / max(s["best_iteration"] + model.early_stopping_rounds, 1)
        print(f"LightGBM: {per_tree * 1000:.0f} ms per boosting round (incl. early-stopping rounds)")
    else:
        print(f"LightGBM: {model.timings_['lightgbm']:.1f} s for the folds (each boosted to its early stop, then to "
              f"{s['n_rounds']} rounds) and the final {s['n_rounds']} rounds")

    # baseline in the same run: logistic regression on log1p counts, same features
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    t2 = time.perf_counter()
    X = model.transform_features(ev, lab, entities=sim.entities)
    t_x = time.perf_counter() - t2
    cols = [c for c in X.columns if c.startswith("count_")]
    t3 = time.perf_counter()
    make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(
        np.log1p(X[cols].to_numpy(dtype=float)), lab["label"].to_numpy(dtype=int)
    )
    t_lr = time.perf_counter() - t3
    print(
        f"\nbaseline: features again (prepared events) {t_x:.1f} s; logistic regression on {len(cols)} "
        f"count features {t_lr:.1f} s; LightGBM / logistic = {model.timings_['lightgbm'] / t_lr:.1f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
