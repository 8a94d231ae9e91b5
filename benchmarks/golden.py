"""Golden outputs: prove that a refactor of ``riskmodel`` changes no result, bit for bit.

``write`` runs a fixed, small pipeline through the *public* API only (``import riskmodel as rm``,
names in ``rm.__all__``, the ``riskmodel`` command) and writes every result into a folder;
``compare`` checks two such folders file by file. Private modules (``riskmodel._x``) are never
imported, so the same script runs before and after modules move.

Usage (always with the project's interpreter)::

    .venv/bin/python benchmarks/golden.py write /tmp/golden_a        # 20-40 s (2 cores)
    .venv/bin/python benchmarks/golden.py compare /tmp/golden_a /tmp/golden_b

``compare`` prints one line per file, ``identical`` or ``DIFFERENT`` with the first difference,
and exits 1 if any file differs or exists on one side only (2 on a usage error).

Comparing two git refs (e.g. the commit before a refactor and the working tree)::

    git worktree add /tmp/before REF          # or: mkdir /tmp/before && git archive REF | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before .venv/bin/python benchmarks/golden.py write /tmp/golden_before
    .venv/bin/python benchmarks/golden.py write /tmp/golden_after      # the checked-out code
    .venv/bin/python benchmarks/golden.py compare /tmp/golden_before /tmp/golden_after
    git worktree remove /tmp/before

``PYTHONPATH`` wins over the editable install of ``.venv`` (its finder comes after the path), and
the ``riskmodel`` command run by ``write`` inherits it; ``meta.json`` records which ``riskmodel``
was imported (check it). Run this script from the newer checkout: both sides then run the same
pipeline.

What ``write DIR`` produces (simulation: 3,000 disputes, 2022-01-01 .. 2024-12-31, seed 7):

* ``simulation_events.parquet``, ``simulation_entities.parquet`` - ``rm.simulate_disputes``;
* ``cutoffs.parquet`` - ``make_cutoffs`` + ``make_labels`` (90D, censored rows kept);
* ``features.parquet`` - a ``FeatureBuilder`` (default parameters, the simulation's schema) fitted
  on the events and applied to the uncensored labelled cutoffs;
* ``scores.parquet``, ``explain.parquet`` - ``RiskModel(random_state=0)`` fitted on the cutoffs
  before 2024-01-01; its ``predict`` (``reasons="all"``) and SHAP contributions on the later ones;
* ``run/`` - ``rm.train`` of an embedded experiment (MLflow sqlite store in a temp folder): the
  run's artifacts (backtest CSVs, model card, plots, experiment TOML) and ``mlflow_run.json``
  (params, metrics, tags), ``registry.json`` (the registered version), ``promote.json``
  (``rm.promote``'s decision);
* ``artifact/`` - every file of the registered model: ``MLmodel``, environment files, input
  examples, ``data/riskmodel/booster.txt`` (LightGBM text) and ``riskmodel.json``;
* ``nightly/`` - ``rm.score_batch`` of that model (``models:/...@challenger``) on the events and
  entities as parquet files, as of 2024-07-01, 1,000 disputes per chunk; ``nightly_week_before/``
  - the same job through the ``riskmodel score`` command, as of 2024-06-24, and its stdout in
  ``cli_score_stdout.txt``; ``warnings.json`` - the ``rm.DataWarning`` messages raised;
* ``barometer.parquet`` (by station), ``barometer_city.parquet`` - ``rm.barometer`` of both nights;
* ``sweep_matches.parquet``, ``sweep.json`` - ``rm.sweep`` like the top red case of ``nightly/``;
* ``audit_cases.parquet``, ``audit_summary.json`` - ``rm.audit_outcomes`` of both nights;
* ``meta.json`` - provenance (imported ``riskmodel``, git commit, runtime); never compared.

Nothing is written outside DIR and a temporary folder (deleted at the end, ``--keep-tmp`` keeps
it): MLflow's store, ``TMPDIR`` (``rm.load`` downloads models there), MLflow's and matplotlib's
config and cache folders are pointed there, and MLflow telemetry is off.

Masked in ``compare`` (JSON / YAML keys removed from both sides, parquet columns replaced by
``"<masked>"``; see ``MASKED_KEYS`` and ``MASKED_COLUMNS``): wall-clock times and durations, absolute paths of the temp folder,
fingerprints built from file modification times, MLflow's run ids, logged-model ids and UUIDs,
and the batch's "latest plausible event time" (tomorrow's date). Versions of libraries are kept
(same interpreter on both sides). Everything else, including LightGBM's model text, the PNG plots
and every float, must match exactly.

Not masked on purpose: ``artifact/MLmodel`` names ``flavors.python_function.loader_module``
(``riskmodel._pyfunc`` today). If that module moves, models registered before the move name a
module that no longer exists and ``mlflow.pyfunc.load_model`` fails on them unless the old path
stays importable: a difference there is a real compatibility change, not noise.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

# ------------------------------------------------------------------------------------------
# the fixed pipeline

N_DISPUTES, START, END, SEED = 3_000, "2022-01-01", "2024-12-31", 7
HORIZON = "90D"
HOLDOUT_FROM = "2024-01-01"  # RiskModel fitted on cutoffs before, scored on cutoffs from here
MODEL_NAME = "golden-risk"
NIGHT = "2024-07-01"  # rm.score_batch -> nightly/
NIGHT_BEFORE = "2024-06-24"  # `riskmodel score` -> nightly_week_before/
CHUNK_DISPUTES = 1_000  # several chunks: exercises the cross-chunk context store

# An experiment close to experiments/baseline.toml (overrides, checklist, readable labels), on the
# same simulation, with a smaller bootstrap. Embedded so both sides train the same thing.
EXPERIMENT_TOML = f"""\
name = "golden"
registered_model = "{MODEL_NAME}"

