"""score_batch: accounting, determinism, resume, atomicity, crash safety, input flavours, memory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import train_model_dir, with_bad_rows

import riskmodel._faults
from riskmodel import (
    ConfigError,
    DataError,
    DataWarning,
    ModelError,
    open_disputes,
    read_nightly,
)
from riskmodel._faults import DIE_AT_ENV
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch
from riskmodel.data._schema import OUTPUT_COLUMNS, SCORE_OUTPUT_COLUMNS
from riskmodel.lifecycle._registry import load

AS_OF = "2024-06-01"
OUTPUTS = ("scores", "worklists", "station_summary", "rejects", "not_scored")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_model_dir(tmp_path_factory.mktemp("model"), 3000, start="2022-01-01", end="2024-12-31", seed=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A scoring input with injected bad rows, as parquet file, parquet directory and CSV."""
    sim = simulate_disputes(1200, start="2022-01-01", end="2024-12-31", seed=7)
    # DEAD-1, a dispute whose every row is bad, is a rejected dispute
    events, _ = with_bad_rows(sim.events, n_null_id=10, n_unparseable=15, n_future=15)
    root = tmp_path_factory.mktemp("data")
    events.to_parquet(root / "events.parquet", index=False)
    (root / "events_dir").mkdir()
    half = len(events) // 2
    events.iloc[:half].to_parquet(root / "events_dir" / "a.parquet", index=False)
    events.iloc[half:].to_parquet(root / "events_dir" / "b.parquet", index=False)
    events.to_csv(root / "events.csv", index=False)
    sim.entities.to_parquet(root / "entities.parquet", index=False)
    return {"root": root, "events": events, "sim": sim, "entities": root / "entities.parquet"}


def _read_outputs(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in OUTPUTS}


def _assert_same_outputs(a: Path, b: Path) -> None:
    left, right = _read_outputs(a), _read_outputs(b)
    for name in OUTPUTS:
        pd.testing.assert_frame_equal(left[name], right[name], check_dtype=False, obj=name)


def test_counts_reconcile_with_bad_rows(model_dir, data, tmp_path):
    out = tmp_path / "out"
    m = score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
                    as_of=AS_OF, out=out, chunk_disputes=400)
    c = m["counts"]
    n_ids = data["events"]["dispute_id"].nunique()
    assert c["disputes_read"] == n_ids
    assert c["disputes_read"] == c["disputes_scored"] + c["disputes_rejected"] + c["disputes_not_open"]
    assert c["disputes_rejected"] == 1  # DEAD-1
    assert c["events_rejected"] == 43
    assert m["parameters"]["n_chunks"] == 4
    rejects = pd.read_parquet(out / "rejects.parquet")
    reason = rejects["reject_reason"]
    assert reason.str.startswith("null id").sum() == 10
    assert reason.str.contains("unparseable").sum() == 17  # 15 injected + 2 in DEAD-1
    assert reason.str.contains("future").sum() == 16
    scores = pd.read_parquet(out / "scores.parquet")
    not_scored = pd.read_parquet(out / "not_scored.parquet")
    accounted = set(scores["dispute_id"]) | set(not_scored["dispute_id"]) | {"DEAD-1"}
    assert accounted == set(data["events"]["dispute_id"].dropna())
    assert not set(scores["dispute_id"]) & set(not_scored["dispute_id"])
    assert {"model_name", "model_version", "run_id", "station", "category"} <= set(scores.columns)
    assert scores["dispute_id"].is_monotonic_increasing
    flagged = scores[scores["tier"].isin(["red", "yellow"])]
    assert (flagged["reasons"].str.len() > 0).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == c
    assert set(manifest["timings_s"]) >= {"read", "features", "predict", "reasons", "write", "total"}
    assert manifest["libraries"]["lightgbm"]
    work = list(tmp_path.glob(".tmp-*"))
    assert not work


@pytest.mark.parametrize("without_entities_chunk", [None, 0])
def test_chunked_equals_direct_predict(model_dir, data, tmp_path, without_entities_chunk):
    """Chunks see the other chunks' cross-dispute rows: same scores as one predict call (also
    when no dispute of a chunk has an entities row, so its summary rows have no station).
    The batch ranks the night's disputes by the share policy, as ``predict(tiers="night")``
    does (before issue 20 both used the trained thresholds)."""
    from riskmodel.batch._core import bucket_of as _bucket_of

    sim = data["sim"]
    entities = sim.entities
    if without_entities_chunk is not None:
        entities = entities[_bucket_of(entities["dispute_id"], 4) != without_entities_chunk]
    out = tmp_path / "out"
    m = score_batch(model=str(model_dir), events=sim.events, entities=entities, as_of=AS_OF, out=out,
                    chunk_disputes=300)
    assert m["parameters"]["n_chunks"] == 4
    got = pd.read_parquet(out / "scores.parquet")
    cut = open_disputes(sim.events, AS_OF, sim.schema, entities=entities)
    ref = load(str(model_dir)).predict(sim.events, cutoffs=cut, entities=entities, tiers="night")
    ref = ref.sort_values("dispute_id").reset_index(drop=True)
    assert got["dispute_id"].tolist() == ref["dispute_id"].tolist()
    np.testing.assert_allclose(got["probability"], ref["probability"], rtol=1e-9)
    assert (got["tier"].astype(str) == ref["tier"].astype(str)).all()
    assert (got["reasons"] == ref["reasons"]).all()
    # the README's Python form of a night, by as_of: the same open disputes and tiers (it
    # ranked every dispute of the log, those begun after as_of and those escalated too)
    night = load(str(model_dir)).predict(sim.events, as_of=AS_OF, entities=entities, tiers="night")
    night = night.sort_values("dispute_id").reset_index(drop=True)
    assert night["dispute_id"].tolist() == got["dispute_id"].tolist()
    assert (night["tier"].astype(str) == got["tier"].astype(str)).all()
    not_scored = pd.DataFrame(night.attrs["not_scored"])
    other = night.copy()  # another night's result: other tiers in its attrs
    other.attrs = {**night.attrs, "tiers": [dict(row, red=0) for row in night.attrs["tiers"]]}
    assert len(pd.concat([night, other])) == 2 * len(night)  # tables in attrs made pandas fail both
    assert len(night.merge(other[["dispute_id", "tier"]], on="dispute_id")) == len(night)
    assert len(not_scored) + len(night) == sim.events["dispute_id"].nunique()
    assert set(not_scored["dispute_id"]) == set(pd.read_parquet(out / "not_scored.parquet")["dispute_id"])
    if without_entities_chunk is None:
        # ids of numbers and text (2895 and "2895"): one dispute each, as the batch reads them
        numbers = sim.events["dispute_id"].str[1:].astype(int)
        mixed = sim.events.assign(dispute_id=numbers.astype(object).where(sim.events.index % 2 == 0,
                                                                          numbers.astype(str)))
        as_text = entities.assign(dispute_id=entities["dispute_id"].str[1:].astype(int).astype(str))
        again = load(str(model_dir)).predict(mixed, as_of=AS_OF, entities=as_text, tiers="night")
        assert len(again) == len(night) and len(again.attrs["not_scored"]) == len(not_scored)
        with pytest.raises(DataError, match="no dispute in events is open at as_of 2021-01-01"):
            load(str(model_dir)).predict(sim.events, as_of="2021-01-01", entities=entities, tiers="night")


def _share_counts(n: int, red: float, yellow: float) -> tuple[int, int]:
    return int(np.floor(red * n + 1e-9)), int(np.floor((red + yellow) * n + 1e-9)) - int(np.floor(red * n + 1e-9))


def test_share_tiers_hold_exactly_each_night(model_dir, data, tmp_path):
    """Nights with different mixes (an early night with few open disputes, a later busy one,
    a night made riskier): red and yellow are exactly floor(5%) and floor(20%) - floor(5%)
    of each night's disputes, whatever the trained thresholds would have said."""
    sim = data["sim"]
    model = load(str(model_dir)).model
    trained = model.tier_policy_
    seen = set()
    for as_of in ("2022-03-01", "2024-06-01"):
        out = tmp_path / as_of
        m = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=as_of, out=out,
                        chunk_disputes=300)
        scores = pd.read_parquet(out / "scores.parquet")
        n = len(scores)
        red, yellow = _share_counts(n, trained.red, trained.yellow)
        got = scores["tier"].astype(str).value_counts()
        assert (got.get("red", 0), got.get("yellow", 0)) == (red, yellow)
        assert m["counts"]["tiers"]["red"] == red and m["tiers"]["applied"] == "per_night"
        area = m["tiers"]["areas"][0]
        assert area["area"] == "(all)" and area["red_capacity"] == red and area["n"] == n
        ranked = scores.sort_values(["probability", "dispute_id"], ascending=[False, True])
        assert (ranked["tier"].astype(str).iloc[:red] == "red").all()
        assert area["red_threshold"] == pytest.approx(ranked["probability"].iloc[red - 1])
        flagged = scores[scores["tier"] != "blue"]
        assert (flagged["reasons"].str.len() > 0).all()  # newly flagged cases got their reasons
        assert (scores.loc[scores["tier"] == "blue", "reasons"].fillna("") == "").all()
        work = pd.read_parquet(out / "worklists.parquet")
        assert len(work) == red + yellow and (work["tier_rule"] == "share").all()
        assert work["red_threshold"].iloc[0] == pytest.approx(area["red_threshold"])
        seen.add(n)
    assert len(seen) == 2  # the two nights had different sizes
    # the trained thresholds give other counts on at least one of these nights: "as_trained" differs
    m = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of="2024-06-01",
                    out=tmp_path / "trained", chunk_disputes=300, tiers="trained")
    assert m["tiers"]["applied"] == "as_trained"
    ref = load(str(model_dir)).predict(sim.events, cutoffs=open_disputes(sim.events, AS_OF, sim.schema,
                                       entities=sim.entities), entities=sim.entities)
    assert m["counts"]["tiers"]["red"] == int((ref["tier"] == "red").sum())


