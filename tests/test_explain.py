"""explain: one dispute's timeline, probability, tier and threshold tonight, and every
contribution behind it as phrases, for a red, a yellow and a blue case; the plot; the CLI."""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import riskmodel as rm
from riskmodel import DataError, DataWarning
from riskmodel.cli import main
from riskmodel.model._artifact import save_model_dir

AS_OF = "2024-06-01"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    sim = rm.simulate_disputes(1500, start="2022-01-01", end="2024-12-31", seed=31)
    ev = rm.prepare_events(sim.events, sim.schema)
    lab = rm.make_labels(ev, rm.make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = rm.RiskModel(schema=sim.schema, n_estimators=60, lgbm_params={"num_threads": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        model.fit(ev, lab[~lab.censored], entities=sim.entities)
        folder = save_model_dir(model, root / "model")
        sim.events.to_parquet(root / "events.parquet", index=False)
        sim.entities.to_parquet(root / "entities.parquet", index=False)
        rm.score_batch(model=str(folder), events=root / "events.parquet", entities=root / "entities.parquet",
                       as_of=AS_OF, out=root / "night")
    scores = rm.read_nightly(root / "night").scores
    return {"root": root, "dir": root / "night", "sim": sim, "model": model, "scores": scores}


def _case(scores: pd.DataFrame, tier: str) -> str:
    rows = scores[(scores["tier"] == tier) & (scores["overrides"] == "")].sort_values("probability")
    return str(rows["dispute_id"].iloc[len(rows) // 2])


@pytest.mark.parametrize("tier", ["red", "yellow", "blue"])
def test_explain_a_case(night, tier):
    sim, scores, model = night["sim"], night["scores"], night["model"]
    case = _case(scores, tier)
    ex = rm.explain(case, night["dir"], model=model, events=sim.events, entities=sim.entities)
    row = scores[scores["dispute_id"] == case].iloc[0]
    assert ex.scored and ex.tier == tier and ex.dispute_id == case
    assert ex.probability == pytest.approx(row["probability"])
    assert ex.as_of == pd.Timestamp(AS_OF)

    # its tier and the threshold that tier had tonight
    th = ex.thresholds
    # share tiers rank each night's disputes (score_batch's default): the thresholds are tonight's
    assert th["source"] == "tonight"
    reds = scores["probability"][scores["tier"].astype(str) == "red"]
    if th["red"] is not None:  # the lowest red p in the case's area (none: no red there tonight)
        assert reds.min() - 1e-12 <= th["red"] <= reds.max() + 1e-12
    if tier == "red":
        assert ex.probability >= th["red"]
    elif tier == "yellow":
        assert th["yellow"] <= ex.probability < (th["red"] if th["red"] is not None else 1.0)
    elif th["yellow"] is not None:  # a blue case in an area with yellow cases tonight
        assert ex.probability < th["yellow"]
    sentence = ex.tier_sentence()
    assert sentence.startswith(f"{tier}: p = {ex.probability:.3f}") and "threshold" in sentence

    # every contribution behind p, as phrases; they add up to the model's score
    c = ex.contributions
    assert len(c) > 10 and (c["contribution"] != 0).all()
    assert (np.diff(c["contribution"].abs().to_numpy()) <= 1e-7).all()  # largest first
    raw = model.predict_raw(model.transform_features(sim.events, pd.DataFrame(
        {"dispute_id": [case], "as_of": [pd.Timestamp(AS_OF)]}), entities=sim.entities))[0]
    assert ex.base_value + c["contribution"].sum() == pytest.approx(np.log(raw / (1 - raw)), abs=1e-4)
    assert ex.raw_log_odds == pytest.approx(np.log(raw / (1 - raw)), abs=1e-4)
    for zh, en in zip(c["zh"], c["en"], strict=True):
        assert re.search(r"[\u4e00-\u9fff「]", zh) and re.search(r"[a-z]", en)
        assert not re.search(r"\b(count|kw|ctx|streak|party|trend)_\w+", zh + en), (zh, en)
    # the reasons are the work list's (blue ones computed here: the batch skips them)
    roles = dict(zip(c["feature"], c["role"], strict=True))
    if tier != "blue":
        assert [f"{z} / {e}" for z, e in ex.reasons] == row["reasons"].split("; ")
    assert 1 <= len(ex.reasons) <= model.top_k_reasons
    assert sum(r == "reason" for r in roles.values()) == len(ex.reasons)
    for name in ("station", "category"):
        assert roles.get(name, "context") == "context"  # context, never a reason
    assert set(ex.context["feature"]) >= {"station", "category"}

    # the timeline: the dispute's own events, strictly before as_of, in order
    own = sim.events[(sim.events["dispute_id"] == case) & (sim.events["time"] < pd.Timestamp(AS_OF))]
    assert len(ex.timeline) == len(own) > 0
    assert ex.timeline["time"].is_monotonic_increasing
    assert (ex.timeline["time"] < pd.Timestamp(AS_OF)).all()
    assert set(ex.timeline["kind"]) == set(own["kind"])

    text = ex.to_text()
    assert f"Dispute {case}" in text and tier.upper() in text and "Timeline" in text and "Context" in text
    fig = ex.plot()
    assert len(fig.axes) == 2
    html = ex.to_html()
    assert html.count("<img") == 1 and "<script" not in html and f'id="explain-{case}"' in html


def test_explain_a_dispute_not_scored_tonight(night):
    """An escalated dispute is described just before it escalated, its tier by the model's policy."""
    sim = night["sim"]
    ns = rm.read_nightly(night["dir"]).not_scored
    escalated = ns.loc[ns["reason"].str.contains("escalated"), "dispute_id"].iloc[0]
    ex = rm.explain(escalated, night["dir"], model=night["model"], events=sim.events, entities=sim.entities)
    assert not ex.scored and "escalated" in ex.note and "just before it escalated" in ex.note
    first_outcome = sim.events.loc[(sim.events["dispute_id"] == escalated)
                                   & sim.events["kind"].isin(["criminal_case", "injury"]), "time"].min()
    assert ex.as_of == first_outcome
    assert ex.tier in ("red", "yellow", "blue") and 0 <= ex.probability <= 1
    with pytest.raises(rm.DataError, match="neither in the scores nor in the events"):
        rm.explain("NO-SUCH-DISPUTE", night["dir"], model=night["model"], events=sim.events, entities=sim.entities)


def test_explain_says_the_night_rejected_a_disputes_events(night, tmp_path):
    """A dispute whose every event row the night rejected is in neither the scores nor
    not_scored: explain says the night rejected its rows, and why."""
    sim, root = night["sim"], night["root"]
    events = sim.events.copy()
    victim = night["scores"]["dispute_id"].iloc[0]
    events["time"] = events["time"].astype(str)  # a text column, as an export may give
    events.loc[events["dispute_id"] == victim, "time"] = "not a time"
    events.to_parquet(tmp_path / "events.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rm.score_batch(model=str(root / "model"), events=tmp_path / "events.parquet",
                       entities=root / "entities.parquet", as_of=AS_OF, out=tmp_path / "night")
        ex = rm.explain(victim, tmp_path / "night", model=night["model"], events=sim.events, entities=sim.entities)
    n_rows = int((sim.events["dispute_id"] == victim).sum())
    assert not ex.scored
    assert f"the night rejected {n_rows} of its event row(s)" in ex.note and "rejects.parquet" in ex.note
    with pytest.warns(DataWarning), pytest.raises(DataError, match=(
            rf"dispute '{victim}': the night rejected {n_rows} of its event row\(s\) \(unparseable time in 'time'; "
            r"see rejects\.parquet\), and the events given hold no valid row of it either")):
        rm.explain(victim, tmp_path / "night", model=night["model"], events=events, entities=sim.entities)
    # events given with bad rows: the warning says what was ignored and why, not that the night did
    said = (rf"{n_rows} invalid event row\(s\) ignored, as the nightly batch rejects them \({n_rows} row\(s\) with "
            r"unparseable time in 'time', e\.g\. \['not a time'\]; a night lists its own in rejects\.parquet\)")
    with pytest.warns(DataWarning, match=said):
        other = rm.explain(night["scores"]["dispute_id"].iloc[1], tmp_path / "night", model=night["model"],
                           events=events, entities=sim.entities)
    assert other.scored


def test_explain_and_sweep_read_ids_written_as_numbers_or_text_as_one(night):
    """A night scored from a file holding the ids as numbers, explained with an export
    holding them as text (or the other way round), matches them by their text; events
    holding none of the night's disputes are refused in the keyword's words."""
    from riskmodel.ops._sweep import _ids_as_in

    as_text = _ids_as_in(pd.Series([4401000000000051, 7]), pd.Series(["7", "x"], dtype=object))
    assert as_text.tolist() == ["4401000000000051", "7"]
    as_ints = _ids_as_in(pd.Series(["4401000000000051", "7"], dtype=object), pd.Series([7, 8]))
    assert as_ints.tolist() == [4401000000000051, 7] and pd.api.types.is_integer_dtype(as_ints)
    kept = pd.Series(["D-7", "8"], dtype=object)
    assert _ids_as_in(kept, pd.Series([7, 8])) is kept  # not all whole numbers: as they are
    sim = night["sim"]
    case = night["scores"]["dispute_id"].iloc[0]
    other = sim.events.assign(dispute_id="ELSEWHERE-" + sim.events["dispute_id"].astype(str))
    with pytest.raises(rm.DataError, match=r"none of the night's disputes asked for .* is in the events given; "
                                           r"pass the event log the night scored as events="):
        rm.explain(case, night["dir"], model=night["model"], events=other, entities=sim.entities)


def test_explain_cli(night, tmp_path, capsys, monkeypatch):
    """The model and events default to the night's manifest; a PNG and an HTML page."""
    monkeypatch.chdir(tmp_path)
    case = _case(night["scores"], "red")
    rc = main(["explain", case, "--scores", str(night["dir"]), "--entities", str(night["root"] / "entities.parquet"),
               "--html", str(tmp_path / "page.html")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"Dispute {case}" in out and "RED" in out and "red from p ≥" in out
    png = tmp_path / f"explain-{case}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page.lower()
    rc = main(["explain", case, "--scores", str(night["dir"])])  # the model needs entities
    assert rc == 2 and "entities" in capsys.readouterr().err


def test_explain_and_sweep_load_the_version_that_scored_the_night(night, tmp_path, monkeypatch, capsys):
    """After a promotion, last night's case is explained (and swept) with the version that
    scored it, from the tracking store the manifest records, wherever the command runs."""
    from riskmodel.lifecycle import recorded_uri
    from riskmodel.lifecycle._store import client_for, ensure_experiment

    store = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    client = client_for(store)
    experiment = ensure_experiment(client, store, "explain")
    client.create_registered_model("night-risk")
    broken = tmp_path / "not-a-model"  # version 2: no riskmodel.json, loading it fails
    broken.mkdir()
    (broken / "README").write_text("not a model")
    for folder in (night["root"] / "model", broken):
        run = client.create_run(experiment).info
        client.log_artifacts(run.run_id, str(folder), "model")
        version = str(client.create_model_version("night-risk", f"{run.artifact_uri}/model", run.run_id).version)
        client.set_registered_model_alias("night-risk", "champion", version)
        if version == "1":  # the night is scored by the champion of the day: version 1
            monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)
                rm.score_batch(model="models:/night-risk@champion", events=night["root"] / "events.parquet",
                               entities=night["root"] / "entities.parquet", as_of=AS_OF, out=tmp_path / "night")
            monkeypatch.delenv("MLFLOW_TRACKING_URI")

    elsewhere = tmp_path / "elsewhere"  # no MLFLOW_TRACKING_URI, another folder: the manifest's store
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    case = _case(night["scores"], "red")
    ex = rm.explain(case, tmp_path / "night", entities=night["sim"].entities)
    assert ex.model == "night-risk version 1"
    assert ex.probability == pytest.approx(night["scores"].set_index("dispute_id").loc[case, "probability"])
    rc = main(["sweep", "--scores", str(tmp_path / "night"), "--like", case,
               "--entities", str(night["root"] / "entities.parquet")])
    assert rc == 0, capsys.readouterr().err
    assert case in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []  # no ./riskmodel-mlflow/ made here
    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow's process-wide settings untouched
    assert rm.read_nightly(tmp_path / "night").model_store == store
    # the outcome audit explains the night's missed cases with that version too, not with the
    # model it is given (today's champion): their reasons went with another model than their p
    import riskmodel.ops._night as night_module
    from riskmodel.lifecycle._registry import Predictor

    loaded, load_predictor = [], night_module.load_predictor
    monkeypatch.setattr(night_module, "load_predictor", lambda uri, store=None: loaded.append((uri, store)) or
                        load_predictor(uri, store=store))
    import copy

    other = copy.deepcopy(rm.load(str(night["root"] / "model")).model)  # today's champion: another model
    other.tier_policy_.red_threshold_ = 0.99
    today = Predictor(other, model_name="night-risk", model_version="2", run_id="", uri="models:/night-risk@champion")
    events = night["sim"].events
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        audit = rm.audit_outcomes([tmp_path / "night"], events, model=today, events=events,
                                  entities=night["sim"].entities)
    assert (audit.cases["status"] == "blue").any() and loaded == [("models:/night-risk/1", store)]
    loaded.clear()  # given the model that scored the night (its fingerprint is in the manifest): not read again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rm.audit_outcomes([tmp_path / "night"], events, model=rm.load(str(night["root"] / "model")), events=events,
                          entities=night["sim"].entities)
    assert loaded == []
    # the store is recorded without a password, and relative to no working directory
    assert recorded_uri("https://user:secret@mlflow.example:5000/x") == "https://mlflow.example:5000/x"
    assert recorded_uri("sqlite:///mlflow.db") == f"sqlite:///{elsewhere / 'mlflow.db'}"


def test_explain_uses_the_model_that_scored_the_night_not_another_given(night, tmp_path, capsys):
    """A model given whose fingerprint is not the one the night records (today's champion,
    retrained since) explained the night's p with another model's trees, cut-offs and reasons:
    the version the manifest records is read instead, as the audit does; the model given stands
    in, with a warning, only when that version cannot be read."""
    import copy
    import json
    import shutil

    sim, case = night["sim"], _case(night["scores"], "red")
    other = copy.deepcopy(night["model"])  # another model: the night's, with other cut-offs
    other.tier_policy_.red_threshold_ = 0.99
    own = night["model"].tier_policy_.red_threshold_
    ex = rm.explain(case, night["dir"], model=other, events=sim.events, entities=sim.entities)
    assert ex.thresholds["model"]["red"] == pytest.approx(own) != 0.99
    assert ex.model == rm.read_nightly(night["dir"]).model_uri  # the folder that scored the night, by its path

    moved = tmp_path / "night"  # the same night, its model folder gone
    shutil.copytree(night["dir"], moved)
    manifest = json.loads((moved / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["uri"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.warns(DataWarning, match="could not be read.*the model given is used instead"):
        ex = rm.explain(case, moved, model=other, events=sim.events, entities=sim.entities)
    assert ex.thresholds["model"]["red"] == 0.99
    with pytest.raises(rm.ModelError, match="needs the model that scored the night .* could not be read"):
        rm.explain(case, moved, events=sim.events, entities=sim.entities)
    # the command line's sweep checks the model it is given in the same way
    save_model_dir(other, tmp_path / "other")
    capsys.readouterr()
    for scores, stands_in in ((night["dir"], False), (moved, True)):
        assert main(["sweep", "--scores", str(scores), "--like", case, "--model", str(tmp_path / "other"),
                     "--entities", str(night["root"] / "entities.parquet")]) == 0
        assert ("the model given is used instead" in capsys.readouterr().err) is stands_in


def test_thresholds_are_those_of_the_areas_the_tiers_were_set_in(night, tmp_path):
    """Tiers set city-wide (score_batch's default shares): the city's thresholds, whatever the
    case's station; tiers set per station: its station's."""
    sim, scores = night["sim"], night["scores"]
    tiers = rm.read_nightly(night["dir"]).manifest["tiers"]
    assert tiers["by"] is None
    red = scores[(scores["tier"] == "red") & (scores["overrides"] == "")]
    floors = red.groupby("station", observed=True)["probability"].min()
    station = floors.idxmax()  # the station whose lowest red is furthest above the city's
    assert floors.max() > tiers["areas"][0]["red_threshold"] + 0.001
    case = str(red[red["station"] == station].sort_values("probability")["dispute_id"].iloc[0])
    ex = rm.explain(case, night["dir"], model=night["model"], events=sim.events, entities=sim.entities)
    assert ex.thresholds["where"] == "the city"
    assert ex.thresholds["red"] == pytest.approx(tiers["areas"][0]["red_threshold"])
    assert ex.thresholds["yellow"] == pytest.approx(tiers["areas"][0]["yellow_threshold"])
    assert f"red from p ≥ {tiers['areas'][0]['red_threshold']:.3f}" in ex.tier_sentence()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rm.score_batch(model=str(night["root"] / "model"), events=night["root"] / "events.parquet",
                       entities=night["root"] / "entities.parquet", as_of=AS_OF, out=tmp_path / "by-station",
                       tiers={"by": "station", "red": 0.2})  # a few disputes per station: one red each
    night_by = rm.read_nightly(tmp_path / "by-station")
    red = night_by.scores[(night_by.scores["tier"] == "red") & (night_by.scores["overrides"] == "")]
    case, station = red.sort_values("probability")[["dispute_id", "station"]].iloc[0]
    ex = rm.explain(case, night_by, model=night["model"], events=sim.events, entities=sim.entities)
    assert ex.thresholds["where"] == f"station {station}"
    assert ex.thresholds["red"] == pytest.approx(red.loc[red["station"] == station, "probability"].min())


def test_explain_and_sweep_read_an_entities_table_as_the_night_did(night):
    """The night sets aside an entities row repeated exactly and the rows of an id on several
    different rows; explain refused that same file ("ids must be unique"), so no case of the
    night could be explained with the file that scored it."""
    sim, scores = night["sim"], night["scores"]
    case = _case(scores, "red")
    other = str(sim.entities["dispute_id"].iloc[0])
    entities = pd.concat([sim.entities, sim.entities[sim.entities["dispute_id"] == case],  # an exact repeat
                          sim.entities[sim.entities["dispute_id"] == other].assign(station="S99")],  # a conflict
                         ignore_index=True)
    ex = rm.explain(case, night["dir"], model=night["model"], events=sim.events, entities=entities)
    plain = rm.explain(case, night["dir"], model=night["model"], events=sim.events, entities=sim.entities)
    assert ex.probability == pytest.approx(plain.probability) and ex.tier == plain.tier
    result = rm.sweep(night["dir"], like=case, model=night["model"], events=sim.events, entities=entities)
    assert len(result.matches) >= 1
    with pytest.raises(rm.DataError, match=r"entities is missing required column\(s\) \['dispute_id'\]"):
        rm.explain(case, night["dir"], model=night["model"], events=sim.events,
                   entities=entities.rename(columns={"dispute_id": "case"}))


def test_report_explains_a_case_with_the_model_and_events_the_night_names(night, tmp_path):
    """`report --explain` demanded --model and --events, which `explain` reads from the manifest."""
    case = _case(night["scores"], "red")
    out = tmp_path / "report.html"
    assert main(["report", "--scores", str(night["dir"]), "--explain", case, "--entities",
                 str(night["root"] / "entities.parquet"), "--out", str(out)]) == 0
    assert f'id="explain-{case}"' in out.read_text(encoding="utf-8")


def test_report_audits_and_explains_with_the_inputs_given(night, tmp_path, capsys):
    """`report --outcomes --explain --entities` crashed (the entities path reached the audit as
    text); `--outcomes --model` without `--events` ignored the model (the missed blue cases got no
    reasons): it now reads the events the night names; --events / --entities that nothing reads
    are refused in the flags' words."""
    case, root = _case(night["scores"], "red"), night["root"]
    out = tmp_path / "report.html"
    assert main(["report", "--scores", str(night["dir"]), "--outcomes", str(root / "events.parquet"), "--explain",
                 case, "--entities", str(root / "entities.parquet"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert f'id="explain-{case}"' in text and "escalations</span>" in text
    assert main(["report", "--scores", str(night["dir"]), "--outcomes", str(root / "events.parquet"), "--model",
                 str(root / "model"), "--out", str(out)]) == 2
    # a model read from a folder is named by its path ("model version local" named no version)
    assert f"needs the entities table: {root / 'model'} was trained with one; pass --entities PATH" \
        in capsys.readouterr().err
    assert main(["report", "--scores", str(night["dir"]), "--outcomes", str(root / "events.parquet"), "--model",
                 str(root / "model"), "--entities", str(root / "entities.parquet"), "--out", str(out)]) == 0
    missed = out.read_text(encoding="utf-8").split('id="audit"', 1)[1]
    blue = [row for row in re.findall(r"<tr>(.*?)</tr>", missed, flags=re.S) if "<td>blue</td>" in row]
    assert blue and all(" / " in row for row in blue)  # each with its reasons, in words
    assert main(["report", "--scores", str(night["dir"]), "--entities", str(root / "entities.parquet"),
                 "--out", str(out)]) == 2
    assert "--events and --entities are read for --outcomes" in capsys.readouterr().err


def test_a_dispute_with_no_area_gets_the_thresholds_of_the_disputes_with_none(night, tmp_path):
    """Tiers set per station: a dispute with no station was ranked among the disputes with none
    ("(unknown)"), and explain gave the city's thresholds."""
    sim, root = night["sim"], night["root"]
    entities = sim.entities.copy()
    entities["station"] = entities["station"].astype(object)
    entities.loc[entities.index[::10], "station"] = None
    entities.to_parquet(tmp_path / "entities.parquet", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        rm.score_batch(model=str(root / "model"), events=root / "events.parquet", entities=tmp_path / "entities.parquet",
                       as_of=AS_OF, out=tmp_path / "night", tiers={"by": "station", "red": 0.2})
    scores = rm.read_nightly(tmp_path / "night").scores
    none = scores[scores["station"].isna() & (scores["overrides"] == "")]
    case = str(none.sort_values("probability")["dispute_id"].iloc[-1])
    ex = rm.explain(case, tmp_path / "night", model=night["model"], events=sim.events, entities=entities)
    assert ex.thresholds["where"] == f"station (unknown), the {scores['station'].isna().sum()} dispute(s) with no station"
    assert ex.thresholds["red"] == pytest.approx(none.loc[none["tier"] == "red", "probability"].min())
    assert "tonight in station (unknown)" in ex.tier_sentence()
    few = rm.read_nightly(tmp_path / "night")
    few.scores = few.scores[few.scores["station"].notna() | (few.scores["dispute_id"] == case)]  # it alone: blue
    few.scores.loc[few.scores["dispute_id"] == case, "tier"] = "blue"
    ex = rm.explain(case, few, model=night["model"], events=sim.events, entities=entities)
    assert ex.tier_sentence().endswith("no dispute got red or yellow tonight in station (unknown), the 1 dispute(s) "
                                       "with no station.")


@pytest.mark.parametrize("command", ["explain", "report", "sweep"])
def test_explain_report_and_sweep_name_a_refused_file_by_its_keyword_and_flag(night, tmp_path, capsys, command):
    """A CSV header naming a column twice (and a .tsv) read by explain, the report or the sweep
    was named by its path alone, not by the keyword (``events='x.csv'``) or the flag
    (``--events x.csv``) that gave it, as the nightly run names it."""
    import functools

    sim, root, case = night["sim"], night["root"], _case(night["scores"], "red")
    twice = tmp_path / "events.csv"
    sim.events.assign(again=sim.events["time"]).rename(columns={"again": "time"}).to_csv(twice, index=False)
    ents = tmp_path / "entities.csv"
    sim.entities.assign(again=sim.entities["station"]).rename(columns={"again": "station"}).to_csv(ents, index=False)
    tsv = tmp_path / "events.tsv"
    sim.events.iloc[:100].to_csv(tsv, sep="\t", index=False)

    def head(frame, column):
        at = list(frame.columns).index(column) + 1
        return (f": its header has more than one column named [{column!r}] ({column!r} in columns {at} and "
                f"{frame.shape[1] + 1}); keep one of each (drop or rename the copies) and write the file again.")

    out = tmp_path / "report.html"
    given = {"events": str(root / "events.parquet"), "entities": str(root / "entities.parquet")}
    refusals = [("events", twice, head(sim.events, "time")), ("entities", ents, head(sim.entities, "station")),
                ("events", tsv, " is neither CSV nor parquet.")]
    if command == "report":  # the outcomes too
        refusals.append(("outcomes", twice, head(sim.events, "time")))
    for role, path, words in refusals:
        files = {**given, role: str(path)}
        if command == "explain":
            call = functools.partial(rm.explain, case, night["dir"], events=files["events"], entities=files["entities"])
            argv = ["explain", case, "--scores", str(night["dir"]), "--events", files["events"], "--entities",
                    files["entities"], "--plot", "none"]
        elif command == "sweep":
            call = functools.partial(rm.sweep, night["dir"], like=case, events=files["events"],
                                     entities=files["entities"])
            argv = ["sweep", "--scores", str(night["dir"]), "--like", case, "--events", files["events"],
                    "--entities", files["entities"]]
        else:
            outcomes = files.get("outcomes", given["events"])
            call = functools.partial(rm.write_report, out, scores=night["dir"], outcomes=outcomes, explain=[case],
                                     events=files["events"], entities=files["entities"])
            argv = ["report", "--scores", str(night["dir"]), "--outcomes", outcomes, "--explain", case, "--events",
                    files["events"], "--entities", files["entities"], "--out", str(out)]
        with pytest.raises(rm.DataError) as refused:
            call()
        assert str(refused.value).startswith(f"{role}={str(path)!r}{words}")
        assert refused.value.for_cli().startswith(f"--{role} {path}{words}")
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"riskmodel: error: --{role} {path}{words}") and "Traceback" not in err
    assert not out.exists()


def test_the_report_reads_the_nights_model_once_for_its_audit_and_every_dispute_explained(night, tmp_path,
                                                                                          monkeypatch):
    """write_report read the version that scored the night for the night's inputs, again for
    the audit and again for each dispute explained: when it could not be read, as many
    attempts and as many warnings."""
    import copy
    import json
    import shutil

    import riskmodel.ops._night as night_module

    sim, scores = night["sim"], night["scores"]
    cases = [_case(scores, "red"), _case(scores, "yellow")]
    moved = tmp_path / "night"  # the night, its model folder gone
    shutil.copytree(night["dir"], moved)
    manifest = json.loads((moved / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["uri"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    other = copy.deepcopy(night["model"])  # another model: another fingerprint
    other.tier_policy_.red_threshold_ = 0.99
    loaded, load_predictor = [], night_module.load_predictor
    monkeypatch.setattr(night_module, "load_predictor",
                        lambda uri, store=None: loaded.append(uri) or load_predictor(uri, store=store))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = rm.write_report(tmp_path / "report.html", scores=moved, outcomes=sim.events, explain=cases,
                              model=other, events=sim.events, entities=sim.entities)
    stood_in = [w for w in caught if "could not be read" in str(w.message)]
    assert loaded == [str(tmp_path / "gone")] and len(stood_in) == 1
    text = out.read_text(encoding="utf-8")
    assert all(f'id="explain-{case}"' in text for case in cases)
