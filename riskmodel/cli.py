"""The ``riskmodel`` command: a thin shell over the library.

Subcommands: ``demo``, ``simulate``, ``train``, ``promote``, ``rollback``, ``score``.
Errors a user can fix (bad data, bad config, missing model) print one clear line and
exit with status 2; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from ._errors import ConfigError, DataError, ModelError

DEFAULT_MODEL = "dispute-risk"
_BUNDLED_EXPERIMENT = Path(__file__).resolve().parent.parent / "experiments" / "baseline.toml"


def _cmd_simulate(args) -> int:
    from ._simulate import simulate_disputes

    sim = simulate_disputes(args.disputes, start=args.start, end=args.end, seed=args.seed)
    print(sim.summary())
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        sim.events.to_parquet(out / "events.parquet", index=False)
        sim.entities.to_parquet(out / "entities.parquet", index=False)
        print(f"\nwrote {out / 'events.parquet'} and {out / 'entities.parquet'}")
    return 0


def _load_config(path):
    from ._config import load_config

    return load_config(path or _BUNDLED_EXPERIMENT)


def _cmd_train(args) -> int:
    from ._registry import train

    config = _load_config(args.config)
    if args.disputes:
        config.data.n_disputes = args.disputes
    result = train(config)
    m = result.metrics
    print(f"run {result.run_id}: registered {result.model_name} version {result.version} as challenger")
    print(f"latest fold: ROC-AUC {m.get('model_roc_auc', float('nan')):.4f} "
          f"[{m.get('model_roc_auc_lower', float('nan')):.4f}, {m.get('model_roc_auc_upper', float('nan')):.4f}], "
          f"Brier {m.get('model_brier', float('nan')):.5f}, ECE {m.get('model_ece', float('nan')):.4f}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    return 0


def _cmd_promote(args) -> int:
    from ._registry import promote

    record = promote(args.name, force=args.force, reason=args.reason)
    print(json.dumps(record, indent=1, default=str, ensure_ascii=False))
    return 0 if record["decision"] in ("passed", "forced", "unchanged") else 1


def _cmd_rollback(args) -> int:
    from ._registry import rollback

    print(json.dumps(rollback(args.name, reason=args.reason), indent=1, ensure_ascii=False))
    return 0


def _cmd_score(args) -> int:
    from ._batch import score_batch

    manifest = score_batch(
        model=args.model, events=args.events, entities=args.entities, as_of=args.as_of, out=args.out,
        reasons=args.reasons, chunk_disputes=args.chunk_disputes, engine=args.engine, master=args.master,
    )
    counts = manifest["counts"]
    print(f"scored {counts['disputes_scored']:,} disputes, rejected {counts['disputes_rejected']:,}; "
          f"output in {args.out}")
    return 0


def _cmd_demo(args) -> int:
    """Simulate a city, train with tracking, register, promote, score today, report."""
    import pandas as pd

    from ._labels import open_disputes
    from ._registry import load, promote, tracking_uri, train
    from ._simulate import simulate_disputes

    t0 = time.perf_counter()
    config = _load_config(args.config)
    config.data.n_disputes = args.disputes
    print(f"[1/5] simulating {args.disputes:,} disputes, {config.data.start} .. {config.data.end} (seed {config.data.seed})")
    print(f"[2/5] training with MLflow tracking at {tracking_uri()} (backtest, baselines, final fit)")
    result = train(config)
    m = result.metrics
    print(f"      registered {result.model_name} v{result.version} as challenger: ROC-AUC "
          f"{m['model_roc_auc']:.3f} [{m['model_roc_auc_lower']:.3f}, {m['model_roc_auc_upper']:.3f}], "
          f"Brier {m['model_brier']:.4f}, ECE {m['model_ece']:.4f}")
    print("[3/5] promotion gate")
    record = promote(config.registered_model)
    if record["decision"] == "refused":
        print(f"      gate refused v{record['version']}: {record['checks']}; keeping the current champion")
    else:
        print(f"      {record['decision']}: v{record['version']} is champion ({sum(record['checks'].values())}/{len(record['checks'])} checks)")
    predictor = load(f"models:/{config.registered_model}@champion")
    sim = simulate_disputes(config.data.n_disputes, start=config.data.start, end=config.data.end, seed=config.data.seed)
    today = pd.Timestamp(config.data.end).normalize()
    cut = open_disputes(sim.events, today, sim.schema, entities=sim.entities)
    print(f"[4/5] scoring {len(cut):,} open disputes as of {today.date()} with {predictor}")
    scores = predictor.predict(sim.events, cutoffs=cut, entities=sim.entities)
    scores = scores.merge(sim.entities[["dispute_id", "station", "category"]], on="dispute_id", how="left")
    print("[5/5] report")
    table = pd.crosstab(scores["station"], scores["tier"].astype(str))
    table = table.reindex(columns=["red", "yellow", "blue"], fill_value=0)
    table = table.sort_values(["red", "yellow"], ascending=False)
    print("\nTier counts per station (top 10 by red):")
    print(table.head(10).to_string())
    counts = scores["tier"].astype(str).value_counts()
    print("\nAll stations: " + ", ".join(f"{t} {int(counts.get(t, 0)):,}" for t in ("red", "yellow", "blue")))
    top = scores[scores["tier"] == "red"].sort_values("probability", ascending=False).head(5)
    print("\nTop red cases:")
    for row in top.itertuples():
        print(f"  {row.dispute_id}  {row.station}  {row.category:<13} p={row.probability:.2f}")
        for reason in str(row.reasons).split("; "):
            print(f"      - {reason}")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        scores.to_parquet(out / "scores.parquet", index=False)
        print(f"\nscores written to {out / 'scores.parquet'}")
    uri = tracking_uri()
    print(f"\nModel: {predictor.model_name} version {predictor.model_version} (run {predictor.run_id})")
    print(f"Open the MLflow UI on the local store:\n  .venv/bin/mlflow ui --backend-store-uri {uri}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskmodel", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="simulate, train, register, promote, score, report")
    p.add_argument("--disputes", type=int, default=12_000)
    p.add_argument("--config", default=None, help="experiment TOML (default: experiments/baseline.toml)")
    p.add_argument("--out", default=None, help="also write the scores as parquet here")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="simulate a city's dispute histories")
    p.add_argument("--disputes", type=int, default=10_000)
    p.add_argument("--start", default="2022-01-01")
    p.add_argument("--end", default="2025-12-31")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for events.parquet and entities.parquet")
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("train", help="backtest, fit, log to MLflow, register as challenger")
    p.add_argument("--config", required=True)
    p.add_argument("--disputes", type=int, default=None, help="override [data] n_disputes (simulated data)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("promote", help="move champion to the challenger if it passes the gate")
    p.add_argument("--name", default=DEFAULT_MODEL)
    p.add_argument("--force", action="store_true")
    p.add_argument("--reason", default=None)
    p.set_defaults(func=_cmd_promote)

    p = sub.add_parser("rollback", help="restore the previous champion")
    p.add_argument("--name", default=DEFAULT_MODEL)
    p.add_argument("--reason", default=None)
    p.set_defaults(func=_cmd_rollback)

    p = sub.add_parser("score", help="nightly batch scoring of every open dispute")
    p.add_argument("--model", default=f"models:/{DEFAULT_MODEL}@champion")
    p.add_argument("--events", required=True)
    p.add_argument("--entities", default=None)
    p.add_argument("--as-of", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--reasons", choices=["flagged", "all", "none"], default="flagged")
    p.add_argument("--chunk-disputes", type=int, default=200_000)
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument("--master", default=None)
    p.set_defaults(func=_cmd_score)
    return parser


def main(argv=None) -> int:
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            return args.func(args)
        except (DataError, ConfigError, ModelError) as exc:
            print(f"riskmodel: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
