"""The run's work folder on a POSIX path: the atomic writers and done marker (a unique
temporary name, then a rename: a retried or speculative task may write the same chunk),
and readers of the chunks' parts.

Outputs are parquet. Scratch files that the run itself reads back (a chunk's input rows
and clean events) are Arrow IPC streams with LZ4 frames: written and read in a third of
parquet's time (measured on a 2.1M-row clean chunk: 0.36 s + 0.14 s against 0.86 s +
0.44 s), at 1.5x its size on disk. Streams, not IPC files: batches of a categorical column
from several input files carry their own dictionaries, which only a stream may replace."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .._faults import crash_point

__all__ = ["SCRATCH_OPTIONS", "chunk_entities", "mark_done", "read_arrow", "read_parts", "write_arrow", "write_parquet"]

#: how scratch files are written (see the module docstring)
SCRATCH_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def _atomic(path: Path, write) -> None:
    """``write(tmp)`` to a unique temporary name beside ``path``, then rename it to ``path``."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    write(tmp)
    crash_point("batch.write")
    os.replace(tmp, path)


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    _atomic(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_arrow(frame: pd.DataFrame, path: Path) -> None:
    """Write a scratch frame as an Arrow IPC stream (:data:`SCRATCH_OPTIONS`), atomically."""
    table = pa.Table.from_pandas(frame, preserve_index=False)

    def write(tmp: Path) -> None:
        with pa.ipc.new_stream(str(tmp), table.schema, options=SCRATCH_OPTIONS) as writer:
            writer.write_table(table)

    _atomic(path, write)


def read_arrow(path: Path) -> pd.DataFrame:
    """A scratch file (:func:`write_arrow`, or the partition's buckets) as a frame, with the
    dtypes it was written with (as parquet would give them back)."""
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_stream(source).read_all().to_pandas()


def mark_done(path: Path, info: dict | None = None) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    tmp.write_text(json.dumps(info or {}), encoding="utf-8")
    os.replace(tmp, path)


def read_parts(paths: list[Path], columns: list[str] | None = None) -> pd.DataFrame | None:
    frames = [pd.read_parquet(p, columns=columns) for p in paths if p.exists()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def chunk_entities(work: Path, i: int) -> pd.DataFrame | None:
    """The validated entities rows of chunk ``i`` (``None`` for a run without entities; a
    table with no rows when none of the chunk's disputes has one)."""
    path = work / "parts" / f"entities-{i:05d}.parquet"
    return pd.read_parquet(path) if path.exists() else None
