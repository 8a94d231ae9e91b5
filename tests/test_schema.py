"""EventSchema and validation: every bad input gives a DataError (or DataWarning) that says why."""

import dataclasses
import datetime
import doctest
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import riskmodel.data._schema as schema_module
from riskmodel import (
    DataError,
    DataWarning,
    EventSchema,
    prepare_events,
    validate_cutoffs,
    validate_entities,
    validate_events,
)
from riskmodel.data._schema import cutoffs_at, split_invalid_events, times_aware
from riskmodel.lifecycle._intake import take_in

SCHEMA = EventSchema(text_col=None, party_col=None)
NOW = pd.Timestamp("2025-01-01")


def make_events(**columns):
    data = {
        "dispute_id": ["a", "a", "b", "c"],
        "time": ["2024-01-01", "2024-01-02 10:30", "2024-01-03", "2024-02-01"],
        "kind": ["call", "threat", "call", "mediation_failed"],
    }
    data.update(columns)
    return pd.DataFrame(data)


def make_entities(ids=("a", "b", "c"), **columns):
    n = len(ids)
    data = {
        "dispute_id": list(ids),
        "category": ["neighbour"] * n,
        "station": ["S1"] * n,
        "opened_at": ["2023-12-30"] * n,
        "closed_at": [None] * n,
    }
    data.update(columns)
    return pd.DataFrame(data)


@pytest.fixture(params=["str", "object", "datetime64[ns]", "datetime64[us]", "Timestamp objects"])
def time_flavour(request):
    """The same times in the dtypes users hand us."""
    text = pd.Series(["2024-01-01", "2024-01-02 10:30", "2024-01-03", "2024-02-01"])
    flavour = request.param
    if flavour == "str":
        return text.astype("str")
    if flavour == "object":
        return text.astype(object)
    if flavour == "Timestamp objects":
        return pd.Series([pd.Timestamp(t) for t in text], dtype=object)
    return pd.to_datetime(text, format="mixed").astype(flavour)


def no_warnings(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return func(*args, **kwargs)


# --------------------------------------------------------------------------------------
# events: the happy path over input flavours


def test_valid_events_any_time_flavour(time_flavour):
    clean = no_warnings(validate_events, make_events(time=time_flavour), SCHEMA, now=NOW)
    assert clean["time"].dtype == "datetime64[ns]"
    assert len(clean) == 4
    assert clean["time"].iloc[1] == pd.Timestamp("2024-01-02 10:30")
    # sorted by entity then time, index reset
    assert list(clean["dispute_id"]) == ["a", "a", "b", "c"]
    assert list(clean.index) == [0, 1, 2, 3]


def test_valid_events_are_sorted_by_entity_then_time():
    events = make_events(
        dispute_id=["b", "a", "b", "a"],
        time=["2024-01-05", "2024-01-04", "2024-01-01", "2024-01-02"],
    )
    clean = validate_events(events, SCHEMA, now=NOW)
    assert list(clean["dispute_id"]) == ["a", "a", "b", "b"]
    assert list(clean["time"]) == list(
        pd.to_datetime(["2024-01-02", "2024-01-04", "2024-01-01", "2024-01-05"])
    )


def test_extra_columns_are_not_required_and_input_is_not_modified():
    events = make_events(officer=["x", "y", "z", "w"])
    before = events.copy()
    validate_events(events, SCHEMA, now=NOW)
    pd.testing.assert_frame_equal(events, before)


# --------------------------------------------------------------------------------------
# events: errors


def test_not_a_dataframe():
    with pytest.raises(DataError, match="events must be a pandas DataFrame, got list"):
        validate_events([{"dispute_id": "a"}], SCHEMA)


@pytest.mark.parametrize("column", ["dispute_id", "time", "kind"])
def test_missing_column_is_named(column):
    with pytest.raises(DataError, match=rf"missing required column\(s\) \['{column}'\]"):
        validate_events(make_events().drop(columns=column), SCHEMA)


def test_missing_optional_schema_column_is_named():
    with pytest.raises(
        DataError, match=r"missing required column\(s\) \['narrative', 'party_id'\]"
    ):
        validate_events(make_events(), EventSchema())


def test_custom_column_names():
    schema = EventSchema(
        entity_col="case", time_col="ts", kind_col="type", text_col=None, party_col=None
    )
    events = make_events().rename(columns={"dispute_id": "case", "time": "ts", "kind": "type"})
    assert list(validate_events(events, schema, now=NOW).columns) == ["case", "ts", "type"]
    with pytest.raises(DataError, match=r"missing required column\(s\) \['case', 'ts', 'type'\]"):
        validate_events(make_events(), schema)


def test_empty_events():
    with pytest.raises(DataError, match=r"events is empty \(0 rows\)"):
        validate_events(make_events().iloc[:0], SCHEMA)


def test_null_ids():
    events = make_events(dispute_id=["a", None, "b", np.nan])
    with pytest.raises(
        DataError, match=r"2 row\(s\) with null id in 'dispute_id' \(first rows: \[1, 3\]\)"
    ):
        validate_events(events, SCHEMA, now=NOW)


def test_unparseable_times():
    events = make_events(time=["2024-01-01", "not a date", "2024-13-45", "2024-02-01"])
    with pytest.raises(
        DataError, match=r"2 row\(s\) with unparseable time in 'time' \(first rows: \[1, 2\]\)"
    ):
        validate_events(events, SCHEMA, now=NOW)


def test_missing_times():
    events = make_events(time=["2024-01-01", None, "2024-01-03", "2024-02-01"])
    with pytest.raises(
        DataError, match=r"1 row\(s\) with missing time in 'time' \(first rows: \[1\]\)"
    ):
        validate_events(events, SCHEMA, now=NOW)


def test_mixed_aware_and_naive_times():
    events = make_events(
        time=["2024-01-01T08:00:00+08:00", "2024-01-02", "2024-01-03", "2024-02-01Z"]
    )
    with pytest.raises(
        DataError, match=r"mixes timezone-aware and naive times \(2 aware, 2 naive\)"
    ):
        validate_events(events, SCHEMA, now=NOW)


@pytest.mark.parametrize(
    "times", [[1, 2, 3, 4], [1.7e9, 1.7e9, 1.7e9, 1.7e9], [True, False, True, True]]
)
def test_numeric_times_are_refused(times):
    with pytest.raises(
        DataError, match=r"column 'time' holds numbers .*pd.to_datetime\(x, unit='s'\)"
    ):
        validate_events(make_events(time=times), SCHEMA, now=NOW)


def test_numeric_kind_column():
    with pytest.raises(
        DataError, match=r"column 'kind' must hold event kinds as strings, got int64"
    ):
        validate_events(make_events(kind=[1, 2, 1, 3]), SCHEMA, now=NOW)


def test_object_kind_column_with_a_few_ints():
    events = make_events(kind=pd.Series(["call", 7, "call", 8], dtype=object))
    with pytest.raises(
        DataError, match=r"2 row\(s\) with kind is not a string in 'kind' \(first rows: \[1, 3\]\)"
    ):
        validate_events(events, SCHEMA, now=NOW)


def test_categorical_kinds_are_accepted_as_strings():
    clean = validate_events(
        make_events(kind=pd.Categorical(["call", "threat", "call", "x"])), SCHEMA, now=NOW
    )
    assert not isinstance(clean["kind"].dtype, pd.CategoricalDtype)
    assert list(clean["kind"]) == ["call", "threat", "call", "x"]


def test_categorical_kinds_give_the_clean_rows_of_their_strings():
    """A categorical kind column (categories in an order of their own, unused ones, a
    missing kind) gives the clean rows and rejects that the same kinds as strings give."""
    rng = np.random.default_rng(5)
    n = 400
    words = np.array(["call", "threat", "x", "visit"], dtype=object)
    kinds = words[rng.integers(0, 4, n)]
    kinds[rng.choice(n, 7, replace=False)] = None
    events = make_events(dispute_id=[f"d{i}" for i in rng.integers(0, 40, n)],
                         time=pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**5, n), unit="min"),
                         kind=kinds)
    as_strings = split_invalid_events(events, SCHEMA, now=NOW)
    categorical = events.assign(kind=pd.Categorical(kinds, categories=["visit", "unused", "x", "threat", "call"]))
    clean, rejects, info = split_invalid_events(categorical, SCHEMA, now=NOW)
    assert len(rejects) == 7 and info == as_strings[2]
    pd.testing.assert_frame_equal(rejects, as_strings[1])
    pd.testing.assert_frame_equal(clean, as_strings[0].astype({"kind": clean["kind"].dtype}))
    assert clean["kind"].map(type).eq(str).all()


def test_absurd_dates():
    events = make_events(time=["1899-12-31", "2024-01-02", "1900-01-01", "1777-07-04"])
    with pytest.raises(
        DataError,
        match=r"2 row\(s\) with time before 1900-01-01 in 'time' \(first rows: \[0, 3\]\)",
    ):
        validate_events(events, SCHEMA, now=NOW)


@pytest.mark.parametrize("absurd", ["1066-10-14", "2300-01-01"])
def test_dates_outside_nanosecond_range(absurd):
    events = make_events(time=["2024-01-01", "2024-01-02", absurd, "2024-02-01"])
    with pytest.raises(DataError, match=r"1 row\(s\) with time (before 1900-01-01|in the future)"):
        validate_events(events, SCHEMA, now=NOW)


def test_events_in_the_future():
    events = make_events(time=["2024-01-01", "2025-01-01 00:00:01", "2024-01-03", "2031-01-01"])
    with pytest.raises(
        DataError, match=r"2 row\(s\) with time in the future \(after 2025-01-01 00:00:00\)"
    ):
        validate_events(events, SCHEMA, now=NOW)
    # exactly `now` is not the future
    events = make_events(time=["2024-01-01", "2025-01-01", "2024-01-03", "2024-02-01"])
    assert len(validate_events(events, SCHEMA, now=NOW)) == 4


def test_default_now_is_the_wall_clock():
    far = (pd.Timestamp.now() + pd.Timedelta(days=30)).strftime("%Y-%m-%d")
    with pytest.raises(DataError, match="time in the future"):
        validate_events(make_events(time=["2024-01-01", far, "2024-01-03", "2024-02-01"]), SCHEMA)
    # the end of tomorrow (UTC), for training and nightly scoring alike: a naive local time of
    # tomorrow morning east of UTC is not the future
    from riskmodel.data import default_now

    tomorrow = pd.Timestamp.now(tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=1, hours=23)
    assert default_now() > tomorrow
    assert len(validate_events(make_events(time=["2024-01-01", str(tomorrow), "2024-01-03", "2024-02-01"]), SCHEMA)) == 4


