"""Sorted event timelines searchable by (entity, time): the engine under every feature.

Events are encoded once as integer keys ``entity_code * span + tick`` (``tick`` is the
time in a resolution coarse enough that the key fits in int64), sorted, and every
question "how many events of this entity happened before time x" becomes one
``np.searchsorted``. Memory is O(events + cutoffs); nothing is ever materialised as
events x cutoffs.

Quantisation changes no value: the key search finds the events in ticks strictly below the
tick of ``x`` (they happened strictly before ``x``), and :meth:`Clock.search` then reads the
exact times of the few events sharing ``x``'s own tick, when ``x`` is not on the clock's grid.
So a count is the same at any resolution, and the resolution (which depends on the number of
entities and on the time range, future events included) never shows in a feature.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import ConfigError

RESOLUTIONS_NS = (1, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000)
_KEY_LIMIT = 2**62
NS_PER_DAY = 86_400 * 1_000_000_000


@functools.lru_cache(maxsize=256)
def window_ns(window) -> int:
    """A window (``"30D"``, a Timedelta) in nanoseconds, as :class:`pandas.Timedelta` reads
    it; remembered, as a builder's few windows are read on every transform."""
    return int(pd.Timedelta(window).value)


def parse_duration(value, name: str, *, error: type[ValueError] = ConfigError) -> pd.Timedelta:
    """``value`` as a positive :class:`pandas.Timedelta` (``"90D"``, ``"12h"``, a Timedelta).

    Raises ``error`` (a riskmodel error class) naming the parameter when it is not a duration,
    not positive, or a bare number (pandas would read ``90`` as 90 nanoseconds).
    """
    bare = isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?\s*", value)
    number = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.timedelta64)
    if bare or number:
        raise error(f"{name} {value!r} has no unit; give one, e.g. '{str(value).strip()}D' for days or "
                    f"'{str(value).strip()}h' for hours.")
    try:
        delta = pd.Timedelta(value)
    except (ValueError, TypeError) as exc:
        raise error(f"{name} {value!r} is not a duration such as '90D'.") from exc
    if pd.isna(delta) or delta <= pd.Timedelta(0):
        raise error(f"{name} must be positive, got {value!r}.")
    return delta


def duration_text(value) -> str:
    """A duration in words for people: ``"90D"`` -> ``"90 days"``, ``"1D"`` -> ``"1 day"``,
    ``"12h"`` -> ``"12 hours"``, ``"36h"`` -> ``"1.5 days"`` (never ``90 days 00:00:00``).

    >>> duration_text("90D"), duration_text(pd.Timedelta(hours=12)), duration_text("1D")
    ('90 days', '12 hours', '1 day')
    """
    delta = pd.Timedelta(value)
    for unit in ("day", "hour", "minute"):  # the largest unit of which there is one or more
        n = delta / pd.Timedelta(**{f"{unit}s": 1})
        if n >= 1 or unit == "minute" or delta == pd.Timedelta(0):
            return f"{n:g} {unit}" + ("" if n == 1 else "s")


