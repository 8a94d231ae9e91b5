"""score_batch(engine="spark"): a real local[2] Spark session gives the local engine's output.

The multi-executor tests (``local-cluster``: dirty inputs by URI, a catalog table, a Spark
DataFrame, a driver killed with SIGKILL) are in ``test_spark_cluster.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import dirty_events, train_model_dir, with_bad_rows

from riskmodel._errors import ConfigError, DataError, DataWarning
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch

pytestmark = pytest.mark.spark

AS_OF = "2024-06-01"
OUTPUTS = ("scores", "worklists", "station_summary", "rejects", "not_scored", "drift")
CHUNK = 250  # about 600 disputes: three chunks


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local[2] session for the module, started by the engine's own session helper."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (no java on PATH, no JAVA_HOME)")
    pytest.importorskip("pyspark")
    from riskmodel.batch.engines._spark import _session

    with _session("local[2]") as session:
        yield session


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_model_dir(tmp_path_factory.mktemp("model"), 1500, start="2022-01-01", end="2024-12-31", seed=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Simulated events with injected bad rows, as parquet file, hive dataset and CSV."""
    sim = simulate_disputes(600, start="2022-01-01", end="2024-12-31", seed=7)
    root = tmp_path_factory.mktemp("data")
    sim.events.to_parquet(root / "typed.parquet", index=False)  # nanosecond timestamps, as pandas writes
    events, rows = with_bad_rows(sim.events, n_null_id=8, n_unparseable=10, n_future=12)
    events.loc[rows[0], "narrative"] = 'said "I will burn it down",\nthen left'  # quotes, comma, newline
    events.to_parquet(root / "events.parquet", index=False)
    events.assign(year=events["time"].str[:4]).to_parquet(root / "events_hive", partition_cols=["year"],
                                                          index=False)
    events.to_csv(root / "events.csv", index=False)
    sim.entities.to_parquet(root / "entities.parquet", index=False)
    # every bad row in the other column types Spark reads: tz-aware microsecond times (with
    # years pandas' nanoseconds cannot hold), and string times with integer ids in a float column
    for times, ids in (("us_tz", "str"), ("str", "float")):
        table, entities = dirty_events(sim.events, sim.entities, times=times, ids=ids)
        pq.write_table(table, root / f"dirty_{times}.parquet")
        entities.to_parquet(root / f"entities_{times}.parquet", index=False)
    return {"root": root, "events": events, "entities": root / "entities.parquet", "sim": sim,
            "inputs": {"parquet": root / "events.parquet", "hive": root / "events_hive",
                       "csv": root / "events.csv", "frame": events, "typed": root / "typed.parquet"}}


def _outputs(out: Path) -> dict[str, pd.DataFrame]:
    """The output files of a night (a refused night has no work lists)."""
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in OUTPUTS if (out / f"{name}.parquet").exists()}


def _assert_same(got: Path, want: Path) -> None:
    left, right = _outputs(got), _outputs(want)
    assert left.keys() == right.keys()
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)
    m_got = json.loads((got / "manifest.json").read_text())
    m_want = json.loads((want / "manifest.json").read_text())
    for key in ("counts", "tiers", "area", "schema"):
        assert m_got[key] == m_want[key], key
    assert m_got["counts"]["reconciles"]
    assert m_got["parameters"]["n_chunks"] == m_want["parameters"]["n_chunks"]
    assert m_got["files"] == m_want["files"]
    assert m_got.get("monitoring") == m_want.get("monitoring")


@pytest.mark.parametrize("flavour", ["parquet", "typed", "hive", "csv", "frame"])
def test_spark_equals_local(spark, model_dir, data, tmp_path, flavour):
    kw = dict(model=str(model_dir), events=data["inputs"][flavour], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    local = score_batch(out=tmp_path / "local", **kw)
    remote = score_batch(out=tmp_path / "spark", engine="spark", **kw)
    assert remote["engine"] == "spark" and local["engine"] == "local"
    assert remote["parameters"]["n_chunks"] == 3
    c = remote["counts"]
    assert c["disputes_scored"] > 0
    if flavour != "typed":  # the inputs with injected bad rows
        assert c["disputes_rejected"] == 1  # DEAD-1
        assert c["events_rejected"] == 33
    _assert_same(tmp_path / "spark", tmp_path / "local")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "spark"]  # no work dir, no warehouse


def _spy(monkeypatch, cls, name: str, calls: list) -> None:
    original = getattr(cls, name)

    def spy(self, *args):
        calls.append((name, args[-1]))
        return original(self, *args)

    monkeypatch.setattr(cls, name, spy)


