"""A campaign on a daemon with two workers, on the embedded profile (core.sqlite_dos + the ZeroMQ
broker) and on PostgreSQL + RabbitMQ (core.psql_dos + core.rabbitmq, started by scripts/services.sh).

Six ``agi.md_base`` WorkChains are submitted at once: four on runs of their own and two asked to
write the same run. Checked, with the real ``verdi daemon``:

* every WorkChain terminates; each run of its own is complete, its time axis contiguous (no
  frame missing or written twice);
* of the two on one run, the run is never interleaved: either one of them is refused with
  ERROR_RUN_LOCKED (they overlapped) or the later one finds the run complete and adds nothing —
  and the run holds exactly the frames of one uninterrupted run;
* two Wannier batches on different frames of one run both land in its Wannier set, each frame once;
* both workers took work (``verdi daemon status`` lists two, and the jobs overlapped in time).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiida.engine import submit

from agi_data import open_store
from agi_data.aiida.calculations.md_job import ensure_md_code
from agi_data.aiida.parsers.md_job import check_time_axis
from agi_data.aiida.protocols import load_protocol
from agi_data.aiida.setup import enable_sqlite_wal, ensure_codes, ensure_computer, ensure_pseudo_family
from agi_data.aiida.workflows.md_base import md_job_builder
from agi_data.structures import alpha_agi

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sqlite+zeromq", "postgresql+rabbitmq"])
def daemon_two_workers(request, aiida_config, aiida_profile_factory, tmp_path_factory):
    """A daemon with two workers on the embedded profile, then on PostgreSQL + RabbitMQ (make services)."""
    from aiida.plugins import BrokerFactory
    from conftest import psql_storage
    from test_aiida_daemon import verdi

    if request.param == "sqlite+zeromq":
        config = BrokerFactory("core.zeromq").get_default_config()
        factory = aiida_profile_factory(aiida_config, broker_backend="core.zeromq", broker_config=config)
    else:
        database = request.getfixturevalue("services")
        factory = aiida_profile_factory(aiida_config, storage_backend="core.psql_dos",
                                        storage_config=psql_storage(database, tmp_path_factory.mktemp("repo")),
                                        broker_backend="core.rabbitmq")
    with factory as profile:
        enable_sqlite_wal()
        computer = ensure_computer("campaign", workdir=tmp_path_factory.mktemp("campaign-work"), mpiprocs=1,
                                   poll_interval=0.5)
        code = ensure_md_code(computer)
        ensure_codes(computer)
        ensure_pseudo_family()
        started = verdi(profile, "daemon", "start", "2")
        assert started.returncode == 0, started.stdout + started.stderr
        try:
            yield profile, code, verdi
        finally:
            verdi(profile, "daemon", "stop")


def _describe(nodes) -> str:
    """What each WorkChain and each of its jobs ended with, and the end of each job's log (for a failure)."""
    lines = []
    for n in nodes:
        lines.append(f"{n.process_label}<{n.pk}>: [{n.exit_status}] {n.exit_message}")
        for c in n.called:
            names = c.outputs.retrieved.base.repository.list_object_names() if "retrieved" in c.outputs else []
            log = (c.outputs.retrieved.base.repository.get_object_content("md.log")[-1500:] if "md.log" in names
                   else f"(retrieved: {names})")
            lines.append(f"  {c.process_label}<{c.pk}> [{c.exit_status}] {c.exit_message}\n    log: {log}")
    return "\n".join(lines)


def test_campaign_on_two_workers_lands_every_run_once(daemon_two_workers, tmp_path):
    profile, code, verdi = daemon_two_workers
    status = verdi(profile, "daemon", "status")
    assert "Active workers [2]" in status.stdout, status.stdout
    params = load_protocol("md", "fast", {"md": {"n_steps": 400}, "store": {"flush_every": 10}})
    n_total = 400 // 10 + 1
    store_path = tmp_path / "store"
    nodes = {}
    for i in range(4):
        nodes[f"own-{i}"] = submit(md_job_builder(code, alpha_agi(2, seed=i), params, store_path, f"run-{i}"))
    shared = [submit(md_job_builder(code, alpha_agi(2, seed=9), params, store_path, "shared")) for _ in range(2)]
    # two Wannier batches on different frames of one run: both land in its Wannier set, each frame once
    from agi_data.aiida.workflows.wannier import WannierWorkChain

    frames = [alpha_agi(1, seed=seed, rattle=0.08) for seed in (1, 2)]
    with open_store(store_path).create_run("labelled", frames[0].numbers, frames[0].cell.array, 0.01) as w:
        w.append(np.stack([f.positions for f in frames]))
    codes = {name: f"{name}@{code.computer.label}" for name in ("pw", "pw2wannier90", "wannier90")}
    wannier = [submit(WannierWorkChain.get_builder_from_protocol(codes, "labelled", [k], protocol="fast",
                                                                 store=store_path)) for k in (0, 1)]
    t0 = time.monotonic()
    everything = [*nodes.values(), *shared, *wannier]
    while not all(n.is_terminated for n in everything):
        assert time.monotonic() - t0 < 900, [(n.pk, n.process_state) for n in everything]
        time.sleep(1)

    store = open_store(store_path)
    for key, node in nodes.items():
        assert node.is_finished_ok, f"{key}: {node.exit_status} {node.exit_message}"
        ds = store.trajectory(f"run-{key.split('-')[1]}")
        assert ds.sizes["time"] == n_total
        assert check_time_axis(ds["time"].values, float(ds.attrs["timestep_ps"])) is None

    locked = shared[0].process_class.exit_codes.ERROR_RUN_LOCKED.status
    outcomes = sorted(n.exit_status for n in shared)
    assert outcomes in ([0, 0], [0, locked]), _describe(shared)
    ds = store.trajectory("shared")
    assert ds.sizes["time"] == n_total
    assert check_time_axis(ds["time"].values, float(ds.attrs["timestep_ps"])) is None
    if outcomes == [0, 0]:  # they did not overlap: the later one added nothing
        frames = sorted(n.outputs.run["new_frames"] for n in shared)
        assert frames == [0, n_total], frames

    for node in wannier:
        assert node.is_finished_ok, _describe([node])
    ws = store.wannier("labelled")
    assert sorted(ws["frame"].values.tolist()) == [0, 1]  # each batch landed, exactly once
    assert ws["centres"].shape == (2, 18, 3)

    # the two workers ran jobs at the same time (the campaign did not run one job after another)
    spans = []
    for node in [*nodes.values(), *shared]:
        for job in (c for c in node.called if c.process_label == "MDJobCalculation"):
            spans.append((job.ctime.timestamp(), job.mtime.timestamp()))
    spans.sort()
    assert any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans
    assert np.isfinite(store.trajectory("run-0").positions.values).all()
