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

>>> builder = TrainWorkChain.get_builder_from_protocol(None, dataset, protocol="fast")   # default nequip code
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
from ..protocols import ProtocolMixin
from . import builder, common


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


def _legacy_call(cls, args, kwargs):
    """The previous release's ``get_builder_from_protocol(dataset, protocol=None, overrides=None, code=None)``."""
    if not (args and isinstance(args[0], ReferenceDataset)):
        return args, kwargs, None
    for name, value in zip(("dataset", "protocol", "overrides"), args):
        if name in kwargs:
            raise TypeError(f"{name} is given twice")
        kwargs[name] = value
    return (), kwargs, "call it as get_builder_from_protocol(code, dataset, protocol=..., overrides=...)"


class TrainWorkChain(ProtocolMixin, WorkChain):
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
            cls.finalize,
        )
        define_exit_codes(spec, "ERROR_INVALID_INPUTS", "ERROR_CODE_NOT_FOUND", "ERROR_TRAINING_FAILED",
                          "ERROR_NOT_FINITE", "ERROR_MISSING_OUTPUT", "ERROR_PACKAGING_FAILED")

    _protocol_name = "train"

    @classmethod
    @builder.legacy_shim(_legacy_call)
    def get_builder_from_protocol(cls, code=None, dataset: ReferenceDataset | None = None, protocol: str | None = None,
                                  overrides: dict | None = None, options: dict | None = None):
        """A builder with the inputs of ``agi_data/protocols/train.yaml`` (``fast``, ``demo``, ``production``).

        :param code: the nequip-train code (a code node or its label; default: this Python's
            ``nequip-train@localhost``, registered on first use).
        :param dataset: the ReferenceDataset to train on (e.g. ``agi.reference``'s ``dataset`` output).
        :param options: scheduler options of the training job (see
            :func:`~agi_data.aiida.protocols.validate_options`).
        :raises BuilderInputError: on any bad input (a dataset too small for the split, …), before anything
            is stored or submitted.
        """
        params = builder.resolve_parameters("train", protocol, overrides, options)
        if not isinstance(dataset, ReferenceDataset):
            raise builder.BuilderInputError(f"dataset must be a ReferenceDataset (agi.reference's `dataset` output), "
                                            f"got {type(dataset).__name__}")
        why = validate_dataset(dataset, params)
        if why:
            raise builder.BuilderInputError(f"dataset (pk {dataset.pk}): {why}")
        device = str(params["device"])
        if device.split(":")[0] not in ("cpu", "cuda"):
            raise builder.BuilderInputError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        if params["model"]["model_dtype"] not in ("float32", "float64"):
            raise builder.BuilderInputError(f"model.model_dtype must be float32 or float64, got "
                                            f"{params['model']['model_dtype']!r}")
        new = cls.get_builder()
        new.dataset = dataset
        new.parameters = orm.Dict(params)
        new.code = ensure_nequip_code() if code is None else builder.resolve_code(code, "nequip-train", "code")
        new.metadata.label = f"agi.train ({params['protocol']})"
        return new

    def validate(self):
        why = validate_dataset(self.inputs.dataset, self.inputs.parameters.get_dict())
        if why:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message=why)
        return None

    def train(self):
        p = self.inputs.parameters.get_dict()
        inputs = {
            "code": self.inputs.code, "dataset": self.inputs.dataset, "parameters": self.inputs.parameters,
            "metadata": {"label": "nequip-train", "options": common.calcjob_options(p, serial=True)},
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

    def finalize(self):
        """The WorkChain, its model(s), checkpoint, curves and metrics in the Group ``agi/train/pk<N>``."""
        calc = self.ctx.train
        nodes = [calc.outputs[name] for name in ("model", "checkpoint", "training_curves", "test_metrics")]
        common.add_to_results_group(self, "train", None, nodes)
