"""Compiled passes that turn stored ``(series, T, k)`` data into FFT-ready float64 rows, and spectra into power.

The FFTs of :mod:`agi_data.analysis.correlate` run at the machine's FFT
rate; what surrounds them did not. Profiled on 64 atoms × 20 000 frames
(float32 positions as the store holds them, one thread), the numpy steps
around the transforms took 58 % of the MSD: the strided cast-and-transpose
copy 14 %, the unwrap (``diff``, minimum image on a transposed view,
``cumsum``) 27 %, centring and r² 7 %, the power sum 9 %, each a separate
pass over the data. Each function here is one pass:

- :func:`gather` — cast and transpose ``(m, T, k) → (m, k, T)`` float64,
  reading the source frame by frame (the atoms of a frame lie side by side
  in a stored block);
- :func:`gather_unwrap` — the same copy with the TOR unwrap of
  :func:`agi_data.pbc.unwrap` fused in (minimum-image step in the cell of
  the later frame, fractional coordinates s − rint(s), rows of the cell are
  lattice vectors);
- :func:`centre_cumsum` — each series centred on its mean (in place) and
  the cumulative sum of r²(t) = Σ_k x_k(t)², from which
  :func:`fca_finish` forms the MSD's S1 term at every lag and the result;
- :func:`power_sum` — Σ_k |F_k|² over the component axis of a spectrum.

Accumulation is in float64 throughout; the unwrapped path is the same
sum of minimum-image steps as ``pbc.unwrap`` (agreement to rounding, checked
by the tests).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather", "gather_unwrap", "centre_cumsum", "fca_finish", "power_sum"]


#: frames per tile of the gathering passes: the source lines of a tile (a few atoms side by side per
#: frame) stay in cache while each atom and component of the group is copied out of them (measured on
#: 128-atom store blocks: 2.3x faster than one frame at a time, 1.5x faster than one atom at a time)
_TILE = 256


@numba.njit(cache=True, nogil=True)
def gather(src, out):  # pragma: no cover - compiled
    """out[s, c, t] = src[s, t, c] for t < T (src: (m, T, k) any float dtype and strides; out: (m', k, ≥T) f64)."""
    m, T, k = src.shape
    for t0 in range(0, T, _TILE):
        t1 = min(T, t0 + _TILE)
        for s in range(m):
            for c in range(k):
                for t in range(t0, t1):
                    out[s, c, t] = src[s, t, c]


@numba.njit(cache=True, nogil=True, inline="always")
def _frac_mic(d0, d1, d2, h, g):  # pragma: no cover - compiled
    """Minimum image of (d0, d1, d2) in cell ``h`` (rows are lattice vectors) with inverse ``g``: 9-tuples."""
    s0 = d0 * g[0] + d1 * g[3] + d2 * g[6]
    s1 = d0 * g[1] + d1 * g[4] + d2 * g[7]
    s2 = d0 * g[2] + d1 * g[5] + d2 * g[8]
    s0 -= np.rint(s0)
    s1 -= np.rint(s1)
    s2 -= np.rint(s2)
    return (s0 * h[0] + s1 * h[3] + s2 * h[6],
            s0 * h[1] + s1 * h[4] + s2 * h[7],
            s0 * h[2] + s1 * h[5] + s2 * h[8])


@numba.njit(cache=True, nogil=True, inline="always")
def _nine(a, j):  # pragma: no cover - compiled
    return (a[j, 0, 0], a[j, 0, 1], a[j, 0, 2], a[j, 1, 0], a[j, 1, 1], a[j, 1, 2], a[j, 2, 0], a[j, 2, 1], a[j, 2, 2])


@numba.njit(cache=True, nogil=True)
def gather_unwrap(src, cells, invs, ortho, out):  # pragma: no cover - compiled
    """:func:`gather` of wrapped positions with the TOR unwrap fused in.

    ``src`` (m, T, 3) wrapped positions (any float dtype and strides);
    ``cells``/``invs`` (Tc, 3, 3) the cells and their inverses, Tc = 1 for
    a constant cell, else Tc = T (the step t−1 → t is taken in cell t);
    ``ortho``: every cell is diagonal (the minimum image is then
    d − L·rint(d/L) per axis, with 1/L precomputed). ``out[s, c, t]`` =
    the first frame plus the running sum of minimum-image steps (the sum
    :func:`agi_data.pbc.unwrap` forms).
    """
    m, T, _ = src.shape
    const = cells.shape[0] == 1
    prev = np.empty((m, 3))   # the last wrapped position seen
    steps = np.zeros((m, 3))  # the running sum of minimum-image steps
    for s in range(m):
        for c in range(3):
            prev[s, c] = src[s, 0, c]
            out[s, c, 0] = prev[s, c]
    h, g = _nine(cells, 0), _nine(invs, 0)
    for t0 in range(1, T, _TILE):
        t1 = min(T, t0 + _TILE)
        for s in range(m):
            if ortho:  # the components are independent: one at a time (one dependency chain, fewer streams)
                for c in range(3):
                    p, u, x = prev[s, c], steps[s, c], out[s, c, 0]
                    for t in range(t0, t1):
                        j = 0 if const else t
                        w = np.float64(src[s, t, c])
                        d = w - p
                        d -= cells[j, c, c] * np.rint(d * invs[j, c, c])
                        p = w
                        u += d
                        out[s, c, t] = u + x
                    prev[s, c], steps[s, c] = p, u
                continue
            p0, p1, p2 = prev[s, 0], prev[s, 1], prev[s, 2]
            u0, u1, u2 = steps[s, 0], steps[s, 1], steps[s, 2]
            x0, x1, x2 = out[s, 0, 0], out[s, 1, 0], out[s, 2, 0]
            for t in range(t0, t1):
                w0, w1, w2 = np.float64(src[s, t, 0]), np.float64(src[s, t, 1]), np.float64(src[s, t, 2])
                if not const:
                    h, g = _nine(cells, t), _nine(invs, t)
                d0, d1, d2 = _frac_mic(w0 - p0, w1 - p1, w2 - p2, h, g)
                p0, p1, p2 = w0, w1, w2
                u0 += d0
                u1 += d1
                u2 += d2
                out[s, 0, t], out[s, 1, t], out[s, 2, t] = u0 + x0, u1 + x1, u2 + x2
            prev[s, 0], prev[s, 1], prev[s, 2] = p0, p1, p2
            steps[s, 0], steps[s, 1], steps[s, 2] = u0, u1, u2


@numba.njit(cache=True, nogil=True)
def centre_cumsum(x, T, csum):  # pragma: no cover - compiled
    """Centre each series ``x[s, c, :T]`` on its mean, in place; ``csum[s, t]`` = Σ_{t' ≤ t} Σ_c x[s, c, t']².

    The cumulative sum of r²(t) gives the MSD's S1 term at every lag (:func:`fca_finish`).
    """
    m, k, _ = x.shape
    for s in range(m):
        for t in range(T):
            csum[s, t] = 0.0
        for c in range(k):
            total = 0.0
            for t in range(T):
                total += x[s, c, t]
            mean = total / T
            for t in range(T):
                v = x[s, c, t] - mean
                x[s, c, t] = v
                csum[s, t] += v * v
        for t in range(1, T):
            csum[s, t] += csum[s, t - 1]


@numba.njit(cache=True, nogil=True)
def fca_finish(csum, s2, scale, out):  # pragma: no cover - compiled
    """MSD(m) = [S1(m) − scale · s2[m]] / (T − m) from the cumulative r² and the unnormalised S2.

    With c = ``csum[s]`` (T values), (T − m)·S1(m) = 2Σr² − Σ_{t<m} r²(t) − Σ_{t<m} r²(T−1−t)
    = c[T−1] − c[m−1] + c[T−1−m] (m ≥ 1), 2·c[T−1] at m = 0. MSD(0) is written as exactly 0.
    """
    m_series, n_lags = out.shape
    T = csum.shape[1]
    for s in range(m_series):
        last = csum[s, T - 1]
        out[s, 0] = 0.0
        for m in range(1, n_lags):
            out[s, m] = (last - csum[s, m - 1] + csum[s, T - 1 - m] - scale * s2[s, m]) / (T - m)


@numba.njit(cache=True, nogil=True)
def power_sum(f, out):  # pragma: no cover - compiled
    """out[s, j] = Σ_c |f[s, c, j]|² (f: (m, k, n_f) complex; out: (m', n_f) float64)."""
    m, k, nf = f.shape
    for s in range(m):
        for j in range(nf):
            out[s, j] = 0.0
        for c in range(k):
            for j in range(nf):
                z = f[s, c, j]
                out[s, j] += z.real * z.real + z.imag * z.imag
