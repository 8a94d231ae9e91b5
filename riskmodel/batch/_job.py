"""Nightly batch scoring: every open dispute in a (large) event log, chunk by chunk.

The batch job is a thin shell around :meth:`RiskModel.transform_features` and
:meth:`RiskModel.score_features`; it adds streaming, accounting, atomic output and resume.

Flow (``engine="local"``)
-------------------------
1. **partition** - a parquet input is read with :mod:`pyarrow.dataset`, batch by batch:
   a first scan of the id column counts the disputes and fixes ``n_chunks``, a second
   scan writes every row into ``parts/part-<i>.arrow`` (an LZ4 Arrow stream, read back once)
   where ``i`` is a stable hash of the dispute id modulo ``n_chunks`` (so all events of a
   dispute share a chunk). A CSV
   file or an in-memory DataFrame is held whole (documented limitation: CSV is read with
   :func:`pandas.read_csv`), then split the same way. The entities table is split by the
   same hash of its id into validated ``parts/entities-<i>.parquet`` (a parquet table is
   streamed; see :class:`Entities`), so no later stage holds the whole table.
2. **prepare** - per chunk: :func:`split_invalid_events` (row rejects with reasons), the
   clean events, and a small *summary* of each dispute (its first event, its first
   outcome event, each party's first appearance, with the dispute's group) used by the
   cross-dispute features.
3. **score** - per chunk: the disputes open at ``as_of`` (the :func:`open_disputes` rule;
   the others are written to ``not_scored`` with the reason), features on the chunk's
   own events and entities rows, with the party and context families reading the summary
   rows the chunk needs (:class:`ContextStore`: every chunk's summary rows indexed once
   per run without strings, filtered per chunk; ``FeatureBuilder.transform(context_events=...)``),
   LightGBM, calibration, tiers, reasons.
4. **finalize** - the night's tiers: a share policy ranks tonight's scored disputes
   (city-wide or per area, with per-area capacities; :func:`~riskmodel.model.night_tiers`),
   which only the whole night's scores allow, so it happens here, after every chunk; the
   cases it flags that their chunk did not explain (blue under the trained thresholds) get
   their reasons in a short second pass over just those disputes
   (:func:`~riskmodel.batch._core.explain_chunk`). Probability and precision policies stay
   as trained. Then scores, work lists, station summary, rejects, not-scored and a manifest
   (with the thresholds and capacities used) are written into a work directory that is
   renamed onto ``out`` only when complete.

With ``engine="spark"`` (:func:`_score_on_spark`) the engine runs the same per-chunk
tasks on the executors, with input, work folder and output at any URI Spark reaches (see
:mod:`riskmodel.batch.engines._spark`), and hands the chunks' results to the same tail
(:func:`_write_night`): the overwrite rule, the night's tiers (its second explain pass runs
on the executors too), the counts, the manifest and the crash points are the local
engine's.

Cross-dispute features
----------------------
Party histories and station escalation rates read other disputes' events. The summary
rows carry exactly what those families use (first appearance of a party in a dispute,
first event and first escalation of a dispute, the dispute's group), so chunked scoring
reproduces scoring the whole input at once. A chunk reads only its own rows, the rows of
the parties its disputes share with other disputes, and the first events and escalations
that fall in the context window (:meth:`ContextStore.for_chunk`). The feature code's
clock, whose resolution depends on the number of disputes and the time range it sees,
changes no value (times in ``as_of``'s own tick are read exactly), so a chunk's features
equal a whole-input run's.

Memory
------
Peak memory is set by one chunk (its events, features and context rows), not by the
input: what is held for the whole run is the :class:`ContextStore` (integers and
categoricals, about 100 MB per million disputes with their factorised codes). After each
chunk, Arrow's and glibc's cached free memory is handed back
(:func:`release_unused_memory`), so one chunk's transient buffers do not add to the next
one's peak.

Resume
------
Each stage writes one parquet per chunk, then a ``.done`` marker; a killed run (even
``kill -9``) restarts from the last marker and produces the same output as an
uninterrupted run. The work directory is ``out.parent / ".tmp-<name>-<as_of>"``; its
``state.json`` records the input and entities fingerprints, the model (its URI and a
fingerprint of its trees and spec, so a model retrained into the same folder counts as
another), the parameters and the library version; any mismatch discards it. Every file is
written under a temporary name and renamed; ``out`` appears or is replaced only by a
rename, only by a scored night, and only where it holds a night or nothing
(:func:`check_out`, before any work). The tests kill a real process at each stage (:mod:`riskmodel._faults`).
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import glob
import json
import math
import os
import platform
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .._errors import ConfigError, DataError, DataWarning, ModelError, format_examples
from .._faults import crash_point
from .._version import VERSION
from ..data import (
    MIN_PLAUSIBLE_TIME,
    EventSchema,
    default_now,
    describe_rejects,
    frame_fingerprint,
    parse_duration,
    reason_columns,
    refuse_unclear_date,
    times_aware,
    warn_outcome_twins,
)
from ..lifecycle import is_csv, recorded_uri, tracking_uri
from ..model import (
    area_column,
    check_thresholds,
    drift_report,
    drift_table,
    merge_counts,
    model_facts,
    model_fingerprint,
    retier_scores,
    scoring_policy,
    warn_if_drifting,
)
from ._core import CITY, STAGES, context_reader, usable_entities
from ._files import mark_done, read_parts, write_parquet
from ._inputs import Entities, Source, file_fingerprint
from ._tasks import explain_task
from .engines._local import run_local_chunks

__all__ = ["score_batch"]


def load_predictor(model, *, store: str | None = None):
    """A :class:`~riskmodel.Predictor` from a Predictor, a ``models:/`` / ``runs:/`` URI or a
    folder; ``store``: the tracking store to read a URI from when ``MLFLOW_TRACKING_URI`` is
    not set (a night's :attr:`~riskmodel.batch.NightlyOutput.model_store`)."""
    from ..lifecycle import Predictor, load

    if isinstance(model, Predictor):
        return model
    if not isinstance(model, str | os.PathLike):
        raise ModelError(f"model must be a Predictor or a model URI / folder, got {type(model).__name__}.")
    uri = str(model)
    if "://" not in uri and ":/" not in uri and not Path(uri).exists():
        raise ModelError(f"model {uri!r} not found: no such folder, and not a models:/ or runs:/ URI.")
    try:
        return load(uri, tracking=tracking_uri(store) if store else None)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken artifact is a model problem
        raise ModelError(f"could not load model {uri!r}: {type(exc).__name__}: {exc}") from exc


def _on_threads(predictor, threads: int):
    """``predictor`` with a copy of its model that predicts on ``threads`` LightGBM threads
    (see :meth:`~riskmodel.RiskModel.set_params`); the caller's model is left as it is."""
    from ..lifecycle import Predictor

    model = copy.copy(predictor.model)
    model.set_params(lgbm_params={**(predictor.model.lgbm_params or {}), "num_threads": threads})
    return Predictor(model, model_name=predictor.model_name, model_version=predictor.model_version,
                     run_id=predictor.run_id, uri=predictor.uri)


def _library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("riskmodel", "lightgbm", "pandas", "numpy", "pyarrow", "mlflow", "pyspark"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _read_scores(work: Path, n_chunks: int, ent: str) -> pd.DataFrame:
    """Every chunk's scores, with the chunk number in ``_chunk`` and whether it explained
    the case in ``_explained``."""
    frames = []
    for i in range(n_chunks):
        path = work / "scores" / f"scores-{i:05d}.parquet"
        if path.exists():
            frame = pd.read_parquet(path)
            if len(frame):
                frames.append(frame.assign(_chunk=i))
    if frames:
        return pd.concat(frames, ignore_index=True)
    return pd.DataFrame({ent: pd.Series(dtype=object), "as_of": pd.Series(dtype="datetime64[ns]"),
                         "probability": pd.Series(dtype=float), "tier": pd.Series(dtype=object),
                         "reasons": pd.Series(dtype=object), "reason_features": pd.Series(dtype=object),
                         "overrides": pd.Series(dtype=object), "_chunk": pd.Series(dtype=np.int64),
                         "_explained": pd.Series(dtype=bool)})


#: An engine's second explain pass: ``{chunk: ids}`` -> reasons of those disputes (entity
#: id, ``reasons``, ``reason_features``; see :func:`~riskmodel.batch._core.explain_chunk`).
Explain = Callable[[dict[int, np.ndarray]], pd.DataFrame]


def _explain_locally(work: Path, predictor, as_of: pd.Timestamp, context_for) -> Explain:
    """The local engine's explain pass: in this process, from the work folder's files and
    the scoring pass's context rows (``context_for``, see :func:`context_reader`)."""
    def explain(wanted: dict[int, np.ndarray]) -> pd.DataFrame:
        return pd.concat([explain_task(work, i, predictor, as_of, ids, context_for=context_for)
                          for i, ids in wanted.items()], ignore_index=True)

    return explain


def _night_tiers(scores: pd.DataFrame, *, schema: EventSchema, predictor, policy, by: str | None, reasons: str,
                 explain: Explain) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Tonight's tiers (see the module notes); returns the scores, the manifest's ``tiers``
    block and the per-area table (area, rule, capacities, thresholds). ``explain`` is the
    engine's pass that gives reasons to the cases tonight's ranking flags that their chunk
    did not explain."""
    trained = predictor.model.tier_policy_
    ent = schema.entity_col
    block = {"applied": "as_trained" if policy is None else "per_night",
             "trained_thresholds": {"method": trained.method, "red": trained.red_threshold_,
                                    "yellow": trained.yellow_threshold_}}
    if policy is None:
        scores = _complete_reasons(scores, reasons=reasons, explain=explain, ent=ent, block=block)
        tiers = scores["tier"].astype(str)
        table = pd.DataFrame({"area": ["(all)"], "n": [len(scores)], "rule": [f"{trained.method} (as trained)"],
                              "red": [int((tiers == "red").sum())], "yellow": [int((tiers == "yellow").sum())],
                              "red_threshold": [trained.red_threshold_],
                              "yellow_threshold": [trained.yellow_threshold_]})
        block["description"] = (trained.describe() if trained.method != "share" else
                                f"share thresholds as trained: red >= {trained.red_threshold_:.4g}, yellow >= "
                                f"{trained.yellow_threshold_:.4g}")
        block["areas"] = _records(table)
        return scores, block, table
    areas = scores[by].to_numpy() if by else None
    scores, table, _ = retier_scores(scores, policy, trained, id_col=ent, areas=areas, reasons="none")
    scores = _complete_reasons(scores, reasons=reasons, explain=explain, ent=ent, block=block)
    table = table.drop(columns="night")
    block.update({
        "description": policy.describe(by),
        "method": policy.method, "red": policy.red, "yellow": policy.yellow, "by": by,
        "capacity": policy.capacity,
        "overrides_lifted": int(table["overrides_lifted"].sum()),
        "areas": _records(table),
    })
    return scores, block, table


def _complete_reasons(scores: pd.DataFrame, *, reasons: str, explain: Explain, ent: str, block: dict) -> pd.DataFrame:
    """With ``reasons="flagged"``, the reasons of tonight's red and yellow cases only: those
    their chunk did not explain (``_explained``: its estimate of tonight's ranking, or the
    policy of a run it was resumed from) by ``explain``, counted in ``block``; those explained
    but blue tonight cleared."""
    if reasons != "flagged":
        return scores
    flagged, explained = scores["tier"].astype(str).to_numpy() != "blue", scores["_explained"].to_numpy(bool)
    need = flagged & ~explained
    for col in ("reasons", "reason_features"):
        scores[col] = scores[col].astype(object)
        scores.loc[~flagged & explained, col] = ""
    if need.any():
        chunks = scores.loc[need, "_chunk"].to_numpy()
        ids = scores.loc[need, ent].to_numpy()
        fill = explain({int(i): ids[chunks == i] for i in np.unique(chunks)}).set_index(ent)
        for col in ("reasons", "reason_features"):
            scores.loc[need, col] = fill[col].reindex(ids).to_numpy()
        block["reasons_added"] = int(need.sum())
    return scores


def _records(table: pd.DataFrame) -> list[dict]:
    """Rows as JSON-native dicts (NaN -> null)."""
    return json.loads(table.to_json(orient="records"))


_AREA_COLUMNS = {"rule": "tier_rule", "red_capacity": "red_capacity", "yellow_capacity": "yellow_capacity",
                 "red_threshold": "red_threshold", "yellow_threshold": "yellow_threshold"}


def _with_area_columns(frame: pd.DataFrame, table: pd.DataFrame, key: pd.Series | None) -> pd.DataFrame:
    """``frame`` with its area's tier rule, capacities and thresholds tonight."""
    cols = [c for c in _AREA_COLUMNS if c in table.columns]
    lookup = table.set_index("area")[cols].rename(columns=_AREA_COLUMNS)
    area = pd.Series("(all)", index=frame.index) if key is None else key.astype(object).where(key.notna(), "(unknown)").astype(str)
    extra = lookup.reindex(area.to_numpy())
    extra.index = frame.index
    return pd.concat([frame, extra], axis=1)


def _finalize(work: Path, final: Path, *, n_chunks: int, schema: EventSchema, predictor, policy=None,
              by: str | None = None, reasons: str = "flagged", explain: Explain) -> dict:
    ent = schema.entity_col
    final.mkdir()
    scores = _read_scores(work, n_chunks, ent)
    scores.attrs.clear()  # per-chunk monitoring counts belong in the manifest, not the scores
    scores["tier"] = pd.Categorical(scores["tier"].astype(str), categories=["red", "yellow", "blue"])
    scores["model_name"] = predictor.model_name
    scores["model_version"] = predictor.model_version
    scores["run_id"] = predictor.run_id
    group_cols = list(schema.entity_categorical_cols)
    attrs = read_parts([work / "parts" / f"entities-{i:05d}.parquet" for i in range(n_chunks)],
                        columns=[schema.entities_id] + group_cols)
    attrs = usable_entities(attrs, schema)[0]  # one row per id (an id's rows all hash to one chunk)
    if attrs is not None:
        attrs = attrs.rename(columns={schema.entities_id: ent})
        attrs = attrs.astype({c: object for c in group_cols})
        attrs[ent] = attrs[ent].astype(scores[ent].dtype) if len(scores) else attrs[ent]
        scores = scores.merge(attrs, on=ent, how="left")
    scores = scores.sort_values(ent, kind="stable").reset_index(drop=True)
    scores, tiers_block, table = _night_tiers(scores, schema=schema, predictor=predictor, policy=policy, by=by,
                                              reasons=reasons, explain=explain)
    scores = scores.drop(columns=["_chunk", "_explained"])
    write_parquet(scores, final / "scores.parquet")

    station = schema.group_cols[0] if schema.group_cols and schema.group_cols[0] in scores.columns else None
    flagged = scores[scores["tier"].isin(["red", "yellow"])].copy()
    flagged["_g"] = flagged[station].fillna("(unknown)") if station else "all"
    flagged = flagged.sort_values(["_g", "probability", ent], ascending=[True, False, True], kind="stable")
    flagged["rank"] = flagged.groupby("_g", sort=False).cumcount() + 1
    worklist = flagged.drop(columns="_g").reset_index(drop=True)
    worklist = _with_area_columns(worklist, table, worklist[by] if by else None)
    write_parquet(worklist, final / "worklists.parquet")

    tiers = scores.assign(_g=scores[station].fillna("(unknown)") if station else CITY)
    summary = pd.crosstab(tiers["_g"], tiers["tier"].astype(str)).reindex(columns=["red", "yellow", "blue"],
                                                                        fill_value=0)
    summary.index.name = station or "area"
    summary.columns.name = None
    summary = summary.reset_index()
    summary["total"] = summary[["red", "yellow", "blue"]].sum(axis=1)
    if by is not None and by == station:  # the summary's rows are the policy's areas
        summary = _with_area_columns(summary, table, summary[station])
    write_parquet(summary, final / "station_summary.parquet")

    rejects = read_parts([work / "prepared" / f"rejects-{i:05d}.parquet" for i in range(n_chunks)])
    if rejects is None:
        rejects = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.event_columns + ["reject_reason"]})
    rejects = rejects.astype(str).sort_values(list(rejects.columns), kind="stable").reset_index(drop=True)
    write_parquet(rejects, final / "rejects.parquet")

    not_scored = read_parts([work / "scores" / f"not_scored-{i:05d}.parquet" for i in range(n_chunks)])
    if not_scored is None:
        not_scored = pd.DataFrame({ent: pd.Series(dtype=object), "reason": pd.Series(dtype=object)})
    ids = not_scored[ent]
    if isinstance(ids.dtype, pd.CategoricalDtype):  # the ids' values, as scores has them: a chunk's
        # categories are the file's (local engine) or its own (Spark), so the concatenation's dtype was the engine's
        not_scored[ent] = ids.astype(ids.dtype.categories.dtype)
    not_scored = not_scored.sort_values(ent, kind="stable").reset_index(drop=True)
    write_parquet(not_scored, final / "not_scored.parquet")
    return {"scores": scores, "rejects": rejects, "not_scored": not_scored, "area": station, "tiers": tiers_block}


