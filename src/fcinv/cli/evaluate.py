"""``fcinv evaluate``: metrics and figures of trained models on a dataset's test split.

Examples::

    fcinv evaluate --model vae=runs/ge --model resnet=runs/ge/resnet --data ge.h5 --out out/eval-ge
    fcinv evaluate --model ge --data ge.h5 --out out/eval-ge --max-test 500 --no-noise-grid
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from fcinv.errors import FcinvError


def _model_arg(s: str) -> tuple[str, str]:
    if "=" in s:
        label, path = s.split("=", 1)
        if not label:
            raise argparse.ArgumentTypeError(f"{s!r}: empty label; use LABEL=DIR or DIR")
        return label, path
    return Path(s).name or s, s


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fcinv evaluate``."""
    p = argparse.ArgumentParser(
        prog="fcinv evaluate",
        description="Evaluate trained models on the test split of a dataset: R², MAE, noise grid, latent analysis, figures.",
    )
    p.add_argument(
        "--model",
        action="append",
        type=_model_arg,
        required=True,
        metavar="[LABEL=]DIR",
        help="model directory or shipped name; repeat to compare models (label defaults to the folder name)",
    )
    p.add_argument("--data", required=True, help="dataset file (HDF5)")
    p.add_argument("--out", required=True, help="output folder for metrics.json and figures")
    p.add_argument("--max-test", type=int, default=None, help="use only the first N test spectra")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of noise draws, latent samples and UMAP (default 0)"
    )
    p.add_argument(
        "--k-samples", type=int, default=0, help="VAE: average K latent samples (default 0: regress μ)"
    )
    p.add_argument("--no-noise-grid", action="store_true", help="skip the 5×5 noise grid")
    p.add_argument("--no-latent", action="store_true", help="skip the latent analysis")
    p.add_argument("--no-umap", action="store_true", help="skip the UMAP figure")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's setting)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    from fcinv.cli._common import add_plot_args

    add_plot_args(p, default=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``fcinv evaluate``; returns the exit status."""
    args = get_parser().parse_args(argv)
    command = shlex.join(["fcinv", "evaluate", *(sys.argv[1:] if argv is None else argv)])
    labels = [lab for lab, _ in args.model]
    if len(set(labels)) != len(labels):
        print(
            f"fcinv evaluate: error: model labels {labels} repeat. Give each --model a LABEL=DIR.",
            file=sys.stderr,
        )
        return 2
    try:
        import torch

        from fcinv.cli._common import plot_wanted
        from fcinv.evaluation import EvalConfig, run_evaluation

        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = EvalConfig(
            noise_grid=not args.no_noise_grid,
            latent=not args.no_latent,
            umap=not args.no_umap,
            max_test=args.max_test,
            seed=args.seed,
            k_samples=args.k_samples,
            device=args.device,
            progress=not args.quiet,
            figures=plot_wanted(args),
        )
        rep = run_evaluation(dict(args.model), args.data, args.out, cfg, command=command)
    except FcinvError as exc:
        print(f"fcinv evaluate: error: {exc}", file=sys.stderr)
        return 2
    names = rep["names"]
    print(f"clean test R² ({rep['dataset']['n_test']} spectra)")
    print("model".ljust(14) + "".join(f"FC{j}".rjust(8) for j in range(len(names))))
    for lab, m in rep["models"].items():
        print(lab[:13].ljust(14) + "".join(f"{m['clean']['per_fc'][n]['r2']:8.3f}" for n in names))
        if "noise_grid" in m:
            mid = m["noise_grid"]["middle"]
            print(
                " " * 4
                + f"noise {mid['setting']} (SNR {mid['snr_median']:.1f}): "
                + " ".join(f"{mid['r2'][n]:.3f}" for n in names)
            )
        if "latent" in m:
            print(
                " " * 4 + f"latent: {m['latent']['n_active']}/{m['latent']['latent_dim']} active dimensions"
            )
    print(f"metrics and {len(rep['figures'])} figures in {args.out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
