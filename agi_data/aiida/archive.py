"""Share a result: one bundle file with the AiiDA provenance of store runs and the runs themselves.

``verdi archive create`` carries the provenance graph but not the trajectories,
which live in the store; copying a store run carries the frames but not how
they were made. A *bundle* carries both, so that someone else can load a result
into their own AiiDA profile and store and ask ``agi provenance`` about it.

What goes in (:func:`plan_bundle`): for every requested run, the AiiDA nodes
that wrote it (:func:`~agi_data.aiida.provenance.run_provenance`) and every
process upstream of them, across the store: a node that read frames of another
store run (an MD started from a frame of an earlier run, a reference set
computed on MD frames) leads to that run's writer, and that run goes into the
bundle too, with its own provenance. The AiiDA archive holds these processes
with their inputs and outputs (aiida-core's export rules: codes, computers,
pseudopotentials, parameters); the store part holds each run with its whole
history (:func:`agi_data.store.copy.copy_run`: version ids unchanged), so every
version a node pins (``version`` of a run reference, ``store_version`` of a
Wannier set) reads the same frames after the restore. A pinned version missing
from a run's history stops the bundle before anything is written.

A run that records no AiiDA node (imported data) is bundled without
provenance, with a warning. A run whose nodes are not in the loaded profile is
refused: that is almost always the wrong profile.

Format (``format_version`` 1): one uncompressed POSIX tar file holding, in this order,

``manifest.json``
    ``format``, ``format_version``, the agi-data and aiida-core versions that
    wrote it, the runs (head version, every version, the pinned ones, the
    source store, the nodes that wrote it, whether it was asked for or came in
    as upstream), the AiiDA archive's process UUIDs, and the SHA-256 and size
    of every other member;
``aiida.aiida``
    the AiiDA archive (``aiida.tools.archive.create_archive``; a zip file);
``store/``
    an agi-data store directory with the runs.

One file, because a result is shared by sending or depositing one thing, and
its checksum list travels inside it. Uncompressed, because both parts are
compressed already (the AiiDA archive is a zip, the store's chunks are
compressed) and a plain tar lists its manifest without reading the rest.

Restoring (:func:`restore_bundle`) checks everything before writing anything:
the format version, the checksum of every member, that the target store is
reachable and that no run there has the same id with another history (the
same history, or one that continues it, is left as it is and reported). Then
the AiiDA archive is imported into the loaded profile (nodes already there are
kept) and the runs are copied into the target store.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .._version import __version__

__all__ = ["BundleError", "FORMAT", "FORMAT_VERSION", "plan_bundle", "create_bundle", "read_manifest",
           "restore_bundle"]

FORMAT = "agi-data bundle"
#: the bundle layout this agi-data writes and the newest it reads
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
AIIDA_ARCHIVE = "aiida.aiida"
STORE_DIR = "store"
#: node attributes that pin a version of the store run named by the node's ``run_id``
PIN_KEYS = ("version", "store_version", "source_run_version")


class BundleError(ValueError):
    """A bundle cannot be written or restored; the message says why and what to do. Nothing was written."""


@dataclass
class RunEntry:
    """One run of a bundle: where it is, whether it was asked for, the nodes that wrote it, the versions pinned."""

    run_id: str
    store: object
    requested: bool
    writers: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=list)
    pinned: set[str] = field(default_factory=set)
    reads: dict[str, str | None] = field(default_factory=dict)
    warning: str | None = None


# ------------------------------------------------------------------ planning
def _walk_run(entry: RunEntry) -> None:
    """Fill ``entry`` from the run's provenance: writers, upstream processes, the runs it read (with versions)."""
    from aiida.manage import get_manager

    from .provenance import ProvenanceError, run_provenance

    try:
        info = run_provenance(entry.store, entry.run_id)
    except ProvenanceError:
        entry.warning = (f"run {entry.run_id!r} records no AiiDA node (not written by an agi-data workflow): "
                         "it is bundled without provenance")
        return
    missing = [s["uuid"] for s in info["sources"] if s["missing"]]
    if missing:
        raise BundleError(
            f"run {entry.run_id!r} was written by node(s) {', '.join(missing)}, which are not in the loaded AiiDA "
            f"profile {get_manager().get_profile().name!r}: load the profile that made the run (--profile, "
            "AIIDA_PATH) and archive again")
    for src in info["sources"]:
        entry.writers.append(src["uuid"])
        entry.processes += [p["uuid"] for p in src["chain"]["processes"]]
        for read in src["chain"]["store_reads"]:
            entry.reads.setdefault(read["run_id"], read.get("version"))


