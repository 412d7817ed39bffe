"""Periodic neighbour graphs of trajectory frames, batched for the network.

The cutoff (~6 Å) is more than half the width of a 32-ion α-AgI cell
(10.14 Å), so an atom can see several periodic images of the same
neighbour — the minimum image alone would drop them. ASE's
``neighbor_list`` enumerates every image within the cutoff, for any cell
shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.neighborlist import neighbor_list

__all__ = ["FrameGraph", "frame_graph", "batch"]


@dataclass(frozen=True)
class FrameGraph:
    """One frame: ``types`` (N,) species index, edges ``src → dst`` with vectors ``vec`` = r_src − r_dst (+ image)."""

    types: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    vec: np.ndarray


def frame_graph(positions: np.ndarray, cell: np.ndarray, types: np.ndarray, cutoff: float) -> FrameGraph:
    """Every pair (and periodic image) closer than ``cutoff`` Å, as directed edges."""
    atoms = Atoms(positions=np.asarray(positions, dtype=np.float64), cell=np.asarray(cell, dtype=np.float64),
                  pbc=True)
    dst, src, vec = neighbor_list("ijD", atoms, float(cutoff))  # D = r_j − r_i + image shift, i the centre
    return FrameGraph(types=np.asarray(types, dtype=np.int64), src=src.astype(np.int64),
                      dst=dst.astype(np.int64), vec=vec)


def batch(graphs: list[FrameGraph]):
    """Concatenate frames into one disconnected graph: (types, src, dst, vec, offsets of each frame)."""
    sizes = np.array([len(g.types) for g in graphs])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    types = np.concatenate([g.types for g in graphs])
    src = np.concatenate([g.src + o for g, o in zip(graphs, offsets)])
    dst = np.concatenate([g.dst + o for g, o in zip(graphs, offsets)])
    vec = np.concatenate([g.vec for g in graphs])
    return types, src, dst, vec, offsets
