"""``fcinv train vae|regressor|resnet``: train an inversion model into a checkpoint directory.

Examples::

    fcinv train vae --data ge.h5 --out runs/ge/vae --latent-dim 20 --beta 0.1
    fcinv train regressor --data ge.h5 --vae runs/ge/vae --out runs/ge/regressor
    fcinv train resnet --data ge.h5 --out runs/ge/resnet [--pretrained resnet18-f37072fd.pth]
    fcinv train vae --data ge.h5 --out runs/ge/vae --resume      # continue a killed run
    fcinv train vae --data ge.h5 --out runs/ge/vae --resume --epochs 200   # train a finished run on
"""

from __future__ import annotations

import argparse
import shlex
import sys

from fcinv.errors import FcinvError


def _ints(s: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in s.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{s!r} is not a comma-separated list of integers (e.g. 16,32,64,128)"
        ) from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset file (HDF5, from fcinv dataset)")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--epochs", type=int, default=100, help="maximum epochs (default 100)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=float, default=1e-3, help="initial learning rate of AdamW (default 1e-3)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="AdamW weight decay (default 0)")
    p.add_argument(
        "--patience",
        type=int,
        default=10,
        help="early stopping: epochs without validation improvement (default 10)",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of initialisation, shuffling and sampling (default 0)"
    )
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: $FCINV_DEVICE or auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's setting)")
    p.add_argument(
        "--noise-augment",
        action="store_true",
        help="train on noisy copies (background + Poisson, random per spectrum)",
    )
    p.add_argument("--max-train", type=int, default=None, help="use at most N training samples")
    p.add_argument("--max-val", type=int, default=None, help="use at most N validation samples")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run saved in --out (with the same options; a larger --epochs extends a finished "
        "or early-stopped run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--ddp",
        action="store_true",
        help="DistributedDataParallel under torchrun (gloo on CPU, NCCL on GPU); --batch-size is the global batch",
    )


def get_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fcinv train``."""
    parser = argparse.ArgumentParser(
        prog="fcinv train",
        description="Train an inversion model (VAE, latent regressor or ResNet-18) on a dataset.",
    )
    sub = parser.add_subparsers(dest="model", required=True, metavar="{vae,regressor,resnet}")
    v = sub.add_parser("vae", help="convolutional VAE on the spectra")
    _common(v)
    v.add_argument("--latent-dim", type=int, default=20, help="latent dimension (default 20)")
    v.add_argument("--beta", type=float, default=0.1, help="weight of the KL term (default 0.1)")
    v.add_argument("--recon", choices=("bce", "mse"), default="bce", help="reconstruction loss (default bce)")
    v.add_argument(
        "--channels", type=_ints, default=(16, 32, 64, 128), help="encoder channels (default 16,32,64,128)"
    )
    v.add_argument("--hidden-dim", type=int, default=256, help="dense layer width (default 256)")
    r = sub.add_parser("regressor", help="latent → force-constant regressor on a frozen VAE")
    _common(r)
    r.add_argument("--vae", required=True, help="checkpoint directory of the trained VAE")
    r.add_argument(
        "--hidden", type=_ints, default=(256, 256, 128), help="hidden widths (default 256,256,128)"
    )
    r.add_argument(
        "--latent-input",
        choices=("sample", "mu"),
        default="sample",
        help="train on latent samples or on μ (default sample)",
    )
    r.add_argument("--dropout", type=float, default=0.0, help="dropout after hidden layers (default 0)")
    n = sub.add_parser("resnet", help="ResNet-18 from spectra to force constants")
    _common(n)
    n.add_argument(
        "--pretrained", default=None, help="torchvision ImageNet resnet18 weights (local .pth) to start from"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``fcinv train``; returns the exit status."""
    args = get_parser().parse_args(argv)
    command = shlex.join(["fcinv", "train", *(sys.argv[1:] if argv is None else argv)])
    try:
        import torch

        from fcinv.training import TrainConfig, train_regressor, train_resnet, train_vae

        if args.ddp:  # the same tasks through DistributedDataParallel (fcinv.training.distributed)
            from fcinv.training.distributed import is_rank_zero, train_regressor, train_resnet, train_vae  # noqa: F811

        if args.threads:
            torch.set_num_threads(args.threads)
        cfg = TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            patience=args.patience,
            seed=args.seed,
            device=args.device,
            noise_augment=args.noise_augment,
            max_train=args.max_train,
            max_val=args.max_val,
            progress=not args.quiet,
        )
        if args.model == "vae":
            res = train_vae(
                args.data,
                args.out,
                cfg,
                resume=args.resume,
                command=command,
                latent_dim=args.latent_dim,
                beta=args.beta,
                recon_loss=args.recon,
                channels=args.channels,
                hidden_dim=args.hidden_dim,
            )
        elif args.model == "regressor":
            res = train_regressor(
                args.data,
                args.out,
                args.vae,
                cfg,
                resume=args.resume,
                command=command,
                latent_input=args.latent_input,
                hidden=args.hidden,
                dropout=args.dropout,
            )
        else:
            res = train_resnet(
                args.data, args.out, cfg, pretrained=args.pretrained, resume=args.resume, command=command
            )
    except FcinvError as exc:
        print(f"fcinv train: error: {exc}", file=sys.stderr)
        return 2
    if args.ddp and not is_rank_zero():
        return 0
    stop = "early stop" if res.stopped_early else "max epochs"
    print(
        f"{args.model}: best validation loss {res.best_val_loss:.5g} at epoch {res.best_epoch} "
        f"({res.epochs_run} epochs, {stop}, {res.wall_s:.1f} s) -> {res.out_dir}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
