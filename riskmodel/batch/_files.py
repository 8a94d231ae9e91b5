"""The run's work folder on a POSIX path: the one atomic parquet writer and done marker
(a unique temporary name, then a rename: a retried or speculative task may write the same
chunk), and readers of the chunks' parts."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pandas as pd

from .._faults import crash_point

__all__ = ["chunk_entities", "mark_done", "read_parts", "write_parquet"]


def write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    frame.to_parquet(tmp, index=False)
    crash_point("batch.write")
    os.replace(tmp, path)


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
