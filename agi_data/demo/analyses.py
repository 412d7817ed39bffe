"""Every analysis of the demo, run on the store's runs and written into a report.

ML (Allegro) against classical (rigid-ion) trajectories: MSD and D, VACF and
VDOS with the Green–Kubo check, RDFs, hops, cage correlation, GLE memory
kernels; on the ML run's Wannier frames: centre assignment, rotor
correlation and the hop-conditioned paddlewheel average.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .. import analysis as A
from ..analysis.structure import _half_width as half_width
from ..report.render import Report
from ..store import Store

#: 1 Å²/ps in cm²/s
A2_PER_PS_IN_CM2_PER_S = 1e-4
#: Å: I–I pairs closer than this do not occur in α-AgI (bcc iodides, first shell at 4.4 Å)
I_I_CONTACT_A = 3.6


def equally_spaced_block(ws: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The longest block of Wannier frames on one regular grid (the time correlations need one), and a note
    when a left-out frame broke the grid; ties go to the finer grid, then the earlier block."""
    frames = np.asarray(ws["frame"].values)
    if frames.size < 3:
        return ws, ""
    steps = np.diff(frames)
    best = (0, 1)
    for step in np.unique(steps):  # blocks of consecutive frames ``step`` apart; the longest wins
        start = 0
        for i in range(1, frames.size + 1):
            if i == frames.size or steps[i - 1] != step:
                if i - start > best[1] - best[0]:
                    best = (start, i)
                start = i
    if best == (0, frames.size):
        return ws, ""
    kept = ws.isel(frame=slice(*best))
    return kept, (f"Wannier frames {frames.tolist()} are not equally spaced (frames left out): the time correlations "
                  f"use the longest regular block, frames {kept['frame'].values.tolist()}.")


@dataclass
class RunRef:
    """A store run as the report cites it."""

    label: str  # "Allegro" / "classical"
    run_id: str
    ds: xr.Dataset

    @property
    def source(self) -> str:
        uuid = self.ds.attrs.get("provenance_uuid")
        return f"store run {self.run_id}" + (f", AiiDA node {uuid[:8]}" if uuid else "")


def _lag_max(ds: xr.Dataset, fraction: float = 0.5) -> float:
    t = ds["time"].values
    return float((t[-1] - t[0]) * fraction)