[data]
source = "simulate"
n_disputes = {N_DISPUTES}
start = "{START}"
end = "{END}"
seed = {SEED}

[labels]
horizon = "{HORIZON}"
freq = "MS"
max_inactive = "365D"

[features]
windows = ["7D", "30D", "90D", "365D"]
keyword_windows = ["7D", "30D", "365D"]
streaks = [["mediation_failed", "mediation_success"]]

[model]
n_estimators = 300
random_state = 0

[model.lgbm_params]
learning_rate = 0.05
num_leaves = 15

[tiers]
method = "share"
red = 0.05
yellow = 0.15

[[tiers.overrides]]
name = "threat_with_weapon"
conditions = [["count_threat_7D", ">", 0], ["kw_weapon_7D", ">", 0]]
tier = "red"
reason_zh = "近7天扬言报复且提及凶器"
reason_en = "threat of revenge with a weapon mentioned in the last 7 days"

[backtest]
n_folds = 3
test_period = "90D"
n_bootstrap = 50

[backtest.checklist]
count_threat_90D = 3
count_fight_90D = 2
count_mediation_failed_90D = 2
kw_weapon_30D = 2

[reasons.kind_labels]
threat = ["扬言报复", "threat of revenge"]
fight = ["肢体冲突", "physical fight"]
mediation_failed = ["调解失败", "failed mediation"]

