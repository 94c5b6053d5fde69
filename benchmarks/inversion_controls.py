"""ML alone on controls of one simulated run, for ``experiment_inversion.py --ml-controls``.

Where ML alone goes wrong (docs/fidelity.md, "ML alone: what holds it back"): the model on noise-free
physical spectra with the run's own coverage (as the one-phonon-corrected fold) of (a) the truth's
projection onto the model's space, (b) its 11-shell projection, (c) the whole file, (c) plus the run's
flat raw background through the fold's corrections, and (d) the fold itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_member_truth(name: str, folder: Path) -> tuple[Path, tuple[int, int, int]]:
    """Write the embedded Ge ensemble member ``name``'s whole FC set (``members_fc.hdf5``) as a phonopy
    folder (POSCAR + compact FORCE_CONSTANTS); returns the folder and its supercell."""
    from phonopy.file_IO import write_FORCE_CONSTANTS
    from phonopy.interface.vasp import write_vasp
    from phonopy.structure.atoms import PhonopyAtoms

    from fcinv.crystal import material_dir
    from fcinv.reference import MEMBERS_FC_FILE, read_members_fc

    members = read_members_fc(material_dir("Ge") / MEMBERS_FC_FILE)
    if name not in members:
        raise SystemExit(f"no stable Ge member {name!r}; pass one of {', '.join(sorted(members))}, or dft")
    m = members[name]
    smat = np.asarray(m["supercell_matrix"], int)
    if np.count_nonzero(smat - np.diag(np.diag(smat))):
        raise SystemExit(f"member {name!r} has a non-diagonal supercell {smat.tolist()}; not supported here")
    folder.mkdir(parents=True, exist_ok=True)
    atoms = PhonopyAtoms(
        cell=m["lattice"], scaled_positions=m["positions"], numbers=m["numbers"], masses=m["masses"]
    )
    write_vasp(str(folder / "POSCAR"), atoms)
    write_FORCE_CONSTANTS(np.asarray(m["force_constants"]), str(folder / "FORCE_CONSTANTS"), m["p2s_map"])
    return folder, tuple(int(x) for x in np.diag(smat))


def ml_controls(
    label: str, info: dict, predictor, ref, truth: dict, q_path, disp_path, temperature: float, h
) -> None:
    """Print ML alone on the controls (a)–(d) of ``experiment_inversion.py --ml-controls`` (its
    docstring) for one run; ``h`` is that script's module (its truth, projections and figures)."""
    from fcinv.dataset.physical import fold_background
    from fcinv.experiment.fold import Corrections, FoldPlan
    from fcinv.experiment.instrument import Instrument
    from fcinv.fcspace import read_phonopy
    from fcinv.forward.physical import PhysicalModel, coverage_from_fold
    from fcinv.reference import load_reference

    fc03 = list(ref.sampled[:4])
    fs = info["folded_paper"]
    vol = info["run"].total()
    rots = ref.crystal.point_group_rlu
    plan = FoldPlan.build(vol.edges[:3], predictor.grid, rots, centering="F", q_tolerance=0.05)
    cov = coverage_from_fold(plan, vol, rotations=rots, sampling="bins")
    corr = Corrections(bose_temperature=temperature, q2=True, energy=True)
    pairs = read_phonopy(ref.crystal, *h.truth_files(), h.TRUTH["supercell"])
    r11 = load_reference("Ge", 11)

    def spectrum(r, th, reference=None):
        theta = np.array([th[n] for n in r.space.names])
        pm = PhysicalModel(
            r.space,
            predictor.grid,
            theta,
            reference=reference,
            free=list(r.space.names),
            coverage=cov,
            temperature=temperature,
            resolution=Instrument(ei=40.0),
            corrections=corr,
            sampling="bins",
        )
        out = np.asarray(pm.spectra(theta[None]), float)[0]
        out[~np.asarray(pm.mask, bool)] = np.nan
        return out, pm

    def show(tag, img):
        pred = predictor.predict(img, k_samples=100, seed=0)
        full = dict(zip(ref.space.names, ref.theta_ref.tolist()))
        full.update(zip(predictor.names, np.asarray(pred.theta, float).tolist()))
        tail = "zero" if set(predictor.names) == set(ref.space.names) else "reference"
        e = h.rel_err(full, truth, fc03)
        d = h.rms(h.model_thz(ref, full, q_path, tail), disp_path)
        print(
            f"  {tag:<58} ML FC0-FC3 "
            + ", ".join(f"{100 * x:.1f}" for x in e)
            + f" %; dispersion {d:.3f} THz"
        )

    print(f"--- {label}: ML alone on controls with the run's coverage (noise-free, corrected as the fold)")
    show("(a) projection onto the model's space", spectrum(ref, truth)[0])
    show("(b) 11-shell projection", spectrum(r11, h.truth_projection(r11))[0])
    whole, pm = spectrum(ref, truth, pairs)
    show("(c) the whole file", whole)
    g = fold_background(cov, pm.energy_factor, ref.crystal)
    m = fs.mask & np.isfinite(whole) & np.isfinite(g)
    a, b = np.linalg.lstsq(np.vstack([whole[m], g[m]]).T, fs.intensity[m], rcond=None)[0]
    peak = a * np.nanmax(whole[m])
    show(
        f"(c) + flat raw background through the corrections (B {b / peak:.3f})",
        a * whole + b * np.where(np.isfinite(g), g, 0.0),
    )
    show("(d) the fold", np.where(fs.mask, fs.intensity, np.nan))
