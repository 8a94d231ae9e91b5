"""FeatureBuilder: values against a slow reference, point-in-time properties, generality."""

import re
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

import riskmodel.data._keys
import riskmodel.data._schema
import riskmodel.features._builder
import riskmodel.features._tally
from riskmodel import (
    DataError,
    DataWarning,
    EventSchema,
    FeatureBuilder,
    ModelError,
    prepare_events,
    validate_entities,
    validate_events,
)
from riskmodel.features._tally import choose_tally, forced_tally

KINDS = ["call", "threat", "fight", "mediation_failed", "mediation_success", "criminal_case"]
T0 = pd.Timestamp("2024-01-01")
STREAKS = (("mediation_failed", "mediation_success"),)
#: the events' own columns only (text and party on, no entities table)
SCHEMA_NO_ENT = EventSchema(entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None)


def random_log(seed, n_events=300, n_disputes=25, n_parties=30):
    rng = np.random.default_rng(seed)
    ids = [f"D{i:03d}" for i in range(n_disputes)]
    # whole days plus a few exact-hour times, so events land exactly on as_of and window edges
    days = rng.integers(0, 400, n_events)
    hours = rng.choice([0, 0, 0, 3, 12, 23], n_events)
    events = pd.DataFrame(
        {
            "dispute_id": rng.choice(ids, n_events),
            "time": T0 + pd.to_timedelta(days, unit="D") + pd.to_timedelta(hours, unit="h"),
            "kind": rng.choice(KINDS, n_events),
            "narrative": rng.choice(["他扬言要报复", "拿着刀", "协商", None, ""], n_events),
            "party_id": rng.choice([f"P{i}" for i in range(n_parties)], n_events),
        }
    )
    entities = pd.DataFrame(
        {
            "dispute_id": ids,
            "category": rng.choice(["neighbour", "debt", "family"], n_disputes),
            "station": rng.choice(["S1", "S2", "S3"], n_disputes),
            "opened_at": T0 + pd.to_timedelta(rng.integers(-30, 300, n_disputes), unit="D"),
            "closed_at": pd.NaT,
        }
    )
    cut_days = rng.integers(0, 420, 80)
    cutoffs = pd.DataFrame(
        {
            "dispute_id": rng.choice(ids + ["D999"], 80),  # D999 has no events at all
            "as_of": T0 + pd.to_timedelta(cut_days, unit="D"),
        }
    )
    return events.drop_duplicates(), entities, cutoffs


def reference_features(events, cutoffs, entities, windows, kinds, schema):
    """Obviously-correct, slow: one cutoff at a time, plain pandas filters."""
    rows = []
    outcome = set(schema.outcome_kinds)
    for _, c in cutoffs.iterrows():
        a = c["as_of"]
        past = events[(events["dispute_id"] == c["dispute_id"]) & (events["time"] < a)]
        row = {}
        for w in list(windows) + ["all"]:
            win = past if w == "all" else past[past["time"] >= a - pd.Timedelta(w)]
            row[f"count_all_{w}"] = len(win)
            for k in kinds:
                row[f"count_{k}_{w}"] = int((win["kind"] == k).sum())
        row["days_since_last_event"] = (
            (a - past["time"].max()) / pd.Timedelta(days=1) if len(past) else np.nan
        )
        row["days_since_first_event"] = (
            (a - past["time"].min()) / pd.Timedelta(days=1) if len(past) else np.nan
        )
        for k in kinds:
            pk = past[past["kind"] == k]
            row[f"days_since_last_{k}"] = (
                (a - pk["time"].max()) / pd.Timedelta(days=1) if len(pk) else np.nan
            )
        # streak: failed mediations strictly after the last successful one
        succ = past.loc[past["kind"] == "mediation_success", "time"]
        fails = past[past["kind"] == "mediation_failed"]
        if len(succ):
            fails = fails[fails["time"] > succ.max()]
        row["streak_mediation_failed_since_mediation_success"] = len(fails)
        # party features
        parties = past["party_id"].dropna().unique()
        others, escal = [], 0
        for p in parties:
            p_ev = events[(events["party_id"] == p) & (events["time"] < a)]
            other_ids = set(p_ev["dispute_id"]) - {c["dispute_id"]}
            others.append(len(other_ids))
            for d in other_ids:
                d_ev = events[events["dispute_id"] == d]
                first_p = d_ev.loc[d_ev["party_id"] == p, "time"].min()
                out_t = d_ev.loc[d_ev["kind"].isin(outcome), "time"].min()
                if pd.notna(out_t) and max(first_p, out_t) < a:
                    escal += 1
        row["party_count"] = len(parties)
        row["party_other_disputes"] = sum(others)
        row["party_max_other_disputes"] = max(others) if others else 0
        row["party_past_escalations"] = escal
        rows.append(row)
    return pd.DataFrame(rows, index=cutoffs.index)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("small_input_shortcuts", [True, False])
def test_values_match_slow_reference(seed, small_input_shortcuts, monkeypatch):
    if not small_input_shortcuts:  # the paths large inputs take (kind by kind, hash lookups)
        for module in (riskmodel.data._schema, riskmodel.features._builder):
            monkeypatch.setattr(module, "FEW_VALUES", 0)
    events, entities, cutoffs = random_log(seed)
    schema = EventSchema()
    fb = FeatureBuilder(windows=("7D", "30D"), streaks=STREAKS, max_kinds=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        got = fb.fit_transform(events, cutoffs, entities=entities)
    want = reference_features(events, cutoffs, entities, ("7D", "30D"), sorted(KINDS), schema)
    for col in want.columns:
        np.testing.assert_allclose(
            got[col].to_numpy(dtype=float),
            want[col].to_numpy(dtype=float),
            rtol=1e-5,
            atol=1e-4,
            err_msg=col,
        )
    assert list(got.index) == list(cutoffs.index)


def test_event_exactly_at_as_of_and_window_edge():
    events = pd.DataFrame(
        {
            "dispute_id": ["a"] * 4,
            "time": pd.to_datetime(
                ["2024-01-01", "2024-01-24", "2024-01-31", "2024-01-31 00:00:01"], format="ISO8601"
            ),
            "kind": ["call"] * 4,
        }
    )
    schema = EventSchema(text_col=None, party_col=None)
    cutoffs = pd.DataFrame({"dispute_id": ["a"], "as_of": pd.to_datetime(["2024-01-31"])})
    X = FeatureBuilder(
        schema=schema, windows=("7D", "30D"), families=("counts", "recency")
    ).fit_transform(events, cutoffs)
    # window edge 2024-01-24 is included (as_of - 7D <= t); the event at as_of is the future
    assert X.loc[0, "count_all_7D"] == 1
    assert X.loc[0, "count_all_30D"] == 2  # 2024-01-01 is exactly 30 days before
    assert X.loc[0, "count_all_all"] == 2
    assert X.loc[0, "days_since_last_event"] == pytest.approx(7.0)


def test_cutoff_without_events_and_unknown_kind_warns():
    events, entities, cutoffs = random_log(3)
    fb = FeatureBuilder(windows=("30D",)).fit(events, entities=entities)
    new_events = events.copy()
    new_events.loc[new_events.index[:5], "kind"] = "brand_new_kind"
    with pytest.warns(DataWarning, match="not seen at fit"):
        X = fb.transform(new_events, cutoffs, entities=entities)
    assert list(X.columns) == list(fb.get_feature_names_out())
    no_events = X[cutoffs["dispute_id"] == "D999"]
    assert (no_events["count_all_all"] == 0).all()
    assert no_events["days_since_last_event"].isna().all()
    assert X["count_other_all"].sum() >= 1


def test_entities_table_without_rows_gives_missing_attributes():
    """A chunk of disputes none of which has an entities row: attributes missing, no error."""
    events, entities, cutoffs = random_log(5)
    fb = FeatureBuilder(windows=("30D",)).fit(events, entities=entities)
    X = fb.transform(events, cutoffs, entities=entities.iloc[:0])
    assert X["category"].isna().all() and X["station"].isna().all()
    assert X["days_since_opened_at"].isna().all()
    assert X["ctx_station_escalation_rate_365D"].isna().all()
    full = fb.transform(events, cutoffs, entities=entities)
    assert X["count_all_30D"].equals(full["count_all_30D"])
    with pytest.raises(DataError, match="empty"):
        validate_entities(entities.iloc[:0])


def test_unseen_category_becomes_missing_with_warning():
    events, entities, cutoffs = random_log(4)
    fb = FeatureBuilder(windows=("30D",)).fit(events, entities=entities)
    changed = entities.copy()
    changed.loc[0, "category"] = "never_seen"
    with pytest.warns(DataWarning, match="not seen at fit"):
        X = fb.transform(events, cutoffs, entities=changed)
    assert X["category"].dtype == "category"
    assert list(X["category"].cat.categories) == fb.categories_["category"]
    rows = cutoffs["dispute_id"] == entities.loc[0, "dispute_id"]
    assert X.loc[rows, "category"].isna().all()


def test_sklearn_conventions():
    fb = FeatureBuilder(windows=("30D",), max_kinds=3)
    assert clone(fb).get_params() == fb.get_params()
    with pytest.raises(ModelError, match="not fitted"):
        fb.get_feature_names_out()
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):  # scikit-learn's too
        fb.get_feature_names_out()
    with pytest.raises(TypeError):
        FeatureBuilder(("30D",))  # keyword-only


