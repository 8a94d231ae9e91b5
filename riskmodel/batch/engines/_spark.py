"""The Spark engine of :func:`~riskmodel.score_batch`: the local engine's chunks, prepared
and scored on a Spark cluster, with input, work folder and output at any URI Spark reaches.

The job hashes every dispute into one of ``n_chunks`` chunks and runs two tasks per chunk
around the pure per-chunk core (:mod:`riskmodel.batch._core`): :func:`prepare_task` (row
rejects, clean events, summary rows) and :func:`score_task` (open disputes, features with
every chunk's summary rows as context, LightGBM, tiers, reasons). This engine runs those
very tasks on the executors (:mod:`._spark_tasks`), so the driver's tail (the job's
``_write_night``: the night's tiers, counts and manifest) is the local engine's and the
output is identical.

Flow
----
1. **inputs** - events and entities are each a parquet file, folder or hive dataset, a CSV
   file or folder (any path or URI Spark reads), a table in Spark's catalog, a Spark
   DataFrame, or a pandas DataFrame. Spark reads them; the driver reads only metadata
   (column names, a parquet footer, file listings) and aggregates (row and dispute counts,
   CSV dtypes, which integer columns hold nulls). Every row keeps its input position.
2. **partition** - one Spark job: every input row goes to its chunk by the local engine's
   hash of the id, as the local engine would type the id (:class:`RowFormat`); the rows are
   stored per chunk in the work folder (``parts/chunk=<i>/``).
3. **prepare** - one Spark job per chunk (several at once, as many as the cluster has
   cores): one task reads the chunk's rows, restores the frame the local engine reads for
   them (same values, dtypes and order), validates the entities rows and runs
   :func:`prepare_task`; Spark writes the files it produced into ``prepared/chunk=<i>/``.
4. **score** - one Spark job per chunk: one task reads the chunk's clean events and
   entities rows and every chunk's summary rows, runs :func:`score_task` with the model
   rebuilt from its artifact's files (a broadcast; never a pickle of the model), and Spark
   writes the scores into ``scores/chunk=<i>/``.
5. **finalize** - the driver reads the per-chunk scores, rejects, not-scored rows and
   markers (not the events) into a local folder laid out as the local engine's work
   folder and runs the shared tail. Where tonight's share tiers flag cases their chunk
   did not explain, the second explain pass runs on the executors too (one Spark job per
   chunk concerned, :meth:`SparkRun.explain`): only those disputes' reasons reach the
   driver. The output is written into ``<work>/final`` through the Hadoop ``FileSystem``
   API (:mod:`riskmodel.batch._fs`) and renamed onto ``out``.

Work folder and resume
----------------------
``<parent of out>/.tmp-<name of out>-<as_of>/`` on the output's file system holds
``state.json`` (input fingerprints, model, parameters), ``partition.json`` (the chunk
count and how each input's rows are typed) and the per-chunk datasets. A chunk is done
when Spark committed its dataset (``_SUCCESS``): a run killed at any point (even the
driver, with ``kill -9``) and started again redoes only the chunks not committed and
produces the same output. ``out`` appears, or is replaced, only by a rename, by the local
engine's rules (the job's ``check_out`` and ``_keeps_previous``). The driver reaches the
local engine's crash points (:mod:`riskmodel._faults`: ``batch.partition``,
``batch.prepare``, ``batch.score``, ``batch.finalize``, ``batch.rename``,
``batch.cleanup``, and ``batch.write`` for the files the driver writes); the executors
never do.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pyarrow as pa

from ..._errors import ConfigError, DataError, ModelError
from ..._faults import crash_point
from ..._version import VERSION
from ...data import (
    EXPORT_NULLS,
    NULL_WORDS,
    SCIENTIFIC_ID,
    frame_fingerprint,
    ids_of_one_type,
    require_columns,
    warn_odd_ids,
)
from ...lifecycle import (
    PARQUET_MAGIC,
    input_words,
    is_csv,
    not_parquet_error,
    refuse_one_column_header,
    refuse_repeated_names,
    unreadable_compressed,
)
from .._core import bucket_of
from .._fs import HadoopFS, join
from .._inputs import distinct_ids, entity_columns, validated_entities
from ._spark_tasks import (
    ChunkJob,
    RowFormat,
    blob_batches,
    explain_rows,
    frame_bytes,
    gather_blobs,
    non_blank_ids,
    prepare_rows,
    score_rows,
    split_rows,
    twin_keys,
)

__all__ = ["Staged", "require_pyspark", "spark_run"]

#: Spark master used when none is given (and no session is active).
DEFAULT_MASTER = "local[2]"
#: SQL settings the run needs: timestamps cross Arrow as UTC, pandas' nanosecond parquet
#: timestamps (which Spark refuses) are read as longs and cast back on the executors, and
#: rows cross to the Python tasks in batches large enough to keep the crossings few.
_RUN_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.legacy.parquet.nanosAsLong": "true",
             "spark.sql.execution.arrow.pyspark.enabled": "true",
             "spark.sql.execution.arrow.maxRecordsPerBatch": "100000"}
_BLOB_COLS = ("name", "blob", "slice", "data")
_BLOB_DDL = "name string, blob string, slice int, data binary"


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


def _log(message: str) -> None:
    print(f"[riskmodel score] spark: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# session


@contextlib.contextmanager
def _session(master: str | None, session=None):
    """``session`` (the one a Spark DataFrame input belongs to), else the active Spark
    session (a notebook, ``spark-submit``), both left running; else a new one, stopped at
    the end. The run's SQL settings hold inside the block."""
    require_pyspark()
    from pyspark.sql import SparkSession

    active = session or SparkSession.getActiveSession()
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
    builder = builder.appName("riskmodel-score").config("spark.ui.showConsoleProgress", "false")
    for k, v in _RUN_CONF.items():
        builder = builder.config(k, v)
    if local:  # a cluster's driver must stay reachable from the executors (and keeps its UI)
        builder = (builder.config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1")
                   .config("spark.ui.enabled", "false")
                   .config("spark.sql.shuffle.partitions", "4"))
        if os.environ.get("PYTHONPATH"):  # local-cluster executors: the driver's riskmodel
            builder = builder.config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
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


