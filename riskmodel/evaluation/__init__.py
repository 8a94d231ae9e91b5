"""Evaluation: cutoffs and labels, metrics, the rolling-origin backtest and its plots."""

from ._backtest import backtest, check_n_folds
from ._labels import make_cutoffs, make_labels, open_disputes
from ._metrics import bootstrap_metrics, tier_table
from ._plots import TIER_COLOURS, finish_figure, has_cjk_font, new_figure, save_figure

__all__ = [
    "TIER_COLOURS", "backtest", "bootstrap_metrics", "check_n_folds", "finish_figure", "has_cjk_font", "make_cutoffs", "make_labels",
    "new_figure", "open_disputes", "save_figure", "tier_table",
]
