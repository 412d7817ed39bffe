"""What the report's steps share: their parameters, the recipes' prelude, the runs and the
:class:`Context` the steps fill, and the helpers more than one topic uses."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from ...report.render import Report
from ...store import Store

#: Å: I–I pairs closer than this do not occur in α-AgI (bcc iodides, first shell at 4.4 Å)
I_I_CONTACT_A = 3.6
#: ps: a hop counts when the ion stays at least this long in the site it leaves and the one it reaches;
#: the same value for the hop counts, the hop rate and the paddlewheel average, so their counts agree
HOP_MIN_DWELL_PS = 0.1
#: neighbours of the cage correlation
CAGE_NEIGHBOURS = 10
#: ps: longest lag of the VACF and of the memory kernel
VACF_MAX_LAG_PS = 1.0
KERNEL_MAX_LAG_PS = 0.5
#: ps: half-width of the hop-conditioned window
PADDLEWHEEL_WINDOW_PS = 0.5
RDF_DR_A = 0.05


#: the code every recipe runs after (also the head of reproduce.py): the store at the versions the report read
PRELUDE = '''\
import numpy as np

from agi_data import analysis as A
from agi_data import open_store
from agi_data.md import thermo

_cache = {}


def T(run_id):
    """The trajectory of a store run at the version the report read."""
    if ("T", run_id) not in _cache:
        _cache["T", run_id] = STORE.trajectory(run_id, version=VERSIONS.get(run_id))
    return _cache["T", run_id]


def W(run_id):
    """The Wannier centres of a store run at the version the report read."""
    if ("W", run_id) not in _cache:
        _cache["W", run_id] = STORE.wannier(run_id, version=VERSIONS.get("wannier:" + run_id))
    return _cache["W", run_id]


def E(run_id):
    """The lone-pair moments a model predicted on every frame of a store run, at the version the report read."""
    if ("E", run_id) not in _cache:
        _cache["E", run_id] = STORE.electronic(run_id, version=VERSIONS.get("electronic:" + run_id))
    return _cache["E", run_id]


def kinetic_temperature(ds, species):
    """Mean kinetic temperature (K) of one species' stored velocities: m<|v|^2>/(3 k_B), 3 dof per atom."""
    idx = np.flatnonzero(ds["symbol"].values == species)
    v = ds["velocities"].isel(atom=idx).values
    return thermo.kinetic_temperature(v, thermo.masses_u([species] * len(idx)), remove_com=False)
'''


def equally_spaced_block(ws: xr.Dataset) -> tuple[xr.Dataset, str]:
    """The longest block of Wannier frames on one regular grid (the time correlations need one), and a note
    when a left-out frame broke the grid; ties go to the finer grid, then the earlier block."""
    frames = np.asarray(ws["frame"].values)
    if frames.size < 3:
        return ws, ""
    steps = np.diff(frames)
    best = (0, 1)
    for step in np.unique(steps):  # blocks of consecutive frames ``step`` apart; the longest wins
        start = 0
        for i in range(1, frames.size + 1):
            if i == frames.size or steps[i - 1] != step:
                if i - start > best[1] - best[0]:
                    best = (start, i)
                start = i
    if best == (0, frames.size):
        return ws, ""
    kept = ws.isel(frame=slice(*best))
    return kept, (f"Wannier frames {frames.tolist()} are not equally spaced (frames spread over the run for the "
                  f"lone-pair model, or frames left out): the DFT time correlations use the longest regular block, "
                  f"frames {kept['frame'].values.tolist()}.")


@dataclass
class RunRef:
    """A store run as the report cites it."""

    label: str  # "Allegro" / "classical"
    run_id: str
    ds: xr.Dataset

    @property
    def source(self) -> str:
        uuid = self.ds.attrs.get("provenance_uuid")
        return f"store run {self.run_id}" + (f", AiiDA node {uuid[:8]}" if uuid else "")


@dataclass
class Context:
    """What the analysis steps share: the store, the report, the runs and what earlier steps found."""

    store: Store
    report: Report
    runs: list[RunRef]
    wannier_run: str | None = None
    out: dict = field(default_factory=dict)  # number key → value
    extra: dict = field(default_factory=dict)  # results a later step shows beside its own (e.g. the DFT rotor points)
    diffusion: dict = field(default_factory=dict)  # (label, species) → (max_lag, fit_range, plateau) of its D
    temperature: dict = field(default_factory=dict)  # label → (K, recipe lines)

    @property
    def cite(self) -> str:
        return "; ".join(r.source for r in self.runs)

    def d_recipe(self, r: RunRef, species: str, var: str = "d") -> str:
        """The recipe lines of the D reported for ``species`` of run ``r``."""
        return _d_recipe(r.run_id, species, *self.diffusion[(r.label, species)], var=var)

    def compute(self, recipe: str, **names) -> dict:
        """Run ``recipe`` (Python lines over :data:`PRELUDE`'s names and ``names``) and return its namespace."""
        ns = dict(self.report.namespace(PRELUDE, self.store))
        ns.update(names)
        exec(textwrap.dedent(recipe), ns)  # our own recipe text, recorded for reproduce.py
        return ns

    def number(self, key: str, name: str, recipe: str, units: str, source: str, *, params: dict,
               has_error: bool = False) -> dict:
        """Compute a number by its recipe (which sets ``value``, and ``stderr`` when ``has_error``) and add it."""
        ns = self.compute(recipe)
        value = float(ns["value"])
        stderr = float(ns["stderr"]) if has_error else None
        if stderr is not None and not np.isfinite(stderr):  # e.g. a least-squares D of an MSD plateau: no error
            stderr = None
        self.out[key] = value
        self.report.number(name, value, units, source, stderr, params=params, recipe=textwrap.dedent(recipe),
                           key=key)
        return ns


def _lag_max(ds: xr.Dataset, fraction: float = 0.5) -> float:
    t = ds["time"].values
    return float((t[-1] - t[0]) * fraction)


def _fmt_params(**params) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in params.items()}


def _d_recipe(run_id: str, species: str, max_lag: float, fit_range, plateau: bool = False, var: str = "d") -> str:
    """Lines that set ``m_<var>`` (the MSD) and ``<var>`` (its diffusion fit) of one species of one run.

    ``plateau``: the MSD does not grow over ``fit_range`` (an iodide sublattice that stays solid), where the
    GLS fit of :func:`~agi_data.analysis.diffusion_coefficient` refuses; then D is the ordinary least-squares
    slope / 6 over the same lags, with no error (it may come out ≤ 0).
    """
    m = f"m_{var} = A.msd(T({run_id!r}), {species!r}, max_lag_ps={max_lag!r}).compute()\n"
    if plateau:
        t0, t1 = fit_range
        return m + (f"w_{var} = m_{var}.sel(lag=slice({t0!r}, {t1!r}))\n"
                    f"{var} = {{'D': float(np.polyfit(w_{var}['lag'].values, w_{var}.values, 1)[0]) / 6, "
                    "'D_stderr': float('nan')}\n")
    fit = f", fit_range={fit_range!r}" if fit_range else ""
    return m + f"{var} = A.diffusion_coefficient(m_{var}{fit})\n"


#: blocks of time origins of the kernels' jackknife error (≥ 8: the error of the error is then ≈ 27 %)
KERNEL_BLOCKS = 8
