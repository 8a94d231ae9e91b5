"""TierPolicy and Override: thresholds against brute-force references, overrides only lift."""

from __future__ import annotations

import numpy as np
import pytest

from riskmodel import TierPolicy


@pytest.mark.parametrize("share", [0.05, 0.07, 0.29, 0.57, 0.58])
def test_share_fills_the_capacity_exactly_when_it_is_a_whole_number_of_cases(share):
    p = np.linspace(0, 1, 100)
    tiers = TierPolicy(method="share", red=share, yellow=0.0).fit(p).assign(p)
    assert (tiers == "red").sum() == round(share * 100)
