"""The model: :class:`RiskModel` (LightGBM, calibration), tier policies, per-case reasons,
the drift reference the model keeps, and its artifact (LightGBM text + JSON, no pickle).

Imports neither MLflow nor pyspark.
"""

from ._artifact import load_model_dir, save_model_dir
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
from ._model import RiskModel
from ._tiers import (
    TIERS,
    Override,
    TierPolicy,
    area_column,
    night_tiers,
    retier_scores,
    scoring_policy,
)

__all__ = [
    "TIERS", "Override", "RiskModel", "TierPolicy", "area_column", "check_thresholds", "chunk_counts",
    "drift_report", "drift_table", "load_model_dir", "merge_counts", "monitoring_metrics", "night_tiers",
    "raw_attributes", "retier_scores", "save_model_dir", "scoring_policy", "warn_if_drifting",
]
