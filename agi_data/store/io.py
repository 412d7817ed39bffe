"""Import trajectories into the store and export runs for other tools.

Import: extended XYZ, ASE ``.traj`` and LAMMPS text dumps (through ASE's
readers), streamed in batches. A file that turns out truncated or malformed
part-way raises :class:`ImportFormatError` and the half-imported run is
removed: an import writes a whole run or nothing.

Export: extended XYZ (positions, velocities, forces, energies, cell per
frame) and plain Zarr v3 that ``xarray.open_zarr`` reads without agi-data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import ase.io
import ase.units
import numpy as np
import xarray as xr
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..elements import UnknownElementError, to_atomic_numbers
from .errors import ImportFormatError, RunNotFoundError, StoreValidationError
from .store import Store

#: velocity in Å/ps of one ASE velocity unit (Å per ASE time unit)
ASE_VELOCITY_IN_A_PER_PS = 1000.0 * ase.units.fs

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


def _frames(path: Path, fmt: str, type_map: dict[int, str] | None) -> Iterator[Atoms]:
    kwargs = {"units": "metal"} if fmt == "lammps-dump-text" else {}
    for atoms in ase.io.iread(str(path), index=":", format=fmt, **kwargs):
        if type_map is not None:
            types = atoms.arrays.get("type", atoms.numbers)
            velocities = atoms.get_velocities() if atoms.has("momenta") else None
            try:
                atoms.numbers = to_atomic_numbers([type_map[int(t)] for t in types])
            except KeyError as err:
                raise ImportFormatError(f"atom type {err.args[0]} is not in the type map {type_map}") from None
            atoms.set_masses()  # the elements' masses, not those of the placeholder types
            if velocities is not None:
                atoms.set_velocities(velocities)
        yield atoms


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


def import_trajectory(store: Store, path: str | Path, run_id: str, *, timestep_ps: float, fmt: str | None = None,
                      type_map: dict[int, str] | None = None, attrs: dict | None = None, batch: int = 256,
                      progress: Callable[[int], None] | None = None) -> int:
    """Import every frame of a file into a new run; returns the number of frames.

    ``timestep_ps`` is the interval between the file's frames. For LAMMPS
    dumps, ``type_map`` maps atom types to elements (ASE would otherwise read
    type 1 as hydrogen).
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"no such file: {path}")
    fmt = fmt or guess_format(path)
    if fmt == "lammps-dump-text" and type_map is None:
        raise StoreValidationError("a LAMMPS dump needs a type map (e.g. --type-map 1=Ag,2=I)")
    frames = _frames(path, fmt, type_map)
    try:
        first = next(frames)
    except StopIteration:
        raise ImportFormatError(f"{path} holds no frames") from None
    except Exception as err:  # noqa: BLE001 - any reader failure is a format problem
        raise ImportFormatError(f"cannot read {path} as {fmt}: {err}") from None
    meta = {"source_file": str(path.resolve()), "source_format": fmt, **(attrs or {})}
    # staged: the run is invisible until every frame is in, and discarded if anything fails or the
    # process dies (the next create of the same id removes what a killed import left)
    with store.create_run(run_id, first.numbers, first.cell.array, timestep_ps, attrs=meta, staged=True) as writer:
        count = 0
        buffer = [_frame_arrays(first)]
        keys = set(buffer[0])
        index = 1
        while True:
            try:
                atoms = next(frames)
            except StopIteration:
                atoms = None
            except Exception as err:  # noqa: BLE001
                raise ImportFormatError(f"{path}: frame {index} is truncated or malformed: {err}") from None
            if atoms is not None:
                if len(atoms) != len(first) or np.any(atoms.numbers != first.numbers):
                    raise ImportFormatError(f"{path}: frame {index} has different atoms than frame 0")
                arrays = _frame_arrays(atoms)
                if set(arrays) != keys:
                    raise ImportFormatError(f"{path}: frame {index} has {sorted(arrays)}, frame 0 had {sorted(keys)}")
                buffer.append(arrays)
                index += 1
            if buffer and (atoms is None or len(buffer) >= batch):
                stacked = {k: np.stack([b[k] for b in buffer]) for k in keys}
                writer.append(**stacked)
                count += len(buffer)
                if progress:
                    progress(len(buffer))
                buffer = []
            if atoms is None:
                break
        writer.publish()
    return count


def export_extxyz(store: Store, run_id: str, out: str | Path, *, version: str | None = None, block: int = 512,
                  progress: Callable[[int], None] | None = None) -> int:
    """Write a run as extended XYZ (ASE units: velocities as momenta)."""
    ds = store.trajectory(run_id, version)
    out = Path(out)
    if out.exists():
        raise StoreValidationError(f"{out} exists; choose a new file name")
    numbers = ds.species.values
    n = ds.sizes["time"]
    tmp = out.with_name(out.name + ".part")
    with open(tmp, "w") as fh:
        for start in range(0, n, block):
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
                ase.io.write(fh, atoms, format="extxyz")
            if progress:
                progress(part.sizes["time"])
    tmp.rename(out)
    return n


def export_zarr(store: Store, run_id: str, out: str | Path, *, version: str | None = None) -> Path:
    """Write a run (and its Wannier set) as plain Zarr v3: ``xarray.open_zarr(out)``, ``open_zarr(out, group="wannier")``."""
    out = Path(out)
    if out.exists():
        raise StoreValidationError(f"{out} exists; choose a new directory")
    ds = store.trajectory(run_id, version)
    plain = _plain(ds)
    plain.to_zarr(out, mode="w-", zarr_format=3, consolidated=True)
    try:
        ws = store.wannier(run_id, version)
    except RunNotFoundError:
        return out
    _plain(ws).to_zarr(out, group="wannier", mode="a", zarr_format=3, consolidated=True)
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
