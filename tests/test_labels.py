"""make_labels, make_cutoffs and open_disputes: edges by hand, the rest against a slow reference."""

import re
import warnings

import numpy as np
import pandas as pd
import pytest

from riskmodel import (
    DataError,
    DataWarning,
    EventSchema,
    FeatureBuilder,
    make_cutoffs,
    make_labels,
    open_disputes,
)

SCHEMA = EventSchema(
    text_col=None, party_col=None, entity_categorical_cols=(), entity_time_cols=(), group_cols=(),
    closed_col="closed_at", outcome_kinds=("criminal_case", "injury"),
)  # fmt: skip
NS = pd.Timedelta(1, unit="ns")
AS_OF = pd.Timestamp("2024-02-01")
FAR = pd.Timestamp("2030-01-01")


def events_frame(rows):
    """rows: (dispute, time, kind); times kept at nanosecond precision."""
    ids, times, kinds = zip(*rows)
    return pd.DataFrame(
        {
            "dispute_id": list(ids),
            "time": pd.Series([pd.Timestamp(t) for t in times], dtype="datetime64[ns]"),
            "kind": list(kinds),
        }
    )


def cutoffs_frame(ids, as_of, index=None):
    return pd.DataFrame(
        {
            "dispute_id": list(ids),
            "as_of": pd.DatetimeIndex([pd.Timestamp(t) for t in as_of]).as_unit("ns"),
        },
        index=index,
    )


# --------------------------------------------------------------------------------------
# make_labels


@pytest.mark.parametrize("filler", [0, 30], ids=["ns-clock", "coarse-clock"])
def test_horizon_edges(filler):
    h = pd.Timedelta("30D")
    outcome_at = {
        "at_as_of": AS_OF,  # an event at as_of is the future: it is the label
        "one_ns_before_end": AS_OF + h - NS,
        "at_end": AS_OF + h,  # [as_of, as_of + horizon) excludes the end
        "one_ns_before_as_of": AS_OF - NS,  # history, not label
    }
    rows = [(d, "2024-01-01", "call") for d in outcome_at]
    rows += [(d, t, "criminal_case") for d, t in outcome_at.items()]
    # many disputes over a long span force a coarser internal clock; labels must stay exact
    rows += [(f"filler{i}", "2014-01-01", "call") for i in range(filler)]
    events = events_frame(rows)
    cutoffs = cutoffs_frame(outcome_at, [AS_OF] * len(outcome_at))
    out = make_labels(events, cutoffs, SCHEMA, horizon="30D", observed_until=FAR)
    assert dict(zip(out["dispute_id"], out["label"].tolist())) == {
        "at_as_of": 1, "one_ns_before_end": 1, "at_end": 0, "one_ns_before_as_of": 0,
    }  # fmt: skip
    assert not out["censored"].any()
    assert out["label"].dtype == "Int8"
    assert out["censored"].dtype == bool


def test_only_outcome_kinds_count_and_outcome_kinds_can_be_overridden():
    events = events_frame([("a", "2024-01-01", "call"), ("a", "2024-02-10", "threat")])
    cutoffs = cutoffs_frame(["a"], [AS_OF])
    assert make_labels(events, cutoffs, SCHEMA, observed_until=FAR)["label"].tolist() == [0]
    out = make_labels(events, cutoffs, SCHEMA, observed_until=FAR, outcome_kinds=["threat"])
    assert out["label"].tolist() == [1]


def test_censoring():
    events = events_frame(
        [
            ("quiet", "2024-01-01", "call"),
            ("quiet", "2024-02-15", "call"),  # last event: observed_until defaults to it
            ("hit", "2024-01-01", "call"),
            ("hit", "2024-02-10", "injury"),
        ]
    )
    cutoffs = cutoffs_frame(["quiet", "hit", "quiet"], [AS_OF, AS_OF, "2023-10-01"])
    out = make_labels(events, cutoffs, SCHEMA, horizon="90D")
    # horizon runs past the last observed time and nothing happened yet: unknown, not 0
    assert out["label"].isna().tolist() == [True, False, False]
    assert out["censored"].tolist() == [True, True, False]
    # an outcome inside the observed part is a positive, but the row is still censored
    assert out["label"].iloc[1] == 1
    # horizon fully observed (2023-10-01 + 90D < 2024-02-15) and no outcome: a real 0
    assert out["label"].iloc[2] == 0
    # an explicit observed_until far enough ends the censoring
    out = make_labels(events, cutoffs, SCHEMA, horizon="90D", observed_until="2024-06-01")
    assert out["label"].tolist() == [0, 1, 0]
    assert not out["censored"].any()