def score_batch(
    *,
    model,
    events,
    as_of,
    out,
    entities=None,
    reasons: str = "flagged",
    chunk_disputes: int = 200_000,
    engine: str = "local",
    master: str | None = None,
    open_rule_max_inactive: str | None = "365D",
    drift_thresholds: dict | None = None,
    monitor_mlflow: bool = False,
    overwrite: bool = False,
    tiers="night",
    threads: int | None = None,
) -> dict:
    """Score every dispute open at ``as_of`` and write scores, work lists and a manifest.

    Parameters
    ----------
    model : Predictor or str
        A loaded :class:`~riskmodel.Predictor`, a ``models:/`` / ``runs:/`` URI or a
        local folder written by ``save_model_dir``.
    events : DataFrame or path
        Parquet file, directory or hive-partitioned dataset (streamed), or a ``.csv`` file
        (read whole). Columns: the model's :class:`EventSchema`. With ``engine="spark"``
        also any URI Spark reads (``hdfs://``, ``s3a://``, ``abfss://``, ...; CSV files or
        folders of them are parsed by Spark on the executors), a table name in Spark's
        catalog, or a Spark DataFrame.
    as_of : datetime-like
        The scoring moment; features use events strictly before it.
    out : path
        Output directory (one per night); written atomically when the run completes. A
        folder holding a night (a riskmodel ``manifest.json``) is refused unless
        ``overwrite``; a file, a folder of other things, or a path that is, holds or lies
        in an input (events, entities, model folder) is always refused. An empty folder, or
        a refused night's, is written into as if new. With ``engine="spark"`` any URI
        Hadoop writes (a path without a scheme is on Hadoop's default file system).
    entities : DataFrame or path, optional
        One row per dispute (read whole). Needed by models fitted with entities; its
        ``closed_col`` closes disputes, and its categorical columns ride along in the scores.
        With ``engine="spark"`` the same kinds of input as ``events``.
    reasons : {"flagged", "all", "none"}, default="flagged"
    chunk_disputes : int, default=200_000
        Disputes per chunk; bounds peak memory.
    engine : {"local", "spark"}, default="local"
    master : str, optional
        Spark master (``engine="spark"``), default ``local[2]``; ignored when a Spark
        session is active (``spark-submit``, a notebook) or ``events`` is a Spark DataFrame.
    open_rule_max_inactive : str or None, default="365D"
        A dispute silent this long before ``as_of`` is dormant, not scored.
    drift_thresholds : dict, optional
        PSI levels ``{"watch": 0.1, "act": 0.25}`` (defaults) for the drift status.
    monitor_mlflow : bool, default=False
        Also log the drift figures as metrics of a run named by ``as_of`` in the MLflow
        experiment ``dispute-risk-monitoring`` (store: ``MLFLOW_TRACKING_URI`` or the
        local default); a logging failure warns and is recorded in the manifest.
    overwrite : bool, default=False
        Replace a previous night's ``out`` folder (atomically, when the run completes, and
        only by a night that is scored: a refused run leaves it untouched). Without it such
        a folder is an error, so a night is never replaced by mistake. It replaces nothing
        else (see ``out``).
    tiers : "night", "trained", mapping or TierPolicy, default="night"
        ``"night"``: the model's share policy ranks tonight's scored disputes (red = the
        top ``red`` share city-wide, or within each area of ``by``, or an area's
        ``capacity``; ties broken by id); probability and precision policies stay as
        trained. ``"trained"``: the trained thresholds, whatever the method. A mapping
        changes the model's policy for this night, e.g. ``{"by": "station", "capacity":
        {"S01": 10, "S02": {"red": 5, "yellow": 20}}}`` or ``{"red": 0.08}`` (see
        :func:`~riskmodel.model.scoring_policy`). Areas are entity columns (the
        entities table must have them). The manifest's ``tiers`` block, the work lists'
        and station summary's ``tier_rule``, ``red_capacity``, ``yellow_capacity``,
        ``red_threshold``, ``yellow_threshold`` columns record what was used.
    threads : int, optional
        The threads LightGBM predicts and explains (exact SHAP, the reasons) on, with the
        local engine; default: LightGBM's, every core the machine shows. Give it on a
        machine that runs other jobs beside the night (a thread per core: several busy
        threads on one core slow each other down). Reading, validating and the features
        run on one core whatever it says (Arrow reads parquet on its own pool). The
        outputs do not depend on it. With ``engine="spark"`` each task predicts on
        ``spark.task.cpus`` cores instead, and ``threads`` is refused.

    Returns
    -------
    dict
        The manifest (also written to ``out / "manifest.json"``); ``status`` is ``"scored"``
        (a refused night raises, see below, and its manifest says ``"refused"``); ``counts`` reconcile:
        ``disputes_read == disputes_scored + disputes_rejected + disputes_not_open`` and
        ``events_read == events_clean + events_rejected + events_duplicates_dropped`` (exact
        duplicate rows, identical in every column, are scored once and counted here).
        ``monitoring`` compares tonight's features and scores with the model's training
        reference (see :func:`riskmodel.model._drift.drift_report`): ``status`` (``ok``,
        ``watch``, ``act``, or ``no_reference`` for a model saved without one),
        ``score_psi``, per-feature PSI, tier shares, unseen-category / unseen-kind and
        missing-text rates; the per-feature table is ``drift.parquet``. A ``watch`` or
        ``act`` status also issues a :class:`~riskmodel.DataWarning`.

    Raises
    ------
    ConfigError
        ``out`` holds a night and ``overwrite`` is false; ``out`` is a file, a folder of
        other things, or is, holds or lies in an input. Nothing is written.
    DataError
        Unreadable input, missing columns, invalid entities. Nothing is written to ``out``.
        Or a night whose input could not be used (every row rejected, an empty export, no
        scored dispute with an entities row, no kind the model knows): then ``out`` holds
        the rejects and a manifest whose ``status`` is ``"refused"`` and ``refused_because``
        says why, and no work lists; :func:`read_nightly` refuses it. If ``out`` held a
        scored night (``overwrite``), it stays untouched and the refused output is left in
        the work folder the message names.
    ModelError
        The model cannot be found or loaded. Nothing is written to ``out``.
    """
    t_start = time.perf_counter()
    if reasons not in ("flagged", "all", "none"):
        raise ConfigError(f"reasons must be flagged, all or none, got {reasons!r}.")
    if engine not in ("local", "spark"):
        raise ConfigError(f"engine must be 'local' or 'spark', got {engine!r}.")
    if engine == "spark":
        from .engines._spark import require_pyspark

        require_pyspark()  # fail before any work: ConfigError naming riskmodel[spark]
    drift_thresholds = check_thresholds(drift_thresholds)
    if open_rule_max_inactive is not None:
        parse_duration(open_rule_max_inactive, "open_rule_max_inactive")  # a bare 365 would be nanoseconds
    if not isinstance(chunk_disputes, int | np.integer) or chunk_disputes < 1:
        raise ConfigError(f"chunk_disputes must be a positive integer, got {chunk_disputes!r}.")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1):
        raise ConfigError(f"threads must be a positive integer or None (every core), got {threads!r}.")
    if threads is not None and engine == "spark":
        why = "Spark tasks predict on the cores spark.task.cpus gives each (default 1)"
        raise ConfigError(f"threads applies to engine='local': {why}.",
                          cli=f"--threads applies to --engine local: {why}.")
    refuse_unclear_date(as_of, "as_of", error=ConfigError, cli="--as-of")
    try:
        as_of = pd.Timestamp(as_of)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"as_of {as_of!r} is not a date/time: {exc}") from exc
    as_of_aware = as_of.tzinfo is not None
    if as_of_aware:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    if not MIN_PLAUSIBLE_TIME <= as_of <= default_now():
        when = "before 1900" if as_of < MIN_PLAUSIBLE_TIME else "after tomorrow"
        why = "a night is scored at a time the events can have reached (a typo in the year?)."
        raise ConfigError(f"as_of {as_of} is {when}: {why}", cli=f"--as-of {as_of} is {when}: {why}")
    # the paths the night reads: out must be none of them, nor hold one (a model URI is no path)
    inputs = {"events": events, "entities": entities,
              "model": model if isinstance(model, str | os.PathLike) and Path(model).exists() else None}
    previous = None
    if engine == "local":  # the Spark engine asks out's file system, in its session
        out = Path(out)
        previous = check_out(out, *_listing(out), overwrite=overwrite, inputs=inputs,
                             qualify=lambda path: str(Path(path).resolve()))
    tag = as_of.strftime("%Y%m%dT%H%M%S")

    predictor = load_predictor(model)
    if threads is not None:
        predictor = _on_threads(predictor, int(threads))
    store = None
    if isinstance(model, str | os.PathLike) and predictor.uri.startswith(("models:/", "runs:/")):
        # the store load() read it from: explain and sweep find this version from any folder
        store = recorded_uri(tracking_uri())
    if as_of_aware and not predictor.model.features_.tz_aware_:
        what = f"as_of carries a UTC offset but model {predictor.uri} was trained on naive (local wall-clock) times"
        raise ConfigError(f"{what}; give as_of without one, e.g. '2025-04-01'.",
                          cli=f"{what}; give --as-of without one, e.g. --as-of 2025-04-01.")
    schema = predictor.model._schema()
    policy = scoring_policy(predictor.model.tier_policy_, tiers)
    by = area_column(policy, schema.group_cols)
    if by is not None and (entities is None or by not in schema.entity_categorical_cols):
        where = f"(one of the schema's entity_categorical_cols {list(schema.entity_categorical_cols)})"
        raise ConfigError(
            f"tiers by {by!r} need the area on every dispute: pass entities=... with the column {by!r} {where}, "
            "or tiers={'by': None} for city-wide shares.",
            cli=f"tiers by {by!r} need the area on every dispute: give --entities PATH with the column {by!r} "
                f"{where}, or --tiers-by \"\" for city-wide shares.")
    night = _Night(predictor=predictor, as_of=as_of, engine=engine, reasons=reasons,
                   chunk_disputes=int(chunk_disputes), max_inactive=open_rule_max_inactive, policy=policy, by=by,
                   drift_thresholds=drift_thresholds, monitor_mlflow=monitor_mlflow, t_start=t_start, store=store,
                   threads=None if threads is None else int(threads))
    if engine == "spark":
        manifest, kept_in = _score_on_spark(night, events=events, entities=entities, out=out, tag=tag,
                                            master=master, overwrite=overwrite, inputs=inputs)
    else:
        try:
            with _sole_writer(out):
                manifest, kept_in = _score_locally(night, events=events, entities=entities, out=out, tag=tag,
                                                   previous=previous)
        except OSError as exc:  # the output's folder: not writable, read-only, full
            if exc.errno not in _CANNOT_WRITE or not str(exc.filename or out).startswith(str(out.parent)):
                raise
            what = f"cannot write {exc.filename or out}: {exc.strerror}"
            raise ConfigError(f"{what}; give out= a folder this user can write, with room for the night.",
                              cli=f"{what}; give --out a folder this user can write, with room for the night.") from exc
    _check_night(manifest, out, kept_in, entities_given=entities is not None)
    warn_if_drifting(manifest["monitoring"])
    return manifest


