"""The Spark engine's code that runs on the executors: Arrow record batches in, Arrow
record batches out, and no storage access of its own.

Spark's readers hand a task its rows; the task turns them into the frame the local engine
reads for the same input (:class:`RowFormat`), runs the shared per-chunk task
(:func:`~riskmodel.batch._tasks.prepare_task` / :func:`~riskmodel.batch._tasks.score_task`)
in a scratch folder on the executor's local disk, and hands the files the task wrote back
to Spark as *blob rows* (``name``, ``blob``, ``slice``, ``data``: a file's bytes, cut into
slices Arrow and Spark carry comfortably), which Spark's writer stores in the work folder
at any URI. So the executors need no client for the storage, and the work folder holds
byte-identical copies of the files the local engine writes.

The model arrives as the files of its safe artifact (LightGBM text and JSON, in a Spark
broadcast), never as a pickle of the model; :func:`check_library` refuses to run under
another riskmodel version than the driver's.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..._errors import ConfigError, DataWarning
from ..._faults import DIE_AT_ENV
from ..._version import VERSION
from ...data import EXPORT_NULLS, blank_mask, twin_key
from .._core import bucket_of, context_store
from .._files import write_parquet
from .._inputs import validated_entities
from .._tasks import explain_task, prepare_task, release_unused_memory, score_task

__all__ = ["BLOB_SCHEMA", "ChunkJob", "RowFormat", "blob_batches", "bytes_frame", "check_library", "explain_rows",
           "frame_bytes", "gather_blobs", "prepare_rows", "score_rows", "split_rows", "twin_keys"]

#: The columns every work-folder dataset holds (plus the partition columns Spark adds).
BLOB_SCHEMA = pa.schema([("name", pa.string()), ("blob", pa.string()), ("slice", pa.int32()),
                         ("data", pa.binary())])
#: Slice size: a file's bytes travel as rows of at most this many bytes.
SLICE_BYTES = 16 << 20
#: The columns that carry the input order (file number, row number) of each event.
ORDER_COLS = ("_file", "_row")


# ------------------------------------------------------------------------------------------
# blobs


def blob_batches(name: str, data: bytes, **partition: pa.Scalar) -> Iterator[pa.RecordBatch]:
    """The rows carrying ``data`` under ``name`` (one record batch per slice); ``partition``
    adds constant columns in front (e.g. ``chunk=pa.scalar(3, pa.int32())``), the columns
    Spark's ``partitionBy`` turns into folders."""
    blob = uuid.uuid4().hex
    for k, start in enumerate(range(0, max(len(data), 1), SLICE_BYTES)):
        columns = {key: pa.array([value.as_py()], value.type) for key, value in partition.items()}
        columns.update(name=pa.array([name], pa.string()), blob=pa.array([blob], pa.string()),
                       slice=pa.array([k], pa.int32()), data=pa.array([data[start:start + SLICE_BYTES]], pa.binary()))
        yield pa.RecordBatch.from_pydict(columns)


def gather_blobs(batches: Iterable[pa.RecordBatch]) -> dict[str, list[bytes]]:
    """``name`` -> the whole blobs of that name, each joined from its slices."""
    slices: dict[tuple[str, str], dict[int, bytes]] = {}
    for batch in batches:
        if batch.num_rows == 0 or "data" not in batch.schema.names:
            continue
        names, blobs = batch.column("name").to_pylist(), batch.column("blob").to_pylist()
        for name, blob, k, data in zip(names, blobs, batch.column("slice").to_pylist(),
                                       batch.column("data").to_pylist(), strict=True):
            if name is not None:  # the seed row that makes an empty chunk run its task
                slices.setdefault((name, blob), {})[k] = data
    out: dict[str, list[bytes]] = {}
    for (name, _blob), parts in sorted(slices.items()):
        out.setdefault(name, []).append(b"".join(parts[k] for k in sorted(parts)))
    return out


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def frame_bytes(frame: pd.DataFrame) -> bytes:
    """A pandas frame as Arrow IPC bytes that :func:`bytes_frame` reads back with its dtypes
    (categoricals of any categories, nullable integers, time zones: the pandas metadata)."""
    return _ipc_bytes(pa.Table.from_pandas(frame, preserve_index=False))


