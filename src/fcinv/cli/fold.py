"""``fcinv fold``: fold a measured (or simulated) 4D S(Q, E) onto the model's q-path.

DATA is anything the format registry reads (``fcinv.io.FORMATS``): a Mantid MDHisto workspace
saved with SaveMD (.nxs; ``--norm`` for the MDNorm normalisation workspace), NXSPE files (one per
orientation; the material's lattice unless ``--lattice`` or ``--ub``, with ``--u``/``--v``), a
plain 4D array (HDF5/NPZ with signal, error and H, K, L, E axes), an fcinv Volume4D file, an fcinv
simulated run (``fcinv simulate-experiment``; ``--orientation J`` folds one orientation), or
pathSQE's already folded ``folded_path_plot_<n>.npy`` (only checked against the grid and converted).

Examples
--------
fcinv fold run.h5 --material Ge -o folded.h5
fcinv fold run.h5 --material Ge --orientation 17 -o scan17.h5
fcinv fold slice.nxs --norm slice_norm.nxs --material Ge -o folded.h5
fcinv fold MAR*.nxspe --material Ge --u 1 0 0 --v 0 1 0 -o folded.h5
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from fcinv.cli._common import (
    add_logging_args,
    add_material_args,
    add_plot_args,
    cli_main,
    material_from_args,
    plot_wanted,
)
from fcinv.io import FORMATS

log = logging.getLogger(__name__)


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv fold", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("data", nargs="+", help="4D data file(s); several only for NXSPE")
    add_material_args(p)
    p.add_argument("--path", default=None, help="q-path labels (default: the material's pathSQE path)")
    p.add_argument("-o", "--output", required=True, help="output folded-spectrum HDF5 file")
    add_plot_args(p, default=False, png_help="figure of the folded spectrum (with --plot: OUTPUT with .png)")
    p.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="input format (default: sniffed from the file)",
    )
    g = p.add_argument_group("folding")
    g.add_argument(
        "--q-tolerance",
        type=float,
        default=0.05,
        help="tube radius around each path image, r.l.u. (pathSQE: 0.05)",
    )
    g.add_argument(
        "--qmod-range",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="use only bins with MIN <= |Q| <= MAX (1/Å)",
    )
    g.add_argument(
        "--min-zone-coverage",
        type=float,
        default=0.0,
        help="drop zones covering less than this fraction of the path pixels",
    )
    g.add_argument(
        "--bose",
        type=float,
        default=None,
        metavar="T",
        help="Bose correction at temperature T (K): multiply by 1-exp(-E/kT)",
    )
    g.add_argument("--q2", action="store_true", help="divide by |Q|^2")
    g.add_argument("--energy", action="store_true", help="multiply by E (undoes the one-phonon 1/ω)")
    g.add_argument(
        "--one-phonon",
        type=float,
        default=None,
        metavar="T",
        help="shorthand for --bose T --q2 --energy: towards the forward model's weight-1 convention",
    )
    g.add_argument(
        "--background", type=float, default=None, help="subtract a constant background (signal units)"
    )
    i = p.add_argument_group("input options")
    i.add_argument(
        "--orientation", type=int, default=None, metavar="J", help="simulated run: fold orientation J only"
    )
    i.add_argument(
        "--norm",
        default=None,
        metavar="FILE",
        help="MDHisto: the normalisation workspace (MDNorm _norm) of DATA",
    )
    i.add_argument("--transpose", action="store_true", help="pathSQE: the image is stored (n_E, n_q)")
    i.add_argument(
        "--lattice",
        type=float,
        nargs="+",
        metavar="X",
        help="NXSPE: a b c [alpha beta gamma] (Å, degrees); a alone for cubic (default: the material's)",
    )
    i.add_argument(
        "--ub", type=float, nargs=9, metavar="X", help="NXSPE: UB matrix (1/Å, Mantid convention), row by row"
    )
    i.add_argument(
        "--u",
        type=float,
        nargs=3,
        default=None,
        help="NXSPE: vector along the beam at psi=0 (r.l.u.; default 1 0 0)",
    )
    i.add_argument(
        "--v",
        type=float,
        nargs=3,
        default=None,
        help="NXSPE: second scattering-plane vector (r.l.u.; default 0 1 0)",
    )
    i.add_argument("--psi-offset", type=float, default=None, help="NXSPE: added to each file's psi (degrees)")
    i.add_argument("--q-step", type=float, default=None, help="NXSPE: Q bin width (r.l.u.; default 0.05)")
    p.add_argument(
        "--allow-mixed",
        action="store_true",
        help="merge NXSPE files of different Ei or instrument (refused by default)",
    )
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_logging_args(p)
    return p


def file_options(args) -> dict:
    """The format options named on the command line (None where not given)."""
    return {
        "orientation": args.orientation,
        "norm_path": args.norm,
        "transpose": True if args.transpose else None,
        "ub": args.ub,
        "u": args.u,
        "v": args.v,
        "psi_offset": args.psi_offset,
        "q_step": args.q_step,
    }


@cli_main
def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    png = None
    if plot_wanted(args):
        png = Path(args.png) if args.png else Path(args.output).with_suffix(".png")
    if png is not None and not args.png:
        from fcinv.cli._guards import check_outputs

        check_outputs([(png, "--png")], force=args.force)  # the default figure path, before the fold
    from fcinv.experiment.fold import Corrections
    from fcinv.experiment.folded import FoldedSpectrum
    from fcinv.io import open_measurement
    from fcinv.pipeline import fold_measurement

    material = material_from_args(args)
    grid = material.grid(path=args.path)
    paths = [Path(p) for p in args.data]
    lattice = args.lattice if args.lattice is not None else material.lattice
    if len(paths) > 1:
        from fcinv.adequacy import check_mergeable
        from fcinv.experiment.readers import read_nxspe

        mixed = check_mergeable([read_nxspe(p) for p in paths], allow_mixed=args.allow_mixed)
        if mixed["mixed"]:
            print(f"WARNING: merging runs of different Ei or instrument (--allow-mixed): {mixed}")
    m = open_measurement(
        paths if len(paths) > 1 else paths[0],
        format=args.format,
        grid=grid,
        lattice=lattice,
        **file_options(args),
    )
    if isinstance(m, FoldedSpectrum):
        fs = fold_measurement(m, material, grid, source=f"'{paths[0].name}'")
        print(f"{paths[0]} is already folded ({100 * fs.coverage:.1f} % of the pixels measured); converting")
    else:
        print(f"read {m!r} from {paths[0]}{f' (+{len(paths) - 1} files)' if len(paths) > 1 else ''}")
        if args.one_phonon is not None:
            args.bose, args.q2, args.energy = args.one_phonon, True, True
        corr = Corrections(
            background=args.background, bose_temperature=args.bose, q2=args.q2, energy=args.energy
        )
        fs = fold_measurement(
            m,
            material,
            grid,
            q_tolerance=args.q_tolerance,
            corrections=corr,
            qmod_range=tuple(args.qmod_range) if args.qmod_range else None,
            min_zone_coverage=args.min_zone_coverage,
        )
        meta = fs.meta
        print(
            f"folded onto {grid.shape[0]} q x {grid.shape[1]} E: {100 * fs.coverage:.1f} % of the pixels "
            "measured, "
            f"{meta['n_zones_used']} zones x {meta['n_segment_images']} path images, in "
            f"{meta['fold_seconds']:.2f} s"
        )
    out = Path(args.output)
    fs.to_hdf5(out)
    print(f"wrote {out}")
    if png is not None:
        from fcinv.plotting import save_spectrum_png

        save_spectrum_png(png, fs.filled(np.nan), grid, title=f"{material.name}: folded I(q, E)")
        print(f"wrote {png}")
    return 0
