"""Real-code validation of the lone-pair model: DFT Wannier labels of 32-ion α-AgI MD, the model against them.

Stages (each resumable: a rerun skips what is done; everything lives in a data directory outside the
repository, default ``/work/data/electronic-validation``, ``--data`` to change it):

1. ``md`` — 32-ion α-AgI MD through the project's ``agi.md`` WorkChain on an AiiDA profile of its own
   (``<data>/home``): classical (LAMMPS, Vashishta–Rahman) at 600 and 900 K and Allegro (ASE, the model file
   given by ``--allegro-model``) at 900 K, Langevin, 2 fs steps, a frame every 10 fs; and the demo's 750 K
   Allegro NVE run (same model), copied with its history from the store that made it.
2. ``label`` — the ``agi.wannier`` WorkChain (batched route, pw.x → wannier90.x -pp → pw2wannier90.x →
   wannier90.x, Bloch phases as the initial gauge) on: frames spread over every run (``spread``) and a
   contiguous block of frames 10 fs apart of the 750 K Allegro run (``block``). Labelled in rounds, the block
   coarse to fine, so that a run stopped early still has frames of every kind.
3. ``scatter`` — the label floor: frames already labelled are Wannierised again from other initial gauges
   (projections Ag: d, I: s;p, and random projections; plain shell chain with the same input writer, since
   the protocol exposes no projections) and compared with the stored labels: ΔM along x, y, z (RMS, median,
   the fraction of iodides in another spread minimum), Δμ, and both total spreads Ω.
4. ``train`` — :func:`agi_data.electronic.fit_electronic_model` as the ``agi.electronic_train`` job (the model
   node links to every WannierSet it learned from) on the training split, then the held-out metrics: the
   last 20 % (by time) of every run's spread frames, and the contiguous block, on which the rotor
   correlation of the predictions is compared with DFT's. A parity figure goes to ``docs/img/``.

Usage::

    python benchmarks/electronic_validation.py                         # everything (resumes)
    python benchmarks/electronic_validation.py --stages md,label       # only some stages
    python benchmarks/electronic_validation.py --stages train --tag main --epochs 40   # retrain, re-evaluate
    python benchmarks/electronic_validation.py --smoke --data /tmp/ev  # a few frames, to check the chain

Numbers go to ``<data>/results.json`` and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DATA = Path("/work/data/electronic-validation")
REPO = Path(__file__).resolve().parent.parent
FRAME_FS = 10.0  # stored frame spacing: 2 fs steps, every 5th stored


#: the 32-ion 750 K Allegro NVE run of ``agi demo`` (frames 10 fs apart, 4 ps after 1 ps of Langevin), copied
#: with its history from the store that made it (its provenance is in that store's profile)
DEMO_STORE = Path("/work/main/store/data")
DEMO_ALLEGRO_RUN = "demo-allegro-750K-ed1dba"


@dataclass(frozen=True)
class Run:
    """One MD run: id, potential ("classical" or "allegro"), temperature (K), structure seed, MD length (steps of
    2 fs after ``equilibration`` steps; frames every 5 steps), frames to label, and ``copy_from``: a store to
    copy the run from instead of running it."""

    run_id: str
    potential: str
    temperature: float
    seed: int
    spread: tuple[int, ...]        # frames spread over the run (train + the last-20 % test block)
    block: tuple[int, ...] = ()    # a contiguous held-out block (labelled on every frame)
    n_steps: int = 1000
    equilibration: int = 500
    copy_from: Path | None = None


def runs(smoke: bool = False) -> list[Run]:
    """The runs and frames of the validation. Spread frames are 100–120 fs apart; in the 750 K Allegro run
    they end 0.5 ps before its contiguous block starts (the rotor correlation has decayed by then)."""
    if smoke:
        return [Run("ev-classical-600K", "classical", 600.0, 11, (20, 40), n_steps=300, equilibration=100),
                Run("ev-allegro-750K", "allegro", 750.0, 12, (0,), (30, 31), n_steps=300, equilibration=100)]
    spread = tuple(20 + 12 * k for k in range(15))
    return [Run("ev-classical-600K", "classical", 600.0, 11, spread),
            Run("ev-classical-900K", "classical", 900.0, 13, spread),
            Run(DEMO_ALLEGRO_RUN, "allegro", 750.0, 0, tuple(range(0, 151, 10)), tuple(range(200, 260)),
                copy_from=DEMO_STORE),
            Run("ev-allegro-900K", "allegro", 900.0, 14, spread[:9], n_steps=600, equilibration=100)]


def md_overrides(run: Run) -> dict:
    """32 ions (2×2×2 cells), Langevin at the run's temperature, 2 fs steps, a frame every 10 fs."""
    return {"structure": {"supercell": 2, "seed": run.seed},
            "md": {"temperature_K": run.temperature, "timestep_fs": 2.0, "n_steps": run.n_steps, "stride": 5,
                   "ensemble": "langevin", "damping_fs": 100.0, "seed": run.seed,
                   "equilibration_steps": run.equilibration}}


