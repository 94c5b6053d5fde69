"""The ARCS-like instrument: kinematics, detector coverage, resolution, goniometer."""

from __future__ import annotations

import numpy as np
import pytest

from fcinv.experiment.instrument import (
    E_K2,
    Goniometer,
    Instrument,
    InstrumentError,
    energy_to_k,
    k_to_energy,
)


def test_neutron_kinematics():
    assert energy_to_k(E_K2) == pytest.approx(1.0)
    assert k_to_energy(energy_to_k(40.0)) == pytest.approx(40.0)
    assert Instrument().ki == pytest.approx(np.sqrt(40.0 / 2.0721247))
    assert np.isnan(energy_to_k(-1.0))


def test_detector_coverage_limits():
    inst = Instrument()

    def kf(inp, oop):
        a, b = np.deg2rad(inp), np.deg2rad(oop)
        return np.array([np.sin(a) * np.cos(b), np.sin(b), np.cos(a) * np.cos(b)])

    assert inst.covers(kf(0.0, 0.0)) and inst.covers(kf(-27.0, 26.0)) and inst.covers(kf(134.0, -26.0))
    assert (
        not inst.covers(kf(-29.0, 0.0))
        and not inst.covers(kf(136.0, 0.0))
        and not inst.covers(kf(50.0, 28.0))
    )
    assert inst.covers(np.stack([kf(10, 0), kf(150, 0)])).tolist() == [True, False]


def test_gaussian_resolution_falls_with_energy_transfer():
    inst = Instrument(resolution="gaussian")
    f = inst.fwhm(np.array([0.0, 10.0, 20.0, 38.0]))
    assert 0.03 * 40 <= f[0] <= 0.05 * 40  # 3-5 % of Ei at the elastic line
    assert np.all(np.diff(f) < 0)
    assert Instrument(resolution="gaussian", elastic_fwhm_fraction=0.05).fwhm(0.0) == pytest.approx(2.0)


def test_resins_and_the_gaussian_stand_in_agree_at_the_defaults():
    pytest.importorskip("resins", reason="the optional ARCS resolution package resins is not installed")
    e = np.linspace(0, 38, 20)
    r = Instrument(resolution="resins").fwhm(e)
    g = Instrument(resolution="gaussian").fwhm(e)
    np.testing.assert_allclose(r, g, atol=0.02)
    assert Instrument().resolution_model() == "gaussian"  # the default does not depend on what is installed
    assert Instrument(resolution="auto").resolution_model() == "resins"
    with pytest.raises(InstrumentError, match="resins rejects ARCS"):
        Instrument(resolution="resins", chopper_package="ARCS-700-1.5-AST", chopper_frequency=600).fwhm(1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"ei": -5.0}, "incident energy Ei = -5.0 meV"),
        ({"in_plane": (30.0, 10.0)}, r"in_plane detector range \(30.0, 10.0\)"),
        ({"out_of_plane": (-95.0, 10.0)}, "out_of_plane detector range"),
        ({"resolution": "pychop"}, "resolution 'pychop' is unknown"),
        ({"elastic_fwhm_fraction": 0.9}, "elastic_fwhm_fraction = 0.9"),
    ],
)
def test_bad_instrument_parameters_are_refused(kwargs, message):
    with pytest.raises(InstrumentError, match=message):
        Instrument(**kwargs)


def test_goniometer():
    g = Goniometer()
    assert g.n == 120 and g.psi[0] == 0.0 and g.psi[-1] == 119.0
    assert Goniometer.steps(10.0, 0.5, 4).psi == (10.0, 10.5, 11.0, 11.5)
    with pytest.raises(InstrumentError, match="must be two non-parallel 3-vectors"):
        Goniometer(u=(1, 0, 0), v=(2, 0, 0))
    with pytest.raises(InstrumentError, match="psi has 0 angles"):
        Goniometer(psi=())
    with pytest.raises(InstrumentError, match="0 orientations in steps"):
        Goniometer.steps(n=0)
