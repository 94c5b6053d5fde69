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
    from fcinv.experiment.fold import FoldPlan
    from fcinv.experiment.instrument import Instrument
    from fcinv.experiment.readers import ub_from_vectors
    from fcinv.experiment.simulate import E_K2, ExperimentCrystal, coverage, reachable_box
    from fcinv.experiment.volume import Volume4D, regular_edges
    from fcinv.forward.physical import coverage_from_fold

    inst = instrument or Instrument(ei=float(ei))
    psi = np.atleast_1d(np.asarray(list(psi), float))
    ec = ExperimentCrystal.from_cell(crystal.lattice, crystal.positions, crystal.numbers, name=crystal.name)
    rots = np.asarray(crystal.point_group_rlu, float)
    ub = ub_from_vectors(ec.b_matrix(), tuple(u), tuple(v))
    e_edges = grid.energy_edges
    ext_box, qy_max, y_hat = reachable_box(ec, inst, ub, float(e_edges[0]))
    edges = (*(regular_edges(-x, x, q_step, offset=q_step / 4) for x in ext_box), e_edges)
    shape = tuple(len(e) - 1 for e in edges)
    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    plan = FoldPlan.build(edges[:3], grid, rots, centering=centering, q_tolerance=q_tolerance)  # type: ignore[arg-type]
    q3 = np.unique(plan.members["q3"])
    cen = [0.5 * (e[1:] + e[:-1]) for e in edges[:3]]
    ih, ik, il = np.unravel_index(q3, shape[:3])
    hkl = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
    rc = ec.reciprocal_cell
    qmax = inst.ki + float(np.sqrt(max(inst.ei - min(float(e_edges[0]), 0.0), 0.0) / E_K2))
    margin = q_step * float(np.linalg.norm(rc, axis=1).max())
    keep = (np.linalg.norm(hkl @ rc, axis=1) <= qmax + margin) & (np.abs(hkl @ y_hat) <= qy_max + margin)
    q3, hkl = q3[keep], hkl[keep]
    out = []
    for p in psi:
        cov = coverage(hkl, ub, (q_step,) * 3, e_edges, inst, np.array([p]))
        if len(cov["q"]) == 0:
            raise SteeringError(
                f"orientation ψ = {p:g}° reaches no Q-bin of the path at Ei = {inst.ei:g} meV. Drop it from "
                "the candidates."
            )
        key = q3[cov["q"]] * shape[3] + cov["e"]
        ukey, inv = np.unique(key, return_inverse=True)
        norm = np.bincount(inv.ravel(), weights=cov["w"])
        vol = Volume4D(
            edges=edges,
            index=ukey,
            signal=np.zeros(len(ukey)),
            error=np.zeros(len(ukey)),
            norm=norm,
            meta={"source": "candidate orientation", "psi_deg": float(p)},
            reciprocal_cell=rc,
        )
        c = coverage_from_fold(plan, vol, rotations=rots, sampling="path")
        c.meta.update({"psi_deg": float(p), "ei_meV": float(inst.ei), "bin_exposure": float(norm.sum())})
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
