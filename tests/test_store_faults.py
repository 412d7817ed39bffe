"""Damaged storage and stuck or killed processes: detected, contained, named.

* A flipped bit in a chunk, a manifest or a snapshot file of one run is
  reported by ``verify`` (API and CLI, exit 1) for that run only.
* A run whose branch ref is missing, or whose directory was replaced by a
  file, is listed with its problem by ``runs()``, ``agi store ls`` and
  ``verify``, and the other runs stay readable.
* A SIGKILLed import leaves no visible run, and the same import succeeds
  afterwards.
* A writer stopped (SIGSTOP) inside a commit makes a second writer fail
  within its bound, with an error naming the stopped process; once that
  process is killed, its lock is free at once (a dead holder never blocks).
* An interrupted store creation is recoverable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agi_data.cli import main
from agi_data.store import RunLockedError, open_store
from agi_data.store.io import import_trajectory
from agi_data.store.verify import verify_store

pytestmark = pytest.mark.timeout(120)

# chunks large and incompressible enough to be files (Icechunk inlines small chunks into manifests)
N_ATOMS, FRAMES = 64, 32


def _healthy_store(path: Path):
    store = open_store(path)
    rng = np.random.default_rng(0)
    with store.create_run("a", ["Ag"] * N_ATOMS, np.eye(3) * 10, 0.01, chunk_frames=16, chunk_atoms=64) as w:
        w.append(rng.uniform(0, 10, (FRAMES, N_ATOMS, 3)))
    with store.create_run("b", ["I"] * 4, np.eye(3) * 10, 0.01) as w:
        w.append(rng.uniform(0, 10, (3, 4, 3)))
    assert verify_store(store).ok
    return store


def _flip(path: Path, where: float) -> None:
    data = bytearray(path.read_bytes())
    k = min(int(len(data) * where), len(data) - 1)
    data[k] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["chunks", "manifests", "snapshots", "transactions"])
@pytest.mark.parametrize("where", [0.0, 0.5, 0.99])
def test_a_flipped_bit_is_detected_for_that_run_only(tmp_path, kind, where):
    store = _healthy_store(tmp_path / "s")
    files = sorted((tmp_path / "s" / "runs" / "a" / kind).iterdir(), key=lambda p: p.stat().st_size)
    assert files, f"run a has no {kind} files"
    target = files[-1]
    _flip(target, where)
    report = verify_store(open_store(tmp_path / "s", create=False))
    assert report.damaged == ["a"], report.problems
    assert report.per_run["b"].ok
    text = " ".join(report.per_run["a"].problems)
    assert target.name in text or "checksum" in text.lower(), text
    result = CliRunner().invoke(main, ["store", "verify", "--store", str(tmp_path / "s")])
    assert result.exit_code == 1 and "a\tDAMAGED" in result.output and "b\tOK" in result.output, result.output
    assert store.trajectory("b").positions.shape == (3, 4, 3)


def test_a_flipped_chunk_bit_fails_reads_not_silently(tmp_path):
    store = _healthy_store(tmp_path / "s")
    chunk = max((tmp_path / "s" / "runs" / "a" / "chunks").iterdir(), key=lambda p: p.stat().st_size)
    _flip(chunk, 0.5)
    with pytest.raises(Exception, match="checksum"):
        store.trajectory("a").positions.values.sum()


@pytest.mark.parametrize("damage", ["missing-ref", "dir-replaced-by-file"])
def test_a_damaged_run_is_named_and_hides_no_other(tmp_path, damage):
    store = _healthy_store(tmp_path / "s")
    run_dir = tmp_path / "s" / "runs" / "a"
    if damage == "missing-ref":
        shutil.rmtree(run_dir / "refs")
    else:
        shutil.rmtree(run_dir)
        run_dir.write_text("not a run\n")
    store = open_store(tmp_path / "s", create=False)
    table = store.runs().set_index("run_id")
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "problem"] and not table.loc["b", "problem"]
    assert table.loc["b", "frames"] == 3
    ls = CliRunner().invoke(main, ["store", "ls", "--json", "--store", str(tmp_path / "s")])
    assert ls.exit_code == 0, ls.output
    rows = {r["run_id"]: r for r in json.loads(ls.output)["runs"]}
    assert rows["a"]["problem"] and rows["b"]["problem"] == "" and rows["b"]["frames"] == 3
    report = verify_store(store)
    assert report.damaged == ["a"] and report.per_run["b"].ok
    verify = CliRunner().invoke(main, ["store", "verify", "--store", str(tmp_path / "s")])
    assert verify.exit_code == 1 and "damaged runs: a" in verify.output
    # the damaged run can be removed, and the store is healthy again
    rm = CliRunner().invoke(main, ["store", "rm", "a", "--yes", "--store", str(tmp_path / "s")])
    assert rm.exit_code == 0, rm.output
    assert verify_store(open_store(tmp_path / "s", create=False)).ok


IMPORTER = textwrap.dedent("""
    import sys, time
    from agi_data.store import open_store
    from agi_data.store import writer
    from agi_data.store.io import import_trajectory

    original = writer.RunWriter.append
    def slow_append(self, *a, **k):
        out = original(self, *a, **k)
        print("appended", flush=True)
        time.sleep(30)  # killed here: some frames committed to the staged run, the import unfinished
        return out
    writer.RunWriter.append = slow_append
    import_trajectory(open_store(sys.argv[1]), sys.argv[2], "imp", timestep_ps=0.01, batch=2)
