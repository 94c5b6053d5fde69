"""The table of ``fcinv`` commands (shared by the dispatcher and the command helpers)."""

from __future__ import annotations

#: command → (module, one-line description)
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("fcinv.cli.simulate", "θ or a phonopy FC set → I(q, E) on the q-path (HDF5 + PNG)"),
    "project": ("fcinv.cli.project", "project a phonopy FC set onto the symmetry-reduced parameters θ"),
    "reference": (
        "fcinv.cli.reference",
        "Stage I: force-field ensemble → θ bounds, sensitivity ranking (needs [mlff])",
    ),
    "prepare": (
        "fcinv.cli.prepare",
        "a new crystal: structure file → Stage I → dataset → trained model, in one material folder",
    ),
    "dataset": (
        "fcinv.cli.dataset",
        "Stage I: sample the widened domain → training set of (θ, I(q, E)) pairs",
    ),
    "train": ("fcinv.cli.train", "Stage II: train the VAE, the FC regressor or ResNet-18"),
    "evaluate": ("fcinv.cli.evaluate", "Stage II: R², MAE, noise grid, latent analysis, figures"),
    "simulate-experiment": (
        "fcinv.cli.simexp",
        "a simulated ToF single-crystal experiment (Euphonic S(Q,E), instrument, counts)",
    ),
    "fold": ("fcinv.cli.fold", "Stage III: fold a measured 4D S(Q,E) onto the model's q-path"),
    "infer": (
        "fcinv.cli.infer",
        "Stage III: measured spectrum → FCs with uncertainties (optionally refined by a fit)",
    ),
    "fit": ("fcinv.cli.fit", "classical baseline: least-squares fit of θ to a folded I(q, E)"),
    "fit-dispersion": (
        "fcinv.cli.fit_dispersion",
        "fit θ to a table of measured phonon energies (triple-axis style)",
    ),
    "export": ("fcinv.cli.export", "write θ as phonopy FORCE_CONSTANTS + POSCAR"),
    "demo": ("fcinv.cli.demo", "Stage III end to end on the embedded Ge default"),
    "advise": (
        "fcinv.cli.advise",
        "steering: rank the next goniometer orientations, say when to stop (--watch: live loop)",
    ),
}
