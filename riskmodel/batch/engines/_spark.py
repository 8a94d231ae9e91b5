"""The Spark engine of :func:`~riskmodel.score_batch`: the same chunks, prepared and scored on Spark.

The job (``riskmodel.batch._job``) hashes every dispute into one of ``n_chunks`` chunks;
an engine then runs two tasks per chunk (:mod:`riskmodel.batch._tasks`) around the pure
per-chunk core (:mod:`riskmodel.batch._core`): :func:`prepare_task` (row rejects, clean
events, summary rows) and :func:`score_task` (open disputes, features with every chunk's
summary rows as context, LightGBM, tiers, reasons), writing one parquet per chunk and a
``.done`` marker into the work directory. This engine runs the very same tasks, one Spark
task per chunk, as the local engine does in-process, so the driver's ``_finalize`` and
manifest are shared and the output is identical.

Flow
----
1. **read** - Spark reads the input (``spark.read.parquet`` on exactly the files
   :mod:`pyarrow.dataset` lists, hive partitions included; ``spark.read.csv`` with every
   column as a string). Each row keeps its position in the input (file number, row
   number) and gets its chunk from :func:`~riskmodel.batch._core.bucket_of`, evaluated in a
   pandas UDF on the id restored to the type the local engine hashes, so both engines put
   every dispute in the same chunk.
2. **prepare** - ``repartition`` on a key chosen so that chunk ``i`` lands in Spark
   partition ``i`` (one chunk per task), then ``groupBy(chunk).applyInPandas``: restore
   the local engine's dtypes and row order, :func:`prepare_task` (:func:`prepare_chunk`), write ``clean``,
   ``rejects`` and ``summary`` parquet plus the marker. An in-memory DataFrame input is
   split on the driver and its chunks are shipped to the tasks as they are.
3. **score** - one task per pending chunk (``parallelize``): read the chunk's clean events
   and entities rows and the summary rows it needs (:class:`~riskmodel.batch._core.ContextStore`),
   :func:`score_chunk`, write ``scores``, ``not_scored`` and the marker. The model travels
   as its safe artifact (LightGBM text and JSON, written next to the chunks); the entities
   travel as the per-chunk parts the driver wrote into the work directory.

Chunks with a ``.done`` marker are skipped, so a killed run resumes where it stopped.
Tasks write into the work directory, so on a cluster it must be on storage every
executor and the driver see under the same path (see ``docs/batch.md``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pyarrow as pa

from ..._errors import ConfigError, DataError, ModelError
from .._core import bucket_of, context_store
from .._tasks import Progress, prepare_task, release_unused_memory, score_task

__all__ = ["require_pyspark", "run_spark_chunks"]

#: Spark master used when none is given.
DEFAULT_MASTER = "local[2]"
_ORDER_COLS = ("_file", "_row")
#: SQL settings the run needs: timestamps cross Arrow as UTC wall times, and pandas'
#: nanosecond parquet timestamps (which Spark refuses) are read as longs, cast back per chunk.
_RUN_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.legacy.parquet.nanosAsLong": "true"}


def require_pyspark():
    """Import pyspark, or raise a :class:`ConfigError` saying how to install it."""
    try:
        import pyspark
    except ImportError as exc:
        raise ConfigError(
            "engine='spark' needs pyspark, which is not installed: pip install riskmodel[spark] "
            "(and a Java 17 runtime), or use engine='local'."
        ) from exc
    return pyspark


# ------------------------------------------------------------------------------------------
# session


@contextlib.contextmanager
def _session(master: str | None):
    """The active Spark session if the user has one (left running), else a new one (stopped)."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        if master is not None and master != active.sparkContext.master:
            warnings.warn(f"reusing the active Spark session (master {active.sparkContext.master}); "
                          f"master={master!r} is ignored.", RuntimeWarning, stacklevel=4)
        old = {k: active.conf.get(k, None) for k in _RUN_CONF}
        for k, v in _RUN_CONF.items():
            active.conf.set(k, v)
        try:
            yield active
        finally:
            for k, v in old.items():
                if v is None:
                    active.conf.unset(k)
                else:
                    active.conf.set(k, v)
        return

    # under spark-submit (which sets the gateway port) its --master and Python settings win
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ
    master = master or (None if submitted else DEFAULT_MASTER)
    local = master is not None and master.startswith("local")
    saved = {k: os.environ.get(k) for k in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    if local:  # local workers must run this interpreter, the one that has riskmodel
        for k in saved:
            os.environ[k] = sys.executable
    builder = SparkSession.builder if master is None else SparkSession.builder.master(master)
    builder = (
        builder.appName("riskmodel-score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for k, v in _RUN_CONF.items():
        builder = builder.config(k, v)
    if local:  # a cluster driver must stay reachable from the executors
        builder = (builder.config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1"))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - no Java, bad master URL, ...
        _restore_env(saved)
        raise ConfigError(f"could not start a Spark session on master {master or 'from spark-submit'!r}: "
                          f"{type(exc).__name__}: {_first_line(exc)}. Check the master URL and that Java 17 "
                          "is installed (JAVA_HOME).") from exc
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()
        _restore_env(saved)


def _restore_env(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_REMOTE_ERROR = re.compile(r"riskmodel\._errors\.(DataError|ModelError|ConfigError): (.*)")


def _translate(exc: Exception, what: str) -> Exception:
    """A riskmodel error raised in a Spark task comes back as that error, not a Java trace."""
    match = _REMOTE_ERROR.search(str(exc))
    if match:
        cls = {"DataError": DataError, "ModelError": ModelError, "ConfigError": ConfigError}[match.group(1)]
        return cls(f"{match.group(2)} (raised in a Spark task while {what})")
    return exc


# ------------------------------------------------------------------------------------------
# the job description shipped to the tasks


@dataclass(frozen=True)
class _Job:
    """Everything a task needs, small and picklable (the entities are read from the work directory)."""

    work: str
    schema: object
    n_chunks: int
    now: pd.Timestamp
    as_of: pd.Timestamp
    reasons: str
    max_inactive: str | None
    model_dir: str
    model_meta: tuple[str, str, str, str]
    #: "arrow" (parquet input: cast to this schema) or "csv" (strings: re-parse with pandas)
    restore_mode: str = "arrow"
    arrow_schema: pa.Schema | None = None
    csv_dtypes: dict | None = None

    def restore(self, pdf: pd.DataFrame) -> pd.DataFrame:
        """The chunk with the columns and dtypes the local engine reads for it."""
        cols = list(self.schema.event_columns)
        if self.restore_mode == "csv":
            # the strings Spark read, parsed again by pandas.read_csv exactly as the local
            # engine's whole-file read did (same NA tokens, same dtypes)
            text = pdf[cols].to_csv(index=False)
            return pd.read_csv(io.StringIO(text), dtype={c: self.csv_dtypes[c] for c in cols})
        plain = pa.schema([self.arrow_schema.field(c) for c in cols])
        table = pa.Table.from_pandas(pdf[cols], schema=plain, preserve_index=False)
        return table.replace_schema_metadata(self.arrow_schema.metadata).to_pandas()

    def restore_ids(self, ids: pd.Series):
        """Ids as the local engine hashes them (an Arrow array for parquet, a Series for CSV)."""
        col = self.schema.entity_col
        if self.restore_mode == "csv":
            text = ids.rename(col).to_frame().to_csv(index=False)
            return pd.read_csv(io.StringIO(text), dtype={col: self.csv_dtypes[col]})[col]
        return pa.array(ids, type=self.arrow_schema.field(col).type, from_pandas=True)


def _model_meta(predictor) -> tuple[str, str, str, str]:
    return (predictor.model_name, predictor.model_version, predictor.run_id, predictor.uri)


_MODEL_CACHE: dict[str, object] = {}


def _task_predictor(job: _Job):
    """The model, loaded once per Python worker from its safe artifact."""
    from ...lifecycle import Predictor
    from ...model import load_model_dir

    stamp = f"{job.model_dir}|{os.stat(Path(job.model_dir) / 'riskmodel.json').st_mtime_ns}"
    if stamp not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        name, version, run_id, uri = job.model_meta
        _MODEL_CACHE[stamp] = Predictor(load_model_dir(job.model_dir), model_name=name,
                                        model_version=version, run_id=run_id, uri=uri)
    return _MODEL_CACHE[stamp]


# ------------------------------------------------------------------------------------------
# per-chunk task bodies (the local engine's loop bodies, writing the same files)


def _prepare_one(job: _Job, i: int, raw: pd.DataFrame, t_read: float = 0.0) -> int:
    """Validate chunk ``i`` on an executor (the shared :func:`prepare_task`)."""
    return prepare_task(Path(job.work), i, raw, job.schema, job.now, t_read=t_read)


def _score_one(job: _Job, i: int) -> int:
    """Score chunk ``i`` on an executor (the shared :func:`score_task`), with the summary
    rows it needs as context, indexed in this task."""
    prep = Path(job.work) / "prepared"
    predictor = _task_predictor(job)

    def context_for(j: int, clean: pd.DataFrame):
        store = context_store(prep, job.n_chunks, predictor.model, job.as_of) if len(clean) else None
        context = None if store is None else store.for_chunk(j)
        del store
        release_unused_memory()
        return context

    return score_task(Path(job.work), i, predictor, job.as_of, reasons=job.reasons,
                      max_inactive=job.max_inactive, context_for=context_for)


# ------------------------------------------------------------------------------------------
# reading the input with Spark


def _spark_events(spark, source, job_kw: dict):
    """Spark DataFrame of the event columns plus ``_file``/``_row`` (input order), and the
    fields of :class:`_Job` that restore the local engine's dtypes."""
    from pyspark.sql import functions as F

    cols = list(source.schema.event_columns)
    root = Path(source.description)
    if source.dataset is not None:
        files = [str(Path(f).resolve()) for f in source.dataset.files]
        index = {f: k for k, f in enumerate(files)}
        reader = spark.read
        if root.is_dir():
            reader = reader.option("basePath", str(root))  # keeps hive partition columns
        sdf = reader.parquet(*files)

        def file_no(paths: pd.Series) -> pd.Series:
            codes, uniques = pd.factorize(paths)
            nos = np.array([index.get(str(Path(unquote(urlparse(u).path)).resolve()), -1) for u in uniques])
            return pd.Series(nos[codes], dtype="int64")

        sdf = sdf.select(*cols, F.pandas_udf(file_no, "long")(F.col("_metadata.file_path")).alias("_file"),
                         F.col("_metadata.row_index").alias("_row"))
        return sdf, {"restore_mode": "arrow",
                     "arrow_schema": source.dataset.scanner(columns=cols).projected_schema}
    # CSV: strings only, so pandas (not Spark) decides types and NA tokens as in the local engine
    from pyspark.sql.types import StringType, StructField, StructType

    header = list(source.frame.columns)
    sdf = (spark.read.schema(StructType([StructField(str(c), StringType()) for c in header]))
           .options(header=True, escape='"', multiLine=True, mode="PERMISSIVE", enforceSchema=True)
           .csv(str(root)))
    # multiLine makes the file one split: the increasing id follows the file's row order
    sdf = sdf.select(*cols, F.lit(0).cast("long").alias("_file"),
                     F.monotonically_increasing_id().alias("_row"))
    return sdf, {"restore_mode": "csv", "csv_dtypes": {c: source.frame[c].dtype for c in cols}}


def _partition_keys(spark, n: int) -> list[int]:
    """For each chunk ``i`` a long ``k`` with ``pmod(hash(k), n) == i``: repartitioning on
    ``k`` then puts one chunk in each Spark partition (one task per chunk)."""
    from pyspark.sql import functions as F

    rows = (spark.range(0, 64 * n).select(F.col("id"), F.expr(f"pmod(hash(id), {n})").alias("p"))
            .groupBy("p").agg(F.min("id").alias("k")).collect())
    found = {int(r["p"]): int(r["k"]) for r in rows}
    return [found.get(i, i) for i in range(n)]


# ------------------------------------------------------------------------------------------
# progress from the markers the tasks write


class _Watch:
    """Feed :class:`~riskmodel.batch._tasks.Progress` from the ``.done`` markers tasks write."""

    def __init__(self, folder: Path, pending: list[int], desc: str):
        self.folder, self.pending = folder, set(pending)
        self.progress = Progress(len(pending), desc)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _poll(self) -> None:
        for i in sorted(self.pending):
            marker = self.folder / f"chunk-{i:05d}.done"
            if marker.exists():
                try:
                    rows = json.loads(marker.read_text(encoding="utf-8")).get("rows", 0)
                except (OSError, ValueError):
                    continue
                self.pending.discard(i)
                self.progress.update(rows)

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self._poll()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        if exc[0] is None:
            self._poll()
        self.progress.close()


# ------------------------------------------------------------------------------------------
# the engine


def run_spark_chunks(*, work: Path, source, n_chunks: int, predictor, as_of: pd.Timestamp, reasons: str,
                     max_inactive, master: str | None, timings: dict, now: pd.Timestamp) -> None:
    """Prepare and score every pending chunk on Spark, writing the local engine's files.

    Parameters
    ----------
    work : Path
        The run's work directory (``prepared/`` and ``scores/`` receive one parquet per
        chunk and a ``chunk-<i>.done`` marker; ``parts/entities-<i>.parquet``, written by the
        driver, hold each chunk's entities rows). Tasks read and write it, so on a cluster it
        must be visible to every executor under the same path.
    source : riskmodel.batch._inputs.Source
        The events input: a parquet file / directory / hive dataset or a CSV file (read by
        Spark), or an in-memory DataFrame (split on the driver).
    n_chunks : int
        Number of chunks (dispute id hash modulo ``n_chunks``, as in the local engine).
    predictor : Predictor
    as_of, now : Timestamp
        Scoring moment; latest plausible event time.
    reasons : {"flagged", "all", "none"}
    max_inactive : str or None
    master : str or None
        Spark master URL; default ``local[2]``. Ignored when a Spark session is active.
    timings : dict
        Stage timings, updated in place (``spark_session``: starting Spark).

    Raises
    ------
    ConfigError
        pyspark is not installed, or Spark cannot start.
    DataError
        Spark cannot read the input.
    """
    from ...model import save_model_dir

    require_pyspark()
    schema = predictor.model._schema()
    prep_dir, score_dir = work / "prepared", work / "scores"
    model_dir = work / "model"
    save_model_dir(predictor.model, model_dir)
    job_kw = dict(work=str(work.resolve()), schema=schema, n_chunks=n_chunks, now=now, as_of=as_of,
                  reasons=reasons, max_inactive=max_inactive, model_dir=str(model_dir.resolve()),
                  model_meta=_model_meta(predictor))
    t0 = time.perf_counter()
    with warnings.catch_warnings(), _session(master) as spark:
        # our outputs are checked against the local engine's; pyspark's blanket notice is noise
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        sc = spark.sparkContext
        timings["spark_session"] = timings.get("spark_session", 0.0) + time.perf_counter() - t0

        # -- prepare ---------------------------------------------------------------------
        pending = [i for i in range(n_chunks) if not (prep_dir / f"chunk-{i:05d}.done").exists()]
        if pending and source.frame is not None and source.dataset is None and \
                not source.description.lower().endswith(".csv"):
            job = _Job(**job_kw)
            chunks = [(i, source.chunk(i, n_chunks, work / "parts")) for i in pending]
            with _Watch(prep_dir, pending, "prepare"):
                _action(lambda: sc.parallelize(chunks, len(chunks))
                        .map(lambda item: _prepare_one(job, item[0], item[1])).collect(), "preparing chunks")
            del chunks
        elif pending:
            from pyspark.sql import functions as F

            try:
                sdf, restore_kw = _spark_events(spark, source, job_kw)
            except Exception as exc:  # noqa: BLE001 - Spark's reader errors are data problems
                raise DataError(f"Spark could not read events {source.description}: "
                                f"{type(exc).__name__}: {_first_line(exc)}") from exc
            job = _Job(**job_kw, **restore_kw)

            def bucket(ids: pd.Series) -> pd.Series:
                return pd.Series(bucket_of(job.restore_ids(ids), n_chunks))

            def prepare(key, pdf):
                t = time.perf_counter()
                pdf = pdf.sort_values(list(_ORDER_COLS), kind="stable")
                raw = job.restore(pdf)
                rows = _prepare_one(job, int(key[0]), raw, time.perf_counter() - t)
                return pd.DataFrame({"chunk": [int(key[0])], "rows": [rows]})

            keys = _partition_keys(spark, n_chunks)
            key_map = F.create_map(*[F.lit(x) for i in range(n_chunks) for x in (i, keys[i])])
            sdf = (sdf.withColumn("_chunk", F.pandas_udf(bucket, "long")(F.col(schema.entity_col)))
                   .where(F.col("_chunk").isin(pending))
                   .withColumn("_key", F.element_at(key_map, F.col("_chunk")))
                   .repartition(n_chunks, "_key"))
            with _Watch(prep_dir, pending, "prepare"):
                _action(lambda: sdf.groupBy("_chunk", "_key")
                        .applyInPandas(prepare, schema="chunk long, rows long").collect(), "preparing chunks")
        # chunks no dispute hashed into: the local engine writes empty files for them too
        empty = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.event_columns})
        for i in range(n_chunks):
            if not (prep_dir / f"chunk-{i:05d}.done").exists():
                _prepare_one(_Job(**job_kw), i, empty)

        # -- score -----------------------------------------------------------------------
        pending = [i for i in range(n_chunks) if not (score_dir / f"chunk-{i:05d}.done").exists()]
        if pending:
            job = _Job(**job_kw)
            with _Watch(score_dir, pending, "score"):
                _action(lambda: sc.parallelize(pending, len(pending)).map(lambda i: _score_one(job, i)).collect(),
                        "scoring chunks")


def _action(run, what: str):
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - re-raised, as the riskmodel error when it is one
        translated = _translate(exc, what)
        if translated is exc:
            raise
        raise translated from exc
