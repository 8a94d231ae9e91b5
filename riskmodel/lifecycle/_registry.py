"""MLflow lifecycle: tracked training, registered versions, the promotion gate, loading.

Local default: a sqlite store and an artifact folder under ``./riskmodel-mlflow/`` in the
working directory (``mlflow.db`` and ``artifacts/``). ``MLFLOW_TRACKING_URI`` points it
at a team server instead. Aliases: ``challenger`` is the newest trained version,
``champion`` the live one.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError, DataWarning, ModelError, format_examples
from .._faults import crash_point
from ..data import (
    decimal_text,
    frame_fingerprint,
    ids_of_one_type,
    isna_mask,
    parse_duration,
    require_frame,
)
from ..evaluation import check_n_folds, make_cutoffs, make_labels, open_disputes
from ..features import PreparedEvents, skip_notes
from ..model import RiskModel, check_outcomes_seen, load_model_dir, save_model_dir
from ._config import ExperimentConfig, load_data, row_numbers
from ._intake import take_in
from ._progress import TrainProgress
from ._store import (
    borrowed_tracking,
    client_for,
    ensure_experiment,
    retry,
    tracking_uri,
)

__all__ = ["Predictor", "load", "promote", "rollback", "train", "tracking_uri"]

CHAMPION, CHALLENGER = "champion", "challenger"
_log = logging.getLogger("riskmodel")
_HISTORY_TAG = "riskmodel.champion_history"


# ------------------------------------------------------------------------------------------
# training


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    run_id: str
    model_name: str
    version: str
    model: RiskModel
    backtest: object
    metrics: dict = field(default_factory=dict)
    champion_comparison: dict | None = None
    timings: dict = field(default_factory=dict)
    #: Every event row read: used, rejected (by reason), exact duplicates dropped (see :func:`train`).
    data_counts: dict = field(default_factory=dict)
    #: The rejected event rows (file line or row, values, ``reject_reason``); empty when none.
    rejects: pd.DataFrame | None = None


def _synthetic_input_example(model: RiskModel, n_events: int = 6) -> pd.DataFrame:
    """A tiny events frame made up from the model's vocabulary: no real record ever."""
    schema = model._schema()
    kinds = [k for k in model.features_.kinds_ if k not in schema.outcome_kinds] or model.features_.kinds_
    t0 = pd.Timestamp("2024-01-01", tz="UTC" if model.features_.tz_aware_ else None)  # the model's convention
    frame = pd.DataFrame(
        {
            schema.entity_col: ["EXAMPLE-1"] * (n_events // 2) + ["EXAMPLE-2"] * (n_events - n_events // 2),
            schema.time_col: [t0 + pd.Timedelta(days=3 * i, hours=9) for i in range(n_events)],
            schema.kind_col: [kinds[i % len(kinds)] for i in range(n_events)],
        }
    )
    if schema.text_col:
        frame[schema.text_col] = "示例记录 synthetic example"
    if schema.party_col:
        frame[schema.party_col] = ["EXAMPLE-P1", "EXAMPLE-P2"] * (n_events // 2) + ["EXAMPLE-P1"] * (n_events % 2)
    for col in schema.event_attribute_cols:
        frame[col] = "example"
    if model.features_.has_entities_:
        for col in schema.entity_categorical_cols:
            vocab = model.features_.categories_.get(col) or ["example"]
            frame[col] = vocab[0]
        for col in schema.entity_numeric_cols:
            frame[col] = 0.0
        for col in schema.entity_time_cols:
            frame[col] = t0
    return frame


def _signature(model: RiskModel, example: pd.DataFrame, output: pd.DataFrame):
    """Model signature: id, time and kind are required; text, party and attributes optional.

    Every input column is of type ``Any``: MLflow's enforcement would otherwise refuse what
    riskmodel accepts (categoricals, Arrow strings, times as strings, timezone-aware
    times) or convert it; riskmodel validates the values itself.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    schema = model._schema()
    inferred = infer_signature(example, output.astype({"as_of": str, "tier": str}))
    required = {schema.entity_col, schema.time_col, schema.kind_col}
    inputs = Schema([ColSpec(AnyType(), c.name, required=c.name in required) for c in inferred.inputs.inputs])
    # No default as_of: MLflow fills a missing param with its default, which would silently
    # score a request at the example's date instead of refusing it.
    params = ParamSchema([ParamSpec("as_of", "string", None), ParamSpec("reasons", "string", "flagged")])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=params)


def _last_fold_metrics(backtest) -> dict[str, float]:
    out: dict[str, float] = {}
    for scorer, row in backtest.metrics.iterrows():
        key = re.sub(r"[^0-9A-Za-z_]+", "_", str(scorer))
        for column, value in row.items():
            if pd.notna(value):
                out[f"{key}_{column}"] = float(value)
    return out


def _backtest_facts(backtest, metrics: dict) -> dict:
    """The last fold's headline figures, saved with the model (its outputs' legend reads them)."""
    last = backtest.folds.iloc[-1]
    keys = ("model_roc_auc", "model_roc_auc_lower", "model_roc_auc_upper", "model_brier", "model_ece",
            "model_n", "model_n_positive", "tier_red_hit_rate", "tier_yellow_hit_rate", "tier_blue_hit_rate",
            "tier_red_share", "tier_yellow_share")
    facts = {k.removeprefix("model_"): round(float(metrics[k]), 6) for k in keys if k in metrics}
    facts["test_start"], facts["test_end"] = str(last["test_start"].date()), str(last["test_end"].date())
    return facts


def fit_summary_metrics(summary: dict) -> dict[str, float]:
    """The fit summary's numbers as MLflow metrics: rounds, and the fold-to-fold spread of
    AUC and Brier (``fit_fold_roc_auc_mean``, ``..._sd``, ``..._min``, ``..._max``)."""
    out: dict[str, float] = {}
    for key in ("n_rounds", "best_iteration", "num_leaves", "n_final", "n_calibration", "n_reference"):
        if summary.get(key) is not None:
            out[f"fit_{key}"] = float(summary[key])
    for metric, stats in (summary.get("fold_spread") or {}).items():
        for stat, value in (stats or {}).items():
            if value is not None:
                out[f"fit_fold_{metric}_{stat}"] = float(value)
    out["fit_notes"] = float(len(summary.get("notes") or []))
    return out


def _tiers_ordered(tier_table: pd.DataFrame) -> bool:
    hit = tier_table.set_index("tier")["hit_rate"]
    return bool(hit.get("red", np.nan) > hit.get("yellow", np.nan) > hit.get("blue", np.nan))


#: Out-of-sample rows of the last fold needed to compare a champion on them (positives).
_FEW_COMPARED_POSITIVES = 10


def _score_champion(client, name: str, backtest, prepared, entities, horizon) -> dict | None:
    """The current champion's figures beside the challenger's, each judged out of sample.

    On the rows of the challenger's last backtest fold the champion never saw (``as_of``
    after its training data ended), when they hold at least
    :data:`_FEW_COMPARED_POSITIVES` positives: both models on those rows (``basis``
    ``"same_rows"``). Otherwise (a retrain on the same or overlapping data), or when the
    champion cannot read the challenger's data (another schema, an entities table it
    needs): each model on its own backtest's last fold (``"own_backtests"``). Models of
    different horizons predict different things: ``"none"``, with ``why``. ``None`` when
    there is no champion.
    """
    from ..evaluation import bootstrap_metrics, tier_table

    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - no registered model or no champion yet
        return None
    out = {"version": str(mv.version)}
    try:
        run = client.get_run(mv.run_id).data
    except Exception:  # noqa: BLE001 - a version registered without a run: nothing to compare with
        return {**out, "basis": "none", "why": f"champion version {mv.version} has no training run to compare with"}
    try:
        champion = load(f"models:/{name}/{mv.version}", tracking=client.tracking_uri)
    except ModelError:  # e.g. an artifact of another feature-spec version: its own figures only
        champion = None
    theirs = None if champion is None else champion.model.training_summary_.get("horizon")
    if theirs is not None and parse_duration(theirs, "horizon") != parse_duration(horizon, "horizon"):
        return {**out, "basis": "none", "why": f"champion version {mv.version} gives the probability of an "
                f"escalation within {theirs}, this model within {horizon}: their figures are not comparable"}
    preds = backtest.predictions
    ended = run.tags.get("data.end")
    unseen = (preds["as_of"] > pd.Timestamp(ended)).to_numpy() if ended else np.zeros(len(preds), dtype=bool)
    y = preds["label"].to_numpy(dtype=int)
    if champion is not None and int(y[unseen].sum()) >= _FEW_COMPARED_POSITIVES and not y[unseen].all():
        rows = preds[unseen]
        schema = champion.model._schema()
        try:
            cut = rows[[schema.entity_col, "as_of"]]
            X = champion.model.transform_features(prepared, cut, entities=entities, utc=True)  # backtest rows: UTC
            scored = champion.model.score_features(X, cut, reasons="none")
        except (KeyError, ValueError, DataError, ConfigError, ModelError):  # another schema, entities it needs
            scored = None
        if scored is not None:
            groups = rows[schema.entity_col].to_numpy()
            theirs = bootstrap_metrics(y[unseen], scored["probability"].to_numpy(), groups=groups)
            ours = bootstrap_metrics(y[unseen], rows["probability"].to_numpy(), groups=groups)
            return {**out, "basis": "same_rows", "n": int(unseen.sum()), "n_positive": int(y[unseen].sum()),
                    "roc_auc": float(theirs.loc["roc_auc", "value"]), "brier": float(theirs.loc["brier", "value"]),
                    "roc_auc_lower": float(theirs.loc["roc_auc", "lower"]),
                    "roc_auc_upper": float(theirs.loc["roc_auc", "upper"]),
                    "challenger_roc_auc": float(ours.loc["roc_auc", "value"]),
                    "challenger_brier": float(ours.loc["brier", "value"]),
                    "tiers_ordered": _tiers_ordered(tier_table(y[unseen], scored["tier"].astype(str).to_numpy()))}
    figures = {k: float(run.metrics[f"model_{k}"]) for k in ("roc_auc", "brier") if f"model_{k}" in run.metrics}
    if "base_rate_brier" in run.metrics:  # its fold's base rate: Brier scores of two windows compare relative to it
        figures["base_rate_brier"] = float(run.metrics["base_rate_brier"])
    return {**out, "basis": "own_backtests", **figures}


def train(config: ExperimentConfig, *, tracking: str | None = None, register: bool = True,
          drop_invalid: bool | None = None, progress: bool | TrainProgress = False) -> TrainResult:
    """Backtest, fit and log one experiment to MLflow; register it as ``challenger``.

    Parameters
    ----------
    config : ExperimentConfig
        See :func:`riskmodel.load_config`.
    tracking : str, optional
        Tracking URI; default :func:`tracking_uri`. MLflow's process-wide settings are
        only borrowed for the run and restored afterwards.
    register : bool, default=True
        Register the model as a new version with alias ``challenger``.
    drop_invalid : bool, optional
        Train on the valid event rows and record the rejected ones (file line, values,
        reason) in the run as ``data/rejects.csv``; default ``config.data.drop_invalid``.
        Otherwise an extract with invalid rows is refused with a :class:`DataError`
        listing each problem, its count and the first file lines.

    Every row read is accounted for: ``result.data_counts`` (also the run's ``data.*``
    tags and metrics) gives rows read, used, rejected (by reason) and exact duplicates
    dropped.
    progress : bool or TrainProgress, default=False
        Report each step (the data, every backtest fold, the final fit, MLflow) with the
        elapsed time and an ETA on stderr: one line rewritten on a terminal, plain lines
        otherwise.
    """
    with skip_notes():  # one line for the skipped feature families, however many fits
        return _train(config, tracking=tracking, register=register, drop_invalid=drop_invalid, progress=progress)


def _train(config: ExperimentConfig, *, tracking, register, drop_invalid, progress) -> TrainResult:
    import mlflow

    from ..evaluation import backtest as run_backtest
    from ..evaluation import save_figure
    from ._card import model_card

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    n_folds = config.backtest.n_folds
    check_n_folds(n_folds)  # before any work: the progress units below add to it
    # units: the data 0.5, each fold 1, the last fold's bootstrap 0.5, the final fit (all the
    # data) 1.3, the champion comparison and MLflow 0.5
    units = {"data": 0.5, "backtest": n_folds + 0.5, "final": 1.3, "log": 0.5}
    bar = progress if isinstance(progress, TrainProgress) else (
        TrainProgress(sum(units.values())) if progress else None)

    def step(done: float, message: str) -> None:
        if bar is not None:
            bar.update(done, message)

    step(0, f"loading the data ({config.data.source})")
    schema = config.schema
    events, entities, _sim = load_data(config)
    d = config.data
    files = d.source == "files"
    intake = take_in(events, schema, drop_invalid=d.drop_invalid if drop_invalid is None else drop_invalid,
                     source=Path(d.events).name if files else "events",
                     locate=(lambda n: row_numbers(d.events, n)) if files else None)
    _log.info(intake.summary())
    prepared = intake.prepared
    check_outcomes_seen(prepared, schema.outcome_kinds)
    unseen = [k for k in schema.outcome_kinds if not prepared.is_kind([k]).any()]
    if unseen:
        _log.info("outcome kind(s) %s never occur in the events (the others do)", unseen)
    lab = config.labels
    cutoffs = make_cutoffs(prepared, schema, entities=entities, start=lab.start, end=lab.end, freq=lab.freq,
                           max_inactive=lab.max_inactive)
    labelled = make_labels(prepared, cutoffs, schema, horizon=lab.horizon)
    n_censored = int(labelled["censored"].sum())
    if n_censored and n_censored == len(labelled):
        span = (f"the events run from {pd.Timestamp(prepared.times_ns.min()).date()} to "
                f"{pd.Timestamp(prepared.times_ns.max()).date()}, the cutoffs from "
                f"{pd.Timestamp(labelled['as_of'].min()).date()}")
        head = (f"every one of the {n_censored:,} cutoffs is censored: the horizon {lab.horizon} after each runs past "
                f"the end of the data ({span}), so no label is known")
        raise ConfigError(f"{head}; give config.labels a shorter horizon or an earlier end.",
                          cli=f"{head}; shorten [labels] horizon, or end the cutoffs earlier ([labels] end).")
    labelled = labelled[~labelled["censored"]].drop(columns="censored").reset_index(drop=True)
    timings["data"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    bt = config.backtest

    def fold_step(done: float, total: float, message: str) -> None:
        step(units["data"] + min(done, n_folds), message)  # the bootstrap's half unit ends with the backtest

    step(units["data"], f"{len(labelled):,} labelled cutoffs of {len(prepared.entity_ids):,} disputes; backtest")
    result = run_backtest(
        prepared, labelled, model=config.build_model(), entities=entities, n_folds=bt.n_folds,
        test_period=bt.test_period, horizon=lab.horizon, checklist=bt.checklist or None,
        n_bootstrap=bt.n_bootstrap, progress=fold_step,
    )
    timings["backtest"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    step(units["data"] + units["backtest"], f"final fit on all {len(labelled):,} labelled cutoffs")
    model = config.build_model().fit(prepared, labelled, entities=entities)
    timings["final_fit"] = time.perf_counter() - t2
    step(units["data"] + units["backtest"] + units["final"],
         "comparing with the champion and logging to MLflow" if register else "logging to MLflow")

    uri = tracking or tracking_uri()
    client = client_for(uri)
    champion = _score_champion(client, config.registered_model, result, prepared, entities,
                               lab.horizon) if register else None

    metrics = _last_fold_metrics(result)
    metrics["tiers_ordered"] = float(_tiers_ordered(result.tier_table))
    for tier_row in result.tier_table.itertuples():
        metrics[f"tier_{tier_row.tier}_share"] = float(tier_row.share)
        if pd.notna(tier_row.hit_rate):
            metrics[f"tier_{tier_row.tier}_hit_rate"] = float(tier_row.hit_rate)
    if champion:
        metrics.update({f"champion_{k}": float(v) for k, v in champion.items() if k not in ("version", "basis", "why")})
    model.training_summary_ = {**getattr(model, "training_summary_", {}), "horizon": lab.horizon,
                               "backtest": _backtest_facts(result, metrics)}
    metrics.update(fit_summary_metrics(model.training_summary_))

    exp_name = f"riskmodel/{config.name}"
    experiment_id = ensure_experiment(client, uri, exp_name)
    t3 = time.perf_counter()
    t_min = pd.Timestamp(prepared.times_ns.min())
    t_max = pd.Timestamp(prepared.times_ns.max())
    counts = intake.counts
    with borrowed_tracking(uri), retry(mlflow.start_run, experiment_id=experiment_id,
                                       run_name=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        crash_point("train.run")
        retry(mlflow.log_params, config.flat_params())
        retry(mlflow.set_tags, {
            "riskmodel.config_fingerprint": config.fingerprint(),
            "data.source": config.data.source,
            "data.fingerprint": frame_fingerprint(events),
            "data.events": str(len(events)),
            "data.rows_read": str(counts["rows_read"]),
            "data.rows_used": str(counts["rows_used"]),
            "data.rows_rejected": str(counts["rows_rejected"]),
            "data.duplicates_dropped": str(counts["duplicates_dropped"]),
            "data.disputes_rejected": str(counts["disputes_rejected"]),
            "data.rejected_by_reason": json.dumps(counts["rejected_by_reason"], ensure_ascii=False)[:5000],
            "data.disputes": str(len(prepared.entity_ids)),
            "data.start": str(t_min),
            "data.end": str(t_max),
            "data.cutoffs": str(len(labelled)),
            "data.cutoffs_censored_dropped": str(n_censored),
            "data.positives": str(int(labelled["label"].sum())),
            "backtest.last_fold": json.dumps(result.folds.iloc[-1][["test_start", "test_end"]].astype(str).to_dict()),
            "champion.compared_version": champion["version"] if champion else "none",
            **({"champion.compared_on": champion["basis"], "champion.not_comparable": champion.get("why", "")}
               if champion else {}),
        })
        retry(mlflow.log_metrics, metrics)
        retry(mlflow.log_metrics, {f"time_{k}_s": v for k, v in timings.items()})
        retry(mlflow.log_metrics, {f"data_{k}": float(counts[k]) for k in
                                   ("rows_read", "rows_used", "rows_rejected", "duplicates_dropped")})
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            if len(intake.rejects):
                (tmp / "data").mkdir()
                intake.rejects.to_csv(tmp / "data" / "rejects.csv", index=False)
            (tmp / "experiment.toml").write_text(config.source_text or json.dumps(config.to_dict(), default=str), encoding="utf-8")
            for name, fig in result.figures().items():
                save_figure(fig, tmp / "plots" / f"{name}.png")
            result.folds.to_csv(tmp / "backtest_folds.csv", index=False)
            result.metrics.to_csv(tmp / "backtest_metrics.csv")
            result.comparisons.to_csv(tmp / "backtest_comparisons.csv")
            result.tier_table.to_csv(tmp / "tier_table.csv", index=False)
            if result.subgroup is not None:  # no group columns: no subgroup report
                result.subgroup.to_csv(tmp / "subgroup_report.csv", index=False)
            (tmp / "fit_summary.json").write_text(
                json.dumps(model.training_summary_, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
            if len(getattr(model, "folds_", ())):
                model.folds_.to_csv(tmp / "fit_folds.csv", index=False)
            card = model_card(config, model, result, metrics, champion=champion,
                              data_window=(str(t_min), str(t_max)), n_events=len(events))
            (tmp / "model_card.md").write_text(card, encoding="utf-8")
            retry(mlflow.log_artifacts, str(tmp))

            model_dir = save_model_dir(model, tmp / "riskmodel")
            example = _synthetic_input_example(model)
            from ._pyfunc import score_all, split_entity_columns

            ex_events, ex_entities = split_entity_columns(example, model)
            example_as_of = "2024-02-01T00:00:00" + ("+00:00" if model.features_.tz_aware_ else "")
            output = score_all(model, ex_events, example_as_of, entities=ex_entities)
            signature = _signature(model, example, output)
            from .._version import VERSION as __version__

            info = retry(
                mlflow.pyfunc.log_model,
                name="model",
                loader_module="riskmodel._pyfunc",
                data_path=str(model_dir),
                signature=signature,
                input_example=(example, {"as_of": example_as_of}),
                pip_requirements=[f"riskmodel=={__version__}"],
            )
            crash_point("train.logged")
        run_id = run.info.run_id
    crash_point("train.ended")
    version = ""
    if register:
        with borrowed_tracking(uri):  # the registry store resolves the logged model through MLflow's globals
            version = _register(client, config.registered_model, info, run_id, description=card[:5000], tags={
                "roc_auc": metrics.get("model_roc_auc"), "brier": metrics.get("model_brier"),
                "data_window": f"{t_min} .. {t_max}", "config": config.name,
            })
    timings["mlflow"] = time.perf_counter() - t3
    if bar is not None:
        bar.close(f"done: run {run_id}" + (f", {config.registered_model} version {version}" if version else ""))
    return TrainResult(run_id=run_id, model_name=config.registered_model, version=version, model=model,
                       backtest=result, metrics=metrics, champion_comparison=champion, timings=timings,
                       data_counts=counts, rejects=intake.rejects)


def _register(client, name: str, info, run_id: str, *, description: str, tags: dict) -> str:
    """Register a logged model as a new version of ``name`` and make it the ``challenger``.

    Called once the run has ended, so a version never points at a run still running. The
    version is created with its tags and description in one call; moving the alias is the
    last step, the one that makes it visible to :func:`promote`. A process killed before
    that leaves at most a complete version that no alias names.

    Returns
    -------
    str
        The new version.
    """
    try:
        retry(client.create_registered_model, name)
    except Exception as exc:  # noqa: BLE001 - an earlier run (or a concurrent one) created it
        if "already exists" not in str(exc).lower():
            raise
    mv = retry(client.create_model_version, name, source=info.model_uri, run_id=run_id,
               tags={f"riskmodel.{k}": str(v) for k, v in tags.items()}, description=description,
               model_id=getattr(info, "model_id", None))
    version = str(mv.version)
    crash_point("train.registered")
    retry(client.set_registered_model_alias, name, CHALLENGER, version)
    return version


# ------------------------------------------------------------------------------------------
# promotion


def _version_by_alias(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except Exception:  # noqa: BLE001 - MLflow raises a generic exception for missing aliases
        return None


def promote(
    name: str = "dispute-risk",
    *,
    force: bool = False,
    reason: str | None = None,
    auc_tolerance: float = 0.005,
    brier_tolerance: float = 0.02,
    tracking: str | None = None,
) -> dict:
    """Move ``champion`` to the ``challenger`` if it passes the gate (or if forced).

    The gate compares the figures the challenger's training run measured, each model out of
    sample: on the rows of the challenger's latest backtest fold the champion never saw
    (after its data ended), when there are enough of them; otherwise each on its own
    backtest's latest fold. The challenger passes when its ROC-AUC is at most
    ``auc_tolerance`` lower, its Brier at most ``brier_tolerance`` (relative) higher, and
    its tiers are ordered by hit rate; a champion of another horizon is not comparable
    (``force`` it). With no champion yet, it must beat every baseline on AUC and Brier
    instead. The decision and figures are recorded as version tags; ``force=True`` needs a
    ``reason``, also recorded.
    """
    client = client_for(tracking)
    challenger = _version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise ModelError(f"registered model {name!r} has no {CHALLENGER!r} version; run `riskmodel train` first.")
    if force and not reason:
        raise ConfigError("--force needs --reason '...': a forced promotion must say why.")
    champion = _version_by_alias(client, name, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        record = {"decision": "unchanged", "version": challenger.version, "checks": {}, "criteria": [],
                  "message": "challenger is already champion"}
        record["verdict"] = gate_verdict(record, name)
        return record
    m = client.get_run(challenger.run_id).data.metrics
    tags = client.get_run(challenger.run_id).data.tags
    criteria = _gate_criteria(m, tags, champion, auc_tolerance, brier_tolerance)
    checks = {c["name"]: c["passed"] for c in criteria}
    figures = {k: v for k, v in m.items() if k.startswith(("model_", "champion_")) or k == "tiers_ordered"}
    passed = all(checks.values())
    decision = "passed" if passed else ("forced" if force else "refused")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    record = {"decision": decision, "checks": checks, "criteria": criteria, "figures": figures, "at": stamp,
              "previous_champion": champion.version if champion else None, "reason": reason}
    retry(client.set_model_version_tag, name, challenger.version, "riskmodel.gate", json.dumps(record, default=str))
    if decision in ("passed", "forced"):
        retry(client.set_registered_model_alias, name, CHAMPION, challenger.version)
        history = _history(client, name)
        history.append(str(challenger.version))
        retry(client.set_registered_model_tag, name, _HISTORY_TAG, json.dumps(history))
    record["version"] = challenger.version
    record["verdict"] = gate_verdict(record, name)
    return record


def _gate_criteria(m: dict, tags: dict, champion, auc_tolerance: float, brier_tolerance: float) -> list[dict]:
    """The gate's checks, each with its figures in words and its margin (> 0 passes).

    A first model must clearly beat the base rate and be no worse than the other baselines
    beyond the same tolerances as a champion comparison; a later one must be no worse than
    the champion, compared as the training run recorded (``champion.compared_on``: on the
    same rows, on their own backtests, or not comparable).
    """
    out: list[dict] = []

    def add(name: str, margin: float, detail: str, passed: bool | None = None) -> None:
        ok = bool(margin >= 0) if passed is None else bool(passed)
        out.append({"name": name, "passed": ok, "margin": round(float(margin), 6), "detail": detail})

    def auc(ref: float, label: str, *, strictly: bool = False, model: float | None = None) -> None:
        model = m.get("model_roc_auc") if model is None else model
        if model is None or not np.isfinite(model):
            add(f"auc_beats_{label}" if strictly else f"auc_not_worse_than_{label}", -1.0,
                "ROC-AUC undefined: the last backtest fold holds no positive (or no negative) cutoff, so the model "
                "cannot be judged; more data, or fewer or longer folds ([backtest] n_folds, test_period)")
            return
        need = ref + auc_tolerance if strictly else ref - auc_tolerance
        margin = model - need
        rule = f"must beat it by more than {auc_tolerance:g}" if strictly else f"may be at most {auc_tolerance:g} lower"
        add(f"auc_beats_{label}" if strictly else f"auc_not_worse_than_{label}", margin,
            f"ROC-AUC {model:.3f} vs {label.replace('_', ' ')} {ref:.3f}, {rule}: "
            f"{'passes' if margin >= 0 else 'fails'} by {_figure(abs(margin), 3)}",
            passed=(model > need) if strictly else None)

    def brier(ref: float, label: str, *, strictly: bool = False, model: float | None = None) -> None:
        model = m.get("model_brier", np.inf) if model is None else model
        limit = ref if strictly else ref * (1 + brier_tolerance)
        margin = (limit - model) / ref if ref else -1.0
        rule = "must be lower" if strictly else f"may be at most {brier_tolerance:.0%} higher"
        add(f"brier_beats_{label}" if strictly else f"brier_not_worse_than_{label}", margin,
            f"Brier {model:.4f} vs {label.replace('_', ' ')} {ref:.4f}, {rule}: "
            f"{'passes' if margin >= 0 else 'fails'} by {_figure(100 * abs(margin), 1)}% of it",
            passed=(model < limit) if strictly else None)

    hits = [m.get(f"tier_{t}_hit_rate") for t in ("red", "yellow", "blue")]
    shown = " > ".join(f"{t} {h:.0%}" if h is not None else f"{t} n/a" for t, h in zip(("red", "yellow", "blue"), hits,
                                                                                        strict=True))
    ordered = m.get("tiers_ordered", 0.0) == 1.0
    add("tiers_ordered", 1.0 if ordered else -1.0, f"tiers ordered by hit rate on the last fold: {shown}"
        if ordered else f"tiers not ordered by hit rate on the last fold ({shown.replace(' > ', ', ')})")
    if champion is None:
        auc(m.get("base_rate_roc_auc", 0.5), "base_rate", strictly=True)
        brier(m.get("base_rate_brier", np.inf), "base_rate", strictly=True)
        for base in ("logistic_counts", "checklist"):
            if f"{base}_roc_auc" in m:
                auc(m[f"{base}_roc_auc"], base)
            if f"{base}_brier" in m:
                brier(m[f"{base}_brier"], base)
        return out
    compared = tags.get("champion.compared_version")
    basis = tags.get("champion.compared_on", "same_rows")  # runs before it was recorded: the same fold
    if compared != str(champion.version) or (basis == "same_rows" and "champion_roc_auc" not in m):
        add("same_fold_comparison", -1.0, f"the challenger was compared with champion version {compared or 'none'}, "
            f"not with the current champion version {champion.version}: retrain it to compare on the same fold")
        return out
    label = f"champion_v{champion.version}"
    if basis == "none":
        add("comparable_with_champion", -1.0, tags.get("champion.not_comparable") or "not comparable")
        return out
    if basis == "same_rows":  # both on the last fold's rows the champion never saw
        auc(m["champion_roc_auc"], label, model=m.get("champion_challenger_roc_auc"))
        brier(m["champion_brier"], label, model=m.get("champion_challenger_brier"))
    else:  # each on its own backtest's last fold
        label += "_own_backtest"
        if "champion_roc_auc" in m:
            auc(m["champion_roc_auc"], label)
        else:
            add("auc_not_worse", 0.0, f"champion version {champion.version}'s own ROC-AUC is undefined: not "
                "compared", passed=True)
        relative = _relative_briers(m)
        if relative is not None:  # two windows, two base rates: each Brier as a share of its fold's base rate's
            brier(relative[1], f"{label}_relative_to_its_base_rate", model=relative[0])
            out[-1]["detail"] = (out[-1]["detail"].replace("Brier", "Brier / its fold's base-rate Brier", 1)
                                 + f" (Brier {m['model_brier']:.4f} / {m['base_rate_brier']:.4f} vs "
                                 f"{m['champion_brier']:.4f} / {m['champion_base_rate_brier']:.4f}: the two test "
                                 "windows differ, and so do their base rates)")
        elif "champion_brier" in m:
            brier(m["champion_brier"], label)
        else:
            add("brier_not_worse", 0.0, f"champion version {champion.version}'s own Brier is undefined: not "
                "compared", passed=True)
    for c in out[-2:]:  # the names the gate has always recorded
        c["name"] = c["name"].split("_than_")[0]
    return out


def _figure(value: float, decimals: int) -> str:
    """``value`` with ``decimals`` decimals, or its two first significant digits when those
    show 0 (a check failing by 0.00005 must not read "fails by 0.000")."""
    if value == 0 or not np.isfinite(value) or round(value, decimals) != 0:
        return f"{value:.{decimals}f}"
    return np.format_float_positional(value, precision=2, fractional=False)


def _relative_briers(m: dict) -> tuple[float, float] | None:
    """The challenger's and the champion's Brier, each divided by the Brier of its own fold's
    base rate (``None`` when a run lacks one): the Brier of two test windows depends on their
    base rates (a window with more escalations has a higher Brier for the same model), so
    scores of different windows compare only relative to them."""
    pairs = (("model_brier", "base_rate_brier"), ("champion_brier", "champion_base_rate_brier"))
    values = [(m.get(brier), m.get(base)) for brier, base in pairs]
    if not all(b is not None and base and np.isfinite(b) and np.isfinite(base) for b, base in values):
        return None
    return values[0][0] / values[0][1], values[1][0] / values[1][1]


def gate_verdict(record: dict, name: str = "dispute-risk") -> str:
    """The gate's decision in one line: passed / refused / forced, which criterion, by how much."""
    version = record.get("version")
    criteria = record.get("criteria") or []
    failed = [c for c in criteria if not c["passed"]]
    decision = record.get("decision")
    if decision == "unchanged":
        return f"UNCHANGED: {name} version {version} is already champion."
    if decision == "passed":
        headline = next((c["detail"] for c in criteria if c["name"].startswith("auc_")), None)
        return (f"PASSED: {name} version {version} is champion now; all {len(criteria)} checks pass"
                + (f" ({headline})." if headline else "."))
    why = "; ".join(f"{c['name']}: {c['detail']}" for c in failed) or "no criterion recorded"
    if decision == "forced":
        return (f"FORCED: {name} version {version} is champion now although {len(failed)} of {len(criteria)} "
                f"checks fail ({why}); reason: {record.get('reason')}.")
    return (f"REFUSED: {name} version {version} stays challenger; {len(failed)} of {len(criteria)} checks fail: "
            f"{why}.")


