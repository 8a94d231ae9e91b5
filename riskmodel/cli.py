"""The ``riskmodel`` command: a thin shell over the library.

Subcommands: ``demo``, ``simulate``, ``train``, ``promote``, ``rollback``, ``score``,
``sweep``, ``barometer``, ``report``.
Errors a user can fix (bad data, bad config, missing model) print one clear line and
exit with status 2; they never print a traceback. ``riskmodel score --fail-on-drift LEVEL``
exits with status 3 (:data:`EXIT_DRIFT`) after writing its complete output when the drift
status reaches LEVEL (``watch`` or ``act``), for alerting.
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
#: Exit status of ``riskmodel score --fail-on-drift`` when the drift status reaches the level.
EXIT_DRIFT = 3
_DRIFT_LEVELS = {"ok": 0, "no_reference": 0, "no_data": 0, "watch": 1, "act": 2}
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
    from .lifecycle import load_config

    return load_config(path or _BUNDLED_EXPERIMENT)


def _cmd_train(args) -> int:
    from .lifecycle import train

    config = _load_config(args.config)
    if args.disputes:
        config.data.n_disputes = args.disputes
    result = train(config)
    m = result.metrics
    print(f"run {result.run_id}: registered {result.model_name} version {result.version} as challenger")
    print(f"latest fold: ROC-AUC {m.get('model_roc_auc', float('nan')):.4f} "
          f"[{m.get('model_roc_auc_lower', float('nan')):.4f}, {m.get('model_roc_auc_upper', float('nan')):.4f}], "
          f"Brier {m.get('model_brier', float('nan')):.5f}, ECE {m.get('model_ece', float('nan')):.4f}")
    spread = result.model.training_summary_.get("fold_spread") or {}
    auc, brier = spread.get("roc_auc") or {}, spread.get("brier") or {}
    if auc.get("mean") is not None:
        print(f"fit: {result.model.best_iteration_} rounds chosen on {auc['n']} forward folds; fold AUC "
              f"{auc['mean']:.4f} (sd {auc['sd']:.4f}), fold Brier {brier['mean']:.5f} (sd {brier['sd']:.5f})")
    for note in result.model.training_summary_.get("notes", []):
        print(f"note: {note}")
    print("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    return 0


def _cmd_promote(args) -> int:
    from .lifecycle import promote

    record = promote(args.name, force=args.force, reason=args.reason)
    print(json.dumps(record, indent=1, default=str, ensure_ascii=False))
    return 0 if record["decision"] in ("passed", "forced", "unchanged") else 1


def _cmd_rollback(args) -> int:
    from .lifecycle import rollback

    print(json.dumps(rollback(args.name, reason=args.reason), indent=1, ensure_ascii=False))
    return 0


def _tier_options(args):
    """``--tiers``, ``--red-share``, ``--yellow-share``, ``--tiers-by``, ``--capacity`` as the
    ``tiers`` argument of score_batch."""
    changes: dict = {}
    if args.red_share is not None:
        changes["red"] = args.red_share
    if args.yellow_share is not None:
        changes["yellow"] = args.yellow_share
    if args.tiers_by is not None:
        changes["by"] = args.tiers_by or None  # --tiers-by "" : city-wide
    if args.capacity:
        capacity: dict = {}
        for item in args.capacity:
            if "=" not in item:  # a table
                from .lifecycle import read_capacity

                capacity.update(read_capacity(item, by=args.tiers_by))
                continue
            area, _, value = item.partition("=")
            red, _, yellow = value.partition("/")
            try:
                capacity[area] = {"red": int(red), **({"yellow": int(yellow)} if yellow else {})}
            except ValueError:
                raise ConfigError(f"--capacity {item!r}: use AREA=RED or AREA=RED/YELLOW with whole numbers, "
                                  "or a CSV / parquet table (area, red[, yellow]).") from None
        changes["capacity"] = capacity
    if args.tiers == "trained":
        if changes:
            raise ConfigError("--tiers trained keeps the trained thresholds; drop --red-share / --yellow-share / "
                              "--tiers-by / --capacity, or use --tiers night.")
        return "trained"
    return changes or "night"


def _cmd_score(args) -> int:
    from .batch import score_batch

    manifest = score_batch(
        model=args.model, events=args.events, entities=args.entities, as_of=args.as_of, out=args.out,
        reasons=args.reasons, chunk_disputes=args.chunk_disputes, engine=args.engine, master=args.master,
        drift_thresholds={"watch": args.drift_watch, "act": args.drift_act}, monitor_mlflow=args.log_mlflow,
        tiers=_tier_options(args),
    )
    counts = manifest["counts"]
    print(f"scored {counts['disputes_scored']:,} disputes, rejected {counts['disputes_rejected']:,}; "
          f"output in {args.out}")
    tiers = manifest.get("tiers") or {}
    print(f"tiers: {tiers.get('description', 'n/a')}; red {counts['tiers']['red']:,}, "
          f"yellow {counts['tiers']['yellow']:,}, blue {counts['tiers']['blue']:,}")
    drift = manifest.get("monitoring") or {}
    status = drift.get("status", "no_reference")
    score_psi = drift.get("score_psi")
    print(f"drift: {status}" + (f" (score PSI {score_psi:.3f})" if score_psi is not None else ""))
    if args.fail_on_drift and _DRIFT_LEVELS.get(status, 0) >= _DRIFT_LEVELS[args.fail_on_drift]:
        print(f"riskmodel: drift status {status!r} reaches --fail-on-drift {args.fail_on_drift}; "
              f"exit {EXIT_DRIFT} (output was written)", file=sys.stderr)
        return EXIT_DRIFT
    return 0


def _load_model(uri: str):
    from .batch import load_predictor

    return load_predictor(uri)


def _write_frame(frame, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _cmd_sweep(args) -> int:
    """From one case (or a pattern) to every open dispute sharing its risk pattern."""
    from .batch import read_nightly
    from .lifecycle import read_table
    from .ops import parse_pattern, sweep

    if (args.like is None) and (args.pattern is None):
        raise ConfigError("pass --like DISPUTE_ID or --pattern \"column op value & ...\".")
    pattern = parse_pattern(args.pattern) if args.pattern else None
    night = read_nightly(args.scores)
    needs_features = args.like is not None or any(c not in night.scores.columns for c in pattern.columns)
    model = events = entities = None
    if needs_features:
        uri = args.model or night.manifest.get("model", {}).get("uri")
        events_path = args.events or night.manifest.get("input", {}).get("events")
        if not uri:
            raise ConfigError("this sweep needs the model: pass --model (the scores' manifest names none).")
        if not events_path or not Path(events_path).exists():
            raise ConfigError("this sweep needs the event log to recompute features: pass --events PATH.")
        model = _load_model(uri)
        events = read_table(events_path)
        entities = read_table(args.entities) if args.entities else None
    result = sweep(night, like=args.like, pattern=pattern, model=model, events=events, entities=entities,
                   method=args.method, area=args.area, min_similarity=args.min_similarity,
                   n_neighbours=args.neighbours)
    m = result.matches
    if result.case:
        c = result.case
        print(f"case {c['id']}: {c['category']}, p={c['probability']:.3f} as of {c['as_of']}")
        print("  top drivers: " + ", ".join(f"{k} {v:+.2f}" for k, v in c["top_contributions"].items()))
    print(f"rule: {result.pattern}")
    print(f"{len(m):,} open disputes match ({int(m['by_rule'].sum()):,} by rule, "
          f"{int(m['by_similarity'].sum()):,} by similarity) in {m[args.area].nunique() if args.area in m else 1} "
          f"{args.area or 'area'}(s)")
    if len(m):
        print(result.by_area().head(30).to_string(index=False))
        cols = [c for c in (args.area, "rank", "dispute_id", "probability", "tier", "category") if c in m.columns]
        print("\nhighest risk:")
        print(m.sort_values("probability", ascending=False)[cols].head(10).to_string(index=False))
    if args.out:
        _write_frame(m, args.out)
        print(f"\nwork lists written to {args.out}")
    return 0


def _cmd_barometer(args) -> int:
    """Risk by area and day over nightly outputs: a table and two PNG plots."""
    from .evaluation import save_figure
    from .ops import barometer, plot_barometer_heatmap, plot_tier_trend

    table = barometer(list(args.scores), area=None if args.area in ("", "none") else args.area)
    last = table[table["day"] == table["day"].max()]
    cols = [table.columns[0], "n", "red", "yellow", "blue", "flagged_share", "mean_probability", "red_change"]
    print(f"{table['day'].nunique()} night(s), {len(table):,} rows; last night by {table.columns[0]}:")
    print(last.sort_values("red", ascending=False)[cols].head(30).to_string(index=False))
    if args.out:
        _write_frame(table, args.out)
        print(f"table written to {args.out}")
    if args.plots:
        folder = Path(args.plots)
        save_figure(plot_barometer_heatmap(table, value=args.value), folder / "barometer_heatmap.png")
        save_figure(plot_tier_trend(table), folder / "tier_trend.png")
        print(f"plots written to {folder}")
    return 0


def _cmd_report(args) -> int:
    """The nightly HTML report: barometer, work lists, drift, audit."""
    from .lifecycle import read_table
    from .ops import write_report

    model = events = entities = None
    if args.outcomes and args.model and args.events:
        model = _load_model(args.model)
        events = read_table(args.events)
        entities = read_table(args.entities) if args.entities else None
    out = write_report(args.out, scores=args.scores, history=args.history or [], outcomes=args.outcomes,
                       horizon=args.horizon, model=model, events=events, entities=entities,
                       area=None if args.area in ("", "none") else args.area)
    print(f"report written to {out} ({out.stat().st_size / 1024:,.0f} KiB)")
    return 0


def _has_alias(name: str, alias: str) -> bool:
    import mlflow

    from .lifecycle import tracking_uri

    uri = tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # never a registry set elsewhere
    try:
        client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return False
    return True


def _cmd_demo(args) -> int:
    """Simulate a city, train with tracking, register, promote, score today, report."""
    import pandas as pd

    from ._simulate import simulate_disputes
    from .evaluation import open_disputes
    from .lifecycle import load, promote, tracking_uri, train

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
    alias = "champion"
    if record["decision"] == "refused":
        failed = [name for name, ok in record["checks"].items() if not ok]
        print(f"      gate refused v{record['version']} (failed: {', '.join(failed)}); keeping the current champion")
        if not _has_alias(config.registered_model, "champion"):
            alias = "challenger"
            print("      there is no champion yet: this demo scores with the challenger instead "
                  "(a nightly job would stop here)")
    else:
        print(f"      {record['decision']}: v{record['version']} is champion ({sum(record['checks'].values())}/{len(record['checks'])} checks)")
    predictor = load(f"models:/{config.registered_model}@{alias}")
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
    p.add_argument("--disputes", type=int, default=30_000)
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
    p.add_argument("--drift-watch", type=float, default=0.1, help="PSI from which drift is 'watch' (0.1)")
    p.add_argument("--drift-act", type=float, default=0.25, help="PSI from which drift is 'act' (0.25)")
    p.add_argument("--fail-on-drift", choices=["watch", "act"], default=None,
                   help=f"exit with status {EXIT_DRIFT} (after writing the output) when drift reaches this level")
    p.add_argument("--log-mlflow", action="store_true",
                   help="log the drift figures to the MLflow experiment dispute-risk-monitoring")
    p.add_argument("--tiers", choices=["night", "trained"], default="night",
                   help="night: the model's share policy ranks tonight's disputes (default); trained: the "
                        "trained probability thresholds")
    p.add_argument("--red-share", type=float, default=None, help="red = this share of tonight's disputes")
    p.add_argument("--yellow-share", type=float, default=None, help="yellow = the next this share")
    p.add_argument("--tiers-by", default=None,
                   help="apply the shares within each value of this entity column (e.g. station); '' = city-wide")
    p.add_argument("--capacity", action="append", default=None, metavar="AREA=RED[/YELLOW] or TABLE",
                   help="red (and yellow) cases an area takes tonight, e.g. --capacity S01=10 --capacity S02=5/20, "
                        "or a CSV / parquet table with columns area (or the --tiers-by column), red[, yellow]")
    p.set_defaults(func=_cmd_score)

    p = sub.add_parser("sweep", help="from one case to every open dispute sharing its risk pattern")
    p.add_argument("--scores", required=True, help="a `riskmodel score` output folder (the open disputes)")
    p.add_argument("--like", default=None, help="dispute id of the case (e.g. one that just escalated)")
    p.add_argument("--pattern", default=None, help='rule, e.g. "category=building & count_threat_30D>0"')
    p.add_argument("--model", default=None, help="model URI / folder (default: the one in the scores' manifest)")
    p.add_argument("--events", default=None, help="event log (default: the scores' input, if a path)")
    p.add_argument("--entities", default=None)
    p.add_argument("--method", choices=["both", "rule", "similar"], default="both")
    p.add_argument("--area", default="station")
    p.add_argument("--min-similarity", type=float, default=0.7)
    p.add_argument("--neighbours", type=int, default=100)
    p.add_argument("--out", default=None, help="write the matches as .parquet or .csv")
    p.set_defaults(func=_cmd_sweep)

    p = sub.add_parser("barometer", help="risk by station and day over nightly outputs (table + PNG plots)")
    p.add_argument("--scores", required=True, nargs="+", help="`riskmodel score` output folders, one per night")
    p.add_argument("--area", default="station", help="area column, or 'none' for the city")
    p.add_argument("--value", default="flagged_share", help="heat map value, e.g. red_share, mean_probability")
    p.add_argument("--out", default=None, help="write the table as .parquet or .csv")
    p.add_argument("--plots", default=None, help="folder for barometer_heatmap.png and tier_trend.png")
    p.set_defaults(func=_cmd_barometer)

    p = sub.add_parser("report", help="the nightly self-contained HTML report")
    p.add_argument("--scores", required=True, help="tonight's `riskmodel score` output folder")
    p.add_argument("--history", nargs="*", default=[], help="earlier nights' folders (barometer trend, audit)")
    p.add_argument("--outcomes", default=None, help="later-observed escalations: event log or table")
    p.add_argument("--horizon", default="90D")
    p.add_argument("--model", default=None, help="with --events: recompute the reasons of missed blue cases")
    p.add_argument("--events", default=None)
    p.add_argument("--entities", default=None)
    p.add_argument("--area", default="station")
    p.add_argument("--out", required=True, help="the HTML file to write")
    p.set_defaults(func=_cmd_report)
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
