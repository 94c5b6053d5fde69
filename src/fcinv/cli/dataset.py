"""``fcinv dataset``: sample the widened ensemble domain → a training set of (θ, I(q, E)) pairs.

Every symmetry-allowed parameter within the cutoff is sampled (Ge: 16 in 5 shells),
ordered FC0, FC1, ... by the sensitivity ranking. ``--top-k K`` makes a
paper-convention set instead (the K most sensitive sampled, the others and the tail
held at the reference member).

Examples
--------
fcinv dataset --material Ge -n 10000 --seed 0 -o ge.h5
fcinv dataset --material Ge -n 10000 --seed 0 -o ge.h5 --resume            # after an interruption
fcinv dataset --material Ge --shells 3 -n 2000 -o ge3.h5                     # 10 parameters in 3 shells
fcinv dataset --material Ge --intensity physical --randomise -n 6000 -o ge_phys.h5
fcinv dataset --material Ge --intensity physical --randomise --background fold --tail-shells 11 -n 6000 -o ge_tail.h5
fcinv dataset --material Ge --intensity paper --top-k 8 -n 10000 -o ge_paper.h5   # the paper's set
fcinv dataset --material Ge -n 100000 -o ge.h5 --scheduler dask --workers 8       # sharded, local Dask workers
fcinv dataset --material Ge -n 100000 -o ge.h5 --scheduler dask --address tcp://HOST:8786 --resume
"""

from __future__ import annotations

import argparse

from fcinv.cli._common import command_line


def get_parser() -> argparse.ArgumentParser:
    from fcinv.dataset.generate import DEFAULT_WIDEN

    p = argparse.ArgumentParser(
        prog="fcinv dataset", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--material", "-m", default="Ge", help="embedded material with a Stage I reference (Ge, Nb)"
    )
    p.add_argument(
        "-n", type=int, default=10000, help="number of stable samples (default 10000, the paper's)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="output HDF5 dataset")
    p.add_argument(
        "--shells",
        type=int,
        default=None,
        help="neighbour shells in the cutoff (default: the material's cutoff_shells)",
    )
    p.add_argument(
        "--tail",
        choices=("zero", "reference"),
        default=None,
        help="beyond the cutoff: zero (default) or the reference member's force constants",
    )
    p.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="paper convention: sample only the k most sensitive parameters, hold the rest at the reference member",
    )
    p.add_argument(
        "--intensity",
        choices=("paper", "physical"),
        default="paper",
        help="paper: every mode weight 1 (default); physical: coherent one-phonon intensity (fcinv.forward.physical)",
    )
    p.add_argument(
        "--randomise",
        action="store_true",
        help="measurement-like spectra: temperature, resolution, coverage, background and counts drawn per sample",
    )
    p.add_argument(
        "--temperature",
        type=float,
        nargs=2,
        default=(5.0, 300.0),
        metavar=("LOW", "HIGH"),
        help="temperature range, K (default 5 300)",
    )
    p.add_argument(
        "--coverage",
        nargs="+",
        default=None,
        metavar="NAME",
        help="coverages drawn with --randomise (physical: see fcinv.dataset.physical.COVERAGES; default all)",
    )
    p.add_argument(
        "--clean-fraction",
        type=float,
        default=0.1,
        help="share of clean samples with --randomise (default 0.1)",
    )
    p.add_argument(
        "--widen",
        type=float,
        nargs=2,
        default=list(DEFAULT_WIDEN),
        metavar=("TOWARD_ZERO", "AWAY"),
        help=f"domain widening as fractions of the ensemble range (default {DEFAULT_WIDEN[0]} {DEFAULT_WIDEN[1]})",
    )
    p.add_argument(
        "--tail-shells",
        type=int,
        default=None,
        metavar="N",
        help="make the spectra in N shells (far shells drawn, see --tail-width) and store the model's "
        "own parameters as labels (their projection); default: zero beyond the cutoff",
    )
    p.add_argument(
        "--tail-width",
        type=float,
        default=None,
        metavar="X",
        help="far-shell domain: the members' interval widened by X times its range on each side "
        "(default 3, which contains the DFT Ge set at 11 shells); needs --tail-shells",
    )
    p.add_argument(
        "--background",
        choices=("flat", "fold"),
        default="flat",
        help="with --randomise --intensity physical: flat (a constant in the stored image, default) or fold "
        "(a flat raw background through the fold's one-phonon corrections, noise in raw counts)",
    )
    p.add_argument("--n-test", type=int, default=1500, help="test-split size (scaled down for small n)")
    p.add_argument("--chunk", type=int, default=2000, help="samples per batch")
    p.add_argument("--resume", action="store_true", help="continue an interrupted OUTPUT.partial")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT.partial")
    p.add_argument("--no-progress", action="store_true")
    add_scale_out_arguments(p)  # --scheduler/--workers/--address/--shard-size/--keep-shards (issue 15)
    return p


