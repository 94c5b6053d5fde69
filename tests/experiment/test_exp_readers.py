"""Readers: Mantid MDHisto (SaveMD layout), NXSPE (real files), plain 4D arrays."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.experiment.instrument import energy_to_k
from fcinv.experiment.readers import (
    lattice_b_matrix,
    nxspe_to_points,
    read_array4d,
    read_mdhisto,
    read_nxspe,
    rotation_y,
    ub_from_vectors,
    write_array4d,
)
from fcinv.experiment.volume import Volume4D


# ------------------------------------------------------------------ Mantid MDHisto
def write_synthetic_mdhisto(path, dims, signal, errors_squared, num_events=None, mask=None, ids=None):
    """SYNTHETIC test file in the layout of Mantid's SaveMD (version 2) for an MDHistoWorkspace:
    /MDHistoWorkspace/data/<id> bin boundaries (attrs units, long_name, frame); signal,
    errors_squared, num_events (float64) and mask (int8) stored C-order with the dimensions
    reversed, signal's 'axes' attribute "d3:d2:d1:d0". Written with h5py, not by Mantid."""
    ids = ids or [f"D{i}" for i in range(len(dims))]
    rev = tuple(range(signal.ndim))[::-1]
    with h5py.File(path, "w") as f:
        ws = f.create_group("MDHistoWorkspace")
        ws.attrs["NX_class"] = "NXentry"
        ws.attrs["SaveMDVersion"] = 2
        ws.create_dataset("coordinate_system", data=np.array([3], dtype=np.uint32))
        d = ws.create_group("data")
        d.attrs["NX_class"] = "NXdata"
        for i, (name, unit, edges) in zip(ids, dims):
            ds = d.create_dataset(i, data=np.asarray(edges, float))
            ds.attrs["units"] = unit
            ds.attrs["long_name"] = name
            ds.attrs["frame"] = "HKL" if unit != "meV" else "General Frame"
        s = d.create_dataset("signal", data=np.transpose(signal, rev))
        s.attrs["signal"] = 1
        s.attrs["axes"] = ":".join(ids[::-1])
        d.create_dataset("errors_squared", data=np.transpose(errors_squared, rev))
        d.create_dataset(
            "num_events",
            data=np.transpose(num_events if num_events is not None else np.ones_like(signal), rev),
        )
        d.create_dataset(
            "mask",
            data=np.transpose(
                (mask if mask is not None else np.zeros(signal.shape, bool)).astype(np.int8), rev
            ),
        )


def _md_data(seed=0):
    rng = np.random.default_rng(seed)
    edges = [np.linspace(-1, 1, 5), np.linspace(0, 1.5, 4), np.linspace(-0.2, 0.2, 3), np.linspace(0, 10, 7)]
    shape = tuple(len(e) - 1 for e in edges)
    sig = rng.uniform(0.1, 1.0, shape)
    sig[rng.random(shape) < 0.2] = np.nan
    es = (0.1 * np.nan_to_num(sig, nan=0.5)) ** 2
    mask = np.zeros(shape, bool)
    mask[0, 0, 0, :2] = True
    return edges, sig, es, mask


def test_mdhisto_layout_is_read_in_mantid_dimension_order(tmp_path):
    edges, sig, es, mask = _md_data()
    dims = [
        ("[H,0,0]", "in 1.111 A^-1", edges[0]),
        ("[0,K,0]", "in 1.111 A^-1", edges[1]),
        ("[0,0,L]", "in 1.111 A^-1", edges[2]),
        ("DeltaE", "meV", edges[3]),
    ]
    p = tmp_path / "slice.nxs"
    write_synthetic_mdhisto(p, dims, sig, es, mask=mask)
    md = read_mdhisto(p)
    assert md["names"] == ["[H,0,0]", "[0,K,0]", "[0,0,L]", "DeltaE"]
    assert md["coordinate_system"] == 3
    np.testing.assert_array_equal(md["signal"], sig)
    np.testing.assert_array_equal(md["mask"], mask)
    for a, b in zip(md["edges"], edges):
        np.testing.assert_allclose(a, b)
    vol = Volume4D.from_mdhisto(p)
    covered = np.isfinite(sig) & ~mask
    assert vol.n_covered == int(covered.sum())
    np.testing.assert_allclose(vol.to_dense()["signal"][covered], sig[covered])
    np.testing.assert_allclose(vol.to_dense()["error"][covered], np.sqrt(es[covered]))


