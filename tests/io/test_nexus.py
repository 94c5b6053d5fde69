"""NeXus NXdata on every HDF5 fcinv writes: NXroot -> NXentry -> NXdata with signal, axes and units.

A NeXus reader (NeXpy, h5web, Mantid's generic loader) follows ``@default`` from the root to
the NXdata group and plots ``@signal`` against ``@axes``; these tests follow the same chain
with plain h5py. Files written before the NeXus group existed must still load.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.experiment.folded import FoldedSpectrum, read_folded
from fcinv.experiment.volume import Volume4D
from fcinv.io import nexus
from fcinv.io.nexus import read_nxdata


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def nxdata_group(f: h5py.File) -> h5py.Group:
    """Follow @default from the root as a NeXus reader does; check the NX_class of each level."""
    assert _s(f.attrs["NX_class"]) == "NXroot"
    entry = f[_s(f.attrs["default"])]
    assert _s(entry.attrs["NX_class"]) == "NXentry"
    data = entry[_s(entry.attrs["default"])]
    assert _s(data.attrs["NX_class"]) == "NXdata"
    return data


def check_nxdata(g: h5py.Group) -> tuple[h5py.Dataset, list[str]]:
    """signal and axes attributes name fields of the right length, each with units."""
    signal = g[_s(g.attrs["signal"])]
    axes = [_s(a) for a in np.atleast_1d(g.attrs["axes"])]
    assert len(axes) == signal.ndim
    for dim, name in enumerate(axes):
        if name == ".":
            continue
        assert int(g.attrs[f"{name}_indices"]) == dim
        assert len(g[name]) in (signal.shape[dim], signal.shape[dim] + 1), name
        assert _s(g[name].attrs["units"]), name
    assert _s(signal.attrs["units"])
    return signal, axes


def strip_nexus(path) -> None:
    """Make a file as fcinv wrote it before the NeXus group (no /entry, no NX attributes)."""
    with h5py.File(path, "r+") as f:
        del f["entry"]
        for k in ("NX_class", "default"):
            del f.attrs[k]


def _volume_on_the_path(ge) -> Volume4D:
    """A small dense 4D volume around Γ–X (0..1 along H, K, L) on the Ge grid's energies."""
    rng = np.random.default_rng(5)
    q = np.arange(-0.125, 1.2, 0.05)
    e = np.asarray(ge.grid().energy_edges)[::4]
    shape = (len(q) - 1,) * 3 + (len(e) - 1,)
    signal = rng.uniform(0.5, 2.0, shape)
    return Volume4D.from_dense([q, q, q, e], signal, 0.1 * signal, meta={"source": "test volume"})


@pytest.fixture(scope="module")
def ge():
    from fcinv.material import load_material

    return load_material("Ge")


