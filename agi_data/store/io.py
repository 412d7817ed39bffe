"""Import trajectories into the store and export runs for other tools.

Import: extended XYZ, ASE ``.traj`` and LAMMPS text dumps (through ASE's
readers), streamed in batches. A file that turns out truncated or malformed
part-way raises :class:`ImportFormatError` and the half-imported run is
removed: an import writes a whole run or nothing.

Export: extended XYZ (positions, velocities, forces, energies, cell per
frame) and plain Zarr v3 that ``xarray.open_zarr`` reads without agi-data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import ase.io
import ase.units
import numpy as np
import xarray as xr
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..elements import UnknownElementError, to_atomic_numbers
from ..units import ASE_VELOCITY_IN_A_PER_PS
from . import validate
from .errors import ImportFormatError, RunExistsError, RunNotFoundError, StoreValidationError
from .lammps_dump import read_dump, units_style
from .store import Store


FORMATS = {
    ".xyz": "extxyz", ".extxyz": "extxyz",
    ".traj": "traj",
    ".dump": "lammps-dump-text", ".lammpstrj": "lammps-dump-text",
}


def guess_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ImportFormatError(
            f"cannot tell the format of {path.name} from its extension; give one of "
            f"{sorted(set(FORMATS.values()))}"
        )
    return fmt


def parse_type_map(text: str | None) -> dict[int, str] | None:
    """``"1=Ag,2=I"`` → ``{1: "Ag", 2: "I"}`` (LAMMPS atom types to elements)."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        try:
            out[int(key)] = value.strip()
            to_atomic_numbers([value.strip()])
        except (ValueError, UnknownElementError):
            raise StoreValidationError(f"bad type map entry {item!r}: expected TYPE=ELEMENT, e.g. 1=Ag") from None
    return out


def scan_extxyz(path: Path) -> int:
    """Check the framing of an extended XYZ file before reading it; returns the number of frames.

    Every frame: a count line (an integer from 1 to the store's atom limit), a
    comment line, then exactly that many atom lines with the same number of
    columns. Refused: a blank line between frames (readers stop there and
    would import only the frames before it), a count the file cannot hold,
    and a file that ends inside a line (truncated, perhaps inside a number).
    """
    frames, lineno, pending_blank = 0, 0, 0
    with open(path, "rb") as fh:
        def line() -> bytes | None:
            nonlocal lineno
            raw = fh.readline()
            if not raw:
                return None
            lineno += 1
            if not raw.endswith(b"\n"):
                raise ImportFormatError(f"{path}: ends inside line {lineno} (no final newline): the file is truncated")
            return raw

        while (raw := line()) is not None:
            if not raw.strip():
                pending_blank = pending_blank or lineno
                continue
            if pending_blank:
                raise ImportFormatError(f"{path}: blank line {pending_blank} inside the file (before frame {frames}); "
                                        "remove it: an extended XYZ file has no blank lines between frames")
            try:
                n = int(raw)
            except ValueError:
                raise ImportFormatError(f"{path}, line {lineno}: expected the atom count of frame {frames}, "
                                        f"got {raw[:60].decode(errors='replace').strip()!r}") from None
            if not 1 <= n <= validate.MAX_ATOMS:
                raise ImportFormatError(f"{path}, line {lineno}: frame {frames} declares {n} atoms; "
                                        f"a run holds 1 to {validate.MAX_ATOMS}")
            if line() is None:
                raise ImportFormatError(f"{path}: frame {frames} has no comment line (the file is truncated)")
            width = None
            for i in range(n):
                raw = line()
                if raw is None or not raw.strip():
                    raise ImportFormatError(f"{path}: frame {frames} declares {n} atoms but has {i} atom lines "
                                            f"(line {lineno})")
                cols = len(raw.split())
                if width is not None and cols != width:
                    raise ImportFormatError(f"{path}, line {lineno}: {cols} columns, the frame's other atom lines "
                                            f"have {width}")
                width = cols
            frames += 1
    if frames == 0:
        raise ImportFormatError(f"{path} holds no frames")
    return frames


def _type_numbers(types, type_map: dict[int, str]) -> np.ndarray:
    try:
        return to_atomic_numbers([type_map[int(t)] for t in types])
    except KeyError as err:
        raise ImportFormatError(f"atom type {err.args[0]} is not in the type map {type_map}") from None


def _ase_frames(path: Path, fmt: str) -> Iterator[tuple[np.ndarray, dict]]:
    for atoms in ase.io.iread(str(path), index=":", format=fmt):
        yield atoms.numbers.copy(), _frame_arrays(atoms)


def _dump_frames(path: Path, type_map: dict[int, str], units: str) -> Iterator[tuple[np.ndarray, dict]]:
    for frame in read_dump(path, units):
        arrays = {"positions": frame.positions, "cell": frame.cell}
        if frame.velocities is not None:
            arrays["velocities"] = frame.velocities
        if frame.forces is not None:
            arrays["forces"] = frame.forces
        arrays["unwrapping"] = frame.unwrapping
        yield _type_numbers(frame.types, type_map), arrays


