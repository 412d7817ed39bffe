"""The trajectory schema checks, kept under this name for code that imports them from here.

They live in :mod:`agi_data.analysis._common` with the other shared helpers.
"""

from ._common import cell_per_frame, require, select_species
from .errors import SchemaError

__all__ = ["SchemaError", "require", "cell_per_frame", "select_species"]
