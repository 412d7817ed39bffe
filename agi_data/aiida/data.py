"""AiiDA data types of agi-data.

:class:`ReferenceDataset` (entry point ``agi.reference_set``) holds a set of
DFT reference structures with their energies, forces and (optionally)
stresses, in ASE units:

============  ================================  ===========
array         shape                             unit
============  ================================  ===========
numbers       (total_atoms,)  atomic numbers    —
positions     (total_atoms, 3)                  Å
forces        (total_atoms, 3)                  eV/Å
n_atoms       (n_structures,)                   —
cells         (n_structures, 3, 3) rows = a,b,c Å
pbc           (n_structures, 3)                 —
energies      (n_structures,)                   eV
stress        (n_structures, 3, 3), optional    eV/Å³ (ASE sign: −pressure)
============  ================================  ===========

Structures of different sizes are concatenated along the atom axis; the
offsets follow from ``n_atoms``. The stress convention is ASE's
(``atoms.get_stress()``): σ = (1/V) ∂E/∂ε, negative under compression.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from aiida.orm import ArrayData

__all__ = ["ReferenceDataset", "ReferenceDataError", "WannierSet"]

UNITS = {"energies": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "positions": "Å", "cells": "Å"}


class ReferenceDataError(ValueError):
    """A structure lacks the energy or forces a reference set needs, or the arrays disagree."""


def _label(atoms, i: int) -> str:
    return f"structure {i} ({atoms.get_chemical_formula()})"


def _results(atoms, i: int) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Energy (eV), forces (eV/Å) and stress (3×3, eV/Å³ or None) of one Atoms.

    Looked up in ``atoms.calc.results`` (a SinglePointCalculator, or any
    calculator that has already computed them), then in ``atoms.info``
    (``energy``/``REF_energy``, ``stress``/``REF_stress``) and
    ``atoms.arrays`` (``forces``/``REF_forces``) — the extxyz conventions.
    """
    results = dict(getattr(atoms.calc, "results", None) or {})
    energy = results.get("energy", results.get("free_energy"))
    forces = results.get("forces")
    stress = results.get("stress")
    for key in ("energy", "REF_energy", "free_energy"):
        if energy is None and key in atoms.info:
            energy = atoms.info[key]
    for key in ("forces", "REF_forces"):
        if forces is None and key in atoms.arrays:
            forces = atoms.arrays[key]
    for key in ("stress", "REF_stress"):
        if stress is None and key in atoms.info:
            stress = atoms.info[key]
    if energy is None:
        raise ReferenceDataError(
            f"{_label(atoms, i)} has no energy: attach a SinglePointCalculator(atoms, energy=..., forces=...) "
            "or set atoms.info['energy'] (eV)"
        )
    if forces is None:
        raise ReferenceDataError(
            f"{_label(atoms, i)} has no forces: attach a SinglePointCalculator(atoms, energy=..., forces=...) "
            "or set atoms.arrays['forces'] (eV/Å)"
        )
    forces = np.asarray(forces, dtype=float)
    if forces.shape != (len(atoms), 3):
        raise ReferenceDataError(f"{_label(atoms, i)}: forces have shape {forces.shape}, expected ({len(atoms)}, 3)")
    if stress is not None:
        stress = np.asarray(stress, dtype=float)
        if stress.shape == (6,):
            from ase.stress import voigt_6_to_full_3x3_stress

            stress = voigt_6_to_full_3x3_stress(stress)
        if stress.shape != (3, 3):
            raise ReferenceDataError(f"{_label(atoms, i)}: stress has shape {stress.shape}, expected (6,) or (3, 3)")
    return float(energy), forces, stress


