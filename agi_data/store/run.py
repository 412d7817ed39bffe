"""The store's lower layer: where runs live (a *location*) and one run's sessions, locks, commits and attrs.

Everything above this module — :class:`~agi_data.store.Store`, the
trajectory writer, the Wannier writer, ``verify`` — reaches a run only
through a :class:`RunHandle`; nothing above it builds an Icechunk storage,
opens a repository or takes a lock itself. A storage backend plugs in here,
by providing a location:

:class:`Location` (the backend interface; :class:`LocalLocation` is the local one)
    ``url``                     string that :func:`location_for` turns back into the location
    ``storage(name)``           the ``icechunk.Storage`` of a run (or staged run) — the one
                                place a storage is constructed
    ``repository_dir(name)``    the local directory of a run's repository, or ``None`` (object
                                storage); the atom-block reader reads chunk files there itself
                                (:mod:`agi_data.store.native`)
    ``lock(run_id, part)``      a :class:`~agi_data.store.locks.Lock` (acquire with a bounded
                                timeout and an error naming the holder; release; holder;
                                stale holders never block)
    ``entries()``               ``{run_id: problem or None}`` for every name that claims to be a
                                run, healthy or not (a damaged run is listed, not hidden)
    ``has(run_id)``             whether anything claims the name ``run_id``
    ``stage(run_id)``           a fresh, invisible name to build a run under
    ``publish(staged, run_id)`` make a staged run visible as ``run_id`` in one atomic step
                                (:class:`RunExistsError` if taken)
    ``leftovers(run_id)``       staged names of ``run_id`` that a dead writer left behind
    ``discard(name)``           remove a staged run; ``remove(run_id)``: hide, then discard a run
    ``seal(name)``              record checksums of the repository's new metadata objects
                                (snapshots, manifests, transaction logs) after a commit
    ``check_seals(name)``       ``(problems, notes)``: every recorded object present and unchanged

Why seals: chunks carry their own ``crc32c`` (a codec of every array), but
Icechunk's snapshot, manifest and transaction files do not carry a checksum
that is checked on read — a flipped bit there can go unnoticed or change
what a chunk reference points to. The local location keeps one line per
object in ``<run>/agi-checksums.jsonl`` (CRC-32C of its bytes; objects are
immutable once written), appended under the commit lock after every commit.

Parts of a run's locks: ``writer`` (one trajectory writer), ``wannier`` (one
Wannier writer), ``attrs`` and ``commit`` (branch updates take turns).
The trajectory writer takes ``writer`` without waiting (one writer per
run); Wannier batches, attrs updates and commits wait at most
``lock_timeout_s``. Every wait ends, and its error names the holder.

:class:`RunRef` (store URL, run id, version) is small and picklable: a Dask
worker on another process or host opens the run itself with
``ref.session()`` or ``ref.trajectory()``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import google_crc32c
import icechunk
import zarr

from . import validate
from .errors import RunExistsError, RunNotFoundError, StoreError, StoreValidationError
from .location import S3Location, parse_location
from .locks import DEFAULT_TIMEOUT_S, FileLock, Lock
from .read import trajectory_dataset
from .schema import BRANCH

# Commits to one run are serialised across processes by the commit lock
# (below), which is what makes the local-filesystem storage safe for them;
# silence Icechunk's generic warning about unsynchronised concurrent commits.
icechunk.set_logs_filter("error")

STAGING_PREFIX = ".creating-"
SEALS = "agi-checksums.jsonl"
SEALED_DIRS = ("snapshots", "manifests", "transactions")
DELETING_PREFIX = ".deleting-"
LOCK_PARTS = ("writer", "wannier", "attrs", "commit")


class LocalLocation:
    """Runs as Icechunk repositories in ``<root>/runs/<run_id>/``; locks in ``<root>/locks/``.

    Lock files are named ``<run_id>@<part>.lock``: ``@`` never occurs in a
    run id, so no run's lock can be another run's.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.runs_dir = self.root / "runs"

    @property
    def url(self) -> str:
        return str(self.root)

    def storage(self, name: str) -> icechunk.Storage:
        return icechunk.local_filesystem_storage(str(self.runs_dir / name))

    def repository_dir(self, name: str) -> Path:
        """The directory of a run's repository (its chunk and manifest files are read there directly)."""
        return self.runs_dir / name

    def lock(self, run_id: str, part: str) -> FileLock:
        what = f"run {run_id!r}" + ("" if part == "writer" else f" ({part})")
        return FileLock(self.root / "locks" / f"{run_id}@{part}.lock", what)

    def entries(self) -> dict[str, str | None]:
        if not self.runs_dir.is_dir():
            return {}
        out = {}
        for p in sorted(self.runs_dir.iterdir()):
            if p.name.startswith((STAGING_PREFIX, DELETING_PREFIX)) or not validate.is_run_id(p.name):
                continue
            if p.is_symlink():
                out[p.name] = f"{p} is a symbolic link, not a run directory"
            elif not p.is_dir():
                out[p.name] = f"{p} is a file, not a run directory (the run's data is gone)"
            else:
                out[p.name] = None
        return out

    def has(self, run_id: str) -> bool:
        return os.path.lexists(self.runs_dir / run_id)

    def stage(self, run_id: str) -> str:
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        return f"{STAGING_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"

    def publish(self, staged: str, run_id: str) -> None:
        if self.has(run_id):
            raise RunExistsError(f"run {run_id!r} already exists in {self.root}; use open_run() to append to it")
        os.rename(self.runs_dir / staged, self.runs_dir / run_id)

    def leftovers(self, run_id: str) -> list[str]:
        if not self.runs_dir.is_dir():
            return []
        prefix = f"{STAGING_PREFIX}{run_id}-"
        return [p.name for p in self.runs_dir.iterdir()
                if p.name.startswith(prefix) and len(p.name) == len(prefix) + 8]

    def discard(self, name: str) -> None:
        path = self.runs_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)

    def _read_seals(self, name: str) -> tuple[dict[str, int], list[str]]:
        path = self.runs_dir / name / SEALS
        seals, notes = {}, []
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return seals, ["no checksums recorded for the repository's metadata (written before they were)"]
        lines = text.split("\n")
        if lines and lines[-1]:
            notes.append("the last checksum record is incomplete (a writer was interrupted); ignored")
        for k, line in enumerate(lines[:-1], 1):
            try:
                rec = json.loads(line)
                seals[str(rec["file"])] = int(rec["crc32c"])
            except (ValueError, KeyError, TypeError):
                seals[f"<line {k}>"] = -1  # a damaged record is a problem of its own
        return seals, notes

    def seal(self, name: str) -> None:
        run = self.runs_dir / name
        known, _ = self._read_seals(name)
        lines = []
        for sub in SEALED_DIRS:
            folder = run / sub
            if not folder.is_dir():
                continue
            for p in sorted(folder.iterdir()):
                rel = f"{sub}/{p.name}"
                if rel not in known and p.is_file():
                    lines.append(json.dumps({"file": rel, "crc32c": google_crc32c.value(p.read_bytes())}))
        if not lines:
            return
        fd = os.open(run / SEALS, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o644)
        try:
            start = b"" if os.fstat(fd).st_size == 0 or (run / SEALS).read_bytes().endswith(b"\n") else b"\n"
            os.write(fd, start + ("\n".join(lines) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def check_seals(self, name: str) -> tuple[list[str], list[str]]:
        run = self.runs_dir / name
        seals, notes = self._read_seals(name)
        problems = []
        for rel, crc in seals.items():
            if crc < 0:
                problems.append(f"{SEALS}: damaged checksum record {rel}")
                continue
            try:
                data = (run / rel).read_bytes()
            except FileNotFoundError:
                problems.append(f"{rel} is missing")
                continue
            if google_crc32c.value(data) != crc:
                problems.append(f"{rel} is damaged: its checksum differs from the one recorded when it was written")
        if seals:
            unsealed = [f"{sub}/{p.name}" for sub in SEALED_DIRS if (run / sub).is_dir()
                        for p in (run / sub).iterdir() if f"{sub}/{p.name}" not in seals]
            if unsealed:
                notes.append(f"{len(unsealed)} metadata objects without a recorded checksum "
                             f"(e.g. {unsealed[0]}: a commit interrupted before it was recorded)")
        return problems, notes

    def remove(self, run_id: str) -> None:
        trash = f"{DELETING_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"
        os.rename(self.runs_dir / run_id, self.runs_dir / trash)  # atomic: the run disappears at once
        self.discard(trash)


class Location(Protocol):
    """Where runs live: the interface a storage backend implements (see the module docstring)."""

    @property
    def url(self) -> str: ...

    def storage(self, name: str) -> icechunk.Storage: ...

    def repository_dir(self, name: str) -> Path | None: ...

    def lock(self, run_id: str, part: str) -> Lock: ...

    def entries(self) -> dict[str, str | None]: ...

    def has(self, run_id: str) -> bool: ...

    def stage(self, run_id: str) -> str: ...

    def publish(self, staged: str, run_id: str) -> None: ...

    def leftovers(self, run_id: str) -> list[str]: ...

    def discard(self, name: str) -> None: ...

    def remove(self, run_id: str) -> None: ...

    def seal(self, name: str) -> None: ...

    def check_seals(self, name: str) -> tuple[list[str], list[str]]: ...


def location_for(url: str | os.PathLike | S3Location) -> Location:
    """The location a store path or URL names: a local directory or an ``s3://`` prefix.

    Unsupported or malformed URLs raise :class:`~agi_data.store.location.StoreLocationError`.
    """
    location = parse_location(url)
    return location if isinstance(location, S3Location) else LocalLocation(location)


@contextmanager
def holding(lock: Lock, timeout_s: float) -> Iterator[Lock]:
    """Hold ``lock`` for the block, waiting at most ``timeout_s`` to get it."""
    lock.acquire(timeout_s)
    try:
        yield lock
    finally:
        lock.release()


class RunHandle:
    """One run of a location: its repository, sessions, locks, commits and attributes.

    ``name`` is where its repository lives (the run id, or a staged name
    while the run is being built); locks always belong to ``run_id``.
    """

    def __init__(self, location: Location, run_id: str, *, name: str | None = None,
                 lock_timeout_s: float = DEFAULT_TIMEOUT_S):
        self.location = location
        self.run_id = validate.run_id(run_id)
        self.name = name or self.run_id
        self.lock_timeout_s = float(lock_timeout_s)
        self._repo: icechunk.Repository | None = None

    # ------------------------------------------------------------ repository
    @property
    def repository(self) -> icechunk.Repository:
        if self._repo is None:
            if self.name == self.run_id and not self.location.has(self.run_id):
                raise RunNotFoundError(f"no run {self.run_id!r} in the store at {self.location.url}")
            try:
                self._repo = icechunk.Repository.open(self.location.storage(self.name))
            except icechunk.IcechunkError as err:
                raise StoreError(f"run {self.run_id!r} is damaged: its repository cannot be opened ({err}); "
                                 f"`agi store verify` lists what is wrong, `agi store rm {self.run_id}` removes it") from None
        return self._repo

    @classmethod
    def create(cls, location: Location, run_id: str, name: str, *,
               lock_timeout_s: float = DEFAULT_TIMEOUT_S) -> RunHandle:
        """A new, empty repository at ``name`` (a staged name of ``run_id``)."""
        handle = cls(location, run_id, name=name, lock_timeout_s=lock_timeout_s)
        handle._repo = icechunk.Repository.create(location.storage(name))
        return handle

    def moved_to(self, name: str) -> RunHandle:
        """The same run after its repository moved to ``name`` (e.g. published)."""
        return RunHandle(self.location, self.run_id, name=name, lock_timeout_s=self.lock_timeout_s)

    # -------------------------------------------------------------- sessions
    def session(self, version: str | None = None) -> icechunk.Session:
        """A read-only session: the branch head, or the snapshot ``version``."""
        if version is None:
            try:
                return self.repository.readonly_session(branch=BRANCH)
            except icechunk.IcechunkError as err:
                raise StoreError(f"run {self.run_id!r} is damaged: its branch {BRANCH!r} cannot be read ({err})") from None
        try:
            return self.repository.readonly_session(snapshot_id=str(version))
        except (icechunk.IcechunkError, ValueError) as err:
            raise StoreValidationError(f"run {self.run_id!r} has no version {version!r}: {err}") from None

    def writable(self) -> icechunk.Session:
        return self.repository.writable_session(BRANCH)

    def group(self, version: str | None = None) -> zarr.Group:
        """The run's root group, read-only."""
        return zarr.open_group(self.session(version).store, mode="r")

    def version(self) -> str:
        return self.repository.lookup_branch(BRANCH)

    def ancestry(self):
        return self.repository.ancestry(branch=BRANCH)

    # ----------------------------------------------------------------- locks
    def lock(self, part: str) -> Lock:
        if part not in LOCK_PARTS:
            raise ValueError(f"lock part must be one of {LOCK_PARTS}, got {part!r}")
        return self.location.lock(self.run_id, part)

    def commit(self, session: icechunk.Session, message: str) -> str:
        """Commit under the run's commit lock, rebasing over commits that touched other arrays.

        A trajectory append, a Wannier batch and an attrs update on the same
        run may run in different processes; the lock makes their branch
        updates take turns (waiting at most ``lock_timeout_s``), and the
        rebase lets each land on top of the others.
        """
        with holding(self.lock("commit"), self.lock_timeout_s):
            version = session.commit(message, rebase_with=icechunk.ConflictDetector())
            self.location.seal(self.name)
            return version

    # ----------------------------------------------------------------- attrs
    def attrs(self, version: str | None = None) -> dict:
        return dict(self.group(version).attrs)

    def update_attrs(self, attrs: dict, group: str | None = None) -> str:
        """Record ``attrs`` on the run's root group (or a subgroup); returns the new version."""
        with holding(self.lock("attrs"), self.lock_timeout_s):
            session = self.writable()
            root = zarr.open_group(session.store, mode="r+")
            if group is not None and group not in root:
                raise StoreValidationError(f"run {self.run_id!r} has no {group!r} group yet")
            target = root if group is None else root[group]
            target.attrs.update(attrs)
            if not session.has_uncommitted_changes:  # the same values again: nothing to commit
                return session.snapshot_id
            return self.commit(session, f"set attrs {sorted(attrs)}" + (f" on {group}" if group else ""))

    def ref(self, version: str | None = None) -> RunRef:
        return RunRef(self.location.url, self.run_id, version or self.version())

    def __repr__(self) -> str:
        return f"<RunHandle {self.run_id!r} at {self.location.url}>"


@dataclass(frozen=True)
class RunRef:
    """Where one version of a run is: picklable, so a worker process can open the run itself.

    >>> ref = store.ref("agi-750K")                # pins the current version
    >>> ds = ref.trajectory()                      # in any process that reaches the store
    """

    store: str
    run_id: str
    version: str | None = None

    def handle(self) -> RunHandle:
        return RunHandle(location_for(self.store), self.run_id)

    def session(self) -> icechunk.Session:
        return self.handle().session(self.version)

    def trajectory(self):
        """The run at this version as a lazy :class:`xarray.Dataset` (as ``Store.trajectory``)."""
        return trajectory_dataset(self.handle(), self.version)
