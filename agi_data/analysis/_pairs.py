"""Pair-distance histograms per frame by cell lists, valid for triclinic and time-dependent cells.

For each frame the points of ``b`` are sorted into a grid of n₁×n₂×n₃ cells
in fractional coordinates, n_i = ⌊w_i / r_max⌋ with w_i the perpendicular
width of the cell across lattice direction i. A pair at minimum-image
distance r < r_max has fractional separation |Δs_i| ≤ r / w_i < 1/n_i along
every direction, so it lies in the same or an adjacent grid cell (modulo
n_i): only those 27 (fewer when n_i < 3) cells are searched. ``r_max`` may be
up to half the smallest perpendicular width, the limit of the minimum image
(:func:`agi_data.pbc.half_width`).

Memory per frame is O(N) (the sort of b), never O(N_a·N_b), and the
histogram is accumulated in float64 from float64 distances. Both paths — the
cell list and the all-pairs reference — compute each distance with the same
compiled arithmetic (:func:`_distance2`: Cartesian difference, fractional
coordinates, s − rint(s), back to Cartesian, the squared norm, then its
square root), so a distance on a bin edge falls in the same bin in both and
their histograms are equal exactly.
"""

from __future__ import annotations

import numba
import numpy as np

from ._neighbours import bin_sort, grid_cell, grid_shape


@numba.njit(cache=True, nogil=True, inline="always")
def _distance2(ax, ay, az, bx, by, bz, c, inv):  # pragma: no cover - compiled
    dx, dy, dz = bx - ax, by - ay, bz - az
    s0 = dx * inv[0, 0] + dy * inv[1, 0] + dz * inv[2, 0]
    s1 = dx * inv[0, 1] + dy * inv[1, 1] + dz * inv[2, 1]
    s2 = dx * inv[0, 2] + dy * inv[1, 2] + dz * inv[2, 2]
    s0 -= np.rint(s0)
    s1 -= np.rint(s1)
    s2 -= np.rint(s2)
    x = s0 * c[0, 0] + s1 * c[1, 0] + s2 * c[2, 0]
    y = s0 * c[0, 1] + s1 * c[1, 1] + s2 * c[2, 1]
    z = s0 * c[0, 2] + s1 * c[1, 2] + s2 * c[2, 2]
    return x * x + y * y + z * z


@numba.njit(cache=True, nogil=True, inline="always")
def _add(hist, f, r2, dr, r_max, nb):  # pragma: no cover - compiled
    r = np.sqrt(r2)
    if r < r_max:
        k = int(np.floor(r / dr))
        hist[f, min(k, nb - 1)] += 1.0


@numba.njit(cache=True, nogil=True)
def _all_pairs(pa, pb, cells, invs, dr, r_max, nb, exclude_self):  # pragma: no cover - compiled
    n_frames = pa.shape[0]
    hist = np.zeros((n_frames, nb))
    for f in range(n_frames):
        c, inv = cells[f], invs[f]
        for i in range(pa.shape[1]):
            for j in range(pb.shape[1]):
                if exclude_self and i == j:
                    continue
                _add(hist, f, _distance2(pa[f, i, 0], pa[f, i, 1], pa[f, i, 2],
                                         pb[f, j, 0], pb[f, j, 1], pb[f, j, 2], c, inv), dr, r_max, nb)
    return hist


@numba.njit(cache=True, nogil=True, inline="always")
def _cell_of(x, y, z, inv, n0, n1, n2):  # pragma: no cover - compiled
    return grid_cell(x * inv[0, 0] + y * inv[1, 0] + z * inv[2, 0], x * inv[0, 1] + y * inv[1, 1] + z * inv[2, 1],
                     x * inv[0, 2] + y * inv[1, 2] + z * inv[2, 2], n0, n1, n2)


@numba.njit(cache=True, nogil=True)
def _neighbour_cells(i, n):  # pragma: no cover - compiled
    """Grid indices along one axis within ±1 of i (mod n), each once."""
    if n >= 3:
        out = np.empty(3, np.int64)
        out[0], out[1], out[2] = (i - 1) % n, i, (i + 1) % n
        return out
    return np.arange(n)


@numba.njit(cache=True, nogil=True)
def _cell_list(pa, pb, cells, invs, grids, dr, r_max, nb, exclude_self):  # pragma: no cover - compiled
    n_frames, n_a, n_b = pa.shape[0], pa.shape[1], pb.shape[1]
    hist = np.zeros((n_frames, nb))
    key = np.empty(n_b, np.int64)
    for f in range(n_frames):
        c, inv = cells[f], invs[f]
        n0, n1, n2 = grids[f, 0], grids[f, 1], grids[f, 2]
        n_cells = n0 * n1 * n2
        for j in range(n_b):
            key[j] = _cell_of(pb[f, j, 0], pb[f, j, 1], pb[f, j, 2], inv, n0, n1, n2)
        order, start = bin_sort(key, n_cells)
        for i in range(n_a):
            ax, ay, az = pa[f, i, 0], pa[f, i, 1], pa[f, i, 2]
            h = _cell_of(ax, ay, az, inv, n0, n1, n2)
            h0, h1, h2 = h // (n1 * n2), (h // n2) % n1, h % n2
            for u in _neighbour_cells(h0, n0):
                for v in _neighbour_cells(h1, n1):
                    for w in _neighbour_cells(h2, n2):
                        q = (u * n1 + v) * n2 + w
                        for p in range(start[q], start[q + 1]):
                            j = order[p]
                            if exclude_self and i == j:
                                continue
                            _add(hist, f, _distance2(ax, ay, az, pb[f, j, 0], pb[f, j, 1], pb[f, j, 2], c, inv),
                                 dr, r_max, nb)
    return hist


def pair_histogram(pa: np.ndarray, pb: np.ndarray, cells: np.ndarray, edges: np.ndarray, exclude_self: bool,
                   *, method: str = "cell_list") -> np.ndarray:
    """Per-frame histograms (F, n_bins) of minimum-image distances |b_j − a_i| < edges[-1], float64 counts.

    ``pa`` (F, Na, 3) and ``pb`` (F, Nb, 3) Å; ``cells`` (F, 3, 3) or (3, 3)
    row-vector cells; ``edges`` equally spaced from 0; ``exclude_self``
    leaves out i = j (a and b the same atoms). ``method``: ``"cell_list"``
    or ``"all_pairs"`` (the O(Na·Nb) reference; equal counts).
    """
    pa = np.ascontiguousarray(pa, dtype=np.float64)
    pb = np.ascontiguousarray(pb, dtype=np.float64)
    cells = np.ascontiguousarray(np.broadcast_to(np.asarray(cells, dtype=np.float64), (pa.shape[0], 3, 3)))
    invs = np.ascontiguousarray(np.linalg.inv(cells))
    nb = len(edges) - 1
    dr, r_max = float(edges[1] - edges[0]), float(edges[-1])
    if method == "all_pairs":
        return _all_pairs(pa, pb, cells, invs, dr, r_max, nb, bool(exclude_self))
    if method != "cell_list":
        raise ValueError(f"method must be 'cell_list' or 'all_pairs', got {method!r}")
    return _cell_list(pa, pb, cells, invs, grid_shape(cells, r_max)[0], dr, r_max, nb, bool(exclude_self))
