"""Input checks for the store. Everything is checked before anything is written.

One function per kind of input; every entry point of the store (API and
CLI) goes through them, so a name, a value or an attribute is refused the
same way wherever it comes in.
"""

from __future__ import annotations

import json
import math
import numbers
import re

import numpy as np

from ..elements import UnknownElementError, to_atomic_numbers
from .errors import StoreValidationError
from .schema import RESERVED_ATTRS

#: a run id: starts with a letter or digit; letters, digits, '.', '_', '-'; at most 128 characters
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: floating dtypes a run stores (the first append fixes which)
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: bounds on a timestep between stored frames, ps
TIMESTEP_RANGE_PS = (1e-9, 1e9)
#: bounds on chunk sizes and on the bytes of one chunk (float64, 3 components)
MAX_CHUNK_EDGE = 1 << 20
MAX_CHUNK_BYTES = 64 << 20
#: most atoms a run may hold, and the largest attrs document
MAX_ATOMS = 100_000_000
MAX_ATTRS_BYTES = 1 << 20


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and RUN_ID_PATTERN.fullmatch(value) is not None and ".." not in value


def run_id(value: object) -> str:
    if not is_run_id(value):
        raise StoreValidationError(
            f"invalid run id {value!r}: use 1-128 characters from letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '/', '..', spaces, newlines or other control characters)"
        )
    return value


def species(value) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise StoreValidationError(f"species must be a sequence of element symbols or atomic numbers, got the string {value!r}")
    try:
        items = list(value)
    except TypeError:
        raise StoreValidationError(f"species must be a sequence of element symbols or atomic numbers, got {value!r}") from None
    if not items:
        raise StoreValidationError("species is empty: a run needs at least one atom")
    if len(items) > MAX_ATOMS:
        raise StoreValidationError(f"species lists {len(items)} atoms; a run holds at most {MAX_ATOMS}")
    if any(isinstance(x, (bool, np.bool_, float, np.floating)) for x in items):
        raise StoreValidationError("species must be element symbols or integer atomic numbers (no booleans or floats)")
    try:
        return to_atomic_numbers(items)
    except UnknownElementError as err:
        raise StoreValidationError(str(err)) from None


def _real_number(name: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise StoreValidationError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    return float(value)


def finite_number(value, name: str) -> float:
    """A finite real number (not a bool), as float."""
    x = _real_number(name, value)
    if not math.isfinite(x):
        raise StoreValidationError(f"{name} must be finite, got {value!r}")
    return x


def timestep(value) -> float:
    dt = _real_number("timestep_ps", value)
    lo, hi = TIMESTEP_RANGE_PS
    if not math.isfinite(dt) or not lo <= dt <= hi:
        raise StoreValidationError(f"timestep_ps must be a finite number of ps in [{lo:g}, {hi:g}], got {value!r}")
    return dt


def chunk_size(name: str, value) -> int | None:
    """A chunk edge: ``None`` (the default) or an integer in [1, MAX_CHUNK_EDGE]."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise StoreValidationError(f"{name} must be an integer number of elements, got {value!r}")
    if not 1 <= int(value) <= MAX_CHUNK_EDGE:
        raise StoreValidationError(f"{name} must be between 1 and {MAX_CHUNK_EDGE}, got {value}")
    return int(value)


def chunk_bytes(chunk_frames: int, chunk_atoms: int) -> None:
    size = chunk_frames * chunk_atoms * 3 * 8
    if size > MAX_CHUNK_BYTES:
        raise StoreValidationError(
            f"chunks of {chunk_frames} frames × {chunk_atoms} atoms hold {size / 2**20:.0f} MiB; "
            f"keep chunk_frames × chunk_atoms × 24 B under {MAX_CHUNK_BYTES >> 20} MiB"
        )


def attrs(value, *, reserved: bool = True) -> dict:
    """Metadata for a run: a dict with string keys, JSON-serialisable, no reserved key, at most 1 MiB."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StoreValidationError(f"attrs must be a dict, got {type(value).__name__}")
    bad_keys = [k for k in value if not isinstance(k, str) or not k]
    if bad_keys:
        raise StoreValidationError(f"attrs keys must be non-empty strings, got {bad_keys[:3]!r}")
    if reserved:
        clash = RESERVED_ATTRS & set(value)
        if clash:
            raise StoreValidationError(f"attrs may not set the store's reserved keys {sorted(clash)}")
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError) as err:
        raise StoreValidationError(f"attrs must be JSON-serialisable (no cycles): {err}") from None
    if len(text) > MAX_ATTRS_BYTES:
        raise StoreValidationError(f"attrs take {len(text)} bytes as JSON; keep them under {MAX_ATTRS_BYTES} "
                                   "(store arrays as arrays, not attributes)")
    return json.loads(text)


