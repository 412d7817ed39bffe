r"""Structure: radial distribution functions and van Hove correlation functions.

Pure functions over a trajectory Dataset in the store's schema, xarray in,
xarray out, units in attrs. Distances use the minimum image in each frame's
cell (orthorhombic or triclinic, constant or time-dependent), so ``r_max``
may not exceed half the smallest perpendicular width of the cell.

.. math::

    g_{ab}(r) = \frac{V}{N_a N_b'}\Big\langle\sum_{i\in a}\sum_{j\in b, j\ne i}
        \frac{\delta(r - r_{ij})}{4\pi r^2}\Big\rangle, \qquad
    n_{ab}(r) = 4\pi\rho_b\int_0^r g_{ab}(r')r'^2\,dr'

    4\pi r^2 G_s(r,t) = \frac1N\Big\langle\sum_i \delta(r - |\mathbf r_i(t_0+t) - \mathbf r_i(t_0)|)\Big\rangle

    \frac{G_d(r,t)}{\rho_b} = \frac{V}{N_a N_b'}\Big\langle\sum_{i\in a}\sum_{j\in b, j\ne i}
        \frac{\delta(r - |\mathbf r_j(t_0+t) - \mathbf r_i(t_0)|)}{4\pi r^2}\Big\rangle

with N_b' = N_b − 1 when a and b are the same atoms. G_d(r, 0)/ρ = g(r) and
G_d/ρ → 1 at long times (van Hove, Phys. Rev. 95, 249 (1954); Hansen &
McDonald, *Theory of Simple Liquids*, ch. 7).

Pairs are found by cell lists in each frame's cell (:mod:`agi_data.analysis._pairs`:
triclinic and time-dependent cells, memory O(N) per frame, float64 distances
and histograms, equal bin by bin to the all-pairs count); Dask-backed input
is processed per time chunk and the per-frame histograms are summed lazily.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..pbc import half_width
from ._common import (
    Species,
    atom_indices,
    cell_per_frame,
    frame_step,
    renamed_arguments,
    require,
    species_label,
)
from ._pairs import pair_histogram
from .errors import SchemaError, StructureError
from .transport import unwrap

__all__ = ["StructureError", "rdf", "van_hove_self", "van_hove_distinct"]


def _bins(r_max: float, dr: float) -> np.ndarray:
    try:
        r_max, dr = float(r_max), float(dr)
    except (TypeError, ValueError):
        raise StructureError(f"r_max and dr must be numbers in Å, got {r_max!r}, {dr!r}") from None
    if not (np.isfinite(r_max) and np.isfinite(dr)) or dr <= 0 or r_max <= dr:
        raise StructureError(f"need 0 < dr < r_max (Å), got r_max={r_max}, dr={dr}")
    n = int(round(r_max / dr))
    return np.arange(n + 1) * dr


#: the name demo code imported before the geometry moved to agi_data.pbc
_half_width = half_width


def _check_cell(ds: xr.Dataset, r_max: float) -> xr.DataArray:
    if "cell" not in ds.variables:
        raise SchemaError("distances need the variable 'cell' ((vec, xyz) or (time, vec, xyz), Å)")
    cell = ds["cell"].astype(np.float64)
    limit = half_width(np.asarray(cell.values))
    if r_max > limit * (1 + 1e-9):
        raise StructureError(
            f"r_max={r_max:g} Å exceeds half the smallest width of the cell ({limit:g} Å): the minimum image "
            "is only unique below it; lower r_max or use a larger cell"
        )
    return cell


def _pair_hist(pa: np.ndarray, pb: np.ndarray, cell: np.ndarray, edges: np.ndarray, exclude_self: bool) -> np.ndarray:
    """Per-frame histograms (F, n_bins) of minimum-image distances |b_j − a_i|, by cell lists (O(N) memory)."""
    return pair_histogram(pa, pb, cell, edges, exclude_self)


def _shell_volumes(edges: np.ndarray) -> np.ndarray:
    return 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)


def _volume(cell: xr.DataArray) -> xr.DataArray:
    return xr.apply_ufunc(lambda c: np.abs(np.linalg.det(c)), cell, input_core_dims=[["vec", "xyz"]],
                          dask="parallelized", output_dtypes=[np.float64])


def _lag_frames(lags, dt: float, n_frames: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(lags, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise StructureError(f"lags must be one or more lag times in ps, got {lags!r}")
    m = np.round(arr / dt).astype(int)
    if np.any(np.abs(m * dt - arr) > 1e-6 * max(dt, 1.0)):
        raise StructureError(f"lags {arr.tolist()} ps are not multiples of the frame interval {dt:g} ps")
    if np.any(m < 0) or np.any(m > n_frames - 1):
        raise StructureError(
            f"lags {arr.tolist()} ps are outside the trajectory: {n_frames} frames every {dt:g} ps "
            f"give lags 0..{(n_frames - 1) * dt:g} ps"
        )
    return m


def _pair_selections(ds: xr.Dataset, a: Species, b: Species):
    require(ds, "positions", min_frames=1)
    ia, ib = atom_indices(ds, a), atom_indices(ds, b)
    same = ia.size == ib.size and np.array_equal(ia, ib)
    if not same and np.intersect1d(ia, ib).size:
        raise StructureError("the selections a and b overlap without being identical; choose disjoint or equal species")
    if same and ia.size < 2:
        raise StructureError("an a–a distribution needs at least 2 atoms of that species")
    return ia, ib, same


def _positions(ds: xr.Dataset, idx: np.ndarray, name: str) -> xr.DataArray:
    p = ds["positions"].isel(atom=idx).rename({"atom": name})
    return p.chunk({name: -1}) if p.chunks is not None else p


def _hist_over_time(pa: xr.DataArray, pb: xr.DataArray, cell: xr.DataArray, edges: np.ndarray,
                    exclude_self: bool) -> xr.DataArray:
    """Per-frame pair histograms (time, r), lazily per time chunk on Dask input."""
    cell_core = ["vec", "xyz"]
    if "time" in cell.dims and cell.chunks is None and pa.chunks is not None:
        cell = cell.chunk({"time": pa.chunksizes["time"]})
    return xr.apply_ufunc(
        lambda x, y, c: _pair_hist(x, y, c, edges, exclude_self), pa, pb, cell,
        input_core_dims=[["atom_a", "xyz"], ["atom_b", "xyz"], cell_core], output_core_dims=[["r"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"r": len(edges) - 1}},
    )


def _r_coord(edges: np.ndarray) -> dict:
    return {"r": ("r", 0.5 * (edges[1:] + edges[:-1]), {"units": "Å", "long_name": "distance (bin centre)"})}


def _finish_pair(counts: xr.DataArray, volume: xr.DataArray, edges: np.ndarray, na: int, nb_eff: int):
    """g from per-frame counts (time, r): normalised per frame by its volume, then averaged."""
    shell = xr.DataArray(_shell_volumes(edges), dims="r")
    g = (counts * volume / (na * nb_eff * shell)).mean("time")
    n = (counts.cumsum("r") / na).mean("time")
    return g, n


@renamed_arguments(ds="traj")
def rdf(traj: xr.Dataset, a: Species, b: Species, *, r_max: float, dr: float) -> xr.DataArray:
    r"""Radial distribution function g_ab(r) with the running coordination number.

    Pairs at minimum-image distance in each frame's cell, histogrammed in
    bins of width ``dr`` up to ``r_max`` (Å) and normalised per frame by the
    ideal-gas count N_a N_b' 4π(r₊³ − r₋³)/(3V), then averaged over frames.
    The coordinate ``coordination_number(r)`` is n_ab(r) = 4πρ_b∫₀^r g r'²dr'
    at the bin's upper edge: the mean number of b atoms within that distance
    of an a atom.

    Returns
    -------
    DataArray ``rdf(r)`` (dimensionless) with coordinates ``r`` (bin
    centres, Å) and ``coordination_number(r)``. Lazy on Dask input.
    """
    edges = _bins(r_max, dr)
    ia, ib, same = _pair_selections(traj, a, b)
    cell = _check_cell(traj, edges[-1])
    lazy = traj["positions"].chunks is not None
    pa, pb = _positions(traj, ia, "atom_a"), _positions(traj, ib, "atom_b")
    counts = _hist_over_time(pa, pb, cell, edges, same)
    vol = _volume(cell_per_frame(traj).astype(np.float64))
    g, n = _finish_pair(counts, vol, edges, ia.size, ib.size - (1 if same else 0))
    out = g.assign_coords(_r_coord(edges)).assign_coords(
        coordination_number=n.assign_attrs(units="1", long_name="coordination number at the bin's upper edge"))
    out = out.rename("rdf")
    out.attrs = {"units": "1", "long_name": "radial distribution function",
                 "a": species_label(traj.isel(atom=ia)), "b": species_label(traj.isel(atom=ib)),
                 "n_frames": int(traj.sizes["time"]), "dr": float(dr), "r_max": float(edges[-1])}
    if "run_id" in traj.attrs:
        out.attrs["run_id"] = str(traj.attrs["run_id"])
    return out if lazy else out.compute()


def _shifted(p: xr.DataArray, m: int, stride: int, later: bool) -> xr.DataArray:
    """Frames t0 (or t0 + m) for origins t0 = 0, stride, ... with t0 + m < T, on a common origin axis."""
    T = p.sizes["time"]
    sl = slice(m, T, stride) if later else slice(0, T - m, stride)
    q = p.isel(time=sl)
    return q.drop_vars("time").rename({"time": "origin"})


@renamed_arguments(ds="traj")
def van_hove_self(traj: xr.Dataset, species: Species, lags: Sequence[float] | float, *, r_max: float, dr: float,
                  origin_stride: int = 1) -> xr.DataArray:
    r"""Self part of the van Hove function, as the radial density 4πr²G_s(r, t).

    .. math:: 4\pi r^2 G_s(r,t)\,dr = \text{fraction of (atom, origin) pairs that moved a distance in } [r, r+dr)

    over all time origins (every ``origin_stride``-th frame) and the atoms of
    ``species``, from unwrapped positions (:func:`~agi_data.analysis.unwrap`).
    Normalised so that ∫₀^∞ 4πr²G_s dr = 1 (the part beyond ``r_max`` is
    missing). For a random walk it is the Gaussian
    4πr²(4πDt)^{-3/2} e^{−r²/4Dt}.

    Returns
    -------
    DataArray ``van_hove_self(lag, r)`` in 1/Å; ``lag`` in ps.
    """
    edges = _bins(r_max, dr)
    require(traj, "positions")
    sel = traj.isel(atom=atom_indices(traj, species))
    dt = frame_step(sel)
    m_all = _lag_frames(lags, dt, sel.sizes["time"])
    stride = _stride(origin_stride)
    u = unwrap(sel)["positions"]
    lazy = u.chunks is not None
    nb = len(edges) - 1
    parts = []
    for m in m_all:
        disp = _shifted(u, m, stride, True) - _shifted(u, m, stride, False)
        if lazy:
            disp = disp.chunk({"atom": -1})
        h = xr.apply_ufunc(
            lambda d: _radial_hist(d, edges), disp,
            input_core_dims=[["atom", "xyz"]], output_core_dims=[["r"]],
            dask="parallelized", output_dtypes=[np.float64], dask_gufunc_kwargs={"output_sizes": {"r": nb}},
        )
        parts.append(h.mean("origin") / (sel.sizes["atom"] * dr))
    out = xr.concat(parts, dim="lag").assign_coords(
        lag=("lag", m_all * dt, {"units": "ps", "long_name": "lag time"}), **_r_coord(edges))
    out = out.rename("van_hove_self")
    out.attrs = {"units": "1/Å", "long_name": "self van Hove function 4πr²G_s(r,t)",
                 "species": species_label(sel), "origin_stride": stride}
    return out if lazy else out.compute()


def _radial_hist(d: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Histogram over atoms of |d| per leading index: d (..., N, 3) → (..., n_bins)."""
    dr, nb = edges[1] - edges[0], len(edges) - 1
    r = np.sqrt(np.square(d).sum(-1))
    lead = r.shape[:-1]
    r = r.reshape(-1, r.shape[-1])
    ok = r < edges[-1]
    idx = np.floor(r[ok] / dr).astype(np.int64) + nb * np.nonzero(ok)[0]
    return np.bincount(idx, minlength=r.shape[0] * nb).reshape(lead + (nb,)).astype(np.float64)


