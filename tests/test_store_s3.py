"""The store on S3-compatible object storage (moto's server on loopback, started by the tests).

The store's own scenarios (``tests/test_store.py``: round trips, versions,
Wannier sets, one writer per run, readers during writes, bad input) run
here again with ``store_dir`` an ``s3://`` URL. Then what is particular to
object storage: locations (what parses, what is refused), leases (one
writer, named holder, expiry and takeover, a lost lease refuses to commit),
and failures of the server or the network.
"""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import icechunk
import numpy as np
import pytest
import test_store
from s3server import UrlPath

from agi_data.store.errors import RunLockedError
from agi_data.store.lease import S3Lease
from agi_data.store.location import (
    S3Location,
    StoreLocationError,
    location_string,
    parse_location,
    run_reference,
)
from agi_data.store.locks import Holder

pytest_plugins = ["s3server"]

#: the store's scenarios that say nothing about local directories, run here on S3
SCENARIOS = [
    "test_round_trip_is_exact",
    "test_constant_cell_is_repeated_and_species_as_numbers",
    "test_version_reads_old_content_after_more_appends",
    "test_wannier_set_round_trip_and_checks",
    "test_one_writer_per_run_and_parallel_runs",
    "test_reader_sees_consistent_prefix_during_writes",
    "test_bad_appends_write_nothing",
    "test_existing_run_closed_writer_and_missing_run",
    "test_set_attrs_and_delete",
]
globals().update({name: getattr(test_store, name) for name in SCENARIOS})


@pytest.fixture
def store_dir(s3_url, monkeypatch):
    """The store of the scenarios above: an empty prefix of a fresh bucket, through the cuttable proxy."""
    monkeypatch.setenv("AGI_STORE_LEASE_TTL_S", "3")
    return s3_url


