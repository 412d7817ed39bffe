"""Pair analyses at scale: agi-data's RDF against MDAnalysis InterRDF on the same frames, and van Hove / cage timings.

    .venv/bin/python benchmarks/structure.py            # all cases
    .venv/bin/python benchmarks/structure.py --quick    # 1/10 of the frames, for a smoke run

Cases (synthetic uniform positions at the ion density of α-AgI, 0.0304 Å⁻³,
half Ag and half I, cubic cell, in memory; the RDF is Ag–I):

- ``rdf-500``: 500 atoms × 2500 frames, r_max 10 Å, dr 0.05 Å;
- ``rdf-10k``: 10 000 atoms × 10 frames, r_max 15 Å, dr 0.05 Å;
- ``vanhove-10k``: ``van_hove_distinct`` Ag–Ag at 10 000 atoms, 10 frames, lags 0 and 5 frames;
- ``cage-10k``: ``cage_correlation`` of Ag (10 nearest neighbours) at 10 000 atoms, 10 frames.

Each measurement runs in its own child process, which reports its wall time
and its peak resident memory (``ru_maxrss``), so the two tools' peaks do not
mix. The two RDFs are compared value by value (they histogram the same pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DENSITY = 4 / 5.0855**3  # ions per Å³ in α-AgI: 2 Ag + 2 I per bcc cell of a = 5.0855 Å (0.0304)
CASES = {
    "rdf-500": dict(n_atoms=500, n_frames=2500, r_max=10.0, dr=0.05),
    "rdf-10k": dict(n_atoms=10_000, n_frames=10, r_max=15.0, dr=0.05),
    "vanhove-10k": dict(n_atoms=10_000, n_frames=10, r_max=10.0, dr=0.05),
    "cage-10k": dict(n_atoms=10_000, n_frames=10),
}


def synthetic(n_atoms: int, n_frames: int, seed: int = 0):
    """Uniform positions in a cubic box at the α-AgI density, species alternating Ag/I."""
    from agi_data.testing import trajectory_dataset

    box = (n_atoms / DENSITY) ** (1 / 3)
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0.0, box, (n_frames, n_atoms, 3))
    species = ["Ag", "I"] * (n_atoms // 2)
    return trajectory_dataset(pos, species, box, 0.01), box


def run_ours(case: str, quick: bool) -> dict:
    import agi_data.analysis as an

    p = dict(CASES[case])
    if quick and p["n_frames"] > 10:
        p["n_frames"] //= 10
    ds, box = synthetic(p["n_atoms"], p["n_frames"])
    an.rdf(ds.isel(time=[0], atom=slice(0, 20)), "Ag", "I", r_max=5.0, dr=0.5)  # compile outside the timing
    t0 = time.perf_counter()
    if case.startswith("rdf"):
        out = an.rdf(ds, "Ag", "I", r_max=p["r_max"], dr=p["dr"])
        values = out.values.tolist()
    elif case.startswith("vanhove"):
        out = an.van_hove_distinct(ds, "Ag", "Ag", [0.0, 0.05], r_max=p["r_max"], dr=p["dr"])
        values = []
    else:
        out = an.cage_correlation(ds, "Ag", n_neighbors=10)
        values = []
    np.asarray(out.values)
    return {"seconds": time.perf_counter() - t0, "values": values, "box": box, **p}


def run_mdanalysis(case: str, quick: bool) -> dict:
    import MDAnalysis as mda
    from MDAnalysis.analysis.rdf import InterRDF
    from MDAnalysis.coordinates.memory import MemoryReader

    p = dict(CASES[case])
    if quick and p["n_frames"] > 10:
        p["n_frames"] //= 10
    ds, box = synthetic(p["n_atoms"], p["n_frames"])
    u = mda.Universe.empty(p["n_atoms"], trajectory=True)
    u.add_TopologyAttr("type", np.asarray(ds.symbol.values, dtype=object))
    u.load_new(np.asarray(ds.positions.values, dtype=np.float32), format=MemoryReader,
               dimensions=np.array([box, box, box, 90.0, 90.0, 90.0]))
    ag, iodide = u.select_atoms("type Ag"), u.select_atoms("type I")
    nbins = int(round(p["r_max"] / p["dr"]))
    t0 = time.perf_counter()
    r = InterRDF(ag, iodide, nbins=nbins, range=(0.0, p["r_max"]), norm="rdf").run()
    return {"seconds": time.perf_counter() - t0, "values": r.results.rdf.tolist(), **p}


def child(tool: str, case: str, quick: bool) -> None:
    out = (run_ours if tool == "agi-data" else run_mdanalysis)(case, quick)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def measure(tool: str, case: str, quick: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", tool, case] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{tool} {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "CASE"))
    parser.add_argument("--cases", nargs="*", default=list(CASES))
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.quick)
        return
    print(f"load average before: {os.getloadavg()}")
    for case in args.cases:
        ours = measure("agi-data", case, args.quick)
        line = (f"{case:12s} {ours['n_atoms']:>6} atoms × {ours['n_frames']:>5} frames: agi-data "
                f"{ours['seconds']:8.2f} s, peak RSS {ours['peak_rss_mib']:7.0f} MiB")
        if case.startswith("rdf"):
            mda = measure("MDAnalysis", case, args.quick)
            diff = float(np.max(np.abs(np.asarray(ours["values"]) - np.asarray(mda["values"]))))
            line += (f" | MDAnalysis InterRDF {mda['seconds']:8.2f} s, peak RSS {mda['peak_rss_mib']:7.0f} MiB"
                     f" | ratio {mda['seconds'] / ours['seconds']:5.2f}× | max |Δg| {diff:.2g}")
        print(line, flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
