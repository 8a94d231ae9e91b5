"""Your own extract, end to end: every command on logs built here (not by the simulator).

Each flavour is a foreign extract: its own column names, English kinds, optional roles
switched off in its TOML, its own id dtype, file format and string dtypes. For each, the
CLI runs train, promote, score (two nights), barometer, sweep, report with outcomes, and
the pyfunc scores the frame in several dtype flavours: no traceback, every input dispute
accounted for, and the outputs name the extract's own columns.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import sqlite_tracking_store

import riskmodel as rm
from riskmodel.cli import main

pytestmark = pytest.mark.slow  # trains a small model per extract: about 40 s each

T0, T_END = pd.Timestamp("2022-06-01"), pd.Timestamp("2025-06-30")
NIGHTS = ("2025-03-01", "2025-03-08")
KINDS = ("call", "argument", "threat", "mediation")


def dispute_histories(n: int, seed: int, *, kinds=KINDS, outcome="assault") -> pd.DataFrame:
    """A small city of our own: ``n`` disputes whose threats, more frequent for riskier
    disputes, are sometimes followed by an outcome event. Columns ``case``, ``t``,
    ``kind``, ``note``, ``person``."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        t = T0 + pd.Timedelta(days=int(rng.integers(0, 1000)), hours=int(rng.integers(0, 24)))
        risk = float(rng.beta(1.2, 3.0))
        p = np.array([0.45, 0.3, 0.05 + 0.45 * risk, 0.2])
        people = [f"P{rng.integers(0, 4 * n)}" for _ in range(2)]
        for j in range(int(rng.integers(3, 14))):
            t += pd.Timedelta(hours=int(rng.integers(6, 24 * 25)))
            if t >= T_END:
                break
            kind = str(rng.choice(kinds, p=p / p.sum()))
            rows.append((i, t, kind, f"{kind} #{j} reported by neighbour", people[j % 2]))
            if kind == kinds[2] and rng.random() < 0.7 * risk:
                t2 = t + pd.Timedelta(days=int(rng.integers(2, 40)))
                if t2 < T_END:
                    rows.append((i, t2, outcome, "victim taken to hospital", people[0]))
                break
    frame = pd.DataFrame(rows, columns=["case", "t", "kind", "note", "person"])
    return frame.sort_values("t", kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------
# the extracts


@dataclass
class Extract:
    name: str
    folder: Path
    id_col: str
    events: Path
    schema: dict
    entities: Path | None = None
    extra_toml: str = ""
    #: (file line, reason fragment) of the rows the extract makes invalid
    bad_lines: list = field(default_factory=list)
    disputes: set = field(default_factory=set)  #: every non-null dispute id in the input, as text

    def toml(self, **data) -> Path:
        lines = [f'name = "{self.name}"', f'registered_model = "own-{self.name}"', "", "[data]",
                 'source = "files"', f'events = "{self.events.name}"']
        if self.entities is not None:
            lines.append(f'entities = "{self.entities.name}"')
        lines += [f"{k} = {json.dumps(v)}" for k, v in data.items()]
        lines += ["", "[schema]"] + [f"{k} = {json.dumps(v)}" for k, v in self.schema.items()]
        lines += ["", "[labels]", 'horizon = "60D"', 'freq = "MS"', "",
                  "[model]", "n_estimators = 40", "early_stopping_rounds = 15", "",
                  "[model.lgbm_params]", "learning_rate = 0.1", "min_child_samples = 20", "num_threads = 1", "",
                  "[backtest]", "n_folds = 2", 'test_period = "120D"', "n_bootstrap = 20", self.extra_toml]
        path = self.folder / "own.toml"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path


def _line_of(path: Path, marker: str) -> int:
    """The file line (header = 1) where ``marker`` first appears, counted independently of
    the csv module: newlines before it, plus one."""
    text = path.read_text(encoding="utf-8")
    return text[: text.index(marker)].count("\n") + 1


def events_only_csv(folder: Path) -> Extract:
    """case_no / ts / event_type / note, times as strings, no person, no entities, dirty rows
    spread through the file, a narrative with a quoted line break."""
    log = dispute_histories(320, seed=1)
    frame = pd.DataFrame({"case_no": "C" + log["case"].astype(str).str.zfill(5),
                          "ts": log["t"].dt.strftime("%Y-%m-%d %H:%M:%S"), "event_type": log["kind"],
                          "note": log["note"]})
    frame.loc[3, "note"] = 'said "I will burn it down",\nthen left'
    dirty = [("", "2023-05-01 10:00:00", "call", "dirty-empty-id"),
             ("C00001", "31/02/2024 25:61", "call", "dirty-bad-time"),
             ("C00002", "yesterday", "argument", "dirty-yesterday"),
             ("C00003", "2099-01-01 00:00:00", "call", "dirty-future"),
             ("C99999", "not a time", "call", "dirty-dead-dispute")]
    parts, at = [], [40, 400, 800, 1200, 1500]
    start = 0
    for row, pos in zip(dirty, at, strict=True):
        parts += [frame.iloc[start:pos], pd.DataFrame([row], columns=frame.columns)]
        start = pos
    parts += [frame.iloc[start:], frame.iloc[[10]]]  # an exact duplicate
    events = pd.concat(parts, ignore_index=True)
    path = folder / "events.csv"
    events.to_csv(path, index=False)
    reasons = ["null id", "unparseable time", "unparseable time", "time in the future", "unparseable time"]
    bad = [(_line_of(path, row[3]), reason) for row, reason in zip(dirty, reasons, strict=True)]
    return Extract("events_only_csv", folder, "case_no", path, bad_lines=bad,
                   disputes=set(events["case_no"].dropna().astype(str)) - {""},
                   schema={"entity_col": "case_no", "time_col": "ts", "kind_col": "event_type", "text_col": "note",
                           "party_col": "", "entity_categorical_cols": [], "entity_time_cols": [],
                           "group_cols": [], "closed_col": "", "outcome_kinds": ["assault"]})


def integer_ids(folder: Path) -> Extract:
    """Parquet, integer dispute and person ids, datetime times, no text, no entities."""
    log = dispute_histories(300, seed=2)
    events = pd.DataFrame({"id": (100_000 + log["case"]).astype("int64"), "when": log["t"],
                           "what": log["kind"], "person": log["person"].str[1:].astype("int64")})
    path = folder / "events.parquet"
    events.to_parquet(path, index=False)
    return Extract("integer_ids", folder, "id", path, disputes=set(events["id"].astype(str)),
                   schema={"entity_col": "id", "time_col": "when", "kind_col": "what", "text_col": "",
                           "party_col": "person", "entity_categorical_cols": [], "entity_time_cols": [],
                           "group_cols": [], "closed_col": "", "outcome_kinds": ["assault"]})


def long_case_numbers(folder: Path) -> Extract:
    """CSV with 18-digit case numbers (all digits: they must stay text, not int64 or float),
    timezone-aware times, multi-word English kinds, one row without an id."""
    kinds = ("Phone Call", "Verbal Argument", "Threat of Revenge", "Mediation Meeting")
    log = dispute_histories(300, seed=3, kinds=kinds, outcome="Assault / Injury")
    ids = "4401062024" + (10_000_000 + log["case"] * 7919).astype(str).str.zfill(8)
    times = (log["t"].dt.tz_localize("Asia/Shanghai")).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    events = pd.DataFrame({"case_number": ids, "occurred": times, "incident": log["kind"],
                           "narrative_en": log["note"]})
    events.loc[7, "case_number"] = None
    path = folder / "events.csv"
    events.to_csv(path, index=False)
    assert len(ids.iloc[0]) == 18
    return Extract("long_case_numbers", folder, "case_number", path,
                   bad_lines=[(9, "null id")], disputes=set(events["case_number"].dropna()),
                   schema={"entity_col": "case_number", "time_col": "occurred", "kind_col": "incident",
                           "text_col": "narrative_en", "party_col": "", "entity_categorical_cols": [],
                           "entity_time_cols": [], "group_cols": [], "closed_col": "",
                           "outcome_kinds": ["Assault / Injury"]})


def arrow_categorical(folder: Path) -> Extract:
    """Parquet written from Arrow strings and categoricals, UTC-aware times, no text, no party."""
    log = dispute_histories(300, seed=4)
    events = pd.DataFrame({"dispute": ("X-" + log["case"].astype(str)).astype("string[pyarrow]"),
                           "stamp": log["t"].dt.tz_localize("UTC"),
                           "category_of_event": log["kind"].astype("category"),
                           "source": pd.Categorical(np.where(log.index % 3 == 0, "app", "phone"))})
    path = folder / "events.parquet"
    events.to_parquet(path, index=False)
    return Extract("arrow_categorical", folder, "dispute", path, disputes=set(events["dispute"].astype(str)),
                   schema={"entity_col": "dispute", "time_col": "stamp", "kind_col": "category_of_event",
                           "text_col": "", "party_col": "", "event_attribute_cols": ["source"],
                           "entity_categorical_cols": [], "entity_time_cols": [], "group_cols": [],
                           "closed_col": "", "outcome_kinds": ["assault"]})


def entities_without_station(folder: Path) -> Extract:
    """Events with parties and narratives plus an entities table under its own id name, with a
    category, a registration date and a closing date, but no station (no group role)."""
    log = dispute_histories(300, seed=5)
    events = pd.DataFrame({"matter": "M" + log["case"].astype(str), "at": log["t"].dt.strftime("%d %b %Y %H:%M"),
                           "type": log["kind"], "summary": log["note"], "person_ref": log["person"]})
    first = log.groupby("case")["t"].min()
    rng = np.random.default_rng(5)
    ents = pd.DataFrame({"matter_ref": "M" + first.index.astype(str),
                         "dispute_type": rng.choice(["neighbour", "family", "debt", "wages"], len(first)),
                         "registered": (first - pd.Timedelta(days=1)).dt.date.astype(str).to_numpy(),
                         "closed_on": np.where(rng.random(len(first)) < 0.2,
                                               (first + pd.Timedelta(days=200)).dt.date.astype(str), "")})
    events.to_csv(folder / "events.csv", index=False)
    ents.to_csv(folder / "matters.csv", index=False)
    return Extract("entities_without_station", folder, "matter", folder / "events.csv",
                   entities=folder / "matters.csv", disputes=set(events["matter"]),
                   schema={"entity_col": "matter", "time_col": "at", "kind_col": "type", "text_col": "summary",
                           "party_col": "person_ref", "entities_id_col": "matter_ref",
                           "entity_categorical_cols": ["dispute_type"], "entity_time_cols": ["registered"],
                           "group_cols": [], "closed_col": "closed_on", "outcome_kinds": ["assault"]})


FLAVOURS = {f.__name__: f for f in (events_only_csv, integer_ids, long_case_numbers, arrow_categorical,
                                    entities_without_station)}


# ------------------------------------------------------------------------------------------
# running the CLI


def cli(*argv) -> tuple[int, str, str]:
    """``riskmodel ARGV`` in this process: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


@dataclass
class Run:
    extract: Extract
    uri: str
    model: str
    commands: dict = field(default_factory=dict)  #: name -> (status, stdout, stderr)

    def night(self, day: str) -> Path:
        return self.extract.folder / "nights" / day


_RUNS: dict[str, Run] = {}


def run_every_command(name: str, tmp_path_factory) -> Run:
    """Build extract ``name`` and run every command on it once per test session."""
    if name in _RUNS:
        return _RUNS[name]
    folder = tmp_path_factory.mktemp(name)
    extract = FLAVOURS[name](folder)
    with sqlite_tracking_store(folder) as uri:
        model = f"own-{extract.name}"
        result = Run(extract, uri, f"models:/{model}@champion")
        c = result.commands
        config = extract.toml()
        c["train"] = cli("train", "--config", config, *(["--drop-invalid"] if extract.bad_lines else []))
        c["promote"] = cli("promote", "--name", model)
        if c["promote"][0] != 0:  # a tiny extract may not pass the gate: force it, with a reason
            c["promote_forced"] = cli("promote", "--name", model, "--force", "--reason", "test extract")
        entities = ["--entities", extract.entities] if extract.entities else []
        for day in NIGHTS:
            c[f"score {day}"] = cli("score", "--model", result.model, "--events", extract.events, *entities,
                                    "--as-of", day, "--out", result.night(day), "--chunk-disputes", 120)
        nights = [result.night(d) for d in NIGHTS]
        c["barometer"] = cli("barometer", "--scores", *nights, "--out", folder / "barometer.csv",
                             "--plots", folder / "plots")
        scored = nights[-1] / "scores.parquet"
        case = pd.read_parquet(scored)[extract.id_col].astype(str).iloc[0] if scored.exists() else "none"
        c["sweep like"] = cli("sweep", "--scores", nights[-1], "--like", case, *entities,
                              "--out", folder / "sweep.csv")
        c["sweep pattern"] = cli("sweep", "--scores", nights[-1], "--pattern", "probability>0.01 & tier!=blue")
        c["report"] = cli("report", "--scores", nights[-1], "--history", nights[0], "--outcomes", extract.events,
                          "--model", result.model, "--events", extract.events, *entities,
                          "--out", folder / "report.html")
    _RUNS[name] = result
    return result


@pytest.fixture(scope="module", params=list(FLAVOURS))
def run(request, tmp_path_factory) -> Run:
    return run_every_command(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Run:
    """The events-only CSV extract (case_no / ts / event_type / note, dirty rows)."""
    return run_every_command("events_only_csv", tmp_path_factory)


def test_every_command_runs_without_a_traceback(run):
    for command, (status, out, err) in run.commands.items():
        if command == "promote" and status == 1:  # the gate refused: a decision, not an error
            assert out.startswith("REFUSED: "), out  # the verdict first, in words
            continue
        assert status == 0, f"{run.extract.name}: riskmodel {command} exited {status}\n{err[-3000:]}"
        assert "Traceback" not in err and "Traceback" not in out, err


def test_training_counts_every_row_and_skips_absent_families_once(run):
    status, out, err = run.commands["train"]
    assert re.search(r"events: [\d,]+ rows read, [\d,]+ used, [\d,]+ rejected", err)
    if not run.extract.schema.get("party_col"):
        assert "party (party_col is off)" in err
    assert err.count("feature families skipped") <= 1
    client = mlflow.MlflowClient(tracking_uri=run.uri, registry_uri=run.uri)
    version = client.get_model_version_by_alias(f"own-{run.extract.name}", "challenger")
    tags = client.get_run(version.run_id).data.tags
    read, used = int(tags["data.rows_read"]), int(tags["data.rows_used"])
    rejected, dups = int(tags["data.rows_rejected"]), int(tags["data.duplicates_dropped"])
    assert read == used + rejected + dups
    assert rejected == len(run.extract.bad_lines)
    if run.extract.name == "events_only_csv":
        assert dups == 1
        path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="data/rejects.csv",
                                                   tracking_uri=run.uri)
        rejects = pd.read_csv(path)
        assert rejects["line"].tolist() == sorted(line for line, _ in run.extract.bad_lines)
        for line, reason in run.extract.bad_lines:
            assert reason in rejects.set_index("line").loc[line, "reject_reason"]


def test_nightly_counts_reconcile_and_outputs_name_the_users_columns(run):
    ex = run.extract
    for day in NIGHTS:
        folder = run.night(day)
        manifest = json.loads((folder / "manifest.json").read_text())
        counts = manifest["counts"]
        assert counts["reconciles"]
        assert counts["events_read"] == counts["events_used"] + counts["events_rejected"] + \
            counts["events_duplicates_dropped"]
        assert manifest["schema"]["entity_col"] == ex.id_col and manifest["area"] is None
        scores = pd.read_parquet(folder / "scores.parquet")
        not_scored = pd.read_parquet(folder / "not_scored.parquet")
        rejects = pd.read_parquet(folder / "rejects.parquet")
        for name, frame in (("scores", scores), ("not_scored", not_scored),
                            ("worklists", pd.read_parquet(folder / "worklists.parquet"))):
            assert frame.columns[0] == ex.id_col, name
            assert not {"dispute_id", "station", "category"} & set(frame.columns), (name, list(frame.columns))
        assert ex.id_col in rejects.columns and "reject_reason" in rejects.columns
        assert len(rejects) == counts["events_rejected"]
        # every input dispute is scored, not open, or lost all its rows to rejects
        scored, waiting = set(scores[ex.id_col].astype(str)), set(not_scored[ex.id_col].astype(str))
        assert not scored & waiting
        lost = set(rejects[ex.id_col].dropna().astype(str)) - scored - waiting
        assert scored | waiting | lost == ex.disputes
        assert counts["disputes_read"] == len(ex.disputes)
        assert counts["disputes_scored"] == len(scored) and len(scored) > 0
        if ex.name == "long_case_numbers":  # 18 digits survive as text, never as floats
            assert scores[ex.id_col].map(len).eq(18).all()
    status, out, _ = run.commands[f"score {NIGHTS[0]}"]
    assert re.search(r"event rows: [\d,]+ read, [\d,]+ used, [\d,]+ rejected .*[\d,]+ exact duplicate", out)


def test_barometer_is_city_wide_and_report_names_the_id(run):
    table = pd.read_csv(run.extract.folder / "barometer.csv")
    assert table.columns[0] == "area" and set(table["area"]) == {"(city)"}
    assert len(table) == len(NIGHTS)
    assert (table["n"] > 0).all()
    html = (run.extract.folder / "report.html").read_text(encoding="utf-8")
    assert "dispute_id" not in html and "no area column" not in html
    assert "Outcome audit" in html and "no outcomes given" not in html
    audited = re.search(r"<b>(\d+)</b>escalations", html)
    assert audited and int(audited.group(1)) > 0  # the extract's later assaults were audited
    flagged = pd.read_parquet(run.night(NIGHTS[-1]) / "worklists.parquet")
    assert len(flagged) and (flagged["tier"].astype(str) == "red").any()
    assert f"<th>{run.extract.id_col}</th>" in html
    status, out, _ = run.commands["sweep like"]
    assert "open disputes match" in out and "city-wide" in out
    matches = pd.read_csv(run.extract.folder / "sweep.csv")
    assert run.extract.id_col in matches.columns and "station" not in matches.columns


def _frame_flavours(events: pd.DataFrame, time_col: str) -> dict[str, pd.DataFrame]:
    """One request in the dtypes pandas, Arrow and the library produce."""
    text = [c for c in events.columns if events[c].dtype == object or pd.api.types.is_string_dtype(events[c])]
    text = [c for c in text if c != time_col]
    aware = _aware(events[time_col])
    times = events[time_col]
    if not pd.api.types.is_datetime64_any_dtype(times):
        times = pd.to_datetime(times, format="mixed", utc=aware)
    return {
        "as read": events,
        "objects": events.astype({c: object for c in text}),
        "arrow strings": events.astype({c: "string[pyarrow]" for c in text}),
        "categoricals": events.astype({c: "category" for c in text}),
        "parsed times": events.assign(**{time_col: times}),
        "other clock": events.assign(**{time_col: times.dt.tz_convert("Europe/Paris") if aware else times}),
    }


def test_pyfunc_and_predictor_accept_any_frame_flavour(run):
    ex = run.extract
    schema = rm.EventSchema.from_dict(json.loads((run.night(NIGHTS[0]) / "manifest.json").read_text())["schema"])
    events = rm.lifecycle.read_table(ex.events, text_columns=schema.text_columns)
    scores = pd.read_parquet(run.night(NIGHTS[0]) / "scores.parquet")
    rejected = set(pd.read_parquet(run.night(NIGHTS[0]) / "rejects.parquet")[ex.id_col].dropna().astype(str))
    ids = [i for i in scores[ex.id_col].astype(str) if i not in rejected][:6]  # online scoring refuses bad rows
    request = events[events[ex.id_col].astype(str).isin(ids)].reset_index(drop=True)
    if ex.entities is not None:
        ents = pd.read_csv(ex.entities, dtype=str).rename(columns={"matter_ref": ex.id_col})
        request = request.merge(ents[[ex.id_col, "dispute_type", "registered"]], on=ex.id_col, how="left")
    # the batch read a naive --as-of as UTC for aware events: the same moment here
    as_of = NIGHTS[0] + ("T00:00:00+00:00" if _aware(events[schema.time_col]) else "T00:00:00")
    with sqlite_tracking_store(ex.folder):
        uri_before = (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI"))
        predictor = rm.load(run.model)
        assert (mlflow.get_tracking_uri(), os.environ.get("MLFLOW_TRACKING_URI")) == uri_before
        pyfunc = mlflow.pyfunc.load_model(run.model)
    expected = None
    for flavour, frame in _frame_flavours(request, schema.time_col).items():
        got = pyfunc.predict(frame, params={"as_of": as_of})
        assert got.columns[0] == ex.id_col, flavour
        assert sorted(got[ex.id_col].astype(str)) == sorted(ids), flavour
        got = got.set_index(got[ex.id_col].astype(str)).loc[ids]
        if expected is None:
            expected = got["probability"].to_numpy()
            entities = None
            if ex.entities is not None:
                entities = rm.lifecycle.read_table(ex.entities, text_columns=schema.entity_text_columns)
            direct = predictor.predict(events[events[ex.id_col].astype(str).isin(ids)], as_of=as_of,
                                       entities=entities)
            direct = direct.set_index(direct[ex.id_col].astype(str)).loc[ids]
            np.testing.assert_allclose(direct["probability"].to_numpy(), expected, rtol=1e-9)
        np.testing.assert_allclose(got["probability"].to_numpy(), expected, rtol=1e-9, err_msg=flavour)
    if not schema.party_col:  # without cross-dispute features a dispute's own events are all it needs
        batch = scores.set_index(scores[ex.id_col].astype(str)).loc[ids, "probability"].to_numpy()
        np.testing.assert_allclose(batch, expected, rtol=1e-6)
    with pytest.raises(mlflow.exceptions.MlflowException, match="no scoring time.*as_of"):
        pyfunc.predict(request)


def _aware(times: pd.Series) -> bool:
    return bool(rm.data.times_aware(times))


def test_optional_columns_may_be_left_out_of_a_request(plain):
    events = pd.read_csv(plain.extract.events, dtype={"case_no": str}).dropna(subset=["case_no"])
    ids = pd.read_parquet(plain.night(NIGHTS[0]) / "scores.parquet")["case_no"].head(3)
    request = events[events["case_no"].isin(ids) & ~events["note"].str.startswith("dirty")]
    with sqlite_tracking_store(plain.extract.folder):
        pyfunc = mlflow.pyfunc.load_model(plain.model)
        full = pyfunc.predict(request, params={"as_of": NIGHTS[0]})
        bare = pyfunc.predict(request.drop(columns=["note"]), params={"as_of": NIGHTS[0]})
    assert len(bare) == len(full) == 3
    assert bare["probability"].notna().all()


def test_bad_rows_are_refused_with_their_file_lines(plain, tmp_path):
    config = plain.extract.toml()
    with sqlite_tracking_store(tmp_path):
        status, out, err = cli("train", "--config", config)
    assert status == 2 and "Traceback" not in err
    assert "5 of " in err and "event rows are invalid" in err and "--drop-invalid" in err
    lines = {reason: [] for _, reason in plain.extract.bad_lines}
    for line, reason in plain.extract.bad_lines:
        lines[reason].append(line)
    for reason, expected in lines.items():
        assert re.search(rf"{len(expected)} line\(s\) with {reason}.*?\(first lines: {re.escape(str(expected))}\)",
                         err), (reason, expected, err)
    assert "'31/02/2024 25:61'" in err and "'yesterday'" in err
    with pytest.raises(rm.DataError, match=r"drop_invalid=True") as info:  # Python's words
        rm.train(rm.load_config(config), tracking=f"sqlite:///{tmp_path / 'py.db'}")
    assert "first lines" in str(info.value)


def test_roles_left_at_their_default_name_the_toml_key_to_switch_them_off(plain, tmp_path):
    text = plain.extract.toml().read_text().replace('party_col = ""\n', "")  # the line deleted
    config = tmp_path / "default_party.toml"
    config.write_text(text.replace('events = "events.csv"', f'events = "{plain.extract.events}"'))
    with sqlite_tracking_store(tmp_path):
        status, _, err = cli("train", "--config", config, "--drop-invalid")
    assert status == 2 and "Traceback" not in err
    assert "['party_id']" in err and "party_col" in err and 'party_col = ""' in err


def test_an_outcome_kind_never_seen_lists_the_kinds_seen(plain, tmp_path):
    text = plain.extract.toml().read_text().replace('["assault"]', '["asault"]')
    config = tmp_path / "typo.toml"
    config.write_text(text.replace('events = "events.csv"', f'events = "{plain.extract.events}"'))
    with sqlite_tracking_store(tmp_path):
        status, _, err = cli("train", "--config", config, "--drop-invalid")
    assert status == 2 and "Traceback" not in err
    assert "['asault']" in err and "'assault' (" in err and "'call' (" in err
    assert "outcome_kinds = [...] in the config's [schema]" in err


def test_a_fold_without_enough_positives_names_a_setting_that_works():
    """Sparse escalations: the last fold cannot train with a 360-day test period; the error
    names settings, and each one it names does train."""
    from riskmodel.evaluation import backtest

    schema = rm.EventSchema(entity_col="case", time_col="t", kind_col="kind", text_col=None, party_col=None,
                            entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None,
                            outcome_kinds=("assault",))
    log = dispute_histories(300, seed=11)
    thin = (log["kind"] == "assault") & (np.random.default_rng(1).random(len(log)) > 0.35)
    events = rm.prepare_events(log[~thin].drop(columns=["note", "person"]), schema)
    labels = rm.make_labels(events, rm.make_cutoffs(events, schema), schema, horizon="60D")
    labels = labels[~labels["censored"]].drop(columns="censored")
    model = rm.RiskModel(schema=schema, n_estimators=15, protocol="holdout")  # the time slices this names
    kw = dict(n_folds=1, horizon="60D", n_bootstrap=5)
    with pytest.raises(rm.DataError) as info:
        backtest(events, labels, model=model, test_period="360D", **kw)
    message, cli_message = str(info.value), info.value.for_cli()
    period = re.search(r"test_period='(\d+D)'", message).group(1)
    fraction = float(re.search(r"calibration_fraction=([\d.]+)", message).group(1))
    assert f'test_period = "{period}" in the config\'s [backtest]' in cli_message
    assert f"calibration_fraction = {fraction} in the config's [model]" in cli_message
    assert "n_folds does not move" in message
    backtest(events, labels, model=model, test_period=period, **kw)
    wider = rm.RiskModel(schema=schema, n_estimators=15, protocol="holdout", validation_fraction=fraction,
                         calibration_fraction=fraction)
    backtest(events, labels, model=wider, test_period="360D", **kw)


def test_missing_entities_and_area_are_named_in_the_interfaces_words(run, tmp_path):
    nights = [run.night(d) for d in NIGHTS]
    status, _, err = cli("barometer", "--scores", *nights, "--area", "district")
    assert status == 2 and "--area" in err and "area=" not in err
    with pytest.raises(rm.DataError, match=r"Pass area= one of them"):
        rm.barometer(nights, area="district")
    if run.extract.entities is None:
        return
    with sqlite_tracking_store(run.extract.folder):
        status, _, err = cli("score", "--model", run.model, "--events", run.extract.events, "--as-of", NIGHTS[0],
                             "--out", tmp_path / "night")
        assert status == 2 and "--entities PATH" in err and "entities=" not in err
        with pytest.raises(rm.DataError, match=r"score_batch\(entities=\.\.\.\)"):
            rm.score_batch(model=run.model, events=run.extract.events, as_of=NIGHTS[0], out=tmp_path / "night")
    assert not (tmp_path / "night").exists()


def test_capacities_without_an_area_name_the_interfaces_words(plain, tmp_path):
    """An events-only model has no group column to take the capacities' areas from: the
    refusal said "set by = '<column>'", neither the flag nor the keyword to use."""
    with sqlite_tracking_store(plain.extract.folder):
        status, _, err = cli("score", "--model", plain.model, "--events", plain.extract.events, "--as-of", NIGHTS[0],
                             "--out", tmp_path / "night", "--capacity", "S01=3")
        assert status == 2 and "Traceback" not in err
        assert "--tiers-by COLUMN" in err and "--capacity" in err and "by = " not in err
        with pytest.raises(rm.ConfigError, match=r"give tiers=\{'by': '<column>', \.\.\.\} with a column of entities="):
            rm.score_batch(model=plain.model, events=plain.extract.events, as_of=NIGHTS[0], out=tmp_path / "night",
                           tiers={"capacity": {"S01": 3}})
    assert not (tmp_path / "night").exists()


def test_a_night_is_never_replaced_or_counted_twice(plain, tmp_path):
    night = plain.night(NIGHTS[0])
    before = (night / "scores.parquet").stat().st_mtime_ns
    with sqlite_tracking_store(plain.extract.folder):
        status, _, err = cli("score", "--model", plain.model, "--events", plain.extract.events, "--as-of", NIGHTS[0],
                             "--out", night)
        assert status == 2 and "--overwrite" in err and (night / "scores.parquet").stat().st_mtime_ns == before
        again = tmp_path / "again"  # the same night scored into a second folder
        assert cli("score", "--model", plain.model, "--events", plain.extract.events, "--as-of", NIGHTS[0],
                   "--out", again)[0] == 0
        assert cli("score", "--model", plain.model, "--events", plain.extract.events, "--as-of", NIGHTS[0],
                   "--out", again, "--overwrite")[0] == 0
    once = rm.barometer([plain.night(d) for d in NIGHTS])
    with pytest.warns(rm.DataWarning, match="same night was given more than once"):
        twice = rm.barometer([night, again, plain.night(NIGHTS[1])])
    pd.testing.assert_frame_equal(once, twice)
    status, out, err = cli("barometer", "--scores", night, again, plain.night(NIGHTS[1]))
    assert status == 0 and "2 night(s)" in out and "same night" in err


def test_training_and_loading_leave_mlflow_settings_alone(plain, tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    from mlflow.tracking import _model_registry, _tracking_service

    before = (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri)
    uri = f"sqlite:///{plain.extract.folder / 'mlflow.db'}"
    rm.load(plain.model, tracking=uri)
    rm.train(rm.load_config(plain.extract.toml()), tracking=f"sqlite:///{tmp_path / 'store' / 'other.db'}",
             drop_invalid=True)
    assert (_tracking_service.utils._tracking_uri, _model_registry.utils._registry_uri) == before
    assert "MLFLOW_TRACKING_URI" not in os.environ and "MLFLOW_REGISTRY_URI" not in os.environ
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no stray store in the working folder


def test_the_readme_pyfunc_snippet_runs_on_its_own(plain, tmp_path):
    """A fresh process with only MLFLOW_TRACKING_URI set, as the README says: no riskmodel.load first."""
    request = tmp_path / "request.csv"
    events = pd.read_csv(plain.extract.events, dtype={"case_no": str}).dropna(subset=["case_no"])
    events[events["case_no"].isin(["C00010", "C00011"]) & ~events["note"].str.startswith("dirty")].to_csv(
        request, index=False)
    code = textwrap.dedent(f"""
        import mlflow, pandas as pd
        pyfunc = mlflow.pyfunc.load_model("{plain.model}")
        events = pd.read_csv("{request}", dtype={{"case_no": str}}).astype({{"event_type": "category"}})
        print(pyfunc.predict(events, params={{"as_of": "2025-03-01T00:00:00"}}).to_json())
    """)
    env = dict(os.environ, MLFLOW_TRACKING_URI=plain.uri, PYTHONPATH=str(Path(rm.__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "case_no" in done.stdout and "probability" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["request.csv"]  # no stray ./mlflow.db or mlruns


@pytest.mark.spark
def test_spark_engine_scores_an_extract_like_the_local_one(plain, tmp_path):
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java (no java on PATH, no JAVA_HOME)")
    pytest.importorskip("pyspark")
    with sqlite_tracking_store(plain.extract.folder):
        status, out, err = cli("score", "--engine", "spark", "--master", "local[2]", "--model", plain.model,
                               "--events", plain.extract.events, "--as-of", NIGHTS[0], "--out", tmp_path / "spark",
                               "--chunk-disputes", 120)
    assert status == 0, err[-3000:]
    for name in ("scores", "not_scored", "rejects", "worklists"):
        got = pd.read_parquet(tmp_path / "spark" / f"{name}.parquet")
        want = pd.read_parquet(plain.night(NIGHTS[0]) / f"{name}.parquet")
        assert got.columns[0] == want.columns[0] == "case_no" or name == "rejects"
        pd.testing.assert_frame_equal(got.drop(columns=["run_id"], errors="ignore"),
                                      want.drop(columns=["run_id"], errors="ignore"), check_dtype=False, obj=name)
    got = json.loads((tmp_path / "spark" / "manifest.json").read_text())["counts"]
    want = json.loads((plain.night(NIGHTS[0]) / "manifest.json").read_text())["counts"]
    assert got == want


def test_csv_exports_as_police_systems_write_them(tmp_path):
    """A gzip-compressed CSV, a GB18030 (GBK) CSV and times written as digits
    (yyyyMMddHHmmss) are read; a semicolon-separated file and one that is neither UTF-8
    nor GB18030 are refused in words (they were a parquet error, a UnicodeDecodeError, and
    'holds numbers')."""
    from riskmodel._errors import DataError
    from riskmodel.lifecycle import read_table

    frame = pd.DataFrame({"案件编号": ["0012", "0013"], "发生时间": ["20231121080500", "20231122093000"],
                          "事件类型": ["纠纷", "威胁"]})
    frame.to_csv(tmp_path / "e.csv.gz", index=False)
    frame.to_csv(tmp_path / "e_gbk.csv", index=False, encoding="gb18030")
    text = ["案件编号", "发生时间", "事件类型"]
    for name in ("e.csv.gz", "e_gbk.csv"):
        got = read_table(tmp_path / name, text_columns=text)
        pd.testing.assert_frame_equal(got, frame, check_dtype=False)
    schema = rm.EventSchema(entity_col="案件编号", time_col="发生时间", kind_col="事件类型", text_col=None, party_col=None)
    got = read_table(tmp_path / "e.csv.gz", text_columns=schema.text_columns)
    assert rm.validate_events(got, schema)["发生时间"].tolist() == [pd.Timestamp("2023-11-21 08:05"),
                                                               pd.Timestamp("2023-11-22 09:30")]
    frame.to_csv(tmp_path / "semi.csv", index=False, sep=";")
    with pytest.raises(DataError, match="not separated by commas"):
        read_table(tmp_path / "semi.csv")
    # a value past the header's columns, after a narrative on two lines: the line a user sees (pandas counts records)
    (tmp_path / "shifted.csv").write_text('id,time,kind,narrative\nA,2024-01-01,call,"two\nlines"\n'
                                          "B,2024-01-02,call,x\nC,2024-01-03,call,y,oops\n")
    with pytest.raises(DataError, match="shifted.csv: line 5 has more fields than the header"):
        read_table(tmp_path / "shifted.csv")
    # Excel's semicolons with decimal commas: pandas' tokenizer failed before the header was judged
    frame.assign(amount=["636", "1,5"]).to_csv(tmp_path / "semi_decimal.csv", index=False, sep=";")
    with pytest.raises(DataError, match="not separated by commas"):
        read_table(tmp_path / "semi_decimal.csv")
    (tmp_path / "bad.csv").write_bytes(b"id,time\n\x81\x30\xff\xff,1\n")
    with pytest.raises(DataError, match="neither UTF-8 nor GB18030"):
        read_table(tmp_path / "bad.csv")
    # a Windows-1252 export whose bytes happen to be GB18030 too: it read "Müller" as "M黮ler"
    western = pd.DataFrame({"id": ["D1", "D2"], "kind": ["Drohung", "Körperverletzung"],
                            "narrative": ["Herr Müller droht", "Straße gesperrt"]})
    western.to_csv(tmp_path / "cp1252.csv", index=False, encoding="cp1252")
    with pytest.raises(DataError, match=r"Chinese characters between Latin letters \('K鰎perverletzung'\).* Windows-1252"):
        read_table(tmp_path / "cp1252.csv", text_columns=["id", "narrative"])
    # GB18030 exports whose only non-ASCII letters stand between Latin ones: pinyin, ü, ·, a full-width comma
    latin = pd.DataFrame({"id": ["D1", "D2", "D3"], "name": ["Zhāng Wěi", "Lü，Bu", "A栋B座 Maimaiti·Abula"]})
    latin.to_csv(tmp_path / "pinyin_gbk.csv", index=False, encoding="gb18030")
    pd.testing.assert_frame_equal(read_table(tmp_path / "pinyin_gbk.csv", text_columns=["id", "name"]), latin,
                                  check_dtype=False)
    (tmp_path / "e.txt").write_text("id,time\n1,2\n")
    with pytest.raises(DataError, match=r"\*\.csv\.gz"):
        read_table(tmp_path / "e.txt")


def test_csv_lines_ending_with_a_delimiter_are_read_as_their_header_says(tmp_path):
    """Exports that end every line with a comma (more fields than the header): pandas made the
    first column the index and shifted every column (ids read as dates, stations as
    categories); the empty extra fields are now dropped. A filled extra field is refused,
    naming its line."""
    from riskmodel._errors import DataError
    from riskmodel.lifecycle import read_table

    frame = pd.DataFrame({"dispute_id": ["0012", "0013", "0014"], "category": ["debt", "family", "debt"],
                          "station": ["S01", "S02", "S01"]})
    lines = ["dispute_id,category,station"] + [",".join(row) + "," for row in frame.itertuples(index=False)]
    (tmp_path / "trailing.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "two.csv").write_text("\n".join(line + "," for line in lines) + "\n")  # header ends with one too
    pd.testing.assert_frame_equal(read_table(tmp_path / "trailing.csv", text_columns=["dispute_id"]), frame)
    two = read_table(tmp_path / "two.csv", text_columns=["dispute_id"])
    pd.testing.assert_frame_equal(two[frame.columns], frame)
    lines[2] = lines[2] + "said no"  # a comma in an unquoted narrative, on the file's line 3
    (tmp_path / "filled.csv").write_text("\n".join(lines[:1] + [line.rstrip(",") for line in lines[1:2]] + lines[2:]))
    with pytest.raises(DataError, match="could not read|line 3 has more fields than the header"):
        read_table(tmp_path / "filled.csv")
    (tmp_path / "first.csv").write_text("\n".join(lines[:1] + [lines[2]] + lines[3:]))
    with pytest.raises(DataError, match=r"first.csv: line 2 has more fields than the header \(3 columns\)"):
        read_table(tmp_path / "first.csv")
    # row names before the header's columns (R's write.table), as pandas always read them
    named = [lines[0]] + [f"r{i}," + ",".join(row) for i, row in enumerate(frame.itertuples(index=False))]
    (tmp_path / "named.csv").write_text("\n".join(named) + "\n")
    pd.testing.assert_frame_equal(read_table(tmp_path / "named.csv", text_columns=["dispute_id"]), frame)
    # a DOS end-of-file Ctrl-Z on a line of its own: a row without an id (a null-id reject), not a dispute "\x1a"
    (tmp_path / "dos.csv").write_text(frame.to_csv(index=False) + "\x1a")
    dos = read_table(tmp_path / "dos.csv", text_columns=["dispute_id"])
    pd.testing.assert_frame_equal(dos.iloc[:3], frame)
    assert len(dos) == 4 and dos.iloc[3].isna().all()
