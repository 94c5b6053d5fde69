"""θ projection, reference member, bounds, sensitivity ranking and the embedded data files."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.mlff.build import build_reference, read_reference_fc
from fcinv.mlff.phonons import PhononSettings, frequencies_thz, phonopy_from_fc
from fcinv.mlff.sensitivity import EnsembleError, choose_reference, ensemble_bounds

from .mlff_helpers import nb_member

SETTINGS = PhononSettings.create(4, 0.005, mesh=4)


def test_choose_reference_is_closest_to_median():
    pts = {"a": {"X": [1.0, 2.0]}, "b": {"X": [1.1, 2.1]}, "c": {"X": [3.0, 4.0]}, "d": {"X": [1.2, 2.15]}}
    name, dist = choose_reference(pts)
    # median per component: 1.15, 2.125 -> b and d are closest; b: rms(0.05, 0.025), d: rms(0.05, 0.025)... break the tie explicitly
    med = np.median(np.array([v["X"] for v in pts.values()]), axis=0)
    want = min(pts, key=lambda n: np.sqrt(np.mean((np.array(pts[n]["X"]) - med) ** 2)))
    assert name == want and dist["c"] == max(dist.values())


def test_choose_reference_needs_a_member():
    with pytest.raises(EnsembleError, match="no stable ensemble member"):
        choose_reference({})


def test_bounds():
    lo, hi = ensemble_bounds(np.array([[1.0, -2.0], [3.0, -1.0], [2.0, -5.0]]))
    assert lo.tolist() == [1.0, -5.0] and hi.tolist() == [3.0, -1.0]
    with pytest.raises(EnsembleError, match="shape"):
        ensemble_bounds(np.zeros((0, 3)))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from fcinv.crystal import Crystal

    tmp = tmp_path_factory.mktemp("build")
    weights = tmp / "w.bin"
    weights.write_bytes(b"x")
    crystal = Crystal.from_name("Nb")
    members = [
        nb_member("stiff", 3.6, 1.3, weights),
        nb_member("mid", 3.0, 1.0, weights),
        nb_member("soft", 2.6, 0.8, weights),
        nb_member("unstable", -1.0, 1.0, weights),
        nb_member("broken", 3.0, 1.0, weights, fail=True),
    ]
    out = tmp / "data"
    ens = build_reference(
        crystal,
        members,
        SETTINGS,
        workdir=tmp / "work",
        out_dir=out,
        top_k=3,
        command="fcinv reference Nb --test",
        progress=False,
    )
    return crystal, ens, out


def test_ensemble_json_content(built):
    _, ens, out = built
    on_disk = json.loads((out / "ensemble.json").read_text())
    assert on_disk["members"] == ens["members"] and on_disk["command"] == "fcinv reference Nb --test"
    assert [m["name"] for m in ens["members"]] == ["stiff", "mid", "soft", "unstable", "broken"]
    assert ens["stable_members"] == ["stiff", "mid", "soft"]
    assert {d["name"]: d["status"] for d in ens["dropped"]} == {"unstable": "unstable", "broken": "failed"}
    assert ens["reference_member"]["name"] == "mid"  # the middle spring set is the median
    names = ens["space"]["names"]
    theta = {m["name"]: m["projection"]["theta"] for m in ens["members"] if "projection" in m}
    assert set(theta) == {"stiff", "mid", "soft", "unstable"}
    for n in names:  # bounds over the stable members only, reference inside
        vals = [theta[m][n] for m in ens["stable_members"]]
        assert ens["bounds"]["lower"][n] == pytest.approx(min(vals)) and ens["bounds"]["upper"][
            n
        ] == pytest.approx(max(vals))
        assert min(vals) <= ens["theta_ref"][n] <= max(vals)


def test_projection_recovers_springs(built):
    _, ens, _ = built
    th = next(m for m in ens["members"] if m["name"] == "mid")["projection"]
    assert th["in_shell_residual"] < 1e-6 and th["beyond_cutoff"] < 1e-6
    # central spring k along (1,1,1)/√3: Φ_xx = Φ_xy = -k/3 on the first shell
    assert th["theta"]["1NN_xx"] == pytest.approx(-1.0, rel=1e-2)
    assert th["theta"]["1NN_xy"] == pytest.approx(-1.0, rel=1e-2)


def test_ranking_and_sampled(built):
    _, ens, _ = built
    rows = ens["sensitivity"]["rows"]
    s = [r["S_image"] for r in rows]
    assert s == sorted(s, reverse=True)
    assert [r["name"] for r in rows] == ens["ranking"]
    assert [x["name"] for x in ens["sampled"]] == ens["ranking"][:3]
    assert [x["label"] for x in ens["sampled"]] == ["FC0", "FC1", "FC2"]
    assert set(ens["fixed"]) == set(ens["space"]["names"]) - set(ens["ranking"][:3])
    # parameters that do not vary across the springs (beyond the second shell) do not move the spectrum
    zero = [r for r in rows if abs(r["upper"] - r["lower"]) < 1e-9]
    assert zero and all(r["S_image"] < 1e-9 for r in zero)
    assert rows[0]["S_image"] > 0


def test_reference_fc_file(built):
    crystal, ens, out = built
    ref = read_reference_fc(out / "reference_fc.hdf5")
    assert ref["member"] == "mid" and ref["force_constants"].shape == (1, 64, 3, 3)
    ph = phonopy_from_fc(crystal, ref["force_constants"], ref["supercell_matrix"])
    rec = next(m for m in ens["members"] if m["name"] == "mid")
    for v in rec["summary"]["points"].values():
        assert np.allclose(frequencies_thz(ph, crystal, np.array([v["q_rlu"]]))[0], v["freqs_THz"], atol=1e-4)
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["reference_member"] == "mid" and prov["settings"]["displacement_A"] == 0.005
    assert prov["command"] == "fcinv reference Nb --test" and prov["fcinv_version"]


def test_read_reference_fc_rejects_incomplete(tmp_path):
    import h5py

    p = tmp_path / "bad.hdf5"
    with h5py.File(p, "w") as h5:
        h5["force_constants"] = np.zeros((1, 8, 3, 3))
    with pytest.raises(DataError, match="lacks"):
        read_reference_fc(p)
