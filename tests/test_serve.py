"""`mlflow models serve` on a registered riskmodel: events in, the Predictor's scores out."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import sqlite_tracking_store
from test_registry import small_config

import riskmodel as rm

pytestmark = pytest.mark.slow  # trains a model and starts a scoring server: about a minute

AS_OF = "2024-11-01T00:00:00"


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """A small model trained and registered (alias challenger) in a fresh sqlite store."""
    with sqlite_tracking_store(tmp_path_factory.mktemp("serve-store")) as uri:
        cfg = small_config()
        cfg.backtest.n_folds = 1
        yield uri, rm.train(cfg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode("utf-8"),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def server(registered, tmp_path_factory):
    """`mlflow models serve --env-manager local` on models:/dispute-risk@challenger."""
    tracking, _ = registered
    port = _free_port()
    log_path = tmp_path_factory.mktemp("serve-log") / "server.log"
    bin_dir = str(Path(sys.executable).parent)  # mlflow execs `uvicorn` from PATH
    env = dict(
        os.environ,
        MLFLOW_TRACKING_URI=tracking,
        PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
        MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false",
        MLFLOW_ALLOW_PICKLE_DESERIALIZATION="false",
        PIP_NO_INDEX="1",  # if anything tried to install packages, it would fail, not download
    )
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/dispute-risk@challenger",
           "--env-manager", "local", "-p", str(port), "-h", "127.0.0.1"]
    with open(log_path, "w") as log:
        # own process group: mlflow starts uvicorn as a child, and both must go at the end
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on /ping after 180 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture(scope="module")
def request_data(registered):
    """Events of a few disputes with their entity attributes as columns, as a JSON client sends
    them: six the model flags red or yellow when the whole city is scored, and six blue ones
    (so tiers and reasons are compared on flagged cases too)."""
    from riskmodel.lifecycle._pyfunc import score_all

    _, result = registered
    sim = rm.simulate_disputes(300, start="2024-01-01", end="2024-12-31", seed=21)
    tiers = score_all(result.model, sim.events, AS_OF, entities=sim.entities, reasons="none")
    flagged = tiers.loc[tiers["tier"] != "blue", "dispute_id"]
    assert len(flagged) >= 6, "a city of 300 disputes has flagged cases"
    ids = pd.concat([flagged.iloc[:6], tiers.loc[tiers["tier"] == "blue", "dispute_id"].iloc[:6]])
    events = sim.events[sim.events["dispute_id"].isin(ids)].reset_index(drop=True)
    entities = sim.entities[sim.entities["dispute_id"].isin(ids)].reset_index(drop=True)
    attrs = entities[["dispute_id", "category", "station", "opened_at"]].astype({"category": str, "station": str})
    flat = events.merge(attrs, on="dispute_id", how="left")
    return events, entities, flat


def test_served_scores_equal_the_predictor(registered, server, request_data):
    url, log_path = server
    events, entities, flat = request_data
    split = json.loads(flat.to_json(orient="split", index=False, date_format="iso"))
    status, body = _post(f"{url}/invocations", {"dataframe_split": split, "params": {"as_of": AS_OF}})
    assert status == 200, body
    served = pd.DataFrame(body["predictions"])

    expected = rm.load("models:/dispute-risk@challenger").predict(events, as_of=AS_OF, entities=entities)
    # the served pyfunc does not know its registry name and version; the Predictor adds them
    assert list(served.columns) == [c for c in expected.columns if c not in ("model_name", "model_version")]
    assert len(served) == len(expected) == events["dispute_id"].nunique()
    served = served.set_index("dispute_id").loc[expected["dispute_id"]].reset_index()
    np.testing.assert_allclose(served["probability"].to_numpy(), expected["probability"].to_numpy(), rtol=1e-12)
    assert (pd.to_datetime(served["as_of"]) == expected["as_of"]).all()
    for col in ("tier", "reasons", "reason_features", "overrides"):
        assert served[col].tolist() == expected[col].astype(str).tolist(), col
    # a few of the chosen cases stay flagged with only these disputes' events (party and
    # station context come from the events sent)
    flagged = expected["tier"].astype(str) != "blue"
    assert flagged.any() and not flagged.all()
    assert (served.loc[flagged.to_numpy(), "reasons"] != "").all()

    log = log_path.read_text()
    assert "pip install" not in log and "Installing" not in log, log[-2000:]


def test_served_model_without_as_of_says_why_in_its_message(server, request_data):
    url, _ = server
    _, _, flat = request_data
    split = json.loads(flat.head(5).to_json(orient="split", index=False, date_format="iso"))
    status, body = _post(f"{url}/invocations", {"dataframe_split": split})
    assert status == 400
    # riskmodel's reason is the message itself, not only the last line of a stack trace
    assert "riskmodel refused the request: no scoring time" in body.get("message", ""), body
    assert '"params": {"as_of"' in body["message"]


def test_served_model_accepts_requests_without_the_optional_columns(registered, server, request_data):
    url, _ = server
    events, entities, flat = request_data
    bare = flat.drop(columns=["narrative", "party_id", "station"])
    split = json.loads(bare.to_json(orient="split", index=False, date_format="iso"))
    status, body = _post(f"{url}/invocations", {"dataframe_split": split, "params": {"as_of": AS_OF}})
    assert status == 200, body
    served = pd.DataFrame(body["predictions"])
    assert sorted(served["dispute_id"]) == sorted(events["dispute_id"].unique())
    assert served["probability"].between(0, 1).all()
