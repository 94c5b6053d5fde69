"""Refinement continued into larger parameter spaces: the ML model's shells first, then more.

The shipped ML models predict the parameters of a few shells (Ge: the 16 of 5 shells), with
zero force constants beyond them. A real crystal is not that short-ranged: on the DFT Ge set
the 5-shell projection alone is 0.13 THz from the full set's dispersion, 9 shells 0.07, 11
shells 0.01 THz (``docs/fidelity.md``). A fit that jumps from the ML answer straight into
a 31- or 47-parameter space starts far from any consistent answer (the far shells at the
training-domain centre on top of 5-shell effective values) and goes unstable.

:func:`refine_in_shells` therefore refines in stages. Stage 0 is :func:`~fcinv.fitting.refine`
in the model's own space, from the ML answer. Each next stage is a forward model of the same
kind and settings (coverage, temperature, resolution, corrections; or broadening for the
paper model) in the space of ``n`` shells, every parameter free, started from the previous
stage's answer with the new parameters at zero, which is exactly the zero tail the previous
stage assumed, so every stage starts from the previous stage's spectrum and can only lower
the misfit. The prior of each stage is the training domain at that shell count (bounds from
every stable ensemble member's projection, :mod:`fcinv.reference`), with a floor on σ for
the weak far shells (:data:`FAR_SHELL_SIGMA_FLOOR`). A stage that is not trusted (did not
converge, unstable on the full-zone mesh) ends the continuation: the last trusted stage is
returned, with a warning that names the stage that failed.

Shell counts run first, in increasing order; supercell stages (``"4x4x4"``) follow in order of
size, each started from the largest fitted space it holds (a supercell smaller than a shell stage
starts from a smaller one instead of dropping parameters; a detour through a small space led the
larger fits of the DFT Ge data into another minimum, ``docs/fidelity.md``).

σ of a continued result: the returned stage's Laplace σ and, in quadrature, the *cutoff
systematic*, each parameter's move between that stage and its neighbour in size (the next stage
when one was fitted, else the previous: |θ_N − θ_prev| for the last). The Laplace σ assumes the
cutoff is right; the move says how much the answer still depends on it. Measured on the DFT Ge
set (5 K, 120 orientations, 9 → 11 shells, with the earlier 1/error weights): moves of 0.017,
0.008, 0.035, 0.027 eV/Å² on FC0–FC3 against errors of 0.016, 0.012, 0.049, 0.024 from the
projection (Laplace σ 0.011, 0.007, 0.004, 0.002).

Which stage is returned: the last (default), or one chosen from the fits alone
(``select="stable"`` or ``"bic"``, :mod:`fcinv.fitting.continuation_select`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from fcinv.errors import DataError
from fcinv.fitting._base import UNCERTAINTY_NOTE

log = logging.getLogger(__name__)

#: The prior σ of every parameter is at least this fraction of the largest |θ| of the
#: reference (Ge: 0.02 × 1.41 = 0.028 eV/Å²). The force-field members have finite receptive
#: fields (5–6 Å), so their spread in a shell beyond that says little about the crystal: on
#: the DFT Ge set, 7 of the 31 parameters of 8 shells lie outside the members' widened box.
FAR_SHELL_SIGMA_FLOOR = 0.02
#: The stage rules of :func:`refine_in_shells` (``select=``).
SELECT_RULES = ("last", "stable", "bic")


def model_in_space(model, space, theta_ref, free=None):
    """A forward model of ``model``'s kind and settings over ``space``, every parameter free
    (in the order of ``free`` when given, e.g. the reference's ranking).

    Parameters
    ----------
    model
        A :class:`~fcinv.forward.physical.PhysicalModel` or :class:`~fcinv.forward.ForwardModel`.
    space
        The new :class:`~fcinv.fcspace.FCSpace` (same crystal).
    theta_ref
        Shape (space.n_params,): the reference θ of the new space (its ``theta0``).
    free
        Every name of ``space``, in the order the model should vary them (default: space order).
    """
    from fcinv.forward import ForwardModel
    from fcinv.forward.physical import PhysicalModel

    names = list(free) if free is not None else list(space.names)
    if sorted(names) != sorted(space.names):
        raise DataError(
            f"a continued refinement frees every parameter of its space; {len(names)} names given for "
            f"{space.n_params}. Pass free=None or every name."
        )
    if isinstance(model, PhysicalModel):
        return model.rebuilt(space, theta_ref, free=names)
    if isinstance(model, ForwardModel):
        if model.reference is not None:
            raise DataError(
                "a refinement continued into more shells needs a zero-tail forward model (no reference "
                "tail); build it with tail='zero'."
            )
        return ForwardModel(
            space, model.grid, theta_ref, free=names, broadening=model.broadening, mesh=model.mesh
        )
    raise DataError(
        f"cannot continue a refinement with a {type(model).__name__}; pass a PhysicalModel or ForwardModel."
    )


def shell_prior(ref, *, floor: float = FAR_SHELL_SIGMA_FLOOR):
    """The training-domain prior of ``ref``'s space with σ ≥ ``floor`` × max |θ_ref|."""
    from fcinv.fitting.priors import Prior

    names = list(ref.space.names)
    dom = ref.domain(names)
    p = Prior.from_domain(dom)
    s_min = float(floor) * float(np.abs(ref.theta_ref).max())
    return Prior(
        p.names,
        p.mean,
        np.maximum(p.sigma, s_min),
        f"{p.source}; sigma >= {floor:g} x max|theta_ref| = {s_min:.4f} eV/Å^2 (far-shell floor)",
    )


def refine_in_shells(
    model,
    folded_spectrum,
    theta_start,
    shells: Sequence[int | str],
    *,
    material: str | None = None,
    floor: float = FAR_SHELL_SIGMA_FLOOR,
    refine_fn=None,
    select: str | None = None,
    **kwargs,
):
    """Refine in the model's space, then continue in the spaces of ``shells`` (module docstring).

    Parameters
    ----------
    model
        The forward model of the first stage (the ML model's parameters free).
    folded_spectrum
        The measured I(q, E) (FoldedSpectrum or array, NaN = unmeasured).
    theta_start
        The ML estimate (as :func:`~fcinv.fitting.refine` takes).
    shells
        The spaces of the next stages: shell counts (``11``) and supercells (``"4x4x4"``: every orbit
        inside or on that supercell's Wigner–Seitz cell, :meth:`~fcinv.fcspace.FCSpace.for_supercell`,
        the form of a phonopy set on it). Shell counts are fitted first (increasing; counts not above
        the model's own are skipped), then the supercells in order of size, each stage started from
        the largest fitted space it holds: ``[9, 11, "3x3x3", "4x4x4", "5x5x5"]`` runs 5 → 9 → 11,
        5 → 3×3×3, 11 → 4×4×4, 4×4×4 → 5×5×5 (on the DFT Ge data a detour 5 → 3×3×3 → 9 → … ends
        in another minimum, χ²/dof 1.07 against 0.99 at 4×4×4, ``docs/fidelity.md``).
    material
        Material name of the embedded reference (default: the model's crystal).
    floor
        Far-shell σ floor of the stages' priors (:func:`shell_prior`).
    refine_fn
        The refinement callable (default :func:`~fcinv.fitting.refine`).
    select
        Which trusted stage is returned: ``"last"``, or ``"stable"``, the data-only rule of
        :func:`fcinv.fitting.continuation_select.choose_stage` (the first stage whose successor
        neither lowers the misfit beyond chance nor moves a parameter beyond σ), or ``"bic"``, the
        stage of lowest BIC (:func:`~fcinv.fitting.continuation_select.choose_stage_bic`; proposed
        after the DFT Ge runs, ``docs/fidelity.md``). ``None``: the material's ``refine_select``
        (material.json), else ``"last"``.
    **kwargs
        Passed to every stage's refinement (``max_nfev``, ``weighting`` ...). ``prior`` and
        ``material_reference`` apply to the first stage only.

    Returns
    -------
    FitResult
        The chosen stage; ``extra["stages"]`` lists every stage (shells, parameters, χ²/dof,
        deviance, θ and Laplace σ by name, success, wall time, ``selected``), ``extra["theta_full"]``
        holds θ over its space, ``extra["cutoff_shift"]`` how far each parameter moved between the
        chosen stage and its neighbour (the next stage when one was fitted, else the previous: a
        measure of how much the answer still depends on the space), and with ``select="stable"``
        ``extra["selection"]`` the rule and every step it tested.
    """
    from fcinv.fitting.continuation_select import BIC_RULE, SELECT_RULE, choose_stage, choose_stage_bic
    from fcinv.reference import shell_count

    if refine_fn is None:
        from fcinv.fitting import refine as refine_fn
    name = material or model.space.crystal.name
    select = _select_setting(name, select)
    n0 = shell_count(model.space)
    todo = _ordered_stages(name, n0, shells)
    t = time.perf_counter()
    res = refine_fn(model, folded_spectrum, theta_start, **kwargs)
    stages = [_stage(n0, model, res, time.perf_counter() - t)]
    start0 = dict(zip(res.names, np.asarray(res.theta_start, float).tolist()))
    res.extra["stage0_theta_start"] = start0
    if not res.success or not todo:
        res.extra["stages"] = stages
        res.extra["n_shells"] = n0
        return res
    later = {k: v for k, v in kwargs.items() if k not in ("prior", "material_reference", "candidates")}
    trusted = [(n0, model, res, 0)]  # (space label, model, fit, index in stages), in fitting order
    stopped: list[str] = []
    for n, ref in todo:
        # start from the largest trusted space this one holds (a supercell after 11 shells continues from
        # 11, not from a smaller 3x3x3 fitted before it: a detour through a small space can lead the
        # larger fits into another minimum), else from the last
        held = [t for t in trusted if set(t[1].space.names) <= set(ref.space.names)]
        src = max(held, key=lambda t: len(t[1].space.names)) if held else trusted[-1]
        prev = _theta_full(src[2])
        start = {k: float(prev.get(k, 0.0)) for k in ref.space.names}
        dropped = [k for k in prev if k not in ref.space.names]
        m = model_in_space(src[1], ref.space, ref.theta_ref, free=ref.sampled)
        t = time.perf_counter()
        nxt = refine_fn(
            m,
            folded_spectrum,
            start,
            prior=shell_prior(ref, floor=floor),
            material_reference=ref,
            fallback=False,
            **later,
        )
        stages.append(_stage(n, m, nxt, time.perf_counter() - t))
        stages[-1]["from"] = src[0]
        if dropped:
            stages[-1]["dropped"] = dropped
            log.warning("the %s space does not hold %d parameters of the last stage", n, len(dropped))
        if not nxt.success:
            why = "; ".join(w for w in nxt.extra.get("warnings", []) if w.startswith(("NOT", "DYN")))
            msg = (
                f"the continuation to {n} shells ({ref.space.n_params} parameters) was not trusted "
                f"({why or nxt.message}); the {stages[trusted[-1][3]]['shells']}-shell refinement is returned"
            )
            log.warning(msg)
            stopped.append(f"CONTINUATION STOPPED: {msg}")
            break
        trusted.append((n, m, nxt, len(stages) - 1))
    last = trusted[-1]
    trusted.sort(key=lambda t: len(t[1].space.names))  # the rule and the systematic compare spaces by size
    k, steps = trusted.index(last), []
    if select == "stable" and len(trusted) > 1:
        k, steps = choose_stage([stages[i] for *_, i in trusted])
    elif select == "bic" and len(trusted) > 1:
        k, scores = choose_stage_bic([stages[i] for *_, i in trusted])
        steps = [{"shells": t[0], "bic": v} for t, v in zip(trusted, scores)]
    n_best, best_model, best, i_best = trusted[k]
    # the neighbour whose difference is the cutoff systematic: the next stage if fitted, else the previous
    other = trusted[k + 1] if k + 1 < len(trusted) else (trusted[k - 1] if k > 0 else None)
    if other is not None:
        mine, theirs = _theta_full(best), _theta_full(other[2])
        sign = 1.0 if k + 1 < len(trusted) else -1.0  # always the larger space's θ minus the smaller's
        best.extra["cutoff_shift"] = {q: sign * float(theirs[q] - mine[q]) for q in mine if q in theirs}
        best.extra["cutoff_shift_from_shells"] = other[0]
        # the cutoff systematic: how far each parameter moved to or from the neighbour, in quadrature
        sys_ = np.array([abs(best.extra["cutoff_shift"].get(q, 0.0)) for q in best.names])
        best.extra["sigma_statistical"] = dict(zip(best.names, np.asarray(best.sigma, float).tolist()))
        best.extra["sigma_cutoff"] = dict(zip(best.names, sys_.tolist()))
        best = replace(best, sigma=np.sqrt(np.asarray(best.sigma, float) ** 2 + sys_**2))
        pair = f"{n_best} -> {other[0]}" if k + 1 < len(trusted) else f"{other[0]} -> {n_best}"
        best.extra["uncertainty"] = UNCERTAINTY_NOTE + (
            "; plus, in quadrature, the cutoff systematic: each parameter's move between the chosen stage "
            f"of the shell continuation and its neighbour ({pair} shells)"
        )
    best.extra.setdefault("warnings", []).extend(stopped)
    for j, st in enumerate(stages):
        st["selected"] = j == i_best
    best.extra["stages"] = stages
    if select == "bic":
        best.extra["selection"] = {"rule": BIC_RULE, "chosen": n_best, "scores": steps}
    if select == "stable":
        best.extra["selection"] = {"rule": SELECT_RULE, "chosen": n_best, "steps": steps}
        if k == len(trusted) - 1 and len(trusted) > 1:
            best.extra.setdefault("warnings", []).append(
                f"NOT SETTLED: no stage of the continuation passed the space rule ({SELECT_RULE}); the "
                f"largest space ({n_best}) is returned and its answer may still move with a larger one"
            )
    if isinstance(n_best, str):
        # a supercell stage: its space is load_reference(material, supercell=...)
        best.extra["supercell"] = n_best
        best.extra["n_shells"] = shell_count(best_model.space)
    else:
        best.extra["n_shells"] = n_best
    best.extra["stage0_theta_start"] = start0
    best.extra["continued_from_shells"] = n0
    return best


def _select_setting(material: str, select: str | None) -> str:
    if select is None:
        try:
            from fcinv.crystal import material_info

            select = material_info(material).get("refine_select") or "last"
        except Exception:  # noqa: BLE001 - a material without a material.json: the default
            select = "last"
    if select not in SELECT_RULES:
        raise DataError(f"select={select!r} is not a stage rule; pass {', '.join(map(repr, SELECT_RULES))}.")
    return select


def _ordered_stages(material: str, n0: int, shells) -> list:
    """(label, reference) of every stage: shell counts above the model's own (increasing), then the
    supercells in order of parameter count."""
    from fcinv.fcspace.supercell import parse_supercell, supercell_label
    from fcinv.reference import load_reference

    counts, cells = set(), {}
    for spec in shells:
        m = parse_supercell(spec)
        if m is None:
            if int(spec) > n0:
                counts.add(int(spec))
        elif supercell_label(m) not in cells:
            cells[supercell_label(m)] = load_reference(material, supercell=supercell_label(m))
    out = [(n, load_reference(material, n)) for n in sorted(counts)]
    return out + sorted(cells.items(), key=lambda s: s[1].space.n_params)


def _theta_full(res) -> dict:
    return dict(res.extra.get("theta_full") or res.theta_dict())


def _stage(n: int | str, model, res, wall: float) -> dict:
    return {
        "shells": n if isinstance(n, str) else int(n),
        "n_params": len(model.names),
        "chi2_dof": None if res.chi2_dof is None else float(res.chi2_dof),
        "chi2": None if res.chi2 is None else float(res.chi2),
        "dof": int(res.dof),
        "deviance": None if res.extra.get("deviance") is None else float(res.extra["deviance"]),
        "success": bool(res.success),
        "wall_s": round(float(wall), 2),
        "theta": _theta_full(res),
        "sigma": dict(zip(res.names, np.asarray(res.sigma, float).tolist())),
    }
