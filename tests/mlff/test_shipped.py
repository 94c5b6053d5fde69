"""The real force fields whose weights ship in the chgnet and sevenn wheels (nothing is downloaded)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.errors import MissingDependencyError
from fcinv.mlff.ensemble import (
    SHIPPED_MEMBERS,
    MemberError,
    resolve_member,
    resolve_members,
)
from fcinv.mlff.phonons import PhononSettings, compute_force_constants, summarize


@pytest.fixture(scope="module")
def ge():
    from fcinv.crystal import Crystal

    return Crystal.from_name("Ge")


def test_registry_is_the_eight_shipped_members():
    assert list(SHIPPED_MEMBERS) == [
        "chgnet-0.3.0",
        "chgnet-0.2.0",
        "chgnet-r2scan",
        "7net-0",
        "7net-0_22may2024",
        "7net-l3i5",
        "7net-mf-0-pbe",
        "7net-mf-0-r2scan",
    ]
    assert [m.name for m in resolve_members(None)] == list(SHIPPED_MEMBERS)


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
@pytest.mark.parametrize("name", list(SHIPPED_MEMBERS))
def test_shipped_weights_on_disk(name):
    pytest.importorskip(SHIPPED_MEMBERS[name].package)
    m = SHIPPED_MEMBERS[name]
    path = m.weight_path()
    assert path.is_file() and path.stat().st_size > 1_000_000
    assert "site-packages" in str(path) and m.package_version() is not None


@pytest.mark.parametrize(
    "spec, match",
    [
        ("7net-omni", "unknown ensemble member"),
        ("foo:/x", "unknown force-field family"),
        ("nonsense", "unknown ensemble member"),
    ],
)
def test_unknown_members_rejected(spec, match):
    with pytest.raises(MemberError, match=match):
        resolve_member(spec)


def test_duplicate_members_rejected():
    with pytest.raises(MemberError, match="given twice"):
        resolve_members(["7net-0", "7NET-0"])


def test_user_weight_file_members(tmp_path):
    m = resolve_member(f"mace:{tmp_path}/missing.model")
    assert m.family == "mace" and not m.shipped and m.name == "mace:missing.model"
    with pytest.raises(MemberError, match="not found or empty"):
        m.calculator()
    sev = resolve_member(f"sevennet:{tmp_path}/ckpt.pth@PBE")
    assert sev.modal == "PBE" and sev.model.endswith("ckpt.pth")


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
def test_missing_family_package_is_one_line_hint(tmp_path):
    pytest.importorskip("chgnet")
    try:
        import mace  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("mace is installed here")
    f = tmp_path / "model.model"
    f.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match="pip install"):
        resolve_member(f"mace:{f}").calculator()


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
def test_chgnet_030_unstable_at_x_and_l(ge):
    """The paper: CHGNet 0.3.0 has imaginary modes at X and L for Ge at a = 5.658 Å."""
    pytest.importorskip("chgnet")
    s = PhononSettings.create(4, 0.01, mesh=4)
    phonon = compute_force_constants(ge, SHIPPED_MEMBERS["chgnet-0.3.0"].calculator(), s)
    summ = summarize(phonon, ge, s)
    assert not summ.stable
    assert {"X", "L"} <= set(summ.unstable_at)
    assert (
        min(summ.points["X"]["freqs_THz"]) < -s.imag_tol_thz
        and min(summ.points["L"]["freqs_THz"]) < -s.imag_tol_thz
    )


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
def test_sevennet_physics_invariants(ge):
    pytest.importorskip("sevenn")
    s = PhononSettings.create(3, 0.01, mesh=4)
    phonon = compute_force_constants(ge, SHIPPED_MEMBERS["7net-0"].calculator(), s)
    summ = summarize(phonon, ge, s)
    g = np.array(summ.points["Γ"]["freqs_THz"])
    assert np.abs(g[:3]).max() < 1e-3  # acoustic sum rule
    assert np.ptp(g[3:]) < 1e-3 and g[3] > 1.0  # triply degenerate optical mode
    x = np.array(summ.points["X"]["freqs_THz"])
    assert np.allclose(x[0::2], x[1::2], atol=1e-3)  # every mode at X is doubly degenerate in diamond
    assert summ.points["X"]["modes"].count("TA") == 2


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
def test_multifidelity_heads_differ(ge):
    pytest.importorskip("sevenn")
    s = PhononSettings.create(2, 0.01, mesh=2)
    opt = []
    for name in ("7net-mf-0-pbe", "7net-mf-0-r2scan"):
        ph = compute_force_constants(ge, SHIPPED_MEMBERS[name].calculator(), s)
        opt.append(summarize(ph, ge, s).points["Γ"]["freqs_THz"][-1])
    assert abs(opt[0] - opt[1]) > 0.2


@pytest.mark.mlff  # needs the [mlff] extra (CHGNet / SevenNet)
def test_cli_end_to_end(tmp_path, capsys):
    pytest.importorskip("chgnet")
    from fcinv.cli.reference import main

    out = tmp_path / "data"
    rc = main(
        [
            "Ge",
            "--members",
            "chgnet-0.2.0",
            "chgnet-0.3.0",
            "--supercell",
            "3",
            "--workdir",
            str(tmp_path / "work"),
            "--out-dir",
            str(out),
            "--top-k",
            "4",
            "--no-progress",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "chgnet-0.3.0" in text and "dropped: imaginary modes" in text
    ens = json.loads((out / "ensemble.json").read_text())
    assert ens["reference_member"]["name"] == "chgnet-0.2.0" and len(ens["sampled"]) == 4
    assert ens["command"].startswith("fcinv reference Ge --members chgnet-0.2.0")
    assert (out / "reference_fc.hdf5").is_file() and (out / "provenance.json").is_file()


@pytest.mark.parametrize(
    "argv, match",
    [
        ([], "no material given"),
        (["Ge", "--members", "7net-omni"], "unknown ensemble member"),
        (["Ge", "--supercell", "1", "2"], "not 1, 3 or 9"),
        (["Xx"], "structure file"),
    ],
)
def test_cli_errors_are_one_line(argv, match, capsys):
    from fcinv.cli.reference import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1


def test_cli_list_members(capsys):
    from fcinv.cli.reference import main

    assert main(["--list-members"]) == 0
    assert capsys.readouterr().out.count("\n") == len(SHIPPED_MEMBERS)
