"""The report of the closed-loop steering benchmark (``benchmarks/steering.py``): the summary above its
RESULT line, the per-repeat table of beam times, and the figure (also of several runs' JSON merged)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fcinv.steering.beamtime import BeamtimeRatio, beamtime_ratio, median_interval


def summarize(results, names, truth_by_name, args, t_first=None) -> str:
    """Print the summary of the repeats (also of several runs' JSON merged); return the RESULT line."""
    from collections import Counter

    rr = [r["ratio"] for r in results if "ratio" in r]
    ad = [r for r in results if r["kind"] == "adaptive"]
    uni = [r for r in results if r["kind"] == "uniform"]

    def at_target(r):
        """The refit at the adaptive target, else the last trusted refit (None: no trusted refit)."""
        hit = [x for x in r["history"] if x["trusted"] and x["below_target"]]
        tr = [x for x in r["history"] if x["trusted"]]
        return hit[0] if hit else (tr[-1] if tr else None)

    at = [at_target(r) for r in ad]
    eos = np.concatenate([x["err_over_sigma"] for x in at if x is not None] or [[np.nan]])
    old_at = [r["history"][-1] for r in ad]  # the old definition: the last refit, trusted or not
    eos_old = np.concatenate([x["err_over_sigma"] for x in old_at])
    print(
        f"adaptive_err_over_sigma from {sum(x is not None for x in at)} of {len(ad)} repeats (at the target, "
        "else the last trusted refit; repeats without a trusted refit have no trusted σ and are left out); "
        f"old definition (last refit, trusted or not): median {np.nanmedian(eos_old):.2f} "
        f"({int(np.isnan(eos_old).sum())} of {len(eos_old)} values NaN: untrusted fits without a σ)"
    )
    upd = np.concatenate([r["update_s"] for r in results])
    refit_s = np.concatenate([r["refit_s"] for r in results if r["refit_s"]] or [[np.nan]])
    own = [x for r in results for x in r["history"][1:] if not x["reused"]]
    n_tr = sum(x["trusted"] for x in own)
    why = Counter(" + ".join(_reasons(x["why"])) for x in own if not x["trusted"])
    print(
        f"refits (not counting the replayed ones): {len(own)}, trusted {n_tr}; not trusted because: "
        + "; ".join(f"{v}× [{k}]" for k, v in why.most_common())
    )
    print(
        "spaces of the refits: "
        + str(dict(Counter(x["n_shells"] for x in own)))
        + "; kinds: "
        + str(dict(Counter(x["refit_kind"] for x in own)))
    )
    eos_all = np.concatenate(
        [np.ravel([x["err_over_sigma"] for x in r["history"] if x["trusted"]]) for r in ad] + [[]]
    )
    if len(eos_all):
        print(
            f"adaptive |err|/σ over every trusted refit: median {np.median(eos_all):.2f}, "
            f"90th percentile {np.percentile(eos_all, 90):.2f}"
        )
    last_cut = np.array([r["history"][-1]["sigma_cutoff"] for r in results])
    print(
        "cutoff systematic of the last refit (eV/Å², median over strategies and repeats, FC0–FC3): "
        f"{np.round(np.median(last_cut, axis=0), 4).tolist()}; as % of |θ_true|: "
        f"{np.round(100 * np.median(last_cut, axis=0) / np.abs([truth_by_name[k] for k in names]), 1)}"
    )
    print(
        f"target (trusted refit, σ ≤ {100 * args.target_rel:g} % of |θ̂| on FC0–FC3) reached in "
        f"{sum(r['reached'] for r in ad)}/{len(ad)} adaptive and {sum(r['reached'] for r in uni)}/{len(uni)} "
        f"uniform repeats; adaptive steered {sum(r['sources'].count('steered') for r in ad)} of "
        f"{sum(len(r['sources']) for r in ad)} orientations; median χ²/dof of the last refit "
        f"{np.median([r['history'][-1]['chi2_dof'] for r in results]):.2f}"
    )
    print(f"adaptive orientations (first repeat): {ad[0]['psi_measured']}")
    br = repeat_table(results, names, args)
    lo, hi = median_interval(br)
    kinds = Counter(b.kind for b in br)
    print(
        f"ratios per repeat: {[b.label() for b in br]} ({dict(kinds)}); median over {len(br)} repeats "
        + (
            f"{lo:.2f} ({'all measured' if kinds['measured'] == len(br) else 'the same at any bound'})"
            if lo == hi
            else f"in [{lo:.2f}, {hi:.2f}]"
        )
        + "; the RESULT line gives the low end (a bound taken at its bound, undefined as 0)"
    )
    chi2_table(results)
    print(
        "old definition (any refit's σ below the target, trusted or not; the run before the trust gate): "
        f"beamtime_ratio {np.median([x['ratio_old'] for x in rr]):.2f}, per repeat "
        f"{np.round([x['ratio_old'] for x in rr], 2).tolist()} ({sum(x['bound_old'] for x in rr)} bounds)"
    )
    print(
        f"update_s (incremental corrected fold + ML inference, {len(upd)} updates): median "
        f"{np.median(upd):.3f} s; "
        f"refit_s (raw fold + joint model + refit, {len(refit_s)} refits): median "
        f"{np.median(refit_s):.2f} s; first continuation median {np.median(t_first or [np.nan]):.1f} s; "
        f"linearisation (at the first trusted refit) {np.round([r['linearise_s'] for r in ad], 1).tolist()} s"
    )
    return (
        f"RESULT beamtime_ratio={lo:.2f} adaptive_err_over_sigma={np.median(eos):.2f} "
        f"update_s={np.median(upd):.2f}"
    )


def _reasons(why: str) -> list[str]:
    """The trust verdict's reasons as categories (stopped short, not converged, unstable, χ²/dof)."""
    out = []
    if why.startswith("continuation stopped"):
        out.append(why.split(" (")[0].replace("continuation ", ""))
    if "not trusted by the fit" in why:
        part = why.split("not trusted by the fit", 1)[1]
        out += [c for c in ("not converged", "unstable") if c in part]
    if "chi2/dof" in why and ">" in why:
        out.append("chi2/dof > bound")
    return out


def refine_shells() -> list[int]:
    from fcinv.crystal import material_info

    raw = material_info("Ge").get("refine_shells") or ()
    return [int(n) for n in (raw if isinstance(raw, (list, tuple)) else [raw])]


def plot(results, names, args, path: Path) -> None:
    from fcinv.plotting import new_figure, save_figure

    fig, axes = new_figure(1, len(names), figsize=(3.3 * len(names), 3.2), dpi=120)
    colors = {"uniform": "tab:blue", "adaptive": "tab:red"}
    for r in results:
        h = r["history"]
        m = [x["minutes"] for x in h]
        tr = np.array([x.get("trusted", False) for x in h])
        for i, ax in enumerate(axes):
            rel = np.array([100 * x["sigma"][i] / abs(x["theta"][i]) for x in h])
            ax.plot(
                m,
                rel,
                color=colors[r["kind"]],
                lw=0.7,
                alpha=0.6,
                label=r["kind"] if r is results[0] or r is results[1] else None,
            )
            mm = np.asarray(m)
            ax.plot(mm[tr], rel[tr], "o", ms=3, color=colors[r["kind"]], alpha=0.8)
            ax.plot(mm[~tr], rel[~tr], "o", ms=3, mfc="none", color=colors[r["kind"]], alpha=0.5)
    for i, ax in enumerate(axes):
        ax.axhline(100 * args.target_rel, color="k", ls="--", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("beam time (min)")
        ax.set_title(f"FC{i} {names[i]}", fontsize=9)
    axes[0].set_ylabel("σ / |θ| (%), incl. cutoff systematic")
    axes[0].legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, title="steering: σ on FC0–FC3 against beam time (DFT Ge truth)")


def _first(h, pred):
    return next((x for x in h if pred(x)), None)


def repeat_table(results, names, args) -> list[BeamtimeRatio]:
    """Print one row per repeat (uniform and adaptive times, reached or bound, the ratio and its kind, when
    the adaptive strategy first steered, which FC held each strategy above the target); return the ratios."""
    pairs: dict[tuple, dict] = {}
    for r in results:
        pairs.setdefault((r["start_deg"], r["seed"]), {})[r["kind"]] = r
    rows, out = [], []
    for (a, seed), p in pairs.items():
        u, d = p.get("uniform"), p.get("adaptive")
        if u is None or d is None:
            continue
        budget = float(d.get("ratio", {}).get("budget_min", max(u["minutes"], d["minutes"])))
        b = beamtime_ratio(
            u["minutes"],
            u["reached"],
            d["minutes"],
            d["reached"],
            uniform_budget_min=budget,
            adaptive_budget_min=budget,
        )
        out.append(b)
        tr = _first(d["history"], lambda x: x["trusted"])
        src = d.get("sources", [])
        n_steer = d.get("n_start", 3) + src.index("steered") if "steered" in src else None

        def held(r):
            """The FCs above the target at the last refit before the target (or the last refit)."""
            h = r["history"]
            k = next((i for i, x in enumerate(h) if x["trusted"] and x["below_target"]), len(h))
            x = h[max(k - 1, 0)] if k < len(h) else h[-1]
            rel = 100 * np.array(x["sigma"]) / np.abs(x["theta"])
            cut = 100 * np.array(x["sigma_cutoff"]) / np.abs(x["theta"])
            bad = [i for i in range(len(names)) if rel[i] > 100 * args.target_rel] or [int(np.argmax(rel))]
            return ", ".join(f"FC{i} {rel[i]:.1f}% (cut {cut[i]:.1f})" for i in bad) + f" @{x['n']}"

        def t(r):
            return f"{r['minutes']:.1f}" + (" reached" if r["reached"] else " NOT (budget)")

        kind = "" if b.kind == "undefined" else f" ({b.kind})"
        rows.append(
            f"| {a:g}°, {seed} | {t(u)} | {t(d)} | {b.label()}{kind} | "
            f"{tr['n'] if tr else '—'} | {n_steer if n_steer is not None else '—'} | {held(u)} | {held(d)} |"
        )
    print(
        "per repeat (min of beam; U uniform, A adaptive; first trusted / first steered: orientations; "
        "held: σ/|θ̂| of the FCs above the target at the refit before the target, else the last):"
    )
    print("| start, seed | U | A | ratio | first trusted | first steered | U held by | A held by |")
    print("|---|---|---|---|---|---|---|---|")
    for line in rows:
        print(line)
    return out


def chi2_table(results) -> None:
    """χ²/dof of the refits against that of the truth's own 11-shell projection on the same data, by the
    number of orientations measured (median over repeats and strategies; refits in 11 shells)."""
    by: dict[int, list] = {}
    for r in results:
        for x in r["history"][1:]:
            if x.get("chi2_truth") is None or x["reused"] or x["chi2_dof"] is None:
                continue
            by.setdefault(10 * round(x["n"] / 10) if x["n"] > 5 else x["n"], []).append(
                (x["chi2_dof"], x["chi2_truth"], x["trusted"], x["n_shells"])
            )
    if not by:
        return
    print(
        "χ²/dof by orientations measured: refit (median over the refits in the deepest space) | "
        "truth's 11-shell projection | trusted"
    )
    for n in sorted(by):
        v = by[n]
        c11 = [c for c, _, _, sh in v if sh == max(w[3] for w in v)]
        print(
            f"  {n:4d}: refit {np.median(c11):.2f} | truth {np.median([w[1] for w in v]):.2f} | "
            f"{sum(w[2] for w in v)}/{len(v)} trusted"
        )
