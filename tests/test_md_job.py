"""``agi.md_job`` / ``agi.md_base``: the MD as a scheduler job, through ``core.direct`` and a real Slurm.

* The job route writes exactly the frames the in-process route writes (same function, same
  seed: LAMMPS positions equal to 1e-7 Å).
* Through Slurm: the job id is recorded and ``scontrol`` knows it; a job cancelled (``scancel``)
  after it has committed frames is continued by the WorkChain from the last stored frame, and
  the finished run equals an uninterrupted run frame for frame (no gap, no duplicate).
* A store the job cannot reach ends with ERROR_STORE_UNREACHABLE, nothing written.
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from aiida.engine import run_get_node

from agi_data import open_store
from agi_data.aiida import setup as agi_setup
from agi_data.aiida.calculations.md_job import ensure_md_code
from agi_data.aiida.parsers.md_job import check_time_axis
from agi_data.aiida.protocols import load_protocol
from agi_data.aiida.workflows.md_base import md_job_builder
from agi_data.mdjob import run_job
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def codes(tmp_path_factory):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "slurm-cluster.sh")], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    agi_setup.enable_sqlite_wal()
    work = tmp_path_factory.mktemp("scratch")
    direct = agi_setup.ensure_computer("direct-md", workdir=work / "direct", mpiprocs=1, poll_interval=0.5)
    slurm = agi_setup.ensure_computer("slurm-md", workdir=work / "slurm", mpiprocs=1, poll_interval=0.5,
                                      scheduler="core.slurm")
    return {"direct": ensure_md_code(direct), "slurm": ensure_md_code(slurm)}


def _params(n_steps: int, flush_every: int = 1000) -> dict:
    return load_protocol("md", "fast", {"md": {"n_steps": n_steps}, "store": {"flush_every": flush_every}})


def test_job_route_writes_what_the_in_process_route_writes(codes, tmp_path):
    atoms = alpha_agi(2, seed=0)
    params = _params(200)
    in_process = run_job(atoms, {"force_field": params["force_field"]}, params, str(tmp_path / "a"), "md")
    assert in_process["status"] == "ok" and in_process["n_frames"] == 21

    result, node = run_get_node(md_job_builder(codes["direct"], atoms, params, tmp_path / "b", "md"))
    assert node.is_finished_ok, f"{node.exit_status} {node.exit_message}"
    assert result["run"]["n_frames"] == 21
    a = open_store(tmp_path / "a").trajectory("md")
    b = open_store(tmp_path / "b").trajectory("md")
    np.testing.assert_allclose(b.positions.values, a.positions.values, atol=1e-7)
    np.testing.assert_allclose(b.velocities.values, a.velocities.values, atol=1e-6)
    (job,) = [c for c in node.called if c.process_label == "MDJobCalculation"]
    assert open_store(tmp_path / "b").attrs("md")["provenance_calc_uuid"] == job.uuid


def _frames_committed(store_path: Path, run_id: str) -> int:
    try:
        store = open_store(store_path, create=False)
        return store.trajectory(run_id).sizes["time"] if run_id in store.run_ids() else 0
    except Exception:  # noqa: BLE001 - the store or run is being created: try again
        return 0


def _scancel_running_job() -> str | None:
    """scancel the RUNNING Slurm job; its id, or None when none runs yet."""
    out = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True).stdout.split()
    running = [job for job, state in zip(out[::2], out[1::2]) if state == "RUNNING"]
    if not running:
        return None
    subprocess.run(["scancel", running[0]], check=False)
    return running[0]


def _kill_job_process() -> str | None:
    """SIGKILL the MD job's own process (a node failure: slurmd's job dies); "killed", or None when none runs."""
    out = subprocess.run(["pgrep", "-f", "agi_data.mdjob"], capture_output=True, text=True).stdout.split()
    if not out:
        return None
    subprocess.run(["kill", "-9", *out], check=False)
    return "killed"


def _stop_after_first_commit(stop_job, store_path: Path, run_id: str, stop: threading.Event, seen: list) -> None:
    """Stop the job with ``stop_job`` once the run holds committed frames (and the job still runs)."""
    while not stop.is_set():
        n = _frames_committed(store_path, run_id)
        if n > 0 and (job := stop_job()) is not None:
            seen.append((job, n))
            return
        time.sleep(0.1)


@pytest.mark.parametrize("stopper", [_scancel_running_job, _kill_job_process], ids=["scancel", "node-failure"])
def test_a_stopped_slurm_job_is_continued_without_gap_or_duplicate(codes, tmp_path, stopper):
    atoms = alpha_agi(2, seed=1)
    # long enough (a few seconds of LAMMPS) to be stopped between two committed batches
    params = _params(6000, flush_every=50)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=_stop_after_first_commit, args=(stopper, tmp_path / "s", "md", stop, seen),
                               daemon=True)
    watcher.start()
    try:
        result, node = run_get_node(md_job_builder(codes["slurm"], atoms, params, tmp_path / "s", "md"))
    finally:
        stop.set()
        watcher.join(timeout=5)
    assert seen, "the job finished before it could be stopped"
    job_id, frames_at_cancel = seen[0]
    jobs = [c for c in node.called if c.process_label == "MDJobCalculation"]
    if job_id != "killed":
        shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        assert "JobState=CANCELLED" in shown, shown
        assert str(jobs[0].get_job_id()) == job_id
    assert node.is_finished_ok, f"{node.exit_status} {node.exit_message}"
    assert len(jobs) >= 2
    assert jobs[0].exit_status == jobs[0].process_class.exit_codes.ERROR_MD_INTERRUPTED.status

    n_total = 6000 // 10 + 1
    ds = open_store(tmp_path / "s").trajectory("md")
    assert ds.sizes["time"] == n_total > frames_at_cancel
    assert check_time_axis(ds["time"].values, float(ds.attrs["timestep_ps"])) is None
    # the continued run is the uninterrupted one
    ref = run_job(atoms, {"force_field": params["force_field"]}, params, str(tmp_path / "ref"), "md")
    assert ref["n_frames"] == n_total
    np.testing.assert_allclose(ds.positions.values, open_store(tmp_path / "ref").trajectory("md").positions.values,
                               atol=1e-6)


def test_an_unreachable_store_is_a_named_failure(codes, tmp_path):
    params = _params(20)
    missing = tmp_path / "not-mounted" / "store"
    result, node = run_get_node(md_job_builder(codes["direct"], alpha_agi(1), params, missing, "md"))
    assert node.exit_status == node.process_class.exit_codes.ERROR_STORE_UNREACHABLE.status, node.exit_message
    assert "not reachable" in node.exit_message
    assert not missing.exists()


def test_time_axis_check_names_gaps_and_duplicates():
    t = np.arange(5) * 0.02
    assert check_time_axis(t, 0.02) is None
    assert "gap" in check_time_axis(np.delete(t, 2), 0.02)
    assert "duplicate" in check_time_axis(np.insert(t, 2, t[1]), 0.02)


def test_a_second_writer_on_the_same_run_is_refused_and_writes_nothing(codes, tmp_path):
    atoms = alpha_agi(2, seed=2)
    first = _params(20)
    assert run_job(atoms, {"force_field": first["force_field"]}, first, str(tmp_path), "md")["n_frames"] == 3
    store = open_store(tmp_path)
    before = store.version("md")
    with store.open_run("md"):  # another writer holds the run while the job starts
        result, node = run_get_node(md_job_builder(codes["direct"], atoms, _params(60), tmp_path, "md"))
    assert node.exit_status == node.process_class.exit_codes.ERROR_RUN_LOCKED.status, node.exit_message
    assert "another writer" in node.exit_message
    assert open_store(tmp_path).version("md") == before


def test_agi_md_with_a_code_runs_the_md_as_a_slurm_job(codes, tmp_path):
    """agi.md given the agi-md code of a core.slurm computer: the same run as in process, through Slurm."""
    from agi_data.aiida.workflows.md import MDWorkChain

    atoms = alpha_agi(2, seed=4)
    overrides = {"md": {"n_steps": 100}}
    results = {}
    for route, code in (("in-process", "lammps"), ("slurm", codes["slurm"])):
        builder = MDWorkChain.get_builder_from_protocol(code, atoms, protocol="fast", overrides=overrides,
                                                        store=tmp_path / route, run="md")
        result, node = run_get_node(builder)
        assert node.is_finished_ok, f"{route}: {node.exit_status} {node.exit_message}"
        results[route] = (result["run"], node)
    run, node = results["slurm"]
    (base,) = [c for c in node.called if c.process_label == "MDBaseWorkChain"]
    (job,) = [c for c in base.called if c.process_label == "MDJobCalculation"]
    shown = subprocess.run(["scontrol", "show", "job", str(job.get_job_id())], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in shown, shown
    assert run["n_frames"] == results["in-process"][0]["n_frames"] == 11
    a = open_store(tmp_path / "in-process").trajectory("md").positions.values
    b = open_store(tmp_path / "slurm").trajectory("md").positions.values
    np.testing.assert_allclose(b, a, atol=1e-7)
    assert open_store(tmp_path / "slurm").attrs("md")["provenance_uuid"] == node.uuid
