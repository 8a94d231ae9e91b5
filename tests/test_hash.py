"""The night's chunk of a dispute id: the hash kernel against its readable twin, and one
chunk for an id whatever type an input gives it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import riskmodel.batch._hash
from riskmodel.batch._core import bucket_of
from riskmodel.batch._hash import text_hash, text_hash_reference


def _strings(seed: int, n: int) -> list:
    """Strings of 0 to 40 characters, some beyond ASCII, some missing, one long."""
    rng = np.random.default_rng(seed)
    alphabet = list("abcXYZ0189-_ é中ü")
    values = ["".join(rng.choice(alphabet, rng.integers(0, 41))) for _ in range(n)]
    for i in rng.choice(n, n // 10, replace=False):
        values[i] = None
    values[n // 2] = "x" * 3000
    return values


@pytest.mark.parametrize("block_bytes", [1 << 22, 64, 1])  # one block, several, one row each
@pytest.mark.parametrize("flavour", ["string", "large_string", "slice", "chunked"])
def test_hash_kernel_is_its_reference(flavour, block_bytes, monkeypatch):
    monkeypatch.setattr(riskmodel.batch._hash, "_BLOCK_BYTES", block_bytes)
    values = _strings(3, 500)
    array = pa.array(values, type=pa.large_string() if flavour == "large_string" else pa.string())
    if flavour == "slice":
        array, values = array.slice(7, 300), values[7:307]
    elif flavour == "chunked":
        array = pa.chunked_array([array.slice(0, 123), array.slice(123, 0), array.slice(123)])
    assert text_hash(array).tolist() == text_hash_reference(values).tolist()


def test_hash_of_no_strings_and_of_empty_ones():
    assert len(text_hash(pa.array([], type=pa.string()))) == 0
    assert text_hash(pa.array(["", None, ""])).tolist() == text_hash_reference(["", None, ""]).tolist()
    assert len(set(text_hash(pa.array(["", "\x00", "\x00\x00", "a", "a\x00"])).tolist())) == 5


def test_an_id_has_one_chunk_whatever_its_type():
    """2895 as an int64, a nullable or Arrow int, decimal text (object, Arrow string,
    categorical), or in a column mixing both: one chunk; a missing id goes to chunk 0."""
    numbers = [2895, 7, -3, 10**15, 0, 123456789012]
    text = [str(v) for v in numbers]
    expected = bucket_of(pd.Series(numbers), 7)
    forms = [
        pd.Series(numbers, dtype="Int64"), pd.Series(numbers, dtype="int64[pyarrow]"), pa.array(numbers),
        pa.chunked_array([pa.array(numbers[:2]), pa.array(numbers[2:])]), pd.Series(text, dtype=object),
        pd.Series(text, dtype="string[pyarrow]"), pd.Series(text, dtype="category"), pa.array(text),
        pa.array(text).dictionary_encode(), pd.Series([v if i % 2 else str(v) for i, v in enumerate(numbers)], dtype=object),
    ]
    for form in forms:
        assert bucket_of(form, 7).tolist() == expected.tolist(), form
    assert bucket_of(pd.Series([None, "7", np.nan, pd.NA], dtype=object), 7).tolist() == [0, expected[1], 0, 0]
    # other values by their str(): 2895.0 is the text "2895.0", as it always was
    floats = bucket_of(pd.Series([2895.0, 3.5, None], dtype=object), 7).tolist()
    assert floats == bucket_of(pd.Series(["2895.0", "3.5", None]), 7).tolist()
    assert bucket_of(pa.array([None, 7]), 7).tolist() == [0, expected[1]]
    assert bucket_of(pd.Series(numbers), 1).tolist() == [0] * len(numbers)


@pytest.mark.parametrize("ids", ["sequential ints", "case numbers"])
def test_chunks_are_even(ids):
    """Ids that differ in one digit spread over the chunks (each within 5% of its share)."""
    values = np.arange(10**6, 10**6 + 140_000)
    column = pd.Series(values) if ids == "sequential ints" else pd.Series([f"2024-CR-{v:010d}" for v in values])
    counts = np.bincount(bucket_of(column, 7), minlength=7)
    assert np.abs(counts / (len(values) / 7) - 1).max() < 0.05
