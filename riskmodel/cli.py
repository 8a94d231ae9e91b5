"""The ``riskmodel`` command: a thin shell over the library.

Subcommands: ``demo``, ``simulate``, ``train``, ``promote``, ``rollback``, ``score``,
``sweep``, ``explain``, ``barometer``, ``report``. Every option has a help line with its
default and an example (``riskmodel COMMAND --help``).
Errors a user can fix (bad data, bad config, missing model) print one clear line and
exit with status 2; they never print a traceback. ``riskmodel score --fail-on-drift LEVEL``
exits with status 3 (:data:`EXIT_DRIFT`) after writing its complete output when the drift
status reaches LEVEL (``watch`` or ``act``), for alerting.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import time
import warnings
from pathlib import Path

from ._errors import ConfigError, DataError, DataWarning, ModelError

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


def _fold_line(m: dict) -> str:
    """The latest backtest fold's headline figures, rounded."""
    nan = float("nan")
    return (f"latest backtest fold: ROC-AUC {m.get('model_roc_auc', nan):.3f} "
            f"[{m.get('model_roc_auc_lower', nan):.3f}, {m.get('model_roc_auc_upper', nan):.3f}], "
            f"Brier {m.get('model_brier', nan):.4f}, ECE {m.get('model_ece', nan):.3f}")


