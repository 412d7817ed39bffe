"""Walk from a store run back through AiiDA to the inputs, codes and pseudopotentials that made it.

Both directions of provenance:

* store → AiiDA: a run's attrs (``provenance_uuid``), its Wannier group's attrs
  (``provenance_uuid``, ``provenance_batches``) and its predictions group's attrs
  (``provenance_predictions``: the ``agi.electronic_predict`` node of each write)
  name the nodes that wrote them;
* AiiDA → store: those nodes record the store version they wrote
  (``WannierSet`` attribute ``store_version``, the ``predictions`` output's
  ``store_version``) and the version they read (the ``run`` input's ``version``).

Predicted moments lead, through the model file they were made with
(the ``model`` input, an output of ``agi.electronic_train``), to the Wannier
sets the model learned from and from those to pw.x, wannier90.x and the
pseudopotentials.

:func:`provenance_chain` walks backwards from one node: a process's inputs and the
processes it called, a data node's creator. It
collects the processes, the codes (executable, version), the
pseudopotentials (element, file, md5) and the software versions recorded on
the process nodes. :func:`run_provenance` does this for a store run;
``agi provenance RUN`` prints it. :func:`write_run_page` draws the same run as a
clickable page (:func:`agi_data.report.provenance_page.build_page`);
``agi provenance RUN --html [PATH]`` writes it.
"""

from __future__ import annotations

import functools
from collections import Counter, deque

__all__ = ["ProvenanceError", "provenance_chain", "run_provenance", "format_provenance", "write_run_page"]


class ProvenanceError(ValueError):
    """A run records no provenance, or its node is not in the loaded AiiDA profile."""


def _process_summary(node) -> dict:
    return {"pk": node.pk, "uuid": node.uuid, "type": node.process_label or node.node_type,
            "label": node.label, "state": node.process_state.value if node.process_state else None,
            "exit_status": node.exit_status, "ctime": node.ctime.isoformat()}


def _store_run_writer(ref: dict, stores: dict, home=None):
    """``(node, None)``: the node that wrote the store run a run reference (``{"store_path", "run_id",
    "version"}``) points at, from the run's ``provenance_uuid``; or ``(None, why)`` when it cannot be reached.
    ``stores`` caches the opened stores by path. ``home``: a store to find the run in when the recorded
    store does not give it (moved, or on another machine: a run restored from a bundle)."""
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from agi_data.store import open_store

    try:
        if ref["store_path"] not in stores:
            stores[ref["store_path"]] = open_store(ref["store_path"], create=False)
        uuid = stores[ref["store_path"]].attrs(ref["run_id"]).get("provenance_uuid")
    except Exception as err:  # noqa: BLE001 - a moved or deleted store: say so, keep walking the rest
        if home is None or ref["run_id"] not in home:
            return None, f"store run not readable: {err}"
        uuid = home.attrs(ref["run_id"]).get("provenance_uuid")
    if not uuid:
        return None, "the run records no provenance_uuid (not written by an agi-data workflow)"
    try:
        return orm.load_node(uuid), None
    except NotExistent:
        return None, f"its writer {uuid} is not in the loaded AiiDA profile"


