"""The outcome audit (复盘): did the nightly tiers see the escalations coming?

Given the escalations observed later (an event log with outcome events, or a table of
escalations) and the nightly score outputs, :func:`audit_outcomes` finds for every
escalation the tier its dispute had when it was last scored before escalating (a night at
the escalation's own time counts: it saw only the events before it, as the labels do), the share
caught in red / yellow, how early the dispute was first flagged, and the missed cases with
their reasons (recomputed with the model for blue cases, whose reasons the batch skips).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .._errors import DataError, format_examples
from ..batch import as_nightly_list, dedupe_nights, usable_entities
from ..data import duration_text, kind_in, parse_duration, parse_times
from ._night import NightModels, prepare_as_batch, risk_model_of

__all__ = ["AuditResult", "audit_outcomes", "escalations_from"]

_STATUS = ("red", "yellow", "blue", "not scored")


def escalations_from(outcomes: pd.DataFrame, *, id_col: str = "dispute_id", time_col: str | None = None,
                     kind_col: str = "kind", outcome_kinds: Sequence[str] = ("criminal_case", "injury"),
                     ) -> pd.DataFrame:
    """First escalation per dispute, from an event log or a table of escalations.

    Parameters
    ----------
    outcomes : DataFrame
        Either an event log (it has ``kind_col``: rows whose kind is in ``outcome_kinds``
        are escalations) or one row per escalation (every row is one).
    id_col : str, default="dispute_id"
    time_col : str, optional
        Default: ``escalated_at`` if present, else ``time``.
    kind_col : str, default="kind"
    outcome_kinds : sequence of str, default=("criminal_case", "injury")

    Returns
    -------
    DataFrame
        ``id_col``, ``escalated_at`` (earliest per dispute), ``outcome_kind`` (or None);
        sorted by time.

    Raises
    ------
    DataError
        Missing columns, unparseable times.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({"dispute_id": ["A", "A", "B", "A"], "kind": ["threat", "injury", "call", "criminal_case"],
    ...                     "time": ["2024-06-02", "2024-06-05", "2024-06-03", "2024-06-09"]})
    >>> escalations_from(log)
      dispute_id escalated_at outcome_kind
    0          A   2024-06-05       injury
    >>> escalations_from(log[["dispute_id"]])
    Traceback (most recent call last):
    ...
    riskmodel._errors.DataError: outcomes need a time column ('escalated_at' or 'time'); they have ['dispute_id']. Pass time_col=...
    """
    if not isinstance(outcomes, pd.DataFrame):
        raise DataError(f"outcomes must be a DataFrame, got {type(outcomes).__name__}.")
    if id_col not in outcomes.columns:
        raise DataError(f"outcomes have no id column {id_col!r}; they have {list(outcomes.columns)[:20]}.")
    if time_col is None:
        time_col = next((c for c in ("escalated_at", "time") if c in outcomes.columns), None)
    if time_col is None or time_col not in outcomes.columns:
        raise DataError(f"outcomes need a time column ({time_col!r} or 'escalated_at' or 'time'); they have "
                        f"{list(outcomes.columns)[:20]}. Pass time_col=..." if time_col else
                        f"outcomes need a time column ('escalated_at' or 'time'); they have "
                        f"{list(outcomes.columns)[:20]}. Pass time_col=...")
    rows = outcomes
    kind = None
    if kind_col in outcomes.columns:
        is_outcome = kind_in(outcomes[kind_col], outcome_kinds)  # padded kinds trimmed, as in training
        rows = outcomes[is_outcome]
        kind = rows[kind_col].astype(object)
    times, _ = parse_times(rows[time_col], time_col, "outcomes")  # the events' own time rules (UTC when aware)
    bad = times.isna() & rows[time_col].notna()
    if bad.any():
        raise DataError(f"outcomes: {int(bad.sum())} unparseable time(s) in {time_col!r}, e.g. "
                        f"{format_examples(rows.loc[bad, time_col].unique())}.")
    out = pd.DataFrame({id_col: rows[id_col].astype(object).astype(str).to_numpy(),
                        "escalated_at": times.to_numpy().astype("datetime64[ns]"),
                        "outcome_kind": kind.to_numpy() if kind is not None else None})
    out = out[out["escalated_at"].notna() & rows[id_col].notna().to_numpy()]
    out = out.sort_values(["escalated_at", id_col], kind="stable").drop_duplicates(id_col)
    return out.reset_index(drop=True)


@dataclass
class AuditResult:
    """Outcome audit of a period.

    Attributes
    ----------
    cases : DataFrame
        One row per audited escalation: id, ``escalated_at``, ``status`` (``red``,
        ``yellow``, ``blue`` or ``not scored``), ``caught``, ``last_scored_as_of``,
        ``probability``, ``reasons``, ``first_flagged_as_of``, ``lead_days`` (escalation
        minus first red/yellow score within the horizon), ``not_scored_reason``, and the
        area / category columns of the last score.
    summary : dict
        ``escalations``, ``scored``, ``red``, ``yellow``, ``blue``, ``not_scored``,
        ``caught`` (red + yellow), ``caught_share`` (of all audited escalations),
        ``caught_share_scored`` (of those scored), ``red_share``, ``median_lead_days``,
        ``period``, ``horizon``, ``excluded_before_first_night``, ``excluded_after_horizon``.
    """

    cases: pd.DataFrame
    summary: dict = field(default_factory=dict)
    #: The dispute id column of ``cases`` (the model's own).
    id_col: str = "dispute_id"
    #: The area column of ``cases``, if any.
    area: str | None = None

    @property
    def missed(self) -> pd.DataFrame:
        """Escalations that were blue or not scored when last seen, most recent first."""
        miss = self.cases[~self.cases["caught"]]
        return miss.sort_values("escalated_at", ascending=False, kind="stable").reset_index(drop=True)


def _explain_missed(cases: pd.DataFrame, model, events, entities, id_col: str, outputs) -> pd.Series:
    """Reasons of the missed, scored cases at their last score, recomputed with the model that
    scored that night (:class:`~riskmodel.ops.NightModels`)."""
    need = (cases["status"] == "blue") & (cases["reasons"].fillna("") == "")
    if not need.any():
        return cases["reasons"]
    nights = {pd.Timestamp(o.as_of).as_unit("ns"): o for o in outputs if o.as_of is not None}
    models = NightModels.of(model)
    # the missed cases' nights only: a night without one has no model to read
    scorers = cases.loc[need, "last_scored_as_of"].map(
        lambda t: models.for_night(nights.get(t), need="explaining the missed cases"))
    which = scorers.map(id)
    reasons, prepared = cases["reasons"].copy(), {}
    for key in pd.unique(which):
        rows = which.index[(which == key).to_numpy()]
        rm = risk_model_of(scorers[rows[0]])
        schema = rm._schema()
        if schema not in prepared:  # the log screened once per schema
            prepared[schema] = prepare_as_batch(events, schema)
        cut = pd.DataFrame({schema.entity_col: cases.loc[rows, id_col].to_numpy(),
                            "as_of": cases.loc[rows, "last_scored_as_of"].to_numpy()})
        cut[schema.entity_col] = cut[schema.entity_col].astype(prepared[schema].frame[schema.entity_col].dtype)
        X = rm.transform_features(prepared[schema], cut, entities=entities, utc=True)  # the batch writes UTC
        reasons.loc[rows] = rm.score_features(X, cut, reasons="all")["reasons"].to_numpy()
    return reasons


def audit_outcomes(
    nights,
    outcomes: pd.DataFrame,
    *,
    horizon: str | pd.Timedelta = "90D",
    id_col: str | None = None,
    time_col: str | None = None,
    kind_col: str | None = None,
    outcome_kinds: Sequence[str] | None = None,
    area: str | None = "auto",
    model=None,
    events: pd.DataFrame | None = None,
    entities: pd.DataFrame | None = None,
) -> AuditResult:
    """For each escalation, the tier its dispute had when last scored at or before it (a
    score at ``as_of`` saw the events before ``as_of`` only, and answers for an escalation in
    ``[as_of, as_of + horizon)``, as :func:`~riskmodel.make_labels` labels it).

    Parameters
    ----------
    nights : path, NightlyOutput, DataFrame or a sequence of them
        The nightly score outputs of the period (folders also give the ``not_scored``
        reasons).
    outcomes : DataFrame
        Later-observed outcomes: an event log or a table of escalations
        (see :func:`escalations_from`).
    horizon : str or Timedelta, default="90D"
        A score counts for an escalation less than this long after it (the model's horizon).
        Escalations from the last night + ``horizon`` on are out of the audited period.
    id_col, time_col, kind_col, outcome_kinds
        Columns of ``outcomes`` (see :func:`escalations_from`) and the outcome kinds. Default:
        the model's own, from the nights' manifests (``entity_col``, ``time_col`` or
        ``escalated_at``, ``kind_col``, ``outcome_kinds``); without a manifest,
        ``dispute_id``, ``escalated_at`` / ``time``, ``kind`` and ``criminal_case`` /
        ``injury``. The id column of the scores is the nights' own.
    area : str or None, default="auto"
        The area column copied into the cases (the nights' own for ``"auto"``).
    model, events, entities : optional
        With a model and the event log, the missed blue cases get their reasons
        recomputed (the batch writes reasons for red and yellow only), each with the model
        that scored its night (:class:`~riskmodel.ops.NightModels`; a NightModels given is
        asked as it is, the versions it read not read again).

    Returns
    -------
    AuditResult

    Raises
    ------
    DataError
        Missing folders or columns; ConfigError for a bad horizon.
    """
    horizon = parse_duration(horizon, "horizon")
    if entities is not None and not isinstance(entities, pd.DataFrame):
        raise DataError(f"entities must be a DataFrame (riskmodel.lifecycle.read_table reads a file as the batch "
                        f"does), got {type(entities).__name__}.")
    outputs = as_nightly_list(nights)
    if not outputs:
        raise DataError("no score outputs given; pass the nightly `riskmodel score` folders of the period.")
    scores, outputs = dedupe_nights(outputs)
    schema = next((o.schema for o in outputs if o.schema is not None), None)
    score_id = next((o.id_col for o in outputs if o.id_col is not None), None)
    if score_id is None or score_id not in scores.columns:
        raise DataError(f"scores have no dispute id column; columns: {list(scores.columns)[:20]}. Pass the "
                        "`riskmodel score` output folders (their manifest names the id column).")
    id_col = id_col or (schema.entity_col if schema is not None else score_id)
    if schema is not None:
        if entities is not None and schema.entities_id in entities.columns:  # the rows the nights used
            entities = usable_entities(entities, schema)[0]
        if time_col is None and "escalated_at" not in getattr(outcomes, "columns", []):
            time_col = schema.time_col
        kind_col = kind_col or schema.kind_col
        outcome_kinds = tuple(outcome_kinds or schema.outcome_kinds)
    kind_col = kind_col or "kind"
    outcome_kinds = tuple(outcome_kinds or ("criminal_case", "injury"))
    area = next((o.area for o in outputs if o.area is not None), None) if area == "auto" else area
    if score_id != id_col:
        scores = scores.rename(columns={score_id: id_col})
    scores = scores.assign(**{id_col: scores[id_col].astype(object).astype(str),
                              "as_of": scores["as_of"].astype("datetime64[ns]")})
    esc = escalations_from(outcomes, id_col=id_col, time_col=time_col, kind_col=kind_col,
                           outcome_kinds=outcome_kinds)
    first, last = scores["as_of"].min(), scores["as_of"].max()
    # a score at as_of counts for an escalation in [as_of, as_of + horizon), as the labels do (the
    # score saw only the events before as_of: an escalation at as_of is one it had to foresee)
    early = esc["escalated_at"] < first
    late = esc["escalated_at"] >= last + horizon
    esc = esc[~early & ~late].reset_index(drop=True)

    # last score at or before the escalation, within the horizon
    right = scores.sort_values("as_of", kind="stable").rename(columns={"as_of": "last_scored_as_of"})
    right["_t"] = right["last_scored_as_of"]
    left = esc.sort_values("escalated_at", kind="stable")
    merged = pd.merge_asof(left, right, left_on="escalated_at", right_on="_t", by=id_col, direction="backward")
    stale = merged["last_scored_as_of"].notna() & (merged["escalated_at"] - merged["last_scored_as_of"] >= horizon)
    score_cols = [c for c in right.columns if c not in (id_col, "_t")]
    merged.loc[stale, score_cols] = np.nan
    tier = merged.pop("tier").astype(object)
    merged = merged.drop(columns="_t")
    merged["status"] = pd.Categorical(tier.where(tier.notna(), "not scored"), categories=list(_STATUS))
    merged["caught"] = merged["status"].isin(["red", "yellow"]).to_numpy()

    # first red/yellow score within the horizon before the escalation: how early it was seen
    flagged = scores.loc[scores["tier"].isin(["red", "yellow"]), [id_col, "as_of"]]
    pairs = flagged.merge(esc[[id_col, "escalated_at"]], on=id_col)
    pairs = pairs[(pairs["as_of"] <= pairs["escalated_at"]) & (pairs["escalated_at"] - pairs["as_of"] < horizon)]
    first_flag = pairs.groupby(id_col)["as_of"].min().rename("first_flagged_as_of")
    merged = merged.merge(first_flag, left_on=id_col, right_index=True, how="left")
    merged["lead_days"] = (merged["escalated_at"] - merged["first_flagged_as_of"]) / pd.Timedelta(days=1)

    # why the not-scored ones were not scored: the last night before the escalation
    ns_frames = [o.not_scored.rename(columns={o.id_col: id_col}).assign(as_of=pd.Timestamp(o.as_of).as_unit("ns"))
                 for o in outputs
                 if o.not_scored is not None and len(o.not_scored) and o.as_of is not None
                 and {o.id_col, "reason"} <= set(o.not_scored.columns)]
    merged["not_scored_reason"] = None
    if ns_frames:
        ns = pd.concat(ns_frames, ignore_index=True)
        ns = ns.assign(**{id_col: ns[id_col].astype(object).astype(str),
                          "as_of": ns["as_of"].astype("datetime64[ns]")}).sort_values("as_of", kind="stable")
        ns = ns.rename(columns={"reason": "_reason", "as_of": "_ns_as_of"})
        why = pd.merge_asof(merged[[id_col, "escalated_at"]].reset_index().sort_values("escalated_at"),
                            ns[[id_col, "_ns_as_of", "_reason"]], left_on="escalated_at", right_on="_ns_as_of",
                            by=id_col, direction="backward").set_index("index")
        merged["not_scored_reason"] = why["_reason"].reindex(merged.index).where(
            merged["status"] == "not scored").to_numpy()
    unseen = (merged["status"] == "not scored") & merged["not_scored_reason"].isna()
    merged.loc[unseen, "not_scored_reason"] = "not in any nightly output before it escalated"
    merged["reasons"] = merged["reasons"].fillna("") if "reasons" in merged.columns else ""
    if model is not None and events is not None:
        merged["reasons"] = _explain_missed(merged, model, events, entities, id_col, outputs)
    ent_id = schema.entities_id if schema is not None and entities is not None and \
        schema.entities_id in entities.columns else id_col
    if entities is not None and ent_id in entities.columns:
        attrs = entities.assign(**{ent_id: entities[ent_id].astype(object).astype(str)}).set_index(ent_id)
        attrs = attrs[~attrs.index.duplicated(keep=False)]  # an id of several rows: attributes unknown
        for col in dict.fromkeys(c for c in (area, "category") if c):
            if col in attrs.columns:
                fill = merged[id_col].map(attrs[col].astype(object))
                merged[col] = merged[col].astype(object).fillna(fill) if col in merged.columns else fill

    lead = [id_col, "escalated_at", "outcome_kind", "status", "caught", "last_scored_as_of", "probability",
            *([area] if area else []), "category", "first_flagged_as_of", "lead_days", "reasons", "not_scored_reason"]
    lead = list(dict.fromkeys(lead))
    cols = [c for c in lead if c in merged.columns] + [c for c in merged.columns if c not in lead]
    cases = merged[cols].sort_values(["escalated_at", id_col], kind="stable").reset_index(drop=True)

    counts = cases["status"].value_counts()
    n = len(cases)
    scored = n - int(counts.get("not scored", 0))
    caught = int(cases["caught"].sum())
    summary = {
        "escalations": n,
        "scored": scored,
        **{s.replace(" ", "_"): int(counts.get(s, 0)) for s in _STATUS},
        "caught": caught,
        "caught_share": caught / n if n else float("nan"),
        "caught_share_scored": caught / scored if scored else float("nan"),
        "red_share": int(counts.get("red", 0)) / n if n else float("nan"),
        "median_lead_days": float(cases["lead_days"].median()) if cases["lead_days"].notna().any() else float("nan"),
        "period": [str(first), str(last + horizon)],
        "horizon": duration_text(horizon),
        "nights": len(outputs) if len(outputs) > 1 else int(scores["as_of"].nunique()),
        "excluded_before_first_night": int(early.sum()),
        "excluded_after_horizon": int(late.sum()),
    }
    return AuditResult(cases=cases, summary=summary, id_col=id_col, area=area)