[reasons.column_labels]
category = ["纠纷类型", "category"]
station = ["派出所", "station"]
"""

# ------------------------------------------------------------------------------------------
# what compare masks: (file glob relative to DIR, key path with fnmatch patterns per level)

MASK = "<masked>"
MASKED_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    # score_batch's manifest (API and CLI nights)
    "nightly*/manifest.json": (
        ("timings_s",),  # durations of the stages
        ("input", "events"),  # absolute path of the events parquet in the temp folder
        ("input", "fingerprint"),  # of a file input: names, sizes and *mtimes* of the files
        ("input", "entities"),  # same, for the entities parquet
        ("model", "run_id"),  # MLflow run id (a fresh uuid per training run)
        ("parameters", "latest_plausible_event_time"),  # today + 1 day (events later are rejected)
    ),
    # MLflow's model metadata (YAML)
    "artifact/MLmodel": (
        ("artifact_path",),  # file:// URI in the temp store, contains the logged-model id
        ("model_id",),  # logged-model id (uuid)
        ("model_uuid",),
        ("run_id",),
        ("utc_time_created",),
    ),
    # the training run's data: MLflow's system tags and the durations of rm.train's stages
    "run/mlflow_run.json": (
        ("tags", "mlflow.runName"),  # "golden-<date>-<time>"
        ("tags", "mlflow.user"),
        ("tags", "mlflow.source.name"),  # path of this script
        ("tags", "mlflow.source.type"),
        ("tags", "mlflow.source.git.commit"),  # commit of the checkout holding this script, not
        ("tags", "mlflow.source.git.branch"),  # of the riskmodel under test; absent when the script
        ("tags", "mlflow.source.git.repoURL"),  # is invoked by a relative path (cwd is the temp folder)
        ("metrics", "time_*_s"),  # time_data_s, time_backtest_s, time_final_fit_s
    ),
    # the registered version: timestamps, run id, logged-model id and its storage URI
    "run/registry.json": (
        ("creation_timestamp",),
        ("last_updated_timestamp",),
        ("run_id",),
        ("source",),
        ("model_id",),
        ("tags", "riskmodel.gate", "at"),  # a JSON string tag (rm.promote's record): masked inside
    ),
    # rm.promote's record: the wall-clock time of the decision
    "run/promote.json": (("at",),),
}
# Parquet columns holding a volatile value (the MLflow run id of the scoring model).
# The audit and the sweep carry the score columns along.
MASKED_COLUMNS: dict[str, tuple[str, ...]] = {
    "nightly*/scores.parquet": ("run_id",),
    "nightly*/worklists.parquet": ("run_id",),
    "audit_cases.parquet": ("run_id",),
    "sweep_matches.parquet": ("run_id",),
}
# Provenance only: differs by construction (paths, commit, runtime).
NOT_COMPARED = ("meta.json",)
# Parsed as YAML (for masking) rather than compared byte by byte.
YAML_FILES = ("artifact/MLmodel",)


# ------------------------------------------------------------------------------------------
# write


def _private_environment(tmp: Path) -> dict[str, str]:
    """Environment that keeps MLflow and matplotlib inside ``tmp`` (never the home folder)."""
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow' / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MPLCONFIGDIR": str(tmp / "mplconfig"),
        "XDG_CONFIG_HOME": str(tmp / "xdg-config"),
        "XDG_CACHE_HOME": str(tmp / "xdg-cache"),
        "TMPDIR": str(tmp / "tmp"),
    }
    for key in ("MPLCONFIGDIR", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "TMPDIR"):
        Path(env[key]).mkdir(parents=True, exist_ok=True)
    (tmp / "mlflow").mkdir(parents=True, exist_ok=True)
    return env


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False, sort_keys=True, default=str) + "\n",
                    encoding="utf-8")


def _git_head(folder: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True)
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def _riskmodel_command() -> str:
    beside = Path(sys.executable).parent / "riskmodel"
    found = str(beside) if beside.exists() else shutil.which("riskmodel")
    if not found:
        raise SystemExit("golden: the `riskmodel` command is not installed next to this python.")
    return found


def write(out: Path, *, keep_tmp: bool = False, label: str | None = None) -> None:
    t_start = time.perf_counter()
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"golden: {out} exists and is not empty; give a new folder.")
    out.mkdir(parents=True, exist_ok=True)
    out = out.resolve()
    tmp = Path(tempfile.mkdtemp(prefix="riskmodel-golden-"))
    env = _private_environment(tmp)
    os.environ.update(env)  # before riskmodel (and so mlflow, matplotlib) is imported
    tempfile.tempdir = env["TMPDIR"]  # rm.load downloads each model into a new temp folder
    tracking = env["MLFLOW_TRACKING_URI"]
    cwd = Path.cwd()
    os.chdir(tmp)  # anything written to the working directory lands in the temp folder
    try:
        _write_all(out, tmp, tracking)
    finally:
        os.chdir(cwd)
        if keep_tmp:
            print(f"temp folder kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    import riskmodel as rm

    seconds = time.perf_counter() - t_start
    _write_json(out / "meta.json", {
        "label": label,
        "riskmodel_file": rm.__file__,
        "riskmodel_version": rm.__version__,
        "git_head": _git_head(Path(rm.__file__).parent),
        "python": sys.version,
        "pythonpath": os.environ.get("PYTHONPATH"),
        "seconds": round(seconds, 1),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    n_files = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"wrote {n_files} files to {out} in {seconds:.1f} s (riskmodel from {Path(rm.__file__).parent})")


def _write_all(out: Path, tmp: Path, tracking: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    import riskmodel as rm

    caught: list[dict] = []

    def record_warning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, rm.DataWarning):
            caught.append({"category": category.__name__, "message": str(message)})
        else:
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.simplefilter("always", rm.DataWarning)
    warnings.showwarning = record_warning

    clock = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        print(f"  {name:<40s} {now - clock[0]:6.1f} s", flush=True)
        clock[0] = now

    # 1. simulation, snapshots, labels, features -------------------------------------------
    sim = rm.simulate_disputes(N_DISPUTES, start=START, end=END, seed=SEED)
    schema = sim.schema
    ent = schema.entity_col
    sim.events.to_parquet(out / "simulation_events.parquet")
    sim.entities.to_parquet(out / "simulation_entities.parquet")
    events_path, entities_path = tmp / "input" / "events.parquet", tmp / "input" / "entities.parquet"
    events_path.parent.mkdir()
    sim.events.to_parquet(events_path, index=False)
    sim.entities.to_parquet(entities_path, index=False)
    step("simulate")

    prepared = rm.prepare_events(sim.events, schema)
    cutoffs = rm.make_cutoffs(prepared, schema, entities=sim.entities)
    labelled = rm.make_labels(prepared, cutoffs, schema, horizon=HORIZON)
    labelled.to_parquet(out / "cutoffs.parquet")
    known = labelled[~labelled["censored"]].drop(columns="censored")
    builder = rm.FeatureBuilder(schema=schema).fit(prepared, entities=sim.entities)
    features = builder.transform(prepared, known, entities=sim.entities)
    features.to_parquet(out / "features.parquet")
    step("cutoffs, labels, features")

    # 2. a RiskModel fitted directly, scored on held-out cutoffs ----------------------------
    train_rows = known[known["as_of"] < HOLDOUT_FROM]
    holdout = known[known["as_of"] >= HOLDOUT_FROM][[ent, "as_of"]]
    model = rm.RiskModel(schema=schema, random_state=0).fit(prepared, train_rows, entities=sim.entities)
    scores = model.predict(prepared, holdout, entities=sim.entities, reasons="all")
    scores.to_parquet(out / "scores.parquet")
    held_features = model.transform_features(prepared, holdout, entities=sim.entities)
    model.explain(held_features).to_parquet(out / "explain.parquet")
    step("RiskModel fit, predict, explain")

    # 3. rm.train with tracking; the run's and the registered model's files -----------------
    config_path = tmp / "golden.toml"
    config_path.write_text(EXPERIMENT_TOML, encoding="utf-8")
    result = rm.train(rm.load_config(config_path), tracking=tracking)
    promoted = rm.promote(MODEL_NAME, tracking=tracking)
    step("rm.train, rm.promote")

    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    run_dir = out / "run"
    mlflow.artifacts.download_artifacts(artifact_uri=f"runs:/{result.run_id}/", dst_path=str(run_dir),
                                        tracking_uri=tracking)
    run = client.get_run(result.run_id)
    _write_json(run_dir / "mlflow_run.json", {"params": dict(run.data.params), "metrics": dict(run.data.metrics),
                                              "tags": dict(run.data.tags)})
    mv = client.get_model_version(MODEL_NAME, result.version)
    _write_json(run_dir / "registry.json", {
        "name": mv.name, "version": mv.version, "aliases": sorted(mv.aliases), "tags": dict(mv.tags),
        "description": mv.description, "status": mv.status, "run_id": mv.run_id, "source": mv.source,
        "model_id": getattr(mv, "model_id", None), "creation_timestamp": mv.creation_timestamp,
        "last_updated_timestamp": mv.last_updated_timestamp,
        "registered_model_tags": dict(client.get_registered_model(MODEL_NAME).tags),
    })
    _write_json(run_dir / "promote.json", promoted)
    model_files = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{MODEL_NAME}/{result.version}", dst_path=str(tmp / "model"), tracking_uri=tracking))
    for path in sorted(p for p in model_files.rglob("*") if p.is_file()):
        target = out / "artifact" / path.relative_to(model_files)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    step("MLflow files")

    # 4. nightly batch: the API as of NIGHT, the command as of NIGHT_BEFORE -----------------
    predictor = rm.load(f"models:/{MODEL_NAME}@challenger", tracking=tracking)
    rm.score_batch(model=predictor, events=events_path, entities=entities_path, as_of=NIGHT,
                   out=out / "nightly", chunk_disputes=CHUNK_DISPUTES, reasons="all")
    step("rm.score_batch")
    cli = subprocess.run(
        [_riskmodel_command(), "score", "--model", f"models:/{MODEL_NAME}/{result.version}",
         "--events", str(events_path), "--entities", str(entities_path), "--as-of", NIGHT_BEFORE,
         "--out", "nightly_week_before", "--chunk-disputes", str(CHUNK_DISPUTES)],
        cwd=out, env=dict(os.environ), capture_output=True, text=True,
    )
    if cli.returncode != 0:
        raise SystemExit(f"golden: `riskmodel score` failed ({cli.returncode}):\n{cli.stdout}\n{cli.stderr}")
    (out / "cli_score_stdout.txt").write_text(cli.stdout, encoding="utf-8")
    step("riskmodel score (command)")

    # 5. operations on the nightly folders ---------------------------------------------------
    nights = [out / "nightly_week_before", out / "nightly"]
    rm.barometer(nights).to_parquet(out / "barometer.parquet")
    rm.barometer(nights, area=None).to_parquet(out / "barometer_city.parquet")
    tonight = rm.read_nightly(out / "nightly").scores
    red = tonight[tonight["tier"] == "red"].sort_values(["probability", ent], ascending=[False, True])
    case = str(red[ent].iloc[0])
    found = rm.sweep(out / "nightly", like=case, model=predictor, events=sim.events, entities=sim.entities)
    found.matches.to_parquet(out / "sweep_matches.parquet")
    _write_json(out / "sweep.json", {"like": case, "pattern": str(found.pattern), "case": found.case,
                                     "by_area": found.by_area().to_dict(orient="records")})
    audit = rm.audit_outcomes(nights, sim.events)
    audit.cases.to_parquet(out / "audit_cases.parquet")
    _write_json(out / "audit_summary.json", audit.summary)
    _write_json(out / "warnings.json", caught)
    step("barometer, sweep, audit")


# ------------------------------------------------------------------------------------------
# compare


def _masks_for(rel: str, table: dict) -> tuple:
    return tuple(m for pattern, masks in table.items() if fnmatch.fnmatch(rel, pattern) for m in masks)


def _mask(data, path: tuple[str, ...]):
    """Remove the keys at ``path`` (fnmatch pattern per level), in place: neither their values nor
    their presence are compared (MLflow adds its ``mlflow.source.git.*`` tags only when it finds
    the script's repository, which depends on how the script was invoked).

    A string on the way that holds a JSON object (an MLflow tag) is parsed and masked inside.
    """
    if not path or not isinstance(data, dict):
        return
    head, rest = path[0], path[1:]
    for key in list(data):
        if fnmatch.fnmatchcase(str(key), head):
            if not rest:
                del data[key]
                continue
            if isinstance(data[key], str):
                try:
                    data[key] = json.loads(data[key])
                except ValueError:
                    continue
            _mask(data[key], rest)


def _first_difference(a, b, where: str = "") -> str | None:
    """Path and values of the first structural difference (NaN equals NaN), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if key not in a or key not in b:
                return f"{where}/{key}: only in {'B' if key not in a else 'A'}"
            found = _first_difference(a[key], b[key], f"{where}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{where}: list of {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = _first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    if type(a) is not type(b) or a != b:
        return f"{where or '/'}: {a!r:.200} != {b!r:.200}"
    return None


def _load_structured(path: Path, rel: str):
    text = path.read_text(encoding="utf-8")
    if rel in YAML_FILES:
        import yaml

        return yaml.safe_load(text)
    return json.loads(text)


def _compare_structured(a: Path, b: Path, rel: str) -> str | None:
    da, db = _load_structured(a, rel), _load_structured(b, rel)
    for path in _masks_for(rel, MASKED_KEYS):
        _mask(da, path)
        _mask(db, path)
    return _first_difference(da, db)


def _compare_parquet(a: Path, b: Path, rel: str) -> str | None:
    fa, fb = pd.read_parquet(a), pd.read_parquet(b)
    for col in _masks_for(rel, MASKED_COLUMNS):
        for frame in (fa, fb):
            if col in frame.columns:
                frame[col] = MASK
    try:
        pd.testing.assert_frame_equal(fa, fb, check_exact=True)
    except AssertionError as exc:
        message = " ".join(str(exc).split())
        return (_first_cell_difference(fa, fb) or message)[:600]
    return None


def _first_cell_difference(fa: pd.DataFrame, fb: pd.DataFrame) -> str | None:
    """The first differing cell, when both frames have the same shape, index and columns."""
    if fa.shape != fb.shape or not fa.columns.equals(fb.columns) or not fa.index.equals(fb.index):
        return None
    for i, col in enumerate(fa.columns):
        a, b = fa.iloc[:, i], fb.iloc[:, i]
        if a.dtype != b.dtype:
            return f"column {col!r}: dtype {a.dtype} != {b.dtype}"
        try:
            same = (a.astype(object) == b.astype(object)).to_numpy(dtype=bool) | (a.isna() & b.isna()).to_numpy()
        except (TypeError, ValueError):
            continue
        if not same.all():
            row = int((~same).argmax())
            return (f"column {col!r}, row {row} (index {fa.index[row]!r}): {a.iloc[row]!r:.200} != "
                    f"{b.iloc[row]!r:.200}; {int((~same).sum())} of {len(same)} rows differ")
    return None


def _compare_bytes(a: Path, b: Path) -> str | None:
    ba, bb = a.read_bytes(), b.read_bytes()
    if ba == bb:
        return None
    offset = next((i for i, (x, y) in enumerate(zip(ba, bb)) if x != y), min(len(ba), len(bb)))
    try:
        la, lb = ba.decode("utf-8").splitlines(), bb.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return f"binary, {len(ba)} vs {len(bb)} bytes, first difference at byte {offset}"
    line = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
    left = la[line] if line < len(la) else "<end of file>"
    right = lb[line] if line < len(lb) else "<end of file>"
    return f"line {line + 1}: {left[:200]!r} != {right[:200]!r}"


def compare_file(a: Path, b: Path, rel: str) -> str | None:
    """None when identical, else the first difference."""
    if rel.endswith(".parquet"):
        return _compare_parquet(a, b, rel)
    if rel in YAML_FILES or rel.endswith(".json"):
        return _compare_structured(a, b, rel)
    return _compare_bytes(a, b)


def compare(dir_a: Path, dir_b: Path) -> int:
    for d in (dir_a, dir_b):
        if not d.is_dir():
            print(f"golden: {d} is not a folder", file=sys.stderr)
            return 2
    for d, label in ((dir_a, "A"), (dir_b, "B")):
        meta = d / "meta.json"
        if meta.exists():
            info = json.loads(meta.read_text(encoding="utf-8"))
            print(f"{label}: {d}  riskmodel {info.get('riskmodel_file')}  git {info.get('git_head')}  "
                  f"label {info.get('label')}  ({info.get('seconds')} s)")
    files_a = {str(p.relative_to(dir_a)) for p in dir_a.rglob("*") if p.is_file()}
    files_b = {str(p.relative_to(dir_b)) for p in dir_b.rglob("*") if p.is_file()}
    n_diff = n_same = 0
    for rel in sorted(files_a | files_b):
        if rel in NOT_COMPARED:
            print(f"{rel}: not compared (provenance)")
            continue
        if rel not in files_a or rel not in files_b:
            print(f"{rel}: DIFFERENT (only in {'A' if rel in files_a else 'B'})")
            n_diff += 1
            continue
        try:
            diff = compare_file(dir_a / rel, dir_b / rel, rel)
        except Exception as exc:  # noqa: BLE001 - an unreadable file is a difference, keep going
            diff = f"could not compare: {type(exc).__name__}: {exc}"
        if diff:
            print(f"{rel}: DIFFERENT ({diff})")
            n_diff += 1
        else:
            print(f"{rel}: identical")
            n_same += 1
    print(f"{n_same} identical, {n_diff} different")
    return 1 if n_diff else 0


# ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write", help="run the fixed pipeline and write its outputs into DIR")
    p.add_argument("dir", type=Path)
    p.add_argument("--keep-tmp", action="store_true", help="keep the temp folder (MLflow store, inputs)")
    p.add_argument("--label", default=None, help="free text recorded in meta.json, e.g. the git commit")
    p = sub.add_parser("compare", help="compare two folders written by `write`")
    p.add_argument("dir_a", type=Path)
    p.add_argument("dir_b", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.dir, keep_tmp=args.keep_tmp, label=args.label)
        return 0
    return compare(args.dir_a, args.dir_b)


if __name__ == "__main__":
    sys.exit(main())
