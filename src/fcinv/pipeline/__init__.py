"""Stage III end to end: load → fold → predict → refine → single scans → plots.

- :class:`Pipeline` (``core``): the steps as methods, pluggable forward model and refinement;
  :meth:`Pipeline.run` → :class:`InversionRun`, :meth:`Pipeline.invert` → :class:`~fcinv.result.FCResult`;
- :func:`fold_measurement`, :func:`rebin_spectrum`: a measurement onto the model's grid;
- :func:`plot_inversion`, :func:`plot_single_scans` (``plots``);
- :func:`run_demo` (``demo``): the simulated Ge experiment of ``fcinv demo``.
"""

from fcinv.pipeline.core import (
    InversionRun,
    OrientationScans,
    Pipeline,
    PipelineConfig,
    fold_measurement,
    one_phonon_corrections,
)
from fcinv.pipeline.demo import DEFAULT_TRUTH, DemoReport, run_demo
from fcinv.pipeline.plots import plot_inversion, plot_single_scans
from fcinv.pipeline.rebin import rebin_spectrum

__all__ = [
    "DEFAULT_TRUTH",
    "DemoReport",
    "InversionRun",
    "OrientationScans",
    "Pipeline",
    "PipelineConfig",
    "fold_measurement",
    "one_phonon_corrections",
    "plot_inversion",
    "plot_single_scans",
    "rebin_spectrum",
    "run_demo",
]
