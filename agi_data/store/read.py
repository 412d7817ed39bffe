"""A run's arrays as lazy xarray Datasets (the store's read side, shared by ``Store`` and ``RunRef``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from ..elements import symbols
from ..units import UNITS
from .errors import RunNotFoundError
from .schema import WANNIER_GROUP

if TYPE_CHECKING:
    from .run import RunHandle


def trajectory_dataset(handle: RunHandle, version: str | None = None) -> xr.Dataset:
    """The run as a lazy, Dask-backed :class:`xarray.Dataset` (see :meth:`Store.trajectory`)."""
    session = handle.session(version)
    root = zarr.open_group(session.store, mode="r")
    attrs = dict(root.attrs)
    if "positions" in root:
        ds = xr.open_zarr(session.store, consolidated=False, chunks={}, zarr_format=3, mask_and_scale=False)
    else:  # a run with no frames yet
        n = attrs["n_atoms"]
        ds = xr.Dataset({
            "positions": (("time", "atom", "xyz"), np.zeros((0, n, 3), np.float32), {"units": UNITS["positions"]}),
            "cell": (("time", "vec", "xyz"), np.zeros((0, 3, 3)), {"units": UNITS["cell"]}),
            "time": ("time", np.zeros(0), {"units": UNITS["time"]}),
            "species": ("atom", np.asarray(root["species"][:])),
        })
    ds = ds.set_coords([c for c in ("time", "species") if c in ds.variables])
    species = np.asarray(ds["species"].values)
    ds = ds.assign_coords(
        species=("atom", species, {"long_name": "atomic number"}),
        symbol=("atom", np.array(symbols(species)), {"long_name": "element"}),
        xyz=["x", "y", "z"],
    )
    if "vec" in ds.dims:
        ds = ds.assign_coords(vec=["a", "b", "c"])
    ds.attrs = {k: v for k, v in attrs.items() if k not in ("layout", "units")}
    ds.attrs["store_version"] = session.snapshot_id
    return ds


def wannier_dataset(handle: RunHandle, version: str | None = None) -> xr.Dataset:
    """The run's Wannier centres (see :meth:`Store.wannier`)."""
    session = handle.session(version)
    root = zarr.open_group(session.store, mode="r")
    if WANNIER_GROUP not in root:
        raise RunNotFoundError(f"run {handle.run_id!r} has no Wannier centres (add them with add_wannier)")
    ds = xr.open_zarr(session.store, group=WANNIER_GROUP, consolidated=False, chunks={}, zarr_format=3,
                      mask_and_scale=False)
    ds = ds.set_coords(["frame", "frame_time"]).assign_coords(xyz=["x", "y", "z"])
    ds = ds.assign_coords(frame=ds["frame"].values, frame_time=("frame", ds["frame_time"].values, ds["frame_time"].attrs))
    if not np.all(np.diff(ds["frame"].values) > 0):
        ds = ds.sortby("frame")
    ds.attrs = dict(root[WANNIER_GROUP].attrs)
    ds.attrs["run_id"] = handle.run_id
    ds.attrs["store_version"] = session.snapshot_id
    return ds
