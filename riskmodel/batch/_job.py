"""Nightly batch scoring: every open dispute in a (large) event log, chunk by chunk.

The batch job is a thin shell around :meth:`RiskModel.transform_features` and
:meth:`RiskModel.score_features`; it adds streaming, accounting, atomic output and resume.

Flow (``engine="local"``)
-------------------------
1. **partition** - a parquet input is read with :mod:`pyarrow.dataset`, batch by batch:
   a first scan of the id column counts the disputes and fixes ``n_chunks``, a second
   scan writes every row into ``parts/part-<i>.parquet`` where ``i`` is a stable hash of
   the dispute id modulo ``n_chunks`` (so all events of a dispute share a chunk). A CSV
   file or an in-memory DataFrame is held whole (documented limitation: CSV is read with
   :func:`pandas.read_csv`), then split the same way. The entities table is split by the
   same hash of its id into validated ``parts/entities-<i>.parquet`` (a parquet table is
   streamed; see :class:`_Entities`), so no later stage holds the whole table.
2. **prepare** - per chunk: :func:`split_invalid_events` (row rejects with reasons), the
   clean events, and a small *summary* of each dispute (its first event, its first
   outcome event, each party's first appearance, with the dispute's group) used by the
   cross-dispute features.
3. **score** - per chunk: the disputes open at ``as_of`` (the :func:`open_disputes` rule;
   the others are written to ``not_scored`` with the reason), features on the chunk's
   own events and entities rows, with the party and context families reading the summary
   rows the chunk needs (:class:`_ContextStore`: every chunk's summary rows indexed once
   per run without strings, filtered per chunk; ``FeatureBuilder.transform(context_events=...)``),
   LightGBM, calibration, tiers, reasons.
4. **finalize** - scores, work lists, station summary, rejects, not-scored and a manifest
   are written into a work directory that is renamed onto ``out`` only when complete.

Cross-dispute features
----------------------
Party histories and station escalation rates read other disputes' events. The summary
rows carry exactly what those families use (first appearance of a party in a dispute,
first event and first escalation of a dispute, the dispute's group), so chunked scoring
reproduces scoring the whole input at once. A chunk reads only its own rows, the rows of
the parties its disputes share with other disputes, and the first events and escalations
that fall in the context window (:meth:`_ContextStore.for_chunk`). The one residual
difference: the feature code quantises times to a resolution chosen from the number of
disputes and the time range it sees, so a chunk may count an event that falls in the same
quantum as ``as_of`` differently from a whole-input run (sub-second for realistic inputs).

Memory
------
Peak memory is set by one chunk (its events, features and context rows), not by the
input: what is held for the whole run is the :class:`_ContextStore` (integers and
categoricals, about 100 MB per million disputes with their factorised codes). After each
chunk, Arrow's and glibc's cached free memory is handed back
(:func:`_release_unused_memory`), so one chunk's transient buffers do not add to the next
one's peak.

Resume
------
Each stage writes one parquet per chunk, then a ``.done`` marker; a killed run (even
``kill -9``) restarts from the last marker and produces the same output as an
uninterrupted run. The work directory is ``out.parent / ".tmp-<name>-<as_of>"``; its
``state.json`` records the input fingerprint and parameters, and a mismatch discards it.
"""

from __future__ import annotations

import ctypes
import gc
import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .._errors import ConfigError, DataError, DataWarning, ModelError
from ..data import EventSchema, split_invalid_events, validate_entities
from ..model import (
    check_thresholds,
    drift_report,
    drift_table,
    merge_counts,
    warn_if_drifting,
)

__all__ = ["score_batch"]

_STAGES = ("read", "validate", "features", "predict", "monitor", "reasons", "write")
#: Environment hook for tests: die with ``os._exit`` after this many scored chunks.
_DIE_AFTER_ENV = "RISKMODEL_BATCH_DIE_AFTER_CHUNKS"
_READ_BATCH_ROWS = 262_144


# ------------------------------------------------------------------------------------------
# progress


class _Progress:
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


# ------------------------------------------------------------------------------------------
# input


def _bucket_of(ids: pa.Array | pa.ChunkedArray | pd.Series, n_chunks: int) -> np.ndarray:
    """Stable chunk number of each id (nulls go to chunk 0; they become row rejects)."""
    if n_chunks == 1:
        return np.zeros(len(ids), dtype=np.int64)
    if isinstance(ids, pd.Series):
        text = ids.astype(object).where(ids.notna(), None).map(lambda v: v if v is None else str(v))
        null = ids.isna().to_numpy()
        values = text.fillna("").to_numpy(dtype=object)
    else:
        text = ids.cast(pa.string())
        null = text.is_null().to_numpy(zero_copy_only=False)
        values = text.fill_null("").to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(values.astype(object), categorize=False)
    bucket = (hashed % np.uint64(n_chunks)).astype(np.int64)
    bucket[null] = 0
    return bucket


def _write_buckets(batches, id_col: str, n_chunks: int, path_of) -> set[int]:
    """Append each row of ``batches`` to the parquet file ``path_of(chunk of its id)``;
    returns the chunks written."""
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            bucket = _bucket_of(batch.column(batch.schema.get_field_index(id_col)), n_chunks)
            table = pa.Table.from_batches([batch])
            order = np.argsort(bucket, kind="stable")
            sorted_b = bucket[order]
            bounds = np.flatnonzero(np.r_[True, sorted_b[1:] != sorted_b[:-1], True])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=False):
                b = int(sorted_b[lo])
                piece = table.take(pa.array(order[lo:hi]))
                if b not in writers:
                    writers[b] = pq.ParquetWriter(path_of(b), piece.schema)
                writers[b].write_table(piece)
    finally:
        for w in writers.values():
            w.close()
    return set(writers)


def _file_fingerprint(path: Path) -> str:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"files:{h.hexdigest()[:24]}"


def _frame_fingerprint(frame: pd.DataFrame) -> str:
    hashed = pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy()
    return f"frame:{np.bitwise_xor.reduce(hashed) if len(hashed) else 0:016x}-{len(frame)}"


