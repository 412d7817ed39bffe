"""``agi store verify``: every chunk readable, every recorded version consistent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import zarr

from .store import FRAME_VARIABLES, WANNIER_GROUP, Store


@dataclass
class VerifyReport:
    runs: int = 0
    versions: int = 0
    chunks_read: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


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
            problems.append(f"{where}: chunk at index {start} unreadable: {err}")
            continue
        if block.dtype.kind == "f" and not np.all(np.isfinite(block)) and array.basename not in ("spread",):
            problems.append(f"{where}: non-finite values in the block at index {start}")
        count += int(np.prod([-(-s // c) for s, c in zip(block.shape, array.chunks)]))
    return count


def verify_store(store: Store, progress: Callable[[str], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    for run_id in store.run_ids():
        report.runs += 1
        if progress:
            progress(run_id)
        try:
            repo = store.repository(run_id)
            snapshots = list(repo.ancestry(branch="main"))
        except Exception as err:  # noqa: BLE001
            report.problems.append(f"{run_id}: repository unreadable: {err}")
            continue
        for snap in snapshots:
            if snap.parent_id is None:
                continue  # Icechunk's empty initial snapshot, before the run was created
            report.versions += 1
            try:
                root = zarr.open_group(repo.readonly_session(snapshot_id=snap.id).store, mode="r")
                _check_version(root, f"{run_id}@{snap.id}", report.problems)
            except Exception as err:  # noqa: BLE001
                report.problems.append(f"{run_id}@{snap.id}: unreadable: {err}")
        root = zarr.open_group(repo.readonly_session(branch="main").store, mode="r")
        for name in root.array_keys():
            report.chunks_read += _read_all_chunks(root[name], f"{run_id}/{name}", report.problems)
        if WANNIER_GROUP in root:
            group = root[WANNIER_GROUP]
            for name in group.array_keys():
                report.chunks_read += _read_all_chunks(group[name], f"{run_id}/{WANNIER_GROUP}/{name}", report.problems)
    return report
