"""Scale-out: sharded dataset generation on Dask and DDP training under torchrun (issue 15).

Dask part (the physical Ge model, ``fcinv dataset --intensity physical``; ``--randomise`` for the
domain-randomised one, whose conditions cost ~100x more per spectrum):

* the single-process sharded run (``SerialExecutor``) is the reference content;
* a 2-worker ``LocalCluster`` (single-threaded workers, models built and JIT-warmed on
  the workers before timing) runs the same plan on 1 worker (tasks restricted to it)
  and on 2 workers; ``dask_efficiency = (T_1 / T_2) / 2``;
* kill + resume: ``fcinv dataset --scheduler dask --address <that cluster>`` in a
  subprocess is SIGKILLed after two finished shards and resumed with ``--resume``;
* ``dask_identical = 1`` when the four content hashes are equal;
* the peer, in the same run: the plain single-process ``fcinv.dataset.generate`` loop on
  the same model (other draws by construction: the sharded layout is the reference).

DDP part: the paper-size VAE (channels 16,32,64,128, latent 20) on the dataset just made,
same seed and global batch, trained (a) by the single-process ``Trainer`` (the peer),
(b) by 1 gloo process, (c) by 2 gloo processes, each single-threaded
(``torchrun --standalone``). ``ddp_loss_rel_diff = |val_loss(2 gloo) − val_loss(single)| /
val_loss(single)`` at the last epoch; ``ddp_efficiency`` = training-pass throughput of 2
gloo processes over 1, divided by 2.

The figures are per-worker throughputs (spectra/s, training samples/s) and wall-time
estimates for 10⁶ spectra and a 50-epoch training on N workers, extrapolated with the
measured efficiency. On a machine shared with other jobs the efficiencies are lower
bounds; rerun on a quiet machine with at least 2 free cores.

The peer for the efficiencies: a plain ``multiprocessing`` pool of busy loops, 2 processes
over 1, run before each part, says how much parallel CPU the machine had free
(``machine_2proc_speedup``, ~2 on a free 2-core machine).

Last line: ``RESULT dask_identical=<1|0> dask_efficiency=<f> ddp_loss_rel_diff=<f> ddp_efficiency=<f>
machine_2proc_speedup=<f>``.

Usage: python benchmarks/scale_out.py [--n 1000] [--randomise] [--shard-size 50] [--epochs 6]
       [--batch-size 32] [--out DIR]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ARCH = dict(latent_dim=20, channels=(16, 32, 64, 128), hidden_dim=256, beta=0.1)


def _src_env() -> dict:
    import fcinv

    src = str(Path(fcinv.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _warm(recipe) -> float:
    """Build the model on this process (cached for the shards) and JIT-compile its kernels; seconds."""
    import numpy as np

    from fcinv.dataset import shards
    from fcinv.dataset.randomise import measurement_like

    t0 = time.perf_counter()
    model, domain, rnd = shards._resolve(recipe)
    rng = np.random.default_rng(12345)
    th = domain.sample(64, rng)
    th = th[model.is_stable(th)][:2]
    if rnd is not None:
        measurement_like(model, th, rnd, rng)
    else:
        model.spectra(th)
    return time.perf_counter() - t0


def _burn(n: int = 3_000_000) -> float:
    t = time.perf_counter()
    acc = 0
    for i in range(n):
        acc += i * i
    return time.perf_counter() - t


def machine_speedup(tasks: int = 6) -> float:
    """The machine's own 2-process speed-up now: a plain multiprocessing pool of busy loops, 2 workers over 1.

    The peer that says how much parallel CPU the machine has free: on an idle 2-core machine
    it is ~2; on one saturated by other jobs it falls towards 1, and so do the efficiencies.
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as p:
        p.map(_burn, [10_000])
        t = time.perf_counter()
        p.map(_burn, [3_000_000] * tasks)
        t1 = time.perf_counter() - t
    with ctx.Pool(2) as p:
        p.map(_burn, [10_000] * 2)
        t = time.perf_counter()
        p.map(_burn, [3_000_000] * tasks)
        t2 = time.perf_counter() - t
    return t1 / t2


def _hash(path) -> str:
    from fcinv.dataset import read_dataset

    ds = read_dataset(path, lazy=True)
    ds.close()
    return ds.content_hash