class ReferenceDataset(ArrayData):
    """DFT reference structures with energies (eV), forces (eV/Å) and stresses (eV/Å³).

    Build one from ASE structures with :meth:`from_atoms`, get them back with
    :meth:`to_atoms`, write them for training with :meth:`write_extxyz`.
    """

    @classmethod
    def from_atoms(cls, structures: Iterable, *, labels: Sequence[str] | None = None) -> ReferenceDataset:
        """A reference set from ASE ``Atoms`` that carry energy, forces and optionally stress.

        Parameters
        ----------
        structures
            ``ase.Atoms`` with results in ``atoms.calc`` (SinglePointCalculator)
            or in ``atoms.info['energy']`` / ``atoms.arrays['forces']`` /
            ``atoms.info['stress']`` (Voigt 6 or 3×3, ASE sign).
        labels
            optional one string per structure (e.g. ``"run:frame"``).

        Raises
        ------
        ReferenceDataError
            when the list is empty or a structure lacks energy or forces. Stress is
            stored only when every structure has it.
        """
        structures = list(structures)
        if not structures:
            raise ReferenceDataError("a reference set needs at least one structure; got an empty list")
        if labels is not None and len(labels) != len(structures):
            raise ReferenceDataError(f"{len(labels)} labels for {len(structures)} structures")
        energies, forces, stresses = [], [], []
        for i, atoms in enumerate(structures):
            e, f, s = _results(atoms, i)
            energies.append(e)
            forces.append(f)
            stresses.append(s)
        node = cls()
        node.set_array("numbers", np.concatenate([a.numbers for a in structures]).astype(np.int64))
        node.set_array("positions", np.concatenate([a.positions for a in structures]).astype(float))
        node.set_array("forces", np.concatenate(forces))
        node.set_array("n_atoms", np.array([len(a) for a in structures], dtype=np.int64))
        node.set_array("cells", np.stack([a.cell.array for a in structures]).astype(float))
        node.set_array("pbc", np.stack([a.pbc for a in structures]).astype(bool))
        node.set_array("energies", np.array(energies, dtype=float))
        if all(s is not None for s in stresses):
            node.set_array("stress", np.stack(stresses))
        node.base.attributes.set("units", UNITS)
        node.base.attributes.set("n_structures", len(structures))
        node.base.attributes.set("formulas", sorted({a.get_chemical_formula() for a in structures}))
        if labels is not None:
            node.base.attributes.set("labels", [str(x) for x in labels])
        return node

    # --- read access -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.get_shape("energies")[0])

    @property
    def numbers(self) -> np.ndarray:
        """Atomic numbers of every atom of every structure, concatenated: (total_atoms,)."""
        return self.get_array("numbers")

    @property
    def species(self) -> np.ndarray:
        """The distinct atomic numbers in the set, sorted."""
        return np.unique(self.numbers)

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of atoms of each structure: (n_structures,)."""
        return self.get_array("n_atoms")

    @property
    def energies(self) -> np.ndarray:
        """Total energies, eV: (n_structures,)."""
        return self.get_array("energies")

    @property
    def forces(self) -> np.ndarray:
        """Forces of every atom, concatenated, eV/Å: (total_atoms, 3)."""
        return self.get_array("forces")

    @property
    def has_stress(self) -> bool:
        return "stress" in self.get_arraynames()

    @property
    def labels(self) -> list[str] | None:
        return self.base.attributes.get("labels", None)

    def to_atoms(self) -> list:
        """The structures as ``ase.Atoms`` with a SinglePointCalculator holding energy, forces (and stress)."""
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        n_atoms = self.n_atoms
        offsets = np.concatenate([[0], np.cumsum(n_atoms)])
        numbers, positions, forces = self.numbers, self.get_array("positions"), self.forces
        cells, pbc, energies = self.get_array("cells"), self.get_array("pbc"), self.energies
        stress = self.get_array("stress") if self.has_stress else None
        labels = self.labels
        out = []
        for i in range(len(n_atoms)):
            sl = slice(offsets[i], offsets[i + 1])
            atoms = Atoms(numbers=numbers[sl], positions=positions[sl], cell=cells[i], pbc=pbc[i])
            results = {"energy": float(energies[i]), "forces": forces[sl].copy()}
            if stress is not None:
                results["stress"] = stress[i].copy()
            atoms.calc = SinglePointCalculator(atoms, **results)
            if labels is not None:
                atoms.info["label"] = labels[i]
            out.append(atoms)
        return out

    # --- export (``node.export(path, fileformat=...)``, ``verdi data agi.reference_set export``) ---------
    _export_format_replacements = {"xyz": "extxyz"}

    def _prepare_extxyz(self, main_file_name: str = "", **kwargs) -> tuple[bytes, dict]:
        """The set as extended XYZ (energy, forces, stress in ASE units): ``(file content, {})``."""
        return _extxyz_bytes(self.to_atoms()), {}

    def write_extxyz(self, path: str | Path) -> Path:
        """Write the set as extended XYZ (energy, forces, stress in ASE units) for training. Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self._exportcontent("extxyz")[0])
        return path


