"""The ensemble run: per-member cache (atomic, resumable), failures skipped, convergence study."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.errors import DataError
from fcinv.mlff.phonons import PhononSettings
from fcinv.mlff.runner import convergence_study, load_result, run_ensemble

from .mlff_helpers import nb_member

SETTINGS = PhononSettings.create(3, 0.005, mesh=4)


def test_members_run_cache_and_resume(nb_crystal, weights_file, tmp_path):
    good = nb_member("good", 3.0, 1.0, weights_file)
    soft = nb_member("soft", -1.0, 1.0, weights_file)
    broken = nb_member("broken", 3.0, 1.0, weights_file, fail=True)
    work = tmp_path / "work"
    res = run_ensemble(nb_crystal, [good, soft, broken], SETTINGS, work, progress=False)
    assert [r.status for r in res] == ["stable", "unstable", "failed"]
    assert res[1].reason.startswith("imaginary modes") and "H" in res[1].reason
    assert res[2].reason == "RuntimeError: weights are corrupt"  # one line
    assert (
        res[0].fc.shape == (1, 27, 3, 3)
        and res[0].wall_s > 0
        and res[0].lattice_a == pytest.approx(nb_crystal.conventional_a)
    )
    assert sorted(p.name for p in work.iterdir()) == [
        "broken.h5",
        "good.h5",
        "soft.h5",
    ]  # no temporary files left
    # a rerun reuses finished members and retries the failed one
    again = run_ensemble(nb_crystal, [good, soft, broken], SETTINGS, work, progress=False)
    assert len(good.calls) == 1 and len(soft.calls) == 1 and len(broken.calls) == 2
    assert np.array_equal(again[0].fc, res[0].fc) and again[0].summary == res[0].summary
    # other settings invalidate the cache
    run_ensemble(nb_crystal, [good], PhononSettings.create(3, 0.01, mesh=4), work, progress=False)
    assert len(good.calls) == 2


def test_cache_key_holds_the_whole_cell(nb_crystal):
    """Same name and conventional a, another cell (a strained c axis): another cache key."""
    from dataclasses import replace as dc_replace

    from fcinv.mlff.runner import cache_key

    member = nb_member("good", 3.0, 1.0, None)
    lat = np.array(nb_crystal.lattice, float)
    lat[2] *= 1.01
    other = dc_replace(nb_crystal, lattice=lat)
    assert other.name == nb_crystal.name and other.conventional_a == pytest.approx(nb_crystal.conventional_a)
    k0, k1 = (cache_key(c, member, SETTINGS, False) for c in (nb_crystal, other))
    assert k0["cell_sha"] != k1["cell_sha"]
    assert cache_key(nb_crystal, member, SETTINGS, False) == k0  # deterministic


def test_cached_file_roundtrip(nb_crystal, weights_file, tmp_path):
    m = nb_member("m", 3.0, 1.0, weights_file)
    (res,) = run_ensemble(nb_crystal, [m], SETTINGS, tmp_path, progress=False)
    back, key = load_result(tmp_path / "m.h5")
    assert back.record() == res.record()
    assert np.array_equal(back.p2s_map, res.p2s_map)
    assert key["member"] == "m" and key["displacement_A"] == 0.005


def test_corrupt_cache_recomputed(nb_crystal, weights_file, tmp_path):
    (tmp_path / "m.h5").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable"):
        load_result(tmp_path / "m.h5")
    m = nb_member("m", 3.0, 1.0, weights_file)
    (res,) = run_ensemble(nb_crystal, [m], SETTINGS, tmp_path, progress=False)
    assert res.status == "stable" and len(m.calls) == 1


def test_relax_records_member_lattice(nb_crystal, weights_file, tmp_path):
    from .mlff_helpers import FakeMember

    a_true = nb_crystal.conventional_a * 1.01
    m = FakeMember(name="big", shells=((a_true * np.sqrt(3) / 2, 3.0), (a_true, 1.0)), weights=weights_file)
    (res,) = run_ensemble(nb_crystal, [m], SETTINGS, tmp_path, relax=True, progress=False)
    assert res.relaxed and res.lattice_a == pytest.approx(a_true, abs=2e-3)


def test_convergence_study_reference_row(nb_crystal, weights_file):
    m = nb_member("m", 3.0, 1.0, weights_file)
    out = convergence_study(nb_crystal, m, [2, 3], [0.005, 0.02], progress=False)
    rows = out["rows"]
    assert len(rows) == 4 and out["reference"] == rows[2]
    assert rows[2]["max_abs_dTHz"] == 0.0
    # central springs reach only second neighbours: 3x3x3 holds them all, so only the displacement matters
    assert rows[3]["max_abs_dTHz"] > 0
    assert all(r["max_abs_dTHz"] >= 0 for r in rows)