class _Source:
    """An events input: an in-memory frame (DataFrame, CSV) or a parquet dataset."""

    def __init__(self, events, schema: EventSchema):
        self.schema = schema
        self.frame: pd.DataFrame | None = None
        self.dataset: ds.Dataset | None = None
        if isinstance(events, pd.DataFrame):
            self.frame = events
            self.fingerprint = _frame_fingerprint(events)
            self.description = f"DataFrame ({len(events):,} rows)"
        else:
            path = Path(events)
            if not path.exists():
                raise DataError(f"events input {path} does not exist.")
            self.fingerprint = _file_fingerprint(path)
            self.description = str(path.resolve())
            try:
                if path.suffix.lower() == ".csv":
                    self.frame = pd.read_csv(path)
                else:
                    self.dataset = ds.dataset(path, format="parquet",
                                              partitioning="hive" if path.is_dir() else None)
            except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem
                raise DataError(f"could not read events {path}: {type(exc).__name__}: {exc}") from exc
        names = list(self.frame.columns) if self.frame is not None else self.dataset.schema.names
        missing = [c for c in schema.event_columns if c not in names]
        if missing:
            raise DataError(
                f"events ({self.description}) are missing required column(s) {missing}; they have "
                f"{names[:20]}. Rename the columns or train with an EventSchema naming yours."
            )

    def count_disputes(self) -> tuple[int, int]:
        """(rows, distinct non-null ids), reading only the id column."""
        col = self.schema.entity_col
        if self.frame is not None:
            ids = self.frame[col]
            return len(ids), int(ids.nunique(dropna=True))

        # streamed: memory grows with the number of distinct ids, not with the events
        rows, distinct, pending, pending_len = 0, None, [], 0
        try:
            for batch in self._batches([col]):
                rows += batch.num_rows
                pending.append(pc.unique(batch.column(0).drop_null()))
                pending_len += len(pending[-1])
                if pending_len > 2 * (len(distinct) if distinct is not None else 0) + 1_000_000:
                    merged = pending if distinct is None else [distinct, *pending]
                    distinct = pc.unique(pa.concat_arrays([a.cast(merged[0].type) for a in merged]))
                    pending, pending_len = [], 0
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"could not read events {self.description}: {exc}") from exc
        merged = pending if distinct is None else [distinct, *pending]
        if not merged:
            return rows, 0
        return rows, len(pc.unique(pa.concat_arrays([a.cast(merged[0].type) for a in merged])))

    def _batches(self, cols: list[str]):
        """Record batches of ``cols``, one file at a time, with as little buffering as possible.

        Plain parquet files holding every column are read with ``ParquetFile.iter_batches``
        (measured: a third of the dataset scanner's peak memory); a dataset whose columns
        come from its partitioning falls back to the scanner without read-ahead.
        """
        files = getattr(self.dataset, "files", None) or []
        per_file = bool(files)
        if per_file:
            try:
                per_file = all(set(cols) <= set(pq.read_schema(f).names) for f in files)
            except Exception:  # noqa: BLE001 - let the scanner report unreadable files
                per_file = False
        if not per_file:
            scanner = self.dataset.scanner(columns=cols, batch_size=_READ_BATCH_ROWS, batch_readahead=0,
                                           fragment_readahead=0)
            yield from scanner.to_batches()
            return
        schema = self.dataset.schema
        for f in files:
            with pq.ParquetFile(f) as parquet:
                for batch in parquet.iter_batches(batch_size=_READ_BATCH_ROWS, columns=cols, use_threads=False):
                    # one schema for all files, as the dataset unified it
                    yield batch.cast(pa.schema([schema.field(c) for c in cols]))

    def write_parts(self, parts_dir: Path, n_chunks: int) -> None:
        """Hash-partition a parquet input into one file per chunk (streaming)."""
        try:
            _write_buckets(self._batches(self.schema.event_columns), self.schema.entity_col, n_chunks,
                           lambda b: parts_dir / f"part-{b:05d}.parquet")
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"could not read events {self.description}: {type(exc).__name__}: {exc}") from exc

    def chunk(self, i: int, n_chunks: int, parts_dir: Path) -> pd.DataFrame:
        cols = self.schema.event_columns
        if self.frame is not None:
            if getattr(self, "_buckets", (None, None))[0] != n_chunks:
                self._buckets = (n_chunks, _bucket_of(self.frame[self.schema.entity_col], n_chunks))
            return self.frame.loc[self._buckets[1] == i, cols].reset_index(drop=True)
        path = parts_dir / f"part-{i:05d}.parquet"
        if not path.exists():
            return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
        return pq.read_table(path).to_pandas()


def _entity_columns(schema: EventSchema) -> list[str]:
    """The entities columns the batch reads: id, feature columns, ``closed_col``."""
    cols = [schema.entities_id, *schema.entity_feature_columns, *([schema.closed_col] if schema.closed_col else [])]
    return list(dict.fromkeys(cols))


def _validated_entities(frame: pd.DataFrame, schema: EventSchema) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return validate_entities(frame, schema)


