"""The nightly drift report logged to MLflow: a thin shell around :mod:`riskmodel.model`'s
pure drift functions."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..model import monitoring_metrics
from ._store import client_for, ensure_experiment, retry, tracking_uri

__all__ = ["log_monitoring_run"]


def log_monitoring_run(report: Mapping, *, as_of, model_name: str | None, model_version: str | None,
                       experiment: str = "dispute-risk-monitoring", tracking: str | None = None) -> str:
    """Log a drift report as metrics of an MLflow run named by ``as_of``; returns the run id.

    The run lives in ``experiment`` (created if needed) in the store of
    :func:`tracking_uri` and is tagged with the model's name and
    version and the drift status.
    """
    uri = tracking or tracking_uri()
    client = client_for(uri)
    exp_id = ensure_experiment(client, uri, experiment)
    tags = {
        "mlflow.runName": f"monitoring-{pd.Timestamp(as_of).isoformat()}",
        "riskmodel.as_of": str(pd.Timestamp(as_of)),
        "riskmodel.model_name": str(model_name),
        "riskmodel.model_version": str(model_version),
        "riskmodel.drift_status": str(report.get("status")),
    }
    run = retry(client.create_run, exp_id, tags=tags, run_name=tags["mlflow.runName"])
    run_id = run.info.run_id
    try:
        from mlflow.entities import Metric

        stamp = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)
        metrics = [Metric(k, v, stamp, 0) for k, v in monitoring_metrics(report).items()]
        for i in range(0, len(metrics), 900):  # MLflow caps a batch at 1000 metrics
            retry(client.log_batch, run_id, metrics=metrics[i:i + 900])
        retry(client.log_dict, run_id, dict(report), "drift_report.json")
    except Exception:
        retry(client.set_terminated, run_id, status="FAILED")
        raise
    retry(client.set_terminated, run_id)
    return run_id
