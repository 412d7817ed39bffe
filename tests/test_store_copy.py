"""Copying runs between a local store and a store on S3 (moto on loopback), history intact."""

from __future__ import annotations

import numpy as np
import pytest

from agi_data.store import RunExistsError, open_store
from agi_data.store.copy import copy_run

pytest_plugins = ["s3server"]

CELL = np.eye(3) * 8.0


def _make(store, rng, run_id="laptop-run"):
    """A run with three trajectory versions, a Wannier set and attrs; returns its versions and data."""
    data = rng.normal(size=(9, 4, 3))
    versions = []
    with store.create_run(run_id, ["Ag", "Ag", "I", "I"], CELL, 0.01, attrs={"temperature_K": 700.0}) as w:
        for i in range(0, 9, 3):
            versions.append(w.append(data[i:i + 3], velocities=-data[i:i + 3]))
    store.add_wannier(run_id, [1, 4], rng.normal(size=(2, 5, 3)))
    store.set_attrs(run_id, provenance_uuid="0123-abcd")
    return versions, data


@pytest.mark.parametrize("direction", ["local to s3", "s3 to local"])
def test_copy_keeps_every_version(direction, tmp_path, s3_url, rng):
    local = open_store(tmp_path / "laptop")
    remote = open_store(s3_url)
    source, dest = (local, remote) if direction == "local to s3" else (remote, local)
    versions, data = _make(source, rng)
    head = source.version("laptop-run")
    moved = []
    assert copy_run(source, "laptop-run", dest, progress=moved.append) == head  # the same version ids
    assert sum(moved) > 0
    assert list(dest.history("laptop-run")["version"]) == list(source.history("laptop-run")["version"])
    # an old version, pinned before the later appends, reads the same frames at the destination
    old = dest.trajectory("laptop-run", version=versions[0])
    np.testing.assert_array_equal(old.positions.values, data[:3])
    np.testing.assert_array_equal(dest.trajectory("laptop-run", version=versions[1]).velocities.values, -data[:6])
    now = dest.trajectory("laptop-run")
    np.testing.assert_array_equal(now.positions.values, data)
    assert now.attrs["provenance_uuid"] == "0123-abcd" and now.attrs["temperature_K"] == 700.0
    np.testing.assert_array_equal(dest.wannier("laptop-run").centres.values, source.wannier("laptop-run").centres.values)
    # the copy is a run like any other: it takes appends; the source is untouched
    with dest.open_run("laptop-run") as w:
        w.append(data[:1], velocities=-data[:1])
    assert dest.trajectory("laptop-run").sizes["time"] == 10
    assert source.trajectory("laptop-run").sizes["time"] == 9 and source.version("laptop-run") == head


def test_copy_back_and_forth_and_refusals(tmp_path, s3_url, rng):
    laptop = open_store(tmp_path / "laptop")
    shared = open_store(s3_url)
    versions, data = _make(laptop, rng)
    copy_run(laptop, "laptop-run", shared)
    before = shared.version("laptop-run")
    with pytest.raises(RunExistsError, match="already exists"):
        copy_run(laptop, "laptop-run", shared)
    assert shared.version("laptop-run") == before
    back = open_store(tmp_path / "other-laptop")
    copy_run(shared, "laptop-run", back)
    np.testing.assert_array_equal(back.trajectory("laptop-run", version=versions[0]).positions.values, data[:3])
    assert back.run_ids() == ["laptop-run"]
    assert [p.name for p in (tmp_path / "other-laptop" / "runs").iterdir()] == ["laptop-run"]  # no staging debris