class _Entities:
    """The entities input, split like the events: ``parts/entities-<i>.parquet`` holds the
    validated rows whose id hashes to chunk ``i``, so a chunk reads only its disputes' rows.

    A parquet file or dataset is streamed (only :func:`_entity_columns`); a CSV file or a
    DataFrame is held whole and validated at once. Equal ids hash alike, so a duplicate id
    is caught within one part.
    """

    def __init__(self, entities, schema: EventSchema):
        self.schema = schema
        self.frame: pd.DataFrame | None = None
        self.dataset: ds.Dataset | None = None
        if isinstance(entities, pd.DataFrame):
            self.frame = _validated_entities(entities, schema)
            return
        path = Path(entities)
        if not path.exists():
            raise DataError(f"input {path} does not exist.")
        try:
            if path.suffix.lower() == ".csv":
                self.frame = _validated_entities(pd.read_csv(path), schema)
                return
            self.dataset = ds.dataset(path, format="parquet", partitioning="hive" if path.is_dir() else None)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - any reader failure is a data problem
            raise DataError(f"could not read {path}: {type(exc).__name__}: {exc}") from exc
        from ..data import require_columns

        require_columns(pd.DataFrame(columns=self.dataset.schema.names), _entity_columns(schema), "entities")

    def write_parts(self, parts_dir: Path, n_chunks: int) -> None:
        """Write the validated ``entities-<i>.parquet`` of every chunk (empty where no row hashes)."""
        id_col = self.schema.entities_id
        path_of = lambda b: parts_dir / f"entities-{b:05d}.parquet"  # noqa: E731
        if self.frame is not None:
            bucket = _bucket_of(self.frame[id_col], n_chunks)
            for b in np.unique(bucket):
                _write_parquet(self.frame[bucket == b].reset_index(drop=True), path_of(int(b)))
            empty = self.frame.iloc[:0]
        else:
            cols = _entity_columns(self.schema)
            try:
                written = _write_buckets(self.dataset.to_batches(columns=cols, batch_size=_READ_BATCH_ROWS,
                                                                 batch_readahead=0, fragment_readahead=0),
                                         id_col, n_chunks, path_of)
            except Exception as exc:  # noqa: BLE001
                raise DataError(f"could not read entities: {type(exc).__name__}: {exc}") from exc
            empty = None
            for b in sorted(written):
                valid = _validated_entities(pd.read_parquet(path_of(b)), self.schema)
                _write_parquet(valid, path_of(b))
                empty = valid.iloc[:0]
            if empty is None:
                raise DataError("entities is empty (0 rows); there is nothing to work on.")
        for b in range(n_chunks):
            if not path_of(b).exists():
                _write_parquet(empty, path_of(b))


def _chunk_entities(work: Path, i: int) -> pd.DataFrame | None:
    """The validated entities rows of chunk ``i`` (``None`` for a run without entities; a
    table with no rows when none of the chunk's disputes has one)."""
    path = work / "parts" / f"entities-{i:05d}.parquet"
    return pd.read_parquet(path) if path.exists() else None


def load_predictor(model):
    from ..lifecycle import Predictor, load

    if isinstance(model, Predictor):
        return model
    if not isinstance(model, str | os.PathLike):
        raise ModelError(f"model must be a Predictor or a model URI / folder, got {type(model).__name__}.")
    uri = str(model)
    if "://" not in uri and ":/" not in uri and not Path(uri).exists():
        raise ModelError(f"model {uri!r} not found: no such folder, and not a models:/ or runs:/ URI.")
    try:
        return load(uri)
    except ModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken artifact is a model problem
        raise ModelError(f"could not load model {uri!r}: {type(exc).__name__}: {exc}") from exc


_NAT = np.iinfo(np.int64).min


def _isin(values, among) -> np.ndarray:
    """Hash-based membership (``np.isin`` sorts object arrays; pandas' arrow-string ``isin``
    builds Python lists: both are slow on millions of ids)."""
    from ..features import lookup_positions

    return lookup_positions(pd.Index(pd.unique(pd.Series(among))), pd.Series(values)) >= 0


# ------------------------------------------------------------------------------------------
# per-chunk work (pure functions of frames: shared by the local and Spark engines)


#: Summary-row flags: the dispute's first event, its first outcome event.
_FIRST_EVENT, _FIRST_OUTCOME = "_first_event", "_first_outcome"


