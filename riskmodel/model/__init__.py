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
from ._facts import model_facts
from ._model import RiskModel
from ._reasons import ReasonWriter
from ._tiers import TIERS, Override, TierPolicy

__all__ = [
    "TIERS", "Override", "ReasonWriter", "RiskModel", "TierPolicy", "check_thresholds", "chunk_counts", "drift_report",
    "drift_table", "load_model_dir", "merge_counts", "model_facts", "monitoring_metrics", "raw_attributes",
    "save_model_dir", "warn_if_drifting",
]
