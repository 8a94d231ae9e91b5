"""Operations on the nightly outputs: the barometer, sweeps, one dispute explained, the outcome
audit, the report."""

from ._audit import AuditResult, audit_outcomes, escalations_from
from ._barometer import barometer, plot_barometer_heatmap, plot_tier_trend
from ._explain import Explanation, explain
from ._night import NightModels, night_inputs
from ._report import render_report, write_report
from ._sweep import SweepInputs, SweepPattern, SweepResult, parse_pattern, sweep, sweep_inputs

__all__ = [
    "AuditResult", "Explanation", "NightModels", "SweepInputs", "SweepPattern", "SweepResult", "audit_outcomes",
    "barometer", "escalations_from", "explain", "night_inputs", "parse_pattern", "plot_barometer_heatmap",
    "plot_tier_trend", "render_report", "sweep", "sweep_inputs", "write_report",
]
