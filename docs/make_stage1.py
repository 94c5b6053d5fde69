"""Generate docs/stage1.md and its figures from the embedded Stage I data.

    python docs/make_stage1.py            # writes docs/stage1.md and docs/figures/stage1_*.png

Reads only committed files (``src/fcinv/data/<Mat>/ensemble.json``, ``provenance.json``)
and, for the DFT comparison, ``../shared/data/ge_dft_pathsqe`` when it is there; it needs
neither chgnet nor sevenn. Regenerate the data itself with ``fcinv reference Ge`` /
``fcinv reference Nb`` (the [mlff] extra).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
FIGS = DOCS / "figures"
DFT_DIR = (REPO / ".." / "shared" / "data" / "ge_dft_pathsqe").resolve()
MATERIALS = ("Ge", "Nb")

# measured frequencies (THz) beside the members', by point and column
MEASURED = {
    "Ge": {
        ("Γ", "O"): 9.1,
        ("X", "TA"): 2.4,
        ("X", "LA"): 7.2,
        ("X", "LO"): 7.2,
        ("X", "TO"): 8.3,
        ("L", "TA"): 1.9,
    },
    "Nb": {("H", "all"): 6.49, ("N", "1"): 3.93, ("N", "2"): 5.07, ("N", "3"): 5.66, ("P", "all"): 5.04},
}
COLUMNS = {
    "Ge": [
        ("Γ", "O"),
        ("X", "TA"),
        ("X", "LA"),
        ("X", "LO"),
        ("X", "TO"),
        ("L", "TA"),
        ("L", "LA"),
        ("L", "LO"),
        ("L", "TO"),
    ],
    "Nb": [("H", "all"), ("N", "1"), ("N", "2"), ("N", "3"), ("P", "all")],
}


def column_value(point: dict, col: str) -> float | None:
    """A table cell from a point record: the mean of the modes labelled ``col``, the mean of all
    (``"all"``, for a triply degenerate point), or the n-th lowest mode (``"1"``, ``"2"``...)."""
    f = np.asarray(point["freqs_THz"], float)
    if col == "all":
        return float(f.mean())
    if col.isdigit():
        return float(np.sort(f)[int(col) - 1])
    sel = [x for x, lab in zip(f, point["modes"]) if lab == col]
    return float(np.mean(sel)) if sel else None


def fmt(x: float | None, nd: int = 2) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def load(material: str) -> tuple[dict, dict] | None:
    d = REPO / "src" / "fcinv" / "data" / material
    if not (d / "ensemble.json").is_file():
        return None
    prov = json.loads((d / "provenance.json").read_text()) if (d / "provenance.json").is_file() else {}
    return json.loads((d / "ensemble.json").read_text()), prov


def dft_theta(material: str, names: list[str]) -> dict[str, float] | None:
    """The DFT Ge force constants of ../shared/data projected onto θ (None when absent)."""
    if material != "Ge" or not (DFT_DIR / "FORCE_CONSTANTS").is_file():
        return None
    from fcinv.crystal import Crystal
    from fcinv.fcspace import FCSpace, read_phonopy

    crystal = Crystal.from_name("Ge")
    space = FCSpace.for_material(crystal)
    proj = space.project(read_phonopy(crystal, DFT_DIR / "FORCE_CONSTANTS", DFT_DIR / "POSCAR", [4, 4, 4]))
    if list(proj.names) != list(names):
        raise SystemExit(
            f"the DFT projection has parameters {proj.names}, ensemble.json {names}: regenerate the data with `fcinv reference Ge`."
        )
    return dict(zip(proj.names, proj.theta.tolist())) | {
        "_residual": proj.in_shell_residual,
        "_beyond": proj.beyond_cutoff,
    }


def domain_for(material: str):
    """The training domain over every parameter (ranked), as ``fcinv dataset`` samples it."""
    from fcinv.dataset.generate import DEFAULT_WIDEN
    from fcinv.reference import load_reference

    return load_reference(material).domain(), DEFAULT_WIDEN


def tail_cost(shells=(3, 4, 5, 6, 7, 8), n_mesh: int = 200) -> list[dict] | None:
    """THz rms of the DFT Ge set's projection (zero tail, or the reference member's tail) against the full set.

    On the default path and on ``n_mesh`` random full-zone q-points (seed 1), for each shell count.
    """
    if not (DFT_DIR / "FORCE_CONSTANTS").is_file():
        return None
    from fcinv.crystal import default_grid
    from fcinv.evaluation.dft import THZ_TO_MEV, read_dft_ge
    from fcinv.fcspace import FCSpace
    from fcinv.forward import ForwardModel
    from fcinv.reference import load_reference

    ref = load_reference("Ge")
    pairs = read_dft_ge(DFT_DIR)
    grid = default_grid(ref.crystal)
    qm = np.random.default_rng(1).random((n_mesh, 3))
    rows = []
    for ns in shells:
        sp = FCSpace(ref.crystal, n_shells=ns)
        th = sp.project(pairs).theta
        truth = ForwardModel.from_pairs(sp, grid, pairs)
        ft, ftm = truth.frequencies(truth.theta0)[0], truth.frequencies(truth.theta0, qm)[0]
        zero = ForwardModel(sp, grid, th)
        tail = ForwardModel(sp, grid, sp.project(ref.pairs).theta, reference=ref.pairs)

        def rms(a, b):
            return float(np.sqrt(np.mean((a - b) ** 2)) / THZ_TO_MEV)

        rows.append(
            {
                "shells": ns,
                "n_params": sp.n_params,
                "cutoff_A": sp.cutoff,
                "zero_path": rms(zero.frequencies(th)[0], ft),
                "zero_mesh": rms(zero.frequencies(th, qm)[0], ftm),
                "ref_path": rms(tail.frequencies(th)[0], ft),
                "ref_mesh": rms(tail.frequencies(th, qm)[0], ftm),
            }
        )
    return rows


def md_tail(rows: list[dict] | None, out: list[str]) -> None:
    out += [
        "### Beyond the cutoff",
        "",
        (
            "Every parameter inside the cutoff is free; beyond it the force constants are **zero** by default (`tail` = `zero`, "
            "`fcinv.reference`). The alternative keeps the reference member's (7net-0) full set beyond the cutoff in D_ref, as the "
            "paper convention does for everything it does not sample. Cost of each choice on a real crystal: the DFT Ge set "
            "(`../shared/data/ge_dft_pathsqe`, the FORCE_CONSTANTS file as it is) projected onto the parameters of N shells, its "
            "dispersion with either tail against the full file's own dispersion (rms over all branches, THz):"
        ),
        "",
    ]
    if rows is None:
        out += ["(The DFT set is absent here; run with `../shared/data` beside the repository.)", ""]
        return
    out += [
        "| shells | parameters | cutoff (Å) | zero tail, path | zero tail, mesh | 7net-0 tail, path | 7net-0 tail, mesh |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['shells']} | {r['n_params']} | {r['cutoff_A']:.3f} | {r['zero_path']:.3f} | {r['zero_mesh']:.3f} | "
            f"{r['ref_path']:.3f} | {r['ref_mesh']:.3f} |"
        )
    five = next((r for r in rows if r["shells"] == 5), None)
    out += [
        "",
        (
            "Path: the default path's q-points; mesh: 200 random q in the Brillouin zone (seed 1). "
            + (
                f"At the default 5 shells the zero tail costs {five['zero_path']:.3f} THz on the path against "
                f"{five['ref_path']:.3f} THz with the 7net-0 tail, so zero is the default. "
                if five
                else ""
            )
            + "Both are projections, not fits: a fit of all parameters to the DFT dispersion does better. "
            "`fcinv dataset --shells N` (and `load_reference(material, N)`) moves the cutoff; shells beyond the embedded "
            "ensemble's 5 get bounds from the reference member ± the largest |θ| of the outermost embedded shell, since the "
            "members' own values there are not embedded."
        ),
        "",
    ]


# ----------------------------------------------------------------- figures
def fig_dispersion(material: str, ens: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fcinv.crystal import Crystal, default_grid

    grid = default_grid(Crystal.from_name(material))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    x = np.arange(grid.n_q) + 0.5
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    for k, m in enumerate(ens["members"]):
        if "path_freqs_THz" not in m:
            continue
        f = np.asarray(m["path_freqs_THz"])
        stable = m["status"] == "stable"
        style = {
            "color": colors[k % 10],
            "lw": 1.3 if stable else 0.8,
            "ls": "-" if stable else ":",
            "alpha": 1.0 if stable else 0.7,
        }
        ax.plot(x, f, **style)
        ax.plot([], [], label=m["name"] + ("" if stable else " (dropped)"), **style)
    ticks = list(grid.ticks)
    for t in ticks:
        ax.axvline(t, color="0.7", lw=0.6)
    # measured values at the high-symmetry points
    first = True
    for (lab, col), val in MEASURED[material].items():
        for t, name in zip(ticks, grid.labels):
            if lab in name.split("|"):
                ax.plot(t, val, "k*", ms=9, label="measured" if first else None, zorder=5)
                first = False
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xticks(ticks, list(grid.labels))
    ax.set_xlim(0, grid.n_q)
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"{material}: ensemble members on the default path (a = {ens['structure_a_A']:.4f} Å)")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_sensitivity(material: str, ens: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ens["sensitivity"]["rows"]
    k = ens["top_k"]
    names = [r["name"] for r in rows]
    s = np.array([r["S_image"] for r in rows])
    srange = np.array([r["S_range"] for r in rows])
    frms = np.array([r["freq_rms_meV"] for r in rows])
    fig, ax = plt.subplots(figsize=(9, 4))
    x = np.arange(len(rows))
    ax.bar(
        x,
        s,
        color=["tab:blue" if i < k else "0.7" for i in x],
        label=f"S_p (first order; top {k} sampled, blue)",
    )
    ax.plot(x, srange, "o", color="tab:orange", ms=4, label="S_range (finite move min→max)")
    ax.set_yscale("log")
    ax.set_ylabel("relative rms change of I(q, E)")
    ax.set_xticks(x, [f"{n}\nFC{i}" if i < k else n for i, n in enumerate(names)], rotation=60, fontsize=7)
    ax2 = ax.twinx()
    ax2.plot(x, frms, "k_", ms=10, mew=2, label="rms Δ energy min→max (meV, right)")
    ax2.set_yscale("log")
    ax2.set_ylabel("rms Δ energy (meV)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    ax.set_title(
        f"{material}: sensitivity of I(q, E) to each parameter over its ensemble range (reference {ens['reference_member']['name']})"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fig_domain(material: str, ens: dict, domain, dft: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(domain.names)
    members = {m["name"]: m["projection"]["theta"] for m in ens["members"] if "projection" in m}
    fig, axes = plt.subplots(len(names), 1, figsize=(8, 0.75 * len(names) + 1.0))
    for i, (ax, n) in enumerate(zip(np.atleast_1d(axes), names)):
        lo, hi = ens["bounds"]["lower"][n], ens["bounds"]["upper"][n]
        ax.axvspan(domain.low[i], domain.high[i], color="tab:blue", alpha=0.15, label="sampled domain")
        ax.axvspan(lo, hi, color="tab:blue", alpha=0.4, label="ensemble range (stable)")
        for mname, th in members.items():
            stable = mname in ens["stable_members"]
            ax.plot(
                th[n],
                0,
                "o" if stable else "x",
                color="k" if stable else "0.5",
                ms=4,
                label=("stable member" if stable else "dropped member"),
            )
        ax.plot(
            ens["theta_ref"][n],
            0,
            "*",
            color="tab:green",
            ms=11,
            label=f"reference ({ens['reference_member']['name']})",
        )
        if dft is not None:
            ax.plot(dft[n], 0, "D", color="tab:red", ms=6, label="DFT (pathSQE)")
        ax.set_yticks([])
        ax.set_ylabel(f"FC{i}\n{n}", rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        if i == 0:
            handles, labels = ax.get_legend_handles_labels()
            uniq = dict(zip(labels, handles))
            ax.legend(
                uniq.values(), uniq.keys(), fontsize=6, ncol=3, loc="lower left", bbox_to_anchor=(0, 1.05)
            )
    np.atleast_1d(axes)[-1].set_xlabel("eV/Å²")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------- markdown
def md_material(material: str, ens: dict, prov: dict, out: list[str]) -> None:
    sc = ens["settings"]["supercell_matrix"]
    sc_txt = (
        "×".join(str(sc[i][i]) for i in range(3))
        if all(sc[i][j] == 0 for i in range(3) for j in range(3) if i != j)
        else str(sc)
    )
    out += [f"## {material}", ""]
    out += [
        f"Command: `{ens['command']}` (fcinv {ens['fcinv_version']}, {ens['created']}). "
        f"Force constants by phonopy finite displacements, supercell {sc_txt} of the primitive cell, "
        f"displacement {ens['settings']['displacement_A']} Å, at the structure file's lattice constant a = {ens['structure_a_A']:.4f} Å"
        + (" relaxed per member" if ens.get("relax") else "")
        + ". "
        f"Stability: imaginary if below −{ens['settings']['imag_tol_THz']} THz on the path bins and points or on a Γ-centred "
        f"{'×'.join(map(str, ens['settings']['stability_mesh']))} mesh.",
        "",
    ]
    cols = COLUMNS[material]
    head = (
        "| member | package | a (Å) | status | "
        + " | ".join(f"{p} {c if c not in ('all',) else ''}".strip() for p, c in cols)
        + " | wall (s) |"
    )
    out += [head, "|" + "---|" * (len(cols) + 5)]
    meas = MEASURED[material]
    out.append(
        "| **measured** | | | | "
        + " | ".join(f"**{fmt(meas.get(c))}**" if c in meas else "" for c in cols)
        + " | |"
    )
    for m in ens["members"]:
        pkg = f"{m['member']['package']} {m['member']['package_version']}"
        if m["summary"] is None:
            out.append(
                f"| {m['name']} | {pkg} | – | failed | "
                + " | ".join("–" for _ in cols)
                + f" | {m['wall_s']:.1f} |"
            )
            continue
        pts = m["summary"]["points"]
        cells = [fmt(column_value(pts[p], c)) for p, c in cols]
        out.append(
            f"| {m['name']} | {pkg} | {m['lattice_a_A']:.4f} | {m['status']} | "
            + " | ".join(cells)
            + f" | {m['wall_s']:.1f} |"
        )
    out += [
        "",
        "Frequencies in THz. Mode labels come from the eigenvectors (longitudinal: more than half of the weight along q; the lowest transverse pair and the lowest longitudinal mode are acoustic).",
    ]
    if material == "Nb":
        out[-1] += " H and P are triply degenerate (mean shown); N lists the three modes from the lowest."
    dropped = ens.get("dropped", [])
    out += [
        "",
        "**Dropped / skipped members:** "
        + ("; ".join(f"`{d['name']}` ({d['status']}): {d['reason']}" for d in dropped) if dropped else "none")
        + ".",
        "",
    ]
    out += [f"![{material} dispersions](figures/stage1_dispersion_{material}.png)", ""]

    conv = (prov.get("convergence") or {}).get("studies", [])
    if conv:
        out += [
            "### Convergence of the path frequencies",
            "",
            "Largest |Δν| over the default path (all bins, branches and high-symmetry points) against the reference setting (largest supercell, first displacement):",
            "",
            "| member | supercell | atoms | displacement (Å) | max abs Δν (THz) | wall (s) |",
            "|---|---|---|---|---|---|",
        ]
        for st in conv:
            for r in st["rows"]:
                out.append(
                    f"| {st['member']} | {r['supercell'][0][0]}×{r['supercell'][1][1]}×{r['supercell'][2][2]} | {r['n_atoms']} | {r['displacement_A']} | {r['max_abs_dTHz']:.3f} | {r['wall_s']:.1f} |"
                )
        out.append("")
        notes = []
        for st in conv:
            at_default = [
                r
                for r in st["rows"]
                if r["supercell"] == sc and r["displacement_A"] == ens["settings"]["displacement_A"]
            ]
            if at_default and at_default[0] is not st["reference"] and at_default[0] != st["reference"]:
                notes.append(
                    f"with {st['member']}, the default setting is {at_default[0]['max_abs_dTHz']:.3f} THz from the reference"
                )
            same_sc = [r for r in st["rows"] if r["supercell"] == st["reference"]["supercell"]]
            worst = max(same_sc, key=lambda r: r["max_abs_dTHz"])
            if worst["max_abs_dTHz"] > 0.05:
                notes.append(
                    f"{st['member']} depends on the displacement beyond 0.05 THz ({worst['max_abs_dTHz']:.2f} THz at {worst['displacement_A']} Å against "
                    f"{st['reference']['displacement_A']} Å): its force constants keep changing with the displacement instead of settling as it shrinks "
                    "(the forces are not smooth about the perfect crystal); the default displacement is kept and the member's values carry this uncertainty"
                )
        if notes:
            out += ["Notes: " + "; ".join(notes) + ".", ""]

    ref = ens["reference_member"]
    out += [
        "### Reference member",
        "",
        f"**{ref['name']}**: {ref['rule']}. Rms distance to the median (THz): "
        + ", ".join(
            f"{n} {d:.2f}" for n, d in sorted(ref["rms_distance_to_median_THz"].items(), key=lambda kv: kv[1])
        )
        + ".",
        "",
    ]

    names = ens["space"]["names"]
    theta_members = [m for m in ens["members"] if "projection" in m]
    out += [
        "### θ per member (eV/Å²)",
        "",
        (
            f"Cutoff {ens['space']['cutoff_A']:.3f} Å, {len(names)} parameters. "
            "Residuals: the part of the member's force constants inside the cutoff that the symmetric basis cannot hold (in-shell), "
            "and the relative weight of the force constants beyond the cutoff (zero in the all-parameter models; the paper convention keeps the reference member's)."
        ),
        "",
        "| member | " + " | ".join(names) + " | in-shell | beyond cutoff |",
        "|" + "---|" * (len(names) + 3),
    ]
    for m in theta_members:
        th = m["projection"]["theta"]
        tag = m["name"] + ("" if m["status"] == "stable" else " (dropped)")
        out.append(
            f"| {tag} | "
            + " | ".join(f"{th[n]:.3f}" for n in names)
            + f" | {m['projection']['in_shell_residual']:.1e} | {m['projection']['beyond_cutoff']:.3f} |"
        )
    out.append("")

    out += [
        "### Sensitivity and the sampled parameters",
        "",
        ens["sensitivity"]["measure"] + ".",
        "",
        "| rank | name | S_p | S_range | rms Δ energy (meV) | max Δ energy (meV) | rms Δν (THz) | ensemble min | ensemble max | imaginary at an end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ens["sensitivity"]["rows"]:
        lab = f"FC{r['rank']}"
        out.append(
            f"| {lab} | {r['name']} | {r['S_image']:.3f} | {r['S_range']:.3f} | {r['freq_rms_meV']:.2f} | {r['freq_max_meV']:.2f} | {r['freq_rms_THz']:.3f} | {r['lower']:.4f} | {r['upper']:.4f} | {'yes' if r['unstable_at_an_end'] else ''} |"
        )
    shipped = (
        "predicted by the shipped all-parameter `ge` model"
        if material == "Ge"
        else "(the shipped `nb` model is still the 8-parameter paper-convention model: it was not retrained for lack of CPU time)"
    )
    out += [
        "",
        f"Every one of the {len(ens['sensitivity']['rows'])} parameters is sampled by `fcinv dataset` and {shipped}, "
        "labelled FC0, FC1, ... in this order: the ranking orders and reports, it freezes nothing. "
        f"The paper convention (`fcinv dataset --top-k {ens['top_k']}`, the `{material.lower()}-paper` model) sampled only "
        + ", ".join(f"{s['label']} = `{s['name']}`" for s in ens["sampled"])
        + f" and held the other {len(ens['fixed'])} at the reference member's values.",
        "",
        f"![{material} sensitivity](figures/stage1_sensitivity_{material}.png)",
        "",
    ]


def md_domain(material: str, ens: dict, domain, widen, dft: dict | None, out: list[str]) -> None:
    out += [
        "### Sampled domain",
        "",
        (
            f"From `fcinv.dataset.generate.widened_domain` over every parameter: the ensemble range [min, max] over **every stable member** "
            f"(r = max − min), widened by {widen[0]:.0%}·r towards zero and {widen[1]:.0%}·r away from zero, the side given by the reference "
            "value's sign (see that module). No parameter is held at one member's value."
        ),
        "",
    ]
    head = "| FC | name | ensemble min | ensemble max | reference | domain low | domain high |"
    sep = "|---|---|---|---|---|---|---|"
    if dft is not None:
        head += " DFT | DFT position (0 = low, 1 = high) | DFT inside |"
        sep += "---|---|---|"
    out += [head, sep]
    outside = []
    for i, n in enumerate(domain.names):
        row = f"| FC{i} | {n} | {ens['bounds']['lower'][n]:.4f} | {ens['bounds']['upper'][n]:.4f} | {ens['theta_ref'][n]:.4f} | {domain.low[i]:.4f} | {domain.high[i]:.4f} |"
        if dft is not None:
            pos = (dft[n] - domain.low[i]) / (domain.high[i] - domain.low[i])
            inside = 0 <= pos <= 1
            if not inside:
                outside.append(n)
            row += f" {dft[n]:.4f} | {pos:.2f} | {'yes' if inside else '**no**'} |"
        out.append(row)
    out.append("")
    if dft is not None:
        out.append(
            f"DFT set: `../shared/data/ge_dft_pathsqe` (4×4×4 supercell, a = 5.646 Å), projected onto θ (in-shell residual {dft['_residual']:.1e}, beyond-cutoff weight {dft['_beyond']:.3f}). "
        )
        if outside:
            out[-1] += (
                f"**The DFT value lies outside the sampled domain for {', '.join('`' + n + '`' for n in outside)}**: the paper's widening does not reach it there."
            )
        else:
            out[-1] += (
                f"The DFT value of every one of the {len(domain.names)} parameters lies inside the domain."
            )
        out.append("")
    out += [f"![{material} domain](figures/stage1_domain_{material}.png)", ""]


def main() -> int:
    FIGS.mkdir(parents=True, exist_ok=True)
    out = [
        "# Stage I: the force-field ensemble, sensitivity ranking and sampled domain",
        "",
        (
            "Generated by `python docs/make_stage1.py` from the embedded data (`src/fcinv/data/<Mat>/ensemble.json`, `provenance.json`), "
            "which `fcinv reference Ge` / `fcinv reference Nb` regenerate. Do not edit by hand."
        ),
        "",
        (
            "The ensemble is every universal force field whose weights ship inside its PyPI package: CHGNet 0.3.0, 0.2.0 and r2scan (chgnet 0.4.2) "
            "and SevenNet 7net-0, 7net-0_22may2024, 7net-l3i5 and 7net-mf-0 with its PBE and R2SCAN heads (sevenn 0.13.0). "
            "MACE, M3GNet and MatterSim weights do not ship; they join only as a weight file passed by path (`--members mace:/path/to/model`), and were not run here."
        ),
        "",
    ]
    for material in MATERIALS:
        loaded = load(material)
        if loaded is None:
            out += [f"## {material}", "", f"No embedded data yet: run `fcinv reference {material}`.", ""]
            continue
        ens, prov = loaded
        md_material(material, ens, prov, out)
        dft = dft_theta(material, ens["space"]["names"])
        domain, widen = domain_for(material)
        md_domain(material, ens, domain, widen, dft, out)
        if material == "Ge":
            md_tail(tail_cost(), out)
        else:
            out += [
                (
                    "Shells: Nb keeps 5 shells (13 parameters) by default. Its literature Born–von Kármán fits use 8; "
                    "`fcinv dataset --material Nb --shells 8` builds that space (23 parameters) from the embedded reference member's "
                    "FC set, but the ensemble's per-member values, and so real ensemble bounds, exist only for the first 5 shells: "
                    "making 8 the default needs `fcinv reference Nb` rerun at 8 shells (seven force fields on the 8×8×8 supercell), "
                    "which did not fit in this session's CPU time."
                ),
                "",
            ]
        fig_dispersion(material, ens, FIGS / f"stage1_dispersion_{material}.png")
        fig_sensitivity(material, ens, FIGS / f"stage1_sensitivity_{material}.png")
        fig_domain(material, ens, domain, dft, FIGS / f"stage1_domain_{material}.png")
    (DOCS / "stage1.md").write_text("\n".join(out).rstrip() + "\n")
    print(f"wrote {DOCS / 'stage1.md'} and {len(list(FIGS.glob('stage1_*.png')))} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
