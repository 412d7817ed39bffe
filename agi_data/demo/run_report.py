"""The demo's report for any store run: ``agi analyse RUN [--wannier] [-o DIR]``.

The same steps as the demo's report (:data:`agi_data.demo.analyses.STEPS`), on
one run — a run of the demo, of ``agi md run``, or one imported from a file
(``agi store import``). A step whose data the run lacks is skipped, and the
report and the command say which and why: no velocities (VACF, kernels, the
kinetic temperature), no forces (kernels), no cell (g(r)), no Ag or no I
atoms, too few frames for a time correlation, no Wannier centres (or
``--wannier`` not asked for), no predicted lone-pair moments (the full-frame-rate
paddlewheel steps). A run with fewer than two frames has nothing to
correlate: :class:`AnalyseError`. Where the run records the AiiDA node that
wrote it and the profile holds it, the provenance page is written beside the
report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from ..report.render import Report
from . import analyses as an

#: frames a time-correlation step needs (lags up to half the run, a diffusion fit over several of them)
MIN_FRAMES = 10

#: what each step needs of the run
NEEDS = {
    an.thermodynamics: (),
    an.transport: ("frames", "species"),
    an.vacf_vdos: ("frames", "species", "velocities"),
    an.structure: ("species", "cell"),
    an.hops_and_cages: ("frames", "species", "cell"),
    an.memory_kernels: ("frames", "species", "velocities", "forces"),
    an.paddlewheels: ("frames", "species", "cell", "wannier"),
    an.kernel_statistics: ("frames", "species", "velocities", "forces"),
    an.paddlewheels_model: ("frames", "species", "cell", "electronic"),
    an.conditioned_kernels: ("frames", "species", "velocities", "forces", "electronic"),
    an.physics_checks: (),
    an.verdict: (),
}


class AnalyseError(ValueError):
    """The run cannot be analysed at all (missing, or a single frame)."""


@dataclass
class RunReport:
    html: Path
    numbers: dict
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (step, why)
    provenance_page: Path | None = None


def _missing(need: str, ds: xr.Dataset, has_wannier: bool, wannier_asked: bool,
             has_electronic: bool = False) -> str | None:
    """Why the run lacks ``need``, or None."""
    n = int(ds.sizes.get("time", 0))
    symbols = set(map(str, ds["symbol"].values))
    if need == "frames" and n < MIN_FRAMES:
        return f"too short: {n} frames, a time correlation needs at least {MIN_FRAMES}"
    if need == "species" and not {"Ag", "I"} <= symbols:
        return f"no {' and no '.join(sorted({'Ag', 'I'} - symbols))} atoms (the analyses are of Ag⁺ in AgI)"
    if need in ("velocities", "forces") and need not in ds:
        return f"no {need} stored"
    if need == "cell" and "cell" not in ds:
        return "no cell stored (a periodic cell is needed)"
    if need == "wannier" and not wannier_asked:
        return "--wannier not given"
    if need == "wannier" and not has_wannier:
        return "no Wannier centres in the run"
    if need == "electronic" and not has_electronic:
        return "no predicted lone-pair moments in the run (agi.electronic writes them)"
    return None


def _has_group(read, run_id: str) -> bool:
    """Whether ``read(run_id)`` (``store.wannier``, ``store.electronic``) opens the run's group."""
    try:
        read(run_id)
    except Exception:  # noqa: BLE001 - any failure to open the group means: nothing to analyse
        return False
    return True


def _provenance_page(store, run_id: str, directory: Path, report: Report) -> Path | None:
    attrs = store.attrs(run_id)
    if not attrs.get("provenance_uuid"):
        report.notes.append(f"Run {run_id} records no AiiDA node (imported or run without provenance): "
                            "no provenance page.")
        return None
    try:
        from ..aiida.provenance import write_run_page
        from ..aiida.setup import load_agi_profile

        load_agi_profile()
        page = write_run_page(store, run_id, directory / "provenance.html")
    except Exception as err:  # noqa: BLE001 - the report stands without it; say why
        report.notes.append(f"No provenance page: {err}")
        return None
    report.provenance_page = page.name
    return page


def analyse_run(store, run_id: str, directory: Path, *, wannier: bool = False, provenance: bool = True,
                progress=lambda name: None) -> RunReport:
    """Write the report of store run ``run_id`` into ``directory``; see the module docstring."""
    if run_id not in store.run_ids():
        raise AnalyseError(f"no run {run_id!r} in the store at {store.root}; `agi store ls` lists the runs")
    ds = store.trajectory(run_id)
    n = int(ds.sizes.get("time", 0))
    if n < 2:
        raise AnalyseError(f"run {run_id!r} has {n} frame(s): every analysis here compares frames in time or "
                           "averages over them; append frames (agi md run --run-id … continues it) or analyse "
                           "another run")
    if ds.attrs.get("segment") == "equilibration":
        raise AnalyseError(f"run {run_id!r} is an equilibration segment (thermostatted, never analysed); "
                           f"analyse its production run {ds.attrs.get('production_run')!r}")
    has_wannier = wannier and _has_group(store.wannier, run_id)
    has_electronic = _has_group(store.electronic, run_id)
    steps, skipped = [], []
    for name, fn in an.STEPS:
        why = next((w for need in NEEDS[fn] if (w := _missing(need, ds, has_wannier, wannier, has_electronic))),
                   None)
        if why is None:
            steps.append((name, fn))
        else:
            skipped.append((name, why))
    report = Report(Path(directory), title=f"agi-data report of store run {run_id}")
    numbers = an.analyse(store, report, ml_run=run_id, wannier_run=run_id if has_wannier else None, step=progress,
                         steps=steps)
    for name, why in skipped:
        report.notes.append(f"Skipped {name}: {why}.")
    page = _provenance_page(store, run_id, Path(directory), report) if provenance else None
    html, _ = report.write()
    return RunReport(html, numbers, skipped, page)