def _frame_arrays(atoms: Atoms) -> dict:
    out = {"positions": atoms.get_positions(), "cell": atoms.cell.array.copy()}
    if atoms.has("momenta"):
        out["velocities"] = atoms.get_velocities() * ASE_VELOCITY_IN_A_PER_PS
    calc = atoms.calc
    if calc is not None:
        if "forces" in calc.results:
            out["forces"] = np.asarray(calc.results["forces"])
        if "energy" in calc.results:
            out["energies"] = float(calc.results["energy"])
    return out


def _source(path: Path, fmt: str, type_map, units) -> Iterator[tuple[np.ndarray, dict]]:
    if fmt == "lammps-dump-text":
        return _dump_frames(path, type_map, units)
    if fmt == "extxyz":
        scan_extxyz(path)
    return _ase_frames(path, fmt)


def check_source(path: Path, fmt: str | None, type_map, units) -> str:
    """What can be checked about an import file without reading it; returns its format."""
    if not path.is_file():
        raise ImportFormatError(f"no such file: {path}" if not path.exists() else f"{path} is not a regular file")
    fmt = fmt or guess_format(path)
    if fmt not in set(FORMATS.values()):
        raise ImportFormatError(f"unknown format {fmt!r}; give one of {sorted(set(FORMATS.values()))}")
    if fmt == "lammps-dump-text":
        if type_map is None:
            raise StoreValidationError("a LAMMPS dump needs a type map (e.g. --type-map 1=Ag,2=I)")
        units_style(units)
    elif units is not None:
        raise StoreValidationError(f"--units applies to LAMMPS dumps only; {fmt} files are read in their own units")
    return fmt


def _checked_request(store: Store, path: Path, run_id: str, timestep_ps, fmt, type_map, units, attrs):
    """Everything about an import that can be checked before reading the file."""
    validate.run_id(run_id)
    validate.timestep(timestep_ps)
    attrs = validate.attrs(attrs)
    if run_id in store:
        raise RunExistsError(f"run {run_id!r} already exists in {store.root}; choose another id or remove it "
                             f"(agi store rm {run_id})")
    return check_source(path, fmt, type_map, units), attrs


def _frames_checked(path: Path, fmt: str, type_map, units) -> Iterator[tuple[int, np.ndarray, dict]]:
    """``(index, numbers, arrays)`` of every frame, each checked against frame 0; reader failures named."""
    frames = _source(path, fmt, type_map, units)
    numbers = keys = None
    index = 0
    while True:
        try:
            frame_numbers, arrays = next(frames)
        except StopIteration:
            break
        except (ImportFormatError, StoreValidationError):
            raise
        except Exception as err:  # noqa: BLE001 - any reader failure is a format problem
            raise ImportFormatError(f"{path}: frame {index} cannot be read as {fmt}: {err}") from None
        if numbers is None:
            numbers, keys = frame_numbers, set(arrays)
        elif len(frame_numbers) != len(numbers) or np.any(frame_numbers != numbers):
            raise ImportFormatError(f"{path}: frame {index} has different atoms than frame 0")
        elif set(arrays) != keys:
            raise ImportFormatError(f"{path}: frame {index} has {sorted(arrays)}, frame 0 had {sorted(keys)}")
        yield index, frame_numbers, arrays
        index += 1
    if numbers is None:
        raise ImportFormatError(f"{path} holds no frames")


def import_trajectory(store: Store, path: str | Path, run_id: str, *, timestep_ps: float, fmt: str | None = None,
                      type_map: dict[int, str] | None = None, units: str | None = None, attrs: dict | None = None,
                      batch: int = 256, progress: Callable[[int], None] | None = None) -> int:
    """Import every frame of a file into a new run; returns the number of frames.

    ``timestep_ps`` is the interval between the file's frames. For LAMMPS
    dumps, ``type_map`` maps atom types to elements (ASE would otherwise read
    type 1 as hydrogen) and ``units`` names the unit style that wrote the
    dump (``metal``, ``real``, …; recorded in the run's attrs).

    The file is read twice: once to check every frame (nothing is written
    when any frame is bad, not even a lock file), then to write. The write
    is one transaction: the run appears only once every frame is in; a
    killed import leaves no visible run (what it left is removed by the next
    import of the same id).
    """
    path = Path(path)
    fmt, attrs = _checked_request(store, path, run_id, timestep_ps, fmt, type_map, units, attrs)
    total = 0
    for index, numbers, arrays in _frames_checked(path, fmt, type_map, units):
        if index == 0:
            first_numbers, first = numbers, arrays
        total += 1
    unwrapping = first.get("unwrapping")
    meta = {"source_file": str(path.resolve()), "source_format": fmt, **attrs}
    if fmt == "lammps-dump-text":
        meta.update(source_units=f"LAMMPS {units} (converted to Å, Å/ps, eV/Å)", positions_wrapped=not unwrapping,
                    unwrapping=unwrapping or "none on import: positions are wrapped into the cell; "
                    "analyses unwrap them by the minimum image between consecutive frames")
    with store.create_run(run_id, first_numbers, first["cell"], timestep_ps, attrs=meta, staged=True) as writer:
        count, buffer = 0, []
        for index, _, arrays in _frames_checked(path, fmt, type_map, units):
            arrays.pop("unwrapping", None)
            buffer.append(arrays)
            if len(buffer) >= batch or index == total - 1:
                writer.append(**{k: np.stack([b[k] for b in buffer]) for k in buffer[0]})
                count += len(buffer)
                if progress:
                    progress(len(buffer))
                buffer = []
        if count != total:
            raise ImportFormatError(f"{path} changed while it was imported ({total} frames, then {count})")
        if unwrapping:
            writer.set_variable_attrs("positions", unwrapped=True)
        writer.publish()
    return count


