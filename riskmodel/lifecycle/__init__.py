"""The MLflow lifecycle: experiment configs, tracked training, registered versions and
aliases, the promotion gate, the pyfunc flavour, model cards and monitoring runs."""

from ._config import (
    NOT_CSV,
    ExperimentConfig,
    is_csv,
    load_config,
    load_data,
    parquet_failure,
    read_capacity,
    read_csv,
    read_table,
    refuse_one_column_header,
    row_numbers,
    unreadable_compressed,
)
from ._monitoring import log_monitoring_run
from ._pyfunc import load_pyfunc
from ._registry import Predictor, load, promote, rollback, train
from ._store import LOCAL_STORE_DIR, recorded_uri, tracking_uri

__all__ = [
    "LOCAL_STORE_DIR", "NOT_CSV", "ExperimentConfig", "Predictor", "is_csv", "load", "parquet_failure", "refuse_one_column_header", "unreadable_compressed", "load_config", "load_data", "load_pyfunc", "log_monitoring_run", "promote",
    "read_capacity", "read_csv", "read_table", "recorded_uri", "rollback", "row_numbers", "tracking_uri", "train",
]
