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


def dirty_events(events: pd.DataFrame, entities: pd.DataFrame, *, times: str = "ns", ids: str = "str",
                 seed: int = 0):
    """``events`` with every kind of bad row the batch rejects, typed the way a parquet file
    or a Spark table holds them, as a pyarrow Table, and ``entities`` with the same id type.

    Bad rows: null ids, missing times, times before 1900 and in the future, times outside
    pandas' nanosecond range where the type can hold them (years 1001 and 9999),
    unparseable times (string times only), missing kinds, exact duplicate rows, a narrative
    with quotes, a comma and a newline, and a dispute ``DEAD-1`` whose every row is bad.

    Parameters
    ----------
    times : {"ns", "us_tz", "str"}
        ``datetime64[ns]`` (a parquet ``TIMESTAMP(NANOS)``, which Spark reads as a long),
        Arrow ``timestamp[us, tz=Asia/Shanghai]`` (Spark's timestamp), or strings.
    ids : {"str", "float"}
        String ids, or integer ids in a float64 column (how pandas stores integers with a
        null among them).
    """
    import datetime

    import pyarrow as pa

    rng = np.random.default_rng(seed)
    frame = events.reset_index(drop=True).copy()
    rows = rng.choice(len(frame), 30, replace=False)
    stamps = [t.to_pydatetime() for t in frame["time"]]
    if times == "us_tz":
        tz = datetime.timezone(datetime.timedelta(hours=8))
        stamps = [t.replace(tzinfo=tz) for t in stamps]
    else:
        tz = None
    values: list = list(stamps)
    for r in rows[5:10]:
        values[r] = None
    for r in rows[10:13]:
        values[r] = datetime.datetime(1850, 3, 1, tzinfo=tz)
    for r in rows[13:16]:
        values[r] = datetime.datetime(2099, 1, 1, tzinfo=tz)
    if times != "ns":  # a microsecond timestamp or a string holds what nanoseconds cannot
        values[rows[16]] = datetime.datetime(1001, 1, 1, tzinfo=tz)
        values[rows[17]] = datetime.datetime(9999, 6, 1, tzinfo=tz)
    ids_col = frame["dispute_id"].astype(object).to_numpy().copy()
    ids_col[rows[:5]] = None
    kinds = frame["kind"].astype(object).to_numpy().copy()
    kinds[rows[18:20]] = None
    narrative = frame["narrative"].astype(object).to_numpy().copy()
    narrative[rows[20]] = 'said "I will burn it down",\nthen left'
    dead = [("DEAD-1", None), ("DEAD-1", datetime.datetime(2099, 5, 5, tzinfo=tz)),
            ("DEAD-1", datetime.datetime(1850, 5, 5, tzinfo=tz))]
    dup = rows[20:25]  # exact copies of these rows follow them at the end
    order = np.r_[np.arange(len(frame)), dup]
    out_ids = [*ids_col[order], *(d for d, _ in dead)]
    out_times = [*(values[k] for k in order), *(t for _, t in dead)]
    out_kinds = [*kinds[order], "call_110", "call_110", "call_110"]
    out_text = [*narrative[order], "x", "x", "x"]
    out_party = [*frame["party_id"].astype(object).to_numpy()[order], "P-DEAD", "P-DEAD", "P-DEAD"]
    if times == "str":
        texts = [None if t is None else t.strftime("%Y-%m-%d %H:%M:%S") for t in out_times]
        for k, bad in zip(rows[25:28], ("not a time", "2023-13-45 10:00:00", "??"), strict=True):
            texts[k] = bad
        time_array = pa.array(texts, pa.string())
    elif times == "ns":
        time_array = pa.array(pd.Series(pd.to_datetime(out_times)).astype("datetime64[ns]"), pa.timestamp("ns"))
    else:
        time_array = pa.array(out_times, pa.timestamp("us", tz="Asia/Shanghai"))

    def id_type(values):
        if ids == "str":
            return pa.array(list(values), pa.string())
        return pa.array([None if v is None else float(int(v[1:])) if v.startswith("D0") else -1.0 for v in values],
                        pa.float64())

    table = pa.table({"dispute_id": id_type(out_ids), "time": time_array,
                      "kind": pa.array(out_kinds, pa.string(), from_pandas=True),
                      "narrative": pa.array(out_text, pa.string(), from_pandas=True),
                      "party_id": pa.array(out_party, pa.string(), from_pandas=True)})
    entities = entities.copy()
    entities["dispute_id"] = id_type(entities["dispute_id"]).to_pandas()
    return table, entities


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
