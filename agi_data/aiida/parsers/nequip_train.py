"""``agi.nequip_train`` parser: packaged model, checkpoint, training curves, held-out errors of ``nequip-train``.

Held-out errors are computed here from the test-set predictions that
nequip's ``TestTimeXYZFileWriter`` wrote (model forces and energies next to
the reference ones), on structures the model never saw in training or
validation:

- force RMSE and MAE (eV/Å) over all force components;
- the zero-force baseline: the RMS of the reference force components, i.e.
  the RMSE of a model that predicts F = 0; ``force_rmse_over_zero_baseline``
  is their ratio (< 1 means the model beats predicting zero forces);
- energy RMSE and MAE per atom (eV/atom).
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import PurePosixPath

import numpy as np
from aiida import orm
from aiida.parsers import Parser

from ..calculations.nequip_train import CHECKPOINT, METRICS, PACKAGE, SPLIT_FILE, STDOUT, TEST_PREDICTIONS


def _base(path: str) -> str:
    """Retrieved files are stored under their base names."""
    return PurePosixPath(path).name


def test_errors(xyz_text: str) -> dict:
    """Held-out errors from nequip's test-prediction extended XYZ (see the module docstring)."""
    from ase.io import read

    frames = read(io.StringIO(xyz_text), index=":", format="extxyz")
    f_pred, f_ref, e_err = [], [], []
    for a in frames:
        f_pred.append(np.asarray(a.arrays["forces"] if "forces" in a.arrays else a.get_forces()))
        f_ref.append(np.asarray(a.arrays["original_dataset_forces"]))
        e_model = a.info["energy"] if "energy" in a.info else a.get_potential_energy()
        e_err.append((float(e_model) - float(a.info["original_dataset_energy"])) / len(a))
    fp, fr, de = np.concatenate(f_pred), np.concatenate(f_ref), np.array(e_err)
    rmse = float(np.sqrt(np.mean((fp - fr) ** 2)))
    zero = float(np.sqrt(np.mean(fr**2)))
    return {
        "n_test_structures": len(frames),
        "n_test_atoms": int(fr.shape[0]),
        "force_rmse_eV_per_A": rmse,
        "force_mae_eV_per_A": float(np.mean(np.abs(fp - fr))),
        "force_rms_reference_eV_per_A": zero,
        "force_rmse_over_zero_baseline": rmse / zero if zero > 0 else math.inf,
        "energy_rmse_eV_per_atom": float(np.sqrt(np.mean(de**2))),
        "energy_mae_eV_per_atom": float(np.mean(np.abs(de))),
    }


def training_curves(csv_text: str) -> dict[str, np.ndarray]:
    """Per-epoch curves from Lightning's CSV log: epoch, train loss, validation force RMSE and energy RMSE."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    curves: dict[str, dict[int, float]] = {"train_loss": {}, "val_forces_rmse": {}, "val_per_atom_energy_rmse": {}}
    keys = {"train_loss": "train_loss_epoch/weighted_sum", "val_forces_rmse": "val0_epoch/forces_rmse",
            "val_per_atom_energy_rmse": "val0_epoch/per_atom_energy_rmse"}
    for row in rows:
        if not row.get("epoch"):
            continue
        epoch = int(float(row["epoch"]))
        for name, key in keys.items():
            if row.get(key):
                curves[name][epoch] = float(row[key])
    epochs = sorted(set().union(*[c.keys() for c in curves.values()]))
    out = {"epoch": np.array(epochs, dtype=np.int64)}
    for name, c in curves.items():
        out[name] = np.array([c.get(e, np.nan) for e in epochs])
    return out


class NequipTrainParser(Parser):
    """Checkpoint → SinglefileData, metrics.csv → ArrayData, test predictions → Dict of held-out errors."""

    def parse(self, **kwargs):
        retrieved = self.retrieved
        names = set(retrieved.base.repository.list_object_names())
        exit_codes = self.node.process_class.exit_codes

        def content(path: str) -> str | None:
            try:
                return retrieved.base.repository.get_object_content(_base(path))
            except (FileNotFoundError, OSError):
                return None

        if _base(CHECKPOINT) not in names:
            log = content(STDOUT) or ""
            errors = [ln.strip() for ln in log.splitlines() if "Error" in ln or "error" in ln]
            tail = errors[-1] if errors else " | ".join([ln for ln in log.splitlines() if ln.strip()][-3:])
            return exit_codes.ERROR_TRAINING_FAILED.format(message=tail or "no output at all")
        with retrieved.base.repository.open(_base(CHECKPOINT), "rb") as fh:
            checkpoint = orm.SinglefileData(file=io.BytesIO(fh.read()), filename="best.ckpt")
        split = json.loads(content(SPLIT_FILE) or "{}")
        checkpoint.base.attributes.set("type_names", split.get("type_names"))
        self.out("checkpoint", checkpoint)
        if _base(PACKAGE) not in names:
            return exit_codes.ERROR_MISSING_OUTPUT.format(what="packaged model (nequip-package build failed)")
        with retrieved.base.repository.open(_base(PACKAGE), "rb") as fh:
            model = orm.SinglefileData(file=io.BytesIO(fh.read()), filename="model.nequip.zip")
        params = self.node.inputs.parameters.get_dict()
        model.base.attributes.set("type_names", split.get("type_names"))
        model.base.attributes.set("r_max_A", float(params["model"]["r_max"]))
        model.base.attributes.set("format", "nequip-package")
        self.out("model", model)

        metrics_text = content(METRICS)
        if metrics_text is None:
            return exit_codes.ERROR_MISSING_OUTPUT.format(what="metrics (out/metrics/version_0/metrics.csv)")
        curves = orm.ArrayData()
        for name, arr in training_curves(metrics_text).items():
            curves.set_array(name, arr)
        curves.base.attributes.set("units", {"train_loss": "weighted sum of MSEs", "val_forces_rmse": "eV/Å",
                                             "val_per_atom_energy_rmse": "eV/atom"})
        self.out("training_curves", curves)

        test_text = content(TEST_PREDICTIONS)
        if test_text is None:
            return exit_codes.ERROR_MISSING_OUTPUT.format(what="test predictions (out/test_dataset0.xyz)")
        errors = test_errors(test_text)
        errors["split"] = {k: split.get(k) for k in ("train", "val", "test")}
        errors["n_epochs"] = int(curves.get_array("epoch").max() + 1) if curves.get_array("epoch").size else 0
        self.out("test_metrics", orm.Dict(errors))
        if not all(math.isfinite(errors[k]) for k in ("force_rmse_eV_per_A", "energy_rmse_eV_per_atom")):
            return exit_codes.ERROR_NOT_FINITE
        return None
