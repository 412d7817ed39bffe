"""The report's steps on the GLE memory kernels of Ag⁺: the kernels with the Einstein ratio, their
jackknife errors and the two models' difference, and the kernels next to rotating and still iodides."""

from __future__ import annotations

import numpy as np

from .context import KERNEL_BLOCKS, KERNEL_MAX_LAG_PS, Context, RunRef, _fmt_params, _lag_max


def _kernel_recipe(ctx: Context, r: RunRef, max_lag: float, blocks: int | None = None, var: str = "K") -> str:
    """Lines that set ``t_kin`` (the measured Ag⁺ temperature) and ``<var>`` (the Ag⁺ force-route kernel, with a
    jackknife error over ``blocks`` time blocks when given)."""
    t_recipe = ctx.temperature[r.label][1].replace("value =", "t_kin =")
    extra = f", blocks={blocks!r}" if blocks else ""
    return (t_recipe + f"{var} = A.memory_kernel(T({r.run_id!r}), 'Ag', method='force', max_lag_ps={max_lag!r}, "
            f"temperature=t_kin, on_unstable='truncate'{extra})\n")


def memory_kernels(ctx: Context) -> None:
    """Ag⁺ memory kernels (force route, C(0) from the measured temperature), ∫K dt and the Einstein ratio
    ∫K/(k_BT/(mD)) beside each kernel; figure memory_kernel.png."""
    curves = []
    for r in ctx.runs:
        if "forces" not in r.ds or "velocities" not in r.ds or r.label not in ctx.temperature:
            continue
        L = min(KERNEL_MAX_LAG_PS, _lag_max(r.ds, 0.25))
        kernel = _kernel_recipe(ctx, r, L)
        params = _fmt_params(method="force (second-kind Volterra)", max_lag_ps=L,
                             temperature_K=f"measured, {ctx.temperature[r.label][0]:.1f}", on_unstable="truncate")
        ns = ctx.number(f"friction_Ag_{r.label}", f"Ag⁺ friction ∫K dt, {r.label}",
                        kernel + "value = float(np.asarray(A.friction_coefficient(K)).ravel()[-1])\n", "1/ps",
                        r.source, params=params)
        label = f"Ag⁺, {r.label}"
        if ctx.out.get(f"D_Ag_{r.label}", 0) > 0:
            ratio = (kernel + ctx.d_recipe(r, "Ag")
                     + "value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']\n")
            ns_r = ctx.number(f"einstein_ratio_{r.label}", f"Einstein ratio ∫K/(k_BT/(mD)), {r.label}", ratio, "—",
                              r.source, params={**params, "D": f"D(Ag), {r.label} above"})
            label += f" (∫K/(k_BT/mD) = {float(ns_r['value']):.2f})"
        curves.append((ns["K"], label))
    ctx.report.curves("memory_kernel.png", "Ag⁺ friction (memory) kernel",
                      "Second-kind Volterra inversion from ⟨F·F⟩ and ⟨v·F⟩ (Carof et al. 2014), C(0) = 3k_BT/m "
                      f"with the measured kinetic temperature; the legend gives the Einstein ratio. Data: {ctx.cite}.",
                      curves, hline=0.0)


#: lines that set ``value`` (∫K dt) and ``stderr`` (its jackknife error) of a kernel ``K`` with replicates
_FRICTION_WITH_ERROR = """\
reps = np.asarray(K.attrs['block_replicates'], dtype=float)
ok = np.isfinite(reps).all(axis=0) & np.isfinite(K.values)
n_ok = int(np.argmin(ok)) if not ok.all() else ok.size  # the leading lags where every replicate is finite
dt = float(K['lag'][1] - K['lag'][0])
g = np.trapezoid(reps[:, :n_ok], dx=dt, axis=1)
value = float(np.trapezoid(K.values[:n_ok], dx=dt))
stderr = float(np.sqrt((len(g) - 1) / len(g) * ((g - g.mean()) ** 2).sum()))
"""