def test_capacity_tiers_per_station(model_dir, data, tmp_path):
    """Per-station capacities: a station with a capacity gets exactly min(capacity, n) red, a
    station with fewer disputes than its capacity has all of them red, a station absent from
    the policy follows the shares within itself, and ties break by id."""
    sim = data["sim"]
    entities = sim.entities
    cut = open_disputes(sim.events, AS_OF, sim.schema, entities=entities)
    per_station = entities.set_index("dispute_id").loc[cut["dispute_id"], "station"].astype(str).value_counts()
    big, small = per_station.index[0], per_station.index[-1]
    absent = per_station.index[1]
    capacity = {big: 3, small: {"red": int(per_station[small]) + 5, "yellow": 0}}
    out = tmp_path / "cap"
    m = score_batch(model=str(model_dir), events=sim.events, entities=entities, as_of=AS_OF, out=out,
                    chunk_disputes=300, tiers={"by": "station", "capacity": capacity, "red": 0.1, "yellow": 0.2})
    scores = pd.read_parquet(out / "scores.parquet")
    counts = pd.crosstab(scores["station"].astype(str), scores["tier"].astype(str))
    assert counts.loc[big, "red"] == 3
    assert counts.loc[big].get("yellow", 0) == int(np.floor(0.2 * per_station[big] + 1e-9))
    assert counts.loc[small, "red"] == per_station[small] and counts.loc[small].get("yellow", 0) == 0
    red, yellow = _share_counts(per_station[absent], 0.1, 0.2)
    assert (counts.loc[absent].get("red", 0), counts.loc[absent].get("yellow", 0)) == (red, yellow)
    areas = pd.DataFrame(m["tiers"]["areas"]).set_index("area")
    assert areas.loc[big, "rule"] == "capacity" and areas.loc[absent, "rule"] == "share"
    assert m["tiers"]["by"] == "station" and m["tiers"]["capacity"][big] == {"red": 3}
    summary = pd.read_parquet(out / "station_summary.parquet").set_index("station")
    assert summary.loc[big, "red_capacity"] == 3 and summary.loc[absent, "tier_rule"] == "share"
    work = pd.read_parquet(out / "worklists.parquet")
    assert (work.loc[work["station"] == big, "red_capacity"] == 3).all()
    # the names an id column may not take (EventSchema refuses them) are what the night writes beside it
    beside = {"dispute_id", *sim.schema.entity_categorical_cols}
    assert set(work.columns) - beside == set(SCORE_OUTPUT_COLUMNS)
    assert set(scores.columns) - beside <= set(SCORE_OUTPUT_COLUMNS)
    for name in ("not_scored", "rejects"):
        written = set(pd.read_parquet(out / f"{name}.parquet").columns) - {"dispute_id", *sim.schema.event_columns}
        assert written <= set(OUTPUT_COLUMNS), name
    # the API takes the same policy and gives the same tiers
    ref = load(str(model_dir)).predict(sim.events, cutoffs=cut, entities=entities,
                                       tiers={"by": "station", "capacity": capacity, "red": 0.1, "yellow": 0.2})
    ref = ref.sort_values("dispute_id").reset_index(drop=True)
    assert (ref["tier"].astype(str).to_numpy() == scores["tier"].astype(str).to_numpy()).all()
    assert {row["area"] for row in ref.attrs["tiers"]} == set(per_station.index)
    assert set(ref.columns) - beside <= set(SCORE_OUTPUT_COLUMNS)


def test_cli_score_takes_capacities(model_dir, data, tmp_path, capsys):
    from riskmodel.cli import main

    sim = data["sim"]
    events, entities = tmp_path / "events.parquet", tmp_path / "entities.parquet"
    sim.events.to_parquet(events, index=False)
    sim.entities.to_parquet(entities, index=False)
    (tmp_path / "cap.csv").write_text("station,red\nS01,2\n", encoding="utf-8")
    out = tmp_path / "night"
    code = main(["score", "--model", str(model_dir), "--events", str(events), "--entities", str(entities),
                 "--as-of", AS_OF, "--out", str(out), "--tiers-by", "station", "--capacity", "S02=1/3",
                 "--capacity", str(tmp_path / "cap.csv"), "--red-share", "0.1"])
    assert code == 0
    assert "tiers: share: red 10.0%, yellow 15.0% of each night's disputes by station" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["tiers"]["capacity"] == {"S02": {"red": 1, "yellow": 3}, "S01": {"red": 2}}
    scores = pd.read_parquet(out / "scores.parquet")
    assert int(((scores["station"] == "S01") & (scores["tier"] == "red")).sum()) == 2
    assert main(["score", "--model", str(model_dir), "--events", str(events), "--as-of", AS_OF, "--out",
                 str(tmp_path / "x"), "--tiers", "trained", "--capacity", "S01=1"]) == 2


def test_capacity_tiers_need_the_area_column(model_dir, data, tmp_path):
    sim = data["sim"]
    with pytest.raises(ConfigError, match="tiers by 'station' need the area"):
        score_batch(model=str(model_dir), events=sim.events, as_of=AS_OF, out=tmp_path / "x",
                    tiers={"capacity": {"S01": 3}})
    with pytest.raises(ConfigError, match="precision tiers need labels"):
        score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF,
                    out=tmp_path / "x", tiers={"method": "precision"})
    assert not (tmp_path / "x").exists()


def test_chunk_context_gives_whole_log_features(model_dir, data, tmp_path):
    """A chunk scored from its own events and entities rows plus the summary rows the run's
    context store selects for it gets the whole log's features, including parties whose
    other disputes and station escalations that live in other chunks."""
    import warnings

    from riskmodel import DataWarning, validate_entities
    from riskmodel.batch._core import ContextStore as _ContextStore
    from riskmodel.batch._core import bucket_of as _bucket_of
    from riskmodel.batch._core import prepare_chunk

    model = load(str(model_dir)).model
    sim, n_chunks, as_of = data["sim"], 4, pd.Timestamp(AS_OF)
    schema = sim.schema
    events = sim.events
    entities = validate_entities(sim.entities, schema)
    chunk_of_event = _bucket_of(events["dispute_id"], n_chunks)
    chunk_of_entity = _bucket_of(entities["dispute_id"], n_chunks)
    cut = open_disputes(events, AS_OF, schema, entities=entities)
    chunk_of_cutoff = _bucket_of(cut["dispute_id"], n_chunks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        chunks = []
        for i in range(n_chunks):
            clean, _, summary, _ = prepare_chunk(events[chunk_of_event == i].reset_index(drop=True), schema,
                                              entities=entities[chunk_of_entity == i])
            summary.to_parquet(tmp_path / f"summary-{i}.parquet", index=False)
            chunks.append(clean)
        store = _ContextStore([tmp_path / f"summary-{i}.parquet" for i in range(n_chunks)], model, as_of)
        whole = model.transform_features(events, cut, entities=entities)
        for i in range(n_chunks):
            own_cut, own_ents = cut[chunk_of_cutoff == i], entities[chunk_of_entity == i]
            context = store.for_chunk(i)
            assert len(context) < len(store.events)
            part = model.transform_features(chunks[i], own_cut, entities=own_ents, context_events=context)
            pd.testing.assert_frame_equal(part, whole[chunk_of_cutoff == i])
            # without the other chunks' rows, parties and station rates lose what lives there
            alone = model.transform_features(chunks[i], own_cut, entities=own_ents)
            assert (alone["party_other_disputes"] < part["party_other_disputes"]).any()
            ctx = [c for c in part.columns if c.startswith("ctx_") and "_escalations_" in c]
            assert ctx and (alone[ctx[0]] < part[ctx[0]]).any()


def test_identical_across_runs_and_replaces_atomically(model_dir, data, tmp_path):
    kw = dict(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
              as_of=AS_OF, chunk_disputes=400)
    score_batch(out=tmp_path / "a", **kw)
    (tmp_path / "a" / "stale.txt").write_text("old run")
    with pytest.raises(ConfigError, match="already exists.*overwrite=True"):  # never replaced by mistake
        score_batch(out=tmp_path / "a", **kw)
    assert (tmp_path / "a" / "stale.txt").exists()
    score_batch(out=tmp_path / "a", overwrite=True, **kw)  # replaces the previous output
    score_batch(out=tmp_path / "b", **kw)
    assert not (tmp_path / "a" / "stale.txt").exists()
    _assert_same_outputs(tmp_path / "a", tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_threads_set_lightgbm_s_threads_and_change_no_output(model_dir, data, tmp_path, monkeypatch, capsys):
    """``threads`` (``--threads``) is the thread count of every LightGBM call of a local
    night (predictions and reasons), instead of LightGBM's default of
    every core (0). The outputs are the default night's, the caller's model keeps its
    parameters and the manifest records the count. Wrong values, and the Spark engine
    (its tasks take spark.task.cpus), are refused in the words of the interface."""
    import lightgbm

    from riskmodel.cli import main

    predictor = load(str(model_dir))
    params = predictor.model.lgbm_params
    kw = dict(events=data["root"] / "events.parquet", entities=data["entities"], as_of=AS_OF, chunk_disputes=5000)
    seen = []
    predict = lightgbm.Booster.predict

    def recording(self, matrix, *args, **kwargs):
        seen.append((len(matrix), kwargs.get("num_threads")))
        return predict(self, matrix, *args, **kwargs)

    monkeypatch.setattr(lightgbm.Booster, "predict", recording)
    monkeypatch.setattr("riskmodel.model._model._FEW_ROWS", 0)  # this night's calls are few rows: one thread
    default = score_batch(model=predictor, out=tmp_path / "default", **kw)
    assert len(seen) >= 2 and {threads for _, threads in seen} == {0}  # predictions and reasons
    seen.clear()
    three = score_batch(model=predictor, out=tmp_path / "three", threads=3, **kw)
    assert len(seen) >= 2 and {threads for _, threads in seen} == {3}
    _assert_same_outputs(tmp_path / "default", tmp_path / "three")
    assert predictor.model.lgbm_params == params
    assert (default["parameters"]["threads"], three["parameters"]["threads"]) == (None, 3)
    for wrong in (0, -1, True, 1.5, "2"):
        with pytest.raises(ConfigError, match="threads must be a positive integer"):
            score_batch(model=predictor, out=tmp_path / "wrong", threads=wrong, **kw)
    with pytest.raises(ConfigError, match="threads applies to engine='local'.*spark.task.cpus"):
        score_batch(model=predictor, out=tmp_path / "wrong", threads=2, engine="spark", **kw)
    args = ["score", "--model", str(model_dir), "--events", str(kw["events"]), "--as-of", AS_OF,
            "--out", str(tmp_path / "cli")]
    assert main([*args, "--threads", "2", "--engine", "spark"]) == 2
    assert "--threads applies to --engine local" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--threads", "0"])
    assert "--threads: must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "wrong").exists() and not (tmp_path / "cli").exists()


@pytest.mark.parametrize("flavour", ["csv", "dir", "frame", "categorical_dir"])
def test_input_flavours_agree(model_dir, data, tmp_path, flavour):
    """Every kind of input gives the parquet file's night. ``categorical_dir``: a folder of
    parquet files whose kinds are categoricals, each file's with categories of its own (in
    its own order), which the night's scratch files must carry batch by batch."""
    if flavour == "categorical_dir":
        (tmp_path / "categorical").mkdir()
        for k in range(3):
            part = data["events"].iloc[k::3].copy()
            kinds = part["kind"].astype(object)
            part["kind"] = pd.Categorical(kinds, categories=sorted(kinds.dropna().unique(), reverse=k == 1))
            part.to_parquet(tmp_path / "categorical" / f"part-{k}.parquet", index=False)
    ref = tmp_path / "ref"
    score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
                as_of=AS_OF, out=ref, chunk_disputes=400)
    source = {"csv": data["root"] / "events.csv", "dir": data["root"] / "events_dir",
              "frame": data["events"], "categorical_dir": tmp_path / "categorical"}[flavour]
    m = score_batch(model=str(model_dir), events=source, entities=data["entities"], as_of=AS_OF,
                    out=tmp_path / "got", chunk_disputes=400)
    assert m["counts"]["disputes_rejected"] == 1
    got, want = _read_outputs(tmp_path / "got"), _read_outputs(ref)
    for name in ("scores", "worklists", "station_summary", "not_scored"):
        pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False, obj=name)
    assert len(got["rejects"]) == len(want["rejects"])


