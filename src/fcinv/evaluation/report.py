"""Run the whole evaluation of one or more models on a dataset's test split.

Writes into ``out_dir``: ``metrics.json`` (clean R²/MAE per parameter, the noise
grid, latent statistics, provenance) and PNG figures: parity plots, R² bars,
VAE reconstructions, noisy example spectra, R² heatmaps over the noise grid,
the latent spread, UMAP of μ (with the ``[latent]`` extra) and a decoded latent
interpolation, and training curves.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fcinv.dataset.io import Dataset, default_command, read_dataset
from fcinv.errors import CheckpointError, install_command
from fcinv.evaluation import plots
from fcinv.evaluation.latent import ACTIVE_KL_THRESHOLD, LatentStats, interpolate, umap_embedding
from fcinv.evaluation.metrics import FCMetrics, noise_grid_metrics
from fcinv.inference import FCPredictor, load_model
from fcinv.models.checkpoint import atomic_write_json, check_grid
from fcinv.models.scaling import minmax_scale
from fcinv.noise import NOISE_GRID, NoiseGrid, add_noise, expected_snr

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    """Options of :func:`run_evaluation`.

    Parameters
    ----------
    noise_grid
        Evaluate over the 5×5 noise grid (the slowest part: 25 passes over the test set).
    latent
        Latent analysis of VAE models.
    umap
        UMAP figure (needs ``umap-learn``; skipped with a note otherwise).
    max_test
        Use only the first ``max_test`` test spectra.
    seed
        Seed of noise draws, latent samples and UMAP.
    k_samples
        0: regress μ; K > 0: mean of K latent samples (VAE).
    n_examples
        Number of reconstruction examples.
    device
        Torch device for inference.
    progress
        Progress bars.
    figures
        Write the PNG figures (False: metrics only).
    """

    noise_grid: bool = True
    latent: bool = True
    umap: bool = True
    max_test: int | None = None
    seed: int = 0
    k_samples: int = 0
    n_examples: int = 4
    device: str | None = "cpu"
    progress: bool = True
    figures: bool = True


def _examples(theta: np.ndarray, n: int) -> np.ndarray:
    """Test indices spread over the range of FC0 (its quantiles)."""
    order = np.argsort(theta[:, 0])
    return order[np.linspace(0, len(order) - 1, min(n, len(order))).round().astype(int)]


def _history(pred: FCPredictor) -> dict[str, list]:
    out = {}
    for part in ("vae", "regressor", "resnet"):
        m = getattr(pred, part)
        if m is not None and m.checkpoint is not None:
            hist = (m.checkpoint.raw.get("training") or {}).get("history")
            if hist:
                out[part] = hist
    return out


def run_evaluation(
    models: dict[str, str | os.PathLike | FCPredictor],
    data: str | os.PathLike | Dataset,
    out_dir: str | os.PathLike,
    config: EvalConfig = EvalConfig(),
    noise: NoiseGrid = NOISE_GRID,
    command: str | None = None,
) -> dict:
    """Evaluate models on the test split of ``data``; write figures and ``metrics.json`` to ``out_dir``.

    Parameters
    ----------
    models
        label → model directory / shipped name / :class:`FCPredictor`.
    data
        Dataset file (or object) whose test split is used.
    out_dir
        Output folder (created).

    Returns
    -------
    dict
        The content of ``metrics.json``.

    Raises
    ------
    GridError
        A model was trained on another grid than the dataset's.
    CheckpointError
        A model predicts other parameters than the dataset holds.
    """
    out = Path(out_dir)
    ds = data if isinstance(data, Dataset) else read_dataset(data, lazy=True)
    theta, spectra = ds.part("test", config.max_test)
    ds.close()
    preds: dict[str, FCPredictor] = {}
    for label, m in models.items():
        p = m if isinstance(m, FCPredictor) else load_model(m, device=config.device)
        check_grid(p.grid, ds.grid, f"model {label!r}")
        if tuple(p.names) != tuple(ds.names):
            raise CheckpointError(
                f"model {label!r} predicts {list(p.names)} but the dataset holds {list(ds.names)}. Evaluate it on its own material's dataset."
            )
        preds[label] = p
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are read: a bad input writes nothing
    figures: list[str] = []

    def fig(f, name: str) -> None:
        if not config.figures:
            return
        plots.save(f, out / name)
        figures.append(name)

    report: dict = {
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": command or default_command(),
        "config": asdict(config),
        "dataset": {
            "path": str(ds.path) if ds.path else "",
            "content_hash": ds.content_hash,
            "material": ds.meta.get("material", ""),
            "n_test": int(len(theta)),
        },
        "names": list(ds.names),
        "models": {},
    }
    # ---------------------------------------------------------------- clean test
    r2_all = {}
    for label, p in preds.items():
        y, _ = p.predict_batch(spectra, k_samples=config.k_samples, seed=config.seed)
        met = FCMetrics.compute(ds.names, theta, y)
        r2_all[label] = met.r2
        report["models"][label] = {"kind": p.kind, "source": p.source, "clean": met.to_dict()}
        fig(
            plots.parity(
                theta, y, ds.names, met.r2, met.mae, title=f"{label}: clean test ({len(theta)} spectra)"
            ),
            f"parity_{label}.png",
        )
        for part, hist in _history(p).items():
            fig(plots.training_curves(hist, f"{label}: {part}"), f"training_{label}_{part}.png")
        log.info("%s clean R² %s", label, np.round(met.r2, 3).tolist())
    fig(plots.r2_bars(r2_all, ds.names), "r2_clean.png")
    # ------------------------------------------------------- VAE: reconstructions, latent
    scaled = minmax_scale(spectra)
    ex = _examples(theta, config.n_examples)
    for label, p in preds.items():
        if p.vae is None:
            continue
        mu, logvar = p.encode(spectra)
        fig(
            plots.reconstructions(scaled[ex], p.decode(mu[ex]), ds.grid, labels=[f"#{i}" for i in ex]),
            f"reconstructions_{label}.png",
        )
        rec = p.decode(mu)
        report["models"][label]["reconstruction_mse"] = float(((rec - scaled) ** 2).mean())
        if not config.latent:
            continue
        st = LatentStats.compute(mu, logvar, ACTIVE_KL_THRESHOLD)
        report["models"][label]["latent"] = st.to_dict()
        fig(plots.latent_spread(st.mu, st.logvar, st.active, st.kl_per_dim), f"latent_spread_{label}.png")
        lo, hi = int(np.argmin(theta[:, 0])), int(np.argmax(theta[:, 0]))
        fig(
            plots.interpolation(
                p.decode(interpolate(mu[lo], mu[hi], 8)),
                ds.grid,
                (theta[lo, 0], theta[hi, 0]),
                f"FC0 {ds.names[0]}",
            ),
            f"latent_interpolation_{label}.png",
        )
        if config.umap and len(mu) >= 10:
            emb = umap_embedding(mu, seed=config.seed)
            if emb is not None:
                fig(plots.umap_scatter(emb, theta, ds.names), f"latent_umap_{label}.png")
            else:
                report["models"][label]["umap"] = (
                    f"skipped: umap-learn not installed ({install_command('latent')})"
                )
    # ---------------------------------------------------------------- noise grid
    if config.noise_grid:
        i0 = int(ex[len(ex) // 2])
        shown = [
            (0, 0),
            (len(noise.backgrounds) // 2, len(noise.scales) // 2),
            (len(noise.backgrounds) - 1, len(noise.scales) - 1),
        ]
        shown += [(0, len(noise.scales) - 1), (len(noise.backgrounds) - 1, 0)]
        imgs, titles = [scaled[i0]], ["clean"]
        for a, b in shown:
            s = noise.setting(a, b)
            imgs.append(
                add_noise(spectra[i0], s.background, s.scale, np.random.default_rng([config.seed, a, b]))
            )
            titles.append(f"{s.label}, SNR {float(expected_snr(spectra[i0], s.background, s.scale)):.1f}")
        fig(plots.noise_examples(imgs, titles, ds.grid), "noise_examples.png")
        res = noise_grid_metrics(
            preds,
            theta,
            spectra,
            noise,
            seed=config.seed,
            k_samples=config.k_samples,
            progress=config.progress,
        )
        for label, r in res.items():
            report["models"][label]["noise_grid"] = r.to_dict()
            fig(
                plots.noise_heatmaps(
                    r.r2,
                    noise.backgrounds,
                    noise.scales,
                    ds.names,
                    r.snr_median,
                    title=f"{label}: R² over the noise grid",
                ),
                f"noise_r2_{label}.png",
            )
    report["figures"] = figures
    atomic_write_json(report, out / "metrics.json")
    return report
