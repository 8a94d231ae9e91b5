"""MLflow lifecycle against a real sqlite store: train -> register -> promote -> load -> predict."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import sqlite_tracking_store

import riskmodel as rm
from riskmodel.lifecycle._config import config_from_dict, load_config
from riskmodel.model._artifact import FEATURE_SPEC_VERSION, load_model_dir, save_model_dir

REPO = Path(__file__).resolve().parents[1]


def small_config(seed=3, n=4000, **model):
    cfg = load_config(REPO / "experiments" / "baseline.toml")
    cfg.data.n_disputes = n
    cfg.data.seed = seed
    cfg.data.start = "2022-01-01"
    cfg.data.end = "2024-12-31"
    cfg.backtest.n_bootstrap = 50
    cfg.backtest.n_folds = 2
    cfg.model.n_estimators = model.get("n_estimators", 150)
    cfg.model.lgbm_params = dict(cfg.model.lgbm_params, **model.get("lgbm_params", {}))
    return cfg


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with sqlite_tracking_store(tmp_path_factory.mktemp("mlflow")) as uri:
        yield uri


@pytest.fixture(scope="module")
def first(store):
    return rm.train(small_config())


def test_train_registers_challenger_with_card_and_lineage(store, first):
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    mv = client.get_model_version_by_alias("dispute-risk", "challenger")
    assert str(mv.version) == first.version
    run = client.get_run(first.run_id)
    assert run.data.tags["data.source"] == "simulate"
    assert int(run.data.tags["data.events"]) > 1000
    assert "model_roc_auc" in run.data.metrics and "model_roc_auc_lower" in run.data.metrics
    assert "base_rate_brier" in run.data.metrics
    assert run.data.params["data.seed"] == "3"
    artifacts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model_card.md", "experiment.toml", "plots", "tier_table.csv", "subgroup_report.csv"} <= artifacts
    card = Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="model_card.md")).read_text()
    assert "Intended use" in card and "Known limitations" in card and "base_rate" in card


def test_first_promotion_is_gated_against_baselines_then_load_and_predict(store, first):
    record = rm.promote("dispute-risk")
    assert record["decision"] == "passed", record
    assert "auc_beats_base_rate" in record["checks"]
    predictor = rm.load("models:/dispute-risk@champion")
    assert predictor.model_version == first.version
    sim = rm.simulate_disputes(300, start="2024-01-01", end="2024-12-31", seed=11)
    out = predictor.predict(sim.events, as_of="2024-10-01", entities=sim.entities)
    assert {"probability", "tier", "reasons", "model_name", "model_version"} <= set(out.columns)
    assert out["probability"].between(0, 1).all()
    assert (out["model_version"] == first.version).all()
    direct = first.model.predict(sim.events, out[["dispute_id", "as_of"]], entities=sim.entities)
    np.testing.assert_allclose(out["probability"].to_numpy(), direct["probability"].to_numpy())


def test_gate_refuses_a_worse_model_then_force_and_rollback(store, first):
    rm.promote("dispute-risk")  # make sure the first model is champion
    worse = small_config(n_estimators=3, lgbm_params={"learning_rate": 0.01, "num_leaves": 2})
    worse.backtest.n_folds = 2
    result = rm.train(worse)
    assert result.champion_comparison is not None
    record = rm.promote("dispute-risk")
    assert record["decision"] == "refused", record
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    assert str(client.get_model_version_by_alias("dispute-risk", "champion").version) == first.version
    tag = json.loads(client.get_model_version("dispute-risk", result.version).tags["riskmodel.gate"])
    assert tag["decision"] == "refused"
    with pytest.raises(rm.ConfigError, match="reason"):
        rm.promote("dispute-risk", force=True)
    forced = rm.promote("dispute-risk", force=True, reason="test: operator override")
    assert forced["decision"] == "forced"
    assert str(client.get_model_version_by_alias("dispute-risk", "champion").version) == result.version
    back = rm.rollback("dispute-risk")
    assert back["to"] == first.version
    assert str(client.get_model_version_by_alias("dispute-risk", "champion").version) == first.version


def test_artifact_is_pickle_free_and_loads_with_pickle_disabled(store, first, tmp_path):
    path = Path(mlflow.artifacts.download_artifacts(f"models:/dispute-risk/{first.version}", dst_path=str(tmp_path)))
    files = [p for p in path.rglob("*") if p.is_file()]
    assert files
    for f in files:
        assert f.suffix not in {".pkl", ".pickle", ".joblib", ".cloudpickle"}, f
        head = f.read_bytes()[:2]
        assert head not in (b"\x80\x04", b"\x80\x05", b"\x80\x03"), f"{f} looks like a pickle"
    code = (
        "import os, mlflow, pandas as pd; "
        "import riskmodel as rm; "
        f"m = mlflow.pyfunc.load_model({str(path)!r}); "
        "sim = rm.simulate_disputes(200, start='2024-01-01', end='2024-12-31', seed=5); "
        "ents = sim.entities.astype({'category': str, 'station': str}); "
        "ev = sim.events.merge(ents[['dispute_id','category','station','opened_at']], on='dispute_id'); "
        "out = m.predict(ev, params={'as_of': '2024-11-01T00:00:00'}); "
        "print(len(out), sorted(out['tier'].astype(str).unique()))"
    )
    env = dict(os.environ, MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[0]) > 0


def test_incompatible_feature_spec_version_fails_clearly(first, tmp_path):
    folder = save_model_dir(first.model, tmp_path / "m")
    spec = json.loads((folder / "riskmodel.json").read_text())
    spec["feature_spec_version"] = FEATURE_SPEC_VERSION + 1
    (folder / "riskmodel.json").write_text(json.dumps(spec))
    with pytest.raises(rm.ModelError, match="feature-spec version"):
        load_model_dir(folder)
    with pytest.raises(rm.ModelError, match="not a riskmodel artifact"):
        load_model_dir(tmp_path)


def test_saved_model_round_trip_gives_identical_scores(first, tmp_path):
    folder = save_model_dir(first.model, tmp_path / "m")
    again = load_model_dir(folder)
    sim = rm.simulate_disputes(300, start="2024-01-01", end="2024-12-31", seed=12)
    cut = pd.DataFrame({"dispute_id": sim.entities["dispute_id"], "as_of": pd.Timestamp("2024-09-01")})
    a = first.model.predict(sim.events, cut, entities=sim.entities, reasons="all")
    b = again.predict(sim.events, cut, entities=sim.entities, reasons="all")
    pd.testing.assert_frame_equal(a, b)


def test_missing_model_gives_clear_error(store):
    with pytest.raises(rm.ModelError, match="not found"):
        rm.load("models:/no-such-model@champion")


def test_two_concurrent_train_processes_both_succeed(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg_text = (REPO / "experiments" / "baseline.toml").read_text()
    cfg_text = cfg_text.replace("n_disputes = 20000", "n_disputes = 2500").replace("n_folds = 3", "n_folds = 1")
    cfg_text = cfg_text.replace('start = "2022-01-01"', 'start = "2022-06-01"').replace("n_bootstrap = 200", "n_bootstrap = 20")
    cfg = tmp_path / "exp.toml"
    cfg.write_text(cfg_text)
    env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
    procs = [
        subprocess.Popen([sys.executable, "-m", "riskmodel.cli", "train", "--config", str(cfg)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    # registry_uri too: a client otherwise reads the registry another test set process-wide
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert sorted(int(v.version) for v in client.search_model_versions("name='dispute-risk'")) == [1, 2]


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(rm.ConfigError, match="unknown section"):
        config_from_dict({"nonsense": {}})
    with pytest.raises(rm.ConfigError, match=r"\[data\] has unknown key"):
        config_from_dict({"data": {"n_dispute": 5}})
    with pytest.raises(rm.ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    own = load_config(REPO / "experiments" / "own_data.toml")
    assert own.schema.entity_col == "case_no" and own.data.source == "files"


def test_row_numbers_are_file_lines(tmp_path):
    """Header = line 1; blank lines and line breaks inside quoted fields are counted."""
    from riskmodel.lifecycle import read_table, row_numbers

    path = tmp_path / "events.csv"
    path.write_text('case,note\nA,fine\n\n   \n,\nB,"two\nlines"\nC,x\n', encoding="utf-8")
    frame = read_table(path, text_columns=["case"])
    assert frame["case"].tolist()[0] == "A" and len(frame) == 4
    numbers, word = row_numbers(path, len(frame))
    assert word == "line" and numbers.tolist() == [2, 5, 6, 8]
    assert row_numbers(tmp_path / "x.parquet", 3)[0].tolist() == [1, 2, 3]


def test_borrowed_tracking_restores_mlflow_settings_exactly(tmp_path, monkeypatch):
    from mlflow.tracking import _model_registry, _tracking_service

    from riskmodel.lifecycle._store import borrowed_tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///users-own.db")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    before = (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri)
    with borrowed_tracking(f"sqlite:///{tmp_path / 'run.db'}"):
        assert mlflow.get_tracking_uri().endswith("run.db")
        assert os.environ["MLFLOW_TRACKING_URI"].endswith("run.db")
    assert (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri) == before
    assert os.environ["MLFLOW_TRACKING_URI"] == "sqlite:///users-own.db"
    assert "MLFLOW_REGISTRY_URI" not in os.environ
