"""``agi.train``: train an Allegro model on an ``agi.reference`` dataset, package (and compile) it.

Outline: validate the dataset → ``agi.nequip_train`` CalcJob (``nequip-train``,
then ``nequip-package build``: a ``.nequip.zip`` that any nequip integration
loads) → ``compile_model`` when the protocol asks
(``nequip-compile --mode aotinductor --target ase``; torch ≥ 2.10 refuses
TorchScript) → outputs, all linked to the dataset through the CalcJob:

- ``model``: the packaged model (SinglefileData; attributes ``type_names``,
  ``r_max_A``, ``format``);
- ``checkpoint``: the best checkpoint;
- ``compiled_model``: the AOTInductor model, when compiled;
- ``training_curves``: per-epoch training loss and validation errors;
- ``test_metrics``: held-out force and energy errors and the zero-force baseline.

>>> builder = TrainWorkChain.get_builder_from_protocol(dataset, protocol="fast")
>>> result = aiida.engine.run(builder)
>>> AseEngine.from_nequip_model(...)   # see agi_data.aiida.workflows.md
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain, calcfunction, if_

from ..calculations.nequip_train import (
    NequipTrainCalculation,
    TrainInputError,
    ensure_nequip_code,
    nequip_command,
    split_indices,
)
from ..data import ReferenceDataset
from ..exit_codes import define_exit_codes, name_of
from ..protocols import load_protocol


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {tail}")


@calcfunction
def compile_model(model: orm.SinglefileData, device: orm.Str) -> orm.SinglefileData:
    """``nequip-compile --mode aotinductor --target ase`` of a packaged model → ``model.nequip.pt2``."""
    with tempfile.TemporaryDirectory(prefix="agi-compile-") as tmp:
        tmp = Path(tmp)
        with model.open(mode="rb") as src:
            (tmp / "model.nequip.zip").write_bytes(src.read())
        _run([*nequip_command("compile"), "model.nequip.zip", "model.nequip.pt2", "--mode", "aotinductor",
              "--device", device.value, "--target", "ase"], tmp, "nequip-compile")
        node = orm.SinglefileData(file=tmp / "model.nequip.pt2", filename="model.nequip.pt2")
    for key in ("type_names", "r_max_A"):
        node.base.attributes.set(key, model.base.attributes.get(key))
    node.base.attributes.set("format", f"aotinductor-ase-{device.value}")
    return node


def validate_dataset(dataset: ReferenceDataset, parameters: dict) -> str | None:
    """Why the dataset cannot train a model with these parameters, or None."""
    try:
        split_indices(len(dataset), parameters["split"], int(parameters["training"]["seed"]))
    except TrainInputError as err:
        return str(err)
    return None


class TrainWorkChain(WorkChain):
    """nequip-train on a reference dataset → packaged Allegro model, training curves, held-out errors."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("dataset", valid_type=ReferenceDataset, help="DFT (or other) reference structures")
        spec.input("parameters", valid_type=orm.Dict, help="the resolved `train` protocol (agi_data/protocols/train.yaml)")
        spec.input("code", valid_type=orm.AbstractCode, help="the nequip-train code")
        spec.output("model", valid_type=orm.SinglefileData, help="the packaged model (.nequip.zip)")
        spec.output("checkpoint", valid_type=orm.SinglefileData, help="the best training checkpoint")
        spec.output("compiled_model", valid_type=orm.SinglefileData, required=False,
                    help="AOTInductor-compiled model for ASE (.nequip.pt2)")
        spec.output("training_curves", valid_type=orm.ArrayData)
        spec.output("test_metrics", valid_type=orm.Dict)
        spec.outline(
            cls.validate,
            cls.train,
            cls.inspect_train,
            if_(cls.should_compile)(cls.compile),
        )
        define_exit_codes(spec, "ERROR_INVALID_INPUTS", "ERROR_CODE_NOT_FOUND", "ERROR_TRAINING_FAILED",
                          "ERROR_NOT_FINITE", "ERROR_MISSING_OUTPUT", "ERROR_PACKAGING_FAILED")

    @classmethod
    def get_builder_from_protocol(cls, dataset: ReferenceDataset, protocol: str | None = None,
                                  overrides: dict | None = None, code=None):
        """A builder with the inputs of ``agi_data/protocols/train.yaml`` (``fast``, ``demo``, ``production``)."""
        params = load_protocol("train", protocol, overrides)
        builder = cls.get_builder()
        builder.dataset = dataset
        builder.parameters = orm.Dict(params)
        builder.code = code or ensure_nequip_code()
        return builder

    def validate(self):
        why = validate_dataset(self.inputs.dataset, self.inputs.parameters.get_dict())
        if why:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message=why)
        return None

    def train(self):
        p = self.inputs.parameters.get_dict()
        inputs = {
            "code": self.inputs.code, "dataset": self.inputs.dataset, "parameters": self.inputs.parameters,
            "metadata": {"label": "nequip-train", "options": {
                "resources": dict(p["resources"]), "max_wallclock_seconds": int(p["max_wallclock_seconds"]),
                "withmpi": False}},
        }
        return ToContext(train=self.submit(NequipTrainCalculation, **inputs))

    def inspect_train(self):
        calc = self.ctx.train
        if not calc.is_finished_ok:
            name = name_of(calc.exit_status)  # the CalcJob's own failure, under its name, when it has one
            name = name if name in self.exit_codes else "ERROR_TRAINING_FAILED"
            code = self.exit_codes[name].format(message=f"[{calc.exit_status}] {calc.exit_message or calc.process_state}",
                                                what="output")
            return ExitCode(code.status, f"{code.message} (pk {calc.pk})")
        for name in ("model", "checkpoint", "training_curves", "test_metrics"):
            self.out(name, calc.outputs[name])
        self.ctx.model = calc.outputs.model
        m = calc.outputs.test_metrics
        self.report(f"held-out force RMSE {m['force_rmse_eV_per_A']:.4f} eV/Å "
                    f"({m['force_rmse_over_zero_baseline']:.2f} of the zero-force baseline), energy RMSE "
                    f"{1000 * m['energy_rmse_eV_per_atom']:.2f} meV/atom")
        return None

    def should_compile(self):
        return bool(self.inputs.parameters["compile"])

    def compile(self):
        try:
            compiled = compile_model(self.ctx.model, orm.Str(self.inputs.parameters["device"]))
        except Exception as err:  # noqa: BLE001
            return self.exit_codes.ERROR_PACKAGING_FAILED.format(message=str(err))
        self.out("compiled_model", compiled)
        return None
