r"""The ℓ = 3 basis and the analyses of lone-pair moments, below both :mod:`.wannier` and :mod:`.moments`.

The paddlewheel analyses of :mod:`agi_data.analysis.wannier` take either the
DFT Wannier set of a run or a *moments* Dataset — ``octupole(frame, ion, m)``
and ``dipole(frame, ion, xyz)`` from :func:`agi_data.analysis.lone_pair_moments`
(DFT centres), from :meth:`agi_data.electronic.ElectronicModel.predict` or from
:meth:`agi_data.store.Store.electronic` (a model's predictions stored in the
run). This module holds what both sides need — the real-harmonic basis, the
recognition and checking of a moments Dataset, the rotor function and the
angular speed from the moments — so :mod:`.wannier` dispatches here and
:mod:`.moments` (which builds moments from centres with :mod:`.wannier`)
re-exports it, without an import cycle. The science (the addition theorem,
the angular speed of a rigid tetrahedron) is in :mod:`agi_data.analysis.moments`.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
import xarray as xr

from ._common import axis_vector
from .errors import WannierError

#: the m values of the ℓ = 3 components, in storage order
L3_M = np.arange(-3, 4)
#: the basis, as recorded in the attrs of every result
CONVENTION = ("real orthonormal spherical harmonics without Condon-Shortley phase, m=-3..3: "
              "sqrt(35/32pi) y(3x^2-y^2), sqrt(105/4pi) xyz, sqrt(21/32pi) y(5z^2-1), sqrt(7/16pi) z(5z^2-3), "
              "sqrt(21/32pi) x(5z^2-1), sqrt(105/16pi) z(x^2-y^2), sqrt(35/32pi) x(x^2-3y^2)")
NORMALISATION = "integral: sum over the sphere of Y_3m Y_3m' = delta_mm'; addition theorem P3(u.n) = 4pi/7 sum_m Y(u)Y(n)"
#: c₃ = [4 + 12 P₃(−1/3)]^{-1/2}, the rotor-function normalisation
ROTOR_L3_NORM = 3.0 * math.sqrt(5.0) / 20.0

_C = (math.sqrt(35 / (32 * math.pi)), math.sqrt(105 / (4 * math.pi)), math.sqrt(21 / (32 * math.pi)),
      math.sqrt(7 / (16 * math.pi)), math.sqrt(21 / (32 * math.pi)), math.sqrt(105 / (16 * math.pi)),
      math.sqrt(35 / (32 * math.pi)))


def check_frames_in_run(frames: np.ndarray, traj: xr.Dataset, what: str) -> None:
    """Refuse ``frames`` (trajectory indices of per-frame electronic data: ``what``) that ``traj`` does not have."""
    n_time = traj.sizes["time"]
    outside = frames[(frames < 0) | (frames >= n_time)]
    if outside.size:
        raise WannierError(f"{what} are given for frames {outside[:10].tolist()} that the run does not have "
                           f"(it has frames 0..{n_time - 1}): wrong run, or {what} of a run that was cut")


def check_frame_time(frame_time, t_traj: np.ndarray, frames: np.ndarray, holder: str, hint: str) -> None:
    """Refuse electronic data whose ``frame_time`` (ps) disagrees with the trajectory's time of the same frames."""
    t = np.asarray(frame_time, dtype=np.float64)
    bad = ~np.isclose(t, t_traj, rtol=1e-6, atol=1e-6)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise WannierError(f"frame_time does not match the run: frame {frames[i]} is at {t_traj[i]:g} ps in the "
                           f"trajectory but {t[i]:g} ps in {holder} ({hint})")


def real_harmonics_l3(u: np.ndarray) -> np.ndarray:
    """Y₃ₘ(û) for m = −3…3 (module table) of vectors ``u`` (..., 3), normalised here; returns (..., 7)."""
    u = np.asarray(u, dtype=np.float64)
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    return np.stack([
        _C[0] * y * (3 * x * x - y * y),
        _C[1] * x * y * z,
        _C[2] * y * (5 * z * z - 1),
        _C[3] * z * (5 * z * z - 3),
        _C[4] * x * (5 * z * z - 1),
        _C[5] * z * (x * x - y * y),
        _C[6] * x * (x * x - 3 * y * y),
    ], axis=-1)