@pytest.mark.parametrize("times", [["21-11-2023", "05-12-2023"], ["21-11-2023", "21-06-2023 13:06"]])
def test_day_first_dates_with_dashes_are_not_utc_offsets(times):
    """``-2023`` at the end of a date is its year, not an offset of -20:23: the times are
    naive (an offset counts only after a time of day)."""
    from riskmodel.data import parse_times, times_aware

    values = pd.Series(times, dtype=object)
    parsed, aware = parse_times(values, "time", "events")
    assert aware is False and times_aware(values) is False
    assert parsed.notna().all()
    assert parse_times(pd.Series(["2024-03-01 08:00+0800"]), "time", "events")[1] is True


def test_several_problems_are_all_reported():
    events = make_events(
        dispute_id=["a", None, "b", "c"], time=["2024-01-01", "2024-01-02", "oops", "2024-02-01"]
    )
    with pytest.raises(DataError) as info:
        validate_events(events, SCHEMA, now=NOW)
    assert "null id in 'dispute_id' (first rows: [1])" in str(info.value)
    assert "unparseable time in 'time' (first rows: [2])" in str(info.value)


@pytest.mark.parametrize("blank", [True, False])
@pytest.mark.parametrize("index", ["repeated", "labels", "range"])
def test_rejected_rows_are_named_by_label_or_by_position_where_labels_repeat(index, blank):
    """A rejected row is named by its index label; where the index repeats a label (a
    ``pd.concat`` keeps each frame's), a label names several rows, so rows are named by
    position and the message says so: in the error (validate_events, prepare_events, which
    a transform and the predictor run) and in the rejects' index. With a blank id (rejected
    on a second pass) or without."""
    events = make_events(dispute_id=["a", "a", None, "b", "   " if blank else "d", "c"],
                         time=["2024-01-01", "2024-01-02", "2024-01-02", "oops", "2024-01-03", "2024-02-01"],
                         kind=["call"] * 6)
    labels = {"repeated": [0, 0, 1, 1, 0, 1], "labels": [f"r{i}" for i in range(6)], "range": list(range(6))}[index]
    events.index = labels
    named = ([2, 3, 4] if index != "labels" else ["r2", "r3", "r4"])[:3 if blank else 2]
    null_ids = f"{len(named) - 1} row(s) with null id in 'dispute_id' (first rows: {[named[0], *named[2:]]})"
    note = "counted by position from 0: the index repeats labels"
    for validate in (lambda: validate_events(events, SCHEMA, now=NOW), lambda: prepare_events(events, SCHEMA, now=NOW)):
        with pytest.raises(DataError) as info:
            validate()
        message = str(info.value)
        assert null_ids in message
        assert f"1 row(s) with unparseable time in 'time' (first rows: {[named[1]]})" in message
        assert (note in message) == (index == "repeated")
    with pytest.raises(DataError) as info:  # a training extract given as a frame
        take_in(events, SCHEMA)
    assert f"(first rows: {[named[0], *named[2:]]})" in str(info.value)
    assert (note in str(info.value)) == (index == "repeated")
    _, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    assert rejects.index.tolist() == named
    assert pd.isna(rejects["dispute_id"].iloc[0]) and rejects["dispute_id"].tolist()[1:] == ["b", "   "][:len(named) - 1]


# --------------------------------------------------------------------------------------
# times: timezones


def test_aware_strings_become_utc_naive():
    events = make_events(
        time=[
            "2024-01-01T08:00:00+08:00",
            "2024-01-02T10:30:00Z",
            "2024-01-03T00:00:00-05:00",
            "2024-02-01 12:00+0000",
        ]
    )
    clean, _, info = split_invalid_events(events, SCHEMA, now=NOW)
    assert info["tz_aware"] is True
    assert clean["time"].dtype == "datetime64[ns]"
    expected = pd.to_datetime(
        ["2024-01-01 00:00", "2024-01-02 10:30", "2024-01-03 05:00", "2024-02-01 12:00"]
    )
    assert list(clean["time"]) == list(expected)


def test_aware_datetime_column_becomes_utc_naive():
    times = pd.to_datetime(
        ["2024-01-01 08:00", "2024-01-02", "2024-01-03", "2024-02-01"], format="mixed"
    )
    times = times.tz_localize("Asia/Shanghai")
    clean, _, info = split_invalid_events(make_events(time=times), SCHEMA, now=NOW)
    assert info["tz_aware"] is True
    assert clean["time"].iloc[0] == pd.Timestamp("2024-01-01 00:00")
    assert clean["time"].dtype == "datetime64[ns]"


def test_naive_times_are_taken_as_they_are():
    clean, _, info = split_invalid_events(make_events(), SCHEMA, now=NOW)
    assert info["tz_aware"] is False
    assert clean["time"].iloc[1] == pd.Timestamp("2024-01-02 10:30")


# --------------------------------------------------------------------------------------
# duplicates and reconciliation


def test_exact_duplicates_dropped_with_count_and_nothing_else():
    base = make_events()
    near = base.iloc[[0]].assign(time="2024-01-01 00:00:01")  # one second later: a different event
    other_kind = base.iloc[[0]].assign(kind="threat")
    events = pd.concat([base, base.iloc[[0, 0, 2]], near, other_kind], ignore_index=True)
    with pytest.warns(DataWarning, match=r"dropped 3 exact duplicate event row\(s\)"):
        clean = validate_events(events, SCHEMA, now=NOW)
    assert len(clean) == len(events) - 3 == 6
    assert clean.drop_duplicates().shape == clean.shape


def test_no_duplicates_no_warning():
    no_warnings(validate_events, make_events(), SCHEMA, now=NOW)


def test_duplicates_are_judged_on_the_schemas_columns():
    """Rows differing only in a column the schema does not name are duplicates, as the
    nightly batch (which reads the schema's columns only) judges them; naming the column in
    event_attribute_cols tells them apart."""
    events = make_events().iloc[[0, 0]].assign(event_id=[1, 2])
    with pytest.warns(DataWarning, match=r"dropped 1 exact duplicate.*event_attribute_cols"):
        assert len(validate_events(events, SCHEMA, now=NOW)) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        named = dataclasses.replace(SCHEMA, event_attribute_cols=("event_id",))
        assert len(validate_events(events, named, now=NOW)) == 2


def test_split_invalid_events_reconciles():
    events = pd.DataFrame(
        {
            "dispute_id": ["a", None, "b", "c", "c", "d", "e", "f", "a"],
            "time": ["2024-01-01", "2024-01-02", "junk", "2024-01-01", "2024-01-01", "1800-01-01",
                     "2030-01-01", "2024-03-01", "2024-01-05"],
            "kind": ["call", "call", "call", "x", "x", "call", "call", None, "threat"],
        }
    )  # fmt: skip
    with pytest.warns(DataWarning, match=r"dropped 1 exact duplicate"):
        clean, rejects, info = split_invalid_events(events, SCHEMA, now=NOW)
    assert len(clean) + len(rejects) + info["duplicates_dropped"] == len(events)
    assert info["tz_aware"] is False and info["duplicates_dropped"] == 1
    reasons = rejects["reject_reason"].to_dict()
    assert reasons == {
        1: "null id in 'dispute_id'",
        2: "unparseable time in 'time'",
        5: "time before 1900-01-01 in 'time'",
        6: f"time in the future (after {NOW}) in 'time'",
        7: "missing kind in 'kind'",
    }
    # original values kept (as strings) so a reject file shows what came in
    assert rejects.loc[2, "time"] == "junk"
    assert list(clean["dispute_id"]) == ["a", "a", "c"]


def test_absurd_dates_outside_nanoseconds_are_rejected():
    """A microsecond or second column (parquet, Arrow, a Spark table) holds dates pandas'
    nanoseconds cannot: they are rejected as absurd, tz-aware or not, not a crash."""
    import pyarrow as pa

    stamps = [datetime.datetime(1001, 1, 1), datetime.datetime(2024, 1, 1), datetime.datetime(9999, 6, 1),
              datetime.datetime(2024, 2, 1)]
    for unit, tz in (("us", None), ("s", "Asia/Shanghai")):
        times = pa.array(stamps, pa.timestamp(unit, tz=tz)).to_pandas()
        assert str(times.dtype).startswith(f"datetime64[{unit}")
        clean, rejects, _ = split_invalid_events(make_events(time=times), SCHEMA, now=NOW)
        assert list(rejects["reject_reason"]) == ["time before 1900-01-01 in 'time'",
                                                  f"time in the future (after {NOW}) in 'time'"]
        assert rejects["time"].str.startswith(("1001-01-01", "9999-06-01")).all()  # as they came in
        assert len(clean) == 2


