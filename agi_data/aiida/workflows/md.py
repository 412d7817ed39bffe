"""``agi.md``: MD with an Allegro model or the classical AgI force field, frames streamed into a store run.

Inputs: a structure (or the protocol's α-AgI supercell), exactly one
potential — ``model`` (the packaged or compiled Allegro model that
``agi.train`` outputs; run through ASE's NequIPCalculator) or
``force_field`` (a classical force-field name; run through LAMMPS) — the
resolved ``md`` protocol, and ``store`` {store_path, run_id}.

Outline: ``validate`` (temperature > 0, no overlapping atoms, elements the
potential knows, the engine installed: each a named exit code, nothing
written) → ``run`` (the ``molecular_dynamics`` calcfunction: one node for the
whole run, never one per frame; it streams the frames into the store through
:func:`agi_data.md.run_md`, the run's attributes name the calcfunction node
and the potential node) → ``finalize`` (the run's ``provenance_uuid`` is this
WorkChain; output ``run``: store path, run id, the version written, frames,
timings).

A run id that exists in the store is continued from its last frame (same
settings required); a blow-up stops the run with ERROR_MD_BLOW_UP and keeps
every frame written before it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import WorkChain, calcfunction

from ..exit_codes import define_exit_codes, name_of
from ..protocols import ProtocolMixin
from . import builder, common


def _settings(params: dict):
    """The MD settings of resolved parameters; their blow-up limits are checked too (MDError / TypeError)."""
    from agi_data.md import BlowUpLimits, MDSettings

    BlowUpLimits(**params["checks"])
    return MDSettings(**params["md"])


def _potential_spec(potential: orm.Data, workdir: Path) -> dict:
    """``{"force_field": name}`` or ``{"model": path, "uuid": ...}`` (the model file written to ``workdir``)."""
    if isinstance(potential, orm.Str):
        return {"force_field": potential.value}
    path = workdir / potential.filename
    with potential.open(mode="rb") as src:
        path.write_bytes(src.read())
    return {"model": str(path), "uuid": potential.uuid}


def _engine(potential: orm.Data, params: dict, workdir: Path):
    """The engine for a potential node: a force-field name (Str) or a model file (SinglefileData)."""
    from agi_data.mdjob import engine_for

    return engine_for(_potential_spec(potential, workdir), params)


@calcfunction
def molecular_dynamics(structure: orm.StructureData, potential: orm.Data, parameters: orm.Dict,
                       store: orm.Dict) -> orm.Dict:
    """Run the MD and stream it into ``store['run_id']`` of the store at ``store['store_path']``.

    The in-process route: the same :func:`agi_data.mdjob.run_job` that the ``agi.md_job`` CalcJob runs
    on a scheduler's node. Returns what was written: run id, store path and version, frames, the frame
    the run was continued from, engine and store time; ``status`` is ``ok`` or ``blow-up`` (with
    ``message``: the frames before the blow-up are kept).
    """
    from aiida.engine import Process

    from agi_data.mdjob import run_job

    s = store.get_dict()
    attrs = {"provenance_calc_uuid": Process.current().node.uuid, "potential_uuid": potential.uuid}
    with tempfile.TemporaryDirectory(prefix="agi-md-") as tmp:
        out = run_job(structure.get_ase(), _potential_spec(potential, Path(tmp)), parameters.get_dict(),
                      s["store_path"], s["run_id"], attrs=attrs, progress=bool(s.get("progress", False)))
    return orm.Dict(out)


def validate_potential(inputs, _ctx):
    if ("model" in inputs) == ("force_field" in inputs):
        return "give exactly one potential: `model` (a trained Allegro model) or `force_field` (a classical one)"
    return None


def _legacy_call(cls, args, kwargs):
    """The previous release's ``get_builder_from_protocol(protocol, *, store, run_id, structure=None, ...)``."""
    notes = []
    if args and builder.is_protocol_name("md", args[0]):
        if "protocol" in kwargs:
            raise TypeError("the protocol is given twice")
        kwargs["protocol"], args = args[0], args[1:]
        notes.append("call it as get_builder_from_protocol(engine_or_code, structure, protocol=..., store=, run=)")
    builder.rename_kwargs(kwargs, {"run_id": "run"}, notes)
    return args, kwargs, "; ".join(notes)


