"""``fcinv advise``: which goniometer orientation to measure next, and when to stop.

Ranks candidate orientations by the expected reduction of the posterior uncertainty on the named
parameters (default FC0–FC3): Poisson Fisher information of each candidate's folded spectrum
through the physical forward model with that orientation's coverage, the expected counts
(count rate × counting time) and the current answer (θ ± σ, or the training domain when nothing
is measured yet); D-optimal (expected information gain, default) or A-optimal. Prints the ranked
table, draws the predicted σ against beam time (adaptive vs the uniform scan) and applies the stop
rule: σ target reached, or the next hour shrinks the largest σ by less than --min-gain.

Examples
--------
fcinv advise --material Ge --candidates 0:179:2 --counting-time 1.5
fcinv advise --material Ge --candidates 0:89:1 --measured 0,1,2 --answer fcs.json --sigma-target 0.01
fcinv advise --material Ge --candidates 0:179:3 --measured-files run/psi_*.h5 --png advise.png --json
advise.json
fcinv advise --material Ge --candidates 0:179:3 --watch incoming/ --out live.json   # live loop (see infer
--watch)
"""

from __future__ import annotations

import argparse
import glob
import json
from pathlib import Path

import numpy as np

from fcinv.cli._common import command_line
from fcinv.io import write_json


def add_watch_arguments(p: argparse.ArgumentParser, *, inference_options: bool = True) -> None:
    """The live-loop options (shared with ``fcinv infer --watch``, whose parser has --model, --refine and
    --no-corrections already: pass ``inference_options=False`` there)."""
    g = p.add_argument_group("live loop")
    g.add_argument(
        "--watch",
        default=None,
        metavar="DIR",
        help="watch DIR for new orientation volumes (fcinv volume HDF5) and re-infer after each",
    )
    g.add_argument("--pattern", default="*.h5", help="file pattern in DIR (default *.h5)")
    g.add_argument(
        "--out",
        default=None,
        help="answer JSON rewritten atomically after each file (default: live_answer.json here)",
    )
    g.add_argument("--max-files", type=int, default=None, help="stop after this many files")
    g.add_argument(
        "--idle-timeout", type=float, default=None, help="stop when no new file came for this many seconds"
    )
    g.add_argument("--poll", type=float, default=0.25, help="poll interval, s")
    if not inference_options:
        return
    g.add_argument("--model", default="ge", help="ML model to re-infer with (default ge)")
    g.add_argument("--refine", action="store_true", help="refine every answer by the least-squares fit")
    g.add_argument("--no-corrections", action="store_true", help="fold without the one-phonon corrections")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fcinv advise", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--material", default="Ge", help="material (default Ge)")
    p.add_argument(
        "--candidates",
        default="0:179:2",
        help="goniometer angles: start:stop:step or a,b,c (degrees; default 0:179:2)",
    )
    p.add_argument("--counting-time", type=float, default=1.5, help="minutes per orientation (default 1.5)")
    p.add_argument(
        "--count-rate",
        type=float,
        default=1.0,
        help="counts per minute per unit exposure at unit intensity (simulate-experiment's)",
    )
    p.add_argument(
        "--measured", default=None, help="angles already measured (a,b,c), counted at --counting-time each"
    )
    p.add_argument(
        "--measured-files",
        nargs="*",
        default=None,
        help="orientation volumes already measured (fcinv volume HDF5; globs allowed)",
    )
    p.add_argument(
        "--answer",
        default=None,
        metavar="JSON",
        help="current answer θ ± σ (fcinv infer --json, or {name: [theta, sigma]})",
    )
    p.add_argument("--names", default=None, help="parameters to steer on, comma-separated (default FC0–FC3)")
    p.add_argument(
        "--shells",
        type=int,
        default=None,
        help="shells of the parameter space to steer in: 0 = the ML model's own; default: the space of "
        "--answer, else the last space the material's refinement continues into (Ge: 11 shells)",
    )
    p.add_argument(
        "--criterion",
        choices=("D", "A"),
        default="D",
        help="D: expected information gain (default); A: mean variance reduction",
    )
    p.add_argument(
        "--sigma-target",
        type=float,
        default=None,
        help="σ target: fraction of |θ| (default) or eV/Å² with --absolute",
    )
    p.add_argument("--absolute", action="store_true", help="--sigma-target is in eV/Å²")
    p.add_argument(
        "--min-gain",
        type=float,
        default=0.05,
        help="stop when the next hour shrinks the largest σ by less than this fraction",
    )
    p.add_argument("--hours", type=float, default=2.0, help="forecast horizon (hours of beam time)")
    p.add_argument("--ei", type=float, default=40.0, help="incident energy, meV")
    p.add_argument("--temperature", type=float, default=5.0, help="sample temperature, K")
    p.add_argument("--rows", type=int, default=10, help="rows of the ranked table")
    p.add_argument("--json", default=None, help="write the advice here")
    from fcinv.cli._common import add_plot_args

    add_plot_args(
        p, default=True, png_help="figure of predicted σ against beam time (default advise_forecast.png)"
    )
    add_watch_arguments(p)
    return p


