"""``agi provenance RUN --html``: the clickable page of a real store run, opened and clicked in headless Chromium.

The run is made by the real ``agi.md`` WorkChain (LAMMPS, classical force field, 40 steps); Wannier
centres are added to it by the real ``store_wannier_batch`` calcfunction (the node the Wannier
WorkChain calls for each batch; the centres themselves are made up here, only their provenance is
under test), so the run records two writers: the trajectory's WorkChain and the batch node.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid as uuidlib

import numpy as np
import pytest
from aiida import orm
from aiida.engine import run_get_node
from click.testing import CliRunner
from headless_chromium import chromium

from agi_data import open_store
from agi_data.aiida.workflows.md import MDWorkChain
from agi_data.aiida.workflows.wannier import store_wannier_batch
from agi_data.cli import main
from agi_data.md import AGI_SHIMOJO_KOBAYASHI

pytestmark = pytest.mark.slow

RUN = "classical"


@pytest.fixture(scope="module")
def md_run(tmp_path_factory):
    """A 40-step classical MD run in a fresh store, then one Wannier batch (frames 1 and 3) on it."""
    path = tmp_path_factory.mktemp("prov-html") / "store"
    store = open_store(path)
    builder = MDWorkChain.get_builder_from_protocol(None, None, protocol="fast", store=store, run=RUN,
                                                    overrides={"md": {"n_steps": 40, "stride": 10}})
    _, workchain = run_get_node(builder)
    assert workchain.is_finished_ok, workchain.exit_message
    rng = np.random.default_rng(0)
    frames = {}
    for i in (1, 3):
        arrays = orm.ArrayData()
        arrays.set_array("centres", rng.uniform(0, 10, (4, 3)))
        arrays.set_array("spreads", rng.uniform(1, 2, 4))
        arrays.set_array("owner", np.arange(4))
        frames[f"frame_{i}"] = arrays
    run = orm.Dict({"store_path": str(store.root), "run_id": RUN, "version": store.version(RUN)})
    wset, batch = run_get_node(store_wannier_batch, failures=orm.Dict({}), run=run, **frames)
    assert batch.is_finished_ok
    return {"store": store, "path": path, "workchain": workchain, "batch": batch, "wset": wset,
            "calc": orm.load_node(store.attrs(RUN)["provenance_calc_uuid"])}


def _cli(*args):
    return CliRunner().invoke(main, ["provenance", *map(str, args)])


def _listed(driver, heading):
    """The entries of the details panel's ``inputs`` or ``outputs`` list, as text."""
    from selenium.webdriver.common.by import By

    xpath = f"//div[@id='details']/h4[text()='{heading}']/following-sibling::*[1]/li"
    return [li.text for li in driver.find_elements(By.XPATH, xpath)]


def _selected(driver):
    """The ids of the graph nodes drawn as selected."""
    from selenium.webdriver.common.by import By

    return [g.get_attribute("id") for g in driver.find_elements(By.CSS_SELECTOR, "g.node.selected")]