def _locate(run_id: str, stores: list) -> object:
    """The store holding ``run_id``: the first of ``stores``, else a store path recorded by a node that names the run."""
    from aiida import orm

    from agi_data.store import StoreError, open_store

    for store in stores:
        if run_id in store:
            return store
    qb = orm.QueryBuilder().append(orm.Dict, filters={"attributes.run_id": run_id},
                                   project="attributes.store_path")
    recorded = sorted({p for (p,) in qb.all() if p})
    for path in recorded:
        try:
            store = open_store(path, create=False)
        except (StoreError, OSError):
            continue
        if run_id in store:
            return store
    where = [str(s.root) for s in stores] + recorded
    raise BundleError(f"run {run_id!r}, read by the provenance of the runs to archive, is in none of the stores "
                      f"{where}: pass the store that holds it with --store")


def plan_bundle(store, run_ids) -> dict[str, RunEntry]:
    """The runs a bundle of ``run_ids`` holds (requested first, then upstream ones), each with its nodes and pins.

    ``store``: the :class:`~agi_data.store.Store` of the requested runs. Needs the AiiDA profile that
    holds their nodes to be loaded. Raises :class:`BundleError` (or the store's
    :class:`~agi_data.store.RunNotFoundError` for a run id it does not have) before anything is written.
    """
    if not run_ids:
        raise BundleError("no run to archive: name at least one run (see `agi store ls`)")
    plan: dict[str, RunEntry] = {}
    for run_id in dict.fromkeys(run_ids):
        store.repository(run_id)  # RunNotFoundError names the store and its runs
        plan[run_id] = RunEntry(run_id, store, requested=True)
    queue = list(plan.values())
    while queue:
        entry = queue.pop(0)
        _walk_run(entry)
        for upstream in entry.reads:
            if upstream not in plan:
                plan[upstream] = RunEntry(upstream, _locate(upstream, [entry.store, store]), requested=False)
                queue.append(plan[upstream])
    _pin_versions(plan)
    return plan


def _export_pks(plan: dict[str, RunEntry]) -> set[int]:
    """The pks of every node the AiiDA archive will hold (aiida-core's export traversal from the processes)."""
    from aiida import orm
    from aiida.tools.graph.graph_traversers import get_nodes_export

    uuids = {u for e in plan.values() for u in (*e.writers, *e.processes)}
    if not uuids:
        return set()
    pks = [pk for (pk,) in orm.QueryBuilder().append(orm.Node, filters={"uuid": {"in": sorted(uuids)}},
                                                     project="id").all()]
    return set(get_nodes_export(pks)["nodes"])


def _pin_versions(plan: dict[str, RunEntry]) -> None:
    """Collect the versions of the bundle's runs that its nodes pin; refuse a version missing from a run's history."""
    from aiida import orm

    pks = sorted(_export_pks(plan))
    for entry in plan.values():
        entry.pinned.update(v for r in plan.values() for rid, v in r.reads.items() if rid == entry.run_id and v)
    for start in range(0, len(pks), 500):
        qb = orm.QueryBuilder().append(orm.Node, filters={"id": {"in": pks[start:start + 500]}},
                                       project="attributes")
        for (attrs,) in qb.iterall():
            entry = plan.get((attrs or {}).get("run_id")) if isinstance(attrs, dict) else None
            if entry is not None:
                entry.pinned.update(str(attrs[k]) for k in PIN_KEYS if attrs.get(k))
    for entry in plan.values():
        history = set(entry.store.history(entry.run_id)["version"])
        lost = sorted(entry.pinned - history)
        if lost:
            raise BundleError(
                f"the provenance pins version(s) {lost} of run {entry.run_id!r}, which its history in "
                f"{entry.store.root} does not hold: the run was replaced after those nodes ran, so the bundle "
                "could not reproduce them")


