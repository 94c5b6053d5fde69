"""Beam-time ratios of two acquisition strategies, honest about repeats that did not reach the target.

A closed-loop comparison (``benchmarks/steering.py``) runs two strategies from the same truth, each up to
a budget of beam time, and records when each first reached the σ target. The ratio uniform time /
adaptive time of one repeat is then:

- a **measurement** when both reached the target;
- a **lower bound** (ratio ≥ budget / adaptive time) when only the adaptive one did: the uniform time
  is at least the budget;
- an **upper bound** (ratio ≤ uniform time / budget) when only the uniform one did;
- **undefined** (anywhere in [0, ∞)) when neither did: not 1.0.

The median over repeats is then an interval: its low end takes every repeat at the lowest value it can
have (a lower bound at its bound, an upper bound and an undefined ratio at 0), its high end at the
highest (a lower bound and an undefined ratio at ∞, an upper bound at its bound). When every ratio is
a measurement the two ends coincide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fcinv.steering.design import SteeringError

RatioKind = Literal["measured", "lower bound", "upper bound", "undefined"]


@dataclass(frozen=True)
class BeamtimeRatio:
    """Uniform / adaptive beam time to the target in one repeat, with what kind of figure it is.

    Attributes
    ----------
    kind
        ``"measured"``, ``"lower bound"``, ``"upper bound"`` or ``"undefined"`` (module docstring).
    low, high
        The range the ratio lies in (equal when measured; ``high = inf`` for a lower bound or an
        undefined ratio, ``low = 0`` for an upper bound or an undefined ratio).
    uniform_min, adaptive_min
        Each strategy's time to the target (min), or its budget when it did not reach it.
    """

    kind: RatioKind
    low: float
    high: float
    uniform_min: float
    adaptive_min: float

    @property
    def value(self) -> float:
        """The ratio when measured, the bound when bounded, NaN when undefined."""
        if self.kind == "measured" or self.kind == "lower bound":
            return self.low
        if self.kind == "upper bound":
            return self.high
        return float("nan")

    def label(self) -> str:
        """``"2.30"``, ``"≥ 9.23"``, ``"≤ 0.50"`` or ``"undefined"``."""
        return {
            "measured": f"{self.low:.2f}",
            "lower bound": f"≥ {self.low:.2f}",
            "upper bound": f"≤ {self.high:.2f}",
            "undefined": "undefined",
        }[self.kind]


def beamtime_ratio(
    uniform_min: float,
    uniform_reached: bool,
    adaptive_min: float,
    adaptive_reached: bool,
    *,
    uniform_budget_min: float | None = None,
    adaptive_budget_min: float | None = None,
) -> BeamtimeRatio:
    """The beam-time ratio of one repeat (module docstring).

    Parameters
    ----------
    uniform_min, adaptive_min
        Beam time (min) at which each strategy reached the target, or where it stopped without it.
    uniform_reached, adaptive_reached
        Whether each reached the target.
    uniform_budget_min, adaptive_budget_min
        The budget of a strategy that did not reach the target (default: its time, i.e. it ran to
        its budget); the bound is taken there.

    Returns
    -------
    BeamtimeRatio
    """
    u_t = float(uniform_min if uniform_reached or uniform_budget_min is None else uniform_budget_min)
    a_t = float(adaptive_min if adaptive_reached or adaptive_budget_min is None else adaptive_budget_min)
    if not (u_t > 0 and a_t > 0 and np.isfinite(u_t) and np.isfinite(a_t)):
        raise SteeringError(
            f"beam times {u_t} (uniform) and {a_t} (adaptive) min; pass positive, finite times."
        )
    r = u_t / a_t
    if uniform_reached and adaptive_reached:
        return BeamtimeRatio("measured", r, r, u_t, a_t)
    if adaptive_reached:
        return BeamtimeRatio("lower bound", r, float("inf"), u_t, a_t)
    if uniform_reached:
        return BeamtimeRatio("upper bound", 0.0, r, u_t, a_t)
    return BeamtimeRatio("undefined", 0.0, float("inf"), u_t, a_t)


def median_interval(ratios: Sequence[BeamtimeRatio]) -> tuple[float, float]:
    """The interval the median over repeats lies in: (median of the lows, median of the highs).

    Parameters
    ----------
    ratios
        One :class:`BeamtimeRatio` per repeat (at least one).

    Returns
    -------
    (low, high)
        Equal when every ratio is measured; ``high = inf`` when the bounds leave it open above.
    """
    if not ratios:
        raise SteeringError("no repeats; pass at least one beam-time ratio.")
    lo = float(np.median([r.low for r in ratios]))
    hi = float(np.median([r.high for r in ratios]))
    return lo, hi
