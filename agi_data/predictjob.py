"""The prediction job: a trained lone-pair model run on frames of a store run, what ``agi.electronic_predict`` runs.

It sits above :mod:`agi_data.electronic` (the model, which never opens a store) and
:mod:`agi_data.store` (where the predictions go). ``python -m agi_data.predictjob job.json``
reads::

    {"model": "model.pt",                              # ElectronicModel.save file, beside job.json
     "model_uuid": "<model node>",
     "run": {"store_path": "/project/agi/store" | "s3://bucket/prefix", "run_id": "...",
             "version": "<snapshot id>" | null},       # the positions are read at this version
     "parameters": {"frames": [start, stop] | null,     # default: every frame of the run
                    "replace": false, "block_frames": 64, "species": "I", "cutoff": 6.0,
                    "device": null, "threads": null},
     "attrs": {"provenance_uuid": "<the job's node>"}}

runs :func:`run_prediction` and writes ``result.json`` (``status``: ``ok``, or the refusal the
``agi.electronic_predict`` parser turns into its exit code). Every check — the store and run
reachable, the model file readable, the frames inside the run, the model able to describe the
run (species, cutoff, elements), no predictions of another model in the run — runs before
anything is written. The positions are read and predicted a block of ``block_frames`` frames at
a time, each block written into one store session as it comes (memory bounded by a block,
never by the run), and the session is committed once at the end: the predictions of the whole
range appear together, in a new store version, or not at all.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

#: written by the job, read by the ``agi.electronic_predict`` parser
from .jobfiles import RESULT_FILE, SETTINGS_FILE, read_settings, write_result  # noqa: F401 - the names the CalcJobs use

#: parameters the job understands
PARAMETERS = ("frames", "replace", "block_frames", "species", "cutoff", "device", "threads")


class _Refused(Exception):
    """A check failed before anything was written: ``status`` names which."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


def frame_range(frames, n_frames: int, run_id: str) -> np.ndarray:
    """The frame indices of ``frames`` ([start, stop) or None: all) in a run of ``n_frames``; refuses a range outside."""
    if frames is None:
        start, stop = 0, n_frames
    else:
        if not (isinstance(frames, (list, tuple)) and len(frames) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in frames)):
            raise _Refused("frames-out-of-range", f"frames must be [start, stop) integers, got {frames!r}")
        start, stop = frames
    if not 0 <= start < stop <= n_frames:
        raise _Refused("frames-out-of-range",
                       f"frames [{start}, {stop}) are not inside run {run_id!r}, which has {n_frames} frames: "
                       f"ask for a range within [0, {n_frames})")
    return np.arange(start, stop, dtype=np.int64)


def _blocks(model, traj, frames: np.ndarray, block: int):
    """The model's predictions on ``frames``, one computed block of ``block`` frames at a time."""
    for start in range(0, frames.size, block):
        part = frames[start:start + block]
        ds = model.predict(traj, frames=part, block_frames=part.size).compute()
        for name in ("octupole", "dipole"):
            if not np.isfinite(ds[name].values).all():
                raise _Refused("not-finite", f"the model predicted non-finite {name} on frames "
                                             f"{part[0]}..{part[-1]}: nothing was written")
        yield ds


def _open(run: dict):
    """The store and the run's trajectory at the pinned version; refusals for a store or run not reachable."""
    from agi_data import open_store
    from agi_data.store.errors import StoreError
    from agi_data.store.location import StoreLocationError

    try:
        store = open_store(run["store_path"], create=False)
        if run["run_id"] not in store:
            raise _Refused("store-unreachable", f"the store at {run['store_path']} has no run {run['run_id']!r}")
        return store, store.trajectory(run["run_id"], version=run.get("version"))
    except (StoreError, StoreLocationError, OSError) as err:
        raise _Refused("store-unreachable", str(err)) from None


def _load(path: Path, device):
    from agi_data.electronic import ElectronicModel, ElectronicModelError

    try:
        return ElectronicModel.load(path, device=device)
    except ElectronicModelError as err:
        raise _Refused("model-unreadable", str(err)) from None


