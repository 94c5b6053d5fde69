"""Training-set generation speed: a 10,000-sample Ge dataset (sampling, stability filter, forward model, HDF5 writing).

The force-field part is one-off (embedded data) and not timed. The peer, in the
same run, is the plain loop one would write with phonopy: for each sample, build
the full FC array, ``run_qpoints`` on the path and on the stability mesh, and
broaden with numpy; it is timed on a subset and scaled per sample.
Last line: ``RESULT dataset_10k_s=<seconds> accepted_fraction=<f> speedup_vs_phonopy_loop=<x>``.

Usage: python benchmarks/dataset_speed.py [--n 10000] [--n-peer 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from fcinv.dataset import generate, read_dataset, widened_domain
from fcinv.forward.model import mesh_qpoints
from fcinv.reference import load_reference
from fcinv.units import THZ_TO_MEV


def phonopy_loop(model, theta: np.ndarray) -> tuple[float, int]:
    """Per-sample phonopy pipeline; returns (seconds, accepted)."""
    from phonopy import Phonopy

    space, grid = model.space, model.grid
    crystal = space.crystal
    ph = Phonopy(crystal.to_phonopy_atoms(), supercell_matrix=np.diag([4, 4, 4]), primitive_matrix="P")
    q_path = crystal.rlu_to_prim_frac(grid.q_rlu)
    q_mesh = crystal.rlu_to_prim_frac(mesh_qpoints(space, model.mesh))
    e = grid.energy_edges
    sigma = model.broadening.fwhm0 / 2.3548200450309493
    from scipy.special import ndtr

    t0 = time.perf_counter()
    ok = 0
    for full in model.full_theta(theta):
        ph.force_constants = space.to_phonopy(full, (4, 4, 4))
        ph.run_qpoints(q_mesh)
        if ph.qpoints.frequencies.min() * THZ_TO_MEV < -0.05:
            continue
        ph.run_qpoints(q_path)
        f = ph.qpoints.frequencies * THZ_TO_MEV
        cdf = ndtr((e[None, None, :] - f[..., None]) / sigma)
        _ = np.diff(cdf, axis=-1).sum(axis=1).astype(np.float32)
        ok += 1
    return time.perf_counter() - t0, ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--n-peer", type=int, default=100)
    args = ap.parse_args()
    ref = load_reference("Ge")
    model = ref.forward_model()
    lo, hi = ref.bounds()
    domain = widened_domain(ref.sampled, lo, hi, model.theta0)
    model.spectra(model.theta0)  # compile the kernels outside the timing
    model.is_stable(model.theta0)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = generate(
            model,
            domain,
            args.n,
            Path(tmp) / "ge.h5",
            seed=0,
            progress=False,
            command="benchmarks/dataset_speed.py",
        )
        t = time.perf_counter() - t0
        ds = read_dataset(path, lazy=True)
        acc = float(ds.meta["accepted_fraction"])
        size = path.stat().st_size / 2**20
        ds.close()
    print(
        f"fcinv: {args.n} stable Ge spectra in {t:.2f} s ({args.n / t:,.0f} /s), accepted fraction {acc:.3f}, file {size:.0f} MiB"
    )
    theta = domain.sample(args.n_peer, np.random.default_rng(1))
    t_peer, ok = phonopy_loop(model, theta)
    per_sample_peer = t_peer / args.n_peer
    per_sample_ours = t / (args.n / acc)  # per drawn sample, like the peer
    print(
        f"phonopy loop: {args.n_peer} drawn samples in {t_peer:.2f} s ({ok} stable) -> {per_sample_peer * 1e3:.2f} ms/sample vs fcinv {per_sample_ours * 1e3:.3f} ms/sample"
    )
    print(
        f"RESULT dataset_10k_s={t:.2f} accepted_fraction={acc:.3f} speedup_vs_phonopy_loop={per_sample_peer / per_sample_ours:.1f}"
    )


if __name__ == "__main__":
    main()
