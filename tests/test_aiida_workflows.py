"""agi.reference and agi.wannier on real pw.x / pw2wannier90.x / wannier90.x runs (4-atom α-AgI cells).

Checks: parsed energies, forces and stresses agree with ASE's own reader of the
same pw.x output; a near-metallic snapshot is left out with ERROR_METALLIC; the
Wannier workflow on a perturbed snapshot gives exactly 4 centres per I and 5 per
Ag (assigned here independently of the parser), the store holds them, a frame
whose SCF does not converge is left out with ERROR_SCF_NOT_CONVERGED while the
batch goes on, and the provenance UUID in the store leads to the WorkChain and
from there to the codes and the pseudopotentials (md5 of the shipped files).
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from ase.io import read

from agi_data import open_store
from agi_data.aiida.data import ReferenceDataset, WannierSet
from agi_data.aiida.testing import ag_pair_snapshot, prepare_profile
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.analysis.pbc import distances
from agi_data.pseudo import shipped_pseudopotentials
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return prepare_profile(tmp_path_factory.mktemp("aiida-work"))


def test_reference_energies_forces_stress_match_ase_and_metallic_is_left_out(env, tmp_path):
    good = alpha_agi(1, seed=3, rattle=0.08)
    near_metal = ag_pair_snapshot(1.6)  # Γ gap ≈ 0.24 eV with these pseudopotentials
    builder = ReferenceWorkChain.get_builder_from_protocol(
        "pw@localhost", {"good": good, "near_metal": near_metal}, protocol="fast",
        overrides={"pw": {"min_gap_eV": 0.3}})
    result, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    ds = result["dataset"]
    assert isinstance(ds, ReferenceDataset) and len(ds) == 1
    failures = ds.base.attributes.get("failures")
    assert list(failures) == ["near_metal"] and failures["near_metal"]["exit_code"] == "ERROR_METALLIC"
    assert failures["near_metal"]["exit_status"] == ReferenceWorkChain.exit_codes.ERROR_METALLIC.status
    # the results are in the Group agi/reference/pk<N> (no store run: the WorkChain's pk names it)
    group = orm.load_group(f"agi/reference/pk{node.pk}")
    assert {n.uuid for n in group.nodes} == {node.uuid, ds.uuid}

    # cross-check against ASE's parser of the very same pw.x output
    pw = next(c for c in node.called_descendants if c.process_label == "PwCalculation" and c.label == "pw good")
    text = pw.outputs.retrieved.base.repository.get_object_content("aiida.out")
    ase_atoms = read(io.StringIO(text), format="espresso-out")
    ours = ds.to_atoms()[0]
    assert ours.get_potential_energy() == pytest.approx(ase_atoms.get_potential_energy(), abs=1e-4)
    np.testing.assert_allclose(ours.get_forces(), ase_atoms.get_forces(), atol=1e-4)
    np.testing.assert_allclose(ours.get_stress(), ase_atoms.get_stress(), atol=1e-5)
    np.testing.assert_allclose(ours.positions, good.positions, atol=1e-6)
    # the dataset node is in the provenance graph, made by collect_reference from the pw.x outputs
    from aiida.cmdline.commands.cmd_verdi import verdi
    from click.testing import CliRunner

    out = tmp_path / "dataset.svg"
    res = CliRunner().invoke(verdi, ["node", "graph", "generate", "-f", "svg", "-O", str(out), str(ds.pk)])
    assert res.exit_code == 0, res.output
    assert "collect_reference" in out.read_text()
    # a non-trivial result: Ag–I cell at ~-3365 eV, finite forces on the rattled atoms
    assert -3370 < ours.get_potential_energy() < -3360
    assert np.abs(ours.get_forces()).max() > 0.05


def test_non_converged_scf_is_restarted_and_a_hopeless_one_refused_and_counted(env):
    """pw.x stopped after 6 SCF steps is restarted from its charge density (PwBaseWorkChain, mixing_beta x 0.8)
    and then gives the energy and forces of an SCF run to convergence at once; two Ag 1.2 Å apart stall (their
    SCF accuracy cannot reach conv_thr within the restarts' steps), so they are refused after the first attempt
    and left out as ERROR_SCF_NOT_CONVERGED, counted with what was tried."""
    good = alpha_agi(1, seed=3, rattle=0.08)
    capped = ReferenceWorkChain.get_builder_from_protocol(
        None, {"good": good, "hopeless": ag_pair_snapshot(1.2)}, protocol="fast",
        overrides={"pw": {"electron_maxstep": 6, "scf_restarts": 2, "stress": False}})
    result, node = run_get_node(capped)
    assert node.is_finished_ok, node.exit_message
    ds = result["dataset"]
    restarts = ds.base.attributes.get("restarts")
    assert restarts["good"]["recovered"] and 1 <= restarts["good"]["restarts"] <= 2
    betas = restarts["good"]["mixing_beta"]
    assert betas[0] == pytest.approx(0.4) and betas[1] == pytest.approx(0.32)  # aiida-quantumespresso's handler
    assert restarts["good"]["extra_wall_seconds"] > 0
    print(f"recovered: {restarts['good']}; refused: {restarts['hopeless']}")
    assert not restarts["hopeless"]["recovered"] and restarts["hopeless"]["restarts"] == 0
    assert restarts["hopeless"]["refused"] == "stalled"
    assert restarts["good"]["electron_maxstep"][:2] == [6, 9]
    assert ds.base.attributes.get("failures")["hopeless"]["exit_code"] == "ERROR_SCF_NOT_CONVERGED"
    assert len(ds) == 1
    direct, direct_node = run_get_node(ReferenceWorkChain.get_builder_from_protocol(
        None, {"good": good}, protocol="fast", overrides={"pw": {"stress": False}}))
    assert direct_node.is_finished_ok and direct["dataset"].base.attributes.get("restarts") == {}
    recovered, converged = ds.to_atoms()[0], direct["dataset"].to_atoms()[0]
    assert recovered.get_potential_energy() == pytest.approx(converged.get_potential_energy(), abs=2e-4)
    np.testing.assert_allclose(recovered.get_forces(), converged.get_forces(), atol=2e-3)


def _store_with_frames(path):
    good = alpha_agi(1, seed=1, rattle=0.12)  # a perturbed snapshot, Ag displaced from the 12d sites
    bad = ag_pair_snapshot(1.2)  # two Ag 1.2 Å apart: the SCF does not converge
    assert list(bad.numbers) == list(good.numbers)  # I, I, Ag, Ag as in the run
    store = open_store(path)
    with store.create_run("agi-test", good.numbers, good.cell.array, 0.01, attrs={"engine": "test"}) as w:
        w.append(np.stack([good.positions, bad.positions]))
    return store, good


@pytest.fixture(scope="module", params=["batched", "steps"])
def wannier_run(env, tmp_path_factory, request):
    """One agi.wannier run on a store run: frame 0 a perturbed snapshot, frame 1 an SCF that cannot converge.

    Both routes: one agi.wannier_batch CalcJob for the batch, and one node per step (aiida-quantumespresso).
    """
    path = tmp_path_factory.mktemp("wannier") / "store"
    store, good = _store_with_frames(path)
    version_before = store.version("agi-test")
    builder = WannierWorkChain.get_builder_from_protocol(
        None, "agi-test", [0, 1], protocol="fast", store=store,
        overrides={"pw": {"electron_maxstep": 25}, "calcjob": request.param})
    assert builder.run["version"] == version_before
    result, node = run_get_node(builder)
    return {"store": store, "path": path, "good": good, "version_before": version_before, "result": result,
            "node": node, "route": request.param}


def test_wannier_workflow_centres_store_failure_and_provenance(wannier_run):
    store, good, node, result = (wannier_run[k] for k in ("store", "good", "node", "result"))
    version_before = wannier_run["version_before"]
    assert node.is_finished_ok, node.exit_message

    # one batch node, with frame 0 only; frame 1 left out with the named exit code
    sets = result["wannier_sets"]
    assert list(sets) == ["batch_0"]
    wset = sets["batch_0"]
    assert isinstance(wset, WannierSet)
    np.testing.assert_array_equal(wset.frames, [0])
    failures = wset.base.attributes.get("failures")
    assert failures["1"]["exit_code"] == "ERROR_SCF_NOT_CONVERGED"

    # the store holds exactly those centres; counts per ion checked independently of the parser
    ws = store.wannier("agi-test")
    np.testing.assert_array_equal(ws["frame"].values, [0])
    centres = ws["centres"].values[0]
    np.testing.assert_allclose(centres, wset.centres[0])
    assert centres.shape == (18, 3)
    owner = distances(centres, good.positions, good.cell.array).argmin(axis=1)
    counts = np.bincount(owner, minlength=4)
    symbols = good.get_chemical_symbols()
    assert {s: sorted({int(c) for c, t in zip(counts, symbols) if t == s}) for s in set(symbols)} == {"I": [4], "Ag": [5]}
    assert distances(centres, good.positions, good.cell.array).min(axis=1).max() < 1.2
    assert np.all(ws["spread"].values > 0)
    assert ws.attrs["failed_frames"] == {"1": "ERROR_SCF_NOT_CONVERGED"}
    # the WorkChain and its batch node are in the run's Group (both routes write to the same one)
    group_nodes = {n.uuid for n in orm.load_group("agi/wannier/agi-test").nodes}
    assert {node.uuid, wset.uuid} <= group_nodes

    # store -> AiiDA: the UUID resolves to this WorkChain; AiiDA -> store: the node records the version it wrote
    assert ws.attrs["provenance_uuid"] == node.uuid
    assert orm.load_node(ws.attrs["provenance_uuid"]).pk == node.pk
    batch = ws.attrs["provenance_batches"][0]
    assert orm.load_node(batch["node_uuid"]).outputs.result.uuid == wset.uuid
    assert wset.base.attributes.get("store_version") == store.version("agi-test")
    assert wset.base.attributes.get("source_run_version") == version_before

    from agi_data.aiida.provenance import format_provenance, run_provenance

    info = run_provenance(store, "agi-test")
    chain = info["sources"][0]["chain"]
    assert chain["start"]["uuid"] == node.uuid
    assert set(chain["codes"]) == {"pw@localhost", "pw2wannier90@localhost", "wannier90@localhost"}
    assert chain["codes"]["pw@localhost"]["executable"].endswith("pw.x")
    shipped = {el: hashlib.md5(p.read_bytes()).hexdigest() for el, p in shipped_pseudopotentials().items()}
    assert {el: p["md5"] for el, p in chain["pseudopotentials"].items()} == shipped
    if wannier_run["route"] == "steps":
        assert chain["process_counts"]["PwCalculation"] == 2
        assert chain["process_counts"]["Wannier90Calculation"] == 2  # one -pp for the fixed cell, one per good frame
    else:  # one CalcJob ran all four codes for both frames and parsed each frame on its own
        assert chain["process_counts"]["WannierBatchCalculation"] == 1
        batch = next(c for c in node.called if c.process_label == "WannierBatchCalculation")
        assert batch.exit_status == batch.process_class.exit_codes.ERROR_SOME_FRAMES_FAILED.status
        frames = batch.outputs.output_parameters["frames"]
        assert frames["frame_0"]["pw"]["converged"] and frames["frame_0"]["pw"]["gap_eV"] > 0.05
        assert frames["frame_1"]["pw"]["converged"] is False
        assert frames["frame_0"]["wannier90"]["centres_per_ion"] == {"I": [4], "Ag": [5]}
    text = format_provenance(info)
    assert node.uuid in text and shipped["Ag"] in text and "pw.x" in text
    # the walk crosses into the store: the frames' run is named, and (written by the test, not a workflow) not followed
    assert chain["store_reads"] == []  # the run being described is not walked again
    from agi_data.aiida.provenance import provenance_chain

    (read,) = provenance_chain(node)["store_reads"]
    assert read["run_id"] == "agi-test" and read["version"] == version_before and read["writer"] is None
    assert "records no provenance_uuid" in read["unreached"]


def test_verdi_graph_and_agi_provenance_cli(wannier_run, tmp_path):
    from aiida.cmdline.commands.cmd_verdi import verdi
    from click.testing import CliRunner

    from agi_data.cli import main

    node, result = wannier_run["node"], wannier_run["result"]
    runner = CliRunner()
    for pk, expect in ((node.pk, "WannierWorkChain"), (result["wannier_sets"]["batch_0"].pk, "store_wannier_batch")):
        out = tmp_path / f"graph_{pk}.svg"
        res = runner.invoke(verdi, ["node", "graph", "generate", "-f", "svg", "-O", str(out), str(pk)])
        assert res.exit_code == 0, res.output
        assert "<svg" in out.read_text() and expect in out.read_text()
    res = runner.invoke(main, ["provenance", "agi-test", "--store", str(wannier_run["path"])])
    assert res.exit_code == 0, res.output
    assert node.uuid in res.output and "md5" in res.output


def test_named_failures_refused_by_the_builder_and_exit_codes_when_things_change_after_it(env):
    """A missing family, pseudopotential or executable is refused when the builder is made; if it goes
    missing between building and running (a builder kept, a daemon elsewhere), the WorkChain still ends
    with the named exit code before running any code."""
    from aiida_pseudo.data.pseudo import UpfData
    from aiida_pseudo.groups.family import PseudoPotentialFamily

    from agi_data.aiida.protocols import ProtocolError
    from agi_data.aiida.workflows.builder import BuilderInputError

    s = {"a": alpha_agi(1, seed=0)}
    family = PseudoPotentialFamily(label="only-iodine").store()
    family.add_nodes([UpfData(shipped_pseudopotentials()["I"].open("rb")).store()])
    gone = orm.InstalledCode(computer=env["computer"], filepath_executable="/nonexistent/pw.x", label="pw-gone",
                             default_calc_job_plugin="quantumespresso.pw").store()
    with pytest.raises(BuilderInputError, match="no-such-family"):
        ReferenceWorkChain.get_builder_from_protocol(None, s, pseudo_family="no-such-family")
    with pytest.raises(BuilderInputError, match=r"\['Ag'\]"):
        ReferenceWorkChain.get_builder_from_protocol(None, s, pseudo_family="only-iodine")
    with pytest.raises(BuilderInputError, match="/nonexistent/pw.x"):
        ReferenceWorkChain.get_builder_from_protocol(gone, s)
    with pytest.raises(ProtocolError, match="ecutwfcc"):  # a typo is an error, not silently ignored
        ReferenceWorkChain.get_builder_from_protocol(None, s, overrides={"pw": {"ecutwfcc": 40}})

    def changed(**ports):
        builder = ReferenceWorkChain.get_builder_from_protocol(None, s, protocol="fast")
        for port, value in ports.items():
            setattr(builder, port, value)
        return run_get_node(builder)[1]

    node = changed(pseudo_family=orm.Str("no-such-family"))
    assert node.exit_status == ReferenceWorkChain.exit_codes.ERROR_MISSING_PSEUDO_FAMILY.status
    assert "no-such-family" in node.exit_message
    node = changed(pseudo_family=orm.Str("only-iodine"))
    assert node.exit_status == ReferenceWorkChain.exit_codes.ERROR_MISSING_PSEUDO.status
    assert "['Ag']" in node.exit_message
    node = changed(pw_code=gone)
    assert node.exit_status == ReferenceWorkChain.exit_codes.ERROR_CODE_NOT_FOUND.status
    assert "/nonexistent/pw.x" in node.exit_message
    assert not node.called  # no pw.x was started
