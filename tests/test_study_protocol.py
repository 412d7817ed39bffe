"""The study chain (``agi demo --protocol study|production``, agi_data/protocols/study.yaml): it loads, its
values are the study's (density, cells, temperatures, NVE production, lengths), and every stage's WorkChain
builds its inputs from it — nothing is run."""

from __future__ import annotations

import click
import numpy as np
import pytest
from aiida import orm
from ase.calculators.singlepoint import SinglePointCalculator

from agi_data import open_store
from agi_data.aiida.data import ReferenceDataset
from agi_data.aiida.protocols import ProtocolError, load_protocol
from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.aiida.workflows.train import TrainWorkChain
from agi_data.cli.demo_cmds import demo_cmd
from agi_data.demo.pipeline import (
    PROTOCOL_FILE,
    STAGES,
    chain_protocols,
    demo_settings,
    frame_indices,
    stage_key,
)
from agi_data.md import BlowUpLimits, MDSettings
from agi_data.structures import alpha_agi

#: Å: the study's lattice constant (box 15.2565 Å for 3×3×3 cells)
A_STUDY = 5.0855
MD_STAGES = ("sampling", "explore", "md_allegro", "md_classical")


def _resolved(settings: dict, stage: str) -> dict:
    s = settings[stage]
    return load_protocol(PROTOCOL_FILE[stage], s["protocol"], s.get("overrides"))


def _n_frames(md: dict) -> int:
    return md["n_steps"] // md["stride"] + 1


def test_agi_demo_accepts_every_chain_protocol_and_names_them_on_a_typo():
    option = next(p for p in demo_cmd.params if p.name == "protocol")
    ctx = click.Context(demo_cmd)
    for name in ("fast", "demo", "study", "production"):
        assert option.process_value(ctx, name) == name
    with pytest.raises(click.BadParameter, match="'study'.*'production'|'production'.*'study'"):
        option.process_value(ctx, "studdy")
    assert chain_protocols()["study"][0] == "study" and chain_protocols()["demo"][0] == "demo"
    with pytest.raises(ProtocolError, match="available"):
        demo_settings("studdy")


@pytest.mark.parametrize("protocol", ["study", "production"])
def test_study_values(protocol):
    s = demo_settings(protocol)
    p = {stage: _resolved(s, stage) for stage in MD_STAGES}
    # 108 ions at the study's density for both analysed runs; 32-ion reference cells at the same density
    for stage in ("md_allegro", "md_classical"):
        st = p[stage]["structure"]
        atoms = alpha_agi(st["supercell"], st["lattice"], seed=st["seed"])
        assert len(atoms) == 108 and st["lattice"] == A_STUDY
        np.testing.assert_allclose(atoms.cell.lengths(), 15.2565, atol=1e-9)
    for stage in ("sampling", "explore"):
        st = p[stage]["structure"]
        assert len(alpha_agi(st["supercell"], st["lattice"], seed=st["seed"])) == 32 and st["lattice"] == A_STUDY
    # reference configurations from 600-900 K, classical and Allegro-explored (one active-learning round)
    for stage in ("sampling", "explore"):
        assert 600.0 <= p[stage]["md"]["temperature_K"] <= 900.0
    assert s["explore_reference"]["n_frames"] >= 20 and s["reference"]["n_frames"] + s["explore_reference"]["n_frames"] >= 100
    # equilibration (its own store run), then NVE production, the same protocol for both models
    md_a, md_c = p["md_allegro"]["md"], p["md_classical"]["md"]
    for md in (md_a, md_c):
        settings = MDSettings(**md)
        assert settings.ensemble == "nve" and settings.has_equilibration and md["temperature_K"] == 750.0
    assert md_a == md_c
    length_ps = md_a["n_steps"] * md_a["timestep_fs"] * 1e-3
    if protocol == "production":  # the paper's length: 40 ps at 0.5 fs, every step stored
        assert (length_ps, md_a["timestep_fs"], md_a["stride"]) == (40.0, 0.5, 1)
    else:  # long enough for a jackknife kernel error: 8 blocks of at least 1 ps
        assert length_ps >= 8 * 1.0
    # the frames every stage takes exist in the run it takes them from
    for stage, source in (("reference", "sampling"), ("explore_reference", "explore"), ("wannier", "md_allegro")):
        n = _n_frames(p[source]["md"])
        assert len(frame_indices(s[stage], n)) == s[stage]["n_frames"], (stage, n)
    for stage in MD_STAGES:
        BlowUpLimits(**p[stage]["checks"])
    assert set(s["expected_seconds"]) == set(STAGES)


