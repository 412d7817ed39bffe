"""The builders' shape: aiida-quantumespresso's order, ProtocolMixin helpers, options, the legacy shim, groups.

The calls of the previous release (protocol or dataset first; ``pw_code=``, ``run_id=``) — every form
that ``agi_data/demo/pipeline.py``, ``agi_data/cli/md_cmds.py``, ``benchmarks/`` and the tests used —
still build the same inputs, with a DeprecationWarning that names the new call.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.calculators.singlepoint import SinglePointCalculator

from agi_data import open_store
from agi_data.aiida.data import ReferenceDataset
from agi_data.aiida.protocols import load_protocol, scheduler_option_names
from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.aiida.workflows.train import TrainWorkChain
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.structures import alpha_agi

WORKCHAINS = (ReferenceWorkChain, WannierWorkChain, TrainWorkChain, MDWorkChain)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("builders")
    prepared = prepare_profile(work / "aiida-work")
    store = open_store(work / "store")
    cell = alpha_agi(1, seed=0)
    with store.create_run("src", cell.get_chemical_symbols(), cell.cell.array, timestep_ps=0.01) as w:
        w.append(np.stack([cell.positions + 0.01 * i for i in range(4)]))
    return {**prepared, "store": store, "work": work}


def _dataset(n=5):
    frames = []
    for i in range(n):
        atoms = alpha_agi(1, seed=i, rattle=0.05)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 * i, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    return ReferenceDataset.from_atoms(frames)


@pytest.mark.parametrize("workchain", WORKCHAINS, ids=lambda w: w.__name__)
def test_protocol_mixin_helpers(workchain):
    protocols = workchain.get_available_protocols()
    assert set(protocols) == {"fast", "demo", "production"}
    assert all(v["description"] for v in protocols.values())
    assert workchain.get_default_protocol() == "fast"
    assert workchain.get_protocol_filepath().name == f"{workchain._protocol_name}.yaml"
    inputs = workchain.get_protocol_inputs("production", {"options": {"account": "proj42"}})
    assert inputs["protocol"] == "production" and inputs["options"]["account"] == "proj42"


def test_one_atoms_is_a_list_of_one_and_the_new_shape_builds(env):
    atoms = alpha_agi(1, seed=2, rattle=0.05)
    b = ReferenceWorkChain.get_builder_from_protocol(env["codes"]["pw"], atoms, protocol="fast")
    assert list(b.structures) == ["s0"] and b.structures["s0"].get_ase().get_chemical_formula() == "Ag2I2"
    assert b.pw_code.uuid == env["codes"]["pw"].uuid and b.parameters["protocol"] == "fast"
    w = WannierWorkChain.get_builder_from_protocol({"pw": "pw@localhost"}, "src", [0, 3], store=env["store"])
    assert w.run["run_id"] == "src" and w.frames.get_list() == [0, 3]
    assert w.wannier90_code.full_label == "wannier90@localhost"
    t = TrainWorkChain.get_builder_from_protocol(None, _dataset(), protocol="fast")
    assert t.parameters["split"] == {"val": 0.15, "test": 0.15}
    m = MDWorkChain.get_builder_from_protocol("lammps", atoms, store=env["store"], run="new-run")
    assert m.force_field.value == "agi-vashishta-rahman-sk" and m.store["run_id"] == "new-run"


def test_scheduler_options_from_protocol_and_builder(env):
    b = ReferenceWorkChain.get_builder_from_protocol(
        None, alpha_agi(1), protocol="production",
        options={"account": "proj42", "qos": "debug", "prepend_text": "module load qe", "max_memory_kb": 10**6})
    options = b.parameters["options"]
    assert options["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 32}  # from the protocol
    assert options["max_wallclock_seconds"] == 43200
    assert (options["account"], options["qos"], options["prepend_text"]) == ("proj42", "debug", "module load qe")
    from agi_data.aiida.workflows.common import calcjob_options

    job = calcjob_options(b.parameters.get_dict(), wallclock_factor=3)
    assert job["withmpi"] is True and job["max_wallclock_seconds"] == 3 * 43200 and job["account"] == "proj42"
    assert calcjob_options(b.parameters.get_dict(), serial=True)["withmpi"] is False
    assert {"account", "queue_name", "qos", "custom_scheduler_commands", "prepend_text"} <= scheduler_option_names()


def test_old_top_level_resources_still_work_with_a_warning():
    with pytest.warns(DeprecationWarning, match="put them under 'options'"):
        params = load_protocol("wannier", "fast", {"resources": {"num_mpiprocs_per_machine": 2},
                                                   "max_wallclock_seconds": 60})
    assert params["options"]["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 2}
    assert params["options"]["max_wallclock_seconds"] == 60
    with pytest.warns(DeprecationWarning, match="moved into 'options'"):
        assert params["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 2}
    assert "resources" not in orm.Dict(params).get_dict()  # stored once, under options


def test_relative_store_is_resolved_where_the_builder_is_made(env, monkeypatch):
    monkeypatch.chdir(env["work"])
    w = WannierWorkChain.get_builder_from_protocol(None, "src", [1], store="store")
    assert w.run["store_path"] == str((env["work"] / "store").resolve())
    m = MDWorkChain.get_builder_from_protocol(None, None, store="fresh-store", run="r1")
    assert m.store["store_path"] == str((env["work"] / "fresh-store").resolve())
    assert not (env["work"] / "fresh-store").exists()  # nothing created by building


def _same(a, b):
    return a.parameters.get_dict() == b.parameters.get_dict()


def test_previous_calls_work_through_the_shim_with_a_warning(env):
    store, atoms = env["store"], alpha_agi(1, seed=4)
    overrides = {"pw": {"electron_maxstep": 25}}
    legacy_new = [
        # agi_data/demo/pipeline.py
        (lambda: ReferenceWorkChain.get_builder_from_protocol("fast", overrides=overrides, store=store, run_id="src",
                                                              frames=[0, 1]),
         lambda: ReferenceWorkChain.get_builder_from_protocol(None, protocol="fast", overrides=overrides, store=store,
                                                              run="src", frames=[0, 1])),
        (lambda: WannierWorkChain.get_builder_from_protocol("fast", overrides=overrides, store=store, run_id="src",
                                                            frames=[2]),
         lambda: WannierWorkChain.get_builder_from_protocol(None, "src", [2], protocol="fast", overrides=overrides,
                                                            store=store)),
        (lambda: TrainWorkChain.get_builder_from_protocol(env["dataset"], "fast", overrides=None),
         lambda: TrainWorkChain.get_builder_from_protocol(None, env["dataset"], protocol="fast")),
        (lambda: MDWorkChain.get_builder_from_protocol("fast", store=store, run_id="m1", overrides=None),
         lambda: MDWorkChain.get_builder_from_protocol(None, None, protocol="fast", store=store, run="m1")),
        # tests and agi_data/cli/md_cmds.py
        (lambda: ReferenceWorkChain.get_builder_from_protocol("fast", structures={"s0": atoms},
                                                              pw_code=env["codes"]["pw"]),
         lambda: ReferenceWorkChain.get_builder_from_protocol(env["codes"]["pw"], {"s0": atoms}, protocol="fast")),
        (lambda: TrainWorkChain.get_builder_from_protocol(env["dataset"], "fast", code="nequip-train@localhost"),
         lambda: TrainWorkChain.get_builder_from_protocol("nequip-train@localhost", env["dataset"], protocol="fast")),
        (lambda: MDWorkChain.get_builder_from_protocol("fast", store=store, run_id="m2", structure=atoms,
                                                       overrides={"md": {"n_steps": 40}}, progress=True),
         lambda: MDWorkChain.get_builder_from_protocol(None, atoms, protocol="fast", store=store, run="m2",
                                                       overrides={"md": {"n_steps": 40}}, progress=True)),
    ]
    for old, new in legacy_new:
        with pytest.warns(DeprecationWarning, match="get_builder_from_protocol"):
            a = old()
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)
            b = new()
        assert _same(a, b)
        for port in ("run", "frames", "store", "structure"):
            if port in a:
                assert a[port].get_dict() == b[port].get_dict() if isinstance(a[port], orm.Dict) else True


@pytest.fixture(autouse=True)
def _dataset_in_env(env):
    env.setdefault("dataset", _dataset())


def test_md_results_land_in_the_run_group(env):
    builder = MDWorkChain.get_builder_from_protocol("lammps", None, protocol="fast", store=env["store"],
                                                    run="grouped", overrides={"md": {"n_steps": 20, "stride": 10}})
    result, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    group = orm.load_group("agi/md/grouped")
    assert {n.uuid for n in group.nodes} == {node.uuid, result["run"].uuid}
    assert env["store"].trajectory("grouped").sizes["time"] == 3


def test_agi_submit_in_process_and_its_errors(env, tmp_path):
    from click.testing import CliRunner

    from agi_data.cli import main

    runner = CliRunner()
    store = tmp_path / "store"
    bad = runner.invoke(main, ["submit", "md", "--run", "x", "--store", str(store), "--set", "md.n_steps=ten"])
    assert bad.exit_code == 1 and "md.n_steps must be an integer" in bad.output and "Traceback" not in bad.output
    bad = runner.invoke(main, ["submit", "md", "--run", "x", "--store", str(store), "--option", "acount=p"])
    assert bad.exit_code == 1 and "unknown scheduler option(s) ['acount']" in bad.output
    bad = runner.invoke(main, ["submit", "wannier", "--run", "src", "--frames", "0:99", "--store", str(env["work"] / "store")])
    assert bad.exit_code == 1 and "are outside run 'src'" in bad.output
    bad = runner.invoke(main, ["submit", "reference", "--protocol", "fsat"])
    assert bad.exit_code == 2 and "choose one of" in bad.output
    assert not store.exists()  # nothing written by the refused calls
    ok = runner.invoke(main, ["submit", "md", "--run", "cli", "--store", str(store), "--set", "md.n_steps=20",
                              "--set", "md.stride=10"])
    assert ok.exit_code == 0, ok.output
    assert "finished" in ok.output and "verdi process report" in ok.output and "agi/md/cli" in ok.output
    assert open_store(store).trajectory("cli").sizes["time"] == 3