def test_every_cutoff_censored_says_so():
    """A horizon longer than the data censored every cutoff without a word (training then
    said only 'cutoffs is empty')."""
    events = events_frame([("a", "2024-01-01", "call"), ("b", "2024-01-05", "injury"), ("a", "2024-02-15", "call")])
    cutoffs = cutoffs_frame(["a", "a"], [AS_OF, AS_OF - pd.Timedelta("10D")])
    with pytest.warns(DataWarning, match=r"every cutoff is censored: the horizon 3000D after each runs past "
                      r"observed_until \(2024-02-15 00:00:00\)"):
        out = make_labels(events, cutoffs, SCHEMA, horizon="3000D")
    assert out["censored"].all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_labels(events, cutoffs, SCHEMA, horizon="10D")


def test_censoring_boundary_is_the_end_of_the_horizon():
    events = events_frame([("a", "2024-01-01", "call")])
    cutoffs = cutoffs_frame(["a", "a"], [AS_OF, AS_OF + NS])
    out = make_labels(
        events, cutoffs, SCHEMA, horizon="30D", observed_until=AS_OF + pd.Timedelta("30D")
    )
    assert out["censored"].tolist() == [False, True]
    assert out["label"].tolist()[0] == 0 and out["label"].isna().tolist() == [False, True]


def test_outcome_before_as_of_is_history_not_label():
    events = events_frame(
        [
            ("a", "2023-12-01", "call"),
            ("a", "2024-01-10", "criminal_case"),  # before both cutoffs below
            ("a", "2024-03-01", "injury"),  # inside the second cutoff's horizon only
        ]
    )
    cutoffs = cutoffs_frame(["a", "a"], ["2024-01-15", "2024-02-15"])
    out = make_labels(events, cutoffs, SCHEMA, horizon="30D", observed_until=FAR)
    assert out["label"].tolist() == [0, 1]


def test_order_index_and_extra_columns_preserved():
    events = events_frame(
        [("a", "2024-01-01", "call"), ("b", "2024-01-01", "call"), ("b", "2024-02-05", "injury")]
    )
    cutoffs = cutoffs_frame(
        ["b", "a", "zz", "b"],
        ["2024-02-01", "2024-02-01", "2024-02-01", "2024-01-01"],
        index=[10, 3, 7, 0],
    )
    cutoffs["note"] = ["w", "x", "y", "z"]
    out = make_labels(events, cutoffs, SCHEMA, horizon="30D", observed_until=FAR)
    assert list(out.index) == [10, 3, 7, 0]
    assert out["dispute_id"].tolist() == ["b", "a", "zz", "b"]
    assert out["note"].tolist() == ["w", "x", "y", "z"]
    pd.testing.assert_series_equal(out["as_of"], cutoffs["as_of"])
    assert out["label"].tolist() == [1, 0, 0, 0]  # a dispute without events is never positive
    assert "label" not in cutoffs.columns  # the input is not modified


def test_bad_horizon_and_timezone_mismatch():
    events = events_frame([("a", "2024-01-01", "call")])
    with pytest.raises(DataError, match="horizon 'soon' is not a duration"):
        make_labels(events, cutoffs_frame(["a"], [AS_OF]), SCHEMA, horizon="soon")
    labelled = make_labels(events, cutoffs_frame(["a"], [AS_OF]), SCHEMA, horizon=np.timedelta64(90, "D"))
    assert len(labelled) == 1  # a NumPy duration has its unit
    for bare in ("90", 90):  # pandas would read a bare number as nanoseconds
        with pytest.raises(DataError, match=f"horizon {bare!r} has no unit; give one, e.g. '90D'"):
            make_labels(events, cutoffs_frame(["a"], [AS_OF]), SCHEMA, horizon=bare)
    aware = pd.DataFrame({"dispute_id": ["a"], "as_of": ["2024-02-01T00:00:00Z"]})
    with pytest.raises(DataError, match="different timezone conventions"):
        make_labels(events, aware, SCHEMA)


