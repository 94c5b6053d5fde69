"""Compile (or load from numba's on-disk cache) every forward-model kernel once, ahead of use.

Every kernel of :mod:`fcinv.forward._kernels`, :mod:`~fcinv.forward._phys_kernels` and
:mod:`~fcinv.forward._phys_lanes` is compiled with ``cache=True``: the machine code is written
next to the sources (``__pycache__``) or, when that folder is not writable, to numba's user-wide
cache (``NUMBA_CACHE_DIR`` when set). Without
a warm cache the first ``fcinv infer`` after an install spends most of its time compiling.
:func:`warm_kernels` runs each kernel on a tiny problem built exactly as the models build theirs
(the same array types, so the same compiled signatures), which fills the cache once, e.g. right
after ``pip install``::

    python -m fcinv.forward.warm

A read-only installation without any writable cache location still works: numba then warns and
compiles in memory at every start.
"""

from __future__ import annotations

import time

import numpy as np


def _real_models() -> None:
    from fcinv.crystal import Crystal, default_grid
    from fcinv.fcspace import FCSpace
    from fcinv.forward.model import ForwardModel
    from fcinv.forward.physical import PhysicalModel, full_coverage

    crystal = Crystal.from_name("Ge")
    space = FCSpace.for_material(crystal)
    grid = default_grid(crystal)
    theta = space.central_force_theta({"1NN": 6.0, "2NN": 0.6})
    model = ForwardModel(space, grid, theta)
    t = np.repeat(model.theta0[None], 2, axis=0)
    model.spectra(t)
    model.spectra(t, return_frequencies=True)
    model.is_stable(t)
    model.frequencies(t)
    phys = PhysicalModel(space, grid, theta, coverage=full_coverage(crystal, grid, qmax=3.0), dw_mesh=4)
    from fcinv.forward._phys_lanes import LANES

    tb = np.repeat(phys.theta0[None], LANES, axis=0)
    phys.spectra(tb[:1])
    phys.spectra(tb)
    phys.eigenvectors(tb[:1])


def _complex_models() -> None:
    from fcinv.crystal import Crystal, default_grid
    from fcinv.fcspace import FCSpace
    from fcinv.forward.model import ForwardModel

    fcc = np.array([[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]])
    numbers = [31] * 4 + [33] * 4
    crystal = Crystal.from_cell(np.eye(3) * 5.65, np.vstack([fcc, fcc + 0.25]), numbers, name="GaAs")
    space = FCSpace(crystal, n_shells=1)
    model = ForwardModel(space, default_grid(crystal, e_max=40.0), space.central_force_theta({"1NN": 4.0}))
    t = model.theta0[None]
    model.spectra(t)
    model.is_stable(t)
    model.path.eigh(t)


def warm_kernels() -> dict[str, float]:
    """Compile or load every forward kernel; returns the seconds spent per group.

    Groups: ``"real"`` (the paper and physical models of Ge: eigenvalues, stability, spectra,
    eigenvectors, Debye–Waller, coverage precompute, the one-θ and lane kernels) and
    ``"complex"`` (a zincblende crystal without an inversion centre).
    """
    out = {}
    for name, fn in (("real", _real_models), ("complex", _complex_models)):
        t0 = time.perf_counter()
        fn()
        out[name] = time.perf_counter() - t0
    return out


if __name__ == "__main__":
    times = warm_kernels()
    print("forward kernels ready: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