def read_answer(path: str | None) -> tuple[dict, dict]:
    """θ and σ by name from ``fcinv infer --json`` (refined if present, else ML) or ``{name: [θ, σ]}``."""
    if not path:
        return {}, {}
    from fcinv.errors import describe_exception, json_kind
    from fcinv.steering.design import SteeringError

    p = Path(path)
    if not p.is_file():
        raise SteeringError(f"answer file '{p}' does not exist. Pass fcinv infer --json output.")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SteeringError(
            f"answer file '{p}' is not valid JSON ({describe_exception(exc)}). Pass fcinv infer --json "
            "output."
        ) from None
    if not isinstance(doc, dict):
        raise SteeringError(
            f"answer file '{p}' holds a JSON {json_kind(doc)}, not an object. Pass fcinv infer --json "
            "output or {name: [theta, sigma]}."
        )
    block = next((doc[k] for k in ("refined", "ml", "answer") if isinstance(doc.get(k), dict)), doc)
    th, sg = {}, {}
    for n, v in block.items():
        pair = [v.get("theta"), v.get("sigma", np.nan)] if isinstance(v, dict) and "theta" in v else v
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            continue
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair):
            raise SteeringError(
                f"answer file '{p}': '{n}' is {json.dumps(v)[:40]}, not [theta, sigma] numbers. Pass "
                "fcinv infer --json output or {name: [theta, sigma]}."
            )
        th[n], sg[n] = float(pair[0]), float(pair[1])
    if not th:
        raise SteeringError(
            f"answer file '{p}' holds no θ by name. Pass fcinv infer --json output or {{name: [theta, "
            "sigma]}."
        )
    return th, sg


def steering_shells(material: str, shells: int | None, theta: dict) -> int | None:
    """The shell count of the space to steer in (None: the model's own space).

    ``shells`` 0 → the model's own; a positive count → that space; None → the smallest space the
    material's refinement continues into that holds every name of the answer ``theta``, else (no
    answer, or one in the model's own space) the last space it continues into: the space the
    refinement's answer ends in, where the steering refit works (:mod:`fcinv.steering.refit`).
    """
    from fcinv.crystal import material_info
    from fcinv.reference import load_reference, shell_count
    from fcinv.steering.design import SteeringError

    own = load_reference(material)
    n_own = shell_count(own.space)
    if shells is not None:
        if shells < 0:
            raise SteeringError(f"--shells {shells}; pass 0 (the model's own space) or a shell count.")
        return None if shells in (0, n_own) else int(shells)
    raw = material_info(material).get("refine_shells") or ()
    cont = sorted(int(n) for n in (raw if isinstance(raw, (list, tuple)) else [raw]) if int(n) > n_own)
    if not cont:
        return None
    extra = [n for n in theta if n not in own.sampled]
    if extra:
        for n in cont:
            if all(k in load_reference(material, n).sampled for k in theta):
                return n
        raise SteeringError(
            f"the answer names {extra[:3]} that no space of {material}'s refinement ({cont} shells) holds. "
            "Pass --shells N for the answer's space."
        )
    return cont[-1]


