"""Crash behaviour: SIGKILL during appends, agi-data store against plain ``to_zarr(append_dim=...)``.

A child process appends batches of frames whose values encode their frame
index (frame i is all i) to positions, velocities and energies, and reports
each finished append. The parent kills it at a random moment, then checks
what a reader sees:

- *lost*: fewer frames than the child had reported as written;
- *torn*: arrays of different lengths, or a frame whose values are wrong
  (part of an interrupted batch visible, or an earlier frame damaged);
- *unreadable*: the reader raises.

    .venv/bin/python benchmarks/store_crash_compare.py [--kills 20]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

N_ATOMS, BATCH = 500, 20

CHILDREN = {
    "agi-data store": textwrap.dedent(f"""
        import sys, numpy as np
        from agi_data import open_store
        s = open_store(sys.argv[1])
        w = s.open_run("r") if "r" in s else s.create_run("r", ["Ag"] * {N_ATOMS}, np.eye(3) * 20, 0.01)
        n = w.n_frames
        while True:
            b = np.arange(n, n + {BATCH}, dtype=np.float32)[:, None, None] * np.ones((1, {N_ATOMS}, 3), np.float32)
            w.append(b, velocities=b, energies=np.arange(n, n + {BATCH}, dtype=float))
            n += {BATCH}
            print(n, flush=True)
    """),
    "xarray to_zarr(append_dim)": textwrap.dedent(f"""
        import sys, os, numpy as np, xarray as xr
        path = sys.argv[1]
        n = xr.open_zarr(path).sizes["time"] if os.path.exists(path) else 0
        while True:
            b = np.arange(n, n + {BATCH}, dtype=np.float32)[:, None, None] * np.ones((1, {N_ATOMS}, 3), np.float32)
            ds = xr.Dataset({{"positions": (("time", "atom", "xyz"), b), "velocities": (("time", "atom", "xyz"), b),
                             "energies": ("time", np.arange(n, n + {BATCH}, dtype=float))}},
                            coords={{"time": np.arange(n, n + {BATCH}) * 0.01}})
            if n == 0:
                ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False,
                           encoding={{v: {{"chunks": (128, 128, 3)}} for v in ("positions", "velocities")}})
            else:
                ds.to_zarr(path, append_dim="time", zarr_format=3, consolidated=False)
            n += {BATCH}
            print(n, flush=True)
    """),
}


def read_back(kind: str, path: Path):
    if kind == "agi-data store":
        from agi_data import open_store

        ds = open_store(path).trajectory("r")
    else:
        import xarray as xr

        ds = xr.open_zarr(path, consolidated=False)
    return ds.positions.values, ds.velocities.values, ds.energies.values


def trial(kind: str, path: Path, rng) -> tuple[str, int]:
    proc = subprocess.Popen([sys.executable, "-c", CHILDREN[kind], str(path)], stdout=subprocess.PIPE, text=True)
    reported = [int(proc.stdout.readline())]  # the first append is done: start the clock
    time.sleep(rng.uniform(0.0, 0.5))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reported += [int(x) for x in proc.stdout.read().split()]
    written = max(reported)
    try:
        pos, vel, en = read_back(kind, path)
    except Exception as err:  # noqa: BLE001
        print(f"  {kind}: unreadable after a kill: {type(err).__name__}: {str(err)[:120]}")
        return "unreadable", written
    n = len(pos)
    if n < written:
        return "lost", written
    idx = np.arange(n, dtype=np.float32)
    ok = (len(vel) == n == len(en) and np.array_equal(pos, idx[:, None, None] * np.ones((1, N_ATOMS, 3), np.float32))
          and np.array_equal(vel, pos) and np.array_equal(en, idx))
    return ("ok" if ok else "torn"), written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(3)
    print(f"{args.kills} SIGKILLs per writer during appends of {BATCH} frames × {N_ATOMS} atoms")
    for kind in CHILDREN:
        outcomes = {"ok": 0, "lost": 0, "torn": 0, "unreadable": 0}
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "s"
            for _ in range(args.kills):
                outcome, _ = trial(kind, path, rng)
                outcomes[outcome] += 1
                if outcome == "unreadable":
                    break  # nothing more to append to
        print(f"{kind:<28} " + "  ".join(f"{k}={v}" for k, v in outcomes.items()))


if __name__ == "__main__":
    main()
