"""``agi demo``: the whole chain on a small α-AgI cell, resumable, with one progress display.

Stages (each an AiiDA WorkChain run in this process on the embedded profile):

1. ``reference`` — pw.x SCF (energies, forces, stress) on perturbed α-AgI snapshots;
2. ``train`` — an Allegro model trained on them (nequip-train);
3. ``md_allegro`` — Allegro MD (ASE), frames streamed into a store run;
4. ``md_classical`` — classical rigid-ion MD (LAMMPS), into another store run;
5. ``wannier`` — pw.x → wannier90.x on frames sampled from the Allegro run, centres into the store;
6. ``analysis`` — every analysis, figures and numbers, the report and the provenance page.

Resumable: a stage whose WorkChain finished successfully for this protocol
(found by a query on the provenance graph: the node's ``agi_demo`` extra) is
not run again; its outputs are taken from that node.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..aiida.protocols import load_protocol

STAGES = ("reference", "train", "md_allegro", "md_classical", "wannier", "analysis")
#: stages whose failure leaves the rest of the report meaningful (the paddlewheel analyses need the Wannier centres)
OPTIONAL_STAGES = ("wannier",)


class DemoError(RuntimeError):
    """A stage failed; the message names it, its node and how to see why."""


@dataclass
class StageResult:
    name: str
    node: object | None
    seconds: float
    reused: bool


@dataclass
class DemoState:
    protocol: str
    store_path: Path
    results: dict[str, StageResult] = field(default_factory=dict)


#: what each stage consumes: a stage is redone when its own settings or those of a stage it uses change
DEPENDS = {"reference": (), "train": ("reference",), "md_allegro": ("train",), "md_classical": (),
           "wannier": ("md_allegro",)}


def stage_key(settings: dict, stage: str) -> str:
    """A digest of the settings that determine a stage's result, its upstream stages' included."""
    parts = [json.dumps(settings[stage], sort_keys=True)] + [stage_key(settings, up) for up in DEPENDS[stage]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def find_finished(stage: str, protocol: str, key: str):
    """The newest successfully finished WorkChain of this stage, protocol and settings, from the provenance graph."""
    from aiida.orm import QueryBuilder, WorkflowNode

    qb = QueryBuilder().append(
        WorkflowNode, tag="wf",
        filters={"extras.agi_demo.stage": stage, "extras.agi_demo.protocol": protocol, "extras.agi_demo.key": key,
                 "attributes.exit_status": 0, "attributes.process_state": "finished"},
    ).order_by({"wf": {"ctime": "desc"}})
    hit = qb.first()
    return hit[0] if hit else None


def _run(builder, stage: str, protocol: str, key: str):
    from aiida.engine import run_get_node

    _, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise DemoError(
            f"stage {stage!r} failed: {node.process_label}<{node.pk}> exit status {node.exit_status}: "
            f"{node.exit_message or 'no message'}. See `verdi process report {node.pk}` "
            f"(with AIIDA_PATH={config.aiida_path()})."
        )
    node.base.extras.set("agi_demo", {"stage": stage, "protocol": protocol, "key": key})
    return node


def demo_settings(protocol: str) -> dict:
    """The demo's own protocol (``workflows/demo.yaml``): which protocol and overrides each stage uses."""
    return load_protocol("demo", protocol)