def bytes_frame(data: bytes) -> pd.DataFrame:
    """The frame :func:`frame_bytes` wrote."""
    return pa.ipc.open_stream(pa.BufferReader(data)).read_all().to_pandas()


def _ipc_table(blobs: list[bytes]) -> pa.Table | None:
    tables = [pa.ipc.open_stream(pa.BufferReader(b)).read_all() for b in blobs]
    return pa.concat_tables(tables, promote_options="permissive") if tables else None


def _file_blobs(work: Path, folders: Iterable[str], i: int, *, by_kind: bool) -> Iterator[pa.RecordBatch]:
    """Every file the task wrote under ``work/<folder>``, as blob rows named by their path
    relative to ``work``; ``by_kind`` adds the ``kind`` column (``clean``, ``summary``,
    ``entities``, ...: the file name before the chunk number) the prepare stage's dataset
    is partitioned by, so that a later task reads only the kinds it needs."""
    for folder in folders:
        for path in sorted((work / folder).glob(f"*-{i:05d}.*")):
            kind = {"kind": pa.scalar(path.name.rsplit("-", 1)[0], pa.string())} if by_kind else {}
            yield from blob_batches(f"{folder}/{path.name}", path.read_bytes(), **kind)


class _Scratch:
    """A scratch work folder on the executor's local disk (Spark's local dirs), laid out
    like the local engine's work folder."""

    def __enter__(self) -> Path:
        local = (os.environ.get("SPARK_LOCAL_DIRS") or "").split(",")[0] or None
        self._dir = tempfile.TemporaryDirectory(prefix="riskmodel-chunk-", dir=local)
        work = Path(self._dir.name)
        for sub in ("parts", "prepared", "scores"):
            (work / sub).mkdir()
        return work

    def __exit__(self, *exc):
        self._dir.cleanup()


# ------------------------------------------------------------------------------------------
# from Spark's rows to the local engine's frame