@dataclass(frozen=True)
class _Night:
    """One run's model and settings, as both engines and the shared tail use them."""

    predictor: object
    as_of: pd.Timestamp
    engine: str
    reasons: str
    chunk_disputes: int
    max_inactive: str | None
    policy: object  # the night's TierPolicy, or None: the trained thresholds
    by: str | None  # the policy's area column
    drift_thresholds: dict
    monitor_mlflow: bool
    t_start: float
    store: str | None = None  # the tracking store of a model loaded by URI (None: a folder or a Predictor given)
    threads: int | None = None  # LightGBM's threads (None: its default), not in the state: no output depends on it

    @property
    def schema(self) -> EventSchema:
        return self.predictor.model._schema()

    @property
    def tiers(self) -> tuple | None:
        """What a chunk needs of the night's ranking (see :func:`~riskmodel.batch._core.score_chunk`)."""
        return None if self.policy is None else (self.policy, self.by)

    def state(self) -> dict:
        """What a run's work folder is valid for besides its inputs: resume only with these."""
        p = self.predictor
        return {
            # the fingerprint: a model retrained into the same folder (same URI) is another model
            "model": [p.uri, p.model_name, p.model_version, p.run_id, model_fingerprint(p.model)],
            "as_of": str(self.as_of), "reasons": self.reasons, "chunk_disputes": self.chunk_disputes,
            "max_inactive": self.max_inactive, "engine": self.engine,
            "riskmodel": VERSION,  # another version's chunk files may differ (or lack counts)
            "chunk_format": 2,  # 2: scores say which cases their chunk explained (_explained)
        }


