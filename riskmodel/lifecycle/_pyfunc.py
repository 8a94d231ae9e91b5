"""MLflow pyfunc flavour without pickles.

The model is logged with ``loader_module="riskmodel._pyfunc"`` (a name stored in every
registered model, so it never moves): MLflow stores only data (LightGBM text + JSON, see
:mod:`riskmodel.model`) and, at load, imports that module from the *installed* riskmodel
and calls its ``_load_pyfunc``, which is :func:`load_pyfunc`. No stored code runs.

``mlflow.pyfunc.load_model(uri).predict(events, params={"as_of": "2025-06-01"})`` scores
every dispute in ``events`` at ``as_of``. Entity attributes may ride along as extra
columns of the events frame (one value per dispute); they are split off into the
entities table the model expects.

Any frame pandas, Arrow or riskmodel produces is accepted (categoricals, Arrow strings,
objects, timezone-aware or naive times, times as strings): the signature declares the
columns' names and which are required, with type ``Any``, so MLflow's schema enforcement
passes the values through and riskmodel's own validation reads them. Optional columns
(text, party, event attributes, entity attributes) may be left out: they count as
missing. A refused request raises an ``MlflowException`` (HTTP 400 when served) whose
message is riskmodel's own: what was wrong and what to send.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .._errors import ConfigError, DataError, DataWarning, ModelError
from ..data import (
    Columns,
    cutoffs_at,
    ids_of_one_type,
    one_time,
    require_columns,
    times_aware,
)
from ..model import RiskModel, load_model_dir


class RiskModelPyfunc:
    """What ``mlflow.pyfunc.load_model`` wraps: ``predict(events, params)``."""

    def __init__(self, model: RiskModel):
        self.model = model

    def predict(self, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            return self._predict(model_input, params)
        except (DataError, ConfigError, ModelError) as exc:
            from mlflow.exceptions import MlflowException

            # MLflow's server answers an MlflowException with its message (HTTP 400 for an
            # invalid parameter); any other error becomes a generic message
            raise MlflowException.invalid_parameter_value(f"riskmodel refused the request: {exc}") from exc

    def _predict(self, model_input, params) -> pd.DataFrame:
        params = dict(params or {})
        as_of = params.get("as_of")
        if as_of is None or (isinstance(as_of, str) and not as_of.strip()):
            raise DataError("no scoring time: pass the moment to score at as params={'as_of': "
                            "'2025-06-01T00:00:00'} (served: \"params\": {\"as_of\": \"2025-06-01T00:00:00\"} "
                            "next to \"dataframe_split\"); events at or after it are ignored.")
        reasons = params.get("reasons", "flagged")
        if not isinstance(model_input, pd.DataFrame):
            raise DataError(f"expected the events as a DataFrame (one row per event), got {type(model_input).__name__}.")
        events, entities = split_entity_columns(with_optional_columns(model_input, self.model), self.model)
        return score_all(self.model, events, as_of, entities=entities, reasons=reasons)


def with_optional_columns(frame: pd.DataFrame, model: RiskModel) -> pd.DataFrame:
    """``frame`` with the schema's optional event columns it lacks added as missing values
    (no narrative, no party): a request may leave them out, as the signature says."""
    schema = model._schema()
    optional = [c for c in (schema.text_col, schema.party_col, *schema.event_attribute_cols) if c]
    absent = [c for c in optional if c not in frame.columns]
    if not absent:
        return frame
    return frame.assign(**{c: pd.Series(None, index=frame.index, dtype=object) for c in absent})


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
              extra_columns=None, context_events=None, only=None) -> pd.DataFrame:
    """Score every dispute present in ``events`` at ``as_of`` (output index 0..n-1).

    ``extra_columns``: name -> constant, appended to the output (model name and version).
    ``context_events``: the log the cross-dispute features read (see :meth:`RiskModel.predict`).
    ``only``: the ids to score among them (e.g. the disputes open at ``as_of``).
    """
    schema = model._schema()
    if not hasattr(events, "columns"):
        raise DataError(f"events must be a pandas DataFrame, got {type(events).__name__}.")
    require_columns(events, [schema.entity_col, schema.time_col, schema.kind_col], "events", schema=schema,
                    trained=True)
    events = ids_of_one_type(events, schema.entity_col)  # 275 and "275": one dispute, scored once
    column = events[schema.entity_col]
    ids = column.array.unique()  # in order of appearance, in the column's dtype
    if (missing := np.asarray(ids.isna(), dtype=bool)).any():
        ids = ids[~missing]
    if only is not None:
        ids = ids[pd.Series(ids).isin(pd.unique(pd.Series(only))).to_numpy()]
    cutoffs = cutoffs_at(ids, as_of, schema, tz_aware=_clock_of(events[schema.time_col], as_of, model))
    return model._predict(events, cutoffs, entities=entities, reasons=reasons, extra_columns=extra_columns,
                          validated=True, context_events=context_events)


def _clock_of(times: pd.Series, as_of, model: RiskModel) -> bool:
    """The timezone convention of a request: its events' and its ``as_of``'s, which must
    agree (the offset between an aware and a naive clock is unknown). Either convention is
    accepted, both being compared in UTC when aware; one unlike the model's training data
    warns, since only the time of day (night-time counts) depends on the clock."""
    trained = bool(model.features_.tz_aware_)
    if isinstance(as_of, bool | int | float | np.number):
        return trained  # a number (pandas reads nanoseconds): the cutoff checks say so
    try:
        stamp = one_time(as_of)  # NaT for text without a digit ("today")
    except (ValueError, TypeError):  # e.g. a Chinese date, which the cutoff checks read
        stamp = None
    if stamp is None or stamp is pd.NaT:
        aware = times_aware(pd.Series([as_of], dtype=object))
        if aware is None:
            return trained  # the cutoff checks say what is wrong with it
    given = stamp.tz is not None if stamp is not None and stamp is not pd.NaT else aware
    events = times_aware(times)
    if events is None:
        return given
    if events != given:
        raise DataError(
            f"the events' times and as_of use different timezone conventions: the events are "
            f"{'timezone-aware' if events else 'naive'}, as_of {as_of!r} is {'timezone-aware' if given else 'naive'}, "
            "and the offset between the two clocks is unknown. Give both with a timezone (e.g. "
            "2025-06-01T00:00:00+08:00) or both without.")
    if given != trained:
        warnings.warn(
            f"the model was trained on {'timezone-aware' if trained else 'naive (local)'} times and these are "
            f"{'timezone-aware (compared in UTC)' if given else 'naive'}: counts by time of day (night hours) "
            "may shift by the offset.", DataWarning, stacklevel=4)
    return given


def load_pyfunc(data_path: str) -> RiskModelPyfunc:
    """MLflow's entry point for ``loader_module`` models (as ``riskmodel._pyfunc._load_pyfunc``)."""
    return RiskModelPyfunc(load_model_dir(data_path))
