"""``fcinv dataset``: sample the widened force-field domain → a training set of (θ, I(q, E)) pairs.

Example
-------
fcinv dataset --material Ge -n 10000 --seed 0 -o ge.h5
fcinv dataset --material Ge -n 10000 --seed 0 -o ge.h5 --resume     # after an interruption
"""

from __future__ import annotations

import argparse

from fcinv.cli._common import command_line


def get_parser() -> argparse.ArgumentParser:
    from fcinv.dataset.generate import DEFAULT_WIDEN

    p = argparse.ArgumentParser(prog="fcinv dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--material", "-m", default="Ge", help="embedded material with a Stage I reference (Ge, Nb)")
    p.add_argument("-n", type=int, default=10000, help="number of stable samples (default 10000, the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output HDF5 dataset")
    p.add_argument("--top-k", type=int, default=None, help="sample the k most influential parameters (default: the reference's ranking, 8)")
    p.add_argument("--widen", type=float, nargs=2, default=list(DEFAULT_WIDEN), metavar=("TOWARD_ZERO", "AWAY"), help="domain widening as fractions of the ensemble range (default 0.25 1.5)")
    p.add_argument("--n-test", type=int, default=1500, help="test-split size (scaled down for small n)")
    p.add_argument("--chunk", type=int, default=2000, help="samples per batch")
    p.add_argument("--resume", action="store_true", help="continue an interrupted OUTPUT.partial")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT.partial")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    import time

    from fcinv.dataset.generate import generate, widened_domain
    from fcinv.reference import load_reference

    ref = load_reference(args.material)
    names = ref.sampled[: args.top_k] if args.top_k else ref.sampled
    model = ref.forward_model(free=names)
    lo, hi = ref.bounds(names)
    domain = widened_domain(names, lo, hi, model.theta0, widen=tuple(args.widen))
    print(f"{ref.material}: sampling {len(names)} parameters in the widened ensemble domain (reference member {ref.reference_member}):")
    for i, (n, a, b, r) in enumerate(zip(names, domain.low, domain.high, model.theta0)):
        print(f"  FC{i} {n:<8} [{a:8.4f}, {b:8.4f}] eV/Å²   reference {r:8.4f}")
    t0 = time.perf_counter()
    path = generate(
        model, domain, args.n, args.output, seed=args.seed, chunk=args.chunk, n_test=args.n_test,
        resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress, command=command_line(),
    )
    from fcinv.dataset.io import read_dataset

    ds = read_dataset(path, lazy=True)
    acc = ds.meta.get("accepted_fraction")
    sizes = {k: len(v) for k, v in ds.split.items()}
    ds.close()
    print(f"wrote {path}: {args.n} spectra in {time.perf_counter() - t0:.1f} s; accepted fraction {acc:.3f} (stability filter); split {sizes}")
    return 0