@pytest.mark.parametrize("dtype", ["float64", "Int64", "boolean"])
def test_a_time_or_kind_column_without_values_is_rows_without_them(dtype):
    """An empty column (pandas reads an empty CSV column as float64) has no numbers in it:
    every row is rejected for its missing time or kind, not the column refused."""
    missing = pd.array([None] * 4, dtype=dtype)
    clean, rejects, _ = split_invalid_events(make_events(time=missing), SCHEMA, now=NOW)
    assert len(clean) == 0 and set(rejects["reject_reason"]) == {"missing time in 'time'"}
    clean, rejects, _ = split_invalid_events(make_events(kind=missing), SCHEMA, now=NOW)
    assert len(clean) == 0 and set(rejects["reject_reason"]) == {"missing kind in 'kind'"}


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]", "category"])
@pytest.mark.parametrize("rows", [4, 400])  # a few values (a dict) and many (hashed, Arrow-encoded)
def test_blank_kinds_are_missing_kinds(dtype, rows):
    """An empty or whitespace-only kind (a CHAR(n) column's empty value, which trimming made
    the kind ``""``) is a missing kind: rejected with that reason, never counted as a kind, in
    every dtype; ``fit`` learns no such kind. It used to become a kind ``""`` of its own."""
    from riskmodel import FeatureBuilder

    kinds = pd.Series(["call", "   ", "", "threat"] * (rows // 4), dtype=dtype)
    events = pd.DataFrame({"dispute_id": [f"d{i // 4}" for i in range(rows)],
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="h"),
                           "kind": kinds})
    clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    assert len(rejects) == rows // 2 and set(rejects["reject_reason"]) == {"missing kind in 'kind'"}
    assert sorted(set(clean["kind"].astype(str))) == ["call", "threat"] and len(clean) + len(rejects) == rows
    assert FeatureBuilder(schema=SCHEMA, families=("counts",)).fit(events).kinds_ == ["call", "threat"]


def test_split_invalid_events_still_raises_on_column_level_problems():
    with pytest.raises(DataError, match="holds numbers"):
        split_invalid_events(make_events(time=[1, 2, 3, 4]), SCHEMA)
    with pytest.raises(DataError, match="missing required column"):
        split_invalid_events(make_events().drop(columns="kind"), SCHEMA)


# --------------------------------------------------------------------------------------
# entities


def test_entities_without_events_are_kept():
    events = validate_events(make_events(), SCHEMA, now=NOW)
    ents = no_warnings(
        validate_entities, make_entities(ids=("a", "b", "c", "zz")), SCHEMA, events=events
    )
    assert list(ents["dispute_id"]) == ["a", "b", "c", "zz"]
    assert ents["category"].dtype == "category"
    assert ents["opened_at"].dtype == "datetime64[ns]"


def test_events_without_entity_row_warn_with_count_and_are_kept():
    events = validate_events(make_events(), SCHEMA, now=NOW)
    with pytest.warns(
        DataWarning, match=r"2 event\(s\) of 1 dispute\(s\) have no entities row; they are kept"
    ):
        ents = validate_entities(make_entities(ids=("b", "c")), SCHEMA, events=events)
    assert list(ents["dispute_id"]) == ["b", "c"]
    assert len(events) == 4


def test_duplicate_entity_ids():
    with pytest.raises(
        DataError, match=r"entities: 2 row\(s\) share an id in 'dispute_id'.*\['b'\]"
    ):
        validate_entities(make_entities(ids=("a", "b", "b")), SCHEMA)


def test_null_entity_ids():
    with pytest.raises(DataError, match=r"entities: 1 row\(s\) with null id in 'dispute_id'"):
        validate_entities(make_entities(ids=("a", None, "c")), SCHEMA)


def test_entities_missing_column_is_named():
    with pytest.raises(DataError, match=r"entities is missing required column\(s\) \['station'\]"):
        validate_entities(make_entities().drop(columns="station"), SCHEMA)


def test_entities_unparseable_time_warns_and_becomes_missing():
    with pytest.warns(DataWarning, match=r"'opened_at': 1 unparseable time"):
        ents = validate_entities(make_entities(opened_at=["2024-01-01", "garbage", None]), SCHEMA)
    assert ents["opened_at"].isna().tolist() == [False, True, True]


def test_entities_none_passes_through():
    assert validate_entities(None, SCHEMA) is None


# --------------------------------------------------------------------------------------
# cutoffs


def test_cutoffs_keep_order_and_parse():
    cutoffs = pd.DataFrame(
        {"dispute_id": ["b", "a"], "as_of": ["2024-03-01", "2024-02-01"]}, index=[7, 3]
    )
    out = validate_cutoffs(cutoffs, SCHEMA)
    assert list(out.index) == [7, 3]
    assert out["as_of"].dtype == "datetime64[ns]"
    assert list(out["dispute_id"]) == ["b", "a"]


def test_cutoffs_unparseable_as_of():
    cutoffs = pd.DataFrame({"dispute_id": ["a", "b"], "as_of": ["2024-01-01", "someday"]})
    with pytest.raises(
        DataError, match=r"1 row\(s\) with missing or unparseable 'as_of', e.g. \['someday'\]"
    ):
        validate_cutoffs(cutoffs, SCHEMA)


def test_cutoffs_missing_as_of_column():
    """'as_of' is the library's name, no schema role: the message said to pass an EventSchema
    naming it, which no EventSchema can."""
    with pytest.raises(DataError, match=r"cutoffs is missing the column 'as_of' \(the time each dispute is scored "
                                         r"at\); it has \['dispute_id', 'when'\]\. Name that column 'as_of'\.$"):
        validate_cutoffs(pd.DataFrame({"dispute_id": ["a"], "when": ["2024-01-01"]}), SCHEMA)


@pytest.mark.parametrize(
    ("as_of", "events_aware", "message"),
    [
        ("2024-01-01T00:00:00Z", False, r"\(events naive, as_of aware\)"),
        ("2024-01-01", True, r"\(events aware, as_of naive\)"),
    ],
)
def test_cutoffs_timezone_convention_must_match_events(as_of, events_aware, message):
    cutoffs = pd.DataFrame({"dispute_id": ["a"], "as_of": [as_of]})
    with pytest.raises(DataError, match="different timezone conventions " + message):
        validate_cutoffs(cutoffs, SCHEMA, tz_aware=events_aware)
    # the same convention is fine, and aware as_of becomes UTC naive
    out = validate_cutoffs(cutoffs, SCHEMA, tz_aware=not events_aware)
    assert out["as_of"].iloc[0] == pd.Timestamp("2024-01-01")


def test_cutoffs_absurd_as_of():
    with pytest.raises(DataError, match="before 1900-01-01 is not plausible"):
        validate_cutoffs(pd.DataFrame({"dispute_id": ["a"], "as_of": ["1850-01-01"]}), SCHEMA)


def test_cutoffs_labels_must_be_binary():
    cutoffs = pd.DataFrame({"dispute_id": ["a", "b"], "as_of": ["2024-01-01"] * 2, "y": [1, 2]})
    with pytest.raises(
        DataError, match=r"label column 'y' must hold 0/1; 1 row\(s\) do not, e.g. \[2\]"
    ):
        validate_cutoffs(cutoffs, SCHEMA, label_col="y")


# --------------------------------------------------------------------------------------
# EventSchema


def test_schema_round_trip():
    schema = EventSchema(
        entity_col="case", time_col="ts", kind_col="type", text_col=None,
        group_cols=("station",), outcome_kinds=("assault", "homicide"),
    )  # fmt: skip
    data = schema.to_dict()
    assert data["outcome_kinds"] == ["assault", "homicide"]  # plain lists, JSON-ready
    assert EventSchema.from_dict(data) == schema
    assert hash(EventSchema.from_dict(data)) == hash(schema)


def test_schema_unknown_keys_error():
    data = EventSchema().to_dict() | {"time_column": "ts", "colour": "red"}
    with pytest.raises(
        DataError, match=re.escape("EventSchema got unknown keys ['colour', 'time_column']")
    ):
        EventSchema.from_dict(data)


def test_schema_entities_id_defaults_to_entity_col():
    assert EventSchema(entity_col="case").entities_id == "case"
    assert EventSchema(entity_col="case", entities_id_col="id").entities_id == "id"


# --------------------------------------------------------------------------------------
# documentation


def test_validate_events_docstring_example_matches_reality():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(schema_module) if t.name.endswith(".validate_events")]
    assert len(tests) == 1 and tests[0].examples
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, "the validate_events docstring example is out of date"


@pytest.mark.parametrize(
    ("as_of", "tz_aware"),
    [(pd.Timestamp("2024-03-01 12:30"), False), ("2024-03-01", False), ("2024-03-01T08:00:00+08:00", True),
     (np.datetime64("2024-03-01T00:00"), None), (datetime.date(2024, 3, 1), False), ("2200-01-01", False),
     (pd.Timestamp("2024-03-01", tz="Asia/Shanghai"), True), ("13-03-2024", False)],
)
def test_cutoffs_at_one_time_equal_validated_cutoffs(as_of, tz_aware):
    """The scalar shortcut of ``cutoffs_at`` gives what ``validate_cutoffs`` gives, warnings
    included (an as_of after tomorrow). One date that does not say whether the day comes
    first (01-03-2024) is refused, as score_batch refuses it: a column's other rows may tell."""
    ids = np.array(["D1", "D2"], dtype=object)
    with warnings.catch_warnings(record=True) as fast_warnings:
        warnings.simplefilter("always")
        fast = cutoffs_at(ids, as_of, EventSchema(), tz_aware=tz_aware)
    frame = pd.DataFrame({"dispute_id": ids, "as_of": [as_of] * 2})
    with warnings.catch_warnings(record=True) as frame_warnings:
        warnings.simplefilter("always")
        expected = validate_cutoffs(frame, EventSchema(), tz_aware=tz_aware)
    pd.testing.assert_frame_equal(fast.to_frame(), expected)
    assert [type(w.message) for w in fast_warnings] == [type(w.message) for w in frame_warnings]


@pytest.mark.parametrize("as_of", ["3023-06-01", pd.Timestamp("2262-06-01")])
def test_as_of_past_the_time_range_is_refused_not_moved(as_of):
    """An as_of beyond datetime64[ns] (a year typo) is refused, one value or a column: it used
    to be moved to 2262-01-01 and scored."""
    with pytest.raises(DataError, match="after 2262 is not plausible"):
        cutoffs_at(np.array(["D1"], dtype=object), as_of, EventSchema(), tz_aware=False)
    with pytest.raises(DataError, match="after 2262 is not plausible"):
        validate_cutoffs(pd.DataFrame({"dispute_id": ["D1"], "as_of": [as_of]}), EventSchema(), tz_aware=False)


@pytest.mark.parametrize("unit", ["s", "ns"])
def test_arrow_timestamps_read_as_pandas_times(unit):
    """Arrow timestamps (read_parquet(dtype_backend="pyarrow")), any unit, naive or with a zone:
    a missing value stays missing (it became 2262-01-01 in ns), a zone is converted (it raised
    pandas' TypeError in ns)."""
    naive = pd.Series(pd.array([pd.Timestamp("2024-03-01 08:00"), None], dtype=f"timestamp[{unit}][pyarrow]"))
    with pytest.raises(DataError, match="missing or unparseable 'as_of'"):
        validate_cutoffs(pd.DataFrame({"dispute_id": ["D1", "D2"], "as_of": naive}), EventSchema())
    parsed, aware = schema_module.parse_times(naive, "time", "events")
    assert not aware and parsed.iloc[0] == pd.Timestamp("2024-03-01 08:00") and pd.isna(parsed.iloc[1])
    zoned = pd.Series(pd.array([pd.Timestamp("2024-03-01 08:00", tz="Asia/Shanghai")],
                               dtype=f"timestamp[{unit}, tz=Asia/Shanghai][pyarrow]"))
    parsed, aware = schema_module.parse_times(zoned, "time", "events")
    assert aware and parsed.iloc[0] == pd.Timestamp("2024-03-01 00:00")
    assert schema_module.time_zone(zoned) == "Asia/Shanghai" and schema_module.times_aware(zoned)


