"""Evaluation plots: reliability diagram, ROC / precision-recall, tier hit rates, SHAP summary.

Every function builds a :class:`matplotlib.figure.Figure` with its own Agg canvas and
never touches ``pyplot``: no global figure registry, no backend switch, so the plots work
headless, in threads, and do not disturb a notebook's own matplotlib setup.
"""

from __future__ import annotations

import functools
import pathlib
import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text

from .._errors import DataError, format_examples
from ..model import TIERS
from ._metrics import _check_pair, reliability_curve, score_metrics

__all__ = [
    "TIER_COLOURS",
    "plot_reliability",
    "plot_roc_pr",
    "plot_shap_summary",
    "plot_tier_hit_rates",
    "save_figure",
]

TIER_COLOURS: dict[str, str] = {"red": "#d62728", "yellow": "#e6b800", "blue": "#1f77b4"}
"""Bar colours of the warning tiers."""

# Fonts that cover Chinese labels (矛盾纠纷 categories, stations), tried in this order.
_CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Arial Unicode MS",
)
_GLYPH_WARNING = r"(?s).*[Gg]lyph.*missing from"


@functools.cache
def _cjk_family() -> tuple[str, ...] | None:
    for attempt in range(2):
        installed = {font.name for font in font_manager.fontManager.ttflist}
        for name in _CJK_FONTS:
            if name in installed:
                return (name, "DejaVu Sans")
        if attempt == 0:
            # matplotlib's font cache predates fonts installed later (e.g. by scripts/setup.sh)
            for path in font_manager.findSystemFonts():
                if re.search(r"wqy|cjk|sourcehan|simhei|msyh", pathlib.Path(path).name, re.IGNORECASE):
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError):
                        continue
    return None


def has_cjk_font() -> bool:
    """Whether a font for Chinese labels is installed (else plots label in English only)."""
    return _cjk_family() is not None


def new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def finish_figure(fig: Figure) -> Figure:
    """Give non-ASCII texts a CJK font when one is installed (else glyphs show as boxes)."""
    family = _cjk_family()
    if family is not None:
        for text in fig.findobj(Text):
            if not text.get_text().isascii():
                text.set_fontfamily(list(family))
    return fig


def _curves(y: np.ndarray, prob: np.ndarray) -> dict[str, np.ndarray]:
    """ROC and precision-recall points, one per distinct threshold (high to low)."""
    order = np.argsort(-prob, kind="stable")
    p_sorted, y_sorted = prob[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last].astype(np.float64)
    fp = (last + 1) - tp
    total_pos, total_neg = tp[-1], fp[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "fpr": np.r_[0.0, fp / total_neg],
            "tpr": np.r_[0.0, tp / total_pos],
            "recall": np.r_[0.0, tp / total_pos],
            "precision": np.r_[1.0, tp / (tp + fp)],
        }