# 16 fixed directions on which Y₃ has full rank: a Wigner matrix is the exact least-squares map
_PROBE = np.array([[math.cos(p) * math.sin(t), math.sin(p) * math.sin(t), math.cos(t)]
                   for t, p in zip(np.arccos(1 - 2 * (np.arange(16) + 0.5) / 16),
                                   np.arange(16) * math.pi * (3 - math.sqrt(5)))])


def wigner_l3(rotation: np.ndarray) -> np.ndarray:
    """The 7×7 matrix D(R) of this basis with Y₃(R û) = D(R) Y₃(û) (orthogonal for a rotation).

    ``rotation``: a 3×3 orthogonal matrix acting on column vectors. Under the
    inversion (det R = −1) ℓ = 3 is odd, and D(R) includes that sign.
    """
    r = np.asarray(rotation, dtype=np.float64)
    before = real_harmonics_l3(_PROBE)
    after = real_harmonics_l3(_PROBE @ r.T)
    d, *_ = np.linalg.lstsq(before, after, rcond=None)
    return d.T


# --------------------------------------------------------------------------------------------
# recognising and checking a moments Dataset
# --------------------------------------------------------------------------------------------

def is_moments(data) -> bool:
    """True for a moments Dataset (``octupole`` and/or ``dipole`` per ion), False for a Wannier set or anything else."""
    return isinstance(data, xr.Dataset) and "centres" not in data.variables and \
        ("octupole" in data.variables or "dipole" in data.variables)


def checked_moments(traj: xr.Dataset, moments: xr.Dataset, species) -> xr.Dataset:
    """``moments`` checked against the run and the species asked for, sorted by frame, with ``bad_frame``.

    Refused with :class:`WannierError`: moments of another species or run,
    frames the run does not have, a ``frame_time`` that disagrees with the
    run's time axis.
    """
    have = moments.attrs.get("species")
    if have is not None and species is not None and str(have) != str(species):
        raise WannierError(f"these moments are of {have} ions, not {species}: pass species={have!r} or the moments "
                           f"of {species}")
    run, mrun = traj.attrs.get("run_id"), moments.attrs.get("run_id")
    if run is not None and mrun is not None and str(run) != str(mrun):
        raise WannierError(f"the moments belong to run {mrun!r}, the trajectory is run {run!r}: pass the moments "
                           f"of this run (store.electronic({run!r}))")
    if "frame" not in moments.coords or moments.sizes.get("frame", 0) == 0:
        raise WannierError("the moments have no frames (a 'frame' coordinate of trajectory frame indices)")
    frames = np.asarray(moments["frame"].values, dtype=np.int64)
    check_frames_in_run(frames, traj, "moments")
    if not np.all(np.diff(frames) > 0):
        moments = moments.sortby("frame")
        frames = np.asarray(moments["frame"].values, dtype=np.int64)
    t_traj = np.asarray(traj["time"].values, dtype=np.float64)[frames]
    if "frame_time" in moments.coords:
        check_frame_time(moments["frame_time"].values, t_traj, frames, "the moments", "moments of another run?")
    else:
        moments = moments.assign_coords(frame_time=("frame", t_traj, {"units": "ps"}))
    if "bad_frame" not in moments.coords:
        bad = ~np.isfinite(moments[_first(moments)]).all([d for d in moments[_first(moments)].dims if d != "frame"])
        moments = moments.assign_coords(bad_frame=("frame", np.asarray(bad.values, dtype=bool)))
    return moments


def _first(moments: xr.Dataset) -> str:
    return "octupole" if "octupole" in moments.variables else "dipole"


def moment_dipoles(moments: xr.Dataset) -> xr.DataArray:
    """``dipole(frame, ion, xyz)`` (e·Å) of a moments Dataset, with its coordinates."""
    if "dipole" not in moments.variables:
        raise WannierError(f"these moments carry no dipole (variables {sorted(moments.data_vars)})")
    return moments["dipole"].transpose("frame", "ion", "xyz").assign_attrs(
        units="e·Å", species=moments.attrs.get("species", ""), source=moments.attrs.get("source", ""))


# --------------------------------------------------------------------------------------------
# analyses of the moments (DFT-derived or predicted)
# --------------------------------------------------------------------------------------------

def _require_octupole(moments) -> xr.DataArray:
    if not isinstance(moments, xr.Dataset) or "octupole" not in moments.variables:
        found = sorted(moments.variables) if isinstance(moments, xr.Dataset) else type(moments).__name__
        raise WannierError(f"expected moments with octupole(frame, ion, m) (lone_pair_moments or a model's "
                           f"prediction; Ag has none), got {found}")
    return moments["octupole"].transpose(..., "m")