@pytest.mark.parametrize(
    "values",
    [pd.Series(["S2", None, "S1", "S2"], dtype=object), pd.Series(["b", "a"], dtype="str"),
     pd.Series([None, np.nan], dtype=object), pd.Series([3, "x", 1.5, None], dtype=object),
     pd.Series(["同归于尽", "z", ""], dtype=object, index=[7, 3, 5], name="station")],
)
def test_few_values_become_the_same_categorical(values, monkeypatch):
    """The Python coding of a few entity values equals pandas' conversion chain."""
    fast = schema_module._as_string_categorical(values)
    monkeypatch.setattr(schema_module, "FEW_VALUES", 0)
    slow = schema_module._as_string_categorical(values)
    pd.testing.assert_series_equal(fast, slow)
    assert fast.cat.codes.dtype == slow.cat.codes.dtype


# --------------------------------------------------------------------------------------
# the integer-key path for short string ids


def _time_sorted_log(ids, n=400, seed=0):
    """A time-sorted extract (the shape the integer-key path needs), with bad and duplicate rows."""
    rng = np.random.default_rng(seed)
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.sort(rng.integers(0, 10**6, n)), unit="s")
    events = pd.DataFrame(
        {
            "dispute_id": pd.array(rng.choice(ids, n), dtype="str"),
            "time": times,
            "kind": rng.choice(["call", "threat"], n),
        }
    )
    events.loc[[5, 17], "dispute_id"] = None  # rejected rows
    return pd.concat([events, events.iloc[[30, 31]]], ignore_index=True).sort_values("time", kind="stable")


@pytest.mark.parametrize(
    "ids",
    [
        ["D0000001", "D0000002", "D0000010", "D0999999"],
        ["_", "a", "ab", "é", "中文", "zz", "~", "a b", "12345678"],  # lengths 1-8, non-ASCII (an empty id is missing)
        ["a", "a\x00", "b\x00c"],  # NUL bytes: general path
        ["a much longer identifier", "b"],  # 24 bytes: three words
        ["110105202301150001", "110105202301150002", "110105202301159999"],  # case numbers: three words
        ["an identifier longer than 24 bytes", "b"],  # general path
    ],
)
def test_short_string_ids_sort_like_the_general_path(ids, monkeypatch):
    events = _time_sorted_log(ids)
    short = all(len(i.encode()) <= 24 and "\x00" not in i for i in ids)
    assert (schema_module.string_keys(events["dispute_id"].dropna()) is not None) == short
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fast = schema_module.screen_events(events, SCHEMA, now=NOW)
        fast_clean, fast_rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
        monkeypatch.setattr(schema_module, "string_keys", lambda values, max_words=3: None)
        general = schema_module.screen_events(events, SCHEMA, now=NOW)
        clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    np.testing.assert_array_equal(fast.order, general.order)
    np.testing.assert_array_equal(fast.entity_codes, general.entity_codes)
    pd.testing.assert_index_equal(fast.entity_ids, general.entity_ids)
    assert (fast.duplicates_dropped, fast.n_rejects) == (general.duplicates_dropped, general.n_rejects) == (2, 2)
    pd.testing.assert_frame_equal(fast_clean, clean)
    pd.testing.assert_frame_equal(fast_rejects, rejects)
    assert list(clean["dispute_id"]) == sorted(clean["dispute_id"])


