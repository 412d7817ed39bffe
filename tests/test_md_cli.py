"""``agi md run``: bad input refused with a clear error before anything is written; a good run writes both segments."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from agi_data import open_store
from agi_data.cli import main


@pytest.mark.parametrize("args, names", [
    (["--temperature", "nan"], ["temperature", "--temperature"]),
    (["--temperature", "inf"], ["temperature", "--temperature"]),
    (["--temperature", "0"], ["temperature", "--temperature"]),
    (["--temperature", "-300"], ["temperature", "--temperature"]),
    (["--steps", "0"], ["--steps"]),
    (["--steps", "-10"], ["--steps"]),
    (["--steps", "ten"], ["--steps"]),
    (["--steps", "205", "--stride", "10"], ["multiple of stride", "--steps"]),
    (["--timestep", "nan"], ["timestep_fs", "--timestep"]),
    (["--timestep", "-1"], ["timestep_fs", "--timestep"]),
    (["--stride", "0"], ["--stride"]),
    (["--damping", "0"], ["damping_fs", "--damping"]),
    (["--seed", "-1"], ["--seed"]),
    (["--ensemble", "npt"], ["--ensemble"]),
    (["--supercell", "0"], ["--supercell"]),
    (["--lattice", "nan"], ["--lattice"]),
    (["--lattice", "-5"], ["--lattice"]),
    (["--ranks", "0"], ["--ranks"]),
    (["--equilibration-steps", "-10"], ["--equilibration-steps"]),
    (["--equilibration-steps", "15"], ["equilibration_steps", "--equilibration-steps"]),
    (["--equilibration-ensemble", "nve"], ["--equilibration-ensemble"]),
    (["--protocol", "nope"], ["protocol"]),
    (["--run-id", "../escape"], ["invalid run id"]),
    (["--potential", "missing.nequip.zip"], ["missing.nequip.zip"]),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, args, names):
    store = tmp_path / "store"
    argv = ["md", "run", "--no-provenance", "--store", str(store), *args]
    if "--run-id" not in args:
        argv += ["--run-id", "r"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    for name in names:
        assert name in result.output, (name, result.output)
    assert not store.exists()  # nothing written: not even the store directory


def test_bad_structure_file_is_refused(tmp_path):
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nnot a comment line\nAg 0 0\n")
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["md", "run", "--no-provenance", "--store", str(store), "--run-id", "r",
                                       "--structure", str(bad)])
    assert result.exit_code == 1 and "cannot read the structure file" in result.output
    assert not store.exists()


def test_equilibration_then_nve_from_the_cli(tmp_path):
    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["md", "run", "--no-provenance", "--store", str(store), "--run-id", "cl",
                                       "--steps", "40", "--stride", "10", "--ensemble", "nve",
                                       "--equilibration-steps", "20", "--timestep", "1"])
    assert result.exit_code == 0, result.output
    st = open_store(store)
    assert sorted(st.run_ids()) == ["cl", "cl-equilibration"]
    assert st.attrs("cl")["ensemble"] == "nve" and st.attrs("cl")["equilibration_steps"] == 20
    assert st.trajectory("cl").sizes["time"] == 5 and st.trajectory("cl-equilibration").sizes["time"] == 3