def reference_labels(events, cutoffs, horizon, observed_until):
    h = pd.Timedelta(horizon)
    outcomes = events[events["kind"].isin(SCHEMA.outcome_kinds)]
    labels, censored = [], []
    for _, c in cutoffs.iterrows():
        mine = outcomes[(outcomes["dispute_id"] == c["dispute_id"])]
        hit = ((mine["time"] >= c["as_of"]) & (mine["time"] < c["as_of"] + h)).any()
        cens = c["as_of"] + h > observed_until
        labels.append(pd.NA if cens and not hit else int(hit))
        censored.append(cens)
    return labels, censored


def test_labels_against_reference_on_random_data():
    events, _ = random_log(3)
    rng = np.random.default_rng(4)
    ids = sorted(events["dispute_id"].unique()) + ["nobody"]
    cutoffs = cutoffs_frame(
        rng.choice(ids, 150),
        pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 420, 150), unit="D"),
    )
    out = make_labels(events, cutoffs, SCHEMA, horizon="60D")
    labels, censored = reference_labels(events, cutoffs, "60D", events["time"].max())
    assert out["censored"].tolist() == censored
    assert [pd.NA if pd.isna(v) else int(v) for v in out["label"]] == labels


# --------------------------------------------------------------------------------------
# make_cutoffs


def test_monthly_grid_while_open():
    events = events_frame([("a", "2024-01-15", "call"), ("a", "2024-04-10 12:00", "call")])
    out = make_cutoffs(events, SCHEMA)
    assert list(out.columns) == ["dispute_id", "as_of"]
    assert out["as_of"].dtype == "datetime64[ns]"
    assert out["as_of"].tolist() == list(pd.to_datetime(["2024-02-01", "2024-03-01", "2024-04-01"]))


def test_not_open_before_or_at_first_event():
    events = events_frame(
        [
            ("starts_on_grid", "2024-03-01", "call"),  # an event at exactly t is the future at t
            ("starts_one_ns_before", pd.Timestamp("2024-03-01") - NS, "call"),
            ("early", "2024-01-20", "call"),
        ]
    )
    out = make_cutoffs(events, SCHEMA, start="2024-01-01", end="2024-04-01", max_inactive=None)
    got = out.groupby("dispute_id")["as_of"].min().to_dict()
    assert got["starts_on_grid"] == pd.Timestamp("2024-04-01")
    assert got["starts_one_ns_before"] == pd.Timestamp("2024-03-01")
    assert got["early"] == pd.Timestamp("2024-02-01")


def test_not_open_after_first_outcome_but_kept_at_it():
    events = events_frame(
        [
            ("at_grid", "2024-01-10", "call"),
            ("at_grid", "2024-03-01", "criminal_case"),  # at exactly 03-01: still open then
            ("at_grid", "2024-05-01", "injury"),
            ("mid", "2024-01-10", "call"),
            ("mid", "2024-03-01 00:00:00.000000001", "injury"),
        ]
    )
    out = make_cutoffs(events, SCHEMA, end="2024-06-01", max_inactive=None)
    by = out.groupby("dispute_id")["as_of"].apply(list).to_dict()
    assert by["at_grid"] == list(pd.to_datetime(["2024-02-01", "2024-03-01"]))
    assert by["mid"] == list(pd.to_datetime(["2024-02-01", "2024-03-01"]))


def test_not_open_after_closed_at():
    events = events_frame(
        [(d, "2024-01-10", "call") for d in ("closed_on_grid", "closed_after", "never", "no_row")]
    )
    entities = pd.DataFrame(
        {
            "dispute_id": ["closed_on_grid", "closed_after", "never", "no_events"],
            "closed_at": [
                pd.Timestamp("2024-03-01"),
                pd.Timestamp("2024-03-01") + NS,
                pd.NaT,
                pd.Timestamp("2024-02-01"),
            ],
        }
    )
    out = make_cutoffs(events, SCHEMA, entities=entities, end="2024-04-01", max_inactive=None)
    by = out.groupby("dispute_id")["as_of"].max().to_dict()
    assert by == {
        "closed_on_grid": pd.Timestamp("2024-02-01"),  # closed at t: not open at t
        "closed_after": pd.Timestamp("2024-03-01"),
        "never": pd.Timestamp("2024-04-01"),
        "no_row": pd.Timestamp("2024-04-01"),  # no entities row: never closed
    }
    assert "no_events" not in set(out["dispute_id"])  # open needs a first event