# ------------------------------------------------------------------ locations
@pytest.mark.parametrize("text, bucket, prefix", [
    ("s3://agi-runs", "agi-runs", ""),
    ("s3://agi-runs/", "agi-runs", ""),
    ("s3://agi-runs/shared/md", "agi-runs", "shared/md"),
    ("s3://agi.runs.2026//a/", "agi.runs.2026", "a"),
])
def test_s3_urls_parse(text, bucket, prefix, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    loc = parse_location(text)
    assert isinstance(loc, S3Location)
    assert (loc.bucket, loc.prefix, loc.endpoint_url, loc.region) == (bucket, prefix, None, "eu-west-1")
    assert parse_location(loc.url) == loc  # the recorded string resolves to the same place


def test_endpoint_from_environment_and_query_and_argument(monkeypatch):
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9000")
    loc = parse_location("s3://agibar/p")
    assert loc.endpoint_url == "http://127.0.0.1:9000" and loc.allow_http  # loopback: plain HTTP allowed
    assert loc.url == "s3://agibar/p?endpoint_url=http://127.0.0.1:9000&region=" + loc.region
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    again = parse_location(loc.url)  # another process without the variable resolves the recorded URL
    assert again == loc
    assert parse_location("s3://agibar/p", endpoint_url="https://minio.lab:9000").endpoint_url == "https://minio.lab:9000"
    with pytest.raises(StoreLocationError, match="allow_http"):
        parse_location("s3://agibar/p", endpoint_url="http://minio.lab:9000")
    remote = parse_location("s3://agibar/p", endpoint_url="http://minio.lab:9000", allow_http=True)
    assert "allow_http=true" in remote.url and parse_location(remote.url) == remote
    aws = parse_location("s3://agibar/p", endpoint_url="https://s3.eu-west-1.amazonaws.com")
    assert aws.endpoint_url is None and aws.url == "s3://agibar/p"


@pytest.mark.parametrize("text, match", [
    ("gs://bucket/p", "scheme 'gs' is not one of"),
    ("http://example.org/store", "scheme 'http'"),
    ("s3:/agibar/p", "write s3://"),
    ("s3:agibar", "write s3://"),
    ("s3://", "no bucket"),
    ("s3:///p", "no bucket"),
    ("s3://B/p", "not a valid bucket name"),
    ("s3://my_bucket/p", "not a valid bucket name"),
    ("s3://agibar/../etc", "'..'"),
    ("s3://agibar/a b", "is not allowed"),
    ("s3://agibar/p?color=red", "unknown option"),
    ("s3://agibar/p?endpoint_url=ftp://x", "http:// or https://"),
    ("s3://agibar/p?allow_http=maybe", "true or false"),
    ("file://host/path", "file:///absolute"),
])
def test_bad_locations_are_refused_and_create_nothing(text, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from agi_data.store import open_store

    with pytest.raises(StoreLocationError, match=match):
        parse_location(text)
    with pytest.raises(StoreLocationError, match=match):
        open_store(text)
    assert list(tmp_path.iterdir()) == []  # no local directory named like the URL


def test_local_paths_and_recorded_references(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_location("store/data") == Path("store/data")
    assert parse_location("./odd:name") == Path("odd:name")
    assert parse_location(f"file://{tmp_path}/s") == tmp_path / "s"
    # a run recorded by an older version with an absolute local path resolves to that path
    assert parse_location(str(tmp_path / "s")) == tmp_path / "s"
    assert location_string(Path("store/data")) == str(tmp_path / "store" / "data")
    loc = parse_location("s3://agibar/p", endpoint_url="http://127.0.0.1:9")
    assert run_reference(loc, "r1", "V1") == {"store_path": loc.url, "run_id": "r1", "version": "V1"}
    assert pickle.loads(pickle.dumps(loc)) == loc


# --------------------------------------------------------------------- leases
@pytest.fixture
def s3_loc(s3_url):
    loc = parse_location(s3_url)
    loc.client()  # credentials resolved here, with the test's environment
    return loc


def _other_host(pid=4242) -> Holder:
    return Holder(pid, "node-b.cluster", "2026-01-01T00:00:00+00:00")


def test_a_second_writer_gets_the_named_error(s3_loc):
    a = S3Lease(s3_loc, "locks/r@writer.lease", "run 'r'", ttl_s=30).acquire()
    b = S3Lease(s3_loc, "locks/r@writer.lease", "run 'r'", ttl_s=30)
    with pytest.raises(RunLockedError, match=rf"run 'r' is held by another writer: pid \d+ on {socket.gethostname()}"):
        b.acquire(0)
    t = time.monotonic()
    with pytest.raises(RunLockedError, match="after waiting 0.5 s"):
        b.acquire(0.5)
    assert 0.4 < time.monotonic() - t < 5
    a.release()
    b.acquire(0)
    assert b.held and b.holder().pid == a.holder().pid  # same process, fresh acquisition
    b.release()
    assert b.holder() is None


def test_racing_writers_exactly_one_wins(s3_loc):
    leases = [S3Lease(s3_loc, "locks/race@writer.lease", f"w{i}", ttl_s=30, holder=_other_host(i)) for i in range(6)]
    won, lost = [], []
    barrier = threading.Barrier(len(leases))

    def go(lease):
        barrier.wait()
        try:
            lease.acquire(0)
            won.append(lease)
        except RunLockedError:
            lost.append(lease)

    threads = [threading.Thread(target=go, args=(lease,)) for lease in leases]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(won) == 1 and len(lost) == 5
    assert won[0].holder().pid == won[0]._me.pid
    won[0].release()


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_commit(s3_loc):
    """A writer on another host stalls past its lease: a new writer takes over; the stalled one is refused."""
    ttl = 1.0
    stalled = S3Lease(s3_loc, "locks/x@writer.lease", "run 'x'", ttl_s=ttl, holder=_other_host(1)).acquire()
    stalled._stop.set()  # it stops renewing (a stopped process, a partition)
    stalled._thread.join()
    newcomer = S3Lease(s3_loc, "locks/x@writer.lease", "run 'x'", ttl_s=ttl, holder=_other_host(2))
    with pytest.raises(RunLockedError, match="pid 1 on node-b.cluster"):
        newcomer.acquire(0)  # not expired yet
    t = time.monotonic()
    newcomer.acquire(10 * ttl)
    waited = time.monotonic() - t
    assert ttl <= waited < ttl + 3.5, waited  # ttl + the server clock's resolution, not the timeout
    assert newcomer.holder().pid == 2
    with pytest.raises(RunLockedError, match="lost its lease"):
        stalled.ensure_fresh()
    stalled.release()  # does not remove the new holder's lease
    assert newcomer.holder().pid == 2 and newcomer.held
    newcomer.ensure_fresh()
    newcomer.release()


def test_a_lease_renewed_by_a_live_writer_never_expires(s3_loc):
    ttl = 0.6
    live = S3Lease(s3_loc, "locks/y@writer.lease", "run 'y'", ttl_s=ttl, holder=_other_host(1)).acquire()
    other = S3Lease(s3_loc, "locks/y@writer.lease", "run 'y'", ttl_s=ttl, holder=_other_host(2))
    with pytest.raises(RunLockedError, match="pid 1 on node-b.cluster"):
        other.acquire(4 * ttl + 2)  # well past ttl: the renewals keep it
    assert live.held
    live.ensure_fresh()
    live.release()


def test_a_dead_process_on_this_host_is_taken_over_at_once(s3_loc):
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process
    ghost = Holder(dead.pid, socket.gethostname(), "2026-01-01T00:00:00+00:00")
    S3Lease(s3_loc, "locks/z@writer.lease", "run 'z'", ttl_s=3600, holder=ghost)._try_take()
    t = time.monotonic()
    mine = S3Lease(s3_loc, "locks/z@writer.lease", "run 'z'", ttl_s=3600).acquire(0)
    assert time.monotonic() - t < 2 and mine.holder().pid != dead.pid
    mine.release()


# ------------------------------------------------------- the store on the server
def test_runs_live_in_the_bucket_not_on_disk(s3_server, store_dir, rng, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from agi_data.store import open_store

    store = open_store(store_dir)
    with store.create_run("r1", ["Ag", "I"], np.eye(3) * 5, 0.01) as w:
        w.append(rng.normal(size=(4, 2, 3)))
    loc = parse_location(store_dir)
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=loc.bucket)["Contents"]}
    assert {"store/agi-store.json", "store/index/r1.json"} <= keys
    assert any(k.startswith("store/repos/.creating-r1-") and k.endswith("refs/branch.main/ref.json") for k in keys)
    assert not any(k.startswith("store/locks/") for k in keys)  # every lease released
    assert list(tmp_path.iterdir()) == []
    assert str(store.root) == loc.url and store.ref("r1").store == loc.url
    assert open_store(loc.url).trajectory("r1").sizes["time"] == 4  # the recorded string resolves



_BAD_RUNS = test_store.test_bad_runs_are_refused_and_leave_the_store_unchanged.pytestmark[0]


@pytest.mark.parametrize(*_BAD_RUNS.args)
def test_bad_runs_are_refused_and_write_nothing_to_the_bucket(s3_server, store_dir, kwargs, match):
    """The store's bad-run inputs (tests/test_store.py), on S3: refused, and no object of a run written."""
    from agi_data.store import StoreValidationError, open_store

    store = open_store(store_dir)
    args = dict(run_id="ok", species=["Ag", "I"], cell=np.eye(3) * 5, timestep_ps=0.01) | kwargs
    with pytest.raises(StoreValidationError, match=match):
        store.create_run(args.pop("run_id"), args.pop("species"), args.pop("cell"), args.pop("timestep_ps"), **args)
    assert store.run_ids() == []
    loc = parse_location(store_dir)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=loc.bucket).get("Contents", [])]
    assert keys == [loc.key("agi-store.json")]

