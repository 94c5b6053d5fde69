"""Beam-time ratios: a repeat where a strategy missed the target is a bound (or undefined), never 1.0."""

from __future__ import annotations

import math

import pytest

from fcinv.steering.beamtime import beamtime_ratio, median_interval
from fcinv.steering.design import SteeringError


def test_kinds_of_ratio():
    m = beamtime_ratio(79.5, True, 34.5, True)
    assert m.kind == "measured" and m.low == m.high == pytest.approx(79.5 / 34.5) and m.label() == "2.30"
    lo = beamtime_ratio(180.0, False, 19.5, True)
    assert lo.kind == "lower bound" and lo.low == pytest.approx(180 / 19.5) and math.isinf(lo.high)
    assert lo.label() == "≥ 9.23" and lo.value == pytest.approx(180 / 19.5)
    up = beamtime_ratio(34.5, True, 180.0, False)
    assert up.kind == "upper bound" and up.low == 0.0 and up.high == pytest.approx(34.5 / 180)
    assert up.label().startswith("≤")
    nn = beamtime_ratio(180.0, False, 180.0, False)
    assert nn.kind == "undefined" and nn.low == 0.0 and math.isinf(nn.high) and math.isnan(nn.value)


def test_budget_of_a_strategy_that_stopped_early():
    # adaptive stopped at 60 min without the target, but its budget was 270 min: the bound is there
    r = beamtime_ratio(30.0, True, 60.0, False, adaptive_budget_min=270.0)
    assert r.kind == "upper bound" and r.high == pytest.approx(30 / 270)


def test_median_interval_counts_neither_reached_as_open():
    # the run before this change: a repeat where neither reached was counted as 1.0 in the median
    rs = [
        beamtime_ratio(180, False, 34.5, True),  # ≥ 5.22
        beamtime_ratio(180, False, 180, False),  # undefined (was 1.0)
        beamtime_ratio(19.5, True, 19.5, True),  # 1.0
        beamtime_ratio(79.5, True, 34.5, True),  # 2.30
    ]
    lo, hi = median_interval(rs)
    assert lo == pytest.approx((1.0 + 2.3043478) / 2, rel=1e-6)  # lows 0, 1, 2.30, 5.22
    assert math.isinf(hi)
    meas = [
        beamtime_ratio(3, True, 1, True),
        beamtime_ratio(2, True, 1, True),
        beamtime_ratio(9, True, 1, True),
    ]
    assert median_interval(meas) == (3.0, 3.0)


def test_bad_input():
    with pytest.raises(SteeringError, match="positive, finite"):
        beamtime_ratio(0.0, True, 10.0, True)
    with pytest.raises(SteeringError, match="at least one"):
        median_interval([])