# ---------------------------------------------------------------------------------------------- plumbing
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())} UTC] {msg}", flush=True)


def open_profile(data: Path):
    """The validation's own AiiDA profile and store under ``<data>/home`` (made on first use)."""
    os.environ["AGI_HOME"] = str(data / "home")
    from agi_data import open_store
    from agi_data.aiida.setup import load_agi_profile, setup

    setup(quiet=True)
    load_agi_profile()
    return open_store(data / "home" / "data")


def n_frames(store, run_id: str) -> int:
    from agi_data.store.errors import RunNotFoundError

    try:
        return int(store.trajectory(run_id).sizes["time"])
    except RunNotFoundError:
        return 0


def labelled(store, run_id: str) -> set[int]:
    """Frames of a run with stored Wannier centres, or listed as failed (not retried)."""
    from agi_data.store.errors import RunNotFoundError

    try:
        wan = store.wannier(run_id)
    except RunNotFoundError:
        return set()
    return {int(f) for f in wan["frame"].values} | {int(f) for f in wan.attrs.get("failed_frames", {})}


def run_node(builder, tag: dict):
    from aiida.engine import run_get_node

    _, node = run_get_node(builder)
    node.base.extras.set("agi_validation", tag)
    if not node.is_finished_ok:
        log(f"  {node.process_label}<{node.pk}> exit {node.exit_status}: {node.exit_message}")
    return node


# ---------------------------------------------------------------------------------------------- stages
def stage_md(store, args) -> None:
    from agi_data.aiida.workflows.md import MDWorkChain

    for run in runs(args.smoke):
        need = max(run.spread + run.block) + 1
        if n_frames(store, run.run_id) >= need:
            log(f"md {run.run_id}: {n_frames(store, run.run_id)} frames, done")
            continue
        t0 = time.perf_counter()
        if run.copy_from is not None:
            from agi_data import open_store
            from agi_data.store.copy import copy_run

            version = copy_run(open_store(run.copy_from), run.run_id, store)
            log(f"md {run.run_id}: copied from {run.copy_from} (version {version}), {n_frames(store, run.run_id)} "
                f"frames, {time.perf_counter() - t0:.0f} s")
            continue
        extra = {"model": str(args.allegro_model)} if run.potential == "allegro" else {}
        builder = MDWorkChain.get_builder_from_protocol(None, None, protocol="fast", store=store, run=run.run_id,
                                                        overrides=md_overrides(run), **extra)
        node = run_node(builder, {"stage": "md", "run": run.run_id})
        log(f"md {run.run_id}: {node.process_label}<{node.pk}> ok={node.is_finished_ok}, "
            f"{n_frames(store, run.run_id)} frames, {time.perf_counter() - t0:.0f} s")


#: the contiguous block is labelled coarse to fine: every 4th frame (40 fs), then every 2nd, then all
BLOCK_STEPS = (4, 2, 1)


