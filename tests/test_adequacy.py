"""Data-adequacy verdict (fcinv.adequacy): refusals, warnings, constrained parameters, CLI guards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fcinv.adequacy import (
    THRESHOLDS,
    AdequacyError,
    MixedRunsError,
    assess,
    check_k_samples,
    check_mergeable,
    check_spectrum,
)
from fcinv.errors import FcinvError

SHARED = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="module")
def ge():
    from fcinv.crystal import default_grid
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    grid = default_grid(ref.crystal)
    fm = ref.forward_model(free=list(ref.sampled[:8]), grid=grid)
    return ref, grid, fm, np.asarray(fm.spectra(fm.theta0[None])[0], float)


@pytest.mark.parametrize(
    "fill, match", [(0.0, "is zero"), (-1.0, "zero or negative"), (np.nan, "no measured pixel")]
)
def test_nothing_measured_is_refused(ge, fill, match):
    _, grid, fm, _ = ge
    img = np.full(grid.shape, fill)
    with pytest.raises(AdequacyError, match=match):
        check_spectrum(img)
    with pytest.raises(AdequacyError, match=match):
        assess(img, grid, model=fm, theta=fm.theta0)


def test_constant_spectrum_is_refused(ge):
    _, grid, _, _ = ge
    with pytest.raises(AdequacyError, match="constant"):
        check_spectrum(np.full(grid.shape, 3.0))


def test_full_spectrum_is_adequate_and_names_the_constrained(ge):
    _, grid, fm, img = ge
    v = assess(img, grid, model=fm, theta=fm.theta0)
    assert v.coverage == 1.0 and v.energy_span == pytest.approx(1.0)
    assert not any("measured" in w and "grid" in w for w in v.warnings)
    assert set(v.constrained) == set(fm.names)
    assert all(x == pytest.approx(1.0) for x in v.constrained.values())
    json.dumps(v.as_dict())
    assert any(line.startswith("data: 100.0% of the grid") for line in v.table_lines())


def test_six_percent_low_energy_coverage_warns(ge):
    """A constructed mask like the real MARI fold of issue 11: 6 % of the grid, all below 10 meV."""
    _, grid, fm, img = ge
    low = np.nonzero(grid.energy < 10.0)[0]
    rng = np.random.default_rng(0)
    mask = np.zeros(grid.shape, bool)
    n_pix = int(0.06 * mask.size)
    cand = np.array([(i, j) for i in range(grid.n_q) for j in low])
    pick = cand[rng.choice(len(cand), n_pix, replace=False)]
    mask[pick[:, 0], pick[:, 1]] = True
    v = assess(np.where(mask, img, np.nan), grid, model=fm, theta=fm.theta0)
    assert v.coverage == pytest.approx(0.06, abs=0.002)
    assert not v.ok
    assert any("of the grid is measured" in w for w in v.warnings)
    assert any("span" in w and "meV" in w for w in v.warnings)
    assert v.energy_range_meV[1] < 10.0
    lines = v.table_lines()
    assert lines[0].startswith("WARNING:")


def test_unmeasured_parameter_is_named_and_nothing_constrained_refused(ge):
    _, grid, fm, img = ge
    # only the highest energies above every mode: no parameter moves any measured pixel
    e_top = float(np.asarray(fm.frequencies(fm.theta0)).max())
    mask = np.zeros(grid.shape, bool)
    mask[:, grid.energy > e_top + 8.0] = True
    if not mask.any():
        pytest.skip("the Ge grid has no energy bin far above the highest mode")
    noise = np.where(mask, 1.0 + 0.1 * np.random.default_rng(1).random(grid.shape), np.nan)
    with pytest.raises(AdequacyError, match="nothing is constrained"):
        assess(noise, grid, model=fm, theta=fm.theta0)
    v = assess(noise, grid, model=fm, theta=fm.theta0, refuse=False)
    assert set(v.unconstrained) == set(fm.names)


def test_real_mari_nxspe_fold_gets_the_warning(ge):
    """The real MARI NXSPE file (Ei 13 meV) folded onto the Ge grid: ~6 % measured, all below 10 meV."""
    path = SHARED / "nxspe" / "MAR11001_test.nxspe"
    if not path.is_file():
        pytest.skip(f"{path} is absent (the real NXSPE test files sit in ../shared/data/nxspe)")
    from fcinv.experiment.fold import fold_volume
    from fcinv.experiment.volume import Volume4D

    ref, grid, fm, _ = ge
    vol = Volume4D.from_nxspe(
        [path], lattice=[5.658] * 3 + [90, 90, 90], u=(1, 0, 0), v=(0, 1, 0), e_edges=grid.energy_edges
    )
    fs = fold_volume(vol, grid, ref.crystal.point_group_rlu, centering="F")
    v = assess(fs, grid, model=fm, theta=fm.theta0)
    assert v.coverage < THRESHOLDS["min_coverage"]
    assert any("of the grid is measured" in w for w in v.warnings)
    assert v.energy_range_meV[1] < 10.0


def test_k_samples_must_be_at_least_two():
    for bad in (0, 1, -3, True, 2.5):
        with pytest.raises(FcinvError, match="at least 2"):
            check_k_samples(bad)  # type: ignore[arg-type]
    assert check_k_samples(2) == 2 and check_k_samples(np.int64(100)) == 100


def test_mixed_ei_runs_are_refused_unless_allowed():
    metas = [{"ei_meV": [12.97]}, {"ei_meV": [35.5]}, {"ei": 800.0}]
    with pytest.raises(MixedRunsError, match="Ei 12.97, 35.5, 800 meV.*--allow-mixed"):
        check_mergeable(metas)
    info = check_mergeable(metas, allow_mixed=True)
    assert info["mixed"] and info["ei_meV"] == [12.97, 35.5, 800.0]
    same = check_mergeable([{"ei_meV": [40.0]}, {"ei_meV": [40.1]}])
    assert not same["mixed"]
    with pytest.raises(MixedRunsError, match="instruments ARCS, MARI"):
        check_mergeable(
            [{"instrument": {"name": "ARCS", "ei": 40.0}}, {"instrument": {"name": "MARI", "ei": 40.0}}]
        )


def test_ood_score_enters_the_verdict(ge):
    from types import SimpleNamespace

    from fcinv.calibration import OODReference

    _, grid, _, img = ge
    rng = np.random.default_rng(2)
    ref = OODReference.fit(rng.gamma(2.0, 0.001, 100), rng.standard_normal((100, 3)), source="constructed")
    x = img / img.max()
    far = SimpleNamespace(spectrum=x, reconstruction=np.zeros_like(x), mu=np.full(3, 20.0), theta=None)
    v = assess(img, grid, prediction=far, reference=ref)
    assert v.ood["recon_percentile"] == 100.0 and v.ood["latent_percentile"] == 100.0
    assert sum("out of distribution" in w for w in v.warnings) == 2


def test_the_three_real_nxspe_files_are_not_merged():
    """Issue 11: MARI (Ei 12.97), Horace (35.5) and MAPS (800 meV) files folded together without a word."""
    d = SHARED / "nxspe"
    files = [d / "MAR11001_test.nxspe", d / "gen_sqw_96dets.nxspe", d / "nxspe_version1_0.nxspe"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"the real NXSPE files are absent from {d}")
    from fcinv.experiment.readers import read_nxspe

    metas = [read_nxspe(f) for f in files]
    with pytest.raises(MixedRunsError, match="12.9728, 35.5, 800 meV"):
        check_mergeable(metas)
    assert check_mergeable(metas[:1] * 2)["mixed"] is False
