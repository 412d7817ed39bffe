"""Errors raised by the MD layer: each says what is wrong and how to fix it."""

from __future__ import annotations

from ..structures import OverlappingAtomsError, StructureError  # noqa: F401  (re-exported)


class MDError(ValueError):
    """Base class of every error of :mod:`agi_data.md`."""


class InvalidTemperatureError(MDError):
    """A temperature ≤ 0 K (or not finite) was asked for."""


class SpeciesMismatchError(MDError):
    """The structure has elements that the potential was not made for."""


class EngineNotFoundError(MDError):
    """The MD engine (an executable such as ``lmp``, or a Python package) is not installed."""


class MDBlowUpError(MDError):
    """The dynamics became unstable (energy or force blow-up, lost atoms).

    The frames written before the blow-up stay in the store; ``last_good_frame``
    is the index of the last frame that was kept (−1 when none was).
    """

    def __init__(self, message: str, last_good_frame: int = -1):
        super().__init__(message)
        self.last_good_frame = last_good_frame


class RestartError(MDError):
    """A run cannot be continued (missing velocities, different atoms, …)."""
