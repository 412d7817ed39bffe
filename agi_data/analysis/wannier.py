r"""Wannier centres: assignment to ions, iodide lone-pair rotors and dipoles.

The electronic-paddlewheel analyses of Dhattarwal, Somni & Remsing,
Nat. Commun. 15, 121 (2024) and Dhattarwal & Remsing, ChemPhysChem 26,
e202500077 (2025), as queries over a trajectory (store schema) and the
Wannier set computed on some of its frames:

``wannier``: ``centres(frame, wannier, xyz)`` Å, optional ``spread(frame,
wannier)`` Å², coordinate ``frame`` (integer index into the trajectory's
``time`` axis) and optionally ``frame_time(frame)`` (ps, checked against the
trajectory) and ``cell(frame, vec, xyz)`` (checked against the trajectory's
cell on those frames).

Which frames are used
---------------------
Every function here works on the frames that carry centres, and only those.
Per-frame results (:func:`assign_wannier`, :func:`rotor_function`,
:func:`iodide_dipoles`, :func:`lone_pair_angular_velocity`) have a ``frame``
dimension holding those trajectory frame indices (plus ``frame_time`` in ps).
Time correlations need a uniform grid: the frames are placed on the grid of
spacing g = gcd of their separations. If every grid point has centres the
FFT runs on it directly (lag step g·Δt ps); if a fraction ≥ ``min_coverage``
of the grid points has centres, the missing ones are masked and every lag is
averaged over exactly the pairs of origins that exist (numerator and pair
count are both FFT correlations, so this is exact, not interpolated); below
that the call is refused with :class:`WannierError` — pass ``frames=`` an
equally spaced subset instead.

Either source: centres or moments
---------------------------------
:func:`rotor_function`, :func:`rotor_correlation`, :func:`iodide_dipoles`,
:func:`dipole_correlation` and :func:`lone_pair_angular_velocity` (and the
analyses built on them: :func:`~agi_data.analysis.hop_conditioned_average`,
:func:`~agi_data.analysis.paddlewheel_mask`) take as ``wannier`` either the
Wannier set or a *moments* Dataset — ``octupole(frame, ion, m)`` and
``dipole(frame, ion, xyz)`` from :func:`~agi_data.analysis.lone_pair_moments`,
a model's ``predict`` or ``store.electronic(run_id)`` — and dispatch on what
they get. Moments carry ℓ = 3 only (``l=3``), need no centre assignment
(``cutoff``, ``expected``, ``on_bad`` do not apply; frames with NaN moments
are masked), and when they are on every frame (a model's predictions) the
correlations run at the MD frame rate: the frame grid above is then the
trajectory's own, with nothing missing. The lone-pair angular velocity has
a definition per source: from centres, the Kabsch rotation angle between
frames; from moments, the rate of change of the ℓ = 3 orientation,
ω = |dT₃/dt| / (2|T₃|) (:mod:`agi_data.analysis.moments`); the two agree
for rigid regular tetrahedra.

Bad frames
----------
A frame where an ion does not own its expected count of centres (or a centre
has no owner) is *bad*. ``on_bad="mask"`` (default) drops the whole frame
(NaN) and reports how many were dropped (a :class:`BadFramesWarning` and the
result's ``attrs["n_bad_frames"]``); ``"mask_ion"`` drops only the ions with
a wrong count; ``"raise"`` refuses. Nothing is silently averaged.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import permutations

import numpy as np
import xarray as xr
from numpy.polynomial import legendre

from ..elements import symbols, to_atomic_numbers
from ..pbc import minimum_image
from ._common import (
    atom_indices,
    axis_vector,
    cell_per_frame,
    compute,
    frame_grid,
    frame_step,
    n_lags,
    renamed_arguments,
    require,
)
from ._moments import (
    check_frame_time,
    check_frames_in_run,
    checked_moments,
    is_moments,
    lone_pair_angular_velocity_from_moments,
    moment_dipoles,
    rotor_function_from_moments,
)
from ._neighbours import nearest
from .correlate import correlate, lag_coordinate
from .errors import WannierError

__all__ = [
    "WannierError",
    "BadFramesWarning",
    "DEFAULT_EXPECTED",
    "CENTRE_CHARGE_E",
    "assign_wannier",
    "rotor_function",
    "rotor_correlation",
    "iodide_dipoles",
    "dipole_correlation",
    "lone_pair_angular_velocity",
]

#: centres owned by each ion with the 7-electron I and 11-electron Ag pseudopotentials
DEFAULT_EXPECTED = {"I": 4, "Ag": 5}
#: charge carried by one (doubly occupied) Wannier centre, in e
CENTRE_CHARGE_E = -2.0
_ON_BAD = ("mask", "mask_ion", "raise")


class BadFramesWarning(UserWarning):
    """Some frames were left out because an ion did not own its expected number of centres."""


# --------------------------------------------------------------------------------------------
# checks and alignment of the trajectory with its Wannier frames
# --------------------------------------------------------------------------------------------

def _check(traj: xr.Dataset, wannier: xr.Dataset | None) -> xr.Dataset:
    """Validate ``wannier`` against ``traj``; return it sorted by frame with integer frames."""
    require(traj, "positions", min_frames=1)
    if wannier is None:
        raise WannierError(
            "this run has no Wannier data: compute centres on sampled frames first "
            "(pw.x → pw2wannier90.x → wannier90.x) and pass store.wannier(run_id)"
        )
    if not isinstance(wannier, xr.Dataset) or "centres" not in wannier.variables:
        found = sorted(wannier.variables) if isinstance(wannier, xr.Dataset) else type(wannier).__name__
        raise WannierError(f"no Wannier data: expected a Dataset with centres(frame, wannier, xyz), got {found}")
    if wannier["centres"].dims != ("frame", "wannier", "xyz"):
        raise WannierError(f"centres must have dims ('frame', 'wannier', 'xyz'), got {wannier['centres'].dims}")
    run, wrun = traj.attrs.get("run_id"), wannier.attrs.get("run_id")
    if run is not None and wrun is not None and str(run) != str(wrun):
        raise WannierError(
            f"the Wannier set belongs to run {wrun!r}, the trajectory is run {run!r}: pass the centres of "
            f"this run (store.wannier({run!r}))"
        )
    if wannier.sizes["frame"] == 0 or wannier.sizes["wannier"] == 0:
        raise WannierError("the Wannier set is empty (no frames or no centres)")
    if "frame" not in wannier.coords:
        raise WannierError("the Wannier set has no 'frame' coordinate (trajectory frame index of each set of centres)")
    raw = np.asarray(wannier["frame"].values)
    frames = raw.astype(np.int64)
    if not np.array_equal(frames, raw):
        raise WannierError(f"'frame' must hold integer trajectory frame indices, got {raw[:5]}…")
    check_frames_in_run(frames, traj, "centres")
    if np.unique(frames).size != frames.size:
        raise WannierError("the Wannier set has duplicate frames; keep one set of centres per frame")
    wannier = wannier.assign_coords(frame=frames).sortby("frame")
    frames = np.asarray(wannier["frame"].values)
    t_traj = np.asarray(traj["time"].values, dtype=np.float64)[frames]
    if "frame_time" in wannier.variables:
        check_frame_time(wannier["frame_time"].values, t_traj, frames, "the Wannier set", "centres from another run?")
    if "cell" in wannier.variables:
        cw = wannier["cell"]
        if "frame" not in cw.dims:
            cw = cw.expand_dims(frame=wannier["frame"])
        cw = np.asarray(cw.transpose("frame", "vec", "xyz").values, dtype=np.float64)
        ct = np.asarray(cell_per_frame(traj).isel(time=frames).values, dtype=np.float64)
        diff = np.abs(cw - ct).max(axis=(1, 2))
        if (diff > 1e-3).any():
            i = int(np.argmax(diff))
            raise WannierError(
                f"mismatched cells: the Wannier set's cell differs from the run's by {diff[i]:.3g} Å on frame "
                f"{frames[i]}; the centres were computed for another cell (or another run)"
            )
    return wannier


def _aligned(traj: xr.Dataset, wannier: xr.Dataset):
    """positions(frame, atom, xyz), cell(frame, vec, xyz), centres(frame, wannier, xyz) on the Wannier frames."""
    frames = wannier["frame"].values
    pos = traj["positions"].isel(time=frames).rename(time="frame").assign_coords(frame=frames)
    cell = cell_per_frame(traj).isel(time=frames).rename(time="frame").assign_coords(frame=frames)
    cen = wannier["centres"]
    if cen.chunks is not None:
        chunks = {"frame": cen.chunksizes["frame"]}
        pos, cell = pos.chunk(chunks), cell.chunk(chunks)
    elif pos.chunks is not None:
        cen = cen.chunk({"frame": pos.chunksizes["frame"]})
        cell = cell.chunk({"frame": pos.chunksizes["frame"]})
    if pos.chunks is not None:  # the kernels need every atom of a frame: one chunk along atom
        pos = pos.chunk({"atom": -1})
    drop = [c for c in pos.coords if c not in ("frame", "atom", "xyz", "species", "symbol")]
    pos = pos.drop_vars(drop)
    cell = cell.drop_vars([c for c in cell.coords if c not in ("frame", "vec", "xyz")])
    return pos, cell, cen


def _expected_per_atom(traj: xr.Dataset, expected: Mapping[str, int] | None) -> np.ndarray:
    expected = DEFAULT_EXPECTED if expected is None else expected
    z = np.asarray(traj["species"].values)
    out = np.full(z.shape, -1, dtype=np.int64)
    for el, n in expected.items():
        out[z == int(to_atomic_numbers([el])[0])] = int(n)
    return out


def _owner_kernel(pos, cen, cell, cutoff):
    idx, dist = nearest(cen, pos, cell, k=1)
    d = dist[..., 0]
    return np.where(d <= cutoff, idx[..., 0], -1).astype(np.int32), d


def _count_kernel(owner, n_atoms):
    n_frames = owner.shape[0]
    keys = owner.astype(np.int64) + np.arange(n_frames)[:, None] * n_atoms
    keys = keys[owner >= 0]
    return np.bincount(keys, minlength=n_frames * n_atoms).reshape(n_frames, n_atoms)


def assign_wannier(traj: xr.Dataset, wannier: xr.Dataset, *, cutoff: float = 1.2,
                   expected: Mapping[str, int] | None = None) -> xr.Dataset:
    r"""Assign each Wannier centre to the ion that owns it, frame by frame.

    A centre belongs to the nearest ion if that ion is within ``cutoff``
    (minimum image in the frame's own cell), else to none (−1). An ion of a
    species listed in ``expected`` must own exactly that many centres (4 per
    I⁻: the 5s²5p⁶ lone pairs; 5 per Ag⁺: the 4d shell, with the 7- and
    11-electron pseudopotentials of Dhattarwal et al., Nat. Commun. 15, 121
    (2024)); a frame where one does not, or where a centre has no owner, is
    flagged in ``bad_frame`` — it is reported, never silently averaged.

    Parameters
    ----------
    traj
        trajectory in the store schema (positions, cell, species).
    wannier
        ``centres(frame, wannier, xyz)`` with integer ``frame`` indices into ``traj``.
    cutoff
        ownership radius, Å (default 1.2).
    expected
        centres per ion by element (default ``{"I": 4, "Ag": 5}``); elements not
        listed are not checked.

    Returns
    -------
    xarray.Dataset over the Wannier frames (lazy when the input is Dask-backed):
    ``owner(frame, wannier)`` atom index or −1; ``distance(frame, wannier)``
    to the nearest ion (Å); ``n_owned(frame, atom)``; ``expected(atom)`` (−1 =
    unchecked); ``bad_ion(frame, atom)``; ``unassigned(frame)``;
    ``bad_frame(frame)``.

    Raises
    ------
    WannierError
        no Wannier data, frames the run does not have, mismatched cells or
        frame times, or a cutoff that assigns no centre on the first frame.
    """
    if not cutoff > 0:
        raise WannierError(f"cutoff must be a positive distance in Å, got {cutoff!r}")
    wannier = _check(traj, wannier)
    pos, cell, cen = _aligned(traj, wannier)
    n_atoms = traj.sizes["atom"]
    # cheap eager check on the first frame: a cutoff (or unit) that assigns nothing
    p0, c0, w0 = (np.asarray(x.isel(frame=[0]).values) for x in (pos, cell, cen))
    own0, d0 = _owner_kernel(p0, w0, c0, cutoff)
    if (own0 < 0).all():
        raise WannierError(
            f"cutoff={cutoff:g} Å assigns no centre to any ion on frame {int(wannier.frame[0])} (nearest "
            f"centre–ion distances {d0.min():.3g}–{d0.max():.3g} Å): use a larger cutoff, or check that the "
            "centres are in Å and in the run's cell"
        )
    owner, dist = xr.apply_ufunc(
        _owner_kernel, pos, cen, cell, kwargs={"cutoff": float(cutoff)},
        input_core_dims=[["atom", "xyz"], ["wannier", "xyz"], ["vec", "xyz"]],
        output_core_dims=[["wannier"], ["wannier"]],
        dask="parallelized", output_dtypes=[np.int32, np.float64],
    )
    count = xr.apply_ufunc(
        _count_kernel, owner, kwargs={"n_atoms": n_atoms},
        input_core_dims=[["wannier"]], output_core_dims=[["atom"]],
        dask="parallelized", output_dtypes=[np.int64],
        dask_gufunc_kwargs={"output_sizes": {"atom": n_atoms}},
    )
    exp = xr.DataArray(_expected_per_atom(traj, expected), dims="atom")
    bad_ion = (exp >= 0) & (count != exp)
    unassigned = (owner < 0).sum("wannier")
    out = xr.Dataset(
        {
            "owner": owner.assign_attrs(long_name="index of the owning ion (-1: none)"),
            "distance": dist.assign_attrs(units="Å", long_name="distance to the nearest ion"),
            "n_owned": count.assign_attrs(long_name="centres owned"),
            "expected": exp.assign_attrs(long_name="centres expected (-1: not checked)"),
            "bad_ion": bad_ion.transpose("frame", "atom"),
            "unassigned": unassigned.assign_attrs(long_name="centres without an owner"),
            "bad_frame": bad_ion.any("atom") | (unassigned > 0),
        },
        coords={"frame": wannier["frame"], "atom": np.arange(n_atoms), "species": traj["species"]},
    )
    if "symbol" in traj.coords:
        out = out.assign_coords(symbol=traj["symbol"])
    out = out.assign_coords(frame_time=("frame", np.asarray(traj["time"].values)[wannier["frame"].values]))
    out["frame_time"].attrs["units"] = "ps"
    out.attrs.update(cutoff_A=float(cutoff),
                     expected=json.dumps(dict(DEFAULT_EXPECTED if expected is None else expected)))
    if owner.chunks is None:
        out.attrs["n_bad_frames"] = int(out["bad_frame"].sum())
    return out


# --------------------------------------------------------------------------------------------
# centres owned by each ion of a species
# --------------------------------------------------------------------------------------------

def _owned_kernel(pos, cen, cell, owner, *, ion_atoms, n_exp):
    """Vectors (F, n_ions, n_exp, 3) from each ion to its owned centres (first n_exp), and counts."""
    n_frames, n_w = owner.shape
    n_atoms = pos.shape[1]
    n_ions = len(ion_atoms)
    lut = np.full(n_atoms + 1, -1, dtype=np.int64)  # lut[-1] serves owner == -1
    lut[ion_atoms] = np.arange(n_ions)
    slot = lut[owner]
    sentinel = n_frames * n_ions
    key = np.where(slot >= 0, np.arange(n_frames)[:, None] * n_ions + slot, sentinel).ravel()
    order = np.argsort(key, kind="stable")
    sk = key[order]
    counts = np.bincount(key, minlength=sentinel + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(sk.size) - starts[sk]
    keep = (sk < sentinel) & (rank < n_exp)
    src = order[keep]
    f, w = np.divmod(src, n_w)
    atom = owner.ravel()[src]
    out = np.full((sentinel, n_exp, 3), np.nan)
    out[sk[keep], rank[keep]] = cen[f, w] - pos[f, atom]
    out = minimum_image(out.reshape(n_frames, n_ions * n_exp, 3), cell[:, None])  # one cell inverse per frame
    return out.reshape(n_frames, n_ions, n_exp, 3), counts[:sentinel].reshape(n_frames, n_ions)


def _owned_vectors(traj, wannier, species, *, cutoff, expected, on_bad, n_exp=None, need=None):
    """Minimum-image vectors vec(frame, ion, centre, xyz) from each ion of ``species`` to its centres.

    Masked (NaN) according to ``on_bad``. ``need``: a required count per ion
    (e.g. 4 for the tetrahedral rotor), checked against ``expected``.
    """
    if on_bad not in _ON_BAD:
        raise WannierError(f"on_bad must be one of {_ON_BAD}, got {on_bad!r}")
    ion_atoms = atom_indices(traj, species)
    z = int(to_atomic_numbers([species])[0]) if isinstance(species, str) else int(species)
    sym = symbols([z])[0]
    exp_map = dict(DEFAULT_EXPECTED if expected is None else expected)
    if sym not in exp_map:
        raise WannierError(f"no expected number of centres for {sym}: pass expected={{'{sym}': n, ...}}")
    n_exp = int(exp_map[sym])
    if need is not None and n_exp != need:
        raise WannierError(f"this analysis needs {need} centres per {sym} ion, but expected says {n_exp}")
    if n_exp < 1:
        raise WannierError(f"{sym} ions own no centres (expected {n_exp}); nothing to analyse")
    assign = assign_wannier(traj, wannier, cutoff=cutoff, expected=exp_map)
    wannier = _check(traj, wannier)
    pos, cell, cen = _aligned(traj, wannier)
    # a species that owns no centre at all on the first frame: say so instead of returning NaNs
    if not np.asarray(assign["n_owned"].isel(frame=0, atom=ion_atoms).values).any():
        raise WannierError(
            f"no Wannier centre is within {cutoff:g} Å of any {sym} ion on frame {int(wannier.frame[0])}: "
            f"this species has no centres (wrong species, or centres of another run?)"
        )
    vec, count = xr.apply_ufunc(
        _owned_kernel, pos, cen, cell, assign["owner"],
        kwargs={"ion_atoms": ion_atoms, "n_exp": n_exp},
        input_core_dims=[["atom", "xyz"], ["wannier", "xyz"], ["vec", "xyz"], ["wannier"]],
        output_core_dims=[["ion", "centre", "xyz"], ["ion"]],
        dask="parallelized", output_dtypes=[np.float64, np.int64],
        dask_gufunc_kwargs={"output_sizes": {"ion": len(ion_atoms), "centre": n_exp, "xyz": 3}},
    )
    bad_frame = assign["bad_frame"]
    if on_bad == "raise":
        n_bad = int(bad_frame.sum())
        if n_bad:
            first = int(wannier.frame[np.flatnonzero(np.asarray(bad_frame.values))[0]])
            raise WannierError(
                f"{n_bad} frame(s) have an ion that does not own its expected number of centres "
                f"(first: frame {first}); inspect assign_wannier(...)['bad_ion'], or pass on_bad='mask'"
            )
    good = count == n_exp
    if on_bad == "mask":
        good = good & ~bad_frame
    vec = vec.where(good)
    coords = {
        "frame": wannier["frame"],
        "frame_time": ("frame", np.asarray(traj["time"].values)[wannier["frame"].values], {"units": "ps"}),
        "atom": ("ion", ion_atoms),
        "bad_frame": ("frame", bad_frame.data),
    }
    return vec.assign_coords(coords), n_exp


def _report_bad(result: xr.DataArray | xr.Dataset, bad_frame: xr.DataArray, on_bad: str) -> None:
    n_bad = int(bad_frame.sum())
    result.attrs["n_bad_frames"] = n_bad
    result.attrs["on_bad"] = on_bad
    if n_bad:
        warnings.warn(
            f"{n_bad} of {bad_frame.size} Wannier frames have an ion with the wrong number of centres; "
            f"on_bad={on_bad!r} left {'those frames' if on_bad == 'mask' else 'those ions'} out",
            BadFramesWarning, stacklevel=4,
        )


# --------------------------------------------------------------------------------------------
# rotor function
# --------------------------------------------------------------------------------------------

def _rotor_norm(l: int) -> float:
    """c_ℓ = 1/√(Σ_kl P_ℓ(u_k·u_l)) for a perfect tetrahedron (u_k·u_l = −1/3 for k ≠ l)."""
    if int(l) != l or l < 0:
        raise WannierError(f"l must be a non-negative integer, got {l!r}")
    coef = np.zeros(int(l) + 1)
    coef[-1] = 1.0
    s = 4.0 + 12.0 * float(legendre.legval(-1.0 / 3.0, coef))
    if s < 1e-9:
        raise WannierError(
            f"l={l}: a regular tetrahedron has no invariant of order {l} (Σ P_{l} vanishes for every "
            "orientation); use l=3 (the published rotor) or l ≥ 3"
        )
    return 1.0 / math.sqrt(s)


def _rotor_kernel(vec, *, n, l):
    u = vec / np.linalg.norm(vec, axis=-1, keepdims=True)
    x = u @ n
    coef = np.zeros(l + 1)
    coef[-1] = 1.0
    return _rotor_norm(l) * legendre.legval(x, coef).sum(axis=-1)


def rotor_function(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I", l: int = 3, axis="x",
                   cutoff: float = 1.2, expected: Mapping[str, int] | None = None,
                   on_bad: str = "mask") -> xr.DataArray:
    r"""Tetrahedral rotor function M(frame, ion) of each ion's 4 lone-pair centres.

    With u_k the unit vectors from the ion to its 4 centres (minimum image)
    and n̂ the projection axis,

    .. math:: M_i = c_\ell \sum_{k=1}^{4} P_\ell(\hat u_k\cdot\hat n),\qquad
              c_\ell = \Big[\sum_{k,l} P_\ell(\hat u_k\cdot\hat u_l)\Big]^{-1/2}_{\rm regular\ tetrahedron}
              = \big[4 + 12 P_\ell(-1/3)\big]^{-1/2}.

    For ℓ = 3 along x this is the published rotor (Dhattarwal, Somni &
    Remsing, Nat. Commun. 15, 121 (2024); docs/analysis-paddlewheel.md)
    M_i = (3√5/40) Σ_k (5x_k³ − 3x_k); the normalisation makes ⟨M²⟩ = 1/(2ℓ+1)
    over isotropic orientations. ℓ = 1, 2 vanish identically for a tetrahedron
    and are refused.

    From moments (``wannier`` a moments Dataset, see the module docstring)
    the same M follows from the ℓ = 3 moment by the addition theorem,
    :math:`M_i = c_3 (4\pi/7)\sum_m T_{3m}(i) Y_{3m}(\hat n)`
    (:func:`~agi_data.analysis.rotor_function_from_moments`); on moments made
    from the same centres it equals the centre result to rounding for any
    axis. Only ℓ = 3 is carried by the moments.

    Parameters
    ----------
    traj, wannier
        trajectory and Wannier set, or moments (see the module docstring for which frames are used).
    species
        the ions whose 4 centres form the tetrahedron (default ``"I"``).
    l
        Legendre order ℓ (default 3).
    axis
        projection axis: ``"x"``, ``"y"``, ``"z"`` or a 3-vector.
    cutoff, expected
        passed to :func:`assign_wannier`.
    on_bad
        ``"mask"`` (drop bad frames), ``"mask_ion"`` or ``"raise"``; masked values are NaN.

    Returns
    -------
    xarray.DataArray ``rotor(frame, ion)``, dimensionless, lazy if the input is;
    coordinates ``frame`` (trajectory index), ``frame_time`` (ps), ``atom(ion)``
    and ``bad_frame(frame)``.
    """
    if is_moments(wannier):
        return rotor_function_from_moments(checked_moments(traj, wannier, species), l=l, axis=axis)
    n = axis_vector(axis)
    _rotor_norm(l)
    vec, _ = _owned_vectors(traj, wannier, species, cutoff=cutoff, expected=expected, on_bad=on_bad, need=4)
    m = xr.apply_ufunc(
        _rotor_kernel, vec, kwargs={"n": n, "l": int(l)},
        input_core_dims=[["centre", "xyz"]], dask="parallelized", output_dtypes=[np.float64],
    )
    return m.rename("rotor").assign_attrs(units="1", l=int(l), axis=n.tolist(), species=species,
                                          long_name=f"tetrahedral rotor function (l={l})", on_bad=on_bad)


# --------------------------------------------------------------------------------------------
# time correlations on the Wannier frame grid
# --------------------------------------------------------------------------------------------

def _select_frames(da: xr.DataArray, frames) -> xr.DataArray:
    if frames is None:
        return da
    frames = np.asarray(frames, dtype=np.int64)
    missing = np.setdiff1d(frames, da["frame"].values)
    if missing.size:
        raise WannierError(f"frames {missing[:10].tolist()} have no Wannier centres")
    return da.sel(frame=frames)


def _grid_autocorrelation(da: xr.DataArray, traj: xr.Dataset, *, component_dim: str | None, max_lag_ps,
                          min_coverage: float, normalise: bool, progress: bool,
                          on_bad: str) -> xr.DataArray:
    """Pooled all-origins autocorrelation of ``da(frame, ion[, component])`` over its frame grid.

    NaN marks missing samples: C(m) = Σ x(t)·x(t+m) w(t) w(t+m) / Σ w(t) w(t+m),
    both sums FFT correlations (agi_data.analysis.correlate), pooled over ions.
    The ``bad_frame`` coordinate is computed in the same Dask pass and reported.
    """
    bad = da["bad_frame"]
    grid, g = frame_grid(da["frame"].values, min_coverage)
    dt = g * frame_step(traj)
    da = da.drop_vars([c for c in da.coords if c not in da.dims]).reindex(frame=grid)
    valid = da.notnull()
    if component_dim is not None:
        valid = valid.all(component_dim)
    x = da.where(valid, 0.0)
    w = valid.astype(np.float64)
    if x.chunks is not None:
        block = max(1, min(8, x.sizes["ion"]))
        x, w = x.chunk({"ion": block}), w.chunk({"ion": block})
    T = grid.size
    n_lag = n_lags(T, dt, max_lag_ps, what="the Wannier frame grid", error=WannierError)
    num = correlate(x, n_lags=n_lag, time_dim="frame", component_dim=component_dim).sum("ion")
    pairs = correlate(w, n_lags=n_lag, time_dim="frame", component_dim=None).sum("ion")
    both = compute(xr.Dataset({"num": num, "pairs": pairs, "bad": bad.variable}), progress=progress)
    n_pairs = np.rint(both["pairs"].values * (T - np.arange(n_lag))).astype(np.int64)
    if n_pairs[0] == 0:
        raise WannierError("no valid (unmasked) sample to correlate: every frame or ion was left out")
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_pairs > 0, both["num"].values / both["pairs"].values, np.nan)
    c = mean / mean[0] if normalise else mean
    out = xr.DataArray(c, dims="lag", coords={"lag": lag_coordinate(n_lag, dt)})
    out = out.assign_coords(n_samples=("lag", n_pairs))
    out.attrs.update(frame_step=g, n_grid_frames=int(T), valid_fraction=float(n_pairs[0] / (T * da.sizes["ion"])))
    _report_bad(out, both["bad"], on_bad)
    return out


@renamed_arguments(max_lag="max_lag_ps")
def rotor_correlation(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I", l: int = 3, axis="x",
                      max_lag_ps: float | None = None, frames: Sequence[int] | None = None,
                      min_coverage: float = 0.5, cutoff: float = 1.2,
                      expected: Mapping[str, int] | None = None, on_bad: str = "mask",
                      progress: bool = False) -> xr.DataArray:
    r"""Normalised rotor autocorrelation over all time origins, no mean subtraction.

    .. math:: C_{\rm rot}(t) = \frac{\sum_i \langle M_i(t_0) M_i(t_0+t)\rangle_{t_0}}
                                   {\sum_i \langle M_i^2\rangle_{t_0}}

    with M from :func:`rotor_function` (Dhattarwal, Somni & Remsing, Nat.
    Commun. 15, 121 (2024)), computed with the project's FFT correlation
    (O(T log T) per ion instead of the O(T²) double loop over origins), Dask
    blocks of ions holding the whole time axis each.

    ``wannier`` may be moments (module docstring): predictions on every
    frame give the correlation at the MD frame rate.

    Only the frames with centres (or moments) are used (``frames=`` selects a subset);
    they must lie on a regular grid with at least ``min_coverage`` of its
    points present (missing points are masked exactly), else
    :class:`WannierError`.

    Parameters
    ----------
    max_lag_ps
        largest lag, ps (default: the whole grid).
    progress
        show a progress bar while Dask computes.
    species, l, axis, cutoff, expected, on_bad
        as in :func:`rotor_function`.

    Returns
    -------
    xarray.DataArray ``rotor_correlation(lag)`` (dimensionless), ``lag`` in ps,
    coordinate ``n_samples(lag)`` (ion-origin pairs averaged), attrs
    ``n_bad_frames``, ``frame_step``.
    """
    m = _select_frames(rotor_function(traj, wannier, species=species, l=l, axis=axis, cutoff=cutoff,
                                      expected=expected, on_bad=on_bad), frames)
    c = _grid_autocorrelation(m, traj, component_dim=None, max_lag_ps=max_lag_ps, min_coverage=min_coverage,
                              normalise=True, progress=progress, on_bad=on_bad)
    c.attrs.update(units="1", l=int(l), axis=m.attrs["axis"], species=species,
                   long_name="rotor autocorrelation (normalised, no mean subtraction)")
    return c.rename("rotor_correlation")


# --------------------------------------------------------------------------------------------
# dipoles
# --------------------------------------------------------------------------------------------

def iodide_dipoles(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I", cutoff: float = 1.2,
                   expected: Mapping[str, int] | None = None, on_bad: str = "mask") -> xr.DataArray:
    r"""Electronic dipole of each ion from its own Wannier centres.

    .. math:: \boldsymbol\mu_i = -2e \sum_k (\mathbf w_k - \mathbf r_i)

    (each centre carries two electrons; w_k − r_i by minimum image in the
    frame's cell). A perfect tetrahedron of centres has μ = 0; the
    orientation of μ tracks the lone-pair polarisation (Dhattarwal & Remsing,
    ChemPhysChem 26, e202500077 (2025)). From moments (module docstring)
    the stored ``dipole`` is returned as is (DFT moments hold exactly this μ).

    Returns
    -------
    xarray.DataArray ``dipole(frame, ion, xyz)`` in e·Å (NaN where masked, see
    ``on_bad``), lazy if the input is, with ``frame_time`` (ps) and ``atom(ion)``.
    """
    if is_moments(wannier):
        return moment_dipoles(checked_moments(traj, wannier, species)).rename("dipole")
    vec, _ = _owned_vectors(traj, wannier, species, cutoff=cutoff, expected=expected, on_bad=on_bad)
    mu = CENTRE_CHARGE_E * vec.sum("centre", skipna=False)
    return mu.rename("dipole").transpose("frame", "ion", "xyz").assign_attrs(
        units="e·Å", long_name=f"{species} dipole from its Wannier centres", species=species, on_bad=on_bad)


@renamed_arguments(max_lag="max_lag_ps")
def dipole_correlation(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I", kind: str = "orientation",
                       max_lag_ps: float | None = None, frames: Sequence[int] | None = None,
                       min_coverage: float = 0.5, min_norm: float = 1e-6, cutoff: float = 1.2,
                       expected: Mapping[str, int] | None = None, on_bad: str = "mask",
                       progress: bool = False) -> xr.DataArray:
    r"""Orientational correlation of the ionic dipoles over all time origins.

    ``kind="orientation"`` (default): :math:`C_\mu(t) = \langle\hat\mu_i(t_0)\cdot\hat\mu_i(t_0+t)\rangle`
    (first Legendre polynomial of the angle; samples with |μ| < ``min_norm``
    e·Å have no direction and are masked). ``kind="vector"``:
    :math:`\langle\mu_i(t_0)\cdot\mu_i(t_0+t)\rangle / \langle|\mu_i|^2\rangle`.
    Frames and masking as in :func:`rotor_correlation`.

    Returns
    -------
    xarray.DataArray ``dipole_correlation(lag)``, dimensionless, lag in ps.
    """
    if kind not in ("orientation", "vector"):
        raise WannierError(f"kind must be 'orientation' or 'vector', got {kind!r}")
    mu = _select_frames(iodide_dipoles(traj, wannier, species=species, cutoff=cutoff, expected=expected,
                                       on_bad=on_bad), frames)
    if kind == "orientation":
        norm = np.sqrt((mu**2).sum("xyz", skipna=False))
        mu = (mu / norm).where(norm >= min_norm)
    c = _grid_autocorrelation(mu, traj, component_dim="xyz", max_lag_ps=max_lag_ps, min_coverage=min_coverage,
                              normalise=True, progress=progress, on_bad=on_bad)
    c.attrs.update(units="1", kind=kind, species=species, long_name=f"dipole {kind} autocorrelation")
    return c.rename("dipole_correlation")


# --------------------------------------------------------------------------------------------
# lone-pair angular velocity
# --------------------------------------------------------------------------------------------

_PERMS = np.array(list(permutations(range(4))))


def _rotation_angle_kernel(u, v):
    """Angle (rad) of the best rotation taking the 4 directions u onto v (matched by permutation)."""
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    v = v / np.linalg.norm(v, axis=-1, keepdims=True)
    ok = np.isfinite(u).all(axis=(-1, -2)) & np.isfinite(v).all(axis=(-1, -2))
    u = np.where(ok[..., None, None], u, 0.0)
    v = np.where(ok[..., None, None], v, 0.0)
    score = np.einsum("...kx,...pkx->...p", u, v[..., _PERMS, :])
    best = _PERMS[np.argmax(score, axis=-1)]
    vm = np.take_along_axis(v, best[..., None], axis=-2)
    h = np.einsum("...kx,...ky->...xy", u, vm)
    uu, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(np.einsum("...ij,...jk->...ik", uu, vt)))
    r = np.einsum("...ij,...j,...jk->...ik", uu, np.stack([np.ones_like(d), np.ones_like(d), d], -1), vt)
    cos = np.clip((np.trace(r, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0)
    return np.where(ok, np.arccos(cos), np.nan)


def lone_pair_angular_velocity(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I",
                               min_coverage: float = 0.5, cutoff: float = 1.2,
                               expected: Mapping[str, int] | None = None, on_bad: str = "mask") -> xr.DataArray:
    r"""Angular speed of each ion's tetrahedron of lone-pair centres, rad/ps.

    By central differences on the Wannier frame grid (spacing Δ):
    ω(t) = θ(t−Δ → t+Δ) / 2Δ, where θ is the angle of the rotation that best
    maps the 4 centre directions at t−Δ onto those at t+Δ (Kabsch, centres
    matched by the permutation of largest overlap). NaN where a neighbour
    frame is missing or masked. The tetrahedron's symmetry hides rotations
    beyond ~60° per 2Δ: sample the frames well within a lone-pair rotation
    time (~300 fs in α-AgI at 750 K; docs/analysis-paddlewheel.md).

    Two definitions, one per source: from **centres**, the Kabsch angle
    above; from **moments** (module docstring; DFT-derived or a model's
    predictions), the rate of change of the ℓ = 3 orientation,
    ω = |T₃(t+Δ) − T₃(t−Δ)| / (2Δ · 2|T₃(t)|)
    (:func:`~agi_data.analysis.lone_pair_angular_velocity_from_moments`,
    derived in :mod:`agi_data.analysis.moments`). They agree for rigid
    regular tetrahedra; predicted moments are not exactly tetrahedral, so
    only the moment definition applies to them.

    Returns
    -------
    xarray.DataArray ``angular_velocity(frame, ion)`` in rad/ps on the
    Wannier frames.
    """
    if is_moments(wannier):
        return lone_pair_angular_velocity_from_moments(checked_moments(traj, wannier, species),
                                                       min_coverage=min_coverage)
    vec, _ = _owned_vectors(traj, wannier, species, cutoff=cutoff, expected=expected, on_bad=on_bad, need=4)
    frames = vec["frame"].values
    grid, g = frame_grid(frames, min_coverage)
    dt = g * frame_step(traj)
    v = vec.drop_vars([c for c in vec.coords if c not in vec.dims]).reindex(frame=grid)
    before, after = v.shift(frame=1), v.shift(frame=-1)
    theta = xr.apply_ufunc(
        _rotation_angle_kernel, before, after,
        input_core_dims=[["centre", "xyz"], ["centre", "xyz"]],
        dask="parallelized", output_dtypes=[np.float64],
    )
    omega = (theta / (2.0 * dt)).sel(frame=frames)
    omega = omega.assign_coords(frame_time=vec["frame_time"], atom=vec["atom"], bad_frame=vec["bad_frame"])
    return omega.rename("angular_velocity").assign_attrs(
        units="rad/ps", species=species, long_name="lone-pair angular speed (central difference)")