def test_html_page_of_a_store_run_is_clickable_in_chromium(md_run, tmp_path):
    from selenium.webdriver.common.by import By

    store, workchain, batch, calc = (md_run[k] for k in ("store", "workchain", "batch", "calc"))
    out = tmp_path / "pages" / "prov.html"
    res = _cli("--html", RUN, "--store", md_run["path"], "-o", out)  # the word order
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(out) and out.is_file()
    # self-contained: no script, style or image fetched from anywhere
    text = out.read_text()
    assert "<svg" in text and "src=" not in text and "http://" not in text.replace("http://www.w3.org", "")

    with chromium(tmp_path / "chrome") as driver:
        driver.get(out.as_uri())
        # the page opens centred on its run, with that run in view
        assert driver.execute_script(
            "const g = document.getElementById(arguments[0]).getBoundingClientRect();"
            "const b = document.getElementById('graph').getBoundingClientRect();"
            "return g.width > 0 && g.left >= b.left && g.right <= b.right && g.top >= b.top && g.bottom <= b.bottom;",
            f"run_{RUN}")
        driver.find_element(By.ID, "fit").click()  # the whole graph, to click around in it
        ids = {g.get_attribute("id") for g in driver.find_elements(By.CSS_SELECTOR, "svg g.node")}
        assert {f"run_{RUN}", f"n{workchain.pk}", f"n{calc.pk}", f"n{batch.pk}", f"n{md_run['wset'].pk}"} <= ids
        edges = {e.find_element(By.TAG_NAME, "title").get_attribute("textContent"):
                 e.find_element(By.TAG_NAME, "text").get_attribute("textContent")
                 for e in driver.find_elements(By.CSS_SELECTOR, "svg g.edge")}
        assert edges[f"n{workchain.pk}->run_{RUN}"] == "writes trajectory"
        assert edges[f"n{batch.pk}->run_{RUN}"] == "writes Wannier centres"
        assert driver.title == f"Provenance of store run {RUN}"

        # the store run: its attributes (store version, the UUIDs it records) and links to its writers
        driver.find_element(By.ID, f"run_{RUN}").click()
        assert driver.find_element(By.ID, "node-title").text == f"store run {RUN}"
        assert driver.find_element(By.ID, "node-created").text  # not blank
        assert store.version(RUN) in driver.find_element(By.ID, "node-uuid").text
        attrs = driver.find_element(By.ID, "node-attributes").text
        assert f'"version": "{store.version(RUN)}"' in attrs
        assert f'"provenance_uuid": "{workchain.uuid}"' in attrs
        assert f'"provenance_calc_uuid": "{calc.uuid}"' in attrs
        assert '"engine": "lammps"' in attrs
        assert workchain.label  # the builder labels the WorkChain with its run and protocol; the page shows it
        assert _listed(driver, "inputs") == [f"trajectory: MDWorkChain {workchain.label} [{workchain.pk}]",
                                             f"Wannier centres: store_wannier_batch [{batch.pk}]"]
        assert _selected(driver) == [f"run_{RUN}"]

        # follow the link to the WorkChain: attributes, inputs, outputs
        driver.find_element(By.XPATH, f"//a[@data-key='n{workchain.pk}']").click()
        assert driver.find_element(By.ID, "node-title").text == f"MDWorkChain {workchain.label} [{workchain.pk}]"
        assert workchain.uuid in driver.find_element(By.ID, "details").text
        attrs = driver.find_element(By.ID, "node-attributes").text
        assert '"process_label": "MDWorkChain"' in attrs and '"exit_status": 0' in attrs
        outputs = _listed(driver, "outputs")
        assert f"CALL: molecular_dynamics [{calc.pk}]" in outputs
        assert any(o.startswith("run: Dict [") for o in outputs)
        assert any(i.startswith("structure: StructureData [") for i in _listed(driver, "inputs"))
        assert _selected(driver) == [f"n{workchain.pk}"]

        # click the calcfunction that ran LAMMPS in the graph: its potential is an input
        driver.find_element(By.ID, f"n{calc.pk}").click()
        assert driver.find_element(By.ID, "node-title").text == f"molecular_dynamics [{calc.pk}]"
        potential = orm.load_node(store.attrs(RUN)["potential_uuid"])
        assert f"potential: Str [{potential.pk}]" in _listed(driver, "inputs")
        assert any(o.startswith("result: Dict [") for o in _listed(driver, "outputs"))
        driver.find_element(By.XPATH, f"//a[@data-key='n{potential.pk}']").click()
        assert f'"value": "{AGI_SHIMOJO_KOBAYASHI.name}"' in driver.find_element(By.ID, "node-attributes").text


