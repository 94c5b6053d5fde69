"""The refit of measurement steering: one full shell continuation, then cheap warm-started refits.

The refinement that fits real crystals continues 5 → 9 → 11 shells
(:func:`fcinv.fitting.continuation.refine_in_shells`, 1–4 min per run on 2 loaded cores). A
steering loop refits after new orientations, so :class:`IncrementalRefit` runs that continuation
once, at the first refit, and every later refit is **one stage in the final space only**: the
continuation's last space (Ge: 11 shells, 47 parameters, every one free), started from the previous
answer (warm start), with the same training-domain prior as the continuation's last stage
(:func:`~fcinv.fitting.continuation.shell_prior`), few evaluations (``max_nfev``, tolerance ``tol``), no
pre-smoothing or outlier stage, and the stability check on a small mesh (``stability_mesh``³).

σ of every answer, exactly: for parameter i of the final space,

    σ_i = sqrt(σ_Laplace,i² + c_i²),

σ_Laplace the refit's own Laplace σ (data + prior, scaled by χ²/dof; :func:`fcinv.fitting.fit_spectrum`)
and c_i the *cutoff systematic the first continuation measured*: |θ_i(last stage) − θ_i(stage
before)| of that first run (``sigma_cutoff`` of :func:`refine_in_shells`). c is held fixed after the
first refit (the later refits do not change the cutoff, so they cannot re-measure it); a parameter the
continuation introduced in its last stage has c_i = |θ_i| of that stage (it started at zero). When the
first continuation stops short of the last space (a stage not trusted), the final space is the last
trusted one (c = 0 if that is the model's own); with ``retry=True`` the next refits run the continuation
again, from the current answer and space, until it reaches the last space, and c is then that run's.

The Fisher ranking of :mod:`fcinv.steering.design` must work in the same final space (linearise the
final-space models; :attr:`IncrementalRefit.final_names`) with the targets named there
(:meth:`IncrementalRefit.targets`: FC0–FC3 of the model's own space, looked up by name).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from fcinv.steering.design import SteeringError

log = logging.getLogger(__name__)

#: Default evaluations of one incremental refit (warm start: the answer moves little per orientation).
INCREMENTAL_MAX_NFEV = 8
#: Default ftol = xtol of an incremental refit: a warm start needs only to settle, not to polish to 1e-8.
INCREMENTAL_TOL = 1e-4
#: Default stability mesh (N³) of an incremental refit; the continuation uses the fit's own default.
INCREMENTAL_STABILITY_MESH = 4


class IncrementalRefit:
    """First refit: the full shell continuation; every later refit: one warm-started final-space stage.

    Parameters
    ----------
    material
        Material name of the embedded references (e.g. ``"Ge"``).
    model_for
        ``model_for(n_shells)`` → the forward model of the *current* data (every orientation measured
        so far) in the space of ``n_shells`` shells, every parameter free in the reference's ranking
        order (``load_reference(material, n).sampled``). The steering benchmark returns the joint model
        of the measured orientations (:class:`fcinv.steering.combine.JointModel`); any model
        :func:`refine_in_shells` accepts works.
    shells
        The continuation's shell counts after the model's own (default: the material's
        ``refine_shells``, Ge [9, 11]).
    base_shells
        The shell count of the first stage (default: the material's own reference space).
    max_nfev, stability_mesh, tol
        Evaluations, stability mesh (N³) and ftol = xtol of each incremental refit.
    first_kwargs
        Passed to :func:`refine_in_shells` (every stage of the first run), e.g. ``max_nfev``.
    retry
        When the first continuation stopped short of the last space (a stage not trusted: too few
        data yet), run the continuation again at the next refits, from the current answer and space,
        until it reaches the last space (each retry costs a continuation). Default False: the final
        space is the one the first continuation reached.
    refine_fn
        The single-stage refinement (default :func:`fcinv.fitting.refine`); tests pass a stand-in.
    """

    def __init__(
        self,
        material: str,
        model_for: Callable[[int], object],
        *,
        shells: Sequence[int] | None = None,
        base_shells: int | None = None,
        max_nfev: int = INCREMENTAL_MAX_NFEV,
        stability_mesh: int = INCREMENTAL_STABILITY_MESH,
        tol: float = INCREMENTAL_TOL,
        first_kwargs: dict | None = None,
        retry: bool = False,
        refine_fn=None,
    ):
        from fcinv.reference import load_reference, shell_count

        if max_nfev < 1 or stability_mesh < 1:
            raise SteeringError(
                f"max_nfev = {max_nfev}, stability_mesh = {stability_mesh}; pass positive integers."
            )
        self.material = material
        self.model_for = model_for
        base = load_reference(material)
        self.base_shells = int(base_shells) if base_shells is not None else shell_count(base.space)
        self.base_names = list(load_reference(material, self.base_shells).sampled)
        if shells is None:
            from fcinv.crystal import material_info

            raw = material_info(material).get("refine_shells") or ()
            shells = [int(n) for n in (raw if isinstance(raw, (list, tuple)) else [raw])]
        self.shells = sorted({int(n) for n in shells if int(n) > self.base_shells})
        self.max_nfev = int(max_nfev)
        self.stability_mesh = int(stability_mesh)
        self.tol = float(tol)
        self.first_kwargs = dict(first_kwargs or {})
        self.retry = bool(retry)
        self._refine = refine_fn
        self.n_final: int | None = None
        self.final_names: list[str] = []
        self.sigma_cutoff: np.ndarray | None = None
        self.theta_full: dict[str, float] | None = None
        self.first = None
        self.history: list[dict] = []

    # ------------------------------------------------------------------ state
    @property
    def started(self) -> bool:
        """Whether the first (full continuation) refit has run."""
        return self.first is not None

    def targets(self, n: int = 4) -> list[str]:
        """The first ``n`` parameters of the model's own space (FC0–FC3 by default), by name."""
        return list(self.base_names[:n])

    def _refine_fn(self):
        if self._refine is not None:
            return self._refine
        from fcinv.fitting import refine

        return refine

    def start_from(self, result) -> None:
        """Take the state (final space, answer, cutoff systematic) from a continuation result.

        ``result`` is what :func:`refine_in_shells` returned (``extra["n_shells"]``,
        ``extra["theta_full"]``, optional ``extra["sigma_cutoff"]``). Used by :meth:`refit` and
        to share one first continuation between strategies that measured the same first data.
        """
        self.first = result
        self.n_final = int(result.extra.get("n_shells", self.base_shells))
        self.final_names = list(result.names)
        cut = result.extra.get("sigma_cutoff") or {}
        self.sigma_cutoff = np.array([abs(float(cut.get(k, 0.0))) for k in self.final_names])
        self.theta_full = dict(result.extra.get("theta_full") or result.theta_dict())

    @property
    def last_shells(self) -> int:
        """The last space the continuation aims at (the base space when it continues nowhere)."""
        return self.shells[-1] if self.shells else self.base_shells

    def _continue(self, folded_spectrum, n0: int, theta_start, kwargs: dict):
        from fcinv.fitting.continuation import refine_in_shells

        stage0 = self.model_for(n0)
        fn = self._refine_fn()

        def stage(m, fs, start, **kw):
            from fcinv.reference import shell_count

            n = shell_count(m.space)
            return fn(stage0 if n == n0 else self.model_for(n), fs, start, **kw)

        res = refine_in_shells(
            stage0,
            folded_spectrum,
            theta_start,
            [n for n in self.shells if n > n0],
            material=self.material,
            refine_fn=stage,
            **kwargs,
        )
        self.start_from(res)
        res.extra["steering_refit"] = f"full continuation from {n0} shells"
        return res

    # ------------------------------------------------------------------ refits
    def refit(self, folded_spectrum, theta_start=None):
        """The refit of the current data (module docstring); returns a FitResult in the final space.

        Parameters
        ----------
        folded_spectrum
            The raw fold of every orientation measured so far.
        theta_start
            Start of the first refit (an ML ``Prediction``, a dict by name or None: the reference θ);
            later refits start from the previous answer and ignore it.
        """
        t = time.perf_counter()
        if not self.started:
            res = self._continue(folded_spectrum, self.base_shells, theta_start, self.first_kwargs)
            self._log(res, "continuation", time.perf_counter() - t)
            return res
        assert self.n_final is not None
        if self.retry and self.n_final < self.last_shells:
            # the first continuation stopped short: continue again from the current answer and space
            from fcinv.fitting.continuation import shell_prior
            from fcinv.reference import load_reference

            ref = load_reference(self.material, self.n_final)
            start = dict(self.theta_full or {})
            kw = {**self.first_kwargs, "prior": shell_prior(ref), "material_reference": ref}
            if self.n_final == self.base_shells:
                kw = dict(self.first_kwargs)
            res = self._continue(folded_spectrum, self.n_final, start, kw)
            self._log(res, "continuation (retry)", time.perf_counter() - t)
            return res
        return self._incremental(folded_spectrum, t)

    def _incremental(self, folded_spectrum, t0: float):
        from fcinv.fitting.continuation import shell_prior
        from fcinv.reference import load_reference

        assert self.n_final is not None and self.theta_full is not None and self.sigma_cutoff is not None
        ref = load_reference(self.material, self.n_final)
        model = self.model_for(self.n_final)
        if list(model.names) != self.final_names:
            raise SteeringError(
                f"model_for({self.n_final}) varies {len(model.names)} parameters, not the "
                f"{len(self.final_names)} of the continuation's final space in its order; build it with "
                "free=ref.sampled."
            )
        start = {k: float(self.theta_full.get(k, 0.0)) for k in self.final_names}
        res = self._refine_fn()(
            model,
            folded_spectrum,
            start,
            prior=shell_prior(ref),
            material_reference=ref,
            fallback=False,
            max_nfev=self.max_nfev,
            presmooth_meV=None,
            outliers=False,
            stability_mesh=self.stability_mesh,
            ftol=self.tol,
            xtol=self.tol,
        )
        stat = np.asarray(res.sigma, float)
        res.extra["sigma_statistical"] = dict(zip(res.names, stat.tolist()))
        res.extra["sigma_cutoff"] = dict(zip(self.final_names, self.sigma_cutoff.tolist()))
        res.extra["steering_refit"] = (
            f"incremental: one stage in the {self.n_final}-shell space, warm start, max_nfev {self.max_nfev}"
        )
        res.extra["uncertainty"] = (
            "Laplace σ of this refit (data + prior, scaled by chi2/dof) and, in quadrature, the cutoff "
            "systematic of the first continuation"
        )
        res = replace(res, sigma=np.sqrt(stat**2 + self.sigma_cutoff**2))
        theta_full = res.extra.get("theta_full") or res.theta_dict()
        if res.success:
            self.theta_full = dict(theta_full)
        else:
            log.warning(
                "incremental refit not trusted (%s); the next one starts from the last trusted", res.message
            )
        self._log(res, "incremental", time.perf_counter() - t0)
        return res

    def _log(self, res, kind: str, wall: float) -> None:
        self.history.append(
            {
                "kind": kind,
                "wall_s": round(float(wall), 3),
                "chi2_dof": None if res.chi2_dof is None else float(res.chi2_dof),
                "success": bool(res.success),
            }
        )

    def sigma_of(self, result, names: Sequence[str]) -> np.ndarray:
        """σ of ``names`` (eV/Å²) in a result of this refit (the first one included: its σ holds c)."""
        by = dict(zip(result.names, np.asarray(result.sigma, float)))
        missing = [n for n in names if n not in by]
        if missing:
            raise SteeringError(f"parameters {missing} are not in the refit's space; name parameters of it.")
        return np.array([by[n] for n in names])
