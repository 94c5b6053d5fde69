"""``fcinv prepare``: Stage I → domain → dataset → training into one self-contained material folder.

Steps (each resumable; :data:`STATE_FILE` records each finished step's inputs):

1. **Stage I** (``material.json``, ``structure.vasp``, ``ensemble.json``, ``reference_fc.hdf5``,
   ``provenance.json``): the force-field ensemble (the ``[mlff]`` extra, cached per member in
   ``stage1_cache/``) or, with ``--from-phonopy``, the user's phonopy sets
   (:mod:`fcinv.prepare.stage1`, bounds by its stated relative widening). The energy range is
   :data:`~fcinv.prepare.stage1.E_MAX_HEADROOM` × the reference's highest mode on the path,
   rounded up to 5 meV, unless ``--e-max`` is given. Then the shells the crystal needs
   (:mod:`fcinv.prepare.shells`): each stable member's n-shell projection against its own
   dispersion gives ``refine_shells`` in material.json, the shells the refinement continues into.
2. **domain** (``domain.json``): the training domain, the reference bounds widened by
   :func:`fcinv.dataset.generate.widened_domain`.
3. **dataset** (``dataset.h5``): ``fcinv dataset --material DIR`` (resumable from its ``.partial``).
4. **training** (``models/vae``, ``models/regressor``): the VAE and the latent regressor (μ input),
   resumable from their trainer states.

A step whose recorded inputs match the current ones and whose outputs exist is skipped (and says
so); a step whose inputs changed is redone, and every later step with it. Nothing is written
outside ``--out`` (never into the installed package).

Defaults. Supercell of the force-field calculations (:func:`default_supercell`): the smallest
n × n × n supercell of the primitive cell (n ≥ 3) whose shortest translation is longer than twice
the cutoff of the requested shells, the condition :meth:`fcinv.fcspace.FCSpace._check_supercell`
sets. ``--quick`` (:data:`QUICK`): 2 force-field members, 2,000 spectra, a VAE of at most 8
epochs and a regressor of at most 80; measured well under 30 minutes on 2 CPU cores (see
docs/new-material.md). The intensity model defaults to ``auto``: ``physical``
(:mod:`fcinv.dataset.physical`, the convention of the shipped Ge model: coherent one-phonon
intensities of an ARCS-like run, domain-randomised over coverage, temperature and resolution; with
``--quick`` one model: the full 120-orientation run at 5 K)
wherever :class:`fcinv.forward.physical.PhysicalModel` accepts the crystal, else ``paper`` (weight-1
intensities; the PhysicalModel's refusal is printed). The incident energy of a new material,
``ei_meV`` in material.json, is :func:`fcinv.dataset.physical.ei_rule` of its energy range
(max(40, 1.6 × E_max) meV), so every crystal's physical set has its modes inside the kinematic range.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from fcinv.crystal import Crystal
from fcinv.prepare.stage1 import (
    DEFAULT_RELATIVE_WIDEN,
    STRUCTURE_FILE,
    PhonopySet,
    PrepareError,
    energy_max_for,
    folder_crystal,
    highest_mode_meV,
    material_name,
    reference_from_phonopy,
    refuse_package_folder,
    write_material_json,
    write_structure,
)

STATE_FILE = "prepare.json"
DOMAIN_FILE = "domain.json"
DATASET_FILE = "dataset.h5"
MODELS_DIR = "models"
#: The force-field members of --quick (one CHGNet, one SevenNet).
QUICK_MEMBERS = ("chgnet-0.2.0", "7net-0")
#: The --intensity choices (auto: physical where the PhysicalModel accepts the crystal, else paper).
INTENSITIES = ("auto", "paper", "physical")


@dataclass
class PrepareOptions:
    """Options of :func:`prepare` (the CLI's, with their defaults)."""

    name: str | None = None
    sets: list[PhonopySet] = field(default_factory=list)
    members: list[str] | None = None
    supercell: list[int] | None = None
    shells: int | None = None
    path: str | None = None
    e_max: float | None = None
    e_step: float = 0.5
    intensity: str = "auto"
    widen: float = DEFAULT_RELATIVE_WIDEN
    n_spectra: int = 10000
    n_test: int | None = None
    seed: int = 0
    vae_epochs: int = 40
    reg_epochs: int = 300
    patience: int = 8
    latent_dim: int = 20
    channels: tuple[int, ...] = (16, 32, 64, 128)
    hidden_dim: int = 256
    batch_size: int = 64
    threads: int = 1
    device: str = "cpu"
    quick: bool = False
    progress: bool = True
    until: str = "training"


#: The steps, in order (``--until STEP`` stops after STEP).
STEPS = ("stage1", "domain", "dataset", "training")
#: What --quick changes (each can still be given explicitly).
QUICK = {"n_spectra": 2000, "vae_epochs": 8, "reg_epochs": 80, "patience": 4}


def default_supercell(crystal: Crystal, n_shells: int) -> list[int]:
    """The smallest n × n × n supercell (n ≥ 3) of the primitive cell that holds ``n_shells`` shells."""
    from fcinv.errors import FcinvError
    from fcinv.fcspace import FCSpace

    space = FCSpace(crystal, n_shells=n_shells)
    for n in range(3, 13):
        try:
            space._check_supercell(np.diag([n, n, n]))
        except FcinvError:
            continue
        return [n, n, n]
    raise PrepareError(
        f"no supercell up to 12 × 12 × 12 holds {n_shells} shells of {crystal.name}. Pass fewer --shells."
    )


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class _State:
    """``prepare.json``: per step, the inputs it was made from and its wall time."""

    def __init__(self, out: Path):
        self.path = out / STATE_FILE
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {"steps": {}}

    def done(self, step: str, inputs: dict, outputs: list[Path]) -> bool:
        rec = self.data["steps"].get(step)
        return bool(rec and rec.get("inputs") == inputs and all(p.exists() for p in outputs))

    def changed(self, step: str) -> bool:
        return step in self.data["steps"]

    def record(self, step: str, inputs: dict, wall_s: float) -> None:
        self.data["steps"][step] = {"inputs": inputs, "wall_s": round(wall_s, 2)}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(self.path)


def prepare(
    structure: str | Path, out: str | Path, opts: PrepareOptions, *, say: Callable[[str], None] = print
) -> dict:
    """Run the four steps of the module docstring; returns per-step wall times and the folder.

    Raises
    ------
    PrepareError
        An output folder inside the installed package, inconsistent inputs.
    """
    structure = Path(structure)
    out = Path(out)
    refuse_package_folder(out)
    if opts.quick:
        for k, v in QUICK.items():
            if getattr(opts, k) == getattr(PrepareOptions, k):
                setattr(opts, k, v)
        if not opts.members:
            opts.members = list(QUICK_MEMBERS)
    if opts.until not in STEPS:
        raise PrepareError(f"--until {opts.until} is not a step. Pass one of {', '.join(STEPS)}.")
    if opts.intensity not in INTENSITIES:
        raise PrepareError(f"--intensity {opts.intensity} is not known. Pass auto, paper or physical.")
    crystal = Crystal.from_file(structure)
    from fcinv.prepare.stage1 import formula_of

    name = material_name(structure, formula_of(crystal), opts.name)
    out.mkdir(parents=True, exist_ok=True)
    state = _State(out)
    times: dict[str, float] = {}
    redo = False  # a step that was redone invalidates every later one

    # ---------------------------------------------------------------- 1. Stage I
    inputs1 = {
        "structure": _sha(structure),
        "name": name,
        "sets": [
            [_sha(s.force_constants), _sha(s.structure), np.asarray(s.supercell).tolist()] for s in opts.sets
        ],
        "members": None if opts.sets else list(opts.members or []),
        "supercell": opts.supercell,
        "shells": opts.shells,
        "path": opts.path,
        "e_max": opts.e_max,
        "e_step": opts.e_step,
        "widen": opts.widen if opts.sets else None,
        "intensity": opts.intensity,
    }
    files1 = [out / f for f in ("material.json", STRUCTURE_FILE, "ensemble.json", "reference_fc.hdf5")]
    say(f"[1/4] Stage I: {'phonopy sets' if opts.sets else 'force-field ensemble'} -> reference of {name}")
    if state.done("stage1", inputs1, files1):
        say("      done earlier with the same inputs: skipped")
    else:
        if state.changed("stage1"):
            say("      inputs changed since the last run: redoing Stage I and every later step")
        t0 = time.perf_counter()
        extra = {"intensity": opts.intensity, **({"path": opts.path} if opts.path else {})}
        if opts.sets:
            reference_from_phonopy(
                opts.sets,
                out,
                structure=structure,
                name=name,
                shells=opts.shells,
                widen=opts.widen,
                e_max=opts.e_max,
                e_step=opts.e_step,
                extra_info=extra,
                command=_command(structure, out),
                say=lambda m: say("      " + m.strip()),
            )
        else:
            stage1_forcefields(structure, out, name, opts, extra, say)
        times["stage1"] = time.perf_counter() - t0
        state.record("stage1", inputs1, times["stage1"])
        redo = True
    from fcinv.material import load_material

    material = load_material(out)
    ref = material.reference
    say(
        f"      {material.name}: {material.crystal.spacegroup[0]}, {ref.n_shells} shells, "
        f"{ref.space.n_params} "
        f"parameters, energy 0..{material.energy_range[1]:g} meV, path {material.path}"
    )
    _shells_step(out, say)
    if opts.until == "stage1":
        return _stopped(material.name, out, times, opts, "stage1")
    intensity = resolve_intensity(ref, opts.intensity, say)

    # ---------------------------------------------------------------- 2. domain
    inputs2 = {"stage1": inputs1}
    say("[2/4] domain: the reference bounds widened (fcinv.dataset.generate.widened_domain)")
    if not redo and state.done("domain", inputs2, [out / DOMAIN_FILE]):
        say("      done earlier with the same inputs: skipped")
    else:
        t0 = time.perf_counter()
        dom = material.domain()
        (out / DOMAIN_FILE).write_text(json.dumps(dom.as_dict(), indent=1, ensure_ascii=False) + "\n")
        times["domain"] = time.perf_counter() - t0
        state.record("domain", inputs2, times["domain"])
        redo = True
    if opts.until == "domain":
        return _stopped(material.name, out, times, opts, "domain")

    # ---------------------------------------------------------------- 3. dataset
    ds_path = out / DATASET_FILE
    n_test = opts.n_test if opts.n_test is not None else max(1, min(1500, opts.n_spectra // 10))
    inputs3 = {
        "domain": inputs2,
        "n": opts.n_spectra,
        "seed": opts.seed,
        "n_test": n_test,
        "intensity": intensity,
        "randomise": intensity == "physical" and not opts.quick,
    }
    ei_note = ""
    if intensity == "physical":
        ei_note = f", Ei {material.info.get('ei_meV', 40.0):g} meV, "
        ei_note += "120 orientations at 5 K" if opts.quick else "domain-randomised"
    say(f"[3/4] dataset: {opts.n_spectra} spectra ({intensity} intensity{ei_note}) -> {ds_path}")
    if not redo and state.done("dataset", inputs3, [ds_path]):
        say("      done earlier with the same inputs: skipped")
    else:
        from fcinv.cli.dataset import main as dataset_main

        partial = ds_path.with_name(ds_path.name + ".partial")
        if ds_path.exists():
            ds_path.unlink()
        resume = partial.exists() and state.data.get("dataset_partial") == inputs3
        if partial.exists() and not resume:
            partial.unlink()
        if resume:
            say("      resuming the interrupted dataset")
        state.data["dataset_partial"] = inputs3
        state.save()
        argv = [
            "--material",
            str(out),
            "-n",
            str(opts.n_spectra),
            "--seed",
            str(opts.seed),
            "-o",
            str(ds_path),
        ]
        argv += ["--intensity", intensity, "--n-test", str(n_test)]
        # physical: the Ge convention (fcinv dataset --intensity physical --randomise: coverages of full
        # and partial runs and single orientations, 5-300 K, resolution x 0.85-1.2); --quick: one
        # physical model (the full 120-orientation run at 5 K), as a randomised set builds one per
        # (coverage, temperature, resolution) drawn (Si at Ei 104 meV: over 13 min on 2 shared cores)
        argv += ["--randomise"] if intensity == "physical" and not opts.quick else []
        argv += ["--resume"] if resume else []
        argv += [] if opts.progress else ["--no-progress"]
        t0 = time.perf_counter()
        rc = dataset_main(argv)
        if rc != 0:
            raise PrepareError(f"fcinv dataset {' '.join(argv)} failed (exit {rc}); see the message above.")
        times["dataset"] = time.perf_counter() - t0
        state.record("dataset", inputs3, times["dataset"])
        redo = True
    if opts.until == "dataset":
        return _stopped(material.name, out, times, opts, "dataset")

    # ---------------------------------------------------------------- 4. training
    import torch

    from fcinv.training import TrainConfig, train_regressor, train_vae

    torch.set_num_threads(max(1, int(opts.threads)))
    models = out / MODELS_DIR
    arch = {"latent_dim": opts.latent_dim, "channels": list(opts.channels), "hidden_dim": opts.hidden_dim}
    common = {
        "batch_size": opts.batch_size,
        "seed": opts.seed,
        "device": opts.device,
        "patience": opts.patience,
    }
    inputs4 = {
        "dataset": inputs3,
        "vae_epochs": opts.vae_epochs,
        "reg_epochs": opts.reg_epochs,
        **arch,
        **common,
    }
    say(
        f"[4/4] training: VAE (≤ {opts.vae_epochs} epochs) + latent regressor "
        f"(≤ {opts.reg_epochs}) -> {models}"
    )
    outs4 = [models / "vae" / "config.json", models / "regressor" / "config.json"]
    if not redo and state.done("training", inputs4, outs4):
        say("      done earlier with the same inputs: skipped")
    else:
        t0 = time.perf_counter()
        same = state.data.get("training_partial") == inputs4
        if not same and models.exists():
            shutil.rmtree(models)
        state.data["training_partial"] = inputs4
        state.save()
        cfg = TrainConfig(epochs=opts.vae_epochs, progress=opts.progress, **common)
        vae_dir, reg_dir = models / "vae", models / "regressor"
        if not (same and _finished(vae_dir)):
            res = train_vae(
                ds_path,
                vae_dir,
                cfg,
                resume=_resumable(vae_dir),
                command=f"fcinv prepare (VAE of {out})",
                latent_dim=opts.latent_dim,
                channels=tuple(opts.channels),
                hidden_dim=opts.hidden_dim,
            )
            (vae_dir / "finished").write_text(f"{res.best_epoch}\n")
            say(
                f"      VAE: best validation loss {res.best_val_loss:.4g} at epoch {res.best_epoch} "
                f"({res.wall_s:.0f} s)"
            )
        else:
            say("      VAE finished earlier: kept")
        cfg_r = TrainConfig(
            epochs=opts.reg_epochs, progress=opts.progress, **{**common, "patience": 3 * opts.patience}
        )
        res = train_regressor(
            ds_path,
            reg_dir,
            vae_dir,
            cfg_r,
            resume=_resumable(reg_dir),
            command=f"fcinv prepare (regressor of {out})",
            latent_input="mu",
        )
        say(
            f"      regressor: best validation loss {res.best_val_loss:.4g} at epoch {res.best_epoch} "
            f"({res.wall_s:.0f} s)"
        )
        times["training"] = time.perf_counter() - t0
        state.record("training", inputs4, times["training"])
    return {"name": material.name, "folder": str(out), "wall_s": times, "options": _jsonable_opts(opts)}


def _shells_step(out: Path, say: Callable[[str], None]) -> None:
    """``refine_shells`` of material.json from the members' n-shell projections
    (:mod:`fcinv.prepare.shells`)."""
    from fcinv.errors import DataError
    from fcinv.prepare.shells import write_refine_shells

    try:
        write_refine_shells(out, say=say)
    except DataError as exc:
        say(f"      shells not measured ({exc}); the refinement stays in the model's space")


def _stopped(name: str, out: Path, times: dict, opts: PrepareOptions, step: str) -> dict:
    return {"name": name, "folder": str(out), "wall_s": times, "options": _jsonable_opts(opts), "until": step}


def resolve_intensity(ref, requested: str, say: Callable[[str], None] = print) -> str:
    """The training intensity of ``ref``'s material: ``paper``, or ``physical`` where the
    :class:`~fcinv.forward.physical.PhysicalModel` accepts the crystal (``auto``: else ``paper``,
    saying why; ``physical``: else :class:`PrepareError`).

    The test is the PhysicalModel's own: one is built on a single-orientation coverage (cheap) and its
    refusal (:class:`~fcinv.forward.physical.PhysicalModelError`, e.g. no inversion centre) is the answer.
    """
    if requested == "paper":
        return "paper"
    from fcinv.dataset.physical import physical_model
    from fcinv.forward.physical import PhysicalModelError

    try:
        physical_model(ref, list(ref.sampled), coverage="single0")
    except PhysicalModelError as exc:
        why = str(exc).split(". ")[0].rstrip(".")
        if requested == "physical":
            raise PrepareError(f"--intensity physical: {why}. Pass --intensity paper.") from None
        say(f"      intensity: paper (the physical model refuses {ref.material}: {why})")
        return "paper"
    return "physical"


def _finished(d: Path) -> bool:
    return (d / "config.json").exists() and (d / "finished").exists()


def _resumable(d: Path) -> bool:
    from fcinv.training.trainer import TRAINER_STATE

    return (d / TRAINER_STATE).exists()


def _jsonable_opts(opts: PrepareOptions) -> dict:
    d = asdict(opts)
    d["sets"] = [
        [str(s.force_constants), str(s.structure), np.asarray(s.supercell).tolist()] for s in opts.sets
    ]
    d["channels"] = list(opts.channels)
    return d


def _command(structure: Path, out: Path) -> str:
    import sys

    if sys.argv and Path(sys.argv[0]).name in {"fcinv", "main.py", "__main__.py"}:
        return " ".join(["fcinv", *sys.argv[1:]])
    return f"fcinv prepare {structure} --out {out}"


def stage1_forcefields(
    structure: Path, out: Path, name: str, opts: PrepareOptions, extra: dict, say: Callable[[str], None]
) -> None:
    """Stage I from the force-field ensemble: run the members (cached), take the energy range from
    the first stable member, write material.json, then the ensemble's analysis (fcinv.mlff.build)."""
    from fcinv.crystal import register_material_folder
    from fcinv.dataset.physical import ei_rule
    from fcinv.mlff.build import build_reference, reference_pairs
    from fcinv.mlff.ensemble import resolve_members
    from fcinv.mlff.phonons import DEFAULT_DISPLACEMENT, PhononSettings
    from fcinv.mlff.runner import run_ensemble
    from fcinv.reference import check_shells

    file_crystal = Crystal.from_file(structure, name=name)
    # every member is computed on the cell the folder is read with: standardising is not idempotent
    # (zincblende's twins), and a set computed on the file's cell read with the folder's is wrong
    crystal = folder_crystal(file_crystal)
    n_shells = check_shells(opts.shells if opts.shells is not None else 5, name)
    supercell = opts.supercell or default_supercell(crystal, n_shells)
    settings = PhononSettings.create(supercell, DEFAULT_DISPLACEMENT)
    members = resolve_members(opts.members)
    cache = out / "stage1_cache"
    say(
        f"      {len(members)} members ({', '.join(m.name for m in members)}), supercell {supercell}, "
        f"cache {cache}"
    )
    out.mkdir(parents=True, exist_ok=True)
    write_structure(out / STRUCTURE_FILE, file_crystal)  # read back as `crystal`
    info = {
        "name": name,
        "description": (
            f"{crystal.spacegroup[0]} #{crystal.spacegroup[1]}; Stage I from the force-field ensemble"
        ),
        "structure": STRUCTURE_FILE,
        "energy_min_meV": 0.0,
        "energy_step_meV": float(opts.e_step),
        "fwhm_meV": 1.2,
        "cutoff_shells": n_shells,
        "supercell": [int(x) for x in np.atleast_1d(supercell)][:3],
        **extra,
    }
    # the energy range is needed before the analysis (its sensitivity grid): from a first member
    first = run_ensemble(crystal, members[:1], settings, cache, device=opts.device, progress=opts.progress)[0]
    if first.fc is None:
        raise PrepareError(
            f"the force field {first.name} failed on {name}: {first.reason}. Pass other --members."
        )
    top = highest_mode_meV(reference_pairs(crystal, first), crystal)
    info["energy_max_meV"] = float(opts.e_max) if opts.e_max is not None else energy_max_for(top)
    info["ei_meV"] = ei_rule(info["energy_max_meV"])
    write_material_json(out, info)
    registered = register_material_folder(out)
    crystal = Crystal.from_file(out / STRUCTURE_FILE, name=registered)
    build_reference(
        crystal,
        members,
        settings,
        workdir=cache,
        out_dir=out,
        device=opts.device,
        command=_command(structure, out),
        progress=opts.progress,
    )
