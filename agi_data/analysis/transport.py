r"""Transport: unwrapping, mean-squared displacement, diffusion coefficient, VACF and VDOS.

Every function takes a Dataset in the store's trajectory schema (in memory
or Dask-backed, as :meth:`agi_data.store.Store.trajectory` returns it) and
returns labelled xarray objects with units in ``attrs``. Dask-backed input
gives a lazy result (``.compute()`` it); in-memory input gives an in-memory
result, computed in parallel over blocks of atoms by the current Dask
scheduler (threads by default, or a ``dask.distributed`` client).

:func:`msd` and :func:`vacf` of a Dataset straight from
:meth:`~agi_data.store.Store.trajectory` (its ``positions``/``velocities``
untouched) read the run in blocks of atoms over the whole time axis
(:func:`agi_data.store.read.atom_blocks`): one Dask task, no task per chunk,
the cast to float64, the unwrap and the FFTs fused per group of atoms in
one buffer, the next block read while the current one is correlated. Two
blocks fit ``dask.config["agi.block_bytes"]`` (64 MiB by default) however
long the run (:func:`agi_data.analysis.correlate.stored_block_atoms`). Anything derived from the stored arrays (a time slice, a
rechunk) goes through the Dask graph; the numbers are the same either way.

Definitions (positions Å, time ps, velocities Å/ps):

.. math::

    \mathrm{MSD}_s(t) = \frac{1}{N_s}\sum_{i\in s}\frac{1}{T-m}\sum_{t_0=0}^{T-m-1}
        |\mathbf r_i(t_0+m) - \mathbf r_i(t_0)|^2, \qquad t = m\Delta t

    C_s(t) = \frac{1}{N_s}\sum_{i\in s}\frac{1}{T-m}\sum_{t_0}\mathbf v_i(t_0)\cdot\mathbf v_i(t_0+m)

    D = \lim \frac{\mathrm{MSD}(t)}{6t} = \frac13\int_0^\infty C(t)\,dt

both over all time origins by FFT (the fast correlation algorithm of
Calandrini et al., Collection SFN 12, 201 (2011), as in MDAnalysis
``EinsteinMSD(fft=True)`` and tidynamics), accumulated in float64.

References
----------
Bullerjahn, von Bülow & Hummer, J. Chem. Phys. 153, 024116 (2020): optimal
estimates of D with the covariance of MSD lags. McCluskey et al., J. Chem.
Theory Comput. 20, 7445 (2024) (kinisi). von Bülow, Bullerjahn & Hummer,
J. Chem. Phys. 153, 021101 (2020): unwrapping in a fluctuating cell (TOR).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.fft import rfft

from ..pbc import minimum_image
from ..pbc import unwrap as unwrap_positions
from ._common import (
    Species,
    atom_indices,
    frame_step,
    lag_step,
    n_lags,
    renamed_arguments,
    require,
    result_attrs,
    select_atoms,
)
from .correlate import (
    block_size,
    chunk_for_correlation,
    correlate,
    correlate_numpy,
    lag_coordinate,
    msd_fca_numpy,
    run_blocked,
    stored_blocked,
)
from .ensemble import ensemble_attrs
from .errors import SchemaError, TransportError

__all__ = ["TransportError", "unwrap", "msd", "diffusion_coefficient", "vacf", "vdos", "green_kubo",
           "msd_covariance", "frame_step"]


def _require_cell(traj: xr.Dataset, why: str) -> None:
    if "cell" not in traj.variables:
        raise SchemaError(
            f"{why} needs the variable 'cell' ((vec, xyz) or (time, vec, xyz), Å) to unwrap the positions; "
            "if the positions are already unwrapped, set positions.attrs['unwrapped'] = True"
        )


# --------------------------------------------------------------------------- unwrap

@renamed_arguments(ds="traj")
def unwrap(traj: xr.Dataset) -> xr.Dataset:
    r"""Positions unwrapped across periodic boundaries.

    .. math:: \mathbf u(t+1) = \mathbf u(t) + \mathrm{mic}_{h(t+1)}\big(\mathbf w(t+1) - \mathbf w(t)\big),
              \quad \mathbf u(0) = \mathbf w(0)

    with w the stored (wrapped) positions and mic the minimum image in the
    cell h(t+1) of the later frame: the "TOR" scheme of von Bülow,
    Bullerjahn & Hummer (J. Chem. Phys. 153, 021101 (2020)), correct for
    orthorhombic and triclinic, constant and time-dependent cells as long
    as no atom moves more than half a cell width between stored frames.
    One implementation, :func:`agi_data.pbc.unwrap`, serves this function
    and the MSD.

    In memory this is :func:`agi_data.pbc.unwrap`, the one implementation
    (the MSD uses it too). On Dask-backed input it runs lazily and blockwise
    along time: the minimum-image steps (:func:`agi_data.pbc.minimum_image`)
    are computed per chunk and summed by a cumulative sum along time, which
    carries the last unwrapped frame from one time block to the next, so
    memory is bounded by the chunk. Accumulation is in float64.

    Returns the trajectory with ``positions`` replaced (float64, Å,
    ``attrs["unwrapped"] = True``). Positions already marked unwrapped are
    returned as they are.
    """
    require(traj, "positions", min_frames=1)
    pos = traj["positions"]
    if pos.attrs.get("unwrapped", False):
        return traj
    _require_cell(traj, "unwrapping")
    p, cell = pos.astype(np.float64), traj["cell"].astype(np.float64)
    if pos.chunks is None:
        cell_core = ["time", "vec", "xyz"] if "time" in cell.dims else ["vec", "xyz"]
        u = xr.apply_ufunc(unwrap_positions, p, cell, input_core_dims=[["time", "xyz"], cell_core],
                           output_core_dims=[["time", "xyz"]])
    elif traj.sizes["time"] == 1:
        u = p
    else:
        later = cell.isel(time=slice(1, None)) if "time" in cell.dims else cell
        steps = xr.apply_ufunc(
            minimum_image, p.diff("time", label="upper"), later,
            input_core_dims=[["xyz"], ["vec", "xyz"]], output_core_dims=[["xyz"]],
            dask="parallelized", output_dtypes=[np.float64],
        )
        first = p.isel(time=[0])
        u = xr.concat([first, first.isel(time=0, drop=True) + steps.cumsum("time")], dim="time")
    u = u.transpose("time", "atom", "xyz")
    u.attrs = {**pos.attrs, "units": pos.attrs.get("units", "Å"), "unwrapped": True}
    return traj.assign(positions=u)


# --------------------------------------------------------------------------- MSD

def _msd_kernel(pos: np.ndarray, cell: np.ndarray | None, n_lags: int) -> np.ndarray:
    """pos (..., T, 3) of one block of atoms; cell (T,3,3), (3,3) or None (already unwrapped)."""
    return msd_fca_numpy(pos, n_lags, cell=None if cell is None else np.asarray(cell, dtype=np.float64))


@renamed_arguments(ds="traj", max_lag="max_lag_ps")
def msd(traj: xr.Dataset, species: Species = None, *, per_atom: bool = False,
        max_lag_ps: float | None = None) -> xr.DataArray:
    r"""Mean-squared displacement over all time origins.

    .. math:: \mathrm{MSD}(m\Delta t) = \frac{1}{T-m}\sum_{t_0=0}^{T-m-1}
              |\mathbf r(t_0+m) - \mathbf r(t_0)|^2
              = S_1(m) - 2\,\frac{1}{T-m}\sum_{t_0}\mathbf r(t_0)\cdot\mathbf r(t_0+m)

    computed with the fast correlation algorithm (Calandrini et al. 2011):
    S₁ from cumulative sums of r², the second term by zero-padded real FFTs
    batched over a block of atoms, in float64 (the two terms nearly cancel;
    float32 loses about 1 %). Wrapped positions are unwrapped first
    (:func:`unwrap`), inside each block.

    Parameters
    ----------
    traj
        Trajectory Dataset (``positions``; ``cell`` unless the positions
        carry ``attrs["unwrapped"] = True``).
    species
        Element symbol, atomic number, or a list of them; ``None``: all atoms.
    per_atom
        Keep an ``atom`` dimension instead of averaging over atoms.
    max_lag_ps
        Longest lag in ps (default: the whole trajectory, T − 1 frames).

    Returns
    -------
    DataArray ``msd(lag)`` (or ``(atom, lag)``) in Å², ``lag`` in ps. Lazy
    when ``traj`` is Dask-backed. attrs carry ``n_atoms``, ``n_frames`` and
    ``timestep_ps`` for :func:`diffusion_coefficient`.
    """
    sel = select_atoms(traj, species, "positions", "the MSD")
    dt = frame_step(sel)
    T = sel.sizes["time"]
    n_lag = n_lags(T, dt, max_lag_ps, error=TransportError)
    pos = sel["positions"]
    lazy = pos.chunks is not None
    if pos.attrs.get("unwrapped", False):
        cell = None
    else:
        _require_cell(sel, "the MSD of wrapped positions")
        cell = sel["cell"].astype(np.float64)
        if "time" in cell.dims and cell.chunks is not None:
            cell = cell.chunk({"time": -1})
    out = stored_blocked(traj["positions"], atom_indices(traj, species), _msd_kernel, (cell, n_lag),
                         n_out=n_lag, mean=not per_atom) if lazy else None
    if out is not None:  # a stored run: chunk-aligned atom blocks, no Dask graph
        return _msd_result(out, sel, per_atom, n_lag, dt)
    if lazy:
        pos = chunk_for_correlation(pos, "time", "xyz")
        kernel = _msd_kernel
    else:  # in memory: blocks of atoms on a thread pool
        block = block_size(T, 3)

        def kernel(x, c, n):
            return run_blocked(_msd_kernel, [x], (c, n), n_core=[2], n_out=n, block=block)
    args, cores = [pos], [["time", "xyz"]]
    if cell is not None:
        args.append(cell)
        cores.append(["time", "vec", "xyz"] if "time" in cell.dims else ["vec", "xyz"])
    out = xr.apply_ufunc(
        lambda x, c=None: kernel(x, c, n_lag), *args,
        input_core_dims=cores, output_core_dims=[["lag"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lag": n_lag}},
    )
    return _msd_result(out, sel, per_atom, n_lag, dt)


def _msd_result(out: xr.DataArray, sel: xr.Dataset, per_atom: bool, n_lag: int, dt: float) -> xr.DataArray:
    if not per_atom and "atom" in out.dims:
        out = out.mean("atom")
    out = out.assign_coords(lag=lag_coordinate(n_lag, dt)).rename("msd")
    out.attrs = result_attrs(sel, dt, units="Å^2", long_name="mean-squared displacement", dimensionality=3,
                             method="FFT (fast correlation algorithm), all time origins, float64",
                             **ensemble_attrs(sel, "msd"))
    return out


# --------------------------------------------------------------------------- D with uncertainty

def _power_sum(k: np.ndarray, p: int) -> np.ndarray:
    """Σ_{u=1}^{k} u^p for p = 2, 3 (0 for k ≤ 0), in float64."""
    k = np.maximum(np.asarray(k, dtype=np.float64), 0.0)
    if p == 2:
        return k * (k + 1) * (2 * k + 1) / 6.0
    return (k * (k + 1) / 2.0) ** 2


def msd_covariance(lags: np.ndarray, n_frames: int, *, n_atoms: int = 1, D: float = 1.0,
                   dt: float = 1.0, dims: int = 3) -> np.ndarray:
    r"""Covariance of the all-origins MSD estimator at integer ``lags`` for a random walk.

    For Gaussian steps of variance σ² = 2DΔt per component, the squared
    displacements over windows A and B have covariance
    2·dims·σ⁴|A∩B|² (Isserlis), so

    .. math:: \mathrm{Cov}(M_m, M_n) = \frac{2\,d\,\sigma^4}{N (T-m)(T-n)} \sum_{t,s} |[t,t+m)\cap[s,s+n)|^2

    The double sum is evaluated in closed form (for m ≤ n, with c = T−m−n
    and L = max(1, m+n−T)): (n−m+1)(T−n)m² + 2Σ_{u=L}^{m−1}(c+u)u². Atoms
    are taken as independent (N of them). This is the exact covariance of
    Bullerjahn, von Bülow & Hummer (2020) without localisation noise.

    Returns a (K, K) matrix in Å⁴ (lags in frames, D in Å²/ps, dt in ps).
    """
    lags = np.asarray(lags, dtype=np.float64)
    if np.any(lags < 1) or np.any(lags > n_frames - 1):
        raise TransportError(f"lags must be in 1..{n_frames - 1} frames")
    m = np.minimum(lags[:, None], lags[None, :])
    n = np.maximum(lags[:, None], lags[None, :])
    T = float(n_frames)
    c = T - m - n
    low = np.maximum(1.0, m + n - T)
    up = m - 1.0
    s2 = np.where(up >= low, _power_sum(up, 2) - _power_sum(low - 1, 2), 0.0)
    s3 = np.where(up >= low, _power_sum(up, 3) - _power_sum(low - 1, 3), 0.0)
    S = (n - m + 1) * (T - n) * m**2 + 2.0 * (c * s2 + s3)
    sigma2 = 2.0 * D * dt
    return 2.0 * dims * sigma2**2 * S / (n_atoms * (T - m) * (T - n))


def _auto_window(t: np.ndarray, y: np.ndarray, t_end: float, tol: float = 0.15) -> tuple[float, float]:
    """Start of the diffusive regime: the local slope of log MSD stays at 1 ± tol for a decade."""
    ok = (t > 0) & (t <= t_end) & (y > 0)
    tt, yy = t[ok], y[ok]
    if tt.size < 4:
        raise TransportError("too few positive MSD values to find a diffusive window; pass fit_range=(t0, t1) ps")
    grid = np.unique(np.searchsorted(tt, np.geomspace(tt[0], tt[-1], max(3, int(5 * np.log10(tt[-1] / tt[0])) + 2))))
    grid = grid[grid < tt.size]
    lt, ly = np.log(tt[grid]), np.log(yy[grid])
    alpha = np.diff(ly) / np.diff(lt)
    good = np.abs(alpha - 1.0) <= tol
    span = 5  # grid intervals per decade
    for k in range(len(alpha) - 1):
        stretch = good[k:k + span]
        if stretch.all() and stretch.size >= 2:
            return float(tt[grid[k]]), float(tt[-1])
    raise TransportError(
        "no diffusive regime found: the local slope d ln MSD / d ln t never stays within "
        f"1 ± {tol} over a decade of lags up to {t_end:g} ps (ballistic, caged or too short a trajectory); "
        "pass fit_range=(t0, t1) in ps"
    )


def _fit_lags(i0: int, i1: int, max_points: int) -> np.ndarray:
    half = max(2, max_points // 2)
    pts = np.concatenate([np.linspace(i0, i1, half), np.geomspace(i0, i1, half)])
    return np.unique(np.round(pts).astype(int))


def _gls_D(t: np.ndarray, y: np.ndarray, n_frames: int, n_atoms: int, fit_range, max_points: int,
           intercept: bool):
    dt = float(t[1] - t[0])
    t_last = float(t[-1])
    if fit_range is None:
        t_end = min(t_last, 0.5 * (n_frames - 1) * dt)
        t0, t1 = _auto_window(t, y, t_end)
    else:
        try:
            t0, t1 = (float(v) for v in fit_range)
        except (TypeError, ValueError):
            raise TransportError(f"fit_range must be (t_start, t_end) in ps, got {fit_range!r}") from None
        if not (0 < t0 < t1) or t1 > t_last * (1 + 1e-9) or t0 < dt * (1 - 1e-9):
            raise TransportError(
                f"fit_range=({t0:g}, {t1:g}) ps is outside the data: the MSD has lags from {dt:g} to "
                f"{t_last:g} ps (need {dt:g} ≤ t_start < t_end ≤ {t_last:g})"
            )
    i0 = max(1, int(np.ceil(t0 / dt - 1e-9)))
    i1 = min(len(t) - 1, int(np.floor(t1 / dt + 1e-9)))
    idx = _fit_lags(i0, i1, max_points)
    need = 3 if intercept else 2
    if idx.size < need:
        raise TransportError(f"fit_range ({t0:g}, {t1:g}) ps holds {idx.size} lags; need at least {need}")
    x = t[idx]
    yy = y[idx]
    X = np.stack([x, np.ones_like(x)], axis=1) if intercept else x[:, None]
    cov = msd_covariance(idx, n_frames, n_atoms=n_atoms, D=1.0, dt=dt)
    L = np.linalg.cholesky(cov)
    Xw = np.linalg.solve(L, X)
    yw = np.linalg.solve(L, yy)
    beta, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
    D = beta[0] / 6.0
    if not D > 0:
        raise TransportError(f"the MSD does not grow over the fit window ({t0:g}, {t1:g}) ps (slope {beta[0]:g})")
    # the covariance scales as D²: evaluate it at the estimate
    scale = D**2
    cov_beta = np.linalg.inv(Xw.T @ Xw) * scale
    resid = yw - Xw @ beta
    chi2 = float(resid @ resid) / scale / max(1, idx.size - X.shape[1])
    c, c_err = (beta[1], np.sqrt(cov_beta[1, 1])) if intercept else (0.0, 0.0)
    return (D, np.sqrt(cov_beta[0, 0]) / 6.0, c, c_err, t[i0], t[i1], chi2, idx.size)


_D_UNITS = {"D": "Å^2/ps", "D_stderr": "Å^2/ps", "intercept": "Å^2", "intercept_stderr": "Å^2",
            "fit_start": "ps", "fit_end": "ps", "chi2_reduced": "1", "n_points": "1"}
_D_NAMES = {"D": "self-diffusion coefficient", "D_stderr": "standard error of D",
            "intercept": "intercept of the MSD fit", "intercept_stderr": "standard error of the intercept",
            "fit_start": "start of the fit window", "fit_end": "end of the fit window",
            "chi2_reduced": "reduced chi-squared of the GLS fit", "n_points": "lags in the fit"}


def diffusion_coefficient(msd: xr.DataArray, fit_range: tuple[float, float] | None = None, *,
                          max_points: int = 64, intercept: bool = True) -> xr.Dataset:
    r"""Self-diffusion coefficient from an MSD, with an uncertainty that accounts for correlated lags.

    .. math:: \mathrm{MSD}(t) \simeq 6Dt + c \quad\text{(generalised least squares)}

    The MSD values at different lags are strongly correlated (they share
    displacements). The fit is generalised least squares with the exact
    covariance of the all-origins MSD estimator of a random walk
    (:func:`msd_covariance`; Bullerjahn, von Bülow & Hummer, J. Chem. Phys.
    153, 024116 (2020)) evaluated at the estimated D, over at most
    ``max_points`` lags (half linearly, half logarithmically spaced) in the
    fit window; atoms are counted as independent. ``D_stderr`` is the
    standard error of the GLS slope / 6. ``chi2_reduced`` ≫ 1 says the
    random-walk noise model underestimates the scatter (sub-diffusion,
    correlated atoms) and the error bar should be read as a lower bound.

    Parameters
    ----------
    msd
        The output of :func:`msd` (``lag`` in ps; ``per_atom`` output is
        averaged over atoms first).
    fit_range
        (t_start, t_end) in ps. Default: the diffusive window starts where
        the local slope d ln MSD/d ln t settles at 1 ± 0.15 over a decade
        and ends at half the trajectory (or the last lag).
    intercept
        Fit an intercept c (absorbs the ballistic and caging offset).

    Returns
    -------
    Dataset with ``D`` and ``D_stderr`` (Å²/ps), ``intercept`` and
    ``intercept_stderr`` (Å²), ``fit_start``/``fit_end`` (ps),
    ``chi2_reduced`` and ``n_points``.
    """
    if not isinstance(msd, xr.DataArray) or "lag" not in msd.dims:
        raise SchemaError("diffusion_coefficient needs the DataArray returned by msd(), with a 'lag' dimension (ps)")
    n_atoms = int(msd.attrs.get("n_atoms", msd.sizes.get("atom", 1)))
    if "atom" in msd.dims:
        n_atoms = msd.sizes["atom"]
        msd = msd.mean("atom", keep_attrs=True)
    msd = msd.compute()
    t = np.asarray(msd["lag"].values, dtype=np.float64)
    if t.size < 3:
        raise TransportError(f"the MSD has {t.size} lags; need at least 3 to fit D")
    n_frames = int(msd.attrs.get("n_frames", t.size))
    names = ["D", "D_stderr", "intercept", "intercept_stderr", "fit_start", "fit_end", "chi2_reduced", "n_points"]

    def one(y):
        return tuple(np.float64(v) for v in _gls_D(t, y, n_frames, n_atoms, fit_range, max_points, intercept))

    res = xr.apply_ufunc(one, msd, input_core_dims=[["lag"]], output_core_dims=[[]] * len(names),
                         vectorize=True, keep_attrs=False)
    out = xr.Dataset({k: v.assign_attrs(units=_D_UNITS[k], long_name=_D_NAMES[k]) for k, v in zip(names, res)})
    out["n_points"] = out["n_points"].astype(int).assign_attrs(units="1", long_name=_D_NAMES["n_points"])
    out.attrs = {
        "method": "generalised least squares, exact random-walk covariance of all-origins MSD lags "
                  "(Bullerjahn, von Bülow & Hummer 2020)",
        "n_atoms": n_atoms, "n_frames": n_frames,
        **{k: msd.attrs[k] for k in ("species", "run_id", "timestep_ps", "ensemble", "thermostat") if k in msd.attrs},
    }
    return out


# --------------------------------------------------------------------------- VACF, VDOS, Green-Kubo

@renamed_arguments(ds="traj", max_lag="max_lag_ps")
def vacf(traj: xr.Dataset, species: Species = None, *, per_atom: bool = False, max_lag_ps: float | None = None,
         normalize: bool = False) -> xr.DataArray:
    r"""Velocity autocorrelation function over all time origins.

    .. math:: C(m\Delta t) = \frac{1}{T-m}\sum_{t_0=0}^{T-m-1}\mathbf v(t_0)\cdot\mathbf v(t_0+m)

    averaged over the atoms of ``species`` (or per atom), by zero-padded real
    FFTs batched over blocks of atoms, float64, unbiased (divided by the
    number of origins T − m).

    Returns
    -------
    DataArray ``vacf(lag)`` (or ``(atom, lag)``) in (Å/ps)² (``Å^2/ps^2``),
    or dimensionless C(t)/C(0) with ``normalize=True`` (per atom when
    ``per_atom``). Lazy when ``ds`` is Dask-backed.
    """
    sel = select_atoms(traj, species, "velocities", "the VACF")
    dt = frame_step(sel)
    n_lag = n_lags(sel.sizes["time"], dt, max_lag_ps, error=TransportError)
    v = sel["velocities"]
    out = None
    if v.chunks is not None:  # a stored run: chunk-aligned atom blocks, no Dask graph
        out = stored_blocked(traj["velocities"], atom_indices(traj, species), correlate_numpy, (None, n_lag),
                             n_out=n_lag, mean=not per_atom)
    if out is None:
        out = correlate(v, n_lags=n_lag, time_dim="time", component_dim="xyz")
    if not per_atom and "atom" in out.dims:
        out = out.mean("atom")
    units = "Å^2/ps^2"
    if normalize:
        out = out / out.isel(lag=0)
        units = "1"
    out = out.assign_coords(lag=lag_coordinate(n_lag, dt)).rename("vacf")
    out.attrs = result_attrs(sel, dt, units=units, long_name="velocity autocorrelation function",
                             normalized=bool(normalize), method="FFT, all time origins, float64",
                             **ensemble_attrs(sel, "vacf"))
    return out


def _vdos_kernel(c: np.ndarray, dt: float, taper: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64) * taper
    ext = np.concatenate([c, c[..., -2:0:-1]], axis=-1)  # even extension, length 2M − 2
    return rfft(ext, axis=-1).real * dt


def vdos(vacf: xr.DataArray, *, window: str | None = None, normalize: bool = False) -> xr.DataArray:
    r"""Vibrational density of states: the cosine transform of the VACF.

    .. math:: S(\nu) = 2\int_0^{t_\max} w(t)\,C(t)\cos(2\pi\nu t)\,dt

    by the trapezoidal rule (an FFT of the even extension of C), at
    ν_k = k / (2 t_max), k = 0 … M − 1, in THz. S(0) = 6D for a 3-d VACF
    (Green–Kubo). For C(t) = C₀e^{−γt}, S(ν) = 2C₀γ/(γ² + (2πν)²).

    Parameters
    ----------
    window
        ``None`` (w = 1) or ``"hann"`` (a half-Hann taper w(t) = ½(1 + cos πt/t_max)
        that suppresses the ringing of a truncated, noisy tail).
    normalize
        Scale to unit area over ν ≥ 0 (units 1/THz) instead of
        (VACF units)·ps (Å²/ps for velocities).
    """
    dt = lag_step(vacf, "vdos", TransportError)
    M = vacf.sizes["lag"]
    if window is None:
        taper = np.ones(M)
    elif window == "hann":
        taper = 0.5 * (1.0 + np.cos(np.pi * np.arange(M) / (M - 1)))
    else:
        raise TransportError(f"unknown window {window!r}: use None or 'hann'")
    n_freq = M  # rfft of length 2M − 2 gives M frequencies
    out = xr.apply_ufunc(
        _vdos_kernel, vacf, kwargs={"dt": dt, "taper": taper},
        input_core_dims=[["lag"]], output_core_dims=[["frequency"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"frequency": n_freq}},
    )
    freq = np.arange(n_freq) / ((2 * M - 2) * dt)
    out = out.assign_coords(frequency=("frequency", freq, {"units": "THz", "long_name": "frequency"}))
    in_units = vacf.attrs.get("units", "")
    units = f"{in_units}·ps" if in_units else "ps"
    if in_units == "Å^2/ps^2":
        units = "Å^2/ps"
    if normalize:
        out = out / out.integrate("frequency")
        units = "1/THz"
    out = out.rename("vdos")
    out.attrs = {**{k: v for k, v in vacf.attrs.items() if k not in ("units", "long_name", "method")},
                 "units": units, "long_name": "vibrational density of states",
                 "window": str(window), "method": "trapezoidal cosine transform of the VACF"}
    return out


def green_kubo(vacf: xr.DataArray) -> xr.DataArray:
    r"""Running Green–Kubo diffusion coefficient from an (unnormalised) VACF.

    .. math:: D(t) = \frac13\int_0^{t} C(t')\,dt'

    (trapezoidal rule) over ``lag``, in Å²/ps; its plateau is D.
    """
    lag_step(vacf, "green_kubo", TransportError)
    if vacf.attrs.get("normalized", False):
        raise TransportError("green_kubo needs the VACF in (Å/ps)^2: call vacf(..., normalize=False)")
    out = vacf.cumulative_integrate("lag") / 3.0
    out = out.rename("D_green_kubo")
    out.attrs = {**{k: v for k, v in vacf.attrs.items() if k not in ("units", "long_name", "method")},
                 "units": "Å^2/ps", "long_name": "running Green-Kubo diffusion coefficient"}
    return out