def _laid_out(entities: np.ndarray, t: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """Random (entity, time) rows in one of the row orders an extract comes in: as drawn
    (``shuffled``), ``time_sorted``, ``entity_sorted`` (then time), or ``ties`` (3 entities,
    5 times: almost every row ties with another)."""
    if layout == "time_sorted":
        return entities, np.sort(t)
    if layout == "entity_sorted":
        order = np.lexsort((t, entities))
        return entities[order], t[order]
    if layout == "ties":
        return entities % 3, t % 5
    return entities, t


@pytest.mark.parametrize("layout", ["shuffled", "time_sorted", "entity_sorted", "ties"])
def test_sort_by_entity_time_equals_the_lexsort_reference(layout):
    """The (entity, time) sort (radix passes, a skip for sorted rows) is NumPy's stable
    lexsort, whatever the row order."""
    from riskmodel.data import sort_by_entity_time

    rng = np.random.default_rng(len(layout))
    n = 50_000
    codes = rng.integers(0, 70_000, n).astype(np.int64)  # codes above 2**16: two radix passes
    t = rng.integers(0, 1_000, n).astype(np.int64) * 10**9  # many equal times
    codes, t = _laid_out(codes, t, layout)
    np.testing.assert_array_equal(sort_by_entity_time(codes, t), np.lexsort((t, codes)))


@pytest.mark.parametrize("unit", ["day", "second", "millisecond", "nanosecond", "one_time", "before_1970"])
@pytest.mark.parametrize("n", [5, 30_000])
def test_time_order_equals_the_stable_argsort(unit, n):
    """Times sorted as packed keys in their own unit give NumPy's stable argsort, with
    ties in input order, for every unit an extract holds (nanoseconds over years do not
    pack: the reference itself runs)."""
    from riskmodel.data._schema import time_order

    rng = np.random.default_rng(n + len(unit))
    start = pd.Timestamp("1950-01-01" if unit == "before_1970" else "2021-01-01").value
    span = {"day": 86_400 * 10**9, "second": 10**9, "millisecond": 10**6, "nanosecond": 1, "one_time": 0,
            "before_1970": 60 * 10**9}[unit]
    steps = rng.integers(0, 10**15 if unit == "nanosecond" else 2_000, n)  # many ties
    t = (start + steps * span).astype(np.int64)
    np.testing.assert_array_equal(time_order(t), np.argsort(t, kind="stable"))


def test_empty_values_switch_optional_roles_off():
    schema = EventSchema(text_col="", party_col=" ", closed_col="", entities_id_col="", group_cols="",
                         entity_categorical_cols=[], entity_time_cols=None)
    assert schema.text_col is None and schema.party_col is None and schema.closed_col is None
    assert schema.entities_id_col is None and schema.entities_id == "dispute_id"
    assert schema.group_cols == () and schema.entity_categorical_cols == () and schema.entity_time_cols == ()
    assert schema.event_columns == ["dispute_id", "time", "kind"]
    assert EventSchema(group_cols="station").group_cols == ("station",)
    with pytest.raises(DataError, match="entity_col must name a column.*cannot be switched off"):
        EventSchema(entity_col="")
    with pytest.raises(DataError, match="group_cols must be a list of column names"):
        EventSchema(group_cols=["station", ""])


def test_a_missing_optional_column_names_its_role_and_the_switch():
    events = pd.DataFrame({"dispute_id": ["a"], "time": ["2024-01-01"], "kind": ["call"], "narrative": ["x"]})
    with pytest.raises(DataError, match=r"'party_id' is the schema's party_col") as info:
        validate_events(events, EventSchema(), now=NOW)
    assert "EventSchema(party_col=None)" in str(info.value)
    assert 'party_col = "" to' not in str(info.value) and 'party_col = ""' in info.value.for_cli()


@pytest.mark.parametrize(("values", "aware"), [
    (pd.Series(pd.to_datetime(["2024-01-01"])), False),
    (pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("Asia/Shanghai")), True),
    (pd.Series(["2024-01-01T00:00:00+08:00", None]), True),
    (pd.Series(["2024-01-01", "2024-01-02"], dtype="string[pyarrow]"), False),
    (pd.Series([None, "2024-01-02T00:00:00Z", "2024-01-01"]), None),  # both: cannot tell (the parse refuses it)
    (pd.Series([None, "2024-01-02T00:00:00Z", "2024-01-01T08:00:00+08:00"]), True),
    (pd.Series([pd.Timestamp("2024-01-01", tz="UTC")], dtype=object), True),
    (pd.Series([None, None], dtype=object), None),
])
def test_times_aware(values, aware):
    assert times_aware(values) is aware


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("sort_ids", [True, False])
def test_hashed_object_columns_screen_as_the_plain_checks(seed, sort_ids, monkeypatch):
    """Object id and kind columns (a ``pd.read_csv`` log) are hashed once, and the codes find
    the missing ids and kinds and the kinds that are not strings; the result equals the
    plain per-row checks (``object_codes`` switched off): same rejects with the same reasons,
    same order, codes, ids, kinds and duplicates."""
    from riskmodel.data._schema import screen_events

    rng = np.random.default_rng(seed)
    n = 400  # above FEW_VALUES: the hashed path
    ids = np.array([f"110105202{i:09d}" for i in rng.integers(0, 60, n)], dtype=object)
    ids[rng.random(n) < 0.05] = None
    ids[rng.random(n) < 0.03] = np.nan
    ids[rng.random(n) < 0.05] = 7  # an int among string ids: a valid (odd) id
    kinds = rng.choice(np.array(["call", "quarrel", "fight", "threat"], dtype=object), n)
    kinds[rng.random(n) < 0.05] = None
    kinds[rng.random(n) < 0.05] = 3  # not a string: rejected
    kinds[rng.random(n) < 0.03] = pd.NA
    times = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 50, n), unit="D")
    times = pd.Series(times).astype(object)
    times[rng.random(n) < 0.04] = None
    events = pd.DataFrame({"dispute_id": ids, "time": times, "kind": kinds})
    only_bad = pd.DataFrame({"dispute_id": ["only_in_bad_rows", "x"], "time": [None, None],
                             "kind": ["call", "kind_only_in_bad_rows"]})
    events = pd.concat([events, events.iloc[:20], only_bad], ignore_index=True)  # exact duplicates
    events = events.sample(frac=1, random_state=seed).reset_index(drop=True)

    def screened():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            return screen_events(events, SCHEMA, now=NOW, sort_ids=sort_ids)

    hashed = screened()
    assert hashed.kind_codes is not None  # the path under test was taken
    # ids given first (the cutoffs'): numbered first, in their order, where valid rows hold them
    first_ids = pd.Series(["only_in_bad_rows", "110105202000000007", "never_seen", 7, "110105202000000003"],
                          dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        seeded = screen_events(events, SCHEMA, now=NOW, sort_ids=False, first_ids=first_ids)
    held = {str(v) for v in hashed.entity_ids}  # the int 7 among text ids is the id "7" (numbers_as_text)
    want = [str(v) in held for v in first_ids]
    np.testing.assert_array_equal(seeded.first_codes >= 0, want)
    assert [str(v) for v in seeded.entity_ids[seeded.first_codes[want]]] == [str(v) for v in first_ids[want]]
    assert sorted(seeded.first_codes[want]) == list(seeded.first_codes[want])  # in their order
    assert hashed.first_codes is None  # none asked for
    pd.testing.assert_frame_equal(seeded.rejects, hashed.rejects)
    assert len(seeded.entity_ids) == len(hashed.entity_ids)
    monkeypatch.setattr(schema_module, "object_codes", lambda values: None)
    plain = screened()
    np.testing.assert_array_equal(plain.kind_codes[0], hashed.kind_codes[0])  # pandas' factorize: the same
    assert list(plain.kind_codes[1]) == list(hashed.kind_codes[1])
    assert hashed.n_rejects == plain.n_rejects > 0
    pd.testing.assert_frame_equal(hashed.rejects, plain.rejects)
    assert hashed.duplicates_dropped == plain.duplicates_dropped > 0

    def by_id(result):  # the sorted rows grouped by id (unsorted ids may be numbered apart)
        names = result.entity_ids.to_numpy(dtype=object)[result.entity_codes].astype(str)
        regroup = np.argsort(names, kind="stable")
        return names[regroup], result.order[regroup], result.times_ns[regroup]

    for mine, theirs, first in zip(by_id(hashed), by_id(plain), by_id(seeded)):
        np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_array_equal(first, theirs)
    if sort_ids:
        np.testing.assert_array_equal(hashed.order, plain.order)
        np.testing.assert_array_equal(hashed.entity_codes, plain.entity_codes)
    assert len(hashed.entity_ids) == len(plain.entity_ids)
    codes, uniques = hashed.kind_codes
    assert (codes >= 0).all() and "kind_only_in_bad_rows" not in set(uniques)
    assert "only_in_bad_rows" not in set(hashed.entity_ids)
    pd.testing.assert_frame_equal(hashed.columns.to_frame(), plain.columns.to_frame())  # the valid rows
    np.testing.assert_array_equal(uniques.to_numpy()[codes][hashed.order], hashed.clean["kind"].to_numpy())
    if sort_ids:
        pd.testing.assert_frame_equal(hashed.clean, plain.clean)


def _ids_of(kind: str, values: np.ndarray) -> pd.Series:
    """``values`` (small non-negative ints, shared by all kinds) as ids of one type."""
    if kind == "int64_negative":
        return pd.Series(values * 7919 - 40_000, dtype=np.int64)
    if kind == "uint64_large":
        return pd.Series(values.astype(np.uint64) * np.uint64(2**48) + np.uint64(2**63), dtype=np.uint64)
    if kind == "Int64":
        return pd.Series(values, dtype="Int64")
    if kind == "int64_arrow":
        return pd.Series(values, dtype="int64[pyarrow]")
    width = {"arrow_8": 8, "arrow_18": 18, "arrow_30": 30, "object_18": 18, "python_str": 12, "category": 6}[kind]
    strings = [f"{v:0{width}d}" for v in values]
    if kind == "arrow_18":  # mixed lengths
        strings = [s.lstrip("0") or "0" for s in strings]
    if kind == "python_str":
        return pd.Series(strings, dtype=pd.StringDtype("python"))
    if kind == "category":  # categories in an order of their own, not the strings' order
        categories = sorted(set(strings), key=lambda s: s[::-1])
        return pd.Series(pd.Categorical(strings, categories=categories))
    return pd.Series(strings, dtype=object if kind.startswith("object") else "string[pyarrow]")


@pytest.mark.parametrize("layout", ["shuffled", "time_sorted", "entity_sorted", "ties"])
@pytest.mark.parametrize("kind", ["int64_negative", "uint64_large", "Int64", "int64_arrow", "arrow_8", "arrow_18",
                                  "arrow_30", "object_18", "python_str", "category"])
@pytest.mark.parametrize("n", [20_000, 50])
def test_entity_order_equals_the_factorize_and_lexsort_reference(kind, layout, n):
    """Integer and short string ids sorted as keys (no hash table), and other ids numbered
    (:func:`column_codes`), give what the readable reference gives, whatever the id type,
    row order and size: ids numbered in sorted order (``pd.factorize(sort=True)``; a
    categorical's in its categories' order), rows in stable (entity, time) order
    (``np.lexsort``)."""
    from riskmodel.data import entity_order

    rng = np.random.default_rng(len(kind) * 10 + len(layout))
    values = rng.integers(0, 3_000 if n > 1_000 else 20, n)
    t = rng.integers(0, 500, n).astype(np.int64) * 10**9  # many equal times
    values, t = _laid_out(values, t, layout)
    ids = _ids_of(kind, values)
    order, codes, uniques, times = entity_order(ids, t, sort_ids=True)
    ref_codes, ref_uniques = pd.factorize(ids, sort=True)
    ref_order = np.lexsort((t, ref_codes))
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(codes, ref_codes[ref_order])
    ref_uniques = np.asarray(ref_uniques) if kind == "category" else ref_uniques
    pd.testing.assert_index_equal(uniques, pd.Index(ref_uniques), exact=False)
    if "int" in kind.lower():  # integer ids keep their dtype
        assert uniques.dtype == ids.dtype
    np.testing.assert_array_equal(times, t[ref_order])


@pytest.mark.parametrize("layout", ["shuffled", "time_sorted", "entity_sorted", "ties"])
@pytest.mark.parametrize("sort_ids", [False, True])
@pytest.mark.parametrize("unused", [0, 5])
def test_entity_order_of_given_codes_equals_the_lexsort(layout, sort_ids, unused):
    """Codes the caller has already (hashed ids, some ids possibly without a row) sort as
    ``np.lexsort``, with the sorted rows' codes and times read off the sort."""
    from riskmodel.data import entity_order

    rng = np.random.default_rng(len(layout) + unused)
    n = 20_000
    values = rng.integers(0, 3_000, n)
    t = rng.integers(0, 500, n).astype(np.int64) * 10**9
    values, t = _laid_out(values, t, layout)
    codes, uniques = pd.factorize(pd.Series([f"case-{v:06d}" for v in values], dtype=object))
    if unused:  # ids that no row holds, numbered among the others
        uniques = pd.Index(list(uniques[:7]) + [f"none-{i}" for i in range(unused)] + list(uniques[7:]), dtype=object)
        codes = np.where(codes >= 7, codes + unused, codes)
    order, sorted_codes, got_uniques, times = entity_order(None, t, sort_ids, codes=(codes, uniques))
    if sort_ids:
        rank = pd.Index(uniques).argsort().argsort()  # each code's place among the sorted ids
        codes = rank[codes]
        assert list(got_uniques) == sorted(uniques)
    ref_order = np.lexsort((t, codes))
    np.testing.assert_array_equal(order, ref_order)
    np.testing.assert_array_equal(sorted_codes, codes[ref_order])
    np.testing.assert_array_equal(times, t[ref_order])


def _objects_shared(rng, n):
    """Rows pointing to a few objects, as ``pd.read_csv`` gives: missing values of three
    kinds, an int, and equal strings held by two different objects."""
    pool = np.array(["call", "fight", None, np.nan, 7, "threat", "".join(["thr", "eat"]), pd.NA], dtype=object)
    assert pool[5] is not pool[6]
    return pool[rng.integers(0, len(pool), n)]


def _ids_shared(rng, n):
    """Shuffled rows of many ids, each id one object (its events' rows share it)."""
    ids = np.array([f"1101052023{i:08d}" for i in range(n // 5)], dtype=object)
    return ids[rng.integers(0, len(ids), n)]


@pytest.mark.parametrize(
    "make",
    [
        _objects_shared,
        _ids_shared,
        lambda rng, n: np.array([f"kind {i}" for i in rng.integers(0, 5, n)], dtype=object),  # an object per row
        lambda rng, n: np.r_[np.full(5000, "call", dtype=object),  # shared at first, then one per row
                             np.array([f"D{i:07d}" for i in rng.integers(0, 10**6, n)], dtype=object)],
        lambda rng, n: np.array([f"D{i:07d}" for i in range(n)], dtype=object),  # no value repeats
        lambda rng, n: np.array([f"D{i % 300:07d}" if i % 7 else None for i in range(n)], dtype=object),  # one None
        lambda rng, n: _objects_shared(rng, 2 * n)[::2],  # not contiguous
        lambda rng, n: _objects_shared(rng, 40),  # a few rows
    ],
)
def test_object_codes_are_pandas_factorize_however_objects_are_shared(make):
    """Objects numbered by address, then by value, give pd.factorize's codes and uniques
    (first appearance order, missing values -1) on every layout; shared-object columns
    take that path, the others are hashed."""
    rng = np.random.default_rng(3)
    values = make(rng, 20_000)
    shared = schema_module.shared_object_codes(values)
    assert (shared is not None) == (make in (_objects_shared, _ids_shared))
    if len(values) <= schema_module.FEW_VALUES:  # a few rows: checked row by row, not hashed
        assert schema_module.object_codes(pd.Series(values, dtype=object)) is None
        return
    codes, uniques = schema_module.object_codes(pd.Series(values, dtype=object))
    expected_codes, expected_uniques = pd.factorize(values, use_na_sentinel=True)
    np.testing.assert_array_equal(codes, expected_codes)
    assert list(uniques) == list(expected_uniques)


def test_kinds_read_from_a_csv_share_their_objects(tmp_path):
    """The property the address path relies on, checked on pandas' own reader."""
    path = tmp_path / "events.csv"
    pd.DataFrame({"kind": ["call", "fight", "call", None] * 50}).to_csv(path, index=False)
    kinds = pd.read_csv(path, dtype={"kind": object})["kind"].to_numpy()
    assert schema_module.shared_object_codes(kinds) is not None
    assert len({id(k) for k in kinds}) <= 3


@pytest.mark.parametrize("dates, want", [
    (["21-11-2023", "05-03-2024", "13-03-2024 10:00", None], ["2023-11-21", "2024-03-05", "2024-03-13 10:00", None]),
    (["11/21/2023", "05/03/2024"], ["2023-11-21", "2024-05-03"]),  # month first: a second field above 12
    (["5.3.2024", "31.12.2023", "2024-01-02"], ["2024-03-05", "2023-12-31", "2024-01-02"]),  # ISO rows untouched
])
def test_dates_with_the_year_last_are_read_in_the_one_order_the_column_shows(dates, want):
    """pandas alone reads each value its own way (05-03-2024 as May 3 beside 13-03-2024 as
    March 13); the column is read in the order some value proves."""
    from riskmodel.data import parse_times

    parsed, _ = parse_times(pd.Series(dates, dtype=object), "time", "events")
    expected = pd.Series(pd.to_datetime(want, format="mixed"), dtype="datetime64[ns]")
    pd.testing.assert_series_equal(parsed.reset_index(drop=True), expected, check_names=False)


def test_dates_in_both_orders_are_refused_and_undecided_ones_warn():
    from riskmodel.data import parse_times

    with pytest.raises(DataError, match="both day first and month first"):
        parse_times(pd.Series(["21-11-2023", "11/21/2023"], dtype=object), "time", "events")
    with pytest.warns(DataWarning, match="do not say whether the day or the month comes first"):
        parsed, _ = parse_times(pd.Series(["05-03-2024", "04-03-2024"], dtype=object), "time", "events")
    assert parsed.tolist() == [pd.Timestamp("2024-05-03"), pd.Timestamp("2024-04-03")]


def test_dates_written_the_chinese_way_are_read():
    """A Chinese-locale export: 年月日 dates and 上午 / 下午 (AM / PM) times are read (every row
    was rejected as unparseable); other strings stay as pandas reads them."""
    values = pd.Series(["2023年11月21日 08:05", "2023年1月2日", "2023/11/21 下午 8:05:00", "2023/11/21 上午 12:30:00",
                        "2023年11月21日08:05", "2023年11月21日下午8:05", "2023年11月21日 8时5分", "2023年11月21日8时05分30秒",
                        None, "junk"], dtype=object)
    parsed, aware = schema_module.parse_times(values, "time", "events")
    assert not aware
    assert parsed.tolist()[:8] == [pd.Timestamp(t) for t in (
        "2023-11-21 08:05", "2023-01-02", "2023-11-21 20:05", "2023-11-21 00:30", "2023-11-21 08:05",
        "2023-11-21 20:05", "2023-11-21 08:05", "2023-11-21 08:05:30")]
    assert parsed.iloc[8:].isna().all()


def test_times_written_as_digits():
    """Digits that are a date (yyyyMMdd, yyyyMMddHHmmss) are times; other digits (epoch
    seconds, spreadsheet serial days), now that a CSV's time column is read as text, are
    refused as numbers in both interfaces' words, not rejected row by row."""
    parsed, _ = schema_module.parse_times(pd.Series(["20231121080500", "20231122"], dtype=object), "time", "events")
    assert parsed.tolist() == [pd.Timestamp("2023-11-21 08:05"), pd.Timestamp("2023-11-22")]
    for digits in (["1700000000", "1700000100"], ["45251.34", "45252.1"]):
        with pytest.raises(DataError, match="holds numbers") as caught:
            schema_module.parse_times(pd.Series(digits, dtype=object), "time", "events")
        assert "export the column as dates" in caught.value.for_cli()


def test_awareness_is_judged_on_more_than_the_first_value():
    """A column whose first value is garbage but whose times carry offsets is aware (it was
    judged naive, and the batch refused it for the wrong convention)."""
    values = pd.Series(["??"] + ["2024-03-01T08:00:00+08:00"] * 5, dtype=object)
    assert schema_module.times_aware(values) is True  # as the parse: "??" is an unparseable row, no convention
    assert schema_module.parse_times(values, "time", "events")[1] is True
    assert schema_module.times_aware(values.iloc[1:]) is True
    both = pd.Series(["2024-03-01 08:00"] + ["2024-03-01T08:00:00+08:00"] * 5, dtype=object)
    assert schema_module.times_aware(both) is None  # both: the parse refuses the column, in its words


def test_decimal_text_of_floats_equals_the_readable_rule():
    """Float ids (integers with a missing one) are formatted by NumPy, with no Python per row:
    the same text as the rule for one value, fractions, infinities and huge values included."""
    values = np.array([2895.0, np.nan, -0.0, 12.5, np.inf, -np.inf, 1e20, 2.0**62, 7.0, -3.0])
    fast = schema_module.decimal_text(values)
    assert fast.tolist() == [schema_module._decimal(v) for v in values]
    assert fast.tolist()[:3] == ["2895", None, "0"]


def test_float_ids_past_2_53_are_refused_not_matched_to_another_id():
    """18-digit case numbers held as floats (a merge with a missing value made them float) have
    lost digits: neighbouring ids read as one float. Looking them up joined another dispute's
    rows (93 of 100 cutoffs); it is refused, naming the column. Floats below 2**53 are exact."""
    from riskmodel.data import lookup_positions

    ids = pd.Index(123456789012000000 + np.arange(100))
    with pytest.raises(DataError, match=r"ids in 'dispute_id' are floating-point numbers past 2\*\*53"):
        lookup_positions(ids, pd.Series(ids.astype("float64"), name="dispute_id"))
    small = pd.Index(np.arange(100) * 7)
    np.testing.assert_array_equal(lookup_positions(small, pd.Series(small.astype("float64"))), np.arange(100))


def test_now_and_schema_are_checked_in_their_own_names():
    with pytest.raises(DataError, match="now='tomorrow' is not a date or time"):
        validate_events(make_events(), SCHEMA, now="tomorrow")
    with pytest.raises(DataError, match="schema must be an EventSchema"):
        validate_events(make_events(), {"entity_col": "dispute_id"})


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
@pytest.mark.parametrize("rows", [9, 300])
def test_blank_ids_are_missing_and_padded_twins_warn(dtype, rows):
    """An id of spaces only (a CHAR(n) column's empty value) or empty is a missing id: its rows
    are rejected (they made one phantom dispute); ids differing from another only by spaces
    around them are different disputes, with a warning naming them."""
    ids = pd.Series((["a", " " * 18, "a ", "b", "", "c", "\u200b", "\ufeff \u200b", "a\u200b"] * rows)[:rows],
                    dtype=dtype)
    events = pd.DataFrame({"dispute_id": ids, "kind": "call",
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(rows), unit="h")})
    with pytest.warns(DataWarning, match=r"2 id\(s\) differ from another only by spaces around them .*e.g. \['a', 'a '"):
        clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)  # (ids of characters that show nothing too)
    assert set(rejects["reject_reason"]) == {"null id in 'dispute_id'"} and len(rejects) == 4 * rows // 9
    assert sorted(set(clean["dispute_id"])) == ["a", "a ", "a\u200b", "b", "c"] and len(clean) + len(rejects) == rows
    # Unicode spaces beside characters that show nothing, judged alike on few rows (Python) and many (Arrow)
    odd = pd.Series((["\u3000\u200b", "\xa0\ufeff", "a"] * rows)[:rows], dtype=dtype)
    assert schema_module.blank_mask(odd).tolist() == ([True, True, False] * rows)[:rows]


@pytest.mark.parametrize("rows", [6, 300])
def test_a_blank_id_gives_each_warning_once(rows):
    """A log with a blank id was screened twice (the second time with blank ids as missing):
    the time parser's warnings came twice, and the odd-id warnings named a line of riskmodel's
    own, not the caller's."""
    ids = (["a", "   ", "b", "NULL", "b", "c"] * rows)[:rows]
    times = [f"03/04/2024 {i // 60:02d}:{i % 60:02d}" for i in range(rows)]  # day or month first?
    events = pd.DataFrame({"dispute_id": ids, "time": times, "kind": "call"})
    events = pd.concat([events, events.head(1)], ignore_index=True)  # an exact duplicate
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    said = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert sum("do not say whether the day or the month comes first" in m for m in said) == 1, said
    assert sum("words for a missing value" in m for m in said) == 1, said
    assert sum("exact duplicate" in m for m in said) == 1, said
    assert {w.filename for w in caught if "id" in str(w.message) or "duplicate" in str(w.message)} == {__file__}
    assert set(rejects["reject_reason"]) == {"null id in 'dispute_id'"} and len(clean) + len(rejects) + 1 == rows + 1


def test_a_few_times_in_the_other_convention_are_rejected_rows_at_night():
    """One time with a UTC offset among naive ones stopped a whole night: with stray_times
    (nightly scoring, training's intake) such a row is rejected with its reason; without it,
    or when more than 1% of the column is so, the column is refused as before."""
    n = 300
    times = (pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h")).strftime("%Y-%m-%d %H:%M")
    times = pd.Series(times, dtype=object)
    times[7] = "2024-01-01 07:00+08:00"
    events = pd.DataFrame({"dispute_id": [f"d{i % 30}" for i in range(n)], "time": times, "kind": "call"})
    clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW, stray_times=True)
    assert rejects["reject_reason"].tolist() == ["time with a UTC offset among times without (or the reverse) in 'time'"]
    assert rejects["time"].tolist() == ["2024-01-01 07:00+08:00"] and len(clean) == n - 1
    with pytest.raises(DataError, match=r"mixes timezone-aware and naive times \(1 aware, 299 naive\)"):
        split_invalid_events(events, SCHEMA, now=NOW)
    times[:10] = "2024-01-01 07:00+08:00"
    with pytest.raises(DataError, match="mixes timezone-aware and naive times"):
        split_invalid_events(events.assign(time=times), SCHEMA, now=NOW, stray_times=True)
    # a night's chunk judges by the model's convention (clock), whatever the chunk's shares
    clean, rejects, _ = split_invalid_events(events.assign(time=times), SCHEMA, now=NOW, stray_times=True, clock=False)
    assert len(rejects) == 10 and len(clean) == n - 10
    clean, rejects, _ = split_invalid_events(events.assign(time=times), SCHEMA, now=NOW, stray_times=True, clock=True)
    assert len(rejects) == n - 10 and len(clean) == 10


@pytest.mark.parametrize("clock", [None, True])
def test_text_without_a_digit_is_an_unparseable_time_in_either_convention(clock):
    """'not a time' among timezone-aware times was judged naive: a reject 'with a UTC offset
    among times without', or, without stray_times, the whole column refused as a mix of
    conventions. It is an unparseable time; a real naive time among them stays a stray one."""
    n = 300
    times = pd.Series([f"2024-01-{1 + i % 28:02d} 10:00:00+08:00" for i in range(n)], dtype=object)
    times[5], times[7] = "not a time", "2024-01-03 10:00:00"
    events = pd.DataFrame({"dispute_id": [f"d{i % 30}" for i in range(n)], "time": times, "kind": "call"})
    _, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW, stray_times=True, clock=clock)
    assert dict(zip(rejects["time"], rejects["reject_reason"], strict=True)) == {
        "not a time": "unparseable time in 'time'",
        "2024-01-03 10:00:00": "time with a UTC offset among times without (or the reverse) in 'time'"}
    with pytest.raises(DataError, match=r"1 row\(s\) with unparseable time in 'time' \(first rows: \[5\]\)"):
        validate_events(events.drop(index=7), SCHEMA, now=NOW)


@pytest.mark.parametrize("aware", [False, True])
def test_words_for_the_clock_are_unparseable_times_not_the_time_of_the_run(aware):
    """pandas reads "now" and "today" as the clock's time: an export's placeholder became an
    event at the moment of validation (inside [MIN_PLAUSIBLE_TIME, now], so accepted)."""
    suffix = "+08:00" if aware else ""
    times = pd.Series([f"2024-01-{1 + i:02d} 10:00:00{suffix}" for i in range(6)], dtype=object)
    times[1], times[3], times[4] = "now", "today", "Today "
    events = pd.DataFrame({"dispute_id": ["d1", "d1", "d2", "d2", "d3", "d3"], "time": times, "kind": "call"})
    clean, rejects, _ = split_invalid_events(events, SCHEMA, now=pd.Timestamp.now() + pd.Timedelta(days=1))
    assert sorted(rejects["time"]) == ["Today ", "now", "today"]
    assert set(rejects["reject_reason"]) == {"unparseable time in 'time'"}
    assert len(clean) == 3


def test_one_column_in_two_event_roles_is_refused():
    """EventSchema(entity_col="ts", time_col="ts") was accepted: every timestamp became a
    dispute id and the cutoffs were meaningless."""
    with pytest.raises(DataError, match="entity_col and time_col both name the column 'ts'"):
        EventSchema(entity_col="ts", time_col="ts", kind_col="kind")
    with pytest.raises(DataError, match="time_col and kind_col both name the column 'kind'"):
        EventSchema(time_col="kind")
    # keywords read in free-text kinds are a choice (and models saved with it load)
    assert EventSchema(text_col="kind").text_col == "kind"
    assert EventSchema.from_dict(EventSchema(text_col="kind").to_dict()).text_col == "kind"


def test_a_date_impossible_in_either_order_is_an_unparseable_time_not_both_orders():
    """'13/45/2024' among month-first dates was taken as proof of both orders: the whole
    column (a night) was refused, citing the same value as day first and month first."""
    times = pd.Series([f"01/{10 + i:02d}/2024 11:45:00 PM" for i in range(20)], dtype=object)
    times[7], times[9] = "13/45/2024 11:00:00 PM", "45/01/2024 10:00:00 AM"  # a day of 45 either way
    events = pd.DataFrame({"dispute_id": [f"d{i % 5}" for i in range(20)], "time": times, "kind": "call"})
    clean, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    assert rejects["time"].tolist() == ["13/45/2024 11:00:00 PM", "45/01/2024 10:00:00 AM"]
    assert rejects["reject_reason"].tolist() == ["unparseable time in 'time'"] * 2
    assert clean["time"].iloc[0] == pd.Timestamp("2024-01-10 23:45")
    both = events.assign(time=times.where(times.index != 3, "25/01/2024 09:00"))  # a real day-first one
    with pytest.raises(DataError, match=r"both day first and month first, e.g. \['25/01/2024 09:00'\] and"):
        split_invalid_events(both, SCHEMA, now=NOW)


def test_one_as_of_is_read_as_a_cutoffs_column_reads_it_and_refused_in_the_keyword_words():
    """cutoffs_at (a predictor's as_of): a Chinese date reads as in a cutoffs column; a number,
    no time at all and a date that does not say its order are refused naming as_of."""
    ids = np.array(["a", "b"], dtype=object)
    got = cutoffs_at(ids, "2024年6月1日", SCHEMA)["as_of"]
    assert (got == np.datetime64("2024-06-01", "ns")).all()
    for bad, words in ((123, r"as_of=123 is a number"), ("yesterday-ish", r"as_of='yesterday-ish' is not a date"),
                       ("01/06/2024", r"as_of='01/06/2024' does not say whether the day or the month")):
        with pytest.raises(DataError, match=words):
            cutoffs_at(ids, bad, SCHEMA)


def test_hour_only_offsets_and_zone_words_are_aware_times():
    """PostgreSQL writes timestamptz as 2024-11-16 10:00:00+08 and some tools add UTC: one such
    row among naive times stopped a night with pandas' "Mixed timezones detected"; a column of
    them was read as naive."""
    from riskmodel.data._schema import parse_times, time_zone

    times, aware = parse_times(pd.Series(["2024-11-16 10:00:00+08", "2024-11-17 23:30:00+08"]), "time", "events")
    assert aware and times.tolist() == [pd.Timestamp("2024-11-16 02:00"), pd.Timestamp("2024-11-17 15:30")]
    assert time_zone(pd.Series(["2024-11-16 10:00:00+08"])) == "+08:00"
    assert parse_times(pd.Series(["2024-11-16 10:00:00 UTC"]), "time", "events")[1]
    naive = pd.Series([f"2024-01-{1 + i % 28:02d} 10:00:00" for i in range(200)], dtype=object)
    naive[7] = "2024-01-08 10:00:00+08"
    events = pd.DataFrame({"dispute_id": [f"d{i % 9}" for i in range(200)], "time": naive, "kind": "call"})
    _, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW, stray_times=True)
    assert rejects["reject_reason"].tolist() == ["time with a UTC offset among times without (or the reverse) in 'time'"]