def _kernel_error_lag(r: RunRef) -> float:
    """The longest lag (ps) of the kernel with errors: the report's kernel lag, shortened where needed so that
    the run holds :data:`KERNEL_BLOCKS` blocks of origins each at least that long (0 when it cannot)."""
    t = r.ds["time"].values
    if t.size < 2:
        return 0.0
    dt = float(t[1] - t[0])
    longest = (t.size // KERNEL_BLOCKS - 1) * dt  # a block of n frames holds lags up to (n - 1) dt
    return round(max(0.0, min(KERNEL_MAX_LAG_PS, _lag_max(r.ds, 0.25), longest)), 9)


def kernel_statistics(ctx: Context) -> None:
    """Ag⁺ kernels with jackknife error bands (:data:`KERNEL_BLOCKS` blocks of origins), ∫K dt and the Einstein
    ratio with their errors, and the difference of the two models' kernels with its global test
    (:func:`~agi_data.analysis.compare_kernels`); figures memory_kernel_bands.png, kernel_difference.png.
    A run shorter than :data:`KERNEL_BLOCKS` × the longest lag gets no error (said in the notes)."""
    kernels, curves = {}, []
    for r in ctx.runs:
        if "forces" not in r.ds or "velocities" not in r.ds or r.label not in ctx.temperature:
            continue
        L = _kernel_error_lag(r)
        if L < 10 * float(r.ds["time"].values[1] - r.ds["time"].values[0]):
            ctx.report.notes.append(
                f"{r.label}: no kernel error bands — {KERNEL_BLOCKS} blocks of origins leave lags of only {L:g} ps "
                f"in a run of {_lag_max(r.ds, 1.0):g} ps.")
            continue
        if L < min(KERNEL_MAX_LAG_PS, _lag_max(r.ds, 0.25)):
            ctx.report.notes.append(f"{r.label}: the kernel with error bands stops at {L:g} ps, the longest lag "
                                    f"{KERNEL_BLOCKS} blocks of origins of this run hold.")
        recipe = _kernel_recipe(ctx, r, L, KERNEL_BLOCKS) + _FRICTION_WITH_ERROR
        params = _fmt_params(method="force (second-kind Volterra)", max_lag_ps=L, blocks=KERNEL_BLOCKS,
                             error="delete-one-block jackknife", temperature_K="measured")
        ns = ctx.number(f"friction_Ag_err_{r.label}", f"Ag⁺ friction ∫K dt with its jackknife error, {r.label}",
                        recipe, "1/ps", r.source, params=params, has_error=True)
        kernels[r.label] = (r, L)
        if ctx.out.get(f"D_Ag_{r.label}", 0) > 0 and not ctx.diffusion[(r.label, "Ag")][2]:
            ratio = (recipe + ctx.d_recipe(r, "Ag")
                     + "g_se, d_se = stderr / value, float(d['D_stderr']) / float(d['D'])\n"
                     + "value = A.friction_coefficient(K, float(d['D']), temperature=t_kin).attrs['einstein_ratio']\n"
                     + "stderr = abs(value) * float(np.hypot(g_se, d_se))\n")
            ctx.number(f"einstein_ratio_err_{r.label}", f"Einstein ratio with its error, {r.label}", ratio, "—",
                       r.source, params={**params, "D": f"D(Ag), {r.label}; errors of ∫K and D in quadrature"},
                       has_error=True)
        curves.append((ns["K"], f"Ag⁺, {r.label}"))
    if not curves:
        return
    ctx.report.curves("memory_kernel_bands.png", "Ag⁺ memory kernels with error bands",
                      f"Force-route kernels; bands: ± one jackknife standard error over {KERNEL_BLOCKS} blocks of "
                      f"time origins. Data: {ctx.cite}.", curves, hline=0.0)
    if len(kernels) < 2:
        return
    (ra, la), (rb, lb) = list(kernels.values())[:2]
    if not np.isclose(float(ra.ds.attrs.get("timestep_ps", 0)), float(rb.ds.attrs.get("timestep_ps", -1))):
        ctx.report.notes.append("The two runs store frames at different intervals: their kernels are not compared "
                                "lag by lag.")
        return
    L = min(la, lb)
    recipe = (_kernel_recipe(ctx, ra, L, KERNEL_BLOCKS, var="Ka") + _kernel_recipe(ctx, rb, L, KERNEL_BLOCKS, var="Kb")
              + "cmp = A.compare_kernels(Ka, Kb)\n")
    params = _fmt_params(a=ra.label, b=rb.label, max_lag_ps=L, blocks=KERNEL_BLOCKS, test="compare_kernels")
    ns = ctx.number("friction_difference", f"∫(K_{ra.label} − K_{rb.label}) dt", recipe
                    + "value, stderr = cmp.attrs['friction_difference'], cmp.attrs['friction_difference_stderr']\n",
                    "1/ps", ctx.cite, params=params, has_error=True)
    ctx.number("p_friction", "p of the friction difference (Student t)", recipe + "value = cmp.attrs['p_friction']\n",
               "—", ctx.cite, params=params)
    ctx.number("p_global", "p of the global test over all lags (Hotelling T²)",
               recipe + "value = cmp.attrs['p_global']\n", "—", ctx.cite, params=params)
    cmp = ns["cmp"]
    diff = cmp["difference"].assign_coords(stderr=cmp["stderr"])
    ctx.report.curves("kernel_difference.png", f"K_{ra.label} − K_{rb.label}",
                      f"Difference of the Ag⁺ kernels, band ± one jackknife standard error; global test over all lags "
                      f"p = {cmp.attrs['p_global']:.3g} (per-lag |z| > 3 at {cmp.attrs['n_lags_beyond_3sigma']} "
                      f"lags, descriptive only). Data: {ctx.cite}.", [(diff, "difference")], hline=0.0)


def conditioned_kernels(ctx: Context) -> None:
    """Kernels of Ag⁺ next to rotating and next to still iodides (:func:`~agi_data.analysis.paddlewheel_mask`,
    tercile thresholds of the site's lone-pair angular speed from the predicted moments, every frame), each with
    jackknife bands and ∫K dt, and their difference with its global test (kernels_rotating_still.png)."""
    r = ctx.runs[0]
    wrun = ctx.wannier_run or r.run_id
    if wrun != r.run_id or f"electronic:{wrun}" not in ctx.report.versions:
        return  # no predictions on this run (paddlewheels_model says so)
    if "forces" not in r.ds or "velocities" not in r.ds:
        ctx.report.notes.append(f"{r.label}: no rotating-versus-still kernels — the run stores no forces or velocities.")
        return
    L = _kernel_error_lag(r)
    if L < 10 * float(r.ds["time"].values[1] - r.ds["time"].values[0]):
        ctx.report.notes.append(f"{r.label}: no rotating-versus-still kernels — {KERNEL_BLOCKS} blocks of origins "
                                f"leave lags of only {L:g} ps.")
        return
    base = (f"m = A.paddlewheel_mask(T({wrun!r}), E({wrun!r}))\n"
            + "".join(f"K{c[0]} = A.memory_kernel(T({wrun!r}), 'Ag', method='force', max_lag_ps={L!r}, "
                      f"atoms=m[{c!r}], on_unstable='truncate', blocks={KERNEL_BLOCKS!r})\n"
                      for c in ("rotating", "still")))
    params = _fmt_params(mask="paddlewheel_mask: mean lone-pair angular speed of the 4 nearest I⁻, terciles",
                         source="predicted moments, every frame", method="force (second-kind Volterra)",
                         max_lag_ps=L, blocks=KERNEL_BLOCKS, error="delete-one-block jackknife",
                         temperature_K="of the selected samples' own velocities (C(0))")
    src = f"{r.source}; moments of the lone-pair model"
    curves = []
    try:
        for c in ("rotating", "still"):
            ns = ctx.number(f"friction_Ag_{c}", f"Ag⁺ friction ∫K dt next to {c} iodides, {r.label}",
                            base + f"K = K{c[0]}\n" + _FRICTION_WITH_ERROR, "1/ps", src, params=params, has_error=True)
            curves.append((ns["K"], f"Ag⁺ next to {c} I⁻"))
        cmp_recipe = base + "cmp = A.compare_kernels(Kr, Ks)\n"
        ctx.number("p_global_rotating_still", "p of the global test, rotating vs still (Hotelling T²)",
                   cmp_recipe + "value = cmp.attrs['p_global']\n", "—", src, params=params)
    except ValueError as err:
        ctx.report.notes.append(f"Rotating-versus-still kernels not computed: {err}")
        return
    ctx.report.curves("kernels_rotating_still.png", "Ag⁺ kernels next to rotating and next to still iodides",
                      f"Force-route kernels of time origins where the Ag⁺'s site iodides rotate fast (top tercile of "
                      f"their mean lone-pair angular speed) or slowly (bottom tercile), from the moments the lone-pair "
                      f"model predicted on every frame (a stationary sub-ensemble approximation: labels live ~0.3 ps); "
                      f"bands ± one jackknife standard error over {KERNEL_BLOCKS} blocks. Data: {src}.", curves,
                      hline=0.0)
