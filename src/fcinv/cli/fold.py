"""``fcinv fold``: fold a measured (or simulated) 4D S(Q, E) onto the model's q-path.

DATA is one of: a Mantid MDHisto workspace saved with SaveMD (.nxs; ``--norm`` for the
MDNorm normalisation workspace), NXSPE files (one per orientation; give ``--lattice`` or
``--ub`` and ``--u``/``--v``), a plain 4D array (HDF5/NPZ with signal, error and H, K, L, E
axes), an fcinv Volume4D file, an fcinv simulated run (``fcinv simulate-experiment``;
``--orientation J`` folds one orientation), or pathSQE's already folded
``folded_path_plot_<n>.npy`` (only checked against the grid and converted).

Examples
--------
fcinv fold run.h5 --material Ge -o folded.h5
fcinv fold run.h5 --material Ge --orientation 17 -o scan17.h5
fcinv fold slice.nxs --norm slice_norm.nxs --material Ge -o folded.h5
fcinv fold MAR*.nxspe --material Ge --lattice 5.658 --u 1 0 0 --v 0 1 0 -o folded.h5
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from fcinv.cli._common import (
    UsageError,
    add_material_args,
    command_line,
    crystal_from_args,
)
from fcinv.errors import DataError

log = logging.getLogger(__name__)

FORMATS = ("auto", "mdhisto", "nxspe", "array", "volume", "run", "pathsqe")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fcinv fold", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", nargs="+", help="4D data file(s); several only for NXSPE")
    add_material_args(p)
    p.add_argument("--path", default=None, help="q-path labels (default: the material's pathSQE path)")
    p.add_argument("-o", "--output", required=True, help="output folded-spectrum HDF5 file")
    p.add_argument("--png", default=None, help="also write a figure of the folded spectrum")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: guessed from the file)")
    g = p.add_argument_group("folding")
    g.add_argument("--q-tolerance", type=float, default=0.05, help="tube radius around each path image, r.l.u. (pathSQE: 0.05)")
    g.add_argument("--qmod-range", type=float, nargs=2, metavar=("MIN", "MAX"), help="use only bins with MIN <= |Q| <= MAX (1/Å)")
    g.add_argument("--min-zone-coverage", type=float, default=0.0, help="drop zones covering less than this fraction of the path pixels")
    g.add_argument("--bose", type=float, default=None, metavar="T", help="Bose correction at temperature T (K): multiply by 1-exp(-E/kT)")
    g.add_argument("--q2", action="store_true", help="divide by |Q|^2")
    g.add_argument("--energy", action="store_true", help="multiply by E (undoes the one-phonon 1/ω)")
    g.add_argument("--one-phonon", type=float, default=None, metavar="T", help="shorthand for --bose T --q2 --energy: towards the forward model's weight-1 convention")
    g.add_argument("--background", type=float, default=None, help="subtract a constant background (signal units)")
    i = p.add_argument_group("input options")
    i.add_argument("--orientation", type=int, default=None, metavar="J", help="simulated run: fold orientation J only")
    i.add_argument("--norm", default=None, metavar="FILE", help="MDHisto: the normalisation workspace (MDNorm _norm) of DATA")
    i.add_argument("--transpose", action="store_true", help="pathSQE: the image is stored (n_E, n_q)")
    i.add_argument("--lattice", type=float, nargs="+", metavar="X", help="NXSPE: a b c [alpha beta gamma] (Å, degrees); a alone for cubic")
    i.add_argument("--ub", type=float, nargs=9, metavar="X", help="NXSPE: UB matrix (1/Å, Mantid convention), row by row")
    i.add_argument("--u", type=float, nargs=3, default=(1.0, 0.0, 0.0), help="NXSPE: vector along the beam at psi=0 (r.l.u.)")
    i.add_argument("--v", type=float, nargs=3, default=(0.0, 1.0, 0.0), help="NXSPE: second scattering-plane vector (r.l.u.)")
    i.add_argument("--psi-offset", type=float, default=0.0, help="NXSPE: added to each file's psi (degrees)")
    i.add_argument("--q-step", type=float, default=0.05, help="NXSPE: Q bin width (r.l.u.)")
    return p


def detect_format(path: Path) -> str:
    """Guess the input format of ``path`` from its suffix and content."""
    suffix = path.suffix.lower()
    if suffix == ".nxspe":
        return "nxspe"
    if suffix == ".npy":
        return "pathsqe"
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            return "array" if ("signal" in z.files or "counts" in z.files) else "pathsqe"
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format", b"")
            fmt = fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if fmt == "fcinv-volume":
                return "volume"
            if fmt == "fcinv-simulated-run":
                return "run"
            if fmt == "fcinv-folded":
                return "folded"
            if "MDHistoWorkspace" in f:
                return "mdhisto"
            if any(isinstance(g, h5py.Group) and "NXSPE_info" in g for g in f.values()):
                return "nxspe"
            if "signal" in f or "counts" in f:
                return "array"
    except OSError:
        raise DataError(f"'{path}' is neither NumPy nor HDF5/NeXus. Pass an MDHisto .nxs, NXSPE, HDF5/NPZ array, fcinv volume/run or pathSQE .npy file.") from None
    raise DataError(f"cannot tell what '{path}' holds (no MDHistoWorkspace, NXSPE entry, signal/counts array or fcinv format). Pass --format.")


def load_volume(args, paths: list[Path], fmt: str, crystal):
    """The 4D volume named on the command line."""
    from fcinv.experiment.volume import Volume4D

    rc = 2 * np.pi * np.linalg.inv(crystal.conventional_lattice).T
    if fmt != "nxspe" and len(paths) > 1:
        raise UsageError(f"{len(paths)} input files given; only NXSPE input takes several files (one per orientation).")
    if args.orientation is not None and fmt != "run":
        raise UsageError("--orientation applies to a simulated run (fcinv simulate-experiment output) only.")
    if fmt == "run":
        from fcinv.experiment.simulate import SimulatedRun

        run = SimulatedRun.read(paths[0])
        return run.orientation(args.orientation) if args.orientation is not None else run.total()
    if fmt == "volume":
        return Volume4D.from_hdf5(paths[0])
    if fmt == "mdhisto":
        return Volume4D.from_mdhisto(paths[0], norm_path=args.norm, reciprocal_cell=rc)
    if fmt == "array":
        return Volume4D.from_array_file(paths[0])
    if fmt == "nxspe":
        if args.ub is None and args.lattice is None:
            raise UsageError("NXSPE input needs the sample orientation: --lattice a [b c alpha beta gamma] or --ub (9 numbers), with --u and --v.")
        lattice = None
        if args.lattice is not None:
            lattice = args.lattice * 3 if len(args.lattice) == 1 else args.lattice
        ub = None if args.ub is None else np.array(args.ub).reshape(3, 3)
        from fcinv.crystal import default_grid

        grid = default_grid(crystal, path=args.path)
        return Volume4D.from_nxspe(paths, ub=ub, lattice=lattice, u=args.u, v=args.v, psi_offset=args.psi_offset, q_step=args.q_step, e_edges=grid.energy_edges)
    raise UsageError(f"format {fmt!r} is not a 4D volume.")


def centering_of(crystal) -> str:
    """Lattice centering letter (P, F, I) of a :class:`fcinv.crystal.Crystal`."""
    letter = crystal.spacegroup[0][0].upper()
    if letter not in ("P", "F", "I"):
        raise DataError(f"{crystal.name} has a {letter}-centred lattice ({crystal.spacegroup[0]}); folding supports P, F and I lattices.")
    return letter


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    from fcinv.crystal import default_grid
    from fcinv.experiment.fold import Corrections, fold_volume
    from fcinv.experiment.folded import FoldedSpectrum, read_folded, write_folded

    paths = [Path(p) for p in args.data]
    for p in paths:
        if not p.is_file():
            raise DataError(f"input '{p}' does not exist. Check the path.")
    crystal = crystal_from_args(args)
    grid = default_grid(crystal, path=args.path)
    fmt = detect_format(paths[0]) if args.format == "auto" else args.format
    if fmt == "pathsqe":
        fs = FoldedSpectrum.from_pathsqe(paths[0], grid, transpose=args.transpose)
        print(f"read pathSQE output {paths[0]} ({100 * fs.coverage:.1f} % of the pixels measured; no errors)")
    elif fmt == "folded":
        fs = read_folded(paths[0])
        grid.check_same(fs.grid, what=f"'{paths[0].name}'")
        print(f"{paths[0]} is already folded ({100 * fs.coverage:.1f} % measured); copying")
    else:
        volume = load_volume(args, paths, fmt, crystal)
        print(f"read {volume!r} from {paths[0]}{f' (+{len(paths) - 1} files)' if len(paths) > 1 else ''}")
        if args.one_phonon is not None:
            args.bose, args.q2, args.energy = args.one_phonon, True, True
        corr = Corrections(background=args.background, bose_temperature=args.bose, q2=args.q2, energy=args.energy)
        fs = fold_volume(
            volume,
            grid,
            crystal.point_group_rlu,
            centering=centering_of(crystal),  # type: ignore[arg-type]
            q_tolerance=args.q_tolerance,
            qmod_range=tuple(args.qmod_range) if args.qmod_range else None,
            min_zone_coverage=args.min_zone_coverage,
            corrections=corr,
        )
        m = fs.meta
        print(
            f"folded onto {grid.shape[0]} q x {grid.shape[1]} E: {100 * fs.coverage:.1f} % of the pixels measured, "
            f"{m['n_zones_used']} zones x {m['n_segment_images']} path images, in {m['fold_seconds']:.2f} s"
        )
    out = Path(args.output)
    write_folded(out, fs, command=command_line())
    print(f"wrote {out}")
    if args.png:
        from fcinv.plotting import save_spectrum_png

        save_spectrum_png(args.png, fs.filled(np.nan), grid, title=f"{crystal.name}: folded I(q, E)")
        print(f"wrote {args.png}")
    return 0
