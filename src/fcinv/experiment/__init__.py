"""Stage III data side: measured 4D S(Q, E) volumes, Brillouin-zone folding, a simulated ToF experiment.

- :class:`Volume4D` (``volume``): sparse 4D histogram (H, K, L, E) with signal, error, norm.
- :class:`FoldedSpectrum`, :func:`write_folded`, :func:`read_folded` (``folded``).
- readers (``readers``): Mantid SaveMD MDHisto, NXSPE, plain HDF5/NPZ arrays, pathSQE output.
- :func:`fold_volume` (``fold``): folding onto the model's q-path, pathSQE's way, vectorised.
- :func:`simulate_experiment` (``simulate``): Euphonic S(Q, E) + ARCS-like instrument + Poisson counts.

Euphonic (and optionally resins) come with the ``experiment`` extra; they are imported lazily.
"""

from fcinv.experiment.fold import Corrections, FoldPlan, cubic_rotations, fold_volume
from fcinv.experiment.folded import FoldedSpectrum, read_folded, write_folded
from fcinv.experiment.instrument import Goniometer, Instrument
from fcinv.experiment.volume import Volume4D, regular_edges

__all__ = [
    "Corrections",
    "FoldPlan",
    "FoldedSpectrum",
    "Goniometer",
    "Instrument",
    "Volume4D",
    "cubic_rotations",
    "fold_volume",
    "read_folded",
    "regular_edges",
    "write_folded",
]
