"""CLI: fcinv fit, fcinv fit-dispersion, fcinv export, through main([...])."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.cli.main import main
from fcinv.fitting import DispersionPoints
from fcinv.fitting.dispersion_fit import model_energies, write_points


@pytest.fixture(scope="module")
def ge_sim(tmp_path_factory, ge_reference):
    """A simulated Ge spectrum (embedded reference, two parameters moved) and its truth."""
    out = tmp_path_factory.mktemp("sim") / "ge.h5"
    t0 = dict(zip(ge_reference.space.names, ge_reference.theta_ref))
    truth = {"1NN_xx": 1.06 * t0["1NN_xx"], "2NN_zz": 0.9 * t0["2NN_zz"]}
    assert (
        main(
            [
                "simulate",
                "--material",
                "Ge",
                "--theta",
                *[f"{k}={float(v)!r}" for k, v in truth.items()],
                "-o",
                str(out),
                "--no-png",
            ]
        )
        == 0
    )
    return out, truth


def test_fit_cli_recovers_and_exports(ge_sim, tmp_path, capsys):
    """fcinv fit on a simulated file recovers the moved parameters; fcinv export of its JSON loads in phonopy."""
    import phonopy

    data, truth = ge_sim
    out = tmp_path / "fit.json"
    assert main(["fit", str(data), "--material", "Ge", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "converged" in text and "Laplace" in text and "scale" in text
    doc = json.loads(out.read_text())
    for k, v in truth.items():
        assert doc["theta"][k] == pytest.approx(v, rel=1e-4)
    # every parameter free (the default): D(q) from θ alone, zero beyond the cutoff (the simulate above
    # uses the same zero tail); a reference member's tail only with a subset free
    assert doc["success"] and doc["reference_fc"] == "theta_ref" and "command" in doc
    assert (tmp_path / "fit.png").stat().st_size > 10_000
    exp = tmp_path / "exported"
    assert main(["export", "--material", "Ge", "--theta-json", str(out), "-o", str(exp), "--compact"]) == 0
    text = capsys.readouterr().out
    # an all-parameter answer exports θ alone (zero beyond the cutoff), as it was fitted
    assert "θ alone" in text and "check: phonopy reproduces the forward model" in text
    ph = phonopy.load(exp / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    m = ref.forward_model(tail="zero")  # the simulated file's forward model (auto-detected by fcinv fit)
    q = m.grid.q_rlu[::7]
    ph.run_qpoints(ref.crystal.rlu_to_prim_frac(q))
    fitted = np.array([doc["theta"][n] for n in m.names])
    expect = m.frequencies(fitted, q)[0]
    assert np.abs(ph.qpoints.frequencies * 4.135667696923859 - expect).max() < 1e-5 * np.abs(expect).max()


def test_fit_cli_reports_bad_input(ge_sim, capsys):
    data, _ = ge_sim
    assert main(["fit", str(data), "--material", "Ge", "--free", "1NN_xx,9NN_zz", "--no-png"]) == 1
    assert "unknown free parameter or shell '9NN_zz'" in capsys.readouterr().err


def test_fit_cli_nonconvergence_exit_status(ge_sim, tmp_path, capsys):
    data, _ = ge_sim
    rc = main(
        [
            "fit",
            str(data),
            "--material",
            "Ge",
            "--max-nfev",
            "1",
            "--presmooth",
            "0",
            "--theta",
            "1NN_xx=-1.9",
            "-o",
            str(tmp_path / "f.json"),
            "--no-png",
        ]
    )
    assert rc == 1
    assert "did not converge" in capsys.readouterr().err
    assert json.loads((tmp_path / "f.json").read_text())["success"] is False


def test_fit_dispersion_cli_nb(tmp_path, capsys):
    """fcinv fit-dispersion --material Nb points.csv: prints θ ± σ, χ²/dof and rms in meV and THz; writes JSON and PNG."""
    from fcinv.reference import load_reference

    ref = load_reference("Nb")
    truth = ref.theta_ref.copy()
    truth[:2] *= np.array([1.05, 0.95])
    rng = np.random.default_rng(7)
    path_q = np.array(
        [[0.0, t, 0.0] for t in np.linspace(0.1, 0.9, 9)] + [[t, t, t] for t in np.linspace(0.05, 0.45, 9)]
    )
    q = np.vstack([path_q, rng.uniform(-1, 1, (150, 3))])
    e = model_energies(ref.space, truth, q, reference=ref.pairs, theta_ref=ref.theta_ref)
    b = rng.integers(0, 3, len(q))
    s = np.full(len(q), 0.2)
    pts = DispersionPoints(q, e[np.arange(len(q)), b] + s * rng.normal(size=len(q)), s, b)
    csv = write_points(tmp_path / "points.csv", pts)
    assert main(["fit-dispersion", "--material", "Nb", str(csv), "--free", "1NN,2NN"]) == 0
    text = capsys.readouterr().out
    assert "χ²/dof" in text and "meV" in text and "THz" in text and "1NN_xx" in text
    doc = json.loads((tmp_path / "points_fit.json").read_text())
    assert doc["chi2_dof"] == pytest.approx(1.0, abs=4 * np.sqrt(2.0 / doc["dof"]))
    assert doc["theta"]["1NN_xx"] == pytest.approx(truth[0], abs=5 * doc["sigma"]["1NN_xx"])
    assert (tmp_path / "points_fit.png").stat().st_size > 10_000


def test_fit_dispersion_cli_bad_csv(tmp_path, capsys):
    p = tmp_path / "bad.csv"
    p.write_text("h,k,l,energy_meV\n0,0,0.5,10\n")
    assert main(["fit-dispersion", "--material", "Nb", str(p)]) == 1
    assert "lacks the column(s) ['energy_meV', 'sigma_meV']" in capsys.readouterr().err


def test_export_cli_needs_theta(tmp_path, capsys):
    assert (
        main(["export", "--material", "Ge", "--no-reference", "-o", str(tmp_path / "x")]) == 2
    )  # a usage error (fcinv exit codes: 0 ok, 1 data or result, 2 usage)
    assert "pass --theta-json FILE and/or --theta" in capsys.readouterr().err
