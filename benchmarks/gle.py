"""GLE memory kernels: the Volterra inversion and the correlation step, timed.

1. **Inversion** — the trapezoidal second-kind recursion (Carof, Vuilleumier
   & Rotenberg 2014) at K = 1000, 5000 and 20 000 lags on the same input
   (exact ⟨F·F⟩, ⟨v·F⟩ of an exponential-kernel GLE): the project's blocked
   engine (compiled blocks + FFT history), the compiled O(K²) loop, and a
   plain numpy per-step loop. Target: K = 20 000 in under 0.1 s.
2. **Correlation step from the store** — 500 Ag × 100 000 frames (positions,
   velocities, forces, float32; ~1.7 GB) generated from a GLE by Markovian
   embedding and appended to an Icechunk store; then, in a fresh child
   process, ``memory_kernel(store.trajectory(run), method="force")`` (the
   three FFT correlations over all origins, blockwise over atoms with Dask,
   and the inversion), with its time and peak RSS.
3. **Same data, established tool** — ⟨v·v⟩, ⟨F·F⟩, ⟨v·F⟩ of a subset of atoms
   read from that run: ``gle_correlations`` against ``tidynamics.correlation``
   atom by atom.

    .venv/bin/python benchmarks/gle.py [--atoms 500] [--frames 100000] [--store DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _memory import peak_rss_mib

KERNEL = (1000.0, 0.02)  # K(t) = 1000 ps⁻² · exp(−t / 20 fs), ∫K = 20 ps⁻¹
DT = 0.002  # ps between stored frames
T_K = 750.0


def timed(f, *args, repeat=3, **kw):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f(*args, **kw)
        best = min(best, time.perf_counter() - t0)
    return best, out


# ---------------------------------------------------------------------- 1. inversion

def inversion() -> float:
    from agi_data.analysis.gle import volterra_trapezoid
    from agi_data.elements import mass
    from agi_data.testing.gle import exponential_kernel

    kernel = exponential_kernel(*KERNEL)
    m = mass("Ag")
    print("== 1. Volterra inversion (force route, second kind, trapezoidal), same input for every engine")
    print(f"{'K':>6} {'blocked':>10} {'numba loop':>11} {'numpy loop':>11} {'numpy/blocked':>14} "
          f"{'numba/blocked':>14} {'max |ΔK|/K(0)':>14}")
    t20k = np.nan
    for n in (1000, 5000, 20000):
        dt = 10.0 / n  # the kernel and the VACF over 10 ps, whatever K
        t = np.arange(n) * dt
        c, c_dot, c_ddot = kernel.correlations(t, T_K, m)
        r, g, a, k0 = -c_ddot, c_dot, c[0], -c_ddot[0] / c[0]
        volterra_trapezoid(r[:8], g[:8], a, k0, dt)  # compile / load the cache
        volterra_trapezoid(r[:8], g[:8], a, k0, dt, engine="numba")
        t_b, (kb, _) = timed(volterra_trapezoid, r, g, a, k0, dt, repeat=5)
        t_n, (kn, _) = timed(volterra_trapezoid, r, g, a, k0, dt, engine="numba", repeat=3)
        t_p, (kp, _) = timed(volterra_trapezoid, r, g, a, k0, dt, engine="numpy", repeat=1)
        dev = max(np.abs(kb - kp).max(), np.abs(kn - kp).max()) / k0
        print(f"{n:>6} {t_b * 1e3:>8.1f}ms {t_n * 1e3:>9.1f}ms {t_p * 1e3:>9.0f}ms {t_p / t_b:>14.0f} "
              f"{t_n / t_b:>14.1f} {dev:>14.1e}")
        if n == 20000:
            t20k = t_b
    print(f"  K = 20000: {t20k * 1e3:.1f} ms (target < 100 ms: {'met' if t20k < 0.1 else 'NOT met'})")
    return t20k


# ---------------------------------------------------------------------- 2. correlation step from the store

def write_run(store_dir: Path, n_atoms: int, n_frames: int) -> tuple[str, float]:
    from agi_data import open_store
    from agi_data.testing.gle import exponential_kernel, gle_blocks

    store = open_store(store_dir)
    run = f"gle-bench-{n_atoms}x{n_frames}"
    if run in store and store.trajectory(run).sizes["time"] == n_frames:
        return run, float("nan")
    if run in store:
        store.delete_run(run)
    box = 20.0
    t0 = time.perf_counter()
    with store.create_run(run, ["Ag"] * n_atoms, np.eye(3) * box, DT,
                          attrs={"temperature_K": T_K, "ensemble": "GLE", "engine": "agi_data.testing.gle"}) as w:
        for pos, vel, frc in gle_blocks(exponential_kernel(*KERNEL), n_atoms=n_atoms, n_frames=n_frames,
                                        block_frames=2048, dt_ps=DT, temperature_K=T_K, box=box, seed=1):
            w.append(pos, velocities=vel, forces=frc)
    return run, time.perf_counter() - t0


def child(store_dir: str, run: str, max_lag: float) -> None:
    import dask

    from agi_data import open_store
    from agi_data.analysis import memory_kernel
    from agi_data.testing.gle import exponential_kernel

    traj = open_store(store_dir).trajectory(run)
    rss0 = peak_rss_mib()
    with dask.config.set(scheduler="threads"):
        t0 = time.perf_counter()
        k = memory_kernel(traj, "Ag", method="force", max_lag_ps=max_lag, progress=False)
        elapsed = time.perf_counter() - t0
    peak = peak_rss_mib()
    exact = exponential_kernel(*KERNEL)(k["lag"].values)
    out = {"seconds": elapsed, "peak_rss_mib": peak, "rss_before_mib": rss0,
           "atoms": traj.sizes["atom"], "frames": traj.sizes["time"], "lags": k.sizes["lag"],
           "v_and_f_mib": 2 * traj["velocities"].nbytes / 2**20,
           "chunks": [int(c[0]) for c in traj["velocities"].chunks[:2]],
           "max_dev_first_decay": float(np.abs(k.values - exact)[: int(0.06 / DT) + 1].max() / exact[0])}
    print("RESULT " + json.dumps(out), flush=True)


def run_child(store_dir: Path, run: str, max_lag: float) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(store_dir), run, str(max_lag)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


# ---------------------------------------------------------------------- 3. same data, tidynamics

def versus_tidynamics(store_dir: Path, run: str, n_sub: int, max_lag: float) -> None:
    import tidynamics

    from agi_data import open_store
    from agi_data.analysis import gle_correlations

    traj = open_store(store_dir).trajectory(run).isel(atom=slice(0, n_sub)).load()
    n_lags = int(round(max_lag / DT)) + 1
    t_ours, ours = timed(gle_correlations, traj, "Ag", max_lag_ps=max_lag, repeat=1)
    v = traj["velocities"].values.astype(np.float64)
    f = traj["forces"].values.astype(np.float64)
    T = v.shape[0]

    def tid():
        out = {"vacf": 0.0, "force_autocorrelation": 0.0, "velocity_force": 0.0}
        for i in range(v.shape[1]):
            # tidynamics returns lags −(T−1)..(T−1), each divided by its number of origins; lag m ≥ 0 at T−1+m
            for name, a, b in (("vacf", v, v), ("force_autocorrelation", f, f), ("velocity_force", v, f)):
                full = tidynamics.correlation(a[:, i], b[:, i])
                out[name] = out[name] + full[T - 1:T - 1 + n_lags]
        return {k: val / v.shape[1] for k, val in out.items()}

    t_tid, ref = timed(tid, repeat=1)
    dev = max(float(np.abs(ours[k].values - ref[k]).max() / np.abs(ref[k]).max()) for k in ref)
    print(f"\n== 3. ⟨v·v⟩, ⟨F·F⟩, ⟨v·F⟩ of {n_sub} Ag × {T} frames (in memory), all origins")
    print(f"  agi_data gle_correlations {t_ours:.2f} s; tidynamics.correlation atom by atom {t_tid:.2f} s "
          f"-> {t_tid / t_ours:.1f}x; max relative difference {dev:.1e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=500)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--max-lag", type=float, default=1.0, help="ps")
    ap.add_argument("--sub", type=int, default=50, help="atoms for the tidynamics comparison")
    ap.add_argument("--store", type=Path, default=None, help="store directory (default: a temporary one)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary store")
    args = ap.parse_args()

    t20k = inversion()

    tmp = None
    store_dir = args.store
    if store_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="agi-gle-bench-"))
        store_dir = tmp / "store"
    try:
        run, t_write = write_run(store_dir, args.atoms, args.frames)
        size = args.atoms * args.frames * 3 * 4 * 3 / 2**20
        print(f"\n== 2. {args.atoms} Ag × {args.frames} frames (positions, velocities, forces float32, "
              f"{size:.0f} MiB) in the store {store_dir}")
        if np.isfinite(t_write):
            print(f"  generated (GLE, Markovian embedding) and appended in {t_write:.0f} s "
                  f"({size / t_write:.1f} MiB/s)")
        res = run_child(store_dir, run, args.max_lag)
        print(f"  memory_kernel(method='force', max_lag_ps={args.max_lag}) from the store, fresh process: "
              f"{res['seconds']:.1f} s ({res['lags']} lags), peak RSS {res['peak_rss_mib']:.0f} MiB "
              f"(after imports and opening the run {res['rss_before_mib']:.0f} MiB; velocities + forces alone "
              f"{res['v_and_f_mib']:.0f} MiB; stored chunks {res['chunks'][0]} frames × {res['chunks'][1]} atoms)")
        print(f"  kernel vs the exact one over its first decay: max |ΔK|/K(0) = {res['max_dev_first_decay']:.3f}")
        versus_tidynamics(store_dir, run, args.sub, args.max_lag)
    finally:
        if tmp is not None and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nSUMMARY inversion K=20000 {t20k * 1e3:.1f} ms; kernel from the store ({args.atoms}×{args.frames}) "
          f"{res['seconds']:.1f} s, peak RSS {res['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], sys.argv[i + 2], float(sys.argv[i + 3]))
    else:
        main()
