"""What every MD engine shares: the settings of a run, a frame, the engine interface.

Units: positions Å, velocities Å/ps, forces eV/Å, energies eV, time ps
(settings take the integration time step in fs), temperature K.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace

import numpy as np
from ase import Atoms

from .errors import InvalidTemperatureError, MDError, SpeciesMismatchError

ENSEMBLES = ("langevin", "nose-hoover", "nve")
#: thermostats an equilibration segment may use (it is never analysed, so any NVT one)
EQUILIBRATION_ENSEMBLES = ("langevin", "nose-hoover")


def _positive_finite(name: str, value, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MDError(f"{name} must be a finite number of {what} > 0, got {value!r}")


def _integer(name: str, value, minimum: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise MDError(f"{name} must be an integer ≥ {minimum} ({what}), got {value!r}")


@dataclass(frozen=True)
class MDSettings:
    """One MD run: ``n_steps`` steps of ``timestep_fs`` at ``temperature_K``, a frame every ``stride`` steps.

    ``ensemble``: ``"langevin"`` (NVT, friction 1/``damping_fs``), ``"nose-hoover"``
    (NVT, chain with time constant ``damping_fs``) or ``"nve"`` (velocities drawn
    at ``temperature_K`` from the Maxwell–Boltzmann distribution, then constant
    energy). ``seed`` fixes the initial velocities and the Langevin noise: the
    noise between stored frames f and f+1 is drawn from a generator seeded with
    (seed, f), so a run continued from frame f repeats the frames an
    uninterrupted run would have written.

    Thermostat policy: a Langevin thermostat adds its own friction to every ion,
    so diffusion coefficients, hop rates and memory kernels of a Langevin run are
    thermostat quantities. With ``equilibration_steps`` > 0 the run is two
    segments, each its own store run: an *equilibration* of
    ``equilibration_steps`` steps under ``equilibration_ensemble`` (time constant
    ``equilibration_damping_fs``, default ``damping_fs``) at ``temperature_K``,
    never analysed, then the *production* of ``n_steps`` steps in ``ensemble``
    (``"nve"`` for every run whose transport or friction is analysed), started
    from the equilibration's last positions and velocities
    (:func:`agi_data.md.run_md`).
    """

    temperature_K: float
    n_steps: int
    timestep_fs: float = 2.0
    stride: int = 10
    ensemble: str = "langevin"
    damping_fs: float = 100.0
    seed: int = 0
    equilibration_steps: int = 0
    equilibration_ensemble: str = "langevin"
    equilibration_damping_fs: float | None = None

    def __post_init__(self):
        t = self.temperature_K
        if isinstance(t, bool) or not (isinstance(t, (int, float)) and math.isfinite(t)) or t <= 0:
            raise InvalidTemperatureError(
                f"temperature must be a finite number of kelvin > 0, got {t!r}; "
                "for constant-energy dynamics use ensemble='nve' with the temperature of the initial velocities"
            )
        _positive_finite("timestep_fs", self.timestep_fs, "fs")
        _integer("stride", self.stride, 1, "steps between stored frames")
        _integer("n_steps", self.n_steps, 0, "MD steps of the run")
        if self.n_steps % self.stride:
            raise MDError(f"n_steps ({self.n_steps}) must be a multiple of stride ({self.stride})")
        if self.ensemble not in ENSEMBLES:
            raise MDError(f"unknown ensemble {self.ensemble!r}; choose one of {ENSEMBLES}")
        _positive_finite("damping_fs", self.damping_fs, "fs")
        _integer("seed", self.seed, 0, "initial velocities and Langevin noise")
        _integer("equilibration_steps", self.equilibration_steps, 0, "thermostatted steps before the production")
        if self.equilibration_steps % self.stride:
            raise MDError(f"equilibration_steps ({self.equilibration_steps}) must be a multiple of stride "
                          f"({self.stride})")
        if self.equilibration_ensemble not in EQUILIBRATION_ENSEMBLES:
            raise MDError(f"equilibration_ensemble must be a thermostat, one of {EQUILIBRATION_ENSEMBLES}, "
                          f"got {self.equilibration_ensemble!r}")
        if self.equilibration_damping_fs is not None:
            _positive_finite("equilibration_damping_fs", self.equilibration_damping_fs, "fs")

    @property
    def has_equilibration(self) -> bool:
        return self.equilibration_steps > 0

    def equilibration(self) -> MDSettings:
        """The settings of the equilibration segment (a thermostatted run of ``equilibration_steps``)."""
        damping = self.equilibration_damping_fs or self.damping_fs
        return replace(self, n_steps=self.equilibration_steps, ensemble=self.equilibration_ensemble,
                       damping_fs=damping, equilibration_steps=0, equilibration_damping_fs=None)

    def production(self) -> MDSettings:
        """The settings of the production segment alone (no equilibration)."""
        return replace(self, equilibration_steps=0, equilibration_damping_fs=None)

    @property
    def n_frames(self) -> int:
        """Frames of the complete run, the initial one included."""
        return self.n_steps // self.stride + 1

    @property
    def frame_interval_ps(self) -> float:
        return self.stride * self.timestep_fs * 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Frame:
    """One stored frame; ``step`` is the global MD step (frame index × stride)."""

    step: int
    positions: np.ndarray  # (N, 3) Å
    velocities: np.ndarray  # (N, 3) Å/ps
    forces: np.ndarray  # (N, 3) eV/Å
    energy: float  # potential energy, eV
    cell: np.ndarray  # (3, 3) Å, rows are lattice vectors
    pressure_GPa: float | None = None
    extra: dict = field(default_factory=dict)


def langevin_seed(seed: int, frame: int) -> int:
    """The seed of the Langevin noise between frame ``frame`` and ``frame + 1`` (an int in [1, 9·10⁸])."""
    return 1 + int(np.random.SeedSequence([int(seed), int(frame)]).generate_state(1)[0] % 900_000_000)


class Engine(ABC):
    """An MD engine: integrates from given positions and velocities and yields frames."""

    #: short name recorded in the store (``attrs["engine"]``)
    name: str = "engine"

    @property
    @abstractmethod
    def elements(self) -> tuple[str, ...] | None:
        """Elements the potential knows (None: any)."""

    @abstractmethod
    def describe(self) -> dict:
        """Store attributes: engine, potential, versions, … (JSON-serialisable)."""

    @abstractmethod
    def run(
        self,
        atoms: Atoms,
        velocities: np.ndarray,
        settings: MDSettings,
        *,
        first_frame: int,
        n_frames: int,
        include_initial: bool,
        state: dict | None = None,
    ) -> Iterator[Frame]:
        """Integrate ``n_frames × stride`` steps from ``atoms`` (frame ``first_frame``) and yield frames.

        With ``include_initial`` the starting configuration is yielded first (as
        frame ``first_frame``). ``state``: engine state saved with the last frame
        (e.g. thermostat variables), for an exact continuation.
        """

    def state(self) -> dict:
        """Engine state after the last yielded frame (JSON-serialisable); empty when there is none."""
        return {}

    def check_species(self, symbols) -> None:
        known = self.elements
        if known is None:
            return
        missing = sorted(set(symbols) - set(known))
        if missing:
            raise SpeciesMismatchError(
                f"the potential ({self.describe().get('potential', self.name)}) knows {list(known)}, "
                f"but the structure also has {missing}; use a potential trained for these elements"
            )


def maxwell_boltzmann(atoms: Atoms, temperature_K: float, seed: int) -> np.ndarray:
    """Velocities (Å/ps) drawn at ``temperature_K`` with zero total momentum, reproducible from ``seed``."""
    from ase.md import velocitydistribution as vd

    a = atoms.copy()
    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE ≥ 3.29
        vd.thermalize_momenta(a, temperature_K, exact_temperature=True, rng=rng)
    else:  # pragma: no cover
        vd.MaxwellBoltzmannDistribution(a, temperature_K=temperature_K, rng=rng, force_temp=True)
    vd.Stationary(a)
    return a.get_velocities() * ASE_VELOCITY_TO_A_PER_PS


#: ASE's velocity unit (Å per ASE time unit) in Å/ps
def _ase_velocity_factor() -> float:
    from ase import units

    return 1000.0 * units.fs


ASE_VELOCITY_TO_A_PER_PS = _ase_velocity_factor()