def provenance_chain(start, *, max_nodes: int = 5000, skip_runs=(), store=None) -> dict:
    """Everything upstream of ``start`` (a node, pk or uuid): processes, codes, pseudopotentials, versions.

    The walk crosses the store: an input that names frames of a store run (a ``run`` Dict, e.g. the
    frames a reference set was computed on) continues at the node that wrote that run, so a model
    trained on MD frames leads back to that MD and its force field or model. Runs in ``skip_runs``
    (the run being described) are not followed. ``store``: where to find such a run when the store path
    the node records does not give it (e.g. the run was restored from a bundle into ``store``).

    Returns a dict with ``start`` (summary), ``processes`` (list, oldest first), ``process_counts``
    (type → count), ``codes`` (label → executable, computer, version, what the code reported),
    ``pseudopotentials`` (element → filename, md5, z_valence, uuid), ``families``,
    ``versions`` (package → versions recorded on the process nodes), ``store_versions``,
    ``store_reads`` (run_id, version read, writer node or why it was not reached), ``models``
    (the lone-pair model files met: uuid, file, the training node) and ``wannier_sets`` (the
    WannierSet nodes met: uuid, frames, run).
    """
    from aiida import orm
    from aiida.common.links import LinkType
    from aiida_pseudo.data.pseudo import PseudoPotentialData

    if not isinstance(start, orm.Node):
        start = orm.load_node(start)
    seen, queue = {start.pk}, deque([start])
    processes, codes, pseudos, versions, store_versions = {}, {}, {}, {}, []
    store_reads, runs_followed, stores = [], set(skip_runs), {}
    reported, models, wannier_sets = {}, [], []
    while queue and len(seen) < max_nodes:
        node = queue.popleft()
        nxt = []
        if isinstance(node, orm.ProcessNode):
            processes[node.pk] = node
            for package, version in (node.base.attributes.get("version", {}) or {}).items():
                versions.setdefault(_package_name(node, package), set()).add(str(version))
            nxt += node.base.links.get_incoming(link_type=(LinkType.INPUT_CALC, LinkType.INPUT_WORK)).all_nodes()
            # the sub-processes of a workflow (never the caller: that would walk downstream into siblings)
            nxt += node.base.links.get_outgoing(link_type=(LinkType.CALL_CALC, LinkType.CALL_WORK)).all_nodes()
            out = node.base.links.get_outgoing(link_label_filter="output_parameters").all_nodes()
            for params in out:
                p = params.get_dict()
                for key in ("creator_version", "code_version", "wannier90_version"):
                    if p.get(key):
                        reported.setdefault(node.process_label, set()).add(f"{key}={p[key]}")
        else:
            if isinstance(node, orm.AbstractCode):
                codes[node.full_label] = {
                    "uuid": node.uuid, "plugin": node.default_calc_job_plugin,
                    "executable": str(getattr(node, "filepath_executable", "")),
                    "computer": node.computer.label if getattr(node, "computer", None) else None,
                    "version": node.base.extras.get("version", "unknown")}
            _collect_electronic(node, models, wannier_sets)
            if isinstance(node, PseudoPotentialData):
                pseudos[node.element] = {"filename": node.filename, "md5": node.md5, "uuid": node.uuid,
                                         "z_valence": getattr(node, "z_valence", None)}
            sv = node.base.attributes.get("store_version", None)
            if sv:
                store_versions.append({"node": node.uuid, "run_id": node.base.attributes.get("run_id", None),
                                       "store_version": sv})
            if node.creator is not None:
                nxt.append(node.creator)
            ref = node.get_dict() if isinstance(node, orm.Dict) else {}
            if ref.get("store_path") and ref.get("run_id") and ref["run_id"] not in runs_followed:
                runs_followed.add(ref["run_id"])
                writer, why = _store_run_writer(ref, stores, store)
                read = {"run_id": ref["run_id"], "version": ref.get("version"), "writer_uuid": None,
                        "writer": None, "unreached": why}
                if writer is not None:
                    read.update(writer_uuid=writer.uuid,
                                writer=f"{writer.process_label or writer.node_type} pk={writer.pk} uuid={writer.uuid}")
                    nxt.append(writer)
                store_reads.append(read)
        for other in nxt:
            if other.pk not in seen:
                seen.add(other.pk)
                queue.append(other)
    families = _families_of(pseudos)
    ordered = sorted(processes.values(), key=lambda n: n.ctime)
    code_reports = {}
    for proc in ordered:
        if isinstance(proc, orm.CalcJobNode) and "code" in proc.inputs:
            code_reports.setdefault(proc.inputs.code.full_label, set()).update(reported.get(proc.process_label, set()))
    for label, info in codes.items():
        info["reported"] = sorted(code_reports.get(label, set()))
    return {
        "start": _process_summary(start) if isinstance(start, orm.ProcessNode)
        else {"pk": start.pk, "uuid": start.uuid, "type": start.node_type},
        "processes": [_process_summary(p) for p in ordered],
        "process_counts": dict(Counter(p.process_label or p.node_type for p in ordered)),
        "codes": codes,
        "pseudopotentials": pseudos,
        "families": families,
        "versions": {k: sorted(v) for k, v in versions.items()},
        "store_versions": store_versions,
        "store_reads": store_reads,
        "models": models,
        "wannier_sets": wannier_sets,
        "n_nodes": len(seen),
    }


