r"""FFT time-correlation machinery shared by every analysis.

One implementation serves MSD, VACF, force correlations, rotor and dipole
correlations and the GLE kernels.

For series :math:`a(t), b(t)` on a uniform grid of :math:`T` frames the
all-origins, unbiased cross-correlation is

.. math:: C_{ab}(m) = \frac{1}{T-m}\sum_{t_0=0}^{T-m-1} a(t_0)\cdot b(t_0+m),

computed with real FFTs zero-padded to a fast length ≥ 2T (no circular
wrap-around), with the product summed over the component axis (xyz) before
the inverse transform, so one inverse FFT serves the three components.
Cost O(T log T) per series instead of the O(T²) of a double loop over
origins. Accumulation is in float64 whatever the input dtype.

The numpy kernels act on the last axes; :func:`correlate` wraps them once
with :func:`xarray.apply_ufunc` so that they run blockwise over any other
dimension (atoms, ions) with Dask, the whole time axis in each block.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.fft import irfft, next_fast_len, rfft

__all__ = ["correlate", "correlate_numpy", "msd_fca_numpy", "lag_coordinate"]


def _as_f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def correlate_numpy(a: np.ndarray, b: np.ndarray | None = None, n_lags: int | None = None,
                    *, components: bool = True) -> np.ndarray:
    """All-origins correlation ⟨a(t0)·b(t0+m)⟩ along the time axis.

    Parameters
    ----------
    a, b
        Arrays shaped ``(..., T, k)`` when ``components`` (the k components
        are dotted, e.g. xyz) or ``(..., T)`` otherwise. ``b=None`` gives the
        autocorrelation.
    n_lags
        Number of lags m = 0..n_lags-1 to return (default T).

    Returns
    -------
    ndarray ``(..., n_lags)`` in float64, normalised by the number of origins
    T − m (unbiased).
    """
    a = _as_f64(a)
    if not components:
        a = a[..., None]
    T = a.shape[-2]
    n_lags = T if n_lags is None else int(n_lags)
    if not 1 <= n_lags <= T:
        raise ValueError(f"n_lags must be in 1..{T}, got {n_lags}")
    n = next_fast_len(2 * T, real=True)
    fa = rfft(a, n=n, axis=-2)
    if b is None:
        spec = (fa.real**2 + fa.imag**2).sum(axis=-1)
    else:
        b = _as_f64(b)
        if not components:
            b = b[..., None]
        fb = rfft(b, n=n, axis=-2)
        spec = (np.conj(fa) * fb).sum(axis=-1)
    c = irfft(spec, n=n, axis=-1)[..., :n_lags]
    return c / (T - np.arange(n_lags))


def msd_fca_numpy(r: np.ndarray, n_lags: int | None = None) -> np.ndarray:
    """Mean-squared displacement over all origins by the fast correlation algorithm.

    MSD(m) = S1(m) − 2 S2(m), with S2 the position autocorrelation (FFT) and
    S1(m) = (1/(T−m)) Σ_{t=0}^{T−m−1} [r²(t) + r²(t+m)] from cumulative sums
    (Calandrini et al., Collection SFN 12, 201 (2011); the algorithm of
    MDAnalysis ``EinsteinMSD(fft=True)`` and tidynamics ``msd``).

    ``r``: ``(..., T, 3)`` unwrapped positions; returns ``(..., n_lags)`` float64.
    """
    r = _as_f64(r)
    T = r.shape[-2]
    n_lags = T if n_lags is None else int(n_lags)
    d = (r * r).sum(axis=-1)  # (..., T)
    total = 2.0 * d.sum(axis=-1, keepdims=True)
    # Q_m = 2Σd − Σ_{k<m} d[k] − Σ_{k<m} d[T-1-k]
    head = np.cumsum(d, axis=-1)[..., : n_lags - 1]
    tail = np.cumsum(d[..., ::-1], axis=-1)[..., : n_lags - 1]
    q = np.concatenate([total, total - head - tail], axis=-1)
    s1 = q / (T - np.arange(n_lags))
    s2 = correlate_numpy(r, None, n_lags)
    return s1 - 2.0 * s2


def lag_coordinate(n_lags: int, dt_ps: float) -> xr.DataArray:
    """The ``lag`` coordinate in ps."""
    return xr.DataArray(np.arange(n_lags) * dt_ps, dims="lag", attrs={"units": "ps", "long_name": "lag time"})


def correlate(a: xr.DataArray, b: xr.DataArray | None = None, *, n_lags: int | None = None,
              time_dim: str = "time", component_dim: str | None = "xyz",
              kernel: str = "correlate") -> xr.DataArray:
    """Apply an FFT correlation kernel along ``time_dim`` of labelled data.

    Every dimension other than ``time_dim`` and ``component_dim`` is kept
    (atoms, ions…) and processed blockwise: with Dask-backed input the time
    axis is gathered into one chunk per block, so memory is bounded by the
    block, not by the whole array. The result has a ``lag`` dimension
    (integer lags; the caller attaches the ps coordinate and units).

    ``kernel``: ``"correlate"`` (⟨a(0)·b(t)⟩) or ``"msd"`` (FCA MSD of ``a``).
    """
    T = a.sizes[time_dim]
    n_lags = T if n_lags is None else int(n_lags)
    core = [time_dim] + ([component_dim] if component_dim else [])
    args = [a] if b is None else [a, b]
    args = [x.chunk({d: -1 for d in core}) if x.chunks is not None else x for x in args]
    if kernel == "msd":
        if b is not None or component_dim is None:
            raise ValueError("the msd kernel takes one vector series")
        func = lambda x: msd_fca_numpy(x, n_lags)  # noqa: E731
    elif kernel == "correlate":
        comps = component_dim is not None
        if b is None:
            func = lambda x: correlate_numpy(x, None, n_lags, components=comps)  # noqa: E731
        else:
            func = lambda x, y: correlate_numpy(x, y, n_lags, components=comps)  # noqa: E731
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    return xr.apply_ufunc(
        func, *args,
        input_core_dims=[core] * len(args),
        output_core_dims=[["lag"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lag": n_lags}},
    )
