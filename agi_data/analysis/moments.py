r"""Electronic descriptors of each ion from its Wannier centres: ℓ = 3 moment and dipole.

Why ℓ = 3
---------
The four lone-pair centres of an iodide sit near the corners of a regular
tetrahedron. Its centroid — the ℓ = 1 moment — and its ℓ = 2 moment vanish
whatever the orientation, so a dipole or centroid model cannot carry the
rotor function. The orientation lives in the ℓ = 3 moment of the unit vectors
û_k from iodide i to its centres,

.. math:: T_{3m}(i) = \sum_{k=1}^{4} Y_{3m}(\hat u_k),\qquad m = -3,\dots,3,

seven numbers per ion (Dhattarwal, Somni & Remsing, Nat. Commun. 15, 121
(2024) define the rotor function; this module is its linear basis).

Convention (one basis everywhere)
---------------------------------
Y₃ₘ are the **real, orthonormal** spherical harmonics (∫ Y₃ₘ Y₃ₘ' dΩ = δₘₘ'),
without the Condon–Shortley phase, m = −3…3 in this order (x, y, z the
Cartesian components of û):

====  ==========================================
 m    Y₃ₘ(û)
====  ==========================================
 −3   √(35/32π) · y(3x² − y²)
 −2   √(105/4π) · xyz
 −1   √(21/32π) · y(5z² − 1)
  0   √(7/16π)  · z(5z² − 3)
  1   √(21/32π) · x(5z² − 1)
  2   √(105/16π) · z(x² − y²)
  3   √(35/32π) · x(x² − 3y²)
====  ==========================================

The same table is stored in the attrs of every result (``convention``,
``normalisation``). Networks that use another basis (e3nn orders and mixes
ℓ = 3 differently; nequip uses the "component" normalisation Σₘ|Y₃ₘ|² = 7)
convert to this one before anything leaves them (:mod:`agi_data.electronic`).

Rotor function from the moments
-------------------------------
With x = û·n̂, (5x³ − 3x)/2 = P₃(x), and the addition theorem
P₃(û·n̂) = (4π/7) Σₘ Y₃ₘ(û) Y₃ₘ(n̂), the published rotor function along any
axis n̂ is linear in T₃:

.. math:: M_i(\hat n) = \frac{3\sqrt5}{20}\sum_k P_3(\hat u_k\cdot\hat n)
          = \frac{3\sqrt5}{20}\,\frac{4\pi}{7}\sum_m T_{3m}(i)\,Y_{3m}(\hat n).

(3√5/20 = [4 + 12 P₃(−1/3)]^{-1/2}, the normalisation of
:func:`agi_data.analysis.rotor_function`.)

Angular speed of a rigid tetrahedron from the moments
-----------------------------------------------------
Under a rotation at angular velocity ω n̂ the real ℓ = 3 vector obeys
dT₃/dt = ω A(n̂) T₃, with A(n̂) = −i n̂·L the real antisymmetric generator,
so |dT₃/dt|² = ω² ⟨T₃|(n̂·L)²|T₃⟩. For a regular tetrahedron T₃ is invariant
under the tetrahedral rotation group; the symmetric tensor ⟨T₃|L_a L_b|T₃⟩
is then invariant under that group, which admits only multiples of δ_ab.
Its trace is ℓ(ℓ + 1)|T₃|² = 12|T₃|², so ⟨T₃|(n̂·L)²|T₃⟩ = 4|T₃|² for every
axis and

.. math:: \omega = \frac{|\dot T_3|}{2\,|T_3|}.

:func:`lone_pair_angular_velocity_from_moments` evaluates it with central
differences on the frame grid (spacing Δ): the chord |T₃(t+Δ) − T₃(t−Δ)|
underestimates the arc by a relative (ωΔ)²·O(1), below 1 % for ωΔ < 0.1 rad.
It is the *rate of change of the ℓ = 3 orientation*; the centre-based
:func:`agi_data.analysis.lone_pair_angular_velocity` is the angle of the best
(Kabsch) rotation between frames. Both agree for rigid regular tetrahedra;
for distorted ones (and for predicted moments, which are not exactly
tetrahedral) only the moment definition exists.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..elements import symbols, to_atomic_numbers
from ._moments import (
    CONVENTION,
    L3_M,
    NORMALISATION,
    ROTOR_L3_NORM,
    lone_pair_angular_velocity_from_moments,
    real_harmonics_l3,
    rotor_function_from_moments,
    wigner_l3,
)
from .pbc import minimum_image
from .wannier import CENTRE_CHARGE_E, DEFAULT_EXPECTED, assign_wannier, iodide_dipoles

__all__ = [
    "L3_M",
    "CONVENTION",
    "ROTOR_L3_NORM",
    "real_harmonics_l3",
    "wigner_l3",
    "lone_pair_moments",
    "rotor_function_from_moments",
    "lone_pair_angular_velocity_from_moments",
]

# --------------------------------------------------------------------------------------------
# moments from the DFT centres
# --------------------------------------------------------------------------------------------

def _octupole_kernel(pos, cen, cell, owner, *, ion_atoms):
    """T₃(F, n_ions, 7): Σ over each ion's owned centres of Y₃ of the minimum-image unit vector."""
    n_frames, n_w = owner.shape
    lut = np.full(pos.shape[1] + 1, -1, dtype=np.int64)  # lut[-1] serves owner == -1
    lut[ion_atoms] = np.arange(len(ion_atoms))
    slot = lut[owner]
    f, w = np.nonzero(slot >= 0)
    vec = minimum_image(cen[f, w] - pos[f, owner[f, w]], cell[f])
    out = np.zeros((n_frames * len(ion_atoms), 7))
    np.add.at(out, f * len(ion_atoms) + slot[f, w], real_harmonics_l3(vec))
    return out.reshape(n_frames, len(ion_atoms), 7)


