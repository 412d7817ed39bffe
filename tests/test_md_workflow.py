"""agi.md with the classical force field (LAMMPS): provenance in the store, continuation, named exit codes."""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node

from agi_data import open_store
from agi_data.aiida.workflows.builder import BuilderInputError
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.md import AGI_SHIMOJO_KOBAYASHI
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow


def _builder(store, run_id, **kw):
    kw.setdefault("overrides", {"md": {"n_steps": 40, "stride": 10}})
    return MDWorkChain.get_builder_from_protocol(None, kw.pop("structure", None), protocol="fast", store=store,
                                                 run=run_id, **kw)


def test_classical_run_records_provenance_and_continues(tmp_path):
    store = open_store(tmp_path / "store")
    result, node = run_get_node(_builder(store, "classical"))
    assert node.is_finished_ok, node.exit_message
    ds = store.trajectory("classical").load()
    assert ds.sizes["time"] == 5 and ds.sizes["atom"] == 32
    assert ds.attrs["provenance_uuid"] == node.uuid
    calc = orm.load_node(ds.attrs["provenance_calc_uuid"])
    assert calc.inputs.potential.value == AGI_SHIMOJO_KOBAYASHI.name
    assert ds.attrs["potential_uuid"] == calc.inputs.potential.uuid
    assert ds.attrs["potential"] == AGI_SHIMOJO_KOBAYASHI.name and ds.attrs["engine"] == "lammps"
    run = result["run"]
    assert run["status"] == "ok" and run["n_frames"] == 5 and run["resumed_from"] is None
    # the run Dict pins the version holding exactly these frames
    pinned = store.trajectory("classical", version=run["version"])
    np.testing.assert_array_equal(pinned.positions.values, ds.positions.values)
    # the same run id with a longer run: continued from its last frame, through a second WorkChain
    result2, node2 = run_get_node(_builder(store, "classical", overrides={"md": {"n_steps": 80, "stride": 10}}))
    assert node2.is_finished_ok, node2.exit_message
    assert result2["run"]["resumed_from"] == 4 and result2["run"]["new_frames"] == 4
    ds2 = store.trajectory("classical").load()
    assert ds2.sizes["time"] == 9 and ds2.attrs["provenance_uuid"] == node2.uuid
    np.testing.assert_array_equal(ds2.positions.values[:5], ds.positions.values)
    # asked again for the same length: nothing to run, still a success
    result3, node3 = run_get_node(_builder(store, "classical", overrides={"md": {"n_steps": 80, "stride": 10}}))
    assert node3.is_finished_ok and result3["run"]["new_frames"] == 0 and result3["run"]["n_frames"] == 9


def test_bad_inputs_give_named_exit_codes_and_write_nothing(tmp_path, monkeypatch):
    store = open_store(tmp_path / "store")
    codes = MDWorkChain.exit_codes
    # refused when the builder is made, before anything is stored or submitted
    with pytest.raises(BuilderInputError, match="temperature"):
        _builder(store, "cold", overrides={"md": {"temperature_K": 0.0}})
    crowded = alpha_agi(1, seed=None)
    crowded.positions[1] = crowded.positions[0] + [0.2, 0.2, 0.0]
    with pytest.raises(BuilderInputError, match="structure:"):
        _builder(store, "crowded", structure=crowded)
    with pytest.raises(BuilderInputError, match="no-such-force-field"):
        _builder(store, "unknown", force_field="no-such-force-field")
    # the same checks in the WorkChain itself, for inputs that bypass the builder: named exit codes
    builder = _builder(store, "cold")
    params = builder.parameters.get_dict()
    params["md"]["temperature_K"] = 0.0
    builder.parameters = orm.Dict(params)
    _, node = run_get_node(builder)
    assert node.exit_status == codes.ERROR_INVALID_TEMPERATURE.status and "temperature" in node.exit_message
    builder = _builder(store, "crowded")
    builder.structure = orm.StructureData(ase=crowded)
    _, node = run_get_node(builder)
    assert node.exit_status == codes.ERROR_OVERLAPPING_ATOMS.status
    monkeypatch.setenv("PATH", "/nonexistent")
    _, node = run_get_node(_builder(store, "nolammps"))
    assert node.exit_status == codes.ERROR_ENGINE_NOT_FOUND.status and "lmp" in node.exit_message
    monkeypatch.undo()
    _, node = run_get_node(_builder(store, "hot", overrides={"md": {"timestep_fs": 60.0, "n_steps": 100,
                                                                      "stride": 1, "ensemble": "nve"}}))
    assert node.exit_status == codes.ERROR_MD_BLOW_UP.status and "time step" in node.exit_message
    assert store.run_ids() == ["hot"]  # only the blown-up run wrote frames, and keeps them
    kept = store.trajectory("hot")
    assert 1 <= kept.sizes["time"] < 101 and node.outputs.run["n_frames"] == kept.sizes["time"]
