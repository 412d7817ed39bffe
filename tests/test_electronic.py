"""The lone-pair model: basis, equivariance, locality, periodic images, storage, bad input.

Known answers: e3nn's own harmonics against the analysis basis, the Wigner
matrices of rotations and the inversion, invariance under translations,
lattice shifts and permutations, a supercell of the same frame, and two
trainings with the same seed.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from e3nn import o3
from scipy.spatial.transform import Rotation

from agi_data.analysis.moments import real_harmonics_l3, wigner_l3
from agi_data.electronic import ElectronicModel, ElectronicModelError, fit_electronic_model
from agi_data.electronic.basis import l1_basis, l3_basis
from agi_data.testing import trajectory_dataset
from agi_data.testing.electronic import synthetic_lone_pair_run

# float64: equivariance is exact; in float32 the head's normalisation of a short learned vector amplifies
# rounding (≈ 1e-4 on this barely trained model)
TINY = {"epochs": 2, "channels": 4, "radial_hidden": 8, "n_basis": 4, "batch_frames": 2, "threads": 1,
        "dtype": "float64"}


@pytest.fixture(scope="module")
def data():
    return synthetic_lone_pair_run(n=2, n_frames=6, seed=3)


@pytest.fixture(scope="module")
def model(data):
    return fit_electronic_model([data], seed=1, **TINY)


@pytest.fixture(scope="module")
def tetra_model(data):
    return fit_electronic_model([data], seed=1, head="tetrahedron", **TINY)


@pytest.fixture(params=["linear", "tetrahedron"])
def either_model(request, model, tetra_model):
    """Both read-outs: the symmetry tests hold for each."""
    return model if request.param == "linear" else tetra_model


def predict(model, traj, frames=None, **kw):
    return model.predict(traj, frames, **kw).compute()


def one_frame(traj, positions=None, cell=None, order=None):
    pos = np.asarray(traj["positions"].values[0]) if positions is None else positions
    cell = np.asarray(traj["cell"].values) if cell is None else cell
    sym = list(traj["symbol"].values)
    if order is not None:
        pos, sym = pos[order], [sym[i] for i in order]
    return trajectory_dataset(pos[None], sym, cell, 0.01)


# --------------------------------------------------------------------------------------------
# one basis on both sides
# --------------------------------------------------------------------------------------------

def test_e3nn_basis_maps_onto_the_analysis_basis():
    u = np.random.default_rng(0).normal(size=(40, 3))
    ut = torch.as_tensor(u)
    e1 = o3.spherical_harmonics(1, ut, normalize=True, normalization="integral").numpy()
    e3 = o3.spherical_harmonics(3, ut, normalize=True, normalization="integral").numpy()
    un = u / np.linalg.norm(u, axis=1, keepdims=True)
    np.testing.assert_allclose(e1 @ l1_basis(), math.sqrt(3 / (4 * math.pi)) * un, atol=1e-12)
    np.testing.assert_allclose(e3 @ l3_basis(), real_harmonics_l3(u), atol=1e-12)
    np.testing.assert_allclose(l3_basis() @ l3_basis().T, np.eye(7), atol=1e-12)
    # nequip's "component" normalisation is √(4π) larger: the addition theorem carries 1/7, not 4π/7
    c3 = o3.spherical_harmonics(3, ut, normalize=True, normalization="component").numpy()
    np.testing.assert_allclose(c3, math.sqrt(4 * math.pi) * e3, atol=1e-12)
    dots = np.einsum("ij,kj->ik", un, un)
    p3 = (5 * dots**3 - 3 * dots) / 2
    np.testing.assert_allclose(c3 @ c3.T / 7, p3, atol=1e-12)


# --------------------------------------------------------------------------------------------
# equivariance and locality
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("proper", [True, False])
def test_rotating_the_frame_rotates_the_outputs(either_model, data, proper):
    traj, _ = data
    rot = Rotation.from_euler("zyx", [0.4, -1.1, 2.3]).as_matrix() * (1 if proper else -1)
    ref = predict(either_model, one_frame(traj))
    pos = np.asarray(traj["positions"].values[0])
    cell = np.asarray(traj["cell"].values)
    got = predict(either_model, one_frame(traj, pos @ rot.T, cell @ rot.T))
    assert np.abs(ref["octupole"]).max() > 1e-2 and np.abs(ref["dipole"]).max() > 1e-3
    np.testing.assert_allclose(got["dipole"].values, ref["dipole"].values @ rot.T, atol=1e-5)
    np.testing.assert_allclose(got["octupole"].values, ref["octupole"].values @ wigner_l3(rot).T, atol=1e-5)


def test_translation_and_lattice_shift_change_nothing(either_model, data):
    traj, _ = data
    ref = predict(either_model, one_frame(traj))
    pos = np.asarray(traj["positions"].values[0])
    cell = np.asarray(traj["cell"].values)
    shifted = pos + np.array([1.3, -0.7, 2.9])
    shifted[[0, 5, 20]] += cell[0] - 2 * cell[2]  # some atoms by lattice vectors
    got = predict(either_model, one_frame(traj, shifted))
    for name in ("dipole", "octupole"):
        np.testing.assert_allclose(got[name].values, ref[name].values, atol=1e-5)


def test_permuting_atoms_permutes_the_outputs(either_model, data):
    traj, _ = data
    order = np.random.default_rng(5).permutation(traj.sizes["atom"])
    ref = predict(either_model, one_frame(traj))
    got = predict(either_model, one_frame(traj, order=order))
    by_atom = dict(zip(ref["atom"].values, ref["octupole"].values[0]))
    for ion, atom in enumerate(got["atom"].values):
        np.testing.assert_allclose(got["octupole"].values[0, ion], by_atom[order[atom]], atol=1e-5)


def test_periodic_images_beyond_half_the_cell(either_model, data):
    """6 Å > half of the 10.14 Å cell: the same frame as a 2×2×2 supercell must give the same outputs."""
    traj, _ = data
    pos = np.asarray(traj["positions"].values[0])
    cell = np.asarray(traj["cell"].values)
    assert either_model.cutoff > np.linalg.norm(cell, axis=1).min() / 2
    shifts = np.array([[i, j, k] for i in range(2) for j in range(2) for k in range(2)]) @ cell
    big = np.concatenate([pos + s for s in shifts])
    sym = list(traj["symbol"].values) * 8
    ref = predict(either_model, one_frame(traj))
    got = predict(either_model, trajectory_dataset(big[None], sym, 2 * cell, 0.01))
    n_i = ref.sizes["ion"]
    for name in ("dipole", "octupole"):
        np.testing.assert_allclose(got[name].values[0, :n_i], ref[name].values[0], atol=1e-5)
        np.testing.assert_allclose(got[name].values[0, -n_i:], ref[name].values[0], atol=1e-5)


# --------------------------------------------------------------------------------------------
# training, prediction, storage
# --------------------------------------------------------------------------------------------

def test_deterministic_for_a_seed(model, data):
    again = fit_electronic_model([data], seed=1, **TINY)
    for (k, a), b in zip(model.network.state_dict().items(), again.network.state_dict().values()):
        assert torch.equal(a, b), k
    assert model.metrics["rotor_rmse"] == again.metrics["rotor_rmse"]


def test_prediction_schema_and_blocks(model, data):
    traj, wan = data
    lazy = model.predict(traj, block_frames=4)
    assert lazy["octupole"].chunks is not None and lazy["octupole"].chunksizes["frame"] == (4, 2)
    ds = lazy.compute()
    assert ds["octupole"].dims == ("frame", "ion", "m") and ds["dipole"].dims == ("frame", "ion", "xyz")
    assert ds["dipole"].attrs["units"] == "e·Å" and "real orthonormal" in ds.attrs["convention"]
    np.testing.assert_array_equal(ds["atom"].values, np.flatnonzero(traj["symbol"].values == "I"))
    np.testing.assert_allclose(ds["frame_time"].values, traj["time"].values)
    whole = predict(model, traj, block_frames=64)
    xr.testing.assert_allclose(ds, whole, atol=1e-6)
    sub = predict(model, traj, [1, 4])
    np.testing.assert_allclose(sub["octupole"].values, whole["octupole"].values[[1, 4]], atol=1e-6)


def test_a_block_reads_only_its_frames_and_never_pickles_the_network(model, data, monkeypatch):
    """Memory is bounded by a block: each block's task gets its own frames' positions (a lazy run is read
    chunk by chunk, never whole), and building the graph never serialises the network."""
    import dask.array as da

    traj, _ = data
    read = []

    def record(block, block_info=None):
        read.append(block_info[0]["array-location"][0])
        return block

    positions = da.from_array(traj["positions"].values, chunks=(1, -1, -1))
    lazy = traj.assign(positions=(traj["positions"].dims, positions.map_blocks(record, dtype=positions.dtype)))

    def refuse(*_args, **_kwargs):
        raise AssertionError("the network was pickled to name a task")

    monkeypatch.setattr(type(model.network), "__reduce_ex__", refuse)
    out = model.predict(lazy, frames=[1, 4], block_frames=1).compute(scheduler="synchronous")
    assert sorted(read) == [(1, 2), (4, 5)]  # the two frames asked for, each read once
    np.testing.assert_allclose(out["octupole"].values, predict(model, traj, [1, 4])["octupole"].values, atol=1e-9)


def test_save_load_roundtrip(model, data, tmp_path):
    traj, _ = data
    path = model.save(tmp_path / "m.pt")
    back = ElectronicModel.load(path)
    assert back.metrics["rotor_rmse"] == model.metrics["rotor_rmse"] and back.cutoff == model.cutoff
    xr.testing.assert_allclose(predict(back, traj), predict(model, traj), atol=1e-7)


def test_corrupt_or_foreign_model_file(model, tmp_path):
    path = model.save(tmp_path / "m.pt")
    raw = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ElectronicModelError, match="corrupt"):
        ElectronicModel.load(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ElectronicModelError, match="not an electronic model"):
        ElectronicModel.load(tmp_path / "other.pt")
    with pytest.raises(ElectronicModelError, match="no model file"):
        ElectronicModel.load(tmp_path / "missing.pt")


def test_bad_input(model, data):
    traj, wan = data
    with pytest.raises(ElectronicModelError, match="does not know"):
        model.predict(one_frame(traj).assign_coords(species=("atom", np.where(
            traj["species"].values == 47, 29, 53))))
    with pytest.raises(ElectronicModelError, match="cutoff=6 Å, not 5"):
        model.predict(traj, cutoff=5.0)
    with pytest.raises(ElectronicModelError, match="predicts I moments, not Ag"):
        model.predict(traj, species="Ag")
    with pytest.raises(ElectronicModelError, match="unknown training option"):
        fit_electronic_model([data], epoch=3)


def test_bad_wannier_frames_left_out_and_counted(data):
    traj, wan = data
    cen = wan["centres"].values.copy()
    cen[2, 0] = cen[2, 4]  # frame 2: one iodide owns 3 centres, another 5
    m = fit_electronic_model([(traj, wan.copy(data={"centres": cen}))], seed=0, **dict(TINY, epochs=1))
    assert m.metrics["n_bad_frames"] == 1
    assert m.metrics["n_train_frames"] + m.metrics["n_validation_frames"] == 5


# --------------------------------------------------------------------------------------------
# the synthetic rule and the tetrahedron head
# --------------------------------------------------------------------------------------------

def test_synthetic_rule_is_covariant_regular_and_its_dipole_known():
    from ase import Atoms

    from agi_data.structures import alpha_agi
    from agi_data.testing.electronic import DIPOLE_COUPLING, lone_pair_centres, rule_vectors
    from agi_data.testing.paddlewheel import LONE_PAIR_DISTANCE

    atoms = alpha_agi(2, seed=4, rattle=0.15)
    d = lone_pair_centres(atoms)
    u = d / np.linalg.norm(d, axis=-1, keepdims=True)
    dots = np.einsum("nka,nla->nkl", u, u)[:, ~np.eye(4, dtype=bool)]
    np.testing.assert_allclose(dots, -1 / 3, atol=1e-12)  # regular tetrahedra
    a, _ = rule_vectors(atoms)
    np.testing.assert_allclose(-2 * d.sum(1), -(8 / 3) * LONE_PAIR_DISTANCE * DIPOLE_COUPLING * a, atol=1e-12)
    for q in (Rotation.from_euler("zyx", [0.3, 1.2, -0.8]).as_matrix(), -np.eye(3)):
        moved = Atoms(atoms.numbers, positions=atoms.positions @ q.T, cell=atoms.cell.array @ q.T, pbc=True)
        got, want = lone_pair_centres(moved), d @ q.T  # the same set of centres (the inversion relabels them)
        gap = np.linalg.norm(got[:, :, None] - want[:, None], axis=-1).min(axis=2)
        np.testing.assert_allclose(gap, 0, atol=1e-12)


def test_tetrahedron_head_reproduces_the_rule():
    """The head, given the rule's own vectors, gives the rule's ℓ = 3 moment (e3nn basis): one geometry on both sides."""
    from agi_data.electronic.network import TetrahedronHead
    from agi_data.structures import alpha_agi
    from agi_data.testing.electronic import rule_vectors, tetrahedron_from_frame

    a, b = rule_vectors(alpha_agi(2, seed=5, rattle=0.15))
    want = real_harmonics_l3(tetrahedron_from_frame(a, b).reshape(-1, 3)).reshape(len(a), 4, 7).sum(1)
    to_l1 = np.linalg.inv(l1_basis())
    head = TetrahedronHead(l1_basis()).double()
    got = head(torch.as_tensor(a @ to_l1), torch.as_tensor(b @ to_l1)[:, None])[:, 0].numpy() @ l3_basis()
    np.testing.assert_allclose(got, want, atol=1e-10)
