"""The command line: the README's main job end to end (``riskmodel demo`` on a small city),
and every option's help line with its default and an example."""

import argparse
import re

import pandas as pd
import pytest

from riskmodel.cli import _HelpFormatter, build_parser, main


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_option_has_help_a_default_and_an_example():
    commands = _subcommands(build_parser())
    assert {"demo", "train", "promote", "score", "explain", "report", "sweep", "barometer"} <= set(commands)
    for name, sub in commands.items():
        assert "examples:" in (sub.epilog or "") and f"riskmodel {name}" in sub.epilog, name
        formatter = _HelpFormatter(prog=sub.prog)
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = formatter._get_help_string(action)
            assert text, (name, action.dest)
            assert "e.g." in text or isinstance(action, argparse._StoreTrueAction), (name, action.dest, text)
            if action.option_strings and not action.required:
                assert "default" in text, (name, action.dest, text)


def test_help_prints(capsys):
    with pytest.raises(SystemExit) as done:
        main(["explain", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "(default: explain-ID.png here)" in out and "riskmodel explain D0012345" in out


def test_python_dash_m_runs_the_command_line():
    """``python -m riskmodel`` is the ``riskmodel`` entry point (a user without the script on
    their PATH, or a scheduler calling the interpreter)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "riskmodel", "score", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: riskmodel score" in done.stdout and "--overwrite" in done.stdout


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["demo", "--disputes", "4000", "--out", "out"]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    for step in ("[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]", "Tier counts per station", "Top red cases"):
        assert step in out
    assert re.search(r"\n {6}(PASSED|REFUSED): dispute-risk version 1 ", out)  # the gate's verdict, one line
    # where the outputs are, then the next three commands
    night = next((tmp_path / "out" / "nights").iterdir())
    assert (night / "scores.parquet").exists() and (night / "manifest.json").exists()
    assert f"tonight's scores, work lists and manifest: {night.relative_to(tmp_path)}/" in out
    nxt = out.split("\nNext:\n", 1)[1].strip().splitlines()
    assert [line.split()[:2] for line in nxt] == [["riskmodel", "explain"], ["riskmodel", "report"], ["mlflow", "ui"]]
    # plain: no Python reprs, no MLflow chatter, progress lines for training
    assert "Predictor(" not in out + err and "<" not in out
    assert "INFO" not in out + err and "Successfully registered" not in err
    assert "[riskmodel train]" in err and "backtest fold 1/3 done" in err
    assert (tmp_path / "riskmodel-mlflow" / "mlflow.db").exists()
    # the first next step works as printed
    case = nxt[0].split()[2]
    assert main(nxt[0].split()[1:] + ["--plot", "none"]) == 0
    assert f"Dispute {case}" in capsys.readouterr().out


def test_a_date_that_does_not_say_its_order_is_refused_in_flag_and_keyword_words(capsys, tmp_path):
    """--as-of 06/01/2024 was read as June 1 without a word (a team writing day first meant
    6 January), while 13/01/2024 was read day first: each value its own way."""
    import riskmodel as rm

    with pytest.raises(SystemExit) as done:
        main(["score", "--as-of", "06/01/2024", "--model", "m", "--events", "e.parquet", "--out", str(tmp_path / "o")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "argument --as-of: '06/01/2024' does not say whether the day or the month comes first" in err
    with pytest.raises(rm.ConfigError, match=r"as_of='06/01/2024' does not say .* e.g. '2024-01-06'"):
        rm.score_batch(model="m", events="e.parquet", as_of="06/01/2024", out=tmp_path / "o")
    with pytest.raises(rm.DataError, match=r"start='03/04/2024' does not say"):
        rm.make_cutoffs(pd.DataFrame({"dispute_id": ["a"], "time": ["2024-01-01"], "kind": ["call"]}),
                        rm.EventSchema(text_col=None, party_col=None), start="03/04/2024")
    assert build_parser().parse_args(["score", "--as-of", "13/01/2024", "--model", "m", "--events", "e",
                                      "--out", "o"]).as_of == "13/01/2024"  # it says day first


@pytest.mark.parametrize(("flags", "words"), [
    (["--red-share", "0.5", "--yellow-share", "0.6"], "--red-share 0.5 + --yellow-share 0.6 is more than 1"),
    (["--drift-watch", "0.5", "--drift-act", "0.2"],
     "--drift-watch must be above 0 and at most --drift-act, both finite; got --drift-watch 0.5, --drift-act 0.2."),
    (["--drift-act", "nan"], "got --drift-watch 0.1, --drift-act nan."),
])
def test_score_refuses_flags_in_their_own_words(flags, words, capsys, tmp_path):
    """`TierPolicy shares red + yellow must be at most 1.` and `...got watch=0.5, act=0.2`
    named no flag."""
    assert main(["score", "--model", "m", "--events", "e.parquet", "--as-of", "2024-06-01",
                 "--out", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err
    assert words in err and "TierPolicy" not in err and "watch=" not in err


def test_score_and_train_name_the_flag_or_key_of_a_csv_header_naming_a_column_twice_and_of_a_tsv(tmp_path, capsys):
    """A header ``dispute_id,time,...,time`` was read with pandas' copy ``time.1`` without a
    word, and an ``events.tsv`` gave Arrow's 'Parquet magic bytes not found in footer'."""
    from conftest import sqlite_tracking_store, train_model_dir

    from riskmodel._simulate import simulate_disputes

    model = train_model_dir(tmp_path, 800, start="2022-01-01", end="2024-12-31", seed=1)
    events = simulate_disputes(50, start="2023-01-01", end="2024-05-31", seed=2).events
    twice = tmp_path / "events.csv"
    events.assign(again=events["time"]).rename(columns={"again": "time"}).to_csv(twice, index=False)
    tsv = tmp_path / "events.tsv"
    events.to_csv(tsv, sep="\t", index=False)
    said = {twice: ": its header has more than one column named ['time'] ('time' in columns 2 and 6); keep one of "
                   "each (drop or rename the copies) and write the file again.",
            tsv: " is neither CSV nor parquet. A file named *.csv, *.csv.gz, *.csv.bz2, *.csv.zip, *.csv.xz or "
                 "*.csv.zst is read as CSV (comma-separated), any other as parquet (a folder as its files), and "
                 "events.tsv is not parquet: it looks like tab-separated text. Save it as comma-separated CSV named "
                 "*.csv (or *.csv.gz), or as parquet."}
    for path, words in said.items():
        assert main(["score", "--model", str(model), "--events", str(path), "--as-of", "2024-06-01",
                     "--out", str(tmp_path / "night")]) == 2
        err = capsys.readouterr().err
        assert err == f"riskmodel: error: --events {path}{words}\n"
        config = tmp_path / "own.toml"
        config.write_text(f'[data]\nsource = "files"\nevents = "{path.name}"\n')
        with sqlite_tracking_store(tmp_path):
            assert main(["train", "--config", str(config)]) == 2
        assert capsys.readouterr().err.endswith(f"riskmodel: error: [data] events = {str(path)!r}{words}\n")
    assert not (tmp_path / "night").exists()


def test_score_refuses_a_csv_header_naming_a_schema_column_twice_but_for_letter_case(tmp_path, capsys):
    """A header ``dispute_id,time,...,Time`` was read by the local engine (pandas keeps both)
    and ended on Spark, whose column names ignore case, in "missing column 'time'": refused on
    both, naming both spellings and their columns. Names the schema does not read may differ
    only by case, and a schema naming both spellings reads them."""
    import warnings

    import riskmodel as rm
    from riskmodel import DataError, EventSchema, score_batch
    from riskmodel.lifecycle import read_csv
    from riskmodel.model._artifact import save_model_dir

    sim = rm.simulate_disputes(400, start="2022-01-01", end="2024-05-31", seed=3)
    ev = rm.prepare_events(sim.events, sim.schema)
    labels = rm.make_labels(ev, rm.make_cutoffs(ev, sim.schema, entities=sim.entities), sim.schema)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rm.DataWarning)
        fitted = rm.RiskModel(schema=sim.schema, n_estimators=20, lgbm_params={"num_threads": 1})
        model = save_model_dir(fitted.fit(ev, labels[~labels.censored], entities=sim.entities), tmp_path / "model")
    events = sim.events.iloc[:500]
    sim.entities.to_parquet(tmp_path / "entities.parquet", index=False)
    alike = tmp_path / "events.csv"
    events.assign(Time=events["time"]).to_csv(alike, index=False)
    at = list(events.columns).index("time") + 1
    words = (f": its header has columns whose names differ only by letter case, ['time', 'Time'] ('time' in column "
             f"{at} and 'Time' in column {events.shape[1] + 1}), which Spark cannot tell apart; keep one spelling of "
             "each (drop or rename the others) and write the file again.")
    assert main(["score", "--model", str(model), "--events", str(alike), "--entities", str(tmp_path / "entities.parquet"),
                 "--as-of", "2024-06-01", "--out", str(tmp_path / "night")]) == 2
    assert capsys.readouterr().err == f"riskmodel: error: --events {alike}{words}\n"
    with pytest.raises(DataError) as refused:
        score_batch(model=str(model), events=alike, entities=sim.entities, as_of="2024-06-01", out=tmp_path / "night")
    assert str(refused.value) == f"events={str(alike)!r}{words}"
    assert not (tmp_path / "night").exists()
    text_columns = EventSchema().text_columns
    other = tmp_path / "memo.csv"
    events.assign(memo="a", Memo="b").to_csv(other, index=False)  # not the schema's: read as written
    assert list(read_csv(other, text_columns).columns) == [*events.columns, "memo", "Memo"]
    assert list(read_csv(alike, ["time", "Time"]).columns) == [*events.columns, "Time"]  # the schema's own names
