"""The bad-input matrix (issue 16): one bad thing per case, through ``fcinv``'s ``main([...])``.

Every case asserts the exit code, a one-line message naming the problem and the fix (``match``), no
traceback, and that no file in the working folder was created or changed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from fcinv.cli.main import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GE = Path(__file__).resolve().parents[2] / "src" / "fcinv" / "data" / "models" / "ge"


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    match: str
    setup: list[str] = field(default_factory=list)  # names of setup steps, run in the work folder


def _fc(dft: Path) -> list[str]:
    return [
        "--force-constants",
        str(dft / "FORCE_CONSTANTS"),
        "--structure",
        str(dft / "POSCAR"),
        "--supercell",
        "4",
        "4",
        "4",
    ]


SIM = ["simulate", "--material", "Ge", "--no-png"]
SIM0 = ["simulate", "--no-png"]
SIMX = ["simulate-experiment", "--material", "Ge", "{FC}", "-o", "run.h5"]
DS = ["dataset", "--material", "Ge", "-n", "200", "-o", "d.h5", "--no-progress"]
INF = ["infer", "{IN}/s.h5", "--model", "ge", "--device", "cpu", "--no-png"]
FOLD = ["fold", "{IN}/s.h5", "--material", "Ge", "-o", "f.h5"]
FIT = ["fit", "{IN}/s.h5", "--material", "Ge", "--no-png"]
FITD = ["fit-dispersion", "--material", "Ge", "--no-png"]
EXP = ["export", "--material", "Ge"]
OOR = "is out of range"

PREP = ["prepare", "{DFT}/POSCAR", "--no-progress"]
CASES = [
    Case(
        "prepare-phonopy-no-supercell",
        [*PREP, "--from-phonopy", "{DFT}/FORCE_CONSTANTS", "--out", "p"],
        2,
        r"--from-phonopy needs --supercell",
    ),
    Case(
        "prepare-set-structure-alone",
        [*PREP, "--set-structure", "{DFT}/POSCAR", "--out", "p"],
        2,
        r"--set-structure belongs to --from-phonopy",
    ),
    Case("prepare-tiny-n", [*PREP, "-n", "2", "--out", "p"], 2, r"--n-spectra 2 is too small"),
    Case("prepare-missing-structure", ["prepare", "nothere.cif", "--out", "p"], 1, r"does not exist"),
    # ---------------------------------------------------------------- simulate
    Case(
        "simulate-emax-huge",
        [*SIM, "--e-max", "1e7", "-o", "s.h5"],
        1,
        r"--e-max 1e\+07 meV is out of range.*Pass a finite value > 0 meV and <= 1000 meV",
    ),
    Case("simulate-emax-zero", [*SIM, "--e-max", "0", "-o", "s.h5"], 1, r"--e-max 0 meV is out of range"),
    Case("simulate-emax-nan", [*SIM, "--e-max", "nan", "-o", "s.h5"], 1, r"--e-max nan meV is out of range"),
    Case("simulate-estep-zero", [*SIM, "--e-step", "0", "-o", "s.h5"], 1, r"--e-step 0 meV is out of range"),
    Case(
        "simulate-memory",
        [*SIM, "--e-max", "900", "--e-step", "0.0002", "-o", "s.h5"],
        1,
        r"needs about [\d.,]+ GiB of memory, over the limit .* Lower --e-max or raise --e-step",
    ),
    Case(
        "simulate-theta-huge",
        [*SIM, "--theta", "1NN_xx=-1e6", "-o", "s.h5"],
        1,
        r"1NN_xx=-1e\+06 eV/Å² is unphysical.*Pass a value near",
    ),
    Case(
        "simulate-theta-inf",
        [*SIM, "--theta", "1NN_xx=inf", "-o", "s.h5"],
        1,
        r"1NN_xx=inf eV/Å² is unphysical",
    ),
    Case("simulate-theta-text", [*SIM, "--theta", "1NN_xx=abc", "-o", "s.h5"], 1, r"'abc' is not a number"),
    Case(
        "simulate-theta-unknown",
        [*SIM, "--theta", "9NN_zz=1", "-o", "s.h5"],
        1,
        r"unknown parameter '9NN_zz'.*Names:",
    ),
    Case("simulate-fwhm-negative", [*SIM, "--fwhm", "-1", "-o", "s.h5"], 1, r"--fwhm -1 meV is out of range"),
    Case(
        "simulate-shells-zero",
        [*SIM, "--shells", "0", "-o", "s.h5"],
        1,
        r"--shells 0 is out of range.*Pass an integer >= 1",
    ),
    Case("simulate-output-exists", [*SIM, "-o", "s.h5"], 1, r"-o s.h5 exists\. Pass --force", ["s.h5"]),
    Case(
        "simulate-png-exists",
        ["simulate", "--material", "Ge", "-o", "s.h5"],
        1,
        r"--png s.png exists\. Pass --force",
        ["s.png"],
    ),
    Case(
        "simulate-parent-is-file",
        [*SIM, "-o", "blocker/s.h5"],
        1,
        r"'blocker' is a file, not a folder\. Choose another path",
        ["blocker"],
    ),
    Case(
        "simulate-output-is-folder",
        [*SIM, "-o", "adir"],
        1,
        r"-o adir is a folder; expected a file name",
        ["adir/"],
    ),
    Case(
        "simulate-material-and-crystal",
        [*SIM, "--material", "Nb", "--crystal", "{IN}/Si.vasp", "-o", "s.h5"],
        2,
        r"--material Nb and --crystal .* both name the crystal\. Pass one of them",
    ),
    Case("simulate-unknown-material", ["simulate", "--material", "Xx", "--no-png", "-o", "s.h5"], 1, r"Xx"),
    Case(
        "simulate-fc-without-structure",
        [*SIM, "--force-constants", "{IN}/Si.vasp", "-o", "s.h5"],
        2,
        r"--force-constants needs --structure",
    ),
    Case(
        "simulate-bad-supercell",
        [*SIM, "{FC2}", "-o", "s.h5"],
        2,
        r"--supercell takes 3 or 9 integers, got 2",
    ),
    # ---------------------------------------------------------------- simulate-experiment
    Case("simexp-ei-huge", [*SIMX, "--ei", "1e6"], 1, r"--ei 1e\+06 meV is out of range .*<= 3000 meV"),
    Case("simexp-ei-zero", [*SIMX, "--ei", "0"], 1, r"--ei 0 meV is out of range"),
    Case(
        "simexp-memory",
        [*SIMX, "--ei", "2500"],
        1,
        r"--ei 2500 with 120 orientations needs about [\d.,]+ GiB.*Lower --ei",
    ),
    Case("simexp-temperature", [*SIMX, "--temperature", "-5"], 1, r"--temperature -5 K is out of range"),
    Case("simexp-orientations", [*SIMX, "--n-orientations", "0"], 1, r"--n-orientations 0 is out of range"),
    Case("simexp-qstep", [*SIMX, "--q-step", "0"], 1, r"--q-step 0 r\.l\.u\. is out of range"),
    Case("simexp-output-exists", SIMX, 1, r"-o run.h5 exists\. Pass --force", ["run.h5"]),
    Case(
        "simexp-no-fc",
        ["simulate-experiment", "--material", "Ge", "-o", "run.h5"],
        2,
        r"--force-constants is required",
    ),
    # ---------------------------------------------------------------- dataset
    Case(
        "dataset-chunk-zero",
        [*DS, "--chunk", "0"],
        1,
        r"--chunk 0 is out of range \(samples drawn per batch\)\. Pass an integer >= 1",
    ),
    Case("dataset-chunk-negative", [*DS, "--chunk", "-4"], 1, r"--chunk -4 is out of range"),
    Case(
        "dataset-chunk-memory",
        [*DS, "--chunk", "100000000", "-n", "100000000"],
        1,
        r"needs about [\d.,]+ GiB .* smaller --chunk",
    ),
    Case("dataset-n-zero", ["dataset", "-n", "0", "-o", "d.h5"], 1, r"-n 0 is out of range"),
    Case("dataset-top-k-zero", [*DS, "--top-k", "0"], 1, r"--top-k 0 is out of range\. Pass 1 to 16"),
    Case("dataset-top-k-99", [*DS, "--top-k", "99"], 1, r"--top-k 99 is out of range\. Pass 1 to 16"),
    Case("dataset-n-test-zero", [*DS, "--n-test", "0"], 1, r"--n-test 0 is out of range"),
    Case(
        "dataset-n-test-too-big", [*DS, "--n-test", "500"], 1, r"--n-test 500 leaves no training .* below 199"
    ),
    Case("dataset-temperature-order", [*DS, "--temperature", "300", "5"], 1, r"LOW is above HIGH"),
    Case(
        "dataset-temperature-negative",
        [*DS, "--temperature", "-3", "5"],
        1,
        r"--temperature LOW -3 K is out of range",
    ),
    Case(
        "dataset-clean-fraction", [*DS, "--clean-fraction", "1.5"], 1, r"--clean-fraction 1.5 is out of range"
    ),
    Case(
        "dataset-widen-negative", [*DS, "--widen", "-1", "0.5"], 1, r"--widen TOWARD_ZERO -1 is out of range"
    ),
    Case("dataset-finished-exists", DS, 1, r"-o d.h5 exists \(a finished dataset\)\. Pass --force", ["d.h5"]),
    Case(
        "dataset-partial-exists",
        DS,
        1,
        r"d.h5.partial exists \(an interrupted run\)\. Pass --resume to continue it or --overwrite",
        ["partial"],
    ),
    Case(
        "dataset-resume-nothing",
        [*DS, "--resume"],
        1,
        r"--resume: there is no interrupted run .* Run without --resume",
    ),
    Case(
        "dataset-resume-and-overwrite",
        [*DS, "--resume", "--overwrite"],
        1,
        r"--resume and --overwrite contradict",
    ),
    Case(
        "dataset-resume-other-seed",
        [*DS, "--chunk", "64", "--resume", "--seed", "1"],
        1,
        r"--resume with other options .* --seed 1 \(the partial run used 0\).*--overwrite",
        ["partial"],
    ),
    Case(
        "dataset-resume-other-n-top-k",
        ["dataset", "-n", "300", "-o", "d.h5", "--chunk", "64", "--top-k", "4", "--resume"],
        1,
        r"-n 300 \(the partial run used 200\).*--top-k 4 \(the partial run used None\)",
        ["partial"],
    ),
    Case(
        "dataset-parent-is-file",
        ["dataset", "-n", "200", "-o", "blocker/d.h5"],
        1,
        r"'blocker' is a file, not a folder",
        ["blocker"],
    ),
    Case("dataset-unknown-material", ["dataset", "--material", "Xx", "-n", "10", "-o", "d.h5"], 1, r"Xx"),
    # ---------------------------------------------------------------- infer
    Case(
        "infer-k-samples-zero",
        [*INF, "--k-samples", "0"],
        1,
        r"--k-samples 0 is out of range \(σ is the spread.*Pass an integer >= 2",
    ),
    Case("infer-k-samples-negative", [*INF, "--k-samples", "-3"], 1, r"--k-samples -3 is out of range"),
    Case("infer-k-samples-one", [*INF, "--k-samples", "1"], 1, r"--k-samples 1 is out of range"),
    Case(
        "infer-truth-string",
        [*INF, "--truth", "{IN}/theta_str.json"],
        1,
        r"'1NN_xx' is \"abc\", not a number\. Give θ in eV/Å² as numbers",
    ),
    Case(
        "infer-truth-unknown",
        [*INF, "--truth", "{IN}/theta_unknown.json"],
        1,
        r"names unknown parameters \['9NN_zz'\]\. Use the model's names",
    ),
    Case(
        "infer-json-exists", [*INF, "--json", "r.json"], 1, r"--json r.json exists\. Pass --force", ["r.json"]
    ),
    Case(
        "infer-json-unwritable",
        [*INF, "--json", "blocker/r.json"],
        1,
        r"'blocker' is a file, not a folder",
        ["blocker"],
    ),
    Case(
        "infer-model-missing-config",
        ["infer", "{IN}/s.h5", "--model", "{IN}/broken_model", "--device", "cpu", "--no-png"],
        1,
        r"regressor/config\.json is missing\. Restore it",
    ),
    Case(
        "infer-data-missing",
        ["infer", "nothere.h5", "--model", "ge", "--device", "cpu", "--no-png"],
        1,
        r"'nothere.h5' does not exist",
    ),
    Case("infer-temperature", [*INF, "--temperature", "-1"], 1, r"--temperature -1 K is out of range"),
    Case("infer-q-tolerance", [*INF, "--q-tolerance", "0"], 1, r"--q-tolerance 0 r\.l\.u\. is out of range"),
    Case(
        "infer-text-as-npy",
        ["infer", "{IN}/notes.npy", "--model", "ge", "--device", "cpu", "--no-png"],
        1,
        r"notes.npy",
    ),
    Case(
        "infer-per-orientation-json-exists",
        [*INF, "--per-orientation"],
        1,
        r"--per-orientation s_orientations\.json exists\. Pass --force to overwrite it",
        ["s_orientations.json"],
    ),
    Case(
        "infer-per-orientation-png-exists",
        [*INF, "--per-orientation"],
        1,
        r"--per-orientation s_orientations\.png exists\. Pass --force to overwrite it",
        ["s_orientations.png"],
    ),
    Case(
        "infer-per-orientation-output-is-folder",
        [*INF, "--per-orientation"],
        1,
        r"--per-orientation s_orientations\.json is a folder; expected a file name",
        ["s_orientations.json/"],
    ),
    Case(
        "infer-per-orientation-two-files",
        ["infer", "{IN}/s.h5", "{IN}/s.h5", "--model", "ge", "--no-png", "--per-orientation"],
        2,
        r"--per-orientation takes one run file",
    ),
    # ---------------------------------------------------------------- fold
    Case("fold-output-exists", FOLD, 1, r"-o f.h5 exists\. Pass --force", ["f.h5"]),
    Case("fold-q-tolerance", [*FOLD, "--q-tolerance", "2"], 1, r"--q-tolerance 2 r\.l\.u\. is out of range"),
    Case("fold-bose", [*FOLD, "--bose", "-3"], 1, r"--bose -3 K is out of range"),
    Case(
        "fold-zone-coverage", [*FOLD, "--min-zone-coverage", "2"], 1, r"--min-zone-coverage 2 is out of range"
    ),
    Case(
        "fold-qmod-range", [*FOLD, "--qmod-range", "3", "1"], 1, r"--qmod-range 3 1 is not a \|Q\| interval"
    ),
    Case("fold-orientation", [*FOLD, "--orientation", "-1"], 1, r"--orientation -1 is out of range"),
    Case(
        "fold-input-missing",
        ["fold", "nothere.h5", "--material", "Ge", "-o", "f.h5"],
        1,
        r"'nothere.h5' does not exist",
    ),
    Case(
        "fold-png-unwritable",
        [*FOLD, "--png", "blocker/f.png"],
        1,
        r"'blocker' is a file, not a folder",
        ["blocker"],
    ),
    # ---------------------------------------------------------------- fit, fit-dispersion, export
    Case(
        "fit-theta-start-string",
        [*FIT, "--theta-start", "{IN}/theta_str.json", "-o", "fit.json"],
        1,
        r"'1NN_xx' is \"abc\", not a number",
    ),
    Case(
        "fit-output-exists", [*FIT, "-o", "fit.json"], 1, r"-o fit.json exists\. Pass --force", ["fit.json"]
    ),
    Case("fit-starts-zero", [*FIT, "--starts", "0", "-o", "fit.json"], 1, r"--starts 0 is out of range"),
    Case(
        "fit-max-nfev-zero", [*FIT, "--max-nfev", "0", "-o", "fit.json"], 1, r"--max-nfev 0 is out of range"
    ),
    Case(
        "fitd-negative-energy",
        [*FITD, "{IN}/neg_points.csv", "-o", "fd.json"],
        1,
        r"energy -5 meV is not a phonon energy \(must be >= 0\)\. Give \|E\|",
    ),
    Case(
        "fitd-output-exists",
        [*FITD, "{IN}/points.csv", "-o", "fd.json"],
        1,
        r"-o fd.json exists\. Pass --force",
        ["fd.json"],
    ),
    Case(
        "fitd-theta-start-string",
        [*FITD, "{IN}/points.csv", "--theta-start", "{IN}/theta_str.json", "-o", "fd.json"],
        1,
        r"'1NN_xx' is \"abc\", not a number",
    ),
    Case(
        "export-theta-string",
        [*EXP, "--theta-json", "{IN}/theta_str.json", "-o", "exp"],
        1,
        r"'1NN_xx' is \"abc\", not a number",
    ),
    Case(
        "export-folder-exists",
        [*EXP, "--theta", "1NN_xx=-2", "-o", "exp"],
        1,
        r"-o exp exists and is not empty\. Pass --force",
        ["exp/"],
    ),
    Case(
        "export-output-is-file",
        [*EXP, "--theta", "1NN_xx=-2", "-o", "blocker"],
        1,
        r"-o blocker is a file, not a folder",
        ["blocker"],
    ),
    Case(
        "export-no-theta", [*EXP, "--no-reference", "-o", "exp"], 2, r"pass --theta-json FILE and/or --theta"
    ),
    # ---------------------------------------------------------------- train, evaluate, project, demo, main
    Case(
        "train-out-parent-is-file",
        ["train", "vae", "--data", "{IN}/s.h5", "--out", "blocker/vae"],
        1,
        r"'blocker' is a file, not a folder",
        ["blocker"],
    ),
    Case(
        "train-epochs-zero",
        ["train", "vae", "--data", "{IN}/s.h5", "--out", "vae", "--epochs", "0"],
        1,
        r"--epochs 0 is out of range \(training epochs\)\. Pass an integer >= 1",
    ),
    Case(
        "train-lr-negative",
        ["train", "vae", "--data", "{IN}/s.h5", "--out", "vae", "--lr", "-1"],
        1,
        r"--lr -1 is out of range \(the AdamW learning rate, e\.g\. 1e-3\)\. Pass a finite value > 0",
    ),
    Case(
        "train-channels-empty",
        ["train", "vae", "--data", "{IN}/s.h5", "--out", "vae", "--channels", ","],
        1,
        r"--channels \(empty\): layer widths must be positive integers\. Pass e\.g\. --channels 16,32",
    ),
    Case(
        "train-dropout-two",
        [
            "train",
            "regressor",
            "--data",
            "{IN}/s.h5",
            "--vae",
            str(GE / "vae"),
            "--out",
            "reg",
            "--dropout",
            "2",
        ],
        1,
        r"--dropout 2 is out of range \(a dropout probability\)\. Pass 0 <= p < 1",
    ),
    Case("train-data-missing", ["train", "vae", "--data", "nothere.h5", "--out", "vae"], 2, r"nothere.h5"),
    Case(
        "evaluate-max-test-zero",
        ["evaluate", "--model", "ge=" + str(GE), "--data", "{IN}/s.h5", "--out", "ev", "--max-test", "0"],
        1,
        r"--max-test 0 is out of range",
    ),
    Case(
        "evaluate-out-exists",
        ["evaluate", "--model", "ge=" + str(GE), "--data", "{IN}/s.h5", "--out", "ev"],
        1,
        r"--out ev exists and is not empty\. Pass --force",
        ["ev/"],
    ),
    Case(
        "project-json-exists",
        [
            "project",
            "{DFT}/FORCE_CONSTANTS",
            "--structure",
            "{DFT}/POSCAR",
            "--supercell",
            "4",
            "4",
            "4",
            "--material",
            "Ge",
            "--json",
            "p.json",
        ],
        1,
        r"--json p.json exists\. Pass --force",
        ["p.json"],
    ),
    Case(
        "demo-orientations-zero",
        ["demo", "--out", "demo", "--orientations", "0"],
        1,
        r"--orientations 0 is out of range",
    ),
    Case(
        "demo-single-scans-negative",
        ["demo", "--out", "demo", "--single-scans", "-1"],
        1,
        r"--single-scans -1 is out of range",
    ),
    Case("unknown-command", ["simulat"], 2, r"unknown command 'simulat'\. Commands:"),
    # ---------------------------------------------------------------- malformed files (raw reader texts)
    Case(
        "simulate-crystal-garbled-cif",
        [*SIM0, "--crystal", "{IN}/garbled.cif", "-o", "s.h5"],
        1,
        r"could not read structure file .*garbled\.cif': its content does not follow the format\. Check",
    ),
    Case(
        "simulate-crystal-truncated-poscar",
        [*SIM0, "--crystal", "{IN}/trunc.vasp", "-o", "s.h5"],
        1,
        r"trunc\.vasp': the file ends early or a line has too few fields\. Check that it is a valid",
    ),
    Case(
        "simulate-crystal-text-count",
        [*SIM0, "--crystal", "{IN}/badcount.vasp", "-o", "s.h5"],
        1,
        r"badcount\.vasp': 'x' stands where a number is expected\. Check",
    ),
    Case(
        "simulate-fc-truncated",
        [
            *SIM,
            "--force-constants",
            "{IN}/FC_trunc",
            "--structure",
            "{DFT}/POSCAR",
            "--supercell",
            "4",
            "4",
            "4",
            "-o",
            "s.h5",
        ],
        1,
        r"FC_trunc': a block holds the wrong number of values \(rows of different lengths\)\. Check",
    ),
    Case(
        "project-fc-empty",
        ["project", "{IN}/empty.txt", "--structure", "{DFT}/POSCAR", "--supercell", "4", "4", "4"],
        1,
        r"empty\.txt': the file ends early or a line has too few fields\. Check it is phonopy's",
    ),
    Case(
        "simexp-fc-garbled",
        [
            "simulate-experiment",
            "--material",
            "Ge",
            "--force-constants",
            "{IN}/FC_garbled",
            "--structure",
            "{DFT}/POSCAR",
            "--supercell",
            "4",
            "4",
            "4",
            "-o",
            "run.h5",
        ],
        1,
        r"FC_garbled' .*: 'abc' stands where a number is expected\. Check that the supercell",
    ),
    Case(
        "simulate-material-json-empty",
        [*SIM0, "--material", "{IN}/mat_empty", "-o", "s.h5"],
        1,
        r"material\.json' is not valid JSON \(the file is empty\)\. Fix the file",
    ),
    Case(
        "simulate-material-json-list",
        [*SIM0, "--material", "{IN}/mat_list", "-o", "s.h5"],
        1,
        r"material\.json' holds a JSON array, not an object\. Write \{\"name\"",
    ),
    Case(
        "simulate-material-emax-text",
        [*SIM0, "--material", "{IN}/mat_emax", "-o", "s.h5"],
        1,
        r"energy_max_meV is \"abc\", not a number\. Give it as a finite number",
    ),
    Case(
        "dataset-material-structure-number",
        ["dataset", "--material", "{IN}/mat_structnum", "-n", "10", "-o", "d.h5", "--no-progress"],
        1,
        r"material\.json' names no structure file\. Add \"structure\"",
    ),
    Case(
        "fold-npy-empty",
        ["fold", "{IN}/empty.npy", "--material", "Ge", "-o", "f.h5"],
        1,
        r"empty\.npy' is not a NumPy array file \(the file is empty or ends early\)\. Pass pathSQE's",
    ),
    Case(
        "infer-npy-empty",
        ["infer", "{IN}/empty.npy", "--model", "ge", "--device", "cpu", "--no-png"],
        1,
        r"empty\.npy' is not a NumPy array file \(the file is empty or ends early\)",
    ),
    Case(
        "infer-folded-missing-array",
        ["infer", "{IN}/no_error.h5", "--model", "ge", "--device", "cpu", "--no-png"],
        1,
        r"no_error\.h5' is incomplete \(the entry 'error' is missing\)\. The file is truncated",
    ),
    Case(
        "infer-truth-null",
        [*INF, "--truth", "{IN}/null.json"],
        1,
        r"null\.json' holds a JSON null, not an object of θ by name\. Pass the JSON",
    ),
    Case(
        "infer-model-calibration-list",
        ["infer", "{IN}/s.h5", "--model", "{IN}/calib_model", "--device", "cpu", "--no-png"],
        1,
        r"calibration\.json holds a JSON array, not a calibration\. Refit it",
    ),
    Case(
        "infer-model-config-garbled",
        ["infer", "{IN}/s.h5", "--model", "{IN}/garbled_model", "--device", "cpu", "--no-png"],
        1,
        r"config\.json is corrupt \(line 1, column 2: expecting property name .*\)\. Retrain or restore",
    ),
    Case(
        "fit-prior-empty",
        [*FIT, "--prior", "{IN}/empty.json", "-o", "fit.json"],
        1,
        r"prior file .*empty\.json' is not valid JSON \(the file is empty\)\. Pass \{name",
    ),
    Case(
        "export-theta-garbled",
        [*EXP, "--theta-json", "{IN}/garbled.json", "-o", "exp"],
        1,
        r"garbled\.json' is not valid JSON \(line 1, column 1: expecting value\)\. Pass the JSON",
    ),
    Case(
        "evaluate-dataset-garbled",
        ["evaluate", "--model", "ge=" + str(GE), "--data", "{IN}/garbled.h5", "--out", "ev"],
        2,
        r"dataset garbled\.h5 is not a readable HDF5 file .* Regenerate it",
    ),
    Case(
        "advise-answer-list",
        ["advise", "--answer", "{IN}/list.json", "--no-png"],
        1,
        r"answer file .*list\.json' holds a JSON array, not an object\. Pass fcinv infer --json",
    ),
    Case(
        "advise-answer-ragged",
        ["advise", "--answer", "{IN}/ragged.json", "--no-png"],
        1,
        r"'1NN_xx' is \[1, \[2, 3\]\], not \[theta, sigma\] numbers\. Pass",
    ),
    Case(
        "advise-answer-empty",
        ["advise", "--answer", "{IN}/empty.json", "--no-png"],
        1,
        r"answer file .*empty\.json' is not valid JSON \(the file is empty\)\. Pass",
    ),
    Case(
        "fold-run-offsets-inconsistent",
        ["fold", "{IN}/bad_run.h5", "--material", "Ge", "-o", "f.h5"],
        1,
        r"bad_run\.h5' is inconsistent: offsets \[0, 5\]\.\.\. do not run from 0 up to the 2 entries\.",
    ),
    Case(
        "infer-folded-grid-list",
        ["infer", "{IN}/grid_list.h5", "--model", "ge", "--device", "cpu", "--no-png"],
        1,
        r"grid description holds a JSON array, not an object\. The file was not written by fcinv",
    ),
    Case(
        "fit-folded-grid-ragged",
        [*FIT[:1], "{IN}/grid_ragged.h5", *FIT[2:], "-o", "fit.json"],
        1,
        r"grid description is malformed \(a block holds the wrong number of values .*\)\. The file is",
    ),
    Case(
        "fold-nxspe-ei-text",
        ["fold", "{IN}/ei_text.nxspe", "--material", "Ge", "-o", "f.h5"],
        1,
        r"NXSPE_info/fixed_energy holds text values, not numbers\. The file is corrupt or not NXSPE",
    ),
    Case(
        "fold-nxspe-u-zero",
        ["fold", "{NX}/MAR11001_test.nxspe", "--material", "Ge", "-o", "f.h5", "--u", "0", "0", "0"],
        1,
        r"u=\[0\.0, 0\.0, 0\.0\] is not a direction \(zero or not finite\)\. Pass a non-zero",
    ),
    # ---------------------------------------------------------------- advise
    Case(
        "advise-bad-candidates",
        ["advise", "--candidates", "abc"],
        1,
        r"candidate angles 'abc' are not 'start:stop:step'.*Pass e\.g\. 0:179:1",
    ),
    Case("advise-unknown-material", ["advise", "--material", "Xx"], 1, r"unknown material 'Xx'"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, ge_dft_dir):
    """Read-only inputs shared by the cases (outside the work folder that is checked for changes)."""
    d = tmp_path_factory.mktemp("inputs")
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert main(["-q", "simulate", "--material", "Ge", "-o", "s.h5", "--no-png"]) == 0
    finally:
        os.chdir(cwd)
    (d / "theta_str.json").write_text(json.dumps({"1NN_xx": "abc", "1NN_xy": -2.0}))
    (d / "theta_unknown.json").write_text(json.dumps({"1NN_xx": -2.0, "9NN_zz": 1.0}))
    (d / "notes.npy").write_text("not an array\n")
    rows = ["h,k,l,energy_meV,sigma_meV", "0.5,0,0,4.0,0.2", "1,0,0,8.0,0.2", "0.5,0.5,0.5,-5,0.2"]
    (d / "neg_points.csv").write_text("\n".join(rows) + "\n")
    (d / "points.csv").write_text("\n".join(rows[:3]) + "\n")
    shutil.copy(ge_dft_dir / "POSCAR", d / "Si.vasp")
    shutil.copytree(GE, d / "broken_model")
    (d / "broken_model" / "regressor" / "config.json").unlink()
    _malformed_inputs(d, ge_dft_dir)
    return d


def _malformed_inputs(d: Path, dft: Path) -> None:
    """Files that third-party readers (ASE, phonopy, numpy, h5py, json) fail on with Python's own wording."""
    import h5py

    poscar = (dft / "POSCAR").read_text().splitlines()
    (d / "garbled.cif").write_text("\x00\x01garbage ]]{{ ,,\n1,2\nabc\n")
    (d / "trunc.vasp").write_text(poscar[0] + "\n1.0\n")
    (d / "badcount.vasp").write_text("\n".join([*poscar[:6], "x y", *poscar[7:]]) + "\n")
    fc_lines = (dft / "FORCE_CONSTANTS").read_text().splitlines()
    (d / "FC_trunc").write_text("\n".join(fc_lines[:10]) + "\n")
    (d / "FC_garbled").write_text("abc def\n")
    (d / "empty.txt").write_text("")
    (d / "empty.json").write_text("")
    (d / "empty.npy").write_bytes(b"")
    (d / "garbled.json").write_text("\x00garbage ]]{{")
    (d / "garbled.h5").write_text("not an HDF5 file\n")
    (d / "null.json").write_text("null")
    (d / "list.json").write_text("[]")
    (d / "ragged.json").write_text(json.dumps({"1NN_xx": [1, [2, 3]]}))
    for name, text in {
        "mat_empty": "",
        "mat_list": "[]",
        "mat_emax": json.dumps({"structure": "structure.vasp", "energy_max_meV": "abc"}),
        "mat_structnum": json.dumps({"structure": 5}),
    }.items():
        (d / name).mkdir()
        (d / name / "material.json").write_text(text)
        shutil.copy(dft / "POSCAR", d / name / "structure.vasp")
    shutil.copytree(GE, d / "calib_model")
    (d / "calib_model" / "calibration.json").write_text("[1, 2]")
    shutil.copytree(GE, d / "garbled_model")
    (d / "garbled_model" / "regressor" / "config.json").write_text("{not json")
    shutil.copy(d / "s.h5", d / "no_error.h5")
    with h5py.File(d / "no_error.h5", "a") as f:
        del f["error"]
    for name, grid in {
        "grid_list": "[1, 2]",
        "grid_ragged": json.dumps({"q_rlu": [[0, 0], [1]], "energy_edges": [0, 1]}),
    }.items():
        shutil.copy(d / "s.h5", d / f"{name}.h5")
        with h5py.File(d / f"{name}.h5", "a") as f:
            f.attrs["grid"] = grid
    _bad_run(d / "bad_run.h5")
    nx = dft.parent / "nxspe" / "MAR11001_test.nxspe"
    if nx.is_file():
        shutil.copy(nx, d / "ei_text.nxspe")
        with h5py.File(d / "ei_text.nxspe", "a") as f:
            del f["11001.spe/NXSPE_info/fixed_energy"]
            f["11001.spe/NXSPE_info/fixed_energy"] = np.array([b"abc"])