def test_spark_resumes_from_committed_chunks(spark, model_dir, data, tmp_path, monkeypatch):
    """A run stopped before finalizing restarts from the chunks Spark committed, redoes only
    the others, and replaces the previous output."""
    import riskmodel.batch._job as batch
    from riskmodel.batch.engines._spark import SparkRun

    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    score_batch(out=tmp_path / "local", **kw)
    (tmp_path / "spark").mkdir()
    (tmp_path / "spark" / "manifest.json").write_text('{"riskmodel_batch": 1, "status": "scored"}')
    (tmp_path / "spark" / "stale.txt").write_text("the previous night")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(batch, "_write_night", crash)
        with pytest.raises(KeyboardInterrupt):
            score_batch(out=tmp_path / "spark", engine="spark", overwrite=True, **kw)
    work = tmp_path / ".tmp-spark-20240601T000000"
    assert sorted(p.name for p in (work / "scores").glob("chunk=*/_SUCCESS")) == ["_SUCCESS"] * 3
    assert (tmp_path / "spark" / "stale.txt").exists()  # untouched until the new output is complete
    # chunk 1 is lost entirely, chunk 2 only its scores: both are redone, chunk 0 is not
    shutil.rmtree(work / "prepared" / "chunk=1")
    for i in (1, 2):
        shutil.rmtree(work / "scores" / f"chunk={i}")
    calls: list = []
    _spy(monkeypatch, SparkRun, "_prepare", calls)
    _spy(monkeypatch, SparkRun, "_score", calls)
    m = score_batch(out=tmp_path / "spark", engine="spark", overwrite=True, **kw)
    assert m["resumed"]
    assert sorted(calls) == [("_prepare", 1), ("_score", 1), ("_score", 2)]
    assert not work.exists()
    assert not (tmp_path / "spark" / "stale.txt").exists()
    _assert_same(tmp_path / "spark", tmp_path / "local")


@pytest.fixture(scope="module")
def aware_model_dir(tmp_path_factory) -> Path:
    """A model trained on times carrying +08:00 (the convention of Spark's timestamps)."""
    from riskmodel import FeatureBuilder, RiskModel, make_cutoffs, make_labels, prepare_events
    from riskmodel.model._artifact import save_model_dir

    sim = simulate_disputes(800, start="2022-01-01", end="2024-12-31", seed=1)
    ev = prepare_events(sim.events.assign(time=sim.events["time"].dt.tz_localize("+08:00")), sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema))
    model.fit(ev, lab[~lab.censored], entities=sim.entities)
    return save_model_dir(model, tmp_path_factory.mktemp("aware_model") / "model")


