"""The report's steps on thermodynamics and transport: kinetic temperature and NVE drift, MSD and D,
the Ag⁺ VACF and VDOS with the Green–Kubo D."""

from __future__ import annotations

from ... import analysis as A
from .context import VACF_MAX_LAG_PS, Context, RunRef, _d_recipe, _fmt_params, _lag_max


def thermodynamics(ctx: Context) -> None:
    """Ensemble, measured Ag⁺ kinetic temperature and NVE energy drift of each run."""
    for r in ctx.runs:
        attrs = r.ds.attrs
        ens = attrs.get("ensemble", "unknown")
        eq = (f"after {attrs['equilibration_ps']:g} ps of {attrs.get('equilibration_ensemble')} equilibration "
              f"(store run {attrs.get('equilibration_run')}, not analysed)" if attrs.get("equilibration_run") else
              "with no separate equilibration")
        ctx.report.notes.append(f"{r.label} run {r.run_id}: {ens} production at nominal "
                                f"{attrs.get('temperature_K', float('nan')):g} K, {eq}.")
        if ens == "langevin":
            ctx.report.notes.append(f"{r.label} run {r.run_id} is a Langevin run: its D, hop rates and kernels "
                                    "include the thermostat's friction (biased).")
        if "velocities" in r.ds:
            recipe = f"value = kinetic_temperature(T({r.run_id!r}), 'Ag')\n"
            ns = ctx.number(f"T_kin_Ag_{r.label}", f"kinetic temperature of Ag⁺, {r.label}", recipe, "K", r.source,
                            params=_fmt_params(species="Ag", frames="all stored", dof_per_atom=3))
            ctx.temperature[r.label] = (float(ns["value"]), recipe)
        if "energy_drift_eV_per_atom_per_ps" in attrs:
            ctx.number(f"nve_drift_{r.label}", f"NVE energy drift, {r.label}",
                       f"value = T({r.run_id!r}).attrs['energy_drift_eV_per_atom_per_ps']\n", "eV/atom/ps", r.source,
                       params=_fmt_params(fit="least squares of (U+K)/N against t",
                                          span_ps=attrs.get("energy_drift_span_ps")))


def _fit_range(ctx: Context, r: RunRef, species: str, max_lag: float) -> tuple:
    """(fit_range, plateau): None when the MSD has a diffusive regime; else the second half of the lags (noted
    in the report), with ``plateau`` True when the MSD does not even grow there."""
    try:
        ctx.compute(_d_recipe(r.run_id, species, max_lag, None))
        return None, False
    except A.TransportError as err:  # a short run: fit the second half of the lags, and say so
        lags = ctx.compute(_d_recipe(r.run_id, species, max_lag, None).splitlines()[0])["m_d"]["lag"].values
        fit_range = (float(lags[len(lags) // 2]), float(lags[-1]))
        why = str(err)
    try:
        ctx.compute(_d_recipe(r.run_id, species, max_lag, fit_range))
    except A.TransportError as err:
        ctx.report.notes.append(f"D({species}), {r.label}: {why}; and {err}: the MSD has a plateau (no diffusion "
                                f"measured). D is the least-squares slope/6 over lags {fit_range[0]:.3g}–"
                                f"{fit_range[1]:.3g} ps, with no error.")
        return fit_range, True
    ctx.report.notes.append(f"D({species}), {r.label}: {why}. Fitted over lags {fit_range[0]:.3g}–"
                            f"{fit_range[1]:.3g} ps instead: not a converged diffusion coefficient.")
    return fit_range, False


def transport(ctx: Context) -> None:
    """MSD of Ag and I, D with its error (GLS fit), D(I)/D(Ag); figure msd.png."""
    curves = []
    for r in ctx.runs:
        L = _lag_max(r.ds)
        for sp in ("Ag", "I"):
            fit_range, plateau = _fit_range(ctx, r, sp, L)
            ctx.diffusion[(r.label, sp)] = (L, fit_range, plateau)
            recipe = (_d_recipe(r.run_id, sp, L, fit_range, plateau)
                      + "value, stderr = float(d['D']), float(d['D_stderr'])\n")
            ns = ctx.number(f"D_{sp}_{r.label}", f"D({sp}), {r.label}", recipe, "Å²/ps", r.source, has_error=True,
                            params=_fmt_params(max_lag_ps=L, fit_range_ps=fit_range or "automatic (diffusive regime)",
                                               fit="least squares (MSD plateau)" if plateau else "GLS",
                                               origins="all", algorithm="FFT"))
            curves.append((ns["m_d"], f"{sp}, {r.label}"))
    ctx.report.curves("msd.png", "Mean-squared displacement",
                      f"MSD over all time origins, FFT algorithm. Data: {ctx.cite}.", curves)
    for r in ctx.runs:
        if ctx.out[f"D_Ag_{r.label}"] > 0:
            recipe = (ctx.d_recipe(r, "I", var="d_i") + ctx.d_recipe(r, "Ag")
                      + "value = float(d_i['D']) / float(d['D'])\n")
            ctx.number(f"D_ratio_{r.label}", f"D(I)/D(Ag), {r.label}", recipe, "—", r.source,
                       params={"from": "the two D above"})


def vacf_vdos(ctx: Context) -> None:
    """Ag⁺ VACF, its Green–Kubo D and the VDOS; figures vacf.png, vdos.png."""
    vcurves, dcurves = [], []
    for r in ctx.runs:
        if "velocities" not in r.ds:
            continue
        L = min(VACF_MAX_LAG_PS, _lag_max(r.ds))
        recipe = (f"c = A.vacf(T({r.run_id!r}), 'Ag', max_lag_ps={L!r}).compute()\n"
                  "gk = A.green_kubo(c)\n"
                  "value = float(gk.isel(lag=-1)) if 'lag' in gk.dims else float(gk)\n")
        ns = ctx.number(f"D_GK_Ag_{r.label}", f"D(Ag) Green–Kubo, {r.label}", recipe, "Å²/ps", r.source,
                        params=_fmt_params(max_lag_ps=L, integral="trapezoid up to max_lag"))
        c = ns["c"]
        vcurves.append((c / float(c.isel(lag=0)), f"Ag, {r.label}"))
        dcurves.append((A.vdos(c, normalize=True), f"Ag, {r.label}"))
    ctx.report.curves("vacf.png", "Ag⁺ velocity autocorrelation", f"C(t)/C(0), all origins. Data: {ctx.cite}.",
                      vcurves, ylabel="C(t)/C(0)", hline=0.0)
    ctx.report.curves("vdos.png", "Ag⁺ vibrational density of states",
                      f"Cosine transform of the VACF. Data: {ctx.cite}.", dcurves, ylabel="VDOS (normalised)",
                      xlim=(0, 10))
