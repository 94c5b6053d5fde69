"""A toy forward model for tests, benchmarks and examples that need no crystal.

Each of ``n_branch`` "phonon branches" has a dispersion

    E_b(q)² = A · Σ_j W[b, j] · θ_j · (1 − cos(π (1 + j // 2) q))  +  O_b · θ_0

on a path q ∈ [0, 1], with weights that fall with j (so θ_0 moves the image most,
like the paper's FC0) and an optical offset O_b for every other branch. The
intensity is a Gaussian line of width ``width`` meV at E_b(q) with a 1/E weight,
as a one-phonon cross-section has. It is not physics; it gives images with the
structure of I(q, E) (thin curved lines on an empty background) whose line
positions depend smoothly and non-linearly on θ.
"""

from __future__ import annotations

import numpy as np

from fcinv.dataset.io import Dataset, make_split
from fcinv.grid import SpectrumGrid


def toy_grid(n_q: int = 16, n_e: int = 12, e_max: float = 40.0) -> SpectrumGrid:
    """A straight path Γ→X with ``n_q`` q-bins and ``n_e`` energy bins on [0, e_max] meV."""
    q = np.zeros((n_q, 3))
    q[:, 1] = (np.arange(n_q) + 0.5) / n_q
    return SpectrumGrid(
        q_rlu=q,
        energy_edges=np.linspace(0.0, e_max, n_e + 1),
        labels=("Γ", "X"),
        ticks=(0.0, float(n_q)),
        material="toy",
        segment_bins=(n_q,),
    )


def _weights(k: int, n_branch: int) -> np.ndarray:
    j = np.arange(k)
    w = np.empty((n_branch, k))
    for b in range(n_branch):
        w[b] = (0.6**j) * (1.0 + 0.5 * np.cos(1.3 * (b + 1) * (j + 1)))
    return w


def toy_spectra(
    theta: np.ndarray, grid: SpectrumGrid, n_branch: int = 3, width: float | None = None
) -> np.ndarray:
    """Toy I(q, E) for each row of ``theta``.

    Parameters
    ----------
    theta
        Shape (N, k) float64, positive "force constants" of order 1.
    grid
        Output grid.
    n_branch
        Number of dispersion branches.
    width
        Gaussian line width in meV (default: 1.5 energy bins).

    Returns
    -------
    np.ndarray
        Shape (N, n_q, n_E) float32, peak-normalised per spectrum.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    n, k = theta.shape
    q = (np.arange(grid.n_q) + 0.5) / grid.n_q
    e = grid.energy
    emax = grid.energy_edges[-1]
    width = 1.5 * float(np.mean(np.diff(grid.energy_edges))) if width is None else width
    w = _weights(k, n_branch)
    g = np.stack([1 - np.cos(np.pi * (1 + j // 2) * q) for j in range(k)])  # (k, n_q)
    scale = (0.45 * emax) ** 2 / 2.0
    out = np.zeros((n, grid.n_q, grid.n_e))
    for b in range(n_branch):
        e2 = scale * np.einsum("nj,j,jq->nq", theta, w[b], g)
        if b % 2 == 1:
            e2 = e2 + 0.8 * scale * theta[:, :1] * (1 + 0.2 * b)
        eb = np.sqrt(np.clip(e2, 0.0, None))  # (n, n_q)
        amp = 1.0 / np.maximum(eb, 0.1 * emax)
        out += amp[..., None] * np.exp(-0.5 * ((e[None, None, :] - eb[..., None]) / width) ** 2)
    out /= out.reshape(n, -1).max(axis=1)[:, None, None]
    return out.astype(np.float32)


def make_toy_dataset(
    n: int = 200,
    k: int = 4,
    n_q: int = 16,
    n_e: int = 12,
    seed: int = 0,
    n_branch: int = 3,
    low: float = 0.5,
    high: float = 1.5,
) -> Dataset:
    """A toy dataset with θ uniform in [low, high]^k, its spectra, split and full metadata.

    Parameters
    ----------
    n
        Number of samples.
    k
        Number of parameters (names ``toy0..``).
    n_q, n_e
        Grid size.
    seed
        Seed of θ and of the split.
    """
    rng = np.random.default_rng(seed)
    grid = toy_grid(n_q, n_e)
    theta = rng.uniform(low, high, size=(n, k))
    spectra = toy_spectra(theta, grid, n_branch=n_branch)
    meta = {
        "material": "toy",
        "seed": seed,
        "command": f"fcinv.dataset.toy.make_toy_dataset(n={n}, k={k}, n_q={n_q}, n_e={n_e}, seed={seed})",
        "domain_low": np.full(k, low),
        "domain_high": np.full(k, high),
        "fixed_names": [],
        "fixed_values": [],
        "width_meV": 1.5 * float(np.mean(np.diff(grid.energy_edges))),
        "accepted_fraction": 1.0,
        "forward_model": {"name": "toy", "n_branch": n_branch},
    }
    return Dataset(
        theta=theta,
        names=tuple(f"toy{j}" for j in range(k)),
        spectra=spectra,
        grid=grid,
        split=make_split(n, seed=seed),
        meta=meta,
    )
