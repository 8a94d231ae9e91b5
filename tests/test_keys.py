"""Integer keys of short strings and their packed sort: exact, order-preserving, or refused."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import riskmodel.data._keys
from riskmodel.data._keys import (
    key_time_sort,
    short_string_keys,
    stable_key_sort,
    string_keys,
)

TRICKY = ["", "a", "ab", "b", "D0000001", "D0000010", "é", "中文", "zz", "~", "\x7f", "a b", "\t"]


def _column(values, flavour):
    if flavour == "str":
        return pd.Series(values, dtype="str")
    if flavour == "string[pyarrow]":
        return pd.Series(values, dtype="string[pyarrow]")
    if flavour == "arrow string":
        return pd.Series(pd.array(values, dtype=pd.ArrowDtype(pa.string())))
    if flavour == "arrow large_string":
        return pd.Series(pd.array(values, dtype=pd.ArrowDtype(pa.large_string())))
    if flavour == "chunked":
        chunks = pa.chunked_array([values[: len(values) // 2], values[len(values) // 2 :]], type=pa.large_string())
        return pd.Series(pd.arrays.ArrowStringArray(chunks))
    raise AssertionError(flavour)


@pytest.mark.parametrize("flavour", ["str", "string[pyarrow]", "arrow string", "arrow large_string", "chunked"])
def test_keys_are_exact_and_sort_like_the_strings(flavour):
    rng = np.random.default_rng(0)
    values = list(rng.choice(TRICKY, 500))
    keys = short_string_keys(_column(values, flavour))
    assert keys is not None and keys.dtype == np.uint64
    for i in range(0, 500, 7):
        for j in range(0, 500, 11):
            assert (keys[i] == keys[j]) == (values[i] == values[j])
            assert (keys[i] < keys[j]) == (values[i] < values[j])


def test_keys_of_a_slice_read_only_its_strings():
    column = pd.Series(["xxxxxxxx", "ab", "", "é", "yyyyyyyy"], dtype="str").iloc[1:4]
    keys = short_string_keys(column)
    assert list(keys) == [int.from_bytes(s.encode().ljust(8, b"\0"), "big") for s in ["ab", "", "é"]]
    fixed = short_string_keys(pd.Series(["xxxxxxxx", "abc", "éf", "yyyyyyyy"], dtype="str").iloc[1:3])
    assert list(fixed) == [int.from_bytes(s.encode().ljust(8, b"\0"), "big") for s in ["abc", "éf"]]


@pytest.mark.parametrize(
    "values",
    [
        ["a", "a\x00"],  # a NUL byte: "a" and "a\0" would collide
        ["short", "longer than 8"],
        ["日本語"],  # 9 bytes in UTF-8
        ["a", None],
    ],
)
def test_keys_refused_when_they_could_not_be_exact(values):
    assert short_string_keys(pd.Series(values, dtype="str")) is None


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["a", "b"], dtype=object),
        pd.Series(["a", "b"], dtype="string[python]"),
        pd.Series(["a", "b"], dtype="category"),
        pd.Series([1, 2]),
        np.array(["a", "b"]),
    ],
)
def test_keys_only_for_arrow_backed_strings(column):
    assert short_string_keys(column) is None


def test_keys_of_an_empty_column():
    assert len(short_string_keys(pd.Series([], dtype="str"))) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.integers(0, 2**63, 5000, dtype=np.uint64) * np.uint64(2),  # every digit varies
        lambda rng: rng.integers(0, 30, 5000).astype(np.uint64) << np.uint64(40),  # one sparse digit
        # a range that fits beside the positions, far from zero: packed as offsets
        lambda rng: rng.integers(2**64 - 2**40, 2**64 - 1, 5000, dtype=np.uint64),
        lambda rng: rng.integers(-(2**30), 2**30, 5000).view(np.uint64) ^ np.uint64(1 << 63),  # signed ids
        lambda rng: rng.integers(0, 300, 5000).astype(np.uint64) * np.uint64(0x0001000100010001),
        lambda rng: np.full(5000, 7, dtype=np.uint64),  # constant
        lambda rng: np.zeros(0, dtype=np.uint64),
        lambda rng: np.array([2**64 - 1, 0, 2**64 - 1, 1], dtype=np.uint64),
    ],
)
@pytest.mark.parametrize("chunk", [1 << 16, 100])  # packed at once, and in chunks
def test_key_sort_is_numpys_stable_argsort(make, chunk, monkeypatch):
    monkeypatch.setattr(riskmodel.data._keys, "_CHUNK", chunk)
    keys = make(np.random.default_rng(1))
    order, is_new = stable_key_sort(keys)
    np.testing.assert_array_equal(order, np.argsort(keys, kind="stable"))
    assert order.dtype == np.int64
    # is_new marks exactly where the sorted keys change
    expected = keys[order]
    np.testing.assert_array_equal(is_new, np.r_[True, expected[1:] != expected[:-1]][: len(keys)])


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.integers(0, 300, 5000).astype(np.uint64) << np.uint64(20),  # packed
        lambda rng: rng.integers(2**64 - 2**40, 2**64 - 1, 5000, dtype=np.uint64),  # packed as offsets
        lambda rng: rng.integers(0, 300, 5000).astype(np.uint64) * np.uint64(0x0001000100010001),  # ranked
        lambda rng: rng.integers(0, 40, (5000, 3)).astype(np.uint64),  # rows of words, packed
        lambda rng: np.zeros((0, 1), dtype=np.uint64),
    ],
)
def test_key_sort_then_by_a_prior_order_is_the_lexsort(make):
    """Equal keys keep a prior order (``then_by``, e.g. by time) instead of the input
    order: NumPy's lexsort of (prior rank, key), whichever path sorts."""
    rng = np.random.default_rng(4)
    keys = make(rng)
    prior = rng.permutation(len(keys))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[prior] = np.arange(len(keys))
    rows = keys.reshape(len(keys), -1) if keys.ndim == 1 else keys
    expected = np.lexsort((rank, *[rows[:, k] for k in reversed(range(rows.shape[1]))]))
    order, is_new = stable_key_sort(keys, then_by=prior)
    np.testing.assert_array_equal(order, expected)
    in_order = rows[order]
    np.testing.assert_array_equal(is_new, np.r_[True, (in_order[1:] != in_order[:-1]).any(axis=1)][: len(keys)])


