"""Input checks for the store. Everything is checked before anything is written."""

from __future__ import annotations

import re

import numpy as np

from ..elements import UnknownElementError, to_atomic_numbers
from .errors import StoreValidationError

#: a run id: starts with a letter or digit; letters, digits, '.', '_', '-'; at most 128 characters
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def run_id(value: object) -> str:
    if not isinstance(value, str) or not RUN_ID_PATTERN.match(value) or ".." in value:
        raise StoreValidationError(
            f"invalid run id {value!r}: use 1-128 characters from letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '/', '..', spaces or control characters)"
        )
    return value


def species(value) -> np.ndarray:
    try:
        items = list(value)
    except TypeError:
        raise StoreValidationError(f"species must be a sequence of element symbols or atomic numbers, got {value!r}") from None
    if not items:
        raise StoreValidationError("species is empty: a run needs at least one atom")
    try:
        return to_atomic_numbers(items)
    except UnknownElementError as err:
        raise StoreValidationError(str(err)) from None


def timestep(value) -> float:
    try:
        dt = float(value)
    except (TypeError, ValueError):
        raise StoreValidationError(f"timestep_ps must be a number, got {value!r}") from None
    if not np.isfinite(dt) or dt <= 0:
        raise StoreValidationError(f"timestep_ps must be a finite number > 0 ps, got {value!r}")
    return dt


def _float_array(name: str, value, shape: tuple) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype.kind == "b":
        raise StoreValidationError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if arr.shape != shape:
        raise StoreValidationError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise StoreValidationError(f"{name} contains NaN or inf (first at index {bad}); nothing was written")
    return arr


def cell(value, n_frames: int | None = None) -> np.ndarray:
    """A 3×3 cell (or (n_frames, 3, 3) when ``n_frames`` is given), finite and non-singular."""
    shape = (3, 3) if n_frames is None else (n_frames, 3, 3)
    name = "cell" if n_frames is None else "cell (per frame)"
    arr = np.asarray(value)
    if arr.shape != shape:
        raise StoreValidationError(f"{name} must have shape {shape} (rows are lattice vectors in Å), got {arr.shape}")
    arr = _float_array(name, arr, shape).astype(np.float64)
    vol = np.abs(np.linalg.det(arr))
    if np.any(vol < 1e-6):
        raise StoreValidationError(f"{name} is singular (volume {np.min(vol):.3g} Å³): the lattice vectors must be independent")
    return arr


def frames(name: str, value, n_atoms: int) -> np.ndarray:
    """A (n_frames, n_atoms, 3) float array of finite values."""
    arr = np.asarray(value)
    if arr.ndim != 3 or arr.shape[1:] != (n_atoms, 3) or arr.shape[0] < 1:
        raise StoreValidationError(
            f"{name} must have shape (n_frames, {n_atoms}, 3) with n_frames ≥ 1, got {arr.shape}"
        )
    arr = _float_array(name, arr, arr.shape)
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    return arr


def energies(value, n_frames: int) -> np.ndarray:
    return _float_array("energies", value, (n_frames,)).astype(np.float64)
