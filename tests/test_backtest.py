"""backtest: rolling-origin folds without label leakage, baselines, intervals, report, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from riskmodel import (
    ConfigError,
    DataError,
    DataWarning,
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    prepare_events,
)
from riskmodel._simulate import simulate_disputes
from riskmodel.evaluation._backtest import BacktestResult, backtest
from riskmodel.evaluation._metrics import METRIC_NAMES
from riskmodel.evaluation._plots import save_figure

HORIZON = pd.Timedelta("90D")
PERIOD = pd.Timedelta("90D")
CHECKLIST = {"count_threat_90D": 3, "count_fight_90D": 2, "count_mediation_failed_90D": 2, "kw_weapon_30D": 2}
SCORERS = ["model", "base_rate", "logistic_counts", "checklist", "oracle"]


class _Spy(RiskModel):
    """A RiskModel that records what each clone is given: per fit, the latest training
    ``as_of`` and the latest event; per scoring, the earliest scored ``as_of``."""

    log: list = []

    def fit(self, events, cutoffs, *, entities=None):
        times = events.times_ns if hasattr(events, "times_ns") else pd.to_datetime(events["time"]).to_numpy()
        _Spy.log.append(("fit", pd.Timestamp(cutoffs["as_of"].max()), pd.Timestamp(np.max(times))))
        return super().fit(events, cutoffs, entities=entities)

    def score_features(self, X, cutoffs, *, reasons="flagged"):
        _Spy.log.append(("score", pd.Timestamp(cutoffs["as_of"].min()), None))
        return super().score_features(X, cutoffs, reasons=reasons)


def _model(schema) -> RiskModel:
    features = FeatureBuilder(
        schema=schema,
        streaks=(("mediation_failed", "mediation_success"),),
        keyword_windows=("7D", "30D", "365D"),
    )
    return _Spy(schema=schema, features=features, lgbm_params={"num_threads": 1})


@pytest.fixture(scope="module")
def data():
    sim = simulate_disputes(4000, start="2023-01-01", end="2025-12-31", seed=1)
    ev = prepare_events(sim.events, sim.schema)
    cut = make_cutoffs(ev, sim.schema, entities=sim.entities)
    lab = make_labels(ev, cut, sim.schema, horizon="90D")
    return sim, ev, lab


@pytest.fixture(scope="module")
def run(data) -> tuple[BacktestResult, list]:
    """The backtest, and what its model clones were given (see :class:`_Spy`)."""
    sim, ev, lab = data

    def oracle(c):
        return sim.true_probability(c, "90D", n_sims=20, seed=0)["probability"].to_numpy()

    _Spy.log = []
    result = backtest(
        ev, lab, model=_model(sim.schema), entities=sim.entities, n_folds=3,
        checklist=CHECKLIST, oracle=oracle, n_bootstrap=50, seed=0,
    )  # fmt: skip
    return result, list(_Spy.log)


@pytest.fixture(scope="module")
def result(run) -> BacktestResult:
    return run[0]


def test_folds_are_time_ordered(result, data):
    _, ev, lab = data
    folds = result.folds
    assert folds["fold"].tolist() == [1, 2, 3]
    assert (folds["status"] == "ok").all()
    assert folds["train_end"].is_monotonic_increasing
    assert (folds["test_end"] - folds["test_start"] == PERIOD).all()
    # consecutive test periods tile the time line
    assert (folds["test_start"].iloc[1:].to_numpy() == folds["test_end"].iloc[:-1].to_numpy()).all()
    # the last test period ends on the day of the last fully observed labelled as_of
    end = pd.Timestamp(ev.times_ns.max())
    complete = lab[lab["label"].notna() & (lab["as_of"] + HORIZON <= end)]
    last = complete["as_of"].max()
    assert folds["test_start"].iloc[-1] <= last < folds["test_end"].iloc[-1]
    assert folds["test_end"].iloc[-1] - last <= pd.Timedelta(days=1)
    assert folds["n_train"].is_monotonic_increasing


def test_no_label_leakage(run):
    """Judged from what each fold's model was given, not from the backtest's record of its
    dates: every training label (as_of + horizon) and every event seen in training come
    before the first as_of that model scores."""
    result, log = run
    fits = [(as_of, last_event) for kind, as_of, last_event in log if kind == "fit"]
    first_scored = [as_of for kind, as_of, _ in log if kind == "score"]
    assert len(fits) == len(first_scored) == 3
    for (last_as_of, last_event), first_test in zip(fits, first_scored):
        assert last_as_of + HORIZON <= first_test
        assert last_event < first_test
    # the backtest's own record says the same
    folds = result.folds
    assert (folds["train_label_end"] <= folds["train_end"]).all()
    assert (folds["train_last_as_of"] + HORIZON == folds["train_label_end"]).all()
    assert (folds["train_label_end"] <= folds["test_start"]).all()
    # the last fold's model saw no cutoff (hence no label) later than that
    dates = {k: pd.Timestamp(v[1]) for k, v in result.model.split_dates_.items()}
    assert max(dates.values()) + HORIZON <= folds["train_end"].iloc[-1]


def test_metrics_present_with_intervals(result):
    m = result.metrics
    assert list(m.index) == SCORERS
    for metric in METRIC_NAMES:
        for col in (metric, f"{metric}_lower", f"{metric}_upper"):
            assert m[col].notna().all(), col
        if metric == "ece":  # biased upwards in resamples: the interval may miss the value
            assert (m["ece_lower"] <= m["ece_upper"]).all()
            continue
        assert (m[f"{metric}_lower"] <= m[metric] + 1e-12).all(), metric
        assert (m[metric] <= m[f"{metric}_upper"] + 1e-12).all(), metric
    assert (m["n"] == result.folds["n_test"].iloc[-1]).all()
    for scorer in SCORERS[:-1]:  # the oracle is scored on the last fold only
        assert result.folds[f"{scorer}_roc_auc"].notna().all()
    assert result.folds["oracle_roc_auc"].iloc[-1] == pytest.approx(m.loc["oracle", "roc_auc"])


def test_comparisons_against_every_baseline(result):
    comp = result.comparisons
    assert set(comp.index.get_level_values("baseline")) == {"base_rate", "logistic_counts", "checklist", "oracle"}
    assert {"value", "lower", "upper", "share_other_sign"} <= set(comp.columns)
    auc = result.metrics["roc_auc"]
    assert comp.loc[("base_rate", "roc_auc"), "value"] == pytest.approx(auc["model"] - auc["base_rate"])


def test_predictions_are_the_last_fold_test_rows(result):
    pred = result.predictions
    last = result.folds.iloc[-1]
    assert len(pred) == last["n_test"]
    assert pred["as_of"].between(last["test_start"], last["test_end"], inclusive="left").all()
    assert int(pred["label"].sum()) == last["positives"]
    for col in ["dispute_id", "as_of", "label", "probability", "tier", "base_rate", "logistic_counts",
                "checklist", "oracle", "category", "station"]:  # fmt: skip
        assert col in pred.columns, col
    assert not pred.duplicated(["dispute_id", "as_of"]).any()
    assert result.tier_table["n"].sum() == len(pred)
    assert set(result.subgroup["group_col"]) == {"category", "station"}
    assert result.reliability["n"].sum() == len(pred)


def test_model_beats_base_rate(result):
    verdict = result.verdict()
    assert verdict["auc_beats_base_rate"] and verdict["auc_beats_base_rate_paired"]
    assert result.metrics.loc["model", "roc_auc"] > 0.7
    assert all(isinstance(v, bool) for v in verdict.values())
    assert {"auc_beats_all", "brier_beats_all", "tiers_ordered", "all"} <= set(verdict)


def test_figures_render(result, tmp_path):
    figs = result.figures()
    assert set(figs) == {"reliability", "roc_pr", "tier_hit_rates", "shap_summary"}
    for name, fig in figs.items():
        assert isinstance(fig, Figure)
        path = save_figure(fig, tmp_path / f"{name}.png")
        assert path.stat().st_size > 1000


def test_summary_text(result):
    text = result.summary()
    for word in ("Last fold", "model", "logistic_counts", "checklist", "oracle", "red", "Verdict"):
        assert word in text
    assert "censored" in text  # notes say what was dropped


def test_checklist_with_unknown_feature_is_skipped(data):
    sim, ev, lab = data
    res = backtest(
        ev, lab, model=_model(sim.schema), entities=sim.entities, n_folds=1,
        checklist={"count_threat_90D": 1, "no_such_feature": 2}, n_bootstrap=20,
    )  # fmt: skip
    assert "checklist" not in res.metrics.index
    assert "checklist" not in res.predictions.columns
    assert any("no_such_feature" in n for n in res.notes)
    assert list(res.metrics.index) == ["model", "base_rate", "logistic_counts"]


def test_a_last_fold_with_few_positives_says_so(data, result):
    """The figures every report and the gate read came from a last fold of 16 positives (the
    red tier's hit rate from 3) without a word: a note and a DataWarning say so."""
    sim, ev, lab = data
    with pytest.warns(DataWarning, match=r"the last fold, whose figures are reported .* holds \d+ positive\(s\) in "
                                         r"[\d,]+ rows \(\d+ in the red tier\): its figures are noisy below 30"):
        small = backtest(ev, lab, model=_model(sim.schema), entities=sim.entities, n_folds=1, test_period="7D",
                         n_bootstrap=20)
    assert small.metrics.loc["model", "n_positive"] < 30
    assert any(n.startswith("the last fold, whose figures are reported") for n in small.notes)
    assert result.metrics.loc["model", "n_positive"] >= 30
    assert not any(n.startswith("the last fold, whose figures") for n in result.notes)


def test_errors(data):
    sim, ev, lab = data
    model = _model(sim.schema)
    with pytest.raises(ConfigError, match="n_folds"):
        backtest(ev, lab, model=model, n_folds=0)
    with pytest.raises(DataError, match="no label column"):
        backtest(ev, lab.drop(columns="label"), model=model)
    with pytest.raises(DataError, match="group_cols"):
        backtest(ev, lab, model=model, entities=sim.entities, group_cols=["nope"])
    with pytest.raises(DataError, match="no test cutoffs"):
        backtest(ev, lab, model=model, entities=sim.entities, n_folds=30)
