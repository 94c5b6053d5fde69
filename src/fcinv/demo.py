"""Backward-compatible names: the demo now lives in :mod:`fcinv.pipeline.demo`."""

from fcinv.pipeline.demo import (
    DEFAULT_TRUTH,
    DemoReport,
    domain_width,
    run_demo,
    truth_force_constants,
    truth_theta,
)
from fcinv.pipeline.plots import plot_single_scans

__all__ = [
    "DEFAULT_TRUTH",
    "DemoReport",
    "domain_width",
    "plot_single_scans",
    "run_demo",
    "truth_force_constants",
    "truth_theta",
]