def test_bad_params_and_inputs():
    events, entities, cutoffs = random_log(5)
    with pytest.raises(DataError, match="unknown feature families"):
        FeatureBuilder(families=("counts", "magic")).fit(events)
    with pytest.raises(DataError, match="window"):
        FeatureBuilder(windows=("thirty days",)).fit(events)
    fb = FeatureBuilder(windows=("30D",)).fit(events, entities=entities)
    with pytest.raises(DataError, match="cutoffs is missing the column .as_of."):
        fb.transform(events, cutoffs.drop(columns="as_of"), entities=entities)
    with pytest.raises(DataError, match="entities"):
        fb.transform(events, cutoffs)
    numeric_ids = cutoffs.assign(dispute_id=np.arange(len(cutoffs)))
    with pytest.raises(DataError, match="different types"):
        fb.transform(events, numeric_ids, entities=entities)


def test_generality_other_columns_numeric_ids_no_text_no_entities():
    rng = np.random.default_rng(7)
    n = 500
    log = pd.DataFrame(
        {
            "subject": rng.integers(0, 40, n),
            "ts": pd.Timestamp("2020-01-01", tz="Europe/Paris")
            + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
            "event_type": rng.choice(["login", "purchase", "complaint"], n),
        }
    ).drop_duplicates()
    schema = EventSchema(
        entity_col="subject",
        time_col="ts",
        kind_col="event_type",
        text_col=None,
        party_col=None,
        entity_categorical_cols=(),
        entity_time_cols=(),
        group_cols=(),
        closed_col=None,
        outcome_kinds=("complaint",),
    )
    cutoffs = pd.DataFrame(
        {"subject": [1, 2, 3], "as_of": pd.to_datetime(["2020-03-01"] * 3, utc=True)}
    )
    X = FeatureBuilder(schema=schema).fit_transform(log, cutoffs)
    assert "count_complaint_30D" in X.columns
    assert not any(c.startswith(("kw_", "party_", "ctx_")) for c in X.columns)
    # naive as_of against aware events is ambiguous: refused
    with pytest.raises(DataError, match="timezone"):
        FeatureBuilder(schema=schema).fit(log).transform(
            log, cutoffs.assign(as_of=pd.Timestamp("2020-03-01"))
        )


# ------------------------------------------------------------------------------------------
# properties


event_rows = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=120 * 24),  # hours after T0
        st.sampled_from(KINDS),
        st.sampled_from(["扬言报复", "刀", None, "ok"]),
        st.sampled_from(["p1", "p2", "p3", "p4"]),
    ),
    min_size=1,
    max_size=60,
)


def _frame(rows):
    return pd.DataFrame(
        {
            "dispute_id": [r[0] for r in rows],
            "time": [T0 + pd.Timedelta(hours=r[1]) for r in rows],
            "kind": [r[2] for r in rows],
            "narrative": [r[3] for r in rows],
            "party_id": [r[4] for r in rows],
        }
    ).drop_duplicates(ignore_index=True)


ENTITIES = pd.DataFrame(
    {
        "dispute_id": ["a", "b", "c"],
        "category": ["x", "y", "x"],
        "station": ["s1", "s1", "s2"],
        "opened_at": [T0] * 3,
        "closed_at": [pd.NaT] * 3,
    }
)


def _features(events, cutoffs, fit_events):
    fb = FeatureBuilder(windows=("7D", "30D"), streaks=STREAKS, max_kinds=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fb.fit(fit_events, entities=ENTITIES)
        return fb.transform(events, cutoffs, entities=ENTITIES)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=event_rows,
    future=event_rows,
    as_of_hours=st.integers(0, 120 * 24),
    jitter_ns=st.one_of(st.just(0), st.integers(1, 999), st.integers(1, 3_600 * 10**9 - 1)),
    crowd=st.booleans(),
    at_event=st.booleans(),
    who=st.sampled_from(["a", "b", "c"]),
)
def test_future_events_never_change_a_row(rows, future, as_of_hours, jitter_ns, crowd, at_event, who):
    """Adding, removing or changing events at or after as_of leaves the row unchanged.

    This covers every family, the cross-dispute ones included: future events of other
    disputes (party histories, station escalation rates) are invisible too. So are many
    future disputes (``crowd``), which make the clock coarser, with ``as_of`` a few
    nanoseconds after an event (``at_event``, ``jitter_ns``).
    """
    if at_event and rows:  # just after the first event of ``who``, or of the log
        as_of_hours = next((r[1] for r in rows if r[0] == who), rows[0][1])
    as_of = T0 + pd.Timedelta(hours=as_of_hours) + pd.Timedelta(jitter_ns, unit="ns")
    events = _frame(rows)
    past = events[events["time"] < as_of]
    fut = _frame(future)
    fut["time"] = as_of + (fut["time"] - T0)  # all at or after as_of, some exactly at it
    if crowd:  # 300 more disputes, two years later: a coarser clock (microseconds)
        later = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(300), unit="D")
        fut = pd.concat([fut, pd.DataFrame({"dispute_id": [f"z{i}" for i in range(300)], "time": later,
                                            "kind": "call", "narrative": None, "party_id": None})], ignore_index=True)
    with_future = pd.concat([events, fut], ignore_index=True).drop_duplicates(ignore_index=True)
    cutoffs = pd.DataFrame({"dispute_id": [who], "as_of": [as_of]})
    fit_on = pd.concat([events, fut], ignore_index=True)
    if len(past) == 0:
        past = events.iloc[:0]
        base = _features(with_future, cutoffs, fit_on)
        assert base["count_all_all"].iloc[0] == 0
        return
    a = _features(past, cutoffs, fit_on)
    b = _features(with_future, cutoffs, fit_on)
    pd.testing.assert_frame_equal(a, b)


@settings(max_examples=30, deadline=None)
@given(rows=event_rows, seed=st.integers(0, 10**6))
def test_permuting_rows_never_changes_output(rows, seed):
    events = _frame(rows)
    cutoffs = pd.DataFrame(
        {
            "dispute_id": ["a", "b", "c", "a"],
            "as_of": [T0 + pd.Timedelta(days=d) for d in (10, 50, 90, 121)],
        }
    )
    a = _features(events, cutoffs, events)
    shuffled = events.sample(frac=1.0, random_state=seed % (2**32))
    b = _features(shuffled, cutoffs, events)
    pd.testing.assert_frame_equal(a, b)
    # permuting the cutoffs permutes the rows, nothing else
    perm = cutoffs.sample(frac=1.0, random_state=seed % (2**32))
    c = _features(events, perm, events)
    pd.testing.assert_frame_equal(a.loc[perm.index], c)


