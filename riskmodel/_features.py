"""Point-in-time features over dispute histories: :class:`FeatureBuilder`.

The rule, for every feature family: the row for a cutoff ``(dispute, as_of)`` is computed
from events with time strictly before ``as_of`` only. An event at exactly ``as_of`` is the
future. Features computed across disputes (party histories, group escalation rates) obey
the same rule: they only see other disputes' events before ``as_of``.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator

from ._errors import DataError, DataWarning, ModelError, format_examples
from ._schema import EventSchema, split_invalid_events, validate_cutoffs, validate_entities
from ._timeline import NS_PER_DAY, Clock, Timeline, expand_ranges

__all__ = ["FeatureBuilder", "DEFAULT_KEYWORDS", "PreparedEvents", "prepare_events"]

FEATURE_FAMILIES = ("counts", "recency", "dynamics", "text", "entity", "party", "context")

#: Default narrative lexicon: groups of Chinese risk keywords (any match counts once per event).
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "threat": ("扬言", "报复", "威胁", "弄死", "要你命", "走着瞧", "不会放过"),
    "weapon": ("刀", "砍", "棍", "斧", "枪", "汽油", "硫酸", "炸"),
    "desperate": ("同归于尽", "拼命", "不想活", "鱼死网破", "豁出去"),
    "self_harm": ("喝农药", "跳楼", "自杀", "轻生", "割腕", "寻死"),
}

OTHER_KIND = "other"
_NAT = np.iinfo(np.int64).min


# --------------------------------------------------------------------------------------
# prepared events: validated once, reusable across transforms (backtests, folds)


class PreparedEvents:
    """Validated events as sorted arrays; build with :func:`prepare_events`.

    Passing one to :meth:`FeatureBuilder.transform` instead of a DataFrame skips
    validation and sorting, which matters when the same log is featurised many times.
    """

    def __init__(self, frame: pd.DataFrame, schema: EventSchema, tz_aware: bool, entity_codes=None):
        self.frame = frame
        self.schema = schema
        self.tz_aware = tz_aware
        if entity_codes is None:
            entity_codes, self.entity_ids = pd.factorize(frame[schema.entity_col], sort=True)
        else:
            entity_codes, self.entity_ids = entity_codes
        self.entity_codes = entity_codes.astype(np.int64)
        self.times_ns = frame[schema.time_col].to_numpy("datetime64[ns]").view(np.int64)
        self.kinds = frame[schema.kind_col]
        self._cache: dict = {}

    def __len__(self) -> int:
        return len(self.frame)

    def cached(self, key, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]


def prepare_events(
    events: pd.DataFrame | PreparedEvents,
    schema: EventSchema | None = None,
    *,
    now: pd.Timestamp | None = None,
) -> PreparedEvents:
    """Validate an event log once (see :func:`validate_events`) and index it for features."""
    if isinstance(events, PreparedEvents):
        return events
    schema = schema or EventSchema()
    clean, rejects, info = split_invalid_events(events, schema, now=now)
    if len(rejects):
        from ._schema import _raise_rejects

        _raise_rejects(rejects, "events")
    return PreparedEvents(clean, schema, info["tz_aware"], entity_codes=info["entity_codes"])


def _window_days(window: str) -> float:
    try:
        delta = pd.Timedelta(window)
    except ValueError as exc:
        raise DataError(f"window {window!r} is not a pandas offset such as '30D'.") from exc
    if delta <= pd.Timedelta(0):
        raise DataError(f"window {window!r} must be positive.")
    return delta / pd.Timedelta(days=1)


def _slug(text: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()


def _kind_slugs(kinds: Sequence[str]) -> dict[str, str]:
    """Readable, unique, ASCII column-name fragments for event kinds."""
    slugs: dict[str, str] = {}
    used: set[str] = set()
    for i, kind in enumerate(kinds):
        slug = _slug(kind) or f"kind{i}"
        while slug in used:
            slug = f"{slug}_{i}"
        used.add(slug)
        slugs[kind] = slug
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
        Hours ``[start, end)`` counted as night (wrapping midnight).
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
    ...                        "time": pd.to_datetime(["2024-01-01", "2024-01-20", "2024-01-05"]),
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
        unknown = sorted(set(self.families) - set(FEATURE_FAMILIES))
        if unknown:
            raise DataError(f"unknown feature families {unknown}; choose from {FEATURE_FAMILIES}.")
        for w in list(self.windows) + list(self.keyword_windows) + list(self.trend_windows):
            _window_days(w)
        _window_days(self.context_window)
        if len(self.trend_windows) != 2 or _window_days(self.trend_windows[0]) >= _window_days(
            self.trend_windows[1]
        ):
            raise DataError("trend_windows must be (short, long) with short < long, e.g. ('30D', '90D').")
        if self.max_kinds < 1:
            raise DataError("max_kinds must be at least 1.")

    def _active(self, family: str) -> bool:
        schema = self._schema()
        if family not in self.families:
            return False
        if family == "text":
            return schema.text_col is not None
        if family == "party":
            return schema.party_col is not None
        if family == "entity":
            return self.has_entities_ and bool(schema.entity_feature_columns)
        if family == "context":
            return self.has_entities_ and bool(schema.group_cols)
        return True

    def _lexicon(self) -> dict[str, tuple[str, ...]]:
        lexicon = DEFAULT_KEYWORDS if self.keywords is None else self.keywords
        return {str(k): tuple(v) for k, v in lexicon.items() if len(v)}

    # ----------------------------------------------------------------------------------
    # fit / transform

    def fit(self, events, cutoffs=None, *, entities=None):
        """Learn the kinds and category vocabularies and the output columns.

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
        prepared = prepare_events(events, schema)
        counts = prepared.kinds.value_counts(sort=True)
        counts = counts.sort_index(kind="stable").sort_values(ascending=False, kind="stable")
        self.kinds_ = sorted(counts.index[: self.max_kinds].tolist())
        self.kind_slugs_ = _kind_slugs(self.kinds_ + [OTHER_KIND])
        self.has_entities_ = entities is not None
        self.categories_ = {}
        if entities is not None:
            ents = validate_entities(entities, schema)
            for col in schema.entity_categorical_cols:
                self.categories_[col] = [str(v) for v in ents[col].cat.categories]
        self.tz_aware_ = prepared.tz_aware
        self.feature_names_out_, self.categorical_features_ = self._plan_columns()
        self.n_features_out_ = len(self.feature_names_out_)
        return self

    def _window_labels(self) -> list[str]:
        return list(self.windows) + ["all"]

    def _plan_columns(self) -> tuple[np.ndarray, list[str]]:
        schema = self._schema()
        names: list[str] = []
        categorical: list[str] = []
        slugs = [self.kind_slugs_[k] for k in self.kinds_ + [OTHER_KIND]]
        if self._active("counts"):
            for w in self._window_labels():
                names.append(f"count_all_{w}")
                names += [f"count_{s}_{w}" for s in slugs]
        if self._active("recency"):
            names += ["days_since_last_event", "days_since_first_event"]
            names += [f"days_since_last_{s}" for s in slugs]
        if self._active("dynamics"):
            short, long = self.trend_windows
            names += [f"trend_{short}_vs_{long}", "night_share", "mean_gap_days", "last_gap_days"]
            names += [
                f"streak_{_slug(kind) or 'kind'}_since_{_slug(reset) or 'reset'}"
                for kind, reset in self.streaks
            ]
        if self._active("text"):
            for group in self._lexicon():
                names += [f"kw_{_slug(group) or 'group'}_{w}" for w in list(self.keyword_windows) + ["all"]]
            names.append("text_missing_share")
        if self._active("entity"):
            names += list(schema.entity_categorical_cols)
            categorical += list(schema.entity_categorical_cols)
            names += list(schema.entity_numeric_cols)
            names += [f"days_since_{c}" for c in schema.entity_time_cols]
        if self._active("party"):
            names += ["party_count", "party_other_disputes", "party_max_other_disputes", "party_past_escalations"]
        if self._active("context"):
            w = self.context_window
            for g in schema.group_cols:
                names += [f"ctx_{g}_escalations_{w}", f"ctx_{g}_escalation_rate_{w}"]
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
            raise ModelError("this FeatureBuilder is not fitted yet; call fit(events, ...) first.")

    def fit_transform(self, events, cutoffs, *, entities=None) -> pd.DataFrame:
        """Fit on ``events`` then transform ``cutoffs``."""
        prepared = prepare_events(events, self._schema())
        return self.fit(prepared, entities=entities).transform(prepared, cutoffs, entities=entities)

    def transform(self, events, cutoffs, *, entities=None) -> pd.DataFrame:
        """Compute one feature row per cutoff, in the cutoffs' order.

        Parameters
        ----------
        events : DataFrame or PreparedEvents
            The event log; only events strictly before each row's ``as_of`` are used.
        cutoffs : DataFrame
            The schema's entity column and ``as_of``; any number of rows per dispute, any order.
        entities : DataFrame, optional
            Entity attributes; required if the builder was fitted with entities.

        Returns
        -------
        DataFrame
            Columns :meth:`get_feature_names_out`; numeric columns ``float32``, categorical
            ones ``category`` with the training vocabulary (unseen values become missing).
            The index is the cutoffs' index.
        """
        self._check_fitted()
        schema = self._schema()
        prepared = prepare_events(events, schema)
        cut = validate_cutoffs(cutoffs, schema, tz_aware=self.tz_aware_)
        if self.has_entities_ and entities is None and (self._active("entity") or self._active("context")):
            raise DataError(
                "this FeatureBuilder was fitted with an entities table; pass entities= to transform too."
            )
        ents = validate_entities(entities, schema) if self.has_entities_ and entities is not None else None
        return _FeatureComputation(self, prepared, cut, ents).run()


