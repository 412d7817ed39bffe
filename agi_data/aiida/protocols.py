"""Protocol files (``agi_data/protocols/*.yaml``, package data) in the aiida-quantumespresso layout.

A protocol file holds ``default_protocol``, ``default_inputs`` and
``protocols: {name: {description, ...overrides of default_inputs}}``;
:func:`load_protocol` merges ``default_inputs`` with the chosen protocol and
with the caller's ``overrides`` (which may only name keys the protocol has,
so a typo is an error, not a silently ignored setting). See
``agi_data/protocols/README.md`` for the files and their keys. The files ship inside the
package (read through :mod:`importlib.resources`), so a non-editable install has them;
``$AGI_WORKFLOWS_DIR`` points at another directory of protocol files instead.
"""

from __future__ import annotations

import copy
import functools
import math
import os
import warnings
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["ProtocolError", "ProtocolMixin", "protocols_dir", "protocol_file", "available_protocols",
           "load_protocol", "merge", "check_values", "scheduler_option_names", "validate_options"]


class ProtocolError(ValueError):
    """A protocol file, protocol name or override is invalid."""


def protocols_dir() -> Path:
    """``$AGI_WORKFLOWS_DIR`` when set, else the package's own ``agi_data/protocols/``."""
    env = os.environ.get("AGI_WORKFLOWS_DIR")
    if env:
        return Path(env)
    return Path(str(resources.files("agi_data") / "protocols"))


def protocol_file(name: str) -> Path:
    path = protocols_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ProtocolError(f"protocol file {path} not found; known protocol files: "
                            f"{sorted(p.stem for p in protocols_dir().glob('*.yaml'))}")
    return path


@functools.lru_cache(maxsize=64)
def _parse(path: Path, mtime_ns: int) -> dict:
    # keyed by the file's mtime, so an edited protocol file is read again
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ProtocolError(f"{path} does not hold a mapping")
    for key in ("default_protocol", "default_inputs", "protocols"):
        if key not in data:
            raise ProtocolError(f"{path} lacks the top-level key {key!r}")
    return data


def _read(name: str) -> dict:
    path = protocol_file(name)
    return copy.deepcopy(_parse(path, path.stat().st_mtime_ns))


def available_protocols(name: str) -> dict[str, str]:
    """``{protocol: description}`` of the protocol file ``<name>.yaml``."""
    return {k: v.get("description", "") for k, v in _read(name)["protocols"].items()}


#: mappings whose keys are free (element symbols, scheduler resources and options): not checked by strict
#: merges (the scheduler options are checked against aiida-core's by :func:`validate_options`)
FREE_KEYS = {"expected_centres", "resources", "options"}

#: keys a protocol once had at its top level, now inside ``options``
LEGACY_OPTION_KEYS = ("resources", "max_wallclock_seconds")


def merge(left: dict, right: dict, *, strict: bool = False, path: str = "") -> dict:
    """Recursive merge, ``right`` wins. With ``strict``, keys of ``right`` missing from ``left`` are an error
    (except inside the free-form mappings :data:`FREE_KEYS`)."""
    out = copy.deepcopy(left)
    free = path.rsplit(".", 1)[-1] in FREE_KEYS
    for key, value in right.items():
        where = f"{path}.{key}" if path else key
        if strict and not free and key not in left:
            raise ProtocolError(f"unknown protocol key {where!r}; known keys here: {sorted(left)}")
        if isinstance(value, dict) and isinstance(left.get(key), dict):
            out[key] = merge(left[key], value, strict=strict, path=where)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ResolvedProtocol(dict):
    """A resolved protocol (a plain ``dict`` when stored); ``params["resources"]`` and
    ``params["max_wallclock_seconds"]`` still read ``params["options"][...]``, with a DeprecationWarning."""

    def __missing__(self, key):
        if key in LEGACY_OPTION_KEYS and key in self.get("options", {}):
            warnings.warn(f"protocol key {key!r} moved into 'options': read params['options'][{key!r}]",
                          DeprecationWarning, stacklevel=2)
            return self["options"][key]
        raise KeyError(key)


def _lift_legacy_options(inputs: dict, where: str) -> dict:
    """Top-level ``resources``/``max_wallclock_seconds`` (the old layout) moved into ``options``, with a warning."""
    legacy = [k for k in LEGACY_OPTION_KEYS if k in inputs]
    if not legacy:
        return inputs
    warnings.warn(f"{where}: top-level {legacy} are deprecated; put them under 'options' "
                  f"(e.g. {{'options': {{'{legacy[0]}': ...}}}})", DeprecationWarning, stacklevel=4)
    inputs = dict(inputs)
    options = dict(inputs.get("options") or {})
    for key in legacy:
        value = inputs.pop(key)
        options[key] = merge(options.get(key) or {}, value) if isinstance(value, dict) else value
    inputs["options"] = options
    return inputs