def rotor_function_from_moments(moments: xr.Dataset, *, l: int = 3, axis="x") -> xr.DataArray:
    r"""The rotor function M(frame, ion) from ℓ = 3 moments (the module's addition-theorem identity).

    .. math:: M_i(\hat n) = \frac{3\sqrt5}{20}\,\frac{4\pi}{7}\sum_m T_{3m}(i)\,Y_{3m}(\hat n)

    Equal to :func:`agi_data.analysis.rotor_function` on the same centres
    (to rounding) for any axis. Only ℓ = 3 is carried by the moments.

    Returns
    -------
    xarray.DataArray ``rotor(frame, ion)``, dimensionless, with the input's
    coordinates (``frame_time``, ``atom``, ``bad_frame`` where present).
    """
    if int(l) != 3:
        raise WannierError(f"the moments carry l=3 only, got l={l!r}: use the Wannier centres for other orders")
    n = axis_vector(axis)
    t3 = _require_octupole(moments)
    weights = xr.DataArray(ROTOR_L3_NORM * (4.0 * math.pi / 7.0) * real_harmonics_l3(n), dims="m")
    m = xr.dot(t3, weights, dim="m")
    return m.rename("rotor").assign_attrs(
        units="1", l=3, axis=n.tolist(), species=moments.attrs.get("species", "I"),
        long_name="tetrahedral rotor function (l=3) from the l=3 moments", source=moments.attrs.get("source", ""))


def _frame_step(moments: xr.Dataset, min_coverage: float) -> tuple[np.ndarray, int, float]:
    """Grid of frames (spacing g = gcd of separations), g, and the time step of one grid step, ps."""
    frames = np.asarray(moments["frame"].values, dtype=np.int64)
    if frames.size < 3:
        raise WannierError(f"an angular velocity needs moments on at least 3 frames, got {frames.size}")
    g = int(reduce(math.gcd, np.diff(frames).tolist()))
    grid = np.arange(frames[0], frames[-1] + 1, g)
    if frames.size / grid.size < min_coverage:
        raise WannierError(f"only {frames.size / grid.size:.0%} of the frame grid (step {g}) has moments, "
                           f"below min_coverage={min_coverage:g}: pass an equally spaced subset")
    if "frame_time" not in moments.coords:
        raise WannierError("the moments have no frame_time coordinate (ps): cannot convert to a rate")
    t = np.asarray(moments["frame_time"].values, dtype=np.float64)
    dt_frame = (t[-1] - t[0]) / (frames[-1] - frames[0])
    return grid, g, g * dt_frame


def lone_pair_angular_velocity_from_moments(moments: xr.Dataset, *, min_coverage: float = 0.5) -> xr.DataArray:
    r"""Angular speed of each ion's lone-pair orientation from its ℓ = 3 moment, rad/ps.

    .. math:: \omega(t) = \frac{|T_3(t+\Delta) - T_3(t-\Delta)|}{2\Delta}\;\frac{1}{2|T_3(t)|}

    (derivation in the module docstring; exact in the limit Δ → 0 for a
    rigid regular tetrahedron). Δ is the spacing of the frame grid (gcd of
    the frame separations); NaN where a neighbour frame is missing or masked.

    Returns
    -------
    xarray.DataArray ``angular_velocity(frame, ion)`` in rad/ps on the frames of ``moments``.
    """
    t3 = _require_octupole(moments)
    grid, _, dt = _frame_step(moments, min_coverage)
    frames = t3["frame"].values
    v = t3.drop_vars([c for c in t3.coords if c not in t3.dims]).reindex(frame=grid)
    rate = np.sqrt(((v.shift(frame=-1) - v.shift(frame=1)) ** 2).sum("m", skipna=False)) / (2.0 * dt)
    omega = (rate / (2.0 * np.sqrt((v**2).sum("m", skipna=False)))).sel(frame=frames)
    keep = {c: t3[c] for c in ("frame_time", "atom", "bad_frame") if c in t3.coords}
    return omega.assign_coords(keep).rename("angular_velocity").assign_attrs(
        units="rad/ps", species=moments.attrs.get("species", "I"),
        long_name="lone-pair angular speed |dT3/dt| / 2|T3| (central difference)")