def check_build_options(args) -> tuple[int | None, float | None, str]:
    """The tail and background options of parsed arguments, checked together (one-line errors);
    returns (tail_shells, tail_width, background)."""
    from fcinv.errors import DataError

    tail_shells = getattr(args, "tail_shells", None)
    tail_width = getattr(args, "tail_width", None)
    background = getattr(args, "background", "flat")
    if tail_width is not None and tail_shells is None:
        raise DataError("--tail-width needs --tail-shells N (the shells the spectra are made in).")
    if tail_shells is not None and args.top_k is not None:
        raise DataError("--tail-shells needs every parameter of the cutoff sampled; drop --top-k.")
    if background != "flat" and not (args.randomise and args.intensity == "physical"):
        raise DataError(f"--background {background} needs --randomise --intensity physical.")
    return tail_shells, tail_width, background


def build(args):
    """(reference, names, forward object, domain, randomisation) for parsed arguments."""
    from fcinv.dataset.randomise import PaperConditioner, Randomisation
    from fcinv.reference import check_shells, load_reference

    if args.shells is not None:
        check_shells(args.shells, args.material)
    ref = load_reference(args.material, args.shells, tail=args.tail)
    if args.top_k is not None and not 1 <= args.top_k <= ref.space.n_params:
        from fcinv.errors import DataError

        raise DataError(
            f"--top-k {args.top_k} is out of range. Pass 1 to {ref.space.n_params} (the {ref.material} space's parameter count)."
        )
    names = ref.sampled[: args.top_k] if args.top_k else list(ref.sampled)
    domain = ref.domain(names, widen=tuple(args.widen))
    tail_shells, tail_width, background = check_build_options(args)
    rnd = None
    if args.randomise and args.intensity == "paper":
        rnd = Randomisation(temperature_K=tuple(args.temperature), clean_fraction=args.clean_fraction)
    if args.intensity == "physical":
        from fcinv.dataset.physical import physical_forward, physical_randomisation

        if args.randomise:
            rnd = physical_randomisation(
                tuple(args.temperature), clean_fraction=args.clean_fraction, background_shape=background
            )

        def make(r, free):
            return physical_forward(
                r,
                free,
                coverages=args.coverage,
                temperature_K=args.temperature[0],
                randomised=rnd is not None,
            )
    else:
        if rnd is not None and args.coverage not in (None, ["full"]):
            from fcinv.errors import DataError

            raise DataError(
                f"--coverage {' '.join(args.coverage)} needs --intensity physical (the paper intensity has full coverage only)."
            )

        def make(r, free):
            m = r.forward_model(free=free)
            return PaperConditioner(m) if rnd is not None else m

    if tail_shells is not None:
        from fcinv.dataset.tail import DEFAULT_TAIL_WIDTH, tail_forward

        model, domain = tail_forward(
            ref,
            names,
            tail_shells=tail_shells,
            tail_width=DEFAULT_TAIL_WIDTH if tail_width is None else tail_width,
            make_forward=make,
        )
    else:
        model = make(ref, names)
    return ref, names, model, domain, rnd


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    if args.scheduler:
        return main_sharded(args, command_line())
    import time

    from fcinv.dataset.generate import generate

    ref, names, model, domain, rnd = build(args)
    tail = ref.tail_for(names)
    if getattr(model, "tail", None) is not None and hasattr(model, "label_names"):
        t = model.tail
        tail = (
            f"drawn to {t['tail_shells']} shells ({len(t['names'])} far parameters, members' interval "
            f"widened by {t['tail_width']:g} x its range), zero beyond; labels = the {ref.n_shells}-shell projection"
        )
    print(
        f"{ref.material}: {ref.n_shells} shells ({ref.space.cutoff:.3f} Å), sampling {len(names)} of {ref.space.n_params} parameters "
        f"in the widened ensemble domain; beyond the cutoff: {tail}; intensity {args.intensity}"
        f"{', domain-randomised' if rnd else ''}:"
    )
    idx = ref.space.index(names)
    for i, (n, a, b, r) in enumerate(zip(names, domain.low, domain.high, ref.theta_ref[idx])):
        src = ref.bounds_source[ref.space.names.index(n)] if ref.bounds_source else "ensemble"
        print(f"  FC{i:<2d} {n:<8} [{a:8.4f}, {b:8.4f}] eV/Å²   reference {r:8.4f}   bounds: {src}")
    t0 = time.perf_counter()
    path = generate(
        model,
        domain,
        args.n,
        args.output,
        randomisation=rnd,
        seed=args.seed,
        chunk=args.chunk,
        n_test=args.n_test,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        command=command_line(),
    )
    from fcinv.dataset.io import read_dataset

    ds = read_dataset(path, lazy=True)
    acc = ds.meta.get("accepted_fraction")
    sizes = {k: len(v) for k, v in ds.split.items()}
    ds.close()
    print(
        f"wrote {path}: {args.n} spectra in {time.perf_counter() - t0:.1f} s; accepted fraction {acc:.3f} (stability filter); split {sizes}"
    )
    return 0


