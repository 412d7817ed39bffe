"""Chunk codec of the store: decode speed and size on typical position chunks, every candidate checksummed.

The analyses read whole atom blocks over the whole time axis, so decoding
is on the read path of every analysis from the store. This writes the same
float32 positions (a random walk of ``--atoms`` atoms in a 20 Å box, 1
frame = 0.01 Å rms steps, wrapped into the box like an MD dump: what MD
writes) into in-memory Zarr v3 arrays chunked like the store (128 frames ×
128 atoms × 3), with each candidate compressor followed by the ``crc32c``
checksum codec, and reads them back whole (warm, ``--repeat`` times, the
best time kept). Zarr's own default (Zstd level 0, no shuffle) is the
established baseline; the ratio column is decode speed against it.

    python benchmarks/store_codec.py [--atoms 1000] [--frames 2048] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numcodecs
import numpy as np
import zarr
from zarr.codecs import BloscCodec, Crc32cCodec, ZstdCodec
from zarr.storage import MemoryStore

#: the same compressors through numcodecs, for the codec-only column (no Zarr pipeline around it)
RAW = {
    "zstd-0 (zarr default)": numcodecs.Zstd(level=0),
    "blosc-lz4 shuffle": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE),
    "blosc-lz4 bitshuffle": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE),
    "blosc-zstd-1 shuffle": numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE),
    "blosc-zstd-3 shuffle": numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.SHUFFLE),
    "none": None,
}

CANDIDATES = {
    "zstd-0 (zarr default)": [ZstdCodec(level=0)],
    "blosc-lz4 shuffle": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
    "blosc-lz4 bitshuffle": [BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle")],
    "blosc-zstd-1 shuffle": [BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")],
    "blosc-zstd-3 shuffle": [BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")],
    "none": [],
}


def positions(n_atoms: int, n_frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=0.01 / np.sqrt(3), size=(n_frames, n_atoms, 3))
    start = rng.uniform(0, 20, size=(1, n_atoms, 3))
    return np.mod(start + np.cumsum(steps, axis=0), 20.0).astype(np.float32)


def build(data: np.ndarray, compressors: list) -> tuple[zarr.Array, float, float]:
    """An in-memory array holding ``data``: (array, encode s, compressed bytes / raw bytes)."""
    store = MemoryStore()
    arr = zarr.create_array(store, shape=data.shape, dtype=data.dtype, chunks=(128, 128, 3),
                            compressors=[*compressors, Crc32cCodec()], fill_value=0)
    t0 = time.perf_counter()
    arr[:] = data
    encode = time.perf_counter() - t0
    stored = sum(len(v.to_bytes()) for k, v in store._store_dict.items() if "/c/" in k or k.startswith("c/"))
    return arr, encode, stored / data.nbytes


def codec_only(data: np.ndarray, codec, repeat: int) -> float:
    """Best time to decode every 128×128×3 chunk of ``data`` with the bare codec (+ crc32c check), s."""
    import google_crc32c

    chunks = [np.ascontiguousarray(data[t:t + 128, a:a + 128]).tobytes()
              for t in range(0, data.shape[0], 128) for a in range(0, data.shape[1], 128)]
    encoded = [codec.encode(c) if codec else c for c in chunks]
    sums = [google_crc32c.value(e) for e in encoded]
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        for e, crc in zip(encoded, sums):
            assert google_crc32c.value(e) == crc
            codec.decode(e) if codec else bytes(e)
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--atoms", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    data = positions(args.atoms, args.frames)
    mb = data.nbytes / 1e6
    built = {name: build(data, comp) for name, comp in CANDIDATES.items()}
    best = dict.fromkeys(CANDIDATES, np.inf)
    for _ in range(args.repeat):  # rounds over all candidates: load changes hit every one alike
        for name, (arr, _, _) in built.items():
            t0 = time.perf_counter()
            back = arr[:]
            best[name] = min(best[name], time.perf_counter() - t0)
            assert np.array_equal(back, data)
    print(f"positions float32 {data.shape}, {mb:.0f} MB, chunks 128×128×3, + crc32c; "
          f"best of {args.repeat} warm reads; load {os.getloadavg()[0]:.2f}")
    raw = {name: codec_only(data, codec, args.repeat) for name, codec in RAW.items()}
    print(f"{'codec':<24} {'size':>6} {'encode MB/s':>11} {'decode MB/s':>11} {'vs zarr default':>15} "
          f"{'codec-only MB/s':>15} {'vs zstd-0':>9}")
    base, raw_base = best["zstd-0 (zarr default)"], raw["zstd-0 (zarr default)"]
    for name, (_, enc, ratio) in built.items():
        print(f"{name:<24} {ratio:>6.2f} {mb / enc:>11.0f} {mb / best[name]:>11.0f} {base / best[name]:>14.2f}× "
              f"{mb / raw[name]:>15.0f} {raw_base / raw[name]:>8.2f}×")


if __name__ == "__main__":
    main()