def _extxyz_bytes(frames: list) -> bytes:
    """ASE Atoms → extended XYZ text, UTF-8."""
    import io

    from ase.io import write

    buffer = io.StringIO()
    write(buffer, frames, format="extxyz")
    return buffer.getvalue().encode("utf-8")


class WannierSet(ArrayData):
    """Wannier centres of a batch of frames (entry point ``agi.wannier_set``): one node per batch, never per frame.

    Arrays: ``frames`` (n_frames,) trajectory indices, ``centres`` (n_frames, n_wannier, 3) Å,
    ``spreads`` (n_frames, n_wannier) Å², ``owner`` (n_frames, n_wannier) index of the ion
    within the assignment radius of each centre (−1: none). Attributes: ``run_id``,
    ``store_path`` and ``store_version`` (the version :meth:`Store.add_wannier` returned)
    when the batch was written to a store; ``failures`` {frame: exit code and message}.
    """

    @classmethod
    def from_frames(cls, frames, centres, spreads, owner) -> WannierSet:
        frames = np.asarray(frames, dtype=np.int64)
        centres = np.asarray(centres, dtype=float)
        if centres.ndim != 3 or centres.shape[0] != len(frames) or centres.shape[2] != 3:
            raise ReferenceDataError(f"centres must be (n_frames={len(frames)}, n_wannier, 3), got {centres.shape}")
        node = cls()
        node.set_array("frames", frames)
        node.set_array("centres", centres)
        node.set_array("spreads", np.asarray(spreads, dtype=float).reshape(centres.shape[:2]))
        node.set_array("owner", np.asarray(owner, dtype=np.int64).reshape(centres.shape[:2]))
        node.base.attributes.set("units", {"centres": "Å", "spreads": "Å^2"})
        return node

    def __len__(self) -> int:
        return int(self.get_shape("frames")[0]) if "frames" in self.get_arraynames() else 0

    @property
    def frames(self) -> np.ndarray:
        return self.get_array("frames")

    @property
    def centres(self) -> np.ndarray:
        return self.get_array("centres")

    @property
    def spreads(self) -> np.ndarray:
        return self.get_array("spreads")

    @property
    def owner(self) -> np.ndarray:
        return self.get_array("owner")

    # --- export (``node.export(path, fileformat=...)``, ``verdi data agi.wannier_set export``) -----------
    _export_format_replacements = {"xyz": "extxyz"}

    def to_atoms(self) -> list:
        """One ``ase.Atoms`` of pseudo-atoms ``X`` at the centres (Å) per frame; arrays ``spread`` (Å²) and
        ``owner``; ``info["frame"]`` the trajectory index. No cell: a batch records centres, not the box."""
        from ase import Atoms

        out = []
        for i, frame in enumerate(self.frames):
            a = Atoms(symbols=["X"] * self.centres.shape[1], positions=self.centres[i])
            a.new_array("spread", self.spreads[i].astype(float))
            a.new_array("owner", self.owner[i].astype(np.int64))
            a.info["frame"] = int(frame)
            out.append(a)
        return out

    def _prepare_extxyz(self, main_file_name: str = "", **kwargs) -> tuple[bytes, dict]:
        """The centres as extended XYZ, one frame per batch frame: ``(file content, {})``."""
        return _extxyz_bytes(self.to_atoms()), {}
