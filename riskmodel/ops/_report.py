"""The nightly HTML report: barometer, work lists, drift and audit in one self-contained file.

:func:`render_report` is a pure function from the night's outputs to an HTML string: inline
CSS, PNG plots embedded as ``data:`` URIs, every text escaped, no script and no network
asset, so the file opens anywhere (mail attachment, intranet, offline screen).
:func:`write_report` is its I/O edge (folders in, one file out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError
from ..batch import (
    NightlyOutput,
    as_nightly,
    as_nightly_list,
    dedupe_nights,
    entity_columns,
    load_predictor,
)
from ..data import parse_duration
from ..model import TIERS, ReasonWriter
from ._audit import AuditResult, audit_outcomes
from ._barometer import area_keys, barometer, plot_barometer_heatmap, plot_tier_trend, resolve_area
from ._html import esc, page, png_img
from ._legend import backtest_line, horizon_words, p_meaning, tier_legend
from ._night import NightModels, model_label, night_inputs, prepare_as_batch, risk_model_of

__all__ = ["render_report", "write_report"]

# ------------------------------------------------------------------------------------------
# small renderers (escaped)


_e = esc


def _fmt_num(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float | np.floating) and not np.isfinite(x)):
        return "n/a"
    if isinstance(x, int | np.integer):
        return f"{int(x):,}"
    return f"{float(x):.{digits}f}"


def _pct(x) -> str:
    if x is None or (isinstance(x, float | np.floating) and not np.isfinite(x)):
        return "n/a"
    return f"{100 * float(x):.1f}%"


def _column_html(values: pd.Series, kind: str) -> pd.Series:
    """One column as escaped ``<td>`` cells, vectorised over rows."""
    if kind == "tier":
        text = values.astype(object).fillna("").astype(str)
        return '<td><span class="tier tier-' + text.map(_e) + '">' + text.map(_e) + "</span></td>"
    if kind in ("prob", "num", "int", "pct", "signed", "signed_pct"):
        x = pd.to_numeric(values, errors="coerce").astype(float)
        if kind == "int":
            text = x.map(lambda v: "" if np.isnan(v) else f"{v:,.0f}")
        elif kind == "pct":
            text = x.map(lambda v: "" if np.isnan(v) else f"{100 * v:.1f}%")
        elif kind in ("signed", "signed_pct"):
            scale, unit = (100.0, " pp") if kind == "signed_pct" else (1.0, "")
            text = x.map(lambda v: "" if np.isnan(v) else f"{scale * v:+.1f}{unit}")
            cls = np.where(x > 0, "num up", np.where(x < 0, "num down", "num"))
            return '<td class="' + pd.Series(cls, index=values.index) + '">' + text + "</td>"
        else:
            digits = 3 if kind == "prob" else 2
            text = x.map(lambda v: "" if np.isnan(v) else f"{v:.{digits}f}")
        return '<td class="num">' + text + "</td>"
    if kind == "day":
        return "<td>" + pd.to_datetime(values, errors="coerce").dt.strftime("%Y-%m-%d").fillna("") + "</td>"
    if kind == "date":
        text = pd.to_datetime(values, errors="coerce").dt.strftime("%Y-%m-%d %H:%M").fillna("")
        return "<td>" + text + "</td>"
    text = values.astype(object).map(_e)
    if kind == "reasons":
        text = text.str.replace("; ", "<br>", regex=False)
    return "<td>" + text + "</td>"


def _table(frame: pd.DataFrame, columns: Mapping[str, tuple[str, str]], *, empty: str = "none") -> str:
    """``columns``: frame column -> (header, kind)."""
    present = {c: spec for c, spec in columns.items() if c in frame.columns}
    if frame.empty or not present:
        return f'<p class="note">{_e(empty)}</p>'
    head = "".join(f"<th>{_e(h)}</th>" for h, _ in present.values())
    cells = [_column_html(frame[c].reset_index(drop=True), kind) for c, (_, kind) in present.items()]
    rows = cells[0]
    for col in cells[1:]:
        rows = rows + col
    body = ("<tr>" + rows + "</tr>").str.cat(sep="\n")
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _kv_table(pairs: Sequence[tuple[str, str]]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


_png = png_img


def _status(status) -> str:
    s = str(status or "none")
    return f'<span class="status status-{_e(s)}">{_e(s)}</span>'


# ------------------------------------------------------------------------------------------
# sections


def _summary_section(night: NightlyOutput) -> str:
    m = night.manifest
    counts = m.get("counts", {})
    tiers = night.scores["tier"].astype(object).value_counts()
    kpis = [("open disputes scored", len(night.scores))] + [(t, int(tiers.get(t, 0))) for t in TIERS]
    if counts:
        kpis += [("disputes rejected", counts.get("disputes_rejected")), ("events rejected", counts.get("events_rejected"))]
    html_kpi = "".join(f'<span class="kpi"><b>{_e(_fmt_num(v) if v is not None else "n/a")}</b>{_e(k)}</span>'
                       for k, v in kpis)
    pairs = []
    if counts:
        pairs += [("disputes read", _fmt_num(counts.get("disputes_read"))),
                  ("not open", _fmt_num(counts.get("disputes_not_open"))),
                  ("accounting reconciles", str(counts.get("reconciles")))]
        for reason, n in (counts.get("not_open_by_reason") or {}).items():
            pairs.append((f"not open: {reason}", _fmt_num(n)))
    timings = m.get("timings_s", {})
    if timings.get("total") is not None:
        pairs.append(("batch run time", f"{timings['total']:.1f} s"))
    return (f'<section id="summary"><h2>Tonight 今晚</h2><div>{html_kpi}</div>'
            f"{_kv_table(pairs) if pairs else ''}</section>")


def _legend_section(night: NightlyOutput, horizon: str | None) -> str:
    """What the colours, p, "flagged", the horizon and the model mean, before any figure."""
    model = night.manifest.get("model") or {}
    legend = tier_legend(night.scores, model, night.manifest.get("tiers"))
    rows = "".join(
        f'<tr><td><span class="tier tier-{_e(r.tier)}">{_e(r.tier)} {_e(r.zh)}</span></td><td>{_e(r.action)}</td>'
        f"<td>{_e(r.rule)}</td><td>{_e(r.threshold)}</td><td class=\"num\">{r.n:,}</td>"
        f'<td class="num">{100 * r.share:.1f}%</td></tr>' for r in legend.itertuples())
    table = ('<table class="legend"><thead><tr><th>tier 等级</th><th>what to do</th><th>rule</th>'
             "<th>threshold tonight</th><th>disputes</th><th>share</th></tr></thead>"
             f"<tbody>{rows}</tbody></table>")
    words = horizon_words(model)
    note = ""
    if words is None and horizon:
        words, note = horizon_words(None, horizon), " (the horizon given to the report: the model does not record it)"
    name = model_label(model) or "n/a"
    return ('<section id="legend"><h2>How to read this report 说明</h2>' + table
            + f"<p>{_e(p_meaning(words))}{_e(note)} <b>Flagged</b> = red + yellow (the heat map colours each station's "
            "flagged share). A case lifted by a rule ([规则] in its reasons) is red or yellow whatever its p.</p>"
            f"<p><b>Model</b> {_e(name)}: {_e(backtest_line(model))}</p></section>")


def _barometer_section(nights: list, area: str | None) -> str:
    """``nights``: the scores of every night up to tonight's and the nights with none."""
    table = barometer(nights, area=area)
    city = barometer(nights, area=None)
    days = city["day"].nunique()
    span = (f"{_e(city['day'].min().date())} to {_e(city['day'].max().date())}" if days > 1 else
            f"{_e(city['day'].min().date())} only: no trend and no weekly change yet (pass earlier nights with "
            "--history)")
    parts = ['<section id="barometer"><h2>Barometer 晴雨表</h2>',
             f'<p class="note">{days} night(s), {span}; changes compare with the same '
             f"{_e(area or 'city')} 7 days earlier.</p>"]
    last_city = city.iloc[-1]
    parts.append(_table(city.tail(14).iloc[::-1], {
        "day": ("day", "day"), "n": ("open", "int"), "red": ("red", "int"), "yellow": ("yellow", "int"),
        "blue": ("blue", "int"), "flagged_share": ("red+yellow", "pct"), "mean_probability": ("mean p", "prob"),
        "red_change": ("red vs 7d", "signed"), "flagged_share_change": ("red+yellow vs 7d", "signed_pct")}))
    parts.append(_png(plot_tier_trend(table, title="tier shares by night (city)"), "tier share trend"))
    key = area or "area"
    if area is not None:
        parts.append(_png(plot_barometer_heatmap(table, value="flagged_share"),
                          f"heat map of the red+yellow share by {key} and day"))
    if area is None:
        parts.append("</section>")
        return "".join(parts)
    latest = table[table["day"] == table["day"].max()]
    latest = latest.sort_values(["red", "flagged_share", key], ascending=[False, False, True], kind="stable")
    columns = {
        key: (key, "text"), "n": ("open", "int"), "red": ("red", "int"), "yellow": ("yellow", "int"),
        "blue": ("blue", "int"), "flagged_share": ("red+yellow", "pct"), "mean_probability": ("mean p", "prob"),
        "n_change": ("open vs 7d", "signed"), "red_change": ("red vs 7d", "signed"),
        "flagged_share_change": ("red+yellow vs 7d", "signed_pct")}
    parts.append(f"<h3>By {_e(key)} on {_e(last_city['day'].date())} ({len(latest)} {_e(key)}s, most red first)</h3>")
    parts.append(_table(latest.head(_TOP_AREAS), columns))
    if len(latest) > _TOP_AREAS:  # many stations: the rest folded away
        parts.append(f"<details><summary>the other {len(latest) - _TOP_AREAS} {_e(key)}s</summary>"
                     f"{_table(latest.iloc[_TOP_AREAS:], columns)}</details>")
    parts.append("</section>")
    return "".join(parts)


