"""The model: :class:`RiskModel` (LightGBM, calibration), tier policies, per-case reasons,
the drift reference the model keeps, and its artifact (LightGBM text + JSON, no pickle).

Imports neither MLflow nor pyspark.
"""

from ._artifact import load_model_dir, model_fingerprint, save_model_dir
from ._drift import (
    check_thresholds,
    chunk_counts,
    drift_report,
    drift_table,
    merge_counts,
    monitoring_metrics,
    raw_attributes,
    warn_if_drifting,
)
from ._facts import model_facts
from ._model import RiskModel, check_outcomes_seen, untrainable_reason
from ._reasons import ReasonWriter
from ._tiers import (
    TIERS,
    UNKNOWN_AREA,
    Override,
    TierPolicy,
    area_column,
    night_tiers,
    retier_scores,
    scoring_policy,
    table_area,
)

__all__ = [
    "TIERS", "Override", "ReasonWriter", "RiskModel", "TierPolicy", "area_column", "check_outcomes_seen",
    "check_thresholds", "chunk_counts", "drift_report", "drift_table", "load_model_dir", "merge_counts",
    "model_facts", "model_fingerprint", "monitoring_metrics", "night_tiers", "raw_attributes", "retier_scores",
    "save_model_dir", "scoring_policy", "table_area", "UNKNOWN_AREA", "untrainable_reason", "warn_if_drifting",
]
