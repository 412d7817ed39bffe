"""MSD and VACF per atom: agi-data against MDAnalysis and tidynamics, on the same data, in one run.

    .venv/bin/python benchmarks/transport.py                 # 1000 atoms x 20000 frames, and 10x longer
    .venv/bin/python benchmarks/transport.py --atoms 200 --frames 4000 --long 0   # quick look

What it does:

1. streams an Ornstein-Uhlenbeck trajectory (positions wrapped into a 40 Å box,
   float32, plus velocities) into a store with ``agi_data.open_store``;
2. times, on the same in-memory arrays, ``msd(per_atom=True)`` and
   ``vacf(per_atom=True)`` against MDAnalysis ``EinsteinMSD(fft=True)`` (its
   frame loop included) and a per-atom tidynamics loop (``tidynamics.msd`` /
   ``tidynamics.acf``), and checks that the numbers agree;
3. times the same calls on the stored run loaded into memory (wrapped, so the
   MSD unwraps) and read from the store, interleaved in one process; then
   from the store as a user calls it, each in a fresh process
   (``open_store(...).trajectory("ou").agi.msd("Ag")``: its first call, then
   best of ``--repeats``) that reports its peak RSS; prints store / in memory
   on exactly the same data (warm page cache: the run was just written);
4. times the store's read alone (the atom blocks of positions and velocities,
   not correlated) and measures this machine's FFT rate (batched real FFTs of the same length, on
   all cores) and prints the fraction of it that the MSD/VACF reach;
5. with ``--long F`` writes a trajectory F times longer and measures the peak
   memory of the same (atom-averaged) calls read out of core.

Results are printed and written to benchmarks/_out/transport.json.

    .venv/bin/python benchmarks/transport.py --kinisi        # D ± σ: agi-data vs kinisi (docs table)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout, whatever is installed

import numpy as np
from _memory import peak_rss_mib

GAMMA, DT, BOX = 10.0, 0.005, 40.0  # 1/ps, ps between frames, Å


def _c0() -> float:
    from agi_data.elements import mass
    from agi_data.units import kT_over_m

    return 3 * kT_over_m(750.0, mass("Ag"))


def write_trajectory(path: Path, n_atoms: int, n_frames: int, *, keep: bool, seed: int = 0,
                     chunk_frames: int | None = None, chunk_atoms: int | None = None):
    """Stream OU velocities and their trapezoidal positions into a store; return the unwrapped arrays if ``keep``."""
    from rich.progress import Progress

    from agi_data import open_store

    rng = np.random.default_rng(seed)
    c0 = _c0()
    sigma = np.sqrt(c0 / 3)
    decay = np.exp(-GAMMA * DT)
    kick = sigma * np.sqrt(1 - decay**2)
    v = rng.normal(scale=sigma, size=(n_atoms, 3))
    r = rng.random((n_atoms, 3)) * BOX
    kept_r = np.empty((n_frames, n_atoms, 3), np.float32) if keep else None
    kept_v = np.empty((n_frames, n_atoms, 3), np.float32) if keep else None
    store = open_store(path)
    block = 2048
    with store.create_run("ou", ["Ag"] * n_atoms, np.eye(3) * BOX, DT, attrs={"gamma": GAMMA, "c0": c0},
                          chunk_frames=chunk_frames, chunk_atoms=chunk_atoms) as w, \
            Progress() as bar:
        task = bar.add_task(f"writing {n_atoms} atoms × {n_frames} frames", total=n_frames)
        for start in range(0, n_frames, block):
            k = min(block, n_frames - start)
            vb = np.empty((k, n_atoms, 3))
            rb = np.empty((k, n_atoms, 3))
            noise = rng.normal(scale=kick, size=(k, n_atoms, 3))
            for i in range(k):
                if start + i > 0:
                    v_new = decay * v + noise[i]
                    r = r + 0.5 * (v + v_new) * DT
                    v = v_new
                vb[i], rb[i] = v, r
            w.append((rb % BOX).astype(np.float32), velocities=vb.astype(np.float32))
            if keep:
                kept_r[start:start + k], kept_v[start:start + k] = rb, vb
            bar.advance(task, k)
    return kept_r, kept_v


def child(args) -> None:
    """One out-of-core call in a fresh process: prints JSON with time and memory."""
    t_import = time.perf_counter()
    import agi_data
    import agi_data.analysis  # what ds.agi imports on first use; timed apart (a fixed cost, not the data's)

    t_import = time.perf_counter() - t_import
    t_open = time.perf_counter()
    ds = agi_data.open_store(args.store).trajectory("ou")  # as a user calls it: open, trajectory, ds.agi.msd
    t_open = time.perf_counter() - t_open
    # the peak from the kernel's high-water mark (VmHWM), not a sampling thread: polling RSS every few ms took
    # the GIL and a share of the 2 cores from the calls being timed
    base = _rss_now_mib()
    times, cpus, out, result_mib, checksum = [], [], None, 0.0, 0.0
    for _ in range(args.repeats):  # the first call of a fresh process, then best of k, as in memory
        out = None  # the peak RSS is that of one call, not of one call plus the previous result
        t, c = time.perf_counter(), time.process_time()
        out = getattr(ds.agi, args.what)("Ag", per_atom=args.per_atom).compute()
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        result_mib, checksum = out.nbytes / 2**20, float(np.asarray(out).sum())
    print(json.dumps({"seconds": min(times), "first_seconds": times[0], "cpu_s": min(cpus),
                      "first_cpu_s": cpus[0], "open_s": t_open,
                      "import_s": t_import,
                      "peak_rss_mib": peak_rss_mib(), "base_rss_mib": base,
                      "result_mib": result_mib, "checksum": checksum}))


def _rss_now_mib() -> float:
    """This process's resident set now (``VmRSS``), MiB."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def run_child(store: Path, what: str, per_atom: bool, repeats: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", "--store", str(store), "--what", what, "--repeats", str(repeats)]
    if per_atom:
        cmd.append("--per-atom")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def fft_rate(n_frames: int) -> dict:
    """Real FFTs of the correlation length per second on all cores (batched, float64), best of 5."""
    from scipy.fft import irfft, rfft

    from agi_data.analysis.correlate import fft_length

    n = fft_length(n_frames)
    x = np.random.default_rng(0).normal(size=(48, n))
    workers = os.cpu_count() or 1
    best = np.inf
    for _ in range(5):
        t = time.perf_counter()
        f = rfft(x, axis=-1, workers=workers)
        irfft(f, n=n, axis=-1, workers=workers)
        best = min(best, time.perf_counter() - t)
    return {"n_fft": n, "transforms_per_s": 2 * x.shape[0] / best, "workers": workers}


