"""The per-chunk core both engines run: pure functions of frames, no file I/O.

:func:`prepare_chunk` validates one chunk's events (clean rows, row rejects with reasons,
and the summary rows other chunks' cross-dispute features read); :func:`score_chunk`
scores the chunk's disputes open at ``as_of`` (features, LightGBM, calibration, tiers,
drift counts, reasons) with the context rows :class:`ContextStore` selects for it;
:func:`bucket_of` says which chunk a dispute id belongs to.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._errors import DataWarning
from ..data import (
    NAT_NS,
    EventSchema,
    blank_mask,
    closing_times,
    decimal_text,
    id_kind,
    isna_mask,
    kind_in,
    lookup_positions,
    rejects_frame,
    run_starts,
    split_invalid_events,
    trimmed_codes,
)
from ..features import GROUP_PREFIX, ContextNeed
from ._hash import text_hash

__all__ = ["ContextStore", "bucket_of", "context_reader", "context_store", "explain_chunk", "isin", "prepare_chunk",
           "score_chunk", "summary_rows", "usable_entities"]


STAGES = ("read", "validate", "features", "predict", "monitor", "reasons", "write")
#: The area of every dispute when the outputs have no area column (city-wide).
CITY = "(city)"


def bucket_of(ids: pa.Array | pa.ChunkedArray | pd.Series, n_chunks: int) -> np.ndarray:
    """Stable chunk number of each id (nulls go to chunk 0; they become row rejects): a hash
    of its text (:func:`~riskmodel.batch._hash.text_hash`), so that ``2895`` and ``"2895"``
    share a chunk."""
    if n_chunks == 1:
        return np.zeros(len(ids), dtype=np.int64)
    text = _id_text(ids)
    bucket = (text_hash(text) % np.uint64(n_chunks)).astype(np.int64)
    bucket[text.is_null().to_numpy(zero_copy_only=False)] = 0
    return bucket


def _id_text(ids: pa.Array | pa.ChunkedArray | pd.Series) -> pa.Array | pa.ChunkedArray:
    """Each id as Arrow text (``None`` where missing): integers in decimal, as ``str`` writes them."""
    if not isinstance(ids, pd.Series):
        return ids.cast(pa.string())
    dtype = ids.dtype
    if pd.api.types.is_integer_dtype(dtype) or isinstance(dtype, pd.StringDtype) or (
            isinstance(dtype, pd.ArrowDtype) and pa.types.is_string(dtype.pyarrow_dtype)):
        return pa.array(ids.array).cast(pa.string())
    try:  # Python strs (or ints) all: Arrow reads them at once
        array = pa.array(ids.to_numpy(dtype=object), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a mix of types
        array = None
    if array is not None and (pa.types.is_integer(array.type) or pa.types.is_string(array.type)):
        return array.cast(pa.string())
    present = ids.notna().to_numpy()
    return pa.array([str(v) if p else None for v, p in zip(ids.astype(object).to_numpy(), present, strict=True)],
                    type=pa.string())


def isin(values, among) -> np.ndarray:
    """Hash-based membership (``np.isin`` sorts object arrays; pandas' arrow-string ``isin``
    builds Python lists: both are slow on millions of ids)."""
    among = pd.unique(pd.Series(among))
    if id_kind(pd.Series(among)) == "number and text":  # 2895 and "2895" are one id (two would be no index)
        among = pd.unique(decimal_text(among))
    return lookup_positions(pd.Index(among), pd.Series(values)) >= 0


def usable_entities(entities: pd.DataFrame | None, schema: EventSchema) -> tuple[pd.DataFrame | None, dict]:
    """The entities rows a night can use (one per id), and what it set aside.

    A row without an id belongs to no dispute; a row repeated exactly is one row; an id
    on several different rows (e.g. a dispute that moved station, exported twice) has
    unknown attributes, so none of its rows is used and its events are rejected
    (:func:`prepare_chunk`). Returns the rows and ``{"without_id": int, "duplicates":
    int, "conflicting": ids}`` (each id of several different rows once).
    """
    if entities is None:
        return None, {"without_id": 0, "duplicates": 0, "conflicting": np.zeros(0, dtype=object)}
    id_col = schema.entities_id
    without_id = isna_mask(entities[id_col])
    rows = entities[~without_id]
    exact = rows.duplicated(keep="first").to_numpy() if len(rows) > 1 else np.zeros(len(rows), dtype=bool)
    rows = rows[~exact]
    several = rows[id_col].duplicated(keep=False).to_numpy()
    conflicting = pd.unique(rows[id_col][several].to_numpy(dtype=object))
    if without_id.any() or exact.any() or several.any():
        rows = rows[~several].reset_index(drop=True)
    return rows, {"without_id": int(without_id.sum()), "duplicates": int(exact.sum()), "conflicting": conflicting}


def _decoded(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded (categorical) column as its plain values; any other as it is."""
    return values.cast(values.type.value_type) if pa.types.is_dictionary(values.type) else values