# ---------------------------------------------------------------------------- Dask
def dask_part(a, out: Path) -> dict:
    from fcinv.cli.dataset import get_parser
    from fcinv.dataset import generate
    from fcinv.dataset.shards import (
        DaskExecutor,
        SerialExecutor,
        generate_sharded,
        recipe_from_args,
        shard_folder,
    )

    ds_argv = [
        "--material",
        "Ge",
        "--intensity",
        "physical",
        *(["--randomise"] if a.randomise else []),
        "-n",
        str(a.n),
        "--seed",
        "0",
        "--chunk",
        str(a.chunk),
        "--shard-size",
        str(a.shard_size),
        "--no-progress",
    ]
    args = get_parser().parse_args([*ds_argv, "-o", "unused.h5"])
    recipe = recipe_from_args(args)
    res: dict = {}
    print(
        "[dask] starting a LocalCluster of 2 single-threaded workers; building the physical model on each",
        flush=True,
    )
    ex = DaskExecutor(workers=2)
    try:
        workers = sorted(ex.client.scheduler_info()["workers"])
        warm = [
            ex.client.submit(_warm, recipe, workers=[w], pure=False, allow_other_workers=False)
            for w in workers
        ]
        t_build = _warm(recipe)
        print(f"[dask] model built + JIT-warmed in this process: {t_build:.1f} s", flush=True)
        kw = dict(
            seed=0,
            shard_size=a.shard_size,
            chunk=a.chunk,
            progress=False,
            command="benchmarks/scale_out.py",
            threads=1,
        )

        t0 = time.perf_counter()
        run = generate_sharded(recipe, a.n, out / "serial.h5", executor=SerialExecutor(), **kw)
        res["t_serial"] = time.perf_counter() - t0
        res["h_serial"] = _hash(run.path)
        print(
            f"[dask] serial (1 process, 1 thread): {res['t_serial']:.2f} s, {a.n / res['t_serial']:.1f} "
            "spectra/s",
            flush=True,
        )

        from fcinv.dataset.shards import _resolve

        model, domain, rnd = _resolve(recipe)
        t0 = time.perf_counter()
        generate(
            model,
            domain,
            a.n,
            out / "plain.h5",
            randomisation=rnd,
            seed=0,
            chunk=a.chunk,
            progress=False,
            command="peer",
        )
        res["t_plain"] = time.perf_counter() - t0
        print(
            f"[dask] peer, plain generate loop (1 process): {res['t_plain']:.2f} s, "
            f"{a.n / res['t_plain']:.1f} spectra/s",
            flush=True,
        )

        res["t_worker_build"] = [f.result() for f in warm]
        print(
            "[dask] workers built + JIT-warmed the model in "
            f"{[round(t, 1) for t in res['t_worker_build']]} s",
            flush=True,
        )

        ex.restrict = [workers[0]]
        t0 = time.perf_counter()
        run = generate_sharded(recipe, a.n, out / "dask1.h5", executor=ex, **kw)
        res["t_dask1"] = time.perf_counter() - t0
        res["h_dask1"] = _hash(run.path)
        ex.restrict = None
        t0 = time.perf_counter()
        run = generate_sharded(recipe, a.n, out / "dask2.h5", executor=ex, **kw)
        res["t_dask2"] = time.perf_counter() - t0
        res["h_dask2"] = _hash(run.path)
        print(f"[dask] 1 worker: {res['t_dask1']:.2f} s; 2 workers: {res['t_dask2']:.2f} s", flush=True)

        # kill + resume through the CLI, connected to the running cluster
        addr = ex.client.scheduler.address
        killed = out / "killed.h5"
        cli = [
            sys.executable,
            "-m",
            "fcinv.cli.main",
            "dataset",
            *ds_argv,
            "-o",
            str(killed),
            "--scheduler",
            "dask",
            "--address",
            addr,
        ]
        proc = subprocess.Popen(
            cli, env=_src_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        man = shard_folder(killed) / "manifest.json"
        t0 = time.perf_counter()
        n_done = 0
        while proc.poll() is None and time.perf_counter() - t0 < 900:
            if man.exists():
                try:
                    n_done = len(json.loads(man.read_text())["shards"])
                except (json.JSONDecodeError, KeyError):
                    n_done = 0
                if n_done >= 2:
                    break
            time.sleep(0.05)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            res["killed_after_shards"] = n_done
            print(f"[dask] SIGKILLed the CLI client after {n_done} finished shards; resuming", flush=True)
        else:
            res["killed_after_shards"] = -1
            print(
                f"[dask] the CLI client ended before the kill (rc {proc.returncode}): "
                f"{proc.stderr.read().decode()[-800:]}",
                flush=True,
            )
        rr = subprocess.run([*cli, "--resume"], env=_src_env(), capture_output=True, text=True, timeout=1800)
        if rr.returncode != 0:
            print(f"[dask] resume failed: {rr.stderr[-2000:]}", flush=True)
            res["h_killed"] = "failed"
        else:
            res["h_killed"] = _hash(killed)
            print(f"[dask] resumed: {rr.stdout.strip().splitlines()[-1]}", flush=True)
    finally:
        ex.close()
    hashes = [res["h_serial"], res["h_dask1"], res["h_dask2"], res["h_killed"]]
    res["identical"] = int(len(set(hashes)) == 1 and res["killed_after_shards"] >= 1)
    res["efficiency"] = res["t_dask1"] / res["t_dask2"] / 2
    res["per_worker"] = a.n / res["t_dask1"]
    print(
        f"[dask] content sha256: serial {hashes[0][:16]} dask1 {hashes[1][:16]} dask2 {hashes[2][:16]} "
        f"killed+resumed {hashes[3][:16]}"
    )
    return res


# ---------------------------------------------------------------------------- DDP
def ddp_child(a) -> None:
    """Run under torchrun: train the VAE with DDP; rank 0 writes the JSON."""
    import torch

    torch.set_num_threads(1)
    from fcinv.training import TrainConfig
    from fcinv.training import distributed as D

    cfg = TrainConfig(
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=0, progress=False, device="cpu", patience=1000
    )
    res = D.train_vae(a.data, a.ckpt, cfg, **ARCH)
    if (
        res.rank == 0
    ):  # samples_per_s: global training-pass throughput (all ranks' slices of the global batches)
        Path(a.child_json).write_text(
            json.dumps(
                {
                    "val_loss": [h["val_loss"] for h in res.history],
                    "world": res.world_size,
                    "samples_per_s": res.samples_per_s,
                }
            )
        )


def single_child(a) -> None:
    """The peer: the single-process Trainer, timing the training passes (epoch start to validation)."""
    import torch

    torch.set_num_threads(1)
    from fcinv.dataset import read_dataset
    from fcinv.training import TrainConfig, Trainer
    from fcinv.training.tasks import VAETask

    cfg = TrainConfig(
        epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=0, progress=False, device="cpu", patience=1000
    )
    ds = read_dataset(a.data, lazy=True)
    task = VAETask(ds, cfg, **ARCH)
    ds.close()
    # training-pass time, as the DDP runs measure it: from each epoch's start to its validation
    marks = {"start": 0.0, "train": 0.0}
    real_start, real_val = task.on_epoch_start, task.validate

    def start(epoch, rng):
        real_start(epoch, rng)
        marks["start"] = time.perf_counter()

    def timed():
        marks["train"] += time.perf_counter() - marks["start"]
        return real_val()

    task.on_epoch_start, task.validate = start, timed
    res = Trainer(task, a.ckpt, cfg).fit()
    n_batch_samples = sum(len(b) for b in _global_batches(len(task.x_tr), a.batch_size, a.epochs))
    Path(a.child_json).write_text(
        json.dumps(
            {
                "val_loss": [h["val_loss"] for h in res.history],
                "world": 1,
                "samples_per_s": n_batch_samples / marks["train"],
            }
        )
    )


def _global_batches(n: int, batch: int, epochs: int):
    """Sizes of the batches a single-process epoch trains on (batches of < 2 samples are skipped)."""
    sizes = [min(batch, n - i) for i in range(0, n, batch)]
    return [[0] * s for s in sizes if s >= 2 or n < 2] * epochs


def _launch(a, mode: str, world: int, out: Path, data: Path) -> dict:
    js = out / f"{mode}{world}.json"
    ck = out / f"ckpt_{mode}{world}"
    me = [
        str(Path(__file__).resolve()),
        f"--_{mode}-child",
        "--data",
        str(data),
        "--ckpt",
        str(ck),
        "--child-json",
        str(js),
        "--epochs",
        str(a.epochs),
        "--batch-size",
        str(a.batch_size),
        "--lr",
        str(a.lr),
    ]
    cmd = (
        [sys.executable, *me]
        if mode == "single"
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(world),
            *me,
        ]
    )
    t0 = time.perf_counter()
    p = subprocess.Popen(
        cmd, env=_src_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        _, err = p.communicate(timeout=3600)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # torchrun and every rank
        _, err = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"{mode} x{world} failed:\n{err[-3000:]}")
    r = json.loads(js.read_text())
    r["wall_s"] = time.perf_counter() - t0
    return r


