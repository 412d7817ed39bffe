"""``agi.electronic_train`` parser: the model file and its held-out metrics."""

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
