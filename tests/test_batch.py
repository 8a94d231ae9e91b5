"""score_batch: accounting, determinism, resume, atomicity, input flavours, memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import train_model_dir, with_bad_rows

from riskmodel import (
    ConfigError,
    DataError,
    ModelError,
    open_disputes,
)
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch
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
    # the API takes the same policy and gives the same tiers
    ref = load(str(model_dir)).predict(sim.events, cutoffs=cut, entities=entities,
                                       tiers={"by": "station", "capacity": capacity, "red": 0.1, "yellow": 0.2})
    ref = ref.sort_values("dispute_id").reset_index(drop=True)
    assert (ref["tier"].astype(str).to_numpy() == scores["tier"].astype(str).to_numpy()).all()
    assert set(ref.attrs["tiers"]["area"]) == set(per_station.index)


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
            clean, _, summary = prepare_chunk(events[chunk_of_event == i].reset_index(drop=True), schema,
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
    score_batch(out=tmp_path / "a", **kw)  # replaces the previous output
    score_batch(out=tmp_path / "b", **kw)
    assert not (tmp_path / "a" / "stale.txt").exists()
    _assert_same_outputs(tmp_path / "a", tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


@pytest.mark.parametrize("flavour", ["csv", "dir", "frame"])
def test_input_flavours_agree(model_dir, data, tmp_path, flavour):
    ref = tmp_path / "ref"
    score_batch(model=str(model_dir), events=data["root"] / "events.parquet", entities=data["entities"],
                as_of=AS_OF, out=ref, chunk_disputes=400)
    source = {"csv": data["root"] / "events.csv", "dir": data["root"] / "events_dir",
              "frame": data["events"]}[flavour]
    m = score_batch(model=str(model_dir), events=source, entities=data["entities"], as_of=AS_OF,
                    out=tmp_path / "got", chunk_disputes=400)
    assert m["counts"]["disputes_rejected"] == 1
    got, want = _read_outputs(tmp_path / "got"), _read_outputs(ref)
    for name in ("scores", "worklists", "station_summary", "not_scored"):
        pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False, obj=name)
    assert len(got["rejects"]) == len(want["rejects"])


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
                    entities=data["entities"], as_of=AS_OF, out=out)
    assert sorted(p.name for p in out.iterdir()) == before


_RUN = textwrap.dedent(
    """
    import sys
    from riskmodel.batch._job import score_batch
    score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of=sys.argv[4],
                out=sys.argv[5], chunk_disputes=int(sys.argv[6]))
    """
)


def test_kill_and_rerun_is_identical(model_dir, data, tmp_path):
    args = [str(model_dir), str(data["root"] / "events.parquet"), str(data["entities"]), AS_OF]
    env = dict(os.environ, RISKMODEL_BATCH_DIE_AFTER_CHUNKS="1")
    killed = subprocess.run([sys.executable, "-c", _RUN, *args, str(tmp_path / "resumed"), "400"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == 137, killed.stderr
    assert not (tmp_path / "resumed").exists()
    work = tmp_path / ".tmp-resumed-20240601T000000"
    assert len(list((work / "scores").glob("chunk-*.done"))) == 1
    m = score_batch(model=args[0], events=args[1], entities=args[2], as_of=AS_OF, out=tmp_path / "resumed",
                    chunk_disputes=400)
    assert m["resumed"]
    score_batch(model=args[0], events=args[1], entities=args[2], as_of=AS_OF, out=tmp_path / "plain",
                chunk_disputes=400)
    _assert_same_outputs(tmp_path / "resumed", tmp_path / "plain")
    assert not work.exists()


_PEAK = textwrap.dedent(
    """
    import resource, sys
    from riskmodel.batch._job import score_batch
    score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of="2024-06-01",
                out=sys.argv[4], chunk_disputes=int(sys.argv[5]), reasons="none")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


@pytest.mark.slow
def test_memory_bounded_by_chunk_size(model_dir, tmp_path):
    peaks = {}
    for n in (5_000, 20_000):
        sim = simulate_disputes(n, start="2022-01-01", end="2024-12-31", seed=3)
        sim.events.to_parquet(tmp_path / f"ev{n}.parquet", index=False)
        sim.entities.to_parquet(tmp_path / f"ent{n}.parquet", index=False)
        del sim
        res = subprocess.run(
            [sys.executable, "-c", _PEAK, str(model_dir), str(tmp_path / f"ev{n}.parquet"),
             str(tmp_path / f"ent{n}.parquet"), str(tmp_path / f"out{n}"), "2500"],
            capture_output=True, text=True, timeout=300,
        )
        assert res.returncode == 0, res.stderr
        peaks[n] = int(res.stdout.strip().splitlines()[-1])
    assert peaks[20_000] <= 1.3 * peaks[5_000], peaks
