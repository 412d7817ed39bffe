r"""FFT time-correlation machinery shared by every analysis.

One implementation serves MSD, VACF, force correlations, rotor and dipole
correlations and the GLE kernels.

For series :math:`a(t), b(t)` on a uniform grid of :math:`T` frames the
all-origins, unbiased cross-correlation is

.. math:: C_{ab}(m) = \frac{1}{T-m}\sum_{t_0=0}^{T-m-1} a(t_0)\cdot b(t_0+m),

computed with real FFTs zero-padded to an even fast length ≥ 2T (no circular
wrap-around), with the product summed over the component axis (xyz) before
the inverse transform, so one inverse serves the three components (for an
autocorrelation, whose power spectrum is real and even, a type-I DCT).
The passes around the transforms (cast and transpose into the FFT buffer,
unwrap, centring, power sum, S1 − 2 S2) are compiled
(:mod:`agi_data.analysis._series`).
Cost O(T log T) per series instead of the O(T²) of a double loop over
origins. Accumulation is in float64 whatever the input dtype.

The numpy kernels act on the last axes; :func:`correlate` wraps them once
with :func:`xarray.apply_ufunc` so that they run blockwise over any other
dimension (atoms, ions) with Dask, the whole time axis in each block.
"""

from __future__ import annotations

import collections
import contextlib
import os
import queue
import sys
import threading
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array
import numpy as np
import xarray as xr
from dask.array.core import unpack_singleton
from scipy.fft import dct, irfft, next_fast_len, rfft

from . import _series

__all__ = ["correlate", "correlate_numpy", "msd_fca_numpy", "lag_coordinate", "fft_length",
           "block_size", "chunk_for_correlation", "run_blocked", "stored_blocked", "stored_block_atoms"]

#: Dask config key: bytes of float64 working memory one block of series may use
#: (``dask.config.set({"agi.block_bytes": 256e6})``). Each Dask task holds one
#: block; the threaded scheduler runs one per core.
BLOCK_BYTES_KEY = "agi.block_bytes"
DEFAULT_BLOCK_BYTES = 64 * 2**20

#: the numpy kernels transform at most this many bytes of spectrum at once: the
#: group's buffers (kept per thread, :func:`_workspace`) and pocketfft's output
#: stay small and are reused instead of being page-faulted in afresh
#: (measured: 3-5x on the FFT step for 1000 x 20000 frames).
_GROUP_BYTES = 8 * 2**20

#: the stored-run path hands the kernels slices of atoms whose float64 result is at most this big
_RESULT_BYTES = 8 * 2**20


#: ``encoding`` key under which the store leaves a reader of an untouched stored array
STORE_SOURCE_KEY = "agi_store_source"

def fft_length(n_frames: int) -> int:
    """The FFT length used for ``n_frames``: an even fast length ≥ 2·n_frames (no wrap-around).

    Even, so that the inverse of a power spectrum is a type-I DCT
    (:func:`_even_inverse`). Among the 5-smooth half-lengths up to 6 %
    longer than the shortest one, the one with the most factors of two
    (pocketFFT's fastest radix) is taken.
    """
    base = next_fast_len(max(1, int(n_frames)), real=True)
    best, best_twos = base, (base & -base).bit_length()
    m = base
    while m <= base * 1.06:
        m = next_fast_len(m + 1, real=True)
        twos = (m & -m).bit_length()
        if m <= base * 1.06 and twos > best_twos + 2:
            best, best_twos = m, twos
    return 2 * best


