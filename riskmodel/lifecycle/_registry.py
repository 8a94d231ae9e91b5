"""MLflow lifecycle: tracked training, registered versions, the promotion gate, loading.

Local default: a sqlite store and an artifact folder under ``./riskmodel-mlflow/`` in the
working directory (``mlflow.db`` and ``artifacts/``). ``MLFLOW_TRACKING_URI`` points it
at a team server instead. Aliases: ``challenger`` is the newest trained version,
``champion`` the live one.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ConfigError, ModelError
from ..evaluation import make_cutoffs, make_labels
from ..features import prepare_events
from ..model import RiskModel, load_model_dir, save_model_dir
from ._config import ExperimentConfig, load_data
from ._store import (
    client_for,
    ensure_experiment,
    retry,
    tracking_uri,
)

__all__ = ["Predictor", "load", "promote", "rollback", "train", "tracking_uri"]

CHAMPION, CHALLENGER = "champion", "challenger"
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


def _events_fingerprint(events: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(events, index=False).to_numpy()
    return f"{np.bitwise_xor.reduce(hashed):016x}-{len(events)}"


def _synthetic_input_example(model: RiskModel, n_events: int = 6) -> pd.DataFrame:
    """A tiny events frame made up from the model's vocabulary: no real record ever."""
    schema = model._schema()
    kinds = [k for k in model.features_.kinds_ if k not in schema.outcome_kinds] or model.features_.kinds_
    t0 = pd.Timestamp("2024-01-01")
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
    """Model signature: id, time and kind are required; text, party and attributes optional."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    schema = model._schema()
    inferred = infer_signature(example, output.astype({"as_of": str, "tier": str}))
    required = {schema.entity_col, schema.time_col, schema.kind_col}
    inputs = Schema([ColSpec(c.type, c.name, required=c.name in required) for c in inferred.inputs.inputs])
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


def _score_champion(client, name: str, backtest, prepared, entities) -> dict | None:
    """Score the current champion on the challenger's latest backtest fold."""
    from ..evaluation import bootstrap_metrics

    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # noqa: BLE001 - no registered model or no champion yet
        return None
    champion = load(f"models:/{name}/{mv.version}", tracking=client.tracking_uri)
    preds = backtest.predictions
    schema = champion.model._schema()
    cut = preds[[schema.entity_col, "as_of"]]
    scored = champion.model.predict(prepared, cut, entities=entities, reasons="none")
    y = preds["label"].to_numpy(dtype=int)
    boot = bootstrap_metrics(y, scored["probability"].to_numpy(), groups=preds[schema.entity_col].to_numpy())
    from ..evaluation import tier_table

    return {
        "version": str(mv.version),
        "roc_auc": float(boot.loc["roc_auc", "value"]),
        "brier": float(boot.loc["brier", "value"]),
        "roc_auc_lower": float(boot.loc["roc_auc", "lower"]),
        "roc_auc_upper": float(boot.loc["roc_auc", "upper"]),
        "tiers_ordered": _tiers_ordered(tier_table(y, scored["tier"].astype(str).to_numpy())),
    }


