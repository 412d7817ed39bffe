"""``verdi data agi.reference_set`` / ``agi.wannier_set`` (list, show, export) on the test profile, and Data.export."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
from aiida.common import AttributeDict
from aiida.manage import get_manager
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read
from click.testing import CliRunner

from agi_data.aiida.data import ReferenceDataset, WannierSet
from agi_data.structures import alpha_agi

ROOT = Path(__file__).resolve().parents[1]


def verdi(*args: str):
    """Run ``verdi ARGS`` in-process on the loaded test profile, the way aiida-core's own CLI tests do."""
    from aiida.cmdline.commands.cmd_verdi import verdi as verdi_cmd

    manager = get_manager()
    obj = AttributeDict({"config": manager.get_config(), "profile": manager.get_profile()})
    result = CliRunner().invoke(verdi_cmd, list(args), obj=obj, catch_exceptions=False)
    return result


@pytest.fixture
def reference(rng):
    structures = []
    for k in range(2):
        atoms = alpha_agi(1, seed=k, rattle=0.05)
        atoms.calc = SinglePointCalculator(atoms, energy=-10.0 - k, forces=rng.normal(size=(len(atoms), 3)))
        structures.append(atoms)
    node = ReferenceDataset.from_atoms(structures, labels=["a", "b"])
    node.label = "verdi-test-reference"
    return node.store(), structures


@pytest.fixture
def wannier(rng):
    node = WannierSet.from_frames([0, 5], rng.normal(size=(2, 3, 3)), rng.random((2, 3)), [[0, 1, -1], [1, 1, 0]])
    node.base.attributes.set("run_id", "run-x")
    node.label = "verdi-test-wannier"
    return node.store()


def test_entry_points_are_declared_and_load_the_command_groups():
    from importlib import import_module

    from aiida.plugins.entry_point import get_entry_point_names

    registered = set(get_entry_point_names("aiida.cmdline.data"))
    assert {"agi.reference_set", "agi.wannier_set"} <= registered, (
        "the aiida.cmdline.data entry points are not installed: reinstall the package (pip install -e .)")

    eps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["aiida.cmdline.data"]
    for name in ("agi.reference_set", "agi.wannier_set"):
        module, _, attr = eps[name].partition(":")
        group = getattr(import_module(module), attr)
        assert group.name == name
        assert {"list", "show", "export"} <= set(group.commands)


def test_reference_set_list_show_export(reference, tmp_path):
    node, structures = reference
    out = verdi("data", "agi.reference_set", "list")
    assert out.exit_code == 0, out.output
    row = next(line for line in out.output.splitlines() if line.split()[:1] == [str(node.pk)])
    assert "verdi-test-reference" in row and " 2 " in row  # 2 structures

    out = verdi("data", "agi.reference_set", "show", str(node.pk))
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["uuid"] == node.uuid and shown["arrays"]["forces"] == [8, 3]

    path = tmp_path / "ref.extxyz"
    out = verdi("data", "agi.reference_set", "export", str(node.pk), "-F", "extxyz", "-o", str(path))
    assert out.exit_code == 0, out.output
    frames = read(path, index=":")
    assert [f.get_potential_energy() for f in frames] == pytest.approx([-10.0, -11.0])
    np.testing.assert_allclose(frames[1].get_forces(), structures[1].get_forces(), atol=1e-8)

    printed = verdi("data", "agi.reference_set", "export", str(node.pk))  # no -o: the file on stdout
    assert printed.output.strip() == path.read_text().strip()


def test_wannier_set_list_show_export(wannier, tmp_path):
    out = verdi("data", "agi.wannier_set", "list")
    assert out.exit_code == 0, out.output
    assert any(line.split()[:1] == [str(wannier.pk)] and "run-x" in line for line in out.output.splitlines())
    out = verdi("data", "agi.wannier_set", "show", str(wannier.pk), "--arrays")
    assert json.loads(out.output)["values"]["frames"] == [0, 5]
    path = tmp_path / "w.extxyz"
    out = verdi("data", "agi.wannier_set", "export", str(wannier.pk), "-o", str(path))
    assert out.exit_code == 0, out.output
    frames = read(path, index=":")
    assert [f.info["frame"] for f in frames] == [0, 5]
    np.testing.assert_allclose(frames[1].positions, wannier.centres[1])
    np.testing.assert_allclose(frames[0].arrays["spread"], wannier.spreads[0])


def test_data_export_through_prepare_methods(reference, tmp_path):
    node, _ = reference
    assert "extxyz" in ReferenceDataset.get_export_formats()
    node.export(tmp_path / "a.xyz")  # the .xyz extension maps to extxyz
    assert len(read(tmp_path / "a.xyz", index=":")) == 2
    with pytest.raises(OSError, match="already found"):
        node.export(tmp_path / "a.xyz")
    with pytest.raises(ValueError, match="not implemented"):
        node.export(tmp_path / "a.cif", fileformat="cif")
