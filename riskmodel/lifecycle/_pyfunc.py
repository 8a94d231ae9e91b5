"""MLflow pyfunc flavour without pickles.

The model is logged with ``loader_module="riskmodel._pyfunc"`` (a name stored in every
registered model, so it never moves): MLflow stores only data (LightGBM text + JSON, see
:mod:`riskmodel.model`) and, at load, imports that module from the *installed* riskmodel
and calls its ``_load_pyfunc``, which is :func:`load_pyfunc`. No stored code runs.

``mlflow.pyfunc.load_model(uri).predict(events, params={"as_of": "2025-06-01"})`` scores
every dispute in ``events`` at ``as_of``. Entity attributes may ride along as extra
columns of the events frame (one value per dispute); they are split off into the
entities table the model expects.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._errors import DataError
from ..data import Columns, cutoffs_at, isna_mask
from ..model import RiskModel, load_model_dir


class RiskModelPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(events, params)``."""

    def __init__(self, model: RiskModel):
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        params = dict(params or {})
        as_of = params.get("as_of")
        if not as_of:
            raise DataError("pass the scoring time as params={'as_of': '2025-06-01T00:00:00'}.")
        reasons = params.get("reasons", "flagged")
        events, entities = split_entity_columns(model_input, self.model)
        return score_all(self.model, events, as_of, entities=entities, reasons=reasons)


def split_entity_columns(frame: pd.DataFrame, model: RiskModel):
    """Split entity attribute columns carried on an events frame into an entities table
    (a :class:`~riskmodel.data._schema.Columns`, which the entities checks read like a frame).

    Each dispute's first row gives its attributes. The events frame is returned as it is:
    the event checks read only the schema's event columns, and attributes that are constant
    per dispute do not change which rows are exact duplicates.
    """
    schema = model._schema()
    if not getattr(model.features_, "has_entities_", False):
        return frame, None
    attrs = [c for c in schema.entity_feature_columns if c in frame.columns]
    if not attrs:
        return frame, None
    ids = frame[schema.entity_col]
    first = ~ids.duplicated().to_numpy() & ids.notna().to_numpy()  # null ids are the events' rejects
    n = int(first.sum())
    entities = {schema.entities_id: ids.to_numpy()[first]}
    for col in schema.entity_feature_columns:
        entities[col] = frame[col].to_numpy()[first] if col in attrs else np.full(n, None, dtype=object)
    if schema.closed_col and schema.closed_col not in entities:
        entities[schema.closed_col] = np.full(n, np.datetime64("NaT", "ns"))
    return frame, Columns(entities)


def score_all(model: RiskModel, events: pd.DataFrame, as_of, *, entities=None, reasons="flagged",
              extra_columns=None) -> pd.DataFrame:
    """Score every dispute present in ``events`` at ``as_of`` (output index 0..n-1).

    ``extra_columns``: name -> constant, appended to the output (model name and version).
    """
    schema = model._schema()
    if schema.entity_col not in getattr(events, "columns", []):
        raise DataError(f"events are missing the id column {schema.entity_col!r}.")
    column = events[schema.entity_col]
    ids = column.array[~isna_mask(column)].unique()  # keeps the column's dtype
    cutoffs = cutoffs_at(ids, as_of, schema, tz_aware=model.features_.tz_aware_)
    return model._predict(events, cutoffs, entities=entities, reasons=reasons, extra_columns=extra_columns,
                          validated=True)


def load_pyfunc(data_path: str) -> RiskModelPyfunc:
    """MLflow's entry point for ``loader_module`` models (as ``riskmodel._pyfunc._load_pyfunc``)."""
    return RiskModelPyfunc(load_model_dir(data_path))
