"""``agi.wannier_batch``: the whole Wannier chain for a batch of frames in one CalcJob.

For each frame, serially in one working directory: ``pw.x`` SCF at Γ →
``wannier90.x -pp`` → ``pw2wannier90.x`` (Bloch phases, no projections) →
``wannier90.x``. The inputs are those of :mod:`.wannier_chain`, the same files
the step-by-step route and the plain-script benchmark use. Each frame has its
own seedname (``f0``, ``f1``, … in the order of the ``structures`` keys); pw.x
keeps one frame's wavefunctions at a time under ``./out/``.

Why a batch: on a 32-atom frame the codes take ~40 s, and each CalcJob costs
the AiiDA engine 2–3 s of CPU on the critical path (submission, polling,
retrieval, parsing, provenance). Three CalcJobs per frame made the workflow
~20 % slower than a shell script; one CalcJob per batch pays that once.

A frame's SCF that stops at ``electron_maxstep`` unconverged is restarted inside the job, as
aiida-quantumespresso's ``PwBaseWorkChain`` would in the step-by-step route: the job script lists,
after each frame's pw.x, up to ``pw.scf_restarts`` restart lines (``<seed>.pw.<k>.in``: a full
restart from the charge density pw.x left, ``mixing_beta`` and ``electron_maxstep`` of the
protocol's ``pw.scf_restart``), and a bash ``DEBUG`` trap (:data:`SCF_GATE`, run before every
command; with ``extdebug`` a non-zero return skips the command) lets a restart line run only when
the previous attempt did not converge *and* its SCF accuracy trend can reach ``conv_thr`` within the
steps left (:data:`SCF_OUTLOOK_AWK`, the rule of
:func:`~agi_data.aiida.parsers.qe_stdout.scf_outlook`). Its verdicts go to ``<seed>.scf.log``; a
refused frame skips its remaining restarts. The parser reports per frame the attempts, their
``mixing_beta``, ``electron_maxstep``, SCF steps and wall seconds, and whether the frame was
recovered or refused (and why).

A frame that fails does not stop the others: the job script runs every command
(no ``set -e``), the parser checks each frame's outputs in order (pw.x, then
pw2wannier90.x, then wannier90.x) and gives each failed frame a named reason
(the names of the ``agi.wannier`` WorkChain's exit codes). The centres of the
good frames are output as ``centres.<key>``; ``output_parameters['frames']``
holds per-frame results and ``output_parameters['failures']`` the failed ones.
Exit status 0 when every frame succeeded, ``ERROR_SOME_FRAMES_FAILED`` (the
good frames still output) when some did, and the first frame's own exit code
when none did.
"""

from __future__ import annotations

from aiida import orm
from aiida.common import datastructures
from aiida.engine import CalcJob
from aiida.plugins import DataFactory

from ..exit_codes import define_exit_codes
from .wannier_chain import chain_command_lines, chain_input_files, pw_restart_inputs, restart_policy

UpfData = DataFactory("pseudo.upf")

#: per-frame failures (names of :mod:`agi_data.aiida.exit_codes`, the same as the agi.wannier WorkChain's)
FRAME_EXIT_CODES = ("ERROR_SCF_NOT_CONVERGED", "ERROR_METALLIC", "ERROR_PW_FAILED", "ERROR_UNPARSABLE_OUTPUT",
                    "ERROR_PW2WANNIER90_FAILED", "ERROR_WANNIER90_FAILED", "ERROR_WANNIER_NOT_CONVERGED",
                    "ERROR_WRONG_CENTRE_COUNT")


#: awk program: ``awk -v thr=CONV_THR -v left=STEPS_LEFT 'PROGRAM' PW_OUTPUT`` prints ``retry|stalled SLOPE NEEDED``
#: (``-`` where not fitted) — :func:`~agi_data.aiida.parsers.qe_stdout.scf_outlook`'s rule, for the job script
SCF_OUTLOOK_AWK = r"""
/estimated scf accuracy/ { for (i = 1; i < NF; i++) if ($i == "<") { v = $(i + 1) + 0; if (v > 0) a[++n] = v } }
END {
  if (n < 3) { print "retry - -"; exit }
  w = int((n + 1) / 2); if (w < 3) w = 3
  sx = 0; sy = 0
  for (i = n - w + 1; i <= n; i++) { sx += i; sy += log(a[i]) / log(10) }
  mx = sx / w; my = sy / w; sxy = 0; sxx = 0
  for (i = n - w + 1; i <= n; i++) { sxy += (i - mx) * (log(a[i]) / log(10) - my); sxx += (i - mx) ^ 2 }
  s = sxy / sxx
  if (s >= 0) { printf "stalled %.4f -\n", s; exit }
  need = (my + s * (n - mx) - log(thr) / log(10)) / -s
  printf "%s %.4f %.1f\n", (need <= left ? "retry" : "stalled"), s, need
}
"""

