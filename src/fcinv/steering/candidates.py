"""Candidate goniometer orientations: their coverages and linearised information, one fold plan for all.

:func:`candidate_coverages` gives, for each angle, the :class:`~fcinv.forward.physical.Coverage`
:func:`fcinv.forward.coverage_for_run` would give for that single angle (same Q grid, tubes and
kinematics as the simulated experiment), building the fold plan once instead of once per angle.
:func:`candidate_infos` turns them into :class:`~fcinv.steering.design.OrientationInfo` at a θ
(one shared physical model, re-precomputed per coverage).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from fcinv.steering.design import OrientationInfo, SteeringError, linearise

log = logging.getLogger(__name__)


def parse_angles(spec: Sequence[float] | str) -> np.ndarray:
    """Angles (degrees) from ``"start:stop:step"`` (stop included when on the step), ``"a,b,c"`` or a list."""
    if isinstance(spec, str):
        s = spec.strip()
        try:
            if ":" in s:
                parts = [float(x) for x in s.split(":")]
                if len(parts) != 3 or not parts[2] > 0 or parts[1] < parts[0]:
                    raise ValueError
                out = np.arange(parts[0], parts[1] + 1e-9 * max(1.0, abs(parts[1])), parts[2])
            else:
                out = np.array([float(x) for x in s.split(",") if x.strip()])
        except ValueError:
            raise SteeringError(
                f"candidate angles {spec!r} are not 'start:stop:step' (step > 0, stop >= start) or 'a,b,c'. "
                "Pass e.g. 0:179:1 or 0,15,30."
            ) from None
    else:
        out = np.asarray(list(spec), float)
    if out.size == 0 or not np.all(np.isfinite(out)):
        raise SteeringError(f"candidate angles {spec!r} give no finite angle. Pass e.g. 0:179:1.")
    return out


def candidate_coverages(
    crystal,
    grid,
    psi: Sequence[float],
    *,
    ei: float = 40.0,
    u=(1.0, 0.0, 0.0),
    v=(0.0, 1.0, 0.0),
    instrument=None,
    q_step: float = 0.05,
    q_tolerance: float = 0.05,
) -> list:
    """One :class:`~fcinv.forward.physical.Coverage` per angle (path sampling, exposure weights), one plan.

    Parameters
    ----------
    crystal
        :class:`fcinv.crystal.Crystal`.
    grid
        The model's grid.
    psi
        Goniometer angles, degrees.
    """
    from fcinv.experiment.instrument import Instrument
    from fcinv.forward.coverage import RunGeometry

    inst = instrument or Instrument(ei=float(ei))
    psi = np.atleast_1d(np.asarray(list(psi), float))
    geom = RunGeometry.build(crystal, grid, inst, u=u, v=v, q_step=q_step, q_tolerance=q_tolerance)
    out = []
    for p in psi:
        c, exposure = geom.coverage([p], exposure=True, sampling="path", source="candidate orientation")
        if c is None:
            raise SteeringError(
                f"orientation ψ = {p:g}° reaches no Q-bin of the path at Ei = {inst.ei:g} meV. Drop it from "
                "the candidates."
            )
        c.meta.update({"psi_deg": float(p), "ei_meV": float(inst.ei), "bin_exposure": exposure})
        out.append(c)
    return out


def candidate_infos(
    model, coverages: Sequence, psi: Sequence[float], theta, *, step=None
) -> list[OrientationInfo]:
    """Linearise ``model`` (raw intensities) on each coverage at ``theta``: one OrientationInfo per angle."""
    from fcinv.steering.combine import with_coverage

    if len(coverages) != len(psi):
        raise SteeringError(f"{len(coverages)} coverages but {len(psi)} angles; pass one angle per coverage.")
    return [
        linearise(with_coverage(model, c), theta, psi=float(p), step=step) for c, p in zip(coverages, psi)
    ]