@pytest.mark.parametrize("times", ["us_tz", "str"])
def test_bad_rows_of_every_type_rejected_alike(spark, model_dir, aware_model_dir, data, tmp_path, times):
    """Null ids, missing, unparseable and absurd times (also outside pandas' nanosecond
    range), missing kinds and exact duplicates, in timestamp-with-zone and string time
    columns and a float id column: the executors reject what the local engine rejects.
    Zoned times are scored by a model trained on zoned times (a naive-trained one refuses
    them, on both engines)."""
    model = aware_model_dir if times == "us_tz" else model_dir
    kw = dict(model=str(model), events=data["root"] / f"dirty_{times}.parquet",
              entities=data["root"] / f"entities_{times}.parquet", as_of=AS_OF, chunk_disputes=CHUNK)
    if times == "us_tz":
        for engine in ("local", "spark"):
            with pytest.raises(DataError, match="timezone-aware but model .* naive"):
                score_batch(out=tmp_path / "naive", engine=engine, **{**kw, "model": str(model_dir)})
    score_batch(out=tmp_path / "local", **kw)
    m = score_batch(out=tmp_path / "spark", engine="spark", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    assert m["counts"]["disputes_rejected"] == 1  # DEAD-1
    reasons = pd.read_parquet(tmp_path / "spark" / "rejects.parquet")["reject_reason"]
    reasons = reasons.str.replace(r" in '\w+'$", "", regex=True).str.replace(r" \(after .*\)$", "", regex=True)
    expected = {"null id", "missing time", "time before 1900-01-01", "time in the future", "missing kind"}
    assert expected <= set(reasons)
    assert ("unparseable time" in set(reasons)) == (times == "str")


def test_time_column_without_values(spark, model_dir, data, tmp_path):
    """A time column with no value at all (pandas types it float64, Spark reads a double):
    every row is rejected for its missing time, on both engines, and the night is refused
    (its output kept: the rejects say why); a column of numbers is refused on both, naming
    the column."""
    events = data["sim"].events.head(300).copy()
    events["time"] = float("nan")
    events.to_parquet(tmp_path / "no_times.parquet", index=False)
    kw = dict(model=str(model_dir), events=tmp_path / "no_times.parquet", entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    for engine in ("local", "spark"):
        with pytest.raises(DataError, match="none of the 300 rows could be used"):
            score_batch(out=tmp_path / engine, engine=engine, **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    m = json.loads((tmp_path / "spark" / "manifest.json").read_text(encoding="utf-8"))
    assert m["counts"]["events_rejected"] == 300 and m["counts"]["disputes_scored"] == 0
    events["time"] = 1.7e9  # epoch seconds: a column of numbers, not of times
    events.to_parquet(tmp_path / "epochs.parquet", index=False)
    kw["events"] = tmp_path / "epochs.parquet"
    for engine in ("local", "spark"):
        with pytest.raises(DataError, match="column 'time' holds numbers"):
            score_batch(out=tmp_path / f"epochs_{engine}", engine=engine, **kw)
        assert not (tmp_path / f"epochs_{engine}").exists()


def test_executors_without_this_riskmodel_are_refused(spark, monkeypatch):
    import riskmodel.batch.engines._spark as engine

    monkeypatch.setattr(engine, "VERSION", "0.0.0-driver")
    with pytest.raises(ConfigError, match=r"executors run riskmodel .*, the driver 0\.0\.0-driver"):
        engine._check_executors(spark)
    monkeypatch.setattr(engine, "_PROBE_SOURCE", engine._PROBE_SOURCE.replace('"riskmodel"', '"riskmodel_absent"'))
    with pytest.raises(ConfigError, match=r"riskmodel is not installed on the Spark executors.*--archives"):
        engine._check_executors(spark)


def test_task_refuses_another_version():
    from riskmodel._version import VERSION
    from riskmodel.batch.engines._spark_tasks import check_library

    check_library(VERSION)
    with pytest.raises(ConfigError, match=f"riskmodel {VERSION} on this executor, 9.9 on the driver"):
        check_library("9.9")


def test_model_travels_as_its_artifact_files(model_dir, data):
    """The tasks rebuild the model from the artifact's files (LightGBM text, JSON): the
    same scores as the model loaded on the driver."""
    from types import SimpleNamespace

    from riskmodel.batch._job import load_predictor
    from riskmodel.batch.engines._spark_tasks import _predictor

    files = {p.name: p.read_bytes() for p in Path(model_dir).iterdir()}
    assert sorted(files) == ["booster.txt", "riskmodel.json"]
    predictor = load_predictor(str(model_dir))
    job = SimpleNamespace(model_files=SimpleNamespace(value=files), model_meta=("m", "1", "r", "uri"))
    rebuilt = _predictor(job)
    events = data["sim"].events
    want = predictor.predict(events, as_of=AS_OF, entities=data["sim"].entities)
    got = rebuilt.predict(events, as_of=AS_OF, entities=data["sim"].entities)
    pd.testing.assert_series_equal(got["probability"], want["probability"])


def test_tasks_predict_on_the_cores_spark_gives_each_task(spark, model_dir):
    """A task's model predicts on ``spark.task.cpus`` LightGBM threads (1 here), not on
    LightGBM's default of every core it sees: a local[2] executor runs two tasks at once.
    The count is set for each task, also on the model a worker cached for an earlier one
    (here left at 7 threads)."""
    from types import SimpleNamespace

    files = {p.name: p.read_bytes() for p in Path(model_dir).iterdir()}
    job = SimpleNamespace(model_files=SimpleNamespace(value=files), model_meta=("m", "1", "r", "uri"))

    def threads(_rows):
        from riskmodel.batch.engines._spark_tasks import _MODEL_CACHE, _predictor

        _MODEL_CACHE.clear()
        first = _predictor(job)
        first.model.set_params(lgbm_params={"num_threads": 7})  # as an earlier task's profile could leave it
        again = _predictor(job)
        assert again is first  # rebuilt once per worker
        yield again.model.lgbm_params["num_threads"]

    assert spark.sparkContext.parallelize(range(2), 2).mapPartitions(threads).collect() == [1, 1]


def test_csv_dtypes_follow_pandas():
    """The executors' per-batch dtype votes give the dtype pandas reads for the whole file."""
    from riskmodel.batch.engines._spark import _csv_dtype

    assert _csv_dtype({"int64"}, nulls=False) == "int64"
    assert _csv_dtype({"int64", "null"}, nulls=True) == "float64"
    assert _csv_dtype({"int64", "float64"}, nulls=False) == "float64"
    assert _csv_dtype({"null"}, nulls=True) == "float64"
    assert _csv_dtype({"bool"}, nulls=True) == "object"
    assert _csv_dtype({"str", "int64", "null"}, nulls=True) == "str"


def test_cli_engine_spark(spark, model_dir, data, tmp_path, capsys):
    from riskmodel.cli import main

    out = tmp_path / "out"
    code = main(["score", "--model", str(model_dir), "--events", str(data["inputs"]["parquet"]),
                 "--entities", str(data["entities"]), "--as-of", AS_OF, "--out", str(out),
                 "--chunk-disputes", str(CHUNK), "--engine", "spark", "--master", "local[2]"])
    assert code in (0, None)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["engine"] == "spark"
    assert "scored" in capsys.readouterr().out


def test_missing_pyspark_is_a_config_error(monkeypatch, model_dir, data, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark -> ImportError
    with pytest.raises(ConfigError, match=r"pip install riskmodel\[spark\]"):
        score_batch(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"],
                    as_of=AS_OF, out=tmp_path / "out", engine="spark")
    assert list(tmp_path.iterdir()) == []


def test_reading_an_incomplete_output_is_refused(spark, model_dir, data, tmp_path):
    """The output appears by a rename; where storage copies instead (an object store), a
    reader that finds a file of the manifest missing refuses the folder."""
    from riskmodel import read_nightly

    out = tmp_path / "night"
    score_batch(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
                out=out.as_uri(), chunk_disputes=CHUNK, engine="spark")
    assert len(read_nightly(out).scores) > 0
    (out / "worklists.parquet").unlink()
    with pytest.raises(DataError, match=r"incomplete: its manifest.json lists \['worklists.parquet'\]"):
        read_nightly(out)



def test_spark_refuses_an_existing_output(spark, model_dir, data, tmp_path):
    """Issue 19's rule on the Spark engine: an existing night's folder is refused before any
    work unless overwrite=True; a file, a folder of other things or an input's folder even
    with it (they were deleted); an empty folder is no night. A refused rerun leaves the
    previous night untouched (it replaced it), as on the local engine."""
    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK, engine="spark")
    out = tmp_path / "night"
    out.mkdir()
    (out / "manifest.json").write_text('{"riskmodel_batch": 1, "status": "scored"}')
    (out / "previous-night.txt").write_text("the output before this run")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README").write_text("not a night")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(ConfigError, match=r"already exists \(a night's folder\).*overwrite=True"):
        score_batch(out=out.as_uri(), **kw)
    for target, what in ((tmp_path / "other", r"a folder of other things \(\['README'\]\)"),
                         (tmp_path / "a-file", "a file"), (data["root"], r"\(or holds, or lies in\) the events input")):
        with pytest.raises(ConfigError, match=f"is {what}.*Give out=") as caught:
            score_batch(out=target.as_uri(), overwrite=True, **kw)
        assert "--out" in caught.value.for_cli() and "out=" not in caught.value.for_cli()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "night", "other"]  # no work folder
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "previous-night.txt"]
    events = data["sim"].events.head(300).assign(time=float("nan"))  # every row rejected: the night is refused
    with pytest.raises(DataError, match=r"none of the 300 rows .* The night is refused: no work lists were written; "
                                        r".*night still holds the previous night, untouched \(the rejects and the "
                                        r"manifest are in .*\.tmp-night-.*/final\)"):
        score_batch(out=out.as_uri(), overwrite=True, **{**kw, "events": events})
    assert (out / "previous-night.txt").exists()
    assert json.loads((out / "manifest.json").read_text()) == {"riskmodel_batch": 1, "status": "scored"}
    kept = json.loads(next(tmp_path.glob(".tmp-night-*/final/manifest.json")).read_text(encoding="utf-8"))
    assert kept["status"] == "refused"
    (tmp_path / "empty").mkdir()
    assert score_batch(out=tmp_path / "empty", **kw)["counts"]["disputes_scored"] > 0


def test_spark_night_tiers_per_area_equal_local(spark, model_dir, data, tmp_path):
    """Issue 20's night tiers on the Spark engine: a share policy per station with
    capacities ranks the whole night after every chunk, and the cases it flags that their
    chunk did not explain get their reasons in the second pass (on the executors): the
    scores, work lists, station summary and the manifest's tiers block equal the local
    engine's."""
    stations = data["sim"].entities["station"].astype(str).value_counts().index
    tiers = {"by": "station", "red": 0.3, "yellow": 0.3,
             "capacity": {stations[0]: 3, stations[1]: {"red": 2, "yellow": 4}}}
    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK, tiers=tiers)
    local = score_batch(out=tmp_path / "local", **kw)
    remote = score_batch(out=tmp_path / "spark", engine="spark", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    assert remote["tiers"]["applied"] == "per_night" and remote["tiers"]["by"] == "station"
    assert local["tiers"].get("reasons_added", 0) > 0  # the second explain pass ran
    work = pd.read_parquet(tmp_path / "spark" / "worklists.parquet")
    assert (work.loc[work["station"] == stations[0], "red_capacity"] == 3).all()
    assert work["reasons"].notna().all()


class _Killed(BaseException):
    """Stands for SIGKILL of the driver: nothing of the job catches it, nothing cleans up."""


@pytest.mark.parametrize("point", ["batch.score:2", "batch.rename", "batch.cleanup"])
def test_spark_stopped_at_a_crash_point_then_rerun(spark, model_dir, data, tmp_path, monkeypatch, point):
    """Issue 23's crash points on the Spark engine's driver: stopped there, the previous
    output stays whole (absent between the two renames, the new one after them), and the
    rerun resumes and gives the local engine's output, leaving no work or aside folder."""
    import riskmodel._faults
    from riskmodel._faults import DIE_AT_ENV

    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    score_batch(out=tmp_path / "local", **kw)
    out = tmp_path / "spark"
    out.mkdir()
    (out / "manifest.json").write_text('{"riskmodel_batch": 1, "status": "scored"}')
    (out / "previous-night.txt").write_text("the output before this run")

    def die():
        raise _Killed(point)

    with monkeypatch.context() as patch:
        patch.setenv(DIE_AT_ENV, point)
        patch.setattr(riskmodel._faults, "_reached", {})
        patch.setattr(riskmodel._faults, "_die", die)
        with pytest.raises(_Killed):
            score_batch(out=out.as_uri(), engine="spark", overwrite=True, **kw)
    work = tmp_path / ".tmp-spark-20240601T000000"
    assert work.exists()
    if point == "batch.rename":
        assert not out.exists()
    elif point == "batch.cleanup":
        _assert_same(out, tmp_path / "local")
    else:
        assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "previous-night.txt"]
        assert len(list(work.glob("scores/chunk=*/_SUCCESS"))) >= 2  # (a chunk in flight completes)
    m = score_batch(out=out.as_uri(), engine="spark", overwrite=True, **kw)
    assert m["resumed"]
    _assert_same(out, tmp_path / "local")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "spark"]