def load_protocol(name: str, protocol: str | None = None, overrides: dict | None = None) -> dict:
    """The inputs of protocol ``protocol`` (default: the file's default) of the protocol file ``<name>.yaml``.

    ``overrides`` is merged last and may only use keys that ``default_inputs`` defines
    (values that are ``null`` there accept a mapping). The result carries ``protocol``;
    its values are checked (:func:`check_values`) and so are its scheduler ``options``
    (:func:`validate_options`). Top-level ``resources``/``max_wallclock_seconds`` (in a protocol file or
    in ``overrides``) still work, moved into ``options`` with a DeprecationWarning.
    """
    data = _read(name)
    protocol = protocol or data["default_protocol"]
    if not isinstance(protocol, str) or protocol not in data["protocols"]:
        raise ProtocolError(f"unknown protocol {protocol!r} for {name}; available: {sorted(data['protocols'])}")
    defaults = _lift_legacy_options(data["default_inputs"], f"{name}.yaml default_inputs")
    chosen = _lift_legacy_options(dict(data["protocols"][protocol]), f"{name}.yaml protocol {protocol!r}")
    chosen.pop("description", None)
    inputs = merge(defaults, chosen, strict=True, path=protocol)
    if overrides:
        if not isinstance(overrides, dict):
            raise ProtocolError(f"overrides must be a mapping shaped like {name}.yaml's default_inputs, "
                                f"got {type(overrides).__name__}")
        inputs = merge(inputs, _lift_legacy_options(overrides, "overrides"), strict=True)
    check_values(defaults, inputs, name)
    if "options" in inputs:
        inputs["options"] = validate_options(inputs["options"], where=f"{name} protocol options")
    inputs["protocol"] = protocol
    return ResolvedProtocol(inputs)


# ---------------------------------------------------------------- values
#: keys that may be null although their default is not (null switches the check off)
NULLABLE = {"min_gap_eV", "expected_centres"}
#: keys that accept either of two shapes: (type of the default, other accepted type)
ALTERNATIVES = {"kpoints": (str, list)}
#: numeric keys (by name, in any file) and the range they must lie in
POSITIVE = {"ecutwfc", "ecutrho", "conv_thr_per_atom", "electron_maxstep", "max_concurrent", "batch_size",
            "lattice", "supercell", "n_structures", "num_iter", "conv_tol", "assign_radius", "r_max",
            "max_epochs", "learning_rate", "num_layers", "num_scalar_features", "num_tensor_features",
            "mlp_width", "num_bessels", "flush_every", "mpi_ranks", "min_distance", "max_force",
            "max_energy_rise", "max_wallclock_seconds", "num_machines", "num_mpiprocs_per_machine",
            "max_temperature_factor", "temperature_window"}
NON_NEGATIVE = {"n_empty_bands", "rattle", "seed", "l_max", "min_gap_eV", "mlp_depth", "n_frames", "first_frame"}
OPEN_UNIT = {"mixing_beta": (0.0, 1.0, True), "ema_decay": (0.0, 1.0, False), "val": (0.0, 1.0, False),
             "test": (0.0, 1.0, False)}   # (low, high, high included)


def _kind(value) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _check_leaf(default, value, where: str) -> None:
    if value is None:
        if where.rsplit(".", 1)[-1] in NULLABLE:
            return
        raise ProtocolError(f"{where} is null; give {_kind(default)} (default {default!r})")
    alternatives = ALTERNATIVES.get(where.rsplit(".", 1)[-1])
    if alternatives and isinstance(value, alternatives):
        return
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ProtocolError(f"{where} must be {_kind(default)} like the default {default!r}, got {value!r}")
    key = where.rsplit(".", 1)[-1]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if key in POSITIVE and not value > 0:
            raise ProtocolError(f"{where} must be > 0, got {value!r}")
        if key in NON_NEGATIVE and not value >= 0:
            raise ProtocolError(f"{where} must be ≥ 0, got {value!r}")
        if key in OPEN_UNIT:
            low, high, closed = OPEN_UNIT[key]
            if not (low < value < high or (closed and value == high)):
                raise ProtocolError(f"{where} must lie in ({low}, {high}{']' if closed else ')'}, got {value!r}")


