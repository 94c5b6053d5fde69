"""Stage III as one pipeline: load → fold → predict → refine → single scans → plots.

:class:`Pipeline` ties a trained model (:class:`~fcinv.inference.FCPredictor`) to its
:class:`~fcinv.material.Material`, a forward model and a refinement. Every step is a method
that takes what the previous one returned, so a user can run them one at a time, and
:meth:`Pipeline.run` runs them all. It holds no state that changes between calls.

Refinement is pluggable: ``refine`` is any callable ``(forward_model, spectrum, prediction)``
returning an :class:`~fcinv.result.FCResult` or a :class:`~fcinv.fitting.FitResult` (default:
:func:`fcinv.fitting.refine`, a least-squares fit started from the ML answer); the forward
model is any object with ``names``, ``grid`` and ``frequencies(theta)`` (default: the
material's, about its reference).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fcinv.errors import DataError, GridError
from fcinv.experiment.fold import Corrections, fold_volume
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.experiment.volume import Volume4D
from fcinv.grid import SpectrumGrid
from fcinv.io.provenance import Provenance
from fcinv.io.registry import open_measurement
from fcinv.pipeline.rebin import rebin_spectrum
from fcinv.result import FCResult

log = logging.getLogger(__name__)

#: A refinement: (forward model, folded spectrum, ML prediction) → FCResult or FitResult.
Refine = Callable[[Any, FoldedSpectrum, Any], Any]
#: Folding centerings :func:`fcinv.experiment.fold.fold_volume` supports.
FOLD_CENTERINGS = ("P", "F", "I")


def model_reference(material, names: Sequence[str]):
    """The embedded reference of the parameter space a model's ``names`` live in.

    A model predicts the parameters of some shell count: the shipped 5-shell ``ge-paper`` a subset
    of the material's ``cutoff_shells`` space, an all-parameter model of 11 shells the 47 of that
    space. This is the material's own reference when every name is one of its parameters; else the
    reference of the smallest shell count that holds every name (its farthest named shell's distance
    counted as :func:`fcinv.reference.shell_count` counts: distinct distances).

    Parameters
    ----------
    material
        A :class:`~fcinv.material.Material` with an embedded reference.
    names
        The model's parameter names (``1NN_xx``, ..., ``12NN_yz``).

    Raises
    ------
    DataError
        A name that is no parameter of the material at any shell count up to
        :data:`fcinv.reference.MAX_SHELLS`.
    """
    from fcinv.fcspace import FCSpace
    from fcinv.reference import MAX_SHELLS, load_reference

    ref = material.reference
    want = list(names)
    if set(want) <= set(ref.space.names):
        return ref
    labels = {n.split("_")[0] for n in want}
    try:
        k = max(int(lab.removesuffix("NN")) for lab in labels)
    except ValueError:
        k = MAX_SHELLS
    # k labelled shells lie within the first k distinct distances (two shells may share one)
    space = FCSpace(ref.crystal, n_shells=min(max(k, 1), MAX_SHELLS))
    dist = {sh.name: float(sh.distance) for sh in space.shells}
    missing = sorted(n for n in want if n not in space.names)
    if missing:
        raise DataError(
            f"the model predicts {missing[:3]}{' ...' if len(missing) > 3 else ''}, which are no "
            f"parameters of {material.name} within {MAX_SHELLS} shells. "
            "Pass the model trained for this material."
        )
    far = max(dist[lab] for lab in labels)
    n = len({round(d, 3) for d in dist.values() if d <= far + 1e-6})
    return load_reference(material.name, n)


def one_phonon_corrections(temperature: float = 5.0) -> Corrections:
    """Bose factor at ``temperature`` (K), division by |Q|², multiplication by E: the corrections that bring a
    measured S(Q, E) towards the forward model's convention of unit weight per mode."""
    return Corrections(bose_temperature=temperature, q2=True, energy=True)


