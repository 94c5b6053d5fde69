"""Training wall time and peak memory per model, and inference latency per spectrum, on the CPU.

Each training runs as its own ``fcinv train`` process (``--threads`` CPU threads,
2 by default: the 2-core budget of the issue), so that its peak resident memory
is measured alone (``getrusage`` in the child). By default the runs are
short (``--epochs 2``) and the time per epoch is reported next to the wall time;
pass ``--epochs`` large to time a full training. Without ``--data``, a toy
dataset on the Ge grid size (140 × 80, k = 8; ``fcinv.dataset.toy``) is made, so
the benchmark runs before the real datasets exist: the timings depend only on
the grid size and the number of spectra, not on their content.

Inference: the trained VAE + regressor on one spectrum, K = 100 latent samples,
median over repeated calls (target ≤ 50 ms).

Last line: ``RESULT vae_train_s=<s> resnet_train_s=<s> vae_infer_ms=<ms>``.

Usage: python benchmarks/train_infer_speed.py [--data ge.h5] [--epochs 2] [--threads 2] [--n-toy 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = (
    "import resource, sys\n"
    "from fcinv.cli.train import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('MAXRSS_KIB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    "sys.exit(rc)\n"
)


def run_train(args: list[str], threads: int) -> tuple[float, float]:
    """Run ``fcinv train ARGS`` in a child process; return (wall seconds, its peak RSS in MiB)."""
    cmd = [sys.executable, "-c", _CHILD, *args, "--threads", str(threads), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"training failed (fcinv train {' '.join(args)}):\n{proc.stderr[-2000:]}")
    kib = [int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("MAXRSS_KIB")]
    return wall, kib[-1] / 1024.0


def epochs_run(ckpt: Path) -> tuple[int, float]:
    cfg = json.loads((ckpt / "config.json").read_text())
    tr = cfg["training"]
    return int(tr["epochs_run"]), float(tr["wall_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="dataset file (default: a toy dataset on the Ge grid size)")
    ap.add_argument("--n-toy", type=int, default=2000, help="size of the toy dataset (default 2000)")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per model (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--skip-resnet", action="store_true")
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from fcinv.dataset import read_dataset, write_dataset
    from fcinv.dataset.toy import make_toy_dataset
    from fcinv.inference import load_model

    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="fcinv-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else work / "toy_ge_grid.h5"
    if not args.data:
        t = time.perf_counter()
        write_dataset(data, make_toy_dataset(n=args.n_toy, k=8, n_q=140, n_e=80, seed=0))
        print(
            f"toy dataset: {args.n_toy} spectra on a 140 × 80 grid ({time.perf_counter() - t:.1f} s) -> {data}"
        )
    ds = read_dataset(data, lazy=True)
    n_train, n_val = len(ds.split["train"]), len(ds.split["val"])
    print(
        f"data: {data.name}, grid {ds.grid.shape}, k={ds.k}, train {n_train}, val {n_val}; "
        f"{args.epochs} epochs, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}"
    )
    ds.close()
    common = [
        "--data",
        str(data),
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--patience",
        str(args.epochs + 1),
    ]
    results: dict[str, dict] = {}
    plan = [
        ("vae", ["vae", *common, "--out", str(work / "vae")]),
        ("regressor", ["regressor", *common, "--vae", str(work / "vae"), "--out", str(work / "regressor")]),
    ]
    if not args.skip_resnet:
        plan.append(("resnet", ["resnet", *common, "--out", str(work / "resnet")]))
    for name, a in plan:
        wall, peak = run_train(a, args.threads)
        n_ep, fit_s = epochs_run(work / name)
        results[name] = {
            "wall_s": wall,
            "fit_s": fit_s,
            "epochs": n_ep,
            "s_per_epoch": fit_s / max(n_ep, 1),
            "peak_rss_mib": peak,
        }
        print(
            f"train {name:9s}: {wall:7.1f} s wall ({fit_s:.1f} s in {n_ep} epochs, {fit_s / max(n_ep, 1):.1f} s/epoch "
            f"for {n_train} spectra), peak RSS {peak:.0f} MiB"
        )

    pred = load_model(work)
    x = read_dataset(data, lazy=True).get_spectra(np.array([0]))[0]
    pred.predict(x, k_samples=100)
    times = []
    for i in range(50):
        t = time.perf_counter()
        pred.predict(x, k_samples=100, seed=i)
        times.append(time.perf_counter() - t)
    infer_ms = 1e3 * float(np.median(times))
    print(
        f"inference (VAE + regressor, K=100, incl. reconstruction): median {infer_ms:.1f} ms, "
        f"p90 {1e3 * float(np.percentile(times, 90)):.1f} ms per spectrum over 50 calls ({args.threads} threads)"
    )
    resnet_s = results["resnet"]["wall_s"] if "resnet" in results else float("nan")
    vae_s = results["vae"]["wall_s"] + results["regressor"]["wall_s"]
    print(f"RESULT vae_train_s={vae_s:.1f} resnet_train_s={resnet_s:.1f} vae_infer_ms={infer_ms:.1f}")


if __name__ == "__main__":
    main()
