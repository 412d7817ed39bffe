r"""H5MD 1.1 export and import of store runs.

H5MD (de Buyl, Colberg & Höfling, Comput. Phys. Commun. 185, 1546 (2014);
specification 1.1 at https://www.nongnu.org/h5md/h5md.html) is the HDF5
layout for particle trajectories that MDAnalysis, zarrtraj, dynasor, LAMMPS,
ESPResSo and others read and write. A run is written as::

    /h5md                      version = [1, 1]; author (name), creator (name, version)
    /particles/all/
        box                    dimension = 3, boundary = ["periodic"] * 3
        box/edges/{value,step,time}    (n, 3) for an orthorhombic cell, else (n, 3, 3), rows = a, b, c
        position/{value,step,time}     (n, N, 3)  "Angstrom"
        velocity/{value,step,time}     (n, N, 3)  "Angstrom ps-1"        (where the run has velocities)
        force/{value,step,time}        (n, N, 3)  "kJ mol-1 Angstrom-1"  (where the run has forces)
        species                (N,) atomic numbers
    /observables/potential_energy/{value,step,time}   (n,) "eV"  (where the run has energies)
    /parameters/agi_data       attrs: run_id, timestep_ps, attrs (the run's metadata, JSON)

``step`` and ``time`` are stored once, under ``position``, and hard-linked
into every other time-dependent element (the specification allows it):
``step`` counts MD steps (frame index × MD steps per frame where the run
records ``md_timestep_ps``, else the frame index), ``time`` is in ps.

Units and MDAnalysis
--------------------
Unit strings follow the H5MD units module (space-separated factors with
integer exponents). MDAnalysis' ``H5MDReader`` reads the file with
``Universe.empty(n_atoms).load_new(path, format="H5MD")`` (it has no H5MD
topology parser) and converts to its own units; it knows forces only in
kJ/(mol·Å), kJ/(mol·nm), kcal/(mol·Å) and N, not eV/Å, so forces are
written in **kJ mol⁻¹ Å⁻¹** by default (1 eV/Å = 96.485 kJ mol⁻¹ Å⁻¹;
``force_unit="eV Angstrom-1"`` keeps the store's unit for readers that
know it). MDAnalysis holds coordinates in float32: what it reads equals the
store's numbers to float32 precision. Its reader also expects the box as a
time-dependent element, so the box is always written with a
``value``/``step``/``time`` triple — also when the run's cell is constant
(valid H5MD: a constant time series).

Import reads either form of the box (time-dependent group or a fixed
``edges`` dataset), takes the frame interval from ``time`` (an array, or a
scalar time step with an ``offset`` attribute) and converts lengths,
times, velocities, forces and energies from the units in the file to the
store's (Å, ps, Å/ps, eV/Å, eV). A file that breaks the specification
(no ``box``, ``step`` and ``time`` of different lengths, uneven frame
spacing, a unit it does not know) raises :class:`H5MDError` naming the
dataset and the remedy, before any run is created.

Both directions stream ``chunk_frames`` frames at a time, so memory is
bounded by one block whatever the length of the run.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from .. import __version__
from ..elements import UnknownElementError, to_atomic_numbers
from ..store import Store
from ..store.schema import RESERVED_ATTRS
from ._constants import EV_IN_KJ_PER_MOL, KCAL_IN_KJ
from ._frames import iter_blocks, require_frames, store_chunk_frames
from .errors import H5MDError, InteropError

__all__ = ["export_h5md", "import_h5md", "H5MD_UNITS", "FORCE_UNITS"]

#: unit strings this module reads, per quantity, with the factor to the store's unit
H5MD_UNITS: dict[str, dict[str, float]] = {
    "length": {"Angstrom": 1.0, "angstrom": 1.0, "A": 1.0, "Å": 1.0, "nm": 10.0, "pm": 0.01},
    "time": {"ps": 1.0, "fs": 1e-3, "ns": 1e3},
    "velocity": {"Angstrom ps-1": 1.0, "A ps-1": 1.0, "Angstrom fs-1": 1e3, "A fs-1": 1e3, "nm ps-1": 10.0,
                 "m s-1": 1e-2},
    "force": {"eV Angstrom-1": 1.0, "eV A-1": 1.0, "kJ mol-1 Angstrom-1": 1.0 / EV_IN_KJ_PER_MOL,
              "kJ mol-1 A-1": 1.0 / EV_IN_KJ_PER_MOL, "kJ mol-1 nm-1": 0.1 / EV_IN_KJ_PER_MOL,
              "kcal mol-1 Angstrom-1": KCAL_IN_KJ / EV_IN_KJ_PER_MOL,
              "kcal mol-1 A-1": KCAL_IN_KJ / EV_IN_KJ_PER_MOL},
    "energy": {"eV": 1.0, "kJ mol-1": 1.0 / EV_IN_KJ_PER_MOL, "kcal mol-1": KCAL_IN_KJ / EV_IN_KJ_PER_MOL},
}
#: force units export_h5md writes: the MDAnalysis-readable default and the store's own
FORCE_UNITS = ("kJ mol-1 Angstrom-1", "eV Angstrom-1")

H5MD_VERSION = (1, 1)
PARTICLES = "all"
#: run attrs the store sets itself; an import does not copy them from a file
_RESERVED = RESERVED_ATTRS


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise InteropError("H5MD needs h5py: pip install h5py") from None
    return h5py


# ================================================================================ export

def _steps(time_ps: np.ndarray, attrs: Mapping) -> np.ndarray:
    """MD step of each frame: time / md_timestep_ps where the run records it (and it divides the frame interval), else the frame index."""
    md_dt = attrs.get("md_timestep_ps")
    dt = float(attrs["timestep_ps"])
    if md_dt:
        stride = dt / float(md_dt)
        if abs(stride - round(stride)) < 1e-6 and round(stride) >= 1:
            return np.rint(time_ps / float(md_dt)).astype(np.int64)
    return np.arange(time_ps.size, dtype=np.int64)


def _is_orthorhombic(cell) -> bool:
    """Whether every frame's cell is diagonal (reduced chunk by chunk on a Dask-backed cell)."""
    off = cell.where(xr.DataArray(~np.eye(3, dtype=bool), dims=("vec", "xyz")), 0.0)
    return not bool((off != 0).any())


