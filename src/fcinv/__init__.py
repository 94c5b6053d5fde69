"""fcinv: interatomic force constants from single-crystal inelastic neutron scattering.

The public API (imported on first use, so ``import fcinv`` stays fast)::

    fcinv.load_material("Ge")              # Material: structure, grid, broadening, reference, forward model
    fcinv.load_model("ge")                 # FCPredictor: a trained VAE + regressor (or ResNet-18)
    fcinv.invert(data, model="ge")         # FCResult: θ ± σ from a path, FoldedSpectrum or Volume4D
    fcinv.fit(data, material="Ge")         # FCResult: the least-squares baseline
    fcinv.simulate("Ge", {"1NN_xx": -2})   # FoldedSpectrum: the forward model's I(q, E)

``fcinv.FCResult``, ``fcinv.Material``, ``fcinv.Pipeline``, ``fcinv.FoldedSpectrum``,
``fcinv.Volume4D`` and ``fcinv.open_measurement`` are the types and the reader behind them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from fcinv.errors import FcinvError  # noqa: E402

#: public name → module that defines it (imported lazily by __getattr__)
_LAZY = {
    "load_material": "fcinv.api",
    "load_model": "fcinv.api",
    "invert": "fcinv.api",
    "fit": "fcinv.api",
    "simulate": "fcinv.api",
    "FCResult": "fcinv.result",
    "Material": "fcinv.material",
    "Pipeline": "fcinv.pipeline.core",
    "FoldedSpectrum": "fcinv.experiment.folded",
    "Volume4D": "fcinv.experiment.volume",
    "open_measurement": "fcinv.io.registry",
}

__all__ = ["FcinvError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fcinv' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
