"""The reference and Wannier WorkChains through a real Slurm (``core.slurm``), against ``core.direct``.

The module starts a one-node Slurm cluster on this machine with ``scripts/slurm-cluster.sh``
(slurmctld + slurmd on localhost, Debian's slurm-wlm and munge; idempotent), registers the codes
on a ``core.slurm`` computer of the test profile and checks, for each job:

* Slurm ran it: the CalcJob node records the job id and ``scontrol show job`` knows that id;
* the results equal those of the same WorkChain on the ``core.direct`` computer (same inputs,
  same code, one MPI rank each: to 1e-6 eV and 1e-5 eV/Å);
* a job cancelled with ``scancel`` while it runs ends the CalcJob with a named exit code and the
  WorkChain leaves that frame out by name (nothing else lost).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data.aiida import setup as agi_setup
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def slurm_cluster():
    """The one-node cluster (started once; the script is idempotent and waits until the node is idle)."""
    out = subprocess.run(["bash", str(ROOT / "scripts" / "slurm-cluster.sh")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "is idle" in out.stdout or "is mix" in out.stdout or "is alloc" in out.stdout, out.stdout
    return out.stdout


@pytest.fixture(scope="module")
def computers(slurm_cluster, tmp_path_factory):
    agi_setup.enable_sqlite_wal()
    work = tmp_path_factory.mktemp("scratch")
    direct = agi_setup.ensure_computer("direct-local", workdir=work / "direct", mpiprocs=1, poll_interval=0.5)
    slurm = agi_setup.ensure_computer("slurm-local", workdir=work / "slurm", mpiprocs=1, poll_interval=0.5,
                                      scheduler="core.slurm")
    agi_setup.ensure_pseudo_family()
    return {"direct": (direct, agi_setup.ensure_codes(direct, only=["pw"])),
            "slurm": (slurm, agi_setup.ensure_codes(slurm, only=["pw"]))}


def _scontrol(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True).stdout


def _reference(code, structures: dict, **overrides):
    builder = ReferenceWorkChain.get_builder_from_protocol(code, structures, protocol="fast",
                                                           overrides=overrides or None)
    return run_get_node(builder)


def test_reference_through_slurm_equals_direct(computers):
    frame = alpha_agi(1, seed=11, rattle=0.08)
    results = {}
    for route, (_computer, codes) in computers.items():
        result, node = _reference(codes["pw"], {"f": frame})
        assert node.is_finished_ok, f"{route}: {node.exit_status} {node.exit_message}"
        pw = next(c for c in node.called_descendants if c.process_label == "PwCalculation")
        results[route] = (result["dataset"].to_atoms()[0], pw)

    (ours, pw_slurm), (ref, pw_direct) = results["slurm"], results["direct"]
    job_id = pw_slurm.get_job_id()
    assert job_id and re.fullmatch(r"\d+", str(job_id)), job_id
    shown = _scontrol(job_id)
    assert f"JobId={job_id}" in shown and "JobState=COMPLETED" in shown, shown
    assert pw_slurm.computer.scheduler_type == "core.slurm"
    assert pw_direct.computer.scheduler_type == "core.direct"
    assert ours.get_potential_energy() == pytest.approx(ref.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(ours.get_forces(), ref.get_forces(), atol=1e-5)


def _cancel_first_job_of(user_label: str, stop: threading.Event, seen: list) -> None:
    """scancel the first Slurm job named like AiiDA's jobs once it is RUNNING (polls squeue)."""
    while not stop.is_set():
        out = subprocess.run(["squeue", "-h", "-o", "%i %T %j"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, state, name = line.split(maxsplit=2)
            if state == "RUNNING" and name.startswith(user_label):
                subprocess.run(["scancel", job], check=False)
                seen.append(job)
                return
        time.sleep(0.2)


def test_a_cancelled_job_is_a_named_failure_and_the_other_frames_land(computers):
    _computer, codes = computers["slurm"]
    # the 32-ion frame goes first and runs for many seconds: long enough to be cancelled while RUNNING
    frames = {"cancelled": alpha_agi(2, seed=22, rattle=0.05), "kept": alpha_agi(1, seed=21, rattle=0.08)}
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_cancel_first_job_of, args=("aiida-", stop, seen), daemon=True)
    watcher.start()
    try:
        result, node = _reference(codes["pw"], frames, max_concurrent=1, pw={"scf_restarts": 0})
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert seen, "no running Slurm job was seen to cancel"
    shown = _scontrol(seen[0])
    assert "JobState=CANCELLED" in shown, shown
    pws = [c for c in node.called_descendants if c.process_label == "PwCalculation"]
    cancelled = [c for c in pws if str(c.get_job_id()) == seen[0]]
    assert len(cancelled) == 1 and not cancelled[0].is_finished_ok
    failures = result["dataset"].base.attributes.get("failures") if "dataset" in result else {}
    kept = [c for c in pws if c.is_finished_ok]
    # exactly the cancelled frame is missing, and it is named with its exit code
    assert len(kept) == len(frames) - 1
    assert len(failures) == 1
    (name, why), = failures.items()
    assert why["exit_code"].startswith("ERROR_"), why


def test_wannier_batch_through_slurm_equals_direct(computers):
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    frame = alpha_agi(1, seed=5, rattle=0.1)
    centres = {}
    for route, (computer, _codes) in computers.items():
        codes = agi_setup.ensure_codes(computer)
        builder = WannierWorkChain.get_builder_from_protocol(codes, structures={"f": frame}, protocol="fast",
                                                             overrides={"calcjob": "batched"})
        result, node = run_get_node(builder)
        assert node.is_finished_ok, f"{route}: {node.exit_status} {node.exit_message}"
        (batch,) = [c for c in node.called_descendants if c.process_label == "WannierBatchCalculation"]
        if route == "slurm":
            shown = _scontrol(batch.get_job_id())
            assert "JobState=COMPLETED" in shown, shown
        (wset,) = result["wannier_sets"].values()
        centres[route] = np.asarray(wset.centres[0])
    assert centres["slurm"].shape == (18, 3)  # 4 per I, 5 per Ag in the 4-ion cell
    np.testing.assert_allclose(centres["slurm"], centres["direct"], atol=1e-5)


def test_training_job_through_slurm(computers):
    from test_train_allegro import classical_reference_set

    from agi_data.aiida.calculations.nequip_train import ensure_nequip_code
    from agi_data.aiida.workflows.train import TrainWorkChain

    computer, _codes = computers["slurm"]
    dataset = classical_reference_set()
    builder = TrainWorkChain.get_builder_from_protocol(ensure_nequip_code(computer), dataset, protocol="fast")
    result, node = run_get_node(builder)
    assert node.is_finished_ok, f"{node.exit_status} {node.exit_message}"
    (job,) = [c for c in node.called_descendants if c.process_label == "NequipTrainCalculation"]
    shown = _scontrol(job.get_job_id())
    assert "JobState=COMPLETED" in shown, shown
    metrics = result["test_metrics"].get_dict()
    # a model that learned something: held-out force error well below the zero-force baseline
    assert 0 < metrics["force_rmse_over_zero_baseline"] < 0.5, metrics


def test_the_documented_templates_set_up_a_computer_and_a_code(slurm_cluster, tmp_path):
    """docs/cluster.md's verdi recipe on the template files: the computer and the MD code load."""
    import yaml
    from aiida.cmdline.commands.cmd_verdi import verdi
    from click.testing import CliRunner

    docs = ROOT / "docs" / "cluster"
    runner = CliRunner()
    res = runner.invoke(verdi, ["computer", "setup", "-n", "--config", str(docs / "computer-local-slurm.yaml")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(verdi, ["computer", "configure", "core.local", "local-slurm", "-n", "--safe-interval", "0"])
    assert res.exit_code == 0, res.output
    computer = orm.load_computer("local-slurm")
    assert computer.scheduler_type == "core.slurm" and computer.is_configured
    code_cfg = yaml.safe_load((docs / "code-agi-md.yaml").read_text())
    code_cfg.update(computer="local-slurm", filepath_executable=sys.executable, prepend_text="")
    cfg = tmp_path / "code.yaml"
    cfg.write_text(yaml.safe_dump(code_cfg))
    res = runner.invoke(verdi, ["code", "create", "core.code.installed", "-n", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    code = orm.load_code("agi-md@local-slurm")
    assert code.default_calc_job_plugin == "agi.md_job"
    # the documented keys of the cluster template are those verdi reads (a typo would be silently dropped)
    cluster = yaml.safe_load((docs / "computer-slurm.yaml").read_text())
    local = yaml.safe_load((docs / "computer-local-slurm.yaml").read_text())
    assert set(cluster) == set(local)


def test_agi_setup_registers_every_code_on_a_slurm_computer(slurm_cluster):
    from agi_data.aiida.computers import setup_computer

    codes = setup_computer("setup-slurm")
    assert set(codes) == {"pw", "pw2wannier90", "wannier90", "agi-md", "nequip-train"}
    for full in codes.values():
        code = orm.load_code(full)
        assert code.computer.label == "setup-slurm" and code.computer.scheduler_type == "core.slurm"
    assert setup_computer("setup-slurm") == codes  # idempotent