#: Summary-row flags: the dispute's first event, its first outcome event.
_FIRST_EVENT, _FIRST_OUTCOME = "_first_event", "_first_outcome"


def summary_rows(clean: pd.DataFrame, schema: EventSchema, entities: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows other disputes' party and context features read: first event, first
    outcome, each party's first appearance (``clean`` is sorted by entity, time).

    The schema's event columns (narratives blanked), plus the flags
    ``_first_event`` / ``_first_outcome`` and, given the ``entities`` rows of the chunk's
    disputes, each dispute's group as ``group:<g>`` for every ``group_cols`` entry (missing
    without an entities row).
    """
    codes = pd.factorize(clean[schema.entity_col])[0]
    first = run_starts(codes)
    first_out = run_starts(codes, kind_in(clean[schema.kind_col], schema.outcome_kinds))
    keep = first | first_out
    if schema.party_col:  # a party of spaces only is no party (blank_mask)
        party = clean[schema.party_col]
        named = party.notna().to_numpy() & ~blank_mask(party)
        parties = pd.factorize(party)[0].astype(np.int64) + 1  # 0: missing
        pair = codes.astype(np.int64) * (int(parties.max(initial=0)) + 1) + parties  # (dispute, party) as one int
        keep |= ~pd.Series(pair).duplicated().to_numpy() & named
    out = clean.loc[keep, schema.event_columns].reset_index(drop=True)
    if schema.party_col and not named[keep].all():
        out[schema.party_col] = out[schema.party_col].mask(~named[keep])
    if schema.text_col:
        out[schema.text_col] = None  # narratives are read only for the dispute's own rows
    out[_FIRST_EVENT], out[_FIRST_OUTCOME] = first[keep], first_out[keep]
    if entities is not None:
        rows = lookup_positions(pd.Index(entities[schema.entities_id]), out[schema.entity_col])
        for g in schema.group_cols:
            values = entities[g].astype(object).to_numpy()
            out[GROUP_PREFIX + g] = pd.array(
                np.where(rows >= 0, values[np.maximum(rows, 0)] if len(values) else None, None), dtype="category")
    return out


def prepare_chunk(raw: pd.DataFrame, schema: EventSchema, now: pd.Timestamp | None = None,
                  entities: pd.DataFrame | None = None, clock: bool | None = None, *, conflicting=()
                  ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """Validate one chunk.

    Parameters
    ----------
    raw : DataFrame
        The chunk's input rows.
    schema : EventSchema
    now : Timestamp, optional
        Latest plausible event time.
    entities : DataFrame, optional
        The chunk's entities rows (they give the summary rows' groups).
    clock : bool, optional
        The model's timezone convention (``True``: aware): times in the other one are rejected rows.
    conflicting : array-like, optional
        Ids with several different entities rows (:func:`usable_entities`): their rows are rejected.

    Returns
    -------
    clean : DataFrame
        Valid events, sorted by entity and time, exact duplicates dropped.
    rejects : DataFrame
        Bad rows with a ``reject_reason``.
    summary : DataFrame
        The rows other chunks' cross-dispute features read (:func:`summary_rows`).
    duplicates_dropped : int
        Exact duplicate rows dropped (identical in every column to a kept row): every
        input row is clean, rejected or one of these.
    """
    set_aside = None
    if len(conflicting) and len(raw):
        unknown = isin(raw[schema.entity_col], conflicting)
        if unknown.any():
            reason = f"several different rows in the entities table for this dispute in {schema.entities_id!r}"
            held = raw.loc[unknown, schema.event_columns]
            set_aside = rejects_frame(held, np.full(len(held), reason, dtype=object), schema.event_columns)
            raw = raw[~unknown]
    if len(raw) == 0:
        empty = raw.iloc[:0]
        rejects = empty.astype(str).assign(reject_reason=pd.Series(dtype=object))
        return empty, rejects if set_aside is None else set_aside.reset_index(drop=True), \
            summary_rows(empty, schema, entities), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        # a time in the other convention than the model's is a rejected row (a chunk's shares are not the night's)
        clean, rejects, info = split_invalid_events(raw, schema, now=now, stray_times=True, clock=clock)
    if set_aside is not None:
        rejects = pd.concat([rejects, set_aside])
    rejects = rejects.reset_index(drop=True)
    return clean, rejects, summary_rows(clean, schema, entities), int(info["duplicates_dropped"])


def not_open_reasons(events, ids: np.ndarray, as_of: pd.Timestamp, schema: EventSchema,
                     closed_ns: np.ndarray, max_inactive) -> np.ndarray:
    """Why each dispute in ``ids`` is not open at ``as_of`` (same rule as make_cutoffs).

    ``events`` is the chunk's :class:`~riskmodel.PreparedEvents` (read as arrays: no copy
    of the chunk's columns); ``closed_ns`` the closing time of each of its disputes, in the
    order of ``events.entity_ids`` (:func:`~riskmodel.data.closing_times`).
    """
    before = events.times_ns < as_of.value
    codes, times = events.entity_codes[before], events.times_ns[before]
    last_row = np.r_[codes[1:] != codes[:-1], True] if len(codes) else np.zeros(0, dtype=bool)
    last = np.full(len(events.entity_ids) + 1, NAT_NS, dtype=np.int64)  # rows are sorted by (entity, time)
    last[codes[last_row]] = times[last_row]
    escalated = np.zeros(len(events.entity_ids) + 1, dtype=bool)
    escalated[events.entity_codes[before & events.is_kind(schema.outcome_kinds)]] = True
    rows = lookup_positions(events.entity_ids, pd.Series(ids))
    rows = np.where(rows >= 0, rows, len(events.entity_ids))
    last, escalated, closed_at = last[rows], escalated[rows], np.r_[closed_ns, NAT_NS][rows]
    reason = np.full(len(ids), "not open at as_of", dtype=object)
    closed = (closed_at != NAT_NS) & (closed_at <= as_of.value)
    if max_inactive is not None:
        dormant = (last != NAT_NS) & (as_of.value - last > pd.Timedelta(max_inactive).value)
        reason[dormant] = f"dormant: no event in the {max_inactive} before as_of"
    reason[closed] = "closed at or before as_of"  # open at as_of: closed after it (as make_cutoffs)
    reason[escalated] = "escalated before as_of"
    reason[last == NAT_NS] = "no events before as_of"
    return reason


def score_chunk(clean: pd.DataFrame, context: pd.DataFrame | None, predictor, as_of: pd.Timestamp, *,
                entities: pd.DataFrame | None, reasons: str, max_inactive,
                tiers: tuple | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Score the disputes of one chunk open at ``as_of``.

    Parameters
    ----------
    clean : DataFrame
        The chunk's validated events (from :func:`prepare_chunk`).
    context : DataFrame, PreparedEvents or None
        The summary rows the chunk's cross-dispute features read instead of the chunk's own
        events (:meth:`ContextStore.for_chunk`); ``None`` when the chunk is the input.
    predictor : Predictor
    as_of : Timestamp
    entities : DataFrame or None
        Validated entities of the chunk's disputes (any superset will do).
    reasons : {"flagged", "all", "none"}
    max_inactive : str or None
    tiers : (TierPolicy, str or None) or None
        The night's tier policy and the area column it ranks within, when the night ranks
        its disputes (``None``: tiers as trained). With ``reasons="flagged"``, the cases
        explained are those this policy flags among the chunk's own disputes (a chunk is a
        sample of the night's: nearly the night's flagged cases, whose reasons the night
        keeps; it explains those missed), not those the trained thresholds flag.

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
    timings = dict.fromkeys(STAGES, 0.0)
    ids = pd.unique(clean[ent]) if len(clean) else np.array([], dtype=object)
    empty_scores = pd.DataFrame(columns=[ent, "as_of", "probability", "tier", "reasons", "reason_features",
                                         "overrides"])
    if len(clean) == 0:
        return empty_scores, pd.DataFrame({ent: ids, "reason": pd.Series(dtype=object)}), timings
    t0 = time.perf_counter()
    own_ents = entities
    if entities is not None:
        own_ents = entities[isin(entities[schema.entities_id], ids)]  # may have no rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        prepared_own = PreparedEvents.from_valid(clean, schema, model.features_.tz_aware_)  # sorted: keys read in order
        # the chunk's disputes' closing times, read once: for the open rule, not_scored and the manifest's count
        closed_ns, closed_first = closing_times(own_ents, schema, prepared_own.entity_ids, prepared_own.first_times()[:-1])
        cut = open_disputes(prepared_own, as_of, schema, max_inactive=max_inactive, closed_ns=closed_ns)
        cut = cut.sort_values(ent, kind="stable").reset_index(drop=True)
        open_ids = cut[ent].to_numpy()
        rest = ids[~isin(ids, open_ids)]
        not_scored = pd.DataFrame({ent: rest, "reason": not_open_reasons(prepared_own, rest, as_of, schema,
                                                                          closed_ns, max_inactive)})
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
        open_rows = prepared_own.entity_ids.get_indexer(open_ids)
        is_open[open_rows] = True
        # the open disputes' own events, indexed apart: the text and kind columns are then read for
        # their rows only (a subset of the chunk's index would match every row's narrative)
        own_open = PreparedEvents.from_valid(clean[is_open[prepared_own.entity_codes]].reset_index(drop=True), schema,
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
        if own_ents is not None:  # scored without their attributes (nor their closing time)
            monitoring["no_entity_row"] = int((~isin(open_ids, own_ents[schema.entities_id])).sum())
            # open although their entities row closes them: before their first event, a placeholder
            monitoring["closed_before_first"] = int(closed_first[open_rows].sum())
        t4 = time.perf_counter()
        timings["monitor"] += t4 - t3
        t3 = t4
        if reasons != "none":
            if reasons == "all":
                rows = np.arange(len(X))
            elif tiers is None:
                rows = np.flatnonzero(scores["tier"].astype(str) != "blue")
            else:
                rows = np.flatnonzero(_likely_flagged(scores, own_ents, tiers, model, schema))
            if len(rows):
                explained = model.score_features(X.iloc[rows], cut.iloc[rows], reasons="all")
                for col in ("reasons", "reason_features"):
                    scores.loc[scores.index[rows], col] = explained[col].to_numpy()
        scores["_explained"] = False  # the night completes and clears reasons by it (not by the tier)
        if reasons != "none":
            scores.loc[scores.index[rows], "_explained"] = True
        timings["reasons"] += time.perf_counter() - t3
    scores = scores.reset_index(drop=True)
    scores.attrs["monitoring"] = monitoring
    return scores, not_scored, timings


#: A chunk explains the cases down to this share of its own lowest flagged p (per area): its
#: ranking of a sample of the night's disputes then misses few of the night's flagged cases
#: (0 of 27,554 on a 1M-dispute night, for 3% more explained; 102 missed without the slack,
#: which the night explains in a second pass over their chunks)
_SLACK = 0.98


def _likely_flagged(scores: pd.DataFrame, entities: pd.DataFrame | None, tiers: tuple, model,
                    schema: EventSchema) -> np.ndarray:
    """The chunk's cases the night's policy (``tiers``: policy, area column) flags when it
    ranks the chunk's ``scores`` among themselves (areas read from the chunk's ``entities``),
    and those within :data:`_SLACK` of their area's lowest flagged p."""
    from ..model import retier_scores, table_area

    policy, by = tiers
    areas = None
    if by:
        areas = np.full(len(scores), None, dtype=object)
        if entities is not None and by in entities.columns:
            at = lookup_positions(pd.Index(entities[schema.entities_id]), scores[schema.entity_col])
            known = at >= 0
            areas[known] = entities[by].astype(object).to_numpy()[at[known]]
    ranked, table, _ = retier_scores(scores, policy, model.tier_policy_, id_col=schema.entity_col, areas=areas,
                                     reasons="none")
    lowest = table.set_index("area")["yellow_threshold"]
    near = pd.Series(table_area(areas, len(scores))).map(lowest).to_numpy(dtype=float) * _SLACK
    return (ranked["tier"].astype(str).to_numpy() != "blue") | (scores["probability"].to_numpy() >= near)


