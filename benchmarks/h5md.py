"""Exporting a store run: H5MD (this project) against extended XYZ (ASE's writer), side by side.

One run of ``--atoms`` atoms × ``--frames`` frames (positions, velocities,
forces float32, energies) is written to a fresh store; then the same run is
exported with :func:`agi_data.interop.h5md.export_h5md` and with
:func:`agi_data.store.io.export_extxyz` (ASE's extxyz writer), each timed
once, and read back with MDAnalysis' H5MD reader (all frames) for the H5MD
file. Prints the seconds, frames per second, file sizes and the ratio.

    .venv/bin/python benchmarks/h5md.py [--atoms 256] [--frames 2000]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atoms", type=int, default=256)
    parser.add_argument("--frames", type=int, default=2000)
    args = parser.parse_args()

    import MDAnalysis as mda

    from agi_data import open_store
    from agi_data.interop.h5md import export_h5md
    from agi_data.store.io import export_extxyz

    n, N = args.frames, args.atoms
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = open_store(tmp / "store")
        species = ["Ag", "I"] * (N // 2) + ["Ag"] * (N % 2)
        with store.create_run("bench", species, np.eye(3) * 20.0, 0.01) as w:
            for lo in range(0, n, 1024):
                k = min(1024, n - lo)
                x = rng.random((k, N, 3), dtype=np.float32) * 20
                w.append(x, velocities=x, forces=x, energies=rng.normal(size=k))
        t0 = time.perf_counter()
        export_h5md(store, "bench", tmp / "run.h5md")
        t_h5md = time.perf_counter() - t0
        t0 = time.perf_counter()
        export_extxyz(store, "bench", tmp / "run.extxyz")
        t_xyz = time.perf_counter() - t0
        t0 = time.perf_counter()
        u = mda.Universe.empty(N).load_new(str(tmp / "run.h5md"), format="H5MD")
        for _ in u.trajectory:
            pass
        t_read = time.perf_counter() - t0
        size_h5 = os.path.getsize(tmp / "run.h5md") / 2**20
        size_xyz = os.path.getsize(tmp / "run.extxyz") / 2**20
    print(f"{N} atoms x {n} frames (positions, velocities, forces float32; energies)")
    print(f"export H5MD    {t_h5md:8.2f} s  {n / t_h5md:10.0f} frames/s  {size_h5:8.1f} MiB")
    print(f"export extxyz  {t_xyz:8.2f} s  {n / t_xyz:10.0f} frames/s  {size_xyz:8.1f} MiB")
    print(f"ratio extxyz/H5MD time: {t_xyz / t_h5md:.1f}x")
    print(f"MDAnalysis H5MDReader, all frames: {t_read:.2f} s ({n / t_read:.0f} frames/s)")
    print(f"load: {os.getloadavg()[0]:.1f} (1-min average) on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