def _bad_run(path: Path) -> None:
    """A tiny simulated run whose offsets point past its two entries."""
    import h5py

    from fcinv.experiment.simulate import SimulatedRun

    e = np.array([0.0, 0.5, 1.0])
    run = SimulatedRun(
        edges=(e, e, e, np.array([0.0, 1.0, 2.0])),
        psi=np.array([0.0]),
        offsets=np.array([0, 2]),
        index=np.array([0, 1]),
        counts=np.array([1, 2]),
        norm=np.array([1.0, 1.0]),
        expected_index=np.array([0, 1]),
        expected=np.array([1.0, 2.0]),
        reciprocal_cell=np.eye(3),
    )
    run.write(path)
    with h5py.File(path, "a") as f:
        del f["offsets"]
        f["offsets"] = np.array([0, 5])


@pytest.fixture(scope="module")
def partial(tmp_path_factory):
    """A real interrupted dataset: ``fcinv dataset -n 200 --chunk 64`` stopped after its first chunk."""
    from fcinv.dataset.io import DatasetWriter

    d = tmp_path_factory.mktemp("partial")
    real = DatasetWriter.append
    calls = []

    def append(self, *a, **k):
        real(self, *a, **k)
        calls.append(1)
        raise KeyboardInterrupt

    cwd = os.getcwd()
    os.chdir(d)
    try:
        mp = pytest.MonkeyPatch()
        mp.setattr(DatasetWriter, "append", append)
        try:
            rc = main(["-q", *DS, "--chunk", "64"])
        finally:
            mp.undo()
    finally:
        os.chdir(cwd)
    assert rc == 130 and calls == [1]
    assert (d / "d.h5.partial").exists() and not (d / "d.h5").exists()
    return d / "d.h5.partial"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
    }


