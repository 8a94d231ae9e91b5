"""score_batch(engine="spark") on ``local-cluster[2,1,1024]``: two executor JVMs, each with
its own Python workers, so a path, a file or a global that exists only on the driver fails
here. Dirty inputs by ``file://`` URI (a hive-partitioned parquet dataset, a CSV file), a
catalog table, a Spark DataFrame, and a driver killed with SIGKILL and started again: each
output equals the local engine's.

The first test kills a driver running in a subprocess before this module starts its own
session (one Spark session at a time on the machine); keep it first.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import dirty_events, train_model_dir

from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch

pytestmark = pytest.mark.spark

MASTER = "local-cluster[2,1,1024]"
AS_OF = "2024-06-01"
OUTPUTS = ("scores", "worklists", "station_summary", "rejects", "not_scored", "drift")
CHUNK = 160  # 301 disputes: two chunks


def _needs_spark():
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (no java on PATH, no JAVA_HOME)")
    pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_model_dir(tmp_path_factory.mktemp("model"), 1500, start="2022-01-01", end="2024-12-31", seed=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Dirty events with their entities: a hive-partitioned parquet dataset with nanosecond
    times (Spark reads them as longs), and a CSV file with string times."""
    sim = simulate_disputes(300, start="2022-01-01", end="2024-12-31", seed=7)
    root = tmp_path_factory.mktemp("data")
    table, entities = dirty_events(sim.events, sim.entities, times="ns")
    shard = pa.array([f"s{k % 3}" for k in range(table.num_rows)])
    pq.write_to_dataset(table.append_column("shard", shard), root / "events_hive", partition_cols=["shard"])
    entities.to_parquet(root / "entities.parquet", index=False)
    table, entities = dirty_events(sim.events, sim.entities, times="str", seed=1)
    table.to_pandas().to_csv(root / "events.csv", index=False)
    entities.to_csv(root / "entities.csv", index=False)
    return {"root": root, "sim": sim}


@pytest.fixture(scope="module")
def cluster():
    """One local-cluster session for the module, started by the engine's own session helper
    (which passes the driver's PYTHONPATH, this checkout, to the executors)."""
    _needs_spark()
    from riskmodel.batch.engines._spark import _session

    with _session(MASTER) as session:
        yield session


def _assert_same(got: Path, want: Path) -> None:
    for name in OUTPUTS:
        pd.testing.assert_frame_equal(pd.read_parquet(got / f"{name}.parquet"),
                                      pd.read_parquet(want / f"{name}.parquet"), obj=name)
    m_got = json.loads((got / "manifest.json").read_text())
    m_want = json.loads((want / "manifest.json").read_text())
    assert m_got["engine"] == "spark" and m_want["engine"] == "local"
    for key in ("counts", "monitoring", "files", "tiers", "area"):
        assert m_got[key] == m_want[key], key
    assert m_got["parameters"]["n_chunks"] == m_want["parameters"]["n_chunks"]
    assert m_got["counts"]["reconciles"]
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in want.iterdir())


_KILLED = textwrap.dedent(
    """
    import sys
    from riskmodel.batch._job import score_batch
    score_batch(model=sys.argv[1], events=sys.argv[2], entities=sys.argv[3], as_of=sys.argv[4], out=sys.argv[5],
                chunk_disputes=int(sys.argv[6]), engine="spark", master=sys.argv[7])
    """
)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the driver, then wait for its JVM and executors (its process group) to go."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)  # the group we started, should its JVM outlive the driver