def ddp_part(a, out: Path, data: Path) -> dict:
    from fcinv.dataset import read_dataset

    ds = read_dataset(data, lazy=True)
    n_train = len(ds.split["train"])
    ds.close()
    print(
        f"[ddp] VAE {ARCH} on {data.name} ({n_train} training spectra), {a.epochs} epochs, global batch "
        f"{a.batch_size}",
        flush=True,
    )
    single = _launch(a, "single", 1, out, data)
    print(
        f"[ddp] single-process Trainer: final val loss {single['val_loss'][-1]:.5g}, "
        f"{single['samples_per_s']:.1f} samples/s",
        flush=True,
    )
    g1 = _launch(a, "ddp", 1, out, data)
    print(
        f"[ddp] 1 gloo process: final val loss {g1['val_loss'][-1]:.5g}, {g1['samples_per_s']:.1f} samples/s",
        flush=True,
    )
    g2 = _launch(a, "ddp", 2, out, data)
    print(
        f"[ddp] 2 gloo processes: final val loss {g2['val_loss'][-1]:.5g}, {g2['samples_per_s']:.1f} "
        "samples/s",
        flush=True,
    )
    return {
        "n_train": n_train,
        "single": single,
        "g1": g1,
        "g2": g2,
        "rel_diff": abs(g2["val_loss"][-1] - single["val_loss"][-1]) / single["val_loss"][-1],
        "efficiency": g2["samples_per_s"] / g1["samples_per_s"] / 2,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=6000, help="spectra of the Dask runs (default 6000)")
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument(
        "--randomise",
        action="store_true",
        help="domain-randomised physical spectra (per-group conditions; ~100x slower per spectrum)",
    )
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    p.add_argument("--_ddp-child", dest="ddp_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_single-child", dest="single_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--ckpt", help=argparse.SUPPRESS)
    p.add_argument("--child-json", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.ddp_child:
        return ddp_child(a)
    if a.single_child:
        return single_child(a)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        m_d = machine_speedup()
        print(
            f"[machine] plain multiprocessing busy loops, 2 processes over 1: speed-up {m_d:.2f}", flush=True
        )
        d = dask_part(a, out)
        m_t = machine_speedup()
        print(
            f"[machine] plain multiprocessing busy loops, 2 processes over 1: speed-up {m_t:.2f}", flush=True
        )
        t = ddp_part(a, out, out / "serial.h5")
    n_all, ep = 10**6, 50
    n_tr = round((n_all - 1500) * 0.9)
    print(
        f"per-worker throughput: {d['per_worker']:.1f} spectra/s (physical "
        f"Ge{', domain-randomised' if a.randomise else ''}, 1 thread; "
        f"1-process serial {a.n / d['t_serial']:.1f}, plain generate loop {a.n / d['t_plain']:.1f}); "
        f"model build per worker {min(d['t_worker_build']):.0f}-{max(d['t_worker_build']):.0f} s (once)"
    )
    print(
        f"training throughput per process: {t['g1']['samples_per_s']:.1f} samples/s (1 gloo), "
        f"{t['g2']['samples_per_s'] / 2:.1f} per process with 2; single-process Trainer "
        f"{t['single']['samples_per_s']:.1f}"
    )
    eff_d, eff_t = min(d["efficiency"], 1.0), min(t["efficiency"], 1.0)
    print(
        f"estimates (measured efficiency {eff_d:.2f} / {eff_t:.2f} held constant, a lower bound on a "
        "quiet cluster):"
    )
    for nw in (1, 2, 8, 32, 128):
        e_d = 1.0 if nw == 1 else eff_d
        e_t = 1.0 if nw == 1 else eff_t
        gen_h = n_all / (d["per_worker"] * nw * e_d) / 3600
        tr_h = ep * n_tr / (t["g1"]["samples_per_s"] * nw * e_t) / 3600
        print(
            f"  N={nw:4d}: 10^6 spectra {gen_h:8.2f} h (+ model build); 50 epochs on {n_tr} spectra "
            f"{tr_h:8.2f} h"
        )
    print(
        f"machine headroom: 2 plain processes ran {m_d:.2f}x / {m_t:.2f}x faster than 1 (before the Dask/DDP "
        f"parts; 2.0 on a free 2-core machine); efficiencies relative to it: Dask "
        f"{d['efficiency'] / (m_d / 2):.2f}, DDP {t['efficiency'] / (m_t / 2):.2f}"
    )
    print(
        f"RESULT dask_identical={d['identical']} dask_efficiency={d['efficiency']:.3f} "
        f"ddp_loss_rel_diff={t['rel_diff']:.4f} ddp_efficiency={t['efficiency']:.3f} "
        f"machine_2proc_speedup={min(m_d, m_t):.2f}"
    )


if __name__ == "__main__":
    main()
