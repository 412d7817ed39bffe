"""Analyses over trajectories in the store's schema: pure functions, xarray in, xarray out.

Every public name here is a contract that checks outside this repository
call. Each is also reachable from the ``.agi`` accessor of a Dataset or
DataArray (``ds.agi.msd("Ag")``).
"""

from . import accessor  # noqa: F401  (registers ds.agi)
from ._schema import SchemaError  # noqa: F401  (re-exported)
from .correlate import correlate  # noqa: F401  (re-exported)

# --- GLE (issue 5) ---
from .gle import (  # noqa: F401
    friction_coefficient,
    gle_correlations,
    memory_kernel,
    memory_kernel_from_correlations,
)
from .hops import (  # noqa: F401
    HopError,
    cage_correlation,
    hop_conditioned_average,
    hop_rate,
    hops,
    residence_time_distribution,
    residence_times,
)
from .structure import StructureError, rdf, van_hove_distinct, van_hove_self  # noqa: F401

# --- transport and structure (issue 3) ---
from .transport import (  # noqa: F401
    TransportError,
    diffusion_coefficient,
    green_kubo,
    msd,
    msd_covariance,
    unwrap,
    vacf,
    vdos,
)

# --- paddlewheels (issue 4) ---
from .wannier import (  # noqa: F401
    WannierError,
    assign_wannier,
    dipole_correlation,
    iodide_dipoles,
    lone_pair_angular_velocity,
    rotor_correlation,
    rotor_function,
)

# isort: split
# --- study analyses: thermostat policy, block errors, conditioned kernels, lone-pair structure ---
from .blocks import BlockError, block_error  # noqa: F401
from .conditioning import ConditioningError, compare_kernels, paddlewheel_mask  # noqa: F401
from .ensemble import ThermostatWarning  # noqa: F401
from .lonepair import LonePairError, lone_pair_angle_distribution, lone_pair_rdf  # noqa: F401
