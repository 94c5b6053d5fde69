"""Coverage of a folded measurement: which images the fold combines at each (q, E) pixel.

:class:`Coverage` and its builders (:func:`full_coverage`, :func:`coverage_from_fold`,
:func:`coverage_for_run`) feed :class:`fcinv.forward.physical.PhysicalModel`; they are
re-exported by :mod:`fcinv.forward.physical` and :mod:`fcinv.forward`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from fcinv.forward._phys_common import PhysicalModelError
from fcinv.grid import SpectrumGrid


@dataclass(frozen=True, eq=False)
class Coverage:
    """Which images the folded measurement combines at each (q, E) pixel, and with what weight.

    Parameters
    ----------
    grid
        The (q, E) grid of the fold.
    rotations
        Shape (n_rot, 3, 3): point-group matrices acting on conventional r.l.u. column vectors.
    pixel
        Shape (n_t,) int64: path q-bin of each (image, zone) term t.
    rot
        Shape (n_t,) int64: row of ``rotations`` mapping the path onto the image (Q_t = g q + G).
    zone
        Shape (n_t, 3) float64, r.l.u.: the zone centre G of each term.
    t_idx, e_idx, w
        Shape (n_entries,): term, energy bin (−1: every energy bin) and weight (> 0, the summed
        normalisation of the 4D bins) of each entry.
    source
        How it was made (``"full"``, ``"fold"``, ``"run"``).
    meta
        Provenance (Ei, angles, numbers of terms).
    q
        Optional shape (n_t, 3) float64, r.l.u.: the q of each term in the path's frame, with
        Q_t = g q_t + G the centre of the 4D bins it stands for (``sampling="bins"``); None: the
        pixel's path point (``sampling="path"``).
    """

    grid: SpectrumGrid
    rotations: np.ndarray
    pixel: np.ndarray
    rot: np.ndarray
    zone: np.ndarray
    t_idx: np.ndarray
    e_idx: np.ndarray
    w: np.ndarray
    source: str = ""
    meta: dict = field(default_factory=dict)
    q: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_t = len(self.pixel)
        if self.q is not None and np.shape(self.q) != (n_t, 3):
            raise PhysicalModelError(
                f"coverage q has shape {np.shape(self.q)}; expected ({n_t}, 3), one path-frame q per term."
            )
        if not (len(self.rot) == n_t == len(self.zone)) or not (
            len(self.t_idx) == len(self.e_idx) == len(self.w)
        ):
            raise PhysicalModelError(
                f"coverage arrays disagree in length (pixel {n_t}, rot {len(self.rot)}, zone "
                f"{len(self.zone)}; "
                f"entries {len(self.t_idx)}, {len(self.e_idx)}, {len(self.w)}). Build it with the coverage "
                "functions."
            )
        if n_t == 0 or len(self.w) == 0:
            raise PhysicalModelError(
                "the coverage is empty: no image reaches the path. Check Ei, the angles and the grid."
            )
        if np.any(self.w <= 0) or not np.all(np.isfinite(self.w)):
            raise PhysicalModelError(
                "coverage weights must be finite and > 0. Drop the entries without exposure."
            )

    @property
    def n_terms(self) -> int:
        """Number of (pixel, image, zone) terms."""
        return len(self.pixel)

    def term_q(self) -> np.ndarray:
        """The path-frame q of every term, shape (n_t, 3) float64, r.l.u."""
        return self.grid.q_rlu[self.pixel] if self.q is None else np.asarray(self.q, float)

    def hkl(self) -> np.ndarray:
        """Q_t = g·q_t + G of every term, shape (n_t, 3) float64, conventional r.l.u."""
        q = self.term_q()
        return np.einsum("tij,tj->ti", self.rotations[self.rot], q) + self.zone

    @property
    def weight_sum(self) -> np.ndarray:
        """Σ_t w_t per pixel, shape (n_q, n_E) float64 (0 where unmeasured)."""
        g = self.grid
        out = np.zeros(g.n_q * g.n_e)
        per = self.e_idx >= 0
        cell = self.pixel[self.t_idx[per]] * g.n_e + self.e_idx[per]
        out += np.bincount(cell, weights=self.w[per], minlength=g.n_q * g.n_e)
        out = out.reshape(g.shape)
        if np.any(~per):
            out += np.bincount(self.pixel[self.t_idx[~per]], weights=self.w[~per], minlength=g.n_q)[:, None]
        return out

    @property
    def mask(self) -> np.ndarray:
        """Pixels the measurement covers, shape (n_q, n_E) bool."""
        return self.weight_sum > 0

    def describe(self) -> dict:
        """JSON-able summary."""
        return {
            "source": self.source,
            "n_terms": self.n_terms,
            "n_entries": len(self.w),
            "sampling": "path" if self.q is None else "bins",
            "covered_fraction": float(self.mask.mean()),
            **self.meta,
        }


def _rotation_of_images(grid: SpectrumGrid, rotations: np.ndarray):
    """The plan's segment images and, per image, one rotation mapping its segment onto it."""
    from fcinv.experiment.fold import path_segments, segment_images

    segs = path_segments(grid)
    images = segment_images(segs, rotations)
    rot = np.empty(len(images), dtype=np.int64)
    for m in range(len(images)):
        s = segs[int(images.segment[m])]
        a = rotations @ s.start
        st = rotations @ s.step
        ok = np.flatnonzero(
            np.all(np.abs(a - images.start[m]) < 1e-6, axis=1)
            & np.all(np.abs(st - images.step[m]) < 1e-6, axis=1)
        )
        rot[m] = int(ok[0])
    return images, rot