def test_max_inactive_dormancy():
    events = events_frame(
        [
            # a: 31 days at 02-01, 60 at 03-01 (kept: the rule is <=), 91 at 04-01 (dormant)
            ("a", "2024-01-01", "call"),
            ("a", "2024-05-20", "call"),  # revives the dispute for 06-01
            ("b", "2024-01-01 00:00:00.000000001", "call"),  # 03-01: 60 days minus 1ns... kept
        ]
    )
    out = make_cutoffs(events, SCHEMA, end="2024-06-01", max_inactive="60D")
    by = out.groupby("dispute_id")["as_of"].apply(list).to_dict()
    assert by["a"] == list(pd.to_datetime(["2024-02-01", "2024-03-01", "2024-06-01"]))
    assert by["b"] == list(pd.to_datetime(["2024-02-01", "2024-03-01"]))
    without = make_cutoffs(events, SCHEMA, end="2024-06-01", max_inactive=None)
    assert len(without[without["dispute_id"] == "a"]) == 5


def test_cutoffs_sorted_by_as_of_then_entity():
    events = events_frame(
        [("b", "2024-01-05", "call"), ("a", "2024-01-07", "call"), ("c", "2024-02-15", "call")]
    )
    out = make_cutoffs(events, SCHEMA, end="2024-03-01")
    assert list(zip(out["as_of"].dt.strftime("%m-%d"), out["dispute_id"])) == [
        ("02-01", "a"), ("02-01", "b"), ("03-01", "a"), ("03-01", "b"), ("03-01", "c"),
    ]  # fmt: skip
    assert list(out.index) == list(range(len(out)))


def test_empty_grid_is_an_error():
    events = events_frame([("a", "2024-01-05", "call"), ("a", "2024-01-20", "call")])
    with pytest.raises(DataError, match="no grid dates between"):
        make_cutoffs(events, SCHEMA)


def random_log(seed, n_events=400, n_disputes=40):
    rng = np.random.default_rng(seed)
    ids = [f"D{i:03d}" for i in range(n_disputes)]
    # month starts, whole days and a few hours, so events land exactly on grid dates
    month_starts = pd.date_range("2024-01-01", periods=14, freq="MS")
    on_grid = rng.random(n_events) < 0.15
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 420, n_events), unit="D")
    times = np.where(on_grid, rng.choice(month_starts, n_events), days)
    times = pd.to_datetime(times) + pd.to_timedelta(
        rng.choice([0, 0, 0, 5, 23], n_events), unit="h"
    ) * (~on_grid).astype(int)
    kinds = rng.choice(
        ["call", "threat", "mediation_failed", "criminal_case", "injury"],
        n_events,
        p=[0.5, 0.2, 0.2, 0.05, 0.05],
    )
    events = pd.DataFrame({"dispute_id": rng.choice(ids, n_events), "time": times, "kind": kinds})
    closed = rng.choice(
        np.concatenate(
            [month_starts.to_numpy(), np.full(14, np.datetime64("NaT"), dtype="datetime64[ns]")]
        ),
        n_disputes,
    )
    entities = pd.DataFrame({"dispute_id": ids, "closed_at": pd.to_datetime(closed)})
    return events.drop_duplicates().reset_index(drop=True), entities


def reference_cutoffs(events, entities, grid, max_inactive):
    """Obviously correct, slow: every dispute at every grid date."""
    closed = entities.set_index("dispute_id")["closed_at"]
    rows = []
    for t in grid:
        for d, ev in events.groupby("dispute_id"):
            past = ev[ev["time"] < t]
            if past.empty:
                continue
            if past["kind"].isin(SCHEMA.outcome_kinds).any():
                continue
            c = closed.get(d, pd.NaT)  # a closing before the first event closes nothing (a placeholder)
            if pd.notna(c) and c >= ev["time"].min() and not t < c:
                continue
            if max_inactive is not None and t - past["time"].max() > pd.Timedelta(max_inactive):
                continue
            rows.append((d, t))
    return pd.DataFrame(rows, columns=["dispute_id", "as_of"]).astype({"as_of": "datetime64[ns]"})


