"""Tests for riskmodel.evaluation._plots: every plot builds headless and saves as a readable PNG."""

from __future__ import annotations

import threading
import warnings

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from riskmodel._errors import DataError
from riskmodel.evaluation._metrics import tier_table
from riskmodel.evaluation._plots import (
    plot_reliability,
    plot_roc_pr,
    plot_shap_summary,
    plot_tier_hit_rates,
    save_figure,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    prob = 1 / (1 + np.exp(-(1.5 * x - 2)))
    y = (rng.random(2000) < prob).astype(int)
    baseline = np.clip(prob + rng.normal(0, 0.1, size=2000), 0, 1)
    return y, prob, baseline


def _check_png(fig: Figure, path) -> np.ndarray:
    written = save_figure(fig, path)
    assert written == path
    assert path.stat().st_size > 1000
    pixels = matplotlib.image.imread(path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert pixels.shape == (height, width, 4)
    # 100 dpi with a tight box: roughly the figure size in inches times 100.
    fig_width, fig_height = fig.get_size_inches() * 100
    assert 0.5 * fig_width < width < 1.5 * fig_width
    assert 0.5 * fig_height < height < 1.5 * fig_height
    return pixels


def test_plot_reliability(data, tmp_path):
    y, prob, baseline = data
    fig = plot_reliability(y, prob, n_bins=8, label="calibrated", others={"raw": baseline})
    assert isinstance(fig, Figure)
    top = fig.axes[0]
    legend = {t.get_text() for t in top.get_legend().get_texts()}
    assert legend == {"perfect", "calibrated", "raw"}
    _check_png(fig, tmp_path / "reliability.png")


def test_plot_roc_pr(data, tmp_path):
    y, prob, baseline = data
    fig = plot_roc_pr(y, {"model": prob, "baseline": baseline})
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(text.startswith("model (AUC 0.") for text in legend)
    _check_png(fig, tmp_path / "roc_pr.png")


def test_plot_roc_pr_one_class_does_not_crash(tmp_path):
    fig = plot_roc_pr([0, 0, 0], {"model": [0.1, 0.2, 0.3]})
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "model (AUC nan)" in legend
    _check_png(fig, tmp_path / "one_class.png")


def test_plot_tier_hit_rates(data, tmp_path):
    y, prob, _ = data
    tiers = np.where(prob > 0.5, "red", np.where(prob > 0.2, "yellow", "blue"))
    fig = plot_tier_hit_rates(tier_table(y, tiers))
    assert isinstance(fig, Figure)
    bars = fig.axes[0].patches
    assert len(bars) == 3
    _check_png(fig, tmp_path / "tiers.png")


def test_plot_tier_hit_rates_with_empty_tier(tmp_path):
    fig = plot_tier_hit_rates(tier_table([0, 1, 0], ["red", "red", "blue"]))
    assert fig.axes[0].patches[1].get_height() == 0
    _check_png(fig, tmp_path / "empty_tier.png")


def test_plot_shap_summary_with_chinese_labels_and_bias_column(tmp_path):
    rng = np.random.default_rng(1)
    names = [f"f{i}" for i in range(30)]
    contributions = rng.normal(size=(200, 31)) * np.geomspace(0.1, 10, 31)
    labels = {"f29": "扬言报复次数", "f28": "调解失败次数"}
    fig = plot_shap_summary(contributions, names, max_features=10, labels=labels)
    assert isinstance(fig, Figure)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(ticks) == 10
    assert ticks[-1] == "扬言报复次数"  # largest on top
    assert ticks[-2] == "调解失败次数"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # missing CJK glyphs must not even warn
        _check_png(fig, tmp_path / "nested" / "shap.png")


def test_plot_shap_summary_rejects_mismatch():
    with pytest.raises(DataError, match="length mismatch"):
        plot_shap_summary(np.ones((3, 5)), ["a", "b"])
    with pytest.raises(DataError, match="missing or infinite"):
        plot_shap_summary(np.array([[np.nan, 1.0]]), ["a", "b"])


def test_plot_input_errors(data):
    y, prob, _ = data
    with pytest.raises(DataError, match="length mismatch"):
        plot_reliability(y, prob[:10])
    with pytest.raises(DataError, match="empty"):
        plot_roc_pr(y, {})
    with pytest.raises(DataError, match=r"probs\['bad'\]"):
        plot_roc_pr(y, {"bad": prob + 1})
    with pytest.raises(DataError, match="missing column"):
        plot_tier_hit_rates(tier_table(y, np.full(len(y), "red")).drop(columns="hit_rate"))


def test_plots_work_in_threads(data, tmp_path):
    y, prob, _ = data
    errors = []

    def work(i: int) -> None:
        try:
            save_figure(plot_roc_pr(y, {"model": prob}), tmp_path / f"thread{i}.png")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all((tmp_path / f"thread{i}.png").stat().st_size > 1000 for i in range(4))