def _aligned(traj: xr.Dataset, frames: np.ndarray, like: xr.DataArray):
    pos = traj["positions"].isel(time=frames).rename(time="frame").drop_vars(
        [c for c in traj["positions"].coords if c not in ("atom", "xyz")], errors="ignore")
    cell = traj["cell"]
    cell = cell.isel(time=frames).rename(time="frame") if "time" in cell.dims else cell.expand_dims(
        frame=len(frames))
    cell = cell.transpose("frame", "vec", "xyz").drop_vars(
        [c for c in cell.coords if c not in ("vec", "xyz")], errors="ignore")
    pos, cell = pos.assign_coords(frame=frames), cell.assign_coords(frame=frames)
    if like.chunks is not None:
        chunks = {"frame": like.chunksizes["frame"]}
        pos, cell = pos.chunk(chunks), cell.chunk(chunks)
    if pos.chunks is not None:  # the kernel needs every atom of a frame: one chunk along atom
        pos = pos.chunk({"atom": -1})
    return pos, cell


def lone_pair_moments(traj: xr.Dataset, wannier: xr.Dataset, *, species: str = "I", cutoff: float = 1.2,
                      expected: Mapping[str, int] | None = None, on_bad: str = "mask") -> xr.Dataset:
    r"""ℓ = 3 moment and dipole of each ion of ``species`` from its own Wannier centres.

    .. math:: T_{3m}(i) = \sum_k Y_{3m}(\hat u_k), \qquad
              \boldsymbol\mu_i = -2e \sum_k (\mathbf w_k - \mathbf r_i)

    (û_k unit vectors from ion i to its centres w_k by minimum image; real
    orthonormal harmonics of the module table; μ exactly as
    :func:`agi_data.analysis.iodide_dipoles`). Centres are assigned by
    :func:`agi_data.analysis.assign_wannier`; frames or ions that fail the
    count check are masked (NaN) as ``on_bad`` says, identically in both
    variables.

    Parameters
    ----------
    traj, wannier
        trajectory (store schema) and Wannier set ``centres(frame, wannier, xyz)``.
    species
        ``"I"`` (octupole and dipole) or ``"Ag"`` (dipole only: five d-shell
        centres have no tetrahedral moment). The octupole is computed for a
        species that owns 4 centres in ``expected``.
    cutoff, expected, on_bad
        as in :func:`agi_data.analysis.rotor_function`.

    Returns
    -------
    xarray.Dataset with ``octupole(frame, ion, m)`` (dimensionless, I only)
    and ``dipole(frame, ion, xyz)`` (e·Å); coordinates ``frame`` (trajectory
    index), ``frame_time`` (ps), ``atom(ion)``, ``bad_frame(frame)``, ``m``;
    attrs ``convention``, ``normalisation``, ``species``, ``source="wannier"``.
    """
    dip = iodide_dipoles(traj, wannier, species=species, cutoff=cutoff, expected=expected, on_bad=on_bad)
    out = xr.Dataset({"dipole": dip})
    z = int(species) if not isinstance(species, str) else int(to_atomic_numbers([species])[0])
    if dict(DEFAULT_EXPECTED if expected is None else expected).get(symbols([z])[0]) == 4:  # a tetrahedron
        assign = assign_wannier(traj, wannier, cutoff=cutoff, expected=expected)
        frames = np.asarray(assign["frame"].values)
        cen = wannier["centres"].assign_coords(frame=wannier["frame"].values.astype(np.int64)).sel(frame=frames)
        pos, cell = _aligned(traj, frames, cen)
        t3 = xr.apply_ufunc(
            _octupole_kernel, pos, cen.drop_vars([c for c in cen.coords if c not in ("frame", "xyz")]),
            cell, assign["owner"].drop_vars([c for c in assign["owner"].coords if c != "frame"]),
            kwargs={"ion_atoms": dip["atom"].values},
            input_core_dims=[["atom", "xyz"], ["wannier", "xyz"], ["vec", "xyz"], ["wannier"]],
            output_core_dims=[["ion", "m"]], dask="parallelized", output_dtypes=[np.float64],
            dask_gufunc_kwargs={"output_sizes": {"ion": dip.sizes["ion"], "m": 7}},
        )
        t3 = t3.assign_coords(frame=dip["frame"]).where(dip.notnull().all("xyz"))
        out["octupole"] = t3.assign_attrs(units="1", long_name=f"l=3 moment of the {species} lone-pair directions")
    out = out.assign_coords(m=("m", L3_M))
    out.attrs.update(species=species, convention=CONVENTION, normalisation=NORMALISATION, source="wannier",
                     centre_charge_e=CENTRE_CHARGE_E, dipole_units="e·Å")
    return out
