"""The nightly HTML report: barometer, work lists, drift and audit in one self-contained file.

:func:`render_report` is a pure function from the night's outputs to an HTML string: inline
CSS, PNG plots embedded as ``data:`` URIs, every text escaped, no script and no network
asset, so the file opens anywhere (mail attachment, intranet, offline screen).
:func:`write_report` is its I/O edge (folders in, one file out).
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError
from ..batch import NightlyOutput, as_nightly, as_nightly_list
from ..model import TIERS
from ._audit import AuditResult, audit_outcomes
from ._barometer import barometer, plot_barometer_heatmap, plot_tier_trend

__all__ = ["render_report", "write_report"]

_CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f2d3d;color:#fff;padding:16px 24px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c8d3df;font-size:13px}
nav{padding:8px 24px;background:#eef1f4;font-size:14px}nav a{margin-right:16px;color:#1f4e79}
section{padding:8px 24px 16px;border-bottom:1px solid #ddd}h2{font-size:18px;margin:16px 0 8px}
h3{font-size:15px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0 10px;background:#fff}
th,td{border:1px solid #d6d9dc;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f0f2f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tier{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-weight:600}
.tier-red{background:#d62728}.tier-yellow{background:#e6b800;color:#222}.tier-blue{background:#1f77b4}
.status{display:inline-block;padding:1px 8px;border-radius:3px;font-weight:600}
.status-ok{background:#d8f0d8}.status-watch{background:#ffe9a8}.status-act{background:#f7c1c1}
.status-no_reference,.status-no_data,.status-none{background:#e4e4e4}
.note{color:#666;font-size:13px}.up{color:#b00020}.down{color:#1b7f3b}
img{max-width:100%;height:auto;background:#fff;border:1px solid #e2e2e2;margin:4px 0}
details{margin:4px 0}summary{cursor:pointer;font-weight:600}
.kpi{display:inline-block;margin:4px 18px 4px 0}.kpi b{font-size:20px;display:block}
"""


# ------------------------------------------------------------------------------------------
# small renderers (escaped)


def _e(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


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


def _png(fig, alt: str) -> str:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*[Gg]lyph.*missing from", category=UserWarning)
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


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


def _barometer_section(all_scores: pd.DataFrame, night: NightlyOutput, area: str | None) -> str:
    if area is not None and area not in all_scores.columns:
        return (f'<section id="barometer"><h2>Barometer 晴雨表</h2><p class="note">no area column '
                f"{_e(area)!s} in the scores.</p></section>")
    table = barometer(all_scores, area=area)
    city = barometer(all_scores, area=None)
    days = city["day"].nunique()
    parts = ['<section id="barometer"><h2>Barometer 晴雨表</h2>',
             f'<p class="note">{days} night(s), {_e(city["day"].min().date())} to {_e(city["day"].max().date())}; '
             "changes compare with the same area 7 days earlier.</p>"]
    last_city = city.iloc[-1]
    parts.append(_table(city.tail(14).iloc[::-1], {
        "day": ("day", "day"), "n": ("open", "int"), "red": ("red", "int"), "yellow": ("yellow", "int"),
        "blue": ("blue", "int"), "flagged_share": ("red+yellow", "pct"), "mean_probability": ("mean p", "prob"),
        "red_change": ("red vs 7d", "signed"), "flagged_share_change": ("red+yellow vs 7d", "signed_pct")}))
    parts.append(_png(plot_tier_trend(table, title="tier shares by day (city)"), "tier share trend"))
    key = area or "area"
    parts.append(_png(plot_barometer_heatmap(table, value="flagged_share"),
                      f"heat map of the red+yellow share by {key} and day"))
    latest = table[table["day"] == table["day"].max()]
    latest = latest.sort_values(["red", "flagged_share", key], ascending=[False, False, True], kind="stable")
    parts.append(f"<h3>By {_e(key)} on {_e(last_city['day'].date())}</h3>")
    parts.append(_table(latest, {
        key: (key, "text"), "n": ("open", "int"), "red": ("red", "int"), "yellow": ("yellow", "int"),
        "blue": ("blue", "int"), "flagged_share": ("red+yellow", "pct"), "mean_probability": ("mean p", "prob"),
        "n_change": ("open vs 7d", "signed"), "red_change": ("red vs 7d", "signed"),
        "flagged_share_change": ("red+yellow vs 7d", "signed_pct")}))
    parts.append("</section>")
    return "".join(parts)


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


_WORK_COLS = {"rank": ("#", "int"), "dispute_id": ("dispute", "text"), "category": ("category", "text"),
              "tier": ("tier", "tier"), "probability": ("p", "prob"), "reasons": ("reasons 原因", "reasons")}


def _worklists_section(night: NightlyOutput, area: str | None, max_per_area: int) -> str:
    work = night.worklists
    if work is None or "rank" not in getattr(work, "columns", []):
        flagged = night.scores[night.scores["tier"].isin(["red", "yellow"])]
        g = flagged[area].astype(object).fillna("(unknown)") if area in flagged.columns else "(city)"
        work = flagged.assign(_g=g).sort_values(["_g", "probability"], ascending=[True, False], kind="stable")
        work["rank"] = work.groupby("_g", sort=False).cumcount() + 1
        work = work.drop(columns="_g")
    key = area if area in work.columns else None
    parts = ['<section id="worklists"><h2>Work lists 工作清单</h2>',
             f'<p class="note">{len(work):,} red and yellow disputes; up to {max_per_area} per '
             f"{_e(key or 'city')} shown, highest risk first (the full lists are in worklists.parquet).</p>"]
    if work.empty:
        parts.append('<p class="note">no red or yellow disputes tonight.</p></section>')
        return "".join(parts)
    groups = work[key].astype(object).fillna("(unknown)") if key else pd.Series("(city)", index=work.index)
    tier = work["tier"].astype(object)
    order = (pd.DataFrame({"g": groups, "red": tier == "red", "n": 1}).groupby("g").sum()
             .sort_values(["red", "n"], ascending=False, kind="stable"))
    shown = work.assign(_g=groups)
    shown = shown[shown["rank"] <= max_per_area]
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
                     f"{_table(part, _WORK_COLS)}</details>")
    parts.append("</section>")
    return "".join(parts)


