"""The compiled passes around the correlation FFTs (agi_data.analysis._series) against plain numpy.

Each pass replaces numpy steps of the MSD/VACF kernels; these tests hold
each one to the numpy it replaced, on the layout the store hands them
(float32 (T, n, 3) blocks read as (n, T, 3) strided views), for every cell
kind the unwrap supports.
"""

from __future__ import annotations

import importlib

import dask
import numpy as np
import pytest
from scipy.fft import irfft, rfft

from agi_data.analysis import _series
from agi_data.pbc import unwrap_numpy

correlate = importlib.import_module("agi_data.analysis.correlate")  # the module, not the function of that name

T, N = 700, 11  # T spans several tiles of the gathering passes, with a partial last one


def _block(rng, dtype=np.float32, box=9.0):
    """A wrapped random walk as a stored block (T, N, 3) and its (N, T, 3) strided view."""
    walk = rng.normal(scale=0.4, size=(T, N, 3)).cumsum(axis=0)
    block = np.ascontiguousarray(walk % box, dtype=dtype)
    return block, np.moveaxis(block, 1, 0)


TRICLINIC = np.array([[9.0, 0.0, 0.0], [2.5, 8.5, 0.0], [-1.5, 1.0, 9.5]])


@pytest.mark.parametrize("kind", ["cubic", "orthorhombic-in-time", "triclinic", "triclinic-in-time"])
def test_gather_unwrap_equals_pbc_unwrap(kind):
    """Cast, transpose and TOR unwrap in one pass: pbc.unwrap's path to rounding, for every cell kind."""
    rng = np.random.default_rng(5)
    if kind == "cubic":
        cells = np.eye(3)[None] * 9.0
    elif kind == "orthorhombic-in-time":
        cells = np.eye(3)[None] * (9.0 + 0.3 * np.sin(np.arange(T) / 50.0))[:, None, None]
    elif kind == "triclinic":
        cells = TRICLINIC[None]
    else:
        cells = TRICLINIC[None] * (1.0 + 0.02 * np.sin(np.arange(T) / 40.0))[:, None, None]
    walk = rng.normal(scale=0.3, size=(T, N, 3)).cumsum(axis=0)
    frac = np.einsum("tni,tij->tnj", walk, np.linalg.inv(cells if len(cells) == T else np.repeat(cells, T, 0)))
    wrapped = np.einsum("tni,tij->tnj", frac % 1.0, cells if len(cells) == T else np.repeat(cells, T, 0))
    block = np.ascontiguousarray(wrapped, dtype=np.float32)
    expected = unwrap_numpy(block, cells if len(cells) == T else cells[0])  # (T, N, 3) float64
    ortho = not np.any(cells[:, ~np.eye(3, dtype=bool)])
    out = np.full((N, 3, T + 5), np.nan)
    _series.gather_unwrap(np.moveaxis(block, 1, 0), cells, np.linalg.inv(cells), ortho, out)
    np.testing.assert_allclose(np.moveaxis(out[..., :T], 2, 0), expected, rtol=0, atol=1e-10)
    assert np.isnan(out[..., T:]).all()  # nothing written past the series (the FFT's zero padding)
    assert np.abs(expected[-1] - expected[0]).max() > 9.0  # the walk left the cell: the unwrap did work


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gather_is_the_cast_transpose_bit_for_bit(dtype):
    block, series = _block(np.random.default_rng(1), dtype)
    out = np.zeros((N + 2, 3, T + 3))
    _series.gather(series[2:9], out)
    np.testing.assert_array_equal(out[:7, :, :T], np.swapaxes(series[2:9], 1, 2).astype(np.float64))
    assert not out[:, :, T:].any() and not out[7:].any()


def test_centre_cumsum_and_power_sum_equal_numpy():
    rng = np.random.default_rng(2)
    x = rng.normal(loc=3.0, size=(5, 3, T + 4))
    ref = x[..., :T] - x[..., :T].mean(axis=-1, keepdims=True)
    csum = np.empty((5, T))
    _series.centre_cumsum(x, T, csum)
    np.testing.assert_allclose(x[..., :T], ref, rtol=0, atol=1e-13)
    np.testing.assert_allclose(csum, np.cumsum((ref**2).sum(axis=1), axis=-1), rtol=1e-13)
    f = rfft(x, axis=-1)
    power = np.empty((5, f.shape[-1]))
    _series.power_sum(f, power)
    np.testing.assert_allclose(power, (np.abs(f) ** 2).sum(axis=1), rtol=1e-13)


@pytest.mark.parametrize("n_frames", [1, 2, 3, 7, 100, 2500])
def test_even_inverse_is_the_inverse_real_fft(n_frames):
    n = correlate.fft_length(n_frames)
    assert n % 2 == 0 and n >= 2 * n_frames
    power = np.random.default_rng(3).random((4, n // 2 + 1))
    expected = n * irfft(power, n=n, axis=-1)[:, : n // 2 + 1]
    np.testing.assert_allclose(correlate._even_inverse(power.copy(), n), expected, rtol=1e-12, atol=1e-12 * n)


@pytest.mark.parametrize("n_frames", [1, 2, 5, 64, 301])
def test_fca_msd_equals_the_double_loop_over_origins(n_frames):
    """The whole kernel (gather, centre, FFT, DCT inverse, S1 from the cumulative sum) against the definition."""
    r = np.random.default_rng(4).normal(size=(3, n_frames, 3)).cumsum(axis=1).astype(np.float32)
    got = correlate.msd_fca_numpy(np.moveaxis(np.moveaxis(r, 0, 1).copy(), 1, 0))  # strided, as from a block
    r64 = r.astype(np.float64)
    direct = np.array([[np.mean(np.sum((r64[a, m:] - r64[a, : n_frames - m]) ** 2, axis=-1)) for m in range(n_frames)]
                       for a in range(3)])
    np.testing.assert_allclose(got, direct, rtol=1e-10, atol=1e-12)
    assert (got[:, 0] == 0.0).all()


def test_fft_buffers_are_kept_only_by_the_analysis_pools():
    """A kernel called from any other thread (here the caller's) leaves no 8 MiB buffer behind."""
    r = np.random.default_rng(6).normal(size=(4, 300, 3)).cumsum(axis=1)
    correlate.msd_fca_numpy(r)
    correlate.correlate_numpy(r)
    assert getattr(correlate._LOCAL, "ws", None) is None
    kept = []
    with dask.config.set(num_workers=2):  # a pool of two threads whatever this machine's core count
        correlate.run_blocked(lambda x: (correlate.msd_fca_numpy(x), kept.append(correlate._LOCAL.ws["buf"]))[0],
                              [r], n_core=[2], n_out=300, block=1)  # 4 blocks on the analysis pool's threads
    assert len(kept) == 4 and len({id(b) for b in kept}) <= 2  # each pool thread reuses its buffer
