"""Restarting a pw.x SCF that did not converge, and refusing one that never will: shared by every pw.x route.

A pw.x SCF that stops at ``electron_maxstep`` without converging is either *slow* — its estimated
accuracy still falls, decade after decade, and a restart from the charge density it reached
with gentler mixing finishes it — or *hopeless*: a frame without a gap (charge sloshing between
degenerate levels), atoms on top of each other, a structure a model has led astray. The first is
restarted, the second refused at once and counted: it is not the mixing's fault, and restarting it
only multiplies its cost.

Both Wannier routes and ``agi.reference`` run pw.x inside aiida-quantumespresso's
``PwBaseWorkChain`` (:func:`restartable`); with a ``restart_policy`` (the protocol's
``pw.scf_restart`` block) the Wannier routes use :class:`ScfRestartWorkChain`, whose handler
for ``ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED`` first asks
:func:`~agi_data.aiida.parsers.qe_stdout.scf_outlook` whether the trend can reach ``conv_thr``
within the steps the remaining restarts allow, and then restarts as aiida-quantumespresso does
(``mixing_beta`` × ``mixing_beta_factor``, a full restart from the last charge density and
wavefunctions) with ``electron_maxstep`` × ``electron_maxstep_factor`` (:func:`retry_schedule`,
the schedule the ``agi.wannier_batch`` job script follows too).

:func:`restart_record` says per structure what was tried and what it cost; :func:`recovery_summary`
counts, for a whole WorkChain, the frames recovered (by which action, at what extra pw.x time) and
the frames refused (and why).
"""

from __future__ import annotations

from aiida import orm
from aiida.engine import ProcessHandlerReport, calcfunction, process_handler
from aiida.plugins import CalculationFactory, WorkflowFactory
from aiida_quantumespresso.common.types import RestartType

from ..calculations.wannier_chain import REFUSAL_REASONS, restart_policy, retry_schedule
from ..parsers.qe_stdout import parse_pw_stdout, scf_outlook
from . import common

PwBaseWorkChain = WorkflowFactory("quantumespresso.pw.base")
PwCalculation = CalculationFactory("quantumespresso.pw")


def restartable(inputs: dict, params: dict) -> dict:
    """``PwBaseWorkChain`` inputs around the inputs of one ``quantumespresso.pw`` run.

    aiida-quantumespresso's restart handlers then act on a non-converged SCF
    (``ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED``: ``mixing_beta`` × 0.8, a full restart from the last
    charge density and wavefunctions) up to ``pw.scf_restarts`` times. ``clean_workdir`` stays off:
    the restart reads the previous run's folder. With a ``pw.scf_restart`` block in ``params`` the
    inputs carry its ``restart_policy`` (for :class:`ScfRestartWorkChain`).
    """
    inputs = dict(inputs)
    kpoints = inputs.pop("kpoints")
    out = {"pw": inputs, "kpoints": kpoints, "max_iterations": orm.Int(int(params["pw"]["scf_restarts"]) + 1),
           "clean_workdir": orm.Bool(False), "metadata": {"label": inputs["metadata"]["label"]}}
    policy = restart_policy(params)
    if policy is not None:
        out["restart_policy"] = orm.Dict(policy)
    return out


def attempt_outlook(calc, steps_left: int) -> dict | None:
    """:func:`scf_outlook` of one finished pw.x CalcJob (its retrieved ``aiida.out``), None without output."""
    if "retrieved" not in calc.outputs:
        return None
    name = calc.get_option("output_filename") or "aiida.out"
    try:
        text = calc.outputs.retrieved.base.repository.get_object_content(name)
    except (FileNotFoundError, OSError):
        return None
    conv_thr = float(calc.inputs.parameters["ELECTRONS"]["conv_thr"])
    return scf_outlook(parse_pw_stdout(text)["scf_accuracy_Ry"], conv_thr, steps_left)


