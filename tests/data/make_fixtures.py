"""Make the small test fixtures in tests/data/ (run from the repository root; deterministic).

    python tests/data/make_fixtures.py

- ``io/tiny_mdhisto.nxs``: a SYNTHETIC 4D histogram in the layout of Mantid's SaveMD (version 2),
  dimensions [H,0,0], [0,K,0], [0,0,L], DeltaE, written with h5py (not by Mantid);
- ``io/tiny_array4d.npz``: a plain 4D array (signal, error, H, K, L edges, E centres);
- ``io/ge_pathsqe_folded.npy``: fcinv's forward-model Ge spectrum (the reference θ) on the Ge grid,
  float32, with every fifth q-column and E below 2 meV set to NaN as pathSQE marks unmeasured
  pixels: a stand-in for pathSQE's ``folded_path_plot_<n>.npy``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

HERE = Path(__file__).resolve().parent / "io"

DIMS = [
    ("[H,0,0]", "r.l.u.", np.linspace(-1, 1, 5)),
    ("[0,K,0]", "r.l.u.", np.linspace(0, 1.5, 4)),
    ("[0,0,L]", "r.l.u.", np.linspace(-0.2, 0.2, 3)),
    ("DeltaE", "meV", np.linspace(0, 10, 7)),
]


def tiny_signal(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = tuple(len(d[2]) - 1 for d in DIMS)
    sig = rng.uniform(0.1, 1.0, shape)
    sig[rng.random(shape) < 0.2] = np.nan
    return sig, (0.1 * np.nan_to_num(sig, nan=0.5)) ** 2


def write_mdhisto(path: Path) -> None:
    sig, es = tiny_signal()
    ids = [f"D{i}" for i in range(4)]
    rev = (3, 2, 1, 0)
    with h5py.File(path, "w") as f:
        ws = f.create_group("MDHistoWorkspace")
        ws.attrs["SaveMDVersion"] = 2
        ws.create_dataset("coordinate_system", data=np.array([3], dtype=np.uint32))
        d = ws.create_group("data")
        for i, (name, unit, edges) in zip(ids, DIMS):
            ds = d.create_dataset(i, data=edges)
            ds.attrs["units"], ds.attrs["long_name"] = unit, name
        s = d.create_dataset("signal", data=np.transpose(sig, rev))
        s.attrs["axes"] = ":".join(ids[::-1])
        d.create_dataset("errors_squared", data=np.transpose(es, rev))
        d.create_dataset("num_events", data=np.transpose(np.ones_like(sig), rev))
        d.create_dataset("mask", data=np.transpose(np.zeros(sig.shape, np.int8), rev))


def write_array(path: Path) -> None:
    sig, es = tiny_signal(1)
    e = DIMS[3][2]
    np.savez_compressed(
        path,
        signal=sig,
        error=np.sqrt(es),
        H=DIMS[0][2],
        K=DIMS[1][2],
        L=DIMS[2][2],
        E=0.5 * (e[1:] + e[:-1]),
    )


def write_pathsqe(path: Path) -> None:
    import fcinv

    spec = fcinv.simulate("Ge").intensity.astype(np.float32)
    spec[::5, :] = np.nan
    spec[:, :4] = np.nan
    np.save(path, spec)


if __name__ == "__main__":
    HERE.mkdir(parents=True, exist_ok=True)
    write_mdhisto(HERE / "tiny_mdhisto.nxs")
    write_array(HERE / "tiny_array4d.npz")
    write_pathsqe(HERE / "ge_pathsqe_folded.npy")
    for p in sorted(HERE.iterdir()):
        print(f"{p.relative_to(HERE.parent)}  {p.stat().st_size:,} bytes")
