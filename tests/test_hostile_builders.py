"""Bad builder inputs of the four WorkChains: each refused when the builder is made, nothing written.

Every case calls ``get_builder_from_protocol`` with one bad argument and expects a
:class:`~agi_data.aiida.workflows.builder.BuilderInputError` (or the protocol's
:class:`~agi_data.aiida.protocols.ProtocolError`, both ``ValueError``) whose message names the
problem. After each case the AiiDA database holds the same nodes and groups as before (nothing
stored, nothing submitted) and the store's files are byte-identical (checksums of every file).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from aiida import orm
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from agi_data import open_store
from agi_data.aiida.data import ReferenceDataset
from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.aiida.workflows.train import TrainWorkChain
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.structures import alpha_agi

RUN = "hostile-src"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile")
    prepared = prepare_profile(work / "aiida-work")
    store = open_store(work / "store")
    cell = alpha_agi(1, seed=0)
    with store.create_run(RUN, cell.get_chemical_symbols(), cell.cell.array, timestep_ps=0.01) as w:
        w.append(np.stack([cell.positions + 0.01 * i for i in range(3)]))
    gone = orm.InstalledCode(computer=prepared["computer"], filepath_executable="/nonexistent/pw.x",
                             label="pw-gone", default_calc_job_plugin="quantumespresso.pw").store()
    afile = work / "a-file"
    afile.write_text("not a store")
    return {"store": store, "root": work / "store", "gone": gone, "file": afile, "work": work}


def _dataset(n: int) -> ReferenceDataset:
    frames = []
    for i in range(n):
        atoms = alpha_agi(1, seed=i, rattle=0.05)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0 * i, forces=np.zeros((len(atoms), 3)))
        frames.append(atoms)
    return ReferenceDataset.from_atoms(frames)


def _crowded():
    atoms = alpha_agi(1, seed=0)
    atoms.positions[1] = atoms.positions[0] + [0.2, 0.2, 0.0]
    return atoms


def _copper():
    atoms = alpha_agi(1, seed=0)
    atoms.symbols[0] = "Cu"
    return atoms


REF, WAN, TRAIN, MD = (ReferenceWorkChain, WannierWorkChain, TrainWorkChain, MDWorkChain)
S = {"structures": alpha_agi(1, seed=0)}
# (id, WorkChain, kwargs (callables get env), message fragment)
CASES = [
    ("ref-unknown-protocol", REF, {**S, "protocol": "fsat"}, "unknown protocol 'fsat'"),
    ("ref-cutoff-not-a-number", REF, {**S, "overrides": {"pw": {"ecutwfc": "thirty"}}}, "pw.ecutwfc must be a number"),
    ("ref-mixing-beta-out-of-range", REF, {**S, "overrides": {"pw": {"mixing_beta": 1.5}}}, "mixing_beta must lie in"),
    ("ref-zero-scf-steps", REF, {**S, "overrides": {"pw": {"electron_maxstep": 0}}}, "electron_maxstep must be > 0"),
    ("ref-typo-key", REF, {**S, "overrides": {"pw": {"ecutwfcc": 40}}}, "unknown protocol key 'pw.ecutwfcc'"),
    ("ref-bool-as-int", REF, {**S, "overrides": {"max_concurrent": True}}, "max_concurrent must be an integer"),
    ("ref-unknown-option", REF, {**S, "options": {"acount": "proj"}}, "unknown scheduler option(s) ['acount']"),
    ("ref-negative-walltime", REF, {**S, "options": {"max_wallclock_seconds": -5}}, "max_wallclock_seconds must be > 0"),
    ("ref-zero-machines", REF, {**S, "options": {"resources": {"num_machines": 0}}}, "num_machines must be an integer"),
    ("ref-option-wrong-type", REF, {**S, "options": {"account": 42}}, "account must be str"),
    ("ref-not-a-structure", REF, {"structures": "AgI.cif"}, "structures must be an ase.Atoms"),
    ("ref-empty-structure", REF, {"structures": [Atoms(cell=[5, 5, 5], pbc=True)]}, "has no atoms"),
    ("ref-not-periodic", REF, {"structures": Atoms("AgI", positions=[[0, 0, 0], [2.8, 0, 0]])}, "periodic 3-D cell"),
    ("ref-bad-label", REF, {"structures": {"frame 1": alpha_agi(1, seed=0)}}, "structure label 'frame 1'"),
    ("ref-no-family", REF, {**S, "pseudo_family": "no-such-family"}, "no pseudopotential family 'no-such-family'"),
    ("ref-no-pseudo-for-element", REF, {"structures": _copper()}, "no pseudopotential for ['Cu']"),
    ("ref-odd-electrons", REF, {"structures": Atoms("AgI2", positions=[[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0]],
                                                    cell=[5.07] * 3, pbc=True)}, "valence electrons"),
    ("ref-code-gone", REF, {**S, "code": lambda e: e["gone"]}, "/nonexistent/pw.x"),
    ("ref-code-unknown-label", REF, {**S, "code": "pw@nowhere"}, "no AiiDA code 'pw@nowhere'"),
    ("ref-structures-and-run", REF, {**S, "store": lambda e: e["store"], "run": RUN, "frames": [0]}, "not both"),
    ("wan-unknown-run", WAN, {"store": lambda e: e["store"], "run": "no-such-run", "frames": [0]}, "no run 'no-such-run'"),
    ("wan-frames-outside", WAN, {"store": lambda e: e["store"], "run": RUN, "frames": [0, 99]}, "frames [99] are outside"),
    ("wan-negative-frame", WAN, {"store": lambda e: e["store"], "run": RUN, "frames": [-1]}, "frames [-1] are outside"),
    ("wan-frames-not-integers", WAN, {"store": lambda e: e["store"], "run": RUN, "frames": ["ten"]}, "frames must be integers"),
    ("wan-frames-repeated", WAN, {"store": lambda e: e["store"], "run": RUN, "frames": [1, 1]}, "repeat an index"),
    ("wan-frames-missing", WAN, {"store": lambda e: e["store"], "run": RUN}, "give `frames`"),
    ("wan-store-missing", WAN, {"store": lambda e: e["work"] / "no-store", "run": RUN, "frames": [0]}, "no agi-data store at"),
    ("wan-unknown-code-key", WAN, {**S, "codes": {"pw2w90": "pw@localhost"}}, "codes must map"),
    ("wan-nothing-to-compute", WAN, {}, "nothing to compute"),
    ("wan-batch-zero", WAN, {**S, "overrides": {"batch_size": 0}}, "batch_size must be > 0"),
    ("train-no-dataset", TRAIN, {"dataset": None}, "dataset must be a ReferenceDataset"),
    ("train-dataset-is-a-structure", TRAIN, {"dataset": lambda e: orm.StructureData(ase=alpha_agi(1))},
     "dataset must be a ReferenceDataset"),
    ("train-too-few-structures", TRAIN, {"dataset": lambda e: _dataset(2)}, "at least 3 structures"),
    ("train-split-too-large", TRAIN, {"dataset": lambda e: _dataset(5), "overrides": {"split": {"val": 0.6, "test": 0.5}}},
     "val + test < 1"),
    ("train-unknown-device", TRAIN, {"dataset": lambda e: _dataset(5), "overrides": {"device": "tpu"}}, "device must be"),
    ("train-zero-epochs", TRAIN, {"dataset": lambda e: _dataset(5), "overrides": {"training": {"max_epochs": 0}}},
     "max_epochs must be > 0"),
    ("train-nan-learning-rate", TRAIN, {"dataset": lambda e: _dataset(5),
                                        "overrides": {"training": {"learning_rate": float("nan")}}}, "learning_rate must be"),
    ("md-steps-as-words", MD, {"store": lambda e: e["root"], "run": "m", "overrides": {"md": {"n_steps": "ten"}}},
     "md.n_steps must be an integer"),
    ("md-negative-temperature", MD, {"store": lambda e: e["root"], "run": "m",
                                     "overrides": {"md": {"temperature_K": -5.0}}}, "temperature"),
    ("md-steps-not-multiple-of-stride", MD, {"store": lambda e: e["root"], "run": "m",
                                             "overrides": {"md": {"n_steps": 15, "stride": 10}}}, "multiple of stride"),
    ("md-bad-run-id", MD, {"store": lambda e: e["root"], "run": "../escape"}, "invalid run id"),
    ("md-run-id-newline", MD, {"store": lambda e: e["root"], "run": "r\n"}, "invalid run id"),
    ("md-store-is-a-file", MD, {"store": lambda e: e["file"], "run": "m"}, "is not an agi-data store"),
    ("md-store-parent-missing", MD, {"store": lambda e: e["work"] / "a" / "b" / "c", "run": "m"}, "does not exist"),
    ("md-overlapping-atoms", MD, {"store": lambda e: e["root"], "run": "m", "structure": _crowded()}, "structure:"),
    ("md-unknown-force-field", MD, {"store": lambda e: e["root"], "run": "m", "force_field": "no-such-ff"},
     "unknown force field 'no-such-ff'"),
    ("md-element-unknown-to-force-field", MD, {"store": lambda e: e["root"], "run": "m", "structure": _copper()},
     "not ['Cu']"),
    ("md-unknown-engine", MD, {"store": lambda e: e["root"], "run": "m", "code": "gromacs"}, "code must be 'lammps'"),
    ("md-model-file-missing", MD, {"store": lambda e: e["root"], "run": "m", "model": "/nonexistent/model.nequip.zip"},
     "model file /nonexistent/model.nequip.zip does not exist"),
    ("md-ase-without-model", MD, {"store": lambda e: e["root"], "run": "m", "code": "ase"}, "give `model`"),
    ("md-unknown-top-level-key", MD, {"store": lambda e: e["root"], "run": "m", "overrides": {"thermostat": {}}},
     "unknown protocol key 'thermostat'"),
]


def _snapshot(env) -> tuple:
    from aiida.orm import QueryBuilder

    files = {}
    for root in (env["root"], env["work"]):
        for path in sorted(Path(root).rglob("*")):
            if path.is_file() and "aiida-work" not in path.parts:
                files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    nodes = QueryBuilder().append(orm.Node).count()
    groups = QueryBuilder().append(orm.Group).count()
    return nodes, groups, files


def test_at_least_twenty_distinct_cases_across_the_four_workchains():
    assert len({c[0] for c in CASES}) == len(CASES) >= 20
    assert {c[1] for c in CASES} == {REF, WAN, TRAIN, MD}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_at_build_time_and_nothing_is_written(env, case):
    _name, workchain, kwargs, fragment = case
    kwargs = {k: v(env) if callable(v) else v for k, v in kwargs.items()}
    before = _snapshot(env)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new call shape: no shim involved
        with pytest.raises(ValueError) as info:
            workchain.get_builder_from_protocol(**kwargs)
    assert fragment in str(info.value), str(info.value)
    assert _snapshot(env) == before