def test_fold_writes_nxdata_with_signal_and_axes(tmp_path, ge, capsys):
    """Must show (issue 14): the file written by `fcinv fold` opens in h5py as NXdata."""
    from fcinv.cli import fold

    vol_path = tmp_path / "vol.h5"
    _volume_on_the_path(ge).to_hdf5(vol_path)
    out = tmp_path / "folded.h5"
    assert fold.main([str(vol_path), "--material", "Ge", "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        g = nxdata_group(f)
        signal, axes = check_nxdata(g)
        assert _s(g.attrs["signal"]) == "intensity" and axes == ["q_path", "energy"]
        assert signal.shape == ge.grid().shape
        assert _s(g["energy"].attrs["units"]) == "meV" and len(g["energy"]) == ge.grid().n_e + 1
        assert _s(g["q_path"].attrs["units"]) == "path coordinate"
        for c in "hkl":
            assert _s(g[c].attrs["units"]) == "r.l.u." and int(g.attrs[f"{c}_indices"]) == 0
        np.testing.assert_array_equal(np.c_[g["h"][()], g["k"][()], g["l"][()]], f["axes/q_rlu"][()])
        # the NXdata fields are the file's own data (hard links), not copies that could drift
        assert g["intensity"].id == f["intensity"].id and g["intensity_errors"].id == f["error"].id
    fs = read_folded(out)
    assert 0 < fs.coverage < 1
    assert read_nxdata(out)["signal"] == "intensity"


def test_volume_nxdata_dense_and_scattered(tmp_path, ge, monkeypatch):
    vol = _volume_on_the_path(ge)
    vol.to_hdf5(tmp_path / "dense.h5")
    with h5py.File(tmp_path / "dense.h5", "r") as f:
        g = nxdata_group(f)
        signal, axes = check_nxdata(g)
        assert axes == ["H", "K", "L", "E"] and signal.shape == vol.shape
        np.testing.assert_allclose(signal[()].ravel()[vol.index], vol.signal, rtol=1e-6)
        assert _s(g["E"].attrs["units"]) == "meV" and _s(g["H"].attrs["units"]) == "r.l.u."
    # beyond the dense limit: NeXus scattered data, one bin-centre coordinate per measured bin
    monkeypatch.setattr(nexus, "DENSE_NXDATA_LIMIT", 10)
    vol.to_hdf5(tmp_path / "scattered.h5")
    with h5py.File(tmp_path / "scattered.h5", "r") as f:
        g = nxdata_group(f)
        signal = g[_s(g.attrs["signal"])]
        assert signal.shape == (vol.n_covered,) and signal.id == f["signal"].id
        assert [_s(a) for a in g.attrs["axes"]] == ["H", "K", "L", "E"]
        h, k, l_, e = vol.unravel()
        for name, idx, edges in zip("HKLE", (h, k, l_, e), vol.edges):
            assert int(g.attrs[f"{name}_indices"]) == 0
            np.testing.assert_allclose(g[name][()], 0.5 * (edges[:-1] + edges[1:])[idx], rtol=1e-6)
    assert Volume4D.from_hdf5(tmp_path / "scattered.h5").n_covered == vol.n_covered


def test_dataset_file_is_nxdata(tmp_path):
    from fcinv.dataset import read_dataset, write_dataset
    from fcinv.dataset.toy import make_toy_dataset

    ds = make_toy_dataset(n=12, k=3, n_q=10, n_e=8, seed=3)
    path = write_dataset(tmp_path / "toy.h5", ds)
    with h5py.File(path, "r") as f:
        g = nxdata_group(f)
        signal, axes = check_nxdata(g)
        assert axes == [".", "q_path", "energy"] and signal.shape == (12, 10, 8)
        assert signal.id == f["spectra"].id
    strip_nexus(path)
    np.testing.assert_array_equal(read_dataset(path).theta, ds.theta)


def test_simulate_writes_nxdata(tmp_path, capsys):
    from fcinv.cli import simulate

    out = tmp_path / "ge.h5"
    assert simulate.main(["--material", "Ge", "-o", str(out)]) == 0
    with h5py.File(out, "r") as f:
        signal, axes = check_nxdata(nxdata_group(f))
        assert axes == ["q_path", "energy"] and np.isfinite(signal[()]).all()


def test_simulated_run_nxdata_is_the_summed_run(tmp_path):
    from fcinv.experiment.simulate import SimulatedRun

    edges = (np.linspace(0, 1, 5),) * 3 + (np.linspace(0, 10, 4),)
    index = np.array([0, 5, 7, 5, 9], dtype=np.int64)  # bin 5 seen by both orientations
    run = SimulatedRun(
        edges=edges,
        psi=np.array([0.0, 10.0]),
        offsets=np.array([0, 3, 5]),
        index=index,
        counts=np.array([4, 9, 1, 3, 2]),
        norm=np.array([2.0, 3.0, 1.0, 1.0, 2.0]),
        expected_index=np.array([0, 5, 7, 9]),
        expected=np.ones(4),
        reciprocal_cell=np.eye(3),
        meta={"seed": 1},
    )
    run.write(tmp_path / "run.h5")
    with h5py.File(tmp_path / "run.h5", "r") as f:
        signal, axes = check_nxdata(nxdata_group(f))
        dense = signal[()].ravel()
    np.testing.assert_allclose(dense[[0, 5, 7, 9]], [2.0, 12 / 4, 1.0, 1.0])
    assert np.isnan(np.delete(dense, [0, 5, 7, 9])).all()
    strip_nexus(tmp_path / "run.h5")
    assert SimulatedRun.read(tmp_path / "run.h5").n_orientations == 2


def test_files_without_nexus_still_load(tmp_path, ge):
    """Files written before the NeXus group (stripped here) read exactly as before."""
    grid = ge.grid()
    inten = np.where(np.arange(grid.n_q)[:, None] % 3 == 0, np.nan, 1.0) * np.ones(grid.shape)
    fs = FoldedSpectrum.from_arrays(inten, grid, error=0.1 * np.ones(grid.shape))
    fs.to_hdf5(tmp_path / "f.h5")
    vol = _volume_on_the_path(ge)
    vol.to_hdf5(tmp_path / "v.h5")
    for p in ("f.h5", "v.h5"):
        strip_nexus(tmp_path / p)
        with pytest.raises(DataError, match="has no NeXus default plot"):
            read_nxdata(tmp_path / p)
    back = read_folded(tmp_path / "f.h5")
    np.testing.assert_array_equal(back.intensity, fs.intensity)
    np.testing.assert_array_equal(Volume4D.from_hdf5(tmp_path / "v.h5").signal, vol.signal)
    from fcinv.io import open_measurement, sniff

    assert sniff(tmp_path / "f.h5") == "folded" and sniff(tmp_path / "v.h5") == "volume"
    assert open_measurement(tmp_path / "v.h5").n_covered == vol.n_covered


def test_write_nxdata_refuses_a_wrong_axis(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as f:
        with pytest.raises(DataError, match="axis 'E' has 7 values for a dimension of 3"):
            nexus.write_nxdata(
                f, nexus.NXField("s", np.zeros((2, 3)), "1"), [None, nexus.NXField("E", np.arange(7), "meV")]
            )
        with pytest.raises(DataError, match="has 2 dimensions but 1 axes"):
            nexus.write_nxdata(f, nexus.NXField("s", np.zeros((2, 3)), "1"), [None])
