"""Stage III end to end: any measured input → a folded spectrum on the model's grid → FCs ± σ.

:func:`load_spectrum` reads every input fcinv knows (a folded-spectrum file, a
4D volume — fcinv HDF5, Mantid MDHisto NeXus, a plain HDF5/NPZ array — or
pathSQE's folded output), folds 4D data onto the model's q-path, and refuses a
spectrum on another grid unless asked to rebin it. :func:`invert` runs the
trained model (and optionally the refinement fit) and :func:`plot_inversion`
draws the input, its reconstruction and the inferred dispersion.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcinv.errors import DataError, GridError
from fcinv.grid import SpectrumGrid

log = logging.getLogger(__name__)


# ----------------------------------------------------------------- reading
def _h5_format(path: Path) -> str | None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
            if fmt is not None:
                return fmt.decode() if isinstance(fmt, bytes) else str(fmt)
            if "MDHistoWorkspace" in f or any("MDHisto" in str(k) for k in f.keys()):
                return "mdhisto"
            return "array4d"
    except OSError:
        return None


def load_spectrum(
    path: str | Path, grid: SpectrumGrid, crystal, *, rebin: bool = False, transpose: bool = False, q_tolerance: float = 0.05, corrections=None
):
    """Read ``path`` into a :class:`~fcinv.experiment.folded.FoldedSpectrum` on ``grid``.

    Parameters
    ----------
    path
        A folded spectrum (fcinv HDF5, pathSQE ``.npy``/``.npz``) or a 4D volume
        (fcinv volume HDF5, Mantid MDHisto NeXus, plain HDF5/NPZ array).
    grid
        The model's grid.
    crystal
        The crystal (its point group folds 4D data).
    rebin
        Interpolate a folded spectrum on another grid (same path labels) onto ``grid``.
    transpose
        pathSQE output stored (n_E, n_q).
    q_tolerance
        Folding tube radius, r.l.u.
    corrections
        :class:`fcinv.experiment.fold.Corrections` applied to 4D data before folding.
    """
    from fcinv.experiment.folded import FoldedSpectrum, read_folded

    path = Path(path)
    if not path.exists():
        raise DataError(f"input '{path}' does not exist. Pass a folded spectrum or a 4D S(Q,E) file.")
    suffix = path.suffix.lower()
    if suffix in {".npy", ".npz"} and "folded" in path.name:
        fs = FoldedSpectrum.from_pathsqe(path, grid, transpose=transpose)
    elif suffix in {".npy", ".npz"}:
        fs = _fold(_volume_from_array(path), grid, crystal, q_tolerance, corrections)
    else:
        fmt = _h5_format(path)
        if fmt is None:
            raise DataError(f"'{path}' is not an HDF5/NeXus file fcinv can read. Pass a folded spectrum (.h5), a 4D volume (.h5/.nxs/.npz) or pathSQE output (.npy).")
        if fmt == "fcinv-folded":
            fs = read_folded(path)
        elif fmt == "fcinv-volume":
            from fcinv.experiment.volume import Volume4D

            fs = _fold(Volume4D.from_hdf5(path), grid, crystal, q_tolerance, corrections)
        elif fmt == "fcinv-simulated-run":
            from fcinv.experiment.simulate import SimulatedRun

            fs = _fold(SimulatedRun.read(path).total(), grid, crystal, q_tolerance, corrections)
        elif fmt == "mdhisto":
            from fcinv.experiment.volume import Volume4D

            fs = _fold(Volume4D.from_mdhisto(path), grid, crystal, q_tolerance, corrections)
        elif fmt == "fcinv-dataset":
            raise DataError(f"'{path}' is a training dataset, not a measurement. Pass one spectrum (fcinv simulate, fcinv fold) or a 4D volume.")
        else:
            fs = _fold(_volume_from_array(path), grid, crystal, q_tolerance, corrections)
    if not fs.grid.same_as(grid):
        if not rebin:
            grid.check_same(fs.grid, what=f"'{path.name}'")
        fs = rebin_spectrum(fs, grid)
    return fs


def _fold(volume, grid: SpectrumGrid, crystal, q_tolerance: float, corrections=None):
    from fcinv.experiment.fold import fold_volume

    centering = {"fcc": "F", "bcc": "I"}.get(crystal.lattice_type, "P")
    return fold_volume(volume, grid, crystal.point_group_rlu, centering=centering, q_tolerance=q_tolerance, corrections=corrections)


def _volume_from_array(path: Path):
    from fcinv.experiment.volume import Volume4D

    return Volume4D.from_array_file(path)


def rebin_spectrum(fs, grid: SpectrumGrid):
    """Linear interpolation of a folded spectrum onto ``grid`` (same path labels, any binning).

    Each path segment is mapped onto [0, 1] and interpolated there; energies are
    interpolated between bin centres. A target pixel is measured only when every
    source pixel it draws on was measured.
    """
    from fcinv.experiment.folded import FoldedSpectrum

    src = fs.grid
    if tuple(src.labels) != tuple(grid.labels) or not src.segment_bins or not grid.segment_bins:
        raise GridError(
            f"cannot rebin: the input path {'-'.join(src.labels) or '?'} differs from the model's {'-'.join(grid.labels)}. Fold the data onto the model's path instead."
        )

    def seg_coords(g: SpectrumGrid) -> np.ndarray:
        out = []
        for k, nb in enumerate(g.segment_bins):
            out.append(k + (np.arange(nb) + 0.5) / nb)
        return np.concatenate(out)

    xs, xt = seg_coords(src), seg_coords(grid)
    es, et = src.energy, grid.energy
    img = np.where(fs.mask, fs.intensity, np.nan)

    def interp2(a: np.ndarray) -> np.ndarray:
        # along q (per segment: no interpolation across a segment boundary)
        seg_s, seg_t = np.floor(xs).astype(int), np.floor(xt).astype(int)
        tmp = np.full((len(xt), a.shape[1]), np.nan)
        for k in np.unique(seg_t):
            s_idx, t_idx = np.nonzero(seg_s == k)[0], np.nonzero(seg_t == k)[0]
            for j in range(a.shape[1]):
                tmp[t_idx, j] = np.interp(xt[t_idx], xs[s_idx], a[s_idx, j], left=np.nan, right=np.nan) if len(s_idx) > 1 else a[s_idx[0], j]
        out = np.full((len(xt), len(et)), np.nan)
        for i in range(len(xt)):
            out[i] = np.interp(et, es, tmp[i], left=np.nan, right=np.nan)
        return out

    inten = interp2(img)
    err = interp2(np.where(fs.mask, fs.error, np.nan)) if np.isfinite(fs.error).any() else np.full(grid.shape, np.nan)
    meta = dict(fs.meta)
    meta["rebinned_from"] = {"shape": list(src.shape), "fingerprint": src.fingerprint()}
    return FoldedSpectrum.from_arrays(inten, grid, error=err, meta=meta)


# --------------------------------------------------------------- inverting
@dataclass
class Inversion:
    """The answer to "what are the force constants of this spectrum?".

    Attributes
    ----------
    names
        Parameter names (FC0 first).
    theta, sigma
        Shape (k,) eV/Å²: the ML mean and standard deviation over latent samples.
    prediction
        The raw :class:`fcinv.inference.Prediction`.
    refined
        The refinement fit's result (``None`` without ``refine``).
    frequencies
        Shape (n_q, n_modes) meV: the forward model's dispersion at the final θ.
    timings
        Seconds spent per step.
    """

    names: tuple[str, ...]
    theta: np.ndarray
    sigma: np.ndarray
    prediction: object
    refined: object | None = None
    frequencies: np.ndarray | None = None
    timings: dict = field(default_factory=dict)

    @property
    def final_theta(self) -> np.ndarray:
        """The refined θ when a refinement ran, else the ML mean."""
        return np.asarray(self.refined.theta) if self.refined is not None else self.theta

    @property
    def final_sigma(self) -> np.ndarray:
        return np.asarray(self.refined.sigma) if self.refined is not None else self.sigma

    def as_dict(self) -> dict:
        out = {
            "names": list(self.names),
            "ml": {n: {"theta": float(t), "sigma": float(s)} for n, t, s in zip(self.names, self.theta, self.sigma)},
            "unit": "eV/Å^2",
            "sigma_meaning": "standard deviation of the regressor's output over latent samples from the encoder's N(μ, σ²)",
            "timings_s": self.timings,
        }
        if self.refined is not None:
            r = self.refined
            out["refined"] = {n: {"theta": float(t), "sigma": float(s)} for n, t, s in zip(self.names, self.final_theta, self.final_sigma)}
            out["refine_info"] = r.as_dict() if hasattr(r, "as_dict") else {}
        return out


def invert(fs, predictor, model, *, k_samples: int = 100, seed: int = 0, refine: bool = False) -> Inversion:
    """Infer θ ± σ from a folded spectrum; optionally refine by a least-squares fit.

    Parameters
    ----------
    fs
        A FoldedSpectrum on the predictor's grid.
    predictor
        A :class:`fcinv.inference.FCPredictor`.
    model
        The forward model varying the predictor's parameters (for the dispersion and the fit).
    """
    if tuple(model.names) != tuple(predictor.names):
        raise GridError(f"the model predicts {list(predictor.names)} but the forward model varies {model.names}. Use the material's reference model.")
    predictor.grid.check_same(fs.grid, what="the spectrum")
    t0 = time.perf_counter()
    img = np.where(fs.mask, fs.intensity, np.nan)
    pred = predictor.predict(img, k_samples=k_samples, seed=seed)
    timings = {"ml": time.perf_counter() - t0}
    refined = None
    if refine:
        from fcinv.fitting import refine as refine_fit

        t1 = time.perf_counter()
        refined = refine_fit(model, fs, pred)  # the prediction itself: refine scores its latent samples for the start
        timings["refine"] = time.perf_counter() - t1
    inv = Inversion(tuple(predictor.names), np.asarray(pred.theta), np.asarray(pred.sigma), pred, refined, timings=timings)
    inv.frequencies = model.frequencies(inv.final_theta)[0]
    return inv


def plot_inversion(path: str | Path, fs, inv: Inversion, *, title: str = "", truth_frequencies: np.ndarray | None = None) -> Path:
    """Three panels: the input, the VAE reconstruction, and the inferred dispersion over the input."""
    from fcinv.plotting import _plt, plot_spectrum, save_figure

    plt = _plt()
    rec = getattr(inv.prediction, "reconstruction", None)
    scaled = getattr(inv.prediction, "spectrum", None)
    n = 3 if rec is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), dpi=120, sharey=True)
    grid = fs.grid
    shown = np.where(fs.mask, scaled if scaled is not None else fs.intensity, np.nan)
    plot_spectrum(axes[0], shown, grid, title="input (scaled; grey = not measured)")
    if rec is not None:
        plot_spectrum(axes[1], rec, grid, title="VAE reconstruction")
    plot_spectrum(axes[-1], shown, grid, frequencies=inv.frequencies, title="inferred dispersion over the input", label="inferred")
    if truth_frequencies is not None:
        x = np.arange(grid.n_q) + 0.5
        for m in range(truth_frequencies.shape[1]):
            axes[-1].plot(x, truth_frequencies[:, m], ls="--", color="tab:red", lw=0.7, label="truth" if m == 0 else None)
        axes[-1].legend(loc="upper right", fontsize=7)
    for ax in axes[1:]:
        ax.set_ylabel("")
    return save_figure(fig, path, title=title)
