"""The MLflow lifecycle: experiment configs, tracked training, registered versions and
aliases, the promotion gate, the pyfunc flavour, model cards and monitoring runs."""

from ._config import (
    NOT_CSV,
    PARQUET_MAGIC,
    ExperimentConfig,
    input_words,
    is_csv,
    load_config,
    load_data,
    not_parquet_error,
    not_parquet_file,
    parquet_failure,
    parquet_schema,
    read_capacity,
    read_csv,
    read_table,
    refuse_one_column_header,
    refuse_repeated_names,
    row_numbers,
    unreadable_compressed,
)
from ._monitoring import log_monitoring_run
from ._pyfunc import load_pyfunc
from ._registry import Predictor, load, promote, rollback, train
from ._store import LOCAL_STORE_DIR, recorded_uri, tracking_uri

__all__ = [
    "LOCAL_STORE_DIR", "NOT_CSV", "PARQUET_MAGIC", "ExperimentConfig", "Predictor", "input_words", "is_csv",
    "not_parquet_error", "not_parquet_file", "refuse_repeated_names", "load", "parquet_failure", "parquet_schema", "refuse_one_column_header", "unreadable_compressed", "load_config", "load_data", "load_pyfunc", "log_monitoring_run", "promote",
    "read_capacity", "read_csv", "read_table", "recorded_uri", "rollback", "row_numbers", "tracking_uri", "train",
]
