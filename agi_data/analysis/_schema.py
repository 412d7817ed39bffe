"""Checks that a Dataset follows the store's trajectory schema, and selections.

The schema (see DESIGN.md and :mod:`agi_data.store`):
``positions(time, atom, xyz)`` in Å, optional ``velocities``, ``forces``
(same dims), ``energies(time)``, ``cell(time, vec, xyz)`` or a constant
``cell(vec, xyz)``; coordinates ``time`` (ps), ``species(atom)`` (atomic
numbers) and ``symbol(atom)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..elements import UnknownElementError, symbols, to_atomic_numbers


class SchemaError(ValueError):
    """A Dataset does not follow the trajectory schema."""


def require(ds: xr.Dataset, *variables: str, min_frames: int = 2) -> None:
    """Raise :class:`SchemaError` naming what is missing from ``ds``."""
    if not isinstance(ds, xr.Dataset):
        raise SchemaError(f"expected an xarray.Dataset, got {type(ds).__name__}")
    for name in variables:
        if name not in ds.variables:
            raise SchemaError(f"the Dataset has no variable {name!r} (it has {sorted(ds.variables)})")
    for name in variables:
        if name in ("positions", "velocities", "forces"):
            dims = ds[name].dims
            if dims != ("time", "atom", "xyz"):
                raise SchemaError(f"{name} must have dims ('time', 'atom', 'xyz'), got {dims}")
    if "species" not in ds.coords:
        raise SchemaError("the Dataset has no 'species(atom)' coordinate (atomic numbers)")
    if "time" not in ds.coords:
        raise SchemaError("the Dataset has no 'time' coordinate (ps)")
    if ds.sizes.get("time", 0) < min_frames:
        raise SchemaError(f"need at least {min_frames} frames, the Dataset has {ds.sizes.get('time', 0)}")


def frame_interval(ds: xr.Dataset, coord: str = "time") -> float:
    """The spacing of an equally spaced time coordinate, in ps.

    Raises :class:`SchemaError` when the frames are not equally spaced (FFT
    correlations over all origins assume a uniform grid).
    """
    t = np.asarray(ds[coord].values, dtype=np.float64)
    if t.size < 2:
        raise SchemaError(f"need at least 2 values of {coord!r} to define a time step")
    dt = np.diff(t)
    step = float(np.median(dt))
    if step <= 0 or not np.allclose(dt, step, rtol=1e-6, atol=1e-9):
        raise SchemaError(
            f"{coord!r} is not equally spaced (steps from {dt.min():g} to {dt.max():g} ps): "
            "correlations over all time origins need a uniform grid; select an equally spaced subset"
        )
    return step


def select_species(ds: xr.Dataset, species: str | int | Sequence[str | int] | None) -> xr.Dataset:
    """The atoms of ``species`` (symbol, atomic number, or a list of them).

    ``None`` keeps every atom. Raises :class:`SchemaError` for a species that
    is unknown or absent from the Dataset.
    """
    if species is None:
        return ds
    wanted = [species] if isinstance(species, (str, int, np.integer)) else list(species)
    try:
        z = to_atomic_numbers(wanted)
    except UnknownElementError as err:
        raise SchemaError(str(err)) from None
    present = np.asarray(ds["species"].values)
    missing = [s for s, zz in zip(wanted, z) if not np.any(present == zz)]
    if missing:
        raise SchemaError(
            f"species {missing} not in the Dataset (it has {sorted(set(symbols(np.unique(present))))})"
        )
    return ds.isel(atom=np.flatnonzero(np.isin(present, z)))


def cell_per_frame(ds: xr.Dataset) -> xr.DataArray:
    """The cell as ``(time, vec, xyz)``, broadcasting a constant cell."""
    if "cell" not in ds.variables:
        raise SchemaError("the Dataset has no 'cell' variable (vec, xyz) or (time, vec, xyz)")
    cell = ds["cell"]
    if "time" not in cell.dims:
        cell = cell.expand_dims(time=ds["time"])
    return cell.transpose("time", "vec", "xyz")