# ------------------------------------------------------------------ writing
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _members(root: Path) -> dict[str, dict]:
    """SHA-256 and size of every file under ``root`` (paths relative to it, POSIX style)."""
    return {p.relative_to(root).as_posix(): {"sha256": _sha256(p), "size": p.stat().st_size}
            for p in sorted(root.rglob("*")) if p.is_file()}


def _write_aiida_archive(plan: dict[str, RunEntry], path: Path) -> list[str]:
    """The AiiDA archive of every process of ``plan`` (inputs, outputs, codes by aiida-core's rules); their UUIDs."""
    from aiida import orm
    from aiida.tools.archive import create_archive

    uuids = list(dict.fromkeys(u for e in plan.values() for u in (*e.writers, *e.processes)))
    create_archive([orm.load_node(u) for u in uuids], filename=path, include_logs=True, include_comments=True)
    return uuids


def create_bundle(store, run_ids, output, *, progress=None) -> dict:
    """Write the bundle of ``run_ids`` (and the runs upstream of them) to the file ``output``; returns its manifest.

    The bundle is built in a directory beside ``output`` and moved into place in one step: an
    interrupted archive leaves no partial bundle. An existing ``output`` is never overwritten.
    ``progress(n)`` is called with the bytes of each store object copied.
    """
    from aiida.manage import get_manager

    from agi_data.store import open_store
    from agi_data.store.copy import copy_run

    output = Path(output).expanduser().resolve()
    if output.exists():
        raise BundleError(f"{output} exists; remove it or choose another name (a bundle is never overwritten)")
    if not output.parent.is_dir():
        raise BundleError(f"the directory {output.parent} does not exist; create it first")
    plan = plan_bundle(store, run_ids)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        local = open_store(staging / STORE_DIR)
        runs = {}
        for entry in plan.values():
            head = copy_run(entry.store, entry.run_id, local, progress=progress)
            runs[entry.run_id] = {
                "requested": entry.requested, "version": head,
                "versions": list(local.history(entry.run_id)["version"]), "pinned": sorted(entry.pinned),
                "source_store": str(entry.store.root), "written_by": entry.writers,
                "reads": entry.reads, "warning": entry.warning}
        processes = _write_aiida_archive(plan, staging / AIIDA_ARCHIVE)
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "agi_data_version": __version__,
                    "aiida_core_version": _aiida_version(), "created": _dt.datetime.now(_dt.UTC).isoformat(),
                    "profile": get_manager().get_profile().name, "runs": runs,
                    "aiida": {"file": AIIDA_ARCHIVE, "processes": processes}, "files": _members(staging)}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        part = output.with_name(output.name + ".part")
        with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.add(staging / MANIFEST, arcname=MANIFEST)
            for name in manifest["files"]:
                tar.add(staging / name, arcname=name)
        os.replace(part, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        output.with_name(output.name + ".part").unlink(missing_ok=True)
    return manifest


def _aiida_version() -> str:
    import aiida

    return aiida.__version__


# ------------------------------------------------------------------ reading
def _corrupt(bundle: Path, why: str) -> BundleError:
    return BundleError(f"{bundle} is not a readable agi-data bundle ({why}); it is truncated or damaged: "
                       "copy it again from its source (nothing was written)")


def _check_format(bundle: Path, manifest: dict) -> dict:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _corrupt(bundle, f"{MANIFEST} does not describe an {FORMAT!r}")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{bundle} is bundle format {version}, written by agi-data {manifest.get('agi_data_version')}; this "
            f"agi-data {__version__} reads bundle formats up to {FORMAT_VERSION}: upgrade agi-data to restore it "
            "(nothing was written)")
    return manifest


