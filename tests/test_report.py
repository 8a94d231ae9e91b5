"""The nightly HTML report: self-contained, escaped, and rendered by a real headless browser."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    ConfigError,
    DataWarning,
    EventSchema,
    FeatureBuilder,
    ModelError,
    RiskModel,
    audit_outcomes,
    make_cutoffs,
    make_labels,
    prepare_events,
    read_nightly,
    render_report,
    score_batch,
    simulate_disputes,
    write_report,
)
from riskmodel.lifecycle._registry import Predictor

DAYS = ("2024-05-25", "2024-05-28", "2024-06-01")
MONITORING = {
    "status": "watch", "thresholds": {"watch": 0.1, "act": 0.25}, "score_psi": 0.137,
    "features": [{"name": "count_threat_30D", "psi": 0.31, "status": "act"},
                 {"name": "kw_weapon_30D", "psi": 0.12, "status": "watch"},
                 {"name": "station", "psi": 0.02, "status": "ok", "informational": True}],
    "tier_shares": {"reference": {"red": 0.05, "yellow": 0.15, "blue": 0.8},
                    "current": {"red": 0.07, "yellow": 0.2, "blue": 0.73}},
    "unseen_rate": {"categories": {"category": 0.0}, "kinds": 0.004},
    "missing_text_rate": {"reference": 0.1, "current": 0.13},
}


def _chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Three nightly folders from a simulated city, plus its events (the outcomes)."""
    sim = simulate_disputes(2500, start="2022-01-01", end="2024-12-31", seed=5)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema), n_estimators=80)
    model.fit(ev, lab[~lab.censored], entities=sim.entities)
    predictor = Predictor(model, model_name="dispute-risk", model_version="7", run_id="abc", uri="memory")
    root = tmp_path_factory.mktemp("nights")
    dirs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for day in DAYS:
            score_batch(model=predictor, events=sim.events, entities=sim.entities, as_of=day, out=root / day)
            dirs.append(root / day)
    manifest = json.loads((dirs[-1] / "manifest.json").read_text(encoding="utf-8"))
    manifest.pop("monitoring", None)
    (dirs[-1] / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    # a copy of tonight with drift results and a hostile category, to check escaping
    hostile = root / "hostile"
    shutil.copytree(dirs[-1], hostile)
    manifest["monitoring"] = MONITORING
    (hostile / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for name in ("scores", "worklists"):
        frame = pd.read_parquet(hostile / f"{name}.parquet")
        first = frame.index[frame["tier"] == "red"][0] if (frame["tier"] == "red").any() else frame.index[0]
        frame["category"] = frame["category"].astype(object)
        frame.loc[first, "category"] = '<script>alert("x")</script><img src=http://evil.example/x.png>'
        frame.to_parquet(hostile / f"{name}.parquet", index=False)
    events_path = root / "events.parquet"
    sim.events.to_parquet(events_path, index=False)
    return {"dirs": dirs, "hostile": hostile, "sim": sim, "events": events_path, "root": root, "model": model,
            "predictor": predictor}


def _images(text: str) -> list[str]:
    return re.findall(r'<img [^>]*src="([^"]*)"', text)


def test_report_is_self_contained_and_complete(nights):
    audit = audit_outcomes(nights["dirs"], nights["sim"].events)
    text = render_report(nights["dirs"][-1], history=nights["dirs"][:-1], audit=audit)
    assert text.startswith("<!DOCTYPE html>")
    for anchor in ('id="summary"', 'id="barometer"', 'id="worklists"', 'id="drift"', 'id="audit"'):
        assert anchor in text
    assert "no drift data" in text
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert "@import" not in text and "url(" not in text
    # the legend says what the colours, p and the thresholds mean before any figure
    assert text.index('id="legend"') < text.index('id="summary"')
    for words in ("track continuously", "mediate in time", "threshold tonight", "the top 5% of open disputes",
                  "p is the chance that the dispute escalates, turns violent", "Flagged"):
        assert words in text, words
    assert re.search(r"p ≥ 0\.\d{3}", text)
    images = _images(text)
    assert len(images) == 2
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    night = read_nightly(nights["dirs"][-1])
    red = night.scores.loc[night.scores["tier"] == "red", "dispute_id"]
    assert all(i in text for i in red.head(5))
    assert f"{audit.summary['escalations']}</b>escalations" in text.replace(",", "")
    assert "model dispute-risk version 7 (run abc)" in text


def test_tiers_section_records_the_rule_thresholds_and_capacities(nights, tmp_path):
    text = render_report(nights["dirs"][-1])
    assert 'id="tiers"' in text and "share: red 5.0%, yellow 15.0% of each night" in text
    assert "ranked over tonight" in text
    night = read_nightly(nights["dirs"][-1])
    red_min = night.scores.loc[night.scores["tier"] == "red", "probability"].min()
    assert f"{red_min:.3f}" in text  # the red threshold tonight's ranking set
    sim = nights["sim"]
    out = tmp_path / "cap"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        score_batch(model=nights["predictor"], events=sim.events,
                    entities=sim.entities, as_of=DAYS[-1], out=out, tiers={"by": "station", "capacity": {"S01": 4}})
    text = render_report(out)
    assert "disputes by station; capacities for 1 area(s)" in text
    assert "S01: " in text and "capacity: red allowed 4" in text


def test_drift_section_and_escaping(nights):
    text = render_report(nights["hostile"])
    assert 'status-watch">watch' in text
    # drift in words: the feature's phrase, what changed, its status; no raw column, no "informational"
    assert "threat: N times in the last 30 days" in text and "0.31" in text and "0.137" in text
    assert "count_threat_30D" not in text and "informational" not in text
    assert "context: reported, not alerting" in text
    assert "no drift data" not in text
    assert "no outcomes given" in text
    assert "<script" not in text.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert "evil.example" in text and not re.search(r"<img [^>]*evil", text)


def test_write_report_and_cli(nights, tmp_path):
    from riskmodel.cli import main

    out = write_report(tmp_path / "a" / "report.html", scores=nights["dirs"][-1], history=nights["dirs"][:-1],
                       outcomes=nights["events"])
    assert out.exists() and "Outcome audit" in out.read_text(encoding="utf-8")
    rc = main(["report", "--scores", str(nights["dirs"][-1]), "--history", *map(str, nights["dirs"][:-1]),
               "--outcomes", str(nights["events"]), "--out", str(tmp_path / "cli.html")])
    assert rc == 0 and (tmp_path / "cli.html").stat().st_size > 10_000
    rc = main(["barometer", "--scores", *map(str, nights["dirs"]), "--out", str(tmp_path / "b.csv"),
               "--plots", str(tmp_path / "plots")])
    assert rc == 0
    table = pd.read_csv(tmp_path / "b.csv")
    assert table["n"].sum() == sum(len(pd.read_parquet(d / "scores.parquet")) for d in nights["dirs"])
    assert (tmp_path / "plots" / "barometer_heatmap.png").exists()
    assert main(["report", "--scores", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 2
    assert main(["report", "--scores", str(nights["dirs"][-1]), "--explain", "D0000001",
                 "--out", str(tmp_path / "x.html")]) == 2  # the night names no model file: --model needed


def test_report_reads_the_model_only_for_what_uses_it(nights, tmp_path, capsys):
    """`report --model X` read X (from MLflow, for a URI) though nothing but the audit's reasons,
    --explain and the drift table's feature names uses it: it is read only for those."""
    from riskmodel.cli import main

    missing = str(tmp_path / "no-such-model")
    assert main(["report", "--scores", str(nights["dirs"][-1]), "--model", missing,  # no drift table
                 "--out", str(tmp_path / "a.html")]) == 0
    assert main(["report", "--scores", str(nights["hostile"]), "--model", missing,  # its features named
                 "--out", str(tmp_path / "b.html")]) == 2
    assert "no-such-model' not found" in capsys.readouterr().err


@pytest.mark.parametrize("horizon", ["abc", "90"])
def test_a_bad_horizon_is_refused_without_outcomes_too(nights, tmp_path, capsys, horizon):
    """--horizon was checked only when --outcomes used it: `--horizon abc` alone passed."""
    from riskmodel.cli import main

    assert main(["report", "--scores", str(nights["dirs"][-1]), "--horizon", horizon,
                 "--out", str(tmp_path / "a.html")]) == 2
    assert f"--horizon '{horizon}'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=f"horizon '{horizon}'"):
        write_report(tmp_path / "b.html", scores=nights["dirs"][-1], horizon=horizon)


_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (i) { return !i.complete || i.naturalWidth === 0; });
  var out = document.createElement("pre");
  out.id = "render-check";
  out.textContent = JSON.stringify({images: imgs.length, broken: broken.length,
    widths: imgs.map(function (i) { return i.naturalWidth; }),
    tables: document.querySelectorAll("table").length, height: document.body.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


def _run_chromium(binary: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


FOREIGN_KINDS = {"call_110": "Call-Received", "quarrel": "verbal dispute", "follow_up": "FOLLOW_UP_VISIT",
                 "mediation_success": "mediation_ok", "mediation_failed": "mediation_failed",
                 "threat": "Threat Made", "property_damage": "vandalism", "fight": "physical_fight",
                 "petition": "petition", "self_harm_threat": "self-harm", "criminal_case": "ARREST",
                 "injury": "hospitalised"}


@pytest.fixture(scope="module")
def foreign(tmp_path_factory):
    """Two nights of a foreign extract: its own column names and kinds, no station or any
    other area column, no labels configured."""
    sim = simulate_disputes(1500, start="2022-01-01", end="2024-12-31", seed=21)
    events = sim.events.rename(columns={"dispute_id": "case_no", "time": "reported", "kind": "event_type",
                                        "narrative": "notes", "party_id": "person"})
    events["event_type"] = events["event_type"].map(FOREIGN_KINDS)
    entities = sim.entities.rename(columns={"dispute_id": "case_no", "category": "case_type"})[
        ["case_no", "case_type", "closed_at"]]
    schema = EventSchema(entity_col="case_no", time_col="reported", kind_col="event_type", text_col="notes",
                         party_col="person", entity_categorical_cols=("case_type",), entity_time_cols=(),
                         group_cols=(), closed_col="closed_at", outcome_kinds=("ARREST", "hospitalised"))
    ev = prepare_events(events, schema)
    lab = make_labels(ev, make_cutoffs(ev, schema, entities=entities), schema)
    model = RiskModel(schema=schema, features=FeatureBuilder(schema=schema), n_estimators=60,
                      lgbm_params={"num_threads": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model.fit(ev, lab[~lab.censored], entities=entities)
        predictor = Predictor(model, model_name="their-model", model_version="3", run_id="", uri="memory")
        root = tmp_path_factory.mktemp("foreign")
        for day in ("2024-05-25", "2024-06-01"):
            score_batch(model=predictor, events=events, entities=entities, as_of=day, out=root / day)
    return {"dirs": [root / "2024-05-25", root / "2024-06-01"], "model": model, "events": events,
            "entities": entities}


def _variant(name, nights, foreign, tmp_path) -> str:
    if name == "several nights":
        return render_report(nights["hostile"], history=nights["dirs"][:-1],
                             audit=audit_outcomes(nights["dirs"], nights["sim"].events))
    if name == "one night":
        return render_report(nights["dirs"][-1])
    if name == "no area column":
        night = read_nightly(nights["dirs"][-1])
        night.scores = night.scores.drop(columns="station")
        night.worklists = night.worklists.drop(columns="station")
        return render_report(night, history=[read_nightly(nights["dirs"][0]).scores.drop(columns="station")])
    return render_report(foreign["dirs"][-1], history=foreign["dirs"][:-1], model=foreign["model"])


@pytest.mark.parametrize("variant", ["several nights", "one night", "no area column", "foreign"])
def test_report_variants_explain_themselves(variant, nights, foreign, tmp_path):
    text = _variant(variant, nights, foreign, tmp_path)
    assert 'id="legend"' in text and "threshold tonight" in text
    assert "<script" not in text.lower()
    n_nights = 1 if variant == "one night" else 2 if variant in ("no area column", "foreign") else 3
    if n_nights == 1:
        assert "only: no trend and no weekly change yet" in text
    if variant in ("no area column", "foreign"):
        assert len(_images(text)) == 1  # the trend; no heat map without areas
        assert "(city)" in text  # work lists for the whole city
    else:
        assert len(_images(text)) == 2
        stations = read_nightly(nights["dirs"][-1]).scores["station"].nunique()
        assert stations > 15 and f"the other {stations - 15} stations</summary>" in text  # many: folded
    if variant == "foreign":
        assert "their-model version 3" in text
        assert "Threat Made" in text or "vandalism" in text or "physical fight" in text  # kinds read as words
        assert not re.search(r"\b(count|kw|days_since|streak)_\w+", text)
        scores = read_nightly(foreign["dirs"][-1]).scores
        top = scores[scores["tier"] != "blue"].sort_values("probability", ascending=False)
        assert top["case_no"].iloc[0] in text and "<th>case_type</th>" in text  # their id and context columns


@pytest.mark.parametrize("variant", ["several nights", "one night", "no area column", "foreign"])
def test_report_renders_in_headless_chromium(variant, nights, foreign, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs it where apt-get is available)")
    text = _variant(variant, nights, foreign, tmp_path)
    n_images = len(_images(text))
    page = tmp_path / "report.html"
    page.write_text(text, encoding="utf-8")
    probe = tmp_path / "probe.html"  # the report itself has no script; the probe adds one
    probe.write_text(text.replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    done = _run_chromium(binary, tmp_path, "--dump-dom", probe.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    match = re.search(r'<pre id="render-check">(.*?)</pre>', done.stdout, re.S)
    assert match, done.stdout[-2000:]
    check = json.loads(match.group(1).replace("&quot;", '"'))
    assert check["images"] == n_images >= 1
    assert check["broken"] == 0, check
    assert min(check["widths"]) > 100
    assert check["tables"] >= 4 and check["height"] > 1200
    assert "evil.example" not in "".join(re.findall(r'<img [^>]*src="([^"]*)"', done.stdout))

    shot = tmp_path / "shot.png"
    done = _run_chromium(binary, tmp_path, f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 0.05  # not a blank page
    assert (np.abs(pixels - pixels[0, 0]).sum(axis=2) > 0.3).mean() > 0.05


def test_report_explains_disputes(nights, tmp_path):
    """write_report(explain=[...]): each dispute's card (tier, threshold, reasons, plot)."""
    sim = nights["sim"]
    night = read_nightly(nights["dirs"][-1])
    red = night.scores.loc[night.scores["tier"] == "red", "dispute_id"].iloc[0]
    out = write_report(tmp_path / "r.html", scores=nights["dirs"][-1], model=nights["model"], events=sim.events,
                       entities=sim.entities, explain=[red])
    text = out.read_text(encoding="utf-8")
    assert 'id="explained"' in text and f'id="explain-{red}"' in text
    assert "red from p ≥" in text and "Every contribution" in text
    assert len(_images(text)) == 3  # trend, heat map and the dispute's waterfall + timeline
    with pytest.raises(ModelError, match="model .memory. not found"):  # the night's model was in memory
        write_report(tmp_path / "x.html", scores=nights["dirs"][-1], explain=[red])


@pytest.mark.parametrize("area", ["auto", "station"])
def test_explained_card_gives_the_thresholds_tonights_tiers_had(nights, tmp_path, area):
    """Tiers set city-wide: the card gives the city's thresholds, as the legend does, whatever
    the dispute's station and the report's area."""
    sim = nights["sim"]
    night = read_nightly(nights["dirs"][-1])
    city = night.manifest["tiers"]["areas"][0]
    assert night.manifest["tiers"]["by"] is None
    red = night.scores[(night.scores["tier"] == "red") & (night.scores["overrides"] == "")]
    floors = red.groupby("station", observed=True)["probability"].min()
    assert floors.max() > city["red_threshold"] + 0.001
    case = red[red["station"] == floors.idxmax()].sort_values("probability")["dispute_id"].iloc[0]
    out = write_report(tmp_path / "r.html", scores=nights["dirs"][-1], model=nights["model"], events=sim.events,
                       entities=sim.entities, explain=[case], area=area)
    card = out.read_text(encoding="utf-8").split(f'id="explain-{case}"', 1)[1]
    assert f"red from p ≥ {city['red_threshold']:.3f}" in card
    assert "the lowest p that got each tier tonight in the city" in card


def test_audit_horizon_defaults_to_the_models(nights, tmp_path):
    """--outcomes without --horizon audits over the horizon the manifest records for the model
    (the legend's); an explicit horizon wins; 90 days for a model that records none."""
    from riskmodel.cli import main

    def audit_line(path) -> str:
        return re.search(r"escalations from [^<]*?\(horizon [^)]*\)", Path(path).read_text(encoding="utf-8")).group(0)

    night = tmp_path / "night"
    shutil.copytree(nights["dirs"][-1], night)
    manifest = json.loads((night / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["horizon"] = "30D"
    (night / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    out = write_report(tmp_path / "a.html", scores=night, outcomes=nights["sim"].events)
    assert "in the 30 days after tonight" in out.read_text(encoding="utf-8")  # the legend
    assert "(horizon 30 days)" in audit_line(out)
    out = write_report(tmp_path / "b.html", scores=night, outcomes=nights["sim"].events, horizon="60D")
    assert "(horizon 60 days)" in audit_line(out)
    assert main(["report", "--scores", str(night), "--outcomes", str(nights["events"]),
                 "--out", str(tmp_path / "c.html")]) == 0
    assert "(horizon 30 days)" in audit_line(tmp_path / "c.html")
    out = write_report(tmp_path / "d.html", scores=nights["dirs"][-1], outcomes=nights["sim"].events)
    assert "(horizon 90 days)" in audit_line(out)  # the model records no horizon


def test_legend_gives_the_rule_the_night_applied(nights, tmp_path):
    """Tiers set per station read "the top 5% of open disputes" and one city-wide threshold
    (3% ended red); a night on the trained cut-offs read the shares too. The legend now gives
    the rule the manifest records."""
    from html import unescape

    def legend(folder) -> str:
        return unescape(render_report(folder).split('id="legend"', 1)[1].split("</table>", 1)[0])

    sim = nights["sim"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        for name, tiers in (("station", {"by": "station", "capacity": {"S01": 4}}), ("trained", "trained")):
            score_batch(model=nights["predictor"], events=sim.events, entities=sim.entities, as_of=DAYS[-1],
                        out=tmp_path / name, tiers=tiers)
    text = legend(tmp_path / "station")
    assert "the top 5% of each station's open disputes, rounded down (a station with fewer than 20 gets none); " \
           "in the 1 station(s) with a capacity, as many as it takes" in text
    assert "the next 15% of each station's" in text and "under its station's yellow threshold" in text
    assert "the top 5% of open disputes" not in text and "each station its own (see Tiers tonight)" in text
    trained = read_nightly(tmp_path / "trained").manifest["tiers"]["trained_thresholds"]
    text = legend(tmp_path / "trained")
    assert f"p ≥ {trained['red']:.3g}" in text and "top 5%" not in text
    assert "the top 5% of open disputes" in legend(nights["dirs"][-1])  # city-wide shares, as before
