r"""MDAnalysis over a store run, read lazily: a Reader and a topology registered as format ``AGISTORE``.

The MDAKit pattern: importing this module registers :class:`StoreRunReader`
(a :class:`MDAnalysis.coordinates.base.ReaderBase`) and
:class:`StoreRunParser` (a topology parser) with MDAnalysis, both
recognising a :class:`StoreRun` by its type, so::

    import MDAnalysis as mda
    from agi_data.interop.mdanalysis import StoreRun, universe

    u = mda.Universe(StoreRun("store/data", "agi-750K"))   # topology from the run's species
    u = universe(store, "agi-750K")                          # the same, from an open Store
    u = universe(store, "agi-750K", topology="agi.pdb")      # any topology with the run's atoms

Frames are read from the store chunk by chunk as MDAnalysis asks for them
(one chunk of frames in memory; random access costs one chunk read).
Each frame carries positions, the box (per frame when the run's cell
changes), velocities and forces where the run stores them, ``ts.time`` in
ps and ``ts.data["potential_energy"]`` in eV.

Units: MDAnalysis' base units are Å, ps, Å/ps and kJ/(mol·Å). Positions,
box, velocities and time are the store's numbers; forces are converted
from eV/Å to kJ/(mol·Å) (× 96.485…), since MDAnalysis has no eV/Å unit.
MDAnalysis holds coordinates in float32.

The topology built from the run holds one atom per store atom, in the
store's order: ``names``, ``types`` and ``elements`` (element symbols),
``masses`` (u), one residue and one segment (``SYSTEM``); select with
``u.select_atoms("element Ag")``.

Positions are stored wrapped into the cell; MDAnalysis analyses that need
continuous paths (``EinsteinMSD``) need
``u.trajectory.add_transformations(MDAnalysis.transformations.NoJump())``
first, which unwraps by the same minimum-image steps as
:func:`agi_data.analysis.unwrap`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from MDAnalysis.coordinates.base import ReaderBase
from MDAnalysis.coordinates.timestep import Timestep
from MDAnalysis.core.topology import Topology
from MDAnalysis.core.topologyattrs import (
    Atomids,
    Atomnames,
    Atomtypes,
    Elements,
    Masses,
    Resids,
    Resnums,
    Segids,
)
from MDAnalysis.lib.mdamath import triclinic_box
from MDAnalysis.lib.util import store_init_arguments
from MDAnalysis.topology.base import TopologyReaderBase

from ..elements import mass, symbols
from ..store import Store, open_store
from ._constants import EV_IN_KJ_PER_MOL
from ._frames import BlockCache, require_frames
from .errors import InteropError

__all__ = ["StoreRun", "StoreRunReader", "StoreRunParser", "universe", "FORMAT"]

FORMAT = "AGISTORE"


@dataclass(frozen=True)
class StoreRun:
    """A reference to one run (at one version) of a store: what MDAnalysis opens as ``AGISTORE``.

    ``store`` is a :class:`~agi_data.store.Store` or the path of one (kept as
    a path, so the reference pickles for parallel analyses).
    """

    store: str | os.PathLike | Store
    run_id: str
    version: str | None = None

    def __post_init__(self):
        root = self.store.root if isinstance(self.store, Store) else Path(self.store)
        object.__setattr__(self, "store", str(root))

    def open(self):
        """The run's lazy Dataset (:meth:`Store.trajectory`)."""
        return open_store(self.store).trajectory(self.run_id, self.version)

    def __str__(self) -> str:
        at = f"@{self.version}" if self.version else ""
        return f"{self.store}::{self.run_id}{at}"


def _is_store_run(thing) -> bool:
    return isinstance(thing, StoreRun)


class StoreRunParser(TopologyReaderBase):
    """Topology of a store run from its species: names, types, elements, masses; one residue."""

    format = FORMAT
    _format_hint = staticmethod(_is_store_run)

    def parse(self, **kwargs) -> Topology:
        ds = self.filename.open()
        elements = np.array(symbols(ds["species"].values), dtype=object)
        n = elements.size
        attrs = [
            Atomnames(elements.copy()),
            Atomtypes(elements.copy()),
            Elements(elements.copy()),
            Masses(np.array([mass(e) for e in elements], dtype=np.float64)),
            Atomids(np.arange(1, n + 1)),
            Resids(np.array([1])),
            Resnums(np.array([1])),
            Segids(np.array(["SYSTEM"], dtype=object)),
        ]
        return Topology(n, 1, 1, attrs=attrs)

    def close(self) -> None:
        pass