class Demo:
    """The chain, stage by stage. ``run()`` does everything; each stage can be called alone."""

    def __init__(self, protocol: str = "demo", *, store_path: Path | None = None, console=None):
        from .. import open_store

        self.protocol = protocol
        self.settings = demo_settings(protocol)
        self.store = open_store(store_path)
        self.console = console
        self.nodes: dict[str, object] = {}
        self.failures: list[str] = []
        self.timings: list[tuple[str, float, str]] = []

    # ------------------------------------------------------------------ stages
    def stage_reference(self):
        from ..aiida.workflows.reference import ReferenceWorkChain

        s = self.settings["reference"]
        builder = ReferenceWorkChain.get_builder_from_protocol(s["protocol"], overrides=s.get("overrides"))
        return _run(builder, "reference", self.protocol, stage_key(self.settings, "reference"))

    def stage_train(self):
        from ..aiida.workflows.train import TrainWorkChain

        s = self.settings["train"]
        dataset = self.nodes["reference"].outputs.dataset
        builder = TrainWorkChain.get_builder_from_protocol(dataset, s["protocol"], overrides=s.get("overrides"))
        return _run(builder, "train", self.protocol, stage_key(self.settings, "train"))

    def run_id(self, stage: str) -> str:
        """The store run of an MD stage: its base name and the digest of its settings, so that a
        changed model or protocol writes a new run instead of continuing an old one."""
        return f"{self.settings[stage]['run_id']}-{stage_key(self.settings, stage)[:6]}"

    def _md(self, stage: str, **kwargs):
        from ..aiida.workflows.md import MdWorkChain

        s = self.settings[stage]
        builder = MdWorkChain.get_builder_from_protocol(
            s["protocol"], store=self.store, run_id=self.run_id(stage), overrides=s.get("overrides"), **kwargs)
        return _run(builder, stage, self.protocol, stage_key(self.settings, stage))

    def stage_md_allegro(self):
        train = self.nodes["train"].outputs
        model = train.compiled_model if "compiled_model" in train else train.model
        return self._md("md_allegro", model=model)

    def stage_md_classical(self):
        return self._md("md_classical")

    def stage_wannier(self):
        from ..aiida.workflows.wannier import WannierWorkChain

        s = self.settings["wannier"]
        run_id = self.run_id("md_allegro")
        n = self.store.trajectory(run_id).sizes["time"]
        count, stride, first = int(s["n_frames"]), int(s["frame_stride"]), int(s.get("first_frame", 0))
        frames = [f for f in range(first, first + count * stride, stride) if f < n]  # equally spaced
        builder = WannierWorkChain.get_builder_from_protocol(
            s["protocol"], overrides=s.get("overrides"), store=self.store, run_id=run_id, frames=frames)
        return _run(builder, "wannier", self.protocol, stage_key(self.settings, "wannier"))

    # ------------------------------------------------------------------ driver
    def run(self, *, report_dir: Path | None = None, force: bool = False) -> Path:
        """Run (or reuse) every stage, then analyse and write the report; returns the report's HTML path."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        weights = {k: float(v) for k, v in self.settings["expected_seconds"].items()}
        total = sum(weights.values())
        columns = [TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
        with Progress(*columns, console=self.console, transient=False) as bar:
            task = bar.add_task("agi demo", total=total)
            for stage in STAGES[:-1]:
                bar.update(task, description=f"{stage} ({self.protocol})")
                t0 = time.perf_counter()
                node = None if force else find_finished(stage, self.protocol, stage_key(self.settings, stage))
                status = "reused from provenance" if node is not None else "ran"
                if node is None:
                    try:
                        node = getattr(self, f"stage_{stage}")()
                    except DemoError as err:
                        if stage not in OPTIONAL_STAGES:
                            raise
                        # the analyses that need this stage are left out of the report, which says why
                        self.failures.append(str(err))
                        self.timings.append((stage, time.perf_counter() - t0, "failed (see the notes)"))
                        bar.advance(task, weights[stage])
                        continue
                self.nodes[stage] = node
                self.timings.append((stage, time.perf_counter() - t0, f"{status}: {node.process_label}<{node.pk}>"))
                bar.advance(task, weights[stage])
            bar.update(task, description="analysis and report")
            t0 = time.perf_counter()
            html = self.report(report_dir, progress=lambda name: bar.update(task, description=f"analysis: {name}"))
            bar.advance(task, weights["analysis"])
        return html

    def report(self, report_dir: Path | None = None, progress=lambda name: None) -> Path:
        from ..report.provenance_page import build_page
        from ..report.render import Report
        from .analyses import analyse

        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = Path(report_dir) if report_dir else config.reports_path() / stamp
        report = Report(directory, title=f"agi-data demo ({self.protocol} protocol)")
        t0 = time.perf_counter()
        ml, classical = self.run_id("md_allegro"), self.run_id("md_classical")
        numbers = analyse(self.store, report, ml_run=ml, classical_run=classical, step=progress)
        runs = self.store.runs()
        store_runs = [row._asdict() for row in runs[runs.run_id.isin([ml, classical])].itertuples(index=False)]
        build_page([n for n in self.nodes.values()], directory / "provenance.html",
                   store_runs=store_runs, title="Provenance of the demo")
        report.provenance_page = "provenance.html"
        for stage, seconds, status in self.timings:
            report.timing(stage, seconds, status)
        report.timing("analysis", time.perf_counter() - t0, "ran")
        report.notes.append(f"Store: {self.store.root}; AiiDA profile under {config.aiida_path()}.")
        report.notes.extend(f"Stage failed: {msg}" for msg in self.failures)
        html, _ = report.write()
        self.numbers = numbers
        return html
