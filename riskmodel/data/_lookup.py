"""Positions of ids in an index of ids: the lookup every join of the library goes through.

:func:`lookup_positions` dispatches to the fastest exact path for the input (a dict for a
few values, integer keys for short strings, Arrow's hash join for strings, else pandas);
:func:`lookup_positions_reference` is its readable twin, and the tests hold them equal.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._errors import DataError, DataWarning
from ._keys import short_string_keys, stable_key_sort
from ._schema import (
    _PIN_LOW,
    FEW_VALUES,
    NAT_NS,
    decimal_text,
    id_kind,
    ns_values,
    raise_unhashable,
)

__all__ = ["closing_times", "lookup_positions", "lookup_positions_reference"]


def lookup_positions_reference(index: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent or missing): pandas' hash lookup."""
    return index.get_indexer(values)


def lookup_positions(index: pd.Index, values: pd.Series) -> np.ndarray:
    """Position of each value in ``index`` (-1 when absent); Arrow's hash join for strings.

    Numbers and text are compared as text (an id read as ``2895`` from one file and as
    ``"2895"`` from another is one id): the side that is not all text is converted
    (:func:`decimal_text`).
    A :class:`~riskmodel.DataError` names values that cannot be looked up (lists, dicts)."""
    for side in (index, values):  # before any conversion to text (which would hide the lost digits)
        _refuse_inexact_floats(side)
    judged = index.dtype != getattr(values, "dtype", None) or pd.api.types.is_object_dtype(index.dtype)
    kinds = (id_kind(index), id_kind(values)) if judged else ()  # one typed dtype on both sides: one kind
    if kinds and kinds[0] != kinds[1] and "text" in kinds and not {None, "bool"} & set(kinds):  # numbers: as text
        if kinds[0] != "text":
            index = pd.Index(decimal_text(index), dtype=object)
        else:
            values = pd.Series(decimal_text(values), dtype=object)
    try:
        return _lookup(index, values)
    except TypeError:
        raise_unhashable(np.asarray(values, dtype=object), getattr(values, "name", None))


