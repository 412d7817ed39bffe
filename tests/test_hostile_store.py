"""Hostile input to the store API and the ``agi store`` CLI: every case refused, nothing written.

Each case runs on a fresh copy of a small store (runs ``r``: float32 with
velocities and a Wannier set; ``r64``: float64; ``empty``: no frames yet)
beside its input files. Every case must

* be refused with an error of the expected class whose message names the
  problem (the regex),
* leave every file under the test's directory — the store and everything
  around it — byte-identical (paths, kinds, link targets and SHA-256 of the
  contents compared before and after),
* finish within the time limit (no wait is unbounded).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from agi_data.cli import main
from agi_data.store import (
    ImportFormatError,
    NotAStoreError,
    RunExistsError,
    RunLockedError,
    RunNotFoundError,
    StoreError,
    StoreValidationError,
    open_store,
)
from agi_data.store.io import export_extxyz, export_zarr, import_trajectory

pytestmark = pytest.mark.timeout(60)

N = 4
SPECIES = ["Ag", "Ag", "I", "I"]
CELL = np.eye(3) * 6.0


# ----------------------------------------------------------------------------- the template
def _xyz_frame(n_atoms: int, shift: float, count: str | None = None) -> str:
    lines = [count or str(n_atoms), 'Lattice="6 0 0 0 6 0 0 0 6" Properties=species:S:1:pos:R:3 pbc="T T T"']
    lines += [f"{'Ag' if i < 2 else 'I'} {1.0 + i + shift} 1.5 2.5" for i in range(n_atoms)]
    return "\n".join(lines) + "\n"


def _dump_frame(step: int, rows: list[str], cols: str = "id type x y z", n: int | None = None) -> str:
    return (f"ITEM: TIMESTEP\n{step}\nITEM: NUMBER OF ATOMS\n{len(rows) if n is None else n}\n"
            "ITEM: BOX BOUNDS pp pp pp\n0 6\n0 6\n0 6\n"
            f"ITEM: ATOMS {cols}\n" + "".join(r + "\n" for r in rows))


GOOD_ROWS = ["1 1 1.0 1.0 1.0", "2 1 2.0 2.0 2.0", "3 2 3.0 3.0 3.0", "4 2 4.0 4.0 4.0"]

INPUT_FILES = {
    "good.xyz": _xyz_frame(N, 0.0) + _xyz_frame(N, 0.1),
    "blank.xyz": _xyz_frame(N, 0.0) + "\n" + _xyz_frame(N, 0.1),
    "cut.xyz": (_xyz_frame(N, 0.0) + _xyz_frame(N, 0.1))[:-3],
    "huge.xyz": _xyz_frame(N, 0.0, count="1000000000000"),
    "notint.xyz": _xyz_frame(N, 0.0, count="four"),
    "short.xyz": _xyz_frame(N, 0.0) + "\n".join(_xyz_frame(N, 0.1).splitlines()[:-1]) + "\n",
    "ragged.xyz": _xyz_frame(N, 0.0).replace("I 4.0 1.5 2.5", "I 4.0 1.5"),
    "otheratoms.xyz": _xyz_frame(N, 0.0) + _xyz_frame(3, 0.1),
    "empty.xyz": "",
    "binary.xyz": "\x00\x01\x02garbage\n",
    "good.dump": _dump_frame(0, GOOD_ROWS) + _dump_frame(10, GOOD_ROWS),
    "cut.dump": (_dump_frame(0, GOOD_ROWS) + _dump_frame(10, GOOD_ROWS))[:-6],
    "fewrows.dump": _dump_frame(0, GOOD_ROWS) + _dump_frame(10, GOOD_ROWS[:3], n=4),
    "huge.dump": _dump_frame(0, GOOD_ROWS, n=10**12),
    "noid.dump": _dump_frame(0, [r.split(" ", 1)[1] for r in GOOD_ROWS], cols="type x y z"),
    "dupid.dump": _dump_frame(0, ["1 1 1 1 1", "1 1 2 2 2", "3 2 3 3 3", "4 2 4 4 4"]),
    "nan.dump": _dump_frame(0, ["1 1 nan 1 1", *GOOD_ROWS[1:]]),
    "word.dump": _dump_frame(0, ["1 1 one 1 1", *GOOD_ROWS[1:]]),
    "type3.dump": _dump_frame(0, ["1 3 1 1 1", *GOOD_ROWS[1:]]),
    "nopos.dump": _dump_frame(0, [r.rsplit(" ", 3)[0] for r in GOOD_ROWS], cols="id type"),
    "colchange.dump": _dump_frame(0, GOOD_ROWS) + _dump_frame(10, [r + " 0 0 0" for r in GOOD_ROWS],
                                                              cols="id type x y z vx vy vz"),
    "blankline.dump": _dump_frame(0, GOOD_ROWS) + "\n" + _dump_frame(10, GOOD_ROWS),
    "data.pdbx": "not a trajectory\n",
}


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("hostile-template")
    store = open_store(base / "store")
    rng = np.random.default_rng(3)
    with store.create_run("r", SPECIES, CELL, 0.01, attrs={"temperature_K": 750.0}) as w:
        x = rng.uniform(0, 6, (4, N, 3)).astype(np.float32)
        w.append(x, velocities=x * 0.5)
    store.add_wannier("r", [0, 2], rng.uniform(0, 6, (2, 3, 3)), attrs={"provenance_uuid": "u"})
    with store.create_run("r64", SPECIES, CELL, 0.01) as w:
        w.append(rng.uniform(0, 6, (3, N, 3)))
    store.create_run("empty", SPECIES, CELL, 0.01).close()
    for name, text in INPUT_FILES.items():
        (base / name).write_text(text)
    (base / "exported.xyz").write_text("already here\n")
    (base / "dangling.xyz").symlink_to(base / "nowhere" / "target.xyz")
    (base / "linkdir").symlink_to(base)
    (base / "notastore").mkdir()
    (base / "notastore" / "something.txt").write_text("mine\n")
    (base / "emptydir").mkdir()
    for name, content in {"m-list": b"[]", "m-null": b"null", "m-bytes": b"\xff\xfe\x00garbage",
                          "m-other": b'{"format": "something else"}',
                          "m-future": b'{"format": "agi-data store", "schema_version": 99}',
                          "m-schema-str": b'{"format": "agi-data store", "schema_version": "1"}'}.items():
        (base / name).mkdir()
        (base / name / "agi-store.json").write_bytes(content)
    (base / "m-dir").mkdir()
    (base / "m-dir" / "agi-store.json").mkdir()
    (base / "afile").write_text("a file, not a store\n")
    return base


class Ctx:
    def __init__(self, base: Path):
        self.base = base
        self.root = base / "store"
        self.store = open_store(self.root, create=False, lock_timeout_s=2)

    def file(self, name: str) -> Path:
        return self.base / name


@pytest.fixture
def ctx(template, tmp_path) -> Ctx:
    base = tmp_path / "case"
    shutil.copytree(template, base, symlinks=True)
    return Ctx(base)


def snapshot(base: Path) -> dict[str, str]:
    """Every path under ``base`` with its kind and content hash (link targets for links)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(base))
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = "file:" + hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def assert_unchanged(before: dict, after: dict) -> None:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), f"files changed: added {added[:5]}, removed {removed[:5]}, changed {changed[:5]}"


