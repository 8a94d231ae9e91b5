"""Explain one dispute: why it has tonight's tier, in words a station chief can read.

:func:`explain` takes a night's scores, the model and the event log and gives an
:class:`Explanation`: the dispute's events up to ``as_of``, its probability, its tier and
the thresholds that tier had tonight, its context (station, category, ...) and every
contribution behind the probability as a phrase in Chinese and English, with the reasons
the work list shows marked. :meth:`Explanation.plot` draws the contributions as a waterfall
above the timeline; :meth:`Explanation.to_text` and :meth:`Explanation.to_html` render it
for a terminal and for the nightly report.

The features and SHAP contributions are recomputed with the model on the event log, as
the sweep does (:func:`~riskmodel.ops.sweep_inputs`): the scores do not store them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .._errors import ConfigError, DataError
from ..batch import as_nightly
from ..evaluation import TIER_COLOURS, finish_figure, has_cjk_font, new_figure
from ..model import UNKNOWN_AREA, model_facts
from ._html import esc, page, png_img
from ._legend import TIER_WORDS, horizon_words, p_meaning, tier_thresholds
from ._night import model_label, night_inputs, prepare_as_batch, risk_model_of
from ._sweep import sweep_inputs

__all__ = ["Explanation", "explain"]

#: Roles of a contribution: a reason the work list gives, context shown beside the case,
#: or another feature raising or lowering the risk.
ROLES = ("reason", "context", "raises risk", "lowers risk")


@dataclass
class Explanation:
    """One dispute explained (see :func:`explain`).

    Attributes
    ----------
    dispute_id : str
    as_of : Timestamp
        The moment it was scored (features see only events strictly before it).
    probability : float
        Calibrated chance of escalation within the horizon.
    tier : str
    scored : bool
        Whether the dispute is among the night's scores (else it is described as of the
        night, or just before it escalated, and its tier is the model's policy).
    note : str
        Why it was not scored tonight, when it was not.
    thresholds : dict
        ``red``, ``yellow``: the probability thresholds in effect tonight; ``source``:
        ``"model"`` (the model's cut-offs, which tonight's tiers follow) or ``"tonight"``
        (tiers set otherwise, e.g. per station: the lowest ``p`` that got each tier
        ``where``, the dispute's area, ``"(unknown)"`` for the disputes with none, or the
        city); ``model``: the cut-offs the model set at fit.
    reasons : list of (zh, en)
        The reasons, as the work list shows them (rules first).
    contributions : DataFrame
        One row per feature with a non-zero contribution, largest first: ``feature``,
        ``value``, ``contribution`` (SHAP, log-odds), ``role`` (:data:`ROLES`), ``zh``, ``en``.
    base_value : float
        SHAP's expected value (log-odds): contributions add up from it to ``raw_log_odds``.
    raw_log_odds : float
        The model's score before calibration.
    context : DataFrame
        The context features' values and phrases (``feature``, ``value``, ``zh``, ``en``).
    timeline : DataFrame
        The dispute's events before ``as_of``: time, kind, ``kind_zh``, ``kind_en`` and the
        narrative / party columns when the schema has them.
    horizon : str or None
        E.g. ``"90 days"``.
    model : str
        The model in words: "NAME version N", else the run or folder it was loaded from.
    """

    dispute_id: str
    as_of: pd.Timestamp
    probability: float
    tier: str
    scored: bool
    thresholds: dict
    reasons: list
    contributions: pd.DataFrame
    base_value: float
    raw_log_odds: float
    context: pd.DataFrame
    timeline: pd.DataFrame
    horizon: str | None = None
    model: str = ""
    note: str = ""
    overrides: list = field(default_factory=list)
    time_col: str = "time"
    kind_col: str = "kind"
    utc: bool = False  #: the times are UTC (the events' times carried a timezone, converted to UTC)

    # ------------------------------------------------------------------------------------
    # words

    def tier_sentence(self) -> str:
        """Its tier and the threshold that tier had tonight, in one sentence."""
        th = self.thresholds
        red, yellow = th.get("red"), th.get("yellow")
        how = ("the model's cut-offs, which tonight's tiers follow" if th.get("source") == "model" else
               f"the lowest p that got each tier tonight in {th.get('where', 'the city')}")
        p = self.probability
        if self.overrides:
            return f"{self.tier} by rule ({', '.join(self.overrides)}), whatever its p = {p:.3f}."
        parts = []
        if red is not None:
            parts.append(f"red from p ≥ {red:.3f}")
        if yellow is not None:
            parts.append(f"yellow from p ≥ {yellow:.3f}")
        def by(amount: float) -> str:
            return f"{amount:.3f}" if amount >= 0.001 else "less than 0.001"

        if self.tier == "red" and red is not None:
            gap = f"{by(p - red)} above the red threshold"
        elif self.tier == "yellow" and red is not None:
            gap = f"{by(red - p)} below the red threshold"
        elif self.tier == "yellow" and yellow is not None:  # no red tonight in its area
            gap = f"{by(p - yellow)} above the yellow threshold"
        elif self.tier == "blue" and yellow is not None:
            gap = f"{by(yellow - p)} below the yellow threshold"
        else:
            gap = ""
        none = (f"no dispute got red or yellow tonight in {th.get('where', 'the city')}."
                if th.get("source") == "tonight" else "no thresholds known.")
        return (f"{self.tier}: p = {p:.3f}" + (f", {gap}" if gap else "") + "; "
                + (", ".join(parts) + f" ({how})." if parts else none))

    def to_text(self, *, max_contributions: int = 15, max_events: int = 25) -> str:
        """A plain-text explanation for a terminal (Chinese and English)."""
        zh_tier = TIER_WORDS.get(self.tier, ("", ""))[0]
        when = self.as_of.strftime("%Y-%m-%d %H:%M") + (" UTC" if self.utc else "")
        lines = [f"Dispute {self.dispute_id} as of {when}: {self.tier.upper()} ({zh_tier}), p = {self.probability:.3f}"
                 + (f"  [model {self.model}]" if self.model else "")]
        if self.note:
            lines.append(f"  note: {self.note}")
        lines.append("  " + self.tier_sentence())
        lines.append("  " + p_meaning(self.horizon))
        if len(self.context):
            lines.append("Context 背景 (shown beside the case, not reasons):")
            lines += [f"  - {z} / {e}" for z, e in zip(self.context["zh"], self.context["en"], strict=True)]
        lines.append("Reasons 原因 (as on the work list):")
        lines += [f"  {i}. {z} / {e}" for i, (z, e) in enumerate(self.reasons, 1)] or ["  (none)"]
        c = self.contributions
        shown = c.head(max_contributions)
        lines.append(f"Every contribution ({len(c)}; log-odds, + raises the risk, − lowers it; largest "
                     f"{len(shown)} shown):")
        for row in shown.itertuples():
            lines.append(f"  {row.contribution:+.2f}  {row.role:<11} {row.zh} / {row.en}")
        rest = c["contribution"].iloc[len(shown):].sum()
        if len(c) > len(shown):
            lines.append(f"  {rest:+.2f}  {'':<11} the other {len(c) - len(shown)} features together")
        lines.append(f"  base value {self.base_value:+.2f} (an average dispute) + contributions = "
                     f"{self.raw_log_odds:+.2f} log-odds -> p = {self.probability:.3f} after calibration")
        t = self.timeline
        lines.append(f"Timeline 事件时间线 ({len(t)} event(s) before {when}"
                     + (f"; the last {max_events} shown" if len(t) > max_events else "")
                     + ("; times in UTC" if self.utc else "") + "):")
        for row in t.tail(max_events).itertuples(index=False):
            d = row._asdict()
            extra = "  " + str(d["narrative"]) if "narrative" in d and pd.notna(d["narrative"]) else ""
            lines.append(f"  {pd.Timestamp(d['time']):%Y-%m-%d %H:%M}  {d['kind_zh']} / {d['kind_en']}{extra}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------
    # plot

    def plot(self, *, max_bars: int = 10, lang: str = "auto") -> Figure:
        """The contributions as a waterfall (base value to the dispute's score) above its
        timeline. ``lang``: ``"both"``, ``"en"`` or ``"auto"`` (both when a Chinese font
        is installed)."""
        if lang not in ("auto", "both", "en"):
            raise ConfigError(f"lang must be auto, both or en, got {lang!r}.")
        both = lang == "both" or (lang == "auto" and has_cjk_font())
        c = self.contributions
        shown = c.head(max_bars)
        labels = [(f"{z}\n{e}" if both else e) for z, e in zip(shown["zh"], shown["en"], strict=True)]
        values = shown["contribution"].to_numpy(dtype=float)
        roles = shown["role"].tolist()
        if len(c) > len(shown):
            labels.append(f"其他{len(c) - len(shown)}项\n{len(c) - len(shown)} other features" if both
                          else f"{len(c) - len(shown)} other features")
            values = np.append(values, c["contribution"].iloc[len(shown):].sum())
            roles.append("other")
        n = len(values)
        line_h = 0.42 if both else 0.3
        fig = new_figure(9.0, 1.2 + line_h * max(n, 1) + 1.8)
        grid = fig.add_gridspec(2, 1, height_ratios=[max(n, 1) * line_h + 0.8, 1.8])
        ax = fig.add_subplot(grid[0])
        start = self.base_value + np.r_[0.0, np.cumsum(values)[:-1]] if n else np.zeros(0)
        colours = ["#9e9e9e" if r in ("context", "other") else ("#d62728" if v > 0 else "#1f77b4")
                   for r, v in zip(roles, values, strict=True)]
        y = np.arange(n)[::-1]
        ax.barh(y, values, left=start, color=colours, height=0.6,
                hatch=None, edgecolor=["#555555" if r == "reason" else "none" for r in roles], linewidth=1.2)
        for yi, s, v in zip(y, start, values, strict=True):
            ax.text(s + v + (0.02 if v >= 0 else -0.02), yi, f"{v:+.2f}", va="center",
                    ha="left" if v >= 0 else "right", fontsize=7)
        ax.set_yticks(y, labels=labels, fontsize=7)
        ax.axvline(self.base_value, color="#777777", lw=0.8, ls=":")
        ax.axvline(self.raw_log_odds, color=TIER_COLOURS.get(self.tier, "black"), lw=1.5)
        ax.set_xlabel("log-odds (the model's score before calibration): red bars raise the risk, blue lower it, "
                      "grey = context, or the other features together; outlined = a reason", fontsize=7)
        ax.set_title(f"{self.dispute_id} as of {self.as_of:%Y-%m-%d}: {self.tier} ({TIER_WORDS[self.tier][0]}), "
                     f"p = {self.probability:.3f}" + (f" within {self.horizon}" if self.horizon else "")
                     + f" (score {self.raw_log_odds:+.2f}, the solid line)", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        lo = min([self.base_value, self.raw_log_odds, *(start + np.minimum(values, 0))])
        hi = max([self.base_value, self.raw_log_odds, *(start + np.maximum(values, 0))])
        pad = 0.12 * (hi - lo or 1.0)
        ax.set_xlim(lo - pad, hi + pad)

        tl = fig.add_subplot(grid[1])
        t = self.timeline
        if len(t):
            kinds = list(dict.fromkeys(t["kind_en"][::-1]))[::-1]
            row_of = {k: i for i, k in enumerate(kinds)}
            times = pd.to_datetime(t["time"])
            tl.scatter(times, [row_of[k] for k in t["kind_en"]], s=18, color="#444444", zorder=3)
            names = dict(zip(t["kind_en"], t["kind_zh"], strict=False))
            # an unlabelled kind's Chinese name is its quoted English one: show it once
            tl.set_yticks(range(len(kinds)), fontsize=7, labels=[
                f"{names[k]} {k}" if both and names[k].strip("「」") != k else k for k in kinds])
            tl.set_ylim(-0.7, len(kinds) - 0.3)
            import matplotlib.dates as mdates

            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            tl.xaxis.set_major_locator(locator)
            tl.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        else:
            tl.text(0.5, 0.5, "no events before as_of", ha="center", va="center", transform=tl.transAxes)
            tl.set_yticks([])
        tl.axvline(self.as_of, color=TIER_COLOURS.get(self.tier, "black"), lw=1.2)
        tl.set_title(f"events before {self.as_of:%Y-%m-%d} (the line: as of)", fontsize=8)
        tl.grid(axis="x", alpha=0.3)
        tl.tick_params(axis="x", labelsize=7)
        return finish_figure(fig)

    def save_plot(self, path) -> Path:
        """Write :meth:`plot` as a PNG."""
        from ..evaluation import save_figure

        return save_figure(self.plot(), Path(path))

    # ------------------------------------------------------------------------------------
    # html

    def to_html(self, *, max_contributions: int = 20, max_events: int = 30, image: bool = True) -> str:
        """An escaped HTML fragment (a ``<div>``): summary, context, reasons, contributions,
        timeline and the plot as an inline PNG; no scripts, no external references."""
        e = esc
        tier = e(self.tier)
        rows = [f'<div class="explain" id="explain-{e(self.dispute_id)}">',
                f"<h3>{e(self.dispute_id)} <span class=\"tier tier-{tier}\">{tier}</span> "
                f"p = {self.probability:.3f} <span class=\"note\">as of {self.as_of:%Y-%m-%d %H:%M}{' UTC' if self.utc else ''}</span></h3>",
                f"<p>{e(self.tier_sentence())}"
                + (f"<br><span class=\"note\">{e(self.note)}</span>" if self.note else "") + "</p>"]
        if len(self.context):
            rows.append("<p><b>Context 背景</b>: " + " · ".join(
                f"{e(z)} / {e(en)}" for z, en in zip(self.context["zh"], self.context["en"], strict=True)) + "</p>")
        rows.append("<p><b>Reasons 原因</b>:<br>" + ("<br>".join(
            f"{i}. {e(z)} / {e(en)}" for i, (z, en) in enumerate(self.reasons, 1)) or "(none)") + "</p>")
        if image:
            rows.append(png_img(self.plot(), f"contributions and timeline of {self.dispute_id}"))
        c = self.contributions.head(max_contributions)
        body = "".join(f'<tr><td class="num">{v:+.2f}</td><td>{e(r)}</td><td>{e(z)} / {e(en)}</td></tr>'
                       for v, r, z, en in zip(c["contribution"], c["role"], c["zh"], c["en"], strict=True))
        rows.append(f"<details><summary>Every contribution ({len(self.contributions)}; largest {len(c)} shown)"
                    f"</summary><table><thead><tr><th>log-odds</th><th>role</th><th>feature 特征</th></tr></thead>"
                    f"<tbody>{body}</tbody></table></details>")
        t = self.timeline.tail(max_events)
        body = "".join(
            f"<tr><td>{pd.Timestamp(r['time']):%Y-%m-%d %H:%M}</td><td>{e(str(r['kind_zh']))} / {e(str(r['kind_en']))}"
            f"</td><td>{e(str(r['narrative'])) if 'narrative' in r and pd.notna(r['narrative']) else ''}</td></tr>"
            for r in t.to_dict("records"))
        rows.append(f"<details><summary>Timeline 事件时间线 ({len(self.timeline)} events)</summary><table><thead>"
                    f"<tr><th>time</th><th>kind</th><th>narrative</th></tr></thead><tbody>{body}</tbody></table>"
                    "</details></div>")
        return "".join(rows)


    def to_page(self) -> str:
        """A whole self-contained HTML page of :meth:`to_html`."""
        title = f"{self.dispute_id}: {self.tier}, p = {self.probability:.3f} (as of {self.as_of:%Y-%m-%d})"
        return page(title, f"<header><h1>Dispute explained 个案解读 — {esc(title)}</h1><p>{esc(self.model)}"
                           f"</p></header><section>{self.to_html()}<p class=\"note\">{esc(p_meaning(self.horizon))}"
                           "</p></section>")


# ------------------------------------------------------------------------------------------


def _timeline(prepared, dispute_id: str, as_of: pd.Timestamp, schema, writer, builder) -> pd.DataFrame:
    """The dispute's events strictly before ``as_of``, with its kinds in words."""
    ids = prepared.entity_ids.astype(str)
    at = np.flatnonzero(ids == dispute_id)
    columns = [c for c in (schema.time_col, schema.kind_col, schema.text_col, schema.party_col) if c]
    if not len(at):
        return pd.DataFrame(columns=["time", "kind", "kind_zh", "kind_en"])
    rows = np.flatnonzero(prepared.entity_codes == at[0])
    rows = rows[prepared.times_ns[rows] < pd.Timestamp(as_of).value]
    frame = prepared.frame.iloc[rows][columns].reset_index(drop=True)
    out = pd.DataFrame({"time": pd.to_datetime(prepared.times_ns[rows]), "kind": frame[schema.kind_col].astype(str)})
    slugs = builder.kind_slugs_
    labels = [writer.kind_label(slugs[k]) if k in slugs else writer.kind_label(k) for k in out["kind"]]
    out["kind_zh"] = [z.replace("事件", "") if z.startswith("「") else z for z, _ in labels]
    out["kind_en"] = [en for _, en in labels]
    if schema.text_col:
        out["narrative"] = frame[schema.text_col].to_numpy()
    if schema.party_col:
        out["party"] = frame[schema.party_col].to_numpy()
    return out


def _tiers_area(night) -> str | None:
    """The column tonight's tiers were set per (the manifest's ``tiers.by``; ``None``: city-wide),
    or the night's area column when the manifest does not say."""
    tiers = night.manifest.get("tiers")
    if isinstance(tiers, dict) and "by" in tiers:
        return tiers["by"] or None
    return night.area


def _phrases(writer, features: pd.Series, names) -> tuple[list, list]:
    """(zh, en) phrases of the named features' values (one case: a loop over features)."""
    pairs = [writer.phrase(name, features[name]) for name in names]
    return [z for z, _ in pairs], [e for _, e in pairs]


def explain(
    dispute_id,
    scores,
    *,
    model=None,
    events=None,
    entities: pd.DataFrame | None = None,
    area: str | None = "auto",
) -> Explanation:
    """Explain one dispute's score: timeline, probability, tier and threshold, contributions.

    Parameters
    ----------
    dispute_id : str
        The dispute (compared as text, so ``"123"`` finds an integer id 123).
    scores : path, NightlyOutput or DataFrame
        The night's ``riskmodel score`` output.
    model : RiskModel, Predictor, NightModels or str, optional
        The model that scored the night; a URI or folder is loaded. Used when the night's
        manifest records its fingerprint (or no model); otherwise, and by default, the
        version that scored the night, as its manifest records it (``models:/NAME/VERSION``
        even when the night loaded an alias, from the tracking store the manifest records
        when ``MLFLOW_TRACKING_URI`` is not set; or the folder), with a warning when the
        model given stands in for one that cannot be read. A
        :class:`~riskmodel.ops.NightModels` is asked as it is (several disputes of one night:
        its version read once).
    events : DataFrame, PreparedEvents or path, optional
        The event log (at least up to the night). Default: the night's input, when it was
        a file.
    entities : DataFrame or path, optional
        Needed by models trained with entities.
    area : str or None, default="auto"
        The area column whose thresholds tonight are given (the lowest ``p`` that got each
        tier in the dispute's area; among the disputes with no area, which tonight's tiers
        ranked together as ``"(unknown)"``, for a dispute with none). ``"auto"``: the areas
        tonight's tiers were set in, as the manifest records them (``tiers.by``, e.g.
        ``station``; the city when the tiers were set city-wide; the night's area column for
        a night that does not record it); ``None``: the city's.

    Returns
    -------
    Explanation

    Raises
    ------
    DataError
        The dispute is neither in the scores nor in the events; the model needs entities.
    ConfigError
        No model or events given and the manifest names none.
    """
    night = as_nightly(scores)
    manifest = night.manifest or {}
    model, label, events, entities = night_inputs(night, model, events, entities)
    rm = risk_model_of(model)
    schema = rm._schema()
    ent = schema.entity_col
    dispute_id = str(dispute_id)
    frame = night.scores
    if area == "auto":
        area = _tiers_area(night)
    if ent not in frame.columns:
        raise DataError(f"scores have no {ent!r} column; columns: {list(frame.columns)[:20]}.")
    mine = (frame[ent].astype(str) == dispute_id).to_numpy()
    prepared = prepare_as_batch(events, schema)
    note = ""
    if mine.any():
        row = frame[mine].iloc[[0]]
        inputs = sweep_inputs(rm, prepared, row, entities=entities, like=dispute_id)
    else:
        ns = night.not_scored
        if ns is not None and ent in ns.columns and "reason" in ns.columns:
            why = ns.loc[ns[ent].astype(str) == dispute_id, "reason"]
            note = f"not scored on {night.as_of:%Y-%m-%d}: {why.iloc[0]}" if len(why) else ""
        rejected = night.rejected(dispute_id)
        if not note and len(rejected):  # its events (some or all) were refused: say so, and why
            note = (f"the night rejected {len(rejected)} of its event row(s) ({rejected.iloc[0]}; see "
                    "rejects.parquet)")
            if not (prepared.entity_ids.astype(str) == dispute_id).any():  # nothing valid to describe it by
                raise DataError(f"dispute {dispute_id!r}: {note}, and the events given hold no valid row of it "
                                "either: there is nothing to describe it by. Mend its rows in the export.")
        inputs = sweep_inputs(rm, prepared, frame.iloc[:0], entities=entities, like=dispute_id, as_of=night.as_of)
        what = "just before it escalated" if inputs.case_as_of != night.as_of else "as of the night"
        note = (note or "not among the night's scores") + f"; described {what}, its tier by the model's policy"
    one = inputs.features.loc[[dispute_id]].iloc[[-1]].reset_index(drop=True)  # the case's row, dtypes kept
    x = one.iloc[0]
    c = inputs.contributions.loc[[dispute_id]].iloc[-1]
    as_of = pd.Timestamp(inputs.case_as_of)
    writer = rm.reason_writer_
    names = list(c.index)
    contrib = c.to_numpy(dtype=float)
    # the reasons as the work list gives them, whatever the tier (the batch skips blue ones)
    own = rm.score_features(one, pd.DataFrame({ent: [dispute_id], "as_of": [as_of]}), reasons="all").iloc[0]
    if mine.any():
        probability = float(row["probability"].iloc[0])
        tier = str(row["tier"].iloc[0])
        fired = str(row["overrides"].iloc[0]) if "overrides" in row.columns else ""
    else:
        probability, tier, fired = float(own["probability"]), str(own["tier"]), str(own["overrides"])
    overrides = [o for o in fired.split(",") if o]
    reasons = [tuple(p.split(" / ", 1)) for p in str(own["reasons"]).split("; ") if p]
    reason_set = set(str(own["reason_features"]).split(",")) - {""}

    keep = contrib != 0
    order = np.argsort(-np.abs(contrib[keep]), kind="stable")
    kept = [names[i] for i in np.flatnonzero(keep)[order]]
    zh, en = _phrases(writer, x, kept)
    roles = ["reason" if n in reason_set else "context" if writer.is_context(n) else
             ("raises risk" if c[n] > 0 else "lowers risk") for n in kept]
    contributions = pd.DataFrame({"feature": kept, "value": [x[n] for n in kept],
                                  "contribution": [float(c[n]) for n in kept], "role": roles, "zh": zh, "en": en})
    context_names = [n for n in writer.context_features if n in x.index]
    czh, cen = _phrases(writer, x, context_names)
    context = pd.DataFrame({"feature": context_names, "value": [x[n] for n in context_names], "zh": czh, "en": cen})
    context = context[pd.notna(context["value"]).to_numpy()].reset_index(drop=True)

    mask, where = None, "the city"
    if mine.any() and area and area in frame.columns:
        value = row[area].iloc[0]
        if pd.notna(value):
            mask, where = (frame[area] == value).to_numpy(), f"{area} {value}"
        else:  # ranked among the disputes with no area, as the tiers were (their area "(unknown)")
            mask = frame[area].isna().to_numpy()
            where = f"{area} {UNKNOWN_AREA}, the {int(mask.sum())} dispute(s) with no {area}"
    thresholds = {**tier_thresholds(frame, rm.tier_policy_.to_dict(), mask), "where": where,
                  "model": {"red": rm.tier_policy_.red_threshold_, "yellow": rm.tier_policy_.yellow_threshold_}}
    facts = {**model_facts(rm), **{k: v for k, v in (manifest.get("model") or {}).items() if k == "horizon"}}
    base = float(inputs.base_value) if inputs.base_value is not None else float("nan")
    return Explanation(
        dispute_id=dispute_id, as_of=as_of, probability=probability, tier=tier, scored=bool(mine.any()),
        thresholds=thresholds, reasons=reasons, contributions=contributions, base_value=base,
        raw_log_odds=base + float(contrib.sum()), context=context,
        timeline=_timeline(prepared, dispute_id, as_of, schema, writer, rm.features_),
        horizon=horizon_words(facts), model=label or model_label(manifest.get("model")), note=note,
        overrides=overrides, time_col=schema.time_col, kind_col=schema.kind_col, utc=bool(rm.features_.tz_aware_),
    )
