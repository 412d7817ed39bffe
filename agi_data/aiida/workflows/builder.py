"""What every ``get_builder_from_protocol`` shares: input checks at build time, scheduler options, the legacy shim.

The builders take aiida-quantumespresso's shape — what the WorkChain runs on first, then
``protocol=None, overrides=None, options=None`` — and refuse bad input *when the builder is made*
(a :class:`BuilderInputError` naming the problem and the remedy), before anything is stored,
submitted or written: types and ranges of the protocol values, scheduler options, codes whose
executable is gone, structures that are not structures, a store that is not there, frames outside
their run. A relative store path is resolved in the caller's working directory and recorded
absolute (a daemon would otherwise resolve it in its own).

:func:`legacy_shim` keeps the calls of the previous release working (protocol or dataset first,
positionally; ``pw_code=``, ``run_id=``) with a :class:`DeprecationWarning` that says the new call.
"""

from __future__ import annotations

import functools
import numbers
import warnings
from pathlib import Path

from aiida import orm

from ..protocols import load_protocol, merge, validate_options
from .common import WorkflowInputError, calcjob_options, load_family, missing_elements, n_electrons

__all__ = ["BuilderInputError", "resolve_parameters", "resolve_code", "as_structures", "check_pseudos",
           "store_root", "run_source", "calcjob_options", "legacy_shim"]


class BuilderInputError(WorkflowInputError):
    """A builder argument is invalid; nothing was stored, submitted or written."""


# ---------------------------------------------------------------- protocol + options
def resolve_parameters(name: str, protocol, overrides, options) -> dict:
    """The resolved protocol ``name`` with ``overrides``, its ``options`` updated by the builder's ``options``.

    Raises :class:`~agi_data.aiida.protocols.ProtocolError` (a ValueError, as BuilderInputError) on a bad
    protocol name, key, value or option.
    """
    params = load_protocol(name, protocol, overrides)
    if options is not None:
        params["options"] = merge(params.get("options", {}), validate_options(options, where="options="))
    return params


# ---------------------------------------------------------------- codes
def resolve_code(code, default_label: str, what: str):
    """An AiiDA code: the one given (a code node, or its label such as ``pw@localhost``) or ``default_label``.

    A local InstalledCode whose executable is missing is refused here (not after submission).
    """
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from ..setup import MissingCodeError, get_code

    if code is None:
        try:
            code = get_code(default_label)
        except MissingCodeError as err:
            raise BuilderInputError(str(err)) from None
    elif isinstance(code, str):
        try:
            code = orm.load_code(code)
        except (NotExistent, MultipleObjectsError) as err:
            raise BuilderInputError(f"{what}: no AiiDA code {code!r} ({err}); see `verdi code list`, "
                                    "or run `agi setup`") from None
    if not isinstance(code, orm.AbstractCode):
        raise BuilderInputError(f"{what} must be an AiiDA code (or its label), got {type(code).__name__}: {code!r}")
    if isinstance(code, orm.InstalledCode) and code.computer.transport_type == "core.local":
        if not Path(str(code.filepath_executable)).is_file():
            raise BuilderInputError(f"{what}: the executable of code {code.full_label} does not exist: "
                                    f"{code.filepath_executable}; install it or fix the code (`agi setup`)")
    return code


