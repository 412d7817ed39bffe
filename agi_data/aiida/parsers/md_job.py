"""Parser of ``agi.md_job``: the job's ``result.json`` checked against the store run it wrote.

A job with no ``result.json`` was stopped before it finished (scheduler wall time, ``scancel``, a
node failure): the frames it committed are in the store, so the parser reports
``ERROR_MD_INTERRUPTED`` with the number of stored frames and the WorkChain continues the run.
A finished job is checked against the store: the run exists at the version the job reported,
holds the frames it reported, and its time axis is contiguous (no gap, no duplicate frame).
"""

from __future__ import annotations

import json

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from agi_data.mdjob import RESULT_FILE


def stored_frames(store_path: str, run_id: str) -> tuple[int, str | None]:
    """(frames, version) of a run; (0, None) when it (or its store) does not exist yet. Creates nothing."""
    from pathlib import Path

    from agi_data import open_store

    if "://" not in str(store_path) and not Path(store_path).is_dir():
        return 0, None
    store = open_store(store_path)
    if run_id not in store.run_ids():
        return 0, None
    return int(store.trajectory(run_id).sizes["time"]), store.version(run_id)


def check_time_axis(time_ps: np.ndarray, dt_ps: float) -> str | None:
    """None when ``time_ps`` advances by exactly one frame interval everywhere, else what is wrong."""
    if time_ps.size < 2:
        return None
    steps = np.diff(time_ps) / dt_ps
    bad = np.flatnonzero(np.abs(steps - 1.0) > 1e-6)
    if bad.size:
        i = int(bad[0])
        kind = "a duplicate frame" if steps[i] < 0.5 else "a gap"
        return f"{kind} after frame {i} (t = {time_ps[i]:.6g} ps → {time_ps[i + 1]:.6g} ps)"
    return None


class MDJobParser(Parser):
    def parse(self, **kwargs):
        from agi_data import open_store

        params = self.node.inputs.parameters.get_dict()
        target = self.node.inputs.store.get_dict()
        n_total = int(params["md"]["n_steps"]) // int(params["md"]["stride"]) + 1
        try:
            text = self.retrieved.base.repository.get_object_content(RESULT_FILE)
        except FileNotFoundError:
            n_frames, _ = stored_frames(target["store_path"], target["run_id"])
            return self.exit_codes.ERROR_MD_INTERRUPTED.format(n_frames=n_frames, n_total=n_total)
        result = json.loads(text)
        if result["status"] == "store-unreachable":
            return self.exit_codes.ERROR_STORE_UNREACHABLE.format(path=target["store_path"], message=result["message"])
        if result["status"] == "run-locked":
            return self.exit_codes.ERROR_RUN_LOCKED.format(message=result["message"])
        store = open_store(target["store_path"])
        ds = store.trajectory(target["run_id"])
        problem = None
        if ds.sizes["time"] != result["n_frames"]:
            problem = f"the store holds {ds.sizes['time']} frames, the job reported {result['n_frames']}"
        elif store.version(target["run_id"]) != result["version"]:
            problem = f"the run's version is {store.version(target['run_id'])}, the job reported {result['version']}"
        else:
            problem = check_time_axis(ds["time"].values, float(ds.attrs["timestep_ps"]))
        if problem:
            return self.exit_codes.ERROR_RUN_INCONSISTENT.format(message=problem)
        self.out("run", orm.Dict(result))
        if result["status"] == "blow-up":
            return self.exit_codes.ERROR_MD_BLOW_UP.format(message=result["message"])
        return None
