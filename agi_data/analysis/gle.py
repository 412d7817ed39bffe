r"""Generalized Langevin equation: memory (friction) kernels from trajectories.

The mass-normalised GLE of a tagged ion (docs/analysis-gle.md)

.. math:: m\dot v(t) = -m\int_0^t K(t-s)\,v(s)\,ds + \delta F(t)

gives, with the velocity autocorrelation function (VACF)
:math:`C(t)=\langle v(0)\cdot v(t)\rangle` and :math:`\langle v(0)\cdot\delta F(t)\rangle = 0`,
two Volterra equations for K (units ps⁻²):

* first kind: :math:`\dot C(t) = -\int_0^t K(s)\,C(t-s)\,ds`;
* second kind (Berne & Harp, Adv. Chem. Phys. 17, 63 (1970)):
  :math:`K(t)C(0) = -\ddot C(t) - \int_0^t K(t-s)\,\dot C(s)\,ds`.

With the forces stored along the trajectory the derivatives need no numerical
differencing: :math:`\ddot C(t) = -\langle F(0)\cdot F(t)\rangle/m^2` and
:math:`\dot C(t) = \langle v(0)\cdot F(t)\rangle/m`, with :math:`C(0)=3k_BT/m`.

All three are discretised with the trapezoidal rule on the frame grid
:math:`t_n = n\,\Delta t`, explicit in :math:`K_n` (Carof, Vuilleumier &
Rotenberg, J. Chem. Phys. 140, 124103 (2014)):

.. math::

    K_n\,a = r_n - \Delta t\Big[\sum_{m=1}^{n-1} K_{n-m}\,g_m + \tfrac12 K_0\,g_n\Big],

second kind: :math:`r=-\ddot C,\ g=\dot C,\ a=C(0)+\tfrac12\Delta t\,\dot C(0),\ K_0 = -\ddot C(0)/C(0)`;
first kind: :math:`r=-\dot C,\ g=C,\ a=\tfrac12\Delta t\,C(0)`, with the same K₀.
The recursion runs compiled (numba) in blocks, the history of earlier
blocks added by one FFT convolution per block — the same explicit recursion
to rounding, 20 000 lags in a few tens of ms (``benchmarks/gle.py``).

Correlations come from :func:`agi_data.analysis.correlate.correlate` (FFT,
all time origins, unbiased). A time-dependent selection h_i(t₀) (e.g. "this
Ag⁺ sits next to a rotating iodide") weights the **time origins**:
:math:`C_{ab}(t) = \sum_{i,t_0} h_i(t_0)\,a_i(t_0)\cdot b_i(t_0+t) / \sum_{i,t_0} h_i(t_0)`.
The force method then treats the selected (atom, origin) pairs as a
stationary sub-ensemble (:math:`\ddot C \approx -\langle F(0)\cdot F(t)\rangle_h/m^2`),
an approximation that holds while h changes slowly on the time scale of K.
A subset's C(0) is its own :math:`\langle v\cdot v\rangle_h`, not 3k_BT/m at
the nominal temperature (also for NVE runs, whose kinetic temperature is
not the nominal one). ``memory_kernel(..., blocks=n)`` adds a jackknife
error over blocks of origins (:mod:`agi_data.analysis.blocks`). A caged ion
(harmonic well ω₀ plus bath) has K(t) = ω₀² + K_bath(t): the kernel does not
decay to zero (:class:`agi_data.testing.gle.CagedKernel`).

A Dask-backed trajectory from the store is read block by block over atoms
(the whole time axis per block); memory is bounded by the block.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence

import numba
import numpy as np
import xarray as xr
from scipy.fft import irfft, next_fast_len, rfft

from ..elements import mass as element_mass
from ..elements import symbols
from ..units import AMU_A2_PS2_IN_EV, CM2_PER_S_IN_A2_PER_PS, KB_EV_PER_K, kT_over_m
from ._common import atom_indices, compute, frame_step, lag_step, n_lags, require
from .blocks import block_edges, jackknife, jackknife_replicates_from_sums, origin_block_sums
from .correlate import correlate, lag_coordinate
from .ensemble import ensemble_attrs
from .errors import GLEInputError, KernelInstabilityError, SchemaError

__all__ = [
    "memory_kernel",
    "memory_kernel_from_correlations",
    "friction_coefficient",
    "gle_correlations",
    "volterra_trapezoid",
    "GLEInputError",
    "KernelInstabilityError",
    "TemperatureMismatchWarning",
    "INSTABILITY_FACTOR",
    "TEMPERATURE_WARN_FACTOR",
]

#: The inversion is declared unstable at the first lag where |K| exceeds this
#: multiple of K(0) (or is not finite). A true kernel is, by the
#: fluctuation–dissipation theorem, proportional to a force autocorrelation,
#: so |K(t)| ≤ K(0) (Cauchy–Schwarz): 10× K(0) is far outside noise.
INSTABILITY_FACTOR = 10.0

#: Warn when the temperature given (or read from attrs) and the kinetic
#: temperature of the selected atoms' velocities differ by more than this factor.
TEMPERATURE_WARN_FACTOR = 1.25

METHODS = ("force", "vacf", "first")
REFERENCE = "Carof, Vuilleumier & Rotenberg, J. Chem. Phys. 140, 124103 (2014)"
UNITS = {"vacf": "Å^2/ps^2", "force_autocorrelation": "eV^2/Å^2", "velocity_force": "eV/ps"}
_CORR_NAMES = {"vacf": "⟨v(0)·v(t)⟩", "force_autocorrelation": "⟨F(0)·F(t)⟩", "velocity_force": "⟨v(0)·F(t)⟩"}
_AMU = AMU_A2_PS2_IN_EV  # u·Å²/ps² in eV: F[eV/Å] / (m[u]·_AMU) is in Å/ps²


class TemperatureMismatchWarning(UserWarning):
    """The temperature used differs from the kinetic temperature of the velocities."""


# --------------------------------------------------------------------------------------------
# the O(n²) trapezoidal recursion


_FASTMATH = {"reassoc", "contract", "arcp", "nsz"}  # reorder the sums (SIMD); keep nan/inf checks valid

#: frames per block of the blocked recursion (history by FFT, the block by the compiled loop)
BLOCK = 1024


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _volterra_numba(r, g, a, k0, dt, bound):  # pragma: no cover - compiled
    n = r.shape[0]
    k = np.empty(n)
    krev = np.empty(n)  # krev[n-1-j] = k[j]: the convolution sum reads both arrays forwards (SIMD)
    k[0] = k0
    krev[n - 1] = k0
    for i in range(1, n):
        off = n - 1 - i
        s = 0.0
        for m in range(1, i):
            s += krev[off + m] * g[m]
        ki = (r[i] - dt * (s + 0.5 * k0 * g[i])) / a
        if not (abs(ki) <= bound):  # also catches nan/inf
            return k[:i], i
        k[i] = ki
        krev[off] = ki
    return k, n


@numba.njit(cache=True, nogil=True, fastmath=_FASTMATH)
def _volterra_block(r, g, a, k0, dt, bound, k, hist, i0, i1):  # pragma: no cover - compiled
    """K_i for i in [i0, i1), given hist[i − i0] = Σ_{j=1}^{i0−1} K_j g_{i−j}; returns the first unstable i or i1."""
    for i in range(max(i0, 1), i1):
        s = hist[i - i0]
        for j in range(max(i0, 1), i):
            s += k[j] * g[i - j]
        ki = (r[i] - dt * (s + 0.5 * k0 * g[i])) / a
        if not (abs(ki) <= bound):
            return i
        k[i] = ki
    return i1


def _volterra_blocked(r, g, a, k0, dt, bound, block=BLOCK):
    """The same recursion, block by block: the history of earlier blocks by one FFT convolution per block.

    O(K²/B · log K + K·B) instead of O(K²); equal to the plain recursion to rounding (~1e-16 relative).
    """
    n = r.shape[0]
    k = np.zeros(n)
    k[0] = k0
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        if i0 > 1:  # Σ_{j=1}^{i0-1} K_j g_{i-j} for i in [i0, i1): linear convolution, no wrap-around for n_fft ≥ i1
            n_fft = next_fast_len(i1, real=True)
            head = np.zeros(n_fft)
            head[1:i0] = k[1:i0]
            hist = irfft(rfft(head) * rfft(g[:i1], n=n_fft), n=n_fft)[i0:i1]
        else:
            hist = np.zeros(i1 - i0)
        stop = _volterra_block(r, g, a, k0, dt, bound, k, np.ascontiguousarray(hist), i0, i1)
        if stop < i1:
            return k[:stop], stop
    return k, n


def _volterra_loop(r, g, a, k0, dt, bound):
    """The same recursion as a plain numpy per-step loop (the benchmark's baseline)."""
    n = r.shape[0]
    k = np.empty(n)
    k[0] = k0
    for i in range(1, n):
        s = np.dot(k[i - 1:0:-1], g[1:i]) if i > 1 else 0.0
        ki = (r[i] - dt * (s + 0.5 * k0 * g[i])) / a
        if not (abs(ki) <= bound):
            return k[:i], i
        k[i] = ki
    return k, n


_ENGINES = {"blocked": _volterra_blocked, "numba": _volterra_numba, "numpy": _volterra_loop}


def volterra_trapezoid(r: np.ndarray, g: np.ndarray, a: float, k0: float, dt: float, *,
                       bound: float = np.inf, engine: str = "blocked") -> tuple[np.ndarray, int]:
    r"""Solve :math:`K_n a = r_n - \Delta t[\sum_{m=1}^{n-1}K_{n-m}g_m + \tfrac12 K_0 g_n]` for n ≥ 1.

    The trapezoidal discretisation, explicit in :math:`K_n`, of both kinds of
    GLE Volterra equation (see the module docstring; Carof et al. 2014).
    Returns ``(K, n_stable)``: the recursion stops at the first n where
    |K_n| > ``bound`` or K_n is not finite, and K holds the stable values
    K_0..K_{n_stable-1}.

    ``engine``: ``"blocked"`` (default: blocks of :data:`BLOCK` steps by a
    compiled loop, the history of earlier blocks by an FFT convolution — the
    same recursion, ~10× faster at 20 000 lags), ``"numba"`` (the compiled
    O(K²) loop) or ``"numpy"`` (a plain per-step loop, for comparison).
    """
    r = np.ascontiguousarray(r, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64)
    if r.ndim != 1 or g.shape != r.shape:
        raise GLEInputError(f"r and g must be 1-D arrays of the same length, got {r.shape} and {g.shape}")
    if a == 0 or not np.isfinite(a):
        raise GLEInputError(f"the coefficient of K_n is {a!r}: C(0) must be positive and finite")
    func = _ENGINES.get(engine)
    if func is None:
        raise GLEInputError(f"engine must be one of {sorted(_ENGINES)}, got {engine!r}")
    k, n = func(r, g, float(a), float(k0), float(dt), float(bound))
    return np.asarray(k), int(n)


def _derivatives(c: np.ndarray, dt: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ċ and C̈ at lags 0..n-1 by central differences of the even function C (C(−t) = C(t))."""
    ext = np.concatenate([c[1:2], c])  # C_{-1} = C_1
    if ext.size < n + 2:  # no C_n beyond the last lag: quadratic extrapolation (C̈ constant over the end)
        ext = np.append(ext, 3 * ext[-1] - 3 * ext[-2] + ext[-3])
    c_dot = (ext[2:n + 2] - ext[0:n]) / (2 * dt)
    c_ddot = (ext[2:n + 2] - 2 * ext[1:n + 1] + ext[0:n]) / dt**2
    return c_dot, c_ddot


def _invert_1d(method, n, dt, c0, mass_u, bound_factor, vacf=None, ff=None, vf=None):
    """One inversion on numpy arrays; returns (K (n_stable,), n_stable, K(0)). K-units: ps⁻²."""
    m_a = None if mass_u is None else mass_u * _AMU  # eV·ps²/Å²
    if method == "force" or (method == "first" and ff is not None):
        c_ddot0 = -ff[0] / m_a**2
        c_dot = np.asarray(vf[:n]) / m_a
    else:
        c = np.asarray(vacf)
        c_dot, c_ddot = _derivatives(c, dt, n)
        ratio = c[1] / c[0]
        # K(0) = −C̈(0)/C(0) from the first lag as −2 ln(C(Δt)/C(0))/Δt²: the central difference to
        # O(Δt²) for a smooth VACF, and exact for an exponential one too (the Markovian limit, whose
        # cusp makes the central difference O(Δt) low: ½K(0)Δt must equal γ there).
        c_ddot0 = 2.0 * c[0] * np.log(ratio) / dt**2 if 0.0 < ratio < 1.0 else c_ddot[0]
    k0 = -c_ddot0 / c0
    if not k0 > 0:
        raise GLEInputError(
            f"K(0) = −C̈(0)/C(0) = {k0:.4g} ps⁻² is not positive: ⟨F·F⟩ (or the curvature of the VACF at 0) "
            "must be positive — check the units of the forces/velocities and that they are not all zero")
    if method == "force":
        r, g, a = np.asarray(ff[:n]) / m_a**2, c_dot, c0 + 0.5 * dt * c_dot[0]
    elif method == "vacf":
        r, g, a = -c_ddot, c_dot, c0 + 0.5 * dt * c_dot[0]
    else:  # first kind
        r, g, a = -c_dot, np.asarray(vacf[:n]), 0.5 * dt * c0
    k, n_ok = volterra_trapezoid(r, g, a, k0, dt, bound=bound_factor * k0)
    return k, n_ok, k0


# --------------------------------------------------------------------------------------------
# input handling


def _as_scalar_mass(mass) -> float:
    if isinstance(mass, (str, np.str_)):
        return element_mass(str(mass))
    return float(mass)


def _normalise_units(u: str) -> str:
    return str(u).replace(" ", "").replace("²", "^2").replace("**", "^").replace("Å", "A").replace("ang", "A")


def _check_units(da: xr.DataArray, name: str) -> None:
    u = da.attrs.get("units")
    if u is not None and _normalise_units(u) != _normalise_units(UNITS[name]):
        raise GLEInputError(f"{name} has units {u!r}; expected {UNITS[name]!r} (convert it first)")


def _selection(traj: xr.Dataset, species, atoms):
    """(trajectory of the selected atoms, origin weights h(atom, time) or None, symbol)."""
    present = np.asarray(traj["species"].values)
    if species is None:
        if np.unique(present).size != 1:
            raise GLEInputError("the trajectory holds several elements "
                                f"({sorted(set(symbols(np.unique(present))))}): pass species='Ag' (one element: "
                                "the kernel is mass-normalised)")
        species = symbols(present[:1])[0]
    if not isinstance(species, (str, int, np.integer)):
        raise GLEInputError(f"species must be one element (symbol or atomic number), got {species!r}")
    index = atom_indices(traj, species)
    sel = traj.isel(atom=index)
    symbol = symbols([int(sel["species"].values[0])])[0]
    if atoms is None:
        return sel, None, symbol
    n_all, n_sel = traj.sizes["atom"], index.size
    if isinstance(atoms, xr.DataArray):
        if "atom" not in atoms.dims or not set(atoms.dims) <= {"atom", "time"}:
            raise GLEInputError(f"an atoms DataArray must have dims ('atom',) or ('atom', 'time'), got {atoms.dims}")
        mask = atoms.transpose("atom", ...).drop_vars([c for c in atoms.coords if c not in ("time",)])
    else:
        arr = np.asarray(atoms)
        if arr.dtype != bool:  # atom indices into the trajectory
            arr = arr.astype(int).ravel()
            bad = np.setdiff1d(arr, index)
            if bad.size:
                raise GLEInputError(f"atoms {bad[:10].tolist()} are not {symbol} atoms of this trajectory "
                                    f"(or out of range 0..{n_all - 1})")
            return sel.isel(atom=np.flatnonzero(np.isin(index, arr))), None, symbol
        if arr.ndim not in (1, 2):
            raise GLEInputError(f"a boolean atoms mask must be (atom,) or (atom, time), got shape {arr.shape}")
        mask = xr.DataArray(arr, dims=("atom", "time")[:arr.ndim])
    if mask.sizes["atom"] == n_all:
        mask = mask.isel(atom=index)
    elif mask.sizes["atom"] != n_sel:
        raise GLEInputError(f"the atoms mask has {mask.sizes['atom']} atoms; expected {n_all} (all atoms) "
                            f"or {n_sel} (the {symbol} atoms)")
    if "time" not in mask.dims:
        keep = np.flatnonzero(np.asarray(mask.values, dtype=bool))
        if keep.size == 0:
            raise GLEInputError("the atoms mask selects no atom")
        return sel.isel(atom=keep), None, symbol
    if mask.sizes["time"] != sel.sizes["time"]:
        raise GLEInputError(f"the atoms mask has {mask.sizes['time']} frames, the trajectory {sel.sizes['time']}")
    if "time" in mask.coords:
        mask = mask.drop_vars("time")
    return sel, mask.astype(np.float64), symbol


def _origin_average(corr: xr.DataArray, weights: xr.DataArray | None, n_frames: int) -> xr.DataArray:
    """Average per-atom all-origin correlations, with origin weights h(atom, time) when given.

    ``correlate`` divides each lag m by its T − m origins; with weights the
    sum Σ_{i,t0} h_i(t0) a_i(t0)·b_i(t0+m) is divided instead by
    N_m = Σ_i Σ_{t0 ≤ T−1−m} h_i(t0).
    """
    if weights is None:
        return corr.mean("atom")
    lag = np.arange(corr.sizes["lag"])
    counts = weights.sum("atom").cumsum("time")  # S(k) = Σ_i Σ_{t0 ≤ k} h_i(t0)
    n_origins = counts.isel(time=xr.DataArray(n_frames - 1 - lag, dims="lag")).drop_vars("time", errors="ignore")
    return (corr * xr.DataArray(n_frames - lag, dims="lag")).sum("atom") / n_origins


def gle_correlations(traj: xr.Dataset, species: str | int | None = "Ag", *, max_lag_ps: float = 1.0,
                     atoms=None, which: Sequence[str] = ("vacf", "force_autocorrelation", "velocity_force"),
                     extra_lag: bool = False, progress: bool | None = None) -> xr.Dataset:
    r"""The correlation functions the GLE inversions need, averaged over the selected atoms.

    ``vacf`` :math:`\langle v(0)\cdot v(t)\rangle` (Å²/ps²),
    ``force_autocorrelation`` :math:`\langle F(0)\cdot F(t)\rangle` (eV²/Å²) and
    ``velocity_force`` :math:`\langle v(0)\cdot F(t)\rangle` (eV/ps), all time
    origins (FFT, :func:`~agi_data.analysis.correlate.correlate`), over
    ``lag`` in ps up to ``max_lag_ps`` (one more lag with ``extra_lag``, for
    central differences). ``atoms`` as in :func:`memory_kernel`. Attrs:
    ``mass_u``, ``species``, ``timestep_ps``, ``n_atoms``, ``n_frames``,
    ``n_samples`` (selected atom × origin pairs at lag 0) and
    ``kinetic_temperature_K`` = m⟨|v|²⟩/(3k_B) over the same pairs.
    """
    if not isinstance(traj, xr.Dataset):
        raise SchemaError(f"expected a trajectory xarray.Dataset, got {type(traj).__name__}")
    if "velocities" not in traj.variables:
        raise SchemaError("the trajectory has no velocities(time, atom, xyz): the GLE kernel needs them "
                          "(write velocities when running the MD)")
    needs_forces = {"force_autocorrelation", "velocity_force"} & set(which)
    if needs_forces and "forces" not in traj.variables:
        raise SchemaError("the trajectory has no forces(time, atom, xyz), needed for "
                          f"{sorted(needs_forces)}; use method='vacf' for trajectories stored without forces")
    require(traj, "velocities", *(["forces"] if needs_forces else []))
    dynamics = ensemble_attrs(traj, "the GLE correlations", stacklevel=4)
    dt = frame_step(traj)
    n_frames = traj.sizes["time"]
    n_lag = n_lags(n_frames, dt, max_lag_ps, min_lags=3, error=GLEInputError)
    n_corr = min(n_lag + 1, n_frames) if extra_lag else n_lag
    sel, weights, symbol = _selection(traj, species, atoms)
    mass_u = element_mass(symbol)

    v = sel["velocities"]
    f = sel["forces"] if needs_forces else None
    w = weights
    if w is not None and v.chunks is not None:
        w = w.chunk({"atom": v.chunks[1]})
    hv = v if w is None else v * w
    pairs = {"vacf": (hv, v), "force_autocorrelation": (None, f), "velocity_force": (hv, f)}
    out = {}
    for name in which:
        if name not in pairs:
            raise GLEInputError(f"unknown correlation {name!r}; choose from {sorted(pairs)}")
        a, b = pairs[name]
        if name == "force_autocorrelation":
            a = f if w is None else f * w
        out[name] = _origin_average(correlate(a, b, n_lags=n_corr), w, n_frames)
    v2 = (v.astype(np.float64) ** 2).sum("xyz")
    out["_v2"] = v2.mean() if w is None else (v2 * w).sum() / w.sum()
    out["_n"] = xr.DataArray(float(sel.sizes["atom"] * n_frames)) if w is None else w.sum()
    big = v.chunks is not None and v.size > 5e7
    show = big if progress is None else progress
    keys = list(out)
    vals = compute(*[out[k] for k in keys], progress=show)
    res = dict(zip(keys, vals))
    n_samples = float(res.pop("_n"))
    if n_samples == 0:
        raise GLEInputError("the atoms mask selects no (atom, time) pair")
    for name, val in res.items():
        if name != "_v2" and not np.all(np.isfinite(val.values)):
            last = int(np.flatnonzero(np.isfinite(val.values))[-1]) if np.isfinite(val.values[0]) else 0
            raise GLEInputError(f"the atoms mask selects no time origin early enough for lags beyond "
                                f"{last * dt:g} ps (the origins must lie max_lag_ps before the end); "
                                f"choose max_lag_ps ≤ {last * dt:g} or a mask with earlier origins")
    v2 = float(res.pop("_v2"))
    meta = dict(species=symbol, mass_u=mass_u, timestep_ps=dt, n_atoms=int(sel.sizes["atom"]),
                n_frames=int(n_frames), n_samples=n_samples, time_dependent_selection=weights is not None,
                kinetic_temperature_K=mass_u * _AMU * v2 / (3 * KB_EV_PER_K), run_id=traj.attrs.get("run_id", ""),
                **dynamics)
    if traj.attrs.get("temperature_K") is not None:
        meta["temperature_K"] = float(traj.attrs["temperature_K"])
    # every variable carries the metadata, so that one of them alone feeds memory_kernel_from_correlations
    ds = xr.Dataset({k: val.assign_attrs(units=UNITS[k], long_name=_CORR_NAMES[k], **meta) for k, val in res.items()})
    return ds.assign_coords(lag=lag_coordinate(n_corr, dt)).assign_attrs(meta)


def _resolve_temperature(temperature, attrs_t, kinetic_t):
    if temperature is not None:
        t, src = float(temperature), "argument"
    elif attrs_t is not None:
        t, src = float(attrs_t), "attrs"
    elif kinetic_t is not None:
        return float(kinetic_t), "velocities"
    else:
        raise GLEInputError("no temperature: pass temperature=… (K), or give the trajectory a temperature_K attr")
    if not t > 0:
        raise GLEInputError(f"temperature must be positive, got {t} K")
    if kinetic_t is not None and max(t / kinetic_t, kinetic_t / t) > TEMPERATURE_WARN_FACTOR:
        warnings.warn(f"the temperature used ({t:g} K, from the {src}) differs from the kinetic temperature of "
                      f"the selected velocities ({kinetic_t:.4g} K) by more than a factor "
                      f"{TEMPERATURE_WARN_FACTOR}: C(0) = 3k_BT/m and hence K will be scaled wrongly; check the "
                      "temperature or the velocity units", TemperatureMismatchWarning, stacklevel=3)
    return t, src


# --------------------------------------------------------------------------------------------
# public API


def memory_kernel_from_correlations(vacf: xr.DataArray | None = None, *,
                                    force_autocorrelation: xr.DataArray | None = None,
                                    velocity_force: xr.DataArray | None = None,
                                    method: str = "force", mass=None, temperature: float | None = None,
                                    max_lag_ps: float | None = None, on_unstable: str = "raise",
                                    instability_factor: float = INSTABILITY_FACTOR) -> xr.DataArray:
    r"""Memory kernel K(t) (ps⁻²) from correlation functions computed elsewhere.

    Parameters
    ----------
    vacf
        :math:`\langle v(0)\cdot v(t)\rangle` in Å²/ps² over ``lag`` (ps), for
        ``method="vacf"`` or ``"first"``; one lag beyond the last wanted one
        makes the last central difference exact. For ``"force"`` optional:
        C(0) = vacf[0] when no temperature is known.
    force_autocorrelation, velocity_force
        :math:`\langle F(0)\cdot F(t)\rangle` in eV²/Å² and
        :math:`\langle v(0)\cdot F(t)\rangle` in eV/ps, for ``method="force"``
        (and for ``"first"``, which then takes Ċ and K(0) from them).
    method
        ``"force"`` (second kind from the forces), ``"vacf"`` (second kind from
        VACF derivatives by central differences) or ``"first"`` (first kind).
    mass
        in u, or an element symbol; default: the inputs' ``mass_u`` attr.
    temperature
        K; default: the inputs' ``temperature_K`` attr, else the kinetic
        temperature m·vacf(0)/(3k_B). Used for C(0) = 3k_BT/m by ``"force"``;
        ``"vacf"`` and ``"first"`` take C(0) from the VACF itself.
    max_lag_ps
        Longest lag of the kernel (ps); default: all the lags of the inputs
        (the last VACF derivative then uses a one-sided extrapolation).
    on_unstable
        ``"raise"`` (:class:`KernelInstabilityError` naming the lag) or
        ``"truncate"`` (return only the lags before the instability; attr
        ``unstable_from_ps``).

    Any dimension other than ``lag`` (runs, subsets) is kept: one inversion each.
    Returns a DataArray ``memory_kernel(…, lag)`` in ps⁻² with attrs method,
    source, timestep_ps, temperature_K, mass_u, c0, discretisation, reference.
    """
    if method not in METHODS:
        raise GLEInputError(f"method must be one of {METHODS}, got {method!r}")
    if on_unstable not in ("raise", "truncate"):
        raise GLEInputError(f"on_unstable must be 'raise' or 'truncate', got {on_unstable!r}")
    given = {"vacf": vacf, "force_autocorrelation": force_autocorrelation, "velocity_force": velocity_force}
    given = {k: v for k, v in given.items() if v is not None}
    needed = {"force": ("force_autocorrelation", "velocity_force"), "vacf": ("vacf",), "first": ("vacf",)}[method]
    missing = [k for k in needed if k not in given]
    if missing:
        raise GLEInputError(f"method={method!r} needs {missing}")
    for k, da in given.items():
        if not isinstance(da, xr.DataArray):
            raise GLEInputError(f"{k} must be an xarray.DataArray over 'lag', got {type(da).__name__}")
        _check_units(da, k)
    use_forces = method == "force" or (method == "first" and
                                       {"force_autocorrelation", "velocity_force"} <= set(given))
    names = [k for k in ("vacf", "force_autocorrelation", "velocity_force")
             if k in given and (k in needed or (use_forces and k != "vacf"))]
    steps = {k: lag_step(given[k], k, GLEInputError) for k in names}
    dt = next(iter(steps.values()))
    if not np.allclose(list(steps.values()), dt, rtol=1e-6):
        raise GLEInputError(f"the inputs have different lag steps {steps}")
    inputs = xr.align(*[given[k] for k in names], join="inner", exclude=["lag"])
    first_attrs = {k: v for da in given.values() for k, v in da.attrs.items()}
    n_avail = min(da.sizes["lag"] for k, da in zip(names, inputs) if k != "vacf" or not use_forces)
    n = n_lags(n_avail, dt, max_lag_ps, min_lags=3, what="the correlations", error=GLEInputError)
    mass_u = _as_scalar_mass(mass if mass is not None else first_attrs.get("mass_u", np.nan))
    if method == "force" or use_forces:
        if not mass_u > 0:
            raise GLEInputError("the force correlations need the mass: pass mass=… (u or element symbol)")
    kin_t = None
    if "vacf" in given and mass_u > 0:
        kin_t = float(given["vacf"].isel(lag=0).mean()) * mass_u * _AMU / (3 * KB_EV_PER_K)
    elif "kinetic_temperature_K" in first_attrs:
        kin_t = float(first_attrs["kinetic_temperature_K"])
    temp, t_src = _resolve_temperature(temperature, first_attrs.get("temperature_K"), kin_t)
    c0_force = 3.0 * kT_over_m(temp, mass_u) if mass_u > 0 else np.nan

    stable = [n]
    k0s = []

    def one(*arrays):
        arrs = dict(zip(names, arrays))
        c0 = c0_force if method == "force" else arrs["vacf"][0]
        k, n_ok, k0 = _invert_1d(method, n, dt, c0, mass_u, instability_factor, vacf=arrs.get("vacf"),
                                 ff=arrs.get("force_autocorrelation"), vf=arrs.get("velocity_force"))
        stable.append(n_ok)
        k0s.append(k0)
        out = np.full(n, np.nan)
        out[:n_ok] = k
        return out

    # the VACF keeps one lag more (central differences): give each input its own core dimension
    trimmed = [da.isel(lag=slice(0, n + 1 if k == "vacf" else n)).drop_vars("lag").rename(lag=f"_lag{i}")
               for i, (k, da) in enumerate(zip(names, inputs))]
    core = [[f"_lag{i}"] for i in range(len(trimmed))]
    kern = xr.apply_ufunc(one, *trimmed, input_core_dims=core, output_core_dims=[["_klag"]],
                          vectorize=True, dask="forbidden")
    kern = kern.rename({"_klag": "lag"}).assign_coords(lag=lag_coordinate(n, dt))
    n_ok = min(stable)
    attrs = {
        "units": "ps^-2", "long_name": "memory kernel K(t) (mass-normalised)",
        "method": method, "source": "forces" if use_forces else "vacf",
        "timestep_ps": dt, "temperature_K": temp, "temperature_source": t_src, "mass_u": mass_u,
        "c0": c0_force if method == "force" else float(given["vacf"].isel(lag=0).mean()),
        "c0_units": "Å^2/ps^2",
        "discretisation": f"trapezoidal {'first' if method == 'first' else 'second'}-kind Volterra, explicit in K(t_n)",
        "reference": REFERENCE,
    }
    for key in ("species", "n_samples", "n_atoms", "n_frames", "run_id", "kinetic_temperature_K",
                "time_dependent_selection", "ensemble", "thermostat"):
        if key in first_attrs:
            attrs[key] = first_attrs[key]
    kern = kern.rename("memory_kernel").assign_attrs(attrs)
    if n_ok < n:
        lag_ps = n_ok * dt
        good = kern.isel(lag=slice(0, n_ok)).assign_attrs(unstable_from_ps=lag_ps)
        if on_unstable == "truncate":
            return good
        raise KernelInstabilityError(
            f"the {method!r} inversion became unstable at lag {lag_ps:.6g} ps (step {n_ok} of {n}): |K| exceeded "
            f"{instability_factor:g} × K(0) ≈ {instability_factor * max(k0s):.4g} ps⁻² or was not finite. "
            f"Use max_lag_ps < {lag_ps:.6g}, more samples, method='force' (more stable than "
            f"{'first' if method == 'first' else 'vacf'}), or on_unstable='truncate'.",
            lag_ps, n_ok, good)
    return kern


def memory_kernel(traj: xr.Dataset, species: str | int | None = "Ag", *, method: str = "force",
                  max_lag_ps: float = 1.0, temperature: float | None = None, atoms=None,
                  on_unstable: str = "raise", progress: bool | None = None,
                  blocks: int | None = None) -> xr.DataArray:
    r"""The GLE memory kernel K(t) of one species, mass-normalised (ps⁻²).

    Solves :math:`m\dot v = -m\int_0^t K(t-s)v(s)ds + \delta F` for K by a
    trapezoidal Volterra inversion explicit in :math:`K(t_n)` (Carof,
    Vuilleumier & Rotenberg, J. Chem. Phys. 140, 124103 (2014)):

    * ``"force"``: second kind from the stored forces,
      :math:`K(t)C(0) = \langle F(0)\cdot F(t)\rangle/m^2 - \int_0^t K(t-s)\langle v(0)\cdot F(s)\rangle/m\,ds`,
      :math:`C(0) = 3k_BT/m` — no numerical derivatives;
    * ``"vacf"``: second kind, :math:`K(t)C(0) = -\ddot C(t) - \int_0^t K(t-s)\dot C(s)ds`,
      derivatives of the VACF by central differences (trajectories without forces);
    * ``"first"``: first kind, :math:`\dot C(t) = -\int_0^t K(s)C(t-s)ds` (for
      comparison; marginally stable, its errors alternate in sign).

    Parameters
    ----------
    traj
        Trajectory Dataset in the store schema, with ``velocities`` (and
        ``forces`` for ``"force"``), equally spaced frames.
    species
        One element (the kernel is per unit mass; the mass is the element's).
    max_lag_ps
        Longest lag (ps); at least two frame intervals, at most the trajectory.
    temperature
        K, for C(0) = 3k_BT/m of the force route. Default: for a subset
        (``atoms`` given) or an NVE run, the **kinetic temperature of the
        selected samples**, so that C(0) is their own ⟨v·v⟩ (a subset of
        fast or slow ions, or a run whose temperature drifted, is not at the
        nominal temperature); otherwise the ``temperature_K`` attr, else the
        kinetic temperature. ``temperature_source`` in the attrs says which.
        A value that disagrees with the velocities by more than
        :data:`TEMPERATURE_WARN_FACTOR` warns (:class:`TemperatureMismatchWarning`).
    atoms
        Subset of the species' atoms: atom indices into the trajectory, a
        boolean mask over atoms, or a boolean mask over (atom, time) (numpy
        or a DataArray with dims ``atom``, ``time``), sized for all atoms or
        for the species' atoms. A time-dependent mask selects **time
        origins**: the average runs over the (atom, t₀) pairs where it is
        true, e.g. Ag⁺ next to rotating iodides versus next to still ones.
    on_unstable
        ``"raise"`` (default) or ``"truncate"``; see
        :class:`KernelInstabilityError`.
    blocks
        Opt-in standard error: the delete-one-block **jackknife** over this
        many blocks of time origins (≥ 8, each at least ``max_lag_ps`` long;
        :mod:`agi_data.analysis.blocks`) — the kernel is a non-linear
        estimator, so block means would be biased. Each replicate is inverted
        exactly as the whole-run kernel (with its own C(0) where that comes
        from the velocities). The result gains a coordinate ``stderr(lag)``
        and attrs ``error_method``, ``n_blocks``, ``block_ps`` and
        ``block_replicates`` (ndarray (blocks, lag): the replicates, for
        :func:`agi_data.analysis.compare_kernels`). The shortest run that
        supports it is 8 × ``max_lag_ps``.

    A run whose ``ensemble`` attr is ``langevin`` warns
    (:class:`~agi_data.analysis.ensemble.ThermostatWarning`); the attrs
    ``ensemble`` and ``thermostat`` say which dynamics the kernel comes from.

    Returns
    -------
    DataArray ``memory_kernel(lag)`` in ps⁻², lag in ps; attrs ``method``,
    ``timestep_ps``, ``temperature_K``, ``n_samples`` (atom × origin pairs),
    ``n_atoms``, ``n_frames``, ``mass_u``, ``species``, ``c0``.
    """
    if method not in METHODS:
        raise GLEInputError(f"method must be one of {METHODS}, got {method!r}")
    if method == "force" and isinstance(traj, xr.Dataset) and "forces" not in traj.variables:
        raise SchemaError("method='force' needs forces(time, atom, xyz) and the trajectory has none; "
                          "use method='vacf' for trajectories stored without forces")
    has_forces = isinstance(traj, xr.Dataset) and "forces" in traj.variables
    which = {"force": ("force_autocorrelation", "velocity_force"),
             "vacf": ("vacf",),
             "first": ("vacf", "force_autocorrelation", "velocity_force") if has_forces else ("vacf",)}[method]
    corr = gle_correlations(traj, species, max_lag_ps=max_lag_ps, atoms=atoms, which=which,
                            extra_lag=method in ("vacf", "first"), progress=progress)
    own_c0 = temperature is None and (atoms is not None or corr.attrs.get("ensemble") == "nve")
    t_used = corr.attrs["kinetic_temperature_K"] if own_c0 else temperature
    args = {k: corr[k] for k in corr.data_vars}
    if max_lag_ps is not None:  # the correlations rounded a lag between grid points down: the kernel follows
        step = lag_step(next(iter(args.values())), "the correlations", GLEInputError)
        max_lag_ps = math.floor(float(max_lag_ps) / step + 1e-6) * step
    kern = memory_kernel_from_correlations(args.get("vacf"),
                                           force_autocorrelation=args.get("force_autocorrelation"),
                                           velocity_force=args.get("velocity_force"), method=method,
                                           mass=corr.attrs["mass_u"], temperature=t_used,
                                           max_lag_ps=max_lag_ps, on_unstable=on_unstable)
    if own_c0:
        kern.attrs.update(temperature_source="kinetic temperature of the selected samples (C(0) = their ⟨v·v⟩)")
    if blocks is None:
        return kern
    return _kernel_jackknife(kern, traj, species, atoms, which=which, blocks=blocks, own_c0=own_c0)


def _kernel_jackknife(kern: xr.DataArray, traj: xr.Dataset, species, atoms, *, which, blocks: int,
                      own_c0: bool) -> xr.DataArray:
    """The kernel's delete-one-block jackknife error (see ``memory_kernel(blocks=…)``)."""
    sel, weights, _ = _selection(traj, species, atoms)
    dt, n_frames = kern.attrs["timestep_ps"], sel.sizes["time"]
    n_k = kern.sizes["lag"]
    n_corr = min(n_k + 1, n_frames) if kern.attrs["method"] in ("vacf", "first") else n_k
    edges = block_edges(n_frames, blocks, n_corr, dt_ps=dt)
    v = sel["velocities"]
    f = sel["forces"] if "forces" in sel.variables else None
    pairs = {"vacf": (v, v), "force_autocorrelation": (f, f), "velocity_force": (v, f)}
    reps = {name: jackknife_replicates_from_sums(*origin_block_sums(*pairs[name], weights, edges, n_corr))
            for name in which}
    v2 = jackknife_replicates_from_sums(*origin_block_sums(v, v, weights, edges, 1))[:, 0]
    mass_u = kern.attrs["mass_u"]
    meta = {k: kern.attrs[k] for k in ("mass_u", "species") if k in kern.attrs}
    lag = lag_coordinate(n_corr, dt)
    out = np.full((blocks, n_k), np.nan)
    for j in range(blocks):
        corr = {name: xr.DataArray(reps[name][j], dims="lag", coords={"lag": lag}, attrs={"units": UNITS[name], **meta})
                for name in which}
        t_j = mass_u * _AMU * v2[j] / (3 * KB_EV_PER_K) if own_c0 else kern.attrs["temperature_K"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TemperatureMismatchWarning)
            k_j = memory_kernel_from_correlations(corr.get("vacf"), force_autocorrelation=corr.get("force_autocorrelation"),
                                                  velocity_force=corr.get("velocity_force"), method=kern.attrs["method"],
                                                  mass=mass_u, temperature=t_j, max_lag_ps=(n_k - 1) * dt,
                                                  on_unstable="truncate")
        out[j, :k_j.sizes["lag"]] = k_j.values
    se, _ = jackknife(out)
    return kern.assign_coords(stderr=("lag", se, {"units": "ps^-2", "long_name": "jackknife standard error"})) \
        .assign_attrs(error_method=f"delete-one-block jackknife over {blocks} blocks of time origins",
                      n_blocks=int(blocks), block_ps=float(np.mean(np.diff(edges))) * dt,
                      block_edges_frames=edges.tolist(), block_replicates=out, run_fingerprint=_fingerprint(traj))


def _fingerprint(traj: xr.Dataset) -> str:
    """A short digest of the run's first frame: kernels with equal digests (and blocks) come from one run."""
    first = np.ascontiguousarray(np.asarray(traj["positions"].isel(time=0).values))
    return hashlib.sha1(first.tobytes() + str(traj.sizes["time"]).encode()).hexdigest()[:16]


def friction_coefficient(kernel: xr.DataArray, diffusion=None, *, cumulative: bool = False,
                         temperature: float | None = None, mass=None) -> xr.DataArray:
    r"""The friction coefficient :math:`\gamma = \int_0^{t_{max}} K(t)\,dt` (ps⁻¹).

    Trapezoidal rule over the kernel's ``lag`` (ps); ``cumulative=True``
    gives the running integral over ``lag`` (its plateau is the answer).

    With a diffusion coefficient ``diffusion`` (Å²/ps; a float or a
    DataArray with ``units`` Å²/ps or cm²/s) the attrs also carry the
    Einstein consistency check: for a free GLE particle
    :math:`\int_0^\infty K\,dt = k_BT/(mD)`; ``einstein_friction_per_ps``
    = k_BT/(mD) and ``einstein_ratio`` = ∫K / (k_BT/(mD)) (1 when consistent;
    for ``cumulative=True`` from the integral up to the last lag). For a
    caged ion K tends to ω₀² and ∫K grows without bound: the check applies
    only to the diffusive long-time limit.
    Temperature and mass default to the kernel's attrs.
    """
    if not isinstance(kernel, xr.DataArray) or "lag" not in kernel.dims or "lag" not in kernel.coords:
        raise GLEInputError("friction_coefficient takes a memory kernel DataArray with a 'lag' coordinate (ps)")
    lag = np.asarray(kernel["lag"].values, dtype=np.float64)
    if cumulative:
        gamma = kernel.cumulative_integrate("lag")
    else:
        gamma = kernel.integrate("lag")
    attrs = {"units": "ps^-1", "long_name": "friction coefficient ∫K dt", "t_max_ps": float(lag[-1])}
    for key in ("method", "species", "temperature_K", "mass_u", "run_id", "ensemble", "thermostat"):
        if key in kernel.attrs:
            attrs[key] = kernel.attrs[key]
    if diffusion is not None:
        d = diffusion
        units = getattr(d, "attrs", {}).get("units", "Å^2/ps")
        d = float(np.asarray(getattr(d, "values", d)))
        if _normalise_units(units) in ("cm^2/s", "cm2/s"):
            d *= CM2_PER_S_IN_A2_PER_PS
        elif _normalise_units(units) not in ("A^2/ps", "A2/ps"):
            raise GLEInputError(f"diffusion has units {units!r}; give it in Å^2/ps or cm^2/s")
        if not d > 0:
            raise GLEInputError(f"the diffusion coefficient must be positive, got {d}")
        t = temperature if temperature is not None else kernel.attrs.get("temperature_K")
        m = mass if mass is not None else kernel.attrs.get("mass_u")
        if t is None or m is None:
            raise GLEInputError("the Einstein check needs the temperature and the mass (kernel attrs or arguments)")
        einstein = kT_over_m(float(t), _as_scalar_mass(m)) / d
        attrs.update(diffusion_A2_per_ps=d, einstein_friction_per_ps=einstein)
        if gamma.ndim == 0:
            attrs["einstein_ratio"] = float(gamma) / einstein
        elif cumulative and gamma.dims == ("lag",):  # the ratio of the running integral's last value
            attrs["einstein_ratio"] = float(gamma[-1]) / einstein
    return gamma.rename("friction").assign_attrs(attrs)
