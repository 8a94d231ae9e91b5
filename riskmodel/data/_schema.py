"""The event-data contract: :class:`EventSchema` and the validation every entry point uses.

Policies (documented here once, referenced by every docstring that validates):

* **Times.** Datetime columns or strings that ``pandas.to_datetime`` parses. Timezone-aware
  times are converted to UTC and made naive; naive times are taken as they are. Mixing
  aware and naive values in one column, or an aware events table with naive cutoffs (or
  the reverse), is an error because the offset between the two clocks is unknown.
  Numbers are refused (epoch units are ambiguous).
* **Plausible dates.** Times before 1900-01-01 are an error, and so are events after
  ``now`` (default: the end of tomorrow, UTC) - an event log cannot contain the future.
* **Duplicates.** Rows that are identical in every column the schema names are the same
  record exported twice: they are dropped with a :class:`DataWarning` giving the count
  (training and nightly scoring alike: the batch reads no other column). A column that
  tells two real events apart (a call number) goes in ``event_attribute_cols``. Nothing
  else is ever dropped silently.
* **Entities.** An entity row without events is kept (a dispute with no history yet).
  Events whose dispute has no entity row are kept; their entity attributes are missing,
  and a :class:`DataWarning` gives the count. Duplicate entity ids are an error.
* **Kinds** are free strings; the library never assumes a particular vocabulary.
"""

from __future__ import annotations

import ctypes
import dataclasses
import datetime
import functools
import itertools
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._errors import DataError, DataWarning, format_examples
from ._keys import arrow_string_array, key_time_sort, stable_key_sort, string_keys
from ._timeline import NS_PER_DAY

__all__ = [
    "EventSchema",
    "validate_cutoffs",
    "validate_entities",
    "validate_events",
]

MIN_PLAUSIBLE_TIME = pd.Timestamp("1900-01-01")
_PIN_LOW, _PIN_HIGH = pd.Timestamp("1678-01-01"), pd.Timestamp("2262-01-01")  # just inside datetime64[ns]
_NS = np.dtype("datetime64[ns]")
NAT_NS = np.iinfo(np.int64).min
FEW_VALUES = 64  # up to this many values, plain NumPy / dict paths beat pandas' per-call overhead
_SHARED_SAMPLE = 1 << 16  # rows whose objects say whether a column shares them
CLOCK_WORDS = {True: "timezone-aware", False: "naive"}  # a time convention, as messages name it
#: Missing-value words of database exports that pandas' ``read_csv`` does not know (MySQL's
#: ``\N``, ``(null)``; a DOS end-of-file Ctrl-Z, a last line of its own): read as missing, by
#: both engines, beside pandas' own (``NULL``, ``NA``, ...)
EXPORT_NULLS = ("\\N", "(null)", "\x1a")
#: Every word a CSV export's missing value is read from: pandas' ``read_csv`` defaults (its
#: ``na_values`` documentation) and :data:`EXPORT_NULLS`
NULL_WORDS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
              "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", *EXPORT_NULLS)
_NULL_WORD_SET, _NULL_WORD_KEYS = pa.array(NULL_WORDS[1:]), frozenset(NULL_WORDS[1:])
#: a UTC offset or zone word after a time of day: +08:00, +0800, +08 (PostgreSQL's timestamptz), Z, UTC, GMT
#: (a date has no offset: "21-11-2023" ends in a year, not -20:23)
_TZ_SUFFIX = r"(?:\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)|\dZ)\s*$"
_REQUIRED_ROLES = ("entity_col", "time_col", "kind_col")
_OPTIONAL_ROLES = ("text_col", "party_col", "entities_id_col", "closed_col")
#: Columns the scores and work lists hold beside the dispute's id and its entity attributes
SCORE_OUTPUT_COLUMNS = ("as_of", "probability", "tier", "reasons", "reason_features", "overrides", "model_name",
                        "model_version", "run_id", "rank", "tier_rule", "red_capacity", "yellow_capacity",
                        "red_threshold", "yellow_threshold")
#: Columns riskmodel's outputs write beside the dispute's id (cutoffs, labels, scores, not-scored
#: reasons, rejects): an id column of one of these names is overwritten (a ``tier`` id column gave
#: scores without ids)
OUTPUT_COLUMNS = (*SCORE_OUTPUT_COLUMNS, "label", "censored", "reason", "reject_reason")


