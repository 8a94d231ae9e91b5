"""Mutation check: does the test suite notice when an operational promise is broken?

Each mutation is one small change to the source (a comparison flipped, a step skipped, a
field dropped from a record) that breaks something a user relies on: overrides only lift,
scores are calibrated, a changed input is never resumed, the gate refuses on each criterion,
every row and dispute is accounted for, a killed run leaves nothing half done. The script
copies the repository's package and tests into a temporary folder once, then, one mutation
at a time, changes the copy, runs the related test files against it (``PYTHONPATH`` set to
the copy, stopping at the first failure), and restores the file. A mutation is *caught*
when the tests fail.

Usage (from the repository, with the project's interpreter)::

    .venv/bin/python benchmarks/mutations.py                 # every mutation, a table at the end
    .venv/bin/python benchmarks/mutations.py --list          # names only
    .venv/bin/python benchmarks/mutations.py --only calibrator_skipped,override_demotes
    .venv/bin/python benchmarks/mutations.py --baseline      # first check the tests pass unmutated

Takes about 10-20 minutes on two busy cores (most of it the registry's training runs). Exit
status 1 if a mutation is not caught (or no longer applies to the source), else 0. Not a test:
pytest collects ``tests/`` only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    """Replace ``old`` (which must occur exactly once in ``path``) by ``new``."""

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    select: str | None = None  # a pytest -k expression, to skip unrelated slow tests
    why: str = ""


BATCH = ("tests/test_batch.py",)
NOT_MEMORY = "not memory"
GATE = "gate_refuses_on_each or against_the_champion"

MUTATIONS = [
    # --- issue 23's list ------------------------------------------------------------------
    Mutation("override_demotes", "riskmodel/model/_tiers.py",
             "_RANK[t] > _RANK[rule.tier]", "_RANK[t] != _RANK[rule.tier]",
             ("tests/test_tiers.py", "tests/test_model.py"),
             why="a yellow override demotes a red case"),
    Mutation("calibrator_skipped", "riskmodel/model/_model.py",
             "prob = self.calibrator_.transform(self._booster_predict(matrix))",
             "prob = self._booster_predict(matrix)",
             ("tests/test_model.py",), why="scores are LightGBM's raw output"),
    Mutation("calibrator_max_log_loss", "riskmodel/model/_calibration.py",
             "method = min(losses, key=losses.get)", "method = max(losses, key=losses.get)",
             ("tests/test_model.py",), why="auto calibration keeps the worse method on the latest rows"),
    Mutation("resume_ignores_changed_state", "riskmodel/batch/_job.py",
             "        if old != state:\n            shutil.rmtree(work)",
             "        if old != state and False:\n            shutil.rmtree(work)",
             BATCH, NOT_MEMORY, why="a killed run's work is resumed with another input"),
    Mutation("gate_auc_tolerance_ignored", "riskmodel/lifecycle/_registry.py",
             "need = ref + auc_tolerance if strictly else ref - auc_tolerance",
             "need = ref + auc_tolerance if strictly else ref",
             ("tests/test_registry.py",), GATE, why="the AUC tolerance is not honoured"),
    Mutation("gate_brier_tolerance_absolute", "riskmodel/lifecycle/_registry.py",
             "limit = ref if strictly else ref * (1 + brier_tolerance)",
             "limit = ref if strictly else ref + brier_tolerance",
             ("tests/test_registry.py",), GATE, why="the Brier tolerance is absolute, not relative"),
    Mutation("gate_same_fold_unchecked", "riskmodel/lifecycle/_registry.py",
             'if compared != str(champion.version) or (basis == "same_rows" and "champion_roc_auc" not in m):',
             'if basis == "same_rows" and "champion_roc_auc" not in m:',
             ("tests/test_registry.py",), GATE, why="figures measured against another champion pass"),
    Mutation("gate_first_model_base_rate_unchecked", "riskmodel/lifecycle/_registry.py",
             '        brier(m.get("base_rate_brier", np.inf), "base_rate", strictly=True)\n', "",
             ("tests/test_registry.py",), GATE, why="a first model need not beat the base rate's Brier"),
    Mutation("not_open_reasons_reordered", "riskmodel/batch/_core.py",
             '    reason[closed] = "closed at or before as_of"  # open at as_of: closed after it (as make_cutoffs)\n'
             '    reason[escalated] = "escalated before as_of"',
             '    reason[escalated] = "escalated before as_of"\n    reason[closed] = "closed at or before as_of"',
             BATCH, NOT_MEMORY, why="an escalated dispute is reported as closed"),
    Mutation("duplicates_not_counted", "riskmodel/batch/_core.py",
             'int(info["duplicates_dropped"])', "0",
             BATCH, NOT_MEMORY, why="dropped duplicate rows are counted nowhere"),
    # --- more -----------------------------------------------------------------------------
    Mutation("resume_forgets_the_model", "riskmodel/batch/_job.py",
             "p.run_id, model_fingerprint(p.model)],", "p.run_id],",
             BATCH, NOT_MEMORY, why="a model retrained into the same folder resumes the old one's work"),
    Mutation("resume_forgets_the_input", "riskmodel/batch/_job.py",
             '"input": source.fingerprint,', '"input": None,',
             BATCH, NOT_MEMORY, why="another events file at the same path resumes the old one's work"),
    Mutation("resume_trusts_files_not_markers", "riskmodel/batch/_tasks.py",
             "        if marker.exists():", '        if any(folder.glob(f"*-{i:05d}.parquet")):',
             BATCH, NOT_MEMORY, why="a chunk killed mid-write counts as done"),
    Mutation("aside_output_left_behind", "riskmodel/batch/_job.py",
             '    for old in out.parent.glob(glob.escape(f".old-{out.name}-") + "*"):\n'
             "        shutil.rmtree(old, ignore_errors=True)",
             "    pass",
             BATCH, NOT_MEMORY, why="the previous output of a run killed between renames stays forever"),
    Mutation("chunk_events_kept", "riskmodel/batch/engines/_local.py",
             "        del raw\n", '        run_local_chunks.__dict__.setdefault("kept", []).append(raw)\n',
             BATCH, "memory", why="every chunk's events stay in memory to the end of the run"),
    Mutation("calibrator_max_log_loss_holdout", "riskmodel/model/_calibration.py",
             "method = min(scores, key=scores.get)", "method = max(scores, key=scores.get)",
             ("tests/test_model.py",), why="protocol='holdout': auto calibration keeps the worse method"),
    Mutation("calibration_ignores_time_order", "riskmodel/model/_calibration.py",
             "idx = np.arange(len(raw)) if order is None else np.asarray(order)", "idx = np.arange(len(raw))",
             ("tests/test_model.py",), why="protocol='holdout': 'later data' is the later rows, not the later times"),
    Mutation("calibration_judged_on_the_first_fold", "riskmodel/model/_model.py",
             "latest = last.valid[rows] if time_folds else None", "latest = folds[0].valid[rows] if time_folds else None",
             ("tests/test_model.py",), why="the calibrator is chosen on the earliest fold, not the latest"),
    Mutation("share_threshold_float_floor", "riskmodel/model/_tiers.py",
             "k = int(np.floor(round(share * len(p), 9)))", "k = int(np.floor(share * len(p)))",
             ("tests/test_tiers.py",), why="red = 29% of 100 cases gives 28"),
    Mutation("precision_cut_inside_ties", "riskmodel/model/_tiers.py",
             "ok = np.flatnonzero(ends & (prec >= precision))", "ok = np.flatnonzero(prec >= precision)",
             ("tests/test_tiers.py",), why="a precision cut splits tied probabilities"),
    Mutation("version_without_description", "riskmodel/lifecycle/_registry.py",
             "tags={f\"riskmodel.{k}\": str(v) for k, v in tags.items()}, description=description,",
             "tags={f\"riskmodel.{k}\": str(v) for k, v in tags.items()},",
             ("tests/test_registry.py",), "killed", why="a registered version lacks its model card"),
]


def _copy_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".hypothesis", "*.egg-info", "riskmodel-mlflow",
                                    ".pytest_cache", "notebooks")
    root = dest / "repo"
    root.mkdir()
    for name in ("riskmodel", "tests", "experiments"):
        shutil.copytree(REPO / name, root / name, ignore=ignore)
    for name in ("pyproject.toml", "setup.cfg"):
        shutil.copy2(REPO / name, root / name)
    return root


def _env(root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root), PYSPARK_PYTHON=sys.executable)
    env.pop("RISKMODEL_DIE_AT", None)
    return env


def _pytest(root: Path, tests: tuple[str, ...], select: str | None) -> tuple[int, str, str]:
    """(exit status, pytest's last line, the first failing test or "")."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-rf", "-p", "no:cacheprovider", "-W", "ignore", *tests]
    if select:
        cmd += ["-k", select]
    done = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    failed = next((line.split()[1] for line in lines if line.startswith(("FAILED ", "ERROR "))), "")
    return done.returncode, (lines[-1] if lines else done.stderr.strip()[-200:]), failed.split("::", 1)[-1]


def run(mutations: list[Mutation], baseline: bool) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="riskmodel-mutations-") as tmp:
        root = _copy_repo(Path(tmp))
        where = subprocess.run([sys.executable, "-c", "import riskmodel; print(riskmodel.__file__)"], cwd=root,
                               env=_env(root), capture_output=True, text=True).stdout.strip()
        if not where.startswith(str(root)):
            raise SystemExit(f"the copy is not what the tests import: riskmodel from {where!r}")
        if baseline:
            for tests, select in sorted({(m.tests, m.select) for m in mutations}, key=str):
                t0 = time.perf_counter()
                code, summary, _ = _pytest(root, tests, select)
                print(f"baseline {' '.join(tests)} -k {select!r}: {summary} ({time.perf_counter() - t0:.0f} s)",
                      flush=True)
                if code != 0:
                    raise SystemExit("the tests fail without any mutation; fix that first")
        for m in mutations:
            path = root / m.path
            original = path.read_text(encoding="utf-8")
            if original.count(m.old) != 1:
                rows.append({"mutation": m.name, "why": m.why, "tests": m.tests, "caught": "STALE (source changed)",
                             "seconds": 0.0, "summary": f"{original.count(m.old)} matches", "failed": ""})
                print(f"{m.name}: STALE", flush=True)
                continue
            path.write_text(original.replace(m.old, m.new), encoding="utf-8")
            t0 = time.perf_counter()
            try:
                code, summary, failed = _pytest(root, m.tests, m.select)
            finally:
                path.write_text(original, encoding="utf-8")
            seconds = time.perf_counter() - t0
            caught = "yes" if code != 0 else "NO"
            rows.append({"mutation": m.name, "why": m.why, "tests": m.tests, "caught": caught, "seconds": seconds,
                         "summary": summary, "failed": failed})
            print(f"{m.name}: caught {caught} in {seconds:.0f} s by {failed or '-'} ({summary})", flush=True)
    return rows


def table(rows: list[dict], mutations: list[Mutation]) -> str:
    select = {m.name: m.select for m in mutations}
    out = ["| mutation | what breaks | tests | caught | first failing test | seconds |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        tests = ", ".join(Path(t).name for t in r["tests"]) + (f" (-k {select[r['mutation']]!r})"
                                                                if select[r["mutation"]] else "")
        out.append(f"| {r['mutation']} | {r['why']} | {tests} | {r['caught']} | {r['failed'] or '-'} "
                   f"| {r['seconds']:.0f} |")
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutation names")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--baseline", action="store_true", help="first run each test selection unmutated")
    args = parser.parse_args(argv)
    chosen = MUTATIONS
    if args.only:
        names = set(args.only.split(","))
        unknown = names - {m.name for m in MUTATIONS}
        if unknown:
            parser.error(f"unknown mutation(s) {sorted(unknown)}; see --list")
        chosen = [m for m in MUTATIONS if m.name in names]
    if args.list:
        for m in chosen:
            print(f"{m.name:40s} {m.path}: {m.why}")
        return 0
    rows = run(chosen, args.baseline)
    print()
    print(table(rows, chosen))
    return 0 if all(r["caught"] == "yes" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