def _element(group, name: str, shape: tuple, dtype, chunk: tuple, unit: str | None, compression):
    """A time-dependent element: group ``name`` with a ``value`` dataset (step/time linked later)."""
    g = group.create_group(name)
    value = g.create_dataset("value", shape=shape, dtype=dtype, chunks=chunk, compression=compression)
    if unit is not None:
        value.attrs["unit"] = unit
    return g


def _write_header(f, run_id: str, attrs: Mapping) -> None:
    h5md = f.create_group("h5md")
    h5md.attrs["version"] = np.array(H5MD_VERSION, dtype=np.int32)
    author = h5md.create_group("author")
    try:
        author.attrs["name"] = str(attrs.get("author") or getpass.getuser())
    except (KeyError, OSError):  # no login name in a container
        author.attrs["name"] = "unknown"
    creator = h5md.create_group("creator")
    creator.attrs["name"] = "agi-data"
    creator.attrs["version"] = __version__
    params = f.create_group("parameters").create_group("agi_data")
    params.attrs["run_id"] = run_id
    params.attrs["timestep_ps"] = float(attrs["timestep_ps"])
    params.attrs["attrs"] = json.dumps({k: v for k, v in attrs.items() if k not in _RESERVED}, default=str)


def export_h5md(store: Store, run_id: str, path: str | os.PathLike, *, version: str | None = None,
                chunk_frames: int | None = None, force_unit: str = FORCE_UNITS[0],
                compression: str | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Write a run as an H5MD 1.1 file; returns the path.

    Parameters
    ----------
    store, run_id, version
        The run (``version``: a snapshot id, default the latest).
    path
        A new file (an existing one is refused). Written beside as
        ``<path>.part`` and renamed when complete.
    chunk_frames
        Frames per HDF5 chunk and per block read from the store (default:
        the run's own chunk length). Memory holds one block.
    force_unit
        ``"kJ mol-1 Angstrom-1"`` (default; MDAnalysis reads it) or
        ``"eV Angstrom-1"`` (the store's unit).
    compression
        HDF5 filter for the per-frame datasets (``None``, ``"gzip"``, ``"lzf"``).
    progress
        Called with the number of frames written after each block.
    """
    h5py = _h5py()
    if force_unit not in FORCE_UNITS:
        raise InteropError(f"force_unit must be one of {FORCE_UNITS}, got {force_unit!r}")
    path = Path(path)
    if path.exists():
        raise InteropError(f"{path} exists; choose a new file name")
    ds = store.trajectory(run_id, version)
    n = require_frames(ds, run_id, "export")
    attrs = dict(ds.attrs)
    block = int(chunk_frames) if chunk_frames is not None else store_chunk_frames(ds)
    if block < 1:
        raise InteropError(f"chunk_frames must be ≥ 1, got {chunk_frames!r}")
    n_atoms = int(ds.sizes["atom"])
    time_ps = np.asarray(ds["time"].values, dtype=np.float64)
    if "cell" not in ds.data_vars:
        raise InteropError(f"run {run_id!r} has no cell: H5MD requires a box")
    ortho = _is_orthorhombic(ds["cell"])
    has = {name: name in ds.data_vars for name in ("velocities", "forces", "energies")}
    dtype = ds["positions"].dtype
    fb = min(block, n)

    tmp = path.with_name(path.name + ".part")
    try:
        with h5py.File(tmp, "w") as f:
            _write_header(f, run_id, attrs)
            part = f.create_group("particles").create_group(PARTICLES)
            box = part.create_group("box")
            box.attrs["dimension"] = np.int32(3)
            box.attrs["boundary"] = np.array([b"periodic"] * 3, dtype="S8")
            edges_shape = (n, 3) if ortho else (n, 3, 3)
            edges = _element(box, "edges", edges_shape, np.float64, (fb, *edges_shape[1:]), "Angstrom", None)
            pos = _element(part, "position", (n, n_atoms, 3), dtype, (fb, n_atoms, 3), "Angstrom", compression)
            pos.create_dataset("step", data=_steps(time_ps, attrs))
            pos.create_dataset("time", data=time_ps).attrs["unit"] = "ps"
            linked = [edges]
            if has["velocities"]:
                linked.append(_element(part, "velocity", (n, n_atoms, 3), dtype, (fb, n_atoms, 3),
                                       "Angstrom ps-1", compression))
            if has["forces"]:
                linked.append(_element(part, "force", (n, n_atoms, 3), dtype, (fb, n_atoms, 3), force_unit,
                                       compression))
            part.create_dataset("species", data=np.asarray(ds["species"].values, dtype=np.int32))
            if has["energies"]:
                linked.append(_element(f.require_group("observables"), "potential_energy", (n,), np.float64,
                                       (fb,), "eV", None))
            for g in linked:  # hard links: one step/time series for every element
                g["step"], g["time"] = pos["step"], pos["time"]
            f_scale = H5MD_UNITS["force"][force_unit]
            for lo, arrays in iter_blocks(ds, block):
                hi = lo + arrays["time"].size
                pos["value"][lo:hi] = arrays["positions"]
                c = arrays["cell"]
                edges["value"][lo:hi] = np.einsum("...ii->...i", c) if ortho else c
                if has["velocities"]:
                    part["velocity/value"][lo:hi] = arrays["velocities"]
                if has["forces"]:
                    part["force/value"][lo:hi] = arrays["forces"] / np.asarray(f_scale, dtype=dtype)
                if has["energies"]:
                    f["observables/potential_energy/value"][lo:hi] = arrays["energies"]
                if progress:
                    progress(hi - lo)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# ================================================================================ import

def _unit(dataset, quantity: str, where: str) -> float:
    """The factor from the ``unit`` attribute of ``dataset`` to the store's unit of ``quantity``."""
    known = H5MD_UNITS[quantity]
    unit = dataset.attrs.get("unit")
    if unit is None:
        raise H5MDError(
            f"{where} has no 'unit' attribute, so its {quantity} unit is unknown; add one "
            f"(h5py: f[{where!r}].attrs['unit'] = 'nm') — one of {sorted(known)}"
        )
    unit = unit.decode() if isinstance(unit, bytes) else str(unit)
    if unit not in known:
        raise H5MDError(f"{where}: unknown {quantity} unit {unit!r}; agi-data reads {sorted(known)}")
    return known[unit]


def _series(elem) -> tuple[np.ndarray, np.ndarray]:
    """``step`` and ``time`` of a time-dependent element as arrays of length n (time in ps)."""
    where = elem.name
    for key in ("value", "step", "time"):
        if key not in elem:
            raise H5MDError(f"{where} is a time-dependent element without its {key!r} dataset (H5MD 1.1 §4.1)")
    n = elem["value"].shape[0]
    step = elem["step"]
    time = elem["time"]
    t_scale = _unit(time, "time", time.name)
    if step.shape == () and time.shape == ():  # fixed interval: scalars with optional offsets
        steps = float(step.attrs.get("offset", 0)) + float(step[()]) * np.arange(n)
        times = (float(time.attrs.get("offset", 0.0)) + float(time[()]) * np.arange(n)) * t_scale
        return steps, times
    if step.shape == () or time.shape == ():
        raise H5MDError(f"{where}: 'step' and 'time' must both be scalars (fixed interval) or both arrays")
    if step.shape != (n,) or time.shape != (n,):
        raise H5MDError(
            f"{where}: mismatched step/time: value has {n} frames, step {step.shape[0]}, time {time.shape[0]} "
            "(each must have one entry per frame)"
        )
    return np.asarray(step[()], dtype=np.float64), np.asarray(time[()], dtype=np.float64) * t_scale


def _frame_interval(steps: np.ndarray, times: np.ndarray, where: str) -> float:
    if times.size < 2:
        raise H5MDError(f"{where} has {times.size} frame: the time step cannot be read from one frame")
    dt = np.diff(times)
    ds = np.diff(steps)
    if np.any(dt <= 0) or np.any(ds <= 0):
        raise H5MDError(f"{where}: step and time must increase from frame to frame")
    if np.ptp(dt) > 1e-6 * abs(dt.mean()):
        raise H5MDError(f"{where}: frames are unevenly spaced in time (intervals {dt.min():g}…{dt.max():g} ps); "
                        "the store needs a constant frame interval")
    if np.ptp(dt / ds) > 1e-6 * abs((dt / ds).mean()):
        raise H5MDError(f"{where}: mismatched step/time: time is not proportional to step")
    return float(dt.mean())


def _particle_group(f, name: str | None):
    if "h5md" not in f:
        raise H5MDError(f"{f.filename} has no /h5md group: not an H5MD file")
    version = tuple(int(v) for v in np.atleast_1d(f["h5md"].attrs.get("version", [0, 0])))
    if not version or version[0] != 1:
        raise H5MDError(f"{f.filename}: H5MD version {version} is not 1.x (agi-data reads H5MD 1.0 and 1.1)")
    groups = sorted(f["particles"]) if "particles" in f else []
    if not groups:
        raise H5MDError(f"{f.filename} has no particle group under /particles")
    if name is None:
        if len(groups) > 1:
            raise H5MDError(f"{f.filename} has particle groups {groups}: pass particles=<one of them>")
        name = groups[0]
    if name not in groups:
        raise H5MDError(f"{f.filename} has no particle group {name!r} (has {groups})")
    return f["particles"][name]


def _box(part, steps: np.ndarray):
    """Cell(s) in Å: (3, 3) for a fixed box, (n, 3, 3) lazily per block otherwise; and the scale."""
    if "box" not in part:
        raise H5MDError(f"{part.name} has no 'box' group: H5MD 1.1 requires one in every particle group")
    box = part["box"]
    dim = int(np.asarray(box.attrs.get("dimension", 0)))
    if dim != 3:
        raise H5MDError(f"{box.name}: dimension {dim}; the store holds 3-dimensional runs only")
    boundary = [b.decode() if isinstance(b, bytes) else str(b) for b in np.atleast_1d(box.attrs.get("boundary", []))]
    if boundary != ["periodic"] * 3:
        raise H5MDError(f"{box.name}: boundary {boundary}; the store holds periodic runs only (all 'periodic')")
    if "edges" not in box:
        raise H5MDError(f"{box.name} has no 'edges': a periodic box needs its edge vectors")
    edges = box["edges"]
    h5py = _h5py()
    if isinstance(edges, h5py.Dataset):
        return _edges_matrix(np.asarray(edges[()], dtype=np.float64) * _unit(edges, "length", edges.name)), None
    e_steps, _ = _series(edges)
    if e_steps.shape != steps.shape or np.any(e_steps != steps):
        raise H5MDError(f"{edges.name} is sampled at other steps than the positions; the store needs a box per frame")
    return None, (edges["value"], _unit(edges["value"], "length", edges["value"].name))


def _edges_matrix(e: np.ndarray) -> np.ndarray:
    """H5MD edges (…, 3) (a rectangular box's diagonal) or (…, 3, 3) (rows = edge vectors) → (…, 3, 3)."""
    if e.shape[-1:] == (3,) and (e.ndim == 1 or e.shape[-2:] != (3, 3)):
        return e[..., None] * np.eye(3)
    return e


def _species(part, species_map, creator: str) -> np.ndarray:
    if "species" not in part:
        raise H5MDError(f"{part.name} has no 'species' dataset: the store needs the element of every atom")
    raw = np.asarray(part["species"][()])
    if raw.ndim != 1:
        raise H5MDError(f"{part.name}/species must be time-independent (one entry per atom), got shape {raw.shape}")
    if species_map is None and creator != "agi-data":
        labels = sorted(set(raw.tolist()))
        raise H5MDError(
            f"H5MD species are integer labels ({labels}) whose elements the file does not name; pass "
            f"species_map={{{labels[0]}: 'Ag', ...}} or species_map='atomic_numbers' when they are atomic numbers"
        )
    try:
        if species_map is None or species_map == "atomic_numbers":
            return to_atomic_numbers(raw.astype(int).tolist())
        return to_atomic_numbers([species_map[int(s)] for s in raw])
    except KeyError as err:
        raise H5MDError(f"species label {err.args[0]} is not in species_map {dict(species_map)}") from None
    except UnknownElementError as err:
        raise H5MDError(f"{part.name}/species: {err}") from None


class _Plan:
    """Everything an import reads, checked before the run is created."""

    def __init__(self, f, particles: str | None, species_map):
        part = _particle_group(f, particles)
        if "position" not in part:
            raise H5MDError(f"{part.name} has no 'position' element: the store needs positions")
        creator = f["h5md/creator"].attrs.get("name", "") if "h5md/creator" in f else ""
        self.creator = creator.decode() if isinstance(creator, bytes) else str(creator)
        self.numbers = _species(part, species_map, self.creator)
        pos = part["position"]
        self.steps, self.times = _series(pos)
        self.dt = _frame_interval(self.steps, self.times, pos.name)
        self.n = pos["value"].shape[0]
        if pos["value"].shape[1:] != (self.numbers.size, 3):
            raise H5MDError(f"{pos.name}/value has shape {pos['value'].shape}; species says {self.numbers.size} atoms")
        self.fixed_cell, self.cell_series = _box(part, self.steps)
        quantities = {"position": "length", "velocity": "velocity", "force": "force"}
        self.values = {}
        for name, quantity in quantities.items():
            if name not in part:
                continue
            elem = part[name]
            steps, _ = _series(elem)
            if elem["value"].shape != pos["value"].shape or np.any(steps != self.steps):
                raise H5MDError(f"{elem.name} is not sampled like the positions (shape {elem['value'].shape}, "
                                "or other steps); the store needs every variable on every frame")
            self.values[name] = (elem["value"], _unit(elem["value"], quantity, elem["value"].name))
        self.energy = None
        obs = f.get("observables")
        if obs is not None and "potential_energy" in obs and "value" in obs["potential_energy"]:
            elem = obs["potential_energy"]
            steps, _ = _series(elem)
            if elem["value"].shape == (self.n,) and np.array_equal(steps, self.steps):
                self.energy = (elem["value"], _unit(elem["value"], "energy", elem["value"].name))
        self.attrs = {}
        if "parameters/agi_data" in f:
            text = f["parameters/agi_data"].attrs.get("attrs", "{}")
            try:
                self.attrs = {k: v for k, v in json.loads(text).items() if k not in _RESERVED}
            except (TypeError, json.JSONDecodeError):
                self.attrs = {}

    def first_cell(self) -> np.ndarray:
        if self.fixed_cell is not None:
            return self.fixed_cell
        value, scale = self.cell_series
        return _edges_matrix(np.asarray(value[0], dtype=np.float64) * scale)

    def block(self, lo: int, hi: int) -> dict[str, np.ndarray]:
        names = {"position": "positions", "velocity": "velocities", "force": "forces"}
        out = {}
        for name, (value, scale) in self.values.items():
            arr = np.asarray(value[lo:hi])
            out[names[name]] = arr if scale == 1.0 else arr * np.asarray(scale, dtype=arr.dtype)
        if self.cell_series is not None:
            value, scale = self.cell_series
            out["cell"] = _edges_matrix(np.asarray(value[lo:hi], dtype=np.float64) * scale)
        if self.energy is not None:
            value, scale = self.energy
            out["energies"] = np.asarray(value[lo:hi], dtype=np.float64) * scale
        return out


def import_h5md(store: Store, path: str | os.PathLike, run_id: str, *, particles: str | None = None,
                species_map: Mapping[int, str] | str | None = None, attrs: dict | None = None,
                chunk_frames: int | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Import an H5MD file into a new run; returns the number of frames.

    The frame interval and time origin come from the file's ``time``
    (``attrs["time_origin_ps"]`` records a non-zero origin); positions,
    velocities, forces, box and ``observables/potential_energy`` are converted
    to the store's units. The whole file is checked before the run is
    created, and a failure part-way removes the run: all or nothing.

    Parameters
    ----------
    particles
        The particle group to read (needed only when the file has several).
    species_map
        Integer species label → element (``{1: "Ag", 2: "I"}``), or
        ``"atomic_numbers"``. Not needed for files written by agi-data.
    attrs
        Metadata recorded on the run (beside ``source_file``/``source_format``
        and the metadata an agi-data export carried).
    chunk_frames
        Frames per append (one transaction each); default 8 store chunks.
    """
    h5py = _h5py()
    path = Path(path)
    if not path.is_file():
        raise H5MDError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise H5MDError(f"cannot open {path} as HDF5: {err}") from None
    with f:
        plan = _Plan(f, particles, species_map)
        meta = {**plan.attrs, "source_file": str(path.resolve()), "source_format": "h5md", **(attrs or {})}
        writer = store.create_run(run_id, plan.numbers, plan.first_cell(), plan.dt, attrs=meta,
                                  time_origin_ps=float(plan.times[0]))
        try:
            block = int(chunk_frames) if chunk_frames else 8 * writer.chunk_frames
            for lo in range(0, plan.n, block):
                hi = min(lo + block, plan.n)
                writer.append(**plan.block(lo, hi))
                if progress:
                    progress(hi - lo)
        except BaseException:
            writer.close()
            store.delete_run(run_id)
            raise
        writer.close()
    return plan.n
