"""agi-data: provenance-tracked data store and analysis for ML molecular dynamics of superionic AgI.

>>> import agi_data
>>> store = agi_data.open_store()          # the default store under the data root
>>> ds = store.trajectory("agi-750K")      # lazy, Dask-backed xarray.Dataset
>>> ds.agi.msd("Ag")                       # every analysis as an accessor method

``import agi_data`` stays cheap: it imports neither xarray nor the analyses.
The ``.agi`` accessor is registered on xarray's Dataset and DataArray as soon
as xarray is imported (now, if it already is), and the analyses behind it
are imported the first time ``.agi`` is used.
"""

from __future__ import annotations

import importlib.util
import sys

from ._version import __version__


def open_store(path=None, **kwargs):
    """Open (or create) the store at ``path`` (default: ``<data root>/data``): a directory or ``s3://bucket/prefix``.

    Keywords as :func:`agi_data.store.open_store` (``create=False`` for read-only callers, ``lock_timeout_s``,
    ``endpoint_url``, ``region``, ``allow_http``). See :class:`agi_data.store.Store`.
    """
    from .store import open_store as _open

    return _open(path, **kwargs)


def _agi_accessor(obj):
    """The ``.agi`` accessor of ``obj``: :class:`agi_data.analysis.accessor.AgiAccessor`, imported on first use."""
    from .analysis.accessor import AgiAccessor

    return AgiAccessor(obj)


def _register_accessor() -> None:
    """Register ``.agi`` on xarray's Dataset and DataArray (once)."""
    import xarray as xr

    for cls, register in ((xr.Dataset, xr.register_dataset_accessor),
                          (xr.DataArray, xr.register_dataarray_accessor)):
        if "agi" not in vars(cls):
            register("agi")(_agi_accessor)


class _AfterXarrayImport:
    """A meta-path finder that registers the accessor right after ``import xarray`` finishes, wherever it happens."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "xarray":
            return None
        sys.meta_path.remove(self)  # find the real spec with the other finders, once
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_accessor()

        spec.loader.exec_module = exec_then_register
        return spec


if "xarray" in sys.modules:
    _register_accessor()
elif not any(isinstance(f, _AfterXarrayImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _AfterXarrayImport())


__all__ = ["open_store", "__version__"]
