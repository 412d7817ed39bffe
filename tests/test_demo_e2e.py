"""End to end: `agi demo --protocol fast` — real pw.x, nequip-train, Allegro and LAMMPS MD, wannier90.x.

Runs the command as a user would, in a fresh data root, then checks that the
report's numbers are finite, that its figures exist, that the provenance
page is there, that every store run leads back through AiiDA to the codes
and pseudopotentials, and that a second run reuses every stage from the
provenance graph instead of recomputing it.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

AGI = [sys.executable, "-m", "agi_data.cli"]


def agi(*args, env, timeout=1200):
    return subprocess.run([*AGI, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("agi_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIIDA")} | {"AGI_HOME": str(home)}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    first = agi("demo", "--protocol", "fast", env=env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return home, env, first


def test_report_numbers_are_finite_and_figures_exist(demo):
    home, _, first = demo
    html = Path(re.search(r"report:\s*(\S+report\.html)", first.stdout).group(1))
    md = html.with_suffix(".md").read_text()
    rows = [line.split("|")[1:-1] for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    numbers = {r[0].strip(): r[1].strip() for r in rows if r[0].strip() not in ("quantity", "stage")}
    for key in ("D(Ag), Allegro", "D(Ag), classical", "Ag⁺ friction ∫K dt, Allegro", "Ag⁺ friction ∫K dt, classical",
                "first I–I peak, classical", "Ag⁺ hop rate per ion, classical", "Wannier frames",
                "held-out rotor-function RMSE, lone-pair model", "C_rot(0.1 ps), lone-pair model, every frame"):
        assert key in numbers, f"{key} missing from the report: {sorted(numbers)}"
        value = float(numbers[key].split("±")[0])
        assert math.isfinite(value), (key, numbers[key])
    assert float(numbers["Wannier frames"]) >= 1
    assert float(numbers["Wannier frames flagged (wrong centre count)"]) == 0
    # the final model (reference + exploration frames) beats predicting zero forces on structures it never saw
    rmse = float(numbers["held-out force RMSE, Allegro"].split("±")[0])
    assert 0 < rmse < float(numbers["held-out force RMS (the error of F = 0)"].split("±")[0])
    notes = md.split("## ")[0]
    assert "fast-sampling-750K" in notes and "fast-explore-750K" in notes, notes  # the training data is named
    # the electronic state on every frame: the model's rotor correlation is computed on all of the run's frames
    from agi_data import open_store

    predicted = re.search(r"moments predicted on (\d+) frames", md)
    assert predicted and "Lone-pair model: trained by ElectronicWorkChain" in md, md[:3000]
    assert int(predicted.group(1)) == open_store(home / "data").trajectory(run_ids(home)[0]).sizes["time"]
    for png in ("msd.png", "vacf.png", "vdos.png", "rdf.png", "cage.png", "memory_kernel.png", "rotor.png",
                "rotor_model.png"):
        assert (html.parent / png).stat().st_size > 5000, png
        assert png in html.read_text()
    page = (html.parent / "provenance.html").read_text()
    assert "<svg" in page and "ReferenceWorkChain" in page and "store run fast-allegro-750K" in page
    # every kernel has its Einstein ratio beside it, computed with the measured temperature
    for label in ("Allegro", "classical"):
        assert math.isfinite(float(numbers[f"Einstein ratio ∫K/(k_BT/(mD)), {label}"]))
    assert "min_dwell_ps=0.1" in md and "temperature_K=measured" in md


def test_reproduce_script_recomputes_every_number(demo):
    home, env, first = demo
    html = Path(re.search(r"report:\s*(\S+report\.html)", first.stdout).group(1))
    out = subprocess.run([sys.executable, str(html.parent / "reproduce.py")], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    m = re.search(r"(\d+) of (\d+) numbers reproduced", out.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 20, out.stdout[-2000:]
    # the paddlewheel caption and the table state the same hop counts
    md = html.with_suffix(".md").read_text()
    used = re.search(r"\| Ag⁺ hops with a window on the Wannier frames \| (\d+) ", md)
    if used:
        assert f"{used.group(1)} of them with a window on the Wannier frames" in md


def run_ids(home):
    from agi_data import open_store
    from agi_data.md import EQUILIBRATION_SUFFIX

    all_ids = open_store(home / "data").run_ids()
    ids = [r for r in all_ids if not r.endswith(EQUILIBRATION_SUFFIX)]
    # the analysed runs are NVE productions, each after an equilibration run of its own
    assert sum(r.endswith(EQUILIBRATION_SUFFIX) for r in all_ids) == 2, all_ids
    allegro = [r for r in ids if r.startswith("fast-allegro-750K-")]
    classical = [r for r in ids if r.startswith("fast-classical-750K-")]
    assert len(allegro) == len(classical) == 1, ids
    assert sum(r.startswith(("fast-sampling-750K-", "fast-explore-750K-")) for r in ids) == 2, ids
    return allegro[0], classical[0]


def test_every_run_leads_back_to_codes_and_pseudopotentials(demo):
    home, env, _ = demo
    allegro_run, classical_run = run_ids(home)
    for run in (allegro_run, classical_run):
        out = agi("provenance", run, "--json", env=env, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        text = out.stdout
        assert "MDWorkChain" in text or "agi.md" in text
    allegro = agi("provenance", allegro_run, env=env, timeout=300).stdout
    # Allegro run → model → training → reference set → pw.x with its pseudopotentials
    for needle in ("NequipTrainCalculation", "PwCalculation", "pw.x", "z_valence 11", "md5", "WannierWorkChain",
                   "predictions of frames [0, ", "trained by ElectronicTrainCalculation", "Wannier set "):
        assert needle in allegro, (needle, allegro[-3000:])
    # ... and on through the store to the MD whose frames pw.x labelled (classical sampling, Allegro exploration)
    for run in ("fast-sampling-750K-", "fast-explore-750K-"):
        assert re.search(rf"read frames of store run {run}\S+ at version \S+, written by MDWorkChain pk=", allegro), allegro
    page = home / "allegro.html"
    out = agi("provenance", "--html", allegro_run, "-o", str(page), env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    for run in ("fast-sampling-750K-", "fast-explore-750K-"):  # a store-run node of its own, linked to its writer
        assert re.search(rf'"run_{run}\w+": {{"pk": null, "title": "store run {run}', page.read_text()), run


def test_a_rerun_reuses_every_stage_from_the_provenance(demo):
    home, env, _ = demo
    again = agi("demo", "--protocol", "fast", env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    html = Path(re.search(r"report:\s*(\S+report\.html)", again.stdout).group(1))
    timings = html.with_suffix(".md").read_text().split("## Stage timings")[1]
    from agi_data.demo.pipeline import STAGES

    for stage in STAGES[:-1]:
        assert re.search(rf"\| {stage} \| [0-9.]+ \| reused from provenance", timings), timings
