"""The per-kind part of the counts and recency families: windowed counts and the days since
the last event of each kind. Two kernels give the same values; :func:`tally_kinds` is the
one place that chooses between them.

* :func:`tally_by_kind` - the readable reference: per kind, one cumulative sum over the
  sorted events, read at each cutoff's window positions.
* :class:`LevelTally` - one cutoff per dispute (nightly scoring): each event is tallied
  into its cutoff's (kind, window) cells by how many windows hold it; also sets the window
  positions the other families read, so no position is searched.

``tests/test_features.py`` holds the kernels equal on random logs, through
:func:`forced_tally`.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

import numpy as np

from ..data import NS_PER_DAY, window_ns

__all__ = ["LevelTally", "choose_tally", "cumulative", "forced_tally", "tally_by_kind", "tally_kinds"]

_NO_CUTOFF = np.iinfo(np.int64).min // 2  # the level edge of an entity without a cutoff: far past
_LEVEL_EVENTS = 1 << 15  # events tallied at once: temporaries small enough for malloc to reuse (no page faults)
_DENSE_CELLS = 8  # (level, kind, cutoff) cells per event up to which one bincount counts them
_FORCED: contextvars.ContextVar[str | None] = contextvars.ContextVar("riskmodel_tally", default=None)


def cumulative(mask: np.ndarray) -> np.ndarray:
    """``cum[p]`` = number of true values in ``mask[:p]`` (length ``len(mask) + 1``)."""
    cum = np.zeros(len(mask) + 1, dtype=np.int32 if len(mask) < 2**31 else np.int64)
    np.cumsum(mask, out=cum[1:])
    return cum


def tally_by_kind(comp, kinds, windows, counts: bool, recency: bool) -> None:
    """The per-kind part of :meth:`add_counts_and_recency`, one pass per kind: its
    cumulative count, gathered at the shared window positions."""
    for code, kind in enumerate(kinds):
        slug = comp.b.kind_slugs_[kind]
        mask = comp.kinds == code
        cum = cumulative(mask)  # one pass per kind, shared by both families
        if counts:
            for w, values in comp.windowed_counts(mask, windows, cum).items():
                comp.put(f"count_{slug}_{w}", values)
        if recency:
            last, has = comp.last_time(mask, cum)
            comp.put(f"days_since_last_{slug}", comp.days_between(comp.q_as_of, last, has))


class LevelTally:
    """The tally by level of one :class:`~riskmodel.features.FeatureComputation` (see
    :meth:`levels`); applies when :attr:`edges` is not ``None``."""

    def __init__(self, comp):
        self.comp = comp

    @functools.cached_property
    def edges(self) -> np.ndarray | None:
        """Per entity, its cutoff's ``as_of`` (far past without one), when each entity has at
        most one cutoff (nightly scoring): the tally by level applies; else ``None``."""
        n_entities = len(self.comp.ev.entity_ids)
        known = self.comp.q_codes[self.comp.q_codes < n_entities]
        if len(self.comp.ev) == 0 or not bool((known[1:] > known[:-1]).all()):
            return None
        edges = np.full(n_entities + 1, _NO_CUTOFF, dtype=np.int64)
        edges[self.comp.q_codes] = self.comp.q_as_of
        return edges

    def levels(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """For sorted events ``lo..hi``: their level, and ``delta``, their cutoff's (their
        entity's) ``as_of`` minus their time. Level 0: not before ``as_of`` (``delta <= 0``) or no
        cutoff; 1: before it, in no finite window; then one more per finite window holding it
        (``delta <= w``), widest first: window ``j`` of :attr:`windows` holds levels ``> j``."""
        delta = self.edges[self.comp.ev.entity_codes[lo:hi]]
        delta -= self.comp.ev.times_ns[lo:hi]
        before = delta > 0
        level = before.astype(np.int8)
        for width in self.widths:
            level += delta <= width
        level *= before  # at or after as_of: in no window
        return level, delta

    @functools.cached_property
    def windows(self) -> list[str]:
        """The count windows from the widest (``"all"``) to the narrowest."""
        return sorted(self.comp.b._window_labels(), key=lambda w: -np.inf if w == "all" else -window_ns(w))

    @functools.cached_property
    def widths(self) -> list[int]:
        """The finite windows of :attr:`windows` in nanoseconds."""
        return [window_ns(w) for w in self.windows[1:]]

    def run(self, kinds, counts: bool, recency: bool) -> None:
        """The per-kind part of :meth:`add_counts_and_recency` from :meth:`levels`: each event
        adds one to its cutoff's (kind, window) cells for the windows that hold it (one
        ``np.bincount`` where the cells are dense, :meth:`_count_cells`; else ``np.add.at`` over
        ever fewer events, widest window first); ``np.fmin.at`` keeps the days since the last
        event of each kind. Also sets the window positions, so none is searched."""
        n_entities = len(self.comp.ev.entity_ids)
        entity_start = np.zeros(n_entities + 2, dtype=np.int64)
        np.cumsum(np.bincount(self.comp.ev.entity_codes, minlength=n_entities + 1), out=entity_start[1:])
        # the sorted cutoff of entity e: how many cutoffs sort before its slot 2e + 1 (those
        # in slots up to 2e); the next cutoff's when it has none (its events are at level 0
        # and never read); non-decreasing along the sorted events
        slots_up_to = np.cumsum(np.bincount(self.comp.q_slots, minlength=2 * n_entities + 1))
        row_of_entity = np.ascontiguousarray(slots_up_to[0::2])
        n_q = len(self.comp.q_slots)
        # (cutoff, column) of the column-major matrix at flat position column * n_q + cutoff
        flat = self.comp.matrix.T.reshape(-1)
        one = np.float32(1)
        count_columns, count_blocks, days_columns = self.comp.b._fitted(
            ("tally columns", tuple(kinds), counts, recency), lambda: self._columns(kinds, counts, recency))
        count_offsets = [n_q * columns for columns in count_columns] if counts else None
        if recency:
            # days since the last event of each kind: the least days since any of them (float32
            # rounding keeps the order, so it is the rounded least value); np.fmin skips the NaN
            # the columns start with, which stays where there is no event
            days_offsets = n_q * days_columns
            self.comp.matrix[:, days_columns] = np.nan
        n_windows, n_kinds = len(self.windows), len(kinds)
        in_window = np.zeros((n_windows, n_q), dtype=np.int64)  # events, all kinds
        for lo in range(0, len(self.comp.ev), _LEVEL_EVENTS):  # bounded temporaries
            hi = min(lo + _LEVEL_EVENTS, len(self.comp.ev))
            rows = row_of_entity[self.comp.ev.entity_codes[lo:hi]]
            kind = self.comp.kinds[lo:hi]
            level, delta = self.levels(lo, hi)
            span = int(rows[-1]) - int(rows[0]) + 1  # the slice's rows are one run of neighbours
            dense = counts and (n_windows + 1) * n_kinds * span <= _DENSE_CELLS * (hi - lo)
            if dense:
                self._count_cells(rows, kind, level, n_kinds, count_blocks, in_window)
                if not recency:
                    continue
            positions = None  # the events of the current window, as positions in the slice
            for j in range(n_windows):  # window j holds the levels above j
                held = level > j if positions is None else level[positions] > j
                if positions is None:
                    positions = None if held.all() else np.flatnonzero(held)
                else:
                    positions = positions[held]
                if positions is not None and len(positions) == 0:
                    break
                window_rows = rows if positions is None else rows[positions]
                window_kind = kind if positions is None else kind[positions]
                if not dense:
                    held_first = int(window_rows[0])
                    in_window[j, held_first : int(window_rows[-1]) + 1] += np.bincount(window_rows - held_first)
                    if counts:
                        np.add.at(flat, count_offsets[j][window_kind] + window_rows, one)
                if recency and j == 0:
                    elapsed = delta if positions is None else delta[positions]  # as_of - time
                    np.fmin.at(flat, days_offsets[window_kind] + window_rows, (elapsed / NS_PER_DAY).astype(np.float32))
                    if dense:  # counted above
                        break
        # positions of the edges, as the searches would find them
        start = entity_start[self.comp.q_codes]  # an id without events: after every event, as searched
        self.comp._positions["all"] = start
        self.comp._positions["as_of"] = start + in_window[0]
        for j, w in enumerate(self.windows[1:], start=1):  # in place: no new pages to touch
            self.comp._positions[w] = np.subtract(self.comp._positions["as_of"], in_window[j], out=in_window[j])

    def _columns(self, kinds, counts: bool, recency: bool) -> tuple[list | None, list | None, np.ndarray | None]:
        """The matrix columns :meth:`run` writes (``None`` for a family not asked): per window
        (:attr:`windows`), the count columns of ``kinds``, and the same as a slice where they
        are side by side (no copies); the days-since-last columns of ``kinds``."""
        index = self.comp.column_index
        slugs = [self.comp.b.kind_slugs_[kind] for kind in kinds]
        if not counts:
            count_columns = count_blocks = None
        else:
            count_columns = [np.array([index[f"count_{slug}_{w}"] for slug in slugs]) for w in self.windows]
            count_blocks = [slice(int(c[0]), int(c[-1]) + 1) if (np.diff(c) == 1).all() else c for c in count_columns]
        return count_columns, count_blocks, np.array([index[f"days_since_last_{slug}"] for slug in slugs]) if recency \
            else None

    def _count_cells(self, rows, kind, level, n_kinds: int, count_blocks, in_window: np.ndarray) -> None:
        """Count a slice of events in dense (level, kind, cutoff) cells: one ``np.bincount``,
        summed from the top level down (window ``j`` holds the levels above ``j``), added to each
        window's count columns (``count_blocks``) and to ``in_window`` (every kind)."""
        n_windows = len(self.windows)
        first, span = int(rows[0]), int(rows[-1]) - int(rows[0]) + 1  # the slice's rows are one run
        cells = np.multiply(level, n_kinds, dtype=np.int64)
        cells += kind
        cells *= span
        cells += rows
        cells -= first
        above = np.bincount(cells, minlength=(n_windows + 1) * n_kinds * span).reshape(n_windows + 1, n_kinds, span)
        for level_j in reversed(range(1, n_windows)):  # events at or above each level
            above[level_j] += above[level_j + 1]
        block = self.comp.matrix[first : first + span]  # rows past the last cutoff: level 0 only
        above = above[1:, :, : len(block)]  # above[j]: above level j, those in window j
        in_window[:, first : first + len(block)] += above.sum(axis=1)  # every kind
        above = above.astype(np.float32)  # adding int64 to the float32 matrix casts slowly
        for j, columns in enumerate(count_blocks):
            block[:, columns] += above[j].T


def choose_tally(levels: LevelTally) -> str:
    """The kernel for ``levels``' computation: ``by_level`` for one cutoff per dispute, else ``by_kind``."""
    return "by_level" if levels.edges is not None else "by_kind"


def tally_kinds(comp, kinds, windows, counts: bool, recency: bool) -> None:
    """Write the per-kind count and recency columns of ``comp`` with the kernel
    :func:`choose_tally` picks (or the one :func:`forced_tally` sets)."""
    levels = LevelTally(comp)  # its edges, computed once, choose the kernel and serve it
    method = _FORCED.get() or choose_tally(levels)
    if method == "by_level":
        if levels.edges is None:
            raise ValueError("the tally by level needs one cutoff per dispute")
        levels.run(kinds, counts, recency)
    elif method == "by_kind":
        tally_by_kind(comp, kinds, windows, counts, recency)
    else:
        raise ValueError(f"unknown tally {method!r}")


@contextlib.contextmanager
def forced_tally(method: str):
    """Use kernel ``method`` (``by_kind``, ``by_level``) for every
    transform in this block: for tests and benchmarks comparing the kernels."""
    token = _FORCED.set(method)
    try:
        yield
    finally:
        _FORCED.reset(token)