def full_coverage(
    crystal, grid: SpectrumGrid, *, qmax: float = 8.0, rotations: np.ndarray | None = None
) -> Coverage:
    """Every distinct image of every path segment in every zone with |Q| <= ``qmax`` (1/Å).

    Weight 1 at all energies (an idealised, fully covered measurement).

    ``crystal`` is a :class:`fcinv.crystal.Crystal`; ``rotations`` default to its point group.
    """
    from fcinv.experiment.fold import zone_centres

    if not qmax > 0:
        raise PhysicalModelError(f"qmax = {qmax} 1/Å; pass a positive |Q| limit (e.g. 8).")
    rots = np.asarray(crystal.point_group_rlu if rotations is None else rotations, float)
    images, img_rot = _rotation_of_images(grid, rots)
    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    C = 2 * np.pi * np.linalg.inv(crystal.conventional_lattice)  # Q_cart = C @ hkl
    hmax = qmax / np.linalg.svd(C, compute_uv=False).min() + 2.0
    zones = zone_centres(-np.full(3, hmax), np.full(3, hmax), centering)  # type: ignore[arg-type]
    pix, rot, zon = [], [], []
    for m in range(len(images)):
        n = int(images.n[m])
        js = np.arange(n) + int(images.offset[m])
        qimg = images.start[m] + (np.arange(n) + 0.5)[:, None] * images.step[m]
        Q = qimg[:, None, :] + zones[None]
        ok = np.linalg.norm(Q @ C.T, axis=2) <= qmax
        jj, zz = np.nonzero(ok)
        pix.append(js[jj])
        rot.append(np.full(len(jj), img_rot[m]))
        zon.append(zones[zz])
    pixel = np.concatenate(pix).astype(np.int64)
    n_t = len(pixel)
    return Coverage(
        grid=grid,
        rotations=rots,
        pixel=pixel,
        rot=np.concatenate(rot).astype(np.int64),
        zone=np.concatenate(zon),
        t_idx=np.arange(n_t, dtype=np.int64),
        e_idx=np.full(n_t, -1, dtype=np.int64),
        w=np.ones(n_t),
        source="full",
        meta={"qmax_inv_A": qmax},
    )


