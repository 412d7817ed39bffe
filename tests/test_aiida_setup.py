"""Pseudopotentials (ld1.x), the pseudo family, protocols, entry points and `agi setup` (idempotent, fast)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agi_data.aiida.protocols import ProtocolError, available_protocols, load_protocol
from agi_data.pseudo import (
    VALENCE,
    compare_upf,
    generate_pseudopotentials,
    shipped_pseudopotentials,
    upf_header,
)


def test_ld1_regenerates_the_shipped_pseudopotentials(tmp_path):
    new = generate_pseudopotentials(tmp_path)
    shipped = shipped_pseudopotentials()
    assert set(new) == set(shipped) == {"Ag", "I"}
    for el in new:
        assert upf_header(new[el])["z_valence"] == VALENCE[el]
        assert upf_header(new[el])["functional"] == "PBE"
        # same numbers to the last digits a BLAS build may change (compared numerically, not by hash)
        assert compare_upf(new[el], shipped[el]) < 1e-6
    with pytest.raises(ValueError, match="valence"):
        compare_upf(new["Ag"], shipped["I"])


def test_pseudo_family_is_idempotent_and_carries_the_shipped_md5():
    from agi_data.aiida.setup import ensure_pseudo_family

    family = ensure_pseudo_family()
    again = ensure_pseudo_family()
    assert family.pk == again.pk
    md5 = {el: hashlib.md5(p.read_bytes()).hexdigest() for el, p in shipped_pseudopotentials().items()}
    assert {n.element: n.md5 for n in family.nodes} == md5
    assert {n.element: n.z_valence for n in family.nodes} == VALENCE


def test_protocols_merge_and_reject_unknown_keys():
    assert set(available_protocols("wannier")) == {"fast", "demo", "production"}
    fast, demo = load_protocol("wannier", "fast"), load_protocol("wannier", "demo")
    assert fast["options"]["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 1}
    assert demo["options"]["resources"] == {"num_machines": 1, "num_mpiprocs_per_machine": 2}
    assert demo["pw"]["ecutwfc"] == fast["pw"]["ecutwfc"] == 30.0
    assert load_protocol("reference", "production")["structures"]["supercell"] == 3
    over = load_protocol("wannier", "fast", {"expected_centres": {"Cu": 5}, "pw": {"ecutwfc": 40}})
    assert over["expected_centres"]["Cu"] == 5 and over["pw"]["ecutwfc"] == 40
    with pytest.raises(ProtocolError, match="unknown protocol"):
        load_protocol("wannier", "nope")
    with pytest.raises(ProtocolError, match="conv_tol_typo"):
        load_protocol("wannier", "fast", {"wannier90": {"conv_tol_typo": 1}})


def test_entry_points_are_registered():
    from aiida.plugins import CalculationFactory, DataFactory, ParserFactory, WorkflowFactory

    assert WorkflowFactory("agi.reference").__name__ == "ReferenceWorkChain"
    assert WorkflowFactory("agi.wannier").__name__ == "WannierWorkChain"
    assert CalculationFactory("agi.wannier90").__name__ == "Wannier90Calculation"
    assert ParserFactory("agi.wannier90").__name__ == "Wannier90Parser"
    assert DataFactory("agi.wannier_set").__name__ == "WannierSet"


def test_agi_setup_creates_then_finds_everything_quickly(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("AIIDA_PATH", "AGI_AIIDA_PROFILE")}
    env["AGI_HOME"] = str(tmp_path / "home")
    agi = [str(Path(sys.executable).with_name("agi"))]
    first = subprocess.run([*agi, "setup"], env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "pw@localhost" in first.stdout and "agi-nc-pbe" in first.stdout
    aiida_path = tmp_path / "home" / "aiida"
    assert f"AIIDA_PATH={aiida_path}" in first.stdout
    second = subprocess.run([*agi, "setup", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    seconds = float(re.search(r"ready \(([\d.]+) s\)", second.stdout).group(1))
    assert seconds < 2.0  # everything exists: no AiiDA work at all
    # verdi works on the embedded profile with AIIDA_PATH=<data root>/aiida
    verdi = str(Path(sys.executable).with_name("verdi"))
    env["AIIDA_PATH"] = str(aiida_path)
    codes = subprocess.run([verdi, "-p", "agi", "code", "list"], env=env, capture_output=True, text=True, timeout=300)
    assert codes.returncode == 0, codes.stderr
    for label in ("pw@localhost", "pw2wannier90@localhost", "wannier90@localhost"):
        assert label in codes.stdout
    status = subprocess.run([verdi, "-p", "agi", "profile", "show"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert "core.sqlite_dos" in status.stdout and "core.zeromq" in status.stdout
