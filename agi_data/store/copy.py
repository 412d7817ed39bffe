"""Copying a run between stores (a laptop's directory and a shared bucket, either way) with its history.

A run is an Icechunk repository: immutable objects (chunks, manifests,
snapshots, transaction logs) named by content-independent ids, and a few
reference objects (``refs/branch.main/ref.json``, tags) that point at a
snapshot. Both storages lay these out under the same keys, so a copy moves
the objects byte for byte: every version id stays the same, and a version
pinned in provenance (``{"store_path", "run_id", "version"}``) reads the
same frames at the destination.

Consistency without stopping writers: the references are read *first*, the
immutable objects after. Every object a snapshot needs was written before
the reference moved to it, so the copied references never point at an
object that was not copied; objects of appends that land during the copy
are copied or not, and unreferenced either way.

The copy is built under a staged name at the destination and published in
one atomic step (a rename locally, a conditional write of the run's index
object on object storage): an interrupted copy leaves no half-run behind,
and a run that exists at the destination is never overwritten.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import icechunk

from .errors import RunExistsError, StoreError
from .location import S3Location
from .run import SEALS

#: keys of an Icechunk repository that move (the rest is immutable; a local store's checksum record is rebuilt)
REFS = "refs/"
#: parallel transfers to or from object storage
WORKERS = 8


class CopyVerificationError(StoreError):
    """The copied run's history differs from the source's (the copy was removed)."""


# ----------------------------------------------------------------- objects
def _list(location, name: str) -> list[str]:
    """Keys (relative to the repository) of every object of the repository ``name``."""
    if isinstance(location, S3Location):
        prefix = location.key("repos", location.repository_name(name)) + "/"
        keys = []
        for page in location.client().get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
            keys.extend(o["Key"][len(prefix):] for o in page.get("Contents", []))
        return keys
    root = location.runs_dir / name
    return [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()]


def _reader(location, name: str) -> Callable[[str], bytes]:
    if isinstance(location, S3Location):
        prefix = location.key("repos", location.repository_name(name))

        def read(key: str) -> bytes:
            return location.client().get_object(Bucket=location.bucket, Key=f"{prefix}/{key}")["Body"].read()

        return read
    root = location.runs_dir / name
    return lambda key: (root / key).read_bytes()


def _writer(location, staged: str) -> Callable[[str, bytes], None]:
    if isinstance(location, S3Location):
        prefix = location.key("repos", staged)

        def write(key: str, data: bytes) -> None:
            location.client().put_object(Bucket=location.bucket, Key=f"{prefix}/{key}", Body=data)

        return write
    root = Path(location.runs_dir) / staged

    def write_file(key: str, data: bytes) -> None:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".part")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    return write_file


def _in_parallel(fn, items) -> Iterator:
    with ThreadPoolExecutor(WORKERS) as pool:
        yield from pool.map(fn, items)


# -------------------------------------------------------------------- copy
def copy_run(source, run_id: str, destination, *, progress: Callable[[int], None] | None = None) -> str:
    """Copy ``run_id`` with every version from the store ``source`` to the store ``destination``.

    Returns the run's version (the head of its branch) at the destination,
    which equals the source's at the moment the copy started. Raises
    :class:`~agi_data.store.errors.RunExistsError` when the destination has
    the run already (nothing is written), and
    :class:`CopyVerificationError` if the copied history differs (the copy
    is removed). ``progress(n)`` is called with the bytes of each object.
    """
    source.repository(run_id)  # RunNotFoundError names the store and its runs
    src_handle = source.handle(run_id)
    src_name = src_handle.name
    dest_handle = destination.handle(run_id)
    lock = dest_handle.lock("writer").acquire(0)
    try:
        if destination.location.has(run_id):
            raise RunExistsError(f"run {run_id!r} already exists in {destination.location.url}; "
                                 "delete it there first or copy to another store")
        for leftover in destination.location.leftovers(run_id):
            destination.location.discard(leftover)
        read = _reader(source.location, src_name)
        refs = {k: read(k) for k in _list(source.location, src_name) if k.startswith(REFS)}
        objects = [k for k in _list(source.location, src_name) if not k.startswith(REFS) and k != SEALS]
        staged = destination.location.stage(run_id)
        write = _writer(destination.location, staged)

        def move(key: str) -> int:
            data = read(key)
            write(key, data)
            return len(data)

        try:
            for size in _in_parallel(move, objects):
                if progress:
                    progress(size)
            for key, data in refs.items():  # last: the copy becomes a repository only now
                write(key, data)
            destination.location.seal(staged)  # the destination's own checksums of what arrived
            _verify(src_handle, destination.location, staged, refs)
            destination.location.publish(staged, run_id)
        except BaseException:
            destination.location.discard(staged)
            raise
    finally:
        lock.release()
    return destination.version(run_id)


def _verify(src_handle, location, staged: str, refs: dict[str, bytes]) -> None:
    """The staged copy opens and its history equals the source's, snapshot for snapshot."""
    import json

    head = json.loads(refs[f"{REFS}branch.main/ref.json"])["snapshot"]
    try:
        repo = icechunk.Repository.open(location.storage(staged))
        copied = [s.id for s in repo.ancestry(branch="main")]
    except icechunk.IcechunkError as err:
        raise CopyVerificationError(f"the copy of run {src_handle.run_id!r} does not open: {err}") from None
    original = [s.id for s in src_handle.repository.ancestry(snapshot_id=head)]
    if copied != original:
        raise CopyVerificationError(
            f"the copy of run {src_handle.run_id!r} has versions {copied[:3]}…, the source {original[:3]}…")