def _cmd_train(args) -> int:
    from .lifecycle import train

    config = _load_config(args.config)
    if args.disputes:
        if config.data.source != "simulate":
            raise ConfigError(f"--disputes sets how many disputes to simulate; the config's [data] source is "
                              f"{config.data.source!r}, which reads its events from files: drop --disputes.")
        config.data.n_disputes = args.disputes
    result = train(config, drop_invalid=True if args.drop_invalid else None, progress=True)
    if result.rejects is not None and len(result.rejects):
        print(f"{len(result.rejects):,} rejected event row(s) with their reasons and file {result.rejects.columns[0]}s "
              f"are in the run's artifacts: data/rejects.csv")
    print(f"registered {result.model_name} version {result.version} as challenger (run {result.run_id})")
    print(_fold_line(result.metrics))
    spread = result.model.training_summary_.get("fold_spread") or {}
    auc, brier = spread.get("roc_auc") or {}, spread.get("brier") or {}
    if auc.get("mean") is not None:
        print(f"fit: {result.model.best_iteration_} rounds chosen on {auc['n']} forward folds; fold AUC "
              f"{auc['mean']:.4f} (sd {auc['sd']:.4f}), fold Brier {brier['mean']:.5f} (sd {brier['sd']:.5f})")
    for note in result.model.training_summary_.get("notes", []):
        print(f"note: {note}")
    print("time: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in result.timings.items()))
    print(f"next: riskmodel promote --name {result.model_name}")
    return 0


def _rounded(value):
    """A record for people: floats to 4 significant digits, recursively."""
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _cmd_promote(args) -> int:
    from .lifecycle import promote

    record = promote(args.name, force=args.force, reason=args.reason)
    print(record["verdict"])  # the decision first, in one line
    for c in record.get("criteria", []):
        print(f"  {'pass' if c['passed'] else 'FAIL'}  {c['name']}: {c['detail']}")
    if record["decision"] != "unchanged":
        print(f"recorded as the tag riskmodel.gate of {args.name} version {record['version']}")
    if args.json:
        print(json.dumps(_rounded(record), indent=1, default=str, ensure_ascii=False))
    return 0 if record["decision"] in ("passed", "forced", "unchanged") else 1


def _cmd_rollback(args) -> int:
    from .lifecycle import rollback

    record = rollback(args.name, reason=args.reason)
    print(f"ROLLED BACK: {args.name} champion is version {record['to']} again (was version {record['from']})"
          + (f"; reason: {record['reason']}" if record.get("reason") else ""))
    return 0


def _tier_options(args):
    """``--tiers``, ``--red-share``, ``--yellow-share``, ``--tiers-by``, ``--capacity`` as the
    ``tiers`` argument of score_batch."""
    changes: dict = {}
    if args.red_share is not None and args.yellow_share is not None and args.red_share + args.yellow_share > 1:
        raise ConfigError(f"--red-share {args.red_share:g} + --yellow-share {args.yellow_share:g} is more than 1: "
                          "they are shares of the same night's disputes (yellow is the next share after red).")
    if args.red_share is not None:
        changes["red"] = args.red_share
    if args.yellow_share is not None:
        changes["yellow"] = args.yellow_share
    if args.tiers_by is not None:
        changes["by"] = args.tiers_by or None  # --tiers-by "" : city-wide
    if args.capacity:
        capacity: dict = {}
        if args.tiers_by == "":
            raise ConfigError('--capacity gives areas their capacities, and --tiers-by "" ranks city-wide: drop one '
                              "(--tiers-by COLUMN names the areas; without it, the first group column).")
        for item in args.capacity:
            if "=" not in item:  # a table
                from .lifecycle import read_capacity

                if not Path(item).exists() and ":" in item:
                    raise ConfigError(f"--capacity {item!r}: use AREA=RED or AREA=RED/YELLOW (an equals sign), or "
                                      "the path of a CSV / parquet table (area, red[, yellow]).")
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


def _drift_thresholds(args) -> dict:
    """``--drift-watch`` and ``--drift-act``, checked as score_batch checks them, refused in the flags' words."""
    from .model import check_thresholds

    try:
        return check_thresholds({"watch": args.drift_watch, "act": args.drift_act})
    except ConfigError:
        raise ConfigError(f"--drift-watch must be above 0 and at most --drift-act, both finite; got --drift-watch "
                          f"{args.drift_watch:g}, --drift-act {args.drift_act:g}.") from None


def _cmd_score(args) -> int:
    from .batch import score_batch

    manifest = score_batch(
        model=args.model, events=args.events, entities=args.entities, as_of=args.as_of, out=args.out,
        reasons=args.reasons, chunk_disputes=args.chunk_disputes, engine=args.engine, master=args.master,
        drift_thresholds=_drift_thresholds(args), monitor_mlflow=args.log_mlflow,
        overwrite=args.overwrite,
        tiers=_tier_options(args), threads=args.threads,
    )
    c = manifest["counts"]
    print(f"event rows: {c['events_read']:,} read, {c['events_used']:,} used, {c['events_rejected']:,} rejected "
          f"(rejects.parquet, with reasons), {c['events_duplicates_dropped']:,} exact duplicate(s) dropped")
    not_open = ", ".join(f"{n:,} {reason}" for reason, n in c["not_open_by_reason"].items()) or "none"
    print(f"disputes: {c['disputes_read']:,} read, {c['disputes_scored']:,} scored, {c['disputes_not_open']:,} not "
          f"open ({not_open}; not_scored.parquet), {c['disputes_rejected']:,} lost every row to rejects")
    rule = (manifest.get("tiers") or {}).get("description", "n/a")
    print(f"tiers: {rule}; red {c['tiers']['red']:,}, yellow {c['tiers']['yellow']:,}, blue {c['tiers']['blue']:,}; "
          f"output in {args.out}")
    drift = manifest.get("monitoring") or {}
    status = drift.get("status", "no_reference")
    score_psi = drift.get("score_psi")
    print(f"drift: {status}" + (f" (score PSI {score_psi:.3f})" if score_psi is not None else ""))
    if args.fail_on_drift and _DRIFT_LEVELS.get(status, 0) >= _DRIFT_LEVELS[args.fail_on_drift]:
        print(f"riskmodel: drift status {status!r} reaches --fail-on-drift {args.fail_on_drift}; "
              f"exit {EXIT_DRIFT} (output was written)", file=sys.stderr)
        return EXIT_DRIFT
    return 0


def _write_frame(frame, path) -> None:
    from .lifecycle import is_csv

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_csv(path):  # compression from the name (barometer.csv.gz)
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)


