"""``agi.reference``: pw.x SCF (energy, forces, stress) on a set of AgI structures → a ReferenceDataset.

Structures come from one of: the ``structures`` namespace, frames of a store
run (``run`` + ``frames``), or α-AgI cells with Ag on random tetrahedral
sites and a Gaussian rattle (the protocol's ``structures`` block). Each
structure is one ``quantumespresso.pw`` CalcJob; at most ``max_concurrent``
run at once, each inside :class:`~.pw_restarts.ScfRestartWorkChain` (aiida-quantumespresso's
``PwBaseWorkChain`` with the protocol's ``pw.scf_restart`` policy): an SCF that does not
converge but is on its way is restarted (``mixing_beta`` × 0.8, more ``electron_maxstep``, from
the last charge density) up to ``pw.scf_restarts`` times, one whose SCF accuracy has stalled is
refused at once (the Wannier routes' rule); the dataset's ``restarts`` attribute
says which structures needed it, how (mixing_beta and SCF steps per attempt)
and at what cost (pw.x wall time of the attempts before the last). A structure
that still fails (SCF not converged after the restarts, metallic — a frame
that is physically wrong is never restarted —, pw.x error) is reported and
left out; the output ``dataset`` holds the others and lists the failures in
its ``failures`` attribute. Only when every structure
fails does the WorkChain fail, with the first failure's exit code.

>>> builder = ReferenceWorkChain.get_builder_from_protocol(load_code("pw@localhost"), atoms, protocol="fast")
>>> node = aiida.engine.submit(builder)          # or run(builder)
>>> node.outputs.dataset.write_extxyz("ref.extxyz")

The results (the WorkChain and its dataset) are put in the Group ``agi/reference/<run>`` (the
store run the frames came from, else ``pk<N>`` of the WorkChain).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction, while_

from ..data import ReferenceDataset
from ..protocols import ProtocolMixin
from . import builder, common
from .pw_restarts import ScfRestartWorkChain, judge_frame, restartable

GPA_PER_EV_A3 = 160.21766208  # 1 eV/Å³ in GPa


@calcfunction
def collect_reference(failures: orm.Dict, restarts: orm.Dict, **results) -> orm.Data:
    """One ReferenceDataset from pw.x results ``{name}__structure``, ``__parameters``, ``__trajectory``.

    Energy from ``output_parameters['energy']`` (eV), forces from the trajectory (eV/Å), stress
    from the trajectory (GPa, QE sign: +pressure) converted to ASE's eV/Å³ (σ_ASE = −σ_QE/160.2177).
    """
    import numpy as np
    from ase.calculators.singlepoint import SinglePointCalculator

    names = sorted({k.rsplit("__", 1)[0] for k in results}, key=lambda n: (len(n), n))
    structures, labels = [], []
    for name in names:
        atoms = results[f"{name}__structure"].get_ase()
        energy = float(results[f"{name}__parameters"]["energy"])
        traj = results[f"{name}__trajectory"]
        forces = np.asarray(traj.get_array("forces"))[-1]
        kw = {"energy": energy, "forces": forces}
        if "stress" in traj.get_arraynames():
            kw["stress"] = -np.asarray(traj.get_array("stress"))[-1] / GPA_PER_EV_A3
        atoms.calc = SinglePointCalculator(atoms, **kw)
        structures.append(atoms)
        labels.append(results[f"{name}__structure"].label or name)
    dataset = ReferenceDataset.from_atoms(structures, labels=labels)
    dataset.base.attributes.set("failures", failures.get_dict())
    dataset.base.attributes.set("restarts", restarts.get_dict())
    return dataset


def _legacy_call(cls, args, kwargs):
    """The previous release's ``get_builder_from_protocol(protocol, *, pw_code=, run_id=, ...)``."""
    notes = []
    if args and builder.is_protocol_name("reference", args[0]):
        if "protocol" in kwargs:
            raise TypeError("the protocol is given twice")
        kwargs["protocol"], args = args[0], args[1:]
        notes.append("call it as get_builder_from_protocol(code, structures, protocol=...)")
    builder.rename_kwargs(kwargs, {"pw_code": "code", "run_id": "run"}, notes)
    return args, kwargs, "; ".join(notes)


