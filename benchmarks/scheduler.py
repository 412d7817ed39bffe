"""Cost of the scheduler route: seconds per job through Slurm against core.direct, and daemon throughput.

1. **Per-job overhead.** The same ``agi.md_base`` WorkChain (one ``agi.md_job`` of a 32-ion
   classical MD, ``--steps`` steps) run ``--jobs`` times through the ``core.direct`` computer and
   through the one-node Slurm of ``scripts/slurm-cluster.sh`` (``core.slurm``), interleaved so that
   drift in the machine's load hits both; printed: wall seconds per WorkChain for each route, the
   difference (the Slurm route's overhead per job) and the job's own run time (from the store
   run's ``wall_s``) for scale.
2. **Daemon throughput.** A campaign of ``--campaign`` such WorkChains submitted at once to a
   daemon with 1 and then 2 workers (``core.direct``): wall seconds from the first submission to the
   last termination, and jobs per minute.

A throw-away embedded profile in a temporary directory (the user's profile is not touched).

    .venv/bin/python benchmarks/scheduler.py [--jobs 3] [--steps 200] [--campaign 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, whatever is installed


def _verdi(profile: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(Path(sys.executable).with_name("verdi")), "-p", profile, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _wait(nodes, timeout: float = 1800) -> None:
    t0 = time.monotonic()
    while not all(n.is_terminated for n in nodes):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{[n.pk for n in nodes]} still running after {timeout} s")
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=3, help="WorkChains per route for the overhead")
    ap.add_argument("--steps", type=int, default=200, help="MD steps per job (32 ions, 2 fs)")
    ap.add_argument("--campaign", type=int, default=6, help="WorkChains in the throughput campaign")
    args = ap.parse_args()

    out = subprocess.run(["bash", str(ROOT / "scripts" / "slurm-cluster.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"could not start the one-node Slurm:\n{out.stdout}{out.stderr}")
    tmp = Path(tempfile.mkdtemp(prefix="agi-scheduler-bench-"))
    os.environ["AIIDA_PATH"] = str(tmp / "aiida")
    from aiida.engine import run_get_node, submit

    from agi_data import open_store
    from agi_data.aiida.calculations.md_job import ensure_md_code
    from agi_data.aiida.protocols import load_protocol
    from agi_data.aiida.setup import ensure_computer, setup
    from agi_data.aiida.workflows.md_base import md_job_builder
    from agi_data.structures import alpha_agi

    profile = "agi-bench"
    setup(aiida_path=tmp / "aiida", profile=profile, quiet=True)
    codes = {"direct": ensure_md_code(ensure_computer("bench-direct", workdir=tmp / "w-direct", mpiprocs=1,
                                                      poll_interval=0.5)),
             "slurm": ensure_md_code(ensure_computer("bench-slurm", workdir=tmp / "w-slurm", mpiprocs=1,
                                                     poll_interval=0.5, scheduler="core.slurm"))}
    params = load_protocol("md", "fast", {"md": {"n_steps": args.steps}})
    store = tmp / "store"
    load = os.getloadavg()

    walls: dict[str, list[float]] = {"direct": [], "slurm": []}
    md_s: dict[str, list[float]] = {"direct": [], "slurm": []}
    for i in range(args.jobs):
        for route in ("direct", "slurm") if i % 2 == 0 else ("slurm", "direct"):
            t0 = time.perf_counter()
            result, node = run_get_node(md_job_builder(codes[route], alpha_agi(2, seed=i), params, store,
                                                       f"{route}-{i}"))
            walls[route].append(time.perf_counter() - t0)
            assert node.is_finished_ok, f"{route}: {node.exit_status} {node.exit_message}"
            md_s[route].append(result["run"]["wall_s"])
    overhead = {r: statistics.median(w) for r, w in walls.items()}
    inner = {r: statistics.median(w) for r, w in md_s.items()}

    throughput = {}
    # one daemon, one broker: start with one worker, add the second (restarting the daemon between
    # the two campaigns would restart the ZeroMQ broker too, and tasks sent while it starts are lost)
    started = _verdi(profile, "daemon", "start", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        for workers in (1, 2):
            if workers == 2:
                more = _verdi(profile, "daemon", "incr", "1")
                assert more.returncode == 0, more.stdout + more.stderr
            time.sleep(5)  # let the workers connect before the campaign is sent
            t0 = time.perf_counter()
            nodes = [submit(md_job_builder(codes["direct"], alpha_agi(2, seed=100 + k), params, store,
                                           f"campaign-{workers}-{k}")) for k in range(args.campaign)]
            _wait(nodes)
            dt = time.perf_counter() - t0
            ok = sum(n.is_finished_ok for n in nodes)
            throughput[workers] = {"seconds": dt, "jobs_per_minute": 60 * ok / dt, "finished_ok": ok}
    finally:
        _verdi(profile, "daemon", "stop")
    assert all(open_store(store).trajectory(f"campaign-2-{k}").sizes["time"] == args.steps // 10 + 1
               for k in range(args.campaign))

    results = {
        "load_average_at_start": load, "jobs_per_route": args.jobs, "md_steps": args.steps,
        "workchain_wall_s": overhead, "md_inside_job_s": inner,
        "slurm_overhead_per_job_s": overhead["slurm"] - overhead["direct"],
        "daemon_campaign": throughput,
    }
    print(json.dumps(results, indent=1))
    print(f"per job: core.direct {overhead['direct']:.1f} s, core.slurm {overhead['slurm']:.1f} s "
          f"(+{overhead['slurm'] - overhead['direct']:.1f} s per job; the MD inside takes "
          f"{inner['direct']:.1f} s)")
    print(f"campaign of {args.campaign}: 1 worker {throughput[1]['seconds']:.1f} s, 2 workers "
          f"{throughput[2]['seconds']:.1f} s ({throughput[1]['seconds'] / throughput[2]['seconds']:.2f}x); "
          f"load average at start {load[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
