"""riskmodel: early warning of civil disputes about to turn violent (民转刑).

Point-in-time features over dispute histories, a calibrated LightGBM model with
red / yellow / blue tiers and per-case reasons, an MLflow lifecycle and a nightly batch
scorer. See ``README.md`` and ``docs/`` for the whole picture.
"""

from ._audit import AuditResult, audit_outcomes, escalations_from
from ._barometer import barometer, plot_barometer_heatmap, plot_tier_trend
from ._batch import score_batch
from ._config import ExperimentConfig, load_config
from ._errors import ConfigError, DataError, DataWarning, ModelError
from ._features import DEFAULT_KEYWORDS, FeatureBuilder, PreparedEvents, prepare_events
from ._labels import make_cutoffs, make_labels, open_disputes
from ._model import RiskModel
from ._nightly import NightlyOutput, read_nightly
from ._registry import Predictor, load, promote, rollback, train
from ._report import render_report, write_report
from ._schema import EventSchema, validate_cutoffs, validate_entities, validate_events
from ._simulate import Simulation, simulate_disputes
from ._sweep import SweepInputs, SweepPattern, SweepResult, parse_pattern, sweep, sweep_inputs
from ._tiers import TIERS, Override, TierPolicy

__version__ = "0.1.0"

__all__ = [
    "AuditResult",
    "ConfigError",
    "DataError",
    "DataWarning",
    "DEFAULT_KEYWORDS",
    "EventSchema",
    "ExperimentConfig",
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