@pytest.mark.parametrize("flavour", ["parquet", "frame"])
def test_entities_rows_set_aside_alike_on_spark(spark, model_dir, data, tmp_path, flavour):
    """A dispute on two different entities rows, a row repeated, a row without an id, and
    closing times that do not parse: Spark sets them aside, rejects, counts and warns as the
    local engine does (both refused the night; Spark did not count the closing times, read open)."""
    ents = data["sim"].entities
    dirty = pd.concat([ents, ents.iloc[[3]].assign(category="other"), ents.iloc[[4]],
                       ents.iloc[[5]].assign(dispute_id=None)], ignore_index=True)
    dirty["category"] = dirty["category"].astype(str)
    closed = dirty["closed_at"].notna() & (dirty.index % 7 == 0)
    dirty["closed_at"] = dirty["closed_at"].dt.strftime("%Y-%m-%d %H:%M:%S").where(~closed, "已结案")  # no date
    entities = dirty
    if flavour == "parquet":
        entities = tmp_path / "entities.parquet"
        dirty.to_parquet(entities, index=False)
    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=entities, as_of=AS_OF,
              chunk_disputes=CHUNK)
    with pytest.warns(DataWarning, match="several different rows"):
        local = score_batch(out=tmp_path / "local", **kw)
    with pytest.warns(DataWarning, match="closed_at'. [0-9,]+ time.s. did not parse"):
        score_batch(out=tmp_path / "spark", engine="spark", **kw)
    c = local["counts"]
    assert (c["entities_without_id"], c["entities_duplicates_dropped"], c["entities_conflicting_ids"]) == (1, 1, 1)
    # the row without an id and the repeat count once each where they were read (both hold a date)
    assert c["entities_unparseable_times"]["closed_at"] >= int(closed.iloc[:len(ents)].sum()) > 0
    _assert_same(tmp_path / "spark", tmp_path / "local")


