"""The advisor behind ``fcinv advise``: candidates, what was measured, the answer → the next orientations.

:class:`Advisor` linearises the physical model (raw intensities, every parameter of the material's
space, path sampling) on every candidate orientation's coverage at the current answer, keeps the
posterior (prior + the information of every measured orientation, :mod:`fcinv.steering.design`),
and gives the ranked table, the forecast of σ against beam time (greedy and uniform) and the stop
rule. Measured orientations come as volumes (their normalisation carries rate × time, as the
simulator and reduced data write it), so their information needs no count rate; candidates need
``count_rate`` × ``counting_time``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from fcinv.steering.design import (
    Forecast,
    Posterior,
    Ranking,
    SteeringError,
    forecast,
    gains,
    linearise,
    stop_advice,
)

log = logging.getLogger(__name__)


class Advisor:
    """Rank candidate orientations for a material (module docstring).

    Parameters
    ----------
    ref
        The material's :class:`fcinv.reference.MaterialReference` of the space to steer in: the model's
        own (``load_reference(material)``) or a continued one (``load_reference(material, n_shells)``,
        e.g. the 11-shell space the Ge refinement ends in). In a continued space the prior is the
        refinement's last-stage prior (:func:`fcinv.fitting.continuation.shell_prior`: the training
        domain at that shell count with the far-shell σ floor), in the model's own the training domain.
    psi
        Candidate goniometer angles, degrees.
    counting_time
        Minutes per orientation.
    count_rate
        Counts per minute in a 4D bin of unit exposure at unit intensity (the simulator's ``count_rate``).
    theta, sigma
        The current answer by name (eV/Å²); names not given take the reference θ and the training-domain σ.
    names
        Parameters the criterion is on (default FC0–FC3: the first four of the model's own space's
        ranking, looked up by name in ``ref``'s space).
    scale, background
        s (counts per unit exposure per mbarn/meV) and b; default: s = 1/mean one-phonon intensity of the
        model over the candidates (the simulator's convention), b = 0.1 (the simulator's default).
    ei, u, v, temperature
        The experiment.
    criterion
        ``"D"`` or ``"A"`` (:mod:`fcinv.steering.design`).
    """

    def __init__(
        self,
        ref,
        psi: Sequence[float],
        *,
        counting_time: float,
        count_rate: float = 1.0,
        theta: dict | None = None,
        sigma: dict | None = None,
        names: Sequence[str] | None = None,
        scale: float | None = None,
        background: float = 0.1,
        ei: float = 40.0,
        u=(1.0, 0.0, 0.0),
        v=(0.0, 1.0, 0.0),
        temperature: float = 5.0,
        criterion: str = "D",
        grid=None,
        dw: str = "theta",
    ):
        from fcinv.crystal import default_grid
        from fcinv.experiment.instrument import Instrument
        from fcinv.fitting.priors import build_prior
        from fcinv.forward.physical import PhysicalModel
        from fcinv.steering.candidates import candidate_coverages

        if not (np.isfinite(counting_time) and counting_time > 0):
            raise SteeringError(f"counting time {counting_time} min; pass a positive time per orientation.")
        if not (np.isfinite(count_rate) and count_rate > 0):
            raise SteeringError(
                f"count rate {count_rate}; pass a positive rate (counts per minute per unit exposure)."
            )
        if criterion not in ("D", "A"):
            raise SteeringError(
                f"criterion = {criterion!r}; pass 'D' (expected information gain) or 'A' (mean variance "
                "reduction)."
            )
        from fcinv.reference import load_reference, shell_count

        self.ref = ref
        self.all_names = list(ref.sampled)
        own = load_reference(ref.material)
        self.n_shells = shell_count(ref.space)
        self.continued = self.n_shells > shell_count(own.space)
        default = [n for n in list(own.sampled)[:4] if n in self.all_names] or self.all_names[:4]
        self.names = list(names) if names else default
        bad = [n for n in self.names + list(theta or {}) + list(sigma or {}) if n not in self.all_names]
        if bad:
            raise SteeringError(
                f"parameters {bad} are not {ref.material} parameters ({self.all_names}). Name parameters of "
                "the material."
            )
        self.psi = np.asarray(list(psi), float)
        self.counting_time = float(counting_time)
        self.count_rate = float(count_rate)
        self.criterion = criterion
        self.grid = grid or default_grid(ref.crystal)
        self.ei, self.u, self.v = float(ei), tuple(u), tuple(v)
        th = ref.theta_ref[ref.space.index(self.all_names)].copy()
        for n, x in (theta or {}).items():
            th[self.all_names.index(n)] = float(x)
        if self.continued:
            from fcinv.fitting.continuation import shell_prior

            sp = shell_prior(ref)
            sg = np.array([sp.sigma[list(sp.names).index(n)] for n in self.all_names])
        else:
            sg = build_prior(self.all_names, th, spec="domain", ref=ref).sigma.copy()
        for n, x in (sigma or {}).items():
            if np.isfinite(x) and x > 0:
                sg[self.all_names.index(n)] = min(float(x), sg[self.all_names.index(n)])
        self.instrument = Instrument(ei=self.ei)
        covs = candidate_coverages(
            ref.crystal, self.grid, self.psi, ei=self.ei, u=self.u, v=self.v, instrument=self.instrument
        )
        self.base = PhysicalModel(
            ref.space,
            self.grid,
            ref.theta_ref,
            free=self.all_names,
            coverage=covs[0],
            temperature=temperature,
            resolution=self.instrument,
            dw=dw,
            sampling="path",
        )
        from fcinv.steering.combine import with_coverage

        self.infos = [
            linearise(self.base if i == 0 else with_coverage(self.base, c), th, psi=float(p))
            for i, (c, p) in enumerate(zip(covs, self.psi))
        ]
        if scale is None:
            vals = np.concatenate(
                [c.intensity[self.grid.energy[c.pixels % self.grid.n_e] >= 2.0] for c in self.infos]
            )
            mean = float(np.mean(vals)) if len(vals) else 1.0
            scale = 1.0 / mean if mean > 0 else 1.0
        self.post = Posterior.from_prior(
            self.all_names, th, sg, scale=float(scale), background=float(background)
        )
        self._plan = None
        self._bin_exposure = np.array([float(c.meta.get("bin_exposure", 0.0)) for c in covs])
        self.measured: list[str] = []

    @property
    def rate_time(self) -> float:
        return self.count_rate * self.counting_time

    def candidate_fishers(self) -> np.ndarray:
        return np.stack(
            [
                c.fisher(scale=self.post.scale, background=self.post.background, rate_time=self.rate_time)
                for c in self.infos
            ]
        )

    def add_measured_psi(self, psi: float, n: int = 1) -> None:
        """A measured orientation among the candidates (by angle), at the candidates' rate × time."""
        j = int(np.argmin(np.abs(self.psi - psi)))
        if abs(self.psi[j] - psi) > 1e-6:
            raise SteeringError(
                f"measured ψ = {psi:g}° is not a candidate ({self.psi.min():g}..{self.psi.max():g}); add it "
                "as a volume instead."
            )
        for _ in range(n):
            self.post.add(self.infos[j], rate_time=self.rate_time)
        self.measured.append(f"psi={psi:g}")

    def add_measured_volume(self, volume, name: str = "") -> None:
        """A measured orientation's volume: its coverage (norm = rate × time × exposure) and information.

        A volume whose ``meta["psi_deg"]`` is one of the candidates (same Ei and scattering plane)
        reuses that candidate's linearisation, counted at rate × time = Σ norm / Σ candidate exposure
        (milliseconds); any other volume gets its own coverage and linearisation (about a second).
        """
        from fcinv.experiment.fold import FoldPlan
        from fcinv.forward.physical import coverage_from_fold
        from fcinv.steering.combine import with_coverage

        psi = float(volume.meta.get("psi_deg", np.nan))
        hit = np.flatnonzero(np.abs(self.psi - psi) < 1e-6) if np.isfinite(psi) else np.zeros(0, int)
        if len(hit) and volume.norm is not None and self._bin_exposure[int(hit[0])] > 0:
            j = int(hit[0])
            self.post.add(self.infos[j], rate_time=float(np.sum(volume.norm)) / self._bin_exposure[j])
            self.measured.append(name or f"psi={psi:g}")
            return
        cr = self.ref.crystal
        if self._plan is None or not self._plan.matches(volume):
            centering = {"fcc": "F", "bcc": "I"}.get(cr.lattice_type, "P")
            self._plan = FoldPlan.build(
                volume.edges[:3], self.grid, cr.point_group_rlu, centering=centering, q_tolerance=0.05
            )
        cov = coverage_from_fold(self._plan, volume, rotations=cr.point_group_rlu, sampling="path")
        info = linearise(
            with_coverage(self.base, cov), self.post.theta, psi=float(volume.meta.get("psi_deg", np.nan))
        )
        self.post.add(info, rate_time=1.0)
        self.measured.append(name or str(volume.meta.get("source", "volume")))

    def ranking(self) -> Ranking:
        F = self.candidate_fishers()
        g = gains(self.post, F, names=self.names, criterion=self.criterion)  # type: ignore[arg-type]
        sel = self.post.index(self.names)
        Cn = np.linalg.inv(self.post.precision[None] + F)
        sig_after = np.sqrt(np.diagonal(Cn, axis1=1, axis2=2)[:, sel])
        order = np.argsort(-g, kind="stable")
        return Ranking(
            psi=self.psi[order],
            gain=g[order],
            sigma_after=sig_after[order],
            sigma_now=self.post.sigma(self.names),
            names=tuple(self.names),
            criterion=self.criterion,
            counting_time=self.counting_time,
        )

    def forecasts(self, hours: float = 2.0) -> tuple[Forecast, Forecast]:
        """(greedy adaptive, uniform in candidate order) forecasts over ``hours`` of beam time."""
        n = max(1, int(round(60.0 * hours / self.counting_time)))
        kw = dict(rate_time=self.rate_time, minutes_per=self.counting_time, n_steps=n, names=self.names)
        ad = forecast(self.post, self.infos, criterion=self.criterion, **kw)  # type: ignore[arg-type]
        un = forecast(self.post, self.infos, order=list(range(len(self.infos))), **kw)  # type: ignore[arg-type]
        un.strategy = "uniform (candidates in order)"
        return ad, un

    def target_abs(self, sigma_target: float | None, relative: bool = True) -> np.ndarray | None:
        if sigma_target is None:
            return None
        if not (np.isfinite(sigma_target) and sigma_target > 0):
            raise SteeringError(
                f"σ target {sigma_target}; pass a positive value (a fraction of |θ| with --relative, else "
                "eV/Å²)."
            )
        th = self.post.theta[self.post.index(self.names)]
        return sigma_target * np.abs(th) if relative else np.full(len(self.names), float(sigma_target))

    def advice(
        self,
        *,
        sigma_target: float | None = None,
        relative: bool = True,
        min_gain_per_hour: float = 0.05,
        n_rows: int = 10,
        hours: float = 2.0,
    ) -> dict:
        """Ranked table, forecast and stop rule as one JSON-able dict."""
        r = self.ranking()
        ad, un = self.forecasts(hours)
        tgt = self.target_abs(sigma_target, relative)
        stop = stop_advice(self.post, ad, target=tgt, min_gain_per_hour=min_gain_per_hour)
        out = {
            "criterion": {
                "D": "D-optimal: expected information gain on the named parameters (nats)",
                "A": "A-optimal: mean relative variance reduction on the named parameters",
            }[self.criterion],
            "names": list(self.names),
            "space": {"n_shells": int(self.n_shells), "n_params": len(self.all_names)},
            "counting_time_min": self.counting_time,
            "measured": list(self.measured),
            "next": r.rows(n_rows),
            "stop": stop,
            "forecast": {
                "minutes": ad.minutes.tolist(),
                "adaptive_sigma": ad.sigma.tolist(),
                "uniform_sigma": un.sigma.tolist(),
                "adaptive_psi": ad.psi.tolist(),
            },
        }
        if tgt is not None:
            out["forecast"]["adaptive_minutes_to_target"] = ad.time_to(tgt)
            out["forecast"]["uniform_minutes_to_target"] = un.time_to(tgt)
        return out

    def __call__(self, volume, theta_by_name: dict, sigma_by_name: dict) -> dict:
        """The watch loop's hook: add the new volume and return the advice (linearised where it was built)."""
        self.add_measured_volume(volume, name=str(volume.meta.get("source", "")))
        return self.advice(n_rows=5, hours=1.0)


def plot_forecast(path, adv_dict: dict, *, target: np.ndarray | None = None, title: str = ""):
    """σ of the named parameters against beam time, greedy vs uniform (from :meth:`Advisor.advice`)."""
    from fcinv.plotting import new_figure, save_figure

    names = adv_dict["names"]
    f = adv_dict["forecast"]
    m = np.asarray(f["minutes"])
    a, u = np.asarray(f["adaptive_sigma"]), np.asarray(f["uniform_sigma"])
    fig, axes = new_figure(1, len(names), figsize=(3.2 * len(names), 3.0), dpi=120)
    axes = np.atleast_1d(axes)
    for i, ax in enumerate(axes):
        ax.plot(m, a[:, i], color="tab:red", label="adaptive (advise)")
        ax.plot(m, u[:, i], color="tab:blue", label="uniform scan")
        if target is not None:
            ax.axhline(float(target[i]), color="k", ls="--", lw=0.8, label="target")
        ax.set_yscale("log")
        ax.set_xlabel("added beam time (min)")
        ax.set_title(names[i], fontsize=9)
    axes[0].set_ylabel("predicted σ (eV/Å²)")
    axes[0].legend(fontsize=7)
    return save_figure(fig, path, title=title or "predicted σ against beam time")