def test_a_blank_time_is_a_missing_time():
    """A time of spaces only (a CHAR column's empty value) was 'unparseable'."""
    events = pd.DataFrame({"dispute_id": ["a", "a", "b"], "time": ["2024-01-01 10:00", "   ", ""], "kind": "call"})
    _, rejects, _ = split_invalid_events(events, SCHEMA, now=NOW)
    assert rejects["reject_reason"].tolist() == ["missing time in 'time'"] * 2


def test_ids_differing_by_characters_that_show_nothing_warn():
    """A zero-width space after an id (copied from a web page) or a BOM before it (exports
    concatenated) made another dispute without a word."""
    events = pd.DataFrame({"dispute_id": ["A1", "A1\u200b", "\ufeffB2", "B2", "C3"], "kind": "call",
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(5), unit="h")})
    with pytest.warns(DataWarning, match=r"2 id\(s\) differ from another only by spaces around them \(or characters "
                                         r"that show nothing: zero-width spaces, a BOM\)"):
        split_invalid_events(events, SCHEMA, now=NOW)


def test_twin_key_is_the_same_whatever_array_holds_the_id():
    """Spark keys each batch of distinct ids apart: an id's key must not depend on the other
    ids of its array (the byte checks only skip steps that change nothing); blank ids, which
    are missing ids, are nobody's twins."""
    import pyarrow as pa

    from riskmodel.data import twin_key, warn_odd_ids

    ids = ["D0001", "d0001", "\uff24\uff10\uff10\uff10\uff11", "'D0001", " D0001\u200b", "\ufb01le", "FILE"]
    together = twin_key(pa.array(ids)).to_pylist()
    assert together == [twin_key(pa.array([i])).to_pylist()[0] for i in ids]
    assert len(set(together[:5])) == 1 and together[5] == together[6]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        warn_odd_ids(pa.array(["   ", "\u200b", "", "D1"]))


