"""``agi md``: run MD into the store (Allegro or the classical force field) and show the force field.

    agi md run --run-id classical-750K --supercell 5 --steps 5000           # classical, LAMMPS
    agi md run --run-id allegro-750K --potential model.nequip.zip --steps 2000
    agi md forcefield                                                        # parameters + citation

``run`` goes through the ``agi.md`` WorkChain (provenance in the AiiDA
profile) unless ``--no-provenance``; an existing run id is continued from
its last frame. Defaults come from ``agi_data/protocols/md.yaml`` (``--protocol``).
"""

from __future__ import annotations

import math
from pathlib import Path

import click

from .options import AgiCLIError, protocol_option, store_option


@click.group("md")
def md() -> None:
    """Molecular dynamics streamed into the store."""


def _overrides(**opts) -> dict:
    md_keys = {"temperature": "temperature_K", "steps": "n_steps", "timestep": "timestep_fs", "stride": "stride",
               "ensemble": "ensemble", "damping": "damping_fs", "seed": "seed",
               "equilibration_steps": "equilibration_steps", "equilibration_ensemble": "equilibration_ensemble"}
    out: dict = {"md": {v: opts[k] for k, v in md_keys.items() if opts.get(k) is not None}}
    st = {k: opts[k] for k in ("supercell", "lattice") if opts.get(k) is not None}
    if st:
        out["structure"] = st
    if opts.get("ranks") is not None:
        out["lammps"] = {"mpi_ranks": opts["ranks"]}
    if opts.get("device") is not None:
        out["allegro"] = {"device": opts["device"]}
    return out


#: the option that sets each MD settings key, for error messages
_OPTION_OF = {"equilibration_steps": "--equilibration-steps", "equilibration_ensemble": "--equilibration-ensemble",
              "temperature": "--temperature", "timestep_fs": "--timestep", "n_steps": "--steps",
              "stride": "--stride", "damping_fs": "--damping", "seed": "--seed", "ensemble": "--ensemble",
              "lattice": "--lattice", "supercell": "--supercell", "mpi_ranks": "--ranks", "device": "--device"}


def _checked_inputs(protocol: str, overrides: dict, structure_file):
    """(resolved protocol, MDSettings, structure or None): every check that needs no store, before anything is
    written — the settings (finite, positive, integers where they must be), the lattice, the structure file."""
    from agi_data.aiida.protocols import load_protocol
    from agi_data.md import MDSettings
    from agi_data.structures import alpha_agi

    try:
        params = load_protocol("md", protocol, overrides)
        settings = MDSettings(**params["md"])
    except (ValueError, TypeError, KeyError) as err:
        named = [opt for key, opt in _OPTION_OF.items() if key in str(err)]
        raise AgiCLIError(f"invalid MD settings: {err}",
                          f"fix {' / '.join(named[:2]) or 'the protocol'} (see `agi md run --help`)") from None
    lattice = params["structure"]["lattice"]
    if not (isinstance(lattice, (int, float)) and math.isfinite(lattice) and lattice > 0):
        raise AgiCLIError(f"--lattice must be a finite length > 0 Å, got {lattice!r}")
    if structure_file is None:
        sp = params["structure"]
        return params, settings, alpha_agi(int(sp["supercell"]), float(sp["lattice"]), seed=int(sp["seed"]),
                                           rattle=float(sp["rattle"]))
    from ase.io import read

    try:
        structure = read(structure_file)
    except Exception as err:  # noqa: BLE001 - ASE raises many kinds; the user needs the file named
        raise AgiCLIError(f"cannot read the structure file {structure_file}: {err}",
                          "give a file ASE reads (extxyz, cif, POSCAR, LAMMPS data, …)") from None
    if not structure.pbc.all():
        raise AgiCLIError(f"the structure in {structure_file} is not periodic in x, y and z",
                          "MD here needs a periodic cell: give a file with a cell (extxyz Lattice=, cif, POSCAR)")
    return params, settings, structure


@md.command("run")
@click.option("--run-id", required=True, help="store run to write (continued if it exists)")
@click.option("--potential", default=None,
              help="classical force-field name (default: the protocol's) or a trained model file "
                   "(.nequip.zip, .nequip.pt2, .ckpt)")
@click.option("--structure", "structure_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="starting structure (any ASE-readable file); default: an α-AgI supercell")
@click.option("--supercell", type=click.IntRange(min=1), default=None, help="n×n×n α-AgI cells (4n³ ions)")
@click.option("--lattice", type=float, default=None, help="lattice parameter, Å")
@click.option("--temperature", "-T", type=float, default=None, help="K")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="MD steps of the whole run (of the production, when there is an equilibration)")
@click.option("--timestep", type=float, default=None, help="fs")
@click.option("--stride", type=click.IntRange(min=1), default=None, help="steps between stored frames")
@click.option("--ensemble", type=click.Choice(["langevin", "nose-hoover", "nve"]), default=None,
              help="of the production segment")
@click.option("--damping", type=float, default=None, help="thermostat time, fs")
@click.option("--equilibration-steps", type=click.IntRange(min=0), default=None,
              help="thermostatted steps into <run-id>-equilibration first (never analysed); 0: none")
