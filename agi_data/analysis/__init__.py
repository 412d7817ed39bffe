"""Analyses over trajectories in the store's schema: pure functions, xarray in, xarray out.

>>> import agi_data
>>> traj = agi_data.open_store().trajectory("agi-750K")   # lazy, Dask-backed
>>> m = traj.agi.msd("Ag")                                 # = agi_data.analysis.msd(traj, "Ag")
>>> m.agi.diffusion_coefficient()["D"]                     # Å²/ps, with its standard error

Every function takes a trajectory Dataset (``positions(time, atom, xyz)`` Å,
``cell``, coordinates ``time`` ps and ``species``/``symbol``; in memory or
Dask-backed) or the result of another analysis, returns labelled xarray with
``units`` in its attrs, and is also a method of the ``.agi`` accessor of a
Dataset or DataArray. Lags and time windows are in ps (``max_lag_ps``,
``window_ps``), distances in Å.

Transport (docs/analysis-transport.md)
    unwrap, msd, diffusion_coefficient, msd_covariance, vacf, vdos, green_kubo
Structure (docs/analysis-transport.md)
    rdf, van_hove_self, van_hove_distinct
Paddlewheels: Wannier centres, hops, cages (docs/analysis-paddlewheel.md)
    assign_wannier, rotor_function, rotor_correlation, iodide_dipoles,
    dipole_correlation, lone_pair_angular_velocity, hops, hop_rate,
    residence_times, residence_time_distribution, cage_correlation,
    hop_conditioned_average — the Wannier analyses take either the Wannier
    set or lone-pair moments (lone_pair_moments, a model's predictions,
    store.electronic(run_id)) and dispatch on what they get
Electronic moments (docs/electronic.md, docs/electronic-predict.md)
    lone_pair_moments, rotor_function_from_moments,
    lone_pair_angular_velocity_from_moments
Superionic observables (docs/interop.md)
    conductivity, haven_ratio, jump_diffusion
Friction (docs/analysis-gle.md)
    gle_correlations, memory_kernel, memory_kernel_from_correlations,
    friction_coefficient
Correlation machinery
    correlate (FFT, all time origins, float64)

Errors: every bad input raises an :class:`AnalysisError` (a ``ValueError``)
whose message names the problem and the remedy; the area classes
(:class:`SchemaError`, :class:`TransportError`, :class:`StructureError`,
:class:`HopError`, :class:`WannierError`, :class:`GLEInputError`,
:class:`KernelInstabilityError`) derive from it.

Every public name here is a contract that checks outside this repository call.
"""

from . import accessor  # noqa: F401  (the .agi accessor class; agi_data registers it)
from .correlate import correlate
from .errors import (
    AnalysisError,
    GLEInputError,
    HopError,
    KernelInstabilityError,
    SchemaError,
    StructureError,
    TransportError,
    WannierError,
)
from .gle import (
    friction_coefficient,
    gle_correlations,
    memory_kernel,
    memory_kernel_from_correlations,
)
from .hops import (
    cage_correlation,
    hop_conditioned_average,
    hop_rate,
    hops,
    residence_time_distribution,
    residence_times,
)
from .structure import rdf, van_hove_distinct, van_hove_self
from .transport import (
    diffusion_coefficient,
    green_kubo,
    msd,
    msd_covariance,
    unwrap,
    vacf,
    vdos,
)
from .wannier import (
    BadFramesWarning,
    assign_wannier,
    dipole_correlation,
    iodide_dipoles,
    lone_pair_angular_velocity,
    rotor_correlation,
    rotor_function,
)

# isort: split
# --- study analyses: thermostat policy, block errors, conditioned kernels, lone-pair structure ---
from .blocks import BlockError, block_error  # noqa: F401  (not an accessor method: it takes the analysis first)
from .conditioning import ConditioningError, compare_kernels, paddlewheel_mask
from .ensemble import ThermostatWarning
from .lonepair import LonePairError, lone_pair_angle_distribution, lone_pair_rdf

# isort: split
# --- the electronic state as ℓ = 1 and ℓ = 3 moments (from Wannier centres or a model's predictions) ---
from .moments import lone_pair_angular_velocity_from_moments, lone_pair_moments, rotor_function_from_moments

# isort: split
# --- superionic observables: conductivity, Haven ratio, jump diffusion ---
from .conductivity import FORMAL_CHARGES, ConductivityError, conductivity, haven_ratio, jump_diffusion

__all__ = [
    # transport
    "unwrap", "msd", "diffusion_coefficient", "msd_covariance", "vacf", "vdos", "green_kubo",
    # structure
    "rdf", "van_hove_self", "van_hove_distinct",
    # paddlewheels
    "assign_wannier", "rotor_function", "rotor_correlation", "iodide_dipoles", "dipole_correlation",
    "lone_pair_angular_velocity", "hops", "hop_rate", "residence_times", "residence_time_distribution",
    "cage_correlation", "hop_conditioned_average",
    # friction
    "gle_correlations", "memory_kernel", "memory_kernel_from_correlations", "friction_coefficient",
    # machinery
    "correlate",
    # errors and warnings
    "AnalysisError", "SchemaError", "TransportError", "StructureError", "HopError", "WannierError",
    "GLEInputError", "KernelInstabilityError", "BadFramesWarning",
    # study analyses
    "paddlewheel_mask", "compare_kernels", "lone_pair_rdf", "lone_pair_angle_distribution",
    "BlockError", "ConditioningError", "LonePairError", "ThermostatWarning",
    # electronic moments
    "lone_pair_moments", "rotor_function_from_moments", "lone_pair_angular_velocity_from_moments",
    # superionic observables
    "conductivity", "haven_ratio", "jump_diffusion", "FORMAL_CHARGES", "ConductivityError",
]
