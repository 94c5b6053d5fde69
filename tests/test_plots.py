"""Talk-ready figures: labelled axes and colourbars, the residual panel, σ bands, the phonon DOS,
the single-scan labels and the one --plot/--no-plot convention of the commands that draw."""

from __future__ import annotations

import argparse
import importlib
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pytest

from fcinv.grid import SpectrumGrid
from fcinv.plotting import (
    E_LABEL,
    INTENSITY_LABEL,
    Q_LABEL,
    RESIDUAL_LABEL,
    dispersion_band,
    new_figure,
    phonopy_dos,
    plot_spectrum,
    save_spectrum_png,
    scaled_model,
    theta_samples,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def grid() -> SpectrumGrid:
    """A 12 q × 10 E grid: Γ → X (6 bins), X → L (6 bins), 0–20 meV."""
    q = np.vstack(
        [
            np.c_[np.linspace(0.05, 0.95, 6), np.zeros(6), np.zeros(6)],
            np.c_[np.ones(6), np.linspace(0.05, 0.45, 6), np.linspace(0.05, 0.45, 6)],
        ]
    )
    return SpectrumGrid(q, np.linspace(0.0, 20.0, 11), ("Γ", "X", "L"), (0.0, 6.0, 12.0), "test", (6, 6))


def colorbar_labels(fig) -> list[str]:
    """The labels of every colourbar of ``fig``."""
    return [a.get_ylabel() for a in fig.axes if a.get_label() == "<colorbar>"]


def axes_titled(fig, start: str):
    (ax,) = [a for a in fig.axes if a.get_title().startswith(start)]
    return ax


# ---------------------------------------------------------------------------- spectrum panels
def test_spectrum_panel_has_labelled_axes_and_colourbar(grid):
    fig, ax = new_figure()
    plot_spectrum(ax, np.random.default_rng(0).random((12, 10)), grid, colorbar=INTENSITY_LABEL)
    assert ax.get_xlabel() == Q_LABEL and ax.get_ylabel() == E_LABEL
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Γ", "X", "L"]
    assert colorbar_labels(fig) == [INTENSITY_LABEL]


def test_spectrum_png_is_written_with_a_colourbar(grid, tmp_path):
    path = save_spectrum_png(tmp_path / "s.png", np.ones((12, 10)), grid, colorbar="counts")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_scaled_model_is_the_least_squares_scale_and_background():
    rng = np.random.default_rng(1)
    m = rng.random((8, 5))
    d = 2.5 * m + 0.3
    d[0, 0] = np.nan
    out = scaled_model(m, d)
    assert np.isnan(out[0, 0])
    np.testing.assert_allclose(out[1:], d[1:], atol=1e-12)


# ---------------------------------------------------------------------------- the inversion figure
def fake_run(grid, data, mask, *, samples=None, sigma=None, parts=None, extra=None):
    theta = np.array([1.0, -0.5])
    res = SimpleNamespace(
        names=("a", "b"),
        theta=theta,
        sigma=np.array([0.1, 0.05]) if sigma is None else sigma,
        method="ML",
        parts=parts or {},
        extra=extra or {},
    )
    pred = SimpleNamespace(spectrum=None, reconstruction=None, samples=samples)
    fs = SimpleNamespace(grid=grid, mask=mask, intensity=data)
    freqs = np.c_[np.linspace(1, 10, 12), np.linspace(2, 15, 12)]
    return SimpleNamespace(spectrum=fs, prediction=pred, result=res, frequencies=freqs)


def test_inversion_figure_has_the_residual_panel_equal_to_data_minus_model(grid, tmp_path):
    from fcinv.pipeline.plots import inversion_figure, plot_inversion

    rng = np.random.default_rng(2)
    model = rng.random((12, 10))
    noise = 0.05 * rng.standard_normal((12, 10))
    data = 3.0 * model + 0.2 + noise
    mask = np.ones((12, 10), bool)
    mask[:2, :3] = False
    run = fake_run(grid, data, mask)
    band = (run.frequencies - 0.5, run.frequencies + 0.5)
    dos = {
        "inferred θ": (np.linspace(0, 20, 50), np.ones(50)),
        "reference": (np.linspace(0, 20, 50), np.ones(50)),
    }
    fig = inversion_figure(
        run,
        model_spectrum=model,
        band=band,
        band_label="±1σ band: test draws",
        truth_frequencies=run.frequencies * 1.01,
        dos=dos,
    )
    ax = axes_titled(fig, "residual")
    shown = np.where(mask, data, np.nan)
    ok = mask.ravel()
    a, b = np.polyfit(model.ravel()[ok], data.ravel()[ok], 1)  # an independent least-squares fit
    expected = np.where(mask, data - (a * model + b), np.nan)
    got = np.ma.filled(ax.images[0].get_array().astype(float), np.nan).T
    np.testing.assert_allclose(got, expected, atol=1e-10)
    assert np.all(np.isnan(got[:2, :3]))
    assert np.nanstd(got) == pytest.approx(np.std(noise[mask]), rel=0.2)  # what is left is the noise
    # diverging map centred at 0
    im = ax.images[0]
    assert im.get_cmap().name.startswith("RdBu_r") and im.norm.vmin == pytest.approx(-im.norm.vmax)
    assert not np.allclose(got[mask], shown[mask])
    # every image panel is labelled and has its colourbar
    for a_ in fig.axes:
        if a_.images and a_.get_label() != "<colorbar>":
            assert a_.get_xlabel() == Q_LABEL and a_.get_ylabel() == E_LABEL
    labels = colorbar_labels(fig)
    assert labels.count(INTENSITY_LABEL) == 2 and RESIDUAL_LABEL in labels
    disp = axes_titled(fig, "dispersion")
    legend = [t.get_text() for t in disp.get_legend().get_texts()]
    assert "±1σ band: test draws" in legend and "truth" in legend
    assert disp.collections  # the shaded band
    assert axes_titled(fig, "phonon DOS").get_xlabel() == E_LABEL
    assert plot_inversion(tmp_path / "inv.png", run, title="t").read_bytes()[:8] == PNG_MAGIC


# ---------------------------------------------------------------------------- σ bands
def test_theta_samples_uses_the_latent_samples_rescaled_to_sigma(grid):
    rng = np.random.default_rng(3)
    s = np.array([1.0, -0.5]) + rng.standard_normal((400, 2)) * [0.02, 0.01]
    run = fake_run(grid, np.ones((12, 10)), np.ones((12, 10), bool), samples=s, sigma=s.std(0))
    out, kind = theta_samples(run.result, run.prediction)
    np.testing.assert_allclose(out, s - s.mean(0) + run.result.theta)
    assert "latent" in kind and "rescaled" not in kind
    run.result.sigma = np.array([0.2, 0.1])  # a calibrated σ, ten times the raw spread
    out, kind = theta_samples(run.result, run.prediction)
    np.testing.assert_allclose(out.std(0), [0.2, 0.1], rtol=1e-10)
    assert "rescaled to the calibrated σ" in kind


def test_theta_samples_gaussian_from_covariance_or_sigma(grid):
    cov = np.array([[0.04, 0.03], [0.03, 0.04]])
    ones = np.ones((12, 10))
    run = fake_run(
        grid, ones, ones > 0, sigma=np.array([0.2, 0.2]), parts={"ml": None}, extra={"covariance": cov}
    )
    out, kind = theta_samples(run.result, None, n=4000, seed=1)
    assert "covariance" in kind
    np.testing.assert_allclose(np.cov(out.T), cov, atol=0.005)
    run.result.extra = {}
    run.result.sigma = np.array([0.1, np.inf])
    out, kind = theta_samples(run.result, None, n=4000)
    assert "θ ± σ (no covariance)" in kind and "held at θ" in kind
    assert out[:, 0].std() == pytest.approx(0.1, rel=0.05) and np.all(out[:, 1] == -0.5)


def test_dispersion_band_is_the_68_percent_interval():
    rng = np.random.default_rng(4)
    centre = np.array([30.0, 10.0])  # two well separated modes, given out of order
    f = centre + rng.standard_normal((20000, 3, 2))
    lo, hi = dispersion_band(f)
    np.testing.assert_allclose(lo, [[9.0, 29.0]] * 3, atol=0.05)
    np.testing.assert_allclose(hi, [[11.0, 31.0]] * 3, atol=0.05)


def test_fit_dispersion_band_brackets_the_fit(nb_crystal):
    from fcinv.fitting.dispersion_fit import model_energies
    from fcinv.fitting.plots import fit_dispersion_band
    from fcinv.reference import load_reference

    ref = load_reference("Nb")
    q = np.c_[np.linspace(0.1, 0.9, 7), np.zeros(7), np.zeros(7)]
    kw = {"reference": ref.pairs, "theta_ref": ref.theta_ref}
    line = np.sort(model_energies(ref.space, ref.theta_ref, q, **kw), axis=1)
    free = list(ref.space.names[:2])
    (lo, hi), label = fit_dispersion_band(ref.space, ref.theta_ref, free, np.diag([0.05, 0.05]) ** 2, q, **kw)
    assert "covariance" in label
    assert np.all(lo <= line + 1e-9) and np.all(hi >= line - 1e-9) and np.any(hi - lo > 0.01)
    assert fit_dispersion_band(ref.space, ref.theta_ref, free, np.full((2, 2), np.nan), q, **kw) is None


# ---------------------------------------------------------------------------- phonon DOS
def simple_cubic_phonopy():
    """One atom per cell, simple cubic a = 3 Å, nearest-neighbour springs (longitudinal 2, transverse
    0.5 eV/Å²), on a 3×3×3 supercell: a hand-built FC set with no fcinv code in it."""
    from phonopy import Phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    a = 3.0
    atoms = PhonopyAtoms(symbols=["Al"], cell=np.eye(3) * a, scaled_positions=[[0, 0, 0]], masses=[27.0])
    ph = Phonopy(atoms, supercell_matrix=np.eye(3, dtype=int) * 3, primitive_matrix="P", log_level=0)
    pos = ph.supercell.scaled_positions * 3  # in units of a
    n = len(pos)
    fc = np.zeros((n, n, 3, 3))
    for i in range(n):
        for j in range(n):
            d = (pos[j] - pos[i] + 1.5) % 3 - 1.5
            if np.isclose(np.linalg.norm(d), 1.0):
                e = d / np.linalg.norm(d)
                k = 2.0 * np.outer(e, e) + 0.5 * (np.eye(3) - np.outer(e, e))
                fc[i, j] -= k
                fc[i, i] += k
    ph.force_constants = fc
    return ph


def test_phonopy_dos_integrates_to_3n_in_mev():
    from fcinv.units import THZ_TO_MEV

    ph = simple_cubic_phonopy()
    e, g = phonopy_dos(ph, mesh=12, pitch_meV=0.05)
    assert np.trapezoid(g, e) == pytest.approx(3.0, rel=0.01)
    ph.run_qpoints([[0.5, 0.5, 0.5]])  # the band top of this model sits at R
    top = ph.qpoints.frequencies.max() * THZ_TO_MEV
    assert e[np.nonzero(g > 1e-6)[0][-1]] == pytest.approx(top, abs=0.2)


@pytest.mark.slow
def test_phonon_dos_of_ge_through_the_export_route():
    """The DOS of θ = θ_ref is the reference's; it integrates to 3 × 2 atoms; a stiffer 1NN moves it up."""
    from fcinv.material import load_material
    from fcinv.plotting import phonon_dos

    mat = load_material("Ge")
    e0, g0 = phonon_dos(mat, None, mesh=12)
    assert np.trapezoid(g0, e0) == pytest.approx(6.0, rel=0.01)
    name = mat.reference.space.names[0]
    t0 = float(mat.reference.theta_ref[0])
    e1, g1 = phonon_dos(mat, {name: 1.2 * t0}, mesh=12)
    assert np.trapezoid(g1, e1) == pytest.approx(6.0, rel=0.01)
    mean0, mean1 = np.trapezoid(e0 * g0, e0) / 6, np.trapezoid(e1 * g1, e1) / 6
    assert mean1 > mean0 + 0.1


@pytest.mark.slow
def test_phonon_dos_of_a_continued_refinement_is_its_own_space():
    """θ over every parameter of 11 shells (n_shells=11): zero beyond the cutoff, phonopy's DOS of it."""
    from fcinv.material import load_material
    from fcinv.plotting import _dos_setup, phonon_dos
    from fcinv.reference import load_reference

    ref = load_reference("Ge", 11)
    theta = dict(zip(ref.space.names, ref.theta_ref))
    e, g = phonon_dos("Ge", theta, mesh=10, n_shells=11)
    assert np.trapezoid(g, e) == pytest.approx(6.0, rel=0.01)
    ph, _, p2s, smat = _dos_setup("Ge")
    ph.force_constants = ref.space.to_phonopy(ref.theta_ref, smat)[p2s]
    e2, g2 = phonopy_dos(ph, mesh=10)
    np.testing.assert_allclose(g, g2)
    with pytest.raises(Exception, match="not a parameter of Ge"):
        phonon_dos(load_material("Ge"), theta, mesh=10)  # 11-shell names without n_shells


# ---------------------------------------------------------------------------- single-scan labels
def test_single_scan_labels_do_not_overlap():
    from fcinv.pipeline.plots import single_scans_figure

    names = tuple(f"{s}NN_{c}" for s in range(1, 7) for c in ("xx", "xy", "zz"))[:16]
    rng = np.random.default_rng(5)
    scans = SimpleNamespace(theta=rng.standard_normal((6, 16)), psi=np.arange(6) * 20.0, names=names)
    fig = single_scans_figure(scans, np.zeros(16), np.zeros(16), np.ones(16))
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = ax.get_yticklabels()
    assert [t.get_text() for t in labels] == [f"FC{i}  {n}" for i, n in enumerate(names)]
    boxes = [t.get_window_extent() for t in labels]
    assert not any(a.overlaps(b) for a, b in combinations(boxes, 2))


# ---------------------------------------------------------------------------- --plot/--no-plot
DRAWING = ["simulate", "fold", "infer", "fit", "fit-dispersion", "advise", "demo", "evaluate"]
WITH_PNG = {"simulate", "fold", "infer", "fit", "fit-dispersion", "advise"}


def parser_of(command: str) -> argparse.ArgumentParser:
    from fcinv.cli.commands import COMMANDS

    return importlib.import_module(COMMANDS[command][0]).get_parser()


@pytest.mark.parametrize("command", DRAWING)
def test_every_drawing_command_has_plot_no_plot(command):
    p = parser_of(command)
    flags = {s for a in p._actions for s in a.option_strings}
    assert {"--plot", "--no-plot"} <= flags
    assert any(isinstance(a, argparse.BooleanOptionalAction) for a in p._actions)
    text = p.format_help()
    assert "--plot, --no-plot" in text and "Figures: --plot/--no-plot" in " ".join(text.split())
    assert ("--png" in flags) == (command in WITH_PNG)
    if command in WITH_PNG:
        assert "--no-png" in flags and "--no-png " not in text.split("Figures:")[0]  # hidden


def convention_parser(default: bool) -> argparse.ArgumentParser:
    from fcinv.cli._common import add_plot_args

    p = argparse.ArgumentParser()
    add_plot_args(p, default=default, png_help="figure path")
    return p


@pytest.mark.parametrize(
    ("argv", "default", "wanted"),
    [
        ([], True, True),
        ([], False, False),
        (["--plot"], False, True),
        (["--no-plot"], True, False),
        (["--no-png"], True, False),  # the deprecated spelling still works
        (["--png", "f.png", "--no-png"], True, False),  # as it did before
        (["--png", "f.png"], False, True),
        (["--png", "f.png", "--plot"], True, True),
    ],
)
def test_plot_wanted(argv, default, wanted):
    from fcinv.cli._common import plot_wanted

    assert plot_wanted(convention_parser(default).parse_args(argv)) is wanted


@pytest.mark.parametrize("argv", [["--png", "f.png", "--no-plot"], ["--plot", "--no-png"]])
def test_plot_contradictions_are_one_line_errors(argv):
    from fcinv.cli._common import UsageError, plot_wanted

    with pytest.raises(UsageError, match="contradict") as e:
        plot_wanted(convention_parser(True).parse_args(argv))
    assert "\n" not in str(e.value)


def test_fit_dispersion_no_plot_and_no_png_write_no_figure(tmp_path, capsys):
    """The real command: --no-plot and the old --no-png both skip the figures; the JSON is written."""
    from fcinv.cli.main import main
    from fcinv.fitting import DispersionPoints
    from fcinv.fitting.dispersion_fit import model_energies, write_points
    from fcinv.reference import load_reference

    ref = load_reference("Nb")
    rng = np.random.default_rng(6)
    q = rng.uniform(-1, 1, (60, 3))
    e = model_energies(ref.space, ref.theta_ref, q, reference=ref.pairs, theta_ref=ref.theta_ref)
    b = rng.integers(0, 3, len(q))
    pts = DispersionPoints(q, e[np.arange(len(q)), b], np.full(len(q), 0.2), b)
    csv = write_points(tmp_path / "p.csv", pts)
    for flag in ("--no-plot", "--no-png"):
        out = tmp_path / f"{flag[2:]}.json"
        rc = main(["fit-dispersion", "--material", "Nb", str(csv), "--free", "1NN", "-o", str(out), flag])
        assert rc == 0 and out.exists()
        assert not list(tmp_path.glob("*.png"))
        assert "wrote" in capsys.readouterr().out


def test_the_model_panel_is_the_model_the_refinement_fitted(grid):
    """A physical refinement of a 4D volume: the figure draws its PhysicalModel against the raw fold it
    fitted, so that the residual is the fit's misfit; without the measurement the label says what is drawn."""
    from fcinv.experiment.volume import Volume4D
    from fcinv.forward import physical
    from fcinv.pipeline.plots import fitted_model, inversion_figure

    rng = np.random.default_rng(3)
    shape = (12, 10)
    phys_img, paper_img = rng.random(shape), rng.random(shape)
    mask = np.ones(shape, bool)
    mask[:3, :2] = False
    noise = 0.01 * rng.standard_normal(shape)
    raw_fold = 4.0 * phys_img + 0.1 + noise  # the raw fold: what the physical refinement fitted

    class PhysicalModel(physical.PhysicalModel):  # the fitted model's interface only
        names = ("a", "b")
        corrections = None

        def __init__(self):
            pass

        def spectra(self, theta):
            return phys_img[None] * theta[:, :1, None]

    class _Paper:
        names = ("a", "b")

        def spectra(self, theta):
            return paper_img[None] * theta[:, :1, None]

    loads = []
    pipe = SimpleNamespace(
        forward_model=_Paper(),
        refinement_model=lambda m: (PhysicalModel(), None),
        fold=lambda m, source, raw: SimpleNamespace(mask=mask, intensity=np.where(mask, raw_fold, 0.0)),
        continued_reference=lambda res: None,
        load=lambda m, **kw: loads.append((m, kw)) or object.__new__(Volume4D),
    )
    res = SimpleNamespace(
        names=("a", "b"),
        parts={"ml": object()},
        adequacy={"refinement_model": "PhysicalModel"},
        theta_dict=lambda: {"a": 1.0, "b": 2.0},
    )
    run = fake_run(grid, np.where(mask, paper_img, np.nan), mask)
    run.result = res
    volume = object.__new__(Volume4D)
    model, measured, label = fitted_model(pipe, run, volume)
    assert isinstance(model, PhysicalModel) and label == "PhysicalModel (the refinement's model)"
    np.testing.assert_array_equal(measured, np.where(mask, raw_fold, np.nan))
    assert loads == []
    # a path is loaded (with the file options) only because the refinement's model is not the pipeline's
    model, _, _ = fitted_model(pipe, run, "run.nxs", {"format": "nxspe"})
    assert isinstance(model, PhysicalModel) and loads[0] == ("run.nxs", {"format": "nxspe"})
    model, measured, label = fitted_model(pipe, run)
    assert isinstance(model, _Paper) and measured is None
    assert label == "_Paper (not the PhysicalModel the refinement fitted: pass the measurement)"
    # an ML answer (or a refinement with the pipeline's model) draws the pipeline's forward model
    ml_run = SimpleNamespace(result=SimpleNamespace(names=("a", "b"), parts={}, adequacy={}))
    assert isinstance(fitted_model(pipe, ml_run, volume)[0], _Paper)

    fig = inversion_figure(
        run,
        model_spectrum=phys_img,
        model_label="PhysicalModel (the refinement's model)",
        measured_spectrum=np.where(mask, raw_fold, np.nan),
        measured_label="measured (raw fold)",
    )
    got = np.ma.filled(axes_titled(fig, "residual").images[0].get_array().astype(float), np.nan).T
    assert np.nanstd(got) == pytest.approx(np.std(noise[mask]), rel=0.2)  # the fit's misfit: the noise
    data_ax = axes_titled(fig, "measured (raw fold)")
    shown = np.ma.filled(data_ax.images[0].get_array().astype(float), np.nan).T
    np.testing.assert_allclose(shown, np.where(mask, raw_fold, np.nan))
    assert axes_titled(fig, "PhysicalModel (the refinement's model) at the answer")