@click.option("--equilibration-ensemble", type=click.Choice(["langevin", "nose-hoover"]), default=None)
@click.option("--seed", type=click.IntRange(min=0), default=None)
@click.option("--ranks", type=click.IntRange(min=1), default=None, help="MPI ranks for LAMMPS")
@click.option("--device", default=None, help="torch device for Allegro (cpu, cuda)")
@protocol_option("md", default="fast")
@store_option
@click.option("--provenance/--no-provenance", default=True, show_default=True,
              help="run through the agi.md WorkChain (AiiDA) or directly")
def run_cmd(run_id, potential, structure_file, protocol, store_path, provenance, **opts) -> None:
    """Run (or continue) MD and stream the frames into the store, with a progress bar.

    Every input is checked before anything is written (the store, the AiiDA profile).
    """
    from rich.console import Console

    from agi_data import open_store
    from agi_data.md import equilibration_run_id
    from agi_data.md.forcefields import FORCE_FIELDS
    from agi_data.store import validate

    overrides = _overrides(**opts)
    params, settings, structure = _checked_inputs(protocol, overrides, structure_file)
    try:
        validate.run_id(run_id)
        if settings.has_equilibration:
            validate.run_id(equilibration_run_id(run_id))
    except ValueError as err:
        raise AgiCLIError(str(err)) from None
    is_model = potential is not None and Path(potential).suffix in (".zip", ".pt2", ".ckpt")
    if potential is not None and potential not in FORCE_FIELDS and not Path(potential).exists():
        raise AgiCLIError(f"no model file and no force field named {potential}",
                          f"give the path of a trained model or one of {sorted(FORCE_FIELDS)}")
    console = Console()
    store = open_store(store_path)
    try:
        if provenance:
            res = _run_with_provenance(store, run_id, potential, is_model, structure, protocol, overrides)
        else:
            res = _run_direct(store, run_id, potential, structure, params, settings)
    except ValueError as err:  # MDError, the builder's and the protocol's errors
        raise AgiCLIError(str(err)) from None
    overhead = res.get("store_overhead")
    console.print(f"[bold]{run_id}[/bold]: {res['n_frames']} frames in {store.root} (version {res['version']})"
                  + (f"; store overhead {100 * overhead:.1f} % of the MD time"
                     if overhead is not None and overhead == overhead else "; nothing new to run"))


def _run_direct(store, run_id, potential, structure, params, settings) -> dict:
    from agi_data.md import BlowUpLimits, StreamOptions, build_engine, run_md

    engine = build_engine(potential or params["force_field"], mpi_ranks=int(params["lammps"]["mpi_ranks"]),
                          device=str(params["allegro"]["device"]))
    options = StreamOptions(progress=True, dtype=params["store"]["dtype"], flush_every=int(params["store"]["flush_every"]))
    res = run_md(engine, structure, settings, store=store, run_id=run_id, options=options,
                 limits=BlowUpLimits(**params["checks"]))
    return {"n_frames": res.n_frames, "version": res.version, "store_overhead": res.store_overhead}


def _run_with_provenance(store, run_id, potential, is_model, structure, protocol, overrides) -> dict:
    from aiida import orm
    from aiida.engine import run_get_node

    from agi_data.aiida.setup import load_agi_profile
    from agi_data.aiida.workflows.md import MDWorkChain

    load_agi_profile()
    kwargs = {}
    if is_model:
        kwargs["model"] = orm.SinglefileData(file=Path(potential).resolve())
    elif potential:
        kwargs["force_field"] = potential
    builder = MDWorkChain.get_builder_from_protocol(None, structure, protocol=protocol, overrides=overrides,
                                                    store=store, run=run_id, progress=True, **kwargs)
    result, node = run_get_node(builder)
    if not node.is_finished_ok:
        raise AgiCLIError(f"agi.md <{node.pk}> failed: [{node.exit_status}] {node.exit_message}")
    run = result["run"]
    return {"n_frames": run["n_frames"], "version": run["version"], "store_overhead": run["store_overhead"]}


@md.command("forcefield")
@click.option("--name", default="agi-vashishta-rahman-sk", show_default=True)
def forcefield_cmd(name: str) -> None:
    """Print the classical force field's parameters and where they come from."""
    from rich.console import Console
    from rich.table import Table

    from agi_data.md import get_force_field

    ff = get_force_field(name)
    table = Table(title=f"{ff.name}: V = H/r^η + ZiZj e²/r − P/r⁴ − C/r⁶")
    for col in ("pair", "η", "H (eV Å^η)", "P (eV Å⁴)", "C (eV Å⁶)"):
        table.add_column(col)
    for (a, b), t in ff.pairs.items():
        table.add_row(f"{a}–{b}", str(t.eta), f"{t.H:g}", f"{t.P:g}", f"{t.C:g}")
    console = Console()
    console.print(table)
    console.print(f"charges (e): {ff.charges}; cutoff {ff.cutoff} Å; PPPM accuracy {ff.kspace_accuracy:g}")
    console.print(f"citation: {ff.citation}")
    console.print(f"numbers from: {ff.source}")