# ----------------------------------------------------------------------------- API cases
def pos(n=2, dtype=np.float32, value=1.0):
    return np.full((n, N, 3), value, dtype=dtype)


def create(run_id="new", species=SPECIES, cell=CELL, dt=0.01, **kw):
    return lambda c: c.store.create_run(run_id, species, cell, dt, **kw)


def append_to(run_id, *args, **kw):
    def act(c):
        with c.store.open_run(run_id) as w:
            w.append(*args, **kw)
    return act


def wannier(frames, centres, spreads=None, run_id="r", **kw):
    return lambda c: c.store.add_wannier(run_id, np.asarray(frames), centres, spreads, **kw)


def do_import(name, run_id="imp", **kw):
    kw.setdefault("timestep_ps", 0.01)
    return lambda c: import_trajectory(c.store, c.file(name), run_id, **kw)


def circular():
    d = {}
    d["self"] = d
    return d


BAD_IDS = ["", "a/b", "../escape", "/abs/path", "run\n", "run\r", "a b", ".hidden", "-dash", "a" * 129, "a..b",
           "R@commit", "caf\u00e9", "tab\there", "nul\x00byte", "x/../../y"]

API_CASES = [
    # names: every method refuses an unsafe id before touching any file
    *[(f"create-id-{i}", create(run_id=bad), StoreValidationError, "invalid run id") for i, bad in enumerate(BAD_IDS)],
    ("create-id-none", create(run_id=None), StoreValidationError, "invalid run id"),
    ("create-id-int", create(run_id=5), StoreValidationError, "invalid run id"),
    ("create-id-bytes", create(run_id=b"run"), StoreValidationError, "invalid run id"),
    ("open-run-abs", lambda c: c.store.open_run(str(c.base / "outside")), StoreValidationError, "invalid run id"),
    ("add-wannier-abs", lambda c: c.store.add_wannier(str(c.base / "outside"), [0], np.zeros((1, 1, 3))),
     StoreValidationError, "invalid run id"),
    ("delete-dotdot", lambda c: c.store.delete_run("../store"), StoreValidationError, "invalid run id"),
    ("set-attrs-newline", lambda c: c.store.set_attrs("r\n", x=1), StoreValidationError, "invalid run id"),
    ("trajectory-dotdot", lambda c: c.store.trajectory("../../etc"), StoreValidationError, "invalid run id"),
    ("version-slash", lambda c: c.store.version("r/x"), StoreValidationError, "invalid run id"),
    ("history-newline", lambda c: c.store.history("r\n"), StoreValidationError, "invalid run id"),
    ("attrs-dotdot", lambda c: c.store.attrs(".."), StoreValidationError, "invalid run id"),
    ("wannier-abs", lambda c: c.store.wannier("/tmp/x"), StoreValidationError, "invalid run id"),
    ("ref-space", lambda c: c.store.ref("a b"), StoreValidationError, "invalid run id"),
    ("open-missing", lambda c: c.store.open_run("nope"), RunNotFoundError, "no run 'nope'"),
    ("wannier-missing-run", wannier([0], np.zeros((1, 1, 3)), run_id="nope"), RunNotFoundError, "no run 'nope'"),
    ("delete-missing", lambda c: c.store.delete_run("nope"), RunNotFoundError, "no run 'nope'"),
    ("create-existing", create(run_id="r"), RunExistsError, "already exists"),
    # species
    ("species-empty", create(species=[]), StoreValidationError, "species is empty"),
    ("species-string", create(species="AgAgII"), StoreValidationError, "the string"),
    ("species-unknown", create(species=["Ag", "Xx", "I", "I"]), StoreValidationError, "Xx"),
    ("species-zero", create(species=[0, 47, 53, 53]), StoreValidationError, "0"),
    ("species-bool", create(species=[True, 47, 53, 53]), StoreValidationError, "no booleans or floats"),
    ("species-float", create(species=[47.5, 47, 53, 53]), StoreValidationError, "no booleans or floats"),
    ("species-none", create(species=None), StoreValidationError, "species must be a sequence"),
    # cell
    ("cell-shape", create(cell=np.eye(2)), StoreValidationError, r"cell must have shape \(3, 3\)"),
    ("cell-singular", create(cell=np.zeros((3, 3))), StoreValidationError, "singular"),
    ("cell-nan", create(cell=np.full((3, 3), np.nan)), StoreValidationError, "NaN or inf"),
    ("cell-inf", create(cell=np.diag([np.inf, 1, 1])), StoreValidationError, "NaN or inf"),
    ("cell-strings", create(cell=[["a"] * 3] * 3), StoreValidationError, "real numeric array"),
    ("cell-bool", create(cell=np.eye(3, dtype=bool)), StoreValidationError, "real numeric array"),
    # timestep
    ("dt-zero", create(dt=0), StoreValidationError, "timestep_ps must be a finite number of ps"),
    ("dt-negative", create(dt=-0.01), StoreValidationError, "timestep_ps must be a finite number of ps"),
    ("dt-nan", create(dt=float("nan")), StoreValidationError, "timestep_ps must be a finite number of ps"),
    ("dt-inf", create(dt=float("inf")), StoreValidationError, "timestep_ps must be a finite number of ps"),
    ("dt-bool", create(dt=True), StoreValidationError, "timestep_ps must be a real number"),
    ("dt-denormal", create(dt=1e-320), StoreValidationError, "timestep_ps must be a finite number of ps"),
    ("dt-string", create(dt="0.01"), StoreValidationError, "timestep_ps must be a real number"),
    ("dt-none", create(dt=None), StoreValidationError, "timestep_ps must be a real number"),
    ("dt-huge", create(dt=1e12), StoreValidationError, "timestep_ps must be a finite number of ps"),
    # attrs
    ("attrs-object", create(attrs={"x": object()}), StoreValidationError, "JSON-serialisable"),
    ("attrs-layout", create(attrs={"layout": {}}), StoreValidationError, "reserved keys"),
    ("attrs-time-origin", create(attrs={"time_origin_ps": 5.0}), StoreValidationError, "reserved keys"),
    ("attrs-units", create(attrs={"units": {}}), StoreValidationError, "reserved keys"),
    ("attrs-int-key", create(attrs={1: 2}), StoreValidationError, "keys must be non-empty strings"),
    ("attrs-circular", create(attrs=circular()), StoreValidationError, "JSON-serialisable"),
    ("attrs-huge", create(attrs={"blob": "x" * (2 << 20)}), StoreValidationError, "keep them under"),
    ("attrs-list", create(attrs=[1, 2]), StoreValidationError, "attrs must be a dict"),
    # chunk sizes
    ("chunk-zero", create(chunk_frames=0), StoreValidationError, "chunk_frames must be between"),
    ("chunk-negative", create(chunk_atoms=-1), StoreValidationError, "chunk_atoms must be between"),
    ("chunk-huge", create(chunk_frames=10**9), StoreValidationError, "chunk_frames must be between"),
    ("chunk-float", create(chunk_frames=2.5), StoreValidationError, "chunk_frames must be an integer"),
    ("chunk-bool", create(chunk_frames=True), StoreValidationError, "chunk_frames must be an integer"),
    ("chunk-string", create(chunk_frames="128"), StoreValidationError, "chunk_frames must be an integer"),
    ("chunk-bytes", create(chunk_frames=2**20, chunk_atoms=4), StoreValidationError, "MiB"),
    # appends
    ("append-shape", append_to("r", np.zeros((2, N + 1, 3), np.float32), velocities=pos()), StoreValidationError,
     "must have shape"),
    ("append-no-frames", append_to("r", np.zeros((0, N, 3), np.float32), velocities=np.zeros((0, N, 3))),
     StoreValidationError, "n_frames ≥ 1"),
    ("append-nan", append_to("r", pos(value=np.nan), velocities=pos()), StoreValidationError, "NaN or inf"),
    ("append-inf-velocity", append_to("r", pos(), velocities=pos(value=np.inf)), StoreValidationError, "NaN or inf"),
    ("append-overflow-float32", append_to("r", pos(dtype=np.float64, value=1e39), velocities=pos()),
     StoreValidationError, "NaN or inf as float32"),
    ("append-bool", append_to("r", np.ones((2, N, 3), bool), velocities=pos()), StoreValidationError,
     "real numeric array"),
    ("append-complex", append_to("r", pos().astype(complex), velocities=pos()), StoreValidationError,
     "real numeric array"),
    ("append-strings", append_to("r", np.full((2, N, 3), "1"), velocities=pos()), StoreValidationError,
     "real numeric array"),
    ("append-object", append_to("r", np.array([[None] * 3] * N)[None]), StoreValidationError, "real numeric array"),
    ("append-float16-first", append_to("empty", pos(dtype=np.float16)), StoreValidationError, "float32 or float64"),
    ("append-float16-later", append_to("r", pos(dtype=np.float16), velocities=pos()), StoreValidationError,
     "float32 or float64"),
    ("append-mixed-dtypes", append_to("empty", pos(dtype=np.float32), velocities=pos(dtype=np.float64)),
     StoreValidationError, "one floating dtype"),
    ("append-lacks-velocities", append_to("r", pos()), StoreValidationError, r"lacks \['velocities'\]"),
    ("append-adds-forces", append_to("r", pos(), velocities=pos(), forces=pos()), StoreValidationError,
     r"adds \['forces'\]"),
    ("append-velocity-frames", append_to("r", pos(2), velocities=pos(3)), StoreValidationError, "has 3 frames"),
    ("append-energies-length", append_to("r64", pos(dtype=np.float64), energies=np.zeros(3)), StoreValidationError,
     "energies must have shape"),
    ("append-energies-nan", append_to("empty", pos(), energies=[np.nan, 0.0]), StoreValidationError, "NaN or inf"),
    ("append-cell-singular", append_to("r64", pos(dtype=np.float64), cell=np.zeros((2, 3, 3))),
     StoreValidationError, "singular"),
    ("append-cell-shape", append_to("r64", pos(dtype=np.float64), cell=np.eye(3)), StoreValidationError,
     "cell \\(per frame\\) must have shape"),
    # Wannier centres
    ("wannier-frame-outside", wannier([7], np.zeros((1, 3, 3))), StoreValidationError, r"frames \[7\] do not exist"),
    ("wannier-frame-negative", wannier([-1], np.zeros((1, 3, 3))), StoreValidationError, "do not exist"),
    ("wannier-frame-twice", wannier([1, 1], np.zeros((2, 3, 3))), StoreValidationError, "same frame twice"),
    ("wannier-frame-stored", wannier([0], np.zeros((1, 3, 3))), StoreValidationError, "already has Wannier centres"),
    ("wannier-frame-float", wannier([0.5], np.zeros((1, 3, 3))), StoreValidationError, "integer frame indices"),
    ("wannier-centres-shape", wannier([1], np.zeros((1, 3, 2))), StoreValidationError, "centres must have shape"),
    ("wannier-centres-nan", wannier([1], np.full((1, 3, 3), np.nan)), StoreValidationError, "NaN or inf"),
    ("wannier-count-mismatch", wannier([1], np.zeros((1, 4, 3))), StoreValidationError, "stores 3 centres"),
    ("wannier-spreads-shape", wannier([1], np.zeros((1, 3, 3)), np.zeros((1, 2))), StoreValidationError,
     "spreads must have shape"),
    ("wannier-attrs-reserved", wannier([1], np.zeros((1, 3, 3)), attrs={"run_id": "x"}), StoreValidationError,
     "reserved keys"),
    # set_attrs
    ("set-attrs-layout", lambda c: c.store.set_attrs("r", layout={}), StoreValidationError, "reserved keys"),
    ("set-attrs-time-origin", lambda c: c.store.set_attrs("r", time_origin_ps=3.0), StoreValidationError,
     "reserved keys"),
    ("set-attrs-object", lambda c: c.store.set_attrs("r", x=object()), StoreValidationError, "JSON-serialisable"),
    ("set-attrs-bad-group", lambda c: c.store.set_attrs("r", group="bogus", x=1), StoreValidationError,
     "group must be None"),
    ("set-attrs-nothing", lambda c: c.store.set_attrs("r"), StoreValidationError, "at least one key"),
    ("set-attrs-no-wannier", lambda c: c.store.set_attrs("r64", group="wannier", x=1), StoreValidationError,
     "no 'wannier' group"),
    # versions
    ("trajectory-bad-version", lambda c: c.store.trajectory("r", version="NOSUCHVERSION"), StoreValidationError,
     "has no version"),
    ("attrs-bad-version", lambda c: c.store.attrs("r", version="0" * 20), StoreValidationError, "has no version"),
    # locks: a second writer is refused at once, naming the holder
    ("second-writer", lambda c: _with_writer(c, lambda: c.store.open_run("r")), RunLockedError,
     f"held by another writer: pid {os.getpid()} on "),
    ("delete-while-writing", lambda c: _with_writer(c, lambda: c.store.delete_run("r")), RunLockedError,
     f"pid {os.getpid()}"),
    # opening stores
    ("open-file", lambda c: open_store(c.file("afile")), NotAStoreError, "is a file"),
    ("open-foreign-dir", lambda c: open_store(c.file("notastore")), NotAStoreError, "not an agi-data store"),
    ("marker-list", lambda c: open_store(c.file("m-list")), NotAStoreError, "holds list"),
    ("marker-null", lambda c: open_store(c.file("m-null")), NotAStoreError, "holds NoneType"),
    ("marker-bytes", lambda c: open_store(c.file("m-bytes")), NotAStoreError, "unreadable"),
    ("marker-other-format", lambda c: open_store(c.file("m-other")), NotAStoreError, "something else"),
    ("marker-future", lambda c: open_store(c.file("m-future")), NotAStoreError, "upgrade agi-data"),
    ("marker-schema-string", lambda c: open_store(c.file("m-schema-str")), NotAStoreError, "not an integer"),
    ("marker-directory", lambda c: open_store(c.file("m-dir")), NotAStoreError, "not a regular file"),
    ("readonly-open-missing", lambda c: open_store(c.file("typo"), create=False), NotAStoreError,
     "no agi-data store"),
    ("readonly-open-empty", lambda c: open_store(c.file("emptydir"), create=False), NotAStoreError,
     "no agi-data store"),
    # imports
    ("import-blank-line", do_import("blank.xyz"), ImportFormatError, "blank line 7"),
    ("import-cut-number", do_import("cut.xyz"), ImportFormatError, "no final newline"),
    ("import-huge-count", do_import("huge.xyz"), ImportFormatError, "declares 1000000000000 atoms"),
    ("import-count-word", do_import("notint.xyz"), ImportFormatError, "expected the atom count"),
    ("import-short-frame", do_import("short.xyz"), ImportFormatError, "declares 4 atoms but has 3"),
    ("import-ragged", do_import("ragged.xyz"), ImportFormatError, "columns"),
    ("import-other-atoms", do_import("otheratoms.xyz"), ImportFormatError, "different atoms"),
    ("import-empty", do_import("empty.xyz"), ImportFormatError, "holds no frames"),
    ("import-binary", do_import("binary.xyz"), ImportFormatError, "expected the atom count"),
    ("import-existing-run", do_import("good.xyz", run_id="r"), RunExistsError, "already exists"),
    ("import-bad-id", do_import("good.xyz", run_id="bad\n"), StoreValidationError, "invalid run id"),
    ("import-bad-timestep", do_import("good.xyz", timestep_ps=0), StoreValidationError, "timestep_ps"),
    ("import-reserved-attrs", do_import("good.xyz", attrs={"layout": 1}), StoreValidationError, "reserved keys"),
    ("import-missing-file", do_import("nothere.xyz"), ImportFormatError, "no such file"),
    ("import-directory", do_import("emptydir", fmt="extxyz"), ImportFormatError, "not a regular file"),
    ("import-unknown-extension", do_import("data.pdbx"), ImportFormatError, "cannot tell the format"),
    ("import-unknown-format", do_import("good.xyz", fmt="pdb"), ImportFormatError, "unknown format"),
    ("import-units-for-xyz", do_import("good.xyz", units="metal"), StoreValidationError, "LAMMPS dumps only"),
    ("dump-no-type-map", do_import("good.dump", units="metal"), StoreValidationError, "type map"),
    ("dump-no-units", do_import("good.dump", type_map={1: "Ag", 2: "I"}), StoreValidationError,
     "does not record its units"),
    ("dump-bad-units", do_import("good.dump", type_map={1: "Ag", 2: "I"}, units="lj"), StoreValidationError,
     "unit style"),
    *[(f"dump-{name.split('.')[0]}", do_import(name, type_map={1: "Ag", 2: "I"}, units="metal"), ImportFormatError, m)
      for name, m in [("cut.dump", "no final newline"), ("fewrows.dump", "ends after line"),
                      ("huge.dump", "declares 1000000000000 atoms"), ("noid.dump", "no 'id' column"),
                      ("dupid.dump", "atom id twice"), ("nan.dump", "NaN or inf"), ("word.dump", "non-number"),
                      ("type3.dump", "atom type 3 is not in the type map"), ("nopos.dump", "has no positions"),
                      ("colchange.dump", "columns changed"), ("blankline.dump", "a blank or stray line")]],
    # exports
    ("export-existing", lambda c: export_extxyz(c.store, "r", c.file("exported.xyz")), StoreValidationError,
     "exists \\(a file\\)"),
    ("export-dangling-link", lambda c: export_extxyz(c.store, "r", c.file("dangling.xyz")), StoreValidationError,
     "a symbolic link"),
    ("export-zarr-onto-link", lambda c: export_zarr(c.store, "r", c.file("linkdir")), StoreValidationError,
     "a symbolic link"),
    ("export-missing-dir", lambda c: export_extxyz(c.store, "r", c.file("no/such/dir/out.xyz")), StoreValidationError,
     "does not exist"),
    ("export-zarr-missing-dir", lambda c: export_zarr(c.store, "r", c.file("no/such/out.zarr")), StoreValidationError,
     "does not exist"),
    ("export-missing-run", lambda c: export_extxyz(c.store, "nope", c.file("fresh.xyz")), RunNotFoundError,
     "no run 'nope'"),
]


