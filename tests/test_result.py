"""FCResult: one θ ± σ type with table, JSON, CSV and phonopy output; checks on bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fcinv.errors import DataError, ForceConstantError
from fcinv.io import Provenance, read_theta_json
from fcinv.result import FCResult


def make(**kw):
    base = dict(
        names=("1NN_xx", "1NN_xy"),
        theta=[-2.0, -1.2],
        sigma=[0.1, math.inf],
        method="test",
        sigma_meaning="made up",
        material="Ge",
        adequacy={"coverage": 0.5},
        provenance=Provenance.now(seed=1, command="fcinv test"),
    )
    base.update(kw)
    return FCResult(**base)


def test_access_table_and_errors():
    r = make()
    assert (
        r["1NN_xy"] == (-1.2, math.inf) and len(r) == 2 and r.theta_dict() == {"1NN_xx": -2.0, "1NN_xy": -1.2}
    )
    np.testing.assert_allclose(r.relative_error({"1NN_xx": -2.5}), [0.2, np.nan])
    t = r.table({"1NN_xx": -2.5})
    assert "FC0   1NN_xx" in t and "20.0%" in t and "adequacy: coverage 0.5" in t
    with pytest.raises(KeyError, match="not a parameter of this result"):
        r["3NN_xx"]


def test_json_round_trip_keeps_everything(tmp_path):
    ml = make(method="ML")
    r = make(parts={"ml": ml}, extra={"cov": np.eye(2), "nan": float("nan")})
    text = r.to_json(tmp_path / "r.json")
    doc = json.loads(text)
    assert doc["format"] == "fcinv-result" and doc["sigma"]["1NN_xy"] is None and doc["extra"]["nan"] is None
    back = FCResult.from_json(tmp_path / "r.json")
    assert back.names == r.names and back.provenance == r.provenance and back.parts["ml"].method == "ML"
    assert math.isinf(back.sigma[1]) and back.extra["cov"] == [[1.0, 0.0], [0.0, 1.0]]
    assert read_theta_json(tmp_path / "r.json")[0] == r.theta_dict(), "fcinv export --theta-json reads it"


def test_csv(tmp_path):
    text = make().to_csv(tmp_path / "r.csv")
    assert text.splitlines() == [
        "index,name,theta,sigma,unit",
        "0,1NN_xx,-2,0.1,eV/Å^2",
        "1,1NN_xy,-1.2,inf,eV/Å^2",
    ]
    assert (tmp_path / "r.csv").read_text() == text


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"theta": [1.0]}, "2 names, 1 θ and 2 σ values"),
        ({"theta": [1.0, np.nan]}, "θ is not finite for \\['1NN_xy'\\]"),
        ({"sigma": [-1.0, 0.0]}, "σ must be >= 0"),
        ({"names": ("a", "a")}, "repeat a name"),
    ],
)
def test_bad_results_are_refused(kw, match):
    with pytest.raises(ForceConstantError, match=match):
        make(**kw)


def test_bad_files_are_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FCResult.from_json(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text('{"1NN_xx": 1}')
    with pytest.raises(DataError, match="not 'fcinv-result'"):
        FCResult.from_json(tmp_path / "x.json")
    with pytest.raises(DataError, match="names no material"):
        make(material=None).to_phonopy(tmp_path / "out")


def test_from_fit():
    from fcinv.fitting import FitResult

    fit = FitResult(
        names=["1NN_xx"],
        theta=np.array([-2.0]),
        sigma=np.array([np.inf]),
        covariance=np.full((1, 1), np.inf),
        theta_start=np.array([-1.9]),
        cost=0.5,
        dof=10,
        chi2=12.0,
        n_iter=4,
        wall_s=0.1,
        success=True,
        message="ok",
        method="least squares",
    )
    r = FCResult.from_fit(fit, material="Ge")
    assert (
        r.method == "fit: least squares"
        and r.adequacy["chi2_dof"] == pytest.approx(1.2)
        and math.isinf(r.sigma[0])
    )
    assert "linearised" in r.sigma_meaning and r.extra["theta_start"] == {"1NN_xx": -1.9}


def test_export_of_a_refinement_continued_into_more_shells(tmp_path):
    """A result over the 47 parameters of 11 shells (extra n_shells) exports with zero beyond its cutoff:
    phonopy's frequencies of the files equal the 11-shell zero-tail model's."""
    import phonopy

    from fcinv.crystal import default_grid
    from fcinv.fitting.dispersion_fit import model_energies
    from fcinv.reference import load_reference
    from fcinv.units import THZ_TO_MEV

    ref = load_reference("Ge", 11)
    res = FCResult(
        tuple(ref.space.names),
        ref.theta_ref,
        np.zeros(ref.space.n_params),
        method="fit: test",
        sigma_meaning="none",
        material="Ge",
        extra={"n_shells": 11},
    )
    out = res.to_phonopy(tmp_path / "fcs")
    assert out.max_rel_dev is not None and out.max_rel_dev < 1e-6
    ph = phonopy.load(str(tmp_path / "fcs" / "phonopy_params.yaml"), log_level=0)
    q = default_grid(ref.crystal).q_rlu[::9]
    ph.run_qpoints(ref.crystal.rlu_to_prim_frac(q))
    got = np.sort(ph.qpoints.frequencies, axis=1) * THZ_TO_MEV
    want = np.sort(model_energies(ref.space, ref.theta_ref, q), axis=1)
    np.testing.assert_allclose(got, want, atol=1e-4)
    # a 5-shell model's result would not know 11NN: the shell count decides the space
    with pytest.raises(DataError, match="'11NN_xx' is not a parameter of Ge at 5 shells"):
        FCResult(("11NN_xx",), [0.0], [0.0], method="m", sigma_meaning="s", material="Ge").to_phonopy(
            tmp_path / "bad"
        )
