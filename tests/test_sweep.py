"""sweep: pattern grammar, rule and similarity matches measured against the simulator's truth."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    ConfigError,
    DataError,
    DataWarning,
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    parse_pattern,
    prepare_events,
    simulate_disputes,
    sweep,
    sweep_inputs,
)
from riskmodel._simulate import _CAT_CODES, EVENT_KINDS
from riskmodel.batch._job import score_batch
from riskmodel.lifecycle._registry import load
from riskmodel.model._artifact import save_model_dir

AS_OF = "2024-06-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model trained on one city, the nightly scores of another, and that city's truth."""
    train = simulate_disputes(3000, start="2022-01-01", end="2024-12-31", seed=1)
    ev = prepare_events(train.events, train.schema)
    lab = make_labels(ev, make_cutoffs(ev, train.schema, entities=train.entities), train.schema)
    model = RiskModel(schema=train.schema, features=FeatureBuilder(schema=train.schema))
    model.fit(ev, lab[~lab.censored], entities=train.entities)
    root = tmp_path_factory.mktemp("sweep")
    predictor = load(str(save_model_dir(model, root / "model")))
    sim = simulate_disputes(8000, start="2022-01-01", end="2024-12-31", seed=11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)  # drift warnings are not this file's subject
        score_batch(model=predictor, events=sim.events, entities=sim.entities, as_of=AS_OF, out=root / "night")
    scores = pd.read_parquet(root / "night" / "scores.parquet")
    inputs = sweep_inputs(predictor, sim.events, scores, entities=sim.entities)
    return {"sim": sim, "predictor": predictor, "scores": scores, "inputs": inputs, "night": root / "night",
            "truth": _truth(sim, AS_OF)}


def _truth(sim, as_of, days: int = 30) -> pd.DataFrame:
    """Per dispute, from the mechanism's own event record (not the noisy narratives):
    category and whether a threat / revenge phrase / weapon / fight happened in the
    ``days`` before ``as_of``."""
    tr = sim._truth
    as_day = (pd.Timestamp(as_of) - sim.start).days
    n_events = np.diff(tr.ev_ptr)
    owner = np.repeat(np.arange(len(n_events)), n_events)
    recent = (tr.ev_day < as_day) & (tr.ev_day >= as_day - days)

    def any_recent(mask):
        out = np.zeros(len(n_events), dtype=bool)
        out[owner[mask & recent]] = True
        return out

    return pd.DataFrame({
        "category": np.asarray(_CAT_CODES)[tr.cat],
        "threat": any_recent(tr.ev_kind == EVENT_KINDS.index("threat")),
        "revenge": any_recent(tr.ev_revenge.astype(bool)),
        "weapon": any_recent(tr.ev_weapon.astype(bool)),
        "fight": any_recent(tr.ev_kind == EVENT_KINDS.index("fight")),
    }, index=pd.Index(sim.entities["dispute_id"].astype(str), name="dispute_id"))


# ------------------------------------------------------------------------------------------
# grammar


def test_parse_pattern_roundtrip_and_operators():
    p = parse_pattern("category = building|family && count_threat_30D >= 1 and station!='S 01' & probability<0.5")
    assert str(p) == "category=building|family & count_threat_30D>=1 & station!='S 01' & probability<0.5"
    assert parse_pattern(str(p)) == p
    frame = pd.DataFrame({"category": ["building", "family", "debt", None],
                          "count_threat_30D": [1.0, 0.0, 3.0, 2.0],
                          "station": ["S02", "S 01", "S03", "S04"], "probability": [0.1, 0.2, 0.3, 0.4]})
    assert p.mask(frame).tolist() == [True, False, False, False]
    assert parse_pattern("category!=debt").mask(frame).tolist() == [True, True, False, False]  # missing never matches


