"""The examples of docs/launch.md, extracted and run exactly as written with `verdi run`.

They chain (MD → Wannier and reference on its frames → training on the reference set), each in a
`verdi run` of its own in one working directory, on the test profile with the codes of `agi setup`.
Each prints what it made; the test checks those numbers against the store and the nodes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from aiida import orm

from agi_data import open_store
from agi_data.aiida.testing import prepare_profile

pytestmark = pytest.mark.slow
DOC = Path(__file__).resolve().parents[1] / "docs" / "launch.md"
ORDER = ["md", "wannier", "reference", "train"]


def examples() -> dict[str, str]:
    text = DOC.read_text()
    return dict(re.findall(r"<!-- example: (\w+) -->\n```python\n(.*?)```", text, re.S))


def test_every_workflow_has_one_example():
    assert list(examples()) == ORDER


@pytest.fixture(scope="module")
def launched(aiida_profile, tmp_path_factory):
    work = tmp_path_factory.mktemp("launch")
    prepare_profile(work / "aiida-work")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    out = {"work": work}
    for name, code in examples().items():
        script = work / f"{name}.py"
        script.write_text(code)
        proc = subprocess.run([str(Path(sys.executable).with_name("verdi")), "-p", aiida_profile.name, "run",
                               str(script)], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"example {name!r} failed:\n{proc.stdout}\n{proc.stderr}"
        out[name] = proc.stdout
    return out


def _node(stdout: str, kind: str):
    pk = int(re.search(rf"agi\.{kind} <(\d+)> exit status 0", stdout).group(1))
    return orm.load_node(pk)


def test_md_example_writes_the_run(launched):
    node = _node(launched["md"], "md")
    assert node.is_finished_ok and "frames: 9" in launched["md"]
    store = open_store(launched["work"] / "launch-store")
    ds = store.trajectory("launch-750K")
    assert ds.sizes["time"] == 9 and ds.sizes["atom"] == 4
    assert node.inputs.store["store_path"] == str((launched["work"] / "launch-store").resolve())


def test_wannier_example_centres_in_the_store(launched):
    node = _node(launched["wannier"], "wannier")
    ws = open_store(launched["work"] / "launch-store").wannier("launch-750K")
    np.testing.assert_array_equal(ws["frame"].values, [0, 4])
    assert "centres: (2, 18, 3)" in launched["wannier"]  # 4 per I, 5 per Ag
    assert node.inputs.parameters["options"]["max_wallclock_seconds"] == 600


def test_reference_example_labels_five_frames(launched):
    node = _node(launched["reference"], "reference")
    dataset = node.outputs.dataset
    assert len(dataset) == 5 and "structures: 5" in launched["reference"]
    assert np.all((-3370 < dataset.energies) & (dataset.energies < -3360))
    assert node.inputs.run["run_id"] == "launch-750K"


def test_train_example_trains_on_the_reference_set(launched):
    node = _node(launched["train"], "train")
    reference = _node(launched["reference"], "reference")
    assert node.inputs.dataset.uuid == reference.outputs.dataset.uuid
    rmse = node.outputs.test_metrics["force_rmse_eV_per_A"]
    assert np.isfinite(rmse) and f"{rmse:.3f}" in launched["train"]
    assert node.uuid in {n.uuid for n in orm.load_group(f"agi/train/pk{node.pk}").nodes}
