"""SCF restarts in both ``agi.wannier`` routes, on real pw.x: a slow SCF is recovered, a hopeless one refused.

The slow frame is a perturbed 4-atom α-AgI cell that needs 11 SCF steps; with ``electron_maxstep: 6``
its first attempt stops unconverged with the accuracy still falling ~0.8 decades per step, so the
restart (``mixing_beta`` 0.4 → 0.32, ``electron_maxstep`` 6 → 9, from the charge density pw.x left)
converges — to the energy of an SCF converged at once. The hopeless frame has two Ag 1.2 Å apart:
its accuracy stalls near 2e-2 Ry, so it is refused after its first attempt, never restarted. Both
routes (one ``agi.wannier_batch`` job; a ``PwBaseWorkChain`` per frame) must count the same.
"""

from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data import open_store
from agi_data.aiida.calculations.wannier_batch import SCF_OUTLOOK_AWK, scf_gate
from agi_data.aiida.calculations.wannier_chain import pw_restart_inputs
from agi_data.aiida.parsers.qe_stdout import parse_pw_stdout, scf_outlook
from agi_data.aiida.protocols import load_protocol
from agi_data.aiida.testing import ag_pair_snapshot, prepare_profile, write_plain_inputs
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.pseudo import shipped_pseudopotentials
from agi_data.structures import alpha_agi
from agi_data.units import RYDBERG_EV

CAPPED = {"pw": {"electron_maxstep": 6}}  # the slow frame needs 11 steps: its first attempt stops at 6


def _awk(accuracies, conv_thr, steps_left, tmp_path):
    """The job script's verdict on a fake pw.x output holding these accuracies."""
    out = tmp_path / "fake.pw.out"
    out.write_text("".join(f"     estimated scf accuracy    <    {a:.8E} Ry\n" for a in accuracies))
    proc = subprocess.run(["awk", "-v", f"thr={conv_thr}", "-v", f"left={steps_left}", SCF_OUTLOOK_AWK, str(out)],
                          capture_output=True, text=True, check=True)
    verdict, slope, needed = proc.stdout.split()
    return verdict, None if slope == "-" else float(slope), None if needed == "-" else float(needed)


def test_outlook_rule_analytic_and_the_job_scripts_awk_agrees(tmp_path):
    # one decade per step from 1 Ry: after 6 steps at 1e-5 Ry, 1e-9 Ry is exactly 4 steps away
    geometric = [10.0 ** -i for i in range(6)]
    assert scf_outlook(geometric, 1e-9, 4) == {"verdict": "retry", "slope_decades_per_step": -1.0,
                                               "steps_needed": 4.0}
    assert scf_outlook(geometric, 1e-9, 3)["verdict"] == "stalled"  # the same trend, one step short
    flat = [2e-2, 3e-2, 2e-2, 2.5e-2, 2e-2, 3e-2]
    assert scf_outlook(flat, 1e-9, 10_000)["verdict"] == "stalled"
    assert scf_outlook(flat, 1e-9, 10_000)["steps_needed"] is None  # rising on average: no extrapolation
    assert scf_outlook([1.0, 0.5], 1e-9, 0)["verdict"] == "retry"  # two steps: too short to judge
    rng = np.random.default_rng(7)
    for _ in range(12):
        acc = 10.0 ** (-rng.uniform(0.0, 0.9) * np.arange(rng.integers(3, 40)) + rng.normal(0, 0.4, 1))
        acc = acc * 10.0 ** rng.normal(0, 0.3, acc.size)
        left = int(rng.integers(1, 60))
        py = scf_outlook(acc, 1e-9, left)
        verdict, slope, needed = _awk(acc, 1e-9, left, tmp_path)
        assert verdict == py["verdict"]
        assert slope == pytest.approx(py["slope_decades_per_step"], abs=1e-4)
        assert needed == (None if py["steps_needed"] is None else pytest.approx(py["steps_needed"], abs=0.1))


