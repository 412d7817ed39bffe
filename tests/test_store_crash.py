"""Durability: a writer killed with SIGKILL at random moments loses no committed frame.

A child process appends batches of deterministic frames (frame i holds the
value i everywhere) and reports each committed append on stdout. The parent
kills it at a random moment, reopens the store, checks that every reported
append is there, intact, and that no part of a batch is visible, then starts
the next writer from where the store says the run ends. Over the whole test
there are ≥ 100 appends and a dozen kills.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from agi_data import open_store

N_ATOMS = 64
BATCH = 3

CHILD = textwrap.dedent(f"""
    import sys, numpy as np
    from agi_data import open_store
    store = open_store(sys.argv[1])
    w = store.open_run("crash") if "crash" in store else store.create_run("crash", ["Ag"] * {N_ATOMS}, np.eye(3) * 20, 0.01,
                                                                         chunk_frames=8, chunk_atoms=32)
    n = w.n_frames
    print("ready", n, flush=True)
    while True:
        block = np.arange(n, n + {BATCH}, dtype=np.float64)[:, None, None] * np.ones((1, {N_ATOMS}, 3))
        w.append(block, velocities=-block, energies=np.arange(n, n + {BATCH}, dtype=float))
        n += {BATCH}
        print("committed", n, flush=True)
""")


def check_run(store, committed_at_least):
    ds = store.trajectory("crash")
    n = ds.sizes["time"]
    assert n >= committed_at_least, f"lost committed frames: store has {n}, writer had committed {committed_at_least}"
    assert n % BATCH == 0, f"part of an append is visible ({n} frames)"
    expected = np.arange(n, dtype=np.float64)
    pos = ds.positions.values
    np.testing.assert_array_equal(pos, expected[:, None, None] * np.ones((1, N_ATOMS, 3)))
    np.testing.assert_array_equal(ds.velocities.values, -pos)
    np.testing.assert_array_equal(ds.energies.values, expected)
    assert ds.cell.shape[0] == ds.time.shape[0] == n
    return n


def test_sigkill_during_appends_loses_nothing(tmp_path):
    path = tmp_path / "store"
    rng = np.random.default_rng(7)
    committed = 0
    total_appends = 0
    kills = 0
    while total_appends < 110 or kills < 12:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().startswith("ready")
        deadline = time.monotonic() + rng.uniform(0.05, 0.6)
        last = committed
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if line.startswith("committed"):
                last = int(line.split()[1])
                total_appends += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # lines printed before the kill may still sit in the pipe
        for line in proc.stdout:
            if line.startswith("committed"):
                last = int(line.split()[1])
                total_appends += 1
        kills += 1
        committed = check_run(open_store(path), last)
    # the store is still a healthy store: a fresh writer appends and reads back
    store = open_store(path)
    with store.open_run("crash") as w:
        n = w.n_frames
        block = np.arange(n, n + BATCH, dtype=np.float64)[:, None, None] * np.ones((1, N_ATOMS, 3))
        w.append(block, velocities=-block, energies=np.arange(n, n + BATCH, dtype=float))
    check_run(store, n + BATCH)
    from agi_data.store.verify import verify_store

    report = verify_store(store)
    assert report.ok, report.problems
    assert total_appends >= 100 and kills >= 12
