"""Measurement steering (issue 12): which orientation to measure next, when to stop, and the live loop.

- :mod:`fcinv.steering.design`: the design criterion (Poisson Fisher information through the
  physical forward model, D- or A-optimal on the named parameters), ranking, forecast, stop rule.
- :mod:`fcinv.steering.candidates`: candidate orientations' coverages (one fold plan) and their information.
- :mod:`fcinv.steering.combine`: the physical model of a joint fold from per-orientation models.
- :mod:`fcinv.steering.incremental`: the incremental fold (running per-pixel sums).
- :mod:`fcinv.steering.refit`: the steering refit (the shell continuation, retried while short of its
  last space, then warm-started stages; σ with the cutoff systematic re-measured on the current data)
  and the trust gate (:class:`Trust`, :func:`gated_choice`: steer only from a trusted refit).
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