def test_float_ids_holding_nan_are_missing_ids(model_dir, data, tmp_path):
    """Float ids with NaN values (not nulls) in a parquet file counted NaN as a dispute read,
    while the chunks reject its rows as null ids: the night stopped with 'batch accounting
    does not reconcile' and wrote nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sim = data["sim"]
    events = sim.events.assign(dispute_id=sim.events["dispute_id"].str[1:].astype("float64"))
    events.loc[events.index[:5], "dispute_id"] = np.nan
    table = pa.Table.from_pandas(events, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("dispute_id"), "dispute_id",
                             pa.array(events["dispute_id"].to_numpy(), from_pandas=False))
    pq.write_table(table, tmp_path / "events.parquet")
    assert pq.read_table(tmp_path / "events.parquet")["dispute_id"].null_count == 0  # NaN, not null
    entities = sim.entities.assign(dispute_id=sim.entities["dispute_id"].str[1:].astype("float64"))
    m = score_batch(model=str(model_dir), events=tmp_path / "events.parquet", entities=entities, as_of=AS_OF,
                    out=tmp_path / "out")
    assert m["counts"]["reconciles"] and m["counts"]["events_rejected"] == 5
    rejects = pd.read_parquet(tmp_path / "out" / "rejects.parquet")
    assert set(rejects["reject_reason"]) == {"null id in 'dispute_id'"}


def test_fatal_errors_leave_no_output(model_dir, data, tmp_path):
    out = tmp_path / "out"
    broken = data["events"].drop(columns=["kind"])
    with pytest.raises(DataError, match="missing required column.*'kind'"):
        score_batch(model=str(model_dir), events=broken, entities=data["entities"], as_of=AS_OF, out=out)
    with pytest.raises(ModelError, match="not found"):
        score_batch(model=str(tmp_path / "no-such-model"), events=data["events"], as_of=AS_OF, out=out)
    with pytest.raises(DataError, match="does not exist"):
        score_batch(model=str(model_dir), events=tmp_path / "nope.parquet", as_of=AS_OF, out=out)
    assert list(tmp_path.iterdir()) == []


def test_fatal_error_keeps_previous_output(model_dir, data, tmp_path):
    out = tmp_path / "out"
    score_batch(model=str(model_dir), events=data["events"], entities=data["entities"], as_of=AS_OF, out=out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(DataError):
        score_batch(model=str(model_dir), events=data["events"].drop(columns=["time"]),
                    entities=data["entities"], as_of=AS_OF, out=out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == before


def _contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (or ``folder`` itself, a file), by relative path."""
    if folder.is_file():
        return {folder.name: folder.read_bytes()}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_refused_rerun_leaves_the_previous_night_untouched(model_dir, data, tmp_path):
    """A rerun with overwrite=True whose input is refused (an empty export) leaves the scored
    night in ``out`` as it was, says so, and keeps its own rejects and manifest in the work
    folder, which the next run of the night clears. It replaced the night with the refused
    output (no work lists): the good night was gone."""
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=400)
    out = tmp_path / "out"
    score_batch(events=data["root"] / "events.parquet", out=out, **kw)
    before = _contents(out)
    data["events"].iloc[:0].to_parquet(tmp_path / "empty.parquet", index=False)
    with pytest.raises(DataError, match=rf"no row: an empty export\?.* The night is refused: no work lists were "
                                        rf"written; {out} still holds the previous night, untouched \(the rejects "
                                        r"and the manifest are in .*\.tmp-out-.*final\)"):
        score_batch(events=tmp_path / "empty.parquet", out=out, overwrite=True, **kw)
    assert _contents(out) == before
    kept = json.loads(next(tmp_path.glob(".tmp-out-*/final/manifest.json")).read_text(encoding="utf-8"))
    assert kept["status"] == "refused"
    # a refused night's folder holds no night: a refused rerun replaces it, as a scored one does
    with pytest.raises(DataError, match=r"no work lists were written \(the rejects and the manifest are in .*new"):
        score_batch(events=tmp_path / "empty.parquet", out=tmp_path / "new", **kw)
    score_batch(events=data["root"] / "events.parquet", out=out, overwrite=True, **kw)
    assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["status"] == "scored"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.parquet", "new", "out"]


def test_overwrite_replaces_only_a_night(model_dir, data, tmp_path, capsys):
    """overwrite=True (--overwrite) replaces a previous night's folder or an empty one, and
    nothing else: an input (or a folder holding one), a file, a folder of other things are
    refused before any work, in keyword and in flag words, and left as they were. The input
    file was replaced by the output folder, and a folder of seven nights and a README
    deleted without a word."""
    from riskmodel.cli import main

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    events = inputs / "events.parquet"
    shutil.copy(data["root"] / "events.parquet", events)
    kw = dict(model=str(model_dir), events=events, entities=data["entities"], as_of=AS_OF, overwrite=True)
    archive = tmp_path / "nights"
    for day in range(1, 8):
        (archive / f"2025-02-0{day}").mkdir(parents=True)
        (archive / f"2025-02-0{day}" / "manifest.json").write_text('{"riskmodel_batch": 1, "status": "scored"}')
    (archive / "README").write_text("the nights of February")
    (tmp_path / "notes.txt").write_text("not a night")
    cases = [(events, "is \\(or holds, or lies in\\) the events input", "--events"),
             (inputs, "is \\(or holds, or lies in\\) the events input", "--events"),
             (model_dir, "is \\(or holds, or lies in\\) the model input", "--model"),
             (archive, r"is a folder of other things \(\['2025-02-01', .*\(3 more\)\]\), not a night's folder",
              "--overwrite"),
             (tmp_path / "notes.txt", "is a file, not a night's folder", "--overwrite")]
    before = _contents(tmp_path)
    for out, what, flag in cases:
        with pytest.raises(ConfigError, match=f"out {out} {what}.*Give out=") as caught:
            score_batch(out=out, **kw)
        cli = caught.value.for_cli()
        assert cli.startswith(f"--out {out} ") and flag in cli and "out=" not in cli and "overwrite=" not in cli
        assert main(["score", "--model", str(model_dir), "--events", str(events), "--entities", str(data["entities"]),
                     "--as-of", AS_OF, "--out", str(out), "--overwrite"]) == 2
        assert capsys.readouterr().err == f"riskmodel: error: {cli}\n"
    assert _contents(tmp_path) == before  # nothing written, nothing removed (no work folder, no lock)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert score_batch(out=empty, **kw)["status"] == "scored"  # an empty folder is no night's


# ------------------------------------------------------------------------------------------
# accounting: not-open reasons, exact duplicates


def _not_open_reference(events: pd.DataFrame, entities: pd.DataFrame, as_of: str,
                        max_inactive: str = "365D") -> pd.Series:
    """Per dispute, why it is not open at ``as_of`` (the docs' rule, in plain pandas), or
    ``"open"``; a dispute meeting several reasons gets the first of: no events, escalated,
    closed, dormant."""
    t = pd.Timestamp(as_of)
    ids = pd.Index(events["dispute_id"].unique())
    before = events[events["time"] < t]
    last = before.groupby("dispute_id")["time"].max().reindex(ids)
    escalated = ids.isin(before.loc[before["kind"].isin(["criminal_case", "injury"]), "dispute_id"])
    closed_at = entities.set_index("dispute_id")["closed_at"].reindex(ids)
    closed = (closed_at <= t).to_numpy()
    dormant = (t - last > pd.Timedelta(max_inactive)).to_numpy()
    reason = np.select(
        [last.isna().to_numpy(), escalated, closed, dormant],
        ["no events before as_of", "escalated before as_of", "closed at or before as_of",
         f"dormant: no event in the {max_inactive} before as_of"], "open")
    return pd.Series(reason, index=ids, name="reason")


def test_not_open_reasons_match_a_reference(model_dir, data, tmp_path):
    sim = data["sim"]
    # disputes silent for 60 days are dormant: the simulated city then has every kind of
    # not-open dispute, so each reason is checked
    m = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF,
                    out=tmp_path / "out", chunk_disputes=400, open_rule_max_inactive="60D")
    expected = _not_open_reference(sim.events, sim.entities, AS_OF, max_inactive="60D")
    counts = expected.value_counts()
    assert set(counts.index) == {"open", "no events before as_of", "escalated before as_of",
                                 "closed at or before as_of", "dormant: no event in the 60D before as_of"}
    scores = pd.read_parquet(tmp_path / "out" / "scores.parquet")
    assert sorted(scores["dispute_id"]) == sorted(expected.index[expected == "open"])
    not_scored = pd.read_parquet(tmp_path / "out" / "not_scored.parquet").set_index("dispute_id")["reason"]
    pd.testing.assert_series_equal(not_scored.sort_index(), expected[expected != "open"].sort_index(),
                                   check_names=False, check_index_type=False)
    assert m["counts"]["not_open_by_reason"] == {k: int(v) for k, v in counts.drop("open").items()}
    assert m["counts"]["disputes_not_open"] == int((expected != "open").sum())


def test_exact_duplicates_are_counted_and_reconcile(model_dir, data, tmp_path):
    """Exact duplicate rows are scored once, counted in the manifest, and every input row is
    clean, rejected or a counted duplicate."""
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=400)
    events = data["events"]
    base = score_batch(events=events, out=tmp_path / "base", **kw)["counts"]
    valid = events.index[pd.to_datetime(events["time"], errors="coerce").lt(AS_OF) & events["dispute_id"].notna()]
    copies = events.loc[valid[::97][:25]]
    copies = pd.concat([copies, copies.iloc[:5]])  # five rows now come three times
    dup = score_batch(events=pd.concat([events, copies], ignore_index=True), out=tmp_path / "dup", **kw)["counts"]
    assert base["events_duplicates_dropped"] == 0
    assert dup["events_duplicates_dropped"] == 30
    assert dup["events_read"] == base["events_read"] + 30
    for c in (base, dup):
        assert c["events_read"] == c["events_clean"] + c["events_rejected"] + c["events_duplicates_dropped"]
        assert c["reconciles"]
    assert dup["events_clean"] == base["events_clean"] and dup["events_rejected"] == base["events_rejected"]
    _assert_same_outputs(tmp_path / "dup", tmp_path / "base")


