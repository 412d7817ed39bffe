"""Every analysis of the demo's report, as a list of small steps that each own their figure and numbers.

ML (Allegro) against classical (rigid-ion) trajectories: kinetic temperature
and NVE drift, MSD and D, VACF and VDOS with the Green–Kubo check, RDFs,
hops, cage correlation, GLE memory kernels with the Einstein ratio; on the
ML run's Wannier frames: centre assignment, rotor correlation and the
hop-conditioned paddlewheel average; and the same two at the MD frame rate
from the lone-pair moments a model predicted on every frame (beside the
DFT points).

Reproducible by construction: every number is computed by a *recipe* — a few
lines of Python over the store and :mod:`agi_data.analysis`'s public
functions, with every parameter written out — which the report executes and
records (:meth:`Context.compute`). :meth:`agi_data.report.render.Report.write`
writes the recipes next to the report as ``reproduce.py``, pinned to the
store versions the report read; running it recomputes every number from the
store and compares.

Temperature: the production runs are NVE, whose kinetic temperature is not
the nominal one. k_BT/(mD) and C(0) = 3k_BT/m of the kernels use the
measured kinetic temperature of the Ag⁺ velocities.

One module per topic, each a few steps over what :mod:`.context` shares (the
parameters, the recipes' :data:`PRELUDE`, :class:`Context`): :mod:`.transport_steps`
(temperature and drift, MSD and D, VACF and VDOS), :mod:`.structure_steps` (RDFs,
hops, cage correlation), :mod:`.kernel_steps` (memory kernels, their errors, the
kernels next to rotating and still iodides), :mod:`.paddlewheel_steps` (Wannier
frames and predicted moments), :mod:`.check_steps` (physics checks, verdict). This
package puts them in order (:data:`STEPS`) and runs them (:func:`analyse`).
"""

from __future__ import annotations

from collections.abc import Callable

from ...report.render import Report
from ...store import Store
from .check_steps import PHYSICS_CHECKS, physics_checks, verdict
from .context import HOP_MIN_DWELL_PS, PRELUDE, Context, RunRef, equally_spaced_block
from .kernel_steps import conditioned_kernels, kernel_statistics, memory_kernels
from .paddlewheel_steps import paddlewheels, paddlewheels_model
from .structure_steps import hops_and_cages, structure
from .transport_steps import thermodynamics, transport, vacf_vdos

__all__ = [
    "STEPS", "analyse",
    # the steps, by module
    "thermodynamics", "transport", "vacf_vdos",
    "structure", "hops_and_cages",
    "memory_kernels", "kernel_statistics", "conditioned_kernels",
    "paddlewheels", "paddlewheels_model",
    "physics_checks", "verdict", "PHYSICS_CHECKS",
    # what the steps share
    "Context", "RunRef", "PRELUDE", "HOP_MIN_DWELL_PS", "equally_spaced_block",
]


# --------------------------------------------------------------------------------------------- the steps
#: the report's steps, in order: (progress label, step)
STEPS: list[tuple[str, Callable[[Context], None]]] = [
    ("temperature and drift", thermodynamics),
    ("MSD and diffusion", transport),
    ("VACF and VDOS", vacf_vdos),
    ("RDF", structure),
    ("hops and cage correlation", hops_and_cages),
    ("GLE memory kernels", memory_kernels),
    ("Wannier frames and paddlewheels", paddlewheels),
    ("kernel errors and the models' difference", kernel_statistics),
    ("paddlewheels at the MD frame rate", paddlewheels_model),
    ("kernels next to rotating and still iodides", conditioned_kernels),
    ("physics checks", physics_checks),
    ("verdict", verdict),
]


def analyse(store: Store, report: Report, *, ml_run: str, classical_run: str | None = None,
            wannier_run: str | None = None, step: Callable[[str], None] = lambda name: None,
            steps=None) -> dict:
    """Run every step of :data:`STEPS` (or ``steps``); add figures and numbers to ``report``; return the
    numbers by key. ``classical_run`` None: one run only (``agi analyse``)."""
    runs = [RunRef("Allegro" if classical_run else "run", ml_run, store.trajectory(ml_run))]
    if classical_run:
        runs.append(RunRef("classical", classical_run, store.trajectory(classical_run)))
    for r in runs:
        report.pin(r.run_id, r.ds.attrs.get("store_version"))
    report.bind_store(store)
    ctx = Context(store, report, runs, wannier_run=wannier_run or ml_run)
    for name, fn in (steps if steps is not None else STEPS):
        step(name)
        fn(ctx)
    return ctx.out