def train(config: ExperimentConfig, *, tracking: str | None = None, register: bool = True) -> TrainResult:
    """Backtest, fit and log one experiment to MLflow; register it as ``challenger``.

    Parameters
    ----------
    config : ExperimentConfig
        See :func:`riskmodel.load_config`.
    tracking : str, optional
        Tracking URI; default :func:`tracking_uri`.
    register : bool, default=True
        Register the model as a new version with alias ``challenger``.
    """
    import mlflow

    from ..evaluation import backtest as run_backtest
    from ..evaluation import save_figure
    from ._card import model_card

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    schema = config.schema
    events, entities, _sim = load_data(config)
    prepared = prepare_events(events, schema)
    lab = config.labels
    cutoffs = make_cutoffs(prepared, schema, entities=entities, start=lab.start, end=lab.end, freq=lab.freq,
                           max_inactive=lab.max_inactive)
    labelled = make_labels(prepared, cutoffs, schema, horizon=lab.horizon)
    n_censored = int(labelled["censored"].sum())
    labelled = labelled[~labelled["censored"]].drop(columns="censored").reset_index(drop=True)
    timings["data"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    bt = config.backtest
    result = run_backtest(
        prepared, labelled, model=config.build_model(), entities=entities, n_folds=bt.n_folds,
        test_period=bt.test_period, horizon=lab.horizon, checklist=bt.checklist or None,
        n_bootstrap=bt.n_bootstrap,
    )
    timings["backtest"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    model = config.build_model().fit(prepared, labelled, entities=entities)
    timings["final_fit"] = time.perf_counter() - t2

    uri = tracking or tracking_uri()
    client = client_for(uri)
    champion = _score_champion(client, config.registered_model, result, prepared, entities) if register else None

    metrics = _last_fold_metrics(result)
    metrics["tiers_ordered"] = float(_tiers_ordered(result.tier_table))
    for tier_row in result.tier_table.itertuples():
        metrics[f"tier_{tier_row.tier}_share"] = float(tier_row.share)
        if pd.notna(tier_row.hit_rate):
            metrics[f"tier_{tier_row.tier}_hit_rate"] = float(tier_row.hit_rate)
    if champion:
        metrics.update({f"champion_{k}": float(v) for k, v in champion.items() if k != "version"})
    metrics.update(fit_summary_metrics(model.training_summary_))

    exp_name = f"riskmodel/{config.name}"
    ensure_experiment(client, uri, exp_name)
    mlflow.set_experiment(exp_name)
    t3 = time.perf_counter()
    t_min = pd.Timestamp(prepared.times_ns.min())
    t_max = pd.Timestamp(prepared.times_ns.max())
    with retry(mlflow.start_run, run_name=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}") as run:
        retry(mlflow.log_params, config.flat_params())
        retry(mlflow.set_tags, {
            "riskmodel.config_fingerprint": config.fingerprint(),
            "data.source": config.data.source,
            "data.fingerprint": _events_fingerprint(events),
            "data.events": str(len(events)),
            "data.disputes": str(len(prepared.entity_ids)),
            "data.start": str(t_min),
            "data.end": str(t_max),
            "data.cutoffs": str(len(labelled)),
            "data.cutoffs_censored_dropped": str(n_censored),
            "data.positives": str(int(labelled["label"].sum())),
            "backtest.last_fold": json.dumps(result.folds.iloc[-1][["test_start", "test_end"]].astype(str).to_dict()),
            "champion.compared_version": champion["version"] if champion else "none",
        })
        retry(mlflow.log_metrics, metrics)
        retry(mlflow.log_metrics, {f"time_{k}_s": v for k, v in timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            (tmp / "experiment.toml").write_text(config.source_text or json.dumps(config.to_dict(), default=str), encoding="utf-8")
            for name, fig in result.figures().items():
                save_figure(fig, tmp / "plots" / f"{name}.png")
            result.folds.to_csv(tmp / "backtest_folds.csv", index=False)
            result.metrics.to_csv(tmp / "backtest_metrics.csv")
            result.comparisons.to_csv(tmp / "backtest_comparisons.csv")
            result.tier_table.to_csv(tmp / "tier_table.csv", index=False)
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
            output = score_all(model, ex_events, "2024-02-01", entities=ex_entities)
            signature = _signature(model, example, output)
            from .._version import VERSION as __version__

            info = retry(
                mlflow.pyfunc.log_model,
                name="model",
                loader_module="riskmodel._pyfunc",
                data_path=str(model_dir),
                signature=signature,
                input_example=(example, {"as_of": "2024-02-01T00:00:00"}),
                pip_requirements=[f"riskmodel=={__version__}"],
                registered_model_name=config.registered_model if register else None,
            )
        run_id = run.info.run_id
    timings["mlflow"] = time.perf_counter() - t3
    version = ""
    if register:
        version = str(info.registered_model_version)
        retry(client.set_registered_model_alias, config.registered_model, CHALLENGER, version)
        for key, value in {
            "roc_auc": metrics.get("model_roc_auc"), "brier": metrics.get("model_brier"),
            "data_window": f"{t_min} .. {t_max}", "config": config.name,
        }.items():
            retry(client.set_model_version_tag, config.registered_model, version, f"riskmodel.{key}", str(value))
        retry(client.update_model_version, config.registered_model, version, description=card[:5000])
    return TrainResult(run_id=run_id, model_name=config.registered_model, version=version, model=model,
                       backtest=result, metrics=metrics, champion_comparison=champion, timings=timings)


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

    The gate compares the figures the challenger's training run measured on its latest
    backtest fold, where the current champion was scored on the same rows: the challenger
    passes when its ROC-AUC is at most ``auc_tolerance`` lower, its Brier at most
    ``brier_tolerance`` (relative) higher, and its tiers are ordered by hit rate. With no
    champion yet, it must beat every baseline on AUC and Brier instead. The decision and
    figures are recorded as version tags; ``force=True`` needs a ``reason``, also recorded.
    """
    client = client_for(tracking)
    challenger = _version_by_alias(client, name, CHALLENGER)
    if challenger is None:
        raise ModelError(f"registered model {name!r} has no {CHALLENGER!r} version; run `riskmodel train` first.")
    if force and not reason:
        raise ConfigError("--force needs --reason '...': a forced promotion must say why.")
    champion = _version_by_alias(client, name, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        return {"decision": "unchanged", "version": challenger.version, "checks": {}, "message": "challenger is already champion"}
    m = client.get_run(challenger.run_id).data.metrics
    tags = client.get_run(challenger.run_id).data.tags
    checks: dict[str, bool] = {"tiers_ordered": m.get("tiers_ordered", 0.0) == 1.0}
    figures = {k: v for k, v in m.items() if k.startswith(("model_", "champion_")) or k == "tiers_ordered"}
    if champion is None:
        # A first model must clearly beat the base rate and be no worse than the other
        # baselines beyond the same tolerances as a champion comparison.
        checks["auc_beats_base_rate"] = m.get("model_roc_auc", 0) > m.get("base_rate_roc_auc", 0.5) + auc_tolerance
        checks["brier_beats_base_rate"] = m.get("model_brier", np.inf) < m.get("base_rate_brier", np.inf)
        for base in ("logistic_counts", "checklist"):
            if f"{base}_roc_auc" in m:
                checks[f"auc_not_worse_than_{base}"] = m["model_roc_auc"] >= m[f"{base}_roc_auc"] - auc_tolerance
            if f"{base}_brier" in m:
                checks[f"brier_not_worse_than_{base}"] = m["model_brier"] <= m[f"{base}_brier"] * (1 + brier_tolerance)
    else:
        compared = tags.get("champion.compared_version")
        if compared != str(champion.version) or "champion_roc_auc" not in m:
            checks["same_fold_comparison"] = False
        else:
            checks["auc_not_worse"] = m["model_roc_auc"] >= m["champion_roc_auc"] - auc_tolerance
            checks["brier_not_worse"] = m["model_brier"] <= m["champion_brier"] * (1 + brier_tolerance)
    passed = all(checks.values())
    decision = "passed" if passed else ("forced" if force else "refused")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    record = {"decision": decision, "checks": checks, "figures": figures, "at": stamp,
              "previous_champion": champion.version if champion else None, "reason": reason}
    retry(client.set_model_version_tag, name, challenger.version, "riskmodel.gate", json.dumps(record, default=str))
    if decision in ("passed", "forced"):
        retry(client.set_registered_model_alias, name, CHAMPION, challenger.version)
        history = _history(client, name)
        history.append(str(challenger.version))
        retry(client.set_registered_model_tag, name, _HISTORY_TAG, json.dumps(history))
    record["version"] = challenger.version
    return record


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
                tiers="trained") -> pd.DataFrame:
        """Score disputes; same columns as :meth:`RiskModel.predict` plus model name and version.

        Give either ``as_of`` (every dispute in ``events`` is scored at that time) or a
        ``cutoffs`` frame (entity id, ``as_of``).

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
            nightly batch does this); probability and precision policies stay as trained. A
            mapping changes the policy for this call, e.g. ``{"by": "station",
            "capacity": {"S01": 10}}`` or ``{"red": 0.08}`` (see
            :func:`~riskmodel.model.scoring_policy`). The thresholds and capacities used are
            in ``result.attrs["tiers"]`` (one row per night and area).
        """
        from ..model import area_column, retier_scores, scoring_policy
        from ._pyfunc import score_all

        if (as_of is None) == (cutoffs is None):
            raise ConfigError("pass exactly one of as_of=... or cutoffs=...")
        model = self.model
        policy = scoring_policy(model.tier_policy_, tiers)
        schema = model._schema()
        by = area_column(policy, schema.group_cols)
        areas_of = _area_lookup(entities, schema, by) if by else None
        extra = {"model_name": self.model_name, "model_version": self.model_version}
        if cutoffs is not None:
            out = model._predict(events, cutoffs, entities=entities, reasons=reasons, extra_columns=extra)
        else:
            out = score_all(model, events, as_of, entities=entities, reasons=reasons, extra_columns=extra)
        if policy is None:
            return out
        ids = out[schema.entity_col]
        areas = None if areas_of is None else areas_of.reindex(ids.to_numpy()).to_numpy()
        out, table, need = retier_scores(out, policy, model.tier_policy_, id_col=schema.entity_col, areas=areas,
                                         reasons=reasons)
        if need.any():  # newly red or yellow tonight: their reasons were not computed
            again = model._predict(events, out.loc[need, [schema.entity_col, "as_of"]], entities=entities,
                                   reasons="all")
            for col in ("reasons", "reason_features"):
                out[col] = out[col].astype(object)
                out.loc[need, col] = again[col].to_numpy()
        out.attrs["tiers"] = table.assign(by=by or "")
        return out


def _area_lookup(entities, schema, by: str) -> pd.Series:
    """Entity id -> area value (``by``), from the entities table."""
    if entities is None or by not in getattr(entities, "columns", []):
        raise ConfigError(f"tiers by {by!r} need the entities table with a column {by!r}; pass entities=... "
                          "(or tiers={'by': None} for city-wide shares).")
    ids = pd.Series(np.asarray(entities[schema.entities_id]))
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
            raise ModelError(f"model {uri!r} not found in the registry at {client.tracking_uri}: {exc}") from exc
        version, run_id = str(mv.version), mv.run_id or ""
        source = f"models:/{name}/{version}"
    elif uri.startswith("runs:/"):
        run_id = uri.split("/")[1]
        source = uri
    else:
        raise ModelError(f"cannot load {uri!r}: use models:/name@alias, models:/name/version, runs:/id/model or a folder.")
    try:
        path = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tempfile.mkdtemp(prefix="riskmodel-")))
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"could not download model {uri!r}: {exc}") from exc
    candidates = [p.parent for p in path.rglob("riskmodel.json")]
    if not candidates:
        raise ModelError(f"{uri!r} is not a riskmodel model (no riskmodel.json in its artifacts).")
    return Predictor(load_model_dir(candidates[0]), model_name=name, model_version=version, run_id=run_id, uri=uri)