class ScfRestartWorkChain(PwBaseWorkChain):
    """aiida-quantumespresso's ``PwBaseWorkChain`` with a protocol's SCF restart policy and refusal of hopeless SCFs.

    Without ``restart_policy`` it is ``PwBaseWorkChain``. With it, an SCF that did not converge is
    first judged (:func:`~agi_data.aiida.parsers.qe_stdout.scf_outlook` on its stdout, the budget
    being the SCF steps of the restarts left): ``stalled`` ends the WorkChain with
    ``ERROR_KNOWN_UNRECOVERABLE_FAILURE`` (no restart); otherwise it restarts fully from the last
    charge density with ``mixing_beta`` and ``electron_maxstep`` of :func:`retry_schedule`.
    """

    @classmethod
    def define(cls, spec):
        super().define(spec)
        spec.input("restart_policy", valid_type=orm.Dict, required=False,
                   help="mixing_beta_factor, electron_maxstep_factor, refuse_stalled (the protocol's pw.scf_restart)")

    @process_handler(priority=410, exit_codes=[PwCalculation.exit_codes.ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED])
    def handle_electronic_convergence_not_reached(self, calculation):
        """Refuse a stalled SCF; else restart from the last charge density with the policy's mixing_beta and steps."""
        if "restart_policy" not in self.inputs:
            return super().handle_electronic_convergence_not_reached(calculation)
        policy = self.inputs.restart_policy.get_dict()
        electrons = self.ctx.inputs.parameters.setdefault("ELECTRONS", {})
        beta = float(electrons.get("mixing_beta", self.defaults.qe.mixing_beta))
        maxstep = int(electrons.get("electron_maxstep", 100))
        first = self.inputs.pw.parameters.get_dict().get("ELECTRONS", {})  # the schedule counts from attempt 1
        schedule = retry_schedule(float(first.get("mixing_beta", self.defaults.qe.mixing_beta)),
                                  int(first.get("electron_maxstep", 100)), policy,
                                  self.inputs.max_iterations.value - 1)[self.ctx.iteration - 1:]
        if not schedule:  # that was the last attempt: the base class ends with ERROR_MAXIMUM_ITERATIONS_EXCEEDED
            return ProcessHandlerReport(True)
        outlook = attempt_outlook(calculation, sum(n for _, n in schedule))
        if policy["refuse_stalled"] and outlook is not None and outlook["verdict"] == "stalled":
            self.report(f"{calculation.process_label}<{calculation.pk}>: SCF refused, not restarted: accuracy trend "
                        f"{outlook['slope_decades_per_step']} decades/step, {outlook['steps_needed']} more steps "
                        f"needed, {sum(n for _, n in schedule)} left ({REFUSAL_REASONS['stalled']})")
            return ProcessHandlerReport(True, self.exit_codes.ERROR_KNOWN_UNRECOVERABLE_FAILURE)
        new_beta, new_maxstep = schedule[0]
        electrons["mixing_beta"], electrons["electron_maxstep"] = new_beta, new_maxstep
        self.set_restart_type(RestartType.FULL, calculation.outputs.remote_folder)
        self.report_error_handled(calculation, f"mixing_beta {beta} -> {new_beta}, electron_maxstep {maxstep} -> "
                                               f"{new_maxstep}, full restart from the last charge density")
        return ProcessHandlerReport(True)


def pw_attempts(base) -> list:
    """The pw.x runs (PwCalculation nodes) of one PwBaseWorkChain, in order."""
    return sorted((c for c in base.called if c.process_label == "PwCalculation"), key=lambda c: c.ctime)


def restart_record(attempts: list, *, recovered: bool, refused: str | None = None) -> dict:
    """How a frame was restarted and what it cost: restarts, mixing_beta per attempt, SCF steps, extra wall time.

    ``extra_wall_seconds``: pw.x's own wall time of the attempts before the last (the price of the
    restarts; the last attempt is what a converging first run would have cost, roughly).
    ``refused``: a key of :data:`REFUSAL_REASONS` when the frame was given up.
    """
    def out(calc) -> dict:
        return calc.outputs.output_parameters.get_dict() if "output_parameters" in calc.outputs else {}

    def wall(calc) -> float:
        return float(out(calc).get("wall_time_seconds") or 0.0)

    record = {"recovered": recovered, "restarts": len(attempts) - 1,
              "mixing_beta": [c.inputs.parameters["ELECTRONS"].get("mixing_beta") for c in attempts],
              "electron_maxstep": [c.inputs.parameters["ELECTRONS"].get("electron_maxstep") for c in attempts],
              "scf_iterations": [out(c).get("scf_iterations", out(c).get("total_number_of_scf_iterations"))
                                 for c in attempts],
              "exit_status": [c.exit_status for c in attempts],
              "extra_wall_seconds": round(sum(wall(c) for c in attempts[:-1]), 2),
              "wall_seconds": round(sum(wall(c) for c in attempts), 2),
              "pks": [c.pk for c in attempts]}
    if refused is not None:
        record["refused"] = refused
    return record


