"""The dataset file: write/read round trip, validation, the resumable writer, the split."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.dataset import (
    REQUIRED_META,
    Dataset,
    DatasetWriter,
    LazySpectra,
    make_split,
    read_dataset,
    write_dataset,
)
from fcinv.dataset.toy import make_toy_dataset, toy_grid
from fcinv.errors import DataError, GridError


@pytest.fixture
def ds() -> Dataset:
    return make_toy_dataset(n=40, k=3, n_q=10, n_e=8, seed=3)


def check_dataset(actual: Dataset, expected: Dataset) -> None:
    assert actual.names == expected.names
    np.testing.assert_array_equal(actual.theta, expected.theta)
    np.testing.assert_array_equal(actual.get_spectra(slice(None)), expected.get_spectra(slice(None)))
    assert actual.grid.same_as(expected.grid)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(actual.split[part], expected.split[part])


def test_round_trip(tmp_path, ds):
    path = write_dataset(tmp_path / "toy.h5", ds)
    back = read_dataset(path)
    check_dataset(back, ds)
    assert back.meta["material"] == "toy"
    assert back.meta["fcinv_version"]
    assert back.meta["created"]
    np.testing.assert_array_equal(back.meta["domain_low"], ds.meta["domain_low"])
    assert len(back.content_hash) == 64
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_file_layout_units_and_axes(tmp_path, ds):
    path = write_dataset(tmp_path / "toy.h5", ds)
    with h5py.File(path, "r") as f:
        assert f["theta"].attrs["unit"] == "eV/Å^2"
        assert f["spectra"].dtype == np.float32
        assert f["spectra"].chunks == (1, *ds.grid.shape)
        assert f["spectra"].compression == "gzip"
        assert f["axes/energy_edges"].attrs["unit"] == "meV"
        assert f["axes/energy"].attrs["unit"] == "meV"
        np.testing.assert_allclose(f["axes/energy"][()], ds.grid.energy)
        np.testing.assert_allclose(f["axes/q_rlu"][()], ds.grid.q_rlu)
        for key in ("fcinv_version", "seed", "command", "material", "created"):
            assert key in f.attrs


def test_lazy_read(tmp_path, ds):
    path = write_dataset(tmp_path / "toy.h5", ds)
    lazy = read_dataset(path, lazy=True)
    assert isinstance(lazy.spectra, LazySpectra)
    idx = np.array([5, 1, 5, 30])
    np.testing.assert_array_equal(lazy.get_spectra(idx), ds.spectra[idx])
    th, sp = lazy.part("val", max_n=2)
    np.testing.assert_array_equal(sp, ds.spectra[ds.split["val"][:2]])
    lazy.close()


def test_refuses_other_grid(tmp_path, ds):
    path = write_dataset(tmp_path / "toy.h5", ds)
    with pytest.raises(GridError, match=r"another grid \(shape \(10, 8\) vs expected \(10, 9\)\)"):
        read_dataset(path, expect_grid=toy_grid(10, 9))
    with pytest.raises(GridError, match="energy edges 0..40 meV vs expected 0..30 meV"):
        read_dataset(path, expect_grid=toy_grid(10, 8, e_max=30.0))


@pytest.mark.parametrize("field", ["/spectra", "/theta", "/names", "/split/test"])
def test_refuses_missing_field(tmp_path, ds, field):
    path = write_dataset(tmp_path / "toy.h5", ds)
    with h5py.File(path, "a") as f:
        del f[field]
    with pytest.raises(
        DataError,
        match=rf"dataset toy.h5 lacks '{field}'; it was not written by fcinv or is truncated\. Regenerate it with fcinv dataset\.",
    ):
        read_dataset(path)


def test_refuses_nan(tmp_path, ds):
    path = write_dataset(tmp_path / "toy.h5", ds)
    with h5py.File(path, "a") as f:
        f["spectra"][3, 2, 2] = np.nan
    with pytest.raises(DataError, match="1 spectra contain NaN"):
        read_dataset(path, verify=False)
    with pytest.raises(DataError, match="do not match their content hash"):
        read_dataset(path)
    lazy = read_dataset(path, lazy=True)
    with pytest.raises(DataError, match="has NaN in '/spectra'"):
        lazy.get_spectra(np.array([3]))
    lazy.close()


def test_refuses_wrong_shapes(tmp_path, ds):
    with pytest.raises(GridError, match=r"spectra have shape \(40, 10, 7\); expected \(40, 10, 8\)"):
        Dataset(ds.theta, ds.names, ds.spectra[:, :, :7], ds.grid, ds.split, ds.meta)
    with pytest.raises(DataError, match="2 names"):
        Dataset(ds.theta, ds.names[:2], ds.spectra, ds.grid, ds.split, ds.meta)
    with pytest.raises(DataError, match="not a partition"):
        Dataset(ds.theta, ds.names, ds.spectra, ds.grid, {**ds.split, "test": ds.split["test"][1:]}, ds.meta)
    meta = {k: v for k, v in ds.meta.items() if k != "accepted_fraction"}
    bad = Dataset(ds.theta, ds.names, ds.spectra, ds.grid, ds.split, meta)
    with pytest.raises(DataError, match=r"metadata lacks \['accepted_fraction'\]"):
        write_dataset(tmp_path / "bad.h5", bad)
    assert not (tmp_path / "bad.h5").exists()


def test_refuses_missing_file_and_non_hdf5(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_dataset(tmp_path / "nope.h5")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="is not a readable HDF5 file"):
        read_dataset(tmp_path / "junk.h5")


@pytest.mark.parametrize("n, n_test", [(10_000, 1500), (20_000, 1500), (1000, 150), (100, 15), (5, 1)])
def test_make_split(n, n_test):
    s = make_split(n, seed=1)
    assert len(s["test"]) == n_test
    allidx = np.concatenate([s["train"], s["val"], s["test"]])
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    assert len(s["val"]) == max(1, round(0.1 * (n - n_test)))
    assert all(len(s[p]) >= 1 for p in s)
    again = make_split(n, seed=1)
    assert all(np.array_equal(s[p], again[p]) for p in s)
    assert not np.array_equal(make_split(n, seed=2)["test"], s["test"])


def test_make_split_bad_input():
    with pytest.raises(DataError, match="at least 3 samples"):
        make_split(2)
    with pytest.raises(DataError, match="val_fraction=1.5"):
        make_split(100, val_fraction=1.5)


def test_writer_chunks_equal_write_dataset(tmp_path, ds):
    with DatasetWriter(tmp_path / "w.h5", ds.grid, ds.names, ds.meta, n_total=ds.n) as w:
        for i in range(0, ds.n, 15):
            w.append(ds.theta[i : i + 15], ds.spectra[i : i + 15])
        assert w.n_written == ds.n
    back = read_dataset(tmp_path / "w.h5")
    np.testing.assert_array_equal(back.theta, ds.theta)
    np.testing.assert_array_equal(back.spectra, ds.spectra)
    assert back.content_hash == read_dataset(write_dataset(tmp_path / "d.h5", ds)).content_hash
    np.testing.assert_array_equal(back.split["test"], make_split(ds.n, seed=ds.meta["seed"])["test"])
    assert not (tmp_path / "w.h5.partial").exists()


def test_writer_resume_after_interruption(tmp_path, ds):
    path = tmp_path / "w.h5"
    w = DatasetWriter(path, ds.grid, ds.names, ds.meta, n_total=ds.n)
    w.append(ds.theta[:10], ds.spectra[:10], state={"drawn": 10})
    w.append(ds.theta[10:25], ds.spectra[10:25], state={"drawn": 27})
    with h5py.File(w.partial_path, "r") as f:  # the file is consistent while open
        assert f.attrs["n_written"] == 25
    w._file.close()  # simulate a crash: no close(), file left as .partial
    assert not path.exists() and w.partial_path.exists()
    with pytest.raises(
        DataError, match=r"\(w.h5.partial exists: the generation was interrupted; resume it\)"
    ):
        read_dataset(path)
    with pytest.raises(DataError, match="exists \\(an interrupted run\\)"):
        DatasetWriter(path, ds.grid, ds.names, ds.meta, n_total=ds.n)
    w2 = DatasetWriter.resume(path)
    assert w2.n_written == 25 and w2.state == {"drawn": 27}
    w2.append(ds.theta[25:], ds.spectra[25:])
    assert w2.close() == path
    back = read_dataset(path)
    np.testing.assert_array_equal(back.theta, ds.theta)
    np.testing.assert_array_equal(back.spectra, ds.spectra)
    assert back.content_hash == read_dataset(write_dataset(tmp_path / "d.h5", ds)).content_hash


def test_writer_incomplete_close_keeps_partial_and_truncate(tmp_path, ds):
    path = tmp_path / "w.h5"
    w = DatasetWriter(path, ds.grid, ds.names, ds.meta, n_total=ds.n)
    w.append(ds.theta[:20], ds.spectra[:20])
    assert w.close() is None and w.partial_path.exists()
    w = DatasetWriter.resume(str(path) + ".partial")
    assert w.close(truncate=True) == path
    back = read_dataset(path)
    assert back.n == 20
    np.testing.assert_array_equal(back.theta, ds.theta[:20])


def test_writer_refuses_bad_chunks(tmp_path, ds):
    w = DatasetWriter(tmp_path / "w.h5", ds.grid, ds.names, ds.meta, n_total=5)
    with pytest.raises(DataError, match=r"theta chunk has shape \(2, 2\); expected \(m, 3\)"):
        w.append(ds.theta[:2, :2], ds.spectra[:2])
    with pytest.raises(GridError, match=r"spectra chunk has shape \(2, 10, 7\)"):
        w.append(ds.theta[:2], ds.spectra[:2, :, :7])
    bad = ds.spectra[:2].copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="contains NaN"):
        w.append(ds.theta[:2], bad)
    with pytest.raises(DataError, match="exceeds n_total=5"):
        w.append(ds.theta[:6], ds.spectra[:6])
    w.close()


def test_required_meta_documented():
    assert {
        "material",
        "seed",
        "command",
        "domain_low",
        "domain_high",
        "fixed_names",
        "fixed_values",
        "width_meV",
        "accepted_fraction",
        "forward_model",
    } == set(REQUIRED_META)