def recipe_build(**kwargs):
    """Factory of ``fcinv dataset`` recipes (:func:`fcinv.dataset.shards.recipe_from_args`): :func:`build`
    on the recorded options, importable on every Dask worker."""
    import argparse

    ns = dict(kwargs)
    for key in ("temperature", "widen"):
        if ns.get(key) is not None:
            ns[key] = tuple(ns[key])
    if ns.get("coverage") is not None:
        ns["coverage"] = list(ns["coverage"])
    _ref, _names, model, domain, rnd = build(argparse.Namespace(**ns))
    return model, domain, rnd


def add_scale_out_arguments(p) -> None:
    """The scale-out options of ``fcinv dataset``."""
    from fcinv.dataset.shards import DEFAULT_SHARD_SIZE, EXECUTORS

    g = p.add_argument_group("scale-out (sharded generation; see docs/scale-out.md)")
    g.add_argument(
        "--scheduler",
        choices=EXECUTORS,
        default=None,
        help="draw in shards with deterministic per-shard seeds: serial (this process) or dask "
        "(a LocalCluster of --workers processes, or the scheduler at --address)",
    )
    g.add_argument(
        "--workers", type=int, default=None, help="local Dask worker processes (single-threaded; default 1)"
    )
    g.add_argument(
        "--address", default=None, help="Dask scheduler address, tcp://HOST:PORT (a running cluster)"
    )
    g.add_argument(
        "--shard-size",
        type=int,
        default=DEFAULT_SHARD_SIZE,
        help=f"samples per shard (default {DEFAULT_SHARD_SIZE}); "
        "with --seed and --chunk it fixes the content",
    )
    g.add_argument("--keep-shards", action="store_true", help="keep OUTPUT.shards/ after assembly")


def main_sharded(args, command: str) -> int:
    """``fcinv dataset --scheduler ...``: the sharded path (models built where the shards run)."""
    import time

    from fcinv.dataset.shards import (
        ShardError,
        generate_sharded,
        make_executor,
        recipe_from_args,
        shard_sizes,
    )
    from fcinv.reference import check_shells, load_reference

    if args.scheduler != "dask" and (args.workers or args.address):
        raise ShardError("--workers/--address need --scheduler dask.")
    check_build_options(args)  # before any worker builds the model (the recipe carries these options)
    if args.shells is not None:
        check_shells(args.shells, args.material)
    ref = load_reference(args.material, args.shells, tail=args.tail)
    names = ref.sampled[: args.top_k] if args.top_k else list(ref.sampled)
    domain = ref.domain(names, widen=tuple(args.widen))
    where = f" ({args.address})" if args.address else ""
    if args.scheduler == "dask" and not args.address:
        where = f" ({args.workers or 1} local workers)"
    print(
        f"{ref.material}: sampling {len(names)} of {ref.space.n_params} parameters, intensity "
        f"{args.intensity}"
        f"{', domain-randomised' if args.randomise else ''}; {len(shard_sizes(args.n, args.shard_size))} "
        "shards of "
        f"{args.shard_size} on {args.scheduler}"
        f"{where}"
    )
    for i, (nm, a, b) in enumerate(zip(names, domain.low, domain.high)):
        print(f"  FC{i:<2d} {nm:<8} [{a:8.4f}, {b:8.4f}] eV/Å²")
    recipe = recipe_from_args(args)
    t0 = time.perf_counter()
    executor = make_executor(args.scheduler, workers=args.workers, address=args.address)
    try:
        run = generate_sharded(
            recipe,
            args.n,
            args.output,
            seed=args.seed,
            shard_size=args.shard_size,
            chunk=args.chunk,
            n_test=args.n_test,
            executor=executor,
            resume=args.resume,
            overwrite=args.overwrite,
            keep_shards=args.keep_shards,
            progress=not args.no_progress,
            command=command,
            threads=1 if args.scheduler == "dask" else None,
        )
    finally:
        executor.close()
    from fcinv.dataset.io import read_dataset

    ds = read_dataset(run.path, lazy=True)
    acc = ds.meta.get("accepted_fraction")
    ds.close()
    print(
        f"wrote {run.path}: {args.n} spectra in {time.perf_counter() - t0:.1f} s ({run.shards_run} "
        "shards run, "
        f"{run.shards_skipped} already finished); accepted fraction {acc:.3f}; content {ds.content_hash[:16]}"
    )
    return 0
