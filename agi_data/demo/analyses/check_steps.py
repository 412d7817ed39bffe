"""The report's closing steps: the physics checks of every run against their targets, and the verdict."""

from __future__ import annotations

from .context import I_I_CONTACT_A, KERNEL_BLOCKS, VACF_MAX_LAG_PS, Context, _lag_max


def _verdict_paddlewheels(ctx: Context) -> list[str]:
    """The verdict's sentences on the electronic side: what the predicted moments allow, with the model's caveat."""
    out, report = ctx.out, ctx.report
    if "paddlewheel_difference_model" not in out and "friction_Ag_rotating" not in out:
        return ["Not computed here: the kernels of Ag⁺ next to rotating versus still iodides and the hop-conditioned "
                "rotor change at the full frame rate need the electronic state on every frame (no predicted "
                "lone-pair moments in the run)."]
    rmse, rms = report.value("electronic_rotor_rmse"), report.value("electronic_rotor_rms")
    caveat = "these rest on a model of the DFT state, not on DFT"
    if rmse is not None and rms is not None:
        caveat = (f"its held-out rotor-function RMSE is {rmse.value:.2f} against an RMS of {rms.value:.2f} of the "
                  f"function itself: {caveat}")
    text = [f"Electronic state on every frame from the lone-pair model ({caveat})."]
    if "paddlewheel_difference_model" in out:
        n = report.value("paddlewheel_difference_model")
        sig = abs(n.value) > 2 * n.stderr if n.stderr else False
        text.append(f"Around Ag⁺ hops, the near iodides' rotor change minus the baseline's is {n.value:.3g} ± "
                    f"{n.stderr:.2g} ({'beyond' if sig else 'within'} two standard errors of zero).")
    if "p_global_rotating_still" in out:
        p = out["p_global_rotating_still"]
        text.append(f"The kernels of Ag⁺ next to rotating and next to still iodides "
                    f"{'differ significantly' if p < 0.05 else 'do not differ significantly'} by the global test "
                    f"(p = {p:.2g}).")
    return text


def verdict(ctx: Context) -> None:
    """One paragraph that says what the numbers allow and no more (the report's "Verdict")."""
    out, checks = ctx.out, ctx.report.checks
    parts = []
    for r in ctx.runs:
        t = r.ds["time"].values
        parts.append(f"{r.label}: {r.ds.sizes['atom']} ions, {float(t[-1] - t[0]):g} ps of "
                     f"{r.ds.attrs.get('ensemble', 'unknown-ensemble')} production")
    text = [f"Runs — {'; '.join(parts)}."]
    if checks:
        missed = [f"{c.name} ({c.label}: {c.value:.3g}, target {c.target})" for c in checks if not c.passed]
        text.append(f"Physics checks: {len(checks) - len(missed)} of {len(checks)} pass"
                    + (f"; missed: {'; '.join(missed)}." if missed else "."))
    if "friction_difference" in out:
        p = out["p_global"]
        sig = "differ significantly (5 % level)" if p < 0.05 else "do not differ significantly"
        se = ctx.report.value("friction_difference").stderr
        text.append(f"By the global test over all lags (p = {p:.2g}) the Ag⁺ kernels of the two models {sig}; "
                    f"the friction integrals alone differ by {out['friction_difference']:.3g} ± {se:.2g} ps⁻¹ "
                    f"(p = {out['p_friction']:.2g}; one test among several, not a finding on its own).")
        if len({r.ds.sizes['atom'] for r in ctx.runs}) > 1:
            text.append("The two runs differ in size, so this is not a like-for-like comparison of the models.")
    else:
        text.append("No kernel errors could be computed (runs shorter than "
                    f"{KERNEL_BLOCKS} blocks of the longest lag): no difference between the models' kernels can be "
                    "called significant.")
    ratios = []
    for r in ctx.runs:
        n = ctx.report.value(f"einstein_ratio_err_{r.label}")
        if n is not None:
            ratios.append(f"{r.label} {n.value:.2f} ± {n.stderr:.2f}")
        elif f"einstein_ratio_{r.label}" in out:
            ratios.append(f"{r.label} {out[f'einstein_ratio_{r.label}']:.2f}")
    if ratios:
        text.append(f"Einstein ratios ∫K/(k_BT/(mD)): {', '.join(ratios)} (1 when the kernel and D agree).")
    text.extend(_verdict_paddlewheels(ctx))
    text.append("The classical model's parameters could not be checked against the published table (docs/md.md).")
    ctx.report.verdict = " ".join(text)


#: the physics checks of every analysed run: (name, number key without the run label, target text, test);
#: the α-AgI values are those of the 2024 study's model and of experiment (first I–I neighbours of the bcc
#: iodide lattice at √3/2·a = 4.40 Å, Ag–I at 2.84 Å), the limits what a solid iodide sublattice allows
PHYSICS_CHECKS = [
    ("first I–I g(r) peak", "I_I_first_peak", "4.40 ± 0.10 Å", lambda v: abs(v - 4.40) <= 0.10),
    ("first Ag–I g(r) peak", "Ag_I_first_peak", "2.84 ± 0.15 Å", lambda v: abs(v - 2.84) <= 0.15),
    ("iodide sublattice solid: D(I)/D(Ag)", "D_ratio", "< 0.1", lambda v: v < 0.1),
    (f"I neighbours of an I within {I_I_CONTACT_A} Å", "I_I_close_contacts", "≤ 0.02 per I", lambda v: v <= 0.02),
    ("D(Ag): (Green–Kubo − MSD)/σ(MSD)", "D_GK_vs_MSD", "|·| ≤ 2 (σ of the MSD fit only)", lambda v: abs(v) <= 2),
    ("Einstein ratio ∫K/(k_BT/(mD))", "einstein_ratio", "1 ± 0.10 (goal)", lambda v: abs(v - 1) <= 0.10),
]
#: the model's own check (from the training stage's numbers, when the report has them)
FORCE_RMSE_LIMIT = 0.10  # eV/Å, held-out


def physics_checks(ctx: Context) -> None:
    """Each number of :data:`PHYSICS_CHECKS` of each run against its target, pass or miss (a table of the
    report; a miss is reported, never hidden); the Allegro model's held-out force RMSE when it is known."""
    rmse = ctx.report.value("force_rmse_eV_per_A")
    if rmse is not None:
        ctx.report.check("held-out force RMSE", "Allegro", "force_rmse_eV_per_A", f"≤ {FORCE_RMSE_LIMIT} eV/Å",
                         rmse.value <= FORCE_RMSE_LIMIT)
    for r in ctx.runs:
        if (r.label, "Ag") in ctx.diffusion and f"D_GK_Ag_{r.label}" in ctx.out:
            recipe = (ctx.d_recipe(r, "Ag") + f"c = A.vacf(T({r.run_id!r}), 'Ag', max_lag_ps="
                      f"{min(VACF_MAX_LAG_PS, _lag_max(r.ds))!r}).compute()\n"
                      "gk = A.green_kubo(c)\ngk = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)\n"
                      "value = (gk - float(d['D'])) / float(d['D_stderr'])\n")
            ctx.number(f"D_GK_vs_MSD_{r.label}", f"D(Ag) (Green–Kubo − MSD)/σ(MSD), {r.label}", recipe, "—",
                       r.source, params={"from": "the two D(Ag) above"})
        for name, key, target, ok in PHYSICS_CHECKS:
            full = f"{key}_{r.label}"
            if full in ctx.out:
                ctx.report.check(name, r.label, full, target, ok(ctx.out[full]))