def _cmd_sweep(args) -> int:
    """From one case (or a pattern) to every open dispute sharing its risk pattern."""
    from .batch import load_predictor, read_nightly
    from .ops import NightModels, night_inputs, parse_pattern, sweep, sweep_inputs

    if (args.like is None) and (args.pattern is None):
        raise ConfigError("pass --like DISPUTE_ID or --pattern \"column op value & ...\".")
    pattern = parse_pattern(args.pattern) if args.pattern else None
    night = read_nightly(args.scores)
    needs_features = args.like is not None or any(c not in night.scores.columns for c in pattern.columns)
    model = inputs = None
    if needs_features:
        # the version that scored the night (the alias it was loaded by may have moved; a --model
        # whose fingerprint is not the night's stands in only for one that cannot be read), found
        # once (one NightModels, which sweep_inputs asks again): the features given to sweep() are that model's
        models = NightModels(load_predictor(args.model) if args.model else None)
        model, _, events, entities = night_inputs(night, models, args.events, args.entities, need="this sweep")
        inputs = sweep_inputs(models, events, night, entities=entities, like=args.like)
    result = sweep(night, like=args.like, pattern=pattern, model=model, inputs=inputs,
                   method=args.method, area=_area(args.area), min_similarity=args.min_similarity,
                   n_neighbours=args.neighbours)
    m = result.matches
    area = result.area
    if result.case:
        c = result.case
        category = f"{c['category']}, " if c.get("category") is not None else ""
        print(f"case {c['id']}: {category}p={c['probability']:.3f} as of {c['as_of']}")
        print("  what drives its risk (log-odds):")
        for value, zh, en in c["drivers"]:
            print(f"    {value:+.2f}  {zh} / {en}")
    print(f"rule: {result.pattern}")
    where = f"in {m[area].nunique()} {area}(s)" if area in m else "city-wide"
    print(f"{len(m):,} open disputes match ({int(m['by_rule'].sum()):,} by rule, "
          f"{int(m['by_similarity'].sum()):,} by similarity) {where}")
    if len(m):
        print(result.by_area().head(30).to_string(index=False))
        cols = [c for c in (area, "rank", result.id_col, "probability", "tier", "category") if c and c in m.columns]
        print("\nhighest risk:")
        print(m.sort_values("probability", ascending=False)[cols].head(10).to_string(index=False))
    if args.out:
        _write_frame(m, args.out)
        print(f"\nwork lists written to {args.out}")
    return 0


def _cmd_explain(args) -> int:
    """One dispute explained: timeline, probability, tier and threshold, every contribution."""
    from .ops import explain

    ex = explain(args.dispute_id, args.scores, model=args.model, events=args.events, entities=args.entities,
                 area=_area(args.area))
    print(ex.to_text(max_contributions=args.top, max_events=args.events_shown))
    if args.plot not in ("", "none"):
        # the default name is a file in this folder, whatever the id holds ("/" in court-style numbers)
        plot = Path(args.plot or "explain-" + re.sub(r'[\\/:*?"<>|\s]+', "_", args.dispute_id) + ".png")
        ex.save_plot(plot)
        print(f"\nplot (contributions and timeline) written to {plot}")
    if args.html:
        out = Path(args.html)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(ex.to_page(), encoding="utf-8")
        print(f"explanation page written to {out}")
    return 0


def _cmd_barometer(args) -> int:
    """Risk by area and day over nightly outputs: a table and two PNG plots."""
    from .evaluation import save_figure
    from .ops import barometer, plot_barometer_heatmap, plot_tier_trend

    table = barometer(list(args.scores), area=_area(args.area))
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
    from .ops import write_report

    if (args.events or args.entities) and not (args.outcomes or args.explain):
        raise ConfigError("--events and --entities are read for --outcomes (the missed cases' reasons, areas and "
                          "categories) and --explain: pass one of them, or drop --events / --entities.")
    if args.horizon is not None:  # (refused with --outcomes, and so without)
        from .data import parse_duration

        parse_duration(args.horizon, "--horizon")
    # paths: write_report reads them as the night read them, only when something uses them, and
    # takes the model and the events the night's manifest names when the features are recomputed
    out = write_report(args.out, scores=args.scores, history=args.history or [], outcomes=args.outcomes,
                       horizon=args.horizon, model=args.model, events=args.events, entities=args.entities,
                       area=_area(args.area), explain=args.explain)
    print(f"report written to {out} ({out.stat().st_size / 1024:,.0f} KiB)")
    return 0