def read_manifest(bundle) -> dict:
    """The manifest of ``bundle`` (its first member), checked for format and version; nothing else is read."""
    bundle = Path(bundle).expanduser()
    if not bundle.is_file():
        raise BundleError(f"no bundle at {bundle}: give the file `agi archive -o` wrote")
    try:
        with tarfile.open(bundle, "r:") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST or not member.isfile():
                raise _corrupt(bundle, f"its first member is not {MANIFEST}")
            manifest = json.loads(tar.extractfile(member).read())
    except (tarfile.TarError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _corrupt(bundle, f"{type(err).__name__}: {err}") from None
    return _check_format(bundle, manifest)


def _unpack(bundle: Path, into: Path) -> dict:
    """Extract ``bundle`` into ``into`` and check every member against the manifest's size and SHA-256."""
    manifest = read_manifest(bundle)
    files = manifest.get("files", {})
    try:
        with tarfile.open(bundle, "r:") as tar:
            for member in tar:
                if member.name != MANIFEST and (member.name not in files or not member.isfile()):
                    raise _corrupt(bundle, f"member {member.name!r} is not listed in its manifest")
                tar.extract(member, into, filter="data")
    except (tarfile.TarError, EOFError) as err:
        raise _corrupt(bundle, f"{type(err).__name__}: {err}") from None
    for name, expect in files.items():
        path = into / name
        if not path.is_file():
            raise _corrupt(bundle, f"member {name} is missing")
        if path.stat().st_size != expect["size"] or _sha256(path) != expect["sha256"]:
            raise _corrupt(bundle, f"checksum mismatch in {name}")
    return manifest


def _conflicts(manifest: dict, target) -> tuple[list[str], list[str], list[str]]:
    """(runs to copy, runs already in ``target`` with this history, refusals): one run id, two histories."""
    copy, present, refused = [], [], []
    for run_id, info in manifest["runs"].items():
        if run_id not in target:
            copy.append(run_id)
            continue
        have = list(target.history(run_id)["version"])
        if set(info["versions"]) <= set(have):
            present.append(run_id)
        else:
            refused.append(f"{run_id!r} (in the bundle at version {info['version']}, in {target.root} at "
                           f"{have[0] if have else 'no version'}; the histories differ)")
    return copy, present, refused


def _import_nodes(path: Path) -> None:
    from aiida.common.exceptions import IncompatibleStorageSchema
    from aiida.tools.archive import import_archive
    from aiida.tools.archive.exceptions import ArchiveImportError

    try:
        import_archive(path)
    except IncompatibleStorageSchema as err:
        raise BundleError(f"the bundle's AiiDA archive does not match aiida-core {_aiida_version()}: {err}; restore "
                          "it with the aiida-core that wrote it (manifest: aiida_core_version) or newer "
                          "(the store was not written)") from None
    except ArchiveImportError as err:
        raise BundleError(f"importing the bundle's AiiDA archive failed: {err} (the store was not written)") from None


def restore_bundle(bundle, target, *, progress=None) -> dict:
    """Restore ``bundle`` into the loaded AiiDA profile and the store ``target`` (a path or s3:// URL).

    Order: read and check the whole bundle (format version, every checksum), open the target
    store, refuse any run id the target holds with another history, import the AiiDA archive
    (nodes already in the profile are kept as they are), copy the runs (history and version ids
    intact), check that every pinned version reads. Returns ``{"manifest", "store", "copied",
    "present"}``; raises :class:`BundleError` (or a store error for an unreachable target) with
    nothing written when a check fails.
    """
    from agi_data.store import open_store
    from agi_data.store.copy import copy_run

    bundle = Path(bundle).expanduser()
    with tempfile.TemporaryDirectory(prefix="agi-unarchive-") as tmp:
        manifest = _unpack(bundle, Path(tmp))
        store = target if hasattr(target, "history") else open_store(target)
        copy, present, refused = _conflicts(manifest, store)
        if refused:
            raise BundleError(f"{store.root} already holds run(s) with the same id and another history: "
                              f"{'; '.join(refused)}. Restore into another store (--store) or remove those runs "
                              "there first (nothing was written)")
        _import_nodes(Path(tmp) / manifest["aiida"]["file"])
        source = open_store(Path(tmp) / STORE_DIR, create=False)
        for run_id in copy:
            copy_run(source, run_id, store, progress=progress)
    for run_id, info in manifest["runs"].items():
        for version in info["pinned"]:
            store.trajectory(run_id, version=version)  # opens: the pinned version resolves in the target
    return {"manifest": manifest, "store": store, "copied": copy, "present": present}
