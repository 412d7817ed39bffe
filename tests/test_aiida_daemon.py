"""Both WorkChains submitted to a daemon on an embedded profile (core.sqlite_dos + the bundled ZeroMQ broker).

`verdi daemon start` / `verdi process list -a` / `verdi process show` / `verdi process report`
are the real commands, run on a profile of their own, like a user would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiida.engine import submit

from agi_data.aiida.testing import prepare_profile
from agi_data.aiida.workflows.reference import ReferenceWorkChain
from agi_data.aiida.workflows.wannier import WannierWorkChain
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow
VERDI = str(Path(sys.executable).with_name("verdi"))


def verdi(profile, *args, timeout=300):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # the daemon needs verdi on PATH
    return subprocess.run([VERDI, "-p", profile.name, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def daemon_profile(aiida_config, aiida_profile_factory, tmp_path_factory):
    from aiida.plugins import BrokerFactory

    config = BrokerFactory("core.zeromq").get_default_config()
    with aiida_profile_factory(aiida_config, broker_backend="core.zeromq", broker_config=config) as profile:
        prepare_profile(tmp_path_factory.mktemp("daemon-work"))
        started = verdi(profile, "daemon", "start", "1")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield profile
        finally:
            verdi(profile, "daemon", "stop")


def _wait(nodes, timeout=600):
    t0 = time.monotonic()
    while not all(n.is_terminated for n in nodes):
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"processes {[n.pk for n in nodes]} still running after {timeout} s")
        time.sleep(1)


def test_daemon_runs_both_workchains_and_verdi_shows_them(daemon_profile):
    cell = alpha_agi(1, seed=7, rattle=0.05)
    ref = submit(ReferenceWorkChain.get_builder_from_protocol(None, {"s0": cell}, protocol="fast"))
    wan = submit(WannierWorkChain.get_builder_from_protocol(None, structures={"frame_0": cell}, protocol="fast"))
    _wait([ref, wan])
    assert ref.is_finished_ok, ref.exit_message
    assert wan.is_finished_ok, wan.exit_message
    assert len(ref.outputs.dataset) == 1
    assert ref.outputs.dataset.energies[0] < -3000
    assert wan.outputs.wannier_sets.batch_0.centres.shape == (1, 18, 3)

    listing = verdi(daemon_profile, "process", "list", "-a", "-p", "1")
    assert listing.returncode == 0, listing.stderr
    for node in (ref, wan):
        line = next(ln for ln in listing.stdout.splitlines() if ln.strip().startswith(str(node.pk)))
        assert "Finished [0]" in line
    assert "ReferenceWorkChain" in listing.stdout and "WannierWorkChain" in listing.stdout
    show = verdi(daemon_profile, "process", "show", str(wan.pk))
    assert "wannier_sets" in show.stdout and "WannierBatchCalculation" in show.stdout  # the batched route
    report = verdi(daemon_profile, "process", "report", str(wan.pk))
    assert "1 frames done" in report.stdout


def _submitted_pk(output: str) -> int:
    line = next(ln for ln in output.splitlines() if ln.startswith("Submitted agi."))
    return int(line.split("<", 1)[1].split(">", 1)[0])


def test_agi_submit_to_the_daemon_finishes_and_says_how_to_watch(daemon_profile, tmp_path):
    """`agi submit md|reference --daemon`: the pk and the verdi commands printed, the processes finish."""
    from aiida import orm
    from ase.io import write
    from click.testing import CliRunner

    from agi_data.cli import main

    runner = CliRunner()
    store = tmp_path / "store"
    md = runner.invoke(main, ["submit", "md", "--run", "cli-md", "--store", str(store), "--protocol", "fast",
                              "--set", "md.n_steps=20", "--set", "md.stride=10", "--option", "account=proj42",
                              "--daemon"])
    assert md.exit_code == 0, md.output
    cell = tmp_path / "cell.extxyz"
    write(cell, alpha_agi(1, seed=5, rattle=0.05))
    ref = runner.invoke(main, ["submit", "reference", "--structure", str(cell), "--daemon"])
    assert ref.exit_code == 0, ref.output
    nodes = [orm.load_node(_submitted_pk(res.output)) for res in (md, ref)]
    for res, node in zip((md, ref), nodes):
        assert f"verdi process show {node.pk}" in res.output and f"verdi process report {node.pk}" in res.output
    _wait(nodes)
    md_node, ref_node = nodes
    assert md_node.is_finished_ok, md_node.exit_message
    assert ref_node.is_finished_ok, ref_node.exit_message
    assert md_node.inputs.parameters["options"]["account"] == "proj42"
    from agi_data import open_store

    assert open_store(store).trajectory("cli-md").sizes["time"] == 3
    assert "agi/md/cli-md" in md.output and {n.uuid for n in orm.load_group("agi/md/cli-md").nodes} >= {md_node.uuid}
    assert len(ref_node.outputs.dataset) == 1
    shown = verdi(daemon_profile, "process", "show", str(md_node.pk))
    assert "Finished [0]" in shown.stdout
