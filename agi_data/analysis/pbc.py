"""Periodic boundary conditions: kept here for code that imports ``agi_data.analysis.pbc``.

The geometry lives in :mod:`agi_data.pbc` (it is used by the structures,
the parsers and the analyses alike); this module re-exports it.
"""

from ..pbc import distances, half_width, minimum_image, unwrap, unwrap_numpy

__all__ = ["minimum_image", "distances", "half_width", "unwrap", "unwrap_numpy"]
