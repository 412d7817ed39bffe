"""``agi submit reference|wannier|train|md``: build a WorkChain from a protocol and launch it.

Each verb builds with the WorkChain's ``get_builder_from_protocol`` (every input is checked there,
before anything is stored or submitted), then submits to the AiiDA daemon (``--daemon``) or runs in
this process (the default), and prints the process's pk and how to watch it::

    agi submit reference --structure cell.extxyz --protocol fast --daemon
    agi submit wannier --run demo-allegro-750K --frames 0:50:10 --daemon
    agi submit train --dataset 1234 --set training.max_epochs=50
    agi submit md --run my-750K --set md.n_steps=1000 --option account=proj42 --daemon

``--set KEY=VALUE`` overrides a protocol value (dotted path into the protocol file's
``default_inputs``, the value read as YAML); ``--option KEY=VALUE`` sets a scheduler option
(``account``, ``queue_name``, ``qos``, ``max_wallclock_seconds``, ``resources.num_mpiprocs_per_machine``…).
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import AgiCLIError, fail_cleanly, protocol_option, store_option


def _assign(pairs: tuple[str, ...], what: str) -> dict | None:
    """``("a.b=1", "c=x")`` → ``{"a": {"b": 1}, "c": "x"}`` (values parsed as YAML)."""
    import yaml

    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE (dotted KEY, e.g. pw.ecutwfc=40)", param_hint=what)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise click.BadParameter(f"{pair!r}: the value is not valid YAML ({err})", param_hint=what) from None
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise click.BadParameter(f"{pair!r} sets inside {part!r}, which is already a value", param_hint=what)
        node[leaf] = value
    return out or None


def _frames(text: str | None) -> list[int] | None:
    """``"0,5,9"`` or ``"0:50:10"`` (start:stop:step, stop excluded) → frame indices."""
    if text is None:
        return None
    out: list[int] = []
    try:
        for part in text.split(","):
            if ":" in part:
                out.extend(range(*[int(x) for x in part.split(":")]))
            else:
                out.append(int(part))
    except (TypeError, ValueError):
        raise click.BadParameter(f"{text!r}: give frame indices as 0,5,9 or start:stop[:step]",
                                 param_hint="--frames") from None
    return out


def _structures(files: tuple[str, ...]):
    """Every frame of every file, read with ASE (any format it knows: extxyz, cif, POSCAR, pw.x input…)."""
    from ase.io import read

    out = {}
    for i, name in enumerate(files):
        try:
            frames = read(name, index=":")
        except Exception as err:  # noqa: BLE001 - ASE raises many kinds; the message is what matters
            raise AgiCLIError(f"cannot read structure file {name}: {err}",
                              "give a file ASE reads (extxyz, cif, POSCAR, ...)") from None
        for j, atoms in enumerate(frames):
            out[f"s{i}_{j}" if len(frames) > 1 else f"s{i}"] = atoms
    return out


def _launch(builder, daemon: bool, kind: str, run: str | None) -> None:
    from aiida.engine import run_get_node, submit

    if daemon:
        from aiida.engine.daemon.client import get_daemon_client

        if not get_daemon_client().is_daemon_running:
            raise AgiCLIError("the AiiDA daemon is not running",
                              "start it with `verdi daemon start` (AIIDA_PATH as `agi setup` prints), "
                              "or run in this process without --daemon")
        node = submit(builder)
        click.echo(f"Submitted agi.{kind} <{node.pk}> to the daemon.")
    else:
        click.echo(f"Running agi.{kind} in this process ...")
        _, node = run_get_node(builder)
        state = "finished" if node.is_finished_ok else f"failed [{node.exit_status}] {node.exit_message}"
        click.echo(f"agi.{kind} <{node.pk}> {state}.")
    click.echo(f"Watch it:  verdi process show {node.pk}   |   verdi process report {node.pk}")
    click.echo(f"Results:   group agi/{kind}/{run or f'pk{node.pk}'} (verdi group show)")
    if not daemon and not node.is_finished_ok:
        raise SystemExit(1)


def _common(func):
    """The options every verb shares."""
    for decorator in reversed([
        click.option("--daemon/--no-daemon", default=False, show_default=True,
                     help="Submit to the AiiDA daemon, or run in this process."),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
                     help="Override a protocol value (dotted path, YAML value), e.g. pw.ecutwfc=40. Repeatable."),
        click.option("--option", "option_pairs", multiple=True, metavar="KEY=VALUE",
                     help="A scheduler option, e.g. account=proj42, resources.num_mpiprocs_per_machine=4. Repeatable."),
        click.option("--profile", default=None, help="AiiDA profile (default: the project's)."),
    ]):
        func = decorator(func)
    return func


def _prepare(profile, sets, option_pairs):
    from .aiida_cmds import _load_profile

    _load_profile(profile)
    return _assign(sets, "--set"), _assign(option_pairs, "--option")


def _store_or_default(store_path):
    if store_path is not None:
        return store_path
    from agi_data.config import store_path as default_store

    return default_store()


@click.group("submit")
def submit() -> None:
    """Build a WorkChain from a protocol and launch it (daemon or in process); prints the pk and how to watch it."""


@submit.command("reference")
@click.option("--code", default=None, help="pw.x code label (default pw@localhost).")
@click.option("--structure", "structure_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Structure file(s) (every frame is one structure). Repeatable.")
@click.option("--run", "run_id", default=None, help="Take the structures from frames of this store run.")
@click.option("--frames", default=None, help="Frames of --run: 0,5,9 or start:stop[:step].")
@store_option
@protocol_option("reference")
@_common
@fail_cleanly()
def reference_cmd(code, structure_files, run_id, frames, store_path, protocol, daemon, sets, option_pairs, profile):
    """pw.x SCF (energy, forces, stress) → a ReferenceDataset. Without --structure or --run: the protocol's cells."""
    from agi_data.aiida.workflows.reference import ReferenceWorkChain

    overrides, options = _prepare(profile, sets, option_pairs)
    structures = _structures(structure_files) if structure_files else None
    store = _store_or_default(store_path) if run_id else None
    builder = ReferenceWorkChain.get_builder_from_protocol(code, structures, protocol=protocol, overrides=overrides,
                                                           options=options, store=store, run=run_id,
                                                           frames=_frames(frames))
    _launch(builder, daemon, "reference", run_id)