class ReferenceWorkChain(ProtocolMixin, WorkChain):
    """pw.x SCF with forces and stress on AgI structures → ``dataset`` (a ReferenceDataset)."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("pw_code", valid_type=orm.AbstractCode, help="the pw.x code")
        common.define_structure_inputs(spec, "reference")
        spec.output("dataset", valid_type=ReferenceDataset, help="energies, forces, stresses of the structures")
        spec.outline(
            cls.setup,
            while_(cls.has_more)(cls.run_pw, cls.inspect_pw),
            cls.results,
        )
        common.define_common_exit_codes(spec)

    # ------------------------------------------------------------------ builder
    _protocol_name = "reference"

    @classmethod
    @builder.legacy_shim(_legacy_call)
    def get_builder_from_protocol(cls, code=None, structures=None, protocol: str | None = None,
                                  overrides: dict | None = None, options: dict | None = None, *, store=None,
                                  run=None, frames=None, pseudo_family: str | None = None):
        """A builder with the inputs of ``agi_data/protocols/reference.yaml``'s ``protocol``.

        :param code: the pw.x code (a code node or its label; default ``pw@localhost`` from ``agi setup``).
        :param structures: ase.Atoms or StructureData — one, a list, or a mapping label → structure; or
            give ``store``/``run``/``frames`` (frames of a store run, its version pinned); or neither
            (the protocol's perturbed α-AgI cells).
        :param protocol: ``fast``, ``demo`` or ``production`` (:meth:`get_available_protocols`).
        :param overrides: a mapping shaped like the protocol file's ``default_inputs``.
        :param options: scheduler options of every pw.x job (``resources``, ``max_wallclock_seconds``,
            ``account``, ``queue_name``, ``qos``, ``custom_scheduler_commands``, ``prepend_text``, …).
        :raises BuilderInputError: on any bad input, before anything is stored or submitted.
        """
        params = builder.resolve_parameters("reference", protocol, overrides, options)
        new = cls.get_builder()
        checked = builder.set_frame_source(new, store, run, frames, structures, "s")
        new.pseudo_family = builder.check_pseudos(pseudo_family or params["pseudo_family"], checked)
        new.pw_code = builder.resolve_code(code, "pw", "code (pw.x)")
        new.parameters = orm.Dict(params)
        new.metadata.label = f"agi.reference ({params['protocol']})"
        return new

    # ------------------------------------------------------------------ steps
    def setup(self):
        params = self.inputs.parameters.get_dict()
        self.ctx.max_concurrent = max(1, int(params["max_concurrent"]))
        missing = common.check_code(self, self.inputs.pw_code)
        if missing:
            return missing
        structures, label_of = common.source_structures(self, fallback=lambda: (
            common.perturbed_cells(orm.Dict(params["structures"])),
            lambda key, _s: f"perturbed:{key.rsplit('_', 1)[-1]}"))
        failed = common.prepare_structures(self, structures, label_of)
        if failed:
            return failed
        for key, s in self.ctx.structures.items():
            s.label = s.label or self.ctx.meta[key]["label"]
        self.ctx.done, self.ctx.restarts = {}, {}
        self.report(f"{len(self.ctx.pending)} structures, protocol {params['protocol']}")

    def has_more(self):
        return bool(self.ctx.pending)

    def run_pw(self):
        params = self.inputs.parameters.get_dict()
        wave, self.ctx.pending = self.ctx.pending[: self.ctx.max_concurrent], self.ctx.pending[self.ctx.max_concurrent:]
        self.ctx.wave = wave
        calcs = {}
        for key in wave:
            s = self.ctx.structures[key]
            inputs = common.pw_inputs(s, self.ctx.family.get_pseudos(structure=s), self.inputs.pw_code, params,
                                      label=f"pw {self.ctx.meta[key]['label']}", cache=self.ctx.shared)
            calcs[f"pw_{key}"] = self.submit(ScfRestartWorkChain, **restartable(inputs, params))
        return ToContext(**calcs)

    def inspect_pw(self):
        params = self.inputs.parameters.get_dict()
        for key in self.ctx.wave:
            meta = self.ctx.meta[key]
            calc, code, record = judge_frame(self, self.ctx[f"pw_{key}"], meta, params["pw"]["min_gap_eV"])
            if record is not None:
                self.ctx.restarts[meta["label"]] = record
            if code is None and "output_trajectory" not in calc.outputs:
                code = common.failure(self, "ERROR_UNPARSABLE_OUTPUT", calc.pk, label=meta["label"],
                                      message="pw.x wrote no forces")
            if code is not None:
                common.record_failure(self, meta["label"], code, calc.pk)
            else:
                self.ctx.done[key] = calc

    def results(self):
        if not self.ctx.done:
            return common.first_failure_exit(self)
        results = {}
        for key, calc in self.ctx.done.items():
            results[f"{key}__structure"] = self.ctx.structures[key]
            results[f"{key}__parameters"] = calc.outputs.output_parameters
            results[f"{key}__trajectory"] = calc.outputs.output_trajectory
        dataset = collect_reference(orm.Dict(self.ctx.failures), orm.Dict(self.ctx.restarts), **results)
        self.out("dataset", dataset)
        common.add_to_results_group(self, "reference", self.inputs.run["run_id"] if "run" in self.inputs else None,
                                    [dataset])
        recovered = {k: v for k, v in self.ctx.restarts.items() if v["recovered"]}
        self.report(f"reference set of {len(self.ctx.done)} structures (pk {dataset.pk}); "
                    f"{len(self.ctx.failures)} left out; {len(recovered)} recovered by "
                    f"{sum(v['restarts'] for v in recovered.values())} SCF restart(s) costing "
                    f"{sum(v['extra_wall_seconds'] for v in recovered.values()):.1f} s of pw.x")