def fold_measurement(
    measurement: FoldedSpectrum | Volume4D,
    material,
    grid: SpectrumGrid,
    *,
    q_tolerance: float = 0.05,
    corrections: Corrections | None = None,
    rebin: bool = False,
    source: str = "the input",
    **fold_options: Any,
) -> FoldedSpectrum:
    """A measurement on ``grid``: a 4D volume is folded with the material's point group and centering;
    a folded spectrum is checked against the grid (or rebinned onto it with ``rebin``).
    ``fold_options`` (``qmod_range``, ``min_zone_coverage``) go to :func:`~fcinv.experiment.fold.fold_volume`.

    Raises
    ------
    GridError
        A folded spectrum on another grid without ``rebin`` (or on another path).
    DataError
        A lattice centering folding does not support.
    """
    if isinstance(measurement, FoldedSpectrum):
        if measurement.grid.same_as(grid):
            return measurement
        if not rebin:
            grid.check_same(measurement.grid, what=source)
        return rebin_spectrum(measurement, grid)
    if not isinstance(measurement, Volume4D):
        raise DataError(
            f"cannot fold a {type(measurement).__name__}. Pass a FoldedSpectrum, a Volume4D or a file."
        )
    if material.centering not in FOLD_CENTERINGS:
        raise DataError(
            f"{material.name} has a {material.centering}-centred lattice ({material.crystal.spacegroup[0]}); "
            f"folding supports {', '.join(FOLD_CENTERINGS)} lattices."
        )
    return fold_volume(
        measurement,
        grid,
        material.point_group,
        centering=material.centering,  # type: ignore[arg-type]
        q_tolerance=q_tolerance,
        corrections=corrections,
        **fold_options,
    )


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of a Stage III run.

    Attributes
    ----------
    k_samples
        Latent samples for the ML mean and spread.
    seed
        Seed of the latent samples.
    q_tolerance
        Folding tube radius, r.l.u.
    corrections
        Applied to 4D input before folding (default: :func:`one_phonon_corrections` at 5 K);
        ``None`` folds the raw intensity.
    rebin
        Interpolate a folded spectrum on another binning of the same path onto the model's grid.
    trust
        Calibrate σ (``calibration.json`` beside the model) and attach the data-adequacy verdict
        (:func:`fcinv.trust.trust_report`); an input that constrains nothing is refused.
    refine_shells
        Shell counts the refinement continues into after the model's own parameters
        (:func:`fcinv.fitting.continuation.refine_in_shells`: each stage starts from the last with
        the new parameters at zero); ``None``: the material's ``refine_shells`` (material.json,
        Ge: 8 and 11), ``()``: the model's own space only. An entry ``"4x4x4"`` is a last stage in
        that supercell's Wigner–Seitz space (:meth:`fcinv.fcspace.FCSpace.for_supercell`). Applies
        to physical refinements of 4D input with the default refinement.
    refine_starts
        The starts of the refinement's local fits: ``("ml", "moments")`` (default) fits from the ML
        answer and from the energy-moment start (:func:`fcinv.fitting.moments.moment_start`, a
        global linear estimate from the sum rules, for a physical refinement with the default
        refine) and keeps the trusted fit of lower misfit; ``("ml",)`` is the ML start only (the
        behaviour before the moment start); ``"screen"`` adds the screening start
        (:func:`fcinv.fitting.screen.screen_starts`: a seeded Sobol screen of the training domain over
        the 4 most sensitive parameters, the rest at the ML answer, and short fits from the best 6;
        about a minute on GaAs), e.g. ``("ml", "moments", "screen")``.
    refine_select
        Which stage of a continued refinement is returned
        (:func:`fcinv.fitting.continuation.refine_in_shells`): ``"last"``, ``"stable"`` (the
        data-only space rule) or ``"bic"`` (the trusted stage of lowest BIC,
        :mod:`fcinv.fitting.continuation_select`); ``None``: the material's ``refine_select``
        (material.json), else ``"last"``.
    """

    k_samples: int = 100
    seed: int = 0
    q_tolerance: float = 0.05
    corrections: Corrections | None = field(default_factory=one_phonon_corrections)
    rebin: bool = False
    trust: bool = True
    refine_shells: tuple[int | str, ...] | None = None
    refine_starts: tuple[str, ...] = ("ml", "moments")
    refine_select: str | None = None

    def __post_init__(self) -> None:
        from fcinv.adequacy import check_k_samples

        check_k_samples(self.k_samples)
        from fcinv.fitting.continuation import SELECT_RULES

        if self.refine_select not in (None, *SELECT_RULES):
            raise DataError(
                f"refine_select = {self.refine_select!r}; pass one of {', '.join(SELECT_RULES)} "
                "(or None for the material's refine_select)."
            )
        starts = tuple(self.refine_starts)
        if (
            not starts
            or starts[0] != "ml"
            or any(x not in ("ml", "moments", "screen") for x in starts)
            or len(set(starts)) != len(starts)
        ):
            raise DataError(
                f"refine_starts = {starts!r}; pass 'ml' first, then any of 'moments', 'screen' once each, "
                "e.g. ('ml', 'moments') (the ML start always runs)."
            )
        object.__setattr__(self, "refine_starts", starts)
        if self.refine_shells is not None:
            from fcinv.fcspace.supercell import parse_supercell, supercell_label
            from fcinv.reference import check_shells

            object.__setattr__(
                self,
                "refine_shells",
                tuple(
                    (
                        check_shells(int(n) if isinstance(n, str) else n)
                        if parse_supercell(n) is None
                        else supercell_label(parse_supercell(n))
                    )
                    for n in self.refine_shells
                ),
            )


@dataclass(frozen=True, eq=False)
class InversionRun:
    """Everything one :meth:`Pipeline.run` made.

    Attributes
    ----------
    spectrum
        The folded input on the model's grid.
    prediction
        The raw ML output (:class:`~fcinv.inference.Prediction`: latent, reconstruction, samples).
    result
        The final θ ± σ (refined when a refinement ran; then ``result.parts["ml"]`` is the ML one).
    frequencies
        Shape (n_q, n_modes) meV: the forward model's dispersion at the final θ.
    timings
        Seconds per step.
    """

    spectrum: FoldedSpectrum
    prediction: Any
    result: FCResult
    frequencies: np.ndarray
    timings: dict = field(default_factory=dict)

    @property
    def ml(self) -> FCResult:
        """The ML answer (before any refinement)."""
        return self.result.parts.get("ml", self.result)

    @property
    def refined(self) -> FCResult | None:
        """The refined answer, or None when no refinement ran."""
        return self.result if "ml" in self.result.parts else None


@dataclass(frozen=True, eq=False)
class OrientationScans:
    """ML answers of the single orientations of a run (the paper's one-minute scans).

    Attributes
    ----------
    names
        Parameter names.
    psi
        Shape (n,) degrees: each scan's sample rotation.
    coverage
        Shape (n,): fraction of the grid each scan measured.
    theta
        Shape (n, k) eV/Å²: the ML θ of each scan.
    """

    names: tuple[str, ...]
    psi: np.ndarray
    coverage: np.ndarray
    theta: np.ndarray

    def deviation(self, reference: np.ndarray, scale: np.ndarray) -> np.ndarray:
        """Mean squared deviation of each scan from ``reference`` in units of ``scale``, shape (n,)."""
        return np.mean(((self.theta - np.asarray(reference)) / np.asarray(scale)) ** 2, axis=1)

    def to_dict(self) -> dict:
        return {
            "names": list(self.names),
            "psi_deg": self.psi.tolist(),
            "coverage": self.coverage.tolist(),
            "theta": self.theta.tolist(),
            "unit": "eV/Å^2",
        }


class Pipeline:
    """Stage III for one trained model and its material.

    Parameters
    ----------
    model
        A :class:`~fcinv.inference.FCPredictor`, or what :func:`~fcinv.inference.load_model` takes.
    material
        A :class:`~fcinv.material.Material` or what :func:`~fcinv.material.load_material` takes;
        default: the model's.
    forward_model
        The forward model varying the model's parameters (for the dispersion and the refinement);
        default: ``material.forward_model(free=model.names, grid=model.grid)``.
    refine
        The refinement callable (module docstring); default :func:`fcinv.fitting.refine`.
    config
        :class:`PipelineConfig`.
    device
        Torch device when ``model`` is loaded here.
    """

    def __init__(
        self,
        model,
        material=None,
        *,
        forward_model=None,
        refine: Refine | None = None,
        config: PipelineConfig | None = None,
        device: str | None = "cpu",
    ) -> None:
        from fcinv.inference import FCPredictor, load_model
        from fcinv.material import load_material

        self.predictor = model if isinstance(model, FCPredictor) else load_model(model, device=device)
        mat = material if material is not None else (self.predictor.material or str(model))
        self.material = load_material(mat)
        #: The reference of the model's own parameter space (:func:`model_reference`; None without one).
        self.reference = None
        if self.material.reference_available:
            self.reference = model_reference(self.material, self.predictor.names)
        self.config = config or PipelineConfig()
        fm = forward_model if forward_model is not None else self._default_forward_model()
        if tuple(fm.names) != tuple(self.predictor.names):
            raise GridError(
                f"the model predicts {list(self.predictor.names)} but the forward model varies "
                f"{list(fm.names)}. Build the forward model with free=model.names."
            )
        self.forward_model = fm
        self._refine = refine
        self._forward_given = forward_model is not None
        from fcinv.inference import input_convention

        #: What the model was trained on (intensity model, fold convention, preprocessing).
        self.convention = input_convention(self.predictor)

    def _default_forward_model(self):
        """The material's forward model varying the model's parameters; about the reference with its
        tail convention (:meth:`~fcinv.reference.MaterialReference.tail_for`: zero beyond the cutoff when
        every parameter is free, as the physical models were trained) when the material has one."""
        names, grid = list(self.predictor.names), self.predictor.grid
        if self.reference is not None:
            return self.reference.forward_model(free=names, grid=grid, broadening=self.material.broadening)
        return self.material.forward_model(free=names, grid=grid)

    def __repr__(self) -> str:
        return f"Pipeline({self.predictor.describe()}, {self.material!r})"

    @property
    def grid(self) -> SpectrumGrid:
        """The model's (q, E) grid."""
        return self.predictor.grid

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.predictor.names)

    # ------------------------------------------------------------------- steps
    def load(self, data, **options: Any) -> FoldedSpectrum | Volume4D:
        """Step 1: a path (paths, for NXSPE) → FoldedSpectrum | Volume4D (:func:`fcinv.io.open_measurement`).

        The model's grid and the material's lattice are passed as context (pathSQE output needs
        the grid; NXSPE files take their orientation from the lattice unless ``ub`` is given).
        A FoldedSpectrum or Volume4D is returned unchanged.
        """
        if isinstance(data, (FoldedSpectrum, Volume4D)):
            if options:
                raise DataError(
                    f"options {sorted(options)} apply to files only; the input is already a "
                    f"{type(data).__name__}."
                )
            return data
        options.setdefault("lattice", self.material.lattice)
        return open_measurement(data, grid=self.grid, **options)

    @property
    def corrections(self) -> Corrections | None:
        """The fold corrections this model reads: the configured ones for a one-phonon-fold model,
        none for a model trained on the raw fold."""
        return self.config.corrections if self.convention.fold == "one_phonon" else None

    def fold(
        self, measurement: FoldedSpectrum | Volume4D, *, source: str = "the input", raw: bool = False
    ) -> FoldedSpectrum:
        """Step 2: onto the model's grid (4D data folded with the model's fold convention; ``raw``:
        without any corrections, as the physical refinement fits it)."""
        cfg = self.config
        return fold_measurement(
            measurement,
            self.material,
            self.grid,
            q_tolerance=cfg.q_tolerance,
            corrections=None if raw else self.corrections,
            rebin=cfg.rebin,
            source=source,
        )

    def predict(self, spectrum: FoldedSpectrum):
        """Step 3: the ML answer: ``(prediction, FCResult)``; adequacy: coverage, reconstruction misfit,
        whether θ lies in the training domain."""
        cfg = self.config
        pred = self.predictor.predict(spectrum, k_samples=cfg.k_samples, seed=cfg.seed)
        adequacy: dict[str, Any] = {"coverage": round(float(spectrum.coverage), 4)}
        if self.reference is not None:
            dom = self.reference.domain(list(self.names))
            adequacy["in_domain"] = bool(dom.contains(pred.theta)[0])
        extra: dict[str, Any] = {"model": self.predictor.source}
        if self.reference is not None and self.reference.n_shells != self.material.shells:
            extra["n_shells"] = self.reference.n_shells  # the model's own space (exports, DOS read it)
        res = pred.to_result(material=self.material.name, adequacy=adequacy, extra=extra)
        return pred, res

    def refinement_model(self, measurement=None) -> tuple[Any, str | None]:
        """The forward model the refinement fits with, and a warning when it is not the model's own.

        A physical-intensity model is refined with a :class:`~fcinv.forward.physical.PhysicalModel`
        of the measurement's own coverage (:func:`~fcinv.forward.physical.coverage_from_fold` on the
        4D volume), predicting the raw fold (no one-phonon corrections: :meth:`refine` folds the
        measurement again without them), every model parameter free.
        An already-folded input carries no coverage: the paper forward model is used then, with a
        warning. A paper-intensity model (or a forward model given to the Pipeline) is used as it is.
        """
        if self._forward_given or self.convention.intensity != "physical":
            return self.forward_model, None
        if not isinstance(measurement, Volume4D):
            return self.forward_model, (
                "the input is already folded and carries no coverage, so the refinement used the paper "
                "forward model instead of the physical one this model was trained on; pass the 4D data "
                "for a physical refinement"
            )
        return self.physical_model_for(measurement), None

    def physical_model_for(
        self, measurement: Volume4D, *, ei: float | None = None, temperature: float | None = None
    ):
        """A :class:`~fcinv.forward.physical.PhysicalModel` of ``measurement``'s own coverage, predicting
        its raw fold, every model parameter free, zero beyond the cutoff (what :meth:`refinement_model`
        refines a physical-intensity model with).

        Parameters
        ----------
        measurement
            The 4D volume (its coverage is folded with the material's point group).
        ei
            Incident energy, meV (default: the material's ``ei_meV``, 40 for Ge and Nb).
        temperature
            Sample temperature, K (default: the corrections' Bose temperature, else 5 K).

        Raises
        ------
        fcinv.forward.physical.PhysicalModelError
            Where the physical model cannot describe the crystal or the coverage.
        """
        from fcinv.experiment.fold import FoldPlan
        from fcinv.experiment.instrument import Instrument
        from fcinv.forward.physical import PhysicalModel, coverage_from_fold

        ref = self.reference
        rot = self.material.point_group
        plan = FoldPlan.build(
            measurement.edges[:3],
            self.grid,
            rot,
            centering=self.material.centering,  # type: ignore[arg-type]
            q_tolerance=self.config.q_tolerance,
        )
        cov = coverage_from_fold(plan, measurement, rotations=rot)
        if temperature is None:
            corr = self.corrections
            temperature = corr.bose_temperature if corr is not None and corr.bose_temperature else 5.0
        if ei is None:
            # the material's incident energy (material.json ei_meV: a prepared material's; Ge 40 meV)
            ei = float(self.material.info.get("ei_meV", 40.0))
        return PhysicalModel(
            ref.space,
            self.grid,
            ref.theta_ref,
            free=list(self.names),
            coverage=cov,
            temperature=float(temperature),
            resolution=Instrument(ei=float(ei)),
            # the physical model predicts the raw fold (what it was validated on against Euphonic + fold:
            # docs/fidelity.md); :meth:`refine` fits the raw fold of the 4D measurement
            corrections=None,
        )

    def continuation_shells(self, model) -> tuple[int, ...]:
        """The shell counts a refinement with ``model`` continues into (:class:`PipelineConfig`
        ``refine_shells``, else the material's ``refine_shells``); empty for a non-physical model
        or a material without a Stage I reference (embedded, or a material folder's own
        ensemble.json + reference_fc.hdf5, as ``fcinv prepare`` writes them with ``refine_shells``
        from :mod:`fcinv.prepare.shells`)."""
        from fcinv.forward.physical import PhysicalModel

        if not isinstance(model, PhysicalModel) or not self.material.reference_available:
            if self.config.refine_shells:
                log.warning(
                    "refine_shells %s ignored: only a physical refinement of 4D data with a Stage I "
                    "reference (embedded or the material folder's) continues into more shells (this one "
                    "uses the %s%s)",
                    list(self.config.refine_shells),
                    type(model).__name__,
                    "" if self.material.reference_available else "; the material has no Stage I reference",
                )
            return ()
        shells = self.config.refine_shells
        if shells is None:
            from fcinv.fcspace.supercell import parse_supercell, supercell_label

            raw = self.material.info.get("refine_shells") or ()
            shells = tuple(
                int(n) if parse_supercell(n) is None else supercell_label(parse_supercell(n))
                for n in (raw if isinstance(raw, (list, tuple)) else [raw])
            )
        return tuple(shells)

    def refine(self, spectrum: FoldedSpectrum, prediction, ml: FCResult, measurement=None) -> FCResult:
        """Step 4: the refinement, started from the ML answer; the ML result is kept in ``parts["ml"]``.

        ``measurement`` (the 4D volume ``spectrum`` was folded from) gives a physical model its
        coverage (:meth:`refinement_model`). A refinement that is not trusted comes back as the ML
        answer with ``success=False`` (:func:`fcinv.fitting.refine`)."""
        fn = self._refine
        if fn is None:
            from fcinv.fitting import refine as fn
        model, warning = self.refinement_model(measurement)
        from fcinv.forward.physical import PhysicalModel

        if (
            isinstance(model, PhysicalModel)
            and model.corrections is None
            and isinstance(measurement, Volume4D)
        ):
            # the raw fold of the same measurement, as the physical model predicts it
            spectrum = self.fold(
                measurement, source="the measurement (raw fold for the physical refinement)", raw=True
            )
        shells = self.continuation_shells(model)
        starts, start_info = (
            self.extra_starts(model, spectrum, prediction) if self._refine is None else ([], None)
        )
        first_stage: dict = {}
        if shells and self._refine is None:
            from fcinv.fitting.continuation import refine_in_shells
            from fcinv.pipeline.starts import first_stage_with_starts

            stage_fn = first_stage_with_starts(starts)
            out = refine_in_shells(
                model,
                spectrum,
                prediction,
                shells,
                material=self.material.name,
                refine_fn=stage_fn,
                select=self.config.refine_select,
            )
            first_stage = stage_fn.first_stage
        elif starts:
            out = fn(model, spectrum, prediction, extra_starts=starts)
        else:
            out = fn(model, spectrum, prediction)
        if not isinstance(out, FCResult):
            out = FCResult.from_fit(
                out, material=self.material.name, provenance=Provenance.now(seed=self.config.seed)
            )
        if start_info is not None:
            from fcinv.pipeline.starts import record_start

            out = record_start(out, first_stage, start_info)
        adequacy = dict(out.adequacy)
        adequacy["refinement_model"] = type(model).__name__
        if warning is not None:
            log.warning(warning)
            adequacy["warnings"] = [f"REFINEMENT MODEL: {warning}", *adequacy.get("warnings", [])]
        out = replace(out, adequacy=adequacy)
        return replace(
            out,
            material=out.material or ml.material,
            parts={"ml": ml, **out.parts},
            adequacy={"coverage": ml.adequacy.get("coverage"), **out.adequacy},
        )

    def extra_starts(self, model, spectrum, prediction=None) -> tuple[list, dict | None]:
        """The refinement's starts besides the ML one (:class:`PipelineConfig` ``refine_starts``).

        ``"moments"``: the energy-moment start (:func:`fcinv.pipeline.starts.moment_starts`);
        ``"screen"``: the screening start (:func:`fcinv.pipeline.starts.screen_start`, anchored at
        ``prediction``). Only for a :class:`~fcinv.forward.physical.PhysicalModel`. Returns
        ``([(label, θ, model)], summary)``; a start that fails is logged and left out.
        """
        from fcinv.pipeline.starts import refinement_starts

        return refinement_starts(self.config, self.material, model, spectrum, prediction)

    def attach_trust(self, spectrum: FoldedSpectrum, prediction, result: FCResult) -> FCResult:
        """Step 4b: calibrated σ and the data-adequacy verdict (:func:`fcinv.trust.trust_report`).

        The ML σ (and the refined σ, where the calibration covers how it was refined) become the
        calibrated 68.3 % half-widths, with ``sigma_meaning`` saying so and the 95 % half-widths in
        ``extra["half95"]``; the verdict goes into ``adequacy["verdict"]`` and its warnings into
        ``adequacy["warnings"]``. The refined calibration was fitted on refinements with the paper
        forward model, so a refinement with another model keeps its raw σ, said so in a warning.
        """
        from types import SimpleNamespace

        from fcinv.trust import trust_report

        refined = result if "ml" in result.parts else None
        ml = result.parts.get("ml", result)
        fit_model = refined.adequacy.get("refinement_model") if refined is not None else None
        calibrate_refined = refined is not None and fit_model in (None, "ForwardModel")
        fit = None
        if calibrate_refined:
            fit = SimpleNamespace(
                success=bool(refined.adequacy.get("success", True)),
                theta=refined.theta,
                sigma=refined.sigma,
            )
        rep = trust_report(
            self.predictor, prediction, spectrum, forward_model=self.forward_model, refined=fit
        )
        warnings = rep.warnings + rep.verdict.warnings
        verdict = rep.verdict.as_dict()
        verdict["lines"] = [ln for ln in rep.verdict.table_lines() if not ln.startswith("WARNING:")]

        def with_cal(res: FCResult, cal: dict | None, extra_warnings: list[str]) -> FCResult:
            adequacy = dict(res.adequacy)
            adequacy["verdict"] = verdict
            adequacy["calibrated"] = bool(rep.calibrated and cal is not None)
            adequacy["warnings"] = [*adequacy.get("warnings", []), *warnings, *extra_warnings]
            if not rep.calibrated or cal is None:
                return replace(res, adequacy=adequacy)
            names = list(res.names)
            sigma = np.array([cal[n]["sigma"] for n in names], float)
            half95 = {n: cal[n]["half95"] for n in names}
            extra = dict(res.extra, half95=half95, sigma_raw={n: cal[n]["sigma_raw"] for n in names})
            return replace(
                res, sigma=sigma, sigma_meaning=cal["sigma_meaning"], adequacy=adequacy, extra=extra
            )

        ml_out = with_cal(ml, rep.ml, [])
        if refined is None:
            return ml_out
        extra_w = []
        if not calibrate_refined:
            what = (
                "the fit's Laplace sigma and the cutoff systematic of the shell continuation"
                if "sigma_cutoff" in refined.extra
                else "the fit's raw (Laplace) sigma"
            )
            extra_w.append(
                f"the refined sigma is {what}, not calibrated: the calibration was fitted on "
                f"refinements with the paper forward model, not the {fit_model}"
            )
        ref_out = with_cal(refined, rep.refined if calibrate_refined else None, extra_w)
        return replace(ref_out, parts={**ref_out.parts, "ml": ml_out})

    def continued_reference(self, result: FCResult):
        """The reference of the space a refinement continued into (``result.extra["n_shells"]``), or None
        when ``result`` lies in the model's own parameters."""
        n_shells = result.extra.get("n_shells")
        if not n_shells or not self.material.reference_available:
            return None
        if all(n in self.forward_model.names for n in result.names):
            return None
        from fcinv.reference import load_reference

        return load_reference(self.material.name, int(n_shells), supercell=result.extra.get("supercell"))

    def frequencies(self, result: FCResult) -> np.ndarray:
        """The forward model's dispersion at the result's θ, shape (n_q, n_modes) meV."""
        d = result.theta_dict()
        ref_n = self.continued_reference(result)
        if ref_n is not None:
            # a refinement continued into more shells: its own space, zero beyond its cutoff
            from fcinv.fitting.dispersion_fit import model_energies

            space = ref_n.space
            full = np.array([d.get(n, 0.0) for n in space.names])
            return np.asarray(model_energies(space, full, self.grid.q_rlu), float)
        missing = [n for n in self.forward_model.names if n not in d]
        if missing:
            raise DataError(
                f"the result lacks {missing}, which the forward model varies. Pass a result of this model."
            )
        return np.asarray(
            self.forward_model.frequencies(np.array([d[n] for n in self.forward_model.names]))[0]
        )

    # --------------------------------------------------------------------- run
    def run(self, data, *, refine: bool = False, **options: Any) -> InversionRun:
        """Load → fold → predict (→ refine): everything one inversion makes.

        Parameters
        ----------
        data
            A path (several for NXSPE), a FoldedSpectrum or a Volume4D.
        refine
            Run the refinement after the ML step.
        **options
            File options (:meth:`load`).
        """
        timings: dict[str, float] = {}
        t = time.perf_counter()
        measurement = self.load(data, **options)
        timings["load"] = time.perf_counter() - t
        t = time.perf_counter()
        source = f"'{Path(data).name}'" if isinstance(data, (str, Path)) else "the input"
        fs = self.fold(measurement, source=source)
        timings["fold"] = time.perf_counter() - t
        t = time.perf_counter()
        if self.config.trust:
            from fcinv.adequacy import check_spectrum

            check_spectrum(fs)
        pred, result = self.predict(fs)
        timings["ml"] = time.perf_counter() - t
        if refine:
            t = time.perf_counter()
            result = self.refine(fs, pred, result, measurement=measurement)
            timings["refine"] = time.perf_counter() - t
        if self.config.trust:
            t = time.perf_counter()
            result = self.attach_trust(fs, pred, result)
            timings["trust"] = time.perf_counter() - t
        extra = dict(result.extra, timings_s={k: round(v, 4) for k, v in timings.items()})
        if isinstance(data, (str, Path)):
            extra["data"] = str(data)
        result = replace(result, extra=extra)
        return InversionRun(fs, pred, result, self.frequencies(result), timings)

    def invert(self, data, *, refine: bool = False, **options: Any) -> FCResult:
        """:meth:`run` and return only the θ ± σ."""
        return self.run(data, refine=refine, **options).result

    def scans(
        self, run, *, orientations: Sequence[int] | None = None, progress: bool = False
    ) -> OrientationScans:
        """Step 5: the ML answer of each single orientation of a simulated run (a path or a SimulatedRun)."""
        from fcinv.experiment.simulate import SimulatedRun, fold_orientations

        if not isinstance(run, SimulatedRun):
            from fcinv.io.registry import sniff

            if sniff(run) != "run":
                raise DataError(
                    f"'{run}' is not a simulated run (fcinv simulate-experiment output); single-orientation "
                    "scans need the per-orientation data."
                )
            run = SimulatedRun.read(run)
        which = list(range(run.n_orientations)) if orientations is None else [int(j) for j in orientations]
        scans = fold_orientations(
            run,
            self.grid,
            self.material.point_group,
            orientations=which,
            centering=self.material.centering,
            q_tolerance=self.config.q_tolerance,
            corrections=self.corrections,
            progress=progress,
        )
        cfg = self.config
        theta = np.array(
            [self.predictor.predict(s, k_samples=cfg.k_samples, seed=cfg.seed).theta for s in scans]
        )
        return OrientationScans(
            self.names, np.asarray(run.psi)[which], np.array([s.coverage for s in scans]), theta
        )
