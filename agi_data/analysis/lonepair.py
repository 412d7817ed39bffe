r"""Structure of Ag⁺ around the iodide lone pairs: the Ag⁺–lone-pair-centre g(r) and the (r, θ) map.

The two structural analyses of Dhattarwal, Somni & Remsing, Nat. Commun. 15,
121 (2024) that resolve where a mobile Ag⁺ sits relative to the electron
lone pairs of its iodides. The lone-pair centres are the Wannier centres
owned by the host ions (:func:`~agi_data.analysis.assign_wannier`: the
nearest ion within ``cutoff``; 4 per I⁻).

**Ag⁺–lone-pair-centre radial distribution function**

.. math:: g_{\rm Ag,LP}(r) = \frac{\sum_f n_f(r)}{\sum_f N_{\rm Ag}\,N_{{\rm LP},f}\,
          \frac{4\pi}{3}(r_+^3 - r_-^3)/V_f}

with n_f(r) the number of (Ag⁺, centre) pairs of frame f at a minimum-image
distance in the bin [r₋, r₊), N_LP,f the lone-pair centres of the frame and
V_f its cell volume; → 1 for uncorrelated positions (ideal gas). The
coordinate ``coordination_number(r)`` is the mean number of lone-pair
centres within r of an Ag⁺ (at the bin's upper edge).

**Joint distribution of the Ag–I distance and the Ag–I–centre angle**

For every Ag⁺–I⁻ pair closer than ``r_max`` and every lone-pair centre w of
that iodide, the distance :math:`r = |\mathbf r_{\rm Ag} - \mathbf r_{\rm I}|`
and the angle at the iodide

.. math:: \cos\theta = \frac{(\mathbf r_{\rm Ag}-\mathbf r_{\rm I})\cdot(\mathbf w-\mathbf r_{\rm I})}
                           {|\mathbf r_{\rm Ag}-\mathbf r_{\rm I}|\,|\mathbf w-\mathbf r_{\rm I}|}

(minimum image), histogrammed as a probability density P(r, θ) over the
(r, θ) range: ∫∫P dr dθ = 1 (units 1/(Å·deg)). θ = 0 means the Ag⁺ sits on a
lone pair's axis. For lone pairs oriented at random relative to the Ag⁺ the
angular marginal is sin θ·π/360 per degree (isotropic directions).

Only the Wannier frames are used (``frames=`` a subset). A frame on which
an ion does not own its expected number of centres is dropped
(``on_bad="mask"``, counted in ``attrs["n_bad_frames"]``) or refused
(``"raise"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from ._moments import is_moments
from ._schema import SchemaError, cell_per_frame, require, select_species
from .pbc import distances, minimum_image
from .structure import _bins, _half_width
from .wannier import WannierError, assign_wannier

__all__ = ["LonePairError", "lone_pair_rdf", "lone_pair_angle_distribution"]


class LonePairError(SchemaError):
    """A lone-pair structural analysis asked of data that cannot answer it."""


def _atoms_of(traj: xr.Dataset, species) -> np.ndarray:
    sel = select_species(traj, species)
    return np.flatnonzero(np.isin(traj["species"].values, sel["species"].values))


#: Wannier frames assigned at once (bounds the memory of the ownership arrays)
FRAME_CHUNK = 1000


def _frames(traj, wannier, frames, cutoff, expected, on_bad, r_max, stats: dict):
    """Yield (positions, cell, centres, owner) for each good Wannier frame, ``FRAME_CHUNK`` frames at a time.

    Counts ``n_frames`` (used) and ``n_bad_frames`` (left out) into ``stats`` as it goes.
    """
    if on_bad not in ("mask", "raise"):
        raise LonePairError(f"on_bad must be 'mask' or 'raise', got {on_bad!r}")
    require(traj, "positions", min_frames=1)
    if is_moments(wannier):
        raise WannierError("this analysis needs the Wannier centres themselves (where the lone pairs are), and "
                           "lone-pair moments carry only their orientation (l=1, l=3): pass store.wannier(run_id)")
    if not isinstance(wannier, xr.Dataset) or "frame" not in wannier.coords:
        raise WannierError("no Wannier data: expected a Dataset with centres(frame, wannier, xyz) and a 'frame' "
                           "coordinate (store.wannier(run_id))")
    if frames is not None:
        frames = np.asarray(frames, dtype=np.int64)
        missing = np.setdiff1d(frames, wannier["frame"].values)
        if missing.size:
            raise WannierError(f"frames {missing[:10].tolist()} have no Wannier centres")
        wannier = wannier.sel(frame=frames)
    wannier = wannier.sortby("frame")
    all_frames = np.asarray(wannier["frame"].values, dtype=np.int64)
    cells = np.asarray(cell_per_frame(traj).isel(time=np.clip(all_frames, 0, traj.sizes["time"] - 1)).values,
                       dtype=np.float64)
    if r_max > _half_width(cells) * (1 + 1e-9):
        raise LonePairError(f"r_max={r_max:g} Å exceeds half the smallest width of the cell "
                            f"({_half_width(cells):g} Å): lower r_max or use a larger cell")
    stats.update(n_frames=0, n_bad_frames=0)
    for lo in range(0, all_frames.size, FRAME_CHUNK):
        part = wannier.isel(frame=slice(lo, lo + FRAME_CHUNK))
        assign = assign_wannier(traj, part, cutoff=cutoff, expected=expected).compute()
        f_idx = np.asarray(assign["frame"].values, dtype=np.int64)
        bad = np.asarray(assign["bad_frame"].values, dtype=bool)
        if bad.any() and on_bad == "raise":
            raise WannierError(f"Wannier frame {f_idx[bad][0]} has an ion without its expected number of centres; "
                               "inspect assign_wannier(...)['bad_ion'] or pass on_bad='mask'")
        pos = np.asarray(traj["positions"].isel(time=f_idx).values, dtype=np.float64)
        cell = np.asarray(cell_per_frame(traj).isel(time=f_idx).values, dtype=np.float64)
        cen = np.asarray(part["centres"].values, dtype=np.float64)
        owner = np.asarray(assign["owner"].values)
        stats["n_bad_frames"] += int(bad.sum())
        for k in np.flatnonzero(~bad):
            stats["n_frames"] += 1
            yield pos[k], cell[k], cen[k], owner[k]


def lone_pair_rdf(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "Ag", host: str = "I",
                  r_max: float = 7.0, dr: float = 0.05, frames: Sequence[int] | None = None, cutoff: float = 1.2,
                  expected: Mapping[str, int] | None = None, on_bad: str = "mask") -> xr.DataArray:
    r"""g(r) between ``species`` ions and the lone-pair centres owned by ``host`` ions (see the module docstring).

    Parameters
    ----------
    r_max, dr
        range and bin width, Å; r_max at most half the cell's smallest width.
    frames
        Wannier frames to use (default: all of them).
    cutoff, expected
        centre ownership, as in :func:`~agi_data.analysis.assign_wannier`.

    Returns
    -------
    DataArray ``lone_pair_rdf(r)`` (dimensionless), ``r`` bin centres in Å,
    coordinate ``coordination_number(r)``; attrs ``n_frames``, ``n_bad_frames``.
    """
    edges = _bins(r_max, dr)
    a_atoms, h_atoms = _atoms_of(traj, species), _atoms_of(traj, host)
    stats: dict = {}
    counts = np.zeros(edges.size - 1)
    ideal = np.zeros(edges.size - 1)
    shell = 4.0 * np.pi / 3.0 * (edges[1:] ** 3 - edges[:-1] ** 3)
    for pos, cell, cen, owner in _frames(traj, wannier, frames, cutoff, expected, on_bad, edges[-1], stats):
        lp = cen[np.isin(owner, h_atoms)]
        d = distances(pos[a_atoms], lp, cell)
        counts += np.histogram(d.ravel(), bins=edges)[0]
        ideal += a_atoms.size * lp.shape[0] * shell / abs(np.linalg.det(cell))
    if stats["n_frames"] == 0:
        raise LonePairError("every Wannier frame was left out as bad: nothing to histogram")
    g = counts / ideal
    coord = np.cumsum(counts) / (a_atoms.size * stats["n_frames"])
    r = 0.5 * (edges[1:] + edges[:-1])
    return xr.DataArray(
        g, dims="r", name="lone_pair_rdf",
        coords={"r": ("r", r, {"units": "Å"}),
                "coordination_number": ("r", coord, {"units": "1",
                                                     "long_name": "lone-pair centres within r (upper bin edge)"})},
        attrs={"units": "1", "long_name": f"{species}–{host} lone-pair-centre radial distribution function",
               "species": species, "host": host, **stats, "dr": float(dr),
               "r_max": float(edges[-1]), "cutoff_A": float(cutoff), "run_id": traj.attrs.get("run_id", "")})


def _owned_by(owner: np.ndarray, hosts: np.ndarray, n_exp: int) -> np.ndarray:
    """Indices (n_hosts, n_exp) of the centres of each host (−1 rows where it does not own exactly n_exp)."""
    slot = np.full(max(int(owner.max(initial=-1)), int(hosts.max())) + 2, -1, dtype=np.int64)
    slot[hosts] = np.arange(hosts.size)  # slot[-1] = −1 serves unowned centres
    s = slot[owner]
    order = np.argsort(s, kind="stable")
    order = order[s[order] >= 0]
    counts = np.bincount(s[s >= 0], minlength=hosts.size)
    out = np.full((hosts.size, n_exp), -1, dtype=np.int64)
    full = counts == n_exp
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    take = starts[full][:, None] + np.arange(n_exp)[None, :]
    out[full] = order[take]
    return out


def lone_pair_angle_distribution(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "Ag", host: str = "I",
                                 r_max: float = 4.0, r_bins: int = 40, angle_bins: int = 36,
                                 frames: Sequence[int] | None = None, cutoff: float = 1.2,
                                 expected: Mapping[str, int] | None = None, n_centres: int = 4,
                                 on_bad: str = "mask") -> xr.DataArray:
    r"""Joint probability density P(r, θ) of the Ag–I distance and the Ag–I–centre angle.

    See the module docstring. Every (``species``, ``host``) pair with
    r < ``r_max`` (Å) contributes one sample per lone-pair centre of the host
    (``n_centres``, default 4); r in ``r_bins`` bins over [0, r_max), θ in
    ``angle_bins`` bins over [0°, 180°].

    Returns
    -------
    DataArray ``lone_pair_angle_distribution(r, angle)`` in 1/(Å·deg),
    coordinates ``r`` (Å) and ``angle`` (deg, bin centres); attrs
    ``n_samples``, ``n_frames``, ``n_bad_frames``, ``r_edges``, ``angle_edges``.
    """
    if int(r_bins) < 1 or int(angle_bins) < 1:
        raise LonePairError(f"r_bins and angle_bins must be ≥ 1, got {r_bins!r}, {angle_bins!r}")
    if not float(r_max) > 0:
        raise LonePairError(f"r_max must be a positive distance in Å, got {r_max!r}")
    a_atoms, h_atoms = _atoms_of(traj, species), _atoms_of(traj, host)
    stats: dict = {}
    r_edges = np.linspace(0.0, float(r_max), int(r_bins) + 1)
    a_edges = np.linspace(0.0, 180.0, int(angle_bins) + 1)
    hist = np.zeros((int(r_bins), int(angle_bins)))
    for pos, cell, cen, owner in _frames(traj, wannier, frames, cutoff, expected, on_bad, float(r_max), stats):
        own = _owned_by(owner, h_atoms, int(n_centres))
        ok = (own >= 0).all(axis=1)
        hosts, own = h_atoms[ok], own[ok]
        to_ag = minimum_image(pos[a_atoms][:, None, :] - pos[hosts][None, :, :], cell)  # (Na, Nh, 3)
        r = np.linalg.norm(to_ag, axis=-1)
        ia, ih = np.nonzero(r < float(r_max))
        if ia.size == 0:
            continue
        to_w = minimum_image(cen[own[ih]] - pos[hosts[ih]][:, None, :], cell)  # (pairs, n_centres, 3)
        u = to_ag[ia, ih] / r[ia, ih][:, None]
        cos = np.einsum("px,pkx->pk", u, to_w) / np.linalg.norm(to_w, axis=-1)
        theta = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        rr = np.repeat(r[ia, ih], int(n_centres))
        hist += np.histogram2d(rr, theta.ravel(), bins=[r_edges, a_edges])[0]
    n = hist.sum()
    if stats["n_frames"] == 0:
        raise LonePairError("every Wannier frame was left out as bad: nothing to histogram")
    if n == 0:
        raise LonePairError(f"no {species}–{host} pair closer than r_max = {r_max:g} Å on the frames used")
    density = hist / (n * np.diff(r_edges)[:, None] * np.diff(a_edges)[None, :])
    return xr.DataArray(
        density, dims=("r", "angle"), name="lone_pair_angle_distribution",
        coords={"r": ("r", 0.5 * (r_edges[1:] + r_edges[:-1]), {"units": "Å", "long_name": f"{species}–{host} distance"}),
                "angle": ("angle", 0.5 * (a_edges[1:] + a_edges[:-1]),
                          {"units": "deg", "long_name": f"{species}–{host}–lone-pair-centre angle"})},
        attrs={"units": "1/(Å·deg)", "long_name": "joint density of the distance and the angle at the host",
               "species": species, "host": host, "n_samples": int(n), **stats, "r_edges": r_edges.tolist(), "angle_edges": a_edges.tolist(),
               "run_id": traj.attrs.get("run_id", "")})
