"""Chunk layout of a run: append cost against atom-block read cost.

Writers append along time in batches (the MD writers every ``flush_every``
= 1000 frames or every 30 s, whichever comes first); correlation functions
read the whole time axis of every atom, block of atoms by block of atoms
(:meth:`Store.atom_blocks`, the path of ``msd``/``vacf`` on a stored run).
For each candidate (chunk_frames, chunk_atoms) this writes the same
trajectory (positions, velocities, forces as float32) in batches of
``--batch`` frames and reports:

* append rate (frames/s) and the median latency of one append;
* bytes on disk after the run is written (every partial-chunk rewrite of an
  append leaves the old chunk in the history: Icechunk keeps every version);
* the atom-block read of all atoms over all frames (wall and CPU seconds of
  this process, best of ``--repeat``; warm page cache);
* the read of one frame (all atoms).

    python benchmarks/store_layout.py [--atoms 1000] [--frames 8192] [--batch 1000]
    python benchmarks/store_layout.py --frames 2048 --batch 16     # small, slow appends
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from agi_data import open_store

CANDIDATES = [(128, 128), (256, 128), (512, 128), (1024, 64), (1024, 128), (2048, 64)]


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", type=str, default=None, help="candidates as F:A,F:A (default: the built-in list)")
    args = ap.parse_args()
    cands = CANDIDATES if not args.only else [tuple(map(int, c.split(":"))) for c in args.only.split(",")]
    rng = np.random.default_rng(0)
    n, T, b = args.atoms, args.frames, args.batch
    block = rng.uniform(0, 30, size=(b, n, 3)).astype(np.float32)
    raw = 3 * n * 3 * 4 * T
    print(f"{n} atoms, {T} frames, appends of {b} frames (positions+velocities+forces, float32, "
          f"{raw / 1e6:.0f} MB raw); load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'chunk F×A':>11} {'append fr/s':>11} {'median append s':>15} {'disk / raw':>10} "
          f"{'all-atom read s':>15} {'read CPU s':>10} {'one frame s':>11}")
    for cf, ca in cands:
        with tempfile.TemporaryDirectory() as d:
            store = open_store(Path(d) / "s")
            lat = []
            t0 = time.perf_counter()
            with store.create_run("r", ["Ag"] * n, np.eye(3) * 30, 0.005, chunk_frames=cf, chunk_atoms=ca) as w:
                for start in range(0, T, b):
                    k = min(b, T - start)
                    t1 = time.perf_counter()
                    w.append(block[:k], velocities=block[:k], forces=block[:k])
                    lat.append(time.perf_counter() - t1)
            t_write = time.perf_counter() - t0
            on_disk = disk_bytes(Path(d) / "s")
            best = (np.inf, np.inf)
            for _ in range(args.repeat):
                t1, c1 = time.perf_counter(), time.process_time()
                for _blk in store.atom_blocks("r", "positions"):
                    pass
                best = min(best, (time.perf_counter() - t1, time.process_time() - c1))
            ds = store.trajectory("r")
            t1 = time.perf_counter()
            ds.positions.isel(time=T // 2).values
            t_frame = time.perf_counter() - t1
        print(f"{cf:>5}×{ca:<5} {T / t_write:>11.0f} {np.median(lat):>15.3f} {on_disk / raw:>10.2f} "
              f"{best[0]:>15.3f} {best[1]:>10.3f} {t_frame:>11.3f}")


if __name__ == "__main__":
    main()
