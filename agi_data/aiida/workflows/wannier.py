"""``agi.wannier``: maximally localised Wannier centres of sampled frames of a store run.

Per frame: ``pw.x`` SCF at Γ → ``wannier90.x -pp`` → ``pw2wannier90.x`` (Bloch
phases as the initial guess, no projections) → ``wannier90.x``. Two routes,
chosen by the protocol's ``calcjob``:

* ``batched`` (default): one ``agi.wannier_batch`` CalcJob runs the four codes
  for a whole batch of frames (split over ``max_concurrent`` CalcJobs run at
  once). The engine's cost per CalcJob (2–3 s of CPU: submission, polling,
  retrieval, parsing, provenance) is paid once per batch instead of three
  times per frame — on 32-atom frames that is the difference between ~20 % and
  a few % over a plain shell script (``benchmarks/wannier_overhead.py``).
* ``steps``: one node per step — ``quantumespresso.pw`` →
  ``quantumespresso.pw2wannier90`` → ``agi.wannier90`` per frame, the
  ``wannier90.x -pp`` step once per distinct cell — for runs where each frame
  takes long enough that the engine's cost does not matter and every step's
  node is wanted (inspection, restarting one step).

Both routes write the same input files (:mod:`..calculations.wannier_chain`).

An SCF that stops at ``electron_maxstep`` unconverged is restarted in both routes with the
protocol's ``pw.scf_restart`` policy (:mod:`.pw_restarts`: ``mixing_beta`` × 0.8, more
``electron_maxstep``, a full restart from the last charge density, up to ``pw.scf_restarts``
times) — in the ``steps`` route by aiida-quantumespresso's ``PwBaseWorkChain``
(:class:`~.pw_restarts.ScfRestartWorkChain`), in the ``batched`` route by the job script. A frame
whose SCF accuracy shows no trend that could reach ``conv_thr`` within the restarts (no gap, atoms
too close, a model gone astray) is refused at once, as is a converged frame without a gap. The
output ``scf_recovery`` (:func:`~.pw_restarts.recovery_summary`) and a line of the report count the
frames recovered (how, at what extra pw.x time) and refused (why); the store's Wannier group
records them too (``scf_recovered_frames``, ``scf_refused_frames``).

Frames are processed in batches of ``batch_size``: each batch becomes one
:class:`~agi_data.aiida.data.WannierSet` node (output ``wannier_sets.batch_<k>``)
made by the calcfunction :func:`store_wannier_batch`, which also writes the
batch to the run's Wannier group with :meth:`Store.add_wannier` in one
transaction and records the node's and the WorkChain's UUIDs there. A frame
that fails (SCF not converged, metallic, wannier90 not converged, wrong
number of centres per ion, unparsable output) is reported, listed in the
``failures`` attribute of its batch node and in the store's
``failed_frames`` attribute, and left out of the store; the other frames go
on. Only when every frame fails does the WorkChain fail, with the first
failure's exit code.

Reference: N. Marzari and D. Vanderbilt, Phys. Rev. B 56, 12847 (1997);
G. Pizzi et al., J. Phys.: Condens. Matter 32, 165902 (2020).
"""

from __future__ import annotations

import numpy as np
from aiida import orm
from aiida.engine import ExitCode, ToContext, WorkChain, calcfunction, if_, while_
from aiida.plugins import CalculationFactory

from ..calculations.wannier_chain import pw2wannier90_namelist, pw_restart_inputs, wannier90_keywords
from ..data import WannierSet
from ..exit_codes import define_exit_codes, name_of
from ..protocols import ProtocolMixin
from . import builder, common
from .pw_restarts import (
    ScfRestartWorkChain,
    judge_frame,
    recovery_summary,
    restartable,
    summary_line,
)

Pw2wannier90Calculation = CalculationFactory("quantumespresso.pw2wannier90")
Wannier90Calculation = CalculationFactory("agi.wannier90")
WannierBatchCalculation = CalculationFactory("agi.wannier_batch")


def _frame_index(key: str, position: int) -> int:
    tail = key.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else position


