"""The demo's report on two real (LAMMPS, equilibration + NVE) runs: every number finite, stated with its
parameters, and recomputed from the store by the reproduce.py written next to it."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from agi_data import open_store
from agi_data.demo.analyses import HOP_MIN_DWELL_PS, analyse
from agi_data.md import LammpsEngine, MDSettings, StreamOptions, run_md
from agi_data.report.render import Report
from agi_data.structures import alpha_agi


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("store") / "data")
    for run_id, seed in (("nve-a", 1), ("nve-b", 2)):
        s = MDSettings(temperature_K=750.0, n_steps=1000, timestep_fs=2.0, stride=5, ensemble="nve", seed=seed,
                       equilibration_steps=200)
        run_md(LammpsEngine(), alpha_agi(2, seed=seed), s, store=store, run_id=run_id,
               options=StreamOptions(progress=False))
    return store


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory):
    rep = Report(tmp_path_factory.mktemp("report"), title="test")
    numbers = analyse(runs, rep, ml_run="nve-a", classical_run="nve-b")
    rep.write()
    return rep, numbers


def test_every_number_is_finite_and_states_its_parameters(report):
    rep, numbers = report
    names = {n.name: n for n in rep.numbers}
    for key in ("D(Ag), Allegro", "D(Ag), classical", "Ag⁺ friction ∫K dt, classical",
                "Einstein ratio ∫K/(k_BT/(mD)), classical", "kinetic temperature of Ag⁺, Allegro",
                "NVE energy drift, classical", "Ag⁺ hops counted, Allegro", "first I–I peak, classical"):
        assert key in names, sorted(names)
    for n in rep.numbers:
        assert math.isfinite(n.value), n
        assert n.params, f"{n.name} states no parameters"
        assert n.recipe, f"{n.name} has no recipe"
    assert f"min_dwell_ps={HOP_MIN_DWELL_PS}" in names["Ag⁺ hops counted, Allegro"].computed_with
    assert "measured" in names["Ag⁺ friction ∫K dt, classical"].computed_with
    # NVE: the kinetic temperature is measured, not the nominal 750 K; it is a temperature all the same
    assert 300 < names["kinetic temperature of Ag⁺, classical"].value < 1500
    assert abs(names["NVE energy drift, classical"].value) < 1e-2
    md = (rep.directory / "report.md").read_text()
    assert "computed with" in md and "min_dwell_ps=0.1" in md
    assert "Einstein ratio" in md and "∫K/(k_BT/mD) =" not in md  # the ratio is in the legend, as a number here
    assert "No Wannier centres" in md  # skipped, and said so
    assert (rep.directory / "memory_kernel.png").stat().st_size > 5000


def test_reproduce_script_recomputes_every_number(report):
    rep, _ = report
    script = rep.directory / "reproduce.py"
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    n = sum(1 for x in rep.numbers if x.recipe)
    assert f"{n} of {n} numbers reproduced" in out.stdout
    # the comparison is not vacuous: a changed reported value is caught
    text = script.read_text()
    d = next(x for x in rep.numbers if x.name == "D(Ag), classical")
    tampered = rep.directory / "tampered.py"
    tampered.write_text(text.replace(repr(d.value), repr(d.value * 1.01), 1))
    bad = subprocess.run([sys.executable, str(tampered)], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 1 and "DIFF D(Ag), classical" in bad.stdout, bad.stdout[-2000:]


def test_physics_checks_judge_each_number_against_its_target(report):
    """Every check of every run is in the report with its number, target and verdict, and the verdict is the
    target's test of the reported number (a miss is shown, never dropped)."""
    import json

    from agi_data.demo.analyses import PHYSICS_CHECKS

    rep, numbers = report
    by_key = {n.key: n.value for n in rep.numbers}
    tests = {name: ok for name, _, _, ok in PHYSICS_CHECKS}
    seen = {(c.name, c.label) for c in rep.checks}
    for name, key, _, _ in PHYSICS_CHECKS:
        for label in ("Allegro", "classical"):
            if f"{key}_{label}" in by_key:
                assert (name, label) in seen, (name, label)
    assert {"first I–I g(r) peak", "first Ag–I g(r) peak", "Einstein ratio ∫K/(k_BT/(mD))"} <= {c.name for c in rep.checks}
    for c in rep.checks:
        assert c.value == by_key[c.key]
        assert c.passed == tests[c.name](c.value)
    # the classical α-AgI lattice keeps its iodides apart: the first I–I peak near √3/2·a, no close contacts
    peak = by_key["I_I_first_peak_classical"]
    assert 4.0 < peak < 4.6
    saved = json.loads((rep.directory / "checks.json").read_text())
    assert [(s["name"], s["model"], s["verdict"]) for s in saved] == [(c.name, c.label, c.verdict) for c in rep.checks]
    md = (rep.directory / "report.md").read_text()
    assert "## Physics checks" in md and all(f"| {c.verdict} |" in md for c in rep.checks)
    html = (rep.directory / "report.html").read_text()
    assert 'id="checks"' in html


def test_kernels_carry_error_bands_their_difference_a_global_test_and_the_verdict_says_so(report):
    rep, numbers = report
    by_key = {n.key: n for n in rep.numbers}
    for label in ("Allegro", "classical"):
        k = by_key[f"friction_Ag_err_{label}"]
        assert k.stderr is not None and 0 < k.stderr < abs(k.value)
        # the same kernel as the plain one, to the lag the blocks allow
        assert "blocks=8" in k.computed_with and "jackknife" in k.computed_with
    diff = by_key["friction_difference"]
    assert diff.value == pytest.approx(by_key["friction_Ag_err_Allegro"].value
                                       - by_key["friction_Ag_err_classical"].value, rel=0.05, abs=0.5)
    assert diff.stderr > 0 and 0 <= by_key["p_global"].value <= 1 and 0 <= by_key["p_friction"].value <= 1
    for png in ("memory_kernel_bands.png", "kernel_difference.png"):
        assert (rep.directory / png).stat().st_size > 5000
    md = (rep.directory / "report.md").read_text()
    verdict = md.split("## Verdict")[1].split("##")[0]
    p = by_key["p_global"].value
    assert ("do not differ significantly" in verdict) == (p >= 0.05)
    assert "published table" in verdict and "Physics checks:" in verdict
