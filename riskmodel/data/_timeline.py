"""Sorted event timelines searchable by (entity, time): the engine under every feature.

Events are encoded once as integer keys ``entity_code * span + tick`` (``tick`` is the
time in a resolution coarse enough that the key fits in int64), sorted, and every
question "how many events of this entity happened before time x" becomes one
``np.searchsorted``. Memory is O(events + cutoffs); nothing is ever materialised as
events x cutoffs.

Quantisation never leaks: an event is counted before ``x`` only if its tick is strictly
below the tick of ``x``, which implies it happened strictly before ``x``. When times are
not multiples of the chosen resolution, an event in the same tick as ``x`` but earlier
is (conservatively) not counted; :func:`choose_resolution` picks the finest resolution
that fits, one second or finer for any realistic log.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .._errors import ConfigError

RESOLUTIONS_NS = (1, 1_000, 1_000_000, 1_000_000_000, 60_000_000_000, 3_600_000_000_000)
_KEY_LIMIT = 2**62
NS_PER_DAY = 86_400 * 1_000_000_000


def parse_duration(value, name: str, *, error: type[ValueError] = ConfigError) -> pd.Timedelta:
    """``value`` as a positive :class:`pandas.Timedelta` (``"90D"``, ``"12h"``, a Timedelta).

    Raises ``error`` (a riskmodel error class) naming the parameter when it is not a duration
    or not positive.
    """
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
    days = delta / pd.Timedelta(days=1)
    if days >= 1 or days == 0:
        return f"{days:g} day" + ("" if days == 1 else "s")
    hours = delta / pd.Timedelta(hours=1)
    if hours >= 1:
        return f"{hours:g} hour" + ("" if hours == 1 else "s")
    minutes = delta / pd.Timedelta(minutes=1)
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def choose_resolution(n_entities: int, t_min_ns: int, t_max_ns: int) -> int:
    """Finest resolution (ns per tick) at which every (entity, tick) key fits in int64."""
    for resolution in RESOLUTIONS_NS:
        span = (t_max_ns - t_min_ns) // resolution + 3
        if (n_entities + 1) * span < _KEY_LIMIT:
            return resolution
    raise OverflowError("time range too wide for the number of entities")  # pragma: no cover


@dataclass
class Clock:
    """Maps nanosecond times to ticks and (entity, tick) to sortable int64 keys."""

    t_min_ns: int
    resolution: int
    span: int

    @classmethod
    def for_range(cls, n_entities: int, t_min_ns: int, t_max_ns: int) -> Clock:
        resolution = choose_resolution(n_entities, t_min_ns, t_max_ns)
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


class Timeline:
    """A subset of events, sorted by (entity, time), answering counts before query keys.

    Parameters
    ----------
    keys : ndarray of int64
        Sorted event keys (see :class:`Clock`).
    times_ns : ndarray of int64
        The events' exact times, aligned with ``keys``.
    """

    def __init__(self, keys: np.ndarray, times_ns: np.ndarray):
        self.keys = keys
        self.times_ns = times_ns

    def position(self, query_keys: np.ndarray) -> np.ndarray:
        """Number of events with key strictly below each query key (queries sorted = fast)."""
        return np.searchsorted(self.keys, query_keys, side="left")

    def position_after(self, query_keys: np.ndarray) -> np.ndarray:
        """Number of events with key at or below each query key."""
        return np.searchsorted(self.keys, query_keys, side="right")


def expand_ranges(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten ranges ``[starts[i], stops[i])``: returns (owner index, position) pairs."""
    lengths = np.maximum(stops - starts, 0)
    owner = np.repeat(np.arange(len(starts)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return owner, np.repeat(starts, lengths) + offsets
