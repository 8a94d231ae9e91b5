"""Runs of rows that share a code (rows grouped by entity, in time order): the one owner of
"the first event of each dispute" and "the first outcome of each dispute"."""

from __future__ import annotations

import numpy as np

from ._schema import NAT_NS

__all__ = ["first_per_code", "run_starts"]


def run_starts(codes: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """For rows grouped by ``codes``: whether each row is the first of its code (among the
    rows where ``mask``; the others are ``False``)."""
    codes = np.asarray(codes)
    if mask is None:
        return np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, dtype=bool)
    rows = np.flatnonzero(mask)
    out = np.zeros(len(codes), dtype=bool)
    out[rows] = run_starts(codes[rows])
    return out


def first_per_code(codes: np.ndarray, values: np.ndarray, n_codes: int, mask: np.ndarray | None = None) -> np.ndarray:
    """For rows grouped by ``codes`` in time order: each code's value (int64 ns) at its first
    row among the rows where ``mask``; :data:`NAT_NS` for a code without one.

    >>> import numpy as np
    >>> first_per_code(np.array([0, 0, 2]), np.array([5, 7, 9]), 3).tolist()[::2]
    [5, 9]
    """
    out = np.full(n_codes, NAT_NS, dtype=np.int64)
    starts = run_starts(codes, mask)
    out[np.asarray(codes)[starts]] = np.asarray(values)[starts]
    return out