""")


def _xyz(path: Path, n_frames: int) -> None:
    lines = []
    for f in range(n_frames):
        lines += ["2", 'Lattice="6 0 0 0 6 0 0 0 6" Properties=species:S:1:pos:R:3 pbc="T T T"',
                  f"Ag {1 + 0.01 * f} 1 1", "I 3 3 3"]
    path.write_text("\n".join(lines) + "\n")


def test_a_killed_import_leaves_no_visible_run_and_can_be_redone(tmp_path):
    src = tmp_path / "in.xyz"
    _xyz(src, 6)
    open_store(tmp_path / "s")
    proc = subprocess.Popen([sys.executable, "-c", IMPORTER, str(tmp_path / "s"), str(src)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "appended"
    proc.kill()
    proc.wait()
    store = open_store(tmp_path / "s", create=False)
    assert store.run_ids() == [] and store.runs().empty
    assert verify_store(store).ok
    leftovers = [p.name for p in (tmp_path / "s" / "runs").iterdir()]
    assert leftovers and all(name.startswith(".creating-imp-") for name in leftovers)
    assert import_trajectory(store, src, "imp", timestep_ps=0.01) == 6
    assert store.trajectory("imp").sizes["time"] == 6
    assert [p.name for p in (tmp_path / "s" / "runs").iterdir()] == ["imp"]  # the dead import's files removed


STOPPED_IN_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from agi_data.store import open_store
    store = open_store(sys.argv[1])
    writer = store.open_run("a")                       # the run's writer lock
    store.handle("a").lock("commit").acquire(0)        # as inside a commit
    print("holding", os.getpid(), flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)
""")


def test_a_stopped_writer_makes_others_fail_within_the_bound_naming_it(tmp_path):
    _healthy_store(tmp_path / "s")
    proc = subprocess.Popen([sys.executable, "-c", STOPPED_IN_COMMIT, str(tmp_path / "s")], stdout=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline().split()
        assert line[0] == "holding"
        pid = int(line[1])
        store = open_store(tmp_path / "s", lock_timeout_s=1.5)
        with pytest.raises(RunLockedError, match=f"pid {pid} on "):  # a second trajectory writer: refused at once
            store.open_run("a")
        t0 = time.monotonic()
        with pytest.raises(RunLockedError, match=rf"\(commit\) is held by another writer: pid {pid} .*1.5 s"):
            store.set_attrs("a", note="waits for the commit lock")
        waited = time.monotonic() - t0
        assert 1.5 <= waited < 5.0, waited
        t0 = time.monotonic()
        with pytest.raises(RunLockedError, match=f"pid {pid}"):
            store.add_wannier("a", [0], np.zeros((1, 1, 3)))
        assert time.monotonic() - t0 < 5.0
        assert store.set_attrs("b", note="other runs are not blocked")  # only run a is held
    finally:
        proc.kill()
        proc.wait()
    # the holder is dead: its locks are free at once, and the lock file still names it as stale
    store = open_store(tmp_path / "s", lock_timeout_s=1.5)
    t0 = time.monotonic()
    store.set_attrs("a", note="after the holder died")
    with store.open_run("a") as w:
        w.append(np.zeros((1, N_ATOMS, 3)))
    assert time.monotonic() - t0 < 1.0
    assert verify_store(store).ok


def test_holder_record_and_stale_detection(tmp_path):
    from agi_data.store.locks import FileLock, Holder

    lock = FileLock(tmp_path / "x.lock", "thing").acquire()
    assert lock.holder().pid == os.getpid() and not lock.holder().stale
    lock.release()
    assert lock.holder() is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert Holder(dead.pid, Holder.me().host, "then").stale
    assert "stale" in Holder(dead.pid, Holder.me().host, "then").describe()


def test_an_interrupted_store_creation_is_recoverable(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / ".agi-store.json.tmp").write_text('{"format": "agi-da')  # killed while writing the marker
    store = open_store(root)
    assert (root / "agi-store.json").is_file() and store.run_ids() == []
    with store.create_run("x", ["Ag"], np.eye(3) * 4, 0.01) as w:
        w.append(np.zeros((1, 1, 3)))
    assert verify_store(open_store(root, create=False)).ok
