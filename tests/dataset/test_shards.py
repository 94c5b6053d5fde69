"""Sharded generation: per-shard seeds, identical content serial / 2 Dask workers / kill + resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fcinv.crystal import default_grid
from fcinv.dataset import read_dataset, widened_domain
from fcinv.dataset.shards import (
    DaskExecutor,
    ModelRecipe,
    SerialExecutor,
    ShardError,
    generate_sharded,
    shard_folder,
    shard_rng,
    shard_sizes,
)
from fcinv.fcspace import FCSpace
from fcinv.forward import ForwardModel

FREE = ["1NN_xx", "1NN_xy", "2NN_xx", "2NN_xy"]


def small_source(n_e: int = 40):
    """(model, domain, None) of a 4-parameter Ge model on a coarse grid: the factory of the recipe tests."""
    from fcinv.crystal import Crystal

    crystal = Crystal.from_name("Ge")
    space = FCSpace.for_material(crystal)
    theta = space.central_force_theta({"1NN": 6.0, "2NN": 0.6})
    grid = default_grid(crystal)
    grid = type(grid)(grid.q_rlu[::4], np.linspace(grid.energy_edges[0], grid.energy_edges[-1], n_e + 1))
    model = ForwardModel(space, grid, theta, free=FREE)
    ref = model.theta0
    dom = widened_domain(model.names, ref - 0.1 * np.abs(ref) - 0.01, ref + 0.1 * np.abs(ref) + 0.01, ref)
    return model, dom, None


@pytest.fixture(scope="module")
def source():
    return small_source()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source):
    """The single-process sharded dataset (the reference): 70 samples in shards of 20."""
    out = tmp_path_factory.mktemp("serial") / "ref.h5"
    run = generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False, command="test")
    assert run.n_shards == 4 and run.shards_run == 4
    return read_dataset(run.path)


def test_plan_and_streams():
    assert shard_sizes(70, 20) == [20, 20, 20, 10]
    assert shard_sizes(40, 20) == [20, 20]
    # shard k's stream is the k-th SeedSequence child, whatever the number of shards
    a = shard_rng(3, 2).random(4)
    b = np.random.default_rng(np.random.SeedSequence(3).spawn(7)[2]).random(4)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ShardError, match="shard_size=0 must be >= 1"):
        shard_sizes(10, 0)


def test_serial_reference_is_a_normal_dataset(reference, source):
    model, dom, _ = source
    assert reference.n == 70 and reference.content_hash
    assert model.is_stable(reference.theta).all() and dom.contains(reference.theta).all()
    np.testing.assert_allclose(reference.spectra[:3], model.spectra(reference.theta[:3]), atol=1e-6)
    assert reference.meta["sharding"]["shard_size"] == 20 and reference.meta["sharding"]["n_shards"] == 4
    assert 0 < reference.meta["accepted_fraction"] <= 1
    # shard 0 is the first 20 stable draws of its own stream
    rng = shard_rng(11, 0)
    theta0 = dom.sample(64, rng)
    np.testing.assert_array_equal(reference.theta[:20], theta0[model.is_stable(theta0)][:20])


def test_kill_and_resume_gives_identical_content(tmp_path, reference, source, monkeypatch):
    import fcinv.dataset.shard_jobs as shards  # where run_shard draws a shard (re-exported by shards)

    out = tmp_path / "killed.h5"
    real = shards._draw_shard
    calls = {"n": 0}

    def dies_in_third(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            (shard_folder(out) / ".shard-00002.h5.tmp-999-deadbeef").write_bytes(b"half a shard")
            raise KeyboardInterrupt  # the process is killed while shard 2 runs
        return real(*a, **kw)

    monkeypatch.setattr(shards, "_draw_shard", dies_in_third)
    with pytest.raises(KeyboardInterrupt):
        generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False)
    man = json.loads((shard_folder(out) / "manifest.json").read_text())
    assert sorted(man["shards"]) == ["0", "1"] and not out.exists()
    monkeypatch.setattr(shards, "_draw_shard", real)
    with pytest.raises(ShardError, match="exists .* --resume"):
        generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False)
    with pytest.raises(ShardError, match="another plan"):
        generate_sharded(source, 70, out, seed=12, shard_size=20, chunk=64, progress=False, resume=True)
    run = generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False, resume=True)
    assert (run.shards_run, run.shards_skipped) == (2, 2)
    assert read_dataset(run.path).content_hash == reference.content_hash
    assert not shard_folder(out).exists()


def test_stop_after_then_resume(tmp_path, reference, source):
    out = tmp_path / "split.h5"
    part = generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False, stop_after=1)
    assert part.path == shard_folder(out) and not out.exists()
    # a shard file the client never recorded (it died after the worker wrote it) is verified and adopted
    man_path = shard_folder(out) / "manifest.json"
    man = json.loads(man_path.read_text())
    man["shards"] = {}
    man_path.write_text(json.dumps(man))
    run = generate_sharded(source, 70, out, seed=11, shard_size=20, chunk=64, progress=False, resume=True)
    assert run.shards_skipped == 1
    assert read_dataset(run.path).content_hash == reference.content_hash


def test_two_dask_workers_equal_single_process(tmp_path, reference):
    """A 2-worker LocalCluster builds the model on its workers (recipe) and writes the same content."""
    pytest.importorskip("distributed")
    import sys
    from pathlib import Path

    mod = small_source.__module__  # as pytest imported this file; the workers import it the same way
    root = str(Path(__file__).resolve().parents[mod.count(".")])
    recipe = ModelRecipe.of(f"{mod}:small_source")
    ex = DaskExecutor(workers=2)
    try:
        ex.client.run(lambda: sys.path.insert(0, root) if root not in sys.path else None)
        nw = len(ex.client.scheduler_info()["workers"])
        run = generate_sharded(
            recipe,
            70,
            tmp_path / "dask.h5",
            seed=11,
            shard_size=20,
            chunk=64,
            progress=False,
            executor=ex,
            threads=1,
        )
    finally:
        ex.close()
    assert nw == 2
    ds = read_dataset(run.path)
    assert ds.content_hash == reference.content_hash
    np.testing.assert_array_equal(ds.theta, reference.theta)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(ds.split[part], reference.split[part])
    assert ds.meta["sharding"]["executor"] == "dask"


def test_missing_dask_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_distributed(name, *a, **kw):
        if name == "distributed" or name.startswith("distributed."):
            raise ImportError(name)
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_distributed)
    with pytest.raises(ShardError, match=r"pip install '/\S*\[dask\]' \(or run with --scheduler serial\)"):
        DaskExecutor(workers=1)  # the source folder's path, not 'fcinv[dask]' (fcinv is on no index)
    assert isinstance(SerialExecutor(), SerialExecutor)  # the serial path needs no Dask


def test_cli_serial_scheduler(tmp_path, capsys):
    """fcinv dataset --scheduler serial writes the usual file; its recipe rebuilds the same content."""
    from fcinv.cli import dataset as cli
    from fcinv.dataset.shards import make_executor, recipe_from_args

    argv = ["-n", "12", "--shells", "1", "--shard-size", "5", "--no-progress", "--scheduler", "serial"]
    assert cli.main([*argv, "-o", str(tmp_path / "cli.h5")]) == 0
    assert "3 shards run" in capsys.readouterr().out
    ds = read_dataset(tmp_path / "cli.h5")
    assert ds.n == 12 and ds.meta["sharding"]["executor"] == "serial"
    args = cli.get_parser().parse_args([*argv, "-o", "unused.h5"])
    run = generate_sharded(
        recipe_from_args(args), 12, tmp_path / "api.h5", seed=0, shard_size=5, progress=False
    )
    assert read_dataset(run.path).content_hash == ds.content_hash
    with pytest.raises(ShardError, match="need --scheduler dask"):
        cli.main([*argv, "-o", str(tmp_path / "x.h5"), "--workers", "2"])
    with pytest.raises(ShardError, match="needs --scheduler dask"):
        make_executor("serial", address="tcp://127.0.0.1:1")


def test_cli_sharded_resume_through_the_dispatcher(tmp_path, capsys):
    """`fcinv dataset --scheduler serial --resume` after an interruption (through the dispatcher and its
    output guards, which leave the shard state to the sharded path): the content equals the full run."""
    from fcinv.cli.main import main

    argv = ["dataset", "-n", "12", "--shells", "1", "--shard-size", "5", "--no-progress"]
    argv += ["--scheduler", "serial", "--keep-shards"]
    full = tmp_path / "full.h5"
    assert main([*argv, "-o", str(full)]) == 0
    cut = tmp_path / "cut.h5"
    assert main([*argv, "-o", str(cut)]) == 0
    # an interruption after the first shard: the assembled file and the later shards are gone
    cut.unlink()
    for f in sorted((tmp_path / "cut.h5.shards").glob("shard-*.h5"))[1:]:
        f.unlink()
    assert main([*argv, "-o", str(cut)]) == 1  # refused: an interrupted run needs --resume or --overwrite
    assert "--resume" in capsys.readouterr().err
    assert main([*argv, "-o", str(cut), "--resume"]) == 0
    assert read_dataset(cut).content_hash == read_dataset(full).content_hash