#: Areas shown in the barometer's table before the rest is folded away.
_TOP_AREAS = 15

#: Score columns that are not a dispute's context (its id comes first in every scores frame).
_SCORE_COLUMNS = {"rank", "as_of", "probability", "tier", "reasons", "reason_features", "overrides", "model_name",
                  "model_version", "run_id", "tier_rule", "red_capacity", "yellow_capacity", "red_threshold",
                  "yellow_threshold"}


def _work_columns(frame: pd.DataFrame, id_col: str, area: str | None) -> dict:
    """The work list's columns: rank, the dispute's id, its context (category, ...: whatever
    the batch put beside the scores, the area aside), tier, p and the reasons."""
    context = [c for c in frame.columns if c not in _SCORE_COLUMNS and c not in (id_col, area)]
    return {"rank": ("#", "int"), id_col: (id_col, "text"), **{c: (c, "text") for c in context},
            "tier": ("tier", "tier"), "probability": ("p", "prob"), "reasons": ("reasons 原因", "reasons")}


def _tiers_section(manifest: Mapping) -> str:
    """The tier rule of the night: shares or capacities per area and the thresholds they gave."""
    tiers = manifest.get("tiers") if isinstance(manifest, Mapping) else None
    head = '<section id="tiers"><h2>Tiers tonight 今晚分级</h2>'
    if not tiers:
        return head + '<p class="note">this night\'s manifest does not record its tier rule.</p></section>'
    trained = tiers.get("trained_thresholds") or {}
    pairs = [("rule", tiers.get("description", "n/a")),
             ("applied", "ranked over tonight's disputes" if tiers.get("applied") == "per_night" else
              "trained thresholds"),
             ("trained thresholds", f"{trained.get('method', '')}: red ≥ {_fmt_num(trained.get('red'), 4)}, "
                                    f"yellow ≥ {_fmt_num(trained.get('yellow'), 4)}")]
    if tiers.get("applied") == "per_night":
        pairs += [("cases lifted by override rules", _fmt_num(tiers.get("overrides_lifted", 0))),
                  ("reasons added after ranking", _fmt_num(tiers.get("reasons_added", 0)))]
    areas = pd.DataFrame(tiers.get("areas") or [])
    parts = [head, _kv_table(pairs)]
    if len(areas):
        parts.append('<p class="note">per area: the counts allowed (capacity) and given, and the lowest '
                     "probability in red and in red + yellow (the thresholds tonight's ranking set).</p>")
        parts.append(_table(areas, {
            "area": ("area", "text"), "rule": ("rule", "text"), "n": ("open", "int"),
            "red_capacity": ("red allowed", "int"), "red": ("red", "int"), "red_threshold": ("red ≥", "prob"),
            "yellow_capacity": ("yellow allowed", "int"), "yellow": ("yellow", "int"),
            "yellow_threshold": ("red+yellow ≥", "prob"), "overrides_lifted": ("lifted by rules", "int")}))
    parts.append("</section>")
    return "".join(parts)