def _with_writer(c: Ctx, action):
    with c.store.open_run("r"):
        before = snapshot(c.base)
        try:
            action()
        finally:
            assert snapshot(c.base) == before


@pytest.mark.parametrize("action,error,match", [pytest.param(*case[1:], id=case[0]) for case in API_CASES])
def test_api_refuses_and_writes_nothing(ctx, action, error, match):
    before = snapshot(ctx.base)
    with pytest.raises(error, match=match):
        action(ctx)
    assert_unchanged(before, snapshot(ctx.base))


# ----------------------------------------------------------------------------- CLI cases
def _args(c: Ctx, argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        out.append(str(c.file(a[1:])) if a.startswith("@") else a)
    return out


S = ["--store", "@store"]
CLI_CASES = [
    ("ls-typo", ["store", "ls", "--store", "@typo"], "no agi-data store"),
    ("ls-foreign", ["store", "ls", "--store", "@notastore"], "not an agi-data store"),
    ("ls-marker-list", ["store", "ls", "--store", "@m-list"], "holds list"),
    ("ls-marker-bytes", ["store", "ls", "--store", "@m-bytes"], "unreadable"),
    ("verify-typo", ["store", "verify", "--store", "@typo"], "no agi-data store"),
    ("verify-empty-dir", ["store", "verify", "--store", "@emptydir"], "no agi-data store"),
    ("show-typo-store", ["store", "show", "r", "--store", "@typo"], "no agi-data store"),
    ("show-missing-run", ["store", "show", "nope", *S], "no run 'nope'"),
    ("show-bad-id", ["store", "show", "../x", *S], "invalid run id"),
    ("show-bad-version", ["store", "show", "r", "--version", "BOGUS", *S], "has no version"),
    ("export-typo-store", ["store", "export", "r", "@out.xyz", "--store", "@typo"], "no agi-data store"),
    ("export-existing", ["store", "export", "r", "@exported.xyz", *S], "exists"),
    ("export-dangling-link", ["store", "export", "r", "@dangling.xyz", *S], "symbolic link"),
    ("export-missing-dir", ["store", "export", "r", "@nodir/out.xyz", *S], "does not exist"),
    ("export-missing-run", ["store", "export", "nope", "@out.xyz", *S], "no run 'nope'"),
    ("import-temperature-nan", ["store", "import", "@good.xyz", "t", "--timestep-ps", "0.01", "--temperature", "nan",
                                *S], "finite number of K"),
    ("import-temperature-negative", ["store", "import", "@good.xyz", "t", "--timestep-ps", "0.01", "--temperature",
                                     "-5", *S], "finite number of K"),
    ("import-timestep-zero", ["store", "import", "@good.xyz", "t", "--timestep-ps", "0", *S], "timestep_ps"),
    ("import-bad-id", ["store", "import", "@good.xyz", "a b", "--timestep-ps", "0.01", *S], "invalid run id"),
    ("import-bad-id-no-store", ["store", "import", "@good.xyz", "a/b", "--timestep-ps", "0.01", "--store", "@newstore"],
     "invalid run id"),
    ("import-existing", ["store", "import", "@good.xyz", "r", "--timestep-ps", "0.01", *S], "already exists"),
    ("import-blank-line", ["store", "import", "@blank.xyz", "t", "--timestep-ps", "0.01", *S], "blank line"),
    ("import-dump-no-units", ["store", "import", "@good.dump", "t", "--timestep-ps", "0.01", "--type-map", "1=Ag,2=I",
                              *S], "does not record its units"),
    ("import-bad-type-map", ["store", "import", "@good.dump", "t", "--timestep-ps", "0.01", "--type-map", "1:Ag",
                             "--units", "metal", *S], "bad type map entry"),
    ("import-missing-file", ["store", "import", "@none.xyz", "t", "--timestep-ps", "0.01", *S], "no such file"),
    ("import-missing-file-no-store", ["store", "import", "@none.xyz", "t", "--timestep-ps", "0.01",
                                      "--store", "@newstore"], "no such file"),
    ("import-dump-no-units-no-store", ["store", "import", "@good.dump", "t", "--timestep-ps", "0.01", "--type-map",
                                       "1=Ag,2=I", "--store", "@newstore"], "does not record its units"),
    ("rm-missing", ["store", "rm", "nope", "--yes", *S], "no run 'nope'"),
    ("rm-bad-id", ["store", "rm", "../store", "--yes", *S], "invalid run id"),
    ("rm-not-confirmed", ["store", "rm", "r", *S], "not removed"),
    ("rm-typo-store", ["store", "rm", "r", "--yes", "--store", "@typo"], "no agi-data store"),
]


@pytest.mark.parametrize("argv,match", [pytest.param(*case[1:], id=case[0]) for case in CLI_CASES])
def test_cli_refuses_and_writes_nothing(ctx, argv, match):
    before = snapshot(ctx.base)
    result = CliRunner().invoke(main, _args(ctx, argv), input="n\n")
    assert result.exit_code != 0, result.output
    assert match in result.output, result.output
    assert "Traceback" not in result.output and result.exception is None or isinstance(result.exception, SystemExit)
    assert_unchanged(before, snapshot(ctx.base))


def test_the_cases_are_many_and_distinct():
    ids = [f"api-{c[0]}" for c in API_CASES] + [f"cli-{c[0]}" for c in CLI_CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 85, len(ids)


def test_the_template_itself_is_healthy(template):
    from agi_data.store.verify import verify_store

    store = open_store(template / "store", create=False)
    report = verify_store(store)
    assert report.ok and report.runs == 3, report.problems
    assert json.loads((template / "store" / "agi-store.json").read_text())["format"] == "agi-data store"
    assert not isinstance(StoreError, type(None))
