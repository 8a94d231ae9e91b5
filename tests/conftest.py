"""Shared test helpers."""

import contextlib
from pathlib import Path

import pytest

from riskmodel import (
    FeatureBuilder,
    RiskModel,
    make_cutoffs,
    make_labels,
    prepare_events,
    simulate_disputes,
)
from riskmodel._artifact import save_model_dir


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