def _area(value: str | None) -> str | None:
    """``--area``: ``auto`` (the nights' own area column), ``none`` (city-wide) or a column."""
    return None if value is None or value.strip().lower() in ("", "none") else value


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
    """Simulate a city, train with tracking, register, promote, score tonight, summarise."""
    import pandas as pd

    from .batch import score_batch
    from .lifecycle import load, promote, tracking_uri, train

    t0 = time.perf_counter()
    config = _load_config(args.config)
    config.data.n_disputes = args.disputes
    out = Path(args.out)
    print(f"[1/5] simulating {args.disputes:,} disputes, {config.data.start} .. {config.data.end} "
          f"(seed {config.data.seed})")
    print(f"[2/5] training with MLflow tracking at {tracking_uri()} (backtest, baselines, final fit)")
    result = train(config, progress=True)
    print(f"      registered {result.model_name} version {result.version} as challenger; {_fold_line(result.metrics)}")
    print("[3/5] promotion gate")
    record = promote(config.registered_model)
    print(f"      {record['verdict']}")
    alias = "champion"
    if record["decision"] == "refused" and not _has_alias(config.registered_model, "champion"):
        alias = "challenger"
        print("      there is no champion yet: this demo scores with the challenger instead "
              "(a nightly job would stop here)")
    predictor = load(f"models:/{config.registered_model}@{alias}")
    sim = _simulation(config)
    today = pd.Timestamp(config.data.end).normalize()
    out.mkdir(parents=True, exist_ok=True)
    events_path, entities_path = out / "events.parquet", out / "entities.parquet"
    sim.events.to_parquet(events_path, index=False)
    sim.entities.to_parquet(entities_path, index=False)
    night = out / "nights" / str(today.date())
    print(f"[4/5] scoring tonight's open disputes as of {today.date()} with {predictor.model_name} "
          f"version {predictor.model_version} ({alias})")
    score_batch(model=predictor, events=events_path, entities=entities_path, as_of=today, out=night)
    from .batch import read_nightly

    scores = read_nightly(night).scores
    print("[5/5] summary")
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
    uri = tracking_uri()
    case = top["dispute_id"].iloc[0] if len(top) else scores.sort_values("probability")["dispute_id"].iloc[-1]
    print(f"\nOutputs (done in {time.perf_counter() - t0:.0f} s):")
    print(f"  tonight's scores, work lists and manifest: {night}/")
    print(f"  the simulated event log and entities:      {events_path}, {entities_path}")
    print(f"  MLflow runs, plots, model card and models: {uri} "
          f"({config.registered_model} version {predictor.model_version} is {alias})")
    print("\nNext:")
    print(f"  riskmodel explain {case} --scores {night} --entities {entities_path}")
    print(f"  riskmodel report --scores {night} --outcomes {events_path} --out {out / 'report.html'}")
    print(f"  mlflow ui --backend-store-uri {uri}")
    return 0


def _simulation(config):
    """The demo's city again (the simulation is deterministic for its seed)."""
    from ._simulate import simulate_disputes

    return simulate_disputes(config.data.n_disputes, start=config.data.start, end=config.data.end,
                             seed=config.data.seed)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default (unless it already says it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default is argparse.SUPPRESS or not action.option_strings
                or action.required):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        return f"{text} (default: {'none' if action.default in (None, []) else action.default})"


def _command(sub, name: str, help: str, examples: str):
    return sub.add_parser(name, help=help, description=help, epilog="examples:\n" + examples,
                          formatter_class=_HelpFormatter)


def _describe(p: argparse.ArgumentParser, description: str, helps: dict[str, str], examples: str) -> None:
    """Help lines and examples for a subcommand whose options are defined tersely; kept in a
    table so the option definitions themselves stay as they are (``score`` changes often)."""
    p.formatter_class = _HelpFormatter
    p.description = description
    p.epilog = "examples:\n" + examples
    for action in p._actions:
        option = max(action.option_strings, key=len) if action.option_strings else action.dest
        if option in helps:
            action.help = helps[option]


