"""The refit of measurement steering: a shell continuation, warm-started refits, and the trust gate.

The refinement that fits real crystals continues 5 → 9 → 11 shells
(:func:`fcinv.fitting.continuation.refine_in_shells`, 1–4 min per run on 2 loaded cores). A
steering loop refits after new orientations, so :class:`IncrementalRefit` runs that continuation
at the first refit and, while it stops short of the last space (``retry=True``), again at each later
refit from the current answer and space. Once the last space is reached, every later refit is a
**warm refit**: one stage in the final space (Ge: 11 shells, 47 parameters, every one free), started
from the previous trusted answer, with the same training-domain prior as the continuation's last stage
(:func:`~fcinv.fitting.continuation.shell_prior`), ``max_nfev`` evaluations (tolerance ``tol``), no
pre-smoothing or outlier stage, the stability check on a small mesh (``stability_mesh``³); and, with
``cutoff="remeasure"`` (default), a second warm stage in the continuation's previous space (Ge: 9
shells, started from that space's last answer), so that the cutoff systematic is measured again on
the current data.

σ of every answer, exactly: for parameter i of the final space,

    σ_i = sqrt(σ_Laplace,i² + c_i²),

σ_Laplace the refit's own Laplace σ (data + prior, scaled by χ²/dof; :func:`fcinv.fitting.fit_spectrum`)
and c_i the *cutoff systematic*: |θ_i(final space) − θ_i(previous space)| on the same data, i.e. the
move of parameter i in the last stage of a continuation (``sigma_cutoff`` of :func:`refine_in_shells`),
for the parameters both spaces hold (0 for those only the final space holds, as the continuation
does). It is re-measured at every continuation (the first, each retry) and, with
``cutoff="remeasure"``, at every warm refit from its two warm stages (when the previous-space stage
did not converge, the last measured c is kept, and the result says so). ``cutoff="first"`` holds c
from the last continuation (the behaviour before the trust gate). When the continuation stops short of
the last space, the final space is the last trusted one (c = 0 if that is the model's own).

Trust (:meth:`IncrementalRefit.trust`, recorded per refit in ``history`` and ``extra["trust"]``): a
refit is trusted when (1) the continuation has reached its last space, (2) the refit converged
(least squares stopped on its tolerances, not on ``max_nfev``) and is dynamically stable, and
(3) its χ²/dof ≤ ``chi2_max`` (default :data:`CHI2_TRUST_MAX`). :func:`gated_choice` steers only from
a trusted refit; until then, and after any untrusted one, it takes a documented default (the uniform
scan's next unmeasured angle in the benchmark).

The Fisher ranking of :mod:`fcinv.steering.design` must work in the same final space (linearise the
final-space models; :attr:`IncrementalRefit.final_names`) with the targets named there
(:meth:`IncrementalRefit.targets`: FC0–FC3 of the model's own space, looked up by name).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from fcinv.steering.design import SteeringError

log = logging.getLogger(__name__)

#: Default evaluations of one incremental refit (warm start: the answer moves little per orientation).
INCREMENTAL_MAX_NFEV = 8
#: Default ftol = xtol of an incremental refit: a warm start needs only to settle, not to polish to 1e-8.
INCREMENTAL_TOL = 1e-4
#: Default stability mesh (N³) of an incremental refit; the continuation uses the fit's own default.
INCREMENTAL_STABILITY_MESH = 4
#: Default bound on χ²/dof of a trusted steering refit. A refit above it does not describe the data
#: within their errors (the continuation on 30 and 120 orientations of the DFT Ge runs reaches 1.6–1.7,
#: docs/fidelity.md), so its σ is not an uncertainty of the crystal and it does not steer.
CHI2_TRUST_MAX = 3.0


@dataclass(frozen=True)
class Trust:
    """Whether one steering refit is trusted, and why (:meth:`IncrementalRefit.trust`).

    Attributes
    ----------
    trusted
        All three conditions hold: last space reached, converged and stable, χ²/dof ≤ the bound.
    why
        One line: ``"trusted (...)"`` or every reason it is not, ``"; "``-joined.
    n_shells
        The space of the refit.
    chi2_dof
        Its χ²/dof (None without data errors).
    """

    trusted: bool
    why: str
    n_shells: int
    chi2_dof: float | None

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "trusted": self.trusted,
            "why": self.why,
            "n_shells": self.n_shells,
            "chi2_dof": self.chi2_dof,
        }


def _fit_reasons(text: str) -> str:
    """The fit's reasons for not trusting a result, short: not converged after N, unstable by x meV."""
    out = []
    m = re.search(r"to (\d+) shells", text)
    if m:
        out.append(f"its {m.group(1)}-shell stage")
    m = re.search(r"NOT CONVERGED after (\d+) evaluations", text)
    if m:
        out.append(f"not converged after {m.group(1)} evaluations")
    m = re.search(r"lowest mode (-?[\d.]+) meV", text)
    if m and "UNSTABLE" in text:
        out.append(f"unstable, lowest mode {m.group(1)} meV")
    return (
        ": ".join(out[:1] + [", ".join(out[1:])])
        if len(out) > 1 and "stage" in out[0]
        else (", ".join(out) or text.split(".")[0])
    )


