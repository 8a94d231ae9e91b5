"""Tests for riskmodel.evaluation._metrics: values against scikit-learn and hand-computed examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
)

from riskmodel._errors import ConfigError, DataError
from riskmodel.evaluation._metrics import (
    METRIC_NAMES,
    bootstrap_metrics,
    compare_bootstrap,
    expected_calibration_error,
    reliability_curve,
    score_metrics,
    subgroup_report,
    tier_table,
)
from riskmodel.evaluation._metrics import (
    TIERS as TIER_ORDER,
)


def _simulate(n: int, seed: int = 0, *, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    prob = 1.0 / (1.0 + np.exp(-(1.5 * x - 2.0)))
    y = (rng.random(n) < prob).astype(int)
    if decimals is not None:  # many ties
        prob = np.round(prob, decimals)
    return y, prob


@pytest.fixture(params=["numpy", "list", "series", "bool_labels"])
def flavour(request):
    """The same data as numpy arrays, lists, pandas Series (odd index) or boolean labels."""

    def convert(y, prob):
        if request.param == "list":
            return y.tolist(), prob.tolist()
        if request.param == "series":
            index = np.arange(len(y)) * 3 + 7
            return pd.Series(y, index=index), pd.Series(prob, index=index[::-1])
        if request.param == "bool_labels":
            return y.astype(bool), prob
        return y, prob

    return convert


# ------------------------------------------------------------------------------------------
# point metrics
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("decimals", [None, 2])
def test_score_metrics_match_sklearn(flavour, decimals):
    y, prob = _simulate(3000, decimals=decimals)
    result = score_metrics(*flavour(y, prob))
    assert result["roc_auc"] == pytest.approx(roc_auc_score(y, prob), abs=1e-12)
    assert result["average_precision"] == pytest.approx(average_precision_score(y, prob), abs=1e-12)
    assert result["brier"] == pytest.approx(brier_score_loss(y, prob), abs=1e-12)
    assert result["log_loss"] == pytest.approx(log_loss(y, prob), abs=1e-12)
    assert result["n"] == 3000
    assert result["n_positive"] == y.sum()
    assert result["base_rate"] == pytest.approx(y.mean())
    assert result["ece"] == pytest.approx(expected_calibration_error(y, prob))


def test_log_loss_clips_extreme_probabilities_like_sklearn():
    y = np.array([0, 1, 1, 0])
    prob = np.array([0.0, 1.0, 0.0, 0.3])
    assert score_metrics(y, prob)["log_loss"] == pytest.approx(log_loss(y, prob))


def test_one_class_gives_nan_auc_and_ap_without_crash():
    result = score_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(result["roc_auc"])
    assert np.isnan(result["average_precision"])
    assert result["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)
    only_positive = score_metrics([1, 1], [0.4, 0.9])
    assert np.isnan(only_positive["roc_auc"])


def test_ece_hand_computed():
    y = [0, 0, 1, 1]
    prob = [0.1, 0.2, 0.3, 0.4]
    # Quantile bins of two: {0.1, 0.2} (rate 0, mean 0.15) and {0.3, 0.4} (rate 1, mean 0.35).
    assert expected_calibration_error(y, prob, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.65)
    # Uniform bins of two: everything in [0, 0.5]: rate 0.5, mean 0.25.
    assert expected_calibration_error(y, prob, n_bins=2, strategy="uniform") == pytest.approx(0.25)
    # A perfectly calibrated single bin.
    assert expected_calibration_error([0, 1], [0.5, 0.5], n_bins=1) == pytest.approx(0.0)


def test_reliability_curve_uniform_matches_sklearn():
    y, prob = _simulate(5000, seed=3)
    curve = reliability_curve(y, prob, n_bins=8, strategy="uniform")
    observed, predicted = calibration_curve(y, prob, n_bins=8, strategy="uniform")
    np.testing.assert_allclose(curve["observed_rate"], observed)
    np.testing.assert_allclose(curve["mean_probability"], predicted)
    assert list(curve.columns) == [
        "bin",
        "n",
        "mean_probability",
        "observed_rate",
        "lower",
        "upper",
    ]
    assert curve["n"].sum() == 5000
    assert (curve["lower"] <= curve["observed_rate"]).all()
    assert (curve["observed_rate"] <= curve["upper"]).all()


def test_reliability_curve_quantile_bins_are_equal_sized_and_wilson_is_right():
    y, prob = _simulate(1000, seed=4)
    curve = reliability_curve(y, prob, n_bins=10)
    assert curve["n"].tolist() == [100] * 10
    # Wilson interval for 0 successes out of 10: [0, z^2 / (n + z^2)].
    one = reliability_curve(np.zeros(10, dtype=int), np.full(10, 0.2), n_bins=1)
    z = 1.959963984540054
    assert one["lower"].iloc[0] == pytest.approx(0.0)
    assert one["upper"].iloc[0] == pytest.approx(z**2 / (10 + z**2))


# ------------------------------------------------------------------------------------------
# bootstrap
# ------------------------------------------------------------------------------------------
def test_bootstrap_contains_value_and_narrows_with_more_data():
    small = bootstrap_metrics(*_simulate(500, seed=1), n_bootstrap=200)
    large = bootstrap_metrics(*_simulate(20_000, seed=1), n_bootstrap=200)
    assert list(small.index) == list(METRIC_NAMES)
    assert list(small.columns) == ["value", "lower", "upper"]
    for frame in (small, large):
        assert (frame["lower"] <= frame["upper"]).all()
        # ECE is biased upwards under resampling, so only the unbiased metrics are checked.
        unbiased = frame.loc[["roc_auc", "average_precision", "brier", "log_loss"]]
        assert (unbiased["lower"] <= unbiased["value"]).all()
        assert (unbiased["value"] <= unbiased["upper"]).all()
    width_small = small["upper"] - small["lower"]
    width_large = large["upper"] - large["lower"]
    assert (width_large < width_small).all()


def test_bootstrap_value_matches_score_metrics_and_is_reproducible():
    y, prob = _simulate(2000, seed=2)
    first = bootstrap_metrics(y, prob, n_bootstrap=50, seed=7)
    again = bootstrap_metrics(y, prob, n_bootstrap=50, seed=7)
    pd.testing.assert_frame_equal(first, again)
    point = score_metrics(y, prob)
    for name in METRIC_NAMES:
        assert first.loc[name, "value"] == pytest.approx(point[name])


def test_bootstrap_interval_matches_naive_resampling():
    y, prob = _simulate(400, seed=5, decimals=2)
    n_bootstrap, seed = 100, 11
    fast = bootstrap_metrics(y, prob, n_bootstrap=n_bootstrap, seed=seed)
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_bootstrap):
        rows = rng.integers(0, len(y), size=len(y))
        aucs.append(roc_auc_score(y[rows], prob[rows]))
    assert fast.loc["roc_auc", "lower"] == pytest.approx(np.quantile(aucs, 0.025))
    assert fast.loc["roc_auc", "upper"] == pytest.approx(np.quantile(aucs, 0.975))


def test_cluster_bootstrap_is_wider_for_correlated_rows():
    # 300 disputes, each seen as 10 identical snapshot rows: rows are perfectly correlated.
    y_d, prob_d = _simulate(300, seed=6)
    y, prob = np.repeat(y_d, 10), np.repeat(prob_d, 10)
    groups = np.repeat([f"D{i}" for i in range(300)], 10)
    rows = bootstrap_metrics(y, prob, n_bootstrap=200, seed=0)
    clusters = bootstrap_metrics(y, prob, n_bootstrap=200, seed=0, groups=groups)
    width_rows = rows["upper"] - rows["lower"]
    width_clusters = clusters["upper"] - clusters["lower"]
    for name in ("roc_auc", "average_precision", "brier", "log_loss"):
        assert width_clusters[name] >= width_rows[name]
    assert width_clusters["roc_auc"] > 2 * width_rows["roc_auc"]
    pd.testing.assert_series_equal(rows["value"], clusters["value"])


def test_bootstrap_with_rare_positives_does_not_crash():
    y = np.zeros(50, dtype=int)
    y[0] = 1
    frame = bootstrap_metrics(y, np.linspace(0, 1, 50), n_bootstrap=50)
    assert np.isfinite(frame.loc["roc_auc", "value"])
    assert np.isfinite(frame.loc["brier", "lower"])


def test_compare_detects_better_model_and_not_identical():
    rng = np.random.default_rng(8)
    n = 3000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(2 * signal - 2)))).astype(int)
    good = 1 / (1 + np.exp(-(2 * signal - 2)))
    poor = 1 / (1 + np.exp(-(0.5 * (signal + rng.normal(size=n)) - 1.5)))
    better = compare_bootstrap(y, good, poor, n_bootstrap=200)
    assert list(better.index) == ["roc_auc", "average_precision", "brier", "log_loss"]
    assert list(better.columns) == ["value", "lower", "upper", "share_other_sign"]
    assert better.loc["roc_auc", "lower"] > 0
    assert better.loc["average_precision", "lower"] > 0
    assert better.loc["brier", "upper"] < 0
    assert better.loc["log_loss", "upper"] < 0
    assert (better["share_other_sign"] < 0.025).all()
    expected_auc = roc_auc_score(y, good) - roc_auc_score(y, poor)
    assert better.loc["roc_auc", "value"] == pytest.approx(expected_auc)

    same = compare_bootstrap(y, good, good, n_bootstrap=50, groups=np.arange(n) // 3)
    assert (same["value"] == 0).all()
    assert ((same["lower"] <= 0) & (same["upper"] >= 0)).all()
    assert (same["share_other_sign"] == 1.0).all()


# ------------------------------------------------------------------------------------------
# tier table and subgroups
# ------------------------------------------------------------------------------------------
def test_tier_table_hand_computed_and_keeps_empty_tiers():
    y = [1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    tiers = ["red", "red", "red", "red", "blue", "blue", "blue", "blue", "blue", "blue"]
    table = tier_table(y, tiers)
    assert table["tier"].tolist() == list(TIER_ORDER)
    assert table["n"].tolist() == [4, 0, 6]
    assert table["positives"].tolist() == [2, 0, 1]
    np.testing.assert_allclose(table["share"], [0.4, 0.0, 0.6])
    np.testing.assert_allclose(table["hit_rate"], [0.5, np.nan, 1 / 6])
    np.testing.assert_allclose(table["recall"], [2 / 3, 0.0, 1 / 3])
    np.testing.assert_allclose(table["lift"], [0.5 / 0.3, np.nan, (1 / 6) / 0.3])


def test_tier_table_accepts_categorical_tiers():
    tiers = pd.Categorical(["blue", "yellow"], categories=["blue", "yellow", "red"])
    table = tier_table([0, 1], tiers)
    assert table["n"].tolist() == [0, 1, 1]


@pytest.fixture
def scored_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station": ["A", "A", "A", "A", "B", "B", None],
            "category": pd.Categorical(["土地", "土地", "债务", "债务", "债务", "土地", "债务"]),
            "label": [1, 0, 0, 1, 0, 0, 1],
            "probability": [0.9, 0.6, 0.2, 0.3, 0.5, 0.1, 0.7],
            "tier": ["red", "yellow", "blue", "blue", "yellow", "blue", "red"],
        },
        index=[10, 11, 12, 13, 14, 15, 16],
    )


def test_subgroup_report_hand_checked(scored_frame):
    report = subgroup_report(scored_frame, ["station", "category"])
    assert list(report.columns) == [
        "group_col",
        "group_value",
        "n",
        "share_of_rows",
        "base_rate",
        "mean_probability",
        "flagged_share",
        "hit_rate",
        "false_positive_rate",
        "false_negative_rate",
        "roc_auc",
    ]
    assert report.groupby("group_col")["n"].sum().to_dict() == {"category": 7, "station": 7}
    station_a = report[(report["group_col"] == "station") & (report["group_value"] == "A")].iloc[0]
    # A: labels 1,0,0,1; probs .9,.6,.2,.3; flagged = red/yellow = rows 1, 2.
    assert station_a["n"] == 4
    assert station_a["share_of_rows"] == pytest.approx(4 / 7)
    assert station_a["base_rate"] == pytest.approx(0.5)
    assert station_a["mean_probability"] == pytest.approx(0.5)
    assert station_a["flagged_share"] == pytest.approx(0.5)
    assert station_a["hit_rate"] == pytest.approx(0.5)
    assert station_a["false_positive_rate"] == pytest.approx(0.5)
    assert station_a["false_negative_rate"] == pytest.approx(0.5)
    assert station_a["roc_auc"] == pytest.approx(roc_auc_score([1, 0, 0, 1], [0.9, 0.6, 0.2, 0.3]))
    # B has only negatives: AUC and false negative rate undefined, kept as a row.
    station_b = report[(report["group_col"] == "station") & (report["group_value"] == "B")].iloc[0]
    assert np.isnan(station_b["roc_auc"])
    assert np.isnan(station_b["false_negative_rate"])
    # The missing station is its own group, so nothing is lost.
    station_values = report.loc[report["group_col"] == "station", "group_value"].tolist()
    assert len(station_values) == 3
    debt = report[(report["group_col"] == "category") & (report["group_value"] == "债务")].iloc[0]
    assert debt["n"] == 4
    assert debt["roc_auc"] == pytest.approx(roc_auc_score([0, 1, 0, 1], [0.2, 0.3, 0.5, 0.7]))


def test_subgroup_report_flagged_tiers_red_only(scored_frame):
    report = subgroup_report(scored_frame, "station", flagged_tiers=("red",))
    station_a = report[report["group_value"] == "A"].iloc[0]
    assert station_a["flagged_share"] == pytest.approx(0.25)
    assert station_a["hit_rate"] == pytest.approx(1.0)
    assert station_a["false_negative_rate"] == pytest.approx(0.5)


def test_subgroup_report_auc_matches_sklearn_on_random_groups():
    y, prob = _simulate(2000, seed=9, decimals=2)
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(
        {
            "label": y,
            "probability": prob,
            "tier": np.where(prob > 0.5, "red", np.where(prob > 0.2, "yellow", "blue")),
            "g": rng.integers(0, 5, size=len(y)),
        }
    )
    report = subgroup_report(frame, "g")
    for _, row in report.iterrows():
        part = frame[frame["g"] == row["group_value"]]
        assert row["roc_auc"] == pytest.approx(roc_auc_score(part["label"], part["probability"]))


# ------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("y", "prob", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "length mismatch"),
        ([0, 2], [0.1, 0.2], "0/1 labels"),
        ([0, np.nan], [0.1, 0.2], "0/1 labels"),
        (["no", "yes"], [0.1, 0.2], "0/1 labels"),
        ([0, 1], [0.1, 1.2], r"probabilities in \[0, 1\]"),
        ([0, 1], [0.1, np.nan], r"probabilities in \[0, 1\]"),
        ([], [], "empty input"),
        ([[0, 1]], [[0.1, 0.2]], "one-dimensional"),
    ],
)
def test_bad_input_raises_data_error(y, prob, message):
    for function in (score_metrics, bootstrap_metrics, expected_calibration_error):
        with pytest.raises(DataError, match=message):
            function(y, prob)


def test_error_message_names_count_and_examples():
    with pytest.raises(DataError, match=r"2 of 4 values .* e\.g\. \[1\.5, -0\.1\]"):
        score_metrics([0, 1, 0, 1], [0.1, 1.5, -0.1, 0.3])


def test_other_errors():
    y, prob = _simulate(20)
    with pytest.raises(DataError, match="groups has 1 missing"):
        bootstrap_metrics(y, prob, groups=[None] + [1] * 19)
    with pytest.raises(DataError, match="length mismatch"):
        bootstrap_metrics(y, prob, groups=[1, 2])
    with pytest.raises(DataError, match="prob_b"):
        compare_bootstrap(y, prob, prob[:5])
    with pytest.raises(DataError, match=r"tiers must be one of .*'orange'"):
        tier_table([0, 1], ["red", "orange"])
    with pytest.raises(ConfigError, match="n_bootstrap"):
        bootstrap_metrics(y, prob, n_bootstrap=0)
    with pytest.raises(ConfigError, match="strategy"):
        reliability_curve(y, prob, strategy="kmeans")
    frame = pd.DataFrame({"label": y, "probability": prob, "tier": "red"})
    with pytest.raises(DataError, match=r"missing column\(s\) \['station'\]"):
        subgroup_report(frame, ["station"])
    with pytest.raises(ConfigError, match="flagged_tiers"):
        subgroup_report(frame.assign(s=1), "s", flagged_tiers=("orange",))
    assert issubclass(DataError, ValueError)