def timed(func, *a, repeats: int = 1, **k):
    """Best wall time and best process CPU time (all threads) over ``repeats`` calls; the last result."""
    wall, cpu, out = np.inf, np.inf, None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = func(*a, **k)
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return out, wall, cpu


def time_loaded(stored, repeats: int) -> dict:
    """msd and vacf per atom of a stored run, from the store and loaded into memory, interleaved, best of ``repeats``.

    Interleaved in one process, so that both sides see the same load of a
    shared machine; the fresh-process runs of step [3] give the peak RSS.
    """
    from agi_data.analysis import msd, vacf

    loaded = stored.compute()  # a copy: Dataset.load() would load ``stored`` itself, in place
    best = {}
    for _ in range(repeats):
        for key, func in (("msd", msd), ("vacf", vacf)):
            for where, data in (("store", stored), ("memory", loaded)):
                _, wall, cpu = timed(lambda f=func, d=data: f(d, "Ag", per_atom=True).compute())
                best[f"{key}_{where}_s"] = min(wall, best.get(f"{key}_{where}_s", np.inf))
                best[f"{key}_{where}_cpu_s"] = min(cpu, best.get(f"{key}_{where}_cpu_s", np.inf))
    best["msd_s"], best["vacf_s"] = best["msd_memory_s"], best["vacf_memory_s"]
    return best


