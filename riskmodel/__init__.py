"""riskmodel: early warning of civil disputes about to turn violent (民转刑).

Point-in-time features over dispute histories, a calibrated LightGBM model with
red / yellow / blue tiers and per-case reasons, an MLflow lifecycle and a nightly batch
scorer. See ``README.md`` and ``docs/`` for the whole picture.
"""

from ._errors import ConfigError, DataError, DataWarning, ModelError
from ._simulate import Simulation, simulate_disputes
from ._version import VERSION as __version__  # noqa: F401 - re-exported
from .batch import NightlyOutput, read_nightly, score_batch
from .data import EventSchema, validate_cutoffs, validate_entities, validate_events
from .evaluation import make_cutoffs, make_labels, open_disputes
from .features import DEFAULT_KEYWORDS, FeatureBuilder, PreparedEvents, prepare_events
from .lifecycle import ExperimentConfig, Predictor, load, load_config, promote, rollback, train
from .model import TIERS, Override, RiskModel, TierPolicy
from .ops import (
    AuditResult,
    Explanation,
    SweepInputs,
    SweepPattern,
    SweepResult,
    audit_outcomes,
    barometer,
    escalations_from,
    explain,
    parse_pattern,
    plot_barometer_heatmap,
    plot_tier_trend,
    render_report,
    sweep,
    sweep_inputs,
    write_report,
)

__all__ = [
    "AuditResult",
    "ConfigError",
    "DataError",
    "DataWarning",
    "DEFAULT_KEYWORDS",
    "EventSchema",
    "ExperimentConfig",
    "Explanation",
    "FeatureBuilder",
    "NightlyOutput",
    "PreparedEvents",
    "Predictor",
    "Simulation",
    "SweepInputs",
    "SweepPattern",
    "SweepResult",
    "audit_outcomes",
    "barometer",
    "escalations_from",
    "explain",
    "load",
    "load_config",
    "make_cutoffs",
    "make_labels",
    "open_disputes",
    "parse_pattern",
    "plot_barometer_heatmap",
    "plot_tier_trend",
    "prepare_events",
    "promote",
    "read_nightly",
    "render_report",
    "rollback",
    "score_batch",
    "simulate_disputes",
    "sweep",
    "sweep_inputs",
    "train",
    "write_report",
    "ModelError",
    "Override",
    "RiskModel",
    "TIERS",
    "TierPolicy",
    "validate_cutoffs",
    "validate_entities",
    "validate_events",
]
