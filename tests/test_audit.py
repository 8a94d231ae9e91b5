"""audit_outcomes: the tier each escalation had when last scored, caught shares, missed reasons."""

from __future__ import annotations

import json
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
    audit_outcomes,
    escalations_from,
    make_cutoffs,
    make_labels,
    prepare_events,
    score_batch,
    simulate_disputes,
)


def _scores(day, rows):
    ids, tiers, probs = zip(*rows, strict=True)
    return pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp(day), "probability": probs,
                         "tier": pd.Categorical(tiers, categories=["red", "yellow", "blue"]),
                         "reasons": ["r-" + i if t != "blue" else "" for i, t in zip(ids, tiers, strict=True)],
                         "station": "S1", "category": "debt"})


@pytest.fixture
def nights():
    return [
        _scores("2024-06-01", [("A", "yellow", 0.08), ("B", "blue", 0.01), ("C", "blue", 0.02), ("E", "red", 0.3)]),
        _scores("2024-06-02", [("A", "blue", 0.03), ("B", "red", 0.20), ("C", "blue", 0.02), ("E", "red", 0.3)]),
        _scores("2024-06-03", [("A", "blue", 0.03), ("C", "blue", 0.02)]),
    ]


def test_last_tier_before_escalation(nights):
    esc = pd.DataFrame({"dispute_id": ["A", "B", "C", "D", "E", "Z", "Y"],
                        "escalated_at": ["2024-06-05", "2024-06-02 10:00", "2024-06-03", "2024-06-04",
                                         "2024-06-02", "2024-05-01", "2025-01-01"]})
    result = audit_outcomes(nights, esc, horizon="90D")
    cases = result.cases.set_index("dispute_id")
    # A: blue on its last night (06-03), although yellow on 06-01
    assert cases.loc["A", "status"] == "blue" and not cases.loc["A", "caught"]
    assert cases.loc["A", "last_scored_as_of"] == pd.Timestamp("2024-06-03")
    assert cases.loc["A", "first_flagged_as_of"] == pd.Timestamp("2024-06-01")
    assert cases.loc["A", "lead_days"] == pytest.approx(4.0)
    # B escalated during 06-02, after that night's score: red
    assert cases.loc["B", "status"] == "red" and cases.loc["B", "caught"]
    # C escalated exactly at the 06-03 run, which saw only the events before it: that score
    # answers for it, as make_labels labels that cutoff positive (a month-only export dates
    # every event on the 1st, the day its night runs: such escalations were left out)
    assert cases.loc["C", "last_scored_as_of"] == pd.Timestamp("2024-06-03")
    # D was never scored; E is scored at the very moment it escalated
    assert cases.loc["D", "status"] == "not scored"
    assert cases.loc["D", "not_scored_reason"] == "not in any nightly output before it escalated"
    assert cases.loc["E", "last_scored_as_of"] == pd.Timestamp("2024-06-02")
    s = result.summary
    assert s["escalations"] == 5 and s["excluded_before_first_night"] == 1 and s["excluded_after_horizon"] == 1
    assert s["horizon"] == "90 days"  # for people, not "90 days 00:00:00"
    assert (s["red"], s["yellow"], s["blue"], s["not_scored"]) == (2, 0, 2, 1)
    assert s["caught_share"] == pytest.approx(2 / 5)
    assert s["caught_share_scored"] == pytest.approx(2 / 4)
    assert set(result.missed["dispute_id"]) == {"A", "C", "D"}
    assert json.dumps(s)  # the summary is plain data


def test_stale_scores_do_not_count(nights):
    esc = pd.DataFrame({"dispute_id": ["E"], "escalated_at": ["2024-07-01"]})
    case = audit_outcomes(nights, esc, horizon="7D").cases
    assert len(case) == 0  # after the last night + horizon: out of the audited period
    case = audit_outcomes(nights, esc, horizon="40D").cases.iloc[0]
    assert case["status"] == "red"
    case = audit_outcomes(nights[2:] + nights[:2], esc, horizon="29D").cases.iloc[0]
    assert case["status"] == "not scored"  # the last score (06-02) is 29 days before: [06-02, 07-01) ends at it
    assert len(audit_outcomes(nights, esc, horizon="28D").cases) == 0  # the last night (06-03) + 28D: out


def test_outcomes_from_an_event_log(nights):
    log = pd.DataFrame({"dispute_id": ["A", "A", "B", "B"], "kind": ["threat", "injury", "criminal_case", "injury"],
                        "time": ["2024-06-02", "2024-06-04", "2024-06-03", "2024-06-02 12:00"]})
    esc = escalations_from(log)
    assert esc.set_index("dispute_id")["escalated_at"].to_dict() == {
        "A": pd.Timestamp("2024-06-04"), "B": pd.Timestamp("2024-06-02 12:00")}
    result = audit_outcomes(nights, log)
    assert result.cases.set_index("dispute_id")["status"].astype(str).to_dict() == {"B": "red", "A": "blue"}


