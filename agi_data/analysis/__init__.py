"""Analyses over trajectories in the store's schema: pure functions, xarray in, xarray out.

Every public name here is a contract that checks outside this repository
call. Each is also reachable from the ``.agi`` accessor of a Dataset or
DataArray (``ds.agi.msd("Ag")``).
"""

from ._schema import SchemaError
from .correlate import correlate

# --- transport and structure (issue 3) ---
from .transport import TransportError, diffusion_coefficient, green_kubo, msd, msd_covariance, unwrap, vacf, vdos  # noqa: E402,F401
from .structure import StructureError, rdf, van_hove_distinct, van_hove_self  # noqa: E402,F401
# --- paddlewheels (issue 4) ---
from .wannier import WannierError, assign_wannier, dipole_correlation, iodide_dipoles, lone_pair_angular_velocity, rotor_correlation, rotor_function  # noqa: E402,F401
from .hops import HopError, cage_correlation, hop_conditioned_average, hop_rate, hops, residence_time_distribution, residence_times  # noqa: E402,F401
# --- GLE (issue 5) ---
from .gle import friction_coefficient, gle_correlations, memory_kernel, memory_kernel_from_correlations  # noqa: E402

from . import accessor  # noqa: E402,F401  (registers ds.agi)