def _series_groups(n_series: int, n_fft: int, k: int):
    """Slices of at most _GROUP_BYTES of complex spectrum over a flat series axis."""
    per = max(1, _GROUP_BYTES // max(1, (n_fft // 2 + 1) * 16 * k))
    for i in range(0, n_series, per):
        yield slice(i, min(i + per, n_series))


_LOCAL = threading.local()


def _workspace(width: int, k: int, n: int, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's FFT buffer ``(width, k, n)`` (zero from ``n_frames`` on), power ``(width, n/2+1)`` and r² ``(width, T)``.

    Kept per thread and reused by every call with the same shape: a fresh
    8 MiB buffer per call is page-faulted (and zeroed by the kernel) anew
    each time. Only the threads of the pools :func:`run_blocked` and
    :func:`stored_blocked` create keep them (those pools last one analysis
    call, and the buffers go with their threads); anywhere else (the
    caller's thread, Dask's long-lived workers) :func:`_release_workspace`
    drops them at the end of each kernel call, so no thread holds them
    after an analysis.
    """
    key = (width, k, n)
    ws = getattr(_LOCAL, "ws", None)
    if ws is None or ws["key"] != key:
        _LOCAL.ws = None  # the old buffers are freed before the new ones are taken
        ws = _LOCAL.ws = {"key": key, "buf": np.zeros((width, k, n)), "power": np.empty((width, n // 2 + 1)),
                          "csum": np.empty((width, n // 2 + 1)), "written": 0}
    if ws["written"] > n_frames:  # the kernels write [:n_frames] only: what an earlier, longer call left is cleared
        ws["buf"][..., n_frames:ws["written"]] = 0.0
    ws["written"] = n_frames
    return ws["buf"], ws["power"], ws["csum"][:, :n_frames]


def _keep_workspace() -> None:
    """Initializer of the analysis pools' threads: keep :func:`_workspace` between kernel calls."""
    _LOCAL.keep = True


def _release_workspace() -> None:
    """End of a kernel call: drop this thread's :func:`_workspace` unless an analysis pool keeps it."""
    if not getattr(_LOCAL, "keep", False):
        _LOCAL.ws = None


def _even_inverse(power: np.ndarray, n: int) -> np.ndarray:
    """``n · irfft(power, n)[..., :n//2 + 1]`` of a real spectrum (overwritten), as a DCT-I.

    A power spectrum is real and even, so its inverse transform is a cosine
    series: the type-I DCT of its ``n/2 + 1`` values (n even) equals ``n``
    times the inverse real FFT at lags 0..n/2, without the complex
    round trip (measured: ~30 % less time than ``irfft`` at n = 40 960).
    """
    return dct(power, type=1, axis=-1, overwrite_x=True)


def correlate_numpy(a: np.ndarray, b: np.ndarray | None = None, n_lags: int | None = None,
                    *, components: bool = True) -> np.ndarray:
    """All-origins correlation ⟨a(t0)·b(t0+m)⟩ along the time axis.

    Parameters
    ----------
    a, b
        Arrays shaped ``(..., T, k)`` when ``components`` (the k components
        are dotted, e.g. xyz) or ``(..., T)`` otherwise. ``b=None`` gives the
        autocorrelation.
    n_lags
        Number of lags m = 0..n_lags-1 to return (default T).

    Returns
    -------
    ndarray ``(..., n_lags)`` in float64, normalised by the number of origins
    T − m (unbiased).
    """
    a = np.asarray(a)
    if not components:
        a = a[..., None]
    T, k = a.shape[-2], a.shape[-1]
    n_lags = T if n_lags is None else int(n_lags)
    if not 1 <= n_lags <= T:
        raise ValueError(f"n_lags must be in 1..{T}, got {n_lags}")
    if b is not None:
        b = np.asarray(b)
        if not components:
            b = b[..., None]
        a, b = np.broadcast_arrays(a, b)
    lead = a.shape[:-2]
    n = fft_length(T)
    # (series, T, k) views; each group is copied once into a zero-padded, time-contiguous float64
    # buffer (cast, transpose and padding in one compiled pass, _series.gather)
    a2 = _as_source(a.reshape((-1, T, k)))
    b2 = None if b is None else _as_source(b.reshape((-1, T, k)))
    out = np.empty((a2.shape[0], n_lags))
    norm = 1.0 / (T - np.arange(n_lags))
    groups = list(_series_groups(a2.shape[0], n, k))
    width = groups[0].stop - groups[0].start if groups else 0
    buf_a, power, _ = _workspace(width, k, n, T)
    buf_b = None if b2 is None else np.zeros((width, k, n))
    for g in groups:
        m = g.stop - g.start
        _series.gather(a2[g], buf_a)
        fa = rfft(buf_a[:m], axis=-1)
        if b2 is None:
            _series.power_sum(fa, power)
            out[g] = _even_inverse(power[:m], n)[:, :n_lags] * (norm / n)
        else:
            _series.gather(b2[g], buf_b)
            fb = rfft(buf_b[:m], axis=-1)
            out[g] = irfft((np.conj(fa) * fb).sum(axis=-2), n=n, axis=-1)[..., :n_lags] * norm
    _release_workspace()
    return out.reshape(lead + (n_lags,))


def _as_source(x: np.ndarray) -> np.ndarray:
    """``x`` as the compiled passes read it: floating point (integers are cast once), any strides."""
    return x if x.dtype.kind == "f" else x.astype(np.float64)


def msd_fca_numpy(r: np.ndarray, n_lags: int | None = None, cell: np.ndarray | None = None) -> np.ndarray:
    """Mean-squared displacement over all origins by the fast correlation algorithm.

    MSD(m) = S1(m) − 2 S2(m), with S2 the position autocorrelation (FFT) and
    S1(m) = (1/(T−m)) Σ_{t=0}^{T−m−1} [r²(t) + r²(t+m)] from cumulative sums
    (Calandrini et al., Collection SFN 12, 201 (2011); the algorithm of
    MDAnalysis ``EinsteinMSD(fft=True)`` and tidynamics ``msd``).

    ``r``: ``(..., T, 3)`` positions in any float dtype; returns ``(..., n_lags)``
    float64. ``cell``: ``None`` when ``r`` is unwrapped, else the cell
    ``(3, 3)`` or ``(T, 3, 3)`` (Å, rows are lattice vectors) of wrapped
    positions, which are unwrapped (the TOR sum of minimum-image steps of
    :func:`agi_data.pbc.unwrap`) as they are copied into the FFT buffer:
    the cast, the transpose to time-contiguous series, the unwrap, the
    centring and the cumulative r²(t) are two compiled passes over one
    float64 buffer of bounded size, S1 − 2 S2 and the normalisation one
    more (:mod:`agi_data.analysis._series`; no unwrapped copy of the input).
    """
    r = np.asarray(r)
    T = r.shape[-2]
    n_lags = T if n_lags is None else int(n_lags)
    if not 1 <= n_lags <= T:
        raise ValueError(f"n_lags must be in 1..{T}, got {n_lags}")
    if cell is not None:
        cells = np.asarray(cell, dtype=np.float64).reshape((-1, 3, 3))
        if cells.shape[0] > 1 and np.all(cells == cells[:1]):  # a constant cell: one check per call, not per group
            cells = cells[:1]
        if cells.shape[0] not in (1, T):
            raise ValueError(f"cell must be (3, 3) or ({T}, 3, 3), got {np.shape(cell)}")
        invs = np.linalg.inv(cells)
        ortho = not np.any(cells[:, ~np.eye(3, dtype=bool)])
    lead = r.shape[:-2]
    n = fft_length(T)
    r2 = _as_source(r.reshape((-1, T, r.shape[-1])))  # (series, T, 3) view
    out = np.empty((r2.shape[0], n_lags))
    groups = list(_series_groups(r2.shape[0], n, r2.shape[-1]))
    width = groups[0].stop - groups[0].start if groups else 0
    buf, power, csum = _workspace(width, r2.shape[-1], n, T)
    for g in groups:
        m = g.stop - g.start
        if cell is not None:
            _series.gather_unwrap(r2[g], cells, invs, ortho, buf)
        else:
            _series.gather(r2[g], buf)
        # MSD is invariant under a constant shift; centring each series makes the two FCA terms,
        # which nearly cancel, as small as they can be
        _series.centre_cumsum(buf[:m], T, csum)
        _series.power_sum(rfft(buf[:m], axis=-1), power)
        # S2 = irfft(power)/n; MSD = (S1 − 2 S2)/(T − m), MSD(0) = 0 exactly
        _series.fca_finish(csum[:m], _even_inverse(power[:m], n), 2.0 / n, out[g])
    _release_workspace()
    return out.reshape(lead + (n_lags,))


def lag_coordinate(n_lags: int, dt_ps: float) -> xr.DataArray:
    """The ``lag`` coordinate in ps."""
    return xr.DataArray(np.arange(n_lags) * dt_ps, dims="lag", attrs={"units": "ps", "long_name": "lag time"})


def correlate(a: xr.DataArray, b: xr.DataArray | None = None, *, n_lags: int | None = None,
              time_dim: str = "time", component_dim: str | None = "xyz",
              kernel: str = "correlate") -> xr.DataArray:
    """Apply an FFT correlation kernel along ``time_dim`` of labelled data.

    Every dimension other than ``time_dim`` and ``component_dim`` is kept
    (atoms, ions…) and processed blockwise: with Dask-backed input the time
    axis is gathered into one chunk per block, so memory is bounded by the
    block, not by the whole array. The result has a ``lag`` dimension
    (integer lags; the caller attaches the ps coordinate and units).

    ``kernel``: ``"correlate"`` (⟨a(0)·b(t)⟩) or ``"msd"`` (FCA MSD of ``a``).
    """
    T = a.sizes[time_dim]
    n_lags = T if n_lags is None else int(n_lags)
    core = [time_dim] + ([component_dim] if component_dim else [])
    args = [a] if b is None else [a, b]
    lazy = any(x.chunks is not None for x in args)
    if lazy:
        args = [chunk_for_correlation(x, time_dim, component_dim) for x in args]
    if kernel == "msd":
        if b is not None or component_dim is None:
            raise ValueError("the msd kernel takes one vector series")
        func = lambda x: msd_fca_numpy(x, n_lags)
    elif kernel == "correlate":
        comps = component_dim is not None
        if b is None:
            func = lambda x: correlate_numpy(x, None, n_lags, components=comps)
        else:
            func = lambda x, y: correlate_numpy(x, y, n_lags, components=comps)
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    if not lazy:  # in memory: blocks of series on a thread pool, no Dask graph
        block = block_size(T, a.sizes[component_dim] if component_dim else 1)
        plain = func
        func = lambda *xs: run_blocked(plain, list(xs), n_core=[len(core)] * len(xs),
                                       n_out=n_lags, block=block)
    return xr.apply_ufunc(
        func, *args,
        input_core_dims=[core] * len(args),
        output_core_dims=[["lag"]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lag": n_lags}},
    )


def _n_threads() -> int:
    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def run_blocked(func, split: list[np.ndarray], whole: tuple = (), *, n_core: list[int], n_out: int,
                block: int, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
    """Apply ``func(*blocks, *whole) -> (b, n_out)`` over blocks of the flattened leading axes, in threads.

    The in-memory counterpart of the Dask path: ``split`` arrays share their
    leading (series) shape and are cut into blocks of ``block`` series; the
    ``whole`` arguments go to every call. Results land in one preallocated
    array (no concatenation). The pool has ``dask.config.get("num_workers")``
    or one thread per core (``pool``: run on this executor instead, e.g.
    one kept over many calls); the kernels release the GIL in their FFTs.
    """
    lead = np.broadcast_shapes(*[x.shape[:x.ndim - nc] for x, nc in zip(split, n_core)])
    split = [np.broadcast_to(x, lead + x.shape[x.ndim - nc:]) for x, nc in zip(split, n_core)]
    flat = [x.reshape((-1,) + x.shape[x.ndim - nc:]) for x, nc in zip(split, n_core)]
    n = flat[0].shape[0]
    out = np.empty((n, n_out))
    slices = [slice(i, min(n, i + block)) for i in range(0, n, max(1, block))]

    def work(sl):
        out[sl] = func(*[x[sl] for x in flat], *whole)

    threads = min(len(slices), _n_threads())
    with _progress(len(slices), "correlating blocks of series") as advance:
        if pool is not None:
            for _ in pool.map(work, slices):
                advance()
        elif threads <= 1:
            for sl in slices:
                work(sl)
                advance()
        else:
            with ThreadPoolExecutor(threads, initializer=_keep_workspace) as pool:
                for _ in pool.map(work, slices):
                    advance()
    return out.reshape(lead + (n_out,))


def _task_groups(atoms: np.ndarray, da: xr.DataArray) -> list[np.ndarray]:
    """The atoms of a stored array split into one group per Dask task.

    In this process (threads) one task reads every block: its thread pool already uses every
    core, and one pass keeps the float64 sum of ``mean`` in a fixed order. Under a
    ``dask.distributed`` Client (the one ``.compute()`` would use when the graph is built)
    the atoms are split over the cluster's worker threads, at boundaries of the stored
    atom chunks (no chunk is decoded by two tasks), so every worker reads and correlates
    its own share; results are the same to rounding (the mean sums the groups' sums).
    """
    from ._common import distributed_client

    client = distributed_client()
    if client is None:
        return [atoms]
    n_tasks = max(1, sum(client.nthreads().values()))
    chunk = int(da.chunks[da.get_axis_num("atom")][0])
    edges = np.unique(np.concatenate([[0], np.flatnonzero(np.diff(atoms // chunk)) + 1, [len(atoms)]]))
    # whole chunks per group, as evenly as the chunks allow
    cuts = edges[np.unique(np.round(np.linspace(0, len(edges) - 1, min(n_tasks, len(edges) - 1) + 1)).astype(int))]
    return [atoms[lo:hi] for lo, hi in zip(cuts[:-1], cuts[1:]) if hi > lo]


def stored_blocked(da: xr.DataArray, atoms: np.ndarray, func, whole: tuple = (), *,
                   n_out: int, mean: bool = False) -> xr.DataArray | None:
    """``func`` over the atoms of a stored array, read in chunk-aligned atom blocks; ``None`` if ``da`` is not one.

    When ``da`` is a per-atom array exactly as :meth:`agi_data.store.Store.trajectory`
    opened it (the store's reader in ``encoding["agi_store_source"]`` says so), the values are
    read with that reader's ``blocks`` (the store's ``atom_blocks``): the
    chunks of a block of atoms over the whole time axis, fetched in batches
    and decoded straight into one of two recycled block arrays in the
    stored dtype, cast to float64 by the kernels as they copy into their
    FFT buffers, no Dask task per chunk. Each block is cut into equal
    slices, as many per thread, and ``func(series (b, T, k), *whole) ->
    (b, n_out)`` runs on them on a thread pool (the FFTs release the GIL)
    while a reader thread reads the next block into the other array: one
    block ahead, never more, so the array it fills is never one being
    correlated. An error of the read (a damaged chunk) is raised by the
    call, from the reader thread, as the store raised it.

    ``atoms``: sorted indices into ``da``'s ``atom`` axis; ``whole``:
    arguments every call gets (DataArrays are read once, in the task).
    Returns a lazy ``(atom, lag)`` DataArray (one Dask task in this process, one per
    worker thread under a distributed Client: :func:`_task_groups`) with ``da``'s
    atom coordinates, or with ``mean`` the ``(lag,)`` average over atoms,
    accumulated block by block in float64 (no per-atom result is kept).

    Memory (the block plan, :func:`stored_block_atoms`): the block being
    correlated and the next one being read, both in the stored dtype, fit
    ``agi.block_bytes`` together: a block holds
    ``w = budget // (2·T·k·itemsize)`` atoms (at least one), so it narrows
    as the run grows and memory stays flat; when ``w`` is narrower than a
    stored chunk, the store decodes each chunk once per block that needs
    it (more decoding work, same memory). On top, fixed: the chunks of one
    fetch batch (≤ 4 MiB decoded) and one chunk of scratch; per thread, the
    result of one slice of atoms (≤ 8 MiB of float64) and the kernels' FFT
    groups (≤ 8 MiB of spectrum, a few such buffers); and the ``(atom,
    lag)`` output unless ``mean``.
    """
    # the store puts a reader of the untouched array in its encoding; the analyses use its two methods
    # and never import the store
    src = da.encoding.get(STORE_SOURCE_KEY)
    if src is None or not hasattr(src, "blocks") or not src.valid_for(da):
        return None
    n_atoms = int(len(atoms))
    width = stored_block_atoms(src.shape, da.dtype.itemsize)

    def compute(atoms, *whole) -> np.ndarray:
        """Per-atom results of ``atoms`` or, with ``mean``, their sum over atoms."""
        out = np.zeros(n_out) if mean else np.empty((len(atoms), n_out))
        threads = _n_threads()
        ready: queue.Queue = queue.Queue()  # each block's slice futures, in block order; None at the end
        stop = threading.Event()

        def work(series, dest: slice):
            res = func(series, *whole)
            if mean:
                return res.sum(axis=0)
            out[dest] = res
            return None

        def read_ahead(pool: ThreadPoolExecutor) -> None:
            """Read each block into the array freed by the block before last, and queue its slices."""
            # the stored dtype: the kernels cast to float64 as they copy into their FFT buffers; two recycled
            # block arrays: block k+1 is read into one while block k's slices run on the other
            blocks = iter(src.blocks(atoms, block_atoms=width, dtype=None, buffers=2))
            behind: collections.deque = collections.deque()  # the slices of the last two blocks
            done = 0
            try:
                while not stop.is_set():
                    if len(behind) == 2:  # block k+1 overwrites block k-1's array: its slices must be finished
                        futures.wait(behind.popleft())
                    blk = next(blocks, None)
                    if blk is None:
                        break
                    if blk.data.shape[0] != src.shape[0]:
                        raise RuntimeError(f"run {src.run_id!r} changed under a pinned version "
                                           f"({blk.data.shape[0]} frames read, {src.shape[0]} opened)")
                    series = np.moveaxis(blk.data, 1, 0)  # (n, T, k) view of the (T, n, k) block
                    n = series.shape[0]
                    # slices of at most _RESULT_BYTES of float64 result each: the result of a block is never
                    # held whole; per atom it lands in ``out``, for the mean it is summed slice by slice. As many
                    # equal slices per thread; the slices of block k+1 queue behind those of block k, so a
                    # thread that finishes early takes the next block's work instead of waiting for its peers
                    cap = max(1, _RESULT_BYTES // (8 * n_out))
                    step = -(-n // (threads * -(-n // (threads * cap))))
                    parts = [pool.submit(work, series[lo:lo + step], slice(done + lo, done + min(lo + step, n)))
                             for lo in range(0, n, step)]
                    behind.append(parts)
                    ready.put(parts)
                    done += n
            finally:
                ready.put(None)

        # one compute pool for all blocks: threads created per block each take a glibc arena and keep
        # what they freed (measured: peak RSS 892 MiB instead of 466 on 1000 atoms x 20000 frames)
        with ThreadPoolExecutor(1) as reader, ThreadPoolExecutor(threads, initializer=_keep_workspace) as pool:
            feeder = reader.submit(read_ahead, pool)
            try:
                while (parts := ready.get()) is not None:
                    for part in parts:  # in order: the sum does not depend on timing
                        res = part.result()
                        if mean:
                            np.add(out, res, out=out)
                feeder.result()  # an error of the read (a damaged chunk), as the store raised it
            except BaseException:
                stop.set()
                pool.shutdown(cancel_futures=True)
                raise
        return out

    coords = da.isel(time=0, drop=True)
    coords = coords.isel({d: 0 for d in coords.dims if d != "atom"}, drop=True).isel(atom=atoms)
    whole = [w.data if isinstance(w, xr.DataArray) else w for w in whole]  # Dask inputs computed in the task
    task = dask.delayed(compute, pure=False)
    parts = [dask.array.from_delayed(task(group, *whole), (n_out,) if mean else (len(group), n_out), np.float64)
             for group in _task_groups(atoms, da)]
    if mean:
        data = parts[0] if len(parts) == 1 else dask.array.stack(parts).sum(axis=0)
        return xr.DataArray(data / n_atoms, dims=("lag",))
    data = _Fresh.of(parts[0]) if len(parts) == 1 else dask.array.concatenate(parts)
    return xr.DataArray(data, dims=("atom", "lag"), coords=coords.coords)


class _Fresh(dask.array.Array):
    """A one-chunk Dask array whose task allocates a new result on every run: computed without Dask's copy.

    Dask copies the chunk of a one-chunk array when it is computed, in case
    the chunk is a buffer the graph holds. The stored analyses' task
    (``pure=False``) writes into an array it allocates each time it runs,
    so that copy (160 MB for the per-atom MSD of 1000 atoms × 20 000 lags:
    ~0.15 s, single-threaded, and its page faults) would protect nothing.
    Anything derived from it (arithmetic, selections, ``persist``) is a
    plain Dask array again, with Dask's copy.
    """

    @classmethod
    def of(cls, x: dask.array.Array) -> _Fresh:
        return cls(x.dask, x.name, x.chunks, meta=x._meta)

    def __dask_postcompute__(self):
        return unpack_singleton, ()  # what Dask's own finalize does for one chunk, less the copy


def stored_block_atoms(shape: tuple[int, ...], itemsize: int, budget: float | None = None) -> int:
    """Atoms per block of :func:`stored_blocked` for a stored array of ``shape`` ``(T, atoms, k…)``.

    Two blocks in the stored dtype (the one being correlated and the next
    one being read) fit the budget (``dask.config.get("agi.block_bytes")``,
    default 64 MiB)::

        w = budget // (2 · T · k · itemsize),   w ≥ 1

    so the read plan's memory is ≤ budget whatever T is, down to one atom
    per block (T beyond budget / (2·k·itemsize) frames: 2.8·10⁶ frames of
    float32 xyz at 64 MiB).
    """
    budget = float(budget if budget is not None else dask.config.get(BLOCK_BYTES_KEY, DEFAULT_BLOCK_BYTES))
    k = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    return max(1, int(budget // (2 * int(shape[0]) * k * int(itemsize))))


@contextlib.contextmanager
def _progress(total: int, label: str):
    """A rich progress bar for long in-memory work (≥ 16 blocks, on a terminal); silent otherwise."""
    if total < 16 or not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def block_size(n_frames: int, n_components: int = 3, n_series: int | None = None,
               block_bytes: float | None = None) -> int:
    """How many series (atoms) one block holds so that its working memory stays within budget.

    The budget is ``dask.config.get("agi.block_bytes")`` (default 64 MiB):
    the float64 input of the block plus its output, ~(8·k + 8)·T bytes per
    series; the FFT buffers are bounded separately by the numpy kernels.
    The block shrinks as the trajectory grows, so memory stays flat.
    """
    budget = float(block_bytes if block_bytes is not None else dask.config.get(BLOCK_BYTES_KEY, DEFAULT_BLOCK_BYTES))
    per_series = (8 * n_components + 8) * max(1, int(n_frames))
    size = max(1, int(budget // per_series))
    return size if n_series is None else max(1, min(size, int(n_series)))


def chunk_for_correlation(x: xr.DataArray, time_dim: str = "time", component_dim: str | None = "xyz",
                          *, extra_core: tuple[str, ...] = ()) -> xr.DataArray:
    """Dask-chunk ``x`` for a correlation: whole time axis, bounded blocks over the other dims.

    In-memory input is chunked too, so that the threaded scheduler (or a
    ``dask.distributed`` client) runs the blocks in parallel. Where the input
    already has chunks along the block dimension, the block is a multiple of
    them (no stored chunk is split) or, when one chunk alone is over budget,
    an exact divisor of it (no block straddles two stored chunks).
    """
    core = {time_dim, *extra_core} | ({component_dim} if component_dim else set())
    loop = [d for d in x.dims if d not in core]
    chunks = {d: -1 for d in core if d in x.dims}
    k = x.sizes[component_dim] if component_dim and component_dim in x.dims else 1
    n_series = int(np.prod([x.sizes[d] for d in loop])) if loop else 1
    budget_series = block_size(x.sizes[time_dim], k, n_series)
    # block the outermost loop dimension, keep the others whole
    for i, d in enumerate(loop):
        inner = int(np.prod([x.sizes[e] for e in loop[i + 1:]])) if loop[i + 1:] else 1
        size = max(1, budget_series // inner)
        if x.chunks is not None:
            have = max(x.chunksizes[d])
            if have <= size:  # whole stored chunks per block
                size = have * max(1, size // have)
            else:  # an equal split of each stored chunk, so that no block straddles two
                size = max(q for q in range(1, size + 1) if have % q == 0)
        chunks[d] = min(size, x.sizes[d])
        for e in loop[i + 1:]:
            chunks[e] = -1
        break
    if x.chunks is None:  # in memory: skip hashing the whole array for a task name
        import uuid

        return x.chunk(chunks, token=uuid.uuid4().hex)
    return x.chunk(chunks)
