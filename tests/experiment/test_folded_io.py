"""FoldedSpectrum: writer/reader round trip, pathSQE output, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError, GridError
from fcinv.experiment.folded import FoldedSpectrum, read_folded, write_folded


def _spectrum(grid, seed=0):
    rng = np.random.default_rng(seed)
    inten = rng.uniform(0, 5, grid.shape)
    inten[rng.random(grid.shape) < 0.3] = np.nan
    err = np.sqrt(np.abs(inten)) * 0.1
    nc = np.where(np.isfinite(inten), rng.integers(1, 50, grid.shape), 0)
    return FoldedSpectrum.from_arrays(
        inten,
        grid,
        error=err,
        n_contrib=nc,
        meta={"source": "test", "corrections": ["bose T=5 K"], "zones": [{"G": [0, 0, 0], "coverage": 0.5}]},
    )


def check_folded(actual: FoldedSpectrum, expected: FoldedSpectrum) -> None:
    assert actual.grid.same_as(expected.grid)
    assert (
        actual.grid.labels == expected.grid.labels and actual.grid.segment_bins == expected.grid.segment_bins
    )
    np.testing.assert_array_equal(actual.mask, expected.mask)
    np.testing.assert_array_equal(actual.intensity, expected.intensity)  # NaN compare equal positionally
    np.testing.assert_array_equal(actual.error, expected.error)
    np.testing.assert_array_equal(actual.n_contrib, expected.n_contrib)
    assert actual.meta == expected.meta


def test_write_read_round_trip(tmp_path, ge_grid):
    fs = _spectrum(ge_grid)
    path = tmp_path / "out" / "folded.h5"
    write_folded(path, fs, command="pytest fold", seed=11)
    back = read_folded(path)
    check_folded(back, fs)
    with h5py.File(path) as f:
        assert f["axes/energy_edges"].attrs["unit"] == "meV"
        assert f["axes/q_rlu"].attrs["unit"] == "r.l.u."
        assert f["intensity"].attrs["unit"] == "arb. units"
        assert (
            f.attrs["format"] == "fcinv-folded"
            and f.attrs["seed"] == 11
            and f.attrs["command"] == "pytest fold"
        )
        assert "fcinv_version" in f.attrs
    assert [p.name for p in path.parent.iterdir()] == ["folded.h5"]  # no temporary file left behind


def test_a_failed_write_keeps_the_old_file(tmp_path, ge_grid, monkeypatch):
    from fcinv.experiment import _h5

    fs = _spectrum(ge_grid)
    path = tmp_path / "folded.h5"
    write_folded(path, fs)
    real_put = _h5.put

    def failing_put(group, name, *a, **k):
        if name == "n_contrib":
            raise RuntimeError("disk full")
        return real_put(group, name, *a, **k)

    monkeypatch.setattr(_h5, "put", failing_put)
    with pytest.raises(RuntimeError, match="disk full"):
        write_folded(path, _spectrum(ge_grid, seed=1))
    check_folded(read_folded(path), fs)
    assert [p.name for p in tmp_path.iterdir()] == ["folded.h5"]


def test_mask_and_nan_are_consistent(ge_grid):
    fs = _spectrum(ge_grid)
    assert np.array_equal(fs.mask, np.isfinite(fs.intensity))
    assert np.all(np.isnan(fs.error[~fs.mask]))
    np.testing.assert_allclose(fs.filled(0.0)[~fs.mask], 0.0)


def test_bad_folded_spectra_are_refused(ge_grid):
    with pytest.raises(GridError, match=r"has shape \(80, 140\) but the grid is \(140, 80\)"):
        FoldedSpectrum.from_arrays(np.ones((80, 140)), ge_grid)
    bad = np.ones(ge_grid.shape)
    with pytest.raises(DataError, match="intensity is NaN/inf at 1 pixels marked measured"):
        FoldedSpectrum(
            intensity=np.where(np.arange(bad.size).reshape(bad.shape) == 5, np.nan, bad),
            error=bad,
            mask=np.ones(bad.shape, bool),
            n_contrib=np.ones(bad.shape, int),
            grid=ge_grid,
        )
    with pytest.raises(DataError, match="no measured pixel"):
        FoldedSpectrum.from_arrays(np.full(ge_grid.shape, np.nan), ge_grid)
    with pytest.raises(DataError, match="infinite values"):
        FoldedSpectrum.from_arrays(np.full(ge_grid.shape, np.inf), ge_grid)
    with pytest.raises(DataError, match="error has negative values"):
        FoldedSpectrum.from_arrays(bad, ge_grid, error=-bad)


def test_reading_other_files_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_folded(tmp_path / "missing.h5")
    p = tmp_path / "other.h5"
    with h5py.File(p, "w") as f:
        f.attrs["format"] = "fcinv-dataset"
    with pytest.raises(DataError, match="has format 'fcinv-dataset', expected 'fcinv-folded'"):
        read_folded(p)
    q = tmp_path / "text.h5"
    q.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        read_folded(q)


# ------------------------------------------------------------------ pathSQE output
def test_pathsqe_npy_becomes_a_folded_spectrum(tmp_path, ge_grid):
    """pathSQE writes np.vstack of the segment images (n_q_segment, n_E), NaN where unmeasured."""
    rng = np.random.default_rng(3)
    segs = [rng.uniform(0, 1, (n, ge_grid.n_e)) for n in ge_grid.segment_bins]
    segs[1][:, :10] = np.nan
    p = tmp_path / "folded_path_plot_20.npy"
    np.save(p, np.vstack(segs))
    fs = FoldedSpectrum.from_pathsqe(p, ge_grid)
    np.testing.assert_array_equal(fs.intensity, np.vstack(segs))
    assert fs.mask.sum() == ge_grid.n_q * ge_grid.n_e - 10 * 10
    assert np.all(np.isnan(fs.error)) and np.all(fs.n_contrib == -1)
    assert fs.meta["source_format"] == "pathSQE folded_path_plot"
    # pathSQE's per-segment archive (np.savez(*segments)) reads the same way
    z = tmp_path / "folded_sim_path_plot_20.npz"
    np.savez(z, *segs)
    np.testing.assert_array_equal(FoldedSpectrum.from_pathsqe(z, ge_grid).intensity, fs.intensity)
    # a transposed image is refused with a hint, and accepted with transpose=True
    t = tmp_path / "folded_path_plot_T.npy"
    np.save(t, np.vstack(segs).T)
    with pytest.raises(GridError, match="pass transpose=True"):
        FoldedSpectrum.from_pathsqe(t, ge_grid)
    np.testing.assert_array_equal(
        FoldedSpectrum.from_pathsqe(t, ge_grid, transpose=True).intensity, fs.intensity
    )


def test_pathsqe_bad_files_are_refused(tmp_path, ge_grid):
    with pytest.raises(DataError, match="does not exist"):
        FoldedSpectrum.from_pathsqe(tmp_path / "folded_path_plot_1.npy", ge_grid)
    p = tmp_path / "folded_path_plot_2.npy"
    np.save(p, np.zeros((3, 4, 5)))
    with pytest.raises(DataError, match=r"shape \(3, 4, 5\); expected a 2D"):
        FoldedSpectrum.from_pathsqe(p, ge_grid)
    np.save(p, np.zeros((100, 80)))
    with pytest.raises(GridError, match=r"holds a \(100, 80\) image but the grid is \(140, 80\)"):
        FoldedSpectrum.from_pathsqe(p, ge_grid)