def _collect_electronic(node, models: list, wannier_sets: list) -> None:
    """Record a lone-pair model file (output of ``agi.electronic_train``) or a WannierSet met on the walk."""
    from aiida import orm

    from .data import WannierSet

    creator = node.creator
    if isinstance(node, orm.SinglefileData) and creator is not None and \
            (creator.process_type or "").endswith("agi.electronic_train"):
        models.append({"uuid": node.uuid, "filename": node.filename, "trained_by": f"{creator.process_label} "
                       f"pk={creator.pk} uuid={creator.uuid}"})
    elif isinstance(node, WannierSet):
        wannier_sets.append({"uuid": node.uuid, "frames": [int(f) for f in node.frames],
                             "run_id": node.base.attributes.get("run_id", None)})


def _package_name(node, key: str) -> str:
    """``aiida-core`` for AiiDA's ``core`` version; for ``plugin``, the distribution that defines the process
    (``aiida-quantumespresso``, ``agi-data``, …), so the versions line says which plugin is which."""
    if key == "core":
        return "aiida-core"
    if key != "plugin":
        return key
    return _plugin_of(node.process_type)


@functools.cache
def _plugin_of(process_type: str) -> str:
    """The distribution that defines a process type (looked up once per type)."""
    from aiida.plugins.entry_point import load_entry_point_from_string

    try:
        module = (load_entry_point_from_string(process_type).__module__ if ":" in process_type
                  else process_type).split(".")[0]
    except Exception:  # noqa: BLE001 - a process class no longer importable: name it by its type string
        return f"plugin of {process_type}"
    return (_distributions().get(module) or [module.replace("_", "-")])[0]


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    from importlib.metadata import packages_distributions

    return packages_distributions()


def _engine_summary(attrs: dict) -> str | None:
    """What integrated the run, from its attrs: LAMMPS and its version with the force field and its source,
    or ASE with the Allegro model; None for a run without MD attrs."""
    engine = attrs.get("engine")
    if engine == "lammps":
        text = f"LAMMPS ({attrs.get('engine_version', 'version not recorded')}), force field {attrs.get('potential')}"
        if attrs.get("potential_citation"):
            text += f" [{attrs['potential_citation']}]"
        if attrs.get("potential_source"):
            text += f"; numbers from: {attrs['potential_source']}"
        return text
    if engine == "ase":
        versions = ", ".join(f"{k.removesuffix('_version')} {attrs[k]}" for k in ("engine_version", "nequip_version",
                                                                              "allegro_version") if attrs.get(k))
        return (f"ASE with {attrs.get('calculator', 'a calculator')}, potential {attrs.get('potential')}"
                + (f" (model node {attrs['potential_uuid']})" if attrs.get("potential_uuid") else "")
                + (f"; {versions}" if versions else ""))
    return None


def _families_of(pseudos: dict) -> list[str]:
    if not pseudos:
        return []
    from aiida import orm
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    uuids = [p["uuid"] for p in pseudos.values()]
    qb = orm.QueryBuilder().append(PseudoPotentialFamily, project="label", tag="g")
    qb.append(orm.Node, with_group="g", filters={"uuid": {"in": uuids}})
    return sorted({row[0] for row in qb.all()})


