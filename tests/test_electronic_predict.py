"""``agi.electronic_predict`` on a real chain: pw.x → wannier90.x → agi.electronic_train → predictions in the run.

A 4-atom α-AgI run of 8 frames gets DFT Wannier centres on two frames (the real
``agi.wannier`` batch job), a tiny model is trained on them as an
``agi.electronic_train`` job, and ``agi.electronic_predict`` writes the moments of
every frame into the run. Checked: the stored predictions equal the model's own
``predict`` on the same positions, they are finite and shaped like
``lone_pair_moments``, the rotor correlation runs on them at the MD frame rate
(against a direct double loop over origins), the provenance walks run →
predictions → model → Wannier sets → pw.x / wannier90.x → pseudopotentials, and
every bad input ends with its named exit code and leaves the run as it was.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data import open_store
from agi_data.aiida.calculations.electronic import (
    ElectronicPredictCalculation,
    ElectronicTrainCalculation,
    ensure_electronic_code,
)
from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.analysis import rotor_correlation, rotor_function
from agi_data.electronic import ElectronicModel, fit_electronic_model
from agi_data.electronic.training_data import write_training_data
from agi_data.predictjob import run_prediction
from agi_data.pseudo import shipped_pseudopotentials
from agi_data.store.errors import RunNotFoundError
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow

RUN = "agi-el"
N_FRAMES = 8
PARAMS = {"species": "I", "cutoff": 6.0, "seed": 0, "epochs": 1, "channels": 4, "radial_hidden": 8, "n_basis": 4,
          "batch_frames": 2, "threads": 1}


def _frames(n: int, seed: int = 3):
    """An α-AgI cell whose atoms wander a little from frame to frame (a stand-in for MD)."""
    base = alpha_agi(1, seed=1, rattle=0.05)
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.04, size=(n, len(base), 3))
    return base, base.positions[None] + np.cumsum(steps, axis=0)


def _predict(code, model, run: dict, **parameters):
    builder = ElectronicPredictCalculation.get_builder()
    builder.code = code
    builder.model = model
    builder.run = orm.Dict(run)
    if parameters:
        builder.parameters = orm.Dict(parameters)
    return run_get_node(builder)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    work = tmp_path_factory.mktemp("electronic-predict")
    env = prepare_profile(work / "aiida-work")
    base, positions = _frames(N_FRAMES)
    store = open_store(work / "store")
    with store.create_run(RUN, base.numbers, base.cell.array, 0.01, attrs={"engine": "test"}) as w:
        w.append(positions)
    builder = WannierWorkChain.get_builder_from_protocol(None, RUN, [0, 4], protocol="fast", store=store,
                                                         overrides={"calcjob": "batched"})
    _, wannier_node = run_get_node(builder)
    assert wannier_node.is_finished_ok, wannier_node.exit_message
    wsets = dict(wannier_node.outputs.wannier_sets)
    traj, wan = store.trajectory(RUN), store.wannier(RUN)
    data = orm.SinglefileData(write_training_data([(traj, wan)], work / "training.npz")).store()
    train = ElectronicTrainCalculation.get_builder()
    train.code = ensure_electronic_code("agi.electronic_train", env["computer"])
    train.training_data = data
    train.parameters = orm.Dict(PARAMS)
    train.wannier_sets = wsets
    trained, train_node = run_get_node(train)
    assert train_node.is_finished_ok, (train_node.exit_status, train_node.exit_message)
    code = ensure_electronic_code("agi.electronic_predict", env["computer"])
    version_before = store.version(RUN)
    run = {"store_path": str(store.root), "run_id": RUN, "version": version_before}
    predicted, node = _predict(code, trained["model"], run, block_frames=3)  # 3 + 3 + 2 frames, one commit
    assert node.is_finished_ok, (node.exit_status, node.exit_message)
    model_path = work / "model.pt"
    with trained["model"].open(mode="rb") as fh:
        model_path.write_bytes(fh.read())
    return {"store": store, "work": work, "code": code, "model": trained["model"], "model_path": model_path,
            "train_node": train_node, "node": node, "predictions": predicted["predictions"], "run": run,
            "wannier_node": wannier_node, "wsets": wsets, "version_before": version_before, "computer": env["computer"]}


def test_predictions_are_stored_in_the_run(chain):
    store, node = chain["store"], chain["node"]
    out = chain["predictions"].get_dict()
    assert out["store_version"] == store.version(RUN) != chain["version_before"]
    assert out["frames"] == [0, N_FRAMES] and out["run_id"] == RUN and out["model_uuid"] == chain["model"].uuid
    ds = store.electronic(RUN)
    assert ds["octupole"].chunks is not None  # lazy
    assert dict(ds.sizes) == {"frame": N_FRAMES, "ion": 2, "m": 7, "xyz": 3}
    assert np.isfinite(ds["octupole"].values).all() and np.isfinite(ds["dipole"].values).all()
    traj = store.trajectory(RUN)
    np.testing.assert_allclose(ds["frame_time"].values, traj["time"].values)
    np.testing.assert_array_equal(ds["atom"].values, np.flatnonzero(traj["symbol"].values == "I"))
    assert ds.attrs["model_uuid"] == chain["model"].uuid and ds.attrs["provenance_uuid"] == node.uuid
    assert ds.attrs["species"] == "I" and ds.attrs["cutoff_A"] == 6.0 and ds.attrs["frame_ranges"] == [[0, N_FRAMES]]
    assert ds.attrs["units"] == {"octupole": "1", "dipole": "e·Å", "frame_time": "ps"}
    assert "Condon-Shortley" in ds.attrs["convention"] and ds.attrs["source_run_version"] == chain["version_before"]
    # the stored numbers are the model's own prediction on the same positions
    model = ElectronicModel.load(chain["model_path"])
    assert ds.attrs["model_sha256"] == model.config["sha256"] == out["model_sha256"]
    direct = model.predict(traj).compute()
    np.testing.assert_allclose(ds["octupole"].values, direct["octupole"].values, atol=1e-6)
    np.testing.assert_allclose(ds["dipole"].values, direct["dipole"].values, atol=1e-6)


def test_plain_zarr_export_carries_the_predictions(chain, tmp_path):
    import xarray as xr

    from agi_data.store.io import export_zarr

    store = chain["store"]
    out = export_zarr(store, RUN, tmp_path / "run.zarr")
    exported = xr.open_zarr(out, group="electronic")
    stored = store.electronic(RUN)
    np.testing.assert_array_equal(exported["octupole"].values, stored["octupole"].values)
    np.testing.assert_array_equal(exported["dipole"].values, stored["dipole"].values)
    assert exported.attrs["model_sha256"] == stored.attrs["model_sha256"]


def test_rotor_correlation_at_the_md_frame_rate(chain):
    store = chain["store"]
    traj, ds = store.trajectory(RUN), store.electronic(RUN)
    c = rotor_correlation(traj, ds, axis="z")
    lag = c["lag"].values
    assert lag.size == N_FRAMES and np.allclose(np.diff(lag), 0.01)  # every MD frame, no coarser grid
    m = rotor_function(traj, ds, axis="z").values  # (frame, ion)
    direct = np.array([np.mean(m[: N_FRAMES - k] * m[k:]) for k in range(N_FRAMES)])
    np.testing.assert_allclose(c.values, direct / direct[0], rtol=1e-10)


def test_provenance_walks_to_the_dft_frames(chain, tmp_path):
    from agi_data.aiida.provenance import format_provenance, run_provenance, write_run_page

    info = run_provenance(chain["store"], RUN)
    kinds = {s["kind"]: s for s in info["sources"]}
    assert {"predictions", "wannier"} <= set(kinds)
    chain_p = kinds["predictions"]["chain"]
    assert chain_p["start"]["uuid"] == chain["node"].uuid
    labels = chain_p["process_counts"]
    assert labels["ElectronicPredictCalculation"] == 1 and labels["ElectronicTrainCalculation"] == 1
    assert labels["WannierBatchCalculation"] == 1
    assert {"pw@localhost", "wannier90@localhost"} <= set(chain_p["codes"])
    shipped = {el: hashlib.md5(p.read_bytes()).hexdigest() for el, p in shipped_pseudopotentials().items()}
    assert {el: p["md5"] for el, p in chain_p["pseudopotentials"].items()} == shipped
    text = format_provenance(info)
    for needle in (f"predictions of frames [0, {N_FRAMES})", chain["node"].uuid, chain["model"].uuid,
                   chain["train_node"].uuid, *(w.uuid for w in chain["wsets"].values()), "pw.x", "wannier90.x",
                   shipped["Ag"], shipped["I"]):
        assert needle in text, needle
    # `agi provenance RUN` prints it
    from click.testing import CliRunner

    from agi_data.cli import main

    res = CliRunner().invoke(main, ["provenance", RUN, "--store", str(chain["store"].root)])
    assert res.exit_code == 0, res.output
    assert chain["model"].uuid in res.output and "ElectronicTrainCalculation" in res.output
    # the clickable page draws the same chain
    page = write_run_page(chain["store"], RUN, tmp_path / "provenance.html", info=info).read_text()
    for needle in ("ElectronicPredictCalculation", "ElectronicTrainCalculation", "WannierBatchCalculation",
                   chain["model"].uuid, *(w.uuid for w in chain["wsets"].values())):
        assert needle in page, needle


def test_bad_input_gets_its_exit_code_and_the_run_is_unchanged(chain, tmp_path):
    store, code, model, run = chain["store"], chain["code"], chain["model"], dict(chain["run"])
    codes = ElectronicPredictCalculation.exit_codes
    written = store.version(RUN)

    def refused(name, model_node, run_ref, **parameters):
        _, node = _predict(code, model_node, run_ref, **parameters)
        assert node.exit_status == getattr(codes, name).status, (name, node.exit_status, node.exit_message)
        assert store.version(RUN) == written  # nothing written
        return node.exit_message

    # a frame range outside the run
    assert "not inside run" in refused("ERROR_FRAMES_OUT_OF_RANGE", model, run, frames=[4, N_FRAMES + 5])
    # the model asked for another species or cutoff than it has: the job's own refusal, in process (the parser
    # maps each refusal to its code: test_every_refusal_has_its_exit_code)
    for asked, why in (({"species": "Ag"}, "not Ag"), ({"cutoff": 4.0}, "cutoff=6 Å, not 4 Å")):
        out = run_prediction(chain["model_path"], run, asked)
        assert out["status"] == "model-incompatible" and why in out["message"], out
    out = run_prediction(chain["model_path"], run, {"frames": [2, 4]})  # the same model on frames it predicted
    assert out["status"] == "predictions-exist" and "already holds this model's predictions" in out["message"]
    assert store.version(RUN) == written
    # a run with an element the model does not know
    base, positions = _frames(3, seed=9)
    numbers = base.numbers.copy()
    numbers[-1] = 29  # Cu
    with store.create_run("agi-cu", numbers, base.cell.array, 0.01) as w:
        w.append(positions)
    other = {"store_path": run["store_path"], "run_id": "agi-cu", "version": store.version("agi-cu")}
    assert "does not know" in refused("ERROR_MODEL_INCOMPATIBLE", model, other)
    with pytest.raises(RunNotFoundError, match="no predicted moments"):
        store.electronic("agi-cu")
    # a corrupt model file
    good = chain["model_path"].read_bytes()
    broken = orm.SinglefileData.from_string(good[: len(good) // 2].decode("latin-1"), filename="model.pt")
    assert "corrupt" in refused("ERROR_MODEL_UNREADABLE", broken, run)
    # another model: refused, then replace=True swaps it in and the old predictions stay readable by version
    traj, wan = store.trajectory(RUN), store.wannier(RUN)
    second = fit_electronic_model([(traj, wan)], **{**PARAMS, "seed": 1})
    path = second.save(tmp_path / "second.pt")
    with path.open("rb") as fh:
        model2 = orm.SinglefileData(fh, filename="model.pt").store()
    assert "another model" in refused("ERROR_PREDICTIONS_EXIST", model2, run)
    old = store.electronic(RUN).compute()
    result, node = _predict(code, model2, run, replace=True, frames=[0, 4])
    assert node.is_finished_ok, node.exit_message
    new = store.electronic(RUN)
    assert new.attrs["model_sha256"] == second.config["sha256"] and new.sizes["frame"] == 4
    back = store.electronic(RUN, version=written)
    np.testing.assert_array_equal(back["octupole"].values, old["octupole"].values)
    assert back.attrs["model_uuid"] == model.uuid
    assert result["predictions"]["replaced"] is True


def test_every_refusal_has_its_exit_code():
    from agi_data.aiida.exit_codes import EXIT_CODES
    from agi_data.aiida.parsers.electronic import _REFUSALS

    declared = ElectronicPredictCalculation.exit_codes
    for status, name in _REFUSALS.items():
        assert declared[name].status == EXIT_CODES[name].status, status
    assert set(_REFUSALS) == {"run-locked", "predictions-exist", "model-incompatible", "model-unreadable",
                              "frames-out-of-range", "not-finite", "invalid-parameters"}


def test_store_and_frame_refusals_come_before_the_model(tmp_path):
    """An unreachable store or run and a frame range outside the run are refused before the model is read."""
    base, positions = _frames(4)
    store = open_store(tmp_path / "store")
    with store.create_run("r", base.numbers, base.cell.array, 0.01) as w:
        w.append(positions)
    missing_model = tmp_path / "no-model.pt"
    run = {"store_path": str(store.root), "run_id": "r", "version": None}
    out = run_prediction(missing_model, {**run, "store_path": str(tmp_path / "elsewhere")})
    assert out["status"] == "store-unreachable" and "no agi-data store" in out["message"]
    out = run_prediction(missing_model, {**run, "run_id": "other"})
    assert out["status"] == "store-unreachable" and "no run 'other'" in out["message"]
    for frames in ([2, 9], [-1, 2], [3, 3], [0, 2.5]):
        out = run_prediction(missing_model, run, {"frames": frames})
        assert out["status"] == "frames-out-of-range", (frames, out)
    assert run_prediction(missing_model, run, {"frames": [0, 4]})["status"] == "model-unreadable"
    assert run_prediction(missing_model, run, {"frame": [0, 4]})["status"] == "invalid-parameters"