def _setup(work: Path, steps: list[str], inputs: Path, partial: Path | None) -> None:
    for s in steps:
        if s == "partial":
            shutil.copy(partial, work / "d.h5.partial")
        elif s.endswith("/"):
            (work / s).mkdir()
            (work / s / "old.txt").write_text("earlier output\n")
        elif s == "blocker":
            (work / s).write_text("a file where a folder is expected\n")
        elif s.endswith(".h5"):
            shutil.copy(inputs / "s.h5", work / s)
        else:
            (work / s).write_text("an earlier output\n")


def _expand(argv: list[str], inputs: Path, dft: Path) -> list[str]:
    out: list[str] = []
    for a in argv:
        if a == "{FC}":
            out += _fc(dft)
        elif a == "{FC2}":
            out += _fc(dft)[:-1]
        else:
            if "{NX}" in a:
                nx = dft.parent / "nxspe"  # ../shared/data/nxspe, beside the DFT set
                if not nx.is_dir():
                    pytest.skip(f"shared NXSPE files not found at {nx}")
                a = a.replace("{NX}", str(nx))
            out.append(a.replace("{IN}", str(inputs)).replace("{DFT}", str(dft)))
    return out


#: Python's and the readers' own wording, which no message may pass on (issue 16).
RAW_TEXT = re.compile(
    r"StopIteration|AssertionError|index out of range|inhomogeneous shape|could not broadcast|"
    r"invalid literal for|could not convert string|object has no attribute|NoneType|Expecting value|"
    r"Unable to synchronously|file signature not found|char \d+\)"
)


