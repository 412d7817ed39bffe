r"""Ionic conductivity, Nernst–Einstein estimate, Haven ratio and jump diffusion.

The ionic conductivity follows from the mean-squared displacement of the
*charge* (the Einstein–Helfand relation), a collective quantity:

.. math::

    \mathbf X(t) = \sum_i q_i\,\mathbf r_i(t), \qquad
    \sigma = \lim_{t\to\infty} \frac{\langle|\mathbf X(t_0+t) - \mathbf X(t_0)|^2\rangle_{t_0}}{6\,V k_B T\,t}
           = \frac{D_X}{V k_B T}

with r the unwrapped positions, q_i the charges (e), V the mean cell
volume and T the temperature; D_X = slope/6 is the "diffusion
coefficient" of the charge displacement X (e²Å²/ps). Neglecting every
cross-correlation ⟨Δr_i·Δr_j⟩ (i ≠ j) gives the Nernst–Einstein estimate
from the tracer diffusion coefficients D_s:

.. math:: \sigma_{NE} = \frac{1}{V k_B T}\sum_s N_s q_s^2 D_s

and the Haven ratio H_R = σ_NE/σ (1 for uncorrelated ions; < 1 when
ions move in concert, as in the concerted Ag⁺ hops of α-AgI).

Units: q in e, positions in Å, time in ps, V in Å³, k_B T in eV; then
1 e²/(Å·ps·eV) = 16.02 S/cm. Results are in S/cm.

Estimation. Both MSDs are computed over all time origins
(:func:`~agi_data.analysis.msd`, on positions unwrapped by
:func:`~agi_data.analysis.unwrap`) and fitted by generalised least squares
with the random-walk covariance of all-origins MSD lags
(:func:`~agi_data.analysis.diffusion_coefficient`), over one common fit
window: by default the diffusive window found on the MSD of the fastest
species. X is a single "particle", so the relative error of σ is roughly
√N larger than that of the tracer D's: conductivity needs long runs.

Charges. ``charges`` maps element → charge in e; the default uses formal
charges of the ions this project knows (:data:`FORMAL_CHARGES`: Ag +1,
I −1, …). Every species present must have a charge — in NVE or NVT the
iodide recoil is part of σ — and the charges must sum to zero over the
cell (else X, and σ, would depend on the centre-of-mass drift).

References
----------
Einstein–Helfand: E. Helfand, Phys. Rev. 119, 1 (1960). Haven ratio: Y.
Haven & B. Verkerk, Phys. Chem. Glasses 6, 38 (1965); G. E. Murch, Solid
State Ionics 7, 177 (1982). Collective MSD with a random-walk covariance:
A. R. McCluskey et al., J. Chem. Theory Comput. 20, 7445 (2024) (kinisi).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..units import KB_EV_PER_K
from .hops import hops
from .transport import diffusion_coefficient, msd, unwrap

__all__ = ["ConductivityError", "FORMAL_CHARGES", "conductivity", "haven_ratio", "jump_diffusion"]

# --- conversion factors (move to units.py) ------------------------------------------------------
#: elementary charge, C (exact, SI 2019). # move to units.py
ELEMENTARY_CHARGE_C = 1.602176634e-19
#: 1 e²/(Å·ps·eV) in S/cm: e/(V·Å·ps) = 1.602176634e-19 C / (1e-10 m · 1e-12 s) per V = 1602.18 S/m. # move to units.py
E2_PER_A_PS_EV_IN_S_PER_CM = ELEMENTARY_CHARGE_C / (1e-10 * 1e-12) / 100.0

#: formal charges (e) of the ions of superionic conductors this project studies
FORMAL_CHARGES: dict[str, float] = {
    "Ag": 1.0, "Cu": 1.0, "Li": 1.0, "Na": 1.0, "K": 1.0,
    "F": -1.0, "Cl": -1.0, "Br": -1.0, "I": -1.0, "O": -2.0, "S": -2.0, "Se": -2.0,
}


class ConductivityError(ValueError):
    """A conductivity cannot be computed as asked: charges, temperature or volume missing or inconsistent."""


# ------------------------------------------------------------------------------------- inputs

def _symbols(traj: xr.Dataset) -> np.ndarray:
    if "symbol" in traj.coords:
        return np.asarray(traj["symbol"].values).astype(str)
    from ..elements import symbols

    return np.asarray(symbols(traj["species"].values))


def atom_charges(traj: xr.Dataset, charges: Mapping[str, float] | None = None) -> tuple[np.ndarray, dict]:
    """Charge of every atom (e) from an element → charge map (default :data:`FORMAL_CHARGES`).

    Raises :class:`ConductivityError` when a species present has no charge
    or the charges do not sum to zero over the cell.
    """
    sym = _symbols(traj)
    present = sorted(set(sym.tolist()))
    table = dict(FORMAL_CHARGES if charges is None else charges)
    missing = [s for s in present if s not in table]
    if missing:
        example = ", ".join(f"'{s}': {table.get(s, FORMAL_CHARGES.get(s, 'q'))}" for s in present)
        why = "has no formal charge known" if charges is None else "is missing from charges"
        raise ConductivityError(
            f"species {missing} {why}: pass charges={{{example}}} (in e, one per species present; "
            "every species counts, also the slow ones)"
        )
    q = np.array([float(table[s]) for s in sym])
    total = q.sum()
    if abs(total) > 1e-6 * max(1.0, np.abs(q).sum()):
        raise ConductivityError(
            f"the charges {{{', '.join(f'{s!r}: {table[s]:g}' for s in present)}}} sum to {total:g} e over the "
            "cell; σ of a charged cell depends on its centre-of-mass drift: give charges of a neutral cell"
        )
    return q, {s: float(table[s]) for s in present}


def _temperature(traj: xr.Dataset, temperature_K: float | None) -> float:
    t = temperature_K if temperature_K is not None else traj.attrs.get("temperature_K")
    if t is None:
        raise ConductivityError("the run records no temperature_K: pass temperature_K= (K)")
    t = float(t)
    if not np.isfinite(t) or t <= 0:
        raise ConductivityError(f"temperature_K must be > 0 K, got {t!r}")
    return t


def _volume(traj: xr.Dataset, volume_A3: float | None) -> float:
    if volume_A3 is not None:
        v = float(volume_A3)
    elif "cell" in traj.variables:
        v = float(np.abs(xr.apply_ufunc(np.linalg.det, traj["cell"].astype(np.float64),
                                        input_core_dims=[["vec", "xyz"]], dask="parallelized",
                                        output_dtypes=[np.float64])).mean())
    else:
        raise ConductivityError("the trajectory has no cell: pass volume_A3= (Å³)")
    if not np.isfinite(v) or v <= 0:
        raise ConductivityError(f"the volume must be > 0 Å³, got {v!r}")
    return v


# ------------------------------------------------------------------------------------- MSDs

def _charge_msd(traj: xr.Dataset, q: np.ndarray, max_lag: float | None) -> xr.DataArray:
    """MSD of X(t) = Σ q_i u_i(t), in e²Å², as :func:`msd` of a one-particle trajectory."""
    u = unwrap(traj)["positions"]
    X = (u * xr.DataArray(q, dims="atom")).sum("atom").compute()
    one = xr.Dataset(
        {"positions": (("time", "atom", "xyz"), X.values[:, None, :], {"units": "e·Å", "unwrapped": True})},
        coords={"time": traj["time"].values, "species": ("atom", traj["species"].values[:1])},
        attrs={k: traj.attrs[k] for k in ("timestep_ps", "run_id") if k in traj.attrs},
    )
    out = msd(one, max_lag_ps=max_lag)
    out.attrs.update(units="e^2·Å^2", long_name="mean-squared charge displacement", species=[])
    return out.rename("msd_charge")


def _fit_window(tracer: dict[str, xr.DataArray], fit_range) -> tuple[float, float]:
    """The common fit window: as given, or the diffusive window of the fastest species."""
    if fit_range is not None:
        return tuple(float(v) for v in fit_range)
    fastest = max(tracer, key=lambda s: float(tracer[s].isel(lag=-1)))
    fit = diffusion_coefficient(tracer[fastest])
    return float(fit["fit_start"]), float(fit["fit_end"])


# ------------------------------------------------------------------------------------- public

def conductivity(traj: xr.Dataset, *, charges: Mapping[str, float] | None = None,
                 temperature_K: float | None = None, volume_A3: float | None = None,
                 fit_range: tuple[float, float] | None = None, max_lag: float | None = None,
                 max_points: int = 64) -> xr.Dataset:
    r"""Ionic conductivity σ (Einstein–Helfand) and the Nernst–Einstein σ_NE, with standard errors, in S/cm.

    See the module docstring for the equations and the estimator.

    Parameters
    ----------
    traj
        Trajectory in the store's schema (``positions``, ``cell``; wrapped or
        unwrapped).
    charges
        Element → charge in e, one per species present (default
        :data:`FORMAL_CHARGES`); must sum to zero over the cell.
    temperature_K, volume_A3
        Default: ``attrs["temperature_K"]`` and the mean cell volume.
    fit_range
        (t_start, t_end) ps of the linear fits; default: the diffusive window
        of the fastest species' MSD, used for every fit.
    max_lag
        Longest lag (ps) of the MSDs (default: the whole run).

    Returns
    -------
    Dataset: ``sigma``, ``sigma_stderr``, ``sigma_ne``, ``sigma_ne_stderr``
    (S/cm); ``D_charge``, ``D_charge_stderr`` (e²Å²/ps); ``D_tracer`` and
    ``D_tracer_stderr`` over ``species`` (Å²/ps); ``msd_charge(lag)``
    (e²Å²). attrs: ``temperature_K``, ``volume_A3``, ``charges``,
    ``D_tracer`` (element → Å²/ps), ``fit_start``/``fit_end`` (ps),
    ``chi2_reduced`` of the charge fit, ``method``, ``units``.
    """
    q, table = atom_charges(traj, charges)
    T = _temperature(traj, temperature_K)
    V = _volume(traj, volume_A3)
    if traj.sizes["time"] < 4:
        raise ConductivityError(f"a conductivity needs a trajectory of several frames; this one has {traj.sizes['time']}")
    species = sorted(table)
    tracer = {s: msd(traj, s, max_lag_ps=max_lag).compute() for s in species}
    window = _fit_window(tracer, fit_range)
    fits = {s: diffusion_coefficient(tracer[s], window, max_points=max_points) for s in species}
    m_charge = _charge_msd(traj, q, max_lag)
    fit_x = diffusion_coefficient(m_charge, window, max_points=max_points)
    scale = E2_PER_A_PS_EV_IN_S_PER_CM / (V * KB_EV_PER_K * T)
    sym = _symbols(traj)
    n = {s: int((sym == s).sum()) for s in species}
    D = np.array([float(fits[s]["D"]) for s in species])
    D_err = np.array([float(fits[s]["D_stderr"]) for s in species])
    weights = np.array([n[s] * table[s] ** 2 for s in species])
    sigma_ne = scale * float(weights @ D)
    sigma_ne_err = scale * float(np.sqrt((weights**2) @ (D_err**2)))
    s_units = "S/cm"
    out = xr.Dataset(
        {
            "sigma": ((), scale * float(fit_x["D"]), {"units": s_units, "long_name": "ionic conductivity (Einstein-Helfand)"}),
            "sigma_stderr": ((), scale * float(fit_x["D_stderr"]), {"units": s_units}),
            "sigma_ne": ((), sigma_ne, {"units": s_units, "long_name": "Nernst-Einstein conductivity"}),
            "sigma_ne_stderr": ((), sigma_ne_err, {"units": s_units}),
            "D_charge": ((), float(fit_x["D"]), {"units": "e^2·Å^2/ps"}),
            "D_charge_stderr": ((), float(fit_x["D_stderr"]), {"units": "e^2·Å^2/ps"}),
            "D_tracer": ("species", D, {"units": "Å^2/ps", "long_name": "tracer diffusion coefficient"}),
            "D_tracer_stderr": ("species", D_err, {"units": "Å^2/ps"}),
            "msd_charge": m_charge,
        },
        coords={"species": species},
    )
    out.attrs = {
        "temperature_K": T, "volume_A3": V, "charges": table, "n_atoms": n,
        "D_tracer": dict(zip(species, D.tolist())), "fit_start": window[0], "fit_end": window[1],
        "chi2_reduced": float(fit_x["chi2_reduced"]),
        "method": "Einstein-Helfand: GLS fit of the all-origins MSD of the charge displacement with the "
                  "random-walk covariance of one walker; Nernst-Einstein from tracer D's fitted on the same window",
        "units": s_units,
    }
    if "run_id" in traj.attrs:
        out.attrs["run_id"] = str(traj.attrs["run_id"])
    return out


def haven_ratio(traj: xr.Dataset, *, charges: Mapping[str, float] | None = None, **conductivity_kwargs
                ) -> xr.DataArray:
    r"""Haven ratio H_R = σ_NE / σ with its standard error (first-order propagation).

    .. math:: \delta H_R = H_R\sqrt{(\delta\sigma_{NE}/\sigma_{NE})^2 + (\delta\sigma/\sigma)^2}

    ``traj``: a trajectory (then ``charges`` and ``conductivity_kwargs`` go
    to :func:`conductivity`) or the Dataset :func:`conductivity` returned.
    Returns a dimensionless scalar DataArray; ``attrs["stderr"]``, ``sigma``
    and ``sigma_ne`` (S/cm) and the conductivity's attrs.
    """
    res = traj if "sigma" in getattr(traj, "data_vars", {}) else conductivity(traj, charges=charges,
                                                                              **conductivity_kwargs)
    s, ds = float(res["sigma"]), float(res["sigma_stderr"])
    ne, dne = float(res["sigma_ne"]), float(res["sigma_ne_stderr"])
    if not s > 0:
        raise ConductivityError(f"σ = {s:g} S/cm is not positive: the charge displacement does not grow over the "
                                f"fit window ({res.attrs['fit_start']:g}, {res.attrs['fit_end']:g}) ps")
    h = ne / s
    err = abs(h) * math.hypot(dne / ne if ne else 0.0, ds / s)
    attrs = {k: v for k, v in res.attrs.items() if k not in ("units", "method")}
    return xr.DataArray(h, name="haven_ratio", attrs={
        **attrs, "units": "1", "stderr": err, "sigma": s, "sigma_stderr": ds, "sigma_ne": ne,
        "sigma_ne_stderr": dne, "long_name": "Haven ratio sigma_NE / sigma"})


def jump_diffusion(hop_table_or_traj, *, traj: xr.Dataset | None = None, species: str | None = None,
                   **hops_kwargs) -> xr.DataArray:
    r"""Jump diffusion coefficient from the hops of one species, in Å²/ps, with its standard error.

    .. math:: D_J = \frac{1}{6\,N\,t_\mathrm{run}}\sum_{k} \lambda_k^2, \qquad
              \delta D_J = \frac{\sqrt{\sum_k \lambda_k^4}}{6\,N\,t_\mathrm{run}}

    the random-walk diffusion coefficient of uncorrelated site-to-site jumps
    (N ions over the run length t_run; the error treats the hops as a
    compound Poisson process). The jump length λ_k is the distance between
    the ion's mean unwrapped positions over its stays before and after hop
    k (thermal rattling averages out; periodic images are handled by
    :func:`~agi_data.analysis.unwrap`). D_J/D (tracer) is the correlation
    factor f of the jumps.

    Parameters
    ----------
    hop_table_or_traj
        The table :func:`~agi_data.analysis.hops` returned (then pass the
        trajectory as ``traj=``), or a trajectory (hops are computed with
        ``species``, default ``"Ag"``, and ``hops_kwargs``).

    Returns a scalar DataArray; attrs ``stderr``, ``n_hops``, ``n_atoms``,
    ``duration_ps``, ``mean_jump_length_A``.
    """
    if isinstance(hop_table_or_traj, xr.Dataset):
        traj = hop_table_or_traj
        table = hops(traj, "Ag" if species is None else species, **hops_kwargs)
    elif isinstance(hop_table_or_traj, pd.DataFrame):
        table = hop_table_or_traj
        if traj is None:
            raise ConductivityError("jump lengths come from the positions: pass the trajectory as traj=")
        if hops_kwargs:
            raise ConductivityError(f"options {sorted(hops_kwargs)} apply when computing hops from a trajectory")
    else:
        raise ConductivityError(f"expected a trajectory Dataset or the table from hops(), got "
                                f"{type(hop_table_or_traj).__name__}")
    for key in ("n_atoms", "duration_ps", "n_frames"):
        if key not in table.attrs:
            raise ConductivityError(f"the hop table lacks attrs[{key!r}]: pass the table hops() returned")
    if table.attrs["n_frames"] != traj.sizes["time"]:
        raise ConductivityError(f"the hop table covers {table.attrs['n_frames']} frames, the trajectory "
                                f"{traj.sizes['time']}: pass the trajectory the hops were found in")
    lengths = _jump_lengths(table, traj)
    n_atoms, dur = int(table.attrs["n_atoms"]), float(table.attrs["duration_ps"])
    norm = 6.0 * n_atoms * dur
    return xr.DataArray(float((lengths**2).sum() / norm), name="D_jump", attrs={
        "units": "Å^2/ps", "stderr": float(np.sqrt((lengths**4).sum()) / norm), "n_hops": int(lengths.size),
        "n_atoms": n_atoms, "duration_ps": dur,
        "mean_jump_length_A": float(lengths.mean()) if lengths.size else float("nan"),
        "species": table.attrs.get("species"), "long_name": "jump diffusion coefficient",
        "method": "sum of squared site-to-site jump lengths / (6 N t_run)"})


def _jump_lengths(table: pd.DataFrame, traj: xr.Dataset) -> np.ndarray:
    """|mean position in the stay after − mean position in the stay before| for each hop, Å."""
    out = []
    atoms = sorted(set(table["atom"].tolist()))
    if not atoms:
        return np.zeros(0)
    u = unwrap(traj)["positions"].isel(atom=atoms).compute().values  # (T, n_hopping, 3)
    T = u.shape[0]
    for k, (_, group) in enumerate(table.sort_values(["atom", "frame"]).groupby("atom", sort=True)):
        bounds = [0, *group["frame"].tolist(), T]
        means = [u[a:b, k].mean(axis=0) for a, b in zip(bounds[:-1], bounds[1:])]
        out.extend(np.linalg.norm(np.diff(means, axis=0), axis=1))
    return np.asarray(out, dtype=np.float64)