def test_study_and_production_share_their_reference_set_and_model():
    study, production = demo_settings("study"), demo_settings("production")
    for stage in ("sampling", "reference", "explore_train", "explore", "explore_reference", "train"):
        assert stage_key(study, stage) == stage_key(production, stage), stage
    for stage in ("md_allegro", "md_classical", "wannier"):
        assert stage_key(study, stage) != stage_key(production, stage), stage


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("study")
    prepared = prepare_profile(work / "aiida-work")
    return {**prepared, "store": open_store(work / "store"), "work": work}


def _model(work) -> orm.SinglefileData:
    """A model node as agi.train outputs it (type names recorded); the builders never load the file."""
    path = work / "model.nequip.zip"
    path.write_bytes(b"not loaded by a builder")
    node = orm.SinglefileData(file=path)
    node.base.attributes.set("type_names", ["Ag", "I"])
    return node


def test_every_stage_of_the_study_builds_its_inputs(env):
    s = demo_settings("study")
    store, model = env["store"], _model(env["work"])
    built = {}
    for stage in MD_STAGES:
        kwargs = {"model": model} if stage in ("explore", "md_allegro") else {}
        b = MDWorkChain.get_builder_from_protocol(None, None, protocol=s[stage]["protocol"], store=store,
                                                  run=f"{s[stage]['run_id']}-test", overrides=s[stage]["overrides"],
                                                  **kwargs)
        built[stage] = b
        assert len(b.structure.get_ase()) == (108 if stage.startswith("md_") else 32)
    assert built["md_allegro"].parameters["md"]["ensemble"] == "nve"
    assert "model" in built["md_allegro"] and "force_field" in built["md_classical"]
    # the reference stages label frames of the sampling and exploration runs: runs of those lengths
    for stage, source in (("reference", "sampling"), ("explore_reference", "explore")):
        st = _resolved(s, source)["structure"]
        cell = alpha_agi(st["supercell"], st["lattice"], seed=st["seed"])
        n = _n_frames(_resolved(s, source)["md"])
        run = f"{source}-frames"
        if run not in store.run_ids():
            with store.create_run(run, cell.get_chemical_symbols(), cell.cell.array, timestep_ps=0.2) as w:
                w.append(np.repeat(cell.positions[None], n, axis=0))
        frames = frame_indices(s[stage], n)
        b = ReferenceWorkChain.get_builder_from_protocol(None, protocol=s[stage]["protocol"],
                                                         overrides=s[stage]["overrides"], store=store, run=run,
                                                         frames=frames)
        assert len(b.frames.get_list()) == s[stage]["n_frames"]
    # training on a dataset of 32-ion cells
    atoms = []
    for i in range(6):
        a = alpha_agi(2, A_STUDY, seed=i, rattle=0.05)
        a.calc = SinglePointCalculator(a, energy=-1.0 * i, forces=np.zeros((len(a), 3)))
        atoms.append(a)
    for stage in ("explore_train", "train"):
        b = TrainWorkChain.get_builder_from_protocol(None, ReferenceDataset.from_atoms(atoms),
                                                     protocol=s[stage]["protocol"], overrides=s[stage]["overrides"])
        assert b.parameters["training"]["max_epochs"] == s[stage]["overrides"]["training"]["max_epochs"]