def test_matrix_has_enough_cases():
    commands = {c.argv[0] for c in CASES}
    assert len(CASES) >= 60
    from fcinv.cli.commands import COMMANDS

    assert set(COMMANDS) - commands <= {"reference"}  # reference: the test below


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys, request, ge_dft_dir):
    inputs = request.getfixturevalue("inputs")
    part = request.getfixturevalue("partial") if "partial" in case.setup else None
    work = tmp_path / "work"
    work.mkdir()
    _setup(work, case.setup, inputs, part)
    monkeypatch.chdir(work)
    argv = _expand(case.argv, inputs, ge_dft_dir)
    before = _snapshot(work)
    capsys.readouterr()  # what the fixtures printed
    rc = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert rc == case.code, err
    lines = [ln for ln in err.splitlines() if re.match(r"^fcinv( [\w-]+)?: ", ln)]
    assert len(lines) == 1, err
    assert re.search(case.match, lines[0]), lines[0]
    assert not RAW_TEXT.search(lines[0]), f"raw exception text in: {lines[0]}"
    assert _snapshot(work) == before, "an output was created or changed"


def test_force_replaces_an_existing_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.h5").write_text("old")
    assert main(["-q", *SIM, "-o", "s.h5", "--force"]) == 0
    from fcinv.experiment.folded import FoldedSpectrum

    assert FoldedSpectrum.from_hdf5("s.h5").intensity.shape[0] > 0


