"""One chunk's task, as both engines run it: read the chunk's files, run the per-chunk
core, write its outputs and then its ``.done`` marker (what resume relies on); plus the
progress display and the memory hand-back between chunks."""

from __future__ import annotations

import ctypes
import gc
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..data import blank_mask, outcome_twins
from ._core import explain_chunk, isin, prepare_chunk, score_chunk, usable_entities
from ._files import chunk_entities, mark_done, read_arrow, write_arrow, write_parquet

__all__ = ["Progress", "explain_task", "pending_chunks", "prepare_task", "release_unused_memory", "score_task"]


class Progress:
    """A tqdm bar with ETA on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.rows = total, desc, 0, 0
        self.t0 = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="chunk", file=sys.stderr)
            except ImportError:  # pragma: no cover - tqdm is optional
                self.bar = None

    def update(self, rows: int, resumed: bool = False) -> None:
        self.done += 1
        self.rows += rows
        if self.bar is not None:
            self.bar.set_postfix(rows=f"{self.rows:,}")
            self.bar.update(1)
            return
        rate = self.rows / max(time.perf_counter() - self.t0, 1e-9)
        note = " (resumed)" if resumed else ""
        print(f"[riskmodel score] {self.desc} chunk {self.done}/{self.total}: {rows:,} rows{note}, "
              f"{rate:,.0f} rows/s", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def release_unused_memory() -> None:
    """Hand the memory the allocators keep cached after a chunk back to the system.

    Arrow's pool (mimalloc or jemalloc) holds freed blocks for reuse, which NumPy and pandas
    cannot use, and glibc's ``malloc`` keeps freed pages of its heap: without this, the
    transient buffers of one chunk (or of indexing the run's summary rows) would stay in
    the resident set under the next chunk's peak.
    """
    gc.collect()
    pa.default_memory_pool().release_unused()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # pragma: no cover - not glibc (e.g. musl)
            pass


def pending_chunks(folder: Path, n_chunks: int, progress: Progress):
    """(chunk number, its marker path) for the chunks of a stage not done yet (resume)."""
    for i in range(n_chunks):
        marker = folder / f"chunk-{i:05d}.done"
        if marker.exists():
            progress.update(0, resumed=True)
            continue
        yield i, marker


def prepare_task(work: Path, i: int, raw: pd.DataFrame, schema, now: pd.Timestamp, *, t_read: float = 0.0,
                 clock: bool | None = None) -> int:
    """Validate chunk ``i`` (its raw rows ``raw``); write clean events, row rejects, summary
    rows and the marker (with the chunk's disputes (blank ids are none) and rejected disputes, and its raw, clean and
    dropped duplicate rows for the manifest's counts). Returns the number of raw rows."""
    ent = schema.entity_col
    prep = Path(work) / "prepared"
    t1 = time.perf_counter()
    entities, set_aside = usable_entities(chunk_entities(Path(work), i), schema)
    clean, rejects, summary, n_dup = prepare_chunk(raw, schema, now, entities, clock,
                                                   conflicting=set_aside["conflicting"])
    t2 = time.perf_counter()
    raw_ids = pd.unique(raw[ent].dropna())
    raw_ids = raw_ids[~blank_mask(raw_ids)]  # spaces only: no id, so no dispute
    n_rej = int((~isin(raw_ids, clean[ent])).sum())
    # disputes the entities table lists and the events never name: in no output, so counted here
    no_events = 0 if entities is None else int((~isin(entities[schema.entities_id], raw_ids)).sum())
    no_events += int((~isin(set_aside["conflicting"], raw_ids)).sum()) if len(set_aside["conflicting"]) else 0
    write_arrow(clean, prep / f"clean-{i:05d}.arrow")  # scratch: read back by the score task
    write_parquet(rejects, prep / f"rejects-{i:05d}.parquet")
    write_parquet(summary, prep / f"summary-{i:05d}.parquet")
    t3 = time.perf_counter()
    mark_done(prep / f"chunk-{i:05d}.done", {"disputes": len(raw_ids), "disputes_rejected": n_rej, "rows": len(raw),
                                             "entities_without_events": no_events,
                                             "entities_without_id": set_aside["without_id"],
                                             "entities_duplicates_dropped": set_aside["duplicates"],
                                             "entities_conflicting_ids": len(set_aside["conflicting"]),
                                             "clean_rows": len(clean), "duplicates_dropped": n_dup,
                                             # kinds written as an outcome kind but for letter case (not escalations)
                                             "outcome_kind_twins": outcome_twins(pd.unique(clean[schema.kind_col]),
                                                                                 schema.outcome_kinds),
                                             "timings": {"read": t_read, "validate": t2 - t1, "write": t3 - t2}})
    return len(raw)


def score_task(work: Path, i: int, predictor, as_of: pd.Timestamp, *, reasons: str, max_inactive,
               context_for, tiers: tuple | None = None) -> int:
    """Score chunk ``i``; write scores, not-scored and the marker. ``context_for(i, clean)``
    gives the context rows the chunk's cross-dispute features read (or ``None``). Returns
    the number of clean rows."""
    prep, score_dir = Path(work) / "prepared", Path(work) / "scores"
    t0 = time.perf_counter()
    clean = read_arrow(prep / f"clean-{i:05d}.arrow")
    context = context_for(i, clean)
    entities = usable_entities(chunk_entities(Path(work), i), predictor.model._schema())[0]
    t1 = time.perf_counter()
    scores, not_scored, chunk_t = score_chunk(clean, context, predictor, as_of, entities=entities,
                                              reasons=reasons, max_inactive=max_inactive, tiers=tiers)
    t2 = time.perf_counter()
    write_parquet(scores, score_dir / f"scores-{i:05d}.parquet")
    write_parquet(not_scored, score_dir / f"not_scored-{i:05d}.parquet")
    chunk_t["read"] += t1 - t0
    chunk_t["write"] += time.perf_counter() - t2
    mark_done(score_dir / f"chunk-{i:05d}.done", {"scored": len(scores), "rows": len(clean), "timings": chunk_t,
                                                  "monitoring": scores.attrs.get("monitoring")})
    return len(clean)


def explain_task(work: Path, i: int, predictor, as_of: pd.Timestamp, ids, *, context_for) -> pd.DataFrame:
    """Reasons of the open disputes ``ids`` of chunk ``i`` (see :func:`explain_chunk`)."""
    clean = read_arrow(Path(work) / "prepared" / f"clean-{i:05d}.arrow")
    entities = usable_entities(chunk_entities(Path(work), i), predictor.model._schema())[0]
    return explain_chunk(clean, context_for(i, clean), predictor, as_of, ids, entities=entities)
