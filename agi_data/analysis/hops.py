r"""Ag⁺ hops between the tetrahedral sites of the iodide lattice, cages, and hop-conditioned averages.

Sites
-----
The site of a mobile ion (Ag⁺) on a frame is the set of its **4 nearest
host ions** (iodides), by minimum image in that frame's cell, as a sorted
tuple of their atom indices. In the bcc iodide lattice of α-AgI every
tetrahedral (12d) site is the centre of exactly one such tetrahedron and
vice versa, so this is the "nearest tetrahedral site of the instantaneous
iodide lattice" without needing a reference lattice: it follows the lattice
as it vibrates, drifts or strains, and it names the iodides that a hop
involves (used by :func:`hop_conditioned_average`). Two sites that share a
face share 3 iodides.

Hops
----
A *hop* is a lasting change of site. The site series of each ion is split
into runs of constant site; a run lasting at least ``min_dwell_ps`` is
*committed*, shorter runs (rattling, passages through faces) are ignored.
A hop is recorded between consecutive committed runs of different sites, at
the first frame of the new committed run (the frame from which the ion
stays). Runs are judged as they are, also at the ends of the trajectory.

References: Dhattarwal, Somni & Remsing, Nat. Commun. 15, 121 (2024) (hop /
paddlewheel coupling); Rabani, Gezelter & Berne, J. Chem. Phys. 107, 6867
(1997) (cage correlation function).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from ..elements import symbols
from ..pbc import distances, half_width
from ._common import (
    atom_indices,
    cell_per_frame,
    compute,
    frame_grid,
    frame_step,
    n_lags,
    renamed_arguments,
    require,
)
from ._neighbours import nearest
from .correlate import correlate_numpy, lag_coordinate
from .ensemble import ensemble_attrs
from .errors import HopError, WannierError
from .wannier import iodide_dipoles, lone_pair_angular_velocity, rotor_function

__all__ = [
    "HopError",
    "SITE_DEFINITION",
    "hops",
    "hop_rate",
    "residence_times",
    "residence_time_distribution",
    "cage_correlation",
    "hop_conditioned_average",
    "DEFAULT_FAR_CUTOFF_A",
]

SITE_DEFINITION = "sorted indices of the 4 nearest host ions (minimum image, per frame)"
HOP_QUANTITIES = ("rotor_change", "dipole_angle", "angular_velocity")
#: the far cutoff of :func:`hop_conditioned_average` (Å) where the cell is large enough for it
DEFAULT_FAR_CUTOFF_A = 6.0


# --------------------------------------------------------------------------------------------
# neighbour lists per frame (Dask-parallel over time blocks)
# --------------------------------------------------------------------------------------------

def _neighbour_kernel(pos, cell, *, a_atoms, b_atoms, k, a_in_b, ordered=False):
    idx, _ = nearest(pos[:, a_atoms], pos[:, b_atoms], cell, k=k, a_in_b=a_in_b)
    found = b_atoms[idx]  # nearest first
    return (found if ordered else np.sort(found, axis=-1)).astype(np.int32)


def _neighbour_lists(traj: xr.Dataset, a_atoms: np.ndarray, b_atoms: np.ndarray, k: int,
                     exclude_self: bool, ordered: bool = False) -> xr.DataArray:
    """Atom indices of the k nearest ``b_atoms`` of each of ``a_atoms``: (time, ion, neighbor).

    Sorted by index (the list as a set), or nearest first with ``ordered``.
    """
    if k > len(b_atoms) - (1 if exclude_self else 0):
        raise HopError(f"asked for {k} neighbours but only {len(b_atoms)} candidate atoms exist")
    a_in_b = np.array([np.flatnonzero(b_atoms == a)[0] if exclude_self and a in b_atoms else -1
                       for a in a_atoms], dtype=np.int64)
    pos = traj["positions"]
    cell = cell_per_frame(traj)
    if pos.chunks is not None:  # the kernel needs every atom of a frame: one chunk along atom
        pos = pos.chunk({"atom": -1})
        cell = cell.chunk({"time": pos.chunksizes["time"]})
    return xr.apply_ufunc(
        _neighbour_kernel, pos, cell,
        kwargs={"a_atoms": a_atoms, "b_atoms": b_atoms, "k": int(k), "a_in_b": a_in_b, "ordered": ordered},
        input_core_dims=[["atom", "xyz"], ["vec", "xyz"]],
        output_core_dims=[["ion", "neighbor"]],
        dask="parallelized", output_dtypes=[np.int32],
        dask_gufunc_kwargs={"output_sizes": {"ion": len(a_atoms), "neighbor": int(k)}},
    ).assign_coords(atom=("ion", a_atoms))


# --------------------------------------------------------------------------------------------
# hops
# --------------------------------------------------------------------------------------------

def _hops_1d(s: np.ndarray, n_dwell: int):
    """Hops of one site series: (frames, from_sites, to_sites) between committed runs."""
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]
    lengths = np.diff(np.r_[starts, s.size])
    committed = lengths >= n_dwell
    cs, csite = starts[committed], s[starts[committed]]
    change = np.flatnonzero(csite[1:] != csite[:-1]) + 1
    return cs[change], csite[change - 1], csite[change]


def hops(traj: xr.Dataset, species: str = "Ag", *, host: str = "I", min_dwell_ps: float = 0.2,
         progress: bool = False) -> pd.DataFrame:
    r"""Table of hop events of the ``species`` ions between tetrahedral sites of the ``host`` lattice.

    Site = the sorted 4 nearest host ions on each frame (see the module
    docstring); a hop = a change between committed stays of at least
    ``min_dwell_ps``, timed at the first frame of the new stay. Uses every
    trajectory frame (equally spaced; else :class:`SchemaError`).

    Parameters
    ----------
    traj
        trajectory in the store schema.
    species
        the mobile ions (default ``"Ag"``).
    host
        the lattice ions whose tetrahedra define the sites (default ``"I"``).
    min_dwell_ps
        dwell threshold, ps: shorter stays are rattling, not hops (default
        0.2 ps, about one Ag⁺ rattling period; rounded up to whole frames).
    progress
        show a progress bar while Dask computes.

    Returns
    -------
    pandas.DataFrame, one row per hop: ``atom`` (index in ``traj``), ``frame``,
    ``time`` (ps), ``from_site`` and ``to_site`` (tuples of 4 host atom
    indices), ``shared`` (host ions common to both sites; 3 for
    face-sharing neighbours). ``attrs``: units, species, host,
    min_dwell_ps/min_dwell_frames, timestep_ps, n_frames, duration_ps,
    n_atoms, atoms, site_definition.
    """
    require(traj, "positions")
    dynamics = ensemble_attrs(traj, "hops")
    dt = frame_step(traj)
    if not min_dwell_ps >= 0:
        raise HopError(f"min_dwell_ps must be ≥ 0 ps, got {min_dwell_ps!r}")
    n_dwell = max(1, math.ceil(min_dwell_ps / dt - 1e-9))
    a_atoms, h_atoms = atom_indices(traj, species), atom_indices(traj, host)
    if len(h_atoms) < 4:
        raise HopError(f"sites need 4 {host} ions around each {species}; the run has {len(h_atoms)}")
    sites = compute(_neighbour_lists(traj, a_atoms, h_atoms, 4, exclude_self=False), progress=progress).values
    T = sites.shape[0]
    local = np.searchsorted(h_atoms, sites).astype(np.int64)  # host-local indices, sorted
    n_h = len(h_atoms)
    keys = ((local[..., 0] * n_h + local[..., 1]) * n_h + local[..., 2]) * n_h + local[..., 3]

    def decode(key):
        out = []
        for _ in range(4):
            key, r = divmod(int(key), n_h)
            out.append(int(h_atoms[r]))
        return tuple(out[::-1])

    rows = []
    for i, atom in enumerate(a_atoms):
        frames, from_k, to_k = _hops_1d(keys[:, i], n_dwell)
        for f, a, b in zip(frames, from_k, to_k):
            fa, fb = decode(a), decode(b)
            rows.append((int(atom), int(f), float(traj["time"].values[f]), fa, fb, len(set(fa) & set(fb))))
    table = pd.DataFrame(rows, columns=["atom", "frame", "time", "from_site", "to_site", "shared"])
    table = table.astype({"atom": np.int64, "frame": np.int64, "time": np.float64, "shared": np.int64})
    table.attrs.update(
        units={"time": "ps"}, species=species, host=host, min_dwell_ps=float(min_dwell_ps),
        min_dwell_frames=int(n_dwell), timestep_ps=float(dt), n_frames=int(T),
        duration_ps=float((T - 1) * dt), n_atoms=len(a_atoms), atoms=[int(a) for a in a_atoms],
        site_definition=SITE_DEFINITION, run_id=traj.attrs.get("run_id"), **dynamics,
    )
    return table


def _hop_table(obj, species: str | None, kwargs: Mapping) -> pd.DataFrame:
    """The hop table itself, or hops computed from a trajectory (the accessor passes the Dataset)."""
    if isinstance(obj, pd.DataFrame):
        if kwargs:
            raise HopError(f"options {sorted(kwargs)} apply when computing hops from a trajectory, "
                           "not to an existing hop table")
        if "n_atoms" not in obj.attrs or "duration_ps" not in obj.attrs:
            raise HopError("the table lacks the attrs of hops() (n_atoms, duration_ps): pass the table hops() returned")
        if species is not None and species != obj.attrs.get("species"):
            raise HopError(f"the hop table is for {obj.attrs.get('species')!r}, not {species!r}")
        return obj
    if isinstance(obj, xr.Dataset):
        return hops(obj, "Ag" if species is None else species, **kwargs)
    raise HopError(f"expected a trajectory Dataset or the table from hops(), got {type(obj).__name__}")


def hop_rate(hop_table, species: str | None = None, **hops_kwargs) -> xr.DataArray:
    r"""Hop rate per ion, k = N_hops / (N_ions · t_run), in 1/ps, with its Poisson error √N_hops/(N_ions·t_run).

    ``hop_table``: the table from :func:`hops`, or a trajectory (then
    ``species`` — default ``"Ag"`` — and ``hops_kwargs`` go to :func:`hops`).
    """
    table = _hop_table(hop_table, species, hops_kwargs)
    n, n_atoms, dur = len(table), table.attrs["n_atoms"], table.attrs["duration_ps"]
    if n_atoms == 0 or dur <= 0:
        raise HopError("a hop rate needs at least one ion and two frames")
    rate = n / (n_atoms * dur)
    return xr.DataArray(rate, name="hop_rate", attrs={
        "units": "1/ps", "error": math.sqrt(n) / (n_atoms * dur), "n_hops": n, "n_atoms": n_atoms,
        "duration_ps": dur, "species": table.attrs.get("species"), "min_dwell_ps": table.attrs.get("min_dwell_ps"),
        "long_name": "hops per ion per ps"})


def residence_times(hop_table, species: str | None = None, **hops_kwargs) -> xr.DataArray:
    r"""Completed residence times in a site (ps): the time between consecutive hops of one ion.

    Stays cut by the start or the end of the run are censored: they are
    counted (``attrs["n_censored"]``), not included. Arguments as in :func:`hop_rate`.
    """
    table = _hop_table(hop_table, species, hops_kwargs)
    durations, atoms, sites, starts = [], [], [], []
    for atom, group in table.sort_values(["atom", "frame"]).groupby("atom"):
        t = group["time"].to_numpy()
        durations.extend(np.diff(t))
        atoms.extend([atom] * (len(t) - 1))
        sites.extend("-".join(map(str, s)) for s in group["to_site"].to_numpy()[:-1])
        starts.extend(t[:-1])
    n_hopping = table["atom"].nunique()
    n_censored = 2 * n_hopping + (table.attrs["n_atoms"] - n_hopping)
    return xr.DataArray(
        np.asarray(durations, dtype=float), dims="residence", name="residence_time",
        coords={"atom": ("residence", np.asarray(atoms, dtype=np.int64)),
                "site": ("residence", np.asarray(sites, dtype=str)),
                "start": ("residence", np.asarray(starts, dtype=float), {"units": "ps"})},
        attrs={"units": "ps", "n_censored": int(n_censored), "species": table.attrs.get("species"),
               "long_name": "completed residence time in a tetrahedral site"},
    )


def residence_time_distribution(hop_table, species: str | None = None, *, bins=20, **hops_kwargs) -> xr.DataArray:
    """Probability density (1/ps) of the completed residence times, over ``bins`` (a count or edges in ps)."""
    res = residence_times(hop_table, species, **hops_kwargs)
    if res.size == 0:
        raise HopError("no completed residence (fewer than two hops by any ion): nothing to histogram")
    density, edges = np.histogram(res.values, bins=bins, density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return xr.DataArray(density, dims="residence_time", name="residence_time_distribution",
                        coords={"residence_time": ("residence_time", centres, {"units": "ps"})},
                        attrs={"units": "1/ps", "bin_edges_ps": edges.tolist(), "mean_ps": float(res.mean()),
                               "n": int(res.size), "n_censored": res.attrs["n_censored"]})


# --------------------------------------------------------------------------------------------
# cage correlation
# --------------------------------------------------------------------------------------------

def _cage_kernel(lists: np.ndarray, n_lags: int, block: int = 64) -> np.ndarray:
    """Intermittent cage correlation of each series of neighbour lists (..., T, k) → (..., n_lags).

    h(t0, t) = [L(t0+t) == L(t0)] = Σ_s e_s(t0) e_s(t0+t) with e_s the
    indicator of state s: a sum of FFT autocorrelations of one-hot columns.
    States seen on one frame only contribute at lag 0 and are added there.
    """
    lead = lists.shape[:-2]
    T, k = lists.shape[-2:]
    flat = lists.reshape(-1, T, k)
    out = np.zeros((flat.shape[0], n_lags))
    for a in range(flat.shape[0]):
        _, state, counts = np.unique(flat[a], axis=0, return_inverse=True, return_counts=True)
        state = state.ravel()
        repeated = np.flatnonzero(counts > 1)
        out[a, 0] += counts[counts == 1].sum() / T
        for lo in range(0, repeated.size, block):
            cols = repeated[lo:lo + block]
            onehot = (state[:, None] == cols[None, :]).astype(np.float64)
            out[a] += correlate_numpy(onehot, None, n_lags, components=True)
    return out.reshape(lead + (n_lags,))


@renamed_arguments(max_lag="max_lag_ps")
def cage_correlation(traj: xr.Dataset, species: str = "Ag", *, n_neighbors: int = 10, neighbor_species=None,
                     max_lag_ps: float | None = None, compare: str = "set", progress: bool = False) -> xr.DataArray:
    r"""Cage correlation function C_R(t), intermittent definition (Rabani, Gezelter & Berne 1997).

    For each ion i of ``species`` the list L_i(t) of its ``n_neighbors``
    nearest atoms (minimum image; of ``neighbor_species``, default every
    other atom); h_i(t₀, t) = 1 if L_i(t₀+t) = L_i(t₀) whatever happened in
    between, else 0. ``compare`` says when two lists are equal:

    - ``"set"`` (default; Rabani et al.): the same atoms, in any order —
      a cage is broken only when a neighbour leaves it;
    - ``"ordered"``: the same atoms in the same order of distance, element
      by element (the comparison of the 2024 study's analysis code) — any
      swap of two neighbours' distances also breaks it, so C_R decays
      faster (rattling inside the cage counts).


    .. math:: C_R(t) = \langle h_i(t_0, t)\rangle_{i,\,t_0},\qquad C_R(0) = 1,

    over all ions and all time origins, as a sum of FFT autocorrelations of
    the indicator of each visited list (exact; O(S·T log T) for S distinct
    lists per ion), Dask-parallel over blocks of ions. Uses every frame.

    Returns
    -------
    xarray.DataArray ``cage_correlation(lag)``, dimensionless, lag in ps.
    """
    require(traj, "positions")
    dt = frame_step(traj)
    a_atoms = atom_indices(traj, species)
    b_atoms = np.arange(traj.sizes["atom"]) if neighbor_species is None else atom_indices(traj, neighbor_species)
    if int(n_neighbors) < 1:
        raise HopError(f"n_neighbors must be ≥ 1, got {n_neighbors!r}")
    if compare not in ("set", "ordered"):
        raise HopError(f"compare must be 'set' (same neighbours) or 'ordered' (same neighbours in the same order "
                       f"of distance), got {compare!r}")
    dynamics = ensemble_attrs(traj, "cage_correlation")
    lists = _neighbour_lists(traj, a_atoms, b_atoms, int(n_neighbors), exclude_self=True,
                             ordered=compare == "ordered")
    n_lag = n_lags(traj.sizes["time"], dt, max_lag_ps, error=HopError)
    if lists.chunks is not None:
        lists = lists.chunk({"time": -1, "ion": max(1, min(4, len(a_atoms)))})
    c = xr.apply_ufunc(
        _cage_kernel, lists, kwargs={"n_lags": n_lag},
        input_core_dims=[["time", "neighbor"]], output_core_dims=[["lag"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lag": n_lag}},
    ).mean("ion")
    c = compute(c, progress=progress)
    c = c.drop_vars([v for v in c.coords if v != "lag"]).assign_coords(lag=lag_coordinate(n_lag, dt))
    return c.rename("cage_correlation").assign_attrs(
        units="1", species=species, n_neighbors=int(n_neighbors), compare=compare, **dynamics,
        neighbor_species="all" if neighbor_species is None else str(neighbor_species),
        long_name="cage correlation function (intermittent)")


# --------------------------------------------------------------------------------------------
# hop-conditioned averages
# --------------------------------------------------------------------------------------------

def _angle_deg(v, v0):
    v0 = np.broadcast_to(v0, v.shape)
    cos = (v * v0).sum(-1) / (np.linalg.norm(v, axis=-1) * np.linalg.norm(v0, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def _quantity(traj, wannier, quantity, host_atoms, *, l, axis, cutoff, expected, on_bad, min_coverage):
    """The per-(frame, host ion) quantity, its unit, and its anchoring (None or a function of (q, q0))."""
    kw = {"species": symbols([traj["species"].values[host_atoms[0]]])[0], "cutoff": cutoff,
          "expected": expected, "on_bad": on_bad}
    if isinstance(quantity, xr.DataArray):
        q = quantity
        if "frame" not in q.dims or not ({"ion", "atom"} & set(q.dims)):
            raise HopError(f"a quantity DataArray needs dims (frame, ion) or (frame, atom), got {q.dims}")
        if "atom" in q.dims:
            q = q.sel(atom=host_atoms).rename(atom="ion").assign_coords(atom=("ion", host_atoms))
        elif "atom" not in q.coords:
            if q.sizes["ion"] != len(host_atoms):
                raise HopError(f"the quantity has {q.sizes['ion']} ions but the run has {len(host_atoms)} host "
                               "ions: give it an 'atom(ion)' coordinate")
            q = q.assign_coords(atom=("ion", host_atoms))
        if q.ndim != 2:
            raise HopError(f"a quantity DataArray must be 2-D (frame, ion), got dims {q.dims}")
        return q.transpose("frame", "ion"), q.attrs.get("units", ""), None
    if quantity not in HOP_QUANTITIES:
        raise HopError(f"quantity must be one of {HOP_QUANTITIES} or a DataArray(frame, ion), got {quantity!r}")
    if quantity == "rotor_change":
        q = rotor_function(traj, wannier, l=l, axis=axis, **kw)
        return q, "1", lambda v, v0: np.abs(v - v0)
    if quantity == "dipole_angle":
        return iodide_dipoles(traj, wannier, **kw), "deg", _angle_deg
    return lone_pair_angular_velocity(traj, wannier, min_coverage=min_coverage, **kw), "rad/ps", None


def _mean_se(x: np.ndarray):
    """Mean over events (axis 0) ignoring NaN, standard error std/√n (ddof=1), and n."""
    n = np.isfinite(x).sum(axis=0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        se = np.nanstd(x, axis=0, ddof=1) / np.sqrt(n)
    return mean, np.where(n > 1, se, np.nan), n


@dataclass(frozen=True)
class _Grid:
    """The quantity on its regular frame grid: values (grid frame, ion[, …]), grid frames, step g, Δτ (ps)."""

    values: np.ndarray
    frames: np.ndarray
    g: int
    dt: float
    ion_of_atom: np.ndarray  # atom index → column of ``values`` (−1: not a host ion)


@dataclass(frozen=True)
class _Events:
    """The hops used (the table's rows whose frame is on the grid) and their grid index."""

    table: pd.DataFrame
    anchor: np.ndarray
    n_outside: int


def _on_grid(q: xr.DataArray, traj: xr.Dataset, min_coverage: float, progress: bool) -> _Grid:
    grid, g = frame_grid(np.asarray(q["frame"].values, dtype=np.int64), min_coverage)
    values = compute(q.drop_vars([c for c in q.coords if c not in q.dims]).reindex(frame=grid),
                     progress=progress).values
    lut = np.full(traj.sizes["atom"], -1, dtype=np.int64)
    lut[np.asarray(q["atom"].values)] = np.arange(q.sizes["ion"])
    return _Grid(values, grid, g, g * frame_step(traj), lut)


def _events_on_grid(table: pd.DataFrame, grid: _Grid) -> _Events:
    """Snap each hop to the nearest grid frame; leave out hops outside the grid's frames."""
    frames = table["frame"].to_numpy()
    j = np.rint((frames - grid.frames[0]) / grid.g).astype(np.int64)
    inside = (j >= 0) & (j < grid.frames.size) & \
        (np.abs(frames - grid.frames[np.clip(j, 0, grid.frames.size - 1)]) <= grid.g / 2)
    if not inside.any():
        raise HopError(f"none of the {len(table)} hops falls within the Wannier frames "
                       f"({grid.frames[0]}..{grid.frames[-1]}): nothing to average")
    return _Events(table[inside].reset_index(drop=True), j[inside], int((~inside).sum()))


def _resolve_far_cutoff(far_cutoff: float | None, cells: np.ndarray) -> tuple[float, str]:
    """The far cutoff (Å) and where it came from; the default shrinks to half the cell's smallest width."""
    if far_cutoff is None:
        limit = half_width(cells)
        return min(DEFAULT_FAR_CUTOFF_A, limit), (
            f"default: min({DEFAULT_FAR_CUTOFF_A:g} Å, half the smallest cell width {limit:.4g} Å)")
    return float(far_cutoff), "argument"


def _near_far_ions(events: _Events, e: int, pos: np.ndarray, cell: np.ndarray, host_atoms: np.ndarray,
                   window_ps: float, far_cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """Host ions of event e's two tetrahedra (near), and those beyond ``far_cutoff`` of every concurrent hop (far).

    ``pos``/``cell``: the positions (atom, xyz) and cell of the hop's frame.
    """
    used, times = events.table, events.table["time"].to_numpy()
    row = used.iloc[e]
    near = np.array(sorted(set(row["from_site"]) | set(row["to_site"])))
    concurrent = used[np.abs(times - times[e]) <= window_ps]
    d = distances(pos[host_atoms], pos[concurrent["atom"].to_numpy()], cell).min(axis=1)
    excluded = set(near.tolist())
    for fs, ts in zip(concurrent["from_site"], concurrent["to_site"]):
        excluded |= set(fs) | set(ts)
    far = np.array([a for a, dd in zip(host_atoms, d) if dd > far_cutoff and a not in excluded], dtype=np.int64)
    return near, far


def _ion_average(grid: _Grid, atoms: np.ndarray, anchor_j: int, ks: np.ndarray, anchor) -> np.ndarray:
    """⟨q_i(t_e + τ)⟩ over the ions ``atoms`` at offsets ``ks`` (grid steps) from the grid frame ``anchor_j``."""
    if atoms.size == 0:
        return np.full(ks.size, np.nan)
    ions = grid.ion_of_atom[atoms]
    idx = anchor_j + ks
    ok = (idx >= 0) & (idx < grid.frames.size)
    vals = np.full((ks.size, ions.size) + grid.values.shape[2:], np.nan)
    vals[ok] = grid.values[idx[ok]][:, ions]
    if anchor is not None:
        vals = anchor(vals, grid.values[anchor_j, ions])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(vals.reshape(ks.size, ions.size), axis=1)


def _summary(near: np.ndarray, far: np.ndarray, tau: np.ndarray, events: _Events, units: str) -> xr.Dataset:
    """Means and standard errors over events of the near, baseline and paired-difference profiles."""
    mean_n, se_n, cnt_n = _mean_se(near)
    mean_b, se_b, cnt_b = _mean_se(far)
    mean_d, se_d, _ = _mean_se(near - far)
    tau_c = ("tau", tau, {"units": "ps", "long_name": "time relative to the hop"})
    used = events.table
    event_coords = {"atom": ("event", used["atom"].to_numpy()),
                    "hop_time": ("event", used["time"].to_numpy(), {"units": "ps"})}
    return xr.Dataset(
        {
            "near": ("tau", mean_n, {"units": units}),
            "near_error": ("tau", se_n, {"units": units}),
            "baseline": ("tau", mean_b, {"units": units}),
            "baseline_error": ("tau", se_b, {"units": units}),
            "difference": ("tau", mean_d, {"units": units}),
            "difference_error": ("tau", se_d, {"units": units}),
            "n_events": ("tau", cnt_n),
            "n_baseline_events": ("tau", cnt_b),
            "near_by_event": (("event", "tau"), near, {"units": units}),
            "baseline_by_event": (("event", "tau"), far, {"units": units}),
        },
        coords={"tau": tau_c, **event_coords},
    )


def hop_conditioned_average(traj: xr.Dataset, wannier: xr.Dataset | None, quantity, *, window_ps: float,
                            species: str = "Ag", host: str = "I", min_dwell_ps: float = 0.2,
                            far_cutoff: float | None = None, hop_table: pd.DataFrame | None = None, l: int = 3,
                            axis="x", cutoff: float = 1.2, expected: Mapping[str, int] | None = None,
                            on_bad: str = "mask", min_coverage: float = 0.5,
                            progress: bool = False) -> xr.Dataset:
    r"""Average of a per-iodide quantity around Ag⁺ hops, versus time relative to the hop.

    For each hop e (from :func:`hops`, or ``hop_table``) at trajectory frame
    f_e, the *near* iodides are those of its from- and to-tetrahedra (the
    paddlewheel partners); the *far* iodides are those farther than
    ``far_cutoff`` (Å, minimum image, at f_e) from every ion hopping within
    ± ``window_ps`` of e. With τ on the Wannier frame grid (step g·Δt, the
    hop snapped to the nearest grid frame) up to ± ``window_ps``:

    .. math:: x_e(\tau) = \langle q_i(t_e+\tau)\rangle_{i\ \rm near},\quad
              b_e(\tau) = \langle q_i(t_e+\tau)\rangle_{i\ \rm far},\quad
              \bar x(\tau) = \langle x_e(\tau)\rangle_e \pm \frac{s_x(\tau)}{\sqrt{n_e}}

    and likewise the baseline b̄ and the paired difference x_e − b_e; the
    error is the standard error over hop events (events are independent,
    iodides of one event are not).

    ``quantity``:

    - ``"rotor_change"``: |M_i(t_e+τ) − M_i(t_e)|, M from :func:`rotor_function` (``l``, ``axis``);
    - ``"dipole_angle"``: angle (deg) between μ_i(t_e+τ) and μ_i(t_e), μ from :func:`iodide_dipoles`;
    - ``"angular_velocity"``: lone-pair angular speed (rad/ps) from :func:`lone_pair_angular_velocity`;
    - a DataArray ``(frame, ion)`` or ``(frame, atom)`` on trajectory frame indices, averaged as given
      (then ``wannier`` may be None).

    Hops are found on every trajectory frame; quantities use only the
    Wannier frames (which must form a regular grid, see
    :mod:`agi_data.analysis.wannier`) — or, given lone-pair moments
    (``store.electronic(run_id)``, predicted on every frame), every MD frame. Hops whose grid frame lies outside the
    Wannier frames are left out (``attrs["n_hops_outside"]``).

    ``far_cutoff`` defaults to :data:`DEFAULT_FAR_CUTOFF_A` (6 Å), or half
    the smallest width of the cell where that is smaller (no minimum-image
    distance is unique beyond it). When no event has a far iodide the
    baseline cannot be formed and :class:`HopError` says so, instead of
    returning NaN. ``l``, ``axis``, ``cutoff``, ``expected``, ``on_bad`` and
    ``min_coverage`` go to the Wannier analyses that compute ``quantity``.

    Returns
    -------
    xarray.Dataset over ``tau`` (ps): ``near``, ``near_error``, ``baseline``,
    ``baseline_error``, ``difference``, ``difference_error``, ``n_events``,
    ``n_baseline_events``, and per event ``near_by_event(event, tau)``,
    ``baseline_by_event(event, tau)``; units of the quantity, the far cutoff
    used (``far_cutoff_A``) and its source in attrs.
    """
    if not window_ps > 0:
        raise HopError(f"window_ps must be a positive time in ps, got {window_ps!r}")
    if far_cutoff is not None and not far_cutoff > 0:
        raise HopError(f"far_cutoff must be a positive distance in Å, got {far_cutoff!r}")
    require(traj, "positions")
    host_atoms = atom_indices(traj, host)
    table = hops(traj, species, host=host, min_dwell_ps=min_dwell_ps, progress=progress) \
        if hop_table is None else _hop_table(hop_table, species, {})
    if not isinstance(quantity, xr.DataArray) and wannier is None:
        raise WannierError(f"quantity {quantity!r} needs Wannier centres, and this run has none (wannier=None)")
    q, units, anchor = _quantity(traj, wannier, quantity, host_atoms, l=l, axis=axis, cutoff=cutoff,
                                 expected=expected, on_bad=on_bad, min_coverage=min_coverage)
    grid = _on_grid(q, traj, min_coverage, progress)
    events = _events_on_grid(table, grid)
    K = int(math.floor(window_ps / grid.dt + 1e-9))
    ks = np.arange(-K, K + 1)

    hop_frames = events.table["frame"].to_numpy()
    pos = np.asarray(traj["positions"].isel(time=hop_frames).values, dtype=np.float64)
    cells = np.asarray(cell_per_frame(traj).isel(time=hop_frames).values, dtype=np.float64)
    far_cutoff, far_source = _resolve_far_cutoff(far_cutoff, cells)
    n_events = len(events.table)
    near, far = np.full((n_events, ks.size), np.nan), np.full((n_events, ks.size), np.nan)
    n_far = np.zeros(n_events, dtype=np.int64)
    steps = range(n_events)
    if progress:
        from rich.progress import track

        steps = track(steps, description="hop-conditioned average")
    for e in steps:
        near_atoms, far_atoms = _near_far_ions(events, e, pos[e], cells[e], host_atoms, window_ps, far_cutoff)
        n_far[e] = far_atoms.size
        near[e] = _ion_average(grid, near_atoms, events.anchor[e], ks, anchor)
        far[e] = _ion_average(grid, far_atoms, events.anchor[e], ks, anchor)
    if not n_far.any():
        raise HopError(
            f"no {host} ion is farther than far_cutoff={far_cutoff:.4g} Å ({far_source}) from the ions hopping "
            f"around any of the {n_events} hops, so there is no baseline: pass a smaller far_cutoff, a shorter "
            f"window_ps (fewer concurrent hops), or use a larger cell (half its smallest width is "
            f"{half_width(cells):.4g} Å)"
        )
    ds = _summary(near, far, ks * grid.dt, events, units)
    ds.attrs.update(
        quantity=quantity if isinstance(quantity, str) else (quantity.name or "custom"), units=units,
        species=species, host=host, window_ps=float(window_ps), far_cutoff_A=float(far_cutoff),
        far_cutoff_source=far_source, frame_step=int(grid.g), n_hops=int(len(table)), n_hops_used=int(n_events),
        n_hops_outside=events.n_outside, mean_far_ions=float(n_far.mean()),
        near_definition="host ions of the from- and to-site tetrahedra",
        error="standard error over hop events", min_dwell_ps=table.attrs.get("min_dwell_ps"),
    )
    return ds