@calcfunction
def store_wannier_batch(failures: orm.Dict, run: orm.Dict | None = None, scf: orm.Dict | None = None,
                        **frames) -> WannierSet:
    """One WannierSet from per-frame ``centres`` (keys ``frame_<i>``); with ``run``, also written to the store.

    The store's Wannier group gets, in the same transaction as the centres, ``provenance_uuid``
    (the calling WorkChain), ``provenance_batches`` (+ this node's UUID and frames),
    ``failed_frames`` and, from ``scf`` (``{frame index: restart record}`` of the frames restarted
    or refused), ``scf_recovered_frames`` (``{frame: {restarts, extra_wall_seconds}}``, s) and
    ``scf_refused_frames`` (``{frame: reason}``). The node records ``store_version``, the version that
    transaction made, and the same two mappings as attributes.
    """
    from aiida.engine import Process

    keys = sorted(frames, key=lambda k: (len(k), k))
    index = [_frame_index(k, i) for i, k in enumerate(keys)]
    node = WannierSet.from_frames(
        index,
        np.stack([frames[k].get_array("centres") for k in keys]),
        np.stack([frames[k].get_array("spreads") for k in keys]),
        np.stack([frames[k].get_array("owner") for k in keys]),
    )
    failed = failures.get_dict()
    node.base.attributes.set("failures", failed)
    records = scf.get_dict() if scf is not None else {}
    recovered = {f: {"restarts": r["restarts"], "extra_wall_seconds": r["extra_wall_seconds"]}
                 for f, r in records.items() if r.get("recovered")}
    refused = {f: r["refused"] for f, r in records.items() if r.get("refused")}
    node.base.attributes.set_many({"scf_recovered_frames": recovered, "scf_refused_frames": refused})
    if run is None:
        return node
    from agi_data.store import open_store
    from agi_data.store.errors import RunNotFoundError

    me = Process.current().node
    caller = me.caller
    info = run.get_dict()
    store = open_store(info["store_path"])
    try:
        previous = dict(store.wannier(info["run_id"]).attrs)
    except RunNotFoundError:
        previous = {}
    batches = list(previous.get("provenance_batches", []))
    batches.append({"node_uuid": me.uuid, "workchain_uuid": caller.uuid if caller else None,
                    "frames": [int(i) for i in index], "failed_frames": sorted(int(f) for f in failed)})
    failed_all = dict(previous.get("failed_frames", {}))
    failed_all.update({str(f): v["exit_code"] for f, v in failed.items()})
    recovered_all = {**previous.get("scf_recovered_frames", {}), **recovered}
    refused_all = {**previous.get("scf_refused_frames", {}), **refused}
    version = store.add_wannier(
        info["run_id"], np.asarray(index, dtype=np.int64), node.get_array("centres"), node.get_array("spreads"),
        attrs={"provenance_uuid": caller.uuid if caller else me.uuid, "provenance_batches": batches,
               "failed_frames": failed_all, "scf_recovered_frames": recovered_all,
               "scf_refused_frames": refused_all, "source_run_version": info.get("version"),
               "engine": "Quantum ESPRESSO pw.x + pw2wannier90.x, wannier90.x (agi.wannier)"})
    node.base.attributes.set_many({"run_id": info["run_id"], "store_path": info["store_path"],
                                   "store_version": version, "source_run_version": info.get("version")})
    return node


#: the codes of the chain, as the builder's ``codes`` mapping names them
CODE_NAMES = ("pw", "pw2wannier90", "wannier90")


def _legacy_call(cls, args, kwargs):
    """The previous release's ``get_builder_from_protocol(protocol, *, store=, run_id=, frames=, codes=, ...)``."""
    notes = []
    if args and builder.is_protocol_name("wannier", args[0]):
        if "protocol" in kwargs:
            raise TypeError("the protocol is given twice")
        kwargs["protocol"], args = args[0], args[1:]
        notes.append("call it as get_builder_from_protocol(codes, run, frames, protocol=..., store=...)")
    builder.rename_kwargs(kwargs, {"run_id": "run"}, notes)
    return args, kwargs, "; ".join(notes)