def test_patterns_name_columns_in_any_language_and_with_spaces():
    """A rule printed for a Chinese schema (纠纷类型=neighbour & count_扬言报复_30D>0) could not be
    pasted back: column names were ASCII only; a name with a space is written quoted."""
    p = parse_pattern("纠纷类型=neighbour & count_扬言报复_30D>0 & 'Police Station'=S27")
    assert p.columns == ["纠纷类型", "count_扬言报复_30D", "Police Station"]
    assert str(p) == "纠纷类型=neighbour & count_扬言报复_30D>0 & 'Police Station'=S27"
    assert parse_pattern(str(p)) == p
    frame = pd.DataFrame({"纠纷类型": ["neighbour", "neighbour"], "count_扬言报复_30D": [1.0, 0.0],
                          "Police Station": ["S27", "S27"]})
    assert p.mask(frame).tolist() == [True, False]


@pytest.mark.parametrize("text, where", [
    ("category=building & __import__('os').system('x')", "character 20"),
    ("category", "character 0"),
    ("category=building &", "character 19"),
    ("count_threat_30D > three", "non-number"),
    ("category>building|debt", "alternatives"),
    ("a=1; b=2", "character"),
    ("", "non-empty"),
])
def test_bad_patterns_raise_clear_errors(text, where):
    with pytest.raises(ConfigError, match="sweep pattern") as info:
        parse_pattern(text)
    assert where in str(info.value)


def test_pattern_errors_on_data(world):
    scores = world["scores"]
    with pytest.raises(DataError, match="'no_such_column' is not available"):
        sweep(scores, pattern="no_such_column>0", inputs=world["inputs"])
    with pytest.raises(DataError, match="needs a numeric column"):
        sweep(scores, pattern="category>1", inputs=world["inputs"])
    with pytest.raises(ConfigError, match="needs the disputes' features: pass model= and events="):
        sweep(scores, pattern="count_threat_30D>0")
    with pytest.raises(ConfigError, match="like=<dispute id> or pattern"):
        sweep(scores)


# ------------------------------------------------------------------------------------------
# by rule


@pytest.mark.parametrize("pattern, signal, category", [
    ("category=building & count_threat_30D>0", "threat", "building"),
    ("category=family|neighbour & kw_threat_30D>0", ["threat", "revenge"], ["family", "neighbour"]),
    ("kw_weapon_30D>0", "weapon", None),
])
def test_rule_sweep_precision_against_the_mechanism(world, pattern, signal, category):
    truth = world["truth"]
    result = sweep(world["scores"], pattern=pattern, inputs=world["inputs"])
    m = result.matches
    assert len(m) >= 5
    assert m["by_rule"].all() and not m["by_similarity"].any()
    found = truth.loc[m["dispute_id"].astype(str)]
    signals = [signal] if isinstance(signal, str) else signal
    ok = found[signals].any(axis=1)
    if category is not None:
        ok &= found["category"].isin([category] if isinstance(category, str) else category)
    precision = ok.mean()
    open_truth = truth.loc[world["scores"]["dispute_id"].astype(str)]
    base = open_truth[signals].any(axis=1).mean()
    print(f"rule sweep {pattern!r}: {len(m)} matches, precision {precision:.2f} vs base rate {base:.2f}")
    assert precision >= 0.8, (pattern, precision)
    assert precision > 4 * base


def test_a_pattern_names_a_feature_by_its_event_kinds_own_words(world, monkeypatch):
    """Feature columns name a kind by an ASCII slug (a Chinese kind 扬言报复 is ``kind3``), so a
    rule written with the kind's own words (count_扬言报复_30D>0) named no column. With the model,
    such a name is read as the slug's column, and the sweep finds what the slug's name finds."""
    slugs = world["predictor"].model.features_.kind_slugs_
    monkeypatch.setitem(slugs, "威胁 (恐吓)", "threat")  # as a kind written in Chinese is slugged
    by_slug = sweep(world["scores"], pattern="category=building & count_threat_30D>0", inputs=world["inputs"])
    by_words = sweep(world["scores"], pattern="category=building & 'count_威胁 (恐吓)_30D'>0", inputs=world["inputs"],
                     model=world["predictor"])
    assert len(by_slug.matches) >= 5
    pd.testing.assert_frame_equal(by_words.matches, by_slug.matches)
    with pytest.raises(DataError, match=r"pattern column 'count_威胁 \(恐吓\)_30D' is not available"):
        sweep(world["scores"], pattern="'count_威胁 (恐吓)_30D'>0", inputs=world["inputs"])  # no model: no slugs