def _drift_section(manifest: Mapping) -> str:
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
        feats = feats.sort_values("psi", ascending=False, kind="stable")
        if "status" in feats.columns:
            feats["status"] = feats["status"].astype(object)
        counted = ~feats["informational"].fillna(False).astype(bool) if "informational" in feats.columns \
            else pd.Series(True, index=feats.index)
        n_flag = int((feats.get("status", pd.Series(dtype=object)).isin(["watch", "act"]) & counted).sum())
        parts.append(f"<h3>Features by PSI ({n_flag} of {int(counted.sum())} counted features at watch or act; "
                     "informational ones do not set the status; top 25)</h3>")
        parts.append(_table(feats.head(25), {"name": ("feature", "text"), "psi": ("PSI", "prob"),
                                             "status": ("status", "text"), "informational": ("informational", "text")}))
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
        "dispute_id": ("dispute", "text"), "escalated_at": ("escalated", "date"), "status": ("last tier", "text"),
        "last_scored_as_of": ("last scored", "date"), "probability": ("p", "prob"), "station": ("station", "text"),
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
    area: str | None = "station",
    max_per_area: int = 15,
    max_missed: int = 50,
    title: str | None = None,
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
    area : str or None, default="station"
        Area column of the barometer and the work lists.
    max_per_area : int, default=15
        Work-list rows shown per area.
    max_missed : int, default=50
        Missed escalations shown.
    title : str, optional

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
    earlier = as_nightly_list(list(history)) if len(history) else []
    all_scores = pd.concat([o.scores for o in earlier] + [night.scores], ignore_index=True)
    all_scores = all_scores[all_scores["as_of"] <= night.scores["as_of"].max()] if len(night.scores) else all_scores
    as_of = night.as_of
    model = night.manifest.get("model", {})
    day = as_of.strftime("%Y-%m-%d %H:%M") if as_of is not None else "(unknown date)"
    heading = title or f"Dispute risk nightly report 矛盾纠纷风险日报 — {day}"
    from .._version import VERSION as __version__

    sub = (f"model {model.get('name', 'n/a')} version {model.get('version', 'n/a')}"
           f"{' (run ' + model['run_id'] + ')' if model.get('run_id') else ''} · "
           f"generated {pd.Timestamp.now():%Y-%m-%d %H:%M} by riskmodel {__version__}")
    body = [f"<header><h1>{_e(heading)}</h1><p>{_e(sub)}</p></header>",
            '<nav><a href="#summary">tonight</a><a href="#barometer">barometer</a>'
            '<a href="#tiers">tiers</a><a href="#worklists">work lists</a><a href="#drift">drift</a>'
            '<a href="#audit">audit</a></nav>',
            _summary_section(night),
            _tiers_section(night.manifest),
            _barometer_section(all_scores, night, area) if len(all_scores) else
            '<section id="barometer"><h2>Barometer 晴雨表</h2><p class="note">no scores.</p></section>',
            _worklists_section(night, area, max_per_area),
            _drift_section(night.manifest),
            _audit_section(audit, max_missed)]
    return ("<!DOCTYPE html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(heading)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_report(
    out,
    *,
    scores,
    history: Sequence = (),
    outcomes=None,
    horizon: str = "90D",
    model=None,
    events=None,
    entities=None,
    area: str | None = "station",
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
    horizon : str, default="90D"
    model, events, entities : optional
        To recompute the reasons of missed blue cases in the audit.
    area : str or None, default="station"

    Returns
    -------
    Path
    """
    from ..lifecycle import read_table

    night = as_nightly(scores)
    earlier = as_nightly_list(list(history)) if len(history) else []
    audit = None
    if outcomes is not None:
        frame = outcomes if isinstance(outcomes, pd.DataFrame) else read_table(outcomes)
        audit = audit_outcomes(earlier + [night], frame, horizon=horizon, model=model, events=events,
                               entities=entities)
    text = render_report(night, history=earlier, audit=audit, area=area)
    out = Path(out)
    if out.exists() and out.is_dir():
        raise DataError(f"--out {out} is a folder; give a file name such as report.html.")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