def _model_node(model, elements: set[str]) -> orm.SinglefileData:
    """A model SinglefileData (given, or made from a model file path) whose type names cover ``elements``."""
    if isinstance(model, (str, Path)):
        path = Path(model).expanduser().resolve()
        if not path.is_file():
            raise builder.BuilderInputError(f"model file {path} does not exist")
        model = orm.SinglefileData(file=path)
    if not isinstance(model, orm.SinglefileData):
        raise builder.BuilderInputError(f"model must be a SinglefileData (agi.train's `model`) or a model file path, "
                                        f"got {type(model).__name__}")
    types = model.base.attributes.get("type_names", None)
    if types is not None and elements - set(types):
        raise builder.BuilderInputError(f"the model knows {list(types)}, not {sorted(elements - set(types))}")
    return model


class MDWorkChain(ProtocolMixin, WorkChain):
    """MD at temperature T with a given potential, streamed into a store run that records the potential's node."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("structure", valid_type=orm.StructureData, help="the starting structure (periodic)")
        spec.input("model", valid_type=orm.SinglefileData, required=False,
                   help="a trained Allegro model (.nequip.zip or .nequip.pt2), e.g. agi.train's `model` output")
        spec.input("force_field", valid_type=orm.Str, required=False,
                   help="a classical force field, e.g. 'agi-vashishta-rahman-sk'")
        spec.input("parameters", valid_type=orm.Dict, help="the resolved `md` protocol (agi_data/protocols/md.yaml)")
        spec.input("store", valid_type=orm.Dict, help="{store_path, run_id[, progress]}")
        spec.input("code", valid_type=orm.AbstractCode, required=False,
                   help="the agi-md code of a computer (agi.md_job): the MD then runs as a scheduler job "
                        "(agi.md_base, continued when interrupted); without it, in the AiiDA process")
        spec.inputs.validator = validate_potential
        spec.output("run", valid_type=orm.Dict, help="the store run written: path, id, version, frames, timings")
        spec.outline(cls.validate, cls.run_md, cls.finalize)
        define_exit_codes(spec, "ERROR_INVALID_INPUTS", "ERROR_INVALID_TEMPERATURE", "ERROR_OVERLAPPING_ATOMS",
                          "ERROR_SPECIES_MISMATCH", "ERROR_ENGINE_NOT_FOUND", "ERROR_STORE_UNREACHABLE",
                          "ERROR_MD_BLOW_UP", "ERROR_RUN_LOCKED", "ERROR_MD_JOB_FAILED")

    _protocol_name = "md"

    @classmethod
    @builder.legacy_shim(_legacy_call)
    def get_builder_from_protocol(cls, code=None, structure=None, protocol: str | None = None,
                                  overrides: dict | None = None, options: dict | None = None, *, store=None,
                                  run: str | None = None, model=None, force_field: str | None = None,
                                  progress: bool = False):
        """A builder from ``agi_data/protocols/md.yaml``; without ``model`` the protocol's classical force field.

        :param code: the engine: ``"lammps"`` (a classical force field), ``"ase"`` (an Allegro model) or None
            (chosen by the potential). The MD runs in the AiiDA process; a code node is accepted once the
            WorkChain has a ``code`` input (the scheduler route).
        :param structure: ase.Atoms or StructureData (default: the protocol's α-AgI supercell).
        :param store: a :class:`~agi_data.store.Store` or a path (relative to the current directory, recorded
            absolute); ``run``: the run id to write (an existing run is continued).
        :param model: a trained model (SinglefileData, e.g. ``agi.train``'s ``model``, or a model file path).
        :param options: scheduler options (recorded in the parameters for the scheduler route).
        :raises BuilderInputError: on any bad input, before anything is stored, submitted or written.
        """
        from agi_data.md import MDError, get_force_field
        from agi_data.store import validate
        from agi_data.store.errors import StoreValidationError
        from agi_data.structures import StructureError, alpha_agi, check_overlap

        params = builder.resolve_parameters("md", protocol, overrides, options)
        try:
            validate.run_id(run)
            if not validate.RUN_ID_PATTERN.fullmatch(run):  # `$` alone lets a trailing newline through
                raise StoreValidationError(f"invalid run id {run!r}: no trailing newline or control characters")
        except StoreValidationError as err:
            raise builder.BuilderInputError(f"run: {err}") from None
        root = builder.store_root(store, must_exist=False)
        try:
            _settings(params)
        except (MDError, TypeError) as err:
            raise builder.BuilderInputError(f"md settings: {err}") from None
        if structure is None:
            sp = params["structure"]
            structure = alpha_agi(int(sp["supercell"]), float(sp["lattice"]), seed=int(sp["seed"]),
                                  rattle=float(sp["rattle"]))
        structures = builder.as_structures(structure, "s")
        if len(structures) != 1:
            raise builder.BuilderInputError(f"give one starting structure, got {len(structures)}")
        (structure,) = structures.values()
        atoms = structure.get_ase()
        try:
            check_overlap(atoms, float(params["checks"]["min_distance"]))
        except StructureError as err:
            raise builder.BuilderInputError(f"structure: {err}") from None
        elements = set(atoms.get_chemical_symbols())
        if code is not None and code not in ("lammps", "ase"):
            if isinstance(code, orm.AbstractCode) and "code" in cls.spec().inputs:
                pass
            else:
                raise builder.BuilderInputError(
                    f"code must be 'lammps' (a classical force field) or 'ase' (an Allegro model), got {code!r}: "
                    "agi.md runs the MD in the AiiDA process and takes no code node")
        new = cls.get_builder()
        if model is not None:
            if code == "lammps" or force_field is not None:
                raise builder.BuilderInputError("give either `model` (engine 'ase') or `force_field` (engine "
                                                "'lammps'), not both")
            new.model = _model_node(model, elements)
        else:
            if code == "ase":
                raise builder.BuilderInputError("engine 'ase' runs an Allegro model: give `model`")
            name = force_field or params["force_field"]
            try:
                ff = get_force_field(name)
            except MDError as err:
                raise builder.BuilderInputError(f"force_field: {err}") from None
            unknown = sorted(elements - set(ff.elements))
            if unknown:
                raise builder.BuilderInputError(f"force field {name!r} knows {list(ff.elements)}, not {unknown}")
            new.force_field = orm.Str(name)
        if isinstance(code, orm.AbstractCode):
            new.code = code
        new.structure = structure
        new.parameters = orm.Dict(params)
        new.store = orm.Dict({"store_path": str(root), "run_id": run, "progress": bool(progress)})
        new.metadata.label = f"agi.md {run} ({params['protocol']})"
        return new

    @property
    def potential(self) -> orm.Data:
        return self.inputs.model if "model" in self.inputs else self.inputs.force_field

    def validate(self):
        """Check everything that can be checked before anything is written."""
        from agi_data.md import (
            EngineNotFoundError,
            InvalidTemperatureError,
            MDError,
            OverlappingAtomsError,
            SpeciesMismatchError,
        )
        from agi_data.structures import check_overlap

        p = self.inputs.parameters.get_dict()
        store_path = Path(self.inputs.store["store_path"])
        if not store_path.is_absolute() or not (store_path.is_dir() or store_path.parent.is_dir()):
            return self.exit_codes.ERROR_STORE_UNREACHABLE.format(
                path=store_path, message="not an absolute path to a directory that exists or can be made here")
        try:
            _settings(p)
            atoms = self.inputs.structure.get_ase()
            check_overlap(atoms, float(p["checks"]["min_distance"]))
            with tempfile.TemporaryDirectory(prefix="agi-md-check-") as tmp:
                engine = _engine(self.potential, p, Path(tmp))
                engine.check_species(atoms.get_chemical_symbols())
        except InvalidTemperatureError as err:
            return self.exit_codes.ERROR_INVALID_TEMPERATURE.format(message=str(err))
        except OverlappingAtomsError as err:
            return self.exit_codes.ERROR_OVERLAPPING_ATOMS.format(message=str(err))
        except SpeciesMismatchError as err:
            return self.exit_codes.ERROR_SPECIES_MISMATCH.format(message=str(err))
        except EngineNotFoundError as err:
            return self.exit_codes.ERROR_ENGINE_NOT_FOUND.format(message=str(err))
        except (MDError, TypeError) as err:
            return self.exit_codes.ERROR_INVALID_INPUTS.format(message=str(err))
        return None

    def run_md(self):
        """In process (the calcfunction), or as a scheduler job when a ``code`` is given."""
        if "code" not in self.inputs:
            self.ctx.result = molecular_dynamics(self.inputs.structure, self.potential, self.inputs.parameters,
                                                 self.inputs.store)
            return None
        from .md_base import MDBaseWorkChain

        params = self.inputs.parameters.get_dict()
        target = self.inputs.store.get_dict()
        potential = {"model": self.inputs.model} if "model" in self.inputs else {"force_field": self.inputs.force_field}
        job = {"code": self.inputs.code, "structure": self.inputs.structure, "parameters": self.inputs.parameters,
               "store": orm.Dict({"store_path": target["store_path"], "run_id": target["run_id"]}),
               "attrs": orm.Dict({"potential_uuid": self.potential.uuid}), **potential}
        options = dict(params.get("options") or {})
        if options:
            job["metadata"] = {"options": options}
        self.report(f"run {target['run_id']!r} as a job on {self.inputs.code.computer.label} "
                    f"({self.inputs.code.computer.scheduler_type})")
        return self.to_context(job=self.submit(MDBaseWorkChain, md=job))

    def finalize(self):
        from agi_data import open_store

        if "job" in self.ctx:
            node = self.ctx.job
            if not node.is_finished_ok:
                if node.exit_status in (self.exit_codes.ERROR_MD_BLOW_UP.status,
                                        self.exit_codes.ERROR_RUN_LOCKED.status,
                                        self.exit_codes.ERROR_STORE_UNREACHABLE.status):
                    same = getattr(self.exit_codes, name_of(node.exit_status))
                    return same.format(message=node.exit_message, path=self.inputs.store["store_path"])
                return self.exit_codes.ERROR_MD_JOB_FAILED.format(
                    message=f"{node.process_label}<{node.pk}> [{node.exit_status}] {node.exit_message}")
            self.ctx.result = node.outputs.run
        result = self.ctx.result
        st = open_store(result["store_path"])
        from agi_data.md import equilibration_run_id

        for run_id in (result["run_id"], equilibration_run_id(result["run_id"])):  # production and its equilibration
            if run_id in st.run_ids():
                st.set_attrs(run_id, provenance_uuid=self.node.uuid)
        self.out("run", result)
        common.add_to_results_group(self, "md", result["run_id"], [result])
        if result["status"] == "blow-up":
            return self.exit_codes.ERROR_MD_BLOW_UP.format(message=result["message"])
        overhead = result.get("store_overhead")
        self.report(f"run {result['run_id']!r}: {result['n_frames']} frames ({result['new_frames']} new)"
                    + (f", store overhead {100 * overhead:.1f} %" if overhead is not None else ""))
        return None


#: the same WorkChain under the spelling other modules use
MdWorkChain = MDWorkChain