def closing_times(entities: pd.DataFrame | None, schema, ids, first_ns: np.ndarray, *,
                  stacklevel: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Each dispute's closing time, from its entities row, as every part of the library reads it.

    A closing time before the dispute's first event closes nothing: it is the placeholder an
    export writes for "still open" (``1900-01-01`` from SQL Server or Excel, ``1970-01-01``
    from a Unix epoch), read as a date. Taken as a closing, it would take every open dispute
    off the night's lists; it is read as no closing, with a :class:`~riskmodel.DataWarning`
    naming the most common such times.

    Parameters
    ----------
    entities : DataFrame or None
        Validated entities (:func:`validate_entities`); ``None``: no closing times.
    schema : EventSchema
        Names the entities' id column and ``closed_col`` (``None``: no closing times).
    ids : array-like
        The disputes.
    first_ns : ndarray of int64
        Each dispute's first event time, nanoseconds (:data:`NAT_NS`: none).
    stacklevel : int, default=2
        Of the warning, counted from the caller.

    Returns
    -------
    closed : ndarray of int64
        Closing times in nanoseconds; :data:`NAT_NS` where there is none or it was read as none.
    before : ndarray of bool
        Where a closing before the first event was read as none.
    """
    closed = np.full(len(ids), NAT_NS, dtype=np.int64)
    if entities is None or not schema.closed_col or not len(entities):
        return closed, np.zeros(len(ids), dtype=bool)
    at = lookup_positions(pd.Index(entities[schema.entities_id]), pd.Series(ids))
    closed_at = ns_values(entities[schema.closed_col])
    closed = np.where(at >= 0, closed_at[np.maximum(at, 0)], NAT_NS)
    before = (closed != NAT_NS) & (first_ns != NAT_NS) & (closed < first_ns)
    if before.any():
        common = pd.Series(closed[before].astype("datetime64[ns]")).value_counts().head(3)
        examples = ", ".join(f"{'before 1678' if t <= _PIN_LOW else t} ({n:,} disputes)" for t, n in common.items())
        warnings.warn(f"entities column {schema.closed_col!r}: {int(before.sum()):,} dispute(s) closed before their "
                      f"first event, e.g. {examples}: a placeholder for 'still open'? They are taken as not closed.",
                      DataWarning, stacklevel=stacklevel + 1)
    return np.where(before, NAT_NS, closed), before


def _refuse_inexact_floats(ids) -> None:
    """Float ids past 2**53 (an 18-digit case number read as a float) have lost digits: two
    ids can share a float, so a lookup would join another dispute's rows. Refused, naming them."""
    dtype = getattr(ids, "dtype", None)
    if dtype is None:
        return
    if pd.api.types.is_object_dtype(dtype) and len(ids) and pd.api.types.infer_dtype(ids, skipna=True) in (
            "floating", "mixed-integer-float"):  # Python floats (a merge with a missing id)
        values = pd.to_numeric(pd.Series(np.asarray(ids, dtype=object)), errors="coerce").to_numpy(dtype=np.float64)
    elif pd.api.types.is_float_dtype(dtype):
        values = np.asarray(ids, dtype=np.float64)
    else:
        return
    inexact = np.abs(values) >= 2.0**53
    if inexact.any():
        name = getattr(ids, "name", None)
        raise DataError(f"ids{'' if name is None else f' in {name!r}'} are floating-point numbers past 2**53, which "
                        f"cannot hold every digit of an id (e.g. {', '.join(f'{v:.0f}' for v in values[inexact][:3])}): two ids can "
                        "read as one. Read them as integers or as text (e.g. dtype=str when reading the file).")


def _lookup(index: pd.Index, values: pd.Series) -> np.ndarray:
    if len(values) <= FEW_VALUES and len(index) <= FEW_VALUES:
        position = {v: i for i, v in enumerate(index.to_numpy(dtype=object)) if not pd.isna(v)}
        return np.array([position.get(v, -1) for v in np.asarray(values, dtype=object)], dtype=np.int64)
    if len(values) > 10_000:
        found = _lookup_short_strings(index, values)
        if found is not None:
            return found
        if pd.api.types.is_string_dtype(index.dtype) and pd.api.types.is_string_dtype(values.dtype):
            try:
                wanted = pa.array(values, from_pandas=True)
                if pa.types.is_string(wanted.type) or pa.types.is_large_string(wanted.type):
                    known = pa.array(index, from_pandas=True).cast(wanted.type)
                    found = pc.index_in(wanted, value_set=known)
                    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                pass  # mixed objects: fall back to pandas
    return index.get_indexer(values)


def _lookup_short_strings(index: pd.Index, values: pd.Series) -> np.ndarray | None:
    """:func:`lookup_positions` through integer keys (:func:`~riskmodel.data._keys.short_string_keys`):
    a binary search in the index's sorted keys. ``None`` unless both sides have such keys
    and the index is unique (and, unsorted, its keys pack)."""
    index_keys = short_string_keys(index)
    wanted = short_string_keys(values) if index_keys is not None else None
    if wanted is None:
        return None
    if len(index_keys) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    sorter, sorted_keys = None, index_keys
    if not bool((index_keys[1:] > index_keys[:-1]).all()):
        sorted_ = stable_key_sort(index_keys)
        if sorted_ is None or not bool(sorted_[1].all()):
            return None  # keys that do not pack, or duplicates in the index
        sorter = sorted_[0]
        sorted_keys = index_keys[sorter]  # searched in place: searchsorted(sorter=) reads them at random (~10x slower)
    at = np.minimum(np.searchsorted(sorted_keys, wanted), len(index_keys) - 1)
    found = sorted_keys[at] == wanted
    if sorter is not None:
        at = sorter[at]
    return np.where(found, at, -1).astype(np.int64)