def test_rule_sweep_work_lists_are_ranked_per_station(world):
    result = sweep(world["night"], pattern="count_threat_90D>0", inputs=world["inputs"])
    m = result.matches
    assert (m.groupby("station")["rank"].apply(lambda r: list(r) == list(range(1, len(r) + 1)))).all()
    assert (m.groupby("station")["probability"].apply(lambda p: p.is_monotonic_decreasing)).all()
    lists = result.worklists()
    assert sum(len(v) for v in lists.values()) == len(m)
    summary = result.by_area()
    assert summary["matches"].sum() == len(m)


def test_score_columns_need_no_model(world):
    result = sweep(world["scores"], pattern="category=building & tier=red|yellow")
    expected = world["scores"][(world["scores"]["category"] == "building")
                               & world["scores"]["tier"].isin(["red", "yellow"])]
    assert set(result.matches["dispute_id"]) == set(expected["dispute_id"])


# ------------------------------------------------------------------------------------------
# like a case: derived rule and similarity


def test_like_derives_category_and_signals(world):
    scores = world["scores"]
    case = scores[scores["tier"] == "red"].sort_values("probability", ascending=False).iloc[0]
    result = sweep(scores, like=case["dispute_id"], inputs=world["inputs"])
    clauses = result.pattern.clauses
    assert clauses[0].column == "category" and clauses[0].values == (case["category"],)
    assert 1 <= len(clauses) <= 3
    assert all(c.op == ">" for c in clauses[1:])
    assert case["dispute_id"] not in set(result.matches["dispute_id"])
    assert result.case["id"] == case["dispute_id"] and result.case["probability"] == case["probability"]
    drivers = result.case["drivers"]  # its drivers as phrases, not raw feature names
    assert [v for v, _, _ in drivers] == list(result.case["top_contributions"].values())
    assert all(" " in en and not re.search(r"\b(count|kw|streak)_\w+", en) for _, _, en in drivers)
    sim = result.matches.loc[result.matches["by_similarity"], "similarity"]
    assert len(sim) > 0  # the top red case has close neighbours: the checks below are not vacuous
    assert (sim >= 0.7).all()
    assert (result.matches.loc[result.matches["by_similarity"], "category"] == case["category"]).all()


def test_similarity_sweep_precision_against_the_mechanism(world):
    """Neighbours by SHAP vector share the case's mechanism signals far above the base rate."""
    scores, truth = world["scores"], world["truth"]
    signals = ["threat", "revenge", "weapon", "fight"]
    cases = scores.loc[scores["tier"] == "red", "dispute_id"].astype(str)
    precisions, bases, sizes = [], [], []
    for case in cases:  # a few dozen cases, each one vectorised sweep
        own = truth.loc[case, signals].to_numpy(dtype=bool)
        if not own.any():
            continue
        m = sweep(scores, like=case, inputs=world["inputs"], method="similar").matches
        if m.empty:
            continue
        found = truth.loc[m["dispute_id"].astype(str), signals].to_numpy(dtype=bool)
        same_cat = truth.loc[scores["dispute_id"].astype(str), "category"] == truth.loc[case, "category"]
        pool = truth.loc[scores["dispute_id"].astype(str)][same_cat.to_numpy()][signals].to_numpy(dtype=bool)
        precisions.append((found & own).any(axis=1).mean())
        bases.append((pool & own).any(axis=1).mean())
        sizes.append(len(m))
    assert len(precisions) >= 10
    precision, base = float(np.mean(precisions)), float(np.mean(bases))
    print(f"similarity sweep: {len(precisions)} cases, mean {np.mean(sizes):.1f} neighbours, "
          f"precision {precision:.2f} vs base rate {base:.2f}")
    # 0.80 with exact split thresholds; 0.69 with the size-aware extra_trees of models trained on
    # fewer than 2,000 positives (issue 20: random thresholds spread SHAP over correlated features)
    assert precision >= 0.65 and precision >= 3 * base
    assert precision > 3 * base