class WannierWorkChain(ProtocolMixin, WorkChain):
    """Frames of a store run → pw.x → wannier90.x -pp → pw2wannier90.x → wannier90.x → the run's Wannier group."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("pw_code", valid_type=orm.AbstractCode, help="pw.x")
        spec.input("pw2wannier90_code", valid_type=orm.AbstractCode, help="pw2wannier90.x")
        spec.input("wannier90_code", valid_type=orm.AbstractCode, help="wannier90.x")
        common.define_structure_inputs(spec, "wannier")  # with `run`, the centres go back to that run
        spec.output_namespace("wannier_sets", valid_type=WannierSet, dynamic=True,
                              help="one WannierSet per batch of frames")
        spec.output("scf_recovery", valid_type=orm.Dict, required=False,
                    help="SCF restarts: frames recovered (how, extra pw.x seconds) and refused (why); "
                         "see agi_data.aiida.workflows.pw_restarts.recovery_summary")
        spec.outline(
            cls.setup,
            if_(cls.is_batched)(
                while_(cls.has_more)(
                    cls.run_batches,
                    cls.inspect_batches,
                ),
            ).else_(
                while_(cls.has_more)(
                    cls.run_pw,
                    cls.run_pw2wannier90,
                    cls.run_wannier90,
                    cls.inspect_wannier90,
                ),
            ),
            cls.finalize,
        )
        common.define_common_exit_codes(spec)
        define_exit_codes(spec, "ERROR_NO_STRUCTURES", "ERROR_PW2WANNIER90_FAILED", "ERROR_WANNIER90_FAILED",
                          "ERROR_WANNIER_NOT_CONVERGED", "ERROR_WRONG_CENTRE_COUNT", "ERROR_BATCH_FAILED",
                          "ERROR_STORE_WRITE")

    # ------------------------------------------------------------------ builder
    _protocol_name = "wannier"

    @classmethod
    @builder.legacy_shim(_legacy_call)
    def get_builder_from_protocol(cls, codes: dict | None = None, run=None, frames=None, protocol: str | None = None,
                                  overrides: dict | None = None, options: dict | None = None, *, store=None,
                                  structures=None, pseudo_family: str | None = None):
        """A builder with the inputs of ``agi_data/protocols/wannier.yaml``'s ``protocol``.

        :param codes: ``{"pw": ..., "pw2wannier90": ..., "wannier90": ...}`` (code nodes or labels; a missing
            one defaults to ``<name>@localhost`` from ``agi setup``).
        :param run: the store run whose ``frames`` are taken (``store``: a Store or a path, relative to the
            current directory); the centres go back to that run. Or give ``structures`` (ase.Atoms or
            StructureData, one or several): centres only as AiiDA nodes.
        :param protocol: ``fast``, ``demo`` or ``production`` (:meth:`get_available_protocols`).
        :param overrides: a mapping shaped like the protocol file's ``default_inputs``.
        :param options: scheduler options of every job (see :func:`~agi_data.aiida.protocols.validate_options`).
        :raises BuilderInputError: on any bad input, before anything is stored or submitted.
        """
        params = builder.resolve_parameters("wannier", protocol, overrides, options)
        try:
            pw_restart_inputs(params)
        except ValueError as exc:
            raise builder.BuilderInputError(str(exc)) from None
        new = cls.get_builder()
        if run is None and frames is None and structures is None:
            raise builder.BuilderInputError("nothing to compute: give `run` + `frames` (frames of a store run) "
                                            "or `structures`")
        checked = builder.set_frame_source(new, store, run, frames, structures, "frame_")
        new.pseudo_family = builder.check_pseudos(pseudo_family or params["pseudo_family"], checked)
        codes = {} if codes is None else codes
        if not isinstance(codes, dict) or set(codes) - set(CODE_NAMES):
            raise builder.BuilderInputError(f"codes must map {list(CODE_NAMES)} to codes, got {codes!r}")
        for name in CODE_NAMES:
            setattr(new, f"{name}_code", builder.resolve_code(codes.get(name), name, f"codes[{name!r}]"))
        new.parameters = orm.Dict(params)
        new.metadata.label = f"agi.wannier ({params['protocol']})"
        return new

    # ------------------------------------------------------------------ steps
    def setup(self):
        params = self.inputs.parameters.get_dict()
        for code in (self.inputs.pw_code, self.inputs.pw2wannier90_code, self.inputs.wannier90_code):
            missing = common.check_code(self, code)
            if missing:
                return missing
        structures, label_of = common.source_structures(self)
        if structures is None:
            return self.exit_codes.ERROR_NO_STRUCTURES
        failed = common.prepare_structures(self, structures, label_of)
        if failed:
            return failed
        self.ctx.max_concurrent = max(1, int(params["max_concurrent"]))
        self.ctx.batch_size = max(1, int(params["batch_size"]))
        self.ctx.batch, self.ctx.batch_failures, self.ctx.batch_scf = {}, {}, {}
        self.ctx.scf_records = {}  # frame label -> restart record (frames restarted or refused)
        self.ctx.nnkp = {}  # cell key -> nnkp SinglefileData
        self.ctx.n_batches, self.ctx.n_ok, self.ctx.sets = 0, 0, []
        self.report(f"{len(self.ctx.pending)} frames, protocol {params['protocol']}, batches of {self.ctx.batch_size}")

    def has_more(self):
        return bool(self.ctx.pending)

    def is_batched(self):
        return self.inputs.parameters.get_dict().get("calcjob", "batched") == "batched"

    def _record_frame_failure(self, key, code, pk):
        common.record_failure(self, self.ctx.meta[key]["label"], code, pk)
        self.ctx.batch_failures[str(_frame_index(key, 0))] = self.ctx.failures[self.ctx.meta[key]["label"]]

    def _record_scf(self, key, record: dict) -> None:
        """Keep a frame's SCF restart record (it was restarted, or refused) for the summary and the store."""
        self.ctx.scf_records[self.ctx.meta[key]["label"]] = record
        self.ctx.batch_scf[str(_frame_index(key, 0))] = record

    def _fail(self, key, code, pk):
        self._record_frame_failure(key, code, pk)
        self.ctx.wave.remove(key)

    # ------------------------------------------------------------------ batched route
    def run_batches(self):
        """The next ``batch_size`` frames, split over ``max_concurrent`` ``agi.wannier_batch`` CalcJobs."""
        params = self.inputs.parameters.get_dict()
        wave, self.ctx.pending = self.ctx.pending[:self.ctx.batch_size], self.ctx.pending[self.ctx.batch_size:]
        n_jobs = min(self.ctx.max_concurrent, len(wave))
        chunks = [wave[i::n_jobs] for i in range(n_jobs)]  # near-equal shares, frames in order within each
        calcs = {}
        for j, keys in enumerate(chunks):
            structures = {key: self.ctx.structures[key] for key in keys}
            pseudos = {}
            for s in structures.values():
                pseudos.update(self.ctx.family.get_pseudos(structure=s))
            first, last = self.ctx.meta[keys[0]]["label"], self.ctx.meta[keys[-1]]["label"]
            label = first if len(keys) == 1 else f"{first} … {last} ({len(keys)} frames)"
            calcs[f"batch_{j}"] = self.submit(
                WannierBatchCalculation, code=self.inputs.pw_code,
                pw2wannier90_code=self.inputs.pw2wannier90_code, wannier90_code=self.inputs.wannier90_code,
                structures=structures, pseudos=pseudos, parameters=self.inputs.parameters,
                metadata={"label": f"wannier chain {label}",
                          "options": common.calcjob_options(params, wallclock_factor=len(keys), per_code_mpi=True)})
        self.ctx.wave_keys = chunks
        return ToContext(**calcs)

    def inspect_batches(self):
        """Good frames into the current batch, failed ones recorded with their own exit code."""
        for j, keys in enumerate(self.ctx.wave_keys):
            calc = self.ctx[f"batch_{j}"]
            results = calc.outputs.output_parameters.get_dict() if "output_parameters" in calc.outputs else None
            if results is None:  # the job itself failed (could not run, retrieve or parse): every frame fails
                code = common.failure(self, "ERROR_BATCH_FAILED", calc.pk, label=calc.label,
                                      message=f"exit {calc.exit_status}: {calc.exit_message or calc.process_state}")
                for key in keys:
                    self._record_frame_failure(key, code, calc.pk)
                continue
            centres = calc.outputs.centres if "centres" in calc.outputs else {}
            for key in keys:
                scf = results["frames"].get(key, {}).get("scf")
                if scf is not None and (scf["restarts"] or scf.get("refused")):
                    self._record_scf(key, scf)
                failure = results["failures"].get(key)
                if failure is None:
                    self.ctx.batch[key] = centres[key]
                    continue
                code = ExitCode(self.exit_codes[failure["exit_code"]].status, f"{failure['message']} (pk {calc.pk})")
                self._record_frame_failure(key, code, calc.pk)
        return self._flush_when_full()

    # ------------------------------------------------------------------ step-by-step route

    def _cell_key(self, key) -> str:
        return ",".join(f"{x:.6f}" for x in self.ctx.meta[key]["cell"]) + f"|{self.ctx.meta[key]['n_occ']}"

    def _w90_parameters(self, key) -> dict:
        return wannier90_keywords(self.inputs.parameters.get_dict(), self.ctx.meta[key]["n_occ"])

    def _shared_w90_parameters(self, key) -> orm.Dict:
        n_occ = self.ctx.meta[key]["n_occ"]
        return common.shared_node(self.ctx.shared, f"w90_parameters_{n_occ}",
                                  lambda: orm.Dict(self._w90_parameters(key)))

    def _w90_options(self) -> dict:
        return common.calcjob_options(self.inputs.parameters.get_dict(), serial=True)  # wannier90.x at Γ: serial

    def run_pw(self):
        params = self.inputs.parameters.get_dict()
        n = self.ctx.max_concurrent
        self.ctx.wave, self.ctx.pending = self.ctx.pending[:n], self.ctx.pending[n:]
        calcs = {}
        for key in self.ctx.wave:
            s = self.ctx.structures[key]
            inputs = common.pw_inputs(s, self.ctx.family.get_pseudos(structure=s), self.inputs.pw_code, params,
                                      label=f"pw {self.ctx.meta[key]['label']}", cache=self.ctx.shared)
            calcs[f"pw_{key}"] = self.submit(ScfRestartWorkChain, **restartable(inputs, params))
            cell = self._cell_key(key)
            if cell not in self.ctx.nnkp and f"pp_{cell}" not in calcs:
                self.ctx.nnkp[cell] = None
                calcs[f"pp_{key}"] = self.submit(
                    Wannier90Calculation, code=self.inputs.wannier90_code, structure=s,
                    parameters=self._shared_w90_parameters(key),
                    settings=common.shared_node(self.ctx.shared, "w90_pp_settings",
                                                lambda: orm.Dict({"postproc_setup": True})),
                    metadata={"label": f"wannier90 -pp {self.ctx.meta[key]['label']}", "options": self._w90_options()})
        return ToContext(**calcs)

    def run_pw2wannier90(self):
        params = self.inputs.parameters.get_dict()
        # nnkp files of the -pp runs started in this wave
        for key in list(self.ctx.meta):
            pp = self.ctx.get(f"pp_{key}")
            cell = self._cell_key(key)
            if pp is not None and self.ctx.nnkp.get(cell) is None:
                if pp.is_finished_ok:
                    self.ctx.nnkp[cell] = pp.outputs.nnkp_file
        calcs = {}
        for key in list(self.ctx.wave):
            meta = self.ctx.meta[key]
            calc, code, record = judge_frame(self, self.ctx[f"pw_{key}"], meta, params["pw"]["min_gap_eV"])
            if record is not None:
                self._record_scf(key, record)
            if code is not None:
                self._fail(key, code, calc.pk)
                continue
            nnkp = self.ctx.nnkp.get(self._cell_key(key))
            if nnkp is None:
                self._fail(key, common.failure(self, "ERROR_WANNIER90_FAILED", calc.pk, label=meta["label"],
                                               message="wannier90.x -pp wrote no .nnkp"), calc.pk)
                continue
            calcs[f"p2w_{key}"] = self.submit(
                Pw2wannier90Calculation, code=self.inputs.pw2wannier90_code, nnkp_file=nnkp,
                parent_folder=calc.outputs.remote_folder,
                parameters=common.shared_node(self.ctx.shared, "p2w_parameters", lambda: orm.Dict({"INPUTPP": {
                    k: v for k, v in pw2wannier90_namelist(params, "aiida").items() if k.startswith("write_")}})),
                settings=common.shared_node(self.ctx.shared, "p2w_settings",
                                            lambda: orm.Dict({"PARENT_FOLDER_SYMLINK": True})),
                metadata={"label": f"pw2wannier90 {meta['label']}", "options": common.calcjob_options(params)})
        return ToContext(**calcs)

    def run_wannier90(self):
        params = self.inputs.parameters.get_dict()
        settings = {"expected_centres": params["expected_centres"] or {}, "assign_radius": float(params["assign_radius"])}
        calcs = {}
        for key in list(self.ctx.wave):
            calc = self.ctx[f"p2w_{key}"]
            meta = self.ctx.meta[key]
            if not calc.is_finished_ok:
                self._fail(key, common.failure(self, "ERROR_PW2WANNIER90_FAILED", calc.pk, label=meta["label"],
                                               message=f"exit {calc.exit_status} {calc.exit_message}"), calc.pk)
                continue
            calcs[f"w90_{key}"] = self.submit(
                Wannier90Calculation, code=self.inputs.wannier90_code, structure=self.ctx.structures[key],
                parameters=self._shared_w90_parameters(key),
                settings=common.shared_node(self.ctx.shared, "w90_settings", lambda: orm.Dict(settings)),
                parent_folder=calc.outputs.remote_folder,
                metadata={"label": f"wannier90 {meta['label']}", "options": self._w90_options()})
        return ToContext(**calcs)

    def inspect_wannier90(self):
        for key in list(self.ctx.wave):
            calc = self.ctx[f"w90_{key}"]
            meta = self.ctx.meta[key]
            if not calc.is_finished_ok:
                # the CalcJob's exit codes are the WorkChain's (one table): its name is this frame's failure
                name = name_of(calc.exit_status)
                name = name if name in self.exit_codes else "ERROR_WANNIER90_FAILED"
                code = common.failure(self, name, calc.pk, label=meta["label"],
                                      message=f"exit {calc.exit_status}: {calc.exit_message}")
                self._fail(key, code, calc.pk)
                continue
            self.ctx.batch[key] = calc.outputs.centres
        return self._flush_when_full()

    def _flush_when_full(self):
        if self.ctx.batch and (len(self.ctx.batch) >= self.ctx.batch_size or not self.ctx.pending):
            return self._flush()
        return None

    def _flush(self):
        frames = dict(self.ctx.batch)
        kwargs = {"failures": orm.Dict(self.ctx.batch_failures), "scf": orm.Dict(self.ctx.batch_scf)}
        if "run" in self.inputs:
            kwargs["run"] = self.inputs.run
        try:
            node = store_wannier_batch(**kwargs, **frames)
        except Exception as exc:  # noqa: BLE001 - the store's own error class and message are reported
            return self.exit_codes.ERROR_STORE_WRITE.format(message=f"{type(exc).__name__}: {exc}")
        self.out(f"wannier_sets.batch_{self.ctx.n_batches}", node)
        self.ctx.sets.append(node)
        self.report(f"batch {self.ctx.n_batches}: {len(frames)} frames -> WannierSet pk {node.pk}"
                    + (f", store version {node.base.attributes.get('store_version')}" if "run" in self.inputs else ""))
        self.ctx.n_batches += 1
        self.ctx.n_ok += len(frames)
        self.ctx.batch, self.ctx.batch_failures, self.ctx.batch_scf = {}, {}, {}
        return None

    def finalize(self):
        summary = recovery_summary(orm.Dict(self.ctx.scf_records), orm.Int(len(self.ctx.meta)))
        self.out("scf_recovery", summary)
        self.report(summary_line(summary.get_dict()))
        if self.ctx.n_ok == 0:
            return common.first_failure_exit(self)
        self.report(f"{self.ctx.n_ok} frames done, {len(self.ctx.failures)} left out, {self.ctx.n_batches} batch node(s)")
        common.add_to_results_group(self, "wannier", self.inputs.run["run_id"] if "run" in self.inputs else None,
                                    self.ctx.sets)
        return None
