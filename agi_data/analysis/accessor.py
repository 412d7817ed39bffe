"""The ``.agi`` accessor: every analysis function as a method.

``ds.agi.msd("Ag")`` is ``agi_data.analysis.msd(ds, "Ag")``; the same for a
DataArray (``msd.agi.diffusion_coefficient()``). The accessor forwards to
the public functions of :mod:`agi_data.analysis`, so a new analysis is
reachable from it without being listed twice.
"""

from __future__ import annotations

import functools
import inspect

import xarray as xr


def _public_functions() -> dict:
    from agi_data import analysis

    return {
        name: obj
        for name, obj in vars(analysis).items()
        if not name.startswith("_") and inspect.isfunction(obj)
    }


class _AgiAccessor:
    def __init__(self, obj):
        self._obj = obj

    def __getattr__(self, name):
        funcs = _public_functions()
        if name not in funcs:
            raise AttributeError(f"agi_data.analysis has no function {name!r}; available: {sorted(funcs)}")
        func = funcs[name]

        @functools.wraps(func)
        def bound(*args, **kwargs):
            return func(self._obj, *args, **kwargs)

        return bound

    def __dir__(self):
        return sorted(_public_functions())


xr.register_dataset_accessor("agi")(_AgiAccessor)
xr.register_dataarray_accessor("agi")(_AgiAccessor)
