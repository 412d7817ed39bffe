"""The ``.agi`` accessor: every analysis function as a method of a Dataset or DataArray.

``traj.agi.msd("Ag")`` is ``agi_data.analysis.msd(traj, "Ag")``; the same for a
DataArray (``msd.agi.diffusion_coefficient()``). The methods are listed on the
class, as in xarray's accessor examples, so ``dir(traj.agi)``,
``help(traj.agi)`` and tab completion show them with their signatures and
docstrings. ``import agi_data`` registers the accessor (see
:func:`agi_data._register_accessor`); this module only defines it.
"""

from __future__ import annotations

import functools
import inspect

from . import conditioning as _conditioning
from . import conductivity as _conductivity
from . import correlate as _correlate
from . import gle as _gle
from . import hops as _hops
from . import lonepair as _lonepair
from . import moments as _moments
from . import structure as _structure
from . import transport as _transport
from . import wannier as _wannier

__all__ = ["AgiAccessor"]


def _method(func):
    """``func(obj, *args, **kwargs)`` as a method on the accessor, with its docstring and signature."""
    @functools.wraps(func)
    def method(self, *args, **kwargs):
        return func(self._obj, *args, **kwargs)

    sig = inspect.signature(func)
    rest = list(sig.parameters.values())[1:]
    method.__signature__ = sig.replace(
        parameters=[inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *rest])
    return method


class AgiAccessor:
    """agi-data analyses of this trajectory (Dataset) or analysis result (DataArray).

    Each method is the function of the same name in :mod:`agi_data.analysis`
    with this object as its first argument.
    """

    def __init__(self, obj):
        self._obj = obj

    # transport
    unwrap = _method(_transport.unwrap)
    msd = _method(_transport.msd)
    diffusion_coefficient = _method(_transport.diffusion_coefficient)
    vacf = _method(_transport.vacf)
    vdos = _method(_transport.vdos)
    green_kubo = _method(_transport.green_kubo)
    # structure
    rdf = _method(_structure.rdf)
    van_hove_self = _method(_structure.van_hove_self)
    van_hove_distinct = _method(_structure.van_hove_distinct)
    # paddlewheels
    assign_wannier = _method(_wannier.assign_wannier)
    rotor_function = _method(_wannier.rotor_function)
    rotor_correlation = _method(_wannier.rotor_correlation)
    iodide_dipoles = _method(_wannier.iodide_dipoles)
    dipole_correlation = _method(_wannier.dipole_correlation)
    lone_pair_angular_velocity = _method(_wannier.lone_pair_angular_velocity)
    hops = _method(_hops.hops)
    hop_rate = _method(_hops.hop_rate)
    residence_times = _method(_hops.residence_times)
    residence_time_distribution = _method(_hops.residence_time_distribution)
    cage_correlation = _method(_hops.cage_correlation)
    hop_conditioned_average = _method(_hops.hop_conditioned_average)
    # friction
    gle_correlations = _method(_gle.gle_correlations)
    memory_kernel = _method(_gle.memory_kernel)
    memory_kernel_from_correlations = _method(_gle.memory_kernel_from_correlations)
    friction_coefficient = _method(_gle.friction_coefficient)
    # machinery
    correlate = _method(_correlate.correlate)
    # study analyses
    paddlewheel_mask = _method(_conditioning.paddlewheel_mask)
    compare_kernels = _method(_conditioning.compare_kernels)
    lone_pair_rdf = _method(_lonepair.lone_pair_rdf)
    lone_pair_angle_distribution = _method(_lonepair.lone_pair_angle_distribution)
    # electronic moments (ℓ = 1 and ℓ = 3), from Wannier centres or a model's predictions
    lone_pair_moments = _method(_moments.lone_pair_moments)
    rotor_function_from_moments = _method(_moments.rotor_function_from_moments)
    lone_pair_angular_velocity_from_moments = _method(_moments.lone_pair_angular_velocity_from_moments)
    # superionic observables
    conductivity = _method(_conductivity.conductivity)
    haven_ratio = _method(_conductivity.haven_ratio)
    jump_diffusion = _method(_conductivity.jump_diffusion)

    def __repr__(self) -> str:
        return f"<agi_data accessor on {type(self._obj).__name__}: {', '.join(_names())}>"


def _names() -> list[str]:
    return [n for n, v in vars(AgiAccessor).items() if not n.startswith("_") and callable(v)]