def refusal_of(base, attempts: list, exit_name: str | None) -> str | None:
    """Why a frame run by ``base`` (a PwBaseWorkChain) was given up, a key of :data:`REFUSAL_REASONS`, or None.

    ``exit_name``: the name of the frame's failure (``ERROR_SCF_NOT_CONVERGED``, ``ERROR_METALLIC``, …).
    """
    if exit_name == "ERROR_METALLIC":
        return "metallic"
    if exit_name != "ERROR_SCF_NOT_CONVERGED":
        return None
    if base.exit_status == PwBaseWorkChain.exit_codes.ERROR_KNOWN_UNRECOVERABLE_FAILURE.status:
        return "stalled"
    return "restarts_used_up"


def action_of(record: dict) -> str:
    """The restart a recovered frame needed, in words (``mixing_beta 0.4→0.32, electron_maxstep 6→9, …``)."""
    beta, steps = record["mixing_beta"], record["electron_maxstep"]
    return (f"mixing_beta {' → '.join(map(str, beta))}, electron_maxstep {' → '.join(map(str, steps))}, "
            "full restart from the last charge density")


@calcfunction
def recovery_summary(records: orm.Dict, n_frames: orm.Int) -> orm.Dict:
    """Counts of one WorkChain's SCF restarts: frames recovered (how, at what cost) and frames refused (why).

    ``records``: ``{frame label: record}`` (:func:`restart_record`, or the ``scf`` entry of an
    ``agi.wannier_batch`` frame) of every frame that needed a restart or was refused. Times are
    pw.x wall seconds.
    """
    recs = records.get_dict()
    recovered = {k: r for k, r in recs.items() if r.get("recovered")}
    refused = {k: r for k, r in recs.items() if r.get("refused")}
    by_action: dict[str, int] = {}
    for r in recovered.values():
        by_action[action_of(r)] = by_action.get(action_of(r), 0) + 1
    by_reason = {reason: sum(r["refused"] == reason for r in refused.values()) for reason in REFUSAL_REASONS}
    return orm.Dict({
        "n_frames": n_frames.value, "n_recovered": len(recovered), "n_refused": len(refused),
        "restarts": sum(r["restarts"] for r in recovered.values()),
        "extra_wall_seconds": round(sum(r["extra_wall_seconds"] for r in recovered.values()), 2),
        "refused_wall_seconds": round(sum(r.get("wall_seconds", 0.0) for r in refused.values()), 2),
        "recovered_by_action": by_action, "refused_by_reason": by_reason,
        "reasons": {k: v for k, v in REFUSAL_REASONS.items()},
        "frames": recs,
    })


def summary_line(summary: dict) -> str:
    """One line for a WorkChain's report from :func:`recovery_summary`'s output."""
    reasons = ", ".join(f"{n} {k}" for k, n in summary["refused_by_reason"].items() if n) or "none"
    return (f"SCF recovery: {summary['n_recovered']} of {summary['n_frames']} frames recovered by "
            f"{summary['restarts']} restart(s) (+{summary['extra_wall_seconds']:.1f} s of pw.x); "
            f"{summary['n_refused']} refused ({reasons}; {summary['refused_wall_seconds']:.1f} s of pw.x spent on them)")


def judge_frame(workchain, base, meta: dict, min_gap_eV) -> tuple:
    """The outcome of one frame's restart chain ``base``: ``(calc, exit_code or None, restart record or None)``.

    The last pw.x attempt decides (none ran: the restart chain itself); the frame is classified by
    :func:`common.classify_pw` (SCF, gap) and, when it needed restarts or was refused, described by
    :func:`restart_record`.
    """
    attempts = pw_attempts(base)
    calc = attempts[-1] if attempts else base
    code, _gap = common.classify_pw(workchain, calc, label=meta["label"], n_occ=meta["n_occ"], min_gap=min_gap_eV)
    refused = refusal_of(base, attempts, None if code is None else common.exit_code_name(workchain, code))
    record = None
    if attempts and (len(attempts) > 1 or refused):
        record = restart_record(attempts, recovered=code is None, refused=refused)
    return calc, code, record
