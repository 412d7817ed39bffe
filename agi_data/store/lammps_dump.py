"""Reading LAMMPS text dumps (``dump custom``/``dump atom``) for import, exactly and with image flags.

A snapshot is::

    ITEM: TIMESTEP            (optionally preceded by ITEM: UNITS / ITEM: TIME)
    <step>
    ITEM: NUMBER OF ATOMS
    <N>
    ITEM: BOX BOUNDS [xy xz yz] <boundary flags>
    <xlo_bound> <xhi_bound> [xy]
    <ylo_bound> <yhi_bound> [xz]
    <zlo_bound> <zhi_bound> [yz]
    ITEM: ATOMS <columns>
    N lines

Positions come from ``x y z`` (wrapped), ``xu yu zu`` (unwrapped by
LAMMPS) or ``xs ys zs`` / ``xsu ysu zsu`` (scaled). When the dump has image
flags ``ix iy iz`` with wrapped positions, they are unwrapped exactly,

.. math:: \\mathbf r^{\\text{unwrapped}}_i = \\mathbf r_i + n^x_i\\,\\mathbf a + n^y_i\\,\\mathbf b + n^z_i\\,\\mathbf c,

with the cell rows :math:`\\mathbf a, \\mathbf b, \\mathbf c` of that
snapshot, so frames far apart in time keep the true path (the minimum-image
unwrapping of an analysis cannot, once an atom moves more than half a cell
between stored frames). Positions are given relative to the box origin
``(xlo, ylo, zlo)``; the cell is rebuilt from the bounding box and tilts as
in the LAMMPS manual ("Triclinic (non-orthogonal) simulation boxes").

Units: the dump does not say which unit style wrote it (unless it has an
``ITEM: UNITS`` section), so the caller names it; values are converted to
the store's units (Å, Å/ps, eV/Å = LAMMPS ``metal``) with ASE's LAMMPS unit
tables. A dump holds no per-frame energy: none is stored (not 0.0).

Every snapshot is checked as it is read — declared atom count within
bounds, every section complete, every line with its number of columns,
every number parseable, the file ending with a newline — and a violation is
an :class:`~agi_data.store.errors.ImportFormatError` naming the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase.calculators.lammps import convert

from .errors import ImportFormatError, StoreValidationError
from .validate import MAX_ATOMS

#: LAMMPS unit styles ASE can convert from
UNIT_STYLES = ("metal", "real", "si", "cgs", "electron", "micro", "nano")

_POSITION_SETS = {
    ("x", "y", "z"): (False, False), ("xu", "yu", "zu"): (False, True),
    ("xs", "ys", "zs"): (True, False), ("xsu", "ysu", "zsu"): (True, True),
}


@dataclass
class DumpFrame:
    step: int
    types: np.ndarray            # (N,) int, sorted by atom id
    positions: np.ndarray        # (N, 3) Å, relative to the box origin, unwrapped where image flags say
    cell: np.ndarray             # (3, 3) Å, rows a, b, c
    velocities: np.ndarray | None = None   # Å/ps
    forces: np.ndarray | None = None       # eV/Å
    unwrapping: str = ""


def units_style(value: str | None) -> str:
    if value not in UNIT_STYLES:
        raise StoreValidationError(
            f"a LAMMPS dump does not record its units: name the unit style that wrote it "
            f"(--units, one of {list(UNIT_STYLES)}; got {value!r})"
        )
    return value


def box_to_cell(bounds: np.ndarray, tilt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell rows and origin from a dump's bounding box ``(3, 2)`` and tilts ``(xy, xz, yz)``, Å."""
    xy, xz, yz = tilt
    xlo = bounds[0, 0] - min(0.0, xy, xz, xy + xz)
    xhi = bounds[0, 1] - max(0.0, xy, xz, xy + xz)
    ylo = bounds[1, 0] - min(0.0, yz)
    yhi = bounds[1, 1] - max(0.0, yz)
    cell = np.array([[xhi - xlo, 0.0, 0.0], [xy, yhi - ylo, 0.0], [xz, yz, bounds[2, 1] - bounds[2, 0]]])
    return cell, np.array([xlo, ylo, bounds[2, 0]])