def _summary_rows(clean: pd.DataFrame, schema: EventSchema, entities: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows other disputes' party and context features read: first event, first
    outcome, each party's first appearance (``clean`` is sorted by entity, time).

    The schema's event columns (narratives blanked), plus the flags
    ``_first_event`` / ``_first_outcome`` and, given the ``entities`` rows of the chunk's
    disputes, each dispute's group as ``group:<g>`` for every ``group_cols`` entry (missing
    without an entities row).
    """
    ent = clean[schema.entity_col]
    first = ~ent.duplicated().to_numpy()
    is_out = clean[schema.kind_col].isin(list(schema.outcome_kinds)).to_numpy()
    first_out = np.zeros(len(clean), dtype=bool)
    first_out[np.flatnonzero(is_out)[~ent[is_out].duplicated().to_numpy()]] = True
    keep = first | first_out
    if schema.party_col:
        party = clean[schema.party_col]
        keep |= (~clean[[schema.entity_col, schema.party_col]].duplicated().to_numpy()) & party.notna().to_numpy()
    out = clean.loc[keep, schema.event_columns].reset_index(drop=True)
    if schema.text_col:
        out[schema.text_col] = None  # narratives are read only for the dispute's own rows
    out[_FIRST_EVENT], out[_FIRST_OUTCOME] = first[keep], first_out[keep]
    if entities is not None:
        from ..features import FeatureComputation, lookup_positions

        rows = lookup_positions(pd.Index(entities[schema.entities_id]), out[schema.entity_col])
        for g in schema.group_cols:
            values = entities[g].astype(object).to_numpy()
            out[FeatureComputation.GROUP_PREFIX + g] = pd.array(
                np.where(rows >= 0, values[np.maximum(rows, 0)] if len(values) else None, None), dtype="category")
    return out


def prepare_chunk(raw: pd.DataFrame, schema: EventSchema, now: pd.Timestamp | None = None,
                  entities: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Validate one chunk: (clean events, row rejects, summary rows); ``now`` bounds times,
    ``entities`` (the chunk's rows) give the summary rows' groups."""
    if len(raw) == 0:
        empty = raw.iloc[:0]
        return empty, empty.astype(str).assign(reject_reason=pd.Series(dtype=object)), \
            _summary_rows(empty, schema, entities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        clean, rejects, _ = split_invalid_events(raw, schema, now=now)
    rejects = rejects.reset_index(drop=True)
    return clean, rejects, _summary_rows(clean, schema, entities)


def _not_open_reasons(events, ids: np.ndarray, as_of: pd.Timestamp, schema: EventSchema,
                      entities: pd.DataFrame | None, max_inactive) -> np.ndarray:
    """Why each dispute in ``ids`` is not open at ``as_of`` (same rule as make_cutoffs).

    ``events`` is the chunk's :class:`~riskmodel.PreparedEvents` (read as arrays: no copy
    of the chunk's columns).
    """
    from ..features import lookup_positions

    before = events.times_ns < as_of.value
    codes, times = events.entity_codes[before], events.times_ns[before]
    last_row = np.r_[codes[1:] != codes[:-1], True] if len(codes) else np.zeros(0, dtype=bool)
    last = np.full(len(events.entity_ids) + 1, _NAT, dtype=np.int64)  # rows are sorted by (entity, time)
    last[codes[last_row]] = times[last_row]
    escalated = np.zeros(len(events.entity_ids) + 1, dtype=bool)
    escalated[events.entity_codes[before & events.is_kind(schema.outcome_kinds)]] = True
    rows = lookup_positions(events.entity_ids, pd.Series(ids))
    rows = np.where(rows >= 0, rows, len(events.entity_ids))
    last, escalated = last[rows], escalated[rows]
    reason = np.full(len(ids), "not open at as_of", dtype=object)
    closed = np.zeros(len(ids), dtype=bool)
    if entities is not None and schema.closed_col:
        c = entities.set_index(schema.entities_id)[schema.closed_col].reindex(ids)
        closed = (c.notna() & (c <= as_of)).to_numpy()
    if max_inactive is not None:
        dormant = (last != _NAT) & (as_of.value - last > pd.Timedelta(max_inactive).value)
        reason[dormant] = f"dormant: no event in the {max_inactive} before as_of"
    reason[closed] = "closed before as_of"
    reason[escalated] = "escalated before as_of"
    reason[last == _NAT] = "no events before as_of"
    return reason


def score_chunk(clean: pd.DataFrame, context: pd.DataFrame | None, predictor, as_of: pd.Timestamp, *,
                entities: pd.DataFrame | None, reasons: str, max_inactive) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Score the disputes of one chunk open at ``as_of``.

    Parameters
    ----------
    clean : DataFrame
        The chunk's validated events (from :func:`prepare_chunk`).
    context : DataFrame, PreparedEvents or None
        The summary rows the chunk's cross-dispute features read instead of the chunk's own
        events (:meth:`_ContextStore.for_chunk`); ``None`` when the chunk is the input.
    predictor : Predictor
    as_of : Timestamp
    entities : DataFrame or None
        Validated entities of the chunk's disputes (any superset will do).
    reasons : {"flagged", "all", "none"}
    max_inactive : str or None

    Returns
    -------
    scores : DataFrame
        With ``scores.attrs["monitoring"]``: the chunk's drift bin counts
        (:func:`riskmodel.model._drift.chunk_counts`; absent when nothing was scored). An engine
        stores them in the chunk's ``.done`` marker under ``"monitoring"``; the manifest
        merges them.
    not_scored : DataFrame
        Entity id and ``reason``.
    timings : dict
    """
    from ..evaluation import open_disputes
    from ..features import PreparedEvents
    from ..model import chunk_counts, raw_attributes

    model = predictor.model
    schema = model._schema()
    ent = schema.entity_col
    timings = dict.fromkeys(_STAGES, 0.0)
    ids = pd.unique(clean[ent]) if len(clean) else np.array([], dtype=object)
    empty_scores = pd.DataFrame(columns=[ent, "as_of", "probability", "tier", "reasons", "reason_features",
                                         "overrides"])
    if len(clean) == 0:
        return empty_scores, pd.DataFrame({ent: ids, "reason": pd.Series(dtype=object)}), timings
    t0 = time.perf_counter()
    own_ents = entities
    if entities is not None:
        own_ents = entities[_isin(entities[schema.entities_id], ids)]  # may have no rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        prepared_own = PreparedEvents(clean, schema, model.features_.tz_aware_)
        cut = open_disputes(prepared_own, as_of, schema, entities=own_ents if own_ents is not None and len(own_ents) else None,
                            max_inactive=max_inactive)
        cut = cut.sort_values(ent, kind="stable").reset_index(drop=True)
        open_ids = cut[ent].to_numpy()
        rest = ids[~_isin(ids, open_ids)]
        not_scored = pd.DataFrame({ent: rest, "reason": _not_open_reasons(prepared_own, rest, as_of, schema,
                                                                          own_ents, max_inactive)})
        if len(cut) == 0:
            timings["validate"] += time.perf_counter() - t0
            return empty_scores, not_scored, timings
        # the cross-dispute families read the context (summary rows of every chunk, each
        # dispute's group included) or, for a single chunk, the whole chunk; the other
        # families need only the open disputes' events
        context_events = prepared_own
        if context is not None and len(context):
            context_events = context if isinstance(context, PreparedEvents) else \
                PreparedEvents.from_valid(context, schema, model.features_.tz_aware_)
        is_open = np.zeros(len(prepared_own.entity_ids) + 1, dtype=bool)
        is_open[prepared_own.entity_ids.get_indexer(open_ids)] = True
        own_open = PreparedEvents(clean[is_open[prepared_own.entity_codes]].reset_index(drop=True), schema,
                                  model.features_.tz_aware_)
        t1 = time.perf_counter()
        timings["validate"] += t1 - t0
        X = model.transform_features(own_open, cut, entities=own_ents if model.features_.has_entities_ else None,
                                     context_events=context_events)
        t2 = time.perf_counter()
        timings["features"] += t2 - t1
        scores = model.score_features(X, cut, reasons="none")
        t3 = time.perf_counter()
        timings["predict"] += t3 - t2
        reference = (getattr(model, "reference_", None) or {}).get("monitoring")
        raw_cols = [c for c in (reference or {}).get("bins", {}).get("categories", {}) if c in X.columns]
        unknown = np.zeros(len(X), dtype=bool)  # an unseen value can only hide where the feature is missing
        for c in raw_cols:
            unknown |= X[c].isna().to_numpy()
        raw = raw_attributes(own_ents, schema.entities_id, open_ids[unknown], raw_cols) if unknown.any() else None
        monitoring = chunk_counts(reference, X, scores["probability"].to_numpy(), scores["tier"],
                                  raw_categories=raw)
        t4 = time.perf_counter()
        timings["monitor"] += t4 - t3
        t3 = t4
        if reasons != "none":
            rows = np.arange(len(X)) if reasons == "all" else np.flatnonzero(scores["tier"].astype(str) != "blue")
            if len(rows):
                explained = model.score_features(X.iloc[rows], cut.iloc[rows], reasons="all")
                for col in ("reasons", "reason_features"):
                    scores.loc[scores.index[rows], col] = explained[col].to_numpy()
        timings["reasons"] += time.perf_counter() - t3
    scores = scores.reset_index(drop=True)
    scores.attrs["monitoring"] = monitoring
    return scores, not_scored, timings


class _ContextStore:
    """Every chunk's summary rows before ``as_of``, held compactly for the whole run, and
    the subset of them each chunk's cross-dispute features read.

    The rows are indexed once as a :class:`~riskmodel.PreparedEvents` without string
    columns: times, kinds and groups as categoricals, and parties as integer codes (the
    party family only compares parties with each other). :meth:`for_chunk` then selects,
    with boolean masks, what chunk ``i`` needs:

    * its own disputes' rows;
    * the first appearance of every party of those disputes in any other dispute, plus that
      dispute's first event and first outcome (party histories, past escalations);
    * the first event and first outcome of every dispute whose first event or first outcome
      falls in the context window before ``as_of`` (group escalation rates; the window is
      widened by the coarsest clock resolution, so no quantised key is missed).

    Any superset of these rows gives the same feature values (see
    :meth:`FeatureBuilder.transform`), so a chunk's features equal whole-input features,
    while what a chunk holds beyond the run-wide arrays grows with the chunk, not the input.

    Parameters
    ----------
    summaries : list of Path
        Every chunk's ``summary-<i>.parquet``, in chunk order.
    model : RiskModel
    as_of : Timestamp
    """

    def __init__(self, summaries: list[Path], model, as_of: pd.Timestamp):
        from ..data import sort_by_entity_time
        from ..features import FeatureComputation, PreparedEvents

        schema = model._schema()
        fb = model.features_
        self.as_of = as_of
        self.party = fb._active("party")
        self.window_ns = int(pd.Timedelta(fb.context_window).value) if fb._active("context") else None
        groups = [FeatureComputation.GROUP_PREFIX + g for g in schema.group_cols] if self.window_ns else []
        wanted = [schema.entity_col, schema.time_col, schema.kind_col, _FIRST_EVENT, _FIRST_OUTCOME, *groups]
        wanted += [schema.party_col] if self.party else []
        pieces: dict[str, list] = {c: [] for c in [*wanted, "_chunk"]}
        offset = 0
        for j, path in enumerate(summaries):
            table = pq.read_table(path, columns=[c for c in wanted if c in pq.read_schema(path).names])
            if table.num_rows == 0:
                continue
            table = table.filter(pc.less(table[schema.time_col], pa.scalar(as_of.to_pydatetime())))
            ids = pc.dictionary_encode(table[schema.entity_col]).combine_chunks()
            # a dispute lives in one chunk: per-file codes shifted by an offset are run-wide codes
            pieces[schema.entity_col].append((ids.indices.to_numpy(zero_copy_only=False) + offset, ids.dictionary))
            offset += len(ids.dictionary)
            pieces[schema.time_col].append(table[schema.time_col].to_numpy().astype("datetime64[ns]"))
            for c in [schema.kind_col, *groups]:  # dictionary-encoded strings, one categorical below
                values = table[c].combine_chunks() if c in table.column_names else pa.nulls(table.num_rows)
                pieces[c].append(pc.dictionary_encode(values.cast(pa.string())))
            for c in (_FIRST_EVENT, _FIRST_OUTCOME):
                pieces[c].append(table[c].to_numpy())
            if self.party:
                pieces[schema.party_col].append(table[schema.party_col].combine_chunks())
            pieces["_chunk"].append(np.full(table.num_rows, j, dtype=np.int32))
        if offset == 0:
            self.events = None
            return
        codes = np.concatenate([c for c, _ in pieces[schema.entity_col]]).astype(np.int64)
        dictionaries = [d for _, d in pieces[schema.entity_col]]
        entity_ids = pd.Index(pa.concat_arrays([d.cast(dictionaries[0].type) for d in dictionaries]).to_pandas())
        times = np.concatenate(pieces[schema.time_col])
        t_ns = times.view(np.int64)
        sorted_already = bool(np.all((codes[1:] > codes[:-1]) | ((codes[1:] == codes[:-1]) & (t_ns[1:] >= t_ns[:-1]))))
        order = None if sorted_already else sort_by_entity_time(codes, t_ns)
        frame = pd.DataFrame({schema.time_col: times})
        for c in [schema.kind_col, *groups]:
            frame[c] = pa.chunked_array(pieces[c]).to_pandas()  # Arrow unifies the dictionaries
        if self.party:
            parties = pc.dictionary_encode(
                pa.chunked_array([a.cast(pieces[schema.party_col][0].type) for a in pieces[schema.party_col]])
            ).combine_chunks()
            party_codes = parties.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)
            frame[schema.party_col] = pd.Categorical.from_codes(party_codes, categories=pd.RangeIndex(len(parties.dictionary)))
            self.n_parties = len(parties.dictionary)
        self.chunk = np.concatenate(pieces["_chunk"])
        self.firsts = np.concatenate(pieces[_FIRST_EVENT]) | np.concatenate(pieces[_FIRST_OUTCOME])
        if order is not None:
            frame = frame.take(order).reset_index(drop=True)
            codes, self.chunk, self.firsts = codes[order], self.chunk[order], self.firsts[order]
        del pieces
        self.party_codes = frame[schema.party_col].cat.codes.to_numpy() if self.party else None
        # the categoricals' own codes serve as the columns' factorisation (no int64 copies
        # held for the run); every chunk's subset shares them
        factorized = {("factorize", c): (frame[c].cat.codes.to_numpy(), frame[c].cat.categories)
                      for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
        self.events = PreparedEvents(frame, schema, fb.tz_aware_, (codes, entity_ids), _shared=factorized)

    def for_chunk(self, i: int):
        """The context rows chunk ``i``'s cross-dispute features read (a PreparedEvents)."""
        from ..data import RESOLUTIONS_NS

        ev = self.events
        keep = self.chunk == i
        involved = np.zeros(len(ev.entity_ids), dtype=bool)  # disputes whose first rows are needed
        if self.party:
            shared = np.zeros(self.n_parties + 1, dtype=bool)  # the last slot: no party (code -1)
            shared[self.party_codes[keep]] = True
            shared[-1] = False
            with_party = shared[self.party_codes]
            involved[ev.entity_codes[with_party]] = True
            keep |= with_party
        if self.window_ns is not None:
            lower = self.as_of.value - self.window_ns - RESOLUTIONS_NS[-1]
            involved[ev.entity_codes[self.firsts & (ev.times_ns >= lower)]] = True
        keep |= self.firsts & involved[ev.entity_codes]
        return ev.subset(keep)


def _context_store(prep_dir: Path, n_chunks: int, model, as_of: pd.Timestamp) -> _ContextStore | None:
    """The run's :class:`_ContextStore` (``None`` for a single chunk - its own events are the
    whole input - or a model using neither the party nor the context family)."""
    fb = model.features_
    if n_chunks < 2 or not (fb._active("party") or fb._active("context")):
        return None
    store = _ContextStore([prep_dir / f"summary-{j:05d}.parquet" for j in range(n_chunks)], model, as_of)
    return store if store.events is not None else None


# ------------------------------------------------------------------------------------------
# output


def _write_parquet(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".partial")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def _mark_done(path: Path, info: dict | None = None) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(info or {}), encoding="utf-8")
    os.replace(tmp, path)