_FAILED_READ = re.compile(r"FAILED_READ_FILE[^\]]*\] Encountered error while reading file (\S+?(\.gz|\.bz2)?)\.\s",
                          re.IGNORECASE)
_NOT_PARQUET = re.compile(r"(\S+) is not a Parquet file")
_TYPE_MISMATCH = re.compile(r"PARQUET_COLUMN_DATA_TYPE_MISMATCH\][^\n]*?reading file (\S+?)\. Data type mismatches "
                            r"when reading Parquet column \[?([^\]\s.]+)")


def _translate(exc: Exception, what: str) -> Exception:
    """A riskmodel error raised in a Spark task comes back as that error, not a Java trace."""
    match = _REMOTE_ERROR.search(str(exc))
    if match:
        cls = {"DataError": DataError, "ModelError": ModelError, "ConfigError": ConfigError}[match.group(1)]
        return cls(f"{match.group(2)} (raised in a Spark task while {what})")
    cut = _FAILED_READ.search(str(exc))
    if cut and cut.group(1).lower().endswith((".gz", ".bz2")):  # a cut download past the first MiB judged
        return unreadable_compressed(cut.group(1), cut.group(2))
    stray = _NOT_PARQUET.search(str(exc))
    if stray:  # a file of a parquet folder that is not parquet (a .tsv among the parts)
        return not_parquet_error(None, stray.group(1), stray.group(1), None, tuple(_SPARK_CSV_CODECS))
    mismatch = _TYPE_MISMATCH.search(str(exc))
    if mismatch:  # Spark reads every parquet file with the first one's types
        return DataError(f"column {mismatch.group(2)!r} of {mismatch.group(1)} has another type than in the input's "
                         "other parquet files (e.g. a part where it is all missing). Spark reads every file with one "
                         "file's types: rewrite the parts with one type for it, or score with --engine local, which "
                         "unifies them.")
    return exc


def _action(run, what: str):
    try:
        return run()
    except Exception as exc:  # noqa: BLE001 - re-raised, as the riskmodel error when it is one
        translated = _translate(exc, what)
        if translated is exc:
            raise
        raise translated from exc


# ------------------------------------------------------------------------------------------
# the library on the executors

# Pickled by value (its module is not importable), so it runs even where riskmodel is not;
# it reads the version file without importing the package (and its scientific stack).
_PROBE_SOURCE = r'''
def probe(_):
    import importlib.util, os, re, sys
    version = None
    try:
        spec = importlib.util.find_spec("riskmodel")
        if spec is not None and spec.origin:
            # the loader reads a file or a zip member (--py-files riskmodel.zip) alike
            text = spec.loader.get_data(os.path.join(os.path.dirname(spec.origin), "_version.py")).decode()
            found = re.search(r"^VERSION\s*=\s*[\x22\x27]([^\x22\x27]+)", text, re.M)
            version = found.group(1) if found else "unknown"
    except Exception:  # noqa: BLE001 - anything but a readable version is "not installed"
        version = None
    return [(version, sys.version.split()[0], sys.executable)]
'''


def _check_executors(spark) -> None:
    """Refuse to start unless the executors' Python imports this riskmodel version."""
    namespace = {"__name__": "riskmodel_executor_probe"}
    exec(_PROBE_SOURCE, namespace)  # noqa: S102 - our own constant source, see above
    sc = spark.sparkContext
    n = max(2, 2 * sc.defaultParallelism)
    found = set(_action(lambda: sc.parallelize(range(n), n).mapPartitions(namespace["probe"]).collect(),
                        "checking riskmodel on the executors"))
    missing = sorted({(py, exe) for version, py, exe in found if version is None})
    if missing:
        raise ConfigError(
            f"riskmodel is not installed on the Spark executors (their Python: {missing[0][1]}, "
            f"{missing[0][0]}): ship it with the job, e.g. spark-submit --archives riskmodel-env.tar.gz#environment "
            "with spark.pyspark.python=./environment/bin/python, or --py-files (see docs/batch.md).")
    other = sorted({version for version, _, _ in found if version != VERSION})
    if other:
        raise ConfigError(f"the Spark executors run riskmodel {', '.join(other)}, the driver {VERSION}: install "
                          "the driver's version on the executors (see docs/batch.md).")


# ------------------------------------------------------------------------------------------
# inputs


@dataclass
class _Input:
    """One input as Spark reads it (or a pandas frame), before its rows are typed."""

    role: str  #: "events" or "entities"
    mode: str  #: "parquet", "csv", "spark", "frame"
    columns: list[str]
    description: str
    fingerprint: str | None = None
    sdf: object = None  #: Spark DataFrame of the columns plus the order columns
    frame: pd.DataFrame | None = None
    uri: str | None = None
    listing: list | None = None  #: parquet / CSV: the files (:class:`FileInfo`) in pyarrow's order
    files: dict | None = None  #: parquet / CSV: path -> file number
    extra: object = None  #: CSV: Spark DataFrame of the columns and :data:`_EXTRA`, a field past the header's


def _is_spark_frame(value) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "sparkSession") and hasattr(value, "schema")


def _spark_to_pandas(table, schema_json: str, timezone: str) -> pd.DataFrame:
    """``DataFrame.toPandas``'s conversion of Spark's Arrow rows (runs on the executors)."""
    from pyspark.sql.types import StructType

    schema = StructType.fromJson(json.loads(schema_json))
    fields = StructType([schema[c] for c in table.column_names])
    try:
        from pyspark.sql.pandas.conversion import _convert_arrow_table_to_pandas
    except ImportError:  # pragma: no cover - an older pyspark: Arrow's conversion, as toPandas does it
        return table.to_pandas(coerce_temporal_nanoseconds=True, date_as_object=True)
    return _convert_arrow_table_to_pandas(table, fields, timezone=timezone, struct_handling_mode="legacy",
                                          date_as_object=True)