class StoreRunReader(ReaderBase):
    """Frames of a store run, read chunk by chunk on demand (see the module docstring for units)."""

    format = FORMAT
    _format_hint = staticmethod(_is_store_run)
    units = {"time": "ps", "length": "Angstrom", "velocity": "Angstrom/ps", "force": "kJ/(mol*Angstrom)"}

    @store_init_arguments
    def __init__(self, filename: StoreRun, convert_units: bool = True, **kwargs):
        if not isinstance(filename, StoreRun):
            raise InteropError(f"the {FORMAT} reader opens a StoreRun(store, run_id), got {filename!r}")
        super().__init__(filename, convert_units=convert_units, **kwargs)
        self.run = filename
        ds = filename.open()
        require_frames(ds, filename.run_id, "read")
        self._cache = BlockCache(ds)
        self.n_atoms = int(ds.sizes["atom"])
        self._has_velocities = "velocities" in ds.data_vars
        self._has_forces = "forces" in ds.data_vars
        self._ts_kwargs.setdefault("dt", float(ds.attrs["timestep_ps"]))
        self.ts = Timestep(self.n_atoms, velocities=self._has_velocities, forces=self._has_forces,
                           reader=self, **self._ts_kwargs)
        self._read_frame(0)

    @property
    def n_frames(self) -> int:
        return self._cache.n_frames

    def _read_frame(self, frame: int) -> Timestep:
        arrays = self._cache.frame(frame)
        ts = self.ts
        ts.frame = frame
        ts.positions = arrays["positions"]
        ts.dimensions = triclinic_box(*np.asarray(arrays["cell"], dtype=np.float64))
        if self._has_velocities:
            ts.velocities = arrays["velocities"]
        if self._has_forces:
            ts.forces = arrays["forces"] * EV_IN_KJ_PER_MOL
        ts.time = float(arrays["time"])
        if "energies" in arrays:
            ts.data["potential_energy"] = float(arrays["energies"])
        return ts

    def _read_next_timestep(self, ts=None) -> Timestep:
        frame = self.ts.frame + 1
        if frame >= self.n_frames:
            raise EOFError(f"end of run {self.run.run_id!r}")
        ts = self._read_frame(frame)
        return ts

    def _reopen(self) -> None:
        self.ts.frame = -1

    def close(self) -> None:
        cache = getattr(self, "_cache", None)
        if cache is not None:
            cache.clear()


def universe(store: Store | str | os.PathLike, run_id: str, *, topology=None, version: str | None = None,
             **kwargs):
    """An MDAnalysis ``Universe`` over a store run.

    Parameters
    ----------
    store, run_id, version
        The run (``version``: a snapshot id, default the latest).
    topology
        ``None`` (built from the run's species), or anything
        ``MDAnalysis.Universe`` takes as a topology (a file, a Universe's
        ``_topology``) with the run's atoms in the store's order.
    kwargs
        Passed to ``MDAnalysis.Universe``.

    Raises
    ------
    InteropError
        when the topology's atom count differs from the run's.
    """
    import MDAnalysis as mda

    run = StoreRun(store, run_id, version)
    if topology is None:
        return mda.Universe(run, **kwargs)
    top = topology if isinstance(topology, mda.Universe) else mda.Universe(topology, **kwargs)
    n_run = int(open_store(run.store).attrs(run_id, version)["n_atoms"])
    if len(top.atoms) != n_run:
        raise InteropError(
            f"the topology {topology!s} has {len(top.atoms)} atoms but run {run_id!r} has {n_run}: give a topology "
            "of the run's atoms in the store's order, or omit topology= to build one from the run's species"
        )
    u = mda.Universe(top._topology, run, format=FORMAT, **kwargs)
    return u
