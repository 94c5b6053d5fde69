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
    assert {p.name for p in tmp_path.iterdir()} >= {"POSCAR", "FORCE_CONSTANTS", "phonopy.yaml", "phonopy_params.yaml", "fcinv_export.json"}
    c = m.space.crystal
    ours = model_energies(m.space, theta, Q_TEST)
    on_path = m.frequencies(theta[m.free_idx])[0]
    # 1) the self-contained YAML (masses included)
    ph = phonopy.load(tmp_path / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    check_frequencies(phonopy_energies(ph, c, Q_TEST), ours)
    check_frequencies(phonopy_energies(ph, c, m.grid.q_rlu), on_path)
    # 2) POSCAR + FORCE_CONSTANTS, as a user would load them (masses from fcinv, see the export notes)
    ph2 = phonopy.load(
        unitcell_filename=tmp_path / "POSCAR", force_constants_filename=tmp_path / "FORCE_CONSTANTS", supercell_matrix=supercell,
        primitive_matrix=None, produce_fc=False, symmetrize_fc=False, log_level=0,
    )
    n_rows, n_sc = (int(v) for v in (tmp_path / "FORCE_CONSTANTS").read_text().split("\n", 1)[0].split())
    assert (n_rows, n_sc) == ((len(c.positions) if compact else len(ph2.supercell)), len(ph2.supercell))
    ph2.masses = c.masses
    check_frequencies(phonopy_energies(ph2, c, Q_TEST), ours)
    info = json.loads((tmp_path / "fcinv_export.json").read_text())
    assert info["theta"] == pytest.approx(dict(zip(m.space.names, theta.tolist())))
    assert info["force_constants_layout"] == ("compact" if compact else "full") and info["about_reference"] is False


def test_reference_round_trip_and_euphonic(tmp_path, ge_reference):
    """Reference + Δθ on the reference's supercell reproduces the D_ref forward model in phonopy and Euphonic."""
    import phonopy

    from fcinv.crystal import material_dir
    from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

    ref = ge_reference
    m = ref.forward_model(free=list(ref.paper_sampled), tail="reference")  # D_ref from the reference member's full set
    theta_k = m.theta0 * np.array([1.1, 0.9, 1.2, 0.85, 1.0, 1.0, 1.1, 1.0])
    theta = m.full_theta(theta_k)[0]
    smat = read_reference_fc(material_dir("Ge") / REFERENCE_FC_FILE)["supercell_matrix"]
    res = export_phonopy(tmp_path, ref.space, theta, reference=ref.pairs, theta_ref=ref.theta_ref, supercell=smat, compact=True)
    assert res.max_rel_dev < 1e-6
    ph = phonopy.load(tmp_path / "phonopy_params.yaml", produce_fc=False, symmetrize_fc=False, log_level=0)
    check_frequencies(phonopy_energies(ph, ref.crystal, m.grid.q_rlu), m.frequencies(theta_k)[0])
    # the exported set differs from θ alone (the reference's beyond-cutoff terms are kept)
    alone = model_energies(ref.space, theta, m.grid.q_rlu)
    assert np.abs(alone - m.frequencies(theta_k)[0]).max() > 1e-3
    euphonic = pytest.importorskip("euphonic")
    fc = euphonic.ForceConstants.from_phonopy(path=str(tmp_path))
    modes = fc.calculate_qpoint_frequencies(ref.crystal.rlu_to_prim_frac(Q_TEST), asr=None)
    check_frequencies(modes.frequencies.to("meV").magnitude, model_energies(ref.space, theta, Q_TEST, reference=ref.pairs, theta_ref=ref.theta_ref))


def test_pairs_fold_back_to_the_reference_array(ge_reference):
    """Folding the reference's pairs onto its own supercell restores the stored compact array."""
    from fcinv.crystal import material_dir
    from fcinv.reference import REFERENCE_FC_FILE, read_reference_fc

    raw = read_reference_fc(material_dir("Ge") / REFERENCE_FC_FILE)
    if not (np.allclose(raw["lattice"], ge_reference.crystal.lattice) and np.allclose(raw["positions"], ge_reference.crystal.positions)):
        pytest.skip("the stored reference is in another cell setting than the crystal's")
    folded = pairs_to_phonopy(ge_reference.pairs, raw["supercell_matrix"], compact=True)
    assert np.abs(folded - raw["force_constants"]).max() < 1e-10


def test_export_errors(tmp_path, ge_spring, ge_reference):
    theta = ge_spring.theta_ref
    with pytest.raises(ForceConstantError, match=r"the supercell \[\[2, 0, 0\], \[0, 2, 0\], \[0, 0, 2\]\] is too small"):
        export_phonopy(tmp_path, ge_spring.space, theta, supercell=(2, 2, 2))
    with pytest.raises(ForceConstantError, match="needs its projection theta_ref"):
        export_phonopy(tmp_path, ge_reference.space, ge_reference.theta_ref, reference=ge_reference.pairs, supercell=(5, 5, 5))
    with pytest.raises(ForceConstantError, match="needs the supercell it was computed in"):
        export_phonopy(tmp_path, ge_reference.space, ge_reference.theta_ref, reference=ge_reference.pairs, theta_ref=ge_reference.theta_ref)
    with pytest.raises(ForceConstantError, match=r"reproduce the forward model only to .* Use the supercell the reference FC set was computed in"):
        export_phonopy(tmp_path, ge_reference.space, ge_reference.theta_ref, reference=ge_reference.pairs, theta_ref=ge_reference.theta_ref, supercell=(4, 4, 4))
    with pytest.raises(ForceConstantError, match="theta has 3 values"):
        export_phonopy(tmp_path, ge_spring.space, [1.0, 2.0, 3.0], supercell=(4, 4, 4))
    assert not any(tmp_path.iterdir())  # nothing written on failure


def test_read_theta_json_layouts(tmp_path):
    """θ files from fits (theta_full), inference (refined / ml, {name: {theta, sigma}}) and by hand."""
    from fcinv.errors import DataError
    from fcinv.fitting._base import read_theta_json

    cases = {
        "fit.json": ({"theta": {"1NN_xx": 1.0}, "theta_full": {"1NN_xx": 1.0, "1NN_xy": 2.0}, "cost": 3.0}, {"1NN_xx": 1.0, "1NN_xy": 2.0}),
        "infer.json": ({"names": ["1NN_xx"], "ml": {"1NN_xx": {"theta": 1.5, "sigma": 0.1}}, "refined": {"1NN_xx": {"theta": 1.4, "sigma": 0.01}}}, {"1NN_xx": 1.4}),
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
