"""Parsers of ``agi.electronic_train`` (the model file, its held-out metrics) and ``agi.electronic_predict``."""

from __future__ import annotations

import json
import math

from aiida import orm
from aiida.parsers import Parser

from ..calculations.electronic import METRICS_FILE, MODEL_FILE


class ElectronicTrainParser(Parser):
    """Attach ``model`` (SinglefileData) and ``metrics`` (Dict); refuse a diverged training."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = retrieved.base.repository.list_object_names()
        for name, what in ((MODEL_FILE, "model file"), (METRICS_FILE, "metrics")):
            if name not in names:
                return self.exit_codes.ERROR_MISSING_OUTPUT.format(what=what)
        metrics = json.loads(retrieved.base.repository.get_object_content(METRICS_FILE))
        with retrieved.base.repository.open(MODEL_FILE, "rb") as fh:
            self.out("model", orm.SinglefileData(fh, filename=MODEL_FILE))
        self.out("metrics", orm.Dict(metrics))
        if not all(math.isfinite(metrics[k]) for k in ("rotor_rmse", "dipole_rmse")):
            return self.exit_codes.ERROR_NOT_FINITE
        return None


#: the prediction job's refusals (``result.json`` status) and their exit codes
_REFUSALS = {"run-locked": "ERROR_RUN_LOCKED", "predictions-exist": "ERROR_PREDICTIONS_EXIST",
             "model-incompatible": "ERROR_MODEL_INCOMPATIBLE", "model-unreadable": "ERROR_MODEL_UNREADABLE",
             "frames-out-of-range": "ERROR_FRAMES_OUT_OF_RANGE", "not-finite": "ERROR_PREDICTION_NOT_FINITE",
             "invalid-parameters": "ERROR_INVALID_INPUTS"}


def _check_written(result: dict) -> str | None:
    """None when the store holds, at the version the job reported, this model's predictions of its frames."""
    import numpy as np

    from agi_data import open_store

    try:
        ds = open_store(result["store_path"], create=False).electronic(result["run_id"], version=result["version"])
    except Exception as err:  # noqa: BLE001 - any failure to read back is the finding
        return f"the predictions cannot be read back at version {result['version']}: {err}"
    if ds.attrs.get("model_sha256") != result["model_sha256"]:
        return f"the run holds predictions of model {ds.attrs.get('model_sha256')}, the job reported {result['model_sha256']}"
    start, stop = result["frames"]
    missing = np.setdiff1d(np.arange(start, stop), ds["frame"].values)
    if missing.size:
        return f"frames {missing[:5].tolist()} of [{start}, {stop}) are not in the stored predictions"
    return None


class ElectronicPredictParser(Parser):
    """Attach ``predictions`` (store, run, version, frames, model) after checking the store holds them."""

    def parse(self, **kwargs):
        from agi_data.predictjob import RESULT_FILE

        try:
            result = json.loads(self.retrieved.base.repository.get_object_content(RESULT_FILE))
        except FileNotFoundError:
            return self.exit_codes.ERROR_MISSING_OUTPUT.format(what=f"{RESULT_FILE} (the job stopped before it ended)")
        status = result["status"]
        if status == "store-unreachable":
            return self.exit_codes.ERROR_STORE_UNREACHABLE.format(path=result["store_path"], message=result["message"])
        if status in _REFUSALS:
            return getattr(self.exit_codes, _REFUSALS[status]).format(message=result["message"])
        problem = _check_written(result)
        if problem:
            return self.exit_codes.ERROR_STORE_WRITE.format(message=problem)
        record = {k: result[k] for k in ("store_path", "run_id", "frames", "n_frames", "model_sha256", "model_uuid",
                                         "species", "cutoff_A", "replaced", "source_run_version", "seconds",
                                         "frames_per_s")}
        record["store_version"] = result["version"]
        self.out("predictions", orm.Dict(record))
        return None