@settings(max_examples=30, deadline=None)
@given(rows=event_rows, other=event_rows)
def test_row_depends_only_on_own_events_without_cross_dispute_families(rows, other):
    """With the cross-dispute families off, other disputes' events never matter."""
    events = _frame([("a", 24, "call", None, "p1"), *rows])  # dispute a always has an event
    own = events[events["dispute_id"] == "a"]
    noise = _frame(other)
    noise = noise[noise["dispute_id"] != "a"]
    cutoffs = pd.DataFrame(
        {
            "dispute_id": ["a", "a"],
            "as_of": [T0 + pd.Timedelta(days=30), T0 + pd.Timedelta(days=200)],
        }
    )
    families = ("counts", "recency", "dynamics", "text", "entity")
    fit_on = pd.concat([events, noise])
    fb = FeatureBuilder(windows=("7D", "30D"), families=families, max_kinds=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        fb.fit(fit_on, entities=ENTITIES)
        a = fb.transform(own, cutoffs, entities=ENTITIES)
        b = fb.transform(pd.concat([own, noise]), cutoffs, entities=ENTITIES)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("seed", [0, 3])
def test_context_events_give_the_same_rows_as_the_whole_log(seed):
    """Chunked scoring: own events + every dispute's summary rows == the whole log."""
    from riskmodel.batch._core import summary_rows as _summary_rows
    from riskmodel.features._builder import prepare_events

    events, entities, cutoffs = random_log(seed, n_events=600, n_parties=12)
    fb = FeatureBuilder(streaks=STREAKS).fit(events, entities=entities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        whole = fb.transform(events, cutoffs, entities=entities)
        summary = _summary_rows(prepare_events(events).frame, EventSchema())
        chunk = cutoffs["dispute_id"].isin([f"D{i:03d}" for i in range(0, 25, 2)] + ["D999"])
        own = events[events["dispute_id"].isin(cutoffs.loc[chunk, "dispute_id"])]
        part = fb.transform(own, cutoffs[chunk], entities=entities, context_events=summary.iloc[::-1])
    assert len(summary) < len(events)
    pd.testing.assert_frame_equal(part, whole[chunk])


def test_tally_by_level_is_refused_on_several_cutoffs_per_dispute():
    """The tally by level needs one cutoff per dispute: forced on a log with several, it
    is refused (the reference kernel, one cumulative sum per kind, serves them)."""
    events, _, cutoffs = random_log(0)
    assert cutoffs["dispute_id"].duplicated().any()
    fb = FeatureBuilder(windows=("7D", "30D"), families=("counts", "recency", "dynamics")).fit(events)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with forced_tally("by_level"), pytest.raises(ValueError, match="one cutoff per dispute"):
            fb.transform(events, cutoffs)


def test_tally_choice_follows_the_input_shape():
    """One cutoff per dispute (one dispute included): by level; else by kind."""
    events, _, cutoffs = random_log(0)
    fb = FeatureBuilder(families=("counts",)).fit(events)
    chosen = []
    original = riskmodel.features._tally.choose_tally

    def spy(levels):
        chosen.append(original(levels))
        return chosen[-1]

    one = cutoffs.head(1)
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        patch.setattr(riskmodel.features._tally, "choose_tally", spy)
        fb.transform(events[events["dispute_id"] == one["dispute_id"].iloc[0]], one)
        fb.transform(events, cutoffs.drop_duplicates("dispute_id"))
        fb.transform(events, cutoffs)
    assert chosen == ["by_level", "by_level", "by_kind"]
    assert choose_tally is original


def _by_level_and_by_kind(fb, events, cutoffs, *, entities=None):
    """The transform through the tally by level (refused if it does not apply) and through
    the reference kernel, one cumulative sum per kind."""
    with forced_tally("by_level"):
        tallied = fb.transform(events, cutoffs, entities=entities)
    with forced_tally("by_kind"):
        general = fb.transform(events, cutoffs, entities=entities)
    return tallied, general


@pytest.mark.parametrize("dense_cells", [0, 8, 10**9])  # never, as shipped, always counted by (level, kind, row) cells
@pytest.mark.parametrize("seed", [0, 1, 2, "all at one time"])
def test_one_cutoff_per_dispute_tally_matches_general_path_and_reference(seed, dense_cells, monkeypatch):
    """One cutoff per dispute (nightly scoring) tallies events by level; the per-kind
    cumulative sums and the slow reference give the same values. "all at one time": every
    dispute scored at the same as_of (an event's time), the nightly job's case."""
    one_time = seed == "all at one time"
    seed = 3 if one_time else seed
    for module in (riskmodel.data._schema, riskmodel.features._builder):
        monkeypatch.setattr(module, "FEW_VALUES", 0)
    monkeypatch.setattr(riskmodel.features._tally, "_LEVEL_EVENTS", 64)  # levels in several slices
    monkeypatch.setattr(riskmodel.features._tally, "_DENSE_CELLS", dense_cells, raising=False)
    events, _, _ = random_log(seed)
    rng = np.random.default_rng(seed)
    # every other dispute has no cutoff: its events lie between the cutoffs' histories;
    # ids without events anywhere in the list: before, between and after the others'
    ids = list(rng.permutation(sorted(events["dispute_id"].unique())[::2]))
    for unknown in ["A000", "D0105", "D999", "Z"]:
        ids.insert(int(rng.integers(0, len(ids) + 1)), unknown)
    as_of = (T0 + pd.to_timedelta(rng.integers(-10, 420, len(ids)), unit="D")).to_numpy(copy=True)
    first = events.groupby("dispute_id")["time"].first()
    at_event = [i for i, d in enumerate(ids) if d in first.index][:3]
    as_of[at_event] = first[[ids[i] for i in at_event]].to_numpy()  # exactly at an event
    if one_time:
        ids = list(rng.permutation(events["dispute_id"].unique())) + ["D999"]
        as_of = np.full(len(ids), events["time"].iloc[len(events) // 2].to_datetime64())
    cutoffs = pd.DataFrame({"dispute_id": ids, "as_of": as_of}, index=rng.permutation(len(ids)) * 3)
    windows = ("30D", "7D", "365D")  # not sorted by length
    fb = FeatureBuilder(windows=windows, families=("counts", "recency"), max_kinds=4).fit(events)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        tallied, general = _by_level_and_by_kind(fb, events, cutoffs)
    pd.testing.assert_frame_equal(tallied, general)
    assert tallied.filter(like="_other_").sum().sum() > 0  # kinds beyond max_kinds are tallied as 'other'
    want = reference_features(events, cutoffs, None, windows, fb.kinds_, EventSchema())
    for col in [c for c in want.columns if c.startswith(("count_", "days_since_"))]:
        np.testing.assert_allclose(tallied[col].to_numpy(float), want[col].to_numpy(float), rtol=1e-6, err_msg=col)


@pytest.mark.parametrize("families", [("counts",), ("recency",), ("counts", "recency", "dynamics")])
def test_tally_by_level_serves_each_family_alone(families, monkeypatch):
    """Counts without recency and recency without counts take the tally by level too (the
    positions it sets serve the other families): same values as the general path."""
    for module in (riskmodel.data._schema, riskmodel.features._builder):
        monkeypatch.setattr(module, "FEW_VALUES", 0)
    monkeypatch.setattr(riskmodel.features._tally, "_LEVEL_EVENTS", 50)
    monkeypatch.setattr(riskmodel.features._tally, "_DENSE_CELLS", 10**9, raising=False)  # the bincount of cells wherever it applies
    events, _, _ = random_log(6)
    ids = sorted(events["dispute_id"].unique())[1:-1]  # the first and the last disputes' events have no cutoff
    cutoffs = pd.DataFrame({"dispute_id": ids + ["D999"], "as_of": pd.Timestamp("2024-03-01")})
    fb = FeatureBuilder(windows=("7D", "90D"), families=families).fit(events)
    tallied, general = _by_level_and_by_kind(fb, events, cutoffs)
    pd.testing.assert_frame_equal(tallied, general)


@pytest.mark.parametrize("resolution", [1_000_000_000, 3_600_000_000_000])
def test_a_coarse_clock_changes_no_value(resolution, monkeypatch):
    """On a coarse clock (seconds, hours), with ``as_of`` a fraction of a tick after an
    event (or anywhere): every family gives the exact reference's values, by the tally by
    level as by the searched positions. The events in ``as_of``'s own tick are read by
    their times, so the resolution (which depends on how many disputes the log holds and
    on its time range, future events included) never shows in a feature."""
    for module in (riskmodel.data._schema, riskmodel.features._builder):
        monkeypatch.setattr(module, "FEW_VALUES", 0)
    monkeypatch.setattr(riskmodel.data._timeline, "RESOLUTIONS_NS", (resolution,))
    events, entities, _ = random_log(5)
    rng = np.random.default_rng(5)
    ids = sorted(events["dispute_id"].unique())
    # as_of a fraction of a tick after one of the dispute's events, or at a random time
    at = events.groupby("dispute_id")["time"].max()[ids].to_numpy()
    jitter = pd.to_timedelta(rng.integers(1, resolution - 1, len(ids)), unit="ns").to_numpy()
    as_of = np.where(rng.random(len(ids)) < 0.5, at + jitter, at - pd.Timedelta(days=30) + jitter)
    cutoffs = pd.DataFrame({"dispute_id": ids, "as_of": as_of})
    fb = FeatureBuilder(windows=("7D", "30D"), streaks=STREAKS, max_kinds=50).fit(events, entities=entities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        tallied, general = _by_level_and_by_kind(fb, events, cutoffs, entities=entities)
    pd.testing.assert_frame_equal(tallied, general)
    want = reference_features(events, cutoffs, entities, ("7D", "30D"), sorted(KINDS), EventSchema())
    for col in want.columns:
        np.testing.assert_allclose(tallied[col].to_numpy(dtype=float), want[col].to_numpy(dtype=float),
                                   rtol=1e-5, atol=1e-4, err_msg=col)


def test_cutoffs_in_entity_order_are_computed_in_place():
    """Cutoffs listed in entity order (sorted ids, for a time-sorted extract), with ids that
    have no events among them, need no permutation of the output rows; the features are
    those of the shuffled list."""
    events, _, _ = random_log(0)
    events = events.sort_values("time", kind="stable")  # an extract's order: ids are then numbered sorted
    ids = sorted(events["dispute_id"].unique())
    ids = ["A000"] + ids[:5] + ["D0035", "D0036"] + ids[5:] + ["Z"]  # no events: first, inside, last
    cutoffs = pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp("2024-06-01")})
    fb = FeatureBuilder(families=("counts", "recency", "dynamics")).fit(events)
    computation = riskmodel.features._builder.FeatureComputation(
        fb, riskmodel.features._builder.prepare_events(events), riskmodel.data._schema.validate_cutoffs(cutoffs), None
    )
    np.testing.assert_array_equal(computation.order, np.arange(len(ids)))
    shuffled = cutoffs.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(fb.transform(events, cutoffs).loc[shuffled.index], fb.transform(events, shuffled))


def test_several_cutoffs_of_one_dispute_take_the_general_path(monkeypatch):
    events, _, _ = random_log(0)
    cutoffs = pd.DataFrame({"dispute_id": ["D001", "D002", "D001"], "as_of": pd.to_datetime(["2024-06-01"] * 3)})
    fb = FeatureBuilder(families=("counts", "recency")).fit(events)
    computation = riskmodel.features._builder.FeatureComputation(
        fb, riskmodel.features._builder.prepare_events(events), riskmodel.data._schema.validate_cutoffs(cutoffs), None
    )
    assert riskmodel.features._tally.LevelTally(computation).edges is None
    # a window that is not a whole number of clock ticks is tallied by level: times are exact
    single = cutoffs.iloc[:2]
    monkeypatch.setattr(riskmodel.data._timeline, "RESOLUTIONS_NS", (1_000_000_000,))
    fb = FeatureBuilder(windows=("1500ms",), families=("counts",)).fit(events)
    tallied, general = _by_level_and_by_kind(fb, events, single)
    pd.testing.assert_frame_equal(tallied, general)


@pytest.mark.parametrize(
    "known",
    [
        ["D001", "D002", "D010", "é", "中文"],  # sorted
        ["zz", "", "a", "ab", "é", "12345678"],  # unsorted, an empty string
        [f"D{i:05d}" for i in np.random.default_rng(1).permutation(3000)],  # unsorted, many: searched in sorted order
        ["a", "a\x00", "b"],  # a NUL byte: Arrow's hash join
        ["a longer identifier", "b"],  # longer than 8 bytes: Arrow's hash join
        [],
    ],
)
def test_lookup_of_short_string_ids_matches_pandas(known):
    from riskmodel.data import lookup_positions, lookup_positions_reference

    rng = np.random.default_rng(0)
    pool = known + ["unknown", "", "D0000000", "ab\x00"]
    values = pd.Series(rng.choice(pool, 20_000), dtype="str")
    index = pd.Index(known, dtype="str")
    np.testing.assert_array_equal(lookup_positions(index, values), lookup_positions_reference(index, values))


@pytest.mark.parametrize("dtype", ["str", "string[pyarrow]", "object", "shared objects", "category"])
@pytest.mark.parametrize("n", [1000, 40])  # hashed; a few values, through a dict
def test_column_codes_match_pandas_for_every_string_flavour(dtype, n):
    from riskmodel.data import column_codes

    rng = np.random.default_rng(0)
    drawn = rng.choice(np.array(["call", "threat", "", "é", None, "a much longer kind"], dtype=object), n)
    if dtype == "shared objects":  # as pd.read_csv gives them: one object per distinct string
        values = pd.Series(drawn, dtype=object)
    else:
        values = pd.Series([None if v is None else v[:1] + v[1:] for v in drawn], dtype=dtype)
    if dtype == "category":  # categories no row holds, in an order that is not the rows'
        values = values.cat.set_categories(["unused", "threat", "é", "call", "", "a much longer kind", "also unused"])
    codes, uniques = column_codes(values)
    want_codes, want_uniques = pd.factorize(values, use_na_sentinel=True)
    if dtype == "category":  # read by its codes: the categories' order, only those held
        assert list(uniques) == ["threat", "é", "call", "", "a much longer kind"]
        np.testing.assert_array_equal(codes < 0, want_codes < 0)
        np.testing.assert_array_equal(uniques[codes[codes >= 0]], values[codes >= 0].astype(object))
        return
    np.testing.assert_array_equal(codes, want_codes)
    pd.testing.assert_index_equal(uniques, pd.Index(want_uniques), exact=n > 64)  # a few: object uniques


@pytest.mark.parametrize("dtype", ["str", "object", "category", "string[pyarrow]"])
def test_fit_reads_the_kinds_without_screening_and_learns_what_prepared_events_give(dtype):
    """``fit`` on a raw frame reads only the kind and time columns (no screening, no sort) and
    learns the same vocabulary as from the prepared events, for every kind dtype."""
    events, entities, _ = random_log(7)
    events = events.assign(kind=events["kind"].astype(dtype))
    if dtype == "category":  # a category no event holds is no kind
        events["kind"] = events["kind"].cat.add_categories(["never_happens"])
    raw = FeatureBuilder(max_kinds=50).fit(events, entities=entities)
    prepared = FeatureBuilder(max_kinds=50).fit(prepare_events(events), entities=entities)
    assert raw.kinds_ == prepared.kinds_ and raw.tz_aware_ == prepared.tz_aware_
    assert "never_happens" not in raw.kinds_
    raw = FeatureBuilder(max_kinds=5).fit(events, entities=entities)
    prepared = FeatureBuilder(max_kinds=5).fit(prepare_events(events), entities=entities)
    assert raw.kinds_ == prepared.kinds_ and raw.tz_aware_ == prepared.tz_aware_
    pd.testing.assert_index_equal(pd.Index(raw.feature_names_out_), pd.Index(prepared.feature_names_out_))
    with pytest.raises(DataError, match="must hold event kinds as strings"):
        FeatureBuilder().fit(events.assign(kind=1))


@pytest.mark.parametrize("n", [40, 5_000])  # a few rows (checked one by one) and hashed columns
@pytest.mark.parametrize("where", ["kind", "id", "cutoff id"])
def test_values_that_are_not_single_values_get_a_clear_error(where, n):
    """A list or a dict among the ids or kinds (only Python callers can put one there) is
    named in a DataError, in fit and transform alike, never a TypeError from pandas."""
    rng = np.random.default_rng(0)
    kinds = np.array(["call", "fight", "quarrel", "threat"], dtype=object)[rng.integers(0, 4, n)]
    ids = np.array([f"C{i % 30:05d}" for i in range(n)], dtype=object)
    if where == "kind":
        kinds[3] = ["a", "list"]
    elif where == "id":
        ids[3] = {"a": 1}
    events = pd.DataFrame({
        "dispute_id": pd.Series(ids, dtype=object),
        "time": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
        "kind": pd.Series(kinds, dtype=object),
    })
    cut_ids = pd.Series(["C00001", ["x"] if where == "cutoff id" else "C00002"] * (n // 2), dtype=object)
    cutoffs = pd.DataFrame({"dispute_id": cut_ids, "as_of": pd.Timestamp("2022-06-01")})
    schema = EventSchema(text_col=None, party_col=None)
    named = r"column '(kind|dispute_id)' holds values that are not single values|kind is not a string in 'kind'"
    with pytest.raises(DataError, match=named):
        fb = FeatureBuilder(schema=schema, families=("counts",)).fit(events)
        fb.transform(events, cutoffs)


@pytest.mark.parametrize("objects", ["shared", "one per row"])  # as pd.read_csv gives them; made row by row
@pytest.mark.parametrize("cutoff_ids", ["the same objects", "str", "several per dispute"])
def test_object_ids_numbered_in_the_cutoffs_order_give_the_same_rows(objects, cutoff_ids, monkeypatch):
    """Object ids are hashed together with the cutoffs' ids and numbered in the cutoffs'
    order, so no id is looked up: the rows equal those of the same log with string ids
    (looked up), whatever the cutoffs hold: any order, ids without events before, between
    and after the others, several cutoffs per dispute."""
    for module in (riskmodel.data._schema, riskmodel.features._builder):
        monkeypatch.setattr(module, "FEW_VALUES", 0)
    events, _, _ = random_log(5)
    rng = np.random.default_rng(5)
    ids = list(rng.permutation(sorted(events["dispute_id"].unique())[::2]))
    for unknown in ["A000", "D0105", "D999", "Z"]:
        ids.insert(int(rng.integers(0, len(ids) + 1)), unknown)
    if cutoff_ids == "several per dispute":
        ids = list(rng.permutation(ids * 3))
    as_of = T0 + pd.to_timedelta(rng.integers(-10, 420, len(ids)), unit="D")
    index = rng.permutation(len(ids)) * 3
    fb = FeatureBuilder().fit(events)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        want = fb.transform(events, pd.DataFrame({"dispute_id": pd.array(ids, dtype="str"), "as_of": as_of}, index=index))
    shared: dict[str, str] = {}
    held = [shared.setdefault(v, v) if objects == "shared" else v[:1] + v[1:] for v in events["dispute_id"]]
    as_objects = events.assign(dispute_id=pd.Series(held, dtype=object, index=events.index))
    if cutoff_ids == "str":
        cut_ids = pd.array(ids, dtype="str")
    else:
        cut_ids = pd.Series([shared.get(v, v) for v in ids], dtype=object, index=index)
    cutoffs = pd.DataFrame({"dispute_id": cut_ids, "as_of": as_of}, index=index)
    screened = riskmodel.data._schema.screen_events(
        as_objects, fb._schema(), sort_ids=False, first_ids=cutoffs["dispute_id"])
    known = screened.first_codes >= 0
    assert list(screened.entity_ids[screened.first_codes[known]]) == [v for v, k in zip(ids, known) if k]
    assert not known[[v not in set(events["dispute_id"]) for v in ids]].any()

    def no_lookup(*args):
        raise AssertionError("the cutoffs' ids were looked up")

    monkeypatch.setattr(riskmodel.features._builder, "lookup_positions", no_lookup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        got = fb.transform(as_objects, cutoffs)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize("width", [8, 20])  # one word; three words
@pytest.mark.parametrize("rows", ["shuffled", "time_sorted"])
def test_random_string_ids_whose_keys_do_not_pack_give_the_rows_of_object_ids(width, rows):
    """Random ids (every digit takes many values) do not pack as keys: they are hashed, from
    a raw frame and, for the cutoffs of prepared events, looked up; the rows equal those of
    the same ids held as Python objects, whatever the row order."""
    rng = np.random.default_rng(width)
    n_disputes, n = 12_000, 40_000
    alphabet = np.array([chr(c) for c in range(33, 127)])  # printable ASCII: ~6,000 values per two bytes
    pool = np.array(["".join(c) for c in alphabet[rng.integers(0, len(alphabet), (n_disputes, width))]], dtype=object)
    times = T0 + pd.to_timedelta(rng.integers(0, 400 * 86_400, n), unit="s")
    if rows == "time_sorted":
        times = np.sort(times)
    events = pd.DataFrame({"dispute_id": pd.Series(pool[rng.integers(0, n_disputes, n)], dtype="string[pyarrow]"),
                           "time": times, "kind": rng.choice(KINDS, n)})
    keys = riskmodel.data._keys.string_keys(events["dispute_id"])
    assert keys is not None and riskmodel.data._keys.stable_key_sort(keys) is None  # the case under test
    cut_ids = pd.Series(rng.permutation(pool)[:11_000], dtype="string[pyarrow]")
    cutoffs = pd.DataFrame({"dispute_id": cut_ids, "as_of": T0 + pd.Timedelta(days=380)})
    schema = EventSchema(text_col=None, party_col=None)
    as_objects = events.assign(dispute_id=events["dispute_id"].astype(object))
    fb = FeatureBuilder(schema=schema).fit(events)
    want = fb.transform(as_objects, cutoffs.assign(dispute_id=cut_ids.astype(object)))
    pd.testing.assert_frame_equal(fb.transform(events, cutoffs), want)
    pd.testing.assert_frame_equal(fb.transform(prepare_events(events, schema), cutoffs), want)


@pytest.mark.parametrize("n", [40, 5_000])  # a few rows (through a dict) and a hashed column
def test_a_list_among_the_parties_gets_a_clear_error(n):
    """The party column is numbered like the ids and kinds: a list in it is named in a
    DataError (a large log used to end in pandas' TypeError: unhashable type)."""
    rng = np.random.default_rng(1)
    parties = np.array([f"P{i % 50}" for i in range(n)], dtype=object)
    parties[3] = ["a", "list"]
    events = pd.DataFrame({
        "dispute_id": [f"D{i % 30}" for i in range(n)],
        "time": pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), unit="s"),
        "kind": rng.choice(["call", "fight"], n),
        "party_id": pd.Series(parties, dtype=object),
    })
    schema = EventSchema(text_col=None, entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None)
    fb = FeatureBuilder(schema=schema).fit(events)
    with pytest.raises(DataError, match=r"column 'party_id' holds values that are not single values"):
        fb.transform(events, pd.DataFrame({"dispute_id": ["D1"], "as_of": pd.Timestamp("2022-06-01")}))


_FOREIGN = EventSchema(entity_col="case", time_col="ts", kind_col="etype", text_col=None, party_col="who",
                       entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None,
                       outcome_kinds=("assault",))


def _foreign_log(n: int, **columns) -> pd.DataFrame:
    log = pd.DataFrame({"case": [f"c{i % 3}" for i in range(n)], "ts": pd.date_range("2023-01-01", periods=n, freq="D"),
                        "etype": "call", "who": [f"p{i % 4}" for i in range(n)]})
    return log.assign(**columns)


@pytest.mark.parametrize("kinds", [
    pd.Series(["call", 2.5, "threat", "call"] * 20, dtype=object),
    pd.Series(["call", True, "threat", "call"] * 20, dtype=object),
    pd.Series(pd.Categorical([1, 2, 1, 2] * 20)),
    pd.Series([["a"]] * 80, dtype=pd.ArrowDtype(pa.list_(pa.string()))),
], ids=["float", "bool", "categorical_ints", "arrow_lists"])
def test_fit_names_kinds_that_are_not_strings(kinds):
    """``fit`` refuses kinds that are not strings as ``transform`` does: a DataError naming
    the column, never pandas' or Arrow's own error."""
    events = _foreign_log(len(kinds), etype=kinds)
    with pytest.raises(DataError, match="kind is not a string in 'etype'"):
        FeatureBuilder(schema=_FOREIGN).fit(events)


@pytest.mark.parametrize("n", [40, 80])
def test_a_party_column_of_structs_is_named(n):
    """Arrow structs (or lists) among the parties, past the few-values size too: a DataError
    naming the column, not Arrow's 'dictionary_encode not implemented'."""
    parties = pd.Series([{"a": i % 4} for i in range(n)], dtype=pd.ArrowDtype(pa.struct([("a", pa.int64())])))
    events = _foreign_log(n, who=parties)
    fb = FeatureBuilder(schema=_FOREIGN, families=("counts", "party")).fit(_foreign_log(n))
    with pytest.raises(DataError, match="'who' holds values that are not single values"):
        fb.transform(events, pd.DataFrame({"case": ["c0"], "as_of": pd.Timestamp("2024-06-01")}))


def test_a_column_named_twice_is_named():
    """A frame with two columns of one schema name (a careless join) gets a DataError."""
    events = _foreign_log(5)
    events = pd.concat([events, events[["ts"]]], axis=1)
    with pytest.raises(DataError, match=r"more than one column named \['ts'\]"):
        validate_events(events, _FOREIGN)


@pytest.mark.parametrize("n", [6, 90])
def test_categorical_and_plain_integer_ids_find_each_other(n):
    """Ids held as a categorical of integers in one table and as plain integers (or objects)
    in the other are the same ids: same features whichever side holds which."""
    ids = np.arange(n) % 3 + 101
    events = _foreign_log(n, case=ids)
    fb = FeatureBuilder(schema=_FOREIGN, families=("counts",)).fit(events)
    want = fb.transform(events, pd.DataFrame({"case": [101, 103], "as_of": pd.Timestamp("2024-06-01")}))
    assert want["count_all_all"].sum() > 0
    as_text = pd.array(ids.astype(str).astype(object), dtype=object)  # hashed with the cutoffs' ids past 64 rows
    for event_ids in (pd.Categorical(ids), ids, pd.array(ids.astype(object), dtype=object), as_text):
        for cutoff_ids in (pd.Categorical([101, 103]), np.array([101, 103]), pd.array([101, 103], dtype=object)):
            got = fb.transform(events.assign(case=event_ids), pd.DataFrame({"case": cutoff_ids, "as_of": pd.Timestamp("2024-06-01")}))
            pd.testing.assert_frame_equal(got, want)
    # read as text from another file, the same ids: compared as text
    as_text = fb.transform(events, pd.DataFrame({"case": ["101", "103"], "as_of": pd.Timestamp("2024-06-01")}))
    pd.testing.assert_frame_equal(as_text, want)
    with pytest.raises(DataError, match="different types"):  # text, and not one id in common
        fb.transform(events, pd.DataFrame({"case": ["C101"], "as_of": pd.Timestamp("2024-06-01")}))


def test_entities_ids_of_another_type_than_the_events_are_found():
    """Events read from a CSV (ids as text) and entities from a parquet file (integer ids):
    each dispute finds its attributes, as when both hold the same type."""
    schema = EventSchema(entity_col="case", time_col="ts", kind_col="etype", text_col=None, party_col=None,
                         entity_categorical_cols=("precinct",), entity_time_cols=(), group_cols=("precinct",),
                         closed_col=None, outcome_kinds=("assault",))
    n = 90
    events = pd.DataFrame({"case": [str(101 + i % 3) for i in range(n)],
                           "ts": pd.date_range("2023-01-01", periods=n, freq="D"),
                           "etype": ["call", "assault", "call"] * (n // 3)})
    entities = pd.DataFrame({"case": [101, 102, 103], "precinct": ["P1", "P2", "P1"]})
    cutoffs = pd.DataFrame({"case": ["101", "102", "103"], "as_of": pd.Timestamp("2024-06-01")})
    fb = FeatureBuilder(schema=schema, families=("entity", "context")).fit(events, entities=entities)
    want = fb.transform(events, cutoffs, entities=entities.astype({"case": str}))
    assert want["precinct"].notna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # no "cutoffs without an entities row"
        got = fb.transform(events, cutoffs, entities=entities)
    pd.testing.assert_frame_equal(got, want)


def test_events_in_another_timezone_convention_than_at_fit_are_refused():
    """Fitted on naive times, given aware events (and naive cutoffs, read as at fit): a
    DataError, not a silent shift by the offset."""
    events = _foreign_log(10)
    fb = FeatureBuilder(schema=_FOREIGN, families=("counts",)).fit(events)
    aware = events.assign(ts=events["ts"].dt.tz_localize("Asia/Shanghai"))
    with pytest.raises(DataError, match="timezone-aware but the cutoffs' as_of are read as naive"):
        fb.transform(aware, pd.DataFrame({"case": ["c0"], "as_of": pd.Timestamp("2024-06-01")}))


@pytest.mark.parametrize("written", ["offset strings", "zone column", "compact offsets"])
def test_night_is_counted_on_the_clock_the_times_were_written_in(written):
    """Times with a timezone are converted to UTC, but night (22:00-06:00) is the local
    night: a log written in +08:00 (strings or a zone-aware column) has the night-time
    share of the same log written in naive local times, through fit and RiskModel-style
    prepared events alike."""
    local = pd.to_datetime(["2024-11-01 23:30", "2024-11-05 23:30", "2024-11-09 02:00",
                            "2024-11-01 10:00", "2024-11-05 10:00", "2024-11-09 15:00"])
    naive = pd.DataFrame({"case": ["late"] * 3 + ["day"] * 3, "ts": local, "etype": "call"})
    if written == "zone column":
        times = local.tz_localize("Asia/Shanghai")
    else:
        fmt = "%Y-%m-%dT%H:%M:%S+0800" if written == "compact offsets" else "%Y-%m-%dT%H:%M:%S+08:00"
        times = pd.Series(local.strftime(fmt), dtype=object)
    aware = naive.assign(ts=times)
    schema = EventSchema(entity_col="case", time_col="ts", kind_col="etype", text_col=None, party_col=None,
                         entity_categorical_cols=(), entity_time_cols=(), group_cols=(), closed_col=None,
                         outcome_kinds=("assault",))
    cut = pd.DataFrame({"case": ["late", "day"], "as_of": pd.Timestamp("2024-12-01")})
    want = FeatureBuilder(schema=schema, families=("dynamics",)).fit(naive).transform(naive, cut)["night_share"]
    assert want.tolist() == [1.0, 0.0]
    for events in (aware, prepare_events(aware, schema)):
        fb = FeatureBuilder(schema=schema, families=("dynamics",)).fit(events)
        assert fb.zone_ in ("+08:00", "Asia/Shanghai")
        got = fb.transform(events, cut.assign(as_of=cut["as_of"].dt.tz_localize("UTC")))["night_share"]
        pd.testing.assert_series_equal(got, want)


def test_local_hours_of_a_zone_and_of_its_offset_agree():
    from riskmodel.data import local_hours

    t = pd.date_range("2024-01-01", periods=500, freq="37min").to_numpy().view(np.int64)
    shanghai = local_hours(t, "Asia/Shanghai")
    np.testing.assert_array_equal(shanghai, local_hours(t, "+08:00"))
    np.testing.assert_array_equal(shanghai, local_hours(t, "UTC+08:00"))
    np.testing.assert_array_equal(local_hours(t, None), local_hours(t, "UTC"))
    np.testing.assert_array_equal(local_hours(t, "-05:30"), ((t // 60_000_000_000 - 330) // 60) % 24)


@pytest.mark.parametrize("zone", ["dateutil", "fixed", "named fixed", "zoneinfo"])
def test_the_zone_of_aware_times_is_one_pandas_can_convert_to(zone):
    """Whatever object carries the zone (dateutil, datetime.timezone, zoneinfo), the learned
    zone is a name or a UTC offset the local hours can be read in, not a repr."""
    import datetime as dt
    import zoneinfo

    from dateutil import tz

    from riskmodel.data import local_hours, time_zone

    carrier = {"dateutil": tz.gettz("Asia/Shanghai"), "fixed": dt.timezone(dt.timedelta(hours=8)),
               "named fixed": dt.timezone(dt.timedelta(hours=8), "CST"),
               "zoneinfo": zoneinfo.ZoneInfo("Asia/Shanghai")}[zone]
    local = [dt.datetime(2024, 11, 1, 23, 30, tzinfo=carrier), dt.datetime(2024, 11, 2, 9, 0, tzinfo=carrier)]
    for values in (pd.Series(local, dtype=object), pd.Series(pd.DatetimeIndex(local))):
        name = time_zone(values)
        assert name in ("Asia/Shanghai", "+08:00")
        utc = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy("datetime64[ns]").view(np.int64)
        assert local_hours(utc, name).tolist() == [23, 9]


def test_times_with_several_offsets_warn_that_night_reads_one():
    """A string export with summer time (+01:00 and +02:00) is read at one offset: said."""
    from riskmodel.data import time_zone

    values = pd.Series(["2024-01-15T22:30:00+01:00", "2024-07-15T22:30:00+02:00"] * 50, dtype=object)
    with pytest.warns(DataWarning, match=r"several UTC offsets \(\['\+01:00', '\+02:00'\]"):
        assert time_zone(values) == "+01:00"


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_padded_kinds_are_the_trimmed_kinds(dtype):
    """Kinds padded with spaces (a CHAR(n) export, a full-width space from a spreadsheet) are
    the kinds trimmed: the same vocabulary at fit, the same features, the same labels."""
    from riskmodel import make_labels

    events, _, cutoffs = random_log(0)
    pads = np.array(["", " ", "   ", "\u3000"], dtype=object)[np.arange(len(events)) % 4]
    padded = events.assign(kind=(events["kind"].astype(object) + pads).astype(dtype))
    plain = FeatureBuilder(streaks=STREAKS).fit(events)
    fb = FeatureBuilder(streaks=STREAKS).fit(padded)
    assert fb.kinds_ == plain.kinds_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        pd.testing.assert_frame_equal(fb.transform(padded, cutoffs), plain.transform(events, cutoffs))
    schema = EventSchema(outcome_kinds=tuple(plain.kinds_[:1]))
    pd.testing.assert_frame_equal(make_labels(padded, cutoffs, schema, horizon="30D"),
                                  make_labels(events, cutoffs, schema, horizon="30D"))


def test_context_events_in_the_other_timezone_convention_are_refused():
    """Context events with a zone beside naive events: the offset is unknown, so events after
    as_of could count in the party and context features; refused (they were read in UTC)."""
    events, _, cutoffs = random_log(0)
    fb = FeatureBuilder().fit(events)
    zoned = events.assign(time=events["time"].dt.tz_localize("Asia/Shanghai"))
    with pytest.raises(DataError, match="context_events' times are timezone-aware but the events'"):
        fb.transform(events, cutoffs, context_events=zoned)


def test_one_id_column_with_numbers_and_text_is_one_dispute_per_id():
    """Two extracts concatenated, one with integer ids and one with the same ids as text: one
    dispute per id, as across tables (it was two, each with half the history), on the few-row
    and the hashed paths alike."""
    events, entities, cutoffs = random_log(3)
    events = events[events["dispute_id"] != "D000"].copy()
    numbers = events["dispute_id"].str[1:].astype(int)
    mixed = events.assign(dispute_id=[n if i % 2 else str(n) for i, n in enumerate(numbers)])
    whole = events.assign(dispute_id=numbers)
    cut = cutoffs[cutoffs["dispute_id"] != "D999"].assign(dispute_id=lambda f: f["dispute_id"].str[1:].astype(int))
    fb = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("counts", "recency")).fit(whole)
    want = fb.transform(whole, cut)
    pd.testing.assert_frame_equal(fb.transform(mixed, cut), want)
    one = cut["dispute_id"].iloc[0]
    rows = mixed["dispute_id"].astype(str) == str(one)
    assert rows.sum() < 64  # the few-row path
    pd.testing.assert_frame_equal(fb.transform(mixed[rows], cut.iloc[[0]]), want.iloc[[0]])


def test_cutoffs_entities_and_parties_mixing_numbers_and_text_match_as_text():
    """Cutoffs, entities and parties whose id column mixes 102 and "102" (two extracts
    concatenated) match as the events' ids do, as text: a cutoff "102" found no events and
    no category, a closed dispute's row "102" left it open, and party 7 and "7" were two
    people."""
    from riskmodel import make_cutoffs

    schema = EventSchema(text_col=None, entity_categorical_cols=("category",), entity_time_cols=(), group_cols=(),
                         closed_col="closed_at")
    events = pd.DataFrame({"dispute_id": [101, 101, 102, 103, 103],
                           "time": pd.to_datetime(["2024-01-05", "2024-01-20", "2024-01-05", "2024-01-06", "2024-01-07"]),
                           "kind": ["call", "threat", "call", "threat", "criminal_case"],
                           "party_id": [7, 8, 7, 9, 8]})
    entities = pd.DataFrame({"dispute_id": [101, 102, 103], "category": ["a", "b", "c"],
                             "closed_at": pd.to_datetime([None, "2024-01-10", None])})
    cutoffs = pd.DataFrame({"dispute_id": [101, 102, 103], "as_of": pd.Timestamp("2024-02-01")})
    mixed = pd.Series([101, "102", 103], dtype=object)
    fb = FeatureBuilder(schema=schema, families=("counts", "entity", "party"), windows=("30D",)).fit(
        events, entities=entities)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        want = fb.transform(events, cutoffs, entities=entities)
        assert want["party_other_disputes"].iloc[0] == 2  # parties 7 and 8 are in 102 and 103
        pd.testing.assert_frame_equal(fb.transform(events, cutoffs.assign(dispute_id=mixed), entities=entities),
                                      want, check_index_type=False)
        pd.testing.assert_frame_equal(fb.transform(events, cutoffs, entities=entities.assign(dispute_id=mixed)), want)
        parties = events.assign(party_id=pd.Series([7, 8, "7", 9, "8"], dtype=object))
        pd.testing.assert_frame_equal(fb.transform(parties, cutoffs, entities=entities), want)
        grid = {"start": "2024-01-01", "end": "2024-04-01", "freq": "MS"}
        closed = make_cutoffs(events, schema, entities=entities, **grid)
        got = make_cutoffs(events, schema, entities=entities.assign(dispute_id=mixed), **grid)
    assert got["dispute_id"].astype(str).tolist() == closed["dispute_id"].astype(str).tolist()
    assert "102" not in got["dispute_id"].astype(str).tolist()


def test_bytes_narratives_read_the_same_on_every_path():
    """Narratives as bytes (a database driver's VARBINARY): UTF-8 is read as text, anything
    else as missing, whether the log holds one dispute or many (one path read them, the other
    counted them missing)."""
    events, _, cutoffs = random_log(4)
    as_bytes = events.assign(narrative=[t.encode("utf-8") if isinstance(t, str) else t for t in events["narrative"]])
    as_bytes.loc[as_bytes.index[::7], "narrative"] = "他扬言报复".encode("gb18030")  # not UTF-8: missing
    fb = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("text",)).fit(events)
    many = fb.transform(as_bytes, cutoffs)
    for d in ("D001", "D002"):
        mine = cutoffs["dispute_id"] == d
        few = fb.transform(as_bytes[as_bytes["dispute_id"] == d], cutoffs[mine])
        pd.testing.assert_frame_equal(few, many[mine.to_numpy()])
    utf8 = as_bytes.index[::7]
    plain = events.assign(narrative=events["narrative"].where(~events.index.isin(utf8), None))
    pd.testing.assert_frame_equal(many, fb.transform(plain, cutoffs))


@pytest.mark.parametrize("kind", ["other", "all", "event", "Other"])
def test_kinds_named_like_the_columns_of_every_kind(kind):
    """A kind called 'other' is counted with the other kinds; kinds whose names would be those of
    every kind's columns ('all': count_all_30D, 'event': days_since_last_event) get columns of
    their own. fit used to fail with 'feature names collide'."""
    events, _, cutoffs = random_log(5)
    events = events.assign(kind=events["kind"].replace("fight", kind))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # 'other' is no unseen kind
        fb = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("counts", "recency")).fit(events)
        X = fb.transform(events, cutoffs)
    assert (kind in fb.kinds_) == (kind != "other")
    ref = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("counts", "recency")).fit(events.assign(
        kind=events["kind"].replace(kind, "fight")))
    counts = ref.transform(events.assign(kind=events["kind"].replace(kind, "fight")), cutoffs)
    other = f"count_{fb.kind_slugs_['other']}_all"
    if kind == "other":  # its events are the other kinds'
        np.testing.assert_array_equal(X[other], counts["count_fight_all"] + counts[f"count_{ref.kind_slugs_['other']}_all"])
    else:
        np.testing.assert_array_equal(X[f"count_{fb.kind_slugs_[kind]}_all"], counts["count_fight_all"])
        np.testing.assert_array_equal(X["count_all_all"], counts["count_all_all"])


@pytest.mark.parametrize(("params", "message"), [
    ({"families": "counts"}, "families must be a list of strings"),
    ({"windows": "30D"}, "windows must be a list of strings"),
    ({"streaks": ("threat", "call")}, "streaks must be (kind, reset_kind) pairs"),
    ({"night_hours": (22,)}, "night_hours must be two hours of the day"),
    ({"night_hours": (25, 6)}, "night_hours must be two hours of the day"),
    ({"max_kinds": "40"}, "max_kinds must be a positive integer"),
    ({"keywords": ["扬言"]}, "keywords must map a group name to its keywords"),
    ({"keywords": {"threat": ("扬言", "")}}, "an empty one would match every text"),
    ({"schema": {"entity_col": "case"}}, "schema must be an EventSchema"),
])
def test_bad_parameters_are_named(params, message):
    """Parameters a user gets wrong are refused naming the keyword (they raised pandas' or
    Python's errors, or were read letter by letter)."""
    events, _, _ = random_log(6)
    with pytest.raises(DataError, match=re.escape(message)):
        FeatureBuilder(**{"schema": SCHEMA_NO_ENT, **params}).fit(events)


def test_a_lone_keyword_is_one_keyword():
    """keywords={'threat': '扬言'} is the keyword 扬言, not the letters 扬 and 言."""
    events, _, cutoffs = random_log(7)
    one = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("text",), keywords={"threat": "扬言"}).fit(events)
    listed = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("text",), keywords={"threat": ["扬言"]}).fit(events)
    pd.testing.assert_frame_equal(one.transform(events, cutoffs), listed.transform(events, cutoffs))


def test_context_events_group_columns_are_read_from_a_dataframe():
    """A context log given as a DataFrame with its "group:<g>" column (the documented chunked
    form): the column gives each context dispute's group, as the whole entities table does
    (it was dropped when the log was screened, and the warning asked for it)."""
    schema = EventSchema(text_col=None, party_col=None, entity_categorical_cols=("station",), entity_time_cols=(),
                         group_cols=("station",), closed_col=None)
    events = pd.DataFrame({"dispute_id": ["A", "B", "B", "C", "D"],
                           "time": pd.to_datetime(["2024-01-05", "2024-01-02", "2024-01-10", "2024-01-03", "2024-01-04"]),
                           "kind": ["call", "call", "criminal_case", "call", "call"]})
    entities = pd.DataFrame({"dispute_id": ["A", "B", "C", "D"], "station": ["S1", "S1", "S1", "S2"]})
    fb = FeatureBuilder(schema=schema, families=("context",)).fit(events, entities=entities)
    cut = pd.DataFrame({"dispute_id": ["A"], "as_of": pd.Timestamp("2024-02-01")})
    want = fb.transform(events, cut, entities=entities)
    assert want["ctx_station_escalations_365D"].iloc[0] == 1
    context = events.assign(**{"group:station": events["dispute_id"].map(entities.set_index("dispute_id")["station"])})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        got = fb.transform(events[events["dispute_id"] == "A"], cut, entities=entities.iloc[[0]],
                           context_events=context)
    pd.testing.assert_frame_equal(got, want)


def test_entity_times_in_the_other_clock_than_the_events_are_warned_about():
    """Events in Beijing time, entities' opening and closing times naive: compared as UTC,
    8 hours off, and said so (it was silent); the same convention on both sides is quiet."""
    from riskmodel import make_cutoffs

    schema = EventSchema(text_col=None, party_col=None, entity_categorical_cols=(), entity_time_cols=("opened_at",),
                         group_cols=(), closed_col="closed_at")
    events = pd.DataFrame({"dispute_id": ["A", "A", "B"],
                           "time": pd.to_datetime(["2024-01-05 09:00", "2024-01-20 10:00", "2024-01-06 11:00"]
                                                  ).tz_localize("Asia/Shanghai"),
                           "kind": ["call", "threat", "call"]})
    naive = pd.DataFrame({"dispute_id": ["A", "B"], "opened_at": pd.to_datetime(["2024-01-05", "2024-01-06"]),
                          "closed_at": pd.to_datetime([None, "2024-01-10"])})
    aware = naive.assign(opened_at=naive["opened_at"].dt.tz_localize("Asia/Shanghai"),
                         closed_at=naive["closed_at"].dt.tz_localize("Asia/Shanghai"))
    cut = pd.DataFrame({"dispute_id": ["A"], "as_of": pd.Timestamp("2024-02-01", tz="Asia/Shanghai")})
    message = r"entities column\(s\) \['opened_at', 'closed_at'\] hold naive times but the events' are timezone-aware"
    with pytest.warns(DataWarning, match=message):
        fb = FeatureBuilder(schema=schema, families=("counts", "entity")).fit(events, entities=naive)
    with pytest.warns(DataWarning, match=message):
        fb.transform(events, cut, entities=naive)
    with pytest.warns(DataWarning, match=message):
        make_cutoffs(events, schema, entities=naive, start="2024-01-01", end="2024-03-01", freq="MS")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        FeatureBuilder(schema=schema, families=("counts", "entity")).fit(events, entities=aware).transform(
            events, cut, entities=aware)


def test_context_events_without_their_entities_rows_warn():
    """context_events whose escalated disputes have no row in entities= (a service passing the
    scored dispute's row only): their station is unknown, the station features read a quiet
    station; a DataWarning says so. With the whole table, no warning and the log's values."""
    events, entities, cutoffs = random_log(8, n_events=600)
    fb = FeatureBuilder(families=("counts", "context")).fit(events, entities=entities)
    d = cutoffs["dispute_id"].iloc[0]
    own, cut = events[events["dispute_id"] == d], cutoffs[cutoffs["dispute_id"] == d]
    with pytest.warns(DataWarning, match="escalated disputes in context_events have no row in entities="):
        fb.transform(own, cut, entities=entities[entities["dispute_id"] == d], context_events=events)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        part = fb.transform(own, cut, entities=entities, context_events=events)
    pd.testing.assert_frame_equal(part, fb.transform(events, cut, entities=entities))


def test_a_party_of_spaces_is_no_party():
    """A party id of spaces only (a CHAR(n) column's empty value) is no party: it linked every
    dispute holding one into one party."""
    events, _, cutoffs = random_log(9)
    blank = events.assign(party_id=events["party_id"].where(events.index % 5 != 0, " " * 10))
    missing = events.assign(party_id=events["party_id"].where(events.index % 5 != 0, None))
    fb = FeatureBuilder(schema=SCHEMA_NO_ENT, families=("party",)).fit(events)
    pd.testing.assert_frame_equal(fb.transform(blank, cutoffs), fb.transform(missing, cutoffs))


def test_streaks_of_kinds_no_event_holds_warn():
    """A streak of kinds the log never holds (the simulator's names on a log of Chinese kinds)
    trained without a word: its column was always 0."""
    events = pd.DataFrame({"dispute_id": ["a", "a", "b"], "kind": ["扬言报复", "调解成功", "扬言报复"],
                           "time": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03"])})
    schema = EventSchema(text_col=None, party_col=None)
    with pytest.warns(DataWarning, match=r"streaks name kinds no event holds, \['mediation_failed', "
                                         r"'mediation_success'\].*kinds seen: \['扬言报复', '调解成功'\]"):
        FeatureBuilder(schema=schema, streaks=[("mediation_failed", "mediation_success")]).fit(events)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        FeatureBuilder(schema=schema, streaks=[("扬言报复", "调解成功")]).fit(events)


def test_events_prepared_with_another_schema_are_refused_in_words():
    """FeatureBuilder() (the default schema) given events prepared with the user's schema
    raised KeyError: 'kind' from deep inside."""
    events = pd.DataFrame({"case_no": ["a", "a", "b"], "occurred": pd.to_datetime(["2024-01-01", "2024-01-02",
                                                                                   "2024-01-03"]),
                           "event_type": ["call", "warning", "call"]})
    schema = EventSchema(entity_col="case_no", time_col="occurred", kind_col="event_type", text_col=None,
                         party_col=None, entity_categorical_cols=(), entity_time_cols=(), group_cols=(),
                         closed_col=None, outcome_kinds=("arrest",))
    prepared = prepare_events(events, schema)
    cutoffs = pd.DataFrame({"case_no": ["a", "b"], "as_of": pd.to_datetime(["2024-02-01"] * 2)})
    for call in (lambda: FeatureBuilder().fit(prepared, cutoffs),
                 lambda: FeatureBuilder(schema=schema).fit(prepared, cutoffs).set_params(
                     schema=EventSchema(entity_col="case_no", time_col="occurred", kind_col="type")).transform(
                     prepared, cutoffs)):
        with pytest.raises(DataError, match=r"prepared with another schema than this one \(entity_col='case_no' "
                           r"there, 'dispute_id' here|kind_col='event_type' there, 'type' here"):
            call()
    X = FeatureBuilder(schema=schema).fit(prepared, cutoffs).transform(prepared, cutoffs)
    assert X["count_call_30D"].tolist() == [0, 1] and X["count_call_365D"].tolist() == [1, 1]
