"""``agi.electronic_train`` and ``agi.electronic_predict``: the lone-pair model trained and run as jobs.

Training
--------

Wannier sets hold no positions, so the job's input is a ``SinglefileData``
written by :func:`agi_data.electronic.training_data.write_training_data`
(positions, cells, species and centres of the labelled frames of every run)
plus the keyword arguments of :func:`agi_data.electronic.fit_electronic_model`
as a ``Dict``. The job runs ``python -m agi_data.electronic.training_data``
with the code's interpreter (an environment with agi-data, torch and e3nn;
it uses a GPU when the node has one) and the ``agi.electronic_train`` parser
returns the model file and its held-out metrics. Link the WannierSet nodes
the data file was made from as ``wannier_sets`` so the model's provenance
reaches the DFT frames it learned from.

Prediction
----------
``agi.electronic_predict`` runs ``python -m agi_data.predictjob job.json``
(:mod:`agi_data.predictjob`) with the code's interpreter: it loads the
``model`` (the ``model`` output of ``agi.electronic_train``), reads the store
run the ``run`` reference names (``{store_path, run_id, version}``, local or
``s3://``; positions at that version) a block of frames at a time, and writes
the predicted moments of every frame, or of ``parameters.frames`` =
[start, stop), into the run's ``electronic/`` group (:mod:`agi_data.store.electronic`):
one new store version, recorded by the ``predictions`` output together with
the store, run, frames and model. The store must be reachable from the node
the job runs on (a shared filesystem or an object store). Refusals, each a
named exit code and nothing written: the run holds another model's
predictions (``parameters.replace`` swaps them), the model cannot describe
the run (species, cutoff, unknown elements), the model file is corrupt, the
frames are outside the run.
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from ..exit_codes import define_exit_codes

DATA_FILE = "training_data.npz"
PARAMS_FILE = "parameters.json"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
STDOUT = "electronic-train.out"
_ALLOWED = {"species", "cutoff", "seed", "epochs", "learning_rate", "batch_frames", "channels", "n_layers", "n_basis",
            "radial_hidden", "validation_fraction", "dipole_weight", "head", "frame_weight", "frame_candidates",
            "dtype", "device", "block_frames", "threads"}


def _unknown_parameters(params: dict, allowed: set) -> str | None:
    unknown = sorted(set(params) - allowed)
    return f"unknown parameters {unknown}: allowed are {sorted(allowed)}" if unknown else None


def _one_python_process(spec, parser_name: str) -> None:
    """Defaults of a job that is one serial Python process of the code's interpreter, parsed by ``parser_name``."""
    options = spec.inputs["metadata"]["options"]
    options["parser_name"].default = parser_name
    options["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    options["withmpi"].default = False


def _check_parameters(value, _ctx):
    return _unknown_parameters(value.get_dict(), _ALLOWED)


class ElectronicTrainCalculation(CalcJob):
    """Train the e3nn lone-pair model (``fit_electronic_model``) on a materialised training-data file."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("training_data", valid_type=orm.SinglefileData,
                   help="labelled frames (write_training_data): positions, cells, species, Wannier centres")
        spec.input("parameters", valid_type=orm.Dict, validator=_check_parameters,
                   help="keyword arguments of fit_electronic_model (species, cutoff, seed, epochs, ...)")
        spec.input_namespace("wannier_sets", valid_type=orm.Data, required=False, dynamic=True,
                             help="the WannierSet nodes the training data was made from (provenance)")
        _one_python_process(spec, "agi.electronic_train")
        spec.output("model", valid_type=orm.SinglefileData, help="the trained model (ElectronicModel.save)")
        spec.output("metrics", valid_type=orm.Dict, help="held-out errors and frame counts (model.metrics)")
        define_exit_codes(spec, "ERROR_MISSING_OUTPUT", "ERROR_NOT_FINITE")

    def prepare_for_submission(self, folder):
        with folder.open(PARAMS_FILE, "w") as fh:
            json.dump(self.inputs.parameters.get_dict(), fh)
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", "agi_data.electronic.training_data", DATA_FILE, PARAMS_FILE, MODEL_FILE,
                                   METRICS_FILE]
        codeinfo.stdout_name = STDOUT
        codeinfo.join_files = True
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        data = self.inputs.training_data
        calcinfo.local_copy_list = [(data.uuid, data.filename, DATA_FILE)]
        calcinfo.retrieve_list = [MODEL_FILE, METRICS_FILE, STDOUT]
        return calcinfo


PREDICT_STDOUT = "electronic-predict.out"
_PREDICT_ALLOWED = {"frames", "replace", "block_frames", "species", "cutoff", "device", "threads"}


def _check_run(value, _ctx):
    missing = {"store_path", "run_id"} - set(value.get_dict())
    if missing:
        return f"the run reference needs {sorted(missing)}: give {{store_path, run_id[, version]}}"
    return None


def _check_predict_parameters(value, _ctx):
    p = value.get_dict()
    if (unknown := _unknown_parameters(p, _PREDICT_ALLOWED)) is not None:
        return unknown
    frames = p.get("frames")
    if frames is not None and not (isinstance(frames, list) and len(frames) == 2
                                   and all(isinstance(x, int) and not isinstance(x, bool) for x in frames)):
        return f"frames must be [start, stop) integers (or absent: every frame), got {frames!r}"
    return None


class ElectronicPredictCalculation(CalcJob):
    """Predict the lone-pair moments on frames of a store run with a trained model, writing them into the run."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("model", valid_type=orm.SinglefileData,
                   help="the trained model (the model output of agi.electronic_train)")
        spec.input("run", valid_type=orm.Dict, validator=_check_run,
                   help="store run {store_path, run_id, version}: the positions are read at that version")
        spec.input("parameters", valid_type=orm.Dict, required=False, validator=_check_predict_parameters,
                   help="frames [start, stop) (default all), replace, block_frames, species, cutoff, device, threads")
        _one_python_process(spec, "agi.electronic_predict")
        spec.output("predictions", valid_type=orm.Dict,
                    help="what was written: store_path, run_id, store_version, frames, model (sha256, uuid)")
        define_exit_codes(spec, "ERROR_INVALID_INPUTS", "ERROR_STORE_UNREACHABLE", "ERROR_RUN_LOCKED",
                          "ERROR_PREDICTIONS_EXIST", "ERROR_MODEL_INCOMPATIBLE", "ERROR_MODEL_UNREADABLE",
                          "ERROR_FRAMES_OUT_OF_RANGE", "ERROR_MISSING_OUTPUT", "ERROR_STORE_WRITE",
                          "ERROR_PREDICTION_NOT_FINITE")

    def prepare_for_submission(self, folder):
        from agi_data.predictjob import RESULT_FILE, SETTINGS_FILE

        model = self.inputs.model
        job = {"model": MODEL_FILE, "model_uuid": model.uuid, "run": self.inputs.run.get_dict(),
               "parameters": self.inputs.parameters.get_dict() if "parameters" in self.inputs else {},
               "attrs": {"provenance_uuid": self.node.uuid}}
        with folder.open(SETTINGS_FILE, "w") as fh:
            json.dump(job, fh, indent=1)
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", "agi_data.predictjob", SETTINGS_FILE]
        codeinfo.stdout_name = PREDICT_STDOUT
        codeinfo.join_files = True
        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(model.uuid, model.filename, MODEL_FILE)]
        calcinfo.retrieve_list = [RESULT_FILE, PREDICT_STDOUT, SETTINGS_FILE]
        return calcinfo


#: the code label of each electronic job on a computer
CODE_LABELS = {"agi.electronic_train": "agi-electronic-train", "agi.electronic_predict": "agi-electronic-predict"}


def ensure_electronic_code(plugin: str = "agi.electronic_predict", computer=None):
    """The ``agi-electronic-train@<computer>`` / ``agi-electronic-predict@<computer>`` code: this environment's Python.

    On a cluster, register the agi-data environment's Python of the cluster instead
    (``verdi code create core.code.installed --label agi-electronic-predict
    --default-calc-job-plugin agi.electronic_predict --filepath-executable .../bin/python ...``).
    """
    from agi_data._version import __version__

    from ..setup import ensure_computer, ensure_python_code

    if plugin not in CODE_LABELS:
        raise ValueError(f"plugin must be one of {sorted(CODE_LABELS)}, got {plugin!r}")
    return ensure_python_code(computer or ensure_computer(), CODE_LABELS[plugin], plugin,
                              f"python -m agi_data of the agi-data environment ({plugin})", f"agi-data {__version__}")