def test_retry_schedule_and_job_script_gate_follow_the_protocol():
    params = load_protocol("wannier", "fast", CAPPED)
    assert pw_restart_inputs(params) == [(0.32, 9), (0.256, 14)]  # × 0.8 and × 1.5 (ceil), twice
    gate = scf_gate(params)
    assert "2) left=23 ;; 3) left=14 ;;" in gate and "trap agi_scf_gate DEBUG" in gate
    assert scf_gate(load_protocol("wannier", "fast", {"pw": {"scf_restarts": 0}})) == ""
    from agi_data.aiida.workflows.builder import BuilderInputError

    for bad, words in (({"mixing_beta_factor": 1.25}, "mixing_beta_factor must lie in (0, 1]"),
                       ({"electron_maxstep_factor": 0.5}, "electron_maxstep_factor must be ≥ 1")):
        with pytest.raises(BuilderInputError, match=re.escape(words)):
            WannierWorkChain.get_builder_from_protocol(
                None, structures={"a": alpha_agi(1, seed=0)}, protocol="fast", overrides={"pw": {"scf_restart": bad}})
    with pytest.raises(BuilderInputError, match="scf_restarts must be"):
        WannierWorkChain.get_builder_from_protocol(None, structures={"a": alpha_agi(1, seed=0)}, protocol="fast",
                                                   overrides={"pw": {"scf_restarts": -1}})



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return prepare_profile(tmp_path_factory.mktemp("aiida-work"))


@pytest.fixture(scope="module")
def frames():
    return {"slow": alpha_agi(1, seed=5, rattle=0.1), "hopeless": ag_pair_snapshot(1.2)}


@pytest.fixture(scope="module")
def converged_at_once(frames, tmp_path_factory):
    """Total energy (eV) of the slow frame's SCF run to convergence in one pw.x (no cap), and its step count."""
    params = load_protocol("wannier", "fast")
    inputs = write_plain_inputs(frames["slow"], tmp_path_factory.mktemp("direct"), params, shipped_pseudopotentials())
    proc = subprocess.run(["pw.x", "-in", "aiida.pw.in"], cwd=inputs["workdir"], capture_output=True, text=True,
                          check=True)
    out = parse_pw_stdout(proc.stdout)
    assert out["converged"] and out["n_scf_iterations"] > 6  # the cap of CAPPED really stops its first attempt
    return out


@pytest.fixture(scope="module", params=["batched", "steps"])
def capped_run(env, frames, tmp_path_factory, request):
    """agi.wannier on a store run of [slow, hopeless] with electron_maxstep 6, in one route."""
    slow, hopeless = frames["slow"], frames["hopeless"]
    store = open_store(tmp_path_factory.mktemp("restarts") / "store")
    with store.create_run("agi-restarts", slow.numbers, slow.cell.array, 0.01, attrs={"engine": "test"}) as w:
        w.append(np.stack([slow.positions, hopeless.positions]))
    builder = WannierWorkChain.get_builder_from_protocol(
        None, "agi-restarts", [0, 1], protocol="fast", store=store,
        overrides={**CAPPED, "calcjob": request.param})
    result, node = run_get_node(builder)
    return {"route": request.param, "node": node, "result": result, "store": store}


