"""Finite-displacement force constants, labels, stability and relaxation on an exactly known spring model."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.mlff.phonons import (
    PhononError,
    PhononSettings,
    compute_force_constants,
    frequencies_thz,
    mode_labels,
    relax_lattice_constant,
    scaled_crystal,
    summarize,
    supercell_matrix,
)
from fcinv.units import EV_A2_AMU_TO_THZ

from .mlff_helpers import NB_A, NB_SHELLS, SpringCalculator


def spring_frequencies(crystal, k1: float, k2: float, q_rlu) -> np.ndarray:
    """Analytic bcc central-spring frequencies (THz, sorted) at conventional r.l.u. ``q_rlu``."""
    a = crystal.conventional_a
    nn1 = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * a / 2
    nn2 = np.vstack([np.eye(3), -np.eye(3)]) * a
    q = 2 * np.pi / a * np.asarray(q_rlu, float)
    D = np.zeros((3, 3))
    for k, shell in ((k1, nn1), (k2, nn2)):
        for r in shell:
            rh = r / np.linalg.norm(r)
            D += k * (1 - np.cos(q @ r)) * np.outer(rh, rh)
    w2 = np.linalg.eigvalsh(D / crystal.masses[0])
    return np.sign(w2) * np.sqrt(np.abs(w2)) * EV_A2_AMU_TO_THZ


@pytest.mark.parametrize(
    "value, expected",
    [
        (4, np.diag([4, 4, 4])),
        ([2, 3, 4], np.diag([2, 3, 4])),
        ([[0, 1, 1], [1, 0, 1], [1, 1, 0]], [[0, 1, 1], [1, 0, 1], [1, 1, 0]]),
    ],
)
def test_supercell_matrix_forms(value, expected):
    assert np.array_equal(np.array(supercell_matrix(value)), np.array(expected))


@pytest.mark.parametrize(
    "value, match",
    [
        ([1, 2], "not 1, 3 or 9 integers"),
        (2.5, "not 1, 3 or 9 integers"),
        ([[1, 0, 0], [0, 1, 0], [1, 0, 0]], "singular"),
        ("abc", "not 1, 3 or 9"),
    ],
)
def test_supercell_matrix_rejects(value, match):
    with pytest.raises(PhononError, match=match):
        supercell_matrix(value)


@pytest.mark.parametrize("d", [0.0, -0.01, 0.5, float("nan")])
def test_displacement_rejected(d):
    with pytest.raises(PhononError, match="displacement"):
        PhononSettings.create(4, d)


def test_springs_match_analytic_frequencies(nb_crystal):
    k1, k2 = 3.0, 1.0
    settings = PhononSettings.create(4, 0.005)
    phonon = compute_force_constants(
        nb_crystal, SpringCalculator([(NB_SHELLS[0], k1), (NB_SHELLS[1], k2)]), settings
    )
    assert phonon.force_constants.shape == (1, 64, 3, 3)
    qs = np.array([[0, 1, 0], [0.5, 0.5, 0], [0.5, 0.5, 0.5], [0.3, 0.1, 0.0], [0.2, 0.7, 0.4]])
    got = frequencies_thz(phonon, nb_crystal, qs)
    want = np.array([spring_frequencies(nb_crystal, k1, k2, q) for q in qs])
    # anharmonicity of the springs at a 0.005 Å displacement is ~d/r0 relative
    assert np.allclose(got, want, rtol=5e-3, atol=5e-3)
    # H: triply degenerate, ω² = 16 k1 / (3 M)
    assert np.isclose(got[0, 0], EV_A2_AMU_TO_THZ * np.sqrt(16 * k1 / (3 * nb_crystal.masses[0])), rtol=5e-3)


def test_summary_labels_and_stability(nb_crystal):
    settings = PhononSettings.create(4, 0.005)
    phonon = compute_force_constants(
        nb_crystal, SpringCalculator([(NB_SHELLS[0], 3.0), (NB_SHELLS[1], 1.0)]), settings
    )
    s = summarize(phonon, nb_crystal, settings)
    assert s.stable and s.unstable_at == []
    assert list(s.points) == ["H", "N", "P"]
    n = s.points["N"]
    assert sorted(n["modes"]) == ["LA", "TA", "TA"]
    # for central springs the longitudinal mode along [110] is the stiffest at N
    assert n["modes"][int(np.argmax(n["freqs_THz"]))] == "LA"
    assert abs(s.mesh_min_thz) < 1e-3  # Γ is on the mesh: acoustic sum rule


def test_gamma_labels_acoustic_and_optical(nb_crystal):
    freqs = np.array([0.0, 0.0, 0.0])
    assert mode_labels(nb_crystal, np.zeros(3), freqs, np.eye(3, dtype=complex)) == ["A", "A", "A"]


def test_unstable_detected(nb_crystal):
    settings = PhononSettings.create(4, 0.005)
    phonon = compute_force_constants(
        nb_crystal, SpringCalculator([(NB_SHELLS[0], -1.0), (NB_SHELLS[1], 1.0)]), settings
    )
    s = summarize(phonon, nb_crystal, settings)
    assert not s.stable
    assert "H" in s.unstable_at and s.path_min_thz < -settings.imag_tol_thz
    assert min(s.points["H"]["freqs_THz"]) < 0


def test_relax_finds_spring_equilibrium(nb_crystal):
    a_true = NB_A * 1.015
    calc = SpringCalculator([(a_true * np.sqrt(3) / 2, 3.0), (a_true, 1.0)], window=0.2)
    a = relax_lattice_constant(nb_crystal, calc)
    assert abs(a - a_true) < 2e-3
    c = scaled_crystal(nb_crystal, a)
    assert np.isclose(c.conventional_a, a) and c.spacegroup == nb_crystal.spacegroup
