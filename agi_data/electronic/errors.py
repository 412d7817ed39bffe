"""The one error class of the electronic-structure model."""

from __future__ import annotations


class ElectronicModelError(ValueError):
    """A model, its training data or a run it is asked to predict on cannot be used as asked."""
