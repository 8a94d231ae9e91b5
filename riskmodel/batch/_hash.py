"""A hash of each id's text, read from Arrow's buffers (no Python string is made).

The night parts its disputes into chunks by a hash of each id's text, so that ``2895`` and
``"2895"`` share a chunk whatever type each input gives them. Hashing ten million ids as
Python strings (``pd.util.hash_array`` of an object array) made a third of the partition's
time; :func:`text_hash` reads the UTF-8 bytes of an Arrow string array as NumPy arrays
instead. :func:`text_hash_reference` is its readable twin, and the tests hold them equal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["text_hash", "text_hash_reference"]

#: the polynomial's base: FNV-1's 64-bit prime
_BASE = 0x100000001B3
#: bytes hashed at once (each takes about 32 bytes of temporaries: its term, index and power)
_BLOCK_BYTES = 1 << 22


def text_hash_reference(values) -> np.ndarray:
    """The hash of each string (``None``: as ``""``), one at a time: ``sum((b_j + 1) *
    P**(j + 1))`` over its UTF-8 bytes ``b_j``, modulo ``2**64``, then mixed by pandas'
    ``hash_array`` (its polynomial sums of nearby ids differ in few bits)."""
    sums = []
    for value in values:
        total, weight = 0, 1
        for byte in ("" if value is None else value).encode("utf-8"):
            weight = weight * _BASE % 2**64
            total = (total + (byte + 1) * weight) % 2**64
        sums.append(total)
    return pd.util.hash_array(np.array(sums, dtype=np.uint64), categorize=False)


def text_hash(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """:func:`text_hash_reference` of an Arrow string array, computed on its buffers: each
    byte's term in one NumPy pass (``uint64`` arithmetic wraps modulo ``2**64``), summed per
    string by ``np.add.reduceat``; in blocks of rows of about ``_BLOCK_BYTES`` bytes."""
    text = pc.fill_null(text.cast(pa.large_string()), "")  # 64-bit offsets, nulls as ""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int64)[text.offset:text.offset + n + 1]
    data = text.buffers()[2]
    data = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    longest = int(lengths.max(initial=0))
    powers = np.cumprod(np.full(max(longest, 1), _BASE, dtype=np.uint64))  # P**1, P**2, ...
    sums = np.zeros(n, dtype=np.uint64)
    starts = offsets[:-1]
    edges = np.unique(np.r_[0, np.searchsorted(starts, np.arange(offsets[0], offsets[-1], _BLOCK_BYTES)), n])
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        first, last = offsets[lo], offsets[hi]
        if first == last:
            continue
        row_lengths = lengths[lo:hi]
        row_starts = starts[lo:hi] - first
        terms = data[first:last].astype(np.uint64) + np.uint64(1)
        terms *= powers[np.arange(last - first) - np.repeat(row_starts, row_lengths)]
        filled = row_lengths > 0
        sums[lo:hi][filled] = np.add.reduceat(terms, row_starts[filled])
    return pd.util.hash_array(sums, categorize=False)
