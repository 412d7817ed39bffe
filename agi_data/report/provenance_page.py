"""A clickable provenance page: the AiiDA graph around some nodes as one self-contained HTML file.

The graph is laid out by graphviz (``dot -Tsvg``); every node of the SVG
carries its AiiDA pk, and a click shows that node's type, label, attributes,
extras, inputs and outputs (embedded as JSON: the page needs no server and
works from ``file://``). Store runs appear as nodes of their own, linked to
the AiiDA node whose UUID they record, and show their store version and
creation time.

Repeated processes are collapsed: processes with the same label called by
the same workflow (e.g. the 19 PwCalculation nodes of a reference set), when
there are at least :data:`GROUP_MIN` of them, are drawn as one group node,
together with the data nodes only they touch; the group's panel lists its
members, each a link to its own details. The page opens centred on its
``focus`` node (the store run it is about), with zoom (wheel, + / −), pan
(drag), fit, and a search box over pk, UUID, label and type.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

MAX_ATTR_CHARS = 400

_COLOURS = {"data": "#dbeafe", "calc": "#fde68a", "work": "#fca5a5", "run": "#bbf7d0", "group": "#e9d5ff"}
#: sibling processes of one label collapsed into a group from this many on
GROUP_MIN = 3


def _short(value) -> object:
    text = json.dumps(value, default=str)
    return value if len(text) <= MAX_ATTR_CHARS else text[:MAX_ATTR_CHARS] + " …"


def _kind(node) -> str:
    from aiida.orm import CalculationNode, WorkflowNode

    if isinstance(node, WorkflowNode):
        return "work"
    if isinstance(node, CalculationNode):
        return "calc"
    return "data"


def _title(node) -> str:
    name = getattr(node, "process_label", None) or type(node).__name__
    label = f" {node.label}" if node.label and node.label != name else ""  # a calcfunction's label is its name
    return f"{name}{label} [{node.pk}]"


def _links_of(pks: list[int], direction: str):
    """(pk, other node, link label, link type) of every link into (``incoming``) or out of ``pks``: one query."""
    from aiida.orm import Node, QueryBuilder

    if not pks:
        return []
    qb = QueryBuilder().append(Node, filters={"id": {"in": pks}}, tag="n", project=["id"])
    relation = {"with_outgoing": "n"} if direction == "incoming" else {"with_incoming": "n"}
    qb.append(Node, **relation, project=["*"], edge_project=["label", "type"])
    return qb.all()


def collect(roots: Iterable, *, depth: int = 8, max_nodes: int = 400):
    """Nodes and links reachable from ``roots`` following links backwards (inputs) and forwards (outputs).

    Forwards from a data node only when it is a root: a shared input (a pseudopotential, a code's
    parameters) leads forwards to every calculation in the profile that used it, not to this chain.
    Two database queries per level of the walk (not two per node).
    """
    from aiida.orm import Data, load_node

    roots = [load_node(r) if isinstance(r, (int, str)) else r for r in roots]
    nodes = {n.pk: n for n in roots}
    root_pks = set(nodes)
    links: set[tuple[int, int, str, str]] = set()
    frontier = list(nodes.values())
    for _ in range(depth):
        forward = [n.pk for n in frontier if not isinstance(n, Data) or n.pk in root_pks]
        found = [(row, "incoming") for row in _links_of([n.pk for n in frontier], "incoming")]
        found += [(row, "outgoing") for row in _links_of(forward, "outgoing")]
        nxt = []
        for (pk, other, label, link_type), direction in found:
            src, dst = (other.pk, pk) if direction == "incoming" else (pk, other.pk)
            links.add((src, dst, label, link_type))
            if other.pk not in nodes and len(nodes) < max_nodes:
                nodes[other.pk] = other
                nxt.append(other)
        frontier = nxt
        if not frontier:
            break
    links = {lk for lk in links if lk[0] in nodes and lk[1] in nodes}
    return nodes, links


def _links_by_node(links) -> tuple[dict, dict]:
    """pk → its incoming and outgoing ``{"label", "pk"}`` lists, built in one pass over the links."""
    incoming: dict[int, list] = defaultdict(list)
    outgoing: dict[int, list] = defaultdict(list)
    for src, dst, label, _ in sorted(links):
        incoming[dst].append({"label": label, "pk": src})
        outgoing[src].append({"label": label, "pk": dst})
    return incoming, outgoing


def node_info(node, links, *, index: tuple[dict, dict] | None = None) -> dict:
    """The page's record of one node; pass ``index`` (:func:`_links_by_node`) when describing many nodes."""
    incoming, outgoing = index if index is not None else _links_by_node(links)
    pk = node.pk  # one lookup: ``node.pk`` goes through the storage backend each time
    attrs = {k: _short(v) for k, v in node.base.attributes.all.items()}
    extras = {k: _short(v) for k, v in node.base.extras.all.items()}
    return {
        "pk": pk, "uuid": node.uuid, "title": _title(node), "kind": _kind(node),
        "type": node.node_type, "process_type": getattr(node, "process_type", None),
        "ctime": node.ctime.isoformat(timespec="seconds"),
        "exit_status": getattr(node, "exit_status", None),
        "attributes": attrs, "extras": extras,
        "inputs": list(incoming.get(pk, [])),
        "outputs": list(outgoing.get(pk, [])),
    }


