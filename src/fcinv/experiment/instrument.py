"""A direct-geometry time-of-flight spectrometer: kinematics, detector coverage, resolution, goniometer.

Frames. Lab: z along the incident beam, y vertically up, x = y × z. The sample rotates
about +y by ψ (right-handed, Mantid's ``psi`` goniometer axis ``0,1,0,1``):
Q_lab = R_y(ψ) Q_sample. At ψ = 0 the scattering-plane vector ``u`` points along the
beam and ``v`` towards +x (:func:`fcinv.experiment.readers.ub_from_vectors`).
Q = ki − kf (Mantid's inelastic convention); E = Ei − Ef is the energy transfer.

Detector coverage. A detector direction n̂ = kf/|kf| is described by its in-plane angle
(``atan2(n_x, n_z)``, degrees; ARCS-like default −28° to 135°) and its out-of-plane angle
(``asin(n_y)``, degrees; ±27°). Gaps between detector packs are not modelled.

Energy resolution (Gaussian, FWHM as a function of energy transfer):

- ``"resins"`` (opt-in; ``"auto"`` picks it when the optional GPL-licensed package ``resins``
  is installed): PyChop's fitted
  model of ARCS for the chosen chopper package and frequency (default
  ARCS-100-1.5-AST at 300 Hz: FWHM 1.56 meV at the elastic line for Ei = 40 meV, 0.63 meV
  at 38 meV).
- ``"gaussian"`` (the default, so results do not depend on what is installed): a documented stand-in, FWHM(E) = Ei · (0.03904 − 0.03926 x + 0.01531 x²),
  x = E/Ei, scaled by ``elastic_fwhm_fraction / 0.03904``; the polynomial is a fit
  (within 0.01 meV) to the PyChop ARCS-100-1.5-AST 300 Hz curve at Ei = 40 meV, so the two
  models agree at the defaults.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from fcinv.errors import FcinvError

log = logging.getLogger(__name__)

#: ħ²/(2 m_n) in meV Å²: E = E_K2 · k².
E_K2 = 2.0721247
#: Coefficients (constant, x, x²) of FWHM/Ei for the Gaussian stand-in, x = E/Ei.
_GAUSS_POLY = (0.03904392, -0.03925693, 0.0153074)


class InstrumentError(FcinvError):
    """An instrument or goniometer parameter is out of range."""


def energy_to_k(energy: np.ndarray | float) -> np.ndarray:
    """Neutron wavevector (1/Å) for kinetic energy (meV); negative energies give NaN."""
    e = np.asarray(energy, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.sqrt(e / E_K2)


def k_to_energy(k: np.ndarray | float) -> np.ndarray:
    """Kinetic energy (meV) for wavevector (1/Å)."""
    return E_K2 * np.asarray(k, dtype=float) ** 2


@dataclass(frozen=True)
class Instrument:
    """An ARCS-like direct-geometry spectrometer.

    Parameters
    ----------
    ei
        Incident energy, meV.
    in_plane
        (min, max) horizontal scattering angle of the detectors, degrees.
    out_of_plane
        (min, max) vertical angle of the detectors, degrees.
    resolution
        ``"resins"``, ``"gaussian"`` or ``"auto"`` (resins when installed, else gaussian).
    chopper_package, chopper_frequency
        Fermi chopper settings passed to resins (ARCS names, Hz).
    elastic_fwhm_fraction
        Elastic-line FWHM / Ei for the Gaussian stand-in.
    name
        Informational.
    """

    ei: float = 40.0
    in_plane: tuple[float, float] = (-28.0, 135.0)
    out_of_plane: tuple[float, float] = (-27.0, 27.0)
    resolution: Literal["auto", "resins", "gaussian"] = "gaussian"
    chopper_package: str = "ARCS-100-1.5-AST"
    chopper_frequency: int = 300
    elastic_fwhm_fraction: float = _GAUSS_POLY[0]
    name: str = "ARCS-like"
    _res_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (np.isfinite(self.ei) and self.ei > 0):
            raise InstrumentError(f"incident energy Ei = {self.ei} meV; pass a positive energy (e.g. 40).")
        for name, (lo, hi), lim in (
            ("in_plane", self.in_plane, 180.0),
            ("out_of_plane", self.out_of_plane, 90.0),
        ):
            if not (-lim <= lo < hi <= lim):
                raise InstrumentError(
                    f"{name} detector range ({lo}, {hi})° is invalid; pass (min, max) with -{lim:g} <= min < max <= {lim:g} degrees."
                )
        if self.resolution not in ("auto", "resins", "gaussian"):
            raise InstrumentError(
                f"resolution {self.resolution!r} is unknown; pass 'auto', 'resins' or 'gaussian'."
            )
        if not (0 < self.elastic_fwhm_fraction < 0.5):
            raise InstrumentError(
                f"elastic_fwhm_fraction = {self.elastic_fwhm_fraction}; pass a fraction of Ei between 0 and 0.5 (ARCS-like: 0.03-0.05)."
            )

    @property
    def ki(self) -> float:
        """Incident wavevector, 1/Å."""
        return float(energy_to_k(self.ei))

    def covers(self, kf: np.ndarray) -> np.ndarray:
        """Whether final wavevectors (..., 3) in the lab frame hit a detector; bool (...)."""
        kf = np.asarray(kf, dtype=float)
        n = np.linalg.norm(kf, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            inp = np.rad2deg(np.arctan2(kf[..., 0], kf[..., 2]))
            oop = np.rad2deg(np.arcsin(np.clip(kf[..., 1] / n, -1, 1)))
        return (
            (n > 0)
            & (inp >= self.in_plane[0])
            & (inp <= self.in_plane[1])
            & (oop >= self.out_of_plane[0])
            & (oop <= self.out_of_plane[1])
        )

    # ------------------------------------------------------------ resolution
    def resolution_model(self) -> str:
        """The model actually used: ``"resins"`` or ``"gaussian"``."""
        if self.resolution != "auto":
            return self.resolution
        try:
            import resins  # noqa: F401
        except ImportError:
            return "gaussian"
        return "resins"

    def fwhm(self, energy: np.ndarray | float) -> np.ndarray:
        """Energy resolution (FWHM, meV) at energy transfer ``energy`` (meV), same shape."""
        e = np.asarray(energy, dtype=float)
        model = self.resolution_model()
        if model == "resins":
            return self._fwhm_resins(e)
        x = np.clip(e / self.ei, -0.5, 1.0)
        poly = _GAUSS_POLY[0] + _GAUSS_POLY[1] * x + _GAUSS_POLY[2] * x * x
        return self.ei * poly * (self.elastic_fwhm_fraction / _GAUSS_POLY[0])

    def _fwhm_resins(self, e: np.ndarray) -> np.ndarray:
        fn = self._res_cache.get("fn")
        if fn is None:
            from fcinv.errors import require

            resins = require("resins", "experiment", "the ARCS resolution model (resolution='resins')")
            try:
                inst = resins.Instrument.from_default("ARCS")
                fn = inst.get_resolution_function(
                    "PyChop_fit",
                    chopper_package=self.chopper_package,
                    e_init=self.ei,
                    chopper_frequency=self.chopper_frequency,
                )
            except Exception as exc:  # noqa: BLE001 - resins raises plain exceptions for invalid settings
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise InstrumentError(
                    f"resins rejects ARCS with Ei={self.ei} meV, {self.chopper_package} at {self.chopper_frequency} Hz ({msg}). "
                    "Pick a valid chopper setting or resolution='gaussian'."
                ) from None
            self._res_cache["fn"] = fn
        # resins is valid for 0 <= E < Ei; clamp outside
        ec = np.clip(e, 0.0, 0.999 * self.ei)
        sigma = fn.get_characteristics(ec.reshape(-1, 1))["sigma"]
        return (np.asarray(sigma, dtype=float) * 2.0 * np.sqrt(2.0 * np.log(2.0))).reshape(e.shape)

    def describe(self) -> dict:
        """JSON-serialisable description (for file provenance)."""
        return {
            "name": self.name,
            "ei_meV": self.ei,
            "in_plane_deg": list(self.in_plane),
            "out_of_plane_deg": list(self.out_of_plane),
            "resolution": self.resolution_model(),
            "chopper_package": self.chopper_package,
            "chopper_frequency_Hz": self.chopper_frequency,
            "elastic_fwhm_meV": float(self.fwhm(0.0)),
        }


@dataclass(frozen=True)
class Goniometer:
    """Sample orientations: rotation angles about the vertical axis and the scattering plane.

    Parameters
    ----------
    psi
        Rotation angles, degrees, shape (n_orientations,).
    u, v
        Scattering-plane vectors in r.l.u.: ``u`` along the beam at ψ = 0, ``v`` towards +x.
    """

    psi: tuple[float, ...] = tuple(float(x) for x in np.arange(120.0))
    u: tuple[float, float, float] = (1.0, 0.0, 0.0)
    v: tuple[float, float, float] = (0.0, 1.0, 0.0)

    def __post_init__(self) -> None:
        psi = np.asarray(self.psi, dtype=float).ravel()
        if len(psi) == 0 or not np.all(np.isfinite(psi)):
            raise InstrumentError(
                f"psi has {len(psi)} angles (or NaN); pass at least one finite rotation angle in degrees."
            )
        object.__setattr__(self, "psi", tuple(float(x) for x in psi))
        u, v = np.asarray(self.u, float), np.asarray(self.v, float)
        if u.shape != (3,) or v.shape != (3,) or np.linalg.norm(np.cross(u, v)) < 1e-9:
            raise InstrumentError(
                f"u={list(self.u)} and v={list(self.v)} must be two non-parallel 3-vectors (r.l.u.)."
            )

    @classmethod
    def steps(cls, start: float = 0.0, step: float = 1.0, n: int = 120, **kw) -> Goniometer:
        """``n`` orientations from ``start`` in steps of ``step`` degrees."""
        if n < 1 or step == 0:
            raise InstrumentError(f"{n} orientations in steps of {step}°; pass n >= 1 and a non-zero step.")
        return cls(psi=tuple(float(x) for x in start + step * np.arange(n)), **kw)

    @property
    def n(self) -> int:
        """Number of orientations."""
        return len(self.psi)
