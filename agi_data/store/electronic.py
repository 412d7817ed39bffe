"""Predicted lone-pair moments of a run: the ``electronic/`` group beside ``wannier/``.

A model of the electronic state (:mod:`agi_data.electronic`) predicts, for
every ion of one species on frames of a run, the ℓ = 3 moment of its lone
pairs and its dipole. They are stored in the run itself, so they are
versioned with it::

    /electronic/octupole(frame, ion, m)   dimensionless, m = −3…3
    /electronic/dipole(frame, ion, xyz)   e·Å
    /electronic/frame(frame)              trajectory frame index
    /electronic/frame_time(frame)         ps
    /electronic/atom(ion)                 atom index of each ion in the run

chunked like the run (its ``chunk_frames`` along ``frame``, its
``chunk_atoms`` along ``ion``), compressed and checksummed like every other
array. The group's attrs say which model wrote them (``model_uuid``,
``model_sha256``), its ``species``, ``cutoff_A`` and ``elements``, the frame
ranges predicted (``frame_ranges``: [start, stop) per write), the units, the
real-harmonic basis (``convention``, ``normalisation``), the run version whose
positions were read (``source_run_version``) and the AiiDA node of each write
(``provenance_uuid``: the latest; ``provenance_predictions``: one record per
write with its frames, model and node).

One model per run at a time: predicting with another model (another SHA-256)
into a run that has predictions is refused unless ``replace=True``, which
swaps the whole group in one commit — the old predictions stay readable
with ``Store.electronic(run_id, version=<the version before>)``. The same
model may add frames it has not predicted yet; frames it already predicted
are refused unless ``replace=True``.

Writes go through the run's :class:`~agi_data.store.run.RunHandle` under its
``wannier`` lock (the lock of the run's electronic data: Wannier batches and
predictions take turns, and ``delete_run`` waits for both). Every check runs
before the write session opens; the blocks are written into one session and
committed once: all of a prediction or nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr
import zarr

from . import validate
from .errors import RunNotFoundError, StoreValidationError
from .layout import Layout, compressors
from .run import holding

if TYPE_CHECKING:
    from .run import RunHandle

__all__ = ["ELECTRONIC_GROUP", "PredictionsExistError", "check_prediction", "write_predictions",
           "electronic_dataset"]

#: group of a run's predicted moments
ELECTRONIC_GROUP = "electronic"
#: units of the stored variables
UNITS = {"octupole": "1", "dipole": "e·Å", "frame_time": "ps"}
_ARRAYS = {"octupole": ("frame", "ion", "m"), "dipole": ("frame", "ion", "xyz")}


class PredictionsExistError(StoreValidationError):
    """The run already holds predictions (of another model, or of these frames): nothing was written."""


def _frames_in_run(handle: RunHandle, frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 1 or frames.size == 0 or frames.dtype.kind not in "iu":
        raise StoreValidationError(f"frames must be a non-empty 1-D array of integer frame indices, got {frames!r}")
    root = handle.group()
    n = root["positions"].shape[0] if "positions" in root.array_keys() else 0
    bad = frames[(frames < 0) | (frames >= n)]
    if bad.size:
        raise StoreValidationError(f"frames {bad[:5].tolist()} are outside run {handle.run_id!r}, which has {n} "
                                   f"frames (0..{n - 1})")
    if np.unique(frames).size != frames.size:
        raise StoreValidationError("frames contains the same frame twice")
    return frames.astype(np.int64)


def check_prediction(handle: RunHandle, frames, model_sha256: str, *, replace: bool = False) -> np.ndarray:
    """Refuse a prediction before anything is computed or written; return the frames as int64.

    Raises :class:`StoreValidationError` for frames outside the run and
    :class:`PredictionsExistError` when the run holds predictions of another
    model (or these frames already) and ``replace`` is false.
    """
    frames = _frames_in_run(handle, frames)
    root = handle.group()
    if replace or ELECTRONIC_GROUP not in root:
        return frames
    group = root[ELECTRONIC_GROUP]
    old = group.attrs.get("model_sha256")
    if old != model_sha256:
        raise PredictionsExistError(
            f"run {handle.run_id!r} already holds predictions of another model (SHA-256 {str(old)[:12]}…, node "
            f"{group.attrs.get('model_uuid')}): pass replace=True to replace them (the old ones stay readable by "
            f"version, e.g. store.electronic({handle.run_id!r}, version={handle.version()!r}))")
    done = np.intersect1d(group["frame"][:], frames)
    if done.size:
        raise PredictionsExistError(
            f"run {handle.run_id!r} already holds this model's predictions for frames {done[:5].tolist()}"
            f"{'…' if done.size > 5 else ''} ({done.size} in all): predict the other frames, or pass replace=True")
    return frames


def _block_arrays(block: xr.Dataset, atoms: np.ndarray | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    for name, dims in _ARRAYS.items():
        if name not in block or block[name].dims != dims:
            raise StoreValidationError(f"a prediction block needs {name}{dims}, got {dict(block.sizes)}")
    if atoms is not None and not np.array_equal(block["atom"].values, atoms):
        raise StoreValidationError("every prediction block must hold the same ions (atom(ion))")
    data = {name: validate.cast(name, np.asarray(block[name].values, dtype=np.float64), np.float64)
            for name in _ARRAYS}
    return np.asarray(block["frame"].values, dtype=np.int64), data


def write_predictions(handle: RunHandle, frames, blocks: Iterable[xr.Dataset], *, model_sha256: str,
                      attrs: dict | None = None, replace: bool = False, lock_timeout_s: float | None = None) -> str:
    """Write predicted moments of ``frames`` (from ``blocks``) into the run; returns the new version.

    ``blocks`` yields Datasets shaped like :meth:`ElectronicModel.predict`'s
    (``octupole(frame, ion, m)``, ``dipole(frame, ion, xyz)``, coordinates
    ``frame``, ``frame_time``, ``atom(ion)``) covering ``frames`` in order;
    each is written when it arrives, so memory is bounded by a block.
    ``attrs`` go on the group (model identity, units, basis, provenance);
    ``model_sha256`` is recorded and checked as in :func:`check_prediction`.
    Nothing is visible until the single commit at the end: an error (a
    non-finite value, a block that does not match) leaves the run as it was.
    """
    extra = validate.attrs(attrs or {})
    timeout = handle.lock_timeout_s if lock_timeout_s is None else lock_timeout_s
    with holding(handle.lock("wannier"), timeout):
        frames = check_prediction(handle, frames, model_sha256, replace=replace)
        layout = Layout.from_dict(handle.attrs()["layout"])
        session = handle.writable()
        root = zarr.open_group(session.store, mode="r+")
        previous = dict(root[ELECTRONIC_GROUP].attrs) if ELECTRONIC_GROUP in root else {}
        if replace and ELECTRONIC_GROUP in root:
            del root[ELECTRONIC_GROUP]
            previous = {}
        group = root.require_group(ELECTRONIC_GROUP)
        start = group["frame"].shape[0] if "frame" in group else 0
        time = root["time"]
        done, atoms = 0, (group["atom"][:] if "atom" in group else None)
        for block in blocks:
            got, data = _block_arrays(block, atoms)
            if not np.array_equal(got, frames[done:done + got.size]):
                raise StoreValidationError(f"prediction block frames {got[:3].tolist()}… are not the next frames "
                                           f"{frames[done:done + 3].tolist()}… of the request")
            if atoms is None:
                atoms = np.asarray(block["atom"].values, dtype=np.int64)
                _create(group, data, atoms, layout)
            for name, arr in data.items():
                _append(group[name], start + done, arr)
            _append(group["frame"], start + done, got)
            _append(group["frame_time"], start + done, time.get_orthogonal_selection(got))
            done += got.size
        if done != frames.size:
            raise StoreValidationError(f"the prediction covered {done} of the {frames.size} frames asked for")
        span = [int(frames[0]), int(frames[-1]) + 1]
        record = {"frames": span, "n_frames": int(frames.size), "model_sha256": model_sha256,
                  **{k: extra[k] for k in ("provenance_uuid", "model_uuid", "source_run_version") if k in extra}}
        group.attrs.update({**extra, "model_sha256": model_sha256, "units": UNITS,
                            "frame_ranges": list(previous.get("frame_ranges", [])) + [span],
                            "provenance_predictions": list(previous.get("provenance_predictions", [])) + [record],
                            "n_frames": int(start + done)})
        what = "replace predictions" if replace else "add predictions"
        return handle.commit(session, f"{what} for frames {frames[0]}:{frames[-1] + 1} (model {model_sha256[:12]})")


def _create(group: zarr.Group, data: dict[str, np.ndarray], atoms: np.ndarray, layout: Layout) -> None:
    n_ion = atoms.size
    chunk_ion = min(layout.chunk_atoms, max(n_ion, 1))
    meta = {"octupole": {"units": UNITS["octupole"], "long_name": "predicted l=3 moment of the lone-pair directions"},
            "dipole": {"units": UNITS["dipole"], "long_name": "predicted ionic dipole"}}
    for name, arr in data.items():
        tail = arr.shape[2:]
        group.create_array(name, shape=(0, n_ion, *tail), dtype=np.float64,
                           chunks=(layout.chunk_frames, chunk_ion, *tail), dimension_names=list(_ARRAYS[name]),
                           attributes=meta[name], fill_value=np.nan, compressors=compressors())
    for name, dtype, meta_ in (("frame", np.int64, {"long_name": "trajectory frame index"}),
                               ("frame_time", np.float64, {"units": UNITS["frame_time"]})):
        group.create_array(name, shape=(0,), dtype=dtype, chunks=(layout.chunk_frames,), dimension_names=["frame"],
                           attributes=meta_, fill_value=0, compressors=compressors())
    group.create_array("atom", data=atoms.astype(np.int64), chunks=(chunk_ion,), dimension_names=["ion"],
                       attributes={"long_name": "atom index of each ion in the run"}, compressors=compressors())


def _append(array: zarr.Array, start: int, data: np.ndarray) -> None:
    stop = start + data.shape[0]
    array.resize((stop, *array.shape[1:]))
    array[start:stop] = data


def electronic_dataset(handle: RunHandle, version: str | None = None) -> xr.Dataset:
    """The run's predicted moments as a lazy Dataset (see :meth:`Store.electronic`)."""
    session = handle.session(version)
    root = zarr.open_group(session.store, mode="r")
    if ELECTRONIC_GROUP not in root:
        raise RunNotFoundError(f"run {handle.run_id!r} has no predicted moments at this version (write them with "
                               "the agi.electronic_predict job)")
    ds = xr.open_zarr(session.store, group=ELECTRONIC_GROUP, consolidated=False, chunks={}, zarr_format=3,
                      mask_and_scale=False)
    frames = np.asarray(ds["frame"].values, dtype=np.int64)
    ds = ds.drop_vars(["frame", "frame_time", "atom"]).assign_coords(
        frame=("frame", frames),
        frame_time=("frame", np.asarray(ds["frame_time"].values), {"units": UNITS["frame_time"]}),
        atom=("ion", np.asarray(ds["atom"].values, dtype=np.int64)),
        m=("m", np.arange(-3, 4)), xyz=["x", "y", "z"],
        bad_frame=("frame", np.zeros(frames.size, dtype=bool)))
    if not np.all(np.diff(frames) > 0):
        ds = ds.sortby("frame")
    ds.attrs = dict(root[ELECTRONIC_GROUP].attrs)
    ds.attrs.update(run_id=handle.run_id, store_version=session.snapshot_id, source="model")
    return ds
