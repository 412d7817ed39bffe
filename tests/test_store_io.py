"""Import and export: extxyz, ASE .traj, LAMMPS dumps, plain Zarr; the `agi store` commands."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from click.testing import CliRunner

from agi_data import open_store
from agi_data.cli import main
from agi_data.store import ImportFormatError, StoreValidationError
from agi_data.store.io import export_extxyz, export_zarr, import_trajectory


@pytest.fixture
def ase_frames(rng):
    frames = []
    for i in range(6):
        a = Atoms("Ag2I2", positions=rng.random((4, 3)) * 5, cell=np.eye(3) * 5.07, pbc=True)
        a.set_velocities(rng.normal(size=(4, 3)) * 0.01)
        a.calc = SinglePointCalculator(a, energy=-1.5 * i, forces=rng.normal(size=(4, 3)))
        frames.append(a)
    return frames


@pytest.mark.parametrize("suffix", [".xyz", ".traj"])
def test_import_then_export_round_trips(tmp_path, ase_frames, suffix):
    src = tmp_path / f"in{suffix}"
    write(src, ase_frames)
    store = open_store(tmp_path / "s")
    assert import_trajectory(store, src, "imp", timestep_ps=0.005, batch=4) == 6
    ds = store.trajectory("imp")
    np.testing.assert_allclose(ds.positions.values, [a.positions for a in ase_frames], atol=1e-7)
    np.testing.assert_allclose(ds.energies.values, [a.get_potential_energy() for a in ase_frames])
    np.testing.assert_allclose(ds.forces.values, [a.get_forces() for a in ase_frames], atol=1e-7)
    # velocities arrive in Å/ps: ASE's unit is Å/(Å·sqrt(u/eV)) = 1/0.0982 Å/fs
    np.testing.assert_allclose(ds.velocities.values, [a.get_velocities() * 98.22694788464063 for a in ase_frames], rtol=1e-6, atol=1e-6)
    out = tmp_path / "out.xyz"
    export_extxyz(store, "imp", out)
    back = open_store(tmp_path / "s2")
    import_trajectory(back, out, "again", timestep_ps=0.005)
    again = back.trajectory("again")
    for var in ("positions", "velocities", "forces", "energies", "cell"):
        np.testing.assert_allclose(again[var].values, ds[var].values, rtol=1e-6, atol=1e-6)


def test_truncated_or_malformed_import_writes_nothing(tmp_path, ase_frames):
    src = tmp_path / "t.xyz"
    write(src, ase_frames)
    lines = src.read_text().splitlines()
    (tmp_path / "trunc.xyz").write_text("\n".join(lines[:-2]) + "\n")
    (tmp_path / "junk.xyz").write_text("this is not\nan xyz file\n")
    store = open_store(tmp_path / "s")
    with pytest.raises(ImportFormatError, match="frame 5 declares 4 atoms but has 2 atom lines"):
        import_trajectory(store, tmp_path / "trunc.xyz", "t", timestep_ps=0.01, batch=2)
    with pytest.raises(ImportFormatError, match="expected the atom count of frame 0"):
        import_trajectory(store, tmp_path / "junk.xyz", "j", timestep_ps=0.01)
    with pytest.raises(ImportFormatError, match="format"):
        import_trajectory(store, src.with_suffix(".pdbx"), "p", timestep_ps=0.01) if src.with_suffix(".pdbx").touch() is None else None
    assert store.run_ids() == []


def test_lammps_dump_with_type_map(tmp_path):
    dump = tmp_path / "md.dump"
    frames = []
    for step, shift in ((0, 0.0), (10, 0.5)):
        frames.append(f"""ITEM: TIMESTEP
{step}
ITEM: NUMBER OF ATOMS
2
ITEM: BOX BOUNDS pp pp pp
0 5.07
0 5.07
0 5.07
ITEM: ATOMS id type x y z vx vy vz
1 1 {1.0 + shift} 1.0 1.0 1.5 0 0
2 2 3.0 3.0 3.0 0 -2.0 0
""")
    dump.write_text("".join(frames))
    store = open_store(tmp_path / "s")
    with pytest.raises(StoreValidationError, match="type map"):
        import_trajectory(store, dump, "l", timestep_ps=0.01, units="metal")
    with pytest.raises(StoreValidationError, match="does not record its units"):
        import_trajectory(store, dump, "l", timestep_ps=0.01, type_map={1: "Ag", 2: "I"})
    import_trajectory(store, dump, "l", timestep_ps=0.01, type_map={1: "Ag", 2: "I"}, units="metal")
    ds = store.trajectory("l")
    assert ds.symbol.values.tolist() == ["Ag", "I"]
    np.testing.assert_allclose(ds.positions.values[:, 0, 0], [1.0, 1.5])
    np.testing.assert_allclose(ds.velocities.values[0], [[1.5, 0, 0], [0, -2.0, 0]], rtol=1e-6)  # metal units: Å/ps
    np.testing.assert_allclose(ds.cell.values[0], np.eye(3) * 5.07)
    assert "energies" not in ds  # a dump has no energies: none stored, not 0.0 eV
    assert ds.attrs["source_units"].startswith("LAMMPS metal") and ds.attrs["positions_wrapped"] is True


def test_plain_zarr_export_opens_without_agi_data(tmp_path, rng):
    store = open_store(tmp_path / "s")
    with store.create_run("z", ["Ag", "I"], np.eye(3) * 6, 0.01, attrs={"temperature_K": 700.0}) as w:
        w.append(rng.normal(size=(9, 2, 3)), velocities=rng.normal(size=(9, 2, 3)))
    store.add_wannier("z", [1, 4], rng.normal(size=(2, 9, 3)))
    out = export_zarr(store, "z", tmp_path / "plain.zarr")
    code = (
        "import sys, xarray as xr; "
        "assert 'agi_data' not in sys.modules; "
        f"ds = xr.open_zarr({str(out)!r}); w = xr.open_zarr({str(out)!r}, group='wannier'); "
        "print(ds.positions.shape, float(ds.positions.sum()), ds.attrs['temperature_K'], w.centres.shape)"
    )
    got = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    ds = store.trajectory("z")
    assert got[:3] == ["(9,", "2,", "3)"]
    assert float(got[3]) == pytest.approx(float(ds.positions.sum()))
    assert float(got[4]) == 700.0 and got[5:] == ["(2,", "9,", "3)"]
    plain = xr.open_zarr(out)
    np.testing.assert_array_equal(plain.velocities.values, ds.velocities.values)
    with pytest.raises(StoreValidationError, match="exists"):
        export_zarr(store, "z", out)


def test_cli_store_commands(tmp_path, ase_frames):
    src = tmp_path / "in.xyz"
    write(src, ase_frames)
    runner = CliRunner()
    s = ["--store", str(tmp_path / "s")]
    r = runner.invoke(main, ["store", "import", str(src), "cli-run", "--timestep-ps", "0.01", "--temperature", "750", *s])
    assert r.exit_code == 0, r.output
    assert "imported 6 frames" in r.output
    r = runner.invoke(main, ["store", "ls", *s])
    assert r.exit_code == 0 and "cli-run" in r.output and "Ag2 I2" in r.output
    r = runner.invoke(main, ["store", "verify", *s])
    assert r.exit_code == 0 and "store OK" in r.output
    r = runner.invoke(main, ["store", "show", "nope", *s])
    assert r.exit_code == 1 and "no run 'nope'" in r.output
    r = runner.invoke(main, ["store", "export", "cli-run", str(tmp_path / "o.xyz"), *s])
    assert r.exit_code == 0 and (tmp_path / "o.xyz").read_text().count("Lattice=") == 6
    r = runner.invoke(main, ["store", "import", str(src), "bad/name", "--timestep-ps", "0.01", *s])
    assert r.exit_code == 1 and "invalid run id" in r.output
