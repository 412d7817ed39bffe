"""``agi.md_base``: the ``agi.md_job`` CalcJob with restarts, as aiida-quantumespresso's PwBaseWorkChain.

A job that ends before its run is complete — the scheduler's wall time, ``scancel``, a node
failure, or any end that left no ``result.json`` — is submitted again with the same inputs: the
new job continues the store run from its last committed frame (:func:`agi_data.md.run_md` finds
it), so the finished run has no gap and no duplicate frame. A restart that added no frame counts
against the run; after two such restarts the WorkChain stops with ``ERROR_NO_PROGRESS`` rather
than looping. A blow-up, an unreachable store or an inconsistent run are not restarted.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import BaseRestartWorkChain, ProcessHandlerReport, process_handler, while_

from ..calculations.md_job import MDJobCalculation
from ..exit_codes import define_exit_codes
from ..parsers.md_job import stored_frames


class MDBaseWorkChain(BaseRestartWorkChain):
    """Run ``agi.md_job`` until its store run is complete, continuing interrupted jobs."""

    _process_class = MDJobCalculation

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.expose_inputs(MDJobCalculation, namespace="md")
        spec.expose_outputs(MDJobCalculation)
        spec.outline(cls.setup, while_(cls.should_run_process)(cls.run_process, cls.inspect_process), cls.results)
        define_exit_codes(spec, "ERROR_MD_BLOW_UP", "ERROR_STORE_UNREACHABLE", "ERROR_RUN_LOCKED",
                          "ERROR_NO_PROGRESS")

    def setup(self):
        super().setup()
        self.ctx.inputs = AttributeDict(self.exposed_inputs(MDJobCalculation, "md"))
        self.ctx.stalled = 0
        self.ctx.frames_before = self._frames()

    def _frames(self) -> int:
        target = self.ctx.inputs.store.get_dict()
        return stored_frames(target["store_path"], target["run_id"])[0]

    @process_handler(priority=600, exit_codes=[
        MDJobCalculation.exit_codes.ERROR_MD_INTERRUPTED,
        MDJobCalculation.exit_codes.ERROR_SCHEDULER_OUT_OF_WALLTIME,
        MDJobCalculation.exit_codes.ERROR_SCHEDULER_NODE_FAILURE,
    ])
    def handle_interrupted(self, node):
        """Continue the run from its last stored frame: submit the same job again."""
        now = self._frames()
        gained = now - self.ctx.frames_before
        self.ctx.frames_before = now
        self.ctx.stalled = 0 if gained > 0 else self.ctx.stalled + 1
        if self.ctx.stalled >= 2:
            return ProcessHandlerReport(True, self.exit_codes.ERROR_NO_PROGRESS.format(n_frames=now))
        self.report(f"{node.process_label}<{node.pk}> ended early ({node.exit_message}); {now} frames stored "
                    f"(+{gained}): continuing the run from frame {max(now - 1, 0)}")
        return ProcessHandlerReport(True)

    @process_handler(priority=500, exit_codes=[MDJobCalculation.exit_codes.ERROR_MD_BLOW_UP])
    def handle_blow_up(self, node):
        """Not restartable: the frames before the blow-up are kept; say so."""
        return ProcessHandlerReport(True, self.exit_codes.ERROR_MD_BLOW_UP.format(message=node.exit_message))

    @process_handler(priority=500, exit_codes=[MDJobCalculation.exit_codes.ERROR_STORE_UNREACHABLE])
    def handle_store_unreachable(self, node):
        return ProcessHandlerReport(True, self.exit_codes.ERROR_STORE_UNREACHABLE.format(
            path=node.inputs.store["store_path"], message=node.exit_message))

    @process_handler(priority=500, exit_codes=[MDJobCalculation.exit_codes.ERROR_RUN_LOCKED])
    def handle_run_locked(self, node):
        """Two writers on one run are never interleaved: the second stops, named, and writes nothing."""
        return ProcessHandlerReport(True, self.exit_codes.ERROR_RUN_LOCKED.format(message=node.exit_message))


def md_job_builder(code, structure, parameters: dict, store_path: str, run_id: str, *, model=None,
                   force_field: str | None = None, options: dict | None = None, max_iterations: int = 5):
    """A builder of ``agi.md_base`` for a resolved ``md`` protocol (``parameters``) and a store run."""
    builder = MDBaseWorkChain.get_builder()
    builder.md.code = code
    builder.md.structure = structure if isinstance(structure, orm.StructureData) else orm.StructureData(ase=structure)
    if model is not None:
        builder.md.model = model
    else:
        builder.md.force_field = orm.Str(force_field or parameters["force_field"])
    builder.md.parameters = orm.Dict(parameters)
    builder.md.store = orm.Dict({"store_path": str(store_path), "run_id": run_id})
    if options:
        builder.md.metadata.options = options
    builder.max_iterations = orm.Int(max_iterations)
    return builder