@pytest.mark.parametrize("flavour", ["parquet", "frame"])
def test_ids_padded_with_spaces_are_warned_about_on_spark_too(spark, model_dir, data, tmp_path, flavour):
    """Ids differing from another only by spaces around them (a CHAR(n) export beside a
    VARCHAR one) are two disputes on both engines, and both say so (Spark said nothing, then
    missed ids padded with full-width spaces, U+3000, which the local engine trims; neither said
    anything of zero-width spaces, U+200B)."""
    events = data["sim"].events.copy()
    first = events["dispute_id"].drop_duplicates()
    for ids, pad in ((first.iloc[:2], "  "), (first.iloc[2:4], "\u3000"), (first.iloc[4:6], "\u200b")):
        some = events["dispute_id"].isin(ids) & (events.index % 2 == 0)
        events.loc[some, "dispute_id"] = events.loc[some, "dispute_id"] + pad
    events.loc[events["dispute_id"] == first.iloc[6], "dispute_id"] = "NULL"  # a driver's missing id, as a word
    lower = (events["dispute_id"] == first.iloc[7]) & (events.index % 2 == 0)
    events.loc[lower, "dispute_id"] = first.iloc[7].lower()  # one dispute in two cases: two systems
    events.loc[events["dispute_id"] == first.iloc[8], "dispute_id"] = "3.20102E+17"  # a case number after Excel
    for i, twin in ((9, lambda d: d.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})), (10, lambda d: "'" + d)):
        some = (events["dispute_id"] == first.iloc[i]) & (events.index % 2 == 0)  # full width; Excel's text marker
        events.loc[some, "dispute_id"] = twin(first.iloc[i])
    source = events
    if flavour == "parquet":
        source = tmp_path / "events.parquet"
        events.to_parquet(source, index=False)
    kw = dict(model=str(model_dir), events=source, entities=data["entities"], as_of=AS_OF, chunk_disputes=CHUNK)
    for engine in ("local", "spark"):
        with pytest.warns(DataWarning) as caught:
            score_batch(out=tmp_path / engine, engine=engine, **kw)
        said = " ".join(str(w.message) for w in caught)
        assert "9 id(s) differ from another only by spaces around them" in said
        assert "ids ['NULL'] are words for a missing value" in said
        assert "ids such as ['3.20102E+17'] are numbers in scientific notation" in said
    _assert_same(tmp_path / "spark", tmp_path / "local")


@pytest.mark.parametrize("variant", ["digits", "gzip", "gb18030", "nulls", "corrupt_gzip", "trailing_comma",
                                     "extra_field", "header_only", "cut_gzip", "blank_ids", "nested"])