def plot_reliability(
    y_true,
    prob,
    *,
    n_bins: int = 10,
    label: str = "model",
    others: Mapping[str, np.ndarray] | None = None,
) -> Figure:
    """Reliability diagram with Wilson intervals and a histogram of probabilities below.

    Parameters
    ----------
    y_true : array-like of 0/1
        Observed outcomes.
    prob : array-like of float in [0, 1]
        Probabilities of the main model.
    n_bins : int, default=10
        Number of quantile bins.
    label : str, default="model"
        Legend entry of the main model.
    others : dict of str to array-like, optional
        Further probability vectors on the same rows (e.g. uncalibrated scores, a baseline),
        drawn as lines without interval bars.

    Returns
    -------
    matplotlib.figure.Figure
    """
    y, p = _check_pair(y_true, prob)
    series = {label: p}
    for name, values in (others or {}).items():
        series[name] = _check_pair(y, values, f"others[{name!r}]")[1]

    fig = new_figure(6.0, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for i, (name, values) in enumerate(series.items()):
        curve = reliability_curve(y, values, n_bins=n_bins)
        colour = f"C{i}"
        if i == 0:
            yerr = np.vstack(
                [curve["observed_rate"] - curve["lower"], curve["upper"] - curve["observed_rate"]]
            )
            top.errorbar(
                curve["mean_probability"],
                curve["observed_rate"],
                yerr=np.clip(yerr, 0, None),
                marker="o",
                capsize=3,
                color=colour,
                label=name,
            )
        else:
            top.plot(
                curve["mean_probability"],
                curve["observed_rate"],
                marker=".",
                color=colour,
                label=name,
            )
        bottom.hist(values, bins=50, range=(0, 1), histtype="step", color=colour, label=name)
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("observed rate")
    top.set_title(f"Reliability ({n_bins} quantile bins, 95% Wilson intervals)")
    top.legend(loc="upper left")
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("rows")
    return finish_figure(fig)


def plot_roc_pr(y_true, probs: Mapping[str, np.ndarray]) -> Figure:
    """ROC and precision-recall curves side by side, one line per model or baseline.

    Parameters
    ----------
    y_true : array-like of 0/1
        Observed outcomes.
    probs : dict of str to array-like
        Scores of each model on the same rows; the legend shows its AUC / average precision
        (NaN when ``y_true`` has one class).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not probs:
        raise DataError("probs is empty; pass at least one {name: probabilities} entry.")
    checked = {}
    for name, values in probs.items():
        y, checked[name] = _check_pair(y_true, values, f"probs[{name!r}]")
    base_rate = y.mean()

    fig = new_figure(11.0, 5.0)
    roc, pr = fig.subplots(1, 2)
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    pr.axhline(
        base_rate, linestyle="--", color="grey", linewidth=1, label=f"base rate {base_rate:.3f}"
    )
    for i, (name, values) in enumerate(checked.items()):
        scores = score_metrics(y, values)
        auc, ap = scores["roc_auc"], scores["average_precision"]
        curve = _curves(y, values)
        roc.plot(curve["fpr"], curve["tpr"], color=f"C{i}", label=f"{name} (AUC {auc:.3f})")
        pr.step(
            curve["recall"],
            curve["precision"],
            where="pre",
            color=f"C{i}",
            label=f"{name} (AP {ap:.3f})",
        )
    roc.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="ROC",
    )
    pr.set(
        xlim=(0, 1), ylim=(0, 1.01), xlabel="recall", ylabel="precision", title="Precision-recall"
    )
    roc.legend(loc="lower right")
    pr.legend(loc="upper right")
    return finish_figure(fig)


def plot_tier_hit_rates(tier_table_df: pd.DataFrame) -> Figure:
    """Hit rate of each warning tier as a bar, annotated with the tier's share of cases.

    Parameters
    ----------
    tier_table_df : pandas.DataFrame
        Output of :func:`riskmodel.evaluation._metrics.tier_table` (columns ``tier``, ``n``, ``share``,
        ``hit_rate``; ``n`` is optional).

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(tier_table_df, pd.DataFrame):
        raise DataError(
            f"tier_table_df must be a DataFrame from tier_table, got {type(tier_table_df).__name__}."
        )
    missing = [c for c in ("tier", "share", "hit_rate") if c not in tier_table_df.columns]
    if missing:
        raise DataError(
            f"tier_table_df is missing column(s) {format_examples(missing)}; pass the output of "
            "tier_table."
        )
    tiers = tier_table_df["tier"].astype(str).tolist()
    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        raise DataError(f"unknown tier(s) {format_examples(unknown)}; expected {list(TIERS)}.")
    hit = pd.to_numeric(tier_table_df["hit_rate"], errors="coerce").to_numpy(dtype=float)
    share = pd.to_numeric(tier_table_df["share"], errors="coerce").to_numpy(dtype=float)
    counts = tier_table_df["n"].tolist() if "n" in tier_table_df.columns else [None] * len(tiers)

    fig = new_figure(6.0, 4.5)
    ax = fig.subplots()
    positions = np.arange(len(tiers))
    heights = np.nan_to_num(hit, nan=0.0)
    ax.bar(positions, heights, color=[TIER_COLOURS[t] for t in tiers], edgecolor="black")
    top = max(float(heights.max(initial=0.0)), 1e-9)
    for x, h, s, n in zip(positions, heights, share, counts):
        note = f"{s:.1%} of cases" if np.isfinite(s) else "share n/a"
        if n is not None:
            note += f"\nn={n:,}"
        ax.annotate(
            note,
            (x, h),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_xticks(positions, labels=tiers)
    ax.set_ylim(0, top * 1.3)
    ax.set_ylabel("hit rate (share escalating)")
    ax.set_title("Hit rate by warning tier")
    return finish_figure(fig)


def plot_shap_summary(
    contributions: np.ndarray,
    feature_names: Sequence[str],
    *,
    max_features: int = 20,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Mean absolute SHAP contribution of the top features as horizontal bars.

    Parameters
    ----------
    contributions : array of shape (n_rows, n_features) or (n_rows, n_features + 1)
        Per-row feature contributions; an extra last column (LightGBM's ``pred_contrib``
        bias term) is dropped.
    feature_names : sequence of str
        Name of each feature column.
    max_features : int, default=20
        Number of features shown, largest first.
    labels : dict of str to str, optional
        Readable labels (e.g. Chinese) for feature names; unknown names are shown as is.

    Returns
    -------
    matplotlib.figure.Figure
    """
    names = [str(n) for n in feature_names]
    values = np.asarray(contributions, dtype=np.float64)
    if values.ndim == 1:
        values = values[np.newaxis, :]
    if values.ndim != 2 or values.shape[0] == 0:
        raise DataError(
            f"contributions must be a non-empty 2-D array (rows x features), got shape "
            f"{np.shape(contributions)}."
        )
    if values.shape[1] == len(names) + 1:
        values = values[:, :-1]
    if values.shape[1] != len(names):
        raise DataError(
            f"length mismatch: contributions has {values.shape[1]} columns but feature_names has "
            f"{len(names)} names."
        )
    if not np.isfinite(values).all():
        raise DataError(
            f"contributions has {int((~np.isfinite(values)).sum())} missing or infinite values."
        )
    if max_features < 1:
        raise DataError(f"max_features must be at least 1, got {max_features!r}.")
    mean_abs = np.abs(values).mean(axis=0)
    top = np.argsort(-mean_abs, kind="stable")[:max_features][::-1]
    shown = [(labels or {}).get(names[i], names[i]) for i in top]

    fig = new_figure(7.0, 1.0 + 0.3 * len(top))
    ax = fig.subplots()
    ax.barh(np.arange(len(top)), mean_abs[top], color="C0")
    ax.set_yticks(np.arange(len(top)), labels=shown)
    ax.set_xlabel("mean |SHAP value| (log-odds)")
    ax.set_title(f"Top {len(top)} features by mean absolute contribution")
    return finish_figure(fig)


def save_figure(fig: Figure, path: str | pathlib.Path) -> pathlib.Path:
    """Write a figure as PNG (100 dpi, tight bounding box) and return the path.

    Parent directories are created. Missing-glyph warnings (labels in a script the
    installed fonts lack) are silenced; such glyphs render as boxes.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to save; it is not closed or otherwise changed.
    path : str or pathlib.Path
        Destination file.

    Returns
    -------
    pathlib.Path
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_GLYPH_WARNING, category=UserWarning)
        fig.savefig(path, format="png", dpi=100, bbox_inches="tight")
    return path