def test_sigkill_during_appends_loses_nothing(store_dir, monkeypatch):
    """The durability scenario of tests/test_store_crash.py, with every writer on S3 (leases of dead writers taken over)."""
    import test_store_crash

    test_store_crash.test_sigkill_during_appends_loses_nothing(UrlPath(store_dir))


TWO_WRITERS = textwrap.dedent("""
    import os, random, sys, time, numpy as np
    from agi_data.store import open_store
    from agi_data.store import RunLockedError
    store, me, windows = open_store(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    done = 0
    while done < windows:
        try:
            w = store.open_run("shared")
        except RunLockedError as err:
            print("locked", str(err).replace("\\n", " "), flush=True)
            time.sleep(random.uniform(0.05, 0.2))
            continue
        with w:
            for _ in range(3):  # one window: three appends while holding the run
                n = w.n_frames
                w.append(np.full((2, 2, 3), me * 1000.0 + np.arange(n, n + 2)[:, None, None]))
        done += 1
        print("window", me, flush=True)
        time.sleep(random.uniform(0.0, 0.1))
""")


def test_two_processes_append_to_one_run_in_turns(store_dir):
    """Two writer processes: one holds the run per window, the other gets the named error; never interleaved."""
    from agi_data.store import open_store

    store = open_store(store_dir)
    store.create_run("shared", ["Ag", "I"], np.eye(3) * 5, 0.01).close()
    procs = [subprocess.Popen([sys.executable, "-c", TWO_WRITERS, store_dir, str(me), "4"], stdout=subprocess.PIPE,
                              text=True) for me in (1, 2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    locked = [line for out in outs for line in out.splitlines() if line.startswith("locked")]
    assert locked, "the two writers never met: no window was contended"
    pids = {p.pid for p in procs}
    for line in locked:
        assert "is held by another writer: pid" in line
        assert int(line.split("pid ")[1].split()[0]) in pids  # the holder is named: the other writer
    pos = store.trajectory("shared").positions.values[:, 0, 0]
    writer = (pos // 1000).astype(int)
    np.testing.assert_array_equal(pos % 1000, np.arange(len(pos)))  # every frame where its writer put it
    # the frames come in windows of 3 appends × 2 frames, each from one writer
    assert len(pos) == 2 * 4 * 3 * 2
    for start in range(0, len(pos), 6):
        assert len(set(writer[start:start + 6])) == 1, writer
    assert sorted(writer.tolist()) == [1] * 24 + [2] * 24


# -------------------------------------------------------------------- bad input
def test_unreachable_endpoint_fails_in_bounded_time_naming_the_url(s3_env):
    from agi_data.store import open_store
    from agi_data.store.location import StoreUnreachableError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = time.monotonic()
    with pytest.raises(StoreUnreachableError, match=rf"cannot reach s3://agibar/p \(endpoint http://127.0.0.1:{port}\)"):
        open_store("s3://agibar/p", endpoint_url=f"http://127.0.0.1:{port}")
    assert time.monotonic() - t < 20


def test_cut_network_fails_in_bounded_time(s3_env, s3_url):
    from agi_data.store import open_store
    from agi_data.store.location import StoreUnreachableError

    s3_env.cut()
    t = time.monotonic()
    with pytest.raises(StoreUnreachableError, match="cannot reach s3://"):
        open_store(s3_url)
    assert time.monotonic() - t < 20


def test_missing_bucket(s3_env):
    from agi_data.store import open_store
    from agi_data.store.location import StoreUnreachableError

    with pytest.raises(StoreUnreachableError, match="bucket 'agi-no-such-bucket' does not exist"):
        open_store("s3://agi-no-such-bucket/p")


def test_wrong_credentials_with_authentication_on(s3_server, s3_url, monkeypatch):
    from agi_data.store import open_store
    from agi_data.store.location import StoreUnreachableError

    with s3_server.enforce_auth() as (key, secret):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(StoreUnreachableError, match="refused the credentials"):
            open_store(s3_url)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        store = open_store(s3_url)  # the right key: the store works, Icechunk's requests included
        with store.create_run("auth", ["Ag"], np.eye(3) * 4, 0.01) as w:
            w.append(np.zeros((2, 1, 3)))
        assert open_store(s3_url).trajectory("auth").sizes["time"] == 2


def test_no_credentials_at_all(s3_url, monkeypatch):
    from agi_data.store import open_store
    from agi_data.store.location import StoreUnreachableError

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StoreUnreachableError, match="no S3 credentials.*AWS_ACCESS_KEY_ID"):
        open_store(s3_url)


def test_a_prefix_that_holds_something_else_is_not_touched(s3_server, s3_url):
    from agi_data.store import NotAStoreError, open_store

    loc = parse_location(s3_url)
    s3_server.client().put_object(Bucket=loc.bucket, Key=f"{loc.prefix}/thesis/chapter1.tex", Body=b"precious")
    with pytest.raises(NotAStoreError, match="holds objects but no agi-store.json"):
        open_store(s3_url)
    with pytest.raises(NotAStoreError, match="no agi-data store"):
        open_store(f"s3://{loc.bucket}/elsewhere", create=False)
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=loc.bucket)["Contents"]]
    assert keys == [f"{loc.prefix}/thesis/chapter1.tex"]
    s3_server.client().put_object(Bucket=loc.bucket, Key="other/agi-store.json", Body=b'{"format": "zip"}')
    with pytest.raises(NotAStoreError, match="holds a 'zip'"):
        open_store(f"s3://{loc.bucket}/other")