def export_target(out: str | Path) -> Path:
    """Check where an export goes, before anything is read or written: a new name in an existing, writable directory.

    Refused: a name that exists (a file, a directory, or a symbolic link,
    dangling or not: an export never writes through a link), a missing
    parent directory, a parent directory this process cannot write in.
    """
    out = Path(out).expanduser()
    if os.path.lexists(out):
        kind = "a symbolic link" if out.is_symlink() else ("a directory" if out.is_dir() else "a file")
        raise StoreValidationError(f"{out} exists ({kind}); choose a new name — an export never overwrites")
    parent = out.parent.resolve()
    if not parent.is_dir():
        raise StoreValidationError(f"cannot export to {out}: the directory {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StoreValidationError(f"cannot export to {out}: no permission to write in {parent}")
    return parent / out.name


def _publish_export(tmp: Path, out: Path) -> None:
    """Move a finished export into place; never over something that appeared meanwhile."""
    if os.path.lexists(out):
        raise StoreValidationError(f"{out} appeared while exporting; the export is left at {tmp}")
    os.rename(tmp, out)


def _extxyz_frames(ds: xr.Dataset, block: int) -> Iterator[Atoms]:
    numbers = ds.species.values
    for start in range(0, ds.sizes["time"], block):
        part = ds.isel(time=slice(start, start + block)).compute()
        for i in range(part.sizes["time"]):
            atoms = Atoms(numbers=numbers, positions=part.positions.values[i], cell=part.cell.values[i], pbc=True)
            if "velocities" in part:
                atoms.set_velocities(part.velocities.values[i] / ASE_VELOCITY_IN_A_PER_PS)
            results = {}
            if "forces" in part:
                results["forces"] = part.forces.values[i].astype(np.float64)
            if "energies" in part:
                results["energy"] = float(part.energies.values[i])
            if results:
                atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info["time_ps"] = float(part.time.values[i])
            yield atoms


def export_extxyz(store: Store, run_id: str, out: str | Path, *, version: str | None = None, block: int = 512,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write a run as extended XYZ (ASE units: velocities as momenta).

    Written to a fresh temporary file beside ``out`` (created exclusively:
    never through a symbolic link) and renamed into place when complete.
    """
    out = export_target(out)
    ds = store.trajectory(run_id, version)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            for k, atoms in enumerate(_extxyz_frames(ds, block), 1):
                ase.io.write(fh, atoms, format="extxyz")
                if progress and (k % block == 0 or k == ds.sizes["time"]):
                    progress(block if k % block == 0 else k % block)
        _publish_export(Path(tmp), out)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    return ds.sizes["time"]


def export_zarr(store: Store, run_id: str, out: str | Path, *, version: str | None = None) -> Path:
    """Write a run (and its Wannier set and predicted moments) as plain Zarr v3: ``xarray.open_zarr(out)``,
    ``open_zarr(out, group="wannier")``, ``open_zarr(out, group="electronic")``.

    Written into a fresh temporary directory beside ``out`` and renamed into place when complete.
    """
    out = export_target(out)
    ds = store.trajectory(run_id, version)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent))
    try:
        _plain(ds).to_zarr(tmp, mode="a", zarr_format=3, consolidated=True)
        for group, read in (("wannier", store.wannier), ("electronic", store.electronic)):
            try:
                extra = read(run_id, version)
            except RunNotFoundError:
                continue
            _plain(extra).to_zarr(tmp, group=group, mode="a", zarr_format=3, consolidated=True)
        _publish_export(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _plain(ds: xr.Dataset) -> xr.Dataset:
    """Drop the store's chunk encodings so any Zarr writer lays the data out afresh."""
    ds = ds.copy()
    # fixed-width unicode has no Zarr v3 specification yet; variable-length strings do
    ds = ds.assign_coords({name: ds[name].astype(object) for name in ds.coords if ds[name].dtype.kind == "U"})
    for var in ds.variables.values():
        var.encoding = {}
    ds.attrs = {k: v for k, v in ds.attrs.items() if isinstance(v, (str, int, float, list, dict, bool, type(None)))}
    return ds.unify_chunks() if ds.chunks else ds