def check_values(defaults: dict, values: dict, path: str = "") -> None:
    """Every value of ``values`` has the type of its default in ``defaults`` and lies in its range.

    Type: an integer default takes an integer, a number a finite number, ``true/false`` a bool, a string
    a string (``kpoints`` also a list); null only where null switches a check off (:data:`NULLABLE`).
    Ranges by key name (:data:`POSITIVE`, :data:`NON_NEGATIVE`, :data:`OPEN_UNIT`). Defaults that are
    null and the free mappings (:data:`FREE_KEYS`) are not checked here.
    """
    for key, value in values.items():
        if key not in defaults or key in FREE_KEYS or defaults[key] is None:
            continue
        default, where = defaults[key], f"{path}.{key}" if path else key
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ProtocolError(f"{where} must be a mapping with keys {sorted(default)}, got {value!r}")
            check_values(default, value, where)
        else:
            _check_leaf(default, value, where)


# ---------------------------------------------------------------- scheduler options
#: aiida-core CalcJob options that the WorkChains set themselves (not a protocol's business)
_INTERNAL_OPTIONS = {"parser_name", "input_filename", "output_filename", "scheduler_stdout", "scheduler_stderr",
                     "submit_script_filename", "stash", "unstash", "additional_retrieve_list", "withmpi"}


@functools.lru_cache(maxsize=1)
def scheduler_option_names() -> frozenset[str]:
    """The scheduler options a protocol or a builder's ``options=`` may set: aiida-core's CalcJob
    ``metadata.options`` (``resources``, ``max_wallclock_seconds``, ``account``, ``queue_name``, ``qos``,
    ``custom_scheduler_commands``, ``prepend_text``, ``append_text``, ``max_memory_kb``, …)."""
    from aiida.engine import CalcJob

    return frozenset(CalcJob.spec().inputs["metadata"]["options"]) - _INTERNAL_OPTIONS


_OPTION_TYPES = {"max_wallclock_seconds": int, "max_memory_kb": int, "priority": str, "account": str,
                 "queue_name": str, "qos": str, "custom_scheduler_commands": str, "prepend_text": str,
                 "append_text": str, "mpirun_extra_params": (list, tuple), "environment_variables": dict,
                 "import_sys_environment": bool, "resources": dict}


def validate_options(options: dict | None, *, where: str = "options") -> dict:
    """``options`` checked against aiida-core's scheduler options; null entries dropped; a clear error otherwise."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ProtocolError(f"{where} must be a mapping of scheduler options, got {options!r}")
    known = scheduler_option_names()
    unknown = sorted(set(options) - known)
    if unknown:
        raise ProtocolError(f"unknown scheduler option(s) {unknown} in {where}; known: {sorted(known)}")
    out = {}
    for key, value in options.items():
        if value is None:
            continue
        kind = _OPTION_TYPES.get(key)
        if kind is not None and (not isinstance(value, kind) or isinstance(value, bool) and kind is int):
            raise ProtocolError(f"{where}.{key} must be {getattr(kind, '__name__', 'a list')}, got {value!r}")
        out[key] = copy.deepcopy(value)
    if "max_wallclock_seconds" in out and out["max_wallclock_seconds"] <= 0:
        raise ProtocolError(f"{where}.max_wallclock_seconds must be > 0, got {out['max_wallclock_seconds']}")
    for key, value in out.get("resources", {}).items():
        if key.startswith("num_") and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ProtocolError(f"{where}.resources.{key} must be an integer ≥ 1, got {value!r}")
    return out


# ---------------------------------------------------------------- the aiida-quantumespresso interface
class ProtocolMixin:
    """aiida-quantumespresso's protocol helpers for a WorkChain whose protocols are ``<_protocol_name>.yaml``."""

    _protocol_name: str

    @classmethod
    def get_protocol_filepath(cls) -> Path:
        """The protocol file of this WorkChain (package data)."""
        return protocol_file(cls._protocol_name)

    @classmethod
    def get_default_protocol(cls) -> str:
        return _read(cls._protocol_name)["default_protocol"]

    @classmethod
    def get_available_protocols(cls) -> dict[str, dict]:
        """``{protocol: {"description": ...}}`` as in aiida-quantumespresso."""
        return {k: {"description": v} for k, v in available_protocols(cls._protocol_name).items()}

    @classmethod
    def get_protocol_inputs(cls, protocol: str | None = None, overrides: dict | None = None) -> dict:
        """The resolved inputs of ``protocol`` with ``overrides`` (:func:`load_protocol`)."""
        return load_protocol(cls._protocol_name, protocol, overrides)
