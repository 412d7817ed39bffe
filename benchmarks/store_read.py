"""The store → analysis read path: Dask per-chunk tasks against the chunk-aligned atom-block plan.

Every correlation analysis needs the whole time axis of a block of atoms
as float64. This writes one run (``--atoms`` × ``--frames`` float32
positions, the store's default chunks) and reads all of it, block
of atoms by block of atoms, four ways (warm page cache: each is run
``--repeat`` times and the best kept):

* ``xarray+dask, 128-atom blocks`` — what the analyses do today:
  ``ds.positions.isel(atom=block).values`` per block of 128 atoms;
* ``xarray+dask, one compute`` — ``ds.positions.values`` at once;
* ``store.atom_blocks`` — the read plan (:meth:`Store.atom_blocks`):
  chunk-aligned blocks, each chunk read from its file (a local store:
  ``agi_data.store.native``), checked and decoded into the block, no Dask graph;
* ``store.atom_blocks, Icechunk fetch`` — the same plan with the chunks
  fetched through Icechunk (what an object store gets);
* ``numpy in memory`` — the floor: the same float32 array already in
  memory, cast to float64 block by block.

``--profile`` prints where the time of the Dask path and of the plan goes
(cProfile, cumulative), so the components (Icechunk session and manifest
reads, chunk decode, Dask graph and scheduling, the cast) can be read off.

    python benchmarks/store_read.py [--atoms 1000] [--frames 4096] [--repeat 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import tempfile
import time
from unittest import mock

import numpy as np

from agi_data.store import open_store, read


def best_of(repeat: int, fn) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n, T = args.atoms, args.frames
    with tempfile.TemporaryDirectory() as d:
        store = open_store(d + "/s")
        data = np.empty((T, n, 3), np.float32)
        with store.create_run("r", ["Ag"] * n, np.eye(3) * 30, 0.01) as w:
            for start in range(0, T, 512):
                block = rng.uniform(0, 30, (min(512, T - start), n, 3)).astype(np.float32)
                data[start:start + len(block)] = block
                w.append(block)
        mb = data.nbytes / 1e6

        def dask_blocks():
            pos = store.trajectory("r").positions
            for a in range(0, n, 128):
                np.asarray(pos.isel(atom=slice(a, a + 128)).values, dtype=np.float64)

        def dask_once():
            np.asarray(store.trajectory("r").positions.values, dtype=np.float64)

        def plan():
            for block in store.atom_blocks("r"):
                assert block.data.dtype == np.float64

        def plan_fetched():
            with mock.patch.object(read, "_chunk_files", lambda *a: None):
                plan()

        def memory():
            for a in range(0, n, 128):
                np.asarray(data[:, a:a + 128], dtype=np.float64)

        # the plan reads exactly what the Dask path reads
        got = np.concatenate([b.data for b in store.atom_blocks("r")], axis=1)
        assert np.array_equal(got, data.astype(np.float64))
        cases = {"xarray+dask, 128-atom blocks": dask_blocks, "xarray+dask, one compute": dask_once,
                 "store.atom_blocks": plan, "store.atom_blocks, Icechunk fetch": plan_fetched,
                 "numpy in memory (floor)": memory}
        times = {name: best_of(args.repeat, fn) for name, fn in cases.items()}
        chunks = store.trajectory("r").positions.encoding.get("chunks") or store.trajectory("r").positions.chunks
        print(f"{n} atoms × {T} frames float32 ({mb:.0f} MB), chunks {chunks}, warm, best of {args.repeat}; "
              f"load {os.getloadavg()[0]:.2f}")
        floor, dask_t = times["numpy in memory (floor)"], times["xarray+dask, 128-atom blocks"]
        print(f"{'path':<36} {'s':>7} {'MB/s':>7} {'vs dask blocks':>14} {'vs memory':>9}")
        for name, t in times.items():
            print(f"{name:<36} {t:>7.3f} {mb / t:>7.0f} {dask_t / t:>13.2f}× {t / floor:>8.2f}×")
        if args.profile:
            for name in ("xarray+dask, 128-atom blocks", "store.atom_blocks", "store.atom_blocks, Icechunk fetch"):
                prof = cProfile.Profile()
                prof.runcall(cases[name])
                print(f"\n--- {name}: cumulative time, top 15")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
