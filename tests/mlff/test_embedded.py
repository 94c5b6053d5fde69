"""The committed Stage I data of Ge and Nb is complete and self-consistent."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.mlff.ensemble import SHIPPED_MEMBERS


@pytest.mark.parametrize("material", ["Ge", "Nb"])
def test_embedded_data_consistent(material):
    from fcinv.crystal import Crystal, material_dir
    from fcinv.fcspace import FCSpace
    from fcinv.mlff.build import load_ensemble, read_reference_fc
    from fcinv.mlff.phonons import frequencies_thz, phonopy_from_fc

    assert (material_dir(material) / "ensemble.json").is_file(), (
        f"the embedded {material} ensemble is shipped"
    )
    ens = load_ensemble(material)
    crystal = Crystal.from_name(material)
    assert [m["name"] for m in ens["members"]] == list(SHIPPED_MEMBERS)  # every shipped member appears
    for m in ens["members"]:
        assert (m["status"] == "stable") == (m["reason"] is None)
    space = FCSpace.for_material(crystal)
    assert ens["space"]["names"] == space.names
    assert ens["reference_member"]["name"] in ens["stable_members"]
    assert [s["name"] for s in ens["sampled"]] == ens["ranking"][: ens["top_k"]]
    for n in space.names:
        assert ens["bounds"]["lower"][n] <= ens["theta_ref"][n] <= ens["bounds"]["upper"][n]
    ref = read_reference_fc(material_dir(material) / "reference_fc.hdf5")
    assert ref["member"] == ens["reference_member"]["name"]
    rec = next(m for m in ens["members"] if m["name"] == ref["member"])
    ph = phonopy_from_fc(crystal, ref["force_constants"], ref["supercell_matrix"])
    for v in rec["summary"]["points"].values():
        assert np.allclose(frequencies_thz(ph, crystal, np.array([v["q_rlu"]]))[0], v["freqs_THz"], atol=1e-4)