#: what a file system says when the output cannot be written (permission, read-only, full)
_CANNOT_WRITE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _refuse_existing(out, what: str) -> None:
    """The error for an existing output without ``overwrite`` (both engines, before any work)."""
    raise ConfigError(
        f"the output {out} already exists ({what}); a night's folder is never replaced by mistake. Pass "
        "overwrite=True to replace it, or another out= (one folder per night).",
        cli=f"the output {out} already exists ({what}); a night's folder is never replaced by mistake. Add "
            "--overwrite to replace it, or give another --out (one folder per night).")


def _listing(out: Path) -> tuple[list[str] | str | None, str | None]:
    """What the local file system holds at ``out``, as :func:`check_out` reads it."""
    if not out.exists():
        return None, None
    if not out.is_dir():
        return "a file", None
    try:
        manifest = (out / "manifest.json").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        manifest = None
    return sorted(p.name for p in out.iterdir()), manifest


_FLAGS = {"events": "--events", "entities": "--entities", "model": "--model"}


def check_out(out, listing: list[str] | str | None, manifest: str | None, *, overwrite: bool, inputs: dict,
              qualify: Callable[[str], str | None]) -> str | None:
    """Refuse, before any work, an ``out`` the night may not be written to (both engines).

    Parameters
    ----------
    out : path or str
        The output, as the user gave it.
    listing : list of str, "a file" or None
        The names in the folder ``out``, ``"a file"``, or ``None`` when nothing is there.
    manifest : str or None
        The text of ``out / "manifest.json"``, if it could be read.
    overwrite : bool
        Whether the user allowed replacing a previous night.
    inputs : dict
        ``{"events": ..., "entities": ..., "model": ...}`` as given; the paths among them
        are compared with ``out``.
    qualify : callable
        A path or URI -> its full form on ``out``'s file system (``None``: not on it).

    Returns
    -------
    str or None
        ``"scored"`` or ``"refused"``: ``out`` holds a night (with a riskmodel
        ``manifest.json``) of that status; ``None``: ``out`` is absent or an empty folder.

    Raises
    ------
    ConfigError
        ``out`` is, holds or lies in an input; ``out`` is a file or a folder of other
        things (``overwrite`` replaces only a night's folder or an empty one); ``out``
        holds a scored night and ``overwrite`` is false.
    """
    here = qualify(str(out))
    for role, value in inputs.items():
        path = qualify(str(value)) if isinstance(value, str | os.PathLike) and value else None
        if here and path and (path == here or path.startswith(here.rstrip("/") + "/")
                              or here.startswith(path.rstrip("/") + "/")):
            head = f"is (or holds, or lies in) the {role} input {value}"
            risk = "replace it" if overwrite else "be written there"
            raise ConfigError(f"out {out} {head}: the night would {risk}. Give out= a folder of its own, one per "
                              "night.",
                              cli=f"--out {out} {head.replace(role + ' input', _FLAGS[role])}: the night would "
                                  f"{risk}. Give --out a folder of its own, one per night.")
    if isinstance(listing, list):  # a folder of hidden files only (.DS_Store) is empty, on either engine
        listing = [name for name in listing if not name.startswith(".")]
    if not listing:  # nothing there, or an empty folder
        return None
    night = None
    if listing != "a file" and manifest is not None:
        with contextlib.suppress(ValueError):
            night = json.loads(manifest)
    if not isinstance(night, dict) or "riskmodel_batch" not in night:
        what = "a file" if listing == "a file" else f"a folder of other things ({format_examples(listing)})"
        why = "never a file or a folder of other things, which could not be restored."
        raise ConfigError(f"out {out} is {what}, not a night's folder: overwrite=True replaces only a previous "
                          f"night's folder (one with a riskmodel manifest.json) or an empty folder, {why} Give "
                          "out= a new folder (one per night).",
                          cli=f"--out {out} is {what}, not a night's folder: --overwrite replaces only a previous "
                              f"night's folder (one with a riskmodel manifest.json) or an empty folder, {why} "
                              "Give --out a new folder (one per night).")
    status = "refused" if night.get("status") == "refused" else "scored"
    if status == "scored" and not overwrite:  # a refused night's folder holds no night: scored into as it is
        _refuse_existing(out, "a night's folder")
    return status


