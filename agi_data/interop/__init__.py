"""Interoperability: the store's runs in the community's formats and tools.

* :mod:`~agi_data.interop.h5md` — H5MD 1.1 export and import (read by
  MDAnalysis, zarrtraj, dynasor and many MD engines).
* :mod:`~agi_data.interop.mdanalysis` — an MDAnalysis Reader and topology
  over a store run: ``MDAnalysis.Universe(StoreRun(store, run_id))``.
* :mod:`~agi_data.interop.ase` — a run's frames as ``ase.Atoms`` with a
  ``SinglePointCalculator``.

Every module here reads and writes through the public API of
:mod:`agi_data.store` only.
"""

from .errors import H5MDError, InteropError

__all__ = ["InteropError", "H5MDError"]