# ---------------------------------------------------------------- structures
def as_structures(structures, key_prefix: str) -> dict[str, orm.StructureData]:
    """``{key: StructureData}`` from one ase.Atoms / StructureData, a list of them or a mapping label → one.

    One structure is a list of one. Every item is checked: a structure, with atoms and a 3-D cell.
    """
    from ase import Atoms

    if isinstance(structures, (Atoms, orm.StructureData)):
        structures = [structures]
    if isinstance(structures, dict):
        items = list(structures.items())
    elif isinstance(structures, (list, tuple)):
        items = [(f"{key_prefix}{i}", s) for i, s in enumerate(structures)]
    else:
        raise BuilderInputError(f"structures must be an ase.Atoms, a StructureData, a list of them or a mapping "
                                f"label -> structure, got {type(structures).__name__}")
    if not items:
        raise BuilderInputError("structures is empty: give at least one structure (or none at all for the "
                                "protocol's own)")
    out = {}
    for key, s in items:
        if not isinstance(key, str) or not key.isidentifier():
            raise BuilderInputError(f"structure label {key!r} must be a name of letters, digits and '_' "
                                    "(not starting with a digit)")
        if isinstance(s, Atoms):
            if len(s) == 0:
                raise BuilderInputError(f"structure {key!r} has no atoms")
            if not s.pbc.all() or abs(s.cell.volume) < 1e-6:
                raise BuilderInputError(f"structure {key!r} needs a periodic 3-D cell (pbc=True and a cell "
                                        f"with volume > 0), got pbc={s.pbc.tolist()}, volume {s.cell.volume:.3g} Å³")
            s = orm.StructureData(ase=s)
        elif not isinstance(s, orm.StructureData):
            raise BuilderInputError(f"structure {key!r} is a {type(s).__name__}, not an ase.Atoms or StructureData")
        elif not s.sites:
            raise BuilderInputError(f"structure {key!r} has no atoms")
        out[key] = s
    return out


def check_pseudos(family_label, structures: dict) -> orm.Str:
    """The family label as a Str, after checking the family exists and covers every structure (even electrons)."""
    if not isinstance(family_label, str) or not family_label:
        raise BuilderInputError(f"pseudo_family must be the label of an aiida-pseudo family, got {family_label!r}")
    try:
        family = load_family(family_label)
    except ValueError:
        raise BuilderInputError(f"no pseudopotential family {family_label!r}: run `agi setup` or "
                                "`aiida-pseudo install ...` (see docs/provenance.md)") from None
    for key, s in structures.items():
        missing = missing_elements(family, s)
        if missing:
            raise BuilderInputError(f"pseudopotential family {family_label!r} has no pseudopotential for "
                                    f"{missing} (structure {key!r})")
        n_el = n_electrons(s, family.get_pseudos(structure=s))
        if round(n_el) % 2:
            raise BuilderInputError(f"structure {key!r} has {n_el:g} valence electrons: fixed occupations need "
                                    "an even number (check its composition)")
    return orm.Str(family_label)


# ---------------------------------------------------------------- the store
def store_root(store, *, must_exist: bool = True) -> Path:
    """The absolute directory of a store (a :class:`~agi_data.store.Store` or a path, relative to the cwd *now*).

    With ``must_exist`` it must be an agi-data store; otherwise it may also be a directory to be created,
    whose parent exists. Nothing is created here.
    """
    from agi_data.store.store import MARKER

    if store is None:
        raise BuilderInputError("store is missing: give the store (a path or agi_data.open_store(...))")
    if isinstance(store, (str, Path)):  # (a Path has a `root` too: test it first)
        if "://" in str(store):
            raise BuilderInputError(f"store {store!r}: only local store directories are supported")
        root = Path(store).expanduser()
    elif hasattr(store, "root") and hasattr(store, "run_ids"):
        root = Path(store.root)
    else:
        raise BuilderInputError(f"store must be a path or a Store, got {type(store).__name__}")
    shown = f"{store!s}" + (f" (resolved in {Path.cwd()})" if not root.is_absolute() else "")
    root = root.resolve()
    if (root / MARKER).is_file():
        return root
    if must_exist:
        raise BuilderInputError(f"no agi-data store at {root} (from {shown}): check the path, or create the "
                                "store first (an MD run or `agi store import` makes one)")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise BuilderInputError(f"{root} (from {shown}) exists and is not an agi-data store: choose a store or "
                                "an empty directory")
    if not root.exists() and not root.parent.is_dir():
        raise BuilderInputError(f"cannot make a store at {root} (from {shown}): {root.parent} does not exist")
    return root