def test_errors(nights, tmp_path):
    with pytest.raises(DataError, match="no id column 'case'"):
        escalations_from(pd.DataFrame({"x": [1]}), id_col="case")
    with pytest.raises(DataError, match="unparseable time"):
        escalations_from(pd.DataFrame({"dispute_id": ["A"], "escalated_at": ["soon"]}))
    with pytest.raises(ConfigError, match="horizon"):
        audit_outcomes(nights, pd.DataFrame({"dispute_id": ["A"], "escalated_at": ["2024-06-05"]}), horizon="x")
    with pytest.raises(DataError, match="does not exist"):
        audit_outcomes([tmp_path / "nope"], pd.DataFrame({"dispute_id": ["A"], "escalated_at": ["2024-06-05"]}))


def test_end_to_end_on_simulated_nights(tmp_path):
    """Nightly folders of a simulated city; every later escalation is accounted for, and the
    missed blue ones get their reasons from the model."""
    sim = simulate_disputes(2500, start="2022-01-01", end="2024-12-31", seed=3)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema), n_estimators=80)
    model.fit(ev, lab[~lab.censored], entities=sim.entities)
    days = ["2024-05-01", "2024-05-15", "2024-06-01"]
    dirs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        from riskmodel.lifecycle._registry import Predictor

        predictor = Predictor(model, model_name="m", model_version="1", run_id="", uri="memory")
        for day in days:
            score_batch(model=predictor, events=sim.events, entities=sim.entities, as_of=day, out=tmp_path / day)
            dirs.append(tmp_path / day)
    result = audit_outcomes(dirs, sim.events, horizon="90D", model=model, events=sim.events,
                            entities=sim.entities)
    esc = escalations_from(sim.events)
    in_period = esc[(esc["escalated_at"] >= pd.Timestamp(days[0]))
                    & (esc["escalated_at"] < pd.Timestamp(days[-1]) + pd.Timedelta("90D"))]
    assert len(result.cases) == len(in_period) > 10
    s = result.summary
    assert s["red"] + s["yellow"] + s["blue"] + s["not_scored"] == s["escalations"]
    assert 0 < s["caught_share_scored"] <= 1
    blue = result.cases[result.cases["status"] == "blue"]
    assert len(blue) and (blue["reasons"].str.len() > 0).mean() > 0.8
    ns = result.cases[result.cases["status"] == "not scored"]
    assert ns["not_scored_reason"].notna().all()
    # flagged share among the escalations is above the flagged share of all scores
    flagged_all = np.mean([pd.read_parquet(d / "scores.parquet")["tier"].isin(["red", "yellow"]).mean() for d in dirs])
    assert s["caught_share_scored"] > flagged_all
    # an entities table the nights accepted: a dispute on two different rows (moved station, exported
    # twice) was set aside by the batch; the audit reads the table as the nights did (it crashed:
    # "Reindexing only valid with uniquely valued Index objects")
    moved_id = result.cases[sim.schema.entity_col].iloc[0]
    row = sim.entities[sim.entities[sim.schema.entities_id].astype(str) == moved_id].assign(station="S99")
    twice = pd.concat([sim.entities, row], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        again = audit_outcomes(dirs, sim.events, horizon="90D", model=model, events=sim.events, entities=twice)
    assert again.summary == result.summary
    others = result.cases[sim.schema.entity_col] != moved_id  # its reasons: recomputed without its attributes
    pd.testing.assert_frame_equal(again.cases[others], result.cases[others])


def test_the_scores_own_id_column_is_used(nights):
    own = [n.rename(columns={"dispute_id": "case_no"}).drop(columns="station") for n in nights]
    esc = pd.DataFrame({"case_no": ["A", "B"], "escalated_at": ["2024-06-04", "2024-06-02 12:00"]})
    result = audit_outcomes(own, esc, id_col="case_no")
    assert result.id_col == "case_no" and result.area is None
    assert result.cases.set_index("case_no")["status"].astype(str).to_dict() == {"B": "red", "A": "blue"}
    # no manifest: the id column is the scores' first column
    assert audit_outcomes(own, esc.rename(columns={"case_no": "dispute_id"}), id_col="dispute_id").summary[
        "escalations"] == 2


def test_the_model_of_a_night_that_cannot_be_read_is_not_waited_for_nor_made(tmp_path, monkeypatch):
    """A night recording no tracking store was read from ./riskmodel-mlflow/ (made in the
    working directory); an unreachable store held the audit for four minutes of MLflow's
    retries. Both fall back to the model given, with a warning, at once."""
    import time
    from types import SimpleNamespace

    from riskmodel.ops import NightModels

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    given = object()
    models = NightModels(given, fingerprint="mine")
    for store, words in ((None, "records no tracking store"), ("http://127.0.0.1:9", "does not answer")):
        night = SimpleNamespace(manifest={"model": {"fingerprint": "another"}}, model_uri="models:/m/1",
                                model_store=store, as_of="2024-06-01")
        start = time.perf_counter()
        with pytest.warns(DataWarning, match=words):
            assert models.for_night(night) is given
        assert time.perf_counter() - start < 10
    assert list(tmp_path.iterdir()) == []
