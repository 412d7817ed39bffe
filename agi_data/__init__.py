"""agi-data: provenance-tracked data store and analysis for ML molecular dynamics of superionic AgI.

>>> import agi_data
>>> store = agi_data.open_store()          # the default store under the data root
>>> ds = store.trajectory("agi-750K")      # lazy, Dask-backed xarray.Dataset
>>> ds.agi.msd("Ag")                       # every analysis as an accessor method
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("agi-data")
except PackageNotFoundError:  # pragma: no cover - running from an uninstalled tree
    __version__ = "0+unknown"


def open_store(path=None):
    """Open (or create) the store at ``path`` (default: ``<data root>/data``). See :class:`agi_data.store.Store`."""
    from .store import open_store as _open

    return _open(path)


__all__ = ["open_store", "__version__"]
