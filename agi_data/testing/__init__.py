"""Seeded synthetic data with known answers, for tests, benchmarks and the demo.

>>> from agi_data.testing import random_walk
>>> ds = random_walk(n_atoms=100, n_frames=2000, D=0.5, dt=0.01, seed=1)
>>> ds.attrs["D_true"]
0.5
"""

from .processes import (
    BCC_SHELLS,
    ballistic,
    bcc_lattice,
    ideal_gas,
    ornstein_uhlenbeck,
    random_walk,
    trajectory_dataset,
    wrap,
)

__all__ = [
    "BCC_SHELLS", "ballistic", "bcc_lattice", "ideal_gas", "ornstein_uhlenbeck", "random_walk",
    "trajectory_dataset", "wrap",
]
