"""``agi demo``: the whole chain on a small α-AgI cell, resumable, with one progress display.

Stages (each an AiiDA WorkChain run in this process on the embedded profile):

1. ``sampling`` — classical rigid-ion MD (LAMMPS, seconds) of the reference cell, into a store run;
2. ``reference`` — pw.x SCF (energies, forces) on equally spaced frames of that run;
3. ``explore_train`` — a first, quick Allegro model trained on them;
4. ``explore`` — a short Allegro MD with that model, into a store run: the configurations an
   Allegro model actually visits (iodide–iodide contacts below 3.5 Å that the classical model never
   makes, small band gaps), which the classical frames do not cover;
5. ``explore_reference`` — pw.x on equally spaced frames of the exploration (one round of active
   learning; frames that turn metallic or do not converge are left out);
6. ``train`` — the Allegro model trained on both reference sets (merged by :func:`merge_datasets`);
7. ``md_allegro`` — Allegro MD (ASE), frames streamed into a store run;
8. ``md_classical`` — classical rigid-ion MD (LAMMPS), into another store run;
9. ``wannier`` — pw.x → wannier90.x on frames of the Allegro run, centres into the store: a short regular
   block (the DFT-only rotor points) and frames spread over the run (what the lone-pair model learns from);
10. ``electronic`` — the lone-pair model trained on those centres and run on every frame of the Allegro run
    (``agi.electronic``): the electronic state at the MD frame rate, linked to the DFT frames it learned from;
11. ``analysis`` — every analysis, figures and numbers, the report and the provenance page.

Why the exploration round (measured, docs/demo.md): a model trained on the classical frames alone
pairs iodides at 2.8 Å within ~1 ps; trained on those frames plus pw.x on its own exploration, the
final model keeps the iodide lattice (first I–I peak 4.3 Å, D(I)/D(Ag) 0.17 in 4 ps) though it still
lets ~0.25 iodides per iodide within 3.6 Å, where the classical model has none.

Resumable: a stage whose WorkChain finished successfully with the same settings
(found by a query on the provenance graph: the node's ``agi_demo`` extra holds
the digest :func:`stage_key` of the stage's resolved protocol and of the stages
it uses) is not run again; its outputs are taken from that node.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiida.engine import calcfunction

from .. import config
from ..aiida.data import ReferenceDataset
from ..aiida.protocols import load_protocol

STAGES = ("sampling", "reference", "explore_train", "explore", "explore_reference", "train", "md_allegro",
          "md_classical", "wannier", "electronic", "analysis")
#: stages whose failure leaves the rest of the report meaningful (the paddlewheel analyses need the Wannier
#: centres, their full-frame-rate versions the lone-pair model)
OPTIONAL_STAGES = ("wannier", "electronic")


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
DEPENDS = {"sampling": (), "reference": ("sampling",), "explore_train": ("reference",), "explore": ("explore_train",),
           "explore_reference": ("explore",), "train": ("reference", "explore_reference"), "md_allegro": ("train",),
           "md_classical": (), "wannier": ("md_allegro",),
           "electronic": ("wannier",)}
#: the protocol file (``agi_data/protocols/<name>.yaml``) of each stage's WorkChain
PROTOCOL_FILE = {"sampling": "md", "reference": "reference", "explore_train": "train", "explore": "md",
                 "explore_reference": "reference", "train": "train", "md_allegro": "md", "md_classical": "md",
                 "wannier": "wannier", "electronic": "electronic"}


def stage_key(settings: dict, stage: str) -> str:
    """A digest of what determines a stage's result: its entry in ``demo.yaml``, the protocol it resolves to
    in its WorkChain's file (so that editing e.g. ``train.yaml``'s ``demo`` protocol redoes the stage) and
    the keys of the stages it uses."""
    s = settings[stage]
    resolved = load_protocol(PROTOCOL_FILE[stage], s["protocol"], s.get("overrides"))
    parts = [json.dumps(s, sort_keys=True), json.dumps(resolved, sort_keys=True)]
    parts += [stage_key(settings, up) for up in DEPENDS[stage]]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def frame_indices(spec: dict, n_available: int) -> list[int]:
    """Equally spaced frames of a store run: ``first_frame``, ``first_frame + frame_stride``, … — ``n_frames``
    of them, less those at or beyond ``n_available`` (the run's length); with a ``spread`` entry (the same
    three keys), its frames too (sorted, each once)."""
    count, stride, first = int(spec["n_frames"]), int(spec["frame_stride"]), int(spec.get("first_frame", 0))
    if count < 1 or stride < 1 or first < 0:
        raise DemoError(f"frames: n_frames and frame_stride must be ≥ 1 and first_frame ≥ 0, got {spec}")
    frames = [f for f in range(first, first + count * stride, stride) if f < n_available]
    if spec.get("spread"):
        frames = sorted(set(frames) | set(frame_indices(spec["spread"], n_available)))
    return frames


@calcfunction
def merge_datasets(**datasets: ReferenceDataset) -> ReferenceDataset:
    """One ReferenceDataset with the structures of several, in the order of their keys (labels kept)."""
    atoms, labels = [], []
    for key in sorted(datasets):
        part = datasets[key].to_atoms()
        atoms += part
        labels += datasets[key].labels or [f"{key}:{i}" for i in range(len(part))]
    return ReferenceDataset.from_atoms(atoms, labels=labels)


def find_finished(stage: str, protocol: str | None, key: str):
    """The newest successfully finished WorkChain of this stage and settings, from the provenance graph.

    The key (:func:`stage_key`) holds everything that determines the stage's result, so a stage finished
    under another chain protocol with the same key is reused (the ``study`` and ``production`` chains share
    their reference set and model); ``protocol`` given: only that chain protocol's.
    """
    from aiida.orm import QueryBuilder, WorkflowNode

    filters = {"extras.agi_demo.stage": stage, "extras.agi_demo.key": key,
               "attributes.exit_status": 0, "attributes.process_state": "finished"}
    if protocol is not None:
        filters["extras.agi_demo.protocol"] = protocol
    qb = QueryBuilder().append(
        WorkflowNode, tag="wf",
        filters=filters,
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


#: the protocol files of the chain (``agi_data/protocols/<name>.yaml``, the layout of ``demo.yaml``), searched in
#: this order: ``demo.yaml`` (fast, demo) and ``study.yaml`` (study, production)
CHAIN_FILES = ("demo", "study")


def chain_protocols() -> dict[str, tuple[str, str]]:
    """``{protocol: (file, description)}`` of every chain protocol; a name in two files is an error."""
    from ..aiida.protocols import ProtocolError, available_protocols

    out: dict[str, tuple[str, str]] = {}
    for name in CHAIN_FILES:
        for protocol, description in available_protocols(name).items():
            if protocol in out:
                raise ProtocolError(f"chain protocol {protocol!r} is defined in both {out[protocol][0]}.yaml and "
                                    f"{name}.yaml; rename one")
            out[protocol] = (name, description)
    return out


def demo_settings(protocol: str) -> dict:
    """The chain's protocol (from ``demo.yaml`` or ``study.yaml``): which protocol and overrides each stage uses."""
    from ..aiida.protocols import ProtocolError

    known = chain_protocols()
    if protocol not in known:
        raise ProtocolError(f"unknown chain protocol {protocol!r}; available: {sorted(known)} (in "
                            f"{', '.join(f'{n}.yaml' for n in CHAIN_FILES)})")
    return load_protocol(known[protocol][0], protocol)