_SCORE_HELP = {
    "--model": "model URI or folder, e.g. models:/dispute-risk/3",
    "--events": "event log (required): parquet file or folder, or CSV; with --engine spark also any URI Spark "
                "reads (hdfs://, s3a://, ...) or a table in Spark's catalog, e.g. events.parquet",
    "--entities": "entities table, e.g. entities.parquet (needed by models trained with one; with --engine spark "
                  "the same kinds of input as --events)",
    "--as-of": "the scoring moment (required), e.g. 2025-12-01",
    "--out": "output folder (required; with --engine spark any URI Hadoop writes), e.g. nights/2025-12-01",
    "--reasons": "which disputes get reasons: red and yellow ones, all or none, e.g. all",
    "--chunk-disputes": "disputes per chunk, e.g. 50000",
    "--engine": "where the chunks run, e.g. spark",
    "--master": "Spark master URL, e.g. spark://host:7077 (default: local Spark)",
    "--drift-watch": "PSI from which drift is 'watch', e.g. 0.15",
    "--drift-act": "PSI from which drift is 'act', e.g. 0.3",
    "--fail-on-drift": f"exit with status {EXIT_DRIFT} (after writing the output) when drift reaches this level, "
                       "e.g. act (default: never)",
    "--log-mlflow": "log the drift figures to the MLflow experiment dispute-risk-monitoring",
}
_SCORE_EXAMPLES = (
    "  riskmodel score --events events.parquet --entities entities.parquet --as-of 2025-12-01 "
    "--out nights/2025-12-01\n"
    "  riskmodel score --events ev/ --as-of 2025-12-01 --out nights/2025-12-01 --engine spark "
    "--master spark://host:7077")