def test_like_an_escalated_case_uses_its_state_before_escalation(world):
    """A case that escalated is no longer scored: its features are taken just before."""
    sim, scores = world["sim"], world["scores"]
    ev = sim.events
    outcome = ev[ev["kind"].isin(["criminal_case", "injury"])]
    before = outcome[(outcome["time"] < pd.Timestamp(AS_OF)) & (outcome["time"] > pd.Timestamp(AS_OF) - pd.Timedelta("60D"))]
    case = str(before["dispute_id"].iloc[0])
    assert case not in set(scores["dispute_id"])
    result = sweep(scores, like=case, model=world["predictor"], events=ev, entities=sim.entities)
    assert result.case["as_of"] == before["time"].iloc[0]
    assert result.case["category"] == sim.entities.set_index("dispute_id").loc[case, "category"]
    assert 0 < result.case["probability"] < 1
    assert len(result.matches) > 0
    with pytest.raises(DataError, match="'NOPE' is neither in the scores nor in the events"):
        sweep(scores, like="NOPE", model=world["predictor"], events=ev, entities=sim.entities)


def test_cli_sweep(world, tmp_path, capsys):
    from riskmodel.cli import main

    sim = world["sim"]
    sim.events.to_parquet(tmp_path / "events.parquet", index=False)
    sim.entities.to_parquet(tmp_path / "entities.parquet", index=False)
    case = world["scores"].sort_values("probability", ascending=False)["dispute_id"].iloc[0]
    out = tmp_path / "sweep.csv"
    rc = main(["sweep", "--scores", str(world["night"]), "--like", case, "--model", world["predictor"].uri,
               "--events", str(tmp_path / "events.parquet"), "--entities", str(tmp_path / "entities.parquet"),
               "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert case in text and "rule:" in text
    assert len(pd.read_csv(out)) > 0
    rc = main(["sweep", "--scores", str(world["night"]), "--pattern", "category=building & count_threat_30D>"])
    assert rc == 2
    assert "bad sweep pattern" in capsys.readouterr().err
    rc = main(["sweep", "--scores", str(tmp_path / "missing"), "--pattern", "category=building"])
    assert rc == 2


def test_sweep_uses_the_model_that_scored_the_night_not_another_given(world, tmp_path, monkeypatch):
    """sweep() recomputed the features with whatever model it was given (only the command line
    checked it): a model whose fingerprint is not the one the night records is replaced by the
    version the manifest records, as explain and the audit do; it stands in, with a warning
    naming model=, only when that version cannot be read."""
    import copy
    import json
    import shutil

    import riskmodel.ops._night as night_module

    sim, scores, own = world["sim"], world["scores"], world["predictor"]
    case = str(scores.sort_values("probability", ascending=False)["dispute_id"].iloc[0])
    loaded, load_predictor = [], night_module.load_predictor
    monkeypatch.setattr(night_module, "load_predictor",
                        lambda uri, store=None: loaded.append(uri) or load_predictor(uri, store=store))
    other = copy.deepcopy(own.model)  # another model (today's champion, say): another fingerprint
    other.tier_policy_.red_threshold_ = 0.99
    inputs = dict(events=sim.events, entities=sim.entities)
    expected = sweep(world["night"], like=case, model=own, **inputs)
    assert loaded == []  # the model that scored the night: used as given
    result = sweep(world["night"], like=case, model=other, **inputs)
    assert loaded == [own.uri]  # the version the night records, read from its manifest
    pd.testing.assert_frame_equal(result.matches, expected.matches)

    moved = tmp_path / "night"  # the same night, its model folder gone
    shutil.copytree(world["night"], moved)
    manifest = json.loads((moved / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["uri"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    alone = sweep(world["night"], like=case, **inputs)  # no model=: the one the night records, as explain reads it
    pd.testing.assert_frame_equal(alone.matches, expected.matches)
    with pytest.raises(ConfigError, match="this sweep needs the event log .* pass events="):
        sweep(world["night"], like=case)  # scored from a DataFrame: the manifest names no log

    with pytest.warns(DataWarning, match="this sweep: .* could not be read .*the model given as model= is used"):
        result = sweep(moved, pattern="count_threat_30D>0", model=other, **inputs)
    assert len(result.matches) > 0


def test_sweep_takes_the_model_as_a_folder_or_uri_as_explain_does(world, tmp_path):
    """sweep(model="path/to/model") was not loaded, as explain(model=...) loads it: a folder or
    a URI is the model it names, used as given when the night's own version cannot be read."""
    import json
    import shutil
    from pathlib import Path

    sim, scores, own = world["sim"], world["scores"], world["predictor"]
    case = str(scores.sort_values("probability", ascending=False)["dispute_id"].iloc[0])
    inputs = dict(events=sim.events, entities=sim.entities)
    expected = sweep(world["night"], like=case, model=own, **inputs)
    moved = tmp_path / "night"  # the same night, the model folder its manifest names gone
    shutil.copytree(world["night"], moved)
    manifest = json.loads((moved / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["uri"] = str(tmp_path / "gone")
    (moved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    for given in (own.uri, Path(own.uri)):
        for night in (world["night"], moved):
            result = sweep(night, like=case, model=given, **inputs)
            pd.testing.assert_frame_equal(result.matches, expected.matches)


def test_the_nights_model_is_read_once_and_sweep_inputs_takes_it_as_sweep_does(world, tmp_path, monkeypatch,
                                                                               capsys):
    """sweep(model=...) without events= read the night's version twice (once for the event log
    the manifest names, once for the sweep), warning twice when it could not be read; and
    sweep_inputs() recomputed the contributions with whatever model it was given, another
    model's than the one that gave the night's probabilities."""
    import copy
    import json
    import shutil

    import riskmodel.ops._night as night_module
    from riskmodel.cli import main
    from riskmodel.ops import NightModels

    sim, scores, own = world["sim"], world["scores"], world["predictor"]
    case = str(scores.sort_values("probability", ascending=False)["dispute_id"].iloc[0])
    loaded, load_predictor = [], night_module.load_predictor
    monkeypatch.setattr(night_module, "load_predictor",
                        lambda uri, store=None: loaded.append(uri) or load_predictor(uri, store=store))
    other = copy.deepcopy(own.model)  # another model: another fingerprint
    other.tier_policy_.red_threshold_ = 0.99

    # sweep_inputs given another model reads the version the night records, as sweep does
    events = sim.events[sim.events["dispute_id"].isin(scores["dispute_id"].iloc[:300])]
    inputs = sweep_inputs(other, events, world["night"], entities=sim.entities)
    assert loaded == [own.uri]
    pd.testing.assert_frame_equal(inputs.contributions, sweep_inputs(own, events, world["night"],
                                                                     entities=sim.entities).contributions)
    assert loaded == [own.uri]  # the model that scored the night: used as given
    sweep_inputs(other, events, scores, entities=sim.entities)  # scores without a manifest: as given
    assert loaded == [own.uri]

    # a night whose version cannot be read and whose manifest names its event log
    moved = tmp_path / "night"
    shutil.copytree(world["night"], moved)
    sim.events.to_parquet(tmp_path / "events.parquet", index=False)
    manifest = json.loads((moved / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["uri"] = str(tmp_path / "gone")
    manifest["input"]["events"] = str(tmp_path / "events.parquet")
    (moved / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    loaded.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sweep(moved, like=case, model=other, entities=sim.entities)  # no events=: the manifest's
    stood_in = [w for w in caught if "could not be read" in str(w.message)]
    assert loaded == [str(tmp_path / "gone")] and len(stood_in) == 1
    assert "the model given as model= is used instead" in str(stood_in[0].message)
    assert result.case["id"] == case
    models = NightModels(other)  # asked again, a NightModels answers without reading the version again
    with pytest.warns(DataWarning, match="could not be read"):
        sweep_inputs(models, events, moved, entities=sim.entities)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        sweep_inputs(models, events, moved, entities=sim.entities)
    # the command line: read once, one warning
    save_model_dir(other, tmp_path / "other")
    loaded.clear()
    capsys.readouterr()
    sim.entities.to_parquet(tmp_path / "entities.parquet", index=False)
    assert main(["sweep", "--scores", str(moved), "--like", case, "--model", str(tmp_path / "other"),
                 "--entities", str(tmp_path / "entities.parquet")]) == 0
    err = capsys.readouterr().err
    assert err.count("could not be read") == 1 and "the model given is used instead" in err
    assert loaded.count(str(tmp_path / "gone")) == 1