#: the job script's gate of the pw.x restart lines (bash; ``{steps_left}``: ``case`` arms attempt -> SCF steps
#: the restarts from that attempt on may take; ``{judge}``: 1 to refuse stalled SCFs, 0 to restart every one)
SCF_GATE = r"""# agi.wannier_batch: a pw.x restart line (<seed>.pw.<k>.in) runs only when attempt k-1 stopped unconverged
# and its SCF accuracy trend can still reach conv_thr in the steps left; verdicts in <seed>.scf.log
agi_scf_gate() {{
  [[ $BASH_COMMAND =~ ([A-Za-z0-9_]+)\.pw\.([0-9]+)\.in ]] || return 0
  local seed=${{BASH_REMATCH[1]}} k=${{BASH_REMATCH[2]}} prev left thr verdict
  [ -e "$seed.scf.done" ] && return 1
  if [ "$k" -eq 2 ]; then prev=$seed.pw; else prev=$seed.pw.$((k - 1)); fi
  if ! grep -q "convergence NOT achieved" "$prev.out" 2>/dev/null; then : > "$seed.scf.done"; return 1; fi
  case $k in {steps_left} esac
  thr=$(sed -n "s/^ *conv_thr *= *//p" "$prev.in")
  if [ {judge} -eq 1 ]; then
    verdict=$(awk -v thr="$thr" -v left="$left" '{awk}' "$prev.out")
  else verdict="retry - -"; fi
  echo "$((k - 1)) $verdict" >> "$seed.scf.log"
  case $verdict in retry*) return 0 ;; esac
  : > "$seed.scf.done"; return 1
}}
shopt -s extdebug
trap agi_scf_gate DEBUG"""


def scf_gate(params: dict) -> str:
    """The bash of :data:`SCF_GATE` for a resolved protocol; empty when it allows no restarts."""
    schedule = pw_restart_inputs(params)
    if not schedule:
        return ""
    left = [sum(n for _, n in schedule[i:]) for i in range(len(schedule))]
    arms = " ".join(f"{k}) left={n} ;;" for k, n in enumerate(left, start=2))
    return SCF_GATE.format(steps_left=arms, judge=int(restart_policy(params)["refuse_stalled"]),
                           awk=SCF_OUTLOOK_AWK.strip())


def frame_seednames(keys) -> dict[str, str]:
    """``{structure key: seedname}``: ``f0, f1, …`` in natural key order (``frame_2`` before ``frame_10``)."""
    return {key: f"f{i}" for i, key in enumerate(sorted(keys, key=lambda k: (len(k), k)))}


def _validate_parameters(node, _port):
    params = node.get_dict()
    missing = [k for k in ("pw", "wannier90") if k not in params]
    if missing:
        return f"parameters need the sections {missing} (a resolved `wannier` protocol, agi_data/protocols/wannier.yaml)"
    if params["pw"].get("kpoints") != "gamma":
        return "the Wannier chain runs at Γ only: parameters['pw']['kpoints'] must be 'gamma'"
    return None


def _validate_inputs(inputs, _ctx):
    structures = inputs.get("structures") or {}
    if not structures:
        return "give at least one structure in `structures`"
    pseudos = set(inputs.get("pseudos") or {})
    for key, structure in structures.items():
        missing = sorted(set(structure.get_kind_names()) - pseudos)
        if missing:
            return f"no pseudopotential for {missing} (structure {key}) in `pseudos`"
    return None