def test_outcome_kinds_in_another_letter_case_are_warned_of_once_per_night(model_dir, data, tmp_path):
    """An export writing 'Criminal_Case' for the outcome kind 'criminal_case': those disputes
    are not escalated, so the night scores them as open. prepare_events warns of it, but the
    batch silenced its chunks' warnings and said nothing; the night now names those kinds
    once, whatever the chunks, and the manifest lists them."""
    events = data["events"]
    twins = events.assign(kind=events["kind"].replace({"criminal_case": "Criminal_Case", "injury": "INJURY"}))
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = score_batch(events=twins, out=tmp_path / "twins", **kw)["counts"]
    said = [str(w.message) for w in caught if "differ from the outcome kinds" in str(w.message)]
    assert said == ["event kinds ['Criminal_Case', 'INJURY'] differ from the outcome kinds ['criminal_case', 'injury'] "
                    "only by letter case: they are not escalations, so their disputes are labelled 0 and scored as "
                    "open. Name them in outcome_kinds too, or write the kinds as the outcome kinds are written."]
    assert [w.filename for w in caught if "differ from the outcome kinds" in str(w.message)] == [__file__]
    assert counts["outcome_kind_twins"] == ["Criminal_Case", "INJURY"] and counts["reconciles"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plain = score_batch(events=events, out=tmp_path / "plain", **kw)["counts"]
    assert plain["outcome_kind_twins"] == [] and not [w for w in caught if "outcome kinds" in str(w.message)]


# ------------------------------------------------------------------------------------------
# resume only what this run would have done


class _Killed(BaseException):
    """Stands for SIGKILL in this process: nothing of the job catches it, nothing cleans up."""


def _die_at(monkeypatch, point: str) -> None:
    """Make the job stop at ``point`` (``RISKMODEL_DIE_AT`` syntax) as a killed job would."""
    def die():
        raise _Killed(point)

    monkeypatch.setenv(DIE_AT_ENV, point)
    monkeypatch.setattr(riskmodel._faults, "_reached", {})
    monkeypatch.setattr(riskmodel._faults, "_die", die)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory) -> Path:
    """Another model (other training data) for the same schema."""
    return train_model_dir(tmp_path_factory.mktemp("other"), 2000, start="2022-01-01", end="2024-12-31", seed=5)


@pytest.mark.parametrize("change", ["events", "entities", "model", "as_of"])
def test_a_changed_run_discards_the_killed_runs_work(model_dir, other_model_dir, data, tmp_path, monkeypatch,
                                                     change):
    """Killed after one scored chunk, then rerun with another input, entities table or
    model at the same paths (or another as_of): the rerun starts afresh and gives what a
    fresh run on the new inputs gives."""
    sim = data["sim"]
    events, entities, model = tmp_path / "events.parquet", tmp_path / "entities.parquet", tmp_path / "model"
    sim.events.to_parquet(events, index=False)
    sim.entities.to_parquet(entities, index=False)
    shutil.copytree(model_dir, model)
    kw = dict(model=str(model), events=events, entities=entities, chunk_disputes=400)
    with monkeypatch.context() as patch:
        _die_at(patch, "batch.score:1")
        with pytest.raises(_Killed):
            score_batch(as_of=AS_OF, out=tmp_path / "out", **kw)
    assert len(list(tmp_path.glob(".tmp-out-*/scores/chunk-*.done"))) == 1
    as_of = AS_OF
    if change == "events":  # the same path, other contents: a later extract
        later = sim.events[sim.events["dispute_id"] != sim.events["dispute_id"].iloc[0]]
        later.assign(kind=later["kind"].where(later.index % 7 != 0, "threat")).to_parquet(events, index=False)
    elif change == "entities":  # a few disputes closed since
        ents = sim.entities.copy()
        ents.loc[ents.index[::5], "closed_at"] = pd.Timestamp("2024-05-01")
        ents.to_parquet(entities, index=False)
    elif change == "model":  # retrained into the same folder: same URI, name and version
        shutil.rmtree(model)
        shutil.copytree(other_model_dir, model)
    else:
        as_of = "2024-06-15"
    m = score_batch(as_of=as_of, out=tmp_path / "out", **kw)
    assert not m["resumed"]
    score_batch(as_of=as_of, out=tmp_path / "fresh", **kw)
    _assert_same_outputs(tmp_path / "out", tmp_path / "fresh")


def test_an_unchanged_rerun_resumes(model_dir, data, tmp_path, monkeypatch):
    kw = dict(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
              as_of=AS_OF, chunk_disputes=400)
    with monkeypatch.context() as patch:
        _die_at(patch, "batch.score:2")
        with pytest.raises(_Killed):
            score_batch(out=tmp_path / "out", **kw)
    done = sorted(p.name for p in tmp_path.glob(".tmp-out-*/scores/chunk-*.done"))
    assert len(done) == 2
    assert score_batch(out=tmp_path / "out", **kw)["resumed"]
    score_batch(out=tmp_path / "plain", **kw)
    _assert_same_outputs(tmp_path / "out", tmp_path / "plain")


# ------------------------------------------------------------------------------------------
# crash safety: a real process killed with SIGKILL at every stage, then rerun

_RUN = textwrap.dedent(
    """
    import sys
    from riskmodel.batch._job import score_batch
    score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of=sys.argv[4],
                out=sys.argv[5], chunk_disputes=int(sys.argv[6]), overwrite=True)
    """
)
_OUT_FILES = {f"{name}.parquet" for name in OUTPUTS} | {"drift.parquet", "manifest.json"}


@pytest.fixture(scope="module")
def clean_run(model_dir, data, tmp_path_factory) -> Path:
    """The output of an uninterrupted run, to compare killed-and-rerun runs with."""
    out = tmp_path_factory.mktemp("clean") / "out"
    score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
                as_of=AS_OF, out=out, chunk_disputes=400)
    return out


class _Watcher(threading.Thread):
    """Lists ``out`` every millisecond or so while a job runs; records every listing that
    is neither absent nor a complete output."""

    def __init__(self, out: Path):
        super().__init__(daemon=True)
        self.out, self.stop, self.partial, self.seen = out, threading.Event(), [], 0

    def run(self):
        while not self.stop.is_set():
            try:
                names = set(os.listdir(self.out))
            except FileNotFoundError:
                names = None
            if names is not None:
                self.seen += 1
                if not _OUT_FILES <= names:
                    self.partial.append(sorted(names))
            time.sleep(0.001)


# (crash point, the work folder's stage that must hold the half-written file, if any).
# 4 chunks: the partition writes 4 entities parts, each prepare 3 files, each score 2,
# the finalize 6: write 6 is chunk 0's second prepare file, 19 a score file, 28 a final one.
_CRASHES = [
    ("batch.write:2", "parts"),
    ("batch.partition", None),
    ("batch.write:6", "prepared"),
    ("batch.prepare:2", None),
    ("batch.score:1", None),
    ("batch.write:19", "scores"),
    ("batch.score:4", None),
    ("batch.write:28", "final"),
    ("batch.finalize", None),
    ("batch.rename", None),
    ("batch.cleanup", None),
]


@pytest.mark.parametrize(("point", "half_written"), _CRASHES, ids=[c[0] for c in _CRASHES])
def test_killed_anywhere_then_rerun_gives_the_clean_output(model_dir, data, clean_run, tmp_path, point,
                                                          half_written):
    """``kill -9`` at each stage: the previous output stays whole (or, killed between the
    two renames, ``out`` is briefly absent), ``out`` is never seen partial, and the rerun
    gives exactly the uninterrupted run's output and leaves no work or aside folder."""
    out = tmp_path / "out"
    shutil.copytree(clean_run, out)
    (out / "previous-night.txt").write_text("the output before this run")
    args = [str(model_dir), str(data["root"] / "events.parquet"), str(data["entities"]), AS_OF, str(out), "400"]
    watcher = _Watcher(out)
    watcher.start()
    try:
        killed = subprocess.run([sys.executable, "-c", _RUN, *args], env=dict(os.environ, **{DIE_AT_ENV: point}),
                                capture_output=True, text=True, timeout=300)
    finally:
        watcher.stop.set()
        watcher.join()
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert watcher.seen and not watcher.partial, watcher.partial[:3]
    work = tmp_path / f".tmp-out-{pd.Timestamp(AS_OF):%Y%m%dT%H%M%S}"
    if half_written is not None:  # the kill did land in the middle of that stage's write
        assert list((work / half_written).glob("*.partial")), sorted(p.name for p in work.rglob("*"))
    if point == "batch.rename":
        assert not out.exists()
    elif point == "batch.cleanup":
        assert not (out / "previous-night.txt").exists() and work.exists()
        _assert_same_outputs(out, clean_run)
    else:
        assert (out / "previous-night.txt").exists() and _OUT_FILES <= {p.name for p in out.iterdir()}

    m = score_batch(model=args[0], events=args[1], entities=args[2], as_of=AS_OF, out=out, chunk_disputes=400,
                    overwrite=True)  # the night being rerun replaces the previous output
    assert m["resumed"]  # the killed run's state was recorded before any work
    _assert_same_outputs(out, clean_run)
    assert {p.name for p in out.iterdir()} == _OUT_FILES
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert m["counts"] == json.loads((clean_run / "manifest.json").read_text())["counts"]


# ------------------------------------------------------------------------------------------
# memory

