"""One format registry: every measurement format sniffed and loaded in one place."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.experiment.folded import FoldedSpectrum
from fcinv.experiment.volume import Volume4D
from fcinv.io import FORMATS, open_measurement, sniff

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "io"
SHARED = (REPO / ".." / "shared" / "data").resolve()


def shared_path(*parts: str) -> Path:
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found at {p} (the ../shared/data folder beside the repository)")
    return p


@pytest.fixture(scope="module")
def ge():
    from fcinv.material import load_material

    return load_material("Ge")


def test_fixtures_are_sniffed(tmp_path):
    assert sniff(DATA / "tiny_mdhisto.nxs") == "mdhisto"
    assert sniff(DATA / "tiny_array4d.npz") == "array"
    assert sniff(DATA / "ge_pathsqe_folded.npy") == "pathsqe"


def test_fcinv_files_are_sniffed_by_their_format_attribute(tmp_path, ge):
    fs = FoldedSpectrum.from_arrays(np.ones(ge.grid().shape), ge.grid())
    fs.to_hdf5(tmp_path / "f.h5")
    vol = Volume4D.from_dense(
        [np.arange(3.0)] * 3 + [np.arange(4.0)], np.ones((2, 2, 2, 3)), np.ones((2, 2, 2, 3))
    )
    vol.to_hdf5(tmp_path / "v.h5")
    assert sniff(tmp_path / "f.h5") == "folded" and sniff(tmp_path / "v.h5") == "volume"
    assert isinstance(open_measurement(tmp_path / "f.h5"), FoldedSpectrum)
    assert open_measurement(tmp_path / "v.h5").n_covered == 24


def test_every_format_loads_what_it_says(ge):
    md = open_measurement(DATA / "tiny_mdhisto.nxs", lattice=ge.lattice)
    arr = open_measurement(DATA / "tiny_array4d.npz")
    assert isinstance(md, Volume4D) and md.shape == (4, 3, 2, 6) and md.reciprocal_cell is not None
    assert isinstance(arr, Volume4D) and arr.shape == (4, 3, 2, 6)
    ps = open_measurement(DATA / "ge_pathsqe_folded.npy", grid=ge.grid())
    assert isinstance(ps, FoldedSpectrum) and 0.7 < ps.coverage < 0.8
    assert {f.kind for f in FORMATS.values()} == {"folded", "volume"}


def test_real_nxspe_through_the_registry(ge):
    f = shared_path("nxspe", "MAR11001_test.nxspe")
    assert sniff(f) == "nxspe"
    vol = open_measurement(f, lattice=ge.lattice, grid=ge.grid())
    assert isinstance(vol, Volume4D) and vol.meta["source_format"] == "NXSPE"
    np.testing.assert_array_equal(vol.edges[3], ge.grid().energy_edges)
    with pytest.raises(DataError, match="NXSPE files carry no sample orientation"):
        open_measurement(f)


def test_bad_inputs_are_refused(tmp_path, ge):
    with pytest.raises(DataError, match="does not exist"):
        open_measurement(tmp_path / "nope.h5")
    with pytest.raises(DataError, match="carries no q-path"):
        open_measurement(DATA / "ge_pathsqe_folded.npy")
    with pytest.raises(DataError, match=r"option\(s\) \['orientation'\] do not apply to mdhisto input"):
        open_measurement(DATA / "tiny_mdhisto.nxs", orientation=3)
    with pytest.raises(DataError, match="only NXSPE input takes several files"):
        open_measurement([DATA / "tiny_array4d.npz", DATA / "tiny_array4d.npz"])
    with pytest.raises(DataError, match="format 'nope' is unknown"):
        open_measurement(DATA / "tiny_array4d.npz", format="nope")
    junk = tmp_path / "junk.h5"
    with h5py.File(junk, "w") as f:
        f["whatever"] = [1, 2]
    with pytest.raises(DataError, match="is not recognised"):
        sniff(junk)
    text = tmp_path / "x.txt"
    text.write_text("hello")
    with pytest.raises(DataError, match="neither NumPy nor HDF5"):
        sniff(text)
    ds = tmp_path / "d.h5"
    with h5py.File(ds, "w") as f:
        f.attrs["format"] = "fcinv-dataset"
    with pytest.raises(DataError, match="is a training dataset, not a measurement"):
        sniff(ds)


def test_horace_sqw_names_the_conversion(tmp_path):
    """No maintained Python reader of Horace .sqw exists: the refusal names the documented route."""
    sqw = tmp_path / "iron.sqw"
    sqw.write_bytes(b"\x00horace\x00" * 8)
    for call in (lambda: sniff(sqw), lambda: open_measurement(sqw)):
        with pytest.raises(DataError, match=r"Horace \.sqw file.*NXSPE files it was generated from") as e:
            call()
        assert "LoadSQW2, BinMD" in str(e.value) and "SaveMD" in str(e.value) and "\n" not in str(e.value)