def run_prediction(model_path, run: dict, parameters: dict | None = None, *, model_uuid: str | None = None,
                   attrs: dict | None = None) -> dict:
    """Predict the lone-pair moments on frames of a store run and write them into it; returns what was done.

    ``run``: ``{"store_path", "run_id", "version"}`` (the store run reference of the agi workflows);
    ``parameters``: see the module docstring. The returned mapping has ``status`` (``ok`` or
    ``store-unreachable``, ``model-unreadable``, ``frames-out-of-range``, ``model-incompatible``,
    ``predictions-exist``, ``run-locked``, ``not-finite``), ``message``, and for ``ok`` the
    ``version`` written, ``frames`` ([start, stop)), ``n_frames``, ``model_sha256``, ``seconds`` and
    ``frames_per_s``.
    """
    from agi_data.analysis.moments import CONVENTION, NORMALISATION
    from agi_data.store.electronic import PredictionsExistError, check_prediction, write_predictions
    from agi_data.store.errors import RunLockedError, StoreValidationError

    p = dict(parameters or {})
    out = {"store_path": str(run["store_path"]), "run_id": run["run_id"], "source_run_version": run.get("version")}
    t0 = time.perf_counter()
    try:
        unknown = sorted(set(p) - set(PARAMETERS))
        if unknown:
            raise _Refused("invalid-parameters", f"unknown parameters {unknown}: allowed are {list(PARAMETERS)}")
        store, traj = _open(run)
        out["source_run_version"] = traj.attrs["store_version"]
        frames = frame_range(p.get("frames"), traj.sizes["time"], run["run_id"])
        model = _load(Path(model_path), p.get("device"))  # torch is imported from here on, not for the refusals above
        from agi_data.electronic import ElectronicModelError

        if p.get("threads"):
            import torch

            torch.set_num_threads(int(p["threads"]))
        try:
            model.check_run(traj, species=p.get("species"), cutoff=p.get("cutoff"))
        except ElectronicModelError as err:
            raise _Refused("model-incompatible", str(err)) from None
        sha = str(model.config.get("sha256", ""))
        handle = store.handle(run["run_id"])
        replace = bool(p.get("replace", False))
        try:
            check_prediction(handle, frames, sha, replace=replace)
        except PredictionsExistError as err:
            raise _Refused("predictions-exist", str(err)) from None
        except StoreValidationError as err:
            raise _Refused("frames-out-of-range", str(err)) from None
        block = int(p.get("block_frames") or model.config["settings"]["block_frames"])
        group_attrs = {
            "model_uuid": model_uuid, "species": model.species, "cutoff_A": float(model.cutoff),
            "elements": list(model.elements), "convention": CONVENTION, "normalisation": NORMALISATION,
            "source": "model",
            "source_run_version": out["source_run_version"], "block_frames": block,
            "engine": "agi_data.electronic (e3nn equivariant network), agi.electronic_predict",
            **(attrs or {})}
        try:
            version = write_predictions(handle, frames, _blocks(model, traj, frames, block), model_sha256=sha,
                                        attrs={k: v for k, v in group_attrs.items() if v is not None},
                                        replace=replace)
        except PredictionsExistError as err:  # another job wrote predictions since the check
            raise _Refused("predictions-exist", str(err)) from None
        except RunLockedError as err:
            raise _Refused("run-locked", str(err)) from None
        seconds = time.perf_counter() - t0
        out.update(status="ok", message="", version=version, frames=[int(frames[0]), int(frames[-1]) + 1],
                   n_frames=int(frames.size), model_sha256=sha, model_uuid=model_uuid, species=model.species,
                   cutoff_A=float(model.cutoff), replaced=replace, seconds=seconds,
                   frames_per_s=frames.size / seconds if seconds > 0 else math.inf)
    except _Refused as err:
        out.update(status=err.status, message=str(err))
    return out


def main(argv: list[str] | None = None) -> int:
    """Entry point of the job: read the settings file, predict, write ``result.json``; exit 0 unless it crashed."""
    job, workdir = read_settings(argv)
    out = run_prediction(workdir / job["model"], job["run"], job.get("parameters"), model_uuid=job.get("model_uuid"),
                         attrs=job.get("attrs"))
    print(f"agi electronic predict job: {out['status']} {out.get('message', '')}".rstrip(), flush=True)
    write_result(workdir, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