def _library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("riskmodel", "lightgbm", "pandas", "numpy", "pyarrow", "mlflow", "pyspark"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def _read_parts(paths: list[Path], columns: list[str] | None = None) -> pd.DataFrame | None:
    frames = [pd.read_parquet(p, columns=columns) for p in paths if p.exists()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else None


def _finalize(work: Path, final: Path, *, n_chunks: int, schema: EventSchema, predictor, as_of: pd.Timestamp) -> dict:
    ent = schema.entity_col
    final.mkdir()
    scores = _read_parts([work / "scores" / f"scores-{i:05d}.parquet" for i in range(n_chunks)])
    if scores is None:
        scores = pd.DataFrame({ent: pd.Series(dtype=object), "as_of": pd.Series(dtype="datetime64[ns]"),
                               "probability": pd.Series(dtype=float), "tier": pd.Series(dtype=object),
                               "reasons": pd.Series(dtype=object), "reason_features": pd.Series(dtype=object),
                               "overrides": pd.Series(dtype=object)})
    scores.attrs.clear()  # per-chunk monitoring counts belong in the manifest, not the scores
    scores["tier"] = pd.Categorical(scores["tier"].astype(str), categories=["red", "yellow", "blue"])
    scores["model_name"] = predictor.model_name
    scores["model_version"] = predictor.model_version
    scores["run_id"] = predictor.run_id
    group_cols = list(schema.entity_categorical_cols)
    attrs = _read_parts([work / "parts" / f"entities-{i:05d}.parquet" for i in range(n_chunks)],
                        columns=[schema.entities_id] + group_cols)
    if attrs is not None:
        attrs = attrs.rename(columns={schema.entities_id: ent})
        attrs = attrs.astype({c: object for c in group_cols})
        attrs[ent] = attrs[ent].astype(scores[ent].dtype) if len(scores) else attrs[ent]
        scores = scores.merge(attrs, on=ent, how="left")
    scores = scores.sort_values(ent, kind="stable").reset_index(drop=True)
    _write_parquet(scores, final / "scores.parquet")

    station = schema.group_cols[0] if schema.group_cols and schema.group_cols[0] in scores.columns else None
    by = [station] if station else []
    flagged = scores[scores["tier"].isin(["red", "yellow"])].copy()
    flagged["_g"] = flagged[station].fillna("(unknown)") if station else "all"
    flagged = flagged.sort_values(["_g", "probability", ent], ascending=[True, False, True], kind="stable")
    flagged["rank"] = flagged.groupby("_g", sort=False).cumcount() + 1
    worklist = flagged.drop(columns="_g").reset_index(drop=True)
    _write_parquet(worklist, final / "worklists.parquet")

    tiers = scores.assign(_g=scores[station].fillna("(unknown)") if station else "all")
    summary = pd.crosstab(tiers["_g"], tiers["tier"].astype(str)).reindex(columns=["red", "yellow", "blue"],
                                                                        fill_value=0)
    summary.index.name = station or "group"
    summary.columns.name = None
    summary = summary.reset_index()
    summary["total"] = summary[["red", "yellow", "blue"]].sum(axis=1)
    _write_parquet(summary, final / "station_summary.parquet")
    del by

    rejects = _read_parts([work / "prepared" / f"rejects-{i:05d}.parquet" for i in range(n_chunks)])
    if rejects is None:
        rejects = pd.DataFrame({c: pd.Series(dtype=object) for c in schema.event_columns + ["reject_reason"]})
    rejects = rejects.astype(str).sort_values(list(rejects.columns), kind="stable").reset_index(drop=True)
    _write_parquet(rejects, final / "rejects.parquet")

    not_scored = _read_parts([work / "scores" / f"not_scored-{i:05d}.parquet" for i in range(n_chunks)])
    if not_scored is None:
        not_scored = pd.DataFrame({ent: pd.Series(dtype=object), "reason": pd.Series(dtype=object)})
    not_scored = not_scored.sort_values(ent, kind="stable").reset_index(drop=True)
    _write_parquet(not_scored, final / "not_scored.parquet")
    return {"scores": scores, "rejects": rejects, "not_scored": not_scored}


# ------------------------------------------------------------------------------------------
# the job


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
) -> dict:
    """Score every dispute open at ``as_of`` and write scores, work lists and a manifest.

    Parameters
    ----------
    model : Predictor or str
        A loaded :class:`~riskmodel.Predictor`, a ``models:/`` / ``runs:/`` URI or a
        local folder written by ``save_model_dir``.
    events : DataFrame or path
        Parquet file, directory or hive-partitioned dataset (streamed), or a ``.csv`` file
        (read whole). Columns: the model's :class:`EventSchema`.
    as_of : datetime-like
        The scoring moment; features use events strictly before it.
    out : path
        Output directory; replaced atomically when the run completes.
    entities : DataFrame or path, optional
        One row per dispute (read whole). Needed by models fitted with entities; its
        ``closed_col`` closes disputes, and its categorical columns ride along in the scores.
    reasons : {"flagged", "all", "none"}, default="flagged"
    chunk_disputes : int, default=200_000
        Disputes per chunk; bounds peak memory.
    engine : {"local", "spark"}, default="local"
    master : str, optional
        Spark master (``engine="spark"``), default ``local[2]``.
    open_rule_max_inactive : str or None, default="365D"
        A dispute silent this long before ``as_of`` is dormant, not scored.
    drift_thresholds : dict, optional
        PSI levels ``{"watch": 0.1, "act": 0.25}`` (defaults) for the drift status.
    monitor_mlflow : bool, default=False
        Also log the drift figures as metrics of a run named by ``as_of`` in the MLflow
        experiment ``dispute-risk-monitoring`` (store: ``MLFLOW_TRACKING_URI`` or the
        local default); a logging failure warns and is recorded in the manifest.

    Returns
    -------
    dict
        The manifest (also written to ``out / "manifest.json"``); ``counts`` reconcile:
        ``disputes_read == disputes_scored + disputes_rejected + disputes_not_open``.
        ``monitoring`` compares tonight's features and scores with the model's training
        reference (see :func:`riskmodel.model._drift.drift_report`): ``status`` (``ok``,
        ``watch``, ``act``, or ``no_reference`` for a model saved without one),
        ``score_psi``, per-feature PSI, tier shares, unseen-category / unseen-kind and
        missing-text rates; the per-feature table is ``drift.parquet``. A ``watch`` or
        ``act`` status also issues a :class:`~riskmodel.DataWarning`.

    Raises
    ------
    DataError
        Unreadable input, missing columns, invalid entities. Nothing is written to ``out``.
    ModelError
        The model cannot be found or loaded. Nothing is written to ``out``.
    """
    t_start = time.perf_counter()
    if reasons not in ("flagged", "all", "none"):
        raise ConfigError(f"reasons must be flagged, all or none, got {reasons!r}.")
    if engine not in ("local", "spark"):
        raise ConfigError(f"engine must be 'local' or 'spark', got {engine!r}.")
    if engine == "spark":
        from ._spark import require_pyspark

        require_pyspark()  # fail before any work: ConfigError naming riskmodel[spark]
    drift_thresholds = check_thresholds(drift_thresholds)
    if not isinstance(chunk_disputes, int | np.integer) or chunk_disputes < 1:
        raise ConfigError(f"chunk_disputes must be a positive integer, got {chunk_disputes!r}.")
    try:
        as_of = pd.Timestamp(as_of)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"as_of {as_of!r} is not a date/time: {exc}") from exc
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    out = Path(out)
    tag = as_of.strftime("%Y%m%dT%H%M%S")
    work = out.parent / f".tmp-{out.name}-{tag}"

    predictor = load_predictor(model)
    schema = predictor.model._schema()
    t_read = time.perf_counter()
    source = _Source(events, schema)
    ents = None if entities is None else _Entities(entities, schema)
    if predictor.model.features_.has_entities_ and ents is None:
        raise DataError("this model was trained with an entities table; pass entities=... to score_batch.")
    timings = dict.fromkeys(_STAGES, 0.0)
    timings["read"] += time.perf_counter() - t_read

    state = {
        "input": source.fingerprint,
        "entities": None if entities is None else (
            _frame_fingerprint(entities) if isinstance(entities, pd.DataFrame) else _file_fingerprint(Path(entities))),
        "model": [predictor.uri, predictor.model_name, predictor.model_version, predictor.run_id],
        "as_of": str(as_of), "reasons": reasons, "chunk_disputes": int(chunk_disputes),
        "max_inactive": open_rule_max_inactive, "engine": engine,
    }
    # Latest plausible event time: fixed per day (identical reruns) and kept on resume.
    now = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=1)
    if work.exists():
        try:
            old = json.loads((work / "state.json").read_text(encoding="utf-8"))
            now = pd.Timestamp(old.pop("now"))
        except (OSError, ValueError, KeyError):
            old = None
        if old != state:
            shutil.rmtree(work)
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
            n_chunks = max(1, math.ceil(n_ids / chunk_disputes))
            if source.dataset is not None and engine == "local":  # Spark partitions by itself
                source.write_parts(work / "parts", n_chunks)
            if ents is not None:  # both engines: a chunk reads only its disputes' entities
                ents.write_parts(work / "parts", n_chunks)
        except DataError:
            shutil.rmtree(work, ignore_errors=True)
            raise
        counts = {"rows": n_rows, "disputes": n_ids, "n_chunks": n_chunks}
        _mark_done(part_marker, counts)
    n_chunks = counts["n_chunks"]
    timings["read"] += time.perf_counter() - t0

    if engine == "spark":
        from ._spark import run_spark_chunks

        run_spark_chunks(work=work, source=source, n_chunks=n_chunks, predictor=predictor, as_of=as_of,
                         reasons=reasons, max_inactive=open_rule_max_inactive, master=master, timings=timings,
                         now=now)
    else:
        _run_local_chunks(work=work, source=source, n_chunks=n_chunks, predictor=predictor, as_of=as_of,
                          reasons=reasons, max_inactive=open_rule_max_inactive, timings=timings, now=now)

    # -- finalize ----------------------------------------------------------------------
    t_w = time.perf_counter()
    final = work / "final"
    if final.exists():
        shutil.rmtree(final)
    result = _finalize(work, final, n_chunks=n_chunks, schema=schema, predictor=predictor, as_of=as_of)
    chunk_info = [json.loads((work / "scores" / f"chunk-{i:05d}.done").read_text(encoding="utf-8"))
                  for i in range(n_chunks)]
    stage_times = [json.loads((work / "prepared" / f"chunk-{i:05d}.done").read_text(encoding="utf-8"))
                   for i in range(n_chunks)]
    for info in chunk_info + stage_times:
        for k, v in info.get("timings", {}).items():
            timings[k] = timings.get(k, 0.0) + v
    t_m = time.perf_counter()
    monitoring, drift = _monitoring(predictor, chunk_info, drift_thresholds)
    _write_parquet(drift, final / "drift.parquet")
    if monitor_mlflow:
        monitoring["mlflow_run_id"] = _log_monitoring(monitoring, as_of, predictor)
    timings["monitor"] = timings.get("monitor", 0.0) + time.perf_counter() - t_m
    rej_disputes = sum(info["disputes_rejected"] for info in stage_times)
    rej_rows = len(result["rejects"])
    n_scored = len(result["scores"])
    n_not_open = len(result["not_scored"])
    n_read = counts["disputes"]
    tiers = result["scores"]["tier"].astype(str).value_counts()
    manifest = {
        "riskmodel_batch": 1,
        "as_of": str(as_of),
        "engine": engine,
        "input": {"events": source.description, "fingerprint": source.fingerprint,
                  "entities": state["entities"]},
        "model": {"name": predictor.model_name, "version": predictor.model_version, "run_id": predictor.run_id,
                  "uri": predictor.uri},
        "parameters": {"latest_plausible_event_time": str(now), "reasons": reasons, "chunk_disputes": int(chunk_disputes), "n_chunks": n_chunks,
                       "open_rule_max_inactive": open_rule_max_inactive},
        "counts": {
            "events_read": counts["rows"],
            "events_rejected": rej_rows,
            "disputes_read": n_read,
            "disputes_scored": n_scored,
            "disputes_rejected": rej_disputes,
            "disputes_not_open": n_not_open,
            "reconciles": n_read == n_scored + rej_disputes + n_not_open,
            "not_open_by_reason": {str(k): int(v) for k, v in
                                   result["not_scored"]["reason"].value_counts().sort_index().items()},
            "tiers": {t: int(tiers.get(t, 0)) for t in ("red", "yellow", "blue")},
        },
        "monitoring": monitoring,
        "files": sorted(p.name for p in final.iterdir()) + ["manifest.json"],
        "libraries": _library_versions(),
        "resumed": resumed,
    }
    if not manifest["counts"]["reconciles"]:  # pragma: no cover - an accounting bug, never data
        raise RuntimeError(f"batch accounting does not reconcile: {manifest['counts']}")
    timings["write"] += time.perf_counter() - t_w
    manifest["timings_s"] = {k: round(v, 3) for k, v in timings.items()}
    manifest["timings_s"]["total"] = round(time.perf_counter() - t_start, 3)
    (final / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False, default=str),
                                         encoding="utf-8")
    _swap_in(final, out)
    shutil.rmtree(work, ignore_errors=True)
    warn_if_drifting(monitoring)
    return manifest


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