def test_stale_temporaries_are_removed_on_the_next_start(tmp_path, monkeypatch):
    """Temps of a killed run (a PID that no longer runs) go; those of running processes stay."""
    import subprocess
    import sys

    from fcinv.cli._guards import remove_stale_temporaries, stale_temporaries

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    pid = int(dead.stdout)
    names = [f".weights.pt.tmp-{pid}", f".trainer_state.pt.tmp-{pid}", f".s.h5.{pid}.abc123.tmp"]
    for n in names:
        (tmp_path / n).write_bytes(b"x" * 100)
    alive = tmp_path / f".weights.pt.tmp-{os.getpid()}"
    alive.write_bytes(b"x")
    assert {p.name for p in stale_temporaries(tmp_path)} == set(names)
    monkeypatch.chdir(tmp_path)
    assert main(["-q", *SIM, "-o", "s.h5"]) == 0
    assert not any((tmp_path / n).exists() for n in names) and alive.exists()
    assert remove_stale_temporaries(tmp_path) == []


def test_empty_spectrum_warns(tmp_path, monkeypatch, caplog):
    """A θ whose modes all lie above the energy window gives a warning that names the fix."""
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [*SIM, "--e-max", "2", "--e-step", "0.5", "--fwhm", "0.1", "--theta", "1NN_xx=-900", "-o", "s.h5"]
        )
        == 0
    )
    from fcinv.experiment.folded import FoldedSpectrum

    spec = FoldedSpectrum.from_hdf5("s.h5").intensity
    if np.any(spec > 0):
        pytest.skip("this θ still has modes in the window")
    assert any("spectrum is empty" in r.getMessage() and "--e-max" in r.getMessage() for r in caplog.records)