@pytest.mark.parametrize("twin", ["\uff24\uff10\uff10\uff11\uff12", "'D0012"])
def test_ids_differing_by_full_width_forms_or_excels_text_marker_warn(twin):
    """Ｄ００１２ (full-width, a Chinese input method) and 'D0012 (Excel's text marker) beside
    D0012 each split a dispute without a word."""
    events = pd.DataFrame({"dispute_id": ["D0012", twin, "D0013"], "kind": "call",
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(3), unit="h")})
    with pytest.warns(DataWarning, match=r"1 id\(s\) differ from another only .* full-width forms or a leading ' "
                                         r"\(Excel's text marker\), e.g. \[.*D0012"):
        split_invalid_events(events, SCHEMA, now=NOW)


@pytest.mark.parametrize("n_others", [0, 100])  # a few ids (a dict) and many (Arrow's is_in)
def test_ids_that_are_words_for_a_missing_value_warn(n_others):
    """A frame read with keep_default_na=False (or from a driver writing NULL) kept "NULL" and
    "None" as ids: each became a dispute without a word."""
    ids = ["A1", "NULL", "None", "A1", "\\N"] + [f"B{i}" for i in range(n_others)]
    events = pd.DataFrame({"dispute_id": ids, "kind": "call",
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(ids)), unit="h")})
    with pytest.warns(DataWarning, match=r"ids \['NULL', 'None', '.+N'\] are words for a missing value"):
        split_invalid_events(events, SCHEMA, now=NOW)


def test_utc_plus_hours_is_the_offset_it_says():
    """'2024-11-16 10:00:00 UTC+8' (how Chinese systems write Beijing time) was read with the
    POSIX sign, as UTC-8: sixteen hours wrong, and night-time counted on the clock of -08:00."""
    from riskmodel.data._schema import parse_times, time_zone

    times = pd.Series(["2024-11-16 10:00:00 UTC+8", "2024-11-16 23:30 GMT+08:00", "2024-11-16 12:00 UTC-5"])
    parsed, aware = parse_times(times, "time", "events")
    assert aware and parsed.tolist() == [pd.Timestamp("2024-11-16 02:00"), pd.Timestamp("2024-11-16 15:30"),
                                         pd.Timestamp("2024-11-16 17:00")]
    assert time_zone(times.iloc[:2]) == "+08:00"


@pytest.mark.parametrize("value", ["2024-11-16 10:00 UTC+8", "2024-11-16 05:00 GMT-05:30", "2024-11-16 10:00+08:00"])
def test_one_time_reads_an_offset_as_a_column_does(value):
    """A single as_of, start or end ending 'UTC+8' was read by pd.Timestamp with the POSIX sign
    (sixteen hours off the same value in a cutoffs column), and a column of them was taken as
    naive by times_aware, which decides the predictor's and the night's clock."""
    from riskmodel.data import cutoffs_at, naive_utc, times_aware, validate_cutoffs

    column = validate_cutoffs(pd.DataFrame({"dispute_id": ["x"], "as_of": [value]}), SCHEMA, tz_aware=True)["as_of"]
    one = cutoffs_at(np.array(["x"], dtype=object), value, SCHEMA, tz_aware=True)["as_of"]
    assert pd.Timestamp(one.iloc[0]) == pd.Timestamp(column.iloc[0]) == naive_utc(value, "as_of")
    assert pd.Timestamp(column.iloc[0]).hour in (2, 10)  # 10:00+08:00 is 02:00 UTC; 05:00-05:30 is 10:30
    assert times_aware(pd.Series([value] * 3, dtype=object)) is True
    assert times_aware(pd.Series(["today", value], dtype=object)) is True  # a word is no time: not naive


def test_a_single_time_without_a_digit_is_refused_as_the_keyword():
    from riskmodel.data import naive_utc

    with pytest.raises(DataError, match=r"start='today' is not a date or time"):
        naive_utc("today", "start")
    with pytest.raises(DataError, match=r"end is missing"):
        naive_utc("", "end")