def analyse(store: Store, report: Report, *, ml_run: str, classical_run: str, wannier_run: str | None = None,
            step: Callable[[str], None] = lambda name: None) -> dict:
    """Run every analysis; add figures and numbers to ``report``; return the numbers by name."""
    runs = [RunRef("Allegro", ml_run, store.trajectory(ml_run)),
            RunRef("classical", classical_run, store.trajectory(classical_run))]
    out: dict[str, float] = {}
    cite = "; ".join(r.source for r in runs)

    # --- transport --------------------------------------------------------
    step("MSD and diffusion")
    curves, diff = [], {}
    for r in runs:
        for sp in ("Ag", "I"):
            m = A.msd(r.ds, sp, max_lag=_lag_max(r.ds)).compute()
            try:
                d = A.diffusion_coefficient(m)
            except A.TransportError as err:  # a short run: fit the second half of the lags, and say so
                lags = m["lag"].values
                d = A.diffusion_coefficient(m, fit_range=(float(lags[len(lags) // 2]), float(lags[-1])))
                report.notes.append(f"D({sp}), {r.label}: {err}. Fitted over lags {lags[len(lags) // 2]:.3g}–"
                                    f"{lags[-1]:.3g} ps instead: not a converged diffusion coefficient.")
            D, err = float(d["D"]), float(d["D_stderr"])
            diff[(r.label, sp)] = D
            out[f"D_{sp}_{r.label}"] = D
            report.number(f"D({sp}), {r.label}", D, "Å²/ps", r.source, err)
            curves.append((m, f"{sp}, {r.label}"))
    report.curves("msd.png", "Mean-squared displacement", f"MSD over all time origins, FFT algorithm. Data: {cite}.",
                  curves)
    for r in runs:
        if diff[(r.label, "Ag")] > 0:
            report.number(f"D(I)/D(Ag), {r.label}", diff[(r.label, "I")] / diff[(r.label, "Ag")], "—", r.source)

    step("VACF and VDOS")
    vcurves, dcurves = [], []
    for r in runs:
        if "velocities" not in r.ds:
            continue
        c = A.vacf(r.ds, "Ag", max_lag=min(1.0, _lag_max(r.ds))).compute()
        gk = A.green_kubo(c)
        D_gk = float(gk.isel(lag=-1)) if "lag" in gk.dims else float(gk)
        out[f"D_GK_Ag_{r.label}"] = D_gk
        report.number(f"D(Ag) Green–Kubo, {r.label}", D_gk, "Å²/ps", r.source)
        vcurves.append((c / float(c.isel(lag=0)), f"Ag, {r.label}"))
        dcurves.append((A.vdos(c, normalize=True), f"Ag, {r.label}"))
    report.curves("vacf.png", "Ag⁺ velocity autocorrelation", f"C(t)/C(0), all origins. Data: {cite}.", vcurves,
                  ylabel="C(t)/C(0)", hline=0.0)
    report.curves("vdos.png", "Ag⁺ vibrational density of states", f"Cosine transform of the VACF. Data: {cite}.",
                  dcurves, ylabel="VDOS (normalised)", xlim=(0, 10))

    # --- structure --------------------------------------------------------
    step("RDF")
    rcurves = []
    for r in runs:
        r_max = 0.98 * half_width(r.ds["cell"].values)  # just inside the minimum-image limit
        for a, b in (("Ag", "I"), ("I", "I")):
            g = A.rdf(r.ds, a, b, r_max=r_max, dr=0.05).compute()
            rcurves.append((g, f"{a}–{b}, {r.label}"))
            if (a, b) == ("I", "I"):
                r_peak = float(g.idxmax("r"))
                out[f"I_I_first_peak_{r.label}"] = r_peak
                report.number(f"first I–I peak, {r.label}", r_peak, "Å", r.source)
                # the bcc iodide lattice has no neighbour closer than ~3.9 Å (first shell √3/2·a = 4.4 Å):
                # iodides this close mean a model outside what it was trained on
                n_close = float(g["coordination_number"].sel(r=I_I_CONTACT_A, method="nearest"))
                out[f"I_I_close_contacts_{r.label}"] = n_close
                report.number(f"I–I neighbours within {I_I_CONTACT_A} Å, {r.label}", n_close, "per I", r.source)
    report.curves("rdf.png", "Radial distribution functions", f"g(r), minimum image in each frame's cell. Data: {cite}.",
                  rcurves, ylabel="g(r)", hline=1.0)

    # --- hops and cages ---------------------------------------------------
    step("hops and cage correlation")
    ccurves, hop_tables = [], {}
    for r in runs:
        table = A.hops(r.ds, "Ag", min_dwell_ps=0.1)
        hop_tables[r.label] = table
        rate = float(np.asarray(A.hop_rate(table)).mean())
        out[f"hop_rate_{r.label}"] = rate
        report.number(f"Ag⁺ hop rate per ion, {r.label}", rate, "1/ps", r.source)
        report.number(f"Ag⁺ hops counted, {r.label}", len(table), "—", r.source)
        cr = A.cage_correlation(r.ds, "Ag", n_neighbors=10, max_lag=_lag_max(r.ds)).compute()
        ccurves.append((cr, r.label))
    report.curves("cage.png", "Ag⁺ cage correlation", f"Intermittent C_R(t), 10 nearest neighbours. Data: {cite}.",
                  ccurves, ylabel="C_R(t)")

    # --- GLE memory kernels -----------------------------------------------
    step("GLE memory kernels")
    kcurves = []
    for r in runs:
        if "forces" not in r.ds or "velocities" not in r.ds:
            continue
        K = A.memory_kernel(r.ds, "Ag", method="force", max_lag_ps=min(0.5, _lag_max(r.ds, 0.25)),
                            on_unstable="truncate")
        kcurves.append((K, f"Ag⁺, {r.label}"))
        zeta = A.friction_coefficient(K)
        val = float(np.asarray(zeta).ravel()[-1])
        out[f"friction_Ag_{r.label}"] = val
        report.number(f"Ag⁺ friction ∫K dt, {r.label}", val, "1/ps", r.source)
    report.curves("memory_kernel.png", "Ag⁺ friction (memory) kernel",
                  f"Second-kind Volterra inversion from ⟨F·F⟩ and ⟨v·F⟩ (Carof et al. 2014). Data: {cite}.",
                  kcurves, hline=0.0)

    # --- electronic paddlewheels on the Wannier frames ---------------------
    wrun = wannier_run or ml_run
    try:
        ws = store.wannier(wrun)
    except Exception:  # noqa: BLE001 - no centres: say so in the report
        report.notes.append(f"No Wannier centres in run {wrun}: paddlewheel analyses skipped.")
        return out
    traj = store.trajectory(wrun)
    src = f"store run {wrun}, Wannier set" + (f" of AiiDA node {ws.attrs['provenance_uuid'][:8]}"
                                            if ws.attrs.get("provenance_uuid") else "")
    step("Wannier assignment and rotors")
    assigned = A.assign_wannier(traj, ws)
    bad = int(np.asarray(assigned["bad_frame"]).sum()) if "bad_frame" in assigned else 0
    report.number("Wannier frames", ws.sizes["frame"], "—", src)
    report.number("Wannier frames flagged (wrong centre count)", bad, "—", src)
    out["wannier_frames"] = ws.sizes["frame"]
    t_run = traj["time"].values
    failed = {int(f): code for f, code in ws.attrs.get("failed_frames", {}).items()}
    report.number("Wannier frames left out (failed pw.x / wannier90.x checks)", len(failed), "—", src)
    if failed:
        report.notes.append("Wannier frames left out: " + ", ".join(
            f"t = {float(t_run[f]):.2f} ps ({code})" for f, code in sorted(failed.items())) + f". Data: {src}.")
    ws, gap_note = equally_spaced_block(ws)
    if gap_note:
        report.notes.append(gap_note)
    times = np.asarray(ws["frame_time"].values, dtype=float)
    run_end = float(t_run[-1])
    when = (f"{len(times)} frames at t = {', '.join(f'{t:.2f}' for t in times)} ps of the {run_end:.2f}-ps run"
            + (f" ({times[1] - times[0]:.2f} ps apart: the first lag is the first point after 0)" if len(times) > 1 else ""))
    report.notes.append(f"Wannier centres: {when}. Data: {src}.")
    try:
        crot = A.rotor_correlation(traj, ws, species="I", l=3, axis="x").compute()
        report.curves("rotor.png", "Iodide lone-pair rotor correlation",
                      f"C_rot(t) of the ℓ=3 tetrahedral rotor function along x, all origins, on {when}. Data: {src}.",
                      [(crot, "I⁻ lone pairs, Allegro")], ylabel="C_rot(t)", hline=0.0)
        out["rotor_corr_last"] = float(crot.isel(lag=-1))
    except ValueError as err:
        report.notes.append(f"Rotor correlation not computed: {err}")
    step("hop-conditioned paddlewheel average")
    try:
        # "far" iodides must exist in the cell: at most 90 % of half its smallest width (4.6 Å for 32 ions)
        far = min(6.0, 0.9 * half_width(traj["cell"].values))
        hca = A.hop_conditioned_average(traj, ws, "rotor_change", window_ps=0.5, min_dwell_ps=0.1, far_cutoff=far)
        curves = [(hca["near"], "iodides of the hop's from- and to-tetrahedra")]
        has_baseline = int(hca["n_baseline_events"].max()) > 0
        if has_baseline:
            curves.append((hca["baseline"], f"baseline: iodides > {far:.1f} Å from every hopping Ag⁺"))
        n_used, n_hops = hca.attrs["n_hops_used"], hca.attrs["n_hops"]
        report.curves("paddlewheel.png", "Hop-conditioned lone-pair rotation",
                      f"|M(t_e+τ) − M(t_e)| of the ℓ=3 rotor function M of iodides, averaged over the {n_used} Ag⁺ "
                      f"hops (of {n_hops}) whose ±τ window lies on the Wannier frames; zero at τ = 0 by "
                      f"construction. A paddlewheel shows as the near curve rising faster than the baseline. "
                      f"Data: {src}.", curves, ylabel="|ΔM_rot| (1)")
        out["paddlewheel_hops_used"] = n_used
        if has_baseline:  # the paddlewheel read-out: near minus far one Wannier step after the hop
            first = hca.isel(tau=int(np.searchsorted(hca["tau"].values, 0.0, side="right")))
            diff, err = float(first["difference"]), float(first["difference_error"])
            label = f"near − baseline rotor change at τ = {float(first['tau']):.2f} ps, Allegro"
            report.number(label, diff, "1", f"{int(first['n_events'])} hops, {src}", stderr=err)
            out["paddlewheel_difference"] = diff
    except ValueError as err:
        report.notes.append(f"Hop-conditioned average not computed: {err}")
    return out