def test_network_cut_during_an_append_leaves_the_last_committed_version(s3_env, s3_url, rng):
    from agi_data.store import StoreError, open_store

    store = open_store(s3_url)
    first = rng.normal(size=(4, 3, 3))
    w = store.create_run("cut", ["Ag", "I", "I"], np.eye(3) * 6, 0.01)
    w.append(first)
    committed = store.version("cut")
    big = rng.normal(size=(512, 3, 3))
    timer = threading.Timer(0.05, s3_env.cut)  # the link fails while the append is under way
    timer.start()
    t = time.monotonic()
    with pytest.raises((icechunk.IcechunkError, StoreError)) as err:  # Icechunk's write, or the lease renewal
        for _ in range(50):
            w.append(big)
    elapsed = time.monotonic() - t
    assert "dispatch failure" in str(err.value) or "cannot reach" in str(err.value)
    timer.join()
    s3_env.restore()
    reopened = open_store(s3_url)
    ds = reopened.trajectory("cut")
    assert ds.sizes["time"] % 512 == 4  # the committed appends, nothing of the interrupted one
    np.testing.assert_array_equal(ds.positions.values[:4], first)
    np.testing.assert_array_equal(reopened.trajectory("cut", version=committed).positions.values, first)
    assert elapsed < 120
    w.close()