def test_csv_exports_are_read_on_spark_as_the_local_engine_reads_them(spark, model_dir, data, tmp_path, variant):
    """Ids of digits with leading zeros and times written as digits (Spark made them integers:
    the night was refused, or its work lists named other case numbers); a gzipped CSV (read
    as parquet); a GB18030 CSV (read as UTF-8: narratives garbled, 61 of 117 scores changed),
    which Spark cannot read, refused in words; MySQL's \\N and (null) for missing values
    (disputes called \\N were scored) and a PostgreSQL offset (+08) among naive times; ids of
    spaces only (Spark's one-column re-read skipped their lines: rows of other disputes went to
    other chunks or were lost, entities of closed disputes were missed); parts in a subfolder
    (Spark read the top folder's only)."""
    events, entities = data["sim"].events.copy(), data["sim"].entities.copy()
    if variant == "digits":
        events["dispute_id"], entities["dispute_id"] = events["dispute_id"].str[1:], entities["dispute_id"].str[1:]
        events["time"] = events["time"].dt.strftime("%Y%m%d%H%M%S")
    if variant == "nulls":
        events["time"] = events["time"].astype(str).astype(object)
        events.loc[events.index[:3], "dispute_id"] = "\\N"
        events.loc[events.index[3:5], "narrative"] = "(null)"
        events.loc[events.index[5:7], "kind"] = "\\N"
        events.loc[events.index[7], "time"] = events.loc[events.index[7], "time"] + "+08"
    if variant == "blank_ids":
        events.loc[events.index[[10, 20]], "dispute_id"], events.loc[events.index[30], "dispute_id"] = "   ", ""
    path = tmp_path / ("events.csv.gz" if "gzip" in variant else "events.csv")
    events.to_csv(path, index=False, encoding="gb18030" if variant == "gb18030" else "utf-8")
    entities_path = tmp_path / "entities.parquet"
    entities.to_parquet(entities_path, index=False)
    if variant == "blank_ids":  # and an entities row of a blank id, in a CSV
        entities_path = tmp_path / "entities.csv"
        pd.concat([entities.iloc[[0]].assign(dispute_id="   "), entities]).to_csv(entities_path, index=False)
    if variant == "nested":  # a folder of parts, one of them in a subfolder
        path = tmp_path / "events"
        (path / "2024").mkdir(parents=True)
        events.iloc[: len(events) // 2].to_csv(path / "part-0.csv", index=False)
        events.iloc[len(events) // 2:].to_csv(path / "2024" / "part[1].csv", index=False)  # [1]: no pattern
    kw = dict(model=str(model_dir), events=path, entities=entities_path, as_of=AS_OF, chunk_disputes=CHUNK)
    if variant in ("trailing_comma", "extra_field"):  # every line ends with a comma; or 3 rows' values shift
        lines = path.read_text().splitlines()
        lines[1:] = [line + "," for line in lines[1:]] if variant == "trailing_comma" else [
            line + (",oops" if k in (5, 50, 500) else "") for k, line in enumerate(lines[1:])]
        path.write_text("\n".join(lines) + "\n")
    if variant == "header_only":  # an empty export: Spark's check of the fields past the header found no batch
        path.write_text(path.read_text().splitlines()[0] + "\n")
        for engine in ("local", "spark"):
            with pytest.raises(DataError, match="the input has no row"):
                score_batch(out=tmp_path / engine, engine=engine, **kw)
        return
    if variant == "extra_field":  # Spark dropped the extra fields without a word
        for engine in ("local", "spark"):
            with pytest.raises(DataError, match="more fields than the header"):
                score_batch(out=tmp_path / engine, engine=engine, **kw)
        return
    if variant in ("corrupt_gzip", "cut_gzip"):  # damaged at its start (zlib's words), or cut (a Java trace)
        raw = bytearray(path.read_bytes()[:5000])
        raw[10:40] = b"x" * 30
        path.write_bytes(bytes(raw) if variant == "corrupt_gzip" else path.read_bytes()[: path.stat().st_size * 7 // 10])
        for engine in ("local", "spark"):
            with pytest.raises(DataError, match="events.csv.gz") as caught:
                score_batch(out=tmp_path / engine, engine=engine, **kw)
            assert "is not a readable .gz file" in str(caught.value)
        return
    local = score_batch(out=tmp_path / "local", **kw)
    assert local["status"] == "scored" and local["counts"]["disputes_without_entity_row"] == 0
    if variant == "gb18030":
        with pytest.raises(DataError, match="events.csv is not UTF-8 text .* score with --engine local"):
            score_batch(out=tmp_path / "spark", engine="spark", **kw)
        return
    spark_night = score_batch(out=tmp_path / "spark", engine="spark", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    if variant == "blank_ids":  # a blank id is no dispute, on either engine
        read = data["sim"].events["dispute_id"].drop(events.index[[10, 20, 30]]).nunique()
        for night in (local, spark_night):
            assert night["counts"]["disputes_read"] == read and night["counts"]["disputes_rejected"] == 0
    if variant == "nested":
        assert local["counts"]["events_read"] == len(events)
    if variant == "blank_ids":
        assert local["counts"]["events_rejected"] == 3
    if variant == "nulls":
        rejects = pd.read_parquet(tmp_path / "local" / "rejects.parquet")
        assert rejects["reject_reason"].value_counts().to_dict() == {
            "null id in 'dispute_id'": 3, "missing kind in 'kind'": 2,
            "time with a UTC offset among times without (or the reverse) in 'time'": 1}
        assert "\\N" not in set(pd.read_parquet(tmp_path / "local" / "scores.parquet")["dispute_id"])


def test_parquet_parts_of_different_types_are_refused_in_words(spark, model_dir, data, tmp_path):
    """A folder whose first part has a column all missing (Arrow type null): the local engine
    unifies the parts' types; Spark reads every file with one file's types and failed with a
    Java trace reported as a riskmodel bug. It is refused in words, naming the column."""
    events = data["sim"].events
    (tmp_path / "events").mkdir()
    first = events.iloc[::2].assign(narrative=None)
    pq.write_table(pa.Table.from_pandas(first, preserve_index=False), tmp_path / "events" / "part-0.parquet")
    events.iloc[1::2].to_parquet(tmp_path / "events" / "part-1.parquet", index=False)
    kw = dict(model=str(model_dir), events=tmp_path / "events", entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    assert score_batch(out=tmp_path / "local", **kw)["status"] == "scored"
    with pytest.raises(DataError, match=r"column 'narrative' of .* has another type .* --engine local"):
        score_batch(out=tmp_path / "spark", engine="spark", **kw)


def test_frame_ids_of_numbers_and_text_and_semicolon_csv_as_on_the_local_engine(spark, model_dir, data, tmp_path):
    """A DataFrame whose ids hold 2895 and "2895" (two extracts concatenated) is one dispute
    per id on both engines (Spark refused to ship it); a semicolon-separated CSV is refused in
    the local engine's words (Spark said columns were missing)."""
    events = data["sim"].events.copy()
    numbers = events["dispute_id"].str[1:].astype(int)
    mixed = numbers.astype(object).where(events.index % 2 == 0, numbers.astype(str))
    events["dispute_id"] = mixed
    entities = data["sim"].entities.assign(dispute_id=data["sim"].entities["dispute_id"].str[1:].astype(int)
                                           .astype(str))
    kw = dict(model=str(model_dir), events=events, entities=entities, as_of=AS_OF, chunk_disputes=CHUNK)
    local = score_batch(out=tmp_path / "local", **kw)
    score_batch(out=tmp_path / "spark", engine="spark", **kw)
    assert local["counts"]["disputes_read"] == data["sim"].events["dispute_id"].nunique()
    _assert_same(tmp_path / "spark", tmp_path / "local")
    data["sim"].events.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    for engine in ("local", "spark"):
        with pytest.raises(DataError, match="the file is not separated by commas"):
            score_batch(model=str(model_dir), events=tmp_path / "semi.csv", entities=data["entities"], as_of=AS_OF,
                        out=tmp_path / f"semi_{engine}", engine=engine)


def _id_warnings(count) -> list[str]:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        count()
    return sorted(str(w.message) for w in caught if issubclass(w.category, DataWarning))


@pytest.mark.parametrize("flavour", ["parquet", "csv", "parts"])
def test_odd_ids_are_judged_and_named_alike_on_spark(spark, tmp_path, flavour):
    """Both engines count the same twin ids and name the same examples, whatever the rows'
    order. Spark compared keys of its own (full-width forms only, Java's spaces and case),
    missing twins that only NFKC folds (a CJK compatibility ideograph, a ligature, a circled
    digit); it named the twins in whatever order its groups came, and judged the words for a
    missing value and the scientific numbers on five of them together (a sixth scientific
    number hid the words)."""
    from riskmodel.batch._fs import HadoopFS
    from riskmodel.batch._inputs import Source
    from riskmodel.batch.engines._spark import (
        _count_disputes,
        _finish_format,
        _parquet_format,
        _read_input,
    )
    from riskmodel.data import EventSchema

    schema = EventSchema(text_col=None, party_col=None)
    ids = [f"D{k:04d}" for k in range(300)]
    ids += ["\uf9dcD0001", "\u9686D0001", "\ufb01le", "file", "C\u2460", "C1", "D0002 ", "'D0003", "Ｄ0004", "d0005"]  # twins
    ids += [f"3.2010{k}E+17" for k in range(6)] + ["NULL", "None"]  # Excel's numbers, words for missing
    rng = np.random.default_rng(4)
    order = rng.permutation(np.repeat(np.array(ids, dtype=object), 2))
    events = pd.DataFrame({"dispute_id": order, "time": "2024-01-01 08:00:00", "kind": "call_110"})
    if flavour == "parquet":
        path = tmp_path / "events.parquet"
        events.to_parquet(path, index=False)
    elif flavour == "csv":
        path = tmp_path / "events.csv"
        events.to_csv(path, index=False)
    else:
        path = tmp_path / "events"
        path.mkdir()
        for k in range(3):
            events.iloc[k::3].to_parquet(path / f"part-{k}.parquet", index=False)
    local = _id_warnings(lambda: Source(path, schema).count_disputes())
    inp = _read_input(spark, HadoopFS(spark, str(path)), str(path), "events", list(schema.event_columns))
    fmt = _parquet_format(HadoopFS(spark, str(path)), inp) if inp.mode == "parquet" else \
        _finish_format(inp, schema.text_columns)
    remote = _id_warnings(lambda: _count_disputes(inp, fmt, "dispute_id"))
    assert any("7 id(s) differ from another" in w for w in local)
    if flavour != "csv":  # read_csv takes NULL and None for missing ids
        assert any("ids ['NULL', 'None'] are words for a missing value" in w for w in local)
    assert remote == local


def test_categorical_ids_give_the_same_night_on_spark(spark, model_dir, data, tmp_path):
    """A parquet log whose id column is categorical (dictionary-encoded), with a twin id: the
    local engine's not_scored kept the file's categories (every chunk had them all) while
    Spark's chunks had their own, so its ids came out as strings; and the local engine judged
    no odd id of a dictionary column, which Spark (reading it as strings) warned about."""
    events = data["sim"].events.copy()
    first = events["dispute_id"].iloc[0]
    events.loc[events.index[::7][events["dispute_id"].iloc[::7] == first], "dispute_id"] = first + " "
    events.astype({"dispute_id": "category"}).to_parquet(tmp_path / "events.parquet", index=False)
    kw = dict(model=str(model_dir), events=tmp_path / "events.parquet", entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    said = {}
    for engine in ("local", "spark"):
        with pytest.warns(DataWarning) as caught:
            score_batch(out=tmp_path / engine, engine=engine, **kw)
        said[engine] = sorted(str(w.message) for w in caught if "id(s) differ" in str(w.message))
    assert said["local"] == said["spark"] and len(said["local"]) == 1
    _assert_same(tmp_path / "spark", tmp_path / "local")


def _refusal(**kw) -> DataError:
    with pytest.raises(DataError) as refused:
        score_batch(**kw)
    return refused.value


@pytest.mark.parametrize("name", ["events.csv", "events.csv.gz", "parts/p2.csv"])
def test_spark_refuses_a_csv_header_naming_a_column_twice_in_the_local_engines_words(spark, model_dir, data,
                                                                                      tmp_path, name):
    """Spark read a header ``dispute_id,time,...,time`` as ``time5``, ``time6`` and said a
    column 'time' was missing; the local engine read pandas' copy ``time.1`` without a word."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    events = data["events"]
    events.assign(again=events["time"]).rename(columns={"again": "time"}).to_csv(path, index=False)
    given = path
    if name.startswith("parts/"):  # a folder of CSV parts: the part named
        events.iloc[:10].to_csv(path.parent / "p1.csv", index=False)
        given = path.parent
    kw = dict(model=str(model_dir), events=given, entities=data["entities"], as_of=AS_OF)
    local = _refusal(out=tmp_path / "local", **kw)
    remote = _refusal(out=tmp_path / "spark", engine="spark", **kw)
    part = " (its file p2.csv)" if name.startswith("parts/") else ""
    head = ": its header has more than one column named ['time'] ('time' in columns 2 and 6); keep one of each"
    assert str(remote).startswith(f"events={str(given)!r}{part}{head}")
    assert remote.for_cli().startswith(f"--events {given}{part}{head}")
    assert (str(remote), remote.for_cli()) == (str(local), local.for_cli())


@pytest.mark.parametrize("name", ["events.tsv", "folder/b.tsv"])
def test_spark_says_which_files_it_reads_how_of_a_file_neither_csv_nor_parquet(spark, model_dir, data, tmp_path,
                                                                               name):
    """An ``events.tsv`` (alone, or among parquet parts) gave Spark's 'is not a Parquet file.
    Expected magic number at tail' with a Java trace's first line. A local path is refused as
    the local engine refuses it; a URI, which only Spark reads, in Spark's words (its CSV names)."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    data["events"].to_csv(path, sep="\t", index=False)
    given = path
    if name.startswith("folder/"):
        data["events"].iloc[:10].to_parquet(path.parent / "a.parquet", index=False)
        given = path.parent
    kw = dict(model=str(model_dir), entities=data["entities"], as_of=AS_OF)
    local = _refusal(events=given, out=tmp_path / "local", **kw)
    remote = _refusal(events=given, out=tmp_path / "spark", engine="spark", **kw)
    assert (str(remote), remote.for_cli()) == (str(local), local.for_cli())
    assert "is neither CSV nor parquet" in str(remote) and "magic" not in str(remote)
    uri = f"file://{given}"
    remote = _refusal(events=uri, out=tmp_path / "spark", engine="spark", **kw)
    what = f": its file file://{path} is" if name.startswith("folder/") else " is"
    tail = (f"{what} neither CSV nor parquet. A file named *.csv, *.csv.gz or *.csv.bz2 is read as CSV "
            f"(comma-separated), any other as parquet (a folder as its files), and {path.name} is not parquet: it "
            "looks like tab-separated text. Save it as comma-separated CSV named *.csv (or *.csv.gz), or as parquet.")
    assert (str(remote), remote.for_cli()) == (f"events={uri!r}{tail}", f"--events {uri}{tail}")


def test_a_frame_of_integer_categorical_ids_gives_the_local_engines_ids_on_spark(spark, model_dir, data, tmp_path):
    """A pandas frame whose ids are a categorical of integers with a missing id: the chunks
    went to the executors as parquet, which reads such a column back as float64, and every id
    came out as ``1000000000518.0`` (scores, not_scored, rejects) where the local engine wrote
    ``1000000000518``."""
    events = data["events"].copy()
    codes, uniques = pd.factorize(events["dispute_id"])  # a missing id: code -1
    numbers = {u: 10**12 + k for k, u in enumerate(uniques)}
    events["dispute_id"] = pd.Categorical(np.where(codes >= 0, 10**12 + codes, np.nan),
                                          categories=sorted(numbers.values()))
    entities = pd.read_parquet(data["entities"])
    entities["dispute_id"] = entities["dispute_id"].map(numbers).astype("int64")
    kw = dict(model=str(model_dir), events=events, entities=entities, as_of=AS_OF, chunk_disputes=CHUNK)
    score_batch(out=tmp_path / "local", **kw)
    score_batch(out=tmp_path / "spark", engine="spark", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    rejects = pd.read_parquet(tmp_path / "spark" / "rejects.parquet")
    assert rejects["dispute_id"].dropna().str.fullmatch(r"1\d{12}").all() and rejects["dispute_id"].notna().any()
    assert pd.read_parquet(tmp_path / "spark" / "scores.parquet")["dispute_id"].dtype == "int64"
