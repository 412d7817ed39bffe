"""A clickable provenance page: the AiiDA graph around some nodes as one self-contained HTML file.

The graph is laid out by graphviz (``dot -Tsvg``); every node of the SVG
carries its AiiDA pk, and a click shows that node's type, label, attributes,
extras, inputs and outputs (embedded as JSON: the page needs no server and
works from ``file://``). Store runs appear as nodes of their own, linked to
the AiiDA node whose UUID they record, and show their store version.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

MAX_ATTR_CHARS = 400

_COLOURS = {"data": "#dbeafe", "calc": "#fde68a", "work": "#fca5a5", "run": "#bbf7d0"}


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


def collect(roots: Iterable, *, depth: int = 8, max_nodes: int = 400):
    """Nodes and links reachable from ``roots`` following links backwards (inputs) and forwards (outputs).

    Forwards from a data node only when it is a root: a shared input (a pseudopotential, a code's
    parameters) leads forwards to every calculation in the profile that used it, not to this chain.
    """
    from aiida.orm import Data, load_node

    roots = [load_node(r) if isinstance(r, (int, str)) else r for r in roots]
    nodes = {n.pk: n for n in roots}
    root_pks = set(nodes)
    links: set[tuple[int, int, str, str]] = set()
    frontier = list(nodes.values())
    for _ in range(depth):
        nxt = []
        for node in frontier:
            for direction in ("incoming", "outgoing"):
                if direction == "outgoing" and isinstance(node, Data) and node.pk not in root_pks:
                    continue
                triples = (node.base.links.get_incoming() if direction == "incoming"
                           else node.base.links.get_outgoing()).all()
                for t in triples:
                    other = t.node
                    src, dst = (other.pk, node.pk) if direction == "incoming" else (node.pk, other.pk)
                    links.add((src, dst, t.link_label, t.link_type.value))
                    if other.pk not in nodes and len(nodes) < max_nodes:
                        nodes[other.pk] = other
                        nxt.append(other)
        frontier = nxt
        if not frontier:
            break
    links = {lk for lk in links if lk[0] in nodes and lk[1] in nodes}
    return nodes, links


def node_info(node, links) -> dict:
    attrs = {k: _short(v) for k, v in node.base.attributes.all.items()}
    extras = {k: _short(v) for k, v in node.base.extras.all.items()}
    return {
        "pk": node.pk, "uuid": node.uuid, "title": _title(node), "kind": _kind(node),
        "type": node.node_type, "process_type": getattr(node, "process_type", None),
        "ctime": node.ctime.isoformat(timespec="seconds"),
        "exit_status": getattr(node, "exit_status", None),
        "attributes": attrs, "extras": extras,
        "inputs": [{"label": lbl, "pk": s} for s, d, lbl, _ in links if d == node.pk],
        "outputs": [{"label": lbl, "pk": d} for s, d, lbl, _ in links if s == node.pk],
    }


def build_page(roots: Iterable, out: str | Path, *, store_runs: Iterable[dict] = (), title: str = "Provenance") -> Path:
    """Write the page to ``out`` and return its path.

    ``roots``: AiiDA nodes (or pks / UUIDs); the graph is what :func:`collect` reaches from them.
    ``store_runs``: one dict per store run, with ``run_id``, ``provenance_uuid``, ``version`` and any
    extra keys (all shown as the run's attributes). The run is linked to the node it names:
    ``written_by`` (optional), a list of ``{"label", "uuid"}`` (e.g. the trajectory's and the
    Wannier centres' WorkChains), else ``provenance_uuid``. Nodes that are not in the graph
    (another profile) are left unlinked.
    """
    from aiida.orm import load_node

    nodes, links = collect(roots)
    info = {f"n{pk}": node_info(n, links) for pk, n in nodes.items()}
    run_edges = []
    for run in store_runs:
        key = f"run_{run['run_id']}"
        info[key] = {"pk": None, "title": f"store run {run['run_id']}", "kind": "run", "type": "agi-data store run",
                     "attributes": {k: _short(v) for k, v in run.items()}, "extras": {}, "inputs": [], "outputs": []}
        for source in run.get("written_by") or [{"label": "written_by", "uuid": run.get("provenance_uuid")}]:
            if not source.get("uuid"):
                continue
            try:
                pk = load_node(source["uuid"]).pk
            except Exception:  # noqa: BLE001 - a run whose node is in another profile
                continue
            if pk in nodes:
                label = "writes" if source["label"] == "written_by" else f"writes {source['label']}"
                run_edges.append((f"n{pk}", key, label))
                info[key]["inputs"].append({"label": source["label"], "pk": pk})
    lines = ["digraph provenance {", 'rankdir=TB; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for key, item in info.items():
        label = item["title"].replace('"', "'")
        lines.append(f'"{key}" [id="{key}", label="{label}", fillcolor="{_COLOURS[item["kind"]]}"];')
    for src, dst, label, _ in sorted(links):
        lines.append(f'"n{src}" -> "n{dst}" [label="{label}", fontsize=8];')
    for src, dst, label in run_edges:
        lines.append(f'"{src}" -> "{dst}" [label="{label}", style=dashed];')
    lines.append("}")
    svg = _dot_svg("\n".join(lines))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_PAGE.format(title=html.escape(title), svg=svg, data=json.dumps(info, default=str)))
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
#graph {{ flex: 3; overflow: auto; border-right: 1px solid #ccc; }}
#panel {{ flex: 2; overflow: auto; padding: 1em; font-size: 13px; }}
#panel pre {{ white-space: pre-wrap; background: #f6f6f6; padding: .5em; }}
g.node {{ cursor: pointer; }}
g.node.selected polygon, g.node.selected path {{ stroke: #d00; stroke-width: 3; }}
a.jump {{ color: #0645ad; cursor: pointer; text-decoration: underline; }}
</style></head>
<body>
<div id="graph">{svg}</div>
<div id="panel"><h2>{title}</h2><p id="hint">Click a node to see its attributes, inputs and outputs.</p><div id="details"></div></div>
<script>
const NODES = {data};
function esc(s) {{ return String(s).replace(/[&<>]/g, c => ({{'&':'&amp;','<':'&lt;','>':'&gt;'}}[c])); }}
function links(list) {{
  if (!list.length) return '<i>none</i>';
  return '<ul>' + list.map(l => `<li>${{esc(l.label)}}: <a class="jump" data-key="n${{l.pk}}">${{esc(NODES['n'+l.pk] ? NODES['n'+l.pk].title : l.pk)}}</a></li>`).join('') + '</ul>';
}}
function show(key) {{
  const n = NODES[key]; if (!n) return;
  document.querySelectorAll('g.node.selected').forEach(g => g.classList.remove('selected'));
  const g = document.getElementById(key); if (g) g.classList.add('selected');
  document.getElementById('details').innerHTML =
    `<h3 id="node-title">${{esc(n.title)}}</h3>` +
    `<p><b>type</b> ${{esc(n.process_type || n.type)}}<br><b>uuid</b> ${{esc(n.uuid || '')}}<br><b>created</b> ${{esc(n.ctime || '')}}` +
    (n.exit_status !== null && n.exit_status !== undefined ? `<br><b>exit status</b> ${{n.exit_status}}` : '') + '</p>' +
    `<h4>attributes</h4><pre id="node-attributes">${{esc(JSON.stringify(n.attributes, null, 1))}}</pre>` +
    (Object.keys(n.extras).length ? `<h4>extras</h4><pre>${{esc(JSON.stringify(n.extras, null, 1))}}</pre>` : '') +
    `<h4>inputs</h4>${{links(n.inputs)}}<h4>outputs</h4>${{links(n.outputs)}}`;
  document.querySelectorAll('a.jump').forEach(a => a.onclick = () => show(a.dataset.key));
}}
document.querySelectorAll('g.node').forEach(g => g.addEventListener('click', () => show(g.id)));
</script></body></html>
"""