class WannierBatchCalculation(CalcJob):
    """pw.x → wannier90.x -pp → pw2wannier90.x → wannier90.x for each of a batch of Γ-point frames."""

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.inputs["code"].help = "pw.x (the CalcJob's main code)"
        spec.input("pw2wannier90_code", valid_type=orm.AbstractCode, help="pw2wannier90.x")
        spec.input("wannier90_code", valid_type=orm.AbstractCode, help="wannier90.x")
        spec.input_namespace("structures", valid_type=orm.StructureData, dynamic=True,
                             help="the frames, keyed by label (e.g. frame_12)")
        spec.input_namespace("pseudos", valid_type=UpfData, dynamic=True, help="one UPF per kind name")
        spec.input("parameters", valid_type=orm.Dict, validator=_validate_parameters,
                   help="the resolved `wannier` protocol: sections pw, wannier90; expected_centres, assign_radius")
        spec.inputs.validator = _validate_inputs
        spec.inputs["metadata"]["options"]["parser_name"].default = "agi.wannier_batch"
        spec.inputs["metadata"]["options"]["resources"].default = {"num_machines": 1, "num_mpiprocs_per_machine": 1}

        spec.output("output_parameters", valid_type=orm.Dict,
                    help="per frame: pw.x energy, gap, SCF iterations, spreads, wall times; failures by frame")
        spec.output_namespace("centres", valid_type=orm.ArrayData, dynamic=True,
                              help="per good frame: arrays centres (n_wann,3) Å, spreads (n_wann,) Å², owner")
        spec.default_output_node = "output_parameters"

        define_exit_codes(spec, "ERROR_NO_RETRIEVED_FOLDER", *FRAME_EXIT_CODES, "ERROR_SOME_FRAMES_FAILED")

    def prepare_for_submission(self, folder):
        params = self.inputs.parameters.get_dict()
        pseudos = dict(self.inputs.pseudos)
        z_valence = {kind: pseudo.z_valence for kind, pseudo in pseudos.items()}
        names = {kind: pseudo.filename for kind, pseudo in pseudos.items()}
        resources = self.inputs.metadata.options.resources
        mpi = int(resources.get("num_machines", 1)) * int(resources.get("num_mpiprocs_per_machine", 1)) > 1
        codes = {"pw": self.inputs.code, "pw2wannier90": self.inputs.pw2wannier90_code,
                 "wannier90": self.inputs.wannier90_code}

        calcinfo = datastructures.CalcInfo()
        calcinfo.uuid = str(self.uuid)
        calcinfo.local_copy_list = [(p.uuid, p.filename, p.filename) for p in pseudos.values()]
        calcinfo.remote_copy_list = []
        calcinfo.codes_info = []
        retrieve = []
        for key, seed in frame_seednames(self.inputs.structures).items():
            structure = self.inputs.structures[key]
            ase = structure.get_ase()
            symbols = [site.kind_name for site in structure.sites]
            _n_occ, files = chain_input_files(symbols, ase.cell.array, ase.positions, params, names, z_valence, seed,
                                              restarts=True)
            for name, text in files.items():
                with folder.open(name, "w") as handle:
                    handle.write(text)
            restart_lines = [("pw", ["-in", f"{seed}.pw.{k}.in"], f"{seed}.pw.{k}.out")
                             for k in range(2, len(pw_restart_inputs(params)) + 2)]
            lines = chain_command_lines(seed)
            for code, args, stdout in lines[:1] + restart_lines + lines[1:]:
                info = datastructures.CodeInfo()
                info.code_uuid = codes[code].uuid
                info.cmdline_params = args
                info.stdout_name = stdout
                info.withmpi = mpi and code != "wannier90"  # wannier90.x at Γ is serial here
                calcinfo.codes_info.append(info)
            retrieve += [f"{seed}.pw.out", *(out for _, _, out in restart_lines), f"{seed}.scf.log",
                         f"{seed}.p2w.out", f"{seed}.wout", f"{seed}.werr", f"{seed}_centres.xyz"]
        calcinfo.prepend_text = scf_gate(params)
        shebang = self.node.computer.get_shebang() if self.node.computer else "#!/bin/bash"
        if calcinfo.prepend_text and "bash" not in shebang:
            raise ValueError(f"the SCF restarts of the batch job need bash, but computer "
                             f"{self.node.computer.label!r} writes job scripts for {shebang!r}: set its shebang to "
                             "'#!/bin/bash' (verdi computer configure) or give pw.scf_restarts: 0")
        calcinfo.append_text = "trap - DEBUG" if calcinfo.prepend_text else None
        calcinfo.codes_run_mode = datastructures.CodeRunMode.SERIAL
        calcinfo.retrieve_list = retrieve
        return calcinfo
