"""Every analysis of the demo's report, as a list of small steps that each own their figure and numbers.

ML (Allegro) against classical (rigid-ion) trajectories: kinetic temperature
and NVE drift, MSD and D, VACF and VDOS with the Green–Kubo check, RDFs,
hops, cage correlation, GLE memory kernels with the Einstein ratio; on the
ML run's Wannier frames: centre assignment, rotor correlation and the
hop-conditioned paddlewheel average; and the same two at the MD frame rate
from the lone-pair moments a model predicted on every frame (beside the
DFT points).

Reproducible by construction: every number is computed by a *recipe* — a few
lines of Python over the store and :mod:`agi_data.analysis`'s public
functions, with every parameter written out — which the report executes and
records (:meth:`Context.compute`). :meth:`agi_data.report.render.Report.write`
writes the recipes next to the report as ``reproduce.py``, pinned to the
store versions the report read; running it recomputes every number from the
store and compares.

Temperature: the production runs are NVE, whose kinetic temperature is not
the nominal one. k_BT/(mD) and C(0) = 3k_BT/m of the kernels use the
measured kinetic temperature of the Ag⁺ velocities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ... import analysis as A
from ...analysis.structure import _half_width as half_width
from ...report.render import Report
from ...store import Store
from .context import (
    HOP_MIN_DWELL_PS,
    I_I_CONTACT_A,
    KERNEL_BLOCKS,
    PADDLEWHEEL_WINDOW_PS,
    PRELUDE,
    VACF_MAX_LAG_PS,
    Context,
    RunRef,
    _fmt_params,
    _lag_max,
    equally_spaced_block,
)
from .kernels import conditioned_kernels, kernel_statistics, memory_kernels
from .structure import hops_and_cages, structure
from .transport import thermodynamics, transport, vacf_vdos

__all__ = [
    "Context",
    "HOP_MIN_DWELL_PS",
    "PHYSICS_CHECKS",
    "PRELUDE",
    "RunRef",
    "STEPS",
    "analyse",
    "conditioned_kernels",
    "equally_spaced_block",
    "hops_and_cages",
    "kernel_statistics",
    "memory_kernels",
    "paddlewheels",
    "paddlewheels_model",
    "physics_checks",
    "structure",
    "thermodynamics",
    "transport",
    "vacf_vdos",
    "verdict",
]


# --------------------------------------------------------------------------------------------- the steps


@dataclass
class _WannierFrames:
    run_id: str
    ws: xr.Dataset
    traj: xr.Dataset
    src: str
    when: str


def _wannier_frames(ctx: Context) -> _WannierFrames | None:
    wrun = ctx.wannier_run or ctx.runs[0].run_id
    try:
        ws = ctx.store.wannier(wrun)
    except Exception:  # noqa: BLE001 - no centres: say so in the report
        ctx.report.notes.append(f"No Wannier centres in run {wrun}: paddlewheel analyses skipped.")
        return None
    traj = ctx.store.trajectory(wrun)
    src = f"store run {wrun}, Wannier set" + (f" of AiiDA node {ws.attrs['provenance_uuid'][:8]}"
                                            if ws.attrs.get("provenance_uuid") else "")
    ctx.report.pin(f"wannier:{wrun}", ws.attrs.get("store_version"))
    ctx.number("wannier_frames", "Wannier frames", f"value = W({wrun!r}).sizes['frame']\n", "—", src,
               params={"counted": "frames of the Wannier set"})
    ctx.number("wannier_bad_frames", "Wannier frames flagged (wrong centre count)",
               f"a = A.assign_wannier(T({wrun!r}), W({wrun!r}))\n"
               "value = int(np.asarray(a['bad_frame']).sum()) if 'bad_frame' in a else 0\n", "—", src,
               params={"expected": "4 per I, 5 per Ag", "cutoff_A": 1.2})
    failed = {int(f): code for f, code in ws.attrs.get("failed_frames", {}).items()}
    ctx.number("wannier_left_out", "Wannier frames left out (failed pw.x / wannier90.x checks)",
               f"value = len(W({wrun!r}).attrs.get('failed_frames', {{}}))\n", "—", src,
               params={"counted": "failed_frames of the Wannier set's attrs"})
    t_run = traj["time"].values
    if failed:
        ctx.report.notes.append("Wannier frames left out: " + ", ".join(
            f"t = {float(t_run[f]):.2f} ps ({code})" for f, code in sorted(failed.items())) + f". Data: {src}.")
    ws, gap_note = equally_spaced_block(ws)
    if gap_note:
        ctx.report.notes.append(gap_note)
    times = np.asarray(ws["frame_time"].values, dtype=float)
    when = (f"{len(times)} frames at t = {', '.join(f'{t:.2f}' for t in times)} ps of the {float(t_run[-1]):.2f}-ps run"
            + (f" ({times[1] - times[0]:.2f} ps apart: the first lag is the first point after 0)"
               if len(times) > 1 else ""))
    ctx.report.notes.append(f"Wannier centres: {when}. Data: {src}.")
    return _WannierFrames(wrun, ws, traj, src, when)


def _far_cutoff(traj: xr.Dataset) -> float:
    """Å: the hop-conditioned average's "far" iodides must exist in the cell — 6 Å, or at most 90 % of half its
    smallest width (4.6 Å for 32 ions)."""
    return round(min(6.0, 0.9 * half_width(traj["cell"].values)), 6)


def paddlewheels(ctx: Context) -> None:
    """On the Wannier frames: rotor correlation (rotor.png) and the hop-conditioned rotor change
    (paddlewheel.png), with the hop counts they rest on."""
    wf = _wannier_frames(ctx)
    if wf is None:
        return
    try:
        crot = A.rotor_correlation(wf.traj, wf.ws, species="I", l=3, axis="x").compute()
        ctx.report.curves("rotor.png", "Iodide lone-pair rotor correlation",
                          f"C_rot(t) of the ℓ=3 tetrahedral rotor function along x, all origins, on {wf.when}. "
                          f"Data: {wf.src}.", [(crot, "I⁻ lone pairs, Allegro")], ylabel="C_rot(t)", hline=0.0)
        ctx.out["rotor_corr_last"] = float(crot.isel(lag=-1))
        ctx.extra["rotor_dft"] = crot
    except ValueError as err:
        ctx.report.notes.append(f"Rotor correlation not computed: {err}")
    far = _far_cutoff(wf.traj)
    frames = list(map(int, wf.ws["frame"].values))
    every = list(map(int, ctx.store.wannier(wf.run_id)["frame"].values))
    positions = [every.index(f) for f in frames]  # the regular block, by position in the Wannier set
    recipe = (f"ws = W({wf.run_id!r}).isel(frame={positions!r})\n"
              f"h = A.hop_conditioned_average(T({wf.run_id!r}), ws, 'rotor_change', window_ps={PADDLEWHEEL_WINDOW_PS!r},"
              f" min_dwell_ps={HOP_MIN_DWELL_PS!r}, far_cutoff={far!r})\n"
              "first = h.isel(tau=int(np.searchsorted(h['tau'].values, 0.0, side='right')))\n")
    params = _fmt_params(window_ps=PADDLEWHEEL_WINDOW_PS, min_dwell_ps=HOP_MIN_DWELL_PS, far_cutoff_A=far,
                         quantity="|ΔM| of the ℓ=3 rotor function", wannier_frames=frames)
    try:
        ns = ctx.compute(recipe)
    except ValueError as err:
        ctx.report.notes.append(f"Hop-conditioned average not computed: {err}")
        return
    h, first = ns["h"], ns["first"]
    n_hops, n_used, n_at = h.attrs["n_hops"], h.attrs["n_hops_used"], int(first["n_events"])
    tau = float(first["tau"])
    ctx.extra["paddlewheel_tau"] = round(tau, 9)
    curves = [(h["near"], "iodides of the hop's from- and to-tetrahedra")]
    has_baseline = int(h["n_baseline_events"].max()) > 0
    if has_baseline:
        curves.append((h["baseline"], f"baseline: iodides > {far:.1f} Å from every hopping Ag⁺"))
    ctx.report.curves("paddlewheel.png", "Hop-conditioned lone-pair rotation",
                      f"|M(t_e+τ) − M(t_e)| of the ℓ=3 rotor function M of iodides around Ag⁺ hops (min_dwell_ps = "
                      f"{HOP_MIN_DWELL_PS}: {n_hops} hops in the run, {n_used} of them with a window on the Wannier "
                      f"frames, {n_at} at τ = {tau:.2f} ps); zero at τ = 0 by construction. A paddlewheel shows as "
                      f"the near curve rising faster than the baseline. Data: {wf.src}.", curves, ylabel="|ΔM_rot| (1)")
    ctx.number("paddlewheel_hops_in_run", "Ag⁺ hops in the Wannier run (paddlewheel average)",
               recipe + "value = h.attrs['n_hops']\n", "—", wf.src, params=params)
    ctx.number("paddlewheel_hops_used", "Ag⁺ hops with a window on the Wannier frames",
               recipe + "value = h.attrs['n_hops_used']\n", "—", wf.src, params=params)
    ctx.number("paddlewheel_hops_at_tau", f"Ag⁺ hops at τ = {tau:.2f} ps (paddlewheel read-out)",
               recipe + "value = int(first['n_events'])\n", "—", wf.src, params=params)
    if has_baseline:  # the paddlewheel read-out: near minus far one Wannier step after the hop
        ctx.number("paddlewheel_difference", f"near − baseline rotor change at τ = {tau:.2f} ps, Allegro",
                   recipe + "value, stderr = float(first['difference']), float(first['difference_error'])\n", "1",
                   f"{n_at} hops, {wf.src}", params=params, has_error=True)


#: ps: longest lag of the rotor correlation from the predicted moments (it decays in ~0.3 ps)
ROTOR_MAX_LAG_PS = 1.0
#: ps: the hop-conditioned windows tried in turn on the predicted moments (the DFT one first)
PADDLEWHEEL_MODEL_WINDOWS_PS = (PADDLEWHEEL_WINDOW_PS, 0.25, 0.1)


def paddlewheels_model(ctx: Context) -> None:
    """At the MD frame rate, from the moments a lone-pair model predicted on every frame of the ML run: the rotor
    correlation (rotor_model.png, with the DFT points of the Wannier frames beside it) and the hop-conditioned
    rotor change (paddlewheel_model.png), read out at the first Wannier lag so the two sources compare."""
    wrun = ctx.wannier_run or ctx.runs[0].run_id
    try:
        moments = ctx.store.electronic(wrun)
    except Exception:  # noqa: BLE001 - no predictions: say so in the report
        ctx.report.notes.append(f"No predicted lone-pair moments in run {wrun}: the full-frame-rate paddlewheel "
                                "analyses are skipped.")
        return
    ctx.report.pin(f"electronic:{wrun}", moments.attrs.get("store_version"))
    model = moments.attrs.get("model_uuid") or moments.attrs.get("provenance_uuid") or ""
    src = (f"store run {wrun}, moments predicted on {moments.sizes['frame']} frames by the lone-pair model"
           + (f" (AiiDA node {model[:8]})" if model else ""))
    traj = ctx.store.trajectory(wrun)
    lag = round(min(ROTOR_MAX_LAG_PS, _lag_max(traj)), 9)
    recipe = f"c = A.rotor_correlation(T({wrun!r}), E({wrun!r}), species='I', l=3, axis='x', max_lag_ps={lag!r}).compute()\n"
    params = _fmt_params(source="predicted moments, every frame", axis="x", l=3, max_lag_ps=lag)
    try:
        ns = ctx.compute(recipe)
    except ValueError as err:
        ctx.report.notes.append(f"Rotor correlation from the predicted moments not computed: {err}")
        return
    c = ns["c"]
    curves = [(c, "lone-pair model, every frame")]
    dft_note = ""
    if "rotor_dft" in ctx.extra:
        curves.append((ctx.extra["rotor_dft"], "DFT Wannier frames"))
        dft_note = " Points: the DFT Wannier centres of the regular block (as rotor.png)."
    ctx.report.curves("rotor_model.png", "Iodide rotor correlation at the MD frame rate",
                      f"C_rot(t) of the ℓ=3 rotor function along x, all origins, from the moments the lone-pair model "
                      f"predicted on every frame; the model's held-out error is in the numbers.{dft_note} Data: {src}.",
                      curves, ylabel="C_rot(t)", hline=0.0)
    for t in (0.1, 0.3):
        if t <= lag:
            ctx.number(f"rotor_corr_model_{int(round(t * 1000))}fs", f"C_rot({t:g} ps), lone-pair model, every frame",
                       recipe + f"value = float(c.sel(lag={t!r}, method='nearest'))\n", "1", src, params=params)
    # the same read-out as the DFT one (first lag of the Wannier grid), now with every frame as a time origin
    tau_read = ctx.extra.get("paddlewheel_tau", 0.1)
    far = _far_cutoff(traj)
    # with every hop of the run (not only those on a few Wannier frames) a small cell can leave no iodide far from
    # all concurrent hops: then shorter windows (fewer concurrent hops), each said in the notes
    for window in PADDLEWHEEL_MODEL_WINDOWS_PS:
        hrecipe = (f"h = A.hop_conditioned_average(T({wrun!r}), E({wrun!r}), 'rotor_change', "
                   f"window_ps={window!r}, min_dwell_ps={HOP_MIN_DWELL_PS!r}, far_cutoff={far!r})\n"
                   f"first = h.sel(tau={tau_read!r}, method='nearest')\n")
        try:
            ns = ctx.compute(hrecipe)
            break
        except ValueError as err:
            ctx.report.notes.append(f"Hop-conditioned average from the predicted moments, window ± {window:g} ps: "
                                    f"not computed: {err}")
    else:
        return
    hparams = _fmt_params(source="predicted moments, every frame", window_ps=window, min_dwell_ps=HOP_MIN_DWELL_PS,
                          far_cutoff_A=far, quantity="|ΔM| of the ℓ=3 rotor function", tau_ps=tau_read)
    h, first = ns["h"], ns["first"]
    curves = [(h["near"], "iodides of the hop's from- and to-tetrahedra")]
    if int(h["n_baseline_events"].max()) > 0:
        curves.append((h["baseline"], f"baseline: iodides > {far:.1f} Å from every hopping Ag⁺"))
    ctx.report.curves("paddlewheel_model.png", "Hop-conditioned lone-pair rotation at the MD frame rate",
                      f"|M(t_e+τ) − M(t_e)| around Ag⁺ hops (window ± {window:g} ps, min_dwell_ps = {HOP_MIN_DWELL_PS}: "
                      f"{h.attrs['n_hops']} hops, {h.attrs['n_hops_used']} with a full window), from the moments "
                      f"predicted on every frame. Data: {src}.", curves, ylabel="|ΔM_rot| (1)")
    ctx.number("paddlewheel_hops_used_model", "Ag⁺ hops with a window, predicted moments",
               hrecipe + "value = h.attrs['n_hops_used']\n", "—", src, params=hparams)
    if int(first["n_baseline_events"]) > 0:
        ctx.number("paddlewheel_difference_model", f"near − baseline rotor change at τ = {float(first['tau']):.2f} ps, "
                   "lone-pair model, every frame",
                   hrecipe + "value, stderr = float(first['difference']), float(first['difference_error'])\n", "1",
                   f"{int(first['n_events'])} hops, {src}", params=hparams, has_error=True)


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


#: the report's steps, in order: (progress label, step)
STEPS: list[tuple[str, Callable[[Context], None]]] = [
    ("temperature and drift", thermodynamics),
    ("MSD and diffusion", transport),
    ("VACF and VDOS", vacf_vdos),
    ("RDF", structure),
    ("hops and cage correlation", hops_and_cages),
    ("GLE memory kernels", memory_kernels),
    ("Wannier frames and paddlewheels", paddlewheels),
    ("kernel errors and the models' difference", kernel_statistics),
    ("paddlewheels at the MD frame rate", paddlewheels_model),
    ("kernels next to rotating and still iodides", conditioned_kernels),
    ("physics checks", physics_checks),
    ("verdict", verdict),
]


def analyse(store: Store, report: Report, *, ml_run: str, classical_run: str | None = None,
            wannier_run: str | None = None, step: Callable[[str], None] = lambda name: None,
            steps=None) -> dict:
    """Run every step of :data:`STEPS` (or ``steps``); add figures and numbers to ``report``; return the
    numbers by key. ``classical_run`` None: one run only (``agi analyse``)."""
    runs = [RunRef("Allegro" if classical_run else "run", ml_run, store.trajectory(ml_run))]
    if classical_run:
        runs.append(RunRef("classical", classical_run, store.trajectory(classical_run)))
    for r in runs:
        report.pin(r.run_id, r.ds.attrs.get("store_version"))
    report.bind_store(store)
    ctx = Context(store, report, runs, wannier_run=wannier_run or ml_run)
    for name, fn in (steps if steps is not None else STEPS):
        step(name)
        fn(ctx)
    return ctx.out
