"""A non-editable install (``pip install --no-deps .``) has the protocols, the entry points and every builder.

The fresh venv is made by this test's Python with ``--system-site-packages --without-pip`` (no
setuptools of its own: the build uses the environment's); a ``.pth`` line adds the running
environment's site-packages (its installed dependencies, pip and setuptools) as a plain path — plain, so that the
editable finder a development checkout installs there is *not* activated and cannot shadow the
package under test (checked: ``agi_data.__file__`` lies in the new site-packages). The copy of the
source tree that pip builds from holds the files git tracks (and new ones it does not ignore), so
the build leaves nothing in the checkout. Then ``agi setup`` makes a profile with that install, and
every WorkChain is built from every one of its protocols.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[1]

BUILD_ALL = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    import numpy as np
    import agi_data
    from agi_data.aiida.setup import load_agi_profile
    load_agi_profile()
    from aiida.plugins import WorkflowFactory
    from ase.calculators.singlepoint import SinglePointCalculator
    from agi_data.aiida.data import ReferenceDataset
    from agi_data.structures import alpha_agi

    frames = []
    for i in range(5):
        a = alpha_agi(1, seed=i, rattle=0.05)
        a.calc = SinglePointCalculator(a, energy=-1.0 * i, forces=np.zeros((4, 3)))
        frames.append(a)
    dataset = ReferenceDataset.from_atoms(frames)
    cell = alpha_agi(1, seed=0)
    store = Path(sys.argv[1])
    build = {
        "agi.reference": lambda wc, p: wc.get_builder_from_protocol(None, cell, protocol=p),
        "agi.wannier": lambda wc, p: wc.get_builder_from_protocol(None, structures=cell, protocol=p),
        "agi.train": lambda wc, p: wc.get_builder_from_protocol(None, dataset, protocol=p),
        "agi.md": lambda wc, p: wc.get_builder_from_protocol(None, None, protocol=p, store=store, run="r"),
    }
    built = {}
    for entry_point, make in build.items():
        wc = WorkflowFactory(entry_point)
        for protocol in wc.get_available_protocols():
            builder = make(wc, protocol)
            built[f"{entry_point}/{protocol}"] = builder.parameters["protocol"]
    print(json.dumps({"agi_data": agi_data.__file__, "built": built,
                      "protocol_file": str(WorkflowFactory("agi.md").get_protocol_filepath())}))
''')


def _source_copy(dest: Path) -> Path:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def test_non_editable_install_builds_every_workchain_from_every_protocol(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_agi_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AIIDA_PATH", "AGI_WORKFLOWS_DIR")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    source = _source_copy(tmp_path / "src")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                              "--quiet", str(source)], env=env, capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout + install.stderr

    where = subprocess.run([str(python), "-c", "import agi_data; print(agi_data.__file__)"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), f"agi_data imported from {where}, not the new install in {site}"
    assert (site / "agi_data" / "protocols" / "md.yaml").is_file()

    home = tmp_path / "home"
    env["AGI_HOME"] = str(home)
    setup = subprocess.run([str(venv / "bin" / "agi"), "setup", "--quiet", "--aiida-path", str(home / "aiida")],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    env["AIIDA_PATH"] = str(home / "aiida")
    run = subprocess.run([str(python), "-c", BUILD_ALL, str(tmp_path / "store")], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(report["agi_data"]).is_relative_to(site)
    assert Path(report["protocol_file"]).is_relative_to(site)
    expected = {f"{wc}/{p}": p for wc in ("agi.reference", "agi.wannier", "agi.train", "agi.md")
                for p in ("fast", "demo", "production")}
    assert report["built"] == expected
    assert not (ROOT / "build").exists() or (ROOT / "build").stat().st_mtime < tmp_path.stat().st_mtime
