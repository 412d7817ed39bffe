"""Settings of how :func:`agi_data.md.run_md` streams frames and when it stops a run (frozen, self-validating)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .base import Frame
from .errors import MDError

_STORE_DTYPES = ("float32", "float64")


def _finite_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MDError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class StreamOptions:
    """How frames reach the store.

    ``restart``: continue an existing run (True) or refuse it (False).
    A batch is appended every ``flush_every`` frames or ``flush_seconds``
    seconds, whichever comes first. ``dtype``: storage precision of
    positions, velocities and forces (float64 keeps continuations bit-exact).
    ``progress``: show a progress bar.
    """

    restart: bool = True
    flush_every: int = 1000
    flush_seconds: float = 30.0
    progress: bool = True
    dtype: str = "float64"

    def __post_init__(self):
        if isinstance(self.flush_every, bool) or not isinstance(self.flush_every, (int, np.integer)) \
                or self.flush_every < 1:
            raise MDError(f"flush_every must be an integer ≥ 1 (frames per store batch), got {self.flush_every!r}")
        _finite_positive("flush_seconds", self.flush_seconds)
        if str(self.dtype) not in _STORE_DTYPES:
            raise MDError(f"dtype must be one of {_STORE_DTYPES}, got {self.dtype!r}")


@dataclass(frozen=True)
class BlowUpLimits:
    """When a run is refused or stopped: atoms closer than ``min_distance`` Å at the start; a force above
    ``max_force`` eV/Å or a potential energy ``max_energy_rise`` eV/atom above the first frame's; a kinetic
    temperature, averaged over the last ``temperature_window`` stored frames, above ``max_temperature_factor``
    times the nominal one.

    The temperature limit catches what the other two miss: a model whose dynamics conserve energy but fall
    into a basin it was never trained on (iodides paired, say) turns the potential energy released into heat,
    so an NVE run heats far above its nominal temperature with forces and energies that look sane. The
    window average keeps the limit independent of the cell size: the instantaneous kinetic temperature of N
    atoms fluctuates by T·√(2/(3N)) (41 % for 4 atoms, 14 % for 32), its mean over 20 frames by much less.
    A thermostatted run cannot run away; the limit still applies to it.
    """

    min_distance: float = 1.0
    max_force: float = 50.0
    max_energy_rise: float = 1.0
    max_temperature_factor: float = 2.0
    temperature_window: int = 20

    def __post_init__(self):
        for f in fields(self):
            if f.name == "temperature_window":
                w = self.temperature_window
                if isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1:
                    raise MDError(f"temperature_window must be an integer ≥ 1 (frames), got {w!r}")
            else:
                _finite_positive(f.name, getattr(self, f.name))
        if self.max_temperature_factor <= 1:
            raise MDError(f"max_temperature_factor must be > 1 (a multiple of the nominal temperature), "
                          f"got {self.max_temperature_factor!r}")

    def why(self, fr: Frame, n_atoms: int, e_ref: float | None) -> str | None:
        """Why this frame is a blow-up, or None."""
        if not (np.isfinite(fr.positions).all() and np.isfinite(fr.velocities).all()
                and np.isfinite(fr.forces).all() and math.isfinite(fr.energy)):
            return "non-finite positions, velocities, forces or energy"
        fmax = float(np.sqrt((fr.forces**2).sum(axis=1)).max())
        if fmax > self.max_force:
            return f"a force of {fmax:.3g} eV/Å (limit {self.max_force} eV/Å)"
        if e_ref is not None and (fr.energy - e_ref) / n_atoms > self.max_energy_rise:
            return (f"the potential energy rose by {(fr.energy - e_ref) / n_atoms:.3g} eV/atom since the start "
                    f"(limit {self.max_energy_rise} eV/atom)")
        return None

    def too_hot(self, mean_temperature_K: float, n_frames: int, nominal_K: float) -> str | None:
        """Why a mean kinetic temperature over ``n_frames`` frames is a run-away, or None (fewer frames than
        the window are not judged)."""
        if n_frames < self.temperature_window or mean_temperature_K <= self.max_temperature_factor * nominal_K:
            return None
        return (f"the kinetic temperature, averaged over the last {n_frames} frames, reached "
                f"{mean_temperature_K:.0f} K, {mean_temperature_K / nominal_K:.2f} × the nominal {nominal_K:g} K "
                f"(limit {self.max_temperature_factor:g} ×)")