def run_provenance(store, run_id: str) -> dict:
    """Provenance of a store run: its trajectory's and its Wannier sets' producing nodes, walked to the codes.

    ``store`` is a :class:`~agi_data.store.Store` or a path. Needs the AiiDA profile that holds
    the nodes to be loaded. Raises :class:`ProvenanceError` when the run records no node UUID.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from agi_data.store import open_store

    store = store if hasattr(store, "version") else open_store(store)
    attrs = store.attrs(run_id)
    out = {"run_id": run_id, "store_version": store.version(run_id), "sources": [],
           "engine": _engine_summary(attrs), "ensemble": attrs.get("ensemble"),
           "equilibration_run": attrs.get("equilibration_run")}
    entries = []
    if attrs.get("provenance_uuid"):
        entries.append(("trajectory", attrs["provenance_uuid"], None))
    try:
        wattrs = dict(store.wannier(run_id).attrs)
    except Exception:  # noqa: BLE001 - a run without Wannier centres
        wattrs = {}
    batches = wattrs.get("provenance_batches", [])
    workchains = []
    for b in batches:
        if b.get("workchain_uuid") and b["workchain_uuid"] not in workchains:
            workchains.append(b["workchain_uuid"])
    if not workchains and wattrs.get("provenance_uuid"):
        workchains.append(wattrs["provenance_uuid"])
    for uuid in workchains:
        frames = sorted({f for b in batches if (b.get("workchain_uuid") or b.get("node_uuid")) == uuid
                         for f in b.get("frames", [])})
        entries.append(("wannier", uuid, frames))
    for record in _prediction_records(store, run_id):
        entries.append(("predictions", record["provenance_uuid"], record["frames"]))
    if not entries:
        raise ProvenanceError(
            f"run {run_id!r} records no provenance_uuid: it was not written by an AiiDA workflow of agi-data "
            "(e.g. imported data); nothing to walk")
    for kind, uuid, frames in entries:
        try:
            node = orm.load_node(uuid)
        except NotExistent:
            out["sources"].append({"kind": kind, "uuid": uuid, "frames": frames, "missing": True})
            continue
        out["sources"].append({"kind": kind, "uuid": uuid, "frames": frames, "missing": False,
                               "chain": provenance_chain(node, skip_runs=(run_id,), store=store)})
    return out


def _prediction_records(store, run_id: str) -> list[dict]:
    """The writes of the run's current predictions that name their node (``provenance_predictions``)."""
    try:
        attrs = dict(store.electronic(run_id).attrs)
    except Exception:  # noqa: BLE001 - a run without predictions
        return []
    return [r for r in attrs.get("provenance_predictions", []) if r.get("provenance_uuid")]


def write_run_page(store, run_id: str, out, *, info: dict | None = None):
    """Write the clickable provenance page of a store run to ``out`` (HTML, self-contained); returns its path.

    The graph starts from every AiiDA node the run records and the loaded profile holds: the
    nodes :func:`run_provenance` resolves (the trajectory's WorkChain, the Wannier WorkChains),
    the MD calcfunction and potential (``provenance_calc_uuid``, ``potential_uuid``) and the
    Wannier batch nodes (``provenance_batches[].node_uuid``). The run itself is a node of its own
    (its store attributes and version), linked to the nodes that wrote it; so is each store run whose
    frames the chain read (``store_reads`` of :func:`provenance_chain`). ``info``: a
    :func:`run_provenance` result already at hand. Raises :class:`ProvenanceError` when the run
    records no node, or none of its nodes is in the loaded profile.
    """
    from aiida import orm
    from aiida.common.exceptions import NotExistent

    from agi_data.report.provenance_page import build_page
    from agi_data.store import open_store

    store = store if hasattr(store, "version") else open_store(store)
    info = info if info is not None else run_provenance(store, run_id)
    sources = [s for s in info["sources"] if not s["missing"]]
    if not sources:
        from aiida.manage import get_manager

        raise ProvenanceError(
            f"none of the nodes run {run_id!r} records ({', '.join(s['uuid'] for s in info['sources'])}) is in "
            f"the loaded AiiDA profile {get_manager().get_profile().name!r}: load the profile that made it "
            "(AIIDA_PATH / --profile)")
    attrs = store.attrs(run_id)
    try:
        batches = dict(store.wannier(run_id).attrs).get("provenance_batches", [])
    except Exception:  # noqa: BLE001 - a run without Wannier centres
        batches = []
    uuids = [s["uuid"] for s in sources] + [attrs.get(k) for k in ("provenance_calc_uuid", "potential_uuid")]
    uuids += [b.get("node_uuid") for b in batches]
    uuids += [r.get("model_uuid") for r in _prediction_records(store, run_id)]
    roots = []
    for uuid in dict.fromkeys(u for u in uuids if u):
        try:
            roots.append(orm.load_node(uuid))
        except NotExistent:
            continue
    what = {"trajectory": "trajectory", "wannier": "Wannier centres", "predictions": "predicted moments"}
    run = {"run_id": run_id, "version": info["store_version"], "created": _created(store, run_id, attrs)}
    run.update((k, v) for k, v in attrs.items() if k not in run)
    run["written_by"] = [{"label": what[s["kind"]], "uuid": s["uuid"]} for s in sources]
    store_runs = [run]
    # the runs whose frames the chain read (e.g. the MD frames of a training set), linked to their writers
    reads = {r["run_id"]: r for s in sources for r in s["chain"].get("store_reads", []) if r.get("writer_uuid")}
    for read in reads.values():
        writer = orm.load_node(read["writer_uuid"])
        if writer.pk not in {n.pk for n in roots}:
            roots.append(writer)
        store_runs.append({"run_id": read["run_id"], "version": read["version"],
                           "written_by": [{"label": "trajectory", "uuid": read["writer_uuid"]}]})
    return build_page(roots, out, store_runs=store_runs, title=f"Provenance of store run {run_id}", focus=run_id)