def test_mdhisto_dimensions_in_another_order_are_reordered(tmp_path):
    edges, sig, es, _ = _md_data(1)
    order = [3, 2, 0, 1]  # E, L, H, K on disk
    names = ["[H,0,0]", "[0,K,0]", "[0,0,L]", "DeltaE"]
    units = ["r.l.u.", "r.l.u.", "r.l.u.", "meV"]
    dims = [(names[i], units[i], edges[i]) for i in order]
    p = tmp_path / "perm.nxs"
    write_synthetic_mdhisto(
        p,
        dims,
        np.transpose(sig, order),
        np.transpose(es, order),
        ids=["DeltaE", "[0,0,L]", "[H,0,0]", "[0,K,0]"],
    )
    vol = Volume4D.from_mdhisto(p)
    assert vol.shape == sig.shape
    np.testing.assert_array_equal(np.isfinite(vol.to_dense()["signal"]), np.isfinite(sig))


def test_mdhisto_with_normalisation_workspace(tmp_path):
    edges, sig, es, _ = _md_data(2)
    dims = [
        ("[H,0,0]", "r.l.u.", edges[0]),
        ("[0,K,0]", "r.l.u.", edges[1]),
        ("[0,0,L]", "r.l.u.", edges[2]),
        ("DeltaE", "meV", edges[3]),
    ]
    data = np.nan_to_num(sig, nan=0.0) * 4.0
    norm = np.where(np.isfinite(sig), 4.0, 0.0)
    write_synthetic_mdhisto(tmp_path / "d.nxs", dims, data, es * 16)
    write_synthetic_mdhisto(tmp_path / "n.nxs", dims, norm, np.zeros_like(norm))
    vol = Volume4D.from_mdhisto(tmp_path / "d.nxs", norm_path=tmp_path / "n.nxs")
    covered = np.isfinite(sig)
    assert vol.n_covered == int(covered.sum())
    np.testing.assert_allclose(vol.to_dense()["signal"][covered], sig[covered])
    np.testing.assert_allclose(vol.norm, 4.0)


def test_mdhisto_bad_files_are_refused(tmp_path):
    edges, sig, es, _ = _md_data()
    good = [
        ("[H,0,0]", "r.l.u.", edges[0]),
        ("[0,K,0]", "r.l.u.", edges[1]),
        ("[0,0,L]", "r.l.u.", edges[2]),
        ("DeltaE", "meV", edges[3]),
    ]
    p = tmp_path / "hh0.nxs"
    write_synthetic_mdhisto(p, [("[H,H,0]", "r.l.u.", edges[0]), *good[1:]], sig, es)
    with pytest.raises(DataError, match=r"cannot identify the H dimension .* only the projections"):
        Volume4D.from_mdhisto(p)
    q = tmp_path / "neg.nxs"
    nev = np.ones(sig.shape)
    nev[1, 1, 1, 1] = -3
    write_synthetic_mdhisto(q, good, sig, es, num_events=nev)
    with pytest.raises(DataError, match="num_events has 1 negative values"):
        Volume4D.from_mdhisto(q)
    r = tmp_path / "nomd.nxs"
    with h5py.File(r, "w") as f:
        f.create_group("MDEventWorkspace")
    with pytest.raises(DataError, match="has no /MDHistoWorkspace group"):
        read_mdhisto(r)
    s = tmp_path / "wrongedges.nxs"
    write_synthetic_mdhisto(s, [("[H,0,0]", "r.l.u.", edges[0][:-1]), *good[1:]], sig, es)
    with pytest.raises(DataError, match=r"has 4 boundaries for 4 bins; expected 5"):
        read_mdhisto(s)
    t = tmp_path / "decreasing.nxs"
    write_synthetic_mdhisto(t, [("[H,0,0]", "r.l.u.", edges[0][::-1]), *good[1:]], sig, es)
    with pytest.raises(DataError, match="axis H edges are not increasing"):
        Volume4D.from_mdhisto(t)