@dataclass
class Clock:
    """Maps nanosecond times to ticks and (entity, tick) to sortable int64 keys."""

    t_min_ns: int
    resolution: int
    span: int

    @classmethod
    def for_range(cls, n_entities: int, t_min_ns: int, t_max_ns: int) -> Clock:
        for resolution in RESOLUTIONS_NS:  # the finest (ns per tick) at which every (entity, tick) key fits in int64
            if (n_entities + 1) * ((t_max_ns - t_min_ns) // resolution + 3) < _KEY_LIMIT:
                break
        else:
            raise OverflowError("time range too wide for the number of entities")  # pragma: no cover
        # align the origin to the resolution, so ticks are absolute floors of time
        t_min_ns = (t_min_ns // resolution) * resolution
        span = (t_max_ns - t_min_ns) // resolution + 3
        return cls(t_min_ns=t_min_ns, resolution=resolution, span=span)

    def ticks(self, times_ns: np.ndarray) -> np.ndarray:
        """Floor times to ticks, clipped into ``[0, span - 1]`` (so keys never cross entities)."""
        ticks = np.floor_divide(times_ns - self.t_min_ns, self.resolution)
        # np.minimum/np.maximum: np.clip's Python wrapper costs ~3x more on small arrays
        return np.minimum(np.maximum(ticks, 0), self.span - 1)

    def keys(self, codes: np.ndarray, ticks: np.ndarray) -> np.ndarray:
        return codes.astype(np.int64) * self.span + ticks

    def search(self, keys: np.ndarray, times_ns: np.ndarray, query_keys: np.ndarray, query_ns: np.ndarray,
               side: str = "left") -> np.ndarray:
        """Exact positions in sorted event ``keys`` (``times_ns`` their times): per query (its
        entity's key at the tick of ``query_ns``), the events of lower keys plus those of the
        query's entity before its time (``side="left"``) or at or before it (``"right"``).

        The key search settles every event outside the query's own tick; only the events in
        that tick (few) are read by their times. For ``"left"`` none needs reading when the
        query time is on the grid (every event of its tick is at or after it). The clock must
        cover the events' times (:meth:`for_range` of a range holding them, as every caller's
        does); a query time outside it is clipped to its first or last tick, which is exact.
        """
        positions = np.searchsorted(keys, query_keys, side=side)
        if side == "left":
            rows = np.flatnonzero((query_ns - self.t_min_ns) % self.resolution)
        else:
            rows = np.arange(len(query_keys))
        if len(rows) == 0:
            return positions
        other = np.searchsorted(keys, query_keys[rows], side="right" if side == "left" else "left")
        lo, hi = (positions[rows], other) if side == "left" else (other, positions[rows])
        owner, at = expand_ranges(lo, hi)  # the events in each query's tick
        if len(at):
            times, query = times_ns[at], query_ns[rows][owner]
            if side == "left":  # events of the tick before the query: counted too
                positions[rows] += np.bincount(owner[times < query], minlength=len(rows))
            else:  # events of the tick after the query: not counted
                positions[rows] -= np.bincount(owner[times > query], minlength=len(rows))
        return positions


class Timeline:
    """A subset of events, sorted by (entity, time), answering counts before query times.

    Parameters
    ----------
    keys : ndarray of int64
        Sorted event keys (see :class:`Clock`).
    times_ns : ndarray of int64
        The events' exact times, aligned with ``keys``.
    clock : Clock
        The clock of the keys.
    """

    def __init__(self, keys: np.ndarray, times_ns: np.ndarray, clock: Clock):
        self.keys = keys
        self.times_ns = times_ns
        self.clock = clock

    @classmethod
    def of(cls, clock: Clock, codes: np.ndarray, times_ns: np.ndarray) -> Timeline:
        """The events (``codes``: their entity, group or party; ``times_ns``) in key order."""
        keys = clock.keys(codes, clock.ticks(times_ns))
        order = np.argsort(keys, kind="stable")
        return cls(keys[order], times_ns[order], clock)

    def position(self, codes: np.ndarray, times_ns: np.ndarray, side: str = "left") -> np.ndarray:
        """Number of events of lower codes, plus those of each ``codes`` strictly before
        ``times_ns`` (exact, see :meth:`Clock.search`; ``side="right"``: at or before)."""
        keys = self.clock.keys(codes, self.clock.ticks(times_ns))
        return self.clock.search(self.keys, self.times_ns, keys, times_ns, side=side)

    def start(self, codes: np.ndarray) -> np.ndarray:
        """Number of events of lower codes: where each code's events start."""
        return np.searchsorted(self.keys, self.clock.keys(codes, np.zeros_like(codes)), side="left")


def local_hours(times_ns: np.ndarray, zone: str | None) -> np.ndarray:
    """The hour of day (0-23) of UTC nanosecond times on the clock of ``zone`` (a zone name,
    a UTC offset ``"+08:00"``, or ``None``: the times' own clock, naive times)."""
    hour = 3_600_000_000_000
    offset = re.fullmatch(r"(?:UTC)?([+-])(\d{2}):?(\d{2})", zone) if zone else None
    if zone is None or zone in ("UTC", "Z") or offset:
        shift = 0 if not offset else (1 if offset.group(1) == "+" else -1) * (
            int(offset.group(2)) * hour + int(offset.group(3)) * hour // 60)
        return ((times_ns + shift) // hour) % 24
    local = pd.DatetimeIndex(times_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(zone)
    return np.asarray(local.hour, dtype=np.int64)


def expand_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges ``[starts[i], stops[i])``: returns (owner index, position) pairs."""
    lengths = np.maximum(stops - starts, 0)
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, np.repeat(starts, lengths) + offsets