def test_html_default_path_is_under_the_reports_directory(md_run, tmp_path, monkeypatch):
    monkeypatch.setenv("AGI_HOME", str(tmp_path / "home"))
    res = _cli(RUN, "--store", md_run["path"], "--html")
    assert res.exit_code == 0, res.output
    page = tmp_path / "home" / "reports" / res.output.strip().rsplit("/", 1)[-1]
    assert res.output.strip() == str(page) and page.is_file()
    assert page.name.startswith(f"provenance-{RUN}-") and page.suffix == ".html"
    assert md_run["workchain"].uuid in page.read_text()


def test_text_and_json_output_still_work(md_run):
    res = _cli(RUN, "--store", md_run["path"])
    assert res.exit_code == 0, res.output
    assert f"trajectory: written by MDWorkChain pk={md_run['workchain'].pk}" in res.output
    assert f"written by store_wannier_batch pk={md_run['batch'].pk}" in res.output
    # a classical run names LAMMPS with its version, the force field and where its numbers come from
    attrs = md_run["store"].attrs(RUN)
    assert f"MD engine: LAMMPS ({attrs['engine_version']}), force field {AGI_SHIMOJO_KOBAYASHI.name}" in res.output
    assert f"numbers from: {AGI_SHIMOJO_KOBAYASHI.source}" in res.output
    # the versions line says which package each version is of
    versions = next(line for line in res.output.splitlines() if "versions (package" in line)
    assert "aiida-core 2." in versions and "agi-data" in versions and "plugin " not in versions
    res = _cli(RUN, "--store", md_run["path"], "--json")
    assert res.exit_code == 0 and f'"uuid": "{md_run["workchain"].uuid}"' in res.output


def _one_line_error(res, *needles):
    assert res.exit_code == 1, res.output
    assert res.output.startswith("Error: ") and res.output.count("\n") == 1, res.output
    for needle in needles:
        assert needle in res.output


def test_html_errors(md_run, tmp_path):
    store = md_run["store"]
    _one_line_error(_cli("no-such-run", "--store", md_run["path"], "--html", "-o", tmp_path / "x.html"), "no-such-run")
    # a run no AiiDA workflow wrote
    with store.create_run("imported", ["Ag", "I"], np.eye(3) * 5, 0.01) as w:
        w.append(np.zeros((1, 2, 3)))
    _one_line_error(_cli("imported", "--store", md_run["path"], "--html", "-o", tmp_path / "x.html"),
                    "records no provenance_uuid")
    # a run whose node is in another profile
    stranger = str(uuidlib.uuid4())
    with store.create_run("elsewhere", ["Ag", "I"], np.eye(3) * 5, 0.01, attrs={"provenance_uuid": stranger}) as w:
        w.append(np.zeros((1, 2, 3)))
    _one_line_error(_cli("elsewhere", "--store", md_run["path"], "--html", "-o", tmp_path / "x.html"),
                    stranger, "is in the loaded AiiDA profile")
    assert not (tmp_path / "x.html").exists()
    res = _cli(RUN, "--store", md_run["path"], "--json", "--html", "-o", tmp_path / "x.html")
    assert res.exit_code == 2 and "exclusive" in res.output
    res = _cli(RUN, "--store", md_run["path"], "-o", tmp_path / "x.html")  # a path without --html
    assert res.exit_code == 2 and "--output needs --html" in res.output


def test_a_profile_that_does_not_exist_is_an_error_not_a_new_profile(tmp_path):
    env = dict(os.environ, AIIDA_PATH=str(tmp_path / "aiida"), AGI_HOME=str(tmp_path / "home"))
    res = subprocess.run([sys.executable, "-m", "agi_data.cli", "provenance", "r", "--profile", "nosuch", "--html"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 1, res.stderr
    # (importing aiida creates an empty configuration folder, with a warning, before the command runs)
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert errors == [res.stderr.splitlines()[-1]] and errors[0].startswith("Error: no AiiDA profile 'nosuch'")
    assert not list((tmp_path / "aiida").rglob("config.json")) and not (tmp_path / "home").exists()