@pytest.mark.parametrize("dtype", ["object", "string[pyarrow]"])
def test_ids_differing_by_case_or_in_scientific_notation_warn(dtype):
    """One dispute written D0000123 and d0000123 (two systems) was two disputes, each scored on
    part of its history; 18-digit case numbers saved by Excel (3.20102E+17) merged every dispute
    sharing their first six digits into one. Both were said nowhere."""
    ids = ["D0000123", "d0000123", "D0000124", "3.20102E+17", "3.20102E+17", "320102199901011234", "abc", "ABD"]
    events = pd.DataFrame({"dispute_id": pd.Series(ids * 10, dtype=dtype), "kind": "call",
                           "time": pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(80), unit="h")})
    with pytest.warns(DataWarning) as caught:
        split_invalid_events(events, SCHEMA, now=NOW)
    said = " ".join(str(w.message) for w in caught)
    assert "1 id(s) differ from another only by spaces around them (or characters that show nothing: zero-width " \
           "spaces, a BOM), by letter case, full-width forms or a leading ' (Excel's text marker), e.g. " \
           "['D0000123', 'd0000123']" in said
    assert "ids such as ['3.20102E+17'] are numbers in scientific notation" in said
    with warnings.catch_warnings():  # ids of one case, no exponent: no word
        warnings.simplefilter("error", DataWarning)
        split_invalid_events(events.assign(dispute_id=events["dispute_id"].str.upper().str.replace("E+17", "7")),
                             SCHEMA, now=NOW)


def test_a_missing_column_names_the_key_that_names_it_as_the_config_writes_it():
    """An entities table whose id column has another name was told to change entity_col (which
    breaks the events); a list key was shown as a string (entity_categorical_cols = "..."); a
    misspelt [schema] key was EventSchema's."""
    from riskmodel.data import require_columns

    schema = EventSchema(entity_col="case_no", entity_categorical_cols=("precinct",), group_cols=("precinct",))
    with pytest.raises(DataError) as caught:
        require_columns(pd.DataFrame(columns=["case_number"]), ["case_no", "precinct"], "entities", schema=schema)
    cli = caught.value.for_cli()
    assert "'case_no' is the schema's entities_id_col: name your column with entities_id_col = \"...\"" in cli
    assert 'entity_categorical_cols = ["..."]' in cli and "EventSchema(entity_categorical_cols=[...])" in str(caught.value)
    with pytest.raises(DataError) as caught:
        EventSchema.from_dict({"outcome_kind": ["x"]})
    assert caught.value.for_cli().startswith("[schema] has unknown keys ['outcome_kind']")


def test_warn_odd_ids_takes_missing_ids():
    """warn_odd_ids is public: a null among ids that fold to another's key raised ValueError."""
    import pyarrow as pa

    from riskmodel.data import warn_odd_ids

    with pytest.warns(DataWarning, match=r"1 id\(s\) differ .* by letter case.*e.g. \['A1', 'a1'\]"):
        warn_odd_ids(pa.array(["A1", None, "a1", "B2"]))


ODD_ROWS = {  # a row written otherwise, in a column of ISO times: how it is read
    "two-digit year with dashes": (["24-01-07 13:55:26"], [pd.NaT]),  # pandas: 2007-01-24; which is the year?
    "two-digit year last": (["21.11.23 08:05", "05.03.23 10:00"],  # German Excel; read in the column's order
                            [pd.Timestamp("2023-11-21 08:05"), pd.Timestamp("2023-03-05 10:00")]),
    "time of day alone": (["06:33:02", "下午 6:33"], [pd.NaT, pd.NaT]),  # pandas: today at 06:33
    "year last, day first": (["05-03-2024 10:00", "13-03-2024 10:00"],  # pandas: May 3 and March 13
                             [pd.Timestamp("2024-03-05 10:00"), pd.Timestamp("2024-03-13 10:00")]),
    "Chinese date": (["2024年03月14日 01:39"], [pd.Timestamp("2024-03-14 01:39")]),
    "full-width digits": (["２０２４－０３－１４ ０１：３９"], [pd.Timestamp("2024-03-14 01:39")]),
    "seconds' fraction": (["2024-03-14 01:39:00.1234"], [pd.Timestamp("2024-03-14 01:39:00.1234")]),
    "month's name, two-digit year": (["21-NOV-23 10:00"], [pd.Timestamp("2023-11-21 10:00")]),  # Oracle's default
}


@pytest.mark.parametrize("case", list(ODD_ROWS))
def test_a_few_rows_written_otherwise_are_read_wherever_they_stand(case):
    """A concatenated export: a few rows written otherwise than the rest. They were read as
    the rest only where a one-in-N sample of the column happened to hit them: elsewhere a
    Chinese date was unparseable, year-last dates were each read in its own order, and
    pandas' guesses (a two-digit year, a time of day without a date: today) became events."""
    odd, want = ODD_ROWS[case]
    n = 5000
    times = pd.Series(["2024-01-01 00:00:00"] * n, dtype=object)
    at = [1 + 2 * i for i in range(len(odd))]  # rows a sample of every fifth one skips
    times[at] = odd
    parsed, aware = schema_module.parse_times(times, "time", "events")
    assert not aware and parsed[at].tolist() == want
    assert (parsed.drop(index=at) == pd.Timestamp("2024-01-01")).all()
    for value, expected in zip(odd, want, strict=True):  # one value (as_of=, now=, ...) is read alike
        if case.startswith("year last") or value.startswith("05.03"):  # alone, no order: refused (naive_utc)
            continue
        assert schema_module.one_time(value) is pd.NaT if expected is pd.NaT else \
            schema_module.one_time(value) == expected


def test_one_row_with_a_utc_plus_hours_offset_is_a_stray_row_wherever_it_stands():
    """One row ending 'UTC+8' in a naive column stopped the night with pandas' 'Mixed
    timezones detected' unless a sample hit it; it is a stray row (a reject at night), and
    without stray_times the column is refused in our words."""
    times = pd.Series(["2024-01-01 00:00:00"] * 5000, dtype=object)
    times[1001] = "2024-01-01 10:00 UTC+8"
    stray: list = []
    parsed, _ = schema_module.parse_times(times, "time", "events", stray=stray)
    assert np.flatnonzero(stray[0]).tolist() == [1001] and parsed[1001] is pd.NaT
    with pytest.raises(DataError, match=r"mixes timezone-aware and naive times \(1 aware, 4999 naive\)"):
        schema_module.parse_times(times, "time", "events")


def test_ns_values_is_a_read_only_view_or_a_copy():
    """Times read as nanoseconds without pandas' copy are the caller's column: a kernel writing
    into them would change the caller's frame, so the view is read-only (as Series.to_numpy's)."""
    times = pd.Series(pd.to_datetime(["2024-01-01", None, "2024-01-03"])).astype("datetime64[ns]")
    ns = schema_module.ns_values(times)
    assert ns.tolist() == times.to_numpy().view(np.int64).tolist() and not ns.flags.writeable
    with pytest.raises(ValueError):
        ns[0] = 0
    coarse = times.astype("datetime64[s]")  # another unit: converted, a copy of its own
    assert schema_module.ns_values(coarse).tolist() == ns.tolist()
    assert times.iloc[0] == pd.Timestamp("2024-01-01")


@pytest.mark.parametrize("role, column", [("entity_col", "tier"), ("entity_col", "probability"), ("entity_col", "label"),
                                          ("entity_col", "as_of"), ("entity_categorical_cols", "tier")])
def test_an_id_or_attribute_named_as_an_output_column_is_refused(role, column):
    """An extract whose id column is called 'tier' (or 'probability', 'reasons', ...) was taken:
    predict's output overwrote it, giving scores without ids; 'label', 'censored' or 'as_of'
    ids failed later in fit with a message about id types or too few positives."""
    value = (column,) if role == "entity_categorical_cols" else column
    with pytest.raises(DataError, match=rf"EventSchema {role} names the column '{column}', a name riskmodel's "
                                        rf"outputs give a column of their own .* df.rename\(columns="):
        EventSchema(**{role: value})
    with pytest.raises(DataError) as caught:
        EventSchema.from_dict({**EventSchema().to_dict(), role: value})
    assert caught.value.for_cli().startswith(f"[schema] {role} names the column '{column}'")
    # names that only the id's outputs use are attributes like any other
    assert EventSchema(entity_categorical_cols=("reason", "label")).entity_categorical_cols == ("reason", "label")


def test_outcome_kinds_written_in_another_letter_case_are_warned_about():
    """An export writing 'Criminal_Case' (or 'INJURY  ' from a CHAR column) for the outcome
    kind 'criminal_case' lost those escalations without a word: labelled 0, scored as open."""
    from riskmodel import prepare_events

    schema = EventSchema(entity_col="case", time_col="at", kind_col="type", text_col=None, party_col=None,
                         entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None)
    events = pd.DataFrame({"case": [7, 7, 7, 8, 8, 9],
                           "at": ["2024-01-03", "2024-02-10", "2024-03-01", "2024-01-05", "2024-02-20", "2024-01-09"],
                           "type": ["call", "threat", "Criminal_Case", "call", "INJURY  ", "criminal_case"]})
    with pytest.warns(DataWarning, match=r"event kinds \['Criminal_Case', 'INJURY  '\] differ from the outcome "
                                         r"kinds \['criminal_case', 'injury'\] only by letter case"):
        prepare_events(events.sample(frac=1, random_state=0), schema)
    exact = events.assign(type=events["type"].str.strip().str.lower())
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        prepare_events(exact, schema)  # written as the schema's outcome kinds: nothing to say


@pytest.mark.parametrize("n", [3, 3000])  # the one-row path and the column path
def test_numeric_entity_categories_read_as_their_decimal_text(n):
    """A station coded 7 is "7" whether its column holds integers, floats (beside a missing
    value, as pandas reads such a column), nullable integers or a categorical of numbers: it
    was "7.0" as a float, so a model trained on integers lost the station."""
    from riskmodel import validate_entities

    schema = EventSchema(entity_categorical_cols=("station",), entity_time_cols=(), group_cols=(), closed_col=None)
    codes = np.resize([7, 9, 12], n)
    forms = {
        "int64": pd.Series(codes),
        "float64 with a missing value": pd.Series(codes, dtype=float).where(np.arange(n) != 1),
        "Int64": pd.Series(codes, dtype="Int64").where(np.arange(n) != 1),
        "categorical of ints": pd.Series(codes).astype("category"),
        "categorical of floats": pd.Series(codes, dtype=float).astype("category"),
        "text": pd.Series(codes).astype(str),
    }
    for name, station in forms.items():
        table = validate_entities(pd.DataFrame({"dispute_id": np.arange(n), "station": station}), schema)
        got = table["station"].astype(object).where(table["station"].notna(), None).tolist()
        want = [str(c) if (i != 1 or name in ("int64", "text") or "categorical" in name) else None
                for i, c in enumerate(codes)]
        assert got == want, name
