"""Integer keys for short strings, and a stable sort of such keys packed with their positions.

Hashing ten million id strings (``pd.factorize``) is the slowest step of validating a
large event log. Ids and codes are usually short, though: a string of at most 8 bytes
*is* a 64-bit integer once its UTF-8 bytes are read big-endian and zero-padded, and those
integers compare exactly like the strings. Sorting such integers needs no hash table.
Longer ids (case numbers of 18-20 characters) are a few such words, compared word by word.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["arrow_string_array", "key_time_sort", "short_string_keys", "stable_key_sort", "string_keys"]

KEY_BYTES = 8
_CHUNK = 1 << 16  # keys packed at once: temporaries that stay in the cache
MAX_KEY_WORDS = 3  # strings of up to 24 bytes get keys
_MAX_BUCKET_BITS = 16  # key_time_sort splits rows into at most 2**16 buckets
_BUCKET_ROWS_BITS = 13  # ... of about 2**13 rows or fewer where the keys allow
_BLOCK_ROWS = 1 << 15  # rows of whole buckets finished at once (temporaries in the cache)
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
    """:func:`string_keys` of strings of at most 8 bytes: one ``uint64`` key per string, or ``None``."""
    keys = string_keys(values, max_words=1)
    return None if keys is None else keys[:, 0]


def string_keys(values, max_words: int = MAX_KEY_WORDS) -> np.ndarray | None:
    """Each string of an Arrow-backed column (Series or Index) as a row of ``uint64`` words
    (shape ``(n, n_words)``), or ``None``.

    The words are the string's UTF-8 bytes read as big-endian integers, 8 bytes each,
    zero-padded; as many words per row as the longest string needs. When no string is
    longer than ``8 * max_words`` bytes and none contains a NUL byte, equal rows mean equal
    strings and rows compared word by word (most significant first) sort like the strings
    (UTF-8 byte order is code point order). Otherwise, and for nulls or columns not backed
    by Arrow, the answer is ``None``: the caller takes its general path.
    """
    array = arrow_string_array(values)
    if array is None or array.null_count:
        return None
    if len(array) == 0:
        return np.zeros((0, 1), dtype=np.uint64)
    offset_type = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets = np.frombuffer(array.buffers()[1], dtype=offset_type)[array.offset : array.offset + len(array) + 1]
    lengths = np.diff(offsets)
    longest = int(lengths.max())
    if longest > KEY_BYTES * max_words:
        return None
    first, last = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)[first:last] if last > first else np.zeros(0, np.uint8)
    if len(data) and int(data.min()) == 0:  # "a" and "a\0" would share a key
        return None
    n_words = max(1, -(-longest // KEY_BYTES))
    if int(lengths.min()) == longest:  # fixed width (the usual id format): the bytes are the rows
        rows = data.reshape(len(array), longest)
        if longest == KEY_BYTES * n_words:
            return rows.view(">u8").astype(np.uint64)
        keys = np.zeros((len(array), n_words), dtype=np.uint64)  # zero-padded to whole words
        keys.view(np.uint8)[:, :longest] = rows
        return keys.byteswap(inplace=True) if sys.byteorder == "little" else keys  # read big-endian
    padded = np.zeros(len(data) + KEY_BYTES * n_words, dtype=np.uint8)
    padded[: len(data)] = data
    # 8 bytes starting at every byte: a strided view, read only where words start
    words = np.ndarray(shape=(len(padded) - KEY_BYTES + 1,), dtype=">u8", buffer=padded, strides=(1,))
    starts = offsets[:-1] - first
    keys = np.empty((len(array), n_words), dtype=np.uint64)
    for k in range(n_words):
        word = words[starts + KEY_BYTES * k].astype(np.uint64)
        word &= _PREFIX_MASKS[np.clip(lengths - KEY_BYTES * k, 0, KEY_BYTES)]  # bytes past the end: zero
        keys[:, k] = word
    return keys


def _varying_digits(keys: np.ndarray) -> list[int]:
    """The columns of ``keys.view(np.uint16)`` holding the 16-bit digits of rows of words
    that vary, least significant first."""
    varying = _down_columns(np.bitwise_or, keys) ^ _down_columns(np.bitwise_and, keys)
    columns = []
    for word in reversed(range(keys.shape[1])):  # from the last word, the least significant
        for position in range(4):
            if (int(varying[word]) >> (16 * position)) & 0xFFFF:
                columns.append(4 * word + (position if sys.byteorder == "little" else 3 - position))
    return columns


def _down_columns(ufunc: np.ufunc, rows: np.ndarray, block: int = 64) -> np.ndarray:
    """``ufunc.reduce(rows, axis=0)`` for a narrow C-ordered matrix, ``block`` rows side by
    side first (NumPy reduces a column of a matrix a few words wide several times slower)."""
    n, width = rows.shape
    whole = n // block * block
    if whole == 0:
        return ufunc.reduce(rows, axis=0)
    side_by_side = ufunc.reduce(rows[:whole].reshape(-1, block * width), axis=0)
    partial = ufunc.reduce(side_by_side.reshape(block, width), axis=0)
    return ufunc.reduce(np.vstack([partial[None], rows[whole:]]), axis=0)


def _packing(rows: np.ndarray, position_bits: int) -> tuple[int | None, list] | None:
    """How rows of key words pack into the bits above ``position_bits``, whatever their order:
    ``(least key, [])`` for one word whose range fits; else ``(None, digits)``, each varying
    16-bit digit as ``(column of rows.view(np.uint16), place value of each of its 65536
    values' rank among those present)``, least significant first; ``None`` when they do not fit."""
    if rows.shape[1] == 1:
        base = rows[:, 0].min()
        if int(rows[:, 0].max() - base).bit_length() + position_bits <= 64:
            return base, []
    digits, radix, as_digits = [], 1 << position_bits, rows.view(np.uint16)
    for column in _varying_digits(rows):
        present = np.zeros(1 << 16, dtype=bool)
        present[as_digits[:, column]] = True
        n_values = int(np.count_nonzero(present))
        if (radix * n_values - 1).bit_length() > 64:
            return None
        digits.append((column, (np.cumsum(present) - 1).astype(np.uint64) * np.uint64(radix)))
        radix *= n_values
    return None, digits


def stable_key_sort(keys: np.ndarray, then_by=None) -> tuple[np.ndarray, np.ndarray] | None:
    """Stable argsort of ``uint64`` keys (or rows of them), and where the sorted keys change;
    ``None`` when the keys do not pack into 64 bits beside the row positions (see below).

    One-word keys whose range (largest minus least) fits beside the row positions in 64
    bits are taken as their offsets from the least key (integer ids, times in their unit).
    Otherwise each 16-bit digit that varies is replaced by its rank among the digit's values
    present (ids like ``"D0012345"`` use 100 values per two-byte digit), which packs the
    keys into few bits. When those bits and the row positions fit in 64 bits together, one sort of
    the packed (key, position) integers gives the order: they are all distinct, so
    NumPy's fast unstable sort is stable here. The packed integers are built and compared
    chunk by chunk: no temporary as long as the keys. Keys that do not pack (random ids
    whose every digit takes many values) get ``None``: the caller hashes them (measured
    faster, see docs/architecture.md).

    Parameters
    ----------
    keys : ndarray of uint64, shape (n,) or (n, n_words)
        Rows of words compare most significant word first (:func:`string_keys`).
    then_by : ndarray of int or callable returning one, optional
        A prior order of the rows (a permutation, e.g. by time): equal keys keep that
        order instead of the input order. A callable is called only once the keys are
        known to pack. One-word keys are gathered into that order; rows of several words
        are not: in the packed sort each row's rank in it takes the place of its position.

    Returns
    -------
    order : ndarray of int64
        Positions that sort ``keys``; equal keys keep their input order (``then_by``'s).
    is_new : ndarray of bool
        ``is_new[i]``: the ``i``-th sorted key differs from the one before (``True`` for
        the first).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    rows = np.ascontiguousarray(keys.reshape(n, -1))
    position_bits = (n - 1).bit_length()
    packing = _packing(rows, position_bits)
    if packing is None:
        return None
    base, digits = packing
    prior = then_by() if callable(then_by) else then_by
    rank = None
    if prior is not None and rows.shape[1] == 1:  # one word: gathered in less time than ranks are scattered
        rows = rows[prior]
    elif prior is not None:  # each row's place in the prior order stands for its position
        dtype = np.uint32 if n <= 1 << 32 else np.uint64  # fewer bytes scattered
        rank = np.empty(n, dtype=dtype)
        rank[prior] = np.arange(n, dtype=dtype)
    # (key, position): the key's offset from the least key, or each digit's rank times
    # its place value, above the positions in the low bits
    as_digits, shift = rows.view(np.uint16), np.uint64(position_bits)
    packed = np.empty(n, dtype=np.uint64)
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        part = packed[lo:hi]
        if base is not None:
            np.subtract(rows[lo:hi, 0], base, out=part)
            part <<= shift
            part |= np.arange(lo, hi, dtype=np.uint64) if rank is None else rank[lo:hi]
            continue
        part[:] = np.arange(lo, hi, dtype=np.uint64) if rank is None else rank[lo:hi]
        for column, place_values in digits:
            part += place_values[as_digits[lo:hi, column]]
    packed.sort()
    is_new = np.empty(n, dtype=bool)
    is_new[0] = True
    for lo in range(1, n, _CHUNK):  # neighbours whose key bits differ
        hi = min(lo + _CHUNK, n)
        np.not_equal(packed[lo:hi] >> shift, packed[lo - 1 : hi - 1] >> shift, out=is_new[lo:hi])
    packed &= np.uint64((1 << position_bits) - 1)  # the positions, below 2**63: int64 as they are
    return (packed.view(np.int64) if prior is None else prior[packed.view(np.int64)]), is_new


def key_time_sort(keys: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Stable order of rows by (key, time) for one-word ``uint64`` keys and ``uint64`` time
    offsets from the earliest (any unit, e.g. seconds): ``(order, is_new, sorted_times)``,
    ``is_new[i]`` where the ``i``-th sorted key differs from the one before and
    ``sorted_times`` (``times[order]``) read off the sorted packed integers, no gather;
    ``None`` when they do not pack (see below).

    (key, time, position) rarely fit in 64 bits together (a million ids, seconds over
    years and ten million positions take about 70), which is why a general (key, time)
    order takes two sorts (:func:`stable_key_sort` by key after a sort by time). Split by
    the high bits of their key into buckets, though, rows need fewer bits each: the rest of
    the key, the time and the place in the bucket. So: one stable sort of the bucket
    numbers (NumPy's radix sort of ``uint8`` / ``uint16``), then one sort of packed
    integers per bucket. Equal (key, time) keep their input order. ``None`` when even
    ``2**16`` buckets leave too many bits, or the buckets are too uneven (then sort twice).
    """
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), np.zeros(0, dtype=np.uint64)
    base = keys.min()
    offsets = keys - base
    key_bits, time_bits = int(offsets.max()).bit_length(), int(times.max()).bit_length()
    # the fewest buckets whose rows fit, with one bit to spare for buckets up to twice the
    # mean; more while a bucket holds over 2**_BUCKET_ROWS_BITS rows (sorts in the cache)
    bucket_bits = next((b for b in range(min(key_bits, _MAX_BUCKET_BITS) + 1)
                        if key_bits - b + time_bits + ((n - 1) >> b).bit_length() + (b > 0) <= 64), None)
    if bucket_bits is None:
        return None
    bucket_bits = max(bucket_bits, min(key_bits, _MAX_BUCKET_BITS, (n - 1).bit_length() - _BUCKET_ROWS_BITS))
    low_bits = key_bits - bucket_bits
    if bucket_bits:
        bucket = (offsets >> np.uint64(low_bits)).astype(np.uint8 if bucket_bits <= 8 else np.uint16)
        counts = np.bincount(bucket, minlength=1 << bucket_bits)
    else:
        counts = np.array([n])
    place_bits = (int(counts.max()) - 1).bit_length()
    if low_bits + time_bits + place_bits > 64:  # uneven buckets
        return None
    starts = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=starts[1:])
    # (low key bits, time), packed in the input order, then put in bucket order
    packed = np.bitwise_and(offsets, np.uint64((1 << low_bits) - 1), out=offsets)
    packed <<= np.uint64(time_bits)
    packed |= times
    by_bucket = np.argsort(bucket, kind="stable") if bucket_bits else None
    if by_bucket is not None:
        packed = packed[by_bucket]
    order, is_new, sorted_times = np.empty(n, dtype=np.int64), np.empty(n, dtype=bool), np.empty(n, dtype=np.uint64)
    shift, place_mask = np.uint64(time_bits + place_bits), np.uint64((1 << place_bits) - 1)
    time_mask = np.uint64((1 << time_bits) - 1)
    # blocks of whole buckets, about _BLOCK_ROWS rows each: their temporaries stay in the cache
    cuts = np.unique(np.r_[np.searchsorted(starts, np.arange(0, n, _BLOCK_ROWS)), len(counts)]).tolist()
    for first, last in zip(cuts[:-1], cuts[1:]):
        lo, hi = int(starts[first]), int(starts[last])
        if hi == lo:  # empty buckets only
            continue
        bucket_start = np.repeat(starts[first:last], counts[first:last])  # in bucket order
        block = packed[lo:hi]
        block <<= np.uint64(place_bits)
        block |= (np.arange(lo, hi) - bucket_start).view(np.uint64)  # the place in its bucket: stable
        for start, end in zip(starts[first:last].tolist(), starts[first + 1 : last + 1].tolist()):
            if end - start > 1:
                block[start - lo : end - lo].sort()
        key = block >> shift
        new = is_new[lo:hi]
        new[0] = True
        np.not_equal(key[1:], key[:-1], out=new[1:])
        new[starts[first:last][counts[first:last] > 0] - lo] = True  # another bucket: another key
        np.right_shift(block, np.uint64(place_bits), out=sorted_times[lo:hi])
        sorted_times[lo:hi] &= time_mask
        block &= place_mask
        bucket_start += block.view(np.int64)  # positions in bucket order
        order[lo:hi] = bucket_start if by_bucket is None else by_bucket[bucket_start]
    return order, is_new, sorted_times
