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
import os
from importlib import resources
from pathlib import Path

import yaml

__all__ = ["ProtocolError", "protocols_dir", "protocol_file", "available_protocols", "load_protocol", "merge"]


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


#: mappings whose keys are free (element symbols, scheduler resources): not checked by strict merges
FREE_KEYS = {"expected_centres", "resources"}


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


def load_protocol(name: str, protocol: str | None = None, overrides: dict | None = None) -> dict:
    """The inputs of protocol ``protocol`` (default: the file's default) of the protocol file ``<name>.yaml``.

    ``overrides`` is merged last and may only use keys that ``default_inputs`` defines
    (values that are ``null`` there accept a mapping). The result carries ``protocol``.
    """
    data = _read(name)
    protocol = protocol or data["default_protocol"]
    if protocol not in data["protocols"]:
        raise ProtocolError(f"unknown protocol {protocol!r} for {name}; available: {sorted(data['protocols'])}")
    chosen = dict(data["protocols"][protocol])
    chosen.pop("description", None)
    inputs = merge(data["default_inputs"], chosen, strict=True, path=protocol)
    if overrides:
        inputs = merge(inputs, overrides, strict=True)
    inputs["protocol"] = protocol
    return inputs
