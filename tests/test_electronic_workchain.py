"""``agi.electronic``: WannierSets → the training data file → ``agi.electronic_train`` → ``agi.electronic_predict``.

Labels here are the synthetic lone-pair tetrahedra of :mod:`agi_data.testing.electronic` written into a store
run the way ``agi.wannier`` writes them (the real pw.x → wannier90.x chain runs in
``tests/test_electronic_predict.py`` and in the demo's ``electronic`` stage, ``tests/test_demo_e2e.py``).
Checked: the materialised training data holds the run's positions at the version each set pinned and the
sets' own centres; the stored predictions are the trained model's on every frame; the outputs are linked
back to every WannierSet; bad inputs are refused by the builder or end with the named exit code.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data import open_store
from agi_data.aiida.data import WannierSet
from agi_data.aiida.workflows.builder import BuilderInputError
from agi_data.aiida.workflows.electronic import ElectronicWorkChain, wannier_sets_of_run
from agi_data.electronic import ElectronicModel
from agi_data.electronic.training_data import read_training_data
from agi_data.testing.electronic import synthetic_lone_pair_run

RUN = "el-wc"
N_FRAMES = 6


def _labelled_sets(store, wan, batches) -> list[WannierSet]:
    """WannierSets of ``batches`` (lists of frames), each written to the store as agi.wannier writes a batch."""
    sets = []
    for frames in batches:
        centres = wan["centres"].sel(frame=frames).values
        version = store.add_wannier(RUN, frames, centres)
        node = WannierSet.from_frames(frames, centres, np.zeros(centres.shape[:2]), -np.ones(centres.shape[:2]))
        node.base.attributes.set_many({"run_id": RUN, "store_path": str(store.root), "store_version": version})
        sets.append(node.store())
    return sets


@pytest.fixture(scope="module")
def chain(aiida_profile, tmp_path_factory):
    work = tmp_path_factory.mktemp("electronic-wc")
    traj, wan = synthetic_lone_pair_run(n=1, n_frames=N_FRAMES, seed=7)
    store = open_store(work / "store")
    with store.create_run(RUN, traj["species"].values, traj["cell"].values, 0.01, attrs={"engine": "test"}) as w:
        w.append(traj["positions"].values)
    sets = _labelled_sets(store, wan, [[0, 2], [4, 5]])
    builder = ElectronicWorkChain.get_builder_from_protocol(None, RUN, store=store, protocol="fast",
                                                            wannier_sets=sets)
    result, node = run_get_node(builder)
    return {"store": store, "traj": traj, "wan": wan, "sets": sets, "node": node, "result": result, "work": work}


def test_chain_trains_and_predicts_every_frame(chain):
    node, store = chain["node"], chain["store"]
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    path = chain["work"] / "model.pt"
    with node.outputs.model.open(mode="rb") as fh:
        path.write_bytes(fh.read())
    model = ElectronicModel.load(path)
    stored = store.electronic(RUN)
    assert stored.sizes["frame"] == N_FRAMES
    assert stored.attrs["model_uuid"] == node.outputs.model.uuid
    direct = model.predict(store.trajectory(RUN)).compute()
    np.testing.assert_allclose(stored["octupole"].values, direct["octupole"].values, atol=1e-6)
    m = node.outputs.metrics.get_dict()
    assert m["n_train_frames"] + m["n_validation_frames"] == 4  # the labelled frames, not the run's 6


def test_training_data_holds_the_sets_frames_and_centres(chain):
    node, traj, wan = chain["node"], chain["traj"], chain["wan"]
    path = chain["work"] / "training.npz"
    with node.outputs.training_data.open(mode="rb") as fh:
        path.write_bytes(fh.read())
    (t, w), = read_training_data(path)
    assert t.attrs["source_frames"] == [0, 2, 4, 5]
    np.testing.assert_array_equal(t["positions"].values, traj["positions"].values[[0, 2, 4, 5]])
    np.testing.assert_array_equal(w["centres"].values, wan["centres"].sel(frame=[0, 2, 4, 5]).values)


def test_outputs_lead_back_to_every_wannier_set(chain):
    node = chain["node"]
    train = next(c for c in node.called if c.process_type.endswith("agi.electronic_train"))
    linked = {link.node.uuid for link in train.base.links.get_incoming().all()}
    assert {s.uuid for s in chain["sets"]} <= linked
    data_creator = node.outputs.training_data.creator
    assert {s.uuid for s in chain["sets"]} <= {link.node.uuid for link in data_creator.base.links.get_incoming().all()}
    assert node.outputs.predictions["model_uuid"] == node.outputs.model.uuid


def test_builder_finds_the_runs_own_sets_and_refuses_bad_input(chain, tmp_path):
    store = chain["store"]
    found = wannier_sets_of_run(store, RUN)  # the test wrote no provenance_batches: nothing of this graph
    assert found == {}
    with pytest.raises(BuilderInputError, match="run agi.wannier on"):
        ElectronicWorkChain.get_builder_from_protocol(None, RUN, store=store, protocol="fast")
    with pytest.raises(BuilderInputError, match="no run 'nope'"):
        ElectronicWorkChain.get_builder_from_protocol(None, "nope", store=store, wannier_sets=chain["sets"])
    with pytest.raises(BuilderInputError, match="WannierSet"):
        ElectronicWorkChain.get_builder_from_protocol(None, RUN, store=store, wannier_sets=[orm.Int(1).store()])
    with pytest.raises(ValueError, match="epoch"):
        ElectronicWorkChain.get_builder_from_protocol(None, RUN, store=store, wannier_sets=chain["sets"],
                                                      overrides={"training": {"epoch": 3}})


def test_predictions_of_another_model_are_refused_by_name(chain):
    """The run holds the first model's predictions; a second chain without ``replace`` ends with the named code
    and the first predictions stay."""
    store = chain["store"]
    before = store.electronic(RUN).attrs["model_uuid"]
    builder = ElectronicWorkChain.get_builder_from_protocol(None, RUN, store=store, protocol="fast",
                                                            wannier_sets=chain["sets"],
                                                            overrides={"training": {"seed": 1}})
    _, node = run_get_node(builder)
    assert node.exit_status == ElectronicWorkChain.exit_codes.ERROR_ELECTRONIC_JOB_FAILED.status
    assert "predictions" in node.exit_message.lower()
    assert store.electronic(RUN).attrs["model_uuid"] == before
