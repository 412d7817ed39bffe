r"""Periodic boundary conditions: minimum image, unwrapping and cell widths, for any cell.

Cells are matrices whose *rows* are the lattice vectors (Å), as in ASE and
the store's ``cell(time, vec, xyz)``. Fractional coordinates s satisfy
r = s @ cell.

The minimum image is taken in fractional coordinates (s − round(s)); this is
exact for orthorhombic cells and for any cell when the displacement is
shorter than half the smallest perpendicular width (:func:`half_width`),
which holds for frame-to-frame displacements and for neighbour searches
within that width.

Unwrapping (:func:`unwrap`) is the "TOR" scheme of von Bülow, Bullerjahn &
Hummer, J. Chem. Phys. 153, 021101 (2020):

.. math:: \mathbf u(t+1) = \mathbf u(t) + \mathrm{mic}_{h(t+1)}\big(\mathbf w(t+1) - \mathbf w(t)\big)

with w the wrapped positions and mic the minimum image in the cell h(t+1)
of the later frame; correct for orthorhombic and triclinic, constant and
time-dependent cells while no atom moves more than half a cell width
between frames. This module is geometry only (numpy in, numpy out); the
trajectory analyses wrap it (:func:`agi_data.analysis.unwrap`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["minimum_image", "distances", "half_width", "perpendicular_widths", "unwrap", "unwrap_numpy", "mic_steps"]


def minimum_image(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image displacement vectors.

    ``d``: (..., 3) displacements in Å; ``cell``: (3, 3), or (..., 3, 3)
    broadcastable against ``d``'s leading axes with one extra atom axis
    (e.g. d (T, N, 3) with cell (T, 1, 3, 3)). Returns the same shape as d.
    """
    cell = np.asarray(cell, dtype=np.float64)
    inv = np.linalg.inv(cell)
    s = np.einsum("...i,...ij->...j", d, inv)
    s -= np.round(s)
    return np.einsum("...i,...ij->...j", s, cell)


def distances(a: np.ndarray, b: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum-image distance matrix between point sets a (Na, 3) and b (Nb, 3) in one cell, Å."""
    d = b[None, :, :] - a[:, None, :]
    return np.linalg.norm(minimum_image(d, cell), axis=-1)


def half_width(cells: np.ndarray) -> float:
    r"""Half the smallest perpendicular width over one or more cells (..., 3, 3), Å.

    The width across the faces spanned by a_j and a_k is V / |a_j × a_k|.
    Below half the smallest one the minimum image of a displacement is
    unique: the largest pair distance (``r_max``) a periodic analysis can use.
    """
    return 0.5 * float(np.min(perpendicular_widths(cells)))


def perpendicular_widths(cells: np.ndarray) -> np.ndarray:
    """The widths (..., 3) of cells (..., 3, 3) across each lattice direction, V / |a_j × a_k|, Å."""
    c = np.asarray(cells, dtype=np.float64)
    vol = np.abs(np.linalg.det(c))
    return np.stack([vol / np.linalg.norm(np.cross(c[..., (i + 1) % 3, :], c[..., (i + 2) % 3, :]), axis=-1)
                     for i in range(3)], axis=-1)


def mic_steps(d: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Minimum image of steps d (..., T-1, 3) in the cells (T-1, 3, 3) or one cell (3, 3); d is overwritten.

    A constant orthorhombic cell needs no matrix product, a constant
    triclinic cell one 3×3 product, a time-dependent cell one batched
    product per frame. (The MSD kernel unwraps with the same arithmetic in
    a compiled pass of its own, :func:`agi_data.analysis._series.gather_unwrap`.)
    """
    if cell.ndim == 3 and np.all(cell == cell[:1]):
        cell = cell[0]
    if cell.ndim == 2 and not np.any(cell - np.diag(np.diag(cell))):
        box = np.diag(cell)
        d -= box * np.rint(d / box)
        return d
    if cell.ndim == 2:
        s = d @ np.linalg.inv(cell)
        s -= np.rint(s)
        return s @ cell
    lead = d.shape[:-2]
    steps = d.reshape((-1,) + d.shape[-2:]).transpose(1, 0, 2)  # (T-1, M, 3)
    s = np.matmul(steps, np.linalg.inv(cell))
    s -= np.rint(s)
    return np.matmul(s, cell).transpose(1, 0, 2).reshape(lead + d.shape[-2:])


def unwrap(positions: np.ndarray, cells: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """Unwrap positions (..., T, 3) along their time axis (-2) by minimum-image steps (TOR scheme).

    ``cells``: (3, 3) or (T, 3, 3), Å; each step is taken in the cell of its
    later frame. ``start``: the unwrapped position (..., 3) of the frame
    before the first (for blockwise unwrapping), else the first frame is kept
    as it is. Returns float64, accumulated in float64.
    """
    pos = np.asarray(positions, dtype=np.float64)
    cells = np.asarray(cells, dtype=np.float64)
    out = np.empty_like(pos)
    if start is None:
        out[..., 0, :] = pos[..., 0, :]
    else:
        c0 = cells[0] if cells.ndim == 3 else cells
        out[..., 0, :] = start + minimum_image(pos[..., 0, :] - start, c0)
    if pos.shape[-2] > 1:
        steps = mic_steps(np.diff(pos, axis=-2), cells[1:] if cells.ndim == 3 else cells)
        np.cumsum(steps, axis=-2, out=out[..., 1:, :])
        out[..., 1:, :] += out[..., :1, :]
    return out


def unwrap_numpy(positions: np.ndarray, cells: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """:func:`unwrap` for time-major positions (T, N, 3): the layout of a stored trajectory."""
    out = unwrap(np.swapaxes(np.asarray(positions), 0, 1), cells,
                 None if start is None else np.asarray(start))
    return np.swapaxes(out, 0, 1)
