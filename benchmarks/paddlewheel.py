"""Rotor correlation at the earlier study's size: FFT over all origins vs the direct O(T²) loop.

The earlier study (Dhattarwal, Somni & Remsing, Nat. Commun. 15, 121 (2024))
looped over all pairs of time origins in Fortran. Here:

1. **End to end, full size** — 108 ions (54 I + 54 Ag) × 80 000 frames with
   486 Wannier centres per frame (synthetic, generated lazily block by
   block, never materialised): ``rotor_correlation`` assigns every centre,
   builds M(frame, ion) and correlates it. Run in a child process per size
   so that the peak RSS is its own; two sizes show that the peak memory is
   set by the Dask blocks, not by the number of frames T.
2. **Correlation step, same data** — on M of a subsample (T_sub frames)
   and on the full M: the project's FFT correlation against a compiled
   (numba, Fortran-speed) direct loop over all origins and lags, and
   against tidynamics' ``acf``; the direct loop is timed on two subsample
   lengths to confirm its T² scaling, and extrapolated to the full size.

    .venv/bin/python benchmarks/paddlewheel.py [--frames 80000] [--sub 4000] [--chunk 2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def child(n_frames: int, chunk: int) -> None:
    """Full pipeline on lazily generated data; prints a JSON line."""
    import dask

    from agi_data.analysis import rotor_correlation, rotor_function
    from agi_data.testing.paddlewheel import lazy_rotating_agi

    traj, wan = lazy_rotating_agi(n=3, n_frames=n_frames, chunk=chunk)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with dask.config.set(scheduler="threads"):
        t0 = time.perf_counter()  # the synthetic data alone: one pass that only generates it
        dask.compute(wan["centres"].data.sum(), traj["positions"].data.sum())
        generate = time.perf_counter() - t0
        t0 = time.perf_counter()
        c = rotor_correlation(traj, wan, progress=False)
        elapsed = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"frames": n_frames, "ions": traj.sizes["atom"], "centres": wan.sizes["wannier"],
           "seconds": elapsed, "generate_seconds": generate, "peak_rss_mib": peak, "rss_before_mib": rss0,
           "centres_if_materialised_mib": n_frames * wan.sizes["wannier"] * 3 * 4 / 2**20,
           "c_at_0.1ps": float(c.sel(lag=0.1, method="nearest"))}
    if sys.argv[-1] != "none":  # keep M of the small run for part 2
        m = rotor_function(traj, wan).compute().values
        np.save(sys.argv[-1], m)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(n_frames: int, chunk: int, save: str = "none") -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", str(n_frames), "--chunk", str(chunk), save],
                          capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stdout + proc.stderr)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def direct_loop():
    import numba

    @numba.njit(cache=True)
    def loop(m):  # the earlier study's algorithm: every pair of origins, every ion
        T, n = m.shape
        out = np.zeros(T)
        for lag in range(T):
            s = 0.0
            for t0 in range(T - lag):
                for i in range(n):
                    s += m[t0, i] * m[t0 + lag, i]
            out[lag] = s / (T - lag)
        return out / out[0]

    return loop


def fft_correlation(m: np.ndarray) -> np.ndarray:
    import xarray as xr

    from agi_data.analysis.correlate import correlate

    c = correlate(xr.DataArray(m, dims=("frame", "ion")), time_dim="frame", component_dim=None).sum("ion").values
    return c / c[0]


def timed(f, *args, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=80_000)
    ap.add_argument("--small", type=int, default=20_000, help="a second, smaller run for the memory scaling")
    ap.add_argument("--sub", type=int, default=4000, help="subsample length for the direct O(T²) loop")
    ap.add_argument("--chunk", type=int, default=2000)
    args = ap.parse_args()
    import tempfile

    import tidynamics

    with tempfile.TemporaryDirectory() as tmp:
        small = run_child(args.small, args.chunk, f"{tmp}/m.npy")
        m_small = np.load(f"{tmp}/m.npy")
    full = run_child(args.frames, args.chunk)
    print(f"== end to end: rotor_correlation, {full['ions']} ions, {full['centres']} centres/frame, Dask blocks of "
          f"{args.chunk} frames")
    for r in (small, full):
        print(f"  T = {r['frames']:6d}: {r['seconds']:7.1f} s (of which generating the synthetic data "
              f"~{r['generate_seconds']:.1f} s)   peak RSS {r['peak_rss_mib']:6.0f} MiB "
              f"(after imports {r['rss_before_mib']:.0f} MiB; the centres alone would be "
              f"{r['centres_if_materialised_mib']:.0f} MiB)")
    print(f"  peak memory ratio {full['peak_rss_mib'] / small['peak_rss_mib']:.2f} for "
          f"{full['frames'] / small['frames']:.0f}x the frames")

    loop = direct_loop()
    loop(m_small[:10])  # compile
    n_sub = args.sub
    print(f"\n== correlation step on M(frame, ion) of {m_small.shape[1]} iodides (same data for every method)")
    t_d1, ref1 = timed(loop, m_small[: n_sub // 2], repeat=1)
    t_d, ref = timed(loop, m_small[:n_sub], repeat=1)
    t_f, ours = timed(fft_correlation, m_small[:n_sub])
    t_t, tid = timed(lambda x: sum(tidynamics.acf(x[:, i]) for i in range(x.shape[1])), m_small[:n_sub])
    tid = tid / tid[0]
    print(f"  direct O(T^2) loop (numba): T={n_sub // 2}: {t_d1:.3f} s, T={n_sub}: {t_d:.3f} s "
          f"(x{t_d / t_d1:.1f} for 2x T)")
    print(f"  T={n_sub}: FFT (agi_data.correlate) {t_f * 1e3:.1f} ms, tidynamics.acf {t_t * 1e3:.1f} ms; "
          f"direct/FFT = {t_d / t_f:.0f}x; max |FFT - direct| = {np.abs(ours - ref).max():.1e}, "
          f"max |FFT - tidynamics| = {np.abs(ours - tid).max():.1e}")
    t_full_fft, _ = timed(fft_correlation, np.tile(m_small, (full["frames"] // len(m_small) + 1, 1))[: full["frames"]])
    t_full_direct = t_d * (full["frames"] / n_sub) ** 2
    print(f"  T={full['frames']}: FFT {t_full_fft:.2f} s; direct loop extrapolated (T^2) {t_full_direct:.0f} s "
          f"-> ratio {t_full_direct / t_full_fft:.0f}x")
    print(f"\nSUMMARY full size {full['frames']} frames: {full['seconds']:.1f} s end to end, peak RSS "
          f"{full['peak_rss_mib']:.0f} MiB; correlation step {t_full_direct / t_full_fft:.0f}x faster than the "
          f"O(T^2) loop")


if __name__ == "__main__":
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(int(sys.argv[i + 1]), int(sys.argv[sys.argv.index("--chunk") + 1]))
    else:
        main()