@pytest.mark.parametrize("max_inactive", ["60D", None])
def test_cutoffs_against_reference_on_random_data(max_inactive):
    events, entities = random_log(1)
    out = make_cutoffs(events, SCHEMA, entities=entities, max_inactive=max_inactive)
    grid = pd.date_range(events["time"].min(), events["time"].max(), freq="MS")
    expected = reference_cutoffs(events, entities, grid, max_inactive)
    assert len(expected) > 50  # the data exercises the rule
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)
    assert out["as_of"].dtype == "datetime64[ns]"


# --------------------------------------------------------------------------------------
# open_disputes


def test_open_disputes_at_a_non_midnight_time():
    now = pd.Timestamp("2024-02-10 13:30")
    events = events_frame(
        [
            ("before", "2024-02-10 13:00", "call"),
            ("exactly_now", "2024-02-10 13:30", "call"),  # the future at `now`
            ("outcome_now", "2024-01-05", "call"),
            ("outcome_now", "2024-02-10 13:30", "injury"),  # an outcome at now is still future
            ("outcome_before", "2024-01-05", "call"),
            ("outcome_before", "2024-02-10 13:29", "injury"),
            ("dormant", "2023-01-01", "call"),
            ("later", "2024-03-01", "call"),
        ]
    )
    out = open_disputes(events, now, SCHEMA)
    assert sorted(out["dispute_id"]) == ["before", "outcome_now"]
    assert (out["as_of"] == now).all()
    assert out["as_of"].dtype == "datetime64[ns]"
    assert sorted(open_disputes(events, now, SCHEMA, max_inactive=None)["dispute_id"]) == [
        "before", "dormant", "outcome_now",
    ]  # fmt: skip


def test_open_disputes_respects_closed_at():
    events = events_frame([("a", "2024-01-01", "call"), ("b", "2024-01-01", "call")])
    entities = pd.DataFrame(
        {"dispute_id": ["a", "b"], "closed_at": [pd.Timestamp("2024-02-10 12:00"), pd.NaT]}
    )
    out = open_disputes(events, "2024-02-10 13:30", SCHEMA, entities=entities)
    assert out["dispute_id"].tolist() == ["b"]


@pytest.mark.parametrize("placeholder", ["1900-01-01", "1970-01-01 00:00:00", "0001-01-01"])
def test_a_closing_time_before_the_first_event_closes_nothing(placeholder):
    """Exports write a date for 'still open' (1900-01-01 from SQL Server or Excel, the Unix
    epoch, .NET's 0001-01-01): read as a closing, it took every open dispute off the lists
    without a word (72% of a night's). A closing before the dispute's first event is no
    closing: warned, counted, the dispute open; a real closing still closes."""
    events = events_frame([("a", "2024-01-01", "call"), ("b", "2024-01-01", "call"), ("c", "2024-01-01", "call")])
    entities = pd.DataFrame({"dispute_id": ["a", "b", "c"],
                             "closed_at": [placeholder, placeholder, "2024-01-20 00:00:00"]})
    with pytest.warns(DataWarning, match=r"'closed_at': 2 dispute\(s\) closed before their first event.*"
                                         r"placeholder for 'still open'") as caught:
        out = open_disputes(events, AS_OF, SCHEMA, entities=entities)
    shown = placeholder[:10] if placeholder > "1678" else "before 1678"  # not the time pandas pins it to
    assert any(f"e.g. {shown}" in str(w.message) for w in caught)
    assert out["dispute_id"].tolist() == ["a", "b"]
    with pytest.warns(DataWarning, match="closed before their first event") as caught:
        cutoffs = make_cutoffs(events, SCHEMA, entities=entities, start="2024-01-15", end="2024-02-15", freq="7D")
    assert {w.filename for w in caught} == {__file__}  # the warning names the caller's line
    assert set(cutoffs["dispute_id"]) == {"a", "b", "c"} and cutoffs.loc[cutoffs["dispute_id"] == "c", "as_of"].max() \
        < pd.Timestamp("2024-01-20")