def gated_choice(
    trust: Trust | None, steered: Callable[[], int], default: Callable[[], int]
) -> tuple[int, str]:
    """The next orientation under the trust gate: ``steered()`` only after a trusted refit.

    Parameters
    ----------
    trust
        The verdict of the latest refit (None: nothing refitted yet).
    steered
        The design criterion's choice (e.g. the D-optimal candidate); called only when trusted.
    default
        The documented default acquisition (e.g. the uniform scan's next unmeasured angle).

    Returns
    -------
    (index, source)
        The candidate index and ``"steered"`` or ``"default (<why the refit is not trusted>)"``.
    """
    if trust is not None and trust.trusted:
        return int(steered()), "steered"
    return int(default()), f"default ({'no refit yet' if trust is None else trust.why})"


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
    restart_untrusted
        A refit in the last space that is not trusted (e.g. a continuation on a few orientations that
        settled with χ²/dof above the bound, which the warm refits then cannot leave) makes the next refit
        a full continuation again, from the first refit's start (the ML answer), on the data then
        measured. Default False (the benchmarked behaviour, docs/steering.md).
    chi2_max
        Bound on χ²/dof of a trusted refit (:meth:`trust`).
    cutoff
        ``"remeasure"`` (default): every warm refit also refits the previous space and re-measures the
        cutoff systematic; ``"first"``: hold it from the last continuation.
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
        restart_untrusted: bool = False,
        chi2_max: float = CHI2_TRUST_MAX,
        cutoff: Literal["remeasure", "first"] = "remeasure",
        refine_fn=None,
    ):
        from fcinv.reference import load_reference, shell_count

        if cutoff not in ("remeasure", "first"):
            raise SteeringError(f"cutoff = {cutoff!r}; pass 'remeasure' or 'first'.")
        if not chi2_max > 0:
            raise SteeringError(f"chi2_max = {chi2_max}; pass a positive bound on chi2/dof.")
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
        self.restart_untrusted = bool(restart_untrusted)
        #: The first refit's start (the ML answer), for ``restart_untrusted``.
        self.start0 = None
        self.chi2_max = float(chi2_max)
        self.cutoff = cutoff
        self._refine = refine_fn
        self.n_final: int | None = None
        self.final_names: list[str] = []
        self.sigma_cutoff: np.ndarray | None = None
        self.theta_full: dict[str, float] | None = None
        self.first = None
        self.history: list[dict] = []
        #: The previous space of the last continuation (its shells and answer, for the cutoff re-measure).
        self.n_prev: int | None = None
        self.theta_prev: dict[str, float] | None = None
        #: The verdict of the latest refit (None before the first).
        self.verdict: Trust | None = None

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
        shift = result.extra.get("cutoff_shift")
        if shift and result.extra.get("cutoff_shift_from_shells") is not None:
            # the previous stage's answer: θ_prev = θ_last − (its move in the last stage), every name of it
            self.n_prev = int(result.extra["cutoff_shift_from_shells"])
            self.theta_prev = {k: float(self.theta_full[k] - d) for k, d in shift.items()}
        else:
            self.n_prev, self.theta_prev = None, None

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

    # ------------------------------------------------------------------ trust
    def trust(self, result) -> Trust:
        """Whether ``result`` (a refit of this object) is trusted (module docstring), and why not.

        The three conditions: the continuation has reached its last space; the refit converged and is
        dynamically stable (``result.success``; the reasons come from its warnings); χ²/dof ≤
        ``chi2_max``.
        """
        n = int(self.n_final if self.n_final is not None else self.base_shells)
        chi2 = None if result.chi2_dof is None else float(result.chi2_dof)
        why = []
        if n < self.last_shells:
            stop = [w for w in result.extra.get("warnings", []) if w.startswith("CONTINUATION STOPPED")]
            detail = f" ({_fit_reasons(stop[-1])})" if stop else ""
            why.append(f"continuation stopped at {n} of {self.last_shells} shells{detail}")
        if not result.success:
            text = "; ".join(result.extra.get("warnings", [])) or str(result.message)
            why.append(f"refit not trusted by the fit ({_fit_reasons(text)})")
        if chi2 is None or not np.isfinite(chi2):
            why.append("no chi2/dof (the data carry no errors)")
        elif chi2 > self.chi2_max:
            why.append(f"chi2/dof {chi2:.3g} > {self.chi2_max:g}")
        if why:
            return Trust(False, "; ".join(why), n, chi2)
        return Trust(
            True,
            f"trusted ({n} shells, converged, stable, chi2/dof {chi2:.3g} <= {self.chi2_max:g})",
            n,
            chi2,
        )

    # ------------------------------------------------------------------ refits
    def refit(self, folded_spectrum, theta_start=None):
        """The refit of the current data (module docstring); returns a FitResult in the final space.

        Its ``extra["trust"]`` holds the verdict (:meth:`trust`), also kept in :attr:`verdict` and
        :attr:`history`.

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
            self.start0 = theta_start
            res = self._continue(folded_spectrum, self.base_shells, theta_start, self.first_kwargs)
            return self._log(res, "continuation", time.perf_counter() - t)
        assert self.n_final is not None
        if (
            self.restart_untrusted
            and self.n_final == self.last_shells
            and self.verdict is not None
            and not self.verdict.trusted
        ):
            # the last space was reached but its refit is not trusted: continue again from the first start
            res = self._continue(folded_spectrum, self.base_shells, self.start0, self.first_kwargs)
            return self._log(res, "continuation (restart)", time.perf_counter() - t)
        if self.retry and self.n_final < self.last_shells:
            # the continuation stopped short: continue again from the current answer and space
            from fcinv.fitting.continuation import shell_prior
            from fcinv.reference import load_reference

            ref = load_reference(self.material, self.n_final)
            start = dict(self.theta_full or {})
            kw = {**self.first_kwargs, "prior": shell_prior(ref), "material_reference": ref}
            if self.n_final == self.base_shells:
                kw = dict(self.first_kwargs)
            res = self._continue(folded_spectrum, self.n_final, start, kw)
            return self._log(res, "continuation (retry)", time.perf_counter() - t)
        return self._incremental(folded_spectrum, t)

    def _stage(self, n: int, folded_spectrum, start: dict):
        """One warm stage in the space of ``n`` shells (the continuation's prior there)."""
        from fcinv.fitting.continuation import shell_prior
        from fcinv.reference import load_reference

        ref = load_reference(self.material, n)
        model = self.model_for(n)
        names = list(ref.sampled)
        if sorted(model.names) != sorted(names) or (
            n == self.n_final and list(model.names) != self.final_names
        ):
            raise SteeringError(
                f"model_for({n}) varies {len(model.names)} parameters, not the {len(names)} of that space "
                "(the continuation's final space in its order); build it with free=ref.sampled."
            )
        if n == self.base_shells:
            # the model's own space: the prior of the continuation's first stage (refine's default unless
            # first_kwargs names one), so that the cutoff systematic compares the same two fits
            pri = {k: self.first_kwargs[k] for k in ("prior", "material_reference") if k in self.first_kwargs}
        else:
            pri = {"prior": shell_prior(ref), "material_reference": ref}
        return self._refine_fn()(
            model,
            folded_spectrum,
            {k: float(start.get(k, 0.0)) for k in model.names},
            **pri,
            fallback=False,
            max_nfev=self.max_nfev,
            presmooth_meV=None,
            outliers=False,
            stability_mesh=self.stability_mesh,
            ftol=self.tol,
            xtol=self.tol,
        )

    def _incremental(self, folded_spectrum, t0: float):
        assert self.n_final is not None and self.theta_full is not None and self.sigma_cutoff is not None
        res = self._stage(self.n_final, folded_spectrum, self.theta_full)
        stat = np.asarray(res.sigma, float)
        theta_full = dict(res.extra.get("theta_full") or res.theta_dict())
        note = "the cutoff systematic of the last continuation (held)"
        if self.cutoff == "remeasure" and self.n_prev is not None and self.theta_prev is not None:
            prev = self._stage(self.n_prev, folded_spectrum, self.theta_prev)
            converged = not any(w.startswith("NOT CONVERGED") for w in prev.extra.get("warnings", []))
            res.extra["cutoff_stage"] = {
                "shells": self.n_prev,
                "chi2_dof": None if prev.chi2_dof is None else float(prev.chi2_dof),
                "success": bool(prev.success),
                "converged": bool(converged),
            }
            if converged:
                prev_full = dict(prev.extra.get("theta_full") or prev.theta_dict())
                self.theta_prev = prev_full
                self.sigma_cutoff = np.array(
                    [abs(theta_full[k] - prev_full[k]) if k in prev_full else 0.0 for k in self.final_names]
                )
                note = (
                    f"the cutoff systematic re-measured by this refit (|θ({self.n_final} shells) − "
                    f"θ({self.n_prev} shells)|, two warm stages on the same data)"
                )
            else:
                note = (
                    f"the last measured cutoff systematic (this refit's {self.n_prev}-shell stage did not "
                    "converge, so it was not re-measured)"
                )
        res.extra["sigma_statistical"] = dict(zip(res.names, stat.tolist()))
        res.extra["sigma_cutoff"] = dict(zip(self.final_names, self.sigma_cutoff.tolist()))
        res.extra["steering_refit"] = (
            f"warm: one stage in the {self.n_final}-shell space from the last trusted answer, "
            f"max_nfev {self.max_nfev}"
            + (f", and one in {self.n_prev} shells" if "re-measured" in note else "")
        )
        res.extra["uncertainty"] = (
            f"Laplace σ of this refit (data + prior, scaled by chi2/dof) and, in quadrature, {note}"
        )
        res = replace(res, sigma=np.sqrt(stat**2 + self.sigma_cutoff**2))
        if res.success:
            self.theta_full = theta_full
        else:
            log.warning(
                "incremental refit not trusted (%s); the next one starts from the last trusted", res.message
            )
        return self._log(res, "incremental", time.perf_counter() - t0)

    def _log(self, res, kind: str, wall: float):
        v = self.trust(res)
        self.verdict = v
        res.extra["trust"] = v.as_dict()
        self.history.append(
            {
                "kind": kind,
                "wall_s": round(float(wall), 3),
                "chi2_dof": None if res.chi2_dof is None else float(res.chi2_dof),
                "success": bool(res.success),
                "n_shells": v.n_shells,
                "trusted": v.trusted,
                "why": v.why,
            }
        )
        return res

    def sigma_of(self, result, names: Sequence[str]) -> np.ndarray:
        """σ of ``names`` (eV/Å²) in a result of this refit (the first one included: its σ holds c)."""
        by = dict(zip(result.names, np.asarray(result.sigma, float)))
        missing = [n for n in names if n not in by]
        if missing:
            raise SteeringError(f"parameters {missing} are not in the refit's space; name parameters of it.")
        return np.array([by[n] for n in names])
