"""Training snapshots and their labels: :func:`make_cutoffs` and :func:`make_labels`."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._errors import DataError, DataWarning, format_examples
from ..data import (
    NAT_NS,
    Clock,
    EventSchema,
    Timeline,
    closing_times,
    expand_ranges,
    lookup_positions,
    naive_utc,
    ns_values,
    parse_duration,
    validate_cutoffs,
    validate_entities,
)
from ..features import PreparedEvents, prepare_events

__all__ = ["make_cutoffs", "make_labels", "open_disputes"]



_MANY_PER_DISPUTE = 1_000  # cutoffs per dispute past which make_cutoffs warns (daily over three years)


def _outcome_kinds(schema: EventSchema, outcome_kinds) -> tuple[str, ...]:
    """The outcome kinds asked for (a lone string is one kind, as in :class:`EventSchema`)."""
    if outcome_kinds is None:
        return tuple(schema.outcome_kinds) or _no_outcome_kinds()
    kinds = (outcome_kinds,) if isinstance(outcome_kinds, str) else tuple(outcome_kinds)
    if not all(isinstance(k, str) and k.strip() for k in kinds):
        raise DataError(f"outcome_kinds must be event kinds (strings), got {outcome_kinds!r}.")
    return kinds or _no_outcome_kinds()


def _no_outcome_kinds():
    raise DataError("no outcome kinds: pass outcome_kinds=[...] or set EventSchema.outcome_kinds.")


def _warn_if_no_outcome(prepared: PreparedEvents, kinds, seen: bool, meaning: str, stacklevel: int = 3) -> None:
    """A :class:`DataWarning` when none of the outcome ``kinds`` occurs in the log (a misspelt
    kind?), naming the kinds the log holds."""
    if len(prepared) and not seen:
        warnings.warn(f"none of the outcome kinds {list(kinds)} occurs in the events' {prepared.schema.kind_col!r} "
                      f"column: {meaning} (kinds seen: {format_examples(prepared.kind_counts().index[:10])}).",
                      DataWarning, stacklevel=stacklevel)


def _max_inactive_ns(max_inactive) -> int | None:
    """``max_inactive`` in nanoseconds (``None``: no dormancy rule), refused in its own name
    when it is not a positive duration."""
    return None if max_inactive is None else parse_duration(max_inactive, "max_inactive", error=DataError).value


def _dispute_spans(prepared: PreparedEvents, entities: pd.DataFrame | None, outcome_kinds,
                   closed_ns: np.ndarray | None = None) -> pd.DataFrame:
    """Per dispute: first event, first outcome, closing time (int64 ns, NaT-min if none);
    the closing times read from ``entities``, unless ``closed_ns`` gives them."""
    n = len(prepared.entity_ids)
    first = prepared.first_times()[:n]
    outcome = prepared.first_times(prepared.is_kind(outcome_kinds))[:n]
    closed = closed_ns if closed_ns is not None else \
        closing_times(entities, prepared.schema, prepared.entity_ids, first, stacklevel=4)[0]
    return pd.DataFrame(
        {"first": first, "outcome": outcome, "closed": closed}, index=prepared.entity_ids
    )


def make_cutoffs(
    events,
    schema: EventSchema | None = None,
    *,
    entities: pd.DataFrame | None = None,
    start=None,
    end=None,
    freq: str = "MS",
    outcome_kinds=None,
    max_inactive: str | None = "365D",
) -> pd.DataFrame:
    """Training snapshots: one cutoff per dispute per grid date while the dispute is open.

    A dispute is open at grid date ``t`` when all of these hold:

    * it has started: its first event is strictly before ``t``;
    * it has not escalated: it has no outcome event strictly before ``t`` (an outcome at
      exactly ``t`` is the future, so it belongs to the label, not the history);
    * it is not closed: its ``closed_col`` time (entities table), if any, is after ``t``;
    * it is not dormant: if ``max_inactive`` is set, its last event before ``t`` is at most
      that long ago (a long-silent dispute is no longer tracked).

    Parameters
    ----------
    events : DataFrame or PreparedEvents
    schema : EventSchema, optional
    entities : DataFrame, optional
        Provides the closing times (``schema.closed_col``).
    start, end : datetime-like, optional
        Grid range; default from the midnight before the first event (on the clock the
        events were written in, e.g. Beijing's for ``+08:00`` times) to the last event.
    freq : str, default="MS"
        Grid frequency (pandas offset alias); "MS" = the first of every month, at midnight.
    outcome_kinds : sequence of str, optional
        Defaults to ``schema.outcome_kinds``.
    max_inactive : str or None, default="365D"

    Returns
    -------
    DataFrame
        Columns: the entity column and ``as_of``, sorted by ``as_of`` then entity. For
        timezone-aware events ``as_of`` is timezone-aware (UTC; the grid is in UTC), so the
        cutoffs can go back into :func:`make_labels` and the model as they are.
    """
    cutoffs = _grid_cutoffs(events, schema, entities=entities, start=start, end=end, freq=freq,
                            outcome_kinds=outcome_kinds, max_inactive=max_inactive, warn_no_outcome=True)
    if len(cutoffs) > _MANY_PER_DISPUTE:  # else no dispute can have that many
        per_dispute = len(cutoffs) / cutoffs[(schema or EventSchema()).entity_col].nunique()
        if per_dispute > _MANY_PER_DISPUTE:
            warnings.warn(f"freq {freq!r} makes {len(cutoffs):,} cutoffs, {per_dispute:,.0f} per dispute on average: "
                          "snapshots this close together repeat one another, and each later step (labels, "
                          "features, training) pays for every one. A coarser grid such as 'MS' (monthly) or '7D' "
                          "is usual for training.", DataWarning, stacklevel=2)
    return cutoffs


def _grid_cutoffs(events, schema, *, entities, start, end, freq, outcome_kinds, max_inactive,
                  warn_no_outcome: bool, closed_ns: np.ndarray | None = None) -> pd.DataFrame:
    """:func:`make_cutoffs`; ``warn_no_outcome``: warn when no outcome kind occurs (training;
    scoring a few open disputes' events, :func:`open_disputes`, holds none by nature);
    ``closed_ns``: the closing times already read, ``entities`` then unused (:func:`open_disputes`)."""
    schema = schema or EventSchema()
    prepared = prepare_events(events, schema)
    kinds = _outcome_kinds(schema, outcome_kinds)
    inactive_ns = _max_inactive_ns(max_inactive)
    ents = validate_entities(entities, schema, tz_aware=prepared.tz_aware if len(prepared) else None) \
        if entities is not None else None
    if closed_ns is not None:
        closed_ns = np.asarray(closed_ns, dtype=np.int64)
        if len(closed_ns) != len(prepared.entity_ids):
            raise DataError(f"closed_ns holds {len(closed_ns):,} closing time(s) for {len(prepared.entity_ids):,} "
                            "disputes: one per dispute, in the order of the prepared events' entity_ids.")
    spans = _dispute_spans(prepared, ents, kinds, closed_ns)
    if warn_no_outcome:
        _warn_if_no_outcome(prepared, kinds, bool((spans["outcome"] != NAT_NS).any()), "no dispute ever escalates", 4)
    clock = prepared.tz_aware if len(prepared) else None
    t0 = naive_utc(start, "start", events_aware=clock) if start is not None else pd.Timestamp(prepared.times_ns.min())
    t1 = naive_utc(end, "end", events_aware=clock) if end is not None else pd.Timestamp(prepared.times_ns.max())
    zone = prepared.zone if prepared.tz_aware and start is None else None
    if start is None:  # from the midnight before the first event (on the events' own clock): it never moves
        t0 = t0.normalize() if zone is None else t0.tz_localize("UTC").tz_convert(zone).normalize()
        t1 = t1 if zone is None else t1.tz_localize("UTC").tz_convert(zone)
    usual = "such as 'MS' (the first of every month) or '7D'"
    try:
        step = pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        what = f"is not a pandas frequency {usual} ({exc})."
        raise DataError(f"freq {freq!r} {what}", cli=f"[labels] freq = {freq!r} {what}") from None
    if step.n <= 0:  # '0D' divided by zero; '-7D' made no grid
        what = f"is not a step forward in time: give a positive frequency {usual}."
        raise DataError(f"freq {freq!r} {what}", cli=f"[labels] freq = {freq!r} {what}")
    grid = pd.date_range(t0, t1, freq=step)
    if len(grid) == 0:
        raise DataError(f"no grid dates between {t0} and {t1} at frequency {freq!r}.")
    if grid.tz is not None:
        grid = grid.tz_convert("UTC").tz_localize(None)
    grid_ns = ns_values(grid)

    first = spans["first"].to_numpy()
    stop = np.full(len(spans), np.iinfo(np.int64).max, dtype=np.int64)
    for col, inclusive in (("outcome", True), ("closed", False)):
        t = spans[col].to_numpy()
        has = t != NAT_NS
        # open at g requires g <= outcome (outcome at g is future) and g < closed
        bound = np.where(inclusive, t + 1, t)
        stop = np.where(has, np.minimum(stop, bound), stop)
    lo = np.searchsorted(grid_ns, first, side="right")  # first event strictly before g
    hi = np.searchsorted(grid_ns, stop, side="left")  # g < stop
    owner, pos = expand_ranges(lo, hi)
    as_of = grid_ns[pos]
    keep = np.ones(len(owner), dtype=bool)
    if inactive_ns is not None:
        # last event strictly before as_of, via one search over (entity, time) keys
        clock = Clock.for_range(len(spans) + 2, int(prepared.times_ns.min()), int(max(grid_ns.max(), prepared.times_ns.max())))
        timeline = Timeline(clock.keys(prepared.entity_codes, clock.ticks(prepared.times_ns)), prepared.times_ns, clock)
        q = timeline.position(owner, as_of) - 1
        q = np.maximum(q, 0)
        own = prepared.entity_codes[q] == owner  # else the search landed on another dispute
        last = prepared.times_ns[q]
        keep = ~own | ((as_of - last) <= inactive_ns)
    out = pd.DataFrame(
        {schema.entity_col: spans.index.to_numpy()[owner[keep]], "as_of": pd.to_datetime(as_of[keep])}
    )
    out["as_of"] = in_convention(out["as_of"].astype("datetime64[ns]"), prepared.tz_aware)
    return out.sort_values(["as_of", schema.entity_col], kind="stable").reset_index(drop=True)


def in_convention(as_of: pd.Series, tz_aware: bool) -> pd.Series:
    """Naive UTC times (the validated form) in the events' convention: UTC-aware for
    timezone-aware events, so that frames the library returns pass its own checks."""
    return as_of.dt.tz_localize("UTC") if tz_aware else as_of


def make_labels(
    events,
    cutoffs: pd.DataFrame,
    schema: EventSchema | None = None,
    *,
    horizon: str = "90D",
    outcome_kinds=None,
    observed_until=None,
) -> pd.DataFrame:
    """Label each cutoff: did an outcome event happen in ``[as_of, as_of + horizon)``?

    Outcome events before ``as_of`` are history, not label. A cutoff whose horizon runs
    past ``observed_until`` (default: the last event time) is *censored*: its label is 1
    if an outcome was already observed, else missing (``<NA>``), never a silent 0. Drop
    censored rows before training: keeping only their positives would bias the rate.

    Returns
    -------
    DataFrame
        The cutoffs (same order and index) with ``label`` (nullable Int8) and ``censored`` (bool);
        ``as_of`` parsed, in the events' timezone convention (UTC-aware for aware events).
        ``attrs["horizon"]`` records the horizon (:class:`~riskmodel.RiskModel` reads it).
    """
    schema = schema or EventSchema()
    prepared = prepare_events(events, schema)
    kinds = _outcome_kinds(schema, outcome_kinds)
    cut = validate_cutoffs(cutoffs, schema, tz_aware=prepared.tz_aware)
    h = parse_duration(horizon, "horizon", error=DataError).value
    end = naive_utc(observed_until, "observed_until", events_aware=prepared.tz_aware if len(prepared) else None
                    ) if observed_until is not None else pd.Timestamp(
        prepared.times_ns.max())
    end_ns = end.value
    is_out = prepared.is_kind(kinds)
    codes = prepared.entity_codes[is_out]
    times = prepared.times_ns[is_out]
    as_of = ns_values(cut["as_of"])
    q_codes = lookup_positions(prepared.entity_ids, cut[schema.entity_col])  # 2895 and "2895": one dispute
    _warn_if_no_outcome(prepared, kinds, bool(is_out.any()), "every label is 0")
    n = len(prepared.entity_ids)
    q_codes = np.where(q_codes < 0, n, q_codes)
    clock = Clock.for_range(n + 2, int(prepared.times_ns.min()), int(max(prepared.times_ns.max(), as_of.max() + h)))
    # exact (unquantised) test: outcome times >= as_of and < as_of + h, via sorted (code, time)
    keys = clock.keys(codes, clock.ticks(times))
    lo_pos = np.searchsorted(keys, clock.keys(q_codes, clock.ticks(as_of)), side="left")
    hi_pos = np.searchsorted(keys, clock.keys(q_codes, clock.ticks(as_of + h)), side="right")
    # refine the quantised search with exact times: outcomes in [as_of, as_of + h)
    owner, pos = expand_ranges(lo_pos, hi_pos)
    t = times[pos]
    inside = (t >= as_of[owner]) & (t < as_of[owner] + h)
    hit = np.bincount(owner[inside], minlength=len(cut)) > 0
    # Censored = the horizon is not fully observed, whatever happened in the observed part:
    # keeping early positives but dropping negatives of the same rows would bias the rate.
    censored = as_of + h > end_ns
    out = cutoffs.copy()
    out["as_of"] = in_convention(cut["as_of"], prepared.tz_aware)
    out["label"] = pd.array(hit.astype(np.int8), dtype="Int8")
    out.loc[censored & ~hit, "label"] = pd.NA
    out["censored"] = censored
    if len(out) and censored.all():
        warnings.warn(f"every cutoff is censored: the horizon {horizon} after each runs past observed_until "
                      f"({end}), so no label is known; a shorter horizon, or cutoffs before "
                      f"{end - pd.Timedelta(h)}.", DataWarning, stacklevel=2)
    out.attrs["horizon"] = str(horizon)  # RiskModel.fit leaves this gap between its time folds
    return out


def open_disputes(
    events,
    as_of,
    schema: EventSchema | None = None,
    *,
    entities: pd.DataFrame | None = None,
    outcome_kinds=None,
    max_inactive: str | None = "365D",
    closed_ns: np.ndarray | None = None,
) -> pd.DataFrame:
    """Cutoffs for scoring: every dispute open at ``as_of`` (same rule as :func:`make_cutoffs`).

    ``as_of`` in the output is in the events' convention (UTC-aware for timezone-aware
    events), so the cutoffs go straight into ``predict``.

    Parameters
    ----------
    events : DataFrame or PreparedEvents
    as_of : datetime-like
    schema : EventSchema, optional
    entities : DataFrame, optional
        Provides the closing times (``schema.closed_col``).
    outcome_kinds : sequence of str, optional
        Defaults to ``schema.outcome_kinds``.
    max_inactive : str or None, default="365D"
    closed_ns : ndarray of int64, optional
        The disputes' closing times, already read by the caller with
        :func:`~riskmodel.data.closing_times` (nanoseconds, :data:`~riskmodel.data.NAT_NS`
        where none), one per dispute in the order of ``prepare_events(events,
        schema).entity_ids``. They are used as given, instead of ``entities``' (pass one or
        the other): a caller that needs the closings too (the nightly batch's not-open
        reasons) reads them once, and any placeholder warning is the one ``closing_times``
        gave it.

    Returns
    -------
    DataFrame
        Columns: the entity column and ``as_of``, sorted by entity.
    """
    if closed_ns is not None and entities is not None:
        raise DataError("pass entities or closed_ns (the closing times read from them), not both.")
    schema = schema or EventSchema()
    prepared = prepare_events(events, schema)
    as_of = naive_utc(as_of, "as_of", events_aware=prepared.tz_aware if len(prepared) else None)
    cut = _grid_cutoffs(prepared, schema, entities=entities, start=as_of, end=as_of, freq="D",
                        outcome_kinds=outcome_kinds, max_inactive=max_inactive, warn_no_outcome=False,
                        closed_ns=closed_ns)
    cut["as_of"] = in_convention(pd.Series(as_of, index=cut.index, dtype="datetime64[ns]"), prepared.tz_aware)
    return cut
