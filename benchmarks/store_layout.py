"""Chunk layout of a run: append cost against atom-block read cost.

Writers append along time in batches; correlation functions read the whole
time axis of a block of atoms. For each candidate (chunk_frames,
chunk_atoms) this writes the same 1000-atom trajectory (positions,
velocities, forces as float32) in batches of ``--batch`` frames and then
reads a 128-atom block over all frames, and a single frame.

    .venv/bin/python benchmarks/store_layout.py [--frames 2048] [--batch 16]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from agi_data import open_store

CANDIDATES = [(16, 1000), (64, 128), (64, 1000), (128, 128), (256, 128), (1024, 64)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, T, b = args.atoms, args.frames, args.batch
    block = rng.normal(size=(b, n, 3)).astype(np.float32)
    mb_per_frame = 3 * n * 3 * 4 / 1e6
    print(f"{n} atoms, {T} frames, appends of {b} frames (positions+velocities+forces, float32)")
    print(f"{'chunk_frames':>12} {'chunk_atoms':>11} {'append fr/s':>11} {'MB/s':>7} {'block read s':>12} {'frame read s':>12}")
    for cf, ca in CANDIDATES:
        with tempfile.TemporaryDirectory() as d:
            store = open_store(d + "/s")
            t0 = time.perf_counter()
            with store.create_run("r", ["Ag"] * n, np.eye(3) * 30, 0.005, chunk_frames=cf, chunk_atoms=ca) as w:
                for _ in range(T // b):
                    w.append(block, velocities=block, forces=block)
            t_write = time.perf_counter() - t0
            ds = store.trajectory("r")
            t0 = time.perf_counter()
            ds.positions.isel(atom=slice(0, 128)).values
            t_block = time.perf_counter() - t0
            t0 = time.perf_counter()
            ds.positions.isel(time=T // 2).values
            t_frame = time.perf_counter() - t0
        fps = T / t_write
        print(f"{cf:>12} {ca:>11} {fps:>11.0f} {fps * mb_per_frame:>7.1f} {t_block:>12.3f} {t_frame:>12.3f}")


if __name__ == "__main__":
    main()
