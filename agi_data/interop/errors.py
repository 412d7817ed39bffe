"""Errors of the interop layer: each names the problem and the remedy."""

from __future__ import annotations

from ..store.errors import ImportFormatError, StoreValidationError


class InteropError(StoreValidationError):
    """Bad input to an export, an import or a reader over a run: nothing was written."""


class H5MDError(InteropError, ImportFormatError):
    """An H5MD file that violates the H5MD 1.1 specification or that the store cannot hold."""