@pytest.mark.slow
def test_memory_bounded_by_chunk_size(model_dir, tmp_path, monkeypatch):
    """4x the disputes in chunks of the same size: what the chunk stages hold grows only by
    the run-wide context rows (documented: about 100 bytes per dispute), where a stage
    keeping every chunk's events would add megabytes per chunk.

    Measured where neither the allocators' caches nor other processes disturb it: the peak
    of the NumPy, pandas and Python heap during the chunk stages (tracemalloc), and the
    Arrow memory still held after each chunk (Arrow backs the strings and the parquet
    reads; its own peak cannot be reset). Whole-process peak RSS, which moves by tens of MB
    from run to run on a busy machine, is measured by ``benchmarks/bench_batch.py
    --scaling`` instead."""
    import tracemalloc

    import pyarrow as pa

    import riskmodel.batch._job as job
    import riskmodel.batch.engines._local as local

    chunk_stages, between_chunks = job.run_local_chunks, local.release_unused_memory
    heap, arrow = {}, {}

    def measured(**kwargs):
        between_chunks()
        arrow[n] = 0
        tracemalloc.start()
        try:
            chunk_stages(**kwargs)
            heap[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def after_a_chunk():
        between_chunks()
        arrow[n] = max(arrow[n], pa.default_memory_pool().bytes_allocated())

    monkeypatch.setattr(job, "run_local_chunks", measured)
    monkeypatch.setattr(local, "release_unused_memory", after_a_chunk)
    for n in (5_000, 20_000):
        sim = simulate_disputes(n, start="2022-01-01", end="2024-12-31", seed=3)
        sim.events.to_parquet(tmp_path / f"ev{n}.parquet", index=False)  # streamed, as in production
        sim.entities.to_parquet(tmp_path / f"ent{n}.parquet", index=False)
        del sim
        score_batch(model=str(model_dir), events=tmp_path / f"ev{n}.parquet", entities=tmp_path / f"ent{n}.parquet",
                    as_of=AS_OF, out=tmp_path / f"out{n}", chunk_disputes=2500, reasons="none")
    print(f"chunk stages' heap peak {heap}, Arrow held after a chunk {arrow} (bytes)")
    assert heap[5_000] > 1_000_000  # it measured the chunks' work
    extra = 15_000  # disputes
    assert heap[20_000] - heap[5_000] <= 250 * extra, heap  # measured: 160 bytes per dispute
    assert arrow[20_000] - arrow[5_000] <= 250 * extra, arrow


def test_a_second_run_into_the_same_output_is_refused(model_dir, data, tmp_path):
    """Two runs writing one output folder would discard each other's work folder: while one
    holds the output's lock, another gets a clear error at once, in Python's and the
    command line's words; the lock goes with the run (no file left behind)."""
    import fcntl

    from riskmodel._errors import ConfigError

    out = tmp_path / "out"
    with open(tmp_path / ".lock-out", "a") as other:  # what a running night holds
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.raises(ConfigError, match=r"another scoring run is writing .*out=") as caught:
            score_batch(model=str(model_dir), events=data["events"], entities=data["entities"], as_of=AS_OF, out=out)
        assert "--out" in caught.value.for_cli()
        assert not out.exists()
    (tmp_path / ".lock-out").unlink()
    score_batch(model=str(model_dir), events=data["events"], entities=data["entities"], as_of=AS_OF, out=out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_extract_written_another_way_is_read_or_refused(model_dir, data, tmp_path):
    """Kinds padded with spaces (a CHAR(n) column) score as the trimmed kinds; a night whose
    disputes find no entities row (ids written another way), or whose kinds are all unknown
    to the model, is refused after its output is written; some disputes without an entities
    row are counted and warned about. They were scored without a word (closed disputes back
    on the work lists, escalated ones scored as open)."""
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=400)
    events = data["events"]
    score_batch(events=events, out=tmp_path / "base", **kw)
    padded = events.assign(kind=[k.ljust(20) if isinstance(k, str) else k for k in events["kind"]])
    score_batch(events=padded, out=tmp_path / "padded", **kw)
    for name in ("scores", "not_scored"):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "padded" / f"{name}.parquet"),
                                      pd.read_parquet(tmp_path / "base" / f"{name}.parquet"), obj=name)
    renamed = events.assign(kind="x_" + events["kind"].astype(object))
    with pytest.raises(DataError, match="none of the events' kinds has a column in the model"):
        score_batch(events=renamed, out=tmp_path / "renamed", **kw)
    # the refused night says so where a downstream job looks, and leaves no work lists to send out
    refused = json.loads((tmp_path / "renamed" / "manifest.json").read_text(encoding="utf-8"))
    assert refused["status"] == "refused" and "kinds" in refused["refused_because"]
    assert "worklists.parquet" not in refused["files"] and not (tmp_path / "renamed" / "worklists.parquet").exists()
    assert all((tmp_path / "renamed" / name).exists() for name in refused["files"])
    with pytest.raises(DataError, match="is a night `riskmodel score` refused .*kinds"):
        read_nightly(tmp_path / "renamed")
    assert json.loads((tmp_path / "base" / "manifest.json").read_text(encoding="utf-8"))["status"] == "scored"
    # times no parser reads (Oracle's 01-JAN-22 12.32.46.000000 AM): the refusal says why, with values
    oracle = events.assign(time=pd.to_datetime(events["time"], errors="coerce", format="mixed")
                           .dt.strftime("%d-%b-%y %I.%M.%S.000000 %p").str.upper())
    with pytest.raises(DataError, match=r"every one was rejected \(.*[\d,]+ row\(s\) with unparseable time in 'time', "
                                        r"e.g. \['\d\d-[A-Z]{3}-\d\d "):
        score_batch(events=oracle, out=tmp_path / "oracle", **kw)
    # every id merged into one (case numbers saved by Excel: 3.20102E+17): no dispute scored, which says why
    with pytest.warns(DataWarning, match=r"no dispute is open .*; [\d,]+ rows of the entities table have no event: do "
                                         r"both files write the ids alike"):
        score_batch(events=events.assign(dispute_id="3.20102E+17"), out=tmp_path / "merged", **kw)
    entities = data["sim"].entities
    kw["entities"] = entities.assign(dispute_id=entities["dispute_id"] + " ")
    with pytest.raises(DataError, match="none of the .* disputes scored has a row in the entities table"):
        score_batch(events=events, out=tmp_path / "ids", **kw)
    kw["entities"] = entities.iloc[::2]
    with pytest.warns(DataWarning, match="disputes scored have no row in the entities table"):
        m = score_batch(events=events, out=tmp_path / "half", **kw)
    assert 0 < m["counts"]["disputes_without_entity_row"] < m["counts"]["disputes_scored"]


def test_a_night_in_another_timezone_convention_is_refused(model_dir, data, tmp_path):
    """Events with a zone (a parquet timestamp with tz, as Spark writes) or an as_of with a UTC
    offset, for a model trained on naive wall-clock times: refused before any work. They
    were compared in UTC without a word (night-time counts and closing times shifted)."""
    kw = dict(model=str(model_dir), entities=data["entities"], chunk_disputes=400)
    events = data["sim"].events.head(2000)
    zoned = events.assign(time=events["time"].dt.tz_localize("Asia/Shanghai"))
    zoned.to_parquet(tmp_path / "zoned.parquet", index=False)
    for given in (zoned, tmp_path / "zoned.parquet"):
        with pytest.raises(DataError, match="events' times are timezone-aware but model .* naive"):
            score_batch(events=given, as_of=AS_OF, out=tmp_path / "zoned", **kw)
    with pytest.raises(ConfigError, match="as_of carries a UTC offset"):
        score_batch(events=events, as_of=AS_OF + "T00:00:00+08:00", out=tmp_path / "offset", **kw)
    for typo in ("3024-06-01", "2124-06-01"):  # beyond pandas' range, and after tomorrow
        with pytest.raises(ConfigError, match="is after tomorrow: a night is scored at a time"):
            score_batch(events=events, as_of=typo, out=tmp_path / "typo", **kw)
    assert not any((tmp_path / name).exists() for name in ("zoned", "offset", "typo"))


def test_a_refused_night_is_left_out_and_its_folder_scored_again(model_dir, data, tmp_path):
    """A refused night among several (``nights/*``) is left out of the multi-night reading,
    with a warning (every night was refused with it); the fixed export is scored into the
    refused folder without overwrite (it holds no night)."""
    from riskmodel.batch import concat_scores

    kw = dict(model=str(model_dir), entities=data["entities"], chunk_disputes=400)
    events = data["sim"].events
    score_batch(events=events, as_of=AS_OF, out=tmp_path / "n1", **kw)
    with pytest.raises(DataError, match="none of the events' kinds has a column"):
        score_batch(events=events.assign(kind="x_" + events["kind"].astype(object)), as_of="2024-06-02",
                    out=tmp_path / "n2", **kw)
    with pytest.warns(DataWarning, match=r"1 night\(s\) `riskmodel score` refused are left out"):
        both = concat_scores([tmp_path / "n1", tmp_path / "n2"])
    assert set(both["as_of"].dt.normalize()) == {pd.Timestamp(AS_OF)}
    from riskmodel.batch._nightly import as_nightly_list

    with pytest.warns(DataWarning, match="refused are left out"):  # a report's history: none left is fine
        assert as_nightly_list([tmp_path / "n2"], history=True) == []
    m = score_batch(events=events, as_of="2024-06-02", out=tmp_path / "n2", **kw)  # no overwrite needed
    assert m["status"] == "scored" and (tmp_path / "n2" / "worklists.parquet").exists()
    with pytest.raises(ConfigError, match="already exists"):  # a scored night stays protected
        score_batch(events=events, as_of="2024-06-02", out=tmp_path / "n2", **kw)


def test_inputs_as_exports_come(model_dir, data, tmp_path):
    """A hive dataset whose oldest part has a column all missing (Arrow type null), a folder of
    CSV parts, and entities closing times that do not parse: scored (they failed with Arrow's
    messages, or counted closed disputes open without a word)."""
    sim = data["sim"]
    kw = dict(model=str(model_dir), as_of=AS_OF, chunk_disputes=400)
    base = score_batch(events=sim.events, entities=data["entities"], out=tmp_path / "base", **kw)
    events = sim.events.assign(month=sim.events["time"].dt.strftime("%Y-%m"))
    for i, (month, rows) in enumerate(events.groupby("month")):
        part = rows.drop(columns="month")
        if i == 0:
            part = part.assign(narrative=None)  # a month exported without narratives
        (tmp_path / "hive" / f"month={month}").mkdir(parents=True)
        part.to_parquet(tmp_path / "hive" / f"month={month}" / "part-0.parquet", index=False)
    (tmp_path / "csv").mkdir()
    third = len(sim.events) // 3 + 1
    for i in range(3):
        sim.events.iloc[i * third:(i + 1) * third].to_csv(tmp_path / "csv" / f"events-{i}.csv", index=False)
    for name in ("hive", "csv"):
        m = score_batch(events=tmp_path / name, entities=data["entities"], out=tmp_path / f"out_{name}", **kw)
        assert m["counts"]["disputes_scored"] == base["counts"]["disputes_scored"] > 0, name
    entities = sim.entities.copy()
    closed = entities["closed_at"].notna()
    entities["closed_at"] = entities["closed_at"].astype(object).where(~closed, "已结案")  # closed, no date
    with pytest.warns(DataWarning, match=r"entities column 'closed_at': [\d,]+ time\(s\) did not parse"):
        m = score_batch(events=sim.events, entities=entities, out=tmp_path / "closed", **kw)
    assert m["counts"]["entities_unparseable_times"] == {"closed_at": int(closed.sum())}
    # disputes the entities table lists and no event names are counted (they are in no output)
    extra = sim.entities.head(3).assign(dispute_id=["NEW-1", "NEW-2", "NEW-3"])
    m = score_batch(events=sim.events, entities=pd.concat([sim.entities, extra]), out=tmp_path / "extra", **kw)
    assert m["counts"]["entities_without_events"] == base["counts"]["entities_without_events"] + 3


def test_times_in_the_other_convention_are_rejected_rows_whatever_the_chunks(model_dir, data, tmp_path):
    """One dispute's times written with +08:00 among a naive night: its rows are rejects with
    their reason, however the night is cut into chunks (judged per chunk, a small chunk where
    they were over 1% refused the whole night)."""
    events = data["sim"].events.copy()
    events["time"] = events["time"].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    one = events["dispute_id"] == events["dispute_id"].iloc[0]
    events.loc[one, "time"] = events.loc[one, "time"] + "+08:00"
    for chunk in (100, 100_000):
        m = score_batch(model=str(model_dir), events=events, entities=data["entities"], as_of=AS_OF,
                        out=tmp_path / f"c{chunk}", chunk_disputes=chunk)
        rejects = pd.read_parquet(tmp_path / f"c{chunk}" / "rejects.parquet")
        assert m["counts"]["events_rejected"] == int(one.sum()) == len(rejects)
        assert set(rejects["reject_reason"]) == {"time with a UTC offset among times without (or the reverse) in 'time'"}