class _Lines:
    """Lines of a file with their numbers; a last line without its newline means a truncated file."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, encoding="utf-8", errors="strict")
        self.number = 0

    def next(self, expect: str) -> str | None:
        try:
            line = self._fh.readline()
        except UnicodeDecodeError as err:
            raise ImportFormatError(f"{self.path}: line {self.number + 1} is not text ({err})") from None
        if line == "":
            return None
        self.number += 1
        if not line.endswith("\n"):
            raise ImportFormatError(f"{self.path}: ends inside line {self.number} (no final newline): "
                                    "the file is truncated")
        return line[:-1]

    def need(self, expect: str) -> str:
        line = self.next(expect)
        if line is None:
            raise ImportFormatError(f"{self.path}: ends after line {self.number}, where {expect} was expected "
                                    "(the file is truncated)")
        return line

    def error(self, what: str) -> ImportFormatError:
        return ImportFormatError(f"{self.path}, line {self.number}: {what}")

    def close(self) -> None:
        self._fh.close()


def _int(lines: _Lines, text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise lines.error(f"{what} must be an integer, got {text.strip()!r}") from None


def _floats(lines: _Lines, text: str, n: int, what: str) -> list[float]:
    parts = text.split()
    if len(parts) != n:
        raise lines.error(f"{what} needs {n} numbers, got {len(parts)}: {text.strip()!r}")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise lines.error(f"{what} holds a non-number: {text.strip()!r}") from None
    if not np.all(np.isfinite(values)):
        raise lines.error(f"{what} holds NaN or inf: {text.strip()!r}")
    return values


def _header(lines: _Lines, first: str) -> tuple[int, int, np.ndarray, np.ndarray, list[str]]:
    line = first
    while line.startswith(("ITEM: UNITS", "ITEM: TIME")) and line.strip() != "ITEM: TIMESTEP":
        lines.need("the value of " + line.strip())
        line = lines.need("ITEM: TIMESTEP")
    if line.strip() != "ITEM: TIMESTEP":
        raise lines.error(f"expected 'ITEM: TIMESTEP', got {line.strip()[:60]!r} (a blank or stray line?)")
    step = _int(lines, lines.need("the timestep"), "the timestep")
    if lines.need("ITEM: NUMBER OF ATOMS").strip() != "ITEM: NUMBER OF ATOMS":
        raise lines.error("expected 'ITEM: NUMBER OF ATOMS'")
    n = _int(lines, lines.need("the number of atoms"), "the number of atoms")
    if not 1 <= n <= MAX_ATOMS:
        raise lines.error(f"declares {n} atoms; a run holds 1 to {MAX_ATOMS}")
    box = lines.need("ITEM: BOX BOUNDS")
    if not box.startswith("ITEM: BOX BOUNDS"):
        raise lines.error(f"expected 'ITEM: BOX BOUNDS', got {box.strip()[:60]!r}")
    triclinic = "xy" in box.split()
    rows = [_floats(lines, lines.need("a box bounds line"), 3 if triclinic else 2, "a box bounds line")
            for _ in range(3)]
    bounds = np.array([r[:2] for r in rows])
    tilt = np.array([r[2] for r in rows]) if triclinic else np.zeros(3)
    atoms = lines.need("ITEM: ATOMS")
    if not atoms.startswith("ITEM: ATOMS"):
        raise lines.error(f"expected 'ITEM: ATOMS', got {atoms.strip()[:60]!r}")
    return step, n, bounds, tilt, atoms.split()[2:]


def _columns(lines: _Lines, cols: list[str]) -> tuple[tuple[str, ...], bool, bool]:
    for required in ("id", "type"):
        if required not in cols:
            raise lines.error(f"the dump has no {required!r} column (columns: {cols})")
    for names, (scaled, unwrapped) in _POSITION_SETS.items():
        if all(c in cols for c in names):
            return names, scaled, unwrapped
    raise lines.error(f"the dump has no positions (x y z, xu yu zu, xs ys zs or xsu ysu zsu; columns: {cols})")


def read_dump(path: str | Path, units: str) -> Iterator[DumpFrame]:
    """Snapshots of a LAMMPS text dump, checked and converted to Å, Å/ps, eV/Å (see the module docstring)."""
    units = units_style(units)
    lines = _Lines(Path(path))
    try:
        layout = None
        while True:
            first = lines.next("ITEM: TIMESTEP")
            if first is None:
                return
            step, n, bounds, tilt, cols = _header(lines, first)
            if layout is None:
                layout = (cols, *_columns(lines, cols))
            elif cols != layout[0]:
                raise lines.error(f"the columns changed from {layout[0]} to {cols}")
            data = np.empty((n, len(cols)))
            for i in range(n):
                data[i] = _floats(lines, lines.need(f"atom line {i + 1} of {n}"), len(cols), f"atom line {i + 1}")
            yield _frame(lines, step, bounds, tilt, cols, layout[1:], data, units)
    finally:
        lines.close()


def _frame(lines, step, bounds, tilt, cols, layout, data, units) -> DumpFrame:
    pos_names, scaled, unwrapped = layout
    idx = {c: k for k, c in enumerate(cols)}
    ids = data[:, idx["id"]]
    if len(np.unique(ids)) != len(ids):
        raise lines.error(f"snapshot at step {step} lists an atom id twice")
    d = data[np.argsort(ids, kind="stable")]
    cell, origin = box_to_cell(convert(bounds, "distance", units, "metal"), convert(tilt, "distance", units, "metal"))
    xyz = d[:, [idx[c] for c in pos_names]]
    positions = xyz @ cell if scaled else convert(xyz, "distance", units, "metal") - origin
    images = all(c in idx for c in ("ix", "iy", "iz"))
    if unwrapped:
        how = f"unwrapped by LAMMPS ({' '.join(pos_names)} columns)"
    elif images:
        flags = d[:, [idx["ix"], idx["iy"], idx["iz"]]]
        if not np.array_equal(flags, np.round(flags)):
            raise lines.error(f"image flags at step {step} are not integers")
        positions = positions + flags @ cell
        how = "unwrapped on import by the dump's image flags (r + ix·a + iy·b + iz·c)"
    else:
        how = ""
    frame = DumpFrame(step=step, types=d[:, idx["type"]].astype(np.int64), positions=positions, cell=cell,
                      unwrapping=how)
    if all(c in idx for c in ("vx", "vy", "vz")):
        frame.velocities = convert(d[:, [idx["vx"], idx["vy"], idx["vz"]]], "velocity", units, "metal")
    if all(c in idx for c in ("fx", "fy", "fz")):
        frame.forces = convert(d[:, [idx["fx"], idx["fy"], idx["fz"]]], "force", units, "metal")
    return frame