def _missing(names: list[str], columns: list[str], role: str, description: str) -> None:
    """The local engine's error for missing columns, in the same words."""
    if role == "entities":
        require_columns(pd.DataFrame(columns=names), columns, "entities")
        return
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(
            f"events ({description}) are missing required column(s) {missing}; they have {names[:20]}. "
            "Rename the columns or train with an EventSchema naming yours."
        )


def _read_input(spark, fs: HadoopFS, value, role: str, columns: list[str]) -> _Input:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    order = [F.lit(0).cast("long").alias("_file"), F.monotonically_increasing_id().alias("_row")]
    if isinstance(value, pd.DataFrame):
        _missing(list(value.columns), columns, role, f"DataFrame ({len(value):,} rows)")
        value = ids_of_one_type(value, columns[0]) if role == "events" else value  # as the local engine's Source
        return _Input(role, "frame", columns, f"DataFrame ({len(value):,} rows)", frame_fingerprint(value),
                      frame=value)
    if _is_spark_frame(value):
        _missing(list(value.columns), columns, role, "Spark DataFrame")
        return _Input(role, "spark", columns, f"Spark DataFrame ({', '.join(value.columns[:8])})",
                      sdf=value.select(*columns, *order))
    name = str(value)
    if "/" not in name and ":" not in name and not os.path.exists(name) and spark.catalog.tableExists(name):
        sdf = spark.table(name)
        _missing(list(sdf.columns), columns, role, f"table {name}")
        files = sdf.inputFiles()
        return _Input(role, "spark", columns, f"table {name}",
                      f"table:{name}:{_files_fingerprint(fs, files)}" if files else None,
                      sdf=sdf.select(*columns, *order))
    uri = fs.qualify(name)
    if not fs.exists(uri):
        raise DataError(f"{role} input {name} does not exist.")
    listed = fs.files(uri)
    if not listed:
        raise DataError(f"{role} input {name} holds no files.")
    numbers = {f.path: k for k, f in enumerate(listed)}
    # the files the local engine reads, subfolders' included (Spark skips them), each read as
    # itself: Hadoop takes []{}*?\ in a path as a pattern (export[1].csv matched nothing)
    paths = [re.sub(r"([\[\]{}*?\\])", r"\\\1", f.uri) for f in listed]
    by_file = [F.col("_metadata.file_path").alias("_path")]
    try:
        if all(is_csv(f.rel) for f in listed):
            _require_utf8(fs, listed, role, name, columns)
            header = spark.read.option("header", True).csv(paths).columns
            refuse_one_column_header(header, name)  # as read_csv says it
            _missing(header, columns, role, uri)
            fields = [StructField(str(c), StringType()) for c in [*header, _EXTRA]]  # Spark drops fields past them
            raw = (spark.read.schema(StructType(fields))
                   .options(header=True, escape='"', multiLine=True, mode="PERMISSIVE", enforceSchema=True).csv(paths))
            # multiLine keeps each file in one task, so the increasing id follows its rows' order
            sdf = raw.select(*columns, *by_file, F.monotonically_increasing_id().alias("_row"))
            return _Input(role, "csv", columns, uri, fs.fingerprint(uri), sdf=sdf, uri=uri, listing=listed,
                          files=numbers, extra=raw.select(*columns, _EXTRA))
        # a file of another kind (a .tsv) is read as parquet: judged before Spark reads, by its
        # first bytes (a file named *.parquet, as every writer names them, when Spark fails)
        _refuse_not_parquet(fs, [f for f in listed if f.size and not f.rel.lower().endswith(".parquet")], role, name,
                            uri)
        reader = spark.read.option("basePath", uri) if fs.is_dir(uri) else spark.read
        sdf = reader.parquet(*paths)
        _missing(list(sdf.columns), columns, role, uri)
        sdf = sdf.select(*columns, *by_file, F.col("_metadata.row_index").alias("_row"))
        return _Input(role, "parquet", columns, uri, fs.fingerprint(uri), sdf=sdf, uri=uri, listing=listed,
                      files=numbers)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - Spark's reader errors are data problems
        _refuse_not_parquet(fs, listed, role, name, uri)
        raise DataError(f"Spark could not read {role} {name}: {type(exc).__name__}: {_first_line(exc)}") from exc


def _refuse_not_parquet(fs: HadoopFS, files, role: str, name: str, uri: str) -> None:
    """Refuse input ``name`` when one of its ``files`` (not named as CSV) is not parquet by its
    first bytes, saying which files Spark reads how (as the local engine says it)."""
    for f in files:
        if not is_csv(f.rel) and fs.read_bytes(f.uri, 0, min(len(PARQUET_MAGIC), f.size)) != PARQUET_MAGIC:
            raise not_parquet_error(input_words(role, name), name, join(name, f.rel) if fs.is_dir(uri) else name,
                                    fs.read_bytes(f.uri, 0, min(1 << 16, f.size)), tuple(_SPARK_CSV_CODECS))


def _files_fingerprint(fs: HadoopFS, files: list[str]) -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(files):
        for f in fs.files(name):
            h.update(f"{f.path}|{f.size}|{f.mtime}\n".encode())
    return h.hexdigest()[:24]


def _content_fingerprint(inp: _Input) -> str:
    """Rows and a sum of row hashes, computed by Spark (for inputs without files)."""
    from pyspark.sql import functions as F

    row = _action(lambda: inp.sdf.select(F.xxhash64(*inp.columns).cast("decimal(38,0)").alias("h"))
                  .agg(F.count(F.lit(1)).alias("n"), F.sum("h").alias("h")).first(), f"reading {inp.role}")
    return f"spark:{row['n']}:{row['h']}"