def test_driver_killed_then_resumed(request, model_dir, data, tmp_path):
    """``kill -9`` of the driver once some chunks are committed; the next run resumes from
    them, scores only the rest, and its output equals an uninterrupted local run's."""
    _needs_spark()
    from riskmodel.batch.engines._spark import SparkRun

    events, entities = (data["root"] / "events_hive").as_uri(), (data["root"] / "entities.parquet").as_uri()
    out = tmp_path / "spark"
    work = tmp_path / ".tmp-spark-20240601T000000"
    chunk = 80  # four chunks: the driver dies with some of them still to score
    with open(tmp_path / "killed.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED, str(model_dir), events, entities, AS_OF, out.as_uri(), str(chunk), MASTER],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 300
            while not list(work.glob("scores/chunk=*/_SUCCESS")):
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "no chunk scored in 300 s"
                time.sleep(0.1)
        finally:
            _kill_group(proc)
    scored = sorted(int(p.parent.name.split("=")[1]) for p in work.glob("scores/chunk=*/_SUCCESS"))
    assert 0 < len(scored) < 4, scored
    assert not out.exists()

    request.getfixturevalue("cluster")  # this process's session, now that the killed one is gone
    calls: list = []
    original = SparkRun._score

    def spy(self, *args):
        calls.append(args[-1])
        return original(self, *args)

    kw = dict(model=str(model_dir), entities=entities, as_of=AS_OF, chunk_disputes=chunk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SparkRun, "_score", spy)
        m = score_batch(out=out.as_uri(), events=events, engine="spark", **kw)
    assert m["resumed"]
    assert sorted(calls) == sorted(set(range(m["parameters"]["n_chunks"])) - set(scored))
    assert not work.exists()
    kw["entities"] = data["root"] / "entities.parquet"
    score_batch(out=tmp_path / "local", events=data["root"] / "events_hive", **kw)
    _assert_same(out, tmp_path / "local")


@pytest.mark.parametrize("flavour", ["parquet", "csv"])
def test_dirty_files_by_uri_equal_local(cluster, model_dir, data, tmp_path, flavour):
    """Every kind of bad row, in a hive-partitioned parquet dataset (nanosecond times) and a
    CSV file parsed by Spark on the executors (string times), given as file:// URIs."""
    root = data["root"]
    events, entities = {"parquet": (root / "events_hive", root / "entities.parquet"),
                        "csv": (root / "events.csv", root / "entities.csv")}[flavour]
    kw = dict(model=str(model_dir), as_of=AS_OF, chunk_disputes=CHUNK)
    m = score_batch(events=events.as_uri(), entities=entities.as_uri(), out=(tmp_path / "spark").as_uri(),
                    engine="spark", **kw)
    score_batch(events=events, entities=entities, out=tmp_path / "local", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    assert m["parameters"]["n_chunks"] == 2
    assert m["counts"]["disputes_rejected"] == 1  # DEAD-1
    reasons = set(pd.read_parquet(tmp_path / "spark" / "rejects.parquet")["reject_reason"].str.split(" ").str[0])
    assert {"null", "missing", "time"} <= reasons
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "spark"]  # no work folder left


def test_catalog_table_equals_local(cluster, model_dir, data, tmp_path):
    """Events and entities as tables in Spark's catalog (a timestamp column with nulls and
    absurd dates, string ids with nulls): the output equals the local engine's on the same
    rows (the tables' toPandas())."""
    table, entities = dirty_events(data["sim"].events, data["sim"].entities, times="ns", seed=2)
    for name, frame in (("events_dirty", table.to_pandas()), ("entities_t", entities)):
        (cluster.createDataFrame(frame).write.option("path", (tmp_path / name).as_uri())  # no warehouse folder
         .saveAsTable(name))
    try:
        kw = dict(model=str(model_dir), as_of=AS_OF, chunk_disputes=CHUNK)
        m = score_batch(events="events_dirty", entities="entities_t", out=tmp_path / "spark", engine="spark", **kw)
        score_batch(events=cluster.table("events_dirty").toPandas(), entities=cluster.table("entities_t").toPandas(),
                    out=tmp_path / "local", **kw)
        _assert_same(tmp_path / "spark", tmp_path / "local")
        assert m["input"]["events"] == "table events_dirty"
        assert m["counts"]["disputes_rejected"] == 1
    finally:
        cluster.sql("DROP TABLE IF EXISTS events_dirty")
        cluster.sql("DROP TABLE IF EXISTS entities_t")


def test_spark_dataframe_equals_local(cluster, model_dir, data, tmp_path):
    """A Spark DataFrame whose column types Spark inferred from a dirty CSV: no row of it
    reaches the driver, and the output equals the local engine's on its toPandas()."""
    def inferred(name):
        return (cluster.read.options(header=True, inferSchema=True, multiLine=True, escape='"')
                .csv((data["root"] / name).as_uri()))

    events, entities = inferred("events.csv"), inferred("entities.csv")
    assert dict(entities.dtypes)["opened_at"] == "timestamp"
    kw = dict(model=str(model_dir), as_of=AS_OF, chunk_disputes=CHUNK)
    m = score_batch(events=events, entities=entities, out=tmp_path / "spark", engine="spark", **kw)
    score_batch(events=events.toPandas(), entities=entities.toPandas(), out=tmp_path / "local", **kw)
    _assert_same(tmp_path / "spark", tmp_path / "local")
    assert m["input"]["fingerprint"].startswith("spark:")
