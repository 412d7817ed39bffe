"""One way to name a potential and get its engine: a force-field name → LAMMPS, a model file → ASE/Allegro."""

from __future__ import annotations

from pathlib import Path

from .base import Engine
from .errors import MDError
from .forcefields import FORCE_FIELDS


def build_engine(potential: str | Path, *, mpi_ranks: int = 1, device: str = "cpu",
                 potential_uuid: str | None = None, lammps_executable: str = "lmp") -> Engine:
    """The engine for ``potential``.

    ``potential``: a classical force-field name (``agi-vashishta-rahman-sk``,
    alias ``vashishta-agi``) → :class:`~agi_data.md.lammps_engine.LammpsEngine`;
    a trained Allegro model file (``.nequip.zip``, ``.ckpt`` or ``.nequip.pt2``)
    → :class:`~agi_data.md.ase_engine.AseEngine` with a NequIPCalculator.
    """
    name = str(potential)
    if name in FORCE_FIELDS:
        from .lammps_engine import LammpsEngine, find_lammps

        find_lammps(lammps_executable)  # EngineNotFoundError before anything else happens
        return LammpsEngine(FORCE_FIELDS[name], mpi_ranks=mpi_ranks, executable=lammps_executable)
    path = Path(name)
    if path.suffix in (".zip", ".ckpt", ".pt2") or path.exists():
        from .ase_engine import AseEngine

        engine = AseEngine.from_nequip_model(path, device=device, potential_uuid=potential_uuid)
        return engine
    raise MDError(f"unknown potential {name!r}: give a force-field name ({sorted(FORCE_FIELDS)}) "
                  "or the path of a trained model (.nequip.zip, .ckpt, .nequip.pt2)")