def test_an_output_that_cannot_be_written_is_said_in_words(model_dir, data, tmp_path, monkeypatch):
    """A full disk or a folder the user cannot write is a ConfigError naming the path (it was
    'a bug in riskmodel', exit 1)."""
    import errno

    import riskmodel.batch._job as job

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(job.os, "rename", full)
    with pytest.raises(ConfigError, match="cannot write .*No space left on device") as caught:
        score_batch(model=str(model_dir), events=data["sim"].events, entities=data["entities"], as_of=AS_OF,
                    out=tmp_path / "out", chunk_disputes=400)
    assert "--out" in caught.value.for_cli()


def test_blank_parties_are_no_parties_in_every_chunk(model_dir, data, tmp_path):
    """Parties of spaces only (a CHAR(n) column's empty value) score as missing parties, also
    through the context store of a night cut into chunks (they linked every dispute holding
    one across chunks)."""
    events = data["sim"].events
    some = np.arange(len(events)) % 3 == 0
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=150)
    score_batch(events=events.assign(party_id=events["party_id"].where(~some, " " * 10)), out=tmp_path / "blank", **kw)
    score_batch(events=events.assign(party_id=events["party_id"].where(~some, None)), out=tmp_path / "none", **kw)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "blank" / "scores.parquet"),
                                  pd.read_parquet(tmp_path / "none" / "scores.parquet"))


@pytest.mark.parametrize("flavour", ["frame", "parquet"])
def test_entities_rows_a_night_cannot_use_are_set_aside_not_the_night(model_dir, data, tmp_path, flavour):
    """A dispute exported twice with different attributes (it moved station), a row repeated
    exactly, a row without an id: the night is scored (one such row refused it), the
    dispute of several rows has its events rejected with the reason, the others are scored
    as with the clean table, and each is counted and reconciles."""
    sim = data["sim"]
    base = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF,
                       out=tmp_path / "base", chunk_disputes=300)
    scored = pd.read_parquet(tmp_path / "base" / "scores.parquet")
    moved_id, repeated_id = scored["dispute_id"].iloc[0], scored["dispute_id"].iloc[1]
    ents = sim.entities
    moved = ents[ents["dispute_id"] == moved_id].assign(
        station=ents.loc[ents["station"] != ents.loc[ents["dispute_id"] == moved_id, "station"].iloc[0],
                         "station"].iloc[0])
    dirty = pd.concat([ents.iloc[:5], moved, ents[ents["dispute_id"] == repeated_id], ents.iloc[5:],
                       ents.iloc[[9]].assign(dispute_id=None)], ignore_index=True)
    dirty["station"] = dirty["station"].astype(ents["station"].dtype)
    entities = dirty
    if flavour == "parquet":
        entities = tmp_path / "entities.parquet"
        dirty.to_parquet(entities, index=False)
    with pytest.warns(DataWarning, match="1 dispute.s. with several different rows"):
        m = score_batch(model=str(model_dir), events=sim.events, entities=entities, as_of=AS_OF,
                        out=tmp_path / "dirty", chunk_disputes=300)
    c = m["counts"]
    assert m["status"] == "scored" and c["reconciles"]
    assert (c["entities_without_id"], c["entities_duplicates_dropped"], c["entities_conflicting_ids"]) == (1, 1, 1)
    rejects = pd.read_parquet(tmp_path / "dirty" / "rejects.parquet")
    own = rejects[rejects["dispute_id"] == moved_id]
    assert len(own) == int((sim.events["dispute_id"] == moved_id).sum()) > 0
    assert set(own["reject_reason"]) == {"several different rows in the entities table for this dispute in 'dispute_id'"}
    assert c["disputes_rejected"] == base["counts"]["disputes_rejected"] + 1
    # the others score as with the clean table and without the rejected events (which no dispute reads)
    score_batch(model=str(model_dir), events=sim.events[sim.events["dispute_id"] != moved_id], entities=sim.entities,
                as_of=AS_OF, out=tmp_path / "without", chunk_disputes=300)
    after = pd.read_parquet(tmp_path / "dirty" / "scores.parquet")
    pd.testing.assert_frame_equal(after, pd.read_parquet(tmp_path / "without" / "scores.parquet"))


def test_categorical_ids_score_as_their_strings(model_dir, data, tmp_path):
    """A parquet log whose id column is categorical (pandas writes every category into each
    part): the context of a night of several chunks counted each id once per chunk, and the
    night crashed with pandas' InvalidIndexError. It scores as the same ids as strings."""
    sim = data["sim"]
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF, chunk_disputes=300)
    sim.events.astype({"dispute_id": "category"}).to_parquet(tmp_path / "categorical.parquet", index=False)
    score_batch(events=tmp_path / "categorical.parquet", out=tmp_path / "categorical", **kw)
    score_batch(events=sim.events, out=tmp_path / "plain", **kw)
    got, want = (pd.read_parquet(tmp_path / name / "scores.parquet") for name in ("categorical", "plain"))
    got["dispute_id"] = got["dispute_id"].astype(str)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


def test_a_timezone_aware_model_ranks_a_night_and_names_a_bad_as_of_as_the_keyword(tmp_path):
    """A model trained on times with a zone refused its own aware as_of with tiers="night"
    (the cases the night flagged were explained again from the output's naive UTC as_of);
    a bad as_of was blamed on a cutoffs frame the caller never passed."""
    from riskmodel import FeatureBuilder, RiskModel, make_cutoffs, make_labels, prepare_events
    from riskmodel.model import save_model_dir

    sim = simulate_disputes(600, start="2022-01-01", end="2024-06-30", seed=3)
    events = sim.events.assign(time=sim.events["time"].dt.tz_localize("Asia/Shanghai"))
    ev = prepare_events(events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema), seed_bagging=1, n_folds=2)
    model.fit(ev, lab[~lab.censored], entities=sim.entities)
    predictor = load(str(save_model_dir(model, tmp_path / "model")))
    as_of = pd.Timestamp("2024-06-01", tz="Asia/Shanghai")
    trained = predictor.predict(events, as_of=as_of, entities=sim.entities)
    share = {"red": 0.3, "yellow": 0.3}  # more than the trained thresholds flag: some explained again
    night = predictor.predict(events, as_of=as_of, entities=sim.entities, tiers=share)
    again = (night["tier"] != "blue").to_numpy() & (trained.set_index("dispute_id").loc[
        night["dispute_id"], "tier"] == "blue").to_numpy()
    assert again.any() and (night.loc[again, "reasons"] != "").all()
    for bad, words in (("yesterday-ish", r"as_of='yesterday-ish' is not a date"), (123, r"as_of=123 is a number")):
        with pytest.raises(DataError, match=words):
            predictor.predict(events, as_of=bad, entities=sim.entities)


@pytest.mark.parametrize("tiers", [{"red": 0.02, "yellow": 0.03}, {"by": "station", "capacity": {"S01": 2}}])
def test_chunks_explain_the_cases_the_night_flags_not_those_the_trained_thresholds_flag(
        model_dir, data, tmp_path, monkeypatch, tiers):
    """Each chunk explained every case its trained thresholds flagged, though the night's ranking
    then flagged fewer (40% of the SHAP work thrown away on a 1M-dispute night). A chunk now
    explains the cases the night's policy flags among its own disputes; the night explains the
    few it missed and clears the rest. Reasons as the predictor's night gives them."""
    from riskmodel import RiskModel

    explained = []
    score_features = RiskModel.score_features

    def counting(self, X, cutoffs, *, reasons="flagged"):
        if reasons == "all":
            explained.append(len(X))
        return score_features(self, X, cutoffs, reasons=reasons)

    monkeypatch.setattr(RiskModel, "score_features", counting)
    sim = data["sim"]
    m = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF,
                    out=tmp_path / "out", chunk_disputes=300, tiers=tiers)
    got = pd.read_parquet(tmp_path / "out" / "scores.parquet").sort_values("dispute_id").reset_index(drop=True)
    flagged = got["tier"].astype(str) != "blue"
    trained = load(str(model_dir)).predict(sim.events, as_of=AS_OF, entities=sim.entities)
    assert (trained["tier"].astype(str) != "blue").sum() > 2 * flagged.sum()  # the trained thresholds flag many more
    assert sum(explained) <= 1.5 * flagged.sum() + 4 * m["parameters"]["n_chunks"]
    assert (got.loc[flagged, "reasons"] != "").all() and (got.loc[~flagged, "reasons"] == "").all()
    night = load(str(model_dir)).predict(sim.events, as_of=AS_OF, entities=sim.entities, tiers=tiers)
    night = night.sort_values("dispute_id").reset_index(drop=True)
    assert (night["reasons"].to_numpy() == got["reasons"].to_numpy()).all()


def test_a_night_resumed_under_other_tiers_gives_the_reasons_a_fresh_run_gives(model_dir, data, tmp_path, monkeypatch):
    """A run stopped after its chunks were scored with the night's tiers, then rerun with
    tiers="trained": the chunks had explained the cases the night's ranking flags, and the
    trained tiers kept their reasons as they were (flagged cases without reasons, blue ones
    with). The night completes and clears reasons by what each chunk explained."""
    import riskmodel.batch._job as job

    sim = data["sim"]
    kw = dict(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF, chunk_disputes=300)
    fresh = score_batch(out=tmp_path / "fresh", tiers="trained", **kw)

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(job, "_write_night", stop)
        with pytest.raises(KeyboardInterrupt):
            score_batch(out=tmp_path / "resumed", **kw)
    resumed = score_batch(out=tmp_path / "resumed", tiers="trained", overwrite=True, **kw)
    assert resumed["resumed"] and not fresh["resumed"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "resumed" / "scores.parquet"),
                                  pd.read_parquet(tmp_path / "fresh" / "scores.parquet"))


def test_nights_of_number_and_text_ids_are_read_as_one_id_each():
    """A CSV night's ids read as numbers beside a parquet night's as text: concat_scores gave
    100004 and "100004" as two disputes (a user grouping the frame counted them twice)."""
    from riskmodel.batch import concat_scores

    def night(day, ids):
        return pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp(day), "probability": 0.1,
                             "tier": pd.Categorical(["blue"] * len(ids), categories=["red", "yellow", "blue"])})

    both = concat_scores([night("2024-06-01", [100004, 100005]), night("2024-06-02", ["100004", "100006"])])
    assert both["dispute_id"].tolist() == ["100004", "100005", "100004", "100006"]
    assert both.groupby("dispute_id").size().to_dict() == {"100004": 2, "100005": 1, "100006": 1}