def _worklists_section(night: NightlyOutput, area: str | None, max_per_area: int) -> str:
    work = night.worklists
    if work is None or "rank" not in getattr(work, "columns", []):
        flagged = night.scores[night.scores["tier"].isin(["red", "yellow"])]
        work = flagged.assign(_g=area_keys(flagged, area)).sort_values(["_g", "probability"], ascending=[True, False], kind="stable")
        work["rank"] = work.groupby("_g", sort=False).cumcount() + 1
        work = work.drop(columns="_g")
    key = area if area in work.columns else None
    parts = ['<section id="worklists"><h2>Work lists 工作清单</h2>',
             f'<p class="note">{len(work):,} red and yellow disputes; up to {max_per_area} per '
             f"{_e(key or 'city')} shown, highest risk first (the full lists are in worklists.parquet).</p>"]
    if work.empty:
        parts.append('<p class="note">no red or yellow disputes tonight.</p></section>')
        return "".join(parts)
    groups = area_keys(work, key)
    tier = work["tier"].astype(object)
    order = (pd.DataFrame({"g": groups, "red": tier == "red", "n": 1}).groupby("g").sum()
             .sort_values(["red", "n"], ascending=False, kind="stable"))
    shown = work.assign(_g=groups)
    shown = shown[shown["rank"] <= max_per_area]
    columns = _work_columns(work, night.scores.columns[0], key)  # the id comes first in the scores
    tiers_by = (night.manifest.get("tiers") or {}).get("by")
    capacity = None  # the area's rule, when the work lists' areas are the tier policy's areas
    if key is not None and tiers_by == key and "red_capacity" in work.columns:
        capacity = work.assign(_g=groups).drop_duplicates("_g").set_index("_g")
    for g, row in order.iterrows():  # one <details> per area (tens), each table vectorised
        part = shown[shown["_g"] == g]
        summary = f"{_e(g)}: {int(row['red'])} red, {int(row['n'] - row['red'])} yellow"
        if capacity is not None and g in capacity.index:
            c = capacity.loc[g]
            summary += _e(f" · {c.get('tier_rule', '')}: red allowed {_fmt_num(c.get('red_capacity'), 0)}, "
                          f"red ≥ {_fmt_num(c.get('red_threshold'))}")
        parts.append(f"<details{' open' if row['red'] else ''}><summary>{summary}</summary>"
                     f"{_table(part, columns)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _change_words(change: Mapping) -> str:
    """A drift row's ``change`` in words: where the values moved, and missing values."""
    words = []
    rank = change.get("typical_rank")
    if rank is not None and np.isfinite(rank):
        if abs(rank - 0.5) < 0.03:
            words.append("same typical value, different spread")
        else:
            words.append(f"{'higher' if rank > 0.5 else 'lower'} than in training: tonight's typical dispute is "
                         f"at training's {_ordinal(round(100 * rank))} percentile")
    if change.get("category") is not None:
        ref, cur = change.get("reference"), change.get("current")
        words.append(f"{'more' if cur >= ref else 'fewer'} {change['category']} ({_pct(ref)} → {_pct(cur)})")
    missing = change.get("missing") or [None, None]
    if None not in missing and abs(missing[1] - missing[0]) >= 0.02:
        words.append(f"missing {_pct(missing[0])} → {_pct(missing[1])}")
    if not change:
        return "—"  # a night scored before the batch recorded what moved
    return "; ".join(words) or "spread changed, same typical value"


def _drift_section(manifest: Mapping, writer: ReasonWriter | None = None) -> str:
    mon = manifest.get("monitoring") if isinstance(manifest, Mapping) else None
    head = '<section id="drift"><h2>Drift 数据漂移</h2>'
    if not isinstance(mon, Mapping):
        return head + '<p class="note">no drift data: this night\'s manifest has no monitoring results.</p></section>'
    thresholds = mon.get("thresholds") or {}
    parts = [head, f"<p>status {_status(mon.get('status'))} &nbsp; thresholds: "
             + _e(", ".join(f"{k} ≥ {v}" for k, v in thresholds.items()) or "n/a")
             + f" &nbsp; score PSI <b>{_e(_fmt_num(mon.get('score_psi')))}</b></p>"]
    shares = mon.get("tier_shares") or {}
    ref, cur = shares.get("reference") or {}, shares.get("current") or {}
    if ref or cur:
        frame = pd.DataFrame({"tier": list(TIERS), "reference": [ref.get(t) for t in TIERS],
                              "current": [cur.get(t) for t in TIERS]})
        parts.append("<h3>Tier shares</h3>" + _table(frame, {"tier": ("tier", "tier"),
                                                            "reference": ("reference", "pct"),
                                                            "current": ("tonight", "pct")}))
    missing = mon.get("missing_text_rate") or {}
    unseen = mon.get("unseen_rate") or {}
    pairs = [("missing narrative rate (reference)", _pct(missing.get("reference"))),
             ("missing narrative rate (tonight)", _pct(missing.get("current"))),
             ("unseen event kinds (tonight)", _pct(unseen.get("kinds")))]
    pairs += [(f"unseen {col} values (tonight)", _pct(v)) for col, v in (unseen.get("categories") or {}).items()]
    parts.append(_kv_table(pairs))
    feats = pd.DataFrame(list(mon.get("features") or []))
    if not feats.empty and {"name", "psi"} <= set(feats.columns):
        feats = feats.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
        status = feats["status"].astype(object) if "status" in feats.columns else pd.Series("n/a", index=feats.index)
        counted = ~feats["informational"].fillna(False).astype(bool) if "informational" in feats.columns \
            else pd.Series(True, index=feats.index)
        n_flag = int((status.isin(["watch", "act"]) & counted).sum())
        writer = writer or ReasonWriter.for_names(feats["name"].astype(str).tolist())
        shown = feats.head(25)
        rows = []
        for i, row in shown.iterrows():  # 25 rows at most
            zh, en = writer.name(str(row["name"]))
            change = row.get("change") if isinstance(row.get("change"), Mapping) else {}
            s = str(status[i])
            cell = _status(s) + ("" if counted[i] else ' <span class="note">context: reported, not alerting</span>')
            rows.append(f"<tr><td>{_e(zh)} / {_e(en)}</td><td>{_e(_change_words(change))}</td>"
                        f'<td class="num">{_fmt_num(row["psi"], 2)}</td><td>{cell}</td></tr>')
        parts.append(f"<h3>Features that moved ({n_flag} of {int(counted.sum())} alerting features at watch or act; "
                     f"the {len(shown)} largest shifts)</h3>"
                     '<p class="note">How far tonight\'s open disputes differ from the ones the model was '
                     "calibrated on (PSI: under 0.1 ok, 0.1-0.25 watch, over 0.25 act). Station-level context "
                     "(one value per station a night) is reported but does not set the status.</p>")
        parts.append("<table><thead><tr><th>feature 特征</th><th>what changed</th><th>PSI</th><th>status</th>"
                     f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    else:
        parts.append('<p class="note">no per-feature PSI (model saved without a reference).</p>')
    parts.append("</section>")
    return "".join(parts)


def _audit_section(audit: AuditResult | None, max_rows: int) -> str:
    head = '<section id="audit"><h2>Outcome audit 复盘</h2>'
    if audit is None:
        return head + '<p class="note">no outcomes given (riskmodel report --outcomes PATH).</p></section>'
    s = audit.summary
    kpis = [("escalations", _fmt_num(s["escalations"])), ("caught red/yellow", _pct(s["caught_share"])),
            ("caught, of those scored", _pct(s["caught_share_scored"])), ("in red", _pct(s["red_share"])),
            ("median lead (days)", _fmt_num(s["median_lead_days"], 1))]
    parts = [head, "<div>" + "".join(f'<span class="kpi"><b>{_e(v)}</b>{_e(k)}</span>' for k, v in kpis) + "</div>",
             f'<p class="note">escalations from {_e(s["period"][0])} to {_e(s["period"][1])} (horizon '
             f'{_e(s["horizon"])}), each with the tier of its last score before it escalated; '
             f'red {s["red"]}, yellow {s["yellow"]}, blue {s["blue"]}, not scored {s["not_scored"]}.</p>']
    missed = audit.missed
    parts.append(f"<h3>Missed ({len(missed)}; most recent {min(len(missed), max_rows)} shown)</h3>")
    parts.append(_table(missed.head(max_rows), {
        audit.id_col: (audit.id_col, "text"), "escalated_at": ("escalated", "date"),
        "status": ("last tier", "text"), "last_scored_as_of": ("last scored", "date"), "probability": ("p", "prob"),
        **({audit.area: (audit.area, "text")} if audit.area else {}),
        "category": ("category", "text"), "reasons": ("reasons 原因", "reasons"),
        "not_scored_reason": ("why not scored", "text")}, empty="none missed"))
    parts.append("</section>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------
# public


def render_report(
    night,
    *,
    history: Sequence = (),
    audit: AuditResult | None = None,
    area: str | None = "auto",
    max_per_area: int = 15,
    max_missed: int = 50,
    title: str | None = None,
    model=None,
    horizon: str | None = None,
    explanations: Sequence = (),
) -> str:
    """The nightly report as one self-contained HTML page.

    Parameters
    ----------
    night : path, NightlyOutput or DataFrame
        Tonight's ``riskmodel score`` output.
    history : sequence, optional
        Earlier nights (same kinds) for the barometer's trend and weekly change.
    audit : AuditResult, optional
        From :func:`audit_outcomes`; without it the section says so.
    area : str or None, default="auto"
        Area column of the barometer and the work lists; ``"auto"``: the night's own (the
        model's first group column, e.g. ``station``), city-wide when it has none.
    max_per_area : int, default=15
        Work-list rows shown per area.
    max_missed : int, default=50
        Missed escalations shown.
    title : str, optional
    model : RiskModel or Predictor, optional
        Gives the drift table the model's own feature labels (else they are read off the
        feature names).
    horizon : str, optional
        The horizon the legend names when the manifest does not record one (models not
        trained with :func:`riskmodel.train`).
    explanations : sequence of Explanation, optional
        Disputes explained (:func:`riskmodel.explain`), shown in their own section.

    Returns
    -------
    str
        HTML with inline CSS and base64 PNGs; no scripts, no external references.
        The drift section shows ``manifest["monitoring"]`` when present, "no drift data"
        otherwise.
    """
    if max_per_area < 1 or max_missed < 0:
        raise ConfigError("max_per_area must be positive and max_missed non-negative.")
    night = as_nightly(night)
    if area not in (None, "auto") and area not in night.scores.columns:
        area = None  # no such column (a foreign extract): the report is city-wide
    earlier = as_nightly_list(list(history), history=True) if len(history) else []
    all_scores, _ = dedupe_nights([*earlier, night])
    last = night.scores["as_of"].max() if len(night.scores) else night.as_of
    all_scores = all_scores[all_scores["as_of"] <= last] if last is not None else all_scores
    # nights with no open dispute have no score row: the barometer counts them from their manifests
    quiet = [o for o in [*earlier, night] if not len(o.scores) and o.as_of is not None
             and (last is None or o.as_of <= last)]
    area = resolve_area(area, [night, *earlier], all_scores)
    as_of = night.as_of
    info = night.manifest.get("model", {})
    day = as_of.strftime("%Y-%m-%d %H:%M") if as_of is not None else "(unknown date)"
    heading = title or f"Dispute risk nightly report 矛盾纠纷风险日报 — {day}"
    from .._version import VERSION as __version__

    label = model_label(info) or "n/a"
    run = info.get("run_id") if info.get("run_id") and info["run_id"] not in label else ""  # not twice
    sub = (f"model {label}{' (run ' + run + ')' if run else ''} · "
           f"generated {pd.Timestamp.now():%Y-%m-%d %H:%M} by riskmodel {__version__}")
    writer = None
    if model is not None:
        writer = risk_model_of(model).reason_writer_
    explained = "".join(e.to_html() for e in explanations)
    body = [f"<header><h1>{_e(heading)}</h1><p>{_e(sub)}</p></header>",
            '<nav><a href="#legend">how to read</a><a href="#summary">tonight</a><a href="#barometer">barometer</a>'
            '<a href="#tiers">tiers</a><a href="#worklists">work lists</a>' + ('<a href="#explained">explained</a>' if explained else "")
            + '<a href="#drift">drift</a><a href="#audit">audit</a></nav>',
            _legend_section(night, horizon),
            _summary_section(night),
            _tiers_section(night.manifest),
            _barometer_section([all_scores, *quiet], area) if len(all_scores) or quiet else
            '<section id="barometer"><h2>Barometer 晴雨表</h2><p class="note">no scores.</p></section>',
            _worklists_section(night, area, max_per_area),
            (f'<section id="explained"><h2>Disputes explained 个案解读</h2>{explained}</section>' if explained else ""),
            _drift_section(night.manifest, writer),
            _audit_section(audit, max_missed)]
    return page(heading, "\n".join(body))


#: The audit's horizon for a model that does not record its own.
_DEFAULT_HORIZON = "90D"


def write_report(
    out,
    *,
    scores,
    history: Sequence = (),
    outcomes=None,
    horizon: str | None = None,
    model=None,
    events=None,
    entities=None,
    area: str | None = "auto",
    explain: Sequence = (),
) -> Path:
    """Read the nightly outputs (and outcomes), render the report, write it to ``out``.

    Parameters
    ----------
    out : path
        The HTML file to write (parent folders are created).
    scores : path or NightlyOutput
        Tonight's ``riskmodel score`` folder.
    history : sequence of paths, optional
        Earlier nights' folders.
    outcomes : path or DataFrame, optional
        Later-observed escalations (event log or table, parquet / CSV) for the audit,
        which runs over ``history`` + tonight.
    horizon : str, optional
        The audit's horizon. Default: the model's, as the night's manifest records it (the
        horizon its ``p`` speaks of), else ``"90D"``, which the legend then names too.
    model, events, entities : optional
        To recompute the reasons of missed blue cases in the audit, and to explain disputes
        (there, as :func:`riskmodel.explain`, the model and events the night names by default).
        The model (a RiskModel, Predictor, URI or folder) also names the drift table's
        features; a URI or folder is read only when one of these uses it.
    area : str or None, default="auto"
        See :func:`render_report`.
    explain : sequence of str, optional
        Dispute ids explained in the report (:func:`riskmodel.explain`).

    Returns
    -------
    Path
    """
    if horizon is not None:  # checked whether or not outcomes use it
        parse_duration(horizon, "horizon")
    from ..lifecycle import input_words, read_table

    night = as_nightly(scores)
    earlier = as_nightly_list(list(history), history=True) if len(history) else []
    horizon = horizon or (night.manifest.get("model") or {}).get("horizon") or _DEFAULT_HORIZON
    schema = night.schema
    models = None  # the model that scored each night, once the features are recomputed
    if len(explain) or (outcomes is not None and (model is not None or events is not None)):
        # the features are recomputed: the model and events given, else those the night names
        need = "explaining disputes" if len(explain) else "the reasons of missed blue cases"
        # one NightModels for the night's inputs, the audit and each dispute explained: a version read once
        models = NightModels(model)
        model, _, events, entities = night_inputs(night, models, events, entities, need=need)
    elif isinstance(model, str | Path):  # read only when the drift table names features with it
        model = load_predictor(str(model)) if (night.manifest.get("monitoring") or {}).get("features") else None
    if isinstance(entities, str | Path):  # the audited cases' areas and categories, read as the night read them
        names = risk_model_of(model)._schema() if model is not None else schema
        entities = read_table(entities, text_columns=names.entity_text_columns if names is not None else (),
                              named=input_words("entities", entities),
                              columns=entity_columns(names) if names is not None else ())
    audit = None
    if outcomes is not None:
        frame = outcomes if isinstance(outcomes, pd.DataFrame) else \
            read_table(outcomes, text_columns=schema.text_columns if schema is not None else (),
                       named=input_words("outcomes", outcomes), columns=schema.event_columns if schema is not None else ())
        audit = audit_outcomes(earlier + [night], frame, horizon=horizon, events=events, entities=entities,
                               model=model if models is None else models, area=area)
    explanations = []
    if len(explain):
        from ._explain import explain as explain_one

        events = prepare_as_batch(events, risk_model_of(model)._schema())  # once for every dispute
        # each card's thresholds are those of the areas tonight's tiers were set in, not the report's area
        explanations = [explain_one(i, night, model=models, events=events, entities=entities, area="auto")
                        for i in explain]
    text = render_report(night, history=earlier, audit=audit, area=area, model=model, horizon=horizon,
                         explanations=explanations)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise DataError(f"--out {out} is a folder; give a file name such as report.html.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
