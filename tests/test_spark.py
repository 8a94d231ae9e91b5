"""score_batch(engine="spark"): a real local[2] Spark session gives the local engine's output."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import train_model_dir, with_bad_rows

from riskmodel._errors import ConfigError
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch

pytestmark = pytest.mark.spark

AS_OF = "2024-06-01"
OUTPUTS = ("scores", "worklists", "station_summary", "rejects", "not_scored")
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
    return {"root": root, "events": events, "entities": root / "entities.parquet",
            "inputs": {"parquet": root / "events.parquet", "hive": root / "events_hive",
                       "csv": root / "events.csv", "frame": events, "typed": root / "typed.parquet"}}


def _outputs(out: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(out / f"{name}.parquet") for name in OUTPUTS}


def _assert_same(got: Path, want: Path) -> None:
    left, right = _outputs(got), _outputs(want)
    for name in OUTPUTS:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)
    m_got = json.loads((got / "manifest.json").read_text())
    m_want = json.loads((want / "manifest.json").read_text())
    assert m_got["counts"] == m_want["counts"]
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


def test_spark_resumes_from_done_chunks(spark, model_dir, data, tmp_path, monkeypatch):
    """A run stopped before finalizing restarts from its markers and redoes only the rest."""
    import riskmodel.batch._job as batch

    kw = dict(model=str(model_dir), events=data["inputs"]["parquet"], entities=data["entities"], as_of=AS_OF,
              chunk_disputes=CHUNK)
    score_batch(out=tmp_path / "local", **kw)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(batch, "_finalize", crash)
        with pytest.raises(KeyboardInterrupt):
            score_batch(out=tmp_path / "spark", engine="spark", **kw)
    work = tmp_path / ".tmp-spark-20240601T000000"
    assert len(list((work / "scores").glob("chunk-*.done"))) == 3
    # chunk 1 is lost entirely, chunk 2 only its scores: both are redone, chunk 0 is not
    for f in (work / "prepared").glob("*-00001.*"):
        f.unlink()
    for f in (work / "scores").glob("*-0000[12].*"):
        f.unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (work / "scores").glob("*-00000.*")}
    after = {}
    finalize = batch._finalize

    def watch(*args, **kwargs):
        after.update({p.name: p.stat().st_mtime_ns for p in (work / "scores").glob("*-00000.*")})
        return finalize(*args, **kwargs)

    monkeypatch.setattr(batch, "_finalize", watch)
    m = score_batch(out=tmp_path / "spark", engine="spark", **kw)
    assert m["resumed"]
    assert after == before  # chunk 0 was not scored again
    assert not work.exists()
    _assert_same(tmp_path / "spark", tmp_path / "local")


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
