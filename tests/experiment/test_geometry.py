"""Geometry of the measurement: 4D axes, lattice → B and UB, sample rotations; the old import path works."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.experiment.geometry import (
    check_edges,
    edges_from_axis,
    lattice_b_matrix,
    normalise_lattice,
    rotation_y,
    ub_from_vectors,
)


def test_ub_puts_u_along_the_beam():
    b = lattice_b_matrix(5.0, 5.0, 5.0)
    ub = ub_from_vectors(b, (1, 0, 0), (0, 1, 0))
    qu, qv = ub @ np.array([1, 0, 0]), ub @ np.array([0, 1, 0])
    np.testing.assert_allclose(qu / np.linalg.norm(qu), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(qv / np.linalg.norm(qv), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(qu), 0.2)
    with pytest.raises(DataError, match="are parallel"):
        ub_from_vectors(b, (1, 0, 0), (2, 0, 0))


def test_b_matrix_of_a_hexagonal_cell_gives_the_reciprocal_lengths():
    b = lattice_b_matrix(3.0, 3.0, 5.0, 90, 90, 120)
    np.testing.assert_allclose(np.linalg.norm(b, axis=0), [2 / (3 * np.sqrt(3)), 2 / (3 * np.sqrt(3)), 0.2])
    with pytest.raises(DataError, match="is degenerate"):
        lattice_b_matrix(3.0, 3.0, 0.0)


def test_rotations_are_proper_and_compose():
    r = rotation_y([0.0, 30.0, 90.0])
    assert r.shape == (3, 3, 3)
    np.testing.assert_allclose(r[0], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(rotation_y(60.0), r[1] @ r[1], atol=1e-12)
    np.testing.assert_allclose(r[2] @ [0, 0, 1], [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("given, six", [([5.6], [5.6] * 3 + [90.0] * 3), ([3, 4, 5], [3, 4, 5, 90, 90, 90])])
def test_normalise_lattice(given, six):
    assert normalise_lattice(given) == six
    with pytest.raises(DataError, match="lattice has 2 numbers"):
        normalise_lattice([1, 2])


def test_axes_checks():
    e = check_edges([np.arange(3.0)] * 4)
    assert len(e) == 4 and e[0].dtype == np.float64
    with pytest.raises(DataError, match="axis K edges are not increasing"):
        check_edges([np.arange(3.0), np.array([0.0, 2.0, 1.0]), np.arange(3.0), np.arange(3.0)])
    np.testing.assert_allclose(edges_from_axis(np.array([0.5, 1.5, 2.5]), 3, "E", "x"), [0, 1, 2, 3])
    with pytest.raises(DataError, match="unevenly spaced centres"):
        edges_from_axis(np.array([0.5, 1.5, 3.5]), 3, "E", "x")


def test_readers_still_export_the_geometry():
    from fcinv.experiment import readers

    assert readers.rotation_y is rotation_y and readers.ub_from_vectors is ub_from_vectors