@contextlib.contextmanager
def _sole_writer(out: Path):
    """Hold ``out``'s lock for the block: a hidden file beside it, locked (the system
    releases it when the process ends, even killed) and removed at the end. Two runs
    writing one output folder would discard each other's work folder: a second run gets a
    :class:`ConfigError` at once."""
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = out.parent / f".lock-{out.name}"
    while True:
        handle = open(lock, "a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            what = f"another scoring run is writing {out} (it holds {lock}); wait for it to finish, or "
            raise ConfigError(what + "pass another out=.", cli=what + "give another --out.") from None
        try:  # the file a run that just finished removed is no lock: take the new one
            if os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before the lock goes: a waiting run then sees a new file
        handle.close()


def _require_clock(night: _Night, events_aware: bool | None) -> None:
    """The events' times in the training data's timezone convention: a model trained on naive
    (local wall-clock) times cannot read timezone-aware ones, or the reverse, since the offset
    between the two clocks is unknown (as-of comparisons and night-time counts would shift)."""
    trained = bool(night.predictor.model.features_.tz_aware_)
    if events_aware is None or events_aware == trained:
        return
    words = {True: "timezone-aware", False: "naive (local wall-clock)"}
    raise DataError(f"the events' times are {words[events_aware]} but model {night.predictor.uri} was trained on "
                    f"{words[trained]} times: the offset between the two clocks is unknown. Export the times as the "
                    "training data had them (a parquet timestamp with or without a zone, strings with or without "
                    "+08:00), or retrain on this export.")


def _require_entities(night: _Night, given: bool) -> None:
    """A model fitted with entities needs them tonight, and one fitted without them (and no
    closing time, no tiers by area) has no use for them (both engines, before any work)."""
    predictor = night.predictor
    if given and not predictor.model.features_.has_entities_ and not night.schema.closed_col and night.by is None:
        what = f"model {predictor.uri} was trained without an entities table and reads nothing from one"
        raise ConfigError(f"{what}; drop entities=.", cli=f"{what}; drop --entities.")
    if predictor.model.features_.has_entities_ and not given:
        what = (f"model {predictor.uri} was trained with an entities table (one row per dispute: "
                f"{night.schema.entity_feature_columns})")
        raise DataError(f"{what}; pass it to score_batch(entities=...).",
                        cli=f"{what}; pass it with --entities PATH (parquet or CSV).")


def _score_locally(night: _Night, *, events, entities, out: Path, tag: str,
                   previous: str | None) -> tuple[dict, Path | None]:
    """:func:`score_batch` with ``engine="local"``: partition, the local engine's chunks,
    the shared tail, and ``out`` replaced by a rename (not when :func:`_keeps_previous`);
    returns the manifest and, when the output is not at ``out``, its folder."""
    predictor, schema, as_of = night.predictor, night.schema, night.as_of
    work = out.parent / f".tmp-{out.name}-{tag}"
    t_read = time.perf_counter()
    source = Source(events, schema)
    _require_clock(night, source.times_aware())
    _require_entities(night, entities is not None)
    ents = None if entities is None else Entities(entities, schema)
    timings = dict.fromkeys(STAGES, 0.0)
    timings["read"] += time.perf_counter() - t_read

    state = {
        "input": source.fingerprint,
        "entities": None if entities is None else (
            frame_fingerprint(entities) if isinstance(entities, pd.DataFrame) else file_fingerprint(Path(entities))),
        **night.state(),
    }
    now = default_now()
    if work.exists():
        try:
            old = json.loads((work / "state.json").read_text(encoding="utf-8"))
            now = pd.Timestamp(old.pop("now"))
        except (OSError, ValueError, KeyError):
            old = None
        if old != state:
            shutil.rmtree(work)
            now = default_now()
    resumed = work.exists()
    state["now"] = str(now)
    if not resumed:
        out.parent.mkdir(parents=True, exist_ok=True)
        for sub in ("parts", "prepared", "scores"):
            (work / sub).mkdir(parents=True)
        (work / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")

    # -- partition ---------------------------------------------------------------------
    t0 = time.perf_counter()
    part_marker = work / "parts" / "partition.done"
    if part_marker.exists():
        counts = json.loads(part_marker.read_text(encoding="utf-8"))
    else:
        try:
            n_rows, n_ids = source.count_disputes()
            n_chunks = max(1, math.ceil(n_ids / night.chunk_disputes))
            if source.dataset is not None:
                source.write_parts(work / "parts", n_chunks)
            if ents is not None:  # a chunk reads only its disputes' entities
                ents.write_parts(work / "parts", n_chunks)
        except DataError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        counts = {"rows": n_rows, "disputes": n_ids, "n_chunks": n_chunks,
                  "entities_unparseable_times": {} if ents is None else ents.unparseable}
        crash_point("batch.partition")
        mark_done(part_marker, counts)
    n_chunks = counts["n_chunks"]
    timings["read"] += time.perf_counter() - t0

    context_for = context_reader(work / "prepared", n_chunks, predictor.model, as_of)
    run_local_chunks(work=work, source=source, n_chunks=n_chunks, predictor=predictor, as_of=as_of,
                     reasons=night.reasons, max_inactive=night.max_inactive, tiers=night.tiers, timings=timings,
                     now=now, context_for=context_for)
    manifest, final = _write_night(
        night, work, n_chunks=n_chunks, counts=counts, now=now, resumed=resumed, timings=timings,
        inputs={"events": source.description, "fingerprint": source.fingerprint, "entities": state["entities"]},
        explain=_explain_locally(work, predictor, as_of, context_for))
    if _keeps_previous(manifest, previous):
        return manifest, final
    _swap_in(final, out)
    crash_point("batch.cleanup")
    shutil.rmtree(work, ignore_errors=True)
    return manifest, None


def _keeps_previous(manifest: dict, previous: str | None) -> bool:
    """Whether a run leaves ``out`` as it was (both engines): a refused night does not replace
    a scored one; its output stays in the work folder (the next run of the night into
    ``out`` clears it)."""
    return manifest["status"] == "refused" and previous == "scored"


def _score_on_spark(night: _Night, *, events, entities, out, tag: str, master: str | None, overwrite: bool,
                    inputs: dict) -> tuple[dict, str | None]:
    """:func:`score_batch` with ``engine="spark"``: the engine stages every chunk's results
    into a local folder laid out as the local engine's work folder; the tail (tiers,
    explain pass on the executors, manifest) is the local engine's; the engine publishes
    the output at ``out`` (any URI) by the same renames and crash points (not when
    :func:`_keeps_previous`: then it stays in the work folder). Returns the manifest and
    that folder's URI when the output is not at ``out``."""
    from .engines._spark import spark_run

    if isinstance(events, pd.DataFrame) and night.schema.time_col in events:
        _require_clock(night, times_aware(events[night.schema.time_col]))
    elif isinstance(events, str | Path) and Path(events).exists() and not is_csv(events):  # parquet: its schema
        _require_clock(night, Source(events, night.schema).times_aware())
    _require_entities(night, entities is not None)
    timings = dict.fromkeys(STAGES, 0.0)
    with spark_run(out=out, tag=tag, master=master, events=events, timings=timings) as run:
        previous = check_out(out, *run.existing_output(), overwrite=overwrite, inputs=inputs, qualify=run.qualify)
        staged = run.stage(events=events, entities=entities, predictor=night.predictor, as_of=night.as_of,
                           reasons=night.reasons, chunk_disputes=night.chunk_disputes,
                           max_inactive=night.max_inactive, tiers=night.tiers, params=night.state(), now=default_now())
        manifest, final = _write_night(
            night, staged.work, n_chunks=staged.n_chunks, counts=staged.counts, now=staged.now,
            resumed=staged.resumed, timings=timings,
            inputs={"events": staged.description, "fingerprint": staged.fingerprint, "entities": staged.entities},
            explain=run.explain)
        if _keeps_previous(manifest, previous):
            return manifest, run.set_aside(final)
        run.publish(final)
    return manifest, None


def _write_night(night: _Night, work: Path, *, n_chunks: int, counts: dict, now, resumed: bool, timings: dict,
                 inputs: dict, explain: Explain) -> tuple[dict, Path | None]:
    """Both engines' tail: finalize the chunks' results in ``work`` (the night's tiers, with
    the engine's ``explain`` pass) into ``work / "final"`` with its manifest, written last;
    returns the manifest and that folder."""
    predictor, schema = night.predictor, night.schema
    t_w = time.perf_counter()
    final = work / "final"
    if final.exists():
        shutil.rmtree(final)
    result = _finalize(work, final, n_chunks=n_chunks, schema=schema, predictor=predictor, policy=night.policy,
                       by=night.by, reasons=night.reasons, explain=explain)
    chunk_info = [json.loads((work / "scores" / f"chunk-{i:05d}.done").read_text(encoding="utf-8"))
                  for i in range(n_chunks)]
    stage_times = [json.loads((work / "prepared" / f"chunk-{i:05d}.done").read_text(encoding="utf-8"))
                   for i in range(n_chunks)]
    for info in chunk_info + stage_times:
        for k, v in info.get("timings", {}).items():
            timings[k] = timings.get(k, 0.0) + v
    t_m = time.perf_counter()
    monitoring, drift = _monitoring(predictor, chunk_info, night.drift_thresholds)
    write_parquet(drift, final / "drift.parquet")
    if night.monitor_mlflow:
        monitoring["mlflow_run_id"] = _log_monitoring(monitoring, night.as_of, predictor)
    timings["monitor"] = timings.get("monitor", 0.0) + time.perf_counter() - t_m
    rej_disputes = sum(info["disputes_rejected"] for info in stage_times)
    rej_rows = len(result["rejects"])
    clean_rows = sum(info["clean_rows"] for info in stage_times)
    dup_rows = sum(info["duplicates_dropped"] for info in stage_times)
    n_scored = len(result["scores"])
    n_not_open = len(result["not_scored"])
    n_read = counts["disputes"]
    # entities times that did not parse, per column: counted where the rows were validated
    # (the partition, and on Spark each chunk's task)
    unparseable = dict(counts.get("entities_unparseable_times") or {})
    for info in stage_times:
        for col, lost in (info.get("entities_unparseable_times") or {}).items():
            unparseable[col] = unparseable.get(col, 0) + lost
    tiers = result["scores"]["tier"].astype(str).value_counts()
    manifest = {
        "riskmodel_batch": 1,
        "as_of": str(night.as_of),
        "engine": night.engine,
        "input": inputs,
        "model": {"name": predictor.model_name, "version": predictor.model_version, "run_id": predictor.run_id,
                  "uri": predictor.uri, "tracking_uri": night.store,
                  "fingerprint": model_fingerprint(predictor.model)},  # which model, whatever its name
        # the user's column names, for every command that reads this folder back
        "schema": schema.to_dict(),
        "area": result["area"],
        "parameters": {"latest_plausible_event_time": str(now), "reasons": night.reasons,
                       "chunk_disputes": night.chunk_disputes, "n_chunks": n_chunks,
                       "open_rule_max_inactive": night.max_inactive, "threads": night.threads},
        "counts": {
            "events_read": counts["rows"],
            "events_used": counts["rows"] - rej_rows - dup_rows,
            "events_rejected": rej_rows,
            "events_duplicates_dropped": dup_rows,
            "events_clean": clean_rows,
            "disputes_read": n_read,
            "disputes_scored": n_scored,
            "disputes_rejected": rej_disputes,
            "disputes_not_open": n_not_open,
            "disputes_without_entity_row": sum((info.get("monitoring") or {}).get("no_entity_row", 0)
                                               for info in chunk_info),
            # open disputes whose entities row closes them before their first event (a placeholder)
            "entities_closed_before_first_event": sum((info.get("monitoring") or {}).get("closed_before_first", 0)
                                                      for info in chunk_info),
            # disputes of the entities table with no event row at all (a dispute with no history yet)
            "entities_without_events": sum(info.get("entities_without_events", 0) for info in stage_times),
            # entities times that did not parse, per column: missing, so a closing time lost reads open
            "entities_unparseable_times": unparseable,
            # kinds differing from an outcome kind only by letter case: not escalations (warned of)
            "outcome_kind_twins": sorted({k for info in stage_times for k in info.get("outcome_kind_twins", [])}),
            # entities rows set aside: without an id, exact repeats, ids on several different rows
            # (those disputes' events are rejects, counted in disputes_rejected)
            **{key: sum(info.get(key, 0) for info in stage_times) for key in
               ("entities_without_id", "entities_duplicates_dropped", "entities_conflicting_ids")},
            "reconciles": (n_read == n_scored + rej_disputes + n_not_open
                           and counts["rows"] == clean_rows + rej_rows + dup_rows),
            "not_open_by_reason": {str(k): int(v) for k, v in
                                   result["not_scored"]["reason"].value_counts().sort_index().items()},
            "tiers": {t: int(tiers.get(t, 0)) for t in ("red", "yellow", "blue")},
        },
        "tiers": result["tiers"],
        "monitoring": monitoring,
        "files": sorted(p.name for p in final.iterdir()) + ["manifest.json"],
        "libraries": _library_versions(),
        "resumed": resumed,
    }
    manifest["model"].update(model_facts(predictor.model))  # what tiers and p mean, for the report
    if not manifest["counts"]["reconciles"]:  # pragma: no cover - an accounting bug, never data
        raise RuntimeError(f"batch accounting does not reconcile: {manifest['counts']}")
    refusal = _refusal(manifest, entities_given=inputs["entities"] is not None, rejects=final / "rejects.parquet")
    manifest["status"] = "scored" if refusal is None else "refused"
    if refusal is not None:  # nothing a station could act on: the work lists go, the rest stays to say why
        manifest["refused_because"] = refusal
        (final / "worklists.parquet").unlink()
        manifest["files"].remove("worklists.parquet")
    timings["write"] += time.perf_counter() - t_w
    manifest["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    manifest["timings_s"]["total"] = round(time.perf_counter() - night.t_start, 3)
    crash_point("batch.finalize")
    (final / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str),
                                         encoding="utf-8")
    return manifest, final


_FEW_DISPUTES = 20  # below, a night whose every dispute lacks an entities row may be new disputes, not wrong ids


def _refusal(manifest: dict, *, entities_given: bool, rejects: Path | None = None) -> str | None:
    """Why a night's input could not be used, or ``None``: no usable event row (with the
    reasons of the ``rejects`` file), no scored dispute with an entities row (of at least
    :data:`_FEW_DISPUTES`), no event of a kind the model was trained on."""
    c, unseen = manifest["counts"], (manifest.get("monitoring") or {}).get("unseen_rate") or {}
    if c["events_read"] and not c["events_used"]:
        why = ""
        if rejects and rejects.exists():  # the reasons, and the columns they name: not every narrative
            reasons = pd.read_parquet(rejects, columns=["reject_reason"])["reject_reason"]
            named = reason_columns(reasons)
            columns = [c for c in pq.read_schema(rejects).names if c in named]
            why = "; ".join(describe_rejects(pd.read_parquet(rejects, columns=["reject_reason", *columns]), places=False))
        return (f"events: none of the {c['events_read']:,} rows could be used, every one was rejected"
                + (f" ({why})" if why else "") + "; check the time and id columns of the export.")
    if not c["events_read"]:
        return "events: the input has no row: an empty export?"
    missing = c["disputes_without_entity_row"]
    if entities_given and c["disputes_scored"] >= _FEW_DISPUTES and missing == c["disputes_scored"]:
        return (f"none of the {missing:,} disputes scored has a row in the entities table: their attributes and "
                "closing times are unknown; check that both files write the ids alike (padding, leading zeros, "
                "another format).")
    # 'other' holds the kinds beyond the model's columns: rare training kinds too, at the reference's rate
    usual = ((manifest.get("monitoring") or {}).get("reference_unseen_rate") or {}).get("kinds") or 0.0
    if c["disputes_scored"] >= _FEW_DISPUTES and (unseen.get("kinds") or 0.0) == 1.0 and usual < 0.5:
        return ("none of the events' kinds has a column in the model: renamed kinds, or another export's codes? "
                "Map them to the training kinds, or retrain.")
    return None


def _check_night(manifest: dict, out, kept_in=None, *, entities_given: bool) -> None:
    """Raise the refusal of a night whose input could not be used (:func:`_refusal`; its
    output folder stays, without work lists, its manifest's ``status`` ``"refused"``, for
    the rejects and the manifest: ``out``, or ``kept_in`` when ``out`` keeps a previous
    night); warn where only part of it is so."""
    c, unseen = manifest["counts"], (manifest.get("monitoring") or {}).get("unseen_rate") or {}
    if manifest.get("status") == "refused":
        kept = "" if kept_in is None else f"; {out} still holds the previous night, untouched"
        raise DataError(f"{manifest['refused_because']} The night is refused: no work lists were written{kept} "
                        f"(the rejects and the manifest are in {kept_in or out}).")
    if c["events_used"] and not c["disputes_scored"]:
        ids = (f"; {c['entities_without_events']:,} rows of the entities table have no event: do both files write "
               "the ids alike (padding, leading zeros, numbers in scientific notation)?"
               if entities_given and c["entities_without_events"] >= _FEW_DISPUTES else "")
        warnings.warn(f"no dispute is open at as_of {manifest['as_of']} (counts.not_open_by_reason: "
                      f"{c['not_open_by_reason']}): is as_of the night you meant{ids}", DataWarning, stacklevel=3)
    for col, lost in (c.get("entities_unparseable_times") or {}).items():
        warnings.warn(f"entities column {col!r}: {lost:,} time(s) did not parse and are missing"
                      + (" (those disputes count as not closed)" if col == manifest["schema"].get("closed_col") else "")
                      + " (manifest: counts.entities_unparseable_times).", DataWarning, stacklevel=3)
    warn_outcome_twins(c.get("outcome_kind_twins") or [], manifest["schema"].get("outcome_kinds") or [], stacklevel=4)
    set_aside = {"entities_without_id": "row(s) without an id, not used",
                 "entities_duplicates_dropped": "exact repeat(s) of another row, read once",
                 "entities_conflicting_ids": "dispute(s) with several different rows: their attributes are unknown, "
                                             "so their events are rejects",
                 "entities_closed_before_first_event": "open dispute(s) closed before their first event (a placeholder "
                                                       "for 'still open', such as 1900-01-01?): taken as not closed"}
    for key, what in set_aside.items():
        if c.get(key):
            warnings.warn(f"entities: {c[key]:,} {what} (manifest: counts.{key}).", DataWarning, stacklevel=3)
    missing = c["disputes_without_entity_row"]
    if entities_given and missing:
        warnings.warn(f"{missing:,} of {c['disputes_scored']:,} disputes scored have no row in the entities table: "
                      "scored without their attributes and closing time (in the manifest: "
                      "counts.disputes_without_entity_row).", DataWarning, stacklevel=3)
    tonight = unseen.get("kinds") or 0.0
    usual = ((manifest.get("monitoring") or {}).get("reference_unseen_rate") or {}).get("kinds") or 0.0
    if tonight > max(2 * usual, usual + 0.02):
        warnings.warn(f"{tonight:.1%} of the night's events are of kinds without a column in the model (counted as "
                      f"'other'), against {usual:.1%} in training: renamed or new kinds? (manifest: "
                      "monitoring.unseen_rate)", DataWarning, stacklevel=3)


def _monitoring(predictor, chunk_info: list[dict], thresholds) -> tuple[dict, pd.DataFrame]:
    """Merge the chunks' drift counts into the manifest's ``monitoring`` block and the
    per-feature table written as ``drift.parquet``."""
    reference = (getattr(predictor.model, "reference_", None) or {}).get("monitoring")
    counts = merge_counts(*[info.get("monitoring") for info in chunk_info])
    report = drift_report(reference, counts, thresholds)
    missing = sum(1 for info in chunk_info if info.get("scored") and info.get("monitoring") is None)
    if missing:  # an engine that dropped the counts: say so rather than report on part of the night
        report["chunks_without_counts"] = missing
    return report, drift_table(report, reference, counts)


def _log_monitoring(report: dict, as_of: pd.Timestamp, predictor) -> str | None:
    """Log the drift figures to MLflow; a failure warns and is recorded, the scores stand."""
    from ..lifecycle import log_monitoring_run

    try:
        return log_monitoring_run(report, as_of=as_of, model_name=predictor.model_name,
                                  model_version=predictor.model_version)
    except Exception as exc:  # noqa: BLE001 - tracking must not lose a night's scores
        report["mlflow_error"] = f"{type(exc).__name__}: {exc}"
        warnings.warn(f"could not log drift monitoring to MLflow: {report['mlflow_error']}", RuntimeWarning,
                      stacklevel=3)
        return None


def _swap_in(final: Path, out: Path) -> None:
    """Rename ``final`` onto ``out``; an existing ``out`` is moved aside first, then deleted
    (with any left aside by a run killed between the two renames)."""
    if out.exists():
        aside = out.parent / f".old-{out.name}-{os.getpid()}"
        if aside.exists():
            shutil.rmtree(aside)
        os.rename(out, aside)
    crash_point("batch.rename")
    os.rename(final, out)
    for old in out.parent.glob(glob.escape(f".old-{out.name}-") + "*"):
        shutil.rmtree(old, ignore_errors=True)
