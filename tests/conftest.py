"""Shared test helpers, and an opt-in shuffled test order (``RISKMODEL_TEST_SHUFFLE=<seed>``)."""

import contextlib
import os
import random
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


def pytest_collection_modifyitems(config, items):
    """With ``RISKMODEL_TEST_SHUFFLE=<seed>``, run the test files in a shuffled order and the
    tests of each file in a shuffled order (a file's tests stay together, so its
    module-scoped fixtures are built once): a test that passes only after another one shows
    up. The seed is printed in the header; the same seed gives the same order."""
    seed = os.environ.get("RISKMODEL_TEST_SHUFFLE")
    if not seed:
        return
    rng = random.Random(int(seed))
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(str(item.path), []).append(item)
    files = list(by_file)
    rng.shuffle(files)
    for tests in by_file.values():
        rng.shuffle(tests)
    items[:] = [item for name in files for item in by_file[name]]


def pytest_report_header(config):
    seed = os.environ.get("RISKMODEL_TEST_SHUFFLE")
    return f"riskmodel: tests shuffled with seed {seed} (RISKMODEL_TEST_SHUFFLE)" if seed else None