def test_memory_limit_names_the_estimate(monkeypatch):
    from fcinv.cli import _guards

    monkeypatch.setattr(_guards, "machine_memory_bytes", lambda: 2**30)
    with pytest.raises(
        _guards.LimitError, match=r"needs about 1.0 GiB of memory, over the limit of 0.5 GiB .* Fewer"
    ):
        _guards.check_memory(2**30, "job", "fewer bins")
    _guards.check_memory(2**28, "job", "fewer bins")


def test_fold_refuses_a_volume_over_the_memory_limit(tmp_path, monkeypatch, capsys):
    from fcinv.cli import _guards

    h = np.arange(-1.0, 1.0, 0.1)
    e = np.arange(0.5, 20, 1.0)
    shape = (len(h), len(h), len(h), len(e))
    np.savez(tmp_path / "v.npz", signal=np.ones(shape), error=np.ones(shape), H=h, K=h, L=h, E=e)
    monkeypatch.setattr(_guards, "machine_memory_bytes", lambda: 2**20)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["fold", str(tmp_path / "v.npz"), "--material", "Ge", "-o", "f.h5"]) == 1
    err = capsys.readouterr().err
    want = r"fold of 1 file\(s\) holding [\d.,]+ MiB of arrays needs about [\d.,]+ [MG]iB.*--qmod-range"
    assert re.search(want, err), err
    assert list(work.iterdir()) == []


