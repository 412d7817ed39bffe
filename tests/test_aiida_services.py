"""The same WorkChain on a PostgreSQL + RabbitMQ profile (core.psql_dos + core.rabbitmq), run by the daemon.

`scripts/services.sh` (what `make services` runs) installs PostgreSQL and RabbitMQ from Debian if
missing, configures them on loopback (RabbitMQ with a long consumer_timeout) and starts them; this
test runs it first, so it passes in CI on a bare Debian machine with root or sudo.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiida.engine import submit

from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def verdi(profile, *args):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    return subprocess.run([str(Path(sys.executable).with_name("verdi")), "-p", profile.name, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_reference_workchain_on_postgres_and_rabbitmq(psql_profile):
    started = verdi(psql_profile, "daemon", "start", "1")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        node = submit(ReferenceWorkChain.get_builder_from_protocol(
            None, {"s0": alpha_agi(1, seed=11, rattle=0.05)}, protocol="fast"))
        t0 = time.monotonic()
        while not node.is_terminated:
            assert time.monotonic() - t0 < 600, "the daemon did not finish the WorkChain in 600 s"
            time.sleep(1)
    finally:
        verdi(psql_profile, "daemon", "stop")
    assert node.is_finished_ok, node.exit_message
    assert psql_profile.storage_backend == "core.psql_dos" and psql_profile.process_control_backend == "core.rabbitmq"
    ds = node.outputs.dataset
    assert len(ds) == 1 and -3370 < ds.energies[0] < -3360
    listing = verdi(psql_profile, "process", "list", "-a", "-p", "1")
    assert any(ln.strip().startswith(str(node.pk)) and "Finished [0]" in ln for ln in listing.stdout.splitlines())
