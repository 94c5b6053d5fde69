"""``fcinv simulate-experiment``: a simulated single-crystal ToF run (Euphonic S(Q,E), ARCS-like, counts).

The physics comes from a full force-constant set (phonopy FORCE_CONSTANTS + the POSCAR it
belongs to + the supercell); the material (``--material``/``--crystal``) gives the q-path
whose folding tubes are simulated (``--full-volume`` simulates every covered bin instead).
The output is an HDF5 run file (per-orientation sparse counts on one 4D grid) that
``fcinv fold`` reads; ``--fold FILE`` also folds the whole run onto the path.

Examples
--------
fcinv simulate-experiment --material Ge --force-constants FORCE_CONSTANTS --structure POSCAR \
    --supercell 4 4 4 -o run.h5
fcinv simulate-experiment --material Ge --force-constants FC --structure POSCAR --supercell 4 4 4 \
    --n-orientations 10 --seed 3 -o small.h5 --fold small_folded.h5
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from fcinv.cli._common import (
    UsageError,
    add_fc_file_args,
    add_logging_args,
    add_material_args,
    cli_main,
    material_from_args,
    show_progress,
    supercell_from_args,
)

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv simulate-experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_material_args(p)
    add_fc_file_args(p)
    p.add_argument("--path", default=None, help="q-path labels (default: the material's pathSQE path)")
    p.add_argument("-o", "--output", required=True, help="output run file (HDF5)")
    p.add_argument(
        "--fold", default=None, metavar="FILE", help="also fold the whole run onto the path and write it here"
    )
    ins = p.add_argument_group("instrument (ARCS-like)")
    ins.add_argument("--ei", type=float, default=40.0, help="incident energy, meV")
    ins.add_argument(
        "--in-plane",
        type=float,
        nargs=2,
        default=(-28.0, 135.0),
        metavar=("MIN", "MAX"),
        help="horizontal detector coverage, degrees",
    )
    ins.add_argument(
        "--out-of-plane",
        type=float,
        nargs=2,
        default=(-27.0, 27.0),
        metavar=("MIN", "MAX"),
        help="vertical detector coverage, degrees",
    )
    ins.add_argument(
        "--resolution",
        choices=("auto", "resins", "gaussian"),
        default="gaussian",
        help="energy resolution model (default gaussian: a fit to PyChop's ARCS curve; resins: the "
        "optional GPL package; auto: resins when installed)",
    )
    ins.add_argument(
        "--chopper-frequency", type=int, default=300, help="Fermi chopper frequency, Hz (resins)"
    )
    ins.add_argument(
        "--elastic-fwhm",
        type=float,
        default=None,
        help="Gaussian model: elastic FWHM as a fraction of Ei (default 0.039)",
    )
    gon = p.add_argument_group("sample rotation")
    gon.add_argument("--n-orientations", type=int, default=120, help="number of orientations")
    gon.add_argument("--psi-start", type=float, default=0.0, help="first rotation angle, degrees")
    gon.add_argument("--psi-step", type=float, default=1.0, help="rotation step, degrees")
    gon.add_argument(
        "--u", type=float, nargs=3, default=(1.0, 0.0, 0.0), help="r.l.u. vector along the beam at psi = 0"
    )
    gon.add_argument(
        "--v",
        type=float,
        nargs=3,
        default=(0.0, 1.0, 0.0),
        help="second r.l.u. vector of the horizontal plane",
    )
    run = p.add_argument_group("measurement")
    run.add_argument("--temperature", type=float, default=5.0, help="sample temperature, K")
    run.add_argument("--counting-time", type=float, default=1.5, help="minutes per orientation")
    run.add_argument(
        "--count-rate",
        type=float,
        default=1.0,
        help="counts per minute in a full bin at the mean one-phonon intensity",
    )
    run.add_argument(
        "--background",
        type=float,
        default=0.1,
        help="flat background, in units of the mean one-phonon intensity",
    )
    run.add_argument("--q-step", type=float, default=0.05, help="Q bin width, r.l.u.")
    run.add_argument(
        "--q-tolerance", type=float, default=0.05, help="radius of the simulated path tubes, r.l.u."
    )
    run.add_argument(
        "--full-volume",
        action="store_true",
        help="simulate every covered bin, not only the path tubes (slow)",
    )
    run.add_argument("--seed", type=int, default=0, help="seed of the Poisson noise")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_logging_args(p)
    return p


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.experiment.instrument import Goniometer, Instrument
    from fcinv.experiment.simulate import (
        ExperimentConfig,
        load_force_constants,
        simulate_experiment,
    )

    if not args.force_constants:
        raise UsageError(
            "--force-constants is required (phonopy FORCE_CONSTANTS of the 'true' crystal), with "
            "--structure and --supercell"
        )
    if not args.structure:
        raise UsageError("--force-constants needs --structure (the POSCAR the force constants belong to)")
    material = material_from_args(args)
    crystal = material.crystal
    grid = material.grid(path=args.path)
    t0 = time.perf_counter()
    fc, exp_crystal = load_force_constants(
        args.force_constants, args.structure, supercell_from_args(args.supercell)
    )
    kw = {} if args.elastic_fwhm is None else {"elastic_fwhm_fraction": args.elastic_fwhm}
    inst = Instrument(
        ei=args.ei,
        in_plane=tuple(args.in_plane),
        out_of_plane=tuple(args.out_of_plane),
        resolution=args.resolution,
        chopper_frequency=args.chopper_frequency,
        **kw,
    )
    gonio = Goniometer.steps(
        args.psi_start, args.psi_step, args.n_orientations, u=tuple(args.u), v=tuple(args.v)
    )
    cfg = ExperimentConfig(
        temperature=args.temperature,
        q_step=args.q_step,
        counting_time=args.counting_time,
        count_rate=args.count_rate,
        background=args.background,
        q_tolerance=args.q_tolerance,
        seed=args.seed,
    )
    prov = {
        "force_constants": str(Path(args.force_constants).resolve()),
        "structure": str(Path(args.structure).resolve()),
        "supercell": list(args.supercell),
        "material": crystal.name,
    }
    run = simulate_experiment(
        fc,
        exp_crystal,
        instrument=inst,
        goniometer=gonio,
        config=cfg,
        region=None if args.full_volume else grid,
        progress=show_progress(),
        provenance=prov,
    )
    t_sim = time.perf_counter() - t0
    out = Path(args.output)
    run.to_hdf5(out)
    m = run.meta
    print(
        f"simulated {gonio.n} orientations (Ei {inst.ei:g} meV, {cfg.temperature:g} K, resolution "
        f"{inst.resolution_model()}, "
        f"elastic FWHM {inst.fwhm(0.0):.2f} meV): {m['n_bins']:,} covered 4D bins, {m['n_qbins']:,} "
        f"Q-bins, in {t_sim:.1f} s"
    )
    print(f"wrote {out}")
    if args.fold:
        from fcinv.pipeline import fold_measurement

        fs = fold_measurement(run.total(), material, grid, q_tolerance=args.q_tolerance)
        fs.to_hdf5(args.fold, seed=args.seed)
        print(
            f"folded in {fs.meta['fold_seconds']:.2f} s ({100 * fs.coverage:.1f} % of the pixels "
            f"measured); wrote {args.fold}"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
