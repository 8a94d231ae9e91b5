"""Drift monitoring: PSI, mergeable bin counts, the nightly drift report, CLI and MLflow.

The simulated worlds here switch off the per-seed station effects (``station_*_sd = 0``):
with them, every seed draws a different city (station volumes alone give a station PSI of
about 0.5), so "a fresh sample with the same parameters" would not be the same population.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import train_model_dir

from riskmodel import (
    ConfigError,
    DataWarning,
)
from riskmodel._simulate import simulate_disputes
from riskmodel.batch._job import score_batch
from riskmodel.cli import EXIT_DRIFT, main
from riskmodel.evaluation._labels import open_disputes
from riskmodel.model._artifact import _thin_reference, load_model_dir
from riskmodel.model._drift import (
    check_thresholds,
    chunk_counts,
    drift_report,
    merge_counts,
    population_stability_index,
    raw_attributes,
)

WORLD = dict(n_stations=6, station_volume_sd=0.0, station_event_rate_sd=0.0, station_escalation_sd=0.0)
PERIOD = dict(start="2022-01-01", end="2024-12-31")
AS_OF = "2024-10-01"
N_SCORE = 8000  # about 1,300 open disputes at AS_OF: sampling PSI stays near 0.02-0.04
SHIFTS = {
    "category mix": (dict(category_share={"building": 0.4, "family": 0.3}), "category"),
    "more threats": (dict(event_rates={"threat": 0.014}), "count_threat_365D"),
    "missing narratives": (dict(missing_narrative_rate=0.3), "text_missing_share"),
}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_model_dir(tmp_path_factory.mktemp("model"), 5000, seed=1, **PERIOD, **WORLD)


@pytest.fixture(scope="module")
def fresh():
    """A new city with the training parameters (another seed)."""
    return simulate_disputes(N_SCORE, seed=11, **PERIOD, **WORLD)


def _score(model_dir, sim, out, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        manifest = score_batch(model=str(model_dir), events=sim.events, entities=sim.entities, as_of=AS_OF,
                               out=out, **kw)
    drift_warnings = [w for w in caught if issubclass(w.category, DataWarning) and "drift" in str(w.message)]
    return manifest, drift_warnings


# ------------------------------------------------------------------------------------------
# the statistic


def test_psi_against_hand_computed_values():
    # (0.4 - 0.5) ln(0.4 / 0.5) + (0.6 - 0.5) ln(0.6 / 0.5)
    assert population_stability_index([50, 50], [40, 60]) == pytest.approx(0.0405465108, abs=1e-9)
    # deciles: two bins halved, two grown by half: 2 * 0.05 ln 2 + 2 * 0.05 ln 1.5
    expected, actual = [10] * 10, [5, 5, 10, 10, 10, 10, 10, 10, 15, 15]
    assert population_stability_index(expected, actual) == pytest.approx(0.1098612289, abs=1e-9)
    # an empty reference bin takes the proportion 1e-4: (0.9 - 1) ln 0.9 + (0.1 - 1e-4) ln(0.1 / 1e-4)
    assert population_stability_index([100, 0], [90, 10]) == pytest.approx(0.7006209, abs=1e-6)
    # counts or proportions, either order of magnitude: same value; symmetric; zero on identity
    assert population_stability_index([0.5, 0.5], [0.4, 0.6]) == pytest.approx(0.0405465108, abs=1e-9)
    assert population_stability_index([40, 60], [50, 50]) == pytest.approx(0.0405465108, abs=1e-9)
    assert population_stability_index([3, 7, 0], [30, 70, 0]) == 0.0
    assert math.isnan(population_stability_index([0, 0], [1, 2]))


def test_small_samples_are_named_in_the_warning():
    from riskmodel.model._drift import drift_message, sample_noise_psi

    assert sample_noise_psi(10, 250, 120) == pytest.approx(10 * (1 / 250 + 1 / 120))
    report = {"status": "act", "thresholds": {"watch": 0.1, "act": 0.25}, "score_psi": 0.3, "features": [],
              "n_reference": 250, "n_current": 120, "sample_noise_psi": sample_noise_psi(10, 250, 120)}
    assert "small samples (reference 250, tonight 120 disputes): chance alone gives a PSI of about 0.12" in \
        drift_message(report)
    report.update(n_reference=50_000, n_current=20_000, sample_noise_psi=sample_noise_psi(10, 50_000, 20_000))
    assert "small samples" not in drift_message(report)


def test_a_small_night_is_judged_beyond_chance():
    """A night of 30 disputes drawn from the reference population shows a PSI above 1 on a
    ten-bin feature by chance (empty bins): that is no drift. A PSI counts only above what
    chance stays under on 999 nights in 1000 at the night's size (a large night: nearly 0),
    so a real shift still shows on a small night."""
    from riskmodel.model._drift import chance_psi, drift_message

    shares = np.r_[np.full(10, 0.095), 0.05]  # ten quantile bins and the missing bin
    ref = np.round(shares * 20_000).astype(int).tolist()
    reference = {"bins": {"n_bins": 10, "features": [{"name": "x", "type": "numeric", "edges": list(range(9))}]},
                 "counts": {"n": 20_000, "features": {"x": ref}, "score": ref}}
    rng = np.random.default_rng(5)
    calm = [rng.multinomial(30, shares).tolist() for _ in range(2)]
    report = drift_report(reference, {"n": 30, "features": {"x": calm[0]}, "score": calm[1]})
    assert report["features"][0]["psi"] > 0.25 and report["score_psi"] > 0.25  # 'act' by the levels alone
    assert report["status"] == "ok" and report["features"][0]["status"] == "ok"
    assert report["features"][0]["chance_psi"] == pytest.approx(chance_psi(ref, 30)) and chance_psi(ref, 30) > 1
    shifted = [0] * 9 + [30, 0]  # every dispute in the top bin
    report = drift_report(reference, {"n": 30, "features": {"x": shifted}, "score": calm[1]})
    assert report["status"] == "act" and report["features"][0]["status"] == "act"
    # large nights keep the levels: chance gives a PSI far under the watch level
    assert chance_psi(ref, 5000) < 0.02 and chance_psi(ref, 5000) == chance_psi(ref, 5000)  # fixed seed
    assert math.isnan(chance_psi(ref, 0)) and math.isnan(chance_psi([0, 0], 10))
    assert "999 nights in 1000" in drift_message(report)


@pytest.mark.parametrize("n_current", [20, 300, 5000])
def test_chance_of_a_categorical_of_many_categories_is_bounded_and_close_to_full_draws(n_current):
    """A categorical of thousands of categories has a bin per category: 4,000 pairs of draws
    of each would take gigabytes (4.5 GB and a minute at 20,000 bins). Fewer pairs are drawn
    and a chi-square fitted; it stays within a few percent of the quantile of the full draws."""
    from riskmodel.model._drift import _CHANCE_CELLS, _psi, chance_psi

    ref = np.random.default_rng(1).integers(1, 100, 600).astype(float)
    rng = np.random.default_rng(7)  # the full computation, as for few bins
    full = np.quantile(_psi(rng.multinomial(int(ref.sum()), ref / ref.sum(), size=4000).astype(float),
                            rng.multinomial(n_current, ref / ref.sum(), size=4000).astype(float)), 0.999)
    assert 600 * 4000 > _CHANCE_CELLS  # this reference takes the bounded path
    assert chance_psi(ref, n_current) == pytest.approx(full, rel=0.05)
    assert chance_psi(ref, n_current) == chance_psi(ref, n_current)  # fixed seed: the same every night


def test_psi_and_thresholds_refuse_bad_input():
    with pytest.raises(ConfigError, match="same bins on both sides, got 2 and 3"):
        population_stability_index([1, 2], [1, 2, 3])
    with pytest.raises(ConfigError, match="non-negative"):
        population_stability_index([1, -2], [1, 2])
    assert check_thresholds(None) == {"watch": 0.1, "act": 0.25}
    assert check_thresholds({"act": 0.5}) == {"watch": 0.1, "act": 0.5}
    with pytest.raises(ConfigError, match="0 < watch <= act"):
        check_thresholds({"watch": 0.3, "act": 0.2})
    with pytest.raises(ConfigError, match="unknown key"):
        check_thresholds({"warn": 0.1})


def test_bins_keep_ties_and_missing_apart():
    from riskmodel.model._drift import build_reference

    x = np.r_[np.zeros(70), np.ones(20), np.full(10, 5.0), np.full(5, np.nan)].astype(np.float32)
    X = pd.DataFrame({"n": x, "c": pd.Categorical(["a"] * 60 + ["b"] * 40 + [None] * 5, categories=["a", "b"])})
    ref = build_reference(X, np.linspace(0, 1, len(X)), ["blue"] * len(X))
    numeric, categorical = ref["bins"]["features"]
    assert numeric["edges"] == [0.0, 1.0]  # point masses are bins of their own
    assert ref["counts"]["features"]["n"] == [70, 20, 10, 5]  # <=0, (0, 1], >1, missing
    assert ref["counts"]["features"]["c"] == [60, 40, 5]
    # tonight: an unseen category lands in the missing bin and is counted as unseen
    tonight = pd.DataFrame({"n": np.float32([0, 0.5, 7, np.nan]),
                            "c": pd.Categorical(["a", None, None, "b"], categories=["a", "b"])})
    raw = {"c": pd.Series(["a", "zzz", None, "b"])}
    ref["bins"]["categories"] = {"c": ["a", "b"]}
    counts = chunk_counts(ref, tonight, [0.1, 0.2, 0.3, 0.9], ["blue", "blue", "yellow", "red"], raw_categories=raw)
    assert counts["features"]["n"] == [1, 1, 1, 1]
    assert counts["features"]["c"] == [1, 1, 2]
    assert counts["unseen_categories"] == {"c": 1}
    assert counts["tiers"] == {"red": 1, "yellow": 1, "blue": 2}


# ------------------------------------------------------------------------------------------
# the reference and the counts


def test_reference_saved_and_loaded_with_the_model(model_dir):
    model = load_model_dir(model_dir)
    ref = model.reference_["monitoring"]
    names = model.feature_names_
    assert [f["name"] for f in ref["bins"]["features"]] == names
    assert ref["counts"]["n"] == len(model.reference_["probability"])
    assert sum(ref["counts"]["tiers"].values()) == ref["counts"]["n"]
    assert all(sum(ref["counts"]["features"][n]) == ref["counts"]["n"] for n in names)
    assert ref["bins"]["informational"] == [n for n in names if n.startswith("ctx_")]
    assert 0.05 < ref["counts"]["missing_text_events"] / ref["counts"]["events"] < 0.15  # simulator: 10%
    # thinning the per-row lists for the artifact keeps the monitoring block whole
    thin = _thin_reference(model.reference_, limit=100)
    assert len(thin["probability"]) == len(thin["label"]) == 100
    assert thin["monitoring"] == ref


def test_chunk_counts_merge_to_the_counts_of_the_whole(model_dir, fresh):
    model = load_model_dir(model_dir)
    ref = model.reference_["monitoring"]
    cut = open_disputes(fresh.events, AS_OF, fresh.schema, entities=fresh.entities)
    X = model.transform_features(fresh.events, cut, entities=fresh.entities)
    scores = model.score_features(X, cut, reasons="none")
    raw = raw_attributes(fresh.entities, "dispute_id", cut["dispute_id"], ["category", "station"])
    whole = chunk_counts(ref, X, scores["probability"], scores["tier"], raw_categories=raw)
    part = np.random.default_rng(0).integers(0, 3, len(X))
    chunks = []
    for i in range(3):
        rows = np.flatnonzero(part == i)
        chunks.append(chunk_counts(ref, X.iloc[rows], scores["probability"].iloc[rows], scores["tier"].iloc[rows],
                                   raw_categories={c: v.iloc[rows] for c, v in raw.items()}))
    merged = merge_counts(chunks[0], None, chunks[1], chunks[2])
    assert merged["n"] == whole["n"] == len(X)
    assert merged["features"] == whole["features"]
    assert merged["score"] == whole["score"] and merged["tiers"] == whole["tiers"]
    assert merged["unseen_categories"] == whole["unseen_categories"]
    for key in ("events", "other_kind_events", "missing_text_events"):
        assert merged[key] == pytest.approx(whole[key])
    json.dumps(merged)  # travels in the chunk markers


# ------------------------------------------------------------------------------------------
# the nightly report


def test_same_parameters_are_not_flagged(model_dir, fresh, tmp_path):
    out = tmp_path / "out"
    manifest, drift_warnings = _score(model_dir, fresh, out)
    m = manifest["monitoring"]
    assert m["status"] == "ok", m["features"][:5]
    assert not drift_warnings
    alerting = [f for f in m["features"] if not f["informational"]]
    # measured score PSI: 0.045 for one model, 0.067 for the seed-bagged default (5,000 disputes:
    # under 1,000 positives); both well under the watch level 0.1
    assert m["score_psi"] < 0.08 and alerting[0]["psi"] < 0.06
    # the manifest block the nightly report reads
    assert set(m) >= {"status", "thresholds", "score_psi", "features", "tier_shares", "unseen_rate",
                      "missing_text_rate"}
    assert m["thresholds"] == {"watch": 0.1, "act": 0.25}
    psis = [f["psi"] for f in m["features"]]
    assert psis == sorted(psis, reverse=True)
    assert {f["name"] for f in m["features"]} == set(load_model_dir(model_dir).feature_names_)
    assert set(m["tier_shares"]["reference"]) == set(m["tier_shares"]["current"]) == {"red", "yellow", "blue"}
    assert sum(m["tier_shares"]["current"].values()) == pytest.approx(1.0)
    assert m["unseen_rate"] == {"categories": {"category": 0.0, "station": 0.0}, "kinds": 0.0}
    assert m["missing_text_rate"]["current"] == pytest.approx(m["missing_text_rate"]["reference"], abs=0.03)
    assert m["n_current"] == manifest["counts"]["disputes_scored"]
    drift = pd.read_parquet(out / "drift.parquet")
    assert drift["feature"].tolist() == [f["name"] for f in m["features"]]
    assert drift["psi"].tolist() == pytest.approx(psis)
    assert "drift.parquet" in manifest["files"]
    assert json.loads((out / "manifest.json").read_text())["monitoring"]["status"] == "ok"


@pytest.mark.parametrize("shift", list(SHIFTS))
def test_shifted_parameters_are_flagged(model_dir, tmp_path, shift):
    params, feature = SHIFTS[shift]
    sim = simulate_disputes(N_SCORE, seed=11, **PERIOD, **WORLD, **params)
    manifest, drift_warnings = _score(model_dir, sim, tmp_path / "out")
    m = manifest["monitoring"]
    assert m["status"] in ("watch", "act")
    by_name = {f["name"]: f for f in m["features"]}
    assert by_name[feature]["psi"] >= 0.1 and by_name[feature]["status"] != "ok"
    assert drift_warnings and feature in str(drift_warnings[0].message)
    if shift == "missing narratives":
        assert m["missing_text_rate"]["current"] > 0.25 > 0.15 > m["missing_text_rate"]["reference"]
    if shift == "more threats":
        assert m["tier_shares"]["current"]["red"] > 1.5 * m["tier_shares"]["reference"]["red"]


def test_unseen_categories_and_kinds_are_measured(model_dir, fresh, tmp_path):
    ents = fresh.entities.copy()
    new = np.arange(len(ents)) % 5 == 0
    ents["category"] = ents["category"].astype(str).where(~new, "gambling")
    events = fresh.events.copy()
    events["kind"] = events["kind"].where(events["kind"] != "quarrel", "noise_complaint")
    sim = type("Sim", (), {"events": events, "entities": ents})
    manifest, _ = _score(model_dir, sim, tmp_path / "out")
    m = manifest["monitoring"]
    assert m["unseen_rate"]["categories"]["category"] == pytest.approx(0.2, abs=0.04)
    assert m["unseen_rate"]["categories"]["station"] == 0.0
    assert m["unseen_rate"]["kinds"] > 0.1  # quarrels are a frequent kind
    assert m["reference_unseen_rate"]["kinds"] == 0.0
    assert m["status"] != "ok"


def test_thresholds_are_configurable(model_dir, fresh, tmp_path):
    manifest, _ = _score(model_dir, fresh, tmp_path / "out", drift_thresholds={"watch": 0.005, "act": 0.01})
    assert manifest["monitoring"]["status"] == "act"
    assert manifest["monitoring"]["thresholds"] == {"watch": 0.005, "act": 0.01}
    with pytest.raises(ConfigError, match="0 < watch <= act"):
        score_batch(model=str(model_dir), events=fresh.events, entities=fresh.entities, as_of=AS_OF,
                    out=tmp_path / "bad", drift_thresholds={"watch": 0.5, "act": 0.1})
    assert not (tmp_path / "bad").exists()


def test_model_without_reference_says_so(model_dir, fresh, tmp_path):
    old = tmp_path / "old-model"
    shutil.copytree(model_dir, old)
    spec = json.loads((old / "riskmodel.json").read_text(encoding="utf-8"))
    del spec["reference"]["monitoring"]
    (old / "riskmodel.json").write_text(json.dumps(spec), encoding="utf-8")
    manifest, drift_warnings = _score(old, fresh, tmp_path / "out")
    m = manifest["monitoring"]
    assert m["status"] == "no_reference" and m["features"] == [] and m["score_psi"] is None
    assert sum(m["tier_shares"]["current"].values()) == pytest.approx(1.0)
    assert not drift_warnings
    assert len(pd.read_parquet(tmp_path / "out" / "drift.parquet")) == 0
    assert drift_report(None, None)["status"] == "no_reference"


# ------------------------------------------------------------------------------------------
# shells: CLI exit code, MLflow


def test_cli_fail_on_drift_exit_code(model_dir, tmp_path, capsys):
    params, _ = SHIFTS["missing narratives"]
    sim = simulate_disputes(N_SCORE, seed=12, **PERIOD, **WORLD, **params)
    sim.events.to_parquet(tmp_path / "events.parquet", index=False)
    sim.entities.to_parquet(tmp_path / "entities.parquet", index=False)
    base = ["score", "--model", str(model_dir), "--events", str(tmp_path / "events.parquet"),
            "--entities", str(tmp_path / "entities.parquet"), "--as-of", AS_OF]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert main(base + ["--out", str(tmp_path / "a"), "--fail-on-drift", "watch"]) == EXIT_DRIFT == 3
        assert (tmp_path / "a" / "manifest.json").exists() and (tmp_path / "a" / "scores.parquet").exists()
        assert "fail-on-drift" in capsys.readouterr().err
        assert main(base + ["--out", str(tmp_path / "b")]) == 0  # no alerting asked for
        assert main(base + ["--out", str(tmp_path / "c"), "--fail-on-drift", "act",
                            "--drift-watch", "5", "--drift-act", "10"]) == 0
    assert json.loads((tmp_path / "c" / "manifest.json").read_text())["monitoring"]["status"] == "ok"
    assert main(base + ["--out", str(tmp_path / "d"), "--drift-watch", "0.3", "--drift-act", "0.2"]) == 2


def test_drift_logged_as_mlflow_metrics(model_dir, fresh, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    manifest, _ = _score(model_dir, fresh, tmp_path / "out", monitor_mlflow=True)
    m = manifest["monitoring"]
    run_id = m["mlflow_run_id"]
    assert run_id and "mlflow_error" not in m
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == "dispute-risk-monitoring"
    assert pd.Timestamp(AS_OF).isoformat() in run.info.run_name
    assert run.data.tags["riskmodel.model_version"] == str(manifest["model"]["version"])
    assert run.data.tags["riskmodel.drift_status"] == "ok"
    metrics = run.data.metrics
    assert metrics["score_psi"] == pytest.approx(m["score_psi"])
    assert metrics["psi.category"] == pytest.approx(next(f["psi"] for f in m["features"] if f["name"] == "category"))
    assert metrics["tier_share.current.red"] == pytest.approx(m["tier_shares"]["current"]["red"])
    assert metrics["missing_text_rate.current"] == pytest.approx(m["missing_text_rate"]["current"])
    assert metrics["status_level"] == 0.0
    assert run.info.status == "FINISHED"
