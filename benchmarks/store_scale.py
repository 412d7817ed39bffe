"""The store at scale: a local directory against S3 on loopback (moto's server), and the MSD threaded vs on workers.

One random-walk run of ``--atoms`` atoms × ``--frames`` frames (positions,
float32, Å) is written to each backend and read back:

1. append throughput (frames/s, MB/s) in batches of ``--batch`` frames, local vs S3;
2. atom-block read throughput: the whole time axis of one block of
   ``chunk_atoms`` atoms at a time — what the MSD reads — from each backend;
3. the MSD of all atoms from each backend with the threaded scheduler (in a
   fresh process, so that its peak RSS is the analysis's alone: moto keeps
   the S3 objects in this process) and on a ``LocalCluster`` of 1 and of 2
   worker processes (one thread each): wall time, throughput (frames/s and
   MB/s of positions read) and peak RSS per process. Each worker has a
   memory limit (``--worker-memory``, the stated budget); the analyses
   gather one atom block's time axis at a time (``agi.block_bytes``, 64 MiB
   of float64 by default), so the peak RSS is set by the block, not by the
   number of frames.

moto keeps every object in the memory of this process and serves it from a
Python thread over loopback: it is **not** S3, and these numbers bound only
the store's own overhead. Size ``--frames`` so that the run (4·3·atoms·frames
bytes, twice) fits this machine's memory.

    .venv/bin/python benchmarks/store_scale.py [--atoms 1000] [--frames 200000] [--batch 1024]
    .venv/bin/python benchmarks/store_scale.py --atoms 108 --frames 200000 --batch 4096   # the README row
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from agi_data.store import open_store


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_s3() -> tuple[object, str]:
    """moto's S3 server on loopback with one bucket; returns (server, store URL)."""
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    for var, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_ENDPOINT_URL_S3", endpoint)):
        os.environ[var] = value  # the Dask workers inherit them
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="agi-bench")
    return server, "s3://agi-bench/store"


def write_run(where, n_atoms: int, n_frames: int, batch: int, chunk_frames: int) -> float:
    """Append a random walk (0.05 Å steps) in batches; returns the wall time of the appends."""
    rng = np.random.default_rng(0)
    store = open_store(where)
    last = rng.uniform(0, 30, size=(n_atoms, 3))
    elapsed = 0.0
    with store.create_run("scale", ["Ag"] * n_atoms, np.eye(3) * 30.0, 0.01, chunk_frames=chunk_frames) as w:
        for start in range(0, n_frames, batch):
            n = min(batch, n_frames - start)
            block = (last + np.cumsum(rng.normal(scale=0.05, size=(n, n_atoms, 3)), axis=0)).astype(np.float32)
            last = block[-1].astype(np.float64)
            t0 = time.perf_counter()
            w.append(block)
            elapsed += time.perf_counter() - t0
    return elapsed


def read_blocks(where) -> tuple[float, int]:
    """Read every atom block's whole time axis; returns (seconds, bytes)."""
    ds = open_store(where).trajectory("scale")
    block = ds.positions.data.chunksize[1]
    t0 = time.perf_counter()
    nbytes = 0
    for a in range(0, ds.sizes["atom"], block):
        nbytes += ds.positions.isel(atom=slice(a, a + block)).values.nbytes
    return time.perf_counter() - t0, nbytes


def _peak_rss_mb() -> float:
    """This process's peak RSS (``VmHWM``), MB.

    Not ``getrusage``'s ``ru_maxrss``: Linux carries it across fork and exec,
    so a spawned worker would report its parent's peak (here: moto's objects).
    """
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def _threaded_msd(where, env: dict, queue) -> None:
    """In a fresh process: the MSD with the threaded scheduler; puts (wall s, peak RSS MB, msd) on ``queue``."""
    os.environ.update(env)
    from agi_data.analysis.transport import msd

    ds = open_store(where).trajectory("scale")
    t0 = time.perf_counter()
    result = msd(ds).compute(scheduler="threads")
    queue.put((time.perf_counter() - t0, _peak_rss_mb(), result.values))


def msd_threaded(where) -> tuple[float, list[float], np.ndarray]:
    """The MSD of all atoms with the threaded scheduler in a fresh process: (wall s, [peak RSS MB], msd)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    proc = ctx.Process(target=_threaded_msd, args=(str(where), env, queue))
    proc.start()
    wall, rss, values = queue.get()
    proc.join()
    return wall, [rss], values


def msd_on_workers(where, n_workers: int, memory: str) -> tuple[float, list[float], np.ndarray]:
    """The MSD of all atoms on a LocalCluster of worker processes: (wall s, peak RSS MB per worker, msd)."""
    from distributed import Client, LocalCluster

    from agi_data.analysis.transport import msd

    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, memory_limit=memory,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: __import__("agi_data.analysis.transport"))  # imports are not part of the timing
        ds = open_store(where).trajectory("scale")
        t0 = time.perf_counter()
        result = msd(ds).compute()
        wall = time.perf_counter() - t0
        rss = sorted(client.run(_peak_rss_mb).values())
    return wall, rss, result.values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--chunk-frames", type=int, default=1024)
    ap.add_argument("--worker-memory", default="2GiB", help="memory limit of each Dask worker (the budget)")
    args = ap.parse_args()
    mb = 4 * 3 * args.atoms * args.frames / 1e6
    print(f"run: {args.atoms} atoms × {args.frames} frames, positions float32 = {mb:.0f} MB; "
          f"batches of {args.batch}, chunks {args.chunk_frames} × 128; load {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    server, url = start_s3()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            where = {"local": Path(tmp) / "store", "s3 (moto, loopback)": url}
            results = {}
            for name, loc in where.items():
                t = write_run(loc, args.atoms, args.frames, args.batch, args.chunk_frames)
                r, nbytes = read_blocks(loc)
                results[name] = (t, r)
                print(f"{name:>20}: append {args.frames / t:8.0f} frames/s {mb / t:7.1f} MB/s | "
                      f"atom-block read {nbytes / 1e6 / r:7.1f} MB/s ({r:.2f} s)")
            (tl, rl), (ts, rs) = results.values()
            print(f"{'S3 / local':>20}: append time × {ts / tl:.2f}, read time × {rs / rl:.2f}")
            print(f"MSD of all {args.atoms} atoms × {args.frames} frames ({mb:.0f} MB of positions read):")
            for name, loc in where.items():
                reference = None
                for label, run, extra in (("threaded, 1 process", msd_threaded, ()),
                                          ("1 worker process", msd_on_workers, (1, args.worker_memory)),
                                          ("2 worker processes", msd_on_workers, (2, args.worker_memory))):
                    wall, rss, values = run(loc, *extra)
                    if reference is None:
                        reference = values
                    same = np.allclose(values, reference, rtol=1e-12, atol=0)
                    print(f"{name:>20}: {label:>19}: {wall:6.2f} s, {args.frames / wall:9.0f} frames/s, "
                          f"{mb / wall:7.1f} MB/s; peak RSS {', '.join(f'{x:.0f}' for x in rss)} MB "
                          f"(worker budget {args.worker_memory}); equal to threaded (1e-12): {same}")
    finally:
        server.stop()
    print(f"load at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
