"""``agi.electronic_train``: train the lone-pair model as a job, from a materialised training-data file.

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
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

DATA_FILE = "training_data.npz"
PARAMS_FILE = "parameters.json"
MODEL_FILE = "model.pt"
METRICS_FILE = "metrics.json"
STDOUT = "electronic-train.out"
_ALLOWED = {"species", "cutoff", "seed", "epochs", "learning_rate", "batch_frames", "channels", "n_layers", "n_basis",
            "radial_hidden", "validation_fraction", "dipole_weight", "dtype", "device", "block_frames", "threads"}


def _check_parameters(value, _ctx):
    unknown = sorted(set(value.get_dict()) - _ALLOWED)
    if unknown:
        return f"unknown parameters {unknown}: allowed are {sorted(_ALLOWED)}"
    return None


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
        spec.inputs["metadata"]["options"]["parser_name"].default = "agi.electronic_train"
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.output("model", valid_type=orm.SinglefileData, help="the trained model (ElectronicModel.save)")
        spec.output("metrics", valid_type=orm.Dict, help="held-out errors and frame counts (model.metrics)")
        spec.exit_code(300, "ERROR_MISSING_OUTPUT", message="the training wrote no {what}: see electronic-train.out")
        spec.exit_code(311, "ERROR_NOT_FINITE", message="the training diverged (non-finite held-out errors)")

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