def _output_recipe(node, output: str) -> str:
    """Recipe lines that set ``m`` to an output node of a stage's process, in the profile the report was made in."""
    return ("from agi_data.aiida.setup import load_agi_profile\nload_agi_profile()\n"
            "from aiida.orm import load_node\n"
            f"m = load_node({node.uuid!r}).outputs.{output}\n")


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
    def stage_sampling(self):
        return self._md("sampling")

    def _reference(self, stage: str, source: str):
        """pw.x on equally spaced frames of the MD stage ``source`` (all of them: a run too short is an error)."""
        from ..aiida.workflows.reference import ReferenceWorkChain

        s = self.settings[stage]
        run_id = self.run_id(source)
        n = self.store.trajectory(run_id).sizes["time"]
        frames = frame_indices(s, n)
        if len(frames) < int(s["n_frames"]):
            raise DemoError(f"stage {stage!r}: {s['n_frames']} frames every {s['frame_stride']} from frame "
                            f"{s.get('first_frame', 0)} asked for, but run {run_id!r} has {n}: lengthen "
                            f"{source!r} or take fewer frames in agi_data/protocols/demo.yaml")
        builder = ReferenceWorkChain.get_builder_from_protocol(
            None, protocol=s["protocol"], overrides=s.get("overrides"), store=self.store, run=run_id, frames=frames)
        return _run(builder, stage, self.protocol, stage_key(self.settings, stage))

    def stage_reference(self):
        return self._reference("reference", "sampling")

    def stage_explore_reference(self):
        return self._reference("explore_reference", "explore")

    def _train(self, stage: str, dataset):
        from ..aiida.workflows.train import TrainWorkChain

        s = self.settings[stage]
        builder = TrainWorkChain.get_builder_from_protocol(None, dataset, protocol=s["protocol"],
                                                           overrides=s.get("overrides"))
        return _run(builder, stage, self.protocol, stage_key(self.settings, stage))

    def stage_explore_train(self):
        return self._train("explore_train", self.nodes["reference"].outputs.dataset)

    def stage_train(self):
        parts = {stage: self.nodes[stage].outputs.dataset for stage in ("reference", "explore_reference")}
        return self._train("train", merge_datasets(**parts))

    def run_id(self, stage: str) -> str:
        """The store run of an MD stage: its base name and the digest of its settings, so that a
        changed model or protocol writes a new run instead of continuing an old one."""
        return f"{self.settings[stage]['run_id']}-{stage_key(self.settings, stage)[:6]}"

    def _md(self, stage: str, **kwargs):
        from ..aiida.workflows.md import MdWorkChain

        s = self.settings[stage]
        builder = MdWorkChain.get_builder_from_protocol(
            None, None, protocol=s["protocol"], store=self.store, run=self.run_id(stage), overrides=s.get("overrides"),
            **kwargs)
        return _run(builder, stage, self.protocol, stage_key(self.settings, stage))

    def _model(self, stage: str):
        out = self.nodes[stage].outputs
        return out.compiled_model if "compiled_model" in out else out.model

    def stage_explore(self):
        return self._md("explore", model=self._model("explore_train"))

    def stage_md_allegro(self):
        return self._md("md_allegro", model=self._model("train"))

    def stage_md_classical(self):
        return self._md("md_classical")

    def stage_wannier(self):
        from ..aiida.workflows.wannier import WannierWorkChain

        s = self.settings["wannier"]
        run_id = self.run_id("md_allegro")
        frames = frame_indices(s, self.store.trajectory(run_id).sizes["time"])
        builder = WannierWorkChain.get_builder_from_protocol(
            None, run_id, frames, protocol=s["protocol"], overrides=s.get("overrides"), store=self.store)
        return _run(builder, "wannier", self.protocol, stage_key(self.settings, "wannier"))

    def stage_electronic(self):
        from ..aiida.workflows.electronic import ElectronicWorkChain

        if "wannier" not in self.nodes:
            raise DemoError("stage 'electronic': the wannier stage has no centres to learn from (it failed; see "
                            "the notes)")
        s = self.settings["electronic"]
        sets = dict(self.nodes["wannier"].outputs.wannier_sets)
        builder = ElectronicWorkChain.get_builder_from_protocol(
            None, self.run_id("md_allegro"), store=self.store, wannier_sets=sets, protocol=s["protocol"],
            overrides=s.get("overrides"))
        return _run(builder, "electronic", self.protocol, stage_key(self.settings, "electronic"))

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
                node = None if force else find_finished(stage, None, stage_key(self.settings, stage))
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

    def _report_training(self, report) -> None:
        """What the Allegro model was trained on, and its held-out errors against predicting F = 0."""
        parts = []
        for stage, source in (("reference", "sampling"), ("explore_reference", "explore")):
            if stage not in self.nodes:
                continue
            ref = self.nodes[stage]
            frames = ref.inputs.frames.get_list() if "frames" in ref.inputs else []
            failed = len(ref.outputs.dataset.base.attributes.get("failures", {}))
            parts.append(f"{len(ref.outputs.dataset)} frames of run {self.run_id(source)} (of frames "
                         f"{', '.join(map(str, frames))}; {failed} left out: metallic or SCF not converged) "
                         f"by {ref.process_label}<{ref.pk}>")
        if parts:
            report.notes.append("Allegro training data: pw.x energies and forces of " + "; and ".join(parts) + ".")
        if "train" in self.nodes:
            train = self.nodes["train"]
            m = train.outputs.test_metrics
            src = f"held-out test structures, {train.process_label}<{train.pk}>"
            metrics = _output_recipe(train, "test_metrics")
            params = {"metrics": f"test_metrics of {train.process_label}<{train.pk}>"}
            for name, key, units, scale in (
                    ("held-out force RMSE, Allegro", "force_rmse_eV_per_A", "eV/Å", 1),
                    ("held-out force RMS (the error of F = 0)", "force_rms_reference_eV_per_A", "eV/Å", 1),
                    ("held-out energy RMSE, Allegro", "energy_rmse_eV_per_atom", "meV/atom", 1000)):
                report.number(name, scale * m[key], units, src, params=params, key=key,
                              recipe=metrics + f"value = {scale} * m[{key!r}]\n")

    def _report_electronic(self, report) -> None:
        """What the lone-pair model learned from, and its held-out errors (the caveat of every number from it)."""
        if "electronic" not in self.nodes:
            return
        node = self.nodes["electronic"]
        m = node.outputs.metrics.get_dict()
        frames = sorted(int(f) for s in node.inputs.wannier_sets.values() for f in s.frames)
        report.notes.append(
            f"Lone-pair model: trained by {node.process_label}<{node.pk}> on the DFT Wannier centres of frames "
            f"{', '.join(map(str, frames))} of run {self.run_id('md_allegro')} ({m.get('n_train_frames')} frames "
            f"trained, {m.get('n_validation_frames')} held out: the last by time), then run on every frame of that "
            "run. Its held-out errors rest on a handful of frames: read the full-frame-rate paddlewheel numbers "
            "with them (docs/electronic-validation.md has the model on 100 DFT frames).")
        src = f"held-out Wannier frames, {node.process_label}<{node.pk}>"
        recipe = _output_recipe(node, "metrics") + "m = m.get_dict()\n"
        params = {"metrics": f"metrics of {node.process_label}<{node.pk}>"}
        for name, key, units in (("held-out rotor-function RMSE, lone-pair model", "rotor_rmse", "1"),
                                 ("held-out rotor-function RMS (the error of M = 0)", "rotor_rms", "1"),
                                 ("held-out dipole RMSE / its standard deviation", "dipole_rel", "1")):
            if key in m:
                report.number(name, m[key], units, src, params=params, key=f"electronic_{key}",
                              recipe=recipe + f"value = m[{key!r}]\n")

    def report(self, report_dir: Path | None = None, progress=lambda name: None) -> Path:
        from ..report.provenance_page import build_page
        from ..report.render import Report
        from .analyses import analyse

        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        directory = Path(report_dir) if report_dir else config.reports_path() / stamp
        report = Report(directory, title=f"agi-data demo ({self.protocol} protocol)")
        t0 = time.perf_counter()
        ml, classical = self.run_id("md_allegro"), self.run_id("md_classical")
        self._report_training(report)
        self._report_electronic(report)
        numbers = analyse(self.store, report, ml_run=ml, classical_run=classical, step=progress)
        runs = self.store.runs()
        shown = [self.run_id(stage) for stage in ("sampling", "explore", "md_allegro", "md_classical")]
        store_runs = [row._asdict() for row in runs[runs.run_id.isin(shown)].itertuples(index=False)]
        build_page([n for n in self.nodes.values()], directory / "provenance.html",
                   store_runs=store_runs, title="Provenance of the demo", focus=ml)
        report.provenance_page = "provenance.html"
        for stage, seconds, status in self.timings:
            report.timing(stage, seconds, status)
        report.timing("analysis", time.perf_counter() - t0, "ran")
        report.notes.append(f"Store: {self.store.root}; AiiDA profile under {config.aiida_path()}.")
        report.notes.extend(f"Stage failed: {msg}" for msg in self.failures)
        html, _ = report.write()
        self.numbers, self.checks, self.report_timings = numbers, report.checks, report.timings
        return html
