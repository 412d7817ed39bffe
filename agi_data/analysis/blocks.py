r"""Standard errors of time-correlation estimates from blocks of time, and the jackknife over blocks.

Successive time origins of one run are correlated, so the scatter of the
samples says nothing about the error of their mean. Cutting the run into
n contiguous **blocks** much longer than the correlation time makes the
block estimates nearly independent (Flyvbjerg & Petersen, J. Chem. Phys. 91,
461 (1989)):

* **Linear estimators** (VACF, MSD, rotor correlation: averages over
  origins) — :func:`block_error` runs the analysis on each block and reports
  the whole-run estimate with the standard error of the mean of the block
  estimates, :math:`s/\sqrt n` (s the standard deviation over blocks,
  ddof = 1). A block estimate uses only origins and partners inside its
  block, so at lag t it has (L − t)/L of the origins of its share of the
  whole run: the error is slightly conservative, by ≈ t/(2L) relative.
* **Non-linear estimators** (the memory kernel: a Volterra inversion of
  ratios of correlation sums) — the **delete-one-block jackknife**
  (Efron & Stein 1981; Künsch, Ann. Stat. 17, 1217 (1989) for blocks of a
  time series). The origins are split into n blocks; :func:`origin_block_sums`
  gives each block's sums :math:`S_j(m) = \sum_{t_0\in j}\sum_i
  h_i(t_0)\,a_i(t_0)\cdot b_i(t_0+m)` and counts :math:`N_j(m)` (the lag
  partner may lie in the next block, so the blocks together are exactly the
  all-origins estimate). Replicate j is the estimate from
  :math:`(S-S_j)/(N-N_j)`, and

  .. math:: \mathrm{Var}\,\hat\theta \approx \frac{n-1}{n}\sum_j(\hat\theta_{(j)} - \bar\theta)^2,

  with the covariance over lags likewise (:func:`jackknife`). The estimate
  reported is the whole-run one (not the bias-corrected jackknife estimate:
  its O(1/N) bias is far below the error here).

What the blocks need
--------------------
Each block must be at least the longest lag (``max_lag``) long — shorter
blocks cut the correlation the estimate is made of — and long against the
time over which the estimate's fluctuations decorrelate (for a kernel:
its decay time; for an MSD at lag t: t itself). The error of an error from n
blocks is ≈ 1/√(2(n−1)): 8 blocks give it to ±27 %, 20 to ±16 %. So the
shortest run that supports an error at lags up to t_max is n·t_max with
n ≥ :data:`MIN_BLOCKS` (8): for a kernel up to 1 ps, 8 ps of trajectory;
:func:`block_edges` refuses fewer or shorter blocks.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import numpy as np
import xarray as xr

from ._schema import SchemaError
from .correlate import correlate_numpy
from .transport import frame_step

__all__ = ["BlockError", "MIN_BLOCKS", "block_edges", "block_error", "origin_block_sums", "jackknife",
           "jackknife_replicates_from_sums"]

#: the fewest blocks an error is computed from (error of the error ≈ 1/√(2(n−1)) = 27 %)
MIN_BLOCKS = 8


class BlockError(SchemaError):
    """A block error cannot be computed as asked (run too short for the blocks, too few blocks, ...)."""


def block_edges(n_frames: int, n_blocks: int, min_frames: int, *, dt_ps: float | None = None) -> np.ndarray:
    """Frame indices of the edges of ``n_blocks`` contiguous blocks of (nearly) equal length.

    Returns ``edges`` (n_blocks + 1,): block j holds frames ``edges[j]:edges[j+1]``.
    Raises :class:`BlockError` if there are fewer than :data:`MIN_BLOCKS`
    blocks or one would be shorter than ``min_frames`` (the longest lag in
    frames); the message states the shortest run that would do.
    """
    n_blocks, n_frames, min_frames = int(n_blocks), int(n_frames), int(min_frames)
    unit = "" if dt_ps is None else f" ({min_frames * dt_ps:g} ps)"
    if n_blocks < MIN_BLOCKS:
        raise BlockError(f"blocks={n_blocks}: an error needs at least {MIN_BLOCKS} blocks (the error of the error "
                         f"is ≈ 1/√(2(n−1)); {MIN_BLOCKS} blocks give it to ±27 %); pass blocks ≥ {MIN_BLOCKS}")
    if n_frames // n_blocks < min_frames:
        need = n_blocks * min_frames
        span = "" if dt_ps is None else f" = {(need - 1) * dt_ps:g} ps"
        raise BlockError(f"{n_blocks} blocks of a {n_frames}-frame run are {n_frames // n_blocks} frames long, shorter "
                         f"than the longest lag ({min_frames} frames{unit}): the block errors need a run of at "
                         f"least {need} frames{span}, fewer blocks, or a shorter max_lag")
    return np.linspace(0, n_frames, n_blocks + 1).round().astype(np.int64)


def _as_atom_time(x: xr.DataArray) -> np.ndarray:
    """(time, atom[, xyz]) data of one segment as float64 (atom, time, k)."""
    arr = np.asarray(x.values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[..., None]
    return np.swapaxes(arr, 0, 1)


def origin_block_sums(a: xr.DataArray, b: xr.DataArray, weights: xr.DataArray | None, edges: np.ndarray,
                      n_lags: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-block correlation sums over origins: :math:`S_j(m)` and the origin counts :math:`N_j(m)`.

    .. math:: S_j(m) = \sum_i\sum_{t_0\in[e_j, e_{j+1}),\ t_0+m<T} h_i(t_0)\,a_i(t_0)\cdot b_i(t_0+m),
              \qquad N_j(m) = \sum_i\sum_{t_0\,\rm likewise} h_i(t_0)

    ``a``, ``b``: ``(time, atom, xyz)`` (or ``(time, atom)``) DataArrays, in
    memory or Dask-backed (read one block plus ``n_lags`` frames at a time);
    ``weights``: ``(atom, time)`` origin weights h (None: all 1). FFT
    correlations (:func:`~agi_data.analysis.correlate.correlate_numpy`), float64.
    Returns two arrays ``(n_blocks, n_lags)``. ΣS/ΣN is the all-origins estimate.
    """
    T = a.sizes["time"]
    n_blocks = len(edges) - 1
    s = np.zeros((n_blocks, n_lags))
    n = np.zeros((n_blocks, n_lags))
    lag = np.arange(n_lags)
    for j in range(n_blocks):
        lo, hi = int(edges[j]), int(edges[j + 1])
        top = min(T, hi + n_lags - 1)
        seg = slice(lo, top)
        aa, bb = _as_atom_time(a.isel(time=seg)), _as_atom_time(b.isel(time=seg))
        w = np.ones((aa.shape[0], top - lo)) if weights is None else \
            np.asarray(weights.isel(time=seg).transpose("atom", "time").values, dtype=np.float64)
        w = w.copy()
        w[:, hi - lo:] = 0.0  # origins of this block only; later frames serve as lag partners
        t_seg = top - lo
        corr = correlate_numpy(aa * w[..., None], bb, n_lags, components=True)  # (atom, lag), / (t_seg − m)
        s[j] = corr.sum(axis=0) * (t_seg - lag)
        cum = np.concatenate([[0.0], np.cumsum(w.sum(axis=0))])  # origins t0 < k, summed over atoms
        n[j] = cum[np.minimum(hi - lo, t_seg - lag)]
    return s, n


