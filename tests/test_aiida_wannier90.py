"""The ``agi.wannier90`` CalcJob and parser on real wannier90.x output (4-atom α-AgI, Γ point).

A plain shell run of pw.x → wannier90.x -pp → pw2wannier90.x → wannier90.x provides the
overlaps and a reference .wout; the CalcJob is then run through AiiDA on the same overlaps.
Each failure mode is produced by the real code and must map to its named exit code.
"""

from __future__ import annotations

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from agi_data.aiida.parsers.wannier90 import (
    WannierParseError,
    assign_owners,
    count_problems,
    parse_centres_xyz,
    parse_wout,
)
from agi_data.aiida.protocols import load_protocol
from agi_data.aiida.testing import prepare_profile, run_plain_chain, write_plain_inputs
from agi_data.pseudo import shipped_pseudopotentials
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow
Wannier90Calculation = CalculationFactory("agi.wannier90")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    atoms = alpha_agi(1, seed=5, rattle=0.1)
    info = write_plain_inputs(atoms, tmp_path_factory.mktemp("plain"), load_protocol("wannier", "fast"),
                              shipped_pseudopotentials())
    run_plain_chain(info["workdir"])
    return atoms, info["workdir"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return prepare_profile(tmp_path_factory.mktemp("aiida-work"))


def test_parse_real_wannier90_output(plain):
    atoms, work = plain
    parsed = parse_wout((work / "aiida.wout").read_text())
    assert parsed["wannier90_version"] == "3.1.0"
    assert parsed["converged"] and parsed["n_iterations"] > 1
    assert len(parsed["spreads"]) == 18
    # Ω = Ω_I + Ω_D + Ω_OD, and Ω is the sum of the individual spreads
    assert parsed["omega_total"] == pytest.approx(parsed["omega_i"] + parsed["omega_d"] + parsed["omega_od"], abs=1e-6)
    assert parsed["omega_total"] == pytest.approx(sum(parsed["spreads"]), abs=1e-5)
    centres, symbols, positions = parse_centres_xyz((work / "aiida_centres.xyz").read_text())
    assert centres.shape == (18, 3) and symbols == atoms.get_chemical_symbols()
    np.testing.assert_allclose(positions, atoms.positions, atol=1e-6)
    owner = assign_owners(centres, atoms.positions, atoms.cell.array, 1.2)
    assert np.bincount(owner, minlength=4).tolist() == [4, 4, 5, 5]  # I, I, Ag, Ag
    assert count_problems(owner, symbols, {"Ag": 5, "I": 4}) == []
    problems = count_problems(owner, symbols, {"Ag": 4, "I": 5})
    assert len(problems) == 4 and "Ag2 owns 5 (expected 4)" in problems
    # an output cut off before the final state is unparsable, not silently empty
    text = (work / "aiida.wout").read_text()
    with pytest.raises(WannierParseError, match="incomplete"):
        parse_wout(text[: text.index("Final State")])
    with pytest.raises(WannierParseError, match="malformed|announces"):
        parse_centres_xyz("22\ncomment\nX 0 0\n")


def _run(env, atoms, parameters, settings=None, parent=None):
    inputs = {"code": env["codes"]["wannier90"], "structure": orm.StructureData(ase=atoms),
              "parameters": orm.Dict(parameters),
              "metadata": {"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}}}
    if settings is not None:
        inputs["settings"] = orm.Dict(settings)
    if parent is not None:
        inputs["parent_folder"] = orm.RemoteData(computer=env["computer"], remote_path=str(parent))
    return run_get_node(Wannier90Calculation, **inputs)


_BASE = {"num_wann": 18, "num_bands": 18, "exclude_bands": "19-22", "gamma_only": True, "write_xyz": True,
         "translate_home_cell": True, "use_bloch_phases": True, "num_iter": 400, "conv_tol": 1e-8, "conv_window": 3}


def test_calcjob_postproc_and_minimisation_match_plain_run(env, plain):
    atoms, work = plain
    result, node = _run(env, atoms, _BASE, {"postproc_setup": True})
    assert node.is_finished_ok, node.exit_message
    nnkp = result["nnkp_file"].get_content()
    assert "begin exclude_bands" in nnkp and "19" in nnkp
    # the -pp file the CalcJob wrote equals the plain run's, up to the timestamp line
    strip = lambda t: [ln for ln in t.splitlines() if "written on" not in ln]
    assert strip(nnkp) == strip((work / "aiida.nnkp").read_text())

    result, node = _run(env, atoms, _BASE, {"expected_centres": {"Ag": 5, "I": 4}}, parent=work)
    assert node.is_finished_ok, node.exit_message
    params = result["output_parameters"].get_dict()
    reference = parse_wout((work / "aiida.wout").read_text())
    assert params["omega_total"] == pytest.approx(reference["omega_total"], abs=1e-6)
    assert params["centres_per_ion"] == {"Ag": [5], "I": [4]}
    arrays = result["centres"]
    assert arrays.get_array("centres").shape == (18, 3)
    assert sorted(np.bincount(arrays.get_array("owner")).tolist()) == [4, 4, 5, 5]
    np.testing.assert_allclose(arrays.get_array("spreads").sum(), params["omega_total"], atol=1e-5)


def test_calcjob_failures_have_named_exit_codes(env, plain):
    atoms, work = plain
    # not converged: 2 iterations cannot satisfy conv_tol over conv_window
    _, node = _run(env, atoms, {**_BASE, "num_iter": 2}, {}, parent=work)
    assert node.exit_status == Wannier90Calculation.exit_codes.ERROR_WANNIER_NOT_CONVERGED.status
    assert "did not converge in 2 iterations" in node.exit_message
    # wrong number of centres per ion
    _, node = _run(env, atoms, _BASE, {"expected_centres": {"Ag": 4, "I": 5}}, parent=work)
    assert node.exit_status == Wannier90Calculation.exit_codes.ERROR_WRONG_CENTRE_COUNT.status
    assert "owns 5 (expected 4)" in node.exit_message
    # wannier90.x itself stops (more Wannier functions than bands): the message of aiida.werr is passed on
    _, node = _run(env, atoms, {**_BASE, "num_wann": 30}, {}, parent=work)
    assert node.exit_status == Wannier90Calculation.exit_codes.ERROR_WANNIER90_FAILED.status
    assert "num_wann" in node.exit_message.lower() or "bands" in node.exit_message.lower()


def test_blocked_and_missing_inputs_are_rejected(env, plain):
    atoms, _ = plain
    with pytest.raises(ValueError, match="mp_grid"):
        _run(env, atoms, {**_BASE, "mp_grid": [1, 1, 1]})
    with pytest.raises(ValueError, match="parent_folder"):
        _run(env, atoms, _BASE)  # neither a parent folder nor the -pp mode