def _history(client, name: str) -> list[str]:
    model = client.get_registered_model(name)
    return json.loads(model.tags.get(_HISTORY_TAG, "[]"))


def rollback(name: str = "dispute-risk", *, reason: str | None = None, tracking: str | None = None) -> dict:
    """Give ``champion`` back to the version that held it before the current one."""
    client = client_for(tracking)
    history = _history(client, name)
    if len(history) < 2:
        raise ModelError(f"registered model {name!r} has no previous champion to roll back to.")
    current, previous = history[-1], history[-2]
    try:
        retry(client.get_model_version, name, previous)
    except Exception as exc:  # noqa: BLE001 - MLflow raises a generic exception for a missing version
        if getattr(exc, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ModelError(f"version {previous} of {name!r}, the champion before version {current}, is no longer in "
                         "the registry (deleted): there is nothing to roll back to. Make another version champion "
                         "with promote (force=True and a reason if the gate refuses it).",
                         cli=f"version {previous} of {name!r}, the champion before version {current}, is no longer "
                         "in the registry (deleted): there is nothing to roll back to. Make another version champion "
                         "with `riskmodel promote` (--force --reason \"...\" if the gate refuses it).") from None
    retry(client.set_registered_model_alias, name, CHAMPION, previous)
    retry(client.set_registered_model_tag, name, _HISTORY_TAG, json.dumps(history[:-1]))
    record = {"decision": "rolled_back", "from": current, "to": previous, "reason": reason,
              "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    retry(client.set_model_version_tag, name, current, "riskmodel.rollback", json.dumps(record))
    return record


# ------------------------------------------------------------------------------------------
# loading and predicting


class Predictor:
    """A loaded model version: ``predict(events, as_of=...)`` or ``predict(events, cutoffs=...)``."""

    def __init__(self, model: RiskModel, *, model_name: str, model_version: str, run_id: str, uri: str):
        self.model = model
        self.model_name = model_name
        self.model_version = model_version
        self.run_id = run_id
        self.uri = uri

    def __repr__(self) -> str:
        return f"Predictor({self.model_name!r}, version={self.model_version!r})"

    def predict(self, events, as_of=None, *, cutoffs=None, entities=None, reasons: str = "flagged",
                tiers="trained", context_events=None) -> pd.DataFrame:
        """Score disputes; same columns as :meth:`RiskModel.predict` plus model name and version.

        Give either ``as_of`` (every dispute in ``events`` is scored at that time; with
        nightly tiers, every dispute open at that time, as ``riskmodel score`` ranks them) or
        a ``cutoffs`` frame (entity id, ``as_of``).

        Parameters
        ----------
        events : DataFrame
        as_of : datetime-like, optional
        cutoffs : DataFrame, optional
        entities : DataFrame, optional
        reasons : {"flagged", "all", "none"}, default="flagged"
        tiers : "trained", "night", mapping or TierPolicy, default="trained"
            ``"trained"``: each case's tier from the trained thresholds alone (it never
            depends on the other cases scored with it). ``"night"``: the scored disputes of
            each ``as_of`` are one night and the model's share policy ranks them (red = the
            top ``red`` share, city-wide or per area, with the policy's capacities; the
            nightly batch does this). With ``as_of``, the night is the disputes open at it
            (:func:`~riskmodel.open_disputes`: begun, not escalated, closed or dormant); the
            others are listed in ``result.attrs["not_scored"]`` (records: one dict per dispute,
            ``pd.DataFrame(result.attrs["not_scored"])`` for a table). Probability and precision
            policies stay as trained. A
            mapping changes the policy for this call, e.g. ``{"by": "station",
            "capacity": {"S01": 10}}`` or ``{"red": 0.08}`` (see
            :func:`~riskmodel.model.scoring_policy`). The thresholds and capacities used are
            in ``result.attrs["tiers"]`` (records, one per night and area). Records, not
            tables: pandas compares ``attrs`` when results are concatenated or merged, which
            tables in them would make fail.
        context_events : DataFrame or PreparedEvents, optional
            The whole log (or any superset of what the cross-dispute features read, see
            :meth:`FeatureBuilder.transform`), when ``events`` holds only the disputes to
            score: without it, a dispute's parties have no other dispute and its station no
            escalation beyond the request's events.
        """
        from ..model import area_column, retier_scores, scoring_policy
        from ._pyfunc import score_all, with_optional_columns

        if (as_of is None) == (cutoffs is None):
            raise ConfigError("pass exactly one of as_of=... or cutoffs=...")
        model = self.model
        for what, frame in (("events", events), ("cutoffs", cutoffs), ("entities", entities)):
            if frame is not None and not isinstance(frame, PreparedEvents):  # a polars or Arrow table, say
                require_frame(frame, what, allow_empty=True)
        if hasattr(events, "columns"):  # no narrative, no party: missing values, as the served model takes them
            events = with_optional_columns(events, model)
        policy = scoring_policy(model.tier_policy_, tiers)
        schema = model._schema()
        by = area_column(policy, schema.group_cols)
        areas_of = _area_lookup(entities, schema, by) if by else None
        extra = {"model_name": self.model_name, "model_version": self.model_version}
        if cutoffs is not None:
            out = model._predict(events, cutoffs, entities=entities, reasons=reasons, extra_columns=extra,
                                 context_events=context_events)
        elif policy is None:
            out = score_all(model, events, as_of, entities=entities, reasons=reasons, extra_columns=extra,
                            context_events=context_events)
        else:  # a night: the disputes open at as_of, as the nightly batch ranks them (not those begun later)
            events = ids_of_one_type(events, schema.entity_col) if hasattr(events, "columns") else events
            open_now = open_disputes(events, as_of, schema, entities=entities)[schema.entity_col]
            if len(open_now) == 0:
                raise DataError(f"no dispute in events is open at as_of {as_of} (every one began later, escalated, "
                                "closed or is dormant): is as_of the night you meant?")
            out = score_all(model, events, as_of, entities=entities, reasons=reasons, extra_columns=extra,
                            context_events=context_events, only=open_now)
            column = events[schema.entity_col]
            present = pd.Series(column.array[~isna_mask(column)].unique())
            not_open = present[~present.isin(pd.unique(open_now)).to_numpy()]
            not_scored = pd.DataFrame({schema.entity_col: not_open.array, "reason": "not open at as_of (no event "
                                       "before it, escalated, closed or dormant: the nightly rule)"})
        if policy is None:
            return out
        ids = out[schema.entity_col]
        areas = None if areas_of is None else areas_of.reindex(decimal_text(ids.to_numpy())).to_numpy()
        out, table, need = retier_scores(out, policy, model.tier_policy_, id_col=schema.entity_col, areas=areas,
                                         reasons=reasons)
        if need.any():  # newly red or yellow tonight: their reasons were not computed
            with warnings.catch_warnings():  # the first pass gave every warning about these events
                warnings.simplefilter("ignore", DataWarning)
                again = model._predict(events, out.loc[need, [schema.entity_col, "as_of"]].reset_index(drop=True),
                                       entities=entities, reasons="all", context_events=context_events,
                                       validated=True)  # the output's as_of: naive UTC, whatever the clock
            for col in ("reasons", "reason_features"):
                out[col] = out[col].astype(object)
                out.loc[need, col] = again[col].to_numpy()
        out.attrs["tiers"] = table.assign(by=by or "").to_dict("records")
        if cutoffs is None:
            out.attrs["not_scored"] = not_scored.to_dict("records")
        return out


def _area_lookup(entities, schema, by: str) -> pd.Series:
    """Entity id -> area value (``by``), from the entities table."""
    if entities is None or by not in getattr(entities, "columns", []):
        raise ConfigError(f"tiers by {by!r} need the entities table with a column {by!r}; pass entities=... "
                          "(or tiers={'by': None} for city-wide shares).")
    ids = pd.Series(decimal_text(np.asarray(entities[schema.entities_id])))  # as text: 275 is "275"
    values = pd.Series(np.asarray(entities[by], dtype=object), index=ids.to_numpy())
    return values[~ids.duplicated().to_numpy()]


_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def load(uri: str = "models:/dispute-risk@champion", *, tracking: str | None = None) -> Predictor:
    """Load a model version for scoring; resolves an alias once, at load.

    Parameters
    ----------
    uri : str
        ``models:/<name>@<alias>``, ``models:/<name>/<version>``, ``runs:/<run_id>/model``
        or a local folder holding a saved model.
    tracking : str, optional
        Tracking URI; default :func:`tracking_uri`.
    """
    local = Path(uri)
    if "://" not in uri and local.exists():
        folder = local / "riskmodel" if (local / "riskmodel").is_dir() else local
        data = folder / "data" / "riskmodel" if (folder / "data" / "riskmodel").is_dir() else folder
        return Predictor(load_model_dir(data), model_name=local.name, model_version="local", run_id="", uri=uri)
    import mlflow

    client = client_for(tracking)
    match = _MODELS_URI.match(uri)
    run_id, name, version = "", uri, ""
    if match:
        name = match.group("name")
        try:
            mv = (client.get_model_version_by_alias(name, match.group("alias")) if match.group("alias")
                  else client.get_model_version(name, match.group("version")))
        except Exception as exc:  # noqa: BLE001 - MLflow's not-found is a generic exception
            head = f"model {uri!r} not found in the registry at {client.tracking_uri}: {str(exc).rstrip('.')}"
            alias = match.group("alias")
            try:
                client.get_registered_model(name)
            except Exception as missing:  # noqa: BLE001 - MLflow's not-found is a generic exception
                if getattr(missing, "error_code", None) != "RESOURCE_DOES_NOT_EXIST":  # an outage, a locked store
                    raise ModelError(f"{head}. Is MLFLOW_TRACKING_URI the store the model was registered in?") from exc
                try:  # no model of that name at all (a typo, another store)
                    names = sorted(m.name for m in client.search_registered_models(max_results=50))
                except Exception:  # noqa: BLE001
                    names = []
                there = f"registered: {format_examples(names)}" if names else "it holds no registered model"
                head = f"there is no registered model {name!r} in the registry at {client.tracking_uri} ({there})"
                pick = f"pass --model models:/NAME@{CHAMPION} with one of them, or " if names else ""
                raise ModelError(f"{head}; is MLFLOW_TRACKING_URI the store the model was registered in?",
                                 cli=f"{head}; {pick}set MLFLOW_TRACKING_URI to the store the model was registered "
                                 "in.") from exc
            if alias == CHAMPION:
                raise ModelError(
                    f"{head}. No version is {CHAMPION} yet: promote one with promote({name!r}) (the gate, or "
                    f"force=True with a reason), or load models:/{name}@{CHALLENGER}.",
                    cli=f"{head}. No version is {CHAMPION} yet: promote one with `riskmodel promote --name {name}` "
                        f"(the gate, or --force --reason '...'), or use --model models:/{name}@{CHALLENGER}.",
                ) from exc
            raise ModelError(f"{head}. Is MLFLOW_TRACKING_URI the store the model was registered in?") from exc
        version, run_id = str(mv.version), mv.run_id or ""
        source = retry(client.get_model_version_download_uri, name, version)  # where its files are
    elif uri.startswith("runs:/"):
        run_id = uri.split("/")[1]
        source = uri
    else:
        raise ModelError(f"cannot load {uri!r}: use models:/name@alias, models:/name/version, runs:/id/model or a folder.")
    with tempfile.TemporaryDirectory(prefix="riskmodel-") as scratch:  # read into memory, then removed
        try:  # the store's URI goes to MLflow explicitly, and anything MLflow resolves itself is borrowed
            with borrowed_tracking(client.tracking_uri):
                path = Path(mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=scratch,
                    tracking_uri=client.tracking_uri, registry_uri=client.tracking_uri))
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"could not download model {uri!r}: {exc}") from exc
        candidates = [p.parent for p in path.rglob("riskmodel.json")]
        if not candidates:
            raise ModelError(f"{uri!r} is not a riskmodel model (no riskmodel.json in its artifacts).")
        model = load_model_dir(candidates[0])
    return Predictor(model, model_name=name, model_version=version, run_id=run_id, uri=uri)
