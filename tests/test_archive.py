"""``agi archive`` / ``agi unarchive``: a result moves with its provenance between two AiiDA profiles and two stores.

The chain is real and crosses the store: a classical MD run (``agi.md``, LAMMPS, 40 steps) → one of its
frames taken out by ``frames_to_structures`` (pinning the version it read) → a second MD run started
from that frame → Wannier centres added to the second run by the real ``store_wannier_batch``
calcfunction (the centres are made up; only their provenance is under test). Archiving the second run
must bring the first along. The restore happens in another process, with another AiiDA configuration
and profile, into another store, after the source store has been moved away, as on another machine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner

from agi_data import open_store
from agi_data.aiida.archive import FORMAT, FORMAT_VERSION, MANIFEST, read_manifest
from agi_data.aiida.provenance import run_provenance
from agi_data.aiida.workflows.common import frames_to_structures
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.wannier import store_wannier_batch
from agi_data.cli import main

pytestmark = pytest.mark.slow
pytest_plugins = ["s3server"]

SEED, RESULT = "seed-run", "result"
MD = {"md": {"n_steps": 40, "stride": 10}}


def _md(store, run, structure=None):
    builder = MDWorkChain.get_builder_from_protocol(None, structure, protocol="fast", store=store, run=run,
                                                    overrides=MD)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, node.exit_message
    return node


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Two MD runs linked through a frame, Wannier centres on the second; the store and the nodes."""
    path = tmp_path_factory.mktemp("source") / "store"
    store = open_store(path)
    seed_md = _md(store, SEED)
    read = orm.Dict({"store_path": str(store.root), "run_id": SEED, "version": store.version(SEED)})
    frames = frames_to_structures(read, orm.List([2]))
    result_md = _md(store, RESULT, frames["frame_2"])
    md_version = store.version(RESULT)
    rng = np.random.default_rng(0)
    centres = {}
    for i in (1, 3):
        arrays = orm.ArrayData()
        arrays.set_array("centres", rng.uniform(0, 10, (4, 3)))
        arrays.set_array("spreads", rng.uniform(1, 2, 4))
        arrays.set_array("owner", np.arange(4))
        centres[f"frame_{i}"] = arrays
    run = orm.Dict({"store_path": str(store.root), "run_id": RESULT, "version": md_version})
    wset, batch = run_get_node(store_wannier_batch, failures=orm.Dict({}), run=run, **centres)
    assert batch.is_finished_ok
    return {"store": store, "path": path, "seed_md": seed_md, "result_md": result_md, "batch": batch, "wset": wset,
            "seed_version": read["version"], "md_version": md_version, "frames": frames["frame_2"]}


@pytest.fixture(scope="module")
def target_profile(tmp_path_factory):
    """A second AiiDA configuration with one SQLite profile, made in its own process (the other machine)."""
    path = tmp_path_factory.mktemp("target-aiida")
    script = ("from aiida.manage.configuration import create_profile, get_config\n"
              "c = get_config(create=True)\n"
              f"create_profile(c, storage_backend='core.sqlite_dos', storage_config={{'filepath': {str(path / 'st')!r}}},"
              " name='target', email='target@localhost')\n"
              "c.set_default_profile('target'); c.store()\n")
    env = dict(os.environ, AIIDA_PATH=str(path))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return path


def _cli(*args):
    """``agi ARGS`` in this process (the source profile loaded)."""
    return CliRunner().invoke(main, [str(a) for a in args])


