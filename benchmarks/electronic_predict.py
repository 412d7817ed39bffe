"""The prediction job into the store: throughput and peak memory as the run grows, against predicting in memory.

    python benchmarks/electronic_predict.py --frames 20 --block-frames 10      # N and 10·N frames

A tiny lone-pair model is trained once (synthetic 32-ion α-AgI frames, one epoch: the cost of a
prediction does not depend on the weights). Then, in a fresh process for each run size (N and
10·N frames of the same cell, atoms jittered frame to frame):

* ``job``: :func:`agi_data.predictjob.run_prediction` — what ``agi.electronic_predict`` runs —
  reads the run from the store a block of frames at a time and writes the moments into the run's
  ``electronic/`` group (one commit);
* ``memory``: the established route without the store, ``model.predict(traj).compute()`` on the
  whole run in memory (the prediction of every frame held at once).

Printed per size: frames/s and the process's peak RSS (MiB) for both, and the ratios
(job/memory), and each route's peak RSS at 10·N over that at N. The job holds one block at a time,
so its peak RSS must stay flat as the run grows; the in-memory route holds every frame's moments
(10 floats per ion and frame: 80 000 frames × 54 I ≈ 350 MB), which shows only at production sizes
— at the sizes this machine allows both are dominated by torch and e3nn (~560–610 MiB). The
machine load is printed beside the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _memory import peak_rss_mib


def _load() -> str:
    return "load average " + ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _positions(n_frames: int, seed: int = 0):
    import numpy as np

    from agi_data.structures import alpha_agi

    base = alpha_agi(2, seed=1, rattle=0.05)
    rng = np.random.default_rng(seed)
    return base, base.positions[None] + rng.normal(0.0, 0.05, size=(n_frames, len(base), 3))


def _child(mode: str, model_path: str, n_frames: int, block: int) -> dict:
    from agi_data import open_store

    work = tempfile.mkdtemp(prefix="elpredict-bench-")
    base, pos = _positions(n_frames)
    store = open_store(os.path.join(work, "store"))
    with store.create_run("bench", base.numbers, base.cell.array, 0.01) as w:
        w.append(pos)
    t0 = time.perf_counter()
    if mode == "job":
        from agi_data.predictjob import run_prediction

        out = run_prediction(model_path, {"store_path": str(store.root), "run_id": "bench", "version": None},
                             {"block_frames": block, "threads": 1})
        assert out["status"] == "ok", out
    else:
        import torch

        from agi_data.electronic import ElectronicModel

        torch.set_num_threads(1)
        model = ElectronicModel.load(model_path)
        pred = model.predict(store.trajectory("bench"), block_frames=block).compute(scheduler="synchronous")
        assert pred.sizes["frame"] == n_frames
    seconds = time.perf_counter() - t0
    return {"mode": mode, "frames": n_frames, "seconds": seconds, "frames_per_s": n_frames / seconds,
            "peak_rss_mib": peak_rss_mib()}


def _train(path: str) -> None:
    from agi_data.electronic import fit_electronic_model
    from agi_data.testing.electronic import synthetic_lone_pair_run

    traj, wan = synthetic_lone_pair_run(n=2, n_frames=4, seed=3)
    fit_electronic_model([(traj, wan)], epochs=1, channels=8, threads=1).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=20, help="N: the small run (the large one has 10·N)")
    ap.add_argument("--block-frames", type=int, default=10)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, model, n, block = args.child
        print(json.dumps(_child(mode, model, int(n), int(block))))
        return
    model = os.path.join(tempfile.mkdtemp(prefix="elpredict-model-"), "model.pt")
    _train(model)
    print(f"# 32-ion α-AgI frames (16 I predicted), blocks of {args.block_frames} frames, 1 torch thread; {_load()}")
    rows = {}
    for n in (args.frames, 10 * args.frames):
        for mode in ("job", "memory"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, model, str(n), str(args.block_frames)],
                                 capture_output=True, text=True, check=True)
            rows[mode, n] = json.loads(out.stdout.strip().splitlines()[-1])
            r = rows[mode, n]
            print(f"{mode:6s} {n:6d} frames: {r['frames_per_s']:7.2f} frames/s, peak RSS {r['peak_rss_mib']:7.1f} MiB"
                  f"  ({_load()})")
    for n in (args.frames, 10 * args.frames):
        job, mem = rows["job", n], rows["memory", n]
        print(f"{n:6d} frames: job/memory throughput {job['frames_per_s'] / mem['frames_per_s']:.2f}, "
              f"peak RSS {job['peak_rss_mib'] / mem['peak_rss_mib']:.2f}")
    for mode in ("job", "memory"):
        print(f"{mode}: peak RSS at 10·N / at N = "
              f"{rows[mode, 10 * args.frames]['peak_rss_mib'] / rows[mode, args.frames]['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
