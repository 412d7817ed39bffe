"""Lone-pair model: prediction throughput, memory as the run grows, training time, labelling vs MD cost.

    python benchmarks/electronic.py                  # all parts, default sizes
    python benchmarks/electronic.py --part train,predict --frames 200
    python benchmarks/electronic.py --part memory --frames 200     # and 10× that
    python benchmarks/electronic.py --part train
    python benchmarks/electronic.py --part md --frames 20          # Allegro/nequip MD per frame, same machine

``predict``: frames/s of ``ElectronicModel.predict`` on 108-ion α-AgI frames
(54 I + 54 Ag, 6 Å cutoff with periodic images), Dask-backed, computed
block by block, with the process's peak RSS. ``memory``: the peak RSS of a
reduction over the whole prediction (the mean rotor function, streamed) in a
fresh process for N and 10·N frames — flat if the prediction is blocked.
``train``: wall time of ``fit_electronic_model`` on the demo-size data set
(32-ion synthetic frames). ``md``: seconds per MD step of the project's
Allegro path (ASE velocity Verlet + ``NequIPCalculator``) on the same
108-ion cell with the fast-protocol model ``benchmarks/md.py`` trains for
one epoch (or ``--allegro-model``) — the cost of a force call does not
depend on the weights — so labelling cost per frame and MD cost per frame
come from the same machine in the same run, extrapolated to an 80 000-frame
production run. The machine load is printed beside every number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _memory import peak_rss_mib

HERE = os.path.dirname(os.path.abspath(__file__))


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def demo_model(n_frames: int = 100, epochs: int = 30, seed: int = 0, channels: int = 16, threads: int = 1,
               layers: int = 1):
    """The demo-size model: the learnability configuration of ``tests/test_electronic_learning.py`` (1 layer);
    ``layers=2`` is the architecture of ``agi_data/protocols/electronic.yaml`` (the demo's, the validation's)."""
    from agi_data.electronic import fit_electronic_model
    from agi_data.testing.electronic import synthetic_lone_pair_run

    data = synthetic_lone_pair_run(n=2, n_frames=n_frames, seed=seed)
    t0 = time.perf_counter()
    model = fit_electronic_model([data], seed=seed, epochs=epochs, channels=channels, radial_hidden=2 * channels,
                                 n_layers=layers, batch_frames=4, threads=threads)
    return model, time.perf_counter() - t0


def agi108(n_frames: int, seed: int = 0):
    """A lazy 108-ion α-AgI run (54 I on bcc, 54 Ag), vibrating nuclei, ``n_frames`` frames."""
    from agi_data.testing.paddlewheel import lazy_rotating_agi

    traj, _ = lazy_rotating_agi(n=3, n_frames=n_frames, chunk=min(n_frames, 500), seed=seed)
    return traj


def part_predict(model, n_frames: int) -> dict:
    traj = agi108(n_frames)
    model.predict(agi108(2)).compute()  # warm-up (e3nn code generation)
    t0 = time.perf_counter()
    model.predict(traj).compute(scheduler="synchronous")
    dt = time.perf_counter() - t0
    return {"frames": n_frames, "seconds": dt, "frames_per_s": n_frames / dt, "peak_rss_MiB": peak_rss_mib(),
            "load": _load()}


def _streamed_mean(model_path: str, n_frames: int) -> dict:
    """In a fresh process: the mean rotor function over every predicted frame, and the peak RSS."""
    code = f"""
import json, sys
sys.path.insert(0, {HERE!r})
from _memory import peak_rss_mib
from electronic import agi108
from agi_data.electronic import ElectronicModel
from agi_data.analysis.moments import rotor_function_from_moments
m = ElectronicModel.load({model_path!r}, device="cpu")
pred = m.predict(agi108({n_frames}), block_frames=50)
mean = float(rotor_function_from_moments(pred).mean().compute(scheduler="synchronous"))
print(json.dumps({{"frames": {n_frames}, "mean_rotor": mean,
                  "peak_rss_MiB": peak_rss_mib()}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_memory(model, n_frames: int, tmpdir: str) -> dict:
    path = os.path.join(tmpdir, "electronic-bench.pt")
    model.save(path)
    small, large = _streamed_mean(path, n_frames), _streamed_mean(path, 10 * n_frames)
    return {"small": small, "large": large, "ratio_rss": large["peak_rss_MiB"] / small["peak_rss_MiB"],
            "load": _load()}


def part_md(n_steps: int, model_path: str | None, tmpdir: str) -> dict:
    """Seconds per MD step of the project's Allegro path (ASE + NequIPCalculator) on the 108-ion cell.

    ``model_path``: a packaged Allegro model; default: the fast-protocol model
    ``benchmarks/md.py`` trains for one epoch (the cost of a force call does
    not depend on the weights).
    """
    from pathlib import Path

    from ase import units
    from ase.md.verlet import VelocityVerlet

    from agi_data.md import load_nequip_calculator
    from agi_data.structures import alpha_agi

    if model_path is None:
        from md import quick_model  # benchmarks/md.py

        model_path = str(quick_model(Path(tmpdir) / "allegro-quick"))
    calc = load_nequip_calculator(model_path, device="cpu")
    calc = calc[0] if isinstance(calc, tuple) else calc
    atoms = alpha_agi(3, seed=0, rattle=0.05)
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, 1.0 * units.fs)
    dyn.run(2)  # warm-up
    t0 = time.perf_counter()
    dyn.run(n_steps)
    return {"steps": n_steps, "seconds_per_step": (time.perf_counter() - t0) / n_steps, "model": model_path,
            "load": _load()}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="train,predict,memory,md",
                    help="comma-separated subset of train, predict, memory, md")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--md-steps", type=int, default=10)
    ap.add_argument("--allegro-model", default=None, help="packaged Allegro model (default: train a quick one)")
    ap.add_argument("--md-steps-per-frame", type=int, default=1,
                    help="MD steps between stored frames of the production run (1: a frame every step)")
    ap.add_argument("--train-frames", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=1, help="interaction layers (2: the electronic.yaml protocols')")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads for the training")
    ap.add_argument("--tmpdir", default="/tmp")
    args = ap.parse_args(argv)
    parts = set(args.part.split(","))
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    results = {"cpu_threads": os.cpu_count()}
    model, train_s = demo_model(args.train_frames, args.epochs, channels=args.channels, threads=args.threads,
                                layers=args.layers)
    if "train" in parts:
        results["train"] = {"frames": args.train_frames, "epochs": args.epochs, "channels": args.channels,
                            "layers": args.layers,
                            "threads": args.threads,
                            "seconds": train_s,
                            "metrics": {k: v for k, v in model.metrics.items() if k != "validation_history"},
                            "load": _load()}
    if "predict" in parts:
        results["predict"] = part_predict(model, args.frames)
    if "memory" in parts:
        results["memory"] = part_memory(model, args.frames, args.tmpdir)
    if "md" in parts:
        results["md"] = part_md(args.md_steps, args.allegro_model, args.tmpdir)
    if "predict" in results and "seconds_per_step" in results.get("md", {}):
        label = 1.0 / results["predict"]["frames_per_s"]
        md = results["md"]["seconds_per_step"] * args.md_steps_per_frame
        results["production_80000_frames"] = {"label_hours": 80_000 * label / 3600, "md_hours": 80_000 * md / 3600,
                                              "label_over_md": label / md}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    main()
