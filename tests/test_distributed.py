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

N_CELL, T, DT = 2, 201, 0.005  # 16 I + 16 Ag; 1 ps
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


@pytest.fixture(scope="module")
def s3_run(stores):
    """The run and its Wannier centres, opened lazily from the S3 store (opening reads no array)."""
    return _opened(stores["s3"])


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
def test_analysis_on_worker_processes_equals_threaded(name, s3_run, client):
    """Each analysis, from the S3 store: 2 worker processes give the threaded numbers, and the workers ran tasks."""
    import dask
    from distributed import get_task_stream

    func = ANALYSES[name]
    traj, wan = s3_run
    with dask.config.set(scheduler="threads"):
        threaded = _numbers(func(traj, wan))
    with client.as_current(), dask.config.set(scheduler="dask.distributed"), \
            get_task_stream(client) as stream:
        dist = _numbers(func(traj, wan))
    _assert_same(dist, threaded, name)
    assert stream.data, f"{name}: no task ran on the workers"
    assert any(np.isfinite(v).any() and np.abs(v[np.isfinite(v)]).max() > 0 for v in threaded.values()), \
        f"{name}: the result is all zero or NaN: the comparison would prove nothing"


def test_stored_msd_and_vacf_are_shared_by_the_workers(s3_run, client):
    """The stored-array kernels split their atoms over the workers (whole atom chunks each): both work."""
    import dask
    from distributed import get_task_stream

    traj, _ = s3_run
    for func in (lambda: an.msd(traj, "I", per_atom=True, max_lag_ps=0.3), lambda: an.vacf(traj, "Ag")):
        with dask.config.set(scheduler="threads"):
            threaded = func().compute()
        with client.as_current(), dask.config.set(scheduler="dask.distributed"), \
                get_task_stream(client) as stream:
            result = func()
            dist = result.compute()
        assert result.data.npartitions >= 1 and len(result.data.dask) > 2  # more than one read task
        np.testing.assert_allclose(dist.values, threaded.values, rtol=RTOL, atol=RTOL * float(abs(threaded).max()))
        names = [(t["key"][0] if isinstance(t["key"], tuple) else t["key"], t["worker"]) for t in stream.data]
        kernels = {worker for name, worker in names if str(name).startswith("compute")}
        assert len(kernels) == 2, f"the kernels ran on {kernels}, not on both workers"


# ------------------------------------------------------------------ progress under a distributed client

def test_progress_under_a_distributed_client_comes_from_the_scheduler(stores, client, capsys):
    """progress=True on a distributed Client: distributed's bar (dask's local bar sees no task there)."""
    import dask

    traj, wan = _opened(stores["s3"])
    with client.as_current(), dask.config.set(scheduler="dask.distributed"):
        c = an.rotor_correlation(traj, wan, max_lag_ps=0.3, progress=True)
    out = capsys.readouterr().out
    assert f"on {client.scheduler.address} (2 workers)" in out, out
    n_tasks = int(out.split("computing ")[1].split(" tasks")[0])
    assert n_tasks > 1
    assert "100% Completed" in out
    with dask.config.set(scheduler="threads"):
        ref = an.rotor_correlation(*_opened(stores["s3"]), max_lag_ps=0.3)
    np.testing.assert_allclose(c.values, ref.values, rtol=RTOL, atol=RTOL)