def _process_name(node) -> str:
    return getattr(node, "process_label", None) or type(node).__name__


def group_repeated(nodes: dict, links, keep=(), min_size: int = GROUP_MIN) -> dict[int, str]:
    """pk → group key for the nodes to collapse: processes of one label called by one workflow (at least
    ``min_size``), and the data nodes whose every link touches that group only. Nodes in ``keep`` stay."""
    caller = {dst: src for src, dst, _, typ in links if typ.startswith("call")}
    siblings: dict[tuple[int, str], list[int]] = defaultdict(list)
    for pk, node in nodes.items():
        if pk in caller and pk not in keep and _kind(node) in ("calc", "work"):
            siblings[(caller[pk], _process_name(node))].append(pk)
    groups: dict[int, str] = {}
    for (parent, name), members in siblings.items():
        if len(members) >= min_size:
            key = "g" + re.sub(r"[^A-Za-z0-9_]", "_", f"{parent}_{name}")
            groups.update((m, key) for m in members)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for src, dst, _, _ in links:
        neighbours[src].add(dst)
        neighbours[dst].add(src)
    for pk, node in nodes.items():
        if pk in keep or pk in groups or _kind(node) != "data":
            continue
        owners = {groups.get(other) for other in neighbours[pk]}
        if len(owners) == 1 and None not in owners:
            groups[pk] = owners.pop()
    return groups


def _store_run_info(run: dict) -> dict:
    created = run.get("created")
    return {"pk": None, "title": f"store run {run['run_id']}", "kind": "run", "type": "agi-data store run",
            "uuid": f"store run {run['run_id']} at version {run.get('version', '?')}",
            "ctime": created or "", "attributes": {k: _short(v) for k, v in run.items()}, "extras": {},
            "inputs": [], "outputs": []}


def _group_info(key: str, members: list[int], info: dict) -> dict:
    procs = [pk for pk in members if info[f"n{pk}"]["kind"] != "data"]
    name = info[f"n{procs[0]}"]["title"].rsplit(" [", 1)[0]
    n_data = len(members) - len(procs)
    return {"pk": None, "title": f"{name} ×{len(procs)}" + (f" (+{n_data} data)" if n_data else ""),
            "kind": "group", "type": "group of repeated processes", "uuid": "", "ctime": "",
            "attributes": {"processes": len(procs), "data nodes": n_data}, "extras": {},
            "members": [{"label": info[f"n{pk}"]["kind"], "pk": pk} for pk in sorted(members)],
            "inputs": [], "outputs": []}


