"""The agi-data store: trajectories and Wannier centres in versioned, chunked Zarr v3.

>>> from agi_data import open_store
>>> store = open_store("store/data")
>>> with store.create_run("agi-750K", ["Ag", "I"], cell, timestep_ps=0.005) as w:
...     w.append(positions, velocities=v, forces=f, energies=e)
>>> ds = store.trajectory("agi-750K")
"""

from .errors import (
    ImportFormatError,
    NotAStoreError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    StoreValidationError,
    WriterClosedError,
)
from .copy import copy_run
from .location import StoreLocationError, StoreUnreachableError
from .run import RunHandle, RunRef
from .store import Store, open_store
from .writer import RunWriter

__all__ = [
    "Store", "RunWriter", "RunRef", "RunHandle", "open_store",
    "StoreError", "StoreValidationError", "NotAStoreError", "RunExistsError", "RunNotFoundError",
    "RunLockedError", "WriterClosedError", "ImportFormatError", "StoreLocationError", "StoreUnreachableError",
    "copy_run",
]