def explain_chunk(clean: pd.DataFrame, context, predictor, as_of: pd.Timestamp, ids, *,
                  entities: pd.DataFrame | None) -> pd.DataFrame:
    """Reasons of some open disputes ``ids`` of one chunk, as :func:`score_chunk` computes them.

    For the cases a night's share tiers flag after every chunk was scored (their chunk
    explained only the cases its trained thresholds flagged). ``clean``, ``context`` and
    ``entities`` are the chunk's, as for :func:`score_chunk`.

    Returns
    -------
    DataFrame
        Entity id, ``reasons``, ``reason_features`` (one row per id).
    """
    from ..features import PreparedEvents

    model = predictor.model
    schema = model._schema()
    ent = schema.entity_col
    tz = model.features_.tz_aware_
    ids = np.asarray(ids)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        own = PreparedEvents.from_valid(clean[isin(clean[ent], ids)].reset_index(drop=True), schema, tz)
        if context is not None and len(context):
            context_events = context if isinstance(context, PreparedEvents) else \
                PreparedEvents.from_valid(context, schema, tz)
        else:  # a single chunk: its own events are the whole input
            context_events = PreparedEvents.from_valid(clean, schema, tz)
        own_ents = None
        if entities is not None and model.features_.has_entities_:
            own_ents = entities[isin(entities[schema.entities_id], ids)]
        cut = pd.DataFrame({ent: ids, "as_of": np.full(len(ids), as_of.to_datetime64())})
        X = model.transform_features(own, cut, entities=own_ents, context_events=context_events, utc=True)
        explained = model.score_features(X, cut, reasons="all")
    return pd.DataFrame({ent: ids, "reasons": explained["reasons"].to_numpy(),
                         "reason_features": explained["reason_features"].to_numpy()})


