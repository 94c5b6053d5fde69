"""Per-stage figures of a continued refinement for ``experiment_inversion.py``.

Every stage of :func:`fcinv.fitting.continuation.refine_in_shells` (5 shells → … → a supercell's
Wigner–Seitz space) is compared with the truth's projection onto *that stage's own* space, and the
data-only space rule (:func:`fcinv.fitting.continuation_select.choose_stage`) is applied to the
trusted stages whether or not the refinement used it, so one run shows what it would pick.
"""

from __future__ import annotations

from collections.abc import Callable


def stage_reference(label):
    """The embedded Ge reference of a stage label (a shell count or ``"AxBxC"``)."""
    from fcinv.reference import load_reference

    return load_reference("Ge", supercell=label) if isinstance(label, str) else load_reference("Ge", label)


def stage_figures(stages: list[dict], fc03: list[str], project: Callable, dispersion: Callable) -> dict:
    """Per stage: FC0–FC3 relative error against the truth's projection onto the stage's space, error /
    Laplace σ, dispersion rms (path, mesh; THz) and the move from the stage it started from, in σ; plus
    the space rule's steps and choice over the trusted stages.

    Parameters
    ----------
    stages
        ``extra["stages"]`` of the refinement (with ``theta`` and ``sigma`` by name).
    fc03
        The four parameters reported.
    project
        ``project(ref) -> dict``: the truth's projection onto a reference's space, by name.
    dispersion
        ``dispersion(ref, theta) -> (path_rms, mesh_rms)`` against the truth's own dispersion.
    """
    from fcinv.fitting.continuation_select import BIC_RULE, SELECT_RULE, choose_stage, choose_stage_bic

    rows, by_label = [], {}
    for st in stages:
        prev = by_label.get(st.get("from"))
        row = {k: st.get(k) for k in ("shells", "n_params", "chi2_dof", "wall_s", "success", "selected")}
        if "theta" in st and st.get("success"):
            ref = stage_reference(st["shells"])
            tr = project(ref)
            th, sg = st["theta"], st["sigma"]
            row["rel_err"] = {n: abs(th[n] - tr[n]) / abs(tr[n]) for n in fc03}
            row["n_sigma"] = {n: abs(th[n] - tr[n]) / sg[n] if sg.get(n) else float("inf") for n in fc03}
            row["disp_rms_THz"], row["mesh_rms_THz"] = dispersion(ref, {n: th[n] for n in ref.space.names})
            if prev is not None:
                row["move_sigma"] = {n: abs(th[n] - prev["theta"][n]) / sg[n] for n in fc03 if sg.get(n)}
            by_label[st["shells"]] = st
        row["from"] = st.get("from")
        rows.append(row)
    trusted = sorted(
        (st for st in stages if st.get("success") and "theta" in st), key=lambda st: st["n_params"]
    )
    k, steps = choose_stage(trusted) if len(trusted) > 1 else (0, [])
    kb, bic = choose_stage_bic(trusted)
    return {
        "rows": rows,
        "rule": SELECT_RULE,
        "rule_picks": trusted[k]["shells"],
        "rule_steps": steps,
        "bic_rule": BIC_RULE,
        "bic": {str(st["shells"]): b for st, b in zip(trusted, bic)},
        "bic_picks": trusted[kb]["shells"],
    }


def print_stages(fig: dict, fc03: list[str]) -> None:
    """The stage table and the space rule's steps."""
    print(
        "    stage      params chi2/dof   wall  FC0-FC3 vs the truth's projection onto the stage's space (%)"
        "  |err|/sigma_Laplace        dispersion path/mesh (THz)  FC0-FC3 move from its start stage / sigma"
    )
    for r in fig["rows"]:
        if "rel_err" not in r:
            print(f"    {r['shells']!s:<10} {r['n_params']:>6}  not trusted")
            continue
        mv = r.get("move_sigma")
        print(
            f"    {r['shells']!s:<10} {r['n_params']:>6} {r['chi2_dof']:>8.3f} {r['wall_s']:>5.0f}s  "
            + ", ".join(f"{100 * r['rel_err'][n]:5.1f}" for n in fc03)
            + "   "
            + ", ".join(f"{r['n_sigma'][n]:5.1f}" for n in fc03)
            + f"   {r['disp_rms_THz']:.4f} / {r['mesh_rms_THz']:.4f}   "
            + (f"from {r['from']}: " + ", ".join(f"{mv[n]:5.1f}" for n in fc03) if mv else "-")
            + ("   <- returned" if r.get("selected") else "")
        )
    for s in fig["rule_steps"]:
        gain = "n/a" if s["gain"] is None else f"{s['gain']:.1f}"
        print(
            f"    rule step {s['from']} -> {s['to']}: +{s['added_params']} parameters, scaled deviance drop "
            f"{gain} (chance allows {s['allowed']:.1f}: {'' if s['significant'] else 'not '}significant), "
            f"largest move {s['max_move_sigma']:.2f} sigma ({s['worst']}) -> "
            + ("settled" if s["settled"] else "continue")
        )
    print(f"    data-only space rule ({fig['rule']}): picks {fig['rule_picks']}")
    print(
        "    BIC: "
        + ", ".join(f"{k} {v:.1f}" for k, v in fig["bic"].items() if v is not None)
        + f" -> picks {fig['bic_picks']} ({fig['bic_rule']})"
    )


def supercell_moves(stages: list[dict], fc03: list[str]) -> list[dict]:
    """The systematic of the supercell choice: between successive trusted supercell stages, each of
    FC0–FC3's move and the largest move of any shared parameter, in the larger stage's Laplace σ."""
    sc = [st for st in stages if isinstance(st["shells"], str) and st.get("success") and "theta" in st]
    out = []
    for a, b in zip(sc, sc[1:]):
        mv = {n: abs(b["theta"][n] - a["theta"][n]) / b["sigma"][n] for n in a["theta"] if b["sigma"].get(n)}
        worst = max(mv, key=mv.get)
        out.append(
            {
                "from": a["shells"],
                "to": b["shells"],
                "fc03": {n: mv[n] for n in fc03},
                "worst": worst,
                "max": mv[worst],
                "abs": {n: b["theta"][n] - a["theta"][n] for n in fc03},
            }
        )
    return out


def print_supercell_moves(moves: list[dict], fc03: list[str]) -> None:
    """One line per pair of supercell stages."""
    for m in moves:
        print(
            f"    supercell systematic {m['from']} -> {m['to']}: FC0-FC3 move "
            + ", ".join(f"{m['abs'][n]:+.4f} eV/A^2 ({m['fc03'][n]:.1f} sigma)" for n in fc03)
            + f"; largest of all shared parameters {m['max']:.1f} sigma ({m['worst']})"
        )
