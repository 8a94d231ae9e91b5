"""Integer keys for short strings, and a stable radix sort of such keys.

Hashing ten million id strings (``pd.factorize``) is the slowest step of validating a
large event log. Ids and codes are usually short, though: a string of at most 8 bytes
*is* a 64-bit integer once its UTF-8 bytes are read big-endian and zero-padded, and those
integers compare exactly like the strings. Sorting such integers needs no hash table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["arrow_string_array", "short_string_keys", "stable_radix_argsort"]

KEY_BYTES = 8
# PREFIX_MASKS[n]: the n most significant bytes of a 64-bit word
_PREFIX_MASKS = np.array(
    [0] + [((1 << (8 * n)) - 1) << (64 - 8 * n) for n in range(1, KEY_BYTES + 1)], dtype=np.uint64
)


def arrow_string_array(values) -> pa.Array | None:
    """The Arrow string array behind a pandas column (one chunk), or ``None`` if it has none."""
    dtype = getattr(values, "dtype", None)
    arrow_backed = (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow") or (
        isinstance(dtype, pd.ArrowDtype) and dtype.pyarrow_dtype in (pa.string(), pa.large_string())
    )
    if not arrow_backed or not isinstance(values, (pd.Series, pd.Index)):
        return None
    try:
        array = pa.array(values.array)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return None
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return None
    return array


def short_string_keys(values) -> np.ndarray | None:
    """Each string of an Arrow-backed column as one ``uint64`` key, or ``None``.

    The key is the string's UTF-8 bytes read as a big-endian integer, zero-padded to 8
    bytes. When no string is longer than 8 bytes and none contains a NUL byte, equal keys
    mean equal strings and keys sort like the strings (UTF-8 byte order is code point
    order). Otherwise, and for nulls or columns not backed by Arrow, the answer is
    ``None``: the caller takes its general path.

    Parameters
    ----------
    values : Series or Index
        A string column.

    Returns
    -------
    ndarray of uint64 or None
    """
    array = arrow_string_array(values)
    if array is None or array.null_count:
        return None
    if len(array) == 0:
        return np.zeros(0, dtype=np.uint64)
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    lengths = np.diff(offsets)
    if int(lengths.max()) > KEY_BYTES:
        return None
    first, last = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[first:last] if last > first else np.zeros(0, np.uint8)
    if len(data) and int(data.min()) == 0:  # "a" and "a\0" would share a key
        return None
    padded = np.zeros(len(data) + KEY_BYTES, dtype=np.uint8)
    padded[: len(data)] = data
    # 8 bytes starting at every byte: a strided view, read only at the strings' starts
    words = np.ndarray(shape=(len(data) + 1,), dtype=">u8", buffer=padded, strides=(1,))
    keys = words[offsets[:-1] - first].astype(np.uint64)
    keys &= _PREFIX_MASKS[lengths]
    return keys


def stable_radix_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of ``uint64`` keys in as few 16-bit radix passes as their values allow.

    Each 16-bit digit that varies is replaced by its rank among the digit's values present,
    and neighbouring digits are merged while the product of their value counts fits in
    16 bits (ids like ``"D0012345"`` use 100 values per two-byte digit: two passes, not
    four). Each pass is NumPy's stable sort of ``uint16``, a radix sort.

    Parameters
    ----------
    keys : ndarray of uint64

    Returns
    -------
    ndarray of int64
        Positions that sort ``keys``; equal keys keep their input order.
    """
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    varying = int(np.bitwise_or.reduce(keys)) ^ int(np.bitwise_and.reduce(keys))
    passes: list[np.ndarray] = []  # least significant first
    digits, radix = None, 1
    for shift in range(0, 64, 16):
        if not (varying >> shift) & 0xFFFF:
            continue  # constant digit: nothing to sort on
        digit = (keys >> np.uint64(shift)).astype(np.uint16)
        present = np.bincount(digit, minlength=1 << 16) > 0
        n_values = int(np.count_nonzero(present))
        ranks = (np.cumsum(present) - 1).astype(np.uint16)[digit]
        if digits is not None and radix * n_values <= 1 << 16:
            digits += ranks * np.uint16(radix)  # below n_values * radix: no overflow
            radix *= n_values
        else:
            if digits is not None:
                passes.append(digits)
            digits, radix = ranks, n_values
    if digits is None:  # all keys equal
        return np.arange(len(keys), dtype=np.int64)
    passes.append(digits)
    order = np.argsort(passes[0], kind="stable")
    for digits in passes[1:]:
        order = order[np.argsort(digits[order], kind="stable")]
    return order.astype(np.int64, copy=False)
