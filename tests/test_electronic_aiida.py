"""``agi.electronic_train``: the lone-pair model trained as an AiiDA job from a materialised data file.

Runs the real job (this Python as the code, a tiny model, a few epochs) on a
local computer and checks the outputs: a model file that loads and
predicts, held-out metrics, and the provenance links to the Wannier sets.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data.aiida.calculations.electronic import ElectronicTrainCalculation, _check_parameters
from agi_data.aiida.data import WannierSet
from agi_data.aiida.setup import ensure_computer
from agi_data.electronic import ElectronicModel, ElectronicModelError
from agi_data.electronic.training_data import read_training_data, write_training_data
from agi_data.testing.electronic import synthetic_lone_pair_run

PARAMS = {"species": "I", "cutoff": 6.0, "seed": 0, "epochs": 1, "channels": 4, "radial_hidden": 8, "n_basis": 4,
          "batch_frames": 2, "threads": 1}


def test_training_data_file_roundtrip(tmp_path):
    traj, wan = synthetic_lone_pair_run(n=2, n_frames=4, seed=5)
    wan = wan.isel(frame=[0, 2, 3])
    (back_traj, back_wan), = read_training_data(write_training_data([(traj, wan)], tmp_path / "d.npz"))
    np.testing.assert_array_equal(back_traj["positions"].values, traj["positions"].values[[0, 2, 3]])
    np.testing.assert_array_equal(back_wan["centres"].values, wan["centres"].values)
    np.testing.assert_array_equal(back_traj["species"].values, traj["species"].values)
    assert back_traj.attrs["source_frames"] == [0, 2, 3]
    (tmp_path / "bad.npz").write_bytes(b"not a file")
    with pytest.raises(ElectronicModelError, match="training-data"):
        read_training_data(tmp_path / "bad.npz")


def test_train_job_outputs_and_provenance(aiida_profile, tmp_path):
    traj, wan = synthetic_lone_pair_run(n=2, n_frames=6, seed=4)
    data = orm.SinglefileData(write_training_data([(traj, wan)], tmp_path / "training.npz")).store()
    wset = WannierSet.from_frames(wan["frame"].values, wan["centres"].values,
                                  np.zeros(wan["centres"].shape[:2]), -np.ones(wan["centres"].shape[:2])).store()
    computer = ensure_computer(workdir=tmp_path / "work")
    code = orm.InstalledCode(computer=computer, filepath_executable=sys.executable, label="electronic-train-test",
                             default_calc_job_plugin="agi.electronic_train").store()
    builder = ElectronicTrainCalculation.get_builder()
    builder.code = code
    builder.training_data = data
    builder.parameters = orm.Dict(PARAMS)
    builder.wannier_sets = {"run0": wset}
    result, node = run_get_node(builder)
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    metrics = result["metrics"].get_dict()
    assert metrics["n_train_frames"] + metrics["n_validation_frames"] == 6 and metrics["rotor_rmse"] >= 0
    path = tmp_path / "model.pt"
    with result["model"].open(mode="rb") as fh:
        path.write_bytes(fh.read())
    model = ElectronicModel.load(path)
    assert model.config["sha256"] == metrics["sha256"]
    pred = model.predict(traj).compute()
    assert np.isfinite(pred["octupole"].values).all()
    incoming = {link.node.uuid for link in node.base.links.get_incoming().all()}
    assert wset.uuid in incoming and data.uuid in incoming


def test_unknown_parameter_refused():
    assert "unknown parameters ['epoch']" in _check_parameters(orm.Dict({"epoch": 3}), None)
    assert _check_parameters(orm.Dict(PARAMS), None) is None


@pytest.mark.parametrize("name", ["ElectronicTrainCalculation", "ElectronicPredictCalculation"])
def test_electronic_jobs_take_their_exit_codes_from_the_table(name):
    from agi_data.aiida.calculations import electronic
    from agi_data.aiida.exit_codes import EXIT_CODES

    own = {n: c for n, c in getattr(electronic, name).exit_codes.items() if c.status >= 200}
    assert own
    for n, code in own.items():
        assert code.status == EXIT_CODES[n].status and code.message == EXIT_CODES[n].message, n


def test_predict_inputs_checked_before_submission():
    from agi_data.aiida.calculations.electronic import _check_predict_parameters, _check_run

    assert "needs ['store_path']" in _check_run(orm.Dict({"run_id": "r"}), None)
    assert _check_run(orm.Dict({"store_path": "/s", "run_id": "r", "version": None}), None) is None
    assert "unknown parameters ['frame']" in _check_predict_parameters(orm.Dict({"frame": [0, 2]}), None)
    assert "[start, stop)" in _check_predict_parameters(orm.Dict({"frames": [0, 2.5]}), None)
    assert _check_predict_parameters(orm.Dict({"frames": [0, 2], "replace": True}), None) is None