def test_open_disputes_with_timezone_aware_as_of():
    events = pd.DataFrame({"dispute_id": ["a"], "time": ["2024-01-01T00:00:00Z"], "kind": ["call"]})
    out = open_disputes(events, pd.Timestamp("2024-02-10 13:30", tz="UTC"), SCHEMA)
    # in the events' convention (UTC-aware), so the cutoffs go straight back into the model
    assert out["as_of"].tolist() == [pd.Timestamp("2024-02-10 13:30", tz="UTC")]


def test_timezone_aware_events_round_trip_through_cutoffs_labels_and_features():
    """The library's own cutoffs keep the events' convention, so its next step accepts them."""
    events = pd.DataFrame({"dispute_id": ["a", "a", "b", "b"],
                           "time": ["2024-01-03T10:00:00+08:00", "2024-02-20T10:00:00+08:00",
                                    "2024-01-05T10:00:00+08:00", "2024-03-02T10:00:00+08:00"],
                           "kind": ["call", "injury", "call", "call"]})
    cutoffs = make_cutoffs(events, SCHEMA)
    assert str(cutoffs["as_of"].dt.tz) == "UTC"
    labels = make_labels(events, cutoffs, SCHEMA, horizon="30D", observed_until="2024-06-01")
    assert str(labels["as_of"].dt.tz) == "UTC"
    assert labels["label"].tolist() == [1, 0, 0]  # a escalates within 30 days of its cutoff
    fb = FeatureBuilder(schema=SCHEMA, families=("counts",), windows=("30D",))
    X = fb.fit_transform(events, labels)
    assert len(X) == len(labels) and X["count_all_all"].iloc[-1] > 0
    naive = labels.assign(as_of=labels["as_of"].dt.tz_localize(None))
    with pytest.raises(DataError, match="are naive times, but the model was trained on timezone-aware"):
        fb.transform(events, naive)  # a user's naive times: refused, in the words of a fitted builder


def test_the_cutoff_grid_is_at_midnight_whatever_the_first_events_time():
    """make_cutoffs' monthly grid is the first of every month at midnight, as documented: it
    took the first event's time of day, and one earlier event moved every cutoff."""
    events = events_frame([("a", "2024-01-03 08:44:49", "call"), ("a", "2024-03-20", "call"),
                           ("b", "2024-01-10 13:00", "call"), ("b", "2024-04-02", "call")])
    cutoffs = make_cutoffs(events, SCHEMA)
    assert (cutoffs["as_of"] == cutoffs["as_of"].dt.normalize()).all() and (cutoffs["as_of"].dt.day == 1).all()
    earlier = pd.concat([events, events_frame([("c", "2023-12-30 23:59:59", "call")])], ignore_index=True)
    again = make_cutoffs(earlier, SCHEMA)
    pd.testing.assert_frame_equal(again[again["dispute_id"] != "c"].reset_index(drop=True), cutoffs)


def test_the_grid_of_aware_events_is_at_their_own_midnight():
    """Events written with +08:00: the monthly grid is the first of the month at Beijing's
    midnight (16:00 UTC the day before), not UTC's (08:00 in Beijing)."""
    events = pd.DataFrame({"dispute_id": ["a", "a"], "time": ["2024-01-03T08:44:49+08:00", "2024-03-20T10:00:00+08:00"],
                           "kind": ["call", "call"]})
    cutoffs = make_cutoffs(events, SCHEMA)
    local = cutoffs["as_of"].dt.tz_convert("Asia/Shanghai")
    assert len(cutoffs) and (local == local.dt.normalize()).all() and (local.dt.day == 1).all()


def test_ids_written_as_numbers_and_as_text_are_one_dispute():
    """Integer ids in the events and the same ids as text in the cutoffs (or the reverse) are
    one dispute, as in the features: every label was 0."""
    events = events_frame([(2895, "2024-01-01", "call"), (2895, "2024-02-15", "criminal_case"),
                           (7, "2024-01-05", "call")])
    cutoffs = cutoffs_frame([2895, 7], [AS_OF, AS_OF])
    want = make_labels(events, cutoffs, SCHEMA, horizon="30D", observed_until=FAR)["label"].tolist()
    assert want == [1, 0]
    as_text = cutoffs.assign(dispute_id=cutoffs["dispute_id"].astype(str))
    assert make_labels(events, as_text, SCHEMA, horizon="30D", observed_until=FAR)["label"].tolist() == want
    text_events = events.assign(dispute_id=events["dispute_id"].astype(str))
    assert make_labels(text_events, cutoffs, SCHEMA, horizon="30D", observed_until=FAR)["label"].tolist() == want


