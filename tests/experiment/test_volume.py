"""Volume4D: construction, bad input (one-line DataError each), combination, HDF5 round trip."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.experiment.volume import DENSE_LIMIT, Volume4D, edges_from_axis, regular_edges


def _edges(n=(3, 4, 2, 5)):
    return [
        np.linspace(-1, 1, n[0] + 1),
        np.linspace(0, 2, n[1] + 1),
        np.linspace(-0.5, 0.5, n[2] + 1),
        np.linspace(0, 10, n[3] + 1),
    ]


def _dense(seed=0):
    rng = np.random.default_rng(seed)
    edges = _edges()
    shape = tuple(len(e) - 1 for e in edges)
    sig = rng.uniform(0.5, 2.0, shape)
    sig[rng.random(shape) < 0.4] = np.nan
    return edges, sig, 0.1 * np.nan_to_num(sig, nan=1.0)


def check_volume(actual: Volume4D, expected: Volume4D) -> None:
    assert actual.shape == expected.shape
    for a, b in zip(actual.edges, expected.edges):
        np.testing.assert_allclose(a, b)
    np.testing.assert_array_equal(actual.index, expected.index)
    np.testing.assert_allclose(actual.signal, expected.signal)
    np.testing.assert_allclose(actual.error, expected.error)
    if expected.norm is None:
        assert actual.norm is None
    else:
        np.testing.assert_allclose(actual.norm, expected.norm)


def test_regular_edges_put_centres_at_the_offset():
    e = regular_edges(-1.0, 1.0, 0.05, offset=0.0125)
    c = 0.5 * (e[1:] + e[:-1])
    np.testing.assert_allclose(np.diff(e), 0.05)
    np.testing.assert_allclose(np.mod(c - 0.0125 + 1e-9, 0.05), 1e-9, atol=1e-9)
    assert c[0] <= -1.0 + 0.025 and c[-1] >= 1.0 - 0.025


def test_from_dense_keeps_covered_bins_and_round_trips():
    edges, sig, err = _dense()
    vol = Volume4D.from_dense(edges, sig, err)
    assert vol.n_covered == int(np.isfinite(sig).sum())
    d = vol.to_dense()
    np.testing.assert_array_equal(np.isnan(d["signal"]), np.isnan(sig))
    np.testing.assert_allclose(d["signal"][np.isfinite(sig)], sig[np.isfinite(sig)])
    # bin centres of the covered bins
    hkle = vol.hkle()
    i = np.unravel_index(vol.index[0], vol.shape)
    assert hkle[0, 3] == pytest.approx(0.5 * (edges[3][i[3]] + edges[3][i[3] + 1]))


def test_unsorted_index_is_sorted_with_its_values():
    vol = Volume4D(edges=_edges(), index=[7, 2, 5], signal=[7.0, 2.0, 5.0], error=[0.7, 0.2, 0.5])
    np.testing.assert_array_equal(vol.index, [2, 5, 7])
    np.testing.assert_allclose(vol.signal, [2.0, 5.0, 7.0])


def test_from_counts_and_combine_sum_data_and_norm_separately():
    edges = _edges()
    a = Volume4D.from_counts(edges, [1, 4], [10, 3], [2.0, 1.0])
    b = Volume4D.from_counts(edges, [4, 9], [5, 8], [1.0, 4.0])
    np.testing.assert_allclose(a.signal, [5.0, 3.0])
    np.testing.assert_allclose(a.error, [np.sqrt(10) / 2, np.sqrt(3)])
    c = Volume4D.combine([a, b])
    np.testing.assert_array_equal(c.index, [1, 4, 9])
    np.testing.assert_allclose(c.signal, [5.0, 8.0 / 2.0, 2.0])
    np.testing.assert_allclose(c.norm, [2.0, 2.0, 4.0])
    np.testing.assert_allclose(c.error[1], np.sqrt(8.0) / 2.0)


def test_from_points_averages_pixels_per_bin():
    edges = _edges()
    hkl = np.array([[0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [-0.9, 1.9, 0.4], [5.0, 0.0, 0.0]])
    vol = Volume4D.from_points(edges, hkl, [1.0, 1.2, 3.0, 3.0], [1.0, 3.0, 4.0, 9.0], [0.3, 0.4, 1.0, 1.0])
    assert vol.n_covered == 2  # the last point is outside the edges
    pair = int(np.flatnonzero(vol.norm == 2)[0])  # the bin holding the first two points
    assert vol.signal[pair] == pytest.approx(2.0) and vol.signal[1 - pair] == pytest.approx(4.0)
    assert vol.error[pair] == pytest.approx(0.5 * np.hypot(0.3, 0.4))


def test_hdf5_round_trip_carries_units_and_provenance(tmp_path):
    edges, sig, err = _dense(1)
    vol = Volume4D.from_dense(
        edges,
        sig,
        err,
        norm=np.full(sig.shape, 2.0),
        meta={"source": "test"},
        reciprocal_cell=np.eye(3) * 1.1,
    )
    path = tmp_path / "v.h5"
    vol.to_hdf5(path, command="pytest", seed=3)
    back = Volume4D.from_hdf5(path)
    check_volume(back, vol)
    assert back.meta == {"source": "test"}
    np.testing.assert_allclose(back.reciprocal_cell, vol.reciprocal_cell)
    with h5py.File(path) as f:
        assert f["edges/E"].attrs["unit"] == "meV" and f["edges/H"].attrs["unit"] == "r.l.u."
        assert f.attrs["seed"] == 3 and f.attrs["command"] == "pytest" and "fcinv_version" in f.attrs
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_edges_from_centres_or_edges():
    np.testing.assert_allclose(edges_from_axis([0.5, 1.5, 2.5], 3, "E", "x"), [0, 1, 2, 3])
    np.testing.assert_allclose(edges_from_axis([0, 1, 2, 3], 3, "E", "x"), [0, 1, 2, 3])
    with pytest.raises(DataError, match="axis E has 5 values for 3 bins"):
        edges_from_axis(np.arange(5.0), 3, "E", "x")
    with pytest.raises(DataError, match="unevenly spaced centres"):
        edges_from_axis([0.0, 1.0, 3.0], 3, "E", "x")


# ------------------------------------------------------------------ bad input
def test_nan_in_a_covered_bin_is_refused():
    with pytest.raises(DataError, match=r"signal has 1 NaN/inf values in covered bins"):
        Volume4D(edges=_edges(), index=[1, 2], signal=[1.0, np.nan], error=[0.1, 0.1])


def test_nan_error_where_signal_is_finite_is_refused():
    edges, sig, err = _dense()
    err = err.copy()
    err[np.isfinite(sig)] = np.nan
    with pytest.raises(DataError, match="error is NaN/inf in .* bins whose signal is finite"):
        Volume4D.from_dense(edges, sig, err)


def test_negative_counts_are_refused():
    with pytest.raises(DataError, match="counts contain 1 negative values"):
        Volume4D.from_counts(_edges(), [1, 2], [3, -1], [1.0, 1.0])
    with pytest.raises(DataError, match="signal has 1 negative values"):
        Volume4D(edges=_edges(), index=[1, 2], signal=[1.0, -2.0], error=[0.1, 0.1])
    # background-subtracted data may be negative when asked
    assert (
        Volume4D(
            edges=_edges(), index=[1, 2], signal=[1.0, -2.0], error=[0.1, 0.1], allow_negative=True
        ).n_covered
        == 2
    )
    with pytest.raises(DataError, match="norm has 1 negative values"):
        Volume4D(edges=_edges(), index=[1, 2], signal=[1.0, 2.0], error=[0.1, 0.1], norm=[1.0, -1.0])


def test_empty_volume_is_refused():
    with pytest.raises(DataError, match="the volume is empty"):
        Volume4D(edges=_edges(), index=[], signal=[], error=[])
    edges, sig, err = _dense()
    with pytest.raises(DataError, match="the volume is empty"):
        Volume4D.from_dense(edges, np.full(sig.shape, np.nan), err)


@pytest.mark.parametrize(
    "axis, bad, message",
    [
        (0, np.array([0.0, 1.0, 0.5, 2.0]), "axis H edges are not increasing"),
        (3, np.array([0.0, np.nan, 2.0, 3.0, 4.0, 5.0]), "axis E edges contain NaN"),
        (1, np.array([1.0]), "axis K has edges of shape"),
    ],
)
def test_wrong_axes_are_refused(axis, bad, message):
    edges = _edges()
    edges[axis] = bad
    with pytest.raises(DataError, match=message):
        Volume4D(edges=edges, index=[0], signal=[1.0], error=[0.1])


def test_wrong_lengths_are_refused():
    edges, sig, err = _dense()
    with pytest.raises(DataError, match=r"signal has shape \(3, 4, 2, 5\) but the axes give \(3, 4, 2, 6\)"):
        Volume4D.from_dense(edges[:3] + [np.linspace(0, 10, 7)], sig, err)
    with pytest.raises(DataError, match="has 2 bin indices but 3 signal values"):
        Volume4D(edges=_edges(), index=[1, 2], signal=[1.0, 2.0, 3.0], error=[0.1, 0.1])
    with pytest.raises(DataError, match="bin index out of range"):
        Volume4D(edges=_edges(), index=[10_000], signal=[1.0], error=[0.1])
    with pytest.raises(DataError, match="lists some bins twice"):
        Volume4D(edges=_edges(), index=[3, 1, 3], signal=[1.0, 2.0, 3.0], error=[0.1] * 3)
    with pytest.raises(DataError, match="has 3 axes"):
        Volume4D(edges=_edges()[:3], index=[0], signal=[1.0], error=[0.1])


def test_to_dense_refuses_huge_volumes():
    big = [np.linspace(0, 1, 1001)] * 3 + [np.linspace(0, 1, DENSE_LIMIT // 10**9 + 2)]
    vol = Volume4D(edges=big, index=[0], signal=[1.0], error=[0.1])
    with pytest.raises(DataError, match="the dense volume would have"):
        vol.to_dense()


def test_combine_refuses_volumes_without_norm():
    edges, sig, err = _dense()
    v = Volume4D.from_dense(edges, sig, err)
    with pytest.raises(DataError, match="without norm cannot be combined"):
        Volume4D.combine([v, v])
