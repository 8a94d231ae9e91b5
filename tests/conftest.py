"""Shared test helpers."""

import contextlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    prepare_events,
    simulate_disputes,
)
from riskmodel.model._artifact import save_model_dir


def train_model_dir(folder: Path, n_disputes: int, **simulate_kwargs) -> Path:
    """Simulate ``n_disputes``, fit a RiskModel on the uncensored monthly snapshots, save it."""
    sim = simulate_disputes(n_disputes, **simulate_kwargs)
    ev = prepare_events(sim.events, sim.schema)
    lab = make_labels(ev, make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    model = RiskModel(schema=sim.schema, features=FeatureBuilder(schema=sim.schema))
    model.fit(ev, lab[~lab.censored], entities=sim.entities)
    return save_model_dir(model, folder / "model")


@contextlib.contextmanager
def sqlite_tracking_store(folder: Path):
    """Point MLFLOW_TRACKING_URI at a fresh sqlite store in ``folder`` for the block."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


def with_bad_rows(events: pd.DataFrame, n_null_id: int, n_unparseable: int, n_future: int):
    """``events`` (times as strings) with bad rows injected at random positions, plus a
    dispute ``DEAD-1`` whose every row is bad; returns the frame and the injected positions."""
    events = events.copy()
    events["time"] = events["time"].astype(str)
    rows = np.random.default_rng(0).choice(len(events), n_null_id + n_unparseable + n_future, replace=False)
    events.loc[rows[:n_null_id], "dispute_id"] = None
    events.loc[rows[n_null_id:n_null_id + n_unparseable], "time"] = "not a time"
    events.loc[rows[n_null_id + n_unparseable:], "time"] = "2099-01-01 00:00:00"
    dead = pd.DataFrame({"dispute_id": ["DEAD-1"] * 3, "time": ["garbage", "2099-05-05", "??"],
                         "kind": ["call"] * 3, "narrative": ["x"] * 3, "party_id": ["P-DEAD"] * 3})
    return pd.concat([events, dead], ignore_index=True), rows
