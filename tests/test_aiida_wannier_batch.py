"""``agi.wannier_batch``: the four codes for several frames in one CalcJob, each frame parsed on its own.

Real pw.x, wannier90.x and pw2wannier90.x on 4-atom α-AgI cells: the batch's
Ω equals a plain shell run of the same inputs, a frame whose SCF cannot
converge is named and left out (refused after one attempt: its SCF stalls) while the others'
centres come out, and every per-frame failure has its own exit code. The restarts themselves are
tested in ``test_aiida_wannier_restarts.py``.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from aiida.plugins import CalculationFactory

from agi_data.aiida.parsers.wannier90 import parse_wout
from agi_data.aiida.protocols import load_protocol
from agi_data.aiida.testing import ag_pair_snapshot, prepare_profile, run_plain_chain, write_plain_inputs
from agi_data.pseudo import shipped_pseudopotentials
from agi_data.structures import alpha_agi
from agi_data.units import RYDBERG_EV

pytestmark = pytest.mark.slow
WannierBatchCalculation = CalculationFactory("agi.wannier_batch")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return prepare_profile(tmp_path_factory.mktemp("aiida-work"))


@pytest.fixture(scope="module")
def good():
    return alpha_agi(1, seed=5, rattle=0.1)


def _run(env, frames: dict, overrides: dict | None = None):
    params = load_protocol("wannier", "fast", overrides)
    structures = {k: orm.StructureData(ase=a) for k, a in frames.items()}
    pseudos = env["family"].get_pseudos(structure=next(iter(structures.values())))
    return run_get_node(WannierBatchCalculation, code=env["codes"]["pw"],
                        pw2wannier90_code=env["codes"]["pw2wannier90"], wannier90_code=env["codes"]["wannier90"],
                        structures=structures, pseudos=pseudos, parameters=orm.Dict(params),
                        metadata={"options": {"resources": {"num_machines": 1, "num_mpiprocs_per_machine": 1}}})


def test_batch_matches_plain_run_and_leaves_out_a_failed_frame(env, good, tmp_path):
    from ase.io import read
    from ase.io.espresso import units as qe_units

    # the plain shell chain on the same inputs (same writer, same command lines)
    params = load_protocol("wannier", "fast", {"pw": {"electron_maxstep": 25}})
    plain = write_plain_inputs(good, tmp_path / "plain", params, shipped_pseudopotentials())
    run_plain_chain(plain["workdir"])
    omega_plain = parse_wout((plain["workdir"] / "aiida.wout").read_text())["omega_total"]

    other = alpha_agi(1, seed=6, rattle=0.1)
    result, node = _run(env, {"frame_0": good, "frame_1": ag_pair_snapshot(1.2), "frame_10": other},
                        {"pw": {"electron_maxstep": 25}})
    assert node.exit_status == WannierBatchCalculation.exit_codes.ERROR_SOME_FRAMES_FAILED.status
    assert "1 of 3 frames failed" in node.exit_message and "ERROR_SCF_NOT_CONVERGED" in node.exit_message
    out = result["output_parameters"].get_dict()
    assert out["failures"] == {"frame_1": {
        "exit_code": "ERROR_SCF_NOT_CONVERGED", "exit_status": 310,
        "message": "pw.x SCF did not converge for frame_1."}}
    # natural order of keys: frame_10 after frame_1, seednames f0, f1, f2
    assert [out["frames"][k]["seedname"] for k in ("frame_0", "frame_1", "frame_10")] == ["f0", "f1", "f2"]
    assert sorted(result["centres"]) == ["frame_0", "frame_10"]
    # two Ag 1.2 Å apart: its SCF accuracy stalls, so it is refused after one attempt, never restarted
    assert out["frames"]["frame_1"]["scf"]["refused"] == "stalled" and out["frames"]["frame_1"]["scf"]["restarts"] == 0
    assert out["n_scf_refused"] == 1 and out["n_scf_recovered"] == 0
    f0_scf = out["frames"]["frame_0"]["scf"]
    assert f0_scf["restarts"] == 0 and f0_scf["recovered"] is False and "refused" not in f0_scf
    # the accuracy lines counted = the iterations pw.x says it needed
    assert f0_scf["scf_iterations"] == [out["frames"]["frame_0"]["pw"]["n_scf_iterations"]]

    f0 = out["frames"]["frame_0"]
    assert f0["wannier90"]["omega_total"] == pytest.approx(omega_plain, abs=1e-6)
    assert f0["wannier90"]["centres_per_ion"] == {"I": [4], "Ag": [5]}
    assert sorted(np.bincount(result["centres"]["frame_0"].get_array("owner")).tolist()) == [4, 4, 5, 5]
    # pw.x energy as parsed here = ASE's reading of the same output file, compared in Ry (the file's unit):
    # ASE's QE reader converts with the CODATA 2006 Rydberg, we with QE's own (CODATA 2018): ~4e-3 eV apart here
    text = node.outputs.retrieved.base.repository.get_object_content("f0.pw.out")
    ase_ry = read(io.StringIO(text), format="espresso-out").get_potential_energy() / qe_units.Ry
    assert f0["pw"]["total_energy_eV"] / RYDBERG_EV == pytest.approx(ase_ry, abs=1e-7)
    assert f0["pw"]["gap_eV"] > 0.05 and f0["pw"]["wall_time_seconds"] > 0
    # the second good frame is a different snapshot, so a different minimum
    assert out["frames"]["frame_10"]["wannier90"]["omega_total"] != pytest.approx(omega_plain, abs=1e-3)


@pytest.mark.parametrize("overrides, name, text", [
    ({"pw": {"min_gap_eV": 50.0}}, "ERROR_METALLIC", "turned metallic"),
    ({"expected_centres": {"Ag": 4, "I": 5}}, "ERROR_WRONG_CENTRE_COUNT", "owns 5 (expected 4)"),
    ({"wannier90": {"num_iter": 2}}, "ERROR_WANNIER_NOT_CONVERGED", "did not converge in 2 iterations"),
])
def test_every_frame_failure_has_a_named_exit_code(env, good, overrides, name, text):
    _, node = _run(env, {"frame_3": good}, overrides)
    assert node.exit_status == WannierBatchCalculation.exit_codes[name].status
    assert text in node.exit_message and "frame_3" in node.exit_message
    assert node.outputs.output_parameters["failures"]["frame_3"]["exit_code"] == name
    # a converged frame without a gap is refused as metallic (never restarted); the others' SCF was fine
    refused = node.outputs.output_parameters["frames"]["frame_3"]["scf"].get("refused")
    assert refused == ("metallic" if name == "ERROR_METALLIC" else None)


def test_bad_inputs_are_rejected_before_running(env, good):
    only_iodine = {"I": env["family"].get_pseudos(elements=["I"])["I"]}
    params = load_protocol("wannier", "fast")
    with pytest.raises(ValueError, match=r"no pseudopotential for \['Ag'\]"):
        run_get_node(WannierBatchCalculation, code=env["codes"]["pw"], pw2wannier90_code=env["codes"]["pw2wannier90"],
                     wannier90_code=env["codes"]["wannier90"], structures={"a": orm.StructureData(ase=good)},
                     pseudos=only_iodine, parameters=orm.Dict(params))
    with pytest.raises(ValueError, match="Γ only"):
        _run(env, {"a": good}, {"pw": {"kpoints": [2, 2, 2]}})


def test_the_workchain_runs_a_two_rank_batch(env, good):
    """Two MPI ranks (the demo protocol's layout): pw.x under mpirun, wannier90.x serial, in one batch job."""
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    builder = WannierWorkChain.get_builder_from_protocol(
        env["codes"], structures={"f": good}, protocol="fast",
        overrides={"calcjob": "batched", "options": {"resources": {"num_mpiprocs_per_machine": 2}}})
    result, node = run_get_node(builder)
    assert node.is_finished_ok, f"{node.exit_status} {node.exit_message}"
    (batch,) = [c for c in node.called if c.process_label == "WannierBatchCalculation"]
    assert batch.get_option("resources")["num_mpiprocs_per_machine"] == 2
    script = batch.base.repository.get_object_content("_aiidasubmit.sh")
    assert "mpirun" in script and script.count("wannier90.x") >= 1
    (wset,) = result["wannier_sets"].values()
    assert np.asarray(wset.centres).shape == (1, 18, 3)