LONG = TRICKY + ["110105202301150001", "110105202301150002", "1101052023011500", "D0000001x", "日本語",
                 "24 bytes exactly 24 byte", "x" * 9, "x" * 16, "x" * 17, "同归于尽同归于尽"]


@pytest.mark.parametrize("flavour", ["str", "arrow large_string", "chunked"])
def test_word_keys_are_exact_and_sort_like_the_strings(flavour):
    rng = np.random.default_rng(2)
    values = list(rng.choice(LONG, 600))
    keys = string_keys(_column(values, flavour))
    assert keys is not None and keys.dtype == np.uint64 and keys.shape == (600, 3)
    rows = [tuple(int(w) for w in row) for row in keys]
    for i in range(0, 600, 7):
        for j in range(0, 600, 11):
            assert (rows[i] == rows[j]) == (values[i] == values[j])
            assert (rows[i] < rows[j]) == (values[i].encode() < values[j].encode())


@pytest.mark.parametrize("width", [1, 5, 8, 13, 18, 24])
@pytest.mark.parametrize("flavour", ["str", "arrow large_string", "chunked"])
def test_fixed_width_keys_are_the_strings_bytes(width, flavour):
    """Ids of one length (the usual format) are read as rows of bytes: same words as the
    general path, i.e. the big-endian zero-padded UTF-8 bytes, 8 per word."""
    rng = np.random.default_rng(width)
    alphabet = ["0", "9", "A", "z", " ", "é"]  # é: 2 bytes, so some strings are longer...
    values = ["".join(rng.choice(alphabet, width)).encode()[:width].decode(errors="ignore").ljust(width, "x")
              for _ in range(300)]
    values = [v for v in values if len(v.encode()) == width]  # ... and are left out
    keys = string_keys(_column(values, flavour))
    n_words = -(-width // 8)
    want = [[int.from_bytes(v.encode().ljust(8 * n_words, b"\0")[8 * k : 8 * k + 8], "big") for k in range(n_words)]
            for v in values]
    assert keys.shape == (len(values), n_words)
    assert keys.tolist() == want


def test_word_keys_use_as_few_words_as_the_longest_string_needs():
    assert string_keys(pd.Series(["ab", "abcdefgh"], dtype="str")).shape == (2, 1)
    assert string_keys(pd.Series(["ab", "abcdefghi"], dtype="str")).shape == (2, 2)
    assert string_keys(pd.Series(["x" * 25], dtype="str")) is None
    assert string_keys(pd.Series(["a", "a\x00"], dtype="str")) is None


def test_word_key_sort_is_the_strings_stable_order(monkeypatch):
    """Case numbers with a constant prefix (few digits vary) pack: the strings' stable order."""
    rng = np.random.default_rng(3)
    pool = [f"1101052023{i:08d}" for i in rng.integers(0, 10**8, 500)]
    values = list(rng.choice(pool, 3000))
    keys = string_keys(pd.Series(values, dtype="str"))
    monkeypatch.setattr(riskmodel.data._keys, "_CHUNK", 257)  # many chunks, halves not on their bounds
    order, is_new = stable_key_sort(keys)
    expected = np.argsort(np.array(values, dtype=object), kind="stable")
    np.testing.assert_array_equal(order, expected)
    in_order = np.array(values, dtype=object)[order]
    np.testing.assert_array_equal(is_new, np.r_[True, in_order[1:] != in_order[:-1]])


@pytest.mark.parametrize(
    "make",
    [
        lambda rng: rng.integers(0, 2**64 - 1, 70_000, dtype=np.uint64),  # one word, every digit varies
        lambda rng: rng.integers(0, 2**64 - 1, (70_000, 2), dtype=np.uint64),  # rows of words
        # random 20-character ids: every digit of three words takes many values
        lambda rng: string_keys(pd.Series(["".join(rng.choice(list("0123456789ABCDEF"), 20)) for _ in range(5000)],
                                          dtype="str")),
    ],
)
@pytest.mark.parametrize("prior", [False, True])
def test_key_sort_refuses_keys_that_do_not_pack(make, prior):
    """Keys whose bits do not fit beside the row positions are refused (``None``): the
    caller hashes them instead, which measured faster than sorting them digit by digit."""
    rng = np.random.default_rng(6)
    keys = make(rng)
    assert stable_key_sort(keys, then_by=rng.permutation(len(keys)) if prior else None) is None


@pytest.mark.parametrize("shape", [(5, 3), (64, 1), (1000, 3), (1001, 2), (130, 1)])
def test_reductions_down_columns_match_numpys(shape):
    rows = np.random.default_rng(5).integers(0, 2**63, shape, dtype=np.int64).astype(np.uint64)
    for ufunc in (np.bitwise_or, np.bitwise_and):
        np.testing.assert_array_equal(riskmodel.data._keys._down_columns(ufunc, rows), ufunc.reduce(rows, axis=0))


@pytest.mark.parametrize(
    "layout",
    [
        "ids_and_seconds",  # the database extract: ~40-bit ids, seconds over years, buckets
        "few_bits",  # everything packs at once: one bucket
        "skewed",  # most rows in one bucket: too uneven, refused
        "ties",  # many equal (key, time): input order kept
        "top_of_range",  # keys near 2**64
        "nanoseconds",  # times too wide even for 2**16 buckets: refused
        "gaps",  # two clusters of keys: empty buckets between and after them
    ],
)
@pytest.mark.parametrize("max_bucket_bits", [16, 2])
@pytest.mark.parametrize("block_rows", [2**15, 777, 1])
def test_key_time_sort_is_the_lexsort_or_refuses(layout, max_bucket_bits, block_rows, monkeypatch):
    """Rows split into buckets by their key's high bits, each sorted as packed (key, time,
    place), finished in blocks of whole buckets: NumPy's stable lexsort of (time, key)
    whenever it answers; ``None`` only when the rows do not pack (then the two-sort path
    runs)."""
    monkeypatch.setattr(riskmodel.data._keys, "_MAX_BUCKET_BITS", max_bucket_bits)
    monkeypatch.setattr(riskmodel.data._keys, "_BLOCK_ROWS", block_rows)
    rng = np.random.default_rng(len(layout))
    n = 60_000
    keys = rng.integers(0, 2**40, n, dtype=np.uint64)
    times = rng.integers(0, 10**8, n, dtype=np.uint64)
    if layout == "few_bits":
        keys, times = keys % np.uint64(5_000), times % np.uint64(1_000)
    elif layout == "skewed":
        keys[rng.random(n) < 0.9] = np.uint64(2**39)
        keys[:2] = [0, 2**40 - 1]  # the same key range: it fits in buckets the rows fill unevenly
    elif layout == "ties":
        keys, times = keys % np.uint64(7), times % np.uint64(3)
    elif layout == "top_of_range":
        keys = keys | np.uint64(0xFFFF000000000000)
    elif layout == "nanoseconds":
        times = rng.integers(0, 2**57, n, dtype=np.uint64)
    elif layout == "gaps":  # keys near 0 and near 2**39: buckets 0 and half-way hold every row
        keys = keys % np.uint64(2**20) + np.uint64(2**39) * (rng.random(n) < 0.5).astype(np.uint64)
        times = times % np.uint64(1_000)
    result = key_time_sort(keys, times)
    refused = {"skewed", "nanoseconds"} | ({"ids_and_seconds", "top_of_range"} if max_bucket_bits == 2 else set())
    if layout in refused:
        assert result is None
        return
    order, is_new, sorted_times = result
    expected = np.lexsort((times, keys))
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(sorted_times, times[expected])  # read off the packed integers
    assert order.dtype == np.int64
    in_order = keys[expected]
    np.testing.assert_array_equal(is_new, np.r_[True, in_order[1:] != in_order[:-1]])
