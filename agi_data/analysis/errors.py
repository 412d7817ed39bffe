"""The errors of the analyses: one base, one class per area, every message says what to do.

Every error is an :class:`AnalysisError`, itself a :class:`ValueError`, so
``except ValueError`` keeps working, ``except AnalysisError`` catches any bad
input to an analysis, and the area classes let a caller be specific::

    AnalysisError(ValueError)
    ├── SchemaError            the Dataset does not follow the trajectory schema
    │   ├── HopError           hop / cage analysis asked of data that cannot answer it
    │   └── WannierError       Wannier data missing, from another run, or unassignable
    ├── TransportError         MSD / VACF / D arguments out of range
    ├── StructureError         RDF / van Hove arguments out of range
    ├── GLEInputError          input that cannot give a meaningful memory kernel
    └── KernelInstabilityError the Volterra inversion diverged (carries the stable part)
"""

from __future__ import annotations

__all__ = [
    "AnalysisError", "SchemaError", "TransportError", "StructureError", "HopError", "WannierError",
    "GLEInputError", "KernelInstabilityError",
]


class AnalysisError(ValueError):
    """Bad input to an analysis of agi_data.analysis; the message names the problem and the remedy."""


class SchemaError(AnalysisError):
    """A Dataset does not follow the trajectory schema."""


class TransportError(AnalysisError):
    """An argument of a transport analysis is out of range (lags, fit window, ...)."""


class StructureError(AnalysisError):
    """An argument of a structure analysis is out of range (r_max, dr, lags, ...)."""


class HopError(SchemaError):
    """Hop or cage analysis asked of data that cannot answer it."""


class WannierError(SchemaError):
    """Wannier data that cannot be used as asked (missing, inconsistent with the run, unassignable)."""


class GLEInputError(AnalysisError):
    """Input to a GLE analysis that cannot give a meaningful kernel (message says how to fix it)."""


class KernelInstabilityError(AnalysisError):
    """The Volterra inversion diverged.

    Attributes: ``lag_ps`` (first unstable lag), ``index`` (its step),
    ``kernel`` (the DataArray of the stable lags before it).
    """

    def __init__(self, message: str, lag_ps: float, index: int, kernel=None):
        super().__init__(message)
        self.lag_ps = lag_ps
        self.index = index
        self.kernel = kernel