def print_advice(adv: dict, target) -> None:
    names = adv["names"]
    print(
        f"criterion: {adv['criterion']}; {adv['counting_time_min']:g} min per orientation; measured so far: "
        + (
            ", ".join(adv["measured"])
            if adv["measured"]
            else "nothing (prior: the training domain or the given answer)"
        )
    )
    print("  now σ: " + "  ".join(f"{n} {s:.4f}" for n, s in adv["stop"]["sigma_now"].items()) + "  eV/Å²")
    head = f"  {'rank':>4} {'ψ (°)':>7} {'gain':>8}  " + " ".join(f"{'σ ' + n:>11}" for n in names)
    print(head)
    for r in adv["next"]:
        print(
            f"  {r['rank']:>4} {r['psi_deg']:>7.1f} {r['gain']:>8.4f}  "
            + " ".join(f"{r['sigma_after'][n]:>11.4f}" for n in names)
        )
    f = adv["forecast"]
    if target is not None:
        print(
            f"forecast to the target: adaptive {f['adaptive_minutes_to_target']:.0f} min, uniform scan "
            f"{f['uniform_minutes_to_target']:.0f} min"
        )
    s = adv["stop"]
    print(
        f"{'STOP' if s['stop'] else 'CONTINUE'}: {s['reason']} "
        f"(next hour: largest σ shrinks by {100 * s['gain_next_hour']:.1f} %)"
    )


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    import logging

    from fcinv.reference import load_reference
    from fcinv.steering.advise import Advisor, plot_forecast

    logging.getLogger("fcinv.forward.physical").setLevel(
        logging.WARNING
    )  # one INFO line per candidate otherwise
    from fcinv.steering.candidates import parse_angles

    psi = parse_angles(args.candidates)
    theta, sigma = read_answer(args.answer)
    own = load_reference(args.material)
    n_shells = steering_shells(args.material, args.shells, theta)
    ref = own if n_shells is None else load_reference(args.material, n_shells)
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    measured = parse_angles(args.measured) if args.measured else np.zeros(0)
    missing = [float(a) for a in measured if not np.any(np.abs(psi - a) < 1e-6)]
    if missing:
        from fcinv.steering.design import SteeringError

        raise SteeringError(
            f"measured angles {missing} are not among the candidates {args.candidates}; "
            "pass them as --measured-files volumes, or use candidates that include them."
        )
    from fcinv.reference import shell_count

    print(
        f"fcinv advise: {ref.material}, {len(psi)} candidate orientations ({psi.min():g}..{psi.max():g}°), "
        f"{shell_count(ref.space)}-shell space ({len(ref.sampled)} parameters), linearising the physical "
        "model ..."
    )
    adv = Advisor(
        ref,
        psi,
        counting_time=args.counting_time,
        count_rate=args.count_rate,
        theta=theta,
        sigma=sigma,
        names=names,
        ei=args.ei,
        temperature=args.temperature,
        criterion=args.criterion,
    )
    for a in measured:
        adv.add_measured_psi(float(a))
    files = []
    for pat in args.measured_files or []:
        files += sorted(glob.glob(pat)) or [pat]
    if files:
        from fcinv.steering.watch import read_volume

        for f in files:
            adv.add_measured_volume(read_volume(Path(f)), name=Path(f).name)
    if args.watch:
        return run_watch(args, advisor=adv, ref=own)
    target = adv.target_abs(args.sigma_target, relative=not args.absolute)
    res = adv.advice(
        sigma_target=args.sigma_target,
        relative=not args.absolute,
        min_gain_per_hour=args.min_gain,
        n_rows=args.rows,
        hours=args.hours,
    )
    print_advice(res, target)
    if args.json:
        res["command"] = command_line()
        write_json(args.json, res)
        print(f"wrote {args.json}")
    from fcinv.cli._common import plot_wanted

    if plot_wanted(args):
        png = args.png or "advise_forecast.png"
        plot_forecast(
            png,
            res,
            target=target,
            title=f"{ref.material}: predicted σ against beam time ({args.criterion}-optimal vs uniform)",
        )
        print(f"wrote {png}")
    return 0


def run_watch(args, *, advisor=None, ref=None) -> int:
    """``--watch DIR``: the live loop (:func:`fcinv.steering.watch.watch`), also for ``infer --watch``."""
    from fcinv.experiment.fold import Corrections
    from fcinv.inference import load_model
    from fcinv.reference import load_reference
    from fcinv.steering.watch import watch

    predictor = load_model(args.model)
    material = getattr(args, "material", None) or predictor.grid.material or str(args.model)
    ref = ref or load_reference(material)
    refine_model = ref.forward_model(free=list(predictor.names), grid=predictor.grid) if args.refine else None
    corr = (
        None
        if args.no_corrections
        else Corrections(bose_temperature=getattr(args, "temperature", 5.0), q2=True, energy=True)
    )
    out = args.out or "live_answer.json"

    def show(up) -> None:
        ans = "  ".join(f"{n} {t:.4f}±{s:.4f}" for n, t, s in list(zip(up.names, up.theta, up.sigma))[:4])
        nxt = ""
        if up.advice:
            nxt = f"; next ψ = {up.advice['next'][0]['psi_deg']:g}°" + (
                " (STOP)" if up.advice["stop"]["stop"] else ""
            )
        print(
            f"[{up.n_files}] {up.files[-1]}: {ans} ({up.sigma_source}); adequacy: "
            f"{up.adequacy['reason']}{nxt}; {up.seconds['total']:.2f} s",
            flush=True,
        )

    state = watch(
        args.watch,
        crystal=ref.crystal,
        grid=predictor.grid,
        predictor=predictor,
        out=out,
        pattern=args.pattern,
        corrections=corr,
        refine_model=refine_model,
        advisor=advisor,
        poll_s=args.poll,
        max_files=args.max_files,
        idle_timeout_s=args.idle_timeout,
        on_update=show,
    )
    print(f"watched {len(state.seen)} files; last answer in {out}")
    return 0
