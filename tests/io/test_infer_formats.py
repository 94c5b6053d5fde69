"""`fcinv infer` reads NXSPE and Mantid MDHisto files directly, through the one format registry."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from fcinv.cli.main import main
from fcinv.io import sniff

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared" / "data").resolve()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_savemd(path: Path, edges: list[np.ndarray], signal: np.ndarray) -> None:
    """A 4D histogram in the layout of Mantid's SaveMD v2 ([H,0,0], [0,K,0], [0,0,L], DeltaE)."""
    names = [("[H,0,0]", "r.l.u."), ("[0,K,0]", "r.l.u."), ("[0,0,L]", "r.l.u."), ("DeltaE", "meV")]
    ids = [f"D{i}" for i in range(4)]
    rev = (3, 2, 1, 0)  # SaveMD stores the last dimension first
    with h5py.File(path, "w") as f:
        ws = f.create_group("MDHistoWorkspace")
        ws.attrs["SaveMDVersion"] = 2
        ws.create_dataset("coordinate_system", data=np.array([3], dtype=np.uint32))
        d = ws.create_group("data")
        for i, (name, unit), e in zip(ids, names, edges):
            ds = d.create_dataset(i, data=e)
            ds.attrs["units"], ds.attrs["long_name"] = unit, name
        s = d.create_dataset("signal", data=np.transpose(signal, rev))
        s.attrs["axes"] = ":".join(ids[::-1])
        d.create_dataset("errors_squared", data=np.transpose((0.1 * signal) ** 2, rev))
        d.create_dataset("num_events", data=np.transpose(np.ones_like(signal), rev))
        d.create_dataset("mask", data=np.transpose(np.zeros(signal.shape, np.int8), rev))


def infer(tmp_path, data, capsys) -> tuple[dict, str]:
    out = tmp_path / "r.json"
    argv = ["infer", *map(str, data), "--model", "ge", "--no-png", "--json", str(out), "--device", "cpu"]
    assert main(argv) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def test_infer_reads_a_real_nxspe_file(tmp_path, capsys):
    f = SHARED / "nxspe" / "gen_sqw_96dets.nxspe"
    if not f.is_file():
        pytest.skip(f"shared test data not found at {f} (the ../shared/data folder beside the repository)")
    assert sniff(f) == "nxspe"
    doc, printed = infer(tmp_path, [f], capsys)
    assert doc["extra"]["data"] == str(f)
    assert "% of the 140×80 grid measured" in printed
    assert set(doc["theta"]) == set(doc["names"]) and all(np.isfinite(list(doc["theta"].values())))


def test_infer_reads_a_mantid_mdhisto_file(tmp_path, capsys):
    from fcinv.material import load_material

    grid = load_material("Ge").grid()
    q = np.arange(-0.125, 1.2, 0.05)
    e = np.asarray(grid.energy_edges)[::4]
    rng = np.random.default_rng(3)
    signal = rng.uniform(0.5, 2.0, (len(q) - 1,) * 3 + (len(e) - 1,))
    path = tmp_path / "ge_md.nxs"
    write_savemd(path, [q, q, q, e], signal)
    assert sniff(path) == "mdhisto"
    doc, printed = infer(tmp_path, [path], capsys)
    assert doc["extra"]["data"] == str(path)
    measured = float(printed.split(": ", 1)[1].split(" %", 1)[0])
    assert 0 < measured < 100
    assert all(np.isfinite(list(doc["theta"].values())))
