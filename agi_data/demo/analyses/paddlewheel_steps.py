"""The report's steps on iodide paddlewheels: on the DFT Wannier frames, and at the MD frame rate from
the lone-pair moments a model predicted on every frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ... import analysis as A
from ...analysis.structure import _half_width as half_width
from .context import (
    HOP_MIN_DWELL_PS,
    PADDLEWHEEL_WINDOW_PS,
    Context,
    _fmt_params,
    _lag_max,
    equally_spaced_block,
)


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
