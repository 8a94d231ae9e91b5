"""TierPolicy and Override: thresholds against brute-force references, overrides only lift."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from riskmodel import ConfigError, Override, TierPolicy
from riskmodel.model._tiers import TIERS

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
