"""The physical model of a fold of several orientations, from the models of each orientation.

The fold of a set of orientations divides the summed data by the summed normalisation, so its
precomputed per-pixel matrices (:class:`fcinv.forward.PhysicalModel`, module docstring) are the
exposure-weighted means of the orientations' own:

    M(q, E) = Σ_o W_o(q, E) M_o(q, E) / Σ_o W_o(q, E),   W_o = Coverage.weight_sum of orientation o.

With ``sampling="path"`` every orientation's model diagonalises at the same 140 path points, so
the joint model is one weighted sum of arrays (milliseconds), with no new precompute: this is how
the live loop and the steering benchmark refit after each new orientation. :class:`JointModel`
keeps the running, un-normalised sums so adding an orientation costs one array addition.
"""

from __future__ import annotations

import copy
import logging

import numpy as np

from fcinv.steering.design import SteeringError

log = logging.getLogger(__name__)


def _check_compatible(base, other) -> None:
    if other.sampling != "path" or base.sampling != "path":
        raise SteeringError(
            "joint models need sampling='path' per-orientation models (same sample points); build them "
            "with sampling='path'."
        )
    if other._packed.shape != base._packed.shape or other.k != base.k or not other.grid.same_as(base.grid):
        raise SteeringError(
            "the orientation models differ in grid, parameters or settings; build them with the same "
            "arguments."
        )
    if (
        other.temperature != base.temperature
        or other.dw != base.dw
        or (other.corrections is None) != (base.corrections is None)
    ):
        raise SteeringError(
            "the orientation models differ in temperature, Debye–Waller mode or corrections; build them "
            "alike."
        )


class JointModel:
    """Running exposure-weighted sum of per-orientation physical models (``sampling="path"``).

    Parameters
    ----------
    base
        Any one orientation's :class:`~fcinv.forward.PhysicalModel`; it fixes the settings.
    """

    def __init__(self, base):
        if base.sampling != "path":
            raise SteeringError(
                "joint models need sampling='path' per-orientation models; build them with sampling='path'."
            )
        self.base = base
        n_q, n_e = base.grid.shape
        self._acc = np.zeros(base._packed.shape, dtype=np.float64)
        self._wsum = np.zeros((n_q, n_e))
        self._q2max = 0.0
        self.psi: list[float] = []
        self._pix = base._pts_pixel
        self._poff = base._pack[0]
        self._npack = base._pack[2]
        self._nk = (len(base._packed) // max(int(np.sum(self._npack)), 1)) // n_e

    def _weighted(self, model, wsum: np.ndarray) -> np.ndarray:
        out = model._packed.astype(np.float64)
        n_e = self.base.grid.n_e
        for sidx in range(len(self._pix)):
            nps = int(self._npack[sidx])
            view = out[self._poff[sidx] : self._poff[sidx + 1]].reshape(self._nk, n_e, nps)
            view *= wsum[self._pix[sidx]][None, :, None]
        return out

    def add(self, model, psi: float = float("nan")) -> None:
        """Add one orientation's model (same settings, its own coverage)."""
        _check_compatible(self.base, model)
        w = model.coverage.weight_sum
        self._acc += self._weighted(model, w)
        self._wsum += w
        self._q2max = max(self._q2max, float(model._q2max))
        self.psi.append(float(psi))

    @property
    def n(self) -> int:
        return len(self.psi)

    def model(self):
        """A :class:`~fcinv.forward.PhysicalModel` of the fold of every orientation added so far."""
        if not self.psi:
            raise SteeringError(
                "no orientation added yet; add at least one before asking for the joint model."
            )
        inv = np.where(self._wsum > 0, 1.0 / np.where(self._wsum > 0, self._wsum, 1.0), 0.0)
        packed = self._weighted_inverse(inv)
        m = copy.copy(self.base)
        m._packed = packed.astype(np.float32)
        m._mask = self._wsum > 0
        m._q2max = self._q2max
        m.coverage_weight_sum = self._wsum.copy()
        return m

    def _weighted_inverse(self, inv: np.ndarray) -> np.ndarray:
        out = self._acc.copy()
        n_e = self.base.grid.n_e
        for sidx in range(len(self._pix)):
            nps = int(self._npack[sidx])
            view = out[self._poff[sidx] : self._poff[sidx + 1]].reshape(self._nk, n_e, nps)
            view *= inv[self._pix[sidx]][None, :, None]
        return out


def joint_model(models, psi=None):
    """The physical model of the joint fold of ``models`` (one per orientation, ``sampling="path"``)."""
    models = list(models)
    if not models:
        raise SteeringError("no orientation models given; pass at least one.")
    jm = JointModel(models[0])
    for i, m in enumerate(models):
        jm.add(m, float("nan") if psi is None else float(psi[i]))
    return jm.model()


def with_coverage(model, coverage):
    """A copy of ``model`` on another coverage, reusing everything that does not depend on it.

    The resolution table, the Debye–Waller set-up and the path dynamics are shared; only the
    coverage precompute runs again (about 10× faster than a new :class:`~fcinv.forward.PhysicalModel`
    with ``dw="theta"``). The result equals ``PhysicalModel(..., coverage=coverage)`` built from scratch.
    """
    from fcinv.forward.physical import Coverage

    if not isinstance(coverage, Coverage):
        raise SteeringError(
            f"coverage is a {type(coverage).__name__}; pass a fcinv.forward.physical.Coverage."
        )
    if not coverage.grid.same_as(model.grid):
        raise SteeringError("the coverage is on another grid than the model's; build it on the model's grid.")
    if model.sampling == "bins" and coverage.q is None:
        raise SteeringError(
            "the model samples 4D-bin positions but the coverage has none; use sampling='path'."
        )
    m = copy.copy(model)
    m.coverage = coverage
    m.sampling = "path" if model.sampling == "path" or coverage.q is None else "bins"
    m._precompute()
    return m
