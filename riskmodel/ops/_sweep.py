"""The sweep (一件事到一类事): from one case to every open dispute sharing its risk pattern.

After a serious incident the centre asks "which open disputes look like this one?". Two
answers, usually combined:

* **by rule** - a :class:`SweepPattern` of the case's key elements: its category and the
  signals behind its risk (the event and keyword counts among its top SHAP
  contributions), e.g. ``category=building & kw_threat_30D>0`` ("building dispute +
  threat of revenge"); or a pattern the analyst writes (:func:`parse_pattern`);
* **by similarity** - the open disputes of the same category whose SHAP contribution
  vectors point the same way as the case's (cosine nearest neighbours of the risk-raising
  contributions): same drivers, whatever the exact feature.

Matches are ranked by probability into one work list per station (or any area column).

Where the features come from: the nightly scores hold probabilities and reasons, not the
feature matrix, so :func:`sweep_inputs` recomputes the open disputes' features and
contributions with the model on the event log at the scores' ``as_of`` (identical to the
batch's, which reproduces a whole-input run), and the case's own as of the moment just
before it escalated. Contributions are kept as float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError, format_examples
from ..batch import CITY, as_nightly, usable_entities
from ..data import decimal_text, id_kind, kind_in, require_columns
from ._barometer import area_keys, resolve_area
from ._night import NightModels, night_inputs, prepare_as_batch, risk_model_of

__all__ = ["SweepInputs", "SweepPattern", "SweepResult", "parse_pattern", "sweep", "sweep_inputs"]

#: Features that can be a case's key signal: counts of event kinds (not of all events),
#: narrative keyword counts, streaks and the parties' past escalations.
SIGNAL_FEATURES = re.compile(r"^(count_(?!all_)\w+|kw_\w+|streak_\w+|party_past_escalations)$")
_OPS = ("==", "!=", ">=", "<=", "=", ">", "<")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<and>&&|&|\band\b)
      | (?P<op>==|!=|>=|<=|=|>|<)
      | (?P<quoted>'[^']*'|"[^"]*")
      | (?P<word>[^\s&=!<>'"]+)
    )""",
    re.VERBOSE | re.IGNORECASE,
)
_NAME = re.compile(r"^[^\W\d][^\s&=!<>'\"|]*$")  # any language's words (派出所, count_扬言报复_30D, थाना); others quoted


# ------------------------------------------------------------------------------------------
# patterns


@dataclass(frozen=True)
class Clause:
    """One condition ``column op value(s)``; ``=`` / ``!=`` accept alternatives ``a|b``."""

    column: str
    op: str
    values: tuple

    def __str__(self) -> str:
        def fmt(v):
            if isinstance(v, float):
                return f"{v:g}"
            text = str(v)
            return text if re.fullmatch(r"[^\s&=!<>'\"|,]+", text) else repr(text)
        column = self.column if _NAME.match(self.column) else repr(self.column)  # 'Police Station'
        return f"{column}{self.op}{'|'.join(fmt(v) for v in self.values)}"

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows satisfying the clause; a missing value never matches."""
        if self.column not in frame.columns:
            raise DataError(f"pattern column {self.column!r} is not available; columns: "
                            f"{format_examples(sorted(map(str, frame.columns)), limit=12)}.")
        col = frame[self.column]
        present = col.notna().to_numpy()
        numeric_col = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
        numeric_vals = all(isinstance(v, int | float) for v in self.values)
        if self.op in (">", ">=", "<", "<="):
            if not (numeric_col and numeric_vals):
                raise DataError(f"pattern clause {self}: {self.op} needs a numeric column and a number; "
                                f"{self.column!r} is {col.dtype}.")
            x, v = col.to_numpy(dtype=float), float(self.values[0])
            hit = {">": x > v, ">=": x >= v, "<": x < v, "<=": x <= v}[self.op]
        elif numeric_col and numeric_vals:
            hit = np.isin(col.to_numpy(dtype=float), np.asarray(self.values, dtype=float))
        else:
            hit = col.astype(object).astype(str).isin([str(v) for v in self.values]).to_numpy()
        if self.op == "!=":
            hit = ~hit
        return hit & present


@dataclass(frozen=True)
class SweepPattern:
    """A conjunction of :class:`Clause` s, e.g. ``category=building & count_threat_30D>0``.

    Build one with :func:`parse_pattern`; ``str(pattern)`` gives the text back.
    """

    clauses: tuple[Clause, ...]

    def __str__(self) -> str:
        return " & ".join(str(c) for c in self.clauses)

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(c.column for c in self.clauses))

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean array: the rows of ``frame`` matching every clause."""
        hit = np.ones(len(frame), dtype=bool)
        for clause in self.clauses:  # a handful of clauses, each vectorised over rows
            hit &= clause.mask(frame)
        return hit