def test_keyword_arguments_are_checked_in_their_own_names():
    """A lone outcome kind is one kind (not its letters); durations without a unit, times that
    are not times and frequencies pandas does not know are refused naming the keyword (they were
    read as nanoseconds, split into letters, or raised pandas' own errors); an outcome kind the
    log never holds warns."""
    events = events_frame([("a", "2024-01-01", "call"), ("a", "2024-02-15", "criminal_case")])
    cutoffs = cutoffs_frame(["a"], [AS_OF])
    assert make_labels(events, cutoffs, SCHEMA, outcome_kinds="criminal_case", horizon="30D")["label"].tolist() == [1]
    assert len(open_disputes(events, "2024-03-01", SCHEMA, outcome_kinds="criminal_case")) == 0
    cases = [
        (lambda: make_cutoffs(events, SCHEMA, max_inactive=365), "max_inactive 365 has no unit"),
        (lambda: make_cutoffs(events, SCHEMA, max_inactive="-30D"), "max_inactive must be positive"),
        (lambda: make_cutoffs(events, SCHEMA, freq="monthly"), "freq 'monthly' is not a pandas frequency"),
        (lambda: make_cutoffs(events, SCHEMA, freq="0D"), "freq '0D' is not a step forward in time"),  # ZeroDivisionError
        (lambda: make_cutoffs(events, SCHEMA, freq="-7D"), "freq '-7D' is not a step forward in time"),
        (lambda: make_cutoffs(events, SCHEMA, start="2024-13-01"), "start='2024-13-01' is not a date"),
        (lambda: make_labels(events, cutoffs, SCHEMA, observed_until="soon"), "observed_until='soon' is not a date"),
        (lambda: open_disputes(events, 20240601, SCHEMA), "as_of=20240601 is a number"),
        (lambda: make_labels(events, cutoffs, SCHEMA, outcome_kinds=[3]), "outcome_kinds must be event kinds"),
    ]
    for call, message in cases:
        with pytest.raises(DataError, match=re.escape(message)):
            call()
    with pytest.raises(DataError) as zero:  # the command line reads freq from the config's [labels]
        make_cutoffs(events, SCHEMA, freq="0D")
    assert zero.value.for_cli().startswith("[labels] freq = '0D' is not a step forward in time")
    with pytest.warns(DataWarning, match=r"none of the outcome kinds \['asault'\] occurs .*'criminal_case'"):
        make_labels(events, cutoffs, SCHEMA, outcome_kinds=["asault"], horizon="30D")
    with pytest.warns(DataWarning, match=r"none of the outcome kinds \['asault'\] occurs .*no dispute ever escalates"):
        make_cutoffs(events, SCHEMA, outcome_kinds=["asault"])
    with warnings.catch_warnings():  # scoring: a log of open disputes holds no outcome by nature
        warnings.simplefilter("error", DataWarning)
        assert len(open_disputes(events.iloc[:1], "2024-03-01", SCHEMA)) == 1


def test_a_grid_finer_than_the_disputes_warrant_is_warned_not_refused():
    """An hourly grid over a year makes ~8,000 cutoffs per dispute (1.9M from 500 disputes
    before this warning, without a word); a monthly one makes 11 and stays silent."""
    events = events_frame([(d, t, "call") for d in ("a", "b") for t in ("2023-01-01", "2023-12-31")])
    with pytest.warns(DataWarning, match=r"freq 'h' makes 17,4\d\d cutoffs, 8,7\d\d per dispute on average.*'MS'"):
        hourly = make_cutoffs(events, SCHEMA, freq="h", max_inactive=None)
    assert hourly["dispute_id"].value_counts().gt(1_000).all()  # warned, nothing dropped
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        monthly = make_cutoffs(events, SCHEMA, freq="MS", max_inactive=None)
    assert len(monthly) == 22 and not [w for w in caught if "per dispute" in str(w.message)]