class ContextStore:
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
      falls in the context window before ``as_of`` (group escalation rates).

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
        from ..features import PreparedEvents

        schema = model._schema()
        fb = model.features_
        self.as_of = as_of
        need = fb.context_need() or ContextNeed()
        self.party = need.parties
        self.window_ns = int(pd.Timedelta(need.window).value) if need.window is not None else None
        groups = [GROUP_PREFIX + g for g in schema.group_cols] if self.window_ns else []
        wanted = [schema.entity_col, schema.time_col, schema.kind_col, _FIRST_EVENT, _FIRST_OUTCOME, *groups]
        wanted += [schema.party_col] if self.party else []
        pieces: dict[str, list] = {c: [] for c in [*wanted, "_chunk"]}
        offset = 0
        for j, path in enumerate(summaries):
            table = pq.read_table(path, columns=[c for c in wanted if c in pq.read_schema(path).names])
            if table.num_rows == 0:
                continue
            table = table.filter(pc.less(table[schema.time_col], pa.scalar(as_of.to_pydatetime())))
            # a categorical column keeps every category in each part (pandas' metadata): decoded,
            # only the ids the part holds are coded (a dictionary array is not encoded again)
            ids = pc.dictionary_encode(_decoded(table[schema.entity_col])).combine_chunks()
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
                pieces[schema.party_col].append(_decoded(table[schema.party_col]).combine_chunks())
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
        factorized[("factorize", schema.kind_col)] = trimmed_codes(*factorized[("factorize", schema.kind_col)])
        self.events = PreparedEvents(frame, schema, fb.tz_aware_, (codes, entity_ids), _shared=factorized)

    def for_chunk(self, i: int):
        """The context rows chunk ``i``'s cross-dispute features read (a PreparedEvents)."""
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
            lower = self.as_of.value - self.window_ns  # the window's first instant
            involved[ev.entity_codes[self.firsts & (ev.times_ns >= lower)]] = True
        keep |= self.firsts & involved[ev.entity_codes]
        return ev.subset(keep)


def context_reader(prep_dir: Path, n_chunks: int, model, as_of: pd.Timestamp):
    """``context_for(i, clean)``: the context rows of chunk ``i`` (:meth:`ContextStore.for_chunk`,
    or ``None``), from the run's :func:`context_store`, read on first use and kept: the
    scoring pass and the night's explain pass share it."""
    store = []

    def context_for(i: int, clean=None):
        if not store:
            store.append(context_store(prep_dir, n_chunks, model, as_of))
        return None if store[0] is None else store[0].for_chunk(i)

    return context_for


def context_store(prep_dir: Path, n_chunks: int, model, as_of: pd.Timestamp) -> ContextStore | None:
    """The run's :class:`ContextStore` (``None`` for a single chunk - its own events are the
    whole input - or a model using neither the party nor the context family)."""
    fb = model.features_
    if n_chunks < 2 or fb.context_need() is None:
        return None
    store = ContextStore([prep_dir / f"summary-{j:05d}.parquet" for j in range(n_chunks)], model, as_of)
    return store if store.events is not None else None
