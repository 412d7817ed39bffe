"""Every analysis on a ``dask.distributed`` cluster of worker processes equals the threaded scheduler.

One small α-AgI run (16 I + 16 Ag, 200 frames: positions, velocities,
forces; Ag⁺ hops between tetrahedral sites; lone pairs of some iodides
turning; Wannier centres every 2nd frame) is written to an S3 store (moto on
loopback, started by the tests) and to a local store. Each analysis reads it
lazily from the store and runs once with the threaded scheduler and once on a
``LocalCluster(processes=True, n_workers=2, threads_per_worker=1)``; the
workers open the store themselves.

Tolerance: every number equal to 1e-12 of the largest magnitude of its
result (``rtol=1e-12``, ``atol=1e-12·max|x|``): both schedulers run the same
tasks on the same chunks, so only the order of a floating-point sum may differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import agi_data.analysis as an
from agi_data.analysis.pbc import distances
from agi_data.structures import tetrahedral_sites
from agi_data.testing.paddlewheel import TETRAHEDRON, agi_lattice_with_centres, rotation_about

pytest_plugins = ["s3server"]

N_CELL, T, DT = 2, 200, 0.005  # 16 I + 16 Ag; 1 ps
RUN = "dist"
TEMPERATURE_K = 750.0
RTOL = 1e-12
FIT_PS = (0.1, 0.5)  # the fit window of the diffusion coefficients (a random walk of 1 ps has no clear one)


def _ag_schedule() -> np.ndarray:
    """Sites of the 16 Ag per frame: Ag 0 hops to a face-sharing site and back, Ag 5 hops once."""
    sites = tetrahedral_sites(N_CELL)
    home = np.arange(0, len(sites), 6)[: 2 * N_CELL**3]
    d = distances(sites, sites, _cell())
    out = np.broadcast_to(home, (T, home.size)).copy()
    for ag, (start, stop) in ((0, (60, 150)), (5, (100, T))):
        nearest = np.argsort(d[home[ag]])[1]  # a face-sharing neighbour site
        out[start:stop, ag] = nearest
    return out


def _cell() -> np.ndarray:
    from agi_data.structures import iodide_bcc

    return iodide_bcc(N_CELL).cell.array


def _trajectory(rng):
    n_i = 2 * N_CELL**3  # 16 iodides
    t = np.arange(T) * DT
    rot = np.broadcast_to(np.eye(3), (T, n_i, 3, 3)).copy()
    rot[:, ::3] = rotation_about([1.0, 2.0, 0.5], 10.0 * t)[:, None]  # every third iodide turns, 10 rad/ps
    traj, wan = agi_lattice_with_centres(n=N_CELL, n_frames=T, dt_ps=DT, ag_sites=_ag_schedule(),
                                         orientations=rot, noise=0.05, seed=3, wannier_every=2)
    # a slow random walk of every nucleus and its centres (0.03 Å steps, 0.4 Å over the run): MSDs that grow
    walk = np.cumsum(rng.normal(scale=0.03, size=traj["positions"].shape), axis=0)
    traj["positions"] = traj["positions"] + walk
    frames = wan["frame"].values
    centres = wan["centres"].values + np.concatenate(
        [np.repeat(walk[frames, :n_i], 4, axis=1), np.repeat(walk[frames, n_i:], 5, axis=1)], axis=1)
    # one lone pair of every iodide 0.1 Å longer: a dipole that turns with its tetrahedron
    centres[:, 0:4 * n_i:4] += 0.1 * np.einsum("tiab,b->tia", rot, TETRAHEDRON[0])[wan["frame"].values]
    shape = traj["positions"].shape
    return traj, wan.copy(data={"centres": centres}), rng.normal(scale=2.0, size=shape), \
        rng.normal(scale=0.5, size=shape)


def _write(store, traj, wan, velocities, forces) -> None:
    with store.create_run(RUN, traj["symbol"].values.tolist(), traj["cell"].values, DT, chunk_frames=100,
                          chunk_atoms=8, attrs={"temperature_K": TEMPERATURE_K}) as w:
        for i in range(0, T, 100):
            w.append(traj["positions"].values[i:i + 100], velocities=velocities[i:i + 100],
                     forces=forces[i:i + 100])
    store.add_wannier(RUN, wan["frame"].values, wan["centres"].values)


@pytest.fixture(scope="module")
def s3_module_env(s3_server):
    """The standard AWS variables pointing at the session's moto server, for this module (workers inherit them)."""
    from s3server import ACCESS_KEY, REGION, SECRET_KEY

    with pytest.MonkeyPatch.context() as mp:
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            mp.delenv(var, raising=False)
        for var, value in (("AWS_ACCESS_KEY_ID", ACCESS_KEY), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
                           ("AWS_DEFAULT_REGION", REGION), ("AWS_ENDPOINT_URL_S3", s3_server.endpoint),
                           ("AWS_CONFIG_FILE", "/nonexistent/agi-test-aws-config"),
                           ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/agi-test-aws-credentials")):
            mp.setenv(var, value)
        yield s3_server


@pytest.fixture(scope="module")
def stores(s3_module_env, tmp_path_factory):
    """The same run in an S3 store and in a local store: ``{"s3": url, "local": path}``."""
    from agi_data.store import open_store

    rng = np.random.default_rng(2026)
    data = _trajectory(rng)
    where = {"s3": f"s3://{s3_module_env.make_bucket()}/store", "local": tmp_path_factory.mktemp("dist") / "store"}
    for loc in where.values():
        _write(open_store(loc), *data)
    return where


@pytest.fixture(scope="module")
def client(s3_module_env):
    """Two worker processes, one thread each, for the whole module (started after the AWS variables are set)."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def _opened(where):
    from agi_data.store import open_store

    store = open_store(where, create=False)
    return store.trajectory(RUN), store.wannier(RUN)


# ------------------------------------------------------------------ the analyses (each reads the stored arrays)

def _hop_kw():
    return {"min_dwell_ps": 0.05}


ANALYSES = {
    "unwrap": lambda tr, w: an.unwrap(tr)["positions"],
    "msd": lambda tr, w: an.msd(tr, "Ag"),
    "msd_per_atom": lambda tr, w: an.msd(tr, "I", per_atom=True, max_lag_ps=0.3),
    "diffusion_coefficient": lambda tr, w: an.diffusion_coefficient(an.msd(tr, "Ag"), fit_range=FIT_PS),
    "vacf": lambda tr, w: an.vacf(tr, "I", max_lag_ps=0.5),
    "vdos": lambda tr, w: an.vdos(an.vacf(tr, "I", max_lag_ps=0.5)),
    "green_kubo": lambda tr, w: an.green_kubo(an.vacf(tr, "Ag", max_lag_ps=0.5)),
    "correlate": lambda tr, w: an.correlate(tr["forces"], tr["velocities"], n_lags=20),
    "rdf": lambda tr, w: an.rdf(tr, "Ag", "I", r_max=5.0, dr=0.1),
    "van_hove_self": lambda tr, w: an.van_hove_self(tr, "Ag", [0.05, 0.5], r_max=4.0, dr=0.1),
    "van_hove_distinct": lambda tr, w: an.van_hove_distinct(tr, "Ag", "I", [0.05, 0.5], r_max=5.0, dr=0.1),
    "cage_correlation": lambda tr, w: an.cage_correlation(tr, "Ag", n_neighbors=4, neighbor_species="I"),
    "hops": lambda tr, w: an.hops(tr, **_hop_kw()),
    "hop_rate": lambda tr, w: an.hop_rate(tr, "Ag", **_hop_kw()),
    "residence_times": lambda tr, w: an.residence_times(tr, "Ag", **_hop_kw()),
    "residence_time_distribution": lambda tr, w: an.residence_time_distribution(tr, "Ag", bins=5, **_hop_kw()),
    "jump_diffusion": lambda tr, w: an.jump_diffusion(tr, species="Ag", **_hop_kw()),
    "hop_conditioned_average": lambda tr, w: an.hop_conditioned_average(
        tr, w, "angular_velocity", window_ps=0.1, far_cutoff=4.0, **_hop_kw()),
    "gle_correlations": lambda tr, w: an.gle_correlations(tr, "Ag", max_lag_ps=0.2),
    "memory_kernel": lambda tr, w: an.memory_kernel(tr, "Ag", max_lag_ps=0.1, on_unstable="truncate"),
    "assign_wannier": lambda tr, w: an.assign_wannier(tr, w),
    "rotor_function": lambda tr, w: an.rotor_function(tr, w),
    "rotor_correlation": lambda tr, w: an.rotor_correlation(tr, w, max_lag_ps=0.3),
    "iodide_dipoles": lambda tr, w: an.iodide_dipoles(tr, w),
    "dipole_correlation": lambda tr, w: an.dipole_correlation(tr, w, max_lag_ps=0.3),
    "lone_pair_angular_velocity": lambda tr, w: an.lone_pair_angular_velocity(tr, w),
    "lone_pair_rdf": lambda tr, w: an.lone_pair_rdf(tr, w, r_max=5.0, dr=0.1),
    "lone_pair_angle_distribution": lambda tr, w: an.lone_pair_angle_distribution(tr, w),
    "lone_pair_moments": lambda tr, w: an.lone_pair_moments(tr, w),
    "rotor_function_from_moments": lambda tr, w: an.rotor_function_from_moments(an.lone_pair_moments(tr, w)),
    "paddlewheel_mask": lambda tr, w: an.paddlewheel_mask(tr, w, thresholds=(3.0, 3.0)),
    "conductivity": lambda tr, w: an.conductivity(tr, fit_range=FIT_PS),
    "haven_ratio": lambda tr, w: an.haven_ratio(tr, fit_range=FIT_PS),
}


def _numbers(result) -> dict[str, np.ndarray]:
    """Every number of a result (DataArray, Dataset or table), by name, computed."""
    if isinstance(result, pd.DataFrame):
        return {c: result[c].to_numpy(dtype=float) for c in result.select_dtypes("number").columns}
    if isinstance(result, xr.DataArray):
        result = result.to_dataset(name=result.name or "value")
    result = result.compute()
    return {str(k): np.asarray(v.values, dtype=float) for k, v in result.variables.items()
            if v.dtype.kind in "biuf"}


def _assert_same(dist: dict, threaded: dict, name: str) -> None:
    assert dist.keys() == threaded.keys(), name
    for key, ref in threaded.items():
        scale = float(np.nanmax(np.abs(ref))) if ref.size and np.isfinite(ref).any() else 0.0
        np.testing.assert_allclose(dist[key], ref, rtol=RTOL, atol=RTOL * scale, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("name", list(ANALYSES))
def test_analysis_on_worker_processes_equals_threaded(name, stores, client):
    """Each analysis, from the S3 store: 2 worker processes give the threaded numbers, and the workers ran tasks."""
    import dask
    from distributed import get_task_stream

    func = ANALYSES[name]
    traj, wan = _opened(stores["s3"])
    with dask.config.set(scheduler="threads"):
        threaded = _numbers(func(traj, wan))
    traj, wan = _opened(stores["s3"])
    with client.as_current(), dask.config.set(scheduler="dask.distributed"), \
            get_task_stream(client) as stream:
        dist = _numbers(func(traj, wan))
    _assert_same(dist, threaded, name)
    assert stream.data, f"{name}: no task ran on the workers"
    assert any(np.isfinite(v).any() and np.abs(v[np.isfinite(v)]).max() > 0 for v in threaded.values()), \
        f"{name}: the result is all zero or NaN: the comparison would prove nothing"
