"""The README's main job, end to end: ``riskmodel demo`` on a small city."""

import pytest

from riskmodel.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["demo", "--disputes", "4000", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "Tier counts per station", "Top red cases"):
        assert step in out
    assert "Model: dispute-risk version 1" in out
    assert (tmp_path / "riskmodel-mlflow" / "mlflow.db").exists()
    assert (tmp_path / "out" / "scores.parquet").exists()