def _parquet_format(fs: HadoopFS, inp: _Input) -> RowFormat:
    """The Arrow types pyarrow's dataset reads for the columns: the first file's schema
    (pyarrow's dataset takes it from there), hive partition keys as int32 when all their
    values are integers, else strings (pyarrow's discovery)."""
    file_schema = fs.parquet_schema(inp.listing[0].uri)
    fields, partitioned = [], False
    for c in inp.columns:
        if c in file_schema.names:
            fields.append(file_schema.field(c))
            continue
        partitioned = True
        values = {seg.split("=", 1)[1] for f in inp.listing for seg in f.rel.split("/")[:-1]
                  if seg.startswith(f"{c}=")}
        integers = all(re.fullmatch(r"[+-]?\d+", unquote(v)) for v in values)
        fields.append(pa.field(c, pa.int32() if integers and values else pa.string()))
    # the local engine reads a partition column through the dataset scanner, whose batches
    # carry the first file's pandas metadata; plain files it reads without
    target = pa.schema(fields, metadata=file_schema.metadata if partitioned else None)
    return RowFormat("parquet", tuple(inp.columns), arrow_schema=target.serialize().to_pybytes(),
                     keep_metadata=partitioned)


#: Compressions Spark's CSV reader decompresses by the file's name (Hadoop's codecs).
_SPARK_CSV_CODECS = {".csv": None, ".csv.gz": "gzip", ".csv.bz2": "bz2"}


def _require_utf8(fs: HadoopFS, listed, role: str, name: str, columns=()) -> None:
    """Refuse, in words, CSV files Spark would read as garbage: compressions other than
    Hadoop's by-name codecs, and text that is not UTF-8 (judged on each file's first
    megabyte). Spark's CSV reader takes no GB18030, which the local engine reads. A header
    naming a column twice is refused as :func:`~riskmodel.lifecycle.read_csv` refuses it
    (Spark would read the copies as ``time1``, ``time3``), in the words of input ``name``, and
    so is one with two names that differ only by letter case, one of them among ``columns``."""
    import bz2
    import csv
    import io
    import zlib

    words, folder = input_words(role, name), fs.is_dir(fs.qualify(name))
    for f in listed:
        suffix = next((x for x in _SPARK_CSV_CODECS if f.rel.lower().endswith(x)), None)
        if suffix is None:
            raise DataError(f"{role} {f.rel}: Spark reads CSV plain, .csv.gz or .csv.bz2; decompress it, or score "
                            "with --engine local.")
        head = fs.read_bytes(f.uri, 0, min(1 << 20, f.size))
        codec = _SPARK_CSV_CODECS[suffix]
        if codec == "gzip":
            try:
                head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head)
            except zlib.error as exc:
                raise unreadable_compressed(f"{role} {f.rel}", ".gz", exc) from None
        elif codec == "bz2":
            try:
                head = bz2.BZ2Decompressor().decompress(head)
            except (OSError, EOFError):  # a megabyte holds no whole block: not judged
                head = b""
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.start < len(head) - 4:  # not a character cut at the megabyte's end
                raise DataError(f"{role} {f.rel} is not UTF-8 text (GB18030, as Chinese Excel writes it?): Spark "
                                "reads CSV as UTF-8 only; save it as UTF-8 (e.g. iconv -f GB18030 -t UTF-8), or score "
                                "with --engine local, which reads GB18030.") from None
        text = head.decode("utf-8", errors="ignore").removeprefix("\ufeff")
        if "\n" in text or f.size <= 1 << 20:  # the header whole (as read_csv reads it: blank lines skipped)
            header = next((r for r in csv.reader(io.StringIO(text)) if r), [])
            refuse_repeated_names(header, name, tuple(f"{w} (its file {f.rel})" for w in words) if folder else words,
                                  columns=columns)


#: the name of a CSV field past the header's, which Spark's reader would drop
_EXTRA = "_riskmodel_extra_field"


def _vote_csv_dtypes(columns: list[str], batches):
    """Executors: the dtype pandas' ``read_csv`` gives each column of each batch of rows."""
    import io

    for batch in batches:
        if batch.num_rows == 0:
            continue
        parsed = pd.read_csv(io.StringIO(batch.to_pandas().to_csv(index=False)), na_values=EXPORT_NULLS)
        out = {"column": [], "dtype": [], "nulls": []}
        for c in columns:
            nulls = parsed[c].isna()
            out["column"].append(c)
            out["dtype"].append("null" if nulls.all() else str(parsed[c].dtype))
            out["nulls"].append(bool(nulls.any()))
        yield pa.RecordBatch.from_pydict(out)


def _csv_dtype(votes: set[str], nulls: bool) -> str:
    """pandas' dtype for a whole column from the dtypes of its batches."""
    kinds = votes - {"null"}
    if not kinds:
        return "float64"  # a column with no value at all
    if kinds == {"int64"}:
        return "float64" if nulls else "int64"
    if kinds <= {"int64", "float64"}:
        return "float64"
    if kinds == {"bool"}:
        return "object" if nulls else "bool"
    if kinds & {"bool", "int64", "float64"} and not kinds & {"str", "object", "string"}:
        return "object"
    return "str" if "str" in kinds else "object"