@dataclass(frozen=True)
class RowFormat:
    """How the rows Spark gives a task become the frame the local engine reads for the
    same input, so that both engines hash, validate and reject exactly the same values.

    Attributes
    ----------
    mode : {"parquet", "csv", "spark", "frame"}
        ``parquet``: files pyarrow would read; Spark's column types are cast to the Arrow
        types pyarrow reads from the files (``arrow_schema``). ``csv``: Spark reads every
        column as a string; pandas parses them with the dtypes pandas' whole-file
        ``read_csv`` gives (``csv_dtypes``, voted on the executors). ``spark``: a catalog
        table or a Spark DataFrame, converted as ``DataFrame.toPandas`` converts it
        (``spark_schema``; integer and boolean columns with a null anywhere, ``with_nulls``,
        take the dtype they have in the whole frame). ``frame``: a pandas DataFrame, split
        on the driver and carried as parquet files.
    columns : tuple of str
        The columns the job reads, in order.
    """

    mode: str
    columns: tuple[str, ...]
    arrow_schema: bytes | None = None
    keep_metadata: bool = False
    csv_dtypes: tuple[tuple[str, str], ...] = ()
    spark_schema: str | None = None
    timezone: str = "UTC"
    with_nulls: tuple[str, ...] = ()
    to_pandas: object = field(default=None, compare=False)  # spark mode: the toPandas converter

    def to_json(self) -> dict:
        out = {"mode": self.mode, "columns": list(self.columns), "keep_metadata": self.keep_metadata,
               "csv_dtypes": [list(p) for p in self.csv_dtypes], "spark_schema": self.spark_schema,
               "timezone": self.timezone, "with_nulls": list(self.with_nulls)}
        if self.arrow_schema is not None:
            out["arrow_schema"] = self.arrow_schema.hex()
        return out

    @classmethod
    def from_json(cls, data: dict, to_pandas=None) -> RowFormat:
        schema = bytes.fromhex(data["arrow_schema"]) if data.get("arrow_schema") else None
        return cls(mode=data["mode"], columns=tuple(data["columns"]), arrow_schema=schema,
                   keep_metadata=data["keep_metadata"], csv_dtypes=tuple(tuple(p) for p in data["csv_dtypes"]),
                   spark_schema=data["spark_schema"], timezone=data["timezone"],
                   with_nulls=tuple(data["with_nulls"]), to_pandas=to_pandas)

    def _target(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.BufferReader(self.arrow_schema))

    def frame(self, table: pa.Table | None) -> pd.DataFrame:
        """The frame of ``table`` (Spark's rows, in input order; ``None``: no rows)."""
        cols = list(self.columns)
        if table is None:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        if self.mode == "parquet":
            target = self._target()
            plain = pa.schema([target.field(c) for c in cols])
            cast = pa.table([table.column(c).cast(plain.field(c).type) for c in cols], schema=plain)
            if self.keep_metadata:
                cast = cast.replace_schema_metadata(target.metadata)
            return cast.to_pandas()
        if self.mode == "csv":
            # the strings Spark read, parsed again by pandas with the whole file's dtypes
            text = table.select(cols).to_pandas().to_csv(index=False)
            return pd.read_csv(io.StringIO(text), dtype=dict(self.csv_dtypes), na_values=EXPORT_NULLS)
        if self.mode == "spark":
            return self._spark_frame(table.select(cols))
        raise ValueError(f"no frame of rows in mode {self.mode!r}")  # pragma: no cover

    def _spark_frame(self, table: pa.Table) -> pd.DataFrame:
        frame = self.to_pandas(table, self.spark_schema, self.timezone)
        for c in self.with_nulls:  # the dtype a column with a null anywhere has in the whole frame
            if c in frame.columns:
                frame[c] = frame[c].astype(object if frame[c].dtype == bool else "float64")
        return frame

    def ids(self, column: pa.Array | pa.ChunkedArray, name: str):
        """The ids of ``column`` as the local engine hashes them into chunks."""
        if self.mode == "parquet":
            return column.cast(self._target().field(name).type)
        if self.mode == "csv":
            text = pa.table({name: column}).to_pandas().to_csv(index=False)
            # one value a line: a line of spaces or an empty one is an id (blank: missing), not a line to skip
            ids = pd.read_csv(io.StringIO(text), dtype={name: dict(self.csv_dtypes)[name]}, na_values=EXPORT_NULLS,
                              skip_blank_lines=False)[name]
            if len(ids) != len(column):  # each row's chunk comes from its id: never shift them
                raise RuntimeError(f"{len(column)} ids of {name!r} read back as {len(ids)}")
            return ids
        return self._spark_frame(pa.table({name: column}))[name]


# ------------------------------------------------------------------------------------------
# ids judged on the executors