# ------------------------------------------------------------------------- NXSPE
NXSPE_FILES = {
    # file: (n_det, n_E, Ei, psi, NaN pixels)
    "MAR11001_test.nxspe": (285, 110, 12.97283725, 0.0, 3630),
    "nxspe_version1_0.nxspe": (5, 30, 800.0, 0.0, 60),
    "gen_sqw_96dets.nxspe": (96, 145, 35.5, 90.0000025, 0),
}


@pytest.mark.parametrize("name", sorted(NXSPE_FILES))
def test_real_nxspe_files_are_read(nxspe_dir, name):
    n_det, n_e, ei, psi, n_nan = NXSPE_FILES[name]
    nx = read_nxspe(nxspe_dir / name)
    assert nx["data"].shape == nx["error"].shape == (n_det, n_e)
    assert len(nx["energy_edges"]) == n_e + 1
    assert len(nx["polar"]) == len(nx["azimuthal"]) == n_det
    assert nx["ei"] == pytest.approx(ei)
    assert nx["psi"] == pytest.approx(psi)
    assert int(np.isnan(nx["data"]).sum()) == n_nan  # masked detectors are kept as NaN


@pytest.mark.parametrize("name", sorted(NXSPE_FILES))
def test_nxspe_kinematics_give_the_right_momentum_transfer(nxspe_dir, name):
    nx = read_nxspe(nxspe_dir / name)
    b = lattice_b_matrix(5.0, 6.0, 7.0, 90, 100, 90)
    ub = ub_from_vectors(b, (1, 0, 0), (0, 1, 1))
    pts = nxspe_to_points(nx, ub)
    q_cart = pts["hkl"] @ (2 * np.pi * ub).T  # back to the sample frame
    e = pts["energy"]
    ki, kf = energy_to_k(nx["ei"]), energy_to_k(nx["ei"] - e)
    tth = np.repeat(np.deg2rad(nx["polar"]), len(e) // len(nx["polar"]))
    expected = np.sqrt(ki**2 + kf**2 - 2 * ki * kf * np.cos(tth))  # law of cosines, independent of psi and UB
    np.testing.assert_allclose(np.linalg.norm(q_cart, axis=1), expected, rtol=1e-10)
    # the sample rotation: Q_lab = R_y(psi) Q_sample
    nx0 = dict(nx, psi=0.0)
    q0 = nxspe_to_points(nx0, ub)["hkl"] @ (2 * np.pi * ub).T
    np.testing.assert_allclose(q_cart @ rotation_y(nx["psi"]).T, q0, atol=1e-10)


def test_nxspe_files_bin_into_a_volume(nxspe_dir):
    paths = [nxspe_dir / "gen_sqw_96dets.nxspe"]
    vol = Volume4D.from_nxspe(paths, lattice=(2.87, 2.87, 2.87), u=(1, 0, 0), v=(0, 1, 0), q_step=0.1)
    nx = read_nxspe(paths[0])
    assert vol.edges[3].tolist() == nx["energy_edges"].tolist()
    # every finite pixel lands in exactly one bin: the norms (pixel counts) add up
    assert vol.norm.sum() == pytest.approx(
        np.isfinite(nx["data"][:, 0.5 * (nx["energy_edges"][1:] + nx["energy_edges"][:-1]) < nx["ei"]]).sum()
    )
    assert vol.meta["psi_deg"] == [pytest.approx(90.0000025)]
    with pytest.raises(DataError, match="carry no sample orientation"):
        Volume4D.from_nxspe(paths)


def test_nxspe_bad_files_are_refused(tmp_path):
    p = tmp_path / "bad.nxspe"
    with h5py.File(p, "w") as f:
        g = f.create_group("run")
        d = g.create_group("data")
        g.create_group("NXSPE_info").create_dataset("fixed_energy", data=[40.0])
        d.create_dataset("data", data=np.ones((3, 4)))
        d.create_dataset("error", data=np.ones((3, 4)))
        d.create_dataset("energy", data=np.arange(4.0))  # centres, not edges
        d.create_dataset("polar", data=[10.0, 20.0, 30.0])
        d.create_dataset("azimuthal", data=[0.0, 0.0, 0.0])
    with pytest.raises(DataError, match="NXSPE energy must hold the 5 bin edges"):
        read_nxspe(p)
    q = tmp_path / "notnxspe.nxspe"
    with h5py.File(q, "w") as f:
        f.create_group("entry")
    with pytest.raises(DataError, match="has no NXSPE entry"):
        read_nxspe(q)


# ------------------------------------------------------------------ plain arrays
def _plain(seed=0):
    rng = np.random.default_rng(seed)
    edges = [np.linspace(-1, 1, 4), np.linspace(0, 1, 3), np.linspace(0, 1, 3), np.linspace(0, 5, 6)]
    shape = tuple(len(e) - 1 for e in edges)
    sig = rng.uniform(0, 1, shape)
    sig[0, 0, 0, :] = np.nan
    return edges, sig, 0.1 * np.nan_to_num(sig, nan=1.0)


@pytest.mark.parametrize("suffix", [".h5", ".npz"])
def test_plain_array_round_trip(tmp_path, suffix):
    edges, sig, err = _plain()
    p = tmp_path / f"vol{suffix}"
    write_array4d(p, edges, sig, err)
    d = read_array4d(p)
    np.testing.assert_array_equal(d["signal"], sig)
    vol = Volume4D.from_array_file(p)
    assert vol.n_covered == int(np.isfinite(sig).sum())
    np.testing.assert_allclose(vol.to_dense()["error"][np.isfinite(sig)], err[np.isfinite(sig)])


def test_plain_array_axes_as_centres_and_counts(tmp_path):
    edges, sig, _ = _plain()
    centres = {k: 0.5 * (e[1:] + e[:-1]) for k, e in zip("HKLE", edges)}
    counts = np.nan_to_num(sig * 10).round()
    p = tmp_path / "counts.npz"
    np.savez(p, counts=counts, norm=np.full(counts.shape, 2.0), **centres)
    vol = Volume4D.from_array_file(p)
    for a, b in zip(vol.edges, edges):
        np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(vol.signal, counts.ravel() / 2.0)
    counts[0, 0, 0, 0] = -1
    np.savez(p, counts=counts, **centres)
    with pytest.raises(DataError, match="counts contain 1 negative values"):
        Volume4D.from_array_file(p)


def test_plain_array_bad_files_are_refused(tmp_path):
    edges, sig, err = _plain()
    p = tmp_path / "a.npz"
    np.savez(p, signal=sig, error=err, H=edges[0], K=edges[1], L=edges[2])
    with pytest.raises(DataError, match=r"lacks the axis arrays \['E'\]"):
        read_array4d(p)
    np.savez(p, signal=sig, error=err, H=edges[0], K=edges[1], L=edges[2], E=edges[3][:-2])
    with pytest.raises(DataError, match="axis E has 4 values for 5 bins"):
        read_array4d(p)
    np.savez(p, signal=sig, error=err, H=edges[0][::-1], K=edges[1], L=edges[2], E=edges[3])
    with pytest.raises(DataError, match="axis H edges are not increasing"):
        read_array4d(p)
    np.savez(p, signal=sig[0], error=err[0], H=edges[0], K=edges[1], L=edges[2], E=edges[3])
    with pytest.raises(DataError, match="expected \\(n_H, n_K, n_L, n_E\\)"):
        read_array4d(p)
    np.savez(p, data=sig)
    with pytest.raises(DataError, match="has neither 'signal' nor 'counts'"):
        read_array4d(p)
    np.savez(p, signal=sig, H=edges[0], K=edges[1], L=edges[2], E=edges[3])
    with pytest.raises(DataError, match="no error given"):
        Volume4D.from_array_file(p)