def _finish_format(inp: _Input, text_columns=()) -> RowFormat:
    """The input's :class:`RowFormat`, with what only a pass over the rows can tell; a CSV's
    ``text_columns`` are text whatever they look like, as the local engine reads them
    (:func:`~riskmodel.lifecycle.read_csv`: ids ``0012`` and times ``20231121080500``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, ByteType, IntegerType, LongType, ShortType

    if inp.mode == "frame":
        return RowFormat("frame", tuple(inp.columns))
    if inp.mode == "csv":
        votes = _action(lambda: inp.extra
                        .mapInArrow(functools.partial(_vote_csv_dtypes, [*inp.columns, _EXTRA]),
                                    "column string, dtype string, nulls boolean")
                        .groupBy("column").agg(F.collect_set("dtype").alias("d"), F.max("nulls").alias("n"))
                        .collect(), f"reading {inp.role}")
        found = {r["column"]: _csv_dtype(set(r["d"]), bool(r["n"])) for r in votes}
        if set(next((r["d"] for r in votes if r["column"] == _EXTRA), ["null"])) != {"null"}:  # as local refuses it
            row = _action(lambda: inp.extra.where(F.col(_EXTRA).isNotNull()).first(), f"reading {inp.role}")
            said = (f"{inp.role} {inp.uri}: rows have more fields than the header, e.g. the row of {inp.columns[0]} "
                    f"{row[0]!r} (extra field {row[_EXTRA]!r}): a comma inside a field that is not quoted? Quote such "
                    "fields, or remove the extra ones (row names before the header's columns, as R's write.table "
                    "writes: score with ")
            raise DataError(said + 'engine="local").', cli=said + "--engine local).")
        dtypes = tuple((c, "str" if c in text_columns else found.get(c, "float64")) for c in inp.columns)
        return RowFormat("csv", tuple(inp.columns), csv_dtypes=dtypes)
    if inp.mode == "spark":
        spark = inp.sdf.sparkSession
        schema = inp.sdf.select(*inp.columns).schema
        maybe = [f.name for f in schema.fields
                 if isinstance(f.dataType, BooleanType | ByteType | ShortType | IntegerType | LongType)]
        with_nulls = ()
        if maybe:
            row = _action(lambda: inp.sdf.agg(*[F.max(F.col(c).isNull().cast("int")).alias(c) for c in maybe])
                          .first(), f"reading {inp.role}")
            with_nulls = tuple(c for c in maybe if row[c])
        return RowFormat("spark", tuple(inp.columns), spark_schema=schema.json(), with_nulls=with_nulls,
                         timezone=spark.conf.get("spark.sql.session.timeZone"), to_pandas=_spark_to_pandas)
    raise AssertionError(inp.mode)  # parquet formats come from the files' footers


def _count_disputes(inp: _Input, fmt: RowFormat, id_col: str) -> int:
    """Distinct non-null ids, as the local engine counts them (CSV: as pandas types them),
    with its warning about ids differing only by spaces around them
    (:func:`~riskmodel.data.warn_odd_ids`, judged on every id before the chunks part them)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    if inp.mode == "frame":
        return len(distinct_ids(inp.frame[id_col], stacklevel=5))
    ids = F.col(id_col)
    text = isinstance(inp.sdf.schema[id_col].dataType, StringType)
    if fmt.mode == "csv":
        ids = F.when(ids.isin(list(NULL_WORDS)), None).otherwise(ids)
        dtype = dict(fmt.csv_dtypes)[id_col]
        if dtype in ("int64", "float64"):
            ids = F.expr(f"try_cast(`{id_col}` as {'bigint' if dtype == 'int64' else 'double'})")
            text = False
    if not text:
        return int(_action(lambda: inp.sdf.select(ids.alias("id")).agg(F.countDistinct("id")).first()[0],
                           f"counting the {inp.role}' ids"))
    distinct = inp.sdf.select(ids.alias("id")).where(F.col("id").isNotNull()).distinct()
    # a blank id (spaces only, invisible characters) is no dispute: its rows are rejected for a null id
    n_ids = int(_action(lambda: distinct.mapInArrow(non_blank_ids, "id string").count(),
                        f"counting the {inp.role}' ids"))
    # the ids that share their key with another: the local engine's judgement on them
    keyed = distinct.mapInArrow(twin_keys, "id string, key string")  # NFKC, which Spark's SQL lacks
    twins = (keyed.groupBy("key").agg(F.count("*").alias("n"), F.collect_list("id").alias("ids"))
             .where("n > 1").select(F.explode("ids").alias("id")))
    words = distinct.where(F.col("id").isin(list(NULL_WORDS[1:])))  # a CSV's NULL is missing already
    odd = _first_seen(inp, ids, twins.unionByName(words), F.col("id").rlike(SCIENTIFIC_ID))
    warn_odd_ids(odd, stacklevel=4)
    return n_ids


def _first_seen(inp: _Input, ids, candidates, scientific) -> pa.Array:
    """The ids of ``candidates`` (a Spark DataFrame of ``id``) and the first three ids that
    are ``scientific``, in the order the local engine meets them (file, then row), so that
    :func:`~riskmodel.data.warn_odd_ids` names the examples it names there. Bounded: each
    candidate's first row per file, and three rows per file."""
    from urllib.parse import unquote, urlsplit

    from pyspark.sql import Window
    from pyspark.sql import functions as F

    where = "_path" if "_path" in inp.sdf.columns else "_file"
    rows = inp.sdf.select(ids.alias("id"), F.col(where).cast("string").alias("where"), "_row")
    per_file = rows.where(F.col("id").isNotNull()).groupBy("id", "where").agg(F.min("_row").alias("row"))
    first = Window.partitionBy("where").orderBy("row")
    found = per_file.join(candidates.distinct(), "id").unionByName(
        per_file.where(scientific).withColumn("k", F.row_number().over(first)).where("k <= 3").drop("k"))
    table = _action(lambda: found.toArrow(), f"comparing the {inp.role}' ids")
    if not table.num_rows:
        return pa.array([], pa.large_string())
    order = table.to_pandas()
    if where == "_path":  # as split_rows numbers the files
        order["where"] = [inp.files.get(unquote(urlsplit(u).path), -1) for u in order["where"]]
    else:
        order["where"] = order["where"].astype("int64")
    # scientific ids past the first three are named by no example, and share no key with another
    order = order.sort_values(["where", "row"], kind="stable").drop_duplicates("id")
    return pa.array(order["id"].to_numpy(dtype=object), pa.large_string())


