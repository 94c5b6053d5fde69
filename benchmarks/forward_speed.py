"""Forward-model speed: fcinv spectra per second against phonopy and Euphonic, same FC sets, same q-points.

For N stable Ge θ samples (8 free parameters about the DFT Ge set's projection,
or the embedded reference when ../shared/data is absent) this times

- fcinv: ``ForwardModel.spectra`` — eigenvalues *and* the broadened I(q, E) image (140 × 80);
- phonopy: ``Phonopy.run_qpoints`` on the same full FC array (default backend), frequencies only;
- Euphonic: ``ForceConstants.calculate_qpoint_frequencies`` (C extension if built), frequencies only,

at the same 140 path q-points, and checks that the three agree. Building each peer's
force-constant object is not timed. Euphonic is timed on a subset (it is the slowest).
Timing: fcinv's best of 3 batch runs; the peers' median per call (robust to load spikes).
Last line: ``RESULT forward_vs_phonopy=<ratio> forward_vs_euphonic=<ratio> spectra_per_s=<n>``.

Usage: python benchmarks/forward_speed.py [--n 1000] [--n-euphonic 100] [--big 10000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal, default_grid
from fcinv.fcspace import FCSpace, read_phonopy
from fcinv.forward import ForwardModel
from fcinv.units import THZ_TO_MEV

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "ge_dft_pathsqe"


def reference_theta(crystal, space):
    if (SHARED / "FORCE_CONSTANTS").is_file():
        pairs = read_phonopy(crystal, SHARED / "FORCE_CONSTANTS", SHARED / "POSCAR", (4, 4, 4))
        return space.project(pairs).theta, "DFT Ge (projection)"
    try:
        from fcinv.reference import load_reference

        return load_reference("Ge").theta_ref, "embedded reference"
    except Exception:
        return space.central_force_theta({"1NN": 6.0, "2NN": 0.6}), "central-force springs"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--n-euphonic", type=int, default=100)
    ap.add_argument("--big", type=int, default=10000, help="also time this many fcinv spectra (0 to skip)")
    args = ap.parse_args()

    crystal = Crystal.from_name("Ge")
    space = FCSpace.for_material(crystal)
    grid = default_grid(crystal)
    theta_ref, source = reference_theta(crystal, space)
    model = ForwardModel(space, grid, theta_ref, free=space.names[:8])
    rng = np.random.default_rng(0)
    cand = model.theta0 * (1 + 0.3 * rng.uniform(-1, 1, size=(3 * args.n, model.k)))
    theta = cand[model.is_stable(cand)][: args.n]
    full = model.full_theta(theta)
    print(f"{len(theta)} stable Ge θ samples about the {source}; {grid.n_q} q-points, {grid.n_e} energy bins")

    # ---- fcinv (warm up the compiled kernels first; best of 3 repeats, as for the peers' loops below)
    model.spectra(theta[:8])
    _, ours = model.spectra(theta, return_frequencies=True)
    t_fcinv = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        model.spectra(theta)
        t_fcinv = min(t_fcinv, (time.perf_counter() - t) / len(theta))

    # ---- phonopy
    from phonopy import Phonopy

    ph = Phonopy(crystal.to_phonopy_atoms(), supercell_matrix=np.diag([4, 4, 4]), primitive_matrix="P")
    qf = crystal.rlu_to_prim_frac(grid.q_rlu)
    fcs = [space.to_phonopy(f, (4, 4, 4)) for f in full]
    times = []
    err_ph = 0.0
    for f, mine in zip(fcs, ours):
        ph.force_constants = f
        t0 = time.perf_counter()
        ph.run_qpoints(qf)
        times.append(time.perf_counter() - t0)
        err_ph = max(err_ph, np.abs(ph.qpoints.frequencies * THZ_TO_MEV - mine).max())
    t_ph = float(np.median(times))  # median per call: robust to load spikes on a shared machine

    # ---- Euphonic
    t_eu = float("nan")
    err_eu = float("nan")
    eu_mode = "not installed"
    try:
        from euphonic import Crystal as ECrystal
        from euphonic import ForceConstants, ureg

        ecr = ECrystal(
            ureg.Quantity(crystal.lattice, "angstrom"),
            crystal.positions,
            np.array(crystal.symbols),
            ureg.Quantity(crystal.masses, "amu"),
        )
        sc = np.diag([4, 4, 4])
        n_sc = 128
        # compact (n_prim, n_sc) layout with phonopy's supercell ordering → Euphonic's cell_origins
        from phonopy.structure.cells import get_supercell

        sup = get_supercell(crystal.to_phonopy_atoms(), sc)
        frac = sup.scaled_positions @ sc  # in primitive-cell units
        sc2p = np.repeat(np.arange(crystal.n_atoms), n_sc // crystal.n_atoms)
        origins = np.rint(frac[: n_sc // crystal.n_atoms] - crystal.positions[0]).astype(int)
        p2s = np.arange(crystal.n_atoms) * (n_sc // crystal.n_atoms)
        n_eu = min(args.n_euphonic, len(fcs))
        eu_times = []
        err_eu = 0.0
        for f, mine in zip(fcs[:n_eu], ours[:n_eu]):
            compact = f[p2s]  # (n_prim, n_sc, 3, 3)
            # Euphonic wants (n_cells, 3 n_prim, 3 n_prim): cell c, atoms (i, j)
            n_cells = n_sc // crystal.n_atoms
            fc_e = np.zeros((n_cells, 3 * crystal.n_atoms, 3 * crystal.n_atoms))
            for j_sc in range(n_sc):
                j, c = sc2p[j_sc], j_sc % n_cells
                for i in range(crystal.n_atoms):
                    fc_e[c, 3 * i : 3 * i + 3, 3 * j : 3 * j + 3] = compact[i, j_sc]
            efc = ForceConstants(ecr, ureg.Quantity(fc_e, "eV/angstrom**2"), sc, origins)
            kw = {"asr": None, "use_c": True, "n_threads": 2}
            try:
                efc.calculate_qpoint_frequencies(grid.q_rlu[:2] @ np.eye(3), **kw)
                eu_mode = "C extension"
            except Exception:
                kw = {"asr": None}
                eu_mode = "pure Python (no C extension)"
            qe = qf
            t0 = time.perf_counter()
            r = efc.calculate_qpoint_frequencies(qe, **kw)
            eu_times.append(time.perf_counter() - t0)
            err_eu = max(err_eu, np.abs(r.frequencies.to("meV").magnitude - mine).max())
        t_eu = float(np.median(eu_times))
    except ImportError:
        pass

    sps = 1.0 / t_fcinv
    print(
        f"fcinv    {t_fcinv * 1e3:8.4f} ms/spectrum  ({sps:,.0f} spectra/s; eigenvalues + broadened 140×80 image)"
    )
    print(
        f"phonopy  {t_ph * 1e3:8.4f} ms/FC set    (run_qpoints, frequencies only)   max |Δ| vs fcinv {err_ph:.2e} meV"
    )
    print(
        f"Euphonic {t_eu * 1e3:8.4f} ms/FC set    ({eu_mode}, frequencies only)   max |Δ| vs fcinv {err_eu:.2e} meV"
    )
    if args.big:
        cand = model.theta0 * (1 + 0.3 * rng.uniform(-1, 1, size=(args.big, model.k)))
        t = time.perf_counter()
        model.spectra(cand)
        t_big = time.perf_counter() - t
        print(f"fcinv {args.big} spectra in {t_big:.2f} s")
    print(
        f"RESULT forward_vs_phonopy={t_ph / t_fcinv:.1f} forward_vs_euphonic={t_eu / t_fcinv:.1f} spectra_per_s={sps:.0f}"
    )


if __name__ == "__main__":
    main()
