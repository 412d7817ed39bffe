"""A machine-learned model of the iodide lone pairs on every MD frame.

An E(3)-equivariant network (e3nn) maps each ion's environment to its dipole
(ℓ = 1) and its lone-pair orientation (the ℓ = 3 moment of
:mod:`agi_data.analysis.moments`), trained on DFT Wannier centres, so the
paddlewheel analyses can run at the MD frame rate.

>>> from agi_data.electronic import fit_electronic_model, ElectronicModel
>>> model = fit_electronic_model([(traj, wannier)], species="I", cutoff=6.0, seed=0)  # doctest: +SKIP
>>> moments = model.predict(traj)  # doctest: +SKIP

This package imports torch; :mod:`agi_data.analysis` does not.
"""

from .errors import ElectronicModelError
from .model import ElectronicModel, TrainingSettings, fit_electronic_model

__all__ = ["ElectronicModel", "ElectronicModelError", "TrainingSettings", "fit_electronic_model"]