# ------------------------------------------------------------------------------------------
# the run


@dataclass
class Staged:
    """A Spark run's results, laid out on the driver's disk as the local engine's work folder."""

    work: Path
    n_chunks: int
    counts: dict
    description: str
    fingerprint: str | None
    entities: str | None
    resumed: bool
    now: pd.Timestamp


class SparkRun:
    """One :func:`~riskmodel.score_batch` on Spark: the session, the work folder at a URI
    next to ``out``, the stages, and the publication of the output."""

    def __init__(self, spark, out, tag: str, timings: dict):
        self.spark = spark
        self.timings = timings
        self.fs = HadoopFS(spark, str(out))
        self.out = self.fs.qualify(str(out))
        self.work = join(self.fs.parent(self.out), f".tmp-{self.fs.name(self.out)}-{tag}")
        self.staging = Path(tempfile.mkdtemp(prefix="riskmodel-spark-"))
        self._broadcast = None
        self._job: ChunkJob | None = None  # set by stage(), for the explain pass
        self._context = self._entities = False

    def close(self) -> None:
        if self._broadcast is not None:
            with contextlib.suppress(Exception):
                self._broadcast.unpersist()
        shutil.rmtree(self.staging, ignore_errors=True)
        self.fs.close()

    # -- the work folder -----------------------------------------------------------------

    def _path(self, *names: str) -> str:
        return join(self.work, *names)

    def _done(self, stage: str, i: int) -> bool:
        return self.fs.exists(self._path(stage, f"chunk={i}", "_SUCCESS"))

    def _seed(self):
        """One row of nulls: it makes a chunk's task run even when the chunk has no rows."""
        from pyspark.sql import functions as F

        return self.spark.range(1).select(*[F.lit(None).cast(t).alias(c) for c, t in
                                            zip(_BLOB_COLS, ("string", "string", "int", "binary"), strict=True)])

    def _blobs(self, *paths: str):
        return self.spark.read.parquet(*paths).select(*_BLOB_COLS)

    def _write(self, frame, uri: str, what: str, *, by: str | None = None) -> None:
        """Write a blob dataset (its rows hold compressed files already) as the job ``what``
        (the name the Spark UI shows)."""
        self.spark.sparkContext.setJobDescription(f"riskmodel score: {what}")
        writer = frame.write.mode("overwrite").option("compression", "uncompressed")
        (writer.partitionBy(by) if by else writer).parquet(uri)

    def existing_output(self) -> tuple[list[str] | str | None, str | None]:
        """What ``out`` holds, as :func:`~riskmodel.batch._job.check_out` reads it: the
        names in the folder, ``"a file"`` or ``None``; and the text of its manifest.json."""
        if not self.fs.exists(self.out):
            return None, None
        if not self.fs.is_dir(self.out):
            return "a file", None
        names = self.fs.list(self.out)
        manifest = join(self.out, "manifest.json")
        try:
            text = self.fs.read_bytes(manifest).decode("utf-8") if "manifest.json" in names else None
        except Exception:  # noqa: BLE001 - an unreadable manifest is no night's
            text = None
        return names, text

    def qualify(self, uri: str) -> str | None:
        """The full URI of ``uri`` on ``out``'s file system, or None if it is not on it."""
        try:
            return self.fs.qualify(uri)
        except Exception:  # noqa: BLE001 - another file system (Hadoop: Wrong FS), a table name, ...
            return None

    # -- stages --------------------------------------------------------------------------

    def stage(self, *, events, entities, predictor, as_of: pd.Timestamp, reasons: str, chunk_disputes: int,
              max_inactive, params: dict, now: pd.Timestamp, tiers: tuple | None = None) -> Staged:
        """Partition, prepare and score every chunk not done yet; returns the chunks'
        results in a local folder for the shared finalize."""
        from ...model import save_model_dir

        schema = predictor.model._schema()
        t0 = time.perf_counter()
        ev = _read_input(self.spark, self.fs, events, "events", list(schema.event_columns))
        en = None if entities is None else _read_input(self.spark, self.fs, entities, "entities",
                                                        entity_columns(schema))
        for inp in (ev, en):
            if inp is not None and inp.fingerprint is None:
                inp.fingerprint = _content_fingerprint(inp)
        _check_executors(self.spark)
        _log(f"inputs read, executors checked ({time.perf_counter() - t0:.1f}s)")
        state = {**params, "input": ev.fingerprint, "entities": None if en is None else en.fingerprint}
        resumed = False
        if self.fs.exists(self.work):
            try:
                old = self.fs.read_json(self._path("state.json"))
                old_now = pd.Timestamp(old.pop("now"))
            except Exception:  # noqa: BLE001 - an unreadable state is a stale one
                old = None
            if old == state:
                resumed, now = True, old_now
            else:
                self.fs.delete(self.work)
        state["now"] = str(now)
        if not resumed:
            self.fs.mkdirs(self.work)
            self.fs.write_json(self._path("state.json"), state)

        marker = self._path("partition.json")
        if self.fs.exists(marker):
            part = self.fs.read_json(marker)
        else:
            try:
                part = self._partition(ev, en, schema, chunk_disputes)
            except DataError:
                self.fs.delete(self.work)
                raise
            crash_point("batch.partition")
            self.fs.write_json(marker, part)
            _log(f"partitioned {part['disputes_counted']:,} disputes into {part['n_chunks']} chunks "
                 f"({time.perf_counter() - t0:.1f}s)")
        n_chunks = part["n_chunks"]
        self.timings["read"] = self.timings.get("read", 0.0) + time.perf_counter() - t0

        model_dir = save_model_dir(predictor.model, self.staging / "model")
        files = {p.name: p.read_bytes() for p in sorted(model_dir.iterdir())}
        self._broadcast = self.spark.sparkContext.broadcast(files)
        job = ChunkJob(schema=schema, n_chunks=n_chunks, now=now, as_of=as_of, reasons=reasons,
                       max_inactive=max_inactive, tiers=tiers,
                       events=RowFormat.from_json(part["events"], _spark_to_pandas),
                       entities=None if part["entities"] is None else
                       RowFormat.from_json(part["entities"], _spark_to_pandas),
                       model_files=self._broadcast,
                       model_meta=(predictor.model_name, predictor.model_version, predictor.run_id, predictor.uri),
                       clock=bool(predictor.model.features_.tz_aware_))

        self._job, self._entities = job, en is not None
        self._context = n_chunks > 1 and predictor.model.features_.context_need() is not None
        self._run_chunks("prepare", [i for i in range(n_chunks) if not self._done("prepared", i)],
                         functools.partial(self._prepare, job))
        self._run_chunks("score", [i for i in range(n_chunks) if not self._done("scores", i)],
                         functools.partial(self._score, job, self._context, self._entities))
        t1 = time.perf_counter()
        counts = {**self._download(n_chunks, en is not None),
                  "entities_unparseable_times": part.get("entities_unparseable_times", {})}
        _log(f"read the chunks' results ({time.perf_counter() - t1:.1f}s)")
        return Staged(work=self.staging, n_chunks=n_chunks, counts=counts, description=ev.description,
                      fingerprint=ev.fingerprint, entities=None if en is None else en.fingerprint,
                      resumed=resumed, now=now)

    def _partition(self, ev: _Input, en: _Input | None, schema, chunk_disputes: int) -> dict:
        """Type, count and hash every input row into its chunk's ``parts/chunk=<i>``."""
        formats = {}
        for inp in (ev, en):
            if inp is not None:
                text = schema.text_columns if inp.role == "events" else schema.entity_text_columns
                formats[inp.role] = _parquet_format(self.fs, inp) if inp.mode == "parquet" else \
                    _finish_format(inp, text)
        n_ids = _count_disputes(ev, formats["events"], schema.entity_col)
        if en is not None and en.mode != "frame" and not _action(lambda: en.sdf.take(1), "reading entities"):
            raise DataError("entities is empty (0 rows); there is nothing to work on.")
        n_chunks = max(1, math.ceil(n_ids / chunk_disputes))
        pieces, unparseable = [], {}
        for inp in (ev, en):
            if inp is None:
                continue
            id_col = schema.entity_col if inp.role == "events" else schema.entities_id
            if inp.mode == "frame":
                pieces.append(self._frame_parts(inp, id_col, n_chunks, schema, unparseable))
                continue
            split = functools.partial(split_rows, formats[inp.role], id_col, n_chunks, inp.role,
                                      inp.files if inp.files is not None else None)
            pieces.append(inp.sdf.mapInArrow(split, f"chunk int, {_BLOB_DDL}"))
        rows = pieces[0] if len(pieces) == 1 else pieces[0].unionByName(pieces[1])
        _action(lambda: self._write(rows, self._path("parts"), "partition the input", by="chunk"),
                "partitioning the input")
        return {"n_chunks": n_chunks, "disputes_counted": n_ids, "entities_unparseable_times": unparseable,
                "events": formats["events"].to_json(),
                "entities": None if en is None else formats["entities"].to_json()}

    def _frame_parts(self, inp: _Input, id_col: str, n_chunks: int, schema, unparseable: dict):
        """A pandas input, split on the driver (it is there already) into per-chunk Arrow IPC
        pieces with the frame's pandas dtypes (parquet would not keep them all: integer ids in
        a categorical with a missing one read back as float64), ``unparseable``: adds up the
        entities times that did not parse."""
        frame = inp.frame
        if inp.role == "entities":
            frame = validated_entities(frame, schema, unparseable)
        else:
            frame = frame[inp.columns]
        bucket = bucket_of(frame[id_col], n_chunks)
        rows = []
        for b in sorted(set(bucket.tolist())):
            try:
                piece = frame_bytes(frame[bucket == b].reset_index(drop=True))
            except Exception as exc:  # noqa: BLE001 - a column Arrow cannot hold
                raise DataError(f"the {inp.role} DataFrame cannot be shipped to Spark as Arrow: {exc}. Use "
                                "engine='local', or give the columns one type each.") from exc
            for batch in blob_batches(inp.role, piece, chunk=pa.scalar(b, pa.int32())):
                rows.append(batch.to_pandas())
        blobs = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
            {"chunk": pd.Series(dtype="int32"), **{c: pd.Series(dtype=object) for c in _BLOB_COLS}})
        return self.spark.createDataFrame(blobs, f"chunk int, {_BLOB_DDL}")

    def _prepare(self, job: ChunkJob, i: int) -> None:
        src = self._path("parts", f"chunk={i}")
        rows = self._seed()
        if self.fs.exists(src):
            rows = self._blobs(src).unionByName(rows)
        out = rows.coalesce(1).mapInArrow(functools.partial(prepare_rows, job, i), f"kind string, {_BLOB_DDL}")
        self._write(out, self._path("prepared", f"chunk={i}"), f"prepare chunk {i + 1} of {job.n_chunks}", by="kind")

    def _chunk_inputs(self, job: ChunkJob, context: bool, entities: bool, i: int):
        """Chunk ``i``'s clean events and entities rows, and every chunk's summary rows when
        the model reads other disputes: what its score and explain tasks read."""
        own = self._path("prepared", f"chunk={i}")
        paths = [join(own, "kind=clean")] + ([join(own, "kind=entities")] if entities else [])
        if context:
            paths += [self._path("prepared", f"chunk={j}", "kind=summary") for j in range(job.n_chunks)]
        return self._blobs(*paths).unionByName(self._seed())

    def _score(self, job: ChunkJob, context: bool, entities: bool, i: int) -> None:
        rows = self._chunk_inputs(job, context, entities, i)
        out = rows.coalesce(1).mapInArrow(functools.partial(score_rows, job, i), _BLOB_DDL)
        self._write(out, self._path("scores", f"chunk={i}"), f"score chunk {i + 1} of {job.n_chunks}")

    def explain(self, wanted: dict) -> pd.DataFrame:
        """The night's second explain pass (see the job's ``_night_tiers``): the reasons of
        the disputes ``wanted[i]`` of each chunk ``i``, computed on the executors from the
        chunk's prepared files; only those rows reach the driver."""
        import io

        job = self._job

        def run_one(i: int) -> pd.DataFrame:
            rows = self._chunk_inputs(job, self._context, self._entities, i)
            task = functools.partial(explain_rows, job, i, wanted[i])
            self.spark.sparkContext.setJobDescription(f"riskmodel score: explain chunk {i + 1} of {job.n_chunks}")
            table = rows.coalesce(1).mapInArrow(task, _BLOB_DDL).toArrow()
            return pd.read_parquet(io.BytesIO(gather_blobs(table.to_batches())[f"explain-{i:05d}.parquet"][0]))

        found = self._run_chunks("explain", sorted(wanted), run_one)
        return pd.concat([found[i] for i in sorted(wanted)], ignore_index=True)

    def _run_chunks(self, stage: str, pending: list[int], run_one) -> dict:
        """One Spark job per pending chunk, as many at once as the cluster has cores;
        returns each chunk's result. After each chunk of the prepare and score stages, the
        local engine's crash point (``batch.prepare`` / ``batch.score``)."""
        if not pending:
            return {}
        results = {}
        sc = self.spark.sparkContext
        width = max(1, min(len(pending), sc.defaultParallelism))
        t0, errors = time.perf_counter(), []
        with ThreadPoolExecutor(width, thread_name_prefix=f"riskmodel-{stage}") as pool:
            futures = {pool.submit(run_one, i): i for i in pending}
            for k, future in enumerate(as_completed(futures), start=1):
                try:
                    results[futures[future]] = future.result()
                except Exception as exc:  # noqa: BLE001 - the first failure stops the others
                    if not errors:
                        sc.cancelAllJobs()
                    errors.append(exc)
                    continue
                _log(f"{stage} chunk {futures[future] + 1} done ({k}/{len(pending)}, "
                     f"{time.perf_counter() - t0:.1f}s)")
                if stage in ("prepare", "score") and not errors:
                    crash_point(f"batch.{stage}")
        if errors:
            doing = {"prepare": "preparing", "score": "scoring", "explain": "explaining"}[stage]
            translated = _translate(errors[0], f"{doing} chunks")
            if translated is errors[0]:
                raise errors[0]
            raise translated from errors[0]
        return results

    def _download(self, n_chunks: int, entities: bool) -> dict:
        """The chunks' entities rows, rejects, not-scored rows, scores and markers, into the
        local folder (the local engine's layout); returns the input's row and dispute counts."""
        paths = []
        for i in range(n_chunks):
            own = self._path("prepared", f"chunk={i}")
            paths += [join(own, "kind=rejects"), join(own, "kind=chunk"), self._path("scores", f"chunk={i}")]
            paths += [join(own, "kind=entities")] if entities else []
        table = _action(lambda: self._blobs(*paths).toArrow(), "reading the chunks' results")
        for sub in ("parts", "prepared", "scores"):
            (self.staging / sub).mkdir(exist_ok=True)
        for name, data in gather_blobs(table.to_batches()).items():
            (self.staging / name).write_bytes(data[0])
        markers = [json.loads((self.staging / "prepared" / f"chunk-{i:05d}.done").read_text(encoding="utf-8"))
                   for i in range(n_chunks)]
        return {"rows": sum(m["rows"] for m in markers), "disputes": sum(m["disputes"] for m in markers),
                "n_chunks": n_chunks}

    def set_aside(self, final: Path) -> str:
        """Copy the finished output to ``<work>/final`` and return that URI."""
        target = self._path("final")
        self.fs.delete(target)
        self.fs.upload(final, target)
        return target

    def publish(self, final: Path) -> None:
        """Copy the finished output to ``<work>/final`` (:meth:`set_aside`), rename it onto
        ``out`` (an existing ``out`` is moved aside first, then deleted, with any left aside
        by a run killed between the two renames) and delete the work folder: the local
        engine's renames and crash points, on ``out``'s file system."""
        target = self.set_aside(final)
        parent, name = self.fs.parent(self.out), self.fs.name(self.out)
        if self.fs.exists(self.out):
            aside = join(parent, f".old-{name}-{os.getpid()}")
            self.fs.delete(aside)
            self.fs.rename(self.out, aside)
        crash_point("batch.rename")
        self.fs.rename(target, self.out)
        for old in self.fs.list(parent):
            if old.startswith(f".old-{name}-"):
                self.fs.delete(join(parent, old))
        crash_point("batch.cleanup")
        self.fs.delete(self.work)


@contextlib.contextmanager
def spark_run(*, out, tag: str, master: str | None, events, timings: dict):
    """A :class:`SparkRun` in a Spark session (see :func:`_session`; a Spark DataFrame
    input brings its own); ``timings["spark_session"]`` gets the time to start it."""
    t0 = time.perf_counter()
    session = events.sparkSession if _is_spark_frame(events) else None
    with warnings.catch_warnings(), _session(master, session) as spark:
        # our outputs are checked against the local engine's; pyspark's blanket notice is noise
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas",
                                category=FutureWarning)
        timings["spark_session"] = timings.get("spark_session", 0.0) + time.perf_counter() - t0
        run = SparkRun(spark, out, tag, timings)
        try:
            yield run
        finally:
            run.close()