def read_cost(store_path: Path, repeats: int) -> dict:
    """The store's read alone: every atom block of positions and of velocities, as the MSD/VACF read them, best of k.

    Wall and process CPU (all threads: Icechunk's fetch threads included) of
    reading the blocks into two recycled arrays without correlating them.
    """
    from agi_data import open_store
    from agi_data.analysis.correlate import stored_block_atoms
    from agi_data.store.read import stored_source

    ds = open_store(store_path).trajectory("ou")
    out = {}
    for name in ("positions", "velocities"):
        src = stored_source(ds[name])
        width = stored_block_atoms(src.shape, ds[name].dtype.itemsize)
        _, wall, cpu = timed(lambda s=src, w=width: [None for _ in s.blocks(block_atoms=w, buffers=2)], repeats=repeats)
        out[name] = {"seconds": wall, "cpu_s": cpu, "mb": ds[name].nbytes / 1e6, "block_atoms": width}
    return out


def kinisi_table() -> None:
    """D and its error: agi-data (GLS, exact random-walk covariance) vs kinisi (Bayesian), same data."""
    import scipp as sc
    from ase import Atoms
    from kinisi.analyze import DiffusionAnalyzer

    from agi_data.analysis import diffusion_coefficient, msd
    from agi_data.testing import ornstein_uhlenbeck, random_walk

    print("| data | D true | agi-data D ± σ (Å²/ps) | kinisi D ± σ (Å²/ps) | σ ratio |\n|---|---|---|---|---|")
    cases = [
        ("random walk, 24 atoms × 200 frames", random_walk(24, 200, D=0.5, dt=0.01, cell=20.0, seed=3), 0.01),
        ("random walk, 64 atoms × 500 frames", random_walk(64, 500, D=0.2, dt=0.01, cell=20.0, seed=4), 0.01),
        ("Ornstein–Uhlenbeck (γ = 10/ps), 32 atoms × 1000 frames, fit from 0.5 ps",
         ornstein_uhlenbeck(32, 1000, gamma=10.0, c0=3.0, dt=0.005, cell=30.0, seed=5), 0.5),
    ]
    for label, ds, start in cases:
        box, dt, n = float(ds.cell.values[0, 0]), float(ds.attrs["timestep_ps"]), ds.sizes["atom"]
        frames = [Atoms(f"Ag{n}", positions=p, cell=np.eye(3) * box, pbc=True) for p in ds.positions.values]
        an = DiffusionAnalyzer.from_ase(frames, specie="Ag", time_step=sc.scalar(dt, unit="ps"),
                                        step_skip=sc.scalar(1), progress=False)
        an.diffusion(sc.scalar(start, unit="ps"), progress=False, n_samples=1000, n_burn=500,
                     random_state=np.random.RandomState(0))
        d_k, e_k = an.D.values.mean() * 1e4, an.D.values.std() * 1e4  # cm²/s → Å²/ps
        fit = diffusion_coefficient(msd(ds, "Ag"), fit_range=(start, (ds.sizes["time"] - 1) * dt))
        print(f"| {label} | {ds.attrs['D_true']:.4f} | {float(fit.D):.4f} ± {float(fit.D_stderr):.4f} | "
              f"{d_k:.4f} ± {e_k:.4f} | {float(fit.D_stderr) / e_k:.2f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, default=1000)
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--long", type=int, default=10, help="factor of the long trajectory (0: skip)")
    p.add_argument("--repeats", type=int, default=3, help="in-memory timings: best of this many, interleaved")
    p.add_argument("--workdir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    p.add_argument("--chunk-frames", type=int, default=None, help="store chunk along time (default: the store's, 512)")
    p.add_argument("--chunk-atoms", type=int, default=None, help="store chunk along atoms (default: the store's, 128)")
    p.add_argument("--kinisi", action="store_true", help="print the D ± σ comparison with kinisi and stop")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--what", help=argparse.SUPPRESS)
    p.add_argument("--per-atom", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    if args.kinisi:
        return kinisi_table()

    import MDAnalysis as mda
    import tidynamics
    from MDAnalysis.analysis.msd import EinsteinMSD
    from MDAnalysis.coordinates.memory import MemoryReader

    from agi_data.analysis import msd, vacf
    from agi_data.testing import trajectory_dataset

    N, T = args.atoms, args.frames
    work = Path(args.workdir or tempfile.mkdtemp(prefix="agi-transport-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"atoms": N, "frames": T, "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()}
    print(f"[1] trajectory: {N} atoms × {T} frames (float32) → {work / 'short'}")
    layout = {"chunk_frames": args.chunk_frames, "chunk_atoms": args.chunk_atoms}
    results["layout"] = layout
    r, v = write_trajectory(work / "short", N, T, keep=True, **layout)

    # ---- in memory, same arrays for everyone
    print("[2] in memory: agi-data vs MDAnalysis EinsteinMSD(fft=True) vs tidynamics")
    ds = trajectory_dataset(r, "Ag", np.eye(3) * BOX, DT, velocities=v, dtype=np.float32)
    ds.positions.attrs["unwrapped"] = True
    small = ds.isel(atom=slice(0, 4), time=slice(0, 256))  # warm-up: imports, FFT plans, thread pool
    msd(small, "Ag", per_atom=True), vacf(small, "Ag", per_atom=True), tidynamics.msd(r[:256, 0].astype(float))
    u = mda.Universe.empty(N, trajectory=False)
    u.load_new(r, format=MemoryReader, dt=DT)
    k = args.repeats
    # interleaved, best of k: the machine is shared, so each side gets its quietest moment
    def side_by_side(ds, u, r, v):
        return [
            ("msd", lambda: msd(ds, "Ag", per_atom=True)),
            ("mdanalysis_msd", lambda: EinsteinMSD(u, select="all", msd_type="xyz", fft=True).run()),
            ("tidynamics_msd", lambda: [tidynamics.msd(r[:, i].astype(np.float64)) for i in range(N)]),
            ("vacf", lambda: vacf(ds, "Ag", per_atom=True)),
            ("tidynamics_acf", lambda: np.stack([tidynamics.acf(v[:, i].astype(np.float64)) for i in range(N)])),
        ]

    runs = {}
    for _ in range(k):
        for key, call in side_by_side(ds, u, r, v):
            out, wall, cpu = timed(call)
            best = runs.get(key, (None, np.inf, np.inf))
            runs[key] = (out, min(wall, best[1]), min(cpu, best[2]))
    (ours_msd, t_msd, c_msd), (mda_run, t_mda, c_mda) = runs["msd"], runs["mdanalysis_msd"]
    (_, t_tidy_msd, c_tidy_msd), (ours_vacf, t_vacf, c_vacf) = runs["tidynamics_msd"], runs["vacf"]
    tidy_acf, t_tidy_acf, c_tidy_acf = runs["tidynamics_acf"]
    ref = mda_run.results.msds_by_particle.T
    rel_msd = float(np.max(np.abs(ours_msd.values[:, 1:] - ref[:, 1:]) / ref[:, 1:]))
    # who is closer to the truth: direct all-origins sums in float64, every atom, lags 1..4
    direct = np.stack([((r[m:].astype(np.float64) - r[:-m]) ** 2).sum(-1).mean(0) for m in range(1, 5)], 1)
    rel_ours = float(np.max(np.abs(ours_msd.values[:, 1:5] - direct) / direct))
    rel_mda = float(np.max(np.abs(ref[:, 1:5] - direct) / direct))
    rel_vacf = float(np.max(np.abs(ours_vacf.values - tidy_acf)) / np.max(np.abs(tidy_acf)))
    del mda_run, ref, tidy_acf, u, runs
    results["in_memory"] = {
        "repeats": k, "msd_cpu_s": c_msd, "vacf_cpu_s": c_vacf, "mdanalysis_msd_cpu_s": c_mda,
        "tidynamics_msd_cpu_s": c_tidy_msd, "tidynamics_acf_cpu_s": c_tidy_acf,
        "msd_vs_mdanalysis_cpu": c_mda / c_msd, "vacf_vs_tidynamics_cpu": c_tidy_acf / c_vacf,
        "msd_s": t_msd, "vacf_s": t_vacf, "mdanalysis_msd_s": t_mda, "tidynamics_msd_s": t_tidy_msd,
        "tidynamics_acf_s": t_tidy_acf, "msd_vs_mdanalysis": t_mda / t_msd, "msd_vs_tidynamics": t_tidy_msd / t_msd,
        "vacf_vs_tidynamics": t_tidy_acf / t_vacf, "msd_atom_frames_per_s": N * T / t_msd,
        "vacf_atom_frames_per_s": N * T / t_vacf, "max_rel_diff_msd_vs_mdanalysis": rel_msd,
        "max_rel_diff_vacf_vs_tidynamics": rel_vacf,
        "max_rel_err_short_lags_ours": rel_ours, "max_rel_err_short_lags_mdanalysis": rel_mda,
    }
    del r, v, ds, ours_msd, ours_vacf

    # ---- the stored run loaded into memory: exactly the data the store path reads (wrapped, so both unwrap)
    from agi_data import open_store

    results["loaded"] = time_loaded(open_store(work / "short").trajectory("ou"), k)
    results["read"] = read_cost(work / "short", k)

    # ---- FFT rate of this machine, and the fraction reached (4 transforms of the padded length per atom)
    rate = fft_rate(T)
    need = 4 * N / rate["transforms_per_s"]
    results["fft"] = {**rate, "fraction_msd": need / t_msd, "fraction_vacf": need / t_vacf}

    # ---- out of core from the store, fresh processes
    print("[3] out of core from the store (wrapped positions: the MSD unwraps), fresh processes")
    store_short = work / "short"
    results["store"] = {f"{w}_{'per_atom' if pa else 'mean'}": run_child(store_short, w, pa, k)
                        for w in ("msd", "vacf") for pa in (True, False)}
    for val in results["store"].values():
        val["atom_frames_per_s"] = N * T / val["seconds"]
    st = results["store"]
    ld = results["loaded"]
    # the headline: a fresh process, its first call (open_store → trajectory → ds.agi.msd), as a user runs it
    st["msd_per_atom_vs_mdanalysis"] = t_mda / st["msd_per_atom"]["first_seconds"]
    st["msd_per_atom_vs_mdanalysis_best"] = t_mda / st["msd_per_atom"]["seconds"]
    st["msd_per_atom_fresh_over_in_memory"] = st["msd_per_atom"]["first_seconds"] / ld["msd_memory_s"]
    st["vacf_per_atom_fresh_over_in_memory"] = st["vacf_per_atom"]["first_seconds"] / ld["vacf_memory_s"]
    st["msd_per_atom_over_in_memory"] = ld["msd_store_s"] / ld["msd_memory_s"]
    st["vacf_per_atom_over_in_memory"] = ld["vacf_store_s"] / ld["vacf_memory_s"]
    st["msd_store_vs_mdanalysis_interleaved"] = t_mda / ld["msd_store_s"]

    if args.long:
        print(f"[4] {args.long}× longer: {N} atoms × {args.long * T} frames → {work / 'long'}")
        write_trajectory(work / "long", N, args.long * T, keep=False, seed=1, **layout)
        results["long"] = {"frames": args.long * T,
                           **{f"{w}_mean": run_child(work / "long", w, False) for w in ("msd", "vacf")}}
    results["load_avg_end"] = os.getloadavg()
    report(results)
    out = ROOT / "benchmarks" / "_out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "transport.json").write_text(json.dumps(results, indent=2))
    print(f"written {out / 'transport.json'}")


def report(res: dict) -> None:
    m, f = res["in_memory"], res["fft"]
    print(f"\n== {res['atoms']} atoms × {res['frames']} frames, store chunks {res['layout']}, {res['cpu_count']} cores, "
          f"load average {res['load_avg_start'][0]:.1f} → {res['load_avg_end'][0]:.1f}")
    print(f"in memory   msd  per atom {m['msd_s']:7.2f} s  {m['msd_atom_frames_per_s']:.3g} atom-frames/s   "
          f"MDAnalysis {m['mdanalysis_msd_s']:7.2f} s  → {m['msd_vs_mdanalysis']:.1f}×   "
          f"tidynamics loop {m['tidynamics_msd_s']:7.2f} s → {m['msd_vs_tidynamics']:.1f}×")
    print(f"in memory   vacf per atom {m['vacf_s']:7.2f} s  {m['vacf_atom_frames_per_s']:.3g} atom-frames/s   "
          f"tidynamics loop {m['tidynamics_acf_s']:7.2f} s → {m['vacf_vs_tidynamics']:.1f}×")
    print(f"CPU time    (all threads, best of {m['repeats']}) msd {m['msd_cpu_s']:.2f} s vs MDAnalysis "
          f"{m['mdanalysis_msd_cpu_s']:.2f} s → {m['msd_vs_mdanalysis_cpu']:.1f}×; vacf {m['vacf_cpu_s']:.2f} s vs "
          f"tidynamics {m['tidynamics_acf_cpu_s']:.2f} s → {m['vacf_vs_tidynamics_cpu']:.1f}×")
    print(f"agreement   msd vs MDAnalysis max rel {m['max_rel_diff_msd_vs_mdanalysis']:.1e}; "
          f"vacf vs tidynamics max rel {m['max_rel_diff_vacf_vs_tidynamics']:.1e}")
    print(f"vs direct   float64 sums over origins, lags 1-4, every atom: ours max rel {m['max_rel_err_short_lags_ours']:.1e}, "
          f"MDAnalysis {m['max_rel_err_short_lags_mdanalysis']:.1e}")
    print(f"FFT rate    {f['transforms_per_s']:.0f} real FFTs/s of length {f['n_fft']} on {f['workers']} cores; "
          f"msd reaches {100 * f['fraction_msd']:.0f} %, vacf {100 * f['fraction_vacf']:.0f} %")
    for key, val in res["store"].items():
        if isinstance(val, dict):
            print(f"store       {key:15s} first call {val['first_seconds']:6.2f} s, best {val['seconds']:6.2f} s  "
                  f"CPU {val['first_cpu_s']:.2f} s / {val['cpu_s']:.2f} s  "
                  f"{val['atom_frames_per_s']:.3g} atom-frames/s  (before it: imports {val['import_s']:.1f} s, "
                  f"open {val['open_s']:.2f} s)  "
                  f"peak RSS {val['peak_rss_mib']:.0f} MiB (at start {val['base_rss_mib']:.0f}, "
                  f"result {val['result_mib']:.0f})")
    ld, st = res["loaded"], res["store"]
    print(f"same run    from the store vs loaded into memory (wrapped: both unwrap), interleaved in one process, "
          f"best of {m['repeats']}: msd per atom {ld['msd_store_s']:.2f} s vs {ld['msd_memory_s']:.2f} s, "
          f"vacf per atom {ld['vacf_store_s']:.2f} s vs {ld['vacf_memory_s']:.2f} s; CPU (all threads): msd "
          f"{ld['msd_store_cpu_s']:.2f} s vs {ld['msd_memory_cpu_s']:.2f} s "
          f"({ld['msd_store_cpu_s'] / ld['msd_memory_cpu_s']:.2f}×), vacf {ld['vacf_store_cpu_s']:.2f} s vs "
          f"{ld['vacf_memory_cpu_s']:.2f} s ({ld['vacf_store_cpu_s'] / ld['vacf_memory_cpu_s']:.2f}×)")
    for name, val in res.get("read", {}).items():
        print(f"read alone  {name:10s} {val['mb']:.0f} MB in blocks of {val['block_atoms']} atoms: "
              f"{val['seconds']:.2f} s, CPU {val['cpu_s']:.2f} s (all threads)")
    print(f"store       store / in memory, interleaved in one process: msd {st['msd_per_atom_over_in_memory']:.2f}×, "
          f"vacf {st['vacf_per_atom_over_in_memory']:.2f}×; first call of a fresh process / in memory: msd "
          f"{st['msd_per_atom_fresh_over_in_memory']:.2f}×, vacf {st['vacf_per_atom_fresh_over_in_memory']:.2f}× "
          f"(warm page cache: the run was just written)")
    print(f"store       msd per atom from the store vs MDAnalysis EinsteinMSD(fft=True) in memory: fresh process, "
          f"first call {st['msd_per_atom_vs_mdanalysis']:.1f}×, best of {m['repeats']} "
          f"{st['msd_per_atom_vs_mdanalysis_best']:.1f}×; interleaved {st['msd_store_vs_mdanalysis_interleaved']:.1f}×")
    if "long" in res:
        for key in ("msd_mean", "vacf_mean"):
            val = res["long"][key]
            print(f"long ×{res['long']['frames'] // res['frames']:<3d}   {key:15s} {val['first_seconds']:7.2f} s  "
                  f"peak RSS {val['peak_rss_mib']:.0f} MiB (at start {val['base_rss_mib']:.0f})")


if __name__ == "__main__":
    main()