def set_frame_source(new, store, run, frames, structures, prefix: str) -> dict:
    """Put the frames to compute on builder ``new``: a store ``run`` + ``frames`` or ``structures``.

    Returns the checked structures (``{}`` for frames of a store run or when neither was given).
    """
    if run is not None or frames is not None:
        if structures is not None:
            raise BuilderInputError("give either `structures` or `run` + `frames`, not both")
        new.run, new.frames = run_source(store, run, frames)
        return {}
    if structures is None:
        return {}
    checked = as_structures(structures, prefix)
    new.structures = checked
    return checked


def run_source(store, run, frames) -> tuple[orm.Dict, orm.List]:
    """``(run, frames)`` inputs for frames of a store run, its version pinned; frames checked against the run."""
    from agi_data.store import open_store
    from agi_data.store.errors import StoreError

    if isinstance(run, orm.Dict):
        info = run.get_dict()
        store, run = info.get("store_path"), info.get("run_id")
    if not isinstance(run, str):
        raise BuilderInputError(f"run must be a store run id (a string), got {type(run).__name__}: {run!r}")
    root = store_root(store)
    st = open_store(root)
    if run not in st.run_ids():
        known = ", ".join(st.run_ids()[:10]) or "none"
        raise BuilderInputError(f"no run {run!r} in the store at {root} (runs: {known}); see `agi store ls`")
    if frames is None:
        raise BuilderInputError(f"give `frames` (indices into the time axis of run {run!r}) with the run")
    if isinstance(frames, (str, bytes)) or not hasattr(frames, "__iter__"):
        raise BuilderInputError(f"frames must be a list of frame indices, got {frames!r}")
    frames = list(frames)
    bad_type = [f for f in frames if isinstance(f, bool) or not isinstance(f, numbers.Integral)]
    if bad_type:
        raise BuilderInputError(f"frames must be integers (indices into the run's time axis), got {bad_type[:5]}")
    frames = [int(f) for f in frames]
    if not frames:
        raise BuilderInputError(f"frames is empty: give at least one frame of run {run!r}")
    if len(set(frames)) != len(frames):
        raise BuilderInputError(f"frames {frames} repeat an index: each frame once")
    try:
        n_time = st.trajectory(run).sizes["time"]
        version = st.version(run)
    except StoreError as err:
        raise BuilderInputError(f"run {run!r} cannot be read: {err}") from None
    outside = [f for f in frames if not 0 <= f < n_time]
    if outside:
        raise BuilderInputError(f"frames {outside} are outside run {run!r}, which has {n_time} frames (0..{n_time - 1})")
    return (orm.Dict({"store_path": str(root), "run_id": run, "version": version}), orm.List(frames))


# ---------------------------------------------------------------- the previous release's calls
def legacy_shim(translate):
    """Decorate a ``get_builder_from_protocol``: ``translate(cls, args, kwargs)`` turns an old-style call into
    the new one (returning ``(args, kwargs, how)``; ``how`` is None for a call already in the new shape) and
    a DeprecationWarning names the new call."""

    def decorate(func):
        @functools.wraps(func)
        def wrapper(cls, *args, **kwargs):
            args, kwargs, how = translate(cls, args, dict(kwargs))
            if how:
                warnings.warn(f"{cls.__name__}.get_builder_from_protocol: {how} (the old call works for one "
                              "release)", DeprecationWarning, stacklevel=2)
            return func(cls, *args, **kwargs)

        return wrapper

    return decorate


def is_protocol_name(name: str, value) -> bool:
    from ..protocols import available_protocols

    return isinstance(value, str) and value in available_protocols(name)


def rename_kwargs(kwargs: dict, renames: dict[str, str], notes: list[str]) -> None:
    """Old keyword names → new ones (in place), noting each rename for the warning."""
    for old, new in renames.items():
        if old in kwargs:
            if new in kwargs:
                raise TypeError(f"give {new}= or the deprecated {old}=, not both")
            kwargs[new] = kwargs.pop(old)
            notes.append(f"`{old}=` is now `{new}=`")