def test_open_disputes_takes_the_closings_a_caller_already_read():
    """A caller that needs the closing times itself (the nightly batch: its not-open reasons and
    the manifest's placeholder count) reads them once with closing_times and gives them as
    closed_ns: the cutoffs of entities=, the placeholder warning given once (closing_times', at
    the caller's line), none by open_disputes; both at once, or not one closing per dispute, refused."""
    from riskmodel import prepare_events, validate_entities
    from riskmodel.data import closing_times

    events = events_frame([("d", "2024-01-05", "call"), ("a", "2024-01-01", "call"), ("b", "2024-01-02", "call"),
                           ("c", "2024-01-03", "call"), ("e", "2024-01-04", "injury"), ("a", "2024-01-09", "call")])
    entities = pd.DataFrame({"dispute_id": ["c", "a", "b", "d", "zz"],
                             "closed_at": ["2024-01-20", "1900-01-01", None, "9999-12-31", "2024-01-01"]})
    with pytest.warns(DataWarning, match="closed before their first event"):
        expected = open_disputes(events, AS_OF, SCHEMA, entities=entities)
    prepared = prepare_events(events, SCHEMA)
    with pytest.warns(DataWarning, match=r"1 dispute\(s\) closed before their first event") as caught:
        closed_ns, before = closing_times(validate_entities(entities, SCHEMA), SCHEMA, prepared.entity_ids,
                                          prepared.first_times()[:-1], stacklevel=1)
    assert len(caught) == 1 and caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        out = open_disputes(prepared, AS_OF, SCHEMA, closed_ns=closed_ns)
    pd.testing.assert_frame_equal(out, expected)
    assert out["dispute_id"].tolist() == ["a", "b", "d"] and before.sum() == 1
    with pytest.raises(DataError, match="pass entities or closed_ns"):
        open_disputes(prepared, AS_OF, SCHEMA, entities=entities, closed_ns=closed_ns)
    with pytest.raises(DataError, match="closed_ns holds 4 closing time.*for 5 disputes"):
        open_disputes(prepared, AS_OF, SCHEMA, closed_ns=closed_ns[:-1])


def test_a_timezone_aware_grid_bound_with_naive_events_is_refused_in_the_keywords_words():
    """``start="2024-01-15T00:00:00+08:00"`` with naive (local) event times was read as UTC and
    compared with the local times, 8 hours off, silently; cutoffs and as_of refuse the mix, and
    so do the grid's bounds and ``observed_until``. A naive bound with aware events is UTC, as
    documented, and an aware bound with aware events is the same instant."""
    events = events_frame([("a", "2024-01-01", "call"), ("a", "2024-03-01", "call")])
    for key in ("start", "end"):
        with pytest.raises(DataError, match=rf"{key}='2024-02-01T00:00:00\+08:00' is timezone-aware, but the "
                                            rf"events' times are naive .* Give {key} without a timezone"):
            make_cutoffs(events, SCHEMA, **{key: "2024-02-01T00:00:00+08:00"})
    with pytest.raises(DataError, match="observed_until=.* is timezone-aware, but the events' times are naive"):
        make_labels(events, cutoffs_frame(["a"], ["2024-02-01"]), SCHEMA, observed_until="2024-06-01T00:00:00Z")
    with pytest.raises(DataError, match="as_of=.* is timezone-aware, but the events' times are naive"):
        open_disputes(events, "2024-02-01T00:00:00+08:00", SCHEMA)
    plain = make_cutoffs(events, SCHEMA, start="2024-01-15", end="2024-02-15", freq="7D")
    assert len(plain) == 5
    aware = events.assign(time=pd.to_datetime(events["time"]).dt.tz_localize("Asia/Shanghai"))
    utc = make_cutoffs(aware, SCHEMA, start="2024-01-14T16:00:00", end="2024-02-15", freq="7D")
    beijing = make_cutoffs(aware, SCHEMA, start="2024-01-15T00:00:00+08:00", end="2024-02-15", freq="7D")
    pd.testing.assert_frame_equal(utc, beijing)