def jackknife_replicates_from_sums(s: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Delete-one-block ratios (S − S_j)/(N − N_j), shape (n_blocks, n_lags); refuses an empty replicate."""
    s_tot, n_tot = s.sum(axis=0), n.sum(axis=0)
    left = n_tot[None, :] - n
    if (left <= 0).any():
        j, m = np.argwhere(left <= 0)[0]
        raise BlockError(f"deleting block {j} leaves no selected origin at lag step {m}: the selection has all its "
                         "samples for that lag in one block. Use fewer, longer blocks or a selection spread over "
                         "the run")
    return (s_tot[None, :] - s) / left


def jackknife(replicates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Jackknife standard error and covariance from delete-one replicates (axis 0).

    :math:`C_{kl} = \frac{n-1}{n}\sum_j(\theta_{(j)k}-\bar\theta_k)(\theta_{(j)l}-\bar\theta_l)`;
    returns ``(stderr, covariance)``; NaN where a replicate is NaN.
    """
    r = np.asarray(replicates, dtype=np.float64)
    nb = r.shape[0]
    dev = r - r.mean(axis=0)
    cov = (nb - 1) / nb * np.einsum("jk,jl->kl", dev, dev)
    return np.sqrt(np.diag(cov)), cov


def _lag_arg(kwargs: dict) -> float | None:
    for key in ("max_lag", "max_lag_ps"):
        if kwargs.get(key) is not None:
            return float(kwargs[key])
    return None


def block_error(analysis: Callable, traj: xr.Dataset, *args, blocks: int = MIN_BLOCKS, **kwargs) -> xr.DataArray:
    r"""Run a linear correlation analysis on the whole run and on ``blocks`` time blocks; attach the error.

    ``analysis`` is e.g. :func:`~agi_data.analysis.vacf`,
    :func:`~agi_data.analysis.msd` or
    :func:`~agi_data.analysis.rotor_correlation` (called
    ``analysis(traj, *args, **kwargs)``; ``max_lag`` or ``max_lag_ps`` must be
    given and no longer than a block). Analyses that take ``frames=`` (the
    Wannier-frame correlations) are blocked over their Wannier frames (the
    first of ``args``); the others over ``traj``'s time axis.

    Returns the whole-run result, unchanged in type and values, with a
    coordinate ``stderr`` (same dims; the standard error s/√n of the block
    means, s with ddof = 1) and attrs ``error_method``, ``n_blocks``,
    ``block_ps``. So ``diffusion_coefficient(block_error(msd, traj, "Ag",
    max_lag=…))`` works as before. For the memory kernel use its own
    ``blocks=`` (a jackknife: the kernel is not linear in the data).
    """
    if not isinstance(traj, xr.Dataset):
        raise BlockError(f"expected a trajectory xarray.Dataset, got {type(traj).__name__}")
    max_lag = _lag_arg(kwargs)
    if max_lag is None:
        raise BlockError("pass max_lag (ps): the block estimates must all have the lags of the whole-run estimate")
    dt = frame_step(traj)
    full = analysis(traj, *args, **kwargs)
    if hasattr(full, "compute"):
        full = full.compute()
    if "frames" in inspect.signature(analysis).parameters:
        if not args or not isinstance(args[0], xr.Dataset) or "frame" not in args[0].coords:
            raise BlockError(f"{analysis.__name__} correlates Wannier frames: pass the Wannier set as its second "
                             "argument")
        frames = np.sort(np.asarray(kwargs.pop("frames", None) if kwargs.get("frames") is not None
                                    else args[0]["frame"].values, dtype=np.int64))
        step = full.attrs.get("frame_step", 1) * dt
        n_lag = int(np.floor(max_lag / step + 1e-9)) + 1
        edges = block_edges(frames.size, blocks, n_lag, dt_ps=step)
        calls = [dict(kwargs, frames=frames[edges[j]:edges[j + 1]]) for j in range(blocks)]
        parts = [analysis(traj, *args, **c) for c in calls]
        block_ps = float(np.mean(np.diff(edges))) * step
    else:
        n_lag = int(np.floor(max_lag / dt + 1e-9)) + 1
        edges = block_edges(traj.sizes["time"], blocks, n_lag, dt_ps=dt)
        parts = [analysis(traj.isel(time=slice(int(edges[j]), int(edges[j + 1]))), *args, **kwargs)
                 for j in range(blocks)]
        block_ps = float(np.mean(np.diff(edges))) * dt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.stack([np.asarray(p.values if not hasattr(p, "compute") else p.compute().values) for p in parts])
    if values.shape[1:] != full.shape:
        raise BlockError(f"the block estimates have shape {values.shape[1:]}, the whole-run one {full.shape}: "
                         "give max_lag so that every block yields the same lags")
    se = values.std(axis=0, ddof=1) / np.sqrt(blocks)
    out = full.assign_coords(stderr=(full.dims, se, {"units": full.attrs.get("units", ""),
                                                     "long_name": "standard error from time blocks"}))
    return out.assign_attrs(error_method=f"standard error of the mean over {blocks} time blocks",
                            n_blocks=int(blocks), block_ps=block_ps)
