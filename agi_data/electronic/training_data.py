"""The training data of the lone-pair model as one self-contained file, and the training job's entry point.

Wannier sets hold no positions, so a training job (``agi.electronic_train``,
possibly on another machine) gets the labelled frames materialised: for
every ``(traj, wannier)`` pair, the positions, cell, species and times of
the frames that carry centres, and the centres themselves, in one ``.npz``
(numpy arrays only, read with ``allow_pickle=False``)::

    python -m agi_data.electronic.training_data DATA.npz PARAMS.json MODEL.pt METRICS.json

trains with the keyword arguments of :func:`fit_electronic_model` in
``PARAMS.json`` and writes the model and its held-out metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from ..elements import symbols
from .errors import ElectronicModelError

__all__ = ["write_training_data", "read_training_data", "main"]

_KEYS = ("positions", "cell", "species", "time", "frame", "centres")


def write_training_data(pairs, path) -> Path:
    """Materialise the labelled frames of ``pairs`` (list of ``(traj, wannier)``) into ``path`` (.npz)."""
    arrays = {"n_pairs": np.array(len(pairs))}
    for k, (traj, wan) in enumerate(pairs):
        frames = np.asarray(wan["frame"].values, dtype=np.int64)
        cell = traj["cell"]
        cell = cell.isel(time=frames).values if "time" in cell.dims else np.broadcast_to(
            cell.values, (len(frames), 3, 3))
        arrays.update({
            f"{k}/positions": np.asarray(traj["positions"].isel(time=frames).values, dtype=np.float64),
            f"{k}/cell": np.asarray(cell, dtype=np.float64),
            f"{k}/species": np.asarray(traj["species"].values, dtype=np.int64),
            f"{k}/time": np.asarray(traj["time"].values, dtype=np.float64)[frames],
            f"{k}/frame": frames,
            f"{k}/centres": np.asarray(wan["centres"].transpose("frame", "wannier", "xyz").values, dtype=np.float64),
            f"{k}/run_id": np.array(str(traj.attrs.get("run_id", f"pair{k}"))),
        })
    path = Path(path)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def read_training_data(path) -> list[tuple[xr.Dataset, xr.Dataset]]:
    """The ``(traj, wannier)`` pairs of a file from :func:`write_training_data` (frames renumbered 0…n−1)."""
    from ..units import UNITS

    try:
        data = np.load(path, allow_pickle=False)
        n = int(data["n_pairs"])
        pairs = []
        for k in range(n):
            a = {key: data[f"{k}/{key}"] for key in _KEYS}
            m = len(a["frame"])
            sym = symbols(a["species"])
            traj = xr.Dataset(
                {"positions": (("time", "atom", "xyz"), a["positions"], {"units": UNITS["positions"]}),
                 "cell": (("time", "vec", "xyz"), a["cell"], {"units": UNITS["cell"]})},
                coords={"time": ("time", a["time"], {"units": "ps"}), "species": ("atom", a["species"]),
                        "symbol": ("atom", np.array(sym)), "xyz": ["x", "y", "z"], "vec": ["a", "b", "c"]},
                attrs={"run_id": str(data[f"{k}/run_id"]), "source_frames": a["frame"].tolist()})
            wan = xr.Dataset({"centres": (("frame", "wannier", "xyz"), a["centres"], {"units": UNITS["centres"]})},
                             coords={"frame": np.arange(m), "frame_time": ("frame", a["time"], {"units": "ps"}),
                                     "xyz": ["x", "y", "z"]})
            pairs.append((traj, wan))
        return pairs
    except (KeyError, ValueError, OSError, EOFError) as err:
        raise ElectronicModelError(f"{path} is not a readable training-data file ({err}): "
                                   "write it again with write_training_data") from None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    data, params, model_path, metrics_path = argv
    from .model import fit_electronic_model

    kwargs = json.loads(Path(params).read_text())
    model = fit_electronic_model(read_training_data(data), **kwargs)
    model.save(model_path)
    metrics = {k: v for k, v in model.metrics.items()}
    metrics["sha256"] = model.config["sha256"]
    Path(metrics_path).write_text(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
