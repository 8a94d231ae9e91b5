"""Tests of the dispute simulator and its oracle (:func:`simulate_disputes`)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from riskmodel import ConfigError, DataError, EventSchema, validate_entities, validate_events
from riskmodel._simulate import (
    CATEGORIES,
    EVENT_KINDS,
    Simulation,
    SimulationParams,
    simulate_disputes,
)

N = 6000


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return simulate_disputes(N, seed=11)


@pytest.fixture(scope="module")
def snapshots(sim) -> pd.DataFrame:
    return sim.snapshots("90D")


def recent_count(sim: Simulation, cutoffs: pd.DataFrame, kind: str, days: int) -> np.ndarray:
    """Reference count of events of ``kind`` in [as_of - days, as_of) per cutoff."""
    ev = sim.events.loc[sim.events["kind"] == kind, ["dispute_id", "time"]]
    merged = cutoffs.reset_index().merge(ev, on="dispute_id", how="left")
    inside = (merged["time"] < merged["as_of"]) & (
        merged["time"] >= merged["as_of"] - pd.Timedelta(days=days)
    )
    counts = inside.groupby(merged["index"]).sum()
    return counts.reindex(cutoffs.reset_index()["index"], fill_value=0).to_numpy()


# --------------------------------------------------------------------------------------
# determinism, shape, validity


def test_same_seed_gives_same_data_and_different_seed_differs():
    a = simulate_disputes(400, seed=5)
    b = simulate_disputes(400, seed=5)
    c = simulate_disputes(400, seed=6)
    pd.testing.assert_frame_equal(a.events, b.events)
    pd.testing.assert_frame_equal(a.entities, b.entities)
    assert not a.events.equals(c.events)
    assert not a.entities.equals(c.entities)


def test_all_categories_and_stations_present(sim):
    ent = sim.entities
    assert set(ent["category"]) == set(CATEGORIES)
    pairs = set(zip(ent["category"], ent["category_zh"]))
    assert pairs == set(CATEGORIES.items())
    assert ent["station"].nunique() == 30
    assert set(ent["station"]) <= {f"S{i:02d}" for i in range(1, 31)}
    # categories differ in their escalation rate
    rate = (ent["close_reason"] == "escalated").groupby(ent["category"], observed=True).mean()
    assert rate["building"] > 1.5 * rate["school"]


def test_frames_pass_validation_without_warnings(sim):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        events = validate_events(sim.events, sim.schema)
        entities = validate_entities(sim.entities, sim.schema, events=events)
    assert len(events) == len(sim.events)
    assert len(entities) == N
    assert sim.schema == EventSchema()


def test_frame_contract(sim):
    ev, ent = sim.events, sim.entities
    assert list(ev.columns) == ["dispute_id", "time", "kind", "narrative", "party_id"]
    assert ev["time"].dtype == "datetime64[ns]" and ev["time"].dt.tz is None
    assert ev["dispute_id"].str.fullmatch(r"D\d{7}").all()
    assert ev["party_id"].str.fullmatch(r"P\d{7}").all()
    assert set(ev["kind"]) == set(EVENT_KINDS)
    assert ev["time"].min() >= sim.start
    assert ev["time"].max() < sim.end + pd.Timedelta(days=1)
    assert ev.groupby("dispute_id")["time"].is_monotonic_increasing.all()
    assert ent["dispute_id"].is_unique and set(ev["dispute_id"]) == set(ent["dispute_id"])
    assert ent["n_parties"].between(2, 4).all()
    # every dispute starts with its opening event
    first = ev.groupby("dispute_id")["time"].min()
    pd.testing.assert_series_equal(
        first, ent.set_index("dispute_id")["opened_at"], check_names=False
    )
    # nothing after the end of a dispute; an escalation is the last event
    last = ev.groupby("dispute_id").tail(1).set_index("dispute_id")
    closed = ent.set_index("dispute_id")
    assert (
        last["time"]
        <= closed["closed_at"].reindex(last.index).fillna(sim.end + pd.Timedelta(days=1))
    ).all()
    escalated = closed.index[closed["close_reason"] == "escalated"]
    assert last.loc[escalated, "kind"].isin(["criminal_case", "injury"]).all()
    assert (last.loc[escalated, "time"] == closed.loc[escalated, "closed_at"]).all()
    n_outcomes = ev["kind"].isin(["criminal_case", "injury"]).groupby(ev["dispute_id"]).sum()
    assert n_outcomes.max() == 1


def test_noise_and_realism(sim):
    ev = sim.events
    assert 0.08 < ev["narrative"].isna().mean() < 0.12
    assert 7 < len(ev) / N < 13
    # near-duplicates: the same kind recorded again a few minutes later
    gap = ev.groupby("dispute_id")["time"].diff()
    same_kind = ev["kind"].eq(ev.groupby("dispute_id")["kind"].shift())
    assert (same_kind & (gap <= pd.Timedelta(minutes=15))).sum() > 0.01 * len(ev)
    # fights at night, mediation in office hours on weekdays
    hour = ev["time"].dt.hour
    night = (hour >= 20) | (hour < 4)
    assert night[ev["kind"] == "fight"].mean() > 0.3
    mediation = ev["kind"].str.startswith("mediation")
    assert hour[mediation].between(8, 17).mean() > 0.95
    assert (ev.loc[mediation, "time"].dt.day_of_week < 5).mean() > 0.9
    # openings peak in summer
    month = sim.entities["opened_at"].dt.month
    assert month.isin([6, 7, 8]).mean() > month.isin([12, 1, 2]).mean() * 1.3
    # people recur across disputes
    disputes_per_person = ev.groupby("party_id")["dispute_id"].nunique()
    assert (disputes_per_person >= 2).sum() > 0.05 * len(disputes_per_person)


def test_risk_keywords_more_frequent_in_escalating_disputes(sim):
    ev = sim.events.dropna(subset=["narrative"])
    outcome = ev["kind"].isin(["criminal_case", "injury"])
    ev = ev[~outcome]
    escalated = set(sim.entities.loc[sim.entities["close_reason"] == "escalated", "dispute_id"])
    in_escalated = ev["dispute_id"].isin(escalated)
    for pattern in ("刀|砍", "扬言|报复|同归于尽|拼命|喝农药"):
        has = ev["narrative"].str.contains(pattern)
        assert has[in_escalated].mean() > 1.5 * has[~in_escalated].mean(), pattern


# --------------------------------------------------------------------------------------
# the mechanism shows in the data


def test_escalation_rate_in_target_range(sim, snapshots):
    assert 0.025 < snapshots["label"].mean() < 0.06
    assert 0.03 < (sim.entities["close_reason"] == "escalated").mean() < 0.15


@pytest.mark.parametrize("kind", ["threat", "mediation_failed"])
def test_recent_risky_events_raise_escalation_rate(sim, snapshots, kind):
    recent = recent_count(sim, snapshots[["dispute_id", "as_of"]], kind, days=30) > 0
    with_kind = snapshots["label"][recent].mean()
    without = snapshots["label"][~recent].mean()
    assert recent.sum() > 200
    assert with_kind > 1.8 * without


def test_recent_successful_mediation_lowers_escalation_rate(sim, snapshots):
    recent = recent_count(sim, snapshots[["dispute_id", "as_of"]], "mediation_success", 30) > 0
    assert snapshots["label"][recent].mean() < snapshots["label"][~recent].mean()


# --------------------------------------------------------------------------------------
# the oracle


@pytest.fixture(scope="module")
def oracle_sample(sim, snapshots):
    sample = snapshots.sample(3000, random_state=0).reset_index(drop=True)
    first = sim.true_probability(sample[["dispute_id", "as_of"]], "90D", n_sims=100, seed=1)
    second = sim.true_probability(sample[["as_of", "dispute_id"]], "90D", n_sims=100, seed=2)
    return sample.assign(p1=first["probability"], p2=second["probability"], se=first["std_error"])


def test_oracle_is_calibrated(oracle_sample):
    # bin by one estimate and compare the observed rate with an independent estimate,
    # so that Monte Carlo noise in the binning does not bias the comparison
    df = oracle_sample
    df = df.assign(bin=pd.qcut(df["p1"].rank(method="first"), 8, labels=False))
    table = df.groupby("bin").agg(
        n=("label", "size"), observed=("label", "mean"), predicted=("p2", "mean")
    )
    se = np.sqrt(table["predicted"] * (1 - table["predicted"]) / table["n"])
    z = (table["observed"] - table["predicted"]) / se.clip(lower=1e-3)
    assert (z.abs() < 3.5).all(), table.assign(z=z)
    assert abs(df["label"].mean() - df["p2"].mean()) < 3 * np.sqrt(
        df["p2"].mean() * (1 - df["p2"].mean()) / len(df)
    )


def test_oracle_discriminates(oracle_sample):
    df = oracle_sample
    assert roc_auc_score(df["label"], (df["p1"] + df["p2"]) / 2) > 0.7
    assert df["p1"].corr(df["p2"]) > 0.8


def test_oracle_standard_error(oracle_sample):
    df = oracle_sample
    expected = np.sqrt(df["p1"] * (1 - df["p1"]) / 100)
    np.testing.assert_allclose(df["se"], expected, atol=2e-3)
    assert (df["p1"] - df["p2"]).std() < 3 * np.sqrt(2) * df["se"].mean() + 0.01


def test_oracle_edge_cases_and_alignment(sim):
    ent = sim.entities.set_index("dispute_id")
    mediated = ent.index[ent["close_reason"] == "mediated"][0]
    escalated = ent.index[ent["close_reason"] == "escalated"][0]
    still_open = ent.index[ent["closed_at"].isna()][0]
    cutoffs = pd.DataFrame(
        {
            "as_of": [
                ent.loc[mediated, "closed_at"].ceil("D"),  # closed before -> 0
                ent.loc[escalated, "closed_at"] + pd.Timedelta(seconds=1),  # escalated -> 0
                ent.loc[escalated, "opened_at"].floor("D"),  # not opened yet -> NaN
                sim.end + pd.Timedelta(days=5),  # history unknown -> NaN
                sim.end + pd.Timedelta(days=1),  # the morning after: fine
            ],
            "dispute_id": [mediated, escalated, escalated, still_open, still_open],
        },
        index=[10, 3, 7, 1, 0],
    )
    out = sim.true_probability(cutoffs, n_sims=50)
    assert list(out.columns) == ["dispute_id", "as_of", "probability", "std_error"]
    assert list(out.index) == [10, 3, 7, 1, 0]
    assert list(out["dispute_id"]) == list(cutoffs["dispute_id"])
    assert out["probability"].iloc[0] == 0 and out["probability"].iloc[1] == 0
    assert out["probability"].iloc[2:4].isna().all()
    assert 0 <= out["probability"].iloc[4] <= 1


def test_oracle_non_midnight_as_of_is_close_to_midnight(sim, snapshots):
    sample = snapshots.sample(300, random_state=1)[["dispute_id", "as_of"]]
    midnight = sim.true_probability(sample, n_sims=400, seed=3)["probability"]
    shifted = sample.assign(as_of=sample["as_of"] + pd.Timedelta(hours=1))
    later = sim.true_probability(shifted, n_sims=400, seed=4)["probability"]
    assert abs(midnight.mean() - later.mean()) < 0.01
    assert midnight.corr(later) > 0.8


def test_oracle_bad_input(sim):
    with pytest.raises(DataError, match="not in this simulation"):
        sim.true_probability(pd.DataFrame({"dispute_id": ["nope"], "as_of": [sim.start]}))
    with pytest.raises(DataError, match="missing column"):
        sim.true_probability(pd.DataFrame({"dispute_id": ["D0000001"]}))
    cut = pd.DataFrame({"dispute_id": ["D0000001"], "as_of": [sim.start]})
    with pytest.raises(ConfigError, match="n_sims"):
        sim.true_probability(cut, n_sims=0)
    with pytest.raises(ConfigError, match="horizon"):
        sim.true_probability(cut, horizon="soon")
    aware = cut.assign(as_of=cut["as_of"].dt.tz_localize("UTC"))
    with pytest.raises(DataError, match="timezone-aware"):
        sim.true_probability(aware)


# --------------------------------------------------------------------------------------
# parameters


def test_unknown_parameters_raise_config_error():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) \['rate'\]"):
        simulate_disputes(10, rate=1.0)
    with pytest.raises(ConfigError, match="unknown key"):
        simulate_disputes(10, category_escalation={"farming": 1.0})
    with pytest.raises(ConfigError, match="must be in"):
        simulate_disputes(10, close_on_success=2.0)
    with pytest.raises(ConfigError, match="after start"):
        simulate_disputes(10, start="2024-01-01", end="2023-01-01")


def test_parameter_overrides_change_the_mechanism():
    base = simulate_disputes(1500, seed=2)
    risky = simulate_disputes(
        1500, seed=2, escalation_base=-7.5, category_escalation={"school": 1.0}
    )
    assert risky.params.escalation_base == -7.5
    assert risky.params.category_escalation["school"] == 1.0
    assert (
        risky.params.category_escalation["family"]
        == SimulationParams().category_escalation["family"]
    )

    def rate(s):
        return (s.entities["close_reason"] == "escalated").mean()

    assert rate(risky) > 1.5 * rate(base)
    assert isinstance(risky.params.to_dict()["category_share"], dict)


def test_summary_mentions_the_essentials(sim):
    text = sim.summary()
    for needle in (
        "disputes",
        "events",
        "escalation rate",
        "snapshots",
        "building",
        "建房/宅基地",
        "threat",
        "S01",
    ):
        assert needle in text


def test_repr_is_short(sim):
    assert repr(sim) == (
        f"Simulation(n_disputes={N:,}, n_events={len(sim.events):,}, start=2023-01-01, "
        "end=2025-12-31, seed=11)"
    )


def test_escalation_trend_drifts_the_rate_and_the_oracle_follows():
    from riskmodel._simulate import simulate_disputes as _simulate

    kw = dict(start="2022-01-01", end="2024-12-31", seed=3)
    flat, falling = _simulate(4000, **kw), _simulate(4000, escalation_trend=-1.0, **kw)

    def escalated_share(sim, year):
        ent = sim.entities
        opened = ent["opened_at"].dt.year == year
        return (ent.loc[opened, "close_reason"] == "escalated").mean()

    assert escalated_share(falling, 2022) > 1.5 * escalated_share(falling, 2024)
    assert escalated_share(falling, 2024) < 0.7 * escalated_share(flat, 2024)
    # the oracle runs the same step: a late cutoff's true probability falls with the trend
    snap = falling.snapshots("90D")
    late = snap[snap["as_of"] >= "2024-06-01"].head(400)
    early = snap[snap["as_of"] < "2022-09-01"].head(400)
    p_late = falling.true_probability(late[["dispute_id", "as_of"]], n_sims=100, seed=1)["probability"]
    p_early = falling.true_probability(early[["dispute_id", "as_of"]], n_sims=100, seed=1)["probability"]
    assert p_late.mean() < 0.6 * p_early.mean()
    assert abs(p_late.mean() - late["label"].astype(float).mean()) < 0.03