def _stride(origin_stride) -> int:
    s = int(origin_stride)
    if s < 1:
        raise StructureError(f"origin_stride must be ≥ 1, got {origin_stride!r}")
    return s


@renamed_arguments(ds="traj")
def van_hove_distinct(traj: xr.Dataset, a: Species, b: Species, lags: Sequence[float] | float, *, r_max: float,
                      dr: float, origin_stride: int = 1) -> xr.DataArray:
    r"""Distinct part of the van Hove function, normalised by the density: G_d(r, t)/ρ_b.

    Distances |r_j(t₀+t) − r_i(t₀)| between an a atom at the origin and a
    different b atom a lag later, at minimum image in the cell of the later
    frame, histogrammed and normalised like :func:`rdf` (per origin, by the
    ideal-gas count in the later frame's volume). At t = 0 it equals g_ab(r);
    at long times it tends to 1.

    Returns
    -------
    DataArray ``van_hove_distinct(lag, r)`` (dimensionless); ``lag`` in ps.
    """
    edges = _bins(r_max, dr)
    ia, ib, same = _pair_selections(traj, a, b)
    _check_cell(traj, edges[-1])
    dt = frame_step(traj)
    m_all = _lag_frames(lags, dt, traj.sizes["time"])
    stride = _stride(origin_stride)
    lazy = traj["positions"].chunks is not None
    pa, pb = _positions(traj, ia, "atom_a"), _positions(traj, ib, "atom_b")
    cells = cell_per_frame(traj).astype(np.float64)
    parts = []
    for m in m_all:
        later_cell = _shifted(cells, m, stride, True)
        h = _hist_over_time(_shifted(pa, m, stride, False).rename({"origin": "time"}),
                            _shifted(pb, m, stride, True).rename({"origin": "time"}),
                            later_cell.rename({"origin": "time"}), edges, same)
        g, _ = _finish_pair(h, _volume(later_cell.rename({"origin": "time"})), edges, ia.size,
                            ib.size - (1 if same else 0))
        parts.append(g)
    out = xr.concat(parts, dim="lag").assign_coords(
        lag=("lag", m_all * dt, {"units": "ps", "long_name": "lag time"}), **_r_coord(edges))
    out = out.rename("van_hove_distinct")
    out.attrs = {"units": "1", "long_name": "distinct van Hove function G_d(r,t)/ρ",
                 "a": species_label(traj.isel(atom=ia)), "b": species_label(traj.isel(atom=ib)),
                 "origin_stride": stride}
    return out if lazy else out.compute()