@dataclass(frozen=True, kw_only=True)
class EventSchema:
    """Names the columns of a user's event log and entities table.

    Parameters
    ----------
    entity_col : str, default="dispute_id"
        Events column identifying the dispute (or any subject) an event belongs to.
    time_col : str, default="time"
        Events column with the time of the event.
    kind_col : str, default="kind"
        Events column with the kind of event (free strings, e.g. "threat").
    text_col : str or None, default="narrative"
        Optional free-text column (the call narrative). ``None`` if there is none.
    party_col : str or None, default="party_id"
        Optional events column naming the person involved; enables cross-dispute
        features (the parties' other disputes and escalations before as_of).
    event_attribute_cols : tuple of str, default=()
        Optional extra event columns to validate and carry along.
    entities_id_col : str or None, default=None
        Id column of the entities table; ``None`` means the same name as ``entity_col``.
    entity_categorical_cols : tuple of str, default=("category", "station")
        Entities columns used as categorical features.
    entity_numeric_cols : tuple of str, default=()
        Entities columns used as numeric features.
    entity_time_cols : tuple of str, default=("opened_at",)
        Entities datetime columns turned into "days since" features at each as_of.
    group_cols : tuple of str, default=("station",)
        Entities columns whose recent escalation rate (before as_of) is a context feature.
    closed_col : str or None, default="closed_at"
        Entities column with the time a dispute was closed (resolved); used only to decide
        which disputes are open, never as a feature.
    outcome_kinds : tuple of str, default=("criminal_case", "injury")
        Event kinds that mean the dispute escalated (民转刑): the label of the model.

    Examples
    --------
    >>> from riskmodel import EventSchema
    >>> schema = EventSchema(entity_col="case", time_col="ts", kind_col="type", text_col=None,
    ...                      party_col=None, entity_categorical_cols=(), entity_time_cols=(),
    ...                      group_cols=(), closed_col=None, outcome_kinds=("assault",))
    >>> schema.entities_id
    'case'
    """

    entity_col: str = "dispute_id"
    time_col: str = "time"
    kind_col: str = "kind"
    text_col: str | None = "narrative"
    party_col: str | None = "party_id"
    event_attribute_cols: tuple[str, ...] = ()
    entities_id_col: str | None = None
    entity_categorical_cols: tuple[str, ...] = ("category", "station")
    entity_numeric_cols: tuple[str, ...] = ()
    entity_time_cols: tuple[str, ...] = ("opened_at",)
    group_cols: tuple[str, ...] = ("station",)
    closed_col: str | None = "closed_at"
    outcome_kinds: tuple[str, ...] = field(default=("criminal_case", "injury"))

    def __post_init__(self):
        # Accept lists from TOML / JSON but store tuples so the schema stays hashable; an
        # empty string (TOML has no null) switches an optional role off, like None / ().
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _REQUIRED_ROLES:
                if not isinstance(value, str) or not value.strip():
                    raise DataError(
                        f"EventSchema {f.name} must name a column of the events (a non-empty string), "
                        f"got {value!r}; this role cannot be switched off."
                    )
            elif f.name in _OPTIONAL_ROLES:
                if value is not None and not isinstance(value, str):
                    raise DataError(f"EventSchema {f.name} must be a column name or None, got {value!r}.")
                if isinstance(value, str) and not value.strip():
                    object.__setattr__(self, f.name, None)
            else:  # a tuple of names; None, "" or [] all mean "none"
                if value is None or (isinstance(value, str) and not value.strip()):
                    value = ()
                elif isinstance(value, str):
                    value = (value,)
                if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
                    raise DataError(
                        f"EventSchema {f.name} must be a list of column names (or empty to switch it "
                        f"off), got {value!r}."
                    )
                object.__setattr__(self, f.name, tuple(value))
        roles = {}  # one column, one of id, time and kind: a time read as an id makes every event a dispute
        for role in _REQUIRED_ROLES:  # (keywords read in the kinds, text_col = kind_col, are a choice)
            column = getattr(self, role)
            if column in roles:
                raise DataError(f"EventSchema {roles[column]} and {role} both name the column {column!r}; "
                                "each role needs a column of its own.")
            roles[column] = role
        taken = [("entity_col", self.entity_col, OUTPUT_COLUMNS)] if self.entity_col in OUTPUT_COLUMNS else []
        taken += [("entity_categorical_cols", c, SCORE_OUTPUT_COLUMNS) for c in self.entity_categorical_cols
                  if c in SCORE_OUTPUT_COLUMNS]
        if taken:
            role, column, names = taken[0]
            what = (f"{role} names the column {column!r}, a name riskmodel's outputs give a column of their own "
                    f"(one of {list(names)}): yours would be overwritten.")
            renamed = f"{column}_{'id' if role == 'entity_col' else 'value'}"
            raise DataError(f"EventSchema {what} Rename it (e.g. df.rename(columns={{{column!r}: {renamed!r}}})) and "
                            "name the new column in the schema.",
                            cli=f"[schema] {what} Rename it in the extract and in the config's [schema].")

    @property
    def entities_id(self) -> str:
        """Name of the id column in the entities table."""
        return self.entities_id_col or self.entity_col

    @property
    def event_columns(self) -> list[str]:
        """Events columns the schema requires."""
        cols = [self.entity_col, self.time_col, self.kind_col]
        cols += [c for c in (self.text_col, self.party_col) if c]
        return cols + list(self.event_attribute_cols)

    @property
    def entity_feature_columns(self) -> list[str]:
        """Entities columns used as features (categorical, numeric, time)."""
        return [*self.entity_categorical_cols, *self.entity_numeric_cols, *self.entity_time_cols]

    @property
    def text_columns(self) -> list[str]:
        """Events columns a CSV reader keeps as text: the names (id, kind, party, text), so that
        18-digit case numbers never become floats, and the time (``20231121080500`` is a time
        written as digits, not a number)."""
        return [c for c in (self.entity_col, self.time_col, self.kind_col, self.party_col, self.text_col) if c]

    @property
    def entity_text_columns(self) -> list[str]:
        """Entities columns holding names (id, categorical attributes), read as text from CSV."""
        return list(dict.fromkeys([self.entities_id, *self.entity_categorical_cols]))

    def to_dict(self) -> dict:
        """Plain-data form (for JSON artifacts and MLflow params)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}

    @classmethod
    def from_dict(cls, data: dict) -> EventSchema:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"EventSchema got unknown keys {unknown}; known keys: {sorted(known)}",
                            cli=f"[schema] has unknown keys {unknown}; known keys: {sorted(known)}")
        return cls(**data)


# --------------------------------------------------------------------------------------
# shared checks


def require_schema(schema) -> None:
    """A :class:`DataError` unless ``schema`` is an :class:`EventSchema`."""
    if not isinstance(schema, EventSchema):
        raise DataError(f"schema must be an EventSchema (EventSchema(**d) or EventSchema.from_dict(d) for a dict), "
                        f"got {type(schema).__name__}.")


def require_frame(df, what: str, *, allow_empty: bool = False) -> None:
    """Refuse what is not a pandas DataFrame (naming its library: a polars or Arrow table
    converts with ``.to_pandas()``) and, unless ``allow_empty``, an empty one."""
    if not isinstance(df, (pd.DataFrame, Columns)):  # Columns: built internally (pyfunc's entities)
        library = type(df).__module__.split(".")[0]
        kind = type(df).__name__ if library == "builtins" else f"{library}.{type(df).__name__}"
        hint = f"; pass {what}.to_pandas()" if hasattr(df, "to_pandas") else ""
        raise DataError(f"{what} must be a pandas DataFrame, got {kind}{hint}.")
    if len(df) == 0 and not allow_empty:
        raise DataError(f"{what} is empty (0 rows); there is nothing to work on.")


def require_columns(df, columns: Sequence[str], what: str, *, schema: EventSchema | None = None,
                    trained: bool = False) -> None:
    """Raise a :class:`DataError` naming the columns of ``columns`` that ``df`` lacks.

    With the ``schema`` that asked for them, the message names each column's role and how
    to name yours or switch an optional role off, in Python words (``EventSchema(...)``)
    and in the command line's (the config's ``[schema]``). ``trained``: the schema is a
    fitted model's, so the fix is renaming the columns or retraining.
    """
    names = list(df.columns)
    missing = [c for c in columns if c not in names]
    if not missing:
        twice = [c for c in dict.fromkeys(columns) if names.count(c) > 1]
        if twice:
            raise DataError(f"{what} has more than one column named {twice}; keep one of each (e.g. drop or "
                            "rename the copies a join made).")
        return
    head = f"{what} is missing required column(s) {missing}; it has {names[:20]}."
    if schema is None:
        raise DataError(f"{head} Rename the columns or pass an EventSchema naming yours.")
    python, cli = [], []
    for column in missing:
        for name in _roles_of(schema, column, what):
            optional = name not in _REQUIRED_ROLES and name != "entities_id_col"
            listed = name not in (*_REQUIRED_ROLES, *_OPTIONAL_ROLES, "entities_id_col")  # a list of columns
            if name in _OPTIONAL_ROLES:
                py_off, cli_off = f"EventSchema({name}=None)", f'{name} = ""'
            else:
                py_off = f"EventSchema({name}=()) or leave {column!r} out of it"
                cli_off = f"{name} = [] or leave {column!r} out of it"
            python.append(f"{column!r} is the schema's {name}: name your column with "
                          f"EventSchema({name}={'[...]' if listed else '...'})"
                          + (f" or switch the role off with {py_off}" if optional else ""))
            value = '["..."]' if listed else '"..."'
            cli.append(f"{column!r} is the schema's {name}: name your column with {name} = {value} in the config's "
                       "[schema]"
                       + (f", or switch the role off with {cli_off}" if optional else ""))
    fix = ("The model was trained on events with these columns: rename yours to match, or retrain "
           "with a schema naming your columns (or switching an optional role off). ") if trained else ""
    raise DataError(f"{head} {fix}" + "; ".join(python) + ".", cli=f"{head} {fix}" + "; ".join(cli) + ".")


def _roles_of(schema: EventSchema, column: str, what: str = "") -> list[str]:
    """The schema fields naming ``column`` (defaults included), in field order; in the
    entities table (``what``), its id is ``entities_id_col``'s (empty: ``entity_col``'s)."""
    if what.startswith("entities") and column == schema.entities_id:
        return ["entities_id_col"]
    fields = []
    for f in dataclasses.fields(schema):
        value = getattr(schema, f.name)
        if f.name != "outcome_kinds" and (value == column or (isinstance(value, tuple) and column in value)):
            fields.append(f.name)
    if column == schema.entities_id and not fields:
        fields.append("entity_col")
    return fields


def parse_times(values: pd.Series, column: str, what: str, *, stray: list | None = None,
                clock: bool | None = None) -> tuple[pd.Series, bool]:
    """Parse a time column into naive ``datetime64[ns]``.

    Returns the parsed series (NaT where a value was missing or unparseable) and whether
    the input was timezone-aware. Column-level problems (numbers, mixed aware and naive
    values) raise :class:`DataError`; row-level ones are left as NaT for the caller.
    ``stray`` (a list): a few strings (up to 1% of the column) in the other convention than
    the rest are such rows instead (NaT), and the mask of them is appended to it (an
    export's one dirty row does not stop a night); with ``clock`` (``True``: aware), every
    string in the other convention than ``clock`` is such a row (a night's chunk, judged by
    the model's convention: a chunk is a part of the night, its shares are not the night's).
    """
    values = _pandas_times(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return _pinned_ns(values.dt.tz_convert("UTC").dt.tz_localize(None)), True
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return (values if values.dtype == _NS else _pinned_ns(values)), False
    if _all_missing_numbers(values):  # e.g. an empty CSV column, read as float64: every row lacks a time
        return pd.Series(pd.NaT, index=values.index, dtype=_NS), False
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        _refuse_numbers(values.dtype, column, what)
    present = values.notna()
    as_text = values[present].astype(str)
    sample = as_text.iloc[:: max(1, len(as_text) // 1000)]
    if len(sample) and sample.str.fullmatch(r"\s*\d+(?:\.\d+)?\s*").all() and not (
            sample.str.strip().str.len().isin([8, 12, 14]).all()):  # digits, not yyyyMMdd[HHmm[ss]]: epochs, serials
        _refuse_numbers(f"numbers as text, e.g. {format_examples(sample.head(3))}", column, what)
    as_text, rewritten = _rewritten_times(as_text)
    aware, dated = _text_rows(as_text, _TZ_SUFFIX), _text_rows(as_text, _YEAR)
    naive = ~aware & dated
    if clock is not None:  # the rows in the other convention than clock, however many
        minority = naive if clock else aware
        take = stray is not None and bool(minority.any())
    else:  # the smaller convention, when a few rows
        minority = aware if aware.sum() <= naive.sum() else naive
        take = stray is not None and bool(aware.any()) and bool(naive.any()) and minority.sum() <= len(aware) // 100
    if take:
        odd = np.zeros(len(values), dtype=bool)
        odd[np.flatnonzero(present.to_numpy())[minority]] = True
        stray.append(odd)
        values = values.mask(odd)
        present = values.notna()
        as_text, aware, naive, dated = as_text[~minority], aware[~minority], naive[~minority], dated[~minority]
    if aware.any() and naive.any():
        raise DataError(
            f"{what} column {column!r} mixes timezone-aware and naive times "
            f"({int(aware.sum())} aware, {int(naive.sum())} naive); e.g. aware "
            f"{format_examples(as_text[aware].head(3))}, naive {format_examples(as_text[naive].head(3))}. "
            "Use one convention for the whole column."
        )
    is_aware = bool(aware.any())
    year_last = _text_rows(as_text, _YEAR_LAST)
    if year_last.any():
        as_text = _spliced(as_text, year_last, _year_first(as_text[year_last], column, what))
        rewritten = True
    if rewritten:
        values = pd.Series(None, index=values.index, dtype=object)
        values[present] = as_text.to_numpy(dtype=object)
    if not dated.all():  # pandas reads "today" as today, "05:48" as today at 05:48, "24-01-07" as 2007
        undated = np.zeros(len(values), dtype=bool)
        undated[np.flatnonzero(present.to_numpy())[~dated]] = True
        values = values.mask(undated)
    try:
        parsed = pd.to_datetime(values, errors="coerce", format="mixed", utc=is_aware)
    except (ValueError, TypeError) as exc:  # e.g. datetime objects with mixed tzinfo
        raise DataError(f"{what} column {column!r} could not be parsed as times: {exc}") from exc
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        is_aware = True
    return _pinned_ns(parsed), is_aware


_DAY_MONTH_YEAR = r"^\s*(\d{1,2})([-/.])(\d{1,2})\2(\d{4})"
#: the rows :data:`_DAY_MONTH_YEAR` may match (RE2, which has no back-references)
_YEAR_LAST = r"^\s*\d{1,2}[-/.]\d{1,2}[-/.]\d{4}"
#: a year: four digits, not those of a fraction of a second (``08:05:00.1234``), or two after a
#: month's name (Oracle's ``21-NOV-23``: day, month, year). A time without one is no time (a row
#: problem): pandas reads ``"today"`` and a time of day alone as today, and a two-digit year
#: among numbers (``24-01-07``) as it guesses (2007-01-24)
_YEAR = r"(?:^|[^\d:.,]|[^:\d]\d{0,2}[.,])\d{4}|^\s*\d{1,2}[-/ .][A-Za-z]{3,9}\.?[-/ .]\d{2}(?:\D|$)"
#: a two-digit year after ``/`` or ``.`` (``11/21/23``, ``21.11.23``): the last field, as every such
#: convention writes it (with dashes, ``24-01-07`` is written year first as often: no year)
_SHORT_YEAR = r"^\s*\d{1,2}[/.]\d{1,2}[/.]\d{2}(?:\D|$)"
_SHORT_YEAR_PARTS = re.compile(r"^(\s*\d{1,2}([/.])\d{1,2}\2)(\d{2})(?=\D|$)")


def _year_last(value: str) -> re.Match | None:
    """The fields of one date written year last (``21-11-2023``, ``11/21/23``), else ``None``."""
    return re.match(_DAY_MONTH_YEAR, _SHORT_YEAR_PARTS.sub(_full_year, value))


def _full_year(match: re.Match) -> str:
    """A two-digit year as the year within 50 years of today (as dateutil reads it)."""
    now = pd.Timestamp.now().year
    year = now - now % 100 + int(match[3])
    year += -100 if year > now + 50 else 100 if year < now - 50 else 0
    return f"{match[1]}{year}"


def _refuse_numbers(held, column: str, what: str) -> None:
    """A time column of numbers (epochs, spreadsheet serial days): their unit is unknown."""
    head = f"{what} column {column!r} holds numbers ({held}); times must be datetimes or date strings"
    raise DataError(f"{head}. Convert epochs explicitly, e.g. pd.to_datetime(x, unit='s').",
                    cli=f"{head}: export the column as dates and times (2023-11-21 08:05), not as numbers.")


_CHINESE_DATE = r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
_CHINESE_HALF_DAY = {"上午": "AM", "下午": "PM"}


#: ``UTC+8``, ``GMT-05:30`` after a time: how Chinese systems (and others) write an offset. pandas
#: (dateutil) reads ``UTC+8`` with the POSIX sign, as UTC-8: sixteen hours wrong. Its pattern finds
#: the rows to rewrite in Arrow too (RE2 reads it alike)
_ZONE_OFFSET = re.compile(r"\s*(?:UTC|GMT)\s*([+-])(\d{1,2})(?::?(\d{2}))?\s*$")


def _offset(match: re.Match) -> str:
    return f"{match[1]}{int(match[2]):02d}:{match[3] or '00'}"


def one_time(value) -> pd.Timestamp:
    """One time read as :func:`parse_times` reads a column's value: full-width digits and
    Chinese dates as they say, ``UTC+8`` at the offset it says, text without a year no time
    (``NaT``; pandas reads ``"today"`` and ``"05:48"`` as today). Raises what
    :class:`pandas.Timestamp` raises for a value that is no time."""
    if isinstance(value, str):
        if not value.isascii():  # rare: the column's rewrite
            value = _rewritten_times(pd.Series([value], dtype=object))[0].iloc[0]
        value = _SHORT_YEAR_PARTS.sub(_full_year, _ZONE_OFFSET.sub(_offset, value))
        if not re.search(_YEAR, value, re.ASCII):
            return pd.NaT
    return pd.Timestamp(value)


def _arrow_text(text: pd.Series) -> pa.Array:
    """A column of strings as an Arrow string array (its own, when Arrow-backed)."""
    array = arrow_string_array(text)
    return pa.array(text.to_numpy(dtype=object), type=pa.large_string()) if array is None else array


def _text_rows(text: pd.Series, pattern: str) -> np.ndarray:
    """Which rows of a column of strings ``pattern`` finds: every row (RE2, in Arrow: a few
    odd rows of concatenated exports count as much as the rest), ASCII ``\\d``."""
    return pc.match_substring_regex(_arrow_text(text), pattern).to_numpy(zero_copy_only=False)


def _spliced(text: pd.Series, rows: np.ndarray, new: pd.Series) -> pd.Series:
    """``text`` with its ``rows`` (a mask) replaced by ``new``, as objects."""
    out = text.to_numpy(dtype=object).copy()
    out[rows] = new.to_numpy(dtype=object)
    return pd.Series(out, index=text.index, dtype=object)


def _rewritten_times(text: pd.Series) -> tuple[pd.Series, bool]:
    """A column of time strings with the rows pandas reads wrong rewritten (and whether any
    was): full-width forms (``２０２４－０１－０７``) in their ASCII form (NFKC), Chinese dates
    (:func:`_chinese_dates`), ``UTC+8`` as ``+08:00`` (the offset it means), a two-digit year
    after ``/`` or ``.`` in full (:func:`_full_year`). Every row is judged: ASCII rows hold
    neither of the first two."""
    array = _arrow_text(text)
    rewritten = False
    wide = ~pc.string_is_ascii(array).to_numpy(zero_copy_only=False)
    if wide.any():
        rows = pd.Series(pc.utf8_normalize(array.filter(wide), "NFKC").to_numpy(zero_copy_only=False),
                         index=text.index[wide], dtype=object)
        chinese = rows.str.contains("年|上午|下午|时", regex=True).to_numpy(dtype=bool)
        if chinese.any():
            rows = _spliced(rows, chinese, _chinese_dates(rows[chinese]))
        text, rewritten = _spliced(text, wide, rows), True
    for rows, pattern, rewrite in ((_ZONE_OFFSET.pattern, _ZONE_OFFSET, _offset),
                                   (_SHORT_YEAR, _SHORT_YEAR_PARTS, _full_year)):
        found = _text_rows(text, rows)
        if found.any():
            text = _spliced(text, found, text[found].str.replace(pattern, rewrite, regex=True))
            rewritten = True
    return text, rewritten


def _chinese_dates(as_text: pd.Series) -> pd.Series:
    """Dates written the Chinese way (``2023年11月21日 08:05``, ``2023/11/21 下午 8:05:00``: a
    Chinese-locale export) rewritten as pandas reads them (``2023-11-21 08:05``,
    ``2023/11/21 8:05:00 PM``)."""
    text = as_text.str.replace(_CHINESE_DATE, r"\1-\2-\3 ", regex=True)  # a space: the time may follow at once
    text = text.str.replace(r"(\d{1,2})\s*时\s*(\d{1,2})\s*分(?:\s*(\d{1,2})\s*秒)?",
                            lambda m: f"{m[1]}:{m[2]}" + (f":{m[3]}" if m[3] else ""), regex=True)
    for word, half in _CHINESE_HALF_DAY.items():
        text = text.str.replace(rf"{word}\s*(\S+)", rf"\1 {half}", regex=True)
    return text.str.strip()


def _pandas_times(values: pd.Series) -> pd.Series:
    """Arrow timestamps (``pd.read_parquet(dtype_backend="pyarrow")``) as pandas' own datetime
    dtype in their unit and zone, missing values NaT; other columns as they are."""
    dtype = getattr(values, "dtype", None)
    if isinstance(dtype, pd.ArrowDtype) and pa.types.is_timestamp(dtype.pyarrow_dtype):
        arrow = dtype.pyarrow_dtype
        return values.astype(pd.DatetimeTZDtype(arrow.unit, arrow.tz) if arrow.tz else np.dtype(f"datetime64[{arrow.unit}]"))
    return values


def _year_first(as_text: pd.Series, column: str, what: str) -> pd.Series:
    """Dates written with the year last (``21-11-2023``, ``11/21/2023 08:00``: the rows of a
    column :data:`_YEAR_LAST` finds) rewritten year first, in the one order the column shows:
    day first when some first field is above 12, month first when some second field is. A
    column showing both orders is refused; one that never tells (every field up to 12) is
    read month first, as pandas reads it, with a :class:`DataWarning`. (pandas alone reads
    each value its own way: ``05-03-2024`` as May 3 beside ``13-03-2024`` as March 13.)"""
    fields = as_text.str.extract(_DAY_MONTH_YEAR)
    shaped = fields[0].notna()
    first, second = fields.loc[shaped, 0].astype(int), fields.loc[shaped, 2].astype(int)
    # only a day (13-31) beside a month (1-12) tells the order: 13/45/2024 is no date either way
    days_first = ((first >= 13) & (first <= 31) & (second >= 1) & (second <= 12)).to_numpy()
    months_first = ((second >= 13) & (second <= 31) & (first >= 1) & (first <= 12)).to_numpy()
    day_first, month_first = bool(days_first.any()), bool(months_first.any())
    if day_first and month_first:
        raise DataError(
            f"{what} column {column!r} writes dates both day first and month first, e.g. "
            f"{format_examples(as_text[shaped][days_first].head(2))} and "
            f"{format_examples(as_text[shaped][months_first].head(2))}; use one order (or ISO, 2024-03-05)."
        )
    if not day_first and not month_first:
        warnings.warn(
            f"{what} column {column!r}: dates such as {format_examples(as_text[shaped].head(2))} do not say whether "
            "the day or the month comes first; they are read month first. Write them year first (2024-03-05) "
            "to be sure.", DataWarning, stacklevel=4)
    order = r"\4-\3-\1" if day_first else r"\4-\1-\3"
    return as_text.str.replace(_DAY_MONTH_YEAR, order, regex=True)


def _pinned_ns(times: pd.Series) -> pd.Series:
    """Naive times as ``datetime64[ns]``. Dates outside its range (1677-2262), which a
    string or a second / microsecond column can hold, are absurd anyway: they are pinned
    just inside it, so the plausibility checks reject them with a reason instead of crashing."""
    return times.mask(times < _PIN_LOW, _PIN_LOW).mask(times > _PIN_HIGH, _PIN_HIGH).astype(_NS)


def _all_missing_numbers(values: pd.Series) -> bool:
    """A numeric column with no value at all (how pandas types an empty column): every row
    is missing, which is a row problem (a reject with a reason), not a column of numbers."""
    numeric = pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
    return numeric and bool(isna_mask(values).all())


def times_aware(values: pd.Series) -> bool | None:
    """Whether a time column is timezone-aware, as :func:`parse_times` decides, judged on
    its first thousand values; ``None`` when it cannot tell (no values, numbers, both
    conventions: a column mixing them is refused when parsed)."""
    values = _pandas_times(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return True
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return False
    if pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return None
    missing = isna_mask(values)
    if missing.all():
        return None
    first = values.iloc[int(np.argmin(missing))]
    if isinstance(first, datetime.datetime):
        return first.tzinfo is not None
    sample = values[~missing].iloc[:1000].astype(str)
    sample = _rewritten_times(sample)[0]
    sample = sample[_text_rows(sample, _YEAR)]  # text without a year is no time
    if not len(sample):
        return None
    aware = _text_rows(sample, _TZ_SUFFIX)
    return True if aware.all() else False if not aware.any() else None


def time_zone(values: pd.Series) -> str | None:
    """The zone whose clock a timezone-aware time column was written in: the name of a zone
    the column or its first aware value carries (``"Asia/Shanghai"``), else that value's UTC
    offset (``"+08:00"``, e.g. from a string); ``None`` for naive times (their clock is the one
    they show). Parsed times are UTC: this gives back their local time of day (see
    :func:`~riskmodel.data.local_hours`). One offset stands for the column: a string column
    whose offsets change (summer time) is read at its first value's, with a
    :class:`DataWarning`."""
    values = _pandas_times(values)
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        present = values.dropna()
        return _zone_name(values.dt.tz, present.iloc[0] if len(present) else None)
    if pd.api.types.is_datetime64_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return None
    present = values.iloc[:: max(1, len(values) // 200)].dropna()  # spread over the column: summer and winter
    zones = []
    for value in (present if len(present) else values.dropna().iloc[:200]):
        try:
            stamp = value if isinstance(value, datetime.datetime) else one_time(str(value))
        except (ValueError, TypeError, OverflowError):
            continue
        if stamp is not pd.NaT and stamp.tzinfo is not None:
            zones.append(_zone_name(stamp.tzinfo, stamp))
    if len(set(zones)) > 1:
        warnings.warn(f"the times carry several UTC offsets ({format_examples(sorted(set(zones)))}, e.g. summer time); "
                      f"night-time counts read every time at the first, {zones[0]}.", DataWarning, stacklevel=4)
    return zones[0] if zones else None


def _zone_name(tz, stamp) -> str | None:
    """A zone pandas can convert to: its IANA name (zoneinfo, pytz, UTC), else the UTC offset
    ``"+hh:mm"`` it has at ``stamp`` (fixed offsets, dateutil zones)."""
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    if name is None and str(tz) in ("UTC", "utc"):
        name = "UTC"
    if name is not None:
        return str(name)
    offset = (stamp.utcoffset() if stamp is not None else tz.utcoffset(None)) or datetime.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    return f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def object_codes(values, first: np.ndarray | None = None) -> tuple[np.ndarray, pd.Index] | None:
    """``pd.factorize`` of a column of Python objects (missing values coded -1); ``None`` for a
    few values and other dtypes (their missing values are in a mask or codes already).
    ``first``: objects factorised before the column's (codes for both, ``first``'s first).
    Reading an object per row costs as much as hashing it, so the codes answer the missing-value
    and type checks (code -1; each distinct value's type), and the features reuse them."""
    if not pd.api.types.is_object_dtype(getattr(values, "dtype", None)) or len(values) <= FEW_VALUES:
        return None
    array = np.asarray(values, dtype=object)
    try:
        shared = shared_object_codes(array, first)
        if shared is not None:
            return shared
        codes, uniques = pd.factorize(array if first is None else np.concatenate([first, array]), use_na_sentinel=True)
    except TypeError:
        raise_unhashable(itertools.chain(() if first is None else first, array), getattr(values, "name", None))
    return codes, pd.Index(uniques, dtype=object)


def column_codes(values) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize`` of a column, missing values coded -1 (codes of any integer dtype;
    uniques in order of appearance, or in the categories' order): how every column's values
    are numbered. A categorical is read by its codes, its categories the uniques (those no
    row holds left out); Python objects by :func:`object_codes`, Arrow strings by Arrow's
    dictionary encoding (without pandas' copy of the codes to int64); a few values (one
    dispute) through a dict: pandas' call costs more than the work."""
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return compact_codes(values.cat.codes.to_numpy(), pd.Index(values.cat.categories))
    if len(values) > FEW_VALUES:
        hashed = object_codes(values)
        if hashed is not None:
            return hashed
        array = arrow_string_array(values)
        if array is not None:
            encoded = array.dictionary_encode()
            codes = encoded.indices.fill_null(-1) if encoded.indices.null_count else encoded.indices
            return codes.to_numpy(zero_copy_only=False), pd.Index(pd.array(encoded.dictionary, dtype=values.dtype))
        try:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
        except (TypeError, pa.ArrowNotImplementedError):  # e.g. lists, Arrow structs
            raise_unhashable(values.to_numpy(dtype=object), getattr(values, "name", None))
        return codes, pd.Index(uniques)
    position: dict = {}
    missing = isna_mask(values)
    try:
        codes = [-1 if gone else position.setdefault(v, len(position))
                 for v, gone in zip(values.to_numpy(dtype=object), missing)]
    except TypeError:
        raise_unhashable(values.to_numpy(dtype=object), values.name)
    return np.array(codes, dtype=np.int64), pd.Index(list(position), dtype=values.dtype)


def raise_unhashable(values, column) -> None:
    """Raise a :class:`DataError` naming the values of ``column`` that cannot be compared
    (lists, dicts, sets: pandas' hashing raises ``TypeError`` on them)."""
    bad = []
    for value in values:
        try:
            hash(value)
        except TypeError:
            bad.append(value)
            if len(bad) == 3:
                break
    raise DataError(
        f"column {column!r} holds values that are not single values (e.g. lists), such as "
        f"{format_examples(bad)}; give it strings or numbers (one per row)."
    )


def _addresses(array: np.ndarray) -> np.ndarray:
    """The addresses of a contiguous object array's objects: its buffer (machine words),
    viewed, not copied; no object is touched."""
    words = (ctypes.c_size_t * len(array)).from_address(array.ctypes.data)
    return np.frombuffer(words, dtype=np.uintp)


def shared_object_codes(array: np.ndarray, first: np.ndarray | None = None) -> tuple[np.ndarray, pd.Index] | None:
    """``pd.factorize`` of an object array whose rows share a few objects, read by address:
    ``pd.read_csv`` and pyarrow's ``to_pandas`` give each distinct string of a column one
    Python object, so a column of event kinds holds ten million pointers to a few dozen
    objects. Numbering the pointers (an integer hash of the array itself, read without
    touching the objects), then their few objects by value gives the same codes and
    uniques as ``pd.factorize``, without reading an object per row. ``None`` when the
    values that repeat in rows spread over it are mostly distinct objects (made one per row),
    or none repeats: then the objects are hashed. ``first``: objects numbered before the
    array's (as :func:`object_codes`), judged with them but not sampled."""
    contiguous = array.flags.c_contiguous and (first is None or first.flags.c_contiguous)
    if len(array) <= FEW_VALUES or not contiguous:
        return None
    addresses = _addresses(array)
    step = max(1, len(array) // _SHARED_SAMPLE)
    sample = array[::step][:_SHARED_SAMPLE]
    value_repeats = len(sample) - len(pd.unique(sample))
    if value_repeats == 0 or 2 * (len(sample) - len(np.unique(addresses[::step][:_SHARED_SAMPLE]))) < value_repeats:
        return None
    if first is not None and len(first):
        addresses = np.concatenate([_addresses(first), addresses])
    # codes in order of first appearance (Arrow's hash of integers: pd.factorize's codes, faster)
    by_address = pc.dictionary_encode(pa.array(addresses)).indices.to_numpy()
    is_first = np.empty(len(by_address), dtype=bool)
    is_first[0] = True
    np.greater(by_address[1:], np.maximum.accumulate(by_address[:-1]), out=is_first[1:])
    at = np.flatnonzero(is_first)  # one row per address, in order of first appearance
    if first is None or len(first) == 0:
        objects = array[at]
    else:
        in_first = int(np.searchsorted(at, len(first)))
        objects = np.concatenate([first[at[:in_first]], array[at[in_first:] - len(first)]])
    by_value, uniques = pd.factorize(objects, use_na_sentinel=True)
    return by_value[by_address], pd.Index(uniques, dtype=object)


def kind_codes_of(kinds: pd.Series, column: str) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """:func:`column_codes` of a kind column, blank kinds (:func:`blank_as_missing`) coded
    missing (-1), and the mask of rows whose kind is not a string (each distinct value judged
    once). A column of numbers is refused (one with no value at all: every kind is missing)."""
    numeric = pd.api.types.is_numeric_dtype(kinds.dtype) or pd.api.types.is_bool_dtype(kinds.dtype)
    if numeric and not _all_missing_numbers(kinds):
        raise DataError(
            f"events column {column!r} must hold event kinds as strings, got {kinds.dtype} "
            f"(e.g. {format_examples(kinds.head(3))}). Map codes to names, or use .astype(str)."
        )
    codes, uniques = blank_as_missing(*column_codes(kinds))
    return codes, uniques, per_value(codes, uniques, lambda v: not isinstance(v, str))


def trimmed_codes(codes: np.ndarray, uniques: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Codes of kinds trimmed of surrounding whitespace (a CHAR(n) column or a spreadsheet
    pads ``"threat"`` to ``"threat      "``): values equal once trimmed share one code. The
    codes as they are when no value is padded (each distinct value is judged once)."""
    values = uniques.to_numpy(dtype=object)
    trimmed = [v.strip() if isinstance(v, str) else v for v in values]
    if all(t is v or t == v for t, v in zip(trimmed, values)):
        return codes, uniques
    renumbered, kept = pd.factorize(pd.Index(trimmed, dtype=object))
    return np.append(renumbered, -1)[codes], pd.Index(kept, dtype=object)  # code -1 (missing) stays -1


def per_value(codes: np.ndarray, uniques: pd.Index, test) -> np.ndarray:
    """``test(value)`` for each row, read by its code: each distinct value is judged once
    (code -1, a missing value, reads ``False``)."""
    table = np.array([bool(test(v)) for v in uniques.to_numpy(dtype=object)] + [False], dtype=bool)
    return table[codes] if table.any() else np.zeros(len(codes), dtype=bool)


def blank_as_missing(codes: np.ndarray, uniques: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Codes with those of blank values (:func:`blank_mask`: empty or spaces only, a
    ``CHAR(n)`` column's empty value) set to -1, missing; as they are when none is blank."""
    blank = blank_mask(as_index(uniques))
    if not blank.any():
        return codes, uniques
    return np.append(np.where(blank, -1, np.arange(len(blank))), -1)[codes], uniques


def kind_in(values: pd.Series, kinds: Sequence[str]) -> np.ndarray:
    """Boolean mask of the rows whose kind, trimmed (:func:`trimmed_codes`), is one of ``kinds``."""
    return per_value(*trimmed_codes(*column_codes(values)), set(kinds).__contains__)


# --------------------------------------------------------------------------------------
# events


@dataclass
class ScreenedEvents:
    """Valid events in input order plus the permutation that sorts them (built by
    :func:`screen_events`): :func:`split_invalid_events` materialises the sorted frame, the
    features (:class:`~riskmodel.PreparedEvents`) read columns through ``order``, so that wide
    string columns are never reordered needlessly."""

    columns: Columns  #: the valid rows, input order, schema columns, times parsed
    order: np.ndarray  #: positions into ``valid`` sorted by (entity, time), duplicates removed
    entity_codes: np.ndarray  #: int64 code of each sorted row's entity
    entity_ids: pd.Index  #: entity id of each code
    times_ns: np.ndarray  #: int64 nanoseconds of each sorted row
    tz_aware: bool
    duplicates_dropped: int
    n_rejects: int  #: number of rejected rows
    _raw_rejects: tuple = field(repr=False)
    kind_col: str | None = None  #: the schema's kind column
    #: :func:`column_codes` of the valid rows' kinds (input order), as they were judged
    kind_codes: tuple | None = field(default=None, repr=False)
    #: the entity code of each of ``first_ids`` (-1: no valid event), when they were given
    first_codes: np.ndarray | None = field(default=None, repr=False)
    #: the zone the times were written in, when they carried one (see :func:`time_zone`)
    zone: str | None = None
    #: the rejects are labelled by their positions in the input, whose index repeats a label
    by_position: bool = False

    @functools.cached_property
    def clean(self) -> pd.DataFrame:
        """The valid rows as a frame in ``order`` (schema columns, times parsed, kinds as
        strings: a categorical kind column is read by its codes until here, and sorted as
        codes, which moves no string)."""
        frame = self.columns.to_frame().take(self.order).reset_index(drop=True)
        if self.kind_col in frame and isinstance(frame[self.kind_col].dtype, pd.CategoricalDtype):
            kinds = frame[self.kind_col].cat  # the categories as strings, taken by code: a tenth of astype(str)'s time
            frame[self.kind_col] = kinds.categories.astype(str).take(kinds.codes.to_numpy(), allow_fill=True,
                                                                       fill_value=None)
        return frame

    @functools.cached_property
    def rejects(self) -> pd.DataFrame:
        """Bad rows with their original values (as strings) and a ``reject_reason``."""
        return rejects_frame(*self._raw_rejects)


def sort_by_entity_time(codes: np.ndarray, t_ns: np.ndarray) -> np.ndarray:
    """Stable order by (code, time) of non-negative integer codes, sorted as one-word keys
    (:func:`_key_time_order`); nothing for rows already in that order."""
    return _key_time_order(np.asarray(codes).astype(np.uint64).reshape(-1, 1), t_ns)[0]


def time_order(t_ns: np.ndarray) -> np.ndarray:
    """Stable argsort of int64 nanosecond times (no missing time): their :func:`time_offsets`
    sorted as keys (:func:`~riskmodel.data._keys.stable_key_sort`) when those and the row
    positions fit in 64 bits together; else (nanosecond times over years, a few rows)
    NumPy's stable sort (the readable reference)."""
    if len(t_ns) <= FEW_VALUES:
        return np.argsort(t_ns, kind="stable")
    offsets, _ = time_offsets(t_ns)
    if int(offsets.max()).bit_length() + (len(t_ns) - 1).bit_length() > 64:
        return np.argsort(t_ns, kind="stable")
    return stable_key_sort(offsets)[0]


def time_offsets(t_ns: np.ndarray) -> tuple[np.ndarray, int]:
    """Offsets of int64 nanosecond times from the earliest, in their own unit (the greatest
    common divisor of the offsets: a second for most extracts, a day for dates), as uint64,
    and that unit in nanoseconds (``t_ns == t_ns.min() + offsets * unit``)."""
    offsets = (t_ns - t_ns.min()).view(np.uint64)  # below 2**63: times are within pandas' range
    unit = int(np.gcd.reduce(offsets))
    if unit > 1:
        np.floor_divide(offsets, np.uint64(unit), out=offsets)
    return offsets, max(unit, 1)


def integer_keys(ids) -> np.ndarray | None:
    """Integer ids (no missing value) as ``uint64`` keys that sort like the ids, else ``None``."""
    if not pd.api.types.is_integer_dtype(getattr(ids, "dtype", None)):
        return None
    values = ids.to_numpy()
    if values.dtype.kind == "u":
        return values.astype(np.uint64, copy=False)
    if values.dtype.kind != "i":  # e.g. an extension array with missing values: objects
        return None
    return values.astype(np.int64, copy=False).view(np.uint64) ^ np.uint64(1 << 63)  # signed order


def _key_time_order(keys: np.ndarray, t_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Stable order of rows by (key, time), where the sorted key changes (see
    :func:`~riskmodel.data._keys.stable_key_sort`) and the sorted times: nothing for rows
    already in that order; one-word keys of shuffled rows in buckets of packed (key, time,
    place) (:func:`~riskmodel.data._keys.key_time_sort`, which reads the sorted times off
    its packed integers) where those fit; else a stable sort by time (none for time-sorted
    rows), then by key (the reference). ``None`` when the keys do not pack (hash them)."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool), t_ns
    time_sorted = bool((t_ns[1:] >= t_ns[:-1]).all())
    if keys.shape[1] == 1:
        key = keys[:, 0]
        same = key[1:] == key[:-1]
        if bool((key[1:] >= key[:-1]).all()) and bool((t_ns[1:] >= t_ns[:-1])[same].all()):
            return np.arange(len(key), dtype=np.int64), np.r_[True, ~same], t_ns  # already in order
        if not time_sorted and len(key) > FEW_VALUES:
            offsets, unit = time_offsets(t_ns)
            bucketed = key_time_sort(key, offsets)
            if bucketed is not None:
                order, is_new, sorted_times = bucketed
                sorted_ns = sorted_times.view(np.int64)  # offsets below 2**63
                sorted_ns *= unit
                sorted_ns += t_ns.min()
                return order, is_new, sorted_ns
    sorted_ = stable_key_sort(keys, then_by=None if time_sorted else lambda: time_order(t_ns))
    return None if sorted_ is None else (*sorted_, t_ns[sorted_[0]])


def entity_order(ids: pd.Series, t_ns: np.ndarray, sort_ids: bool, *, codes: tuple | None = None
                  ) -> tuple[np.ndarray, np.ndarray, pd.Index, np.ndarray]:
    """Sort rows by (entity, time): the order, each sorted row's entity code, each code's id
    and the sorted rows' times.

    Integer ids and short Arrow string ids (:func:`~riskmodel.data._keys.string_keys`, up to
    24 bytes) are sorted as integer keys, with no hash table, where those pack beside the
    row positions (:func:`~riskmodel.data._keys.stable_key_sort`); the codes then number the
    ids in sorted order. Otherwise (long, random or object strings, other types) ids are
    factorised, in sorted order if ``sort_ids``, and the integer codes are sorted. ``codes``: the ids'
    factorisation (codes, uniques; no missing id) when the caller has it already.
    """
    if codes is None:
        keys = integer_keys(ids) if len(ids) > FEW_VALUES else None
        if keys is None and len(ids) > FEW_VALUES:
            keys = string_keys(ids)
        in_order = None if keys is None else _key_time_order(keys.reshape(len(keys), -1), t_ns)
        if in_order is not None:
            order, is_first, sorted_ns = in_order
            uniques = pd.Index(ids.array.take(order[np.flatnonzero(is_first)]))  # each entity's first row
            return order, _run_numbers(is_first), uniques, sorted_ns
        codes = numbers_as_text(*column_codes(ids))  # a categorical's codes follow its categories: sorted as pandas sorts it
        sort_ids = sort_ids and not isinstance(ids.dtype, pd.CategoricalDtype)
    if sort_ids and len(codes[1]) > 1:  # number the ids in sorted order (as pd.factorize(sort=True); one is sorted)
        rank, uniques = pd.factorize(pd.Index(codes[1]), sort=True)
        codes = (rank[codes[0]], uniques)
    codes, uniques = np.asarray(codes[0], dtype=np.int64), as_index(codes[1])
    order, is_first, sorted_ns = _key_time_order(codes.astype(np.uint64).reshape(-1, 1), t_ns)
    sorted_codes = _run_numbers(is_first)
    if len(codes) and int(sorted_codes[-1]) + 1 < len(uniques):  # not every code has a row: read them
        sorted_codes = codes[order]
    return order, sorted_codes, uniques, sorted_ns


def _run_numbers(is_first: np.ndarray) -> np.ndarray:
    """The number of each sorted row's run of equal keys (0, 1, 2, ...; ``is_first`` marks
    where a run starts): the codes of sorted keys numbered in order, when each has a row."""
    numbers = np.cumsum(is_first, dtype=np.int64)
    numbers -= 1
    return numbers


def screen_events(
    events: pd.DataFrame,
    schema: EventSchema,
    *,
    now: pd.Timestamp | None = None,
    sort_ids: bool = True,
    first_ids=None,
    stray_times: bool = False,
    clock: bool | None = None,
) -> ScreenedEvents:
    """Validate events without reordering them: rejects, valid rows and their sort order.

    Column-level problems (not a frame, empty, missing columns, numeric times or kinds,
    mixed timezones) raise :class:`DataError`: no row can be trusted then. ``sort_ids``
    numbers entities in sorted id order (else in any order, whichever is faster).
    ``first_ids`` (e.g. the cutoffs' ids), with ``sort_ids=False``: when the ids are hashed
    (Python objects, see :func:`object_codes`), these are hashed with them and numbered
    first, in their order; ``first_codes`` then gives each one's entity code (-1: no valid
    event), so they need no lookup, and cutoffs listed in that order need no reordering.
    ``stray_times``: a few times in the other timezone convention than the rest (or, with
    ``clock``, any in the other convention than ``clock``) are rejected rows, not a column
    refused (see :func:`parse_times`).
    """
    require_frame(events, "events")
    require_schema(schema)
    require_columns(events, schema.event_columns, "events", schema=schema)
    columns = {col: events[col] for col in schema.event_columns}
    stray: list | None = [] if stray_times else None
    times, tz_aware = parse_times(columns[schema.time_col], schema.time_col, "events", stray=stray, clock=clock)
    now = default_now() if now is None else naive_utc(now, "now")
    return _screen(events, schema, columns, (times, tz_aware, stray), now=now, sort_ids=sort_ids, first_ids=first_ids,
                   stacklevel=4)


def _screen(events, schema: EventSchema, columns: dict, parsed: tuple, *, now: pd.Timestamp, sort_ids: bool,
            first_ids, stacklevel: int) -> ScreenedEvents:
    """:func:`screen_events` of ``events`` whose ``columns`` are read and whose times are
    ``parsed`` (times, whether aware, the stray-time masks): a second pass, with blank ids
    as missing ones, gives no time warning twice. ``stacklevel``: its warnings' (naming the
    line that called :func:`screen_events`' caller)."""
    times, tz_aware, stray = parsed
    # object columns are hashed once (:func:`object_codes`): for their checks, the sort and the features
    id_codes, first_codes = _id_codes(columns[schema.entity_col], None if sort_ids else first_ids)
    kind_codes, kind_uniques, not_str_kind = kind_codes_of(columns[schema.kind_col], schema.kind_col)
    t_ns = ns_values(times)  # NaT is the smallest int64
    # every time check below fails only outside [MIN_PLAUSIBLE_TIME, now] (NaT, from
    # missing or unparseable times, is the smallest int64): one pass when all are in
    time_out = (t_ns < MIN_PLAUSIBLE_TIME.value) | (t_ns > now.value)
    checks_times = bool(time_out.any())
    checks = (  # (bad-row mask, or None when no row can fail it; reason): the first reason wins
        (isna_mask(columns[schema.entity_col]) if id_codes is None else id_codes[0] < 0, f"null id in {schema.entity_col!r}"),
        ((isna_mask(columns[schema.time_col]) | blank_mask(columns[schema.time_col])) if checks_times else None,
         f"missing time in {schema.time_col!r}"),
        (stray[0] if stray else None, f"time with a UTC offset among times without (or the reverse) in {schema.time_col!r}"),
        (t_ns == NAT_NS if checks_times else None, f"unparseable time in {schema.time_col!r}"),
        (t_ns < MIN_PLAUSIBLE_TIME.value if checks_times else None,
         f"time before {MIN_PLAUSIBLE_TIME.date()} in {schema.time_col!r}"),
        (t_ns > now.value if checks_times else None, f"time in the future (after {now}) in {schema.time_col!r}"),
        (kind_codes < 0, f"missing kind in {schema.kind_col!r}"),
        (not_str_kind, f"kind is not a string in {schema.kind_col!r}"),
    )
    masks = [None if mask is None else np.asarray(mask, dtype=bool) for mask, _ in checks]
    bad = time_out
    for mask in masks:
        if mask is not None:
            bad |= mask
    columns[schema.time_col] = times
    if bad.any():  # valid extracts skip the reasons
        reason_code = np.zeros(len(events), dtype=np.int8)
        for i, mask in enumerate(masks, start=1):
            if mask is not None:
                reason_code[mask & (reason_code == 0)] = i
        reasons = np.array([""] + [reason for _, reason in checks], dtype=object)[reason_code[bad]]
        raw_bad, by_position = _by_place(events[schema.event_columns][bad], events, np.flatnonzero(bad))
        columns = {col: values[~bad] for col, values in columns.items()}
        t_ns = t_ns[~bad]
        id_codes = None if id_codes is None else (id_codes[0][~bad], id_codes[1])
        kind_codes, kind_uniques = compact_codes(kind_codes[~bad], kind_uniques)
    else:
        reasons = np.zeros(0, dtype=object)
        raw_bad, by_position = None, False
    if first_codes is not None:  # the valid rows' ids only, and where first_ids are among them
        codes, uniques, first_codes = compact_codes(*id_codes, first_codes)
        id_codes = (codes, uniques)
    elif id_codes is not None and raw_bad is not None:
        id_codes = compact_codes(*id_codes)

    order, codes, uniques, t_ns = entity_order(columns[schema.entity_col], t_ns, sort_ids, codes=id_codes)
    array = _string_array(uniques)  # odd ids are judged on the distinct ids, not the rows
    if (_blank_strings(array) if array is not None and len(uniques) > FEW_VALUES else blank_mask(uniques)).any():
        # rare: ids of spaces only (a CHAR(n) column's empty value) are missing ids
        frame = events.to_frame() if isinstance(events, Columns) else events
        ids = frame[schema.entity_col]
        # numbered by position, so that the rejects show the ids as written ("   "), not as missing
        masked = frame.assign(**{schema.entity_col: ids.mask(blank_mask(ids))}).set_axis(pd.RangeIndex(len(frame)))
        screened = _screen(masked, schema, {col: masked[col] for col in schema.event_columns}, parsed, now=now,
                           sort_ids=sort_ids, first_ids=first_ids, stacklevel=stacklevel + 1)
        raw_bad, reasons, columns = screened._raw_rejects
        if raw_bad is not None:
            positions = raw_bad.index.to_numpy()
            raw_bad, screened.by_position = _by_place(frame[columns].iloc[positions], frame, positions)
            screened._raw_rejects = (raw_bad, reasons, columns)
        return screened
    if array is not None:  # ids differing from another only by spaces around them, and other odd ids
        warn_odd_ids(array, stacklevel=stacklevel + 1)
    warn_outcome_twins(kind_uniques, schema.outcome_kinds, stacklevel=stacklevel + 1)
    # exact duplicates share (entity, time): after the sort, candidates share it with a neighbour
    same_key = np.zeros(len(codes) + 1, dtype=bool)  # same_key[i]: row i - 1 matches row i
    np.equal(codes[1:], codes[:-1], out=same_key[1:-1])  # (empty for fewer than two rows)
    same_key[1:-1] &= t_ns[1:] == t_ns[:-1]
    candidates = same_key[:-1] | same_key[1:]
    n_dup = 0
    if candidates.any():
        rows = order[candidates]
        dup = np.zeros(len(order), dtype=bool)
        input_rows = np.flatnonzero(~bad)[rows] if bad.any() else rows
        # judged on the schema's columns, as the nightly batch (which reads no other) judges them
        dup[candidates] = events.iloc[input_rows][schema.event_columns].duplicated(keep="first").to_numpy()
        n_dup = int(dup.sum())
        if n_dup:
            warnings.warn(
                f"dropped {n_dup} exact duplicate event row(s) (identical in every column the schema names; "
                "name a column telling events apart, e.g. a call number, in event_attribute_cols).",
                DataWarning,
                stacklevel=stacklevel,
            )
            order, codes, t_ns = order[~dup], codes[~dup], t_ns[~dup]
    return ScreenedEvents(columns=Columns(columns), order=order, entity_codes=codes, entity_ids=uniques, times_ns=t_ns,
                          tz_aware=tz_aware, duplicates_dropped=n_dup, n_rejects=int(bad.sum()),
                          _raw_rejects=(raw_bad, reasons, schema.event_columns), kind_col=schema.kind_col,
                          kind_codes=(kind_codes, kind_uniques), first_codes=first_codes,
                          zone=time_zone(events[schema.time_col]) if tz_aware else None, by_position=by_position)


#: said of rejects named by position (:attr:`ScreenedEvents.by_position`)
BY_POSITION = "rows counted by position from 0: the index repeats labels"


def _by_place(bad_rows: pd.DataFrame, events, positions: np.ndarray) -> tuple[pd.DataFrame, bool]:
    """The rejected rows, labelled as in ``events``; by their positions (0, 1, ...) when its
    index repeats a label, which would name several rows (a ``pd.concat`` of frames keeps
    theirs). Also whether they are labelled by position."""
    index = getattr(events, "index", None)
    if index is None or index.is_unique:
        return bad_rows, False
    return bad_rows.set_axis(pd.Index(positions)), True


def raise_screened(screened: ScreenedEvents, what: str = "events") -> None:
    """:func:`raise_rejects` of ``screened``'s rejects, rows named by the input's index labels,
    or by position where the index repeats a label (:attr:`ScreenedEvents.by_position`: the
    message then says so)."""
    if screened.n_rejects:
        raise_rejects(screened.rejects, f"{what} ({BY_POSITION})" if screened.by_position else what)


def default_now() -> pd.Timestamp:
    """The latest plausible event time when none is given: the end of tomorrow (UTC), fixed
    for the day (reruns on one day agree exactly) and a day ahead of any local clock, so
    naive local times of a city east of UTC are never taken for the future."""
    return pd.Timestamp((time.time_ns() // NS_PER_DAY + 2) * NS_PER_DAY)  # midnight UTC, two days on


def as_index(values) -> pd.Index:
    """``values`` as a :class:`pandas.Index`: themselves when they are one (``pd.Index`` of an
    index builds a new one, which costs more than one dispute's checks)."""
    return values if isinstance(values, pd.Index) else pd.Index(values)


def ns_values(times) -> np.ndarray:
    """A column of naive times as int64 nanoseconds (NaT: the smallest int64), with no copy
    when it holds ``datetime64[ns]``: then a read-only view of the caller's column (as
    ``Series.to_numpy`` gives, ~5x slower), never written through."""
    if times.dtype == _NS:
        values = np.asarray(times.array).view(np.int64)
        values.flags.writeable = False
        return values
    return times.to_numpy("datetime64[ns]").view(np.int64)


_ID_KINDS = {"integer": "number", "floating": "number", "mixed-integer-float": "number", "decimal": "number",
             "mixed-integer": "number and text", "boolean": "bool", "string": "text"}


def id_kind(ids) -> str | None:
    """``"number"``, ``"bool"``, ``"text"`` or ``"number and text"`` (Python ints and strings):
    what a column of ids holds, judged by its values
    (a categorical by its categories, Python objects by the first thousand); ``None``: cannot tell."""
    dtype = ids.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return id_kind(dtype.categories)
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_object_dtype(dtype):
        return _ID_KINDS.get(pd.api.types.infer_dtype(ids[:1000], skipna=True))
    return "text" if pd.api.types.is_string_dtype(dtype) else None


def decimal_text(ids) -> np.ndarray:
    """Ids as text, numbers in decimal (whole floats as integers: ``2895.0`` is ``"2895"``),
    strings as they are, as an object array; missing ones ``None``. Integer and float arrays
    are formatted by NumPy; every other value (and floats past int64) by :func:`_decimal`, the
    readable rule (tested equal)."""
    values = np.asarray(getattr(ids, "array", ids))
    if values.dtype.kind in "iu":  # plain integers: NumPy's own formatting
        return values.astype(str).astype(object)
    if values.dtype.kind != "f":
        return np.array([_decimal(v) for v in values.astype(object, copy=False)], dtype=object)
    # floats (integer ids with a missing one among them): whole ones as integers, no Python per row
    out = np.full(len(values), None, dtype=object)
    whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**62)
    out[whole] = values[whole].astype(np.int64).astype(str)
    rest = ~whole & ~np.isnan(values)  # fractions, infinities, huge values: rare
    out[rest] = [_decimal(v) for v in values[rest]]
    return out


def ids_of_one_type(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """A DataFrame whose id ``column`` holds numbers and text (``2895`` and ``"2895"``, two
    extracts concatenated) with its ids as text (:func:`one_type_ids`); any other frame as it is."""
    if column not in frame:
        return frame
    ids = one_type_ids(frame[column])
    return frame if ids is frame[column] else frame.assign(**{column: ids})


def one_type_ids(ids: pd.Series) -> pd.Series:
    """Ids holding numbers and text as text (:func:`decimal_text`), one id each, as files hold
    them; any other column as it is (the same object)."""
    if pd.api.types.is_object_dtype(ids.dtype) and pd.api.types.infer_dtype(ids, skipna=True) in (
            "mixed-integer", "mixed") and all(map(_number_or_text, ids.to_numpy(dtype=object))):
        return pd.Series(decimal_text(ids), index=ids.index, name=ids.name, dtype=object)
    return ids  # (other values, e.g. a list, are named by the checks that follow)


def _number_or_text(v) -> bool:
    return isinstance(v, str | int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_) \
        or v is None or v is pd.NA


def _decimal(v) -> str | None:
    """One id as :func:`decimal_text` writes it."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float | np.floating) and np.isnan(v)):
        return None
    if isinstance(v, bool | np.bool_ | str):
        return str(v)
    if isinstance(v, int | np.integer) or (isinstance(v, float | np.floating) and float(v).is_integer()):
        return str(int(v))
    return str(v)


def _id_codes(ids: pd.Series, first_ids) -> tuple[tuple[np.ndarray, pd.Index] | None, np.ndarray | None]:
    """:func:`object_codes` of the ids, those of ``first_ids`` numbered first (see
    :func:`screen_events`), and the codes of ``first_ids`` (-1: not among the ids); ``None``
    for those when the ids are not hashed."""
    n_first = 0 if first_ids is None else len(first_ids)
    if not (n_first and pd.api.types.is_object_dtype(ids.dtype) and len(ids) > FEW_VALUES
            and (len(kinds := {id_kind(pd.Series(first_ids)), id_kind(ids)}) == 1 or "number" not in kinds)):
        # (numbers and text: looked up, as text)
        hashed = object_codes(ids)
        return None if hashed is None else numbers_as_text(*hashed), None
    codes, uniques = numbers_as_text(*object_codes(ids, first=np.asarray(first_ids, dtype=object)))
    return (codes[n_first:], uniques), codes[:n_first]


def numbers_as_text(codes: np.ndarray, uniques: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Codes of ids of one column holding numbers and text (two extracts concatenated) renumbered
    with the numbers as text (:func:`decimal_text`): ``2895`` and ``"2895"`` are one id, as they
    are across tables (:func:`~riskmodel.data.lookup_positions`). Other codes as they are."""
    if not pd.api.types.is_object_dtype(uniques.dtype) or pd.api.types.infer_dtype(uniques, skipna=True) not in (
            "mixed-integer", "mixed"):  # one type (the usual case), judged in C
        return codes, uniques
    values = uniques.to_numpy(dtype=object)
    if not (any(isinstance(v, str) for v in values)
            and any(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in values)):
        return codes, uniques
    renumbered, text = pd.factorize(decimal_text(values))
    return np.append(renumbered, -1)[codes], pd.Index(text, dtype=object)  # code -1 (missing) stays -1


def warn_odd_ids(ids: pa.Array, stacklevel: int = 4) -> None:
    """:class:`DataWarning`\\ s about the distinct string ``ids``: some differ from another only
    by spaces around them (``"A1 "`` beside ``"A1"``: a ``CHAR(n)`` export concatenated with a
    ``VARCHAR`` one), characters that show nothing (:data:`INVISIBLE`) or letter case (``a1``
    beside ``A1``): they are different disputes; some are numbers in scientific notation
    (``3.20102E+17``: an 18-digit case number saved by Excel), which lost digits; some are
    words for a missing value (:data:`NULL_WORDS`: ``NULL``, ``None``, ``\\N``; a frame read
    with ``keep_default_na=False``, a driver writing ``NULL``): each is taken as a dispute."""
    ids = ids.drop_null()
    _warn_twin_ids(ids, stacklevel + 1)
    if _holds(ids, lambda raw: raw == 0x2B):  # "+": a regex pass only when the bytes allow one
        sci = pc.match_substring_regex(ids, SCIENTIFIC_ID)
        if pc.any(sci).as_py():
            warnings.warn(f"ids such as {format_examples(pc.filter(ids, sci).to_pylist()[:3])} are numbers in "
                          "scientific notation, as Excel shows long numbers: their last digits are lost, so different "
                          "disputes share one id. Export the id column as text.", DataWarning, stacklevel=stacklevel)
    if len(ids) > FEW_VALUES:  # Arrow's hash set of the words costs more than a few ids' dict lookups
        words = pc.filter(ids, pc.is_in(ids, value_set=_NULL_WORD_SET)).to_pylist()
    else:
        words = [v for v in ids.to_pylist() if v in _NULL_WORD_KEYS]
    if words:
        warnings.warn(f"ids {format_examples(words[:5])} are words for a missing value: "
                      "each is taken as a dispute. Read them as missing (pandas' read_csv does, with its default "
                      "na_values).", DataWarning, stacklevel=stacklevel)


def outcome_twins(kinds, outcome_kinds: Sequence[str]) -> list[str]:
    """The distinct ``kinds`` that differ from one of the ``outcome_kinds`` only by letter case
    or spaces around them (``Criminal_Case`` for ``criminal_case``), in their order."""
    wanted = {k.strip().casefold() for k in outcome_kinds}
    exact = {k.strip() for k in outcome_kinds}
    return [k for k in kinds if isinstance(k, str) and k.strip() not in exact and k.strip().casefold() in wanted]


def warn_outcome_twins(kinds, outcome_kinds: Sequence[str], stacklevel: int = 4) -> None:
    """A :class:`DataWarning` when some of the distinct ``kinds`` are :func:`outcome_twins`
    (as another system or a spreadsheet writes them): such events are not escalations, so
    their disputes are labelled 0 and scored as open."""
    twins = outcome_twins(kinds, outcome_kinds)
    if twins:
        warnings.warn(f"event kinds {format_examples(twins)} differ from the outcome kinds {list(outcome_kinds)} only "
                      "by letter case: they are not escalations, so their disputes are labelled 0 and scored as "
                      "open. Name them in outcome_kinds too, or write the kinds as the outcome kinds are written.",
                      DataWarning, stacklevel=stacklevel)


def _string_array(values) -> pa.Array | None:
    """A column (or index) of strings as an Arrow string array (its own, when Arrow-backed);
    ``None`` when it holds anything else."""
    array = arrow_string_array(values)
    if array is None and pd.api.types.is_object_dtype(getattr(values, "dtype", None)) and len(values) and \
            pd.api.types.infer_dtype(values, skipna=True) == "string":
        array = pa.array(np.asarray(values, dtype=object), type=pa.large_string(), from_pandas=True)
    return array


def blank_mask(values) -> np.ndarray:
    """Which values are strings of spaces only, or empty (a ``CHAR(n)`` column's empty value):
    missing values in all but name. A categorical is judged by its categories, Arrow strings
    by Arrow (an Arrow array too), Python objects one by one when few or of mixed types."""
    if isinstance(values, pa.Array | pa.ChunkedArray):  # e.g. an Arrow column's distinct values
        values = pd.Series(pd.arrays.ArrowExtensionArray(values))
    elif not isinstance(values, pd.Series | pd.Index):  # an array of pd.unique, say: read as a column
        values = pd.Series(values)
    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        return np.append(blank_mask(values.dtype.categories), False)[values.array.codes]
    array = _string_array(values) if len(values) > FEW_VALUES else None
    if array is None:
        if not (pd.api.types.is_object_dtype(getattr(values, "dtype", None))
                or pd.api.types.is_string_dtype(getattr(values, "dtype", None))):
            return np.zeros(len(values), dtype=bool)
        return np.array([isinstance(v, str) and not v.translate(_NO_INVISIBLE).strip()
                         for v in np.asarray(values, dtype=object)], dtype=bool)
    return _blank_strings(array)


def _blank_strings(array: pa.Array) -> np.ndarray:
    """:func:`blank_mask` of an Arrow string array."""
    blank = pc.or_(pc.utf8_is_space(array), pc.equal(pc.binary_length(array), 0))
    if _holds(array, _invisible_lead):
        blank = pc.or_(blank, pc.match_substring_regex(array, f"^[\\s\\p{{Z}}\\x1c-\\x1f\\x85{INVISIBLE}]+$"))  # str.strip's
    return blank.fill_null(False).to_numpy(zero_copy_only=False)


#: characters that show nothing: zero-width space, non-joiner and joiner, word joiner, BOM (a
#: file's byte-order mark at a line's start, when exports are concatenated)
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_NO_INVISIBLE = str.maketrans("", "", INVISIBLE)


def _invisible_lead(raw: np.ndarray) -> np.ndarray:
    """The bytes that start :data:`INVISIBLE` characters in UTF-8 (for :func:`_holds`)."""
    return (raw == 0xE2) | (raw == 0xEF)


#: an id that is a number in scientific notation (``3.20102E+17``)
SCIENTIFIC_ID = r"^\s*[+-]?\d(?:[.,]\d+)?[eE]\+\d+\s*$"


def _holds(array: pa.Array | pa.ChunkedArray, test) -> bool:
    """Whether ``test`` (an array of bytes -> a mask) holds for some byte of a string array's
    text: ``False`` rules out what such bytes make, in one pass over the bytes."""
    for chunk in array.chunks if isinstance(array, pa.ChunkedArray) else [array]:
        data = chunk.buffers()[2] if len(chunk.buffers()) > 2 else None
        if data is not None and test(np.frombuffer(data, dtype=np.uint8)).any():
            return True
    return False


def twin_key(ids: pa.Array) -> pa.Array:
    """The key by which ids are twins: NFKC (full-width ``Ｄ０１２`` as ``D012``), trimmed of
    spaces and :data:`INVISIBLE` characters, without a leading ``'`` (Excel's text marker),
    upper case. The same for an id whatever array holds it (the Spark engine keys each batch of
    distinct ids apart): a step is skipped only where the bytes show it changes nothing (a
    regex pass costs 0.2 s on 1M ids)."""
    key = ids
    if _holds(ids, lambda raw: raw >= 0x80):  # NFKC changes no ASCII
        key = pc.utf8_normalize(key, "NFKC")
    key = pc.utf8_trim_whitespace(key)
    if _holds(ids, _invisible_lead):
        key = pc.utf8_trim_whitespace(pc.replace_substring_regex(key, f"^[{INVISIBLE}]+|[{INVISIBLE}]+$", ""))
    if _holds(ids, lambda raw: raw == 0x27):
        key = pc.replace_substring_regex(key, "^'", "")
    if _holds(ids, lambda raw: ((raw >= 0x61) & (raw <= 0x7A)) | (raw >= 0x80)):  # a letter upper case changes
        key = pc.utf8_upper(key)
    return key


def _warn_twin_ids(ids: pa.Array, stacklevel: int) -> None:
    """The warning about distinct ``ids`` equal to another but for spaces, :data:`INVISIBLE`
    characters around them, letter case, full-width forms or a leading ``'``: ids of one
    :func:`twin_key`. Blank ids (an empty key) are missing ids, no one's twins."""
    if len(ids) < 2:  # no twins (one dispute's scoring: 0.1 ms of Arrow calls saved)
        return
    key = twin_key(ids)
    if not pc.any(pc.not_equal(key, ids)).as_py():
        return
    named = pc.not_equal(key, "")
    ids, key = ids.filter(named), key.filter(named)
    codes, keys = pd.factorize(pd.Series(key, dtype=pd.ArrowDtype(key.type)))  # 0.1 s on 1M ids; Arrow's 0.3 s
    extra = len(ids) - len(keys)  # ids beyond the first of each key
    if extra:
        twins = np.flatnonzero(np.bincount(codes)[codes] > 1)
        examples = ids.take(pa.array(twins[np.argsort(codes[twins], kind="stable")][:3])).to_pylist()
        warnings.warn(f"{extra:,} id(s) differ from another only by spaces around them (or characters that show "
                      "nothing: zero-width spaces, a BOM), by letter case, full-width forms or a leading ' (Excel's "
                      f"text marker), e.g. {format_examples(examples)}: they are "
                      "taken as different disputes. Write each id one way in the export (a CHAR(n) column pads them).",
                      DataWarning, stacklevel=stacklevel)


def compact_codes(codes: np.ndarray, uniques: pd.Index, *others: np.ndarray) -> tuple:
    """Codes of a subset of rows renumbered to the values it holds (order kept); ``others``:
    more codes of the same uniques, renumbered alike (-1 for a value the subset lacks)."""
    present = np.zeros(len(uniques) + 1, dtype=bool)
    present[codes] = True  # code -1 marks the extra last slot; no copy of the codes
    used = present[:-1]
    if used.all():
        return codes, uniques, *others
    renumber = np.append(np.where(used, np.cumsum(used) - 1, -1), -1)  # code -1 stays -1
    return renumber[codes], uniques[used], *(renumber[other] for other in others)


def isna_mask(values: pd.Series) -> np.ndarray:
    """Boolean mask of missing values (the array's own check: Series.isna costs ~30x more
    on a few rows)."""
    return np.asarray(values.array.isna(), dtype=bool)


class Columns:
    """Same-length columns read the way the feature and scoring code read a frame.

    ``table[name]`` (a Series), ``len(table)`` (rows), ``name in table``, ``.index``
    (0..n-1) and ``.columns``; :meth:`to_frame` builds the DataFrame. The validators
    return one internally because building a DataFrame costs more than all their checks
    on the few rows of online scoring (one dispute).

    Parameters
    ----------
    columns : dict of str to Series or ndarray
        Same length; a Series' own index is ignored, as when building a frame from it.
    """

    def __init__(self, columns: Mapping[str, pd.Series | np.ndarray]):
        self._columns = dict(columns)
        first = next(iter(self._columns.values()), ())
        self.index = pd.RangeIndex(len(first))
        self._series: dict[str, pd.Series] = {}

    @property
    def columns(self) -> list[str]:
        return list(self._columns)

    def __getitem__(self, name: str) -> pd.Series:
        if name not in self._series:
            values = self._columns[name]
            if isinstance(values, pd.Series) and values.index.equals(self.index):
                self._series[name] = values
            else:
                self._series[name] = pd.Series(getattr(values, "array", values), index=self.index, name=name,
                                               copy=False)
        return self._series[name]

    def __contains__(self, name: object) -> bool:
        return name in self._columns

    def __len__(self) -> int:
        return len(self.index)

    def to_frame(self) -> pd.DataFrame:
        """A frame of the columns with a fresh RangeIndex (no index alignment)."""
        return pd.DataFrame({col: getattr(values, "array", values) for col, values in self._columns.items()},
                            copy=False)


def rejects_frame(raw_bad: pd.DataFrame | None, reasons: np.ndarray, columns: Sequence[str]) -> pd.DataFrame:
    """Rejected rows with their original values as strings (None where missing) and the reason."""
    if raw_bad is None or len(raw_bad) == 0:
        return pd.DataFrame({col: np.zeros(0, dtype=object) for col in [*columns, "reject_reason"]})
    return raw_bad.astype(object).astype(str).where(raw_bad.notna(), None).assign(reject_reason=reasons)


def split_invalid_events(
    events: pd.DataFrame,
    schema: EventSchema,
    *,
    now: pd.Timestamp | None = None,
    stray_times: bool = False,
    clock: bool | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Validate events, separating bad rows instead of raising; column-level problems still
    raise (see :func:`screen_events`, and for ``stray_times`` and ``clock``).

    Returns
    -------
    clean : DataFrame
        Valid events, sorted by entity then time, times as naive ``datetime64[ns]``.
    rejects : DataFrame
        Bad rows with their original values (as strings) and a ``reject_reason``; their
        labels are ``events``' (their positions, 0, 1, ..., where its index repeats a label).
    info : dict
        ``{"tz_aware": bool, "duplicates_dropped": int}``.
    """
    screened = screen_events(events, schema, now=now, stray_times=stray_times, clock=clock)
    clean = screened.clean
    return clean, screened.rejects, {"tz_aware": screened.tz_aware, "duplicates_dropped": screened.duplicates_dropped}


def validate_events(
    events: pd.DataFrame,
    schema: EventSchema | None = None,
    *,
    now: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Check an event log against the schema and return a clean, typed, sorted copy.

    Parameters
    ----------
    events : DataFrame
        One row per event, with the schema's entity, time and kind columns.
    schema : EventSchema, optional
        Column names; the default matches :func:`simulate_disputes`.
    now : Timestamp, optional
        Latest plausible event time; defaults to the end of tomorrow (UTC).

    Returns
    -------
    DataFrame
        The schema's columns, sorted by entity then time, times as naive ``datetime64[ns]``.

    Raises
    ------
    DataError
        Naming the problem, the column, the number of rows and the first offending values.

    Examples
    --------
    >>> import pandas as pd
    >>> from riskmodel import EventSchema, validate_events
    >>> schema = EventSchema(text_col=None, party_col=None)
    >>> bad = pd.DataFrame({"dispute_id": ["a", None], "time": ["2024-01-01", "2024-01-02"],
    ...                     "kind": ["call", "call"]})
    >>> validate_events(bad, schema)
    Traceback (most recent call last):
    ...
    riskmodel._errors.DataError: events: 1 row(s) with null id in 'dispute_id' (first rows: [1])
    """
    schema = schema or EventSchema()
    screened = screen_events(events, schema, now=now)
    raise_screened(screened)
    return screened.clean


#: the column a reject reason names (``unparseable time in 'time'``)
_REASON_COLUMN = re.compile(r"in '(.+)'$")


def reason_columns(reasons) -> set[str]:
    """The columns that reject ``reasons`` name (what :func:`describe_rejects` quotes values of)."""
    return {m.group(1) for r in pd.unique(np.asarray(reasons, dtype=object)) if (m := _REASON_COLUMN.search(str(r)))}


def describe_rejects(rejects: pd.DataFrame, *, numbers: Sequence | None = None, word: str = "row",
                     places: bool = True) -> list[str]:
    """One phrase per reject reason: its count, the first five offending rows (unless not
    ``places``) and values.

    ``numbers`` (aligned with ``rejects``' rows) are what the user sees as the rows' place,
    e.g. file line numbers with ``word="line"``; default the rejects' index labels.
    """
    where = np.asarray(rejects.index if numbers is None else numbers)
    reasons = rejects["reject_reason"].to_numpy(dtype=object)
    parts = []
    for reason, count in rejects.groupby("reject_reason", sort=False).size().items():
        hit = reasons == reason
        column = _REASON_COLUMN.search(str(reason))
        examples = ""
        if column and column.group(1) in rejects.columns and not str(reason).startswith(("null", "missing")):
            values = pd.unique(rejects.loc[hit, column.group(1)].dropna().astype(str))
            if len(values):
                examples = f", e.g. {format_examples(values[:3], limit=3)}"
        first = [int(v) if isinstance(v, np.integer) else v for v in where[hit][:5]]
        parts.append(f"{count:,} {word}(s) with {reason}" + (f" (first {word}s: {first})" if places else "") + examples)
    return parts


def raise_rejects(rejects: pd.DataFrame, what: str, *, numbers: Sequence | None = None, word: str = "row",
                  fix: str = "", cli_fix: str | None = None) -> None:
    """Raise a :class:`DataError` listing every reject reason (see :func:`describe_rejects`);
    ``fix`` / ``cli_fix`` end the message with what to do, in Python's and the CLI's words."""
    if len(rejects) == 0:
        return
    text = f"{what}: " + "; ".join(describe_rejects(rejects, numbers=numbers, word=word))
    raise DataError(text + (f". {fix}" if fix else ""),
                    cli=None if cli_fix is None else text + (f". {cli_fix}" if cli_fix else ""))


def refuse_unclear_date(value, name: str, *, error: type[ValueError] = DataError, cli: str | None = None) -> None:
    """Refuse one date written with the year last that does not say whether the day or the
    month comes first (``06/01/2024``: pandas reads June 1, a team writing day first meant
    6 January), naming ``name``; ``cli``: the flag, for the CLI's words. ``13/01/2024`` tells."""
    shape = _year_last(value) if isinstance(value, str) else None
    if shape and int(shape[1]) <= 12 and int(shape[3]) <= 12 and int(shape[1]) != int(shape[3]):
        unclear = "does not say whether the day or the month comes first; write it year first"
        example = f"{shape[4]}-{int(shape[3]):02d}-{int(shape[1]):02d}"  # the day-first reading, as an example
        raise error(f"{name}={value!r} {unclear}, e.g. '{example}'.",
                    cli=None if cli is None else f"{cli} {value} {unclear}, e.g. {cli} {example}.")


def naive_utc(ts, name: str, *, events_aware: bool | None = None) -> pd.Timestamp:
    """``ts`` as a naive UTC :class:`pandas.Timestamp` (read by :func:`one_time`). ``name``: the
    keyword argument it came from; a number (pandas would read nanoseconds since 1970) or a
    value that is not a time is a :class:`DataError` naming it. ``events_aware=False``: the
    times it is compared with are naive (local, zone unknown), so a timezone-aware ``ts`` is
    refused (the offset between the two clocks is unknown); a naive ``ts`` beside aware
    events is read as UTC."""
    refuse_unclear_date(ts, name)
    if isinstance(ts, bool | int | float | np.number):
        raise DataError(f"{name}={ts!r} is a number, not a date; give one such as '2024-06-01'.")
    try:
        stamp = one_time(ts)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(f"{name}={ts!r} is not a date or time such as '2024-06-01' ({exc}).") from None
    if stamp is pd.NaT:
        if isinstance(ts, str) and ts.strip():
            raise DataError(f"{name}={ts!r} is not a date or time such as '2024-06-01'.")
        raise DataError(f"{name} is missing ({ts!r}); give a date such as '2024-06-01'.")
    if stamp.tzinfo is None:
        return stamp
    if events_aware is False:
        raise DataError(f"{name}={ts!r} is timezone-aware, but the events' times are naive (local, zone unknown): the "
                        f"offset between the two clocks is unknown. Give {name} without a timezone, on the events' "
                        f"clock (e.g. {str(stamp.tz_localize(None))!r}).")
    return stamp.tz_convert("UTC").tz_localize(None)


# --------------------------------------------------------------------------------------
# entities


def validate_entities(
    entities: pd.DataFrame | None,
    schema: EventSchema | None = None,
    *,
    events: pd.DataFrame | None = None,
    allow_empty: bool = False,
    tz_aware: bool | None = None,
) -> pd.DataFrame | None:
    """Check an entities table (one row per dispute) and return a clean, typed copy.

    Categorical columns become ``category`` dtype, numeric ones ``float64``, time columns
    naive ``datetime64[ns]`` (unparseable values become missing, with a warning giving the
    count). Duplicate ids are an error. If ``events`` (validated) is given, events whose
    dispute has no entity row are counted in a :class:`DataWarning`; they are kept.
    An empty table is an error unless ``allow_empty`` (e.g. a chunk of disputes none of
    which has a row). ``tz_aware``: the events' time convention; time columns in the other
    one are warned about (they are compared as UTC).
    """
    table = validated_entity_columns(entities, schema, events=events, allow_empty=allow_empty, tz_aware=tz_aware)
    return None if table is None else table.to_frame()


def _refuse_null_ids(frame, column: str, what: str) -> None:
    null_ids = isna_mask(frame[column])
    if null_ids.any():
        raise DataError(f"{what}: {int(null_ids.sum())} row(s) with null id in {column!r} "
                        f"(first rows: {list(frame.index[null_ids][:5])}).")


def validated_entity_columns(
    entities: pd.DataFrame | None,
    schema: EventSchema | None = None,
    *,
    events: pd.DataFrame | None = None,
    allow_empty: bool = False,
    judge_rows: bool = True,
    tz_aware: bool | None = None,
) -> Columns | None:
    """:func:`validate_entities`, returning the checked columns (no frame built).

    ``judge_rows=False`` leaves rows without an id and ids on several rows to the caller
    (the nightly batch sets them aside dispute by dispute, see
    :func:`~riskmodel.batch.usable_entities`); the columns are checked all the same.
    """
    if entities is None:
        return None
    schema = schema or EventSchema()
    require_frame(entities, "entities", allow_empty=allow_empty)
    id_col = schema.entities_id
    time_cols = list(schema.entity_time_cols) + ([schema.closed_col] if schema.closed_col else [])
    needed = list(dict.fromkeys([id_col, *schema.entity_categorical_cols, *schema.entity_numeric_cols, *time_cols]))
    missing_group = [c for c in schema.group_cols if c not in schema.entity_categorical_cols]
    if missing_group:
        head = f"group_cols {missing_group} must also be listed in entity_categorical_cols; or switch the group"
        raise DataError(f"{head} role off with EventSchema(group_cols=()).",
                        cli=f"{head} role off with group_cols = [] in the config's [schema].")
    require_columns(entities, needed, "entities", schema=schema)
    # column by column into a dict, no frame: on the one-row tables of online scoring,
    # frame operations would cost more than the checks
    out = {col: entities[col] for col in needed}
    out[id_col] = one_type_ids(out[id_col])  # 2895 and "2895": one dispute, as in the events
    if judge_rows:
        _refuse_null_ids(entities, id_col, "entities")
    ids = out[id_col].array
    if judge_rows and len(ids) > 1 and not pd.Index(ids).is_unique:
        dup = pd.Index(ids).duplicated(keep=False)
        raise DataError(
            f"entities: {int(dup.sum())} row(s) share an id in {id_col!r}; ids must be unique "
            f"(e.g. {format_examples(pd.unique(ids[dup]))})."
        )
    for col in schema.entity_categorical_cols:
        if not _is_string_categorical(out[col].dtype):
            out[col] = _as_string_categorical(out[col])
    for col in schema.entity_numeric_cols:
        converted = pd.to_numeric(out[col], errors="coerce")
        bad = converted.isna() & out[col].notna()
        if bad.any():
            raise DataError(
                f"entities column {col!r} is declared numeric but {int(bad.sum())} value(s) are "
                f"not numbers, e.g. {format_examples(out[col][bad].head())}."
            )
        out[col] = converted.astype("float64")
    other_clock = []
    for col in dict.fromkeys(time_cols):
        parsed, aware = parse_times(out[col], col, "entities")
        if tz_aware is not None and aware != tz_aware and parsed.notna().any():
            other_clock.append(col)
        if not pd.api.types.is_datetime64_any_dtype(out[col].dtype):  # strings: some may not parse
            bad = parsed.isna() & out[col].notna() & ~blank_mask(out[col])  # a blank time is a missing one
            if bad.any():
                warnings.warn(
                    f"entities column {col!r}: {int(bad.sum())} unparseable time(s) treated as "
                    f"missing, e.g. {format_examples(out[col][bad].head())}.",
                    DataWarning,
                    stacklevel=3,
                )
        out[col] = parsed
    if other_clock:
        warnings.warn(f"entities column(s) {other_clock} hold {CLOCK_WORDS[not tz_aware]} times but the events' are "
                      f"{CLOCK_WORDS[tz_aware]}: they are compared as if their clock were UTC, so a dispute's opening "
                      "or closing can be hours off. Give them in the events' convention.", DataWarning, stacklevel=3)
    if events is not None:
        orphan = ~events[schema.entity_col].isin(out[id_col])
        if orphan.any():
            warnings.warn(
                f"{int(orphan.sum())} event(s) of {events.loc[orphan, schema.entity_col].nunique()} "
                "dispute(s) have no entities row; they are kept with missing attributes.",
                DataWarning,
                stacklevel=3,
            )
    return Columns(out)


def _as_string_categorical(values: pd.Series) -> pd.Series:
    """Values as strings in a ``category`` column (missing stays missing); a few text values (the
    one row of online scoring) coded in Python, ~3x faster than pandas' chain (tested equal).
    Numbers as :func:`decimal_text` writes them: a station 7 is ``"7"`` whether its column was
    read as integers or, beside a missing value, as floats (``7.0``)."""
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype) and pd.api.types.is_numeric_dtype(dtype.categories.dtype):
        values = values.cat.rename_categories(list(decimal_text(dtype.categories)))
    elif pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return pd.Series(decimal_text(values), index=values.index, name=values.name, dtype=object).astype("category")
    if len(values) > FEW_VALUES or not pd.api.types.is_string_dtype(values.dtype):
        return values.astype(str).where(values.notna()).astype("category")
    raw = values.to_numpy(dtype=object)
    present = ~pd.isna(raw)
    text = [str(v) for v in raw[present]]
    categories = sorted(set(text))
    position = {c: i for i, c in enumerate(categories)}
    codes = np.full(len(raw), -1, dtype=np.int8 if len(categories) < 127 else np.int32)
    codes[present] = [position[t] for t in text]
    dtype = pd.CategoricalDtype(pd.Index(categories, dtype="str"))
    return pd.Series(pd.Categorical.from_codes(codes, dtype=dtype), index=values.index, name=values.name)


def _is_string_categorical(dtype) -> bool:
    """A category dtype whose categories are all strings."""
    if not isinstance(dtype, pd.CategoricalDtype):
        return False
    categories = dtype.categories
    if pd.api.types.is_string_dtype(categories.dtype) and not pd.api.types.is_object_dtype(categories.dtype):
        return True
    return pd.api.types.infer_dtype(categories, skipna=False) in ("string", "empty")


# --------------------------------------------------------------------------------------
# cutoffs


def _parse_as_of(values: pd.Series, tz_aware: bool | None, trained: bool = False) -> pd.Series:
    """Parsed ``as_of`` values (naive ``datetime64[ns]``); :class:`DataError` if any is
    missing, unparseable or implausible, or if its timezone convention is not ``tz_aware``."""
    as_of, aware = parse_times(values, "as_of", "cutoffs")
    as_of_ns = as_of.to_numpy().view(np.int64)
    bad = as_of_ns == NAT_NS
    if bad.any():
        raise DataError(
            f"cutoffs: {int(bad.sum())} row(s) with missing or unparseable 'as_of', e.g. "
            f"{format_examples(values[bad].head())}."
        )
    if (as_of_ns < MIN_PLAUSIBLE_TIME.value).any():
        raise DataError(f"cutoffs: 'as_of' before {MIN_PLAUSIBLE_TIME.date()} is not plausible.")
    if (as_of_ns >= _PIN_HIGH.value).any():
        raise DataError(f"cutoffs: 'as_of' after {_PIN_HIGH.year} is not plausible (a typo in the year?), e.g. "
                        f"{format_examples(values[as_of_ns >= _PIN_HIGH.value].head())}.")
    later = as_of_ns > default_now().value
    if later.any():
        warnings.warn(f"cutoffs: {int(later.sum())} 'as_of' after tomorrow, e.g. {format_examples(values[later].head())}: "
                      "scored on the events before them, as if nothing happened until then.", DataWarning, stacklevel=4)
    if tz_aware is not None and aware != tz_aware:
        if trained:
            raise DataError(f"cutoffs 'as_of' are {CLOCK_WORDS[aware]} times, but the model was trained on "
                            f"{CLOCK_WORDS[tz_aware]} times: the offset between the two clocks is unknown. Give the "
                            "events and as_of in the training data's convention.")
        raise DataError(
            "cutoffs 'as_of' and the events' times use different timezone conventions "
            f"(events {'aware' if tz_aware else 'naive'}, as_of {'aware' if aware else 'naive'}); "
            "use timezone-aware times in both or naive times in both."
        )
    return as_of


def _plain_as_of(as_of, tz_aware: bool | None) -> np.datetime64 | None:
    """One ``as_of`` as naive ``datetime64[ns]`` when it is a plausible time in the
    events' timezone convention; ``None`` for anything else (numbers, unparseable, ...)."""
    if not isinstance(as_of, (str, datetime.datetime, datetime.date, np.datetime64)) or (
            isinstance(as_of, str) and _year_last(as_of)):
        return None  # year last: the column's rules
    try:  # one value parsed as to_datetime does, much faster
        stamp = one_time(as_of)
        if stamp is pd.NaT or (tz_aware is not None and tz_aware != (stamp.tz is not None)):
            return None
        if stamp.tz is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        stamp = stamp.as_unit("ns")
    except (ValueError, TypeError, OverflowError):
        return None
    return stamp.to_datetime64() if MIN_PLAUSIBLE_TIME <= stamp <= default_now() else None


def cutoffs_at(ids: np.ndarray, as_of, schema: EventSchema, *, tz_aware: bool | None = None) -> Columns:
    """Valid cutoffs scoring every id in ``ids`` (no nulls) at one time ``as_of``.

    The same checks as :func:`validate_cutoffs` on a frame with those rows, done once on
    the single ``as_of`` value.
    """
    if isinstance(as_of, pa.Scalar):  # e.g. a value taken from an Arrow column
        as_of = as_of.as_py()
    stamp = _plain_as_of(as_of, tz_aware)
    if stamp is None:  # the frame's checks raise the errors validate_cutoffs raises, named as the keyword
        refuse_unclear_date(as_of, "as_of")
        if isinstance(as_of, bool | int | float | np.number):
            naive_utc(as_of, "as_of")
        one = pd.Series([as_of])
        if parse_times(one, "as_of", "cutoffs")[0].isna().all():
            raise DataError(f"as_of={as_of!r} is not a date or time such as '2024-06-01'.")
        stamp = _parse_as_of(one, tz_aware).to_numpy()[0]
    return Columns({schema.entity_col: ids, "as_of": np.full(len(ids), stamp)})


def validate_cutoffs(
    cutoffs: pd.DataFrame,
    schema: EventSchema | None = None,
    *,
    label_col: str | None = None,
    tz_aware: bool | None = None,
    trained: bool = False,
) -> pd.DataFrame:
    """Check a cutoffs frame (entity id, ``as_of`` [, label]) and return a typed copy.

    The original row order is kept. ``tz_aware``, when given, is the events' convention
    (``trained``: a fitted model's training events'); a mismatch is an error.
    """
    schema = schema or EventSchema()
    require_frame(cutoffs, "cutoffs")
    if "as_of" not in cutoffs.columns:  # no schema role: the name is the library's
        raise DataError(f"cutoffs is missing the column 'as_of' (the time each dispute is scored at); it has "
                        f"{list(cutoffs.columns)[:20]}. Name that column 'as_of'.")
    require_columns(cutoffs, [schema.entity_col, "as_of"] + ([label_col] if label_col else []), "cutoffs")
    _refuse_null_ids(cutoffs, schema.entity_col, "cutoffs")
    out = cutoffs.assign(**{"as_of": _parse_as_of(cutoffs["as_of"], tz_aware, trained),
                            schema.entity_col: one_type_ids(cutoffs[schema.entity_col])})
    if label_col:
        labels = pd.to_numeric(out[label_col], errors="coerce")
        bad = ~labels.isin([0, 1])
        if bad.any():
            raise DataError(
                f"cutoffs: label column {label_col!r} must hold 0/1; {int(bad.sum())} row(s) do "
                f"not, e.g. {format_examples(out.loc[bad, label_col].head())}."
            )
        out[label_col] = labels.astype("int8")
    return out
