"""``agi md``: run MD into the store (Allegro or the classical force field) and show the force field.

    agi md run --run-id classical-750K --supercell 5 --steps 5000           # classical, LAMMPS
    agi md run --run-id allegro-750K --potential model.nequip.zip --steps 2000
    agi md forcefield                                                        # parameters + citation

``run`` goes through the ``agi.md`` WorkChain (provenance in the AiiDA
profile) unless ``--no-provenance``; an existing run id is continued from
its last frame. Defaults come from ``agi_data/protocols/md.yaml`` (``--protocol``).
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import AgiCLIError, protocol_option, store_option


@click.group("md")
def md() -> None:
    """Molecular dynamics streamed into the store."""


def _overrides(**opts) -> dict:
    md_keys = {"temperature": "temperature_K", "steps": "n_steps", "timestep": "timestep_fs", "stride": "stride",
               "ensemble": "ensemble", "damping": "damping_fs", "seed": "seed"}
    out: dict = {"md": {v: opts[k] for k, v in md_keys.items() if opts.get(k) is not None}}
    st = {k: opts[k] for k in ("supercell", "lattice") if opts.get(k) is not None}
    if st:
        out["structure"] = st
    if opts.get("ranks") is not None:
        out["lammps"] = {"mpi_ranks": opts["ranks"]}
    if opts.get("device") is not None:
        out["allegro"] = {"device": opts["device"]}
    return out


@md.command("run")
@click.option("--run-id", required=True, help="store run to write (continued if it exists)")
@click.option("--potential", default=None,
              help="classical force-field name (default: the protocol's) or a trained model file "
                   "(.nequip.zip, .nequip.pt2, .ckpt)")
@click.option("--structure", "structure_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="starting structure (any ASE-readable file); default: an α-AgI supercell")
@click.option("--supercell", type=int, default=None, help="n×n×n α-AgI cells (4n³ ions)")
@click.option("--lattice", type=float, default=None, help="lattice parameter, Å")
@click.option("--temperature", "-T", type=float, default=None, help="K")
@click.option("--steps", type=int, default=None, help="MD steps of the whole run")
@click.option("--timestep", type=float, default=None, help="fs")
@click.option("--stride", type=int, default=None, help="steps between stored frames")
@click.option("--ensemble", type=click.Choice(["langevin", "nose-hoover", "nve"]), default=None)
@click.option("--damping", type=float, default=None, help="thermostat time, fs")
@click.option("--seed", type=int, default=None)
@click.option("--ranks", type=int, default=None, help="MPI ranks for LAMMPS")
@click.option("--device", default=None, help="torch device for Allegro (cpu, cuda)")
@protocol_option("md", default="fast")
@store_option
@click.option("--provenance/--no-provenance", default=True, show_default=True,
              help="run through the agi.md WorkChain (AiiDA) or directly")
def run_cmd(run_id, potential, structure_file, protocol, store_path, provenance, **opts) -> None:
    """Run (or continue) MD and stream the frames into the store, with a progress bar."""
    from rich.console import Console

    from agi_data import open_store
    from agi_data.aiida.protocols import load_protocol
    from agi_data.md.errors import MDError

    console = Console()
    store = open_store(store_path)
    overrides = _overrides(**opts)
    structure = None
    if structure_file:
        from ase.io import read

        structure = read(structure_file)
    is_model = potential is not None and Path(potential).suffix in (".zip", ".pt2", ".ckpt")
    try:
        if provenance:
            res = _run_with_provenance(store, run_id, potential, is_model, structure, protocol, overrides)
        else:
            res = _run_direct(store, run_id, potential, structure, load_protocol("md", protocol, overrides))
    except MDError as err:
        raise AgiCLIError(str(err)) from None
    overhead = res.get("store_overhead")
    console.print(f"[bold]{run_id}[/bold]: {res['n_frames']} frames in {store.root} (version {res['version']})"
                  + (f"; store overhead {100 * overhead:.1f} % of the MD time"
                     if overhead is not None and overhead == overhead else "; nothing new to run"))


def _run_direct(store, run_id, potential, structure, params) -> dict:
    from agi_data.md import MDSettings, build_engine, run_md
    from agi_data.structures import alpha_agi

    if structure is None:
        sp = params["structure"]
        structure = alpha_agi(int(sp["supercell"]), float(sp["lattice"]), seed=int(sp["seed"]),
                              rattle=float(sp["rattle"]))
    engine = build_engine(potential or params["force_field"], mpi_ranks=int(params["lammps"]["mpi_ranks"]),
                          device=str(params["allegro"]["device"]))
    res = run_md(engine, structure, MDSettings(**params["md"]), store=store, run_id=run_id, progress=True,
                 dtype=params["store"]["dtype"], flush_every=int(params["store"]["flush_every"]), **params["checks"])
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
    builder = MDWorkChain.get_builder_from_protocol(protocol, store=store, run_id=run_id, structure=structure,
                                                    overrides=overrides, progress=True, **kwargs)
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