def _count(minimum: int):
    """An argparse type: a whole number at least ``minimum`` (the error names the flag)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value:g}")
    return value


def _moment(text: str) -> str:
    """An argparse type: a date or time pandas can read (kept as given)."""
    import pandas as pd

    from .data import refuse_unclear_date

    try:
        refuse_unclear_date(text, "as_of")
    except ValueError as exc:  # argparse names the flag
        raise argparse.ArgumentTypeError(str(exc).removeprefix("as_of=")) from None
    try:
        if pd.isna(pd.Timestamp(text)):
            raise ValueError
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date or time, e.g. 2025-12-01 or "
                                         "2025-12-01T00:00+08:00") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskmodel", description="riskmodel: early warning of civil disputes "
                                     "about to turn violent (民转刑): train, score, explain, report.",
                                     formatter_class=_HelpFormatter,
                                     epilog="Run `riskmodel COMMAND --help` for a command's options and examples.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "demo", "simulate a city, train, register, promote, score tonight and summarise",
                 "  riskmodel demo\n  riskmodel demo --disputes 5000 --out /tmp/demo")
    p.add_argument("--disputes", type=_count(1), default=30_000, help="disputes to simulate, e.g. 5000")
    p.add_argument("--config", default=None,
                   help="experiment TOML, e.g. experiments/baseline.toml (default: the bundled baseline)")
    p.add_argument("--out", default="riskmodel-demo",
                   help="folder for the event log, the entities and tonight's nightly output, e.g. /tmp/demo")
    p.set_defaults(func=_cmd_demo)

    p = _command(sub, "simulate", "simulate a city's dispute histories (events and entities)",
                 "  riskmodel simulate --disputes 20000 --out data/")
    p.add_argument("--disputes", type=_count(1), default=10_000, help="disputes to simulate, e.g. 20000")
    p.add_argument("--start", default="2022-01-01", help="first day of the simulated period, e.g. 2023-01-01")
    p.add_argument("--end", default="2025-12-31", help="last day of the simulated period, e.g. 2024-12-31")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same city), e.g. 7")
    p.add_argument("--out", default=None,
                   help="folder for events.parquet and entities.parquet, e.g. data/ (default: print the summary only)")
    p.set_defaults(func=_cmd_simulate)

    p = _command(sub, "train", "backtest, fit, log to MLflow and register as challenger",
                 "  riskmodel train --config experiments/baseline.toml\n"
                 "  riskmodel train --config experiments/baseline.toml --disputes 5000")
    p.add_argument("--config", required=True, help="experiment TOML (required), e.g. experiments/own_data.toml")
    p.add_argument("--disputes", type=_count(1), default=None,
                   help="override [data] n_disputes of a simulated run, e.g. 5000 (default: the config's)")
    p.add_argument("--drop-invalid", action="store_true",
                   help="train on the valid event rows; the rejected ones (file line, values, reason) go to the "
                        "MLflow run as data/rejects.csv (default: refuse an extract with invalid rows; "
                        "TOML: drop_invalid = true in [data])")
    p.set_defaults(func=_cmd_train)

    p = _command(sub, "promote", "move champion to the challenger if it passes the gate",
                 "  riskmodel promote\n  riskmodel promote --force --reason \"approved by the review board\"")
    p.add_argument("--name", default=DEFAULT_MODEL, help="registered model name, e.g. dispute-risk")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses; needs --reason")
    p.add_argument("--reason", default=None, help='why (recorded with the decision), e.g. "board decision 12/3"')
    p.add_argument("--json", action="store_true", help="also print the whole gate record as JSON")
    p.set_defaults(func=_cmd_promote)

    p = _command(sub, "rollback", "give champion back to the previous champion version",
                 "  riskmodel rollback --reason \"v7 over-flags S03\"")
    p.add_argument("--name", default=DEFAULT_MODEL, help="registered model name, e.g. dispute-risk")
    p.add_argument("--reason", default=None, help='why (recorded with the rollback), e.g. "v7 over-flags S03"')
    p.set_defaults(func=_cmd_rollback)

    p = sub.add_parser("score", help="nightly batch scoring of every open dispute")
    p.add_argument("--model", default=f"models:/{DEFAULT_MODEL}@champion")
    p.add_argument("--events", required=True, help="event log: parquet file / folder / dataset, or CSV")
    p.add_argument("--entities", default=None,
                   help="entities table (one row per dispute), needed by models trained with one")
    p.add_argument("--as-of", required=True, type=_moment)
    p.add_argument("--out", required=True, help="output folder, one per night (an existing one needs --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a previous night's --out folder (nothing else; a refused run leaves it)")
    p.add_argument("--reasons", choices=["flagged", "all", "none"], default="flagged")
    p.add_argument("--chunk-disputes", type=_count(1), default=200_000)
    p.add_argument("--engine", choices=["local", "spark"], default="local")
    p.add_argument("--threads", type=_count(1), default=None,
                   help="LightGBM threads for predictions and reasons, e.g. 1 on a machine shared with other "
                        "jobs (default: every core; --engine local only)")
    p.add_argument("--master", default=None)
    p.add_argument("--drift-watch", type=float, default=0.1, help="PSI from which drift is 'watch' (0.1)")
    p.add_argument("--drift-act", type=float, default=0.25, help="PSI from which drift is 'act' (0.25)")
    p.add_argument("--fail-on-drift", choices=["watch", "act"], default=None,
                   help=f"exit with status {EXIT_DRIFT} (after writing the output) when drift reaches this level")
    p.add_argument("--log-mlflow", action="store_true",
                   help="log the drift figures to the MLflow experiment dispute-risk-monitoring")
    p.add_argument("--tiers", choices=["night", "trained"], default="night",
                   help="night: the model's share policy ranks tonight's disputes (default); trained: the "
                        "trained probability thresholds, e.g. trained")
    p.add_argument("--red-share", type=_fraction, default=None, help="red = this share of tonight's disputes, e.g. 0.05 (default: the model's)")
    p.add_argument("--yellow-share", type=_fraction, default=None, help="yellow = the next this share, e.g. 0.15 (default: the model's)")
    p.add_argument("--tiers-by", default=None,
                   help="apply the shares within each value of this entity column (e.g. station); '' = city-wide")
    p.add_argument("--capacity", action="append", default=None, metavar="AREA=RED[/YELLOW] or TABLE",
                   help="red (and yellow) cases an area takes tonight, e.g. --capacity S01=10 --capacity S02=5/20, "
                        "or a CSV / parquet table with columns area (or the --tiers-by column), red[, yellow]")
    _describe(p, "nightly batch scoring of every open dispute", _SCORE_HELP, _SCORE_EXAMPLES)
    p.set_defaults(func=_cmd_score)

    p = _command(sub, "sweep", "from one case to every open dispute sharing its risk pattern",
                 "  riskmodel sweep --scores nights/2025-12-01 --like D0012345 --entities entities.parquet\n"
                 "  riskmodel sweep --scores nights/2025-12-01 --pattern \"category=building & tier=red\"")
    p.add_argument("--scores", required=True, help="a `riskmodel score` output folder (required), "
                   "e.g. nights/2025-12-01")
    p.add_argument("--like", default=None, help="dispute id of the case, e.g. D0012345 (one that just escalated)")
    p.add_argument("--pattern", default=None, help='rule, e.g. "category=building & count_threat_30D>0"')
    p.add_argument("--model", default=None,
                   help="model URI or folder, e.g. models:/dispute-risk/3 (default: the version that scored "
                        "the night, from its manifest)")
    p.add_argument("--events", default=None,
                   help="event log, e.g. events.parquet (default: the scores' input, if it was a file)")
    p.add_argument("--entities", default=None, help="entities table, e.g. entities.parquet")
    p.add_argument("--method", choices=["both", "rule", "similar"], default="both", help="how cases match, e.g. rule")
    p.add_argument("--area", default="auto",
                   help="area column of the work lists: auto (the scores' own, e.g. station), none (the city), "
                        "or a column, e.g. district")
    p.add_argument("--min-similarity", type=_fraction, default=0.7, help="cosine similarity needed, e.g. 0.8")
    p.add_argument("--neighbours", type=_count(1), default=100, help="most similar disputes kept, e.g. 50")
    p.add_argument("--out", default=None, help="write the matches as .parquet or .csv, e.g. sweep.csv")
    p.set_defaults(func=_cmd_sweep)

    p = _command(sub, "explain", "why one dispute has its tier: timeline, p, threshold, every contribution",
                 "  riskmodel explain D0012345 --scores nights/2025-12-01 --entities entities.parquet\n"
                 "  riskmodel explain D0012345 --scores nights/2025-12-01 --entities entities.parquet "
                 "--html explain.html --plot none")
    p.add_argument("dispute_id", help="the dispute's id, e.g. D0012345")
    p.add_argument("--scores", required=True, help="the night's `riskmodel score` output folder (required), "
                   "e.g. nights/2025-12-01")
    p.add_argument("--events", default=None,
                   help="event log, e.g. events.parquet (default: the night's input, when it was a file)")
    p.add_argument("--entities", default=None,
                   help="entities table, e.g. entities.parquet (needed by models trained with one)")
    p.add_argument("--model", default=None,
                   help="model URI or folder, e.g. models:/dispute-risk/3 (default: the version that scored "
                        "the night, from its manifest)")
    p.add_argument("--area", default="auto",
                   help="area column for the thresholds tonight: auto (the scores' own), none, or a column, e.g. district")
    p.add_argument("--plot", default=None,
                   help="PNG of the contributions and the timeline, e.g. case.png or none "
                        "(default: explain-ID.png here)")
    p.add_argument("--html", default=None, help="also write a self-contained HTML page, e.g. explain.html")
    p.add_argument("--top", type=_count(0), default=15, help="contributions listed, e.g. 30")
    p.add_argument("--events-shown", type=_count(0), default=25, help="latest timeline events listed, e.g. 50")
    p.set_defaults(func=_cmd_explain)

    p = _command(sub, "barometer", "risk by station and day over nightly outputs (table + PNG plots)",
                 "  riskmodel barometer --scores nights/* --plots plots/ --out barometer.csv")
    p.add_argument("--scores", required=True, nargs="+",
                   help="`riskmodel score` output folders, one per night (required), e.g. nights/*")
    p.add_argument("--area", default="auto",
                   help="area column: auto (the scores' own, e.g. station; the city when they have none), "
                        "none (the city), or a column, e.g. district")
    p.add_argument("--value", default="flagged_share", help="heat map value, e.g. red_share or mean_probability")
    p.add_argument("--out", default=None, help="write the table as .parquet or .csv, e.g. barometer.csv")
    p.add_argument("--plots", default=None, help="folder for barometer_heatmap.png and tier_trend.png, e.g. plots/")
    p.set_defaults(func=_cmd_barometer)

    p = _command(sub, "report", "the nightly self-contained HTML report",
                 "  riskmodel report --scores nights/2025-12-01 --history nights/2025-11-* --out report.html\n"
                 "  riskmodel report --scores nights/2025-12-01 --outcomes events.parquet --model "
                 "models:/dispute-risk@champion --events events.parquet --entities entities.parquet "
                 "--explain D0012345 --out report.html")
    p.add_argument("--scores", required=True, help="tonight's `riskmodel score` output folder (required), "
                   "e.g. nights/2025-12-01")
    p.add_argument("--history", nargs="*", default=[],
                   help="earlier nights' folders (barometer trend, audit), e.g. nights/2025-11-*")
    p.add_argument("--outcomes", default=None,
                   help="later-observed escalations: event log or table, e.g. events.parquet (default: no audit)")
    p.add_argument("--horizon", default=None, help="the audit's horizon, e.g. 60D (default: the model's, from the "
                   "night's manifest; 90D, also in the legend, for a model that does not record it)")
    p.add_argument("--model", default=None, help="model URI or folder, e.g. models:/dispute-risk@champion: the "
                   "reasons of missed blue cases (with --outcomes), --explain and the drift table's feature names; "
                   "read only for those (default: the version that scored the night, from its manifest, when "
                   "--events or --explain asks for one)")
    p.add_argument("--events", default=None, help="event log, e.g. events.parquet: the reasons of missed blue cases "
                   "(with --outcomes) and --explain (default: the night's input, when it was a file and --model or "
                   "--explain asks for one)")
    p.add_argument("--entities", default=None, help="entities table, e.g. entities.parquet: the missed cases' areas "
                   "and categories (with --outcomes) and --explain")
    p.add_argument("--explain", nargs="*", default=[], help="dispute ids explained in the report, e.g. D0012345 "
                   "D0012346 (with --model and --events, or those the night's manifest names, as explain)")
    p.add_argument("--area", default="auto",
                   help="area column: auto (the scores' own, e.g. station; the city when they have none), "
                        "none (the city), or a column, e.g. district")
    p.add_argument("--out", required=True, help="the HTML file to write (required), e.g. report.html")
    p.set_defaults(func=_cmd_report)
    return parser


#: Set to 1 to see the traceback of an unexpected error (a bug) instead of its one-line summary.
DEBUG_ENV = "RISKMODEL_TRACEBACK"


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as one plain line (no source file, no code line)."""
    print(f"riskmodel: {category.__name__}: {message}", file=file or sys.stderr)


@contextlib.contextmanager
def _console():
    """The command's console: riskmodel's info lines and warnings as one line each on
    stderr (no source lines), for the command only."""
    logger = logging.getLogger("riskmodel")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("riskmodel: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        with warnings.catch_warnings():  # restores the filters and showwarning afterwards
            warnings.showwarning = _show_warning
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.simplefilter("default", DataWarning)  # each command shows its data warnings again
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv=None) -> int:
    os.environ.setdefault("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO chatter between our lines
    for name in ("mlflow", "alembic"):  # also when MLflow was imported before (set its level at import)
        logging.getLogger(name).setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
    args = build_parser().parse_args(argv)
    with _console():
        try:
            return args.func(args)
        except (DataError, ConfigError, ModelError) as exc:
            print(f"riskmodel: error: {exc.for_cli()}", file=sys.stderr)
            return 2
        except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback on request
            if os.environ.get(DEBUG_ENV):
                raise
            print(f"riskmodel: unexpected error (a bug in riskmodel, please report it): {type(exc).__name__}: "
                  f"{exc}. Set {DEBUG_ENV}=1 to see the traceback.", file=sys.stderr)
            return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