def test_writable_check_reports_a_read_only_folder(tmp_path, monkeypatch):
    from fcinv.cli import _guards, _outputs

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_outputs.tempfile, "mkstemp", refuse)
    with pytest.raises(
        _guards.OutputError, match=r"folder '.*' is not writable \(Permission denied\)\. Choose a writable"
    ):
        _guards.check_writable(tmp_path / "sub" / "x.h5")


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("chgnet") is not None
    or __import__("importlib").util.find_spec("sevenn") is not None,
    reason="a force-field package is installed",
)
def test_reference_without_mlff_names_the_missing_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["reference", "Ge", "--out-dir", "out", "--workdir", "work"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert re.search(
        r"no force-field package .* \(missing: chgnet, sevenn\)\. Install them with: pip install", err
    )
    assert list(tmp_path.iterdir()) == []


def test_per_orientation_outputs_are_checked_writable_before_the_work(tmp_path, monkeypatch, capsys):
    """``infer --per-orientation`` writes into the current folder: an unwritable one is refused at once."""
    from fcinv.cli import _outputs
    from fcinv.cli import infer as cli_infer

    def refuse(*a, **k):
        raise PermissionError(13, "Permission denied")

    ran = []
    monkeypatch.setattr(_outputs.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(cli_infer, "per_orientation", lambda *a: ran.append(a))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.h5").write_text("never read: the output check comes first")
    rc = main(["infer", "run.h5", "--model", "ge", "--no-png", "--per-orientation"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and not ran
    assert re.search(
        r"cannot write run_orientations\.png: folder '\.' is not writable \(Permission denied\)", err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.h5"]


@pytest.mark.slow
def test_per_orientation_force_replaces_its_outputs(tmp_path, monkeypatch, ge_dft_dir):
    """With --force the per-orientation figure and JSON of an earlier run are replaced (18 + 24 s here)."""
    monkeypatch.chdir(tmp_path)
    assert main(["-q", "simulate-experiment", "--material", "Ge", *_fc(ge_dft_dir), "--n-orientations", "2",
                 "--psi-step", "30", "--seed", "2", "-o", "run.h5"]) == 0  # fmt: skip
    (tmp_path / "run_orientations.json").write_text("an earlier output\n")
    argv = ["-q", "infer", "run.h5", "--model", "ge", "--device", "cpu", "--k-samples", "5", "--no-png"]
    assert main([*argv, "--per-orientation"]) == 1
    assert (tmp_path / "run_orientations.json").read_text() == "an earlier output\n"
    assert main([*argv, "--per-orientation", "--force"]) == 0
    doc = json.loads((tmp_path / "run_orientations.json").read_text())
    assert doc["psi_deg"] == [0.0, 30.0] and (tmp_path / "run_orientations.png").stat().st_size > 10_000


def test_an_interrupted_dataset_names_the_cli_flags(tmp_path, monkeypatch, capsys):
    """What the CLI prints on an interruption names --resume, never the Python API (issue 16)."""
    from fcinv.dataset.io import DatasetWriter

    real = DatasetWriter.append

    def append(self, *a, **k):
        real(self, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(DatasetWriter, "append", append)
    monkeypatch.chdir(tmp_path)
    assert main([*DS, "--chunk", "64"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "DatasetWriter" not in err and "overwrite=True" not in err
    assert "left as d.h5.partial (continue it with fcinv dataset --resume)" in err
    want = r"fcinv dataset: interrupted; the partial output is kept\. Run the same command with --resume"
    assert re.search(want, err)


def test_n_test_below_10000_samples_warns_of_the_rescaling(tmp_path, monkeypatch, caplog):
    from fcinv.cli import dataset as cli_dataset

    ran = []
    monkeypatch.setattr(cli_dataset, "main", lambda argv: ran.append(argv) or 0)
    monkeypatch.chdir(tmp_path)
    assert main([*DS, "--n-test", "50"]) == 0 and ran
    msgs = [r.getMessage() for r in caplog.records]
    want = r"--n-test 50 is for 10,000 samples: with -n 200 the test split keeps 1"
    assert any(re.search(want, m) for m in msgs)


def test_an_interrupt_while_the_command_loads_is_one_line(monkeypatch, capsys):
    """Ctrl-C during the command's imports (before its work) prints the interrupt line, no traceback."""
    import importlib

    from fcinv.cli import main as cli_main

    real = importlib.import_module

    def slow_import(name, *a, **k):
        if name == "fcinv.cli.fold":
            raise KeyboardInterrupt
        return real(name, *a, **k)

    monkeypatch.setattr(cli_main.importlib, "import_module", slow_import)
    assert main(["fold", "x.h5", "-o", "f.h5"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "fcinv fold: interrupted; no output was written" in err