def coverage_from_fold(
    plan,
    volume,
    *,
    qmod_range: tuple[float, float] | None = None,
    min_zone_coverage: float = 0.0,
    rotations: np.ndarray | None = None,
    sampling: str = "bins",
) -> Coverage:
    """The coverage of a real fold: :class:`~fcinv.experiment.fold.FoldPlan` + the volume it folds.

    ``rotations`` must be the point group the plan was built with, in the same order (default:
    the plan's own). Weights are the volume's normalisation (``volume.weights``),
    exactly as :meth:`FoldPlan.apply` sums them. ``sampling="bins"`` keeps, per term, where the
    4D bins' centres lie in the tube (their path-frame q = g⁻¹(Q_bin − G)), so the model sees the
    dispersion across the tube; ``"path"`` puts every term at its pixel's path point.
    """
    if sampling not in ("bins", "path"):
        raise PhysicalModelError(
            f"sampling = {sampling!r}; pass 'bins' (4D-bin centres) or 'path' (path points)."
        )
    if rotations is None:
        rotations = getattr(plan, "rotations", None)
        if rotations is None:
            raise PhysicalModelError(
                "the fold plan does not carry its rotations; pass rotations=... (the point group it was "
                "built with)."
            )
    rots = np.asarray(rotations, float)
    if len(rots) != plan.n_rotations or (
        getattr(plan, "rotations", None) is not None and not np.allclose(rots, plan.rotations)
    ):
        raise PhysicalModelError(
            f"the {len(rots)} rotations given are not the {plan.n_rotations} the fold plan was built with "
            "(their order fixes the segment images). Pass the plan's rotations."
        )
    images, img_rot = _rotation_of_images(plan.grid, rots)
    if len(images) != plan.n_images:
        raise PhysicalModelError(
            f"the rotations give {len(images)} segment images but the plan has {plan.n_images}. Pass the "
            "plan's rotations."
        )
    by_bin = sampling == "bins"
    iw = plan.image_weights(volume, qmod_range=qmod_range, min_zone_coverage=min_zone_coverage, by_bin=by_bin)
    if len(iw["w"]) == 0:
        raise PhysicalModelError(
            "nothing of the volume lands on the path: the coverage is empty. Check the volume and the plan."
        )
    n_q = plan.grid.n_q
    if by_bin:
        n_q3 = int(np.prod([len(e) - 1 for e in plan.q_edges]))
        key = (iw["zone"] * len(images) + iw["image"]) * n_q3 + iw["q3"]
    else:
        key = (iw["zone"] * len(images) + iw["image"]) * n_q + iw["pixel"]
    _, first, t_idx = np.unique(key, return_index=True, return_inverse=True)
    pixel = iw["pixel"][first]
    image = iw["image"][first]
    zone = iw["zone"][first]
    q = None
    if by_bin:
        shape3 = tuple(len(e) - 1 for e in plan.q_edges)
        cen = [0.5 * (e[1:] + e[:-1]) for e in plan.q_edges]
        ih, ik, il = np.unravel_index(iw["q3"][first], shape3)
        Qb = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
        ginv = np.linalg.inv(rots)[img_rot[image]]
        q = np.einsum("tij,tj->ti", ginv, Qb - plan.zones[zone])
    return Coverage(
        grid=plan.grid,
        rotations=rots,
        pixel=pixel.astype(np.int64),
        rot=img_rot[image],
        zone=plan.zones[zone].astype(float),
        t_idx=t_idx.ravel().astype(np.int64),
        e_idx=iw["e"].astype(np.int64),
        w=iw["w"].astype(float),
        source="fold",
        meta={"q_tolerance_rlu": plan.q_tolerance, "n_zones": len(np.unique(zone))},
        q=q,
    )


class RunGeometry:
    """What a run's coverage needs that does not depend on the angles: the 4D grid of the simulated
    experiment (:func:`fcinv.experiment.simulate.simulate_experiment` with ``region=grid``), its fold
    plan, and the path's reachable Q-bins. Built once; :meth:`coverage` folds any set of angles.

    Use :meth:`build`; :func:`coverage_for_run` (one run) and
    :func:`fcinv.steering.candidates.candidate_coverages` (one coverage per candidate angle) share it.
    """

    def __init__(self, *, inst, ub, edges, shape, plan, q3, hkl, rc, rots, q_step):
        self.inst, self.ub, self.edges, self.shape = inst, ub, edges, shape
        self.plan, self.q3, self.hkl, self.rc, self.rots = plan, q3, hkl, rc, rots
        self.q_step = float(q_step)

    @classmethod
    def build(
        cls, crystal, grid: SpectrumGrid, inst, *, u, v, q_step: float, q_tolerance: float
    ) -> RunGeometry:
        """The geometry of ``crystal`` on ``grid`` for instrument ``inst`` and scattering plane (u, v)."""
        from fcinv.experiment.fold import FoldPlan
        from fcinv.experiment.instrument import E_K2
        from fcinv.experiment.readers import ub_from_vectors
        from fcinv.experiment.simulate import ExperimentCrystal, reachable_box
        from fcinv.experiment.volume import regular_edges

        e_edges = grid.energy_edges
        if e_edges[0] >= inst.ei:
            raise PhysicalModelError(
                f"the grid's energies start at {e_edges[0]:g} meV, above Ei = {inst.ei:g} meV. Raise Ei."
            )
        ec = ExperimentCrystal.from_cell(
            crystal.lattice, crystal.positions, crystal.numbers, name=crystal.name
        )
        rots = np.asarray(crystal.point_group_rlu, float)
        ub = ub_from_vectors(ec.b_matrix(), tuple(u), tuple(v))
        ext_box, qy_max, y_hat = reachable_box(ec, inst, ub, float(e_edges[0]))
        edges = (*(regular_edges(-x, x, q_step, offset=q_step / 4) for x in ext_box), e_edges)
        shape = tuple(len(e) - 1 for e in edges)
        centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
        plan = FoldPlan.build(
            edges[:3],
            grid,
            rots,
            centering=centering,
            q_tolerance=q_tolerance,  # type: ignore[arg-type]
        )
        q3 = np.unique(plan.members["q3"])
        cen = [0.5 * (e[1:] + e[:-1]) for e in edges[:3]]
        ih, ik, il = np.unravel_index(q3, shape[:3])
        hkl = np.stack([cen[0][ih], cen[1][ik], cen[2][il]], axis=1)
        rc = ec.reciprocal_cell
        qmax = inst.ki + float(np.sqrt(max(inst.ei - min(float(e_edges[0]), 0.0), 0.0) / E_K2))
        margin = q_step * float(np.linalg.norm(rc, axis=1).max())
        keep = (np.linalg.norm(hkl @ rc, axis=1) <= qmax + margin) & (np.abs(hkl @ y_hat) <= qy_max + margin)
        return cls(
            inst=inst,
            ub=ub,
            edges=edges,
            shape=shape,
            plan=plan,
            q3=q3[keep],
            hkl=hkl[keep],
            rc=rc,
            rots=rots,
            q_step=q_step,
        )

    def coverage(self, psi, *, exposure: bool = True, sampling: str = "bins", source: str = "run"):
        """The folded coverage of the angles ``psi`` (degrees) and the summed bin exposure.

        Returns ``(None, 0.0)`` when the angles reach no Q-bin of the path.
        """
        from fcinv.experiment.simulate import coverage
        from fcinv.experiment.volume import Volume4D

        cov = coverage(
            self.hkl, self.ub, (self.q_step,) * 3, self.edges[3], self.inst, np.asarray(psi, float)
        )
        if len(cov["q"]) == 0:
            return None, 0.0
        key = self.q3[cov["q"]] * self.shape[3] + cov["e"]
        ukey, inv = np.unique(key, return_inverse=True)
        norm = np.bincount(inv.ravel(), weights=cov["w"]) if exposure else np.ones(len(ukey))
        vol = Volume4D(
            edges=self.edges,
            index=ukey,
            signal=np.zeros(len(ukey)),
            error=np.zeros(len(ukey)),
            norm=norm,
            meta={"source": source},
            reciprocal_cell=self.rc,
        )
        return coverage_from_fold(self.plan, vol, rotations=self.rots, sampling=sampling), float(norm.sum())


