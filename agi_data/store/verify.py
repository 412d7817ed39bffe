"""``agi store verify``: every run's content checked, problems reported per run.

For each run: the repository opens and its branch resolves; every recorded
version (snapshot) reads and its arrays agree in shape; every chunk of the
current version decodes, and chunks written with the store's ``crc32c``
codec are checked against their checksum, and every snapshot, manifest and
transaction file against the checksum recorded when it was written (a
flipped bit in any of them is an error here, not a silently different
number). Runs written before checksums were introduced are read in full and
reported as unchecksummed in ``notes`` (not a problem).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zarr

from .run import RunHandle
from .schema import FRAME_VARIABLES, WANNIER_GROUP


@dataclass
class RunReport:
    run_id: str
    versions: int = 0
    chunks_read: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class VerifyReport:
    per_run: dict[str, RunReport] = field(default_factory=dict)

    @property
    def runs(self) -> int:
        return len(self.per_run)

    @property
    def versions(self) -> int:
        return sum(r.versions for r in self.per_run.values())

    @property
    def chunks_read(self) -> int:
        return sum(r.chunks_read for r in self.per_run.values())

    @property
    def problems(self) -> list[str]:
        return [f"{r.run_id}: {p}" for r in self.per_run.values() for p in r.problems]

    @property
    def damaged(self) -> list[str]:
        return [r.run_id for r in self.per_run.values() if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.damaged


def _check_version(root: zarr.Group, where: str, problems: list[str]) -> None:
    """Shapes of one snapshot agree with each other."""
    members = set(root.array_keys())
    if "species" not in members:
        problems.append(f"{where}: no species array")
        return
    n_atoms = root["species"].shape[0]
    lengths = {name: root[name].shape[0] for name in (*FRAME_VARIABLES, "time") if name in members}
    if len(set(lengths.values())) > 1:
        problems.append(f"{where}: frame counts differ between arrays {lengths}")
    for name in ("positions", "velocities", "forces"):
        if name in members and root[name].shape[1:] != (n_atoms, 3):
            problems.append(f"{where}: {name} has shape {root[name].shape}, expected (n, {n_atoms}, 3)")
    if WANNIER_GROUP in root:
        w = root[WANNIER_GROUP]
        frames = w["frame"][:]
        n = lengths.get("positions", 0)
        if frames.size and (frames.min() < 0 or frames.max() >= n):
            problems.append(f"{where}: Wannier frames outside the trajectory (0..{n - 1})")
        if len(np.unique(frames)) != frames.size:
            problems.append(f"{where}: a Wannier frame appears twice")


def _checksummed(array: zarr.Array) -> bool:
    return any(type(c).__name__ == "Crc32cCodec" for c in array.compressors)


def _read_all_chunks(array: zarr.Array, where: str, problems: list[str]) -> int:
    """Read every chunk of an array, block of chunks along the first axis at a time; count them."""
    if array.shape[0] == 0:
        return 0
    step = array.chunks[0]
    count = 0
    for start in range(0, array.shape[0], step):
        try:
            block = array[start:start + step]
        except Exception as err:  # noqa: BLE001 - report any failure to read
            problems.append(f"{where}: chunk at index {start} unreadable or corrupt: {err}")
            continue
        if block.dtype.kind == "f" and not np.all(np.isfinite(block)) and array.basename not in ("spread",):
            problems.append(f"{where}: non-finite values in the block at index {start}")
        count += int(np.prod([-(-s // c) for s, c in zip(block.shape, array.chunks)]))
    return count


def _arrays(root: zarr.Group):
    for name in root.array_keys():
        yield name, root[name]
    if WANNIER_GROUP in root:
        group = root[WANNIER_GROUP]
        for name in group.array_keys():
            yield f"{WANNIER_GROUP}/{name}", group[name]


def verify_run(handle: RunHandle) -> RunReport:
    """Check one run (see the module docstring); never raises for damage, reports it."""
    report = RunReport(handle.run_id)
    problems, notes = handle.location.check_seals(handle.name)
    report.problems += problems
    report.notes += notes
    try:
        snapshots = list(handle.ancestry())
    except Exception as err:  # noqa: BLE001
        report.problems.append(f"repository or branch unreadable: {err}")
        return report
    for snap in snapshots:
        if snap.parent_id is None:
            continue  # Icechunk's empty initial snapshot, before the run was created
        report.versions += 1
        try:
            _check_version(handle.group(snap.id), f"version {snap.id}", report.problems)
        except Exception as err:  # noqa: BLE001
            report.problems.append(f"version {snap.id} unreadable: {err}")
    try:
        root = handle.group()
        arrays = list(_arrays(root))
    except Exception as err:  # noqa: BLE001
        report.problems.append(f"current version unreadable: {err}")
        return report
    unchecked = []
    for name, array in arrays:
        report.chunks_read += _read_all_chunks(array, name, report.problems)
        if not _checksummed(array):
            unchecked.append(name)
    if unchecked:
        report.notes.append(f"written without chunk checksums (read in full, content not checked): {unchecked}")
    return report


def verify_store(store, progress: Callable[[str], None] | None = None) -> VerifyReport:
    """Verify every run of ``store`` (a :class:`~agi_data.store.Store`), damaged ones included."""
    report = VerifyReport()
    for run_id, problem in store.location.entries().items():
        if progress:
            progress(run_id)
        if problem is not None:
            report.per_run[run_id] = RunReport(run_id, problems=[problem])
            continue
        report.per_run[run_id] = verify_run(store.handle(run_id))
    return report