def test_a_predictor_reads_requests_as_the_batch_and_the_served_model_read_them(model_dir, data):
    """Found calling a loaded model as a service would: an id held as 275 and "275" was scored
    twice (two probabilities); tiers by station with int event ids and text entity ids put every
    dispute in "(unknown)"; a Chinese as_of was refused as of another clock; "today" was the
    moment of the call; a request without narrative or party was refused with advice a loaded
    model cannot follow (the served model takes it)."""
    sim = data["sim"]
    predictor = load(str(model_dir))
    some = open_disputes(sim.events, AS_OF, sim.schema, entities=sim.entities)["dispute_id"].iloc[:60]
    events = sim.events[sim.events["dispute_id"].isin(some)]
    digits = events.assign(dispute_id=events["dispute_id"].str[1:].astype(int))
    entities = sim.entities.assign(dispute_id=sim.entities["dispute_id"].str[1:])  # the same ids, as text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ref = predictor.predict(digits.assign(dispute_id=digits["dispute_id"].astype(str)), as_of=AS_OF,
                                entities=entities, tiers={"by": "station"})
        mixed = digits.astype({"dispute_id": object})
        mixed.loc[mixed.index[::2], "dispute_id"] = mixed["dispute_id"].iloc[::2].astype(str)
        once = predictor.predict(mixed, as_of=AS_OF, entities=entities)
        assert once["dispute_id"].is_unique and len(once) == digits["dispute_id"].nunique()
        by_station = predictor.predict(digits, as_of=AS_OF, entities=entities, tiers={"by": "station"})
        assert {r["area"] for r in by_station.attrs["tiers"]} == {r["area"] for r in ref.attrs["tiers"]}
        assert (by_station["tier"].astype(str).to_numpy() == ref["tier"].astype(str).to_numpy()).all()
        chinese = predictor.predict(events, as_of="2024年6月1日", entities=sim.entities)
        plain = predictor.predict(events.drop(columns=["narrative", "party_id"]), as_of=AS_OF, entities=sim.entities)
        blank = predictor.predict(events.assign(narrative=None, party_id=None), as_of=AS_OF, entities=sim.entities)
    np.testing.assert_allclose(plain["probability"], blank["probability"])
    assert (chinese["as_of"] == pd.Timestamp(AS_OF)).all()
    for bad in ("today", ""):
        with pytest.raises(DataError, match=f"as_of='{bad}' is not a date or time"):
            predictor.predict(events, as_of=bad, entities=sim.entities)


def test_parquet_parts_holding_a_column_as_different_types_are_named(model_dir, data, tmp_path):
    """A year's parts with party ids as numbers beside a year's as text (schema drift): Arrow's
    "Unable to merge" (or "Failed to parse string") named neither the column's parts nor the
    cause, and added how CSV files are told apart."""
    events = data["sim"].events
    for year, part in ((2023, events.iloc[::2].assign(party_id=lambda f: f["party_id"].str[1:].astype(float))),
                       (2024, events.iloc[1::2])):
        (tmp_path / "events" / f"year={year}").mkdir(parents=True)
        part.to_parquet(tmp_path / "events" / f"year={year}" / "part-0.parquet", index=False)
    said = r"its parts hold column 'party_id' as different types \(double in year=2023/part-0.parquet and .*string in " \
           r"year=2024/part-0.parquet\)"
    with pytest.raises(DataError, match="could not read events .*" + said):
        score_batch(model=str(model_dir), events=tmp_path / "events", entities=data["entities"], as_of=AS_OF,
                    out=tmp_path / "out")
    from riskmodel.lifecycle import read_table

    with pytest.raises(DataError, match=said):
        read_table(tmp_path / "events")


def test_parquet_parts_holding_ids_as_numbers_and_as_text_read_as_text_by_train_and_score(model_dir, data,
                                                                                          tmp_path):
    """Ids exported as int64 one year and as strings the next: ``score`` refused the folder
    while ``train``'s reader (pandas) read every part as the first one's type, turning
    ``"0012"`` into 12 (or failing on ``"C-12"``). Both now read such a column as text in every
    part: the night equals the night of an all-text log, and text ids keep their zeros."""
    sim = data["sim"]
    ids = pd.unique(sim.events["dispute_id"])
    digits = sim.events.assign(dispute_id=sim.events["dispute_id"].str[1:].astype(int))
    entities = sim.entities.assign(dispute_id=sim.entities["dispute_id"].str[1:].astype(int))
    entities.to_parquet(tmp_path / "entities.parquet", index=False)
    first = digits["dispute_id"].isin([int(i[1:]) for i in ids[::2]])
    for year, part in ((2023, digits[first]), (2024, digits[~first].astype({"dispute_id": str}))):
        (tmp_path / "mixed" / f"year={year}").mkdir(parents=True)
        part.to_parquet(tmp_path / "mixed" / f"year={year}" / "part-0.parquet", index=False)
        (tmp_path / "text" / f"year={year}").mkdir(parents=True)
        part.astype({"dispute_id": str}).to_parquet(tmp_path / "text" / f"year={year}" / "part-0.parquet",
                                                    index=False)
    for name in ("mixed", "text"):
        score_batch(model=str(model_dir), events=tmp_path / name, entities=tmp_path / "entities.parquet",
                    as_of=AS_OF, out=tmp_path / f"out_{name}")
    _assert_same_outputs(tmp_path / "out_mixed", tmp_path / "out_text")
    scores = _read_outputs(tmp_path / "out_mixed")["scores"]
    assert len(scores) > 0 and scores["dispute_id"].map(type).eq(str).all()
    from riskmodel.lifecycle import read_table

    read = read_table(tmp_path / "mixed")
    assert len(read) == len(digits) and read["dispute_id"].nunique() == len(ids)
    zeros = tmp_path / "zeros"
    zeros.mkdir()
    pd.DataFrame({"dispute_id": [12, 13], "v": [1, 2]}).to_parquet(zeros / "a.parquet", index=False)
    pd.DataFrame({"dispute_id": ["0012", "C-12"], "v": [3, 4]}).to_parquet(zeros / "b.parquet", index=False)
    assert sorted(read_table(zeros)["dispute_id"]) == ["0012", "12", "13", "C-12"]



def test_an_output_folder_of_hidden_files_only_is_empty_on_either_engine(tmp_path):
    """A folder holding only .DS_Store was a folder of other things (refused, even with
    --overwrite); check_out judges it for both engines."""
    from riskmodel.batch._job import check_out

    kw = dict(overwrite=True, inputs={}, qualify=lambda path: None)
    assert check_out(tmp_path / "o", [".DS_Store", ".gitkeep"], None, **kw) is None
    with pytest.raises(ConfigError, match=r"a folder of other things \(\['notes.txt'\]\)"):
        check_out(tmp_path / "o", [".DS_Store", "notes.txt"], None, **kw)


@pytest.mark.parametrize("given", ["frame", "parquet"])
def test_rejects_show_a_blank_id_as_written(model_dir, data, tmp_path, given):
    """A row whose id is blank (spaces, a tab, a zero-width space) is rejected for a null id, and
    the rejects show the id as the export wrote it, as they show every other rejected value (they
    showed NaN: nothing told a blank id from a missing one). A blank id is no dispute: the
    disputes read are the real ones, none lost to rejects (each blank value was counted as a
    dispute read whose every row was rejected)."""
    events = data["sim"].events.copy()
    events["dispute_id"] = events["dispute_id"].astype(object)
    real = events["dispute_id"].nunique()
    events = pd.concat([events, events.iloc[[10, 20, 25, 30]].assign(dispute_id=["   ", "\u200b", "\t", None])],
                       ignore_index=True)
    if given == "parquet":
        events.to_parquet(tmp_path / "events.parquet", index=False)
        events = tmp_path / "events.parquet"
    m = score_batch(model=str(model_dir), events=events, entities=data["entities"], as_of=AS_OF,
                    out=tmp_path / "night")
    rejects = pd.read_parquet(tmp_path / "night" / "rejects.parquet")
    ids = rejects.loc[rejects["reject_reason"] == "null id in 'dispute_id'", "dispute_id"]
    assert sorted(ids.fillna("<missing>")) == ["\t", "   ", "<missing>", "\u200b"]
    counts = m["counts"]
    assert counts["disputes_read"] == real and counts["disputes_rejected"] == 0 and counts["reconciles"]


def test_a_placeholder_closing_time_leaves_the_night_whole_and_is_counted(model_dir, data, tmp_path):
    """An entities export writing 1900-01-01 for 'still open' took most open disputes off the
    night as 'closed at or before as_of', reconciled and without a word. A closing before the
    dispute's first event closes nothing: the night scores what it scored with empty cells,
    counts those disputes in the manifest and says so, over several chunks."""
    entities = data["sim"].entities
    plain = score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=entities,
                        as_of=AS_OF, out=tmp_path / "plain", chunk_disputes=400)
    placeholder = entities.assign(closed_at=entities["closed_at"].fillna(pd.Timestamp("1900-01-01")))
    with pytest.warns(DataWarning, match=r"open dispute\(s\) closed before their first event .*taken as not closed"):
        night = score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=placeholder,
                            as_of=AS_OF, out=tmp_path / "night", chunk_disputes=400)
    c = night["counts"]
    assert c["disputes_scored"] == plain["counts"]["disputes_scored"] >= c["entities_closed_before_first_event"] > 0
    assert c["not_open_by_reason"] == plain["counts"]["not_open_by_reason"] and c["reconciles"]
    assert plain["counts"]["entities_closed_before_first_event"] == 0


def test_an_arrow_or_polars_table_is_refused_in_words(model_dir, data, tmp_path):
    """A polars or Arrow table where a pandas DataFrame goes (a natural move today) crashed
    the predictor (AttributeError) and score_batch (pathlib's TypeError)."""
    import pyarrow as pa

    import riskmodel as rm

    tables = [pa.Table.from_pandas(data["sim"].events)]
    try:
        import polars as pl

        tables.append(pl.from_pandas(data["sim"].events))
    except ImportError:  # polars is a benchmark extra
        pass
    predictor = rm.load(str(model_dir))
    for table in tables:
        words = rf"events must be a pandas DataFrame, got {type(table).__module__.split('.')[0]}\.{type(table).__name__}; " \
                r"pass events\.to_pandas\(\)"
        with pytest.raises(DataError, match=words):
            score_batch(model=str(model_dir), events=table, as_of=AS_OF, out=tmp_path / "night")
        with pytest.raises(DataError, match=words):
            predictor.predict(table, as_of=AS_OF)
    assert not (tmp_path / "night").exists()