def _numeric(name: str, value) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise StoreValidationError(f"{name} is not an array of numbers: {err}") from None
    if arr.dtype.kind not in "fiu":
        raise StoreValidationError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    return arr


def _finite(name: str, arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise StoreValidationError(
            f"{name} contains NaN or inf as {arr.dtype} (first at index {bad}; values beyond the dtype's "
            "range become inf); nothing was written"
        )
    return arr


def cast(name: str, arr: np.ndarray, dtype) -> np.ndarray:
    """``arr`` as ``dtype``, checked finite *after* the cast (1e39 is inf in float32)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(dtype, copy=False)
    return _finite(name, out)


def _float_array(name: str, value, shape: tuple) -> np.ndarray:
    arr = _numeric(name, value)
    if arr.shape != shape:
        raise StoreValidationError(f"{name} must have shape {shape}, got {arr.shape}")
    return cast(name, arr, np.float64)


def cell(value, n_frames: int | None = None) -> np.ndarray:
    """A 3×3 cell (or (n_frames, 3, 3) when ``n_frames`` is given), finite and non-singular, float64."""
    shape = (3, 3) if n_frames is None else (n_frames, 3, 3)
    name = "cell" if n_frames is None else "cell (per frame)"
    arr = _numeric(name, value)
    if arr.shape != shape:
        raise StoreValidationError(f"{name} must have shape {shape} (rows are lattice vectors in Å), got {arr.shape}")
    arr = cast(name, arr, np.float64)
    vol = np.abs(np.linalg.det(arr))
    if np.any(vol < 1e-6):
        raise StoreValidationError(f"{name} is singular (volume {np.min(vol):.3g} Å³): the lattice vectors must be independent")
    return arr


def frame_dtype(name: str, arr: np.ndarray) -> np.dtype:
    """The dtype a first append fixes: float32/float64 kept, integers stored as float64, others refused."""
    if arr.dtype.kind in "iu":
        return np.dtype(np.float64)
    if arr.dtype not in FLOAT_DTYPES:
        raise StoreValidationError(f"{name} has dtype {arr.dtype}; a run stores float32 or float64 (cast it first)")
    return arr.dtype


def frames(name: str, value, n_atoms: int, dtype=None) -> np.ndarray:
    """A (n_frames, n_atoms, 3) array of finite values as ``dtype`` (default: the dtype the array fixes)."""
    arr = _numeric(name, value)
    if arr.ndim != 3 or arr.shape[1:] != (n_atoms, 3) or arr.shape[0] < 1:
        raise StoreValidationError(
            f"{name} must have shape (n_frames, {n_atoms}, 3) with n_frames ≥ 1, got {arr.shape}"
        )
    target = frame_dtype(name, arr) if dtype is None else np.dtype(dtype)
    if dtype is not None and arr.dtype.kind == "f" and arr.dtype not in FLOAT_DTYPES:
        raise StoreValidationError(f"{name} has dtype {arr.dtype}; a run stores float32 or float64 (cast it first)")
    return cast(name, arr, target)


def energies(value, n_frames: int) -> np.ndarray:
    return _float_array("energies", value, (n_frames,))