def _by_kind_names(pattern: SweepPattern, columns, kind_slugs: dict[str, str]) -> SweepPattern:
    """``pattern`` with a column named by an event kind's own words (``count_扬言报复_30D``)
    read as the feature column the kind's ASCII slug names (``count_kind3_30D``), where that
    column exists and the name as written does not."""
    have = set(map(str, columns))
    kinds = sorted((k for k, v in kind_slugs.items() if k != v), key=len, reverse=True)  # the longest kind first

    def column(name: str) -> str:
        if name in have:
            return name
        found = (name.replace(kind, kind_slugs[kind]) for kind in kinds if kind in name)
        return next((c for c in found if c in have), name)

    return SweepPattern(tuple(replace(c, column=column(c.column)) for c in pattern.clauses))


def _value(token: str, quoted: bool):
    if quoted:
        return token[1:-1]
    try:
        number = float(token)
    except ValueError:
        return token
    return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", token) else number


def parse_pattern(text: str) -> SweepPattern:
    """Parse a sweep pattern; a small, safe grammar (nothing is evaluated as code).

    ``pattern := clause ("&" clause)*`` where ``clause := column op value``, ``op`` is one of
    ``= == != > >= < <=``, and ``value`` a number, a bare word or a quoted string. With
    ``=`` / ``!=`` several values may be given as ``a|b|c`` (any of them). ``and`` and
    ``&&`` also join clauses.

    Parameters
    ----------
    text : str

    Returns
    -------
    SweepPattern

    Raises
    ------
    ConfigError
        The text does not follow the grammar; the message shows where.

    Examples
    --------
    >>> p = parse_pattern("category=building & count_threat_30D>0")
    >>> p.columns
    ['category', 'count_threat_30D']
    >>> str(parse_pattern("category = family|debt and kw_weapon_30D >= 1"))
    'category=family|debt & kw_weapon_30D>=1'
    >>> parse_pattern("category=building & __import__('os')")
    Traceback (most recent call last):
    ...
    riskmodel._errors.ConfigError: bad sweep pattern at character 20 ("__import__('os')"): expected column op value, e.g. "category=building & count_threat_30D>0".
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError('a sweep pattern must be a non-empty string, e.g. "category=building & count_threat_30D>0".')
    example = 'e.g. "category=building & count_threat_30D>0"'
    tokens, pos = [], 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ConfigError(f"bad sweep pattern at character {pos} ({text[pos:]!r}): unexpected character; {example}.")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    # group tokens into clauses separated by "and" tokens
    groups, current = [], []
    for tok in tokens + [("and", "&", len(text))]:
        if tok[0] == "and":
            groups.append(current)
            current = []
        else:
            current.append(tok)
    clauses = []
    for group in groups:
        start = group[0][2] if group else len(text)
        shape = [k for k, _, _ in group]
        ok = (len(group) == 3 and shape[1] == "op" and shape[2] in ("word", "quoted")
              and (shape[0] == "quoted" or _NAME.match(group[0][1])))
        if not ok:
            snippet = text[start:].split("&")[0].strip() or "(nothing)"
            raise ConfigError(f"bad sweep pattern at character {start} ({snippet!r}): expected column op value, "
                              f"{example}.")
        column, op, (vkind, vtext, _) = group[0][1], group[1][1], group[2]
        column = column[1:-1] if shape[0] == "quoted" else column
        op = "=" if op == "==" else op
        if vkind == "quoted":
            values = (vtext[1:-1],)
        else:
            parts = vtext.split("|")
            if any(not p for p in parts):
                raise ConfigError(f"bad sweep pattern at character {start}: empty alternative in {vtext!r}.")
            values = tuple(_value(p, False) for p in parts)
        if len(values) > 1 and op not in ("=", "!="):
            raise ConfigError(f"bad sweep pattern at character {start}: alternatives a|b need = or !=, not {op}.")
        if op in (">", ">=", "<", "<=") and not isinstance(values[0], int | float):
            raise ConfigError(f"bad sweep pattern at character {start}: {column}{op}{vtext} compares with a "
                              "non-number.")
        clauses.append(Clause(column, op, values))
    return SweepPattern(tuple(clauses))


def case_pattern(features: pd.Series, contributions: pd.Series, *, category: str | None = "category",
                 max_signals: int = 2) -> SweepPattern:
    """The rule of a case's key elements: its category and its strongest present signals.

    A signal is a feature matching :data:`SIGNAL_FEATURES` (event-kind or keyword counts,
    streaks, the parties' past escalations) whose value is positive and whose SHAP
    contribution raises the case's risk; the ``max_signals`` largest become ``feature>0``.

    Parameters
    ----------
    features, contributions : Series
        The case's feature values and SHAP contributions, indexed by feature name.
    category : str or None, default="category"
        The category column (skipped when ``None`` or missing in ``features``).
    max_signals : int, default=2
    """
    clauses = []
    if category and category in features.index and pd.notna(features[category]):
        clauses.append(Clause(category, "=", (str(features[category]),)))
    names = [n for n in contributions.index if SIGNAL_FEATURES.match(str(n)) and n in features.index]
    if names:
        values = pd.to_numeric(features[names], errors="coerce").to_numpy(dtype=float)
        contrib = contributions[names].to_numpy(dtype=float)
        ok = (values > 0) & (contrib > 0)
        order = np.argsort(-np.where(ok, contrib, -np.inf), kind="stable")[: int(ok.sum())][:max_signals]
        clauses += [Clause(names[i], ">", (0,)) for i in order]
    if not clauses:
        raise DataError("the case has no category and no positive risk signal to build a rule from; "
                        "pass an explicit pattern.")
    return SweepPattern(tuple(clauses))


# ------------------------------------------------------------------------------------------
# inputs: features and contributions recomputed with the model


@dataclass
class SweepInputs:
    """Feature values and SHAP contributions of the open disputes (and of the case).

    Attributes
    ----------
    features : DataFrame
        Indexed by dispute id, the model's features (numeric as float32).
    contributions : DataFrame
        Same index, one float32 column per feature (SHAP, log-odds scale, no bias).
    case_id : str or None
        The ``like`` dispute, when it is not among the scored ones its row is appended.
    case_as_of : Timestamp or None
        When the case's features were computed (just before its escalation if it escalated).
    case_probability : float or None
        The case's calibrated probability at ``case_as_of``.
    base_value : float or None
        SHAP's expected value (log-odds): each row's contributions add up from it to the
        row's raw log-odds.
    """

    features: pd.DataFrame
    contributions: pd.DataFrame
    case_id: str | None = None
    case_as_of: pd.Timestamp | None = None
    case_probability: float | None = None
    base_value: float | None = None


def sweep_inputs(model, events: pd.DataFrame, scores, *, entities: pd.DataFrame | None = None,
                 like=None, as_of=None) -> SweepInputs:
    """Recompute the features and SHAP contributions a sweep needs.

    Parameters
    ----------
    model : RiskModel, Predictor, NightModels or str
        The model that produced the scores, taken as :func:`sweep` takes it
        (:class:`~riskmodel.ops.NightModels`): when ``scores`` is a night whose manifest
        records another model's fingerprint, the version the manifest records is used, and
        ``model`` stands in, with a warning, only when that version cannot be read (the
        contributions must be those of the model that gave the night's probabilities). A
        :class:`~riskmodel.ops.NightModels` already asked for the night answers without
        reading the version again.
    events : DataFrame or PreparedEvents
        The event log (at least up to the scores' ``as_of``; for a case that escalated
        later, up to its escalation).
    scores : DataFrame, NightlyOutput or path
        The open disputes to sweep (one night).
    entities : DataFrame, optional
        Needed by models trained with entities.
    like : str, optional
        A dispute to describe. If it is scored, its scored row is used; otherwise its
        features are computed as of its first outcome event (the moment before it
        escalated) or, without one, as of ``as_of``.
    as_of : timestamp, optional
        When an unscored ``like`` case without an outcome is described; default the
        scores' latest ``as_of``.

    Returns
    -------
    SweepInputs

    Raises
    ------
    DataError
        ``like`` is neither scored nor in the events; the model needs entities.
    """
    night = as_nightly(scores)
    rm = risk_model_of(NightModels.of(model).for_night(night, need="this sweep",
                                                      given_as="the model given as model="))
    schema = rm._schema()
    ent = schema.entity_col
    scores = night.scores
    if ent not in scores.columns:
        raise DataError(f"scores have no {ent!r} column; columns: {list(scores.columns)[:20]}.")
    if rm.features_.has_entities_ and entities is None:
        what = (f"this model was trained with an entities table (one row per dispute: "
                f"{schema.entity_feature_columns})")
        raise DataError(f"{what}; pass it as entities=...", cli=f"{what}; pass it with --entities PATH.")
    prepared = prepare_as_batch(events, schema)
    if entities is not None:  # the rows the night used: repeats and conflicts set aside
        require_columns(entities, [schema.entities_id], "entities", schema=schema, trained=True)
        entities = usable_entities(entities, schema)[0]
    cut = scores[[ent, "as_of"]].copy()
    cut[ent] = _ids_as_in(cut[ent], prepared.entity_ids)
    if len(cut) and not cut[ent].isin(prepared.entity_ids).any():
        what = (f"none of the night's disputes asked for (e.g. {format_examples(cut[ent].head(3))}) is in the "
                "events given; pass the event log the night scored")
        raise DataError(f"{what} as events=...", cli=f"{what} with --events PATH.")
    case_as_of = None
    if like is not None:
        like = str(like)
        in_scores = scores[ent].astype(str) == like
        if in_scores.any():
            case_as_of = pd.Timestamp(scores.loc[in_scores, "as_of"].iloc[0])
        else:
            ev = prepared.frame
            own = ev[ev[ent].astype(str) == like]
            if own.empty:
                raise DataError(f"dispute {like!r} is neither in the scores nor in the events; check the id.")
            outcome = own.loc[kind_in(own[schema.kind_col], schema.outcome_kinds), schema.time_col]
            fallback = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(scores["as_of"].max())
            case_as_of = pd.Timestamp(outcome.min()) if len(outcome) else fallback
            case_row = pd.DataFrame({ent: [own[ent].iloc[0]], "as_of": [case_as_of]})
            cut = pd.concat([cut, case_row.astype({ent: cut[ent].dtype})], ignore_index=True)
    X = rm.transform_features(prepared, cut, entities=entities, utc=True)  # the batch writes UTC
    shap = rm.explain(X)
    base_value = float(shap["bias"].iloc[0]) if len(shap) else None
    contrib = shap.drop(columns="bias").astype(np.float32)
    prob = rm.calibrator_.transform(rm.predict_raw(X))
    ids = cut[ent].astype(str).to_numpy()
    X.index = contrib.index = pd.Index(ids, name=ent)
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    X = X.astype(dict.fromkeys(numeric, np.float32))
    case_prob = float(prob[ids == like][0]) if like is not None else None
    return SweepInputs(features=X, contributions=contrib, case_id=like, case_as_of=case_as_of,
                       case_probability=case_prob, base_value=base_value)


def _ids_as_in(ids: pd.Series, event_ids) -> pd.Series:
    """The night's ids in the events' kind (:func:`~riskmodel.data.id_kind`) when one side
    holds them as numbers and the other as text (a night scored from parquet, explained with
    the CSV export of the same log): numbers as their decimal text, or text of whole numbers
    as integers."""
    kinds = (id_kind(ids), id_kind(event_ids))
    if kinds == ("number", "text"):
        return pd.Series(decimal_text(ids), index=ids.index, name=ids.name, dtype=object)
    if kinds == ("text", "number") and pd.api.types.is_integer_dtype(event_ids.dtype) and len(ids) \
            and ids.astype(str).str.fullmatch(r"-?\d+").all():
        return pd.Series(pd.to_numeric(ids.astype(str)), index=ids.index, name=ids.name)
    return ids


# ------------------------------------------------------------------------------------------
# the sweep


@dataclass
class SweepResult:
    """Matches of a sweep, as one work list per area.

    Attributes
    ----------
    pattern : SweepPattern or None
        The rule used (given or derived from the case).
    case : dict
        The case: id, as_of, probability, category, its rule, its top risk-raising
        contributions by feature (``top_contributions``) and as phrases (``drivers``:
        contribution, zh, en); empty for a pattern.
    matches : DataFrame
        One row per matching open dispute: area, ``rank`` within the area (by probability),
        id, probability, tier, ``by_rule``, ``similarity`` (cosine, NaN without a case),
        ``by_similarity``, reasons and the other score columns; sorted by area, rank.
    """

    pattern: SweepPattern | None
    case: dict = field(default_factory=dict)
    matches: pd.DataFrame = field(default_factory=pd.DataFrame)
    area: str | None = None
    #: The dispute id column of ``matches`` (the model's own).
    id_col: str = "dispute_id"

    def by_area(self) -> pd.DataFrame:
        """Matches per area: counts by tier and how they matched."""
        m = self.matches
        key = self.area if self.area and self.area in m.columns else None
        g = area_keys(m, key)
        tier = m["tier"].astype(object)
        table = pd.DataFrame({"area": g, "matches": 1, "red": tier == "red", "yellow": tier == "yellow",
                              "by_rule": m["by_rule"], "by_similarity": m["by_similarity"]})
        out = table.groupby("area", sort=True).sum().astype(int)
        out.index.name = key or "area"
        return out.sort_values(["red", "matches"], ascending=False, kind="stable").reset_index()

    def worklists(self) -> dict[str, pd.DataFrame]:
        """One frame per area, ranked by probability."""
        key = self.area if self.area and self.area in self.matches.columns else None
        if key is None:
            return {CITY: self.matches}
        g = area_keys(self.matches, key)
        return {str(k): part.reset_index(drop=True) for k, part in self.matches.groupby(g, sort=True)}


def _cosine(matrix: np.ndarray, vector: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(vector)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim = matrix @ vector / norms
    return np.where(norms > 0, sim, np.nan)


def sweep(
    scores,
    *,
    like=None,
    pattern: str | SweepPattern | None = None,
    model=None,
    events=None,
    entities=None,
    inputs: SweepInputs | None = None,
    method: str = "both",
    area: str | None = "auto",
    category: str | None = "auto",
    max_signals: int = 2,
    n_neighbours: int = 100,
    min_similarity: float = 0.7,
    same_category: bool = True,
    ignore: tuple[str, ...] | None = None,
) -> SweepResult:
    """Find the open disputes sharing a case's risk pattern, or an explicit pattern.

    Parameters
    ----------
    scores : DataFrame, NightlyOutput or path
        One night's scores: the open disputes to sweep.
    like : str, optional
        A dispute id (usually one that just escalated). Its rule (category + top signals,
        see :func:`case_pattern`) and its contribution vector define the sweep.
    pattern : str or SweepPattern, optional
        An explicit rule (:func:`parse_pattern`); with ``like`` it replaces the derived rule.
        Columns of the scores (``category``, ``station``, ``tier``, ``probability``) need
        nothing else; feature columns need the model and events.
    model, events, entities : optional
        The model (a URI or a folder is loaded), event log and entities, to recompute features and contributions
        (:func:`sweep_inputs`); or pass ``inputs`` computed once for several sweeps. The
        features are those of the model that scored the night, as :func:`~riskmodel.explain`
        takes it (:class:`~riskmodel.ops.NightModels`): ``model`` when the night's manifest
        records its fingerprint (or no model), else the version the manifest records; ``model``
        stands in, with a warning, only when that version cannot be read; that version is read
        once. Without ``model`` (or ``events``) they are read as :func:`~riskmodel.explain`
        reads them: the version and the event log the night's manifest records; paths are read
        as the nightly run read them.
    method : {"both", "rule", "similar"}, default="both"
        With ``like``: rule matches, similarity matches, or their union.
    area : str or None, default="auto"
        Column of the per-area work lists; ``"auto"``: the night's own (the model's first
        group column, e.g. ``station``), city-wide (``None``) when it has none.
    category : str or None, default="auto"
        Category column used by derived rules and ``same_category``; ``"auto"``:
        ``category`` if the scores have it, else the model's first categorical entity
        column other than the area, else none.
    max_signals : int, default=2
        Signals in a derived rule.
    n_neighbours : int, default=100
        At most this many nearest neighbours by similarity ...
    min_similarity : float, default=0.7
        ... with a cosine similarity of at least this. The similarity compares the
        risk-raising parts of the contribution vectors (negative contributions set to 0):
        what drives the case's risk, not what is absent. On simulated data this matched
        the mechanism's signals as precisely as the full vectors, with more neighbours.
    same_category : bool, default=True
        Similar disputes must also share the case's category (the first key element).
    ignore : tuple of str, optional
        Features left out of the similarity; default the area feature and the ``ctx_``
        (area context) features, since a sweep looks across the whole city.

    Returns
    -------
    SweepResult

    Raises
    ------
    ConfigError
        Neither or a bad ``pattern``, unknown ``method``, feature inputs missing.
    DataError
        Unknown ``like`` id, a pattern column that does not exist.
    """
    if like is None and pattern is None:
        raise ConfigError("pass like=<dispute id> or pattern=<rule> (or both).")
    if method not in ("both", "rule", "similar"):
        raise ConfigError(f"method must be both, rule or similar, got {method!r}.")
    if not 0 <= min_similarity <= 1 or n_neighbours < 1:
        raise ConfigError("min_similarity must be in [0, 1] and n_neighbours positive.")
    night = as_nightly(scores)
    frame = night.scores.reset_index(drop=True)
    if isinstance(pattern, str):
        pattern = parse_pattern(pattern)
    needs_features = like is not None or any(c not in frame.columns for c in (pattern.columns if pattern else []))
    recompute = needs_features and inputs is None
    if recompute:
        if model is None and not night.model_uri:  # nothing names the model that scored the night
            what = (f"sweeping like={like!r}" if like is not None else
                    f"pattern column(s) {[c for c in pattern.columns if c not in frame.columns]}")
            usable = f"Score columns usable without them: {list(frame.columns)}."
            raise ConfigError(f"{what} needs the disputes' features: pass model= and events=, or "
                              f"inputs=sweep_inputs(...). {usable}",
                              cli=f"{what} needs the disputes' features: pass --model and --events. {usable}")
        # the model that scored the night, read once (the events and entities as explain reads them)
        models = NightModels(model)
        model, _, events, entities = night_inputs(night, models, events, entities, need="this sweep",
                                                  given_as="the model given as model=")
        inputs = sweep_inputs(models, events, night, entities=entities, like=like)
    ent = night.id_col
    if (inputs is None or recompute) and model is not None:
        ent = risk_model_of(model)._schema().entity_col
    if ent is None or ent not in frame.columns:
        raise DataError(f"scores have no dispute id column; columns: {list(frame.columns)[:20]}.")
    area = resolve_area(area, [night], frame)
    if category == "auto":
        schema = night.schema if night.schema is not None else (risk_model_of(model)._schema() if model is not None else None)
        options = ["category", *(schema.entity_categorical_cols if schema is not None else ())]
        category = next((c for c in options if c in frame.columns and c != area), None)

    ids = frame[ent].astype(str).to_numpy()
    candidates = frame
    if inputs is not None:
        extra = [c for c in inputs.features.columns if c not in frame.columns]
        feats = inputs.features.reindex(ids)[extra].reset_index(drop=True)
        candidates = pd.concat([frame, feats], axis=1)

    case: dict = {}
    sim = np.full(len(frame), np.nan)
    if like is not None:
        like = str(like)
        if like not in inputs.features.index:
            raise DataError(f"dispute {like!r} has no features in inputs; recompute them with "
                            f"sweep_inputs(..., like={like!r}).")
        case_x = inputs.features.loc[like]
        case_c = inputs.contributions.loc[like]
        if isinstance(case_x, pd.DataFrame):
            case_x, case_c = case_x.iloc[-1], case_c.iloc[-1]
        in_scores = ids == like
        case_cat = frame.loc[in_scores, category].iloc[0] if category in frame.columns and in_scores.any() \
            else case_x.get(category)
        if category is not None and category in candidates.columns and case_cat is not None:
            case_x = case_x.copy()
            case_x[category] = case_cat
        derived = case_pattern(case_x, case_c, category=category, max_signals=max_signals)
        if pattern is None:
            pattern = derived
        skip = set(ignore) if ignore is not None else {c for c in case_c.index
                                                      if c == area or str(c).startswith("ctx_")}
        cols = [c for c in inputs.contributions.columns if c not in skip]
        matrix = np.clip(inputs.contributions.reindex(ids)[cols].to_numpy(dtype=np.float32), 0, None)
        sim = _cosine(matrix, np.clip(case_c[cols].to_numpy(dtype=np.float32), 0, None)).astype(float)
        if same_category and category in candidates.columns and case_cat is not None:
            sim[(candidates[category].astype(object).astype(str) != str(case_cat)).to_numpy()] = np.nan
        prob = inputs.case_probability
        if in_scores.any():
            prob = float(frame.loc[in_scores, "probability"].iloc[0])
        top = case_c[[c for c in case_c.index if c not in skip]].sort_values(ascending=False)
        top = top.head(5)[top.head(5) > 0]
        from ..model import ReasonWriter

        writer = risk_model_of(model).reason_writer_ if model is not None else ReasonWriter.for_names(list(case_c.index))
        case = {"id": like, "as_of": inputs.case_as_of, "probability": prob, "category": case_cat,
                "rule": str(derived), "top_contributions": {k: float(v) for k, v in top.items()},
                "drivers": [(float(v), *writer.phrase(k, case_x[k])) for k, v in top.items()]}

    if pattern is not None and model is not None:
        pattern = _by_kind_names(pattern, candidates.columns, risk_model_of(model).features_.kind_slugs_)
    by_rule = pattern.mask(candidates) if pattern is not None and method != "similar" else np.zeros(len(frame), bool)
    by_sim = np.zeros(len(frame), dtype=bool)
    if like is not None and method != "rule":
        eligible = np.flatnonzero((sim >= min_similarity) & (ids != like))
        nearest = eligible[np.argsort(-sim[eligible], kind="stable")[:n_neighbours]]
        by_sim[nearest] = True
    if like is not None:
        by_rule &= ids != like
    keep = by_rule | by_sim
    out = frame[keep].copy()
    out["by_rule"], out["by_similarity"], out["similarity"] = by_rule[keep], by_sim[keep], sim[keep]
    key = area if area else None
    out = out.assign(_g=area_keys(out, key)).sort_values(["_g", "probability", ent], ascending=[True, False, True], kind="stable")
    out["rank"] = out.groupby("_g", sort=False).cumcount() + 1
    out = out.drop(columns="_g")
    lead = [c for c in (key, "rank", ent, "probability", "tier", category, "by_rule", "by_similarity", "similarity",
                        "reasons") if c and c in out.columns]
    out = out[lead + [c for c in out.columns if c not in lead]].reset_index(drop=True)
    return SweepResult(pattern=pattern, case=case, matches=out, area=area, id_col=ent)
