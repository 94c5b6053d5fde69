"""Measurement steering (issue 12): which orientation to measure next, when to stop, and the live loop.

- :mod:`fcinv.steering.design`: the design criterion (Poisson Fisher information through the
  physical forward model, D- or A-optimal on the named parameters), ranking, forecast, stop rule.
- :mod:`fcinv.steering.candidates`: candidate orientations' coverages (one fold plan) and their information.
- :mod:`fcinv.steering.combine`: the physical model of a joint fold from per-orientation models.
- :mod:`fcinv.steering.incremental`: the incremental fold (running per-pixel sums).
- :mod:`fcinv.steering.refit`: the steering refit (one full shell continuation, then warm-started
  single stages in its final space; σ with the continuation's cutoff systematic).
- :mod:`fcinv.steering.watch`: the live loop over a directory of orientation files.
"""

from fcinv.steering.design import (
    Forecast,
    OrientationInfo,
    Posterior,
    Ranking,
    SteeringError,
    forecast,
    gains,
    linearise,
    rank,
    stop_advice,
)
from fcinv.steering.refit import IncrementalRefit, Trust, gated_choice

__all__ = [
    "Forecast",
    "IncrementalRefit",
    "OrientationInfo",
    "Posterior",
    "Ranking",
    "SteeringError",
    "Trust",
    "forecast",
    "gains",
    "gated_choice",
    "linearise",
    "rank",
    "stop_advice",
]
