"""MD throughput (ns/day) and the cost of streaming frames into the store.

Same α-AgI cell for every engine (default 3×3×3 cells, 108 ions, the paper's
cell), 750 K:

1. LAMMPS, classical Vashishta–Rahman model (Nosé–Hoover): plain ``lmp`` with
   no output (the established tool alone) versus ``agi_data.md.run_md``
   streaming a frame every ``--stride`` steps into a store. Also the
   Langevin route (one ``run`` per frame, reseeded noise).
2. Allegro through ASE (CPU): a plain ASE velocity-Verlet loop with the
   NequIPCalculator versus ``run_md`` streaming into a store. The model is
   ``--model`` or, by default, a fast-protocol model trained here for one
   epoch on LAMMPS-labelled snapshots (timing does not depend on the weights).

Store-writing overhead = time inside ``RunWriter.append`` / time waiting for
the engine (target < 5 %), and wall-time ratios to the plain tool; the streamed
wall time also holds fixed costs (creating the run, recording attributes:
about a second) that long runs amortise.

    .venv/bin/python benchmarks/md.py [--supercell 3] [--steps 2000] [--allegro-steps 60] [--model M]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agi_data import open_store
from agi_data.md import (
    AGI_SHIMOJO_KOBAYASHI,
    AseEngine,
    LammpsEngine,
    MDSettings,
    StreamOptions,
    maxwell_boltzmann,
    run_md,
)
from agi_data.md.lammps_engine import find_lammps, write_data_file
from agi_data.structures import alpha_agi

QUIET = StreamOptions(progress=False)


def ns_per_day(steps: int, dt_fs: float, seconds: float) -> float:
    return steps * dt_fs * 1e-6 / (seconds / 86400.0)


def plain_lammps(atoms, steps: int, dt_fs: float, ranks: int, work: Path) -> float:
    """Wall seconds of ``lmp`` alone: same model, same thermostat, no dump."""
    ff = AGI_SHIMOJO_KOBAYASHI
    v = maxwell_boltzmann(atoms, 750.0, 1)
    write_data_file(work / "data.lmp", atoms, v, ff.elements, ff.charges)
    ff.write_lammps_potential(work / "potential.vashishta")
    script = "\n".join(["units metal", "atom_style charge", "atom_modify map array", "boundary p p p",
                        "read_data data.lmp", *ff.lammps_commands("potential.vashishta"), "neighbor 2.0 bin",
                        "neigh_modify every 1 delay 0 check yes", f"timestep {dt_fs * 1e-3}",
                        "fix integrate all nvt temp 750.0 750.0 0.1", f"thermo {steps}", f"run {steps}"]) + "\n"
    (work / "in.plain").write_text(script)
    cmd = [find_lammps(), "-in", "in.plain", "-log", "log.plain", "-screen", "none", "-nocite"]
    if ranks > 1:
        cmd = ["mpirun", "-np", str(ranks), *cmd]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=work, check=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    wall = time.perf_counter() - t0
    loop = re.search(r"Loop time of ([\d.eE+-]+)", (work / "log.plain").read_text())
    return wall, float(loop.group(1))


def quick_model(work: Path) -> Path:
    """A fast-protocol Allegro model (1 epoch) on 12 LAMMPS-labelled 32-ion snapshots; returns the package."""
    import yaml
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from agi_data.aiida.calculations.nequip_train import build_config, nequip_command
    from agi_data.aiida.protocols import load_protocol

    work.mkdir(parents=True, exist_ok=True)
    atoms = alpha_agi(2, seed=1)
    s = MDSettings(temperature_K=750.0, n_steps=240, timestep_fs=2.0, stride=20, seed=2)
    frames = list(LammpsEngine().run(atoms, maxwell_boltzmann(atoms, 750.0, 2), s, first_frame=0, n_frames=12,
                                     include_initial=False))
    structures = []
    for f in frames:
        a = Atoms(atoms.get_chemical_symbols(), positions=f.positions, cell=f.cell, pbc=True)
        a.calc = SinglePointCalculator(a, energy=f.energy, forces=f.forces)
        structures.append(a)
    write(work / "train.xyz", structures[:8])
    write(work / "val.xyz", structures[8:10])
    write(work / "test.xyz", structures[10:])
    params = load_protocol("train", "fast", {"training": {"max_epochs": 1}})
    (work / "config.yaml").write_text(yaml.safe_dump(build_config(params, ["Ag", "I"]), sort_keys=False))
    subprocess.run([*nequip_command("train"), "-cd", ".", "-cn", "config"], cwd=work, check=True,
                   capture_output=True)
    subprocess.run([*nequip_command("package"), "build", "out/best.ckpt", "model.nequip.zip"], cwd=work, check=True,
                   capture_output=True)
    return work / "model.nequip.zip"


def plain_ase(engine: AseEngine, atoms, steps: int, dt_fs: float) -> float:
    from ase import units
    from ase.md.verlet import VelocityVerlet

    a = atoms.copy()
    a.calc = engine.calculator
    a.set_velocities(maxwell_boltzmann(atoms, 750.0, 1) / (1000 * units.fs))
    dyn = VelocityVerlet(a, dt_fs * units.fs)
    dyn.run(5)  # warm-up: first calls of the torch model
    t0 = time.perf_counter()
    dyn.run(steps)
    return time.perf_counter() - t0


def engine_only(engine, atoms, settings) -> float:
    """Wall seconds of the engine yielding every frame, nothing stored (the engine's own I/O included)."""
    v = maxwell_boltzmann(atoms, settings.temperature_K, settings.seed)
    t0 = time.perf_counter()
    for _ in engine.run(atoms, v, settings, first_frame=0, n_frames=settings.n_frames - 1, include_initial=True):
        pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supercell", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10000, help="LAMMPS steps")
    ap.add_argument("--stride", type=int, default=10)
    ap.add_argument("--timestep", type=float, default=2.0, help="fs")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--allegro-steps", type=int, default=200)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    atoms = alpha_agi(args.supercell, seed=1)
    n = len(atoms)
    rows = []
    with tempfile.TemporaryDirectory(prefix="agi-bench-md-") as tmp:
        tmp = Path(tmp)
        store = open_store(tmp / "store")
        # ------------------------------------------------------------ LAMMPS
        wall_plain, loop_plain = plain_lammps(atoms, args.steps, args.timestep, args.ranks, tmp)
        s = MDSettings(temperature_K=750.0, n_steps=args.steps, timestep_fs=args.timestep, stride=args.stride,
                       ensemble="nose-hoover", seed=1)
        res = run_md(LammpsEngine(mpi_ranks=args.ranks), atoms, s, store=store, run_id="lammps-nh", options=QUIET)
        wall_eng = engine_only(LammpsEngine(mpi_ranks=args.ranks), atoms, s)
        rows.append(("LAMMPS classical, plain lmp (no output)", n, args.steps,
                     ns_per_day(args.steps, args.timestep, wall_plain), None, None))
        rows.append((f"LAMMPS classical, agi engine, frames read every {args.stride} steps, not stored", n,
                     args.steps, ns_per_day(args.steps, args.timestep, wall_eng), None, wall_eng / wall_plain))
        rows.append((f"LAMMPS classical, streamed every {args.stride} steps (Nosé–Hoover)", n, args.steps,
                     ns_per_day(args.steps, args.timestep, res.wall_s), res.store_overhead, res.wall_s / wall_plain))
        sl = MDSettings(**{**s.to_dict(), "ensemble": "langevin"})
        res_l = run_md(LammpsEngine(mpi_ranks=args.ranks), atoms, sl, store=store, run_id="lammps-lang",
                       options=QUIET)
        rows.append(("LAMMPS classical, streamed, Langevin (one run per frame)", n, args.steps,
                     ns_per_day(args.steps, args.timestep, res_l.wall_s), res_l.store_overhead,
                     res_l.wall_s / wall_plain))
        # ------------------------------------------------------------ Allegro
        model = args.model or quick_model(tmp / "train")
        engine = AseEngine.from_nequip_model(model, device=args.device)
        k = args.allegro_steps
        wall_ase = plain_ase(engine, atoms, k, args.timestep)
        sa = MDSettings(temperature_K=750.0, n_steps=k, timestep_fs=args.timestep, stride=args.stride,
                        ensemble="nve", seed=1)
        wall_ase_eng = engine_only(engine, atoms, sa)
        res_a = run_md(engine, atoms, sa, store=store, run_id="allegro", options=QUIET)
        label = f"Allegro ({Path(model).name}) via ASE on {args.device.upper()}"
        rows.append((f"{label}, plain ASE VelocityVerlet", n, k, ns_per_day(k, args.timestep, wall_ase), None, None))
        rows.append((f"{label}, agi engine, not stored", n, k, ns_per_day(k, args.timestep, wall_ase_eng), None,
                     wall_ase_eng / wall_ase))
        rows.append((f"{label}, streamed every {args.stride} steps", n, k,
                     ns_per_day(k, args.timestep, res_a.wall_s), res_a.store_overhead, res_a.wall_s / wall_ase))

    print(f"\nα-AgI, {n} ions, 750 K, time step {args.timestep} fs, {os.cpu_count()} CPU cores "
          f"({'LAMMPS ' + str(args.ranks) + ' MPI rank(s)'}); load average {os.getloadavg()[0]:.1f}")
    print("store/MD = time in RunWriter.append / time waiting for the engine; wall ratio = wall / plain tool")
    print(f"{'route':72s} {'ions':>5s} {'steps':>6s} {'ns/day':>9s} {'store/MD':>9s} {'wall ratio':>10s}")
    for name, ions, steps, nsd, ovh, ratio in rows:
        o = f"{100 * ovh:8.2f}%" if ovh is not None else f"{'—':>9s}"
        r = f"{ratio:10.3f}" if ratio is not None else f"{'1 (ref)':>10s}"
        print(f"{name:72s} {ions:5d} {steps:6d} {nsd:9.3f} {o} {r}")
    lmp_nsd = rows[0][3]
    print(f"\nclassical LAMMPS / Allegro-ASE throughput: {lmp_nsd / rows[4][3]:.0f}×  "
          f"(plain LAMMPS loop time {loop_plain:.2f} s for {args.steps} steps)")
    print("GPU: none on this machine; run with --device cuda on a GPU for the Allegro timing there.")


if __name__ == "__main__":
    main()