def _created(store, run_id: str, attrs: dict) -> str:
    """When the run was created: its ``created`` attr, else the time of its first store version."""
    if attrs.get("created"):
        return str(attrs["created"])
    try:
        history = store.history(run_id)
        return str(history["written_at"].iloc[-1]) if len(history) else ""
    except Exception:  # noqa: BLE001 - an unreadable history leaves the field empty, not the page
        return ""


def format_provenance(info: dict) -> str:
    """A human-readable tree of :func:`run_provenance`'s result."""
    lines = [f"run {info['run_id']}  (store version {info['store_version']})"]
    if info.get("engine"):
        lines.append(f"├── MD engine: {info['engine']}")
    if info.get("ensemble"):
        eq = f", after equilibration run {info['equilibration_run']}" if info.get("equilibration_run") else ""
        lines.append(f"├── ensemble: {info['ensemble']}{eq}")
    for src in info["sources"]:
        if src["kind"] == "predictions":
            what = "predictions of frames [{}, {}) (lone-pair moments of a model)".format(*src["frames"])
        else:
            what = "trajectory" if src["kind"] == "trajectory" else f"Wannier centres of frames {src['frames']}"
        if src["missing"]:
            lines.append(f"├── {what}: written by node {src['uuid']} — NOT in the loaded AiiDA profile "
                         "(load the profile that made it: AIIDA_PATH / -p)")
            continue
        chain = src["chain"]
        start = chain["start"]
        lines.append(f"├── {what}: written by {start['type']} pk={start['pk']} uuid={start['uuid']} "
                     f"[{start.get('state')}, exit {start.get('exit_status')}]")
        for sv in chain["store_versions"]:
            lines.append(f"│   ├── node {sv['node']} recorded store version {sv['store_version']} of {sv['run_id']}")
        for read in chain.get("store_reads", []):
            by = f"written by {read['writer']}" if read["writer"] else f"not followed: {read['unreached']}"
            at = f" at version {read['version']}" if read.get("version") else ""
            lines.append(f"│   ├── read frames of store run {read['run_id']}{at}, {by}")
        for m in chain.get("models", []):
            lines.append(f"│   ├── model {m['uuid']} ({m['filename']}), trained by {m['trained_by']}")
        for w in chain.get("wannier_sets", []):
            lines.append(f"│   ├── Wannier set {w['uuid']}: DFT centres of frames {w['frames']} of run {w['run_id']}")
        lines.append("│   ├── processes: " + ", ".join(f"{k} ×{v}" for k, v in sorted(chain["process_counts"].items())))
        for p in chain["processes"]:
            lines.append(f"│   │   ├── {p['type']} pk={p['pk']} {p['label'] or ''} [exit {p['exit_status']}]")
        lines.append("│   ├── codes:")
        for label, c in sorted(chain["codes"].items()):
            rep = f"; reports {', '.join(c['reported'])}" if c.get("reported") else ""
            lines.append(f"│   │   ├── {label}: {c['executable']} ({c['version']}{rep}) plugin {c['plugin']}")
        fam = f" (family {', '.join(chain['families'])})" if chain["families"] else ""
        lines.append(f"│   ├── pseudopotentials{fam}:")
        for el, p in sorted(chain["pseudopotentials"].items()):
            lines.append(f"│   │   ├── {el}: {p['filename']} md5 {p['md5']} z_valence {p['z_valence']}")
        lines.append("│   └── versions (package: versions on the process nodes): "
                     + "; ".join(f"{k} {', '.join(v)}" for k, v in sorted(chain["versions"].items())))
    return "\n".join(lines)