def twin_keys(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executors: each distinct string id (``id``) with the key the local engine compares ids
    by (:func:`~riskmodel.data.twin_key`: NFKC, trimmed, upper case...), which Spark's SQL
    functions cannot compute (no NFKC; Java's case and space rules are not Arrow's). Ids
    sharing a key are the candidate twins the driver then judges with
    :func:`~riskmodel.data.warn_odd_ids` itself."""
    for batch in batches:
        ids = batch.column(0)
        yield pa.RecordBatch.from_arrays([ids, twin_key(ids)], names=["id", "key"])


def non_blank_ids(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executors: the string ids (``id``) that are not blank (spaces only, empty, invisible
    characters: :func:`~riskmodel.data.blank_mask`): a blank id is no dispute, its rows are
    rejected for a null id, as the local engine counts them."""
    for batch in batches:
        yield batch.filter(pa.array(~blank_mask(batch.column(0))))


# ------------------------------------------------------------------------------------------
# the job the tasks share


@dataclass(frozen=True)
class ChunkJob:
    """What every task of a run needs: small, picklable, no session and no path."""

    schema: object
    n_chunks: int
    now: pd.Timestamp
    as_of: pd.Timestamp
    reasons: str
    max_inactive: str | None
    events: RowFormat
    entities: RowFormat | None
    model_files: object  # a Spark broadcast of {file name: bytes} (the artifact)
    model_meta: tuple[str, str, str, str]
    clock: bool | None = None  # the model's timezone convention: times in the other one are rejected rows
    tiers: tuple | None = None  # the night's ranking (policy, area column), see score_chunk
    version: str = VERSION


def _on_executor(job: ChunkJob) -> None:
    """What every task does first: refuse another riskmodel than the driver's, and leave
    the crash points (:mod:`riskmodel._faults`) to the driver: they name moments of the
    driver's run, and a Python worker of a local master inherits the driver's environment."""
    os.environ.pop(DIE_AT_ENV, None)
    check_library(job.version)


def check_library(expected: str) -> None:
    """Refuse to run chunks under another riskmodel than the driver's."""
    if VERSION != expected:
        raise ConfigError(f"riskmodel {VERSION} on this executor, {expected} on the driver: install the "
                          "driver's version on the executors (see docs/batch.md, 'Running on a cluster').")


_MODEL_CACHE: dict[str, object] = {}


def task_cpus() -> int:
    """The cores Spark gives this task (``spark.task.cpus``, default 1); 1 outside a task."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return max(1, int(context.cpus())) if context is not None else 1


def _predictor(job: ChunkJob):
    """The model, rebuilt once per Python worker from its artifact's files. It predicts on
    the task's cores (:func:`task_cpus`, read for each task: a stage's resource profile
    may give its tasks other cores than the last stage's): an executor runs a task per core
    at once, and each taking LightGBM's default of every core it sees would put several
    threads on each core (in a container, every core of the host)."""
    from ...lifecycle import Predictor
    from ...model import load_model_dir

    files = job.model_files.value
    key = "|".join(f"{name}:{len(data)}:{hash(data)}" for name, data in sorted(files.items()))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        with tempfile.TemporaryDirectory(prefix="riskmodel-model-") as folder:
            for name, data in files.items():
                (Path(folder) / name).write_bytes(data)
            name, version, run_id, uri = job.model_meta
            model = load_model_dir(folder)
            _MODEL_CACHE[key] = Predictor(model, model_name=name, model_version=version, run_id=run_id, uri=uri)
    predictor = _MODEL_CACHE[key]
    predictor.model.set_params(lgbm_params={"num_threads": task_cpus()})
    return predictor


# ------------------------------------------------------------------------------------------
# the three kinds of task


def split_rows(fmt: RowFormat, id_col: str, n_chunks: int, name: str, files: dict[str, int] | None,
               batches: Iterable[pa.RecordBatch], *, piece_rows: int = 1_000_000) -> Iterator[pa.RecordBatch]:
    """Partition: the rows of one Spark partition, cut by chunk (the local engine's hash of
    the id), as blob rows ``(chunk, name, blob, slice, data)`` holding Arrow IPC pieces.

    ``files`` numbers the input files (``_path``, from Spark's file metadata, becomes
    ``_file``), so that a chunk's rows can be put back into the input's order.
    """
    from urllib.parse import unquote, urlsplit

    pending: dict[int, list[pa.RecordBatch]] = {}
    flush_at = max(10_000, piece_rows // max(n_chunks, 1))

    def flush(b: int) -> Iterator[pa.RecordBatch]:
        table = pa.Table.from_batches(pending.pop(b))
        yield from blob_batches(name, _ipc_bytes(table), chunk=pa.scalar(b, pa.int32()))

    for batch in batches:
        if batch.num_rows == 0:
            continue
        if files is not None:
            paths = batch.column("_path").to_pandas()
            codes, uniques = pd.factorize(paths)
            known = np.array([files.get(unquote(urlsplit(u).path), -1) for u in uniques], dtype=np.int64)
            batch = pa.RecordBatch.from_arrays(
                [*(batch.column(c) for c in batch.schema.names if c != "_path"), pa.array(known[codes])],
                names=[*(c for c in batch.schema.names if c != "_path"), "_file"])
        bucket = bucket_of(fmt.ids(batch.column(id_col), id_col), n_chunks)
        order = np.argsort(bucket, kind="stable")
        sorted_b = bucket[order]
        bounds = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
            b = int(sorted_b[lo])
            pending.setdefault(b, []).append(batch.take(pa.array(order[lo:hi])))
            if sum(p.num_rows for p in pending[b]) >= flush_at:
                yield from flush(b)
    for b in sorted(pending):
        yield from flush(b)


def _ordered(table: pa.Table | None) -> pa.Table | None:
    if table is None:
        return None
    return table.sort_by([(c, "ascending") for c in ORDER_COLS]).drop_columns(list(ORDER_COLS))


def _entities_frame(job: ChunkJob, blobs: dict[str, list[bytes]], unparseable: dict) -> pd.DataFrame:
    """The chunk's validated entities rows (``unparseable``: adds up its times that did not parse)."""
    import warnings

    from ...data import validate_entities

    fmt = job.entities
    if fmt.mode == "frame":  # validated whole on the driver, like the local engine does
        return bytes_frame(blobs["entities"][0])
    raw = fmt.frame(_ordered(_ipc_table(blobs.get("entities", []))))
    if len(raw):
        return validated_entities(raw, job.schema, unparseable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return validate_entities(raw, job.schema, allow_empty=True)


def prepare_rows(job: ChunkJob, i: int, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Prepare chunk ``i`` from its partition rows: the local engine's raw chunk frame and
    entities rows, :func:`prepare_task`, and its files as blob rows (``parts/entities-<i>``,
    ``prepared/clean-<i>``, ``rejects``, ``summary`` and the ``chunk-<i>.done`` marker,
    which also records the chunk's distinct disputes)."""
    t0 = time.perf_counter()
    _on_executor(job)
    blobs = gather_blobs(batches)
    if job.events.mode == "frame":
        pieces = blobs.get("events", [])
        raw = bytes_frame(pieces[0]) if pieces else job.events.frame(None)
    else:
        raw = job.events.frame(_ordered(_ipc_table(blobs.get("events", []))))
    unparseable: dict[str, int] = {}
    ents = None if job.entities is None else _entities_frame(job, blobs, unparseable)
    del blobs
    with _Scratch() as work:
        if ents is not None:
            write_parquet(ents, work / "parts" / f"entities-{i:05d}.parquet")
        prepare_task(work, i, raw, job.schema, job.now, t_read=time.perf_counter() - t0, clock=job.clock)
        marker = work / "prepared" / f"chunk-{i:05d}.done"
        info = json.loads(marker.read_text(encoding="utf-8"))
        info["entities_unparseable_times"] = unparseable
        marker.write_text(json.dumps(info), encoding="utf-8")
        del raw, ents
        release_unused_memory()
        yield from _file_blobs(work, ("parts", "prepared"), i, by_kind=True)


def score_rows(job: ChunkJob, i: int, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Score chunk ``i`` from its prepared files (its clean events and entities rows, and
    every chunk's summary rows when the model reads other disputes): :func:`score_task`,
    and its ``scores``, ``not_scored`` and marker files as blob rows."""
    _on_executor(job)
    with _Scratch() as work:
        predictor = _unpack(job, work, batches)
        score_task(work, i, predictor, job.as_of, reasons=job.reasons, max_inactive=job.max_inactive,
                   tiers=job.tiers, context_for=_context_for(job, work, predictor))
        release_unused_memory()
        yield from _file_blobs(work, ("scores",), i, by_kind=False)


def explain_rows(job: ChunkJob, i: int, ids, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The night's second explain pass for chunk ``i``: the reasons of its disputes ``ids``
    (:func:`explain_task`) from the same files :func:`score_rows` reads, as one blob
    ``explain-<i>.parquet``."""
    _on_executor(job)
    with _Scratch() as work:
        predictor = _unpack(job, work, batches)
        reasons = explain_task(work, i, predictor, job.as_of, ids, context_for=_context_for(job, work, predictor))
        buf = io.BytesIO()
        reasons.to_parquet(buf, index=False)
        del reasons
        release_unused_memory()
        yield from blob_batches(f"explain-{i:05d}.parquet", buf.getvalue())


def _unpack(job: ChunkJob, work: Path, batches: Iterable[pa.RecordBatch]):
    """Write a task's blob rows as files into its scratch ``work``; returns the model."""
    for name, data in gather_blobs(batches).items():
        (work / name).write_bytes(data[0])
    return _predictor(job)


def _context_for(job: ChunkJob, work: Path, predictor):
    """The chunk's context rows from the summary files in ``work`` (built for one chunk,
    then freed: a task scores one chunk)."""
    def context_for(j: int, clean: pd.DataFrame):
        store = context_store(work / "prepared", job.n_chunks, predictor.model, job.as_of) if len(clean) else None
        context = None if store is None else store.for_chunk(j)
        del store
        release_unused_memory()
        return context

    return context_for