def _dot(info: dict, drawn: set[str], edges: dict) -> str:
    lines = ["digraph provenance {",
             'rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for key in sorted(drawn, key=str):
        item = info[key]
        label = item["title"].replace('"', "'")
        extra = ", penwidth=2" if item["kind"] == "group" else ""
        lines.append(f'"{key}" [id="{key}", label="{label}", fillcolor="{_COLOURS[item["kind"]]}"{extra}];')
    for (src, dst), (labels, dashed) in sorted(edges.items()):
        text = labels[0] if len(labels) == 1 else (", ".join(labels) if len(labels) <= 3 else f"{len(labels)} links")
        style = ", style=dashed" if dashed else ""
        lines.append(f'"{src}" -> "{dst}" [label="{text.replace(chr(34), chr(39))}", fontsize=8{style}];')
    lines.append("}")
    return "\n".join(lines)


def build_page(roots: Iterable, out: str | Path, *, store_runs: Iterable[dict] = (), title: str = "Provenance",
               focus: str | None = None, group_min: int = GROUP_MIN) -> Path:
    """Write the page to ``out`` and return its path.

    ``roots``: AiiDA nodes (or pks / UUIDs); the graph is what :func:`collect` reaches from them.
    ``store_runs``: one dict per store run, with ``run_id``, ``provenance_uuid``, ``version``, optionally
    ``created`` and any extra keys (all shown as the run's attributes). The run is linked to the node it
    names: ``written_by`` (optional), a list of ``{"label", "uuid"}`` (e.g. the trajectory's and the
    Wannier centres' WorkChains), else ``provenance_uuid``. Nodes that are not in the graph
    (another profile) are left unlinked. ``focus``: the run id (or node pk) the page opens centred
    on (default: the first store run, else the first root). ``group_min``: see :func:`group_repeated`.
    """
    from aiida.orm import load_node

    roots = [load_node(r) if isinstance(r, (int, str)) else r for r in roots]
    nodes, links = collect(roots)
    index = _links_by_node(links)
    info = {f"n{pk}": node_info(n, links, index=index) for pk, n in nodes.items()}
    store_runs = list(store_runs)
    run_edges = []
    for run in store_runs:
        key = f"run_{run['run_id']}"
        info[key] = _store_run_info(run)
        for source in run.get("written_by") or [{"label": "written_by", "uuid": run.get("provenance_uuid")}]:
            if not source.get("uuid"):
                continue
            try:
                pk = load_node(source["uuid"]).pk
            except Exception:  # noqa: BLE001 - a run whose node is in another profile
                continue
            if pk in nodes:
                label = "writes" if source["label"] == "written_by" else f"writes {source['label']}"
                run_edges.append((pk, key, label))
                info[key]["inputs"].append({"label": source["label"], "pk": pk})
    keep = {r.pk for r in roots} | {pk for pk, _, _ in run_edges}
    groups = group_repeated(nodes, links, keep=keep, min_size=group_min)
    members: dict[str, list[int]] = defaultdict(list)
    for pk, key in groups.items():
        members[key].append(pk)
        info[f"n{pk}"]["group"] = key
    for key, pks in members.items():
        info[key] = _group_info(key, pks, info)

    def drawn_as(pk) -> str:
        return groups.get(pk, f"n{pk}")

    edges: dict[tuple[str, str], tuple[list[str], bool]] = {}
    for src, dst, label, _ in sorted(links):
        a, b = drawn_as(src), drawn_as(dst)
        if a != b:
            labels, _ = edges.setdefault((a, b), ([], False))
            if label not in labels:
                labels.append(label)
    for pk, key, label in run_edges:
        edges[(drawn_as(pk), key)] = ([label], True)
    drawn = {drawn_as(pk) for pk in nodes} | {f"run_{r['run_id']}" for r in store_runs}
    if focus is None:
        focus = f"run_{store_runs[0]['run_id']}" if store_runs else (f"n{roots[0].pk}" if roots else "")
    elif not str(focus).startswith(("run_", "n")):
        focus = f"run_{focus}"
    svg = _dot_svg(_dot(info, drawn, edges))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(info, default=str).replace("</", "<\\/")  # no "</script>" inside the script
    out.write_text(_PAGE.format(title=html.escape(title), svg=svg, data=data, focus=json.dumps(focus)))
    return out


def _dot_svg(dot: str) -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError("graphviz 'dot' is not installed (apt-get install graphviz; `make setup` does it)")
    svg = subprocess.run([exe, "-Tsvg"], input=dot, capture_output=True, text=True, check=True).stdout
    return svg[svg.index("<svg"):]


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: Helvetica, Arial, sans-serif; margin: 0; display: flex; height: 100vh; }}
#left {{ flex: 3; display: flex; flex-direction: column; border-right: 1px solid #ccc; min-width: 0; }}
#toolbar {{ padding: .4em; border-bottom: 1px solid #ccc; font-size: 13px; }}
#toolbar input {{ width: 16em; }}
#graph {{ flex: 1; overflow: hidden; cursor: grab; }}
#graph svg {{ width: 100%; height: 100%; display: block; }}
#panel {{ flex: 2; overflow: auto; padding: 1em; font-size: 13px; }}
#panel pre {{ white-space: pre-wrap; background: #f6f6f6; padding: .5em; }}
g.node {{ cursor: pointer; }}
g.node.selected polygon, g.node.selected path {{ stroke: #d00; stroke-width: 3; }}
g.node.match polygon, g.node.match path {{ stroke: #06c; stroke-width: 3; }}
a.jump {{ color: #0645ad; cursor: pointer; text-decoration: underline; }}
</style></head>
<body>
<div id="left">
<div id="toolbar"><input id="search" type="search" placeholder="search: pk, uuid, label, type (Enter: next)">
<button id="fit" title="the whole graph">fit</button> <button id="zoom-in">+</button> <button id="zoom-out">−</button>
<button id="home" title="centre on the run">run</button> <span id="search-result"></span></div>
<div id="graph">{svg}</div>
</div>
<div id="panel"><h2>{title}</h2><p id="hint">Click a node to see its attributes, inputs and outputs. Drag to pan,
wheel to zoom. Purple nodes are groups of repeated processes: click one to list its members.</p><div id="details"></div></div>
<script>
const NODES = {data};
const FOCUS = {focus};
const svg = document.querySelector('#graph svg');
const FULL = svg.viewBox.baseVal ? {{x: svg.viewBox.baseVal.x, y: svg.viewBox.baseVal.y,
  w: svg.viewBox.baseVal.width, h: svg.viewBox.baseVal.height}} : null;
svg.removeAttribute('width'); svg.removeAttribute('height');
svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
let vb = Object.assign({{}}, FULL);
function setVB(x, y, w, h) {{ vb = {{x, y, w, h}}; svg.setAttribute('viewBox', `${{x}} ${{y}} ${{w}} ${{h}}`); }}
function box() {{ return document.getElementById('graph').getBoundingClientRect(); }}
function fit() {{ setVB(FULL.x, FULL.y, FULL.w, FULL.h); }}
function zoom(f, cx, cy) {{
  if (cx === undefined) {{ cx = vb.x + vb.w / 2; cy = vb.y + vb.h / 2; }}
  setVB(cx - (cx - vb.x) * f, cy - (cy - vb.y) * f, vb.w * f, vb.h * f);
}}
function toSvg(px, py) {{
  const p = svg.createSVGPoint(); p.x = px; p.y = py;
  return p.matrixTransform(svg.getScreenCTM().inverse());
}}
function drawnKey(key) {{
  if (document.getElementById(key)) return key;
  const n = NODES[key]; return n && n.group ? n.group : key;
}}
function centreOn(key) {{
  const g = document.getElementById(drawnKey(key)); if (!g) return false;
  const r = g.getBoundingClientRect();
  const a = toSvg(r.left, r.top), b = toSvg(r.right, r.bottom);
  const b0 = box();
  // readable: one SVG point per screen pixel, never more than the whole graph
  let w = Math.min(Math.max(FULL.w, FULL.h * b0.width / b0.height), b0.width);
  let h = w * b0.height / b0.width;
  setVB((a.x + b.x) / 2 - w / 2, (a.y + b.y) / 2 - h / 2, w, h);
  return true;
}}
function esc(s) {{ return String(s).replace(/[&<>]/g, c => ({{'&':'&amp;','<':'&lt;','>':'&gt;'}}[c])); }}
function links(list) {{
  if (!list || !list.length) return '<i>none</i>';
  return '<ul>' + list.map(l => `<li>${{esc(l.label)}}: <a class="jump" data-key="n${{l.pk}}">${{esc(NODES['n'+l.pk] ? NODES['n'+l.pk].title : l.pk)}}</a></li>`).join('') + '</ul>';
}}
function show(key) {{
  const n = NODES[key]; if (!n) return;
  document.querySelectorAll('g.node.selected').forEach(g => g.classList.remove('selected'));
  const g = document.getElementById(drawnKey(key)); if (g) g.classList.add('selected');
  const idLine = n.kind === 'run' ? 'store version' : 'uuid';
  const inGroup = n.group ? `<br><b>in group</b> <a class="jump" data-key="${{n.group}}">${{esc(NODES[n.group].title)}}</a>` : '';
  document.getElementById('details').innerHTML =
    `<h3 id="node-title">${{esc(n.title)}}</h3>` +
    `<p><b>type</b> ${{esc(n.process_type || n.type)}}<br><b>${{idLine}}</b> <span id="node-uuid">${{esc(n.uuid || '')}}</span>` +
    `<br><b>created</b> <span id="node-created">${{esc(n.ctime || '')}}</span>` + inGroup +
    (n.exit_status !== null && n.exit_status !== undefined ? `<br><b>exit status</b> ${{n.exit_status}}` : '') + '</p>' +
    (n.members ? `<h4>members</h4>${{links(n.members)}}` : '') +
    `<h4>attributes</h4><pre id="node-attributes">${{esc(JSON.stringify(n.attributes, null, 1))}}</pre>` +
    (Object.keys(n.extras || {{}}).length ? `<h4>extras</h4><pre>${{esc(JSON.stringify(n.extras, null, 1))}}</pre>` : '') +
    `<h4>inputs</h4>${{links(n.inputs)}}<h4>outputs</h4>${{links(n.outputs)}}`;
  document.querySelectorAll('a.jump').forEach(a => a.onclick = () => show(a.dataset.key));
}}
let hits = [], hit = -1;
function search(q, next) {{
  q = q.trim().toLowerCase();
  document.querySelectorAll('g.node.match').forEach(g => g.classList.remove('match'));
  if (!q) {{ hits = []; document.getElementById('search-result').textContent = ''; return; }}
  if (!next) {{
    // exact pk or uuid first, then titles that start with the text, then any field that contains it
    const rank = k => {{ const n = NODES[k];
      if (String(n.pk) === q || String(n.uuid).toLowerCase() === q) return 0;
      if (String(n.title).toLowerCase().startsWith(q)) return 1;
      return [n.title, n.uuid, n.pk, n.type, n.process_type].some(v => v !== null && v !== undefined &&
        String(v).toLowerCase().includes(q)) ? 2 : 3; }};
    hits = Object.keys(NODES).filter(k => rank(k) < 3).sort((a, b) => rank(a) - rank(b));
    hit = -1;
  }}
  hits.forEach(k => {{ const g = document.getElementById(drawnKey(k)); if (g) g.classList.add('match'); }});
  document.getElementById('search-result').textContent = `${{hits.length}} match${{hits.length === 1 ? '' : 'es'}}`;
  if (hits.length) {{ hit = (hit + 1) % hits.length; centreOn(hits[hit]); show(hits[hit]); }}
}}
const input = document.getElementById('search');
input.addEventListener('keydown', e => {{ if (e.key === 'Enter') search(input.value, hits.length > 0); }});
input.addEventListener('input', () => {{ hits = []; search(input.value, false); }});
document.getElementById('fit').onclick = fit;
document.getElementById('zoom-in').onclick = () => zoom(0.8);
document.getElementById('zoom-out').onclick = () => zoom(1.25);
document.getElementById('home').onclick = () => {{ centreOn(FOCUS); show(FOCUS); }};
const graph = document.getElementById('graph');
graph.addEventListener('wheel', e => {{ e.preventDefault(); const p = toSvg(e.clientX, e.clientY);
  zoom(e.deltaY > 0 ? 1.15 : 1 / 1.15, p.x, p.y); }}, {{passive: false}});
let drag = null;
graph.addEventListener('mousedown', e => {{ drag = {{x: e.clientX, y: e.clientY, vb: Object.assign({{}}, vb), moved: false}}; }});
window.addEventListener('mousemove', e => {{ if (!drag) return;
  const s = vb.w / box().width, dx = e.clientX - drag.x, dy = e.clientY - drag.y;
  if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
  if (drag.moved) setVB(drag.vb.x - dx * s, drag.vb.y - dy * s, vb.w, vb.h); }});
window.addEventListener('mouseup', () => {{ setTimeout(() => {{ drag = null; }}, 0); }});
document.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () => {{
  if (drag && drag.moved) return; show(g.id); }}));
if (FOCUS && !centreOn(FOCUS)) fit();
</script></body></html>
"""