_NOT_READ = object()


def _swap_in(final: Path, out: Path) -> None:
    """Rename ``final`` onto ``out``; an existing ``out`` is moved aside first, then deleted."""
    aside = None
    if out.exists():
        aside = out.parent / f".old-{out.name}-{os.getpid()}"
        if aside.exists():
            shutil.rmtree(aside)
        os.rename(out, aside)
    os.rename(final, out)
    if aside is not None:
        shutil.rmtree(aside, ignore_errors=True)


def _release_unused_memory() -> None:
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


def _pending_chunks(folder: Path, n_chunks: int, progress: _Progress):
    """(chunk number, its marker path) for the chunks of a stage not done yet (resume)."""
    for i in range(n_chunks):
        marker = folder / f"chunk-{i:05d}.done"
        if marker.exists():
            progress.update(0, resumed=True)
            continue
        yield i, marker


def _run_local_chunks(*, work: Path, source: _Source, n_chunks: int, predictor, as_of, reasons,
                      max_inactive, timings: dict, now: pd.Timestamp) -> None:
    schema = predictor.model._schema()
    prep_dir, score_dir = work / "prepared", work / "scores"
    progress = _Progress(n_chunks, "prepare")
    for i, marker in _pending_chunks(prep_dir, n_chunks, progress):
        t0 = time.perf_counter()
        raw = source.chunk(i, n_chunks, work / "parts")
        t1 = time.perf_counter()
        clean, rejects, summary = prepare_chunk(raw, schema, now, _chunk_entities(work, i))
        t2 = time.perf_counter()
        raw_ids = pd.unique(raw[schema.entity_col].dropna())
        n_rej = int((~_isin(raw_ids, clean[schema.entity_col])).sum())
        _write_parquet(clean, prep_dir / f"clean-{i:05d}.parquet")
        _write_parquet(rejects, prep_dir / f"rejects-{i:05d}.parquet")
        _write_parquet(summary, prep_dir / f"summary-{i:05d}.parquet")
        t3 = time.perf_counter()
        _mark_done(marker, {"disputes_rejected": n_rej, "timings": {"read": t1 - t0, "validate": t2 - t1,
                                                                    "write": t3 - t2}})
        progress.update(len(raw))
        del raw, clean, rejects, summary
        _release_unused_memory()
    progress.close()

    progress = _Progress(n_chunks, "score")
    die_after = int(os.environ.get(_DIE_AFTER_ENV, "0") or 0)
    done_now = 0
    context = _NOT_READ
    for i, marker in _pending_chunks(score_dir, n_chunks, progress):
        t0 = time.perf_counter()
        clean = pd.read_parquet(prep_dir / f"clean-{i:05d}.parquet")
        if context is _NOT_READ:  # once per run: every chunk selects from the same summary rows
            context = _context_store(prep_dir, n_chunks, predictor.model, as_of)
            _release_unused_memory()
        entities = _chunk_entities(work, i)
        t1 = time.perf_counter()
        scores, not_scored, chunk_t = score_chunk(clean, None if context is None else context.for_chunk(i),
                                                  predictor, as_of, entities=entities, reasons=reasons,
                                                  max_inactive=max_inactive)
        t2 = time.perf_counter()
        _write_parquet(scores, score_dir / f"scores-{i:05d}.parquet")
        _write_parquet(not_scored, score_dir / f"not_scored-{i:05d}.parquet")
        chunk_t["read"] += t1 - t0
        chunk_t["write"] += time.perf_counter() - t2
        _mark_done(marker, {"scored": len(scores), "timings": chunk_t,
                            "monitoring": scores.attrs.get("monitoring")})
        progress.update(len(clean))
        del clean, scores, not_scored
        _release_unused_memory()
        done_now += 1
        if die_after and done_now >= die_after:
            os._exit(137)  # test hook: simulate a killed job
    progress.close()