@pytest.mark.slow
def test_slow_scf_is_recovered_and_a_hopeless_one_refused_in_both_routes(capped_run, converged_at_once):
    node, result, route = capped_run["node"], capped_run["result"], capped_run["route"]
    assert node.is_finished_ok, node.exit_message
    summary = result["scf_recovery"].get_dict()
    assert summary["n_frames"] == 2 and summary["n_recovered"] == 1 and summary["n_refused"] == 1
    assert summary["refused_by_reason"] == {"stalled": 1, "restarts_used_up": 0, "metallic": 0}
    assert summary["restarts"] == 1 and summary["extra_wall_seconds"] > 0
    slow, hopeless = summary["frames"]["agi-restarts:0"], summary["frames"]["agi-restarts:1"]
    assert slow["recovered"] and slow["restarts"] == 1
    assert slow["mixing_beta"] == [0.4, 0.32] and slow["electron_maxstep"] == [6, 9]
    assert slow["scf_iterations"][0] == 6 and 1 <= slow["scf_iterations"][1] <= 9
    # not restarted: one attempt, and the time it took is counted against the refusals
    assert hopeless["refused"] == "stalled" and hopeless["restarts"] == 0 and not hopeless["recovered"]
    assert summary["refused_wall_seconds"] == pytest.approx(hopeless["wall_seconds"])
    assert summary["recovered_by_action"] == {
        "mixing_beta 0.4 → 0.32, electron_maxstep 6 → 9, full restart from the last charge density": 1}
    line = next(m for m in orm.Log.collection.get_logs_for(node) if "SCF recovery" in m.message).message
    assert "1 of 2 frames recovered by 1 restart(s)" in line and "1 refused (1 stalled" in line
    print(f"{route}: {line}; recovered {slow}; refused {hopeless}")

    # the recovered frame is the converged SCF: same total energy as pw.x run to convergence at once
    (wset,) = result["wannier_sets"].values()
    np.testing.assert_array_equal(wset.frames, [0])
    assert wset.base.attributes.get("failures")["1"]["exit_code"] == "ERROR_SCF_NOT_CONVERGED"
    if route == "steps":
        pws = [c for c in node.called_descendants if c.process_label == "PwCalculation"]
        assert len(pws) == 3  # two attempts for the slow frame, one for the hopeless
        last = next(c for c in pws if c.pk == slow["pks"][-1])
        energy = parse_pw_stdout(last.outputs.retrieved.base.repository.get_object_content("aiida.out"))[
            "total_energy_eV"]  # the same reader as the batched route's (aiida-quantumespresso's eV differ by 1e-7)
        assert last.inputs.parameters["CONTROL"]["restart_mode"] == "restart"
    else:
        (batch,) = [c for c in node.called if c.process_label == "WannierBatchCalculation"]
        out = batch.outputs.output_parameters.get_dict()
        assert out["n_scf_recovered"] == 1 and out["n_scf_refused"] == 1
        energy = out["frames"]["frame_0"]["pw"]["total_energy_eV"]
        files = batch.outputs.retrieved.base.repository.list_object_names()
        assert "f0.pw.2.out" in files and "f0.pw.3.out" not in files  # converged at the first restart
        assert "f1.pw.2.out" not in files  # refused: its restart lines were skipped
        log = batch.outputs.retrieved.base.repository.get_object_content("f1.scf.log").split()
        assert log[:2] == ["1", "stalled"]
        assert out["frames"]["frame_1"]["scf"]["verdicts"][0][1] == "stalled"
        script = batch.base.repository.get_object_content("_aiidasubmit.sh")
        assert re.search(r"'f0\.pw\.2\.in'\s+> 'f0\.pw\.2\.out'", script)
    assert energy == pytest.approx(converged_at_once["total_energy_eV"], abs=2e-5 * RYDBERG_EV)

    # the store's Wannier group counts them too (what reports read)
    ws = capped_run["store"].wannier("agi-restarts")
    assert ws.attrs["failed_frames"] == {"1": "ERROR_SCF_NOT_CONVERGED"}
    assert ws.attrs["scf_refused_frames"] == {"1": "stalled"}
    assert list(ws.attrs["scf_recovered_frames"]) == ["0"]
    assert ws.attrs["scf_recovered_frames"]["0"]["restarts"] == 1


@pytest.mark.slow
def test_restarts_used_up_are_counted_and_zero_restarts_refuse_at_once(env, frames):
    """scf_restarts: 0 — the slow frame is left out after its first attempt, counted as restarts_used_up."""
    builder = WannierWorkChain.get_builder_from_protocol(
        None, structures={"slow": frames["slow"]}, protocol="fast",
        overrides={"pw": {"electron_maxstep": 6, "scf_restarts": 0}, "calcjob": "batched"})
    result, node = run_get_node(builder)
    assert node.exit_status == WannierWorkChain.exit_codes.ERROR_SCF_NOT_CONVERGED.status
    summary = result["scf_recovery"].get_dict()
    assert summary["n_recovered"] == 0 and summary["refused_by_reason"]["restarts_used_up"] == 1
    assert summary["frames"]["slow"]["restarts"] == 0
    assert orm.load_node(node.pk).outputs.scf_recovery.pk == result["scf_recovery"].pk
