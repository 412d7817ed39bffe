"""agi.train on a real nequip-train run, then MD with the trained Allegro model.

The reference set is labelled by a real code: the classical AgI model in
LAMMPS (750 K snapshots of a 32-ion cell), so the test needs no DFT. Checks:
outputs and their links to the dataset; held-out errors recomputed
independently from the packaged model; the force error beats predicting zero
forces by at least a factor 2; forces are −∇E (central differences); NVE
with the model conserves energy; the agi.md WorkChain records the model's
node in the store run; a structure with elements the model was not trained
for is refused.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from agi_data import open_store
from agi_data.aiida.calculations.nequip_train import NequipTrainCalculation, ensure_nequip_code
from agi_data.aiida.data import ReferenceDataset
from agi_data.aiida.setup import ensure_computer
from agi_data.aiida.workflows.builder import BuilderInputError
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.train import TrainWorkChain
from agi_data.elements import mass
from agi_data.md import AseEngine, LammpsEngine, MDSettings, maxwell_boltzmann, run_md
from agi_data.structures import alpha_agi
from agi_data.units import AMU_A2_PS2_IN_EV

pytestmark = pytest.mark.slow

N_STRUCTURES = 24


def classical_reference_set() -> ReferenceDataset:
    """Snapshots of α-AgI (32 ions) at 750 K, energies and forces from the classical model in LAMMPS."""
    atoms = alpha_agi(2, seed=1)
    s = MDSettings(temperature_K=750.0, n_steps=20 * N_STRUCTURES, timestep_fs=2.0, stride=20,
                   ensemble="langevin", seed=3)
    frames = list(LammpsEngine().run(atoms, maxwell_boltzmann(atoms, 750.0, 3), s, first_frame=0,
                                     n_frames=N_STRUCTURES, include_initial=False))
    structures = []
    for f in frames:
        a = Atoms(atoms.get_chemical_symbols(), positions=f.positions, cell=f.cell, pbc=True)
        a.calc = SinglePointCalculator(a, energy=f.energy, forces=f.forces)
        structures.append(a)
    return ReferenceDataset.from_atoms(structures, labels=[f"classical-750K:{f.step}" for f in frames]).store()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    computer = ensure_computer(workdir=tmp_path_factory.mktemp("aiida-train"))
    dataset = classical_reference_set()
    builder = TrainWorkChain.get_builder_from_protocol(ensure_nequip_code(computer), dataset, protocol="fast")
    result, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    path = tmp_path_factory.mktemp("model") / "model.nequip.zip"
    with result["model"].open(mode="rb") as src:
        path.write_bytes(src.read())
    return {"dataset": dataset, "result": result, "node": node, "model_path": path}


def test_outputs_are_linked_to_the_dataset(trained):
    result, dataset = trained["result"], trained["dataset"]
    model = result["model"]
    assert model.filename == "model.nequip.zip"
    assert model.base.attributes.get("type_names") == ["Ag", "I"]
    assert model.base.attributes.get("r_max_A") == pytest.approx(5.0)
    # model and checkpoint ← NequipTrainCalculation ← dataset
    train_calc = model.creator
    assert train_calc.process_class is NequipTrainCalculation
    assert result["checkpoint"].creator.uuid == train_calc.uuid
    assert train_calc.inputs.dataset.uuid == dataset.uuid
    curves = result["training_curves"]
    epochs = curves.get_array("epoch")
    assert list(epochs) == list(range(10))
    val = curves.get_array("val_forces_rmse")
    assert val[-1] < 0.8 * val[0]  # it learned
    split = result["test_metrics"]["split"]
    assert sorted(split["train"] + split["val"] + split["test"]) == list(range(N_STRUCTURES))


def test_held_out_force_error_beats_zero_forces(trained):
    metrics = trained["result"]["test_metrics"].get_dict()
    engine = AseEngine.from_nequip_model(trained["model_path"])
    test_atoms = [trained["dataset"].to_atoms()[i] for i in metrics["split"]["test"]]
    pred, ref = [], []
    for a in test_atoms:
        ref.append(a.get_forces())
        b = a.copy()
        b.calc = engine.calculator
        pred.append(b.get_forces())
    pred, ref = np.concatenate(pred), np.concatenate(ref)
    rmse = np.sqrt(np.mean((pred - ref) ** 2))
    zero = np.sqrt(np.mean(ref**2))
    # the parser's numbers are those of the packaged model on the held-out structures
    assert metrics["force_rmse_eV_per_A"] == pytest.approx(rmse, rel=1e-3)
    assert metrics["force_rms_reference_eV_per_A"] == pytest.approx(zero, rel=1e-9)
    # the stated bound: at least 2× better than predicting zero forces
    assert metrics["force_rmse_over_zero_baseline"] < 0.5
    print(f"held-out force RMSE {rmse:.4f} eV/Å, zero-force {zero:.4f} eV/Å, ratio {rmse / zero:.3f}; "
          f"energy RMSE {1000 * metrics['energy_rmse_eV_per_atom']:.2f} meV/atom")


def test_forces_are_minus_the_energy_gradient(trained):
    engine = AseEngine.from_nequip_model(trained["model_path"])
    a = trained["dataset"].to_atoms()[0]
    a.calc = engine.calculator
    forces = a.get_forces()
    h = 1e-3
    for i, k in [(0, 0), (7, 1), (20, 2), (31, 1)]:
        b = a.copy()
        b.calc = engine.calculator
        b.positions[i, k] += h
        ep = b.get_potential_energy()
        b.positions[i, k] -= 2 * h
        em = b.get_potential_energy()
        assert forces[i, k] == pytest.approx(-(ep - em) / (2 * h), abs=5e-3)
    assert np.abs(forces).max() > 0.1


def test_nve_with_the_model_conserves_energy(trained, tmp_path):
    store = open_store(tmp_path / "store")
    s = MDSettings(temperature_K=750.0, n_steps=100, timestep_fs=1.0, stride=5, ensemble="nve", seed=4)
    run_md(AseEngine.from_nequip_model(trained["model_path"]), alpha_agi(2, seed=2), s, store=store,
           run_id="nve", progress=False)
    ds = store.trajectory("nve").load()
    m = np.array([mass(x) for x in ds.symbol.values])
    kinetic = 0.5 * (m[None, :, None] * ds.velocities.values**2).sum(axis=(1, 2)) * AMU_A2_PS2_IN_EV
    total = ds.energies.values + kinetic
    drift = np.abs(total - total[0]).max() / ds.sizes["atom"]
    assert np.ptp(kinetic) / ds.sizes["atom"] > 5 * drift  # energy really flows between kinetic and potential
    assert drift < 5e-5  # eV/atom over 0.1 ps at 1 fs (float32 model; measured ~2e-6)
    print(f"NVE: max |E(t) - E(0)| = {1000 * drift:.3f} meV/atom over 0.1 ps")


def test_md_workchain_records_the_model(trained, tmp_path):
    store = open_store(tmp_path / "store")
    model = trained["result"]["model"]
    builder = MDWorkChain.get_builder_from_protocol("ase", None, protocol="fast", store=store, run="allegro-750K",
                                                    model=model, overrides={"md": {"n_steps": 20, "stride": 10}})
    result, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    ds = store.trajectory("allegro-750K").load()
    assert ds.sizes["time"] == 3 and result["run"]["n_frames"] == 3
    assert ds.attrs["potential_uuid"] == model.uuid and ds.attrs["provenance_uuid"] == node.uuid
    assert orm.load_node(ds.attrs["provenance_calc_uuid"]).inputs.potential.uuid == model.uuid
    assert ds.attrs["engine"] == "ase" and ds.attrs["calculator"] == "NequIPCalculator"
    # stored energies are the model's energies of the stored positions
    engine = AseEngine.from_nequip_model(trained["model_path"])
    a = builder.structure.get_ase()
    a.positions = ds.positions.values[-1]
    a.calc = engine.calculator
    assert ds.energies.values[-1] == pytest.approx(a.get_potential_energy(), abs=1e-4)


def test_allegro_md_as_a_job_equals_the_in_process_run(trained, tmp_path):
    """agi.md with the model and an agi-md code: the Allegro MD runs as an agi.md_job CalcJob, same frames."""
    from agi_data.aiida.calculations.md_job import ensure_md_code
    from agi_data.aiida.setup import ensure_computer as computer_of

    model = trained["result"]["model"]
    code = ensure_md_code(computer_of("allegro-jobs", workdir=tmp_path / "scratch", mpiprocs=1, poll_interval=0.5))
    atoms = alpha_agi(2, seed=0)
    overrides = {"md": {"n_steps": 20, "stride": 10}}
    for route, engine in (("in-process", "ase"), ("job", code)):
        builder = MDWorkChain.get_builder_from_protocol(engine, atoms, protocol="fast", store=tmp_path / route,
                                                        run="allegro", model=model, overrides=overrides)
        _, node = run_get_node(builder)
        assert node.is_finished_ok, f"{route}: {node.exit_status} {node.exit_message}"
    (base,) = [c for c in node.called if c.process_label == "MDBaseWorkChain"]
    (job,) = [c for c in base.called if c.process_label == "MDJobCalculation"]
    assert job.is_finished_ok and job.inputs.model.uuid == model.uuid
    a = open_store(tmp_path / "in-process").trajectory("allegro")
    b = open_store(tmp_path / "job").trajectory("allegro")
    assert b.attrs["potential_uuid"] == model.uuid and b.attrs["engine"] == "ase"
    np.testing.assert_allclose(b.positions.values, a.positions.values, atol=1e-5)


def test_model_for_other_species_is_refused(trained, tmp_path):
    store = open_store(tmp_path / "store")
    structure = alpha_agi(1, seed=None)
    structure.symbols[2] = "Cu"
    with pytest.raises(BuilderInputError, match="Cu"):
        MDWorkChain.get_builder_from_protocol("ase", structure, protocol="fast", store=store, run="cu",
                                              model=trained["result"]["model"])
    assert store.run_ids() == []
