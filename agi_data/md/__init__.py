"""Molecular dynamics for agi-data: engines, the classical AgI force field, streaming into the store.

>>> from agi_data import open_store
>>> from agi_data.md import LammpsEngine, MDSettings, run_md
>>> from agi_data.structures import alpha_agi
>>> res = run_md(LammpsEngine(), alpha_agi(5, seed=1), MDSettings(temperature_K=750, n_steps=2000),
...              store=open_store("store/data"), run_id="classical-750K")

Engines: :class:`LammpsEngine` (the rigid-ion Vashishta–Rahman AgI model,
:data:`AGI_SHIMOJO_KOBAYASHI`, through Debian's ``lmp``) and
:class:`AseEngine` (any ASE calculator; ``AseEngine.from_nequip_model`` for a
trained Allegro model). :func:`run_md` validates the input, creates or
continues a run and streams the frames into it.
"""

from . import thermo
from .ase_engine import AseEngine, load_nequip_calculator
from .base import (
    ENSEMBLES,
    EQUILIBRATION_ENSEMBLES,
    Engine,
    Frame,
    MDSettings,
    langevin_seed,
    maxwell_boltzmann,
)
from .engines import build_engine
from .errors import (
    EngineNotFoundError,
    InvalidTemperatureError,
    MDBlowUpError,
    MDError,
    OverlappingAtomsError,
    RestartError,
    SpeciesMismatchError,
)
from .forcefields import AGI_SHIMOJO_KOBAYASHI, RigidIonForceField, get_force_field
from .lammps_engine import LammpsEngine
from .options import BlowUpLimits, StreamOptions
from .streaming import EQUILIBRATION_SUFFIX, RunResult, equilibration_run_id, run_md

__all__ = [
    "ENSEMBLES", "EQUILIBRATION_ENSEMBLES", "Engine", "Frame", "MDSettings", "langevin_seed", "maxwell_boltzmann",
    "MDError", "InvalidTemperatureError", "OverlappingAtomsError", "SpeciesMismatchError", "EngineNotFoundError",
    "MDBlowUpError", "RestartError",
    "AGI_SHIMOJO_KOBAYASHI", "RigidIonForceField", "get_force_field",
    "AseEngine", "load_nequip_calculator", "LammpsEngine", "build_engine", "RunResult", "run_md",
    "StreamOptions", "BlowUpLimits", "thermo", "EQUILIBRATION_SUFFIX", "equilibration_run_id",
]
