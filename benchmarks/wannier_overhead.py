"""Overhead of the ``agi.wannier`` AiiDA workflow against the same codes run by a plain shell script.

Same frames (32-atom α-AgI, 2×2×2, perturbed), same input files (one writer,
:mod:`agi_data.aiida.calculations.wannier_chain`), same executables, command lines and MPI
layout, in one process:

1. plain: ``pw.x → wannier90.x -pp → pw2wannier90.x → wannier90.x`` per frame by a bash script
   (:func:`agi_data.aiida.testing.plain_chain_script`);
2. the workflow, ``batched`` route (default): one ``agi.wannier_batch`` CalcJob for all frames;
3. the workflow, ``steps`` route: ``quantumespresso.pw`` → ``quantumespresso.pw2wannier90`` →
   ``agi.wannier90`` per frame (the ``-pp`` step once per cell);
4. plain again (the mean of the two plain passes is the baseline, to cancel drift in machine load).

Both workflow runs use the embedded SQLite profile in a temporary directory and write the centres
to a store. Printed: wall time per frame for each and the raw overhead; because this machine is
shared and its load drifts, also a load-normalised overhead: wall time per frame divided by the
time the codes themselves report (pw.x, pw2wannier90.x, wannier90.x wall times) — the extra time
the workflow needs per unit of code work compared with the script. Also the CPU seconds the AiiDA
engine itself used per frame, and a correctness check (Ω of every frame equal to the plain run's).

    .venv/bin/python benchmarks/wannier_overhead.py [--frames 3] [--ranks 1] [--routes batched,steps]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def _plain_code_seconds(d: Path) -> float:
    from agi_data.aiida.parsers.qe_stdout import qe_wall_seconds
    from agi_data.aiida.parsers.wannier90 import parse_wout

    return (qe_wall_seconds((d / "aiida.pw.out").read_text(), "PWSCF")
            + qe_wall_seconds((d / "aiida.p2w.out").read_text(), "PW2WANNIER")
            + (parse_wout((d / "aiida.wout").read_text())["wall_time_seconds"] or 0.0))


def _workflow_results(node, route: str) -> tuple[dict[int, float], float]:
    """({frame: Ω}, the codes' own wall seconds summed over frames) of a finished WannierWorkChain."""
    omega, code_wall = {}, 0.0
    for c in node.called:
        if route == "batched" and c.process_label == "WannierBatchCalculation":
            for key, r in c.outputs.output_parameters["frames"].items():
                omega[int(key.rsplit("_", 1)[-1])] = r["wannier90"]["omega_total"]
                code_wall += (r["pw"]["wall_time_seconds"] + r["pw2wannier90_wall_time_seconds"]
                              + (r["wannier90"]["wall_time_seconds"] or 0.0))
        elif c.process_label in ("PwCalculation", "Pw2wannier90Calculation", "Wannier90Calculation"):
            code_wall += c.outputs.output_parameters.get_dict().get("wall_time_seconds") or 0.0
            if c.process_label == "Wannier90Calculation" and "centres" in c.outputs:
                omega[int(c.label.split(":")[-1])] = c.outputs.output_parameters["omega_total"]
    return omega, code_wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--cells", type=int, default=2, help="n of the n×n×n supercell (2: 32 atoms)")
    ap.add_argument("--ranks", type=int, default=1, help="MPI ranks of pw.x and pw2wannier90.x")
    ap.add_argument("--routes", default="batched,steps", help="workflow routes to time (protocol key `calcjob`)")
    ap.add_argument("--concurrent", type=int, default=1, help="frames in flight at once (both methods)")
    ap.add_argument("--out", default=str(Path(__file__).with_name("_out") / "wannier_overhead.json"))
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="agi-wannier-bench-"))
    os.environ["AIIDA_PATH"] = str(tmp / "aiida")  # a throw-away profile: the user's is not touched
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
    os.environ.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")

    from aiida.engine import run_get_node

    from agi_data import open_store
    from agi_data.aiida.parsers.wannier90 import parse_wout
    from agi_data.aiida.protocols import load_protocol
    from agi_data.aiida.setup import setup
    from agi_data.aiida.testing import run_plain_chain, write_plain_inputs
    from agi_data.aiida.workflows.wannier import WannierWorkChain
    from agi_data.pseudo import shipped_pseudopotentials
    from agi_data.structures import alpha_agi

    setup(aiida_path=tmp / "aiida", profile="agi-bench", quiet=True)
    overrides = {"options": {"resources": {"num_mpiprocs_per_machine": args.ranks}}, "max_concurrent": args.concurrent,
                 "batch_size": args.frames}
    params = load_protocol("wannier", "demo", overrides)

    base = alpha_agi(args.cells, seed=1, rattle=0.1)
    rng = np.random.default_rng(7)
    positions = np.stack([base.positions + rng.normal(scale=0.05, size=base.positions.shape)
                          for _ in range(args.frames)])
    store = open_store(tmp / "store")
    routes = args.routes.split(",")
    for route in routes:  # one run per route: each writes its centres into its own run's Wannier group
        with store.create_run(f"bench-{route}", base.numbers, base.cell.array, 0.05, attrs={"engine": "benchmark"}) as w:
            w.append(positions)
    frames = list(range(args.frames))
    n_atoms = len(base)
    print(f"{args.frames} frames of {n_atoms} atoms, {args.ranks} MPI rank(s), {args.concurrent} frame(s) at a time, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")

    def plain_pass(tag: str) -> tuple[float, list[float], float]:
        dirs = []
        for f in frames:
            atoms = base.copy()
            atoms.positions = positions[f]
            dirs.append(write_plain_inputs(atoms, tmp / f"plain-{tag}" / f"frame_{f}", params,
                                           shipped_pseudopotentials())["workdir"])
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.concurrent) as pool:
            list(pool.map(lambda d: run_plain_chain(d, args.ranks), dirs))
        wall = time.perf_counter() - t0
        omegas = [parse_wout((d / "aiida.wout").read_text())["omega_total"] for d in dirs]
        return wall, omegas, sum(_plain_code_seconds(d) for d in dirs)

    plain1, omega_plain, code_plain1 = plain_pass("a")
    print(f"plain     pass 1: {plain1 / args.frames:7.2f} s/frame", flush=True)

    workflows = {}
    for route in routes:
        builder = WannierWorkChain.get_builder_from_protocol(
            None, f"bench-{route}", frames, protocol="demo", overrides={**overrides, "calcjob": route}, store=store)
        t0, c0 = time.perf_counter(), time.process_time()
        _result, node = run_get_node(builder)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not node.is_finished_ok:
            raise SystemExit(f"workflow ({route}) failed: {node.exit_status} {node.exit_message}")
        omega, code_wall = _workflow_results(node, route)
        assert list(store.wannier(f"bench-{route}")["frame"].values) == frames
        workflows[route] = {"wall": wall, "cpu": cpu, "code_wall": code_wall, "pk": node.pk,
                            "d_omega": max(abs(omega[f] - omega_plain[f]) for f in frames)}
        print(f"workflow {route:8s}: {wall / args.frames:7.2f} s/frame (AiiDA engine CPU {cpu / args.frames:.2f} s/frame)",
              flush=True)

    plain2, _, code_plain2 = plain_pass("b")
    print(f"plain     pass 2: {plain2 / args.frames:7.2f} s/frame", flush=True)

    baseline = (plain1 + plain2) / 2
    # wall time per second of code work (codes in flight at once: `concurrent`)
    eff_plain = [p / (c / args.concurrent) for p, c in ((plain1, code_plain1), (plain2, code_plain2))]
    report = {
        "frames": args.frames, "atoms": n_atoms, "ranks": args.ranks, "concurrent": args.concurrent,
        "plain_s_per_frame": [plain1 / args.frames, plain2 / args.frames],
        "plain_codes_wall_s_per_frame": [code_plain1 / args.frames, code_plain2 / args.frames],
        "plain_wall_per_code_second": eff_plain, "load_average_end": os.getloadavg()[0], "routes": {},
    }
    print(f"\nbaseline (mean of plain passes) {baseline / args.frames:.2f} s/frame; "
          f"wall time per second of code work {eff_plain[0]:.3f} / {eff_plain[1]:.3f}")
    for route, w in workflows.items():
        overhead = w["wall"] / baseline - 1
        eff = w["wall"] / (w["code_wall"] / args.concurrent)
        overhead_norm = eff / np.mean(eff_plain) - 1
        report["routes"][route] = {
            "workflow_s_per_frame": w["wall"] / args.frames, "aiida_engine_cpu_s_per_frame": w["cpu"] / args.frames,
            "codes_wall_s_per_frame": w["code_wall"] / args.frames, "wall_per_code_second": eff,
            "overhead_raw": overhead, "overhead_load_normalised": overhead_norm,
            "max_abs_omega_difference_A2": w["d_omega"], "workchain_pk": w["pk"]}
        print(f"{route:8s}: {w['wall'] / args.frames:.2f} s/frame, raw overhead {100 * overhead:+.1f} %, "
              f"wall per code second {eff:.3f} -> load-normalised overhead {100 * overhead_norm:+.1f} %; "
              f"engine CPU {w['cpu'] / args.frames:.2f} s/frame; max |ΔΩ| vs plain {w['d_omega']:.1e} Å²")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