@submit.command("wannier")
@click.option("--code", "code_pairs", multiple=True, metavar="NAME=LABEL",
              help="pw=..., pw2wannier90=..., wannier90=... (default <name>@localhost). Repeatable.")
@click.option("--run", "run_id", default=None, help="The store run whose frames are Wannierised.")
@click.option("--frames", default=None, help="Frames of --run: 0,5,9 or start:stop[:step].")
@click.option("--structure", "structure_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Or structure file(s): centres only as AiiDA nodes.")
@store_option
@protocol_option("wannier")
@_common
@fail_cleanly()
def wannier_cmd(code_pairs, run_id, frames, structure_files, store_path, protocol, daemon, sets, option_pairs,
                profile):
    """pw.x → wannier90.x on frames of a store run; the centres go back to the run."""
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    overrides, options = _prepare(profile, sets, option_pairs)
    codes = {k: str(v) for k, v in (_assign(code_pairs, "--code") or {}).items()}
    structures = _structures(structure_files) if structure_files else None
    store = _store_or_default(store_path) if run_id else None
    builder = WannierWorkChain.get_builder_from_protocol(codes, run_id, _frames(frames), protocol=protocol,
                                                         overrides=overrides, options=options, store=store,
                                                         structures=structures)
    _launch(builder, daemon, "wannier", run_id)


@submit.command("train")
@click.option("--dataset", "dataset_id", required=True, help="pk or UUID of a ReferenceDataset (agi.reference's output).")
@click.option("--code", default=None, help="nequip-train code label (default: this Python's nequip-train@localhost).")
@protocol_option("train")
@_common
@fail_cleanly()
def train_cmd(dataset_id, code, protocol, daemon, sets, option_pairs, profile):
    """nequip-train (Allegro) on a ReferenceDataset → a packaged model."""
    from aiida import orm
    from aiida.common.exceptions import MultipleObjectsError, NotExistent

    from agi_data.aiida.workflows.train import TrainWorkChain

    overrides, options = _prepare(profile, sets, option_pairs)
    try:
        dataset = orm.load_node(dataset_id)
    except (NotExistent, MultipleObjectsError, ValueError) as err:
        raise AgiCLIError(f"no node {dataset_id!r}: {err}", "see `verdi node list` or `verdi data agi.reference_set`") \
            from None
    builder = TrainWorkChain.get_builder_from_protocol(code, dataset, protocol=protocol, overrides=overrides,
                                                       options=options)
    _launch(builder, daemon, "train", None)


@submit.command("md")
@click.option("--run", "run_id", required=True, help="The store run to write (an existing run is continued).")
@click.option("--engine", type=click.Choice(["lammps", "ase"]), default=None,
              help="lammps (classical force field) or ase (Allegro model); default: chosen by the potential.")
@click.option("--model", default=None, help="A model: pk/UUID of agi.train's `model`, or a model file.")
@click.option("--force-field", default=None, help="A classical force field (default: the protocol's).")
@click.option("--structure", "structure_file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Starting structure (default: the protocol's α-AgI supercell).")
@store_option
@protocol_option("md")
@_common
@fail_cleanly()
def md_cmd(run_id, engine, model, force_field, structure_file, store_path, protocol, daemon, sets, option_pairs,
           profile):
    """MD with an Allegro model or the classical force field, streamed into a store run."""
    from agi_data.aiida.workflows.md import MDWorkChain

    overrides, options = _prepare(profile, sets, option_pairs)
    structure = None
    if structure_file:
        frames = list(_structures((structure_file,)).values())
        if len(frames) != 1:
            raise AgiCLIError(f"{structure_file} holds {len(frames)} frames", "give a file with one starting structure")
        structure = frames[0]
    if model is not None and not Path(model).is_file():
        from aiida import orm
        from aiida.common.exceptions import MultipleObjectsError, NotExistent

        try:
            model = orm.load_node(model)
        except (NotExistent, MultipleObjectsError, ValueError) as err:
            raise AgiCLIError(f"--model {model!r} is neither a file nor a node: {err}",
                              "give a model file or the pk of agi.train's `model` output") from None
    builder = MDWorkChain.get_builder_from_protocol(engine, structure, protocol=protocol, overrides=overrides,
                                                    options=options, store=_store_or_default(store_path),
                                                    run=run_id, model=model, force_field=force_field)
    _launch(builder, daemon, "md", run_id)
