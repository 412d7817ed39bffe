"""Append throughput: the agi-data store against xarray ``to_zarr(append_dim=...)`` and ASE extxyz.

One run, the same 1000-atom frames (positions, velocities, forces as
float32, energies, cell) appended in batches, to each writer:

- agi-data ``RunWriter.append`` (one Icechunk transaction per batch: atomic,
  versioned, crash-safe);
- ``xarray.Dataset.to_zarr(store, append_dim="time")`` into plain Zarr v3
  (not atomic: a crash mid-append can leave a partly written batch);
- ASE ``write(..., format="extxyz", append=True)`` (text, one frame at a time).

    .venv/bin/python benchmarks/store_write.py [--atoms 1000] [--frames 2000] [--batch 100]

Prints frames/s and MB/s (of float32 payload) for each and the ratios.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from agi_data import open_store


def make_frames(n_atoms: int, n_frames: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 30, size=(n_frames, n_atoms, 3)).astype(np.float32)
    vel = rng.normal(size=(n_frames, n_atoms, 3)).astype(np.float32)
    frc = rng.normal(size=(n_frames, n_atoms, 3)).astype(np.float32)
    energies = rng.normal(size=n_frames)
    return pos, vel, frc, energies


def bench_store(path: Path, data, batch: int, species, cell) -> float:
    pos, vel, frc, e = data
    store = open_store(path)
    t0 = time.perf_counter()
    with store.create_run("bench", species, cell, 0.005) as w:
        for i in range(0, len(pos), batch):
            w.append(pos[i:i + batch], velocities=vel[i:i + batch], forces=frc[i:i + batch], energies=e[i:i + batch])
    return time.perf_counter() - t0


def bench_to_zarr(path: Path, data, batch: int, species, cell) -> float:
    pos, vel, frc, e = data
    n_atoms = pos.shape[1]
    t0 = time.perf_counter()
    for i in range(0, len(pos), batch):
        sl = slice(i, i + batch)
        n = len(pos[sl])
        ds = xr.Dataset(
            {
                "positions": (("time", "atom", "xyz"), pos[sl]),
                "velocities": (("time", "atom", "xyz"), vel[sl]),
                "forces": (("time", "atom", "xyz"), frc[sl]),
                "energies": ("time", e[sl]),
                "cell": (("time", "vec", "xyz"), np.broadcast_to(cell, (n, 3, 3))),
            },
            coords={"time": (i + np.arange(n)) * 0.005, "species": ("atom", np.asarray(species))},
        )
        if i == 0:
            enc = {v: {"chunks": (128, min(128, n_atoms), 3)} for v in ("positions", "velocities", "forces")}
            ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=enc)
        else:
            ds.drop_vars("species").to_zarr(path, append_dim="time", zarr_format=3, consolidated=False)
    return time.perf_counter() - t0


def bench_extxyz(path: Path, data, species, cell) -> float:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    pos, vel, frc, e = data
    t0 = time.perf_counter()
    with open(path, "w") as fh:
        for i in range(len(pos)):
            atoms = Atoms(numbers=species, positions=pos[i], cell=cell, pbc=True)
            atoms.set_velocities(vel[i])
            atoms.calc = SinglePointCalculator(atoms, energy=float(e[i]), forces=frc[i])
            write(fh, atoms, format="extxyz")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--extxyz-frames", type=int, default=200, help="extxyz is slow: time it on this many frames")
    args = ap.parse_args()
    species = np.array([47, 53] * (args.atoms // 2) + [47] * (args.atoms % 2))
    cell = np.eye(3) * 30.0
    data = make_frames(args.atoms, args.frames)
    mb = 3 * args.atoms * 3 * 4 / 1e6  # float32 payload per frame
    print(f"{args.atoms} atoms, {args.frames} frames in batches of {args.batch}; {mb:.3f} MB of float32 per frame")
    results = {}
    with tempfile.TemporaryDirectory() as d:
        results["agi-data store (Icechunk)"] = args.frames / bench_store(Path(d) / "store", data, args.batch, species, cell)
        results["xarray to_zarr(append_dim)"] = args.frames / bench_to_zarr(Path(d) / "plain.zarr", data, args.batch, species, cell)
        small = tuple(x[: args.extxyz_frames] for x in data)
        results["ASE extxyz"] = args.extxyz_frames / bench_extxyz(Path(d) / "t.xyz", small, species, cell)
    base = results["agi-data store (Icechunk)"]
    print(f"{'writer':<28} {'frames/s':>10} {'MB/s':>8} {'store / this':>13}")
    for name, fps in results.items():
        print(f"{name:<28} {fps:>10.1f} {fps * mb:>8.1f} {base / fps:>13.2f}")


if __name__ == "__main__":
    main()
