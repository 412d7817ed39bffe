"""``agi.nequip_train``: a CalcJob that trains an Allegro model with ``nequip-train`` on a ReferenceDataset.

nequip 0.19 + nequip-allegro 0.8.3 (hydra configs; never the unrelated PyPI
package ``allegro``). The CalcJob splits the dataset (seeded) into training,
validation and held-out test structures, writes them as extended XYZ and
writes the training config built by :func:`build_config` from the resolved
``train`` protocol (agi_data/protocols/train.yaml). It runs ``nequip-train -cd . -cn
config``, then packages the best checkpoint with ``nequip-package build``
(in the same directory: packaging reads the training config and data), and
retrieves the packaged model, the checkpoint, the per-epoch metrics
(Lightning CSV logger) and the test-set predictions, which the
``agi.nequip_train`` parser turns into nodes.

The code may be the ``nequip-train`` console script or a Python interpreter
of an environment with nequip (then ``-m nequip.scripts.train`` is run):
:func:`ensure_nequip_code` registers the interpreter, which is immune to
console scripts whose ``#!`` line points at another environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import yaml
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from ...elements import symbols
from ..data import ReferenceDataset
from ..exit_codes import define_exit_codes

OUTPUT_DIR = "out"
#: files retrieved from the run directory (AiiDA stores them under their base names)
CHECKPOINT = f"{OUTPUT_DIR}/best.ckpt"
METRICS = f"{OUTPUT_DIR}/metrics/version_0/metrics.csv"
TEST_PREDICTIONS = f"{OUTPUT_DIR}/test_dataset0.xyz"
TRAIN_LOG = f"{OUTPUT_DIR}/train.log"
PACKAGE = f"{OUTPUT_DIR}/model.nequip.zip"
SPLIT_FILE = "split.json"
STDOUT = "nequip-train.out"


class TrainInputError(ValueError):
    """The dataset or the training parameters cannot make a training run."""


def split_indices(n: int, fractions: dict, seed: int) -> dict[str, list[int]]:
    """Seeded split of ``n`` structures into train/val/test (each at least one structure)."""
    if n < 3:
        raise TrainInputError(f"training needs at least 3 structures (train, validation, test); the dataset has {n}")
    f_val, f_test = float(fractions.get("val", 0.1)), float(fractions.get("test", 0.1))
    if not (0 < f_val < 1 and 0 < f_test < 1 and f_val + f_test < 1):
        raise TrainInputError(f"split fractions must be in (0, 1) with val + test < 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(f_val * n)))
    n_test = max(1, int(round(f_test * n)))
    if n_val + n_test >= n:
        raise TrainInputError(f"{n} structures are too few for the split {fractions}")
    return {"test": sorted(perm[:n_test].tolist()), "val": sorted(perm[n_test:n_test + n_val].tolist()),
            "train": sorted(perm[n_test + n_val:].tolist())}


def build_config(params: dict, type_names: list[str]) -> dict:
    """The ``nequip-train`` config (a dict, written as YAML) for an Allegro model.

    ``params``: the resolved ``train`` protocol: ``model`` (r_max, l_max,
    num_layers, num_scalar_features, num_tensor_features, mlp widths/depths,
    num_bessels, model_dtype) and ``training`` (max_epochs, batch_size,
    learning_rate, loss_coeffs, ema, seed).
    """
    m, t = params["model"], params["training"]
    out = "${hydra:runtime.output_dir}"
    loader = {"_target_": "torch.utils.data.DataLoader", "batch_size": int(t["batch_size"])}
    module = "nequip.train.EMALightningModule" if t.get("ema") else "nequip.train.NequIPLightningModule"
    training_module = {
        "_target_": module,
        "loss": {"_target_": "nequip.train.EnergyForceLoss", "per_atom_energy": True,
                 "coeffs": {"total_energy": float(t["loss_coeffs"]["energy"]),
                            "forces": float(t["loss_coeffs"]["forces"])}},
        "val_metrics": {"_target_": "nequip.train.EnergyForceMetrics",
                        "coeffs": {"per_atom_energy_mae": 1.0, "forces_mae": 1.0}},
        "test_metrics": "${training_module.val_metrics}",
        "optimizer": {"_target_": "torch.optim.Adam", "lr": float(t["learning_rate"])},
        "model": {
            "_target_": "allegro.model.AllegroModel",
            "seed": int(t["seed"]),
            "model_dtype": str(m["model_dtype"]),
            "type_names": "${model_type_names}",
            "r_max": "${cutoff_radius}",
            "radial_chemical_embed": {"_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
                                      "num_bessels": int(m["num_bessels"]), "bessel_trainable": False,
                                      "polynomial_cutoff_p": 6},
            "radial_chemical_embed_dim": int(m["num_scalar_features"]),
            "scalar_embed_mlp_hidden_layers_depth": int(m["mlp_depth"]),
            "scalar_embed_mlp_hidden_layers_width": int(m["mlp_width"]),
            "l_max": int(m["l_max"]),
            "num_layers": int(m["num_layers"]),
            "num_scalar_features": int(m["num_scalar_features"]),
            "num_tensor_features": int(m["num_tensor_features"]),
            "allegro_mlp_hidden_layers_depth": int(m["mlp_depth"]),
            "allegro_mlp_hidden_layers_width": int(m["mlp_width"]),
            "readout_mlp_hidden_layers_depth": 1,
            "readout_mlp_hidden_layers_width": max(8, int(m["mlp_width"]) // 2),
            "avg_num_neighbors": "${training_data_stats:num_neighbors_mean}",
            "per_type_energy_shifts": "${training_data_stats:per_atom_energy_mean}",
            "per_type_energy_scales": "${training_data_stats:forces_rms}",
        },
    }
    if t.get("ema"):
        training_module["ema_decay"] = float(t["ema_decay"])
    return {
        "run": ["train", "test"],
        "cutoff_radius": float(m["r_max"]),
        "chemical_symbols": list(type_names),
        "model_type_names": "${chemical_symbols}",
        "hydra": {"run": {"dir": OUTPUT_DIR}},
        "data": {
            "_target_": "nequip.data.datamodule.ASEDataModule",
            "seed": int(t["seed"]),
            "train_file_path": "train.xyz", "val_file_path": "val.xyz", "test_file_path": "test.xyz",
            "transforms": [
                {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": "${cutoff_radius}"},
                {"_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                 "model_type_names": "${model_type_names}",
                 "chemical_species_to_atom_type_map": {s: s for s in type_names}},
            ],
            "train_dataloader": {**loader, "shuffle": True},
            "val_dataloader": loader,
            "test_dataloader": loader,
            "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager",
                              "type_names": "${model_type_names}"},
        },
        "trainer": {
            "_target_": "lightning.Trainer",
            "max_epochs": int(t["max_epochs"]),
            "check_val_every_n_epoch": 1,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "accelerator": str(params.get("device", "cpu")),
            "logger": {"_target_": "lightning.pytorch.loggers.CSVLogger", "save_dir": out, "name": "metrics",
                       "version": 0},
            "callbacks": [
                {"_target_": "lightning.pytorch.callbacks.ModelCheckpoint", "monitor": "val0_epoch/weighted_sum",
                 "dirpath": out, "filename": "best", "save_top_k": 1},
                {"_target_": "nequip.train.callbacks.TestTimeXYZFileWriter", "out_file": f"{out}/test",
                 "output_fields_from_original_dataset": ["total_energy", "forces"],
                 "chemical_symbols": "${chemical_symbols}"},
            ],
        },
        "training_module": training_module,
    }


class NequipTrainCalculation(CalcJob):
    """Train an Allegro model with ``nequip-train`` on a ReferenceDataset."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=ReferenceDataset, help="reference structures with energies and forces")
        spec.input("parameters", valid_type=orm.Dict,
                   help="the resolved `train` protocol: model, training, split (agi_data/protocols/train.yaml)")
        spec.inputs["metadata"]["options"]["parser_name"].default = "agi.nequip_train"
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1,
                                                                   "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.output("model", valid_type=orm.SinglefileData,
                    help="the packaged model (nequip-package build of the best checkpoint): model.nequip.zip")
        spec.output("checkpoint", valid_type=orm.SinglefileData, help="the best checkpoint (lowest validation loss)")
        spec.output("training_curves", valid_type=orm.ArrayData,
                    help="per-epoch training loss and validation errors")
        spec.output("test_metrics", valid_type=orm.Dict,
                    help="held-out energy and force errors, and the zero-force baseline")
        define_exit_codes(spec, "ERROR_MISSING_OUTPUT", "ERROR_TRAINING_FAILED", "ERROR_NOT_FINITE")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict()
        dataset = self.inputs.dataset
        atoms = dataset.to_atoms()
        type_names = symbols(dataset.species)  # the model's types are the elements, by atomic number
        split = split_indices(len(atoms), params["split"], int(params["training"]["seed"]))
        from ase.io import write

        for name, idx in split.items():
            with folder.open(f"{name}.xyz", "w") as fh:
                write(fh, [atoms[i] for i in idx], format="extxyz")
        with folder.open("config.yaml", "w") as fh:
            yaml.safe_dump(build_config(params, type_names), fh, sort_keys=False)
        with folder.open(SPLIT_FILE, "w") as fh:
            json.dump({**split, "type_names": type_names}, fh)

        executable = Path(str(self.inputs.code.get_executable()))
        via_python = executable.name.startswith("python")
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = (["-m", "nequip.scripts.train"] if via_python else []) + ["-cd", ".", "-cn", "config"]
        codeinfo.stdout_name = STDOUT
        codeinfo.join_files = True
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        package = (f"'{executable}' -m nequip.scripts.package" if via_python
                   else f"'{executable.parent / 'nequip-package'}'")
        calcinfo.append_text = (f"if [ -f {CHECKPOINT} ]; then {package} build {CHECKPOINT} {PACKAGE} "
                                f">> {STDOUT} 2>&1; fi")
        calcinfo.retrieve_list = [CHECKPOINT, PACKAGE, METRICS, TEST_PREDICTIONS, TRAIN_LOG, SPLIT_FILE, "config.yaml",
                                  STDOUT]
        return calcinfo


def nequip_command(script: str) -> list[str]:
    """The command of a nequip script (``train``, ``package``, ``compile``) with this Python: ``python -m ...``."""
    try:
        import nequip  # noqa: F401
    except ImportError:
        from agi_data.md.errors import EngineNotFoundError

        raise EngineNotFoundError("nequip is not installed: pip install 'nequip==0.19.*' nequip-allegro==0.8.3 "
                                  "(never the unrelated PyPI package 'allegro')") from None
    return [sys.executable, "-m", f"nequip.scripts.{script}"]


def ensure_nequip_code(computer=None, label: str = "nequip-train"):
    """The ``nequip-train@<computer>`` InstalledCode: this Python, running ``-m nequip.scripts.train``."""
    from ..setup import ensure_computer, ensure_python_code

    executable = nequip_command("train")[0]  # refuses clearly when nequip is missing
    import nequip

    return ensure_python_code(computer or ensure_computer(), label, "agi.nequip_train",
                              "python -m nequip.scripts.train (nequip + nequip-allegro) of the agi-data environment",
                              f"nequip {nequip.__version__}", executable=executable)
