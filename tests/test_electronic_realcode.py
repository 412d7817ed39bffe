"""The lone-pair model on real DFT Wannier labels: pw.x → wannier90.x frames, the training job, its provenance.

Real codes on the smallest cell the chain handles in seconds (4-ion α-AgI,
the ``fast`` Wannier protocol): three rattled frames in a store run are
labelled by ``agi.wannier``, the model is trained on them by the
``agi.electronic_train`` job (a few epochs), and then

* its outputs on the real frames are finite and not all zero;
* rotating a real frame and its cell (a proper rotation and a reflection)
  rotates the predicted dipoles by R and the ℓ = 3 moments by the Wigner
  matrix of :func:`agi_data.analysis.moments.wigner_l3`, to 1e-5;
* the model node's job has every WannierSet of the run's Wannier group as an
  input, each WannierSet comes from the ``agi.wannier`` WorkChain that ran
  pw.x on those frames, and the labels pass the 4-per-I / 5-per-Ag check.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from scipy.spatial.transform import Rotation

from agi_data import open_store
from agi_data.aiida.calculations.electronic import ElectronicTrainCalculation
from agi_data.aiida.setup import ensure_python_code
from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.analysis._schema import cell_per_frame
from agi_data.analysis.moments import lone_pair_moments, wigner_l3
from agi_data.electronic import ElectronicModel
from agi_data.electronic.training_data import write_training_data
from agi_data.structures import alpha_agi
from agi_data.testing import trajectory_dataset

pytestmark = pytest.mark.slow
RUN = "realcode"
TINY = {"species": "I", "cutoff": 6.0, "seed": 0, "epochs": 3, "channels": 4, "radial_hidden": 8, "n_basis": 4,
        "batch_frames": 1, "threads": 1, "validation_fraction": 0.34}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A store run of three rattled 4-ion frames, Wannierised by agi.wannier (one batch per frame)."""
    work = tmp_path_factory.mktemp("realcode")
    env = prepare_profile(work / "aiida-work")
    frames = [alpha_agi(1, seed=5, rattle=0.1), alpha_agi(1, seed=5, rattle=0.15), alpha_agi(1, seed=6, rattle=0.1)]
    store = open_store(work / "store")
    with store.create_run(RUN, frames[0].numbers, frames[0].cell.array, 0.01, attrs={"engine": "test"}) as w:
        w.append(np.stack([a.positions for a in frames]))
    builder = WannierWorkChain.get_builder_from_protocol(env["codes"], RUN, [0, 1, 2], protocol="fast", store=store,
                                                         overrides={"batch_size": 1})
    _, wnode = run_get_node(builder)
    assert wnode.is_finished_ok, (wnode.exit_status, wnode.exit_message)
    return {"store": store, "env": env, "wannier_node": wnode, "work": work}


@pytest.fixture(scope="module")
def trained(labelled):
    store = labelled["store"]
    traj, wan = store.trajectory(RUN), store.wannier(RUN)
    data = orm.SinglefileData(write_training_data([(traj, wan)], labelled["work"] / "training.npz"))
    sets = {f"batch_{k}": orm.load_node(b["node_uuid"]).outputs.result
            for k, b in enumerate(wan.attrs["provenance_batches"])}
    builder = ElectronicTrainCalculation.get_builder()
    builder.code = ensure_python_code(labelled["env"]["computer"], "electronic-train-realcode", "agi.electronic_train",
                                      "python -m agi_data.electronic.training_data", "test")
    builder.training_data = data
    builder.parameters = orm.Dict(TINY)
    builder.wannier_sets = sets
    result, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    path = labelled["work"] / "model.pt"
    with result["model"].open(mode="rb") as fh:
        path.write_bytes(fh.read())
    return {"node": node, "model": ElectronicModel.load(path), "sets": sets, "metrics": result["metrics"].get_dict()}


def test_real_labels_pass_the_centre_count_check(labelled):
    store = labelled["store"]
    wan = store.wannier(RUN)
    np.testing.assert_array_equal(wan["frame"].values, [0, 1, 2])
    mom = lone_pair_moments(store.trajectory(RUN), wan).compute()
    # 2 iodides per frame, each with its 4 centres: finite moments, |T3| of a distorted tetrahedron > 0
    assert np.isfinite(mom["octupole"].values).all() and np.isfinite(mom["dipole"].values).all()
    assert (np.linalg.norm(mom["octupole"].values, axis=-1) > 0.1).all()


def test_trained_on_real_frames_outputs_finite(labelled, trained):
    traj = labelled["store"].trajectory(RUN)
    pred = trained["model"].predict(traj).compute()
    assert pred["octupole"].shape == (3, 2, 7) and pred["dipole"].shape == (3, 2, 3)
    assert np.isfinite(pred["octupole"].values).all() and np.isfinite(pred["dipole"].values).all()
    assert np.abs(pred["octupole"].values).max() > 1e-3
    m = trained["metrics"]
    assert m["n_train_frames"] + m["n_validation_frames"] == 3 and np.isfinite(m["rotor_rmse"])


@pytest.mark.parametrize("proper", [True, False])
def test_rotating_a_real_frame_rotates_the_outputs(labelled, trained, proper):
    traj = labelled["store"].trajectory(RUN)
    pos = np.asarray(traj["positions"].values[1])
    cell = np.asarray(cell_per_frame(traj).values[1])
    sym = list(traj["symbol"].values)
    rot = Rotation.from_euler("zyx", [0.7, -0.4, 1.9]).as_matrix() * (1 if proper else -1)
    model = trained["model"]
    ref = model.predict(trajectory_dataset(pos[None], sym, cell, 0.01)).compute()
    got = model.predict(trajectory_dataset((pos @ rot.T)[None], sym, cell @ rot.T, 0.01)).compute()
    np.testing.assert_allclose(got["dipole"].values, ref["dipole"].values @ rot.T, atol=1e-5)
    np.testing.assert_allclose(got["octupole"].values, ref["octupole"].values @ wigner_l3(rot).T, atol=1e-5)


def test_model_provenance_reaches_every_wannier_set_and_pw(labelled, trained):
    store, node = labelled["store"], trained["node"]
    incoming = {link.node.uuid for link in node.base.links.get_incoming().all()}
    batches = store.wannier(RUN).attrs["provenance_batches"]
    stored_sets = {orm.load_node(b["node_uuid"]).outputs.result.uuid for b in batches}
    assert len(stored_sets) == 3 and stored_sets <= incoming
    assert trained["node"].outputs.model.uuid in {ln.node.uuid for ln in node.base.links.get_outgoing().all()}
    wnode = labelled["wannier_node"]
    for uuid in stored_sets:
        wset = orm.load_node(uuid)
        assert wset.creator.caller.uuid == wnode.uuid  # store_wannier_batch, called by agi.wannier
    jobs = [c for c in wnode.called_descendants if isinstance(c, orm.CalcJobNode)]
    assert jobs and all(j.inputs.code.uuid == labelled["env"]["codes"]["pw"].uuid for j in jobs)
    assert {"Ag", "I"} <= {k for j in jobs for k in j.inputs.pseudos}
