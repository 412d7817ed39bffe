"""``agi.md_job``: the MD of ``agi.md`` as a job on any AiiDA computer (``core.direct``, ``core.slurm``, …).

The job runs ``python -m agi_data.mdjob job.json`` (:mod:`agi_data.mdjob`) with the Python of
the agi-data environment on that computer (the ``agi-md@<computer>`` code, :func:`ensure_md_code`).
It writes its frames straight into the store at ``store.store_path`` — a path the job's node must
reach (a shared filesystem) — and leaves ``result.json``, which the ``agi.md_job`` parser reads.
The job never starts a WorkChain of its own and needs no AiiDA profile.
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.engine import CalcJob

from agi_data.mdjob import RESULT_FILE, SETTINGS_FILE

from ..exit_codes import define_exit_codes

STDOUT = "md.log"
STRUCTURE_FILE = "structure.extxyz"


class MDJobCalculation(CalcJob):
    """MD of a resolved ``md`` protocol, streamed into a store run, as a scheduler job."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="the starting structure (periodic)")
        spec.input("model", valid_type=orm.SinglefileData, required=False, help="a trained Allegro model file")
        spec.input("force_field", valid_type=orm.Str, required=False, help="a classical force-field name")
        spec.input("parameters", valid_type=orm.Dict, help="the resolved `md` protocol")
        spec.input("store", valid_type=orm.Dict, help="{store_path, run_id}: where the job writes its frames")
        spec.input("attrs", valid_type=orm.Dict, required=False, help="extra run attributes (provenance UUIDs)")
        spec.inputs["metadata"]["options"]["parser_name"].default = "agi.md_job"
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}
        spec.inputs["metadata"]["options"]["withmpi"].default = False
        spec.output("run", valid_type=orm.Dict, help="the store run written: path, id, version, frames, timings")
        define_exit_codes(spec, "ERROR_STORE_UNREACHABLE", "ERROR_RUN_LOCKED", "ERROR_MD_BLOW_UP",
                          "ERROR_MD_INTERRUPTED", "ERROR_RUN_INCONSISTENT")

    def prepare_for_submission(self, folder):
        from ase.io import write

        potential = ({"force_field": self.inputs.force_field.value} if "force_field" in self.inputs
                     else {"model": self.inputs.model.filename, "uuid": self.inputs.model.uuid})
        with folder.open(STRUCTURE_FILE, "w") as fh:
            write(fh, self.inputs.structure.get_ase(), format="extxyz")
        job = {"structure": STRUCTURE_FILE, "potential": potential, "parameters": self.inputs.parameters.get_dict(),
               "store": self.inputs.store.get_dict(),
               "attrs": {**(self.inputs.attrs.get_dict() if "attrs" in self.inputs else {}),
                         "provenance_calc_uuid": self.node.uuid}}
        with folder.open(SETTINGS_FILE, "w") as fh:
            json.dump(job, fh, indent=1)
        calcinfo = CalcInfo()
        if "model" in self.inputs:
            calcinfo.local_copy_list = [(self.inputs.model.uuid, self.inputs.model.filename,
                                         self.inputs.model.filename)]
        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = ["-m", "agi_data.mdjob", SETTINGS_FILE]
        codeinfo.stdout_name = STDOUT
        codeinfo.join_files = True
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [RESULT_FILE, STDOUT, SETTINGS_FILE]
        return calcinfo


def ensure_md_code(computer=None, label: str = "agi-md"):
    """The ``agi-md@<computer>`` InstalledCode: this environment's Python, running ``-m agi_data.mdjob``.

    On a cluster, register the agi-data environment's Python of the cluster instead
    (``verdi code create core.code.installed --label agi-md --default-calc-job-plugin agi.md_job ...``).
    """
    from agi_data._version import __version__

    from ..setup import ensure_computer, ensure_python_code

    return ensure_python_code(computer or ensure_computer(), label, "agi.md_job",
                              "python -m agi_data.mdjob of the agi-data environment", f"agi-data {__version__}")