# ------------------------------------------------------------------ agi analyse --scheduler

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def dask_scheduler_address(s3_module_env):
    """A real ``dask scheduler`` and one ``dask worker`` (processes, loopback); yields the scheduler address."""
    import shutil
    import subprocess
    import sys
    import time

    dask_cli = shutil.which("dask") or str(__import__("pathlib").Path(sys.executable).parent / "dask")
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen([dask_cli, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                               "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([dask_cli, "worker", address, "--nthreads", "1", "--no-dashboard",
                                       "--name", "agi-test-worker"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        deadline = time.monotonic() + 120
        while True:
            try:
                with Client(address, timeout=5, set_as_default=False) as c:
                    c.wait_for_workers(1, timeout=60)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)


def _report_numbers(directory) -> dict[str, float]:
    import json

    return {n["name"]: n["value"] for n in json.loads((directory / "numbers.json").read_text())}


def test_agi_analyse_on_a_scheduler_address(stores, dask_scheduler_address, tmp_path, monkeypatch):
    """``agi analyse --scheduler tcp://…`` computes on the external worker and writes the threaded numbers."""
    from click.testing import CliRunner
    from distributed import Client

    from agi_data.cli import main

    monkeypatch.delenv("AGI_DASK_SCHEDULER", raising=False)
    store = str(stores["local"])  # the worker runs on this machine: it reads the same directory
    runner = CliRunner()
    threaded = runner.invoke(main, ["analyse", RUN, "--store", store, "-o", str(tmp_path / "threads"),
                                    "--no-provenance"], catch_exceptions=False)
    assert threaded.exit_code == 0, threaded.output
    monkeypatch.setenv("AGI_DASK_SCHEDULER", dask_scheduler_address)  # the environment variable, as a user sets it
    dist = runner.invoke(main, ["analyse", RUN, "--store", store, "-o", str(tmp_path / "dist"), "--no-provenance"],
                         catch_exceptions=False)
    assert dist.exit_code == 0, dist.output
    assert f"dask scheduler: {dask_scheduler_address} (1 workers)" in dist.output
    with Client(dask_scheduler_address, set_as_default=False) as c:
        executed = c.run(lambda dask_worker: dask_worker.state.executed_count)
    assert sum(executed.values()) > 0, "the external worker ran no task"
    ref, got = _report_numbers(tmp_path / "threads"), _report_numbers(tmp_path / "dist")
    assert len(ref) >= 5 and got.keys() == ref.keys()
    for name, value in ref.items():
        assert got[name] == pytest.approx(value, rel=RTOL, abs=0), name


def test_bad_scheduler_addresses_are_refused_with_the_remedy(tmp_path):
    from agi_data.analysis import AnalysisError
    from agi_data.analysis._common import dask_scheduler

    for bad, why in (("nonsense", "is not a Dask scheduler"), ("local:0", "at least 1 worker")):
        with pytest.raises(AnalysisError, match=why), dask_scheduler(bad):
            pass
    closed = f"tcp://127.0.0.1:{_free_port()}"
    with pytest.raises(AnalysisError, match=rf"cannot reach the Dask scheduler at {closed} within 1 s"), \
            dask_scheduler(closed, timeout_s=1):
        pass
    from click.testing import CliRunner

    from agi_data.cli import main

    res = CliRunner().invoke(main, ["analyse", RUN, "--store", str(tmp_path), "--scheduler", "nonsense",
                                    "-o", str(tmp_path / "rep")])
    assert res.exit_code == 1 and "is not a Dask scheduler" in res.output and "Traceback" not in res.output
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


# ------------------------------------------------------------------ agi provenance of a run in the S3 store

def test_agi_provenance_of_a_run_in_the_s3_store(stores, aiida_profile, tmp_path):
    """A Wannier batch (the real ``store_wannier_batch`` calcfunction) written to an S3 run; ``agi provenance`` in
    another process, given only the store URL and the AiiDA profile, walks from the run to that node."""
    import os
    import subprocess
    import sys

    from aiida import orm
    from aiida.engine import run_get_node

    from agi_data.aiida.workflows.wannier import store_wannier_batch
    from agi_data.store import open_store

    url, run_id = stores["s3"], "prov"
    store = open_store(url)
    rng = np.random.default_rng(7)
    with store.create_run(run_id, ["Ag", "I"], np.eye(3) * 6.0, 0.01) as w:
        w.append(rng.uniform(0, 6, (4, 2, 3)))
    frames = {}
    for i in (1, 3):
        arrays = orm.ArrayData()
        arrays.set_array("centres", rng.uniform(0, 6, (4, 3)))
        arrays.set_array("spreads", rng.uniform(1, 2, 4))
        arrays.set_array("owner", np.arange(4) % 2)
        frames[f"frame_{i}"] = arrays
    ref = orm.Dict({"store_path": url, "run_id": run_id, "version": store.version(run_id)})
    wset, batch = run_get_node(store_wannier_batch, failures=orm.Dict({}), run=ref, **frames)
    assert batch.is_finished_ok
    assert wset.base.attributes.get("store_path") == url  # the node records the URL, not a local path

    def agi(*args):
        # a fresh process: the AWS variables (module fixture) and AIIDA_PATH (AiiDA's fixture) are its whole context
        res = subprocess.run([sys.executable, "-m", "agi_data.cli", "provenance", run_id, "--store", url,
                              "--profile", aiida_profile.name, *args], capture_output=True, text=True,
                             cwd=tmp_path, env=dict(os.environ), timeout=300)
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        return res.stdout

    version = open_store(url).version(run_id)
    text = agi()
    assert f"run {run_id}  (store version {version})" in text
    assert f": written by store_wannier_batch pk={batch.pk} uuid={batch.uuid} [finished, exit 0]" in text, text
    assert "Wannier centres of frames" in text and "store_wannier_batch ×1" in text
    page = agi("--html", "-o", str(tmp_path / "prov.html")).strip()
    html = (tmp_path / "prov.html").read_text()
    assert page == str(tmp_path / "prov.html") and f"n{batch.pk}" in html and f"run_{run_id}" in html