# --------------------------------------------------------------------------------------
# the computation, one object per transform call


class _FeatureComputation:
    def __init__(self, builder: FeatureBuilder, prepared: PreparedEvents, cutoffs: pd.DataFrame, entities):
        self.b = builder
        self.schema = builder._schema()
        self.ev = prepared
        self.cutoffs = cutoffs
        self.entities = entities
        self.columns: dict[str, np.ndarray] = {}

        ids = cutoffs[self.schema.entity_col]
        _check_id_types(prepared.entity_ids, ids, self.schema.entity_col)
        codes = prepared.entity_ids.get_indexer(ids)
        n_entities = len(prepared.entity_ids)
        codes = np.where(codes < 0, n_entities, codes).astype(np.int64)
        as_of = cutoffs["as_of"].to_numpy("datetime64[ns]").view(np.int64)

        t_min = int(prepared.times_ns.min()) if len(prepared) else int(as_of.min())
        t_max = max(int(prepared.times_ns.max()) if len(prepared) else 0, int(as_of.max()))
        self.t_min, self.t_max = t_min, t_max
        self.clock = Clock.for_range(n_entities + 2, t_min, t_max)
        qkeys = self.clock.keys(codes, self.clock.ticks(as_of))
        self.order = np.argsort(qkeys, kind="stable")
        # Everything below works on cutoffs sorted by (entity, as_of): searches get fast.
        self.q_codes = codes[self.order]
        self.q_as_of = as_of[self.order]
        self.q_keys = qkeys[self.order]
        self.q_start_keys = self.clock.keys(self.q_codes, np.zeros_like(self.q_codes))
        self.ev_keys = self.clock.keys(prepared.entity_codes, self.clock.ticks(prepared.times_ns))
        self._window_keys: dict[str, np.ndarray] = {}

    def window_keys(self, window: str) -> np.ndarray:
        """Query keys for ``as_of - window`` (``"all"``: the entity's first possible key)."""
        if window not in self._window_keys:
            if window == "all":
                keys = self.q_start_keys
            else:
                lower = self.q_as_of - int(pd.Timedelta(window).value)
                keys = self.clock.keys(self.q_codes, self.clock.ticks(lower))
            self._window_keys[window] = keys
        return self._window_keys[window]

    def timeline(self, mask: np.ndarray | None) -> Timeline:
        if mask is None:
            return Timeline(self.ev_keys, self.ev.times_ns)
        return Timeline(self.ev_keys[mask], self.ev.times_ns[mask])

    def windowed_counts(self, tl: Timeline, windows: Sequence[str]) -> dict[str, np.ndarray]:
        upper = tl.position(self.q_keys)
        return {w: (upper - tl.position(self.window_keys(w))).astype(np.float32) for w in windows}

    def kind_codes(self) -> np.ndarray:
        """Index of each event's kind in ``kinds_ + [other]``; warns about unseen kinds."""
        vocab = self.b.kinds_
        codes = pd.Index(vocab).get_indexer(self.ev.kinds)
        unseen = codes < 0
        if unseen.any():
            names = pd.unique(self.ev.kinds[unseen])
            warnings.warn(
                f"{int(unseen.sum())} event(s) of {len(names)} kind(s) not seen at fit are counted "
                f"as '{OTHER_KIND}': {format_examples(names)}.",
                DataWarning,
                stacklevel=4,
            )
        return np.where(unseen, len(vocab), codes)

    def days_between(self, later: np.ndarray, earlier: np.ndarray, valid: np.ndarray) -> np.ndarray:
        out = np.full(later.shape, np.nan, dtype=np.float32)
        out[valid] = (later[valid] - earlier[valid]) / NS_PER_DAY
        return out

    # ----------------------------------------------------------------------------------

    def run(self) -> pd.DataFrame:
        b = self.b
        if b._active("counts") or b._active("recency") or b._active("dynamics"):
            self.kinds = self.kind_codes()
        if b._active("counts"):
            self.add_counts()
        if b._active("recency"):
            self.add_recency()
        if b._active("dynamics"):
            self.add_dynamics()
        if b._active("text"):
            self.add_text()
        if b._active("party"):
            self.add_party()
        if b._active("context"):
            self.add_context()
        # scatter back from sorted order to the cutoffs' order
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        data = {name: values[inverse] for name, values in self.columns.items()}
        if b._active("entity"):
            data.update(self.entity_columns())
        frame = pd.DataFrame(data, index=self.cutoffs.index)
        return frame[list(b.feature_names_out_)]

    def add_counts(self) -> None:
        windows = self.b._window_labels()
        for w, values in self.windowed_counts(self.timeline(None), windows).items():
            self.columns[f"count_all_{w}"] = values
        for code, kind in enumerate(self.b.kinds_ + [OTHER_KIND]):
            slug = self.b.kind_slugs_[kind]
            tl = self.timeline(self.kinds == code)
            for w, values in self.windowed_counts(tl, windows).items():
                self.columns[f"count_{slug}_{w}"] = values

    def add_recency(self) -> None:
        tl = self.timeline(None)
        upper = tl.position(self.q_keys)
        start = tl.position(self.q_start_keys)
        has = upper > start
        last = tl.time_at(upper - 1, has)
        first = tl.time_at(start, has)
        self.columns["days_since_last_event"] = self.days_between(self.q_as_of, last, has)
        self.columns["days_since_first_event"] = self.days_between(self.q_as_of, first, has)
        for code, kind in enumerate(self.b.kinds_ + [OTHER_KIND]):
            tl_k = self.timeline(self.kinds == code)
            upper_k = tl_k.position(self.q_keys)
            has_k = upper_k > tl_k.position(self.q_start_keys)
            last_k = tl_k.time_at(upper_k - 1, has_k)
            self.columns[f"days_since_last_{self.b.kind_slugs_[kind]}"] = self.days_between(
                self.q_as_of, last_k, has_k
            )

    def add_dynamics(self) -> None:
        b = self.b
        tl = self.timeline(None)
        short, long = b.trend_windows
        counts = self.windowed_counts(tl, [short, long, "all"])
        d_short, d_long = _window_days(short), _window_days(long)
        self.columns[f"trend_{short}_vs_{long}"] = (
            counts[short] / d_short - (counts[long] - counts[short]) / (d_long - d_short)
        ).astype(np.float32)

        start_h, end_h = int(b.night_hours[0]), int(b.night_hours[1])
        hours = (self.ev.times_ns // 3_600_000_000_000) % 24
        night = (hours >= start_h) | (hours < end_h) if start_h > end_h else (hours >= start_h) & (hours < end_h)
        night_counts = self.windowed_counts(self.timeline(night), ["all"])["all"]
        total = counts["all"]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.columns["night_share"] = np.where(total > 0, night_counts / total, np.nan).astype(np.float32)

        upper = tl.position(self.q_keys)
        start = tl.position(self.q_start_keys)
        n = upper - start
        has2 = n >= 2
        last = tl.time_at(upper - 1, has2)
        first = tl.time_at(start, has2)
        before_last = tl.time_at(upper - 2, has2)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_gap = self.days_between(last, first, has2) / np.maximum(n - 1, 1)
        self.columns["mean_gap_days"] = mean_gap.astype(np.float32)
        self.columns["last_gap_days"] = self.days_between(last, before_last, has2)

        kinds_index = pd.Index(self.ev.kinds)
        for kind, reset in b.streaks:
            name = f"streak_{_slug(kind) or 'kind'}_since_{_slug(reset) or 'reset'}"
            tl_kind = self.timeline(np.asarray(kinds_index == kind))
            tl_reset = self.timeline(np.asarray(kinds_index == reset))
            up_r = tl_reset.position(self.q_keys)
            has_r = up_r > tl_reset.position(self.q_start_keys)
            # key of the last reset event; kinds after it (strictly later tick) are the streak
            reset_keys = tl_reset.keys if len(tl_reset.keys) else np.zeros(1, dtype=np.int64)
            last_reset_key = np.where(has_r, reset_keys[np.maximum(up_r - 1, 0)], self.q_start_keys - 1)
            since = tl_kind.position_after(last_reset_key)
            self.columns[name] = np.maximum(tl_kind.position(self.q_keys) - since, 0).astype(np.float32)

    def add_text(self) -> None:
        text_col = self.schema.text_col
        lexicon = self.b._lexicon()
        texts = self.ev.cached(("text", text_col), lambda: self.ev.frame[text_col].astype("string[pyarrow]"))
        missing = texts.isna().to_numpy() | (texts.astype("str").str.strip() == "").to_numpy()
        windows = list(self.b.keyword_windows) + ["all"]
        for group, words in lexicon.items():
            pattern = "|".join(re.escape(w) for w in words)
            hits = self.ev.cached(
                ("kw", pattern),
                lambda p=pattern: texts.str.contains(p, regex=True, na=False).to_numpy(dtype=bool),
            )
            for w, values in self.windowed_counts(self.timeline(hits), windows).items():
                self.columns[f"kw_{_slug(group) or 'group'}_{w}"] = values
        n_missing = self.windowed_counts(self.timeline(missing), ["all"])["all"]
        n_all = self.windowed_counts(self.timeline(None), ["all"])["all"]
        with np.errstate(invalid="ignore", divide="ignore"):
            self.columns["text_missing_share"] = np.where(n_all > 0, n_missing / n_all, np.nan).astype(
                np.float32
            )

    def escalation_times(self) -> np.ndarray:
        """First outcome time per entity code (int64 ns; NaT-min where none)."""

        def compute():
            out = np.full(len(self.ev.entity_ids) + 1, _NAT, dtype=np.int64)
            outcome = np.asarray(pd.Index(self.ev.kinds).isin(list(self.schema.outcome_kinds)))
            codes = self.ev.entity_codes[outcome]
            times = self.ev.times_ns[outcome]
            if len(codes):
                first = np.r_[True, codes[1:] != codes[:-1]]  # events are sorted by (entity, time)
                out[codes[first]] = times[first]
            return out

        return self.ev.cached(("escalations", self.schema.outcome_kinds), compute)

    def add_party(self) -> None:
        party = self.ev.frame[self.schema.party_col]
        present = party.notna().to_numpy()
        party_codes, _ = pd.factorize(party[present])
        e_codes = self.ev.entity_codes[present]
        times = self.ev.times_ns[present]
        n_parties = int(party_codes.max()) + 1 if len(party_codes) else 0
        # first appearance of each (party, dispute): events are time-sorted within dispute
        pair = e_codes * max(n_parties, 1) + party_codes
        order = np.argsort(pair, kind="stable")
        pair_sorted = pair[order]
        first = np.r_[True, pair_sorted[1:] != pair_sorted[:-1]] if len(pair_sorted) else np.zeros(0, bool)
        f_rows = order[first]
        f_party, f_entity, f_time = party_codes[f_rows], e_codes[f_rows], times[f_rows]  # sorted by entity
        clock = Clock.for_range(max(n_parties, len(self.ev.entity_ids)) + 2, self.t_min, self.t_max)
        f_tick = clock.ticks(f_time)
        q_tick = clock.ticks(self.q_as_of)

        # party's disputes, sorted by (party, first appearance)
        known_keys = np.sort(clock.keys(f_party, f_tick))
        esc = self.escalation_times()[f_entity]
        has_esc = esc != _NAT
        esc_known = np.maximum(f_time, esc)  # an escalation is attributable once both are known
        esc_keys = np.sort(clock.keys(f_party[has_esc], clock.ticks(esc_known[has_esc])))

        # expand each cutoff to its dispute's parties seen before as_of
        lo = np.searchsorted(f_entity, self.q_codes, side="left")
        hi = np.searchsorted(f_entity, self.q_codes, side="right")
        owner, rows = expand_ranges(lo, hi)
        seen = f_tick[rows] < q_tick[owner]
        owner, rows = owner[seen], rows[seen]
        p = f_party[rows]
        qk = clock.keys(p, q_tick[owner])
        pk0 = clock.keys(p, np.zeros_like(p))
        other = np.searchsorted(known_keys, qk) - np.searchsorted(known_keys, pk0) - 1
        own_esc = has_esc[rows] & (clock.ticks(esc_known[rows]) < q_tick[owner])
        escalations = np.searchsorted(esc_keys, qk) - np.searchsorted(esc_keys, pk0) - own_esc
        n_q = len(self.q_codes)
        self.columns["party_count"] = np.bincount(owner, minlength=n_q).astype(np.float32)
        self.columns["party_other_disputes"] = np.bincount(owner, other, minlength=n_q).astype(np.float32)
        max_other = np.zeros(n_q, dtype=np.float32)
        np.maximum.at(max_other, owner, other.astype(np.float32))
        self.columns["party_max_other_disputes"] = max_other
        self.columns["party_past_escalations"] = np.bincount(owner, escalations, minlength=n_q).astype(
            np.float32
        )

    def add_context(self) -> None:
        ents = self.entities
        id_col = self.schema.entities_id
        window_ns = int(pd.Timedelta(self.b.context_window).value)
        w = self.b.context_window
        codes_of_entities = self.ev.entity_ids.get_indexer(ents[id_col])
        first_time = np.full(len(self.ev.entity_ids) + 1, _NAT, dtype=np.int64)
        starts = np.r_[True, self.ev.entity_codes[1:] != self.ev.entity_codes[:-1]] if len(self.ev) else []
        first_time[self.ev.entity_codes[starts]] = self.ev.times_ns[starts]
        esc_time = self.escalation_times()
        q_ids = self.cutoffs[self.schema.entity_col].to_numpy()[self.order]
        for g in self.schema.group_cols:
            vocab = pd.Index(self.b.categories_.get(g, []))
            g_of_entity = vocab.get_indexer(ents[g].astype(object))
            known = (codes_of_entities >= 0) & (g_of_entity >= 0)
            e_codes, e_groups = codes_of_entities[known], g_of_entity[known]
            clock = Clock.for_range(len(vocab) + 2, self.t_min, self.t_max)
            started = first_time[e_codes] != _NAT
            start_keys = np.sort(clock.keys(e_groups[started], clock.ticks(first_time[e_codes][started])))
            escalated = esc_time[e_codes] != _NAT
            esc_keys = np.sort(clock.keys(e_groups[escalated], clock.ticks(esc_time[e_codes][escalated])))
            g_lookup = pd.Series(g_of_entity, index=ents[id_col].to_numpy())
            q_group = g_lookup.reindex(q_ids).fillna(-1).to_numpy().astype(np.int64)
            valid = q_group >= 0
            qg = np.where(valid, q_group, 0)
            upper = clock.keys(qg, clock.ticks(self.q_as_of))
            lower = clock.keys(qg, clock.ticks(self.q_as_of - window_ns))
            n_esc = (np.searchsorted(esc_keys, upper) - np.searchsorted(esc_keys, lower)).astype(np.float32)
            n_new = (np.searchsorted(start_keys, upper) - np.searchsorted(start_keys, lower)).astype(np.float32)
            n_esc[~valid] = np.nan
            with np.errstate(invalid="ignore", divide="ignore"):
                rate = np.where(valid, n_esc / np.maximum(n_new, 1), np.nan).astype(np.float32)
            self.columns[f"ctx_{g}_escalations_{w}"] = n_esc
            self.columns[f"ctx_{g}_escalation_rate_{w}"] = rate

    def entity_columns(self) -> dict[str, object]:
        schema = self.schema
        ents = self.entities
        id_col = schema.entities_id
        ids = self.cutoffs[schema.entity_col]
        lookup = ents.set_index(id_col)
        rows = lookup.index.get_indexer(ids)
        unknown = rows < 0
        if unknown.any() and len(ents):
            warnings.warn(
                f"{int(unknown.sum())} cutoff(s) have no entities row; their attributes are missing "
                f"(e.g. {format_examples(pd.unique(ids[unknown]))}).",
                DataWarning,
                stacklevel=4,
            )
        out: dict[str, object] = {}
        for col in schema.entity_categorical_cols:
            values = lookup[col].astype(object).to_numpy()
            taken = np.where(unknown, None, values[np.maximum(rows, 0)])
            vocab = self.b.categories_[col]
            cat = pd.Categorical(pd.Series(taken).where(pd.Series(taken).isin(vocab)), categories=vocab)
            unseen = pd.Series(taken).notna().to_numpy() & ~pd.Series(taken).isin(vocab).to_numpy()
            if unseen.any():
                warnings.warn(
                    f"entities column {col!r}: {int(unseen.sum())} value(s) not seen at fit become "
                    f"missing: {format_examples(pd.unique(taken[unseen]))}.",
                    DataWarning,
                    stacklevel=4,
                )
            out[col] = cat
        for col in schema.entity_numeric_cols:
            values = lookup[col].to_numpy(dtype=np.float64)
            out[col] = np.where(unknown, np.nan, values[np.maximum(rows, 0)]).astype(np.float32)
        as_of = self.cutoffs["as_of"].to_numpy("datetime64[ns]").view(np.int64)
        for col in schema.entity_time_cols:
            t = lookup[col].to_numpy("datetime64[ns]").view(np.int64)[np.maximum(rows, 0)]
            valid = ~unknown & (t != _NAT) & (t < as_of)  # a date at or after as_of is not yet known
            days = np.full(len(ids), np.nan, dtype=np.float32)
            days[valid] = (as_of[valid] - t[valid]) / NS_PER_DAY
            out[f"days_since_{col}"] = days
        return out


def _check_id_types(event_ids: pd.Index, cutoff_ids: pd.Series, column: str) -> None:
    if len(event_ids) == 0 or len(cutoff_ids) == 0:
        return
    ev_numeric = pd.api.types.is_numeric_dtype(event_ids.dtype)
    cut_numeric = pd.api.types.is_numeric_dtype(cutoff_ids.dtype)
    if ev_numeric != cut_numeric:
        raise DataError(
            f"ids in {column!r} have different types in events ({event_ids.dtype}) and cutoffs "
            f"({cutoff_ids.dtype}); convert one side, e.g. .astype(str)."
        )