def label_rounds(smoke: bool) -> list[tuple[str, dict[str, list[int]]]]:
    """Labelling order, so that a run stopped early has frames of every kind: a quarter of every run's spread
    frames; the block at 40 fs; the rest of the spread frames; the block at 20 fs, then 10 fs."""
    rounds = {"spread-1": {}, "block-40fs": {}, "spread-2": {}, "block-20fs": {}, "block-10fs": {}}
    for run in runs(smoke):
        first = list(run.spread[::4])
        rounds["spread-1"][run.run_id] = first
        rounds["spread-2"][run.run_id] = [f for f in run.spread if f not in first]
        done: set[int] = set()
        for step in BLOCK_STEPS:
            if run.block:
                rounds[f"block-{int(step * FRAME_FS)}fs"][run.run_id] = [f for f in run.block[::step] if f not in done]
                done |= set(run.block[::step])
    return list(rounds.items())


def stage_label(store, args, rounds: list[str] | None = None) -> None:
    """Label the frames of the named rounds (default: all) that are neither stored nor recorded as failed."""
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    options = {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": args.ranks}}
    for name, todo in label_rounds(args.smoke):
        if rounds is not None and name not in rounds:
            continue
        for run_id, frames in todo.items():
            missing = sorted(set(frames) - labelled(store, run_id))
            if not missing:
                continue
            if n_frames(store, run_id) <= max(missing):
                log(f"label {name} {run_id}: the run has {n_frames(store, run_id)} frames, needs {max(missing) + 1}; "
                    f"run the md stage first")
                continue
            for start in range(0, len(missing), args.batch):
                chunk = missing[start:start + args.batch]
                t0 = time.perf_counter()
                builder = WannierWorkChain.get_builder_from_protocol(
                    None, run_id, chunk, protocol="demo", overrides={"batch_size": args.batch}, options=options,
                    store=store)
                node = run_node(builder, {"stage": "label", "round": name, "run": run_id, "frames": chunk})
                dt = time.perf_counter() - t0
                log(f"label {name} {run_id} frames {chunk[0]}..{chunk[-1]} ({len(chunk)}): "
                    f"{node.process_label}<{node.pk}> ok={node.is_finished_ok}, {dt:.0f} s, "
                    f"{dt / len(chunk):.1f} s/frame, load {os.getloadavg()[0]:.1f}")


#: the other initial gauges of the scatter stage: wannier90 projection blocks (Bloch phases are the stored labels')
GAUGES = {"projections": ["Ag: d", "I: s;p"], "random": ["random"]}


def scatter_frames(store, smoke: bool, n: int) -> list[tuple[str, int]]:
    """``n`` labelled spread frames, taken in turn from every run."""
    per_run = [[(r.run_id, f) for r in [r] for f in r.spread if f in labelled_ok(store, r.run_id)] for r in runs(smoke)]
    out = []
    while len(out) < n and any(per_run):
        for frames in per_run:
            if frames and len(out) < n:
                out.append(frames.pop(0))
    return out


def labelled_ok(store, run_id: str) -> set[int]:
    from agi_data.store.errors import RunNotFoundError

    try:
        return {int(f) for f in store.wannier(run_id)["frame"].values}
    except RunNotFoundError:
        return set()


def _frame_atoms(store, run_id: str, frame: int):
    from ase import Atoms

    from agi_data.analysis._schema import cell_per_frame

    traj = store.trajectory(run_id)
    return Atoms(numbers=traj["species"].values, positions=traj["positions"].isel(time=frame).values,
                 cell=cell_per_frame(traj).isel(time=frame).values, pbc=True)


def rewannierise(store, run_id: str, frame: int, gauge: str, workdir: Path, ranks: int) -> tuple[np.ndarray, float]:
    """Centres (Å) and total spread Ω (Å²) of one stored frame from another initial gauge: the protocol's inputs
    (same writer as ``agi.wannier``) with ``use_bloch_phases = false`` and a projections block; kept in
    ``workdir`` (a rerun reads them back)."""
    from agi_data.aiida.parsers.wannier90 import parse_centres_xyz, parse_wout
    from agi_data.aiida.protocols import load_protocol
    from agi_data.aiida.testing import run_plain_chain, write_plain_inputs
    from agi_data.pseudo import shipped_pseudopotentials

    xyz, wout = workdir / "aiida_centres.xyz", workdir / "aiida.wout"
    if not (xyz.is_file() and wout.is_file()):
        params = load_protocol("wannier", "demo", {"wannier90": {"use_bloch_phases": False}})
        plain = write_plain_inputs(_frame_atoms(store, run_id, frame), workdir, params, shipped_pseudopotentials())
        win = workdir / "aiida.win"
        win.write_text(win.read_text() + "\nbegin projections\n" + "\n".join(GAUGES[gauge]) + "\nend projections\n")
        run_plain_chain(plain["workdir"], nprocs=ranks)
    omega = parse_wout(wout.read_text())["omega_total"]  # raises unless wannier90 finished
    centres, _, _ = parse_centres_xyz(xyz.read_text())
    return centres, float(omega)


def _moments(traj, wan):
    from agi_data.analysis.moments import lone_pair_moments

    return lone_pair_moments(traj, wan, species="I").compute()


def _rotor_xyz(moments) -> np.ndarray:
    """M along x, y, z: array (3, frame, ion)."""
    from agi_data.analysis.moments import rotor_function_from_moments

    return np.stack([rotor_function_from_moments(moments, axis=ax).values for ax in "xyz"])


#: frames Wannierised from random projections (the others from the chemical projections only: on a first frame
#: both reached the same minimum)
RANDOM_FRAMES = 1
#: |ΔM| above which an iodide's two labels are counted as different local minima of the spread
FLIP = 0.1


def stage_scatter(store, args) -> dict:
    """The stored (Bloch-phase) labels against the same frames Wannierised from each other initial gauge:
    RMS, median and maximum |ΔM| (x, y, z pooled), the fraction of iodides whose tetrahedra differ (|ΔM| > FLIP
    along some axis: another local minimum of the spread), the dipole RMS difference, and both total spreads Ω."""
    out = {}
    frames = scatter_frames(store, args.smoke, args.scatter_frames)
    for gauge in GAUGES:
        d_rotor, d_dip, ref_rotor, ref_dip, used, omegas = [], [], [], [], [], []
        for run_id, frame in frames[:RANDOM_FRAMES] if gauge == "random" else frames:
            t0 = time.perf_counter()
            try:
                centres, omega = rewannierise(store, run_id, frame, gauge,
                                              args.data / "scatter" / gauge / f"{run_id}-{frame}", args.ranks)
            except (OSError, ValueError, subprocess.CalledProcessError) as exc:  # a gauge that fails is reported
                log(f"scatter {gauge} {run_id}:{frame} failed: {exc}")
                continue
            traj = store.trajectory(run_id)
            wan = store.wannier(run_id).sel(frame=[frame]).load()
            if centres.shape != wan["centres"].shape[1:]:
                log(f"scatter {gauge} {run_id}:{frame}: {len(centres)} centres, stored {wan.sizes['wannier']}")
                continue
            alt = wan.copy(deep=True)
            alt["centres"].values[0] = centres
            m_ref, m_alt = _moments(traj, wan), _moments(traj, alt)
            r_ref, r_alt = _rotor_xyz(m_ref), _rotor_xyz(m_alt)
            d_rotor.append(r_alt - r_ref)
            ref_rotor.append(r_ref.ravel())
            d_dip.append((m_alt["dipole"].values - m_ref["dipole"].values).ravel())
            ref_dip.append(m_ref["dipole"].values.ravel())
            used.append(f"{run_id}:{frame}")
            omegas.append({"stored": float(wan["spread"].sum()), gauge: omega})
            log(f"scatter {gauge} {run_id}:{frame}: max |ΔM| {np.nanmax(np.abs(d_rotor[-1])):.2e}, "
                f"Ω {omegas[-1]['stored']:.4f} (stored) vs {omega:.4f} Å², {time.perf_counter() - t0:.0f} s")
        if not used:
            continue
        per_ion = np.concatenate([np.nanmax(np.abs(d), axis=0).ravel() for d in d_rotor])  # max over axes
        dr, dd = np.concatenate([d.ravel() for d in d_rotor]), np.concatenate(d_dip)
        out[gauge] = {"frames": used, "n_iodides": int(per_ion.size), "omega_A2": omegas,
                      "rotor_rms_diff": float(np.sqrt(np.nanmean(dr ** 2))),
                      "rotor_median_abs_diff": float(np.nanmedian(np.abs(dr))),
                      "rotor_max_abs_diff": float(np.nanmax(np.abs(dr))),
                      "fraction_iodides_other_minimum": float(np.mean(per_ion > FLIP)),
                      "rotor_rms_diff_same_minimum": float(np.sqrt(np.nanmean(
                          np.concatenate([d[:, :, np.nanmax(np.abs(d), axis=(0, 1)) <= FLIP].ravel()
                                          for d in d_rotor]) ** 2))),
                      "rotor_rms": float(np.sqrt(np.nanmean(np.concatenate(ref_rotor) ** 2))),
                      "dipole_rms_diff_eA": float(np.sqrt(np.nanmean(dd ** 2))),
                      "dipole_std_eA": float(np.nanstd(np.concatenate(ref_dip)))}
    return out


TEST_FRACTION = 0.2
MAX_LAG_PS = 0.3


def split(store, smoke: bool) -> dict:
    """Frames of every run: ``train`` (spread frames but the last 20 % by time), ``test`` (those last 20 %),
    ``block`` (the contiguous block's labelled frames). Only frames with stored centres count."""
    out = {}
    for run in runs(smoke):
        done = labelled_ok(store, run.run_id)
        spread = [f for f in run.spread if f in done]
        n_test = round(TEST_FRACTION * len(spread)) if len(spread) >= 3 else 0
        out[run.run_id] = {"train": spread[:len(spread) - n_test], "test": spread[len(spread) - n_test:],
                           "block": [f for f in run.block if f in done]}
    return out


def wannier_sets(store, run_ids) -> dict:
    """The WannierSet nodes (this profile's) the stored centres of the runs came from, keyed for a namespace."""
    from agi_data.aiida.workflows.electronic import wannier_sets_of_run

    return {f"{run_id.replace('-', '_')}_{key.removeprefix('batch_')}": node
            for run_id in run_ids for key, node in wannier_sets_of_run(store, run_id).items()}


def train_job(store, parts: dict, args):
    """``agi.electronic_train`` on the training frames; returns (the job node, the loaded model)."""
    from aiida import orm

    from agi_data.aiida.calculations.electronic import ElectronicTrainCalculation
    from agi_data.aiida.setup import ensure_computer, ensure_python_code
    from agi_data.electronic import ElectronicModel
    from agi_data.electronic.training_data import write_training_data

    pairs, used = [], []
    for run_id, frames in parts.items():
        if frames["train"]:
            pairs.append((store.trajectory(run_id), store.wannier(run_id).sel(frame=frames["train"])))
            used.append(run_id)
    path = write_training_data(pairs, args.data / train_dir(args) / "training_data.npz")
    code = ensure_python_code(ensure_computer(), "electronic-train", "agi.electronic_train",
                              "python -m agi_data.electronic.training_data", "validation")
    builder = ElectronicTrainCalculation.get_builder()
    builder.code = code
    builder.training_data = orm.SinglefileData(path)
    builder.parameters = orm.Dict({"species": "I", "cutoff": 6.0, "seed": args.seed, "epochs": args.epochs,
                                   "threads": 1})
    builder.wannier_sets = wannier_sets(store, used)
    builder.metadata.options.withmpi = False
    if args.train_pythonpath:
        builder.metadata.options.prepend_text = f"export PYTHONPATH={args.train_pythonpath}"
    node = run_node(builder, {"stage": "train", "frames": {k: v["train"] for k, v in parts.items()}})
    if not node.is_finished_ok:
        raise RuntimeError(f"training failed: {node.process_label}<{node.pk}> exit {node.exit_status}")
    model_path = args.data / train_dir(args) / "model.pt"
    with node.outputs.model.open(mode="rb") as fh:
        model_path.write_bytes(fh.read())
    return node, ElectronicModel.load(model_path)


def train_dir(args) -> str:
    return f"train-{args.tag}" if args.tag else "train"


def _errors(pred, dft) -> dict:
    """RMSE of M along x, y, z (and pooled) and of the dipole components (e·Å, and over the DFT std)."""
    r_p, r_d = _rotor_xyz(pred), _rotor_xyz(dft)
    ok = np.isfinite(r_d) & np.isfinite(r_p)
    out = {f"rotor_rmse_{ax}": float(np.sqrt(np.mean((r_p[i] - r_d[i])[ok[i]] ** 2))) for i, ax in enumerate("xyz")}
    out["rotor_rmse"] = float(np.sqrt(np.mean((r_p - r_d)[ok] ** 2)))
    out["rotor_rms_dft"] = float(np.sqrt(np.mean(r_d[ok] ** 2)))
    d_p, d_d = pred["dipole"].values, dft["dipole"].values
    good = np.isfinite(d_d).all(-1) & np.isfinite(d_p).all(-1)
    rmse = float(np.sqrt(np.mean((d_p - d_d)[good] ** 2)))
    std = float(np.sqrt(np.mean(np.var(d_d[good], axis=0))))
    out.update(dipole_rmse_eA=rmse, dipole_std_eA=std, dipole_rel=rmse / std,
               n_frames=int(pred.sizes["frame"]), n_ions=int(good.sum()))
    return out


def rotor_correlation_xyz(rotor: np.ndarray, n_lags: int) -> np.ndarray:
    """C(t) = Σᵢ⟨Mᵢ(t₀)Mᵢ(t₀+t)⟩ / Σᵢ⟨Mᵢ²⟩ of M (axis, frame, ion) on a regular grid, averaged over x, y, z."""
    from agi_data.analysis.correlate import correlate_numpy

    series = np.moveaxis(rotor, 1, -1)  # (axis, ion, frame)
    c = correlate_numpy(series, n_lags=n_lags, components=False).sum(axis=1)  # (axis, lag)
    return (c / c[:, :1]).mean(axis=0)


def block_grid(block: tuple[int, ...], labelled: set[int]) -> list[int]:
    """The regular grid of labelled block frames to correlate on: the finest of ``BLOCK_STEPS`` whose labelled
    run from the block's start spans 2 × MAX_LAG_PS, else the one spanning longest."""
    best: list[int] = []
    for step in sorted(BLOCK_STEPS):
        grid = []
        for f in block[::step]:
            if f not in labelled:
                break
            grid.append(f)
        if len(grid) > 1 and (grid[-1] - grid[0]) * FRAME_FS / 1000.0 >= 2 * MAX_LAG_PS:
            return grid
        if len(grid) > 1 and (not best or grid[-1] - grid[0] > best[-1] - best[0]):
            best = grid
    return best


def block_correlation(store, model, run_id: str, grid: list[int]) -> dict:
    """Rotor correlation on the contiguous block's regular grid of labelled frames: DFT against the model's
    predictions on the same frames, for lags ≤ MAX_LAG_PS (and at most half the window)."""
    traj = store.trajectory(run_id)
    dt_ps = FRAME_FS * (grid[1] - grid[0]) / 1000.0
    n_lags = min(int(round(MAX_LAG_PS / dt_ps)) + 1, len(grid) // 2 + 1)
    dft = _moments(traj, store.wannier(run_id).sel(frame=grid))
    pred = model.predict(traj, frames=grid).compute()
    c_dft, c_model = rotor_correlation_xyz(_rotor_xyz(dft), n_lags), rotor_correlation_xyz(_rotor_xyz(pred), n_lags)
    return {"frames": [grid[0], grid[-1]], "n_frames": len(grid), "dt_ps": dt_ps,
            "lag_ps": (np.arange(n_lags) * dt_ps).tolist(), "c_dft": c_dft.tolist(), "c_model": c_model.tolist(),
            "max_abs_diff": float(np.max(np.abs(c_dft - c_model)))}


def parity_figure(path: Path, pred, dft, corr: dict | None, title: str) -> None:
    """Model against DFT: M along x, y, z; dipole components; the block's rotor correlation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if corr else 2, figsize=(13 if corr else 9, 4.2))
    r_p, r_d = _rotor_xyz(pred), _rotor_xyz(dft)
    for i, ax in enumerate("xyz"):
        axes[0].scatter(r_d[i].ravel(), r_p[i].ravel(), s=4, alpha=0.5, label=f"M along {ax}")
    d_p, d_d = pred["dipole"].values, dft["dipole"].values
    for i, ax in enumerate("xyz"):
        axes[1].scatter(d_d[..., i].ravel(), d_p[..., i].ravel(), s=4, alpha=0.5, label=f"μ{ax}")
    for a, name in zip(axes[:2], ("rotor function M", "iodide dipole (e·Å)")):
        lim = np.nanmax(np.abs(np.concatenate([a.get_xlim(), a.get_ylim()])))
        a.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
        a.set_xlabel(f"DFT Wannier {name}")
        a.set_ylabel(f"model {name}")
        a.legend(fontsize=8, markerscale=3)
    if corr:
        axes[2].plot(corr["lag_ps"], corr["c_dft"], "o-", label="DFT Wannier")
        axes[2].plot(corr["lag_ps"], corr["c_model"], "s--", label="model")
        axes[2].set_xlabel("lag (ps)")
        axes[2].set_ylabel("rotor correlation C(t), mean of x, y, z")
        axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def code_version(pythonpath: str | None) -> dict:
    """Where the trained code came from: the ``agi_data`` package path and its git commit (``-dirty`` if changed)."""
    import agi_data

    root = Path(pythonpath) if pythonpath else Path(agi_data.__file__).resolve().parent.parent
    info = {"path": str(root)}
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "agi_data"], capture_output=True,
                               text=True, check=True)
        info["commit"] = head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        info["commit"] = (root / "COMMIT").read_text().strip() if (root / "COMMIT").is_file() else None
    return info


def stage_train(store, args) -> dict:
    """Train on the training split, then the held-out errors (last 20 % of the spread frames; the block)
    and the block's rotor correlation; writes the parity figure."""
    import xarray as xr

    parts = split(store, args.smoke)
    (args.data / train_dir(args)).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    node, model = train_job(store, parts, args)
    out = {"job": f"{node.process_label}<{node.pk}> {node.uuid}", "train_seconds": time.perf_counter() - t0,
           "load": os.getloadavg()[0], "model_sha256": model.config.get("sha256"),
           "wannier_sets_linked": len(node.inputs.wannier_sets) if "wannier_sets" in node.inputs else 0,
           "agi_data": code_version(args.train_pythonpath), "epochs": args.epochs,
           "frames": {k: {kk: len(vv) for kk, vv in v.items()} for k, v in parts.items()},
           "validation_metrics": {k: v for k, v in model.metrics.items() if k != "validation_history"}}
    preds, dfts = {}, {}
    for kind in ("test", "block"):
        p_all, d_all = [], []
        for run_id, frames in parts.items():
            if frames[kind]:
                traj = store.trajectory(run_id)
                d_all.append(_moments(traj, store.wannier(run_id).sel(frame=frames[kind])))
                p_all.append(model.predict(traj, frames=frames[kind]).compute())
        if p_all:
            preds[kind] = xr.concat([p.drop_vars(["frame_time"], errors="ignore") for p in p_all], "frame")
            dfts[kind] = xr.concat([d.drop_vars(["frame_time"], errors="ignore") for d in d_all], "frame")
            out[f"{kind}_errors"] = _errors(preds[kind], dfts[kind])
    block_run = next((r for r in runs(args.smoke) if r.block), None)
    corr = None
    grid = block_grid(block_run.block, set(parts[block_run.run_id]["block"])) if block_run else []
    if len(grid) >= 4:
        corr = out["block_correlation"] = block_correlation(store, model, block_run.run_id, grid)
    if preds:
        kinds = list(preds)
        pred = xr.concat([preds[k] for k in kinds], "frame")
        dft = xr.concat([dfts[k] for k in kinds], "frame")
        parity_figure(args.figure, pred, dft, corr,
                      f"held-out frames ({', '.join(kinds)}): {pred.sizes['frame']} frames, 32-ion α-AgI")
        out["figure"] = str(args.figure)
    return out


# ---------------------------------------------------------------------------------------------- driver
STAGES = ("md", "label", "scatter", "train")


def results_path(data: Path) -> Path:
    return data / "results.json"


def update_results(data: Path, key: str, value) -> dict:
    path = results_path(data)
    res = json.loads(path.read_text()) if path.is_file() else {}
    res[key] = value
    path.write_text(json.dumps(res, indent=1))
    return res


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data directory (outside the repository)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--allegro-model", type=Path, default=None,
                   help="Allegro model file (agi.train's model.nequip.zip); default <data>/inputs/model.nequip.zip")
    p.add_argument("--rounds", default=None, help="comma-separated labelling rounds (default: all, in order)")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks of pw.x / pw2wannier90.x")
    p.add_argument("--batch", type=int, default=10, help="frames per agi.wannier WorkChain (one WannierSet each)")
    p.add_argument("--scatter-frames", type=int, default=3, help="frames Wannierised again from other gauges")
    p.add_argument("--epochs", type=int, default=60, help="training epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-pythonpath", default=None,
                   help="PYTHONPATH of the training job (another checkout's agi_data); default: this one")
    p.add_argument("--tag", default=None, help="name of this training in results.json (model-<tag>) and <data>/train-<tag>")
    p.add_argument("--figure", type=Path, default=REPO / "docs" / "img" / "electronic-parity.png")
    p.add_argument("--smoke", action="store_true", help="a few frames and epochs, to check the chain")
    args = p.parse_args(argv)
    args.data = args.data.resolve()
    args.allegro_model = (args.allegro_model or args.data / "inputs" / "model.nequip.zip").resolve()
    args.rounds = [r.strip() for r in args.rounds.split(",")] if args.rounds else None
    args.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    bad = sorted(set(args.stages) - set(STAGES))
    if bad:
        p.error(f"unknown stages {bad}: choose from {list(STAGES)}")
    if "md" in args.stages and not args.allegro_model.is_file():
        p.error(f"no Allegro model at {args.allegro_model}: give --allegro-model (agi.train's model.nequip.zip)")
    if args.smoke:
        args.scatter_frames, args.epochs = min(args.scatter_frames, 1), min(args.epochs, 2)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    store = open_profile(args.data)
    log(f"data {args.data}; stages {args.stages}; load {os.getloadavg()[0]:.1f}")
    if "md" in args.stages:
        stage_md(store, args)
    names = [name for name, _ in label_rounds(args.smoke)]
    if args.rounds:
        names = [n for n in names if n in args.rounds]
    if "label" in args.stages:  # the first round, then the label floor, then the rest
        stage_label(store, args, names[:1])
    if "scatter" in args.stages:
        res = update_results(args.data, "label_scatter", stage_scatter(store, args))
        log(f"label scatter: {json.dumps(res['label_scatter'])}")
    if "label" in args.stages:
        stage_label(store, args, names[1:])
    if "train" in args.stages:
        key = f"model-{args.tag}" if args.tag else "model"
        res = update_results(args.data, key, stage_train(store, args))
        log(f"{key}: {json.dumps(res[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
