"""The store's errors: each says what is wrong and, where it can, what to do."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every error raised by :mod:`agi_data.store`."""


class StoreValidationError(StoreError, ValueError):
    """Bad input (shape, dtype, value, name): nothing was written."""


class NotAStoreError(StoreError):
    """A directory exists but is not an agi-data store."""


class RunExistsError(StoreError):
    """``create_run`` with an id that is already taken."""


class RunNotFoundError(StoreError, KeyError):
    """No run with that id."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class RunLockedError(StoreError):
    """Another writer holds the run (one writer per run at a time)."""


class WriterClosedError(StoreError):
    """``append`` on a writer that was closed."""


class ImportFormatError(StoreError, ValueError):
    """An import file is truncated, malformed or of an unknown format."""