def coverage_for_run(
    crystal,
    grid: SpectrumGrid,
    *,
    ei: float = 40.0,
    psi: Sequence[float] = tuple(float(x) for x in range(120)),
    u: Sequence[float] = (1.0, 0.0, 0.0),
    v: Sequence[float] = (0.0, 1.0, 0.0),
    instrument=None,
    q_step: float = 0.05,
    q_tolerance: float = 0.05,
    exposure: bool = True,
    sampling: str = "bins",
) -> Coverage:
    """The coverage of a (simulated-geometry) ARCS-like run, without computing any S(Q, E).

    The same Q grid, tube selection and kinematic coverage as
    :func:`fcinv.experiment.simulate.simulate_experiment` with ``region=grid``, folded by
    :class:`~fcinv.experiment.fold.FoldPlan` as ``fcinv fold`` does. ``exposure=True`` weights
    each 4D bin by its summed normalisation (the fold of the counts); ``False`` weights every
    covered bin 1 (the fold of :meth:`SimulatedRun.expected_volume`). ``sampling`` as in
    :func:`coverage_from_fold`.

    Parameters
    ----------
    crystal
        :class:`fcinv.crystal.Crystal`.
    ei
        Incident energy, meV (ignored when ``instrument`` is given).
    psi
        Goniometer angles, degrees (one orientation or a full run).
    u, v
        Scattering-plane vectors (r.l.u.).
    instrument
        :class:`fcinv.experiment.instrument.Instrument` (default ARCS-like at ``ei``).
    """
    from fcinv.experiment.instrument import Instrument

    inst = instrument or Instrument(ei=float(ei))
    psi = np.atleast_1d(np.asarray(list(psi), dtype=float))
    if len(psi) == 0 or not np.all(np.isfinite(psi)):
        raise PhysicalModelError(
            f"psi has {len(psi)} angles (or NaN); pass at least one finite goniometer angle in degrees."
        )
    geom = RunGeometry.build(crystal, grid, inst, u=u, v=v, q_step=q_step, q_tolerance=q_tolerance)
    out, _ = geom.coverage(psi, exposure=exposure, sampling=sampling, source="coverage_for_run")
    if out is None:
        raise PhysicalModelError(
            f"the {len(psi)} orientation(s) reach no Q-bin of the path at Ei = {inst.ei:g} meV. "
            "Check psi, u, v and Ei."
        )
    meta = dict(
        out.meta,
        ei_meV=float(inst.ei),
        n_orientations=len(psi),
        psi_deg=[float(psi[0]), float(psi[-1])],
        u=list(u),
        v=list(v),
        q_step_rlu=q_step,
        exposure=bool(exposure),
    )
    return Coverage(
        grid=out.grid,
        rotations=out.rotations,
        pixel=out.pixel,
        rot=out.rot,
        zone=out.zone,
        t_idx=out.t_idx,
        e_idx=out.e_idx,
        w=out.w,
        source="run",
        meta=meta,
        q=out.q,
    )
