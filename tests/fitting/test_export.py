"""Export of θ to phonopy files: round trips through phonopy (and Euphonic) to the forward model's frequencies."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.errors import ForceConstantError
from fcinv.fitting import export_phonopy, pairs_to_phonopy
from fcinv.fitting.dispersion_fit import model_energies
from fcinv.units import THZ_TO_MEV

from .fit_helpers import spring_model

Q_TEST = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.5], [0.0, 1.0, 0.0], [0.3, 0.7, 0.1], [0.37, 0.11, 0.82]])


def check_frequencies(actual, expected, rtol=1e-6, floor_meV=1.0):
    err = np.abs(np.asarray(actual) - np.asarray(expected)) / np.maximum(np.abs(expected), floor_meV)
    assert err.max() < rtol, f"max relative deviation {err.max():.2e}"


def phonopy_energies(ph, crystal, q_rlu):
    ph.run_qpoints(crystal.rlu_to_prim_frac(q_rlu))
    return ph.qpoints.frequencies * THZ_TO_MEV


@pytest.mark.parametrize("material, supercell, compact", [("Ge", (4, 4, 4), False), ("Nb", (5, 5, 5), True)])
def test_theta_only_round_trip(tmp_path, material, supercell, compact):
    """θ alone → FORCE_CONSTANTS + POSCAR + YAML → phonopy.load → the forward model's frequencies (1e-6)."""
    import phonopy

    m = spring_model(material)
    theta = m.full_theta(m.theta0 * np.array([1.1, 0.9, 1.2, 0.8]))[0]
    res = export_phonopy(tmp_path, m.space, theta, supercell=supercell, compact=compact)
    assert res.max_rel_dev is not None and res.max_rel_dev < 1e-6
    assert {p.name for p in tmp_path.iterdir()} >= {
        "POSCAR",
        "FORCE_CONSTANTS",
        "phonopy.yaml",
        "phonopy_params.yaml",
        "theta.csv",
        "README.txt",
        "fcinv_export.json",
    }
    c = m.space.crystal
    ours = model_energies(m.space, theta, Q_TEST)
    on_path = m.frequencies(theta[m.free_idx])[0]
    # 1) the self-contained YAML (masses included)
    ph = phonopy.load(tmp_path / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    check_frequencies(phonopy_energies(ph, c, Q_TEST), ours)
    check_frequencies(phonopy_energies(ph, c, m.grid.q_rlu), on_path)
    # 2) POSCAR + FORCE_CONSTANTS, as a user would load them (masses from fcinv, see the export notes)
    ph2 = phonopy.load(
        unitcell_filename=tmp_path / "POSCAR",
        force_constants_filename=tmp_path / "FORCE_CONSTANTS",
        supercell_matrix=supercell,
        primitive_matrix="P",
        produce_fc=False,
        symmetrize_fc=False,
        log_level=0,
    )
    n_rows, n_sc = (int(v) for v in (tmp_path / "FORCE_CONSTANTS").read_text().split("\n", 1)[0].split())
    assert (n_rows, n_sc) == ((len(c.positions) if compact else len(ph2.supercell)), len(ph2.supercell))
    ph2.masses = c.masses
    check_frequencies(phonopy_energies(ph2, c, Q_TEST), ours)
    info = json.loads((tmp_path / "fcinv_export.json").read_text())
    assert info["theta"] == pytest.approx(dict(zip(m.space.names, theta.tolist())))
    assert (
        info["force_constants_layout"] == ("compact" if compact else "full")
        and info["about_reference"] is False
    )


def test_reference_round_trip_and_euphonic(tmp_path, ge_reference):
    """Reference + Δθ on the reference's supercell reproduces the D_ref forward model in phonopy and Euphonic."""
    import phonopy

    from fcinv.crystal import material_dir
    from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

    ref = ge_reference
    m = ref.forward_model(
        free=list(ref.paper_sampled), tail="reference"
    )  # D_ref from the reference member's full set
    theta_k = m.theta0 * np.array([1.1, 0.9, 1.2, 0.85, 1.0, 1.0, 1.1, 1.0])
    theta = m.full_theta(theta_k)[0]
    smat = read_reference_fc(material_dir("Ge") / REFERENCE_FC_FILE)["supercell_matrix"]
    res = export_phonopy(
        tmp_path, ref.space, theta, reference=ref.pairs, theta_ref=ref.theta_ref, supercell=smat, compact=True
    )
    assert res.max_rel_dev < 1e-6
    ph = phonopy.load(tmp_path / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    check_frequencies(phonopy_energies(ph, ref.crystal, m.grid.q_rlu), m.frequencies(theta_k)[0])
    # the exported set differs from θ alone (the reference's beyond-cutoff terms are kept)
    alone = model_energies(ref.space, theta, m.grid.q_rlu)
    assert np.abs(alone - m.frequencies(theta_k)[0]).max() > 1e-3
    euphonic = pytest.importorskip("euphonic")
    fc = euphonic.ForceConstants.from_phonopy(path=str(tmp_path))
    modes = fc.calculate_qpoint_frequencies(ref.crystal.rlu_to_prim_frac(Q_TEST), asr=None)
    check_frequencies(
        modes.frequencies.to("meV").magnitude,
        model_energies(ref.space, theta, Q_TEST, reference=ref.pairs, theta_ref=ref.theta_ref),
    )


def test_pairs_fold_back_to_the_reference_array(ge_reference):
    """Folding the reference's pairs onto its own supercell restores the stored compact array."""
    from fcinv.crystal import material_dir
    from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

    raw = read_reference_fc(material_dir("Ge") / REFERENCE_FC_FILE)
    if not (
        np.allclose(raw["lattice"], ge_reference.crystal.lattice)
        and np.allclose(raw["positions"], ge_reference.crystal.positions)
    ):
        pytest.skip("the stored reference is in another cell setting than the crystal's")
    folded = pairs_to_phonopy(ge_reference.pairs, raw["supercell_matrix"], compact=True)
    assert np.abs(folded - raw["force_constants"]).max() < 1e-10


def test_export_errors(tmp_path, ge_spring, ge_reference):
    theta = ge_spring.theta_ref
    with pytest.raises(
        ForceConstantError, match=r"the supercell \[\[2, 0, 0\], \[0, 2, 0\], \[0, 0, 2\]\] is too small"
    ):
        export_phonopy(tmp_path, ge_spring.space, theta, supercell=(2, 2, 2))
    with pytest.raises(ForceConstantError, match="needs its projection theta_ref"):
        export_phonopy(
            tmp_path,
            ge_reference.space,
            ge_reference.theta_ref,
            reference=ge_reference.pairs,
            supercell=(5, 5, 5),
        )
    with pytest.raises(ForceConstantError, match="needs the supercell it was computed in"):
        export_phonopy(
            tmp_path,
            ge_reference.space,
            ge_reference.theta_ref,
            reference=ge_reference.pairs,
            theta_ref=ge_reference.theta_ref,
        )
    with pytest.raises(
        ForceConstantError,
        match=r"reproduce the forward model only to .* Use the supercell the reference FC set was computed in",
    ):
        export_phonopy(
            tmp_path,
            ge_reference.space,
            ge_reference.theta_ref,
            reference=ge_reference.pairs,
            theta_ref=ge_reference.theta_ref,
            supercell=(4, 4, 4),
        )
    with pytest.raises(ForceConstantError, match="theta has 3 values"):
        export_phonopy(tmp_path, ge_spring.space, [1.0, 2.0, 3.0], supercell=(4, 4, 4))
    assert not any(tmp_path.iterdir())  # nothing written on failure


def test_read_theta_json_layouts(tmp_path):
    """θ files from fits (theta_full), inference (refined / ml, {name: {theta, sigma}}) and by hand."""
    from fcinv.errors import DataError
    from fcinv.fitting._base import read_theta_json

    cases = {
        "fit.json": (
            {"theta": {"1NN_xx": 1.0}, "theta_full": {"1NN_xx": 1.0, "1NN_xy": 2.0}, "cost": 3.0},
            {"1NN_xx": 1.0, "1NN_xy": 2.0},
        ),
        "infer.json": (
            {
                "names": ["1NN_xx"],
                "ml": {"1NN_xx": {"theta": 1.5, "sigma": 0.1}},
                "refined": {"1NN_xx": {"theta": 1.4, "sigma": 0.01}},
            },
            {"1NN_xx": 1.4},
        ),
        "ml.json": ({"ml": {"1NN_xx": {"theta": 1.5, "sigma": 0.1}}}, {"1NN_xx": 1.5}),
        "hand.json": ({"1NN_xx": -1.2, "2NN_zz": 0.3}, {"1NN_xx": -1.2, "2NN_zz": 0.3}),
    }
    for name, (doc, want) in cases.items():
        (tmp_path / name).write_text(json.dumps(doc))
        assert read_theta_json(tmp_path / name)[0] == want, name
    (tmp_path / "bad.json").write_text('{"names": ["a"], "note": "x"}')
    with pytest.raises(DataError, match="has no numeric θ values by parameter name"):
        read_theta_json(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match="is not valid JSON"):
        read_theta_json(tmp_path / "broken.json")


# ----------------------------------------------------- the reference, Euphonic JSON, θ ± σ CSV
def test_export_of_the_ge_reference_loads_in_phonopy_and_euphonic(tmp_path, ge_reference, capsys):
    """Must show (issue 14): `fcinv export --material Ge` (no θ) writes the reference set, compact,
    and phonopy and Euphonic (its own JSON) give the same frequencies to 1e-6 at a few q."""
    import phonopy

    euphonic = pytest.importorskip("euphonic")
    from fcinv.cli import export

    out = tmp_path / "ge_ref"
    assert export.main(["--material", "Ge", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "the reference force-constant set" in printed
    assert "POSCAR is the PRIMITIVE cell (2 atoms; the conventional cell has 8)" in printed
    assert "q_rlu (1, 0, 0) -> q_POSCAR (0, 0.5, 0.5)" in printed
    readme = (out / "README.txt").read_text()
    assert "PRIMITIVE cell" in readme and "q_POSCAR = q_rlu @ M" in readme
    ref = ge_reference
    c = ref.crystal
    # compact: one row block per primitive atom, not n_sc x n_sc (13 MB full for Ge on 5x5x5)
    n_rows, n_sc = (int(v) for v in (out / "FORCE_CONSTANTS").read_text().split("\n", 1)[0].split())
    assert (n_rows, n_sc) == (c.n_atoms, 250)
    assert (out / "FORCE_CONSTANTS").stat().st_size < 200_000
    ph = phonopy.load(out / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    by_phonopy = phonopy_energies(ph, c, Q_TEST)
    fc = euphonic.ForceConstants.from_json_file(str(out / "euphonic_force_constants.json"))
    modes = fc.calculate_qpoint_frequencies(c.rlu_to_prim_frac(Q_TEST), asr=None)
    by_euphonic = modes.frequencies.to("meV").magnitude
    check_frequencies(by_euphonic, by_phonopy)
    # and both are the reference's own frequencies (the forward model about D_ref at θ_ref)
    ours = model_energies(ref.space, ref.theta_ref, Q_TEST, reference=ref.pairs, theta_ref=ref.theta_ref)
    check_frequencies(by_phonopy, ours)
    info = json.loads((out / "fcinv_export.json").read_text())
    assert info["what"] == "the reference force-constant set" and info["poscar_cell"] == "primitive"
    assert info["theta"] == pytest.approx(dict(zip(ref.space.names, ref.theta_ref.tolist())))
    np.testing.assert_allclose(
        np.array([1.0, 0.0, 0.0]) @ np.array(info["q_rlu_to_poscar_frac"]), c.rlu_to_prim_frac([1.0, 0, 0])
    )


def test_full_layout_on_request(tmp_path, ge_spring):
    res = export_phonopy(tmp_path, ge_spring.space, ge_spring.theta_ref, supercell=(4, 4, 4), compact=False)
    n_rows, n_sc = (int(v) for v in res.files["force_constants"].read_text().split("\n", 1)[0].split())
    assert n_rows == n_sc == 128 and res.max_rel_dev < 1e-6


def test_theta_sigma_csv_from_a_result_json(tmp_path, ge_reference, capsys):
    """θ ± σ of an FCResult JSON as CSV: σ where the result has one, empty for the reference's rest."""
    from fcinv.cli import export
    from fcinv.result import FCResult

    names = ge_reference.space.names
    given = names[:3]
    theta = ge_reference.theta_ref[:3] * np.array([1.05, 0.95, 1.1])
    r = FCResult(
        names=tuple(given),
        theta=theta,
        sigma=np.array([0.01, 0.02, np.inf]),
        method="test",
        sigma_meaning="test sigma",
        material="Ge",
    )
    r.to_json(tmp_path / "r.json")
    out = tmp_path / "exp"
    argv = ["--material", "Ge", "--theta-json", str(tmp_path / "r.json"), "-o", str(out), "--no-euphonic"]
    assert export.main(argv) == 0
    rows = (out / "theta.csv").read_text().splitlines()
    assert rows[0] == "index,name,theta,sigma,unit" and len(rows) == 1 + len(names)
    cells = [row.split(",") for row in rows[1:]]
    assert [c[1] for c in cells] == list(names)
    assert [float(c[2]) for c in cells[:3]] == pytest.approx(theta.tolist())
    assert [float(c[3]) for c in cells[:2]] == pytest.approx([0.01, 0.02])
    assert cells[2][3] == "" and all(c[3] == "" for c in cells[3:])  # σ = inf is stored as null
    assert float(cells[3][2]) == pytest.approx(ge_reference.theta_ref[3])
    assert not (out / "euphonic_force_constants.json").exists()


def test_sigma_from_json_layouts():
    from fcinv.fitting.export import sigma_from_json

    assert sigma_from_json({"theta": {"a": 1.0}, "sigma": {"a": 0.1, "b": None}}) == {"a": 0.1, "b": None}
    assert sigma_from_json({"refined": {"a": {"theta": 1.0, "sigma": 0.2}}}) == {"a": 0.2}
    assert sigma_from_json({"a": {"theta": 1.0, "sigma": 0.3}}) == {"a": 0.3}
    assert sigma_from_json({"a": -1.4}) == {}


def test_export_without_theta_or_reference_is_a_usage_error(tmp_path, capsys):
    from fcinv.cli.main import main

    assert main(["export", "--material", "Ge", "--no-reference", "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "nothing to export without θ: --no-reference leaves no reference set" in err


def test_without_euphonic_the_export_says_so(tmp_path, ge_spring, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "euphonic" else real(name, *a)
    )
    res = export_phonopy(tmp_path, ge_spring.space, ge_spring.theta_ref, supercell=(4, 4, 4), check=False)
    assert "euphonic_json" not in res.files and not (tmp_path / "euphonic_force_constants.json").exists()
    assert "Euphonic is not installed (pip install euphonic)" in res.notes[0]
    assert res.notes[0] in (tmp_path / "README.txt").read_text()


@pytest.mark.parametrize("material", ["Ge", "Nb"])
def test_cell_note_gives_the_q_conversion(material):
    """The note's matrix M maps conventional r.l.u. onto the POSCAR cell's fractional q, as the code does."""
    from fcinv.crystal import Crystal
    from fcinv.fitting.export import cell_note

    c = Crystal.from_name(material)
    note = cell_note(c)
    n_conv = {"Ge": 8, "Nb": 2}[material]
    assert f"the conventional cell has {n_conv})" in note and "POSCAR is the PRIMITIVE cell" in note
    rows = note.split("M =\n", 1)[1].splitlines()[:3]
    m = np.array([[float(x) for x in r.strip().strip("()").split(",")] for r in rows])
    q = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.3, -0.2, 0.7]])
    np.testing.assert_allclose(q @ m, c.rlu_to_prim_frac(q), atol=1e-6)