# --------------------------------------------------------- distributed analysis
def _msd_in_worker(ref, species):
    """Runs in a worker process: it opens the run itself from the picklable reference."""
    from agi_data.analysis.transport import msd

    return msd(ref.trajectory(), species).compute(scheduler="sync").values


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_worker_processes_give_the_threaded_numbers(backend, tmp_path, request, rng):
    """msd and vacf on a LocalCluster of 2 worker processes equal the threaded results (1e-12 relative)."""
    from distributed import Client, LocalCluster

    from agi_data.analysis.transport import msd, vacf
    from agi_data.store import open_store

    where = request.getfixturevalue("s3_url") if backend == "s3" else tmp_path / "store"
    store = open_store(where)
    n_atoms, species = 40, ["Ag"] * 24 + ["I"] * 16
    steps = rng.normal(scale=0.05, size=(600, n_atoms, 3))
    with store.create_run("dist", species, np.eye(3) * 12.0, 0.01, chunk_frames=128, chunk_atoms=16) as w:
        for i in range(0, 600, 200):
            w.append(np.cumsum(steps, axis=0)[i:i + 200], velocities=steps[i:i + 200] / 0.01)
    ds = store.trajectory("dist")
    threaded = {"msd": msd(ds, "Ag").compute(scheduler="threads").values,
                "vacf": vacf(ds, "I").compute(scheduler="threads").values}
    ref = store.ref("dist")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        dist = {"msd": msd(ds, "Ag").compute().values, "vacf": vacf(ds, "I").compute().values}
        in_worker = client.submit(_msd_in_worker, ref, "Ag", pure=False).result()
        workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2
    for name in ("msd", "vacf"):
        np.testing.assert_allclose(dist[name], threaded[name], rtol=1e-12, atol=0)
    np.testing.assert_allclose(in_worker, threaded["msd"], rtol=1e-12, atol=0)
    assert threaded["msd"][-1] > threaded["msd"][1] > 0  # a real, growing MSD
