"""Point-in-time features over dispute histories: :class:`FeatureBuilder`.

The rule, for every feature family: the row for a cutoff ``(dispute, as_of)`` is computed
from events with time strictly before ``as_of`` only. An event at exactly ``as_of`` is the
future. Features computed across disputes (party histories, group escalation rates) obey
the same rule: they only see other disputes' events before ``as_of``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import logging
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.base import BaseEstimator

from .._errors import DataError, DataWarning, NotFittedError, format_examples
from ..data import (
    CLOCK_WORDS,
    FEW_VALUES,
    NS_PER_DAY,
    Clock,
    Columns,
    EventSchema,
    Timeline,
    as_index,
    blank_as_missing,
    column_codes,
    entity_order,
    first_per_code,
    id_kind,
    kind_codes_of,
    lookup_positions,
    ns_values,
    numbers_as_text,
    parse_times,
    per_value,
    raise_screened,
    require_columns,
    require_frame,
    require_schema,
    screen_events,
    time_zone,
    trimmed_codes,
    validate_cutoffs,
    validate_entities,
    validated_entity_columns,
    window_ns,
)
from ._family import (
    GROUP_PREFIX,
    OTHER_KIND,
    ContextNeed,
    FeatureFamily,
    feature_families,
    get_family,
    slug,
)
from ._tally import cumulative, tally_kinds
from .families import FEATURE_FAMILIES

__all__ = ["FeatureBuilder", "DEFAULT_KEYWORDS", "PreparedEvents", "prepare_events"]

_log = logging.getLogger("riskmodel")
_PROCESS_SKIPS: set[str] = set()  # outside any skip_notes scope
_SKIPS_LOGGED: contextvars.ContextVar[set[str]] = contextvars.ContextVar("riskmodel_skips", default=_PROCESS_SKIPS)


@contextlib.contextmanager
def skip_notes():
    """A scope (a training run) in which each skipped-families line is logged once: the
    backtest fits a builder per fold and baseline. Outside any scope, once per process."""
    token = _SKIPS_LOGGED.set(set())
    try:
        yield
    finally:
        _SKIPS_LOGGED.reset(token)


def _log_skipped(skipped: list[str]) -> None:
    """One info line naming the families whose inputs are absent (see :func:`skip_notes`)."""
    if not skipped:
        return
    line = "feature families skipped, their inputs are absent: " + ", ".join(skipped)
    seen = _SKIPS_LOGGED.get()
    if line not in seen:
        seen.add(line)
        _log.info(line)

#: Default narrative lexicon: groups of Chinese risk keywords (any match counts once per event).
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "threat": ("扬言", "报复", "威胁", "弄死", "要你命", "走着瞧", "不会放过"),
    "weapon": ("刀", "砍", "棍", "斧", "枪", "汽油", "硫酸", "炸"),
    "desperate": ("同归于尽", "拼命", "不想活", "鱼死网破", "豁出去"),
    "self_harm": ("喝农药", "跳楼", "自杀", "轻生", "割腕", "寻死"),
}

_ASCII_SPACE = "\t\n\f\r "  # what RE2's \s means: a text of only these is blank


class Vocabulary:
    """A fitted column's values: their category dtype and the code of any value (built once
    per fitted column, so scoring one dispute does not rebuild an index)."""

    def __init__(self, values: Sequence[str]):
        self.values = [str(v) for v in values]
        self.dtype = pd.CategoricalDtype(self.values)
        self._position = {v: i for i, v in enumerate(self.values)}

    def __len__(self) -> int:
        return len(self.values)

    def codes(self, values) -> np.ndarray:
        """Position of each value in the vocabulary; -1 if absent or missing."""
        if len(values) <= FEW_VALUES:
            position = self._position
            return np.array([position.get(v, -1) if isinstance(v, str) else -1 for v in values], dtype=np.int64)
        return self.dtype.categories.get_indexer(pd.Index(values, dtype=object)).astype(np.int64)

    def categorical(self, codes: np.ndarray) -> pd.Categorical:
        """A categorical of this vocabulary from codes (-1: missing)."""
        return pd.Categorical.from_codes(codes, dtype=self.dtype, validate=False)


class FeatureColumns(Mapping):
    """What :class:`FeatureBuilder` computes: one float32 matrix of the numeric columns and a
    categorical per categorical column, read directly when scoring (:meth:`to_frame` only on
    demand, which matters for one dispute). ``columns[name]``: float32 values, or object
    values (NaN when missing) for a categorical column."""

    def __init__(self, names: Sequence[str], numeric: np.ndarray, numeric_columns: Mapping[str, int],
                 categorical: Mapping[str, pd.Categorical], index: pd.Index):
        self.names = list(names)
        self.numeric = numeric  #: (n, len(numeric_columns)) float32
        self.categorical = dict(categorical)
        self.index = index
        self._numeric_columns = numeric_columns  #: each numeric column's position in ``numeric``, in order

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.categorical:
            return np.asarray(self.categorical[name], dtype=object)
        return self.numeric[:, self._numeric_columns[name]]

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def to_frame(self) -> pd.DataFrame:
        """The columns as a DataFrame: one float32 block (no copy), categoricals inserted."""
        frame = pd.DataFrame(self.numeric, index=self.index, columns=list(self._numeric_columns), copy=False)
        for position, name in enumerate(self.names):
            if name in self.categorical:
                frame.insert(position, name, self.categorical[name])
        return frame


# --------------------------------------------------------------------------------------
# prepared events: validated once, reusable across transforms (backtests, folds)


class PreparedEvents:
    """Validated events as arrays sorted by (entity, time); build with :func:`prepare_events`.

    Passing one to :meth:`FeatureBuilder.transform` instead of a DataFrame skips
    validation and sorting, which matters when the same log is featurised many times.
    Columns are read lazily through the sort permutation: the numeric arrays
    (``entity_codes``, ``times_ns``) are sorted, while string columns are factorised or
    matched in their input order and only the resulting small integers are permuted.

    Parameters
    ----------
    frame : DataFrame or Columns
        Valid events with parsed times; sorted by (entity, time) unless ``order`` is given.
    schema : EventSchema
    tz_aware : bool
        Whether the input times were timezone-aware.
    entity_codes : (ndarray, Index)
        Entity code of each sorted row and the id of each code.
    order : ndarray of int, optional
        Positions into ``frame`` in (entity, time) order.
    times_ns : ndarray of int64, optional
        The times of the sorted rows in nanoseconds, if already known.
    zone : str, optional
        The zone (or UTC offset) timezone-aware input times were written in: their local
        clock, e.g. for night-time counts.
    """

    def __init__(self, frame: pd.DataFrame | Columns, schema: EventSchema, tz_aware: bool, entity_codes,
                 *, order: np.ndarray | None = None, times_ns: np.ndarray | None = None, zone: str | None = None,
                 _shared: dict | None = None):
        self._raw = frame
        self._order = order
        self.schema = schema
        self.tz_aware = tz_aware
        self.zone = zone
        entity_codes, entity_ids = entity_codes
        self.entity_ids = as_index(entity_ids)
        self.entity_codes = np.asarray(entity_codes, dtype=np.int64)
        if times_ns is None:
            times = ns_values(frame[schema.time_col])
            times_ns = times if order is None else times[order]
        self.times_ns = times_ns
        self._cache: dict = {}
        # results computed on the input-ordered columns, shared with subsets of this log
        self._shared = {} if _shared is None else _shared

    @classmethod
    def from_valid(cls, frame: pd.DataFrame, schema: EventSchema, tz_aware: bool) -> PreparedEvents:
        """Index events already validated (e.g. concatenated chunks), in any order; no checks
        are made, the (entity, time) order is found as :func:`screen_events` finds it."""
        times = ns_values(frame[schema.time_col])
        order, codes, ids, sorted_times = entity_order(frame[schema.entity_col], times, sort_ids=False)
        return cls(frame, schema, tz_aware, (codes, ids), order=order, times_ns=sorted_times)

    def __len__(self) -> int:
        return len(self.entity_codes)

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        """The events as a DataFrame sorted by (entity, time) (materialised on first use)."""
        frame = self._raw if isinstance(self._raw, pd.DataFrame) else self._raw.to_frame()
        return frame if self._order is None else frame.take(self._order).reset_index(drop=True)

    def cached(self, key, compute, shared: bool = False):
        cache = self._shared if shared else self._cache  # shared: results on the input-ordered columns
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    @functools.cached_property
    def time_range(self) -> tuple[int, int]:
        """The earliest and the latest event time, in ns (the log must have events)."""
        return int(self.times_ns.min()), int(self.times_ns.max())

    def _sorted(self, values: np.ndarray) -> np.ndarray:
        return values if self._order is None else values[self._order]

    def _input_codes(self, column: str) -> tuple[np.ndarray, pd.Index]:
        """:func:`column_codes` of a column in input order; kinds trimmed (:func:`trimmed_codes`);
        a party of spaces only (a ``CHAR(n)`` column's empty value) is no party (code -1)."""
        def compute():
            codes = column_codes(self._raw[column])
            if column == self.schema.kind_col:
                return trimmed_codes(*codes)
            if column == self.schema.party_col:  # 7 and "7": one party, as ids are one dispute
                return blank_as_missing(*numbers_as_text(*codes))
            return codes

        return self.cached(("factorize", column), compute, shared=True)

    def codes(self, column: str) -> tuple[np.ndarray, pd.Index]:
        """Integer codes of ``column`` per sorted row (-1 where missing) and their values."""
        def compute():
            codes, uniques = self._input_codes(column)
            return self._sorted(codes.astype(np.int64)), as_index(uniques)

        return self.cached(("codes", column), compute)

    def kind_counts(self) -> pd.Series:
        """How many events of each kind the log holds, most frequent first."""
        codes, uniques = self.codes(self.schema.kind_col)
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        return pd.Series(counts, index=uniques.astype(object)).sort_values(ascending=False, kind="stable")

    def is_kind(self, kinds: Sequence[str]) -> np.ndarray:
        """Boolean mask of sorted rows whose kind is one of ``kinds``."""
        wanted = set(kinds)  # a test per distinct kind, not per event
        return per_value(*self.codes(self.schema.kind_col), wanted.__contains__)

    def _texts(self, column: str) -> pa.Array:
        """The text column as an Arrow string array (:func:`_as_text` of each value)."""
        def compute():
            values = self._raw[column]
            try:
                return pa.array(values, type=pa.large_string(), from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects, bytes that are not UTF-8
                return pa.array([_as_text(v) for v in values.to_numpy(dtype=object)], type=pa.large_string())

        return self.cached(("text", column), compute, shared=True)

    def text_matches(self, column: str, pattern: str) -> np.ndarray:
        """Boolean mask of sorted rows whose text matches the regular expression (RE2, or
        Python's ``re`` on a few texts: the features' patterns, escaped keywords joined by
        ``|``, mean the same in both)."""
        search = re.compile(pattern).search
        return self._text_mask(column, pattern, lambda t: search(t) is not None, missing=False)

    def text_missing(self, column: str) -> np.ndarray:
        """Boolean mask of sorted rows whose text is missing or blank (ASCII whitespace only)."""
        return self._text_mask(column, rf"^[{_ASCII_SPACE}]*$", lambda t: not t.strip(_ASCII_SPACE), missing=True)

    def _text_mask(self, column: str, pattern: str, test, *, missing: bool) -> np.ndarray:
        """Boolean mask of sorted rows: ``pattern`` by Arrow (RE2) on the column, or, where a call
        into Arrow costs more than the matching (one dispute), ``test`` of each :func:`_as_text`
        value; ``missing`` where there is no text."""
        def compute():
            if len(self._raw) > FEW_VALUES:
                hits = pc.match_substring_regex(self._texts(column), pattern).fill_null(missing)
                return hits.to_numpy(zero_copy_only=False)
            texts = self.cached(("few_texts", column), lambda: [
                _as_text(v) for v in self._raw[column].to_numpy(dtype=object)], shared=True)
            return np.array([test(t) if isinstance(t, str) else missing for t in texts], dtype=bool)

        return self._sorted(self.cached(("mask", column, pattern, missing), compute, shared=True))

    def first_times(self, mask: np.ndarray | None = None) -> np.ndarray:
        """Each entity code's first event time (among the events where ``mask``), int64 ns;
        :data:`NAT_NS` where none. One slot more than there are entities (for ids without
        events). Without ``mask``, computed once per log and read-only."""
        if mask is not None:
            return first_per_code(self.entity_codes, self.times_ns, len(self.entity_ids) + 1, mask)

        def compute():
            first = first_per_code(self.entity_codes, self.times_ns, len(self.entity_ids) + 1)
            first.flags.writeable = False
            return first

        return self.cached("first_times", compute)

    def subset(self, keep: np.ndarray) -> PreparedEvents:
        """The sorted rows where ``keep`` is true, sharing this log's column work."""
        order = np.flatnonzero(keep) if self._order is None else self._order[keep]
        return PreparedEvents(self._raw, self.schema, self.tz_aware, (self.entity_codes[keep], self.entity_ids),
                              order=order, times_ns=self.times_ns[keep], zone=self.zone, _shared=self._shared)


def _as_text(value) -> str | None:
    """A narrative as the text features read it, as Arrow reads a column: a string, bytes in
    UTF-8 decoded; anything else (a number, bytes in another encoding) missing."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def prepare_events(
    events: pd.DataFrame | PreparedEvents,
    schema: EventSchema | None = None,
    *,
    now: pd.Timestamp | None = None,
) -> PreparedEvents:
    """Validate an event log once (see :func:`validate_events`) and index it for features."""
    return _prepare(events, schema or EventSchema(), now=now)[0]


def _prepared_for(prepared: PreparedEvents, schema: EventSchema) -> PreparedEvents:
    """``prepared``, when it holds the events columns ``schema`` reads in the roles it reads
    them (sorted by its id and time), else a :class:`DataError` saying which schema to pass."""
    theirs = prepared.schema
    roles = ("entity_col", "time_col", "kind_col", "text_col", "party_col")
    differ = [r for r in roles if getattr(schema, r) and getattr(schema, r) != getattr(theirs, r)]
    differ += [c for c in schema.event_attribute_cols if c not in theirs.event_attribute_cols]
    if differ:
        shown = ", ".join(f"{r}={getattr(theirs, r)!r} there, {getattr(schema, r)!r} here" if r in roles
                          else f"event_attribute_cols {r!r} only here" for r in differ)
        raise DataError(f"the events were prepared with another schema than this one ({shown}): pass the schema "
                        "given to prepare_events (e.g. FeatureBuilder(schema=...) or RiskModel(schema=...)), or "
                        "prepare the events with this one.")
    return prepared


def _prepare(events, schema: EventSchema, *, now=None, first_ids=None) -> tuple[PreparedEvents, np.ndarray | None]:
    """:func:`prepare_events`, plus the entity code of each of ``first_ids`` (e.g. the
    cutoffs' ids; -1: no event) when hashing the ids gave them (see :func:`screen_events`),
    else ``None``."""
    if isinstance(events, PreparedEvents):
        return _prepared_for(events, schema), None
    screened = screen_events(events, schema, now=now, sort_ids=False, first_ids=first_ids)
    raise_screened(screened)
    return index_screened(screened, schema), screened.first_codes


def _keeping_groups(schema: EventSchema, events) -> EventSchema:
    """``schema``, keeping the events' ``"group:<g>"`` columns (each context dispute's group,
    which the context family reads) as event attributes; a prepared log as it is."""
    if isinstance(events, PreparedEvents) or not hasattr(events, "columns"):
        return schema
    extra = tuple(c for c in (GROUP_PREFIX + g for g in schema.group_cols)
                  if c in events.columns and c not in schema.event_attribute_cols)
    return dataclasses.replace(schema, event_attribute_cols=(*schema.event_attribute_cols, *extra)) if extra else schema


def _kind_codes_and_tz(events, schema: EventSchema) -> tuple[np.ndarray, pd.Index, bool, str | None]:
    """The codes of the events' string kinds (missing, blank and non-string kinds left out), the
    kinds, whether times carry a timezone and which (:func:`time_zone`): what ``fit``
    learns from, without screening or sorting the log."""
    if isinstance(events, PreparedEvents):
        codes, uniques = _prepared_for(events, schema).codes(schema.kind_col)
        return codes, uniques, events.tz_aware, events.zone
    require_frame(events, "events")
    require_columns(events, schema.event_columns, "events")
    kinds = events[schema.kind_col]
    try:
        codes, uniques, not_str = kind_codes_of(kinds, schema.kind_col)  # missing and blank kinds: code -1
    except DataError:  # numbers, or values that cannot be hashed (lists): fit names these as kinds that
        numeric = pd.api.types.is_numeric_dtype(kinds.dtype) or pd.api.types.is_bool_dtype(kinds.dtype)
        if numeric or (pd.api.types.is_object_dtype(kinds.dtype) and len(kinds) > FEW_VALUES):
            raise  # are not strings, judged row by row, unless :func:`object_codes` hashed them
        not_str = ~kinds.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool).to_numpy()
    if not_str.any():  # as transform rejects them, in the same words
        rows = np.flatnonzero(not_str)
        raise DataError(f"events: {len(rows)} row(s) with kind is not a string in {schema.kind_col!r} (first rows: "
                        f"{events.index[rows[:5]].tolist()}), e.g. {format_examples(kinds.iloc[rows[:3]])}.")
    _, tz_aware = parse_times(events[schema.time_col], schema.time_col, "events")
    zone = time_zone(events[schema.time_col]) if tz_aware else None
    return *trimmed_codes(codes[codes >= 0], uniques), tz_aware, zone


def index_screened(screened, schema: EventSchema) -> PreparedEvents:
    """The valid rows of :func:`screen_events`, indexed lazily through their sort order
    (the kinds' codes reused when screening hashed them)."""
    prepared = PreparedEvents(screened.columns, schema, screened.tz_aware,
                              (screened.entity_codes, screened.entity_ids), order=screened.order,
                              times_ns=screened.times_ns, zone=screened.zone)
    if screened.kind_codes is not None:
        prepared._shared[("factorize", schema.kind_col)] = trimmed_codes(*screened.kind_codes)
    return prepared


def _kind_slugs(kinds: Sequence[str]) -> dict[str, str]:
    """Readable, unique, ASCII column-name fragments for event kinds; none is ``all`` or
    ``event``, which would name the columns of every kind (``count_all_30D``,
    ``days_since_last_event``)."""
    slugs: dict[str, str] = {}
    used: set[str] = {"all", "event"}
    for i, kind in enumerate(kinds):
        name = slug(kind) or f"kind{i}"
        while name in used:
            name = f"{name}_{i}"
        used.add(name)
        slugs[kind] = name
    return slugs


class FeatureBuilder(BaseEstimator):
    """Turn dispute histories into one feature row per (dispute, as_of) cutoff.

    Only events with time strictly before ``as_of`` are used, by every family, including
    the families computed across disputes. Adding, removing or changing any event at or
    after ``as_of`` never changes that cutoff's row.

    Parameters
    ----------
    schema : EventSchema, optional
        Column names of the event log and entities table; defaults to the simulator's.
    windows : tuple of str, default=("7D", "30D", "90D", "365D")
        Look-back windows; a window ``w`` counts events with ``as_of - w <= time < as_of``.
        The whole history before ``as_of`` is always added as window ``"all"``.
    families : tuple of str, default=all families
        Subset of ``("counts", "recency", "dynamics", "text", "entity", "party", "context")``.
        Families whose columns the schema lacks (no text, no party, no entities) are skipped.
    keywords : dict of str to tuple of str, optional
        Narrative lexicon: group name -> keywords. Defaults to :data:`DEFAULT_KEYWORDS`.
    keyword_windows : tuple of str, default=("30D", "365D")
        Windows for keyword counts (plus ``"all"``).
    max_kinds : int, default=40
        Most frequent kinds at ``fit`` that get their own columns; the rest go to ``other``.
    streaks : tuple of (kind, reset_kind), default=()
        For each pair, the number of ``kind`` events since the last ``reset_kind`` event,
        e.g. ``(("mediation_failed", "mediation_success"),)``.
    trend_windows : tuple of (str, str), default=("30D", "90D")
        Short and long window for the trend: events per day in the short window minus
        events per day in the rest of the long window.
    night_hours : tuple of int, default=(22, 6)
        Hours ``[start, end)`` counted as night (wrapping midnight), on the clock the times were
        written in: for timezone-aware times, the zone (or UTC offset) they carried at ``fit``.
    context_window : str, default="365D"
        Window for the group escalation rate.

    Attributes
    ----------
    kinds_ : list of str
        Event kinds with their own columns, learned at ``fit``.
    categories_ : dict of str to list
        Training vocabulary of each categorical entity column.
    feature_names_out_ : ndarray of str
        Output columns, in order.
    categorical_features_ : list of str
        Output columns of ``category`` dtype.

    Examples
    --------
    >>> import pandas as pd
    >>> from riskmodel import EventSchema, FeatureBuilder
    >>> schema = EventSchema(text_col=None, party_col=None, entity_categorical_cols=(),
    ...                      entity_time_cols=(), group_cols=(), closed_col=None)
    >>> events = pd.DataFrame({"dispute_id": ["a", "a", "b"],
    ...                        "time": pd.to_datetime(["2024-01-05", "2024-01-20", "2024-01-05"]),
    ...                        "kind": ["call", "threat", "call"]})
    >>> cutoffs = pd.DataFrame({"dispute_id": ["a", "a"],
    ...                         "as_of": pd.to_datetime(["2024-01-20", "2024-02-01"])})
    >>> fb = FeatureBuilder(schema=schema, families=("counts",), windows=("30D",))
    >>> fb.fit_transform(events, cutoffs)[["count_all_30D", "count_threat_all"]]
       count_all_30D  count_threat_all
    0            1.0               0.0
    1            2.0               1.0
    """

    def __init__(
        self,
        *,
        schema: EventSchema | None = None,
        windows: Sequence[str] = ("7D", "30D", "90D", "365D"),
        families: Sequence[str] = FEATURE_FAMILIES,
        keywords: Mapping[str, Sequence[str]] | None = None,
        keyword_windows: Sequence[str] = ("30D", "365D"),
        max_kinds: int = 40,
        streaks: Sequence[Sequence[str]] = (),
        trend_windows: Sequence[str] = ("30D", "90D"),
        night_hours: Sequence[int] = (22, 6),
        context_window: str = "365D",
    ):
        self.schema = schema
        self.windows = windows
        self.families = families
        self.keywords = keywords
        self.keyword_windows = keyword_windows
        self.max_kinds = max_kinds
        self.streaks = streaks
        self.trend_windows = trend_windows
        self.night_hours = night_hours
        self.context_window = context_window

    # ----------------------------------------------------------------------------------
    # configuration helpers

    def _schema(self) -> EventSchema:
        return self.schema or EventSchema()

    def _validate_params(self) -> None:
        require_schema(self._schema())
        registered = tuple(f.name for f in feature_families())
        listed = (list, tuple, np.ndarray)  # a str would be read letter by letter
        for name in ("families", "windows", "keyword_windows", "trend_windows"):
            value = getattr(self, name)
            if not isinstance(value, listed) or not all(isinstance(v, str) for v in value):
                raise DataError(f"{name} must be a list of strings, got {value!r}.")
        unknown = sorted(set(self.families) - set(registered))
        if unknown:
            raise DataError(f"unknown feature families {unknown}; choose from {registered}.")
        if not isinstance(self.streaks, listed) or any(
                not isinstance(p, listed) or len(p) != 2 or not all(isinstance(k, str) for k in p) for p in self.streaks):
            raise DataError(f"streaks must be (kind, reset_kind) pairs, e.g. (('threat', 'mediation_success'),), got "
                            f"{self.streaks!r}.")
        hours = self.night_hours
        if not isinstance(hours, listed) or len(hours) != 2 or not all(
                isinstance(h, int | np.integer) and not isinstance(h, bool) and 0 <= h <= 23 for h in hours):
            raise DataError(f"night_hours must be two hours of the day (0-23), start and end, e.g. (22, 6), got "
                            f"{hours!r}.")
        lexicon = {} if self.keywords is None else self.keywords
        if not isinstance(lexicon, Mapping) or not all(
                (isinstance(w, str) and w.strip()) or (isinstance(w, listed) and all(isinstance(k, str) and k.strip()
                                                                                    for k in w))
                for w in lexicon.values()):
            raise DataError(f"keywords must map a group name to its keywords (non-empty strings; an empty one would "
                            f"match every text), e.g. {{'threat': ['扬言', '报复']}}, got {self.keywords!r}.")
        for family in feature_families():
            family.validate(self)
        if isinstance(self.max_kinds, bool) or not isinstance(self.max_kinds, int | np.integer) or self.max_kinds < 1:
            raise DataError(f"max_kinds must be a positive integer, got {self.max_kinds!r}.")

    def _active(self, family: str) -> bool:
        """Whether family ``family`` is asked for and its inputs exist."""
        return family in self.families and get_family(family).active(self, self._schema())

    def _active_families(self) -> list[FeatureFamily]:
        """The families that compute columns, in column order."""
        schema = self._schema()
        return [f for f in feature_families() if f.name in self.families and f.active(self, schema)]

    def needs_entities(self) -> bool:
        """Whether ``transform`` needs the entities table: fitted with one, and an active
        family reads it."""
        return bool(getattr(self, "has_entities_", False)) and any(f.needs_entities for f in self._active_families())

    def context_need(self) -> ContextNeed | None:
        """What the active families read from other disputes (``None``: nothing): the
        union of their :class:`ContextNeed` (the widest window)."""
        needs = [n for n in (f.context_need(self) for f in self._active_families()) if n is not None]
        if not needs:
            return None
        windows = [n.window for n in needs if n.window is not None]
        return ContextNeed(parties=any(n.parties for n in needs),
                           window=max(windows, key=window_ns) if windows else None)

    def context_features(self) -> list[str]:
        """The output columns the active families declare context
        (:meth:`FeatureFamily.context_columns`: where and what a dispute is, how well it is
        recorded), in column order: shown beside a case, not given as its reasons."""
        self._check_fitted()
        schema = self._schema()
        declared = {c for f in self._active_families() for c in f.context_columns(self, schema)}
        return [c for c in self.feature_names_out_ if c in declared]

    def _fitted(self, key, compute):
        """``compute()``, once per fit: what the fitted state gives every transform alike
        (vocabularies, the output's column positions)."""
        cache = self.__dict__.setdefault("_fitted_cache", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _vocabulary(self, col: str) -> Vocabulary:
        """The training vocabulary of a categorical entity column, or of the kinds for ``None``."""
        return self._fitted(("vocabulary", col),
                            lambda: Vocabulary(self.kinds_ if col is None else self.categories_.get(col, [])))

    def _numeric_columns(self) -> tuple[list[str], dict[str, int]]:
        """The numeric output columns, in order, and each one's position among them."""
        def compute():
            names = [n for n in self.feature_names_out_ if n not in self.categorical_features_]
            return names, {n: j for j, n in enumerate(names)}

        return self._fitted("numeric columns", compute)

    def _lexicon(self) -> dict[str, tuple[str, ...]]:
        lexicon = DEFAULT_KEYWORDS if self.keywords is None else self.keywords
        return {str(k): (v,) if isinstance(v, str) else tuple(v) for k, v in lexicon.items() if len(v)}  # one keyword

    # ----------------------------------------------------------------------------------
    # fit / transform

    def fit(self, events, cutoffs=None, *, entities=None):
        """Learn the kinds and category vocabularies and the output columns.

        Reads the kind and time columns only: no row is screened or sorted here (``transform``
        screens the events it is given; :func:`prepare_events` once for both).

        Parameters
        ----------
        events : DataFrame or PreparedEvents
            The event log (see :class:`EventSchema`).
        cutoffs : DataFrame, optional
            Ignored except for validation; accepted so ``fit`` mirrors ``transform``.
        entities : DataFrame, optional
            One row per dispute with the schema's attribute columns.

        Returns
        -------
        self
        """
        self._validate_params()
        schema = self._schema()
        codes, uniques, tz_aware, zone = _kind_codes_and_tz(events, schema)
        counts = pd.Series(np.bincount(codes, minlength=len(uniques)), index=uniques.astype(object))
        # values no event holds (a categorical's unused categories, blank kinds) have no column, and
        # a kind called 'other' is counted with the other kinds, under that name
        counts = counts[(counts > 0) & (counts.index != OTHER_KIND)]
        absent = [k for k in dict.fromkeys(k for pair in self.streaks for k in pair) if k not in counts.index]
        if absent and self._active("dynamics"):  # a misspelt kind, another export's names
            warnings.warn(f"streaks name kinds no event holds, {format_examples(absent)}: a streak of such a kind is "
                          "always 0, one reset by it never resets (kinds seen: "
                          f"{format_examples(counts.sort_values(ascending=False).index[:10])}).", DataWarning,
                          stacklevel=2)
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        self.kinds_ = sorted(counts.index[: self.max_kinds].tolist())
        self.kind_slugs_ = _kind_slugs(self.kinds_ + [OTHER_KIND])
        self.has_entities_ = entities is not None
        self.__dict__.pop("_fitted_cache", None)
        self.categories_ = {}
        if entities is not None:
            ents = validate_entities(entities, schema, tz_aware=tz_aware)
            for col in schema.entity_categorical_cols:
                self.categories_[col] = [str(v) for v in ents[col].cat.categories]
        self.tz_aware_ = tz_aware
        self.zone_ = zone
        self.feature_names_out_, self.categorical_features_ = self._plan_columns()
        self.n_features_out_ = len(self.feature_names_out_)
        skipped = [f"{f.name} ({f.why_inactive(self, schema)})" for f in feature_families()
                   if f.name in self.families and not f.active(self, schema)]
        _log_skipped(skipped)
        return self

    def _window_labels(self) -> list[str]:
        return list(self.windows) + ["all"]

    def _plan_columns(self) -> tuple[np.ndarray, list[str]]:
        schema = self._schema()
        names: list[str] = []
        categorical: list[str] = []
        for family in self._active_families():
            family_names, family_categorical = family.columns(self, schema)
            names += family_names
            categorical += family_categorical
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"feature names collide: {dup}; rename the entity columns or groups.")
        return np.asarray(names, dtype=object), categorical

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names, in order."""
        self._check_fitted()
        return self.feature_names_out_.copy()

    def _check_fitted(self) -> None:
        if not hasattr(self, "feature_names_out_"):
            raise NotFittedError("this FeatureBuilder is not fitted yet; call fit(events, ...) first.")

    def fit_transform(self, events, cutoffs, *, entities=None) -> pd.DataFrame:
        """Fit on ``events`` then transform ``cutoffs``."""
        prepared = prepare_events(events, self._schema())
        return self.fit(prepared, entities=entities).transform(prepared, cutoffs, entities=entities)

    def transform(self, events, cutoffs, *, entities=None, context_events=None) -> pd.DataFrame:
        """Compute one feature row per cutoff, in the cutoffs' order.

        Parameters
        ----------
        events : DataFrame or PreparedEvents
            The event log; only events strictly before each row's ``as_of`` are used.
        cutoffs : DataFrame
            The schema's entity column and ``as_of``; any number of rows per dispute, any order.
        entities : DataFrame, optional
            Entity attributes; required if the builder was fitted with entities. It may have
            no rows (the cutoffs' attributes are then missing).
        context_events : DataFrame or PreparedEvents, optional
            Events read by the cross-dispute families (party, context) instead of ``events``,
            for chunked scoring: ``events`` then need only the scored disputes' own events,
            and ``context_events`` need only, for every dispute, its first event, its first
            outcome event and the first event of each of its parties (any superset gives the
            same values). Columns ``"group:<g>"`` (for each of the schema's ``group_cols``), when
            present, give each context dispute's group; the context family then reads only the
            scored disputes' rows of ``entities``.

        Returns
        -------
        DataFrame
            Columns :meth:`get_feature_names_out`; numeric columns ``float32``, categorical
            ones ``category`` with the training vocabulary (unseen values become missing).
            The index is the cutoffs' index.
        """
        self._check_fitted()
        cut = validate_cutoffs(cutoffs, self._schema(), tz_aware=self.tz_aware_, trained=True)
        return self._transform_valid_cutoffs(events, cut, entities=entities, context_events=context_events,
                                             as_of_aware=self.tz_aware_)

    def _transform_valid_cutoffs(self, events, cut, *, entities=None, context_events=None,
                                 as_columns: bool = False, as_of_aware: bool | None = None,
                                 warn_no_history: bool = False):
        """:meth:`transform` for cutoffs already through :func:`validate_cutoffs`.

        ``as_columns``: return the :class:`FeatureColumns` instead of a DataFrame.
        ``as_of_aware``: the timezone convention the cutoffs were read in, when it was not
        the events' own (the training events'): the events must use it too.
        ``warn_no_history``: a :class:`DataWarning` names the cutoffs with no event before
        their ``as_of`` (scoring: an id typo, or an ``as_of`` before the dispute began).
        """
        schema = self._schema()
        prepared, cutoff_codes = _prepare(events, schema, first_ids=cut[schema.entity_col])
        if as_of_aware is not None and len(prepared) and prepared.tz_aware != bool(as_of_aware):
            raise DataError(
                f"the events' times are {CLOCK_WORDS[prepared.tz_aware]} but the cutoffs' as_of are read as "
                f"{CLOCK_WORDS[bool(as_of_aware)]} times, the convention of the training events: the offset between the "
                "two clocks is unknown. Give the events (and as_of) in the training events' convention."
            )
        if entities is None and self.needs_entities():
            raise DataError(
                "this FeatureBuilder was fitted with an entities table; pass entities= to transform too."
            )
        # an empty table is fine here: every cutoff then has missing attributes
        ents = validated_entity_columns(entities, schema, allow_empty=True,
                                        tz_aware=prepared.tz_aware if len(prepared) else None) \
            if self.has_entities_ and entities is not None else None
        context = None if context_events is None else prepare_events(context_events,
                                                                     _keeping_groups(schema, context_events))
        clock = prepared.tz_aware if len(prepared) else (self.tz_aware_ if as_of_aware is None else bool(as_of_aware))
        if context is not None and len(context) and context.tz_aware != bool(clock):
            raise DataError(f"context_events' times are {CLOCK_WORDS[context.tz_aware]} but the events' (and as_of's) "
                            f"are {CLOCK_WORDS[bool(clock)]}: the offset between the two clocks is unknown, so events after "
                            "as_of could be counted. Give both in one convention.")
        computation = FeatureComputation(self, prepared, cut, ents, context, cutoff_codes=cutoff_codes)
        columns = computation.run()
        if warn_no_history:
            computation.warn_no_history()
        return columns if as_columns else columns.to_frame()


# --------------------------------------------------------------------------------------
# the computation, one object per transform call


class FeatureComputation:
    """One transform call: cutoffs sorted by (entity, as_of), features written into one matrix.

    Every count is a difference of positions in the sorted event timeline: the global
    positions of each cutoff's ``as_of`` and of each window's lower edge are searched once
    (``np.searchsorted``); counts restricted to a subset of events (a kind, a keyword
    group, night-time) are then differences of that subset's cumulative sum at those same
    positions, so the cost per subset is one pass over the events plus gathers. With one
    cutoff per entity (nightly scoring) the per-kind counts and recency are instead
    tallied event by event (:meth:`~riskmodel.features._tally.LevelTally.levels`), which also gives
    the positions.
    """

    def __init__(self, builder: FeatureBuilder, prepared: PreparedEvents, cutoffs: pd.DataFrame, entities,
                 context: PreparedEvents | None = None, *, cutoff_codes: np.ndarray | None = None):
        self.b = builder
        self.schema = builder._schema()
        self.ev = prepared
        # the events the cross-dispute families (party, context) read
        self.cx = prepared if context is None else context
        self.cutoffs = cutoffs
        self.entities = entities

        ids = cutoffs[self.schema.entity_col]
        # each cutoff's entity code (-1: no event): found when the events were screened, or looked up
        codes = lookup_positions(prepared.entity_ids, ids) if cutoff_codes is None else cutoff_codes
        if len(ids) and len(prepared) and bool((codes < 0).all()) and \
                None not in (kinds := {id_kind(prepared.entity_ids), id_kind(ids)}) and len(kinds) == 2:
            # e.g. numbers and text, no id in common
            raise DataError(
                f"ids in {self.schema.entity_col!r} have different types in events ({prepared.entity_ids.dtype}) "
                f"and cutoffs ({ids.dtype}), and no cutoff's id is among the events'; convert one side, e.g. "
                ".astype(str)."
            )
        n_entities = len(prepared.entity_ids)
        codes = np.where(codes < 0, n_entities, codes).astype(np.int64)
        self.as_of_ns = as_of = ns_values(cutoffs["as_of"])  # validated: naive; in the cutoffs' order

        logs = [prepared] if self.cx is prepared else [prepared, self.cx]
        ranges = [log.time_range for log in logs if len(log)]
        self.t_min = min([lo for lo, _ in ranges] + [int(as_of.min())])
        self.t_max = max([hi for _, hi in ranges] + [int(as_of.max())])
        self.clock = Clock.for_range(n_entities + 2, self.t_min, self.t_max)
        ticks = self.clock.ticks(as_of)
        slots = _entity_slots(codes, n_entities)
        by_time = np.argsort(ticks, kind="stable")
        self.order = by_time[np.argsort(slots[by_time], kind="stable")]
        # Everything below works on cutoffs sorted by (entity, as_of): searches get fast.
        self.q_codes = codes[self.order]
        self.q_slots = slots[self.order]
        self.q_as_of = as_of[self.order]
        if context is None:
            self.cx_q_codes = self.q_codes
        else:
            cx_codes = lookup_positions(context.entity_ids, ids)
            self.cx_q_codes = np.where(cx_codes < 0, len(context.entity_ids), cx_codes).astype(np.int64)[self.order]
        self._positions: dict[str, np.ndarray] = {}
        self._entity_codes: dict[str, tuple] = {}

        # the output: one float32 matrix, filled column by column in sorted-cutoff order,
        # its rows put in the cutoffs' order at the end (:meth:`restore_order`)
        self.numeric_names, self.column_index = builder._numeric_columns()
        # zeros, one column per feature (column-major; the tally by level counts into them)
        self.matrix = np.zeros((len(cutoffs), len(self.numeric_names)), dtype=np.float32, order="F")

    def put(self, name: str, values: np.ndarray) -> None:
        """Write one column computed in sorted-cutoff order into the output matrix (as float32)."""
        self.matrix[:, self.column_index[name]] = values

    def restore_order(self) -> None:
        """Put the matrix rows, computed in sorted-cutoff order, in the cutoffs' order."""
        if bool((self.order == np.arange(len(self.order))).all()):
            return
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        buffer = np.empty(len(inverse), dtype=self.matrix.dtype)
        for j in range(self.matrix.shape[1]):
            column = self.matrix[:, j]
            np.take(column, inverse, out=buffer)
            column[:] = buffer

    @functools.cached_property
    def ev_timeline(self) -> Timeline:
        """The sorted events as a :class:`~riskmodel.data.Timeline` (keys built on first search)."""
        keys = self.clock.keys(self.ev.entity_codes, self.clock.ticks(self.ev.times_ns))
        return Timeline(keys, self.ev.times_ns, self.clock)

    def position(self, window: str | None) -> np.ndarray:
        """Global timeline position of each cutoff's window start (``None``: of its ``as_of``):
        the events before it, exactly (:meth:`~riskmodel.data.Clock.search`)."""
        key = "as_of" if window is None else window
        if key not in self._positions:
            if window == "all":
                self._positions[key] = self.ev_timeline.start(self.q_codes)
            else:
                query = self.q_as_of if window is None else self.q_as_of - window_ns(window)
                self._positions[key] = self.ev_timeline.position(self.q_codes, query)
        return self._positions[key]

    def timeline(self, mask: np.ndarray) -> Timeline:
        return Timeline(self.ev_timeline.keys[mask], self.ev.times_ns[mask], self.clock)

    def windowed_counts(self, mask: np.ndarray | None, windows: Sequence[str],
                        cum: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Events (where ``mask``) in ``[as_of - w, as_of)`` for each window ``w``; ``cum``:
        ``cumulative(mask)``, if the caller already has it."""
        upper = self.position(None)
        if mask is None:
            return {w: (upper - self.position(w)).astype(np.float32) for w in windows}
        cum = cumulative(mask) if cum is None else cum
        at_upper = cum[upper]
        return {w: (at_upper - cum[self.position(w)]).astype(np.float32) for w in windows}

    def last_time(self, mask: np.ndarray | None, cum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Time of the last event (where ``mask``) before ``as_of``, and whether there is one."""
        upper, start = self.position(None), self.position("all")
        if mask is None:
            return self.time_at(upper - 1), upper > start
        cum = cumulative(mask) if cum is None else cum
        before = cum[upper]
        positions = np.flatnonzero(mask)
        if len(positions) == 0:
            return np.zeros(len(upper), dtype=np.int64), np.zeros(len(upper), dtype=bool)
        return self.time_at(positions[np.minimum(np.maximum(before - 1, 0), len(positions) - 1)]), before > cum[start]

    def kind_codes(self) -> np.ndarray:
        """Index of each sorted event's kind in ``kinds_ + [other]``; warns about unseen kinds."""
        n_vocab = len(self.b.kinds_)
        codes, uniques = self.ev._input_codes(self.schema.kind_col)
        values = uniques.to_numpy(dtype=object)
        to_vocab = self.b._vocabulary(None).codes(values)
        unseen_values = to_vocab < 0
        unseen = unseen_values & (values != OTHER_KIND)  # 'other' is the other kinds
        if unseen.any():
            per_kind = np.bincount(codes, minlength=len(uniques))
            names = uniques[unseen]
            warnings.warn(
                f"{int(per_kind[unseen].sum())} event(s) of {len(names)} kind(s) not seen at fit "
                f"are counted as '{OTHER_KIND}': {format_examples(names)}.",
                DataWarning,
                stacklevel=4,
            )
        to_vocab = np.where(unseen_values, n_vocab, to_vocab).astype(np.min_scalar_type(n_vocab))
        # applied in input order, then permuted: far fewer bytes move (uint8) than permuting the int64 codes
        return self.ev._sorted(to_vocab[codes])

    def time_at(self, positions: np.ndarray) -> np.ndarray:
        """Event times at sorted-timeline ``positions`` (clipped; mask the result yourself)."""
        times = self.ev.times_ns
        if len(times) == 0:
            return np.zeros(len(positions), dtype=np.int64)
        return times[np.minimum(np.maximum(positions, 0), len(times) - 1)]

    def days_between(self, later: np.ndarray, earlier: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.full(later.shape, np.nan, dtype=np.float32)
        out[valid] = (later[valid] - earlier[valid]) / NS_PER_DAY
        return out

    # ----------------------------------------------------------------------------------

    def run(self) -> FeatureColumns:
        """Every active family's columns (see :class:`~riskmodel.features.FeatureFamily`)."""
        b = self.b
        families = b._active_families()
        if any(f.uses_kinds for f in families):
            self.kinds = self.kind_codes()  # read by the families that use kinds
        for family in families:
            if not family.in_cutoff_order:
                family.compute(self)
        self.restore_order()
        categorical = {}
        for family in families:
            if family.in_cutoff_order:
                categorical.update(family.compute(self) or {})
        return FeatureColumns(b.feature_names_out_, self.matrix, self.column_index, categorical, self.cutoffs.index)

    def warn_no_history(self) -> None:
        """A :class:`DataWarning` naming the cutoffs that have no event before ``as_of``."""
        none = np.empty(len(self.order), dtype=bool)
        none[self.order] = self.position(None) == self.position("all")
        if none.any():
            ids = self.cutoffs[self.schema.entity_col].to_numpy()[none]
            warnings.warn(
                f"{int(none.sum())} cutoff(s) have no event before their as_of, e.g. {format_examples(pd.unique(ids))}: "
                "their scores rest on what no event says (check the ids, and that as_of is after the dispute began; "
                "the nightly job does not score such disputes).", DataWarning, stacklevel=5)

    def add_counts_and_recency(self) -> None:
        """The columns of the counts and the recency families, whichever are active, in one pass
        (a second call does nothing); per kind by :func:`~riskmodel.features._tally.tally_kinds`."""
        if getattr(self, "_counts_and_recency_done", False):
            return
        self._counts_and_recency_done = True
        counts, recency = self.b._active("counts"), self.b._active("recency")
        windows = self.b._window_labels()
        kinds = self.b.kinds_ + [OTHER_KIND]
        tally_kinds(self, kinds, windows, counts, recency)
        if counts:
            for w, values in self.windowed_counts(None, windows).items():
                self.put(f"count_all_{w}", values)
        if recency:
            last, has = self.last_time(None)
            self.put("days_since_last_event", self.days_between(self.q_as_of, last, has))
            self.put("days_since_first_event", self.days_between(self.q_as_of, self.time_at(self.position("all")), has))

    def escalation_times(self) -> np.ndarray:
        """First outcome time per entity code (int64 ns; NaT-min where none)."""
        kinds = self.schema.outcome_kinds
        return self.cx.cached(("escalations", kinds), lambda: self.cx.first_times(self.cx.is_kind(kinds)))

    def entity_rows(self) -> np.ndarray:
        """Row of each cutoff's dispute in the entities table (cutoffs' order; -1 if none)."""
        if not hasattr(self, "_entity_rows"):
            ids = self.cutoffs[self.schema.entity_col]
            known = self.entities[self.schema.entities_id]
            self._entity_rows = lookup_positions(pd.Index(known), ids)
        return self._entity_rows

    def entity_codes(self, col: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """A categorical entities column, per entities row: the code of its value in the
        training vocabulary (-1: missing or not seen at fit), its code in the table's own
        categories (-1: missing), and those categories. Computed once per transform."""
        if col not in self._entity_codes:
            values = self.entities[col]  # validated: categorical
            categories = values.cat.categories
            own = values.cat.codes.to_numpy()
            to_vocab = np.r_[self.b._vocabulary(col).codes(categories.to_numpy(dtype=object)), -1]  # -1: missing
            self._entity_codes[col] = (to_vocab[own], own, categories)
        return self._entity_codes[col]


def _entity_slots(codes: np.ndarray, n_entities: int) -> np.ndarray:
    """Sort slots of cutoffs by entity: ``2 * code + 1`` for an entity with events; an id
    without events (``code == n_entities``) takes the even slot just after the entity of
    the nearest cutoff above it that has one, so cutoffs listed in entity order keep
    their order (their rows need no permutation) wherever such ids are."""
    known = codes < n_entities
    last_known = np.maximum.accumulate(np.where(known, np.arange(len(codes)), -1))
    previous = np.where(last_known >= 0, codes[np.maximum(last_known, 0)], -1)
    return np.where(known, 2 * codes + 1, 2 * (previous + 1))
