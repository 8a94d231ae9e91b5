"""Where MLflow keeps runs and models, and how several processes share one sqlite store.

The one owner of the tracking URI, the artifact root, the store lock, the retry on a lost
sqlite write lock, the client and "create the experiment if missing".
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

__all__ = ["LOCAL_STORE_DIR", "artifact_root", "borrowed_tracking", "client_for", "ensure_experiment", "recorded_uri",
           "retry", "store_lock", "tracking_uri"]

_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")

#: The local store's folder in the working directory (``mlflow.db`` and ``artifacts/``).
LOCAL_STORE_DIR = "riskmodel-mlflow"


def tracking_uri(fallback: str | None = None) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else ``fallback`` if given (e.g. the store a night's
    manifest records), else the local sqlite store in the working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or fallback
    if uri:
        return uri
    store = Path.cwd() / LOCAL_STORE_DIR
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def recorded_uri(uri: str) -> str:
    """``uri`` as a record another process can use: a relative sqlite path made absolute
    (it was relative to this working directory), any user name or password left out."""
    if uri.startswith("sqlite:///") and not uri[len("sqlite:///"):].startswith("/"):
        return f"sqlite:///{Path(uri[len('sqlite:///'):]).resolve()}"
    parts = urlsplit(uri)
    if parts.username is not None or parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=host))
    return uri


def artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        root = db.parent / "artifacts"
        root.mkdir(parents=True, exist_ok=True)
        return root.resolve().as_uri()
    return None


@contextlib.contextmanager
def store_lock(uri: str):
    """Serialise first-time store setup between processes sharing a sqlite file."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///"):]).with_suffix(".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def retry(fn, *args, attempts: int = 8, **kwargs):
    """Retry an MLflow call that lost a sqlite write lock to another process."""
    for i in range(attempts):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only lock errors are retried
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * (i + 1) + np.random.default_rng().random() * 0.3)
    return None  # pragma: no cover


def client_for(uri: str | None = None):
    """An ``MlflowClient`` on ``uri`` (default :func:`tracking_uri`) for tracking and registry.

    The URI is given to the client only: MLflow's process-wide tracking and registry URIs
    (and the environment variables MLflow derives from them) are left as they are.
    """
    from mlflow import MlflowClient

    uri = uri or tracking_uri()
    with store_lock(uri):
        client = retry(MlflowClient, tracking_uri=uri, registry_uri=uri)
        retry(client.search_experiments, max_results=1)  # creates / migrates the store once
    return client


@contextlib.contextmanager
def borrowed_tracking(uri: str):
    """MLflow's fluent API (``mlflow.start_run``, ``mlflow.pyfunc.log_model``) pointed at
    ``uri`` for the block, and everything it changed put back afterwards.

    ``mlflow.set_tracking_uri`` also writes ``MLFLOW_TRACKING_URI`` into the environment
    (and ``set_registry_uri`` ``MLFLOW_REGISTRY_URI``); both the module settings and the
    environment variables are restored exactly, including "not set".
    """
    import mlflow
    from mlflow.tracking import _model_registry, _tracking_service

    tracking_module = _tracking_service.utils
    registry_module = _model_registry.utils
    saved_env = {name: os.environ.get(name) for name in _URI_VARIABLES}
    saved = (getattr(tracking_module, "_tracking_uri", None), getattr(registry_module, "_registry_uri", None))
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        yield
    finally:
        if getattr(tracking_module, "_tracking_uri", None) != saved[0]:
            mlflow.set_tracking_uri(saved[0]) if saved[0] is not None else _reset_tracking(tracking_module)
        registry_module._registry_uri = saved[1]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _reset_tracking(module) -> None:
    """Back to "no tracking URI set" (``set_tracking_uri(None)`` also resets MLflow's tracer)."""
    import mlflow

    try:
        mlflow.set_tracking_uri(None)
    except Exception:  # noqa: BLE001 - an MLflow that refuses None: clear the module setting
        module._tracking_uri = None


def ensure_experiment(client, uri: str, name: str) -> str:
    """The id of experiment ``name``, created (with the store's artifact root) if missing.

    Safe when several processes create it at once: the loser of the race reads the
    winner's experiment.
    """
    with store_lock(uri):
        exp = retry(client.get_experiment_by_name, name)
        if exp is not None:
            return exp.experiment_id
        try:
            return retry(client.create_experiment, name, artifact_location=artifact_root(uri))
        except Exception as exc:  # noqa: BLE001 - another process created it first
            if "already exists" not in str(exc).lower():
                raise
            return retry(client.get_experiment_by_name, name).experiment_id
