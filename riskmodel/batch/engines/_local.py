"""The local engine: every chunk's prepare task, then every chunk's score task, in this
process, skipping chunks whose ``.done`` marker exists (resume)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from ..._faults import crash_point
from .._tasks import Progress, pending_chunks, prepare_task, release_unused_memory, score_task

__all__ = ["run_local_chunks"]


def run_local_chunks(*, work: Path, source, n_chunks: int, predictor, as_of: pd.Timestamp, reasons: str,
                     max_inactive, timings: dict, now: pd.Timestamp, context_for, tiers: tuple | None = None) -> None:
    """Prepare, then score, every pending chunk of ``work`` in this process.

    ``work`` is the run's work folder (``parts/`` holds each chunk's rows and entities,
    ``prepared/`` and ``scores/`` receive one parquet per chunk and a ``chunk-<i>.done``
    marker); ``source`` is the job's :class:`~riskmodel.batch._inputs.Source`; ``now`` the
    latest plausible event time; ``context_for`` the run's
    :func:`~riskmodel.batch._core.context_reader`; ``tiers`` the night's ranking (see
    :func:`~riskmodel.batch._core.score_chunk`). ``timings`` is not updated here (the chunks' markers
    carry their stage times).
    """
    schema = predictor.model._schema()
    prep_dir, score_dir = work / "prepared", work / "scores"
    progress = Progress(n_chunks, "prepare")
    for i, _marker in pending_chunks(prep_dir, n_chunks, progress):
        t0 = time.perf_counter()
        raw = source.chunk(i, n_chunks, work / "parts")
        progress.update(prepare_task(work, i, raw, schema, now, t_read=time.perf_counter() - t0,
                                     clock=bool(predictor.model.features_.tz_aware_)))
        del raw
        release_unused_memory()
        crash_point("batch.prepare")
    progress.close()

    progress = Progress(n_chunks, "score")
    for i, _marker in pending_chunks(score_dir, n_chunks, progress):
        progress.update(score_task(work, i, predictor, as_of, reasons=reasons, max_inactive=max_inactive,
                                   tiers=tiers, context_for=context_for))
        release_unused_memory()
        crash_point("batch.score")
    progress.close()