def _agi(*args, aiida_path, home):
    """``agi ARGS`` in a fresh process on the target machine's AiiDA configuration."""
    env = dict(os.environ, AIIDA_PATH=str(aiida_path), AGI_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "agi_data.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


LINKS = """
def incoming_links(uuids):
    \"\"\"Every incoming link of the nodes ``uuids`` as (type, label, source uuid, target uuid), in the loaded profile.\"\"\"
    from aiida import orm

    out = set()
    for uuid in uuids:
        for link in orm.load_node(uuid).base.links.get_incoming().all():
            out.add((link.link_type.value, link.link_label, link.node.uuid, uuid))
    return sorted(out)
"""
#: the same function, run in the target's configuration
TARGET_LINKS = LINKS + """
import json, sys
from aiida import load_profile
load_profile('target')
print(json.dumps(incoming_links(json.loads(sys.argv[1]))))
"""


def _links(uuids):
    namespace = {}
    exec(LINKS, namespace)
    return {tuple(x) for x in namespace["incoming_links"](uuids)}


def test_round_trip_between_two_profiles_and_two_stores(chain, target_profile, tmp_path):
    store = chain["store"]
    bundle = tmp_path / "result.agi.tar"
    res = _cli("archive", RESULT, "-o", bundle, "--store", chain["path"])
    assert res.exit_code == 0, res.output
    manifest = read_manifest(bundle)
    # the upstream run came along, with every version and the ones the nodes pin
    assert set(manifest["runs"]) == {RESULT, SEED}
    assert manifest["runs"][RESULT]["requested"] and not manifest["runs"][SEED]["requested"]
    assert chain["seed_version"] in manifest["runs"][SEED]["pinned"]
    assert {chain["md_version"], store.version(RESULT)} <= set(manifest["runs"][RESULT]["pinned"])
    assert manifest["runs"][RESULT]["versions"] == list(store.history(RESULT)["version"])
    processes = set(manifest["aiida"]["processes"])
    assert {chain["seed_md"].uuid, chain["result_md"].uuid, chain["batch"].uuid, chain["frames"].creator.uuid} \
        <= processes
    before = run_provenance(store, RESULT)
    names = {p["uuid"]: (p["type"], p["label"]) for s in before["sources"] for p in s["chain"]["processes"]}
    assert chain["seed_md"].uuid in names  # the source profile's own walk crosses into the seed run
    links = _links(processes)
    centres = store.wannier(RESULT).centres.values
    # every version but the repository's empty first commit
    frames = {(rid, v): store.trajectory(rid, version=v).positions.values
              for rid in (SEED, RESULT) for v in list(store.history(rid)["version"])[:-1]}

    # the other machine: the source store is gone from where the nodes recorded it
    moved = chain["path"].with_name("moved-away")
    chain["path"].rename(moved)
    try:
        target, home = tmp_path / "target-store", tmp_path / "home"
        res = _agi("unarchive", bundle, "--store", target, "--profile", "target", aiida_path=target_profile, home=home)
        assert res.returncode == 0, res.stderr
        assert f"run {RESULT}: copied to {target}" in res.stdout and f"run {SEED}: copied" in res.stdout
        assert not chain["path"].exists()  # nothing was written at the recorded path

        # frames: every version reads the same, the pinned ones and an older one included
        restored = open_store(target, create=False)
        assert list(restored.history(RESULT)["version"]) == manifest["runs"][RESULT]["versions"]
        for (rid, version), positions in frames.items():
            np.testing.assert_array_equal(restored.trajectory(rid, version=version).positions.values, positions)
        versions = manifest["runs"][RESULT]["versions"]
        older = versions[-2]  # the run's first version, pinned by nothing: it reads too (checked above)
        assert (RESULT, older) in frames and older not in manifest["runs"][RESULT]["pinned"]
        np.testing.assert_array_equal(restored.wannier(RESULT).centres.values, centres)
        np.testing.assert_array_equal(restored.wannier(RESULT).frame.values, [1, 3])

        # the nodes and every link between them are in the target profile
        check = subprocess.run([sys.executable, "-c", TARGET_LINKS, json.dumps(sorted(processes))],
                               env=dict(os.environ, AIIDA_PATH=str(target_profile)), capture_output=True, text=True,
                               timeout=300)
        assert check.returncode == 0, check.stderr
        assert {tuple(x) for x in json.loads(check.stdout)} == links

        # agi provenance in the target: the same processes, and the walk crosses into the restored seed run
        res = _agi("provenance", RESULT, "--store", target, "--profile", "target", "--json",
                   aiida_path=target_profile, home=home)
        assert res.returncode == 0, res.stderr
        after = json.loads(res.stdout)
        assert {p["uuid"]: (p["type"], p["label"]) for s in after["sources"] for p in s["chain"]["processes"]} == names
        (read,) = [r for s in after["sources"] for r in s["chain"]["store_reads"]]
        assert read["run_id"] == SEED and read["version"] == chain["seed_version"]
        assert read["writer_uuid"] == chain["seed_md"].uuid
        assert {"MDWorkChain", "molecular_dynamics", "frames_to_structures", "store_wannier_batch"} <= \
            {t for t, _ in names.values()}
    finally:
        moved.rename(chain["path"])


# ---------------------------------------------------------------- bad input
@pytest.fixture(scope="module")
def bundle(chain, tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle") / "seed.agi.tar"
    res = _cli("archive", SEED, "-o", out, "--store", chain["path"])
    assert res.exit_code == 0, res.output
    return out


def _fails(res, *needles):
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: "), res.output
    for needle in needles:
        assert needle in res.output, res.output


def _unarchive(bundle, store):
    return _cli("unarchive", bundle, "--store", store)


def _import_groups():
    return orm.QueryBuilder().append(orm.Group, filters={"type_string": "core.import"}).count()


def test_archive_refusals(chain, bundle, tmp_path):
    path = chain["path"]
    _fails(_cli("archive", "no-such-run", "-o", tmp_path / "x.tar", "--store", path),
           "no-such-run")
    _fails(_cli("archive", SEED, "-o", bundle, "--store", path), "exists")
    stranger = "0b1c2d3e-0000-4000-8000-000000000000"
    with chain["store"].create_run("elsewhere", ["Ag", "I"], np.eye(3) * 5, 0.01,
                                   attrs={"provenance_uuid": stranger}) as w:
        w.append(np.zeros((1, 2, 3)))
    _fails(_cli("archive", "elsewhere", "-o", tmp_path / "x.tar", "--store", path),
           stranger, "not in the loaded AiiDA profile")
    assert not (tmp_path / "x.tar").exists() and not list(tmp_path.glob(".x.tar*"))


def test_a_run_without_provenance_is_bundled_with_a_warning(chain, tmp_path):
    with chain["store"].create_run("imported", ["Ag", "I"], np.eye(3) * 5, 0.01) as w:
        w.append(np.ones((2, 2, 3)))
    res = _cli("archive", "imported", "-o", tmp_path / "i.tar", "--store", chain["path"])
    assert res.exit_code == 0, res.output
    assert "warning: run 'imported' records no AiiDA node" in res.output
    manifest = read_manifest(tmp_path / "i.tar")
    assert manifest["aiida"]["processes"] == [] and list(manifest["runs"]) == ["imported"]
    res = _unarchive(tmp_path / "i.tar", tmp_path / "other")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(open_store(tmp_path / "other").trajectory("imported").positions.values,
                                  np.ones((2, 2, 3)))


def _rewrite(bundle, out, change):
    """A copy of ``bundle`` with each member's bytes passed through ``change(name, data)``."""
    with tarfile.open(bundle) as src, tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            data = change(member.name, src.extractfile(member).read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_damaged_or_newer_bundles_write_nothing(bundle, tmp_path):
    groups = _import_groups()
    target = tmp_path / "target"
    flipped = _rewrite(bundle, tmp_path / "flipped.tar", lambda name, data: data if name == MANIFEST or
                       not name.startswith("store/runs/") or len(data) < 64 else data[:40] + bytes([data[40] ^ 1])
                       + data[41:])
    _fails(_unarchive(flipped, target), "checksum mismatch", "nothing was written")
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    _fails(_unarchive(truncated, target), "truncated or damaged")

    def newer(name, data):
        if name != MANIFEST:
            return data
        manifest = json.loads(data)
        manifest.update(format_version=FORMAT_VERSION + 1, agi_data_version="99.0")
        return json.dumps(manifest).encode()

    _fails(_unarchive(_rewrite(bundle, tmp_path / "newer.tar", newer), target), f"format {FORMAT_VERSION + 1}",
           "agi-data 99.0", "upgrade agi-data")
    not_a_bundle = tmp_path / "notes.tar"
    with tarfile.open(not_a_bundle, "w") as tar:
        info = tarfile.TarInfo(MANIFEST)
        data = json.dumps({"format": "something else"}).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _fails(_unarchive(not_a_bundle, target), FORMAT)
    assert not target.exists() and _import_groups() == groups


def test_unreachable_store_or_another_run_of_the_same_id_write_nothing(bundle, s3_url, tmp_path):
    groups = _import_groups()
    bucketless = s3_url.replace(s3_url.split("/")[2], "no-such-bucket")
    _fails(_unarchive(bundle, bucketless), "no-such-bucket", "does not exist")
    other = open_store(tmp_path / "other")
    with other.create_run(SEED, ["Ag", "I"], np.eye(3) * 5, 0.01) as w:
        w.append(np.zeros((1, 2, 3)))
    version = other.version(SEED)
    _fails(_unarchive(bundle, tmp_path / "other"), SEED, "another history")
    assert other.run_ids() == [SEED] and other.version(SEED) == version and _import_groups() == groups
    # an S3 store as the target: the runs arrive with their history
    res = _unarchive(bundle, s3_url)
    assert res.exit_code == 0, res.output
    remote = open_store(s3_url, create=False)
    assert list(remote.history(SEED)["version"]) == read_manifest(bundle)["runs"][SEED]["versions"]
    # a second restore is a no-op that says so
    res = _unarchive(bundle, s3_url)
    assert res.exit_code == 0, res.output
    assert f"run {SEED}: already in {remote.root} with the same history; left as it is" in res.output
