"""TierPolicy and Override: thresholds against brute-force references, overrides only lift;
night tiers: shares per night and per area, capacities, ties."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel import ConfigError, DataWarning, Override, TierPolicy
from riskmodel.model._tiers import (
    TIERS,
    apply_override_names,
    night_tiers,
    retier_scores,
    scoring_policy,
)

RANK = {t: i for i, t in enumerate(TIERS)}


def _policy(*overrides: Override) -> TierPolicy:
    """Probability cut-offs: red from 0.5, yellow from 0.2."""
    return TierPolicy(method="probability", red=0.5, yellow=0.2, overrides=overrides).fit(np.array([0.0]))


RED_RULE = Override(name="to_red", conditions=(("a", ">", 0),), tier="red")
YELLOW_RULE = Override(name="to_yellow", conditions=(("b", ">=", 1),), tier="yellow")


@pytest.mark.parametrize("rules", [(RED_RULE, YELLOW_RULE), (YELLOW_RULE, RED_RULE)], ids=["red_first", "yellow_first"])
def test_overrides_of_every_tier_only_lift(rules):
    """Every tier by probability x every combination of a red and a yellow rule firing: the
    case ends in the highest of its own tier and the fired rules' tiers, never lower, and
    every rule that fired is reported, whether it changed the tier or not."""
    cases = list(itertools.product([0.7, 0.3, 0.05], [0, 1], [0, 1]))  # red, yellow, blue by probability
    p = np.array([c[0] for c in cases])
    features = pd.DataFrame({"a": [c[1] for c in cases], "b": [c[2] for c in cases]})
    policy = _policy(*rules)
    tiers, fired = policy.apply(p, features)
    by_probability = policy.assign(p)
    assert by_probability.tolist() == ["red"] * 4 + ["yellow"] * 4 + ["blue"] * 4
    for i, (_, red_hit, yellow_hit) in enumerate(cases):
        candidates = [by_probability[i]] + ["red"] * red_hit + ["yellow"] * yellow_hit
        assert tiers[i] == min(candidates, key=RANK.get), (cases[i], tiers[i])
        assert RANK[tiers[i]] <= RANK[by_probability[i]]  # never demoted
        names = sorted(r.name for r in fired[i])
        assert names == sorted(["to_red"] * red_hit + ["to_yellow"] * yellow_hit)


@settings(max_examples=200, deadline=None)
@given(
    p=st.lists(st.floats(0, 1), min_size=1, max_size=30),
    hits=st.lists(st.tuples(st.booleans(), st.booleans()), min_size=30, max_size=30),
)
def test_overrides_never_demote_any_case(p, hits):
    p = np.array(p)
    features = pd.DataFrame({"a": [int(h[0]) for h in hits[:len(p)]], "b": [int(h[1]) for h in hits[:len(p)]]})
    policy = _policy(YELLOW_RULE, RED_RULE)
    tiers, _ = policy.apply(p, features)
    base = policy.assign(p)
    for t, b, (red_hit, yellow_hit) in zip(tiers, base, hits):
        expected = min([b] + ["red"] * red_hit + ["yellow"] * yellow_hit, key=RANK.get)
        assert t == expected


def test_override_conditions_against_numpy():
    values = pd.Series([np.nan, -1.0, 0.0, 0.5, 1.0, 2.0])
    reference = {">": values > 0.5, ">=": values >= 0.5, "<": values < 0.5, "<=": values <= 0.5, "==": values == 0.5}
    for op, expected in reference.items():
        rule = Override(name="r", conditions=(("x", op, 0.5),))
        assert rule.matches(pd.DataFrame({"x": values})).tolist() == expected.tolist(), op
    # all conditions must hold; missing never matches, also for "<" and for text columns
    both = Override(name="r", conditions=(("x", "<", 1.5), ("y", ">", 0)))
    frame = pd.DataFrame({"x": values, "y": ["1", "0", "2", None, "x", "3"]})
    assert both.matches(frame).tolist() == [False, False, True, False, False, False]
    with pytest.raises(ConfigError, match="unknown feature 'z'"):
        Override(name="r", conditions=(("z", ">", 0),)).matches(frame)
    with pytest.raises(ConfigError, match="tier must be 'red' or 'yellow'"):
        Override(name="r", conditions=(("x", ">", 0),), tier="blue")
    with pytest.raises(ConfigError, match="must be \\(feature, op, value\\)"):
        Override(name="r", conditions=(("x", "!=", 0),))


@settings(max_examples=200, deadline=None)
@given(
    p=st.lists(st.sampled_from([0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.9]), min_size=1, max_size=60),
    red=st.floats(0, 0.5),
    yellow=st.floats(0, 0.5),
)
def test_share_thresholds_are_the_largest_shares_within_the_targets(p, red, yellow):
    """With ties, red is the largest set of whole tie groups at most ``red`` of the
    reference, red + yellow at most ``red + yellow``: checked against every possible cut."""
    p = np.array(p)
    policy = TierPolicy(method="share", red=red, yellow=yellow).fit(p)
    tiers = policy.assign(p)
    cuts = np.r_[np.unique(p), np.inf]
    for tier_set, share in ((("red",), red), (("red", "yellow"), red + yellow)):
        got = np.isin(tiers, tier_set).mean()
        best = max(np.mean(p >= c) for c in cuts if np.mean(p >= c) <= share + 1e-12)
        assert got == best, (tier_set, share, got, best)


@pytest.mark.parametrize("share", [0.05, 0.07, 0.29, 0.57, 0.58])
def test_share_fills_the_capacity_exactly_when_it_is_a_whole_number_of_cases(share):
    p = np.linspace(0, 1, 100)
    tiers = TierPolicy(method="share", red=share, yellow=0.0).fit(p).assign(p)
    assert (tiers == "red").sum() == round(share * 100)


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from([0.05, 0.1, 0.2, 0.4, 0.6, 0.8]), st.booleans()), min_size=1, max_size=60),
    red=st.sampled_from([0.3, 0.5, 0.7]),
)
def test_precision_thresholds_are_the_lowest_cut_reaching_the_target(rows, red):
    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=int)
    policy = TierPolicy(method="precision", red=red, yellow=0.2).fit(p, y)
    for target, threshold in ((red, policy.red_threshold_), (0.2, policy.yellow_threshold_)):
        reaching = [c for c in np.unique(p) if y[p >= c].mean() >= target]
        if target == 0.2:  # yellow never starts above red
            reaching = [c for c in reaching if c <= policy.red_threshold_]
            expected = min(reaching) if reaching else policy.red_threshold_
        else:
            expected = min(reaching) if reaching else np.inf
        assert threshold == expected, (target, threshold, expected)


def test_policy_round_trip_and_errors():
    policy = TierPolicy(method="share", red=0.1, yellow=0.2, overrides=(RED_RULE, YELLOW_RULE)).fit(np.linspace(0, 1, 101))
    again = TierPolicy.from_dict(policy.to_dict())
    assert again == policy
    with pytest.raises(ConfigError, match="unknown keys"):
        TierPolicy.from_dict({**policy.to_dict(), "nope": 1})
    with pytest.raises(ConfigError, match="not fitted"):
        TierPolicy().assign(np.array([0.1]))
    with pytest.raises(ConfigError, match="at most 1"):
        TierPolicy(red=0.6, yellow=0.5)
    with pytest.raises(ConfigError, match="needs labels"):
        TierPolicy(method="precision", red=0.5, yellow=0.2).fit(np.array([0.1]))


# night tiers ---------------------------------------------------------------------------


def _night(n: int, seed: int, *, stations=("S01", "S02", "S03"), risk=1.0):
    rng = np.random.default_rng(seed)
    p = np.clip(rng.beta(1, 20, n) * risk, 0, 1)
    return p, np.array([f"D{i:05d}" for i in rng.permutation(n)]), rng.choice(stations, n)


def _count(tiers, mask=None):
    tiers = np.asarray(tiers)[mask if mask is not None else slice(None)]
    return int((tiers == "red").sum()), int((tiers == "yellow").sum())


@pytest.mark.parametrize("n, risk", [(57, 1.0), (1000, 1.0), (1000, 3.0), (333, 0.2)])
def test_shares_hold_exactly_on_nights_with_different_mixes(n, risk):
    p, ids, _ = _night(n, seed=n, risk=risk)
    tiers, table = night_tiers(p, ids, TierPolicy(red=0.05, yellow=0.15))
    assert _count(tiers) == (int(0.05 * n), int(0.2 * n) - int(0.05 * n))
    # red is the top of the ranking, yellow the next
    order = np.lexsort((ids, -p))
    assert list(tiers[order]) == sorted(tiers, key=["red", "yellow", "blue"].index)
    row = table.iloc[0]
    assert row["n"] == n and row["rule"] == "share" and row["red"] == int(0.05 * n)
    assert row["red_threshold"] == p[order][int(0.05 * n) - 1]


def test_two_nights_in_one_frame_are_ranked_separately():
    p1, ids1, _ = _night(200, seed=1)
    p2, ids2, _ = _night(80, seed=2, risk=4.0)  # a riskier, smaller night
    nights = np.r_[np.full(200, "2024-06-01"), np.full(80, "2024-06-02")]
    tiers, table = night_tiers(np.r_[p1, p2], np.r_[ids1, ids2], TierPolicy(red=0.1, yellow=0.1), nights=nights)
    assert _count(tiers[:200]) == (20, 20) and _count(tiers[200:]) == (8, 8)
    assert list(table["n"]) == [200, 80]


def test_ties_are_broken_by_id_deterministically():
    p = np.array([0.3, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1])
    ids = np.array(["j", "d", "b", "c", "a", "e", "f", "g", "h", "i"])
    policy = TierPolicy(red=0.2, yellow=0.2)  # 2 red, 2 yellow among four tied at 0.5
    tiers, _ = night_tiers(p, ids, policy)
    assert dict(zip(ids, tiers)) == {"a": "red", "b": "red", "c": "yellow", "d": "yellow", "j": "blue",
                                     "e": "blue", "f": "blue", "g": "blue", "h": "blue", "i": "blue"}
    shuffled = np.random.default_rng(0).permutation(len(p))
    again, _ = night_tiers(p[shuffled], ids[shuffled], policy)
    assert dict(zip(ids[shuffled], again)) == dict(zip(ids, tiers))  # row order does not matter
    numeric, _ = night_tiers(p, np.arange(len(p))[::-1], policy)
    assert _count(numeric) == (2, 2)


@pytest.mark.parametrize("as_type", [
    lambda ids: ids.astype(str),
    lambda ids: ids.astype(str).astype(object),
    lambda ids: ids.astype(float),
    lambda ids: ids.astype(np.uint32),
    lambda ids: ids.astype(object),  # Python ints: they sorted as numbers
])
def test_ties_rank_the_same_whether_ids_are_numbers_or_text(as_type):
    """Ties are broken by the id's text: ids read as numbers from one extract and as strings
    from another get the same tiers (they ranked 9 before 10 as numbers, "10" before "9" as text)."""
    ids = np.array([7, 8, 9, 10, 11, 12, 95, 100, 1000, 2000, 30000, 4, 5, 6, 3, 2, 1, 13, 96, 101])
    p = np.full(len(ids), 0.05)
    policy = TierPolicy(red=0.1, yellow=0.25)
    numbers, _ = night_tiers(p, ids, policy)
    other, _ = night_tiers(p, as_type(ids), policy)
    np.testing.assert_array_equal(other, numbers)
    assert sorted(ids[numbers == "red"].astype(str)) == ["1", "10"]  # "1" < "10" < "100" < ... < "2"


def test_per_station_shares_capacities_small_and_absent_stations():
    p, ids, station = _night(600, seed=3, stations=("S01", "S02", "S03", "S04"))
    station = station.astype(object)
    station[:3] = "S09"  # a small station: 3 disputes, capacity 10
    station[3] = None  # no area: its own "(unknown)" area
    capacity = {"S01": 10, "S02": {"red": 4, "yellow": 7}, "S09": 10, "S77": 5}  # S77 has no dispute tonight
    policy = TierPolicy(red=0.05, yellow=0.15, by="station", capacity=capacity)
    assert policy.describe().endswith("by station; capacities for 4 area(s)")
    assert TierPolicy(red=0.05, yellow=0.15, capacity=capacity).describe("station") == policy.describe()
    with pytest.warns(DataWarning, match=r"capacities for 1 area\(s\) that have no scored dispute here are unused: \['S77'\]"):
        tiers, table = night_tiers(p, ids, policy, areas=station)
    table = table.set_index("area")
    s = pd.Series(station, dtype=object).fillna("(unknown)").to_numpy()
    n = {a: int((s == a).sum()) for a in set(s)}
    assert _count(tiers, s == "S01") == (10, int(0.15 * n["S01"]))  # capacity, then the yellow share
    assert _count(tiers, s == "S02") == (4, 7)  # red and yellow capacities
    assert _count(tiers, s == "S09") == (3, 0)  # fewer disputes than the capacity: all red
    for absent in ("S03", "S04"):  # not in the policy: the shares within the station
        assert _count(tiers, s == absent) == (int(0.05 * n[absent]), int(0.2 * n[absent]) - int(0.05 * n[absent]))
    assert "(unknown)" in table.index and "S77" not in table.index
    assert table.loc["S01", "rule"] == "capacity" and table.loc["S03", "rule"] == "share"
    assert table.loc["S09", "red_capacity"] == 10 and table.loc["S09", "red"] == 3
    # within a station, red is that station's top
    in_s01 = np.flatnonzero(s == "S01")
    top = in_s01[np.lexsort((ids[in_s01], -p[in_s01]))][:10]
    assert (tiers[top] == "red").all()


def test_overrides_lift_after_the_ranking():
    rule = Override(name="weapon", conditions=(("kw_weapon_7D", ">", 0),), tier="red")
    trained = TierPolicy(red=0.1, yellow=0.1, overrides=(rule,))
    p = np.linspace(0.01, 0.5, 20)
    ids = np.array([f"D{i:02d}" for i in range(20)])
    scores = pd.DataFrame({"dispute_id": ids, "as_of": pd.Timestamp("2024-06-01"), "probability": p,
                           "tier": "blue", "reasons": "", "reason_features": "",
                           "overrides": ["weapon"] + [""] * 19})
    out, table, need = retier_scores(scores, trained, trained, id_col="dispute_id")
    assert out["tier"].astype(str).tolist()[0] == "red"  # lowest probability, lifted by the rule
    assert _count(out["tier"].astype(str)) == (3, 2)  # 2 ranked red + 1 lifted
    assert table["overrides_lifted"].tolist() == [1]
    assert need.sum() == 5  # every flagged case needs reasons (all were blue before)
    assert apply_override_names(np.array(["blue"]), ["nope"], trained).tolist() == ["blue"]


def test_scoring_policy_changes_and_validation():
    trained = TierPolicy(red=0.05, yellow=0.15).fit(np.linspace(0, 1, 100))
    assert scoring_policy(trained, "trained") is None
    assert scoring_policy(trained, "night").red == 0.05
    changed = scoring_policy(trained, {"by": "station", "capacity": {"S01": 10}})
    assert changed.by == "station" and changed.capacity == {"S01": {"red": 10}}
    prob = scoring_policy(trained, {"method": "probability", "red": 0.4, "yellow": 0.2})
    assert prob.red_threshold_ == 0.4
    assert scoring_policy(TierPolicy(method="probability", red=0.3, yellow=0.1).fit(np.zeros(3)), "night") is None
    with pytest.raises(ConfigError, match="precision tiers need labels"):
        scoring_policy(trained, {"method": "precision"})
    with pytest.raises(ConfigError, match="unknown key"):
        scoring_policy(trained, {"red_share": 0.1})
    with pytest.raises(ConfigError, match="apply to share tiers"):
        TierPolicy(method="probability", red=0.3, yellow=0.1, capacity={"S01": 3})
    with pytest.raises(ConfigError, match="whole number"):
        TierPolicy(capacity={"S01": 2.5})
    with pytest.raises(ConfigError, match="count or"):
        TierPolicy(capacity={"S01": {"blue": 3}})


def test_policy_round_trips_and_old_dicts_load():
    policy = TierPolicy(red=0.05, yellow=0.15, by="station", capacity={"S01": 10, "S02": {"red": 2, "yellow": 5}})
    again = TierPolicy.from_dict(policy.to_dict())
    assert again == policy
    old = {"method": "share", "red": 0.05, "yellow": 0.15, "overrides": [], "red_threshold_": 0.2,
           "yellow_threshold_": 0.1}  # saved before capacities existed
    assert TierPolicy.from_dict(old).capacity is None


def test_toml_capacities_inline_and_as_a_table(tmp_path):
    from riskmodel.lifecycle import load_config

    (tmp_path / "capacity.csv").write_text("station,red,yellow\nS01,10,30\nS02,5,\n", encoding="utf-8")
    inline = tmp_path / "inline.toml"
    inline.write_text('[tiers]\nmethod = "share"\nby = "station"\n\n[tiers.capacity]\nS01 = 10\n'
                      'S02 = { red = 5, yellow = 20 }\n', encoding="utf-8")
    policy = load_config(inline).tiers
    assert policy.by == "station" and policy.capacity == {"S01": {"red": 10}, "S02": {"red": 5, "yellow": 20}}
    table = tmp_path / "table.toml"
    table.write_text('[tiers]\ncapacity = "capacity.csv"\n', encoding="utf-8")  # relative to the file
    assert load_config(table).tiers.capacity == {"S01": {"red": 10, "yellow": 30}, "S02": {"red": 5}}
    (tmp_path / "bad.csv").write_text("station,red\nS01,ten\n", encoding="utf-8")
    table.write_text('[tiers]\ncapacity = "bad.csv"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad.csv, line 2: red capacity of 'S01' must be a whole number"):
        load_config(table)
    # the model section's protocol settings load too, and an old config still does
    model = tmp_path / "model.toml"
    model.write_text('[labels]\nhorizon = "60D"\n[model]\nprotocol = "holdout"\nn_folds = 3\n'
                     'calibration_half_life = ""\nnum_leaves_grid = [4, 8]\n', encoding="utf-8")
    built = load_config(model).build_model()
    assert (built.protocol, built.n_folds, built.horizon, built.calibration_half_life, built.num_leaves_grid) == \
        ("holdout", 3, "60D", None, (4, 8))


def test_capacity_options_contradictions_and_typos_are_refused_in_flag_words():
    """--tiers-by "" (city-wide) with --capacity silently ranked by the first group column;
    --capacity S01:3 (a typo for S01=3) was 'input S01:3 does not exist'."""
    import argparse

    from riskmodel.cli import _tier_options

    def options(**kw):
        base = dict(red_share=None, yellow_share=None, tiers_by=None, capacity=None, tiers="night")
        return _tier_options(argparse.Namespace(**{**base, **kw}))

    assert options(capacity=["S01=3"]) == {"capacity": {"S01": {"red": 3}}}
    with pytest.raises(ConfigError, match='--capacity gives areas their capacities, and --tiers-by "" ranks'):
        options(tiers_by="", capacity=["S01=3"])
    with pytest.raises(ConfigError, match=r"--capacity 'S01:3': use AREA=RED"):
        options(capacity=["S01:3"])


def test_one_share_given_over_one_with_the_models_other_names_it():
    """--red-share 0.9 alone (the model's yellow 0.15) said "TierPolicy shares red + yellow
    must be at most 1", neither the flag nor the model's share."""
    with pytest.raises(ConfigError, match=r"tiers red=0.9: red 0.9 \+ yellow 0.15 is over 1") as caught:
        scoring_policy(TierPolicy(red=0.05, yellow=0.15), {"red": 0.9})
    assert caught.value.for_cli().startswith("--red-share 0.9: red 0.9 + yellow 0.15 is over 1")
    assert scoring_policy(TierPolicy(red=0.05, yellow=0.15), {"red": 0.85}).red == 0.85