def _header_twice(frame: pd.DataFrame, path: Path, column: str) -> Path:
    """``frame`` as CSV at ``path`` (compressed by its name) with a copy of ``column`` last,
    under the same name in the header (``dispute_id,time,...,time``)."""
    frame.assign(copy_of_it=frame[column]).rename(columns={"copy_of_it": column}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz", "parts/p2.csv"])
def test_a_csv_header_naming_a_column_twice_is_refused_in_keyword_and_flag_words(model_dir, data, tmp_path, name):
    """A header ``dispute_id,time,...,time`` was read with pandas' renamed copy ``time.1``
    (the first one taken without a word), while a DataFrame with two ``time`` columns is refused."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    events = data["events"]
    _header_twice(events, path, "time")
    given = path
    if name.startswith("parts/"):  # a folder of CSV parts: the part named
        events.iloc[:10].to_csv(path.parent / "p1.csv", index=False)
        given = path.parent
    with pytest.raises(DataError) as refused:
        score_batch(model=str(model_dir), events=given, entities=data["entities"], as_of=AS_OF, out=tmp_path / "out")
    part = " (its file p2.csv)" if name.startswith("parts/") else ""
    head = ": its header has more than one column named ['time'] ('time' in columns 2 and 6); keep one of each"
    assert str(refused.value).startswith(f"events={str(given)!r}{part}{head}")
    assert refused.value.for_cli().startswith(f"--events {given}{part}{head}")
    assert not (tmp_path / "out").exists()
    # the entities too, and train's reading of the config's files
    entities = _header_twice(data["sim"].entities, tmp_path / "entities.csv", "station")
    with pytest.raises(DataError, match=r"^entities='.*entities.csv': its header has more than one column named "
                                        r"\['station'\] \('station' in columns 4 and 9\)"):
        score_batch(model=str(model_dir), events=data["root"] / "events.csv", entities=entities, as_of=AS_OF,
                    out=tmp_path / "out")
    from riskmodel.lifecycle._config import config_from_dict, load_data

    config = config_from_dict({"data": {"source": "files", "events": str(path)}})
    if not name.startswith("parts/"):
        with pytest.raises(DataError, match=r"^\[data\] events = '.*': its header has more than one column named"):
            load_data(config)


def test_blank_csv_header_cells_are_no_repeated_name(model_dir, data, tmp_path):
    """Blank header cells (pandas' index column, a comma ending every line) name nothing: read as before."""
    from riskmodel.lifecycle import read_csv

    path = tmp_path / "events.csv"
    data["events"].iloc[:50].to_csv(path)  # ",dispute_id,time,...": the index column has no name
    text = path.read_text().splitlines()
    path.write_text("\n".join(line + "," for line in text) + "\n")  # and a comma ending every line
    frame = read_csv(path)
    assert list(frame.columns)[1:-1] == list(data["events"].columns) and len(frame) == 50


@pytest.mark.parametrize("name", ["events.tsv", "events.txt", "folder/b.tsv"])
def test_a_file_neither_csv_nor_parquet_says_which_files_are_read_how(model_dir, data, tmp_path, name):
    """An ``events.tsv`` was read as parquet: the user got Arrow's 'Parquet magic bytes not
    found in footer'."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    data["events"].to_csv(path, sep="\t" if name.endswith(".tsv") else ",", index=False)
    given = path
    if name.startswith("folder/"):  # a part of a parquet folder
        data["events"].iloc[:10].to_parquet(path.parent / "a.parquet", index=False)
        given = path.parent
    with pytest.raises(DataError) as refused:
        score_batch(model=str(model_dir), events=given, entities=data["entities"], as_of=AS_OF, out=tmp_path / "out")
    said, cli = str(refused.value), refused.value.for_cli()
    what = f": its file {path} is" if name.startswith("folder/") else " is"
    looks = "tab-separated text" if name.endswith(".tsv") else "text"
    tail = (f"{what} neither CSV nor parquet. A file named *.csv, *.csv.gz, *.csv.bz2, *.csv.zip, *.csv.xz or "
            "*.csv.zst is read as CSV (comma-separated), any other as parquet (a folder as its files), and "
            f"{path.name} is not parquet: it looks like {looks}. Save it as comma-separated CSV named *.csv (or "
            "*.csv.gz), or as parquet.")
    assert said == f"events={str(given)!r}{tail}"
    assert cli == f"--events {given}{tail}"
    assert "magic" not in said and "Arrow" not in said


# ------------------------------------------------------------------------------------------
# closing times: read once per chunk, the same night on foreign inputs


@pytest.fixture(scope="module")
def model_without_entities_dir(tmp_path_factory) -> Path:
    """A model trained without an entities table: its nights have none."""
    from riskmodel import FeatureBuilder, RiskModel, make_cutoffs, make_labels, prepare_events
    from riskmodel.model._artifact import save_model_dir

    sim = simulate_disputes(1000, start="2022-01-01", end="2024-12-31", seed=3)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema))
    model.fit(ev, lab[~lab.censored])
    return save_model_dir(model, tmp_path_factory.mktemp("no-entities") / "model")


def _foreign_night(sim, variant: str):
    """The simulated night as another export writes it: events, entities (``None``: no table)
    and the function writing a simulated id as this export does."""
    events, entities = sim.events, sim.entities
    closed = entities["closed_at"]
    as_id = {"int ids": lambda ids: ids.str[1:].astype("int64") + 10**12,
             "long ids, shuffled rows": lambda ids: "CASE/" + "0" * 80 + "/" + ids,
             "categorical ids": lambda ids: ids.astype("category")}.get(variant, lambda ids: ids)
    entities = entities.assign(closed_at={
        "no closing dates": pd.Series(pd.NaT, index=closed.index, dtype="datetime64[ns]"),
        "placeholder 1900-01-01": closed.fillna(pd.Timestamp("1900-01-01")),
        "placeholder 9999-12-31 as text": closed.astype(str).where(closed.notna(), "9999-12-31")}.get(variant, closed))
    events, entities = events.assign(dispute_id=as_id(events["dispute_id"])), \
        entities.assign(dispute_id=as_id(entities["dispute_id"]))
    if variant == "long ids, shuffled rows":
        events, entities = events.sample(frac=1, random_state=1), entities.sample(frac=1, random_state=2)
    return events, None if variant == "no entities table" else entities, as_id


@pytest.mark.parametrize("variant", ["int ids", "long ids, shuffled rows", "categorical ids", "no closing dates",
                                     "placeholder 1900-01-01", "placeholder 9999-12-31 as text", "no entities table"])
def test_foreign_inputs_score_and_account_as_the_open_rule_says(model_dir, model_without_entities_dir, data, tmp_path,
                                                                monkeypatch, variant):
    """Whatever the ids' type, the rows' order and the closings (none, a placeholder before the
    first event, one past pandas' range, no entities table), a night of several chunks scores the
    disputes open at as_of, gives every other one its reason, counts the placeholders and warns
    of them once, at the caller's line; each chunk reads its closings once (open_disputes read
    them a second time)."""
    import riskmodel.batch._core as core
    import riskmodel.evaluation._labels as labels

    sim = data["sim"]
    events, entities, as_id = _foreign_night(sim, variant)
    # the reference, in plain pandas on the simulated ids: a closing before the first event is none,
    # 9999-12-31 (past pandas' range) none by as_of
    closed = sim.entities["closed_at"]
    none = pd.Series(pd.NaT, index=closed.index, dtype=closed.dtype)
    closed = {"no closing dates": none, "no entities table": none,
              "placeholder 1900-01-01": closed.fillna(pd.Timestamp("1900-01-01"))}.get(variant, closed)
    first = sim.entities["dispute_id"].map(sim.events.groupby("dispute_id")["time"].min())
    expected = _not_open_reference(sim.events, sim.entities.assign(closed_at=closed.mask(closed < first)), AS_OF)
    placeholders = sim.entities["dispute_id"][(closed < first).to_numpy()]
    reads = []
    for module in (core, labels):
        monkeypatch.setattr(module, "closing_times",
                            lambda *a, _read=module.closing_times, **k: reads.append(1) or _read(*a, **k))
    model = model_without_entities_dir if entities is None else model_dir
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = score_batch(model=str(model), events=events, entities=entities, as_of=AS_OF, out=tmp_path / "night",
                        chunk_disputes=400)
    assert len(reads) == m["parameters"]["n_chunks"] > 1

    def shown(ids) -> pd.Index:  # the simulated ids as this export writes them, as text
        return pd.Index(as_id(pd.Series(ids, dtype=str)).astype(str))

    scores = pd.read_parquet(tmp_path / "night" / "scores.parquet")
    assert sorted(scores["dispute_id"].astype(str)) == sorted(shown(expected.index[expected == "open"]))
    not_scored = pd.read_parquet(tmp_path / "night" / "not_scored.parquet")
    reasons = expected[expected != "open"]
    got = pd.Series(not_scored["reason"].to_numpy(), not_scored["dispute_id"].astype(str))
    pd.testing.assert_series_equal(got.sort_index(), pd.Series(reasons.to_numpy(), shown(reasons.index)).sort_index(),
                                   check_names=False)
    c = m["counts"]
    assert c["entities_closed_before_first_event"] == expected[placeholders].eq("open").sum()
    assert (c["entities_closed_before_first_event"] > 0) == (variant == "placeholder 1900-01-01") and c["reconciles"]
    said = [w for w in caught if "closed before their first event" in str(w.message)]
    assert [w.filename for w in said] == [__file__] * (variant == "placeholder 1900-01-01")


@pytest.mark.parametrize("role", ["events", "entities"])
def test_local_inputs_refuse_a_case_clash_in_any_column_the_schema_reads(tmp_path, role):
    """Spark's column names ignore case, so it refuses a CSV header whose names differ only
    by case when one is a column the schema reads; the local engine judged only the columns
    it reads as text, and read an event attribute (``channel`` beside ``Channel``) or an
    entities feature column (``opened_at`` beside ``Opened_At``) that Spark refuses. Both
    engines now refuse the same files; names the schema does not read may still clash."""
    from riskmodel import DataError, EventSchema
    from riskmodel.batch._inputs import Entities, Source
    from riskmodel.lifecycle import read_table

    schema = EventSchema(event_attribute_cols=("channel",))
    events = pd.DataFrame({"dispute_id": ["a", "b"], "time": ["2024-01-02", "2024-01-03"], "kind": ["call", "call"],
                           "narrative": ["x", "y"], "party_id": ["p", "q"], "channel": ["phone", "desk"]})
    entities = pd.DataFrame({"dispute_id": ["a", "b"], "category": ["debt", "land"], "station": ["s1", "s2"],
                             "opened_at": ["2024-01-01", "2024-01-01"], "closed_at": [None, None]})
    schema = EventSchema(event_attribute_cols=("channel",), entity_categorical_cols=("category", "station"),
                         entity_time_cols=("opened_at",), closed_col="closed_at") if role == "entities" else schema
    frame, column = (events, "channel") if role == "events" else (entities, "opened_at")
    clash = tmp_path / f"{role}.csv"
    frame.assign(**{column.title(): frame[column]}).to_csv(clash, index=False)
    read = (lambda: Source(clash, schema)) if role == "events" else (lambda: Entities(clash, schema))
    with pytest.raises(DataError, match=rf"{role}=.*differ only by letter case, \['{column}', '{column.title()}'\]"):
        read()
    with pytest.raises(DataError, match="differ only by letter case"):  # explain and the report read it alike
        read_table(clash, columns=[column], named=(f"{role}=", f"--{role}"))
    fine = tmp_path / f"{role}-memo.csv"
    frame.assign(memo="m", Memo="M").to_csv(fine, index=False)  # not a column the schema reads
    read_fine = Source(fine, schema) if role == "events" else Entities(fine, schema)
    assert read_fine is not None
